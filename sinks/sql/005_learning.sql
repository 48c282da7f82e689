-- 005: online learning outputs. Idempotent like the rest (ReplacingMergeTree).

-- One row per delivered message: the scores made before any outcome was known.
CREATE TABLE IF NOT EXISTS mailflow.scores
(
    message_id       String,
    ts               DateTime64(3, 'UTC') COMMENT 'delivery time',
    sender           LowCardinality(String),
    domain           LowCardinality(String),
    model            LowCardinality(String) COMMENT 'engagement:shared or engagement:sender',
    score            Float32 COMMENT 'P(genuine engagement: human click, reply or conversion)',
    conversion       Float32 COMMENT 'P(conversion credited to this message)',
    unsubscribe_risk Float32 COMMENT 'P(unsubscribe or complaint)'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (sender, ts, message_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Prequential quality per model and minute (predict at delivery, learn at the label).
CREATE TABLE IF NOT EXISTS mailflow.model_metrics
(
    model         LowCardinality(String),
    minute        DateTime('UTC'),
    n             UInt64 COMMENT 'labels scored since start',
    n_window      UInt32 COMMENT 'labels in the evaluation window (latest 20,000)',
    roc_auc       Float64,
    log_loss      Float64,
    positive_rate Float64
)
ENGINE = ReplacingMergeTree
ORDER BY (model, minute)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS mailflow.model_events
(
    ts     DateTime64(3, 'UTC'),
    model  LowCardinality(String),
    event  LowCardinality(String) COMMENT 'drift or reset',
    detail String
)
ENGINE = ReplacingMergeTree
ORDER BY (model, ts, event);

CREATE TABLE IF NOT EXISTS mailflow.send_times
(
    recipient_hash    String,
    best_hour_of_week UInt8 COMMENT '0-167, UTC, Monday 00:00 = 0',
    confidence        Float32 COMMENT 'weight of the recipient''s own history (0: prior only)',
    n                 UInt32 COMMENT 'genuine engagements behind it',
    as_of             DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(as_of)
ORDER BY recipient_hash;

CREATE TABLE IF NOT EXISTS mailflow.recipient_profiles
(
    recipient_hash   String,
    persona          LowCardinality(String) COMMENT 'loyal, browsing, selective, dormant',
    engagement_score Float32,
    conversion_score Float32,
    as_of            DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(as_of)
ORDER BY recipient_hash;

CREATE TABLE IF NOT EXISTS mailflow.variant_allocations
(
    campaign_id LowCardinality(String),
    as_of       DateTime64(3, 'UTC'),
    variant     LowCardinality(String),
    share       Float64,
    pulls       UInt32,
    successes   UInt32
)
ENGINE = ReplacingMergeTree
ORDER BY (campaign_id, as_of, variant);
