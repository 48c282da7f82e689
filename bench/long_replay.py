"""Long sparse replay vs short dense burst: does housekeeping cost grow with event time?

Generates two seeded streams with `mailflow.generator.TrafficGenerator`:

- **long**: many days of modest traffic (default 10 days, ~600k events, 50k recipients),
  the shape of a backfill of history;
- **dense**: the same number of recipients, ~200k events within one hour (the event
  rate of `mailflow bench`, and its 30-minute label window, so labels mature and
  the models learn in both cases),

parses them (`schemas.events.EventParser`, bounces classified as the job does), and
drives each through `operators.analytics.EngagementAnalytics.apply` in event-time
order, in-process (no broker, no ClickHouse). Only `apply`/`flush` are timed.
Prints events/s, CPU µs per event (`time.process_time`), the rows each produced,
and as the last line one JSON object; the goal is `dense_over_long` <= 2.

    python bench/long_replay.py [--days 10] [--events 600000] [--recipients 50000]
                                [--dense-events 200000] [--only long|dense] [--profile]

The same streams through the whole job (broker, Bytewax, chDB):
`mailflow bench --long-replay --end-to-end`.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mailflow.bench import replay_streams  # noqa: E402  (the shapes `--end-to-end` uses too)
from mailflow.generator import TrafficGenerator  # noqa: E402
from operators.analytics import EngagementAnalytics, empty_batch  # noqa: E402
from operators.bounces import BounceClassifier  # noqa: E402
from schemas.events import Event, EventParser  # noqa: E402
from schemas.hashing import RecipientHasher  # noqa: E402

START = 1_795_000_000.0
CHUNK = 256  # events per apply() call, as the job's analytics step hands them over


def generate(seed: int, rate: float, seconds: float, recipients: int) -> list[tuple]:
    """Parsed (event, bounce verdict) pairs in event-time order."""
    gen = TrafficGenerator(seed=seed, start=START, recipients=recipients)
    parse = EventParser(RecipientHasher(b"bench"),
                        now=lambda: START + seconds + 86_400).parse
    classify = BounceClassifier().classify
    items: list[tuple] = []
    for i, raw in enumerate(gen.events(rate, seconds)):
        ev = parse(raw.value, raw.topic, 0, i)
        if isinstance(ev, Event):
            bounce = (classify(ev.smtp_code, ev.smtp_status, ev.diagnostic, ev.bounce_kind)
                      if ev.type in ("bounce", "deferred") else None)
            items.append((ev, bounce))
    items.sort(key=lambda item: item[0].ts_ms)  # stable: the generator's order within a ms
    return items


def replay(items: list[tuple], label_window_s: int, profile: bool = False) -> dict:
    analytics = EngagementAnalytics(label_window_s=label_window_s)
    rows = {field: 0 for field in empty_batch()._fields}
    profiler = cProfile.Profile() if profile else None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    for i in range(0, len(items), CHUNK):
        out = analytics.apply(items[i:i + CHUNK])
        for field, value in zip(out._fields, out, strict=True):
            rows[field] += len(value)
    out = analytics.flush()
    if profiler is not None:
        profiler.disable()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    for field, value in zip(out._fields, out, strict=True):
        rows[field] += len(value)
    n = len(items)
    span_s = (items[-1][0].ts_ms - items[0][0].ts_ms) / 1000 if items else 0.0
    result = {
        "events": n,
        "deliveries": sum(1 for ev, _ in items if ev.type == "delivered"),
        "recipients": len({ev.recipient_hash for ev, _ in items}),
        "event_time_days": round(span_s / 86_400, 2),
        "label_window_s": label_window_s,
        "seconds": round(wall, 2),
        "events_per_s": round(n / wall) if wall else 0,
        "cpu_us_per_event": round(cpu / max(n, 1) * 1e6, 1),
        "rows": rows,
    }
    if profiler is not None:
        for key in ("cumulative", "tottime"):
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats(key).print_stats(20)
            print(f"--- profile, top 20 by {key} ---", file=sys.stderr)
            print(text.getvalue(), file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=10.0, help="event-time span of the long case")
    parser.add_argument("--events", type=int, default=600_000, help="about this many, long case")
    parser.add_argument("--recipients", type=int, default=50_000)
    parser.add_argument("--dense-events", type=int, default=200_000,
                        help="about this many within one hour, dense case")
    parser.add_argument("--label-window-s", type=int, default=86_400,
                        help="long case (the job's default)")
    parser.add_argument("--dense-label-window-s", type=int, default=1800,
                        help="dense case (as `mailflow bench` runs the job)")
    parser.add_argument("--only", choices=("long", "dense"), default=None)
    parser.add_argument("--profile", action="store_true",
                        help="cProfile each replay; top 20 by cumulative and tottime on stderr")
    args = parser.parse_args()

    shapes = replay_streams(args.days, args.events, args.recipients, args.dense_events)
    cases = {"long": (*shapes["long"], args.label_window_s),
             "dense": (*shapes["dense"], args.dense_label_window_s)}
    report: dict = {"bench": "long_replay", "cores": os.cpu_count()}
    for name, (seed, rate, seconds, label_window_s) in cases.items():
        if args.only and name != args.only:
            continue
        t0 = time.perf_counter()
        items = generate(seed, rate, seconds, args.recipients)
        print(f"{name}: generated and parsed {len(items):,} events in "
              f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
        if args.profile:
            print(f"=== {name} ===", file=sys.stderr)
        report[name] = result = replay(items, label_window_s, args.profile)
        print(f"{name}: {result['events']:,} events over {result['event_time_days']} days: "
              f"{result['events_per_s']:,} events/s, {result['cpu_us_per_event']} µs CPU "
              f"per event", file=sys.stderr)
        del items
    if "long" in report and "dense" in report:
        report["dense_over_long"] = round(report["dense"]["events_per_s"]
                                          / max(report["long"]["events_per_s"], 1), 2)
    print(orjson.dumps(report).decode())


if __name__ == "__main__":
    main()
