"""Headless Chromium for the browser tests, and a real local web site for it to visit.

The browser is Debian's `chromium` (`make test` installs it with apt-get when missing), driven
by Playwright's Python package; Playwright's own browser builds are never downloaded. A test
module imports the fixture it needs:

    from tests.browser import chromium_fixture  # noqa: F401  (registers the `chromium` fixture)

    def test_page(chromium):
        page = chromium.new_page()
        ...

`chromium` starts one browser per test module (Playwright's driver and the browser together
take about half a second); each test opens its own page or context, so tests share no cookies.
While it is alive, Playwright's event loop is the main thread's running loop: code that runs
an asyncio loop of its own (an in-process `mailflow.track.TrackServer`) must live in another
thread or process; the tests start `mailflow track` as a process, as it runs for real.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

# MAILFLOW_CHROMIUM points at another Chromium binary (e.g. on a machine that is not Debian)
CHROMIUM = os.environ.get("MAILFLOW_CHROMIUM", "/usr/bin/chromium")

# The machine has no network but loopback and the package registries: without these Chromium
# keeps trying Google's hosts (component updates, sync, QUIC probes) at every start. Playwright
# passes most of them already; they are repeated so the list is complete on its own.
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str:
    """The Chromium binary, or a test failure that says how to install it (never a skip)."""
    found = shutil.which(CHROMIUM) or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if not found:
        pytest.fail(f"Chromium not found at {CHROMIUM}: the browser tests need Debian's chromium; "
                    "`make test` installs it (or: apt-get install chromium; or set "
                    "MAILFLOW_CHROMIUM to a Chromium binary)", pytrace=False)
    return found


@pytest.fixture(scope="module", name="chromium")
def chromium_fixture() -> Iterator:
    """One headless Chromium for the test module (a Playwright `Browser`)."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as driver:
        # root (the CI machine) cannot use Chromium's sandbox; nothing untrusted is loaded
        browser = driver.chromium.launch(executable_path=executable, headless=True,
                                         chromium_sandbox=False, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Seen:
    """One request the local site received: what a browser actually sent."""

    method: str
    path: str  # path and query string exactly as requested (a fragment never reaches a server)
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class Reply:
    """What the local site answers on a path: a page, or a redirect."""

    status: int = 200
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/html; charset=utf-8"


class LocalSite:
    """A real HTTP server on 127.0.0.1 in a thread that records every request.

    Routes map a path without its query string to a `Reply` or to a function of the `Seen`
    request; an unknown path answers 404.

    >>> with LocalSite({"/hi": Reply(body="hello")}) as site:
    ...     import urllib.request
    ...     urllib.request.urlopen(site.url("/hi?a=1")).read(), site.seen[0].path
    (b'hello', '/hi?a=1')
    """

    def __init__(self, routes: dict[str, Reply | Callable[[Seen], Reply]]) -> None:
        self.routes = routes
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)  # a short poll: shutdown() waits one

    @property
    def base(self) -> str:
        """`http://127.0.0.1:PORT`"""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        """An absolute URL of a path on this site."""
        return self.base + path

    def requests_to(self, path: str) -> list[Seen]:
        """The requests whose path (without the query string) is `path`."""
        with self._lock:
            return [seen for seen in self.seen if seen.path.split("?", 1)[0] == path]

    def __enter__(self) -> LocalSite:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, dict(self.headers.items()),
                            self.rfile.read(length) if length else b"")
                with site._lock:
                    site.seen.append(seen)
                route = site.routes.get(self.path.split("?", 1)[0])
                reply = (route(seen) if callable(route) else route) or Reply(404, "not found")
                body = reply.body.encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_HEAD = _answer

            def log_message(self, *args: object) -> None:  # keep pytest's output clean
                pass

        return Handler


def write_page(directory: Path, name: str, html: str) -> str:
    """Write an HTML file and return its `file://` URL (a mail opened from disk)."""
    path = directory / name
    path.write_text(html, encoding="utf-8")
    return path.resolve().as_uri()
