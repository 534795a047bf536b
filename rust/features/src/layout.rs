//! How one view's rows are stored and served: its key parts, its features' datatypes and byte
//! offsets in a row (a row is the features' little-endian values back to back, exactly the
//! bytes its segment takes in a model input row, so serving a key is one copy), its default row
//! and its rules for missing and stale keys. Derived once from the declaration; a snapshot table
//! carries the layout it was built for, and the store installs only tables of the same layout.

use std::time::Duration;

use ferroserve_tensor::DataType;

use crate::DeclarationError;
use crate::declaration::{FEATURE_DATATYPES, FeatureView, MissingPolicy, RequestInput};
use crate::keys::{KeyKind, KeyPart};

/// One feature's place in a stored row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FeatureSlot {
    /// The feature's name.
    pub name: String,
    /// Its datatype.
    pub datatype: DataType,
    /// Its first byte in the row.
    pub offset: usize,
}

/// The storage and serving rules of one feature view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewLayout {
    /// The view's name.
    view: String,
    /// The entity key's parts, in order.
    key: Vec<KeyPart>,
    /// The features, in row order.
    features: Vec<FeatureSlot>,
    /// Bytes of one row: the sum of the features' sizes.
    row_bytes: usize,
    /// The row served for a missing or stale key.
    default_row: Vec<u8>,
    /// Rows older than this many microseconds are stale.
    max_age_us: Option<i64>,
    /// Missing and stale keys: defaults or rejection.
    on_missing: MissingPolicy,
}

impl ViewLayout {
    /// Derives the layout of `view`, whose key parts are among `request_inputs`.
    pub fn new(
        view: &FeatureView,
        request_inputs: &[RequestInput],
    ) -> Result<ViewLayout, DeclarationError> {
        if view.key.is_empty() {
            return Err(DeclarationError::EmptyKey {
                view: view.name.clone(),
            });
        }
        if view.features.is_empty() {
            return Err(DeclarationError::NoFeatures {
                view: view.name.clone(),
            });
        }
        let mut key = Vec::with_capacity(view.key.len());
        for name in &view.key {
            let Some(input) = request_inputs.iter().find(|input| &input.name == name) else {
                return Err(DeclarationError::UnknownRequestInput {
                    user: format!("the key of feature view '{}'", view.name),
                    name: name.clone(),
                    declared: names(request_inputs.iter().map(|input| input.name.as_str())),
                });
            };
            let kind = KeyKind::of(input.datatype)
                .filter(|_| input.columns == 1)
                .ok_or_else(|| DeclarationError::BadKeyInput {
                    view: view.name.clone(),
                    input: name.clone(),
                    datatype: input.datatype,
                    columns: input.columns,
                })?;
            if key.iter().any(|part: &KeyPart| &part.name == name) {
                return Err(DeclarationError::Duplicate {
                    what: "key part",
                    name: format!("{}.{name}", view.name),
                });
            }
            key.push(KeyPart {
                name: name.clone(),
                kind,
            });
        }
        let mut features = Vec::with_capacity(view.features.len());
        let mut default_row = Vec::new();
        for feature in &view.features {
            if !FEATURE_DATATYPES.contains(&feature.datatype) {
                return Err(DeclarationError::BadFeatureDatatype {
                    view: view.name.clone(),
                    feature: feature.name.clone(),
                    datatype: feature.datatype,
                });
            }
            if feature.default.datatype() != feature.datatype {
                return Err(DeclarationError::DefaultDatatype {
                    view: view.name.clone(),
                    feature: feature.name.clone(),
                    datatype: feature.datatype,
                    default: feature.default.datatype(),
                });
            }
            if features
                .iter()
                .any(|slot: &FeatureSlot| slot.name == feature.name)
            {
                return Err(DeclarationError::Duplicate {
                    what: "feature",
                    name: format!("{}.{}", view.name, feature.name),
                });
            }
            features.push(FeatureSlot {
                name: feature.name.clone(),
                datatype: feature.datatype,
                offset: default_row.len(),
            });
            feature.default.write_le(&mut default_row);
        }
        let max_age_us = match view.max_age {
            None => None,
            Some(Duration::ZERO) => {
                return Err(DeclarationError::ZeroMaxAge {
                    view: view.name.clone(),
                });
            }
            // Ages beyond i64 microseconds (292k years) mean no limit in practice.
            Some(age) => Some(i64::try_from(age.as_micros()).unwrap_or(i64::MAX)),
        };
        Ok(ViewLayout {
            view: view.name.clone(),
            key,
            features,
            row_bytes: default_row.len(),
            default_row,
            max_age_us,
            on_missing: view.on_missing,
        })
    }

    /// The view's name.
    pub fn view(&self) -> &str {
        &self.view
    }

    /// The entity key's parts, in order.
    pub fn key(&self) -> &[KeyPart] {
        &self.key
    }

    /// The features, in row order.
    pub fn features(&self) -> &[FeatureSlot] {
        &self.features
    }

    /// Bytes of one stored row.
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    /// The row served for a missing or stale key.
    pub fn default_row(&self) -> &[u8] {
        &self.default_row
    }

    /// The max age in microseconds, if the view has one.
    pub fn max_age_us(&self) -> Option<i64> {
        self.max_age_us
    }

    /// Missing and stale keys: defaults or rejection.
    pub fn on_missing(&self) -> MissingPolicy {
        self.on_missing
    }

    /// Whether the key is a single INT64 part (the index's fast case).
    pub(crate) fn is_single_int64(&self) -> bool {
        matches!(
            self.key.as_slice(),
            [KeyPart {
                kind: KeyKind::Int64,
                ..
            }]
        )
    }

    /// Whether a table built for `other` stores its rows exactly as this layout does. Defaults
    /// and policy may differ (they are applied at gather, from the plan's layout); a max age
    /// needs event times, which the store checks separately.
    pub(crate) fn stores_like(&self, other: &ViewLayout) -> bool {
        self.view == other.view && self.key == other.key && self.features == other.features
    }
}

/// `names` comma-separated, for messages that list what exists.
pub(crate) fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut text = String::new();
    for (index, name) in names.enumerate() {
        if index > 0 {
            text.push_str(", ");
        }
        text.push_str(name);
    }
    if text.is_empty() {
        text.push_str("none");
    }
    text
}
