"""Control-group lift, intent to treat: who was assigned to which arm, what they did next.

A sending system that keeps a control group records a `holdout` event where it would
have sent a message. Every recipient of a *unit* (a flow, all marketing, a campaign,
or a policy experiment) is assigned once, at their first send or holdout in it, and
stays in that arm whatever happens later (intent to treat: a control recipient who is
mailed anyway is a *crossover*, counted, never moved). Their outcome is what they did
within each window (default 7 days) after their assignment: a conversion (any, or the
configured goal) and its value; the unsubscribes, complaints and human clicks of the
treated are guardrails and a secondary metric. Opens are never an outcome (machine
opens make them meaningless).

Two halves, like the rest of the analytics:

- `LiftUnits` (a recipient shard) holds each recipient's assignments and outcomes,
  and hands the sums `LiftAssigned` at assignment and one `LiftOutcome` per window
  when it closes (stamped with its closing time: the same for any sharding).
- `LiftBook` (a merge) adds them up per unit and window, and reports a `LiftRow` per
  unit changed at every UTC day boundary of event time, and at the end of input.

A unit's row counts only recipients whose window has closed (a recipient whose window
is still open would count as a non-converter and bias the lift towards zero), and the
sample-ratio test counts every recipient assigned. Only when the input ends before any
window of a unit closed are the open windows counted, and the row says `partial`.

Scopes:

- `flow` (key: flow id): the flow's mail against none of it. Only `group: flow` holdouts
  are its control arm: the global control group's members miss every other mail too, so
  they would compare more than the flow.
- `global` (key ""): the global control group against everyone else the programme would
  have mailed: a recipient mailed marketing, or held out of one flow only (that holdout
  says they are not in the global control group). Both arms are then what the global
  draw made of them, so the expected split is the configured global share exactly, and
  the lift is the whole programme's, flow holdouts included (intent to treat).
- `campaign` (key: campaign id), like a flow.
- `experiment` (key: experiment name): a policy applied to a treated share, a baseline
  to the rest; both arms are mailed, the arm is on the events (`experiment`, `arm`).
"""

from __future__ import annotations

import heapq
from typing import NamedTuple

from operators.lift_stats import Arm

DAY_MS = 86_400_000
MINUTE_MS = 60_000
TREATED, CONTROL = 0, 1
FLOW, GLOBAL, CAMPAIGN, EXPERIMENT = "flow", "global", "campaign", "experiment"
#: Scopes reported in the `lift` table; the others go to `lift_segments`.
TABLE_SCOPES = frozenset({FLOW, GLOBAL})
#: The outcome flag each guardrail or secondary event sets on a recipient's assignment.
_FLAG_SLOTS = {"unsubscribe": "unsub_ms", "complaint": "complaint_ms", "click": "click_ms"}
#: How an experiment's arm may be written on an event.
_ARMS = {"treated": TREATED, "treatment": TREATED, "control": CONTROL, "baseline": CONTROL}
#: An assignment is remembered this many times its longest window (a later send in the
#: same unit is the same assignment; after that it starts a new one).
STICKY_WINDOWS = 4


class LiftAssigned(NamedTuple):
    """`count` recipients were assigned to `arm` (or, `crossed`, their assignment was
    contradicted) within the event-time minute starting at `ts_ms`; the first at
    `first_ms` (a shard tallies a minute's assignments: one fact, not one per send)."""

    ts_ms: int
    scope: str
    key: str
    arm: int
    crossed: bool = False
    count: int = 1
    first_ms: int = -1


class LiftOutcome(NamedTuple):
    """One recipient's outcome in one window (`open`: the input ended before it closed)."""

    ts_ms: int
    scope: str
    key: str
    arm: int
    window_days: int
    converted: bool
    value: float
    unsub: bool
    complaint: bool
    clicked: bool
    open: bool = False


class LiftShares(NamedTuple):
    """The configured split: what the sample-ratio test expects (0: unknown, not tested)."""

    global_share: float = 0.0
    flow_share: float = 0.0
    flow_shares: dict[str, float] = {}
    transactional: frozenset[str] = frozenset()
    experiment_shares: dict[str, float] = {}  # experiment -> control share

    def expected(self, scope: str, key: str) -> float:
        """
        >>> s = LiftShares(0.05, 0.1, {"vip": 0.2}, frozenset({"receipts"}), {"send_time": 0.5})
        >>> [s.expected(*u) for u in [("global", ""), ("flow", "welcome"), ("flow", "vip"),
        ...                           ("flow", "receipts"), ("experiment", "send_time")]]
        [0.05, 0.1, 0.2, 0.0, 0.5]
        """
        if scope == GLOBAL:
            return self.global_share
        if scope == EXPERIMENT:
            return self.experiment_shares.get(key, 0.0)
        if key in self.transactional:
            return 0.0
        return self.flow_shares.get(key, self.flow_share)


class _Unit:
    """One recipient's assignment in one unit."""

    __slots__ = ("arm", "assigned_ms", "conv_ms", "values", "unsub_ms", "complaint_ms",
                 "click_ms", "crossed")

    def __init__(self, arm: int, assigned_ms: int, windows: int):
        self.arm, self.assigned_ms = arm, assigned_ms
        self.conv_ms = self.unsub_ms = self.complaint_ms = self.click_ms = -1
        self.values = [0.0] * windows
        self.crossed = False

    def __getstate__(self):
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)


class LiftUnits:
    """Every recipient's assignments in one shard, and the windows still open.

    >>> book = LiftUnits(windows_days=(7,))
    >>> facts = []
    >>> book.observe("holdout", 0, "r1", "welcome", "", "flow", "", "", "", 0.0, False, facts)
    >>> book.observe("delivered", 0, "r2", "welcome", "", "", "", "", "", 0.0, False, facts)
    >>> book.observe("conversion", 3600_000, "r1", "", "", "", "", "", "", 20.0, False, facts)
    >>> facts                          # this minute's assignments leave as one tally ...
    []
    >>> book.flush_tally(facts)        # ... when the minute is over (or asked)
    >>> [(f.scope, f.key, f.arm, f.count) for f in facts]  # nobody in the global control group
    [('flow', 'welcome', 0, 1), ('flow', 'welcome', 1, 1), ('global', '', 0, 2)]
    >>> facts.clear(); book.advance(8 * 86_400_000, facts)
    >>> [(f.scope, f.arm, f.converted, f.value) for f in facts]  # doctest: +NORMALIZE_WHITESPACE
    [('flow', 1, True, 20.0), ('global', 0, True, 20.0), ('flow', 0, False, 0.0),
     ('global', 0, False, 0.0)]
    """

    def __init__(self, windows_days: tuple[int, ...] = (7,), goal: str = "",
                 transactional: frozenset[str] = frozenset(), campaigns: bool = True):
        self.units: dict[str, dict[tuple[str, str], _Unit]] = {}
        # (due, recipient, scope, key, window index or -1: forget, assigned at)
        self._timers: list[tuple[int, str, str, str, int, int]] = []
        # this minute's assignments: (scope, key, arm, crossed) -> [count, first at]
        self._tally: dict[tuple[str, str, int, bool], list[int]] = {}
        self._tally_minute = -1
        self.configure(windows_days, goal, transactional, campaigns)

    def configure(self, windows_days: tuple[int, ...], goal: str = "",
                  transactional: frozenset[str] = frozenset(), campaigns: bool = True) -> None:
        """Settings after a restart (windows apply to assignments made from then on)."""
        self.windows_days = tuple(sorted(set(windows_days)))
        self.windows_ms = tuple(d * DAY_MS for d in self.windows_days)
        self.goal, self.transactional, self.campaigns = goal, transactional, campaigns

    def __len__(self) -> int:
        return sum(len(units) for units in self.units.values())

    def due(self, ts_ms: int) -> bool:
        """Is anything due by `ts_ms`: a window's end, or a past minute's tally?"""
        return (bool(self._timers) and self._timers[0][0] <= ts_ms) or (
            bool(self._tally) and ts_ms // MINUTE_MS > self._tally_minute)

    def flush_tally(self, facts: list) -> None:
        """The tallied assignments, one fact per unit and arm, stamped with their minute."""
        tally, self._tally = self._tally, {}
        stamp = self._tally_minute * MINUTE_MS
        for (scope, key, arm, crossed), (count, first) in sorted(tally.items()):
            facts.append(LiftAssigned(stamp, scope, key, arm, crossed, count, first))

    # -- events ----------------------------------------------------------------
    def observe(self, etype: str, ts_ms: int, recipient: str, flow_id: str, campaign_id: str,
                group: str, experiment: str, arm: str, goal: str, value: float,
                is_human: bool, facts: list) -> None:
        """One event of `recipient` in event-time order (timers due before it fired)."""
        if etype in ("sent", "delivered"):
            marketing = flow_id not in self.transactional if flow_id else True
            if flow_id and marketing:
                self._assign(ts_ms, recipient, FLOW, flow_id, TREATED, facts)
            if marketing:
                self._assign(ts_ms, recipient, GLOBAL, "", TREATED, facts)
            if campaign_id and self.campaigns and marketing:
                self._assign(ts_ms, recipient, CAMPAIGN, campaign_id, TREATED, facts)
            if experiment:
                side = _ARMS.get(arm.strip().lower()) if arm else None
                if side is not None:
                    self._assign(ts_ms, recipient, EXPERIMENT, experiment, side, facts)
            return
        if etype == "holdout":
            if group == GLOBAL:
                self._assign(ts_ms, recipient, GLOBAL, "", CONTROL, facts)
            elif flow_id not in self.transactional or not flow_id:
                if flow_id:
                    self._assign(ts_ms, recipient, FLOW, flow_id, CONTROL, facts)
                # not in the global control group (they would have been mailed): the
                # programme's arm, as the global split drew them
                self._assign(ts_ms, recipient, GLOBAL, "", TREATED, facts)
                if campaign_id and self.campaigns:
                    self._assign(ts_ms, recipient, CAMPAIGN, campaign_id, CONTROL, facts)
            return
        units = self.units.get(recipient)
        if not units:
            return
        if etype == "conversion":
            if self.goal and goal != self.goal:
                return
            windows = self.windows_ms
            for unit in units.values():
                delay = ts_ms - unit.assigned_ms
                if delay < 0 or delay > windows[-1]:
                    continue
                if unit.conv_ms < 0:
                    unit.conv_ms = ts_ms
                if value:
                    values = unit.values
                    for i, w in enumerate(windows[:len(values)]):
                        if delay <= w:
                            values[i] += value
        elif etype in ("unsubscribe", "complaint") or (etype == "click" and is_human):
            slot = _FLAG_SLOTS[etype]
            for unit in units.values():
                if getattr(unit, slot) < 0 and ts_ms >= unit.assigned_ms:
                    setattr(unit, slot, ts_ms)

    def _assign(self, ts_ms: int, recipient: str, scope: str, key: str, arm: int,
                facts: list) -> None:
        units = self.units.get(recipient)
        if units is None:
            units = self.units[recipient] = {}
        unit = units.get((scope, key))
        if unit is not None:
            if unit.arm != arm and not unit.crossed:
                unit.crossed = True
                self._count(ts_ms, (scope, key, unit.arm, True), facts)
            return
        units[(scope, key)] = _Unit(arm, ts_ms, len(self.windows_ms))
        self._count(ts_ms, (scope, key, arm, False), facts)
        # one timer at a time per assignment: each window's end, then forgetting it
        heapq.heappush(self._timers, (ts_ms + self.windows_ms[0] + 1, recipient, scope, key, 0,
                                      ts_ms))

    def _count(self, ts_ms: int, tally_key: tuple[str, str, int, bool], facts: list) -> None:
        minute = ts_ms // MINUTE_MS
        if minute != self._tally_minute:
            if self._tally:
                self.flush_tally(facts)
            self._tally_minute = minute
        counted = self._tally.get(tally_key)
        if counted is None:
            self._tally[tally_key] = [1, ts_ms]
        else:
            counted[0] += 1

    # -- time ------------------------------------------------------------------
    def advance(self, ts_ms: int, facts: list) -> None:
        """Event time reached `ts_ms`: the windows closed by then, as outcomes stamped with
        their closing time; assignments old enough are forgotten."""
        if self._tally and ts_ms // MINUTE_MS > self._tally_minute:
            self.flush_tally(facts)
        timers, pop, push = self._timers, heapq.heappop, heapq.heappush
        while timers and timers[0][0] <= ts_ms:
            due, recipient, scope, key, index, assigned = pop(timers)
            units = self.units.get(recipient)
            unit = units.get((scope, key)) if units else None
            if unit is None or unit.assigned_ms != assigned:
                continue  # erased, or assigned anew since
            if index < 0:
                del units[(scope, key)]
                if not units:
                    del self.units[recipient]
                continue
            if index < len(unit.values):
                facts.append(self._outcome(due, scope, key, unit, index, False))
            windows = self.windows_ms
            if index + 1 < min(len(windows), len(unit.values)):
                push(timers, (assigned + windows[index + 1] + 1, recipient, scope, key,
                              index + 1, assigned))
            else:
                push(timers, (assigned + STICKY_WINDOWS * windows[-1] + 1, recipient, scope,
                              key, -1, assigned))

    def _outcome(self, ts_ms: int, scope: str, key: str, unit: _Unit, index: int,
                 still_open: bool) -> LiftOutcome:
        end = unit.assigned_ms + self.windows_ms[min(index, len(self.windows_ms) - 1)]
        return LiftOutcome(ts_ms, scope, key, unit.arm, self.windows_days[index],
                           0 <= unit.conv_ms <= end, unit.values[index],
                           0 <= unit.unsub_ms <= end, 0 <= unit.complaint_ms <= end,
                           0 <= unit.click_ms <= end, still_open)

    def pending(self, ts_ms: int, facts: list) -> None:
        """The input ended at `ts_ms`: every window still open, as it stands (`open`)."""
        if self._tally:
            self.flush_tally(facts)
        next_window = {(r, s, k, a): i for _due, r, s, k, i, a in self._timers if i >= 0}
        for recipient, units in sorted(self.units.items()):
            for (scope, key), unit in sorted(units.items()):
                first = next_window.get((recipient, scope, key, unit.assigned_ms))
                if first is None:
                    continue
                for index in range(first, len(unit.values)):
                    facts.append(self._outcome(ts_ms, scope, key, unit, index, True))

    def forget(self, recipient: str) -> int:
        """Erase a recipient's assignments and their timers (the sums keep what they
        counted): no trace of the recipient hash stays in the state."""
        gone = len(self.units.pop(recipient, None) or ())
        if gone:
            self._timers = [t for t in self._timers if t[1] != recipient]
            heapq.heapify(self._timers)
        return gone


def _add(arm: list, o: LiftOutcome) -> None:
    arm[0] += 1
    arm[1] += o.converted
    arm[2] += o.value
    arm[3] += o.value * o.value
    arm[4] += o.unsub
    arm[5] += o.complaint
    arm[6] += o.clicked


class LiftRow(NamedTuple):
    """One unit's lift in one window as of `as_of_ms` (the estimates are computed at
    output: `schemas.rows.lift_row`)."""

    scope: str
    key: str
    window_days: int
    as_of_ms: int
    goal: str
    treated: Arm
    control: Arm
    treated_assigned: int
    control_assigned: int
    crossovers: int
    partial: bool
    first_assigned_ms: int
    expected_control_share: float


class LiftBook:
    """Sums per unit and window, and their rows (facts in event-time order).

    >>> book = LiftBook(LiftShares(flow_share=0.5))
    >>> facts = [LiftAssigned(0, "flow", "welcome", 0), LiftAssigned(0, "flow", "welcome", 1),
    ...          LiftOutcome(86_400_001, "flow", "welcome", 0, 1, True, 10.0, False, False, True),
    ...          LiftOutcome(86_400_001, "flow", "welcome", 1, 1, False, 0.0, False, False, False)]
    >>> for f in facts:
    ...     book.observe(f)
    >>> rows = []; book.advance(2 * 86_400_000, rows)
    >>> r = rows[0]; (r.key, r.window_days, r.as_of_ms, r.treated.n, r.treated.conv, r.control.n)
    ('welcome', 1, 172800000, 1, 1, 1)
    """

    def __init__(self, shares: LiftShares | None = None, goal: str = ""):
        self.shares, self.goal = shares or LiftShares(), goal
        self.cells: dict[tuple[str, str, int], list[list]] = {}  # -> [treated, control] sums
        # unit -> [treated, control, crossovers, first assigned at]
        self.assigned: dict[tuple[str, str], list[int]] = {}
        self.windows: dict[tuple[str, str], set[int]] = {}
        self.changed: set[tuple[str, str]] = set()
        self.day = -1
        self.last_ms = 0
        self._open: dict[tuple[str, str, int], list[list]] = {}  # at the end of input only

    def configure(self, shares: LiftShares, goal: str = "") -> None:
        self.shares, self.goal = shares, goal

    def observe(self, fact: LiftAssigned | LiftOutcome) -> None:
        unit = (fact.scope, fact.key)
        if fact.ts_ms > self.last_ms and (type(fact) is LiftAssigned or not fact.open):
            # (an open window's stamp is where its shard stopped: not the same for any
            # sharding, so the end-of-input rows are as of the last fact that is)
            self.last_ms = fact.ts_ms
        if type(fact) is LiftAssigned:
            first = fact.first_ms if fact.first_ms >= 0 else fact.ts_ms
            counts = self.assigned.get(unit)
            if counts is None:
                counts = self.assigned[unit] = [0, 0, 0, first]
            counts[2 if fact.crossed else fact.arm] += fact.count
            counts[3] = min(counts[3], first)
            self.changed.add(unit)
            return
        cell_key = (fact.scope, fact.key, fact.window_days)
        book = self._open if fact.open else self.cells
        cell = book.get(cell_key)
        if cell is None:
            cell = book[cell_key] = [[0, 0, 0.0, 0.0, 0, 0, 0], [0, 0, 0.0, 0.0, 0, 0, 0]]
        _add(cell[fact.arm], fact)
        self.windows.setdefault(unit, set()).add(fact.window_days)
        self.changed.add(unit)

    def advance(self, ts_ms: int, rows: list[LiftRow]) -> None:
        """Event time reached `ts_ms` (every fact before it applied): at a new UTC day, a
        row per unit changed, as of that day's start."""
        day = ts_ms // DAY_MS
        if day <= self.day:
            return
        self.day = day
        if self.changed:
            self._rows(day * DAY_MS, rows, {})

    def flush(self, rows: list[LiftRow]) -> None:
        """End of input: the units changed since their last row, as of the last fact; a
        unit none of whose windows closed is reported from its open windows (`partial`)."""
        still_open, self._open = self._open, {}
        for (scope, key, _w) in still_open:
            self.changed.add((scope, key))
        if self.changed:
            self._rows(self.last_ms, rows, still_open)

    def _rows(self, as_of_ms: int, rows: list[LiftRow], still_open: dict) -> None:
        for unit in sorted(self.changed):
            scope, key = unit
            counts = self.assigned.get(unit, [0, 0, 0, as_of_ms])
            expected = self.shares.expected(scope, key)
            if not counts[1] and not expected:
                continue  # nobody held out, and nobody should have been: no experiment
            windows = self.windows.get(unit, set()) | {w for s, k, w in still_open
                                                       if (s, k) == unit}
            for window in sorted(windows) or ():
                cell = self.cells.get((scope, key, window))
                partial = False
                if cell is None or not (cell[0][0] or cell[1][0]):
                    cell, partial = still_open.get((scope, key, window)), True
                    if cell is None:
                        continue
                rows.append(LiftRow(scope, key, window, as_of_ms, self.goal,
                                    Arm(*cell[0]), Arm(*cell[1]), counts[0], counts[1],
                                    counts[2], partial, counts[3], expected))
        self.changed = set()
