"""A seeded, event-time simulator of many (sender, provider) pairs for the throttle.

Drives `ThrottleBook`s directly with plain `Signal` lists, minute by minute:
each pair delivers `per_hour` × its current rate factor (a pause sends
nothing: the sender honours every decision from the next minute on), and
every delivery may later bring a complaint or an unsubscribe (after an
exponential lag, ~25 min on average) or bounce hard at once. Complaint rates
are functions of the hour, so a slow burn is a rate that climbs. Pure and
deterministic: the same scenario and seed give the same decisions.

>>> burn = PairSpec("a.example", "gmail.com", 3000, ramp(0.0005, 0.006, 0, 8))
>>> result = simulate(Scenario([burn], hours=8, seed=1))
>>> first = result.first_restriction("a.example|gmail.com")
>>> first is not None and first.action == "slow"
True
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from operators.throttle import (
    ALL,
    BLOCK,
    COMPLAINT,
    DELIVERED,
    HARD,
    RATE_LIMIT,
    UNSUBSCRIBE,
    Decision,
    Signal,
    ThrottleBook,
    ThrottlePolicy,
)

HOUR_MS = 3_600_000
MINUTE_MS = 60_000
Rate = Callable[[float], float]  # hours since the start → probability per delivery


def steady(rate: float) -> Rate:
    """The same rate all along.

    >>> steady(0.001)(5.0)
    0.001
    """
    return lambda _h: rate


def ramp(start: float, end: float, from_h: float, to_h: float, back_at_h: float | None = None
         ) -> Rate:
    """`start` until `from_h`, rising linearly to `end` at `to_h`, then `end`
    (or `start` again from `back_at_h`: the incident is fixed).

    >>> r = ramp(0.001, 0.005, 2, 6, back_at_h=10)
    >>> [round(r(h), 4) for h in (0, 2, 4, 6, 9, 10)]
    [0.001, 0.001, 0.003, 0.005, 0.005, 0.001]
    """
    def rate(h: float) -> float:
        if back_at_h is not None and h >= back_at_h:
            return start
        if h <= from_h:
            return start
        if h >= to_h:
            return end
        return start + (end - start) * (h - from_h) / (to_h - from_h)
    return rate


@dataclass(frozen=True)
class PairSpec:
    sender: str
    domain: str
    per_hour: float
    complaint: Rate
    hard: float = 0.008  # of attempts, at once
    unsubscribe: float = 0.002  # of deliveries, lagged like complaints
    rate_limit: float = 0.0005  # background deferrals, of attempts

    @property
    def key(self) -> str:
        return f"{self.sender}|{self.domain}"


@dataclass(frozen=True)
class Surge:
    """A legitimate volume surge: `multiplier` × volume for the pairs of `sender` (or all)."""

    from_h: float
    to_h: float
    multiplier: float
    sender: str | None = None


@dataclass(frozen=True)
class Scenario:
    pairs: list[PairSpec]
    hours: float
    seed: int = 1
    surges: list[Surge] = field(default_factory=list)
    lag_mean_s: float = 1500.0  # complaints and unsubscribes: ~25 min after the delivery
    start_ms: int = 1_795_000_000_000 - 1_795_000_000_000 % HOUR_MS


@dataclass
class SimResult:
    decisions: list[Decision]
    delivered: dict[str, int]
    start_ms: int
    books: dict[str, ThrottleBook] = field(default_factory=dict)

    def for_key(self, key: str) -> list[Decision]:
        return [d for d in self.decisions if f"{d.sender}|{d.domain}" == key]

    def first_restriction(self, key: str) -> Decision | None:
        return next((d for d in self.for_key(key) if d.action in ("slow", "pause")), None)

    def restricted_keys(self) -> set[str]:
        return {f"{d.sender}|{d.domain}" for d in self.decisions
                if d.action in ("slow", "pause") and d.reason not in ("recovering",)}

    def hours(self, d: Decision) -> float:
        return (d.event_ts_ms - self.start_ms) / HOUR_MS


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def simulate(scenario: Scenario, policy: ThrottlePolicy | None = None) -> SimResult:
    """Run the scenario; every decision of every book, in event-time order."""
    policy = policy or ThrottlePolicy()
    rng = random.Random(scenario.seed)
    books: dict[str, ThrottleBook] = {}
    factor = {p.key: 1.0 for p in scenario.pairs}
    until = {p.key: 0 for p in scenario.pairs}
    delivered = {p.key: 0 for p in scenario.pairs}
    pending: list[tuple[int, int, int]] = []  # (ts, pair index, kind): lagged signals
    decisions: list[Decision] = []
    start = scenario.start_ms
    for minute in range(int(scenario.hours * 60)):
        t0 = start + minute * MINUTE_MS
        h = minute / 60
        signals: list[tuple[int, int, int]] = []
        for i, pair in enumerate(scenario.pairs):
            share = factor[pair.key] if until[pair.key] <= t0 else 0.0
            surge = 1.0
            for s in scenario.surges:
                if s.from_h <= h < s.to_h and s.sender in (None, pair.sender):
                    surge *= s.multiplier
            n = _poisson(rng, pair.per_hour / 60 * surge * share)
            p_complaint = pair.complaint(h)
            for _ in range(n):
                ts = t0 + int(rng.random() * MINUTE_MS)
                u = rng.random()
                if u < pair.hard:
                    signals.append((ts, i, HARD))
                    continue
                if u < pair.hard + pair.rate_limit:
                    signals.append((ts, i, RATE_LIMIT))
                    continue
                signals.append((ts, i, DELIVERED))
                delivered[pair.key] += 1
                v = rng.random()
                if v < p_complaint:
                    lag = int(rng.expovariate(1 / scenario.lag_mean_s) * 1000)
                    heapq.heappush(pending, (ts + lag, i, COMPLAINT))
                elif v < p_complaint + pair.unsubscribe:
                    lag = int(rng.expovariate(1 / scenario.lag_mean_s) * 1000)
                    heapq.heappush(pending, (ts + lag, i, UNSUBSCRIBE))
        while pending and pending[0][0] < t0 + MINUTE_MS:
            signals.append(heapq.heappop(pending))
        signals.sort()
        by_book: dict[str, list[Signal]] = {}
        for ts, i, kind in signals:
            pair = scenario.pairs[i]
            sig = Signal(ts, pair.sender, pair.domain, kind)
            by_book.setdefault("s:" + pair.sender, []).append(sig)
            by_book.setdefault("p:" + pair.domain, []).append(sig)
        for key, sigs in by_book.items():
            book = books.get(key)
            if book is None:
                book = books[key] = ThrottleBook("sender" if key[0] == "s" else "provider",
                                                 key[2:], policy)
            for d in book.apply(sigs):
                decisions.append(d)
                _honour(d, scenario.pairs, factor, until)
    decisions.sort(key=lambda d: d.event_ts_ms)
    return SimResult(decisions, delivered, start, books)


def _honour(d: Decision, pairs: list[PairSpec], factor: dict[str, float],
            until: dict[str, int]) -> None:
    """The sender applies a decision; a `*` roll-up caps every pair it covers. After a
    pause it resumes at 0.25 (what the job publishes on the next signal)."""
    for p in pairs:
        if (d.sender in (ALL, p.sender)) and (d.domain in (ALL, p.domain)):
            if d.sender == p.sender and d.domain == p.domain:
                factor[p.key], until[p.key] = d.rate_factor or 0.25, d.until_ms
            elif d.action != "allow":
                factor[p.key] = min(factor[p.key], d.rate_factor)
                until[p.key] = max(until[p.key], d.until_ms)


def healthy_pairs(n_senders: int, domains: list[str], seed: int,
                  min_per_hour: float = 100, max_per_hour: float = 5000) -> list[PairSpec]:
    """`n_senders` × `domains` healthy pairs: complaint rates 0.02–0.08%, volumes
    log-uniform between the bounds (mixed: small and big pairs)."""
    rng = random.Random(seed)
    pairs = []
    for s in range(n_senders):
        for dom in domains:
            volume = math.exp(rng.uniform(math.log(min_per_hour), math.log(max_per_hour)))
            pairs.append(PairSpec(f"s{s}.example", dom, round(volume),
                                  steady(rng.uniform(0.0002, 0.0008)),
                                  hard=rng.uniform(0.003, 0.015),
                                  unsubscribe=rng.uniform(0.001, 0.004)))
    return pairs


__all__ = ["BLOCK", "PairSpec", "Scenario", "SimResult", "Surge", "healthy_pairs", "ramp",
           "simulate", "steady"]
