"""How journeys move, counted: a multi-state model of a flow's recipients over the window.

A recipient in a flow's journey is in one of five *states*: nothing human yet (`QUIET`),
opened by a person (`OPENED`), clicked or replied (`ENGAGED`), a human touch that is
some hours old by now (`COOLED`: who clicked and did not convert soon rarely converts
later; without this state the model over-forecast by a third), or hard-bounced
(`BOUNCED`); the journey ends in the goal (`GOAL`) or a stop (`STOP`: unsubscribe or
complaint), or when the window closes. Per flow and per slice of the window (`bucket_s`,
6 h by default: elapsed time since entering), this counts every move between states and
the person-time spent in each state (exposure), so

    rate(state -> next, slice) = moves / person-hours      (per hour)

is the Nelson-Aalen estimate of each transition's intensity. From those rates, the
probability of reaching the goal before the window closes, from any state at any moment
of the window, follows exactly for a Markov chain: walking the slices backwards, the
chance from the start of a slice is the slice's transition matrix (the matrix
exponential of its rates, by squaring) applied to the chances at the next slice's start.

Why counting, and why this shape (measured with `bench/convergence.py --engine`): a
journey's outcome is known only when it ends, up to a window (7 days) later, so a model
that learns from outcomes is biased while it waits (early goals arrive before late
misses). Rates are unbiased at once: every slice of elapsed time that journeys have lived
through is fully counted, goals and misses alike, an hour after it passed. Only slices that
no journey has reached yet (the first days of the first cohorts) need a prior; they take
the rates of the nearest slice seen, decaying with a half-life (`extrapolate_half_life_s`).
Rates are pooled over flows as the prior of each flow (shrunk by `prior_hours`), so a new
flow starts from the others.

Exposure is counted by event time at hour boundaries (`advance`) for groups of journeys
(flow, state, hour of entering), so the cost per hour is the number of groups, not of
journeys; a move inside an hour credits the part of the hour already spent.

>>> h = HazardBook(window_s=2 * 86_400, bucket_s=6 * 3600)
>>> h.enter("f", 0)
>>> h.move("f", 0, 3_600_000 * 3, QUIET, GOAL)     # converted 3 hours in
>>> for i in range(9):
...     h.enter("f", 3_600_000 * 4)
>>> h.advance(3_600_000 * 10)
>>> round(h.rate("f", QUIET, GOAL, 0), 4)     # 1 move in 3 + 9 * 6 = 57 person-hours
0.0175
>>> 0 < h.chance("f", QUIET, 3_600_000 * 4) < 1
True
"""

from __future__ import annotations

import math

import numpy as np

QUIET, OPENED, ENGAGED, BOUNCED, COOLED = range(5)
GOAL, STOP = 5, 6
STATES = ("quiet", "opened", "engaged", "bounced", "cooled", "goal", "stop")
_N = 7  # states incl. the two absorbing ones
HOUR_MS = 3_600_000
#: Squarings of (I + Q dt / 2^k) for the matrix exponential of a slice (2^14 sub-steps:
#: a 6 h slice in 1.3 s steps, exact enough for rates up to ~1000 per hour, capped below).
_SQUARINGS = 14
_RATE_CAP = 1000.0


class HazardBook:
    """Moves and person-time per flow, state and slice of the window; chances of the goal."""

    def __init__(self, window_s: int = 7 * 86_400, bucket_s: int = 6 * 3600,
                 prior_hours: float = 200.0, extrapolate_half_life_s: int = 86_400):
        self.bucket_ms = bucket_s * 1000
        self.window_ms = window_s * 1000
        self.buckets = max(1, -(-self.window_ms // self.bucket_ms))
        self.prior_hours = prior_hours
        self.half_life_ms = extrapolate_half_life_s * 1000
        self.moves: dict[str, np.ndarray] = {}  # flow -> [from, to, bucket] counts
        self.exposure: dict[str, np.ndarray] = {}  # flow -> [state, bucket] person-hours
        self.alive: dict[tuple[str, int, int], int] = {}  # (flow, state, entered hour) -> n
        self.hour = -1  # the hour whose start the exposure has been counted up to
        self._tables: dict[str, np.ndarray] = {}  # flow -> chance[state, bucket + 1]
        self._pooled: np.ndarray | None = None

    def set_window(self, window_s: int) -> None:
        """Another window: the counts so far stay (per slice of elapsed time)."""
        window_ms = window_s * 1000
        if window_ms == self.window_ms:
            return
        buckets = max(1, -(-window_ms // self.bucket_ms))
        grow = buckets - self.buckets
        if grow > 0:
            for flow, m in self.moves.items():
                self.moves[flow] = np.concatenate([m, np.zeros((_N, _N, grow))], axis=2)
                self.exposure[flow] = np.concatenate(
                    [self.exposure[flow], np.zeros((_N, grow))], axis=1)
        self.window_ms, self.buckets = window_ms, max(buckets, self.buckets)
        self._tables.clear()

    # -- counting -------------------------------------------------------------------
    def enter(self, flow: str, ts_ms: int) -> None:
        """A journey entered the flow at `ts_ms` (in state QUIET)."""
        self.advance(ts_ms)
        self._arrays(flow)
        key = (flow, QUIET, ts_ms // HOUR_MS)
        self.alive[key] = self.alive.get(key, 0) + 1
        # the hour is counted whole at its end: take back the part before entering
        self._credit(flow, QUIET, ts_ms // HOUR_MS, ts_ms, -1.0)

    def move(self, flow: str, entered_ms: int, ts_ms: int, old: int, new: int) -> None:
        """A journey that entered at `entered_ms` moved from `old` to `new` at `ts_ms`
        (`new` GOAL or STOP ends it; `new` None: it left without a move, the window
        closed or it was erased)."""
        self.advance(ts_ms)
        hour = entered_ms // HOUR_MS
        key = (flow, old, hour)
        n = self.alive.get(key, 0)
        if n <= 0:
            return  # not counted here (entered before a restart of an older format)
        if n == 1:
            del self.alive[key]
        else:
            self.alive[key] = n - 1
        self._credit(flow, old, hour, ts_ms, 1.0)  # it lived the hour up to now in `old`
        if new is None:
            return
        elapsed = ts_ms - hour * HOUR_MS
        bucket = min(elapsed // self.bucket_ms, self.buckets - 1)
        self._arrays(flow)[0][old, new, bucket] += 1
        if new < GOAL:
            key = (flow, new, hour)
            self.alive[key] = self.alive.get(key, 0) + 1
            self._credit(flow, new, hour, ts_ms, -1.0)

    def leave(self, flow: str, entered_ms: int, ts_ms: int, state: int) -> None:
        """The journey left without a move (window closed, erased)."""
        self.move(flow, entered_ms, ts_ms, state, None)  # type: ignore[arg-type]

    def advance(self, ts_ms: int) -> None:
        """Event time reached `ts_ms`: count the person-time of every whole hour before it."""
        hour = ts_ms // HOUR_MS
        if self.hour < 0:
            self.hour = hour
            return
        while self.hour < hour:
            h = self.hour
            for (flow, state, entered), n in self.alive.items():
                elapsed = (h - entered) * HOUR_MS
                if elapsed < self.window_ms:
                    bucket = min(elapsed // self.bucket_ms, self.buckets - 1)
                    self.exposure[flow][state, bucket] += n
            self.hour = h + 1
            self._tables.clear()
            self._pooled = None

    def _credit(self, flow: str, state: int, entered_hour: int, ts_ms: int,
                sign: float) -> None:
        """Part of the current hour (from its start to `ts_ms`) in `state`, added or taken
        back (the hour is counted whole for the groups alive at its end)."""
        start = max(self.hour, 0) * HOUR_MS
        part = (ts_ms - start) / HOUR_MS
        elapsed = start - entered_hour * HOUR_MS
        if part and 0 <= elapsed < self.window_ms:
            bucket = min(elapsed // self.bucket_ms, self.buckets - 1)
            self._arrays(flow)[1][state, bucket] += sign * part

    def _arrays(self, flow: str) -> tuple[np.ndarray, np.ndarray]:
        m = self.moves.get(flow)
        if m is None:
            m = self.moves[flow] = np.zeros((_N, _N, self.buckets))
            self.exposure[flow] = np.zeros((_N, self.buckets))
        return m, self.exposure[flow]

    # -- estimates ------------------------------------------------------------------
    def rates(self, flow: str) -> np.ndarray:
        """Per hour, [from, to, bucket]: the flow's counts shrunk towards the pooled rates
        (`prior_hours` of person-time at the pooled rate); slices the flow's journeys did
        not reach yet take the flow's last day seen, decaying (the pooled rates, while the
        flow has seen nothing)."""
        pooled = self._pooled_rates()
        m, e = self._arrays(flow)
        k = self.prior_hours
        return np.minimum((m + k * pooled) / np.maximum(e[:, None, :] + k, 1e-9), _RATE_CAP)

    def rate(self, flow: str, old: int, new: int, bucket: int) -> float:
        return float(self.rates(flow)[old, new, bucket])

    def _pooled_rates(self) -> np.ndarray:
        if self._pooled is not None:
            return self._pooled
        b = self.buckets
        m = np.zeros((_N, _N, b))
        e = np.zeros((_N, b))
        for flow, mm in self.moves.items():
            m += mm
            e += self.exposure[flow]
        r = m / np.maximum(e, 1e-9)[:, None, :]
        self._pooled = self._extrapolate(m, e, r)
        return self._pooled

    def _extrapolate(self, m: np.ndarray, e: np.ndarray, r: np.ndarray) -> np.ndarray:
        """The slices no journey has lived in yet, per state (after the last one with a
        person-hour in it): that state's rates over the last day lived, halving every
        half-life; slices between lived ones with none: the slice before."""
        r = r.copy()
        seen = e >= 1.0
        per_day = max(1, round(24 * HOUR_MS / self.bucket_ms))
        for s in range(_N):
            lived = np.flatnonzero(seen[s])
            if lived.size == 0:
                continue
            last = lived[-1]
            day = lived[lived > last - per_day]
            base = m[s][:, day].sum(axis=1) / e[s, day].sum()
            for j in range(lived[0] + 1, last):
                if not seen[s, j]:
                    r[s, :, j] = r[s, :, j - 1]
            # no longer than the time lived so far: hours of data say little about days
            half_life = min(self.half_life_ms, (last + 1) * self.bucket_ms)
            for j in range(last + 1, self.buckets):
                r[s, :, j] = base * 0.5 ** ((j - last) * self.bucket_ms / half_life)
        return r

    def table(self, flow: str) -> np.ndarray:
        """chance[state, bucket]: P(goal before the window closes | in `state` at the start
        of `bucket`); chance[:, buckets] is the window's end (0, or 1 for GOAL)."""
        t = self._tables.get(flow)
        if t is not None:
            return t
        r = self.rates(flow)
        b = self.buckets
        q = np.transpose(r, (2, 0, 1)).copy()  # [bucket, from, to]
        idx = np.arange(_N)
        q[:, idx, idx] = 0.0
        q[:, GOAL, :] = 0.0
        q[:, STOP, :] = 0.0
        q[:, idx, idx] = -q.sum(axis=2)
        dt = self.bucket_ms / HOUR_MS / (1 << _SQUARINGS)
        p = np.eye(_N)[None, :, :] + q * dt
        for _ in range(_SQUARINGS):
            p = p @ p
        t = np.zeros((_N, b + 1))
        t[GOAL, :] = 1.0
        for j in range(b - 1, -1, -1):
            t[:, j] = p[j] @ t[:, j + 1]
        self._tables[flow] = t
        return t

    def chance(self, flow: str, state: int, elapsed_ms: int) -> float:
        """P(goal before the window closes | in `state`, `elapsed_ms` after entering)."""
        if state == GOAL:
            return 1.0
        if state == STOP or elapsed_ms >= self.window_ms:
            return 0.0
        t = self.table(flow)
        x = max(elapsed_ms, 0) / self.bucket_ms
        j = min(int(x), self.buckets - 1)
        f = min(x - j, 1.0)
        end = self.window_ms / self.bucket_ms  # the window may end inside the last slice
        if j + 1 >= end:
            f = min((x - j) / max(end - j, 1e-9), 1.0)
        value = (1.0 - f) * t[state, j] + f * t[state, j + 1]
        return float(min(max(value, 0.0), 1.0)) if math.isfinite(value) else 0.0

    def chances(self, flow: str, states: np.ndarray, elapsed_ms: np.ndarray) -> np.ndarray:
        """`chance` for many open journeys of one flow at once (states below GOAL).

        >>> h = HazardBook(window_s=86_400)
        >>> h.enter("f", 0); h.move("f", 0, 3_600_000, QUIET, GOAL); h.enter("f", 10)
        >>> h.advance(7_200_000)
        >>> states, elapsed = np.array([QUIET, QUIET]), np.array([0, 50_000_000])
        >>> h.chances("f", states, elapsed).tolist() == [h.chance("f", QUIET, 0),
        ...                                              h.chance("f", QUIET, 50_000_000)]
        True
        """
        t = self.table(flow)
        x = np.maximum(elapsed_ms, 0) / self.bucket_ms
        j = np.minimum(x.astype(np.int64), self.buckets - 1)
        f = np.minimum(x - j, 1.0)
        end = self.window_ms / self.bucket_ms
        last = j + 1 >= end
        if last.any():
            f = np.where(last, np.minimum((x - j) / np.maximum(end - j, 1e-9), 1.0), f)
        value = (1.0 - f) * t[states, j] + f * t[states, j + 1]
        value = np.where(np.isfinite(value), np.clip(value, 0.0, 1.0), 0.0)
        return np.where(elapsed_ms >= self.window_ms, 0.0, value)
