//! Feast's stored values: `feast.types.Value` (`protos/feast/types/Value.proto`, a `oneof val`)
//! and `google.protobuf.Timestamp`, decoded from and encoded to their serialized bytes, and the
//! conversion of a value into a feature's datatype.
//!
//! Conversions are by type, never by value, so a feature either always serves or never does:
//! FP32 <- `float_val`; FP64 <- `double_val`, `float_val`, `int32_val`; INT64 <- `int64_val`,
//! `int32_val`; INT32 <- `int32_val`. Every one is exact. Anything else (`int64_val` into FP64 or
//! FP32, `double_val` into FP32, strings, bools, lists) is a mismatch.

use ferroserve_tensor::DataType;

use crate::proto::{self, Fields, Malformed, Wire};

/// `Value`'s fields this crate reads (`oneof val` numbers in Value.proto).
const INT32_VAL: u64 = 3;
const INT64_VAL: u64 = 4;
const DOUBLE_VAL: u64 = 5;
const FLOAT_VAL: u64 = 6;
const BOOL_VAL: u64 = 7;
const NULL_VAL: u64 = 19;
/// `Timestamp`'s fields.
const SECONDS: u64 = 1;
const NANOS: u64 = 2;

/// A decoded Feast `Value`: the scalar kinds this crate serves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FeastValue {
    /// No value: an empty message (Feast writes None and NaN so) or `null_val`.
    Null,
    /// `bool_val`.
    Bool(bool),
    /// `int32_val`.
    Int32(i32),
    /// `int64_val`.
    Int64(i64),
    /// `float_val`.
    Float(f32),
    /// `double_val`.
    Double(f64),
}

/// Why a stored value cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueError {
    /// The bytes are not a `Value` message.
    Malformed,
    /// A `Value` of a kind this crate does not serve (string, bytes, lists, maps, ...): its
    /// field number in Value.proto.
    Unsupported(u64),
}

impl From<Malformed> for ValueError {
    fn from(_: Malformed) -> Self {
        ValueError::Malformed
    }
}

impl FeastValue {
    /// Decodes a serialized `Value`. As protobuf does for a `oneof`, the last member present
    /// wins. `Value` has no field outside its `oneof`, so any other field number is a kind this
    /// crate does not serve (one Feast added later included), never skipped into a null.
    pub fn decode(bytes: &[u8]) -> Result<FeastValue, ValueError> {
        let mut fields = Fields::new(bytes);
        let mut value = FeastValue::Null;
        while let Some((field, wire)) = fields.next_field()? {
            value = match (field, wire) {
                // int32 keeps a varint's low 32 bits (protobuf's rule for int32 fields).
                (INT32_VAL, Wire::Varint(raw)) => FeastValue::Int32(raw as i32),
                (INT64_VAL, Wire::Varint(raw)) => FeastValue::Int64(raw as i64),
                (BOOL_VAL, Wire::Varint(raw)) => FeastValue::Bool(raw != 0),
                (DOUBLE_VAL, Wire::Fixed64(raw)) => FeastValue::Double(f64::from_le_bytes(raw)),
                (FLOAT_VAL, Wire::Fixed32(raw)) => FeastValue::Float(f32::from_le_bytes(raw)),
                (NULL_VAL, Wire::Varint(_)) => FeastValue::Null,
                (INT32_VAL | INT64_VAL | BOOL_VAL | DOUBLE_VAL | FLOAT_VAL | NULL_VAL, _) => {
                    return Err(ValueError::Malformed);
                }
                _ => return Err(ValueError::Unsupported(field)),
            };
        }
        Ok(value)
    }

    /// Appends the serialized `Value`, byte for byte as Feast's Python client writes it.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            FeastValue::Null => {}
            FeastValue::Bool(value) => {
                proto::put_tag(out, BOOL_VAL, proto::VARINT);
                proto::put_varint(out, u64::from(value));
            }
            FeastValue::Int32(value) => {
                proto::put_tag(out, INT32_VAL, proto::VARINT);
                // Negative int32 values are sign-extended to 10 bytes, as protobuf does.
                proto::put_varint(out, i64::from(value) as u64);
            }
            FeastValue::Int64(value) => {
                proto::put_tag(out, INT64_VAL, proto::VARINT);
                proto::put_varint(out, value as u64);
            }
            FeastValue::Float(value) => {
                proto::put_tag(out, FLOAT_VAL, proto::FIXED32);
                out.extend_from_slice(&value.to_le_bytes());
            }
            FeastValue::Double(value) => {
                proto::put_tag(out, DOUBLE_VAL, proto::FIXED64);
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
    }

    /// Writes the value into `out` as `datatype`'s little-endian bytes (`out` is exactly that
    /// wide) if the conversion is one of the accepted ones (module doc); false otherwise.
    pub fn write_as(&self, datatype: DataType, out: &mut [u8]) -> bool {
        let bytes: &[u8] = match (datatype, *self) {
            (DataType::Fp32, FeastValue::Float(value)) => &value.to_le_bytes(),
            (DataType::Fp64, FeastValue::Double(value)) => &value.to_le_bytes(),
            (DataType::Fp64, FeastValue::Float(value)) => &f64::from(value).to_le_bytes(),
            (DataType::Fp64, FeastValue::Int32(value)) => &f64::from(value).to_le_bytes(),
            (DataType::Int64, FeastValue::Int64(value)) => &value.to_le_bytes(),
            (DataType::Int64, FeastValue::Int32(value)) => &i64::from(value).to_le_bytes(),
            (DataType::Int32, FeastValue::Int32(value)) => &value.to_le_bytes(),
            _ => return false,
        };
        if bytes.len() != out.len() {
            return false;
        }
        out.copy_from_slice(bytes);
        true
    }

    /// The value of a feature of `datatype` stored as `bytes` (its little-endian layout), in the
    /// `Value` kind Feast writes for that type (Float32 -> `float_val`, Float64 -> `double_val`,
    /// Int64 -> `int64_val`, Int32 -> `int32_val`); `None` for other datatypes or sizes.
    pub fn from_le(datatype: DataType, bytes: &[u8]) -> Option<FeastValue> {
        Some(match datatype {
            DataType::Fp32 => FeastValue::Float(f32::from_le_bytes(bytes.try_into().ok()?)),
            DataType::Fp64 => FeastValue::Double(f64::from_le_bytes(bytes.try_into().ok()?)),
            DataType::Int64 => FeastValue::Int64(i64::from_le_bytes(bytes.try_into().ok()?)),
            DataType::Int32 => FeastValue::Int32(i32::from_le_bytes(bytes.try_into().ok()?)),
            _ => return None,
        })
    }
}

/// Decodes a serialized `google.protobuf.Timestamp` into Unix microseconds (nanoseconds below
/// a microsecond are dropped, rounding towards the past); `None` if it does not parse.
pub fn decode_timestamp(bytes: &[u8]) -> Option<i64> {
    let mut fields = Fields::new(bytes);
    let (mut seconds, mut nanos) = (0i64, 0i64);
    while let Some((field, wire)) = fields.next_field().ok()? {
        match (field, wire) {
            (SECONDS, Wire::Varint(raw)) => seconds = raw as i64,
            // int32: a varint's low 32 bits.
            (NANOS, Wire::Varint(raw)) => nanos = i64::from(raw as i32),
            (SECONDS | NANOS, _) => return None,
            _ => {}
        }
    }
    seconds
        .checked_mul(1_000_000)?
        .checked_add(nanos.div_euclid(1000))
}

/// Appends the serialized `Timestamp` of `unix_us` microseconds, byte for byte as Python's
/// `Timestamp.FromDatetime(...).SerializeToString()` (zero fields omitted, nanos in 0..1e9).
pub fn encode_timestamp(unix_us: i64, out: &mut Vec<u8>) {
    let seconds = unix_us.div_euclid(1_000_000);
    let nanos = unix_us.rem_euclid(1_000_000) * 1000;
    if seconds != 0 {
        proto::put_tag(out, SECONDS, proto::VARINT);
        proto::put_varint(out, seconds as u64);
    }
    if nanos != 0 {
        proto::put_tag(out, NANOS, proto::VARINT);
        proto::put_varint(out, nanos as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by Feast 0.67.0 (`python_values_to_proto_values(...).SerializeToString()`,
    /// rust/feast/tools/feast_vectors.py): (value decoded, bytes). Feast writes None and NaN as
    /// an empty message.
    const FEAST_VALUES: [(FeastValue, &[u8]); 7] = [
        (FeastValue::Float(0.5), b"\x35\x00\x00\x00\x3f"),
        (
            FeastValue::Double(-1.25),
            b"\x29\x00\x00\x00\x00\x00\x00\xf4\xbf",
        ),
        (FeastValue::Float(0.0), b"\x35\x00\x00\x00\x00"),
        (
            FeastValue::Int64(1_234_567_890_123),
            b"\x20\xcb\x89\xec\x8f\xf7\x23",
        ),
        (
            FeastValue::Int64(-5),
            b"\x20\xfb\xff\xff\xff\xff\xff\xff\xff\xff\x01",
        ),
        (
            FeastValue::Int32(-5),
            b"\x18\xfb\xff\xff\xff\xff\xff\xff\xff\xff\x01",
        ),
        (FeastValue::Int32(7), b"\x18\x07"),
    ];

    #[test]
    fn values_match_feast_both_ways() {
        for (value, bytes) in FEAST_VALUES {
            assert_eq!(FeastValue::decode(bytes), Ok(value), "{bytes:?}");
            let mut out = Vec::new();
            value.encode(&mut out);
            assert_eq!(out, bytes, "{value:?}");
        }
    }

    #[test]
    fn null_and_unsupported_values() {
        assert_eq!(FeastValue::decode(b""), Ok(FeastValue::Null));
        // Value(null_val=NULL) as Feast serializes it.
        assert_eq!(FeastValue::decode(b"\x98\x01\x00"), Ok(FeastValue::Null));
        // Value(string_val="x").
        assert_eq!(
            FeastValue::decode(b"\x12\x01\x78"),
            Err(ValueError::Unsupported(2))
        );
        assert_eq!(
            FeastValue::decode(b"\x35\x00\x00"),
            Err(ValueError::Malformed)
        );
        // float_val with a varint payload.
        assert_eq!(FeastValue::decode(b"\x30\x01"), Err(ValueError::Malformed));
        // The last oneof member wins; a field number Value.proto does not have is refused.
        assert_eq!(
            FeastValue::decode(b"\x18\x07\x20\x08"),
            Ok(FeastValue::Int64(8))
        );
        assert_eq!(
            FeastValue::decode(b"\xa8\x1f\x01"),
            Err(ValueError::Unsupported(501))
        );
    }

    #[test]
    fn accepted_conversions_are_exact() {
        let read = |value: FeastValue, datatype: DataType, width: usize| {
            let mut out = vec![0u8; width];
            value.write_as(datatype, &mut out).then_some(out)
        };
        assert_eq!(
            read(FeastValue::Float(1.5), DataType::Fp32, 4),
            Some(1.5f32.to_le_bytes().to_vec())
        );
        assert_eq!(
            read(FeastValue::Float(0.1), DataType::Fp64, 8),
            Some(f64::from(0.1f32).to_le_bytes().to_vec())
        );
        assert_eq!(
            read(FeastValue::Int32(-9), DataType::Fp64, 8),
            Some((-9f64).to_le_bytes().to_vec())
        );
        assert_eq!(
            read(FeastValue::Int32(-9), DataType::Int64, 8),
            Some((-9i64).to_le_bytes().to_vec())
        );
        assert_eq!(
            read(FeastValue::Int64(1 << 40), DataType::Int64, 8),
            Some((1i64 << 40).to_le_bytes().to_vec())
        );
        assert_eq!(
            read(FeastValue::Int32(3), DataType::Int32, 4),
            Some(3i32.to_le_bytes().to_vec())
        );
        for (value, datatype, width) in [
            (FeastValue::Int64(1), DataType::Fp64, 8),
            (FeastValue::Int64(1), DataType::Fp32, 4),
            (FeastValue::Double(1.0), DataType::Fp32, 4),
            (FeastValue::Int64(1), DataType::Int32, 4),
            (FeastValue::Int32(1), DataType::Fp32, 4),
            (FeastValue::Bool(true), DataType::Int64, 8),
            (FeastValue::Null, DataType::Fp32, 4),
            (FeastValue::Float(1.0), DataType::Fp32, 8),
        ] {
            assert_eq!(
                read(value, datatype, width),
                None,
                "{value:?} -> {datatype:?}"
            );
        }
    }

    /// `Timestamp.FromDatetime(...).SerializeToString()` in Feast 0.67.0's environment.
    const FEAST_TIMESTAMPS: [(i64, &[u8]); 4] = [
        (1_796_119_200_000_000, b"\x08\xa0\xb5\xba\xd8\x06"),
        (
            1_796_119_200_123_456,
            b"\x08\xa0\xb5\xba\xd8\x06\x10\x80\x94\xef\x3a",
        ),
        (0, b""),
        (
            -500_000,
            b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x10\x80\xca\xb5\xee\x01",
        ),
    ];

    #[test]
    fn timestamps_match_feast_both_ways() {
        for (micros, bytes) in FEAST_TIMESTAMPS {
            assert_eq!(decode_timestamp(bytes), Some(micros), "{bytes:?}");
            let mut out = Vec::new();
            encode_timestamp(micros, &mut out);
            assert_eq!(out, bytes, "{micros}");
        }
        assert_eq!(decode_timestamp(b"\x08"), None);
        assert_eq!(decode_timestamp(b"\x0d\x00\x00\x00\x00"), None);
    }
}
