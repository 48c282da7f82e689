"""ESP webhooks → `mailflow ingest` → input topics → the running job → ClickHouse `events`."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import orjson
import pytest

from mailflow.broker import free_port
from mailflow.ingest import PROVIDERS, IngestCore, IngestServer
from tests.conftest import ROOT, consume_all

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).parent / "samples"


def post(port: int, provider: str, body: bytes, query: str = "?sender=news.acme.example",
         headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/webhooks/{provider}{query}",
                                     data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def admin_sql(port: int, sql: str) -> list:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/sql", data=sql.encode(),
                                     method="POST")
    with urllib.request.urlopen(request, timeout=30) as resp:
        return orjson.loads(resp.read())["rows"]


def canonical_batch() -> bytes:
    now = time.time()
    return b"\n".join(orjson.dumps({
        "type": t, "ts": now - 60 + i, "sender": "own.mta.example",
        "recipient": f"c{i}@example.org", "message_id": f"own-{i}"})
        for i, t in enumerate(["sent", "delivered", "open", "click"]))


def test_a_mixed_batch_from_every_provider_lands_in_clickhouse(broker, tmp_path):
    admin = free_port()
    env = {**os.environ, "MAILFLOW_KAFKA_BROKERS": broker.bootstrap,
           "MAILFLOW_DATA_DIR": str(tmp_path), "MAILFLOW_ADMIN_PORT": str(admin)}
    job = subprocess.Popen([sys.executable, "-m", "mailflow", "run", "--dev"], cwd=ROOT,
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = IngestServer(IngestCore(broker.bootstrap, {}), port=0).start()
    try:
        accepted: Counter[str] = Counter()
        for provider in PROVIDERS:
            files = sorted((SAMPLES / provider).glob("*.json")) if provider != "canonical" \
                else []
            bodies = [f.read_bytes() for f in files] or [canonical_batch()]
            for body in bodies:
                status, answer = post(server.port, provider, body)
                assert status in (200, 400), (provider, status, answer)
                if status == 200:
                    accepted[provider] += answer["accepted"]
        for provider in PROVIDERS:
            assert accepted[provider] > 0, f"no {provider} event accepted"

        # malformed input is refused with an error the provider understands, and kept
        status, answer = post(server.port, "sendgrid", b"{not json")
        assert status == 400 and "sendgrid" in answer["error"]
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.putrequest("POST", "/v1/webhooks/mailgun")
        conn.putheader("Content-Length", str(50 * 1024 * 1024))  # announced, never sent
        conn.endheaders()
        assert conn.getresponse().status == 413
        conn.close()
        dlq = [orjson.loads(m.value()) for m in consume_all(broker.bootstrap, "mailflow.dlq")]
        assert any(d["topic"] == "webhook/sendgrid" and d["raw"] == "{not json" for d in dlq)

        expected = sum(accepted.values())
        deadline = time.monotonic() + 90
        rows: list = []
        while time.monotonic() < deadline:
            try:
                rows = admin_sql(admin, "SELECT JSONExtractString(attrs, 'provider') AS p, "
                                        "count() FROM mailflow.events GROUP BY p")
                if sum(n for _p, n in rows) >= expected:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        landed = {p or "canonical": n for p, n in rows}
        assert landed == dict(accepted), (landed, dict(accepted))
    finally:
        server.stop()
        job.send_signal(signal.SIGTERM)
        job.wait(30)
