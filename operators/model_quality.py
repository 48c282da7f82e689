"""Prequential model quality: one `ModelMetricRow` per model per minute of labels.

The learner grades every label against the prediction made at delivery and
hands the result over as `Graded(model, ts_ms, y, p)`; `ModelQuality` keeps,
per model, the latest `window` (default 20,000) graded labels and reports on
them: ROC AUC, log loss, positive rate, labels scored so far (`n`) and in the
window (`n_window`).

Rows follow the labels, not the clock: feed graded labels in event-time order
through `add`; when a label of a later minute arrives, every model that got
labels in the minutes since its last row gets one row, stamped ``minute_ms =``
(the minute of its latest label + 1) * 60,000, i.e. computed from exactly the
labels before that time. `flush(ts_ms)` (end of input) emits the rows still
due. A minute without labels writes no row (the previous row still holds).

Cost: a label costs two counter updates (in, and out of the window); a row
costs one pass over a fixed histogram, whatever the window size, or, when few
labels came and went since the model's last row (`_INCREMENTAL_MAX`), one
partial histogram sum per such label: the Mann-Whitney count is bilinear in the
two histograms, so the last row's count plus the changed labels' pairs is the
same exact integer (a model with a few labels a minute, e.g. the convergence
propensities, pays microseconds per row instead of a pass over every code). The window is
held as a histogram per class over the 15,361 half-precision (float16) values
in [0, 1]. The learner stores its predictions as float16 (they are float16
values exactly), so the ROC AUC from the histograms *is* the exact
Mann-Whitney AUC of the window, ties counted half (`learning.roc_auc`). A
prediction that is not a float16 value is rounded to the nearest one; rounding
is monotone, so only pairs it merges into a tie can move, by half a pair each:
the AUC is then within ``0.5 * sum(pos[v] * neg[v]) / (P * N)`` of the exact
one (`auc_error_bound`, tested). Log loss uses the same float16 values,
summed in fixed point (exact in and out of the window, 2**-41 per label).

>>> q = ModelQuality(window=3)
>>> q.add([Graded("m", 1_000, True, 0.75), Graded("m", 2_000, False, 0.25)])
[]
>>> q.add([Graded("m", 61_000, False, 0.5)])  # a later minute: minute 0 is complete
[ModelMetricRow(model='m', minute_ms=60000, n=2, n_window=2, roc_auc=1.0, log_loss=0.287682, \
positive_rate=0.5, ece=0.25)]
>>> q.add([Graded("m", 62_000, True, 0.5), Graded("m", 63_000, True, 0.25)])
[]
>>> q.flush(63_000)  # window of 3: the 0.75 positive left; 0.5 ties, 0.25 loses
[ModelMetricRow(model='m', minute_ms=120000, n=5, n_window=3, roc_auc=0.25, log_loss=0.924196, \
positive_rate=0.666667, ece=0.25)]
>>> q.flush(63_000)
[]
"""

from __future__ import annotations

import struct
from array import array
from collections import deque

import numpy as np

from operators.learning import Graded, ModelMetricRow

__all__ = ["CODES", "Graded", "ModelMetricRow", "ModelQuality", "auc_error_bound", "code_of"]

MINUTE_MS = 60_000
#: float16 bit patterns of the values in [0, 1] are 0x0000..0x3C00, increasing with the
#: value: the histogram index of a prediction is its bit pattern.
CODES = 0x3C00 + 1
_F16 = struct.Struct("<e")
#: Predictions are float16 values, so at most CODES distinct keys in practice; bounded
#: anyway (a cache of a pure function).
_CODE_CACHE: dict[float, int] = {}
_CODE_CACHE_MAX = 65_536
_U16 = struct.Struct("<H")
_VALUES = np.frombuffer(np.arange(CODES, dtype=np.uint16).tobytes(), dtype=np.float16
                        ).astype(np.float64)
_CLIPPED = np.clip(_VALUES, 1e-6, 1 - 1e-6)
#: Log loss per label and prediction value in fixed point (units of 2**-40): the window's
#: sum is kept exactly as an integer, in and out, so it costs nothing per row and never
#: drifts (each term is off by at most 2**-41, far below the 6 decimals reported).
_FIXED = 2.0 ** 40
_LOSS_POS = [round(v) for v in (-np.log(_CLIPPED) * _FIXED).tolist()]
_LOSS_NEG = [round(v) for v in (-np.log(1 - _CLIPPED) * _FIXED).tolist()]
_FIXED_ONE = round(_FIXED)
#: Calibration bin (predicted probability in tenths) of each code, and its value in fixed
#: point: the bins' sums are exact integers, kept as labels enter and leave the window.
_DECILE = np.minimum((np.clip(_VALUES, 0.0, 1.0) * 10).astype(np.int64), 9).tolist()
_VALUE_FIXED = [round(v) for v in (np.clip(_VALUES, 0.0, 1.0) * _FIXED).tolist()]
#: A row updates the last row's Mann-Whitney count from the labels that came and went since,
#: while there are at most this many (each costs a partial histogram sum, ~3 µs; a full pass
#: costs ~50 µs); beyond it, or without a count yet, the full pass.
_INCREMENTAL_MAX = 12


def code_of(p: float) -> int:
    """Histogram index of a prediction: its float16 bit pattern, after clipping to [0, 1].

    >>> code_of(0.0), code_of(1.0), code_of(0.5) < code_of(0.501) < code_of(0.51)
    (0, 15360, True)
    >>> code_of(0.5001) == code_of(0.5)  # not a float16 value: rounded to the nearest
    True
    """
    code = _CODE_CACHE.get(p)
    if code is None:
        if not p > 0.0:  # also NaN
            code = 0
        elif p >= 1.0:
            code = CODES - 1
        else:
            code = _U16.unpack(_F16.pack(p))[0]
        if len(_CODE_CACHE) >= _CODE_CACHE_MAX:
            _CODE_CACHE.clear()
        _CODE_CACHE[p] = code
    return code


class _Window:
    """The latest `size` graded labels of one model, as two histograms over float16 codes."""

    __slots__ = ("size", "labels", "pos", "neg", "n", "positives", "bottom", "top", "loss",
                 "calibration", "u2", "changes")

    def __init__(self, size: int):
        self.size = size
        self.labels: deque[int] = deque()  # code * 2 + y, oldest first
        # Counts as float64 (exact below 2**53): numpy reads them without a copy, and the
        # sums below are BLAS dot products of exact integers.
        self.pos = array("d", bytes(8 * CODES))
        self.neg = array("d", bytes(8 * CODES))
        self.n = 0  # labels scored so far
        self.positives = 0  # in the window
        # Codes in [bottom, top) were seen; the rest of the histogram is all zero and left
        # out of the sums (a model's predictions span a fraction of the codes).
        self.bottom, self.top = CODES, 0
        self.loss = 0  # log loss summed over the window, fixed point (_FIXED)
        # per tenth of predicted probability: predictions summed (fixed point) - positives
        self.calibration = [0] * 10
        self._reset_count()

    def _reset_count(self) -> None:
        #: 2 × the Mann-Whitney U of the window at the last row (None: not known), and the
        #: labels in (+1) and out (-1) of the window since, as code * 4 + y * 2 + (sign > 0)
        self.u2: int | None = None
        self.changes: list[int] | None = None

    def __setstate__(self, state: tuple) -> None:
        # snapshots from before the running count: restored without one (a full pass first)
        self._reset_count()
        for name, value in (state[1] if isinstance(state, tuple) else state).items():
            setattr(self, name, value)

    def add(self, y: bool, p: float) -> None:
        code = code_of(p)
        if code >= self.top:
            self.top = code + 1
        if code < self.bottom:
            self.bottom = code
        labels = self.labels
        calibration = self.calibration
        changes = self.changes
        if changes is not None:
            if len(changes) >= _INCREMENTAL_MAX:  # many since the last row: a full pass
                changes = self.changes = None
                self.u2 = None
            else:
                changes.append(code * 4 + (3 if y else 1))
        if len(labels) == self.size:
            old = labels.popleft()
            gone = old >> 1
            if changes is not None:
                changes.append(gone * 4 + (old & 1) * 2)
            calibration[_DECILE[gone]] -= _VALUE_FIXED[gone] - (_FIXED_ONE if old & 1 else 0)
            if old & 1:
                self.pos[gone] -= 1
                self.positives -= 1
                self.loss -= _LOSS_POS[gone]
            else:
                self.neg[gone] -= 1
                self.loss -= _LOSS_NEG[gone]
        calibration[_DECILE[code]] += _VALUE_FIXED[code] - (_FIXED_ONE if y else 0)
        if y:
            self.pos[code] += 1
            self.positives += 1
            self.loss += _LOSS_POS[code]
            labels.append(code * 2 + 1)
        else:
            self.neg[code] += 1
            self.loss += _LOSS_NEG[code]
            labels.append(code * 2)
        self.n += 1

    def row(self, model: str, minute_ms: int) -> ModelMetricRow:
        n_window = len(self.labels)
        # Element-wise products and sums, not `@`: numpy hands dot products to BLAS, whose
        # threads spin on a busy machine (measured: 30x the CPU time of the sums below).
        lo, hi = self.bottom, max(self.top, self.bottom)
        pos = np.frombuffer(self.pos, dtype=np.float64)[lo:hi]
        neg = np.frombuffer(self.neg, dtype=np.float64)[lo:hi]
        p, n = self.positives, n_window - self.positives
        if p and n:
            u2 = self._u2(pos, neg, lo, hi, p, n)
            auc = float(u2) / (2 * p * n)
        else:
            auc = 0.5
            self.u2 = 0  # no pair
            self.changes = []
        loss = self.loss / _FIXED / n_window if n_window else 0.0
        return ModelMetricRow(model, minute_ms, self.n, n_window, round(auc, 6), round(loss, 6),
                              round(p / n_window, 6) if n_window else 0.0,
                              round(self.ece(), 6))

    def _u2(self, pos: np.ndarray, neg: np.ndarray, lo: int, hi: int, p: int, n: int
            ) -> int:
        """2U, Mann-Whitney: the sum over positives of 2 * (negatives below) + (negatives
        tied), as an exact integer (< 2**53 for any window below 10**5).

        From the last row's count when few labels changed since: with the histograms
        P = P0 + dP, N = N0 + dN and B(P, N) the (bilinear) count,
        B(P, N) = B(P0, N0) + B(dP, N) + B(P, dN) - B(dP, dN): each changed positive
        pairs with the negatives now, each changed negative with the positives now, and
        pairs of two changed labels were counted twice."""
        changes = self.changes
        if self.u2 is None or changes is None:
            below = np.cumsum(neg)
            below *= 2
            below -= neg
            below *= pos
            u2 = int(below.sum())  # integers all the way: exact
        else:
            u2 = self.u2
            plus, minus = [], []  # changed positives, negatives: (code, sign)
            for change in changes:
                c, sign = (change >> 2) - lo, 1 if change & 1 else -1
                # the shorter partial sum; the other side from the total (exact integers)
                if change & 2:  # 2 * (negatives below) + (negatives tied)
                    under = (int(neg[:c].sum()) if 2 * c <= hi - lo
                             else n - int(neg[c:].sum()))
                    u2 += sign * (2 * under + int(neg[c]))
                    plus.append((c, sign))
                else:  # 2 * (positives above) + (positives tied)
                    above = (int(pos[c + 1:].sum()) if 2 * c > hi - lo
                             else p - int(pos[:c + 1].sum()))
                    u2 += sign * (2 * above + int(pos[c]))
                    minus.append((c, sign))
            for a, sign_a in plus:  # pairs of two changed labels were counted twice
                for b, sign_b in minus:
                    if b <= a:
                        u2 -= (2 if b < a else 1) * sign_a * sign_b
        self.u2 = u2
        self.changes = []
        return u2

    def ece(self) -> float:
        """Expected calibration error over tenths of predicted probability: the mean, over
        labels, of |mean prediction - positive rate| of their bin (kept as labels come and
        go, so a row costs ten additions)."""
        n_window = len(self.labels)
        if not n_window:
            return 0.0
        return sum(map(abs, self.calibration)) / _FIXED / n_window


def auc_error_bound(pos: np.ndarray, neg: np.ndarray) -> float:
    """Largest difference between the histogram AUC and the exact AUC of the raw values:
    half of the positive-negative pairs that share a histogram code."""
    p, n = int(pos.sum()), int(neg.sum())
    return 0.5 * float((pos * neg).sum()) / (p * n) if p and n else 0.0


class ModelQuality:
    """Sliding-window prequential quality of every model; `add` graded labels in event-time
    order, get rows for the minutes that had labels."""

    def __init__(self, window: int = 20_000):
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window
        self.models: dict[str, _Window] = {}
        self.minute = -1  # minute of the newest label
        self.due: set[str] = set()  # models with labels since their last row

    def add(self, graded: list[Graded]) -> list[ModelMetricRow]:
        """Count graded labels (event-time order); rows of the minutes they complete."""
        rows: list[ModelMetricRow] = []
        models = self.models
        for g in graded:
            minute = g.ts_ms // MINUTE_MS
            if minute > self.minute:
                if self.due:
                    rows += self._rows()
                self.minute = minute
            # A label of an earlier minute (out of order) counts in the current one.
            window = models.get(g.model)
            if window is None:
                window = models[g.model] = _Window(self.window)
            window.add(g.y, g.p)
            self.due.add(g.model)
        return rows

    def flush(self, ts_ms: int) -> list[ModelMetricRow]:
        """End of input (event time at `ts_ms`): the rows still due, stamped like any other
        (the minute of their latest label + 1), so that a flush changes no row's time."""
        del ts_ms  # the rows' time comes from their labels
        return self._rows() if self.due else []

    def _rows(self) -> list[ModelMetricRow]:
        minute_ms = (self.minute + 1) * MINUTE_MS
        rows = [self.models[name].row(name, minute_ms) for name in sorted(self.due)]
        self.due = set()
        return rows


