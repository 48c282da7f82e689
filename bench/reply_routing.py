"""Labelled replies through the real job: `email.replies` → `mailflow run` → `mailflow.routes`.

The acceptance path for reply routing: every reply of the given JSONL files (fields
`subject`, `body`, `headers`, `intent`, optional `ts` and `return_date` — the day the
person is back — and optional `recipient`) is produced onto `email.replies` of a fresh
embedded broker, the job runs over them (`mailflow run --no-tail`), and its routes and
suppressions are compared with the labels:

- intent accuracy (and per intent precision / recall),
- out-of-office detection (recall of `out_of_office`), and the exact return date (`until`)
  among the detected ones that have a labelled date,
- precision of the automatic permanent suppressions from unsubscribe requests and
  complaints (a wrong one loses a customer), and how many of them were suppressed.

    python bench/reply_routing.py tests/data/replies_fresh_final.jsonl [more.jsonl ...]
    python bench/reply_routing.py --feedback 30 FILES   # the helpdesk relabels each reply
                                                        # 30 minutes later: learning curve

With `--feedback MINUTES`, every reply's true intent comes back on `email.reply_feedback`
(`relabelled`) that long after it, in event time, so the text model learns from the
helpdesk while the stream runs; accuracy is then also given per block of replies in time
order (prequential: each reply was routed before its own label came).

Prints one JSON line. Nothing here is asserted: it measures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailflow.broker import EmbeddedBroker, ensure_topics  # noqa: E402
from schemas.hashing import DEV_HASH_KEY, RecipientHasher  # noqa: E402

#: Replies without their own time are stamped from here, one a minute.
START = datetime(2026, 11, 18, 9, 0, tzinfo=UTC).timestamp()
PERMANENT = {"reply_unsubscribe": "unsubscribe_request", "reply_complaint": "complaint"}


def load(paths: list[str]) -> list[dict]:
    rows = []
    for path in paths:
        for line in Path(path).read_bytes().splitlines():
            if line.strip():
                rows.append(orjson.loads(line))
    return rows


def reply_ts(i: int, row: dict) -> float:
    ts = row.get("ts")
    if isinstance(ts, str):
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    return float(ts) if ts else START + 60 * i


def to_event(i: int, row: dict) -> dict:
    ts = row.get("ts") or START + 60 * i
    return {"type": "reply", "ts": ts, "sender": "news.acme.example",
            "recipient": row.get("recipient") or f"person{i}@example.com",
            "message_id": f"m-{i}@acme.example", "reply_id": f"bench-{i}@mail.example",
            "subject": row.get("subject", ""), "body": row.get("body", ""),
            "headers": row.get("headers") or {}}


def read_topic(bootstrap: str, topic: str, partitions: int = 3) -> list[dict]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-replies",
                         "enable.partition.eof": True, "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, -2) for p in range(partitions)])
    out, eof = [], set()
    while len(eof) < partitions:
        for msg in consumer.consume(1000, 1.0):
            if msg.error():
                eof.add(msg.partition())
            elif msg.value():
                out.append(orjson.loads(msg.value()))
    consumer.close()
    return out


def feedback_event(i: int, row: dict, minutes: float) -> dict:
    return {"reply_id": f"bench-{i}@mail.example", "ts": reply_ts(i, row) + 60 * minutes,
            "action": "relabelled", "intent": row["intent"]}


def blocks(rows: list[dict], routes: dict[str, dict], size: int) -> list[float]:
    """Accuracy per block of `size` replies in time order."""
    order = sorted(range(len(rows)), key=lambda i: reply_ts(i, rows[i]))
    hits = [(routes.get(f"bench-{i}@mail.example") or {}).get("intent") == rows[i]["intent"]
            for i in order]
    return [round(sum(hits[k:k + size]) / len(hits[k:k + size]), 3)
            for k in range(0, len(hits), size)]


def measure(rows: list[dict], routes: dict[str, dict], suppressions: list[dict]) -> dict:
    hasher = RecipientHasher(DEV_HASH_KEY)
    hits, by_truth, by_said = 0, Counter(), Counter()
    right = Counter()
    ooo, ooo_found, dated, dated_right = 0, 0, 0, 0
    confusion: Counter[tuple[str, str]] = Counter()
    for i, row in enumerate(rows):
        route = routes.get(f"bench-{i}@mail.example")
        said = route["intent"] if route else "(missing)"
        truth = row["intent"]
        by_truth[truth] += 1
        by_said[said] += 1
        if said == truth:
            hits += 1
            right[truth] += 1
        else:
            confusion[(truth, said)] += 1
        if truth == "out_of_office":
            ooo += 1
            if said == "out_of_office":
                ooo_found += 1
                if row.get("return_date"):
                    dated += 1
                    dated_right += route.get("until") == row["return_date"]
    truth_of = {hasher.recipient(to_event(i, r)["recipient"]): r["intent"]
                for i, r in enumerate(rows)}
    permanent = [s for s in suppressions if s.get("reason") in PERMANENT]
    correct = sum(truth_of.get(s["recipient_hash"]) == PERMANENT[s["reason"]]
                  for s in permanent)
    asked = sum(1 for r in rows if r["intent"] in ("unsubscribe_request", "complaint"))
    return {
        "replies": len(rows), "routed": len(routes),
        "intent_accuracy": round(hits / len(rows), 4) if rows else None,
        "per_intent": {k: {"n": n, "recall": round(right[k] / n, 3),
                           "precision": round(right[k] / by_said[k], 3) if by_said[k] else None}
                       for k, n in sorted(by_truth.items())},
        "out_of_office_detection": round(ooo_found / ooo, 4) if ooo else None,
        "return_date_exact": round(dated_right / dated, 4) if dated else None,
        "auto_suppressions": len(permanent),
        "auto_suppression_precision": round(correct / len(permanent), 4) if permanent else None,
        "unsubscribe_or_complaint_suppressed": f"{correct}/{asked}",
        "top_confusions": [f"{t} -> {s}: {n}" for (t, s), n in confusion.most_common(8)],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", help="labelled replies (JSONL)")
    parser.add_argument("--feedback", type=float, metavar="MINUTES",
                        help="relabel every reply with its true intent this long after it")
    parser.add_argument("--block", type=int, default=100, help="replies per block (100)")
    args = parser.parse_args()
    rows = load(args.files)
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as data:
        ensure_topics(broker.bootstrap, partitions=3)
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        for i, row in enumerate(rows):
            producer.produce("email.replies", orjson.dumps(to_event(i, row)))
            if args.feedback is not None:
                producer.produce("email.reply_feedback",
                                 orjson.dumps(feedback_event(i, row, args.feedback)))
        producer.flush(60)
        env = {**os.environ, "MAILFLOW_KAFKA_BROKERS": broker.bootstrap,
               "MAILFLOW_DATA_DIR": data, "MAILFLOW_ADMIN_PORT": "0"}
        subprocess.run([sys.executable, "-m", "mailflow", "run", "--dev", "--no-tail",
                        "--no-recovery"], cwd=ROOT, env=env, check=True,
                       capture_output=True)
        routes = {r["reply_id"]: r for r in read_topic(broker.bootstrap, "mailflow.routes")}
        suppressions = read_topic(broker.bootstrap, "mailflow.suppressions")
    result = measure(rows, routes, suppressions)
    result["feedback_minutes"] = args.feedback
    result["blocks"] = blocks(rows, routes, args.block)
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
