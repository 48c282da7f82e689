"""Journey traffic with a known truth → broker → `mailflow run` → chDB: propensities per
recipient and flow, cohort forecasts and outcomes, their quality, and the API over them."""

from __future__ import annotations

import pytest

from mailflow.flow_api import FlowQueries
from mailflow.journeys import JourneySimulator
from sinks.clickhouse import store_for
from tests.conftest import ROOT, mailflow_cmd, query_store

pytestmark = pytest.mark.integration
START = 1_793_491_200  # 2026-11-01T00:00:00Z: whole UTC days, every event in the past
DAYS, ENTRANTS, SEED = 9, 60, 5


def test_propensities_and_cohort_forecasts_follow_the_truth(broker, tmp_path):
    data_dir = tmp_path / "data"
    env = {"MAILFLOW_KAFKA_BROKERS": broker.bootstrap, "MAILFLOW_DATA_DIR": str(data_dir),
           "MAILFLOW_ADMIN_PORT": "0"}
    mailflow_cmd("generate", "--journeys", "--days", str(DAYS), "--entrants-per-day",
                 str(ENTRANTS), "--seed", str(SEED), "--start", str(START), env=env)
    mailflow_cmd("run", "--dev", "--no-tail", env=env)
    truth = JourneySimulator(seed=SEED, start=START, days=DAYS,
                             entrants_per_day=ENTRANTS).truth()

    # Every journey of the truth has a propensity; the goal sets it to 1, a stop to 0.
    latest = {(f, h): (score, kind) for f, h, score, kind in query_store(
        data_dir, "SELECT flow_id, recipient_hash, score, kind "
                  "FROM mailflow.flow_propensities FINAL")}
    journeys = {(j.flow_id, j.recipient_hash): j for j in truth.journeys}
    assert latest.keys() == journeys.keys()
    for key, j in journeys.items():
        score, kind = latest[key]
        if kind == "goal":
            assert score == 1.0
        elif kind in ("stopped", "expired"):
            assert score == 0.0
        if j.outcome in ("unsubscribed", "complained"):
            assert kind == "stopped", (j, kind)
    reached = {k for k, j in journeys.items() if j.reached}
    goal = {k for k, (_s, kind) in latest.items() if kind == "goal"}
    assert len(goal & reached) >= 0.95 * len(reached)  # the goal, within the window

    # Cohorts whose window closed: their realised score; forecasts with ordered intervals.
    outcomes = query_store(data_dir, "SELECT flow_id, toUInt32(cohort_day), entered, "
                                     "converged, score FROM mailflow.cohort_outcomes FINAL")
    assert outcomes, "the first cohorts' windows closed within the run"
    truth_cohorts = {(c.flow_id, c.cohort_day): c for c in truth.cohorts}
    for flow, day, entered, converged, score in outcomes:
        c = truth_cohorts[(flow, day)]
        assert entered == c.entrants
        assert abs(converged - c.converged) <= max(2, 0.05 * c.converged)
        assert score == pytest.approx(converged / entered)
    forecasts = query_store(data_dir, "SELECT lo95, lo80, forecast_score, hi80, hi95, "
                                      "entered, converged, expected_converged "
                                      "FROM mailflow.convergence_forecast FINAL")
    assert len(forecasts) > 100
    for lo95, lo80, score, hi80, hi95, entered, converged, expected in forecasts:
        # (a discrete distribution's mean may lie outside its 80% interval: one recipient
        # at p = 0.1 has the interval [0, 0] and the mean 0.1)
        assert converged / entered <= lo95 <= lo80 <= hi80 <= hi95 <= 1.0
        # expected: converged + Σp; the score: the forecast (Σp mixed with the flow's
        # recent cohorts by their track record once graded)
        assert converged <= expected <= entered and converged / entered <= score <= 1.0

    # Quality in model_metrics, beside its baselines (figures in the README, not asserted).
    quality = dict(query_store(data_dir, """
        SELECT model, argMax(roc_auc, minute) FROM mailflow.model_metrics FINAL
        WHERE model LIKE 'convergence%' GROUP BY model"""))
    assert {"convergence", "convergence_latest", "convergence_baseline_flow",
            "convergence_baseline_conversion"} <= quality.keys()
    assert quality["convergence_latest"] > quality["convergence_baseline_flow"]
    labels = dict(query_store(data_dir, """
        SELECT model, max(n) FROM mailflow.model_metrics FINAL
        WHERE model = 'convergence' GROUP BY model"""))
    closed = sum(1 for _s, kind in latest.values() if kind in ("goal", "stopped", "expired"))
    assert labels["convergence"] == closed  # every closed journey graded once (entry score)

    # The README's ready queries for analysts run on it.
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- convergence-queries -->")[1].split("<!-- /convergence-queries -->")[0]
    sql = "\n".join(line for line in block.split("```sql")[1].split("```")[0].splitlines()
                    if not line.strip().startswith("--"))
    queries = [q.strip() for q in sql.split(";") if q.strip()]
    assert len(queries) == 3
    found = [query_store(data_dir, q) for q in queries]
    assert found[0]  # (every journey of this run has closed: none open to list)
    assert all(len(row) == 8 for row in found[0])

    # The API's answers, from the same store.
    # (one chDB store open per process at a time: closed before the next test opens one)
    store = store_for(f"chdb://{data_dir / 'clickhouse'}")
    try:
        flows = FlowQueries(store.query)
        flow = sorted({j.flow_id for j in truth.journeys})[0]
        answer = flows.forecast(flow, cohorts=30)
        assert answer["flow_id"] == flow and answer["cohorts"]
        closed = [c for c in answer["cohorts"] if c["outcome"]]
        assert closed and all(c["outcome"]["entered"] > 0 for c in closed)
        (flow_id, h), (score, kind) = next(iter(latest.items()))
        record = flows.recipient(flow_id, h)
        assert record["score"] == pytest.approx(score) and record["kind"] == kind
        assert flows.recipient(flow_id, "0" * 32) is None
        with pytest.raises(ValueError):
            flows.recipient("x' OR 1=1 --", h)
    finally:
        store.close()
