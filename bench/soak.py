"""Memory over a long run: is the job's RSS flat once its state is warm?

Runs the job (its own process, recovery on) against live generated traffic at
`--rate` for `--seconds`, sampling the job's resident memory and a few state
sizes every `--every` seconds. Prints one JSON line per sample, then a summary.

    python bench/soak.py --rate 4000 --seconds 600
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailflow.broker import EmbeddedBroker, ensure_topics, free_port  # noqa: E402
from mailflow.generator import TrafficGenerator  # noqa: E402
from mailflow.traffic import EventProducer, paced  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=4000)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--every", type=float, default=30)
    parser.add_argument("--no-recovery", action="store_true",
                        help="run without snapshots (to see their share of the cost)")
    parser.add_argument("--attribution-window-s", type=int, default=4 * 3600,
                        help="event-time window of attribution and message memory (default "
                             "4 h: with a day of mail in the run, state is at its bound "
                             "after a sixth of it, so the rest shows whether memory is flat)")
    args = parser.parse_args()
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as data:
        ensure_topics(broker.bootstrap, partitions=3)
        port = free_port()
        env = {**os.environ, "MAILFLOW_KAFKA_BROKERS": broker.bootstrap,
               "MAILFLOW_DATA_DIR": data, "MAILFLOW_ADMIN_PORT": str(port),
               "MAILFLOW_LOG_LEVEL": "warning", "MAILFLOW_LABEL_WINDOW_S": "1800",
               "MAILFLOW_ATTRIBUTION_WINDOW_S": str(args.attribution_window_s)}
        extra = ["--no-recovery"] if args.no_recovery else []
        job = subprocess.Popen([sys.executable, "-m", "mailflow", "run", "--dev", *extra],
                               cwd=ROOT,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stop = threading.Event()

        def traffic() -> None:
            producer = EventProducer(broker.bootstrap)
            start = time.time()
            # a day of mail squeezed into the run (time scale), so windows and labels turn over
            scale = 86_400 / args.seconds
            events = TrafficGenerator(seed=5, start=start - 86_400).events(
                args.rate / scale, 86_400)
            for ev in paced(events, start - 86_400, scale, stop):
                producer.send(ev.topic, ev.key, ev.value)
            producer.flush(30)

        time.sleep(3)
        load = threading.Thread(target=traffic, daemon=True)
        load.start()
        samples = []
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < args.seconds:
                time.sleep(args.every)
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats") as resp:
                    stats = orjson.loads(resp.read())
                sample = {"t_s": round(time.monotonic() - t0), "rss_mb": round(rss_mb(job.pid)),
                          "events": stats["events_total"],
                          "pending_labels": stats["pending_labels"],
                          "consumer_lag": stats["consumer_lag"]}
                samples.append(sample)
                print(orjson.dumps(sample).decode(), flush=True)
        finally:
            stop.set()
            job.send_signal(signal.SIGTERM)
            job.wait(60)
    half = samples[len(samples) // 2:]
    print(orjson.dumps({
        "bench": "soak", "rate": args.rate, "seconds": args.seconds,
        "rss_first_mb": samples[0]["rss_mb"], "rss_last_mb": samples[-1]["rss_mb"],
        "rss_max_mb": max(s["rss_mb"] for s in samples),
        "rss_growth_second_half_mb": half[-1]["rss_mb"] - half[0]["rss_mb"],
        "events": samples[-1]["events"], "consumer_lag_last": samples[-1]["consumer_lag"],
        "attribution_window_s": args.attribution_window_s,
        "recovery": not args.no_recovery, "cores": os.cpu_count()}).decode())


if __name__ == "__main__":
    main()
