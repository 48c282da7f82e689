"""Cohort forecasts: Poisson-binomial intervals, hourly rows, outcomes, honesty, alerts."""

from __future__ import annotations

import itertools
import math
import pickle
import random
from fractions import Fraction
from statistics import NormalDist

import pytest

from operators.forecast import (
    DAY_MS,
    HOUR_MS,
    CohortForecast,
    Residual,
    TrackRecord,
    approx_quantiles,
    batch_exact_quantiles,
    exact_quantiles,
    fit_track_record,
    poisson_binomial_pmf,
)

DAY = 20_000  # 2024-10-04 UTC
T0 = DAY * DAY_MS
TAILS = (Fraction(1, 10), Fraction(9, 10), Fraction(1, 40), Fraction(39, 40))


def brute_force_quantiles(ps: list[Fraction]) -> list[int]:
    """Every outcome of n Bernoulli trials, exact arithmetic: smallest k with P(S ≤ k) ≥ a."""
    pmf = [Fraction(0)] * (len(ps) + 1)
    for outcome in itertools.product((0, 1), repeat=len(ps)):
        prob = Fraction(1)
        for p, x in zip(ps, outcome, strict=True):
            prob *= p if x else 1 - p
        pmf[sum(outcome)] += prob
    out = []
    for a in TAILS:
        cdf = Fraction(0)
        for k, mass in enumerate(pmf):
            cdf += mass
            if cdf >= a:
                out.append(k)
                break
    return out


def moments(ps: list[float]) -> tuple[float, float, float]:
    return (sum(ps), sum(p * (1 - p) for p in ps),
            sum(p * (1 - p) * (1 - 2 * p) for p in ps))


@pytest.mark.parametrize("seed", range(40))
def test_exact_interval_matches_brute_force(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 12)
    ps = [Fraction(rng.randint(0, 20), 20) for _ in range(n)]
    expected = brute_force_quantiles(ps)
    assert exact_quantiles(poisson_binomial_pmf([float(p) for p in ps])) == expected
    # the same through a cohort: 3 converged of 3 + n entrants, the rest open with ps (the
    # p's taken as right: no spread for their error), the interval widened to hold the forecast
    f = CohortForecast(exact_limit=15, error_prior_sd=0.0)
    for p in ps:
        f.enter("f", DAY, float(p), T0)
    for _ in range(3):
        f.enter("f", DAY, 0.5, T0)
        f.reach("f", DAY, 0.5, T0)
    (row,), _, _ = f.advance(T0 + HOUR_MS)
    entered = n + 3
    assert (row.entered, row.converged) == (entered, 3)
    lo80, hi80, lo95, hi95 = ((3 + q) / entered for q in expected)
    score = row.forecast_score
    lo80, hi80 = min(lo80, score), max(hi80, score)
    assert [row.lo80, row.hi80, row.lo95, row.hi95] == [lo80, hi80, min(lo95, lo80),
                                                        max(hi95, hi80)]
    assert row.expected_converged == pytest.approx(3 + float(sum(ps)))


def test_exact_interval_with_repeated_ps_matches_brute_force():
    ps = [Fraction(1, 3)] * 6 + [Fraction(3, 4)] * 4 + [Fraction(0)] * 2
    floats = [float(p) for p in ps]
    assert exact_quantiles(poisson_binomial_pmf(floats)) == brute_force_quantiles(ps)
    grouped = {float(Fraction(1, 3)): 6, 0.75: 4, 0.0: 2}
    assert exact_quantiles(poisson_binomial_pmf(grouped)) == brute_force_quantiles(ps)


@pytest.mark.parametrize("family", ["uniform", "small", "tiny", "mixed", "high", "bimodal"])
def test_approximation_within_one_count_of_exact_dp(family):
    """The documented bound: Cornish–Fisher quantiles within ±1 count of the exact DP."""
    rng = random.Random(family)
    draw = {"uniform": rng.random,
            "small": lambda: rng.random() * 0.1,
            "tiny": lambda: rng.random() * 0.002,
            "mixed": lambda: rng.random() if rng.random() < 0.05 else rng.random() * 0.01,
            "high": lambda: 1 - rng.random() * 0.01,
            "bimodal": lambda: 0.9 if rng.random() < 0.1 else 0.001}[family]
    for n in (201, 401, 2000, 2500):
        ps = [draw() for _ in range(n)]
        exact = exact_quantiles(poisson_binomial_pmf(ps))
        approx = approx_quantiles(*moments(ps), n)
        assert max(abs(a - b) for a, b in zip(exact, approx, strict=True)) <= 1, (n, exact,
                                                                                    approx)


@pytest.mark.parametrize("n", [5, 20, 50, 100, 200])
def test_approximation_within_one_count_of_exact_dp_on_small_cohorts_too(n):
    rng = random.Random(n)
    for _ in range(200):
        kind = rng.random()
        if kind < 0.3:
            ps = [rng.random() for _ in range(n)]
        elif kind < 0.6:
            ps = [rng.random() ** 3 for _ in range(n)]
        else:
            ps = [rng.betavariate(1, 6) for _ in range(n)]
        exact = exact_quantiles(poisson_binomial_pmf(ps))
        approx = approx_quantiles(*moments(ps), n)
        assert max(abs(a - b) for a, b in zip(exact, approx, strict=True)) <= 1


def test_approximation_within_one_count_with_a_few_large_ps_among_many_zeros():
    rng = random.Random(3)
    for _ in range(300):
        ps = [rng.random() ** 3 for _ in range(rng.randint(1, 40))]
        ps += [rng.random() * rng.choice([0.0, 1e-4, 1e-3]) for _ in range(201)]
        exact = exact_quantiles(poisson_binomial_pmf(ps))
        approx = approx_quantiles(*moments(ps), len(ps))
        assert max(abs(a - b) for a, b in zip(exact, approx, strict=True)) <= 1


def test_batched_dp_gives_the_quantiles_of_each_collection():
    rng = random.Random(8)
    collections = [[rng.random() * rng.choice([0.02, 0.3, 1.0]) for _ in range(n)]
                   for n in (0, 1, 2, 3, 7, 16, 17, 50, 120, 200, 64, 5)]
    collections.append([0.0, 0.0])
    collections.append({0.25: 16, 0.5: 3})
    uppers = [int(sum(moments(list(c))[:1]) + 60) for c in collections]
    uppers[-1] = 30
    assert batch_exact_quantiles(collections, uppers) == \
        [exact_quantiles(poisson_binomial_pmf(c, u)) for c, u in zip(collections, uppers,
                                                                     strict=True)]


def test_truncated_dp_gives_the_same_quantiles():
    rng = random.Random(5)
    ps = [rng.random() * 0.05 for _ in range(400)]
    mean, var, _ = moments(ps)
    upper = int(mean + 14 * math.sqrt(var) + 40)
    assert upper < 400
    assert len(poisson_binomial_pmf(ps, upper)) == upper + 1
    assert exact_quantiles(poisson_binomial_pmf(ps, upper)) == \
        exact_quantiles(poisson_binomial_pmf(ps))


def test_large_cohort_is_approximated_and_stays_within_bound():
    rng = random.Random(9)
    ps = [rng.random() * 0.2 for _ in range(1000)]
    f = CohortForecast(exact_limit=400, error_prior_sd=0.0)  # the noise given the p's alone
    for p in ps:
        f.enter("f", DAY, p, T0)
    f.advance(T0 + HOUR_MS)  # 1000 open at the boundary: approximated
    for p in ps[:700]:  # back under the limit: stays approximated (the p's were not kept)
        f.drop("f", DAY, p, T0 + HOUR_MS)
    (row,), _, _ = f.advance(T0 + 2 * HOUR_MS)
    assert f.stats()["approximated"] == 1
    exact = exact_quantiles(poisson_binomial_pmf(ps[700:]))
    for bound, q in zip((row.lo80, row.hi80, row.lo95, row.hi95), exact, strict=True):
        assert abs(bound - q / 1000) <= 1 / 1000 + 1e-12
    assert row.expected_converged == pytest.approx(sum(ps[700:]))


def test_cohort_close_writes_the_realised_score():
    f = CohortForecast(window_days=7)
    for i in range(10):
        f.enter("welcome", DAY, 0.3, T0 + i * 1000)
        f.enter("other", DAY, 0.3, T0 + i * 1000)
    for _ in range(4):
        f.reach("welcome", DAY, 0.3, T0 + DAY_MS)
    for _ in range(5):
        f.drop("welcome", DAY, 0.3, T0 + 2 * DAY_MS)
    close = (DAY + 8) * DAY_MS
    _, outcomes, _ = f.advance(close - 1)
    assert outcomes == []
    rows, outcomes, _ = f.advance(close)
    assert rows == []  # nothing open any more
    assert [o._asdict() for o in outcomes] == [
        {"flow_id": "other", "cohort_day": DAY, "entered": 10, "converged": 0, "score": 0.0,
         "window_days": 7, "closed_ms": close},
        {"flow_id": "welcome", "cohort_day": DAY, "entered": 10, "converged": 4, "score": 0.4,
         "window_days": 7, "closed_ms": close}]
    # one welcome recipient and all of other's were never resolved: not converged
    assert f.stats()["unresolved"] == 11
    assert f.stats()["open_cohorts"] == 0
    f.reach("welcome", DAY, 0.3, close + 1)  # a change about a closed cohort: counted
    assert f.stats()["late"] == 1


def test_a_row_per_open_cohort_at_each_hour_boundary():
    f = CohortForecast()
    f.advance(T0 + 10 * 60_000)
    f.enter("a", DAY, 0.5, T0 + 10 * 60_000)
    f.enter("b", DAY, 0.2, T0 + 20 * 60_000)
    rows, _, _ = f.advance(T0 + 3 * HOUR_MS + 5 * 60_000)  # three boundaries crossed
    assert [(r.flow_id, (r.as_of_ms - T0) // HOUR_MS) for r in rows] == [
        ("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3), ("b", 3)]
    assert len({r[3:] for r in rows if r.flow_id == "a"}) == 1  # unchanged: same numbers
    assert f.advance(T0 + 3 * HOUR_MS + 50 * 60_000) == ([], [], [])  # no boundary
    # a change at a boundary's ts comes after advance(ts): it is in the next row only
    rows, _, _ = f.advance(T0 + 4 * HOUR_MS)
    f.reach("a", DAY, 0.5, T0 + 4 * HOUR_MS)
    assert [r.converged for r in rows if r.flow_id == "a"] == [0]
    rows, _, _ = f.advance(T0 + 5 * HOUR_MS)
    assert [(r.converged, r.forecast_score, r.hi95) for r in rows if r.flow_id == "a"] == [
        (1, 1.0, 1.0)]
    assert [r.as_of_ms for r in f.flush()] == [T0 + 6 * HOUR_MS] * 2


def test_a_long_gap_without_open_cohorts_costs_nothing():
    f = CohortForecast()
    f.enter("a", DAY, 0.5, T0)
    _, outcomes, _ = f.advance(T0 + 10_000 * DAY_MS)  # closes a, then skips the gap
    assert len(outcomes) == 1 and f._hour == (T0 + 10_000 * DAY_MS) // HOUR_MS
    f.enter("a", DAY + 10_000, 0.5, T0 + 10_000 * DAY_MS)
    rows, _, _ = f.advance(T0 + 10_000 * DAY_MS + HOUR_MS)
    assert [r.cohort_day for r in rows] == [DAY + 10_000]


def test_intervals_recomputed_only_for_cohorts_that_changed():
    class Counting(CohortForecast):
        computed = 0

        def _numbers(self, cohort, qs=None):
            Counting.computed += 1
            return super()._numbers(cohort, qs)

    f = Counting()
    for flow in ("a", "b", "c"):
        f.enter(flow, DAY, 0.4, T0)
    f.advance(T0 + 24 * HOUR_MS)
    assert Counting.computed == 3  # 72 rows, 3 computations
    f.rescore("b", DAY, 0.4, 0.6, T0 + 24 * HOUR_MS + 1)
    rows, _, _ = f.advance(T0 + 30 * HOUR_MS)
    assert len(rows) == 18 and Counting.computed == 4


def simulate(seed: int, flows: int = 6, days: int = 14) -> list:
    """Event-time ordered changes of several flows over two weeks, then everything out."""
    rng = random.Random(seed)
    changes = []
    for flow in range(flows):
        for day in range(days):
            for _ in range(rng.randint(20, 120)):
                t = (DAY + day) * DAY_MS + rng.randrange(DAY_MS)
                p = rng.random() * 0.3
                changes.append((t, "enter", f"f{flow}", DAY + day, p, None))
                t2 = t + rng.randrange(6 * DAY_MS)  # resolved before the window closes
                p2 = min(p * 2, 1.0)
                changes.append((t2, "rescore", f"f{flow}", DAY + day, p, p2))
                outcome = "reach" if rng.random() < p else "drop"
                changes.append((t2 + rng.randrange(HOUR_MS), outcome, f"f{flow}", DAY + day,
                                p2, None))
    changes.sort(key=lambda c: (c[0], c[1], c[2], c[4]))
    return changes


def run(changes: list, **settings) -> tuple[list, ...]:
    f = CohortForecast(**settings)
    rows, outcomes, alerts = [], [], []
    for t, kind, flow, day, p, p2 in changes:
        r, o, a = f.advance(t)
        rows += r
        outcomes += o
        alerts += a
        if kind == "enter":
            f.enter(flow, day, p, t)
        elif kind == "rescore":
            f.rescore(flow, day, p, p2, t)
        else:
            getattr(f, kind)(flow, day, p, t)
    r, o, a = f.advance(changes[-1][0] + 30 * DAY_MS)
    return rows + r, outcomes + o, alerts + a, f.take_quality(), f.summary(), f.stats()


def test_same_input_same_output():
    changes = simulate(1)
    first, second = run(changes), run(changes)
    assert first == second
    rows, outcomes, _, quality, summary, stats = first
    assert len(outcomes) == 6 * 14 and len(quality) == 6 * 14 * 3
    assert stats["unresolved"] == 0 and stats["unmatched"] == 0 and stats["mismatched"] == 0
    assert summary["all"][1]["cohorts"] == 6 * 14
    # the rows of a flow do not depend on other flows' changes
    alone = run([c for c in changes if c[2] == "f2"])
    assert [r for r in rows if r.flow_id == "f2"] == [r for r in alone[0] if r.flow_id == "f2"]


def test_rows_do_not_depend_on_the_order_of_changes_between_two_boundaries():
    """Exact integer sums and sorted p's: the same numbers to the last bit, whatever order
    the shards' changes of one hour were merged in."""
    rng = random.Random(4)
    small = [rng.random() * 0.3 for _ in range(150)]  # exact
    large = [rng.random() * 0.3 for _ in range(900)]  # approximated
    enters = [("small", p) for p in small] + [("large", p) for p in large]
    later = [("rescore", "small", p) for p in small[:40]] + [
        ("drop", "large", p) for p in large[:300]]
    outputs = []
    for order in range(3):
        shuffled = random.Random(order)
        shuffled.shuffle(enters)
        shuffled.shuffle(later)
        f = CohortForecast()
        for flow, p in enters:
            f.enter(flow, DAY, p, T0)
        for kind, flow, p in later:
            if kind == "rescore":
                f.rescore(flow, DAY, p, p / 3, T0 + 1)
            else:
                f.drop(flow, DAY, p, T0 + 1)
        outputs.append(f.advance(T0 + HOUR_MS)[0])
    assert outputs[0] == outputs[1] == outputs[2]
    assert outputs[0][1].hi95 - outputs[0][1].lo95 > 0
    assert outputs[0][1].expected_converged == pytest.approx(
        math.fsum(small[40:] + [p / 3 for p in small[:40]]), abs=1e-12)
    assert outputs[0][0].expected_converged == pytest.approx(math.fsum(large[300:]), abs=1e-12)


def test_exact_or_approximated_is_judged_at_the_boundary_not_mid_hour():
    """190 open, then 20 entries and 20 drops in the same hour: whichever order the shards'
    changes came in, the cohort has 190 open at the boundary and stays exact."""
    rng = random.Random(6)
    first = [rng.random() * 0.3 for _ in range(190)]
    more = [rng.random() * 0.3 for _ in range(20)]
    rows = []
    for entries_first in (True, False):
        f = CohortForecast(exact_limit=200)
        for p in first:
            f.enter("f", DAY, p, T0)
        f.advance(T0 + HOUR_MS)
        changes = [("enter", p) for p in more] + [("drop", p) for p in first[:20]]
        for kind, p in changes if entries_first else changes[::-1]:
            getattr(f, kind)("f", DAY, p, T0 + HOUR_MS)
        rows.append(f.advance(T0 + 2 * HOUR_MS)[0])
        assert f.stats()["approximated"] == 0
    assert rows[0] == rows[1]
    f.enter("f", DAY, 0.1, T0 + 2 * HOUR_MS)  # 191 + 10 = 201 open at the next boundary
    for p in more[:10]:
        f.enter("f", DAY, p, T0 + 2 * HOUR_MS)
    f.advance(T0 + 3 * HOUR_MS)
    assert f.stats()["approximated"] == 1


def test_pickled_state_carries_on_identically():
    changes = simulate(2, flows=3, days=5)
    half = len(changes) // 2
    f = CohortForecast(min_entered=1, min_trailing=1)
    for t, kind, flow, day, p, p2 in changes[:half]:
        f.advance(t)
        if kind == "enter":
            f.enter(flow, day, p, t)
        elif kind == "rescore":
            f.rescore(flow, day, p, p2, t)
        else:
            getattr(f, kind)(flow, day, p, t)
    g = pickle.loads(pickle.dumps(f))
    end = changes[-1][0] + 30 * DAY_MS
    for book in (f, g):
        for t, kind, flow, day, p, p2 in changes[half:]:
            book.advance(t)
            if kind == "enter":
                book.enter(flow, day, p, t)
            elif kind == "rescore":
                book.rescore(flow, day, p, p2, t)
            else:
                getattr(book, kind)(flow, day, p, t)
    assert f.advance(end) == g.advance(end)
    assert f.take_quality() == g.take_quality()


def test_configure_applies_a_new_window_to_open_cohorts():
    f = CohortForecast(window_days=7)
    f.enter("f", DAY, 0.2, T0)
    f.configure(window_days=3, alert_margin=0.5)
    _, outcomes, _ = f.advance((DAY + 4) * DAY_MS)
    assert [(o.cohort_day, o.window_days) for o in outcomes] == [(DAY, 3)]
    with pytest.raises(TypeError):
        f.configure(no_such_setting=1)


def close_cohorts(f: CohortForecast, flow: str, first_day: int, count: int, n: int,
                  converged: int) -> None:
    """`count` cohorts of `n` entrants of which `converged` reach the goal on entry day."""
    for day in range(first_day, first_day + count):
        t = day * DAY_MS
        f.advance(t)
        for i in range(n):
            f.enter(flow, day, 0.3, t)
            (f.reach if i < converged else f.drop)(flow, day, 0.3, t)


def test_alert_raised_once_when_the_forecast_drops_below_trailing_and_again_after_recovery():
    f = CohortForecast(alert_margin=0.2, min_entered=50)
    close_cohorts(f, "welcome", DAY, 4, n=100, converged=30)  # trailing average 0.3
    current = DAY + 11  # the fourth closed at DAY + 3 + 8
    t = current * DAY_MS
    _, outcomes, alerts = f.advance(t)
    assert len(outcomes) == 4 and alerts == []
    assert f.trailing("welcome") == pytest.approx(0.3)
    for _ in range(49):  # below min_entered: no alert however bad
        f.enter("welcome", current, 0.05, t)
    assert f.advance(t + HOUR_MS)[2] == []
    f.enter("welcome", current, 0.05, t + HOUR_MS)
    for _ in range(50):
        f.enter("welcome", current, 0.05, t + HOUR_MS)
    rows, _, alerts = f.advance(t + 5 * HOUR_MS)
    assert len(rows) == 4 and len(alerts) == 1  # once, not every hour
    alert = alerts[0]
    assert (alert.flow_id, alert.cohort_day, alert.as_of_ms) == ("welcome", current,
                                                                 t + 2 * HOUR_MS)
    assert alert.hi80 < 0.3 * 0.8 and alert.trailing_score == pytest.approx(0.3)
    assert alert.margin == 0.2 and alert.forecast_score == pytest.approx(0.05)
    assert "trailing 4-cohort average 30.0%" in alert.detail
    assert f.advance(t + 6 * HOUR_MS)[2] == []  # (time first, then the changes at it)
    for _ in range(100):  # recovers: everyone likely to converge
        f.rescore("welcome", current, 0.05, 0.5, t + 6 * HOUR_MS)
    assert f.advance(t + 9 * HOUR_MS)[2] == []
    for _ in range(100):  # and falls again
        f.rescore("welcome", current, 0.5, 0.01, t + 9 * HOUR_MS)
    _, _, alerts = f.advance(t + 12 * HOUR_MS)
    assert [a.as_of_ms for a in alerts] == [t + 10 * HOUR_MS]


def test_no_alert_without_a_full_trailing_set_or_above_the_margin():
    f = CohortForecast(alert_margin=0.2, min_entered=10)
    close_cohorts(f, "welcome", DAY, 3, n=100, converged=30)  # only three closed
    t = (DAY + 11) * DAY_MS
    f.advance(t)
    for _ in range(100):
        f.enter("welcome", DAY + 11, 0.01, t)
    assert f.advance(t + 5 * HOUR_MS)[2] == []
    g = CohortForecast(alert_margin=0.2, min_entered=10)
    close_cohorts(g, "welcome", DAY, 4, n=100, converged=30)
    g.advance(t)
    for _ in range(1000):  # 0.25 ± noise: hi80 above 0.24
        g.enter("welcome", DAY + 11, 0.25, t)
    assert g.advance(t + 5 * HOUR_MS)[2] == []


def test_quality_records_forecast_and_trailing_baseline_per_horizon():
    f = CohortForecast(min_trailing=1)
    close_cohorts(f, "welcome", DAY, 1, n=10, converged=5)  # trailing 0.5
    day = DAY + 8
    t = day * DAY_MS
    f.advance(t)
    assert [(q.cohort_day, q.forecast_score, q.in80, q.baseline_score)
            for q in f.take_quality()] == [(DAY, 0.5, True, None)] * 3
    for _ in range(20):
        f.enter("welcome", day, 0.25, t)
    for _ in range(4):  # day 1: 4 converged, 16 open at 0.25 -> forecast (4 + 4) / 20
        f.reach("welcome", day, 0.25, t + HOUR_MS)
    f.advance(t + DAY_MS)
    f.reach("welcome", day, 0.25, t + DAY_MS + HOUR_MS)  # day 1.5: one more converges,
    for _ in range(15):                                   # the rest drop: realised 0.25
        f.drop("welcome", day, 0.25, t + DAY_MS + HOUR_MS)
    f.advance((day + 8) * DAY_MS)
    quality = f.take_quality()
    assert f.take_quality() == []
    assert [(q.horizon_days, q.forecast_score, q.realised, q.entered) for q in quality] == [
        (1, 0.4, 0.25, 20), (2, 0.25, 0.25, 20), (3, 0.25, 0.25, 20)]
    q1 = quality[0]
    assert q1.abs_error == pytest.approx(0.15) and q1.rel_error == pytest.approx(0.6)
    assert q1.in95 and not q1.in80  # 16 open at 0.25: 80% interval 2..6 more, 95% 1..8
    assert (q1.baseline_score, q1.baseline_abs_error, q1.baseline_rel_error) == \
        pytest.approx((0.5, 0.25, 1.0))
    first = f.summary()["all"]  # both cohorts
    assert first[1]["cohorts"] == 2 and first[1]["coverage80"] == 0.5
    assert first[1]["mean_abs_error"] == pytest.approx(0.075)
    assert first[1]["baseline_cohorts"] == 1
    assert first[1]["baseline_mean_abs_error"] == pytest.approx(0.25)
    assert first[2]["coverage80"] == 1.0 and first[2]["mean_rel_error"] == 0.0
    assert f.summary()["large"] == {}


def test_the_80_percent_interval_covers_simulated_cohorts_about_80_percent_of_the_time():
    """Cohorts whose recipients' true p's are known: the forecast made one day after
    the start covers the realised score about as often as it says (seeded)."""
    rng = random.Random(2024)
    f = CohortForecast(min_entered=10**9, error_prior_sd=0.0)  # calibrated p's, taken as such
    t = T0
    f.advance(t)
    outcomes = {}
    for cohort in range(400):
        flow = f"flow{cohort:03d}"
        ps = [rng.betavariate(1, 6) for _ in range(rng.randint(100, 900))]
        for p in ps:
            f.enter(flow, DAY, p, t)
        outcomes[flow] = [(p, rng.random() < p) for p in ps]
    f.advance(T0 + DAY_MS)  # the horizon-1 forecast, all open
    for flow, results in outcomes.items():
        for p, converged in results:
            (f.reach if converged else f.drop)(flow, DAY, p, T0 + DAY_MS + 1)
    f.advance(T0 + 8 * DAY_MS)
    summary = f.summary()["all"][1]
    assert summary["cohorts"] == 400
    assert 0.75 <= summary["coverage80"] <= 0.88
    assert 0.92 <= summary["coverage95"] <= 0.99
    assert summary["mean_rel_error"] < 0.2
    assert f.stats()["approximated"] > 0  # both methods took part


def test_bad_changes_are_counted_never_raised():
    f = CohortForecast()
    f.enter("f", DAY, float("nan"), T0)
    f.enter("f", DAY, 1.5, T0)
    f.enter("f", DAY, "0.3", T0)
    assert f.stats()["invalid"] == 3 and f.stats()["open_cohorts"] == 0
    f.reach("g", DAY, 0.3, T0)  # no such cohort
    assert f.stats()["unknown"] == 1
    f.enter("f", DAY, 0.3, T0)
    f.drop("f", DAY, 0.3, T0)
    f.drop("f", DAY, 0.3, T0)  # nobody open any more
    assert f.stats()["unmatched"] == 1
    f.enter("f", DAY, 0.3, T0)
    f.enter("f", DAY, 0.6, T0)
    f.rescore("f", DAY, 0.35, 0.5, T0)  # a p never given: the cohort goes approximate
    assert f.stats()["mismatched"] == 1
    (row,), _, _ = f.advance(T0 + HOUR_MS)
    assert row.entered == 3 and row.expected_converged == pytest.approx(0.3 + 0.6 - 0.35 + 0.5)
    assert 0 <= row.lo95 <= row.lo80 <= row.hi80 <= row.hi95 <= 1
    for _ in range(3):  # a p larger than everything open, out of a cohort of one
        f.enter("g", DAY, 0.01, T0 + HOUR_MS)
        f.drop("g", DAY, 0.9, T0 + HOUR_MS)
    f.enter("g", DAY, 0.01, T0 + HOUR_MS)
    f.rescore("g", DAY, 0.5, 0.02, T0 + HOUR_MS)
    f.enter("g", DAY, 0.01, T0 + HOUR_MS)
    f.drop("g", DAY, 0.7, T0 + HOUR_MS)
    rows, _, _ = f.advance(T0 + 2 * HOUR_MS)
    g = [r for r in rows if r.flow_id == "g"][0]
    assert g.expected_converged >= 0 and 0 <= g.lo95 <= g.hi95 <= 1


def test_forget_flow():
    f = CohortForecast(min_trailing=1)
    close_cohorts(f, "a", DAY, 1, n=10, converged=5)
    f.enter("a", DAY + 1, 0.2, (DAY + 1) * DAY_MS)
    f.enter("b", DAY + 1, 0.2, (DAY + 1) * DAY_MS)
    f.advance((DAY + 8) * DAY_MS)  # a's first cohort closed, the second ones are open
    assert f.trailing("a") == 0.5 and f.stats()["open_cohorts"] == 2
    f.forget_flow("a")
    assert f.trailing("a") is None and f.stats()["open_cohorts"] == 1
    rows, outcomes, _ = f.advance((DAY + 20) * DAY_MS)
    assert {r.flow_id for r in rows} == {"b"}
    assert [(o.flow_id, o.cohort_day) for o in outcomes] == [("b", DAY + 1)]


def test_coverage_holds_at_every_horizon_when_propensities_are_rescored_as_time_passes():
    """Recipients convert (with probability q) at a uniform time within their 7-day window;
    the caller rescores each open one every 12 hours to the calibrated
    P(converting in the rest of the window | not yet) = q (1 - s) / (1 - q s), s the
    share of the window gone, and drops it when its window ends (seeded)."""
    rng = random.Random(77)
    window = 7 * DAY_MS
    changes = []  # (ts, order, flow, kind, old_p, new_p)
    for cohort in range(120):
        flow = f"flow{cohort:03d}"
        q_mean = rng.uniform(0.05, 0.3)
        for _ in range(rng.randint(150, 400)):
            entry = T0 + rng.randrange(DAY_MS)
            q = min(rng.expovariate(1 / q_mean), 0.95)
            converts_at = entry + rng.randrange(window) if rng.random() < q else None
            changes.append((entry, 0, flow, "enter", q, q))
            p, t = q, entry
            while True:
                t += DAY_MS // 2
                if t >= entry + window or (converts_at is not None and converts_at < t):
                    break
                s = (t - entry) / window
                new_p = q * (1 - s) / (1 - q * s)
                changes.append((t, 1, flow, "rescore", p, new_p))
                p = new_p
            if converts_at is not None:
                changes.append((converts_at, 2, flow, "reach", p, p))
            else:
                changes.append((entry + window, 2, flow, "drop", p, p))
    changes.sort()
    f = CohortForecast(min_entered=10**9, error_prior_sd=0.0)  # calibrated p's, taken as such
    for ts, _, flow, kind, old_p, new_p in changes:
        f.advance(ts)
        if kind == "enter":
            f.enter(flow, DAY, new_p, ts)
        elif kind == "rescore":
            f.rescore(flow, DAY, old_p, new_p, ts)
        else:
            getattr(f, kind)(flow, DAY, old_p, ts)
    f.advance(T0 + 9 * DAY_MS)
    assert f.stats()["unresolved"] == 0 and f.stats()["mismatched"] == 0
    summary = f.summary()["all"]
    for horizon in (1, 2, 3):
        assert summary[horizon]["cohorts"] == 120
        assert 0.72 <= summary[horizon]["coverage80"] <= 0.92, (horizon, summary[horizon])
        assert 0.90 <= summary[horizon]["coverage95"] <= 1.0, (horizon, summary[horizon])
    # later forecasts know more: smaller errors
    assert summary[3]["mean_abs_error"] < summary[1]["mean_abs_error"]


# --- the track record: the propensities' own error --------------------------------------


def journeys(seed: int, flows: int = 3, days: int = 30, n: int = 150,
             factor=lambda flow, day, rng: 1.0, rate=lambda flow, day: 0.2) -> list:
    """Cohorts whose p's are off by `factor` (per flow and day): each recipient's true q
    is drawn around the flow's rate; it converts (probability q) at entry + 7 days ×
    Beta(1, 3) (most early), else drops when its window ends; the caller's p is q × that
    cohort's factor (capped), rescored each day to P(in the rest of the window | not yet)
    = q (1 - F(s)) / (1 - q F(s)), F(s) = 1 - (1 - s)³ the share of conversions by s."""
    rng = random.Random(seed)
    window = 7 * DAY_MS
    changes = []  # (ts, order, flow, day, kind, old_p, new_p, recipient number)
    for day in range(days):
        for flow in range(flows):
            name = f"f{flow}"
            off = factor(flow, day, rng)
            for who in range(rng.randint(n * 9 // 10, n * 11 // 10)):
                entry = (DAY + day) * DAY_MS + rng.randrange(DAY_MS)
                q = min(rng.expovariate(1 / rate(flow, day)), 0.9)
                at = entry + int(window * rng.betavariate(1, 3)) if rng.random() < q else None
                p = min(q * off, 0.95)
                changes.append((entry, 0, name, DAY + day, "enter", p, p, who))
                t = entry
                while True:
                    t += DAY_MS
                    if t >= entry + window or (at is not None and at < t):
                        break
                    done = 1 - (1 - (t - entry) / window) ** 3
                    new_p = min(q * off * (1 - done) / (1 - q * done), 0.95)
                    changes.append((t, 1, name, DAY + day, "rescore", p, new_p, who))
                    p = new_p
                if at is not None:
                    changes.append((at, 2, name, DAY + day, "reach", p, p, who))
                else:
                    changes.append((entry + window, 2, name, DAY + day, "drop", p, p, who))
    changes.sort()
    return changes


def play(changes: list, **settings) -> tuple[CohortForecast, list, list, list]:
    """Feed the changes; every row, alert and quality record."""
    f = CohortForecast(exact_limit=0, **settings)  # moments only: fast
    rows, alerts = [], []
    for ts, _, flow, day, kind, old_p, new_p, _ in changes:
        r, _, a = f.advance(ts)
        rows += r
        alerts += a
        if kind == "enter":
            f.enter(flow, day, new_p, ts)
        elif kind == "rescore":
            f.rescore(flow, day, old_p, new_p, ts)
        else:
            getattr(f, kind)(flow, day, old_p, ts)
    r, _, a = f.advance(changes[-1][0] + 10 * DAY_MS)
    return f, rows + r, alerts + a, f.take_quality()


def coverage(quality: list, horizon: int, first_day: int) -> tuple[float, float, float]:
    graded = [q for q in quality if q.horizon_days == horizon and q.cohort_day >= first_day]
    return (sum(q.in80 for q in graded) / len(graded), sum(q.in95 for q in graded)
            / len(graded), sum(abs(q.rel_error) for q in graded) / len(graded))


def test_intervals_cover_about_nominal_when_the_propensities_are_off():
    """p's off by a per-cohort factor around 1.4 (log sd 0.25): the noise alone covers
    rarely; the track record learns the spread and the combination the level (seeded)."""
    changes = journeys(11, factor=lambda flow, day, rng: 1.4 * math.exp(rng.gauss(0, 0.25)))
    _, _, _, noise_only = play(changes, error_prior_sd=0.0, combine_baselines=False,
                               error_cohorts=0)
    _, _, _, learnt = play(changes)
    first = DAY + 8  # once a week of cohorts was graded
    for horizon in (1, 2, 3):
        raw80, raw95, raw_err = coverage(noise_only, horizon, first)
        in80, in95, err = coverage(learnt, horizon, first)
        assert raw80 < 0.5 and raw95 < 0.7, (horizon, raw80, raw95)
        # (66 cohorts: a coverage measured on them is ±5 points by itself)
        assert 0.65 <= in80 <= 0.92 and 0.88 <= in95 <= 1.0, (horizon, in80, in95)
        assert err < raw_err  # and the point forecast is better: the baselines


def test_nearly_right_propensities_keep_narrow_intervals_once_learnt():
    """The p's right at entry and at each daily rescore (a little high in between): the
    learnt spread shrinks towards none, coverage stays near nominal, and the model keeps
    a weight of at least a third against the recent cohorts' rate and the trailing score."""
    f, _, _, quality = play(journeys(12))
    in80, in95, _ = coverage(quality, 1, DAY + 8)
    assert 0.7 <= in80 <= 0.92 and 0.88 <= in95 <= 1.0, (in80, in95)
    record = f.track_record("f0")[1]  # residuals about as big as the noise: what is left
    assert record.cohorts == 6 and record.sd < 0.18 and record.weights[0] > 0.3  # the prior's


def test_prior_spread_while_nothing_is_graded():
    """A new flow: nothing graded yet, the prior's spread (and the model alone); with a
    prior of 0 the noise interval given the p's, exactly."""
    rows = {}
    for sd in (0.0, 0.3, 0.6):
        f = CohortForecast(error_prior_sd=sd, exact_limit=10**6)
        for i in range(200):
            f.enter("new", DAY, 0.1 + (i % 5) * 0.05, T0 + i)
        f.advance(T0 + 30 * HOUR_MS)  # past the first day boundary: a snapshot, no grade
        assert f.track_record("new")[1] == TrackRecord(0.0, sd, (1.0, 0.0, 0.0), sd, None, 0, sd)
        rows[sd] = f.advance(T0 + 31 * HOUR_MS)[0][0]
    exact = exact_quantiles(poisson_binomial_pmf([0.1 + (i % 5) * 0.05 for i in range(200)]))
    assert [rows[0.0].lo80, rows[0.0].hi80, rows[0.0].lo95, rows[0.0].hi95] == [
        q / 200 for q in exact]
    assert len({r.forecast_score for r in rows.values()}) == 1  # the point: the model's
    for narrow, wide in ((rows[0.0], rows[0.3]), (rows[0.3], rows[0.6])):
        assert wide.lo95 < narrow.lo95 < narrow.hi95 < wide.hi95
        assert wide.lo80 < narrow.lo80 < narrow.hi80 < wide.hi80
    r = rows[0.3]  # noise and prior in quadrature, on the log scale of the open count + 1
    noise = math.log((exact[1] + 1) / (r.expected_converged + 1))
    z = NormalDist().inv_cdf(0.9)
    assert r.hi80 * 200 == pytest.approx(
        (r.expected_converged + 1) * math.exp(math.hypot(noise, z * 0.3)) - 1)


def test_a_drifting_model_is_followed_with_a_lag():
    """The p's go from 0.4× to 3.3× the truth over 30 days: the noise alone never covers;
    the track record (a week of graded snapshots, early evidence) covers most of the time
    and the recent cohorts' rate keeps the point error a fraction of the model's."""
    changes = journeys(11, factor=lambda flow, day, rng: 0.4 + 0.1 * day)
    _, _, _, noise_only = play(changes, error_prior_sd=0.0, combine_baselines=False,
                               error_cohorts=0)
    _, _, _, learnt = play(changes)
    for horizon in (1, 2, 3):
        raw80, raw95, raw_err = coverage(noise_only, horizon, DAY + 8)
        in80, in95, err = coverage(learnt, horizon, DAY + 8)
        assert raw95 < 0.2 and in80 > 0.55 and in95 > 0.85, (horizon, in80, in95)
        assert err < raw_err / 2


def test_early_evidence_grades_snapshots_before_any_cohort_closed():
    g = CohortForecast(exact_limit=0)  # six days of cohorts: the first closes on day 8
    for ts, _, flow, day, kind, old_p, new_p, _ in journeys(13, days=6):
        if ts >= (DAY + 6) * DAY_MS:
            break
        g.advance(ts)
        if kind == "enter":
            g.enter(flow, day, new_p, ts)
        elif kind == "rescore":
            g.rescore(flow, day, old_p, new_p, ts)
        else:
            getattr(g, kind)(flow, day, old_p, ts)
    g.advance((DAY + 6) * DAY_MS)
    assert g._closed == {}  # nothing closed
    record = g.track_record("f0")[1]
    assert 1 <= record.cohorts <= 4 and record.rate is not None and record.rate > 0


@pytest.mark.parametrize("settings", [{}, {"correct_bias": True},
                                      {"combine_baselines": False, "error_prior_sd": 0.0},
                                      {"error_prior_sd": 1.5, "error_cohorts": 2}])
def test_interval_always_holds_the_forecast_nested_within_what_can_happen(settings):
    changes = journeys(14, flows=2, days=16, n=60,
                       factor=lambda flow, day, rng: rng.choice([0.3, 1.0, 3.0]))
    _, rows, _, _ = play(changes, **settings)
    assert rows
    for r in rows:
        assert r.converged / r.entered <= r.lo95 <= r.lo80 <= r.forecast_score <= r.hi80 \
            <= r.hi95 <= 1.0, r
        assert r.converged <= r.expected_converged <= r.entered  # converged + Σp


def test_a_cohort_falling_behind_still_alerts_though_the_forecast_leans_on_other_cohorts():
    """Steady flow, then one cohort converging a third as much (and its p's say so): the
    published forecast is pulled towards the trailing score, the alert judges without it
    (the model and the recent cohorts' rate) and fires within two days, once; no other
    cohort alerts."""
    bad = DAY + 20
    changes = journeys(15, flows=1, days=24, n=300,
                       factor=lambda flow, day, rng: math.exp(rng.gauss(0, 0.1)),
                       rate=lambda flow, day: 0.07 if day == 20 else 0.2)
    f, rows, alerts, _ = play(changes, min_entered=50)
    assert f.track_record("f0")[1].weights[0] < 0.9  # the combination is on
    assert [(a.cohort_day, a.as_of_ms <= (bad + 2) * DAY_MS) for a in alerts] == [(bad, True)]
    alert = alerts[0]
    published = [r for r in rows if r.cohort_day == bad and r.as_of_ms == alert.as_of_ms][0]
    assert alert.hi80 < alert.trailing_score * 0.8
    assert alert.forecast_score < published.forecast_score  # the model's, not pulled up


def test_fit_track_record_weighs_by_inverse_squared_error():
    """Model errors ±0.4, the recent rate's 0.1, no trailing score yet (weight 0)."""
    residuals = [Residual(d, 100, 0.4 * (-1) ** d, 0.0, 0.1, None, 0.2) for d in range(6)]
    rec = fit_track_record(residuals, 0.3, 2)
    mse_model = (2 * 0.09 + 6 * 0.16) / 8
    mse_recent = (2 * 0.09 + 6 * 0.01) / 8
    w = mse_recent / (mse_model + mse_recent)
    assert rec.weights == pytest.approx((w, 1 - w, 0.0))
    assert rec.bias == 0.0 and rec.rate == pytest.approx(0.2) and rec.cohorts == 6
    combined = sum((w * e + (1 - w) * 0.1) ** 2 for e in (0.4, -0.4, 0.4, -0.4, 0.4, -0.4))
    assert rec.sd == pytest.approx(math.sqrt((2 * 0.09 + combined) / 8 * (1 + 1 / 8)))
    # three estimators: inverse squared errors, each residual combining what it had
    three = [r._replace(trailing=0.2) for r in residuals[:3]] + residuals[3:]
    inverse = [8 / (2 * 0.09 + 6 * 0.16), 8 / (2 * 0.09 + 6 * 0.01), 5 / (2 * 0.09 + 3 * 0.04)]
    assert fit_track_record(three, 0.3, 2).weights == pytest.approx(
        tuple(x / sum(inverse) for x in inverse))
    # Bernoulli noise is not counted twice: residuals that are all noise leave the prior
    noisy = [Residual(d, 100, 0.2 * (-1) ** d, 0.04, None, None, 0.2) for d in range(6)]
    assert fit_track_record(noisy, 0.3, 2).sd_model == pytest.approx(
        math.sqrt(2 * 0.09 / 8 * (1 + 1 / 8)))
    assert fit_track_record(noisy, 0.0, 2).sd_model == pytest.approx(0.0, abs=1e-6)


def test_rows_with_a_track_record_do_not_depend_on_the_order_within_an_hour():
    """Snapshots, grades and fits are made from the state at day boundaries (exact sums):
    the changes of each hour in another order (each recipient's own kept) give the same
    rows to the last bit, across weeks of cohorts with a track record."""
    changes = journeys(16, flows=2, days=12, n=80,
                       factor=lambda flow, day, rng: rng.choice([0.5, 1.0, 2.0]))
    rng = random.Random(1)
    key = {}
    shuffled = sorted(changes, key=lambda c: (
        c[0] // HOUR_MS, key.setdefault((c[2], c[3], c[7]), rng.random()), c[0], c[1]))
    assert shuffled != changes
    first, second = play(changes), play(shuffled)
    assert first[0].track_record("f0")[1].cohorts > 0
    assert first[1] == second[1] and first[2] == second[2] and first[3] == second[3]


def test_an_alert_is_not_raised_again_while_the_forecast_stays_below():
    """hi80 crossing the threshold back and forth while the forecast stays below it is one
    fall, one alert; the forecast itself back at the threshold re-arms it."""
    f = CohortForecast(alert_margin=0.2, min_entered=50, error_prior_sd=0.0)
    close_cohorts(f, "welcome", DAY, 4, n=100, converged=30)  # threshold 0.24
    day = DAY + 11
    t = day * DAY_MS
    f.advance(t)
    for _ in range(100):
        f.enter("welcome", day, 0.1, t)  # forecast 0.1, hi80 below 0.24
    alerts = f.advance(t + HOUR_MS)[2]
    assert len(alerts) == 1
    for _ in range(40):  # hi80 back above the threshold, the forecast (0.22) still below
        f.rescore("welcome", day, 0.1, 0.4, t + HOUR_MS)
    _, _, alerts = f.advance(t + 2 * HOUR_MS)
    for _ in range(40):
        f.rescore("welcome", day, 0.4, 0.1, t + 2 * HOUR_MS)
    _, _, again = f.advance(t + 3 * HOUR_MS)
    assert alerts == again == []
    for _ in range(60):  # recovered: the forecast above the threshold; then falls again
        f.rescore("welcome", day, 0.1, 0.5, t + 3 * HOUR_MS)
    assert f.advance(t + 4 * HOUR_MS)[2] == []
    for _ in range(60):
        f.rescore("welcome", day, 0.5, 0.1, t + 4 * HOUR_MS)
    assert len(f.advance(t + 5 * HOUR_MS)[2]) == 1


def test_state_pickled_before_the_track_record_carries_on():
    """A restart from a snapshot of the previous version (no track record in it): the
    missing parts start empty (the prior), the cohorts' numbers are recomputed."""
    f = CohortForecast()
    for i in range(50):
        f.enter("f", DAY, 0.2, T0 + i)
    f.advance(T0 + HOUR_MS)
    state = {k: v for k, v in f.__dict__.items()
             if k not in ("_closed", "_fits", "error_prior_sd", "error_prior_cohorts",
                          "error_cohorts", "early_share", "combine_baselines",
                          "correct_bias")}
    old = CohortForecast.__new__(CohortForecast)
    old.__setstate__(state)
    for cohort in old._cohorts.values():  # what a cohort of the previous version held
        slots = {k: getattr(cohort, k) for k in ("entered", "converged", "open", "sums", "ps",
                                                 "dirty", "created_ms", "horizons",
                                                 "alerted")}
        del cohort.snaps, cohort.qs
        cohort.__setstate__((None, slots | {"numbers": (0.5,) * 6}))  # old numbers: redone
    g = pickle.loads(pickle.dumps(old))
    rows, _, _ = g.advance(T0 + 2 * DAY_MS)
    assert rows[-1] == f.advance(T0 + 2 * DAY_MS)[0][-1]
    assert g.track_record("f")[1].cohorts == 0


def test_rescoring_a_group_at_once_equals_rescoring_its_members_one_by_one():
    one, many = CohortForecast(), CohortForecast()
    for f in (one, many):
        for i in range(150):  # exact (at most 200 open)
            f.enter("f", DAY, 0.25 if i < 60 else 0.125, T0 + i)
    for _ in range(60):
        one.rescore("f", DAY, 0.25, 0.0625, T0 + 500)
    many.rescore_many("f", DAY, 0.25, 0.0625, 60, T0 + 500)
    rows_one, rows_many = one.advance(T0 + 2 * HOUR_MS)[0], many.advance(T0 + 2 * HOUR_MS)[0]
    assert rows_one == rows_many and rows_one
    assert rows_one[0].expected_converged == pytest.approx(60 * 0.0625 + 90 * 0.125)
    many.rescore_many("f", DAY, 0.5, 0.25, 1, T0 + 600)  # a p it does not hold
    assert many.stats()["mismatched"] == 1
