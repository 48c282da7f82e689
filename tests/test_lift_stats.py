"""The statistics of lift (operators/lift_stats.py): against published and hand-worked
numbers, and against seeded simulation (coverage, peeking, sample-ratio mismatch, power).

Every simulation draws from numpy's default_rng with a fixed seed, so each outcome is
the same on every run; the bounds leave room for simulation error at 2,000 draws.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from operators.lift_stats import (
    MIXTURE_SD,
    SRM_ALARM_P,
    Arm,
    always_valid_diff,
    estimate,
    mde,
    newcombe_diff,
    plan,
    srm_p,
    t_quantile,
    welch_diff,
    wilson,
)

SIMS = 2000


def covers(lo: float, hi: float, truth: float) -> bool:
    return lo <= truth <= hi


# ---------------------------------------------------------------- hand computations

@pytest.mark.parametrize("x, n, lo, hi", [
    # Newcombe (1998, Stat Med 17:857), Table I, method 3 (Wilson score, no correction)
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718)])
def test_wilson_matches_newcombes_published_examples(x, n, lo, hi):
    got = wilson(x, n)
    assert (round(got[0], 4), round(got[1], 4)) == (lo, hi)


@pytest.mark.parametrize("x1, n1, x0, n0, lo, hi", [
    # Newcombe (1998, Stat Med 17:873), Table II, method 10 (hybrid score)
    (56, 70, 48, 80, 0.0524, 0.3339), (9, 10, 3, 10, 0.1705, 0.8090),
    (5, 56, 0, 29, -0.0381, 0.1926), (0, 10, 0, 20, -0.1611, 0.2775),
    (0, 10, 0, 10, -0.2775, 0.2775), (10, 10, 0, 20, 0.6791, 1.0),
    (10, 10, 0, 10, 0.6075, 1.0)])
def test_newcombe_matches_newcombes_published_examples(x1, n1, x0, n0, lo, hi):
    got = newcombe_diff(x1, n1, x0, n0)
    assert (round(got[0], 4), round(got[1], 4)) == (lo, hi)


def test_t_quantiles_match_the_tables():
    assert [round(t_quantile(0.975, df), 4) for df in (1, 2, 3, 4, 10, 30, 120)] == [
        12.7062, 4.3027, 3.1824, 2.7764, 2.2281, 2.0423, 1.9799]
    assert round(t_quantile(0.95, 5), 4) == 2.0150
    assert round(t_quantile(0.025, 10), 4) == -2.2281


def test_welch_matches_a_hand_worked_example():
    treated = [0.0, 0.0, 10.0, 20.0]      # mean 7.5, variance (500 - 4 * 7.5**2) / 3
    control = [0.0, 5.0, 5.0]             # mean 10/3, variance (50 - 3 * (10/3)**2) / 2
    v1, v0 = (500 - 4 * 7.5 ** 2) / 3, (50 - 3 * (10 / 3) ** 2) / 2
    assert (round(v1, 4), round(v0, 4)) == (91.6667, 8.3333)
    se = math.sqrt(v1 / 4 + v0 / 3)
    df = (v1 / 4 + v0 / 3) ** 2 / ((v1 / 4) ** 2 / 3 + (v0 / 3) ** 2 / 2)
    assert (round(se, 4), round(df, 3)) == (5.069, 3.69)
    t = t_quantile(0.975, df)
    assert 2.7764 < t < 3.1824             # between the table's 4 and 3 degrees of freedom
    lo, hi = welch_diff(len(treated), sum(treated), sum(v * v for v in treated),
                        len(control), sum(control), sum(v * v for v in control))
    diff = 7.5 - 10 / 3
    assert lo == pytest.approx(diff - t * se, abs=1e-9)
    assert hi == pytest.approx(diff + t * se, abs=1e-9)
    assert (round(lo, 2), round(hi, 2)) == (-10.39, 18.72)


def test_welch_agrees_with_the_textbook_example():
    """Welch's t of the two samples in Wikipedia's "Welch's t-test" example 2:
    t = -2.22, df = 16.1 (printed rounded); our interval's t statistic and width."""
    a1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0,
          21.7, 21.4]
    a2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9,
          20.5, 24.4]
    lo, hi = welch_diff(len(a1), sum(a1), sum(v * v for v in a1),
                        len(a2), sum(a2), sum(v * v for v in a2))
    m1, m2 = np.mean(a1), np.mean(a2)
    se = math.sqrt(np.var(a1, ddof=1) / len(a1) + np.var(a2, ddof=1) / len(a2))
    assert round((m1 - m2) / se, 2) == -2.46
    half = (hi - lo) / 2
    assert (lo + hi) / 2 == pytest.approx(m1 - m2)
    # df = 24.99 here: t(0.975, 25) = 2.0595
    assert round(half / se, 3) == 2.060


def test_srm_matches_a_hand_computation():
    # 10,200 assigned at 50% expect 5,100 in each arm
    chi2 = (5_200 - 5_100) ** 2 / 5_100 + (5_000 - 5_100) ** 2 / 5_100
    assert round(chi2, 4) == 3.9216
    assert srm_p(5_000, 5_200, 0.5) == pytest.approx(math.erfc(math.sqrt(chi2 / 2)))
    assert round(srm_p(5_000, 5_200, 0.5), 4) == 0.0477
    assert srm_p(9_000, 1_000, 0.1) == 1.0      # exactly the expected split
    # 90/10 expected, 10,000 assigned, control 900: chi2 = 100^2/1000 + 100^2/9000
    assert srm_p(9_100, 900, 0.1) == pytest.approx(math.erfc(math.sqrt((10 + 10 / 9) / 2)))


# ---------------------------------------------------------------- edge cases

def test_degenerate_arms_never_raise_and_say_nan_or_zero_width():
    empty = estimate(Arm(), Arm(), 0, 0, 0.1)
    assert math.isnan(empty.treated_rate) and math.isnan(empty.abs_lo95)
    assert math.isnan(empty.av_lo95) and math.isnan(empty.value_lo95)
    assert not empty.significant and not empty.srm_alarm and empty.srm_p == 1.0

    zero = estimate(Arm(n=500), Arm(n=50), 500, 50, 0.1)   # nobody converted anywhere
    assert zero.abs_lift == 0.0 and zero.abs_lo95 < 0.0 < zero.abs_hi95
    assert math.isnan(zero.rel_lift) and not zero.significant
    assert (zero.value_lo95, zero.value_hi95) == (0.0, 0.0)  # no variance: zero width

    everyone = estimate(Arm(n=40, conv=40), Arm(n=40, conv=40), 40, 40, 0.5)
    assert everyone.abs_lift == 0.0 and everyone.abs_lo95 < 0.0 < everyone.abs_hi95
    assert everyone.rel_lift == 0.0

    unknown_share = estimate(Arm(n=100, conv=5), Arm(n=1, conv=0), 100, 1, 0.0)
    assert unknown_share.srm_p == 1.0 and not unknown_share.srm_alarm
    assert math.isnan(unknown_share.value_lo95)               # one control recipient

    for n1, x1, n0, x0 in [(0, 0, 10, 3), (10, 3, 0, 0), (1, 1, 1, 0), (1, 0, 1, 1),
                           (2, 2, 2, 0), (10**7, 0, 10**7, 10**7)]:
        estimate(Arm(n=n1, conv=x1, value=float(x1), value_sq=float(x1)),
                 Arm(n=n0, conv=x0), n1, n0, 0.5)
    assert wilson(0, 0) == wilson(0, -1)
    # bad sums (more conversions than recipients, infinite or nan value) do not raise
    lo, hi = always_valid_diff(11, 10, 6, 5)
    assert lo <= 0.0 <= hi
    assert newcombe_diff(11, 10, -1, 5) == newcombe_diff(10, 10, 0, 5)
    for value, value_sq in ((math.inf, math.inf), (math.nan, 1.0), (1e300, 1e300)):
        estimate(Arm(n=10, conv=12, value=value, value_sq=value_sq), Arm(n=10, conv=1),
                 10, 10, 0.5)


def test_the_always_valid_interval_is_wider_than_the_fixed_one():
    rng = np.random.default_rng(7)
    for _ in range(500):
        n1, n0 = (int(v) for v in rng.integers(1, 50_000, size=2))
        p = rng.uniform(0, 0.2)
        x1, x0 = int(rng.binomial(n1, p)), int(rng.binomial(n0, p))
        lo, hi = newcombe_diff(x1, n1, x0, n0)
        av_lo, av_hi = always_valid_diff(x1, n1, x0, n0)
        assert av_lo <= lo and hi <= av_hi and av_hi - av_lo > hi - lo


def test_significant_follows_the_always_valid_interval_only():
    # the fixed interval excludes 0, the always-valid one does not: not significant
    est = estimate(Arm(n=18_000, conv=900), Arm(n=2_000, conv=80), 18_000, 2_000, 0.1)
    assert est.abs_lo95 > 0.0 and est.av_lo95 < 0.0 and not est.significant
    big = estimate(Arm(n=180_000, conv=9_000), Arm(n=20_000, conv=800), 180_000, 20_000, 0.1)
    assert big.av_lo95 > 0.0 and big.significant
    assert big.incremental_conversions == pytest.approx(0.01 * 180_000)
    assert big.rel_lift == pytest.approx(0.25)


# ---------------------------------------------------------------- coverage by simulation

@pytest.mark.parametrize("p0, effect, n, share", [
    (0.03, 0.01, 20_000, 0.1), (0.05, 0.0, 4_000, 0.5), (0.01, 0.005, 30_000, 0.2),
    (0.20, 0.05, 1_000, 0.5)])
def test_the_fixed_interval_covers_the_true_difference_95_percent(p0, effect, n, share):
    rng = np.random.default_rng(1000 + int(p0 * 1000) + n)
    n0 = int(n * share)
    n1 = n - n0
    x1s = rng.binomial(n1, p0 + effect, size=SIMS)
    x0s = rng.binomial(n0, p0, size=SIMS)
    hits = sum(covers(*newcombe_diff(int(a), n1, int(b), n0), effect)
               for a, b in zip(x1s, x0s, strict=True))
    assert 0.93 <= hits / SIMS <= 0.97


def simulate_value(rng: np.random.Generator, n: int, rate: float, mu: float, sigma: float
                   ) -> tuple[float, float]:
    """Sum and sum of squares of value over n recipients: converters spend lognormal."""
    values = rng.lognormal(mu, sigma, size=int(rng.binomial(n, rate)))
    return float(values.sum()), float((values * values).sum())


@pytest.mark.parametrize("n1, n0, rate1, rate0, mu1, mu0, sigma, least", [
    # 10% control, orders lognormal (median 55, mean 90): 200 converters in control
    (45_000, 5_000, 0.045, 0.04, 4.0, 4.0, 1.0, 0.93),
    (10_000, 10_000, 0.03, 0.03, 3.5, 3.6, 0.8, 0.93),  # 50/50, no effect on the rate
    # Known limit, measured (6,000 sims: 93.3%): with only 80 converters in control the
    # skew of the values shows and Welch covers about 93%, not 95%
    (18_000, 2_000, 0.045, 0.04, 4.0, 4.0, 1.0, 0.92)])
def test_welch_covers_revenue_per_recipient_with_skewed_values(n1, n0, rate1, rate0,
                                                               mu1, mu0, sigma, least):
    rng = np.random.default_rng(n1 + n0)
    mean = [math.exp(mu + sigma * sigma / 2) for mu in (mu1, mu0)]
    truth = rate1 * mean[0] - rate0 * mean[1]
    hits = 0
    for _ in range(SIMS):
        s1, q1 = simulate_value(rng, n1, rate1, mu1, sigma)
        s0, q0 = simulate_value(rng, n0, rate0, mu0, sigma)
        hits += covers(*welch_diff(n1, s1, q1, n0, s0, q0), truth)
    assert least <= hits / SIMS <= 0.97


# ---------------------------------------------------------------- peeking

LOOKS = 30


def daily_counts(rng: np.random.Generator, daily1: int, daily0: int, p1: float, p0: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative conversions per simulation (rows) after each of LOOKS days (columns)."""
    x1 = rng.binomial(daily1, p1, size=(SIMS, LOOKS)).cumsum(axis=1)
    x0 = rng.binomial(daily0, p0, size=(SIMS, LOOKS)).cumsum(axis=1)
    return x1, x0


def stops_early(x1: np.ndarray, x0: np.ndarray, daily1: int, daily0: int, interval) -> float:
    """Share of simulations stopped at the first daily look where 0 is excluded."""
    stopped = 0
    for sim in range(SIMS):
        for day in range(LOOKS):
            lo, hi = interval(int(x1[sim, day]), daily1 * (day + 1),
                              int(x0[sim, day]), daily0 * (day + 1))
            if lo > 0 or hi < 0:
                stopped += 1
                break
    return stopped / SIMS


@pytest.mark.parametrize("p, daily1, daily0", [(0.03, 900, 100), (0.05, 300, 300),
                                               (0.01, 950, 50)])  # half a control conversion a day
def test_peeking_daily_keeps_the_always_valid_error_rate_under_5_percent(p, daily1, daily0):
    rng = np.random.default_rng(int(p * 100) + daily0)
    x1, x0 = daily_counts(rng, daily1, daily0, p, p)      # no effect
    always_valid = stops_early(x1, x0, daily1, daily0, always_valid_diff)
    naive = stops_early(x1, x0, daily1, daily0, newcombe_diff)
    assert always_valid <= 0.06
    # the same looks at the fixed interval: a false "effect" far more often than 5%
    assert naive >= 0.12, naive


def test_under_an_effect_the_always_valid_interval_covers_at_every_look():
    p0, effect, daily1, daily0 = 0.04, 0.01, 800, 200
    rng = np.random.default_rng(2026)
    x1, x0 = daily_counts(rng, daily1, daily0, p0 + effect, p0)
    always = 0
    for sim in range(SIMS):
        always += all(covers(*always_valid_diff(int(x1[sim, d]), daily1 * (d + 1),
                                                int(x0[sim, d]), daily0 * (d + 1)), effect)
                      for d in range(LOOKS))
    assert always / SIMS >= 0.95
    # and it finds the effect by the last look in most simulations
    found = sum(always_valid_diff(int(x1[s, -1]), daily1 * LOOKS, int(x0[s, -1]),
                                  daily0 * LOOKS)[0] > 0 for s in range(SIMS))
    assert found / SIMS > 0.5


def test_an_arm_with_a_handful_of_conversions_borrows_the_pooled_variance():
    """1% of 9,500 treated converted, none of 500 in control (4.8 expected at the pooled
    rate): the fixed interval excludes 0, and the control's own plug-in variance (about
    0% of 500) would too; at the pooled rate's variance the always-valid one does not."""
    assert newcombe_diff(95, 9_500, 0, 500)[0] > 0.0
    lo, hi = always_valid_diff(95, 9_500, 0, 500)
    assert lo < 0.0 < hi
    # with enough conversions the arm's own rate is used: about 48 expected, no floor
    lo, _ = always_valid_diff(950, 95_000, 20, 5_000)
    assert lo > 0.0


def test_the_mixture_is_tuned_for_differences_of_a_few_points():
    assert MIXTURE_SD == 0.01
    # at the horizon where a 1 pp lift is detected the interval is ~1.6x the fixed one,
    # not many times it
    n1 = n0 = 8_000
    lo, hi = always_valid_diff(480, n1, 400, n0)
    flo, fhi = newcombe_diff(480, n1, 400, n0)
    assert 1.3 < (hi - lo) / (fhi - flo) < 1.8


# ---------------------------------------------------------------- sample-ratio mismatch

@pytest.mark.parametrize("assigned, share", [(10_000, 0.1), (50_000, 0.05), (4_000, 0.5)])
def test_a_third_of_the_control_lost_raises_the_srm_alarm(assigned, share):
    control = round(assigned * share)
    treated = assigned - control
    lost = control - control // 3                             # a third of the records gone
    assert srm_p(treated, lost, share) < SRM_ALARM_P
    est = estimate(Arm(n=treated, conv=treated // 20), Arm(n=lost, conv=lost // 25),
                   treated, lost, share)
    assert est.srm_alarm


@pytest.mark.parametrize("assigned, share", [(10_000, 0.1), (200_000, 0.05), (3_000, 0.5)])
def test_an_honest_split_rarely_alarms(assigned, share):
    rng = np.random.default_rng(assigned)
    controls = rng.binomial(assigned, share, size=SIMS)
    alarms = sum(srm_p(assigned - int(c), int(c), share) < SRM_ALARM_P for c in controls)
    assert alarms / SIMS <= 0.01


# ---------------------------------------------------------------- planner

@pytest.mark.parametrize("baseline, lift, share", [(0.05, 0.01, 0.5), (0.03, 0.01, 0.1),
                                                   (0.10, 0.02, 0.2)])
def test_the_plan_gives_the_asked_power(baseline, lift, share):
    the_plan = plan(baseline, lift, share)
    assert the_plan.control + the_plan.treated == the_plan.total
    assert the_plan.control / the_plan.total == pytest.approx(share, abs=1e-3)
    rng = np.random.default_rng(int(baseline * 1000) + int(share * 100))
    x1s = rng.binomial(the_plan.treated, baseline + lift, size=SIMS)
    x0s = rng.binomial(the_plan.control, baseline, size=SIMS)
    detected = sum(newcombe_diff(int(a), the_plan.treated, int(b), the_plan.control)[0] > 0
                   for a, b in zip(x1s, x0s, strict=True))
    assert abs(detected / SIMS - 0.8) <= 0.03
    # the always-valid reading needs more, and gets at least the power at its own n
    assert 1.5 < the_plan.av_inflation < 2.5
    x1s = rng.binomial(the_plan.av_treated, baseline + lift, size=SIMS)
    x0s = rng.binomial(the_plan.av_control, baseline, size=SIMS)
    detected = sum(always_valid_diff(int(a), the_plan.av_treated, int(b),
                                     the_plan.av_control)[0] > 0
                   for a, b in zip(x1s, x0s, strict=True))
    assert detected / SIMS >= 0.77


def test_mde_inverts_the_plan_and_bad_inputs_give_nothing():
    the_plan = plan(0.04, 0.008, 0.1, alpha=0.05, power=0.9)
    assert mde(the_plan.total, 0.1, 0.04, 0.05, 0.9) == pytest.approx(0.008, rel=1e-3)
    assert mde(4 * the_plan.total, 0.1, 0.04, 0.05, 0.9) < 0.008
    assert plan(0.04, 0.0, 0.1).total == 0 and math.isnan(plan(0.04, 0.0, 0.1).av_inflation)
    assert plan(0.04, 0.01, 1.0).total == 0
    assert plan(0.0, 0.01, 0.1).total == 0
    assert math.isnan(mde(0, 0.1, 0.04)) and math.isnan(mde(1000, 0.1, 1.0))


def test_a_broken_split_is_never_significant():
    from operators.lift_stats import Arm, estimate

    treated, control = Arm(n=9000, conv=900), Arm(n=1000, conv=50)
    sound = estimate(treated, control, 9000, 1000, 0.1)
    assert sound.significant and not sound.srm_alarm
    broken = estimate(treated, control, 9000, 600, 0.1)  # 400 control holdouts lost
    assert broken.srm_alarm and not broken.significant
