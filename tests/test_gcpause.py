"""The cycle collector pause and the shorter GIL switch interval used by imports and exports: counted across
overlapping users, restored exactly."""

import gc
import sys
import threading

import pytest

from annotate.gcpause import collector_paused, switch_interval


def test_pause_restores_an_enabled_collector():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_overlapping_pauses_end_with_the_last_one():
    inner_started, outer_may_end, outer_ended = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def outer():
        with collector_paused():
            inner_started.wait(5)
            outer_may_end.set()
        outer_ended.set()

    t = threading.Thread(target=outer)
    t.start()
    with collector_paused():
        inner_started.set()
        outer_may_end.wait(5)
        outer_ended.wait(5)
        seen["after_outer_ended"] = gc.isenabled()  # the other job is done; this one still runs
    t.join(5)
    assert seen["after_outer_ended"] is False
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_an_error_inside_still_restores():
    try:
        with collector_paused():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert gc.isenabled()


def test_switch_interval_is_shortened_while_held_and_restored_after():
    before = sys.getswitchinterval()
    with switch_interval(before / 10):
        assert sys.getswitchinterval() == pytest.approx(before / 10)
    assert sys.getswitchinterval() == before


def test_overlapping_switch_intervals_keep_the_shortest_and_restore_the_first_ones_original():
    before = sys.getswitchinterval()
    inner_started, outer_may_end, outer_ended = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def outer():
        with switch_interval(before / 10):
            inner_started.set()
            outer_may_end.wait(5)
        outer_ended.set()

    t = threading.Thread(target=outer)
    t.start()
    inner_started.wait(5)
    with switch_interval(before / 2):  # a longer one does not lengthen the other job's interval
        seen["both"] = sys.getswitchinterval()
        outer_may_end.set()
        outer_ended.wait(5)
        seen["after_outer_ended"] = sys.getswitchinterval()  # this job still runs
    t.join(5)
    assert seen["both"] == pytest.approx(before / 10)
    assert seen["after_outer_ended"] == pytest.approx(before / 10)
    assert sys.getswitchinterval() == before


def test_an_error_inside_still_restores_the_switch_interval():
    before = sys.getswitchinterval()
    with pytest.raises(RuntimeError), switch_interval(before / 10):
        raise RuntimeError("boom")
    assert sys.getswitchinterval() == before
