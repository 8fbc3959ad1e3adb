"""Times as `restic ls -l` and `restic snapshots` show them, in the machine's zone."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from repofs.model.gotime import NS, Timestamp

SHOW = "from repofs.model.gotime import GO_ZERO; from repofs.ui.output import local_time; print(local_time(GO_ZERO))"


def _in_zone(zone: str, code: str) -> str:
    env = {**os.environ, "TZ": zone}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_local_time_is_the_wall_clock_of_this_zone() -> None:
    from repofs.ui.output import local_time

    for ns in (0, 1_700_000_000 * NS + 999_999_999, -1, 951_782_400 * NS):  # 2000-02-29
        expected = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns // NS))
        assert local_time(Timestamp(ns, 0)) == local_time(Timestamp(ns, -19800)) == expected


def test_gos_zero_time_is_shown_as_go_shows_it_and_never_fails() -> None:
    assert _in_zone("UTC", SHOW) == "0001-01-01 00:00:00"
    # Year 1 in a zone west of UTC falls in year 0, which Python's datetime cannot hold.
    assert _in_zone("America/New_York", SHOW) == "0001-01-01 00:00:00"
