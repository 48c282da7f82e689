"""Per flow and entry cohort: what the cohort will converge to, with honest intervals.

A *cohort* is a flow's recipients who entered it (first delivery of the flow) on
one UTC day, `cohort_day` (days since the epoch). Each entrant carries a
convergence propensity p, P(reaching the flow's goal within its window), kept up
to date by the caller. While the cohort runs, its final number of converged
recipients is

    K = converged so far + S,   S = Σ Bernoulli(p_i) over the *open* recipients

(open: entered, not converged, still able to converge). S is Poisson-binomial
if the outcomes are independent given the p's. Given the p's, then:

- the expected count is converged + Σ p_i;
- the 80% and 95% noise intervals are the central quantiles of K / entered:
  ``lo = (converged + q(α/2)) / entered``, ``hi = (converged + q(1 - α/2)) / entered``
  with q(a) the smallest k such that P(S ≤ k) ≥ a. Discrete quantiles make the
  interval conservative: it holds the realised score with probability ≥ 80% (95%).

`expected_converged` is always converged + Σp (the propensities alone, the contract);
`forecast_score` is the published forecast: expected_converged / entered while nothing is
graded, the track record's mix of estimates (below) once it is.

The p's themselves are off, though (a model still learning, miscalibrated, drifting), and
by more than that noise: the published row adds their error, learnt from the flow's own
track record (below). With `error_prior_sd=0` and nothing learnt yet, the row is the
above exactly (`expected_converged`, `forecast_score` = it / entered, the noise interval
widened only to hold the forecast).

The interval is exact (dynamic programming over the open p's) while the cohort
has at most `exact_limit` open recipients (default 200) at each hour boundary; a
cohort that once had more is approximated from three running moments (mean μ, variance σ², third
central moment) by a Cornish–Fisher normal quantile with continuity correction:
``q(a) = ceil(μ + σ (z + (z² - 1) γ / 6) - 1/2)``, γ the skewness, clipped to
[0, open]. Error bound, checked against the exact DP in `tests/test_forecast.py`
on n = 200…3000 open recipients with p's spread over [0, 1], small (≤ 0.1),
tiny (≤ 0.002) and mixed: the approximate quantile is within **±1 count** of the
exact one (also on n = 5…200). A cohort approximated for its size has more than
`exact_limit` entrants, so each interval bound is within 1/entered < 0.005 of the
exact one in score units.

Track record (the propensities' own error). At each day boundary every open cohort is
snapshot at its lead L (whole days since its cohort day, 1…window): converged, open,
Σp, Σp(1-p). A snapshot is *graded* by R, the conversions that came after it: at close
(realised), or earlier, as soon as a cohort further on has seen at least `early_share`
(default half) of its estimated remaining conversions after L happen, R = the conversions
since + the model's open part now (early evidence, a chain-ladder step: no waiting a week
for the first close; only the part that happened counts as noise). Per flow and lead,
the latest `error_cohorts` (6) graded snapshots give (`fit_track_record`):

- the model's log error ``e = log((R + 1) / (Σp + 1))``;
- the same for two model-free estimates of the open part, each as known when the
  snapshot was taken: the recent cohorts' remaining conversions per entrant after L ×
  entered (`rate`, from the same graded snapshots), and the flow's trailing score ×
  entered - converged (within [0, open]);
- the published open part: the three combined on the log scale by inverse mean squared
  error, the prior (`error_prior_cohorts` residuals of spread `error_prior_sd`, 2 × 0.3)
  added to each; a baseline never graded (no closed cohort yet for the trailing score)
  weighs nothing, so the model alone while nothing is graded (`combine_baselines=False`:
  always); optionally the model's mean log error subtracted first (`correct_bias=True`;
  off by default: on the simulated traffic the model learns fast and a bias learnt from
  older cohorts made the forecasts worse);
- the spread σ of the published forecast's log error beyond Bernoulli noise: its graded
  residuals' mean square less their noise, shrunk towards the prior, × (1 + 1/(n + n0)).

The interval then adds, per bound, the noise quantile (on the log scale of the open count
+ 1, rescaled to the published mean) and z σ in quadrature: ``open bound = (μ + 1)
exp(±sqrt(noise² + (z σ)²)) - 1``, within [0, open]; so lo ≤ forecast ≤ hi, the 80%
interval inside the 95% one, all within [converged / entered, (converged + open) /
entered]. While nothing is graded σ is the prior's: wide when the model is good, too
narrow when it is far off (nothing in the stream says so yet). The honesty measures
below report how it holds.

Cohort close: at ``(cohort_day + 1 + window_days)`` days, every entrant's window
has closed; the cohort's `CohortOutcome` (entered, converged, score) is written,
recipients still open count as not converged (`stats()["unresolved"]`), and the
cohort is forgotten apart from its score, kept per flow for the trailing average
(the mean realised score of the flow's last `trailing_cohorts` closed cohorts).

Honesty: the forecast (and interval) made 1, 2 and 3 days after the cohort's
start (the row at that hour boundary) is kept and compared with the realised
score at close: a `ForecastQuality` record per horizon (absolute and relative
error, inside the 80% / 95% interval), next to the baseline measured the same
way (the flow's trailing score at that moment used as the forecast). `take_quality()`
drains the records, `summary()` gives the running means and coverage rates.

Alerts: at each hour boundary, an open cohort with at least `min_entered`
entrants whose `hi80` is below ``trailing × (1 - alert_margin)`` (a full trailing
set of `min_trailing` closed cohorts needed) raises one `FlowAlert`; it raises
again only after its forecast came back to the threshold or above and fell again.
The alert judges the forecast and interval without the trailing score (the model and
the recent cohorts' rate, with that combination's spread): the published one leans on
the very score it is compared with, which would hide a cohort falling behind. (The
model alone was no better: where its record is poor, late in the window on the
simulated traffic, its own interval is too wide to say anything.)

Driving it: feed every change in event-time order (`enter`, `rescore`, `reach`,
`drop`) and call `advance(ts)` *before* applying a change at ts. Each hour
boundary the stream crosses gives a row for every open cohort (as_of = the
boundary, the state from the changes before it); hours without changes repeat
the last numbers.

The caller drops a recipient when its own window closes (entry + window_days), or
rescores it as time passes: the forecast counts an open recipient's p until then.

Rows do not depend on the order of the changes between two boundaries (shards'
changes merged in any order): the running sums are exact integers (p in 2^-64
steps) and the exact DP takes the p's sorted.

Design: the caller passes the recipient's previous p (`old_p`) with every change;
nothing here is keyed by recipient (nothing to erase, no recipient strings held).
Per cohort a small object with counts and running sums; while exact, a `Counter`
of the open p's (a p passed back that is not there, a caller bug, makes the cohort
approximate: counted in `stats()["mismatched"]`, never an error).

Memory (measured with tracemalloc): about 1 kB per open cohort plus, while exact,
about 35 bytes per distinct open p (a Counter slot; 60 with the float if the caller
does not hold it), so ≤ 12 kB per cohort at `exact_limit` = 200 (more only
until the boundary that finds it above the limit); 0 bytes per open
recipient in approximated cohorts. A closed cohort leaves one float (its score).
Pickled: about 11 bytes per open p. The track record adds ≤ 7 snapshots per open
cohort (about 260 bytes each) and per flow ≤ 6 residuals per lead (about 400 bytes
each) and the fitted records: about 20 kB per flow with a 7-day window.

Cost: `enter`/`rescore`/`reach`/`drop` O(1) (a dict lookup, three sums, a Counter
update). `advance`: per hour boundary one row per open cohort (cached numbers),
plus a recomputation for each cohort changed since the last boundary: O(1) when
approximated; when exact, a DP over its open p's, cut where the remaining upper
tail is below 1e-25 (open × L multiply-adds, L ≤ μ + 14σ + 40), run for all the
hour's changed exact cohorts at once (one numpy step per p position, not per p):
900 changed cohorts of 150 open recipients took 250 ms (0.3 ms each) on 2 cores
shared with other jobs. Changes cost about 1.2 µs each. Each day boundary refits the
track record: per flow, leads × (kept residuals + open cohorts), a few hundred steps.

>>> f = CohortForecast(window_days=7, min_entered=2, error_prior_sd=0.0)  # the p's alone
>>> day = 20_000                               # 2024-10-04 UTC
>>> t0 = day * DAY_MS
>>> for i, p in enumerate((0.5, 0.5, 0.2, 0.1)):
...     f.enter("welcome", day, p, t0 + i)
>>> f.reach("welcome", day, 0.5, t0 + 60_000)  # one converged
>>> rows, outcomes, alerts = f.advance(t0 + HOUR_MS)
>>> r = rows[0]
>>> (r.as_of_ms - t0, r.entered, r.converged, round(r.expected_converged, 2), r.forecast_score)
(3600000, 4, 1, 1.8, 0.45)
>>> (r.lo80, r.hi80, r.lo95, r.hi95)            # (1 + {0, 2, 0, 2}) / 4
(0.25, 0.75, 0.25, 0.75)
>>> for p in (0.5, 0.2, 0.1):
...     f.drop("welcome", day, p, t0 + 2 * HOUR_MS)
>>> rows, outcomes, alerts = f.advance((day + 8) * DAY_MS)   # the window closed
>>> len(rows), outcomes[0][:6]                  # 190 hourly rows, then the outcome
(190, ('welcome', 20000, 4, 1, 0.25, 7))
>>> [(q.horizon_days, q.forecast_score, q.realised, q.in80) for q in f.take_quality()]
[(1, 0.25, 0.25, True), (2, 0.25, 0.25, True), (3, 0.25, 0.25, True)]

With the default prior spread (0.3 on the log scale) the same cohort's interval is wider:

>>> g = CohortForecast(window_days=7, min_entered=2)
>>> for i, p in enumerate((0.5, 0.5, 0.2, 0.1)):
...     g.enter("welcome", day, p, t0 + i)
>>> g.reach("welcome", day, 0.5, t0 + 60_000)
>>> r = g.advance(t0 + HOUR_MS)[0][0]
>>> r.forecast_score, [round(x, 3) for x in (r.lo80, r.hi80, r.lo95, r.hi95)]
(0.45, [0.25, 0.853, 0.25, 0.981])
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, deque
from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
#: Central interval levels and the tail probabilities of their bounds.
_TAILS = (0.10, 0.90, 0.025, 0.975)  # lo80, hi80, lo95, hi95
_Z = tuple(NormalDist().inv_cdf(a) for a in _TAILS)
#: The exact DP drops the upper tail beyond μ + 14σ + 40 (Bernstein: mass < 1e-25).
_TAIL_SIGMAS, _TAIL_COUNTS = 14.0, 40.0
#: The moments' fixed-point unit: p in 2^-64 steps (exact for every float p ≥ 2^-12,
#: 5e-20 off below), so the sums are exact integers, correctly rounded when read.
_UNIT = 1 << 64
#: CDF tolerance in the exact quantile search (float sums of probabilities).
_CDF_EPS = 1e-12
#: The batched DP pads every collection to the longest while that is at most this many
#: cells (a few hundred cohorts of ~100 open p's): fewer, larger numpy steps.
_ONE_GROUP_CELLS = 1 << 16


class ForecastRow(NamedTuple):
    """A cohort's forecast as of an hour boundary (`convergence_forecast`)."""

    flow_id: str
    cohort_day: int  # days since the epoch (UTC) of entering
    as_of_ms: int
    entered: int
    converged: int
    expected_converged: float
    forecast_score: float
    lo80: float
    hi80: float
    lo95: float
    hi95: float


class CohortOutcome(NamedTuple):
    """A closed cohort's realised convergence (`cohort_outcomes`)."""

    flow_id: str
    cohort_day: int
    entered: int
    converged: int
    score: float
    window_days: int
    closed_ms: int


class FlowAlert(NamedTuple):
    """A cohort forecast (at 80% confidence) below its flow's trailing score (`flow_alerts`)."""

    flow_id: str
    cohort_day: int
    as_of_ms: int
    forecast_score: float
    hi80: float
    trailing_score: float
    margin: float
    detail: str


class ForecastQuality(NamedTuple):
    """The forecast made `horizon_days` after the cohort's start, against the realised score.

    `rel_error` is signed, (forecast - realised) / realised, None if nothing converged;
    `baseline_*` is the flow's trailing score at that moment used as the forecast
    (None without a closed cohort before it).
    """

    flow_id: str
    cohort_day: int
    horizon_days: int
    forecast_score: float
    realised: float
    abs_error: float
    rel_error: float | None
    in80: bool
    in95: bool
    entered: int
    baseline_score: float | None
    baseline_abs_error: float | None
    baseline_rel_error: float | None


def poisson_binomial_pmf(ps: Any, upper: int | None = None) -> np.ndarray:
    """P(S = k), k = 0…, for S a sum of independent Bernoulli(p) (exact DP).

    `upper` cuts the support at k ≤ upper (mass beyond it is dropped). `ps` may
    be a sequence of p's or a mapping p → multiplicity.

    >>> [round(float(x), 4) for x in poisson_binomial_pmf([0.5, 0.5, 0.2])]
    [0.2, 0.45, 0.3, 0.05]
    """
    items = sorted(ps.items()) if hasattr(ps, "items") else [(p, 1) for p in ps]
    n = sum(m for _, m in items)
    size = n if upper is None else min(n, upper)
    pmf = np.ones(1)
    for p, m in items:
        if p <= 0.0:
            continue
        step = np.array((1.0 - p, p))
        for _ in range(m):  # one C call per p: the Python loop is what costs
            pmf = np.convolve(pmf, step)
            if len(pmf) > size + 1:
                pmf = pmf[:size + 1]
    if len(pmf) < size + 1:
        pmf = np.concatenate((pmf, np.zeros(size + 1 - len(pmf))))
    return pmf


def exact_quantiles(pmf: np.ndarray, tails: tuple[float, ...] = _TAILS) -> list[int]:
    """The smallest k with P(S ≤ k) ≥ a, for each a in `tails`.

    >>> exact_quantiles(poisson_binomial_pmf([0.5, 0.5]), (0.25, 0.5, 0.75, 0.76))
    [0, 1, 1, 2]
    """
    cdf = np.cumsum(pmf)
    last = len(pmf) - 1
    return [min(int(np.searchsorted(cdf, a - _CDF_EPS, side="left")), last) for a in tails]


def batch_exact_quantiles(cohorts: list[Any], uppers: list[int],
                          tails: tuple[float, ...] = _TAILS) -> list[list[int]]:
    """`exact_quantiles(poisson_binomial_pmf(ps, upper))` of several p collections at once.

    The DP runs one step per p *position* for all of them together (a row each, the
    shorter ones padded with p = 0, which changes nothing): the Python loop runs
    over the longest collection instead of over every p of every collection, which
    is what costs. Collections are grouped by size (powers of two) so little is padded,
    unless all of them padded to the longest fit in `_ONE_GROUP_CELLS` (then one group:
    one loop, not one per size; a row's numbers below its own cut are the same in any
    group, the DP at k reading only k and k - 1).

    >>> batch_exact_quantiles([[0.5, 0.5], {0.1: 3}], [10, 10], (0.25, 0.75))
    [[0, 1], [0, 1]]
    """
    out: list[list[int]] = [[] for _ in cohorts]
    groups: dict[int, list[int]] = {}
    rows: list[list[float]] = []
    for i, ps in enumerate(cohorts):
        items = sorted(ps.items()) if hasattr(ps, "items") else ((p, 1) for p in ps)
        row = [p for p, m in items if p > 0.0 for _ in range(m)]  # sorted: order-free
        rows.append(row)
        groups.setdefault(len(row).bit_length(), []).append(i)
    if len(groups) > 1 and len(rows) * max(map(len, rows)) <= _ONE_GROUP_CELLS:
        groups = {0: list(range(len(rows)))}
    for members in groups.values():
        width = max(len(rows[i]) for i in members)
        size = min(width, max(uppers[i] for i in members)) + 1
        ps_matrix = np.zeros((len(members), max(width, 1)))
        for r, i in enumerate(members):
            ps_matrix[r, :len(rows[i])] = rows[i]
        qs_matrix = 1.0 - ps_matrix
        pmf = np.zeros((len(members), size))
        pmf[:, 0] = 1.0
        spare = np.empty((len(members), size))
        multiply = np.multiply
        top = 0
        # one (members, 1) column per p position, as views made in one go
        for p, q in zip(ps_matrix.T[:, :, None], qs_matrix.T[:, :, None], strict=True):
            nxt = top + 1 if top + 1 < size - 1 else size - 1
            # pmf[k] = pmf[k] q + pmf[k - 1] p, in place: the same products and sums
            moved = multiply(pmf[:, 0:nxt], p, out=spare[:, 0:nxt])
            high = pmf[:, 1:nxt + 1]
            high *= q
            high += moved
            pmf[:, :1] *= q
            top = nxt
        cdf = np.cumsum(pmf, axis=1)
        for a in tails:  # the first index where the cdf reaches a (the count below it)
            found = np.minimum((cdf < a - _CDF_EPS).sum(axis=1), size - 1)
            for r, i in enumerate(members):
                out[i].append(int(found[r]))
    return out


def approx_quantiles(mean: float, var: float, third: float, n: int,
                     z: tuple[float, ...] = _Z) -> list[int]:
    """Cornish–Fisher quantiles of a Poisson binomial from its first three moments.

    `third` is the third central moment Σ p(1-p)(1-2p), n the number of trials.
    Within ±1 count of the exact quantiles on the tested families (see module doc).

    >>> approx_quantiles(500.0, 250.0, 0.0, 1000)   # Binomial(1000, 0.5)
    [480, 520, 469, 531]
    """
    if var <= 1e-12:
        k = min(max(round(mean), 0), n)
        return [k] * len(z)
    sd = math.sqrt(var)
    skew = third / (var * sd)
    out = []
    for zz in z:
        x = mean + sd * (zz + (zz * zz - 1.0) * skew / 6.0) - 0.5
        out.append(min(max(math.ceil(x - 1e-9), 0), n))
    return out


#: p -> its terms of the three running sums (P, P (1 - P), P (1 - P)(1 - 2P) in units of
#: 2^-64): a pure function, cached (propensities are float16 values: a few thousand keys;
#: bounded anyway), so a change costs dict lookups rather than 192-bit products.
_TERMS: dict[float, tuple[int, int, int]] = {}
_TERMS_MAX = 65_536


def _terms(p: float) -> tuple[int, int, int]:
    units = round(p * _UNIT)
    v = units * (_UNIT - units)
    terms = (units, v, v * (_UNIT - 2 * units))
    if len(_TERMS) >= _TERMS_MAX:
        _TERMS.clear()
    _TERMS[p] = terms
    return terms


def _upper(mean: float, var: float) -> int:
    """Where the DP may stop: P(S > upper) < 1e-25 (Bernstein's inequality)."""
    return int(max(mean, 0.0) + _TAIL_SIGMAS * math.sqrt(max(var, 0.0)) + _TAIL_COUNTS)


class _Snap(NamedTuple):
    """A cohort at one of its day boundaries: converged, open, mean and variance of the open
    count given the p's (Σ p, Σ p (1 - p)), and the two baselines as then known: the recent
    cohorts' remaining conversions per entrant after that lead, the flow's trailing score
    (None: none yet)."""

    converged: int
    open: int
    mean: float
    var: float
    recent: float | None
    trailing: float | None


class Residual(NamedTuple):
    """How the open part forecast at one lead turned out, on a log scale (counts + 1).

    `model` = log((R + 1) / (Σp + 1)), R the conversions that came after the lead (realised
    at close, or estimated from a cohort further on: see the module doc), Σp the open
    recipients' propensities then; `noise` = Σp(1 - p) / (Σp + 1)², what Bernoulli noise
    alone gives that log ratio (delta method); `recent` and `trailing` the same log ratio
    for the remaining count the recent cohorts' rate and the trailing score implied then
    (None without one); `rate` = R / entered, what the cohort adds to that rate.
    """

    cohort_day: int
    entered: int
    model: float
    noise: float
    recent: float | None
    trailing: float | None
    rate: float


class TrackRecord(NamedTuple):
    """What a flow's recent cohorts say about its forecasts at one lead (log scale).

    `bias` is added to log(Σp + 1) (the open part's correction, 0 unless asked for),
    `sd_model` is the spread of the (corrected) model's log ratio beyond Bernoulli noise,
    `weights` those of the model, the recent cohorts' rate and the trailing score ((1, 0, 0):
    the model alone), `sd` the spread of the published (combined) forecast, `rate` the
    recent cohorts' remaining conversions per entrant after this lead (None: none yet),
    `cohorts` how many residuals, `sd_own` the spread of the combination without the
    trailing score (what alerts judge, the trailing score being what they compare with).
    """

    bias: float
    sd_model: float
    weights: tuple[float, float, float]
    sd: float
    rate: float | None
    cohorts: int
    sd_own: float


def fit_track_record(residuals: list[Residual], prior_sd: float, prior_cohorts: float,
                     correct_bias: bool = False) -> TrackRecord:
    """Bias, spread and weights from residuals, shrunk towards a prior.

    The prior counts as `prior_cohorts` residuals with no bias and spread `prior_sd`. The
    bias (if `correct_bias`) is the residuals' mean shrunk towards 0. The model's and each
    baseline's mean squared errors (the prior added to each; a baseline never graded has
    weight 0) weigh them by inverse error; the published forecast's spread is its combined
    residuals' mean square, less the Bernoulli noise the interval adds anyway, inflated by
    1 + 1/(n + prior) for the estimating.

    >>> fit_track_record([], 0.3, 2)       # doctest: +NORMALIZE_WHITESPACE
    TrackRecord(bias=0.0, sd_model=0.3, weights=(1.0, 0.0, 0.0), sd=0.3, rate=None,
                cohorts=0, sd_own=0.3)
    >>> rec = fit_track_record([Residual(d, 100, 0.5, 0.0, None, None, 0.2) for d in range(8)],
    ...                        0.3, 2, correct_bias=True)
    >>> round(rec.bias, 3), round(rec.sd_model, 3), rec.weights, rec.rate  # 8 × 0.5 / (8 + 2)
    (0.4, 0.169, (1.0, 0.0, 0.0), 0.2)
    """
    n = len(residuals)
    n0 = prior_cohorts
    prior = n0 * prior_sd * prior_sd
    if n == 0:
        return TrackRecord(0.0, prior_sd, (1.0, 0.0, 0.0), prior_sd, None, 0, prior_sd)
    bias = math.fsum(r.model for r in residuals) / (n + n0) if correct_bias else 0.0
    inflate = 1.0 + 1.0 / (n + n0)
    rate = (math.fsum(r.rate * r.entered for r in residuals)
            / max(sum(r.entered for r in residuals), 1))
    rows = [(r.model - bias, r.recent, r.trailing) for r in residuals]
    noise = math.fsum(r.noise for r in residuals)
    var_model = max(prior + math.fsum(e * e for e, _, _ in rows) - noise, 0.0) / (n + n0)
    sd_model = math.sqrt(var_model * inflate)
    inverse = []
    for k in range(3):
        seen = [row[k] for row in rows if row[k] is not None]
        mse = (prior + math.fsum(x * x for x in seen)) / (len(seen) + n0)
        inverse.append(1.0 / max(mse, 1e-12) if seen else 0.0)
    weights = tuple(x / sum(inverse) for x in inverse)
    if weights[0] == 1.0:
        return TrackRecord(bias, sd_model, (1.0, 0.0, 0.0), sd_model, rate, n, sd_model)

    def spread(ws: tuple[float, ...]) -> float:
        combined = 0.0
        for row in rows:  # each residual's combination of what it had
            have = [(w, x) for w, x in zip(ws, row, strict=True) if x is not None and w > 0]
            combined += (math.fsum(w * x for w, x in have) / math.fsum(w for w, _ in have)) ** 2
        return math.sqrt(max(prior + combined - noise, 0.0) / (n + n0) * inflate)

    own = spread((weights[0], weights[1], 0.0)) if weights[1] > 0 else sd_model
    return TrackRecord(bias, sd_model, weights, spread(weights), rate, n, own)


def trailing_open(trailing: float, entered: int, converged: int, open_: int) -> float:
    """The open recipients' conversions a trailing score implies, within [0, open]."""
    return min(max(trailing * entered - converged, 0.0), float(open_))


class _Cohort:
    """One flow × entry day while open: counts, running moments, the open p's while exact."""

    __slots__ = ("entered", "converged", "open", "sums", "ps", "dirty", "created_ms",
                 "numbers", "horizons", "alerted", "qs", "snaps")

    def __init__(self, created_ms: int):
        self.entered = 0
        self.converged = 0
        self.open = 0
        #: Σ P, Σ P (1 - P), Σ P (1 - P)(1 - 2P) over the open recipients, P = p in units
        #: of 2^-64, as exact integers: the same whatever the order of the changes
        #: (float sums would differ in the last bits) and back to exactly 0 when empty.
        self.sums = [0, 0, 0]
        self.ps: Counter[float] | None = Counter()  # None once approximated
        self.dirty = True
        self.created_ms = created_ms
        #: the Bernoulli-noise quantiles of the open count given the p's (cached while the
        #: p's do not change), and the row's numbers from them and the flow's track record:
        #: expected_converged, forecast_score, lo80, hi80, lo95, hi95 (None: to recompute)
        self.qs: list[int] = [0, 0, 0, 0]
        self.numbers: tuple[float, ...] | None = None
        #: horizon days -> (forecast, lo80, hi80, lo95, hi95, baseline or None)
        self.horizons: dict[int, tuple] = {}
        self.alerted = False
        #: lead days -> _Snap at that day boundary (what the forecast's track record is made of)
        self.snaps: dict[int, _Snap] = {}

    def __setstate__(self, state: tuple[None, dict[str, Any]]) -> None:
        """State pickled before the track record existed carries on (recomputed numbers)."""
        for name, value in state[1].items():
            setattr(self, name, value)
        if not hasattr(self, "snaps"):
            self.snaps, self.qs, self.numbers, self.dirty = {}, [0, 0, 0, 0], None, True

    def add(self, p: float, sign: int) -> None:
        self.open += sign
        self.dirty = True
        if self.open <= 0:  # (exactly 0 already, unless a caller's p did not match)
            self.open = 0
            self.sums = [0, 0, 0]
            return
        terms = _TERMS.get(p)
        if terms is None:
            terms = _terms(p)
        sums = self.sums
        if sign > 0:
            sums[0] += terms[0]
            sums[1] += terms[1]
            sums[2] += terms[2]
        else:
            sums[0] -= terms[0]
            sums[1] -= terms[1]
            sums[2] -= terms[2]

    def add_many(self, p: float, count: int) -> None:
        """`count` recipients with propensity p enter the open set (leave it: negative)."""
        self.open += count
        self.dirty = True
        if self.open <= 0:
            self.open = 0
            self.sums = [0, 0, 0]
            return
        terms = _TERMS.get(p) or _terms(p)
        sums = self.sums
        sums[0] += count * terms[0]
        sums[1] += count * terms[1]
        sums[2] += count * terms[2]

    def moments(self) -> tuple[float, float, float]:
        """Mean, variance and third central moment of the open recipients' count."""
        s0, s1, s2 = self.sums
        return s0 / _UNIT, s1 / _UNIT ** 2, s2 / _UNIT ** 3


class CohortForecast:
    """Forecast, outcome, honesty and alerts of every flow × entry cohort.

    Settings (window, margins, limits) are plain attributes: a restored object
    applies whatever `configure` sets after the restart.
    """

    def __setstate__(self, state: dict[str, Any]) -> None:
        """State pickled before the track record existed carries on with the defaults."""
        fresh = CohortForecast()
        self.__dict__.update({k: v for k, v in fresh.__dict__.items() if k not in state})
        self.__dict__.update(state)

    def __init__(self, window_days: int = 7, alert_margin: float = 0.2, min_entered: int = 50,
                 trailing_cohorts: int = 4, min_trailing: int = 4, exact_limit: int = 200,
                 horizons_days: tuple[int, ...] = (1, 2, 3), large_cohort: int = 500,
                 error_prior_sd: float = 0.3, error_prior_cohorts: float = 2.0,
                 error_cohorts: int = 6, early_share: float = 0.5, combine_baselines: bool = True,
                 correct_bias: bool = False):
        self.window_days = window_days
        self.alert_margin = alert_margin
        self.min_entered = min_entered
        self.trailing_cohorts = trailing_cohorts
        self.min_trailing = min_trailing
        self.exact_limit = exact_limit
        self.horizons_days = tuple(horizons_days)
        self.large_cohort = large_cohort
        #: the track record (see the module doc): prior spread and weight, snapshots kept
        #: per lead, share of its remaining conversions an open cohort must have seen to
        #: grade its snapshot early, combine with the recent cohorts' rate, correct bias
        self.error_prior_sd = error_prior_sd
        self.error_prior_cohorts = error_prior_cohorts
        self.error_cohorts = error_cohorts
        self.early_share = early_share
        self.combine_baselines = combine_baselines
        self.correct_bias = correct_bias
        #: flow -> lead days -> residuals of the latest closed cohorts
        self._closed: dict[str, dict[int, deque[Residual]]] = {}
        #: flow -> lead days -> its track record, refitted at each day boundary
        self._fits: dict[str, dict[int, TrackRecord]] = {}
        self._cohorts: dict[tuple[str, int], _Cohort] = {}
        self._closing: list[tuple[int, str, int]] = []  # (close_ms, flow, day), a heap
        self._trailing: dict[str, deque[float]] = {}
        self._hour: int | None = None  # index of the last hour boundary passed
        self._quality: list[ForecastQuality] = []
        self._summary: dict[str, dict[int, list[float]]] = {"all": {}, "large": {}}
        self._stats = Counter()

    # -- settings ---------------------------------------------------------------------

    def configure(self, **settings: Any) -> None:
        """Apply settings (e.g. after a restart); a new window re-plans every close."""
        for name, value in settings.items():
            if not hasattr(self, name) or name.startswith("_"):
                raise TypeError(f"unknown setting {name!r}")
            setattr(self, name, tuple(value) if name == "horizons_days" else value)
        if "trailing_cohorts" in settings:
            for flow, scores in self._trailing.items():
                self._trailing[flow] = deque(scores, maxlen=self.trailing_cohorts)
        if "error_cohorts" in settings:
            for leads in self._closed.values():
                for lead, kept in leads.items():
                    leads[lead] = deque(kept, maxlen=self.error_cohorts)
        for cohort in self._cohorts.values():
            cohort.numbers = None  # the settings change the numbers
        self._closing = [(self._close_ms(day), flow, day) for flow, day in self._cohorts]
        heapq.heapify(self._closing)

    def _close_ms(self, cohort_day: int) -> int:
        return (cohort_day + 1 + self.window_days) * DAY_MS

    # -- changes ----------------------------------------------------------------------

    def _valid(self, p: float) -> bool:
        if isinstance(p, (int, float)) and 0.0 <= p <= 1.0:  # NaN fails both
            return True
        self._stats["invalid"] += 1
        return False

    def _open(self, flow_id: str, cohort_day: int, ts_ms: int) -> _Cohort | None:
        if self._hour is None:
            self._hour = ts_ms // HOUR_MS
        cohort = self._cohorts.get((flow_id, cohort_day))
        if cohort is None:
            self._stats["late" if self._close_ms(cohort_day) <= self._hour * HOUR_MS
                        else "unknown"] += 1
        return cohort

    def enter(self, flow_id: str, cohort_day: int, p: float, ts_ms: int) -> None:
        """A recipient entered the flow on `cohort_day` with propensity p."""
        if not self._valid(p):
            return
        if self._hour is None:
            self._hour = ts_ms // HOUR_MS
        key = (flow_id, cohort_day)
        cohort = self._cohorts.get(key)
        if cohort is None:
            close_ms = self._close_ms(cohort_day)
            if close_ms <= self._hour * HOUR_MS:  # its cohort already closed
                self._stats["late"] += 1
                return
            cohort = self._cohorts[key] = _Cohort(ts_ms)
            heapq.heappush(self._closing, (close_ms, flow_id, cohort_day))
        cohort.entered += 1
        self._add(cohort, p)

    def rescore(self, flow_id: str, cohort_day: int, old_p: float, new_p: float,
                ts_ms: int) -> None:
        """An open recipient's propensity moved from old_p to new_p."""
        # (floats in [0, 1] inline: a rescore comes with nearly every journey fact)
        if not ((type(old_p) is float and 0.0 <= old_p <= 1.0) or self._valid(old_p)):
            return
        if not ((type(new_p) is float and 0.0 <= new_p <= 1.0) or self._valid(new_p)):
            return
        if old_p == new_p:
            return
        cohort = self._cohorts.get((flow_id, cohort_day)) if self._hour is not None else None
        if cohort is None:
            cohort = self._open(flow_id, cohort_day, ts_ms)
        if cohort is not None and self._remove(cohort, old_p):
            self._add(cohort, new_p)

    def rescore_many(self, flow_id: str, cohort_day: int, old_p: float, new_p: float,
                     count: int, ts_ms: int) -> None:
        """`count` open recipients with the same propensity moved from old_p to new_p."""
        if not (self._valid(old_p) and self._valid(new_p)) or old_p == new_p or count <= 0:
            return
        cohort = self._open(flow_id, cohort_day, ts_ms)
        if cohort is None:
            return
        if cohort.open < count:
            self._stats["unmatched"] += 1
            return
        ps = cohort.ps
        if ps is not None:
            left = ps.get(old_p, 0) - count
            if left > 0:
                ps[old_p] = left
            elif left == 0:
                del ps[old_p]
            else:
                cohort.ps = None
                self._stats["mismatched"] += 1
            if cohort.ps is not None:
                ps[new_p] += count
        cohort.add_many(old_p, -count)
        cohort.add_many(new_p, count)

    def reach(self, flow_id: str, cohort_day: int, old_p: float, ts_ms: int) -> None:
        """An open recipient reached the goal: converged (1), out of the open set."""
        cohort = self._open(flow_id, cohort_day, ts_ms)
        if cohort is not None and self._valid(old_p) and self._remove(cohort, old_p):
            cohort.converged += 1

    def drop(self, flow_id: str, cohort_day: int, old_p: float, ts_ms: int) -> None:
        """An open recipient can no longer converge: out of the open set, counted 0."""
        cohort = self._open(flow_id, cohort_day, ts_ms)
        if cohort is not None and self._valid(old_p):
            self._remove(cohort, old_p)

    def _add(self, cohort: _Cohort, p: float) -> None:
        cohort.add(p, +1)
        if cohort.ps is not None:  # the size is judged at the boundary (order-free)
            cohort.ps[p] += 1

    def _remove(self, cohort: _Cohort, p: float) -> bool:
        if cohort.open <= 0:
            self._stats["unmatched"] += 1  # nobody open: a change about nobody
            return False
        ps = cohort.ps
        if ps is not None:
            left = ps.get(p, 0) - 1
            if left > 0:
                ps[p] = left
            elif left == 0:
                del ps[p]
            else:  # a p we never saw: the exact set is lost, the moments go on
                cohort.ps = None
                self._stats["mismatched"] += 1
        cohort.add(p, -1)
        return True

    # -- time -------------------------------------------------------------------------

    def advance(self, ts_ms: int) -> tuple[list[ForecastRow], list[CohortOutcome],
                                           list[FlowAlert]]:
        """Event time reached ts: rows, outcomes and alerts of every hour boundary ≤ ts."""
        rows: list[ForecastRow] = []
        outcomes: list[CohortOutcome] = []
        alerts: list[FlowAlert] = []
        hour = ts_ms // HOUR_MS
        if self._hour is None:
            self._hour = hour
        while self._hour < hour:
            if not self._cohorts:  # nothing open: no rows, nothing to close (a long gap)
                self._hour = hour
                break
            self._hour += 1
            self._boundary(self._hour * HOUR_MS, rows, outcomes, alerts)
        return rows, outcomes, alerts

    def flush(self) -> list[ForecastRow]:
        """End of input: every open cohort's current numbers, as of the next hour boundary.

        Nothing closes and no horizon or alert is judged: the input ended, time did not
        pass. (More input afterwards rewrites the same rows, as idempotent writes do.)
        """
        if self._hour is None:
            return []
        as_of = (self._hour + 1) * HOUR_MS
        return [self._row(key, self._cohorts[key], as_of) for key in sorted(self._cohorts)
                if self._close_ms(key[1]) > as_of]

    def _boundary(self, as_of: int, rows: list[ForecastRow], outcomes: list[CohortOutcome],
                  alerts: list[FlowAlert]) -> None:
        closing = self._closing
        while closing and closing[0][0] <= as_of:
            _, flow_id, day = heapq.heappop(closing)
            cohort = self._cohorts.pop((flow_id, day), None)
            if cohort is not None:
                outcomes.append(self._close(flow_id, day, cohort, as_of))
        keys = sorted(self._cohorts)
        if as_of % DAY_MS == 0:
            self._new_day(as_of, keys)
        self._refresh_exact([self._cohorts[key] for key in keys])
        for key in keys:
            cohort = self._cohorts[key]
            if cohort.created_ms >= as_of:  # entered after this boundary (no advance before)
                continue
            row = self._row(key, cohort, as_of)
            rows.append(row)
            horizon, rest = divmod(as_of - key[1] * DAY_MS, DAY_MS)
            if rest == 0 and horizon in self.horizons_days:
                cohort.horizons[horizon] = (row.forecast_score, row.lo80, row.hi80, row.lo95,
                                            row.hi95, self.trailing(key[0]))
            alert = self._judge(key, cohort, row)
            if alert is not None:
                alerts.append(alert)

    def _row(self, key: tuple[str, int], cohort: _Cohort, as_of: int) -> ForecastRow:
        if cohort.dirty:
            cohort.qs = self._numbers(cohort)
            cohort.dirty = False
            cohort.numbers = None
        if cohort.numbers is None:
            cohort.numbers = self._published(key, cohort, as_of,
                                             "all" if self.combine_baselines else "model")
        return ForecastRow(key[0], key[1], as_of, cohort.entered, cohort.converged,
                           *cohort.numbers)

    def _refresh_exact(self, cohorts: list[_Cohort]) -> None:
        """The exact intervals of every changed cohort, in one batched DP."""
        for cohort in cohorts:
            self._judge_size(cohort)
        todo = [c for c in cohorts if c.dirty and c.ps is not None and c.open > 0]
        if not todo:
            return
        uppers = [_upper(*c.moments()[:2]) for c in todo]
        for cohort, qs in zip(todo, batch_exact_quantiles([c.ps for c in todo], uppers),
                              strict=True):
            cohort.qs = self._numbers(cohort, qs)
            cohort.dirty = False
            cohort.numbers = None

    def _judge_size(self, cohort: _Cohort) -> None:
        """Too many open for the DP at a boundary: moments only, from now on. Judged here,
        not at each entry, so the same changes in another order within the hour give the
        same rows (the open p's of one hour may exceed the limit until its boundary)."""
        if cohort.ps is not None and cohort.open > self.exact_limit:
            cohort.ps = None
            self._stats["approximated"] += 1

    def _numbers(self, cohort: _Cohort, qs: list[int] | None = None) -> list[int]:
        """The Bernoulli-noise quantiles of the open count given the p's (lo80, hi80, lo95,
        hi95): exact, or Cornish–Fisher once approximated."""
        self._judge_size(cohort)
        mean, var, third = cohort.moments()
        mean, var = max(mean, 0.0), max(var, 0.0)  # after a caller's mismatched p only
        if qs is not None:
            pass
        elif cohort.open == 0:
            qs = [0, 0, 0, 0]
        elif cohort.ps is not None:
            qs = exact_quantiles(poisson_binomial_pmf(cohort.ps, _upper(mean, var)))
        else:
            qs = approx_quantiles(mean, var, third, cohort.open)
        lo80, hi80, lo95, hi95 = qs
        return [lo80, hi80, min(lo95, lo80), max(hi95, hi80)]  # nested, whatever the method

    def _record(self, flow_id: str, lead: int) -> TrackRecord:
        record = self._fits.get(flow_id, {}).get(lead)
        if record is None:  # nothing learnt yet: the prior
            sd = self.error_prior_sd
            record = TrackRecord(0.0, sd, (1.0, 0.0, 0.0), sd, None, 0, sd)
        return record

    def _published(self, key: tuple[str, int], cohort: _Cohort, as_of: int,
                   mix: str) -> tuple[float, ...]:
        """expected_converged, forecast_score, lo80, hi80, lo95, hi95 of a row.

        The open part Σp (corrected by the flow's track record at this lead, if asked
        for), combined with the recent cohorts' rate and the trailing score (`mix`
        "all"), with the rate only ("own") or not ("model"); the noise quantiles given
        the p's widened on the log scale by the track record's spread of that mix."""
        n, c, open_ = cohort.entered, cohort.converged, cohort.open
        mean = max(cohort.moments()[0], 0.0)
        lead = min(max((as_of - key[1] * DAY_MS) // DAY_MS, 1), self.window_days)
        record = self._record(key[0], lead)
        expected = mean if record.bias == 0.0 else (mean + 1.0) * math.exp(record.bias) - 1.0
        expected = min(max(expected, 0.0), float(open_))
        if mix == "all":
            weights, sd = record.weights, record.sd
        elif mix == "own":  # without the trailing score
            weights, sd = record.weights[:2], record.sd_own
        else:
            weights, sd = (1.0,), record.sd_model
        estimates = [(weights[0], expected)]
        if len(weights) > 1 and weights[1] > 0.0 and record.rate is not None:
            estimates.append((weights[1], min(record.rate * n, float(open_))))
        trailing = self.trailing(key[0]) if len(weights) > 2 and weights[2] > 0.0 else None
        if trailing is not None:
            estimates.append((weights[2], trailing_open(trailing, n, c, open_)))
        if len(estimates) > 1:  # on the log scale, by inverse squared error
            log_mean = (math.fsum(w * math.log1p(x) for w, x in estimates)
                        / math.fsum(w for w, _ in estimates))
            expected = min(max(math.exp(log_mean) - 1.0, 0.0), float(open_))
        if open_ == 0:
            counts = [0.0] * 4
        elif sd == 0.0 and expected == mean:  # the p's alone: the exact quantiles
            counts = [float(q) for q in cohort.qs]
        else:  # noise (rescaled to the corrected mean) and the p's error, added on log scale
            scale = math.sqrt((mean + 1.0) / (expected + 1.0))
            counts = []
            for q, z in zip(cohort.qs, _Z, strict=True):
                noise = math.log((q + 1.0) / (mean + 1.0)) * scale
                half = math.copysign(math.sqrt(noise * noise + (z * sd) ** 2), z)
                counts.append(min(max((expected + 1.0) * math.exp(half) - 1.0, 0.0),
                                  float(open_)))
        score = (c + expected) / n
        lo80, hi80, lo95, hi95 = ((c + k) / n for k in counts)
        lo80, hi80 = min(lo80, score), max(hi80, score)  # the interval holds the forecast
        # expected_converged keeps its contract: converged + Σp of the open recipients (the
        # propensities alone); forecast_score is the published forecast (the same divided by
        # entered while nothing is graded, then the track record's mix)
        return (c + min(mean, float(open_)), score, lo80, hi80, min(lo95, lo80),
                max(hi95, hi80))

    # -- the track record -------------------------------------------------------------

    def _new_day(self, as_of: int, keys: list[tuple[str, int]]) -> None:
        """A day boundary: snapshot every open cohort at its lead, refit every flow's track
        record, and recompute every row's numbers (the lead and the record changed)."""
        today = as_of // DAY_MS
        for flow_id, day in keys:
            cohort = self._cohorts[(flow_id, day)]
            cohort.numbers = None
            lead = today - day
            if 1 <= lead <= self.window_days:
                mean, var, _ = cohort.moments()
                cohort.snaps[lead] = _Snap(cohort.converged, cohort.open, max(mean, 0.0),
                                           max(var, 0.0), None, self.trailing(flow_id))
        by_flow: dict[str, list[tuple[int, _Cohort]]] = {}
        for flow_id, day in keys:
            by_flow.setdefault(flow_id, []).append((day, self._cohorts[(flow_id, day)]))
        self._fits = {flow_id: self._fit(flow_id, today, by_flow.get(flow_id, []))
                      for flow_id in sorted(set(by_flow) | set(self._closed))}
        for flow_id, day in keys:  # what the recent cohorts said at the snapshot
            lead = today - day
            snap = self._cohorts[(flow_id, day)].snaps.get(lead)
            if snap is not None:
                rate = self._record(flow_id, lead).rate
                self._cohorts[(flow_id, day)].snaps[lead] = snap._replace(recent=rate)

    def _fit(self, flow_id: str, today: int, open_cohorts: list[tuple[int, _Cohort]]
             ) -> dict[int, TrackRecord]:
        """Per lead, from the latest `error_cohorts` graded snapshots: of closed cohorts
        (the realised remaining conversions), and of open ones further on that have seen
        at least `early_share` of their estimated remaining conversions happen, estimated
        as the conversions since plus the (corrected) model's open part now; the records
        are fitted from the last lead down, so the one at the cohort's lead now is known."""
        closed = self._closed.get(flow_id, {})
        records: dict[int, TrackRecord] = {}
        for lead in range(self.window_days, 0, -1):
            pool = list(closed.get(lead, ()))
            for day, cohort in open_cohorts:
                now = today - day
                snap = cohort.snaps.get(lead)
                if snap is None or now <= lead:
                    continue
                later = records.get(min(now, self.window_days))
                mean, var, _ = cohort.moments()
                bias = later.bias if later is not None else 0.0
                open_now = min(max((max(mean, 0.0) + 1.0) * math.exp(bias) - 1.0, 0.0),
                               float(cohort.open))
                since = cohort.converged - snap.converged
                remaining = since + open_now
                if since < self.early_share * remaining or remaining <= 0.0:
                    continue  # mostly still the model's say-so: not evidence yet
                # only the part that happened is noisy: the rest is an expectation
                pool.append(self._residual(day, snap, remaining, cohort.entered,
                                           max(snap.var - max(var, 0.0), 0.0)))
            pool.sort(key=lambda r: -r.cohort_day)
            records[lead] = fit_track_record(pool[:self.error_cohorts], self.error_prior_sd,
                                             self.error_prior_cohorts, self.correct_bias)
        return records

    @staticmethod
    def _residual(day: int, snap: _Snap, remaining: float, entered: int,
                  noise_var: float | None = None) -> Residual:
        model = math.log((remaining + 1.0) / (snap.mean + 1.0))
        noise = (snap.var if noise_var is None else noise_var) / (snap.mean + 1.0) ** 2
        recent = trailing = None
        if snap.recent is not None:
            implied = min(snap.recent * entered, float(snap.open))
            recent = math.log((remaining + 1.0) / (implied + 1.0))
        if snap.trailing is not None:
            implied = trailing_open(snap.trailing, entered, snap.converged, snap.open)
            trailing = math.log((remaining + 1.0) / (implied + 1.0))
        return Residual(day, entered, model, noise, recent, trailing, remaining / entered)

    def track_record(self, flow_id: str) -> dict[int, TrackRecord]:
        """The flow's track record per lead day, as of the last day boundary."""
        return dict(self._fits.get(flow_id, {}))

    # -- trailing, alerts, close ------------------------------------------------------

    def trailing(self, flow_id: str) -> float | None:
        """Mean realised score of the flow's last `trailing_cohorts` closed cohorts."""
        scores = self._trailing.get(flow_id)
        return sum(scores) / len(scores) if scores else None

    def _judge(self, key: tuple[str, int], cohort: _Cohort,
               row: ForecastRow) -> FlowAlert | None:
        scores = self._trailing.get(row.flow_id)
        if cohort.entered < self.min_entered or not scores or len(scores) < self.min_trailing:
            return None
        trailing = sum(scores) / len(scores)
        threshold = trailing * (1.0 - self.alert_margin)
        if self.combine_baselines:  # judged without the trailing score it is compared with
            _, score, lo80, hi80, _, _ = self._published(key, cohort, row.as_of_ms, "own")
            row = row._replace(forecast_score=score, lo80=lo80, hi80=hi80)
        if row.hi80 >= threshold:
            if row.forecast_score >= threshold:  # recovered (the forecast itself, not only
                cohort.alerted = False           # its upper bound): a new fall alerts again
            return None
        if cohort.alerted:
            return None
        cohort.alerted = True
        detail = (f"cohort of {row.entered} entrants forecast to converge "
                  f"{row.forecast_score:.1%} (80% interval {row.lo80:.1%}–{row.hi80:.1%}), "
                  f"below {threshold:.1%} = trailing {len(scores)}-cohort average "
                  f"{trailing:.1%} less {self.alert_margin:.0%}; {row.converged} converged "
                  f"so far")
        return FlowAlert(row.flow_id, row.cohort_day, row.as_of_ms, row.forecast_score,
                         row.hi80, trailing, self.alert_margin, detail)

    def _close(self, flow_id: str, day: int, cohort: _Cohort, as_of: int) -> CohortOutcome:
        n, c = cohort.entered, cohort.converged
        score = c / n
        if cohort.open:
            self._stats["unresolved"] += cohort.open
        for horizon in sorted(cohort.horizons):
            self._grade(flow_id, day, horizon, cohort.horizons[horizon], n, c)
        leads = self._closed.setdefault(flow_id, {})
        for lead in sorted(cohort.snaps):
            snap = cohort.snaps[lead]
            kept = leads.get(lead)
            if kept is None:
                kept = leads[lead] = deque(maxlen=self.error_cohorts)
            kept.append(self._residual(day, snap, c - snap.converged, n))
        scores = self._trailing.get(flow_id)
        if scores is None:
            scores = self._trailing[flow_id] = deque(maxlen=self.trailing_cohorts)
        scores.append(score)
        return CohortOutcome(flow_id, day, n, c, score, self.window_days, as_of)

    def _grade(self, flow_id: str, day: int, horizon: int, made: tuple, n: int,
               c: int) -> None:
        forecast, lo80, hi80, lo95, hi95, baseline = made
        realised = c / n
        err = abs(forecast - realised)
        rel = (forecast - realised) / realised if c else None
        b_err = abs(baseline - realised) if baseline is not None else None
        b_rel = (baseline - realised) / realised if baseline is not None and c else None
        record = ForecastQuality(flow_id, day, horizon, forecast, realised, err, rel,
                                 lo80 <= realised <= hi80, lo95 <= realised <= hi95, n,
                                 baseline, b_err, b_rel)
        self._quality.append(record)
        groups = ("all", "large") if n >= self.large_cohort else ("all",)
        for group in groups:
            acc = self._summary[group].setdefault(horizon, [0.0] * 10)
            acc[0] += 1
            acc[1] += err
            acc[4] += record.in80
            acc[5] += record.in95
            if rel is not None:
                acc[2] += 1
                acc[3] += abs(rel)
            if b_err is not None:
                acc[6] += 1
                acc[7] += b_err
            if b_rel is not None:
                acc[8] += 1
                acc[9] += abs(b_rel)

    # -- inspection -------------------------------------------------------------------

    def take_quality(self) -> list[ForecastQuality]:
        """The quality records of the cohorts closed since the last call."""
        out, self._quality = self._quality, []
        return out

    def summary(self) -> dict[str, dict[int, dict[str, float | int | None]]]:
        """Running honesty per cohort group ("all", "large": ≥ `large_cohort` entrants)
        and horizon: cohorts graded, mean absolute and mean |relative| error, 80% / 95%
        coverage, and the trailing-score baseline's errors."""
        def mean(total: float, count: float) -> float | None:
            return total / count if count else None

        out: dict[str, dict[int, dict[str, float | int | None]]] = {}
        for group, horizons in self._summary.items():
            out[group] = {}
            for horizon in sorted(horizons):
                n, err, n_rel, rel, in80, in95, nb, b_err, nb_rel, b_rel = horizons[horizon]
                out[group][horizon] = {
                    "cohorts": int(n), "mean_abs_error": mean(err, n),
                    "mean_rel_error": mean(rel, n_rel), "coverage80": mean(in80, n),
                    "coverage95": mean(in95, n), "baseline_cohorts": int(nb),
                    "baseline_mean_abs_error": mean(b_err, nb),
                    "baseline_mean_rel_error": mean(b_rel, nb_rel)}
        return out

    def stats(self) -> dict[str, int]:
        """Counters: open cohorts, changes ignored (invalid p, late, unknown cohort,
        unmatched), cohorts approximated or made so by a mismatched p, unresolved at close."""
        out = {name: self._stats[name] for name in ("invalid", "late", "unknown", "unmatched",
                                                    "mismatched", "approximated",
                                                    "unresolved")}
        out["open_cohorts"] = len(self._cohorts)
        return out

    def forget_flow(self, flow_id: str) -> None:
        """Drop a flow's open cohorts and trailing scores (a flow deleted)."""
        for key in [k for k in self._cohorts if k[0] == flow_id]:
            del self._cohorts[key]
        self._trailing.pop(flow_id, None)
        self._closed.pop(flow_id, None)
        self._fits.pop(flow_id, None)
        self._closing = [entry for entry in self._closing if entry[1] != flow_id]
        heapq.heapify(self._closing)
