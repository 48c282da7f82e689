"""Synthetic traffic (mailflow/generator.py): contract, realism, determinism."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import datetime

import orjson
import pytest

from mailflow.generator import (
    _SCANNER_NETS,
    GeneratedEvent,
    Incident,
    TrafficGenerator,
    write_jsonl,
)
from schemas.mailbox_providers import provider_key
from schemas.topics import EVENT_TYPES, TOPIC_BY_TYPE

START = 1_795_255_200.0  # 2026-11-21T10:00:00Z
RATE, SECONDS = 20.0, 1000.0  # ~20k events over ~17 minutes
APPLE_PROXY_UA = "Mozilla/5.0"
MESSAGELESS = {"conversion"}
INCIDENT = Incident("news.acme.example", "gmail.com")
INCIDENT_SECONDS = 2000.0


def run(seed: int = 1, rate: float = RATE, seconds: float = SECONDS,
        incident: Incident | None = None, senders: int = 4) -> list[tuple[GeneratedEvent, dict]]:
    gen = TrafficGenerator(seed=seed, start=START, incident=incident, senders=senders)
    return [(e, orjson.loads(e.value)) for e in gen.events(rate, seconds)]


@pytest.fixture(scope="module")
def stream() -> list[tuple[GeneratedEvent, dict]]:
    return run()


@pytest.fixture(scope="module")
def incident_runs() -> tuple[list, list]:
    # two senders, so that the incident pair has volume in a short run
    return (run(seed=5, rate=15, seconds=INCIDENT_SECONDS, senders=2),
            run(seed=5, rate=15, seconds=INCIDENT_SECONDS, senders=2, incident=INCIDENT))


def parse_ts(value: str | int) -> float:
    if isinstance(value, int):  # epoch milliseconds
        return value / 1000
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)", value), value
    return datetime.fromisoformat(value).timestamp()


# --- contract ----------------------------------------------------------------------


def test_same_seed_and_start_give_identical_bytes() -> None:
    a = list(TrafficGenerator(seed=3, start=START, recipients=2000).events(50, 120))
    b = list(TrafficGenerator(seed=3, start=START, recipients=2000).events(50, 120))
    c = list(TrafficGenerator(seed=4, start=START, recipients=2000).events(50, 120))
    assert a == b
    assert a != c


def test_events_in_time_order_inside_the_window(stream) -> None:
    ts = [e.ts for e, _ in stream]
    assert ts == sorted(ts)
    assert ts[0] == START
    assert ts[-1] < START + SECONDS


def test_volume_follows_the_rate(stream) -> None:
    assert len(stream) == pytest.approx(RATE * SECONDS, rel=0.15)
    short = list(TrafficGenerator(seed=2, start=START).events(500, 60))
    assert len(short) == pytest.approx(500 * 60, rel=0.15)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_all_eleven_types_on_a_60k_run(seed: int) -> None:
    # complaints are rare by design (healthy senders stay below Gmail's 0.1%)
    types = Counter(value["type"] for _, value in run(seed=seed, rate=3 * RATE))
    # every type but holdouts: control groups are the lift simulator's (mailflow/lift_sim.py)
    assert set(types) == set(EVENT_TYPES) - {"holdout"}
    assert types["sent"] > types["open"] > types["bounce"] > types["complaint"]


def test_every_value_is_canonical_v1(stream) -> None:
    formats = Counter()
    for event, value in stream:
        kind = value["type"]
        assert event.topic == TOPIC_BY_TYPE[kind]
        assert event.key == value["recipient"].encode()
        for name in ("sender", "recipient", "event_id"):
            assert isinstance(value[name], str) and value[name], (name, value)
        if kind not in MESSAGELESS:
            assert value["message_id"].startswith("<")
        assert parse_ts(value["ts"]) == pytest.approx(event.ts, abs=1e-3)
        formats["ms" if isinstance(value["ts"], int) else value["ts"][-1:]] += 1
        if kind in ("bounce", "deferred"):
            assert isinstance(value["smtp_code"], int)
            assert re.fullmatch(r"[45]\.\d{1,3}\.\d{1,3}", value["smtp_status"])
            assert str(value["smtp_code"])[0] == value["smtp_status"][0] or kind == "bounce"
            assert value["diagnostic"]
        if kind == "deferred":
            assert value["smtp_code"] // 100 == 4
        if kind in ("open", "click"):
            assert value["user_agent"] and value["ip"]
        if kind == "click":
            assert value["url"].startswith("https://")
        if kind == "conversion":
            assert value["goal"] and ("campaign_id" in value or "flow_id" in value)
            if "value" in value:
                assert value["value"] >= 0 and len(value["currency"]) == 3
        if kind == "dropped":
            assert value["reason"]
        if "variant" in value:
            assert value["variant"] in ("A", "B")
    assert len({v["event_id"] for _, v in stream}) == len(stream)
    # mostly RFC 3339 with "Z", some with an offset, some epoch milliseconds
    assert formats["Z"] > 0.6 * len(stream)
    assert formats["ms"] > 0 and sum(n for f, n in formats.items() if f not in "Zms") > 0


def test_provider_mix_is_realistic(stream) -> None:
    domains = Counter(v["recipient"].split("@")[1] for _, v in stream if v["type"] == "sent")
    total = sum(domains.values())
    assert 0.28 < domains["gmail.com"] / total < 0.42
    for domain in ("googlemail.com", "hotmail.com", "yahoo.com", "icloud.com", "gmx.de",
                   "web.de", "t-online.de", "mail.ru", "qq.com"):
        assert domains[domain] > 0, domain


def test_write_jsonl(tmp_path) -> None:
    events = list(TrafficGenerator(seed=1, start=START).events(50, 30))
    path = tmp_path / "events.jsonl"
    assert write_jsonl(iter(events), path) == len(events)
    assert path.read_bytes().splitlines() == [e.value for e in events]


# --- realism ------------------------------------------------------------------------


def test_apple_proxy_opens_come_seconds_after_every_delivery_to_apple_users(stream) -> None:
    delivered = {v["message_id"]: e.ts for e, v in stream if v["type"] == "delivered"}
    machine = [(e, v) for e, v in stream if v["type"] == "open"
               and v["user_agent"] == APPLE_PROXY_UA]
    human = [v for _, v in stream if v["type"] == "open" and v["user_agent"] != APPLE_PROXY_UA]
    assert machine and human
    for event, value in machine:
        assert value["ip"].startswith("17.")
        assert 0 < event.ts - delivered[value["message_id"]] < 60
    assert not any(v["ip"].startswith("17.") for v in human)
    # a habit, not a coin flip: per recipient, every delivery or none gets a proxy open
    proxied = {v["message_id"] for _, v in machine}
    by_recipient: dict[str, set[bool]] = defaultdict(set)
    for e, v in stream:
        if v["type"] == "delivered" and e.ts < START + SECONDS - 60:
            by_recipient[v["recipient"]].add(v["message_id"] in proxied)
    assert all(len(seen) == 1 for seen in by_recipient.values())
    share = sum(True in seen for seen in by_recipient.values()) / len(by_recipient)
    assert 0.2 < share < 0.5


def test_genuine_opens_spread_over_minutes_and_lead_to_clicks(stream) -> None:
    delivered = {v["message_id"]: e.ts for e, v in stream if v["type"] == "delivered"}
    delays = sorted(e.ts - delivered[v["message_id"]] for e, v in stream
                    if v["type"] == "open" and v["user_agent"] != APPLE_PROXY_UA
                    and v["message_id"] in delivered)
    assert delays[len(delays) // 2] > 30  # humans are not instant
    assert delays[-1] > 300


def test_scanner_clicks_hit_several_links_in_one_second(stream) -> None:
    delivered = {v["message_id"]: e.ts for e, v in stream if v["type"] == "delivered"}
    bursts: dict[tuple[str, int], list[tuple[float, str]]] = defaultdict(list)
    for e, v in stream:
        if v["type"] == "click":
            bursts[v["message_id"], int(e.ts)].append((e.ts, v["url"]))
    scanned = [(mid, clicks) for (mid, _), clicks in bursts.items()
               if len({url for _, url in clicks}) >= 3]
    assert scanned
    for mid, clicks in scanned:
        assert 1 <= clicks[0][0] - delivered[mid] <= 6


def test_suppressed_addresses_are_dropped_not_sent(stream) -> None:
    suppressed_at: dict[tuple[str, str], float] = {}
    for e, v in stream:
        pair = (v["sender"], v["recipient"])
        if v["type"] == "sent":
            assert e.ts <= suppressed_at.get(pair, float("inf")), pair
        hard = v["type"] == "bounce" and v["smtp_status"] == "5.1.1"
        if v["type"] in ("unsubscribe", "complaint") or hard:
            suppressed_at.setdefault(pair, e.ts)
    assert any(v["type"] == "dropped" for _, v in stream)


# --- incident -----------------------------------------------------------------------


def pair_rates(stream: list, after: bool) -> tuple[float, float, set[str]]:
    """(blocks and rate limits per sent, complaints per delivered, recipient domains) for the
    incident pair before or after a third of the window."""
    counts: Counter[str] = Counter()
    domains: set[str] = set()
    cut = START + INCIDENT_SECONDS / 3
    for e, v in stream:
        domain = v["recipient"].split("@")[1]
        if (v["sender"], provider_key(domain)) != (INCIDENT.sender, INCIDENT.provider):
            continue
        if (e.ts >= cut) != after:
            continue
        counts[v["type"]] += 1
        if v["type"] in ("bounce", "deferred") and v["smtp_status"] in ("5.7.1", "4.7.28"):
            counts["blocked"] += 1
            domains.add(domain)
    return counts["blocked"] / counts["sent"], counts["complaint"] / counts["delivered"], domains


def test_incident_blocks_and_complaints_for_the_pair(incident_runs) -> None:
    baseline, incident = incident_runs
    base_blocks, base_complaints, _ = pair_rates(baseline, after=True)
    blocks, complaints, domains = pair_rates(incident, after=True)
    assert base_blocks < 0.02 and blocks > 0.3
    assert base_complaints < 0.004 and 0.007 < complaints < 0.03
    assert domains == {"gmail.com", "googlemail.com"}  # alias domains are hit too
    before_blocks, _, _ = pair_rates(incident, after=False)
    assert before_blocks < 0.02  # the first third is normal


def test_incident_leaves_other_traffic_alone(incident_runs) -> None:
    def blocked_share(stream: list) -> float:
        other = [v for _, v in stream if v["sender"] != INCIDENT.sender
                 or provider_key(v["recipient"].split("@")[1]) != INCIDENT.provider]
        blocked = sum(v["type"] == "bounce" and v["smtp_status"] == "5.7.1" for v in other)
        return blocked / sum(v["type"] == "sent" for v in other)

    baseline, incident = incident_runs
    assert blocked_share(incident) == pytest.approx(blocked_share(baseline), abs=0.003)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("news.acme.example:gmail.com", Incident("news.acme.example", "gmail.com")),
        ("  News.Acme.Example : GoogleMail.com ", Incident("news.acme.example", "googlemail.com")),
    ],
)
def test_incident_parse(text: str, expected: Incident) -> None:
    assert Incident.parse(text) == expected


@pytest.mark.parametrize(
    "text", ["", "gmail.com", "news.acme.example:", ":gmail.com", "a.example:b.com:c.com",
             "acme:gmail.com", "news.acme.example:user@gmail.com"],
)
def test_incident_parse_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="incident"):
        Incident.parse(text)


def test_incident_must_name_a_generated_sender_and_a_known_provider() -> None:
    with pytest.raises(ValueError, match="not one of the generated senders"):
        TrafficGenerator(recipients=100, incident=Incident("mail.other.example", "gmail.com"))
    with pytest.raises(ValueError, match="not a mailbox provider"):
        TrafficGenerator(recipients=100, incident=Incident("news.acme.example", "example.org"))
    # an alias names the whole provider
    TrafficGenerator(recipients=100, incident=Incident("news.acme.example", "googlemail.com"))


def test_bad_window_arguments() -> None:
    gen = TrafficGenerator(start=START, recipients=100)
    with pytest.raises(ValueError):
        gen.events(0, 10)
    with pytest.raises(ValueError):
        gen.events(10, float("inf"))
    assert list(gen.events(10, 0)) == []


def test_the_truth_side_channel_changes_no_event_and_matches_what_happens() -> None:
    """`record_truth` draws nothing (same bytes); its probabilities add up to the
    genuine engagements (human clicks, replies) that follow deliveries within the window."""
    plain = list(TrafficGenerator(seed=11, start=1_795_255_200.0).events(15, 2 * 3600))
    gen = TrafficGenerator(seed=11, start=1_795_255_200.0)
    gen.record_truth(1800)
    assert list(gen.events(15, 2 * 3600)) == plain
    assert gen.truth is not None and len(gen.truth) > 2000
    delivered: dict[str, int] = {}
    engaged: set[str] = set()
    for e in plain:
        d = orjson.loads(e.value)
        ts = int(round(parse_ts(d["ts"]) * 1000))
        if d["type"] == "delivered":
            delivered[d["message_id"]] = ts
        elif (d["type"] in ("click", "reply") and d.get("message_id") in delivered
              and "auto_submitted" not in d
              and not d.get("ip", "").startswith(_SCANNER_NETS)  # bots, however they look
              and ts < (delivered[d["message_id"]] // 60_000 + 1) * 60_000 + 1_800_000):
            engaged.add(d["message_id"])
    ids = [m for m in delivered if m in gen.truth]
    expected = sum(gen.truth[m] for m in ids)
    assert abs(len(engaged & set(ids)) - expected) < 0.1 * expected  # 1477 vs 1496
    assert all(0.0 <= gen.truth[m] <= 1.0 for m in ids)
