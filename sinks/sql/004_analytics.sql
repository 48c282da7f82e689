-- 004: engagement analytics. Every table is written idempotently: replaying the
-- same input rewrites the same keys (ReplacingMergeTree; query with FINAL for
-- exact numbers right after a replay).

-- Response latency and machine/bot reasons on the fact rows.
ALTER TABLE mailflow.events
    ADD COLUMN IF NOT EXISTS machine_reason LowCardinality(String) AFTER is_human,
    ADD COLUMN IF NOT EXISTS latency_s Float64 AFTER machine_reason,
    ADD COLUMN IF NOT EXISTS attributed_flows Array(String) AFTER latency_s;

-- Per minute x sender x provider x campaign x flow. `version` grows as late
-- events update a minute; the latest version wins.
CREATE TABLE IF NOT EXISTS mailflow.metrics_1m
(
    minute        DateTime('UTC'),
    sender        LowCardinality(String),
    domain        LowCardinality(String),
    campaign_id   LowCardinality(String),
    flow_id       LowCardinality(String),
    sent          UInt32,
    delivered     UInt32,
    deferred      UInt32,
    bounces       UInt32,
    dropped       UInt32,
    opens         UInt32 COMMENT 'all opens (raw)',
    clicks        UInt32 COMMENT 'all clicks (raw)',
    replies       UInt32,
    unsubscribes  UInt32,
    complaints    UInt32,
    conversions   UInt32,
    human_opens   UInt32,
    machine_opens UInt32 COMMENT 'Apple MPP, image-proxy prefetch, too fast',
    human_clicks  UInt32,
    bot_clicks    UInt32 COMMENT 'security scanners, bursts, too fast',
    hard_bounces  UInt32,
    soft_bounces  UInt32,
    blocks        UInt32 COMMENT 'block bounces and deferrals',
    rate_limited  UInt32 COMMENT 'rate-limit bounces and deferrals',
    revenue       Float64,
    latency_n     UInt32 COMMENT 'first human interactions in this minute',
    latency_p50_s Float64,
    latency_p90_s Float64,
    version       UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, sender, domain, campaign_id, flow_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Rolling convergence per flow and window, one row per minute of event time.
CREATE TABLE IF NOT EXISTS mailflow.convergence
(
    flow_id              LowCardinality(String),
    window               LowCardinality(String) COMMENT '1h, 24h or 7d, ending at as_of (exclusive)',
    as_of                DateTime('UTC'),
    entered              UInt32 COMMENT 'distinct recipients delivered a message of the flow',
    converged            UInt32 COMMENT 'of those, with a conversion attributed to the flow',
    convergence_score    Float64 COMMENT 'converged / entered',
    engagement_depth     Float64 COMMENT 'human interactions per entered recipient',
    engagement_depth_raw Float64 COMMENT 'including machine opens and bot clicks',
    latency_p50_s        Float64 COMMENT 'delivery to first human interaction',
    latency_p90_s        Float64,
    negative_rate        Float64 COMMENT '(hard bounces + complaints + unsubscribes) / deliveries',
    deliveries           UInt32,
    human_interactions   UInt32,
    conversions          UInt32,
    negatives            UInt32,
    latency_n            UInt32
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(as_of)
ORDER BY (flow_id, window, as_of)
SETTINGS non_replicated_deduplication_window = 10000;

-- Conversions credited to the messages that touched the recipient, per model.
CREATE TABLE IF NOT EXISTS mailflow.attribution
(
    conversion_id  String COMMENT 'event_id of the conversion',
    ts             DateTime64(3, 'UTC'),
    sender         LowCardinality(String),
    recipient_hash String,
    goal           LowCardinality(String),
    value          Float64,
    currency       LowCardinality(String),
    model          LowCardinality(String) COMMENT 'first_touch, last_touch, linear, time_decay',
    message_id     String,
    campaign_id    LowCardinality(String),
    flow_id        LowCardinality(String),
    touch_ts       DateTime64(3, 'UTC'),
    credit         Float64 COMMENT 'share of the conversion; sums to 1 per conversion and model',
    credited_value Float64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (conversion_id, model, message_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Distinct recipients per flow and hour, mergeable over any range of hours:
-- SELECT flow_id, uniqExactMerge(entered) FROM mailflow.flow_recipients_1h
-- WHERE hour >= now() - INTERVAL 3 DAY GROUP BY flow_id.
-- Distinct-count states are unchanged by duplicate inserts, so replays are safe.
CREATE TABLE IF NOT EXISTS mailflow.flow_recipients_1h
(
    hour      DateTime('UTC'),
    flow_id   LowCardinality(String),
    sender    LowCardinality(String),
    entered   AggregateFunction(uniqExact, String),
    engaged   AggregateFunction(uniqExact, String),
    converted AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree
ORDER BY (flow_id, sender, hour);

CREATE MATERIALIZED VIEW IF NOT EXISTS mailflow.flow_recipients_1h_mv
TO mailflow.flow_recipients_1h AS
SELECT
    toStartOfHour(ts) AS hour,
    arrayJoin(if(type = 'conversion', attributed_flows, [flow_id])) AS flow_id,
    sender,
    uniqExactStateIf(recipient_hash, type = 'delivered') AS entered,
    uniqExactStateIf(recipient_hash, is_human AND type IN ('open', 'click', 'reply')) AS engaged,
    uniqExactStateIf(recipient_hash, type = 'conversion') AS converted
FROM mailflow.events
WHERE flow_id != '' OR notEmpty(attributed_flows)
GROUP BY hour, flow_id, sender;
