"""The tracking edge end to end, as an MTA and its readers use it.

`mailflow links rewrite` (the CLI, as an MTA calls it) → a person, Apple's Mail Privacy
Protection and a link scanner hit the links through a running `mailflow track` →
the input topics (Tansu) → `mailflow run --no-tail` → `mailflow.events` (chDB).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mailflow.broker import free_port
from schemas.hashing import DEV_HASH_KEY, RecipientHasher
from schemas.links import LinkKeys, verify
from tests.conftest import ROOT, mailflow_cmd, query_store

pytestmark = pytest.mark.integration

KEYS = "k1:end-to-end-secret-0123456789"
SENDER = "news.acme.example"
PERSON_UA = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14.6; rv:128.0) Gecko/20100101 "
             "Firefox/128.0")
APPLE_MPP_UA = "Mozilla/5.0"  # all Apple's privacy proxy says of itself
SCANNER_UA = "Mozilla/5.0 (compatible; Mimecast URL Protect)"
# a person's browser in disguise: what a scanner that hides its name sends
DISGUISED_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
                "Gecko) Chrome/150.0.0.0 Safari/537.36")
SALE = "https://shop.example/sale?utm_source=mail&q=a%20b+c&dup=1&dup=2#top"
GUIDE = "https://shop.example/guide/%C3%A9t%C3%A9?ref=news"

MAIL = f"""<!doctype html><html><head><meta charset="utf-8"></head><body>
<table role="presentation" width="600"><tr><td>
  <h1>Spring sale</h1>
  <p><a href="{SALE.replace("&", "&amp;")}">Shop the sale</a></p>
  <p><a href="{GUIDE}">Summer guide</a></p>
  <p><a href="mailto:hi@news.acme.example">Write to us</a> &middot;
     <a href="tel:+4930123">Call</a></p>
</td></tr></table>
</body></html>"""


class Links(HTMLParser):
    """The tracked links, the honeypot and the pixel of a rewritten mail, by what a
    browser reads (a real HTML parser, entities decoded)."""

    def __init__(self, base: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = base
        self.clicks: list[str] = []
        self.honeypots: list[str] = []
        self.pixels: list[str] = []
        self.other: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "img" and (found.get("src") or "").startswith(self.base + "/o/"):
            self.pixels.append(found["src"] or "")
        elif tag == "a" and found.get("href"):
            href = found["href"] or ""
            if not href.startswith(self.base + "/c/"):
                self.other.append(href)
            elif found.get("aria-hidden") == "true":
                self.honeypots.append(href)
            else:
                self.clicks.append(href)


def rewrite(env: dict[str, str], tmp_path: Path, message_id: str, recipient: str,
            campaign: str, flow: str) -> tuple[Links, dict]:
    """`mailflow links rewrite` as an MTA runs it: the body on stdin, the tracked body on
    stdout, the headers as JSON."""
    headers_file = tmp_path / f"{message_id}.json"
    proc = subprocess.run(
        [sys.executable, "-m", "mailflow", "links", "rewrite", "--message-id", message_id,
         "--recipient", recipient, "--sender", SENDER, "--campaign", campaign, "--flow", flow,
         "--variant", "A", "--dev", "--headers-json", str(headers_file)],
        input=MAIL.encode(), capture_output=True, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    links = Links(env["MAILFLOW_TRACK_BASE_URL"])
    links.feed(proc.stdout.decode())
    links.close()
    assert len(links.clicks) == 2 and len(links.honeypots) == 1 and len(links.pixels) == 1
    assert links.other == ["mailto:hi@news.acme.example", "tel:+4930123"]
    return links, json.loads(headers_file.read_text())


def hit(url: str, user_agent: str) -> http.client.HTTPResponse:
    """One GET as a mail client or scanner sends it; redirects are not followed."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("GET", parts.path, headers={"User-Agent": user_agent, "Accept": "*/*"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def start_track(env: dict[str, str], log: Path) -> subprocess.Popen:
    """`mailflow track` as its own process, once it answers /healthz (stderr to `log`)."""
    env = {**os.environ, **env}
    track = subprocess.Popen([sys.executable, "-m", "mailflow", "track"], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    deadline = time.monotonic() + 120
    while True:
        assert track.poll() is None, f"mailflow track exited: {log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(env["MAILFLOW_TRACK_BASE_URL"] + "/healthz",
                                        timeout=5) as resp:
                if resp.status == 200:
                    return track
        except OSError:
            pass
        assert time.monotonic() < deadline, "mailflow track did not answer /healthz"
        time.sleep(0.2)


def test_a_rewritten_mail_hit_through_track_lands_in_events_with_its_verdicts(broker,
                                                                               tmp_path):
    port = free_port()
    env = {**os.environ, "MAILFLOW_KAFKA_BROKERS": broker.bootstrap,
           "MAILFLOW_TRACK_KEYS": KEYS, "MAILFLOW_TRACK_PORT": str(port),
           "MAILFLOW_TRACK_BASE_URL": f"http://127.0.0.1:{port}"}
    ann, headers = rewrite(env, tmp_path, "m-e2e-ann", "ann@example.org", "spring", "welcome")
    bob, _ = rewrite(env, tmp_path, "m-e2e-bob", "bob@example.net", "autumn", "winback")
    assert headers["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    log = tmp_path / "track.log"
    track = start_track(env, log)
    try:
        # Ann reads on an iPhone: Apple's proxy fetches the pixel, not Ann
        assert hit(ann.pixels[0], APPLE_MPP_UA).status == 200
        # Bob's mail goes through a link scanner: it announces itself on one link and
        # follows the hidden honeypot link dressed as a browser
        scanned = hit(bob.clicks[1], SCANNER_UA)
        assert (scanned.status, scanned.getheader("Location")) == (302, GUIDE)
        trapped = hit(bob.honeypots[0], DISGUISED_UA)
        assert (trapped.status, trapped.getheader("Location")) == (302, "https://news.acme.example/")
        # Ann clicks the sale. The edge takes a click within 5 s of signing for a
        # machine's (a mail cannot arrive before its links are signed): wait that out,
        # as any person does, by the token's own clock.
        token = urlsplit(ann.clicks[0]).path.rsplit("/", 1)[1]
        issued = verify(token, LinkKeys.parse(KEYS), now=time.time()).issued
        time.sleep(max(0.0, issued + 6 - time.time()))
        clicked = hit(ann.clicks[0], PERSON_UA)
        assert clicked.status == 302
        assert clicked.getheader("Location") == SALE  # query string and fragment intact
        assert clicked.getheader("Cache-Control") == "no-store"
        assert clicked.getheader("Referrer-Policy") == "no-referrer"
    finally:
        # SIGTERM right after the last click, as a deployment stops it: the click must not be
        # lost in the producer's queue (it was, before SIGTERM stopped the server cleanly)
        track.send_signal(signal.SIGTERM)
        assert track.wait(60) == 0, log.read_text()[-3000:]

    data_dir = tmp_path / "data"
    mailflow_cmd("run", "--dev", "--no-tail", env={
        "MAILFLOW_KAFKA_BROKERS": broker.bootstrap, "MAILFLOW_DATA_DIR": str(data_dir),
        "MAILFLOW_ADMIN_PORT": "0"})
    rows = query_store(data_dir, """
        SELECT message_id, type, campaign_id, flow_id, variant, is_human, machine_reason,
               JSONExtractString(attrs, 'bot_reason'), url, user_agent, recipient_hash
        FROM mailflow.events FINAL ORDER BY message_id, type, url""")
    hasher = RecipientHasher(DEV_HASH_KEY)
    ann_hash, bob_hash = hasher.recipient("ann@example.org"), hasher.recipient("bob@example.net")
    assert rows == [
        # the person's click: human for the edge and for the engine
        ("m-e2e-ann", "click", "spring", "welcome", "A", True, "", "", SALE, PERSON_UA,
         ann_hash),
        # Apple's privacy proxy: an open, never a reader
        ("m-e2e-ann", "open", "spring", "welcome", "A", False, "apple_proxy", "apple_proxy",
         "", APPLE_MPP_UA, ann_hash),
        # the scanner, by the honeypot however it dresses, and by its name
        ("m-e2e-bob", "click", "autumn", "winback", "A", False, "honeypot", "honeypot",
         "https://news.acme.example/", DISGUISED_UA, bob_hash),
        ("m-e2e-bob", "click", "autumn", "winback", "A", False, "scanner_agent",
         "scanner_agent", GUIDE, SCANNER_UA, bob_hash),
    ], rows
