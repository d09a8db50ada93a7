"""The error catalogue is data: unique codes, sane statuses, every entry used and documented in
docs/errors.md (issue 2, item 9; spec B11)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harvest import errors
from harvest.errors import CATALOGUE, ErrorSpec, HarvestError

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = [p for d in ("harvest", "gateway", "quotas") for p in (ROOT / d).rglob("*.py")]


def test_codes_are_unique() -> None:
    codes = [spec.code for spec in CATALOGUE]
    assert len(codes) == len(set(codes))


def test_statuses_fit_their_side() -> None:
    for spec in CATALOGUE:
        assert 400 <= spec.status <= 599
        if spec.side == "device":
            assert spec.status < 500, spec  # a device refusal is the device's fault


def test_the_only_real_soracom_codes_are_the_known_ones() -> None:
    real = {spec.code for spec in CATALOGUE if not spec.code.startswith("HEM")}
    assert real == {"AUM0001", "AUM0002"}


@pytest.mark.parametrize("spec", CATALOGUE, ids=lambda s: s.code)
def test_every_code_is_used_by_the_product(spec: ErrorSpec) -> None:
    name = next(n for n, v in vars(errors).items() if v is spec)
    uses = [p for p in PRODUCT if p.name != "errors.py" and f"errors.{name}" in p.read_text()]
    assert uses, f"{name} ({spec.code}) is never raised"


@pytest.mark.parametrize("spec", CATALOGUE, ids=lambda s: s.code)
def test_every_code_is_in_the_catalogue_page_with_its_status(spec: ErrorSpec) -> None:
    page = (ROOT / "docs" / "errors.md").read_text()
    assert re.search(rf"\|\s*`{spec.code}`\s*\|\s*{spec.status}\s*\|", page), spec.code


def test_the_error_body_is_soracoms_shape() -> None:
    error = HarvestError(errors.NO_SUCH_ENTRY, "No such entry: 5")
    assert error.body() == {"code": "HEM2002", "message": "No such entry: 5"}
    assert error.status == 404


@pytest.mark.parametrize(("code", "status"), [("HEM01", 400), ("HEM0001", 302), ("1234567", 400)])
def test_malformed_catalogue_lines_are_rejected(code: str, status: int) -> None:
    with pytest.raises(ValueError, match=r"error (code|status)"):
        ErrorSpec(code, status, "x", "api")
