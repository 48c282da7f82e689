"""The command line: help texts, refusals with clear messages, output formats."""

from __future__ import annotations

import urllib.error
import urllib.request

import orjson
import pytest

from flows.stats import JobStats
from mailflow.admin import AdminServer
from mailflow.cli import build_parser, main
from mailflow.sqlcli import format_csv, format_json, format_table
from tests.conftest import mailflow_cmd

VERBS = ["demo", "run", "broker", "generate", "sql", "ingest", "replay", "serve"]


def test_top_level_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for verb in VERBS:
        assert verb in out
    assert "MAILFLOW_KAFKA_BROKERS" in out


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_explains_itself(verb, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([verb, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: mailflow {verb}" in out
    assert "--brokers" in out and "--data-dir" in out
    description = build_parser()._subparsers._group_actions[0].choices[verb].description
    assert len(description) > 60


def test_run_refuses_to_start_without_a_hash_key(tmp_path):
    proc = mailflow_cmd("run", env={"MAILFLOW_DATA_DIR": str(tmp_path),
                                    "MAILFLOW_KAFKA_BROKERS": "127.0.0.1:1",
                                    "MAILFLOW_HASH_KEY": ""}, check=False, timeout=60)
    assert proc.returncode == 2
    assert "MAILFLOW_HASH_KEY" in proc.stderr and "--dev" in proc.stderr


def test_run_without_brokers_says_how_to_get_one(tmp_path):
    proc = mailflow_cmd("run", "--dev", env={"MAILFLOW_DATA_DIR": str(tmp_path),
                                             "MAILFLOW_KAFKA_BROKERS": ""},
                        check=False, timeout=60)
    assert proc.returncode == 2 and "mailflow broker" in proc.stderr


def test_sql_on_a_missing_store_is_a_clear_error(tmp_path):
    proc = mailflow_cmd("sql", "SELECT 1", env={"MAILFLOW_DATA_DIR": str(tmp_path / "none"),
                                                "MAILFLOW_ADMIN_PORT": "1"},
                        check=False, timeout=60)
    assert proc.returncode == 1 and "no store" in proc.stderr


def test_output_formats():
    columns, rows = ["type", "n"], [("open", 12), ("complaint", 3)]
    table = format_table(columns, rows).splitlines()
    assert table[0].split() == ["type", "|", "n"]
    assert table[2].startswith("open") and table[-1] == "(2 rows)"
    assert format_csv(columns, rows) == "type,n\nopen,12\ncomplaint,3"
    assert orjson.loads(format_json(columns, rows)) == [{"type": "open", "n": 12},
                                                         {"type": "complaint", "n": 3}]


def test_admin_endpoint_serves_health_metrics_stats_and_sql():
    stats = JobStats()
    stats.record_events(__import__("collections").Counter({"open": 2}), 1000)
    stats.record_dead(["not JSON: bad", "unknown type: 'x'"])
    queries = []

    def query(sql, parameters=None):
        queries.append(sql)
        if "boom" in sql:
            raise ValueError("Syntax error near boom")
        return ["x"], [(1,)], False

    admin = AdminServer(stats, query, info={"clickhouse_url": "chdb:///x"}, port=0).start()
    base = f"http://127.0.0.1:{admin.port}"
    try:
        assert orjson.loads(urllib.request.urlopen(f"{base}/healthz").read())["status"] == "ok"
        with pytest.raises(urllib.error.HTTPError) as not_ready:
            urllib.request.urlopen(f"{base}/readyz")
        assert not_ready.value.code == 503
        metrics = urllib.request.urlopen(f"{base}/metrics").read().decode()
        assert 'mailflow_events_total{type="open"} 2' in metrics
        assert 'mailflow_dead_letters_total{reason="not JSON"} 1' in metrics
        snapshot = orjson.loads(urllib.request.urlopen(f"{base}/stats").read())
        assert snapshot["dead_letters"] == 2 and snapshot["events_total"] == 2
        answer = urllib.request.urlopen(urllib.request.Request(
            f"{base}/sql", data=b"SELECT 1", method="POST")).read()
        assert orjson.loads(answer) == {"columns": ["x"], "rows": [[1]], "truncated": False}
        with pytest.raises(urllib.error.HTTPError) as bad:
            urllib.request.urlopen(urllib.request.Request(f"{base}/sql", data=b"boom",
                                                          method="POST"))
        assert bad.value.code == 400 and b"Syntax error" in bad.value.read()
    finally:
        admin.stop()
