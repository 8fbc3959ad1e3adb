"""Go ``time.Time`` as restic stores it: RFC 3339 with nanoseconds and a zone offset.

``datetime`` keeps only microseconds and cannot hold year 0, so a timestamp is
an integer count of nanoseconds since the Unix epoch plus the UTC offset (in
seconds) of the zone it was written in. ``format`` reproduces Go's
``RFC3339Nano`` output byte for byte: ``YYYY-MM-DDTHH:MM:SS[.fraction](Z|±hh:mm)``
with trailing zeros of the fraction dropped (and the dot with them).
"""

from __future__ import annotations

import functools
import re
import time as _time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

__all__ = ["Timestamp", "parse", "format", "now_local", "fix_year", "GO_ZERO"]

NS = 1_000_000_000
_DAY = 86_400

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:(Z)|([+-])(\d{2}):(\d{2}))"
)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (any year)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """Inverse of ``_days_from_civil``."""
    days += 719_468
    era = days // 146_097
    doe = days - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (month <= 2), month, day


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _month_days(year: int, month: int) -> int:
    if month == 2:
        return 29 if _is_leap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


@dataclass(frozen=True, slots=True, order=True)
class Timestamp:
    """An instant (``ns`` since the epoch, UTC) and the zone offset it is shown in.

    Equality and order compare ``ns`` first, then ``offset``: the same instant
    written in two zones gives two different strings, so they are not equal.
    """

    ns: int
    offset: int = 0

    @classmethod
    def from_ns(cls, ns: int, offset: int = 0) -> Timestamp:
        return cls(ns, offset)

    @property
    def seconds(self) -> float:
        """Seconds since the epoch (loses precision below about a microsecond)."""
        return self.ns / NS

    def to_datetime(self) -> datetime:
        """An aware datetime in the stored zone, truncated to microseconds."""
        zone = timezone(timedelta(seconds=self.offset))
        epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
        return (epoch + timedelta(microseconds=self.ns // 1000)).astimezone(zone)

    def __str__(self) -> str:
        return format(self)


GO_ZERO = Timestamp(_days_from_civil(1, 1, 1) * _DAY * NS, 0)
"""Go's zero ``time.Time``, written as ``0001-01-01T00:00:00Z``."""


# Trees repeat times: restic 0.14 stores every node's mtime as its atime too, and files
# written together share a ctime. Timestamps are immutable, so parses can be shared.
@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Timestamp:
    """A Go RFC 3339 time (0-9 fraction digits, ``Z`` or ``±hh:mm``).

    Raises ValueError for anything else, including impossible dates.
    """
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise ValueError(f"invalid time {text!r}")
    year, month, day, hour, minute, sec = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    if not (
        1 <= month <= 12
        and 1 <= day <= _month_days(year, month)
        and hour < 24
        and minute < 60
        and sec < 60
    ):
        raise ValueError(f"invalid time {text!r}: field out of range")
    frac = m.group(7) or ""
    offset = 0
    if m.group(8) is None:
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            raise ValueError(f"invalid time {text!r}: bad zone offset")
        offset = oh * 3600 + om * 60
        if m.group(9) == "-":
            offset = -offset
    local = _days_from_civil(year, month, day) * _DAY + hour * 3600 + minute * 60 + sec
    ns = (local - offset) * NS + (int(frac.ljust(9, "0")) if frac else 0)
    return Timestamp(ns, offset)


def _wall(ts: Timestamp) -> tuple[int, int, int, int, int]:
    """(days since epoch, hour, minute, second, nanosecond) in the stored zone."""
    secs, frac = divmod(ts.ns + ts.offset * NS, NS)
    days, sod = divmod(secs, _DAY)
    hour, rest = divmod(sod, 3600)
    minute, sec = divmod(rest, 60)
    return days, hour, minute, sec, frac


def format(ts: Timestamp) -> str:  # noqa: A001 - mirrors parse
    """``ts`` as Go's ``RFC3339Nano`` writes it.

    Raises ValueError for years outside 0000..9999, as Go's JSON encoder does.
    """
    days, hour, minute, sec, frac = _wall(ts)
    year, month, day = _civil_from_days(days)
    if not 0 <= year <= 9999:
        raise ValueError(f"year {year} outside 0000..9999")
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{sec:02d}"
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    if ts.offset == 0:
        return text + "Z"
    # Go truncates the offset to whole minutes (toward zero), then picks the sign.
    zone = -(-ts.offset // 60) if ts.offset < 0 else ts.offset // 60
    sign = "+"
    if zone < 0:
        sign, zone = "-", -zone
    return f"{text}{sign}{zone // 60:02d}:{zone % 60:02d}"


def fix_year(ts: Timestamp) -> Timestamp:
    """Move a time outside years 0..9999 to year 0 or 9999, as restic does for nodes.

    Keeps month, day and time of day in the stored zone; 29 February in a
    common target year rolls over to 1 March.
    """
    days, hour, minute, sec, frac = _wall(ts)
    year, month, day = _civil_from_days(days)
    if 0 <= year <= 9999:
        return ts
    target = 0 if year < 0 else 9999
    new_days = _days_from_civil(target, month, 1) + day - 1
    local = new_days * _DAY + hour * 3600 + minute * 60 + sec
    return Timestamp((local - ts.offset) * NS + frac, ts.offset)


def now_local() -> Timestamp:
    """The current time in the local zone, with nanoseconds."""
    ns = _time.time_ns()
    return Timestamp(ns, _time.localtime(ns // NS).tm_gmtoff)
