"""Malformed input of every kind the job must refuse, for the demo and the tests.

Each sample is `(kind, topic, raw bytes, expected reason prefix)`.
"""

from __future__ import annotations

import time

import orjson

from schemas.events import MAX_MESSAGE_BYTES


def _valid(now: float, n: int) -> dict:
    return {"type": "delivered", "ts": now - 60, "sender": "news.acme.example",
            "recipient": f"bad{n}@example.org", "message_id": f"bad-{n}"}


def malformed_samples(n: int = 0, now: float | None = None) -> list[tuple[str, str, bytes, str]]:
    """One message of each malformed kind; `n` makes their ids unique per round."""
    now = time.time() if now is None else now
    base = _valid(now, n)

    def variant(**changes: object) -> bytes:
        obj = dict(base)
        for key, value in changes.items():
            if value is ...:
                obj.pop(key, None)
            else:
                obj[key] = value
        return orjson.dumps(obj)

    deliveries = "email.deliveries"
    return [
        ("not_json", deliveries, b'{"type": "delivered", "ts": ', "not JSON"),
        ("not_object", deliveries, b'["delivered", 1700000000]', "not a JSON object"),
        ("wrong_type_sender", deliveries, variant(sender=42), "sender must be a string"),
        ("wrong_type_ts", deliveries, variant(ts=True), "ts must be"),
        ("missing_sender", deliveries, variant(sender=...), "missing required field: sender"),
        ("missing_ts", deliveries, variant(ts=...), "missing required field: ts"),
        ("missing_recipient", deliveries, variant(recipient=...),
         "missing required field: recipient"),
        ("missing_message_id", deliveries, variant(message_id=...),
         "missing required field: message_id"),
        ("missing_type", deliveries, variant(type=...), "missing required field: type"),
        ("unknown_type", deliveries, variant(type="teleported"), "unknown type"),
        ("bad_recipient", deliveries, variant(recipient="not-an-address"),
         "recipient is not an email address"),
        ("ts_before_2000", deliveries, variant(ts="1999-12-31T23:59:59Z"), "ts before 2000"),
        ("ts_future", deliveries, variant(ts=now + 3 * 86400), "ts more than a day"),
        ("ts_garbage", deliveries, variant(ts="yesterday"), "ts is not RFC 3339"),
        ("oversized", deliveries,
         variant(padding="x" * (MAX_MESSAGE_BYTES + 10)), "message too large"),
    ]
