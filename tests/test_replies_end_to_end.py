"""Replies end to end: deliveries on the broker, raw replies through `POST /v1/inbound/mime`
and canonical replies on `email.replies`, the helpdesk's feedback on
`email.reply_feedback` → `mailflow run` → `mailflow.routes`, `mailflow.suppressions`
(holds with `until`), and the `replies` / `reply_feedback` tables and KPI views."""

from __future__ import annotations

from email.utils import formatdate

import orjson
import pytest
from confluent_kafka import Producer

from mailflow.ingest import IngestCore, IngestServer
from schemas.hashing import DEV_HASH_KEY, RecipientHasher
from sinks.client import RouteLog, ThrottleClient
from tests.conftest import consume_all, mailflow_cmd, query_store
from tests.test_mime_ingest import post

pytestmark = pytest.mark.integration

HASHER = RecipientHasher(DEV_HASH_KEY)
T0 = 1_795_000_000  # 2026-11-18 (a Wednesday), epoch seconds
SENDER = "news.acme.example"


def delivered(n: int, ts: int) -> dict:
    return {"type": "delivered", "ts": ts, "sender": SENDER, "recipient": f"p{n}@example.com",
            "message_id": f"m-{n}@acme.example", "campaign_id": "winter",
            "flow_id": "welcome"}


def mime(n: int, body: str, headers: str = "", in_reply_to: bool = True,
         subject: str = "Re: Our winter offer") -> bytes:
    return (f"From: Person {n} <p{n}@example.com>\r\nTo: reply@news.acme.example\r\n"
            f"Subject: {subject}\r\nDate: {formatdate(T0 + 300 + n, usegmt=True)}\r\n"
            f"Message-ID: <r-{n}@mail.example.com>\r\n"
            + (f"In-Reply-To: <m-{n}@acme.example>\r\n" if in_reply_to else "")
            + f"{headers}\r\n{body} Greetings from Ulaanbaatar.\r\n").encode()


def produce(bootstrap: str, topic: str, events: list[dict]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for event in events:
        producer.produce(topic, orjson.dumps(event))
    assert producer.flush(30) == 0


def test_replies_are_routed_suppressed_held_and_counted(broker, tmp_path):
    produce(broker.bootstrap, "email.deliveries", [delivered(n, T0 + n) for n in range(1, 7)])
    core = IngestCore(broker.bootstrap, {}, HASHER)
    server = IngestServer(core, port=0, token="s3cret").start()
    try:
        for raw in (
            mime(1, "Thank you for your message. I am out of the office until 18 December "
                    "2026 with limited access to email.", "Auto-Submitted: auto-replied\r\n",
                 subject="Automatic reply: Our winter offer"),
            mime(2, "Please remove me from your mailing list. Unsubscribe me now."),
            mime(3, "Sounds good - can you send me the pricing for 50 seats? Let's schedule "
                    "a call next week."),
            mime(4, "Hallo, meine Bestellung 4711-2233 ist immer noch nicht angekommen. "
                    "Wann wird sie geliefert?"),
            # names no message: still read and routed (flow unknown)
            mime(6, "Sounds good, please send me the pricing.", in_reply_to=False),
        ):
            status, answer = post(server.port, raw, token="s3cret")
            assert status == 200, answer
    finally:
        server.stop()
        core.close()
    # a canonical reply with its raw text on the input topic: the contact is read raw
    produce(broker.bootstrap, "email.replies", [{
        "type": "reply", "ts": T0 + 600, "sender": SENDER, "recipient": "p5@example.com",
        "message_id": "<m-5@acme.example>", "reply_id": "<r-5@mail.example.com>",
        "subject": "Re: Our winter offer",
        "body": "I'm not the right person for this. Please contact jane.doe@example.com "
                "instead, she handles purchasing.\n\nOn Wed, 18 Nov 2026 Acme wrote:\n"
                "> Unsubscribe here: https://acme.example/u/123",
        "headers": {}}])
    # the helpdesk: the support question answered and resolved; the pricing request
    # reassigned to another queue
    produce(broker.bootstrap, "email.reply_feedback", [
        {"reply_id": "r-4@mail.example.com", "ts": T0 + 4000, "action": "first_response"},
        {"reply_id": "r-4@mail.example.com", "ts": T0 + 9000, "action": "resolved"},
        {"reply_id": "r-3@mail.example.com", "ts": T0 + 5000, "action": "reassigned",
         "queue": "partners"},
        {"reply_id": "unknown@x", "ts": T0 + 5000, "action": "resolved"},
    ])
    # later traffic moves event time on past every reply
    produce(broker.bootstrap, "email.deliveries", [delivered(9, T0 + 20_000)])

    data_dir = tmp_path / "data"
    env = {"MAILFLOW_KAFKA_BROKERS": broker.bootstrap, "MAILFLOW_DATA_DIR": str(data_dir),
           "MAILFLOW_ADMIN_PORT": "0"}
    job = mailflow_cmd("run", "--dev", "--no-tail", env=env)
    # counted, never silently dropped: the feedback about a reply nobody sent waits
    assert "1 feedback about unseen replies" in job.stderr + job.stdout

    routes = {orjson.loads(m.value())["reply_id"]: orjson.loads(m.value())
              for m in consume_all(broker.bootstrap, "mailflow.routes")}
    assert len(routes) == 6
    by_person = {n: routes[f"r-{n}@mail.example.com"] for n in (1, 2, 3, 4, 6)}
    by_person[5] = routes["<r-5@mail.example.com>"]
    h = {n: HASHER.recipient(f"p{n}@example.com") for n in range(1, 7)}

    ooo = by_person[1]
    assert (ooo["intent"], ooo["auto"], ooo["until"], ooo["queue"]) == (
        "out_of_office", True, "2026-12-19", None)
    assert ooo["actions"] == ["hold"] and ooo["flow_id"] == "welcome"
    assert ooo["campaign_id"] == "winter" and ooo["recipient_hash"] == h[1]
    unsub = by_person[2]
    assert unsub["intent"] == "unsubscribe_request" and unsub["actions"] == ["suppress"]
    assert by_person[3]["intent"] == "interested" and by_person[3]["queue"] == "sales"
    assert by_person[3]["priority"] > 0 and "route" in by_person[3]["actions"]
    assert by_person[4]["intent"] == "support_question" and by_person[4]["queue"] == "support"
    assert by_person[4]["language"] == "de" and by_person[4]["references"]
    wrong = by_person[5]
    assert wrong["intent"] == "wrong_person" and "suppress" in wrong["actions"]
    assert wrong["new_contact"] == "jane.doe@example.com"  # the route's consumer only
    assert wrong["new_contact_hash"] == HASHER.recipient("jane.doe@example.com")
    assert wrong["flow_id"] == "welcome"  # <m-5@…> joined to the delivered m-5@…
    unknown = by_person[6]
    assert unknown["message_id"] is None and unknown["flow_id"] is None
    assert unknown["intent"] == "interested"
    for route in routes.values():
        assert "@" not in route["explanation"] and route["event_ts"]
        assert set(route["scores"]) and 0 <= route["confidence"] <= 1

    suppressions = [orjson.loads(m.value())
                    for m in consume_all(broker.bootstrap, "mailflow.suppressions")]
    by_hash = {s["recipient_hash"]: s for s in suppressions}
    assert by_hash[h[1]]["reason"] == "out_of_office" and by_hash[h[1]]["until"] == "2026-12-19"
    assert by_hash[h[2]]["reason"] == "reply_unsubscribe" and "until" not in by_hash[h[2]]
    assert by_hash[h[5]]["reason"] == "wrong_person"
    assert h[3] not in by_hash and h[4] not in by_hash

    rows = query_store(data_dir, "SELECT reply_id, intent, queue, return_date, actions, "
                                 "explanation, new_contact_hash FROM mailflow.replies FINAL "
                                 "ORDER BY reply_id")
    assert len(rows) == 6
    stored = repr(query_store(data_dir, "SELECT * FROM mailflow.replies FINAL"))
    stored += repr(query_store(data_dir, "SELECT attrs FROM mailflow.events FINAL "
                                         "WHERE type = 'reply'"))
    for secret in ("jane.doe", "50 seats", "Ulaanbaatar", "@example.com", "4711-2233",
                   "December"):
        assert secret not in stored, secret  # no body, no address, at rest
    held = query_store(data_dir, "SELECT reason, until FROM mailflow.suppressions FINAL "
                                 f"WHERE recipient_hash = '{h[1]}'")
    assert [(r, str(u)) for r, u in held] == [("out_of_office", "2026-12-19")]

    feedback = query_store(data_dir, "SELECT reply_id, action, queue, routed_queue, latency_s "
                                     "FROM mailflow.reply_feedback FINAL ORDER BY ts, action")
    assert ("r-3@mail.example.com", "reassigned", "partners", "sales", 5000.0 - 303) \
        in feedback  # latency from the reply's own time
    assert [f[1] for f in feedback if f[0] == "r-4@mail.example.com"] == [
        "first_response", "resolved"]
    assert all(f[0] != "unknown@x" for f in feedback)  # feedback for no known reply: no row
    kpis = {r[0]: r for r in query_store(
        data_dir, "SELECT queue, replies, automation_rate, routing_accuracy, "
                  "first_response_p50_s, resolution_p50_s FROM mailflow.reply_queue_daily")}
    assert kpis["sales"][1] == 3 and kpis["sales"][3] == pytest.approx(2 / 3)  # 1 reassigned
    assert kpis[""][2] == 1.0  # handled without a person
    assert kpis["support"][4] > 0 and kpis["support"][5] > kpis["support"][4]
    rates = query_store(data_dir, "SELECT campaign_id, flow_id, delivered, human_replies, "
                                  "positive_replies FROM mailflow.reply_rates "
                                  "WHERE campaign_id = 'winter'")
    assert sum(r[2] for r in rates) == 7 and sum(r[4] for r in rates) == 1
    assert sum(r[3] for r in rates) == 4  # the out-of-office is not a person's reply

    # the sending side: may_send answers "not now, until …" during the hold, then yes
    client = ThrottleClient(broker.bootstrap, hash_key=DEV_HASH_KEY, routes=RouteLog()).start()
    try:
        assert client.wait_ready(60)
        during = client.may_send(SENDER, "p1@example.com", now=T0 + 3600)
        assert (during.allowed, during.reason, during.until, during.hold) == (
            False, "out_of_office", "2026-12-19", True)
        after = client.may_send(SENDER, "p1@example.com", now=T0 + 40 * 86_400)
        assert after.allowed and not after.suppressed
        gone = client.may_send(SENDER, "p2@example.com", now=T0 + 40 * 86_400)
        assert not gone.allowed and gone.suppression_reason == "reply_unsubscribe"
        assert client.may_send(SENDER, "p3@example.com", now=T0 + 3600).allowed
        sales = orjson.loads(orjson.dumps(client.newest_routes("sales")))
        assert {r["reply_id"] for r in sales} == {"r-3@mail.example.com", "r-6@mail.example.com",
                                                  "<r-5@mail.example.com>"}
    finally:
        client.close()
