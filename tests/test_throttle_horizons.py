"""The throttle's day and week horizons, evidence under many comparisons, and recovery
that waits for lagged complaints: plain signal lists and the seeded simulator."""

from __future__ import annotations

import math
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.throttle import (
    COMPLAINT,
    DELIVERED,
    HARD,
    KINDS,
    L_COMPLAINT,
    L_DELIVERED,
    UNSUBSCRIBE,
    PairThrottle,
    Signal,
    ThrottleBook,
    ThrottlePolicy,
    _long_counts,
    _week_counts,
    assess_long,
)
from operators.throttle_sim import PairSpec, Scenario, Surge, healthy_pairs, ramp, simulate, steady
from operators.windows import wilson_lower_bound

S, GMAIL = "news.acme.example", "gmail.com"
MIN, HOUR = 60_000, 3_600_000
KEY = f"{S}|{GMAIL}"


def wilson_by_hand(k: int, n: int, z: float) -> float:
    """The one-sided Wilson lower bound, written out independently of operators/windows.py."""
    p = k / n
    return (p + z * z / (2 * n) - z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (
        1 + z * z / n)


def steady_hours(per_hour: int, hours: int, every: int = 0, kind: int = COMPLAINT,
                 start_ms: int = 0, attempt_kind: int = DELIVERED) -> list[Signal]:
    """`per_hour` attempts an hour, evenly spaced; one `kind` signal after every
    `every`-th attempt (0: none), a minute after it."""
    signals = []
    step = HOUR // per_hour
    for i in range(per_hour * hours):
        ts = start_ms + i * step
        signals.append(Signal(ts, S, GMAIL, attempt_kind))
        if every and (i + 1) % every == 0:
            signals.append(Signal(ts + MIN, S, GMAIL, kind))
    signals.sort(key=lambda s: s.ts_ms)
    return signals


def first(decisions: list, reason: str | None = None):
    return next(d for d in decisions if reason is None or d.reason == reason)


# -- the day horizon ---------------------------------------------------------------------

def test_day_horizon_slows_200_an_hour_at_a_sustained_0_4_percent_within_the_day():
    # 200 deliveries an hour, one complaint per 250 (0.4%): the hour never holds the
    # 1,000 deliveries it needs, the day does.
    decisions = ThrottleBook("sender", S).apply(steady_hours(200, 24, every=250))
    d = first(decisions)
    assert (d.action, d.reason, d.rate_factor) == ("slow", "complaint_rate", 0.5)
    ev = d.evidence
    assert (ev["horizon"], ev["window_s"], ev["threshold"]) == ("24h", 86_400, 0.001)
    # Hand-computed: the k-th complaint comes a minute after delivery 250·k. The day
    # horizon needs >= 2,000 deliveries and >= 10 complaints, so the 10th complaint (a
    # minute after delivery 2,500: 2,503 delivered by then) is the first that can act:
    # 0.3995%, bound at z = 4: (p + z²/2n - z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)
    # = 0.1213% > 0.1%. (The 9th, in 2,253, already had 0.1145%: the event count holds it.)
    assert (ev["complaints"], ev["delivered"]) == (10, 2503)
    assert ev["rate"] == round(10 / 2503, 6) == 0.003995
    assert ev["lower_bound"] == round(wilson_by_hand(10, 2503, 4.0), 6) == 0.001213
    assert d.event_ts_ms < 24 * HOUR  # within the day


def test_one_complaint_in_thirty_deliveries_does_nothing_on_any_horizon():
    signals = steady_hours(30, 24 * 7, every=30)  # a week of it: 1 in 30, 30 an hour
    assert ThrottleBook("sender", S).apply(signals) == []


def test_the_issue_example_three_complaints_in_1161_deliveries_does_not_slow():
    # 0.258% observed; the 95% bound is 0.103% (> 0.1%: the old rule fired), ours 0.04%
    signals = steady_hours(1161, 1, every=387)
    assert sum(s.kind == COMPLAINT for s in signals) == 3
    assert round(wilson_lower_bound(3, 1161, 1.645), 5) == 0.00103
    assert ThrottleBook("sender", S).apply(signals) == []


def test_week_horizon_catches_what_no_day_holds():
    # 70 deliveries an hour (1,680 a day: under the day's 2,000), 0.4% complaints
    decisions = ThrottleBook("sender", S).apply(steady_hours(70, 24 * 7, every=250))
    d = first(decisions)
    ev = d.evidence
    assert (d.action, d.reason, ev["horizon"], ev["window_s"]) == (
        "slow", "complaint_rate", "7d", 604_800)
    # the week needs 10,000 deliveries: the 40th complaint (after delivery 10,000) is
    # the first judged; 40 in 10,001: 0.39996%, bound at z = 4: 0.2148%
    k, n = ev["complaints"], ev["delivered"]
    assert (k, n) == (40, 10_001)
    assert ev["lower_bound"] == round(wilson_by_hand(40, 10_001, 4.0), 6) == 0.002148


def test_day_horizon_for_hard_bounces_and_unsubscribes():
    # 100 attempts an hour (the hour's minimum is 200), 8% hard bounces
    hard = steady_hours(100, 24, every=12, kind=HARD)
    hard = [s for s in hard if s.kind != HARD] + [
        Signal(s.ts_ms, s.sender, s.domain, HARD) for s in hard if s.kind == HARD]
    d = first(ThrottleBook("sender", S).apply(sorted(hard, key=lambda s: s.ts_ms)))
    assert (d.reason, d.evidence["horizon"], d.action) == ("hard_bounce_rate", "24h", "slow")
    ev = d.evidence
    assert ev["attempts"] >= 2000
    assert ev["lower_bound"] == round(wilson_by_hand(ev["hard_bounces"], ev["attempts"], 4.0),
                                      6) > 0.05
    # 100 deliveries an hour (the hour's minimum is 500), 2.5% unsubscribes
    unsub = steady_hours(100, 24, every=40, kind=UNSUBSCRIBE)
    d = first(ThrottleBook("sender", S).apply(unsub))
    assert (d.reason, d.evidence["horizon"]) == ("unsubscribe_rate", "24h")
    ev = d.evidence
    assert ev["delivered"] >= 2000 and ev["unsubscribes"] >= 10
    assert ev["lower_bound"] == round(wilson_by_hand(ev["unsubscribes"], ev["delivered"], 4.0),
                                      6) > 0.01


def test_day_trend_warns_before_the_daily_rate_crosses_the_limit():
    # 400 an hour: 18 calm hours at 0.04%, then 6 hours at 0.5%
    calm = steady_hours(400, 18, every=2500)
    rising = steady_hours(400, 6, every=200, start_ms=18 * HOUR)
    decisions = ThrottleBook("sender", S).apply(sorted(calm + rising, key=lambda s: s.ts_ms))
    d = first(decisions)
    ev = d.evidence
    assert (d.reason, ev["horizon"], ev["window_s"]) == ("complaint_trend", "6h", 21_600)
    assert ev["prior_rate"] < ev["rate"] and ev["forecast_rate"] >= 0.003
    assert ev["lower_bound"] == round(wilson_by_hand(ev["complaints"], ev["delivered"], 4.0), 6)
    # the daily rate has not crossed yet: the day horizon alone would still be silent
    day_c = sum(s.kind == COMPLAINT and s.ts_ms <= d.event_ts_ms for s in calm + rising)
    day_d = sum(s.kind == DELIVERED and s.ts_ms <= d.event_ts_ms for s in calm + rising)
    assert wilson_by_hand(day_c, day_d, 4.0) <= 0.001


def test_an_incident_earlier_in_the_day_does_not_hold_back_a_clean_pair():
    # a bad morning (0.8%), then clean hours with enough mail to show it
    bad = steady_hours(500, 6, every=125)
    clean = steady_hours(3000, 4, start_ms=6 * HOUR)
    book = ThrottleBook("sender", S)
    book.apply(sorted(bad + clean, key=lambda s: s.ts_ms))
    assert book.state()[KEY]["action"] == "allow"
    # one healthy complaint now: the day still reads above 0.1%, the recent hours do not
    late = [Signal(10 * HOUR + MIN, S, GMAIL, DELIVERED), Signal(10 * HOUR + 2 * MIN, S, GMAIL,
                                                                 COMPLAINT)]
    assert book.apply(late) == []


# -- decisions --------------------------------------------------------------------------

def test_no_identical_decision_is_republished_at_the_floor():
    book = ThrottleBook("sender", S)
    out = book.apply(steady_hours(5000, 3, every=100))  # 1%, sender ignores every decision
    slows = [(d.action, d.rate_factor) for d in out if d.action == "slow"]
    assert slows and slows[-1] == ("slow", 0.05) or any(d.action == "pause" for d in out)
    keys = [(d.action, d.rate_factor, d.until_ms) for d in out]
    assert all(a != b for a, b in zip(keys, keys[1:], strict=False)), keys


def test_floor_is_published_once():
    policy = ThrottlePolicy(complaint_pause=1.0)  # slow only, to reach the floor
    out = ThrottleBook("sender", S, policy).apply(steady_hours(5000, 4, every=100))
    factors = [d.rate_factor for d in out]
    assert factors.count(0.05) == 1 and factors[-1] == 0.05, factors


# -- recovery ---------------------------------------------------------------------------

def test_recovery_after_a_pause_waits_for_the_complaints_on_the_resumed_mail():
    """The issue's incident: paused, and the true rate still 0.47% afterwards. The old
    code emptied the window at the pause and declared `recovered` at 0.25× volume."""
    bad = PairSpec(S, GMAIL, 3000, steady(0.0047))
    result = simulate(Scenario([bad], hours=8, seed=3))
    actions = [d.action for d in result.decisions]
    assert "pause" in actions or "slow" in actions
    assert "allow" not in actions, [(d.action, d.rate_factor, d.reason) for d in
                                    result.decisions]


def test_recovery_after_an_incident_within_two_hours_without_flapping():
    for seed in range(1, 9):
        # an acute incident (2% complaints) from hour 2 to hour 3, then healthy again
        pair = PairSpec(S, GMAIL, 3000, ramp(0.0004, 0.02, 2, 2.01, back_at_h=3))
        result = simulate(Scenario([pair], hours=10, seed=seed))
        ds = result.decisions
        trace = [(round(result.hours(d), 2), d.action, d.rate_factor, d.reason) for d in ds]
        assert ds and ds[0].action in ("slow", "pause")
        recovered = [d for d in ds if d.action == "allow"]
        assert recovered, trace
        # the incident's complaints trail in for 1-1.5 h after the pause (exponential lag,
        # mean 25 min); the pause's 90-min tail is not judged again, neither on the hour nor
        # on the day, and the clean mail sent after it doubles the rate per step:
        # full rate 1.55-1.92 h after the incident ends, 2.1-2.27 h after the pause
        pause = next(d for d in ds if d.action == "pause")
        assert recovered[0].event_ts_ms - pause.event_ts_ms <= 2.3 * HOUR, trace
        assert result.hours(recovered[0]) - 3 <= 2.0, trace
        after = [d for d in ds if d.event_ts_ms > recovered[0].event_ts_ms]
        assert after == [], trace


def test_no_full_rate_while_a_longer_incident_goes_on():
    """The quicker recovery must not let a pair back while its mail is still bad: 2% for
    three hours, paused within the first; the mail resumed at 0.25 is still bad, so no
    step up before the incident ends (no clean hour from lack of counted complaints),
    and none of the pause's tail holds back the pair afterwards (no flapping)."""
    for seed in (1, 2, 3):
        pair = PairSpec(S, GMAIL, 3000, ramp(0.0004, 0.02, 2, 2.01, back_at_h=5))
        result = simulate(Scenario([pair], hours=10, seed=seed))
        ds = result.decisions
        trace = [(round(result.hours(d), 2), d.action, d.rate_factor, d.reason) for d in ds]
        ups = [d for d in ds if d.reason in ("recovering", "recovered") and d.rate_factor > 0.25]
        assert ups and all(result.hours(d) > 5 for d in ups), trace
        recovered = [d for d in ds if d.action == "allow"]
        assert recovered, trace
        assert [d for d in ds if d.event_ts_ms > recovered[0].event_ts_ms] == [], trace


def test_the_day_horizon_starts_after_the_pause_tail():
    """After a pause, the day and week horizons count only from the end of the pause's
    complaint tail: the incident the pause acted on does not slow the mail after it."""
    policy = ThrottlePolicy()
    long, week = _long_counts(policy), _week_counts(policy)
    for h in range(8):  # 8 hours at 1,000 an hour; 1% complaints in hour 2 (the incident)
        long.add(h * HOUR, L_DELIVERED, 1000)
        week.add(h * HOUR, 0, 1000)
        if h == 2:
            long.add(h * HOUR, L_COMPLAINT, 20)
            week.add(h * HOUR, 1, 20)
    recent = [1000, 3, 0, 1000, 0]  # the recent hours support a complaint finding
    assert assess_long(long, week, recent, policy)  # the whole day: slowed
    paused_at = 2 * HOUR + 30 * MIN
    assert assess_long(long, week, recent, policy,
                       since_ms=paused_at + policy.pause_tail_s * 1000) == []


# -- the simulator's goals (the bench runs them longer: bench/throttle_false_alarms.py) ----

def test_slow_burns_are_restricted_in_time():
    """0.05% → 0.6% over 8 hours. The stricter evidence (z = 4, for no false alarms over
    72 pairs × days) costs time at mid volumes: see the README for measured delays."""
    crossed_h = 8 * (0.003 - 0.0005) / (0.006 - 0.0005)  # the true rate passes 0.3% here
    late = []
    for seed in range(1, 9):
        big = PairSpec("big.example", GMAIL, 5000, ramp(0.0005, 0.006, 0, 8))
        r = simulate(Scenario([big], hours=6, seed=seed))
        d = r.first_restriction(big.key)
        assert d is not None and r.hours(d) <= crossed_h + 1.0, seed
        late.append(r.hours(d) > crossed_h + 0.5)
    assert sum(late) <= 2  # most within half an hour of crossing 0.3%
    for seed in (1, 2, 3):
        small = PairSpec("small.example", GMAIL, 300, ramp(0.0005, 0.006, 0, 8))
        r = simulate(Scenario([small], hours=16, seed=seed))
        d = r.first_restriction(small.key)
        assert d is not None and r.hours(d) <= 16, seed  # within the working day
        assert d.evidence["horizon"] in ("24h", "6h")


def test_healthy_traffic_with_a_surge_restricts_nothing():
    pairs = healthy_pairs(4, ["gmail.com", "yahoo.com", "outlook.com"], seed=7,
                          max_per_hour=3000)
    result = simulate(Scenario(pairs, hours=30, seed=7, surges=[Surge(8, 10, 8.0,
                                                                      "s1.example")]))
    assert result.restricted_keys() == set()


# -- snapshots --------------------------------------------------------------------------

def test_a_snapshot_from_before_the_horizons_resumes():
    """Bytewax snapshots pickle ThrottleBooks; one taken by the previous version lacks
    the new fields (day/week counters, delivery counter, pause mark, ...) and settings."""
    book = ThrottleBook("sender", S)
    book.apply(steady_hours(2000, 1, every=500))
    pair = book.pairs[GMAIL]
    for name in ("long", "week", "deliveries", "fresh_ms", "long_hold", "since_step",
                 "last_step_ms"):
        object.__delattr__(pair, name)  # as the old class had no such slot
    for name in ("rate_z", "pause_z", "complaint_lag_s", "day_s", "week_s"):
        object.__delattr__(book.policy, name)  # an old policy: settings missing
    old = pickle.loads(pickle.dumps(book))
    assert old.policy.rate_z == 4.0 and old.policy.day_s == 86_400
    resumed = old.pairs[GMAIL]
    assert resumed.long is None and resumed.since_step == 0
    decisions = old.apply(steady_hours(3000, 2, every=100, start_ms=HOUR))
    assert decisions and decisions[0].action in ("slow", "pause")
    assert resumed.long is not None and resumed.deliveries is not None
    assert old.state()[KEY]["action"] in ("slow", "pause")


def test_pair_state_stays_small():
    pair = PairThrottle(S, GMAIL, ThrottlePolicy())
    # an hour of minutes (8 kinds), 90 minutes of deliveries, 24 hours (5 kinds), 7 days (2)
    assert len(pickle.dumps(pair)) < 4_000


# --- no signal sequence can stop the job (found by the ingest end-to-end test) ------------
@pytest.mark.parametrize("kind", [COMPLAINT, UNSUBSCRIBE, HARD])
def test_more_negatives_than_recent_deliveries_is_judged_not_a_crash(kind):
    """One delivery, then three complaints (about mail sent before the window): the
    recent rate is above 1, and the Wilson bound took the root of a negative number."""
    book = ThrottleBook("sender", S)
    signals = [Signal(0, S, GMAIL, DELIVERED)] + [Signal(i * 1000, S, GMAIL, kind)
                                                  for i in range(1, 4)]
    assert book.apply(signals) == []  # raised ValueError: math domain error


KINDS_ST = st.sampled_from(range(KINDS))


@settings(derandomize=True, max_examples=150, deadline=None, database=None)
@given(st.lists(st.tuples(st.integers(0, 9 * 24 * 3600), KINDS_ST,
                          st.sampled_from(["gmail.com", "yahoo.com", "outlook.com"]),
                          st.integers(1, 300)), max_size=40))
def test_any_signal_sequence_is_judged_never_raises(runs):
    """Bursts of any kind at any event time, in any order, on either kind of book."""
    signals = [Signal(ts * 1000 + i, S, domain, kind)
               for ts, kind, domain, n in runs for i in range(n)]
    for book in (ThrottleBook("sender", S), ThrottleBook("provider", "gmail.com")):
        for decision in book.apply(signals):
            assert decision.action in ("allow", "slow", "pause")
            assert 0.0 <= decision.rate_factor <= 1.0
