"""Generated traffic → `mailflow run` → scores for every delivery, honest model quality."""

from __future__ import annotations

import orjson
import pytest

from tests.conftest import consume_all, mailflow_cmd, query_store

pytestmark = pytest.mark.integration


def test_every_delivery_is_scored_and_the_model_beats_the_provider_baseline(broker, tmp_path):
    data_dir = tmp_path / "data"
    env = {"MAILFLOW_KAFKA_BROKERS": broker.bootstrap, "MAILFLOW_DATA_DIR": str(data_dir),
           "MAILFLOW_ADMIN_PORT": "0", "MAILFLOW_LABEL_WINDOW_S": "1800"}
    # three hours of mail: labels resolve after 30 minutes, so the models have time to learn
    mailflow_cmd("generate", "--seed", "4", "--start", "1795000000", "--rate", "15",
                 "--seconds", "10800", "--fast", env=env)
    mailflow_cmd("run", "--dev", "--no-tail", env=env)

    delivered = {r[0] for r in query_store(
        data_dir, "SELECT message_id FROM mailflow.events FINAL WHERE type = 'delivered'")}
    scores = [orjson.loads(m.value()) for m in consume_all(broker.bootstrap, "mailflow.scores")]
    assert len(delivered) > 10_000
    assert {s["message_id"] for s in scores} == delivered
    assert len(scores) == len(delivered)  # one score per delivered message
    for s in scores[:100]:
        assert {"message_id", "sender", "domain", "model", "score", "event_ts"} <= s.keys()
        assert 0.0 <= s["score"] <= 1.0
    stored = query_store(data_dir, "SELECT count(), uniqExact(message_id) FROM mailflow.scores "
                                   "FINAL")[0]
    assert stored == (len(delivered), len(delivered))

    last = dict(query_store(data_dir, """
        SELECT model, argMax(roc_auc, minute) FROM mailflow.model_metrics FINAL
        GROUP BY model"""))
    assert last["engagement"] > last["engagement_baseline_provider"], last
    assert last["engagement"] > last["engagement_baseline_global"], last
    assert {"conversion", "unsubscribe", "bounce_risk"} <= last.keys()
    n = query_store(data_dir, "SELECT max(n) FROM mailflow.model_metrics FINAL "
                              "WHERE model = 'engagement'")[0][0]
    assert n > 5_000  # labels resolved, positive and by expiry

    send_times = [orjson.loads(m.value()) for m in consume_all(broker.bootstrap,
                                                                "mailflow.send_times")]
    assert send_times and all(0 <= s["best_hour_of_week"] <= 167 for s in send_times)
    variants = [orjson.loads(m.value()) for m in consume_all(broker.bootstrap,
                                                              "mailflow.variants")]
    assert variants and all(abs(sum(v["allocation"].values()) - 1) < 1e-6 for v in variants)
    personas = dict(query_store(data_dir, "SELECT persona, count() FROM "
                                          "mailflow.recipient_profiles FINAL GROUP BY persona"))
    assert len(personas) >= 2, personas
