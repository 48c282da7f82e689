-- 008: control-group lift (issue 19). Idempotent like the rest (ReplacingMergeTree).
-- Counts: recipients whose outcome window closed (treated_n, control_n); every recipient
-- assigned so far (*_assigned, what the sample-ratio test uses). Outcomes are conversions
-- within the window after assignment, never opens. av_*: the always-valid interval, the
-- one `significant` and any automatic decision use. An estimate that does not exist (an
-- empty arm, no control conversions for a relative lift) is NULL.

CREATE TABLE IF NOT EXISTS mailflow.lift
(
    flow_id                 LowCardinality(String) COMMENT 'empty: all marketing against the global control group',
    window_days             UInt16,
    as_of                   DateTime64(3, 'UTC') COMMENT 'event time: a UTC day start, or the end of input',
    goal                    LowCardinality(String) COMMENT 'the conversion goal counted (empty: any)',
    treated_n               UInt64,
    treated_conv            UInt64,
    control_n               UInt64,
    control_conv            UInt64,
    treated_rate            Nullable(Float64),
    control_rate            Nullable(Float64),
    abs_lift                Nullable(Float64) COMMENT 'treated_rate - control_rate',
    abs_lo95                Nullable(Float64) COMMENT 'Newcombe hybrid score interval (fixed horizon)',
    abs_hi95                Nullable(Float64),
    av_lo95                 Nullable(Float64) COMMENT 'always-valid (anytime) 95% interval',
    av_hi95                 Nullable(Float64),
    rel_lift                Nullable(Float64) COMMENT 'abs_lift / control_rate (nan when control_rate is 0)',
    incremental_conversions Nullable(Float64) COMMENT 'abs_lift * treated_n',
    treated_value           Float64 COMMENT 'sum of conversion value in the arm',
    control_value           Float64,
    treated_value_per       Nullable(Float64) COMMENT 'value per recipient',
    control_value_per       Nullable(Float64),
    value_lift              Nullable(Float64),
    value_lo95              Nullable(Float64) COMMENT 'Welch interval on value per recipient',
    value_hi95              Nullable(Float64),
    incremental_value       Nullable(Float64) COMMENT 'value_lift * treated_n',
    srm_p                   Float64 COMMENT 'sample-ratio test (chi-square); 1 when the split is unknown',
    srm_alarm               UInt8 COMMENT 'srm_p < 0.001: the split is broken, every lift is meaningless',
    expected_control_share  Float64 COMMENT 'configured; 0 = unknown, not tested',
    treated_assigned        UInt64,
    control_assigned        UInt64,
    significant             UInt8 COMMENT 'the always-valid interval excludes 0',
    crossovers              UInt64 COMMENT 'assigned to one arm, then seen in the other (kept in the first)',
    partial                 UInt8 COMMENT '1: the input ended before any window closed; open windows counted',
    treated_unsub_rate      Nullable(Float64),
    treated_complaint_rate  Nullable(Float64),
    control_unsub_rate      Nullable(Float64),
    control_complaint_rate  Nullable(Float64),
    treated_click_rate      Nullable(Float64) COMMENT 'human clicks (secondary, never an outcome)',
    first_assigned          DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (flow_id, window_days, as_of)
SETTINGS non_replicated_deduplication_window = 10000;

-- The same per campaign (scope 'campaign') and per policy experiment (scope 'experiment',
-- the arm recorded on the events as `experiment` and `arm`).
CREATE TABLE IF NOT EXISTS mailflow.lift_segments
(
    scope                   LowCardinality(String),
    segment                 String COMMENT 'campaign id or experiment name',
    window_days             UInt16,
    as_of                   DateTime64(3, 'UTC'),
    goal                    LowCardinality(String),
    treated_n               UInt64,
    treated_conv            UInt64,
    control_n               UInt64,
    control_conv            UInt64,
    treated_rate            Nullable(Float64),
    control_rate            Nullable(Float64),
    abs_lift                Nullable(Float64),
    abs_lo95                Nullable(Float64),
    abs_hi95                Nullable(Float64),
    av_lo95                 Nullable(Float64),
    av_hi95                 Nullable(Float64),
    rel_lift                Nullable(Float64),
    incremental_conversions Nullable(Float64),
    treated_value           Float64,
    control_value           Float64,
    treated_value_per       Nullable(Float64),
    control_value_per       Nullable(Float64),
    value_lift              Nullable(Float64),
    value_lo95              Nullable(Float64),
    value_hi95              Nullable(Float64),
    incremental_value       Nullable(Float64),
    srm_p                   Float64,
    srm_alarm               UInt8,
    expected_control_share  Float64,
    treated_assigned        UInt64,
    control_assigned        UInt64,
    significant             UInt8,
    crossovers              UInt64,
    partial                 UInt8,
    treated_unsub_rate      Nullable(Float64),
    treated_complaint_rate  Nullable(Float64),
    control_unsub_rate      Nullable(Float64),
    control_complaint_rate  Nullable(Float64),
    treated_click_rate      Nullable(Float64),
    first_assigned          DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (scope, segment, window_days, as_of)
SETTINGS non_replicated_deduplication_window = 10000;
