"""The operator console's server side: `/ui/api/*` answers, its session, its page.

The data tests run `ConsoleData` against a real chDB store through the job's admin port
(as `mailflow serve` reads the embedded store: parameterised read-only SQL over HTTP); the
HTTP tests run `mailflow serve`'s real server with a token.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest

from flows.stats import JobStats
from mailflow.admin import AdminServer
from mailflow.api import ApiServer, DecisionApi
from mailflow.console import (
    COOKIE,
    MAX_POINTS,
    BadRequest,
    ConsoleData,
    edge_counters,
    session_value,
)
from mailflow.flow_api import store_query
from schemas.rows import iso_ms
from sinks.clickhouse import ClickHouseStore, ReadOnlyQueries
from sinks.client import ThrottleClient
from tests.browser import chromium_fixture  # noqa: F401 (the `chromium` fixture)

#: ms, a whole minute; the data's own "now" is an hour after it, not the wall clock
T0 = 1_794_999_960_000
MIN = 60_000
SENDER, DOMAIN = "news.acme.example", "gmail.com"


def decision(seq: int, action: str, factor: float, minute: int, until: int | None = None,
             reason: str = "complaint_rate") -> dict:
    ts = T0 + minute * MIN
    return {"sender": SENDER, "domain": DOMAIN, "seq": seq, "action": action,
            "rate_factor": factor, "reason": reason,
            "until": None if until is None else iso_ms(until),
            "evidence": {"window_s": 3600, "horizon": "1h", "delivered": 1049,
                         "complaints": 10, "rate": 0.009533, "lower_bound": 0.004318,
                         "threshold": 0.003},
            "event_ts": iso_ms(ts), "decided_at": iso_ms(ts + 500)}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseStore]:
    """An hour of one pair's mail (a complaint wave from minute 30), two flows, two models,
    replies and one lift row."""
    store = ClickHouseStore(f"chdb://{tmp_path_factory.mktemp('console') / 'clickhouse'}")
    store.migrate()
    metrics = []
    for m in range(60):
        complaints = 8 if m >= 30 else 0
        for sender, domain in ((SENDER, DOMAIN), ("calm.example", "yahoo.com")):
            wave = sender == SENDER
            metrics.append(((T0 + m * MIN) // 1000, sender, domain, "c1", "welcome", 100, 95,
                            3, 2, 1, complaints if wave else 0, 0, 4 if m % 2 else 0,
                            6, 3, 10, 2))
    store.insert("mailflow.metrics_1m", metrics, (
        "minute", "sender", "domain", "campaign_id", "flow_id", "sent", "delivered",
        "deferred", "bounces", "hard_bounces", "complaints", "blocks", "unsubscribes",
        "human_clicks", "bot_clicks", "human_opens", "machine_opens"))
    decisions = [decision(1, "slow", 0.5, 10, reason="block_rate"),  # before the hour shown
                 decision(2, "pause", 0.0, 40, until=T0 + 55 * MIN),
                 decision(3, "slow", 0.25, 55, reason="recovering")]
    store.insert("mailflow.throttle_decisions", [
        (d["sender"], d["domain"], d["seq"], d["action"], d["rate_factor"],
         T0 + 55 * MIN if d["until"] else None, d["reason"],
         orjson.dumps(d["evidence"]).decode(), T0 + minute * MIN, T0 + minute * MIN + 500)
        for d, minute in zip(decisions, (10, 40, 55), strict=True)],
        ("sender", "domain", "seq", "action", "rate_factor", "until", "reason", "evidence",
         "event_ts", "decided_at"))
    convergence = [(flow, window, (T0 + m * MIN) // 1000, 100 + m, m // 10, (m // 10) / 100,
                    0.5, 1.5, 0.01) for flow in ("welcome", "winback") for m in range(60)
                   for window in ("1h", "24h")]
    store.insert("mailflow.convergence", convergence, (
        "flow_id", "window", "as_of", "entered", "converged", "convergence_score",
        "engagement_depth", "engagement_depth_raw", "negative_rate"))
    models = [(model, (T0 + m * MIN) // 1000, m * 10, 0.7 if model == "engagement" else 0.5,
               0.4, 0.1) for model in ("engagement", "engagement_baseline_global")
              for m in range(60)]
    store.insert("mailflow.model_metrics", models, (
        "model", "minute", "n", "roc_auc", "log_loss", "positive_rate"))
    store.insert("mailflow.model_events", [(T0 + 45 * MIN, "engagement", "drift", "adwin")],
                 ("ts", "model", "event", "detail"))
    store.insert("mailflow.replies", [
        (f"r{i}", T0 + i * MIN, "" if i % 4 else "sales", "out_of_office" if i % 4
         else "interested", i % 8 == 0) for i in range(40)],
        ("reply_id", "ts", "queue", "intent", "urgent"))
    store.insert("mailflow.reply_feedback", [
        ("r0", T0 + 10 * MIN, "first_response", 600.0), ("r4", T0 + 20 * MIN,
                                                         "first_response", 1200.0)],
        ("reply_id", "ts", "action", "latency_s"))
    store.insert("mailflow.lift", [
        ("welcome", 7, T0 + 50 * MIN, 900, 63, 100, 5, 0.07, 0.05, 0.02, 0.001, 0.04, 0, 1),
        ("", 7, T0 + 50 * MIN, 950, 50, 50, 2, 0.0526, 0.04, 0.0126, -0.04, 0.06, 1, 1e-6)],
        ("flow_id", "window_days", "as_of", "treated_n", "treated_conv", "control_n",
         "control_conv", "treated_rate", "control_rate", "abs_lift", "abs_lo95", "abs_hi95",
         "srm_alarm", "srm_p"))
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(scope="module")
def admin(store: ClickHouseStore) -> Iterator[int]:
    """The job's admin port over the store, as a running job serves it."""
    queries = ReadOnlyQueries(store.dsn)
    server = AdminServer(JobStats(), queries.query, info={"clickhouse_url": store.dsn},
                         port=0).start()
    try:
        yield server.port
    finally:
        server.stop()
        queries.close()


@pytest.fixture
def data(store: ClickHouseStore, admin: int) -> ConsoleData:
    client = ThrottleClient("127.0.0.1:1")  # never started: decisions go straight in
    for record in (decision(2, "pause", 0.0, 40, until=T0 + 55 * MIN),
                   {**decision(1, "slow", 0.5, 50), "sender": "calm.example"}):
        assert client.view.apply_decision(record)
    query = store_query(SimpleNamespace(clickhouse_dsn=store.dsn, admin_port=admin))
    seen: list[str] = []

    def recording(sql: str, parameters: dict | None = None):
        seen.append(sql)
        return query(sql, parameters)

    console = ConsoleData(client, recording, clock=lambda: (T0 + 50 * MIN) / 1000)
    console.seen = seen  # type: ignore[attr-defined]
    return console


def test_now_lists_held_decisions_newest_first_with_their_evidence(data):
    now = data.now()
    assert [d["key"] for d in now["decisions"]] == ["calm.example|gmail.com",
                                                    f"{SENDER}|{DOMAIN}"]
    paused = now["decisions"][1]
    assert (paused["action"], paused["rate_factor"], paused["until"]) == (
        "pause", 0.0, T0 + 55 * MIN)
    assert paused["evidence"]["lower_bound"] == 0.004318
    assert now["counts"] == {"pause": 1, "slow": 1, "allow": 0}
    # the same pause read after its `until`: the ramp's slow, as /v1/throttle answers
    data.clock = lambda: (T0 + 56 * MIN) / 1000
    later = data.now()["decisions"][1]
    assert (later["action"], later["decided_action"], later["reason"]) == (
        "slow", "pause", "pause_expired")


def test_history_of_a_pair_is_the_datas_last_hours_with_rates_and_decisions(data):
    answer = data.history({"sender": SENDER, "domain": DOMAIN})
    # the data's newest minute ends the span (not the wall clock), its first one starts it
    assert answer["end"] == T0 + 60 * MIN and answer["start"] == T0
    assert answer["bucket_s"] == 60 and len(answer["signals"]["t"]) == 60
    # the decision in force at the start comes first, then those in the span
    assert [d["seq"] for d in answer["decisions"]] == [1, 2, 3]
    assert answer["decisions"][1]["until"] == T0 + 55 * MIN
    assert answer["decisions"][1]["evidence"]["threshold"] == 0.003
    rates = answer["signals"]["complaint_rate"]
    assert rates[0] == 0 and rates[45] == pytest.approx(8 / 95, abs=1e-6)
    assert answer["signals"]["hard_bounce_rate"][0] == pytest.approx(1 / 100, abs=1e-6)
    # a later window: the decision in force then (seq 3) first
    later = data.history({"sender": SENDER, "domain": DOMAIN, "hours": "1",
                          "end": str(T0 + 120 * MIN)})
    assert [d["seq"] for d in later["decisions"]] == [3]


def test_history_for_every_provider_of_a_sender_and_bad_parameters(data):
    both = data.history({"sender": "*", "domain": "*"})
    assert both["signals"]["delivered"][0] == 190  # two pairs' 95
    for bad in ({"sender": SENDER}, {"sender": SENDER, "domain": DOMAIN, "hours": "0"},
                {"sender": "a\x00b", "domain": DOMAIN},
                {"sender": SENDER, "domain": DOMAIN, "hours": "1e9"}):
        with pytest.raises(BadRequest):
            data.history(bad)


def test_flows_series_latest_and_lift(data):
    answer = data.flows({"window": "24h"})
    assert [f["flow_id"] for f in answer["flows"]] == ["welcome", "winback"]
    welcome = answer["flows"][0]
    assert len(welcome["t"]) == 60 and welcome["convergence_score"][-1] == 0.05
    assert welcome["latest"]["as_of"] == T0 + 59 * MIN
    assert welcome["engagement_depth_raw"][0] > welcome["engagement_depth"][0]
    programme, lift = answer["lift"]
    assert (lift["flow_id"], lift["abs_lift"], lift["abs_lo95"], lift["srm_alarm"]) == (
        "welcome", 0.02, 0.001, 0)
    assert (programme["flow_id"], programme["srm_alarm"]) == ("", 1)
    for bad in ({"window": "2h"}, {"end": "0"}, {"end": "-5"}, {"days": "91"}):
        with pytest.raises(BadRequest):
            data.flows(bad)
    # a week of data is cut to at most MAX_POINTS buckets
    week = data.flows({"window": "1h", "end": str(T0 + 60 * MIN), "days": "7"})
    assert len(week["flows"][0]["t"]) <= MAX_POINTS


def test_models_with_their_baselines_and_drift(data):
    answer = data.models({"hours": "2"})
    names = [m["model"] for m in answer["models"]]
    assert names == ["engagement", "engagement_baseline_global"]
    engagement = answer["models"][0]
    assert len(engagement["t"]) == 60 and engagement["roc_auc"][-1] == 0.7
    assert engagement["n"][-1] == 590
    assert answer["events"] == [{"ts": T0 + 45 * MIN, "model": "engagement",
                                 "event": "drift", "detail": "adwin"}]


def test_replies_and_tracking(data):
    replies = data.replies({})
    assert replies["total"] == 40 and replies["automated"] == 30
    assert replies["automation_rate"] == 0.75
    assert replies["queues"][0] == {"queue": "", "replies": 30, "urgent": 0}
    assert replies["first_response"]["n"] == 2
    assert sum(replies["by_hour"]) == 40
    tracking = data.tracking({})
    assert tracking["totals"] == {"human_clicks": 720, "bot_clicks": 360,
                                  "human_opens": 1200, "machine_opens": 240}
    assert tracking["edge"] is None  # no tracking edge configured


def test_every_store_query_is_bounded_by_time_and_takes_its_values_as_parameters(data):
    data.history({"sender": "x'); DROP TABLE t; --", "domain": DOMAIN})
    for call in (data.flows, data.models, data.replies, data.tracking):
        call({})
    assert data.seen
    for sql in data.seen:
        assert "fromUnixTimestamp64Milli({" in sql, sql  # a time bound, as a parameter
        assert "DROP" not in sql and "x'" not in sql


def test_edge_counters_skip_what_they_do_not_know():
    text = ('# TYPE x counter\nmailflow_track_requests_total{endpoint="open"} 3\n'
            'mailflow_track_refused_total{reason="expired"} 1\nmailflow_track_up 1\n')
    assert edge_counters(text) == {"requests": {"open": 3}, "refused": {"expired": 1},
                                   "refused_total": 1}


# --- the HTTP side: tokens, the session cookie, the page -----------------------------------

TOKEN = "t0ken-for-the-console"


@pytest.fixture
def server(data: ConsoleData) -> Iterator[str]:
    api = DecisionApi(data.client, [TOKEN], console=data)
    running = ApiServer(api, port=0).start()
    try:
        yield f"http://127.0.0.1:{running.port}"
    finally:
        running.httpd.shutdown()
        running.httpd.server_close()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # the 303 itself is what is tested
        return None


def call(url: str, headers: dict | None = None, data: bytes | None = None
         ) -> tuple[int, dict, bytes]:
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with opener.open(request, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_console_data_wants_the_token_or_its_session_cookie(server):
    status, _, body = call(f"{server}/ui/api/now")
    assert status == 401 and orjson.loads(body)["tokens_required"] is True
    status, _, body = call(f"{server}/ui/api/now", {"Authorization": "Bearer wrong"})
    assert status == 401 and b"decisions" not in body
    status, headers, body = call(f"{server}/ui/api/now", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and len(orjson.loads(body)["decisions"]) == 2
    assert headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    # a wrong token on the login form: back to the page with no cookie
    status, headers, _ = call(f"{server}/ui/login", data=b"token=wrong")
    assert status == 303 and headers["Location"] == "/ui/?login=failed"
    assert "Set-Cookie" not in headers
    # the right one: an HttpOnly, SameSite=Strict cookie that is not the token
    status, headers, _ = call(f"{server}/ui/login", data=f"token={TOKEN}".encode())
    assert status == 303 and headers["Location"] == "/ui/"
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    value = re.match(rf"{COOKIE}=([0-9a-f]+);", cookie).group(1)
    assert value == session_value(TOKEN)
    for path in ("/ui/api/now", "/v1/throttle?sender=a&domain=b"):
        status, _, body = call(f"{server}{path}", {"Cookie": f"{COOKIE}={value}"})
        assert status == 200, (path, body)
    # the page's first question: signed in? (200 either way, no data)
    for headers, signed_in in (({}, False), ({"Cookie": f"{COOKIE}={value}"}, True)):
        status, _, body = call(f"{server}/ui/api/session", headers)
        assert status == 200 and orjson.loads(body) == {
            "signed_in": signed_in, "auth": "cookie" if signed_in else None,
            "tokens_required": True}
    status, _, _ = call(f"{server}/ui/api/now", {"Cookie": f"{COOKIE}={'0' * 64}"})
    assert status == 401
    # logout ends it; a cross-site form post cannot log anyone in
    status, headers, _ = call(f"{server}/ui/logout", data=b"")
    assert "Max-Age=0" in headers["Set-Cookie"]
    status, headers, _ = call(f"{server}/ui/login", {"Origin": "https://evil.example"},
                              data=f"token={TOKEN}".encode())
    assert status == 403 and "Set-Cookie" not in headers


def test_console_answers_bad_parameters_and_unknown_endpoints(server):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    status, _, body = call(f"{server}/ui/api/flows?window=9y", auth)
    assert status == 400 and b"window must be" in body
    status, _, _ = call(f"{server}/ui/api/nothing", auth)
    assert status == 404
    status, _, body = call(f"{server}/ui/api/history?sender={SENDER}&domain={DOMAIN}", auth)
    assert status == 200 and orjson.loads(body)["decisions"]


def test_hostile_query_strings_get_an_answer_never_a_crash(server):
    """Seeded junk in every parameter of every endpoint: 200, 400 or 404, and the server
    still answers afterwards."""
    import random
    import urllib.parse

    rng = random.Random(20)
    junk = ["", "*", "-1", "0", "1e9", "9" * 30, "NaN", "'", "\\", "%00", "\x00", "é" * 400,
            "1; DROP TABLE x", "{x:String}", "${a}", "../../", "24h", "7d", "1h", "gmail.com"]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    names = ["sender", "domain", "hours", "end", "window", "days", "x"]
    for _ in range(150):
        endpoint = rng.choice(["now", "history", "flows", "models", "replies", "tracking",
                               "history/x", "..%2fnow"])
        params = [(rng.choice(names), rng.choice(junk)) for _ in range(rng.randint(0, 4))]
        url = f"{server}/ui/api/{endpoint}?" + urllib.parse.urlencode(params)
        status, _, body = call(url, auth)
        assert status in (200, 400, 404), (url, status, body[:300])
        if status != 200:
            assert "error" in orjson.loads(body)
    assert call(f"{server}/ui/api/now", auth)[0] == 200


def test_the_page_and_its_assets_are_served_without_a_token_and_nothing_else(server):
    status, headers, body = call(f"{server}/ui")
    assert status == 303 and headers["Location"] == "/ui/"
    status, headers, body = call(f"{server}/ui/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert b"<script" in body and b"http://" not in body and b"https://" not in body  # no CDN
    for path in re.findall(rb'(?:src|href)="([^"#]+)"', body):
        asset = path.decode()
        url = f"{server}{asset}" if asset.startswith("/") else f"{server}/ui/{asset}"
        assert call(url)[0] == 200, asset
    for path in ("/ui/../mailflow/api.py", "/ui/%2e%2e/api.py", "/ui/vendor/../../api.py",
                 "/ui/console.py", "/ui/.x"):
        assert call(f"{server}{path}")[0] == 404, path


def test_the_page_ships_in_the_package():
    ui = Path(__file__).resolve().parents[1] / "mailflow" / "ui"
    assert (ui / "index.html").is_file()
    licence = next(ui.glob("vendor/LICENSE*"))
    assert "MIT" in licence.read_text() or "Permission is hereby granted" in licence.read_text()
    pyproject = (ui.parents[1] / "pyproject.toml").read_text()
    assert re.search(r'mailflow = \[[^\]]*"ui/', pyproject)


def test_the_page_filters_decisions_and_shows_lift_with_a_broken_split(chromium, server):
    """The page on this store (no job): signed in by its form, the Now filters, the lift
    table with the broken split said loudly, times in the browser's zone with UTC on hover."""
    context = chromium.new_context(viewport={"width": 1366, "height": 768},
                                   timezone_id="America/New_York")
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    try:
        page.goto(f"{server}/ui/")
        page.fill("#login-token", TOKEN)
        page.click("#login button[type=submit]")
        rows = page.locator("#decisions tr[data-key]")
        rows.first.wait_for()
        assert rows.count() == 2
        page.fill("#now-filter", "calm")
        assert rows.count() == 1 and rows.first.get_attribute("data-key").startswith("calm")
        page.fill("#now-filter", "")
        page.select_option("#now-action", "pause")
        assert rows.count() == 1
        assert rows.first.get_attribute("data-key") == f"{SENDER}|{DOMAIN}"
        until = rows.first.locator("time").first
        assert until.get_attribute("datetime").startswith(iso_ms(T0 + 55 * MIN)[:16])
        assert "UTC" in until.get_attribute("title")
        assert "AM" in until.inner_text() or "PM" in until.inner_text()  # en-US, local zone

        # History with no pair chosen opens the newest decision's pair
        page.click("#tab-history")
        page.wait_for_url("**#history?sender=calm.example&domain=gmail.com*")
        assert page.input_value("#history-sender") == "calm.example"

        page.click("#tab-flows")
        lift = page.locator("section.lift tr.alarm")
        lift.wait_for()
        assert "all marketing" in lift.inner_text() and "SPLIT BROKEN" in lift.inner_text()
        welcome = page.locator("section.lift tr", has_text="welcome")
        assert "+2.00 pp" in welcome.inner_text() and "SPLIT" not in welcome.inner_text()
    finally:
        context.close()
    assert not problems, problems
