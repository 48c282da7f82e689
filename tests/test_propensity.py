"""Convergence propensity: journeys on the shards, scores and learning in the models' step."""

from __future__ import annotations

import random

import pytest

from operators.analytics import EngagementAnalytics
from operators.event import Event
from operators.journeys import DAY_MS, JourneyBook
from operators.propensity import PropensityBook

HUMAN_UA, IP = "Mozilla/5.0 (Windows NT 10.0) Chrome/120", "84.1.2.3"
S = "shop.example"


def ev(kind: str, ts: int, r: str = "r1", flow: str = "welcome", message: str = "m1",
       value: float = 0.0) -> tuple[Event, None]:
    return (Event(f"{kind}-{r}-{ts}", ts, kind, S, r, "gmail.com", "gmail.com", message,
                  f"{flow}-1" if flow else "c", flow, "", HUMAN_UA, IP, "", 0, "", "", "", "",
                  value, "", {}, "t", 0, ts), None)


def run(items: list) -> tuple[EngagementAnalytics, list]:
    analytics = EngagementAnalytics(label_window_s=3600)
    out = analytics.apply(items)
    return analytics, out.propensities


def test_the_propensity_goes_to_one_on_the_goal_and_to_zero_on_an_unsubscribe():
    _, rows = run([ev("delivered", 0), ev("delivered", 1000, "r2", message="m2"),
                   ev("click", 60_000), ev("conversion", 120_000, value=30.0),
                   ev("unsubscribe", 180_000, "r2", message="m2")])
    by = {(r.recipient_hash, r.kind): r for r in rows}
    assert by[("r1", "enter")].score <= 0.1  # nothing counted yet: low
    assert by[("r1", "goal")].score == 1.0
    assert by[("r2", "stopped")].score == 0.0
    assert {r.kind for r in rows} >= {"enter", "click", "goal", "stopped"}


def test_a_journey_expires_with_the_window_and_is_rescored_daily_meanwhile():
    book = JourneyBook(window_s=3 * 86_400)
    numbers = lambda: (0.0,)  # noqa: E731
    book.observe("delivered", 0, "r", S, "gmail.com", "welcome", 5, True, (), numbers)
    facts = book.tick(10 * DAY_MS, lambda r: (0.0,))
    assert [f.kind for f in facts] == ["quiet", "quiet", "expired"]
    assert [f.ts_ms // DAY_MS for f in facts] == [1, 2, 3]
    assert book.open_journeys() == 0


def test_machine_opens_and_bot_clicks_change_nothing():
    book = JourneyBook()
    numbers = lambda: (0.0,)  # noqa: E731
    book.observe("delivered", 0, "r", S, "gmail.com", "welcome", 5, True, (), numbers)
    assert book.observe("open", 1000, "r", S, "gmail.com", "welcome", 0, False, (),
                        numbers) == []
    assert book.observe("click", 2000, "r", S, "gmail.com", "welcome", 0, False, (),
                        numbers) == []
    assert [f.kind for f in book.observe("click", 3000, "r", S, "gmail.com", "welcome", 0,
                                         True, (), numbers)] == ["click"]


def traffic(seed: int, n: int = 400) -> list:
    """Recipients enter a flow over two days; the engaged ones (r < 100) click and convert."""
    rnd = random.Random(seed)
    items = []
    for i in range(n):
        r, t0 = f"r{i}", i * 400_000
        items.append(ev("delivered", t0, r, message=f"m{i}"))
        if i % 4 == 0 or rnd.random() < 0.05:
            items.append(ev("click", t0 + 3_600_000, r, message=f"m{i}"))
            if rnd.random() < 0.7:
                items.append(ev("conversion", t0 + 7_200_000, r, message=f"m{i}", value=20.0))
    return sorted(items, key=lambda it: it[0].ts_ms)


def test_a_score_ignores_the_future():
    """Appending future events changes no score already made."""
    base = traffic(1)
    cut = len(base) // 2
    _, short = run(base[:cut])
    _, full = run(base[:cut] + [ev("delivered", base[cut - 1][0].ts_ms + 1, "late")]
                  + base[cut:])
    assert short == full[:len(short)]


def test_the_model_learns_who_converges():
    """Clickers converge (70%, a quarter of the entrants click): after counting the
    journeys, the entry score is near the share that converges and a click raises it."""
    analytics, rows = run(traffic(2, n=2000) + [ev("delivered", 10 ** 10, "probe", message="p"),
                                                ev("click", 10 ** 10 + 60_000, "probe",
                                                   message="p")])
    probe = [r for r in rows if r.recipient_hash == "probe"]
    assert [r.kind for r in probe] == ["enter", "click"]
    assert 0.12 < probe[0].score < 0.3
    assert probe[1].score > 3 * probe[0].score and probe[1].score > 0.5
    assert analytics.aggregates.propensity.learned > 1000


def test_an_erased_recipient_leaves_the_open_journeys():
    analytics = EngagementAnalytics()
    analytics.apply([ev("delivered", 0), ev("delivered", 0, "r2", message="m2"),
                     ev("click", 60_000), ev("click", 60_000, "r2", message="m2")])
    cooling = analytics.aggregates.propensity._cooling
    assert sorted(t.recipient for t in cooling) == ["r1", "r2"]
    assert analytics.aggregates.propensity.open_journeys() == 2
    report = analytics.forget("r1", up_to_ms=10)
    assert report["journeys"] == 1 and analytics.aggregates.propensity.open_journeys() == 1
    # no cooling timer names them any more (it would keep them in the models' snapshot)
    assert [t.recipient for t in analytics.aggregates.propensity._cooling] == ["r2"]
    assert analytics.recipients.journeys.open_journeys() == 1


def test_stop_mailing_advice_needs_low_propensity_and_rising_unsubscribe_risk():
    book = PropensityBook(stop_below=0.6)
    from operators.journeys import JourneyFact

    fact = JourneyFact(0, "f", "r", S, "gmail.com", 0, "enter", 1, (0.0,) * 8, (0.0,) * 7)
    book.observe(fact, (0.1, 0.01, 0.01))
    (row,), _, _ = book.observe(fact._replace(ts_ms=5, kind="delivery", message_key=2),
                                (0.1, 0.01, 0.05))
    assert row.advice == "stop_mailing"  # 0.5 < 0.6, risk 0.01 -> 0.05
    (row,), _, _ = book.observe(fact._replace(ts_ms=6, kind="delivery", message_key=3),
                                (0.1, 0.01, 0.01))
    assert row.advice == ""


def test_an_erasure_leaves_no_timer_naming_the_recipient():
    book = JourneyBook()
    numbers = lambda: (0.0,)  # noqa: E731
    for r in ("gone", "kept"):
        book.observe("delivered", 0, r, S, "gmail.com", "welcome", 5, True, (), numbers)
    assert book.forget("gone") == (1, ("welcome",))
    assert [t[1] for t in book._timers] == ["kept"]


def test_a_journey_cools_twelve_hours_after_its_last_human_touch_and_its_score_falls():
    from operators.propensity import COOL_HOURS

    _, rows = run(traffic(5, n=800) + [
        ev("delivered", 10 ** 10, "probe", message="p"),
        ev("click", 10 ** 10 + 60_000, "probe", message="p"),
        ev("delivered", 10 ** 10 + 13 * 3_600_000, "other", flow="", message="o")])
    probe = [r for r in rows if r.recipient_hash == "probe"]
    assert [r.kind for r in probe] == ["enter", "click", "cooled"]
    assert probe[2].as_of_ms == 10 ** 10 + 60_000 + COOL_HOURS * 3_600_000
    assert probe[2].score < probe[1].score


def test_the_forecast_holds_every_open_journey_s_group_chance_exactly():
    """Hourly refreshes move whole groups: the cohort forecast never meets a p it does not
    hold (no mismatch), and its open sum is the groups' chances times their sizes."""
    analytics, _ = run(traffic(3, n=1500))
    agg = analytics.aggregates
    agg.advance(1500 * 400_000 + 5 * 3_600_000, analytics.flush())
    stats = agg.forecast.stats()
    assert stats["mismatched"] == 0 and stats["unmatched"] == 0
    book = agg.propensity
    expected = sum(n * book.group_p[key] for key, n in book.hazards.alive.items())
    held = sum(c.moments()[0] for c in agg.forecast._cohorts.values())
    assert held == pytest.approx(expected, rel=1e-9)


def test_matured_cohorts_calibrate_the_counted_chances():
    """Realised goals on cohorts whose window closed, against the counted chance at entry:
    the factor is 1 before any matured, and moves towards realised / counted."""
    book = PropensityBook()
    from operators.journeys import JourneyFact

    day = 86_400_000
    for i in range(400):  # one cohort: 400 enter, 120 reach the goal within hours
        fact = JourneyFact(i * 1000, "f", f"r{i}", S, "gmail.com", 0, "enter", 1,
                           (0.0,) * 8, (0.0,) * 7)
        book.observe(fact, None)
    for i in range(120):
        book.observe(JourneyFact(3_600_000 + i, "f", f"r{i}", S, "gmail.com", 0, "goal", 1,
                                 (0.0,) * 8, (0.0,) * 7), None)
    book.advance(day)
    (key,) = book.cohorts  # counted per flow and tier of history (here: new)
    assert key[0].startswith("f") and book.factor(key[0]) == 1.0  # not matured yet
    book.advance(9 * day)
    assert list(book.matured) == [key[0]]
    c0 = book.hazards.chance(key[0], 0, 0)
    assert book.factor(key[0]) == pytest.approx((120 / c0 + 200) / (400 + 200))
