"""A running deployment for the console's tests: broker, job, `mailflow serve`, traffic.

`ConsoleDeployment` starts the embedded broker, `mailflow run` (tailing, with its admin
port: the embedded store is read through it) and `mailflow serve` (with a token), each as
the process it is in production; `feed()` produces generated traffic with an incident,
unpaced, so the job decides while a page watches. Everything stops on exit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from mailflow.broker import EmbeddedBroker, ensure_topics, free_port
from tests.conftest import ROOT, mailflow_cmd

TOKEN = "console-test-token-5a1e"
INCIDENT = "news.acme.example:gmail.com"
START = 1_795_000_000.0  # event time of the traffic: fixed, so every run is the same
PAUSE_S = 4 * 3600


def get_json(url: str, token: str | None = None, timeout: float = 10.0
             ) -> tuple[int, Any]:
    """(status, decoded JSON body) of a GET."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read() or b"null")


class ConsoleDeployment:
    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.admin_port = free_port()
        self.api_port = free_port()
        self.broker = EmbeddedBroker(log_path=data_dir / "broker.log")
        self.processes: list[subprocess.Popen] = []
        self.env: dict[str, str] = {}

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def __enter__(self) -> ConsoleDeployment:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # A pause lasts hours here (15 minutes by default): the traffic's event time is the
        # wall clock's, and a pause must still be in force, as /v1/throttle judges it by the
        # wall clock, however long the test takes to look at it.
        config = self.data_dir / "mailflow.toml"
        config.write_text(f"[throttle]\npause_base_s = {PAUSE_S}\n")
        self.broker.start()
        try:
            ensure_topics(self.broker.bootstrap, partitions=3)
            self.env = {**os.environ, "MAILFLOW_KAFKA_BROKERS": self.broker.bootstrap,
                        "MAILFLOW_DATA_DIR": str(self.data_dir),
                        "MAILFLOW_ADMIN_PORT": str(self.admin_port),
                        "MAILFLOW_API_PORT": str(self.api_port),
                        "MAILFLOW_API_TOKENS": TOKEN,
                        # labels mature 10 minutes after a send: model metrics within the hour
                        "MAILFLOW_LABEL_WINDOW_S": "600",
                        "MAILFLOW_TRACK_PORT": str(free_port()),
                        "MAILFLOW_CONFIG": str(config)}
            self._start("run", "--dev", "--no-recovery")
            self._wait(f"http://127.0.0.1:{self.admin_port}/readyz", "the job")
            self._start("serve", "--dev")
            self._wait(f"{self.base}/readyz", "mailflow serve")
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self, *args: str) -> None:
        log = open(self.data_dir / f"{args[0]}.log", "wb")  # noqa: SIM115 - the process's
        self.processes.append(subprocess.Popen(
            [sys.executable, "-m", "mailflow", *args], cwd=ROOT, env=self.env, stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        log.close()

    def _wait(self, url: str, what: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.processes):
                break
            try:
                with urllib.request.urlopen(url, timeout=1.0):
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"{what} did not become ready; logs:\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.data_dir.glob("*.log")))

    def feed(self, seconds: int = 3600, rate: float = 25.0, seed: int = 5,
             start: float = START) -> None:
        """An hour of generated mail with `INCIDENT` (a block and complaint wave), unpaced."""
        mailflow_cmd("generate", "--incident", INCIDENT, "--seed", str(seed), "--start",
                     str(start), "--rate", str(rate), "--seconds", str(seconds), "--fast",
                     env=self.env)

    def stats(self) -> dict[str, Any]:
        return get_json(f"http://127.0.0.1:{self.admin_port}/stats")[1]

    def wait_caught_up(self, timeout: float = 120.0) -> dict[str, Any]:
        """Until the job has stored what it took in and stopped moving for a moment."""
        deadline, last, steady = time.monotonic() + timeout, None, 0
        while time.monotonic() < deadline:
            stats = self.stats()
            # (the broker's watermarks can stay a few messages high: lag is not the test)
            events = stats.get("events_total", 0)
            seen = (events, stats.get("rows_written", {}).get("mailflow.events"))
            steady = steady + 1 if seen == last and seen == (events, events) and events else 0
            if steady >= 6:
                return stats
            last = seen
            time.sleep(0.5)
        raise AssertionError(f"the job did not catch up; logs:\n{self.logs()}")

    def __exit__(self, *exc: object) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
        self.processes.clear()
        self.broker.stop()
