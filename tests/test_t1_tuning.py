"""The interpreter settings of long operations hold for the body and come back after it."""

from __future__ import annotations

import gc
import sys

import pytest

from repofs.tuning import tuned


def test_settings_hold_inside_and_are_restored() -> None:
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    with tuned(interval / 10, thresholds[0] * 10):
        assert sys.getswitchinterval() == pytest.approx(interval / 10)
        assert gc.get_threshold() == (thresholds[0] * 10, *thresholds[1:])
        with tuned(interval * 10, 1):  # never a longer interval nor a lower threshold
            assert sys.getswitchinterval() == pytest.approx(interval / 10)
            assert gc.get_threshold()[0] == thresholds[0] * 10
        assert gc.get_threshold()[0] == thresholds[0] * 10
    assert (sys.getswitchinterval(), gc.get_threshold()) == (interval, thresholds)


def test_restored_after_an_error() -> None:
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    with pytest.raises(KeyError), tuned(interval / 2):
        raise KeyError("x")
    assert (sys.getswitchinterval(), gc.get_threshold()) == (interval, thresholds)


def test_none_leaves_a_setting_alone() -> None:
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    with tuned(None, None):
        assert (sys.getswitchinterval(), gc.get_threshold()) == (interval, thresholds)
