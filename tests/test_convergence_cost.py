"""bench/convergence_cost.py: what convergence prediction adds is measured against a run that
differs only by it (`EngagementAnalytics(journeys=False)`); the bench reports per mix."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import convergence_cost  # noqa: E402

CONVERGENCE = ("propensities", "forecasts", "cohorts", "flow_alerts", "forecast_quality")


@pytest.fixture(scope="module")
def runs():
    items, window_days, in_flows = convergence_cost.traffic("newsletters", 2, 30, 7, 0.3, 0.0)
    assert 0 < in_flows < len(items)
    on = convergence_cost.run(items, window_days, True)[1]
    off = convergence_cost.run(items, window_days, False)[1]
    return on, off


def test_journeys_off_writes_no_convergence_prediction(runs):
    on, off = runs
    assert on.propensities and on.forecasts
    for name in CONVERGENCE:
        assert getattr(off, name) == [], name
    assert not [r for r in off.model_metrics if r.model.startswith("convergence")]


def test_journeys_off_changes_nothing_else(runs):
    """The difference between the two runs is the cost of convergence prediction alone."""
    on, off = runs
    for name in on._fields:
        if name in CONVERGENCE or name in ("facts", "personas"):
            continue
        if name == "model_metrics":  # the convergence models' rows are the difference
            assert [r for r in on.model_metrics if not r.model.startswith("convergence")] \
                == off.model_metrics
            continue
        assert getattr(on, name) == getattr(off, name), name


def test_the_bench_reports_each_mix_and_a_profile(capsys):
    assert convergence_cost.main(["--days", "1", "--entrants", "10", "--mix", "journeys",
                                  "--mix", "generator", "--rate", "0.01", "--repeat", "1",
                                  "--profile"]) == 0
    out = capsys.readouterr().out
    lines = [orjson.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [r["mix"] for r in lines] == ["journeys", "generator"]
    for r in lines:
        assert r["events"] > 0 and r["propensity_rows"] > 0
        assert {"us_per_event_without", "us_per_event_with", "us_per_event_added"} <= set(r)
    assert "propensity.py" in out and "journeys.py" in out  # the profile's top functions
