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
from confluent_kafka import Consumer, TopicPartition

from mailflow.broker import free_port
from mailflow.ingest import PROVIDERS, IngestCore, IngestServer
from schemas.events import Event, EventParser
from schemas.hashing import DEV_HASH_KEY, RecipientHasher
from schemas.topics import INPUT_TOPICS
from tests.conftest import ROOT, consume_all, mailflow_cmd

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
    job_log = tmp_path / "job.log"  # a job that dies says why in the failure
    job = subprocess.Popen([sys.executable, "-m", "mailflow", "run", "--dev"], cwd=ROOT,
                           env=env, stdout=subprocess.DEVNULL, stderr=job_log.open("wb"))
    server = IngestServer(IngestCore(broker.bootstrap, {}, RecipientHasher(DEV_HASH_KEY)),
                          port=0).start()
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
        deadline = time.monotonic() + 240  # generous: a loaded machine starts jobs slowly
        rows: list = []
        while time.monotonic() < deadline:
            assert job.poll() is None, f"the job exited: {job_log.read_text()[-3000:]}"
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
        # ingest hashed the address; the job (same key) stored exactly what it would compute
        stored = admin_sql(admin, "SELECT recipient_hash, recipient_domain FROM mailflow.events "
                                  "WHERE message_id = 'own-0'")
        assert stored == [[RecipientHasher(DEV_HASH_KEY).recipient("c0@example.org"),
                           "example.org"]]
    finally:
        server.stop()
        job.send_signal(signal.SIGTERM)
        job.wait(30)


# --- hostile input and pseudonymisation (issue 13) -------------------------------------------
KEY = b"ingest-test-key"
NESTED = b"[" * 600 + b"1" + b"]" * 600  # orjson reads 1024 levels, writes only 254


def with_field(item: dict, key: str, json_text: bytes) -> bytes:
    """`item` as JSON text with `key` set to raw JSON text (orjson could not write it)."""
    return orjson.dumps(item)[:-1] + b"," + orjson.dumps(key) + b":" + json_text + b"}"


def input_messages(bootstrap: str, timeout: float = 30.0) -> list:
    """Every message on the input topics, read to the end of each partition."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ingest-test",
                         "enable.partition.eof": True, "enable.auto.commit": False})
    parts = [TopicPartition(t, p, -2) for t in INPUT_TOPICS for p in range(3)]
    consumer.assign(parts)
    messages, eof = [], set()
    deadline = time.monotonic() + timeout
    while len(eof) < len(parts) and time.monotonic() < deadline:
        for msg in consumer.consume(1000, 0.5):
            if msg.error():
                eof.add((msg.topic(), msg.partition()))
            else:
                messages.append(msg)
    consumer.close()
    assert len(eof) == len(parts), "end of the input topics not reached"
    return messages


def dead_letters(bootstrap: str) -> list[dict]:
    return [orjson.loads(m.value()) for m in consume_all(bootstrap, "mailflow.dlq")]


@pytest.fixture
def receiver_port(broker):
    """The port of a running `IngestServer`. Only the port is handed out: pytest keeps a test's
    fixture values until every teardown ran, and a live server would keep its producer
    connected, which holds up the broker's stop by its 5 s grace."""
    server = IngestServer(IngestCore(broker.bootstrap, {}, RecipientHasher(KEY)), port=0).start()
    yield server.port
    server.stop()


def test_a_poison_item_is_refused_alone_and_the_rest_of_the_batch_accepted(broker, receiver_port):
    now = time.time()
    event = {"type": "delivered", "ts": now - 60, "sender": "own.mta.example",
             "recipient": "c1@example.org", "message_id": "own-1"}
    canonical_body = b"[" + b",".join([
        orjson.dumps(event),
        orjson.dumps({**event, "message_id": "own-2", "note": "x\nann@example.com"}),
        with_field({**event, "message_id": "own-3"}, "extra", NESTED),
        orjson.dumps({**event, "message_id": "own-4"}),
    ]) + b"]"
    status, answer = post(receiver_port, "canonical", canonical_body)
    assert status == 200, answer
    assert answer["accepted"] == 3 and answer["rejected"] == 1
    assert answer["errors"] == [{"index": 2,
                                 "reason": "canonical: nested deeper than 64 levels"}]

    base = orjson.loads((SAMPLES / "sendgrid" / "delivered.json").read_bytes())[0]
    sendgrid_body = b"[" + b",".join([orjson.dumps(base), with_field(base, "event", NESTED),
                                      orjson.dumps({**base, "sg_event_id": "other"})]) + b"]"
    status, answer = post(receiver_port, "sendgrid", sendgrid_body)
    assert status == 200, answer
    assert answer["accepted"] == 2 and [e["index"] for e in answer["errors"]] == [1]
    assert answer["errors"][0]["reason"].startswith("sendgrid: malformed event")

    # a value the job's own text scrubber chokes on ("\n" then "@…" in JSON text) must
    # never reach the job: refused here (or accepted, once the job's parser copes)
    status, answer = post(receiver_port, "canonical", orjson.dumps([
        {**event, "message_id": "own-5", "note": "\n@example.com"},
        {**event, "message_id": "own-6"}]))
    assert status == 200 and answer["accepted"] + answer["rejected"] == 2, answer
    assert all(e["index"] == 0 for e in answer["errors"])

    dlq = dead_letters(broker.bootstrap)
    assert sorted({d["topic"] for d in dlq}) == ["webhook/canonical", "webhook/sendgrid"]
    assert all(d["error"] and d["raw"] for d in dlq)
    values = [m.value() for m in input_messages(broker.bootstrap)]
    assert len(values) == 5 + answer["accepted"]
    job = EventParser(RecipientHasher(KEY))
    assert all(isinstance(job.parse(v, "email.deliveries", 0, 0), Event) for v in values)
    # the address hidden behind an escape was scrubbed, not passed on (nor a crash)
    note = next(orjson.loads(v) for v in values if b"own-2" in v)["note"]
    assert note.startswith("x\nhash:") and "@" not in note


def test_recipients_are_hashed_before_kafka_and_keys_are_hashes(broker, receiver_port):
    hasher = RecipientHasher(KEY)
    now = time.time()
    original = {"type": "bounce", "ts": now - 60, "sender": "own.mta.example",
                "recipient": "Bob@Example.org", "message_id": "own-9", "smtp_code": 550,
                "diagnostic": "550 5.1.1 <bob@example.org>: user unknown",
                "url": "https://acme.example/u?e=bob@example.org",
                "custom": {"contact": "bob@example.org"}}
    status, answer = post(receiver_port, "canonical", orjson.dumps(original))
    assert (status, answer["accepted"]) == (200, 1), answer
    # SendGrid drops a message to an address that is no address: kept, hashed
    dropped = {**orjson.loads((SAMPLES / "sendgrid" / "dropped.json").read_bytes())[0],
               "email": "bob at example", "reason": "Invalid"}
    status, answer = post(receiver_port, "sendgrid", orjson.dumps([dropped]))
    assert (status, answer["accepted"]) == (200, 1), answer

    messages = input_messages(broker.bootstrap)
    assert len(messages) == 2
    for message in messages:  # (SendGrid's smtp-id, a Message-ID, keeps its "@")
        assert b"bob" not in message.value().lower() and b"bob" not in message.key().lower()
    by_type = {orjson.loads(m.value())["type"]: m for m in messages}
    bounce = orjson.loads(by_type["bounce"].value())
    assert "recipient" not in bounce
    assert bounce["recipient_hash"] == hasher.recipient("bob@example.org")
    assert by_type["bounce"].key() == hasher.recipient("bob@example.org").encode()
    assert bounce["recipient_domain"] == "example.org"
    assert bounce["diagnostic"].startswith("550 5.1.1 <hash:")
    # what the job reads is what it would have made of the raw event itself
    job = EventParser(RecipientHasher(KEY))
    from_ingest = job.parse(by_type["bounce"].value(), "email.bounces", 0, 0)
    from_raw = job.parse(orjson.dumps(original), "email.bounces", 0, 0)
    assert isinstance(from_ingest, Event) and isinstance(from_raw, Event)
    assert (from_ingest.recipient_hash, from_ingest.recipient_domain, from_ingest.domain) == \
        (from_raw.recipient_hash, from_raw.recipient_domain, from_raw.domain)
    assert from_ingest.event_id == from_raw.event_id  # stable across the edge and retries
    drop = orjson.loads(by_type["dropped"].value())
    assert drop["recipient_hash"] == hasher.recipient("bob at example")
    assert drop["recipient_domain"] == "invalid" and drop["recipient_invalid"] is True
    assert isinstance(job.parse(by_type["dropped"].value(), "email.deliveries", 0, 0), Event)


def test_ingest_refuses_to_start_without_the_hash_key():
    proc = mailflow_cmd("ingest", "--port", "0", env={"MAILFLOW_HASH_KEY": "",
                                                       "MAILFLOW_KAFKA_BROKERS": "127.0.0.1:9"},
                        check=False, timeout=60)
    assert proc.returncode == 2 and "MAILFLOW_HASH_KEY" in proc.stderr


def test_sns_subscriptions_are_confirmed_only_when_verified_and_from_an_allowed_topic(broker):
    from cryptography.hazmat.primitives.asymmetric import rsa

    from tests.test_providers_ses_sparkpost import NOW, _certificate, sign

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = _certificate(key)
    confirmation = orjson.loads((SAMPLES / "ses" / "sns_subscription_confirmation.json")
                                .read_bytes())
    topic, url = confirmation["TopicArn"], confirmation["SubscribeURL"]
    body = sign(confirmation, key)
    forged = orjson.dumps({**orjson.loads(body), "SubscribeURL": url + "&x=1"})
    visited: list[str] = []

    def confirm(address: str) -> bool:  # stands in for the visit to Amazon
        visited.append(address)
        return True

    base = {"ses_confirm_subscriptions": True, "confirm_subscription": confirm, "now": NOW,
            "fetch_cert": lambda _url: pem}
    cases = [  # (settings, body, status, confirmed, notice)
        ({}, body, 200, False, "SNS signatures are not verified"),
        ({"ses_verify_sns": True}, body, 200, False, "not in MAILFLOW_SES_TOPIC_ARNS"),
        ({"ses_verify_sns": True, "ses_topic_arns": ["arn:aws:sns:us-east-1:1:other"]}, body,
         403, False, None),
        ({"ses_verify_sns": True, "ses_topic_arns": [topic]}, forged, 403, False, None),
        ({"ses_verify_sns": True, "ses_topic_arns": [topic]}, body, 200, True, "confirmed"),
    ]
    for settings, request, status, confirmed, notice in cases:
        visited.clear()
        core = IngestCore(broker.bootstrap, {**base, **settings}, RecipientHasher(KEY))
        server = IngestServer(core, port=0).start()
        try:
            got, answer = post(server.port, "ses", request, query="")
        finally:
            server.stop()
        assert got == status, (settings, answer)
        assert visited == ([url] if confirmed else []), settings
        if notice:
            assert any(notice in n for n in answer["notices"]), answer


def test_mailgun_legacy_forms_are_accepted_and_replays_refused(broker):
    from tests.test_providers_sendgrid_mailgun_postmark import (
        LEGACY_KEY,
        legacy_fields,
        multipart,
        urlencoded,
    )

    now = time.time()
    stamp = str(int(now))
    config = {"mailgun_signing_key": LEGACY_KEY}
    server = IngestServer(IngestCore(broker.bootstrap, config, RecipientHasher(KEY)),
                          port=0).start()
    try:
        form = urlencoded(legacy_fields("delivered", token="f" * 50, timestamp=stamp))
        content = {"Content-Type": "application/x-www-form-urlencoded"}
        status, answer = post(server.port, "mailgun", form, query="", headers=content)
        assert (status, answer["accepted"]) == (200, 1), answer
        status, answer = post(server.port, "mailgun", form, query="", headers=content)
        assert status == 403 and "token already used" in answer["error"]
        body = multipart(legacy_fields("opened", token="m" * 50, timestamp=stamp,
                                       **{"message-id": "20251121100000.1.ABC@mg.acme.example"}),
                         boundary="b0undary")
        status, answer = post(server.port, "mailgun", body, query="", headers={
            "Content-Type": "multipart/form-data; boundary=b0undary"})
        assert (status, answer["accepted"]) == (200, 1), answer
    finally:
        server.stop()
    types = sorted(orjson.loads(m.value())["type"] for m in input_messages(broker.bootstrap))
    assert types == ["delivered", "open"]


def test_a_mailgun_request_kafka_did_not_take_can_be_retried():
    from mailflow.broker import free_port
    from tests.test_providers_sendgrid_mailgun_postmark import LEGACY_KEY, legacy_fields, urlencoded

    down = f"127.0.0.1:{free_port()}"  # nothing listens: Kafka never acknowledges
    core = IngestCore(down, {"mailgun_signing_key": LEGACY_KEY},
                      RecipientHasher(KEY), ack_timeout_s=1.0)
    server = IngestServer(core, port=0).start()
    try:
        form = urlencoded(legacy_fields("delivered", token="k" * 50,
                                        timestamp=str(int(time.time()))))
        status, answer = post(server.port, "mailgun", form, query="")
        assert status == 503, answer
        core.verify("mailgun", {}, form)  # the token was released: the retry is let in
    finally:
        server.stop()
