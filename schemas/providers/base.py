"""What every ESP adapter provides: map a webhook body to canonical v1 events.

An adapter module (`schemas/providers/<name>.py`) exposes

    NAME: str
    def map_payload(body: bytes, params: Mapping[str, str]) -> Mapped
    def verify(headers: Mapping[str, str], body: bytes, config: Mapping[str, str]) -> None

`params` are the webhook URL's query parameters (`sender=…` names the sending
identity when the payload does not). `verify` raises `SignatureError` when the
provider signs and the signature does not hold (it returns quietly when no
verification key is configured). Items the adapter cannot map go to
`Mapped.rejected` with a reason, so they reach the dead-letter topic; a body
that cannot be read at all raises `PayloadError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any

import orjson


class PayloadError(ValueError):
    """The body as a whole is not a payload of this provider."""


class SignatureError(ValueError):
    """The request is not authentic (bad or missing signature, stale timestamp)."""


@dataclass
class Mapped:
    events: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[tuple[str, bytes]] = field(default_factory=list)  # (reason, raw item)
    notices: list[str] = field(default_factory=list)  # e.g. an SNS subscription to confirm


def event_id(provider: str, *parts: Any) -> str:
    """A stable id for a provider event that carries none (retries map to the same id)."""
    text = "|".join(str(p) for p in (provider, *parts))
    return f"{provider}:{blake2b(text.encode(), digest_size=12).hexdigest()}"


def header(headers: Mapping[str, str], name: str) -> str:
    """Case-insensitive header lookup."""
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return ""


def canonical(provider: str, **fields: Any) -> dict[str, Any]:
    """A canonical v1 event: drops empty optional fields, tags the provider."""
    event = {k: v for k, v in fields.items() if v is not None and v != ""}
    event["provider"] = provider  # unknown to v1: lands in attrs
    return event


class Rejected(Exception):
    """Internal to adapters: the reason one item is refused (becomes a dead letter)."""


#: An RFC 3463 enhanced status code inside free text ("550 5.7.1 …"), not part of an IP.
STATUS_RE = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d]|\.\d)")


def as_int(value: Any) -> int | None:
    """An integer from a JSON number or digit string; None for anything else (and bools)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def load_json(provider: str, body: bytes, hint: str = "") -> Any:
    """The decoded body, or `PayloadError` naming the provider."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"{provider}: body is not JSON{hint}: {exc}") from None


def as_text(value: Any) -> str:
    """A scalar field as text ("" when absent); custom fields may arrive as numbers."""
    if value is None or isinstance(value, bool | dict | list):
        return ""
    return value if isinstance(value, str) else str(value)


def as_tags(value: Any) -> list[str] | None:
    """One tag or a list of tags (categories, labels) as a list; None when there are none."""
    if isinstance(value, str):
        return [value] if value else None
    if isinstance(value, list):
        return [str(t) for t in value if t] or None
    return None


def as_object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def sender_of(own: Any, params: Mapping[str, str], where: str) -> str:
    """The event's sender: the message's own field, else the webhook URL's `?sender=`.
    `where` tells the user how to put it on the message, for the refusal."""
    sender = as_text(own) or params.get("sender", "")
    if not sender:
        raise Rejected(f"no sender: add ?sender=… to the webhook URL (or {where})")
    return sender


def map_items(provider: str, items: list[Any], map_one: Any, params: Mapping[str, str],
              noun: str = "event") -> Mapped:
    """Map each item with `map_one(item, params)`; a refused or malformed item becomes a
    dead letter with its reason, and never stops the rest."""
    mapped = Mapped()
    for item in items:
        try:
            mapped.events.append(map_one(item, params))
        except Rejected as exc:
            mapped.rejected.append((f"{provider}: {exc}", orjson.dumps(item)))
        except (TypeError, ValueError, AttributeError) as exc:  # a field of the wrong shape
            mapped.rejected.append((f"{provider}: malformed {noun}: {exc}", orjson.dumps(item)))
    return mapped
