"""operators/batching.py: rows leave in full batches or when they have waited long enough."""

from operators.batching import RowBatcher


def test_full_batches_leave_at_once_and_nothing_is_lost():
    batcher = RowBatcher(max_rows=4, max_age_s=10)
    out = batcher.add(range(10), now=0.0)
    assert out == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert batcher.pending == 2
    assert batcher.flush() == [[8, 9]]
    assert batcher.flush() == []


def test_a_quiet_stream_releases_rows_by_age():
    batcher = RowBatcher(max_rows=1000, max_age_s=0.5)
    assert batcher.add([1], now=100.0) == []
    assert batcher.add([2], now=100.4) == []
    assert batcher.flush_due(now=100.49) == []
    assert batcher.due_at() == 100.5
    assert batcher.flush_due(now=100.5) == [[1, 2]]
    assert batcher.due_at() is None
    # the age restarts with the next row, not with the last flush
    batcher.add([3], now=200.0)
    assert batcher.due_at() == 200.5


def test_snapshot_round_trip_keeps_rows_and_age():
    batcher = RowBatcher(max_rows=10, max_age_s=1)
    batcher.add(["a", "b"], now=5.0)
    rows, since = batcher.snapshot()
    restored = RowBatcher(10, 1, rows, since)
    assert restored.pending == 2 and restored.due_at() == 6.0
    rows.append("c")  # the snapshot is a copy
    assert batcher.pending == 2
