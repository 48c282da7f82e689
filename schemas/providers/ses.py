"""Amazon SES: event publishing and notifications, as SNS, EventBridge or Firehose deliver them.

Accepted bodies (one request may hold one object, a JSON array, or JSON lines as
Firehose writes them):

- an **SNS envelope** `{"Type": "Notification", "Message": "<SES event as a JSON
  string>", "MessageId", "TopicArn", "Timestamp", "SignatureVersion", "Signature",
  "SigningCertURL", ...}`; `SubscriptionConfirmation` and `UnsubscribeConfirmation`
  carry no events and become a notice;
- the **SES event itself** (SNS "raw message delivery", Firehose records): event
  publishing names its kind in `eventType`, the older identity notifications in
  `notificationType`; both carry the same `mail` object;
- an **EventBridge** event `{"source": "aws.ses", "detail": <SES event>, ...}`.

Kinds (`eventType` / `notificationType`) and what they become:

| SES | canonical | one event per |
| --- | --- | --- |
| Send | sent | `mail.destination` |
| Delivery | delivered (`smtpResponse` → smtp fields) | `delivery.recipients` |
| Bounce: Permanent, Undetermined | bounce | `bounce.bouncedRecipients` |
| Bounce: Transient (any sub-type) | bounce | `bounce.bouncedRecipients` |
| Bounce: Suppressed, OnAccountSuppressionList | dropped | `bounce.bouncedRecipients` |
| Complaint | complaint | `complaint.complainedRecipients` |
| Complaint: OnAccountSuppressionList | dropped | `complaint.complainedRecipients` |
| Reject | dropped (`reject.reason` → diagnostic) | `mail.destination` |
| DeliveryDelay | deferred | `deliveryDelay.delayedRecipients` |
| Open, Click | open, click (`ipAddress`, `userAgent`, `link`) | the one `mail.destination` |
| Subscription | unsubscribe when it opts out; an opt-in is rejected | the one `mail.destination` |
| Rendering Failure, Received, anything else | rejected, with the reason | |

A Transient bounce (General, MailboxFull, MessageTooLarge, ContentRejected,
AttachmentRejected) is a `bounce`, not a `deferred`: SES sends it once it has
stopped retrying, so the message was not delivered (`bounce_kind` "Transient/…"
and the diagnostic make it a soft, block or other bounce in `classify_bounce`);
a delay while SES still retries arrives as a DeliveryDelay event. Messages SES
never attempted because of a suppression list are `dropped`: the sender did not
earn that bounce or complaint again.

Opens and clicks do not say which recipient acted, so they map only when the
message had a single destination (the case of marketing and transactional mail);
otherwise the item is rejected rather than credited to every recipient.

Fields: `message_id` and `provider_message_id` are `mail.messageId` (what the
SES API returned to the sender). `sender` is, in order, the message tag `sender`,
the webhook's `?sender=` parameter, the `ses:from-domain` tag, the domain of
`mail.source`. Message tags `campaign_id`, `flow_id`, `variant` map to their
fields; `ses:configuration-set` is kept as `configuration_set`. `bounce_kind` is
`"{bounceType}/{bounceSubType}"` (`"DeliveryDelay/{delayType}"` for delays);
`diagnosticCode` ("smtp; 550 5.1.1 user unknown") gives `diagnostic` without its
type prefix, `smtp_code` (550) and, with `status`, `smtp_status`. Event ids are
derived from the content, so the same SES event delivered by SNS, Firehose or a
retry gets the same id.

`verify` checks SNS signatures (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA) and
the message's age when `config["ses_verify_sns"]` is set, and the topic against
`config["ses_topic_arns"]` when that is set; see its docstring.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from email.utils import parseaddr
from functools import lru_cache
from typing import Any

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from schemas.providers.base import (
    Mapped,
    PayloadError,
    SignatureError,
    canonical,
    event_id,
    raw_of,
)

NAME = "ses"

_SNS_TYPES = frozenset({"Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"})
#: SNS signs "key\nvalue\n" for these keys, in this order ("Subject" only when present).
_SIGNED_KEYS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                 "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                "TopicArn", "Type"),
}
_OPTIONAL_SIGNED = frozenset({"Subject"})
_SIGNATURE_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
#: Certificates are served by SNS itself: https://sns.<region>.amazonaws.com[.cn]/….pem
_SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
_MAX_CERT_BYTES = 64 * 1024
#: An SNS message published longer ago than this is refused (replay); SNS's default
#: delivery policy stops retrying well within it.
MAX_AGE_S = 3600.0
#: ... and one stamped further ahead of our clock than this (clock skew).
MAX_FUTURE_S = 300.0
_SUPPRESSED = frozenset({"Suppressed", "OnAccountSuppressionList"})
#: RFC 3464 diagnostic type in front of the reply ("smtp; 550 ...", "X-Postfix; ...").
_DIAGNOSTIC_TYPE = re.compile(r"^\s*[A-Za-z][A-Za-z0-9-]*;\s*")
_REPLY_CODE = re.compile(r"^([245]\d\d)(?![\d.])")
_STATUS = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d.])")


# --- mapping ---------------------------------------------------------------------------------
def map_payload(body: bytes, params: Mapping[str, str]) -> Mapped:
    mapped = Mapped()
    default_sender = params.get("sender", "")
    for index, (obj, raw) in enumerate(_documents(body)):
        with mapped.item(NAME, index, raw, "document"):
            _map_document(obj, raw, default_sender, mapped)
    return mapped


#: Stands for a JSON line that does not parse (it becomes a dead letter of its own).
_NOT_JSON = object()


def _documents(body: bytes) -> Iterator[tuple[Any, bytes]]:
    """(parsed item, its raw bytes) for an object, an array, or JSON lines."""
    text = body.strip()
    if not text:
        raise PayloadError("ses: empty body")
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        items: list[tuple[Any, bytes]] = []
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            found = _concatenated(line)
            items.extend([(_NOT_JSON, line)] if found is None else found)
        if all(obj is _NOT_JSON for obj, _ in items):
            raise PayloadError("ses: body is neither JSON nor JSON lines") from None
        yield from items
        return
    if isinstance(parsed, dict):
        if _kind_of(parsed) is None:
            raise PayloadError("ses: not an SNS message, an SES event or an EventBridge event")
        yield parsed, text
    elif isinstance(parsed, list):
        for item in parsed:
            yield item, raw_of(item)
    else:
        raise PayloadError("ses: body is not a JSON object or array")


def _concatenated(line: bytes) -> list[tuple[Any, bytes]] | None:
    """JSON values written back to back: Firehose joins records without a separator."""
    try:
        return [(orjson.loads(line), line)]
    except orjson.JSONDecodeError:
        pass
    decoder, text, pos, out = json.JSONDecoder(), line.decode("utf-8", "replace"), 0, []
    try:
        while pos < len(text):
            value, end = decoder.raw_decode(text, pos)
            out.append((value, text[pos:end].encode()))
            while end < len(text) and text[end].isspace():
                end += 1
            pos = end
    except ValueError:
        return None
    return out


def _kind_of(obj: dict[str, Any]) -> str | None:
    """"sns", "eventbridge", "event", or None for something that is not SES at all."""
    if obj.get("Type") in _SNS_TYPES:
        return "sns"
    if obj.get("source") == "aws.ses" and isinstance(obj.get("detail"), dict):
        return "eventbridge"
    if "eventType" in obj or "notificationType" in obj:
        return "event"
    return None


def _map_document(obj: Any, raw: bytes, default_sender: str, mapped: Mapped) -> None:
    if obj is _NOT_JSON:
        mapped.rejected.append(("ses: line is not JSON", raw))
        return
    if not isinstance(obj, dict):
        mapped.rejected.append(("ses: item is not a JSON object", raw))
        return
    kind = _kind_of(obj)
    if kind == "sns":
        _map_sns(obj, raw, default_sender, mapped)
    elif kind == "eventbridge":
        detail = obj["detail"]
        _map_event(detail, orjson.dumps(detail), default_sender, mapped)
    elif kind == "event":
        _map_event(obj, raw, default_sender, mapped)
    else:
        mapped.rejected.append(("ses: item is neither an SNS message nor an SES event", raw))


def _map_sns(envelope: dict[str, Any], raw: bytes, default_sender: str, mapped: Mapped) -> None:
    sns_type = envelope["Type"]
    topic = envelope.get("TopicArn", "?")
    if sns_type == "SubscriptionConfirmation":
        # The receiver logs this and, when configured (and the message verified, and the
        # topic allowed), visits the URL (the only one) to confirm.
        url = envelope.get("SubscribeURL", "")
        mapped.notices.append(f"SNS subscription to {topic} awaits confirmation: {url}")
        if isinstance(topic, str) and isinstance(url, str) and url:
            mapped.confirmations.append((topic, url))
        return
    if sns_type == "UnsubscribeConfirmation":
        # Its SubscribeURL would subscribe again: not repeated here, so nothing visits it.
        mapped.notices.append(f"SNS subscription to {topic} was deleted "
                              f"(unsubscribe confirmation {envelope.get('MessageId', '?')})")
        return
    message = envelope.get("Message")
    if not isinstance(message, str):
        mapped.rejected.append(("ses: SNS notification without a Message string", raw))
        return
    try:
        event = orjson.loads(message)
    except orjson.JSONDecodeError:
        mapped.rejected.append(("ses: SNS Message is not JSON (not an SES notification)", raw))
        return
    if not isinstance(event, dict):
        mapped.rejected.append(("ses: SNS Message is not a JSON object", raw))
        return
    _map_event(event, message.encode(), default_sender, mapped)


def _map_event(ev: dict[str, Any], raw: bytes, default_sender: str, mapped: Mapped) -> None:
    kind = ev.get("eventType") or ev.get("notificationType")
    if kind == "AmazonSnsSubscriptionSucceeded":  # SES's test message on a new topic
        mapped.notices.append(f"SES: {_text(ev.get('message')) or kind}")
        return
    if not isinstance(kind, str) or not kind:
        mapped.rejected.append(("ses: event without eventType or notificationType", raw))
        return
    handler = _HANDLERS.get(kind)
    if handler is None:
        mapped.rejected.append((f"ses: unsupported event type {kind[:40]!r}", raw))
        return
    mail = ev.get("mail")
    if not isinstance(mail, dict) or not _text(mail.get("messageId")):
        mapped.rejected.append((f"ses: {kind} event without mail.messageId", raw))
        return
    detail = ev.get(_DETAIL_KEY.get(kind, ""))
    if not isinstance(detail, dict):
        detail = {}
    handler(_Context(kind, mail, detail, raw, default_sender, mapped))


class _Context:
    """One SES event being mapped: the fields its recipients share, and where results go."""

    __slots__ = ("kind", "mail", "detail", "raw", "mapped", "common")

    def __init__(self, kind: str, mail: dict[str, Any], detail: dict[str, Any], raw: bytes,
                 default_sender: str, mapped: Mapped):
        self.kind, self.mail, self.detail, self.raw, self.mapped = kind, mail, detail, raw, mapped
        tags = _tags(mail.get("tags"))
        message_id = _text(mail.get("messageId"))
        self.common: dict[str, Any] = {
            "sender": (tags.get("sender") or default_sender or tags.get("ses:from-domain")
                       or _domain(_text(mail.get("source")))),
            "message_id": message_id,
            "campaign_id": tags.get("campaign_id"),
            "flow_id": tags.get("flow_id"),
            "variant": tags.get("variant"),
            "provider_message_id": message_id,
            "provider_event": kind,
            "configuration_set": tags.get("ses:configuration-set"),
        }

    def destinations(self) -> list[str]:
        dest = self.mail.get("destination")
        return [_address(d) for d in dest if isinstance(d, str)] if isinstance(dest, list) else []

    def single_destination(self) -> str | None:
        dest = self.destinations()
        if len(dest) == 1:
            return dest[0]
        self.reject(f"{self.kind} event does not name its recipient and the message had "
                    f"{len(dest)} destinations")
        return None

    def reject(self, why: str) -> None:
        self.mapped.rejected.append((f"ses: {why}", self.raw))

    def emit(self, event_type: str, ts: Any, recipient: str, *id_parts: Any,
             **fields: Any) -> None:
        if not recipient:
            self.reject(f"{self.kind} item without a recipient address")
            return
        if not ts:
            self.reject(f"{self.kind} event without a timestamp")
            return
        eid = event_id(NAME, self.kind, self.common["message_id"], recipient.lower(), ts,
                       *id_parts)
        self.mapped.events.append(canonical(NAME, type=event_type, ts=ts, recipient=recipient,
                                            event_id=eid, **self.common, **fields))


def _send(ctx: _Context) -> None:
    for recipient in ctx.destinations() or [""]:
        ctx.emit("sent", _text(ctx.mail.get("timestamp")), recipient)


def _delivery(ctx: _Context) -> None:
    d = ctx.detail
    code, status, diagnostic = _smtp(_text(d.get("smtpResponse")))
    recipients = d.get("recipients")
    recipients = ([_address(r) for r in recipients if isinstance(r, str)]
                  if isinstance(recipients, list) else ctx.destinations())
    for recipient in recipients or [""]:
        ctx.emit("delivered", _text(d.get("timestamp")), recipient, smtp_code=code,
                 smtp_status=status, diagnostic=diagnostic,
                 reporting_mta=_text(d.get("reportingMTA")),
                 remote_mta_ip=_text(d.get("remoteMtaIp")),
                 processing_time_ms=d.get("processingTimeMillis"))


def _bounce(ctx: _Context) -> None:
    d = ctx.detail
    bounce_type, sub_type = _text(d.get("bounceType")), _text(d.get("bounceSubType"))
    event_type = "dropped" if sub_type in _SUPPRESSED else "bounce"
    for item in _items(d.get("bouncedRecipients")) or [{}]:
        code, status, diagnostic = _smtp(_text(item.get("diagnosticCode")), item.get("status"))
        ctx.emit(event_type, _text(d.get("timestamp")), _address(_text(item.get("emailAddress"))),
                 _text(d.get("feedbackId")),
                 smtp_code=code, smtp_status=status, diagnostic=diagnostic,
                 bounce_kind=f"{bounce_type}/{sub_type}" if bounce_type else None,
                 dsn_action=_text(item.get("action")), feedback_id=_text(d.get("feedbackId")),
                 reporting_mta=_text(d.get("reportingMTA")),
                 remote_mta_ip=_text(d.get("remoteMtaIp")))


def _complaint(ctx: _Context) -> None:
    d = ctx.detail
    suppressed = d.get("complaintSubType") == "OnAccountSuppressionList"
    for item in _items(d.get("complainedRecipients")) or [{}]:
        ctx.emit("dropped" if suppressed else "complaint", _text(d.get("timestamp")),
                 _address(_text(item.get("emailAddress"))), _text(d.get("feedbackId")),
                 bounce_kind="Complaint/OnAccountSuppressionList" if suppressed else None,
                 feedback_type=_text(d.get("complaintFeedbackType")),
                 feedback_id=_text(d.get("feedbackId")))


def _reject(ctx: _Context) -> None:
    for recipient in ctx.destinations() or [""]:
        ctx.emit("dropped", _text(ctx.mail.get("timestamp")), recipient,
                 diagnostic=_text(ctx.detail.get("reason")))


def _delivery_delay(ctx: _Context) -> None:
    d = ctx.detail
    delay_type = _text(d.get("delayType"))
    for item in _items(d.get("delayedRecipients")) or [{}]:
        code, status, diagnostic = _smtp(_text(item.get("diagnosticCode")), item.get("status"))
        ctx.emit("deferred", _text(d.get("timestamp")), _address(_text(item.get("emailAddress"))),
                 smtp_code=code, smtp_status=status, diagnostic=diagnostic,
                 bounce_kind=f"DeliveryDelay/{delay_type}" if delay_type else None,
                 expiration_time=_text(d.get("expirationTime")),
                 reporting_mta=_text(d.get("reportingMTA")))


def _open(ctx: _Context) -> None:
    recipient = ctx.single_destination()
    if recipient is not None:
        d = ctx.detail
        ctx.emit("open", _text(d.get("timestamp")), recipient,
                 ip=_text(d.get("ipAddress")), user_agent=_text(d.get("userAgent")))


def _click(ctx: _Context) -> None:
    recipient = ctx.single_destination()
    if recipient is not None:
        d = ctx.detail
        link = _text(d.get("link"))
        ctx.emit("click", _text(d.get("timestamp")), recipient, link,
                 ip=_text(d.get("ipAddress")), user_agent=_text(d.get("userAgent")), url=link,
                 link_tags=d.get("linkTags") or None)


def _rendering_failure(ctx: _Context) -> None:
    d = ctx.detail
    ctx.reject(f"Rendering Failure of template {_text(d.get('templateName')) or '?'}: "
               f"{_text(d.get('errorMessage')) or 'no error message'}")


def _subscription(ctx: _Context) -> None:
    d = ctx.detail
    new, old = d.get("newTopicPreferences"), d.get("oldTopicPreferences")
    new = new if isinstance(new, dict) else {}
    old = old if isinstance(old, dict) else {}
    opted_out = sorted(_opted_out(new) - _opted_out(old))
    unsubscribed_all = new.get("unsubscribeAll") is True and old.get("unsubscribeAll") is not True
    if not (unsubscribed_all or opted_out):
        ctx.reject("Subscription event is not an unsubscribe (opt-ins have no v1 type)")
        return
    recipient = ctx.single_destination()
    if recipient is not None:
        ctx.emit("unsubscribe", _text(d.get("timestamp")), recipient,
                 contact_list=_text(d.get("contactList")),
                 unsubscribe_source=_text(d.get("source")),
                 unsubscribe_all=new.get("unsubscribeAll") is True or None,
                 topics=opted_out or None)


def _opted_out(preferences: dict[str, Any]) -> set[str]:
    return {_text(t.get("topicName")) for t in _items(preferences.get("topicSubscriptionStatus"))
            if t.get("subscriptionStatus") == "OptOut"}


_HANDLERS: dict[str, Callable[[_Context], None]] = {
    "Send": _send, "Delivery": _delivery, "Bounce": _bounce, "Complaint": _complaint,
    "Reject": _reject, "DeliveryDelay": _delivery_delay, "Open": _open, "Click": _click,
    "Rendering Failure": _rendering_failure, "Subscription": _subscription,
}
#: The object holding each kind's details (event publishing and notifications agree).
_DETAIL_KEY = {
    "Send": "send", "Delivery": "delivery", "Bounce": "bounce", "Complaint": "complaint",
    "Reject": "reject", "DeliveryDelay": "deliveryDelay", "Open": "open", "Click": "click",
    "Rendering Failure": "failure", "Subscription": "subscription",
}


# --- small readers -----------------------------------------------------------------------------
def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _items(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _tags(tags: Any) -> dict[str, str]:
    """Message tags: SES gives every tag as a list of strings; the first value counts."""
    if not isinstance(tags, dict):
        return {}
    out: dict[str, str] = {}
    for key, values in tags.items():
        value = values[0] if isinstance(values, list) and values else values
        if isinstance(value, str) and value:
            out[key] = value
    return out


def _address(text: str) -> str:
    """The bare address of "Name <addr>" or "addr"."""
    text = text.strip()
    return parseaddr(text)[1] if "<" in text else text


def _domain(address: str) -> str:
    bare = _address(address)
    return bare.rpartition("@")[2].strip().lower() if "@" in bare else ""


def _smtp(text: str, status: Any = None) -> tuple[int | None, str, str]:
    """(reply code, enhanced status, diagnostic) from "smtp; 550 5.1.1 user unknown".

    >>> _smtp("smtp; 550 5.1.1 user unknown", "5.1.1")
    (550, '5.1.1', '550 5.1.1 user unknown')
    >>> _smtp("250 2.6.0 Message received")
    (250, '2.6.0', '250 2.6.0 Message received')
    """
    diagnostic = _DIAGNOSTIC_TYPE.sub("", text).strip()
    reply = _REPLY_CODE.match(diagnostic)
    found = _STATUS.fullmatch(status.strip()) if isinstance(status, str) else None
    if found is None:
        found = _STATUS.search(diagnostic)
    return (int(reply.group(1)) if reply else None, found.group(1) if found else "", diagnostic)


# --- SNS signatures ----------------------------------------------------------------------------
def verify(headers: Mapping[str, str], body: bytes, config: Mapping[str, Any]) -> None:
    """Check the SNS signature when `config["ses_verify_sns"]` is truthy; else accept.

    The signed text is "key\\nvalue\\n" for the documented keys of the message type
    (Notification: Message, MessageId, Subject if present, Timestamp, TopicArn, Type;
    (Un)SubscriptionConfirmation: Message, MessageId, SubscribeURL, Timestamp, Token,
    TopicArn, Type), signed with SHA1withRSA (SignatureVersion 1) or SHA256withRSA (2)
    by the certificate at SigningCertURL, which must be https on an SNS host
    (`sns.<region>.amazonaws.com`, `.com.cn` in China). `config["fetch_cert"]`
    (url -> PEM bytes) replaces the default download (5 s timeout, cached in-process).
    `config["ses_topic_arns"]` (comma-separated or a collection), when set, limits the
    topics accepted, with or without signature checks: anyone can sign with their own
    topic. A checked message (either setting on) must also be fresh: its `Timestamp` at
    most `config["ses_max_age_s"]` (1 h) old and at most 5 min ahead (`config["now"]`
    overrides the clock); only a verified signature makes that Timestamp trustworthy.

    With verification on or a topic list set, a body that is not an SNS message (SNS raw
    message delivery, a bare SES event) is refused: nothing vouches for it.
    """
    allowed = topic_allow_list(config.get("ses_topic_arns"))
    verifying = bool(config.get("ses_verify_sns"))
    if not verifying and not allowed:
        return
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise SignatureError("ses: body is not a signed SNS message (not JSON)") from None
    if not isinstance(envelope, dict) or envelope.get("Type") not in _SNS_TYPES:
        raise SignatureError("ses: body is not an SNS message (raw message delivery names "
                             "no topic and cannot be verified)")
    if allowed and envelope.get("TopicArn") not in allowed:
        raise SignatureError(f"ses: SNS topic {str(envelope.get('TopicArn'))[:200]!r} is not "
                             "accepted (not in ses_topic_arns)")
    check_timestamp(envelope.get("Timestamp"), config)
    if not verifying:
        return
    version = envelope.get("SignatureVersion")
    algorithm = _SIGNATURE_HASHES.get(version) if isinstance(version, str) else None
    if algorithm is None:
        raise SignatureError(f"ses: unsupported SNS SignatureVersion {version!r}")
    url = envelope.get("SigningCertURL")
    if not isinstance(url, str) or not _is_sns_certificate_url(url):
        raise SignatureError(f"ses: SigningCertURL is not an https SNS URL: {str(url)[:100]!r}")
    try:
        signature = base64.b64decode(_text(envelope.get("Signature")), validate=True)
    except ValueError:
        raise SignatureError("ses: SNS Signature is not base64") from None
    if not signature:
        raise SignatureError("ses: SNS message is not signed")
    fetch = config.get("fetch_cert") or fetch_certificate
    try:
        key = _public_key(fetch(url))
    except SignatureError:
        raise
    except Exception as exc:  # network, TLS, not a certificate: cannot vouch for the body
        raise SignatureError(f"ses: cannot use signing certificate {url}: {exc}") from None
    try:
        key.verify(signature, signed_text(envelope), padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise SignatureError("ses: SNS signature does not match the message") from None


def check_timestamp(value: Any, config: Mapping[str, Any]) -> None:
    """Refuse an SNS message published more than `ses_max_age_s` (1 h) ago, or more than
    `MAX_FUTURE_S` ahead of our clock, or whose Timestamp does not parse: a captured
    message cannot be replayed for ever (SNS retries within the hour by default).

    >>> check_timestamp("2026-01-01T00:00:00.000Z", {"now": 1767225600.0 + 60})
    >>> try:
    ...     check_timestamp("2026-01-01T00:00:00Z", {"now": 1767225600.0 + 7200})
    ... except SignatureError as exc:
    ...     print(exc)
    ses: stale SNS message (Timestamp 2026-01-01T00:00:00Z, 7200 s old)
    """
    if not isinstance(value, str):
        raise SignatureError("ses: SNS message without a Timestamp")
    try:
        published = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise SignatureError(f"ses: SNS Timestamp is not ISO 8601: {value[:40]!r}") from None
    if published.tzinfo is None:
        raise SignatureError(f"ses: SNS Timestamp has no time zone: {value[:40]!r}")
    now = config.get("now")
    now = time.time() if now is None else float(now)
    age = now - published.timestamp()
    max_age = float(config.get("ses_max_age_s") or MAX_AGE_S)
    if age > max_age:
        raise SignatureError(f"ses: stale SNS message (Timestamp {value[:40]}, {age:.0f} s old)")
    if age < -MAX_FUTURE_S:
        raise SignatureError(f"ses: SNS Timestamp {value[:40]} is {-age:.0f} s in the future")


def signed_text(envelope: Mapping[str, Any]) -> bytes:
    """The text SNS signs for this message (raises `SignatureError` if a key is missing)."""
    keys = _SIGNED_KEYS.get(envelope.get("Type"))  # type: ignore[arg-type]
    if keys is None:
        raise SignatureError(f"ses: not a signed SNS message type: {envelope.get('Type')!r}")
    parts = []
    for key in keys:
        value = envelope.get(key)
        if value is None and key in _OPTIONAL_SIGNED:
            continue
        if not isinstance(value, str):
            raise SignatureError(f"ses: SNS message lacks the signed field {key}")
        parts.append(f"{key}\n{value}\n")
    return "".join(parts).encode()


def _is_sns_certificate_url(url: str) -> bool:
    parsed = urllib.parse.urlsplit(url)
    return (parsed.scheme == "https" and parsed.netloc == (parsed.hostname or "")
            and _SNS_HOST.match(parsed.hostname or "") is not None
            and parsed.path.endswith(".pem"))


def topic_allow_list(value: Any) -> frozenset[str]:
    """The accepted SNS topics from a comma-separated string or a collection.

    >>> sorted(topic_allow_list("arn:a, arn:b,"))
    ['arn:a', 'arn:b']
    """
    if not value:
        return frozenset()
    items = value.split(",") if isinstance(value, str) else value
    return frozenset(str(item).strip() for item in items if str(item).strip())


@lru_cache(maxsize=32)
def _public_key(pem: bytes) -> rsa.RSAPublicKey:
    key = x509.load_pem_x509_certificate(pem).public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureError("ses: signing certificate does not hold an RSA key")
    return key


_CERTIFICATES: dict[str, bytes] = {}
_CERTIFICATES_LOCK = threading.Lock()


def fetch_certificate(url: str) -> bytes:
    """Download an SNS signing certificate (PEM), once per process and URL.

    SNS rotates certificates rarely and names each by its own URL, so a cache without
    expiry is safe; it is bounded so that odd URLs cannot grow it without limit.
    """
    with _CERTIFICATES_LOCK:
        cached = _CERTIFICATES.get(url)
    if cached is not None:
        return cached
    if not _is_sns_certificate_url(url):
        raise SignatureError(f"ses: refusing to fetch a certificate from {url[:100]!r}")
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - SNS host checked
        pem = resp.read(_MAX_CERT_BYTES + 1)
    if len(pem) > _MAX_CERT_BYTES:
        raise SignatureError(f"ses: signing certificate at {url} is too large")
    with _CERTIFICATES_LOCK:
        if len(_CERTIFICATES) >= 64:
            _CERTIFICATES.clear()
        _CERTIFICATES[url] = pem
    return pem
