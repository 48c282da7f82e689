"""Wire format v1: parsing, validation, pseudonymisation (schemas/events.py)."""

from __future__ import annotations

import orjson
import pytest

from mailflow.malformed import malformed_samples
from schemas.events import DeadLetter, Event, EventParser, parse_ts
from schemas.hashing import RecipientHasher

NOW = 1_795_255_203.0  # 2026-11-21T10:00:03Z
HASHER = RecipientHasher(b"test-key")


def parser() -> EventParser:
    return EventParser(HASHER, now=lambda: NOW)


def msg(**fields) -> bytes:
    base = {"type": "delivered", "ts": "2026-11-21T10:00:00Z", "sender": "news.acme.example",
            "recipient": "Ann@Example.org", "message_id": "m-1"}
    base.update(fields)
    return orjson.dumps({k: v for k, v in base.items() if v is not ...})


def parse(raw: bytes, topic: str = "email.deliveries") -> Event | DeadLetter:
    return parser().parse(raw, topic, 2, 41)


@pytest.mark.parametrize("text, expected", [
    ("2026-11-21T10:00:00Z", 1795255200.0),
    ("2026-11-21T10:00:00.5Z", 1795255200.5),
    ("2026-11-21T10:00:00.123456789Z", 1795255200.123456),
    ("2026-11-21T11:00:00+01:00", 1795255200.0),
    ("2026-11-21T05:30:00.250-04:30", 1795255200.25),
    ("2026-11-21 10:00:00z", 1795255200.0),
    ("2026-11-21t10:00:00+00:00", 1795255200.0),
    (1795255200, 1795255200.0),
    (1795255200.75, 1795255200.75),
    (1795255200750, 1795255200.75),
])
def test_timestamps_in_every_accepted_form(text, expected):
    assert parse_ts(text) == pytest.approx(expected, abs=1e-6)


def test_valid_event_is_typed_and_pseudonymised():
    ev = parse(msg(campaign_id="c1", flow_id="welcome", variant="B", extra={"a": 1}))
    assert isinstance(ev, Event)
    assert ev.type == "delivered" and ev.ts_ms == 1795255200000
    assert ev.recipient_hash == HASHER.recipient("ann@example.org")
    assert (ev.recipient_domain, ev.domain) == ("example.org", "example.org")
    assert (ev.campaign_id, ev.flow_id, ev.variant) == ("c1", "welcome", "B")
    assert ev.attrs == {"extra": {"a": 1}}
    assert (ev.topic, ev.partition, ev.offset) == ("email.deliveries", 2, 41)


def test_provider_key_is_derived_from_the_recipient_domain():
    assert parse(msg(recipient="x@googlemail.com")).domain == "gmail.com"
    assert parse(msg(recipient="x@hotmail.de")).domain == "outlook.com"
    assert parse(msg(recipient="x@Web.DE")).domain == "web.de"


def test_type_is_inferred_from_the_topic_and_the_event_type_wins():
    assert parse(msg(type=..., recipient="a@b.example"), "email.opens").type == "open"
    assert parse(msg(type="click"), "email.opens").type == "click"
    dead = parse(msg(type=...), "email.deliveries")
    assert isinstance(dead, DeadLetter) and dead.error.startswith("missing required field: type")


def test_event_id_defaults_to_a_stable_payload_hash():
    a, b = parse(msg()), parse(msg())
    assert a.event_id == b.event_id and len(a.event_id) == 32
    assert parse(msg(message_id="m-2")).event_id != a.event_id
    assert parse(msg(event_id="given")).event_id == "given"


def test_conversion_needs_no_message_id_but_other_types_do():
    assert isinstance(parse(msg(type="conversion", message_id=..., goal="purchase", value=19.9)),
                      Event)
    assert parse(msg(message_id=...)).error == "missing required field: message_id"


def test_recipient_hash_and_domain_may_replace_the_address():
    ev = parse(msg(recipient=..., recipient_hash="ab" * 16, recipient_domain="GMX.de"))
    assert (ev.recipient_hash, ev.recipient_domain, ev.domain) == ("ab" * 16, "gmx.de", "gmx.net")


def test_addresses_in_free_text_are_replaced_by_hashes():
    ev = parse(msg(type="bounce", diagnostic="550 5.1.1 <Ann@Example.org> unknown",
                   url="https://x.example/u?e=ann@example.org", note="to ann@example.org"))
    text = ev.diagnostic + ev.url + orjson.dumps(ev.attrs).decode()
    assert "ann@example.org" not in text.lower()
    assert ev.diagnostic.count("hash:") == 1


@pytest.mark.parametrize("kind, topic, raw, reason",
                         malformed_samples(now=NOW), ids=lambda v: v if isinstance(v, str) and
                         len(v) < 30 else "")
def test_every_kind_of_bad_input_becomes_a_dead_letter(kind, topic, raw, reason):
    dead = parser().parse(raw, topic, 1, 99)
    assert isinstance(dead, DeadLetter), kind
    assert dead.error.startswith(reason), (kind, dead.error)
    assert (dead.topic, dead.partition, dead.offset, dead.raw) == (topic, 1, 99, raw)


@pytest.mark.parametrize("fields, reason", [
    ({"smtp_code": "550"}, "smtp_code must be an integer"),
    ({"smtp_code": 5500}, "smtp_code out of range"),
    ({"value": "12.5"}, "value must be a number"),
    ({"campaign_id": 7}, "campaign_id must be a string"),
    ({"ts": "2026-11-21T10:00:00"}, "ts has no UTC offset"),
    ({"recipient": ["a@b.example"]}, "recipient must be a string"),
    ({"type": ["open"]}, "type must be a string"),
])
def test_wrong_types_are_refused_with_the_field_named(fields, reason):
    dead = parse(msg(**fields))
    assert isinstance(dead, DeadLetter)
    assert dead.error.startswith(reason), dead.error


def test_null_message_and_dead_letter_record():
    dead = parse(None)
    assert dead.error.startswith("empty message")
    record = orjson.loads(DeadLetter("why", "t", 1, 2, b"x" * 20).to_json(max_raw=10))
    assert record == {"error": "why", "topic": "t", "partition": 1, "offset": 2,
                      "raw": "x" * 10, "raw_truncated_from": 20}


def test_parse_batch_splits_events_and_dead_letters():
    events, dead = parser().parse_batch([(msg(), "email.deliveries", 0, 1),
                                         (b"nope", "email.deliveries", 0, 2)])
    assert [e.offset for e in events] == [1] and [d.offset for d in dead] == [2]
