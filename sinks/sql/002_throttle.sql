-- 002: every throttle decision ever made, with its evidence, and suppressions.
-- (sender, domain, seq) identifies a decision; a replay of the same input makes
-- the same decisions with the same seq, so the ReplacingMergeTree folds them.
CREATE TABLE IF NOT EXISTS mailflow.throttle_decisions
(
    sender      LowCardinality(String) COMMENT 'sending identity, or * for provider-wide',
    domain      LowCardinality(String) COMMENT 'mailbox-provider key, or * for sender-wide',
    seq         UInt64 COMMENT 'per (sender, domain), increasing',
    action      LowCardinality(String) COMMENT 'allow, slow or pause',
    rate_factor Float64 COMMENT 'share of the normal sending rate allowed',
    until       Nullable(DateTime64(3, 'UTC')) COMMENT 'end of a pause',
    reason      LowCardinality(String),
    evidence    String COMMENT 'JSON: window, counts, rate, lower bound, threshold, forecast',
    event_ts    DateTime64(3, 'UTC') COMMENT 'event time of the triggering event',
    decided_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (sender, domain, seq)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS mailflow.suppressions
(
    recipient_hash String,
    reason         LowCardinality(String) COMMENT 'hard_bounce, complaint or unsubscribe',
    ts             DateTime64(3, 'UTC'),
    sender         LowCardinality(String),
    domain         LowCardinality(String),
    event_id       String
)
ENGINE = ReplacingMergeTree
ORDER BY (recipient_hash, reason, event_id)
SETTINGS non_replicated_deduplication_window = 10000;
