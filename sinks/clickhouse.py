"""ClickHouse: one clickhouse-connect `Client`, whatever is behind the DSN.

`http(s)://…` reaches a ClickHouse server; `chdb:///abs/path` runs the
ClickHouse engine in this process (chDB). The code below does not know which
it has. DDL lives in `sinks/sql/NNN_name.sql`, applied in order, once, by
`migrate()`; the applied versions are recorded in `mailflow.schema_migrations`.

Rows travel as JSONCompactEachRow, encoded by orjson in one call per block:
about 0.2 µs of Python per `mailflow.events` row, where clickhouse-connect's
Native encoding took several µs. ClickHouse then parses the JSON in C++, which
chDB runs without the GIL; the dataflow's sink does that on a writer thread per
table, so it overlaps with the dataflow's Python.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from hashlib import blake2b
from pathlib import Path
from typing import Any

import clickhouse_connect
import orjson
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from schemas.control import Erasure
from schemas.rows import TABLE_COLUMNS
from sinks.counters import NO_COUNTS, InsertCounter
from sinks.read_only_sql import refusal

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).with_name("sql")
DATABASE = "mailflow"
INSERT_FORMAT = "JSONCompactEachRow"

#: Makes a bare JSON integer land in DateTime64(3) as milliseconds (the rows carry
#: epoch ms), as in the Native format. Up to ClickHouse 26.7 that is what an integer
#: means; from 26.8 it means seconds unless this setting is on. Older servers do not
#: know the setting (and would refuse it), so it is sent only where it exists.
RAW_DATETIME_NUMBERS = "input_format_read_datetime_number_as_raw_value"


#: Erasure: a mutation that rewrites the parts holding the recipient (the rows are gone
#: from disk when it returns, not only hidden), waiting for it on every replica.
ERASE_SQL = "ALTER TABLE {table} DELETE WHERE recipient_hash = {{h:String}}"
MUTATION_SETTINGS = {"mutations_sync": 2}
#: `flow_recipients_1h` holds distinct-count states of recipient hashes, which no DELETE
#: can reach: the hours an erased recipient appears in are recomputed from `events` (the
#: same query as its materialized view in 004_analytics.sql, for those hours only).
ERASED_HOURS_SQL = ("SELECT DISTINCT toUInt32(toStartOfHour(ts)) FROM mailflow.events "
                    "WHERE recipient_hash = {h:String}")
ROLLUP_DELETE_SQL = ("ALTER TABLE mailflow.flow_recipients_1h DELETE "
                     "WHERE has({hours:Array(UInt32)}, toUInt32(hour))")
#: The rollup's own definition, read from ClickHouse, so a rebuild can never drift from
#: the materialized view that 004_analytics.sql (or a later migration) created.
ROLLUP_VIEW_SQL = ("SELECT as_select FROM system.tables "
                   "WHERE database = 'mailflow' AND name = 'flow_recipients_1h_mv'")
ROLLUP_REBUILD_SQL = ("INSERT INTO mailflow.flow_recipients_1h SELECT * FROM ({view}) "
                      "WHERE has({{hours:Array(UInt32)}}, toUInt32(hour))")


#: Retention: which setting bounds each table, by which time column (event time). The
#: suppressions are never expired: an opt-out must outlive everything else.
RETENTION: dict[str, tuple[str, str]] = {
    "events": ("events_ttl_days", "ts"),
    "attribution": ("events_ttl_days", "ts"),
    "scores": ("events_ttl_days", "ts"),
    "metrics_1m": ("metrics_ttl_days", "minute"),
    "convergence": ("metrics_ttl_days", "as_of"),
    "flow_recipients_1h": ("metrics_ttl_days", "hour"),
    "model_metrics": ("metrics_ttl_days", "minute"),
    "model_events": ("metrics_ttl_days", "ts"),
    "variant_allocations": ("metrics_ttl_days", "as_of"),
    "throttle_decisions": ("decisions_ttl_days", "event_ts"),
    "send_times": ("profiles_ttl_days", "as_of"),
    "recipient_profiles": ("profiles_ttl_days", "as_of"),
    "flow_propensities": ("profiles_ttl_days", "as_of"),
    "convergence_forecast": ("metrics_ttl_days", "as_of"),
    "cohort_outcomes": ("metrics_ttl_days", "closed_at"),
    "flow_alerts": ("metrics_ttl_days", "as_of"),
    "replies": ("events_ttl_days", "ts"),  # per person, like events
    "reply_feedback": ("events_ttl_days", "ts"),
}


def ttl_clause(column: str, days: int) -> str:
    """The TTL expression as ClickHouse prints it back in SHOW CREATE TABLE.

    >>> ttl_clause("ts", 400)
    'toDateTime(ts) + toIntervalDay(400)'
    """
    return f"toDateTime({column}) + toIntervalDay({days})"


class StoreError(RuntimeError):
    """The ClickHouse store could not be opened or used."""


class StoreElsewhere(StoreError):
    """This process of a cluster does not open the embedded store: another one owns it."""


#: Who owns the embedded (chDB) store when it is not this process, e.g. "process 0 of the
#: cluster". chDB lets one process open a store directory; in a cluster with an embedded
#: store only process 0 does (its sink partitions and ad-hoc SQL), and the others route
#: their rows to it. None (the default): this process may open it. A ClickHouse server
#: is opened by every process whatever this says.
_embedded_owner: str | None = None


def embedded_store_owner(owner: str | None) -> None:
    """Declare who owns the embedded store (None: this process). Set by the job before
    its dataflow is built; it decides `opens_here` for the whole process."""
    global _embedded_owner
    _embedded_owner = owner


def opens_here(dsn: str) -> bool:
    """Whether this process opens the store behind `dsn`: any server, and an embedded
    store unless another process of the cluster owns it.

    >>> opens_here("http://clickhouse:8123")
    True
    """
    return chdb_path(dsn) is None or _embedded_owner is None


def _refuse_elsewhere(dsn: str) -> None:
    if not opens_here(dsn):
        raise StoreElsewhere(f"the embedded store {chdb_path(dsn)} belongs to "
                             f"{_embedded_owner}; this process does not open it")


def chdb_path(dsn: str) -> Path | None:
    """The directory of a `chdb:///abs/path` DSN, or None for servers / memory."""
    if not dsn.startswith("chdb://"):
        return None
    rest = dsn[len("chdb://"):]
    if not rest.startswith("/"):
        return None  # chdb://memory and friends
    return Path(rest.split("?", 1)[0])


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/?#@:]*):[^\s/?#]*@")
_SECRET_PARAM = re.compile(r"(?i)([?&](?:password|access_token|token|secret)[^=&\s]*=)[^&#\s]*")


def redact_dsn(text: str) -> str:
    """A DSN, or any text quoting one (an error message), without passwords or tokens:
    for logs, messages and `/healthz`.

    >>> redact_dsn("https://analyst:s3cr:et@ch.example:8443/mailflow?access_token=abc&x=1")
    'https://analyst:***@ch.example:8443/mailflow?access_token=***&x=1'
    >>> redact_dsn("cannot reach http://default:pw@ch:8123?user=a@b.example&password=pw")
    'cannot reach http://default:***@ch:8123?user=a@b.example&password=***'
    >>> redact_dsn("chdb:///var/lib/mailflow/clickhouse")
    'chdb:///var/lib/mailflow/clickhouse'
    """
    return _SECRET_PARAM.sub(r"\1***", _USERINFO.sub(r"\1:***@", text))


class ClickHouseStore:
    """The process-wide ClickHouse connection (thread-safe: one lock)."""

    def __init__(self, dsn: str):
        _refuse_elsewhere(dsn)
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
            raise StoreError(f"cannot open ClickHouse at {redact_dsn(dsn)}: "
                             f"{redact_dsn(str(exc))}{hint}") from None
        self._lock = threading.Lock()
        self._insert_settings = ({RAW_DATETIME_NUMBERS: 1}
                                 if RAW_DATETIME_NUMBERS in self.client.server_settings else {})

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

    def apply_retention(self, days: dict[str, int]) -> list[str]:
        """Set each table's TTL from the retention settings (`days`: setting -> days, 0 =
        keep forever); returns the tables changed. Run at every start, after `migrate`:
        a TTL follows its setting, and an unchanged one is left alone (changing one
        rewrites the table's parts in the background)."""
        changed = []
        with self._lock:
            current = dict(self.client.query(
                "SELECT name, create_table_query FROM system.tables "
                "WHERE database = {db:String}", parameters={"db": DATABASE}).result_rows)
            for table, (setting, column) in RETENTION.items():
                if table not in current:
                    continue
                n = int(days.get(setting, 0))
                has_ttl = " TTL " in current[table]
                if n > 0 and f" TTL {ttl_clause(column, n)}" not in current[table]:
                    self.client.command(f"ALTER TABLE {DATABASE}.{table} "
                                        f"MODIFY TTL {ttl_clause(column, n)}")
                elif n == 0 and has_ttl:
                    self.client.command(f"ALTER TABLE {DATABASE}.{table} REMOVE TTL")
                else:
                    continue
                changed.append(table)
        if changed:
            log.info("retention changed on %s", ", ".join(changed))
        return changed

    def insert(self, table: str, rows: list[tuple], columns: Sequence[str],
               dedup_token: str | None = None) -> None:
        """Insert rows: tuples of `columns`, timestamps as epoch ms (DateTime64(3))
        or epoch seconds (DateTime)."""
        self.insert_encoded(table, encode_rows(rows), columns, dedup_token)

    def insert_encoded(self, table: str, block: bytes, columns: Sequence[str],
                       dedup_token: str | None = None) -> None:
        """Insert a block made by `encode_rows`."""
        settings = dict(self._insert_settings)
        if dedup_token:
            settings["insert_deduplication_token"] = dedup_token
        with self._lock:
            self.client.raw_insert(table, list(columns), block, settings=settings,
                                   fmt=INSERT_FORMAT)

    def erase_recipient(self, table: str, recipient_hash: str) -> None:
        """Delete every row of `table` that carries the recipient hash (erasure).

        Erasing from `events` also recomputes the `flow_recipients_1h` hours the
        recipient was counted in, so no distinct-count state holds them either."""
        params = {"h": recipient_hash}
        with self._lock:
            hours: list[int] = []
            if table == f"{DATABASE}.events":
                hours = [r[0] for r in self.client.query(ERASED_HOURS_SQL,
                                                         parameters=params).result_rows]
            self.client.command(ERASE_SQL.format(table=table), parameters=params,
                                settings=MUTATION_SETTINGS)
            if hours:
                self.client.command(ROLLUP_DELETE_SQL, parameters={"hours": hours},
                                    settings=MUTATION_SETTINGS)
                view = self.client.query(ROLLUP_VIEW_SQL).result_rows[0][0]
                self.client.command(ROLLUP_REBUILD_SQL.format(view=view),
                                    parameters={"hours": hours})

    def query(self, sql: str) -> tuple[list[str], list[tuple]]:
        with self._lock:
            result = self.client.query(sql)
            return list(result.column_names), [tuple(r) for r in result.result_rows]

    def close(self) -> None:
        with self._lock:
            self.client.close()


class QueryRefused(ValueError):
    """An ad-hoc query that the admin port does not run (not read-only, or reaches out)."""


#: Limits of every ad-hoc query (`mailflow sql` through the job's admin port): a query
#: cannot run for ever, hold the job's memory, or return more than a screenful of
#: screenfuls. Past `max_result_rows` ClickHouse stops reading ('break', within a block
#: of rows) and the answer is cut there and says so. (No `max_result_bytes`: its 'break'
#: would cut an answer without a sign of it.)
QUERY_LIMITS: dict[str, int | str] = {
    "max_execution_time": 60,
    "max_result_rows": 50_000,
    "result_overflow_mode": "break",
    "max_memory_usage": 2 * 1024 * 1024 * 1024,
}


class ReadOnlyQueries:
    """Ad-hoc SQL for analysts, on a client of its own (never the sink's).

    Its session runs with `readonly=1` (set last, after the limits, since read-only
    mode forbids changing settings) and the `QUERY_LIMITS`; `refusal()` in
    `sinks/read_only_sql.py` turns away writes and table functions that reach files,
    URLs or other servers before they get there. A slow query holds up only other
    ad-hoc queries: inserts go through the sink's own client. chDB allows several
    clients on one path in a process (they share the engine, each with its own
    session settings).
    """

    def __init__(self, dsn: str, limits: dict[str, int | str] | None = None):
        self.dsn = dsn
        self.max_rows = int((limits or QUERY_LIMITS)["max_result_rows"])
        settings = {**(limits or QUERY_LIMITS), "readonly": 1}
        self.client: Any = None
        self.unavailable = ""
        self.elsewhere = "" if opens_here(dsn) else f"SQL is served by {_embedded_owner}"
        if self.elsewhere:
            return  # another process of the cluster owns the embedded store
        try:
            self.client = clickhouse_connect.get_client(dsn=dsn, settings=settings)
        except Exception as exc:  # e.g. a server whose profile forbids these settings
            # The job runs on without ad-hoc SQL rather than not at all; queries say why.
            self.unavailable = (f"cannot open ClickHouse at {redact_dsn(dsn)} read-only: "
                                f"{_first_line(exc)}")
            log.warning("ad-hoc SQL on the admin port is off: %s", self.unavailable)

    def query(self, sql: str, parameters: dict[str, Any] | None = None
              ) -> tuple[list[str], list[tuple], bool]:
        """Columns, rows and whether the rows were cut at `max_result_rows`. `parameters`
        fill the query's `{name:Type}` placeholders on the server side (never spliced into
        the text)."""
        reason = refusal(sql)
        if reason is not None:
            raise QueryRefused(reason)
        if self.elsewhere:
            raise StoreElsewhere(self.elsewhere)
        if self.client is None:
            raise StoreError(self.unavailable)
        try:
            result = self.client.query(sql, parameters=parameters)
        except Exception as exc:  # the server's message is the useful part
            raise StoreError(_first_line(exc)) from None
        rows = result.result_rows
        truncated = len(rows) > self.max_rows
        return (list(result.column_names), [tuple(r) for r in rows[:self.max_rows]],
                truncated)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return redact_dsn(text.splitlines()[0]) if text else repr(exc)


def encode_rows(rows: list[tuple]) -> bytes:
    """Rows as JSONCompactEachRow: JSON arrays separated by commas (the format allows
    a comma between rows), so one orjson call encodes the whole block. orjson writes
    NaN and infinities as null, which ClickHouse stores as 0: rows carry none.

    >>> encode_rows([("a", 1_795_000_000_123, True), ("b", None, False)])
    b'["a",1795000000123,true],["b",null,false]'
    """
    # Operators compute with numpy: a stray numpy scalar goes in as its number, as it
    # did with the Native format, instead of failing the job.
    return orjson.dumps(rows, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1]


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


class _TablePartition(StatefulSinkPartition[list[tuple], None]):
    """One table's inserts: encoded on the dataflow's thread, written on a writer thread.

    `write_batch` encodes each block and queues it; a full queue makes the dataflow
    wait (back-pressure, not memory). `snapshot` waits until every queued block is
    stored, so an epoch's snapshot counts only once its rows are in ClickHouse (a
    crash resumes before them: at least once). A block that fails every retry fails
    the next `write_batch`, `snapshot` or `close`; the blocks after it are dropped,
    as the job is failing and will resume from the last snapshot.
    """

    def __init__(self, store: ClickHouseStore, table: str, retries: int, queued_blocks: int,
                 stats: InsertCounter = NO_COUNTS):
        self._store = store
        self._table = table
        self._stats = stats
        self._columns = TABLE_COLUMNS[table]
        self._retries = retries
        self._blocks: queue.Queue[tuple[bytes, int] | Erasure | None] = queue.Queue(
            queued_blocks)
        self._failure: Exception | None = None
        self._raised = False  # the failure was raised: the dataflow is already failing
        self._writer = threading.Thread(target=self._write_blocks, daemon=True,
                                        name=f"clickhouse-writer {table}")
        self._writer.start()

    def write_batch(self, values: list[list[tuple] | Erasure]) -> None:
        for rows in values:
            self._raise_failure()
            if type(rows) is Erasure:  # in line with the inserts: after every earlier block
                self._blocks.put(rows)
            elif rows:
                self._blocks.put((encode_rows(rows), len(rows)))

    def snapshot(self) -> None:
        self._blocks.join()
        self._raise_failure()
        return None

    def close(self) -> None:
        self._blocks.put(None)
        self._writer.join()
        # Raising again while Bytewax unwinds from the first failure would abort the
        # process (a panic in a destructor) and hide the first error's message.
        if not self._raised:
            self._raise_failure()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            self._raised = True
            raise self._failure

    def _write_blocks(self) -> None:
        while (block := self._blocks.get()) is not None:
            try:
                if self._failure is None:
                    if type(block) is Erasure:
                        self._erase(block.recipient_hash)
                    else:
                        self._insert(*block)
            except Exception as exc:  # kept for the dataflow's thread to raise
                self._failure = exc
            finally:
                self._blocks.task_done()
        self._blocks.task_done()

    def _erase(self, recipient_hash: str) -> None:
        self._retrying(f"erasure in {self._table}",
                       lambda: self._store.erase_recipient(self._table, recipient_hash))
        log.info("erased recipient %s… from %s", recipient_hash[:8], self._table)

    def _insert(self, block: bytes, rows: int) -> None:
        # The token makes a retried block a no-op instead of a duplicate (hashing
        # releases the GIL on a block this size).
        token = blake2b(block, digest_size=16).hexdigest()

        def insert() -> None:
            started = time.perf_counter()
            self._store.insert_encoded(self._table, block, self._columns, dedup_token=token)
            self._stats.record_insert(self._table, rows, time.perf_counter() - started)

        self._retrying(f"insert into {self._table}", insert)

    def _retrying(self, what: str, attempt: Callable[[], None]) -> None:
        """`attempt` until it succeeds, backing off; StoreError after the last retry."""
        for tries in range(1, self._retries + 2):
            try:
                attempt()
                return
            except Exception as exc:
                if tries > self._retries:
                    raise StoreError(f"{what} failed {tries} times: {exc}") from exc
                delay = min(5.0, 0.2 * 2 ** (tries - 1))
                log.warning("%s failed (%s); retrying in %.1fs", what, exc, delay)
                time.sleep(delay)


class ClickHouseSink(FixedPartitionedSink[list[tuple], None]):
    """Bytewax sink: each item is `(table, rows)`, one insert per item.

    One partition per table, as Bytewax hands a partition the values without their
    keys. Each has its own writer thread: inserts into a table keep their order, and
    one table's retries do not hold up the others. Each stored block is counted by
    `stats` (the job passes its `STATS`; by default nothing is counted).

    Bytewax builds a partition on one of the workers that list it (spreading them over
    those workers) and routes every item to it. A process that does not open the store
    (`opens_here`: an embedded store owned by process 0) lists none, so its rows go to
    the owner's workers; with a ClickHouse server every worker lists every table.
    """

    def __init__(self, dsn: str, retries: int = 5, queued_blocks: int = 4,
                 stats: InsertCounter = NO_COUNTS, writes_here: bool | None = None):
        self.dsn = dsn
        self.stats = stats
        self.retries = retries
        self.queued_blocks = queued_blocks
        self.tables = sorted(TABLE_COLUMNS)  # Bytewax orders partitions this way
        # None: as `opens_here` says in the process that runs the dataflow
        self.writes_here = writes_here

    def list_parts(self) -> list[str]:
        here = opens_here(self.dsn) if self.writes_here is None else self.writes_here
        return self.tables if here else []

    def part_fn(self, item_key: str) -> int:
        return self.tables.index(item_key)

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _TablePartition:
        return _TablePartition(store_for(self.dsn), for_part, self.retries, self.queued_blocks,
                               self.stats)
