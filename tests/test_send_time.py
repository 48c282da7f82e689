"""operators/send_time.py: hour of week, shrinkage toward the provider prior, decay, publication."""

from __future__ import annotations

import pickle
import random
from datetime import UTC, datetime

import orjson
import pytest

from mailflow.generator import TrafficGenerator
from operators.engagement import AGENT_APPLE, AGENT_PROXY, agent_kind
from operators.send_time import (
    DEFAULT_HOUR,
    HOURS_PER_WEEK,
    SendTime,
    SendTimeBook,
    hour_of_week,
)
from schemas.events import parse_ts
from schemas.mailbox_providers import provider_key

HOUR = 3_600_000
DAY = 24 * HOUR
MON_00 = 1_795_392_000_000            # 2026-11-23T00:00:00Z, a Monday
TUE_10 = MON_00 + 34 * HOUR           # 2026-11-24T10:00:00Z
WED_19 = MON_00 + (2 * 24 + 19) * HOUR  # 2026-11-25T19:00:00Z
K = 8.0                               # the default prior strength


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


# --- hour of week ------------------------------------------------------------------------
@pytest.mark.parametrize(("when", "expected"), [
    ("2026-11-23T00:00:00", 0),                 # Monday 00:00
    ("2026-11-21T10:00:00", 5 * 24 + 10),       # Saturday 10:00
    ("2026-11-21T10:59:59.999", 5 * 24 + 10),
    ("2026-11-22T23:59:59.999", 167),           # Sunday, the last hour of the week
    ("2026-11-24T10:30:00", 34),                # Tuesday 10:30
    ("2026-11-25T19:00:00", 67),                # Wednesday 19:00
    ("1970-01-01T00:00:00", 72),                # epoch 0 was a Thursday
    ("1969-12-31T23:00:00", 71),                # before the epoch: Wednesday 23:00
])
def test_hour_of_week_of_known_dates(when: str, expected: int) -> None:
    assert hour_of_week(ms(when)) == expected


def test_hour_of_week_agrees_with_the_calendar() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        ts = rng.randrange(-10**12, 4 * 10**12)
        dt = datetime.fromtimestamp(ts / 1000, UTC)
        assert hour_of_week(ts) == dt.weekday() * 24 + dt.hour


# --- priors: strangers -------------------------------------------------------------------
def test_no_data_at_all_recommends_tuesday_10_utc() -> None:
    book = SendTimeBook()
    st = book.recommend("r", "gmail.com", WED_19)
    assert st == SendTime("r", DEFAULT_HOUR, 0.0, WED_19, 0)
    assert DEFAULT_HOUR == 34 and book.best_global_hour() == 34
    assert len(book) == 0


def test_new_recipient_gets_the_provider_prior_with_confidence_zero() -> None:
    book = SendTimeBook()
    for i in range(30):  # gmail readers: Wednesday 19:00; outlook readers: Monday 08:00
        book.engage(f"g{i}", "gmail.com", WED_19 + i * 1000)
    for i in range(60):
        book.engage(f"o{i}", "outlook.com", MON_00 + 8 * HOUR + i * 1000)
    assert book.recommend("new", "gmail.com", WED_19 + DAY) == SendTime(
        "new", 67, 0.0, WED_19 + DAY, 0)
    assert book.recommend("new", "outlook.com", WED_19).best_hour_of_week == 8
    # A provider never seen gets the global prior's best hour (outlook has more data).
    assert book.best_global_hour() == 8
    assert book.recommend("new", "web.de", WED_19).best_hour_of_week == 8
    assert book.recommend("new", "web.de", WED_19).confidence == 0.0


# --- shrinkage ---------------------------------------------------------------------------
def test_heavy_recipient_overrides_the_provider_prior() -> None:
    book = SendTimeBook()
    for i in range(200):
        book.engage(f"other{i}", "gmail.com", TUE_10 + i * 1000)
    assert book.recommend("new", "gmail.com", TUE_10).best_hour_of_week == 34
    for i in range(50):
        book.engage("heavy", "gmail.com", WED_19 + i * 1000)
    st = book.recommend("heavy", "gmail.com", WED_19 + 50_000)
    assert st.best_hour_of_week == 2 * 24 + 19
    # 50 engagements within a minute (decay negligible): 50 / (50 + 8) = 0.862
    assert st.confidence == pytest.approx(50 / 58, abs=1e-6) and st.confidence > 0.85
    assert st.n == 50
    # The provider prior itself still peaks on Tuesday 10:00.
    assert book.recommend("new", "gmail.com", WED_19).best_hour_of_week == 34


def test_one_engagement_against_an_empty_world_moves_the_recommendation() -> None:
    # smoothing_hours=0, prior strength k=8, provider strength m=168. After one engagement
    # at hour 67 (Wednesday 19:00):
    #   global prior pg = (1 at 67 + 1 pseudo at 34) / 2       -> pg[67] = pg[34] = 1/2
    #   provider prior p = (1 at 67 + 168 * pg) / (1 + 168)    -> p[67] = 85/169, p[34] = 84/169
    #   recipient scores c + k * p: 67 -> 1 + 8 * 85/169 = 5.02; 34 -> 8 * 84/169 = 3.98
    book = SendTimeBook(smoothing_hours=0)
    published = book.engage("r", "gmail.com", WED_19)
    assert published == SendTime("r", 67, 1 / 9, WED_19, 1)
    # A stranger at the same provider: the prior peaks at 67 too (85/169 > 84/169).
    assert book.recommend("new", "gmail.com", WED_19).best_hour_of_week == 67


def _light_recipient_best(n: int) -> int:
    book = SendTimeBook(smoothing_hours=0, half_life_days=float("inf"))  # no decay
    for i in range(40):
        book.engage(f"other{i}", "gmail.com", TUE_10)
    for _ in range(n):
        book.engage("light", "gmail.com", WED_19)
    st = book.recommend("light", "gmail.com", WED_19)
    assert st.confidence == pytest.approx(n / (n + K))
    return st.best_hour_of_week


def test_light_recipient_stays_with_the_prior_until_the_evidence_outweighs_it() -> None:
    # 40 provider readers at hour 34, then the light recipient's n engagements at hour 67,
    # smoothing_hours=0, no decay. By hand (k = 8, m = 168):
    #   pg[34] = 41 / (41 + n)                       (40 readers + the pseudo-engagement)
    #   p[34]  = (40 + 168 * pg[34]) / (40 + n + 168)
    #   p[67]  = (n + 168 * n / (41 + n)) / (40 + n + 168)
    #   n = 1: 8 p[34] = 7.81  vs  1 + 8 p[67] = 1.19   -> 34 (the prior's hour)
    #   n = 5: 8 p[34] = 7.13  vs  5 + 8 p[67] = 5.87   -> 34
    #   n = 6: 8 p[34] = 6.97  vs  6 + 8 p[67] = 7.03   -> 67 (their own hour)
    # (The priors are rebuilt on every one of these engagements: fewer than 64 in all.)
    assert [_light_recipient_best(n) for n in range(1, 7)] == [34, 34, 34, 34, 34, 67]


def test_confidence_rises_with_every_engagement() -> None:
    book = SendTimeBook()
    seen = []
    for i in range(1, 40):
        book.engage("r", "gmail.com", WED_19)
        st = book.recommend("r", "gmail.com", WED_19)
        assert st.n == i
        assert st.confidence == pytest.approx(i / (i + K))  # same instant: no decay
        seen.append(st.confidence)
    assert all(a < b for a, b in zip(seen, seen[1:], strict=False))
    assert 0.0 < seen[0] and seen[-1] < 1.0


# --- decay -------------------------------------------------------------------------------
def test_old_engagements_matter_less_than_recent_ones() -> None:
    mon_08 = MON_00 + 8 * HOUR - 182 * DAY      # a Monday 08:00, 26 weeks earlier
    for half_life, expected in ((60.0, 67), (float("inf"), 8)):
        book = SendTimeBook(smoothing_hours=0, half_life_days=half_life)
        for i in range(6):
            book.engage("r", "gmail.com", mon_08 + i * 1000)
        for i in range(2):
            book.engage("r", "gmail.com", WED_19 + i * 1000)
        # With a 60-day half-life the 6 old engagements (~3 half-lives) weigh ~0.73: less
        # than 2 recent ones. Without decay, 6 beats 2.
        assert book.recommend("r", "gmail.com", WED_19 + 2000).best_hour_of_week == expected


def test_confidence_fades_while_a_recipient_is_silent() -> None:
    book = SendTimeBook()
    for _ in range(8):
        book.engage("r", "gmail.com", WED_19)
    assert book.recommend("r", "gmail.com", WED_19).confidence == pytest.approx(8 / 16)
    later = book.recommend("r", "gmail.com", WED_19 + 60 * DAY)  # one half-life: 8 -> 4
    assert later.confidence == pytest.approx(4 / 12)
    assert later.n == 8 and later.as_of_ms == WED_19 + 60 * DAY
    # A question about the past is answered as of the latest engagement.
    assert book.recommend("r", "gmail.com", WED_19 - DAY).as_of_ms == WED_19


def test_a_late_engagement_counts_decayed_to_the_latest_one() -> None:
    book = SendTimeBook(smoothing_hours=0)
    book.engage("r", "gmail.com", WED_19)
    book.engage("r", "gmail.com", WED_19 - 60 * DAY)  # arrives late: weighs 1/2
    st = book.recommend("r", "gmail.com", WED_19)
    assert st.n == 2 and st.as_of_ms == WED_19
    assert st.confidence == pytest.approx(1.5 / 9.5)


def test_hours_decayed_to_nothing_are_forgotten() -> None:
    book = SendTimeBook(smoothing_hours=0)
    book.engage("r", "gmail.com", MON_00 + 8 * HOUR - 700 * DAY)  # ~11.7 half-lives ago
    book.engage("r", "gmail.com", WED_19)
    st = book.recommend("r", "gmail.com", WED_19)
    # The old count (2^-11.7 = 0.0003) is dropped, not kept: confidence is exactly 1 / 9.
    assert st.confidence == 1 / 9 and st.n == 2 and st.best_hour_of_week == 67


# --- publication -------------------------------------------------------------------------
def test_publication_is_throttled_and_needs_a_change() -> None:
    book = SendTimeBook(smoothing_hours=0)  # publish_min_interval_s = 3600
    t = MON_00 + 8 * HOUR
    first = book.engage("r", "gmail.com", t)
    assert first is not None and first.best_hour_of_week == 8 and first.n == 1
    assert first.confidence == pytest.approx(1 / 9)
    # n=2: 0.2, moved 0.089 < 0.1 -> nothing new to say
    assert book.engage("r", "gmail.com", t + 10 * 60_000) is None
    # n=3: 0.27, moved 0.16, but only 20 minutes since the last publication -> held back
    assert book.engage("r", "gmail.com", t + 20 * 60_000) is None
    # n=4 an hour later: 0.33 (moved 0.22) and the interval has passed -> published
    st = book.engage("r", "gmail.com", t + 61 * 60_000)
    assert st is not None and st.best_hour_of_week == 8 and st.n == 4
    assert st.confidence == pytest.approx(4 / 12, abs=1e-4)
    assert st.as_of_ms == t + 61 * 60_000


def test_a_new_best_hour_is_published_once_the_interval_has_passed() -> None:
    book = SendTimeBook(smoothing_hours=0, publish_min_interval_s=6 * 3600)
    mon_08 = MON_00 + 8 * HOUR
    assert book.engage("r", "gmail.com", mon_08).best_hour_of_week == 8
    book.engage("r", "gmail.com", mon_08 + 1000)
    # Three engagements at Monday 10:00 change the best hour, inside the 6-hour interval.
    for i in range(3):
        assert book.engage("r", "gmail.com", mon_08 + 2 * HOUR + i * 1000) is None
    assert book.recommend("r", "gmail.com", mon_08 + 3 * HOUR).best_hour_of_week == 10
    st = book.engage("r", "gmail.com", mon_08 + 6 * HOUR + 2 * HOUR)  # Monday 16:00
    assert st is not None and st.best_hour_of_week == 10 and st.n == 6
    # With no interval, every change goes out at once.
    eager = SendTimeBook(smoothing_hours=0, publish_min_interval_s=0)
    eager.engage("r", "gmail.com", mon_08)
    assert eager.engage("r", "gmail.com", mon_08 + 1000) is None  # 0.111 -> 0.2: no change
    assert eager.engage("r", "gmail.com", mon_08 + 2000).confidence == pytest.approx(3 / 11)


# --- evaluation --------------------------------------------------------------------------
def _personal_stream(seed: int = 5, recipients: int = 200, weeks: int = 8):
    """Everybody engages near their own hour; most of the crowd shares a popular hour."""
    rng = random.Random(seed)
    events = []
    for r in range(recipients):
        own = rng.randrange(HOURS_PER_WEEK)
        provider = "gmail.com" if r % 2 else "outlook.com"
        for week in range(weeks):
            for _ in range(rng.randint(1, 3)):
                if rng.random() < 0.8:
                    hour = (own + rng.choice((-1, 0, 0, 0, 1))) % HOURS_PER_WEEK
                else:
                    hour = rng.randrange(HOURS_PER_WEEK)
                ts = MON_00 + week * 7 * DAY + hour * HOUR + rng.randrange(HOUR)
                events.append((ts, f"r{r}", provider))
    events.sort()
    return events


def test_personal_recommendations_beat_the_global_baseline_after_warm_up() -> None:
    events = _personal_stream()
    book = SendTimeBook()
    warm_up_ms = events[0][0] + 14 * DAY
    for ts, recipient, provider in events:
        if ts >= warm_up_ms:
            book.evaluate(recipient, provider, ts)
        book.engage(recipient, provider, ts)
    rates = book.hit_rates()
    assert rates["n"] == sum(1 for e in events if e[0] >= warm_up_ms)
    assert rates["personal"] > 0.7
    assert rates["global_baseline"] < 0.1 and rates["provider_baseline"] < 0.1
    assert rates["personal"] > rates["global_baseline"] + 0.5


def test_evaluate_counts_hits_circularly_and_only_reads() -> None:
    book = SendTimeBook()
    assert book.hit_rates() == {"n": 0, "personal": 0.0, "global_baseline": 0.0,
                                "provider_baseline": 0.0}
    for i in range(20):
        book.engage("r", "gmail.com", MON_00 + i * 1000)  # Monday 00:00, hour 0
    before = pickle.dumps(book.snapshot()["recipients"])
    sun_22 = MON_00 + 6 * DAY + 22 * HOUR  # hour 166: two hours before 0, across the week
    book.evaluate("r", "gmail.com", sun_22)
    book.evaluate("r", "gmail.com", sun_22, tolerance_h=1)
    book.evaluate("r", "gmail.com", TUE_10)
    assert book.hit_rates() == {"n": 3, "personal": 1 / 3, "global_baseline": 1 / 3,
                                "provider_baseline": 1 / 3}
    assert pickle.dumps(book.snapshot()["recipients"]) == before


def _genuine(limit_s: int = 3600) -> list[tuple[str, str, int]]:
    """Genuine engagements of a small generated stream (the brief's rule of thumb)."""
    out = []
    for ge in TrafficGenerator(seed=1, start=1_795_000_000.0).events(20, limit_s):
        d = orjson.loads(ge.value)
        kind = d["type"]
        if kind in ("click", "reply", "conversion") or (
                kind == "open" and agent_kind(d.get("user_agent", "")) not in (AGENT_APPLE,
                                                                               AGENT_PROXY)):
            address = d["recipient"]
            out.append((address, provider_key(address.rsplit("@", 1)[1]),
                        int(round(parse_ts(d["ts"]) * 1000))))
    return out


def test_a_generated_stream_runs_through() -> None:
    events = _genuine()
    book = SendTimeBook()
    published = []
    for recipient, provider, ts in events:
        book.evaluate(recipient, provider, ts)
        st = book.engage(recipient, provider, ts)
        if st is not None:
            published.append(st)
    rates = book.hit_rates()
    assert rates["n"] == len(events) > 1000
    assert all(0.0 <= rates[k] <= 1.0 for k in ("personal", "global_baseline",
                                                 "provider_baseline"))
    assert len(book) == len({r for r, _, _ in events}) == len({s.recipient_hash
                                                              for s in published})
    assert all(0 <= s.best_hour_of_week < HOURS_PER_WEEK and 0.0 < s.confidence < 1.0
               for s in published)
    assert book.approx_bytes() > 100 * len(book)


# --- determinism and recovery ------------------------------------------------------------
def _random_calls(seed: int, n: int = 3000):
    rng = random.Random(seed)
    ts = MON_00
    calls = []
    for _ in range(n):
        ts += rng.randrange(0, 2 * HOUR)
        late = rng.random() < 0.05
        calls.append((f"r{rng.randrange(60)}", rng.choice(("gmail.com", "outlook.com", "x.io")),
                      ts - (rng.randrange(3 * DAY) if late else 0)))
    return calls


def _run(book: SendTimeBook, calls, evaluate: bool = False) -> list:
    out = []
    for recipient, provider, ts in calls:
        if evaluate:
            book.evaluate(recipient, provider, ts)
            book.recommend(recipient, provider, ts + DAY)
        out.append(book.engage(recipient, provider, ts))
    return out


def test_same_calls_same_answers_and_reading_changes_nothing() -> None:
    calls = _random_calls(11)
    a, b = SendTimeBook(), SendTimeBook()
    out_a = _run(a, calls)
    out_b = _run(b, calls, evaluate=True)
    assert out_a == out_b and any(out_a)
    last = calls[-1][2]
    assert ([a.recommend(f"r{i}", "gmail.com", last) for i in range(70)]
            == [b.recommend(f"r{i}", "gmail.com", last) for i in range(70)])


def test_snapshot_restore_round_trip() -> None:
    calls = _random_calls(12)
    whole = SendTimeBook(prior_strength=5.0, smoothing_hours=2, half_life_days=30.0,
                         publish_min_interval_s=600)
    expected = _run(whole, calls)
    first = SendTimeBook(prior_strength=5.0, smoothing_hours=2, half_life_days=30.0,
                         publish_min_interval_s=600)
    half = len(calls) // 2
    got = _run(first, calls[:half], evaluate=True)
    state = pickle.loads(pickle.dumps(first.snapshot()))
    _run(first, calls[half:])  # the snapshot does not share state with the live book
    restored = SendTimeBook.restore(state)
    assert len(restored) == len({r for r, _, _ in calls[:half]})
    assert restored.hit_rates() == pytest.approx(
        SendTimeBook.restore(pickle.loads(pickle.dumps(state))).hit_rates())
    got += _run(restored, calls[half:])
    assert got == expected
    assert restored.best_global_hour() == whole.best_global_hour()
    assert restored.approx_bytes() == whole.approx_bytes()
    with pytest.raises(ValueError, match="snapshot version"):
        SendTimeBook.restore({"version": 99})


@pytest.mark.parametrize("kwargs", [
    {"prior_strength": 0}, {"prior_strength": float("nan")}, {"smoothing_hours": -1},
    {"smoothing_hours": 84}, {"half_life_days": 0}, {"publish_min_interval_s": -1},
    {"provider_strength": 0},
])
def test_bad_parameters_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SendTimeBook(**kwargs)
