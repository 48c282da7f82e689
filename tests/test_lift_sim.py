"""The lift simulator (mailflow/lift_sim.py): control-group traffic whose true effect is
known, counted again from the events alone; and bench/lift.py's pure parts. Seeded and
fast: no broker, no store (bench/lift.py runs the real job)."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from mailflow.cli import main
from mailflow.lift_sim import (
    DAY_MS,
    HOLDOUT_TOPIC,
    START,
    FlowScenario,
    LiftScenario,
    LiftSimulator,
    default_scenario,
    topic_for,
)
from operators.engagement import is_human_interaction
from schemas.events import Event, EventParser
from schemas.hashing import DEV_HASH_KEY, RecipientHasher
from schemas.topics import EVENT_TYPES

ROOT = Path(__file__).resolve().parents[1]

NOW = START + 60 * 86_400  # the parser's wall clock: after every event
HOLDOUT_FIELDS = {"type", "ts", "sender", "recipient", "message_id", "campaign_id", "flow_id",
                  "group", "event_id"}

_spec = importlib.util.spec_from_file_location(
    "bench_lift", ROOT / "bench" / "lift.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_lift"] = bench
_spec.loader.exec_module(bench)


def within(k: int, n: int, p: float, z: float = 5.0) -> bool:
    """k successes of n within z binomial standard deviations of n * p (seeded: no chance
    of failing later, and 5 sd would be a real bug, not bad luck)."""
    return abs(k - n * p) <= z * math.sqrt(n * p * (1 - p)) + 1


def recount(events: list[dict], window_days: float = 7.0) -> dict:
    """Arms and converters from the events alone, by the contract's rule: a recipient's
    assignment in a flow is their first `sent` or `holdout` of it; they converted if a
    conversion from the flow's sender comes within the window after it."""
    first: dict[tuple[str, str], list] = {}
    conversions: dict[tuple[str, str], list[int]] = defaultdict(list)
    for e in events:
        ts = e["_ms"]
        if e["type"] in ("sent", "holdout"):
            key = (e["flow_id"], e["recipient"])
            arm = "treated" if e["type"] == "sent" else e["group"]
            if key not in first:
                first[key] = [ts, arm, e["sender"], e.get("arm", "")]
            else:
                assert first[key][1] == arm, f"{key}: two arms"
                assert first[key][3] == e.get("arm", ""), f"{key}: two experiment arms"
        elif e["type"] == "conversion":
            conversions[(e["sender"], e["recipient"])].append(ts)
    window = window_days * DAY_MS
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for (flow, recipient), (t0, arm, sender, exp_arm) in first.items():
        hit = any(t0 <= t < t0 + window for t in conversions[(sender, recipient)])
        for unit in ((flow, arm), ("", arm), (f"exp:{flow}", exp_arm)):
            counts[unit][0] += 1
            counts[unit][1] += hit
    return counts


def load(raw) -> list[dict]:
    out = []
    for e in raw:
        d = orjson.loads(e.value)
        d["_ms"] = round(e.ts * 1000)
        d["_topic"] = e.topic
        out.append(d)
    return out


@pytest.fixture(scope="module")
def world():
    sim = LiftSimulator(default_scenario(), seed=11, start=START)
    raw = list(sim.events())
    return sim, raw, load(raw), sim.truth()


@pytest.fixture(scope="module")
def broken():
    sim = LiftSimulator(default_scenario(broken_split=1 / 3), seed=11, start=START)
    raw = list(sim.events())
    return sim, raw, load(raw), sim.truth()


def test_same_seed_same_bytes_and_truth_another_seed_other():
    small = default_scenario(days=2, recipients_per_day=80)
    a = LiftSimulator(small, seed=4, start=START)
    b = LiftSimulator(small, seed=4, start=START)
    assert list(a.events()) == list(b.events())
    assert a.truth() == b.truth()
    assert list(LiftSimulator(small, seed=5, start=START).events()) != list(a.events())


def test_the_default_scenario_is_tens_of_thousands_of_events_over_21_days(world):
    sim, raw, events, truth = world
    assert 20_000 < len(raw) < 100_000
    assert sum(truth.events_by_type.values()) == len(raw)
    span_days = (raw[-1].ts - raw[0].ts) / 86_400
    assert 21 <= span_days <= sim.scenario.span_days


def test_the_data_ends_after_every_window_closed():
    """Regression (seed 17 of bench/lift.py): the last event came before the last
    recipients' windows closed, so a job counting closed windows missed them. Now the data
    always ends after the latest window, whatever the draws (no background noise, no late
    conversions)."""
    for seed in (17, 1, 2):
        sc = replace(default_scenario(days=3, recipients_per_day=100), background_per_day=0,
                     late_rate=0.0)
        sim = LiftSimulator(sc, seed=seed, start=START)
        events = load(sim.events())
        first: dict[str, int] = {}
        for d in events:
            if d["type"] in ("sent", "holdout"):
                first.setdefault(d["recipient"], d["_ms"])
        assert events[-1]["_ms"] > max(first.values()) + 7 * DAY_MS
        assert events[-1]["_ms"] == round(START * 1000 + sc.span_days * DAY_MS) - 1


def test_events_are_sorted_keyed_by_recipient_and_on_their_topic(world):
    _, raw, events, _ = world
    assert all(a.ts <= b.ts for a, b in zip(raw, raw[1:], strict=False))
    for e, d in zip(raw, events, strict=True):
        assert e.key == d["recipient"].encode()
        assert e.topic == topic_for(d["type"])
    assert {d["_topic"] for d in events if d["type"] == "holdout"} == {HOLDOUT_TOPIC}
    assert len({d["event_id"] for d in events}) == len(events)


def test_every_event_is_valid_wire_format(world):
    _, raw, events, _ = world
    parser = EventParser(RecipientHasher(DEV_HASH_KEY), now=lambda: NOW)
    for i, (e, d) in enumerate(zip(raw, events, strict=True)):
        if d["type"] == "holdout" and "holdout" not in EVENT_TYPES:
            # the parser does not know the type yet: the contract's shape (DESIGN.md)
            assert set(d) - {"_ms", "_topic"} == HOLDOUT_FIELDS
            assert d["group"] in ("flow", "global")
            assert all(isinstance(d[k], str) and d[k] for k in HOLDOUT_FIELDS)
            continue
        parsed = parser.parse(e.value, e.topic, 0, i)
        assert isinstance(parsed, Event), (d, parsed)
        assert parsed.type == d["type"]
        if d["type"] == "conversion":
            assert parsed.value > 0 and parsed.currency == "EUR"
            assert "message_id" not in d


def test_one_spelling_per_address_and_no_address_in_message_ids(world):
    _, _, events, _ = world
    hasher = RecipientHasher(DEV_HASH_KEY)
    spellings: dict[str, set[str]] = defaultdict(set)
    for d in events:
        spellings[hasher.recipient(d["recipient"])].add(d["recipient"])
        if "message_id" in d:
            assert d["recipient"] not in d["message_id"]
            assert d["recipient"].split("@")[0] not in d["message_id"]
    assert all(len(s) == 1 for s in spellings.values())
    assert all(a == a.strip().lower() for s in spellings.values() for a in s)


def test_the_truth_is_what_the_events_say(world):
    _, _, events, truth = world
    counts = recount(events)
    for flow in ("onboarding", "winback"):
        u = truth.unit(flow)
        assert counts[(flow, "treated")] == [u.treated_n, u.treated_conv]
        assert counts[(flow, "flow")] == [u.control_n, u.control_conv]
        assert counts[(flow, "flow")] == [u.observed_control_n, u.observed_control_conv]
        assert counts[(flow, "global")] == [u.global_control_n, u.global_control_conv]
    g = truth.unit("")
    assert counts[("", "treated")] == [g.treated_n, g.treated_conv]
    assert counts[("", "global")] == [g.control_n, g.control_conv]
    assert counts[("", "flow")] == [g.flow_control_n, g.flow_control_conv]
    x = truth.unit("experiment:send_time")
    assert counts[("exp:onboarding", "treated")] == [x.treated_n, x.treated_conv]
    assert counts[("exp:onboarding", "control")] == [x.control_n, x.control_conv]


def test_arm_shares_within_binomial_error_of_the_configured_shares(world):
    _, _, _, truth = world
    sc = default_scenario()
    everyone = sum(truth.unit(f).treated_n + truth.unit(f).control_n
                   + truth.unit(f).global_control_n for f in ("onboarding", "winback"))
    assert everyone == sum(f.recipients_per_day for f in sc.flows) * sc.days
    g = truth.unit("")
    assert within(g.control_n, everyone, sc.global_control.share)
    for flow in ("onboarding", "winback"):
        u = truth.unit(flow)
        assert within(u.control_n, u.treated_n + u.control_n, 0.10)
        assert u.expected_control_n == pytest.approx(0.95 * 0.10 * 300 * 14)
        assert within(u.control_n, round(u.expected_treated_n + u.expected_control_n), 0.10)
    x = truth.unit("experiment:send_time")
    assert x.treated_n + x.control_n == truth.unit("onboarding").treated_n
    assert within(x.treated_n, x.treated_n + x.control_n, 0.5)


def test_conversion_rates_within_binomial_error_of_baseline_and_effect(world):
    _, _, _, truth = world
    expect = {"onboarding": (0.05, 0.07), "winback": (0.04, 0.04),
              "experiment:send_time": (0.065, 0.075)}
    for unit, (control, treated) in expect.items():
        u = truth.unit(unit)
        assert (u.true_control_rate, u.true_treated_rate) == pytest.approx((control, treated))
        assert within(u.control_conv, u.control_n, control)
        assert within(u.treated_conv, u.treated_n, treated)
    for flow, base in (("onboarding", 0.05), ("winback", 0.04)):
        u = truth.unit(flow)
        assert within(u.global_control_conv, u.global_control_n, base)
    g = truth.unit("")
    assert g.true_effect == pytest.approx(0.01)  # (7% + 4%) / 2 - (5% + 4%) / 2
    assert g.itt_true_effect == pytest.approx(0.009)  # nine in ten of them mailed
    assert within(g.treated_conv, g.treated_n, 0.055)


def test_the_truth_pooled_over_seeds_is_unbiased():
    """Over 40 seeds of a small world, each arm's converters are within 4 sd of the truth:
    the realised rates centre on baseline and baseline + effect."""
    sc = default_scenario(days=4, recipients_per_day=150)
    sums: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for seed in range(40):
        for u in LiftSimulator(sc, seed=seed, start=START).truth().units:
            for arm, n, k, p in (("t", u.treated_n, u.treated_conv, u.true_treated_rate),
                                 ("c", u.control_n, u.control_conv, u.true_control_rate)):
                s = sums[(u.unit, arm)]
                s[0] += n
                s[1] += k
                s[2] += n * p
    for (unit, arm), (n, k, expected) in sums.items():
        p = expected / n
        assert within(k, n, p, z=4), (unit, arm, k, n, p)


def test_a_broken_split_loses_that_share_of_the_controls_holdouts_not_their_conversions(
        world, broken):
    _, _, events, truth = world
    _, _, broken_events, broken_truth = broken
    for flow in ("onboarding", "winback"):
        ok, bad = truth.unit(flow), broken_truth.unit(flow)
        # the same people in the same arms, converting alike: only the holdouts are lost
        assert (bad.control_n, bad.control_conv) == (ok.control_n, ok.control_conv)
        assert (bad.treated_n, bad.treated_conv) == (ok.treated_n, ok.treated_conv)
        lost = bad.control_n - bad.observed_control_n
        assert lost > 0 and within(lost, bad.control_n, 1 / 3)
        assert bad.global_control_n == ok.global_control_n  # the global group is intact
    strip = lambda ds: [{k: v for k, v in d.items() if k != "event_id"} for d in ds]  # noqa: E731
    holdouts = [d for d in strip(events) if d["type"] == "holdout"]
    seen = [d for d in strip(broken_events) if d["type"] == "holdout"]
    assert all(d in holdouts for d in seen[:200])
    lost_people = {d["recipient"] for d in holdouts} - {d["recipient"] for d in seen}
    assert all(d["group"] == "flow" for d in holdouts if d["recipient"] in lost_people)
    # everything else is the same traffic, the lost people's conversions included
    assert ([d for d in strip(events) if d["type"] != "holdout"]
            == [d for d in strip(broken_events) if d["type"] != "holdout"])
    assert any(d["type"] == "conversion" and d["recipient"] in lost_people
               for d in broken_events)
    # what the stream shows is what the truth's observed counts say
    counts = recount(broken_events)
    for flow in ("onboarding", "winback"):
        bad = broken_truth.unit(flow)
        assert counts[(flow, "flow")] == [bad.observed_control_n, bad.observed_control_conv]


def test_behaviour_rates_leave_the_arms_and_the_conversions_alone(world):
    """Separate random streams: other guardrail and click rates change the mail's
    behaviour, not who is in which arm, nor who converts when."""
    _, _, events, truth = world
    sc = default_scenario()
    louder = replace(sc, flows=tuple(replace(f, unsubscribe_rate=0.05, complaint_rate=0.01,
                                             open_rate=0.5, click_rate=0.2)
                                     for f in sc.flows))
    other = LiftSimulator(louder, seed=11, start=START)
    other_events = load(other.events())
    pick = lambda ds, t: [(d["_ms"], d["recipient"], d.get("value"))  # noqa: E731
                          for d in ds if d["type"] == t]
    assert pick(other_events, "conversion") == pick(events, "conversion")
    assert pick(other_events, "holdout") == pick(events, "holdout")
    for a, b in zip(other.truth().units, truth.units, strict=True):
        assert (a.treated_n, a.treated_conv, a.control_n, a.control_conv) == (
            b.treated_n, b.treated_conv, b.control_n, b.control_conv)
    assert other.truth().events_by_type["unsubscribe"] > 5 * truth.events_by_type[
        "unsubscribe"]


def test_controls_get_a_holdout_for_every_message_the_treated_get(world):
    sim, _, events, _ = world
    steps = {f.flow_id: len(f.steps_days) for f in sim.scenario.flows}
    holdouts: dict[tuple[str, str], list[str]] = defaultdict(list)
    sent: dict[tuple[str, str], list[str]] = defaultdict(list)
    for d in events:
        if d["type"] == "holdout":
            holdouts[(d["flow_id"], d["recipient"])].append(d["message_id"])
        elif d["type"] == "sent":
            sent[(d["flow_id"], d["recipient"])].append(d["message_id"])
    assert holdouts and sent
    for (flow, _), ids in holdouts.items():
        assert len(ids) == steps[flow]
    shape = lambda mid: (mid.split(".")[0], mid.split(".")[1], mid.split("@")[1])  # noqa: E731
    assert ({shape(m) for ids in holdouts.values() for m in ids}
            == {shape(m) for ids in sent.values() for m in ids})
    assert not set(holdouts) & set(sent)


def test_the_experiment_arm_is_on_every_sent_and_delivered_of_its_flow_only(world):
    _, _, events, _ = world
    for d in events:
        if d["type"] in ("sent", "delivered") and d["flow_id"] == "onboarding":
            assert d["experiment"] == "send_time" and d["arm"] in ("treated", "control")
        else:
            assert "experiment" not in d and "arm" not in d
    # the policy sends at the person's preferred hour: first sends of the arm spread over
    # the hours 6..21 sharp (plus under a minute)
    firsts = {}
    for d in events:
        if d["type"] == "sent" and d.get("arm") == "treated":
            firsts.setdefault(d["recipient"], d["_ms"])
    assert all(ms % 3_600_000 < 60_000 for ms in firsts.values())


def test_machine_opens_come_for_every_apple_delivery_and_say_nothing(world):
    _, _, events, truth = world
    delivered: dict[str, int] = defaultdict(int)
    machine: dict[str, int] = defaultdict(int)
    for d in events:
        if d["type"] == "delivered":
            delivered[d["recipient"]] += 1
        elif d["type"] == "open" and not is_human_interaction("open", d["user_agent"],
                                                              d.get("ip", "")):
            machine[d["recipient"]] += 1
    assert machine
    assert all(machine[r] == delivered[r] for r in machine)
    assert all(r.endswith(("@icloud.com", "@me.com", "@mac.com")) is False or r in machine
               for r in delivered)
    clicks = [d for d in events if d["type"] == "click"]
    assert clicks and all(is_human_interaction("click", d["user_agent"], "") for d in clicks)


def test_guardrails_stop_the_mail_and_are_counted(world):
    _, _, events, truth = world
    stopped: dict[tuple[str, str], int] = {}
    for d in events:
        key = (d.get("flow_id", ""), d["recipient"])
        if d["type"] in ("unsubscribe", "complaint"):
            stopped[key] = d["_ms"]
    for d in events:
        key = (d.get("flow_id", ""), d["recipient"])
        if d["type"] == "sent" and key in stopped:
            assert d["_ms"] < stopped[key]  # nothing is sent after it
    n = sum(truth.unit(f).treated_unsubscribed + truth.unit(f).treated_complained
            for f in ("onboarding", "winback"))
    assert n == len(stopped) > 0


def test_background_early_and_late_conversions_fall_outside_every_window(world):
    _, _, events, truth = world
    conversions = [d for d in events if d["type"] == "conversion"]
    in_window = sum(u.treated_conv + u.control_conv + u.global_control_conv
                    for u in truth.units if u.kind == "flow")
    assert len(conversions) > in_window + 100  # noise: early, late ones and outsiders
    first: dict[str, int] = {}
    for d in events:
        if d["type"] in ("sent", "holdout"):
            first.setdefault(d["recipient"], d["_ms"])
    window = 7 * DAY_MS
    where = Counter()
    for d in conversions:
        t0 = first.get(d["recipient"])
        where["outsider" if t0 is None else "before" if d["_ms"] < t0
              else "inside" if d["_ms"] < t0 + window else "after"] += 1
    assert where["inside"] == in_window
    assert min(where["outsider"], where["before"], where["after"]) > 50


def test_scenarios_refuse_impossible_settings():
    with pytest.raises(ValueError, match="control_share"):
        FlowScenario("f", "s.example", control_share=1.5)
    with pytest.raises(ValueError, match="baseline \\+ effect"):
        FlowScenario("f", "s.example", baseline=0.99, effect=0.05)
    with pytest.raises(ValueError, match="inside the window"):
        LiftScenario((FlowScenario("f", "s.example", steps_days=(0.0, 8.0)),), experiment=None)
    with pytest.raises(ValueError, match="no flow"):
        replace(default_scenario(), flows=(FlowScenario("f", "s.example"),))


def test_cli_generate_scenario_lift_writes_events_and_truth(tmp_path, capsys):
    out, truth_path = tmp_path / "lift.jsonl", tmp_path / "truth.json"
    rc = main(["generate", "--scenario", "lift", "--seed", "3", "--days", "2",
               "--recipients-per-day", "40", "--effect", "3", "--holdout-share", "0.2",
               "--broken-split", "0.5", "--start", "2026-11-01T00:00:00Z",
               "--out", str(out), "--truth", str(truth_path)])
    assert rc == 0
    sc = default_scenario(days=2, recipients_per_day=40, effect=0.03, holdout_share=0.2,
                          broken_split=0.5)
    sim = LiftSimulator(sc, seed=3, start=START)
    assert out.read_bytes() == b"".join(e.value + b"\n" for e in sim.events())
    truth = orjson.loads(truth_path.read_bytes())
    assert truth == orjson.loads(orjson.dumps(sim.truth().as_dict()))
    assert truth["units"][0]["true_effect"] == 0.03
    err = capsys.readouterr().err
    assert "onboarding" in err and "experiment:send_time" in err
    assert main(["generate", "--scenario", "lift", "--holdout-share", "2",
                 "--out", str(out)]) == 2
    assert main(["generate", "--scenario", "lift", "--journeys", "--out", str(out)]) == 2


def test_cli_generate_help_explains_the_lift_flags(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--scenario", "--recipients-per-day", "--effect", "--holdout-share",
                 "--global-share", "--broken-split", "--out"):
        assert flag in text


# --- bench/lift.py: the pure parts --------------------------------------------------------
def _row(flow_id: str, as_of: int, lo: float, hi: float, av: tuple[float, float],
         counts: tuple[int, int, int, int] = (0, 0, 0, 0), srm: int = 0,
         window_days: int = 7) -> dict:
    t_n, t_c, c_n, c_c = counts
    return {"flow_id": flow_id, "window_days": window_days, "as_of": as_of,
            "treated_n": t_n, "treated_conv": t_c, "control_n": c_n, "control_conv": c_c,
            "abs_lift": (lo + hi) / 2, "abs_lo95": lo, "abs_hi95": hi, "av_lo95": av[0],
            "av_hi95": av[1], "srm_p": 0.5, "srm_alarm": srm}


def test_bench_takes_the_latest_row_of_the_7_day_window_per_flow():
    rows = [_row("a", 5, 0, 1, (0, 1)), _row("a", 9, 0, 2, (0, 2)),
            _row("a", 12, 0, 3, (0, 3), window_days=30), _row("", "2026-11-20 00:00:00", 0,
                                                                1, (0, 1)),
            _row("", "2026-11-21 00:00:00", 0, 4, (0, 4))]
    latest = bench.latest_rows(rows)
    assert latest["a"]["abs_hi95"] == 2 and latest[""]["abs_hi95"] == 4


def test_bench_judges_rows_against_the_truth_and_its_realised_counts(world):
    _, _, _, truth = world
    on = truth.unit("onboarding")
    rows = {
        "onboarding": _row("onboarding", 1, 0.001, 0.03, (-0.01, 0.05),
                           (on.treated_n, on.treated_conv, on.observed_control_n,
                            on.observed_control_conv)),
        "winback": _row("winback", 1, 0.002, 0.02, (-0.01, 0.02), (1, 2, 3, 4), srm=1),
        "exp": _row("exp", 1, -0.01, 0.02, (-0.02, 0.03)),
    }
    verdicts = {v["unit"]: v for v in bench.judge(truth, rows, broken=False,
                                                  units={"experiment:send_time": "exp"})}
    assert set(verdicts) == {"onboarding", "winback", "experiment:send_time"}
    assert verdicts["onboarding"]["covered"] and verdicts["onboarding"]["counts_match"]
    assert verdicts["onboarding"]["excludes_zero"]
    assert not verdicts["onboarding"]["av_excludes_zero"]
    w = verdicts["winback"]
    assert not w["covered"] and w["av_covered"] and w["excludes_zero"] and w["srm_alarm"]
    assert not w["counts_match"]
    assert verdicts["onboarding"]["reading"] == "arms"
    s = bench.summarise(verdicts.values())
    assert s["null_false_positive"] == 1.0 and s["null_av_false_positive"] == 0.0
    assert s["coverage"] == pytest.approx(2 / 3, abs=1e-4) and s["av_coverage"] == 1.0
    assert s["srm_alarm_clean"] == 0.5 and s["srm_alarm_broken"] is None


@pytest.mark.integration
def test_bench_stops_with_a_clear_message_without_a_lift_table(tmp_path):
    """A real chDB store with a `mailflow` database but no `lift` table (a job without the
    lift side): the bench says so instead of failing on a query."""
    store = tmp_path / "clickhouse"
    subprocess.run([sys.executable, "-c",
                    "import sys; from sinks.clickhouse import ClickHouseStore; "
                    "s = ClickHouseStore('chdb://' + sys.argv[1]); "
                    "s.query('CREATE DATABASE IF NOT EXISTS mailflow'); s.close()", str(store)],
                   cwd=ROOT, check=True, timeout=120)
    env = {**os.environ, "MAILFLOW_DATA_DIR": str(tmp_path), "MAILFLOW_ADMIN_PORT": "0"}
    with pytest.raises(bench.LiftTableMissing, match="no mailflow.lift table"):
        bench.read_lift(env)


def test_bench_recognises_the_other_readings_of_the_arms(world):
    """A job may count a flow's global control members in its control arm, or the flows'
    control groups as globally treated: the counts still match, under that reading."""
    _, _, _, truth = world
    on, g = truth.unit("onboarding"), truth.unit("")
    rows = {"onboarding": _row("onboarding", 1, 0.0, 0.03, (0.0, 0.03),
                               (on.treated_n, on.treated_conv,
                                on.observed_control_n + on.global_control_n,
                                on.observed_control_conv + on.global_control_conv)),
            "": _row("", 1, 0.0085, 0.0095, (0.0, 0.02),
                     (g.treated_n + g.flow_control_n, g.treated_conv + g.flow_control_conv,
                      g.observed_control_n, g.observed_control_conv))}
    verdicts = {v["unit"]: v for v in bench.judge(truth, rows, broken=False)}
    assert verdicts["onboarding"]["reading"] == "with_global"
    assert verdicts[""]["reading"] == "itt"
    assert verdicts[""]["covered"]  # 0.9 pp, not the mailed ones' 1 pp
    assert verdicts[""]["true_effect"] == pytest.approx(0.009)
    assert bench.summarise(verdicts.values())["readings"] == {
        "(global):itt": 1, "onboarding:with_global": 1}


def test_bench_reference_reading_of_a_broken_and_a_clean_split(world, broken):
    """The textbook reading of the stream's own counts: arm counts as the truth says; a
    third of the control group's holdouts lost raises the SRM alarm, a clean split not."""
    clean = {v["unit"]: v for v in bench.reference_verdicts(world[3], broken=False)}
    bad = {v["unit"]: v for v in bench.reference_verdicts(broken[3], broken=True)}
    assert all(v["counts_match"] and v["reading"] == "arms" for v in clean.values())
    assert not any(v["srm_alarm"] for v in clean.values())
    assert bad["onboarding"]["srm_alarm"] and bad["winback"]["srm_alarm"]
    assert not bad[""]["srm_alarm"]  # the global control group is intact


def test_bench_reads_a_null_interval_as_covering_nothing(world):
    """An arm without recipients leaves the table's estimates NULL: no coverage, no
    "excludes zero", and the verdict still comes (nothing crashes on None)."""
    _, _, _, truth = world
    row = _row("winback", 1, 0.0, 0.0, (0.0, 0.0))
    row.update(abs_lo95=None, abs_hi95=None, av_lo95=None, av_hi95=None, abs_lift=None)
    (verdict,) = bench.judge(truth, {"winback": row}, broken=False)
    assert not verdict["covered"] and not verdict["av_covered"]
    assert not verdict["excludes_zero"] and not verdict["av_excludes_zero"]
    assert bench.summarise([verdict])["per_unit"]["winback"]["mean_abs_lift"] is None
