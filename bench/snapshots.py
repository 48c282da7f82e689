"""Snapshot cost per epoch against total state size: is it flat when the state grows 10×?

Builds the job's keyed state in memory, as the job holds it: `shards` recipient shards
(`flows.shards.ShardLogic`, job settings) and the keyed merges (`MERGES`: the sums and
the models; `MergeLogic`, fed every shard's facts), by driving them with a seeded generated
stream (`bench/long_replay.py`'s `generate`: parsed events, bounces classified) in
event-time order, with partition progress to every shard as `route_to_shards` sends
it. Twice: for `--recipients` N and for `--factor`× N recipients, the same event-time
span and events per recipient (so the state is ~`factor`× larger).

Then, on each, epochs in which a fixed, small amount of new traffic arrives, and
every key's `snapshot()` is called as Bytewax does at the end of an epoch (recovery
on): *spread*, the next `--epoch-events` events of the stream (every shard gets
some), and *few*, the next `--epoch-events` events whose recipients fall in
`--few-shards` shards. A shard that heard only partition progress returns its last
bytes (no pickling). Reported per epoch: bytes pickled and milliseconds (wall and
CPU), in all and per pickled shard, for the shards and for the merges; the median
over `--epochs` epochs of each kind; and `growth`: the big state's epoch cost over
the small state's (flat: ~1; proportional to state: ~`factor`).

    python bench/snapshots.py [--recipients 5000] [--factor 10] [--days 2]
                              [--events-per-recipient 8] [--epoch-events 1000]
                              [--few-shards 4] [--epochs 3]

Prints a progress line every few seconds on stderr, a summary, and as the last line
one JSON object (`mailflow bench --snapshots` runs it).
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.long_replay import generate  # noqa: E402
from flows.settings import load_settings  # noqa: E402
from flows.shards import (  # noqa: E402
    BUDGET,
    MERGES,
    MergeLogic,
    ShardInput,
    ShardLogic,
    shard_key,
    shard_of,
)

PARTITION = "email.events/0"  # one input partition: its progress releases what is held
FEED = 500  # events per parsed batch, as a poll of the input hands them over
PROGRESS_S = 5.0


class KeyedState:
    """The job's recipient shards and merges, fed in event-time order."""

    def __init__(self, shards: int) -> None:
        self.settings = load_settings(environ={"MAILFLOW_KAFKA_BROKERS": "127.0.0.1:9",
                                               "MAILFLOW_SHARDS": str(shards)})
        self.shards = {shard_key(i): ShardLogic(self.settings, [PARTITION], True, None)
                       for i in range(shards)}
        self.merges = {key: MergeLogic(self.settings, shards, True, None) for key in MERGES}
        self.count = shards
        self.last: dict[str, bytes | None] = {}

    def feed(self, items: list[tuple]) -> set[str]:
        """One batch: events to their shards, progress to every shard; then every shard
        works through what it released and the merges take its facts. Shards with events."""
        if not items:
            return set()
        by_shard: dict[str, list] = {}
        for item in items:
            by_shard.setdefault(shard_key(shard_of(item[0].recipient_hash, self.count)),
                                []).append(item)
        progress = {PARTITION: max(item[0].ts_ms for item in items)}
        for key, logic in self.shards.items():
            outputs = logic.on_batch([ShardInput(key, by_shard.get(key, []), [], progress,
                                                 [], [])])[0]
            while logic.state.queued:  # all of it now: the budget is for live latency
                BUDGET.round_start = BUDGET.last_end = 0.0
                outputs += logic.on_notify()[0]
            for output in outputs:
                for merge_key, value in output.merges:
                    self.merges[merge_key].on_batch([value])
        return set(by_shard)

    def snapshot_all(self) -> dict[str, Any]:
        """Every key's snapshot, as at the end of an epoch: what was pickled, how long."""
        shards = self._snapshot(self.shards)
        merges = self._snapshot(self.merges)
        return {"shards": shards, "merges": merges}

    def _snapshot(self, logics: dict[str, Any]) -> dict[str, Any]:
        pickled, size, wall, cpu = 0, 0, 0.0, 0.0
        for key, logic in logics.items():
            w0, c0 = time.perf_counter(), time.process_time()
            data = logic.snapshot()
            wall += time.perf_counter() - w0
            cpu += time.process_time() - c0
            if data is not self.last.get(key):  # new bytes: this key pickled its state
                pickled += 1
                size += len(data or b"")
            self.last[key] = data
        return {"keys_pickled": pickled, "bytes": size, "ms": round(1000 * wall, 2),
                "cpu_ms": round(1000 * cpu, 2)}

    def state_bytes(self) -> dict[str, Any]:
        """Size of every key's state (a fresh pickle of each), and of the books inside
        the largest shard (which of them grows)."""
        sizes = {key: len(pickle.dumps((key, logic.state), protocol=pickle.HIGHEST_PROTOCOL))
                 for key, logic in self.shards.items()}
        biggest = max(sizes, key=sizes.__getitem__)
        merge_sizes = {key: len(logic.snapshot() or b"") for key, logic in self.merges.items()}
        merge = self.merges[max(merge_sizes, key=merge_sizes.__getitem__)]
        merge_parts = {n: v for n, v in vars(merge).items() if n in ("gate", "aggregates")}
        return {"shards_bytes": sum(sizes.values()),
                "shard_bytes_mean": round(statistics.mean(sizes.values())),
                "shard_bytes_max": sizes[biggest], "merges_bytes": sum(merge_sizes.values()),
                "largest_shard_books_bytes": books_bytes(vars(self.shards[biggest].state)),
                "largest_merge_books_bytes": books_bytes(merge_parts)}


def books_bytes(parts: dict[str, Any], top: int = 8) -> dict[str, int]:
    """Pickled bytes of each part of a key's state, one level into the parts that are
    objects (e.g. `analytics.attribution`); the `top` largest, largest first.

    >>> class Book:
    ...     def __init__(self):
    ...         self.big, self.small = list(range(1000)), 1
    >>> list(books_bytes({"book": Book(), "name": "a longer name"}))
    ['book.big', 'name', 'book.small']
    """
    sizes: dict[str, int] = {}
    for name, value in parts.items():
        inner = getattr(value, "__dict__", None)
        items = ([(f"{name}.{n}", v) for n, v in inner.items() if not n.startswith("_")]
                 if inner else [(name, value)])
        for label, part in items:
            try:
                sizes[label] = len(pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL))
            except Exception:  # noqa: BLE001  (a part that cannot be pickled alone)
                continue
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1])[:top])


def epoch(state: KeyedState, items: list[tuple]) -> dict[str, Any]:
    """Feed one epoch's new events, then snapshot every key."""
    touched: set[str] = set()
    for i in range(0, len(items), FEED):
        touched |= state.feed(items[i:i + FEED])
    snap = state.snapshot_all()
    shards = snap["shards"]
    # Pickled: the shards that got events, and any whose gate released an event held at
    # the last batch's progress (an event at the watermark waits for the next batch).
    n = max(shards["keys_pickled"], 1)
    return {"events": len(items), "shards_with_events": len(touched),
            "shards_pickled": shards["keys_pickled"], "shard_bytes": shards["bytes"],
            "shard_ms": shards["ms"], "shard_cpu_ms": shards["cpu_ms"],
            "bytes_per_pickled_shard": round(shards["bytes"] / n),
            "ms_per_pickled_shard": round(shards["ms"] / n, 3),
            "merge_bytes": snap["merges"]["bytes"], "merge_ms": snap["merges"]["ms"],
            "total_ms": round(shards["ms"] + snap["merges"]["ms"], 2),
            "total_bytes": shards["bytes"] + snap["merges"]["bytes"]}


def median_epoch(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the epochs (they differ by the traffic they got).

    >>> median_epoch([{"ms": 1.0, "events": 10}, {"ms": 3.0, "events": 10},
    ...               {"ms": 2.0, "events": 10}])
    {'ms': 2.0, 'events': 10, 'epochs': 3}
    """
    out: dict[str, Any] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    for key, value in out.items():
        if all(isinstance(run[key], int) for run in runs):
            out[key] = round(value)
    out["epochs"] = len(runs)
    return out


def measure(recipients: int, days: float, per_recipient: float, epoch_events: int,
            few: int, epochs: int, shards: int, seed: int) -> dict[str, Any]:
    """Build the state for `recipients`, then `epochs` epochs of each kind."""
    events = round(recipients * per_recipient)
    seconds = days * 86_400
    # The stream, then enough more of it for the epochs (the few-shard ones skip most).
    extra = epoch_events * epochs * (1 + shards / max(few, 1)) * 1.5
    t0 = time.perf_counter()
    items = generate(seed, events / seconds, seconds * (1 + extra / events), recipients)
    print(f"{recipients:,} recipients: generated and parsed {len(items):,} events in "
          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    state = KeyedState(shards)
    build, rest = items[:events], items[events:]
    del items
    t0 = last = time.perf_counter()
    for i in range(0, len(build), FEED):
        state.feed(build[i:i + FEED])
        if time.perf_counter() - last >= PROGRESS_S:
            last = time.perf_counter()
            print(f"{recipients:,} recipients: state built from {i + FEED:,}/{len(build):,} "
                  f"events", file=sys.stderr, flush=True)
    build_s = time.perf_counter() - t0
    result: dict[str, Any] = {
        "recipients": len({it[0].recipient_hash for it in build}),
        "events": len(build), "build_seconds": round(build_s, 1)}
    del build
    full = state.snapshot_all()  # the epoch before: every key changed
    result["full_snapshot"] = {"shard_bytes": full["shards"]["bytes"],
                               "shard_ms": full["shards"]["ms"],
                               "merge_bytes": full["merges"]["bytes"],
                               "merge_ms": full["merges"]["ms"]}
    result["state"] = state.state_bytes()
    few_keys = {shard_key(i) for i in range(few)}
    spread_runs, few_runs = [], []
    for _ in range(epochs):
        chunk, rest = rest[:epoch_events], rest[epoch_events:]
        spread_runs.append(epoch(state, chunk))
        picked, skipped = [], 0
        for item in rest:
            skipped += 1
            if shard_key(shard_of(item[0].recipient_hash, shards)) in few_keys:
                picked.append(item)
                if len(picked) == epoch_events:
                    break
        rest = rest[skipped:]
        few_runs.append(epoch(state, picked))
    result["epoch_spread"] = median_epoch(spread_runs)
    result["epoch_few_shards"] = median_epoch(few_runs)
    return result


def growth(small: dict[str, Any], big: dict[str, Any]) -> dict[str, Any]:
    """Big over small for the state and each epoch's cost (flat: ~1).

    >>> g = growth(
    ...     {"state": {"shards_bytes": 10}, "epoch_spread": {"total_ms": 2.0,
    ...      "total_bytes": 100}, "epoch_few_shards": {"total_ms": 1.0, "total_bytes": 10}},
    ...     {"state": {"shards_bytes": 100}, "epoch_spread": {"total_ms": 20.0,
    ...      "total_bytes": 1000}, "epoch_few_shards": {"total_ms": 1.5, "total_bytes": 12}})
    >>> g["state_bytes"], g["spread_ms"], g["few_shards_ms"], g["few_shards_bytes"]
    (10.0, 10.0, 1.5, 1.2)
    """
    def ratio(a: float, b: float) -> float | None:
        return round(b / a, 2) if a else None

    out = {"state_bytes": ratio(small["state"]["shards_bytes"], big["state"]["shards_bytes"])}
    for name, key in (("spread", "epoch_spread"), ("few_shards", "epoch_few_shards")):
        out[f"{name}_ms"] = ratio(small[key]["total_ms"], big[key]["total_ms"])
        out[f"{name}_bytes"] = ratio(small[key]["total_bytes"], big[key]["total_bytes"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=5000, help="the small state's")
    parser.add_argument("--factor", type=int, default=10, help="the big state's recipients "
                        "and events over the small one's (default 10)")
    parser.add_argument("--days", type=float, default=2.0, help="event-time span of the "
                        "stream that builds the state (default 2)")
    parser.add_argument("--events-per-recipient", dest="per_recipient", type=float,
                        default=8.0)
    parser.add_argument("--epoch-events", dest="epoch_events", type=int, default=1000,
                        help="new events in each measured epoch (default 1,000)")
    parser.add_argument("--few-shards", dest="few", type=int, default=4,
                        help="shards the 'few' epochs' events fall in (default 4)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each kind (median)")
    parser.add_argument("--shards", type=int, default=None,
                        help="recipient shards (default: the job's, MAILFLOW_SHARDS or 64)")
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args(argv)
    shards = args.shards or load_settings(
        environ={"MAILFLOW_KAFKA_BROKERS": "127.0.0.1:9",
                 **{k: v for k, v in os.environ.items() if k == "MAILFLOW_SHARDS"}}).shards
    if min(args.recipients, args.factor, args.epoch_events, args.few, args.epochs) < 1:
        parser.error("sizes must be positive")
    report: dict[str, Any] = {"bench": "snapshots", "shards": shards, "merges": len(MERGES),
                              "cores": os.cpu_count(), "load_average_1m": [
                                  round(os.getloadavg()[0], 1)]}
    BUDGET.slice_s = 3600.0
    for name, recipients in (("small", args.recipients),
                             ("big", args.recipients * args.factor)):
        report[name] = result = measure(recipients, args.days, args.per_recipient,
                                        args.epoch_events, min(args.few, shards), args.epochs,
                                        shards, args.seed)
        state, spread, few = (result["state"], result["epoch_spread"],
                              result["epoch_few_shards"])
        print(f"{name}: {result['recipients']:,} recipients, {result['events']:,} events: "
              f"shards hold {state['shards_bytes'] / 1e6:.1f} MB, merges "
              f"{state['merges_bytes'] / 1e6:.1f} MB; an epoch of {spread['events']:,} events "
              f"to {spread['shards_with_events']} shards pickles "
              f"{spread['total_bytes'] / 1e6:.1f} MB in {spread['total_ms']:.0f} ms; to "
              f"{few['shards_with_events']} shards {few['total_bytes'] / 1e6:.1f} MB in "
              f"{few['total_ms']:.0f} ms ({few['ms_per_pickled_shard']:.1f} ms per pickled "
              f"shard)", file=sys.stderr, flush=True)
    report["growth"] = growth(report["small"], report["big"])
    report["load_average_1m"].append(round(os.getloadavg()[0], 1))
    print(f"growth (big over small): {report['growth']}", file=sys.stderr)
    print(orjson.dumps(report).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
