"""Raw replies through the real broker: `POST /v1/inbound/mime` and `mailflow replay` of
`.eml` and mbox files, read back from `email.replies` (and `mailflow.dlq`)."""

from __future__ import annotations

import mailbox
import urllib.error
import urllib.request

import orjson
import pytest

from mailflow.ingest import IngestCore, IngestServer
from schemas.events import Event, EventParser
from schemas.hashing import DEV_HASH_KEY, RecipientHasher
from tests.conftest import consume_all, mailflow_cmd

pytestmark = pytest.mark.integration

HASHER = RecipientHasher(DEV_HASH_KEY)


def mail(n: int, extra: str = "", body: str = "Yes, please send the pricing.") -> bytes:
    return (f"From: Ann Example <ann{n}@example.com>\r\nTo: reply@news.acme.example\r\n"
            f"Subject: =?utf-8?q?Re:_Angebot_f=C3=BCr_Sie?=\r\n"
            f"Date: Sat, 21 Nov 2026 10:00:0{n % 10} +0000\r\n"
            f"Message-ID: <r-{n}@mail.example.com>\r\nIn-Reply-To: <m-{n}@acme.example>\r\n"
            f"{extra}\r\n{body} Write to ann{n}@example.com.\r\n").encode()


def post(port: int, body: bytes, query: str = "", token: str = "",
         ctype: str = "message/rfc822") -> tuple[int, dict]:
    headers = {"Content-Type": ctype, **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/inbound/mime{query}",
                                     data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def replies(bootstrap: str) -> list[dict]:
    return [orjson.loads(m.value()) for m in consume_all(bootstrap, "email.replies")]


def test_a_posted_mime_reply_lands_on_email_replies_pseudonymised(broker):
    core = IngestCore(broker.bootstrap, {}, HASHER)
    server = IngestServer(core, port=0, token="s3cret").start()
    try:
        raw = mail(1, "Auto-Submitted: auto-replied\r\n")
        assert post(server.port, raw)[0] == 401  # the ingest token guards it
        assert post(server.port, raw, token="s3cret", ctype="application/json")[0] == 415
        status, answer = post(server.port, raw, token="s3cret")
        assert (status, answer["accepted"]) == (200, 1)
        status, _ = post(server.port, raw, "?sender=tenant-7", token="s3cret",
                         ctype="application/octet-stream")
        assert status == 200
        status, answer = post(server.port, b"\x00\x01 not a mail", token="s3cret")
        assert status == 400 and "mime:" in answer["error"]
    finally:
        server.stop()

    events = replies(broker.bootstrap)
    assert len(events) == 2
    first = next(e for e in events if e["sender"] == "news.acme.example")
    assert first["message_id"] == "m-1@acme.example"
    assert first["reply_id"] == "r-1@mail.example.com"
    assert first["subject"] == "Re: Angebot für Sie"
    assert first["headers"]["Auto-Submitted"] == "auto-replied"
    assert first["recipient_hash"] == HASHER.recipient("ann1@example.com")
    assert "recipient" not in first
    assert "ann1@example.com" not in orjson.dumps(first).decode()  # scrubbed from the body
    assert {e["sender"] for e in events} == {"news.acme.example", "tenant-7"}
    assert len({e["event_id"] for e in events}) == 1  # a re-post is the same reply

    # what the job reads: a reply with its fields
    parsed = EventParser(HASHER).parse(orjson.dumps(first), "email.replies", 0, 0)
    assert isinstance(parsed, Event) and "body" not in parsed.attrs  # read, then dropped
    assert parsed.attrs["reply"].verdict.auto  # Auto-Submitted: auto-replied

    dead = [orjson.loads(m.value()) for m in consume_all(broker.bootstrap, "mailflow.dlq")]
    assert [d["topic"] for d in dead] == ["webhook/mime"]
    assert dead[0]["error"] == "mime: no header section (not an RFC 5322 message)"


def test_replay_of_an_eml_and_an_mbox_file(broker, tmp_path):
    env = {"MAILFLOW_KAFKA_BROKERS": broker.bootstrap, "MAILFLOW_DATA_DIR": str(tmp_path),
           "MAILFLOW_HASH_KEY": "replay-test-key"}
    eml = tmp_path / "one.eml"
    eml.write_bytes(mail(1))
    out = mailflow_cmd("replay", str(eml), env=env)
    assert "1 events accepted, 0 rejected" in out.stderr

    box = mailbox.mbox(tmp_path / "inbox.mbox")
    for n in range(2, 6):
        box.add(mail(n, body="From the team: fine.\r\n>From here on"))
    box.add(b"Subject: no sender, no thread\r\n\r\nhello\r\n")  # a dead letter
    box.flush()
    box.close()
    out = mailflow_cmd("replay", str(tmp_path / "inbox.mbox"), "--sender", "acme", env=env)
    assert "4 events accepted, 1 rejected" in out.stderr

    named = tmp_path / "reply-without-extension"  # named with --provider mime
    named.write_bytes(mail(6))
    out = mailflow_cmd("replay", str(named), "--provider", "mime", env=env)
    assert "1 events accepted, 0 rejected" in out.stderr

    events = replies(broker.bootstrap)
    assert sorted(e["reply_id"] for e in events) == [f"r-{n}@mail.example.com"
                                                     for n in range(1, 7)]
    assert {e["sender"] for e in events if e["reply_id"][2] in "2345"} == {"acme"}
    dead = [orjson.loads(m.value()) for m in consume_all(broker.bootstrap, "mailflow.dlq")]
    assert [d["error"] for d in dead] == ["mime: no From address"]
