"""What convergence prediction costs per event: journeys + propensity + cohort forecast.

Runs the job's analytics in-process (`EngagementAnalytics`, events in event-time order,
as `bench/convergence.py --engine` does) twice over the same events: with the flow
journeys on, and with them off (`EngagementAnalytics(journeys=False)`: no journey facts,
so no propensities and no cohort forecasts; everything else the same). The difference in
CPU time (`time.process_time`, best of `--repeat` runs each) divided by the events is what
convergence prediction adds per event.

Traffic mixes (`--mix`, repeatable; default all three):

- ``journeys``: the journey simulator of `mailflow/journeys.py` alone (4 flows, ~every
  event belongs to a journey: the worst case);
- ``newsletters``: the same plus each sender's daily newsletter to `--newsletters` of
  its list (non-flow mail, as real lists get);
- ``generator``: the standard traffic of `mailflow/generator.py` (campaigns and flow
  steps of 4 senders, at `--rate` events per second of event time) merged with the
  journey simulator's: a mix closer to real traffic.

    python bench/convergence_cost.py [--days 3] [--entrants 200] [--mix journeys ...]
                                     [--repeat 2] [--profile] [--json]

`--profile` adds a cProfile of one run with journeys per mix (the top 15 functions of
the journeys, propensity and forecast code and the glue that feeds them, by own time).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mailflow.generator import TrafficGenerator  # noqa: E402
from mailflow.journeys import DAY_MS, JourneySimulator  # noqa: E402

START = 1_795_219_200.0  # 2026-11-21T00:00:00Z, as bench/convergence.py
MIXES = ("journeys", "newsletters", "generator")
#: What the profile keeps: the convergence-prediction code and the glue that feeds it.
PROFILE_FILTER = (r"journeys\.py|propensity\.py|forecast\.py|river|_journeys|_move|"
                  r"scores_of|JourneyFact|analytics\.py.*\((apply|advance)\)")


def traffic(mix: str, days: int, entrants: int, seed: int, newsletters: float,
            rate: float) -> tuple[list, int, int]:
    """The events of one mix, parsed and classified as the job does, in event-time order;
    and the window (days) of the flows; and how many are of a flow."""
    from operators.bounces import BounceClassifier
    from schemas.events import Event, EventParser
    from schemas.hashing import DEV_HASH_KEY, RecipientHasher

    sim = JourneySimulator(seed=seed, start=START, days=days, entrants_per_day=entrants,
                           newsletters=newsletters if mix == "newsletters" else 0.0)
    raws = list(sim.events())
    if mix == "generator":
        gen = TrafficGenerator(seed=seed, start=START)
        raws += list(gen.events(rate, days * 86_400))
    parse = EventParser(RecipientHasher(DEV_HASH_KEY),
                        now=lambda: sim.end_ms / 1000 + 30 * 86_400).parse
    classify = BounceClassifier().classify
    items = []
    for i, raw in enumerate(raws):
        ev = parse(raw.value, raw.topic, 0, i)
        if isinstance(ev, Event):
            bounce = (classify(ev.smtp_code, ev.smtp_status, ev.diagnostic, ev.bounce_kind)
                      if ev.type in ("bounce", "deferred") else None)
            items.append((ev, bounce))
    items.sort(key=lambda it: it[0].ts_ms)  # stable: ties keep the generators' order
    in_flows = sum(1 for ev, _ in items if ev.flow_id)
    return items, int(round(sim.window_ms / DAY_MS)), in_flows


def run(items: list, window_days: int, journeys: bool, profile: cProfile.Profile | None = None
        ) -> tuple[float, Any]:
    """CPU seconds of the analytics over `items`, and the batch they wrote."""
    from operators.analytics import EngagementAnalytics, empty_batch

    analytics = EngagementAnalytics(label_window_s=86_400, journeys=journeys)
    analytics.aggregates.configure_flows(0.05, 0.05, window_days * 86_400, 0.2)
    analytics.recipients.journeys.set_window(window_days * 86_400)
    out = empty_batch()
    started = time.process_time()
    if profile is not None:
        profile.enable()
    analytics.apply(items, out)
    out_flush = analytics.flush()
    if profile is not None:
        profile.disable()
    seconds = time.process_time() - started
    out.forecasts.extend(out_flush.forecasts)
    return seconds, out


def measure(mix: str, args: argparse.Namespace) -> dict[str, Any]:
    items, window_days, in_flows = traffic(mix, args.days, args.entrants, args.seed,
                                           args.newsletters, args.rate)
    n = len(items)
    best = {}
    outputs = {}
    for journeys in (False, True):
        times = []
        for _ in range(args.repeat):
            seconds, out = run(items, window_days, journeys)
            times.append(seconds)
        best[journeys] = min(times)
        outputs[journeys] = out
    out = outputs[True]
    added = best[True] - best[False]
    result = {
        "mix": mix, "events": n, "flow_events": in_flows,
        "propensity_rows": len(out.propensities), "forecast_rows": len(out.forecasts),
        "cohort_outcomes": len(out.cohorts),
        "us_per_event_without": round(best[False] / n * 1e6, 2),
        "us_per_event_with": round(best[True] / n * 1e6, 2),
        "us_per_event_added": round(added / n * 1e6, 2),
        "us_per_propensity_row": round(added / max(len(out.propensities), 1) * 1e6, 2),
    }
    if args.profile:
        profile = cProfile.Profile()
        run(items, window_days, True, profile)
        text = io.StringIO()
        stats = pstats.Stats(profile, stream=text).sort_stats("tottime")
        stats.print_stats(PROFILE_FILTER, 15)
        result["profile"] = text.getvalue()
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=3, help="days of entering cohorts")
    ap.add_argument("--entrants", type=int, default=200, help="per flow per day")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mix", action="append", choices=MIXES, help="default: all")
    ap.add_argument("--newsletters", type=float, default=0.5, metavar="SHARE",
                    help="the newsletters mix: daily non-flow mail to this share of each list")
    ap.add_argument("--rate", type=float, default=0.25,
                    help="the generator mix: standard traffic, events per second of event time")
    ap.add_argument("--repeat", type=int, default=2, help="runs each way, the best counts")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--json", action="store_true", help="JSON lines only")
    args = ap.parse_args(argv)
    for mix in args.mix or MIXES:
        result = measure(mix, args)
        profile = result.pop("profile", None)
        if not args.json:
            print(f"{mix}: {result['events']:,} events ({result['flow_events']:,} of a flow), "
                  f"{result['propensity_rows']:,} propensity rows: "
                  f"{result['us_per_event_without']} µs/event without journeys, "
                  f"{result['us_per_event_with']} with: convergence prediction adds "
                  f"{result['us_per_event_added']} µs per event "
                  f"({result['us_per_propensity_row']} µs per propensity row)")
            if profile:
                print(profile)
        print(orjson.dumps({"bench": "convergence_cost", "days": args.days,
                            "entrants_per_day": args.entrants, "seed": args.seed,
                            "repeat": args.repeat, **result}).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
