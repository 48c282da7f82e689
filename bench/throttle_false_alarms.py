"""False alarms and slow-burn detection of the throttle, on simulated traffic.

Healthy traffic: `--senders` × 6 providers (72 pairs by default), complaint
rates 0.02–0.08%, hard bounces 0.3–1.5%, unsubscribes 0.1–0.4%, volumes
log-uniform 100–5,000 deliveries an hour, over `--days` days, with legitimate
8× volume surges. Every restriction there is a false alarm. Then held-out slow
burns (a pair's complaint rate climbing from 0.05% past 0.3%) at a few
hundred and a few thousand deliveries an hour: when were they restricted?
Everything is event-time and seeded (operators/throttle_sim.py).

    .venv/bin/python bench/throttle_false_alarms.py --seeds 1 2 3 4 --days 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from operators.throttle import ThrottlePolicy  # noqa: E402
from operators.throttle_sim import (  # noqa: E402
    PairSpec,
    Scenario,
    Surge,
    healthy_pairs,
    ramp,
    simulate,
)

DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "icloud.com", "gmx.de", "comcast.net"]


def healthy(seed: int, senders: int, days: float, policy: ThrottlePolicy) -> dict:
    pairs = healthy_pairs(senders, DOMAINS, seed)
    surges = [Surge(10 + 24 * d, 12 + 24 * d, 8.0, f"s{(seed + d) % senders}.example")
              for d in range(int(days))]
    t = time.perf_counter()
    result = simulate(Scenario(pairs, hours=24 * days, seed=seed, surges=surges), policy)
    restricted = result.restricted_keys()
    return {"seed": seed, "pairs": len(pairs), "days": days,
            "deliveries": sum(result.delivered.values()),
            "restricted_pairs": len(restricted), "decisions": len(result.decisions),
            "restrictions": sorted({(d.sender, d.domain, d.reason, d.evidence.get("horizon"))
                                    for d in result.decisions
                                    if d.action != "allow" and d.reason != "recovering"}),
            "seconds": round(time.perf_counter() - t, 1)}


def slow_burn(seed: int, per_hour: float, policy: ThrottlePolicy) -> dict:
    """0.05% → 0.6% over 8 hours (above 0.3% from hour 3.6 on)."""
    burn = PairSpec("burn.example", "gmail.com", per_hour, ramp(0.0005, 0.006, 0, 8))
    others = healthy_pairs(2, DOMAINS[1:3], seed)
    result = simulate(Scenario([burn, *others], hours=24, seed=seed), policy)
    crossed_h = 8 * (0.003 - 0.0005) / (0.006 - 0.0005)
    first = result.first_restriction(burn.key)
    return {"seed": seed, "per_hour": per_hour, "above_0.3%_from_h": round(crossed_h, 2),
            "restricted_at_h": first and round(result.hours(first), 2),
            "after_crossing_min": first and round((result.hours(first) - crossed_h) * 60),
            "by": first and (first.reason, first.evidence.get("horizon")),
            "false_alarms_elsewhere": sorted(result.restricted_keys() - {burn.key})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--senders", type=int, default=12)
    ap.add_argument("--days", type=float, default=3)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a throttle setting to try instead of its default")
    ap.add_argument("--only", choices=["healthy", "burn"])
    args = ap.parse_args()
    policy = ThrottlePolicy.from_mapping({k: float(v) if "." in v else int(v) for k, v in (
        item.split("=", 1) for item in args.set)})
    if args.only != "burn":
        for seed in args.seeds:
            print("healthy", healthy(seed, args.senders, args.days, policy), flush=True)
    if args.only != "healthy":
        for per_hour in (300, 1000, 3000, 10_000):
            for seed in args.seeds:
                print("slow burn", slow_burn(seed, per_hour, policy), flush=True)


if __name__ == "__main__":
    main()
