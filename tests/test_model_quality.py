"""operators/model_quality.py: histogram AUC equals the exact one, rows follow the labels."""

from __future__ import annotations

import random

import numpy as np
import pytest

from operators.learning import Graded, roc_auc
from operators.model_quality import CODES, ModelQuality, auc_error_bound, code_of

MIN = 60_000


def exact(window: list[Graded]) -> tuple[float, float, float]:
    y = np.array([g.y for g in window], dtype=np.int8)
    p = np.array([g.p for g in window])
    q = np.clip(p, 1e-6, 1 - 1e-6)
    loss = float(-(y * np.log(q) + (1 - y) * np.log(1 - q)).mean())
    return roc_auc(y, p), loss, float(y.mean())


def float16(rnd: random.Random, skew: float) -> float:
    """A float16 prediction, as the learner stores them; many ties near 0."""
    return float(np.float16(rnd.random() ** skew))


@pytest.mark.parametrize("seed", range(3))
def test_rows_equal_the_exact_metrics_over_the_sliding_window(seed):
    rnd = random.Random(seed)
    window = rnd.choice((50, 500, 2000))
    quality = ModelQuality(window=window)
    seen: dict[str, list[Graded]] = {"a": [], "b": []}
    ts, checked = 0, 0
    for _ in range(3000):
        ts += rnd.choice((0, 0, 1_000, 30_000, 5 * MIN))
        model = rnd.choice(("a", "b"))
        p = float16(rnd, rnd.choice((1, 3)))
        g = Graded(model, ts, rnd.random() < p * 0.8 + 0.05, p)
        rows = quality.add([g])
        for row in rows:
            labels = [x for x in seen[row.model] if x.ts_ms < row.minute_ms]
            assert labels == seen[row.model]  # a row covers exactly the labels before it
            auc, loss, rate = exact(labels[-window:])
            assert row.roc_auc == round(auc, 6)
            assert row.log_loss == pytest.approx(round(loss, 6), abs=1.1e-6)
            assert row.positive_rate == round(rate, 6)
            assert (row.n, row.n_window) == (len(labels), min(window, len(labels)))
            checked += 1
        seen[model].append(g)
    assert checked > 50


def test_predictions_that_are_not_float16_values_stay_within_the_stated_bound():
    rnd = random.Random(3)
    quality = ModelQuality(window=5000)
    graded = [Graded("m", i, rnd.random() < 0.3, rnd.random() ** 2) for i in range(5000)]
    quality.add(graded)
    (row,) = quality.flush(5000)
    pos, neg = np.zeros(CODES, dtype=np.int64), np.zeros(CODES, dtype=np.int64)
    for g in graded:
        (pos if g.y else neg)[code_of(g.p)] += 1
    bound = auc_error_bound(pos, neg)
    auc, _, _ = exact(graded)
    assert 0 < bound < 0.01
    assert abs(row.roc_auc - auc) <= bound + 1e-6


def test_one_row_per_model_per_minute_of_labels():
    quality = ModelQuality()
    assert quality.add([Graded("x", 10_000, True, 0.5), Graded("y", 20_000, False, 0.5)]) == []
    assert quality.add([Graded("x", 30_000, False, 0.25)]) == []  # same minute
    rows = quality.add([Graded("x", 10 * MIN + 5, True, 0.75)])  # nine quiet minutes later
    assert [(r.model, r.minute_ms, r.n) for r in rows] == [("x", MIN, 2), ("y", MIN, 1)]
    rows = quality.add([Graded("y", 12 * MIN, True, 0.75)])
    assert [(r.model, r.minute_ms, r.n) for r in rows] == [("x", 11 * MIN, 3)]  # y had none
    assert [(r.model, r.minute_ms) for r in quality.flush(13 * MIN)] == [("y", 13 * MIN)]
    assert quality.flush(14 * MIN) == []


def test_ece_kept_in_and_out_of_the_window_equals_a_recount():
    """Expected calibration error over tenths, as labels enter and leave the window, equals
    a recount of the window's labels (their float16 predictions)."""
    rnd = random.Random(11)
    quality = ModelQuality(window=300)
    seen: list[Graded] = []
    for i in range(2000):
        p = rnd.random() ** 2
        g = Graded("m", i * 1000, rnd.random() < p * 0.7 + 0.1, p)
        seen.append(g)
        for row in quality.add([g]):
            window = [x for x in seen[:-1]][-300:]
            bins: dict[int, list[float]] = {}
            for x in window:
                v = float(np.float16(x.p))
                b = bins.setdefault(min(int(v * 10), 9), [0.0, 0.0])
                b[0] += v
                b[1] += x.y
            assert row.ece == pytest.approx(
                round(sum(abs(a - b) for a, b in bins.values()) / len(window), 6), abs=2e-6)


@pytest.mark.parametrize("seed", range(4))
def test_the_running_count_from_the_last_row_equals_a_full_pass(seed):
    """A row updates the last row's Mann-Whitney count from the few labels that came and
    went since (cheap for models with few labels a minute): the same exact count, hence the
    same AUC, as a full pass over the histograms; also when labels pile up past the limit,
    tie, leave the window in the same minute they came, or sit at the histogram's edges."""
    rnd = random.Random(seed)
    size = rnd.choice((3, 20, 200))
    quality, recount = ModelQuality(window=size), ModelQuality(window=size)
    ts, incremental = 0, 0
    for _ in range(4000):
        ts += rnd.choice((0, 0, 0, 1_000, MIN, 3 * MIN))
        p = rnd.choice((0.0, 1.0, 0.5, float(np.float16(rnd.random() ** 3))))
        g = Graded("m", ts, rnd.random() < 0.2 + 0.6 * p, p)
        window = quality.models.get("m")
        incremental += bool(window is not None and window.u2 is not None and window.changes)
        rows = quality.add([g])
        for w in recount.models.values():
            w.u2 = None  # forget the running count: every row a full pass
        assert rows == recount.add([g])
    assert incremental > 500


def test_a_window_pickled_before_the_running_count_restores_and_recounts():
    import pickle

    quality = ModelQuality(window=50)
    quality.add([Graded("m", i * 1000, i % 3 == 0, (i % 7) / 8) for i in range(40)])
    window = quality.models["m"]
    state = window.__reduce_ex__(2)
    old = dict(state[2][1])
    del old["u2"], old["changes"]  # as written before the running count existed
    restored = pickle.loads(pickle.dumps(state[0](*state[1])))
    restored.__setstate__((None, old))
    assert restored.u2 is None and restored.changes is None
    quality.models["m"] = restored
    (row,) = quality.add([Graded("m", 120_000, True, 0.5)])
    fresh = ModelQuality(window=50)
    fresh.add([Graded("m", i * 1000, i % 3 == 0, (i % 7) / 8) for i in range(40)])
    assert row == fresh.add([Graded("m", 120_000, True, 0.5)])[0]
