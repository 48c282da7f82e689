"""Generated traffic → `mailflow run` → convergence, metrics_1m and attribution in ClickHouse.

The job's `convergence` rows must equal the same definitions computed by SQL
directly over `events`, and a replay of the same input must change nothing.
"""

from __future__ import annotations

import pytest

from tests.conftest import mailflow_cmd, query_store

pytestmark = pytest.mark.integration

START = "1795000000"

# The README definitions, in SQL over `events` alone (attribution recomputed by a join).
CONSISTENCY_SQL = """
WITH
attributed AS (
    SELECT DISTINCT c.event_id AS event_id, c.ts AS ts, c.recipient_hash AS recipient_hash,
           d.flow_id AS flow_id
    FROM (SELECT event_id, ts, sender, recipient_hash FROM mailflow.events FINAL
          WHERE type = 'conversion') AS c
    INNER JOIN (SELECT ts, sender, recipient_hash, flow_id FROM mailflow.events FINAL
                WHERE type = 'delivered' AND flow_id != '') AS d
    ON c.sender = d.sender AND c.recipient_hash = d.recipient_hash
    WHERE d.ts <= c.ts AND d.ts >= c.ts - INTERVAL 7 DAY
),
facts AS (
    SELECT flow_id, ts, recipient_hash, type, is_human, bounce_class, latency_s
    FROM mailflow.events FINAL WHERE flow_id != '' AND type != 'conversion'
    UNION ALL
    SELECT flow_id, ts, recipient_hash, 'attributed_conversion', true, '', 0 FROM attributed
    UNION ALL
    SELECT flow_id, ts, recipient_hash, 'conversion_latency', true, '', latency_s
    FROM mailflow.events FINAL WHERE type = 'conversion' AND flow_id != '' AND latency_s > 0
),
windows AS (
    SELECT flow_id, window, as_of, toDateTime64(as_of, 3, 'UTC') AS hi,
           hi - toIntervalSecond(multiIf(window = '1h', 3600, window = '24h', 86400, 604800))
               AS lo
    FROM mailflow.convergence FINAL
)
SELECT w.flow_id, w.window, toUnixTimestamp(w.as_of) AS as_of,
    length(groupUniqArrayIf(f.recipient_hash,
           f.type = 'delivered' AND f.ts >= w.lo AND f.ts < w.hi)) AS entered,
    length(arrayIntersect(
        groupUniqArrayIf(f.recipient_hash, f.type = 'delivered' AND f.ts >= w.lo AND f.ts < w.hi),
        groupUniqArrayIf(f.recipient_hash,
                         f.type = 'attributed_conversion' AND f.ts >= w.lo AND f.ts < w.hi)))
        AS converged,
    countIf(f.ts >= w.lo AND f.ts < w.hi AND ((f.type IN ('open', 'click', 'reply') AND f.is_human)
            OR f.type = 'attributed_conversion')) AS human_interactions,
    countIf(f.type = 'delivered' AND f.ts >= w.lo AND f.ts < w.hi) AS deliveries,
    countIf(f.ts >= w.lo AND f.ts < w.hi AND (f.type IN ('complaint', 'unsubscribe')
            OR (f.type = 'bounce' AND f.bounce_class = 'hard'))) AS negatives,
    countIf(f.latency_s > 0 AND f.ts >= w.lo AND f.ts < w.hi) AS latency_n,
    ifNotFinite(quantileExactIf(0.5)(f.latency_s, f.latency_s > 0 AND f.ts >= w.lo
                                     AND f.ts < w.hi), 0) AS p50,
    ifNotFinite(quantileExactIf(0.9)(f.latency_s, f.latency_s > 0 AND f.ts >= w.lo
                                     AND f.ts < w.hi), 0) AS p90
FROM windows AS w INNER JOIN facts AS f ON f.flow_id = w.flow_id
GROUP BY w.flow_id, w.window, w.as_of
ORDER BY w.flow_id, w.window, as_of
"""

JOB_SQL = """
SELECT flow_id, window, toUnixTimestamp(as_of) AS as_of, entered, converged,
       human_interactions, deliveries, negatives, latency_n, latency_p50_s, latency_p90_s
FROM mailflow.convergence FINAL ORDER BY flow_id, window, as_of
"""

SNAPSHOT_SQL = {
    "convergence": "SELECT * FROM mailflow.convergence FINAL ORDER BY flow_id, window, as_of",
    "metrics_1m": "SELECT * EXCEPT version FROM mailflow.metrics_1m FINAL "
                  "ORDER BY minute, sender, domain, campaign_id, flow_id",
    "attribution": "SELECT * FROM mailflow.attribution FINAL "
                   "ORDER BY conversion_id, model, message_id",
    "events": "SELECT count(), uniqExact(event_id), countIf(is_human), round(sum(latency_s), 3) "
              "FROM mailflow.events FINAL",
    "throttle": "SELECT * EXCEPT decided_at FROM mailflow.throttle_decisions FINAL "
                "ORDER BY sender, domain, seq",
    "rollup": "SELECT flow_id, uniqExactMerge(entered), uniqExactMerge(converted) "
              "FROM mailflow.flow_recipients_1h GROUP BY flow_id ORDER BY flow_id",
}


def snapshot(data_dir) -> dict[str, list]:
    return {name: query_store(data_dir, sql) for name, sql in SNAPSHOT_SQL.items()}


def test_convergence_equals_sql_over_events_and_replay_changes_nothing(broker, tmp_path):
    data_dir = tmp_path / "data"
    env = {"MAILFLOW_KAFKA_BROKERS": broker.bootstrap, "MAILFLOW_DATA_DIR": str(data_dir),
           "MAILFLOW_ADMIN_PORT": "0"}
    mailflow_cmd("generate", "--seed", "9", "--start", START, "--rate", "25",
                 "--seconds", "5400", "--fast", env=env)
    mailflow_cmd("run", "--dev", "--no-tail", env=env)

    job = query_store(data_dir, JOB_SQL)
    sql = query_store(data_dir, CONSISTENCY_SQL)
    assert len(job) > 500  # 90 minutes × flows × 3 windows
    assert {r[1] for r in job} == {"1h", "24h", "7d"}
    assert sum(r[4] for r in job) > 0, "no flow converged: the test would prove little"
    assert sum(r[8] for r in job) > 0, "no latencies measured"
    mismatches = [(j, s) for j, s in zip(job, sql, strict=True) if tuple(j) != tuple(s)]
    assert not mismatches, mismatches[:3]

    # metrics_1m agrees with events too (per minute, human and raw opens).
    per_minute = query_store(data_dir, """
        SELECT (SELECT sum(opens), sum(human_opens), sum(machine_opens), sum(conversions),
                       round(sum(revenue), 2) FROM mailflow.metrics_1m FINAL),
               (SELECT countIf(type = 'open'), countIf(type = 'open' AND is_human),
                       countIf(type = 'open' AND NOT is_human), countIf(type = 'conversion'),
                       round(sumIf(value, type = 'conversion'), 2) FROM mailflow.events FINAL)
    """)[0]
    assert list(per_minute[0].values()) == list(per_minute[1].values())
    # attribution: per conversion and model the credits sum to 1
    sums = query_store(data_dir, "SELECT model, min(s), max(s), count() FROM (SELECT "
                                 "conversion_id, model, sum(credit) AS s FROM "
                                 "mailflow.attribution FINAL GROUP BY conversion_id, model) "
                                 "GROUP BY model ORDER BY model")
    assert [r[0] for r in sums] == ["first_touch", "last_touch", "linear", "time_decay"]
    assert all(abs(r[1] - 1) < 1e-6 and abs(r[2] - 1) < 1e-6 for r in sums)

    before = snapshot(data_dir)
    # the same input again, from scratch (no recovery state): a replay
    mailflow_cmd("run", "--dev", "--no-tail", "--no-recovery", env=env)
    after = snapshot(data_dir)
    for name in SNAPSHOT_SQL:
        assert after[name] == before[name], name
