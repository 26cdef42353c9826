"""The cycle collector pause, the shorter GIL switch interval and the kept heap used by imports and exports:
counted across overlapping users, restored when the last one ends."""

import gc
import sys
import threading

import pytest

from annotate import gcpause
from annotate.gcpause import collector_paused, heap_kept, switch_interval


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


class _Libc:
    """Records what heap_kept asks of glibc."""

    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("malloc_trim", pad))
        return 1


@pytest.fixture
def libc(monkeypatch):
    fake = _Libc()
    monkeypatch.setattr(gcpause, "_glibc", lambda: fake)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "262144")
    return fake


def test_heap_kept_while_held_then_thresholds_back_and_memory_handed_back(libc):
    trim, mmap = gcpause.M_TRIM_THRESHOLD, gcpause.M_MMAP_THRESHOLD
    with heap_kept():
        held = list(libc.calls)
    assert held == [("mallopt", trim, 64 << 20), ("mallopt", mmap, 32 << 20)]
    # The environment's value where it sets one, else the kept value stays; then the free memory goes back.
    assert libc.calls[2:] == [("mallopt", mmap, 262144), ("malloc_trim", 0)]


def test_overlapping_heap_keepers_end_with_the_last_one(libc):
    with pytest.raises(RuntimeError), heap_kept():
        with heap_kept():
            pass
        assert [c[0] for c in libc.calls] == ["mallopt", "mallopt"]  # the outer one still runs
        raise RuntimeError("boom")
    assert [c[0] for c in libc.calls] == ["mallopt"] * 3 + ["malloc_trim"]


def test_heap_kept_is_a_no_op_without_glibc(monkeypatch):
    monkeypatch.setattr(gcpause, "_glibc", lambda: None)
    with heap_kept():
        pass


def test_heap_kept_on_this_libc():
    """The real thing: glibc's calls succeed (elsewhere nothing is called)."""
    with heap_kept():
        data = [bytes(1000) for _ in range(10_000)]
    assert len(data) == 10_000
