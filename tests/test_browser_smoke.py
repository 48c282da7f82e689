"""The browser harness itself: Debian's headless Chromium against a real local HTTP server."""

from __future__ import annotations

from tests.browser import LocalSite, Reply, chromium_fixture, write_page  # noqa: F401 (fixture)

# a landing page that shows what the browser's address bar holds, query string and fragment
LANDING = """<!doctype html><title>Landing</title><h1>Welcome aboard</h1>
<p id="where"></p><script>
document.getElementById("where").textContent = location.search + "|" + location.hash;
</script>"""

# every way a query string gets mangled: encoded spaces, plus, empty and repeated keys,
# non-ASCII, an encoded ampersand and slash
QUERY = "?utm_source=news&q=a%20b+c&empty=&dup=1&dup=2&name=%C3%A9t%C3%A9&x=%26%2F"


def test_page_renders_and_a_redirect_keeps_query_and_fragment(chromium):
    """A 302 to a URL with a query string and fragment: both arrive intact, the page renders."""
    with LocalSite({"/landing": Reply(body=LANDING)}) as site:
        site.routes["/go"] = Reply(302, headers={"Location": site.url("/landing" + QUERY + "#top")})
        page = chromium.new_page()
        try:
            page.goto(site.url("/go"))
            assert page.locator("h1").inner_text() == "Welcome aboard"
            assert page.locator("#where").inner_text() == QUERY + "|#top"
            assert page.url == site.url("/landing" + QUERY + "#top")
        finally:
            page.close()
        # what the destination server itself received: the query string, byte for byte
        assert [seen.path for seen in site.requests_to("/landing")] == ["/landing" + QUERY]


def test_a_click_from_a_file_page_and_a_form_button_post(chromium, tmp_path):
    """A link clicked in a page opened from disk (a mail), then a form's button sends a POST."""
    form = '<form method="post" action="/done"><button id="b">Confirm</button></form>'
    with LocalSite({"/form": Reply(body=form), "/done": Reply(body="<p>thanks</p>")}) as site:
        mail = write_page(tmp_path, "mail.html", f'<a id="l" href="{site.url("/form?k=v")}">x</a>')
        page = chromium.new_page()
        try:
            page.goto(mail)
            page.click("#l")
            page.wait_for_url(site.url("/form?k=v"))
            assert site.requests_to("/done") == []  # showing the form posts nothing
            page.click("#b")
            page.wait_for_url(site.url("/done"))
            assert page.locator("p").inner_text() == "thanks"
        finally:
            page.close()
        # (Chromium also asks for /favicon.ico)
        assert [(seen.method, seen.path) for seen in site.seen if seen.path != "/favicon.ico"] == [
            ("GET", "/form?k=v"), ("POST", "/done")]
