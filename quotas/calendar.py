"""UTC calendar arithmetic: every fee and quota period is a UTC day or month (spec A3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

DAY_MS = 86_400_000
#: The last UNIX millisecond a calendar date can name (9999-12-31T23:59:59.999Z). Counted in
#: whole milliseconds: ``datetime.max.timestamp()`` is a float that rounds up into year 10000.
LATEST_MS = (datetime.max.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
    milliseconds=1
)


def utc_day(ms: int) -> str:
    """The UTC day of a UNIX time in milliseconds, as ``YYYY-MM-DD``."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def next_utc_midnight(ms: int) -> int:
    """The first millisecond of the UTC day after the one holding ``ms``."""
    return (ms // DAY_MS + 1) * DAY_MS


FIVE_MINUTES_MS = 300_000


def five_minute_bucket(ms: int) -> str:
    """The 5-minute bucket holding ``ms``, as ``YYYY-MM-DDTHH:MM`` (UTC)."""
    start = ms - ms % FIVE_MINUTES_MS
    return datetime.fromtimestamp(start / 1000, UTC).strftime("%Y-%m-%dT%H:%M")
