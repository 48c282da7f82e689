"""`mailflow lift`: the report read from a real chDB store's `lift` table (rows made by
hand with operators.lift_stats.estimate), its JSON, the SRM alarm, the empty and missing
table, and `--plan` against operators.lift_stats.plan.

The store is filled in this process and closed; each report runs as its own process
(`python -m mailflow lift`), as a user runs it (chDB: one store per process), with an
admin port nobody answers on, so no running job is asked instead.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from mailflow.broker import free_port
from mailflow.cli import main
from operators.lift_stats import Arm, estimate, plan
from sinks.clickhouse import ClickHouseStore
from tests.conftest import ROOT, mailflow_cmd

#: The contract (the lead's sinks/sql/008_lift.sql); used when the migration is not there.
LIFT_DDL = """
CREATE TABLE IF NOT EXISTS mailflow.lift (
  flow_id LowCardinality(String),
  window_days UInt16, as_of DateTime64(3, 'UTC'), goal LowCardinality(String),
  treated_n UInt64, treated_conv UInt64, control_n UInt64, control_conv UInt64,
  treated_rate Float64, control_rate Float64, abs_lift Float64, abs_lo95 Float64,
  abs_hi95 Float64, av_lo95 Float64, av_hi95 Float64, rel_lift Float64,
  incremental_conversions Float64, treated_value Float64, control_value Float64,
  treated_value_per Float64, control_value_per Float64, value_lift Float64,
  value_lo95 Float64, value_hi95 Float64, incremental_value Float64,
  srm_p Float64, srm_alarm UInt8, expected_control_share Float64, treated_assigned UInt64,
  control_assigned UInt64, significant UInt8, crossovers UInt64, partial UInt8,
  treated_unsub_rate Float64, treated_complaint_rate Float64, control_unsub_rate Float64,
  control_complaint_rate Float64, treated_click_rate Float64,
  first_assigned DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree ORDER BY (flow_id, window_days, as_of)
SETTINGS non_replicated_deduplication_window = 10000
"""

NOV1 = datetime(2026, 11, 1, tzinfo=UTC)
DEC1 = datetime(2026, 12, 1, tzinfo=UTC)
NOV20 = datetime(2026, 11, 20, tzinfo=UTC)


def lift_row(flow_id: str, window_days: int, as_of: datetime, treated: Arm, control: Arm,
             treated_assigned: int, control_assigned: int, share: float,
             first_assigned: datetime = NOV1, crossovers: int = 0,
             partial: int = 0) -> dict:
    """A row as the job writes it: the estimate of the arms, plus the counts."""
    est = estimate(treated, control, treated_assigned, control_assigned, share)
    row = dict(flow_id=flow_id, window_days=window_days, as_of=as_of, goal="",
               treated_n=treated.n, treated_conv=treated.conv, control_n=control.n,
               control_conv=control.conv, treated_value=treated.value,
               control_value=control.value, expected_control_share=share,
               treated_assigned=treated_assigned, control_assigned=control_assigned,
               crossovers=crossovers, partial=partial, first_assigned=first_assigned)
    row.update({k: (int(v) if isinstance(v, bool) else v) for k, v in est._asdict().items()})
    return row


ONBOARDING = lift_row(  # +1.1 pp on 90,000 treated: significant, about 990 conversions
    "onboarding", 7, DEC1,
    Arm(n=90_000, conv=4_950, value=445_500.0, value_sq=4_950 * 20_000.0, unsub=270,
        complaint=9, clicks=7_200),
    Arm(n=10_000, conv=440, value=39_600.0, value_sq=440 * 20_000.0, unsub=20, complaint=1),
    90_400, 10_050, 0.1, crossovers=12)
ONBOARDING_OLD = lift_row(
    "onboarding", 7, NOV20, Arm(n=45_000, conv=2_000), Arm(n=5_000, conv=215), 45_500,
    5_050, 0.1)
WINBACK = lift_row(  # no effect
    "winback", 7, DEC1, Arm(n=20_000, conv=600, value=30_000.0, value_sq=600 * 5_000.0),
    Arm(n=2_200, conv=66, value=3_300.0, value_sq=66 * 5_000.0), 20_000, 2_200, 0.1)
CART = lift_row(  # a third of the control group's holdout events lost
    "cart_abandon", 7, DEC1, Arm(n=30_000, conv=3_000), Arm(n=2_222, conv=160), 30_000,
    2_222, 0.1)
GLOBAL = lift_row(
    "", 30, DEC1, Arm(n=475_000, conv=23_750), Arm(n=25_000, conv=1_100), 475_000, 25_000,
    0.05, first_assigned=datetime(2026, 10, 2, tzinfo=UTC))


def make_store(data_dir: Path, rows: list[dict] | None) -> None:
    """The job's store with the `lift` table (and `rows`, when given)."""
    store = ClickHouseStore(f"chdb://{data_dir / 'clickhouse'}")
    try:
        store.migrate()
        migration = ROOT / "sinks" / "sql" / "008_lift.sql"
        if not migration.exists():
            store.client.command(LIFT_DDL)
        if rows:
            columns = list(rows[0])
            store.client.insert("mailflow.lift", [[r[c] for c in columns] for r in rows],
                                column_names=columns)
    finally:
        store.close()


def lift_cmd(data_dir: Path, *args: str, check: bool = True):
    return mailflow_cmd("lift", "--data-dir", str(data_dir), "--admin-port",
                        str(free_port()), *args, timeout=120, check=check)


@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("lift")
    make_store(data_dir, [ONBOARDING, ONBOARDING_OLD, WINBACK, CART, GLOBAL])
    return data_dir


def test_the_report_says_what_each_flow_caused(filled):
    out = lift_cmd(filled).stdout
    # the latest as_of of each flow and window, the older row of onboarding not shown
    assert out.count("flow onboarding: 7-day window") == 1
    assert "as of 2026-12-01 00:00 UTC, assigned since 2026-11-01 (30 days)" in out
    assert "45,000" not in out
    assert ("Flow onboarding caused +1.1 pp conversions (always-valid 95% CI "
            f"{ONBOARDING['av_lo95'] * 100:+.1f} to {ONBOARDING['av_hi95'] * 100:+.1f} pp), "
            "about 990 conversions over 30 days.") in out
    assert "90,000" in out and "4,950" in out and "5.50%" in out and "4.40%" in out
    assert f"fixed 95% CI         {ONBOARDING['abs_lo95'] * 100:+.2f} pp" in out
    assert "relative +25.0%" in out
    assert "crossovers: 12 recipients" in out
    assert "unsubscribes 0.30% vs 0.20%" in out
    assert "human clicks (secondary, treated only): 8.00%" in out
    assert "split OK" in out
    assert "Flow winback: no evidence of an effect yet (+0.0 pp" in out
    assert "all marketing (global control group): 30-day window" in out
    assert "All marketing caused +0.6 pp conversions" in out and "over 60 days" in out
    assert "open" not in out.lower().replace("still open", "")


def test_a_broken_split_is_loud(filled):
    out = lift_cmd(filled).stdout
    assert out.startswith("SPLIT BROKEN for flow cart_abandon")
    assert ("!! SPLIT BROKEN: 2,222 of 32,222 assigned are in control (6.9%), expected "
            "10.0%") in out
    assert "!! every lift for this flow is meaningless until fixed" in out
    assert "meaningless: the split is broken" in out
    assert "Flow cart_abandon: no conclusion, the split is broken" in out
    assert "Flow cart_abandon caused" not in out


def test_json_has_every_column_and_the_verdicts(filled):
    doc = orjson.loads(lift_cmd(filled, "--json").stdout)
    rows = {(r["flow_id"], r["window_days"]): r for r in doc["lift"]}
    assert sorted(rows) == [("", 30), ("cart_abandon", 7), ("onboarding", 7), ("winback", 7)]
    onboarding = rows[("onboarding", 7)]
    assert set(ONBOARDING) <= set(onboarding)
    for column, value in ONBOARDING.items():
        if isinstance(value, float):
            assert onboarding[column] == pytest.approx(value), column
        elif not isinstance(value, datetime):
            assert onboarding[column] == value, column
    assert onboarding["as_of"].startswith("2026-12-01T00:00:00")
    assert onboarding["significant"] == 1 and onboarding["days_covered"] == 30
    assert onboarding["summary"].startswith("Flow onboarding caused +1.1 pp")
    assert rows[("cart_abandon", 7)]["srm_alarm"] == 1
    assert rows[("cart_abandon", 7)]["srm_verdict"].startswith("SPLIT BROKEN")
    assert rows[("", 30)]["label"] == "all marketing (global control group)"
    assert rows[("winback", 7)]["significant"] == 0


def test_flow_and_window_filters(filled):
    doc = orjson.loads(lift_cmd(filled, "--json", "--flow", "winback", "--flow", "",
                                "--window-days", "7").stdout)
    assert [(r["flow_id"], r["window_days"]) for r in doc["lift"]] == [("winback", 7)]
    out = lift_cmd(filled, "--flow", "no_such_flow").stdout
    assert "no lift rows yet" in out and "for the flows and window asked" in out


def test_an_empty_table_says_what_to_check(tmp_path):
    make_store(tmp_path, None)
    proc = lift_cmd(tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip() == ("no lift rows yet: are holdout events flowing? see README "
                                   "(\"Lift: what the mail caused\")")
    doc = orjson.loads(lift_cmd(tmp_path, "--json").stdout)
    assert doc["lift"] == [] and doc["message"].startswith("no lift rows yet")


def test_a_store_without_the_table_or_no_store_at_all(tmp_path, capsys):
    store = ClickHouseStore(f"chdb://{tmp_path / 'bare' / 'clickhouse'}")
    store.close()
    proc = lift_cmd(tmp_path / "bare")
    assert proc.returncode == 0 and "no lift rows yet" in proc.stdout
    # no store: nothing is opened, so this runs in this process
    assert main(["lift", "--data-dir", str(tmp_path / "none"), "--admin-port",
                 str(free_port())]) == 0
    assert "no lift rows yet" in capsys.readouterr().out
    assert not (tmp_path / "none").exists()


# ---------------------------------------------------------------- --plan

def test_plan_prints_the_planners_numbers(capsys):
    assert main(["lift", "--plan", "--baseline", "3%", "--mde", "0.5", "--control-share",
                 "10%", "--daily-recipients", "5000"]) == 0
    out = capsys.readouterr().out
    expected = plan(0.03, 0.005, 0.1)
    assert f"{expected.total:,} recipients ({expected.control:,} control + " \
           f"{expected.treated:,} treated)" in out
    assert f"{expected.av_total:,} recipients" in out
    assert f"{math.ceil(expected.total / 5000)} days" in out
    assert f"they forgo about {round(expected.control * 0.005)} conversions" in out
    assert "2.5 a day" in out


def test_plan_json_and_its_refusals(capsys):
    assert main(["lift", "--plan", "--json", "--baseline", "0.05", "--mde", "1pp",
                 "--control-share", "0.5", "--alpha", "0.05", "--power", "0.9"]) == 0
    doc = orjson.loads(capsys.readouterr().out)
    expected = plan(0.05, 0.01, 0.5, 0.05, 0.9)
    for field, value in expected._asdict().items():
        assert doc[field] == pytest.approx(value), field
    assert doc["forgone_conversions"] == pytest.approx(expected.control * 0.01)
    assert "days" not in doc
    assert main(["lift", "--plan", "--baseline", "3%"]) == 2
    assert "--mde, --control-share required" in capsys.readouterr().err
    assert main(["lift", "--plan", "--baseline", "3%", "--mde", "0.5",
                 "--control-share", "100%"]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["lift", "--plan", "--baseline", "x", "--mde", "0.5",
                 "--control-share", "10%"]) == 2


def test_help_explains_lift(capsys):
    with pytest.raises(SystemExit):
        main(["lift", "--help"])
    out = capsys.readouterr().out
    for words in ("Intent-to-treat", "Opens are never an outcome", "always-valid",
                  "SPLIT BROKEN", "--plan", "--daily-recipients", "--window-days"):
        assert words in out, words


# ---------------------------------------------------------------- the README's numbers

def readme_block(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    return text.split(f"<!-- {marker} -->")[1].split(f"<!-- /{marker} -->")[0]


def test_the_readme_lift_queries_run(filled):
    from sinks.clickhouse import split_statements

    sql = readme_block("lift-queries").strip().removeprefix("```sql").removesuffix("```")
    statements = split_statements(sql)
    assert len(statements) == 3
    store = ClickHouseStore(f"chdb://{filled / 'clickhouse'}")
    try:
        store.query(statements[2])  # segments: runs (its rows are checked on the demo's store)
        latest = store.query(statements[0])[1]
        assert [r[0] for r in latest][:1] == ["cart_abandon"]      # the broken split first
        assert len(latest) == 4
        days = store.query(statements[1])[1]
        assert [r[1] for r in days] == [45_000, 90_000]
    finally:
        store.close()


def test_the_readme_plan_table_is_the_planners():
    text = (ROOT / "README.md").read_text()
    table = text.split("| control share | recipients needed |")[1].split("\n\n")[0]
    rows = [line.strip("|").split("|") for line in table.splitlines()[2:]]
    assert len(rows) == 4
    for share, total, control, days, forgone in rows:
        expected = plan(0.03, 0.005, float(share.strip().rstrip("%")) / 100)
        assert int(total.replace(",", "")) == expected.total
        assert int(control.replace(",", "")) == expected.control
        assert int(days) == math.ceil(expected.total / 5000)
        assert int(forgone) == round(expected.control * 0.005)


def test_while_the_job_runs_the_report_goes_through_its_admin_port(filled):
    """The job owns the embedded store: `mailflow lift` asks its admin port (read-only
    SQL, JSON on the wire: datetimes as text, nan as null) and says the same."""
    from flows.stats import JobStats
    from mailflow.admin import AdminServer
    from sinks.clickhouse import ReadOnlyQueries

    queries = ReadOnlyQueries(f"chdb://{filled / 'clickhouse'}")
    server = AdminServer(JobStats(), queries.query, port=0,
                         info={"clickhouse_url": "chdb:///job/store"}).start()
    try:
        proc = mailflow_cmd("lift", "--data-dir", str(filled), "--admin-port",
                            str(server.port), timeout=120)
        doc = orjson.loads(mailflow_cmd("lift", "--data-dir", str(filled), "--admin-port",
                                        str(server.port), "--json", "--flow", "onboarding",
                                        timeout=120).stdout)
    finally:
        server.stop()
        queries.close()
    assert ("Flow onboarding caused +1.1 pp conversions" in proc.stdout
            and "about 990 conversions over 30 days" in proc.stdout)
    assert "SPLIT BROKEN for flow cart_abandon" in proc.stdout
    [row] = doc["lift"]
    assert row["days_covered"] == 30 and row["treated_n"] == 90_000


def test_an_arm_without_closed_windows_reads_as_no_conclusion(tmp_path):
    row = lift_row("welcome", 7, NOV20, Arm(n=800, conv=40), Arm(), 900, 100, 0.1,
                   first_assigned=NOV20, partial=1)
    assert math.isnan(row["control_rate"]) and math.isnan(row["av_lo95"])
    make_store(tmp_path, [row])
    out = lift_cmd(tmp_path).stdout
    assert "(partial: the input ended before any window closed" in out
    assert "lift n/a (relative n/a)" in out
    assert ("Flow welcome: no conclusion yet, one arm has no recipients counted yet "
            "(only recipients whose window closed count).") in out
    assert "split OK: 100 of 1,000 assigned are in control" in out
    [doc] = orjson.loads(lift_cmd(tmp_path, "--json").stdout)["lift"]
    assert doc["control_rate"] is None and doc["rel_lift"] is None and doc["av_lo95"] is None
    assert doc["treated_rate"] == 0.05
