//! The crate's one error enum: configuration that cannot describe a Feast view or a Redis
//! store (raised once, when a model loads), request buffers that do not fit the view (a caller
//! bug), and failed writes. Reads never fail on the store's account: a store that is down or
//! slow gives unavailable rows and a counter (see `RedisStore::fetch`). Each message says what
//! to change.

use thiserror::Error;

/// Why a Feast view or Redis store cannot be set up, a fetch was called wrongly, or a write
/// failed.
#[derive(Debug, Error)]
pub enum FeastError {
    /// The Redis URL does not parse.
    #[error("Redis URL '{url}' is not usable ({reason}): write redis://[:password@]host:port[/db]")]
    BadUrl {
        /// The URL as given, its password replaced by `***`.
        url: String,
        /// What the client library said.
        reason: String,
    },
    /// A store was created outside a tokio runtime.
    #[error(
        "the Redis store must be created inside a tokio runtime (its connection task runs there): \
         create it from the front end's runtime, e.g. inside `Runtime::block_on` or after `Handle::enter`"
    )]
    NoRuntime,
    /// An entity-key serialization version Feast no longer writes or this crate does not read.
    #[error(
        "entity_key_serialization_version {0} is not supported: use 3 (Feast's default since 0.38) or 2 \
         (feature_store.yaml `entity_key_serialization_version`)"
    )]
    SerializationVersion(u32),
    /// Feast names given for a view's features do not match its features one to one.
    #[error(
        "view '{view}' has {expected} features but {actual} Feast feature names were given: give one per feature, in the view's order"
    )]
    FeatureNames {
        /// The view.
        view: String,
        /// Its feature count.
        expected: usize,
        /// The names given.
        actual: usize,
    },
    /// Feast join keys given for a view do not match its key parts one to one.
    #[error(
        "view '{view}' has {expected} key parts but {actual} Feast join keys were given: give one per key part, in the view's order"
    )]
    JoinKeys {
        /// The view.
        view: String,
        /// Its key part count.
        expected: usize,
        /// The join keys given.
        actual: usize,
    },
    /// Two join keys of a view share a name (Feast's entity keys are keyed by name).
    #[error(
        "view '{view}' names Feast join key '{name}' twice: give each key part its own join key"
    )]
    DuplicateJoinKey {
        /// The view.
        view: String,
        /// The repeated join key.
        name: String,
    },
    /// A join key's Feast type cannot carry the key part's request datatype.
    #[error(
        "view '{view}': key part '{part}' is {kind} in the request but its Feast join key '{join_key}' is declared {value_type}: \
         INT64 keys map to Feast Int64 or Int32 entities, BYTES keys to String or Bytes entities"
    )]
    JoinKeyType {
        /// The view.
        view: String,
        /// The key part (request input).
        part: String,
        /// Its request datatype ("INT64" or "BYTES").
        kind: &'static str,
        /// The Feast join key.
        join_key: String,
        /// Its Feast value type.
        value_type: &'static str,
    },
    /// Fetch was given a number of key buffers other than the view's key parts.
    #[error(
        "view '{view}' has {expected} key parts but {actual} key buffers were passed. This is a bug."
    )]
    KeyColumns {
        /// The view.
        view: String,
        /// Its key part count.
        expected: usize,
        /// Buffers passed.
        actual: usize,
    },
    /// A key buffer does not hold exactly `rows` keys of its part's datatype.
    #[error("key buffer '{part}' of view '{view}' does not hold {rows} keys. This is a bug.")]
    KeyBuffer {
        /// The view.
        view: String,
        /// The key part.
        part: String,
        /// Rows expected.
        rows: usize,
    },
    /// A row to write is not a row of the view's layout.
    #[error(
        "row {row} written to view '{view}' has {actual} bytes of values and {keys} key parts; the view's rows have {expected} bytes and {key_parts} key parts"
    )]
    WriteRow {
        /// The view.
        view: String,
        /// The row's index in the call.
        row: usize,
        /// Bytes given.
        actual: usize,
        /// Bytes of the view's row.
        expected: usize,
        /// Key parts given.
        keys: usize,
        /// The view's key parts.
        key_parts: usize,
    },
    /// A key to write cannot be represented in the join key's Feast type (an INT64 out of an
    /// Int32 entity's range, BYTES that are not UTF-8 for a String entity).
    #[error(
        "row {row} written to view '{view}' has a key Feast cannot store in its join key types"
    )]
    WriteKey {
        /// The view.
        view: String,
        /// The row's index in the call.
        row: usize,
    },
    /// Redis refused or failed a write.
    #[error("writing to Redis failed: {0}")]
    Write(#[from] redis::RedisError),
}
