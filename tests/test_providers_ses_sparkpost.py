"""Amazon SES and SparkPost webhooks → canonical v1 events (schemas/providers/{ses,sparkpost}.py).

The payloads in tests/samples/{ses,sparkpost}/ follow the providers' documentation
examples (addresses, ids and dates replaced); every mapped event must be one the
job's own parser accepts.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from operators.bounces import classify_bounce
from schemas.events import Event, EventParser
from schemas.hashing import RecipientHasher
from schemas.providers import ses, sparkpost
from schemas.providers.base import Mapped, PayloadError, SignatureError
from schemas.topics import TOPIC_BY_TYPE

SAMPLES = Path(__file__).parent / "samples"
PARSER = EventParser(RecipientHasher(b"k"), now=lambda: 2_000_000_000.0)
SES_MID = "0100018c1f2a{:04x}-6e0b7c1d-2f3a-4b5c-9d8e-7f6a5b4c3d2e-000000"
T0 = 1_795_165_200  # 2026-11-20T09:00:00Z, the SparkPost samples' base time


def sample(provider: str, name: str) -> bytes:
    return (SAMPLES / provider / name).read_bytes()


def parsed(event: dict[str, Any]) -> Event:
    """The event as the stream job reads it (fails the test if the job would refuse it)."""
    result = PARSER.parse(orjson.dumps(event), TOPIC_BY_TYPE[event["type"]], 0, 0)
    assert isinstance(result, Event), (result, event)
    return result


def bounce_class(event: dict[str, Any]) -> str:
    return classify_bounce(event.get("smtp_code", 0), event.get("smtp_status", ""),
                           event.get("diagnostic", ""), event.get("bounce_kind", ""))


def only_event(mapped: Mapped) -> dict[str, Any]:
    assert not mapped.rejected, mapped.rejected
    assert len(mapped.events) == 1, mapped.events
    return mapped.events[0]


def all_sample_events() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for provider, adapter in (("ses", ses), ("sparkpost", sparkpost)):
        for path in sorted((SAMPLES / provider).iterdir()):
            for event in adapter.map_payload(path.read_bytes(), {}).events:
                out.append((f"{provider}/{path.name}", event))
    return out


# --- both providers ----------------------------------------------------------------------------
def test_every_mapped_sample_is_a_valid_canonical_event():
    events = all_sample_events()
    assert len(events) >= 30
    for name, event in events:
        ev = parsed(event)
        assert ev.sender == "news.acme.example", name
        assert event["provider"] in ("ses", "sparkpost")
        assert event["provider_message_id"] == ev.message_id
        assert event["provider_event"]
        assert ev.event_id.startswith(event["provider"] + ":")


def test_sample_event_ids_are_unique_and_stable():
    first = [e["event_id"] for _, e in all_sample_events()]
    assert len(set(first)) == len(first)  # the ingest end-to-end test counts rows by id
    assert [e["event_id"] for _, e in all_sample_events()] == first


# --- SES: one sample per event kind --------------------------------------------------------------
@pytest.mark.parametrize("name, event_type, recipient, n, expected", [
    ("sns_bounce_permanent.json", "bounce", "jane.doe@example.org", 1,
     {"smtp_code": 550, "smtp_status": "5.1.1", "diagnostic": "550 5.1.1 user unknown",
      "bounce_kind": "Permanent/General", "class": "hard", "ts": "2026-11-20T09:00:03.669Z",
      "campaign_id": "nov-picks", "flow_id": "winback", "variant": "B"}),
    ("bounce_transient_mailbox_full.json", "bounce", "max.mustermann@gmx.de", 2,
     {"smtp_code": 552, "smtp_status": "5.2.2", "bounce_kind": "Transient/MailboxFull",
      "class": "soft"}),
    ("sns_notification_bounce_suppressed.json", "dropped", "old.address@yahoo.com", 3,
     {"smtp_status": "5.1.1", "bounce_kind": "Permanent/Suppressed"}),
    ("send.json", "sent", "lee.chen@gmail.com", 5, {"ts": "2026-11-20T09:30:00.000Z"}),
    ("sns_complaint.json", "complaint", "sam.jones@aol.com", 6,
     {"feedback_type": "abuse", "ts": "2026-11-20T10:02:41.000Z"}),
    ("reject.json", "dropped", "ops@example.net", 7, {"diagnostic": "Bad content"}),
    ("delivery_delay.json", "deferred", "kim.park@icloud.com", 8,
     {"smtp_code": 421, "smtp_status": "4.4.1",
      "bounce_kind": "DeliveryDelay/TransientCommunicationFailure", "class": "soft"}),
    ("open.json", "open", "lee.chen@gmail.com", 9,
     {"ip": "66.249.84.10", "ts": "2026-11-20T10:15:19.652Z"}),
    ("sns_click.json", "click", "lee.chen@gmail.com", 10,
     {"url": "https://shop.acme.example/november?utm_source=ses&utm_campaign=nov-picks",
      "ip": "198.51.100.77"}),
    ("subscription_unsubscribe.json", "unsubscribe", "nora.berg@hotmail.com", 12,
     {"contact_list": "acme-newsletter", "unsubscribe_source": "UnsubscribeHeader"}),
    ("eventbridge_delivery.json", "delivered", "ravi.kumar@yahoo.co.in", 15,
     {"smtp_code": 250, "ts": "2026-11-20T10:20:04.977Z"}),
])
def test_ses_sample(name, event_type, recipient, n, expected):
    event = only_event(ses.map_payload(sample("ses", name), {}))
    ev = parsed(event)
    assert (ev.type, event["recipient"]) == (event_type, recipient)
    assert event["provider_message_id"] == ev.message_id == SES_MID.format(n)
    classic = name.startswith("sns_notification")  # identity notifications carry no tags
    assert event.get("configuration_set") == (None if classic else "engagement")
    expected = dict(expected)
    if "class" in expected:
        assert bounce_class(event) == expected.pop("class")
    for field, value in expected.items():
        assert event[field] == value, field


def test_ses_delivery_notification_gives_one_event_per_recipient():
    mapped = ses.map_payload(sample("ses", "sns_notification_delivery.json"), {})
    assert [e["recipient"] for e in mapped.events] == ["anna.schmidt@web.de",
                                                       "tom.baker@outlook.com"]
    for event in mapped.events:
        ev = parsed(event)
        assert (ev.type, ev.smtp_code, ev.smtp_status) == ("delivered", 250, "2.6.0")
        assert event["remote_mta_ip"] == "203.0.113.44"
    assert len({e["event_id"] for e in mapped.events}) == 2


def test_ses_bounce_with_several_recipients_and_one_without_address():
    event = orjson.loads(sample("ses", "bounce_transient_mailbox_full.json"))
    event["bounce"]["bouncedRecipients"] += [
        {"emailAddress": "b@example.org", "action": "failed", "status": "5.7.1",
         "diagnosticCode": "smtp; 550 5.7.1 Message rejected as spam by Content Filtering"},
        {"action": "failed", "status": "5.0.0"},
    ]
    mapped = ses.map_payload(orjson.dumps(event), {})
    assert [e["recipient"] for e in mapped.events] == ["max.mustermann@gmx.de", "b@example.org"]
    assert bounce_class(mapped.events[1]) == "block"
    assert len(mapped.rejected) == 1 and "ses" in mapped.rejected[0][0]
    assert orjson.loads(mapped.rejected[0][1])["eventType"] == "Bounce"


def test_ses_complaint_on_the_account_suppression_list_is_dropped():
    envelope = orjson.loads(sample("ses", "sns_complaint.json"))
    message = orjson.loads(envelope["Message"])
    message["complaint"]["complaintSubType"] = "OnAccountSuppressionList"
    envelope["Message"] = orjson.dumps(message).decode()
    event = only_event(ses.map_payload(orjson.dumps(envelope), {}))
    assert parsed(event).type == "dropped"


def test_ses_rendering_failure_is_rejected_with_its_reason():
    mapped = ses.map_payload(sample("ses", "rendering_failure.json"), {})
    assert mapped.events == []
    [(reason, raw)] = mapped.rejected
    assert reason.startswith("ses: Rendering Failure") and "firstName" in reason
    assert orjson.loads(raw)["eventType"] == "Rendering Failure"


def test_ses_subscription_confirmation_is_a_notice_with_the_subscribe_url():
    body = sample("ses", "sns_subscription_confirmation.json")
    mapped = ses.map_payload(body, {"sender": "news.acme.example"})
    assert (mapped.events, mapped.rejected) == ([], [])
    [notice] = mapped.notices
    # the receiver confirms by visiting the first https URL of the notice
    assert re.search(r"https://\S+", notice).group() == orjson.loads(body)["SubscribeURL"]


def test_ses_unsubscribe_confirmation_is_a_notice_without_a_url_to_visit():
    envelope = orjson.loads(sample("ses", "sns_subscription_confirmation.json"))
    envelope["Type"] = "UnsubscribeConfirmation"
    mapped = ses.map_payload(orjson.dumps(envelope), {})
    assert (mapped.events, mapped.rejected, len(mapped.notices)) == ([], [], 1)
    assert "https://" not in mapped.notices[0]  # visiting it would subscribe again


def test_ses_test_notification_of_a_new_topic_is_a_notice():
    mapped = ses.map_payload(sample("ses", "sns_notification_subscription_succeeded.json"), {})
    assert (mapped.events, mapped.rejected) == ([], [])
    assert "successfully subscribed" in mapped.notices[0]


def test_ses_firehose_records_as_lines_or_back_to_back():
    body = sample("ses", "firehose.jsonl")
    mapped = ses.map_payload(body, {})
    assert [e["type"] for e in mapped.events] == ["sent", "delivered", "open"]
    assert not mapped.rejected
    joined = ses.map_payload(b"".join(body.splitlines()), {})  # Firehose's default framing
    assert joined.events == mapped.events
    as_array = ses.map_payload(b"[" + b",".join(body.splitlines()) + b"]", {})
    assert as_array.events == mapped.events


def test_ses_event_ids_do_not_depend_on_the_transport():
    envelope = orjson.loads(sample("ses", "sns_bounce_permanent.json"))
    via_sns = only_event(ses.map_payload(orjson.dumps(envelope), {}))
    raw = only_event(ses.map_payload(envelope["Message"].encode(), {}))
    bridge = {"source": "aws.ses", "detail-type": "Email Bounced",
              "detail": orjson.loads(envelope["Message"])}
    via_bridge = only_event(ses.map_payload(orjson.dumps(bridge), {}))
    assert via_sns == raw == via_bridge


def test_ses_sender_comes_from_tag_then_parameter_then_from_domain():
    event = orjson.loads(sample("ses", "send.json"))
    assert only_event(ses.map_payload(orjson.dumps(event), {}))["sender"] == "news.acme.example"
    assert only_event(ses.map_payload(orjson.dumps(event), {"sender": "pool-a"}))["sender"] \
        == "pool-a"
    event["mail"]["tags"]["sender"] = ["tenant-7"]
    assert only_event(ses.map_payload(orjson.dumps(event), {"sender": "pool-a"}))["sender"] \
        == "tenant-7"
    del event["mail"]["tags"]
    event["mail"]["source"] = "Shop <orders@Shop.Example>"
    assert only_event(ses.map_payload(orjson.dumps(event), {}))["sender"] == "shop.example"


def test_ses_open_of_a_message_to_several_recipients_is_not_guessed():
    event = orjson.loads(sample("ses", "open.json"))
    event["mail"]["destination"].append("cc@example.org")
    mapped = ses.map_payload(orjson.dumps(event), {})
    assert mapped.events == []
    assert "2 destinations" in mapped.rejected[0][0]


def test_ses_subscription_opt_in_is_rejected_not_mapped():
    event = orjson.loads(sample("ses", "subscription_unsubscribe.json"))
    sub = event["subscription"]
    sub["newTopicPreferences"], sub["oldTopicPreferences"] = (sub["oldTopicPreferences"],
                                                              sub["newTopicPreferences"])
    mapped = ses.map_payload(orjson.dumps(event), {})
    assert mapped.events == [] and "not an unsubscribe" in mapped.rejected[0][0]


def test_ses_single_topic_opt_out_is_an_unsubscribe():
    event = orjson.loads(sample("ses", "subscription_unsubscribe.json"))
    event["subscription"]["newTopicPreferences"]["unsubscribeAll"] = False
    mapped = only_event(ses.map_payload(orjson.dumps(event), {}))
    assert mapped["type"] == "unsubscribe" and mapped["topics"] == ["weekly-picks"]


def test_ses_bad_items_are_rejected_and_the_rest_mapped():
    good = orjson.loads(sample("ses", "send.json"))
    unknown = {**good, "eventType": "Received"}
    no_mail = {"eventType": "Open", "open": {"timestamp": "2026-11-20T10:00:00Z"}}
    no_ts = orjson.loads(sample("ses", "open.json"))
    del no_ts["open"]["timestamp"]
    not_json_message = {**orjson.loads(sample("ses", "sns_click.json")), "Message": "Hello"}
    body = orjson.dumps([good, unknown, no_mail, no_ts, not_json_message, 42])
    mapped = ses.map_payload(body, {})
    assert [e["type"] for e in mapped.events] == ["sent"]
    reasons = [reason for reason, _ in mapped.rejected]
    assert len(reasons) == 5 and all(r.startswith("ses: ") for r in reasons)
    assert "'Received'" in reasons[0] and "messageId" in reasons[1]
    assert "timestamp" in reasons[2] and "not JSON" in reasons[3]
    assert mapped.rejected[5 - 1][1] == b"42"


NESTED = b"[" * 600 + b"1" + b"]" * 600  # orjson reads 1024 levels, writes only 254


def test_ses_poison_documents_are_refused_alone_with_their_index(monkeypatch):
    send = sample("ses", "send.json").strip()
    bridge = b'{"source": "aws.ses", "detail": {"eventType": "Send", "x": ' + NESTED + b"}}"
    body = b"[" + b",".join([send, NESTED, bridge, send]) + b"]"
    mapped = ses.map_payload(body, {})
    assert [e["type"] for e in mapped.events] == ["sent", "sent"]
    assert mapped.event_items == [0, 3] and mapped.rejected_items == [1, 2]
    assert mapped.rejected[0][0] == "ses: item is not a JSON object"
    assert mapped.rejected[1][0].startswith("ses: malformed document")
    # JSON lines: an unreadable line is refused with its own index
    compact = orjson.dumps(orjson.loads(send))
    lines = b"\n".join([compact, b"{oops", compact])
    mapped = ses.map_payload(lines, {})
    assert mapped.event_items == [0, 2] and mapped.rejected_items == [1]

    def buggy(ctx):
        raise KeyError("adapter bug")

    monkeypatch.setitem(ses._HANDLERS, "Send", buggy)
    mapped = ses.map_payload(b"[" + send + b"]", {})
    assert mapped.events == [] and mapped.rejected_items == [0]
    assert mapped.rejected[0][0] == "ses: cannot map document: KeyError: 'adapter bug'"


def test_sparkpost_poison_items_are_refused_alone_with_their_index():
    items = orjson.loads(sample("sparkpost", "batch_mixed.json"))
    good = orjson.dumps(items[0])
    deep = b'{"msys": {"message_event": {"type": "delivery", "x": ' + NESTED + b"}}}"
    mapped = sparkpost.map_payload(b"[" + b",".join([good, deep, good]) + b"]", {})
    assert mapped.rejected_items == [1] and set(mapped.event_items) == {0, 2}
    assert mapped.rejected[0][0].startswith("sparkpost: delivery event without")
    assert mapped.rejected[0][1].startswith(b'{"msys":')


@pytest.mark.parametrize("body", [b"", b"{not json", b'{"hello": "world"}', b'"text"'])
def test_ses_unreadable_body_is_a_payload_error(body):
    with pytest.raises(PayloadError, match="ses"):
        ses.map_payload(body, {})


# --- SES: SNS signatures -----------------------------------------------------------------------
def _certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def signer() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key, _certificate(key)


CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"


#: The verifier's clock in these tests; `sign` stamps messages 30 s before it.
NOW = 1_795_000_000.0
FRESH = dt.datetime.fromtimestamp(NOW - 30, dt.UTC).isoformat(timespec="milliseconds")


def sign(envelope: dict[str, Any], key: rsa.RSAPrivateKey, version: str = "1",
         timestamp: str | None = None) -> bytes:
    """Sign as SNS does: "key\\nvalue\\n" over the documented keys, in order."""
    envelope = {**envelope, "Timestamp": timestamp or FRESH.replace("+00:00", "Z")}
    keys = (("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
            if envelope["Type"] == "Notification" else
            ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"))
    text = "".join(f"{k}\n{envelope[k]}\n" for k in keys if k in envelope)
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(text.encode(), padding.PKCS1v15(), algorithm)
    signed = {**envelope, "SignatureVersion": version, "SigningCertURL": CERT_URL,
              "Signature": base64.b64encode(signature).decode()}
    return orjson.dumps(signed)


def sns_config(pem: bytes, fetched: list[str] | None = None) -> dict[str, Any]:
    def fetch(url: str) -> bytes:
        if fetched is not None:
            fetched.append(url)
        return pem

    return {"ses_verify_sns": True, "fetch_cert": fetch, "now": NOW}


def notification() -> dict[str, Any]:
    return orjson.loads(sample("ses", "sns_bounce_permanent.json"))


@pytest.mark.parametrize("version", ["1", "2"])
def test_sns_signature_versions_1_and_2_are_accepted(signer, version):
    key, pem = signer
    fetched: list[str] = []
    body = sign(notification(), key, version)
    ses.verify({"x-amz-sns-message-type": "Notification"}, body, sns_config(pem, fetched))
    assert fetched == [CERT_URL]
    assert only_event(ses.map_payload(body, {}))["type"] == "bounce"


def test_sns_signature_covers_subject_and_subscription_fields(signer):
    key, pem = signer
    ses.verify({}, sign({**notification(), "Subject": "Amazon SES Email Event"}, key),
               sns_config(pem))
    confirmation = orjson.loads(sample("ses", "sns_subscription_confirmation.json"))
    body = sign(confirmation, key, "2")
    ses.verify({}, body, sns_config(pem))
    tampered = orjson.loads(body)
    tampered["SubscribeURL"] = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"
    with pytest.raises(SignatureError):
        ses.verify({}, orjson.dumps(tampered), sns_config(pem))


@pytest.mark.parametrize("field, value", [
    ("Message", '{"eventType":"Delivery"}'),
    ("TopicArn", "arn:aws:sns:us-east-1:999999999999:attacker"),
    ("Timestamp", "2026-11-20T09:00:04.000Z"),
    ("SignatureVersion", "2"),  # signed with SHA1, claims SHA256
    ("Signature", base64.b64encode(b"\x00" * 256).decode()),
])
def test_tampered_sns_messages_are_refused(signer, field, value):
    key, pem = signer
    envelope = orjson.loads(sign(notification(), key, "1"))
    envelope[field] = value
    with pytest.raises(SignatureError):
        ses.verify({}, orjson.dumps(envelope), sns_config(pem))


def test_a_certificate_of_another_key_is_refused(signer):
    key, _pem = signer
    other = _certificate(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with pytest.raises(SignatureError, match="does not match"):
        ses.verify({}, sign(notification(), key), sns_config(other))


@pytest.mark.parametrize("url", [
    "http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-1.pem",
    "https://sns.eu-west-1.amazonaws.com.evil.example/SimpleNotificationService-1.pem",
    "https://evil.example/sns.eu-west-1.amazonaws.com/SimpleNotificationService-1.pem",
    "https://sns.eu-west-1.amazonaws.com@evil.example/SimpleNotificationService-1.pem",
    "https://sns.eu-west-1.amazonaws.com:8443/SimpleNotificationService-1.pem",
    "https://s3.amazonaws.com/SimpleNotificationService-1.pem",
    "https://sns.eu-west-1.amazonaws.com/redirect?to=evil",
    "",
])
def test_certificates_are_only_fetched_from_sns_hosts(signer, url):
    key, pem = signer
    envelope = orjson.loads(sign(notification(), key))
    envelope["SigningCertURL"] = url
    fetched: list[str] = []
    with pytest.raises(SignatureError, match="SigningCertURL"):
        ses.verify({}, orjson.dumps(envelope), sns_config(pem, fetched))
    assert fetched == []


def test_unsigned_or_unverifiable_bodies_are_refused_when_verification_is_on(signer):
    key, pem = signer
    for body in (sample("ses", "send.json"), b"not json",
                 orjson.dumps({**orjson.loads(sign(notification(), key)),
                               "SignatureVersion": "3"})):
        with pytest.raises(SignatureError):
            ses.verify({}, body, sns_config(pem))

    def unreachable(url: str) -> bytes:
        raise OSError("connection refused")

    with pytest.raises(SignatureError, match="connection refused"):
        ses.verify({}, sign(notification(), key),
                   {"ses_verify_sns": True, "fetch_cert": unreachable, "now": NOW})


def test_topic_allow_list(signer):
    key, pem = signer
    body = sign(notification(), key)
    topic = notification()["TopicArn"]
    ses.verify({}, body, {**sns_config(pem), "ses_topic_arns": f"arn:aws:sns:x:1:y, {topic}"})
    with pytest.raises(SignatureError, match="not accepted"):
        ses.verify({}, body, {**sns_config(pem), "ses_topic_arns": "arn:aws:sns:x:1:y"})


def test_the_topic_list_is_enforced_even_without_signature_checks():
    body = sample("ses", "sns_bounce_permanent.json")
    topic = notification()["TopicArn"]
    published = dt.datetime.fromisoformat(notification()["Timestamp"]).timestamp()
    ses.verify({}, body, {"ses_topic_arns": [topic], "now": published + 60})
    with pytest.raises(SignatureError, match="stale SNS message"):
        ses.verify({}, body, {"ses_topic_arns": [topic], "now": published + 3601})
    for config in ({"ses_topic_arns": ["arn:aws:sns:us-east-1:999999999999:attacker"]},
                   {"ses_topic_arns": "arn:aws:sns:us-east-1:999999999999:attacker"}):
        with pytest.raises(SignatureError, match="not accepted"):
            ses.verify({}, body, config)
    # raw message delivery names no topic: nothing says it is one of ours
    with pytest.raises(SignatureError, match="not an SNS message"):
        ses.verify({}, sample("ses", "send.json"), {"ses_topic_arns": [topic]})


@pytest.mark.parametrize("timestamp, message", [
    ("2026-11-17T11:06:40.000Z", "stale SNS message"),  # a day before NOW
    (dt.datetime.fromtimestamp(NOW - 3601, dt.UTC).isoformat(), "stale SNS message"),
    (dt.datetime.fromtimestamp(NOW + 301, dt.UTC).isoformat(), "in the future"),
    ("yesterday", "not ISO 8601"),
    ("2026-11-20T09:00:00", "no time zone"),
])
def test_old_future_or_unreadable_sns_timestamps_are_refused(signer, timestamp, message):
    key, pem = signer
    body = sign(notification(), key, timestamp=timestamp)  # validly signed, badly timed
    with pytest.raises(SignatureError, match=message):
        ses.verify({}, body, sns_config(pem))
    fresh = dt.datetime.fromtimestamp(NOW - 3599, dt.UTC).isoformat()
    ses.verify({}, sign(notification(), key, timestamp=fresh), sns_config(pem))


def test_subscription_confirmations_carry_their_topic_for_the_receiver():
    mapped = ses.map_payload(sample("ses", "sns_subscription_confirmation.json"), {})
    topic = "arn:aws:sns:us-east-1:123456789012:ses-engagement-events"
    assert mapped.events == [] and mapped.rejected == []
    assert mapped.confirmations == [(topic, orjson.loads(
        sample("ses", "sns_subscription_confirmation.json"))["SubscribeURL"])]


def test_topic_list_comes_from_environment_and_config_file(tmp_path):
    from flows.settings import load_settings

    env = {"MAILFLOW_SES_TOPIC_ARNS": "arn:aws:sns:eu-west-1:1:a, arn:aws:sns:eu-west-1:1:b"}
    config = load_settings(environ=env).provider_config()
    assert config["ses_topic_arns"] == ["arn:aws:sns:eu-west-1:1:a", "arn:aws:sns:eu-west-1:1:b"]
    toml = tmp_path / "m.toml"
    toml.write_text('ses_topic_arns = ["arn:aws:sns:eu-west-1:1:a"]\n')
    assert load_settings(str(toml), environ={}).provider_config()["ses_topic_arns"] == \
        ["arn:aws:sns:eu-west-1:1:a"]
    toml.write_text('ses_topic_arns = "arn:aws:sns:eu-west-1:1:a,arn:aws:sns:eu-west-1:1:c"\n')
    assert load_settings(str(toml), environ={}).ses_topic_arns == \
        ["arn:aws:sns:eu-west-1:1:a", "arn:aws:sns:eu-west-1:1:c"]


def test_without_the_flag_sns_messages_are_not_checked():
    envelope = notification()
    envelope["Message"] = envelope["Message"].replace("jane.doe", "john.doe")
    ses.verify({}, orjson.dumps(envelope), {})
    ses.verify({}, sample("ses", "send.json"), {"ses_verify_sns": ""})


def test_default_certificate_fetch_is_cached(monkeypatch, signer):
    _key, pem = signer
    calls: list[tuple[str, float]] = []

    class Response:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self, limit: int) -> bytes:
            return pem

    def urlopen(url: str, timeout: float) -> Response:
        calls.append((url, timeout))
        return Response()

    monkeypatch.setattr(ses.urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(ses, "_CERTIFICATES", {})
    url = CERT_URL.replace("0123456789abcdef", "cached")
    assert ses.fetch_certificate(url) == pem and ses.fetch_certificate(url) == pem
    assert calls == [(url, 5)]
    with pytest.raises(SignatureError):
        ses.fetch_certificate("https://evil.example/cert.pem")


# --- SparkPost: one sample per event type ------------------------------------------------------
@pytest.mark.parametrize("name, event_type, recipient, expected", [
    ("injection.json", "sent", "ann.lee@gmail.com", {"ts": T0}),
    ("delivery.json", "delivered", "ann.lee@gmail.com", {"remote_mta_ip": "142.250.102.27"}),
    ("bounce_invalid_recipient.json", "bounce", "no.such.user@outlook.com",
     {"smtp_code": 550, "smtp_status": "5.5.0", "bounce_kind": "sparkpost:10:hard",
      "class": "hard"}),
    ("bounce_block.json", "bounce", "carl@example-corp.com",
     {"smtp_code": 550, "smtp_status": "5.7.1", "bounce_kind": "sparkpost:50:block",
      "class": "block"}),
    ("out_of_band.json", "bounce", "j.smith@t-online.de",
     {"smtp_code": 550, "smtp_status": "5.1.1", "class": "hard"}),
    ("delay.json", "deferred", "busy.box@yahoo.com",
     {"smtp_code": 452, "smtp_status": "4.2.2", "bounce_kind": "sparkpost:22:soft",
      "class": "soft"}),
    ("policy_rejection.json", "dropped", "left.us@example.org",
     {"smtp_code": 554, "bounce_kind": "sparkpost:25:admin"}),
    ("spam_complaint.json", "complaint", "sam.jones@aol.com", {"feedback_type": "abuse"}),
    ("initial_open.json", "open", "ann.lee@gmail.com",
     {"ip": "66.249.84.14", "provider_event": "initial_open"}),
    ("open.json", "open", "ann.lee@gmail.com", {"provider_event": "open"}),
    ("click.json", "click", "ann.lee@gmail.com",
     {"url": "https://shop.acme.example/november?utm_campaign=nov-picks",
      "ip": "198.51.100.200"}),
    ("list_unsubscribe.json", "unsubscribe", "nora.berg@hotmail.com", {}),
    ("link_unsubscribe.json", "unsubscribe", "olaf.s@web.de", {"ip": "192.0.2.55"}),
])
def test_sparkpost_sample(name, event_type, recipient, expected):
    body = sample("sparkpost", name)
    raw_event = next(iter(orjson.loads(body)[0]["msys"].values()))
    event = only_event(sparkpost.map_payload(body, {}))
    ev = parsed(event)
    assert (ev.type, event["recipient"]) == (event_type, recipient)
    assert event["provider_message_id"] == ev.message_id == raw_event["message_id"]
    assert ev.event_id == f"sparkpost:{raw_event['event_id']}"
    assert ev.ts_ms == int(raw_event["timestamp"]) * 1000
    assert (ev.campaign_id, ev.flow_id, ev.variant) == ("nov-picks", "winback", "A")
    assert event["transmission_id"] == raw_event["transmission_id"]
    expected = dict(expected)
    if "class" in expected:
        assert bounce_class(event) == expected.pop("class")
    for field, value in expected.items():
        assert event[field] == value, field


def test_sparkpost_amp_engagement():
    mapped = sparkpost.map_payload(sample("sparkpost", "amp.json"), {})
    assert [(e["type"], e["provider_event"]) for e in mapped.events] == [
        ("open", "amp_open"), ("click", "amp_click")]
    assert mapped.events[1]["url"] == "https://shop.acme.example/p/3"


def test_sparkpost_engagement_ip_is_the_reader_message_ip_is_the_mx():
    delivery = only_event(sparkpost.map_payload(sample("sparkpost", "delivery.json"), {}))
    click = only_event(sparkpost.map_payload(sample("sparkpost", "click.json"), {}))
    assert "ip" not in delivery and "user_agent" not in delivery
    assert click["user_agent"].startswith("Mozilla/5.0 (Macintosh")
    assert "remote_mta_ip" not in click


def test_sparkpost_ping_has_no_events_and_no_rejects():
    mapped = sparkpost.map_payload(sample("sparkpost", "ping.json"), {})
    assert (mapped.events, mapped.rejected, mapped.notices) == ([], [], [])
    assert sparkpost.map_payload(b"[]", {}).events == []


def test_sparkpost_batch_maps_what_it_can_and_rejects_the_rest():
    mapped = sparkpost.map_payload(sample("sparkpost", "batch_mixed.json"), {})
    assert [e["type"] for e in mapped.events] == ["sent", "delivered"]
    reasons = [reason for reason, _ in mapped.rejected]
    assert len(reasons) == 3 and all(r.startswith("sparkpost: ") for r in reasons)
    assert "Auto-Reply" in reasons[0]
    assert "generation_failure" in reasons[1] and "relay_injection" in reasons[2]
    assert orjson.loads(mapped.rejected[2][1])["msys"]["relay_event"]["type"] \
        == "relay_injection"


def _bounce(**fields: Any) -> bytes:
    ev = orjson.loads(sample("sparkpost", "bounce_block.json"))
    ev[0]["msys"]["message_event"].update(fields)
    for key in [k for k, v in fields.items() if v is None]:
        del ev[0]["msys"]["message_event"][key]
    return orjson.dumps(ev)


def test_sparkpost_bounce_classes_that_are_not_failures():
    assert only_event(sparkpost.map_payload(_bounce(bounce_class="90"), {}))["type"] \
        == "unsubscribe"
    assert only_event(sparkpost.map_payload(_bounce(bounce_class=25), {}))["type"] == "dropped"
    subscribe = sparkpost.map_payload(_bounce(bounce_class="80"), {})
    assert subscribe.events == [] and "Subscribe" in subscribe.rejected[0][0]
    undetermined = only_event(sparkpost.map_payload(
        _bounce(bounce_class="1", raw_reason="554 sorry", reason=None, error_code="554"), {}))
    assert undetermined["bounce_kind"] == "sparkpost:1:undetermined"
    assert bounce_class(undetermined) == "other"


@pytest.mark.parametrize("category_class, expected", [("10", "hard"), ("21", "soft"),
                                                      ("52", "block")])
def test_sparkpost_category_decides_when_the_reply_says_nothing_known(category_class,
                                                                       expected):
    event = only_event(sparkpost.map_payload(
        _bounce(bounce_class=category_class, raw_reason="554 no", reason=None), {}))
    assert bounce_class(event) == expected


def test_sparkpost_sender_from_metadata_then_parameter_then_from_addresses():
    assert only_event(sparkpost.map_payload(_bounce(), {"sender": "pool-a"}))["sender"] \
        == "pool-a"
    meta = {"sender": "tenant-7", "flow_id": "welcome"}
    event = only_event(sparkpost.map_payload(_bounce(rcpt_meta=meta), {"sender": "pool-a"}))
    assert (event["sender"], event["flow_id"]) == ("tenant-7", "welcome")
    event = only_event(sparkpost.map_payload(_bounce(friendly_from=None), {}))
    assert event["sender"] == "sparkpostmail1.com"  # msg_from: the return path, last resort
    event = only_event(sparkpost.map_payload(
        _bounce(metadata={"variant": "T", "flow_id": "x"}, rcpt_meta={"flow_id": "y"}), {}))
    assert (event["variant"], event["flow_id"]) == ("T", "y")


def test_sparkpost_items_without_recipient_or_timestamp_are_rejected():
    body = orjson.dumps(orjson.loads(_bounce(rcpt_to=None, raw_rcpt_to=None))
                        + orjson.loads(_bounce(timestamp=None))
                        + orjson.loads(sample("sparkpost", "delivery.json"))
                        + [{"not": "msys"}, {"msys": {"message_event": "x"}}])
    mapped = sparkpost.map_payload(body, {})
    assert [e["type"] for e in mapped.events] == ["delivered"]
    reasons = [reason for reason, _ in mapped.rejected]
    assert "rcpt_to" in reasons[0] and "timestamp" in reasons[1] and len(reasons) == 4


def test_sparkpost_without_event_id_gets_a_stable_one():
    first = only_event(sparkpost.map_payload(_bounce(event_id=None), {}))
    again = only_event(sparkpost.map_payload(_bounce(event_id=None), {}))
    assert first["event_id"] == again["event_id"] and first["event_id"].startswith("sparkpost:")
    assert parsed(first).event_id == first["event_id"]


@pytest.mark.parametrize("body", [b"", b"[{", b"42", b'"msys"'])
def test_sparkpost_unreadable_body_is_a_payload_error(body):
    with pytest.raises(PayloadError, match="sparkpost"):
        sparkpost.map_payload(body, {})


def _basic(credentials: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def test_sparkpost_basic_auth():
    config = {"sparkpost_basic_auth": "mailflow:s3cret"}
    body = sample("sparkpost", "delivery.json")
    sparkpost.verify({}, body, {})  # not configured: accepted
    sparkpost.verify(_basic("mailflow:s3cret"), body, config)
    sparkpost.verify({"Authorization": _basic("mailflow:s3cret")["authorization"]}, body, config)
    for headers in ({}, _basic("mailflow:wrong"), _basic("other:s3cret"),
                    {"Authorization": "Bearer s3cret"}, {"Authorization": "Basic %%%"}):
        with pytest.raises(SignatureError, match="sparkpost"):
            sparkpost.verify(headers, body, config)
