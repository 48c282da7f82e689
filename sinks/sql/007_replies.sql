-- 007: reply routing (issue 17). One row per reply, the helpdesk's feedback, and the
-- views analysts ask for. No body, subject or address is ever stored: the verdict, the
-- route and the explanation's rule names and terms (scrubbed of digits) only.

-- A hold (reason out_of_office) ends on `until`, the first day mail may go again.
ALTER TABLE mailflow.suppressions
    ADD COLUMN IF NOT EXISTS until Nullable(Date) COMMENT 'end of a temporary hold; NULL: for good';

CREATE TABLE IF NOT EXISTS mailflow.replies
(
    reply_id         String COMMENT 'the reply''s own Message-ID (or its event id)',
    ts               DateTime64(3, 'UTC'),
    message_id       String COMMENT 'the message answered; empty when the reply names none',
    sender           LowCardinality(String),
    domain           LowCardinality(String),
    recipient_hash   String,
    campaign_id      LowCardinality(String),
    flow_id          LowCardinality(String),
    intent           LowCardinality(String),
    confidence       Float32,
    queue            LowCardinality(String) COMMENT 'empty: handled without a person',
    priority         UInt8 COMMENT '0-100, higher first',
    auto             Bool COMMENT 'machine-generated (out-of-office, ticket receipt, ...)',
    sentiment        Float32 COMMENT '-1 angry .. 1 glad',
    urgent           Bool,
    language         LowCardinality(String),
    return_date      Nullable(Date) COMMENT 'out-of-office: first day mail may go again',
    actions          Array(LowCardinality(String)) COMMENT 'hold, suppress, review, route',
    explanation      String COMMENT 'rules and headers that fired, terms that weighed most',
    model            LowCardinality(String) COMMENT 'rules, blend or model',
    rule_intent      LowCardinality(String) COMMENT 'what the rules alone said',
    new_contact_hash String COMMENT 'recipient hash of an address the reply offers instead'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (reply_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS mailflow.reply_feedback
(
    reply_id      String,
    ts            DateTime64(3, 'UTC'),
    action        LowCardinality(String) COMMENT 'reassigned, relabelled, first_response, resolved',
    queue         LowCardinality(String) COMMENT 'the queue after this action',
    intent        LowCardinality(String) COMMENT 'the intent after this action',
    routed_queue  LowCardinality(String) COMMENT 'where mailflow routed it',
    routed_intent LowCardinality(String),
    reply_ts      DateTime64(3, 'UTC') COMMENT 'when the reply came (epoch 0: unknown)',
    latency_s     Float64 COMMENT 'seconds from the reply to this action'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (reply_id, ts, action)
SETTINGS non_replicated_deduplication_window = 10000;

-- Per queue x day (of the reply): volume, automation, routing accuracy, response times,
-- suppressions made from replies. A reply handled without a person has queue ''.
CREATE VIEW IF NOT EXISTS mailflow.reply_queue_daily AS
SELECT
    r.queue AS queue,
    toDate(r.ts) AS day,
    count() AS replies,
    countIf(r.queue = '') / count() AS automation_rate,
    countIf(has(r.actions, 'suppress')) AS suppressions,
    countIf(has(r.actions, 'hold')) AS holds,
    countIf(f.reassigned > 0) AS reassigned,
    1 - countIf(f.reassigned > 0) / count() AS routing_accuracy,
    countIf(f.relabelled > 0) AS relabelled,
    quantileIf(0.5)(f.first_response_s, f.first_response_s >= 0) AS first_response_p50_s,
    quantileIf(0.9)(f.first_response_s, f.first_response_s >= 0) AS first_response_p90_s,
    quantileIf(0.5)(f.resolved_s, f.resolved_s >= 0) AS resolution_p50_s,
    quantileIf(0.9)(f.resolved_s, f.resolved_s >= 0) AS resolution_p90_s
FROM (SELECT * FROM mailflow.replies FINAL) AS r
LEFT JOIN
(
    SELECT reply_id,
           countIf(action = 'reassigned') AS reassigned,
           countIf(action = 'relabelled') AS relabelled,
           minIf(latency_s, action = 'first_response' AND toUnixTimestamp64Milli(reply_ts) > 0)
               AS first_response_raw,
           minIf(latency_s, action = 'resolved' AND toUnixTimestamp64Milli(reply_ts) > 0)
               AS resolved_raw,
           if(countIf(action = 'first_response') > 0, first_response_raw, -1) AS first_response_s,
           if(countIf(action = 'resolved') > 0, resolved_raw, -1) AS resolved_s
    FROM mailflow.reply_feedback FINAL
    GROUP BY reply_id
) AS f USING (reply_id)
GROUP BY queue, day;

-- Per campaign x flow x day: reply rate and positive-reply rate over delivered mail
-- (a positive reply is a genuine engagement; machine replies are not replies of people).
CREATE VIEW IF NOT EXISTS mailflow.reply_rates AS
SELECT
    campaign_id, flow_id, day,
    sum(d) AS delivered,
    sum(h) AS human_replies,
    sum(p) AS positive_replies,
    sum(a) AS auto_replies,
    if(sum(d) > 0, sum(h) / sum(d), 0) AS reply_rate,
    if(sum(d) > 0, sum(p) / sum(d), 0) AS positive_reply_rate
FROM
(
    SELECT campaign_id, flow_id, toDate(minute) AS day, toUInt64(sum(delivered)) AS d,
           toUInt64(0) AS h, toUInt64(0) AS p, toUInt64(0) AS a
    FROM mailflow.metrics_1m FINAL
    GROUP BY campaign_id, flow_id, day
    UNION ALL
    SELECT campaign_id, flow_id, toDate(ts) AS day, toUInt64(0) AS d,
           toUInt64(countIf(NOT auto)) AS h,
           toUInt64(countIf(intent = 'interested')) AS p, toUInt64(countIf(auto)) AS a
    FROM mailflow.replies FINAL
    GROUP BY campaign_id, flow_id, day
)
GROUP BY campaign_id, flow_id, day;
