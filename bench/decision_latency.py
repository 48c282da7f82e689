"""Throttle decision latency under background load.

Starts the embedded broker and `mailflow run` (its own process), produces
realistic traffic live at `--rate` events/s, and every `--every` seconds
injects a burst of rate-limit deferrals for a fresh probe pair. Latency is the
time from the triggering event's append to Kafka (its CreateTime) to the
decision's append on `mailflow.throttle`. Prints one JSON line.

    python bench/decision_latency.py --rate 20000 --seconds 60
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailflow.broker import EmbeddedBroker, ensure_topics, free_port  # noqa: E402
from mailflow.generator import TrafficGenerator  # noqa: E402
from mailflow.traffic import EventProducer, paced  # noqa: E402

PROBE_SENDER = "probe.bench.example"
BURST = 5  # ThrottlePolicy.rate_limit_burst


def background(brokers: str, rate: float, seconds: float, stop: threading.Event,
               counter: list[int]) -> None:
    producer = EventProducer(brokers)
    start = time.time()
    events = TrafficGenerator(seed=3, start=start).events(rate, seconds)
    for ev in paced(events, start, 1.0, stop):
        producer.send(ev.topic, ev.key, ev.value)
        counter[0] += 1
    producer.flush(30)


def probe_events(n: int) -> list[bytes]:
    now = time.time()
    return [orjson.dumps({
        "type": "deferred", "ts": now, "sender": PROBE_SENDER,
        "recipient": f"r{i}@probe-{n}.example", "message_id": f"probe-{n}-{i}",
        "smtp_code": 421, "smtp_status": "4.7.28",
        "diagnostic": "421-4.7.28 Gmail has detected an unusual rate of unsolicited mail"})
        for i in range(BURST)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--every", type=float, default=1.0)
    args = parser.parse_args()

    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as data:
        ensure_topics(broker.bootstrap, partitions=3)
        port = free_port()
        env = {**os.environ, "MAILFLOW_KAFKA_BROKERS": broker.bootstrap,
               "MAILFLOW_DATA_DIR": data, "MAILFLOW_ADMIN_PORT": str(port)}
        job = subprocess.Popen([sys.executable, "-m", "mailflow", "run", "--dev"], cwd=ROOT,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=0.5)
                    break
                except OSError:
                    time.sleep(0.1)
            consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "bench",
                                 "enable.auto.commit": False})
            consumer.assign([TopicPartition("mailflow.throttle", p, -2) for p in range(3)])
            stop, counter = threading.Event(), [0]
            load = threading.Thread(target=background, args=(
                broker.bootstrap, args.rate, args.seconds + 5, stop, counter), daemon=True)
            load.start()
            time.sleep(2.0)
            probe = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
            triggers: dict[str, float] = {}
            decided: dict[str, float] = {}

            def delivered(err: object, msg: object, name: str = "") -> None:
                if err is None and name:
                    triggers[name] = msg.timestamp()[1] / 1000.0  # type: ignore[attr-defined]

            n, t0 = 0, time.monotonic()
            next_probe = t0
            drain_s = 5.0  # after the last probe, keep reading decisions
            while time.monotonic() - t0 < args.seconds + drain_s:
                if time.monotonic() >= next_probe and time.monotonic() - t0 < args.seconds:
                    domain = f"probe-{n}.example"
                    for i, value in enumerate(probe_events(n)):
                        last = i == BURST - 1
                        probe.produce("email.deliveries", value, domain.encode(),
                                      on_delivery=(lambda e, m, d=domain: delivered(e, m, d))
                                      if last else None)
                    probe.poll(0)
                    n += 1
                    next_probe += args.every
                for msg in consumer.consume(100, 0.05):
                    if msg.error():
                        continue
                    d = orjson.loads(msg.value())
                    if d["sender"] == PROBE_SENDER and d["seq"] == 1:
                        decided[d["domain"]] = msg.timestamp()[1] / 1000.0
                probe.poll(0)
            probe.flush(10)
            latencies = [decided[d] - triggers[d] for d in decided if d in triggers]
            stop.set()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=2) as resp:
                stats = orjson.loads(resp.read())
            elapsed = time.monotonic() - t0
        finally:
            job.send_signal(signal.SIGTERM)
            job.wait(30)
    latencies.sort()

    def pct(p: float) -> float | None:
        if not latencies:
            return None
        return round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1)

    print(orjson.dumps({
        "bench": "decision_latency", "background_rate_target": args.rate,
        "background_produced_per_s": round(counter[0] / (elapsed + 2)),
        "job_events": stats["events_total"], "probes": n, "decisions_seen": len(latencies),
        "decision_latency_p50_ms": pct(0.5), "decision_latency_p99_ms": pct(0.99),
        "decision_latency_max_ms": pct(1.0), "cores": os.cpu_count()}).decode())


if __name__ == "__main__":
    main()
