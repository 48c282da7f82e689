"""A real browser through a rewritten mail: headless Chromium, `mailflow track`, the broker.

The mail is rewritten by `schemas.rewrite.rewrite_html` and opened from disk, as a mail
client shows it; its links go through the tracking edge (`mailflow track`, its own process on
loopback) to a destination site of our own (`LocalSite`) that records what arrived. The
events are read back from the real embedded broker.
"""

from __future__ import annotations

import signal
import time
import urllib.request

import orjson
import pytest
from playwright.sync_api import expect

from mailflow.broker import free_port
from schemas.hashing import DEV_HASH_KEY, RecipientHasher
from schemas.links import LinkClaims, LinkKeys
from schemas.rewrite import rewrite_html
from tests.browser import LocalSite, Reply, chromium_fixture, write_page  # noqa: F401 (fixture)
from tests.conftest import consume_all
from tests.test_track_end_to_end import start_track

pytestmark = pytest.mark.integration

KEYS_SPEC = "k1:browser-test-secret-0123456789"
KEYS = LinkKeys.parse(KEYS_SPEC)
SENDER = "news.acme.example"
RECIPIENT = "ann@example.org"
# a person's desktop browser: Chromium's own headless agent says "HeadlessChrome", which the
# edge (rightly) takes for a machine
PERSON_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Chrome/150.0.0.0 Safari/537.36")
# what a shop's link carries: encoded space, plus, an empty and a repeated key, UTF-8
QUERY = "?utm_source=mail&utm_campaign=spring&q=a%20b+c&empty=&dup=1&dup=2&name=%C3%A9t%C3%A9"

NEWSLETTER = """<!doctype html>
<html><head><meta charset="utf-8"><title>Spring news</title></head>
<body style="margin:0">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0"><tr><td align="center">
  <table role="presentation" width="600"><tr><td>
    <h1>Spring sale</h1>
    <p>Everything &amp; more, this week only.</p>
    <p><a id="shop" href="{shop}/sale{query_html}#top" style="color:#06c">Shop the sale</a></p>
    <p><a id="write" href="mailto:hi@news.acme.example">Write to us</a> &middot;
       <a id="top-anchor" href="#top">Back to top</a></p>
  </td></tr></table>
</td></tr></table>
</body></html>"""

# the destination shows what its address bar holds: query string and fragment
LANDING = """<!doctype html><title>Sale</title><h1>The spring sale</h1><p id="where"></p>
<script>document.getElementById("where").textContent = location.search + "|" + location.hash;
</script>"""


def mail(shop_base: str, track_base: str, message_id: str, issued: float):
    """The newsletter for Ann, rewritten for the edge, signed as if sent at `issued`."""
    template = LinkClaims("c", message_id, SENDER,
                          RecipientHasher(DEV_HASH_KEY).recipient(RECIPIENT), "example.org",
                          "spring", "welcome", "B", -1, "", 0, 0, "person")
    source = NEWSLETTER.format(shop=shop_base, query_html=QUERY.replace("&", "&amp;"))
    return rewrite_html(source, track_base, template, KEYS, now=issued)


@pytest.fixture
def track(broker, tmp_path):
    """A running `mailflow track` on a free loopback port; yields its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "track.log"
    process = start_track({"MAILFLOW_KAFKA_BROKERS": broker.bootstrap,
                           "MAILFLOW_TRACK_KEYS": KEYS_SPEC, "MAILFLOW_TRACK_PORT": str(port),
                           "MAILFLOW_TRACK_BASE_URL": url}, log)
    try:
        yield url
    finally:
        process.send_signal(signal.SIGTERM)  # stops cleanly: flushes what it produced
        assert process.wait(60) == 0, log.read_text()[-3000:]


def events(bootstrap: str, topic: str, at_least: int, timeout: float = 60.0) -> list[dict]:
    """The topic's events once at least `at_least` arrived (clicks and opens are produced
    without waiting for the broker, so they may land a moment after the answer)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [orjson.loads(m.value()) for m in consume_all(bootstrap, topic)]
        if len(found) >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def metrics(track: str) -> str:
    with urllib.request.urlopen(track + "/metrics", timeout=10) as resp:
        return resp.read().decode()


def test_a_click_in_the_mail_lands_on_the_destination_with_query_and_fragment(
        chromium, broker, track, tmp_path):
    with LocalSite({"/sale": Reply(body=LANDING)}) as shop:
        # sent an hour ago: a person reading it now is not "too fast" for the edge
        rewritten = mail(shop.base, track, "m-browser-1", time.time() - 3600)
        assert rewritten.links == [(0, shop.url("/sale" + QUERY + "#top"))]
        context = chromium.new_context(user_agent=PERSON_UA)
        try:
            page = context.new_page()
            page.goto(write_page(tmp_path, "mail.html", rewritten.html))
            assert page.locator("h1").inner_text() == "Spring sale"
            assert page.get_attribute("#shop", "href").startswith(track + "/c/")
            assert page.get_attribute("#write", "href") == "mailto:hi@news.acme.example"
            assert page.get_attribute("#top-anchor", "href") == "#top"
            # the honeypot is in the markup, and no person can see (or click) it
            honeypot = page.locator(f'a[href^="{track}/c/"]:not(#shop)')
            assert honeypot.count() == 1 and not honeypot.is_visible()

            page.click("#shop")
            page.wait_for_url(shop.url("/sale") + "**")
            assert page.url == shop.url("/sale" + QUERY + "#top")
            assert page.locator("#where").inner_text() == QUERY + "|#top"
        finally:
            context.close()
        # what the destination received: the query string byte for byte, one request
        assert [seen.path for seen in shop.requests_to("/sale")] == ["/sale" + QUERY]
        assert shop.requests_to("/sale")[0].headers.get("User-Agent") == PERSON_UA

    clicks = events(broker.bootstrap, "email.clicks", 1)
    assert len(clicks) == 1, clicks
    click = clicks[0]
    assert (click["message_id"], click["sender"], click["campaign_id"], click["flow_id"],
            click["variant"]) == ("m-browser-1", SENDER, "spring", "welcome", "B")
    assert click["url"] == shop.url("/sale" + QUERY + "#top")
    assert click["recipient_hash"] == RecipientHasher(DEV_HASH_KEY).recipient(RECIPIENT)
    assert (click["is_human"], click["bot_reason"], click["user_agent"]) == (True, "", PERSON_UA)
    # showing the mail fetched its pixel: one open, by the same person
    opens = events(broker.bootstrap, "email.opens", 1)
    assert [(o["message_id"], o["is_human"]) for o in opens] == [("m-browser-1", True)]


def test_the_unsubscribe_page_unsubscribes_only_with_its_button(chromium, broker, track):
    rewritten = mail("https://shop.example", track, "m-browser-2", time.time() - 3600)
    header = rewritten.headers["List-Unsubscribe"]
    assert rewritten.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert header.startswith("<") and header.endswith(">")
    unsubscribe = header[1:-1]
    assert unsubscribe.startswith(track + "/u/")

    page = chromium.new_page()
    try:
        # a plain GET (a person following the link, or a scanner doing so twice): the page
        # with its button, and nobody unsubscribed
        for _ in range(2):
            response = page.goto(unsubscribe)
            assert response is not None and response.status == 200
            assert page.locator("h1").inner_text() == "Unsubscribe"
            expect(page.get_by_role("button", name="Unsubscribe")).to_be_visible()
        # the edge answered both GETs and produced nothing (its counters are updated before
        # it answers, so this is no race)
        assert 'mailflow_track_requests_total{endpoint="unsubscribe"} 2' in metrics(track)
        assert 'type="unsubscribe"' not in metrics(track)

        page.get_by_role("button", name="Unsubscribe").click()
        # the confirmation is shown only once the broker acknowledged the event
        expect(page.locator("h1")).to_have_text("You are unsubscribed")
        assert page.url == unsubscribe
    finally:
        page.close()

    unsubscribes = [orjson.loads(m.value())
                    for m in consume_all(broker.bootstrap, "email.unsubscribes")]
    assert len(unsubscribes) == 1, unsubscribes
    event = unsubscribes[0]
    assert (event["type"], event["message_id"], event["campaign_id"], event["flow_id"]) == (
        "unsubscribe", "m-browser-2", "spring", "welcome")
    assert event["recipient_hash"] == RecipientHasher(DEV_HASH_KEY).recipient(RECIPIENT)
    assert 'mailflow_track_events_total{type="unsubscribe",verdict="human"} 1' in metrics(track)
