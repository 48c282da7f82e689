"""`mailflow track`: the tracking edge. Signed links in, events out.

    GET  /c/<token>   302 to the token's destination; a `click` on email.clicks
    GET  /o/<token>   a 1x1 transparent GIF; an `open` on email.opens
    GET  /u/<token>   a confirmation page with a button (a GET never unsubscribes)
    POST /u/<token>   RFC 8058 one-click (`List-Unsubscribe=One-Click`, or the page's
                      button): an `unsubscribe` on email.unsubscribes, once Kafka has it
    GET  /healthz, /metrics

A token that fails verification (schemas/links.py) never redirects: 400 with a page
that names the destination's host as plain text, no link; counted by reason in
`mailflow_track_refused_total` and dead-lettered (mailflow.dlq). The token carries
the recipient's *hash*, never the address.

Bots at the door: each open and click is judged on arrival (operators/edge.py, the
engine's own rules plus the honeypot link and every-link sweeps); the verdict rides
on the event as `is_human` / `bot_reason` (attrs), and the engine honours the edge's
honeypot and sweep verdicts. The client IP is used for that, then (privacy mode, the
default) truncated to /24 or /48 before the event leaves. `[tracking]` "aggregate"
(per sender or sender/campaign), an aggregate token, or `Sec-GPC: 1` / `DNT: 1` on an
open: no recipient hash on the event (`recipient_hash` = "aggregate").

Why asyncio and a small HTTP/1.1 parser of its own, not mailflow/http.py's
ThreadingHTTPServer: a redirect is tiny, and a thread per connection plus
http.server's header parsing cost more than the work itself (see bench/track.py
for both measured). The defences are the same: a deadline per request, an idle
timeout, a connection cap (503 beyond it), bounded head and body, Transfer-Encoding
refused (411), malformed framing answered 400, unknown paths 404, other methods 405.
Clicks and opens are produced without waiting (librdkafka batches them; delivery
failures are counted and logged); an unsubscribe is confirmed only after Kafka
acknowledged it (503 "try again" otherwise), since it must not be lost.
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import logging
import signal
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable
from email.utils import formatdate
from hashlib import blake2b
from typing import Any

import orjson
from confluent_kafka import KafkaException, Producer

from operators.edge import EdgeJudge, Verdict
from schemas.events import DeadLetter
from schemas.hashing import RecipientHasher, truncate_ip
from schemas.links import LinkClaims, LinkKeys, TokenError, _parse, _unb64, verify
from schemas.topics import DLQ
from sinks.kafka import producer_config

log = logging.getLogger(__name__)

#: The pseudo-hash of events that must not name their recipient (aggregate tracking).
AGGREGATE = "aggregate"
MAX_HEAD = 8 * 1024  # request line + headers
MAX_BODY = 4 * 1024  # an unsubscribe form is a few bytes
REQUEST_TIMEOUT_S = 10.0  # to receive one whole request once it began
IDLE_TIMEOUT_S = 30.0  # a kept-alive connection with no request
MAX_CONNECTIONS = 1024
MAX_USER_AGENT = 512
#: A 1x1 transparent GIF (43 bytes).
PIXEL = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00"
         b"\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
ROUTES = {"c": "click", "o": "open", "u": "unsubscribe"}
TOPICS = {"click": "email.clicks", "open": "email.opens", "unsubscribe": "email.unsubscribes"}
#: Which token kinds each path accepts: a click token never unsubscribes anyone.
KINDS_BY_PATH = {"c": ("c", "h"), "o": ("o",), "u": ("u",)}
_STATUS = {200: "OK", 302: "Found", 400: "Bad Request", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout", 411: "Length Required",
           413: "Content Too Large", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 503: "Service Unavailable",
           505: "HTTP Version Not Supported"}
_NO_STORE = b"Cache-Control: no-store\r\n"
_PAGE_HEADERS = (b"Content-Type: text/html; charset=utf-8\r\n" + _NO_STORE +
                 b"Referrer-Policy: no-referrer\r\nX-Content-Type-Options: nosniff\r\n"
                 b"Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; "
                 b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'\r\n")
_HOST_TEXT = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-:[]")


class Response:
    """One answer: status, extra header lines (bytes, CRLF-terminated) and body."""

    __slots__ = ("status", "headers", "body", "close")

    def __init__(self, status: int, headers: bytes = b"", body: bytes = b"",
                 close: bool = False):
        self.status, self.headers, self.body, self.close = status, headers, body, close


class Pending:
    """An answer that waits for Kafka's acknowledgement (the unsubscribe)."""

    __slots__ = ("future", "ok", "failed")

    def __init__(self, future: asyncio.Future, ok: Response, failed: Response):
        self.future, self.ok, self.failed = future, ok, failed


def _page(title: str, text: str, extra: str = "") -> bytes:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content=\"width=device-width,initial-scale=1\">"
            f"<meta name=robots content=noindex><title>{html.escape(title)}</title>"
            f"<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32em;margin:4em auto;"
            f"padding:0 1em;color:#222}}button{{font:inherit;padding:.5em 1.2em}}</style>"
            f"</head><body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{extra}"
            f"</body></html>").encode()


UNSUBSCRIBE_PAGE = _page(
    "Unsubscribe", "Press the button to stop receiving these emails.",
    '<form method=post><input type=hidden name="List-Unsubscribe" value="One-Click">'
    '<button type=submit>Unsubscribe</button></form>')
UNSUBSCRIBED_PAGE = _page("You are unsubscribed",
                          "You will not receive these emails any more.")
RETRY_PAGE = _page("Please try again", "We could not record your request just now. "
                   "Please try again in a minute.")


def destination_host(token: str) -> str:
    """The host a token claims to lead to, read *without* trusting it (for the refusal
    page, as plain text); "" when there is none to read.

    >>> destination_host("not a token"), destination_host("")
    ('', '')
    """
    try:
        url = _parse(_unb64(token))[2].url
        host = urllib.parse.urlsplit(url).hostname or ""
    except Exception:  # noqa: BLE001 - anything unreadable simply has no host to show
        return ""
    return host if host and len(host) <= 253 and set(host) <= _HOST_TEXT else ""


def refused_page(host: str) -> bytes:
    where = (f"It claimed to lead to {host}, but it was not signed by us, was altered, or "
             f"has expired, so we do not follow it.") if host else (
        "It was not signed by us, was altered, or has expired, so we do not follow it.")
    return _page("This link is not valid", where)


class TrackCore:
    """Verification, verdicts, privacy and events: everything but the HTTP framing.

    `now` is the request clock (epoch seconds); tests pass a fixed one.
    """

    def __init__(self, brokers: str, keys: LinkKeys, *, privacy: bool = True,
                 tracking_mode: Callable[[str, str], str] | None = None,
                 trusted_proxies: Iterable[str] = (), hasher: RecipientHasher | None = None,
                 now: Callable[[], float] = time.time, judge: EdgeJudge | None = None,
                 ):
        self.keys = keys
        self.privacy = privacy
        self.tracking_mode = tracking_mode or (lambda sender, campaign: "person")
        self.proxies = [ipaddress.ip_network(p.strip(), strict=False)
                        for p in trusted_proxies if p.strip()]
        # free text (a destination's query string may quote an address) is scrubbed with
        # the job's key when there is one; otherwise one derived from the signing keys
        self.hasher = hasher or RecipientHasher(
            blake2b(repr(sorted(keys.kids())).encode() + b"mailflow-track").digest())
        self.now = now
        self.judge = judge or EdgeJudge()
        # clicks, opens and dead letters: delivery reports only for failures (a Python
        # callback per delivered message would cost the event loop the GIL thousands of
        # times a second); unsubscribes have a producer of their own that reports every
        # delivery, since the answer waits for it
        config: dict[str, Any] = producer_config(**{
            "bootstrap.servers": brokers, "linger.ms": "5",
            "queue.buffering.max.messages": "500000"})
        config["delivery.report.only.error"] = True
        self.producer = Producer(config)
        self.acked = Producer(producer_config(**{"bootstrap.servers": brokers,
                                                 "linger.ms": "0"}))
        self.requests: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.events: Counter[str] = Counter()  # "click:human", "open:bot", ...
        self.bots: Counter[str] = Counter()
        self.delivery_failed = 0
        self.dropped = 0  # could not even be queued (local queue full)
        self.dead_letters = 0
        self._last_failure_log = self._last_drop_log = 0.0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="track-acks", daemon=True)
        self._poller.start()

    # --- Kafka ---------------------------------------------------------------------------
    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)
            self.acked.poll(0.05)

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is None:
            return
        self.delivery_failed += 1
        now = time.monotonic()
        if now - self._last_failure_log > 60:
            self._last_failure_log = now
            log.warning("track: Kafka did not take an event (%s: %s); counted in "
                        "mailflow_track_delivery_failed_total", msg.topic(), err)

    def _produce(self, topic: str, key: bytes, value: bytes,
                 on_delivery: Callable[[Any, Any], None] | None = None) -> bool:
        producer = self.acked if on_delivery is not None else self.producer
        try:
            producer.produce(topic, value, key, on_delivery=on_delivery or self._delivered)
            return True
        except BufferError:
            # the local queue (500,000 events) is full: Kafka has been away for a while.
            # Waiting here would stall every redirect; the event is counted as dropped.
            why = "the local queue is full"
        except KafkaException as exc:
            why = str(exc)
        self.dropped += 1
        now = time.monotonic()
        if now - self._last_drop_log > 60:
            self._last_drop_log = now
            log.warning("track: an event could not be queued for Kafka (%s); counted in "
                        "mailflow_track_dropped_total", why)
        return False

    def flush(self, timeout: float = 15.0) -> int:
        return self.producer.flush(timeout) + self.acked.flush(timeout)

    def close(self, timeout: float = 15.0) -> None:
        self.flush(timeout)
        self._stop.set()
        self._poller.join(5)
        # let librdkafka close its connections now, not whenever the object is collected
        self.producer = self.acked = _Closed()  # type: ignore[assignment]

    # --- requests ------------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes,
               peer: str) -> Response | Pending:
        path = target.split("?", 1)[0]
        if path == "/healthz":
            self.requests["healthz"] += 1
            return self._allowed(method, ("GET", "HEAD")) or Response(
                200, b"Content-Type: application/json\r\n" + _NO_STORE, b'{"status":"ok"}')
        if path == "/metrics":
            if "x-forwarded-for" in headers:  # came through the public proxy: not for them
                self.requests["other"] += 1
                return Response(404, b"Content-Type: text/plain\r\n", b"not found\n")
            self.requests["metrics"] += 1
            return self._allowed(method, ("GET", "HEAD")) or Response(
                200, b"Content-Type: text/plain; version=0.0.4\r\n" + _NO_STORE,
                self.metrics().encode())
        route = path[1:2] if len(path) > 3 and path[2] == "/" else ""
        if route not in ROUTES or "/" in path[3:]:
            self.requests["other"] += 1
            return Response(404, b"Content-Type: text/plain\r\n", b"not found\n")
        self.requests[ROUTES[route]] += 1
        allowed = ("GET", "HEAD", "POST") if route == "u" else ("GET", "HEAD")
        refusal = self._allowed(method, allowed)
        if refusal is not None:
            return refusal
        token = path[3:]
        now = self.now()
        try:
            claims = verify(token, self.keys, now)
            if claims.kind not in KINDS_BY_PATH[route]:
                raise TokenError("wrong_kind", f"a {claims.kind!r} token on /{route}/")
        except TokenError as exc:
            return self._refuse(token, exc.reason, route)
        if route == "c":
            return self._click(method, token, claims, headers, peer, now)
        if route == "o":
            return self._open(method, token, claims, headers, peer, now)
        return self._unsubscribe(method, token, claims, headers, body, peer, now)

    @staticmethod
    def _allowed(method: str, allowed: tuple[str, ...]) -> Response | None:
        if method in allowed:
            return None
        return Response(405, b"Allow: " + ", ".join(allowed).encode() +
                        b"\r\nContent-Type: text/plain\r\n", b"method not allowed\n")

    def _refuse(self, token: str, reason: str, route: str) -> Response:
        self.refused[reason] += 1
        record = DeadLetter(f"track: {reason}", f"track/{route}", -1, -1,
                            token.encode("utf-8", "replace")[:2048]).to_json()
        if self._produce(DLQ, reason.encode(), record):
            self.dead_letters += 1
        return Response(400, _PAGE_HEADERS, refused_page(destination_host(token)))

    def _click(self, method: str, token: str, claims: LinkClaims, headers: dict[str, str],
               peer: str, now: float) -> Response:
        location = claims.url.encode("ascii")
        answer = Response(302, b"Location: " + location + b"\r\n" + _NO_STORE +
                          b"Referrer-Policy: no-referrer\r\nContent-Length: 0\r\n")
        if method == "HEAD":  # a link checker, not a click
            return answer
        ip = self.client_ip(headers, peer)
        ua = headers.get("user-agent", "")[:MAX_USER_AGENT]
        verdict = self.judge.judge("click", claims.message_id, claims.link, ua, ip, now,
                                   claims.issued, honeypot=claims.kind == "h")
        self._emit("click", token, claims, ua, ip, verdict, now, self._per_person(claims),
                   url=claims.url)
        return answer

    def _open(self, method: str, token: str, claims: LinkClaims, headers: dict[str, str],
              peer: str, now: float) -> Response:
        answer = Response(200, b"Content-Type: image/gif\r\n" + _NO_STORE, PIXEL)
        if method == "HEAD":
            return answer
        ip = self.client_ip(headers, peer)
        ua = headers.get("user-agent", "")[:MAX_USER_AGENT]
        verdict = self.judge.judge("open", claims.message_id, -1, ua, ip, now, claims.issued)
        # a reader who asked not to be tracked is counted, not followed
        person = self._per_person(claims) and headers.get("sec-gpc", "").strip() != "1" \
            and headers.get("dnt", "").strip() != "1"
        self._emit("open", token, claims, ua, ip, verdict, now, person)
        return answer

    def _unsubscribe(self, method: str, token: str, claims: LinkClaims,
                     headers: dict[str, str], body: bytes, peer: str,
                     now: float) -> Response | Pending:
        if method != "POST":  # a scanner following the link must not unsubscribe anyone
            return Response(200, _PAGE_HEADERS, UNSUBSCRIBE_PAGE)
        if not _one_click(headers.get("content-type", ""), body):
            self.refused["no_one_click"] += 1
            return Response(400, _PAGE_HEADERS, _page(
                "Not unsubscribed", "The request did not say List-Unsubscribe=One-Click."))
        ip = self.client_ip(headers, peer)
        ua = headers.get("user-agent", "")[:MAX_USER_AGENT]
        # an unsubscribe acts on a person: it keeps the recipient hash whatever the
        # tracking mode (an aggregate token has none to keep)
        loop = self.loop
        assert loop is not None
        future: asyncio.Future = loop.create_future()

        def acked(err: Any, _msg: Any) -> None:
            if err is not None:
                self._delivered(err, _msg)
            loop.call_soon_threadsafe(_settle, future, err is None)

        queued = self._emit("unsubscribe", token, claims, ua, ip, Verdict(True, ""), now,
                            True, on_delivery=acked)
        if not queued:
            future.set_result(False)
        return Pending(future, Response(200, _PAGE_HEADERS, UNSUBSCRIBED_PAGE),
                       Response(503, b"Retry-After: 60\r\n" + _PAGE_HEADERS, RETRY_PAGE))

    # --- events --------------------------------------------------------------------------
    def _per_person(self, claims: LinkClaims) -> bool:
        return (claims.tracking == "person" and bool(claims.recipient_hash)
                and self.tracking_mode(claims.sender, claims.campaign_id) != "aggregate")

    def client_ip(self, headers: dict[str, str], peer: str) -> str:
        """The peer, or (only when the peer is a configured proxy) the nearest address in
        X-Forwarded-For that is not one of our proxies."""
        if not self.proxies or not self._trusted(peer):
            return peer
        forwarded = headers.get("x-forwarded-for", "")
        for item in reversed(forwarded.split(",")):
            candidate = item.strip()
            try:
                address = ipaddress.ip_address(candidate)
            except ValueError:
                return peer  # garbage in the chain: believe no further
            if not any(address in net for net in self.proxies):
                return str(address)
        return peer

    def _trusted(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in net for net in self.proxies)

    def event(self, kind: str, token: str, claims: LinkClaims, ua: str, ip: str,
              verdict: Verdict, now: float, person: bool, url: str = "") -> dict[str, Any]:
        """The wire-format v1 event of one hit (see DESIGN.md)."""
        event: dict[str, Any] = {
            "type": kind, "ts": int(now * 1000), "sender": claims.sender,
            "recipient_hash": claims.recipient_hash if person and claims.recipient_hash
            else AGGREGATE,
            "recipient_domain": claims.recipient_domain or "unknown",
            "message_id": claims.message_id,
            # one event per token, kind and second: a double-click, a retried pixel
            "event_id": blake2b(f"{token}|{kind}|{int(now)}".encode(),
                                digest_size=16).hexdigest(),
            "campaign_id": claims.campaign_id, "flow_id": claims.flow_id,
            "variant": claims.variant, "user_agent": ua,
            # classified on the whole address above; only its network leaves the edge
            "ip": truncate_ip(ip) if self.privacy else ip,
            "is_human": verdict.is_human, "bot_reason": verdict.reason,
            "tracking": "person" if person else AGGREGATE,
        }
        if kind == "click":
            event["url"] = self._scrub(url)
            event["link"] = claims.link
        return event

    def _scrub(self, text: str) -> str:
        lowered = text.lower()
        if "@" in text or "%40" in lowered or "&#" in text:
            return self.hasher.scrub(text)
        return text

    def _emit(self, kind: str, token: str, claims: LinkClaims, ua: str, ip: str,
              verdict: Verdict, now: float, person: bool, url: str = "",
              on_delivery: Callable[[Any, Any], None] | None = None) -> bool:
        event = self.event(kind, token, claims, ua, ip, verdict, now, person, url)
        self.events[f"{kind}:{'human' if verdict.is_human else 'bot'}"] += 1
        if not verdict.is_human:
            self.bots[verdict.reason] += 1
        key = event["recipient_hash"] if person else claims.message_id
        return self._produce(TOPICS[kind], key.encode(), orjson.dumps(event), on_delivery)

    # --- metrics -------------------------------------------------------------------------
    def metrics(self, server: Any = None) -> str:
        server = server or getattr(self, "server", None)
        lines = ["# TYPE mailflow_track_requests_total counter"]
        lines += [f'mailflow_track_requests_total{{endpoint="{k}"}} {v}'
                  for k, v in sorted(self.requests.items())]
        lines.append("# TYPE mailflow_track_refused_total counter")
        lines += [f'mailflow_track_refused_total{{reason="{k}"}} {v}'
                  for k, v in sorted(self.refused.items())]
        lines.append("# TYPE mailflow_track_events_total counter")
        for key, value in sorted(self.events.items()):
            kind, verdict = key.split(":")
            lines.append(f'mailflow_track_events_total{{type="{kind}",verdict="{verdict}"}} '
                         f'{value}')
        lines.append("# TYPE mailflow_track_bots_total counter")
        lines += [f'mailflow_track_bots_total{{reason="{k}"}} {v}'
                  for k, v in sorted(self.bots.items())]
        lines += [
            "# TYPE mailflow_track_delivery_failed_total counter",
            f"mailflow_track_delivery_failed_total {self.delivery_failed}",
            "# TYPE mailflow_track_dropped_total counter",
            f"mailflow_track_dropped_total {self.dropped}",
            "# TYPE mailflow_track_dead_letters_total counter",
            f"mailflow_track_dead_letters_total {self.dead_letters}",
            "# TYPE mailflow_track_edge_messages gauge",
            f"mailflow_track_edge_messages {len(self.judge)}",
            "# TYPE mailflow_track_kafka_queue gauge",
            f"mailflow_track_kafka_queue {len(self.producer)}",
        ]
        if server is not None:
            lines += ["# TYPE mailflow_track_connections gauge",
                      f"mailflow_track_connections {server.active}",
                      "# TYPE mailflow_track_refused_connections_total counter",
                      f"mailflow_track_refused_connections_total {server.refused_connections}",
                      "# TYPE mailflow_track_bad_requests_total counter",
                      f"mailflow_track_bad_requests_total {server.bad_requests}"]
        return "\n".join(lines) + "\n"


class _Closed:
    """Stands in for the producer once the edge stopped."""

    def __len__(self) -> int:
        return 0

    def produce(self, *_args: Any, **_kw: Any) -> None:
        raise KafkaException("the tracking edge has stopped")

    def poll(self, *_args: Any) -> int:
        return 0

    def flush(self, *_args: Any) -> int:
        return 0


def _settle(future: asyncio.Future, ok: bool) -> None:
    if not future.done():
        future.set_result(ok)


def _one_click(content_type: str, body: bytes) -> bool:
    """RFC 8058: the POST body carries List-Unsubscribe=One-Click (form-urlencoded, or
    multipart/form-data as the RFC also allows).

    >>> _one_click("application/x-www-form-urlencoded", b"List-Unsubscribe=One-Click")
    True
    >>> _one_click("application/x-www-form-urlencoded", b"List-Unsubscribe=Maybe")
    False
    """
    ctype = content_type.split(";", 1)[0].strip().lower()
    text = body.decode("utf-8", "replace")
    if ctype == "multipart/form-data":
        return 'name="List-Unsubscribe"' in text and "One-Click" in text
    try:
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, max_num_fields=20)
    except ValueError:
        return False
    return ("List-Unsubscribe", "One-Click") in pairs


# --- HTTP/1.1 -------------------------------------------------------------------------


class _Date:
    """The Date header, formatted once per second."""

    second = -1
    line = b""

    @classmethod
    def header(cls) -> bytes:
        now = int(time.time())
        if now != cls.second:
            cls.second = now
            cls.line = f"Date: {formatdate(now, usegmt=True)}\r\n".encode()
        return cls.line


class _Bad(Exception):
    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status, self.text = status, text


class _Connection(asyncio.Protocol):
    """One client connection: requests parsed from a bounded buffer, answered in order."""

    def __init__(self, server: TrackServer):
        self.server = server
        self.core = server.core
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.peer = ""
        self.deadline = 0.0
        self.busy = False  # an answer is pending (an unsubscribe waiting for Kafka)
        self.paused = False  # the client does not read its answers: stop reading too
        self.closing = False
        self.http10 = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        server = self.server
        if server.active >= server.max_connections:
            server.refused_connections += 1
            transport.write(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                            b"Connection: close\r\nContent-Length: 0\r\n\r\n")
            transport.close()
            self.closing = True
            return
        server.active += 1
        server.connections.add(self)
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else ""
        self.deadline = time.monotonic() + server.idle_timeout

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.server.connections:
            self.server.connections.discard(self)
            self.server.active -= 1
        self.closing = True

    def pause_writing(self) -> None:
        self.paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        if self.transport is not None and not self.closing:
            self.transport.resume_reading()
            self._process()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        if not self.buffer:
            self.deadline = time.monotonic() + self.server.request_timeout
        self.buffer += data
        if len(self.buffer) > MAX_HEAD + MAX_BODY + 64 * 1024:
            # pipelined far beyond what we answer: stop taking more until it drains
            assert self.transport is not None
            self.transport.pause_reading()
            self.paused = True
        self._process()

    def _process(self) -> None:
        while self.buffer and not self.busy and not self.closing:
            if self.paused and self.transport is not None and \
                    self.transport.get_write_buffer_size() > 256 * 1024:
                return
            try:
                request = self._next_request()
            except _Bad as bad:
                self.server.bad_requests += 1
                self._write(Response(bad.status, b"Content-Type: text/plain\r\n",
                                     bad.text.encode() + b"\n", close=True), "GET", False)
                return
            if request is None:
                return
            method, target, headers, body, keep_alive = request
            try:
                answer = self.core.handle(method, target, headers, body, self.peer)
            except Exception:  # a bug must not drop the connection without an answer
                log.exception("track: unexpected error answering %s", method)
                answer = Response(500, b"Content-Type: text/plain\r\n", b"internal error\n",
                                  close=True)
            if isinstance(answer, Pending):
                self.busy = True
                task = asyncio.ensure_future(self._await(answer, method, keep_alive))
                tasks = self.server.tasks  # held: the loop keeps only weak references
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                return
            self._write(answer, method, keep_alive)
        if self.paused and not self.closing and self.transport is not None \
                and self.transport.get_write_buffer_size() <= 256 * 1024:
            self.paused = False
            self.transport.resume_reading()

    async def _await(self, pending: Pending, method: str, keep_alive: bool) -> None:
        try:
            ok = await asyncio.wait_for(pending.future, self.server.ack_timeout)
        except TimeoutError:
            ok = False
        self.busy = False
        if self.closing:
            return
        self._write(pending.ok if ok else pending.failed, method, keep_alive)
        self._process()

    def _next_request(self) -> tuple[str, str, dict[str, str], bytes, bool] | None:
        buf = self.buffer
        while buf[:2] == b"\r\n":  # RFC 9112: ignore empty lines before a request
            del buf[:2]
        end = buf.find(b"\r\n\r\n")
        if end == -1:
            if len(buf) > MAX_HEAD:
                raise _Bad(431, "request head too large")
            return None
        if end > MAX_HEAD:
            raise _Bad(431, "request head too large")
        head = bytes(buf[:end]).decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[0].isalpha() or not parts[1]:
            raise _Bad(400, "malformed request line")
        method, target, version = parts
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            if version.startswith("HTTP/"):
                raise _Bad(505, "HTTP/1.1 only")
            raise _Bad(400, "malformed request line")
        if target[:7].lower() == "http://" or target[:8].lower() == "https://":
            target = "/" + (target.split("/", 3)[3:] or [""])[0]  # absolute-form: its path
        if not target.startswith("/"):
            raise _Bad(400, "the request target must be a path")
        headers: dict[str, str] = {}
        lengths: set[str] = set()
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip() or line[0] in " \t":
                raise _Bad(400, "malformed header")
            name = name.lower()
            value = value.strip()
            if name == "content-length":
                lengths.add(value)
            elif name == "transfer-encoding":
                raise _Bad(411, "send the body with a Content-Length, not Transfer-Encoding")
            if name not in headers:
                headers[name] = value
        length = 0
        if lengths:
            value = lengths.pop()
            if lengths or not value.isascii() or not value.isdigit() or len(value) > 18:
                raise _Bad(400, "malformed Content-Length")
            length = int(value)
            if length > MAX_BODY:
                raise _Bad(413, f"body over {MAX_BODY} bytes")
        start = end + 4
        if len(buf) < start + length:
            return None  # the body is still coming (within the request deadline)
        body = bytes(buf[start:start + length])
        del buf[:start + length]
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.1":
            keep_alive = "close" not in connection
            self.http10 = False
        else:
            keep_alive = "keep-alive" in connection
            self.http10 = True
        now = time.monotonic()
        self.deadline = now + (self.server.request_timeout if buf else self.server.idle_timeout)
        return method, target, headers, body, keep_alive

    def _write(self, answer: Response, method: str, keep_alive: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        close = answer.close or not keep_alive
        head = [b"HTTP/1.1 ", str(answer.status).encode(), b" ",
                _STATUS.get(answer.status, "Unknown").encode(), b"\r\n", _Date.header(),
                answer.headers]
        if b"Content-Length:" not in answer.headers:
            head.append(b"Content-Length: " + str(len(answer.body)).encode() + b"\r\n")
        if close:
            head.append(b"Connection: close\r\n")
        elif self.http10:  # HTTP/1.0 keeps a connection only when told so
            head.append(b"Connection: keep-alive\r\n")
        head.append(b"\r\n")
        if method != "HEAD":
            head.append(answer.body)
        transport.write(b"".join(head))
        if close:
            self.closing = True
            transport.close()

    def expire(self, now: float) -> None:
        if now < self.deadline or self.busy or self.transport is None:
            return
        if self.transport.get_write_buffer_size():
            # answers it does not read: closing would wait for them for ever
            self.closing = True
            self.transport.abort()
        elif self.buffer:  # a request began and did not finish in time
            self._write(Response(408, b"Content-Type: text/plain\r\n",
                                 b"request not received in time\n", close=True), "GET", False)
        else:
            self.closing = True
            self.transport.close()


class TrackServer:
    """The asyncio server, in a thread of its own (`start`) or the foreground
    (`serve_forever`)."""

    def __init__(self, core: TrackCore, host: str = "127.0.0.1", port: int = 8790,
                 max_connections: int = MAX_CONNECTIONS,
                 request_timeout: float = REQUEST_TIMEOUT_S,
                 idle_timeout: float = IDLE_TIMEOUT_S, ack_timeout: float = 15.0):
        self.core = core
        core.server = self  # type: ignore[attr-defined]
        self.host = host
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        self.ack_timeout = ack_timeout
        self.active = 0
        self.refused_connections = 0
        self.bad_requests = 0
        self.connections: set[_Connection] = set()
        self.tasks: set[asyncio.Future] = set()  # answers waiting for Kafka
        self.loop = asyncio.new_event_loop()
        core.loop = self.loop
        self._server = self.loop.run_until_complete(self.loop.create_server(
            lambda: _Connection(self), host, port, backlog=1024, reuse_address=True))
        self.port = self._server.sockets[0].getsockname()[1]
        self._thread: threading.Thread | None = None

    async def _reaper(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for connection in list(self.connections):
                connection.expire(now)

    def serve_forever(self) -> None:
        asyncio.set_event_loop(self.loop)
        if threading.current_thread() is threading.main_thread():
            # SIGTERM (a supervisor, `docker stop`) ends like Ctrl-C: the events still in the
            # producer's queue are flushed by `stop`, not lost with the process
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.loop.add_signal_handler(sig, self.loop.stop)
        reaper = self.loop.create_task(self._reaper())
        try:
            self.loop.run_forever()
        finally:
            reaper.cancel()

    def start(self) -> TrackServer:
        self._thread = threading.Thread(target=self.serve_forever, name="track-http",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, flush_timeout: float = 15.0) -> None:
        loop = self.loop
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(10)
        self._server.close()
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
        try:
            loop.run_until_complete(self._server.wait_closed())
        except RuntimeError:
            pass
        self.core.close(flush_timeout)
        loop.close()
