"""operators/ordering.py and the pipeline's `order_events` step: event-time order however input
is batched, nothing released above the watermark, snapshots that later work does not touch."""

from __future__ import annotations

import copy
import math
import pickle
import random

import pytest

from operators.ordering import EventTimeGate

SILENT = "silent/0"  # named as an input partition, never shows an event


def position(item: tuple[str, int]) -> tuple[str, int]:
    """Tiebreak of the gate-level tests: items are (partition, offset)."""
    return item


def partition_streams(rnd: random.Random, max_step: int) -> dict[str, list[tuple[int, tuple]]]:
    """Per partition, `(ts, (partition, offset))` in strictly increasing time (as a Kafka
    partition is read); partitions share times often, so ties across partitions abound."""
    streams = {}
    for n, name in enumerate(("clicks/0", "deliveries/0", "deliveries/1", "opens/0")):
        ts = rnd.randrange(0, 2000) if n == 3 else rnd.randrange(5)  # opens/0 far ahead
        stream = []
        for offset in range(rnd.randrange(0, 250)):
            ts += rnd.randint(1, max_step)
            stream.append((ts, (name, offset)))
        streams[name] = stream
    return streams


def play(gate: EventTimeGate, streams: dict[str, list[tuple[int, tuple]]], rnd: random.Random
         ) -> tuple[list, list[list]]:
    """Feed the streams in random batches (chunks of random partitions, shuffled), sometimes
    release without input; check every step against a watermark computed here.
    Returns (arrival order, releases)."""
    names = [*streams, SILENT]
    pos = dict.fromkeys(streams, 0)
    idle = {p for p, stream in streams.items() if not stream}
    newest: dict[str, int] = {}
    arrived: list = []
    releases: list[list] = []
    watermark = -1
    first = True
    while True:
        live = [p for p in streams if pos[p] < len(streams[p])]
        if not live and SILENT in idle:
            break
        if rnd.random() < 0.05 or not live:
            idle.add(SILENT)  # it may go idle at any time: it has nothing to hold back
        batch, progress = [], {}
        for p in rnd.sample(live, rnd.randint(1, len(live))) if live else []:
            chunk = streams[p][pos[p]:pos[p] + rnd.randint(1, 60)]
            pos[p] += len(chunk)
            batch += chunk
            progress[p] = newest[p] = chunk[-1][0]
            if pos[p] == len(streams[p]):
                idle.add(p)  # caught up
        rnd.shuffle(batch)
        arrived += batch
        releases.append(gate.add(batch, progress, idle, names if first else ()))
        first = False
        if rnd.random() < 0.3:
            releases.append(gate.release(idle))

        busy = [newest.get(p, -1) for p in names if p not in idle]
        if busy:
            watermark = max(watermark, min(busy))
        limit = watermark + gate.slack_ms if busy else math.inf
        released = [pair for release in releases for pair in release]
        assert all(ts <= limit for ts, _item in released)
        # and nothing at or below the limit is still held
        assert gate.held == sum(ts > limit for ts, _item in arrived)
        assert len(released) + gate.held == len(arrived)
    releases.append(gate.flush())
    assert gate.held == 0
    return arrived, releases


@pytest.mark.parametrize("max_step", [2, 60])  # dense and sparse ties in event time
@pytest.mark.parametrize("seed", range(40))
def test_random_batching_releases_in_time_then_source_order(seed: int, max_step: int) -> None:
    rnd = random.Random(seed)
    streams = partition_streams(rnd, max_step)
    arrived, releases = play(EventTimeGate(tiebreak=position), streams, rnd)
    reference = sorted(arrived, key=lambda pair: (pair[0], position(pair[1])))
    assert [pair for release in releases for pair in release] == reference
    # and the order does not depend on the batching or arrival: replay, batched otherwise
    _arrived, again = play(EventTimeGate(tiebreak=position), streams, random.Random(seed + 1000))
    assert [pair for release in again for pair in release] == reference


@pytest.mark.parametrize("seed", range(20))
def test_without_tiebreak_equal_times_keep_arrival_order(seed: int) -> None:
    rnd = random.Random(seed)
    arrived, releases = play(EventTimeGate(), partition_streams(rnd, 2), rnd)
    assert [pair for release in releases for pair in release] == sorted(
        arrived, key=lambda pair: pair[0])  # sorted() is stable: arrival order among ties


@pytest.mark.parametrize("seed", range(20))
def test_slack_releases_each_batch_sorted_and_never_beyond_watermark_plus_slack(seed: int
                                                                               ) -> None:
    rnd = random.Random(seed)
    arrived, releases = play(EventTimeGate(slack_ms=15, tiebreak=position),
                             partition_streams(rnd, 3), rnd)
    for release in releases:
        assert release == sorted(release, key=lambda pair: (pair[0], position(pair[1])))
    assert sorted(pair for release in releases for pair in release) == sorted(arrived)


def test_a_long_backlog_stays_in_few_runs() -> None:
    """What keeps a release cheap with 100k held: it bisects O(log held) sorted runs."""
    gate = EventTimeGate(tiebreak=position)
    for batch in range(100):
        gate.add([(batch * 7 + i % 13, ("deliveries/0", batch * 1000 + i)) for i in range(1000)],
                 {"deliveries/0": batch * 7 + 12}, set(), ["deliveries/0", "opens/0"])
    assert gate.held == 100_000
    assert len(gate._runs) <= math.log2(100) + 1
    out = gate.flush()
    assert out == sorted(out, key=lambda pair: (pair[0], pair[1]))


def test_snapshot_is_a_copy_later_work_does_not_touch() -> None:
    gate = EventTimeGate(slack_ms=5, tiebreak=position)
    gate.add([(10, ("a/0", 0)), (30, ("a/0", 1))], {"a/0": 30}, set(), ["a/0", "b/0"])
    snapshot = pickle.loads(pickle.dumps(copy.copy(gate)))
    before = pickle.dumps(copy.copy(gate))
    copy_ = copy.copy(gate)
    assert gate.add([(20, ("b/0", 0))], {"b/0": 20}, set()) == [(10, ("a/0", 0)),
                                                                 (20, ("b/0", 0))]
    gate.add([(40, ("b/0", 1))], {"b/0": 40}, set())
    assert pickle.dumps(copy_) == before
    # the snapshot resumes where the gate was
    assert snapshot.held == 2
    assert snapshot.add([(20, ("b/0", 0))], {"b/0": 20}, set()) == [(10, ("a/0", 0)),
                                                                     (20, ("b/0", 0))]
    assert snapshot.flush() == [(30, ("a/0", 1))]


def test_snapshot_taken_before_the_runs_resumes() -> None:
    """Recovery stores from before the sorted runs held a heap of (ts, tiebreak, seq, item)."""
    gate = EventTimeGate.__new__(EventTimeGate)
    heap = [(3, ("a/0", 1), 1, ("a/0", 1)), (5, ("a/0", 2), 2, ("a/0", 2)),
            (3, ("a/0", 0), 0, ("a/0", 0))]
    gate.__setstate__((None, {"_heap": heap, "_progress": {"a/0": 5}, "_known": {"a/0", "b/0"},
                              "_seq": 3, "watermark": -1, "slack_ms": 0, "tiebreak": position}))
    assert gate.held == 3
    assert gate.add([(4, ("b/0", 0))], {"b/0": 4}, set()) == [
        (3, ("a/0", 0)), (3, ("a/0", 1)), (4, ("b/0", 0))]
    assert gate.flush() == [(5, ("a/0", 2))]


def test_a_strict_gate_keeps_equal_times_together_however_progress_arrives() -> None:
    """Strict: an item at the watermark waits, since another partition may still bring one at
    the same time; only then does the order among equal times not depend on arrival."""
    gate = EventTimeGate(tiebreak=position, strict=True)
    assert gate.add([(5, ("b/0", 0))], {"b/0": 5}, set(), ["a/0", "b/0"]) == []
    assert gate.add([(3, ("a/0", 0))], {"a/0": 5}, set()) == [(3, ("a/0", 0))]
    assert gate.open_below == 5
    assert gate.add([(5, ("a/0", 1))], {"a/0": 6}, set()) == []  # b/0 may still bring a 5
    assert gate.add([], {"b/0": 7}, set()) == [(5, ("a/0", 1)), (5, ("b/0", 0))]
    assert gate.add([(9, ("a/0", 2))], {"a/0": 9}, {"a/0", "b/0"}) == [(9, ("a/0", 2))]
