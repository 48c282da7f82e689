"""Backlog throughput of `mailflow run --no-tail` on this machine.

Generates N events into a fresh embedded broker, then times the job (as its own
process, as in production) from start to exit, and reads its peak RSS.
Prints one JSON line. Usage: python bench/backlog.py [N]
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailflow.broker import EmbeddedBroker, ensure_topics  # noqa: E402
from mailflow.generator import TrafficGenerator  # noqa: E402
from mailflow.traffic import EventProducer  # noqa: E402


def main(n: int) -> dict:
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as data:
        ensure_topics(broker.bootstrap, partitions=3)
        rate = 500.0
        events = TrafficGenerator(seed=11, start=time.time() - 2 * n / rate).events(
            rate, n / rate)
        producer = EventProducer(broker.bootstrap)
        for ev in events:
            producer.send(ev.topic, ev.key, ev.value)
        producer.flush(60)
        produced = producer.produced
        env = {**os.environ, "MAILFLOW_KAFKA_BROKERS": broker.bootstrap,
               "MAILFLOW_DATA_DIR": data, "MAILFLOW_ADMIN_PORT": "0"}
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "mailflow", "run", "--dev", "--no-tail"],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        return {"bench": "backlog", "events": produced, "seconds": round(seconds, 2),
                "events_per_s": round(produced / seconds), "peak_rss_mb": round(peak_kb / 1024),
                "cores": os.cpu_count(), "note": "includes process start, migration, flush"}


if __name__ == "__main__":
    print(orjson.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)).decode())
