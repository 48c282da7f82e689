"""`mailflow track` under load: click redirects per second and their latency.

Starts an embedded broker, then the tracking edge as its own process (`mailflow
track`, or with `--threaded` the same TrackCore behind mailflow/http.py's
ThreadingHTTPServer, for comparison), and loads it from this process over
loopback: `--connections` keep-alive connections, each sending `GET /c/<token>`
as soon as its previous answer arrived (closed loop), for `--seconds`. Tokens
are signed for `--messages` distinct messages (seeded), with a browser agent,
and issued an hour earlier (so timing rules do not flag them). Every answer
must be a 302 with the signed Location; anything else is counted as an error.

Prints one JSON line: redirects/s, latency p50/p90/p99/max (ms), errors, the
events the edge counted, and the server's CPU seconds.

    python bench/track.py [--seconds 10] [--connections 16] [--rate R] [--threaded]

With `--rate R` the load is an open loop instead: R requests/s in all on a fixed
schedule, each timed from when it was due, so a stall shows in the latency.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.request import urlopen

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailflow.broker import EmbeddedBroker, ensure_topics, free_port  # noqa: E402
from schemas.links import LinkClaims, LinkKeys, sign  # noqa: E402

KEYS = "bench:bench-secret-0123456789abcdef"
AGENT = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/131.0.0.0 Safari/537.36")


def tokens(messages: int, seed: int) -> list[tuple[str, str]]:
    """(path, expected Location) for `messages` messages, 3 links each."""
    rng = random.Random(seed)
    keys = LinkKeys.parse(KEYS)
    issued = int(time.time()) - 3600
    out = []
    for m in range(messages):
        for link in range(3):
            url = f"https://shop.example/p/{rng.randrange(10**6)}?utm_source=mail&m={m}#top"
            claims = LinkClaims("c", f"<m{m}.{seed}@mail.acme.example>", "news.acme.example",
                                f"{rng.getrandbits(128):032x}", "gmail.com", "spring", "",
                                "A", link, url, issued, 0, "person")
            out.append((f"/c/{sign(claims, keys)}", url))
    return out


async def client(port: int, paths: list[tuple[str, str]], offset: int, stop_at: float,
                 latencies: list[float], errors: list[str], interval: float = 0.0) -> None:
    """One keep-alive connection. `interval` 0: closed loop (send when answered); else
    open loop, one request every `interval` seconds on a fixed schedule, each timed from
    when it was due (a late answer delays the next send: that wait is counted too)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    n = len(paths)
    due = time.perf_counter() + interval * (offset % 97) / 97  # spread the connections
    while time.perf_counter() < stop_at:
        path, location = paths[i % n]
        i += 7
        request = (f"GET {path} HTTP/1.1\r\nHost: t.example\r\nUser-Agent: {AGENT}\r\n"
                   f"X-Bench: 1\r\n\r\n").encode()
        if interval:
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            started = due
            due += interval
        else:
            started = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await reader.readexactly(length)
        latencies.append(time.perf_counter() - started)
        if not head.startswith(b"HTTP/1.1 302") or \
                f"\r\nLocation: {location}\r\n".encode() not in head:
            errors.append(head[:80].decode("latin-1"))
    writer.close()


async def load(port: int, paths: list[tuple[str, str]], connections: int, seconds: float,
               warmup: float, rate: float = 0.0) -> tuple[list[float], list[str], float]:
    # warm up (connections, caches), then measure
    await asyncio.gather(*[client(port, paths, c, time.perf_counter() + warmup, [], [])
                           for c in range(connections)])
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    interval = connections / rate if rate else 0.0
    await asyncio.gather(*[client(port, paths, c * 13, started + seconds, latencies, errors,
                                  interval) for c in range(connections)])
    return latencies, errors, time.perf_counter() - started


def serve_threaded(port: int, brokers: str) -> None:
    """The comparison: the same TrackCore behind ThreadingHTTPServer (mailflow/http.py)."""
    from mailflow.http import HardenedServer, JsonHandler
    from mailflow.track import Pending, TrackCore

    core = TrackCore(brokers, LinkKeys.parse(KEYS))

    class Handler(JsonHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            headers = {k.lower(): v for k, v in self.headers.items()}
            answer = core.handle("GET", self.path, headers, b"", self.client_address[0])
            assert not isinstance(answer, Pending)
            self.send_response(answer.status)
            for line in answer.headers.decode().split("\r\n"):
                if line:
                    name, _, value = line.partition(": ")
                    self.send_header(name, value)
            if b"Content-Length" not in answer.headers:
                self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

    server = HardenedServer(("127.0.0.1", port), Handler, max_connections=1024)
    print("ready", flush=True)
    server.serve_forever()


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="open loop: this many requests/s in all, on a fixed schedule, "
                             "latency from when each was due (default 0: closed loop)")
    parser.add_argument("--threaded", action="store_true",
                        help="the ThreadingHTTPServer comparison instead of `mailflow track`")
    parser.add_argument("--serve-threaded", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--brokers", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_threaded:
        serve_threaded(args.serve_threaded, args.brokers)
        return 0
    paths = tokens(args.messages, args.seed)
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        ensure_topics(broker.bootstrap, partitions=3)
        port = free_port("127.0.0.1")
        env = {**os.environ, "MAILFLOW_TRACK_KEYS": KEYS, "MAILFLOW_KAFKA_BROKERS":
               broker.bootstrap, "MAILFLOW_TRACK_PORT": str(port), "MAILFLOW_DATA_DIR": tmp,
               "MAILFLOW_LOG_LEVEL": "warning"}
        command = [sys.executable, str(Path(__file__).resolve()), "--serve-threaded",
                   str(port), "--brokers", broker.bootstrap] if args.threaded else \
            [sys.executable, "-m", "mailflow", "track"]
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        try:
            if not server.stdout.readline():  # its start line: listening
                raise SystemExit(f"the edge did not start:\n{server.stderr.read()[-3000:]}")
            cpu_before = cpu_seconds(server.pid)
            latencies, errors, elapsed = asyncio.run(
                load(port, paths, args.connections, args.seconds, args.warmup, args.rate))
            cpu = cpu_seconds(server.pid) - cpu_before
            metrics = ""
            if not args.threaded:
                with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
                    metrics = answer.read().decode()
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
    latencies.sort()

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 3)

    result = {
        "server": "ThreadingHTTPServer" if args.threaded else "mailflow track (asyncio)",
        "connections": args.connections, "offered_rate": args.rate or "closed loop",
        "seconds": round(elapsed, 2),
        "redirects": len(latencies), "redirects_per_s": round(len(latencies) / elapsed),
        "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1] * 1000, 3), "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "server_cpu_s": round(cpu, 2), "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "events_counted": sum(int(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                              if line.startswith("mailflow_track_events_total")),
    }
    print(orjson.dumps(result).decode())
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
