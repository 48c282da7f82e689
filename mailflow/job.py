"""`mailflow run`: the long-lived stream job (imperative shell around `flows/`)."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from flows.settings import ConfigError, Settings
from flows.stats import STATS
from mailflow.admin import AdminServer
from mailflow.broker import ensure_topics, free_port
from schemas.hashing import DEV_HASH_KEY, RecipientHasher
from sinks.clickhouse import ReadOnlyQueries, chdb_path, close_stores, redact_dsn, store_for

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


def recovery_config(settings: Settings) -> Any:
    """Bytewax recovery in `<data dir>/recovery`, created on first use.

    Snapshots (input offsets and every operator's state) are taken at the end
    of each epoch (`epoch_interval_s`); after a crash the job resumes from the
    last complete one and replays the input after it. The number of recovery
    partitions is fixed when the directory is created.
    """
    from bytewax.recovery import RecoveryConfig, init_db_dir

    path = settings.data_path / "recovery"
    if not path.exists() or not any(path.iterdir()):
        path.mkdir(parents=True, exist_ok=True)
        init_db_dir(path, settings.recovery_partitions)
        log.info("created %d recovery partitions in %s", settings.recovery_partitions, path)
    return RecoveryConfig(path)


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


def run_processes(settings: Settings, argv: list[str]) -> int:
    """`--processes P` on this machine: P cooperating Bytewax processes (real parallelism;
    worker threads share the GIL). Each gets its own admin port (admin_port + i)."""
    if chdb_path(settings.clickhouse_dsn) is not None:
        raise ConfigError(
            "--processes > 1 needs a ClickHouse server (MAILFLOW_CLICKHOUSE_URL=http://…): "
            "an embedded chDB store belongs to one process")
    ports = [free_port() for _ in range(settings.processes)]
    addresses = ",".join(f"127.0.0.1:{p}" for p in ports)
    children = []
    for i in range(settings.processes):
        admin = settings.admin_port + i if settings.admin_port else 0
        children.append(subprocess.Popen(
            [sys.executable, "-m", "mailflow", *argv, "--processes", "1",
             "--process-id", str(i), "--addresses", addresses, "--admin-port", str(admin)]))
    log.info("started %d processes (%s)", len(children), addresses)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return max(child.wait() for child in children)


def run_job(settings: Settings, dev: bool = False, tail: bool = True,
            recovery: bool = True) -> int:
    """Set up store, topics and admin endpoint, then run the dataflow until done or stopped."""
    from bytewax.run import cli_main

    from flows.pipeline import build_flow, kafka_io
    from flows.sources import STOP

    hasher = hasher_for(settings, dev)
    brokers = settings.brokers()
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
        "kafka_brokers": brokers}, host=settings.admin_host, port=settings.admin_port).start()
    log.info("job starting: brokers=%s store=%s admin=http://%s:%d migrations=%s tail=%s",
             brokers, redact_dsn(settings.clickhouse_dsn), settings.admin_host, admin.port,
             applied or "none", tail)

    STOP.clear()

    def request_stop(signum: int, _frame: object) -> None:
        if STOP.is_set():  # a second signal: give up on draining
            raise KeyboardInterrupt
        log.info("%s: draining input, flushing sinks ...", signal.Signals(signum).name)
        STOP.set()

    # SIGTERM (docker stop, systemd, the demo) and Ctrl-C drain and flush, then exit 0.
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
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
        addresses = [a.strip() for a in settings.addresses.split(",") if a.strip()]
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
        admin.stop()
        queries.close()
        close_stores()
