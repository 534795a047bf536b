//! Builders shared by the integration tests: declarations, buffers in the raw layout.

#![allow(dead_code)]

use std::time::Duration;

use ferroserve_features::*;
use ferroserve_tensor::{DataType, encode_bytes};

/// A request input.
pub fn input(name: &str, datatype: DataType, columns: usize) -> RequestInput {
    RequestInput {
        name: name.into(),
        datatype,
        columns,
    }
}

/// A view of `count` FP32 features `f0..`, default `default` each.
pub fn fp32_view(
    name: &str,
    key: &[&str],
    count: usize,
    default: f32,
    max_age: Option<Duration>,
    on_missing: MissingPolicy,
) -> FeatureView {
    FeatureView {
        name: name.into(),
        key: key.iter().map(|part| (*part).into()).collect(),
        features: (0..count)
            .map(|index| Feature {
                name: format!("f{index}"),
                datatype: DataType::Fp32,
                default: FeatureValue::Fp32(default),
            })
            .collect(),
        max_age,
        on_missing,
    }
}

/// A 2-D FP32 model input of `width` columns.
pub fn fp32_model_input(name: &str, width: i64) -> ModelInput {
    ModelInput {
        name: name.into(),
        datatype: DataType::Fp32,
        dims: vec![width],
    }
}

/// An assembly entry.
pub fn assemble(model_input: &str, segments: Vec<Segment>) -> ModelInputAssembly {
    ModelInputAssembly {
        model_input: model_input.into(),
        segments,
    }
}

/// A request-input segment.
pub fn req(name: &str) -> Segment {
    Segment::RequestInput(name.into())
}

/// A view segment.
pub fn view(name: &str) -> Segment {
    Segment::View(name.into())
}

/// INT64 values in the raw layout.
pub fn int64_raw(values: &[i64]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect()
}

/// FP32 values in the raw layout.
pub fn fp32_raw(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect()
}

/// FP32 values read back from the raw layout.
pub fn fp32_values(raw: &[u8]) -> Vec<f32> {
    raw.chunks_exact(4)
        .map(|bytes| f32::from_le_bytes(bytes.try_into().expect("4 bytes")))
        .collect()
}

/// Byte strings in the raw BYTES layout.
pub fn bytes_raw<T: AsRef<[u8]>>(values: &[T]) -> Vec<u8> {
    encode_bytes(values.iter().map(AsRef::as_ref)).expect("small elements")
}

/// A table of view `layout` with INT64 keys and FP32 features: feature `f` of row `r` is
/// `values[r][f]`.
pub fn int64_table(
    layout: &ViewLayout,
    keys: &[i64],
    values: &[Vec<f32>],
    event_times_us: Option<&[i64]>,
) -> FeatureTable {
    let columns: Vec<Vec<f32>> = (0..layout.features().len())
        .map(|feature| values.iter().map(|row| row[feature]).collect())
        .collect();
    let key_name = layout.key()[0].name.clone();
    let mut builder = TableBuilder::new(layout)
        .key(&key_name, KeyColumn::Int64(keys))
        .expect("key column");
    for (slot, column) in layout.features().iter().zip(&columns) {
        builder = builder
            .feature(&slot.name, ColumnValues::Fp32(column))
            .expect("feature column");
    }
    if let Some(times) = event_times_us {
        builder = builder.event_times_us(times);
    }
    builder.build().expect("table builds")
}
