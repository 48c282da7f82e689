"""SendGrid, Mailgun and Postmark webhooks -> canonical v1 events the job accepts.

The samples in tests/samples/<provider>/ follow each provider's documented webhook
examples (real field names and shapes; addresses, ids and IPs replaced).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from operators.bounces import classify_bounce
from schemas.events import Event, EventParser
from schemas.hashing import RecipientHasher
from schemas.providers import mailgun, postmark, sendgrid
from schemas.providers.base import PayloadError, ReplayGuard, RetryLater, SignatureError

SAMPLES = Path(__file__).resolve().parent / "samples"
PARSER = EventParser(RecipientHasher(b"k"), now=lambda: 2_000_000_000.0)
PARAMS = {"sender": "news.acme.example"}


def sample(provider: str, name: str) -> bytes:
    return (SAMPLES / provider / f"{name}.json").read_bytes()


def parsed(event: dict[str, Any]) -> Event:
    """The job's own parser must accept what an adapter emits."""
    result = PARSER.parse(orjson.dumps(event), "email.webhooks", 0, 0)
    assert isinstance(result, Event), result
    return result


def only_event(mapped) -> dict[str, Any]:
    assert mapped.rejected == []
    assert len(mapped.events) == 1
    return mapped.events[0]


def bounce_class(ev: Event) -> str:
    return classify_bounce(ev.smtp_code, ev.smtp_status, ev.diagnostic, ev.bounce_kind)


def test_every_sample_maps_to_events_the_job_accepts() -> None:
    for adapter in (sendgrid, mailgun, postmark):
        files = sorted((SAMPLES / adapter.NAME).glob("*.json"))
        assert len(files) >= 10
        for path in files:
            mapped = adapter.map_payload(path.read_bytes(), PARAMS)
            assert mapped.events or mapped.rejected, path
            for event in mapped.events:
                ev = parsed(event)
                assert ev.sender and ev.message_id and ev.event_id
                assert ev.attrs["provider"] == adapter.NAME
                assert ev.attrs["provider_message_id"]
                assert ev.attrs["provider_event"]


# --- SendGrid ------------------------------------------------------------------------------
SG_MESSAGE = "ZRdmVUc0QUiyzjWeuq6ZrQ"


@pytest.mark.parametrize("name, kind, recipient, message_id, code, status, klass", [
    ("processed", "sent", "ann.lee@gmail.com", SG_MESSAGE, 0, "", None),
    ("delivered", "delivered", "ann.lee@gmail.com", SG_MESSAGE, 250, "2.0.0", None),
    ("deferred", "deferred", "b.mueller@outlook.com", "pQ3kd9SxT4uU1tB7yZ0aWw", 451, "4.7.650",
     "rate_limit"),
    ("bounce", "bounce", "no.such.user@gmail.com", "Xy7bKq2mTg6fV0aRzL9wNA", 550, "5.1.1",
     "hard"),
    ("blocked", "bounce", "carl@hotmail.com", "Hd8sPq0LRUuC4mZ1bN6xTg", 550, "5.7.1", "block"),
    ("dropped", "dropped", "no.such.user@gmail.com", "Lm2nQz8eRk-3Vb1cXw5yUA", 0, "5.0.0", None),
    ("open", "open", "ann.lee@gmail.com", SG_MESSAGE, 0, "", None),
    ("click", "click", "ann.lee@gmail.com", SG_MESSAGE, 0, "", None),
    ("spamreport", "complaint", "dora@yahoo.com", "Tq4vWc1zSp-8Nk2mGh7jRA", 0, "", None),
    ("unsubscribe", "unsubscribe", "erik@web.de", "Wk9fRt2bQa-6Vc0Nz3yHsA", 0, "", None),
    ("group_unsubscribe", "unsubscribe", "fiona@icloud.com", "Jc5xPl7rTe-2Mb8kDs4fWQ", 0, "",
     None),
])
def test_sendgrid_event_kinds(name: str, kind: str, recipient: str, message_id: str, code: int,
                              status: str, klass: str | None) -> None:
    raw_item = orjson.loads(sample("sendgrid", name))[0]
    event = only_event(sendgrid.map_payload(sample("sendgrid", name), PARAMS))
    assert event["recipient"] == recipient
    assert event["ts"] == raw_item["timestamp"]
    assert event["event_id"] == raw_item["sg_event_id"]
    assert event["provider_event"] == ("bounce" if name == "blocked" else name)
    # the X-Message-Id joins events; the full sg_message_id is kept
    assert event["provider_message_id"] == raw_item["sg_message_id"]
    assert event["provider_message_id"].startswith(message_id + ".filterdrecv-")
    ev = parsed(event)
    assert (ev.type, ev.message_id, ev.smtp_code, ev.smtp_status) == (kind, message_id, code,
                                                                      status)
    if klass is not None:
        assert bounce_class(ev) == klass


def test_sendgrid_bounce_keeps_provider_class_and_reply() -> None:
    blocked = parsed(only_event(sendgrid.map_payload(sample("sendgrid", "blocked"), {})))
    assert blocked.bounce_kind == "blocked"
    assert "block list (S3150)" in blocked.diagnostic
    assert blocked.attrs["bounce_classification"] == "Reputation"
    bounce = parsed(only_event(sendgrid.map_payload(sample("sendgrid", "bounce"), {})))
    assert bounce.bounce_kind == "bounce"
    assert bounce.diagnostic.startswith("550 5.1.1 The email account")
    dropped = parsed(only_event(sendgrid.map_payload(sample("sendgrid", "dropped"), PARAMS)))
    assert (dropped.diagnostic, dropped.bounce_kind) == ("Bounced Address", "")


def test_sendgrid_generic_status_gives_way_to_the_specific_one_in_the_reply() -> None:
    body = orjson.dumps([{**orjson.loads(sample("sendgrid", "blocked"))[0], "status": "5.0.0"}])
    ev = parsed(only_event(sendgrid.map_payload(body, PARAMS)))
    assert ev.smtp_status == "5.7.1"


def test_sendgrid_custom_args_and_engagement_context() -> None:
    opened = parsed(only_event(sendgrid.map_payload(sample("sendgrid", "open"), {})))
    assert (opened.sender, opened.campaign_id, opened.flow_id, opened.variant) == (
        "news.acme.example", "welcome-2025-11", "onboarding", "B")
    assert opened.user_agent.startswith("Mozilla/5.0 (Windows NT 10.0")
    assert opened.ip == "198.51.100.23"
    assert opened.attrs["machine_open"] is False
    assert opened.attrs["tags"] == ["welcome", "onboarding"]
    click = parsed(only_event(sendgrid.map_payload(sample("sendgrid", "click"), {})))
    assert click.url == "https://shop.acme.example/start?utm_source=email"
    group = parsed(only_event(sendgrid.map_payload(sample("sendgrid", "group_unsubscribe"), {})))
    assert group.attrs["asm_group_id"] == 10
    # on delivery events SendGrid's `ip` is its own sending IP, not a reader's
    delivered = parsed(only_event(sendgrid.map_payload(sample("sendgrid", "delivered"), {})))
    assert delivered.ip == "" and delivered.attrs["sending_ip"] == "149.72.123.24"
    deferred = parsed(only_event(sendgrid.map_payload(sample("sendgrid", "deferred"), PARAMS)))
    assert deferred.attrs["attempt"] == 2


def test_sendgrid_sender_from_custom_arg_then_url_then_rejected() -> None:
    own = only_event(sendgrid.map_payload(sample("sendgrid", "open"), {"sender": "other"}))
    assert own["sender"] == "news.acme.example"  # the message's own custom arg wins
    from_url = only_event(sendgrid.map_payload(sample("sendgrid", "dropped"), {"sender": "pool"}))
    assert from_url["sender"] == "pool"
    mapped = sendgrid.map_payload(sample("sendgrid", "dropped"), {})
    assert mapped.events == []
    reason, raw = mapped.rejected[0]
    assert reason.startswith("sendgrid: no sender: add ?sender=")
    assert orjson.loads(raw) == orjson.loads(sample("sendgrid", "dropped"))[0]


def test_sendgrid_batch_maps_good_items_and_rejects_bad_ones() -> None:
    good = [orjson.loads(p.read_bytes())[0] for p in sorted((SAMPLES / "sendgrid").glob("*.json"))]
    base = orjson.loads(sample("sendgrid", "delivered"))[0]
    bad = [
        "not an object",
        {**base, "event": "machine_learning"},
        {k: v for k, v in base.items() if k != "email"},
        {k: v for k, v in base.items() if k != "timestamp"},
        {k: v for k, v in base.items() if k not in ("sg_message_id", "smtp-id")},
        {**base, "sg_message_id": {"oops": 1}, "smtp-id": None},
    ]
    mapped = sendgrid.map_payload(orjson.dumps(good + bad), PARAMS)
    assert len(mapped.events) == len(good) - 1  # group_resubscribe is no event
    for event in mapped.events:
        parsed(event)
    reasons = [reason for reason, _ in mapped.rejected]
    assert reasons == [
        "sendgrid: group_resubscribe: resubscribe to an unsubscribe group: not an event type",
        "sendgrid: event is not a JSON object",
        "sendgrid: unknown event 'machine_learning'",
        "sendgrid: delivered event without email (recipient)",
        "sendgrid: delivered event without timestamp",
        "sendgrid: delivered event without sg_message_id or smtp-id",
        "sendgrid: delivered event without sg_message_id or smtp-id",
    ]
    assert orjson.loads(mapped.rejected[1][1]) == "not an object"


NEST = 600  # orjson reads JSON up to 1024 levels deep but writes only 254


def nested(levels: int = NEST) -> bytes:
    """JSON text nested `levels` deep, as a hostile body may hold."""
    return b"[" * levels + b"1" + b"]" * levels


def with_field(item: dict[str, Any], key: str, json_text: bytes) -> bytes:
    """`item` as JSON text with `key` set to raw JSON text (orjson could not write it)."""
    rest = orjson.dumps({k: v for k, v in item.items() if k != key})
    return rest[:-1] + b"," + orjson.dumps(key) + b":" + json_text + b"}"


def test_sendgrid_poison_items_are_refused_alone_with_their_index(monkeypatch) -> None:
    base = orjson.loads(sample("sendgrid", "delivered"))[0]
    items = [orjson.dumps(base), with_field(base, "event", nested()),
             with_field(base, "sg_message_id", nested()),
             orjson.dumps({**base, "sg_event_id": "boom"}), orjson.dumps(base)]
    real = sendgrid._map_event

    def buggy(item: Any, params: Any) -> dict[str, Any]:  # a bug nobody foresaw
        if isinstance(item, dict) and item.get("sg_event_id") == "boom":
            raise RuntimeError("adapter bug")
        return real(item, params)

    monkeypatch.setattr(sendgrid, "_map_event", buggy)
    mapped = sendgrid.map_payload(b"[" + b",".join(items) + b"]", PARAMS)
    # a deep field the adapter does not need is ignored (smtp-id names the message)
    assert len(mapped.events) == 3 and mapped.event_items == [0, 2, 4]
    assert mapped.rejected_items == [1, 3]
    reasons = [reason for reason, _ in mapped.rejected]
    assert reasons[0] == "sendgrid: malformed event: unhashable type: 'list'"
    assert reasons[1] == "sendgrid: cannot map event: RuntimeError: adapter bug"
    assert mapped.rejected[0][1].startswith(b'{"email":')  # kept for the dead letter


def test_mailgun_and_postmark_items_that_make_the_adapter_raise_are_dead_letters() -> None:
    body = orjson.loads(sample("mailgun", "delivered"))
    text = with_field(body, "event-data",
                      with_field(body["event-data"], "user-variables",
                                 b'{"sender":' + nested() + b"}"))
    mapped = mailgun.map_payload(text, {})
    assert mapped.events == [] and mapped.rejected_items == [0]
    assert mapped.rejected[0][0].startswith("mailgun: no sender")
    assert mapped.rejected[0][1].startswith(b'{"id":')  # the item, for the dead letter
    record = orjson.loads(sample("postmark", "delivery"))
    mapped = postmark.map_payload(with_field(record, "Metadata", b'{"sender":' + nested() + b"}"),
                                  {})
    assert mapped.events == [] and mapped.rejected_items == [0]
    assert mapped.rejected[0][0].startswith("postmark: no sender")


def test_sendgrid_account_events_are_refused_with_what_they_are() -> None:
    item = {"event": "account_status_change", "sg_event_id": "MjMzNDE", "timestamp": 1763719203,
            "type": "compliance_suspend"}
    mapped = sendgrid.map_payload(orjson.dumps([item]), PARAMS)
    assert mapped.events == []
    assert mapped.rejected[0][0].startswith("sendgrid: account_status_change: an account event")


def test_sendgrid_falls_back_to_smtp_id_and_derives_a_stable_event_id() -> None:
    base = orjson.loads(sample("sendgrid", "spamreport"))[0]
    item = {k: v for k, v in base.items() if k not in ("sg_message_id", "sg_event_id")}
    first = only_event(sendgrid.map_payload(orjson.dumps([item]), PARAMS))
    again = only_event(sendgrid.map_payload(orjson.dumps([item]), PARAMS))
    assert first["message_id"] == "Tq4vWc1zSp-8Nk2mGh7jRA@geopod-ismtpd-0-4"
    assert first["event_id"] == again["event_id"] and first["event_id"].startswith("sendgrid:")


@pytest.mark.parametrize("body", [b"", b"not json", b'{"event": "open"}', b"42"])
def test_sendgrid_body_that_is_no_event_array_raises(body: bytes) -> None:
    with pytest.raises(PayloadError, match="sendgrid"):
        sendgrid.map_payload(body, PARAMS)


def _sendgrid_keys() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(der).decode()  # as SendGrid's settings page shows it


def _sendgrid_headers(private: ec.EllipticCurvePrivateKey, timestamp: str,
                      body: bytes) -> dict[str, str]:
    signature = private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp}


def test_sendgrid_signature() -> None:
    private, public = _sendgrid_keys()
    body = sample("sendgrid", "delivered")
    now = 1_763_719_210.0
    config = {"sendgrid_public_key": public, "now": now}
    headers = _sendgrid_headers(private, "1763719205", body)
    sendgrid.verify(headers, body, config)  # valid
    sendgrid.verify({k.lower(): v for k, v in headers.items()}, body, config)  # any case
    pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    sendgrid.verify(headers, body, {**config, "sendgrid_public_key": pem.decode()})
    with pytest.raises(SignatureError, match="does not match"):  # tampered body
        sendgrid.verify(headers, body.replace(b"delivered", b"bounce"), config)
    with pytest.raises(SignatureError, match="does not match"):  # timestamp swapped
        sendgrid.verify({**headers, "X-Twilio-Email-Event-Webhook-Timestamp": "1763719206"},
                        body, config)
    other, _ = _sendgrid_keys()  # signed with another key
    with pytest.raises(SignatureError, match="does not match"):
        sendgrid.verify(_sendgrid_headers(other, "1763719205", body), body, config)
    with pytest.raises(SignatureError, match="malformed"):
        sendgrid.verify({**headers, "X-Twilio-Email-Event-Webhook-Signature": "%%%"}, body,
                        config)
    with pytest.raises(SignatureError, match="missing"):
        sendgrid.verify({}, body, config)
    stale = _sendgrid_headers(private, str(int(now) - 3600), body)  # an hour-old replay
    with pytest.raises(SignatureError, match="stale"):
        sendgrid.verify(stale, body, config)
    sendgrid.verify({}, body, {})  # no key configured: verification is off


def test_sendgrid_bad_public_key_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="sendgrid_public_key"):
        sendgrid.verify({"X-Twilio-Email-Event-Webhook-Signature": "MEUCIQ==",
                         "X-Twilio-Email-Event-Webhook-Timestamp": "1"}, b"[]",
                        {"sendgrid_public_key": "bm90IGEga2V5"})


# --- Mailgun -------------------------------------------------------------------------------
MG_WELCOME = "20251121100000.1a2b3c4d5e6f7a8b@mg.acme.example"


@pytest.mark.parametrize("name, kind, recipient, message_id, code, status, klass", [
    ("accepted", "sent", "ann.lee@gmail.com", MG_WELCOME, 0, "", None),
    ("delivered", "delivered", "ann.lee@gmail.com", MG_WELCOME, 250, "", None),
    ("failed_permanent", "bounce", "no.such.user@gmail.com",
     "20251121100200.9f8e7d6c5b4a3f2e@mg.acme.example", 550, "5.1.1", "hard"),
    ("failed_espblock", "bounce", "carl@hotmail.com",
     "20251121100210.0a1b2c3d4e5f6a7b@mg.acme.example", 550, "5.7.1", "block"),
    ("failed_temporary", "deferred", "full.box@gmail.com",
     "20251121100100.5e4d3c2b1a0f9e8d@mg.acme.example", 452, "4.2.2", "soft"),
    ("failed_suppress_bounce", "dropped", "no.such.user@gmail.com",
     "20251122100000.7b6a5f4e3d2c1b0a@mg.acme.example", 0, "", None),
    ("rejected", "dropped", "gus@example.org",
     "20251122100100.3c2b1a0f9e8d7c6b@mg.acme.example", 0, "", None),
    ("opened", "open", "ann.lee@gmail.com", MG_WELCOME, 0, "", None),
    ("clicked", "click", "ann.lee@gmail.com", MG_WELCOME, 0, "", None),
    ("unsubscribed", "unsubscribe", "erik@web.de",
     "20251121100300.2b3c4d5e6f7a8b9c@mg.acme.example", 0, "", None),
    ("complained", "complaint", "dora@yahoo.com",
     "20251121100400.3c4d5e6f7a8b9c0d@mg.acme.example", 0, "", None),
])
def test_mailgun_event_kinds(name: str, kind: str, recipient: str, message_id: str, code: int,
                             status: str, klass: str | None) -> None:
    data = orjson.loads(sample("mailgun", name))["event-data"]
    event = only_event(mailgun.map_payload(sample("mailgun", name), PARAMS))
    assert event["recipient"] == recipient
    assert event["ts"] == data["timestamp"]
    assert event["event_id"] == data["id"]
    assert event["provider_event"] == data["event"]
    assert event["provider_message_id"] == data["message"]["headers"]["message-id"]
    ev = parsed(event)
    assert (ev.type, ev.message_id, ev.smtp_code, ev.smtp_status) == (kind, message_id, code,
                                                                      status)
    if klass is not None:
        assert bounce_class(ev) == klass


def test_mailgun_delivery_status_and_context() -> None:
    bounce = parsed(only_event(mailgun.map_payload(sample("mailgun", "failed_permanent"),
                                                   PARAMS)))
    assert bounce.bounce_kind == "permanent/bounce"
    assert bounce.diagnostic.startswith("5.1.1 The email account that you tried to reach")
    assert bounce.attrs["sending_ip"] == "209.61.151.22"
    assert bounce.attrs["sending_domain"] == "mg.acme.example"
    assert bounce.campaign_id == "digest-2025-47"
    deferred = parsed(only_event(mailgun.map_payload(sample("mailgun", "failed_temporary"), {})))
    assert deferred.bounce_kind == "temporary/generic"
    # a suppressed address: Mailgun never tried, so it is no bounce; 605 is no SMTP code
    dropped = parsed(only_event(mailgun.map_payload(sample("mailgun", "failed_suppress_bounce"),
                                                    {})))
    assert dropped.attrs["provider_code"] == 605
    assert dropped.diagnostic == "Not delivering to previously bounced address"
    rejected = parsed(only_event(mailgun.map_payload(sample("mailgun", "rejected"), {})))
    assert rejected.diagnostic.startswith("Sandbox subdomains are for test purposes only")
    opened = parsed(only_event(mailgun.map_payload(sample("mailgun", "opened"), {})))
    assert (opened.sender, opened.campaign_id, opened.flow_id, opened.variant) == (
        "news.acme.example", "welcome-2025-11", "onboarding", "B")
    assert opened.ip == "198.51.100.23" and opened.user_agent.startswith("Mozilla/5.0")
    assert (opened.attrs["client_type"], opened.attrs["device_type"]) == ("browser", "desktop")
    assert opened.attrs["tags"] == ["welcome"]
    clicked = parsed(only_event(mailgun.map_payload(sample("mailgun", "clicked"), {})))
    assert clicked.url == "https://shop.acme.example/start?utm_source=email"


def test_mailgun_rejects_what_it_cannot_map() -> None:
    mapped = mailgun.map_payload(sample("mailgun", "stored"), PARAMS)
    assert mapped.events == [] and mapped.rejected[0][0] == "mailgun: unknown event 'stored'"
    assert orjson.loads(mapped.rejected[0][1])["event"] == "stored"

    payload = orjson.loads(sample("mailgun", "failed_permanent"))
    data = payload["event-data"]
    cases = {
        "mailgun: no sender: add ?sender=": ({**data}, {}),
        "mailgun: failed event with unknown severity 'fatal'": ({**data, "severity": "fatal"},
                                                                PARAMS),
        "mailgun: failed event without recipient": (
            {k: v for k, v in data.items() if k != "recipient"}, PARAMS),
        "mailgun: failed event without timestamp": (
            {k: v for k, v in data.items() if k != "timestamp"}, PARAMS),
        "mailgun: failed event without message.headers.message-id": (
            {**data, "message": {"headers": {}}}, PARAMS),
    }
    for reason, (item, params) in cases.items():
        mapped = mailgun.map_payload(orjson.dumps({**payload, "event-data": item}), params)
        assert mapped.events == []
        assert mapped.rejected[0][0].startswith(reason)
        assert orjson.loads(mapped.rejected[0][1]) == item


@pytest.mark.parametrize("body", [b"not json", b"recipient=a%40b.example&no=event",
                                  b"[]", b'{"signature": {}}', b'{"event-data": []}'])
def test_mailgun_body_of_another_shape_raises(body: bytes) -> None:
    with pytest.raises(PayloadError, match="mailgun"):
        mailgun.map_payload(body, PARAMS)


def _mailgun_signed(name: str, key: str, timestamp: str, token: str) -> bytes:
    payload = orjson.loads(sample("mailgun", name))
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    payload["signature"] = {"timestamp": timestamp, "token": token, "signature": signature}
    return orjson.dumps(payload)


def test_mailgun_signature() -> None:
    key = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
    token = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
    config = {"mailgun_signing_key": key, "now": 1_763_719_210.0}
    body = _mailgun_signed("delivered", key, "1763719205", token)
    mailgun.verify({}, body, config)  # valid
    block = orjson.loads(body)["signature"]
    for tampered in ({**block, "token": token[:-1] + "1"}, {**block, "timestamp": "1763719206"},
                     {**block, "signature": "0" * 64}):
        with pytest.raises(SignatureError, match="does not match"):
            mailgun.verify({}, orjson.dumps({**orjson.loads(body), "signature": tampered}),
                           config)
    with pytest.raises(SignatureError, match="does not match"):  # signed with another key
        mailgun.verify({}, _mailgun_signed("delivered", "key-other", "1763719205", token),
                       config)
    with pytest.raises(SignatureError, match="stale"):  # a captured request, replayed later
        mailgun.verify({}, _mailgun_signed("delivered", key, "1763718805", token), config)
    for unsigned in (sample("mailgun", "delivered").replace(b'"signature": {', b'"sig": {'),
                     b"not json"):
        with pytest.raises(SignatureError, match="no signature block"):
            mailgun.verify({}, unsigned, config)
    mailgun.verify({}, b"anything", {})  # no key configured: verification is off


def test_mailgun_signature_does_not_cover_the_event() -> None:
    """Documented Mailgun design: only timestamp + token are signed, so a forged
    event-data under a fresh captured signature block passes the signature check; the
    age check bounds it, and the token memory refuses it once the original came."""
    key = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
    original = _mailgun_signed("delivered", key, "1763719205", "t" * 50)
    forged = orjson.loads(original)
    forged["event-data"]["event"] = "complained"
    config = {"mailgun_signing_key": key, "now": 1_763_719_210,
              "mailgun_replay_guard": ReplayGuard()}
    mailgun.verify({}, orjson.dumps(forged), {**config, "mailgun_replay_guard": ReplayGuard()})
    mailgun.verify({}, original, config)
    with pytest.raises(SignatureError, match="already used"):
        mailgun.verify({}, orjson.dumps(forged), config)


def test_mailgun_token_is_accepted_once_while_its_signature_is_fresh() -> None:
    key = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
    guard = ReplayGuard()
    config = {"mailgun_signing_key": key, "now": 1_763_719_210.0, "mailgun_replay_guard": guard}
    body = _mailgun_signed("delivered", key, "1763719205", "r" * 50)
    mailgun.verify({}, body, config)
    for later in (1_763_719_211.0, 1_763_719_505.0):  # any time within the 300 s window
        with pytest.raises(SignatureError, match="token already used"):
            mailgun.verify({}, body, {**config, "now": later})
    with pytest.raises(SignatureError, match="stale"):  # after the window the age check holds
        mailgun.verify({}, body, {**config, "now": 1_763_719_506.0})
    # a request that failed on our side (Kafka down: 503) releases its token for the retry
    mailgun.forget({}, body, config)
    mailgun.verify({}, body, config)
    # other tokens are independent; the memory forgets tokens whose signatures expired
    mailgun.verify({}, _mailgun_signed("delivered", key, "1763719205", "s" * 50), config)
    assert len(guard) == 2
    mailgun.verify({}, _mailgun_signed("opened", key, "1763720000", "u" * 50),
                   {**config, "now": 1_763_720_001.0})
    assert len(guard) == 1


def test_mailgun_replay_memory_is_bounded_and_refuses_to_forget_live_tokens() -> None:
    key = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
    config = {"mailgun_signing_key": key, "now": 1_763_719_210.0,
              "mailgun_replay_guard": ReplayGuard(capacity=2)}
    for token in ("a" * 50, "b" * 50):
        mailgun.verify({}, _mailgun_signed("delivered", key, "1763719205", token), config)
    with pytest.raises(RetryLater, match="replay memory full"):  # 503: Mailgun retries later
        mailgun.verify({}, _mailgun_signed("delivered", key, "1763719205", "c" * 50), config)
    mailgun.verify({}, _mailgun_signed("delivered", key, "1763719900", "c" * 50),
                   {**config, "now": 1_763_719_901.0})  # the first two have expired


# --- Mailgun legacy (form) webhooks ---------------------------------------------------------
LEGACY_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
LEGACY_HEADERS = orjson.dumps([["Received", "by luna.mailgun.net with SMTP mgrt 8734663311733"],
                               ["Message-Id", "<20251121100000.1.ABC@mg.acme.example>"],
                               ["To", "ann.lee@gmail.com"]]).decode()


def legacy_fields(event: str, token: str = "l" * 50, timestamp: str = "1763719205",
                  **extra: str) -> dict[str, str]:
    signature = hmac.new(LEGACY_KEY.encode(), (timestamp + token).encode(),
                         hashlib.sha256).hexdigest()
    return {"event": event, "recipient": "ann.lee@gmail.com", "domain": "mg.acme.example",
            "message-headers": LEGACY_HEADERS, "timestamp": timestamp, "token": token,
            "signature": signature, "sender": "news.acme.example", **extra}


def urlencoded(fields: dict[str, str]) -> bytes:
    return urllib.parse.urlencode(fields).encode()


def multipart(fields: dict[str, str], boundary: str = "----MailgunBoundary7d3f") -> bytes:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
             f"{value}\r\n" for name, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="attachment-1"; '
                 f'filename="message.eml"\r\nContent-Type: message/rfc822\r\n\r\n'
                 f"Subject: hi\r\n\r\nbody\r\n")
    return "".join(parts).encode() + f"--{boundary}--\r\n".encode()


@pytest.mark.parametrize("encode", [urlencoded, multipart])
@pytest.mark.parametrize("event, extra, kind, code, klass", [
    ("delivered", {}, "delivered", 0, None),
    ("bounced", {"code": "550", "error": "550 5.1.1 The email account does not exist",
                 "notification": ""}, "bounce", 550, "hard"),
    ("bounced", {"code": "5.1.1", "error": "550 5.1.1 The email account does not exist"},
     "bounce", 550, "hard"),  # `code` as Mailgun documents it: the enhanced status
    ("dropped", {"reason": "hardfail", "code": "605",
                 "description": "Not delivering to previously bounced address"}, "dropped", 0,
     None),
    ("dropped", {"reason": "maxfails", "code": "551",
                 "description": "551 5.7.1 Too many failures"}, "bounce", 551, None),
    ("opened", {"ip": "203.0.113.7", "user-agent": "Mozilla/5.0", "device-type": "desktop",
                "message-id": "20251121100000.1.ABC@mg.acme.example"}, "open", 0, None),
    ("clicked", {"url": "https://acme.example/offer", "ip": "203.0.113.7"}, "click", 0, None),
    ("unsubscribed", {}, "unsubscribe", 0, None),
    ("complained", {}, "complaint", 0, None),
])
def test_mailgun_legacy_form_webhooks(encode, event, extra, kind, code, klass) -> None:
    body = encode(legacy_fields(event, **extra))
    mailgun.verify({}, body, {"mailgun_signing_key": LEGACY_KEY, "now": 1_763_719_210.0,
                              "mailgun_replay_guard": ReplayGuard()})
    ev = parsed(only_event(mailgun.map_payload(body, {})))
    assert (ev.type, ev.smtp_code, ev.sender) == (kind, code, "news.acme.example")
    assert ev.message_id == "20251121100000.1.ABC@mg.acme.example"
    assert ev.attrs["provider_event"] == f"legacy/{event}"
    if klass:
        assert bounce_class(ev) == klass and ev.smtp_status == "5.1.1"
    if event == "clicked":
        assert (ev.url, ev.ip) == ("https://acme.example/offer", "203.0.113.7")


def test_mailgun_legacy_form_signature_and_refusals() -> None:
    config = {"mailgun_signing_key": LEGACY_KEY, "now": 1_763_719_210.0,
              "mailgun_replay_guard": ReplayGuard()}
    good = legacy_fields("delivered")
    with pytest.raises(SignatureError, match="does not match"):
        mailgun.verify({}, urlencoded({**good, "signature": "0" * 64}), config)
    with pytest.raises(SignatureError, match="without timestamp, token and signature"):
        mailgun.verify({}, urlencoded({k: v for k, v in good.items() if k != "token"}), config)
    mailgun.verify({}, multipart(good), config)
    with pytest.raises(SignatureError, match="already used"):  # same token, other encoding
        mailgun.verify({}, urlencoded(good), config)
    cases = {
        "mailgun: unknown legacy event 'stored'": {**good, "event": "stored"},
        "mailgun: legacy delivered event without Message-Id": {**good, "message-headers": "[]"},
        "mailgun: legacy delivered event without a numeric timestamp": {**good, "timestamp": "x"},
        "mailgun: no sender": {k: v for k, v in good.items() if k != "sender"},
    }
    for reason, fields in cases.items():
        mapped = mailgun.map_payload(urlencoded(fields), {})
        assert mapped.events == [] and mapped.rejected[0][0].startswith(reason), mapped.rejected
    with pytest.raises(PayloadError, match="boundary"):
        mailgun.map_payload(b"--\r\n\r\n", {})




# --- Postmark ------------------------------------------------------------------------------
PM_WELCOME = "883953f4-6105-42a2-a16a-77a8eac79483"


@pytest.mark.parametrize("name, kind, recipient, code, status, bounce_kind, klass", [
    ("delivery", "delivered", "ann.lee@gmail.com", 250, "2.0.0", "", None),
    ("bounce_hard", "bounce", "no.such.user@gmail.com", 550, "5.1.1", "HardBounce", "hard"),
    ("bounce_soft", "bounce", "full.box@gmail.com", 552, "5.2.2", "SoftBounce", "soft"),
    ("bounce_dns_error", "bounce", "hugo@acme-corp.example", 0, "", "DnsError", "soft"),
    ("bounce_blocked", "bounce", "ida@t-online.de", 554, "5.7.1", "Blocked", "block"),
    ("bounce_spam_notification", "bounce", "jan@acme-corp.example", 550, "5.7.1",
     "SpamNotification", "block"),
    ("bounce_transient", "deferred", "slow.mx@acme-corp.example", 451, "4.4.2", "Transient",
     "soft"),
    ("bounce_smtp_api_error", "dropped", "max@gmail.com", 0, "", "SMTPApiError", None),
    ("bounce_autoresponder", "reply", "kim@acme-corp.example", 0, "", "", None),
    ("bounce_unsubscribe", "unsubscribe", "lea@web.de", 0, "", "", None),
    ("spam_complaint", "complaint", "dora@yahoo.com", 0, "", "", None),
    ("open", "open", "ann.lee@gmail.com", 0, "", "", None),
    ("click", "click", "ann.lee@gmail.com", 0, "", "", None),
    ("subscription_change", "unsubscribe", "erik@web.de", 0, "", "", None),
])
def test_postmark_record_kinds(name: str, kind: str, recipient: str, code: int, status: str,
                               bounce_kind: str, klass: str | None) -> None:
    record = orjson.loads(sample("postmark", name))
    event = only_event(postmark.map_payload(sample("postmark", name), {}))
    assert event["recipient"] == recipient
    assert event["provider_message_id"] == record["MessageID"]
    ev = parsed(event)
    assert (ev.type, ev.message_id, ev.smtp_code, ev.smtp_status, ev.bounce_kind) == (
        kind, record["MessageID"], code, status, bounce_kind)
    assert ev.sender == "news.acme.example"
    if "ID" in record:  # bounce records carry Postmark's own id
        assert ev.event_id == f"postmark:bounce:{record['ID']}"
    if klass is not None:
        assert bounce_class(ev) == klass


def test_postmark_times_and_context() -> None:
    delivered = only_event(postmark.map_payload(sample("postmark", "delivery"), {}))
    assert delivered["ts"] == "2025-11-21T10:00:03.9070259Z"
    assert parsed(delivered).ts_ms == 1763719203907
    bounce = parsed(only_event(postmark.map_payload(sample("postmark", "bounce_hard"), {})))
    assert bounce.diagnostic.startswith("550 5.1.1 The email account")
    assert bounce.attrs["description"].startswith("The server was unable to deliver")
    assert bounce.attrs["inactive"] is True and bounce.attrs["tags"] == ["digest"]
    opened = parsed(only_event(postmark.map_payload(sample("postmark", "open"), {})))
    assert (opened.campaign_id, opened.flow_id, opened.variant) == (
        "welcome-2025-11", "onboarding", "B")
    assert opened.ip == "198.51.100.23" and opened.user_agent.startswith("Mozilla/5.0")
    assert (opened.attrs["first_open"], opened.attrs["platform"]) == (True, "WebMail")
    assert opened.attrs["message_stream"] == "outbound"
    click = parsed(only_event(postmark.map_payload(sample("postmark", "click"), {})))
    assert click.url == "https://shop.acme.example/start?utm_source=email"
    assert click.attrs["click_location"] == "HTML"
    assert click.ts_ms == 1763722865000
    # the same open delivered twice maps to the same event id (dedup)
    again = only_event(postmark.map_payload(sample("postmark", "open"), {}))
    assert again["event_id"] == opened.event_id


def test_postmark_autoresponder_is_an_automatic_reply() -> None:
    reply = parsed(only_event(postmark.map_payload(sample("postmark", "bounce_autoresponder"),
                                                   {})))
    assert reply.type == "reply" and reply.attrs["auto_submitted"] == "auto-replied"


@pytest.mark.parametrize("name, reason", [
    ("subscription_resubscribe", "postmark: resubscribe: not an event type"),
    ("subscription_after_hard_bounce",
     "postmark: suppression after a HardBounce: already reported by its Bounce webhook"),
    ("subscription_by_customer",
     "postmark: suppressed by the sender (Origin Customer), not by the recipient"),
    ("bounce_challenge", "postmark: ChallengeVerification bounce: challenge-response "
                         "verification request: not an event type"),
])
def test_postmark_records_that_are_no_events(name: str, reason: str) -> None:
    mapped = postmark.map_payload(sample("postmark", name), {})
    assert mapped.events == []
    assert mapped.rejected == [(reason, orjson.dumps(orjson.loads(sample("postmark", name))))]


#: Every bounce `Type` of Postmark's API (its client library's BounceType enum).
POSTMARK_BOUNCE_TYPES = (
    "HardBounce", "Transient", "Unsubscribe", "Subscribe", "AutoResponder", "AddressChange",
    "DnsError", "SpamNotification", "OpenRelayTest", "Unknown", "SoftBounce",
    "VirusNotification", "ChallengeVerification", "BadEmailAddress", "SpamComplaint",
    "ManuallyDeactivated", "Unconfirmed", "Blocked", "SMTPApiError", "InboundError",
    "DMARCPolicy", "TemplateRenderingFailed")


def test_every_postmark_bounce_type_and_subscription_change_is_an_event_or_a_reason() -> None:
    """No silent loss: each shape becomes an event the job accepts, or a dead letter whose
    reason names the record."""
    bounce = orjson.loads(sample("postmark", "bounce_hard"))
    change = orjson.loads(sample("postmark", "subscription_change"))
    records = [{**bounce, "Type": t} for t in POSTMARK_BOUNCE_TYPES] + [
        {**change, "SuppressSending": sending, "SuppressionReason": reason, "Origin": origin}
        for sending in (True, False)
        for reason in ("HardBounce", "SpamComplaint", "ManualSuppression", None)
        for origin in ("Recipient", "Customer", "Admin")]
    outcome: dict[str, str] = {}
    for record in records:
        mapped = postmark.map_payload(orjson.dumps(record), PARAMS)
        assert len(mapped.events) + len(mapped.rejected) == 1, record
        label = f"{record['RecordType']}/{record.get('Type') or record['SuppressionReason']}"
        if mapped.events:
            outcome[label] = parsed(mapped.events[0]).type
        else:
            reason = mapped.rejected[0][0]
            assert reason.startswith("postmark: ") and len(reason) > 30, reason
    assert outcome["Bounce/Unsubscribe"] == "unsubscribe"
    assert outcome["Bounce/SpamComplaint"] == "complaint"
    assert outcome["Bounce/HardBounce"] == "bounce"
    assert outcome["SubscriptionChange/ManualSuppression"] == "unsubscribe"
    assert len([r for r in records if r["RecordType"] == "Bounce"]) == 22


def test_postmark_rejects_incomplete_records() -> None:
    record = orjson.loads(sample("postmark", "bounce_hard"))
    cases = {
        "postmark: no sender: add ?sender=": ({**record, "Metadata": {}}, {}),
        "postmark: unknown bounce Type 'Quantum'": ({**record, "Type": "Quantum"}, {}),
        "postmark: unknown RecordType 'Teleport'": ({**record, "RecordType": "Teleport"}, {}),
        "postmark: no RecordType": ({"FromFull": {"Email": "x@y.example"}, "MessageID": "m"},
                                    {}),
        "postmark: Bounce record without Recipient/Email": (
            {k: v for k, v in record.items() if k != "Email"}, {}),
        "postmark: Bounce record without BouncedAt": (
            {k: v for k, v in record.items() if k != "BouncedAt"}, {}),
        "postmark: Bounce record without MessageID": ({**record, "MessageID": ""}, {}),
    }
    for reason, (item, params) in cases.items():
        mapped = postmark.map_payload(orjson.dumps(item), params)
        assert mapped.events == [] and mapped.rejected[0][0].startswith(reason)
    # the URL's sender stands in when the metadata names none
    event = only_event(postmark.map_payload(orjson.dumps({**record, "Metadata": {}}), PARAMS))
    assert event["sender"] == "news.acme.example"


@pytest.mark.parametrize("body", [b"not json", b"[]", b'[{"RecordType": "Open"}]', b'"x"'])
def test_postmark_body_of_another_shape_raises(body: bytes) -> None:
    with pytest.raises(PayloadError, match="postmark"):
        postmark.map_payload(body, PARAMS)


def test_postmark_basic_auth() -> None:
    config = {"postmark_basic_auth": "hooks:s3cret-pass"}
    body = sample("postmark", "delivery")

    def auth(credentials: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}

    postmark.verify(auth("hooks:s3cret-pass"), body, config)  # valid
    postmark.verify({"authorization": auth("hooks:s3cret-pass")["Authorization"]}, body, config)
    for bad in (auth("hooks:wrong"), auth("other:s3cret-pass")):
        with pytest.raises(SignatureError, match="wrong"):
            postmark.verify(bad, body, config)
    for missing in ({}, {"Authorization": "Bearer abc"}):
        with pytest.raises(SignatureError, match="no basic-auth"):
            postmark.verify(missing, body, config)
    with pytest.raises(SignatureError, match="malformed"):
        postmark.verify({"Authorization": "Basic %%%"}, body, config)
    postmark.verify({}, body, {})  # nothing configured: verification is off
