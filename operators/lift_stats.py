"""The statistics of lift: what a mail caused, measured against a control group.

Pure functions of counts and sums (no state, no clock). Each arm of a flow is
summarised by an `Arm` (recipients whose outcome window has closed, how many
converted, their conversion value and its sum of squares, guardrail counts);
`estimate` turns the two arms and the assignment counts into a `LiftEstimate`.

Intervals, all 95% by default:

- `newcombe_diff`: the hybrid score interval of Newcombe (1998, Stat Med 17:873,
  method 10) for a difference of proportions, built from two `wilson` intervals.
  It is right for one look at a planned horizon.
- `always_valid_diff`: a normal-mixture confidence sequence (the mixture SPRT of
  Johari, Pekelis & Walsh, "Always valid inference", and Howard et al.,
  "Time-uniform, nonparametric, nonasymptotic confidence sequences"). It holds
  at every look simultaneously, so it may be read daily as the data accrue;
  `significant` and any automatic decision use only this one.
- `welch_diff`: Welch's interval for the difference of value per recipient (the t
  quantile at the Welch-Satterthwaite degrees of freedom), robust to unequal
  variances. Value is skewed, so it is an approximation: with lognormal order values
  (sigma 1) it covers about 95% with 400 converters in the smaller arm, 94% with 200
  and 93% with 50 to 80 (tests/test_lift_stats.py).
- `srm_p`: the sample-ratio-mismatch test (chi-square, one degree of freedom) of
  the assigned counts against the configured control share. A broken split (lost
  holdout events, a sender skipping the assignment) makes every lift meaningless.

`plan` and `mde` size a control group for a fixed-horizon two-sided test, and say
roughly what the always-valid reading needs.

Degenerate input never raises: an arm without recipients gives nan rates and nan
intervals; a difference of two certain rates (0% or 100% in both arms) still has a
score interval; value with zero variance in both arms gives a zero-width interval.

>>> est = estimate(Arm(n=18_000, conv=900), Arm(n=2_000, conv=80), 18_000, 2_000, 0.1)
>>> round(est.abs_lift, 4), round(est.abs_lo95, 4), round(est.abs_hi95, 4)
(0.01, 0.0, 0.0184)
>>> est.av_lo95 < est.abs_lo95, est.significant, est.srm_alarm  # 0 is still plausible
(True, False, False)
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import NamedTuple

_NORMAL = NormalDist()
Z95 = _NORMAL.inv_cdf(0.975)  # 1.959963984540054

#: Standard deviation of the normal mixture over the true difference of conversion rates
#: in `always_valid_diff`: 1 percentage point. The interval is narrowest (about 1.55 times
#: the fixed one) when the variance of the estimate is about tau**2 / 8, i.e. near the
#: sample size at which an effect of about tau is detected; the width grows only with the
#: log of the mismatch, so 1 pp serves effects from 0.1 to 5 pp (it is their geometric
#: middle, within a factor of 10 of either end).
MIXTURE_SD = 0.01

#: Below this many expected conversions (at the pooled rate) an arm's variance in
#: `always_valid_diff` is at least the pooled rate's, not its own noisy estimate.
FEW_CONVERSIONS = 10

#: SRM alarm threshold: below it the split is called broken (issue 19).
SRM_ALARM_P = 0.001

NAN = float("nan")


class Arm(NamedTuple):
    """One arm's sums over recipients whose window closed."""

    n: int = 0                  # recipients
    conv: int = 0               # recipients who converted within the window
    value: float = 0.0          # sum of conversion value within the window
    value_sq: float = 0.0       # sum over recipients of (their value within the window) ** 2
    unsub: int = 0              # recipients who unsubscribed within the window (guardrail)
    complaint: int = 0          # ... complained
    clicks: int = 0             # ... clicked as a human (secondary, treated only meaningful)


class LiftEstimate(NamedTuple):
    """Everything the `lift` table and `mailflow lift` show about one flow and window."""

    treated_rate: float
    control_rate: float
    abs_lift: float
    abs_lo95: float
    abs_hi95: float
    av_lo95: float
    av_hi95: float
    rel_lift: float
    incremental_conversions: float
    treated_value_per: float
    control_value_per: float
    value_lift: float
    value_lo95: float
    value_hi95: float
    incremental_value: float
    srm_p: float
    srm_alarm: bool
    significant: bool
    treated_unsub_rate: float
    treated_complaint_rate: float
    control_unsub_rate: float
    control_complaint_rate: float
    treated_click_rate: float


class Plan(NamedTuple):
    """Recipients a fixed-horizon test needs, and roughly the always-valid reading's."""

    baseline_rate: float
    mde_abs: float
    control_share: float
    alpha: float
    power: float
    total: int                  # recipients in both arms together (fixed horizon)
    control: int
    treated: int
    av_total: int               # the always-valid interval excludes 0 with `power` at the end
    av_control: int
    av_treated: int
    av_inflation: float         # av_total / total


def _rate(x: float, n: float) -> float:
    return x / n if n > 0 else NAN


def wilson(x: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion x/n (no continuity correction).

    Newcombe (1998, Stat Med 17:857) Table I, method 3:

    >>> [tuple(round(b, 4) for b in wilson(x, n)) for x, n in ((81, 263), (15, 148), (0, 20))]
    [(0.2553, 0.3662), (0.0624, 0.1605), (0.0, 0.1611)]

    No trials: no information, (nan, nan).

    >>> wilson(0, 0)
    (nan, nan)
    """
    if n <= 0:
        return NAN, NAN
    p = min(max(x / n, 0.0), 1.0)
    z2 = z * z
    centre = p + z2 / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    denom = 1 + z2 / n
    # clamp: at p = 0 or 1 a bound equals the rate exactly, up to rounding
    return max(0.0, (centre - margin) / denom), min(1.0, (centre + margin) / denom)


def newcombe_diff(x1: int, n1: int, x0: int, n0: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (method 10) for p1 - p0 = x1/n1 - x0/n0.

    Newcombe (1998, Stat Med 17:873), Table II, examples (a) and (b):

    >>> [round(b, 4) for b in newcombe_diff(56, 70, 48, 80)]
    [0.0524, 0.3339]
    >>> [round(b, 4) for b in newcombe_diff(9, 10, 3, 10)]
    [0.1705, 0.809]

    Rates of 0% in both arms still give an interval; an empty arm gives (nan, nan).

    >>> [round(b, 4) for b in newcombe_diff(0, 10, 0, 20)]
    [-0.1611, 0.2775]
    >>> newcombe_diff(3, 10, 0, 0)
    (nan, nan)
    """
    if n1 <= 0 or n0 <= 0:
        return NAN, NAN
    x1, x0 = min(max(x1, 0), n1), min(max(x0, 0), n0)  # more conversions than recipients
    p1, p0 = x1 / n1, x0 / n0
    l1, u1 = wilson(x1, n1, z)
    l0, u0 = wilson(x0, n0, z)
    d = p1 - p0
    return (d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2),
            d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2))


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-14:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """Student's t distribution function, for any real df > 0.

    >>> round(t_cdf(2.228139, 10), 6), t_cdf(0.0, 3.7)
    (0.975, 0.5)
    """
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(q: float, df: float) -> float:
    """Quantile of Student's t (fractional df allowed: Welch); the normal's past 1e7 df.

    >>> [round(t_quantile(0.975, df), 4) for df in (1, 2, 10, 30, 1e9)]
    [12.7062, 4.3027, 2.2281, 2.0423, 1.96]
    """
    if not 0.0 < q < 1.0 or not df > 0:
        return NAN
    if q < 0.5:
        return -t_quantile(1.0 - q, df)
    if df > 1e7:
        return _NORMAL.inv_cdf(q)
    # Newton from the Cornish-Fisher expansion (close for df >= 3), kept inside a
    # bracket that bisection shrinks whenever a step would leave it (df near 1)
    z = _NORMAL.inv_cdf(q)
    t = z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df * df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        lo, hi = hi, hi * 2.0
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    for _ in range(200):
        if not lo < t < hi:
            t = 0.5 * (lo + hi)
        err = t_cdf(t, df) - q
        if err < 0:
            lo = t
        else:
            hi = t
        density = math.exp(log_norm - (df + 1) / 2 * math.log1p(t * t / df))
        step = err / density
        t -= step
        if abs(step) < 1e-12 * max(1.0, abs(t)) or hi - lo < 1e-13 * hi:
            break
    return t


def _mean_var(n: int, total: float, total_sq: float) -> tuple[float, float]:
    mean = total / n
    # guard: rounding can make a zero variance slightly negative
    return mean, max(0.0, (total_sq - total * mean) / (n - 1))


def welch_diff(n1: int, sum1: float, sumsq1: float, n0: int, sum0: float, sumsq0: float,
               alpha: float = 0.05) -> tuple[float, float]:
    """Welch interval for mean1 - mean0 from each arm's n, sum and sum of squares.

    Hand-worked: treated values 0, 0, 10, 20 (mean 7.5, variance 91.67), control 0, 5, 5
    (mean 3.33, variance 8.33): standard error 5.069, 3.69 Welch-Satterthwaite df, t 2.87.

    >>> [round(b, 2) for b in welch_diff(4, 30.0, 500.0, 3, 10.0, 50.0)]
    [-10.39, 18.72]

    Fewer than two recipients in an arm: (nan, nan). No variance in either arm: the
    difference itself, zero width.

    >>> welch_diff(1, 5.0, 25.0, 10, 0.0, 0.0)
    (nan, nan)
    >>> welch_diff(10, 0.0, 0.0, 20, 0.0, 0.0)
    (0.0, 0.0)
    """
    if n1 < 2 or n0 < 2:
        return NAN, NAN
    m1, v1 = _mean_var(n1, sum1, sumsq1)
    m0, v0 = _mean_var(n0, sum0, sumsq0)
    d = m1 - m0
    a1, a0 = v1 / n1, v0 / n0
    se2 = a1 + a0
    if se2 <= 0.0:
        return d, d
    df = se2 * se2 / (a1 * a1 / (n1 - 1) + a0 * a0 / (n0 - 1))
    half = t_quantile(1.0 - alpha / 2.0, df) * math.sqrt(se2)
    return d - half, d + half


def srm_p(treated_n: int, control_n: int, control_share: float) -> float:
    """p-value of the chi-square test (1 dof) of the split against the expected share.

    Hand computation: 5,000 treated and 5,200 control at 50% expect 5,100 each;
    chi-square = 2 * 100**2 / 5,100 = 3.9216, p = 0.0477.

    >>> round(srm_p(5_000, 5_200, 0.5), 4)
    0.0477

    An unknown share (<= 0 or >= 1) or nobody assigned: 1.0, nothing to test.

    >>> srm_p(100, 0, 0.0), srm_p(0, 0, 0.1)
    (1.0, 1.0)
    """
    total = treated_n + control_n
    if total <= 0 or not 0.0 < control_share < 1.0:
        return 1.0
    expected_c = total * control_share
    expected_t = total - expected_c
    chi2 = ((control_n - expected_c) ** 2 / expected_c
            + (treated_n - expected_t) ** 2 / expected_t)
    # chi-square with one degree of freedom is a squared standard normal
    return math.erfc(math.sqrt(chi2 / 2.0))


def _mixture_radius(variance: float, alpha: float, mixture_sd: float) -> float:
    """Half-width of the normal-mixture confidence sequence at estimate variance V:
    sqrt(V (V + tau^2) / tau^2 * (log((V + tau^2) / V) + 2 log(1 / alpha)))."""
    tau2 = mixture_sd * mixture_sd
    return math.sqrt(variance * (variance + tau2) / tau2
                     * (math.log1p(tau2 / variance) + 2.0 * math.log(1.0 / alpha)))


def always_valid_diff(x1: int, n1: int, x0: int, n0: int, alpha: float = 0.05,
                      mixture_sd: float = MIXTURE_SD) -> tuple[float, float]:
    """Always-valid (1 - alpha) confidence sequence for p1 - p0: it covers the true
    difference at every look at once, however often it is read as data accrue.

    The mixture SPRT of Johari, Pekelis & Walsh with a normal mixture N(0, tau^2) over
    the difference (tau = `mixture_sd`, default 1 pp, see `MIXTURE_SD`), around the
    observed difference, with the variance of the estimate plugged in. The plug-in
    rates are Agresti-Caffo's (one success and one failure added per arm) so an arm
    at 0% or 100% still has a variance; while an arm expects fewer than
    `FEW_CONVERSIONS` conversions at the pooled rate, its variance is at least the
    pooled rate's. The interval is never narrower than the fixed
    score interval (`newcombe_diff`): where the normal approximation is poor (few
    conversions) the score bound is taken.

    >>> lo, hi = always_valid_diff(1_100, 20_000, 90, 2_000)
    >>> round(lo, 4), round(hi, 4)
    (-0.0052, 0.0252)
    >>> flo, fhi = newcombe_diff(1_100, 20_000, 90, 2_000)
    >>> lo < flo and fhi < hi
    True
    >>> always_valid_diff(0, 0, 5, 10)
    (nan, nan)
    """
    if n1 <= 0 or n0 <= 0:
        return NAN, NAN
    x1, x0 = min(max(x1, 0), n1), min(max(x0, 0), n0)  # more conversions than recipients
    d = x1 / n1 - x0 / n0
    pooled = (x1 + x0 + 1) / (n1 + n0 + 2)
    variance = 0.0
    for x, n in ((x1, n1), (x0, n0)):
        q = (x + 1) / (n + 2)
        unit = q * (1 - q)
        if pooled * n < FEW_CONVERSIONS:
            # a rate from a handful of conversions is too noisy to plug in: an arm that by
            # chance converted little would get too narrow an interval exactly when its
            # rate looks low (measured: the null error rate under daily peeking at 1%
            # with 50 control recipients a day drops from about 5% to under 2%)
            unit = max(unit, pooled * (1 - pooled))
        variance += unit / n
    radius = _mixture_radius(variance, alpha, mixture_sd)
    flo, fhi = newcombe_diff(x1, n1, x0, n0, _NORMAL.inv_cdf(1.0 - alpha / 2.0))
    return min(d - radius, flo), max(d + radius, fhi)


def estimate(treated: Arm, control: Arm, treated_assigned: int, control_assigned: int,
             expected_control_share: float) -> LiftEstimate:
    """Lift of the treated arm over the control arm (intent-to-treat sums per arm).

    An empty arm gives nan rates, lifts and intervals and `significant` False; the
    SRM test reads the assigned counts (everyone assigned so far) whatever the arms.

    >>> e = estimate(Arm(), Arm(n=10, conv=1), 0, 10, 0.1)
    >>> math.isnan(e.abs_lift), e.significant, round(e.srm_p, 6), e.srm_alarm
    (True, False, 0.0, True)
    """
    t_rate, c_rate = _rate(treated.conv, treated.n), _rate(control.conv, control.n)
    abs_lift = t_rate - c_rate
    lo, hi = newcombe_diff(treated.conv, treated.n, control.conv, control.n)
    av_lo, av_hi = always_valid_diff(treated.conv, treated.n, control.conv, control.n)
    t_value, c_value = _rate(treated.value, treated.n), _rate(control.value, control.n)
    value_lift = t_value - c_value
    v_lo, v_hi = welch_diff(treated.n, treated.value, treated.value_sq,
                            control.n, control.value, control.value_sq)
    p = srm_p(treated_assigned, control_assigned, expected_control_share)
    return LiftEstimate(
        treated_rate=t_rate, control_rate=c_rate,
        abs_lift=abs_lift, abs_lo95=lo, abs_hi95=hi, av_lo95=av_lo, av_hi95=av_hi,
        rel_lift=abs_lift / c_rate if c_rate > 0 else NAN,
        incremental_conversions=abs_lift * treated.n,
        treated_value_per=t_value, control_value_per=c_value,
        value_lift=value_lift, value_lo95=v_lo, value_hi95=v_hi,
        incremental_value=value_lift * treated.n,
        srm_p=p, srm_alarm=p < SRM_ALARM_P,
        # nan bounds compare False: no data is never significant; nor is a broken split
        # (no automatic decision may act on it)
        significant=(av_lo > 0.0 or av_hi < 0.0) and p >= SRM_ALARM_P,
        treated_unsub_rate=_rate(treated.unsub, treated.n),
        treated_complaint_rate=_rate(treated.complaint, treated.n),
        control_unsub_rate=_rate(control.unsub, control.n),
        control_complaint_rate=_rate(control.complaint, control.n),
        treated_click_rate=_rate(treated.clicks, treated.n))


def _fixed_total(p0: float, mde_abs: float, share: float, alpha: float, power: float) -> float:
    """Recipients (real-valued) for a two-sided test of p1 - p0 at split `share` in control:
    the pooled variance under the null, the unpooled one under the alternative."""
    p1 = p0 + mde_abs
    pbar = share * p0 + (1 - share) * p1
    z_a = _NORMAL.inv_cdf(1 - alpha / 2)
    z_b = _NORMAL.inv_cdf(power)
    null_sd = math.sqrt(pbar * (1 - pbar) * (1 / share + 1 / (1 - share)))
    alt_sd = math.sqrt(p0 * (1 - p0) / share + p1 * (1 - p1) / (1 - share))
    return ((z_a * null_sd + z_b * alt_sd) / mde_abs) ** 2


def _always_valid_total(p0: float, mde_abs: float, share: float, alpha: float,
                        power: float) -> float:
    """Recipients at which the always-valid interval, read once at the end, excludes 0
    with probability `power` under the alternative: mde = radius(V) + z_power sqrt(V).
    (Peeking can only stop earlier, so this is an upper bound of what it needs.)"""
    p1 = p0 + mde_abs
    unit_var = p0 * (1 - p0) / share + p1 * (1 - p1) / (1 - share)  # V = unit_var / N
    z_b = _NORMAL.inv_cdf(power)

    def reaches(total: float) -> bool:
        v = unit_var / total
        return _mixture_radius(v, alpha, MIXTURE_SD) + z_b * math.sqrt(v) <= mde_abs

    lo, hi = 1.0, 2.0
    while not reaches(hi):
        lo, hi = hi, hi * 2.0
        if hi > 1e13:
            return math.inf
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if reaches(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _valid_plan_inputs(p0: float, mde_abs: float, share: float, alpha: float,
                       power: float) -> bool:
    return (0.0 < p0 < 1.0 and 0.0 < mde_abs and p0 + mde_abs < 1.0 and 0.0 < share < 1.0
            and 0.0 < alpha < 1.0 and 0.0 < power < 1.0)


def plan(baseline_rate: float, mde_abs: float, control_share: float, alpha: float = 0.05,
         power: float = 0.8) -> Plan:
    """Recipients needed to detect an absolute lift `mde_abs` over `baseline_rate` with a
    two-sided fixed-horizon test, `control_share` of them in control.

    The normal approximation for two proportions with unequal allocation (pooled
    variance under the null). `av_*`: where the always-valid interval, read once at the
    end, excludes 0 with the same power; peeking can only stop earlier. Inputs out of
    range (rates outside (0, 1), a share of 0 or 1, an MDE <= 0) give zeros.

    >>> p = plan(0.05, 0.01, 0.5)         # 8,158 per arm, as the textbooks have it
    >>> p.total, p.control, p.treated
    (16316, 8158, 8158)
    >>> p = plan(0.03, 0.005, 0.1)
    >>> p.total, p.control, p.treated, round(p.av_inflation, 2)
    (112195, 11220, 100975, 1.93)
    """
    if not _valid_plan_inputs(baseline_rate, mde_abs, control_share, alpha, power):
        return Plan(baseline_rate, mde_abs, control_share, alpha, power, 0, 0, 0, 0, 0, 0, NAN)
    total = _fixed_total(baseline_rate, mde_abs, control_share, alpha, power)
    control = math.ceil(total * control_share - 1e-9)
    treated = math.ceil(total * (1 - control_share) - 1e-9)
    av = _always_valid_total(baseline_rate, mde_abs, control_share, alpha, power)
    av_control = math.ceil(av * control_share - 1e-9)
    av_treated = math.ceil(av * (1 - control_share) - 1e-9)
    return Plan(baseline_rate, mde_abs, control_share, alpha, power,
                control + treated, control, treated, av_control + av_treated, av_control,
                av_treated, (av_control + av_treated) / (control + treated))


def mde(total_recipients: int, control_share: float, baseline_rate: float,
        alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest absolute lift a fixed-horizon test on `total_recipients` detects with
    `power` (the inverse of `plan`); nan when no lift below 100% can be detected or
    the inputs are out of range.

    >>> round(mde(16_316, 0.5, 0.05), 4)
    0.01
    >>> math.isnan(mde(2, 0.5, 0.05)), math.isnan(mde(1000, 0.0, 0.05))
    (True, True)
    """
    if total_recipients <= 0 or not _valid_plan_inputs(baseline_rate, 1e-9, control_share,
                                                       alpha, power):
        return NAN
    hi = 1.0 - baseline_rate - 1e-12
    if _fixed_total(baseline_rate, hi, control_share, alpha, power) > total_recipients:
        return NAN
    lo = 0.0
    for _ in range(100):  # the total needed falls as the effect grows
        mid = 0.5 * (lo + hi)
        if _fixed_total(baseline_rate, mid, control_share, alpha, power) > total_recipients:
            lo = mid
        else:
            hi = mid
    return hi
