"""Lift through the real job against a known truth: coverage, false positives, SRM alarms.

Each run generates one seeded lift scenario (`mailflow/lift_sim.py`: flow ``onboarding``
with a true effect, ``winback`` with none, per-flow holdouts, a global control group, a
``send_time`` policy experiment), produces it onto a fresh embedded broker, runs the job
over it (`mailflow run --no-tail` on a fresh data dir, the shares set as the job expects
them: MAILFLOW_HOLDOUT_SHARE, MAILFLOW_GLOBAL_CONTROL_SHARE), and reads `mailflow.lift`:
per unit (flow id; ``''`` = global) the row of ``window_days = 7`` with the latest
``as_of``. Over the runs it prints:

- coverage of the true effect by the fixed-horizon 95% interval (``abs_lo95..abs_hi95``)
  and by the always-valid one (``av_lo95..av_hi95``): both should be about 95% or more;
- the null flow's false-positive rate (its interval excludes 0);
- the SRM alarm rate without a broken split (should be about 0.1%) and with one (the
  holdouts of ``--broken-split`` of each flow's control group lost: should be near 1);
- whether the table's arm counts equal the truth's realised counts, and events/s.

    python bench/lift.py [--runs 20] [--broken-runs 10] [--broken-split 0.33]
                         [--recipients-per-day 300] [--days 14] [--seed 1] [--json]

Only the pure parts (`latest_rows`, `judge`, `summarise`) are tested (tests/test_lift_sim.py);
the job's `lift` table must exist, else this stops with a clear message.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailflow.lift_sim import HOLDOUT_TOPIC, LiftSimulator, LiftTruth, default_scenario  # noqa: E402
from operators.lift_stats import newcombe_diff, srm_p  # noqa: E402

WINDOW_DAYS = 7
#: The columns read from `mailflow.lift` (DESIGN.md's contract).
COLUMNS = ("flow_id", "window_days", "as_of", "treated_n", "treated_conv", "control_n",
           "control_conv", "abs_lift", "abs_lo95", "abs_hi95", "av_lo95", "av_hi95", "srm_p",
           "srm_alarm")


class LiftTableMissing(RuntimeError):
    """The job wrote no `mailflow.lift` table (the job side of issue 19 is not there)."""


# --- pure parts -----------------------------------------------------------------------
def latest_rows(rows: Iterable[Mapping[str, Any]], window_days: int = WINDOW_DAYS
                ) -> dict[str, dict[str, Any]]:
    """Per flow_id, the row of `window_days` with the latest `as_of` (ties: the last one).

    >>> rows = [{"flow_id": "a", "window_days": 7, "as_of": 2, "x": 1},
    ...         {"flow_id": "a", "window_days": 7, "as_of": 5, "x": 2},
    ...         {"flow_id": "a", "window_days": 30, "as_of": 9, "x": 3}]
    >>> latest_rows(rows)["a"]["x"]
    2
    """
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        if int(row["window_days"]) != window_days:
            continue
        have = out.get(row["flow_id"])
        if have is None or _as_of(row["as_of"]) >= _as_of(have["as_of"]):
            out[row["flow_id"]] = dict(row)
    return out


def _as_of(value: Any) -> Any:
    return str(value) if not isinstance(value, int | float) else value


def judge(truth: LiftTruth, rows: Mapping[str, Mapping[str, Any]], broken: bool,
          units: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """One verdict per truth unit found in `rows` (the latest row per flow_id): does each
    interval cover the true effect, is 0 outside it, did SRM alarm, do the arm counts equal
    the realised ones (the observed control group, as the stream shows it). `units` maps a
    truth unit to a flow_id of the table (default: the same name)."""
    out = []
    for u in truth.units:
        key = (units or {}).get(u.unit, u.unit)
        row = rows.get(key)
        if row is None:
            continue
        # an estimate that does not exist (an empty arm) is NULL: it covers nothing
        lo, hi, av_lo, av_hi = (_num(row[k]) for k in ("abs_lo95", "abs_hi95", "av_lo95",
                                                          "av_hi95"))
        seen = (int(row["treated_n"]), int(row["treated_conv"]), int(row["control_n"]),
                int(row["control_conv"]))
        reading, effect = _reading(u, seen)
        out.append({
            "unit": u.unit, "kind": u.kind, "true_effect": effect, "broken": broken,
            "abs_lift": _num(row["abs_lift"]),
            "covered": lo <= effect <= hi,
            "av_covered": av_lo <= effect <= av_hi,
            "excludes_zero": lo > 0.0 or hi < 0.0,
            "av_excludes_zero": av_lo > 0.0 or av_hi < 0.0,
            "srm_alarm": bool(row["srm_alarm"]),
            "counts_match": reading != "differ", "reading": reading,
        })
    return out


def _num(value: Any) -> float:
    """A table number; NULL (None) as nan, so every comparison with it is false."""
    return math.nan if value is None else float(value)


def _reading(u: Any, seen: tuple[int, int, int, int]) -> tuple[str, float]:
    """Which definition of the arms the table's counts follow, and the true effect under
    it: ``arms`` (the truth's own: treated vs the observed control group), ``with_global``
    (a flow's control group counted with its global control members), ``itt`` (global:
    the flows' control groups counted as treated), or ``differ`` (none: a bug somewhere)."""
    arms = (u.treated_n, u.treated_conv, u.observed_control_n, u.observed_control_conv)
    if seen == arms:
        return "arms", u.true_effect
    if u.kind == "flow" and seen == (u.treated_n, u.treated_conv,
                                     u.observed_control_n + u.global_control_n,
                                     u.observed_control_conv + u.global_control_conv):
        return "with_global", u.true_effect  # the same baseline: the same effect
    if u.kind == "global" and u.itt_true_effect is not None and seen == (
            u.treated_n + u.flow_control_n, u.treated_conv + u.flow_control_conv,
            u.observed_control_n, u.observed_control_conv):
        return "itt", u.itt_true_effect
    return "differ", u.true_effect


def _rate(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def summarise(verdicts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Coverage, the null's false-positive rate and SRM alarm rates over many runs' verdicts.

    >>> v = [{"unit": "a", "kind": "flow", "true_effect": 0.02, "broken": False,
    ...       "covered": True, "av_covered": True, "excludes_zero": True,
    ...       "av_excludes_zero": False, "srm_alarm": False, "counts_match": True},
    ...      {"unit": "b", "kind": "flow", "true_effect": 0.0, "broken": False,
    ...       "covered": False, "av_covered": True, "excludes_zero": True,
    ...       "av_excludes_zero": False, "srm_alarm": False, "counts_match": True},
    ...      {"unit": "b", "kind": "flow", "true_effect": 0.0, "broken": True,
    ...       "covered": True, "av_covered": True, "excludes_zero": False,
    ...       "av_excludes_zero": False, "srm_alarm": True, "counts_match": False}]
    >>> s = summarise(v)
    >>> s["coverage"], s["av_coverage"], s["null_false_positive"], s["null_av_false_positive"]
    (0.5, 1.0, 1.0, 0.0)
    >>> s["srm_alarm_clean"], s["srm_alarm_broken"], s["counts_match"]
    (0.0, 1.0, 1.0)
    >>> s["per_unit"]["b"]["n"]
    1
    """
    clean = [v for v in verdicts if not v["broken"]]
    broken = [v for v in verdicts if v["broken"]]
    nulls = [v for v in clean if v["true_effect"] == 0.0]
    flows_clean = [v for v in clean if v["kind"] == "flow"]
    flows_broken = [v for v in broken if v["kind"] == "flow"]
    per_unit: dict[str, dict[str, Any]] = {}
    for unit in sorted({v["unit"] for v in clean}):
        vs = [v for v in clean if v["unit"] == unit]
        per_unit[unit] = {"n": len(vs), "true_effect": vs[0]["true_effect"],
                          "coverage": _rate([v["covered"] for v in vs]),
                          "av_coverage": _rate([v["av_covered"] for v in vs]),
                          "excludes_zero": _rate([v["excludes_zero"] for v in vs]),
                          "av_excludes_zero": _rate([v["av_excludes_zero"] for v in vs]),
                          "mean_abs_lift": _mean([v.get("abs_lift") for v in vs])}
    return {
        "coverage": _rate([v["covered"] for v in clean]),
        "av_coverage": _rate([v["av_covered"] for v in clean]),
        "null_false_positive": _rate([v["excludes_zero"] for v in nulls]),
        "null_av_false_positive": _rate([v["av_excludes_zero"] for v in nulls]),
        "srm_alarm_clean": _rate([v["srm_alarm"] for v in flows_clean]),
        "srm_alarm_broken": _rate([v["srm_alarm"] for v in flows_broken]),
        "counts_match": _rate([v["counts_match"] for v in clean]),
        "readings": dict(sorted(Counter(f"{v['unit'] or '(global)'}:{v.get('reading')}"
                                        for v in clean).items())),
        "per_unit": per_unit,
    }


def _mean(xs: list[Any]) -> float | None:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return round(sum(xs) / len(xs), 5) if xs else None


# --- a reference reading of the truth's own counts (no job) ----------------------------
def reference_verdicts(truth: LiftTruth, broken: bool) -> list[dict[str, Any]]:
    """The verdicts a textbook fixed-horizon reading of the stream's own counts would give
    (Newcombe for the difference, chi-square SRM at p < 0.001): what the simulation allows
    any estimator at best, without the job. No always-valid interval here (``av_*`` repeat
    the fixed one)."""
    rows = {}
    for u in truth.units:
        lo, hi = newcombe_diff(u.treated_conv, u.treated_n, u.observed_control_conv,
                               u.observed_control_n)
        p = srm_p(u.treated_n, u.observed_control_n, u.control_share)
        rows[u.unit] = {"treated_n": u.treated_n, "treated_conv": u.treated_conv,
                        "control_n": u.observed_control_n,
                        "control_conv": u.observed_control_conv,
                        "abs_lift": u.treated_conv / max(u.treated_n, 1)
                        - u.observed_control_conv / max(u.observed_control_n, 1),
                        "abs_lo95": lo, "abs_hi95": hi, "av_lo95": lo, "av_hi95": hi,
                        "srm_p": p, "srm_alarm": p < 0.001}
    return judge(truth, rows, broken)


# --- the real job ---------------------------------------------------------------------
def _mailflow(args: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailflow", *args], cwd=ROOT, env=dict(env),
                          capture_output=True, text=True, timeout=1800)


def read_lift(env: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every row of `mailflow.lift` of the job's store, and the policy experiments' rows of
    `mailflow.lift_segments` with flow_id ``experiment:<name>`` (`mailflow sql`, its own
    process: an embedded store belongs to one process at a time)."""
    check = _mailflow(["sql", "--format", "json", "SELECT count() AS n FROM system.tables "
                       "WHERE database = 'mailflow' AND name = 'lift'"], env)
    if check.returncode != 0:
        raise RuntimeError(f"mailflow sql failed: {check.stderr.strip()[-2000:]}")
    if not orjson.loads(check.stdout)[0]["n"]:
        raise LiftTableMissing(
            "the job wrote no mailflow.lift table: this bench needs the job side of issue 19 "
            "(holdout events, per-recipient assignment and outcomes, the lift table)")
    rows = _sql(f"SELECT {', '.join(COLUMNS)} FROM mailflow.lift FINAL", env)
    segments = ", ".join(("concat('experiment:', segment) AS flow_id",) + COLUMNS[1:])
    rows += _sql(f"SELECT {segments} FROM mailflow.lift_segments FINAL "
                 "WHERE scope = 'experiment'", env, missing_ok=True)
    return rows


def _sql(query: str, env: Mapping[str, str], missing_ok: bool = False
         ) -> list[dict[str, Any]]:
    proc = _mailflow(["sql", "--format", "json", query], env)
    if proc.returncode != 0:
        if missing_ok and "UNKNOWN_TABLE" in proc.stderr:
            return []
        raise RuntimeError(f"{query[:60]}... failed: {proc.stderr.strip()[-2000:]}")
    return orjson.loads(proc.stdout)


def run_one(seed: int, broken_split: float, args: argparse.Namespace) -> dict[str, Any]:
    """Generate, produce, run the job, read the lift table; verdicts and timings."""
    from confluent_kafka import Producer

    from mailflow.broker import EmbeddedBroker, default_topics, ensure_topics

    scenario = default_scenario(days=args.days, recipients_per_day=args.recipients_per_day,
                                broken_split=broken_split)
    sim = LiftSimulator(scenario, seed=seed)  # start: whole days ending before now
    events = list(sim.events())
    truth = sim.truth()
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as data:
        ensure_topics(broker.bootstrap, partitions=3,
                      topics={HOLDOUT_TOPIC: {}, **default_topics()})
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20})
        for i, ev in enumerate(events):
            while True:
                try:
                    producer.produce(ev.topic, ev.value, ev.key)
                    break
                except BufferError:
                    producer.poll(0.05)
            if i % 1000 == 0:
                producer.poll(0)
        if producer.flush(60):
            raise RuntimeError("events still undelivered after 60 s")
        del producer  # before the broker stops: no reconnect noise
        env = {**os.environ, "MAILFLOW_KAFKA_BROKERS": broker.bootstrap,
               "MAILFLOW_DATA_DIR": data, "MAILFLOW_ADMIN_PORT": "0",
               "MAILFLOW_HOLDOUT_SHARE": str(scenario.flows[0].control_share),
               "MAILFLOW_GLOBAL_CONTROL_SHARE": str(scenario.global_control.share),
               "MAILFLOW_LIFT_WINDOWS_DAYS": str(WINDOW_DAYS)}
        if scenario.experiment is not None:  # its control share, for its sample-ratio test
            config = Path(data) / "mailflow.toml"
            config.write_text(f"[experiment_shares]\n{scenario.experiment.name} = "
                              f"{1 - scenario.experiment.treated_share}\n")
            env["MAILFLOW_CONFIG"] = str(config)
        t0 = time.perf_counter()
        job = _mailflow(["run", "--dev", "--no-tail", "--no-recovery"], env)
        job_s = time.perf_counter() - t0
        if job.returncode != 0:
            raise RuntimeError(f"mailflow run exited {job.returncode}: "
                               f"{job.stderr.strip()[-3000:]}")
        print(f"seed {seed}: the job took {job_s:.1f} s for {len(events):,} events "
              f"({len(events) / job_s:,.0f}/s, start-up included)", file=sys.stderr)
        rows = latest_rows(read_lift(env))
    units = {truth.scenario.experiment.unit: args.experiment_key} if (
        truth.scenario.experiment and args.experiment_key) else None
    return {"seed": seed, "broken_split": broken_split, "events": len(events),
            "job_s": round(job_s, 2), "events_per_s": round(len(events) / job_s),
            "verdicts": judge(truth, rows, broken_split > 0, units),
            "missing_units": [u.unit for u in truth.units
                              if (units or {}).get(u.unit, u.unit) not in rows]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="clean scenarios (default 20)")
    ap.add_argument("--broken-runs", dest="broken_runs", type=int, default=10,
                    help="scenarios with a broken split (default 10)")
    ap.add_argument("--broken-split", dest="broken_split", type=float, default=1 / 3,
                    help="share of each flow's control group whose holdouts are lost (1/3)")
    ap.add_argument("--recipients-per-day", dest="recipients_per_day", type=int, default=300)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--seed", type=int, default=1, help="first seed (default 1)")
    ap.add_argument("--experiment-key", dest="experiment_key",
                    default="experiment:send_time",
                    help="the lift table's flow_id of the send_time experiment")
    ap.add_argument("--reference", action="store_true",
                    help="no job: read the truth's own stream counts with a textbook "
                         "Newcombe interval and chi-square SRM test (what the simulation "
                         "allows at best; fast, so use many runs)")
    ap.add_argument("--json", action="store_true", help="one JSON line only")
    args = ap.parse_args(argv)
    runs = []
    plan = [(args.seed + i, 0.0) for i in range(args.runs)] + [
        (args.seed + 10_000 + i, args.broken_split) for i in range(args.broken_runs)]
    if args.reference:
        verdicts = []
        for seed, broken in plan:
            scenario = default_scenario(days=args.days,
                                        recipients_per_day=args.recipients_per_day,
                                        broken_split=broken)
            verdicts += reference_verdicts(LiftSimulator(scenario, seed=seed).truth(),
                                           broken > 0)
        print(orjson.dumps({"bench": "lift_reference", "runs": args.runs,
                            "broken_runs": args.broken_runs,
                            "broken_split": round(args.broken_split, 4),
                            "recipients_per_day": args.recipients_per_day, "days": args.days,
                            **summarise(verdicts)}).decode())
        return 0
    try:
        for seed, broken in plan:
            run = run_one(seed, broken, args)
            runs.append(run)
            if not args.json:
                print(f"seed {seed} broken {broken:.2f}: units missing from the table: "
                      f"{run['missing_units'] or 'none'}", file=sys.stderr)
    except LiftTableMissing as exc:
        print(f"bench/lift.py: {exc}", file=sys.stderr)
        return 2
    summary = summarise([v for r in runs for v in r["verdicts"]])
    job_s = sum(r["job_s"] for r in runs)
    result = {"bench": "lift", "runs": args.runs, "broken_runs": args.broken_runs,
              "broken_split": round(args.broken_split, 4),
              "recipients_per_day": args.recipients_per_day, "days": args.days,
              "events_per_run": round(sum(r["events"] for r in runs) / max(len(runs), 1)),
              "events_per_s": round(sum(r["events"] for r in runs) / job_s) if job_s else None,
              **summary}
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
