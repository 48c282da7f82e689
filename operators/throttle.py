"""Throttle decisions per sender and mailbox provider, on every negative signal.

A `ThrottleBook` holds the state of one sender (all its providers, plus the
sender-wide `*` roll-up) or of one provider (all senders there, plus the
provider-wide `*` roll-up). `apply(signals)` takes a batch of `Signal`s in
stream order and returns the `Decision`s they trigger: decided on the event
that crosses a threshold, from event time only, so a replay gives the same
decisions.

Each (sender, domain) has one `PairThrottle`: rolling one-minute buckets over
the last hour (acute trouble), hourly buckets over a day and daily buckets
over a week (slow burns of pairs too small for the hour), each horizon judged
with a Wilson lower bound, a minimum volume and a minimum event count (see
`ThrottlePolicy` for every default and its source), and a small state machine:

    allow ──trouble──► slow (rate_factor 0.5, halved again on new trouble)
      ▲                  │ serious trouble
      │                  ▼
      └─ramp +0.25 per ◄─ pause until T (15 min × 2^(incidents-1), ≤ 24 h)
         clean 10 min     then ramp from 0.25

The day and week horizons only slow (never pause) and only while the recent
hours support them; "clean" is judged on mail whose complaints have had time
to arrive (complaints lag deliveries by ~25 minutes, with a long tail).

>>> book = ThrottleBook("sender", "news.acme.example")
>>> sigs = [Signal(i * 100, "news.acme.example", "gmail.com", DELIVERED) for i in range(50)]
>>> sigs += [Signal(6000 + i, "news.acme.example", "gmail.com", RATE_LIMIT) for i in range(5)]
>>> [(d.domain, d.action, d.rate_factor, d.reason) for d in book.apply(sigs)]
[('gmail.com', 'slow', 0.5, 'rate_limit')]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
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

    Rates are judged on a one-sided Wilson lower bound plus a minimum volume
    and event count, so a handful of events cannot trip them: 95% for blocks
    and rate limits, z = 4 for slowing on complaint, hard-bounce and
    unsubscribe rates (many pairs are judged many times), 99.5% for pausing.

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
    trend_min_complaints: int = 10

    # Many comparisons: every pair is re-judged on every complaint, so a 95%
    # bound on a handful of events fires somewhere by chance (72 pairs × 24
    # hourly windows a day, each looked at on every complaint). A slow-down on
    # complaint, hard-bounce or unsubscribe rates needs this many events and
    # the bound at `rate_z` = 4 (about 3 in 100,000 one-sided): a healthy pair
    # at 0.08% is close to the 0.1% line, and only strong evidence separates
    # it. A pause (0.3%, far from healthy) needs the 99.5% bound (`pause_z`).
    # See bench/throttle_false_alarms.py for the false-alarm rate.
    rate_z: float = 4.0
    pause_z: float = 2.576
    complaint_min_events: int = 10
    hard_bounce_min_events: int = 10
    unsubscribe_min_events: int = 10

    # Longer horizons, in hourly buckets: they catch the slow burn of a pair
    # too small for the hour to say anything. They only ever slow (never
    # pause), and only while the recent hours are not clean, so an incident
    # that is over does not keep a pair slowed for a day.
    long_bucket_s: int = 3600
    day_s: int = 86_400
    week_s: int = 604_800
    day_complaint_min_delivered: int = 2000
    day_hard_bounce_min_attempts: int = 2000
    day_unsubscribe_min_delivered: int = 2000
    week_complaint_min_delivered: int = 10_000
    recent_min_delivered: int = 500  # "the recent hours": newest hours holding this many,
    recent_max_s: int = 86_400  # ... from at most the last day
    recovery_recent_min_delivered: int = 500  # ... and this many to call them clean,
    recovery_recent_max_s: int = 21_600  # ... from at most the last 6 h (a slowed pair is small)
    day_trend_recent_s: int = 21_600  # the last 6 h against the 18 h before
    day_trend_min_delivered: int = 1000
    # Complaints and unsubscribes arrive minutes to hours after the delivery
    # (~25 min typical): after a pause they are about the mail sent before it,
    # and a clean period is judged on deliveries at least this old.
    complaint_lag_s: int = 1800
    # after a pause, complaints this long are about the mail before it: with a lag of mean
    # ~25 min, 9% of the complaints about the last mail before it come after an hour, 3%
    # after 90 min (the incident's complaints trail in for 1-1.5 h)
    pause_tail_s: int = 5400
    recovery_min_delivered: int = 300  # ... at least this many of them, or
    recovery_max_wait_s: int = 3600  # ... this long clean (a small pair)
    recovery_step_delivered: int = 150  # after a day/week slow: new deliveries per step up,
    recovery_step_wait_s: int = 7200  # ... or this long since the last step (a small pair)

    slow_factor: float = 0.5  # first slow-down, and the multiplicative decrease
    min_factor: float = 0.05
    decrease_interval_s: int = 300  # at most one further halving per 5 min of trouble
    pause_base_s: int = 900
    pause_max_s: int = 86_400
    incident_memory_s: int = 86_400  # pauses within a day of the last count as repeats
    ramp_start: float = 0.25
    ramp_step: float = 0.25
    ramp_after_pause: float = 2.0  # clean since a pause: double per step (1.0: additive)
    ramp_interval_s: int = 600  # additive increase after each 10 clean minutes
    clear_ratio: float = 0.7  # hysteresis: recover only below 70% of a trigger threshold
    min_spread: int = 3  # a `*` roll-up needs trouble at this many pairs at once

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A policy pickled before a setting existed resumes with its default."""
        for f in fields(self):
            object.__setattr__(self, f.name, state.get(f.name, f.default))

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
                  z: float, scale: float, pause_min_hits: int = 0,
                  horizon: str = "1h", pause_z: float | None = None) -> Finding | None:
    if base < min_base or hits < min_hits or hits == 0:
        return None
    if pause is not None and hits >= pause_min_hits:
        lower = wilson_lower_bound(hits, base, z if pause_z is None else pause_z)
        if lower > pause * scale:
            return Finding(PAUSE, reason, {
                "window_s": window_s, "horizon": horizon, base_name: base,
                KIND_ALIASES[reason]: hits, "rate": round(hits / base, 6),
                "lower_bound": round(lower, 6), "threshold": pause})
    lower = wilson_lower_bound(hits, base, z)
    evidence = {"window_s": window_s, "horizon": horizon, base_name: base,
                KIND_ALIASES[reason]: hits, "rate": round(hits / base, 6),
                "lower_bound": round(lower, 6)}
    if lower > slow * scale:
        return Finding(SLOW, reason, {**evidence, "threshold": slow})
    return None


_END = 2 ** 62  # "until now" for RollingCounts.between

KIND_ALIASES = {"complaint_rate": "complaints", "hard_bounce_rate": "hard_bounces",
                "block_rate": "blocks", "rate_limit": "rate_limited",
                "unsubscribe_rate": "unsubscribes", "complaint_trend": "complaints"}

# The long (hourly) counters keep only what the long horizons judge.
L_DELIVERED, L_HARD, L_OTHER_ATTEMPT, L_COMPLAINT, L_UNSUBSCRIBE = range(5)
L_KINDS = 5
_LONG_KIND = (L_DELIVERED, L_HARD, L_OTHER_ATTEMPT, L_OTHER_ATTEMPT, L_OTHER_ATTEMPT,
              L_OTHER_ATTEMPT, L_COMPLAINT, L_UNSUBSCRIBE)  # indexed by signal kind
# The week keeps deliveries and complaints per day.
W_DELIVERED, W_COMPLAINT = range(2)
_WEEK_KIND = {DELIVERED: W_DELIVERED, COMPLAINT: W_COMPLAINT}
_RATE_KINDS = frozenset({HARD, COMPLAINT, UNSUBSCRIBE})  # what the long horizons judge
_LAGGED_REASONS = frozenset({"complaint_rate", "complaint_trend", "unsubscribe_rate"})


def _horizon_name(seconds: int) -> str:
    """The name an evidence record gives a window.

    >>> [_horizon_name(s) for s in (120, 600, 3600, 21600, 86400, 604800)]
    ['2m', '10m', '1h', '6h', '24h', '7d']
    """
    if seconds % 86_400 == 0:
        return f"{seconds // 86_400}d" if seconds != 86_400 else "24h"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds // 60}m"


class HourView(NamedTuple):
    """The last hour as judged, complaints set against the mail they are about.

    `counts`: every kind over the last hour (since the last pause, if later),
    complaints and unsubscribes from `pause_tail_s` after that pause.
    `delivered`: deliveries whose complaints have had time to arrive, the hour
    ending `complaint_lag_s` ago, or the one ending twice that ago if it held
    more (the complaint and unsubscribe base). The
    same for the trend's recent part: `recent_complaints`, `recent_delivered`.
    """

    counts: list[int]
    delivered: int
    recent_complaints: int
    recent_delivered: int


def hour_view(window: RollingCounts, deliveries: RollingCounts, now: int, fresh_ms: int,
              policy: ThrottlePolicy) -> HourView:
    """The hour as judged, from the minute counters: `window` (every kind, the last
    hour) and `deliveries` (deliveries only, the hour and the complaint lag before it).

    >>> p = ThrottlePolicy()
    >>> w, d = RollingCounts(KINDS, 60, 60), RollingCounts(1, 60, 120)
    >>> _ = [(w.add(m * 60_000, DELIVERED, 100), d.add(m * 60_000, 0, 100)) for m in range(90)]
    >>> _ = [w.add(89 * 60_000, COMPLAINT) for _ in range(3)]
    >>> v = hour_view(w, d, 89 * 60_000, _NEVER, p)   # never paused
    >>> v.counts[DELIVERED], v.delivered, v.counts[COMPLAINT], v.recent_delivered
    (6000, 6000, 3, 1500)
    >>> v = hour_view(w, d, 89 * 60_000, 60 * 60_000, p)   # paused at minute 60
    >>> v.counts[DELIVERED], v.delivered, v.counts[COMPLAINT]
    (3000, 0, 0)
    """
    b, lag = window.bucket_ms, policy.complaint_lag_s * 1000
    end = (now // b + 1) * b  # the end of the newest bucket
    w, r = policy.window_s * 1000, policy.trend_recent_s * 1000
    fresh_c = fresh_ms + policy.pause_tail_s * 1000
    counts = window.totals() if fresh_ms < end - w else window.between(fresh_ms, end)
    if fresh_c >= end - w:
        counts[COMPLAINT] = window.between_kind(fresh_c, end, COMPLAINT)
        counts[UNSUBSCRIBE] = window.between_kind(fresh_c, end, UNSUBSCRIBE)
    # After a pause, complaints count from `fresh_c` on: set them against the mail sent
    # from a complaint lag before that, not against all the mail since the pause (whose
    # complaints mostly arrived before `fresh_c`, uncounted): a matched base.
    fresh_d = max(fresh_ms, fresh_c - lag)
    # The larger of the hours of mail 30 and 60 minutes back: after a surge ends, its
    # late complaints are not set against the quieter hour after it.
    delivered = max(deliveries.between_kind(max(end - w - lag, fresh_d), end - lag, 0),
                    deliveries.between_kind(max(end - w - 2 * lag, fresh_d), end - 2 * lag, 0))
    return HourView(
        counts, delivered,
        window.between_kind(max(end - r, fresh_c), end, COMPLAINT),
        deliveries.between_kind(max(end - r - lag, fresh_d), end - lag, 0))


def assess(window: RollingCounts, policy: ThrottlePolicy, scale: float = 1.0,
           view: HourView | None = None, recovering: bool = False) -> list[Finding]:
    """Everything wrong with the last hour, judged at `scale` × the thresholds.

    `view` is the hour as judged (by default: no pause, now = the newest
    bucket); `recovering` judges rates from fewer events
    (`recovery_min_delivered`, one event): a clean period must show it is
    clean, it is not clean for lack of evidence.
    """
    if view is None:  # no pause, and every delivery as old as the complaints
        totals = window.totals()
        recent = window.recent(max(1, policy.trend_recent_s // policy.bucket_s))
        view = HourView(totals, totals[DELIVERED], recent[COMPLAINT], recent[DELIVERED])
    totals = view.counts
    short = window.recent(max(1, policy.short_window_s // policy.bucket_s))
    delivered = view.delivered
    attempts = sum(totals[k] for k in _ATTEMPTS)
    short_attempts = sum(short[k] for k in _ATTEMPTS)
    w, sw, rz, pz = policy.window_s, policy.short_window_s, policy.rate_z, policy.pause_z
    min_c, min_cd = policy.complaint_min_events, policy.complaint_min_delivered
    min_u, min_ud = policy.unsubscribe_min_events, policy.unsubscribe_min_delivered
    min_h = policy.hard_bounce_min_events
    if recovering:
        # clean is judged on the rate itself (no benefit of the doubt from a bound);
        # one straggler (a late complaint about earlier mail) does not hold it back
        rz = pz = 0.0
        min_c, min_u, min_h = 2, 2, 2
        min_cd = min_ud = min(policy.recovery_min_delivered, min_cd)
    found = [
        _rate_finding("complaint_rate", totals[COMPLAINT], delivered, "delivered", w,
                      policy.complaint_slow, policy.complaint_pause, min_cd, min_c, rz, scale,
                      pause_z=pz),
        _rate_finding("hard_bounce_rate", totals[HARD], attempts, "attempts", w,
                      policy.hard_bounce_slow, policy.hard_bounce_pause,
                      policy.hard_bounce_min_attempts, min_h, rz, scale, pause_z=pz),
        _rate_finding("block_rate", short[BLOCK], short_attempts, "attempts", sw,
                      policy.block_slow, policy.block_pause, 1, policy.block_min, policy.z,
                      scale, policy.block_pause_min, horizon=_horizon_name(sw)),
        _rate_finding("rate_limit", short[RATE_LIMIT], short_attempts, "attempts", sw,
                      policy.rate_limit_slow, None, 1, policy.rate_limit_min, policy.z, scale,
                      horizon=_horizon_name(sw)),
        _rate_finding("unsubscribe_rate", totals[UNSUBSCRIBE], delivered, "delivered", w,
                      policy.unsubscribe_slow, None, min_ud, min_u, rz, scale),
        _complaint_trend(view, policy, scale),
    ]
    burst = window.recent(max(1, policy.burst_s // policy.bucket_s))
    burst_attempts = sum(burst[k] for k in _ATTEMPTS)
    found += [_burst_finding("block_rate", burst[BLOCK], burst_attempts, policy.block_burst,
                             policy),
              _burst_finding("rate_limit", burst[RATE_LIMIT], burst_attempts,
                             policy.rate_limit_burst, policy)]
    return [f for f in found if f is not None]


def assess_long(long: RollingCounts, week_counts: RollingCounts, recent: list[int],
                policy: ThrottlePolicy, scale: float = 1.0, recovering: bool = False,
                since_ms: int | None = None) -> list[Finding]:
    """The day (hourly buckets) and week (daily buckets) horizons: slow only, and only
    with recent support.

    `recent` is [delivered, complaints, hard bounces, attempts, unsubscribes]
    over the recent hours (see `PairThrottle.recent`). A long horizon acts
    only while the recent rate of the same signal is, with 95% confidence,
    above its threshold; when recovering, it holds while the recent rate is
    above `clear_ratio` × the threshold. Once the recent hours are clean, an
    incident earlier in the day no longer holds the pair back.

    `since_ms`: after a pause, only the buckets from the end of its complaint
    tail (`pause_tail_s`) on count: the pause acted on the mail before it, and
    that incident's complaints must not hold back (or slow again) the mail after.
    """
    hours = policy.day_s // policy.long_bucket_s
    day = long.recent(hours) if since_ms is None else long.between(since_ms, _END)
    week = week_counts.totals() if since_ms is None else week_counts.between(since_ms, _END)
    rz, cr = policy.rate_z, policy.clear_ratio
    r_del, r_comp, r_hard, r_att, r_unsub = recent[:5]
    # soon after a pause, one late complaint about the mail before it is expected
    stragglers = recent[5] if len(recent) > 5 else 0

    def supported(hits: int, base: int, threshold: float) -> bool:
        # the recent hours still show trouble: two events at least, and their 95% bound
        # above the threshold
        # (recovering: their rate itself must be below 70% of it to call them clean)
        if recovering:
            # too little recent mail to show it clean: only the long horizon itself
            # clearing (below 70% of its threshold) releases the pair
            if base < policy.recovery_recent_min_delivered:
                return True
            return hits > stragglers and hits > base * threshold * cr
        if base == 0:
            return False  # nothing sent lately (or since the pause): nothing to hold back
        return hits >= 2 and wilson_lower_bound(hits, base, policy.z) > threshold

    found: list[Finding | None] = []
    day_att = day[L_DELIVERED] + day[L_HARD] + day[L_OTHER_ATTEMPT]
    if supported(r_comp, r_del, policy.complaint_slow):
        found.append(_rate_finding(
            "complaint_rate", day[L_COMPLAINT], day[L_DELIVERED], "delivered", policy.day_s,
            policy.complaint_slow, None, policy.day_complaint_min_delivered,
            policy.complaint_min_events, rz, scale, horizon="24h"))
        found.append(_rate_finding(
            "complaint_rate", week[W_COMPLAINT], week[W_DELIVERED], "delivered",
            policy.week_s, policy.complaint_slow, None, policy.week_complaint_min_delivered,
            policy.complaint_min_events, rz, scale, horizon=_horizon_name(policy.week_s)))
        found.append(_day_trend(long, day, policy, scale, since_ms))
    if supported(r_hard, r_att, policy.hard_bounce_slow):
        found.append(_rate_finding(
            "hard_bounce_rate", day[L_HARD], day_att, "attempts", policy.day_s,
            policy.hard_bounce_slow, None, policy.day_hard_bounce_min_attempts,
            policy.hard_bounce_min_events, rz, scale, horizon="24h"))
    if supported(r_unsub, r_del, policy.unsubscribe_slow):
        found.append(_rate_finding(
            "unsubscribe_rate", day[L_UNSUBSCRIBE], day[L_DELIVERED], "delivered",
            policy.day_s, policy.unsubscribe_slow, None, policy.day_unsubscribe_min_delivered,
            policy.unsubscribe_min_events, rz, scale, horizon="24h"))
    return [f for f in found if f is not None]


def _day_trend(long: RollingCounts, day: list[int], policy: ThrottlePolicy, scale: float,
               since_ms: int | None = None) -> Finding | None:
    """Early warning across hours: the last 6 h above the 0.1% guidance, rising, and on
    course to cross the 0.3% limit, before the daily rate shows it."""
    n = max(1, policy.day_trend_recent_s // policy.long_bucket_s)
    recent = long.recent(n)
    if since_ms is not None:
        recent = long.between(max(since_ms, long.head_ms - (n - 1) * long.bucket_ms), _END)
    r_del, r_comp = recent[L_DELIVERED], recent[L_COMPLAINT]
    p_del, p_comp = day[L_DELIVERED] - r_del, day[L_COMPLAINT] - r_comp
    if (r_del < policy.day_trend_min_delivered or p_del < policy.day_trend_min_delivered
            or r_comp < policy.trend_min_complaints):
        return None
    recent_rate, prior_rate = r_comp / r_del, p_comp / p_del
    lower = wilson_lower_bound(r_comp, r_del, policy.rate_z)
    if recent_rate <= prior_rate or lower <= policy.complaint_slow * scale:
        return None
    # the two halves' centres are (day + recent) / 2 apart: extrapolate one recent span
    span_s = (policy.day_s) / 2
    forecast = recent_rate + (recent_rate - prior_rate) / span_s * policy.day_trend_recent_s
    if forecast < policy.complaint_pause * scale:
        return None
    return Finding(SLOW, "complaint_trend", {
        "window_s": policy.day_trend_recent_s, "horizon": _horizon_name(
            policy.day_trend_recent_s), "delivered": r_del, "complaints": r_comp,
        "rate": round(recent_rate, 6), "lower_bound": round(lower, 6),
        "prior_rate": round(prior_rate, 6), "threshold": policy.complaint_pause,
        "forecast_rate": round(forecast, 6), "forecast_horizon_s": policy.day_trend_recent_s})


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
    return Finding(SLOW, reason, {"window_s": policy.burst_s,
                                  "horizon": _horizon_name(policy.burst_s), "attempts": attempts,
                                  KIND_ALIASES[reason]: hits, "lower_bound": round(lower, 6),
                                  "threshold": burst, "burst": True})


def _complaint_trend(view: HourView, policy: ThrottlePolicy, scale: float) -> Finding | None:
    """Early warning: above the 0.1% guidance and on course to cross the 0.3% limit."""
    r_del, r_comp = view.recent_delivered, view.recent_complaints
    p_del, p_comp = view.delivered - r_del, view.counts[COMPLAINT] - r_comp
    if (r_del < policy.complaint_min_delivered or p_del < policy.complaint_min_delivered
            or r_comp < max(policy.trend_min_complaints, policy.complaint_min_events)):
        return None
    recent_rate, prior_rate = r_comp / r_del, p_comp / p_del
    lower = wilson_lower_bound(r_comp, r_del, policy.rate_z)
    if recent_rate <= prior_rate or lower <= policy.complaint_slow * scale:
        return None
    # Linear trend: the rate rose by (recent - prior) over half a window; extrapolate.
    per_s = (recent_rate - prior_rate) / (policy.window_s / 2)
    forecast = recent_rate + per_s * policy.trend_horizon_s
    if forecast < policy.complaint_pause * scale:
        return None
    return Finding(SLOW, "complaint_trend", {
        "window_s": policy.trend_recent_s, "horizon": _horizon_name(policy.trend_recent_s),
        "delivered": r_del, "complaints": r_comp,
        "rate": round(recent_rate, 6), "lower_bound": round(lower, 6),
        "prior_rate": round(prior_rate, 6), "threshold": policy.complaint_pause,
        "forecast_rate": round(forecast, 6), "forecast_horizon_s": policy.trend_horizon_s})


def worst(findings: list[Finding]) -> Finding | None:
    return max(findings, key=lambda f: _SEVERITY[f.action]) if findings else None


_NEVER = -(10 ** 15)


class PairThrottle:
    """State machine of one decision key: (sender, domain), (sender, *) or (*, domain).

    Two counters: `window`, one-minute buckets over the last hour (acute
    trouble), `deliveries` (the hour and the complaint lag before it), `long`
    (hourly buckets over a day) and `week` (daily buckets over a week) for slow
    burns; about 3 KB
    pickled. `fresh_ms` marks the last pause: the hour is judged from there
    on, with complaints counted only from `pause_tail_s` later (the earlier
    ones are about mail sent before the pause).
    """

    __slots__ = ("sender", "domain", "window", "action", "factor", "until_ms", "incidents",
                 "last_incident_ms", "last_trouble_ms", "last_decrease_ms", "ramp_next_ms",
                 "seq", "long", "week", "fresh_ms", "long_hold", "since_step",
                 "last_step_ms", "deliveries", "acc", "acc_hour", "acc_minute",
                 "acc_delivered")

    def __init__(self, sender: str, domain: str, policy: ThrottlePolicy):
        self.sender, self.domain = sender, domain
        self.window = RollingCounts(KINDS, policy.bucket_s, policy.window_s // policy.bucket_s)
        # deliveries over the hour and the complaint lag before it: what the complaints are about
        self.deliveries: RollingCounts | None = _delivery_counts(policy)
        self.acc, self.acc_hour = [0] * L_KINDS, -1  # this hour's counts, not yet in `long`
        self.acc_minute, self.acc_delivered = -1, 0  # this minute's, not yet in `deliveries`
        self.long: RollingCounts | None = _long_counts(policy)
        self.week: RollingCounts | None = _week_counts(policy)
        self.action, self.factor, self.until_ms = ALLOW, 1.0, 0
        self.incidents, self.last_incident_ms = 0, _NEVER
        self.last_trouble_ms = self.last_decrease_ms = self.ramp_next_ms = 0
        self.seq = 0
        self.fresh_ms = _NEVER
        self.long_hold = False  # the last trouble was a day or week horizon
        self.since_step = 0  # deliveries since the last change of rate (while not allowed)
        self.last_step_ms = 0

    def __setstate__(self, state: Any) -> None:
        """Resume from a snapshot; one taken before a field existed gets its default."""
        slots = state[1] if isinstance(state, tuple) else state
        # made on the next signal, from the policy
        self.long, self.week, self.deliveries, self.fresh_ms = None, None, None, _NEVER
        self.acc, self.acc_hour, self.acc_minute, self.acc_delivered = [0] * L_KINDS, -1, -1, 0
        self.long_hold, self.since_step, self.last_step_ms = False, 0, 0
        for name, value in (slots or {}).items():
            setattr(self, name, value)

    def observe(self, sig: Signal, policy: ThrottlePolicy, judge: bool = True
                ) -> Decision | None:
        """Count the signal; return a decision if the state changed."""
        now, kind = sig.ts_ms, sig.kind
        self.window.add(now, kind)
        # The day/week and delivery counters are fed in batches (this hour's counts,
        # this minute's deliveries), flushed when the hour or minute rolls or before
        # they are judged: most signals cost an increment.
        hour = now // (policy.long_bucket_s * 1000)
        if hour == self.acc_hour:
            self.acc[_LONG_KIND[kind]] += 1
        elif hour > self.acc_hour:
            self._flush_long(policy)
            self.acc_hour = hour
            self.acc[_LONG_KIND[kind]] += 1
        else:  # older than this hour: straight in
            self._flush_long(policy)
            self._add_long(now, _LONG_KIND[kind], 1)
        if kind == DELIVERED:
            minute = now // (policy.bucket_s * 1000)
            if minute == self.acc_minute:
                self.acc_delivered += 1
            else:
                self._flush_deliveries(policy)
                if minute > self.acc_minute:
                    self.acc_minute, self.acc_delivered = minute, 1
                else:
                    self._delivery_counts(policy).add(now, 0)
            if self.action != ALLOW:
                self.since_step += 1
        if judge and kind in _NEGATIVE:
            view = self.hour(now, policy)
            findings = assess(self.window, policy, view=view)
            if kind in _RATE_KINDS:
                self._flush_long(policy)
                findings += assess_long(self.long, self.week, self.recent(now, policy, view),
                                        policy, since_ms=self._long_since(policy))
            found = worst(findings)
            if found is not None:
                decision = self._trouble(found, now, policy)
                if decision is not None:
                    return decision
        return self._recover(now, policy) if self.action != ALLOW else None

    def _long_since(self, policy: ThrottlePolicy) -> int | None:
        """Where the day and week horizons start: after the last pause's complaint tail."""
        return None if self.fresh_ms == _NEVER else self.fresh_ms + policy.pause_tail_s * 1000

    def _add_long(self, ts_ms: int, long_kind: int, n: int) -> None:
        if self.long is None or self.week is None:
            raise AssertionError("flush first")
        self.long.add(ts_ms, long_kind, n)
        if long_kind == L_DELIVERED:
            self.week.add(ts_ms, W_DELIVERED, n)
        elif long_kind == L_COMPLAINT:
            self.week.add(ts_ms, W_COMPLAINT, n)

    def _flush_long(self, policy: ThrottlePolicy) -> None:
        if self.long is None:  # a snapshot from before the horizons, or a new pair
            self.long, self.week = _long_counts(policy), _week_counts(policy)
            self.acc, self.acc_hour = [0] * L_KINDS, -1
        acc = self.acc
        if self.acc_hour >= 0 and any(acc):
            at = self.acc_hour * policy.long_bucket_s * 1000
            for k in range(L_KINDS):
                if acc[k]:
                    self._add_long(at, k, acc[k])
                    acc[k] = 0

    def _delivery_counts(self, policy: ThrottlePolicy) -> RollingCounts:
        if self.deliveries is None:
            self.deliveries = _delivery_counts(policy)
        return self.deliveries

    def _flush_deliveries(self, policy: ThrottlePolicy) -> None:
        if self.acc_delivered:
            self._delivery_counts(policy).add(self.acc_minute * policy.bucket_s * 1000, 0,
                                              self.acc_delivered)
            self.acc_delivered = 0

    def hour(self, now: int, policy: ThrottlePolicy) -> HourView:
        self._flush_deliveries(policy)
        return hour_view(self.window, self._delivery_counts(policy), now, self.fresh_ms,
                         policy)

    def recent(self, now: int, policy: ThrottlePolicy, view: HourView, at_least: int = 0,
               max_s: int = 0) -> list[int]:
        """[delivered, complaints, hard bounces, attempts, unsubscribes(, 1 after a pause)]
        over the recent
        hours: the matured hour if it holds `at_least` (`recent_min_delivered`)
        deliveries, otherwise the newest hourly buckets that do (a small pair needs
        several hours to say). Within the hour after a pause, only the mail sent since
        counts (the pause has acted on what came before)."""
        at_least = at_least or policy.recent_min_delivered
        max_s = max_s or policy.recent_max_s
        hour = view.counts
        after_pause = now - self.fresh_ms < (policy.window_s + policy.pause_tail_s) * 1000
        if view.delivered >= at_least or after_pause:
            return [view.delivered, hour[COMPLAINT], hour[HARD],
                    sum(hour[k] for k in _ATTEMPTS), hour[UNSUBSCRIBE], int(after_pause)]
        long = self.long
        assert long is not None
        n = long.hours_back(L_DELIVERED, at_least,
                            max_s // policy.long_bucket_s)
        r = long.recent(n)
        return [r[L_DELIVERED], r[L_COMPLAINT], r[L_HARD],
                r[L_DELIVERED] + r[L_HARD] + r[L_OTHER_ATTEMPT], r[L_UNSUBSCRIBE]]

    def _trouble(self, found: Finding, now: int, policy: ThrottlePolicy) -> Decision | None:
        self.last_trouble_ms = now
        self.long_hold = found.evidence.get("window_s", 0) > policy.window_s
        self.since_step = 0
        if self.action == PAUSE and now < self.until_ms:
            return None
        if self.long_hold and self.action != ALLOW:
            # A day or week horizon only starts a slow-down and holds it; it never
            # halves further: its complaints are mostly about mail sent before the
            # current rate (and a pause's expiry ramps from 0.25 as usual).
            return None
        if found.action == PAUSE:
            repeat = now - self.last_incident_ms < policy.incident_memory_s * 1000
            self.incidents = self.incidents + 1 if repeat else 1
            self.last_incident_ms = now
            pause_s = min(policy.pause_base_s * 2 ** (self.incidents - 1), policy.pause_max_s)
            self.action, self.factor, self.until_ms = PAUSE, 0.0, now + pause_s * 1000
            evidence = {**found.evidence, "incidents": self.incidents, "pause_s": pause_s}
            # Judge the hour afresh from here (not emptied: what arrives later still counts).
            self.fresh_ms = now
            return self._decide(found.reason, evidence, now)
        if self.action == ALLOW:
            factor = policy.slow_factor
        elif self.action == PAUSE:  # the pause is over, the trouble is not: no ramp yet
            factor = policy.ramp_start
        elif now - self.last_decrease_ms >= self._decrease_interval_s(found, policy) * 1000:
            factor = max(policy.min_factor, round(self.factor * policy.slow_factor, 4))
        else:
            return None
        self.last_decrease_ms = now
        self.ramp_next_ms = now + policy.ramp_interval_s * 1000
        if self.action == SLOW and factor == self.factor:
            return None  # at the floor already: nothing new to publish
        self.action, self.factor, self.until_ms = SLOW, factor, 0
        return self._decide(found.reason, found.evidence, now)

    @staticmethod
    def _decrease_interval_s(found: Finding, policy: ThrottlePolicy) -> int:
        """Complaints and unsubscribes arriving now are about mail sent up to the lag
        ago: halve again only once they are about mail sent at the reduced rate."""
        if found.reason in _LAGGED_REASONS:
            return max(policy.decrease_interval_s, policy.complaint_lag_s)
        return policy.decrease_interval_s

    def _recover(self, now: int, policy: ThrottlePolicy) -> Decision | None:
        if self.action == PAUSE:
            if now < self.until_ms:
                return None
            self.action, self.factor, self.until_ms = SLOW, policy.ramp_start, 0
            self.ramp_next_ms = now + policy.ramp_interval_s * 1000
            return self._decide("recovering", {"after": "pause expired"}, now)
        if now < self.ramp_next_ms or now - self.last_trouble_ms < policy.ramp_interval_s * 1000:
            return None
        self.ramp_next_ms = now + policy.ramp_interval_s * 1000
        view = self.hour(now, policy)
        clean_for_ms = now - self.last_trouble_ms
        if self.long_hold:
            # Slowed on a day or week of evidence (a small or slow-burning pair): each
            # step up waits for enough new mail, whose complaints have had time to come.
            waited = min(clean_for_ms, now - self.last_step_ms)
            if ((self.since_step < policy.recovery_step_delivered
                    and waited < policy.recovery_step_wait_s * 1000)
                    or clean_for_ms < policy.complaint_lag_s * 1000):
                return None
        elif (view.delivered < policy.recovery_min_delivered
                and now - max(self.last_trouble_ms, self.fresh_ms + policy.pause_tail_s * 1000)
                < policy.recovery_max_wait_s * 1000):
            # the complaints about the mail sent since have not arrived yet (and the
            # pause's tail, when complaints are not counted, is no evidence of clean)
            return None
        scale = policy.clear_ratio
        self._flush_long(policy)
        long, week = self.long, self.week
        assert long is not None and week is not None
        if (assess(self.window, policy, scale, view=view, recovering=True)
                or assess_long(long, week, self.recent(now, policy, view,
                                                 policy.recovery_recent_min_delivered,
                                                 policy.recovery_recent_max_s),
                               policy, scale, recovering=True,
                               since_ms=self._long_since(policy))):
            return None  # not clean enough yet (hysteresis): hold the current rate
        pause_s = min(policy.pause_base_s * 2 ** max(self.incidents - 1, 0), policy.pause_max_s)
        if (policy.ramp_after_pause > 1.0 and self.fresh_ms != _NEVER
                and self.last_trouble_ms <= self.fresh_ms + pause_s * 1000
                and view.counts[COMPLAINT] == 0
                and view.delivered >= policy.recovery_min_delivered):
            # strong evidence: no trouble since the pause ended and not one complaint on
            # enough mail sent after it: the incident is over, so each clean step doubles
            # the rate (0.25, 0.5, 1.0) instead of adding to it
            self.factor = min(1.0, round(self.factor * policy.ramp_after_pause, 4))
        else:
            self.factor = min(1.0, round(self.factor + policy.ramp_step, 4))
        self.action = ALLOW if self.factor >= 1.0 else SLOW
        self.since_step, self.last_step_ms = 0, now
        return self._decide("recovered" if self.action == ALLOW else "recovering",
                            {"window_s": policy.window_s,
                             "delivered": view.delivered,
                             "complaints": view.counts[COMPLAINT],
                             "clean_for_s": clean_for_ms // 1000}, now)

    def _decide(self, reason: str, evidence: dict[str, Any], now: int) -> Decision:
        self.seq += 1
        return Decision(self.sender, self.domain, self.action, self.factor, self.until_ms,
                        reason, evidence, now, self.seq)

    @property
    def troubled(self) -> bool:
        return self.action != ALLOW


def _delivery_counts(policy: ThrottlePolicy) -> RollingCounts:
    return RollingCounts(1, policy.bucket_s,
                         (policy.window_s + 2 * policy.complaint_lag_s) // policy.bucket_s)


def _long_counts(policy: ThrottlePolicy) -> RollingCounts:
    return RollingCounts(L_KINDS, policy.long_bucket_s, policy.day_s // policy.long_bucket_s)


def _week_counts(policy: ThrottlePolicy) -> RollingCounts:
    return RollingCounts(2, 86_400, policy.week_s // 86_400)


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
