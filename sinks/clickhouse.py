"""ClickHouse: one clickhouse-connect `Client`, whatever is behind the DSN.

`http(s)://…` reaches a ClickHouse server; `chdb:///abs/path` runs the
ClickHouse engine in this process (chDB). The code below does not know which
it has. DDL lives in `sinks/sql/NNN_name.sql`, applied in order, once, by
`migrate()`; the applied versions are recorded in `mailflow.schema_migrations`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from hashlib import blake2b
from pathlib import Path
from typing import Any

import clickhouse_connect
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from mailflow.stats import STATS
from schemas.rows import TABLE_COLUMNS

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).with_name("sql")
DATABASE = "mailflow"


class StoreError(RuntimeError):
    """The ClickHouse store could not be opened or used."""


def chdb_path(dsn: str) -> Path | None:
    """The directory of a `chdb:///abs/path` DSN, or None for servers / memory."""
    if not dsn.startswith("chdb://"):
        return None
    rest = dsn[len("chdb://"):]
    if not rest.startswith("/"):
        return None  # chdb://memory and friends
    return Path(rest.split("?", 1)[0])


def redact_dsn(dsn: str) -> str:
    """The DSN without its password, for logs and messages."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", dsn)


class ClickHouseStore:
    """The process-wide ClickHouse connection (thread-safe: one lock)."""

    def __init__(self, dsn: str):
        self.dsn = dsn
        path = chdb_path(dsn)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client = clickhouse_connect.get_client(dsn=dsn)
        except Exception as exc:  # driver errors have many types; all mean "cannot open"
            hint = ""
            if path is not None and "lock" in str(exc).lower():
                hint = (" (another process owns this chDB store; while the job runs, "
                        "`mailflow sql` goes through its admin port)")
            raise StoreError(f"cannot open ClickHouse at {redact_dsn(dsn)}: {exc}{hint}") from exc
        self._lock = threading.Lock()

    def migrate(self) -> list[str]:
        """Create database `mailflow` and apply every SQL file not applied yet."""
        with self._lock:
            self.client.command(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
            self.client.command(
                f"CREATE TABLE IF NOT EXISTS {DATABASE}.schema_migrations "
                "(version String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
                "ENGINE = MergeTree ORDER BY version")
            done = {r[0] for r in self.client.query(
                f"SELECT version FROM {DATABASE}.schema_migrations").result_rows}
            applied = []
            for path in sorted(SQL_DIR.glob("*.sql")):
                version = path.stem
                if version in done:
                    continue
                for statement in split_statements(path.read_text()):
                    self.client.command(statement)
                self.client.insert(f"{DATABASE}.schema_migrations", [(version,)],
                                   column_names=["version"])
                applied.append(version)
            if applied:
                log.info("applied migrations: %s", ", ".join(applied))
            return applied

    def insert(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str],
               dedup_token: str | None = None) -> None:
        settings = {"insert_deduplication_token": dedup_token} if dedup_token else None
        with self._lock:
            self.client.insert(table, rows, column_names=list(columns), settings=settings)

    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        with self._lock:
            result = self.client.query(sql)
            return list(result.column_names), [tuple(r) for r in result.result_rows]

    def close(self) -> None:
        with self._lock:
            self.client.close()


def split_statements(sql: str) -> list[str]:
    """Statements of a migration file: each ends with `;` at the end of a line;
    whole-line `--` comments are dropped."""
    statements, current = [], []
    for line in sql.splitlines():
        if line.lstrip().startswith("--"):
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).rstrip().rstrip(";").strip())
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)
    return [s for s in statements if s]


_stores: dict[str, ClickHouseStore] = {}
_stores_lock = threading.Lock()


def store_for(dsn: str) -> ClickHouseStore:
    """The shared store for a DSN in this process (chDB allows one owner per path)."""
    with _stores_lock:
        store = _stores.get(dsn)
        if store is None:
            store = _stores[dsn] = ClickHouseStore(dsn)
        return store


def close_stores() -> None:
    with _stores_lock:
        for store in _stores.values():
            store.close()
        _stores.clear()


class _TablesPartition(StatelessSinkPartition):
    def __init__(self, store: ClickHouseStore, retries: int):
        self._store = store
        self._retries = retries

    def write_batch(self, items: list[tuple[str, list[tuple]]]) -> None:
        for table, rows in items:
            if rows:
                self._insert(table, rows)

    def _insert(self, table: str, rows: list[tuple]) -> None:
        # The token makes a retried block a no-op instead of a duplicate.
        token = blake2b(repr((table, rows[0], rows[-1], len(rows))).encode(),
                        digest_size=16).hexdigest()
        for attempt in range(self._retries + 1):
            started = time.perf_counter()
            try:
                self._store.insert(table, rows, TABLE_COLUMNS[table], dedup_token=token)
                STATS.record_insert(table, len(rows), time.perf_counter() - started)
                return
            except Exception as exc:
                if attempt == self._retries:
                    raise StoreError(f"insert into {table} failed "
                                     f"{attempt + 1} times: {exc}") from exc
                delay = min(5.0, 0.2 * 2 ** attempt)
                log.warning("insert into %s failed (%s); retrying in %.1fs", table, exc, delay)
                time.sleep(delay)


class ClickHouseSink(DynamicSink):
    """Bytewax sink: each item is `(table, rows)`, one insert each (columns per table)."""

    def __init__(self, dsn: str, retries: int = 5):
        self.dsn = dsn
        self.retries = retries

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _TablesPartition:
        return _TablesPartition(store_for(self.dsn), self.retries)
