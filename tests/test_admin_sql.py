"""The job's admin port: read-only SQL on its own client, local callers only, no secrets.

Against real chDB: writes, DDL, table functions that reach files or URLs, and
`INTO OUTFILE` are refused (by the statement check, and again by ClickHouse's
`readonly=1`), the tables stay intact, and plain SELECTs answer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from flows.stats import JobStats
from mailflow.admin import AdminServer
from mailflow.broker import free_port
from sinks.clickhouse import ClickHouseStore, ReadOnlyQueries, StoreError
from tests.conftest import ROOT, mailflow_cmd, query_store

SECRET_DSN_PASSWORD = "hunter2-do-not-show"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ClickHouseStore]:
    """A migrated chDB store with ten rows in mailflow.events."""
    store = ClickHouseStore(f"chdb://{tmp_path / 'clickhouse'}")
    store.migrate()
    store.client.command("INSERT INTO mailflow.events (event_id, type, sender) "
                         "SELECT toString(number), 'open', 's.example' FROM numbers(10)")
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def admin(store: ClickHouseStore) -> Iterator[tuple[str, ReadOnlyQueries]]:
    queries = ReadOnlyQueries(store.dsn)
    server = AdminServer(JobStats(), queries.query, port=0, info={
        "clickhouse_url": f"https://analyst:{SECRET_DSN_PASSWORD}@ch.example:8443/"
                          f"?password={SECRET_DSN_PASSWORD}"}).start()
    try:
        yield f"http://127.0.0.1:{server.port}", queries
    finally:
        server.stop()
        queries.close()


def post_sql(base: str, sql: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"{base}/sql", data=sql.encode(), method="POST",
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def events_count(store: ClickHouseStore) -> int:
    return store.query("SELECT count() FROM mailflow.events")[1][0][0]


def test_a_select_answers_with_columns_rows_and_truncation_flag(admin):
    base, _ = admin
    status, answer = post_sql(base, "SELECT type, count() AS n FROM mailflow.events "
                                    "GROUP BY type")
    assert status == 200
    assert answer == {"columns": ["type", "n"], "rows": [["open", 10]], "truncated": False}
    for sql in ("SHOW TABLES FROM mailflow", "DESCRIBE TABLE mailflow.events",
                "EXISTS TABLE mailflow.events", "EXPLAIN SELECT 1",
                "WITH 2 AS x SELECT x", "SELECT name FROM system.settings LIMIT 1;"):
        assert post_sql(base, sql)[0] == 200, sql


@pytest.mark.parametrize("sql", [
    "DROP TABLE mailflow.events",
    "TRUNCATE TABLE mailflow.events",
    "ALTER TABLE mailflow.events DELETE WHERE 1",
    "INSERT INTO mailflow.events (event_id) VALUES ('x')",
    "SELECT 1; DROP TABLE mailflow.events",
    "SELECT * FROM file('{dir}/secret.txt', 'LineAsString')",
    "select * from FiLe ('{dir}/secret.txt', 'LineAsString')",
    "SELECT * FROM /* hidden */ `file`('{dir}/secret.txt', 'LineAsString')",
    "SELECT $$'$$ AS a, * FROM file('{dir}/secret.txt', 'LineAsString') -- '",
    "SELECT * FROM Python(SECRET_DSN_PASSWORD)",  # chDB: this process's Python objects
    "SELECT * FROM url('http://127.0.0.1:9/x', 'LineAsString')",
    "SELECT * FROM s3('http://127.0.0.1:9/b/k', 'CSV')",
    "SELECT * FROM remote('127.0.0.1:9', system.one)",
    "INSERT INTO FUNCTION file('{dir}/out.csv', 'CSV') SELECT * FROM mailflow.events",
    "SELECT * FROM mailflow.events INTO OUTFILE '{dir}/out.csv'",
    "SELECT * FROM mailflow.events SETTINGS readonly = 0",
    "SET readonly = 0",
    "SYSTEM DROP DNS CACHE",
    "",
])
def test_writes_ddl_and_outside_reach_are_refused_and_tables_stay(sql, admin, store, tmp_path):
    (tmp_path / "secret.txt").write_text("the secret\n")
    base, _ = admin
    status, answer = post_sql(base, sql.format(dir=tmp_path))
    assert status in (400, 403), answer
    assert "secret" not in str(answer.get("rows", ""))
    assert events_count(store) == 10
    assert not (tmp_path / "out.csv").exists()


def test_clickhouse_itself_refuses_writes_on_the_admin_client(admin, store, tmp_path):
    # The second fence: a statement that slipped past the check still hits readonly=1.
    (tmp_path / "secret.txt").write_text("the secret\n")
    _, queries = admin
    for sql in ("DROP TABLE mailflow.events",
                "INSERT INTO mailflow.events (event_id) VALUES ('x')",
                f"SELECT * FROM file('{tmp_path}/secret.txt', 'LineAsString')",
                "SELECT * FROM url('http://127.0.0.1:9/x', 'LineAsString')",
                "SELECT * FROM Python(SECRET_DSN_PASSWORD)",
                "SELECT 1 SETTINGS readonly = 0"):
        with pytest.raises(Exception, match="(?i)readonly"):
            queries.client.query(sql)
    assert events_count(store) == 10
    # ... and the sink's own client still writes (its session is not read-only)
    store.insert("mailflow.schema_migrations", [("x",)], ["version"])


def test_a_huge_result_is_cut_at_the_row_limit(store):
    queries = ReadOnlyQueries(store.dsn, limits={
        "max_execution_time": 60, "max_result_rows": 1000, "result_overflow_mode": "break"})
    try:
        columns, rows, truncated = queries.query("SELECT number FROM numbers(10000000)")
        assert columns == ["number"] and len(rows) == 1000 and truncated
        assert queries.query("SELECT number FROM numbers(1000)")[2] is False
        with pytest.raises(StoreError, match="(?i)timeout|time limit|TIMEOUT_EXCEEDED"):
            ReadOnlyQueries(store.dsn, limits={"max_execution_time": 1,
                                               "max_result_rows": 10}
                            ).query("SELECT count() FROM system.numbers")
    finally:
        queries.close()


def test_an_admin_query_does_not_wait_for_the_sinks_lock(admin, store):
    base, _ = admin
    # While an insert holds the sink's client, an analyst's query still answers:
    # it has a client of its own. (Through the sink's lock, this request would hang.)
    with store._lock:
        assert post_sql(base, "SELECT count() FROM mailflow.events") == (
            200, {"columns": ["count()"], "rows": [[10]], "truncated": False})


@pytest.mark.parametrize("headers", [
    {"Host": "attacker.example:{port}"},  # DNS rebinding: a name that resolves to 127.0.0.1
    {"Host": "127.0.0.1:1"},
    {"Origin": "https://attacker.example"},  # a web page posting to the port
    {"Origin": "null"},
    {"Origin": "http://localhost:3000"},
    {"Sec-Fetch-Site": "cross-site"},
])
def test_requests_from_elsewhere_are_refused(headers, admin):
    base, _ = admin
    port = base.rsplit(":", 1)[1]
    headers = {k: v.format(port=port) for k, v in headers.items()}
    assert post_sql(base, "SELECT 1", headers)[0] == 403
    request = urllib.request.Request(f"{base}/stats", headers=headers)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 403


def test_local_callers_and_same_origin_pages_are_served(admin):
    base, _ = admin
    port = base.rsplit(":", 1)[1]
    for headers in ({}, {"Host": f"localhost:{port}"}, {"Host": f"[::1]:{port}"},
                    {"Origin": f"http://127.0.0.1:{port}"}):
        assert post_sql(base, "SELECT 1", headers)[0] == 200, headers


def test_healthz_never_shows_a_password(admin):
    base, _ = admin
    body = urllib.request.urlopen(f"{base}/healthz", timeout=30).read().decode()
    assert SECRET_DSN_PASSWORD not in body
    assert "analyst:***@ch.example" in body


@pytest.mark.integration
def test_mailflow_sql_goes_through_the_running_job_read_only(broker, tmp_path):
    port = free_port()
    env = {**os.environ, "MAILFLOW_KAFKA_BROKERS": broker.bootstrap,
           "MAILFLOW_DATA_DIR": str(tmp_path), "MAILFLOW_ADMIN_PORT": str(port)}
    job = subprocess.Popen([sys.executable, "-m", "mailflow", "run", "--dev"], cwd=ROOT,
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        out = mailflow_cmd("sql", "SELECT count() AS n FROM mailflow.events", "--format",
                           "json", env=env).stdout
        assert orjson.loads(out) == [{"n": 0}]
        refused = mailflow_cmd("sql", "DROP TABLE mailflow.events", env=env, check=False)
        assert refused.returncode == 1 and "read-only" in refused.stderr
        job.send_signal(signal.SIGTERM)
        assert job.wait(timeout=60) == 0
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    assert query_store(tmp_path, "EXISTS TABLE mailflow.events") == [(1,)]


def test_store_errors_never_show_the_password():
    port = free_port()  # nothing listens there
    dsn = f"http://analyst:{SECRET_DSN_PASSWORD}@127.0.0.1:{port}/?password={SECRET_DSN_PASSWORD}"
    with pytest.raises(StoreError) as refused:
        ClickHouseStore(dsn)
    assert SECRET_DSN_PASSWORD not in str(refused.value)
    assert "analyst:***@127.0.0.1" in str(refused.value)
    proc = mailflow_cmd("sql", "SELECT 1", env={"MAILFLOW_CLICKHOUSE_URL": dsn}, check=False,
                        timeout=120)
    assert proc.returncode == 1 and proc.stderr
    assert SECRET_DSN_PASSWORD not in proc.stderr + proc.stdout


def test_without_a_read_only_client_the_job_runs_on_and_sql_says_why():
    port = free_port()  # nothing listens there
    queries = ReadOnlyQueries(f"http://analyst:{SECRET_DSN_PASSWORD}@127.0.0.1:{port}/")
    with pytest.raises(StoreError, match="read-only") as unavailable:
        queries.query("SELECT 1")
    assert SECRET_DSN_PASSWORD not in str(unavailable.value)
    queries.close()


def test_a_malformed_content_length_is_a_400_and_the_port_serves_on(admin):
    import http.client

    base, _ = admin
    port = int(base.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.putrequest("POST", "/sql", skip_accept_encoding=True)
    conn.putheader("Content-Length", "twelve")
    conn.endheaders(b"SELECT 1")
    assert conn.getresponse().status == 400
    conn.close()
    assert post_sql(base, "SELECT 1")[0] == 200
