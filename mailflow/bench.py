"""`mailflow bench`: end-to-end throughput and decision latency, or time per stage.

End to end (default): N generated events are produced into a fresh embedded
broker *before* timing; then the job (its own process, all features on) is
started and timed until every event is processed and every ClickHouse row is
written. A second, live phase measures throttle-decision latency: background
traffic at `--latency-rate` plus a burst of five 421 4.7.28 deferrals for a
fresh pair every second; latency is from the triggering event's append to
Kafka to the decision's append on `mailflow.throttle`.

`--stage` times each stage alone, in-process, on the same generated events:
parse, bounce classification, throttle, analytics (machine/bot, attribution,
metrics, convergence), models, row building and the ClickHouse insert.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from mailflow.broker import EmbeddedBroker, ensure_topics, free_port
from mailflow.demo import peak_rss_mb
from mailflow.generator import TrafficGenerator
from mailflow.traffic import EventProducer, paced

ROOT = Path(__file__).resolve().parents[1]
START = 1_795_000_000.0
BURST = 5


def _stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as resp:
        return orjson.loads(resp.read())


def _generate(n: int) -> list:
    rate = 50.0  # events per second of event time: hours of mail, so labels and windows work
    return list(TrafficGenerator(seed=11, start=START).events(rate, n / rate))


def end_to_end(events: int, workers: int, latency_rate: float, latency_seconds: float,
               progress: bool) -> dict[str, Any]:
    generated = _generate(events)
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as data:
        ensure_topics(broker.bootstrap, partitions=3)
        producer = EventProducer(broker.bootstrap)
        for ev in generated:
            producer.send(ev.topic, ev.key, ev.value)
        producer.flush(120)
        n = producer.produced
        port = free_port()
        env = {**os.environ, "MAILFLOW_KAFKA_BROKERS": broker.bootstrap,
               "MAILFLOW_DATA_DIR": data, "MAILFLOW_ADMIN_PORT": str(port),
               "MAILFLOW_LOG_LEVEL": "warning", "MAILFLOW_LABEL_WINDOW_S": "1800"}
        started = time.perf_counter()
        job = subprocess.Popen([sys.executable, "-m", "mailflow", "run", "--dev",
                                "--no-recovery", "--workers", str(workers)], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            stats = _wait_processed(port, n, job, progress)
            seconds = time.perf_counter() - started
            latency = _decision_latency(broker.bootstrap, port, latency_rate, latency_seconds)
            stats = _stats(port)
            rss = peak_rss_mb(job.pid) or 0.0
        finally:
            job.send_signal(signal.SIGTERM)
            job.wait(60)
    model_us = stats.get("model_update_us") or 0.0
    return {
        "bench": "end_to_end", "events": n, "seconds": round(seconds, 2),
        "events_per_s": round(n / seconds), "workers": workers,
        "decision_latency_p50_ms": latency["p50_ms"],
        "decision_latency_p99_ms": latency["p99_ms"],
        "decision_latency_background_events_per_s": latency["background_per_s"],
        "model_update_us": model_us,
        "model_update_us_per_event": round(
            1e6 * stats.get("model_update_seconds", 0.0) / max(n, 1), 2),
        "peak_rss_mb": round(rss), "clickhouse_rows": sum(stats["rows_written"].values()),
        "gc_full_collections": stats["gc_full_collections"],
        "gc_pause_max_ms": stats["gc_pause_max_ms"],
        "cores": os.cpu_count(),
        "note": "seconds include process start and migration",
    }


def _wait_processed(port: int, n: int, job: subprocess.Popen, progress: bool
                    ) -> dict[str, Any]:
    stats: dict[str, Any] = {}
    last = time.monotonic()
    while True:
        if job.poll() is not None:
            raise RuntimeError(f"the job exited with {job.returncode}")
        try:
            stats = _stats(port)
        except OSError:
            time.sleep(0.2)
            continue
        done = stats["events_total"] + stats["dead_letters"]
        written = stats["rows_written"].get("mailflow.events", 0)
        if done >= n and written >= stats["events_total"]:
            return stats
        if progress and time.monotonic() - last > 1:
            last = time.monotonic()
            print(f"\r{done:,}/{n:,} events", end="", file=sys.stderr, flush=True)
        time.sleep(0.05)


def _decision_latency(bootstrap: str, port: int, rate: float, seconds: float) -> dict:
    """Live phase: background traffic plus a fresh burst every second."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition("mailflow.throttle", p, -1) for p in range(3)])
    stop, count = threading.Event(), [0]

    def background() -> None:
        producer = EventProducer(bootstrap)
        start = time.time()
        for ev in paced(TrafficGenerator(seed=3, start=start).events(rate, seconds + 5),
                        start, 1.0, stop):
            producer.send(ev.topic, ev.key, ev.value)
            count[0] += 1
        producer.flush(30)

    load = threading.Thread(target=background, daemon=True)
    load.start()
    time.sleep(1.0)
    probe = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    triggers: dict[str, float] = {}
    decided: dict[str, float] = {}
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < seconds + 5:
        if time.monotonic() - t0 < seconds and time.monotonic() - t0 >= i:
            domain, now = f"probe-{i}.example", time.time()
            for j in range(BURST):
                value = orjson.dumps({
                    "type": "deferred", "ts": now, "sender": "probe.bench.example",
                    "recipient": f"r{j}@{domain}", "message_id": f"probe-{i}-{j}",
                    "smtp_code": 421, "smtp_status": "4.7.28",
                    "diagnostic": "421-4.7.28 unusual rate of unsolicited mail"})
                probe.produce("email.deliveries", value, domain.encode(), on_delivery=(
                    (lambda e, m, d=domain: triggers.__setitem__(d, m.timestamp()[1] / 1e3))
                    if j == BURST - 1 else None))
            i += 1
        probe.poll(0)
        for msg in consumer.consume(100, 0.05):
            if msg.error():
                continue
            d = orjson.loads(msg.value())
            if d["sender"] == "probe.bench.example" and d["seq"] == 1:
                decided.setdefault(d["domain"], msg.timestamp()[1] / 1e3)
    stop.set()
    probe.flush(10)
    consumer.close()
    lat = sorted(decided[d] - triggers[d] for d in decided if d in triggers)
    background_per_s = count[0] / (time.monotonic() - t0)

    def pct(q: float) -> float | None:
        return round(1000 * lat[min(len(lat) - 1, int(q * len(lat)))], 1) if lat else None

    return {"p50_ms": pct(0.5), "p99_ms": pct(0.99), "probes": i, "seen": len(lat),
            "background_per_s": round(background_per_s)}


def stages(events: int) -> dict[str, Any]:
    """Each stage alone, in-process, µs per event."""
    from collections import Counter

    from flows.parse import BatchParser
    from flows.sources import RawMessage
    from operators.analytics import EngagementAnalytics
    from operators.throttle import ThrottleBook
    from schemas import rows as out
    from schemas.hashing import DEV_HASH_KEY, RecipientHasher
    from sinks.clickhouse import ClickHouseStore, encode_rows

    generated = _generate(events)
    raw = [RawMessage(ev.value, ev.topic, 0, i, "") for i, ev in enumerate(generated)]
    result: dict[str, Any] = {"bench": "stages", "events": len(raw), "cores": os.cpu_count()}
    parser = BatchParser(RecipientHasher(DEV_HASH_KEY))
    parser.parser.now = lambda: START + 30 * 86_400

    t = time.perf_counter()
    batches = [parser(raw[i:i + 1000])[0] for i in range(0, len(raw), 1000)]
    result["parse_and_classify_us"] = round((time.perf_counter() - t) / len(raw) * 1e6, 2)
    items = sorted((item for b in batches for item in b.events), key=lambda it: it[0].ts_ms)
    signals = sorted((s for b in batches for s in b.signals), key=lambda s: s.ts_ms)

    books: dict[str, ThrottleBook] = {}
    t = time.perf_counter()
    by_book: dict[str, list] = {}
    for sig in signals:
        by_book.setdefault("s:" + sig.sender, []).append(sig)
        by_book.setdefault("p:" + sig.domain, []).append(sig)
    for key, sigs in by_book.items():
        book = books.get(key) or books.setdefault(key, ThrottleBook(
            "sender" if key.startswith("s:") else "provider", key[2:]))
        book.apply(sigs)
    result["throttle_us"] = round((time.perf_counter() - t) / len(raw) * 1e6, 2)

    analytics = EngagementAnalytics(label_window_s=1800)
    analytics.recipients._learn = lambda *a, **k: None  # type: ignore[method-assign]
    t = time.perf_counter()
    batch = analytics.apply(items)
    without = time.perf_counter() - t
    result["analytics_without_models_us"] = round(without / len(raw) * 1e6, 2)

    models = EngagementAnalytics(label_window_s=1800)
    t = time.perf_counter()
    models.apply(items)
    result["models_us"] = round((time.perf_counter() - t - without) / len(raw) * 1e6, 2)
    result["model_update_us"] = round(
        1e6 * models.learner.update_seconds / max(models.learner.updates, 1), 2)

    t = time.perf_counter()
    event_rows = [out.event_row(e.event, e.bounce, e.interaction, e.attributed_flows)
                  for e in batch.events]
    result["row_building_us"] = round((time.perf_counter() - t) / len(raw) * 1e6, 2)

    blocks = [event_rows[i:i + 5000] for i in range(0, len(event_rows), 5000)]
    t = time.perf_counter()
    encoded = [encode_rows(rows) for rows in blocks]
    # the dataflow thread's share; the insert below runs on the sink's writer thread
    result["clickhouse_encode_us"] = round((time.perf_counter() - t) / len(raw) * 1e6, 2)
    with tempfile.TemporaryDirectory() as data:
        store = ClickHouseStore(f"chdb://{data}/clickhouse")
        store.migrate()
        t = time.perf_counter()
        for block in encoded:
            store.insert_encoded("mailflow.events", block, out.EVENT_COLUMNS)
        result["clickhouse_insert_us"] = round((time.perf_counter() - t) / len(raw) * 1e6, 2)
        store.close()
    result["types"] = dict(Counter(it[0].type for it in items).most_common(4))
    return result
