"""Crash recovery and scale-out: the tables equal an uninterrupted single-worker run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import orjson
import pytest

from mailflow.broker import EmbeddedBroker, ensure_topics, free_port
from tests.conftest import ROOT, mailflow_cmd, query_store

pytestmark = pytest.mark.integration

#: Every table, minus the columns that record wall-clock time.
TABLES = {
    "events": "* EXCEPT (ingested_at)",
    "throttle_decisions": "* EXCEPT (decided_at)",
    "suppressions": "*", "metrics_1m": "*", "convergence": "*", "attribution": "*",
    "scores": "*", "model_metrics": "*", "send_times": "*", "recipient_profiles": "*",
    "variant_allocations": "*", "model_events": "*",
}


def tables(data_dir) -> dict[str, list]:
    return {name: query_store(data_dir, f"SELECT {cols} FROM mailflow.{name} FINAL "
                                        "ORDER BY ALL")
            for name, cols in TABLES.items()}


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict, dict]]:
    """A broker holding one seeded input (~100k events with an incident), the environment
    every run of this module uses, and the tables of an uninterrupted single-worker run:
    what each test compares its runs with, made once for the module."""
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, partitions=3)
        base = {"MAILFLOW_KAFKA_BROKERS": broker.bootstrap, "MAILFLOW_ADMIN_PORT": "0",
                "MAILFLOW_LABEL_WINDOW_S": "1200"}
        data_dir = tmp_path_factory.mktemp("clean")
        clean = {**base, "MAILFLOW_DATA_DIR": str(data_dir)}
        mailflow_cmd("generate", "--seed", "6", "--start", "1795000000", "--rate", "20",
                     "--seconds", "5400", "--fast", "--incident",
                     "news.acme.example:gmail.com", env=clean)
        mailflow_cmd("run", "--dev", "--no-tail", env=clean)
        yield base, tables(data_dir)


def wait_for_events(port: int, events: int, job: subprocess.Popen, limit_s: float = 120
                    ) -> None:
    """Until the job's admin endpoint counts `events` (or the job ends)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and job.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=2) as resp:
                if orjson.loads(resp.read())["events_total"] >= events:
                    return
        except OSError:
            pass  # not listening yet
        time.sleep(0.05)


def test_kill_9_at_random_points_then_resume_equals_an_uninterrupted_run(clean_run, tmp_path):
    base, clean = clean_run
    rng = random.Random(7)
    for attempt in range(3):
        # Killed at a random point of its progress (not of wall time: a faster job would
        # finish first): after 10k-35k events of this run, a few epochs in.
        port = free_port()
        crashed = {**base, "MAILFLOW_DATA_DIR": str(tmp_path / "crashed"),
                   "MAILFLOW_EPOCH_INTERVAL_S": "1", "MAILFLOW_ADMIN_PORT": str(port)}
        job = subprocess.Popen([sys.executable, "-m", "mailflow", "run", "--dev", "--no-tail"],
                               cwd=ROOT, env={**os.environ, **crashed},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_events(port, rng.randint(10_000, 35_000), job)
        assert job.poll() is None, f"run {attempt} ended before it could be killed"
        job.send_signal(signal.SIGKILL)
        job.wait()
    mailflow_cmd("run", "--dev", "--no-tail", env=crashed)  # resumes and finishes

    after_crashes = tables(tmp_path / "crashed")
    assert len(clean["events"]) > 50_000 and clean["throttle_decisions"]
    for name in TABLES:
        assert after_crashes[name] == clean[name], f"mailflow.{name} differs after kill -9"
    # the models continued: the learned quality is that of the uninterrupted run, not zero
    assert after_crashes["model_metrics"][-1] == clean["model_metrics"][-1]


def test_one_and_two_workers_give_the_same_tables(clean_run, tmp_path):
    base, one = clean_run  # the uninterrupted run is the single-worker one
    mailflow_cmd("run", "--dev", "--no-tail", "--workers", "2",
                 env={**base, "MAILFLOW_DATA_DIR": str(tmp_path / "two")})
    two = tables(tmp_path / "two")
    for name in TABLES:
        assert two[name] == one[name], f"mailflow.{name} differs with 2 workers"
