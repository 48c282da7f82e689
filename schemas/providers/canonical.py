"""Canonical v1 events posted directly (your own MTA): a JSON object, a JSON
array of objects, or JSON lines. Validation happens in the receiver with the
job's own parser, so what is accepted here is what the job accepts."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from schemas.providers.base import Mapped, PayloadError, Rejected

NAME = "canonical"


def map_payload(body: bytes, params: Mapping[str, str]) -> Mapped:
    text = body.strip()
    if not text:
        raise PayloadError("empty body")
    try:
        parsed = orjson.loads(text)
        items = parsed if isinstance(parsed, list) else [parsed]
    except orjson.JSONDecodeError:
        items = []
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise PayloadError(f"neither JSON nor JSON lines: {exc}") from None
    mapped = Mapped()
    default_sender = params.get("sender", "")
    for index, item in enumerate(items):
        with mapped.item(NAME, index, item):
            if not isinstance(item, dict):
                raise Rejected("item is not a JSON object")
            if default_sender and "sender" not in item:
                item = {**item, "sender": default_sender}
            mapped.events.append(item)
    return mapped


def verify(headers: Mapping[str, str], body: bytes, config: Mapping[str, str]) -> None:
    """Canonical posts come from your own systems: protect them with the ingest token."""
