-- Past resolved disputes: the source of truth behind the Chroma collection dispute_resolutions.
-- Chroma is an index that can be rebuilt from here at any time (re-embedding backfills).
CREATE TABLE historical_resolutions (
    case_id        VARCHAR(128) PRIMARY KEY,
    dispute_type   VARCHAR(64) NOT NULL,
    source         VARCHAR(32) NOT NULL,      -- seed | cfpb | platform
    record         JSONB NOT NULL,
    embedded_model VARCHAR(128),              -- identity (name@weights) of the vector in Chroma
    embedded_at    TIMESTAMPTZ,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_historical_resolutions_source ON historical_resolutions (source);
CREATE INDEX idx_historical_resolutions_model ON historical_resolutions (embedded_model);
