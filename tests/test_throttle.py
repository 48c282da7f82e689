"""operators/throttle.py driven by plain signal lists: the deliverability cases users rely on."""

from __future__ import annotations

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

S, GMAIL, YAHOO = "news.acme.example", "gmail.com", "yahoo.com"
MIN = 60_000


def spread(kind_counts: dict[int, int], start_ms: int, span_ms: int, sender: str = S,
           domain: str = GMAIL) -> list[Signal]:
    """Interleave signals of several kinds evenly over a span of event time."""
    total = sum(kind_counts.values())
    step = span_ms / total
    signals, placed = [], {k: 0 for k in kind_counts}
    for i in range(total):
        # pick the kind that is furthest behind its share
        kind = min(kind_counts, key=lambda k: (placed[k] + 1) / kind_counts[k])
        placed[kind] += 1
        signals.append(Signal(start_ms + int(i * step), sender, domain, kind))
    return signals


def run(signals: list[Signal], scope: str = "sender", name: str = S,
        policy: ThrottlePolicy | None = None) -> list:
    return ThrottleBook(scope, name, policy).apply(signals)


def test_one_complaint_in_thirty_deliveries_does_not_pause():
    assert run(spread({DELIVERED: 30, COMPLAINT: 1}, 0, 10 * MIN)) == []


def test_thirty_complaints_in_five_thousand_deliveries_pause():
    decisions = run(spread({DELIVERED: 5000, COMPLAINT: 30}, 0, 50 * MIN))
    pause = [d for d in decisions if d.action == "pause"]
    assert pause, decisions
    d = pause[0]
    assert (d.sender, d.domain, d.reason, d.rate_factor) == (S, GMAIL, "complaint_rate", 0.0)
    ev = d.evidence
    assert ev["threshold"] == 0.003 and ev["lower_bound"] > 0.003
    assert ev["complaints"] <= 30 and ev["delivered"] >= 1000
    assert d.until_ms == d.event_ts_ms + 15 * MIN
    assert all(x.domain == GMAIL for x in decisions)  # one pair only: no roll-up


def test_gmail_rate_limit_burst_slows_the_sender_at_gmail_only_within_a_few_events():
    background = spread({DELIVERED: 400}, 0, 5 * MIN) + spread({DELIVERED: 400}, 0, 5 * MIN,
                                                               domain=YAHOO)
    background.sort(key=lambda s: s.ts_ms)
    burst = [Signal(5 * MIN + i * 500, S, GMAIL, RATE_LIMIT) for i in range(10)]
    decisions = run(background + burst)
    assert decisions, "a 421 4.7.28 burst must slow the pair"
    first = decisions[0]
    assert (first.domain, first.action, first.reason) == (GMAIL, "slow", "rate_limit")
    assert first.event_ts_ms <= burst[4].ts_ms  # within five rate-limit responses
    assert {d.domain for d in decisions} == {GMAIL}


def test_blocks_act_immediately():
    signals = spread({DELIVERED: 200}, 0, 5 * MIN)
    signals += [Signal(5 * MIN + i, S, GMAIL, BLOCK) for i in range(5)]
    decisions = run(signals)
    assert [(d.action, d.reason) for d in decisions] == [("slow", "block_rate")]
    many = signals + [Signal(6 * MIN + i, S, GMAIL, BLOCK) for i in range(100)]
    assert run(many)[-1].action == "pause"


def test_hard_bounces_slow_then_pause():
    slow = run(spread({DELIVERED: 900, HARD: 100}, 0, 30 * MIN))
    assert slow and slow[0].reason == "hard_bounce_rate" and slow[0].action == "slow"
    pause = run(spread({DELIVERED: 700, HARD: 300}, 0, 30 * MIN))
    assert any(d.action == "pause" and d.reason == "hard_bounce_rate" for d in pause)


def test_unsubscribe_spike_slows():
    decisions = run(spread({DELIVERED: 2000, UNSUBSCRIBE: 60}, 0, 30 * MIN))
    assert decisions and decisions[0].reason == "unsubscribe_rate"


def _clean_after_pause(policy: ThrottlePolicy) -> tuple[Decision, list[Decision]]:
    trouble = spread({DELIVERED: 5000, COMPLAINT: 40}, 0, 40 * MIN)
    book = ThrottleBook("sender", S, policy)
    paused = [d for d in book.apply(trouble) if d.action == "pause"][0]
    book = ThrottleBook("sender", S, policy)  # the sender stops sending at the pause:
    book.apply([s for s in trouble if s.ts_ms <= paused.event_ts_ms])
    # Two hours: the clean period is judged on deliveries old enough for their
    # complaints to have arrived (complaint_lag_s), so the ramp starts later than
    # it did when the pause emptied the window (issue 14).
    clean = spread({DELIVERED: 8000}, paused.until_ms, 120 * MIN)
    return paused, book.apply(clean)


def test_pause_expires_then_ramps_up_additively_on_clean_traffic():
    policy = ThrottlePolicy(ramp_after_pause=1.0)  # additive increase only
    paused, after = _clean_after_pause(policy)
    resume_at = paused.until_ms
    assert [(d.action, d.rate_factor, d.reason) for d in after] == [
        ("slow", 0.25, "recovering"), ("slow", 0.5, "recovering"),
        ("slow", 0.75, "recovering"), ("allow", 1.0, "recovered")]
    gaps = [b.event_ts_ms - a.event_ts_ms for a, b in zip(after, after[1:], strict=False)]
    assert all(g >= policy.ramp_interval_s * 1000 for g in gaps)
    # the first step up waits for complaints about the resumed mail to arrive
    assert after[1].event_ts_ms - resume_at >= policy.complaint_lag_s * 1000
    assert after[-1].event_ts_ms - resume_at <= 2 * 60 * MIN
    assert [d.seq for d in after] == list(range(paused.seq + 1, paused.seq + 5))


def test_pause_expires_then_doubles_on_clean_mail_sent_after_it():
    """Clean since the pause (no complaint on the resumed mail): 0.25, 0.5, 1.0."""
    policy = ThrottlePolicy()
    paused, after = _clean_after_pause(policy)
    assert [(d.action, d.rate_factor, d.reason) for d in after] == [
        ("slow", 0.25, "recovering"), ("slow", 0.5, "recovering"),
        ("allow", 1.0, "recovered")]
    gaps = [b.event_ts_ms - a.event_ts_ms for a, b in zip(after, after[1:], strict=False)]
    assert all(g >= policy.ramp_interval_s * 1000 for g in gaps)
    # the first step up waits until complaints count again and the mail they are about
    # (sent from a complaint lag before) is old enough
    assert after[1].event_ts_ms - paused.event_ts_ms >= policy.pause_tail_s * 1000


def test_repeated_incidents_back_off_exponentially():
    book = ThrottleBook("sender", S)
    durations, t = [], 0
    for _ in range(3):
        # the sender honours each pause: it stops sending at the decision
        # two hours: complaints are set against mail at least complaint_lag_s old, and
        # those within pause_tail_s (90 min) of a pause are about the mail before it
        for signal in spread({DELIVERED: 18000, COMPLAINT: 240}, t, 120 * MIN):
            pauses = [d for d in book.apply([signal]) if d.action == "pause"]
            if pauses:
                durations.append(pauses[0].until_ms - pauses[0].event_ts_ms)
                t = pauses[0].until_ms + MIN
                break
    assert durations == [15 * MIN, 30 * MIN, 60 * MIN]


def test_no_flapping_when_the_rate_oscillates_around_the_threshold():
    book = ThrottleBook("sender", S)
    decisions = []
    for segment in range(12):  # two hours, ten minutes each, alternately bad and fine
        complaints = 4 if segment % 2 == 0 else 0
        decisions += book.apply(spread({DELIVERED: 1500, COMPLAINT: complaints} if complaints
                                       else {DELIVERED: 1500}, segment * 10 * MIN, 10 * MIN))
    actions = [d.action for d in decisions]
    assert "slow" in actions
    # never back to allow and straight into slow again: recovery needs a clean window
    flips = [(a.action, b.action) for a, b in zip(decisions, decisions[1:], strict=False)]
    assert ("allow", "slow") not in flips, actions
    gaps = [b.event_ts_ms - a.event_ts_ms for a, b in zip(decisions, decisions[1:],
                                                           strict=False)]
    assert all(g >= 5 * MIN for g in gaps), gaps


def test_sender_wide_rollup_needs_trouble_at_several_providers():
    domains = ["gmail.com", "yahoo.com", "outlook.com"]
    signals = []
    for i, domain in enumerate(domains):
        signals += spread({DELIVERED: 300}, 0, 5 * MIN, domain=domain)
        signals += [Signal(5 * MIN + i * 10_000 + j, S, domain, BLOCK) for j in range(6)]
    signals.sort(key=lambda s: s.ts_ms)
    decisions = run(signals)
    assert {(d.domain, d.action) for d in decisions if d.domain == ALL} == {(ALL, "slow")}
    one_provider = [s for s in signals if s.domain == "gmail.com" or s.kind == DELIVERED]
    assert all(d.domain != ALL for d in run(one_provider))


def test_provider_wide_rollup_from_many_senders():
    senders = ["a.example", "b.example", "c.example"]
    signals = []
    for i, sender in enumerate(senders):
        signals += spread({DELIVERED: 300}, 0, 5 * MIN, sender=sender)
        signals += [Signal(5 * MIN + i * 10_000 + j, sender, GMAIL, BLOCK) for j in range(6)]
    signals.sort(key=lambda s: s.ts_ms)
    decisions = run(signals, scope="provider", name=GMAIL)
    assert decisions and all((d.sender, d.domain) == (ALL, GMAIL) for d in decisions)
    assert decisions[0].action == "slow"


def test_early_warning_slows_before_the_hard_limit_with_a_forecast():
    # complaints are set against the mail sent complaint_lag_s earlier: calm first
    calm = spread({DELIVERED: 48000, COMPLAINT: 6}, 0, 90 * MIN)
    rising = spread({DELIVERED: 8000, COMPLAINT: 22}, 90 * MIN, 15 * MIN)
    decisions = run(calm + rising)
    assert decisions and decisions[0].reason == "complaint_trend"
    ev = decisions[0].evidence
    assert ev["forecast_rate"] >= 0.003 > ev["rate"] and ev["prior_rate"] < ev["rate"]


def test_replaying_the_same_input_gives_the_same_decisions():
    signals = spread({DELIVERED: 5000, COMPLAINT: 30, BLOCK: 8, RATE_LIMIT: 6}, 0, 90 * MIN)
    assert run(signals) == run(signals)
    assert run(signals)  # and there is something to compare


def test_late_signals_are_counted_not_used():
    book = ThrottleBook("sender", S)
    book.apply([Signal(120 * MIN, S, GMAIL, DELIVERED), Signal(0, S, GMAIL, COMPLAINT)])
    assert book.late == 1
    assert book.state()[f"{S}|{GMAIL}"]["counts"]["complaint"] == 0
