"""Decision API and in-process client: lookup throughput and latency.

Publishes `--pairs` throttle decisions and suppressions to an embedded broker,
starts `mailflow serve` as its own process, then loads it from this (second)
process over loopback: with `wrk` when installed (Debian package `wrk`),
otherwise with Python keep-alive connections. Also times `ThrottleClient`
lookups in-process. Prints one JSON line.

    python bench/api.py [--seconds 10] [--connections 16]
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
from confluent_kafka import Producer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailflow.broker import EmbeddedBroker, ensure_topics, free_port  # noqa: E402
from schemas.hashing import DEV_HASH_KEY, RecipientHasher  # noqa: E402
from sinks.client import ThrottleClient  # noqa: E402

PROVIDERS = ["gmail.com", "outlook.com", "yahoo.com", "web.de", "gmx.net", "icloud.com"]


def publish(bootstrap: str, pairs: int) -> list[tuple[str, str]]:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    keys = []
    for i in range(pairs):
        sender, domain = f"sender{i // len(PROVIDERS)}.example", PROVIDERS[i % len(PROVIDERS)]
        keys.append((sender, domain))
        producer.produce("mailflow.throttle", orjson.dumps({
            "sender": sender, "domain": domain, "action": "slow", "rate_factor": 0.5,
            "until": None, "reason": "block_rate", "evidence": {}, "seq": 1,
            "event_ts": "2026-11-21T10:00:00.000Z", "decided_at": "2026-11-21T10:00:00.000Z"}),
            f"{sender}|{domain}".encode())
    hasher = RecipientHasher(DEV_HASH_KEY)
    for i in range(pairs):
        h = hasher.recipient(f"user{i}@example.org")
        producer.produce("mailflow.suppressions", orjson.dumps(
            {"recipient_hash": h, "reason": "complaint", "ts": "2026-11-21T10:00:00Z"}),
            h.encode())
    producer.flush(30)
    return keys


def with_wrk(port: int, keys: list[tuple[str, str]], seconds: int, connections: int) -> dict:
    script = Path(tempfile.mkdtemp()) / "paths.lua"
    paths = ", ".join(f'"/v1/throttle?sender={s}&domain={d}"' for s, d in keys[:500])
    script.write_text(f"paths = {{{paths}}}\ni = 0\nrequest = function()\n"
                      "  i = i % #paths + 1\n  return wrk.format('GET', paths[i])\nend\n")
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
                          "-s", str(script), f"http://127.0.0.1:{port}"],
                         capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        match = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return {"tool": "wrk", "requests_per_s": round(rps), "p50_ms": ms("50"),
            "p99_ms": ms("99")}


def with_python(port: int, keys: list[tuple[str, str]], seconds: int, connections: int
                ) -> dict:
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        mine = []
        while time.monotonic() < stop:
            s, d = random.choice(keys)
            t = time.perf_counter()
            conn.request("GET", f"/v1/throttle?sender={s}&domain={d}")
            conn.getresponse().read()
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    return {"tool": "python", "requests_per_s": round(len(latencies) / seconds),
            "p50_ms": round(1000 * latencies[len(latencies) // 2], 3),
            "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--pairs", type=int, default=6000)
    args = parser.parse_args()
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, partitions=3)
        keys = publish(broker.bootstrap, args.pairs)
        port = free_port()
        env = {**os.environ, "MAILFLOW_KAFKA_BROKERS": broker.bootstrap,
               "MAILFLOW_API_PORT": str(port), "MAILFLOW_LOG_LEVEL": "warning"}
        server = subprocess.Popen([sys.executable, "-m", "mailflow", "serve", "--dev"],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                    conn.request("GET", "/readyz")
                    if conn.getresponse().status == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.1)
            http_result = (with_wrk if shutil.which("wrk") else with_python)(
                port, keys, args.seconds, args.connections)
        finally:
            server.terminate()
            server.wait(10)

        client = ThrottleClient(broker.bootstrap, hash_key=DEV_HASH_KEY).start()
        client.wait_ready(30)
        sample = [random.choice(keys) for _ in range(100_000)]
        t = time.perf_counter()
        for s, d in sample:
            client.may_send(s, f"someone@{d}")
        in_process = len(sample) / (time.perf_counter() - t)
        t = time.perf_counter()
        for s, d in sample:
            client.throttle(s, d)
        throttle_only = len(sample) / (time.perf_counter() - t)
        client.close()
    print(orjson.dumps({"bench": "api", "pairs": args.pairs, "connections": args.connections,
                        "http": http_result,
                        "in_process_may_send_per_s": round(in_process),
                        "in_process_throttle_per_s": round(throttle_only),
                        "cores": os.cpu_count()}).decode())


if __name__ == "__main__":
    main()
