"""Raw RFC 5322 replies (`POST /v1/inbound/mime`, `mailflow replay` of `.eml`/mbox): one
body is one message, mapped by `schemas.mime.reply_from_mime` to a `reply` event.

Not an ESP webhook: it is not served under `/v1/webhooks/`; the receiver protects it with
the ingest token, as canonical posts. A body that is not a readable reply raises
`PayloadError` with the reason (the receiver answers 400 and dead-letters it).

>>> raw = (b"From: ann@example.com\\nTo: reply@acme.example\\nIn-Reply-To: <m-1@acme.example>"
...        b"\\nMessage-ID: <r-1@example.com>\\nDate: Sat, 21 Nov 2026 10:00:00 +0000\\n\\nYes")
>>> event = map_payload(raw, {"sender": "news.acme.example"}).events[0]
>>> event["sender"], event["event_id"] == map_payload(raw, {}).events[0]["event_id"]
('news.acme.example', True)
>>> map_payload(b"\\n\\n", {})
Traceback (most recent call last):
...
schemas.providers.base.PayloadError: empty message
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from schemas.mime import reply_from_mime
from schemas.providers.base import Mapped, PayloadError, event_id

NAME = "mime"


def map_payload(body: bytes, params: Mapping[str, str]) -> Mapped:
    try:
        event = reply_from_mime(body, ts=time.time(), sender=params.get("sender") or None)
    except ValueError as exc:
        raise PayloadError(str(exc)) from None
    # the reply's own id is the dedup key: a retried post maps to the same event id
    event["event_id"] = event_id(NAME, event["reply_id"])
    event["provider"] = NAME
    mapped = Mapped(events=[event])
    mapped.close_item(0)
    return mapped


def verify(headers: Mapping[str, str], body: bytes, config: Mapping[str, str]) -> None:
    """Replies come from your own mail server: the receiver checks the ingest token."""
