//! Feast's entity keys as Redis keys: `serialize_entity_key(entity_key, version)` followed by
//! the project's name in UTF-8 (`_redis_key` in Feast's `infra/online_stores/helpers.py`).
//!
//! The serialization (`infra/key_encoding_utils.py`), join keys sorted by name (Python's string
//! order, which is UTF-8 byte order), all integers little-endian:
//! - version 3 (Feast's default since 0.38): `u32` key count; per join key `u32` 2 (STRING),
//!   `u32` name length, the name; per value in the same order `u32` value type, `u32` length,
//!   the value's bytes.
//! - version 2: the same without the key count and without the name lengths.
//!
//! Value bytes: INT64 (type 4) 8 bytes, INT32 (3) 4 bytes, STRING (2) the UTF-8 text, BYTES (1)
//! the bytes. Versions 0 and 1 (INT64 as 4 bytes) were removed from Feast and are not read.

use ferroserve_features::KeyValue;

use crate::FeastError;

/// Feast's `ValueType` numbers of the entity value types (`protos/feast/types/Value.proto`).
const VALUE_TYPE_BYTES: u32 = 1;
const VALUE_TYPE_STRING: u32 = 2;
const VALUE_TYPE_INT32: u32 = 3;
const VALUE_TYPE_INT64: u32 = 4;

/// Feast's `entity_key_serialization_version` (feature_store.yaml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SerializationVersion {
    /// Without the key count and name lengths (deprecated in Feast, still readable).
    V2,
    /// Feast's default since 0.38.
    #[default]
    V3,
}

impl SerializationVersion {
    /// The version numbered `version` in feature_store.yaml.
    pub fn from_number(version: u32) -> Result<Self, FeastError> {
        match version {
            2 => Ok(SerializationVersion::V2),
            3 => Ok(SerializationVersion::V3),
            other => Err(FeastError::SerializationVersion(other)),
        }
    }
}

/// The Feast value type of an entity's join key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityValueType {
    /// `Int64` (INT64 request keys).
    Int64,
    /// `Int32` (INT64 request keys; a value out of range cannot exist in the store).
    Int32,
    /// `String` (BYTES request keys; bytes that are not UTF-8 cannot exist in the store).
    String,
    /// `Bytes` (BYTES request keys).
    Bytes,
}

impl EntityValueType {
    /// Its name in Feast.
    pub const fn name(self) -> &'static str {
        match self {
            EntityValueType::Int64 => "Int64",
            EntityValueType::Int32 => "Int32",
            EntityValueType::String => "String",
            EntityValueType::Bytes => "Bytes",
        }
    }
}

/// One join key of a Feast entity key: its name and value type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JoinKey {
    /// The join key's name in Feast (the entity's `join_keys`).
    pub name: String,
    /// Its value type.
    pub value_type: EntityValueType,
}

/// One value of an entity key, as Feast's `Value` holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityValue<'a> {
    /// `int64_val`.
    Int64(i64),
    /// `int32_val`.
    Int32(i32),
    /// `string_val`.
    String(&'a str),
    /// `bytes_val`.
    Bytes(&'a [u8]),
}

impl EntityValue<'_> {
    /// Appends `u32` type, `u32` length and the bytes.
    fn write(&self, out: &mut Vec<u8>) {
        let (value_type, bytes): (u32, &[u8]) = match self {
            EntityValue::Int64(value) => {
                return write_fixed(out, VALUE_TYPE_INT64, &value.to_le_bytes());
            }
            EntityValue::Int32(value) => {
                return write_fixed(out, VALUE_TYPE_INT32, &value.to_le_bytes());
            }
            EntityValue::String(text) => (VALUE_TYPE_STRING, text.as_bytes()),
            EntityValue::Bytes(bytes) => (VALUE_TYPE_BYTES, bytes),
        };
        write_fixed(out, value_type, bytes);
    }
}

/// Appends `u32` type, `u32` length and `bytes`. Values of 4 GiB or more cannot be keys (Redis
/// caps keys at 512 MB); their length is cut to 32 bits.
fn write_fixed(out: &mut Vec<u8>, value_type: u32, bytes: &[u8]) {
    out.extend_from_slice(&value_type.to_le_bytes());
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Feast's `serialize_entity_key` of the entity key `join_keys` -> `values` (any order: they
/// are sorted by join key name here, as Feast does).
pub fn serialize_entity_key(
    keys: &[(&str, EntityValue<'_>)],
    version: SerializationVersion,
) -> Vec<u8> {
    let mut sorted: Vec<&(&str, EntityValue<'_>)> = keys.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = key_names(sorted.iter().map(|(name, _)| *name), version);
    for (_, value) in sorted {
        value.write(&mut out);
    }
    out
}

/// The serialized key's head: the count (v3) and the join key names, in the order given.
fn key_names<'a>(
    names: impl ExactSizeIterator<Item = &'a str>,
    version: SerializationVersion,
) -> Vec<u8> {
    let mut out = Vec::new();
    if version == SerializationVersion::V3 {
        out.extend_from_slice(&u32::try_from(names.len()).unwrap_or(u32::MAX).to_le_bytes());
    }
    for name in names {
        out.extend_from_slice(&VALUE_TYPE_STRING.to_le_bytes());
        if version == SerializationVersion::V3 {
            out.extend_from_slice(&u32::try_from(name.len()).unwrap_or(u32::MAX).to_le_bytes());
        }
        out.extend_from_slice(name.as_bytes());
    }
    out
}

/// Builds the Redis keys of one view: its join keys' head computed once, the values of a
/// request row (in the view's key order) appended in join-key-name order, then the project.
#[derive(Debug, Clone)]
pub(crate) struct RedisKeyEncoder {
    /// Count and sorted names: the same for every key of the view.
    head: Vec<u8>,
    /// Per sorted join key: the view's key part it takes its value from, and its Feast type.
    order: Vec<(usize, EntityValueType)>,
    /// The project's name in UTF-8.
    project: Vec<u8>,
}

impl RedisKeyEncoder {
    /// The encoder of `join_keys` (one per key part, in the view's order; names distinct).
    pub(crate) fn new(join_keys: &[JoinKey], project: &str, version: SerializationVersion) -> Self {
        let mut order: Vec<usize> = (0..join_keys.len()).collect();
        order.sort_by(|&a, &b| join_keys[a].name.cmp(&join_keys[b].name));
        let head = key_names(
            order.iter().map(|&part| join_keys[part].name.as_str()),
            version,
        );
        RedisKeyEncoder {
            head,
            order: order
                .into_iter()
                .map(|part| (part, join_keys[part].value_type))
                .collect(),
            project: project.as_bytes().to_vec(),
        }
    }

    /// Writes the Redis key of the row whose key parts are `parts` (the view's order) into
    /// `out` (cleared first). False when a value cannot be represented in its join key's type
    /// (such a key cannot be in the store).
    pub(crate) fn encode(&self, parts: &[KeyValue<'_>], out: &mut Vec<u8>) -> bool {
        out.clear();
        out.extend_from_slice(&self.head);
        for &(part, value_type) in &self.order {
            let Some(value) = parts
                .get(part)
                .and_then(|part| entity_value(*part, value_type))
            else {
                return false;
            };
            value.write(out);
        }
        out.extend_from_slice(&self.project);
        true
    }
}

/// A request key part as the join key's Feast value, if it can be one.
fn entity_value(part: KeyValue<'_>, value_type: EntityValueType) -> Option<EntityValue<'_>> {
    match (part, value_type) {
        (KeyValue::Int64(value), EntityValueType::Int64) => Some(EntityValue::Int64(value)),
        (KeyValue::Int64(value), EntityValueType::Int32) => {
            i32::try_from(value).ok().map(EntityValue::Int32)
        }
        (KeyValue::Bytes(bytes), EntityValueType::String) => {
            std::str::from_utf8(bytes).ok().map(EntityValue::String)
        }
        (KeyValue::Bytes(bytes), EntityValueType::Bytes) => Some(EntityValue::Bytes(bytes)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed by Feast 0.67.0's `serialize_entity_key` (rust/feast/tools/feast_vectors.py).
    #[allow(clippy::type_complexity)]
    const FEAST_KEYS: [(SerializationVersion, &[(&str, EntityValue<'static>)], &[u8]); 12] = [
        (SerializationVersion::V3, &[("driver_id", EntityValue::Int64(1001))], b"\x01\x00\x00\x00\x02\x00\x00\x00\x09\x00\x00\x00\x64\x72\x69\x76\x65\x72\x5f\x69\x64\x04\x00\x00\x00\x08\x00\x00\x00\xe9\x03\x00\x00\x00\x00\x00\x00"),
        (SerializationVersion::V3, &[("driver_id", EntityValue::Int64(-7))], b"\x01\x00\x00\x00\x02\x00\x00\x00\x09\x00\x00\x00\x64\x72\x69\x76\x65\x72\x5f\x69\x64\x04\x00\x00\x00\x08\x00\x00\x00\xf9\xff\xff\xff\xff\xff\xff\xff"),
        (SerializationVersion::V3, &[("user", EntityValue::String("alice"))], b"\x01\x00\x00\x00\x02\x00\x00\x00\x04\x00\x00\x00\x75\x73\x65\x72\x02\x00\x00\x00\x05\x00\x00\x00\x61\x6c\x69\x63\x65"),
        (SerializationVersion::V3, &[("blob", EntityValue::Bytes(b"\x00\xff"))], b"\x01\x00\x00\x00\x02\x00\x00\x00\x04\x00\x00\x00\x62\x6c\x6f\x62\x01\x00\x00\x00\x02\x00\x00\x00\x00\xff"),
        (SerializationVersion::V3, &[("small", EntityValue::Int32(-3))], b"\x01\x00\x00\x00\x02\x00\x00\x00\x05\x00\x00\x00\x73\x6d\x61\x6c\x6c\x03\x00\x00\x00\x04\x00\x00\x00\xfd\xff\xff\xff"),
        (SerializationVersion::V3, &[("user_id", EntityValue::Int64(42)), ("card", EntityValue::String("c-9"))], b"\x02\x00\x00\x00\x02\x00\x00\x00\x04\x00\x00\x00\x63\x61\x72\x64\x02\x00\x00\x00\x07\x00\x00\x00\x75\x73\x65\x72\x5f\x69\x64\x02\x00\x00\x00\x03\x00\x00\x00\x63\x2d\x39\x04\x00\x00\x00\x08\x00\x00\x00\x2a\x00\x00\x00\x00\x00\x00\x00"),
        (SerializationVersion::V2, &[("driver_id", EntityValue::Int64(1001))], b"\x02\x00\x00\x00\x64\x72\x69\x76\x65\x72\x5f\x69\x64\x04\x00\x00\x00\x08\x00\x00\x00\xe9\x03\x00\x00\x00\x00\x00\x00"),
        (SerializationVersion::V2, &[("driver_id", EntityValue::Int64(-7))], b"\x02\x00\x00\x00\x64\x72\x69\x76\x65\x72\x5f\x69\x64\x04\x00\x00\x00\x08\x00\x00\x00\xf9\xff\xff\xff\xff\xff\xff\xff"),
        (SerializationVersion::V2, &[("user", EntityValue::String("alice"))], b"\x02\x00\x00\x00\x75\x73\x65\x72\x02\x00\x00\x00\x05\x00\x00\x00\x61\x6c\x69\x63\x65"),
        (SerializationVersion::V2, &[("blob", EntityValue::Bytes(b"\x00\xff"))], b"\x02\x00\x00\x00\x62\x6c\x6f\x62\x01\x00\x00\x00\x02\x00\x00\x00\x00\xff"),
        (SerializationVersion::V2, &[("small", EntityValue::Int32(-3))], b"\x02\x00\x00\x00\x73\x6d\x61\x6c\x6c\x03\x00\x00\x00\x04\x00\x00\x00\xfd\xff\xff\xff"),
        (SerializationVersion::V2, &[("user_id", EntityValue::Int64(42)), ("card", EntityValue::String("c-9"))], b"\x02\x00\x00\x00\x63\x61\x72\x64\x02\x00\x00\x00\x75\x73\x65\x72\x5f\x69\x64\x02\x00\x00\x00\x03\x00\x00\x00\x63\x2d\x39\x04\x00\x00\x00\x08\x00\x00\x00\x2a\x00\x00\x00\x00\x00\x00\x00"),
    ];

    #[test]
    fn entity_keys_match_feast() {
        for (version, keys, expected) in FEAST_KEYS {
            assert_eq!(
                serialize_entity_key(keys, version),
                expected,
                "{version:?} {keys:?}"
            );
        }
    }

    #[test]
    fn redis_keys_are_the_entity_key_then_the_project() {
        // View key order (user_id, card) differs from Feast's sorted order (card, user_id).
        let join_keys = [
            JoinKey {
                name: "user_id".into(),
                value_type: EntityValueType::Int64,
            },
            JoinKey {
                name: "card".into(),
                value_type: EntityValueType::String,
            },
        ];
        let encoder = RedisKeyEncoder::new(&join_keys, "proj", SerializationVersion::V3);
        let mut key = Vec::new();
        assert!(encoder.encode(&[KeyValue::Int64(42), KeyValue::Bytes(b"c-9")], &mut key));
        let mut expected = FEAST_KEYS[5].2.to_vec();
        expected.extend_from_slice(b"proj");
        assert_eq!(key, expected);
    }

    #[test]
    fn values_a_join_key_cannot_hold_are_not_keys() {
        let int32 = [JoinKey {
            name: "small".into(),
            value_type: EntityValueType::Int32,
        }];
        let encoder = RedisKeyEncoder::new(&int32, "p", SerializationVersion::V3);
        let mut key = Vec::new();
        assert!(encoder.encode(&[KeyValue::Int64(-3)], &mut key));
        assert_eq!(&key[..key.len() - 1], FEAST_KEYS[4].2);
        assert!(!encoder.encode(&[KeyValue::Int64(1 << 40)], &mut key));
        let string = [JoinKey {
            name: "user".into(),
            value_type: EntityValueType::String,
        }];
        let encoder = RedisKeyEncoder::new(&string, "p", SerializationVersion::V3);
        assert!(!encoder.encode(&[KeyValue::Bytes(b"\xff")], &mut key));
        assert!(!encoder.encode(&[KeyValue::Int64(1)], &mut key));
    }

    #[test]
    fn versions_by_number() {
        assert_eq!(
            SerializationVersion::from_number(3).ok(),
            Some(SerializationVersion::V3)
        );
        assert_eq!(
            SerializationVersion::from_number(2).ok(),
            Some(SerializationVersion::V2)
        );
        assert!(matches!(
            SerializationVersion::from_number(1),
            Err(FeastError::SerializationVersion(1))
        ));
    }
}
