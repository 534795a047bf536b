//! The KServe v2 datatype names and the byte size a fixed-size tensor must have.

use std::fmt;
use std::str::FromStr;

use crate::TensorError;

/// A KServe v2 / Triton tensor datatype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// One byte per element, 0 or 1.
    Bool,
    /// Unsigned 8-bit integer.
    Uint8,
    /// Unsigned 16-bit integer.
    Uint16,
    /// Unsigned 32-bit integer.
    Uint32,
    /// Unsigned 64-bit integer.
    Uint64,
    /// Signed 8-bit integer.
    Int8,
    /// Signed 16-bit integer.
    Int16,
    /// Signed 32-bit integer.
    Int32,
    /// Signed 64-bit integer.
    Int64,
    /// IEEE 754 half precision.
    Fp16,
    /// bfloat16 (the upper half of an FP32).
    Bf16,
    /// IEEE 754 single precision.
    Fp32,
    /// IEEE 754 double precision.
    Fp64,
    /// Variable-length byte strings, length-prefixed on the wire.
    Bytes,
}

impl DataType {
    /// Every datatype, in the order the protocol lists them.
    pub const ALL: [DataType; 14] = [
        DataType::Bool,
        DataType::Uint8,
        DataType::Uint16,
        DataType::Uint32,
        DataType::Uint64,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Fp16,
        DataType::Bf16,
        DataType::Fp32,
        DataType::Fp64,
        DataType::Bytes,
    ];

    /// Bytes per element, or `None` for BYTES (variable size).
    pub const fn element_size(self) -> Option<usize> {
        match self {
            DataType::Bool | DataType::Uint8 | DataType::Int8 => Some(1),
            DataType::Uint16 | DataType::Int16 | DataType::Fp16 | DataType::Bf16 => Some(2),
            DataType::Uint32 | DataType::Int32 | DataType::Fp32 => Some(4),
            DataType::Uint64 | DataType::Int64 | DataType::Fp64 => Some(8),
            DataType::Bytes => None,
        }
    }

    /// The protocol's name for this datatype ("FP32", "BYTES", ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::Uint8 => "UINT8",
            DataType::Uint16 => "UINT16",
            DataType::Uint32 => "UINT32",
            DataType::Uint64 => "UINT64",
            DataType::Int8 => "INT8",
            DataType::Int16 => "INT16",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::Fp16 => "FP16",
            DataType::Bf16 => "BF16",
            DataType::Fp32 => "FP32",
            DataType::Fp64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }
}

impl FromStr for DataType {
    type Err = TensorError;

    /// Parses the exact protocol name; the protocol's names are upper case and so are ours.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        DataType::ALL
            .into_iter()
            .find(|datatype| datatype.as_str() == name)
            .ok_or_else(|| TensorError::UnknownDatatype(name.to_owned()))
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The byte size of a fixed-size tensor of `datatype` and `shape` (all dims resolved, >= 0).
pub fn expected_raw_size(datatype: DataType, shape: &[i64]) -> Result<usize, TensorError> {
    let element_size = datatype.element_size().ok_or(TensorError::VariableSize)?;
    let overflow = || TensorError::SizeOverflow {
        shape: shape.to_vec(),
    };
    if let Some((index, &dim)) = shape.iter().enumerate().find(|(_, dim)| **dim < 0) {
        return Err(TensorError::NegativeDim { index, dim });
    }
    if shape.contains(&0) {
        return Ok(0);
    }
    let mut size = element_size;
    for &dim in shape {
        let dim = usize::try_from(dim).map_err(|_| overflow())?;
        size = size.checked_mul(dim).ok_or_else(overflow)?;
    }
    // A Rust allocation (and so any buffer we hand out) is at most isize::MAX bytes.
    if isize::try_from(size).is_err() {
        return Err(overflow());
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips() {
        for datatype in DataType::ALL {
            assert_eq!(datatype.as_str().parse::<DataType>(), Ok(datatype));
            assert_eq!(datatype.to_string(), datatype.as_str());
        }
    }

    #[test]
    fn unknown_and_lower_case_names_are_rejected() {
        assert_eq!(
            "fp32".parse::<DataType>(),
            Err(TensorError::UnknownDatatype("fp32".into()))
        );
        assert!("FLOAT".parse::<DataType>().is_err());
    }

    #[test]
    fn element_sizes() {
        assert_eq!(DataType::Bool.element_size(), Some(1));
        assert_eq!(DataType::Bf16.element_size(), Some(2));
        assert_eq!(DataType::Fp32.element_size(), Some(4));
        assert_eq!(DataType::Uint64.element_size(), Some(8));
        assert_eq!(DataType::Bytes.element_size(), None);
    }

    #[test]
    fn raw_size_multiplies_dims() {
        assert_eq!(expected_raw_size(DataType::Fp32, &[2, 3]), Ok(24));
        assert_eq!(expected_raw_size(DataType::Int64, &[]), Ok(8));
        assert_eq!(expected_raw_size(DataType::Fp16, &[4, 0, 7]), Ok(0));
        assert_eq!(
            expected_raw_size(DataType::Fp16, &[i64::MAX, i64::MAX, 0]),
            Ok(0)
        );
    }

    #[test]
    fn raw_size_rejects_negative_dims_bytes_and_overflow() {
        assert_eq!(
            expected_raw_size(DataType::Fp32, &[1, -1]),
            Err(TensorError::NegativeDim { index: 1, dim: -1 })
        );
        assert_eq!(
            expected_raw_size(DataType::Fp32, &[i64::MAX, i64::MAX, -3]),
            Err(TensorError::NegativeDim { index: 2, dim: -3 })
        );
        assert_eq!(
            expected_raw_size(DataType::Bytes, &[1]),
            Err(TensorError::VariableSize)
        );
        assert!(matches!(
            expected_raw_size(DataType::Fp64, &[i64::MAX, 2]),
            Err(TensorError::SizeOverflow { .. })
        ));
        assert!(matches!(
            expected_raw_size(DataType::Uint8, &[1 << 40, 1 << 40]),
            Err(TensorError::SizeOverflow { .. })
        ));
    }
}
