"""operators/convergence.py and operators/metrics.py with hand-computed expectations."""

from __future__ import annotations

import random

import pytest

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
    """Four recipients in flow `welcome` during one hour; its last fact is at 30 min, so
    its rows are as of 31 min (written when the stream passes that minute).

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
    written = []
    for fact in facts:
        written += book.observe(fact)
    # welcome's rows came when the stream passed minute 31 (the `other` fact at 59 min):
    # as of the end of welcome's latest minute, before counting the fact that crossed it
    rows = rows_by_window(r for r in written if r.flow_id == "welcome"
                          and r.as_of_ms == t0 + 31 * MIN)
    assert [r.as_of_ms for r in written if r.flow_id == "other"] == []  # not passed yet
    h1 = rows["1h"]
    assert h1.as_of_ms == t0 + 31 * MIN
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
    (row,) = book.observe(FlowFact(2 * MIN, "f", "b", DELIVERY))  # reports as_of 1 min
    assert (row.as_of_ms, row.entered) == (MIN, 1)
    assert book.observe(FlowFact(30_000, "f", "c", DELIVERY)) == []  # late: minute 0 reported
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


def test_a_quiet_flow_writes_no_rows_and_others_do_not_change_its_rows():
    alone, shared = ConvergenceBook(windows={"1h": 3600}), ConvergenceBook(windows={"1h": 3600})
    mine = [FlowFact(0, "f", "a", DELIVERY), FlowFact(30_000, "f", "a", CONVERSION),
            FlowFact(3 * MIN, "f", "b", DELIVERY)]
    theirs = [FlowFact(m * MIN + 5, "g", f"x{m}", DELIVERY) for m in range(10)]
    rows_alone = [r for fact in mine for r in alone.observe(fact)] + alone.flush()
    rows_shared = [r for fact in sorted(mine + theirs) for r in shared.observe(fact)]
    rows_shared += shared.flush()
    f_rows = [r for r in rows_shared if r.flow_id == "f"]
    assert f_rows == rows_alone
    assert [r.as_of_ms for r in f_rows] == [MIN, 4 * MIN]  # minutes 1, 2 had no facts of f
    assert len([r for r in rows_shared if r.flow_id == "g"]) == 10


def brute_force(log, erased_at, windows, flow_id, as_of_ms):
    """Rows of `flow_id` as of `as_of_ms` from the facts observed, by their definitions."""
    facts = [(i, f) for i, f in log if f.flow_id == flow_id and f.ts_ms < as_of_ms]
    rows = []
    for name, seconds in windows.items():
        lo = as_of_ms - seconds * 1000
        inside = [f for _, f in facts if f.ts_ms >= lo]
        latest: dict[int, dict[str, int]] = {DELIVERY: {}, CONVERSION: {}}
        for i, f in facts:  # who entered and converged: not across an erasure
            if f.kind in latest and i >= erased_at.get(f.recipient_hash, 0):
                seen = latest[f.kind]
                seen[f.recipient_hash] = max(f.ts_ms, seen.get(f.recipient_hash, f.ts_ms))
        entered = {r for r, ts in latest[DELIVERY].items() if ts >= lo}
        converged = {r for r in entered if latest[CONVERSION].get(r, lo - 1) >= lo}
        count = [sum(f.kind == k for f in inside) for k in range(5)]
        deliveries, human, machine, conversions, negatives = count
        latencies = sorted(f.latency_s for f in inside if f.latency_s > 0)
        interactions = human + conversions
        n = len(entered)
        rows.append((flow_id, name, as_of_ms, n, len(converged),
                     round(len(converged) / n, 6) if n else 0.0,
                     round(interactions / n, 6) if n else 0.0,
                     round((interactions + machine) / n, 6) if n else 0.0,
                     quantile_exact(latencies, 0.5), quantile_exact(latencies, 0.9),
                     round(negatives / deliveries, 6) if deliveries else 0.0,
                     deliveries, interactions, conversions, negatives, len(latencies)))
    return rows


@pytest.mark.parametrize("seed", range(4))
def test_incremental_rows_equal_a_brute_force_recount(seed):
    """Random facts (some late, some of erased recipients): every row written equals the
    definitions recomputed from scratch, and is as of the end of its flow's latest minute."""
    rnd = random.Random(seed)
    windows = {"10m": 600, "1h": 3600, "2h": 7200}
    book = ConvergenceBook(windows)
    log: list[tuple[int, FlowFact]] = []
    erased_at: dict[str, int] = {}
    kinds = (DELIVERY,) * 4 + (CONVERSION,) * 2 + (HUMAN_INTERACTION, MACHINE_INTERACTION,
                                                    NEGATIVE, LATENCY)
    ts, checked = 10 * H, 0

    def check(rows):
        nonlocal checked
        by_flow: dict[tuple[str, int], list] = {}
        for row in rows:
            by_flow.setdefault((row.flow_id, row.as_of_ms), []).append(tuple(row))
        for (flow_id, as_of_ms), got in by_flow.items():
            head = max(f.ts_ms for _, f in log if f.flow_id == flow_id) // MIN
            assert as_of_ms == (head + 1) * MIN
            assert got == brute_force(log, erased_at, windows, flow_id, as_of_ms)
            checked += 1

    for i in range(2500):
        if rnd.random() < 0.02:
            r = f"r{rnd.randrange(25)}"
            book.forget(r)
            erased_at[r] = i
            continue
        ts += rnd.choice((0, 1_000, 20_000, MIN, 5 * MIN, 25 * MIN))
        late = rnd.randrange(10 * MIN) if rnd.random() < 0.1 else 0
        kind = rnd.choice(kinds)
        latency = rnd.randrange(1, 900) / 10 if kind in (HUMAN_INTERACTION, LATENCY) else 0.0
        fact = FlowFact(ts - late, rnd.choice(("a", "b", "c", "")), f"r{rnd.randrange(25)}",
                        kind, latency)
        check(book.observe(fact))
        if fact.flow_id:
            log.append((i, fact))
    check(book.flush())
    assert checked > 300
    # recipients and minutes out of every window are gone (state does not grow with time)
    for flow in book.flows.values():
        assert min(flow.minutes, default=flow.floor) >= flow.floor
        assert all(max(flow.delivered.get(r, 0), flow.converted.get(r, 0)) // MIN >= flow.floor
                   for r in flow.delivered.keys() | flow.converted.keys())


def test_forget_leaves_no_mention_of_the_recipient():
    import pickle

    book = ConvergenceBook(windows={"1h": 3600})
    for m in range(5):
        book.observe(FlowFact(m * MIN, "f", "erase-me", DELIVERY))
        book.observe(FlowFact(m * MIN + 1, "f", "keep", CONVERSION))
    assert book.forget("erase-me") == 1
    assert b"erase-me" not in pickle.dumps(book)
