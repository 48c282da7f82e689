-- 006: convergence prediction (issue 16). Idempotent like the rest (ReplacingMergeTree).

-- Calibration beside ROC AUC and log loss: expected calibration error over tenths of
-- predicted probability (0 for rows written before this column existed).
ALTER TABLE mailflow.model_metrics
    ADD COLUMN IF NOT EXISTS ece Float64 AFTER positive_rate;

-- Per flow x recipient: the latest convergence propensity (FINAL, or argMax by as_of).
CREATE TABLE IF NOT EXISTS mailflow.flow_propensities
(
    flow_id          LowCardinality(String),
    recipient_hash   String,
    score            Float32 COMMENT 'P(reaching the flow goal within its window), as of as_of',
    as_of            DateTime64(3, 'UTC'),
    kind             LowCardinality(String) COMMENT 'what re-scored it: enter, click, quiet, goal, ...',
    cohort_day       Date COMMENT 'UTC day the recipient entered the flow',
    unsubscribe_risk Float32 COMMENT 'of the flow''s latest mail to them (per-message model)',
    advice           LowCardinality(String) COMMENT 'stop_mailing: low propensity, rising unsubscribe risk'
)
ENGINE = ReplacingMergeTree(as_of)
ORDER BY (flow_id, recipient_hash)
SETTINGS non_replicated_deduplication_window = 10000;

-- Per flow x entry cohort, hourly in event time: what the cohort will converge to.
CREATE TABLE IF NOT EXISTS mailflow.convergence_forecast
(
    flow_id            LowCardinality(String),
    cohort_day         Date COMMENT 'UTC day of entering',
    as_of              DateTime('UTC'),
    entered            UInt32,
    converged          UInt32 COMMENT 'reached the goal so far',
    expected_converged Float64 COMMENT 'converged + sum of the open recipients'' propensities',
    forecast_score     Float64 COMMENT 'expected_converged / entered',
    lo80               Float64,
    hi80               Float64,
    lo95               Float64,
    hi95               Float64
)
ENGINE = ReplacingMergeTree
ORDER BY (flow_id, cohort_day, as_of)
SETTINGS non_replicated_deduplication_window = 10000;

-- Per flow x cohort once its window closed: what really happened.
CREATE TABLE IF NOT EXISTS mailflow.cohort_outcomes
(
    flow_id     LowCardinality(String),
    cohort_day  Date,
    entered     UInt32,
    converged   UInt32,
    score       Float64 COMMENT 'converged / entered',
    window_days UInt16,
    closed_at   DateTime('UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (flow_id, cohort_day)
SETTINGS non_replicated_deduplication_window = 10000;

-- A cohort forecast (at 80% confidence) below its flow's trailing convergence.
CREATE TABLE IF NOT EXISTS mailflow.flow_alerts
(
    flow_id        LowCardinality(String),
    cohort_day     Date,
    as_of          DateTime('UTC'),
    forecast_score Float64,
    hi80           Float64 COMMENT 'upper end of the 80% prediction interval',
    trailing_score Float64 COMMENT 'mean realised score of the flow''s last closed cohorts',
    margin         Float64,
    detail         String
)
ENGINE = ReplacingMergeTree
ORDER BY (flow_id, cohort_day, as_of)
SETTINGS non_replicated_deduplication_window = 10000;

-- Honesty of the forecasts: the forecast made 1, 2, 3 days after a cohort started against
-- its realised score, with the flow's trailing score as the baseline forecast.
CREATE TABLE IF NOT EXISTS mailflow.forecast_quality
(
    flow_id            LowCardinality(String),
    cohort_day         Date,
    horizon_days       UInt8,
    forecast_score     Float64,
    realised           Float64,
    abs_error          Float64,
    rel_error          Nullable(Float64) COMMENT '(forecast - realised) / realised',
    in80               Bool,
    in95               Bool,
    entered            UInt32,
    baseline_score     Nullable(Float64) COMMENT 'trailing score of the flow at that moment',
    baseline_abs_error Nullable(Float64),
    baseline_rel_error Nullable(Float64)
)
ENGINE = ReplacingMergeTree
ORDER BY (flow_id, cohort_day, horizon_days)
SETTINGS non_replicated_deduplication_window = 10000;
