"""operators/engagement.py: machine opens, bot clicks and response latency, hand-checked."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from mailflow.generator import TrafficGenerator
from operators.engagement import (
    AGENT_PROXY,
    AGENT_SCANNER,
    Interaction,
    MessageTracker,
    agent_kind,
    is_human_interaction,
)
from schemas.events import Event, EventParser
from schemas.hashing import RecipientHasher

T0 = 1_795_000_000_000  # epoch ms of the first delivery in these tests
DAY_S = 86_400

APPLE_PROXY = "Mozilla/5.0"
IPHONE_MAIL = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
               "(KHTML, like Gecko) Mobile/15E148")
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/126.0.0.0 Safari/537.36")
GMAIL_PROXY = ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
               "(via ggpht.com GoogleImageProxy)")
YAHOO_PROXY = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
DISGUISED_SCANNER = "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.1; Trident/7.0)"
HOME_IP = "84.12.3.4"

HUMAN = Interaction(True, "", 0.0)


def ev(kind: str, at_s: float, message_id: str = "m-1", ua: str = "", ip: str = "",
       attrs: dict[str, Any] | None = None) -> Event:
    """An event `at_s` seconds after T0; only the fields the tracker reads are set."""
    return Event(f"{kind}-{at_s}", T0 + int(round(at_s * 1000)), kind, "news.acme.example",
                 "hash", "gmail.com", "gmail.com", message_id, "", "", "", ua, ip, "", 0, "",
                 "", "", "", 0.0, "", attrs or {}, "", 0, 0)


def machine(reason: str) -> Interaction:
    return Interaction(False, reason, 0.0)


def human(latency_s: float = 0.0) -> Interaction:
    return Interaction(True, "", latency_s)


def run(events: list[Event], tracker: MessageTracker | None = None) -> list[Interaction]:
    tracker = MessageTracker() if tracker is None else tracker
    return [tracker.apply(e) for e in events]


# --- opens ------------------------------------------------------------------------------


def test_apple_mpp_open_is_machine_then_reader_open_carries_latency() -> None:
    assert run([
        ev("delivered", 0),
        ev("open", 3, ua=APPLE_PROXY, ip="17.58.101.7"),
        ev("open", 40 * 60, ua=IPHONE_MAIL, ip=HOME_IP),
    ]) == [HUMAN, machine("apple_proxy"), human(2400.0)]


@pytest.mark.parametrize(("ua", "ip"), [
    (APPLE_PROXY, "203.0.113.9"),     # the bare agent alone gives it away
    (IPHONE_MAIL, "17.120.4.5"),      # so does Apple's network
    ("", "::ffff:17.58.1.2"),         # also written as IPv4-mapped IPv6
])
def test_apple_proxy_by_agent_or_network_even_hours_later(ua: str, ip: str) -> None:
    assert run([ev("delivered", 0), ev("open", 3 * 3600, ua=ua, ip=ip)])[1] == \
        machine("apple_proxy")


def test_image_proxy_fetch_on_arrival_is_prefetch_and_later_a_person() -> None:
    assert run([
        ev("delivered", 0),
        ev("open", 10, ua=GMAIL_PROXY, ip="66.249.84.10"),
        ev("open", 2 * 3600, ua=GMAIL_PROXY, ip="66.249.88.20"),
    ]) == [HUMAN, machine("prefetch"), human(7200.0)]


def test_prefetch_window_edge_and_yahoo_proxy() -> None:
    # 59.999 s is still inside the 60 s window, 60.000 s is not
    assert run([ev("delivered", 0), ev("open", 59.999, ua=YAHOO_PROXY)])[1] == machine("prefetch")
    assert run([ev("delivered", 0), ev("open", 60, ua=YAHOO_PROXY)])[1] == human(60.0)
    tracker = MessageTracker(prefetch_window_s=600)
    assert run([ev("delivered", 0), ev("open", 300, ua=YAHOO_PROXY)], tracker)[1] == \
        machine("prefetch")


def test_open_one_second_after_delivery_is_too_fast() -> None:
    assert run([
        ev("delivered", 0),
        ev("open", 1, ua=CHROME, ip=HOME_IP),
        ev("open", 2, ua=CHROME, ip=HOME_IP),  # min_human_open_s=2.0: 2 s is human
    ]) == [HUMAN, machine("too_fast"), human(2.0)]


def test_scanner_fetching_images_is_not_a_reader() -> None:
    ua = "Mozilla/5.0 (compatible; Barracuda Sentinel; +https://www.barracuda.com)"
    assert run([ev("delivered", 0), ev("open", 600, ua=ua)])[1] == machine("scanner_agent")


# --- clicks -----------------------------------------------------------------------------


@pytest.mark.parametrize("ua", [
    "Mozilla/5.0 (compatible; Barracuda Sentinel; +https://www.barracuda.com)",
    "Mozilla/5.0 (compatible; Mimecast URL Protect)",
    "Proofpoint URL Defense/1.0",
    "Symantec MessageLabs Web Security",
    "Trend Micro Email Security",
    "Microsoft Safe Links",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; SiteCrawler/1.0)",
    "python-requests/2.32.3",
    "curl/8.5.0",
    "Go-http-client/1.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/126.0.6478.126 Safari/537.36",
])
def test_scanner_click_is_bot_even_much_later(ua: str) -> None:
    assert run([
        ev("delivered", 0),
        ev("click", 2, ua=ua, ip="40.94.1.2"),
        ev("click", 3 * 3600, ua=ua, ip="40.94.1.2"),
    ])[1:] == [machine("scanner_agent"), machine("scanner_agent")]


def test_click_without_agent_is_bot() -> None:
    assert run([ev("delivered", 0), ev("click", 600, ip=HOME_IP)])[1] == machine("no_agent")


def test_click_within_five_seconds_of_delivery_is_too_fast() -> None:
    assert run([
        ev("delivered", 0),
        ev("click", 4.5, ua=CHROME, ip=HOME_IP),
        ev("click", 5.5, ua=CHROME, ip=HOME_IP),  # next second; 5.5 s >= 5 s: a person
    ]) == [HUMAN, machine("too_fast"), human(5.5)]


def test_human_click_ten_minutes_after_delivery() -> None:
    assert run([ev("delivered", 0), ev("click", 600, ua=CHROME, ip=HOME_IP)])[1] == human(600.0)


def test_three_clicks_in_one_second_first_by_other_rules_then_burst() -> None:
    # a scanner dressed as a browser, 2 s after delivery: the first click is merely too fast
    assert run([
        ev("delivered", 0),
        ev("click", 2.100, ua=DISGUISED_SCANNER),
        ev("click", 2.140, ua=DISGUISED_SCANNER),
        ev("click", 2.999, ua=DISGUISED_SCANNER),
    ])[1:] == [machine("too_fast"), machine("burst"), machine("burst")]
    # the same burst ten seconds in: the first click passes for a person (it cannot be
    # taken back), the second and third are a burst
    assert run([
        ev("delivered", 0),
        ev("click", 10.000, ua=CHROME),
        ev("click", 10.500, ua=CHROME),
        ev("click", 10.999, ua=CHROME),
        ev("click", 11.000, ua=CHROME),  # next second, but the message is scanned now
    ])[1:] == [human(10.0), machine("burst"), machine("burst"), machine("burst")]


def test_scanned_message_window_runs_sixty_seconds_from_the_burst() -> None:
    assert run([
        ev("delivered", 0),
        ev("click", 3.1, ua=DISGUISED_SCANNER),
        ev("click", 3.2, ua=DISGUISED_SCANNER),    # burst in second 3
        ev("click", 30, ua=CHROME, ip=HOME_IP),    # 27 s later: still the scan
        ev("click", 63.5, ua=CHROME, ip=HOME_IP),  # 60 s after the burst second: still
        ev("click", 64, ua=CHROME, ip=HOME_IP),    # 61 s: a person, judged afresh
        ev("click", 90, ua=CHROME, ip=HOME_IP),    # a second click of theirs, 26 s later
    ])[1:] == [machine("too_fast"), machine("burst"), machine("burst"), machine("burst"),
               human(64.0), HUMAN]


def test_every_click_counts_toward_a_burst_whatever_its_verdict() -> None:
    # an honest scanner agent on the first link, a browser disguise on the second
    assert run([
        ev("delivered", 0),
        ev("click", 8.2, ua="python-requests/2.32.3"),
        ev("click", 8.6, ua=CHROME),
    ])[1:] == [machine("scanner_agent"), machine("burst")]


def test_clicks_on_different_messages_in_one_second_are_no_burst() -> None:
    assert run([
        ev("delivered", 0, "a"), ev("delivered", 0, "b"),
        ev("click", 600.1, "a", ua=CHROME), ev("click", 600.2, "b", ua=CHROME),
    ])[2:] == [human(600.1), human(600.2)]


def test_late_out_of_order_click_neither_bursts_nor_moves_the_clock_back() -> None:
    assert run([
        ev("delivered", 0),
        ev("click", 700.5, ua=CHROME),
        ev("click", 650.0, ua=CHROME),  # arrives late; another second
        ev("click", 700.9, ua=CHROME),  # same second as the first click: a burst
    ])[1:] == [human(700.5), HUMAN, machine("burst")]


# --- latency ----------------------------------------------------------------------------


def test_latency_only_on_the_first_human_interaction() -> None:
    assert run([
        ev("delivered", 0),
        ev("open", 3, ua=APPLE_PROXY, ip="17.58.1.1"),  # machines do not use it up
        ev("click", 2, ua="Proofpoint URL Defense/1.0"),
        ev("open", 300, ua=IPHONE_MAIL, ip=HOME_IP),
        ev("click", 420, ua=IPHONE_MAIL, ip=HOME_IP),
        ev("open", 3600, ua=IPHONE_MAIL, ip=HOME_IP),
        ev("reply", 4000),
    ]) == [HUMAN, machine("apple_proxy"), machine("scanner_agent"), human(300.0), HUMAN,
           HUMAN, HUMAN]


def test_reply_as_first_human_interaction_has_latency() -> None:
    assert run([ev("delivered", 0), ev("reply", 1800), ev("open", 1900, ua=CHROME)]) == \
        [HUMAN, human(1800.0), HUMAN]


def test_conversion_with_message_id_as_first_human_interaction_has_latency() -> None:
    assert run([
        ev("delivered", 0),
        ev("conversion", 5400),
        ev("click", 5500, ua=CHROME),
    ]) == [HUMAN, human(5400.0), HUMAN]
    # a conversion without a message id is about the recipient, not this message
    assert run([ev("delivered", 0), ev("conversion", 5400, message_id=""),
                ev("click", 5500, ua=CHROME)])[1:] == [HUMAN, human(5500.0)]


def test_autoresponder_reply_is_no_response() -> None:
    auto = {"auto_submitted": "auto-replied"}
    assert run([
        ev("delivered", 0),
        ev("reply", 4, attrs=auto),
        ev("reply", 7200, attrs={"auto_submitted": "no"}),  # RFC 3834: a person wrote it
    ]) == [HUMAN, Interaction(False, "auto_reply", 0.0), human(7200.0)]


def test_repeated_delivery_webhook_does_not_reset_the_message() -> None:
    assert run([
        ev("delivered", 0),
        ev("open", 600, ua=CHROME),
        ev("delivered", 900),
        ev("open", 1200, ua=CHROME),
        ev("click", 1201, ua=CHROME),
    ]) == [HUMAN, human(600.0), HUMAN, HUMAN, HUMAN]


def test_other_event_types_are_human_without_latency() -> None:
    kinds = ["sent", "deferred", "bounce", "dropped", "unsubscribe", "complaint"]
    assert run([ev("delivered", 0)] + [ev(k, 60 + i) for i, k in enumerate(kinds)])[1:] == \
        [HUMAN] * len(kinds)


# --- unknown messages ---------------------------------------------------------------------


def test_unknown_message_is_judged_by_agent_and_ip_only() -> None:
    tracker = MessageTracker()
    assert run([
        ev("open", 1, "x", ua=CHROME, ip=HOME_IP),           # no delivery: no timing rule
        ev("open", 1, "x", ua=APPLE_PROXY, ip="17.58.1.1"),
        ev("open", 1, "x", ua=GMAIL_PROXY),                   # no delivery to time against
        ev("click", 1, "x", ua=CHROME),
        ev("click", 1, "x", ua=CHROME),                       # no burst memory either
        ev("click", 1, "x", ua="Mimecast URL Protect"),
        ev("click", 1, "x"),
        ev("reply", 2, "x"),
        ev("conversion", 3, "x"),
    ], tracker) == [HUMAN, machine("apple_proxy"), HUMAN, HUMAN, HUMAN,
                    machine("scanner_agent"), machine("no_agent"), HUMAN, HUMAN]
    assert len(tracker) == 0  # nothing remembered for messages never delivered


# --- expiry, state, determinism -----------------------------------------------------------


def test_expire_drops_old_messages_and_keeps_recent_ones() -> None:
    tracker = MessageTracker(ttl_s=DAY_S)
    run([ev("delivered", 0, "old"), ev("delivered", 3600, "middle"),
         ev("delivered", 7200, "new")], tracker)
    assert len(tracker) == 3
    assert tracker.expire(T0 + DAY_S * 1000) == 0       # "old" is exactly one ttl old
    assert tracker.expire(T0 + (DAY_S + 1) * 1000) == 1
    assert len(tracker) == 2
    assert tracker.expire(T0 + (DAY_S + 1) * 1000) == 0  # idempotent
    # a forgotten message is unknown again: agent rules, no latency
    assert run([ev("open", DAY_S + 5, "old", ua=CHROME),
                ev("open", DAY_S + 5, "middle", ua=CHROME)], tracker) == \
        [HUMAN, human(DAY_S + 5 - 3600.0)]
    assert tracker.expire(T0 + 30 * DAY_S * 1000) == 2
    assert len(tracker) == 0 and tracker.expire(T0 + 31 * DAY_S * 1000) == 0


def test_expire_handles_out_of_order_and_far_future_deliveries() -> None:
    tracker = MessageTracker(ttl_s=3600)
    run([ev("delivered", 100 * DAY_S, "clock-skewed"),  # a wild timestamp comes first
         ev("delivered", 0, "a"), ev("delivered", 10, "b"), ev("delivered", 5, "c"),
         ev("delivered", 2 * 3600, "d")], tracker)
    assert tracker.expire(T0 + 3600 * 1000 + 8_000) == 1  # a; c waits behind b, in order
    assert tracker.expire(T0 + 3600 * 1000 + 11_000) == 2
    assert tracker.expire(T0 + 4 * 3600 * 1000) == 1       # d
    assert len(tracker) == 1                                # the skewed one is not due


def test_approx_bytes_measures_held_state() -> None:
    tracker = MessageTracker()
    empty = tracker.approx_bytes()
    run([ev("delivered", i, f"<{i:011x}.{i:x}.00000001@news.acme.example>")
         for i in range(10_000)], tracker)
    per_message = (tracker.approx_bytes() - empty) / len(tracker)
    assert 100 < per_message < 250


def test_same_events_give_same_results() -> None:
    events = scripted_events()
    assert run(events) == run(events)


def test_snapshot_restore_round_trip() -> None:
    events = scripted_events()
    half = len(events) // 2
    original = MessageTracker(ttl_s=DAY_S, prefetch_window_s=30)
    run(events[:half], original)
    state = pickle.loads(pickle.dumps(original.snapshot()))
    restored = MessageTracker.restore(state)
    assert len(restored) == len(original)
    assert restored.snapshot() == original.snapshot()
    assert run(events[half:], restored) == run(events[half:], original)
    assert restored.snapshot() == original.snapshot()
    # the snapshot is a copy: the tracker goes on without changing it
    before = pickle.dumps(state)
    run([ev("delivered", 9 * DAY_S, "later")], restored)
    assert pickle.dumps(state) == before
    # the tracker object itself pickles too (what Bytewax's stateful steps store)
    clone = pickle.loads(pickle.dumps(original))
    assert clone.snapshot() == original.snapshot()
    with pytest.raises(ValueError, match="version"):
        MessageTracker.restore({**state, "version": 99})


def scripted_events() -> list[Event]:
    out = []
    for i in range(50):
        mid, t = f"m-{i}", i * 7.0
        out += [ev("delivered", t, mid),
                ev("open", t + 3, mid, ua=APPLE_PROXY, ip="17.58.1.1"),
                ev("click", t + 2, mid, ua="python-requests/2.32.3"),
                ev("open", t + 20 + i, mid, ua=GMAIL_PROXY),
                ev("click", t + 600 + i, mid, ua=CHROME),
                ev("click", t + 600.5 + i, mid, ua=CHROME)]
    out.sort(key=lambda e: e.ts_ms)
    return out


# --- agents ---------------------------------------------------------------------------------


def test_agent_kinds() -> None:
    assert agent_kind(GMAIL_PROXY) == agent_kind(YAHOO_PROXY) == AGENT_PROXY
    assert agent_kind("HeadlessChrome/126.0") == AGENT_SCANNER
    assert agent_kind(CHROME) == agent_kind(IPHONE_MAIL) == 0
    # a phone brand, not a bot
    assert agent_kind("Mozilla/5.0 (Linux; Android 10; CUBOT X30) Mobile Safari/537.36") == 0


def test_stateless_rules_still_answer() -> None:
    assert not is_human_interaction("open", APPLE_PROXY, "17.58.1.2")
    assert not is_human_interaction("open", GMAIL_PROXY, "66.249.84.1")
    assert is_human_interaction("open", IPHONE_MAIL, HOME_IP)
    assert not is_human_interaction("click", "", HOME_IP)
    assert not is_human_interaction("click", "curl/8.5.0", HOME_IP)
    assert is_human_interaction("click", CHROME, HOME_IP)
    assert is_human_interaction("complaint", "", "")


# --- a generated stream -----------------------------------------------------------------


@pytest.fixture(scope="module")
def generated() -> list[Event]:
    gen = TrafficGenerator(seed=1, start=1_795_000_000.0)
    parser = EventParser(RecipientHasher(b"test-key"), now=lambda: 1_800_000_000.0)
    events = [parser.parse(g.value, g.topic, 0, i)
              for i, g in enumerate(gen.events(200, 1800))]
    assert all(type(e) is Event for e in events)
    return events


def test_generated_stream_machine_and_human_opens(generated: list[Event]) -> None:
    tracker = MessageTracker()
    verdicts = [tracker.apply(e) for e in generated]
    delivered = {e.message_id: e.ts_ms for e in generated if e.type == "delivered"}

    apple = [v for e, v in zip(generated, verdicts, strict=True)
             if e.type == "open" and e.ip.startswith("17.")]
    assert len(apple) > 1000
    assert sum(not v.is_human for v in apple) >= 0.95 * len(apple)

    late = [v for e, v in zip(generated, verdicts, strict=True)
            if e.type == "open" and not e.ip.startswith("17.") and e.user_agent != APPLE_PROXY
            and agent_kind(e.user_agent) != AGENT_PROXY and e.message_id in delivered
            and e.ts_ms - delivered[e.message_id] > 600_000]
    assert len(late) > 1000
    assert sum(v.is_human for v in late) >= 0.90 * len(late)

    # latencies: one per message at most, all positive, all from people
    firsts = [(e, v) for e, v in zip(generated, verdicts, strict=True) if v.latency_s > 0]
    assert firsts and all(v.is_human for _, v in firsts)
    assert len({e.message_id for e, _ in firsts}) == len(firsts)
    # and the run is reproducible
    again = MessageTracker()
    assert [again.apply(e) for e in generated] == verdicts


def test_expiry_visits_only_due_buckets_and_survives_erasure() -> None:
    tracker = MessageTracker(ttl_s=3600)
    for i in range(600):  # one delivery every 30 s for 5 hours
        tracker.apply(ev("delivered", i * 30, message_id=f"m{i}|{'ab'[i % 2]}"))
    tracker.forget("|a")  # every other message; some buckets keep only the other half
    assert len(tracker) == 300
    cutoff_s = 2 * 3600
    dropped = tracker.expire(T0 + (cutoff_s + 3600) * 1000)
    assert dropped == sum(1 for i in range(1, 600, 2) if i * 30 < cutoff_s)
    assert len(tracker) == sum(1 for i in range(1, 600, 2) if i * 30 >= cutoff_s)
    assert min(tracker._bucket_heap) >= (T0 + cutoff_s * 1000) // 600_000
    for i in range(600):
        tracker.forget(f"|{'ab'[i % 2]}")
    assert tracker.expire(T0 + 10 * 86_400_000) == 0 and not tracker._bucket_heap
