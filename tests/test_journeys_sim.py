"""The journey simulator (mailflow/journeys.py): deterministic traffic whose truth is known,
and bench/convergence.py's evaluate() on synthetic rows. Pure and fast: no broker, no store."""

from __future__ import annotations

import importlib.util
import random
import sys
from collections import defaultdict
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import pytest

from mailflow.cli import main
from mailflow.journeys import (
    DAY_MS,
    FlowSpec,
    JourneySimulator,
    JourneyTruth,
    Shift,
    Truth,
    cohorts_of,
    read_truth,
)
from operators.engagement import is_human_interaction
from schemas.events import Event, EventParser
from schemas.hashing import DEV_HASH_KEY, RecipientHasher
from tests.conftest import mailflow_cmd, query_store

START = 1_795_219_200.0  # 2026-11-21T00:00:00Z
NOW = START + 40 * 86_400  # the parser's wall clock: after every event

_spec = importlib.util.spec_from_file_location(
    "bench_convergence", Path(__file__).resolve().parents[1] / "bench" / "convergence.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_convergence"] = bench
_spec.loader.exec_module(bench)


def small(seed: int = 5, **kw) -> JourneySimulator:
    kw.setdefault("days", 3)
    kw.setdefault("entrants_per_day", 60)
    return JourneySimulator(seed=seed, start=START, **kw)


@pytest.fixture(scope="module")
def world():
    sim = small()
    raw = list(sim.events())
    parser = EventParser(RecipientHasher(DEV_HASH_KEY), now=lambda: NOW)
    parsed = [parser.parse(e.value, e.topic, 0, i) for i, e in enumerate(raw)]
    return sim, raw, parsed, sim.truth()


def test_same_seed_same_events_and_truth_another_seed_other(world):
    sim, raw, _, truth = world
    again = small()
    assert list(again.events()) == raw
    assert again.truth() == truth
    assert list(small(seed=6).events()) != raw


def test_every_event_parses_without_a_dead_letter_in_time_order(world):
    _, raw, parsed, _ = world
    dead = [p for p in parsed if not isinstance(p, Event)]
    assert dead == []
    assert all(a.ts <= b.ts for a, b in zip(raw, raw[1:], strict=False))
    assert {p.type for p in parsed} >= {"sent", "delivered", "open", "click", "conversion",
                                        "unsubscribe", "bounce"}
    assert all(orjson.loads(e.value)["recipient"].encode() == e.key for e in raw)


def test_truth_matches_the_events(world):
    sim, _, parsed, truth = world
    window = sim.window_ms
    step0: dict[tuple[str, str], int] = {}          # first delivery of step 0 per journey
    conversions: dict[tuple[str, str], list[int]] = defaultdict(list)
    sends: dict[tuple[str, str], list[int]] = defaultdict(list)
    for e in parsed:
        if e.type == "delivered" and e.campaign_id == f"{e.flow_id}-1":
            assert (e.flow_id, e.recipient_hash) not in step0  # one entry per flow
            step0[(e.flow_id, e.recipient_hash)] = e.ts_ms
        elif e.type == "conversion":
            conversions[(e.sender, e.recipient_hash)].append(e.ts_ms)
        elif e.type == "sent":
            sends[(e.flow_id, e.recipient_hash)].append(e.ts_ms)
    journeys = truth.by_journey()
    assert len(journeys) == len(truth.journeys) == len(step0)
    for key, j in journeys.items():
        assert step0[key] == j.entered_ms and j.cohort_day == j.entered_ms // DAY_MS
        assert j.recipient_hash == RecipientHasher(DEV_HASH_KEY).recipient(j.recipient)
        inside = [t for t in conversions[(j.sender, j.recipient_hash)]
                  if j.entered_ms <= t < j.entered_ms + window]
        if j.reached:
            assert inside == [j.reached_ms]
            assert max(sends[key]) < j.reached_ms  # the flow stops mailing on the goal
        else:
            assert inside == [] and j.reached_ms is None
    # entrants per cohort = recipients whose step 0 was delivered that day
    per_day: dict[tuple[str, int], int] = defaultdict(int)
    for (flow_id, _), ts in step0.items():
        per_day[(flow_id, ts // DAY_MS)] += 1
    assert {(c.flow_id, c.cohort_day): c.entrants for c in truth.cohorts} == per_day
    for c in truth.cohorts:
        ps = [j.true_p for j in truth.journeys if (j.flow_id, j.cohort_day) ==
              (c.flow_id, c.cohort_day)]
        assert c.expected == pytest.approx(sum(ps) / len(ps))
        assert c.realised == c.converged / c.entrants
    # bounced addresses never enter; late conversions land after the window
    bounced = {e.recipient_hash for e in parsed if e.type == "bounce"}
    assert bounced and not bounced & {j.recipient_hash for j in truth.journeys}
    late = [j for j in truth.journeys if j.outcome == "late"]
    for j in late:
        assert any(t >= j.entered_ms + window for t in conversions[(j.sender, j.recipient_hash)])


def test_nothing_is_sent_after_an_unsubscribe_or_complaint(world):
    _, _, parsed, truth = world
    stopped: dict[tuple[str, str], int] = {}
    for e in parsed:
        key = (e.flow_id, e.recipient_hash)
        if e.type in ("unsubscribe", "complaint"):
            stopped[key] = e.ts_ms
        elif e.type == "sent":
            assert key not in stopped
    outcomes = {(j.flow_id, j.recipient_hash): j.outcome for j in truth.journeys}
    assert stopped and all(outcomes[k] in ("unsubscribed", "complained") for k in stopped)


def test_machine_opens_for_every_apple_delivery_whatever_the_outcome(world):
    _, _, parsed, truth = world
    deliveries: dict[str, int] = defaultdict(int)
    machine: dict[str, int] = defaultdict(int)
    human_open: set[str] = set()
    bot_clicks = 0
    for e in parsed:
        if e.type == "delivered":
            deliveries[(e.flow_id, e.recipient_hash)] += 1
        elif e.type == "open":
            # Apple's privacy proxy; (Gmail's image proxy fetches for a reader: human here)
            if e.user_agent == "Mozilla/5.0" and e.ip.startswith("17."):
                assert not is_human_interaction(e.type, e.user_agent, e.ip)
                machine[(e.flow_id, e.recipient_hash)] += 1
            else:
                human_open.add((e.flow_id, e.recipient_hash))
        elif e.type == "click" and not is_human_interaction(e.type, e.user_agent, e.ip):
            bot_clicks += 1
    assert bot_clicks > 0
    apple = [j for j in truth.journeys if j.apple]
    others = [j for j in truth.journeys if not j.apple]
    assert apple and others
    for j in apple:  # one machine open per delivery: reached or not
        key = (j.flow_id, j.recipient_hash)
        assert machine[key] == deliveries[key]
    assert not any(machine[(j.flow_id, j.recipient_hash)] for j in others)

    def rate(rows, pred):
        return sum(1 for j in rows if pred(j)) / len(rows)

    # a machine open says nothing: every Apple journey has one, reached or not ...
    assert rate([j for j in apple if j.reached], lambda j: machine[(j.flow_id,
                                                                      j.recipient_hash)]) == 1
    assert rate([j for j in apple if not j.reached], lambda j: machine[(j.flow_id,
                                                                          j.recipient_hash)]) == 1
    # ... while human opens are much more common among those who reach the goal
    reached = [j for j in truth.journeys if j.reached]
    missed = [j for j in truth.journeys if not j.reached]
    opened = lambda j: (j.flow_id, j.recipient_hash) in human_open  # noqa: E731
    assert rate(reached, opened) > rate(missed, opened) + 0.3


def test_a_shift_lowers_that_cohort_and_only_that_one():
    base = small(days=3, entrants_per_day=300).truth()
    shifted_sim = small(days=3, entrants_per_day=300, shifts=[Shift("welcome", 1, -1.5)])
    shifted = shifted_sim.truth()
    expected = {(c.flow_id, c.cohort_day - base.cohorts[0].cohort_day): c for c in base.cohorts}
    day0 = base.cohorts[0].cohort_day
    for c in shifted.cohorts:
        before = expected[(c.flow_id, c.cohort_day - day0)]
        if (c.flow_id, c.cohort_day - day0) == ("welcome", 1):
            assert c.shift == -1.5 and before.shift == 0.0
            assert c.expected < 0.5 * before.expected
        else:
            assert c.shift == 0.0
            assert c.expected == pytest.approx(before.expected, rel=0.2)
    with pytest.raises(ValueError, match="unknown flow"):
        small(shifts={("nope", 0): 1.0})


def test_newsletters_add_history_without_changing_the_journeys(world):
    sim, raw, _, truth = world
    with_news = small(newsletters=0.05)
    assert with_news.truth() == truth
    parser = EventParser(RecipientHasher(DEV_HASH_KEY), now=lambda: NOW)
    parsed = [parser.parse(e.value, e.topic, 0, i) for i, e in enumerate(with_news.events())]
    assert all(isinstance(p, Event) for p in parsed)
    news = [p for p in parsed if not p.flow_id and p.type != "conversion"]
    assert {p.type for p in news} >= {"sent", "delivered", "open", "click"}
    assert {p.type for p in news} <= {"sent", "delivered", "open", "click"}
    flow_events = [e.value for e in with_news.events() if b'"flow_id"' in e.value
                   or b'"conversion"' in e.value]
    assert [orjson.loads(v) | {"event_id": ""} for v in flow_events] == [
        orjson.loads(e.value) | {"event_id": ""} for e in raw]
    with pytest.raises(ValueError, match="newsletters"):
        small(newsletters=1.5)


def test_true_p_follows_the_known_structure():
    sim = small()
    flow = sim.flows[0]
    r = max(range(sim.population), key=lambda i: sim._z[i])
    s = min(range(sim.population), key=lambda i: sim._z[i])
    assert sim.true_p(flow, r, 0.0, 0) > flow.base_rate > sim.true_p(flow, s, 0.0, 0)
    with pytest.raises(ValueError, match="inside the window"):
        JourneySimulator(flows=[FlowSpec("f", "s.example", (0, 8), 0.1, "g")], start=START)


def test_truth_jsonl_round_trip(tmp_path, world):
    _, _, _, truth = world
    path = tmp_path / "truth.jsonl"
    assert truth.write_jsonl(path) == len(truth.journeys) + len(truth.cohorts)
    assert read_truth(path) == truth


def test_cli_generate_journeys_writes_events_and_truth(tmp_path, capsys):
    events, truth_path = tmp_path / "j.jsonl", tmp_path / "t.jsonl"
    rc = main(["generate", "--journeys", "--days", "2", "--entrants-per-day", "15",
               "--seed", "4", "--start", "2026-11-21T00:00:00Z", "--to", str(events),
               "--truth", str(truth_path), "--shift", "winback:1:-0.5"])
    assert rc == 0
    sim = JourneySimulator(seed=4, start=START, days=2, entrants_per_day=15,
                           shifts=[Shift("winback", 1, -0.5)])
    assert events.read_bytes() == b"".join(e.value + b"\n" for e in sim.events())
    assert read_truth(truth_path) == sim.truth()
    assert "wrote the truth of" in capsys.readouterr().out
    assert main(["generate", "--journeys", "--shift", "winback:x", "--to", str(events)]) == 2


# --- bench/convergence.py ---------------------------------------------------------------
def _toy_truth() -> Truth:
    """Forty journeys in two cohorts; half reach the goal."""
    journeys = []
    for i in range(40):
        entered = (20_000 + i // 20) * DAY_MS + 3_600_000
        reached = i % 2 == 0
        journeys.append(JourneyTruth("f", "s.example", f"r{i}@x.example", f"h{i}", "x.example",
                                     "", i // 20, entered, entered // DAY_MS, 0.5, reached,
                                     entered + DAY_MS if reached else None, False,
                                     "reached" if reached else "none"))
    return Truth(journeys, cohorts_of(journeys), 7.0)


def test_roc_auc_matches_pairwise_counting():
    rng = random.Random(3)
    scores = [round(rng.random(), 1) for _ in range(200)]  # many ties
    labels = [rng.random() < s for s in scores]
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    brute = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
    assert bench.roc_auc(scores, labels) == pytest.approx(brute)


def test_poisson_binomial_interval_against_brute_force():
    ps = [0.1, 0.5, 0.7, 0.3, 0.9, 0.2]
    pmf = [0.0] * 7
    for mask in range(64):
        prob = 1.0
        for i, p in enumerate(ps):
            prob *= p if mask >> i & 1 else 1 - p
        pmf[bin(mask).count("1")] += prob
    assert bench.poisson_binomial_pmf(ps).tolist() == pytest.approx(pmf)
    lo, hi = bench.central_interval(bench.poisson_binomial_pmf(ps), 0.8)
    assert sum(pmf[:lo]) <= 0.1 < sum(pmf[:lo + 1])
    assert sum(pmf[hi + 1:]) <= 0.1 < sum(pmf[hi:])


def test_evaluate_propensities_entry_and_latest_before_the_outcome():
    truth = _toy_truth()
    rows = []
    for j in truth.journeys:
        rows.append({"flow_id": "f", "recipient_hash": j.recipient_hash, "score": 0.5,
                     "as_of": j.entered_ms})                       # entry: no information
        rows.append({"flow_id": "f", "recipient_hash": j.recipient_hash,
                     "score": 0.9 if j.reached else 0.1,           # before the outcome: right
                     "as_of": datetime.fromtimestamp((j.entered_ms + 3_600_000) / 1000, UTC)})
        rows.append({"flow_id": "f", "recipient_hash": j.recipient_hash,  # at/after: ignored
                     "score": 0.0 if j.reached else 1.0,
                     "as_of": (j.reached_ms or j.entered_ms + 7 * DAY_MS) / 1000})
    rows.append({"flow_id": "f", "recipient_hash": "stranger", "score": 0.3, "as_of": 0})
    got = bench.evaluate({"flow_propensities": rows}, truth)["propensity"]
    assert got["rows_not_in_truth"] == 1
    assert got["entry"]["roc_auc"] == 0.5 and got["entry"]["ece"] == 0.0
    assert got["latest"]["roc_auc"] == 1.0 and got["latest"]["n"] == 40
    assert got["latest"]["ece"] == pytest.approx(0.1)
    none = bench.evaluate({"flow_propensities": []}, truth)["propensity"]
    assert none["entry"]["missing"] == 40 and none["entry"]["roc_auc"] is None


def test_evaluate_forecasts_by_lead_coverage_and_baselines():
    truth = _toy_truth()
    rows = []
    for c in truth.cohorts:  # realised 0.5 in both
        for lead, score in ((1, 0.55), (2, 0.5), (3, 0.2)):
            rows.append({"flow_id": c.flow_id, "cohort_day": c.cohort_day,
                         "as_of": (c.cohort_day + lead) * DAY_MS - 60_000,
                         "entered": c.entrants, "converged": 0, "expected_converged": 0,
                         "forecast_score": score, "lo80": score - 0.1, "hi80": score + 0.1,
                         "lo95": score - 0.4, "hi95": score + 0.4})
    rows[0] = {**rows[0], "cohort_day": date.fromordinal(date(1970, 1, 1).toordinal()
                                                         + truth.cohorts[0].cohort_day)}
    got = bench.evaluate({"convergence_forecast": rows}, truth,
                         baselines={"trailing": {"convergence_forecast": rows[1:2]}})
    f = got["forecast"]
    assert f["1d"]["mean_abs_rel_error"] == pytest.approx(0.1) and f["1d"]["within_15pct"] == 1
    assert f["1d"]["coverage80"] == 1.0 and f["1d"]["entered_matches_truth"] == 1.0
    assert f["2d"]["mean_abs_rel_error"] == 0.0
    assert f["3d"]["bias"] == pytest.approx(-0.6) and f["3d"]["coverage80"] == 0.0
    assert f["3d"]["coverage95"] == 1.0
    assert f["1d"]["mean_rel_width80"] == pytest.approx(0.2 / 0.55, abs=1e-4)
    base = got["baselines"]["trailing"]["forecast"]
    assert base["1d"]["missing"] == 2 and base["2d"]["n"] == 1
    assert bench.evaluate({"convergence_forecast": rows}, truth, min_entrants=21
                          )["forecast"]["cohorts"] == 0


def test_evaluate_outcomes_against_the_truth():
    truth = _toy_truth()
    rows = [{"flow_id": c.flow_id, "cohort_day": c.cohort_day, "entered": c.entrants,
             "converged": c.converged, "score": c.realised, "window_days": 7}
            for c in truth.cohorts]
    rows[1] = {**rows[1], "converged": 1, "score": 0.25}
    got = bench.evaluate({"cohort_outcomes": rows}, truth)["outcomes"]
    assert got == {"n": 2, "of_cohorts": 2, "rows_not_in_truth": 0, "exact": 1,
                   "max_abs_score_diff": 0.25}


def test_truth_summary_reports_the_noise_floor():
    truth = small(days=2, entrants_per_day=80).truth()
    summary = bench.truth_summary(truth, min_entrants=50)
    assert summary["journeys"] == len(truth.journeys)
    assert len(summary["cohorts"]) == len(truth.cohorts)
    oracle = summary["oracle_forecast_all"]
    assert 0 <= oracle["coverage80"] <= oracle["coverage95"] <= 1
    assert 0.6 < summary["oracle_propensity"]["roc_auc"] < 0.95


@pytest.mark.integration
def test_the_job_counts_the_truths_entrants_and_conversions(broker, tmp_path):
    """Through the real broker and job: every generated event is stored, and per flow the
    job's distinct entered recipients are the truth's journeys and its converted ones those
    who reached the goal plus the late converters (the rolling metric attributes those too)."""
    data_dir = tmp_path / "data"
    env = {"MAILFLOW_KAFKA_BROKERS": broker.bootstrap, "MAILFLOW_DATA_DIR": str(data_dir),
           "MAILFLOW_ADMIN_PORT": "0"}
    mailflow_cmd("generate", "--journeys", "--days", "2", "--entrants-per-day", "40",
                 "--seed", "3", "--start", str(int(START)), env=env)
    mailflow_cmd("run", "--dev", "--no-tail", env=env)
    sim = JourneySimulator(seed=3, start=START, days=2, entrants_per_day=40)
    truth = sim.truth()
    stored = query_store(data_dir, "SELECT count() FROM mailflow.events FINAL")[0][0]
    assert stored == sum(1 for _ in sim.events())
    rows = query_store(data_dir, "SELECT flow_id, uniqExactMerge(entered), "
                                 "uniqExactMerge(converted) FROM mailflow.flow_recipients_1h "
                                 "GROUP BY flow_id ORDER BY flow_id")
    expected = defaultdict(lambda: [0, 0])
    for j in truth.journeys:
        expected[j.flow_id][0] += 1
        expected[j.flow_id][1] += j.reached or j.outcome == "late"
    assert [tuple(r) for r in rows] == [(f, *expected[f]) for f in sorted(expected)]
