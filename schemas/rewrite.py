"""Rewriting an HTML mail body for the tracking edge (pure: no I/O).

`rewrite_html` runs the standard library's HTML parser over the body, and edits only
the `href` values of `<a>` and `<area>` tags (and of Outlook's VML buttons inside
`<!--[if mso]>` comments), in place: every other byte of the markup is kept. It then
adds a 1x1 open pixel before `</body>` and one hidden honeypot link after `<body>`,
and returns the RFC 8058 `List-Unsubscribe` headers.

Left alone: `mailto:`, `tel:`, `sms:` and other non-web links, `#anchors`, links with
`data-mailflow="off"`, links already on the tracking base URL. A link whose destination
fails `check_destination` (relative, `javascript:`, userinfo, merge tags like
`*|UNSUB|*`...) is left exactly as it was and reported in `skipped`: never tracked,
never silently changed.

>>> from schemas.links import LinkClaims, LinkKeys, verify
>>> keys = LinkKeys.parse("k1:0123456789abcdef0123")
>>> template = LinkClaims("c", "m-1", "news.example", "ab" * 16, "example.org", "spring",
...                      "", "", 0, "", 0, 0, "person")
>>> out = rewrite_html('<body><a href="https://shop.example/?a=1&amp;b=2">Shop</a>'
...                    '<a href="mailto:hi@news.example">Mail</a></body>',
...                    "https://t.example", template, keys, now=1000)
>>> out.links, out.skipped
([(0, 'https://shop.example/?a=1&b=2')], [])
>>> out.html.count("https://t.example/c/"), out.html.count("https://t.example/o/")
(2, 1)
>>> out.headers["List-Unsubscribe-Post"]
'List-Unsubscribe=One-Click'
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser, attrfind_tolerant, tagfind_tolerant  # type: ignore
from typing import NamedTuple

from schemas.links import LinkClaims, LinkKeys, UnsafeDestination, check_destination, track_url

#: Schemes that are deliberately not tracked (not web pages).
UNTRACKED_SCHEMES = ("mailto:", "tel:", "sms:", "callto:", "facetime:", "geo:")
#: Tags whose href is a link (VML buttons are what Outlook for Windows shows).
LINK_TAGS = ("a", "area", "v:roundrect", "v:rect", "v:oval")
_ASCII_WS = " \t\n\r\f"
_NEWLINE = re.compile("\n")
_MAX_RESUMES = 64


class Rewritten(NamedTuple):
    html: str
    links: list[tuple[int, str]]  # (link index, destination) of every tracked link
    skipped: list[tuple[str, str]]  # (href as written, reason) of links left untracked
    headers: dict[str, str]  # List-Unsubscribe, List-Unsubscribe-Post


class _Tag(NamedTuple):
    start: int
    raw: str
    name: str
    attrs: list[tuple[str, str | None]]


class _Scanner(HTMLParser):
    """Collects where the interesting tags and comments are in the source text."""

    def __init__(self, source: str):
        super().__init__(convert_charrefs=True)
        self.source = source
        # the parser counts lines by "\n" only (getpos), so the same here
        self._line_starts = [0] + [m.end() for m in _NEWLINE.finditer(source)]
        self.tags: list[_Tag] = []
        self.comments: list[tuple[int, str]] = []
        self.body_open: int | None = None  # offset just after <body ...>
        self.body_close: int | None = None  # offset of the last </body>
        self.html_close: int | None = None
        self.gave_up_at: int | None = None  # offset of markup left unparsed (hostile input)

    def run(self) -> None:
        """Parse the whole source in linear time.

        `HTMLParser.close()` re-scans the rest of the text for every incomplete construct
        ("<a <a <a ...", "<!--<!--..."): quadratic, a minute for 60 kB. Instead, the
        parser runs without `close()`; where it stops at an incomplete construct it goes
        on from the next "<" (what `close()` would do) a bounded number of times, and
        not at all when no later ">" could end a tag. What is left is reported.
        """
        self.feed(self.source)
        for _ in range(_MAX_RESUMES):
            tail = self.rawdata
            if not tail or self.cdata_elem or not tail.startswith("<"):
                return  # done, trailing text, or an unterminated <script>/<style>
            nxt = tail.find("<", 1)
            if nxt == -1 or tail.find(">", nxt) == -1:
                return  # nothing after this point can be a complete tag
            self.updatepos(0, nxt)
            self.rawdata = tail[nxt:]
            self.goahead(False)
        if self.rawdata.lstrip().startswith("<"):
            self.gave_up_at = len(self.source) - len(self.rawdata)

    def _offset(self) -> int:
        line, col = self.getpos()
        return self._line_starts[line - 1] + col

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raw = self.get_starttag_text() or ""
        start = self._offset()
        if self.source[start:start + len(raw)] != raw:
            return  # cannot place it exactly: leave it alone rather than guess
        if tag == "body" and self.body_open is None:
            self.body_open = start + len(raw)
        elif tag in LINK_TAGS:
            self.tags.append(_Tag(start, raw, tag, attrs))

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        if tag == "body":
            self.body_close = self._offset()
        elif tag == "html":
            self.html_close = self._offset()

    def handle_comment(self, data: str) -> None:
        start = self._offset()
        if self.source.startswith("<!--" + data, start):
            self.comments.append((start + 4, data))


def _href_span(raw: str) -> tuple[int, int, str] | None:
    """(start, end, quote) of the first href value inside a raw start tag.

    Uses the parser's own tokenizer patterns, so it agrees with what the parser read.
    """
    match = tagfind_tolerant.match(raw, 1)
    if not match:
        return None
    k = match.end()
    while k < len(raw):
        m = attrfind_tolerant.match(raw, k)
        if not m:
            break
        name, rest, value = m.group(1, 2, 3)
        if name.lower() == "href" and rest and value is not None:
            start = m.start(3)
            quote = value[:1] if value[:1] in ("'", '"') else ""
            return start, start + len(value), quote
        k = m.end()
    return None


class _Context:
    def __init__(self, base_url: str, template: LinkClaims, keys: LinkKeys):
        self.base_url = base_url.rstrip("/")
        self.template = template
        self.keys = keys
        self.links: list[tuple[int, str]] = []
        self.skipped: list[tuple[str, str]] = []

    def tracked(self, href: str) -> str | None:
        """The tracking URL for an href, or None to leave it (reported when unsafe)."""
        target = href.strip(_ASCII_WS)  # browsers ignore these around an href
        low = target.lower()
        if not target or target.startswith("#") or low.startswith(UNTRACKED_SCHEMES):
            return None
        if low.startswith(self.base_url.lower() + "/"):
            return None  # already a tracking link
        try:
            url = check_destination(target)
            index = len(self.links)
            claims = self.template._replace(kind="c", link=index, url=url)
            tracked = track_url(self.base_url, claims, self.keys)
        except UnsafeDestination as exc:
            self.skipped.append((href, exc.reason))
            return None
        except ValueError as exc:  # a message-level field too long for a token
            self.skipped.append((href, f"unsignable: {exc}"))
            return None
        self.links.append((index, url))
        return tracked


def _rewrite(source: str, ctx: _Context, nested: bool) -> tuple[str, _Scanner]:
    scanner = _Scanner(source)
    scanner.run()
    if scanner.gave_up_at is not None:
        ctx.skipped.append((source[scanner.gave_up_at:scanner.gave_up_at + 80],
                            "malformed_html: links after this point were left as they are"))
    edits: list[tuple[int, int, str]] = []
    for tag in scanner.tags:
        attrs = dict(reversed(tag.attrs))  # the first of duplicate attributes wins
        href = attrs.get("href")
        if href is None or (attrs.get("data-mailflow") or "").strip().lower() == "off":
            continue
        span = _href_span(tag.raw)
        if span is None:  # the parser read an href the tokenizer cannot place: never guess
            ctx.skipped.append((href, "unplaceable_href"))
            continue
        tracked = ctx.tracked(href)
        if tracked is None:
            continue
        start, end, _ = span
        edits.append((tag.start + start, tag.start + end, '"' + html.escape(tracked) + '"'))
    if not nested:
        for start, data in scanner.comments:
            # Outlook renders conditional comments: their buttons are links people click.
            if data.lstrip().lower().startswith("[if") and "href" in data.lower():
                inner, _ = _rewrite(data, ctx, nested=True)
                if inner != data:
                    edits.append((start, start + len(data), inner))
    pieces, at = [], 0
    for start, end, text in sorted(edits):  # spans never overlap: tags and comments
        pieces += [source[at:start], text]
        at = end
    pieces.append(source[at:])
    return "".join(pieces), scanner


def _positions(html_text: str) -> _Scanner:
    scanner = _Scanner(html_text)
    scanner.run()
    return scanner


def rewrite_html(html_text: str, base_url: str, template: LinkClaims, keys: LinkKeys,
                 now: float, *, honeypot_url: str | None = None,
                 unsubscribe_mailto: str | None = None) -> Rewritten:
    """Track every web link of `html_text`, add the open pixel and honeypot, build headers.

    `template` carries the message-level fields (message id, sender, recipient hash and
    domain, campaign, flow, variant, tracking, expires); kind, link and url are set here
    and `issued` is `now`. The honeypot lands on `honeypot_url` (default: the sender
    domain's home page) for a scanner that follows it.
    """
    template = template._replace(issued=int(now), url="", link=-1)
    ctx = _Context(base_url, template, keys)
    out, _ = _rewrite(html_text, ctx, nested=False)

    pixel_url = track_url(base_url, template._replace(kind="o"), keys)
    pixel = (f'<img src="{html.escape(pixel_url)}" width="1" height="1" alt="" '
             'border="0" style="display:block;width:1px;height:1px;border:0" '
             'aria-hidden="true">')
    honeypot = ""
    home = honeypot_url or f"https://{template.sender.rpartition('@')[2].strip()}/"
    try:
        honey_url = track_url(base_url, template._replace(kind="h", url=home), keys)
        honeypot = (f'<a href="{html.escape(honey_url)}" style="display:none !important;'
                    'mso-hide:all;font-size:0;line-height:0;max-height:0;overflow:hidden" '
                    'aria-hidden="true" tabindex="-1" rel="nofollow"></a>')
    except (UnsafeDestination, ValueError) as exc:
        ctx.skipped.append((home, f"honeypot: {getattr(exc, 'reason', exc)}"))

    where = _positions(out)  # positions in the rewritten text
    close = where.body_close if where.body_close is not None else where.html_close
    if close is None:
        out = out + (honeypot if where.body_open is None else "") + pixel
    else:
        out = out[:close] + (honeypot if where.body_open is None else "") + pixel + out[close:]
    if where.body_open is not None and honeypot:
        out = out[:where.body_open] + honeypot + out[where.body_open:]

    unsubscribe = "<" + track_url(base_url, template._replace(kind="u"), keys) + ">"
    if unsubscribe_mailto:
        if any(ch in "<>,\" " for ch in unsubscribe_mailto) or not unsubscribe_mailto.isprintable():
            raise ValueError("the unsubscribe mailto address has characters a header cannot carry")
        unsubscribe += f", <mailto:{unsubscribe_mailto.removeprefix('mailto:')}>"
    headers = {"List-Unsubscribe": unsubscribe,
               "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    return Rewritten(out, ctx.links, ctx.skipped, headers)
