"""operators/convergence.py and operators/metrics.py with hand-computed expectations."""

from __future__ import annotations

from operators.convergence import (
    CONVERSION,
    DELIVERY,
    HUMAN_INTERACTION,
    LATENCY,
    MACHINE_INTERACTION,
    NEGATIVE,
    ConvergenceBook,
    FlowFact,
    quantile_exact,
)
from operators.metrics import MinuteEvent, MinuteMetrics

MIN = 60_000
H = 60 * MIN


def rows_by_window(rows):
    return {r.window: r for r in rows}


def test_definitions_on_a_small_flow():
    """Four recipients in flow `welcome` during one hour, checked at as_of = 60 min.

    entered: r1, r2, r3 delivered within the hour; r4 only 2 h earlier (so only in 24h).
    converged: r1 converts (attributed) at 30 min → 1 of 3 in 1h; r4's old conversion
    counts only in the 24h window, where r4 also entered.
    depth (1h): 3 human interactions (opens, clicks, replies) + 1 conversion = 4 over 3.
    raw depth adds the 2 machine opens: 6 / 3.
    latency (1h): 120 s, 300 s, 600 s → p50 = sorted[int(0.5·3)] = 300, p90 = sorted[2] = 600.
    negative rate (1h): 1 complaint over 3 deliveries.
    """
    book = ConvergenceBook()
    t0 = 10 * H  # the hour [t0, t0 + 60 min)
    facts = [
        FlowFact(t0 - 2 * H, "welcome", "r4", DELIVERY),
        FlowFact(t0 - 2 * H + MIN, "welcome", "r4", CONVERSION),
        FlowFact(t0 + 1 * MIN, "welcome", "r1", DELIVERY),
        FlowFact(t0 + 2 * MIN, "welcome", "r2", DELIVERY),
        FlowFact(t0 + 2 * MIN, "welcome", "r2", MACHINE_INTERACTION),
        FlowFact(t0 + 3 * MIN, "welcome", "r3", DELIVERY),
        FlowFact(t0 + 3 * MIN, "welcome", "r3", MACHINE_INTERACTION),
        FlowFact(t0 + 3 * MIN, "welcome", "r1", HUMAN_INTERACTION, 120.0),
        FlowFact(t0 + 7 * MIN, "welcome", "r2", HUMAN_INTERACTION, 300.0),
        FlowFact(t0 + 13 * MIN, "welcome", "r3", HUMAN_INTERACTION, 600.0),
        FlowFact(t0 + 20 * MIN, "welcome", "r3", NEGATIVE),
        FlowFact(t0 + 30 * MIN, "welcome", "r1", CONVERSION),
        FlowFact(t0 + 59 * MIN, "other", "x", DELIVERY),
    ]
    for fact in facts:
        book.observe(fact)
    # the first event of minute 60 reports as_of = t0 + 60 min, before counting itself
    rows = rows_by_window(r for r in book.observe(FlowFact(t0 + 60 * MIN, "welcome", "r9",
                                                            DELIVERY)) if r.flow_id == "welcome")
    h1 = rows["1h"]
    assert h1.as_of_ms == t0 + 60 * MIN
    assert (h1.entered, h1.converged) == (3, 1)
    assert h1.convergence_score == round(1 / 3, 6)
    assert h1.engagement_depth == round(4 / 3, 6)
    assert (h1.human_interactions, h1.conversions) == (4, 1)
    assert h1.engagement_depth_raw == round(6 / 3, 6)
    assert (h1.latency_p50_s, h1.latency_p90_s, h1.latency_n) == (300.0, 600.0, 3)
    assert (h1.negatives, h1.deliveries, h1.negative_rate) == (1, 3, round(1 / 3, 6))
    d1 = rows["24h"]
    assert (d1.entered, d1.converged, d1.deliveries) == (4, 2, 4)


def test_late_facts_do_not_change_reported_minutes_but_count():
    book = ConvergenceBook(windows={"1h": 3600})
    book.observe(FlowFact(0, "f", "a", DELIVERY))
    book.observe(FlowFact(2 * MIN, "f", "b", DELIVERY))  # reports as_of 1 and 2 min
    book.observe(FlowFact(30_000, "f", "c", DELIVERY))  # late: minute 0 already reported
    assert book.late == 1
    (row,) = book.flush()
    assert (row.as_of_ms, row.entered) == (3 * MIN, 3)  # later rows include it


def test_conversion_latency_counts_for_latency_only():
    book = ConvergenceBook(windows={"1h": 3600})
    book.observe(FlowFact(0, "f", "a", DELIVERY))
    book.observe(FlowFact(MIN, "f", "a", LATENCY, 90.0))
    (row,) = book.flush()
    assert (row.latency_n, row.latency_p50_s, row.human_interactions) == (1, 90.0, 0)


def test_quantile_follows_clickhouse_quantile_exact():
    assert quantile_exact([1.0, 2.0, 3.0, 4.0], 0.5) == 3.0
    assert quantile_exact([1.0, 3.0, 5.0], 0.9) == 5.0
    assert quantile_exact([], 0.5) == 0.0


def event(ts, type_, human=True, value=0.0, latency=0.0, bounce=""):
    return MinuteEvent(ts, "s", "gmail.com", "c", "f", type_, human, bounce, value, latency)


def test_minute_rows_human_and_raw_and_late_updates():
    m = MinuteMetrics(allowed_lateness_s=600)
    for e in [event(1000, "delivered"), event(2000, "open", human=False),
              event(3000, "open", latency=30.0), event(4000, "click", human=False),
              event(5000, "conversion", value=19.5), event(6000, "bounce", bounce="hard")]:
        assert m.observe(e) == []
    (row,) = m.observe(event(MIN + 1, "delivered"))
    assert (row.minute_ms, row.delivered, row.opens, row.human_opens, row.machine_opens) == (
        0, 1, 2, 1, 1)
    assert (row.clicks, row.bot_clicks, row.conversions, row.revenue) == (1, 1, 1, 19.5)
    assert (row.bounces, row.hard_bounces, row.latency_n, row.latency_p50_s) == (1, 1, 1, 30.0)
    assert row.version == 6
    # a late open for minute 0, within the allowed lateness: minute 0 again, newer version
    (again,) = m.observe(event(7000, "open"))
    assert (again.minute_ms, again.opens, again.human_opens, again.version) == (0, 3, 2, 7)
    # beyond the allowed lateness: counted, not applied
    m.observe(event(20 * MIN, "delivered"))
    assert m.observe(event(8000, "open")) == [] and m.late == 1
