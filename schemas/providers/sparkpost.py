"""SparkPost webhooks: a JSON array of `{"msys": {"<class>_event": {"type": ...}}}`.

Event types and what they become (the class key, e.g. `message_event`, only groups them):

| SparkPost `type` | canonical |
| --- | --- |
| injection | sent |
| delivery | delivered |
| bounce, out_of_band | bounce (by `bounce_class`, see below) |
| delay | deferred |
| policy_rejection, generation_rejection | dropped |
| spam_complaint | complaint |
| open, initial_open, amp_open, amp_initial_open | open |
| click, amp_click | click |
| list_unsubscribe, link_unsubscribe | unsubscribe |
| generation_failure, relay_*, sms_status, ab_test_*, anything else | rejected, with the reason |

SparkPost's documented bounce classes, with its own category, which `bounce_kind`
carries as `"sparkpost:{class}:{category}"` (so `classify_bounce` falls back on the
category when the diagnostic says nothing it knows):

| class | name | category |
| --- | --- | --- |
| 1 | Undetermined | undetermined |
| 10 | Invalid Recipient | hard |
| 20, 21, 22, 23, 24 | Soft Bounce, DNS Failure, Mailbox Full, Too Large, Timeout | soft |
| 25 | Admin Failure (SparkPost's own policy, e.g. suppression) | admin: `dropped` |
| 30 | Generic Bounce: No RCPT | hard |
| 40 | Generic Bounce | soft |
| 50, 51, 52 | Mail Block, Spam Block, Spam Content | block |
| 53, 54 | Prohibited Attachment, Relaying Denied | block |
| 60 | Auto-Reply | rejected: neither a failure nor the recipient's reply |
| 70 | Transient Failure | soft |
| 80 | Subscribe | rejected: no v1 type |
| 90 | Unsubscribe | `unsubscribe` |
| 100 | Challenge-Response | soft |

An auto-reply (60) is not mapped to `reply`: a vacation notice says nothing about
the recipient's interest and would count as genuine engagement.

Fields: `rcpt_to` (else `raw_rcpt_to`) → recipient; `message_id` (else
`transmission_id`) → `message_id` and `provider_message_id`; `timestamp` (epoch
seconds as a string) → ts; `event_id` → `"sparkpost:{event_id}"`; `campaign_id`
(else metadata `campaign_id`); metadata `flow_id`, `variant`; `error_code` →
`smtp_code`; `raw_reason` (else `reason`) → diagnostic, and its x.y.z →
`smtp_status`; for engagement events `ip_address`, `user_agent`, `target_link_url`
→ `ip`, `user_agent`, `url` (in message events `ip_address` is the receiving MX:
kept as `remote_mta_ip`). Metadata is `rcpt_meta` over the transmission's
`metadata`. `sender` is, in order: metadata `sender`, the webhook's `?sender=`,
the domain of `friendly_from`, the domain of `msg_from`.

`verify` checks HTTP basic auth against `config["sparkpost_basic_auth"]`
("user:password") when it is set; SparkPost does not sign its webhooks.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Mapping
from typing import Any

import orjson

from schemas.providers.base import (
    Mapped,
    PayloadError,
    SignatureError,
    as_int,
    canonical,
    event_id,
    header,
    raw_of,
)

NAME = "sparkpost"

_TYPES = {
    "injection": "sent", "delivery": "delivered", "bounce": "bounce", "out_of_band": "bounce",
    "delay": "deferred", "policy_rejection": "dropped", "generation_rejection": "dropped",
    "spam_complaint": "complaint", "open": "open", "initial_open": "open", "amp_open": "open",
    "amp_initial_open": "open", "click": "click", "amp_click": "click",
    "list_unsubscribe": "unsubscribe", "link_unsubscribe": "unsubscribe",
}
_ENGAGEMENT = frozenset({"open", "click", "unsubscribe"})

#: class -> (SparkPost's name, SparkPost's category).
BOUNCE_CLASSES: dict[int, tuple[str, str]] = {
    1: ("Undetermined", "undetermined"),
    10: ("Invalid Recipient", "hard"),
    20: ("Soft Bounce", "soft"),
    21: ("DNS Failure", "soft"),
    22: ("Mailbox Full", "soft"),
    23: ("Too Large", "soft"),
    24: ("Timeout", "soft"),
    25: ("Admin Failure", "admin"),
    30: ("Generic Bounce: No RCPT", "hard"),
    40: ("Generic Bounce", "soft"),
    50: ("Mail Block", "block"),
    51: ("Spam Block", "block"),
    52: ("Spam Content", "block"),
    53: ("Prohibited Attachment", "block"),
    54: ("Relaying Denied", "block"),
    60: ("Auto-Reply", "soft"),
    70: ("Transient Failure", "soft"),
    80: ("Subscribe", "admin"),
    90: ("Unsubscribe", "hard"),
    100: ("Challenge-Response", "soft"),
}
#: Bounce classes that are not a failed delivery: another type, or none (None: rejected).
_BOUNCE_CLASS_TYPES: dict[int, str | None] = {25: "dropped", 60: None, 80: None,
                                             90: "unsubscribe"}

_STATUS = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d.])")
_EPOCH = re.compile(r"^\d{9,13}(?:\.\d+)?$")


def map_payload(body: bytes, params: Mapping[str, str]) -> Mapped:
    text = body.strip()
    if not text:
        raise PayloadError("sparkpost: empty body")
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"sparkpost: body is not JSON: {exc}") from None
    if isinstance(parsed, dict):  # SparkPost always sends an array; a lone object is kind
        parsed = [parsed]
    if not isinstance(parsed, list):
        raise PayloadError("sparkpost: body is not a JSON array of events")
    mapped = Mapped()
    default_sender = params.get("sender", "")
    for index, item in enumerate(parsed):
        raw = raw_of(item)
        with mapped.item(NAME, index, raw):
            _map_item(item, raw, default_sender, mapped)
    return mapped


def _map_item(item: Any, raw: bytes, default_sender: str, mapped: Mapped) -> None:
    msys = item.get("msys") if isinstance(item, dict) else None
    if not isinstance(msys, dict):
        mapped.rejected.append(("sparkpost: item is not {\"msys\": {...}}", raw))
        return
    # `{"msys": {}}` is the ping SparkPost sends when a webhook is created or tested.
    for event_class, ev in msys.items():
        if not isinstance(ev, dict):
            mapped.rejected.append((f"sparkpost: {event_class} is not an object", raw))
            continue
        _map_event(event_class, ev, raw, default_sender, mapped)


def _map_event(event_class: str, ev: dict[str, Any], raw: bytes, default_sender: str,
               mapped: Mapped) -> None:
    kind = _text(ev.get("type"))
    event_type = _TYPES.get(kind)
    if event_type is None:
        mapped.rejected.append((f"sparkpost: unsupported event type {kind[:40]!r} "
                                f"({event_class})", raw))
        return
    bounce_class = as_int(ev.get("bounce_class"))
    bounce_kind = None
    if bounce_class is not None:
        _name, category = BOUNCE_CLASSES.get(bounce_class, ("", "unknown"))
        bounce_kind = f"sparkpost:{bounce_class}:{category}"
        if kind in ("bounce", "out_of_band") and bounce_class in _BOUNCE_CLASS_TYPES:
            event_type = _BOUNCE_CLASS_TYPES[bounce_class]
            if event_type is None:
                mapped.rejected.append((f"sparkpost: bounce_class {bounce_class} "
                                        f"({BOUNCE_CLASSES[bounce_class][0]}) is no delivery "
                                        "failure and has no v1 type", raw))
                return
    recipient = _text(ev.get("rcpt_to")) or _text(ev.get("raw_rcpt_to"))
    ts = _timestamp(ev.get("timestamp"))
    message_id = _text(ev.get("message_id")) or _text(ev.get("transmission_id"))
    if not recipient or ts is None or not message_id:
        missing = [name for name, value in (("rcpt_to", recipient), ("timestamp", ts),
                                            ("message_id", message_id)) if not value]
        mapped.rejected.append((f"sparkpost: {kind} event without {', '.join(missing)}", raw))
        return

    meta = _metadata(ev)
    reason = _text(ev.get("raw_reason")) or _text(ev.get("reason"))
    status = _STATUS.search(reason)
    engagement = event_type in _ENGAGEMENT
    url = _text(ev.get("target_link_url"))
    provider_id = _scalar(ev.get("event_id"))
    mapped.events.append(canonical(
        NAME,
        type=event_type,
        ts=ts,
        sender=(meta.get("sender") or default_sender or _domain(_text(ev.get("friendly_from")))
                or _domain(_text(ev.get("msg_from")))),
        recipient=recipient,
        message_id=message_id,
        event_id=(f"{NAME}:{provider_id}" if provider_id
                  else event_id(NAME, kind, message_id, recipient.lower(), ts, url)),
        campaign_id=_text(ev.get("campaign_id")) or meta.get("campaign_id"),
        flow_id=meta.get("flow_id"),
        variant=meta.get("variant"),
        user_agent=_text(ev.get("user_agent")) if engagement else None,
        ip=_text(ev.get("ip_address")) if engagement else None,
        url=url,
        smtp_code=_smtp_code(ev.get("error_code")),
        smtp_status=status.group(1) if status else None,
        diagnostic=reason,
        bounce_kind=bounce_kind,
        provider_message_id=message_id,
        provider_event=kind,
        transmission_id=_text(ev.get("transmission_id")),
        remote_mta_ip=None if engagement else _text(ev.get("ip_address")),
        sending_ip=_text(ev.get("sending_ip")),
        ip_pool=_text(ev.get("ip_pool")),
        feedback_type=_text(ev.get("fbtype")),
        subaccount_id=_scalar(ev.get("subaccount_id")),
    ))


# --- small readers -----------------------------------------------------------------------------
def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return ""
    return str(value) if isinstance(value, str | int) else ""



def _smtp_code(value: Any) -> int | None:
    code = as_int(value)
    return code if code is not None and 200 <= code <= 599 else None


def _timestamp(value: Any) -> int | float | str | None:
    """Epoch seconds (SparkPost sends them as a string) as a number; RFC 3339 text as is."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if _EPOCH.match(text):
        return int(text) if text.isdigit() else float(text)
    return text


def _metadata(ev: dict[str, Any]) -> dict[str, str]:
    """Recipient metadata over transmission metadata; string and number values only."""
    out: dict[str, str] = {}
    for source in (ev.get("metadata"), ev.get("rcpt_meta")):
        if isinstance(source, dict):
            for key, value in source.items():
                text = _scalar(value) if not isinstance(value, float) else repr(value)
                if text:
                    out[key] = text
    return out


def _domain(address: str) -> str:
    address = address.strip().strip("<>")
    return address.rpartition("@")[2].strip().lower() if "@" in address else ""


# --- authentication ----------------------------------------------------------------------------
def verify(headers: Mapping[str, str], body: bytes, config: Mapping[str, Any]) -> None:
    """HTTP basic auth against `config["sparkpost_basic_auth"]` ("user:password"), if set.

    SparkPost sends the credentials configured on the webhook with every batch
    (its OAuth 2 option and custom headers are not checked here).
    """
    expected = config.get("sparkpost_basic_auth")
    if not expected:
        return
    value = header(headers, "Authorization").strip()
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise SignatureError("sparkpost: missing basic auth credentials")
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("sparkpost: basic auth credentials are not base64") from None
    if not hmac.compare_digest(given, str(expected).encode()):
        raise SignatureError("sparkpost: wrong basic auth credentials")
