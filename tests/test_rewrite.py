"""Rewriting HTML mail bodies: real-world-like newsletters, the pixel, the honeypot, headers."""

from __future__ import annotations

import html
import random
import re
from pathlib import Path

import pytest

from schemas.links import LinkClaims, LinkKeys, verify
from schemas.rewrite import rewrite_html

DATA = Path(__file__).parent / "data" / "newsletters"
KEYS = LinkKeys.parse("k1:0123456789abcdef-secret")
BASE = "https://t.example.net"
NOW = 1_795_000_000
TEMPLATE = LinkClaims("c", "<m-1@mta.shop.example.com>", "shop.example.com",
                      "3fc4814f4c14f4f0a81f0d1101931d43", "example.org", "spring", "sale-flow",
                      "B", 0, "", 0, 0, "person")
TRACKED = re.compile(r'"(https://t\.example\.net/([cou])/([A-Za-z0-9_-]+))"')


def rewrite(source: str, **kw):
    return rewrite_html(source, BASE, TEMPLATE, KEYS, NOW, **kw)


def tokens(out_html: str) -> list:
    return [verify(m.group(3), KEYS, now=NOW) for m in TRACKED.finditer(out_html)
            if m.group(3) != "ALREADY_TRACKED_TOKEN"]  # the sample's pre-tracked link


def without_inserts(out_html: str) -> str:
    """The rewritten body without the pixel and the honeypot."""
    out_html = re.sub(r'<img src="https://t\.example\.net/o/[^"]+"[^>]*>', "", out_html)
    return re.sub(r'<a href="https://t\.example\.net/c/[^"]+" style="display:none[^>]*></a>',
                  "", out_html)


def assert_only_hrefs_changed(source: str, out_html: str) -> None:
    """Everything but the rewritten href values is kept byte for byte, in order."""
    pieces = TRACKED.split(without_inserts(out_html))[::4]
    value = r"""("[^"]*"|'[^']*'|[^\s"'>]+)"""
    pattern = value.join(re.escape(p) for p in pieces)
    assert re.fullmatch(pattern, source, re.DOTALL), "markup outside href values changed"


def test_retail_newsletter_with_tables_entities_and_outlook_buttons():
    source = (DATA / "retail_tables.html").read_text()
    out = rewrite(source)
    assert out.links == [
        (0, "https://shop.example.com/view-online?mid=12345&lang=en"),
        (1, "https://shop.example.com/?utm_source=newsletter&utm_medium=email"
            "&utm_campaign=spring_sale#top"),
        (2, "https://shop.example.com/sale/women?size=M&color=blue&sort=price%2Basc"),
        (3, "https://shop.example.com/sale/men?x=1"),
        (4, "https://shop.example.com/sale?src=button&b=1"),
        (5, "https://shop.example.com/map-area?a=1&b=2"),
        (6, "https://shop.example.com/sale?src=outlook&b=1"),  # VML button in [if mso]
    ]
    assert out.skipped == [("*|UNSUB|*", "scheme"), ("/account", "scheme"),
                           ("javascript:void(0)", "scheme")]
    assert_only_hrefs_changed(source, out.html)
    # every tracked href decodes to its destination, index, and the message's fields
    clicks = [c for c in tokens(without_inserts(out.html)) if c.kind == "c"]
    assert sorted((c.link, c.url) for c in clicks) == out.links
    for c in clicks:
        assert (c.message_id, c.campaign_id, c.flow_id, c.variant, c.issued) == (
            TEMPLATE.message_id, "spring", "sale-flow", "B", NOW)
    # left alone, byte for byte
    for kept in ('href="tel:+18005550199"', 'href="#terms"',
                 'href="mailto:help@shop.example.com?subject=Sale%20question"',
                 'href="https://shop.example.com/preferences" data-mailflow="off"',
                 'href="https://t.example.net/c/ALREADY_TRACKED_TOKEN"', 'href="*|UNSUB|*"',
                 'href="/account"', 'href="javascript:void(0)"',
                 '<a href="https://not.a.link/in-css">', 'SRC="https://cdn.example.com/logo.png"'):
        assert kept in out.html
    # uppercase HREF, single-quoted and unquoted attributes were rewritten (double-quoted)
    assert '<A HREF="https://t.example.net/c/' in out.html
    assert "<a href='https" not in out.html and "<a href=https" not in out.html
    assert '<v:roundrect xmlns:v="urn:schemas-microsoft-com:vml" href="https://t.example' \
        in out.html


def test_substack_like_newsletter_idn_padding_and_credentials():
    source = (DATA / "substack_like.html").read_text()
    out = rewrite(source)
    urls = dict(out.links)
    assert urls[1] == "https://en.wikipedia.org/wiki/Caf%C3%A9_au_lait#History"
    assert urls[2] == "https://video.example.com/watch?v=dQw4w9WgXcQ&t=42s&list=PL%20x"
    assert urls[4] == "https://xn--bcher-kva.example/katalog?q=gro%C3%9F"
    assert urls[6] == "https://writer.example.org/padded"  # spaces around an href: ignored
    assert out.skipped == [("https://writer.example.org@evil.example/login", "userinfo")]
    assert 'href="https://writer.example.org@evil.example/login"' in out.html  # untouched
    assert '<a href="">nothing</a> <a>no href</a>' in out.html
    assert_only_hrefs_changed(source, out.html)


def test_malformed_markup_is_tracked_where_readable_and_never_broken():
    source = (DATA / "malformed.html").read_text()
    out = rewrite(source)
    assert [u for _, u in out.links] == [
        "https://promo.example.net/deal?id=7&ref=mail", "https://promo.example.net/other?x=1&y=2",
        "https://promo.example.net/bold", "https://promo.example.net/dup"]
    # duplicate href: browsers follow the first; the second stays as written
    assert '" href="https://evil.example/">dup</a>' in out.html
    # a commented-out link is not a link
    assert '<!-- a commented-out <a href="https://promo.example.net/hidden">link</a> -->' \
        in out.html
    # no </body>: honeypot and pixel at the end
    assert out.html.rstrip().endswith('aria-hidden="true">')
    assert out.html.startswith(source.split("<a href=")[0])


def test_pixel_before_body_end_and_honeypot_after_body_start():
    source = '<html><body class="x"><p><a href="https://a.example/">a</a></p></body>\n</html>'
    out = rewrite(source)
    head, rest = out.html.split('<body class="x">')
    assert rest.startswith('<a href="https://t.example.net/c/')
    honeypot = rest.split("</a>")[0] + "</a>"
    for attr in ('style="display:none !important', 'aria-hidden="true"', 'tabindex="-1"'):
        assert attr in honeypot
    assert honeypot.endswith("></a>")  # no text for anyone to read
    h = tokens(honeypot)[0]
    assert h.kind == "h" and h.url == "https://shop.example.com/" and h.link == -1
    assert re.search(r'<img src="https://t\.example\.net/o/[^"]+" width="1" height="1" alt=""'
                     r'[^>]*>\s*</body>\n</html>$', out.html)
    pixel = [c for c in tokens(out.html) if c.kind == "o"]
    assert len(pixel) == 1 and pixel[0].url == "" and pixel[0].link == -1
    assert out.links == [(0, "https://a.example/")]  # the honeypot is not a mail link


def test_honeypot_destination_can_be_given():
    out = rewrite("<body></body>", honeypot_url="https://www.shop.example.com/home?x=1")
    assert [c.url for c in tokens(out.html) if c.kind == "h"] == [
        "https://www.shop.example.com/home?x=1"]


def test_headers_rfc8058():
    out = rewrite("<p>hi</p>")
    assert out.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    value = out.headers["List-Unsubscribe"]
    assert value.startswith("<https://t.example.net/u/") and value.endswith(">")
    u = verify(value[1:-1].rsplit("/", 1)[1], KEYS, now=NOW)
    assert u.kind == "u" and u.message_id == TEMPLATE.message_id and u.url == ""
    out = rewrite("<p>hi</p>", unsubscribe_mailto="unsub+m1@shop.example.com")
    assert out.headers["List-Unsubscribe"].endswith(", <mailto:unsub+m1@shop.example.com>")
    for bad in ("a@b.com>\r\nBcc: x@y", "a@b.com, <https://evil>", "a b@c.com"):
        with pytest.raises(ValueError):
            rewrite("<p>hi</p>", unsubscribe_mailto=bad)


def test_entities_are_decoded_before_signing_and_output_is_escaped():
    source = ('<a href="https://a.example/?x=1&amp;y=2&#38;z=3&lt;&quot;">e</a>'
              '<a href="https://a.example/?q=caf&eacute;">f</a>')
    out = rewrite(source)
    assert out.links == [(0, 'https://a.example/?x=1&y=2&z=3<"'),
                         (1, "https://a.example/?q=caf%C3%A9")]
    for m in re.finditer(r'href="([^"]*)"', out.html):
        assert html.unescape(m.group(1)) == m.group(1)  # nothing left to escape


def test_left_alone_kinds_are_not_reported():
    source = ('<a href="mailto:a@b.c">m</a><a href="MAILTO:a@b.c">M</a><a href="tel:+1">t</a>'
              '<a href="sms:+1">s</a><a href="#top">#</a><a href=" #x ">#</a>'
              '<a href="https://a.example/" data-mailflow="off">off</a>'
              '<a href="https://a.example/" DATA-MAILFLOW="OFF">OFF</a>'
              f'<a href="{BASE}/c/abc">tracked</a><a href="{BASE.upper()}/o/abc">tracked</a>'
              '<a href>empty</a><a name="x">anchor</a><base href="https://base.example/">'
              '<link rel="stylesheet" href="https://cdn.example/s.css">'
              '<img src="https://cdn.example/i.png">')
    out = rewrite(source)
    assert out.links == [] and out.skipped == []
    assert without_inserts(out.html) == source


def test_rewriting_twice_tracks_nothing_new():
    once = rewrite((DATA / "retail_tables.html").read_text())
    twice = rewrite(once.html)
    assert twice.links == [] and twice.skipped == once.skipped


def test_aggregate_tracking_puts_no_recipient_hash_in_any_link():
    template = TEMPLATE._replace(tracking="aggregate")
    out = rewrite_html((DATA / "substack_like.html").read_text(), BASE, template, KEYS, NOW)
    found = tokens(out.html)
    assert found and all(c.recipient_hash == "" and c.tracking == "aggregate" for c in found)
    assert all(c.recipient_domain == "example.org" for c in found)


def test_expiry_comes_from_the_template():
    out = rewrite_html('<a href="https://a.example/">a</a>', BASE,
                       TEMPLATE._replace(expires=NOW + 60), KEYS, NOW)
    assert {c.expires for c in tokens(out.html)} == {NOW + 60}


def test_text_outside_markup_and_non_ascii_is_kept():
    source = ("Préambule ☀ <b>gras</b>\r\n<a href='https://a.example/é'>é</a> &nbsp; "
              "<script>var s = '<a href=\"https://x.example/\">';</script>")
    out = rewrite(source)
    assert out.links == [(0, "https://a.example/%C3%A9")]
    assert "<script>var s = '<a href=\"https://x.example/\">';</script>" in out.html
    assert_only_hrefs_changed(source, out.html)


def test_random_mutations_of_real_markup_never_crash():
    rng = random.Random(1818)
    source = (DATA / "retail_tables.html").read_text()
    pieces = ["<", ">", '"', "'", "=", "&amp;", "<a href=", "</a>", "<!--", "-->", "\x00",
              "<![CDATA[", "]]>", "</body>", "<body>", " HREF=", "&#", "\\", "\n"]
    for _ in range(60):
        text = list(source)
        for _ in range(rng.randrange(1, 30)):
            at = rng.randrange(len(text))
            if rng.random() < 0.5:
                text.insert(at, rng.choice(pieces))
            else:
                del text[at]
        mutated = "".join(text)
        out = rewrite(mutated)
        ours = [m.group(3) for m in TRACKED.finditer(out.html) if m.group(3) not in mutated]
        assert len(ours) >= 2 + len(out.links)  # every tracked link, the pixel, the honeypot
        for token in ours:
            assert verify(token, KEYS, now=NOW).kind in "cohu"
        for _, reason in out.skipped:
            assert reason


HOSTILE = ["<a " * 20000, "<!--" * 20000, "</" * 20000, "<" * 50000, "<?" * 20000,
           "<![CDATA[" * 10000, "<a '" * 20000, '<a href="' * 20000, "<script>" + "<a " * 9000]


@pytest.mark.parametrize("head", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_markup_is_parsed_in_bounded_work(head, monkeypatch):
    """HTMLParser.close() re-scans the rest of the text for every incomplete construct
    (quadratic: a minute for 60 kB of "<a "); the rewriter never calls it, and resumes
    after an incomplete construct a bounded number of times. Work is counted, not timed."""
    from schemas import rewrite as module

    calls = []
    original = module._Scanner.goahead
    monkeypatch.setattr(module._Scanner, "goahead",
                        lambda self, end: calls.append(end) or original(self, end))
    monkeypatch.setattr(module._Scanner, "close", lambda self: pytest.fail("close() called"))
    link = '<a href="https://a.example/">x</a>'
    for source in (head, head + link, link + head + link):
        calls.clear()
        out = rewrite(source)
        assert len(calls) <= 2 * (module._MAX_RESUMES + 1)  # two parses: rewrite, then place
        assert out.html.count(link) + len(out.links) >= source.count(link)
        for href, reason in out.skipped:  # what could not be parsed is reported, not dropped
            assert reason and href


def test_many_links_are_all_tracked():
    source = "".join(f'<p><a href="https://a.example/{i}?x={i}&amp;y=1">{i}</a></p>\n'
                     for i in range(20000))
    out = rewrite(source)
    assert out.links[0] == (0, "https://a.example/0?x=0&y=1")
    assert out.links[-1] == (19999, "https://a.example/19999?x=19999&y=1")
    assert_only_hrefs_changed(source, out.html)
