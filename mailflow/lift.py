"""`mailflow lift`: what the mail caused, per flow, read from the `lift` table; and
`mailflow lift --plan`, how large a control group must be to see a given lift.

The rows are computed by the job (operators/lift_stats.py); this module only reads the
latest row of each flow and window and says what it means, in words a marketer can act
on, or as one JSON document for machines.
"""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from flows.settings import Settings
from operators.lift_stats import SRM_ALARM_P, Plan, mde, plan

HELP = """\
Report what the mail caused, per flow, from its control group (table mailflow.lift).

Lift is the difference in conversion rate between the recipients a flow was meant to
mail (treated) and comparable recipients it deliberately did not mail (control: the
flow's holdout, or the global control group that gets no marketing at all, shown as
"all marketing (global control group)"). Who is in which arm is decided by a keyed
hash, so the arms differ only by the mail, and the difference is what the mail caused.

Intent-to-treat: a recipient counts in the arm of their first send or holdout in the
flow, whatever happened after (a bounce, an unread mail, a later crossover), so the
arms stay comparable. The outcome is a conversion (or the configured goal) and its
value within the window after assignment (--window-days). Opens are never an outcome:
Apple Mail Privacy Protection and security scanners open mail by machine, so an open
says nothing about a person. Human clicks are shown as a secondary metric of the
treated arm only (the control got no mail to click).

Two 95% intervals for the lift: the fixed one (Newcombe's score interval) is right
only when read once, at a sample size fixed in advance; the report is updated every
day, and a fixed interval peeked at daily claims an effect that is not there far more
often than 5% of the time. The always-valid one (a mixture sequential test) stays
right however often it is read; "caused" and "significant" use only that one. Value
per recipient has a Welch interval. Guardrails: unsubscribe and complaint rates of
both arms.

The split is checked against the configured control share (sample-ratio-mismatch
chi-square test on everyone assigned): below p = 0.001 the report says SPLIT BROKEN,
and every lift of that flow is meaningless until the cause (lost holdout events, a
sender that skips the assignment) is fixed.

--plan sizes a control group: recipients needed to detect --mde percentage points
over a --baseline conversion rate with --control-share in control, days at
--daily-recipients, and the conversions the control group forgoes.
"""

NO_ROWS = ("no lift rows yet: are holdout events flowing? see README "
           "(\"Lift: what the mail caused\")")

GLOBAL_LABEL = "all marketing (global control group)"


def _quote(text: str) -> str:
    """A ClickHouse string literal.

    >>> print(_quote("it's"))
    'it\\'s'
    """
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def latest_sql(flows: list[str] | None = None, window_days: int | None = None) -> str:
    """The latest row of each (flow_id, window_days), optionally for some flows and a window.

    >>> print(latest_sql(["onboarding"], 7))  # doctest: +NORMALIZE_WHITESPACE
    SELECT * FROM mailflow.lift FINAL WHERE flow_id IN ('onboarding') AND window_days = 7
    ORDER BY flow_id, window_days, as_of DESC LIMIT 1 BY flow_id, window_days
    """
    return _latest("lift", "flow_id", ("flow_id",), flows, window_days)


def segments_sql(names: list[str] | None = None, window_days: int | None = None) -> str:
    """The latest row of each campaign and policy experiment (`lift_segments`).

    >>> print(segments_sql(["send_time"]))  # doctest: +NORMALIZE_WHITESPACE
    SELECT * FROM mailflow.lift_segments FINAL WHERE segment IN ('send_time')
    ORDER BY scope, segment, window_days, as_of DESC LIMIT 1 BY scope, segment, window_days
    """
    return _latest("lift_segments", "segment", ("scope", "segment"), names, window_days)


def _latest(table: str, name_column: str, unit: tuple[str, ...], names: list[str] | None,
            window_days: int | None) -> str:
    where = []
    if names:
        where.append(f"{name_column} IN ({', '.join(_quote(f) for f in names)})")
    if window_days is not None:
        where.append(f"window_days = {int(window_days)}")
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    key = ", ".join((*unit, "window_days"))
    return (f"SELECT * FROM mailflow.{table} FINAL{clause} "
            f"ORDER BY {key}, as_of DESC LIMIT 1 BY {key}")


# ---------------------------------------------------------------- formatting

def _num(value: Any) -> float:
    """A cell as a float: None (a nan through the job's JSON) and strings become nan."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _pp(value: Any, digits: int = 2) -> str:
    """Percentage points, signed.

    >>> _pp(0.0112), _pp(-0.0049, 1), _pp(None)
    ('+1.12 pp', '-0.5 pp', 'n/a')
    """
    x = _num(value)
    return "n/a" if math.isnan(x) else f"{x * 100:+.{digits}f} pp"


def _pct(value: Any, digits: int = 2) -> str:
    x = _num(value)
    return "n/a" if math.isnan(x) else f"{x * 100:.{digits}f}%"


def _count(value: Any) -> str:
    x = _num(value)
    return "n/a" if math.isnan(x) else f"{round(x):,}"


def _money(value: Any, signed: bool = False) -> str:
    x = _num(value)
    return "n/a" if math.isnan(x) else (f"{x:+,.2f}" if signed else f"{x:,.2f}")


def about(value: float) -> str:
    """A count rounded for a sentence: two significant digits from 100 on.

    >>> about(338.6), about(12_345), about(42.4), about(-1234)
    ('340', '12,000', '42', '-1,200')
    """
    if math.isnan(value):
        return "n/a"
    magnitude = abs(value)
    if magnitude < 100:
        return f"{round(value):,}"
    digits = int(math.floor(math.log10(magnitude))) - 1
    return f"{round(value, -digits):,.0f}"


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def days_covered(row: dict[str, Any]) -> float:
    """Days from the first assignment to `as_of` (nan when either is unknown)."""
    first, last = _when(row.get("first_assigned")), _when(row.get("as_of"))
    if first is None or last is None or first.year < 1971:
        return math.nan
    return max(0.0, (last - first).total_seconds() / 86_400)


def _days_text(days: float) -> str:
    if math.isnan(days):
        return "an unknown number of days"
    if days < 1.5:
        return f"{days:.1f} days" if days != 1 else "1 day"
    return f"{round(days)} days"


def label(flow_id: str) -> str:
    return GLOBAL_LABEL if flow_id == "" else f"flow {flow_id}"


def row_label(row: dict[str, Any]) -> str:
    """A flow's label, or a segment's ("campaign spring", "experiment send_time")."""
    if "scope" in row:
        return f"{row['scope']} {row.get('segment', '')}"
    return label(str(row.get("flow_id", "")))


def _subject(row: dict[str, Any]) -> str:
    if "scope" in row:
        return f"{str(row['scope']).capitalize()} {row.get('segment', '')}"
    flow_id = str(row.get("flow_id", ""))
    return "All marketing" if flow_id == "" else f"Flow {flow_id}"


def _srm_parts(row: dict[str, Any]) -> tuple[str, str]:
    """(what the split is, what it means) for the sample-ratio verdict."""
    share = _num(row.get("expected_control_share"))
    treated, control = _num(row.get("treated_assigned")), _num(row.get("control_assigned"))
    assigned = treated + control
    p = _num(row.get("srm_p"))
    observed = control / assigned if assigned > 0 else math.nan
    split = (f"{_count(control)} of {_count(assigned)} assigned are in control "
             f"({_pct(observed, 1)}), expected {_pct(share, 1)}")
    if bool(row.get("srm_alarm")):
        return (f"SPLIT BROKEN: {split}, SRM p = {p:.2g} < {SRM_ALARM_P:g};",
                "every lift for this flow is meaningless until fixed (lost holdout events? "
                "a sender that skips the assignment?)")
    if not 0.0 < share < 1.0 or not assigned > 0:
        return ("split not tested (no expected control share configured, or nobody "
                "assigned)", "")
    return f"split OK: {split} (SRM p = {p:.2g})", ""


def srm_verdict(row: dict[str, Any]) -> str:
    """The sample-ratio verdict: split OK, SPLIT BROKEN (loud), or not tested.

    >>> print(srm_verdict({"srm_alarm": 1, "srm_p": 1e-9, "expected_control_share": 0.1,
    ...                    "treated_assigned": 9_000, "control_assigned": 667}))
    ... # doctest: +NORMALIZE_WHITESPACE
    SPLIT BROKEN: 667 of 9,667 assigned are in control (6.9%), expected 10.0%, SRM p = 1e-09
    < 0.001; every lift for this flow is meaningless until fixed (lost holdout events? a
    sender that skips the assignment?)
    """
    return " ".join(part for part in _srm_parts(row) if part)


def sentence(row: dict[str, Any]) -> str:
    """The plain-language conclusion; only the always-valid interval says "caused".

    >>> print(sentence({"flow_id": "onboarding", "abs_lift": 0.011, "av_lo95": 0.006,
    ... # doctest: +NORMALIZE_WHITESPACE
    ...                 "av_hi95": 0.016, "significant": 1, "incremental_conversions": 338.6,
    ...                 "as_of": "2026-12-01T00:00:00", "first_assigned": "2026-11-01",
    ...                 "srm_alarm": 0}))
    Flow onboarding caused +1.1 pp conversions (always-valid 95% CI +0.6 to +1.6 pp),
    about 340 conversions over 30 days.
    """
    who = _subject(row)
    days = _days_text(days_covered(row))
    lift = _num(row.get("abs_lift"))
    ci = (f"always-valid 95% CI {_pp(row.get('av_lo95'), 1).removesuffix(' pp')} to "
          f"{_pp(row.get('av_hi95'), 1)}")
    if bool(row.get("srm_alarm")):
        return f"{who}: no conclusion, the split is broken (see above)."
    if math.isnan(lift):
        return (f"{who}: no conclusion yet, one arm has no recipients counted yet "
                "(only recipients whose window closed count).")
    if bool(row.get("significant")):
        extra = _num(row.get("incremental_conversions"))
        if lift > 0:
            return (f"{who} caused {_pp(lift, 1)} conversions ({ci}), about {about(extra)} "
                    f"conversions over {days}.")
        return (f"{who} caused {_pp(lift, 1)} conversions ({ci}): about {about(-extra)} "
                f"conversions lost over {days}.")
    return (f"{who}: no evidence of an effect yet ({_pp(lift, 1)}, {ci}, over {days}).")


def format_row(row: dict[str, Any]) -> str:
    """One flow and window as a block of text."""
    broken = bool(row.get("srm_alarm"))
    lines: list[str] = []
    if broken:
        what, meaning = _srm_parts(row)
        lines += ["!" * 78, f"!! {what}", f"!! {meaning}", "!" * 78]
    as_of = _when(row.get("as_of"))
    first = _when(row.get("first_assigned"))
    goal = str(row.get("goal") or "") or "any conversion"
    lines.append(f"{row_label(row)}: {row.get('window_days')}-day window, goal {goal}")
    when = []
    if as_of is not None:
        when.append(f"as of {as_of:%Y-%m-%d %H:%M} UTC")
    if first is not None and first.year >= 1971:
        when.append(f"assigned since {first:%Y-%m-%d} ({_days_text(days_covered(row))})")
    if when:
        lines.append("  " + ", ".join(when))
    if bool(row.get("partial")):
        lines.append("  (partial: the input ended before any window closed; the counts include "
                     "windows still open)")
    lines.append(f"  {'arm':<9}{'recipients':>12}{'conversions':>13}{'rate':>9}"
                 f"{'value/recipient':>17}")
    for arm in ("treated", "control"):
        lines.append(f"  {arm:<9}{_count(row.get(f'{arm}_n')):>12}"
                     f"{_count(row.get(f'{arm}_conv')):>13}{_pct(row.get(f'{arm}_rate')):>9}"
                     f"{_money(row.get(f'{arm}_value_per')):>17}")
    verdict = ("meaningless: the split is broken" if broken else
               "significant" if row.get("significant") else "not significant")
    lines += [
        f"  lift {_pp(row.get('abs_lift'))} (relative {_rel(row.get('rel_lift'))})",
        f"    fixed 95% CI         {_pp(row.get('abs_lo95'))} to "
        f"{_pp(row.get('abs_hi95'))}   (right for one look at a planned size)",
        f"    always-valid 95% CI  {_pp(row.get('av_lo95'))} to "
        f"{_pp(row.get('av_hi95'))}   (right however often you look; {verdict})",
        f"  incremental: about {about(_num(row.get('incremental_conversions')))} conversions, "
        f"{_money(row.get('incremental_value'), True)} value",
        f"    value per recipient {_money(row.get('value_lift'), True)} (Welch 95% CI "
        f"{_money(row.get('value_lo95'), True)} to {_money(row.get('value_hi95'), True)})",
        f"  guardrails, treated vs control: unsubscribes {_pct(row.get('treated_unsub_rate'))} "
        f"vs {_pct(row.get('control_unsub_rate'))}, complaints "
        f"{_pct(row.get('treated_complaint_rate'), 3)} vs "
        f"{_pct(row.get('control_complaint_rate'), 3)}",
        f"  human clicks (secondary, treated only): {_pct(row.get('treated_click_rate'))}"]
    if _num(row.get("crossovers")) > 0:
        lines.append(f"  crossovers: {_count(row.get('crossovers'))} recipients reached both "
                     "arms (each counted in their first: intent-to-treat)")
    if not broken:
        lines.append(f"  {srm_verdict(row)}")
    lines.append(f"  => {sentence(row)}")
    return "\n".join(lines)


def _rel(value: Any) -> str:
    x = _num(value)
    return "n/a" if math.isnan(x) else f"{x * 100:+.1f}%"


def _clean(value: Any) -> Any:
    """JSON-safe: nan and infinities become null (orjson would too, say so here)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def as_document(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON document: every column of each row, plus what the text report derives."""
    out = []
    for row in rows:
        item = {k: _clean(v) for k, v in row.items()}
        days = days_covered(row)
        item.update(label=row_label(row),
                    days_covered=None if math.isnan(days) else round(days, 3),
                    srm_verdict=srm_verdict(row), summary=sentence(row))
        out.append(item)
    return {"lift": out}


# ---------------------------------------------------------------- reading the store

def read_latest(settings: Settings, flows: list[str] | None,
                window_days: int | None, segments: bool = False
                ) -> list[dict[str, Any]] | None:
    """The latest rows, or None when there is no store or no `lift` table yet."""
    from mailflow.sqlcli import query_via_admin, run_query
    from sinks.clickhouse import chdb_path

    path = chdb_path(settings.clickhouse_dsn)
    if path is not None and not path.exists() and \
            query_via_admin(settings.admin_port, "SELECT 1") is None:
        return None
    table = "lift_segments" if segments else "lift"
    _, exists = run_query(settings, f"EXISTS TABLE mailflow.{table}")
    if not exists or not exists[0][0]:
        return None
    sql = segments_sql(flows, window_days) if segments else latest_sql(flows, window_days)
    columns, rows = run_query(settings, sql)
    return [dict(zip(columns, row, strict=True)) for row in rows]


def run_lift(settings: Settings, flows: list[str] | None, window_days: int | None,
             as_json: bool, segments: bool = False) -> int:
    # (the store's modules load here, not with the module: every CLI verb reads its HELP)
    from sinks.clickhouse import StoreError

    try:
        rows = read_latest(settings, flows, window_days, segments)
    except StoreError as exc:
        print(f"mailflow lift: {exc}", file=sys.stderr)
        return 1
    if not rows:
        if as_json:
            print(orjson.dumps({"lift": [], "message": NO_ROWS}).decode())
        else:
            what = " for the flows and window asked" if rows is not None and (
                flows or window_days is not None) else ""
            print(NO_ROWS + what)
        return 0
    if as_json:
        print(orjson.dumps(as_document(rows)).decode())
        return 0
    broken = [row_label(r) for r in rows if r.get("srm_alarm")]
    if broken:
        print(f"SPLIT BROKEN for {', '.join(sorted(set(broken)))}: see below.\n")
    print("\n\n".join(format_row(r) for r in rows))
    return 0


# ---------------------------------------------------------------- planning

def parse_rate(text: str) -> float:
    """A rate as a fraction: '0.05', '5%'.

    >>> parse_rate("5%"), parse_rate("0.05")
    (0.05, 0.05)
    """
    text = text.strip()
    if text.endswith("%"):
        return float(text[:-1]) / 100.0
    return float(text)


def parse_pp(text: str) -> float:
    """Percentage points as a fraction: '1' and '1pp' are 0.01.

    >>> parse_pp("0.5"), parse_pp("1pp")
    (0.005, 0.01)
    """
    text = text.strip().lower().removesuffix("pp").strip()
    return float(text) / 100.0


def plan_document(the_plan: Plan, daily: int | None) -> dict[str, Any]:
    """The plan as numbers: sizes, days, what the control group forgoes, and the MDE
    reached after some durations at `daily` recipients."""
    lift = the_plan.mde_abs
    doc: dict[str, Any] = {k: _clean(v) for k, v in the_plan._asdict().items()}
    doc.update(expected_lift=lift,
               forgone_conversions=the_plan.control * lift,
               av_forgone_conversions=the_plan.av_control * lift)
    if daily:
        doc.update(daily_recipients=daily,
                   days=math.ceil(the_plan.total / daily),
                   av_days=math.ceil(the_plan.av_total / daily),
                   forgone_per_day=daily * the_plan.control_share * lift,
                   mde_after_days={str(d): _clean(mde(daily * d, the_plan.control_share,
                                                      the_plan.baseline_rate, the_plan.alpha,
                                                      the_plan.power))
                                   for d in (7, 14, 30, 60, 90)})
    return doc


def format_plan(doc: dict[str, Any]) -> str:
    share, lift = doc["control_share"], doc["mde_abs"]
    lines = [
        f"To detect a lift of {_pp(lift)} over a {_pct(doc['baseline_rate'])} baseline "
        f"(two-sided alpha {doc['alpha']:g},",
        f"power {doc['power'] * 100:.0f}%) with {_pct(share, 1)} of recipients in control:",
        f"  fixed horizon (read once, at the end):     {doc['total']:>10,} recipients "
        f"({doc['control']:,} control + {doc['treated']:,} treated)",
        f"  always-valid (read as often as you like):  {doc['av_total']:>10,} recipients "
        f"({doc['av_control']:,} control + {doc['av_treated']:,} treated)",
        f"    (x{doc['av_inflation']:.2f} the fixed horizon if the lift is exactly "
        f"{_pp(lift)}; a larger lift stops it sooner)",
    ]
    if "days" in doc:
        lines.append(f"  at {doc['daily_recipients']:,} recipients a day: {doc['days']:,} days "
                     f"(always-valid: up to {doc['av_days']:,} days)")
    lines += [
        f"  what the control group costs: its recipients still convert at the baseline "
        f"{_pct(doc['baseline_rate'])};",
        f"    if the mail lifts conversions by {_pp(lift)}, they forgo about "
        f"{about(doc['forgone_conversions'])} conversions over the fixed horizon",
        f"    ({about(doc['av_forgone_conversions'])} over the always-valid one)"
        + (f", about {doc['forgone_per_day']:,.1f} a day" if "days" in doc else "")]
    if "mde_after_days" in doc:
        lines.append("  smallest lift detectable at a fixed horizon of:")
        lines += [f"    {d:>3} days ({doc['daily_recipients'] * int(d):,} recipients): {_pp(v)}"
                  for d, v in doc["mde_after_days"].items()]
    return "\n".join(lines)


def run_plan(baseline: str | None, mde_pp: str | None, control_share: str | None,
             alpha: float, power: float, daily: int | None, as_json: bool) -> int:
    missing = [flag for flag, value in (("--baseline", baseline), ("--mde", mde_pp),
                                         ("--control-share", control_share)) if value is None]
    if missing:
        print(f"mailflow lift --plan: {', '.join(missing)} required, e.g. --plan --baseline "
              "3% --mde 0.5 --control-share 10%", file=sys.stderr)
        return 2
    try:
        p0, lift = parse_rate(str(baseline)), parse_pp(str(mde_pp))
        share = parse_rate(str(control_share))
    except ValueError as exc:
        print(f"mailflow lift --plan: not a number: {exc}", file=sys.stderr)
        return 2
    the_plan = plan(p0, lift, share, alpha, power)
    if the_plan.total == 0:
        print("mailflow lift --plan: out of range: the baseline and baseline + MDE must lie "
              "between 0 and 100%, the MDE above 0, the control share, alpha and power "
              "between 0 and 1", file=sys.stderr)
        return 2
    if daily is not None and daily <= 0:
        print("mailflow lift --plan: --daily-recipients must be positive", file=sys.stderr)
        return 2
    doc = plan_document(the_plan, daily)
    print(orjson.dumps(doc).decode() if as_json else format_plan(doc))
    return 0
