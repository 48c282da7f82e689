"""Convergence propensity: P(a recipient reaches a flow's goal within its window), re-scored
at every event of their journey, learnt online from how journeys move.

This runs in the models' step, fed the shards' `JourneyFact`s (operators/journeys.py)
in one event-time order, beside the per-message models (operators/learning.py):

- **Scored** at entering the flow and again at every fact of the open journey (another
  step, a human open, click or reply, a bounce, a conversion elsewhere, once a day without
  one, and when it *cools*: `COOL_HOURS` after the last human touch), as the chance of
  reaching the goal before the window closes from where the journey is now: its *state*
  (nothing human yet, opened, clicked or replied, cooled, bounced) and how far into the
  window it is. The chances come from a multi-state model of the flow's journeys, counted
  as they move (operators/hazards.py `HazardBook`): every move between states, every goal
  and stop, and the person-time spent in each state per slice of the window give the
  rates, and the chance follows from them exactly. Once cohorts have matured (their window
  closed), a per-flow factor (realised over counted, `factor`) corrects what the states
  miss.
- **The forecast never waits for a fact**: journeys of one flow, state and hour of
  entering share one chance, and at every hour boundary (`advance`) each group's chance
  is refreshed and moved in the cohort forecast at once (`Move.count`), so the forecast's
  sums are never older than an hour without re-scoring every journey every hour.
- **Closed** by the goal (the score goes to 1), an unsubscribe or complaint (0) or the
  window passing (0).
- **Learnt** without waiting for outcomes and without their bias. Outcomes arrive up to a
  window (7 days) late, and early goals before late misses: an outcome model learns a
  biased rate while it waits. Measured on `bench/convergence.py --engine` (10 days, 500
  entrants per flow and day, seed 1, all 40 cohorts): a River logistic regression on the
  journey's and the recipient's features, learnt with fake negatives (Ktena et al. 2019),
  had an entry calibration error (ECE) of 0.107 and a forecast error a day in of 25.5%.
  Counting moves and person-time (complete an hour after they happen): 0.040 and 24%;
  with the cooled state (clicks that did not convert within hours rarely convert later;
  without it the cohorts were over-forecast by a third), hourly refreshes of the groups
  and extrapolation no longer than the time lived: 0.023 and 21%; with the matured
  factor: 0.022 and 19.5%. Adding the regression's recipient features on top of the
  counts (its log-odds against its mean per state) broke the calibration (ECE 0.13).
- **The recipient's history** enters as a *tier* at entering (`_tier`: new, cold or
  engaged before): journeys are counted per flow and tier (the chances of a tier with
  little data lean on the pooled counts). With newsletters giving histories
  (`--newsletters 0.3`): entry ECE 0.018 instead of 0.022, ROC AUC 0.618 instead of 0.615,
  forecast error a day in 19% instead of 21% (cohorts of 500 and more). The per-message
  engagement score at entry says little more about reaching the goal (ROC AUC 0.53 within
  a flow), so it is not used.
- **Graded** prequentially when the journey closes (`Graded`, for `model_metrics`): the
  entry score (`convergence`), the latest score before the end (`convergence_latest`),
  and two baselines measured the same way: the flow's running convergence at entry
  (`convergence_baseline_flow`) and the per-message conversion model's score of the entry
  delivery alone (`convergence_baseline_conversion`).

Rows: every change of a score (`PropensityRow`, the latest per flow × recipient is the
table `flow_propensities`); `publish` marks the ones that moved by at least `step` since
the last published one (and entries and ends), for the topic `mailflow.flow_propensities`.
A recipient whose propensity fell below `stop_below` while the unsubscribe risk of the
flow's mail rose is flagged `advice="stop_mailing"` (advice, never an action).

>>> from operators.journeys import JourneyFact
>>> book = PropensityBook()
>>> fact = JourneyFact(0, "welcome", "r1", "s", "gmail.com", 0, "enter", 7, (0.0,) * 8,
...                    (0.0,) * 7)
>>> rows, graded, moves = book.observe(fact, (0.1, 0.02, 0.001))
>>> rows[0].score, moves[0].old is None, graded    # nothing counted yet: 0
(0.0, True, [])
>>> rows, graded, moves = book.observe(fact._replace(ts_ms=9, kind="goal"), None)
>>> rows[0].score, [g.model for g in graded][:2], moves[0].new
(1.0, ['convergence', 'convergence_latest'], 1.0)
"""

from __future__ import annotations

import heapq
import struct
from typing import NamedTuple

import numpy as np

from operators import hazards
from operators.hazards import HazardBook
from operators.journeys import FINAL, GOAL
from operators.learning import Graded

# journey record fields
(_COHORT, _P_ENTRY, _P_LAST, _UNSUB_ENTRY, _UNSUB_LAST, _PUBLISHED,
 _CONV_ENTRY, _FLOW_RATE, _SCORES, _ENTERED, _STATE, _TOUCH, _KEY) = range(13)
#: Scores are capped below 1 until the goal is reached.
_P_MAX = 0.999
_MODEL = "convergence"
_HOUR_MS = hazards.HOUR_MS
_DAY_MS = 24 * _HOUR_MS
#: The calibration factor's prior weight (entrants at factor 1), and how much a matured
#: cohort's weight fades with each newer one.
_PRIOR_ENTRANTS = 200.0
_FADE = 0.8
#: A human touch older than this cools the journey: who clicked and did not convert within
#: hours rarely converts later. (Measured: 6 hours under-forecast the cohorts by 8% a day
#: in, 24 hours over-forecast them by 17%, 12 hours: -3%.)
COOL_HOURS = 12
_COOL_MS = COOL_HOURS * _HOUR_MS
_TOUCHES = {"open": hazards.OPENED, "click": hazards.ENGAGED, "reply": hazards.ENGAGED}


class PropensityRow(NamedTuple):
    flow_id: str
    recipient_hash: str
    score: float  # P(reaching the flow's goal within its window), as of as_of_ms
    as_of_ms: int
    kind: str  # what re-scored it (operators/journeys.py KINDS, or "cooled")
    cohort_day: int
    unsubscribe_risk: float  # of the flow's latest delivery (per-message model)
    advice: str  # "stop_mailing" or ""
    publish: bool  # moved by at least `step` since the last published score (or entry/end)


class Move(NamedTuple):
    """Propensities changed: what the cohort forecast needs. The forecast holds, for every
    open journey, the chance of its *group* (flow, state, hour of entering) as of the last
    hour boundary (`PropensityBook.advance` refreshes them), so that the cohort's sum is
    never older than an hour without re-scoring every journey every hour."""

    flow_id: str
    cohort_day: int
    recipient_hash: str  # "" for a whole group's refresh
    old: float | None  # None: entered now
    new: float
    kind: str  # a final kind (goal, stopped, expired) closes the journey; "erased" too
    count: int = 1  # a group's refresh moves all its journeys at once


class _Cooling(NamedTuple):
    due_ms: int
    recipient: str
    flow_id: str
    touch_ms: int


class PropensityBook:
    """Open journeys, their states and scores; the counts behind the scores."""

    def __init__(self, step: float = 0.05, stop_below: float = 0.05,
                 unsub_rise: float = 1.25):
        self.step, self.stop_below, self.unsub_rise = step, stop_below, unsub_rise
        self.hazards = HazardBook()
        self.open: dict[str, dict[str, list]] = {}  # recipient -> flow -> record
        self.flows: dict[str, list[int]] = {}  # flow -> [closed journeys, reached]
        self.learned = 0
        #: (flow, state, hour of entering) -> the chance the forecast holds for its journeys
        self.group_p: dict[tuple[str, int, int], float] = {}
        self._cooling: list[_Cooling] = []  # a heap
        #: (flow, cohort day) -> [entered, reached] until the cohort's window has closed;
        #: then into `matured` (flow -> [entered, reached], older cohorts fading)
        self.cohorts: dict[tuple[str, int], list[int]] = {}
        self.matured: dict[str, list[float]] = {}
        self._factors: dict[str, float] = {}
        self.hour = -1  # the last hour (index) the groups' chances were refreshed at

    def configure(self, step: float, stop_below: float, window_s: int | None = None) -> None:
        self.step, self.stop_below = step, stop_below
        if window_s:
            self.hazards.set_window(window_s)

    def open_journeys(self) -> int:
        return sum(len(flows) for flows in self.open.values())

    def flow_rate(self, flow_id: str) -> float:
        """The flow's trailing convergence (the baseline `convergence_baseline_flow`): the
        share of its matured cohorts' entrants who reached the goal (older cohorts fading),
        shrunk towards 5%; until a cohort matured, the share of closed journeys that reached
        it (which early goals make too high: they close before the misses)."""
        entered = reached = 0.0
        for mk, (n, r) in self.matured.items():
            if mk.partition(_SEP)[0] == flow_id:
                entered += n
                reached += r
        if entered <= 0:
            entered, reached = self.flows.get(flow_id, (0, 0))
        return (reached + 0.5) / (entered + 10.0)

    # -- time -------------------------------------------------------------------------
    def advance(self, ts_ms: int) -> tuple[list[PropensityRow], list[Move]]:
        """Event time reached `ts_ms`: journeys whose last touch is `COOL_HOURS` old cool
        (re-scored), the person-time is counted, and at each hour boundary every group's
        chance is refreshed for the forecast (call it at every boundary the stream
        crosses: rows and moves as of `ts_ms`)."""
        rows, moves = self._cool(ts_ms)
        self.hazards.advance(ts_ms)
        hour = ts_ms // _HOUR_MS
        if hour != self.hour:
            self.hour = hour
            moves.extend(self._refresh(hour * _HOUR_MS))
        return rows, moves

    def _refresh(self, ts_ms: int) -> list[Move]:
        self._mature(ts_ms)
        self._factors.clear()
        by_key: dict[str, list[tuple[tuple[str, int, int], int]]] = {}
        for key, n in self.hazards.alive.items():
            by_key.setdefault(key[0], []).append((key, n))
        moves = []
        group_p = self.group_p
        for mk, groups in by_key.items():  # one flow and tier at a time, vectorised
            states = np.fromiter((k[1] for k, _ in groups), np.int64, len(groups))
            hours = np.fromiter((k[2] for k, _ in groups), np.int64, len(groups))
            ps = self.hazards.chances(mk, states, ts_ms - hours * _HOUR_MS) * self.factor(mk)
            # float16, as `_f16` rounds (to nearest, ties to even)
            ps = np.minimum(np.minimum(ps, 1.0), _P_MAX).astype(np.float16).astype(float)
            flow = mk.partition(_SEP)[0]
            for (key, n), new in zip(groups, ps.tolist(), strict=True):
                old = group_p.get(key)
                if old is not None and new != old:
                    group_p[key] = new
                    moves.append(Move(flow, key[2] // 24, "", old, new, "refresh", n))
        return moves

    def _cool(self, ts_ms: int) -> tuple[list[PropensityRow], list[Move]]:
        rows: list[PropensityRow] = []
        moves: list[Move] = []
        timers = self._cooling
        while timers and timers[0].due_ms <= ts_ms:
            due, recipient, flow, touch = heapq.heappop(timers)
            record = self.open.get(recipient, {}).get(flow)
            if record is None or record[_TOUCH] != touch:
                continue  # closed, or touched again since (a later timer)
            move = self._to(flow, recipient, record, hazards.COOLED, due)
            rows.append(self._row(flow, recipient, due, "cooled", record, record[_P_LAST],
                                  self._publish(record)))
            if move:
                moves.append(move)
        return rows, moves

    # -- facts ------------------------------------------------------------------------
    def observe(self, fact, scores: tuple[float, float, float] | None
                ) -> tuple[list[PropensityRow], list[Graded], list[Move]]:
        """One `JourneyFact`, with the per-message scores of the flow's latest delivery if
        still known (engagement, conversion, unsubscribe risk); rows, graded labels, moves
        (journeys that cooled before it first)."""
        rows, moves = self._cool(fact.ts_ms) if self._cooling else ([], [])
        flow, recipient, kind, ts = fact.flow_id, fact.recipient_hash, fact.kind, fact.ts_ms
        journeys = self.open.get(recipient)
        record = journeys.get(flow) if journeys else None
        if kind in FINAL:
            if record is not None:
                row, graded, move = self._close(fact, record)
                rows.append(row)
                moves.append(move)
                return rows, graded, moves
            return rows, [], moves
        if record is None:
            if kind != "enter":
                return rows, [], moves  # the journey's entry is unknown here (erased): skip
            rate = self.flow_rate(flow)
            scores = scores or (0.0, 0.0, 0.0)
            mk = flow + _SEP + _tier(fact.recipient)
            self.hazards.enter(mk, ts)
            key = (mk, hazards.QUIET, ts // _HOUR_MS)
            p = self._score(mk, hazards.QUIET, 0)
            held = self.group_p.setdefault(key, p)
            record = [fact.cohort_day, p, p, scores[2], scores[2], p, scores[1], rate,
                      scores, ts, hazards.QUIET, -1, mk]
            self.open.setdefault(recipient, {})[flow] = record
            self.cohorts.setdefault((mk, fact.cohort_day), [0, 0])[0] += 1
            rows.append(self._row(flow, recipient, ts, kind, record, p, True))
            moves.append(Move(flow, fact.cohort_day, recipient, None, held, kind))
            return rows, [], moves
        if scores is None:
            scores = record[_SCORES]
        else:
            record[_SCORES] = scores
        record[_UNSUB_LAST] = scores[2]
        state = record[_STATE]
        touched = _TOUCHES.get(kind)
        if touched is not None:
            record[_TOUCH] = ts
            heapq.heappush(self._cooling, _Cooling(ts + _COOL_MS, recipient, flow, ts))
            state = max(touched, state) if state in (hazards.OPENED, hazards.ENGAGED) \
                else touched
        if kind == "bounce":
            state = hazards.BOUNCED
        move = self._to(flow, recipient, record, state, ts)
        if move:
            moves.append(move)
        rows.append(self._row(flow, recipient, ts, kind, record, record[_P_LAST],
                              self._publish(record)))
        return rows, [], moves

    def _to(self, flow: str, recipient: str, record: list, state: int, ts: int
            ) -> Move | None:
        """The journey is in `state` from `ts` on: counted, re-scored; the forecast's move
        if its group changed."""
        old_state = record[_STATE]
        if state == hazards.BOUNCED or old_state == hazards.BOUNCED:
            state = hazards.BOUNCED  # a bounced address stays bounced
        mk = record[_KEY]
        record[_P_LAST] = self._score(mk, state, ts - record[_ENTERED])
        if state == old_state:
            return None
        hour = record[_ENTERED] // _HOUR_MS
        old_key, key = (mk, old_state, hour), (mk, state, hour)
        held = self._held(old_key)
        self.hazards.move(mk, record[_ENTERED], ts, old_state, state)
        self._release(old_key)
        record[_STATE] = state
        new = self.group_p.setdefault(key, record[_P_LAST])
        return Move(flow, record[_COHORT], recipient, held, new, "state")

    def forget(self, recipient: str, ts_ms: int) -> list[Move]:
        """Erasure: the recipient's open journeys leave (their scores are dropped; the
        counts and the flows' running rates keep what they learnt)."""
        journeys = self.open.pop(recipient, {})
        timers = [t for t in self._cooling if t.recipient != recipient]
        if len(timers) < len(self._cooling):  # a stale timer would name them (rare: walk)
            heapq.heapify(timers)
            self._cooling = timers
        moves = []
        for flow, r in journeys.items():
            key = (r[_KEY], r[_STATE], r[_ENTERED] // _HOUR_MS)
            held = self._held(key)
            self.hazards.leave(r[_KEY], r[_ENTERED], ts_ms, r[_STATE])
            self._release(key)
            moves.append(Move(flow, r[_COHORT], recipient, held, 0.0, "erased"))
        return moves

    # -- internals ---------------------------------------------------------------
    def _held(self, key: tuple[str, int, int]) -> float:
        return self.group_p.get(key, 0.0)

    def _release(self, key: tuple[str, int, int]) -> None:
        if key not in self.hazards.alive:
            self.group_p.pop(key, None)

    def _close(self, fact, record: list) -> tuple[PropensityRow, list[Graded], Move]:
        flow, recipient = fact.flow_id, fact.recipient_hash
        journeys = self.open[recipient]
        del journeys[flow]
        if not journeys:
            del self.open[recipient]
        y = fact.kind == GOAL
        ts = fact.ts_ms
        mk = record[_KEY]
        key = (mk, record[_STATE], record[_ENTERED] // _HOUR_MS)
        held = self._held(key)
        if y:
            self.hazards.move(mk, record[_ENTERED], ts, record[_STATE], hazards.GOAL)
        elif fact.kind == "stopped":
            self.hazards.move(mk, record[_ENTERED], ts, record[_STATE], hazards.STOP)
        else:
            self.hazards.leave(mk, record[_ENTERED], ts, record[_STATE])
        self._release(key)
        graded = [Graded(_MODEL, ts, y, record[_P_ENTRY]),
                  Graded(_MODEL + "_latest", ts, y, record[_P_LAST]),
                  Graded(_MODEL + "_baseline_flow", ts, y, record[_FLOW_RATE]),
                  Graded(_MODEL + "_baseline_conversion", ts, y, record[_CONV_ENTRY])]
        self.learned += 1
        if y:
            cohort = self.cohorts.get((mk, record[_COHORT]))
            if cohort is not None:
                cohort[1] += 1
        counts = self.flows.setdefault(flow, [0, 0])
        counts[0] += 1
        counts[1] += y
        p = 1.0 if y else 0.0
        return (self._row(flow, recipient, ts, fact.kind, record, p, True), graded,
                Move(flow, record[_COHORT], recipient, held, p, fact.kind))

    def _publish(self, record: list) -> bool:
        publish = abs(record[_P_LAST] - record[_PUBLISHED]) >= self.step
        if publish:
            record[_PUBLISHED] = record[_P_LAST]
        return publish

    def _row(self, flow: str, recipient: str, ts: int, kind: str, record: list, p: float,
             publish: bool) -> PropensityRow:
        unsub = record[_UNSUB_LAST]
        advice = ("stop_mailing" if kind not in FINAL and p < self.stop_below
                  and unsub > record[_UNSUB_ENTRY] * self.unsub_rise and unsub > 0 else "")
        return PropensityRow(flow, recipient, round(p, 6), ts, kind, record[_COHORT],
                             round(unsub, 6), advice, publish)

    def _score(self, flow: str, state: int, elapsed_ms: int) -> float:
        return _f16(min(self._chance(flow, state, elapsed_ms), _P_MAX))

    def _chance(self, flow: str, state: int, elapsed_ms: int) -> float:
        """The counted chance, times the flow's calibration factor."""
        return min(self.hazards.chance(flow, state, elapsed_ms) * self.factor(flow), 1.0)

    def factor(self, flow: str) -> float:
        """Realised over predicted on the flow's matured cohorts (whose window has closed):
        how far the counted chances are off for this flow. The states and slices miss
        what happened before (a recipient who clicked days ago and cooled is not the same as
        one who never did); outcomes that are complete say by how much. 1 until cohorts
        matured, shrunk towards 1 by `_PRIOR_ENTRANTS`."""
        f = self._factors.get(flow)
        if f is None:
            entered, reached = self.matured.get(flow, (0.0, 0.0))
            c0 = self.hazards.chance(flow, hazards.QUIET, 0)
            f = ((reached / c0 + _PRIOR_ENTRANTS) / (entered + _PRIOR_ENTRANTS)
                 if entered and c0 > 0 else 1.0)
            self._factors[flow] = f
        return f

    def _mature(self, ts_ms: int) -> None:
        """Cohorts whose window has closed by `ts_ms` add to their flow's matured totals
        (which fade by `_FADE` per cohort: the flow may change)."""
        window = self.hazards.window_ms
        for key in [k for k in self.cohorts if (k[1] + 1) * _DAY_MS + window <= ts_ms]:
            entered, reached = self.cohorts.pop(key)
            m = self.matured.setdefault(key[0], [0.0, 0.0])
            m[0] = m[0] * _FADE + entered
            m[1] = m[1] * _FADE + reached


_F16 = struct.Struct("<e")


_SEP = "\x1f"


def _tier(history: tuple[float, ...]) -> str:
    """What the recipient's history says at entering (HistoryBook.numbers): nothing yet,
    mail but never a genuine engagement, or engaged before.

    >>> _tier((0.0,) * 12), _tier((0.5, 0, 0, 0, 0, 1.0, 1.0, 2.0) + (0.0,) * 4)
    ('new', 'cold')
    >>> _tier((0.5, 0, 0.3, 0.4, 0, 0.0, 0.2, 2.0) + (1.0,) * 4)
    'engaged'
    """
    if len(history) < 9 or (history[0] <= 0 and history[7] <= 0):
        return "new"
    return "cold" if history[5] > 0 else "engaged"


def _f16(p: float) -> float:
    """Rounded to float16, like every graded prediction."""
    return _F16.unpack(_F16.pack(p))[0]
