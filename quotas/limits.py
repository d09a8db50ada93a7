"""Limits on what a device may write and what a reader may ask for.

Each figure cites its source. SORACOM publishes few of them; where it is silent the emulator's
choice is named as such (spec section B).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from harvest import errors
from harvest.errors import HarvestError

#: Data per write: 1 KB (spec A2, "M-": one older SORACOM page); configurable (spec B6).
DEFAULT_MAX_PAYLOAD_BYTES: Final = 1024

#: Read page ``limit`` on every data-entry list operation: 1..1000, default 10 (spec A2, H).
PAGE_LIMIT_MIN: Final = 1
PAGE_LIMIT_MAX: Final = 1000
PAGE_LIMIT_DEFAULT: Final = 10

#: ``listSubscribers`` ``limit``: 1..100 (OpenAPI); the emulator's default when it is absent.
SUBSCRIBER_PAGE_MAX: Final = 100

#: Retention: 40 days by default (spec A2, M+). Reads with no ``from`` start here (spec B7).
DEFAULT_RETENTION_DAYS: Final = 40
#: Retention with the operator contract ``harvest`` ``{"plan":"extended","ttl":731}``
#: (OpenAPI ``ContractDetailOfHarvest``: "Currently only 731 is acceptable").
EXTENDED_RETENTION_DAYS: Final = 731
EXTENDED_PLAN: Final = "extended"


def retention_days(contracts: Mapping[str, Mapping[str, Any]]) -> int:
    """The operator's retention in days: 731 with the ``harvest`` contract, else 40."""
    harvest = contracts.get("harvest")
    if harvest is not None and harvest.get("plan") == EXTENDED_PLAN:
        return EXTENDED_RETENTION_DAYS
    return DEFAULT_RETENTION_DAYS


def check_payload_size(size: int, limit: int) -> None:
    """413 when a write is larger than ``limit`` bytes (spec B6)."""
    if size > limit:
        raise HarvestError(
            errors.PAYLOAD_TOO_LARGE,
            f"The payload is {size} bytes; the limit is {limit} bytes.",
        )


def retention_start(now_ms: int, retention_days: int = DEFAULT_RETENTION_DAYS) -> int:
    """The oldest entry time still readable at ``now_ms``."""
    return now_ms - retention_days * 86_400_000


# --- Harvest Files (notes real-service.md section 2) ---------------------------------------------
#: Largest file uploaded over the cellular entry point, ``harvest-files.soracom.io``: 100 MiB.
FILES_MAX_DEVICE_BYTES: Final = 100 * 1024 * 1024
#: Largest file: 5 GiB (through the API).
FILES_MAX_BYTES: Final = 5 * 1024 * 1024 * 1024
#: Longest path, in bytes of UTF-8.
FILES_MAX_PATH_BYTES: Final = 1024
#: Deepest directory nesting.
FILES_MAX_DEPTH: Final = 16
#: Files are deleted 731 days after they were last written.
FILES_RETENTION_DAYS: Final = 731
#: ``findFiles`` and ``listFiles`` ``limit``: default 10, no maximum in SORACOM's document; the
#: emulator's maximum is that of the data-entry lists.
FILES_PAGE_DEFAULT: Final = 10
