-- Re-embedding runs as a backfill over 64 hash buckets of the case id: the partitions b00..b63
-- of the resolution_index asset. Postgres computes the bucket on every insert and update (a
-- stored generated column, so no writer can forget it); Python computes the same number in
-- dispute_platform.domain.reembed.bucket_of: the first byte of md5(case id, UTF-8) modulo 64.
-- A test checks that both agree.
ALTER TABLE historical_resolutions
    ADD COLUMN bucket SMALLINT GENERATED ALWAYS AS (get_byte(decode(md5(case_id), 'hex'), 0) % 64) STORED;

-- One bucket is read in case-id pages (keyset pagination).
CREATE INDEX idx_historical_resolutions_bucket ON historical_resolutions (bucket, case_id);
