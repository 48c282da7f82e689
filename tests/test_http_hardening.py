"""The shared HTTP base (mailflow/http.py) against hostile clients, over real loopback sockets.

No timing assertions: every wait is a generous bound on an outcome.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import orjson
import pytest

from flows.stats import JobStats
from mailflow.admin import AdminServer
from mailflow.api import ApiServer, DecisionApi
from mailflow.http import HardenedServer, JsonHandler
from sinks.client import ThrottleClient


class Echo(JsonHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/boom":
            raise RuntimeError("secret-dsn://user:hunter2@db")
        self._json(200, {"path": "ok"})

    def do_POST(self) -> None:  # noqa: N802
        self._json(200, {"bytes": len(self.body())})


@pytest.fixture
def echo() -> Iterator[HardenedServer]:
    server = HardenedServer(("127.0.0.1", 0), Echo, max_connections=16, max_body=1000,
                            request_timeout=1.0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def exchange(port: int, raw: bytes, timeout: float = 20.0) -> bytes:
    """Send raw bytes, read until the server closes or a full response arrived."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep:
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), None)
                if length is not None and len(rest) >= length:
                    break
        return data


def status_of(response: bytes) -> int:
    assert response, "the server dropped the connection without answering"
    return int(response.split(b" ", 2)[1])


def body_of(response: bytes) -> dict:
    return orjson.loads(response.partition(b"\r\n\r\n")[2])


@pytest.mark.parametrize("length, status", [
    (b"abc", 400), (b"-5", 400), (b"1e3", 400), (b"\xd9\xa3", 400), (b"5, 6", 400),
    (b"99999999999999999999999", 413), (b"1001", 413)])
def test_malformed_content_length_is_answered(echo, length, status):
    response = exchange(echo.server_address[1],
                        b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: " + length
                        + b"\r\n\r\nabc")
    assert status_of(response) == status
    assert "error" in body_of(response)


def test_contradicting_lengths_and_chunked_bodies_are_refused(echo):
    port = echo.server_address[1]
    twice = exchange(port, b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                           b"Content-Length: 4\r\n\r\nabcd")
    assert status_of(twice) == 400
    chunked = exchange(port, b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                             b"\r\n3\r\nabc\r\n0\r\n\r\n")
    assert status_of(chunked) == 411
    fine = exchange(port, b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    assert status_of(fine) == 200 and body_of(fine) == {"bytes": 3}


def test_a_handler_error_is_a_500_that_tells_nothing(echo, caplog):
    response = exchange(echo.server_address[1], b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(response) == 500
    assert body_of(response) == {"error": "internal error"}
    assert b"hunter2" not in response


def test_http_server_errors_are_json(echo):
    response = exchange(echo.server_address[1],
                        b"GET /x HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n")
    assert status_of(response) == 431 and "error" in body_of(response)


def wait_for(predicate, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_connections_over_the_cap_get_a_503_and_the_server_recovers():
    """16 half-sent requests fill a cap of 16: 44 more get a 503 at once, without a thread;
    once the 16 go away, normal requests are served again."""
    server = HardenedServer(("127.0.0.1", 0), Echo, max_connections=16, request_timeout=120)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    stalled = []
    try:
        for _ in range(16):
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            sock.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
            stalled.append(sock)
        assert wait_for(lambda: server.active_connections == 16)
        for _ in range(44):
            response = exchange(port, b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status_of(response) == 503 and b"too many connections" in response
        assert server.refused_connections == 44
    finally:
        for sock in stalled:
            sock.close()
    assert wait_for(lambda: server.active_connections == 0)
    assert status_of(exchange(port, b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")) == 200
    server.shutdown()
    server.server_close()


def test_a_half_sent_request_is_closed_at_its_deadline(echo):
    with socket.create_connection(("127.0.0.1", echo.server_address[1]), timeout=60) as sock:
        sock.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        assert sock.recv(65536) == b""  # closed by the server (deadline 1 s, wait <= 60 s)
    assert wait_for(lambda: echo.active_connections == 0)


def test_a_byte_at_a_time_does_not_extend_the_deadline(echo):
    port = echo.server_address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        closed = False
        for _ in range(600):  # at most ~60 s; the deadline is 1 s
            try:
                sock.sendall(b"a")
            except OSError:
                closed = True
                break
            try:
                sock.settimeout(0.1)
                if sock.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
        assert closed


@pytest.fixture
def api_server() -> Iterator[ApiServer]:
    # a client that is never started: the HTTP layer does not need Kafka for these checks
    server = ApiServer(DecisionApi(ThrottleClient("127.0.0.1:1"), tokens=["s3cret"]),
                       port=0).start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def test_sixty_half_sent_connections_do_not_stop_the_api(api_server):
    port = api_server.port
    stalled = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(60)]
    try:
        for sock in stalled:
            sock.sendall(b"GET /v1/throttle?sender=a&domain=b HTTP/1.1\r\nHost: x\r\n")
        response = exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(response) == 200
    finally:
        for sock in stalled:
            sock.close()


@pytest.mark.parametrize("authorization", [
    "Bearer s3cr\u00e9t".encode("latin-1"), "Bearer \u2603".encode(), b"Basic s3cret",
    b"s3cret", b"Bearer", b"Bearer  ", b"bearer s3cretx"])
def test_unusable_tokens_are_401(api_server, authorization):
    response = exchange(api_server.port, b"GET /v1/throttle?sender=a&domain=b HTTP/1.1\r\n"
                        b"Host: x\r\nAuthorization: " + authorization + b"\r\n\r\n")
    assert status_of(response) == 401
    assert b"s3cret" not in response.partition(b"\r\n\r\n")[2]


def test_the_right_token_in_any_scheme_case_passes(api_server):
    response = exchange(api_server.port, b"GET /v1/suppressions/" + b"a" * 32 + b" HTTP/1.1\r\n"
                        b"Host: x\r\nAuthorization: bearer s3cret\r\n\r\n")
    assert status_of(response) == 200


def test_malformed_content_length_on_the_api_is_400(api_server):
    response = exchange(api_server.port, b"POST /v1/throttle:batch HTTP/1.1\r\nHost: x\r\n"
                        b"Authorization: Bearer s3cret\r\nContent-Length: many\r\n\r\n{}")
    assert status_of(response) == 400


def test_paths_never_become_metric_labels(api_server):
    port = api_server.port
    for i in range(50):
        exchange(port, f"GET /x{i}\"}}junk\\ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    exchange(port, b"GET /v1/suppressions/" + b"b" * 32 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    text = body_text = exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    body_text = text.partition(b"\r\n\r\n")[2].decode()
    endpoints = {line.split('"')[1] for line in body_text.splitlines()
                 if line.startswith("mailflow_api_requests_total{")}
    assert endpoints <= {"healthz", "readyz", "metrics", "openapi", "throttle",
                         "throttle_batch", "stream", "suppressions", "other"}
    assert 'mailflow_api_requests_total{endpoint="other"} 50' in body_text
    for line in body_text.splitlines():  # every sample line parses: name{labels} value
        if line and not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])
            assert "junk" not in line


def test_admin_answers_a_malformed_length(tmp_path):
    admin = AdminServer(JobStats(), lambda sql, parameters=None: ([], []), info={}, port=0).start()
    try:
        response = exchange(admin.port, b"POST /sql HTTP/1.1\r\nHost: x\r\n"
                            b"Content-Length: x1\r\n\r\nSELECT 1")
        assert status_of(response) == 400
    finally:
        admin.stop()


@pytest.fixture
def ingest_server():
    from mailflow.ingest import IngestCore, IngestServer
    from schemas.hashing import DEV_HASH_KEY, RecipientHasher

    # refused before anything is produced: no broker needed
    core = IngestCore("127.0.0.1:1", {}, RecipientHasher(DEV_HASH_KEY))
    server = IngestServer(core, port=0, max_body=1000, token="t0ken").start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()
    server.core._stop.set()


@pytest.mark.parametrize("extra, status", [
    (b"Content-Length: ten\r\n", 400), (b"Content-Length: -1\r\n", 400),
    (b"Content-Length: 1001\r\n", 413),
    (b"Content-Length: 2\r\nAuthorization: Bearer t\xf6ken\r\n", 401),
    (b"Content-Length: 2\r\nAuthorization: Basic t0ken\r\n", 401)])
def test_ingest_answers_malformed_requests(ingest_server, extra, status):
    response = exchange(ingest_server.port, b"POST /v1/webhooks/canonical HTTP/1.1\r\n"
                        b"Host: x\r\n" + extra + b"\r\n{}")
    assert status_of(response) == status
    assert b"t0ken" not in response


def test_a_client_still_sending_a_refused_body_reads_the_413(echo):
    """The refusal goes out at the headers; the server then reads and drops the body (up to
    a bound) before it closes, so a client that sends its body after the headers (as every
    HTTP library does) reads a 413 instead of meeting a broken pipe. (It failed by chance
    under load before: the server closed on a body still arriving.)"""
    body = b"x" * (4 * 1024 * 1024)  # more than the sockets buffer
    with socket.create_connection(("127.0.0.1", echo.server_address[1]), timeout=20) as conn:
        conn.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode())
        time.sleep(0.2)  # the refusal is out; before, the socket was closing now
        conn.sendall(body)
        response = b""
        while chunk := conn.recv(65_536):
            response += chunk
    assert status_of(response) == 413
