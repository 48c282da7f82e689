"""The operator console on the demo's data: page loads and the time of each data answer.

Runs `mailflow demo` (embedded broker, job and console; `--seconds` of traffic at the
demo's rate with an incident, no control-group act) and, once `--after` seconds of
traffic have gone through, loads the console in headless Chromium (Debian's) `--loads`
times: from navigation to the decisions table filled, and to every view's charts drawn.
Then it times each `/ui/api/*` answer `--loads` times over HTTP. The demo goes on
producing meanwhile, as it would while someone looks.

Prints one JSON line: milliseconds (median and max) per page and per endpoint, beside a
reference measured in the same run (serve's `/healthz`, and `SELECT 1` through the job's
admin port: the channel every chart's query takes, doing no work), and the demo's events
at the time of measuring.

    python bench/console.py [--seconds 90] [--after 45] [--loads 5]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
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

from mailflow.broker import free_port  # noqa: E402
from mailflow.sqlcli import query_via_admin  # noqa: E402
from tests.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

ENDPOINTS = ("now", "history?sender=news.acme.example&domain=gmail.com", "flows?window=24h",
             "models", "replies", "tracking")
VIEWS = ("history", "flows", "models", "replies")


def summary(samples: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(samples) * 1000, 1),
            "max_ms": round(max(samples) * 1000, 1)}


def measure(base: str, admin_port: int, loads: int) -> dict[str, object]:
    from playwright.sync_api import sync_playwright

    pages: dict[str, list[float]] = {"now": [], **{view: [] for view in VIEWS}}
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         chromium_sandbox=False, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        for _ in range(loads):
            started = time.perf_counter()
            page.goto(f"{base}/ui/#now")
            page.locator("#decisions tr[data-key]").first.wait_for(timeout=30_000)
            pages["now"].append(time.perf_counter() - started)
            for view in VIEWS:
                started = time.perf_counter()
                page.goto(f"{base}/ui/#{view}" + (
                    "?sender=news.acme.example&domain=gmail.com" if view == "history" else ""))
                page.locator(f"#panel-{view} figure[data-points] canvas").first.wait_for(
                    timeout=30_000)
                pages[view].append(time.perf_counter() - started)
        browser.close()
    answers: dict[str, list[float]] = {name: [] for name in ENDPOINTS}
    for _ in range(loads):
        for name in ENDPOINTS:
            started = time.perf_counter()
            with urllib.request.urlopen(f"{base}/ui/api/{name}", timeout=30) as resp:
                resp.read()
            answers[name].append(time.perf_counter() - started)
    # the reference, in the same run: the same channel doing no work (serve's /healthz, and
    # `SELECT 1` through the busy job's admin port, as every chart's query goes)
    reference: dict[str, list[float]] = {"healthz": [], "admin_select_1": []}
    for _ in range(loads):
        started = time.perf_counter()
        with urllib.request.urlopen(f"{base}/healthz", timeout=30) as resp:
            resp.read()
        reference["healthz"].append(time.perf_counter() - started)
        started = time.perf_counter()
        query_via_admin(admin_port, "SELECT 1", timeout=30)
        reference["admin_select_1"].append(time.perf_counter() - started)
    return {"pages": {k: summary(v) for k, v in pages.items()},
            "api": {k.split("?")[0]: summary(v) for k, v in answers.items()},
            "reference": {k: summary(v) for k, v in reference.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=90.0,
                        help="seconds of demo traffic; measuring must end before it does")
    parser.add_argument("--after", type=float, default=45.0,
                        help="seconds of traffic before measuring (default 45)")
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mailflow-console-bench-",
                                     ignore_cleanup_errors=True) as tmp:
        port, admin = free_port(), free_port()
        env = {**os.environ, "MAILFLOW_DATA_DIR": tmp, "MAILFLOW_API_PORT": str(port),
               "MAILFLOW_ADMIN_PORT": str(admin), "MAILFLOW_API_TOKENS": "",
               "MAILFLOW_KAFKA_BROKERS": "", "MAILFLOW_CLICKHOUSE_URL": ""}
        demo = subprocess.Popen(
            [sys.executable, "-m", "mailflow", "demo", "--seconds", str(args.seconds),
             "--incident", "news.acme.example:gmail.com", "--no-lift"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            base = None
            for line in demo.stdout:  # type: ignore[union-attr]
                found = re.search(r"console: (http://\S+)/ui/", line)
                if found:
                    base = found.group(1)
                    break
            if base is None:
                print("the demo's console did not start", file=sys.stderr)
                return 1
            # the rest of its output is read away, so that a full pipe never stops it
            threading.Thread(target=demo.stdout.read, daemon=True).start()  # type: ignore[union-attr]
            time.sleep(args.after)
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats", timeout=5) as r:
                events = orjson.loads(r.read()).get("events_total")
            result = {"events": events, **measure(base, admin, args.loads)}
        finally:  # Ctrl-C, as a person stops it: the demo stops its job and console too
            demo.send_signal(signal.SIGINT)
            demo.wait(timeout=120)
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
