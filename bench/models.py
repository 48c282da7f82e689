"""Model choice and cost: prequential quality and µs per event on generated traffic.

Runs a generated stream (in event-time order, in-process, no broker) through
the engine's analytics and learning, records the engagement task's matured
(features, label) sequence, then replays that sequence through candidate
River models, each predicting before it learns. Also reports the send-time
hit rates against the fixed best global hour, and the learner's cost.
Prints one JSON line.

    python bench/models.py [--hours 3] [--rate 15] [--label-window-s 1800]
        [--shards 1,8,64] [--sto-days 7] [--no-candidates]

`engagement_ceilings` puts the engine's engagement ROC AUC beside what is possible
on the same labels (the generator's side channel knows each message's true
probability; see `ceilings`).
"""

from __future__ import annotations

import argparse
import os
import pickle
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
    (negatives down-sampled and weighted as the engine does; ROC AUC is unbiased on it),
    and every delivery's scores and labels (for the ceilings)."""

    trace: list[tuple[dict, bool, float]]
    delivered: dict[int, tuple]  # key -> (ts_ms, message_id, recipient_hash, p_eng, p_conv)
    bits: dict[int, int]  # key -> label bits received while the message was pending

    def _learn(self, task, sid, x, y, preds, ts_ms, weight=1.0):  # type: ignore[override]
        if task == "engagement":
            self.trace.append((x, y, weight))
        return super()._learn(task, sid, x, y, preds, ts_ms, weight)

    cpu_s = 0.0  # CPU time of the models' work per delivery: score, label, learn

    def on_delivered(self, fact):  # type: ignore[override]
        started = time.thread_time()
        score, graded = super().on_delivered(fact)
        self.cpu_s += time.thread_time() - started
        self.delivered[fact.key] = (fact.ts_ms, fact.message_id, fact.recipient_hash,
                                    score.score, score.conversion)
        return score, graded

    def on_label(self, fact):  # type: ignore[override]
        if fact.key in self.pending:
            self.bits[fact.key] = self.bits.get(fact.key, 0) | fact.bits
        started = time.thread_time()
        out = super().on_label(fact)
        self.cpu_s += time.thread_time() - started
        return out

    def tick(self, ts_ms):  # type: ignore[override]
        started = time.thread_time()
        out = super().tick(ts_ms)
        self.cpu_s += time.thread_time() - started
        return out


def _logistic_fit(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 30
                  ) -> np.ndarray:
    """Logistic regression by Newton's method; `y` may be a probability (soft target)."""
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(x @ w)))
        grad = x.T @ (p - y) + l2 * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + l2 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w


def _history_design(z: np.ndarray, n: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Context logit, and one cell per (matured deliveries, matured positives) bin, with the
    context's slope per positives bin: a flexible context + history model."""
    nb = np.digitize(n, [1, 2, 3, 4, 6, 10, 20])
    kb = np.digitize(k, [1, 2, 3, 5])
    cells = nb * 5 + kb
    onehot = np.zeros((len(z), 40))
    onehot[np.arange(len(z)), cells] = 1.0
    slope = np.zeros((len(z), 5))
    slope[np.arange(len(z)), kb] = z
    return np.hstack([onehot, slope])


def ceilings(gen: TrafficGenerator, learner: RecordingLearner, last_ts_ms: int) -> dict:
    """ROC AUC of the engine and of three references on the same labels (every delivery
    whose label window closed): the true probability; a context-only oracle (the truth
    averaged over the sender's deliverable recipients at the message's domain, for the
    message's mailing, variant and delivery time: E[p | context]); and context + the
    recipient's matured history (cross-fitted by recipient, fit in hindsight on the truth:
    logistic regression of p on the oracle's logit and (matured deliveries, matured
    positives) cells, counted from the labels whose window had closed at delivery)."""
    from mailflow.generator import engagement_truth

    window = learner.label_window_ms
    rows = []
    for key, (ts, mid, rh, p_eng, _p_conv) in learner.delivered.items():
        minute = ts // 60_000
        if minute >= (last_ts_ms - window) // 60_000 or mid not in gen.truth:
            continue  # label not graded by the end of the run
        y = bool(learner.bits.get(key, 0) & 1)
        rows.append((ts, learner.due_ms(minute), rh, mid, y, p_eng))
    rows.sort()
    members = {s: gen.deliverable_members(s) for s in range(len(gen._profiles))}
    cache: dict[tuple, float] = {}
    truth, ctx, ys, eng = [], [], [], []
    for _ts, due, _rh, mid, y, p_eng in rows:
        td, s, m, v, r, incident = gen.truth_context[mid]
        d = gen._domain_ix[r]
        # the truth depends on the time of day (hour, when the reader reads), not the date
        ck = (s, m.campaign_id, v, d, incident, td % 86_400_000 // 900_000)
        if ck not in cache:
            rs = members[s][d]
            cache[ck] = float(engagement_truth(
                td, due, np.array([gen._propensity[i] for i in rs]),
                np.array([gen._hour[i] for i in rs]), np.array([gen._notified[i] for i in rs]),
                gen._profiles[s].engagement, m.lift[v], m.expected, bool(m.flow_id),
                incident).mean())
        truth.append(gen.truth[mid])
        ctx.append(cache[ck])
        ys.append(y)
        eng.append(p_eng)
    # matured history at each delivery: labels whose due time passed before it
    n_hist, k_hist = np.zeros(len(rows)), np.zeros(len(rows))
    book: dict[str, list] = {}
    for i, (ts, due, rh, _mid, y, _p) in enumerate(rows):
        past = book.setdefault(rh, [])
        n_hist[i] = sum(1 for d, _ in past if d <= ts)
        k_hist[i] = sum(1 for d, yy in past if d <= ts and yy)
        past.append((due, y))
    y_arr = np.array(ys, dtype=np.int8)
    p_ctx = np.clip(np.array(ctx), 1e-5, 1 - 1e-5)
    design = _history_design(np.log(p_ctx / (1 - p_ctx)), n_hist, k_hist)
    fold = np.array([hash_fold(r[2]) for r in rows])
    p_hist = np.zeros(len(rows))
    for f in (0, 1):
        w = _logistic_fit(design[fold != f], np.array(truth)[fold != f])
        p_hist[fold == f] = 1 / (1 + np.exp(-(design[fold == f] @ w)))
    def aucs(part: slice) -> dict:
        y = y_arr[part]
        return {"labels": len(y), "positive_rate": round(float(y.mean()), 4),
                "engine": round(roc_auc(y, np.array(eng)[part]), 4),
                "context_oracle": round(roc_auc(y, p_ctx[part]), 4),
                "context_plus_matured_history": round(roc_auc(y, p_hist[part]), 4),
                "true_probability": round(roc_auc(y, np.array(truth)[part]), 4),
                "mean_true_probability": round(float(np.array(truth)[part].mean()), 4),
                "mean_matured_deliveries": round(float(n_hist[part].mean()), 2)}

    # the engine's own rows grade its latest 20,000 labels (ModelQuality's window)
    return {"all_labels": aucs(slice(None)), "last_20000": aucs(slice(-20_000, None))}


def hash_fold(recipient_hash: str) -> int:
    return int(recipient_hash[-1], 16) & 1


def candidates() -> dict:
    return {
        "logistic_regression_adagrad (engine)": lambda: linear_model.LogisticRegression(
            optimizer=optim.AdaGrad(0.1), l2=1e-5),
        "logistic_regression_sgd": lambda: linear_model.LogisticRegression(
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
    parser.add_argument("--no-candidates", dest="candidates", action="store_false",
                        help="skip replaying the trace through the candidate River models")
    args = parser.parse_args()

    gen = TrafficGenerator(seed=4, start=START)
    gen.record_truth(args.label_window_s)
    events = gen.events(args.rate, args.hours * 3600)
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
    learner.trace, learner.delivered, learner.bits = [], {}, {}
    analytics.aggregates.learner = learner
    started, cpu_started = time.perf_counter(), time.thread_time()
    out = analytics.apply(items)
    analytics_s = time.perf_counter() - started
    analytics_cpu_s = time.thread_time() - cpu_started
    rows = {r.model: r for r in out.model_metrics + analytics.flush().model_metrics}

    limits = ceilings(gen, learner, items[-1][0].ts_ms)
    results = {}
    for name, make in (candidates() if args.candidates else {}).items():
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
    history = analytics.recipients.history
    hit = send_time_comparison(args.sto_days) if args.sto_days > 0 else {}
    print(orjson.dumps({
        "bench": "models", "events": len(items), "labels": len(learner.trace),
        "positive_rate": rows["engagement"].positive_rate,
        "engine": {name: {"roc_auc": r.roc_auc, "log_loss": r.log_loss}
                   for name, r in rows.items()},
        "engagement_ceilings": limits,
        "candidates_engagement": results,
        "engine_by_shards": by_shards,
        "send_time_hit_rate": hit,
        "analytics_and_learning_us_per_event": round(analytics_s / len(items) * 1e6, 1),
        "analytics_and_learning_cpu_us_per_event": round(analytics_cpu_s / len(items) * 1e6, 1),
        # the models' single merge: CPU µs per delivery (its score, labels and learning)
        "models_cpu_us_per_delivery": round(learner.cpu_s / max(len(learner.delivered), 1)
                                            * 1e6, 1),
        # what the recipient's numbers add to each pickled Delivered fact
        "recipient_numbers_pickled_bytes": len(pickle.dumps(history.numbers(
            next(iter(history.recipients)), items[-1][0].ts_ms))),
        "pending_bytes_per_message": round(learner.pending_bytes(), 1),
        "cores": os.cpu_count()}).decode())


if __name__ == "__main__":
    main()
