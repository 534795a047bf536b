//! Writes rows in Feast's Redis layout, exactly as Feast's `online_write_batch` does (one
//! `HSET key _ts:{view} Timestamp field Value ...` per row, pipelined), so rows written here are
//! read by Feast and by `RedisStore::fetch` alike. For users without Feast (`ferroserve features
//! load --file`) and for tests. Rows of one call with the same entity key keep the newest by
//! event time (the later one on a tie), as an embedded snapshot does; Feast's read-before-write
//! check against what Redis already holds is not done: the rows written replace it.

use std::collections::HashMap;
use std::time::Duration;

use ferroserve_features::KeyValue;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::FeastError;
use crate::client::RedisStore;
use crate::value::{FeastValue, encode_timestamp};
use crate::view::FeastView;

/// Rows per pipeline: bounds the memory of one round trip on large loads.
const ROWS_PER_PIPELINE: usize = 1000;
/// Longest wait between the writer connection's reconnect attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// One row to write.
#[derive(Debug, Clone, Copy)]
pub struct FeatureRow<'a> {
    /// The entity key's parts, in the view's key order.
    pub key: &'a [KeyValue<'a>],
    /// The features' values in the view's row layout (`ViewLayout::row_bytes` bytes).
    pub values: &'a [u8],
    /// The row's event time, Unix microseconds (written as `_ts:{view}`).
    pub event_time_us: i64,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Rows written (one per distinct entity key).
    pub rows: usize,
    /// Rows not written because another row of the call had the same entity key and was newer
    /// (or as new and later).
    pub duplicate_keys: usize,
}

impl RedisStore {
    /// Writes `rows` of `view`, pipelined. Each feature is written as the `Value` kind Feast
    /// writes for its type (FP32 `float_val`, FP64 `double_val`, INT64 `int64_val`, INT32
    /// `int32_val`). Of rows with the same entity key only the newest is written (module doc).
    /// No timeout applies: a load waits for Redis (callers bound it). Rows are checked before
    /// anything is sent; a Redis error stops the write (earlier pipelines stay written).
    pub async fn write(
        &self,
        view: &FeastView,
        rows: &[FeatureRow<'_>],
    ) -> Result<Written, FeastError> {
        let layout = view.layout();
        let mut commands = Vec::with_capacity(rows.len());
        // Per Redis key, the index in `commands` of the row kept so far and its event time.
        let mut kept: HashMap<Vec<u8>, (usize, i64)> = HashMap::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            if row.values.len() != layout.row_bytes() || row.key.len() != layout.key().len() {
                return Err(FeastError::WriteRow {
                    view: layout.view().to_owned(),
                    row: index,
                    actual: row.values.len(),
                    expected: layout.row_bytes(),
                    keys: row.key.len(),
                    key_parts: layout.key().len(),
                });
            }
            let mut key = Vec::new();
            if !view.redis_key(row.key, &mut key) {
                return Err(FeastError::WriteKey {
                    view: layout.view().to_owned(),
                    row: index,
                });
            }
            let mut fields: Vec<(&[u8], Vec<u8>)> = Vec::with_capacity(view.fields().len());
            let (feature_fields, timestamp_field) = view.fields().split_at(layout.features().len());
            let mut timestamp = Vec::new();
            encode_timestamp(row.event_time_us, &mut timestamp);
            fields.push((timestamp_field[0].as_slice(), timestamp));
            for (slot, field) in layout.features().iter().zip(feature_fields) {
                let width = slot.datatype.element_size().unwrap_or(0);
                let mut value = Vec::new();
                if let Some(feature) = row
                    .values
                    .get(slot.offset..slot.offset + width)
                    .and_then(|bytes| FeastValue::from_le(slot.datatype, bytes))
                {
                    feature.encode(&mut value);
                }
                fields.push((field.as_slice(), value));
            }
            match kept.get_mut(&key) {
                Some((_, newest)) if row.event_time_us < *newest => {}
                Some(entry) => {
                    *entry = (commands.len(), row.event_time_us);
                }
                None => {
                    kept.insert(key.clone(), (commands.len(), row.event_time_us));
                }
            }
            commands.push((key, fields));
        }
        let mut written: Vec<bool> = vec![false; commands.len()];
        for (index, _) in kept.values() {
            written[*index] = true;
        }
        let commands: Vec<_> = commands
            .into_iter()
            .zip(&written)
            .filter_map(|(command, &keep)| keep.then_some(command))
            .collect();
        let mut connection = self.writer_connection()?;
        for chunk in commands.chunks(ROWS_PER_PIPELINE) {
            let mut pipe = redis::pipe();
            for (key, fields) in chunk {
                pipe.cmd("HSET").arg(key.as_slice());
                for (field, value) in fields {
                    pipe.arg(*field).arg(value.as_slice());
                }
                pipe.ignore();
            }
            // The writer's connection may have broken since the last write (nothing else
            // uses it): the manager reconnects on the failure, and the pipeline is sent again
            // once. HSETs of the same values are idempotent, so a resend is harmless.
            if let Err(error) = pipe.query_async::<()>(&mut connection).await {
                if !(error.is_io_error() || error.is_connection_dropped()) {
                    return Err(error.into());
                }
                pipe.query_async::<()>(&mut connection).await?;
            }
        }
        Ok(Written {
            rows: commands.len(),
            duplicate_keys: rows.len() - commands.len(),
        })
    }

    /// The writer's connection (the redis crate's `ConnectionManager`: writes are not on the
    /// serving path), created on the first write so a store that only reads opens one
    /// connection, the reader's. It connects when first used.
    fn writer_connection(&self) -> Result<ConnectionManager, FeastError> {
        if let Some(connection) = self.writer.get() {
            return Ok(connection.clone());
        }
        // One retry per (re)connection: a write to a Redis that is down fails in a fraction of
        // a second, saying so, rather than after the crate's default of 6 (several seconds).
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(MAX_RECONNECT_DELAY);
        let connection = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
        Ok(self.writer.get_or_init(|| connection).clone())
    }
}
