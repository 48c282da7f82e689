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

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any

import orjson


class PayloadError(ValueError):
    """The body as a whole is not a payload of this provider."""


class SignatureError(ValueError):
    """The request is not authentic (bad or missing signature, stale timestamp, replay)."""


class RetryLater(RuntimeError):
    """The request may be fine but cannot be checked now (e.g. the replay memory is full)."""


@dataclass
class Mapped:
    """What one webhook body became. `event_items[i]` / `rejected_items[i]` name the item
    of the body (its index in the array, or line) that `events[i]` / `rejected[i]` came
    from, so a refusal can say which item it was."""

    events: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[tuple[str, bytes]] = field(default_factory=list)  # (reason, raw item)
    notices: list[str] = field(default_factory=list)  # e.g. an SNS subscription to confirm
    #: SNS SubscriptionConfirmations seen: (TopicArn, SubscribeURL).
    confirmations: list[tuple[str, str]] = field(default_factory=list)
    event_items: list[int] = field(default_factory=list)
    rejected_items: list[int] = field(default_factory=list)

    def close_item(self, index: int) -> None:
        """Attribute the events and refusals added since the last call to item `index`."""
        self.event_items += [index] * (len(self.events) - len(self.event_items))
        self.rejected_items += [index] * (len(self.rejected) - len(self.rejected_items))

    @contextmanager
    def item(self, provider: str, index: int, raw: Any, noun: str = "item") -> Iterator[None]:
        """Map one item in the block: whatever it raises makes it (alone) a dead letter.

        The item is all or nothing: events it emitted before failing are taken back.

        >>> m = Mapped()
        >>> with m.item("x", 0, {"a": 1}):
        ...     m.events.append({"ok": 1})
        ...     raise KeyError("boom")
        >>> m.events, m.rejected, m.rejected_items
        ([], [("x: cannot map item: KeyError: 'boom'", b'{"a":1}')], [0])
        """
        n_events = len(self.events)
        try:
            yield
        except Rejected as exc:
            del self.events[n_events:]
            self.rejected.append((f"{provider}: {exc}", raw_of(raw)))
        except (TypeError, ValueError, AttributeError) as exc:  # a field of the wrong shape
            del self.events[n_events:]
            self.rejected.append((f"{provider}: malformed {noun}: {_short(exc)}", raw_of(raw)))
        except Exception as exc:  # noqa: BLE001 - a bug or a shape nobody foresaw: this item only
            del self.events[n_events:]
            self.rejected.append((f"{provider}: cannot map {noun}: {type(exc).__name__}: "
                                  f"{_short(exc)}", raw_of(raw)))
        finally:
            self.close_item(index)


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "…"


#: A dead letter keeps at most this much of an item it cannot encode as JSON.
_MAX_REPR = 64 * 1024


def raw_of(item: Any) -> bytes:
    """The item as bytes for a dead letter; never raises (orjson refuses nesting deeper
    than 254 levels, which a hostile body may hold).

    >>> deep = orjson.loads(b"[" * 300 + b"]" * 300)
    >>> raw_of({"a": [1]}), raw_of(b"x"), raw_of(deep)[:4]
    (b'{"a":[1]}', b'x', b'[[[[')
    """
    if isinstance(item, bytes):
        return item
    try:
        return orjson.dumps(item)
    except (TypeError, ValueError):
        pass
    try:
        return json.dumps(item, default=str).encode()[:_MAX_REPR]
    except (TypeError, ValueError, RecursionError):
        pass
    try:
        return repr(item)[:_MAX_REPR].encode()
    except Exception:  # noqa: BLE001 - nothing better to keep
        return b'"<item that cannot be represented>"'


class ReplayGuard:
    """Remembers signature tokens until they expire, so a captured signed request cannot be
    replayed while its signature is still fresh.

    Memory is bounded: at most `capacity` live tokens; when that many are live, `claim`
    raises `RetryLater` (the provider retries later) instead of forgetting a live token,
    which would reopen the replay window. One process only: replicas behind a load
    balancer each keep their own.

    >>> guard = ReplayGuard(capacity=2)
    >>> guard.claim("t1", now=0.0, ttl=600.0), guard.claim("t1", now=1.0, ttl=600.0)
    (True, False)
    >>> guard.claim("t1", now=601.0, ttl=600.0)  # expired: the signature is stale anyway
    True
    """

    def __init__(self, capacity: int = 200_000):
        self.capacity = capacity
        self._expiry: OrderedDict[str, float] = OrderedDict()  # token -> expiry, in order
        self._lock = threading.Lock()

    def claim(self, token: str, now: float, ttl: float) -> bool:
        """True the first time `token` is seen within `ttl` seconds; False for a repeat."""
        with self._lock:
            while self._expiry:
                oldest, expires = next(iter(self._expiry.items()))
                if expires > now:
                    break
                del self._expiry[oldest]
            if token in self._expiry:
                return False
            if len(self._expiry) >= self.capacity:
                raise RetryLater(f"replay memory full ({self.capacity} live signatures)")
            self._expiry[token] = now + ttl
            return True

    def release(self, token: str) -> None:
        """Forget a token whose request failed on our side, so the provider's retry passes."""
        with self._lock:
            self._expiry.pop(token, None)

    def __len__(self) -> int:
        return len(self._expiry)


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
    """Map each item with `map_one(item, params)`; a refused or malformed item (or one that
    makes `map_one` raise anything at all) becomes a dead letter with its reason, and never
    stops the rest."""
    mapped = Mapped()
    for index, item in enumerate(items):
        with mapped.item(provider, index, item, noun):
            mapped.events.append(map_one(item, params))
    return mapped
