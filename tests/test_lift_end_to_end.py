"""Control groups end to end: seeded traffic with a known true effect (mailflow/lift_sim.py)
→ the real broker → `mailflow run --no-tail` → chDB's `lift` and `lift_segments` →
`mailflow lift`. The effect flow's interval holds the true effect, the null flow's holds 0,
the arms are the events' own, the policy experiment is measured, and a broken split (the
holdout events of a third of the control group lost) raises the sample-ratio alarm."""

from __future__ import annotations

import orjson
import pytest

from mailflow.lift_sim import LiftSimulator, scenario_from_args
from mailflow.traffic import parse_start
from schemas.rows import LIFT_COLUMNS, LIFT_SEGMENT_COLUMNS
from tests.conftest import mailflow_cmd, query_store

pytestmark = pytest.mark.integration
START = "2026-10-01T00:00:00Z"
DAYS, PER_DAY = 6, 600


def run_scenario(broker, tmp_path, seed: int, broken: float) -> tuple:
    data_dir = tmp_path / "data"
    env = {"MAILFLOW_KAFKA_BROKERS": broker.bootstrap, "MAILFLOW_DATA_DIR": str(data_dir),
           "MAILFLOW_ADMIN_PORT": "0", "MAILFLOW_HOLDOUT_SHARE": "0.1",
           "MAILFLOW_GLOBAL_CONTROL_SHARE": "0.05", "MAILFLOW_LIFT_WINDOWS_DAYS": "7"}
    config = tmp_path / "mailflow.toml"
    config.write_text("[experiment_shares]\nsend_time = 0.5\n")
    env["MAILFLOW_CONFIG"] = str(config)
    mailflow_cmd("generate", "--scenario", "lift", "--seed", str(seed), "--start", START,
                 "--days", str(DAYS), "--recipients-per-day", str(PER_DAY),
                 "--broken-split", str(broken), env=env)
    mailflow_cmd("run", "--dev", "--no-tail", env=env)
    scenario = scenario_from_args(days=DAYS, recipients_per_day=PER_DAY, broken_split=broken)
    truth = LiftSimulator(scenario, seed=seed, start=parse_start(START)).truth()
    rows = query_store(data_dir, f"SELECT {', '.join(LIFT_COLUMNS)} FROM mailflow.lift FINAL "
                                 "ORDER BY as_of")
    latest = {}
    for r in rows:
        row = dict(zip(LIFT_COLUMNS, r, strict=True))
        latest[(row["flow_id"], row["window_days"])] = row
    segments = query_store(data_dir, f"SELECT {', '.join(LIFT_SEGMENT_COLUMNS)} "
                                     "FROM mailflow.lift_segments FINAL ORDER BY as_of")
    latest_segments = {}
    for r in segments:
        row = dict(zip(LIFT_SEGMENT_COLUMNS, r, strict=True))
        latest_segments[(row["scope"], row["segment"], row["window_days"])] = row
    return env, truth, latest, latest_segments, rows


def test_lift_through_the_job_holds_the_truth_and_says_what_the_mail_caused(broker, tmp_path):
    env, truth, latest, segments, rows = run_scenario(broker, tmp_path, seed=3, broken=0.0)
    effect, null = latest[("onboarding", 7)], latest[("winback", 7)]
    t_on, t_null = truth.unit("onboarding"), truth.unit("winback")
    # the arms are exactly the assigned recipients of the events (every window closed)
    for row, t in ((effect, t_on), (null, t_null)):
        assert (row["treated_assigned"], row["control_assigned"]) == (t.treated_n, t.control_n)
        assert (row["treated_n"], row["control_n"]) == (t.treated_n, t.control_n)
        assert (row["treated_conv"], row["control_conv"]) == (t.treated_conv, t.control_conv)
        assert row["partial"] == 0 and row["srm_alarm"] == 0 and row["crossovers"] == 0
        assert row["treated_value"] == pytest.approx(t.treated_value)
        assert row["av_lo95"] <= row["abs_lo95"] <= row["abs_lift"] <= row["abs_hi95"] <= (
            row["av_hi95"])
    # the truth inside the intervals (seeded: these hold for this seed, see bench/lift.py
    # for coverage over many seeds)
    assert effect["abs_lo95"] <= t_on.true_effect <= effect["abs_hi95"]
    assert null["abs_lo95"] <= 0.0 <= null["abs_hi95"]
    assert null["significant"] == 0
    # the global control group: everyone the programme would have mailed against it
    glob = latest[("", 7)]
    assert glob["control_assigned"] == truth.unit("").observed_control_n
    assert glob["srm_alarm"] == 0 and glob["expected_control_share"] == 0.05
    # the policy experiment (arm on the events), in lift_segments with its own split
    experiment = segments[("experiment", "send_time", 7)]
    t_exp = truth.unit("experiment:send_time")
    assert (experiment["treated_n"], experiment["control_n"]) == (t_exp.treated_n,
                                                                t_exp.control_n)
    assert (experiment["treated_conv"], experiment["control_conv"]) == (t_exp.treated_conv,
                                                                      t_exp.control_conv)
    assert experiment["abs_lo95"] <= t_exp.true_effect <= experiment["abs_hi95"]
    assert experiment["expected_control_share"] == 0.5 and experiment["srm_alarm"] == 0
    # a day's row for every day a window closed, as of a UTC day start (and the end)
    assert len({r[2] for r in rows if r[0] == "onboarding"}) >= DAYS

    # the report, in words and as JSON
    report = orjson.loads(mailflow_cmd("lift", "--json", env=env).stdout)["lift"]
    assert {r["label"] for r in report} >= {"flow onboarding", "flow winback"}
    assert not any(r["srm_alarm"] for r in report)
    segments_text = mailflow_cmd("lift", "--segments", "--flow", "send_time", env=env).stdout
    assert "experiment send_time: 7-day window" in segments_text
    assert "Experiment send_time" in segments_text


def test_a_broken_split_raises_the_sample_ratio_alarm(broker, tmp_path):
    env, truth, latest, _segments, _rows = run_scenario(broker, tmp_path, seed=4, broken=1 / 3)
    for flow in ("onboarding", "winback"):
        row = latest[(flow, 7)]
        t = truth.unit(flow)
        assert row["control_assigned"] == t.observed_control_n < t.control_n
        assert row["srm_alarm"] == 1 and row["srm_p"] < 0.001, row
    text = mailflow_cmd("lift", env=env).stdout
    assert "SPLIT BROKEN" in text
