//! Graph tensors as the engine sees them: v2 datatypes of onnxruntime's element types (strings
//! as BYTES), shapes, byte sizes.

use ferroserve_tensor::DataType;
use ort::value::{TensorElementType, ValueType};

use crate::RuntimeError;

/// A graph input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name.
    pub name: String,
    /// Its datatype.
    pub datatype: DataType,
    /// Its ONNX type name, e.g. "tensor(float)".
    pub onnx_type: &'static str,
    /// Its dims; `None` for a symbolic or unknown dim.
    pub shape: Vec<Option<i64>>,
}

/// The v2 datatype and ONNX type name of an onnxruntime element type this engine runs.
pub(crate) fn datatype(element: TensorElementType) -> Option<(DataType, &'static str)> {
    Some(match element {
        TensorElementType::Bool => (DataType::Bool, "tensor(bool)"),
        TensorElementType::Uint8 => (DataType::Uint8, "tensor(uint8)"),
        TensorElementType::Uint16 => (DataType::Uint16, "tensor(uint16)"),
        TensorElementType::Uint32 => (DataType::Uint32, "tensor(uint32)"),
        TensorElementType::Uint64 => (DataType::Uint64, "tensor(uint64)"),
        TensorElementType::Int8 => (DataType::Int8, "tensor(int8)"),
        TensorElementType::Int16 => (DataType::Int16, "tensor(int16)"),
        TensorElementType::Int32 => (DataType::Int32, "tensor(int32)"),
        TensorElementType::Int64 => (DataType::Int64, "tensor(int64)"),
        TensorElementType::Float16 => (DataType::Fp16, "tensor(float16)"),
        TensorElementType::Bfloat16 => (DataType::Bf16, "tensor(bfloat16)"),
        TensorElementType::Float32 => (DataType::Fp32, "tensor(float)"),
        TensorElementType::Float64 => (DataType::Fp64, "tensor(double)"),
        TensorElementType::String => (DataType::Bytes, "tensor(string)"),
        _ => return None,
    })
}

/// The onnxruntime element type of a fixed-size v2 datatype (BYTES tensors are built by
/// `strings::string_tensor`).
pub(crate) fn element_type(datatype: DataType) -> Option<TensorElementType> {
    Some(match datatype {
        DataType::Bool => TensorElementType::Bool,
        DataType::Uint8 => TensorElementType::Uint8,
        DataType::Uint16 => TensorElementType::Uint16,
        DataType::Uint32 => TensorElementType::Uint32,
        DataType::Uint64 => TensorElementType::Uint64,
        DataType::Int8 => TensorElementType::Int8,
        DataType::Int16 => TensorElementType::Int16,
        DataType::Int32 => TensorElementType::Int32,
        DataType::Int64 => TensorElementType::Int64,
        DataType::Fp16 => TensorElementType::Float16,
        DataType::Bf16 => TensorElementType::Bfloat16,
        DataType::Fp32 => TensorElementType::Float32,
        DataType::Fp64 => TensorElementType::Float64,
        DataType::Bytes => return None,
    })
}

/// Describes one graph tensor, or says why this engine cannot run it.
pub(crate) fn describe(
    kind: &'static str,
    name: &str,
    value: &ValueType,
) -> Result<TensorInfo, RuntimeError> {
    let unsupported = || RuntimeError::Unsupported {
        kind,
        name: name.to_owned(),
        onnx_type: value.to_string(),
    };
    let ValueType::Tensor { ty, shape, .. } = value else {
        return Err(unsupported());
    };
    let (datatype, onnx_type) = datatype(*ty).ok_or_else(unsupported)?;
    Ok(TensorInfo {
        name: name.to_owned(),
        datatype,
        onnx_type,
        shape: shape.iter().map(|&dim| (dim >= 0).then_some(dim)).collect(),
    })
}

/// The graph tensor called `name`.
pub(crate) fn find<'a>(
    tensors: &'a [TensorInfo],
    name: &str,
) -> Result<&'a TensorInfo, RuntimeError> {
    tensors
        .iter()
        .find(|tensor| tensor.name == name)
        .ok_or_else(|| RuntimeError::Input(format!("the model has no tensor '{name}'")))
}

/// Bytes of a fixed-size tensor of `datatype` and `shape`, if the shape is valid (`None` for
/// BYTES).
pub(crate) fn tensor_bytes(datatype: DataType, shape: &[i64]) -> Option<usize> {
    ferroserve_tensor::expected_raw_size(datatype, shape).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_bytes_and_every_fixed_size_type_round_trips() {
        assert_eq!(
            datatype(TensorElementType::String),
            Some((DataType::Bytes, "tensor(string)"))
        );
        assert_eq!(element_type(DataType::Bytes), None);
        for datatype_ in DataType::ALL {
            if let Some(element) = element_type(datatype_) {
                assert_eq!(datatype(element).map(|(found, _)| found), Some(datatype_));
            }
        }
        assert_eq!(datatype(TensorElementType::Complex64), None);
    }
}
