-- Tables of the ClickHouse time-series store; the PostgreSQL store keeps the same tables.
-- ClickHouse 18.16 has no TTL, so retention drops whole partitions from the node. Hour
-- partitions use the integer key YYYYMMDDHH and day partitions YYYYMMDD, whose `partition`
-- text in system.parts is the same number on old and new servers.
-- Statements must stay safe to run twice: a migration that fails halfway is run again whole.

-- Minute counters keep one row per tap batch, topic and minute. A retried batch writes the same
-- key again and ReplacingMergeTree collapses it, so readers use FINAL and count it once.
CREATE TABLE IF NOT EXISTS topic_counter_minutes (
    minute DateTime('UTC'),
    topic String,
    batch_id String,
    domain String,
    domain_kind Enum8('local' = 1, 'foreign' = 2),
    unit_node_id String,
    unit_id String,
    repo_id String,
    messages UInt64,
    bytes UInt64
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(minute) * 100 + toHour(minute)
ORDER BY (minute, topic, batch_id);

-- Hourly rollups; each rollup run writes a higher version and readers use FINAL.
CREATE TABLE IF NOT EXISTS topic_counter_hours (
    hour DateTime('UTC'),
    topic String,
    domain String,
    domain_kind Enum8('local' = 1, 'foreign' = 2),
    unit_node_id String,
    unit_id String,
    repo_id String,
    messages UInt64,
    bytes UInt64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(hour)
ORDER BY (hour, topic);

-- Ledger of written batches, partitioned by the batch's newest minute.
CREATE TABLE IF NOT EXISTS counter_batches (
    batch_id String,
    tap_id String,
    newest_minute DateTime('UTC'),
    rows UInt64,
    written_at DateTime('UTC')
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(newest_minute) * 100 + toHour(newest_minute)
ORDER BY batch_id;

CREATE TABLE IF NOT EXISTS timeseries_job_state (
    job String,
    through DateTime('UTC'),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY job;

-- One sample per minute as parallel arrays, because 18.16 has no Map type.
CREATE TABLE IF NOT EXISTS node_state_minutes (
    minute DateTime('UTC'),
    names Array(String),
    values Array(Float64),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(minute)
ORDER BY minute;

-- Error counts add up across rows; `version` orders writes so the latest sample wins.
CREATE TABLE IF NOT EXISTS error_count_minutes (
    minute DateTime('UTC'),
    source Enum8('node' = 1, 'backend' = 2),
    fingerprint String,
    level Enum8('error' = 1, 'critical' = 2),
    category String,
    sample String,
    count UInt64,
    version UInt64
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(minute) * 100 + toHour(minute)
ORDER BY (minute, source, fingerprint);

CREATE TABLE IF NOT EXISTS channel_count_minutes (
    minute DateTime('UTC'),
    channel Enum8('mqtt' = 1, 'graphql' = 2, 'rest' = 3, 'telegram' = 4, 'other' = 5),
    source String,
    count UInt64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(minute)
ORDER BY (minute, channel, source);
