"""Convergence prediction against the truth, on journey traffic whose truth is known.

`mailflow/journeys.py` simulates recipients entering flows in daily cohorts, each with a
TRUE probability of reaching the flow's goal within its window. This bench generates N
days of it and prints the truth side: per flow the entrants and how many converged, per
cohort the true expected score (sum of true_p / n) against the realised one, and the
Bernoulli noise floor every cohort forecast lives with: even a forecaster that knew every
true_p misses the realised score by the noise of independent Bernoulli trials. It reports
that oracle's relative error, the share of cohorts within +-15% and the coverage of its
exact Poisson-binomial 80% / 95% intervals, and the ROC AUC and calibration of true_p
itself (the ceiling for any per-recipient propensity).

`evaluate(tables, truth)` (below, marked) measures the engine's side: propensity ROC AUC
and calibration at entry and just before the outcome, forecast error 1/2/3 days after the
cohort started, interval coverage, and the same for baselines. Feed it the rows of
`flow_propensities`, `convergence_forecast` and `cohort_outcomes` (dicts or named tuples).

    python bench/convergence.py [--days 10] [--entrants 500] [--seed 1]
                                [--shift FLOW:DAY:DELTA ...] [--newsletters SHARE]
                                [--truth FILE] [--json]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mailflow.journeys import (  # noqa: E402
    DAY_MS,
    CohortTruth,
    JourneySimulator,
    Shift,
    Truth,
)

START = 1_795_219_200.0  # 2026-11-21T00:00:00Z: cohorts are whole UTC days


# --- measures ------------------------------------------------------------------------
def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """ROC AUC with ties counted half (Mann-Whitney); nan without both classes.

    >>> roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    >>> roc_auc([0.5, 0.5], [0, 1])
    0.5
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    pos = int(y.sum())
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    n = len(s)
    while i < n:  # average ranks over ties
        j = i
        while j + 1 < n and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def calibration(scores: Sequence[float], labels: Sequence[bool], bins: int = 10
                ) -> tuple[float, list[tuple[int, float, float]]]:
    """Expected calibration error over `bins` equal-count bins (deciles) of the score, and
    per bin (n, mean score, realised rate).

    >>> ece, table = calibration([0.2] * 5 + [0.8] * 5, [1, 0, 0, 0, 0, 1, 1, 1, 1, 0], 2)
    >>> round(ece, 6), table
    (0.0, [(5, 0.2, 0.2), (5, 0.8, 0.8)])
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=float)
    if len(s) == 0:
        return float("nan"), []
    order = np.argsort(s, kind="mergesort")
    table = []
    ece = 0.0
    for part in np.array_split(order, min(bins, len(s))):
        ms, my = float(s[part].mean()), float(y[part].mean())
        table.append((len(part), round(ms, 6), round(my, 6)))
        ece += len(part) / len(s) * abs(ms - my)
    return ece, table


def log_loss(scores: Sequence[float], labels: Sequence[bool]) -> float:
    s = np.clip(np.asarray(scores, dtype=float), 1e-6, 1 - 1e-6)
    y = np.asarray(labels, dtype=float)
    return float(-(y * np.log(s) + (1 - y) * np.log(1 - s)).mean()) if len(s) else float("nan")


def poisson_binomial_pmf(ps: Sequence[float]) -> np.ndarray:
    """P(K = k) for k = 0..n successes of independent Bernoulli(p_i) trials (exact DP).

    >>> poisson_binomial_pmf([0.5, 0.5]).tolist()
    [0.25, 0.5, 0.25]
    """
    pmf = np.zeros(len(ps) + 1)
    pmf[0] = 1.0
    for i, p in enumerate(ps):
        pmf[1:i + 2] = pmf[1:i + 2] * (1 - p) + pmf[0:i + 1] * p
        pmf[0] *= 1 - p
    return pmf


def central_interval(pmf: np.ndarray, level: float) -> tuple[int, int]:
    """The largest k_lo with P(K < k_lo) <= a/2 and the smallest k_hi with P(K > k_hi) <= a/2.

    >>> central_interval(poisson_binomial_pmf([0.5] * 10), 0.8)
    (3, 7)
    """
    tail = (1 - level) / 2
    cdf = np.cumsum(pmf)
    lo = int(np.searchsorted(cdf, tail + 1e-12, side="right"))  # P(K <= lo - 1) <= tail
    hi = int(np.searchsorted(cdf, 1 - tail - 1e-12, side="left"))
    return lo, hi


# --- the truth side ------------------------------------------------------------------
def truth_summary(truth: Truth, min_entrants: int = 500) -> dict[str, Any]:
    """Per flow and over cohorts: entrants, converged, expected vs realised, the noise floor."""
    flows: dict[str, dict[str, Any]] = {}
    ps_by_cohort: dict[tuple[str, int], list[float]] = defaultdict(list)
    for j in truth.journeys:
        f = flows.setdefault(j.flow_id, {"journeys": 0, "reached": 0, "sum_p": 0.0,
                                         "unsubscribed": 0, "complained": 0, "late": 0,
                                         "apple": 0})
        f["journeys"] += 1
        f["reached"] += j.reached
        f["sum_p"] += j.true_p
        f["apple"] += j.apple
        if j.outcome in ("unsubscribed", "complained", "late"):
            f[j.outcome] += 1
        ps_by_cohort[(j.flow_id, j.cohort_day)].append(j.true_p)
    for f in flows.values():
        f["mean_true_p"] = round(f.pop("sum_p") / f["journeys"], 4)
        f["reached_share"] = round(f["reached"] / f["journeys"], 4)
    cohorts = []
    for c in truth.cohorts:
        pmf = poisson_binomial_pmf(ps_by_cohort[(c.flow_id, c.cohort_day)])
        lo80, hi80 = central_interval(pmf, 0.8)
        lo95, hi95 = central_interval(pmf, 0.95)
        cohorts.append({
            "flow_id": c.flow_id, "cohort_day": c.cohort_day, "entrants": c.entrants,
            "expected": round(c.expected, 4), "realised": round(c.realised, 4),
            "sd": round(c.sd, 4), "shift": c.shift,
            "rel_error": (c.expected - c.realised) / c.realised if c.realised else float("nan"),
            "in80": lo80 <= c.converged <= hi80, "in95": lo95 <= c.converged <= hi95,
        })
    big = [c for c in cohorts if c["entrants"] >= min_entrants]

    def oracle(rows: list[dict]) -> dict[str, Any]:
        errs = [abs(r["rel_error"]) for r in rows if math.isfinite(r["rel_error"])]
        return {"cohorts": len(rows),
                "mean_abs_rel_error": _r(np.mean(errs)) if errs else None,
                "within_15pct": _r(np.mean([e <= 0.15 for e in errs])) if errs else None,
                "mean_rel_sd": _r(np.mean([r["sd"] / r["expected"] for r in rows
                                           if r["expected"] > 0])) if rows else None,
                "coverage80": _r(np.mean([r["in80"] for r in rows])) if rows else None,
                "coverage95": _r(np.mean([r["in95"] for r in rows])) if rows else None}

    ps = [j.true_p for j in truth.journeys]
    ys = [j.reached for j in truth.journeys]
    ece, _ = calibration(ps, ys)
    return {
        "journeys": len(truth.journeys), "reached": int(sum(ys)),
        "flows": flows, "cohorts": cohorts,
        "oracle_forecast_all": oracle(cohorts),
        f"oracle_forecast_ge{min_entrants}": oracle(big),
        "oracle_propensity": {"roc_auc": _r(roc_auc(ps, ys)), "ece": _r(ece),
                              "log_loss": _r(log_loss(ps, ys))},
    }


def _r(x: float) -> float:
    return round(float(x), 4)


# =====================================================================================
# MODEL SIDE: evaluate(tables, truth) -- the engine's tables against the truth
# =====================================================================================
def evaluate(tables_or_rows: Mapping[str, Iterable[Any]], truth: Truth,
             baselines: Mapping[str, Mapping[str, Iterable[Any]]] | None = None,
             min_entrants: int = 0, leads_days: Sequence[int] = (1, 2, 3)) -> dict[str, Any]:
    """The engine's convergence predictions against what really happened.

    `tables_or_rows` maps table names to rows (dicts, or anything with `_asdict`):
    ``flow_propensities`` (flow_id, recipient_hash, score, as_of; every score a journey ever
    had, or only the latest), ``convergence_forecast`` (flow_id, cohort_day, as_of, entered,
    converged, expected_converged, forecast_score, lo80, hi80, lo95, hi95) and
    ``cohort_outcomes`` (flow_id, cohort_day, entered, converged, score, window_days). Any
    may be missing. ``as_of``: a datetime, epoch milliseconds or epoch seconds;
    ``cohort_day``: a date or a UTC day number.

    - propensity, per journey of the truth: the ``entry`` score (its first score before
      the outcome) and the ``latest`` score before the outcome (the goal's conversion, or the
      window's end), each against `reached`: ROC AUC, log loss, expected calibration error
      over deciles, how many journeys had such a score;
    - forecast, per cohort (with at least `min_entrants` entrants) and lead L in
      `leads_days`: the latest row with ``as_of <= (cohort_day + L) days`` against the
      realised score: mean absolute relative error, bias, share within +-15%, 80% / 95%
      interval coverage, the 80% interval's mean width relative to the forecast (coverage
      is cheap with wide intervals), and whether its ``entered`` equals the true entrants;
    - outcomes: the engine's realised cohort rows against the truth's;
    - `baselines` (name -> tables of the same shapes, e.g. the trailing convergence score
      as a forecast, the per-message conversion model's scores as propensities): the same.
    """
    out: dict[str, Any] = {}
    props = tables_or_rows.get("flow_propensities")
    if props is not None:
        out["propensity"] = _evaluate_propensities(props, truth)
    forecast = tables_or_rows.get("convergence_forecast")
    if forecast is not None:
        out["forecast"] = _evaluate_forecasts(forecast, truth, min_entrants, leads_days)
    outcomes = tables_or_rows.get("cohort_outcomes")
    if outcomes is not None:
        out["outcomes"] = _evaluate_outcomes(outcomes, truth)
    if baselines:
        out["baselines"] = {name: evaluate(tables, truth, None, min_entrants, leads_days)
                            for name, tables in baselines.items()}
    return out


def _row(row: Any) -> Mapping[str, Any]:
    return row._asdict() if hasattr(row, "_asdict") else row


def as_ms(value: Any) -> int:
    """Epoch milliseconds from a datetime (naive = UTC), epoch ms or epoch seconds.

    >>> as_ms(1_795_219_200), as_ms(1_795_219_200_000), as_ms(datetime(2026, 11, 21))
    (1795219200000, 1795219200000, 1795219200000)
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return round((value - datetime(1970, 1, 1)).total_seconds() * 1000)
        return round(value.timestamp() * 1000)
    value = float(value)
    return round(value if value > 100_000_000_000 else value * 1000)


def as_day(value: Any) -> int:
    """A UTC day number from a date or a number."""
    if isinstance(value, datetime):
        return as_ms(value) // DAY_MS
    if isinstance(value, date):
        return (value - date(1970, 1, 1)).days
    return int(value)


def _binary_report(scores: list[float], labels: list[bool], total: int) -> dict[str, Any]:
    ece, table = calibration(scores, labels)
    return {"n": len(scores), "missing": total - len(scores),
            "positives": int(sum(labels)),
            "roc_auc": _r(roc_auc(scores, labels)) if scores else None,
            "log_loss": _r(log_loss(scores, labels)) if scores else None,
            "ece": _r(ece) if scores else None, "deciles": table}


def _evaluate_propensities(rows: Iterable[Any], truth: Truth) -> dict[str, Any]:
    journeys = truth.by_journey()
    window_ms = round(truth.window_days * DAY_MS)
    scored: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    unknown = 0
    for raw in rows:
        row = _row(raw)
        key = (row["flow_id"], row["recipient_hash"])
        if key not in journeys:
            unknown += 1
            continue
        scored[key].append((as_ms(row["as_of"]), float(row["score"])))
    entry_s, entry_y, latest_s, latest_y = [], [], [], []
    for key, j in journeys.items():
        outcome_ms = j.reached_ms if j.reached else j.entered_ms + window_ms
        before = sorted(x for x in scored.get(key, ()) if x[0] < outcome_ms)
        if before:
            entry_s.append(before[0][1])
            entry_y.append(j.reached)
            latest_s.append(before[-1][1])
            latest_y.append(j.reached)
    return {"journeys": len(journeys), "rows_not_in_truth": unknown,
            "entry": _binary_report(entry_s, entry_y, len(journeys)),
            "latest": _binary_report(latest_s, latest_y, len(journeys))}


def _evaluate_forecasts(rows: Iterable[Any], truth: Truth, min_entrants: int,
                        leads_days: Sequence[int]) -> dict[str, Any]:
    by_cohort: dict[tuple[str, int], list[tuple[int, Mapping[str, Any]]]] = defaultdict(list)
    for raw in rows:
        row = _row(raw)
        by_cohort[(row["flow_id"], as_day(row["cohort_day"]))].append((as_ms(row["as_of"]), row))
    for items in by_cohort.values():
        items.sort(key=lambda x: x[0])
    cohorts = [c for c in truth.cohorts if c.entrants >= min_entrants]
    out: dict[str, Any] = {"cohorts": len(cohorts)}
    for lead in leads_days:
        errs, in80, in95, entered_ok, missing, width80 = [], [], [], [], 0, []
        for c in cohorts:
            cutoff = (c.cohort_day + lead) * DAY_MS
            items = [r for ts, r in by_cohort.get((c.flow_id, c.cohort_day), ()) if ts <= cutoff]
            if not items:
                missing += 1
                continue
            r = items[-1]
            realised = c.realised
            if realised > 0:
                errs.append((float(r["forecast_score"]) - realised) / realised)
            in80.append(float(r["lo80"]) <= realised <= float(r["hi80"]))
            if float(r["forecast_score"]) > 0:  # sharpness: the 80% width / the forecast
                width80.append((float(r["hi80"]) - float(r["lo80"])) / float(r["forecast_score"]))
            in95.append(float(r["lo95"]) <= realised <= float(r["hi95"]))
            entered_ok.append(int(r["entered"]) == c.entrants)
        out[f"{lead}d"] = {
            "n": len(in80), "missing": missing,
            "mean_abs_rel_error": _r(np.mean(np.abs(errs))) if errs else None,
            "bias": _r(np.mean(errs)) if errs else None,
            "within_15pct": _r(np.mean(np.abs(errs) <= 0.15)) if errs else None,
            "coverage80": _r(np.mean(in80)) if in80 else None,
            "coverage95": _r(np.mean(in95)) if in95 else None,
            "mean_rel_width80": _r(np.mean(width80)) if width80 else None,
            "entered_matches_truth": _r(np.mean(entered_ok)) if entered_ok else None,
        }
    return out


def _evaluate_outcomes(rows: Iterable[Any], truth: Truth) -> dict[str, Any]:
    cohorts: dict[tuple[str, int], CohortTruth] = {(c.flow_id, c.cohort_day): c
                                                   for c in truth.cohorts}
    n = exact = 0
    diffs = []
    unknown = 0
    for raw in rows:
        row = _row(raw)
        c = cohorts.get((row["flow_id"], as_day(row["cohort_day"])))
        if c is None:
            unknown += 1
            continue
        n += 1
        exact += int(row["entered"]) == c.entrants and int(row["converged"]) == c.converged
        diffs.append(abs(float(row["score"]) - c.realised))
    return {"n": n, "of_cohorts": len(cohorts), "rows_not_in_truth": unknown,
            "exact": exact, "max_abs_score_diff": _r(max(diffs)) if diffs else None}


# --- the command ---------------------------------------------------------------------
def engine_tables(sim: JourneySimulator, window_days: int) -> tuple[dict[str, list], dict]:
    """Run the job's analytics (in-process, event-time order: what the shards and the
    models' step compute) over the simulator's events; the rows of the convergence tables,
    the per-message conversion scores at entry as a baseline, and the cost."""
    from operators.analytics import EngagementAnalytics, empty_batch
    from operators.bounces import BounceClassifier
    from schemas.events import Event, EventParser
    from schemas.hashing import DEV_HASH_KEY, RecipientHasher

    parse = EventParser(RecipientHasher(DEV_HASH_KEY),
                        now=lambda: sim.end_ms / 1000 + 30 * 86_400).parse
    classify = BounceClassifier().classify
    items = []
    for i, raw in enumerate(sim.events()):
        ev = parse(raw.value, raw.topic, 0, i)
        if isinstance(ev, Event):
            bounce = (classify(ev.smtp_code, ev.smtp_status, ev.diagnostic, ev.bounce_kind)
                      if ev.type in ("bounce", "deferred") else None)
            items.append((ev, bounce))
    items.sort(key=lambda it: it[0].ts_ms)
    analytics = EngagementAnalytics(label_window_s=86_400)
    analytics.aggregates.configure_flows(0.05, 0.05, window_days * 86_400, 0.2)
    analytics.recipients.journeys.set_window(window_days * 86_400)
    out = empty_batch()
    started = time.process_time()
    analytics.apply(items, out)
    analytics.flush()
    seconds = time.process_time() - started
    journeys = [r._asdict() | {"as_of": r.as_of_ms} for r in out.propensities]
    # baseline propensity: the per-message conversion score of the entry delivery
    conversion = {sc.message_id: sc.conversion for sc in out.scores}
    baseline = []
    entered: set[tuple[str, str]] = set()
    for ev, _b in items:
        if ev.type == "delivered" and ev.flow_id and (ev.flow_id, ev.recipient_hash) not in entered:
            entered.add((ev.flow_id, ev.recipient_hash))
            baseline.append({"flow_id": ev.flow_id, "recipient_hash": ev.recipient_hash,
                             "score": conversion.get(ev.message_id, 0.0), "as_of": ev.ts_ms})
    first_day = min((r.cohort_day for r in out.forecasts), default=0)
    alerts = [{"flow_id": a.flow_id, "cohort": a.cohort_day - first_day,
               "lead_days": round(a.as_of_ms / DAY_MS - a.cohort_day, 2),
               "forecast_score": round(a.forecast_score, 4), "hi80": round(a.hi80, 4),
               "trailing_score": round(a.trailing_score, 4)} for a in out.flow_alerts]
    tables = {
        "flow_propensities": journeys,
        "convergence_forecast": [r._asdict() | {"as_of": r.as_of_ms} for r in out.forecasts],
        "cohort_outcomes": [r._asdict() for r in out.cohorts],
    }
    quality = {r.model: {"roc_auc": r.roc_auc, "log_loss": r.log_loss, "ece": r.ece, "n": r.n}
               for r in out.model_metrics if r.model.startswith("convergence")}
    cost = {"events": len(items), "analytics_cpu_s": round(seconds, 2),
            "us_per_event": round(seconds / max(len(items), 1) * 1e6, 1),
            "model_metrics": quality, "summary": analytics.aggregates.forecast.summary(),
            "alerts": alerts}
    return tables, {"conversion_score_at_entry": {"flow_propensities": baseline}} | {
        "_cost": cost}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--entrants", type=int, default=500, help="per flow per day")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--shift", action="append", default=[], metavar="FLOW:DAY:DELTA")
    ap.add_argument("--newsletters", type=float, default=0.0, metavar="SHARE",
                    help="daily non-flow mail to this share of each list (recipient history)")
    ap.add_argument("--min-entrants", type=int, default=500)
    ap.add_argument("--truth", help="also write the truth as JSONL here")
    ap.add_argument("--json", action="store_true", help="one JSON line only")
    ap.add_argument("--engine", action="store_true",
                    help="also run the job's analytics over the traffic and measure its "
                         "propensities and forecasts against the truth (evaluate())")
    args = ap.parse_args(argv)
    sim = JourneySimulator(seed=args.seed, start=START, days=args.days,
                           entrants_per_day=args.entrants,
                           shifts=[Shift.parse(s) for s in args.shift],
                           newsletters=args.newsletters)
    t0 = time.perf_counter()
    n_events = sum(1 for _ in sim.events())
    gen_s = time.perf_counter() - t0
    truth = sim.truth()
    if args.truth:
        truth.write_jsonl(args.truth)
    summary = truth_summary(truth, args.min_entrants)
    summary = {"bench": "convergence_truth", "days": args.days, "entrants_per_day":
               args.entrants, "seed": args.seed, "events": n_events,
               # per day of entering cohorts: the steady state once the flows overlap
               "events_per_day": round(n_events / args.days),
               "generate_s": round(gen_s, 2), **summary}
    if not args.json:
        print(f"{n_events:,} events ({summary['events_per_day']:,} per day of cohorts; the "
              f"last ones play out for {sim.tail_days:g} more days), {summary['journeys']:,} "
              "journeys, "
              f"{summary['reached']:,} reached the goal")
        print(f"{'flow':14} {'journeys':>8} {'reached':>8} {'share':>6} {'mean p':>7} "
              f"{'unsub':>6} {'late':>5}")
        for name, f in sorted(summary["flows"].items()):
            print(f"{name:14} {f['journeys']:>8} {f['reached']:>8} {f['reached_share']:>6.3f} "
                  f"{f['mean_true_p']:>7.3f} {f['unsubscribed']:>6} {f['late']:>5}")
        print(f"\n{'flow':14} {'day':>5} {'n':>5} {'expected':>8} {'realised':>8} {'sd':>6} "
              f"{'rel err':>7} {'shift':>5}")
        for c in summary["cohorts"]:
            print(f"{c['flow_id']:14} {c['cohort_day']:>5} {c['entrants']:>5} "
                  f"{c['expected']:>8.4f} {c['realised']:>8.4f} {c['sd']:>6.4f} "
                  f"{c['rel_error']:>+7.3f} {c['shift']:>5g}")
        print("\nnoise floor (a forecaster that knows every true p):")
        for key in ("oracle_forecast_all", f"oracle_forecast_ge{args.min_entrants}"):
            print(f"  {key}: {summary[key]}")
        print(f"  oracle propensity (true p vs reached): {summary['oracle_propensity']}")
    summary["cohorts"] = len(summary["cohorts"])
    if args.engine:
        tables, extra = engine_tables(sim, int(round(sim.window_ms / DAY_MS)))
        cost = extra.pop("_cost")
        summary["engine"] = evaluate(tables, truth, extra, args.min_entrants)
        summary["engine"]["cost"] = cost
        if not args.json:
            print(orjson.dumps(summary["engine"], option=orjson.OPT_INDENT_2
                               | orjson.OPT_NON_STR_KEYS).decode())
    print(orjson.dumps(summary, option=orjson.OPT_NON_STR_KEYS).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
