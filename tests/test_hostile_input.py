"""Hostile input on the parse path: one message can only become an event or a dead letter.

A message that made the parse step raise used to stop the job, and after a restart the
same message was read again: a crash loop. These tests feed what production will one
day see (control characters next to an address, nesting 300 levels deep, arbitrary
bytes, arbitrary JSON) and require an `Event` or a `DeadLetter`, never an exception.
"""

from __future__ import annotations

import json
from collections import Counter

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.parse import ParseAndClassify, ParsedBatch
from flows.sources import CaughtUp, RawMessage
from flows.stats import STATS
from operators.bounces import BounceClassifier
from operators.engagement import Interaction
from schemas import rows as out
from schemas.events import MAX_DEPTH, DeadLetter, Event, EventParser
from schemas.hashing import RecipientHasher

NOW = 1_795_255_203.0  # 2026-11-21T10:00:03Z
HASHER = RecipientHasher(b"test-key")
ADDRESS = "ann@example.com"
PROPERTY = settings(derandomize=True, database=None, max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def parser() -> EventParser:
    return EventParser(HASHER, now=lambda: NOW)


def msg(**fields: object) -> bytes:
    base = {"type": "bounce", "ts": "2026-11-21T10:00:00Z", "sender": "news.acme.example",
            "recipient": ADDRESS, "message_id": "m-1"}
    base.update(fields)
    return orjson.dumps(base)


def nested(depth: int, leaf: object = 1) -> bytes:
    """`depth` levels of alternating arrays and objects, as raw JSON (orjson refuses to
    write more than 255)."""
    text = json.dumps(leaf)
    for level in range(depth):
        text = f"[{text}]" if level % 2 else f'{{"k": {text}}}'
    return text.encode()


def with_field(name: str, raw_value: bytes) -> bytes:
    return msg()[:-1] + b',"' + name.encode() + b'":' + raw_value + b"}"


def check(result: Event | DeadLetter) -> None:
    """What every caller relies on: a record it can write out."""
    assert type(result) in (Event, DeadLetter), type(result)
    if type(result) is DeadLetter:
        assert result.error and orjson.loads(result.to_json())["error"] == result.error
    else:
        row = out.event_row(result, None, Interaction(True, "", 0.0))
        assert len(row) == len(out.EVENT_COLUMNS)


# --- the reported poison messages ------------------------------------------------------

def test_control_character_before_an_address_in_an_unknown_field_is_scrubbed_not_fatal():
    # Scrubbing the serialised attrs cut the JSON escape "\n" ("x\\nann@…" -> "x\\hash:…"):
    # JSONDecodeError out of parse.
    ev = parser().parse(msg(note="x\nann@example.com", more={"k": "\tann@example.com"}),
                        "email.bounces", 0, 1)
    assert type(ev) is Event, ev
    assert ev.attrs["note"] == "x\nhash:" + HASHER.recipient(ADDRESS)[:12]
    assert ev.attrs["more"]["k"].startswith("\thash:")


@pytest.mark.parametrize("depth", [MAX_DEPTH, 256, 300, 1000])
def test_unknown_fields_nested_too_deep_are_refused_with_a_reason(depth):
    # 255-1024 levels: orjson reads them, could not write them back (TypeError in parse).
    dead = parser().parse(with_field("deep", nested(depth)), "email.bounces", 3, 9)
    assert type(dead) is DeadLetter, dead
    assert dead.error == f"attrs nested too deep: more than {MAX_DEPTH} levels"
    assert (dead.topic, dead.partition, dead.offset) == ("email.bounces", 3, 9)


def test_nesting_up_to_the_limit_is_kept_whether_or_not_it_is_scrubbed():
    for raw in (with_field("deep", nested(MAX_DEPTH - 1)),
                with_field("deep", nested(MAX_DEPTH - 1, "to ann@example.com"))):
        ev = parser().parse(raw, "email.bounces", 0, 1)
        assert type(ev) is Event, ev
        assert ADDRESS not in orjson.dumps(ev.attrs).decode()
        check(ev)


@pytest.mark.parametrize("raw, reason", [
    (b"\xff\xfe{}", "not JSON"),
    (msg()[:-1] + b',"x":"\xc3\x28"}', "not JSON"),  # invalid UTF-8 inside a string
    (b'{"ts": 1e400}', "not JSON"),
    (with_field("value", b"NaN"), "not JSON"),
    (with_field("value", b"-Infinity"), "not JSON"),
    (with_field("x", b'"\\ud800"'), "not JSON"),  # lone surrogate, escaped
    (with_field("x", b'"\\udc00\\ud800"'), "not JSON"),
    (with_field("smtp_code", b"1" * 40), "smtp_code must be an integer"),
    (with_field("smtp_code", b"18446744073709551615"), "smtp_code out of range"),
    (msg(ts=10 ** 18), "ts more than a day in the future"),
    (msg(ts=-10 ** 18), "ts before 2000-01-01"),
    (msg(ts="9999-12-31T23:59:59-23:59"), "ts more than a day in the future"),
    (msg(ts="0001-01-01T00:00:00+14:00"), ""),  # whatever Python says: a dead letter
    (b"\x00", "not JSON"),
    (nested(2000), "not JSON"),
])
def test_poison_becomes_a_dead_letter(raw, reason):
    dead = parser().parse(raw, "email.bounces", 0, 5)
    assert type(dead) is DeadLetter, dead
    assert dead.error.startswith(reason), dead.error
    check(dead)


def test_a_raw_address_given_as_recipient_hash_is_refused():
    raw = orjson.dumps({"type": "open", "ts": "2026-11-21T10:00:00Z", "sender": "s.example",
                        "recipient_hash": ADDRESS, "recipient_domain": "example.com",
                        "message_id": "m-1"})
    dead = parser().parse(raw, "email.opens", 0, 1)
    assert type(dead) is DeadLetter
    assert dead.error.startswith("recipient_hash holds an address")


def test_null_bytes_inside_strings_are_data_not_poison():
    ev = parser().parse(msg(campaign_id="a\x00b", note="\x00ann@example.com\x00"),
                        "email.bounces", 0, 1)
    assert type(ev) is Event and ev.campaign_id == "a\x00b"
    assert ev.attrs["note"].startswith("\x00hash:")
    check(ev)


def test_an_unexpected_error_becomes_an_internal_error_dead_letter_with_its_position():
    class Broken(RecipientHasher):  # a bug in a helper, not in the input
        def recipient(self, address: str) -> str:
            raise RuntimeError("boom \ud800")

    dead = EventParser(Broken(b"k"), now=lambda: NOW).parse(msg(), "email.bounces", 2, 77)
    assert type(dead) is DeadLetter
    assert dead.error.startswith("internal error: parse: RuntimeError: boom")
    assert (dead.topic, dead.partition, dead.offset, dead.raw) == ("email.bounces", 2, 77,
                                                                  msg())
    assert orjson.loads(dead.to_json())["error"] == dead.error  # serialisable, surrogate or not


# --- the parse and classify steps -------------------------------------------------------

class ExplodingClassifier(BounceClassifier):
    """A classifier with a bug that one wording triggers."""

    def classify(self, smtp_code, smtp_status, diagnostic, bounce_kind=""):
        if "explode" in diagnostic:
            raise ZeroDivisionError("a bug in the classifier")
        return super().classify(smtp_code, smtp_status, diagnostic, bounce_kind)


def raw_message(value: bytes | None, offset: int, topic: str = "email.bounces") -> RawMessage:
    return RawMessage(value, topic, 1, offset, "")


def test_batch_parser_turns_a_classification_error_into_that_messages_dead_letter():
    step = ParseAndClassify(HASHER, ExplodingClassifier)
    step.parser.now = lambda: NOW
    poison = msg(smtp_code=550, diagnostic="550 explode", message_id="m-2")
    before = Counter(STATS.dead_by_reason)
    [batch] = step([raw_message(msg(smtp_code=550, diagnostic="550 5.1.1 user unknown"), 10),
                    raw_message(poison, 11),
                    raw_message(msg(message_id="m-3", type="delivered"), 12),
                    CaughtUp("email.bounces", 1)])
    assert [ev.offset for ev, _b in batch.events] == [10, 12]
    assert [(d.offset, d.raw) for d in batch.dead] == [(11, poison)]
    assert batch.dead[0].error.startswith("internal error: classify: ZeroDivisionError")
    assert [s.kind for s in batch.signals] == [1, 0]  # hard bounce, delivery: none lost
    assert [ev.offset for ev, _r in batch.suppressions] == [10]
    assert Counter(STATS.dead_by_reason) - before == Counter({"internal error": 1})


def test_dead_letters_are_counted_by_a_bounded_kind_of_reason():
    step = ParseAndClassify(HASHER)
    step.parser.now = lambda: NOW
    before = Counter(STATS.dead_by_reason)
    step([raw_message(with_field("deep", nested(300)), 1),
          raw_message(with_field("deep", nested(400)), 2),
          raw_message(b'{"ts": 1e400}', 3), raw_message(b"\xff", 4),
          raw_message(with_field("x", b'"\\ud800"'), 5)])
    assert Counter(STATS.dead_by_reason) - before == Counter({"attrs nested too deep": 2,
                                                              "not JSON": 3})


# --- properties: whatever comes in, an event or a dead letter comes out ------------------

json_leaves = (st.none() | st.booleans() | st.integers() | st.floats()
               | st.text() | st.sampled_from([ADDRESS, "x\nann@example.com", "ann%40example.com",
                                              "jörg@bücher.example", "\ud800", "\x00", "&#64;"]))
json_values = st.recursive(json_leaves, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=8), children, max_size=4),
                           max_leaves=20)
event_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["delivered", "bounce", "open", "click", "conversion", "teleport"])
     | json_values,
     "ts": st.sampled_from(["2026-11-21T10:00:00Z", 1795255200, 1795255200123]) | json_values,
     "sender": st.just("news.acme.example") | json_values,
     "recipient": st.sampled_from([ADDRESS, "Jörg@Bücher.example", "x"]) | json_values,
     "message_id": st.just("m-1") | json_values},
    optional={name: json_values for name in (
        "smtp_code", "smtp_status", "diagnostic", "value", "url", "user_agent", "ip",
        "campaign_id", "flow_id", "variant", "goal", "currency", "event_id", "bounce_kind",
        "recipient_hash", "recipient_domain", "note", "crm")})


def encode(value: object, ascii_only: bool) -> bytes:
    """Python's json writes what orjson will not: NaN, Infinity, huge ints, lone surrogates."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@PROPERTY
@given(value=json_values | event_like, ascii_only=st.booleans())
def test_any_json_value_gives_an_event_or_a_dead_letter(value, ascii_only):
    check(parser().parse(encode(value, ascii_only), "email.bounces", 0, 1))


@PROPERTY
@given(raw=st.binary(max_size=300))
def test_any_bytes_give_an_event_or_a_dead_letter(raw):
    check(parser().parse(raw, "email.opens", 0, 1))


@PROPERTY
@given(depth=st.integers(0, 1100), leaf=json_leaves, where=st.sampled_from(["note", "crm"]))
def test_any_nesting_gives_an_event_or_a_dead_letter(depth, leaf, where):
    result = parser().parse(with_field(where, nested(depth, leaf if leaf == leaf else 0)),
                            "email.bounces", 0, 1)
    check(result)
    if type(result) is Event:
        assert depth < MAX_DEPTH


@PROPERTY
@given(messages=st.lists(st.one_of(
    st.binary(max_size=200), st.none(),
    st.builds(encode, json_values | event_like, st.booleans()),
    st.builds(lambda d: with_field("deep", nested(d)), st.integers(0, 600))), max_size=12))
def test_batch_parser_only_ever_produces_events_and_dead_letters(messages):
    step = ParseAndClassify(HASHER)
    step.parser.now = lambda: NOW
    batches = step([raw_message(value, offset) for offset, value in enumerate(messages)])
    assert len(batches) == (1 if messages else 0)
    batch = batches[0] if batches else ParsedBatch([], [], [], [], {}, [])
    assert isinstance(batch, ParsedBatch)
    offsets = sorted([ev.offset for ev, _b in batch.events] + [d.offset for d in batch.dead])
    assert offsets == list(range(len(messages)))  # each message exactly once
    for ev, _bounce in batch.events:
        check(ev)
    for dead in batch.dead:
        check(dead)
        label = dead.error.split(":", 1)[0]  # the metric label: a kind, never the value
        assert "'" not in label and '"' not in label and len(label) < 80, dead.error


@PROPERTY
@given(prefix=st.text(max_size=6), suffix=st.text(max_size=6),
       field=st.sampled_from(["diagnostic", "url", "user_agent", "campaign_id", "flow_id",
                              "variant", "goal", "smtp_status", "bounce_kind", "event_id",
                              "currency", "note", "message_id"]),
       spelling=st.sampled_from([ADDRESS, "Ann@Example.COM", "ann%40example.com",
                                 "ann&#64;example.com", "ann＠example.com"]))
def test_the_recipient_address_never_survives_in_any_text_field(prefix, suffix, field,
                                                                   spelling):
    raw = msg(**{field: f"{prefix}{spelling}{suffix}"}, crm={f"{prefix}{spelling}": [spelling]})
    ev = parser().parse(raw, "email.bounces", 0, 1)
    assert type(ev) is Event, ev
    text = "\n".join(str(v) for v in ev[:-3]) + orjson.dumps(ev.attrs).decode()
    assert spelling.lower() not in text.lower(), (field, getattr(ev, field, None), ev.attrs)


@pytest.mark.parametrize("text", [
    "a@" + "ü" * 300 + "!",  # overlapping character classes made this 2**300 steps
    "a@" + "o\u0308" * 300 + "!", "ü" * 300 + "@" + "ü" * 300, "a@" + "ü." * 300 + "1",
    "@" * 50_000, "a@" * 50_000, "a" * 100_000 + "@", "x@" + "a." * 50_000, "%40" * 30_000,
])
def test_scrubbing_hostile_text_finishes(text):
    # No timing assertion: exponential backtracking would simply never return.
    assert isinstance(HASHER.scrub(text), str)
    ev = parser().parse(msg(diagnostic=text[:200_000]), "email.bounces", 0, 1)
    check(ev)
