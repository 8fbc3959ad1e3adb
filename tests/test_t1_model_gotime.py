"""Go RFC 3339 time strings: vectors, round trips, agreement with datetime.

restic's own output is checked in test_t1_model_tree.py (node times in several
zones) and test_t1_model_snapshot.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from repofs.model import gotime
from repofs.model.gotime import GO_ZERO, NS, Timestamp

VECTORS = [
    ("1970-01-01T00:00:00Z", 0, 0),
    ("2020-09-13T12:26:40Z", 1_600_000_000 * NS, 0),
    ("2026-11-26T07:06:22.91532108Z", 1_795_676_782_915_321_080, 0),
    ("1969-12-31T23:59:59.999999999Z", -1, 0),
    ("2020-09-13T17:56:40.5+05:30", 1_600_000_000 * NS + NS // 2, 19_800),
    ("2020-09-13T08:56:40.000000001-03:30", 1_600_000_000 * NS + 1, -12_600),
    ("0001-01-01T00:00:00Z", -62_135_596_800 * NS, 0),
    ("0000-01-01T00:00:00Z", -62_167_219_200 * NS, 0),
    ("9999-12-31T23:59:59.999999999Z", 253_402_300_800 * NS - 1, 0),
]


@pytest.mark.parametrize(("text", "ns", "offset"), VECTORS)
def test_vectors(text: str, ns: int, offset: int) -> None:
    assert gotime.parse(text) == Timestamp(ns, offset)
    assert gotime.format(Timestamp(ns, offset)) == text


def test_go_zero() -> None:
    assert gotime.format(GO_ZERO) == "0001-01-01T00:00:00Z"


def test_parse_normalises_spelling() -> None:
    # Go reads these; it writes the fraction without trailing zeros.
    assert gotime.format(gotime.parse("2020-09-13T12:26:40.500000000Z")) == "2020-09-13T12:26:40.5Z"
    assert gotime.format(gotime.parse("2020-09-13T12:26:40.000Z")) == "2020-09-13T12:26:40Z"
    # "+00:00" is the same instant and offset as "Z", and Go writes "Z".
    assert gotime.parse("2020-09-13T12:26:40+00:00") == gotime.parse("2020-09-13T12:26:40Z")


@pytest.mark.parametrize(
    "bad",
    [
        "2020-09-13 12:26:40Z",
        "2020-09-13T12:26:40",
        "2020-09-13T12:26:40.Z",
        "2020-09-13T12:26:40.1234567890Z",
        "2020-02-30T00:00:00Z",
        "2021-02-29T00:00:00Z",
        "2020-13-01T00:00:00Z",
        "2020-09-13T24:00:00Z",
        "2020-09-13T12:60:00Z",
        "2020-09-13T12:26:40+0530",
        "2020-09-13T12:26:40+24:00",
        "20-09-13T12:26:40Z",
    ],
)
def test_parse_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        gotime.parse(bad)


def test_format_rejects_years_outside_go_json_range() -> None:
    with pytest.raises(ValueError):
        gotime.format(Timestamp(253_402_300_800 * NS, 0))  # 10000-01-01
    with pytest.raises(ValueError):
        gotime.format(Timestamp(-62_167_219_200 * NS - 1, 0))  # year -1


def test_offset_seconds_are_truncated_like_go() -> None:
    # Local mean time zones have offsets in seconds; Go prints whole minutes.
    ts = Timestamp(0, 5 * 3600 + 53 * 60 + 28)
    assert gotime.format(ts) == "1970-01-01T05:53:28+05:53"
    assert gotime.format(Timestamp(0, -30)) == "1969-12-31T23:59:30+00:00"


def test_fix_year_clamps_like_restic() -> None:
    big = gotime.parse("9999-06-01T10:00:00+02:00")
    beyond = Timestamp(big.ns + 731 * 86_400 * NS, 7200)  # 10001-06-01, 10000 is a leap year
    with pytest.raises(ValueError):
        gotime.format(beyond)
    assert gotime.fix_year(beyond) == big
    leap = gotime.parse("0004-02-29T00:00:00Z")
    before_zero = Timestamp(leap.ns - (8 * 365 + 2) * 86_400 * NS, 0)  # 29 Feb of year -4
    assert gotime.format(gotime.fix_year(before_zero)) == "0000-02-29T00:00:00Z"
    feb29 = Timestamp(big.ns + 273 * 86_400 * NS, 7200)  # 10000-02-29; 9999 has no 29 Feb
    assert gotime.format(gotime.fix_year(feb29)) == "9999-03-01T10:00:00+02:00"
    assert gotime.fix_year(GO_ZERO) is GO_ZERO


offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(lambda m: m * 60)
instants = st.integers(
    min_value=-62_135_596_800 * NS + 86_400 * NS,  # 0001-01-02, any offset stays in range
    max_value=253_402_300_800 * NS - 86_400 * NS - 1,  # 9999-12-30
)


@given(instants, offsets)
def test_round_trip(ns: int, offset: int) -> None:
    ts = Timestamp(ns, offset)
    text = gotime.format(ts)
    assert gotime.parse(text) == ts
    assert gotime.format(gotime.parse(text)) == text


@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(min_value=0, max_value=999),
    offsets,
)
def test_agrees_with_datetime(dt: datetime, extra_ns: int, offset: int) -> None:
    aware = dt.replace(tzinfo=timezone(timedelta(seconds=offset)))
    ts = gotime.parse(aware.isoformat())
    assert ts.to_datetime() == aware
    assert ts.to_datetime().utcoffset() == timedelta(seconds=offset)
    with_ns = Timestamp(ts.ns + extra_ns, offset)
    assert with_ns.to_datetime() == aware  # the sub-microsecond part is dropped

    frac = f"{dt.microsecond * 1000 + extra_ns:09d}".rstrip("0")
    zone = "Z" if offset == 0 else aware.isoformat()[-6:]
    expected = (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
        + (f".{frac}" if frac else "")
        + zone
    )
    assert gotime.format(with_ns) == expected


def test_now_local_uses_the_local_zone() -> None:
    ts = gotime.now_local()
    local = datetime.fromtimestamp(ts.ns // NS).astimezone()
    assert ts.offset == local.utcoffset().total_seconds()
    assert Timestamp.from_ns(ts.ns, ts.offset) == ts
    assert ts.seconds == ts.ns / NS
