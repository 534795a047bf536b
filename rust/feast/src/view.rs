//! One ferroserve view as Feast stores it in Redis: the Redis key of each request row (its
//! entity key serialized, then the project) and the hash fields to read (one per feature, then
//! `_ts:{view}`), derived once from the view's `ViewLayout` when the model loads. The names
//! default to the declaration's (view, feature and key part names as Feast's view, feature and
//! join key names); `FeastNames` maps them where Feast's differ.

use std::sync::Arc;

use ferroserve_features::{FeatureSlot, KeyKind, KeyValue, ViewLayout};

use crate::FeastError;
use crate::field::{feature_field, timestamp_field};
use crate::key::{EntityValueType, JoinKey, RedisKeyEncoder, SerializationVersion};
use crate::resp::HmgetFields;

/// Feast's names for a view where they differ from the declaration's; `None` keeps the
/// declaration's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeastNames {
    /// Feast's feature view name (with its `_v{N}` suffix when Feast's online versioning is on).
    pub view: Option<String>,
    /// Feast's feature names, one per feature of the view, in the view's order.
    pub features: Option<Vec<String>>,
    /// Feast's join keys, one per key part of the view, in the view's order. By default each
    /// key part's name, INT64 parts as `Int64` and BYTES parts as `String` entities.
    pub join_keys: Option<Vec<JoinKey>>,
}

/// Where a Feast project lives in Redis: the project's name and the entity-key serialization
/// version of its feature_store.yaml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeastProject {
    /// The project name (feature_store.yaml `project`), the suffix of every Redis key.
    pub name: String,
    /// `entity_key_serialization_version` (3 unless the repository says otherwise).
    pub serialization_version: SerializationVersion,
}

impl FeastProject {
    /// Project `name` with Feast's default serialization (version 3).
    pub fn new(name: impl Into<String>) -> Self {
        FeastProject {
            name: name.into(),
            serialization_version: SerializationVersion::V3,
        }
    }
}

/// A view's Redis layout; see the module doc.
#[derive(Debug, Clone)]
pub struct FeastView {
    /// The view's layout (row bytes, features' datatypes and offsets, defaults, policy).
    layout: ViewLayout,
    /// Feast's view name.
    name: String,
    /// The hash fields read per key: one per feature in row order, then `_ts:{view}`.
    fields: Vec<Vec<u8>>,
    /// The same fields encoded as HMGET arguments, once. Shared with the store's round-trip
    /// task, which tells views apart by its address.
    hmget: Arc<HmgetFields>,
    /// Builds each row's Redis key.
    keys: RedisKeyEncoder,
}

impl FeastView {
    /// The Redis layout of `layout`'s view in `project`, with Feast's `names` where they
    /// differ from the declaration's.
    pub fn new(
        layout: &ViewLayout,
        project: &FeastProject,
        names: &FeastNames,
    ) -> Result<FeastView, FeastError> {
        let view = layout.view();
        let name = names.view.clone().unwrap_or_else(|| view.to_owned());
        let features: Vec<&str> = match &names.features {
            Some(features) if features.len() != layout.features().len() => {
                return Err(FeastError::FeatureNames {
                    view: view.to_owned(),
                    expected: layout.features().len(),
                    actual: features.len(),
                });
            }
            Some(features) => features.iter().map(String::as_str).collect(),
            None => layout
                .features()
                .iter()
                .map(|slot| slot.name.as_str())
                .collect(),
        };
        let join_keys = match &names.join_keys {
            Some(keys) if keys.len() != layout.key().len() => {
                return Err(FeastError::JoinKeys {
                    view: view.to_owned(),
                    expected: layout.key().len(),
                    actual: keys.len(),
                });
            }
            Some(keys) => keys.clone(),
            None => layout
                .key()
                .iter()
                .map(|part| JoinKey {
                    name: part.name.clone(),
                    value_type: match part.kind {
                        KeyKind::Int64 => EntityValueType::Int64,
                        KeyKind::Bytes => EntityValueType::String,
                    },
                })
                .collect(),
        };
        for (index, (part, join_key)) in layout.key().iter().zip(&join_keys).enumerate() {
            if join_keys[..index]
                .iter()
                .any(|other| other.name == join_key.name)
            {
                return Err(FeastError::DuplicateJoinKey {
                    view: view.to_owned(),
                    name: join_key.name.clone(),
                });
            }
            let fits = matches!(
                (part.kind, join_key.value_type),
                (
                    KeyKind::Int64,
                    EntityValueType::Int64 | EntityValueType::Int32
                ) | (
                    KeyKind::Bytes,
                    EntityValueType::String | EntityValueType::Bytes
                )
            );
            if !fits {
                return Err(FeastError::JoinKeyType {
                    view: view.to_owned(),
                    part: part.name.clone(),
                    kind: match part.kind {
                        KeyKind::Int64 => "INT64",
                        KeyKind::Bytes => "BYTES",
                    },
                    join_key: join_key.name.clone(),
                    value_type: join_key.value_type.name(),
                });
            }
        }
        let mut fields: Vec<Vec<u8>> = features
            .iter()
            .map(|feature| feature_field(&name, feature).to_vec())
            .collect();
        fields.push(timestamp_field(&name));
        Ok(FeastView {
            layout: layout.clone(),
            keys: RedisKeyEncoder::new(&join_keys, &project.name, project.serialization_version),
            name,
            hmget: Arc::new(HmgetFields::new(&fields)),
            fields,
        })
    }

    /// The view's layout.
    pub fn layout(&self) -> &ViewLayout {
        &self.layout
    }

    /// Feast's name of the view.
    pub fn feast_name(&self) -> &str {
        &self.name
    }

    /// The hash fields read per key: one per feature in row order, then `_ts:{view}`.
    pub fn fields(&self) -> &[Vec<u8>] {
        &self.fields
    }

    /// The hash fields as HMGET arguments, shared (cheap to clone), for the store's round-trip
    /// task.
    pub(crate) fn shared_fields(&self) -> Arc<HmgetFields> {
        Arc::clone(&self.hmget)
    }

    /// The features, in row order.
    pub(crate) fn features(&self) -> &[FeatureSlot] {
        self.layout.features()
    }

    /// Writes the Redis key of the row whose key parts are `parts` (the view's key order) into
    /// `out`; false if a part cannot be held by its join key's Feast type (an INT64 beyond an
    /// Int32 entity's range, BYTES that are not UTF-8 for a String entity): such a key cannot be
    /// in the store.
    pub fn redis_key(&self, parts: &[KeyValue<'_>], out: &mut Vec<u8>) -> bool {
        self.keys.encode(parts, out)
    }

    /// The Redis keys of `rows` request rows whose key parts are the raw request buffers
    /// `columns` (one per key part in the view's order: INT64 as 8 little-endian bytes per row,
    /// BYTES as 4-byte little-endian length-prefixed elements). `None` for a row whose key
    /// cannot be in the store (see `redis_key`).
    pub fn redis_keys(
        &self,
        columns: &[&[u8]],
        rows: usize,
    ) -> Result<Vec<Option<Vec<u8>>>, FeastError> {
        let parts = self.layout.key();
        if columns.len() != parts.len() {
            return Err(FeastError::KeyColumns {
                view: self.layout.view().to_owned(),
                expected: parts.len(),
                actual: columns.len(),
            });
        }
        let mut cursors = vec![0usize; columns.len()];
        let mut values: Vec<KeyValue<'_>> = Vec::with_capacity(parts.len());
        let mut keys = Vec::with_capacity(rows);
        for _ in 0..rows {
            values.clear();
            for ((part, column), cursor) in parts.iter().zip(columns).zip(&mut cursors) {
                let value =
                    next_part(part.kind, column, cursor).ok_or_else(|| FeastError::KeyBuffer {
                        view: self.layout.view().to_owned(),
                        part: part.name.clone(),
                        rows,
                    })?;
                values.push(value);
            }
            let mut key = Vec::new();
            keys.push(self.keys.encode(&values, &mut key).then_some(key));
        }
        for ((part, column), cursor) in parts.iter().zip(columns).zip(&cursors) {
            if *cursor != column.len() {
                return Err(FeastError::KeyBuffer {
                    view: self.layout.view().to_owned(),
                    part: part.name.clone(),
                    rows,
                });
            }
        }
        Ok(keys)
    }
}

/// The key part at `*cursor` of a raw request buffer, moving the cursor past it.
fn next_part<'a>(kind: KeyKind, column: &'a [u8], cursor: &mut usize) -> Option<KeyValue<'a>> {
    let start = *cursor;
    match kind {
        KeyKind::Int64 => {
            let bytes = column.get(start..start.checked_add(8)?)?;
            *cursor = start + 8;
            Some(KeyValue::Int64(i64::from_le_bytes(bytes.try_into().ok()?)))
        }
        KeyKind::Bytes => {
            let prefix = column.get(start..start.checked_add(4)?)?;
            let length = u32::from_le_bytes(prefix.try_into().ok()?) as usize;
            let end = (start + 4).checked_add(length)?;
            let bytes = column.get(start + 4..end)?;
            *cursor = end;
            Some(KeyValue::Bytes(bytes))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use ferroserve_features::{Feature, FeatureValue, FeatureView, MissingPolicy, RequestInput};
    use ferroserve_tensor::{DataType, encode_bytes};

    use super::*;
    use crate::key::{EntityValue, serialize_entity_key};

    /// View `user` keyed by `user_id` (INT64) and `card` (BYTES), features `a`, `b`.
    fn layout() -> ViewLayout {
        let view = FeatureView {
            name: "user".into(),
            key: vec!["user_id".into(), "card".into()],
            features: ["a", "b"]
                .iter()
                .map(|name| Feature {
                    name: (*name).into(),
                    datatype: DataType::Fp32,
                    default: FeatureValue::Fp32(0.0),
                })
                .collect(),
            max_age: Some(Duration::from_secs(60)),
            on_missing: MissingPolicy::UseDefault,
        };
        let inputs = [
            RequestInput {
                name: "user_id".into(),
                datatype: DataType::Int64,
                columns: 1,
            },
            RequestInput {
                name: "card".into(),
                datatype: DataType::Bytes,
                columns: 1,
            },
        ];
        ViewLayout::new(&view, &inputs).unwrap()
    }

    #[test]
    fn request_buffers_become_feast_redis_keys() {
        let view = FeastView::new(
            &layout(),
            &FeastProject::new("proj"),
            &FeastNames::default(),
        )
        .unwrap();
        assert_eq!(view.fields().len(), 3);
        assert_eq!(view.fields()[0], feature_field("user", "a"));
        assert_eq!(view.fields()[2], b"_ts:user");
        let ids: Vec<u8> = [42i64, 7].iter().flat_map(|id| id.to_le_bytes()).collect();
        let cards = encode_bytes([b"c-9".as_slice(), b"\xff".as_slice()]).unwrap();
        let keys = view.redis_keys(&[&ids, &cards], 2).unwrap();
        let mut expected = serialize_entity_key(
            &[
                ("user_id", EntityValue::Int64(42)),
                ("card", EntityValue::String("c-9")),
            ],
            SerializationVersion::V3,
        );
        expected.extend_from_slice(b"proj");
        assert_eq!(keys[0].as_deref(), Some(expected.as_slice()));
        // Not UTF-8: cannot be a Feast String entity value.
        assert_eq!(keys[1], None);
        // A buffer with more or fewer keys than rows is a caller bug, said once.
        assert!(matches!(
            view.redis_keys(&[&ids, &cards], 1),
            Err(FeastError::KeyBuffer { .. })
        ));
        assert!(matches!(
            view.redis_keys(&[&ids[..12], &cards], 2),
            Err(FeastError::KeyBuffer { .. })
        ));
        assert!(matches!(
            view.redis_keys(&[&ids], 2),
            Err(FeastError::KeyColumns { .. })
        ));
    }

    #[test]
    fn feast_names_must_fit_the_view() {
        let layout = layout();
        let project = FeastProject::new("p");
        let join_key = |name: &str, value_type| JoinKey {
            name: name.into(),
            value_type,
        };
        let cases = [
            FeastNames {
                features: Some(vec!["a".into()]),
                ..FeastNames::default()
            },
            FeastNames {
                join_keys: Some(vec![join_key("user_id", EntityValueType::Int64)]),
                ..FeastNames::default()
            },
            FeastNames {
                join_keys: Some(vec![
                    join_key("k", EntityValueType::Int64),
                    join_key("k", EntityValueType::String),
                ]),
                ..FeastNames::default()
            },
            FeastNames {
                join_keys: Some(vec![
                    join_key("user_id", EntityValueType::String),
                    join_key("card", EntityValueType::String),
                ]),
                ..FeastNames::default()
            },
        ];
        let messages: Vec<String> = cases
            .iter()
            .map(|names| {
                FeastView::new(&layout, &project, names)
                    .unwrap_err()
                    .to_string()
            })
            .collect();
        assert!(
            messages[0].contains("2 features but 1 Feast feature names"),
            "{}",
            messages[0]
        );
        assert!(
            messages[1].contains("2 key parts but 1 Feast join keys"),
            "{}",
            messages[1]
        );
        assert!(
            messages[2].contains("join key 'k' twice"),
            "{}",
            messages[2]
        );
        assert!(
            messages[3].contains("'user_id' is INT64 in the request but its Feast join key 'user_id' is declared String"),
            "{}",
            messages[3]
        );
    }
}
