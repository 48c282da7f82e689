"""Throttle decisions per sender and mailbox provider, on every negative signal.

A `ThrottleBook` holds the state of one sender (all its providers, plus the
sender-wide `*` roll-up) or of one provider (all senders there, plus the
provider-wide `*` roll-up). `apply(signals)` takes a batch of `Signal`s in
stream order and returns the `Decision`s they trigger: decided on the event
that crosses a threshold, from event time only, so a replay gives the same
decisions.

Each (sender, domain) has one `PairThrottle`: rolling one-minute buckets over
the last hour, judged with a Wilson lower bound and a minimum volume (see
`ThrottlePolicy` for every default and its source), and a small state machine:

    allow ──trouble──► slow (rate_factor 0.5, halved again on new trouble)
      ▲                  │ serious trouble
      │                  ▼
      └─ramp +0.25 per ◄─ pause until T (15 min × 2^(incidents-1), ≤ 24 h)
         clean 10 min     then ramp from 0.25

>>> book = ThrottleBook("sender", "news.acme.example")
>>> sigs = [Signal(i * 100, "news.acme.example", "gmail.com", DELIVERED) for i in range(50)]
>>> sigs += [Signal(6000 + i, "news.acme.example", "gmail.com", RATE_LIMIT) for i in range(5)]
>>> [(d.domain, d.action, d.rate_factor, d.reason) for d in book.apply(sigs)]
[('gmail.com', 'slow', 0.5, 'rate_limit')]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from operators.windows import RollingCounts, wilson_lower_bound

# Signal kinds (indexes into the rolling counters).
DELIVERED, HARD, SOFT, BLOCK, RATE_LIMIT, OTHER_BOUNCE, COMPLAINT, UNSUBSCRIBE = range(8)
KINDS = 8
KIND_NAMES = ("delivered", "hard", "soft", "block", "rate_limit", "other", "complaint",
              "unsubscribe")
_NEGATIVE = frozenset({HARD, BLOCK, RATE_LIMIT, COMPLAINT, UNSUBSCRIBE})
_ATTEMPTS = (DELIVERED, HARD, SOFT, BLOCK, RATE_LIMIT, OTHER_BOUNCE)

ALL = "*"
ALLOW, SLOW, PAUSE = "allow", "slow", "pause"
_SEVERITY = {ALLOW: 0, SLOW: 1, PAUSE: 2}


class Signal(NamedTuple):
    """What throttling needs of an event: when, who, where, and which kind."""

    ts_ms: int
    sender: str
    domain: str
    kind: int


class Decision(NamedTuple):
    sender: str
    domain: str
    action: str
    rate_factor: float
    until_ms: int  # 0: no pause
    reason: str
    evidence: dict[str, Any]
    event_ts_ms: int
    seq: int


@dataclass(frozen=True)
class ThrottlePolicy:
    """Thresholds a deliverability engineer would sign; all configurable.

    Rates are judged on the one-sided 95% Wilson lower bound, so a handful of
    events cannot trip them, plus a minimum volume.

    - Complaints / deliveries: Gmail and Yahoo ask bulk senders to stay below
      0.1% and enforce 0.3% (Gmail sender guidelines, Feb 2024; Yahoo sender
      best practices). Amazon SES reviews an account at 0.1% and may pause it
      at 0.5%. We slow above 0.1% and pause above 0.3%, from 1,000 deliveries
      on (the lower bound of 1 complaint in 30 is 0.75%: volume matters).
    - Hard bounces / attempts: SES reviews at 5% and pauses at 10%; under 2% is
      healthy. We slow above 5% and pause above 10%.
    - Blocks (reputation, policy, authentication) and rate-limit deferrals
      (Gmail 421 4.7.28, Microsoft 451 4.7.650, Yahoo TSS04) are the
      provider telling us directly: a burst of 5 within two minutes, or more
      than 2% of attempts over 10 minutes (at least 5), slows the pair at once; blocks on
      a quarter of attempts (at least 20) pause it.
    - Unsubscribes / deliveries above 1% is a spike (typical is 0.1–0.5%).
    """

    window_s: int = 3600
    short_window_s: int = 600
    bucket_s: int = 60
    z: float = 1.645

    complaint_slow: float = 0.001
    complaint_pause: float = 0.003
    complaint_min_delivered: int = 1000
    hard_bounce_slow: float = 0.05
    hard_bounce_pause: float = 0.10
    hard_bounce_min_attempts: int = 200
    block_slow: float = 0.02
    block_pause: float = 0.25
    block_min: int = 5
    block_pause_min: int = 20
    rate_limit_slow: float = 0.02
    rate_limit_min: int = 5
    burst_s: int = 120  # a burst: this many seconds of blocks / rate limits ...
    block_burst: int = 5  # ... at least this many ...
    rate_limit_burst: int = 5
    burst_min_rate: float = 0.01  # ... and (lower bound) at least 1% of those attempts
    unsubscribe_slow: float = 0.01
    unsubscribe_min_delivered: int = 500

    # Early warning: the last `trend_recent_s` against the rest of the window.
    trend_recent_s: int = 900
    trend_horizon_s: int = 3600
    trend_min_complaints: int = 4

    slow_factor: float = 0.5  # first slow-down, and the multiplicative decrease
    min_factor: float = 0.05
    decrease_interval_s: int = 300  # at most one further halving per 5 min of trouble
    pause_base_s: int = 900
    pause_max_s: int = 86_400
    incident_memory_s: int = 86_400  # pauses within a day of the last count as repeats
    ramp_start: float = 0.25
    ramp_step: float = 0.25
    ramp_interval_s: int = 600  # additive increase after each 10 clean minutes
    clear_ratio: float = 0.7  # hysteresis: recover only below 70% of a trigger threshold
    min_spread: int = 3  # a `*` roll-up needs trouble at this many pairs at once

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> ThrottlePolicy:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown throttle settings: {', '.join(unknown)}")
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Finding(NamedTuple):
    action: str  # slow | pause
    reason: str
    evidence: dict[str, Any]


def _rate_finding(reason: str, hits: int, base: int, base_name: str, window_s: int,
                  slow: float, pause: float | None, min_base: int, min_hits: int,
                  policy: ThrottlePolicy, scale: float,
                  pause_min_hits: int = 0) -> Finding | None:
    if base < min_base or hits < min_hits or hits == 0:
        return None
    lower = wilson_lower_bound(hits, base, policy.z)
    evidence = {"window_s": window_s, base_name: base, KIND_ALIASES[reason]: hits,
                "rate": round(hits / base, 6), "lower_bound": round(lower, 6)}
    if pause is not None and hits >= pause_min_hits and lower > pause * scale:
        return Finding(PAUSE, reason, {**evidence, "threshold": pause})
    if lower > slow * scale:
        return Finding(SLOW, reason, {**evidence, "threshold": slow})
    return None


KIND_ALIASES = {"complaint_rate": "complaints", "hard_bounce_rate": "hard_bounces",
                "block_rate": "blocks", "rate_limit": "rate_limited",
                "unsubscribe_rate": "unsubscribes", "complaint_trend": "complaints"}


def assess(window: RollingCounts, policy: ThrottlePolicy, scale: float = 1.0) -> list[Finding]:
    """Everything wrong with a window, judged at `scale` × the thresholds."""
    totals = window.totals()
    short = window.recent(max(1, policy.short_window_s // policy.bucket_s))
    delivered = totals[DELIVERED]
    attempts = sum(totals[k] for k in _ATTEMPTS)
    short_attempts = sum(short[k] for k in _ATTEMPTS)
    w, sw = window.window_s, policy.short_window_s
    found = [
        _rate_finding("complaint_rate", totals[COMPLAINT], delivered, "delivered", w,
                      policy.complaint_slow, policy.complaint_pause,
                      policy.complaint_min_delivered, 1, policy, scale),
        _rate_finding("hard_bounce_rate", totals[HARD], attempts, "attempts", w,
                      policy.hard_bounce_slow, policy.hard_bounce_pause,
                      policy.hard_bounce_min_attempts, 1, policy, scale),
        _rate_finding("block_rate", short[BLOCK], short_attempts, "attempts", sw,
                      policy.block_slow, policy.block_pause, 1, policy.block_min, policy,
                      scale, policy.block_pause_min),
        _rate_finding("rate_limit", short[RATE_LIMIT], short_attempts, "attempts", sw,
                      policy.rate_limit_slow, None, 1, policy.rate_limit_min, policy, scale),
        _rate_finding("unsubscribe_rate", totals[UNSUBSCRIBE], delivered, "delivered", w,
                      policy.unsubscribe_slow, None, policy.unsubscribe_min_delivered, 1,
                      policy, scale),
        _complaint_trend(window, totals, policy, scale),
    ]
    burst = window.recent(max(1, policy.burst_s // policy.bucket_s))
    burst_attempts = sum(burst[k] for k in _ATTEMPTS)
    found += [_burst_finding("block_rate", burst[BLOCK], burst_attempts, policy.block_burst,
                             policy),
              _burst_finding("rate_limit", burst[RATE_LIMIT], burst_attempts,
                             policy.rate_limit_burst, policy)]
    return [f for f in found if f is not None]


def _burst_finding(reason: str, hits: int, attempts: int, burst: int, policy: ThrottlePolicy
                   ) -> Finding | None:
    """The provider pushing back several times within two minutes: slow at once.

    The rate guard keeps the background pushback of a big sender (a few in
    thousands) from counting as a burst."""
    if hits < burst:
        return None
    lower = wilson_lower_bound(hits, attempts, policy.z)
    if lower <= policy.burst_min_rate:
        return None
    return Finding(SLOW, reason, {"window_s": policy.burst_s, "attempts": attempts,
                                  KIND_ALIASES[reason]: hits, "lower_bound": round(lower, 6),
                                  "threshold": burst, "burst": True})


def _complaint_trend(window: RollingCounts, totals: list[int], policy: ThrottlePolicy,
                     scale: float) -> Finding | None:
    """Early warning: above the 0.1% guidance and on course to cross the 0.3% limit."""
    recent = window.recent(max(1, policy.trend_recent_s // policy.bucket_s))
    r_del, r_comp = recent[DELIVERED], recent[COMPLAINT]
    p_del, p_comp = totals[DELIVERED] - r_del, totals[COMPLAINT] - r_comp
    if (r_del < policy.complaint_min_delivered or p_del < policy.complaint_min_delivered
            or r_comp < policy.trend_min_complaints):
        return None
    recent_rate, prior_rate = r_comp / r_del, p_comp / p_del
    lower = wilson_lower_bound(r_comp, r_del, policy.z)
    if recent_rate <= prior_rate or lower <= policy.complaint_slow * scale:
        return None
    # Linear trend: the rate rose by (recent - prior) over half a window; extrapolate.
    per_s = (recent_rate - prior_rate) / (window.window_s / 2)
    forecast = recent_rate + per_s * policy.trend_horizon_s
    if forecast < policy.complaint_pause * scale:
        return None
    return Finding(SLOW, "complaint_trend", {
        "window_s": policy.trend_recent_s, "delivered": r_del, "complaints": r_comp,
        "rate": round(recent_rate, 6), "lower_bound": round(lower, 6),
        "prior_rate": round(prior_rate, 6), "threshold": policy.complaint_pause,
        "forecast_rate": round(forecast, 6), "forecast_horizon_s": policy.trend_horizon_s})


def worst(findings: list[Finding]) -> Finding | None:
    return max(findings, key=lambda f: _SEVERITY[f.action]) if findings else None


class PairThrottle:
    """State machine of one decision key: (sender, domain), (sender, *) or (*, domain)."""

    __slots__ = ("sender", "domain", "window", "action", "factor", "until_ms", "incidents",
                 "last_incident_ms", "last_trouble_ms", "last_decrease_ms", "ramp_next_ms",
                 "seq")

    def __init__(self, sender: str, domain: str, policy: ThrottlePolicy):
        self.sender, self.domain = sender, domain
        self.window = RollingCounts(KINDS, policy.bucket_s, policy.window_s // policy.bucket_s)
        self.action, self.factor, self.until_ms = ALLOW, 1.0, 0
        self.incidents, self.last_incident_ms = 0, -(10 ** 15)
        self.last_trouble_ms = self.last_decrease_ms = self.ramp_next_ms = 0
        self.seq = 0

    def observe(self, sig: Signal, policy: ThrottlePolicy, judge: bool = True
                ) -> Decision | None:
        """Count the signal; return a decision if the state changed."""
        self.window.add(sig.ts_ms, sig.kind)
        now = sig.ts_ms
        if judge and sig.kind in _NEGATIVE:
            found = worst(assess(self.window, policy))
            if found is not None:
                return self._trouble(found, now, policy)
        return self._recover(now, policy) if self.action != ALLOW else None

    def _trouble(self, found: Finding, now: int, policy: ThrottlePolicy) -> Decision | None:
        self.last_trouble_ms = now
        if self.action == PAUSE and now < self.until_ms:
            return None
        if found.action == PAUSE:
            repeat = now - self.last_incident_ms < policy.incident_memory_s * 1000
            self.incidents = self.incidents + 1 if repeat else 1
            self.last_incident_ms = now
            pause_s = min(policy.pause_base_s * 2 ** (self.incidents - 1), policy.pause_max_s)
            self.action, self.factor, self.until_ms = PAUSE, 0.0, now + pause_s * 1000
            evidence = {**found.evidence, "incidents": self.incidents, "pause_s": pause_s}
            self.window.clear()  # after the pause, judge the new traffic only
            return self._decide(found.reason, evidence, now)
        if self.action == ALLOW:
            self.factor = policy.slow_factor
        elif now - self.last_decrease_ms >= policy.decrease_interval_s * 1000:
            self.factor = max(policy.min_factor, round(self.factor * policy.slow_factor, 4))
        else:
            return None
        self.action, self.until_ms = SLOW, 0
        self.last_decrease_ms = now
        self.ramp_next_ms = now + policy.ramp_interval_s * 1000
        return self._decide(found.reason, found.evidence, now)

    def _recover(self, now: int, policy: ThrottlePolicy) -> Decision | None:
        if self.action == PAUSE:
            if now < self.until_ms:
                return None
            self.action, self.factor, self.until_ms = SLOW, policy.ramp_start, 0
            self.ramp_next_ms = now + policy.ramp_interval_s * 1000
            return self._decide("recovering", {"after": "pause expired"}, now)
        if now < self.ramp_next_ms or now - self.last_trouble_ms < policy.ramp_interval_s * 1000:
            return None
        if assess(self.window, policy, scale=policy.clear_ratio):
            self.ramp_next_ms = now + policy.ramp_interval_s * 1000
            return None  # not clean enough yet (hysteresis): hold the current rate
        self.factor = min(1.0, round(self.factor + policy.ramp_step, 4))
        self.action = ALLOW if self.factor >= 1.0 else SLOW
        self.ramp_next_ms = now + policy.ramp_interval_s * 1000
        totals = self.window.totals()
        return self._decide("recovered" if self.action == ALLOW else "recovering",
                            {"window_s": self.window.window_s,
                             "delivered": totals[DELIVERED],
                             "clean_for_s": (now - self.last_trouble_ms) // 1000}, now)

    def _decide(self, reason: str, evidence: dict[str, Any], now: int) -> Decision:
        self.seq += 1
        return Decision(self.sender, self.domain, self.action, self.factor, self.until_ms,
                        reason, evidence, now, self.seq)

    @property
    def troubled(self) -> bool:
        return self.action != ALLOW


class ThrottleBook:
    """All decision state of one sender (`scope="sender"`) or one provider (`"provider"`).

    A sender book decides its (sender, domain) pairs and (sender, *); a
    provider book decides only (*, domain), from its own per-sender counts.
    A `*` roll-up acts only while trouble is spread over `min_spread` pairs,
    so one bad provider does not stop a sender everywhere.
    """

    def __init__(self, scope: str, name: str, policy: ThrottlePolicy | None = None):
        if scope not in ("sender", "provider"):
            raise ValueError(f"scope must be sender or provider, not {scope!r}")
        self.scope, self.name = scope, name
        self.policy = policy or ThrottlePolicy()
        self.pairs: dict[str, PairThrottle] = {}
        self.rollup = (PairThrottle(name, ALL, self.policy) if scope == "sender"
                       else PairThrottle(ALL, name, self.policy))
        self.late = 0
        self.troubled_pairs = 0

    def apply(self, signals: list[Signal]) -> list[Decision]:
        decisions: list[Decision] = []
        policy, by_sender = self.policy, self.scope == "provider"
        for sig in signals:
            other = sig.sender if by_sender else sig.domain
            pair = self.pairs.get(other)
            if pair is None:
                pair = self.pairs[other] = PairThrottle(sig.sender, sig.domain, policy)
            late_before, was_troubled = pair.window.late, pair.troubled
            decision = pair.observe(sig, policy)
            self.late += pair.window.late - late_before
            if pair.troubled != was_troubled:
                self.troubled_pairs += 1 if pair.troubled else -1
            if decision is not None and not by_sender:
                decisions.append(decision)
            rolled = self.rollup.observe(sig, policy,
                                         judge=self.troubled_pairs >= policy.min_spread)
            if rolled is not None:
                decisions.append(rolled)
        return decisions

    def state(self) -> dict[str, Any]:
        """What an operator inspects: each key's action, factor and counts."""
        return {f"{p.sender}|{p.domain}": {"action": p.action, "rate_factor": p.factor,
                                           "until_ms": p.until_ms, "seq": p.seq,
                                           "counts": dict(zip(KIND_NAMES, p.window.totals(),
                                                              strict=True))}
                for p in [*self.pairs.values(), self.rollup]}


_BOUNCE_KINDS = {"hard": HARD, "soft": SOFT, "block": BLOCK, "rate_limit": RATE_LIMIT,
                 "other": OTHER_BOUNCE}
_DEFERRAL_KINDS = {"block": BLOCK, "rate_limit": RATE_LIMIT}
_EVENT_KINDS = {"delivered": DELIVERED, "complaint": COMPLAINT, "unsubscribe": UNSUBSCRIBE}


def signal_kind(event_type: str, bounce_class: str) -> int | None:
    """The throttle signal an event carries, or None (opens, clicks, sends ...).

    A deferral counts as a block or a rate limit when the provider says so,
    otherwise as a soft (temporary) failure.

    >>> [signal_kind(t, c) for t, c in [("delivered", ""), ("bounce", "hard"),
    ...                                  ("deferred", "rate_limit"), ("deferred", "hard"),
    ...                                  ("open", "")]]
    [0, 1, 4, 2, None]
    """
    if event_type == "bounce":
        return _BOUNCE_KINDS.get(bounce_class, OTHER_BOUNCE)
    if event_type == "deferred":
        return _DEFERRAL_KINDS.get(bounce_class, SOFT)
    return _EVENT_KINDS.get(event_type)
