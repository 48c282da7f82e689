"""operators/lift.py: intent-to-treat assignment, outcome windows, the sums per unit, and
the same `lift` rows however the recipients are sharded or the input is batched."""

from __future__ import annotations

import pickle
import random
from collections import defaultdict

import orjson
import pytest
from bytewax.testing import TestingSink, TestingSource, run_main

from flows.pipeline import FlowIO, build_flow
from flows.settings import load_settings
from flows.sources import CaughtUp, RawMessage
from operators.lift import (
    CONTROL,
    DAY_MS,
    TREATED,
    LiftAssigned,
    LiftBook,
    LiftOutcome,
    LiftShares,
    LiftUnits,
)
from schemas.events import EventParser
from schemas.hashing import DEV_HASH_KEY, RecipientHasher
from schemas.rows import LIFT_COLUMNS, lift_row
from schemas.topics import INPUT_TOPICS, TOPIC_BY_TYPE

H = 3_600_000
START_S = 1_795_000_000  # 2026-11-19 (a Thursday), in seconds


def units(**kw) -> LiftUnits:
    return LiftUnits(**{"windows_days": (7,), **kw})


def see(book: LiftUnits, etype: str, ts_ms: int, recipient: str = "r1", flow: str = "welcome",
        campaign: str = "", group: str = "", experiment: str = "", arm: str = "",
        goal: str = "", value: float = 0.0, human: bool = True) -> list:
    facts: list = []
    if book.due(ts_ms):
        book.advance(ts_ms, facts)
    book.observe(etype, ts_ms, recipient, flow, campaign, group, experiment, arm, goal, value,
                 human, facts)
    book.flush_tally(facts)  # each event's assignments at once (the book tallies a minute)
    return facts


def closed(book: LiftUnits, ts_ms: int) -> list[LiftOutcome]:
    facts: list = []
    book.advance(ts_ms, facts)
    return [f for f in facts if type(f) is LiftOutcome]


# -- assignment ---------------------------------------------------------------------------

def test_the_first_send_or_holdout_assigns_and_a_crossover_never_moves_anyone():
    book = units()
    first = see(book, "holdout", 0, group="flow")
    assert [(f.scope, f.arm, f.count) for f in first] == [("flow", CONTROL, 1),
                                                          ("global", TREATED, 1)]
    assert see(book, "holdout", H) == []  # the same assignment
    crossed = see(book, "delivered", 2 * H)  # mailed anyway: counted, stays control
    assert LiftAssigned(2 * H, "flow", "welcome", CONTROL, True, 1, 2 * H) in crossed
    assert see(book, "delivered", 3 * H) == []  # counted once
    see(book, "conversion", 4 * H, flow="", value=5.0)
    [flow_outcome] = [o for o in closed(book, 8 * DAY_MS) if o.scope == "flow"]
    assert (flow_outcome.arm, flow_outcome.converted, flow_outcome.value) == (CONTROL, True, 5.0)


def test_a_flow_holdout_is_not_in_the_global_comparison_and_a_global_one_not_in_the_flows():
    book = units()
    got = see(book, "holdout", 0, recipient="a", group="flow", campaign="c1")
    assert {(f.scope, f.key, f.arm) for f in got} == {("flow", "welcome", CONTROL),
                                                      ("campaign", "c1", CONTROL),
                                                      ("global", "", TREATED)}
    got = see(book, "holdout", 0, recipient="b", group="global", campaign="c1")
    assert [(f.scope, f.key, f.arm) for f in got] == [("global", "", CONTROL)]
    got = see(book, "sent", 0, recipient="c", campaign="c1")
    assert {(f.scope, f.key, f.arm) for f in got} == {
        ("flow", "welcome", TREATED), ("global", "", TREATED), ("campaign", "c1", TREATED)}


def test_transactional_flows_are_never_units_nor_marketing():
    book = units(transactional=frozenset({"receipts"}))
    assert see(book, "delivered", 0, flow="receipts") == []
    assert see(book, "holdout", 0, flow="receipts") == []


def test_experiments_take_their_arm_from_the_events():
    book = units()
    got = see(book, "sent", 0, recipient="a", flow="", experiment="send_time", arm="Treated")
    assert ("experiment", "send_time", TREATED) in {(f.scope, f.key, f.arm) for f in got}
    got = see(book, "sent", 0, recipient="b", flow="", experiment="send_time", arm="baseline")
    assert ("experiment", "send_time", CONTROL) in {(f.scope, f.key, f.arm) for f in got}
    got = see(book, "sent", 0, recipient="c", flow="", experiment="send_time", arm="banana")
    assert "experiment" not in {f.scope for f in got}  # an unknown arm is no assignment


# -- outcomes -----------------------------------------------------------------------------

def test_a_conversion_counts_from_assignment_to_the_end_of_the_window_inclusive():
    def outcome(conversion_ms: int) -> bool:
        book = units()
        see(book, "delivered", 1000)
        facts = see(book, "conversion", conversion_ms, flow="") + closed(book, 30 * DAY_MS)
        return next(o for o in facts if type(o) is LiftOutcome and o.scope == "flow").converted

    assert outcome(1000) and outcome(1000 + 7 * DAY_MS)
    assert not outcome(999) and not outcome(1001 + 7 * DAY_MS)


def test_only_the_configured_goal_counts():
    book = units(goal="purchase")
    see(book, "delivered", 0)
    see(book, "conversion", H, flow="", goal="signup", value=3.0)
    [o] = [o for o in closed(book, 8 * DAY_MS) if o.scope == "flow"]
    assert not o.converted and o.value == 0.0
    see(book, "delivered", 9 * DAY_MS, recipient="r2")
    see(book, "conversion", 9 * DAY_MS + H, recipient="r2", flow="", goal="purchase", value=3.0)
    [o] = [o for o in closed(book, 17 * DAY_MS) if o.scope == "flow"]
    assert o.converted and o.value == 3.0


def test_each_window_sums_its_own_value_and_closes_at_its_own_time():
    book = units(windows_days=(1, 7))
    see(book, "delivered", 0)
    see(book, "conversion", H, flow="", value=10.0)
    day_one = [o for o in closed(book, DAY_MS + 1) if o.scope == "flow"]
    see(book, "conversion", 3 * DAY_MS, flow="", value=5.0)
    assert [(o.window_days, o.converted, o.value) for o in day_one] == [(1, True, 10.0)]
    assert day_one[0].ts_ms == DAY_MS + 1  # stamped when it closed, not when noticed
    week = [o for o in closed(book, 8 * DAY_MS) if o.scope == "flow"]
    assert [(o.window_days, o.value) for o in week] == [(7, 15.0)]


def test_guardrails_and_human_clicks_are_flagged_within_the_window():
    book = units()
    see(book, "delivered", 0)
    see(book, "click", H, human=False)  # a scanner: not a click
    see(book, "unsubscribe", 2 * H)
    [o] = [o for o in closed(book, 8 * DAY_MS) if o.scope == "flow"]
    assert (o.unsub, o.complaint, o.clicked) == (True, False, False)


def test_an_assignment_is_kept_four_windows_then_a_send_starts_a_new_one():
    book = units()
    see(book, "holdout", 0)
    assert see(book, "delivered", 27 * DAY_MS) != []  # a crossover, still the first one
    got = see(book, "delivered", 28 * DAY_MS + 2)
    assert LiftAssigned(28 * DAY_MS, "flow", "welcome", TREATED, False, 1, 28 * DAY_MS + 2) in got


def test_erasure_forgets_the_assignments_and_their_open_windows():
    book = units()
    see(book, "delivered", 0)
    assert book.forget("r1") == 2 and len(book) == 0
    assert b"r1" not in pickle.dumps(book)  # no trace in a snapshot (timers included)
    assert closed(book, 30 * DAY_MS) == []


def test_open_windows_at_the_end_of_input_are_reported_as_open():
    book = units()
    see(book, "delivered", 0)
    see(book, "conversion", H, flow="", value=2.0)
    facts: list = []
    book.pending(2 * H, facts)
    assert {(f.scope, f.open, f.converted) for f in facts} == {("flow", True, True),
                                                              ("global", True, True)}
    assert closed(book, 8 * DAY_MS)  # the windows still close later (a run resumed)


# -- the sums -----------------------------------------------------------------------------

def outcome(ts, arm, converted, key="welcome", value=0.0, still_open=False, scope="flow"):
    return LiftOutcome(ts, scope, key, arm, 7, converted, value, False, False, False,
                       still_open)


def test_rows_come_at_day_boundaries_for_changed_units_only():
    book = LiftBook(LiftShares(flow_share=0.5))
    for f in (LiftAssigned(0, "flow", "welcome", TREATED), LiftAssigned(0, "flow", "welcome",
                                                                        CONTROL),
              outcome(7 * DAY_MS + 1, TREATED, True, value=4.0),
              outcome(7 * DAY_MS + 1, CONTROL, False)):
        book.observe(f)
    rows: list = []
    book.advance(8 * DAY_MS, rows)
    assert [(r.key, r.as_of_ms, r.treated.n, r.treated.conv, r.treated.value, r.control.n)
            for r in rows] == [("welcome", 8 * DAY_MS, 1, 1, 4.0, 1)]
    rows.clear()
    book.advance(9 * DAY_MS, rows)
    assert rows == []  # nothing changed
    book.flush(rows)
    assert rows == []


def test_no_holdouts_and_no_configured_share_means_no_experiment_to_report():
    book = LiftBook(LiftShares())
    book.observe(LiftAssigned(0, "flow", "news", TREATED))
    book.observe(outcome(7 * DAY_MS + 1, TREATED, True, key="news"))
    rows: list = []
    book.advance(8 * DAY_MS, rows)
    assert rows == []
    # ... but a configured share with no control group at all is a broken split: reported
    book = LiftBook(LiftShares(flow_share=0.1))
    book.observe(LiftAssigned(0, "flow", "news", TREATED))
    book.observe(outcome(7 * DAY_MS + 1, TREATED, True, key="news"))
    book.advance(8 * DAY_MS, rows)
    assert [(r.control_assigned, r.expected_control_share) for r in rows] == [(0, 0.1)]


def test_the_open_windows_are_used_only_when_no_window_of_the_unit_closed():
    book = LiftBook(LiftShares(flow_share=0.5))
    book.observe(LiftAssigned(0, "flow", "a", TREATED))
    book.observe(LiftAssigned(0, "flow", "a", CONTROL))
    book.observe(outcome(H, TREATED, True, key="a", still_open=True))
    book.observe(outcome(H, CONTROL, False, key="a", still_open=True))
    rows: list = []
    book.flush(rows)
    assert [(r.key, r.partial, r.treated.n, r.control.n) for r in rows] == [("a", True, 1, 1)]
    # a unit with a closed window reports only those
    book = LiftBook(LiftShares(flow_share=0.5))
    book.observe(LiftAssigned(0, "flow", "b", CONTROL))
    book.observe(outcome(7 * DAY_MS + 1, CONTROL, True, key="b"))
    book.observe(outcome(9 * DAY_MS, TREATED, True, key="b", still_open=True))
    rows = []
    book.flush(rows)
    assert [(r.partial, r.treated.n, r.control.n) for r in rows] == [(False, 0, 1)]


def test_a_lift_row_has_every_column_of_the_contract():
    book = LiftBook(LiftShares(flow_share=0.5))
    for i in range(200):
        arm = i % 2
        book.observe(LiftAssigned(0, "flow", "welcome", arm))
        book.observe(outcome(7 * DAY_MS + 1, arm, i // 2 % 10 < (3 if arm == TREATED else 1),
                             value=10.0))
    rows: list = []
    book.advance(8 * DAY_MS, rows)
    row = dict(zip(LIFT_COLUMNS, lift_row(rows[0]), strict=True))
    contract = ("treated_n treated_conv control_n control_conv treated_rate control_rate "
                "abs_lift abs_lo95 abs_hi95 av_lo95 av_hi95 rel_lift incremental_conversions "
                "treated_value control_value srm_p srm_alarm").split()
    assert set(contract) <= set(row)
    assert (row["treated_n"], row["treated_conv"], row["control_n"], row["control_conv"]) == (
        100, 30, 100, 10)
    assert row["abs_lift"] == pytest.approx(0.2)
    assert row["abs_lo95"] < 0.2 < row["abs_hi95"]
    assert row["av_lo95"] <= row["abs_lo95"] and row["av_hi95"] >= row["abs_hi95"]
    assert row["incremental_conversions"] == pytest.approx(20.0)
    assert row["srm_alarm"] == 0 and row["srm_p"] == pytest.approx(1.0)


# -- through the wired flow ---------------------------------------------------------------

def experiment_events(seed: int, recipients: int = 600, days: int = 12) -> list[dict]:
    """Canonical events of a small seeded experiment: flow "up" converts 30% treated against
    10% control, flow "flat" 10% in both; 20% holdouts; some global controls."""
    rnd = random.Random(seed)
    events: list[dict] = []
    for i in range(recipients):
        recipient = f"person{i}@example.com"
        flow = "up" if i % 2 else "flat"
        t = START_S + rnd.uniform(0, days * 86_400)
        base = {"sender": "news.acme.example", "recipient": recipient, "flow_id": flow,
                "campaign_id": f"{flow}-1"}
        if rnd.random() < 0.05:
            events.append({**base, "type": "holdout", "ts": t, "message_id": f"m{i}",
                           "group": "global"})
            control = True
        elif rnd.random() < 0.2:
            events.append({**base, "type": "holdout", "ts": t, "message_id": f"m{i}"})
            control = True
        else:
            events.append({**base, "type": "sent", "ts": t, "message_id": f"m{i}"})
            events.append({**base, "type": "delivered", "ts": t + 5, "message_id": f"m{i}"})
            control = False
        p = 0.1 if control or flow == "flat" else 0.3
        if rnd.random() < p:
            events.append({"type": "conversion", "ts": t + rnd.uniform(60, 6 * 86_400),
                           "sender": "news.acme.example", "recipient": recipient,
                           "value": round(rnd.uniform(5, 50), 2)})
    return sorted(events, key=lambda e: e["ts"])


def raw_messages(events: list[dict]) -> list[RawMessage]:
    offsets: dict[tuple[str, int], int] = defaultdict(int)
    out = []
    for ev in events:
        topic, part = TOPIC_BY_TYPE[ev["type"]], len(ev["recipient"]) % 2
        out.append(RawMessage(orjson.dumps(ev), topic, part, offsets[(topic, part)], ""))
        offsets[(topic, part)] += 1
    return out


def run_flow(raw: list[RawMessage], batch: int, **env: str) -> dict[str, list]:
    cfg = load_settings(environ={"MAILFLOW_KAFKA_BROKERS": "127.0.0.1:9",
                                 "MAILFLOW_HOLDOUT_SHARE": "0.2", "MAILFLOW_BATCH_MS": "1",
                                 **env})
    partitions = [f"{t}/{p}" for t in INPUT_TOPICS for p in (0, 1)]
    items: list = sorted(raw, key=lambda m: (m.topic, m.partition, m.offset))
    items += [CaughtUp(p.rsplit("/", 1)[0], int(p.rsplit("/", 1)[1])) for p in partitions]
    tables: list = []
    io = FlowIO(TestingSource(items, batch_size=batch), TestingSource([]), partitions,
                TestingSink(tables), TestingSink([]))
    hasher = RecipientHasher(DEV_HASH_KEY)
    run_main(build_flow(cfg, hasher, io, snapshots=False))
    rows: dict[str, list] = defaultdict(list)
    for table, block in tables:
        if isinstance(block, list):
            rows[table].extend(block)
    return dict(rows)


@pytest.fixture(scope="module")
def experiment():
    events = experiment_events(seed=7)
    parser = EventParser(RecipientHasher(DEV_HASH_KEY), now=lambda: START_S + 40 * 86_400)
    for ev in events[:50]:  # what the fixture writes is valid wire format
        assert parser.parse(orjson.dumps(ev), TOPIC_BY_TYPE[ev["type"]], 0, 0).type == ev["type"]
    return events, raw_messages(events)


def latest(rows: list[tuple]) -> dict[tuple[str, int], dict]:
    out: dict[tuple[str, int], dict] = {}
    for r in sorted(rows, key=lambda r: r[2]):
        row = dict(zip(LIFT_COLUMNS, r, strict=True))
        out[(row["flow_id"], row["window_days"])] = row
    return out


def test_the_flow_counts_what_the_events_say_and_sharding_changes_no_row(experiment):
    events, raw = experiment
    one = run_flow(raw, batch=500, MAILFLOW_SHARDS="1")
    # 64 shards on another seed: shards that stop at other event times (the end-of-input
    # rows must not take their as_of from where a shard stopped)
    other = raw_messages(experiment_events(seed=3, recipients=400))
    for data, shards, batch in ((raw, "8", 37), (other, "64", 101)):
        reference = one if data is raw else run_flow(data, batch=500, MAILFLOW_SHARDS="1")
        many = run_flow(data, batch=batch, MAILFLOW_SHARDS=shards)
        assert sorted(reference["mailflow.lift"]) == sorted(many["mailflow.lift"]), shards
        assert sorted(reference["mailflow.lift_segments"]) == sorted(
            many["mailflow.lift_segments"]), shards
    # the holdouts are stored as events, and nothing else counts them
    assert sum(1 for r in one["mailflow.events"] if r[2] == "holdout") == sum(
        1 for e in events if e["type"] == "holdout")
    # the counts are the events' own (every window closed: the input spans 12 + 6 days,
    # the last windows close at the end of input as open ones, so compare assignments)
    rows = latest(one["mailflow.lift"])
    for flow in ("up", "flat"):
        row = rows[(flow, 7)]
        treated = {e["recipient"] for e in events if e["type"] == "sent" and e["flow_id"] == flow}
        control = {e["recipient"] for e in events
                   if e["type"] == "holdout" and e["flow_id"] == flow and "group" not in e}
        assert (row["treated_assigned"], row["control_assigned"]) == (len(treated), len(control))
        assert row["treated_n"] + row["control_n"] <= len(treated) + len(control)
        assert row["srm_alarm"] == 0
    assert rows[("up", 7)]["abs_lo95"] > 0 and rows[("flat", 7)]["abs_lo95"] < 0
    glob = rows[("", 7)]
    assert glob["control_assigned"] == sum(1 for e in events if e.get("group") == "global")


def test_a_minutes_assignments_leave_the_shard_as_one_tally_per_unit_and_arm():
    book = units()
    facts: list = []
    for i in range(50):
        book.observe("delivered", 1000 + i, f"r{i}", "welcome", "", "", "", "", "", 0.0, True,
                     facts)
    assert facts == []  # still this minute
    book.advance(60_000, facts)
    assert [(f.ts_ms, f.scope, f.arm, f.count, f.first_ms) for f in facts] == [
        (0, "flow", TREATED, 50, 1000), (0, "global", TREATED, 50, 1000)]
