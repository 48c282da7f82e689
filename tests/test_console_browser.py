"""The operator console in headless Chromium, against a real deployment fed an incident.

Broker, `mailflow run` and `mailflow serve` run as their own processes
(tests/console_env.py). The page is opened and signed in *before* the incident's mail is
produced: the throttles must arrive through the decision stream, without a reload. Then
every view is opened and its charts must hold data; nothing may reach the browser's
console; a wrong token must get no data. Screenshots go to the test's directory, or to
MAILFLOW_SCREENSHOTS (the README's come from `MAILFLOW_SCREENSHOTS=tests/screenshots`).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from tests.browser import chromium_fixture  # noqa: F401 (the `chromium` fixture)
from tests.console_env import INCIDENT, TOKEN, ConsoleDeployment, get_json

pytestmark = pytest.mark.integration

PAIR = INCIDENT.replace(":", "|")
#: 45 minutes of mail ending now: the incident starts at minute 15 and the pair is paused
#: for 15 minutes at about minute 44, so the pause is still in force (by the wall clock,
#: as /v1/throttle judges it) while the test looks
SECONDS = 2700


def shots_dir(tmp_path: Path) -> Path:
    where = Path(os.environ.get("MAILFLOW_SCREENSHOTS") or tmp_path / "screenshots")
    where.mkdir(parents=True, exist_ok=True)
    return where


def shown_pct(fraction: float) -> str:
    """A rate as the page writes it: fewer decimals the larger it is.

    >>> shown_pct(0.1849), shown_pct(0.003), shown_pct(0.0004)
    ('18.5%', '0.30%', '0.040%')
    """
    p = fraction * 100
    return f"{p:.{1 if p >= 10 else 2 if p >= 0.1 else 3}f}%"


def chart_points(page, panel: str) -> list[int]:
    """Data points drawn by each chart of a panel (the page counts them per figure)."""
    page.wait_for_selector(f"#panel-{panel} figure[data-points] canvas", timeout=30_000)
    return page.eval_on_selector_all(
        f"#panel-{panel} figure[data-points]",
        "figures => figures.map(f => f.querySelector('canvas') ? +f.dataset.points : -1)")


def test_console_shows_an_incident_live_with_its_evidence_and_charts(chromium, tmp_path):
    shots = shots_dir(tmp_path)
    with ConsoleDeployment(tmp_path / "data") as deployment:
        context = chromium.new_context(viewport={"width": 1366, "height": 768},
                                       timezone_id="Europe/Berlin")
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(f"{m.type}: {m.text}")
                if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
        try:
            # a wrong token: the form again, a message, and no data anywhere on the page
            page.goto(f"{deployment.base}/ui/")
            page.fill("#login-token", "not-the-token")
            page.click("#login button[type=submit]")
            page.wait_for_selector("#login-failed:not([hidden])")
            assert page.is_hidden("#app")
            # (asked with the page's own cookies, outside the page: a refused fetch in the
            # page would be an error in its console, which this test forbids)
            assert context.request.get(f"{deployment.base}/ui/api/now").status == 401
            assert context.cookies() == []

            # the right token: signed in by cookie, the stream live, nothing throttled yet
            page.fill("#login-token", TOKEN)
            started = time.monotonic()
            page.click("#login button[type=submit]")
            page.wait_for_selector("#app:not([hidden])")
            # (locators, not wait_for_function: the page's CSP forbids evaluating strings)
            page.locator("#stream-status", has_text=re.compile(r"^live$")).wait_for()
            signed_in_s = time.monotonic() - started
            [cookie] = context.cookies()
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert TOKEN not in cookie["value"]
            assert page.locator("#decisions tr[data-key]").count() == 0
            page.evaluate("window.__notReloaded = true")

            # the incident: its decisions arrive on the stream while the page watches
            deployment.feed(seconds=SECONDS, start=float(int(time.time()) - SECONDS))
            row = page.locator(f'#decisions tr[data-key="{PAIR}"]')
            row.wait_for(timeout=120_000)
            page.locator(f'#decisions tr.action-pause[data-key="{PAIR}"]').wait_for(
                timeout=120_000)
            assert page.evaluate("window.__notReloaded") is True  # no reload happened
            deployment.wait_caught_up()

            # the evidence as a person reads it: the observed rate, its bound, the line
            _, now = get_json(f"{deployment.base}/ui/api/now", TOKEN)
            held = next(d for d in now["decisions"] if d["key"] == PAIR)
            assert held["action"] == "pause" and held["until"] > time.time() * 1000
            evidence = held["evidence"]
            text = row.inner_text()
            assert "pause" in text
            hits = next(k for k in ("complaints", "blocks", "hard_bounces", "unsubscribes")
                        if k in evidence)
            for shown in (f"{evidence[hits]:,}", hits.replace("_", " "), "lower bound",
                          shown_pct(evidence["rate"]), shown_pct(evidence["lower_bound"]),
                          shown_pct(evidence["threshold"])):
                assert shown in text, (shown, text)
            # a time in the browser's zone, with UTC on hover
            stamp = row.locator("time").first
            assert "UTC" in (stamp.get_attribute("title") or "")
            page.screenshot(path=str(shots / "console-now.png"))

            # the pair's history: rates and the decision timeline, with data
            row.locator("a, button").first.click()
            page.wait_for_selector("#panel-history:not([hidden])")
            assert all(n > 0 for n in chart_points(page, "history"))
            page.screenshot(path=str(shots / "console-history.png"))

            for view in ("flows", "models", "replies"):
                page.click(f"#tab-{view}")
                points = chart_points(page, view)
                assert points and all(n > 0 for n in points), (view, points)
                page.screenshot(path=str(shots / f"console-{view}.png"))

            # keyboard: the tabs move with the arrow keys
            page.focus("#tab-replies")
            page.keyboard.press("ArrowLeft")
            assert page.evaluate("document.activeElement.id") == "tab-models"

            # a page load with the data there (measured, not asserted: reported in the README)
            started = time.monotonic()
            page.goto(f"{deployment.base}/ui/#now")
            page.wait_for_selector(f'#decisions tr[data-key="{PAIR}"]')
            print(f"\nconsole: signed in and live in {signed_in_s:.2f}s; "
                  f"reloaded with the incident's data in {time.monotonic() - started:.2f}s")
        finally:
            context.close()
        assert not problems, problems
