-- 001: enriched, pseudonymised fact rows: one per accepted input event.
-- No raw addresses: recipients are keyed hashes; addresses quoted in
-- diagnostics, URLs and extra attributes are replaced by `hash:…` at the edge.
-- ReplacingMergeTree on the sort key (which ends in event_id) folds replayed
-- duplicates; insert_deduplication_token drops a retried block at once.
CREATE TABLE IF NOT EXISTS mailflow.events
(
    event_id         String,
    ts               DateTime64(3, 'UTC'),
    type             LowCardinality(String),
    sender           LowCardinality(String),
    domain           LowCardinality(String) COMMENT 'mailbox-provider key, e.g. gmail.com',
    recipient_domain LowCardinality(String),
    recipient_hash   String COMMENT 'keyed BLAKE2b of the normalised address',
    message_id       String,
    campaign_id      LowCardinality(String),
    flow_id          LowCardinality(String),
    variant          LowCardinality(String),
    bounce_class     LowCardinality(String) COMMENT 'hard, soft, block, rate_limit or other, empty unless bounce or deferred',
    smtp_code        UInt16,
    smtp_status      LowCardinality(String),
    diagnostic       String,
    is_human         Bool COMMENT 'false for machine opens and bot clicks',
    user_agent       String,
    ip               String,
    url              String,
    goal             LowCardinality(String),
    value            Float64,
    currency         LowCardinality(String),
    attrs            String COMMENT 'unknown input fields, JSON',
    source_topic     LowCardinality(String),
    source_partition UInt32,
    source_offset    UInt64,
    ingested_at      DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (sender, domain, type, ts, event_id)
SETTINGS non_replicated_deduplication_window = 10000;
