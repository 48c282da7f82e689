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

import ast
import os
import re
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
IDLE_S = 3.0  # seconds of an idle job measured after the last event


def _generate(n: int) -> list:
    rate = 50.0  # events per second of event time: hours of mail, so labels and windows work
    return list(TrafficGenerator(seed=11, start=START).events(rate, n / rate))


def end_to_end(events: int, workers: int, latency_rate: float, latency_seconds: float,
               progress: bool, processes: tuple[int, ...] = (1,)) -> dict[str, Any]:
    """Time the job on `events` generated events, once per entry of `processes`.

    Every run gets a fresh broker holding the same events (the latency phase adds
    traffic, so a broker is never reused) and a fresh store; the references run on
    that broker just before its job. One entry: one run's figures; several: a
    scaling table (`runs`, speed-up against the first run with the fewest processes)."""
    load = os.getloadavg()[0]  # a shared machine's figures need their context
    generated = _generate(events)
    runs: list[dict[str, Any]] = []
    for count in processes:
        with EmbeddedBroker() as broker:
            ensure_topics(broker.bootstrap, partitions=3)
            producer = EventProducer(broker.bootstrap)
            for ev in generated:
                producer.send(ev.topic, ev.key, ev.value)
            producer.flush(120)
            n = producer.produced
            del producer  # not left reconnecting to a stopped broker
            refs = references(broker.bootstrap, n)  # just before each job: the same noise
            try:
                run = _run_job(broker, n, workers, count, latency_rate, latency_seconds,
                               progress)
            except RuntimeError as exc:
                if len(processes) == 1:
                    raise
                run = {"processes": count, "error": str(exc)}
        runs.append(_with_ratios({**run, **refs}))
    common = {"events": n, "workers": workers, "cores": os.cpu_count(),
              "load_average_1m": [round(load, 1), round(os.getloadavg()[0], 1)]}
    if len(processes) == 1:
        return {"bench": "end_to_end", **common, **runs[0]}
    # against the first run with the fewest processes (`1,2,1` brackets 2 with two 1s)
    base = next(r for r in runs if r["processes"] == min(processes)).get(
        "processing_events_per_s")
    for run in runs:
        if base and "processing_events_per_s" in run:
            run["speedup"] = round(run["processing_events_per_s"] / base, 2)
    return {"bench": "scaling", **common, "runs": runs}


def _run_job(broker: EmbeddedBroker, n: int, workers: int, processes: int,
             latency_rate: float, latency_seconds: float, progress: bool) -> dict[str, Any]:
    """One job (`processes` processes) from start until every event is processed and
    written, then the live decision-latency phase; its figures."""
    ports = _free_ports(processes)  # `mailflow run --processes P` uses admin port + i
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "MAILFLOW_KAFKA_BROKERS": broker.bootstrap,
               "MAILFLOW_DATA_DIR": data, "MAILFLOW_ADMIN_PORT": str(ports[0]),
               "MAILFLOW_LOG_LEVEL": "warning", "MAILFLOW_LABEL_WINDOW_S": "1800"}
        cmd = [sys.executable, "-m", "mailflow", "run", "--dev", "--no-recovery",
               "--workers", str(workers)]
        if processes > 1:
            cmd += ["--processes", str(processes)]
        log_path = Path(data) / "job.log"
        started = time.perf_counter()
        with open(log_path, "wb") as log:
            job = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                   stderr=log)
        try:
            window = _wait_processed(ports, n, job, broker.pid, progress, log_path)
            seconds = time.perf_counter() - started
            idle = _idle_cores(job.pid, broker.pid)
            latency = _decision_latency(broker.bootstrap, latency_rate, latency_seconds)
            stats = _merged_stats(ports)
            pids = _descendants(job.pid) if processes > 1 else [job.pid]
            rss = [round(peak_rss_mb(pid) or 0.0) for pid in pids]
        finally:
            job.send_signal(signal.SIGTERM)
            job.wait(60)
    processed = window["events"]
    updates = stats.get("model_updates") or 0
    return {
        "processes": processes, "seconds": round(seconds, 2),
        "events_per_s": round(n / seconds),
        "processing_seconds": round(window["seconds"], 2),
        "processing_events_per_s": round(processed / window["seconds"]),
        "decision_latency_p50_ms": latency["p50_ms"],
        "decision_latency_p99_ms": latency["p99_ms"],
        "decision_latency_background_events_per_s": latency["background_per_s"],
        "cpu_us_per_event": round(1e6 * window["cpu_s"] / max(processed, 1), 1),
        "cpu_cores_busy": round(window["cpu_s"] / window["seconds"], 2),
        "cpu_s_before_start": round(window["cpu_s_before"], 2),
        "broker_cpu_us_per_event": round(1e6 * window["broker_cpu_s"] / max(processed, 1), 1),
        "idle_cpu_cores": idle[0], "broker_idle_cpu_cores": idle[1],
        "model_update_us": round(1e6 * stats["model_update_seconds"] / updates, 2)
        if updates else None,
        "model_update_us_per_event": round(
            1e6 * stats.get("model_update_seconds", 0.0) / max(n, 1), 2),
        "peak_rss_mb": max(rss), "peak_rss_mb_per_process": rss,
        "clickhouse_rows": sum(stats["rows_written"].values()),
        "gc_full_collections": stats["gc_full_collections"],
        "gc_pause_max_ms": stats["gc_pause_max_ms"],
        "note": "seconds and events_per_s include process start and migration; "
                "processing_* and cpu_us_per_event start when every admin endpoint answers "
                "(after imports and migration); cpu sums every process of the job",
    }


def _idle_cores(job_pid: int, broker_pid: int, seconds: float = IDLE_S) -> tuple[float, float]:
    """CPU cores the job and the broker use with nothing to do (polling, timers), measured
    after the last event: what `cpu_us_per_event` holds beside per-event work."""
    job, broker, t = cpu_seconds(job_pid), cpu_seconds(broker_pid, tree=False), time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t
    return (round((cpu_seconds(job_pid) - job) / wall, 2),
            round((cpu_seconds(broker_pid, tree=False) - broker) / wall, 2))


def references(bootstrap: str, n: int) -> dict[str, Any]:
    """bench/reference.py's two loops on the broker's events, each as its own process."""
    script = ROOT / "bench" / "reference.py"
    if not script.exists():  # an installed wheel has no bench/ directory
        return {"reference_consume_parse_eps": None, "reference_loop_eps": None}
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as data:
        for which, key in (("consume-parse", "consume_parse"), ("loop", "loop")):
            proc = subprocess.run(
                [sys.executable, str(script), which, "--brokers", bootstrap, "--events", str(n),
                 "--dsn", f"chdb://{data}/{key}"], cwd=ROOT, capture_output=True, text=True,
                timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"bench/reference.py {which} exited {proc.returncode}: "
                                   f"{proc.stderr[-2000:]}")
            result = orjson.loads(proc.stdout.strip().splitlines()[-1])
            out[f"reference_{key}_eps"] = result["events_per_s"]
            out[f"reference_{key}_cpu_us_per_event"] = result["cpu_us_per_event"]
    return out


def _with_ratios(run: dict[str, Any]) -> dict[str, Any]:
    """mailflow's processing events/s over each reference's, and its CPU per event over
    the minimal loop's (None where a figure is missing)."""
    eps = run.get("processing_events_per_s")
    for key in ("consume_parse", "loop"):
        ref = run.get(f"reference_{key}_eps")
        run[f"ratio_to_{key}"] = round(eps / ref, 3) if eps and ref else None
    cpu, ref_cpu = run.get("cpu_us_per_event"), run.get("reference_loop_cpu_us_per_event")
    run["cpu_ratio_to_loop"] = round(cpu / ref_cpu, 1) if cpu and ref_cpu else None
    return run


def _free_ports(count: int) -> list[int]:
    """`count` consecutive free loopback ports."""
    while True:
        base = free_port()
        ports = list(range(base, base + count))
        if all(_port_free(p) for p in ports[1:]):
            return ports


def _port_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _descendants(pid: int) -> list[int]:
    """Every live process below `pid` (from /proc: PPid of each process)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int(_stat_fields(int(entry.name))[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return sorted(out)


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name (which may hold spaces): state, ppid, ..."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()


def cpu_seconds(pid: int, tree: bool = True) -> float:
    """User + system CPU seconds of a process (and, with `tree`, its live descendants).

    >>> cpu_seconds(os.getpid(), tree=False) >= 0
    True
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in [pid, *(_descendants(pid) if tree else [])]:
        try:
            fields = _stat_fields(p)
        except OSError:
            continue  # exited in between
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def _stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as resp:
        return orjson.loads(resp.read())


def _merged_stats(ports: list[int]) -> dict[str, Any]:
    """Every process's /stats, counters summed (gc pause: the longest)."""
    merged: dict[str, Any] = {"events_total": 0, "dead_letters": 0, "rows_written": {},
                              "model_update_seconds": 0.0, "model_updates": 0,
                              "gc_full_collections": 0, "gc_pause_max_ms": 0.0}
    for port in ports:
        stats = _stats(port)
        for key in ("events_total", "dead_letters", "model_update_seconds",
                    "gc_full_collections"):
            merged[key] += stats.get(key) or 0
        if stats.get("model_update_us"):  # updates are not exported: seconds / µs each
            merged["model_updates"] += 1e6 * stats["model_update_seconds"] / stats[
                "model_update_us"]
        merged["gc_pause_max_ms"] = max(merged["gc_pause_max_ms"], stats["gc_pause_max_ms"])
        for table, rows in stats["rows_written"].items():
            merged["rows_written"][table] = merged["rows_written"].get(table, 0) + rows
    return merged


def _wait_processed(ports: list[int], n: int, job: subprocess.Popen, broker_pid: int,
                    progress: bool, log_path: Path) -> dict[str, Any]:
    """Wait until all `n` events are processed and written; the processing window: from
    the moment every admin endpoint answered (imports and migration done) to the end."""
    start: tuple[float, float, float, int] | None = None
    last = time.monotonic()
    while True:
        if job.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the job exited with {job.returncode}: {tail}")
        try:
            stats = _merged_stats(ports)
        except OSError:
            time.sleep(0.05)
            continue
        now = time.perf_counter()
        done = stats["events_total"] + stats["dead_letters"]
        if start is None:
            start = (now, cpu_seconds(job.pid), cpu_seconds(broker_pid, tree=False), done)
        written = stats["rows_written"].get("mailflow.events", 0)
        if done >= n and written >= stats["events_total"]:
            return {"seconds": max(now - start[0], 1e-3), "events": done - start[3],
                    "cpu_s": cpu_seconds(job.pid) - start[1], "cpu_s_before": start[1],
                    "broker_cpu_s": cpu_seconds(broker_pid, tree=False) - start[2]}
        if progress and time.monotonic() - last > 1:
            last = time.monotonic()
            print(f"\r{done:,}/{n:,} events", end="", file=sys.stderr, flush=True)
        time.sleep(0.05)


def _decision_latency(bootstrap: str, rate: float, seconds: float) -> dict:
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

    from flows.parse import ParseAndClassify
    from flows.sources import RawMessage
    from operators.analytics import EngagementAnalytics
    from operators.throttle import ThrottleBook
    from schemas import rows as out
    from schemas.hashing import DEV_HASH_KEY, RecipientHasher
    from sinks.clickhouse import ClickHouseStore, encode_rows

    generated = _generate(events)
    raw = [RawMessage(ev.value, ev.topic, 0, i, "") for i, ev in enumerate(generated)]
    result: dict[str, Any] = {"bench": "stages", "events": len(raw), "cores": os.cpu_count()}
    parser = ParseAndClassify(RecipientHasher(DEV_HASH_KEY))
    parser.parser.now = lambda: START + 30 * 86_400

    t = time.perf_counter()
    batches = [b for i in range(0, len(raw), 1000) for b in parser(raw[i:i + 1000])]
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
    result.update(reply_stage())
    return result


def reply_stage(repeat: int = 3) -> dict[str, Any]:
    """Replies alone: reading one in the parse step (rules, return date, contact, the text
    model's features) and routing it in the models' step (the text model's blend, actions),
    over the project's reply corpus, µs per reply and replies per second."""
    from flows.replies import reply_corpus, starting_reply_model
    from operators.reply_desk import ReplyDesk, ReplyFact, read_reply
    from operators.reply_model import reply_features
    from schemas.hashing import DEV_HASH_KEY, RecipientHasher

    rows = reply_corpus()
    if not rows:
        return {"replies": 0}
    hasher = RecipientHasher(DEV_HASH_KEY)
    ts = int(START * 1000)
    t = time.perf_counter()
    reads = [read_reply(r.get("subject", ""), r.get("body", ""), r.get("headers") or {}, ts,
                        "", hasher.scrub, hasher.recipient, reply_features)
             for _ in range(repeat) for r in rows]
    read_s = time.perf_counter() - t
    desk = ReplyDesk(model=starting_reply_model())
    facts = [ReplyFact(ts, f"r-{i}", "", "s", "h", "gmail.com", "", "", read, 0.0, 0.0)
             for i, read in enumerate(reads)]
    t = time.perf_counter()
    for f in facts:
        desk.on_reply(f)
    route_s = time.perf_counter() - t
    n = len(reads)
    return {"replies": n, "reply_read_us": round(read_s / n * 1e6, 1),
            "reply_route_us": round(route_s / n * 1e6, 1),
            "replies_per_s": round(n / (read_s + route_s))}


def human(result: dict[str, Any]) -> str:
    """The result for a terminal: `key: value` lines, and a table for a scaling run or a
    long replay.

    >>> print(human({"bench": "scaling", "events": 10, "runs": [{"processes": 1,
    ...     "processing_events_per_s": 100, "speedup": 1.0, "decision_latency_p99_ms": 9.5,
    ...     "cpu_us_per_event": 80.0, "cpu_cores_busy": 0.9, "peak_rss_mb_per_process": [700],
    ...     "ratio_to_loop": 0.3, "ratio_to_consume_parse": 0.05},
    ...     {"processes": 2, "error": "refused"}]}))
                                         bench: scaling
                                        events: 10
    processes  events/s  speed-up  p99 ms  CPU µs/event  cores  ÷ parse  ÷ loop  peak RSS MiB
            1       100      1.00     9.5          80.0   0.90    0.050   0.300  700
            2  refused
    >>> print(human({"bench": "long_replay_end_to_end", "dense_over_long": 1.2,
    ...     "long": {"events": 600, "event_time_days": 10.0, "events_per_s": 40,
    ...              "cpu_us_per_event": 217.2, "cpu_cores_busy": 0.87, "peak_rss_mb": 1289,
    ...              "rows_per_event": 2.4},
    ...     "dense": {"events": 600, "event_time_days": 0.04, "events_per_s": 48,
    ...               "cpu_us_per_event": 165.9, "cpu_cores_busy": 0.8, "peak_rss_mb": 1294,
    ...               "rows_per_event": 1.5}}))
                                         bench: long_replay_end_to_end
                               dense_over_long: 1.2
    case     events  days  events/s  CPU µs/event  cores  peak RSS MiB  rows/event
    long         600  10.0        40         217.2   0.87          1289         2.4
    dense        600  0.04        48         165.9   0.80          1294         1.5
    """
    cases = [key for key in ("long", "dense") if isinstance(result.get(key), dict)]
    lines = [f"{key:>42}: {value}" for key, value in result.items()
             if key != "runs" and key not in cases]
    if cases:
        lines.append("case     events  days  events/s  CPU µs/event  cores  peak RSS MiB  "
                     "rows/event")
        for case in cases:
            run = result[case]
            lines.append(f"{case:<5}  {run['events']:>9,}  {run['event_time_days']:>4}  "
                         f"{run['events_per_s']:>8,}  {run['cpu_us_per_event']:>12.1f}  "
                         f"{run['cpu_cores_busy']:>5.2f}  {run['peak_rss_mb']:>12}  "
                         f"{run.get('rows_per_event') or '-':>10}")
    if "runs" in result:
        lines.append("processes  events/s  speed-up  p99 ms  CPU µs/event  cores  ÷ parse  "
                     "÷ loop  peak RSS MiB")
        # events/s here is processing_events_per_s (after start-up), as are the ratios
        for run in result["runs"]:
            if "error" in run:
                lines.append(f"{run['processes']:>9}  {run['error'][:200]}")
                continue
            parse, loop = (run.get(f"ratio_to_{k}") for k in ("consume_parse", "loop"))
            lines.append(
                f"{run['processes']:>9}  {run['processing_events_per_s']:>8,}  "
                f"{run.get('speedup', 1.0):>8.2f}  {run['decision_latency_p99_ms'] or '-':>6}  "
                f"{run['cpu_us_per_event']:>12.1f}  {run['cpu_cores_busy']:>5.2f}  "
                f"{'-' if parse is None else f'{parse:.3f}':>7}  "
                f"{'-' if loop is None else f'{loop:.3f}':>6}  "
                f"{', '.join(str(r) for r in run['peak_rss_mb_per_process'])}")
    return "\n".join(lines)


def long_replay(options: list[str] | None = None) -> int:
    """`mailflow bench --long-replay`: bench/long_replay.py (many days of sparse event
    time, analytics in-process) as its own process, if this checkout has it, with
    `options` (e.g. `--days 2`; all of them: `python bench/long_replay.py --help`)."""
    script = ROOT / "bench" / "long_replay.py"
    if not script.exists():
        print("bench/long_replay.py is not in this checkout", file=sys.stderr)
        return 2
    return subprocess.run([sys.executable, str(script), *(options or [])],
                          cwd=ROOT).returncode


def snapshots(options: list[str] | None = None) -> int:
    """`mailflow bench --snapshots`: bench/snapshots.py (snapshot cost per epoch for a
    state and a 10× larger one) as its own process, with `options`."""
    script = ROOT / "bench" / "snapshots.py"
    if not script.exists():
        print("bench/snapshots.py is not in this checkout", file=sys.stderr)
        return 2
    return subprocess.run([sys.executable, str(script), *(options or [])],
                          cwd=ROOT).returncode


# -- long replay, end to end ---------------------------------------------------------------

DAY_S = 86_400
#: Event-time span of the dense case: one hour, as `mailflow bench`'s stream.
DENSE_S = 3600.0
#: Seconds between progress lines on long work.
PROGRESS_S = 5.0


def replay_streams(days: float, events: int, recipients: int, dense_events: int
                   ) -> dict[str, tuple[int, float, float]]:
    """The long-replay cases as (generator seed, events per second, seconds of event time):
    *long*, `events` spread over `days` (a backfill of sparse history), and *dense*,
    `dense_events` within one hour. `bench/long_replay.py` and the end-to-end mode use
    the same shapes (`TrafficGenerator(seed, START, recipients).events(rate, seconds)`).

    >>> replay_streams(10, 864_000, 50_000, 200_000)["long"]
    (11, 1.0, 864000.0)
    >>> replay_streams(10, 864_000, 50_000, 360_000)["dense"]
    (12, 100.0, 3600.0)
    """
    if days <= 0 or events < 1 or recipients < 1 or dense_events < 1:
        raise ValueError("days, events, recipients and dense events must be positive")
    span = float(days) * DAY_S
    return {"long": (11, events / span, span),
            "dense": (12, dense_events / DENSE_S, DENSE_S)}


def long_replay_end_to_end(days: float, events: int, recipients: int, label_window_s: int,
                           workers: int, progress: bool, recovery: bool = False,
                           order: tuple[str, ...] = ("long", "dense")) -> dict[str, Any]:
    """The whole job on the long sparse stream and on a dense one of the same size.

    For each case in `order`, back to back: a fresh embedded broker (3 partitions per
    topic) gets the generated stream (generated while produced: nothing is held), then
    `mailflow run --dev --no-recovery --no-tail` (its own process, every feature on, the
    same settings for both; with `recovery`, snapshots every 10 s as deployed, instead of
    `--no-recovery`) reads it to the end of input, flushes every sink and exits.
    Timed from the moment its admin endpoint answers (imports and migration done) to its
    exit; CPU and peak RSS from the kernel's accounting of the job's process."""
    load = os.getloadavg()[0]
    shapes = replay_streams(days, events, recipients, events)
    result: dict[str, Any] = {
        "bench": "long_replay_end_to_end", "days": days, "recipients": recipients,
        "label_window_s": label_window_s, "workers": workers, "recovery": recovery,
        "cores": os.cpu_count()}
    for name in order:
        seed, rate, seconds = shapes[name]
        with EmbeddedBroker() as broker:
            ensure_topics(broker.bootstrap, partitions=3)
            produced = _produce_stream(broker.bootstrap, seed, rate, seconds, recipients,
                                       name, progress)
            run = _run_to_end(broker, produced["events"], workers, label_window_s, name,
                              progress, recovery)
        result[name] = {**produced, **run}
    result["load_average_1m"] = [round(load, 1), round(os.getloadavg()[0], 1)]
    if "long" in result and "dense" in result:
        long, dense = result["long"], result["dense"]
        result["dense_over_long"] = round(dense["events_per_s"] / max(long["events_per_s"], 1),
                                          2)
        result["cpu_long_over_dense"] = round(
            long["cpu_us_per_event"] / max(dense["cpu_us_per_event"], 1e-9), 2)
    result["note"] = ("events_per_s and cpu_us_per_event: from the admin endpoint's first "
                      "answer (after imports and migration) to the job's exit at the end "
                      "of input (every sink flushed); "
                      + ("recovery on (snapshots every 10 s)" if recovery
                         else "recovery off, as `mailflow bench`"))
    return result


def _produce_stream(bootstrap: str, seed: int, rate: float, seconds: float, recipients: int,
                    name: str, progress: bool) -> dict[str, Any]:
    """Generate one case's stream straight into the broker; what was produced."""
    producer = EventProducer(bootstrap)
    deliveries, first, last = 0, None, 0.0
    t0 = last_line = time.monotonic()
    for ev in TrafficGenerator(seed=seed, start=START, recipients=recipients).events(
            rate, seconds):
        producer.send(ev.topic, ev.key, ev.value)
        if first is None:
            first = ev.ts
        last = ev.ts
        if b'"type":"delivered"' in ev.value:
            deliveries += 1
        if progress and time.monotonic() - last_line >= PROGRESS_S:
            last_line = time.monotonic()
            print(f"{name}: produced {producer.produced:,} events "
                  f"({(last - (first or last)) / DAY_S:.2f} days of event time)",
                  file=sys.stderr, flush=True)
    producer.flush(300)
    if producer.failed or producer.delivered != producer.produced:
        raise RuntimeError(f"{name}: {producer.failed} of {producer.produced} events not "
                           f"produced ({producer.last_error})")
    if progress:
        print(f"{name}: produced {producer.produced:,} events in "
              f"{time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    return {"events": producer.produced, "deliveries": deliveries,
            "event_time_days": round((last - (first or last)) / DAY_S, 2)}


def _run_to_end(broker: EmbeddedBroker, n: int, workers: int, label_window_s: int, name: str,
                progress: bool, recovery: bool = False) -> dict[str, Any]:
    """`mailflow run --no-tail` over what the broker holds, until it exits; its figures."""
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "MAILFLOW_KAFKA_BROKERS": broker.bootstrap,
               "MAILFLOW_DATA_DIR": data, "MAILFLOW_ADMIN_PORT": str(port),
               "MAILFLOW_LOG_LEVEL": "info", "MAILFLOW_LABEL_WINDOW_S": str(label_window_s)}
        cmd = [sys.executable, "-m", "mailflow", "run", "--dev", "--no-tail",
               "--workers", str(workers), *([] if recovery else ["--no-recovery"])]
        log_path = Path(data) / "job.log"
        started = time.perf_counter()
        with open(log_path, "wb") as log:
            job = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                   stderr=log)
        try:
            window = _wait_exit(job, port, n, broker.pid, name, progress)
        finally:
            if job.returncode is None:
                job.kill()
                job.wait(60)
        if window["returncode"] != 0:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name}: the job exited with {window['returncode']}: {tail}")
        seconds = time.perf_counter() - started
        rows = _rows_written(log_path.read_text(errors="replace"))
    processing = window["seconds"]
    return {
        "seconds": round(seconds, 2), "processing_seconds": round(processing, 2),
        "events_per_s": round(n / processing),
        "events_per_s_with_start": round(n / seconds),
        "cpu_us_per_event": round(1e6 * window["cpu_s"] / n, 1),
        "cpu_cores_busy": round(window["cpu_s"] / processing, 2),
        "broker_cpu_us_per_event": round(1e6 * window["broker_cpu_s"] / n, 1),
        "peak_rss_mb": round(window["peak_rss_mb"]),
        "max_events_waiting": window["max_events_waiting"],
        "clickhouse_rows": sum(rows.values()) if rows else None,
        "rows_per_event": round(sum(rows.values()) / n, 3) if rows else None,
        "rows": rows,
    }


def _wait_exit(job: subprocess.Popen, port: int, n: int, broker_pid: int | None, name: str,
               progress: bool) -> dict[str, Any]:
    """Poll the job's /stats (a progress line every few seconds) until it exits; the window
    from its first answer to its exit, with the kernel's CPU and peak RSS of the job."""
    start: tuple[float, float, float] | None = None
    last_line, last_done = time.monotonic(), 0
    held = 0  # the most parsed events seen waiting in the shards (gated or queued)
    while True:
        pid, status, usage = os.wait4(job.pid, os.WNOHANG)
        now = time.perf_counter()
        if pid:
            job.returncode = os.waitstatus_to_exitcode(status)
            if start is None:
                return {"returncode": job.returncode or 1}
            return {"returncode": job.returncode, "seconds": max(now - start[0], 1e-3),
                    "cpu_s": usage.ru_utime + usage.ru_stime - start[1],
                    "broker_cpu_s": cpu_seconds(broker_pid, tree=False) - start[2]
                    if broker_pid else 0.0,
                    "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux: KiB
                    "max_events_waiting": held}
        try:
            stats = _stats(port)
        except OSError:
            stats = None
        if stats is not None:
            held = max(held, (stats.get("events_held") or 0)
                       + (stats.get("analytics_queued") or 0))
        if stats is not None and start is None:
            start = (now, cpu_seconds(job.pid),
                     cpu_seconds(broker_pid, tree=False) if broker_pid else 0.0)
        if (progress and stats is not None
                and time.monotonic() - last_line >= PROGRESS_S):
            done = stats["events_total"] + stats["dead_letters"]
            rate = (done - last_done) / (time.monotonic() - last_line)
            last_line, last_done = time.monotonic(), done
            print(f"{name}: {done:,}/{n:,} events parsed, {rate:,.0f} events/s in the "
                  f"last {PROGRESS_S:.0f} s, {stats.get('analytics_queued') or 0:,} waiting "
                  f"for analytics, {now - start[0]:.0f} s since start",
                  file=sys.stderr, flush=True)
        time.sleep(0.05 if start is None else 0.5)


def _rows_written(log_text: str) -> dict[str, int] | None:
    """Rows written per table, from the job's last log line ("job done in ...").

    >>> _rows_written("x\\n... job done in 9.1s: 5 events, 0 dead letters, rows written "
    ...               "{'mailflow.events': 5}\\n")
    {'mailflow.events': 5}
    """
    found = re.findall(r"rows written (\{[^}]*\})", log_text)
    if not found:
        return None
    try:
        rows = ast.literal_eval(found[-1])
    except (ValueError, SyntaxError):
        return None
    return {str(k): int(v) for k, v in rows.items()}
