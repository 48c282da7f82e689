"""`mailflow demo`: embedded broker, the job, the generator, the console and a live summary.

The console (`mailflow serve` with its `/ui/`) runs beside the job for the demo's length,
so the throttles of `--incident` can be watched as they are decided."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from flows.settings import Settings
from mailflow.broker import EmbeddedBroker, ensure_topics, free_port
from mailflow.malformed import malformed_samples
from mailflow.traffic import EventProducer, paced, plan, send_all
from sinks.clickhouse import redact_dsn

EXAMPLE_QUERIES = (
    "SELECT type, count() FROM mailflow.events GROUP BY type ORDER BY 2 DESC",
    "SELECT domain, countIf(type='open' AND NOT is_human) AS machine_opens, "
    "countIf(type='open' AND is_human) AS human_opens FROM mailflow.events "
    "GROUP BY domain ORDER BY machine_opens DESC LIMIT 10",
    "SELECT bounce_class, count() FROM mailflow.events "
    "WHERE type IN ('bounce','deferred') GROUP BY bounce_class",
    "SELECT sender, domain, seq, action, rate_factor, reason, event_ts "
    "FROM mailflow.throttle_decisions ORDER BY event_ts LIMIT 20",
    "SELECT model, argMax(roc_auc, minute) AS auc, argMax(log_loss, minute) AS log_loss, "
    "max(n) AS labels FROM mailflow.model_metrics FINAL GROUP BY model ORDER BY model",
    "SELECT queue, intent, count() AS replies, round(avg(priority)) AS priority "
    "FROM mailflow.replies FINAL GROUP BY queue, intent ORDER BY replies DESC",
)

#: Every this many generated events, one round of malformed messages goes in too.
MALFORMED_EVERY = 20_000


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def fetch_stats(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=1.0) as resp:
            return orjson.loads(resp.read())
    except (OSError, ValueError):
        return None


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set (VmHWM), in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class TrafficThread(threading.Thread):
    """Produces paced generated traffic plus a few malformed messages."""

    def __init__(self, brokers: str, rate: float, seconds: float, seed: int, time_scale: float,
                 incident: str | None):
        super().__init__(name="demo-traffic", daemon=True)
        self.gen, self.start_ts, self.event_rate, self.span = plan(
            rate, seconds, time_scale, seed, incident)
        self.time_scale = time_scale
        self.producer = EventProducer(brokers)
        self.stop_event = threading.Event()
        self.malformed = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            events = self.gen.events(self.event_rate, self.span)
            rounds = 0
            for ev in paced(events, self.start_ts, self.time_scale, self.stop_event):
                self.producer.send(ev.topic, ev.key, ev.value)
                if self.producer.produced % MALFORMED_EVERY == 1:
                    for _kind, topic, raw, _reason in malformed_samples(rounds):
                        self.producer.send(topic, None, raw)
                        self.malformed += 1
                    rounds += 1
            self.producer.flush()
        except BaseException as exc:  # reported by the demo, never swallowed
            self.error = exc


def _render(stats: dict[str, Any], rate: float, produced: int, elapsed: float,
            seconds: float, tty: bool) -> str:
    by_type = stats.get("events_by_type", {})
    processed = stats.get("events_total", 0) + stats.get("dead_letters", 0)
    rows = stats.get("rows_written", {}).get("mailflow.events", 0)
    lines = [
        f"mailflow demo  {elapsed:5.0f}s / {seconds:.0f}s   "
        f"{rate:8,.0f} events/s   produced {produced:,}   processed {processed:,}   "
        f"lag {max(0, produced - processed):,}",
        f"  ClickHouse rows: {rows:,}   dead letters: {stats.get('dead_letters', 0):,}   "
        "throttle decisions: " + (", ".join(
            f"{a} {n:,}" for a, n in sorted(stats.get("decisions_by_action", {}).items()))
            or "none"),
        "  " + "  ".join(f"{t} {n:,}" for t, n in sorted(by_type.items(), key=lambda kv: -kv[1])),
    ]
    replies = stats.get("replies_by_intent") or {}
    if replies:
        actions = stats.get("reply_actions") or {}
        lines.append("  replies routed: " + ", ".join(
            f"{i} {n:,}" for i, n in sorted(replies.items(), key=lambda kv: -kv[1]))
            + "   held " + f"{actions.get('hold', 0):,}" + "   suppressed "
            + f"{actions.get('suppress', 0):,}")
    if tty:
        return "\x1b[2K" + "\n\x1b[2K".join(lines)
    return " | ".join(line.strip() for line in lines)


def run_demo(settings: Settings, seconds: float, rate: float, seed: int, time_scale: float,
             incident: str | None) -> int:
    try:
        plan(rate, seconds, time_scale, seed, incident)  # refuse bad arguments before starting
    except ValueError as exc:
        print(f"mailflow demo: {exc}", file=sys.stderr)
        return 2
    data = settings.data_path
    data.mkdir(parents=True, exist_ok=True)
    admin_port = settings.admin_port
    if admin_port == 0 or not _port_free(admin_port):
        admin_port = free_port()
    tty = sys.stdout.isatty()
    print(f"mailflow demo: data in {data}, ClickHouse {redact_dsn(settings.clickhouse_dsn)}")
    with EmbeddedBroker(log_path=data / "demo-broker.log") as broker:
        ensure_topics(broker.bootstrap, partitions=settings.partitions)
        print(f"embedded broker on {broker.bootstrap}; starting the job "
              f"(admin http://127.0.0.1:{admin_port}) ...", flush=True)
        job_log = open(data / "demo-job.log", "wb")  # noqa: SIM115 - closed below
        # --no-recovery: the embedded broker is new each time, so offsets saved by an
        # earlier demo would point past the end of its topics.
        cmd = [sys.executable, "-m", "mailflow", "run", "--dev", "--no-recovery",
               "--brokers", broker.bootstrap,
               "--data-dir", str(data), "--admin-port", str(admin_port)]
        # The demo squeezes an hour of mail into a minute: labels mature after 10 minutes
        # of event time, so the models learn (and report) within the demo. The DSN goes
        # by environment, not argv: a password in argv shows in every `ps`.
        env = {"MAILFLOW_LABEL_WINDOW_S": "600", **os.environ,
               "MAILFLOW_CLICKHOUSE_URL": settings.clickhouse_dsn}
        job = subprocess.Popen(cmd, stdout=job_log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env=env)
        console = None
        try:
            if _wait_ready(job, admin_port):
                console = start_console(settings, broker.bootstrap, admin_port, data)
            return _drive(job, broker.bootstrap, admin_port, seconds, rate, seed, time_scale,
                          incident, tty, data / "demo-job.log", settings)
        finally:
            if console is not None:
                stop(console)
            stop(job)
            job_log.close()


def start_console(settings: Settings, brokers: str, admin_port: int,
                  data: Path) -> subprocess.Popen | None:
    """`mailflow serve --dev` on loopback (the API port, or a free one), reading the
    demo's broker and, through the job's admin port, its store; None if it did not start
    (the demo goes on without it, and says so)."""
    port = settings.api_port if settings.api_port and _port_free(settings.api_port) \
        else free_port()
    env = {**os.environ, "MAILFLOW_KAFKA_BROKERS": brokers, "MAILFLOW_API_HOST": "127.0.0.1",
           "MAILFLOW_API_PORT": str(port), "MAILFLOW_ADMIN_PORT": str(admin_port),
           "MAILFLOW_CLICKHOUSE_URL": settings.clickhouse_dsn}
    log = open(data / "demo-console.log", "wb")  # noqa: SIM115 - the child keeps it
    console = subprocess.Popen([sys.executable, "-m", "mailflow", "serve", "--dev"], env=env,
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    if _wait_ready(console, port, timeout=30, path="/healthz"):
        print(f"console: http://127.0.0.1:{port}/ui/  (open it now: throttles appear "
              "live; it runs for the demo's length)", flush=True)
        return console
    print(f"the console did not start (see {data / 'demo-console.log'}); going on without it",
          file=sys.stderr)
    stop(console)
    return None


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it has not ended within 30 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


#: The control-group act: the default lift scenario's split, as the job must expect it.
LIFT_DEMO_ENV = {"MAILFLOW_HOLDOUT_SHARE": "0.1", "MAILFLOW_GLOBAL_CONTROL_SHARE": "0.05"}


def run_lift_demo(settings: Settings, seed: int, days: int = 14) -> int:
    """What the mail caused: two weeks of flows with a 10% holdout per flow and a 5% global
    control group (a true +2 pp in onboarding, none in winback, a send-time policy at
    50/50), through the job on a broker and a store of their own (`<data dir>/lift`), then
    the `mailflow lift` report. Unpaced: event time is the simulator's."""
    from mailflow.lift_sim import LiftSimulator, default_scenario, summary_lines

    data = settings.data_path / "lift"
    if data.exists():
        shutil.rmtree(data)  # a fresh store each time: the broker is new too
    data.mkdir(parents=True)
    try:
        sim = LiftSimulator(default_scenario(days=days), seed=seed)
    except ValueError as exc:
        print(f"mailflow demo: {exc}", file=sys.stderr)
        return 2
    print(f"\ncontrol groups: {days} days of two flows with a 10% holdout each and a 5% global "
          "control group\n(onboarding truly +2 pp, winback no effect) through the job ...",
          flush=True)
    env = {**os.environ, **LIFT_DEMO_ENV, "MAILFLOW_DATA_DIR": str(data),
           "MAILFLOW_CLICKHOUSE_URL": "", "MAILFLOW_ADMIN_PORT": "0"}
    with EmbeddedBroker(log_path=data / "broker.log") as broker:
        ensure_topics(broker.bootstrap, partitions=settings.partitions)
        produced = send_all(sim.events(), broker.bootstrap)
        env["MAILFLOW_KAFKA_BROKERS"] = broker.bootstrap
        started = time.monotonic()
        with open(data / "job.log", "wb") as log:
            done = subprocess.run([sys.executable, "-m", "mailflow", "run", "--dev",
                                   "--no-tail", "--no-recovery"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  check=False)
        if done.returncode != 0:
            tail = (data / "job.log").read_text(errors="replace")[-3000:]
            print(f"the lift job failed ({done.returncode}); its log:\n{tail}",
                  file=sys.stderr)
            return 1
        print(f"{produced:,} events in {time.monotonic() - started:.0f}s. The "
              "simulator's truth:")
        for line in summary_lines(sim.truth()):
            print("  " + line)
        print(f"\n$ MAILFLOW_DATA_DIR={data} mailflow lift", flush=True)
        report = subprocess.run([sys.executable, "-m", "mailflow", "lift"], env=env,
                                check=False)
    return report.returncode


def _wait_ready(process: subprocess.Popen, port: int, timeout: float = 120.0,
                path: str = "/readyz") -> bool:
    """Until `path` on the loopback `port` answers 200 (True), the process exits or the
    time is up (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def _drive(job: subprocess.Popen, brokers: str, admin_port: int, seconds: float, rate: float,
           seed: int, time_scale: float, incident: str | None, tty: bool, log_path: Path,
           settings: Settings) -> int:
    if not _wait_ready(job, admin_port):
        tail = log_path.read_text(errors="replace")[-3000:]
        print(f"the job did not become ready; its log ({log_path}):\n{tail}", file=sys.stderr)
        return 1
    traffic = TrafficThread(brokers, rate, seconds, seed, time_scale, incident)
    traffic.start()
    t0 = time.monotonic()
    last_n, last_t, shown = 0, t0, 0
    first_processed_at: float | None = None
    stats: dict[str, Any] = {}
    shown_lines = 0
    try:
        while traffic.is_alive():
            time.sleep(1.0)
            if job.poll() is not None:
                break
            stats = fetch_stats(admin_port) or stats
            now = time.monotonic()
            n = stats.get("events_total", 0) + stats.get("dead_letters", 0)
            if n and first_processed_at is None:
                first_processed_at = now
            current = (n - last_n) / (now - last_t)
            last_n, last_t = n, now
            text = _render(stats, current, traffic.producer.produced, now - t0, seconds, tty)
            if tty:  # back up over the lines printed last time (the replies line comes later)
                print((f"\x1b[{shown_lines}A" if shown else "") + text, flush=True)
                shown_lines = text.count("\n") + 1
            elif int(now - t0) % 5 == 0:
                print(text, flush=True)
            shown += 1
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    traffic.stop_event.set()
    traffic.join(timeout=30)
    if traffic.error is not None:
        print(f"traffic generator failed: {traffic.error}", file=sys.stderr)
    if job.poll() is not None:
        tail = log_path.read_text(errors="replace")[-3000:]
        print(f"the job exited with {job.returncode}; its log ({log_path}):\n{tail}",
              file=sys.stderr)
        return 1

    produced = traffic.producer.produced
    print(f"\ngenerator done: {produced:,} messages ({traffic.malformed} deliberately "
          "malformed); waiting for the job to catch up ...", flush=True)
    caught_up, last_progress_at = False, time.monotonic()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        stats = fetch_stats(admin_port) or stats
        processed = stats.get("events_total", 0) + stats.get("dead_letters", 0)
        rows = stats.get("rows_written", {}).get("mailflow.events", 0)
        if processed >= produced and rows >= stats.get("events_total", 0):
            caught_up = True
            last_progress_at = time.monotonic()
            break
        time.sleep(0.25)
    rss = peak_rss_mb(job.pid)
    active = (last_progress_at - first_processed_at) if first_processed_at else 0.0
    processed = stats.get("events_total", 0) + stats.get("dead_letters", 0)
    job.send_signal(signal.SIGTERM)
    job.wait(timeout=30)

    print(_render(stats, 0, produced, time.monotonic() - t0, seconds, False).split(" | ")[-1])
    print(f"\nprocessed {processed:,} messages in {active:.1f}s "
          f"({processed / active if active else 0:,.0f}/s sustained); "
          f"dead letters {stats.get('dead_letters', 0):,}; "
          f"job peak RSS {rss or 0:.0f} MiB")
    if not caught_up:
        print("warning: the job had not processed everything when the demo stopped",
              file=sys.stderr)
    env = "" if settings.data_dir == ".mailflow" else f"MAILFLOW_DATA_DIR={settings.data_dir} "
    print(f"\nThe data stays in {settings.data_path}. Query it with, for example:\n")
    for query in EXAMPLE_QUERIES:
        print(f'  {env}.venv/bin/mailflow sql "{query}"')
    return 0 if caught_up else 1
