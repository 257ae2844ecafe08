-- EMQX's topic counts and aggregation space snapshots; the PostgreSQL store keeps the same
-- tables. Partition keys and retention follow 0001: integer YYYYMMDDHH for the 48-hour tables
-- and YYYYMMDD for the 400-day table, dropped whole by the node because 18.16 has no TTL.
-- Statements must stay safe to run twice: a migration that fails halfway is run again whole.

-- EMQX's topic counts measure the same messages as topic_counter_minutes, so they live apart
-- and nothing adds the two. Like the tap's minute rows, they keep one row per batch, source,
-- topic and minute: a retried batch writes the same key again, ReplacingMergeTree collapses it,
-- and readers use FINAL.
CREATE TABLE IF NOT EXISTS emqx_topic_counter_minutes (
    minute DateTime('UTC'),
    source String,
    topic String,
    batch_id String,
    domain String,
    domain_kind Enum8('local' = 1, 'foreign' = 2),
    unit_node_id String,
    unit_id String,
    repo_id String,
    messages_in UInt64,
    messages_out UInt64,
    messages_dropped UInt64
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(minute) * 100 + toHour(minute)
ORDER BY (minute, source, topic, batch_id);

-- Ledger of written EMQX batches, apart from counter_batches so that a tap batch id and an
-- EMQX batch id never collide; partitioned by the batch's newest minute.
CREATE TABLE IF NOT EXISTS emqx_counter_batches (
    batch_id String,
    source String,
    newest_minute DateTime('UTC'),
    rows UInt64,
    written_at DateTime('UTC')
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(newest_minute) * 100 + toHour(newest_minute)
ORDER BY batch_id;

-- One snapshot per minute as parallel arrays, because 18.16 has no Map or JSON type. The
-- highest version of a minute replaces the whole snapshot, so readers use FINAL. An empty
-- string in unit_node_user_ids or user_ids means an owner that the catalogue does not know.
CREATE TABLE IF NOT EXISTS aggregation_space_minutes (
    minute DateTime('UTC'),
    unit_node_ids Array(String),
    unit_node_user_ids Array(String),
    unit_node_tables Array(Enum8('n_last_entry' = 1, 'window_entry' = 2, 'aggregation_entry' = 3)),
    unit_node_rows Array(UInt64),
    unit_node_bytes Array(UInt64),
    user_ids Array(String),
    user_rows Array(UInt64),
    user_bytes Array(UInt64),
    missing_tables Array(Enum8('n_last_entry' = 1, 'window_entry' = 2, 'aggregation_entry' = 3)),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(minute)
ORDER BY minute;
