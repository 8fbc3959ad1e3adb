"""Go's ``time.Time.Format`` for the time templates of ``mount --time-template``.

A Go layout is an example rendering of the reference time ``Mon Jan 2 15:04:05 MST 2006``
(zone offset -0700): every recognised piece of it is replaced by the same piece of the time
being formatted, everything else is copied. ``format_layout`` does this for a snapshot's
``Timestamp``, shown in the zone offset it was stored with, as restic does.
"""

from __future__ import annotations

import time as _time

from ..model.gotime import NS, Timestamp, _civil_from_days, _days_from_civil

RFC3339 = "2006-01-02T15:04:05Z07:00"

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")

# Numeric zone layouts, longest first: (layout, use "Z" for UTC, separator, with seconds,
# with minutes).
_ZONES = (
    ("Z07:00:00", True, ":", True, True), ("-07:00:00", False, ":", True, True),
    ("Z070000", True, "", True, True), ("-070000", False, "", True, True),
    ("Z07:00", True, ":", False, True), ("-07:00", False, ":", False, True),
    ("Z0700", True, "", False, True), ("-0700", False, "", False, True),
    ("Z07", True, "", False, False), ("-07", False, "", False, False),
)


class _Fields:
    """The calendar fields of a timestamp in its stored zone."""

    def __init__(self, ts: Timestamp) -> None:
        secs, self.nanos = divmod(ts.ns + ts.offset * NS, NS)
        days, sod = divmod(secs, 86_400)
        self.year, self.month, self.day = _civil_from_days(days)
        self.hour, rest = divmod(sod, 3600)
        self.minute, self.second = divmod(rest, 60)
        self.weekday = (days + 4) % 7  # 1970-01-01 was a Thursday
        self.yday = days - _days_from_civil(self.year, 1, 1) + 1
        self.offset = ts.offset
        self.ns = ts.ns

    def zone_name(self) -> str:
        """UTC, the local zone's abbreviation if the offset is the local one then, or ""."""
        if self.offset == 0:
            return "UTC"
        try:
            local = _time.localtime(self.ns // NS)
        except (OverflowError, OSError, ValueError):
            return ""
        return local.tm_zone if local.tm_gmtoff == self.offset else ""


def _zone(offset: int, use_z: bool, sep: str, with_seconds: bool, with_minutes: bool) -> str:
    """A numeric zone as Go writes it: the sign and hours from the offset in whole minutes
    (truncated toward zero), then minutes and seconds as the layout asks."""
    if use_z and offset == 0:
        return "Z"
    minutes = abs(offset) // 60
    sign = "-" if offset < 0 and minutes else "+"
    out = f"{sign}{minutes // 60:02d}"
    if with_minutes:
        out += f"{sep}{minutes % 60:02d}"
    if with_seconds:
        out += f"{sep}{abs(offset) % 60:02d}"
    return out


def _lower_next(layout: str, i: int) -> bool:
    return i < len(layout) and "a" <= layout[i] <= "z"


def _fraction(layout: str, i: int) -> int:
    """Length of a ``.000``/``.999`` (or comma) fraction layout at ``i``; 0 if none."""
    if layout[i] not in ".," or i + 1 >= len(layout) or layout[i + 1] not in "09":
        return 0
    digit = layout[i + 1]
    j = i + 1
    while j < len(layout) and layout[j] == digit:
        j += 1
    if j < len(layout) and layout[j].isdigit():
        return 0
    return j - i


def format_layout(ts: Timestamp, layout: str) -> str:
    """``ts`` rendered with the Go layout ``layout``."""
    f = _Fields(ts)
    out: list[str] = []
    i = 0
    n = len(layout)
    while i < n:
        rest = layout[i:]
        c = layout[i]
        piece: str | None = None
        width = 0
        if rest.startswith("January"):
            piece, width = _MONTHS[f.month - 1], 7
        elif rest.startswith("Jan") and not _lower_next(layout, i + 3):
            piece, width = _MONTHS[f.month - 1][:3], 3
        elif rest.startswith("Monday"):
            piece, width = _DAYS[f.weekday], 6
        elif rest.startswith("Mon") and not _lower_next(layout, i + 3):
            piece, width = _DAYS[f.weekday][:3], 3
        elif rest.startswith("MST"):
            piece, width = f.zone_name() or _zone(f.offset, False, "", False, True), 3
        elif rest.startswith("2006"):
            piece, width = f"{f.year:04d}" if f.year >= 0 else f"-{-f.year:04d}", 4
        elif rest.startswith("002"):
            piece, width = f"{f.yday:03d}", 3
        elif c == "0" and i + 1 < n and layout[i + 1] in "123456":
            value = {"1": f.month, "2": f.day, "3": f.hour % 12 or 12, "4": f.minute,
                     "5": f.second, "6": f.year % 100}[layout[i + 1]]
            piece, width = f"{value:02d}", 2
        elif rest.startswith("15"):
            piece, width = f"{f.hour:02d}", 2
        elif c == "1":
            piece, width = str(f.month), 1
        elif c == "2":
            piece, width = str(f.day), 1
        elif rest.startswith("__2"):
            piece, width = f"{f.yday:>3d}", 3
        elif rest.startswith("_2") and not rest.startswith("_2006"):
            piece, width = f"{f.day:>2d}", 2
        elif c == "3":
            piece, width = str(f.hour % 12 or 12), 1
        elif c == "4":
            piece, width = str(f.minute), 1
        elif c == "5":
            piece, width = str(f.second), 1
        elif rest.startswith("PM"):
            piece, width = ("PM" if f.hour >= 12 else "AM"), 2
        elif rest.startswith("pm"):
            piece, width = ("pm" if f.hour >= 12 else "am"), 2
        elif c in "Z-":
            for text, use_z, sep, secs, mins in _ZONES:
                if rest.startswith(text):
                    piece, width = _zone(f.offset, use_z, sep, secs, mins), len(text)
                    break
        elif c in ".,":
            width = _fraction(layout, i)
            if width:
                digits = f"{f.nanos:09d}"[:width - 1]
                if layout[i + 1] == "9":
                    digits = digits.rstrip("0")
                    piece = c + digits if digits else ""
                else:
                    piece = c + digits
        if piece is None:
            out.append(c)
            i += 1
        else:
            out.append(piece)
            i += width
    return "".join(out)
