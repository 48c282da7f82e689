"""Mailgun webhooks (JSON) -> canonical v1 events.

Mailgun posts one event per request: `{"signature": {...}, "event-data": {...}}`.

===========================  ======================================================
Mailgun `event`              canonical `type`
===========================  ======================================================
accepted                     sent
delivered                    delivered
failed, severity permanent   bounce
failed, severity temporary   deferred (Mailgun retries)
failed, reason suppress-*    dropped (Mailgun refused: address on a suppression list)
rejected                     dropped (Mailgun refused the message at submission)
opened, clicked              open, click
unsubscribed                 unsubscribe
complained                   complaint
===========================  ======================================================

`message_id` is the Message-Id header (`message.headers.message-id`) without
angle brackets, as the Messages API returns it in `<…>`. `delivery-status`
gives `smtp_code` (only real SMTP codes: Mailgun's own 6xx stay in
`provider_code`), `smtp_status` (`enhanced-code`) and the diagnostic (the
remote server's `message`, then Mailgun's `description`); `bounce_kind` is
"severity/reason[/bounce-type]", e.g. "permanent/bounce". The sender comes
from the `sender` user variable (`v:sender`), else the webhook URL's
`?sender=`, else the item is rejected. `envelope.sender` is not used as a
fallback, because only delivery events carry it and opens and clicks of the
same message would then land on another sender; its domain is kept as
`sending_domain`.

The legacy webhooks (form-encoded or multipart/form-data, one event per POST: `event`,
`recipient`, `timestamp`, `token`, `signature`, `Message-Id` or `message-headers`,
`code`, `error`, `description`, custom variables as fields) are read too:

===========================  ======================================================
legacy `event`               canonical `type`
===========================  ======================================================
delivered                    delivered
bounced                      bounce (`bounce_kind` "permanent/bounced")
dropped, reason hardfail     dropped (address on a suppression list)
dropped, maxfails / old      bounce (Mailgun gave up retrying; "dropped/maxfails")
opened, clicked              open, click
unsubscribed, complained     unsubscribe, complaint
===========================  ======================================================

A legacy POST carries no event time of its own: its signature `timestamp` is used
(a retried POST that Mailgun signs anew counts as another event). Both kinds are signed the
same way (HMAC of timestamp + token). A token is accepted once
while its signature is fresh (`verify` remembers it; see `ReplayGuard`).

>>> mapped = map_payload(b'{"signature": {}, "event-data": {"event": "opened", '
...     b'"id": "DACSsAdVSeGpLid7TN03WA", "timestamp": 1763719203.25, '
...     b'"recipient": "ann@example.com", "ip": "203.0.113.7", '
...     b'"message": {"headers": {"message-id": "20251121.1@mg.acme.example"}}, '
...     b'"user-variables": {"sender": "news.acme.example"}}}', {})
>>> ev = mapped.events[0]
>>> ev["type"], ev["sender"], ev["message_id"], ev["ip"]
('open', 'news.acme.example', '20251121.1@mg.acme.example', '203.0.113.7')
"""

from __future__ import annotations

import email.policy
import hashlib
import hmac
import math
import re
import time
import urllib.parse
from collections.abc import Mapping
from email.parser import BytesParser
from typing import Any

import orjson

from schemas.providers.base import (
    STATUS_RE,
    Mapped,
    PayloadError,
    Rejected,
    ReplayGuard,
    SignatureError,
    as_int,
    as_object,
    as_tags,
    as_text,
    canonical,
    event_id,
    load_json,
    map_items,
    sender_of,
)

NAME = "mailgun"

#: A signature whose timestamp is further than this from now is refused (replay).
MAX_AGE_S = 300.0

_TYPES = {
    "accepted": "sent", "delivered": "delivered", "opened": "open", "clicked": "click",
    "unsubscribed": "unsubscribe", "complained": "complaint", "rejected": "dropped",
}
_FAILED_BY_SEVERITY = {"permanent": "bounce", "temporary": "deferred"}
#: Events that carry the reader's IP and user agent.
_READER_EVENTS = frozenset({"opened", "clicked", "unsubscribed", "complained"})


def map_payload(body: bytes, params: Mapping[str, str]) -> Mapped:
    """Map one webhook POST (one event): JSON, or a legacy form."""
    if _is_form(body):
        return map_items(NAME, [form_fields(body)], _map_legacy, params)
    payload = load_json(NAME, body)
    if not isinstance(payload, dict) or not isinstance(payload.get("event-data"), dict):
        raise PayloadError('mailgun: expected {"signature": {...}, "event-data": {...}}')
    return map_items(NAME, [payload["event-data"]], _map_event, params)


# --- legacy form webhooks ----------------------------------------------------------------------
#: A form holds at most this many fields (a legacy POST has about twenty).
MAX_FIELDS = 1000
_LEGACY_TYPES = {"delivered": "delivered", "bounced": "bounce", "opened": "open",
                 "clicked": "click", "unsubscribed": "unsubscribe", "complained": "complaint"}
#: Legacy `dropped` by `reason`: a suppressed address, or Mailgun gave up retrying.
_LEGACY_DROPPED = {"hardfail": "dropped", "maxfails": "bounce", "old": "bounce"}
_LEGACY_READER = frozenset({"opened", "clicked", "unsubscribed", "complained"})
_REPLY_CODE = re.compile(r"^([245]\d\d)(?=[\s\-]|$)")


def _is_form(body: bytes) -> bool:
    """A legacy form body (urlencoded or multipart) rather than JSON."""
    head = body.lstrip()[:1]
    return bool(head) and head not in (b"{", b"[", b'"') and (
        body.lstrip().startswith(b"--") or b"=" in body[:4096])


def form_fields(body: bytes) -> dict[str, str]:
    r"""The fields of a legacy webhook POST; the first value of a repeated field counts and
    file parts (attachments of bounce reports) are skipped.

    >>> form_fields(b"event=opened&recipient=ann%40example.com&tag=a&tag=b")
    {'event': 'opened', 'recipient': 'ann@example.com', 'tag': 'a'}
    >>> form_fields(b'--XyZ\r\nContent-Disposition: form-data; name="event"\r\n\r\n'
    ...             b'delivered\r\n--XyZ--\r\n')
    {'event': 'delivered'}
    """
    stripped = body.lstrip()
    fields: dict[str, str] = {}
    if stripped.startswith(b"--"):
        boundary = stripped.split(b"\n", 1)[0].strip()[2:]
        if not boundary or len(boundary) > 200 or b'"' in boundary:
            raise PayloadError("mailgun: multipart body without a usable boundary")
        message = BytesParser(policy=email.policy.HTTP).parsebytes(
            b'Content-Type: multipart/form-data; boundary="' + boundary + b'"\r\n\r\n'
            + stripped)
        if not message.is_multipart():
            raise PayloadError("mailgun: multipart body that does not parse")
        for number, part in enumerate(message.iter_parts()):
            if number >= MAX_FIELDS:
                raise PayloadError(f"mailgun: form with more than {MAX_FIELDS} fields")
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str) or part.get_filename() is not None:
                continue
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                charset = part.get_content_charset() or "utf-8"
                try:
                    text = data.decode(charset, "replace")
                except LookupError:
                    text = data.decode("utf-8", "replace")
                fields.setdefault(name, text)
    else:
        try:
            pairs = urllib.parse.parse_qsl(body.decode("utf-8", "replace"),
                                           keep_blank_values=True, max_num_fields=MAX_FIELDS)
        except ValueError as exc:
            raise PayloadError(f"mailgun: unreadable form body: {exc}") from None
        for name, value in pairs:
            fields.setdefault(name, value)
    if "event" not in fields:
        raise PayloadError("mailgun: expected JSON {signature, event-data} or a legacy form "
                           "with an `event` field")
    return fields


def _legacy_message_id(fields: Mapping[str, str]) -> str:
    """`Message-Id` (`message-id` on engagement events), else from `message-headers`."""
    value = fields.get("Message-Id") or fields.get("message-id") or ""
    if not value:
        try:
            headers = orjson.loads(fields.get("message-headers") or "[]")
        except orjson.JSONDecodeError:
            headers = []
        for pair in headers if isinstance(headers, list) else []:
            if (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)
                    and pair[0].lower() == "message-id" and isinstance(pair[1], str)):
                value = pair[1]
                break
    return value.strip().strip("<>")


def _map_legacy(fields: dict[str, str], params: Mapping[str, str]) -> dict[str, Any]:
    name = fields.get("event", "")
    reason = fields.get("reason", "")
    if name == "dropped":
        kind = _LEGACY_DROPPED.get(reason, "dropped")
    else:
        kind = _LEGACY_TYPES.get(name)
        if kind is None:
            raise Rejected(f"unknown legacy event {name[:40]!r}")
    recipient = fields.get("recipient", "")
    if not recipient:
        raise Rejected(f"legacy {name} event without recipient")
    ts_text = fields.get("timestamp", "").strip()
    try:
        ts: float | int = int(ts_text) if ts_text.isdigit() else float(ts_text)
    except ValueError:
        raise Rejected(f"legacy {name} event without a numeric timestamp") from None
    if not math.isfinite(ts):
        raise Rejected(f"legacy {name} event without a numeric timestamp")
    sender = sender_of(fields.get("sender"), params, "a v:sender variable to the message")
    message_id = _legacy_message_id(fields)
    if not message_id:
        raise Rejected(f"legacy {name} event without Message-Id")
    # `code` is the SMTP reply code ("550"), Mailgun's own (605), or for `bounced` the
    # enhanced status ("5.1.1", as Mailgun documents it)
    code_text = fields.get("code", "").strip()
    code = as_int(code_text)
    diagnostic = "; ".join(t.strip() for t in (fields.get("error", ""),
                                               fields.get("description", ""),
                                               fields.get("notification", "")) if t.strip())
    is_smtp = code is not None and 200 <= code < 600
    reply = _REPLY_CODE.match(diagnostic)  # else the reply the diagnostic starts with
    smtp_code = code if is_smtp else (int(reply.group(1)) if reply else None)
    found = STATUS_RE.fullmatch(code_text) or STATUS_RE.search(diagnostic)
    reader = name in _LEGACY_READER
    if name == "bounced":
        bounce_kind = "permanent/bounced"
    elif name == "dropped":
        bounce_kind = f"dropped/{reason}" if reason else "dropped"
    else:
        bounce_kind = None
    return canonical(
        NAME,
        type=kind,
        ts=ts,
        sender=sender,
        recipient=recipient,
        message_id=message_id,
        event_id=event_id(NAME, message_id, kind, ts, recipient.strip().lower(),
                          fields.get("url", "")),
        campaign_id=fields.get("campaign_id") or fields.get("campaign-id", ""),
        flow_id=fields.get("flow_id", ""),
        variant=fields.get("variant", ""),
        user_agent=fields.get("user-agent", "") if reader else None,
        ip=fields.get("ip", "") if reader else None,
        url=fields.get("url", ""),
        smtp_code=smtp_code,
        smtp_status=found.group(1) if found else None,
        diagnostic=diagnostic,
        bounce_kind=bounce_kind,
        provider_event=f"legacy/{name}",
        provider_message_id=message_id,
        provider_code=code if code is not None and not is_smtp else None,
        client_type=fields.get("client-type", ""),
        device_type=fields.get("device-type", ""),
        country=fields.get("country", ""),
        tags=as_tags(fields.get("tag") or fields.get("X-Mailgun-Tag")),
    )


def _map_event(data: dict[str, Any], params: Mapping[str, str]) -> dict[str, Any]:
    name = data.get("event")
    status = as_object(data.get("delivery-status"))
    reason = as_text(data.get("reason"))
    severity = as_text(data.get("severity"))
    if name == "failed":
        kind = "dropped" if reason.startswith("suppress-") else _FAILED_BY_SEVERITY.get(severity)
        if kind is None:
            raise Rejected(f"failed event with unknown severity {severity!r}")
    else:
        kind = _TYPES.get(name) if isinstance(name, str) else None
        if kind is None:
            raise Rejected(f"unknown event {name!r}")
    recipient = as_text(data.get("recipient"))
    if not recipient:
        raise Rejected(f"{name} event without recipient")
    ts = data.get("timestamp")
    if ts is None or ts == "":
        raise Rejected(f"{name} event without timestamp")
    variables = as_object(data.get("user-variables"))
    sender = sender_of(variables.get("sender"), params, "a v:sender user variable to the message")
    message = as_object(data.get("message"))
    provider_message_id = as_text(as_object(message.get("headers")).get("message-id"))
    message_id = provider_message_id.strip().strip("<>")
    if not message_id:
        raise Rejected(f"{name} event without message.headers.message-id")

    code = status.get("code")
    is_smtp = isinstance(code, int) and not isinstance(code, bool) and 200 <= code < 600
    reject = as_object(data.get("reject"))  # "rejected" events say why here
    diagnostic = "; ".join(t for t in (
        as_text(status.get("message")), as_text(status.get("description")),
        as_text(reject.get("reason")), as_text(reject.get("description"))) if t.strip())
    enhanced = as_text(status.get("enhanced-code"))
    if not enhanced:
        found = STATUS_RE.search(diagnostic)
        enhanced = found.group(1) if found else ""
    failed = name == "failed"
    bounce_kind = "/".join(t for t in (severity, reason, as_text(status.get("bounce-type"))) if t)
    reader = name in _READER_EVENTS
    client = as_object(data.get("client-info"))
    envelope = as_object(data.get("envelope"))
    return canonical(
        NAME,
        type=kind,
        ts=ts,
        sender=sender,
        recipient=recipient,
        message_id=message_id,
        event_id=as_text(data.get("id")) or event_id(NAME, message_id, kind, ts, recipient),
        campaign_id=as_text(variables.get("campaign_id")),
        flow_id=as_text(variables.get("flow_id")),
        variant=as_text(variables.get("variant")),
        user_agent=as_text(client.get("user-agent")),
        ip=as_text(data.get("ip")) if reader else None,
        url=as_text(data.get("url")),
        smtp_code=code if is_smtp else None,
        smtp_status=enhanced,
        diagnostic=diagnostic,
        bounce_kind=bounce_kind if failed else None,
        provider_event=name,
        provider_message_id=provider_message_id,
        provider_code=code if code is not None and not is_smtp else None,
        attempt=status.get("attempt-no"),
        mx_host=as_text(status.get("mx-host")),
        client_type=as_text(client.get("client-type")),
        device_type=as_text(client.get("device-type")),
        country=as_text(as_object(data.get("geolocation")).get("country")),
        sending_ip=as_text(envelope.get("sending-ip")),
        sending_domain=as_text(envelope.get("sender")).rpartition("@")[2],
        tags=as_tags(data.get("tags")),
    )


# --- signature -----------------------------------------------------------------------------
#: Remembers the tokens of accepted signatures when the receiver passes no guard of its own.
_REPLAY_GUARD = ReplayGuard()


def _signature_block(body: bytes) -> tuple[Any, Any, Any]:
    """(timestamp, token, signature) of a JSON webhook or a legacy form."""
    if _is_form(body):
        try:
            fields = form_fields(body)
        except PayloadError:
            fields = {}
        try:
            return fields["timestamp"], fields["token"], fields["signature"]
        except KeyError:
            raise SignatureError("mailgun: form without timestamp, token and signature "
                                 "fields") from None
    try:
        block = orjson.loads(body)["signature"]
        return block["timestamp"], block["token"], block["signature"]
    except (orjson.JSONDecodeError, TypeError, KeyError):
        raise SignatureError("mailgun: no signature block {timestamp, token, signature}") from None


def verify(headers: Mapping[str, str], body: bytes, config: Mapping[str, Any]) -> None:
    """Check Mailgun's HMAC-SHA256 of `timestamp + token`, the timestamp's age, and that
    the token was not used before.

    `config["mailgun_signing_key"]` is the HTTP webhook signing key; without one,
    verification is off. Mailgun signs only the timestamp and token, not the event:
    the age check bounds how long a captured signature could be replayed, and the
    token memory (`config["mailgun_replay_guard"]`, a `ReplayGuard`) refuses a second
    use within that time. `config["now"]` overrides the clock (tests),
    `config["mailgun_max_age_s"]` the window.
    """
    key = config.get("mailgun_signing_key")
    if not key:
        return
    timestamp, token, signature = _signature_block(body)
    if not all(isinstance(v, str | int) and not isinstance(v, bool)
               for v in (timestamp, token, signature)):
        raise SignatureError("mailgun: malformed signature block")
    expected = hmac.new(str(key).encode(), f"{timestamp}{token}".encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), str(signature).lower().encode()):
        raise SignatureError("mailgun: signature does not match")
    try:
        signed_at = float(timestamp)
    except ValueError:
        raise SignatureError("mailgun: malformed timestamp") from None
    now = config.get("now")
    now = time.time() if now is None else float(now)
    max_age = float(config.get("mailgun_max_age_s") or MAX_AGE_S)
    if not math.isfinite(signed_at) or abs(now - signed_at) > max_age:
        raise SignatureError(f"mailgun: stale timestamp ({now - signed_at:.0f} s old)")
    # A fresh signature is at most max_age old and at most max_age ahead: remembering
    # its token for twice that covers every moment it could still pass the age check.
    if not _guard(config).claim(str(token), now, 2 * max_age):
        raise SignatureError("mailgun: token already used (replayed request)")


def forget(headers: Mapping[str, str], body: bytes, config: Mapping[str, Any]) -> None:
    """Release the token of a request that failed on our side, so Mailgun's retry passes."""
    if not config.get("mailgun_signing_key"):
        return
    try:
        _timestamp, token, _signature = _signature_block(body)
    except SignatureError:
        return
    _guard(config).release(str(token))


def _guard(config: Mapping[str, Any]) -> ReplayGuard:
    guard = config.get("mailgun_replay_guard")
    return guard if isinstance(guard, ReplayGuard) else _REPLAY_GUARD
