"""The counted multi-state model behind the convergence propensity (operators/hazards.py)."""

from __future__ import annotations

import math
import random

import pytest

from operators.hazards import COOLED, ENGAGED, GOAL, HOUR_MS, QUIET, STOP, HazardBook

DAY = 24 * HOUR_MS


def test_rates_are_moves_over_person_hours_with_partial_hours_credited():
    h = HazardBook(window_s=2 * 86_400, prior_hours=0.0)
    h.enter("f", 30 * 60_000)  # 00:30: lives 2.5 h in QUIET, then converts
    h.enter("f", 0)  # lives 4 h in QUIET, then is still there at 04:00
    h.move("f", 30 * 60_000, 3 * HOUR_MS, QUIET, GOAL)
    h.advance(4 * HOUR_MS)
    assert h.exposure["f"][QUIET, 0] == pytest.approx(2.5 + 4.0)
    assert h.rate("f", QUIET, GOAL, 0) == pytest.approx(1 / 6.5)


def test_the_chance_of_one_move_is_one_minus_the_survival_of_its_rates():
    """One move QUIET -> GOAL: P(goal | QUIET at slice b) = 1 - exp(-sum of the rates x 6 h
    over the slices left)."""
    h = HazardBook(window_s=2 * 86_400, prior_hours=0.0)
    for _ in range(100):
        h.enter("f", 0)
    for b in range(8):  # 2 goals in the middle of every 6-hour slice
        for _ in range(2):
            h.move("f", 0, b * 6 * HOUR_MS + 3 * HOUR_MS, QUIET, GOAL)
    h.advance(2 * DAY)
    r = h.rates("f")[QUIET, GOAL]
    assert r[0] == pytest.approx(2 / (98 * 6 + 2 * 3))
    assert r[7] == pytest.approx(2 / (84 * 6 + 2 * 3))
    for b in (0, 3, 7):
        expected = 1 - math.exp(-6 * r[b:].sum())
        assert h.chance("f", QUIET, b * 6 * HOUR_MS) == pytest.approx(expected, rel=1e-4)
    assert h.chance("f", QUIET, 48 * HOUR_MS) == 0.0
    assert h.chance("f", GOAL, 0) == 1.0 and h.chance("f", STOP, 0) == 0.0


def test_a_chain_through_a_fast_state_counts_the_goal_behind_it():
    """QUIET -> ENGAGED (slowly) -> GOAL (within minutes): the chance from QUIET includes
    the goals reached through ENGAGED (the matrix exponential, not one step per slice)."""
    h = HazardBook(window_s=86_400, prior_hours=0.0)
    rnd = random.Random(4)
    n, goals, events = 2000, 0, []
    for i in range(n):
        t0 = rnd.randrange(0, HOUR_MS)
        events.append((t0, i, t0, None, None))
        # engages at rate 0.02 per hour (P(within 24 h) = 1 - exp(-0.48) = 0.38)
        t = t0 + int(rnd.expovariate(0.02) * HOUR_MS)
        if t < t0 + DAY:
            events.append((t, i, t0, QUIET, ENGAGED))
            goal = rnd.random() < 0.5
            goals += goal
            events.append((t + 60_000, i, t0, ENGAGED, GOAL if goal else COOLED))
    for t, _i, t0, old, new in sorted(events):  # in event-time order, as the stream is
        if old is None:
            h.enter("f", t0)
        else:
            h.move("f", t0, t, old, new)
    h.advance(3 * DAY)
    truth = (1 - math.exp(-0.48)) * 0.5
    assert goals / n == pytest.approx(truth, abs=0.03)
    assert h.chance("f", QUIET, 0) == pytest.approx(goals / n, abs=0.03)


def test_slices_nobody_reached_yet_take_the_last_day_decaying():
    h = HazardBook(window_s=4 * 86_400, extrapolate_half_life_s=86_400)
    for _ in range(50):
        h.enter("f", 0)
    for _ in range(5):
        h.move("f", 0, 20 * HOUR_MS, QUIET, GOAL)
    h.advance(DAY)  # only the first day lived
    r = h.rates("f")[QUIET, GOAL]
    day_rate = 5 / (45 * 24 + 5 * 20)
    assert r[4] == pytest.approx(day_rate * 0.5 ** 0.25)  # 6 hours after the last slice seen
    assert r[7] == pytest.approx(day_rate * 0.5)
    assert r[15] < r[7] < r[4]


def test_an_unknown_flow_starts_from_the_others():
    h = HazardBook(window_s=86_400)
    for _ in range(40):
        h.enter("a", 0)
    for _ in range(8):
        h.move("a", 0, HOUR_MS, QUIET, GOAL)
    h.advance(DAY)
    assert h.chance("new", QUIET, 0) == pytest.approx(h.chance("a", QUIET, 0), rel=0.2)
    assert h.chance("new", QUIET, 0) > 0.05


def test_a_leave_without_a_move_stops_the_person_time():
    h = HazardBook(window_s=86_400, prior_hours=0.0)
    h.enter("f", 0)
    h.leave("f", 0, 2 * HOUR_MS, QUIET)
    h.advance(10 * HOUR_MS)
    assert h.exposure["f"][QUIET].sum() == pytest.approx(2.0)
    assert h.alive == {}
