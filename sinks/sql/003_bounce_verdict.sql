-- 003: where each bounce class came from, and how sure it is.
-- bounce_source: pattern (known wording), status (RFC 3463 code), kind (the
-- provider's own class), model (online text classifier), none.
ALTER TABLE mailflow.events
    ADD COLUMN IF NOT EXISTS bounce_source LowCardinality(String) AFTER bounce_class,
    ADD COLUMN IF NOT EXISTS bounce_confidence Float32 AFTER bounce_source;
