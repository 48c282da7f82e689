"""flows/stats.py: full garbage collections are counted and timed."""

from __future__ import annotations

import gc

from flows.stats import JobStats


def test_full_collections_are_counted_and_timed():
    stats = JobStats()
    gc.callbacks.append(stats.watch_gc)
    try:
        gc.collect(1)  # a young collection is not counted
        assert stats.gc_full_collections == 0
        gc.collect()
    finally:
        gc.callbacks.remove(stats.watch_gc)
    assert stats.gc_full_collections == 1 and stats.gc_pause_max_s > 0
    assert "mailflow_gc_full_collections_total 1" in stats.prometheus()
