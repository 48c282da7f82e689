"""What the three HTTP servers (admin, ingest, api) share: JSON answers, no Nagle stall,
and the defences every edge needs.

- a deadline per request (`request_timeout`, default 10 s) for reading the request line,
  headers and body, so a half-sent request cannot hold its thread for ever;
- a cap on concurrent connections (`max_connections`): beyond it a connection gets a
  503 and is closed at once, without a thread;
- malformed framing is answered, never a dropped connection: a non-numeric, negative
  or contradictory `Content-Length` is a 400, `Transfer-Encoding` a 411, a body over
  the server's `max_body` a 413; an unexpected error in a handler is a 500 that says
  nothing about the inside (no secrets, no stack);
- bearer tokens compared in constant time, and any unusable `Authorization` header
  (non-ASCII, another scheme) simply does not match;
- Prometheus labels from a fixed set of routes, with values escaped.
"""

from __future__ import annotations

import hmac
import io
import logging
import re
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import orjson

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 10.0  # to read one request (line, headers and body)
WRITE_TIMEOUT_S = 10.0  # a single send that makes no progress for this long gives up
MAX_CONNECTIONS = 128  # open connections per server; one thread each
MAX_BODY = 1024 * 1024
#: A refused body is read and dropped up to this much, for this long, before the connection
#: closes, so that a client still sending it can read the refusal.
LINGER_BYTES, LINGER_S = 16 * 1024 * 1024, 5.0
_DIGITS = re.compile(r"[0-9]{1,18}")


class _DeadlineReader(io.RawIOBase):
    """The request's socket, read against one deadline for the whole request: a client
    that sends a byte every few seconds still runs out of time."""

    def __init__(self, sock: socket.socket, write_timeout: float):
        self.sock = sock
        self.write_timeout = write_timeout
        self.deadline = time.monotonic() + REQUEST_TIMEOUT_S

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("request not received in time")
        self.sock.settimeout(remaining)
        try:
            return self.sock.recv_into(buffer)
        finally:  # writes (answers, event streams) keep their own timeout
            self.sock.settimeout(self.write_timeout)


class JsonHandler(BaseHTTPRequestHandler):
    server_version = "mailflow"
    # http.server writes headers and body separately: without this, Nagle and delayed
    # ACKs stall every keep-alive response ~40 ms
    disable_nagle_algorithm = True
    timeout = WRITE_TIMEOUT_S
    request_timeout = REQUEST_TIMEOUT_S
    max_body = MAX_BODY  # a server may pass its own (HardenedServer(max_body=...))
    content_length = 0
    _body_read = False
    _responded = False

    # -- framing and limits ------------------------------------------------------------
    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # replaced by one that reads against the request's deadline
        self._reader = _DeadlineReader(self.connection, self.timeout)
        self.rfile = io.BufferedReader(self._reader)
        limit = getattr(self.server, "max_body", None)
        if limit is not None:
            self.max_body = limit
        timeout = getattr(self.server, "request_timeout", None)
        if timeout is not None:
            self.request_timeout = timeout

    def handle_one_request(self) -> None:
        self._reader.deadline = time.monotonic() + self.request_timeout
        self._responded = False
        self._body_read = False
        self.content_length = 0
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:  # a bug must not drop the connection without an answer
            log.exception("%s: unexpected error answering %s", self.server_version,
                          getattr(self, "command", "?"))
            self.close_connection = True
            if not self._responded:
                try:
                    self._json(500, {"error": "internal error"})
                except OSError:
                    pass
        if self.content_length and not self._body_read:
            self.close_connection = True  # an unread body must not become the next request

    def _linger(self, declared: int) -> None:
        """Read and drop (a bounded part of) a refused body before closing: a client still
        sending it would otherwise meet a broken pipe instead of reading the 413."""
        remaining = min(declared, LINGER_BYTES)
        deadline = time.monotonic() + LINGER_S  # in all, however slowly it trickles
        try:
            self.connection.settimeout(LINGER_S)
            while remaining > 0 and time.monotonic() < deadline:
                chunk = self.rfile.read1(min(65_536, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
        except (OSError, ValueError):
            pass

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if self.headers.get("Transfer-Encoding") is not None:
            self.send_error(HTTPStatus.LENGTH_REQUIRED,
                            "send the body with a Content-Length, not Transfer-Encoding")
            return False
        values = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        if not values:
            return True
        value = values.pop()
        if values or not value.isascii() or not value.isdigit():
            self.send_error(HTTPStatus.BAD_REQUEST, "malformed Content-Length")
            return False
        if not _DIGITS.fullmatch(value) or int(value) > self.max_body:
            self.send_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"body over {self.max_body} bytes")
            self._linger(int(value) if _DIGITS.fullmatch(value) else 0)
            return False
        self.content_length = int(value)
        return True

    def body(self) -> bytes:
        """The request body (its length was checked against `max_body` already).
        Raises ConnectionError when the client sends less than it announced in time."""
        if self._body_read:
            raise RuntimeError("the body was read already")
        self._body_read = True
        data = self.rfile.read(self.content_length) if self.content_length else b""
        if len(data) < self.content_length:
            raise ConnectionError("client sent less than its Content-Length")
        return data

    # -- answers ------------------------------------------------------------------------
    def send_response(self, code: int, message: str | None = None) -> None:
        self._responded = True
        super().send_response(code, message)

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """http.server's own errors (bad request line, header too long, …) as JSON."""
        self.close_connection = True
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        body = orjson.dumps({"error": message or phrase})
        self.send_response(code, phrase)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if getattr(self, "command", "") != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("%s %s", self.server_version, fmt % args)

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, orjson.dumps(payload, default=str))


class HardenedServer(ThreadingHTTPServer):
    """A thread per connection, at most `max_connections` of them."""

    daemon_threads = True
    request_queue_size = 128  # listen backlog: a burst waits to be accepted (or refused)

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 max_connections: int = MAX_CONNECTIONS, max_body: int = MAX_BODY,
                 request_timeout: float = REQUEST_TIMEOUT_S):
        self.max_connections = max_connections
        self.max_body = max_body
        self.request_timeout = request_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self.refused_connections = 0  # over the cap: 503 and closed
        self.active_connections = 0
        self._count_lock = threading.Lock()
        super().__init__(address, handler)

    def serve_forever(self, poll_interval: float = 0.05) -> None:
        """As the standard loop, but `shutdown()` returns within 50 ms instead of 0.5 s
        (it waits for the loop's next look at its flag)."""
        super().serve_forever(poll_interval)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused_connections += 1
            body = b'{"error": "too many connections; retry later"}'
            try:  # small enough for the socket buffer: never blocks the accept loop
                request.setblocking(False)
                request.send(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                             b"application/json\r\nRetry-After: 1\r\nConnection: close\r\n"
                             b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        with self._count_lock:
            self.active_connections += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        with self._count_lock:
            self.active_connections -= 1
        self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints a traceback to stderr; a client that went away is not news
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


def bearer_ok(authorization: str | None, tokens: Iterable[str]) -> bool:
    """Does an `Authorization` header carry one of `tokens`? Compared in constant time
    (every token is compared, whatever matched); an unusable header is simply no match.

    >>> bearer_ok("Bearer s3cret", ["other", "s3cret"]), bearer_ok("Basic s3cret", ["s3cret"])
    (True, False)
    >>> bearer_ok("Bearer s3cr\\u00e9t", ["s3cret"]), bearer_ok(None, ["s3cret"])
    (False, False)
    """
    if not authorization:
        return False
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    try:
        given = value.strip().encode("ascii")
    except UnicodeEncodeError:
        return False
    return matches_any(given, (token.encode() for token in tokens))


def matches_any(given: bytes, secrets: Iterable[bytes]) -> bool:
    """Is `given` one of `secrets`? Every one is compared, in constant time, whatever
    matched: how long it takes tells nothing about which, or how much, matched.

    >>> matches_any(b"b", [b"a", b"b"]), matches_any(b"", [b"a"])
    (True, False)
    """
    ok = False
    for secret in secrets:
        ok |= hmac.compare_digest(given, secret)
    return ok


def route_label(path: str, routes: Mapping[str, str],
                prefixes: Mapping[str, str] | None = None) -> str:
    """A metric label for a request path, from a fixed set: unknown paths are "other", so
    no client can add a series (or break the exposition format).

    >>> route_label("/healthz", {"/healthz": "healthz"})
    'healthz'
    >>> route_label('/x"}junk', {"/healthz": "healthz"})
    'other'
    """
    if path in routes:
        return routes[path]
    for prefix, label in (prefixes or {}).items():
        if path.startswith(prefix):
            return label
    return "other"


def prom_label(value: str) -> str:
    r"""A Prometheus label value, escaped (backslash, double quote, line feed).

    >>> prom_label('a"b\\c\nd')
    'a\\"b\\\\c\\nd'
    """
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Serving(Protocol):
    def serve_forever(self) -> None: ...
    def stop(self) -> None: ...


def serve_until_interrupted(server: Serving) -> int:
    """Run a server in the foreground until Ctrl-C / SIGTERM-as-KeyboardInterrupt."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
