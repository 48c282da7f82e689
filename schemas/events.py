"""Canonical event, wire format v1 (DESIGN.md): parse and validate once, here.

A Kafka message becomes either an `Event` (a small typed record the core
works with; the raw address is already replaced by its keyed hash) or a
`DeadLetter` (the reason it was refused, and where it came from). Nothing in
here raises on bad input: even an unexpected error for one message becomes
that message's dead letter ("internal error: …"), so one poison message can
never stop the job (it would be read again after every restart).

Free text is scrubbed after parsing, value by value (attrs keys included):
an address quoted anywhere becomes `hash:…` (see `RecipientHasher.scrub`).

>>> parser = EventParser(RecipientHasher(b"k"), now=lambda: 1_800_000_000.0)
>>> ev = parser.parse(b'{"type": "delivered", "ts": "2026-11-21T10:00:03.120Z", '
...                   b'"sender": "news.acme.example", "recipient": "Ann@GoogleMail.com", '
...                   b'"message_id": "m-1"}', "email.deliveries", 0, 7)
>>> ev.type, ev.ts_ms, ev.domain, ev.recipient_domain
('delivered', 1795255203120, 'gmail.com', 'googlemail.com')
>>> parser.parse(b'{"type": "open"}', "email.opens", 0, 8).error
'missing required field: ts'
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

import orjson

# The core's record, defined below schemas/; re-exported: callers and recovery snapshots
# written before the move name `schemas.events.Event`.
from operators.event import Event
from operators.reply_desk import ReplyRead, read_reply
from operators.reply_model import reply_features
from schemas.hashing import RecipientHasher, Scrub
from schemas.mailbox_providers import provider_key, split_address
from schemas.topics import (
    DEFAULT_TYPE_BY_TOPIC,
    EVENT_TYPES,
    FEEDBACK_ACTIONS,
    HOLDOUT_GROUPS,
    REPLY_FEEDBACK_TOPIC,
)

MAX_MESSAGE_BYTES = 256 * 1024
#: Unknown fields nested deeper than this (the event object is level 1) are refused: no
#: event needs them, and each level costs recursion in every later step.
MAX_DEPTH = 32
#: 2000-01-01T00:00:00Z: anything earlier is a broken clock or a unit mix-up.
MIN_TS_S = 946_684_800.0
#: Events may be at most this far ahead of the wall clock at the edge.
MAX_FUTURE_S = 86_400.0
#: Epoch numbers above this are milliseconds (1e11 s would be the year 5138).
_MS_THRESHOLD = 100_000_000_000

_MARKER_BYTES = b"@%&\\\xef"
_EVENT_TYPES = frozenset(EVENT_TYPES) | {"reply_feedback"}
_FEEDBACK_ACTIONS = frozenset(FEEDBACK_ACTIONS)
#: A reply's `headers` may name at most this many headers.
MAX_REPLY_HEADERS = 100
#: Conversions are about a recipient, not a message.
#: A reply may name no message it answers (no In-Reply-To): still read and routed, flow unknown.
_MESSAGELESS_TYPES = frozenset({"conversion", "reply"})

_OPTIONAL_STR = ("event_id", "campaign_id", "flow_id", "variant", "user_agent", "ip", "url",
                 "smtp_status", "diagnostic", "bounce_kind", "goal", "currency")
_KNOWN_FIELDS = frozenset(("type", "ts", "sender", "recipient", "recipient_hash",
                           "recipient_domain", "message_id", "smtp_code", "value")
                          + _OPTIONAL_STR)


class DeadLetter(NamedTuple):
    """A refused message and why; becomes one record on `mailflow.dlq`."""

    error: str
    topic: str
    partition: int
    offset: int
    raw: bytes

    def to_json(self, max_raw: int = MAX_MESSAGE_BYTES) -> bytes:
        raw = self.raw[:max_raw]
        record: dict[str, Any] = {
            "error": self.error, "topic": self.topic, "partition": self.partition,
            "offset": self.offset, "raw": raw.decode("utf-8", errors="replace"),
        }
        if len(self.raw) > max_raw:
            record["raw_truncated_from"] = len(self.raw)
        return orjson.dumps(record)


class _Invalid(Exception):
    """Internal: carries the reason a message is refused."""


def internal_error(exc: BaseException, step: str = "parse") -> str:
    """The dead-letter reason for an unexpected error: a fixed kind ("internal error", the
    metrics label) and the details, safe to serialise whatever the exception holds.

    >>> internal_error(ValueError("bad \\ud800"), "classify")
    'internal error: classify: ValueError: bad \\\\ud800'
    """
    detail = str(exc)[:300].encode("utf-8", "backslashreplace").decode("utf-8")
    return f"internal error: {step}: {type(exc).__name__}: {detail}"


def parse_ts(value: Any) -> float:
    """Event time in epoch seconds from RFC 3339 text or epoch seconds/milliseconds.

    >>> parse_ts("2026-11-21T11:00:03+01:00"), parse_ts(1795255203), parse_ts(1795255203120)
    (1795255203.0, 1795255203.0, 1795255203.12)
    """
    if isinstance(value, str):
        # Fast path: the common "2026-11-21T10:00:03.120Z" parses as it is (Python 3.11
        # reads "Z" and up to six fraction digits); anything else takes the careful path.
        if len(value) >= 20 and value[10] == "T" and value[-1] == "Z":
            try:
                return datetime.fromisoformat(value).timestamp()
            except ValueError:
                pass
        text = value.strip()
        if len(text) < 19 or text[10] not in "Tt ":
            raise _Invalid(f"ts is not RFC 3339: {value[:40]!r}")
        text = text[:10] + "T" + text[11:]
        if text[-1] in "Zz":
            text = text[:-1] + "+00:00"
        dot = text.find(".", 19)
        if dot != -1:  # Python takes at most 6 fraction digits; RFC 3339 allows any.
            end = dot + 1
            while end < len(text) and text[end].isdigit():
                end += 1
            if end - dot > 7:
                text = text[:dot + 7] + text[end:]
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise _Invalid(f"ts is not RFC 3339: {value[:40]!r}") from None
        if parsed.tzinfo is None:
            raise _Invalid(f"ts has no UTC offset: {value[:40]!r}")
        return parsed.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"ts must be an RFC 3339 string or an epoch number, got {_kind(value)}")
    if value != value or value in (float("inf"), float("-inf")):
        raise _Invalid("ts is not a finite number")
    return value / 1000.0 if value > _MS_THRESHOLD else float(value)


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean",
            int: "number", float: "number", type(None): "null"}.get(type(value), "value")


def _opt_str(obj: dict, name: str) -> str:
    value = obj.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Invalid(f"{name} must be a string, got {_kind(value)}")
    return value


def _req_str(obj: dict, name: str) -> str:
    value = obj.get(name)
    if value is None or value == "":
        raise _Invalid(f"missing required field: {name}")
    if not isinstance(value, str):
        raise _Invalid(f"{name} must be a string, got {_kind(value)}")
    return value


class EventParser:
    """Turns raw Kafka messages into `Event`s or `DeadLetter`s.

    `now` supplies the wall clock for the "more than a day in the future"
    check only; event time always comes from the event.
    """

    def __init__(self, hasher: RecipientHasher, now: Callable[[], float] = time.time,
                 max_bytes: int = MAX_MESSAGE_BYTES):
        self.hasher = hasher
        self.now = now
        self.max_bytes = max_bytes

    def _read(self, text: tuple[str, str, dict], ts: float, recipient: str) -> ReplyRead:
        """A reply's verdict, return date, contact and text features, from its raw text."""
        subject, body, headers = text
        return read_reply(subject, body, headers, int(round(ts * 1000)), recipient,
                          self.hasher.scrub, self.hasher.recipient, reply_features)

    def parse(self, raw: bytes | None, topic: str, partition: int, offset: int,
              now: float | None = None) -> Event | DeadLetter:
        """An `Event`, or a `DeadLetter` that says why not; never an exception."""
        try:
            return self._parse(raw, topic, partition, offset, now)
        except Exception as exc:  # a bug or a corner nobody foresaw: one dead letter, go on
            return DeadLetter(internal_error(exc), topic, partition, offset,
                              raw if isinstance(raw, bytes) else b"")

    def _parse(self, raw: bytes | None, topic: str, partition: int, offset: int,
               now: float | None) -> Event | DeadLetter:
        if raw is None:
            return DeadLetter("empty message (null value)", topic, partition, offset, b"")
        if len(raw) > self.max_bytes:
            return DeadLetter(f"message too large: {len(raw)} bytes > {self.max_bytes}",
                              topic, partition, offset, raw)
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return DeadLetter(f"not JSON: {exc}", topic, partition, offset, raw)
        if not isinstance(obj, dict):
            return DeadLetter(f"not a JSON object but {_kind(obj)}", topic, partition, offset,
                              raw)
        try:
            return self._event(obj, raw, topic, partition, offset,
                               self.now() if now is None else now)
        except _Invalid as exc:
            return DeadLetter(str(exc), topic, partition, offset, raw)

    def parse_batch(self, messages: list[tuple[bytes | None, str, int, int]]
                    ) -> tuple[list[Event], list[DeadLetter]]:
        """Parse many `(raw, topic, partition, offset)` with one clock reading."""
        now = self.now()
        events: list[Event] = []
        dead: list[DeadLetter] = []
        for raw, topic, partition, offset in messages:
            result = self.parse(raw, topic, partition, offset, now)
            (events if type(result) is Event else dead).append(result)
        return events, dead

    def _event(self, obj: dict, raw: bytes, topic: str, partition: int, offset: int,
               now: float) -> Event:
        event_type = obj.get("type")
        if event_type is None:
            event_type = DEFAULT_TYPE_BY_TOPIC.get(topic)
            if event_type is None:
                raise _Invalid(f"missing required field: type (topic {topic} has no default)")
        elif not isinstance(event_type, str):
            raise _Invalid(f"type must be a string, got {_kind(event_type)}")
        if event_type not in _EVENT_TYPES:
            raise _Invalid(f"unknown type: {event_type[:40]!r}")

        if "ts" not in obj:
            raise _Invalid("missing required field: ts")
        ts = parse_ts(obj["ts"])
        if ts < MIN_TS_S:
            raise _Invalid(f"ts before 2000-01-01: {obj['ts']!r}")
        if ts > now + MAX_FUTURE_S:
            raise _Invalid(f"ts more than a day in the future: {obj['ts']!r}")
        if event_type == "reply_feedback":
            return self._feedback(obj, raw, ts, topic, partition, offset)

        sender = _req_str(obj, "sender")
        recipient = obj.get("recipient")
        if recipient is not None:
            if not isinstance(recipient, str):
                raise _Invalid(f"recipient must be a string, got {_kind(recipient)}")
            parts = split_address(recipient.strip())
            if parts is None:
                raise _Invalid("recipient is not an email address")
            recipient_domain = parts[1]
            recipient_hash = self.hasher.recipient(recipient)
        elif "recipient_hash" in obj or "recipient_domain" in obj:
            recipient_hash = _req_str(obj, "recipient_hash")
            if "@" in recipient_hash:  # fail closed: a raw address must never be stored
                raise _Invalid("recipient_hash holds an address: send it as recipient")
            recipient_domain = _req_str(obj, "recipient_domain").strip().lower().rstrip(".")
        else:
            raise _Invalid("missing required field: recipient (or recipient_hash and "
                           "recipient_domain)")

        if event_type in _MESSAGELESS_TYPES:
            message_id = _opt_str(obj, "message_id")
        else:
            message_id = _req_str(obj, "message_id")

        smtp_code = obj.get("smtp_code")
        if smtp_code is None:
            smtp_code = 0
        elif isinstance(smtp_code, bool) or not isinstance(smtp_code, int):
            raise _Invalid(f"smtp_code must be an integer, got {_kind(smtp_code)}")
        elif not 0 <= smtp_code <= 999:
            raise _Invalid(f"smtp_code out of range: {smtp_code}")
        value = obj.get("value")
        if value is None:
            value = 0.0
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise _Invalid(f"value must be a number, got {_kind(value)}")

        opt = [obj.get(name) for name in _OPTIONAL_STR]
        for i, field_value in enumerate(opt):
            if type(field_value) is not str:  # one pass; None is absent, the rest refused
                opt[i] = _opt_str(obj, _OPTIONAL_STR[i])
        attrs = {k: v for k, v in obj.items() if k not in _KNOWN_FIELDS}
        if event_type == "holdout":
            _holdout_group(attrs)
        reply_id = _reply_fields(attrs) if event_type == "reply" else None
        if event_type == "reply":
            headers = attrs.pop("headers", None) or {}
            if "auto_submitted" in attrs and "Auto-Submitted" not in headers:
                headers = {**headers, "Auto-Submitted": str(attrs["auto_submitted"])}
            read_text = (attrs.pop("subject", "") or "", attrs.pop("body", "") or "", headers)
        # Free text may quote an address in any field, in any spelling. One pass over the
        # bytes counts "@" and what starts its other spellings: "%" (%40), "&" (&#64;),
        # "\\" (\u0040) and 0xEF (＠). Most messages hold none but the recipient's own "@"
        # (and the Message-ID's): then no value needs a look of its own.
        expected = recipient is not None
        markers = len(raw) - len(raw.translate(None, _MARKER_BYTES))
        if markers > expected and message_id:
            # A Message-ID is address-shaped by design ("<id@mail.acme.example>"): only the
            # recipient's own address is replaced there; the id stays as the sender knows it.
            expected += message_id.count("@")
            message_id = self.hasher.scrub_own(message_id, recipient_hash, recipient_domain,
                                               recipient)
        if markers > expected and reply_id:  # a Message-ID too: kept as the sender knows it
            expected += reply_id.count("@")
            reply_id = self.hasher.scrub_own(reply_id, recipient_hash, recipient_domain,
                                             recipient)
        if markers > expected:
            scrub = self.hasher.scrub
            opt = [scrub(v) if v else v for v in opt]
            if attrs:
                attrs = _clean(attrs, scrub, 1)
        elif attrs and len(raw) - len(raw.translate(None, b"{[")) > MAX_DEPTH:
            _clean(attrs, None, 1)  # deep nesting is refused even when nothing is scrubbed
        if reply_id is not None:
            attrs["reply_id"] = reply_id
        if event_type == "reply":
            # Read before anything is kept: the verdict and features travel on, the text not.
            attrs["reply"] = self._read(read_text, ts, recipient or "")
        return Event(
            opt[0] or self.hasher.payload(raw), int(round(ts * 1000)), event_type, sender,
            recipient_hash, recipient_domain, provider_key(recipient_domain), message_id,
            opt[1], opt[2], opt[3], opt[4], opt[5], opt[6], smtp_code, opt[7],
            opt[8], opt[9], opt[10], float(value), opt[11], attrs, topic, partition, offset,
        )

    def _feedback(self, obj: dict, raw: bytes, ts: float, topic: str, partition: int,
                  offset: int) -> Event:
        """A `reply_feedback` event: about a reply (`reply_id`), not a recipient; `reply_id`,
        `action`, `queue`, `intent` and unknown fields are in `attrs` (scrubbed, but for
        `reply_id`, which the helpdesk knows as it is).

        >>> p = EventParser(RecipientHasher(b"k"), now=lambda: 1_800_000_000.0)
        >>> ev = p.parse(b'{"reply_id": "r-1@x.example", "ts": 1795255200, '
        ...              b'"action": "reassigned"}', "email.reply_feedback", 0, 1)
        >>> ev.type, ev.recipient_hash, ev.attrs["action"], ev.attrs["reply_id"]
        ('reply_feedback', '', 'reassigned', 'r-1@x.example')
        >>> p.parse(b'{"type": "reply_feedback", "reply_id": "r", "ts": 1795255200, '
        ...         b'"action": "liked"}', "email.reply_feedback", 0, 2).error
        "unknown action: 'liked' (one of reassigned, relabelled, first_response, resolved)"
        """
        if topic != REPLY_FEEDBACK_TOPIC:  # no recipient: steps keyed by one must not see it
            raise _Invalid(f"reply_feedback belongs on {REPLY_FEEDBACK_TOPIC}, not {topic}")
        reply_id = _req_str(obj, "reply_id")
        action = _req_str(obj, "action")
        if action not in _FEEDBACK_ACTIONS:
            raise _Invalid(f"unknown action: {action[:40]!r} "
                           f"(one of {', '.join(FEEDBACK_ACTIONS)})")
        for name in ("queue", "intent"):
            _opt_str(obj, name)
        opt = [_opt_str(obj, name) for name in _OPTIONAL_STR]
        attrs = {k: v for k, v in obj.items() if k not in _KNOWN_FIELDS and k != "reply_id"}
        attrs = _clean(attrs, self.hasher.scrub, 1)
        attrs["reply_id"] = reply_id
        opt[1:] = [self.hasher.scrub(v) if v else v for v in opt[1:]]
        return Event(
            opt[0] or self.hasher.payload(raw), int(round(ts * 1000)), "reply_feedback",
            _opt_str(obj, "sender"), "", "", "", _opt_str(obj, "message_id"), *opt[1:7], 0,
            *opt[7:11], 0.0, opt[11], attrs, topic, partition, offset,
        )


def _holdout_group(attrs: dict) -> None:
    """A holdout's control group: `flow` (the default) or `global`; anything else is refused
    (a control group misread would move people between arms)."""
    group = attrs.get("group")
    if group is None:
        return
    if not isinstance(group, str) or group.strip().lower() not in HOLDOUT_GROUPS:
        raise _Invalid(f"group must be one of {', '.join(HOLDOUT_GROUPS)}, got "
                       f"{str(group)[:40]!r}")
    attrs["group"] = group.strip().lower()


def _reply_fields(attrs: dict) -> str | None:
    """Checks a reply's own fields (in `attrs`), puts its text in `body` and its headers in
    the one form the reader takes (name -> string); takes out and returns its `reply_id`.

    Headers come as an object, or as a list of [name, value] pairs (as some inbound
    webhooks send them); a repeated header's values are joined, a number is its text, and
    at most `MAX_REPLY_HEADERS` names are kept. The text may come as `text`, `html`,
    `body_html` or `body_plain` when there is no `body`.

    >>> _reply_fields({"reply_id": "r-1", "headers": {"Precedence": "bulk"}, "body": "hi"})
    'r-1'
    >>> a = {"headers": [["Auto-Submitted", "auto-replied"], ["Received", "a"],
    ...                  ["Received", 7]], "html": "<p>Away</p>"}
    >>> _reply_fields(a), a["headers"], a["body"], "html" in a
    (None, {'Auto-Submitted': 'auto-replied', 'Received': 'a, 7'}, '<p>Away</p>', False)
    >>> _reply_fields({"headers": {"X-Autoreply": {"a": "b"}}})
    Traceback (most recent call last):
    ...
    schemas.events._Invalid: headers must map names to strings: X-Autoreply is an object
    """
    if attrs.get("body") is None:
        for alias in _BODY_ALIASES:
            if isinstance(attrs.get(alias), str):
                attrs["body"] = attrs.pop(alias)
                break
    for alias in _BODY_ALIASES:  # the text never stays in attrs, under any name
        if alias in attrs and isinstance(attrs[alias], str):
            del attrs[alias]
    for name in ("subject", "body"):
        if attrs.get(name) is not None and not isinstance(attrs[name], str):
            raise _Invalid(f"{name} must be a string, got {_kind(attrs[name])}")
    headers = attrs.get("headers")
    if headers is not None:
        attrs["headers"] = _reply_headers(headers)
    reply_id = attrs.pop("reply_id", None)
    if reply_id is not None and not isinstance(reply_id, str):
        raise _Invalid(f"reply_id must be a string, got {_kind(reply_id)}")
    return reply_id


_BODY_ALIASES = ("text", "html", "body_html", "body_plain", "stripped_text")


def _reply_headers(headers: Any) -> dict[str, str]:
    """A reply's headers as name -> string (see `_reply_fields`)."""
    if isinstance(headers, dict):
        pairs = list(headers.items())
    elif isinstance(headers, list) and all(
            isinstance(p, list | tuple) and len(p) == 2 and isinstance(p[0], str)
            for p in headers):
        pairs = [tuple(p) for p in headers]
    else:
        raise _Invalid(f"headers must be an object, got {_kind(headers)}")
    out: dict[str, str] = {}
    for key, value in pairs:
        if isinstance(value, list) and all(_scalar(v) for v in value):
            value = ", ".join(_text(v) for v in value)
        elif _scalar(value):
            value = _text(value)
        else:
            raise _Invalid(f"headers must map names to strings: {key[:40]} is "
                           f"{'an' if _kind(value)[0] in 'aeiou' else 'a'} {_kind(value)}")
        if key in out:
            out[key] = f"{out[key]}, {value}"
        elif len(out) < MAX_REPLY_HEADERS:
            out[key] = value
    return out


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _clean(value: Any, scrub: Scrub | None, depth: int) -> Any:
    """A copy of parsed JSON with every string (and key) scrubbed; refuses deep nesting.

    Scrubbing the parsed values, not the serialised text: replacing inside JSON text
    can cut an escape sequence ("x\\nann@…") and make it unreadable.

    >>> _clean({"a": ["to ann@example.com", 1]}, RecipientHasher(b"k").scrub, 1)
    {'a': ['to hash:206347a99c68', 1]}
    """
    kind = type(value)
    if kind is str:
        return scrub(value) if scrub is not None else value
    if kind is dict:
        if depth > MAX_DEPTH:
            raise _Invalid(f"attrs nested too deep: more than {MAX_DEPTH} levels")
        if scrub is None:
            for item in value.values():
                _clean(item, None, depth + 1)
            return value
        return {scrub(k): _clean(v, scrub, depth + 1) for k, v in value.items()}
    if kind is list:
        if depth > MAX_DEPTH:
            raise _Invalid(f"attrs nested too deep: more than {MAX_DEPTH} levels")
        if scrub is None:
            for item in value:
                _clean(item, None, depth + 1)
            return value
        return [_clean(v, scrub, depth + 1) for v in value]
    return value
