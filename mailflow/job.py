"""`mailflow run`: the long-lived stream job (imperative shell around `flows/`)."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from flows.settings import ConfigError, Settings
from flows.stats import STATS
from mailflow.admin import AdminServer
from mailflow.broker import ensure_topics, free_port
from mailflow.recovery import RecoveryLayout, RecoveryStore
from schemas.hashing import DEV_HASH_KEY, RecipientHasher
from sinks.clickhouse import (
    ReadOnlyQueries,
    chdb_path,
    close_stores,
    embedded_store_owner,
    redact_dsn,
    store_for,
)

log = logging.getLogger(__name__)


def hasher_for(settings: Settings, dev: bool) -> RecipientHasher:
    if settings.hash_key:
        return RecipientHasher(settings.hash_key.encode())
    if not dev:
        raise ConfigError(
            "no recipient hash key: set MAILFLOW_HASH_KEY (a long random secret; keep it "
            "stable, changing it changes every recipient hash), or pass --dev for a "
            "development run with a fixed, public key")
    log.warning("--dev: hashing recipients with the public development key")
    return RecipientHasher(DEV_HASH_KEY)


def cluster(settings: Settings) -> list[str]:
    """The `--addresses` of a cluster (empty: this process runs alone).

    >>> cluster(Settings(addresses="10.0.0.1:2101, 10.0.0.2:2101", process_id=1))
    ['10.0.0.1:2101', '10.0.0.2:2101']
    """
    addresses = [a.strip() for a in settings.addresses.split(",") if a.strip()]
    if addresses and not 0 <= settings.process_id < len(addresses):
        raise ConfigError(f"--process-id {settings.process_id} is not an index into the "
                          f"{len(addresses)} --addresses (0..{len(addresses) - 1})")
    return addresses


def prepare_recovery(settings: Settings) -> Path:
    """Create `<data dir>/recovery` on first use (this process's share of the partitions,
    and the recorded layout), or check that `shards` and `recovery_partitions` are still
    those it was created with (ConfigError otherwise). See `mailflow/recovery.py`."""
    path = settings.data_path / "recovery"
    processes = len(cluster(settings)) or 1
    RecoveryStore(path).prepare(
        RecoveryLayout(shards=settings.shards, recovery_partitions=settings.recovery_partitions),
        process=settings.process_id if processes > 1 else 0, processes=processes)
    return path


def recovery_config(settings: Settings) -> Any:
    """Bytewax recovery in `<data dir>/recovery` (made by `prepare_recovery`).

    Snapshots (input offsets and every operator's state) are taken at the end
    of each epoch (`epoch_interval_s`); after a crash the job resumes from the
    last complete one and replays the input after it.
    """
    from bytewax.recovery import RecoveryConfig

    return RecoveryConfig(settings.data_path / "recovery")


def vacuum_recovery(path: Path) -> None:
    """Rewrite the recovery partitions after an erasure: SQLite leaves the bytes of deleted
    snapshots (which held the erased recipient) in free pages until they are reused."""
    import sqlite3

    for db in sorted(path.glob("*.sqlite3")):
        try:
            with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
                conn.execute("VACUUM")
        except sqlite3.Error as exc:  # e.g. another process of the cluster holds it
            log.warning("erasure: could not vacuum %s (%s); its free pages may still hold "
                        "deleted snapshots until they are reused", db, exc)
            continue
        log.info("erasure: vacuumed recovery partition %s", db)


def run_processes(settings: Settings, argv: list[str], recovery: bool = True) -> int:
    """`--processes P` on this machine: P cooperating Bytewax processes (real parallelism;
    worker threads share the GIL). Each gets its own admin port (admin_port + i).

    They share the data directory: the recovery partitions are made here, all of them,
    before any process starts. With the embedded store, process 0 owns it (migrations,
    sink partitions, ad-hoc SQL on its admin port); the others route their rows to it.
    """
    if recovery:
        prepare_recovery(settings)  # also refuses a changed shard count, once, up front
    ports = [free_port() for _ in range(settings.processes)]
    addresses = ",".join(f"127.0.0.1:{p}" for p in ports)
    env = dict(os.environ)
    if settings.admin_port:
        env[OWNER_SQL_ENV] = f"http://127.0.0.1:{settings.admin_port}/sql"
    children = []
    for i in range(settings.processes):
        admin = settings.admin_port + i if settings.admin_port else 0
        children.append(subprocess.Popen(
            [sys.executable, "-m", "mailflow", *argv, "--processes", "1",
             "--process-id", str(i), "--addresses", addresses, "--admin-port", str(admin)],
            env=env))
    log.info("started %d processes (%s)", len(children), addresses)

    stops = 0

    def forward(signum: int, _frame: object) -> None:
        # Ctrl-C in a terminal (and systemd's default stop) signal every process of the
        # group: the children already have it. A drain request of our own (DRAIN_SIGNAL)
        # never counts as their second signal; our second signal kills them.
        nonlocal stops
        stops += 1
        for child in children:
            if child.poll() is None:
                if stops == 1:
                    child.send_signal(DRAIN_SIGNAL)
                else:
                    child.kill()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return supervise(children)


#: What `run_processes` sends its children to make them drain and stop (see `run_job`).
DRAIN_SIGNAL = signal.SIGUSR1


def stop_handler(stop: threading.Event) -> Any:
    """The job's handler of SIGTERM, SIGINT and DRAIN_SIGNAL: the first sets `stop` and
    logs one line; a second SIGTERM or SIGINT gives up on draining (the supervisor's
    DRAIN_SIGNAL never escalates). Signals may arrive together (Ctrl-C reaches every
    process while `run_processes` forwards DRAIN_SIGNAL) and a handler can be interrupted
    between any two bytecodes by the next one: the first is decided by a lock's
    non-blocking acquire (one C call), not by a check and a set that a signal can split."""
    own_signals = 0
    first = threading.Lock()

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal own_signals
        if signum != DRAIN_SIGNAL:
            own_signals += 1
            if own_signals > 1:  # a second signal: give up on draining
                raise KeyboardInterrupt
        if first.acquire(blocking=False):
            stop.set()  # set first: another signal may interrupt the logging
            log.info("%s: draining input, flushing sinks ...", signal.Signals(signum).name)

    return request_stop


def supervise(children: list[subprocess.Popen], grace_s: float = 5.0) -> int:
    """Wait for every process; 0 if all exited 0, else the first failure's code. A process
    that fails takes the others down: SIGTERM, then SIGKILL after `grace_s` (the rest
    of a cluster cannot go on without it, and would wait for it for ever while
    connecting at start-up)."""
    deadline = None
    while True:
        codes = [child.poll() for child in children]
        if all(code is not None for code in codes):
            return next((code for code in codes if code and code > 0), 1 if any(codes) else 0)
        failed = [(i, code) for i, code in enumerate(codes) if code not in (None, 0)]
        if failed and deadline is None:
            log.error("process %d exited with %d: stopping the others", *failed[0])
            for child in children:
                if child.poll() is None:
                    child.terminate()
            deadline = time.monotonic() + grace_s
        elif deadline is not None and time.monotonic() > deadline:
            for child in children:
                if child.poll() is None:
                    child.kill()
        time.sleep(0.1)


#: Set by `run_processes` for its children: where process 0 answers ad-hoc SQL.
OWNER_SQL_ENV = "MAILFLOW_CLUSTER_SQL_URL"


def store_owner(settings: Settings) -> str | None:
    """Who owns the embedded store if not this process (None: this one, or a server).

    >>> store_owner(Settings(addresses="10.0.0.1:2101,10.0.0.2:2101", process_id=1))
    'process 0 of the cluster (10.0.0.1)'
    >>> store_owner(Settings(addresses="10.0.0.1:2101,10.0.0.2:2101", process_id=0)) is None
    True
    >>> store_owner(Settings(clickhouse_url="http://ch:8123", process_id=1,
    ...                      addresses="10.0.0.1:2101,10.0.0.2:2101")) is None
    True
    """
    addresses = cluster(settings)
    if chdb_path(settings.clickhouse_dsn) is None or not addresses or settings.process_id == 0:
        return None
    url = os.environ.get(OWNER_SQL_ENV)
    host = addresses[0].rsplit(":", 1)[0]
    return f"process 0 at {url}" if url else f"process 0 of the cluster ({host})"


def run_job(settings: Settings, dev: bool = False, tail: bool = True,
            recovery: bool = True) -> int:
    """Set up store, topics and admin endpoint, then run the dataflow until done or stopped."""
    from bytewax.run import cli_main

    from flows.pipeline import build_flow, kafka_io
    from flows.sources import STOP

    hasher = hasher_for(settings, dev)
    brokers = settings.brokers()
    if recovery:
        prepare_recovery(settings)  # a changed shard count is refused before anything runs
    addresses = cluster(settings)
    first = not addresses or settings.process_id == 0
    # chDB: one process opens a store directory. In a cluster that is process 0; the
    # others never open it (the sink lists no partition there, so Bytewax routes their
    # rows to process 0's workers, and their admin port answers SQL with a 503).
    owner = store_owner(settings)
    embedded_store_owner(owner)
    applied: list[str] = []
    if first:
        # Process 0 migrates before it joins the cluster, and no process runs the
        # dataflow (nor writes) before every process has joined: the schema is current
        # for every writer, with a ClickHouse server too.
        store = store_for(settings.clickhouse_dsn)
        applied = store.migrate()
        store.apply_retention(settings.retention_days())
    created = ensure_topics(brokers, partitions=settings.partitions)
    if created:
        log.info("created topics: %s", ", ".join(created))
    # Ad-hoc SQL gets a read-only client of its own: never the sink's, nor its lock.
    queries = ReadOnlyQueries(settings.clickhouse_dsn)
    admin = AdminServer(STATS, queries.query, info={
        "pid": os.getpid(), "clickhouse_url": redact_dsn(settings.clickhouse_dsn),
        "kafka_brokers": brokers, "process_id": settings.process_id if addresses else 0,
        "store_owner": owner or "this process"},
        host=settings.admin_host, port=settings.admin_port).start()
    log.info("job starting: brokers=%s store=%s%s admin=http://%s:%d migrations=%s tail=%s",
             brokers, redact_dsn(settings.clickhouse_dsn),
             f" (owned by {owner})" if owner else "", settings.admin_host, admin.port,
             applied or "none", tail)

    STOP.clear()
    request_stop = stop_handler(STOP)

    # SIGTERM (docker stop, systemd, the demo) and Ctrl-C drain and flush, then exit 0;
    # so does DRAIN_SIGNAL, from `run_processes` to the processes it started.
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(DRAIN_SIGNAL, request_stop)
    flow = build_flow(settings, hasher, kafka_io(settings, tail), snapshots=recovery)
    # The job allocates a tuple or two per event and keeps millions of long-lived ones
    # (windows, pending labels): collect young objects every 50k allocations instead of
    # every 700, and leave what start-up built (modules, chDB bindings) out of every scan.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)
    if STATS.watch_gc not in gc.callbacks:
        gc.callbacks.append(STATS.watch_gc)
    started = time.time()
    STATS.ready.set()
    try:
        cli_main(flow, workers_per_process=settings.workers,
                 process_id=settings.process_id if addresses else None,
                 addresses=addresses or None,
                 epoch_interval=timedelta(seconds=settings.epoch_interval_s),
                 recovery_config=recovery_config(settings) if recovery else None)
        STATS.finished.set()
        if recovery and STATS.erasures:
            vacuum_recovery(settings.data_path / "recovery")
        return 0
    except KeyboardInterrupt:
        log.warning("stopped by a second signal without draining")
        return 130
    finally:
        STATS.ready.clear()
        elapsed = time.time() - started
        snap = STATS.snapshot()
        log.info("job done in %.1fs: %d events, %d dead letters, rows written %s",
                 elapsed, snap["events_total"], snap["dead_letters"], snap["rows_written"])
        if snap["replies_by_intent"]:
            log.info("replies routed by intent %s, actions %s, %d duplicates, %d feedback "
                     "about unseen replies", snap["replies_by_intent"], snap["reply_actions"],
                     snap["reply_duplicates"], snap["feedback_waiting"])
        if snap["lift_rows"]:
            log.info("lift: %d rows written; split broken (sample-ratio alarm) for %s",
                     snap["lift_rows"], ", ".join(sorted(snap["lift_srm_alarms"])) or "none")
        admin.stop()
        queries.close()
        close_stores()
        embedded_store_owner(None)
