"""Model choice and cost: prequential quality and µs per event on generated traffic.

Runs a generated stream (in event-time order, in-process, no broker) through
the engine's analytics and learning, records the engagement task's matured
(features, label) sequence, then replays that sequence through candidate
River models, each predicting before it learns. Also reports the send-time
hit rates against the fixed best global hour, and the learner's cost.
Prints one JSON line.

    python bench/models.py [--hours 3] [--rate 15]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from river import compose, forest, linear_model, optim, preprocessing, tree  # noqa: E402

from mailflow.generator import TrafficGenerator  # noqa: E402
from operators.analytics import EngagementAnalytics  # noqa: E402
from operators.bounces import BounceClassifier  # noqa: E402
from operators.learning import Learner, roc_auc  # noqa: E402
from schemas.events import Event, EventParser  # noqa: E402
from schemas.hashing import RecipientHasher  # noqa: E402

START = 1_795_000_000.0


class RecordingLearner(Learner):
    """Keeps the engagement task's (features, label, weight) sequence as it is learned
    (negatives down-sampled and weighted as the engine does; ROC AUC is unbiased on it)."""

    trace: list[tuple[dict, bool, float]]

    def _learn(self, task, sid, x, y, preds, ts_ms, weight=1.0):  # type: ignore[override]
        if task == "engagement":
            self.trace.append((x, y, weight))
        return super()._learn(task, sid, x, y, preds, ts_ms, weight)


def candidates() -> dict:
    return {
        "logistic_regression (engine)": lambda: linear_model.LogisticRegression(
            optimizer=optim.SGD(0.05), l2=1e-5),
        "scaled_logistic_regression": lambda: compose.Pipeline(
            preprocessing.StandardScaler(), linear_model.LogisticRegression()),
        "hoeffding_tree": lambda: tree.HoeffdingTreeClassifier(grace_period=200),
        "adaptive_random_forest_5": lambda: forest.ARFClassifier(n_models=5, seed=1),
    }


def send_time_comparison(days: float, rate: float = 2.0) -> dict:
    """Send-time hit rates (±2 h) over `days` of traffic: personal vs best global hour.

    Needs days, not hours: an hour-of-week habit only shows after several weeks."""
    from operators.engagement import MessageTracker
    from operators.send_time import SendTimeBook

    book, tracker = SendTimeBook(), MessageTracker()
    parse = EventParser(RecipientHasher(b"bench"), now=lambda: START + 60 * 86_400).parse
    for i, raw in enumerate(TrafficGenerator(seed=8, start=START).events(rate, days * 86_400)):
        ev = parse(raw.value, raw.topic, 0, i)
        if not isinstance(ev, Event):
            continue
        human = tracker.apply(ev).is_human
        if ev.type in ("open", "click", "reply", "conversion") and human:
            book.evaluate(ev.recipient_hash, ev.domain, ev.ts_ms)
            book.engage(ev.recipient_hash, ev.domain, ev.ts_ms)
    return {"days": days, **book.hit_rates()}


def sharded_quality(items: list, shards: int, label_window_s: int) -> dict:
    """The engine's prequential quality when recipients are split into `shards`, as the
    job runs: recipient state per shard, every shard's facts to the one models' step in
    event-time order."""
    from flows.shards import shard_of
    from operators.analytics import FlowAggregates, RecipientAnalytics, empty_batch

    books = [RecipientAnalytics(label_window_s=label_window_s) for _ in range(shards)]
    models = FlowAggregates(label_window_s=label_window_s)
    rows: list = []
    out = empty_batch()
    for item in items:
        books[shard_of(item[0].recipient_hash, shards)].apply([item], out)
        models.advance(item[0].ts_ms, out)
        models.apply(out.facts, out)
        out.facts.clear()
        rows += out.model_metrics
        out.model_metrics.clear()
    models.flush(out)
    rows += out.model_metrics
    latest = {r.model: r for r in rows}
    return {name: {"roc_auc": r.roc_auc, "log_loss": r.log_loss} for name, r in latest.items()
            if name in ("engagement", "conversion", "unsubscribe")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=15.0)
    parser.add_argument("--label-window-s", type=int, default=1800)
    parser.add_argument("--shards", default="1,8,64",
                        help="shard counts to compare the engine's quality at (comma-separated)")
    parser.add_argument("--sto-days", type=float, default=7.0,
                        help="days of low-rate traffic for the send-time comparison")
    args = parser.parse_args()

    events = TrafficGenerator(seed=4, start=START).events(args.rate, args.hours * 3600)
    parse = EventParser(RecipientHasher(b"bench"), now=lambda: START + 10 * 86_400).parse
    classify = BounceClassifier().classify
    items: list[tuple[Event, object]] = []
    for i, ev in enumerate(events):
        parsed = parse(ev.value, ev.topic, 0, i)
        if isinstance(parsed, Event):
            bounce = (classify(parsed.smtp_code, parsed.smtp_status, parsed.diagnostic,
                               parsed.bounce_kind) if parsed.type in ("bounce", "deferred")
                      else None)
            items.append((parsed, bounce))
    analytics = EngagementAnalytics(label_window_s=args.label_window_s)
    learner = RecordingLearner(label_window_s=args.label_window_s)
    learner.trace = []
    analytics.aggregates.learner = learner
    started = time.perf_counter()
    out = analytics.apply(items)
    analytics_s = time.perf_counter() - started
    rows = {r.model: r for r in out.model_metrics + analytics.flush().model_metrics}

    results = {}
    for name, make in candidates().items():
        model, ys, ps = make(), [], []
        t0 = time.perf_counter()
        for x, y, w in learner.trace:
            ps.append(model.predict_proba_one(x).get(True, 0.0))
            model.learn_one(x, y, w=w)
            ys.append(y)
        per_event = (time.perf_counter() - t0) / max(len(ys), 1) * 1e6
        results[name] = {"roc_auc": round(roc_auc(np.array(ys, dtype=np.int8),
                                                  np.array(ps)), 4),
                         "us_per_predict_and_learn": round(per_event, 1)}
    by_shards = {str(n): sharded_quality(items, n, args.label_window_s)
                 for n in (int(v) for v in args.shards.split(",") if v.strip())}
    hit = send_time_comparison(args.sto_days)
    print(orjson.dumps({
        "bench": "models", "events": len(items), "labels": len(learner.trace),
        "positive_rate": rows["engagement"].positive_rate,
        "engine": {name: {"roc_auc": r.roc_auc, "log_loss": r.log_loss}
                   for name, r in rows.items()},
        "candidates_engagement": results,
        "engine_by_shards": by_shards,
        "send_time_hit_rate": hit,
        "analytics_and_learning_us_per_event": round(analytics_s / len(items) * 1e6, 1),
        "pending_bytes_per_message": round(learner.pending_bytes(), 1),
        "cores": os.cpu_count()}).decode())


if __name__ == "__main__":
    main()
