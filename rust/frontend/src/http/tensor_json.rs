//! Tensor data in JSON, both ways: a request input's `data` (flat or nested arrays of
//! numbers, booleans or strings) written straight into the raw layout the gRPC path queues,
//! and an output's raw bytes written as a flat `data` array. No intermediate JSON tree: the
//! elements go from the parser into the buffer, so memory is bounded by the body's size.

use std::fmt;

use ferroserve_tensor::DataType;
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Where decoded elements go.
struct Sink<'a> {
    datatype: DataType,
    out: &'a mut Vec<u8>,
    count: &'a mut usize,
}

impl Sink<'_> {
    fn integer<E: de::Error>(&mut self, value: i128) -> Result<(), E> {
        let out_of_range = || {
            E::custom(format_args!(
                "element {}: {value} is out of range for {}",
                *self.count,
                self.datatype.as_str()
            ))
        };
        match self.datatype {
            DataType::Uint8 => self.push(
                &u8::try_from(value)
                    .map_err(|_| out_of_range())?
                    .to_le_bytes(),
            ),
            DataType::Uint16 => self.push(
                &u16::try_from(value)
                    .map_err(|_| out_of_range())?
                    .to_le_bytes(),
            ),
            DataType::Uint32 => self.push(
                &u32::try_from(value)
                    .map_err(|_| out_of_range())?
                    .to_le_bytes(),
            ),
            DataType::Uint64 => self.push(
                &u64::try_from(value)
                    .map_err(|_| out_of_range())?
                    .to_le_bytes(),
            ),
            DataType::Int8 => self.push(
                &i8::try_from(value)
                    .map_err(|_| out_of_range())?
                    .to_le_bytes(),
            ),
            DataType::Int16 => self.push(
                &i16::try_from(value)
                    .map_err(|_| out_of_range())?
                    .to_le_bytes(),
            ),
            DataType::Int32 => self.push(
                &i32::try_from(value)
                    .map_err(|_| out_of_range())?
                    .to_le_bytes(),
            ),
            DataType::Int64 => self.push(
                &i64::try_from(value)
                    .map_err(|_| out_of_range())?
                    .to_le_bytes(),
            ),
            // An integer is a fine value of a floating-point tensor.
            #[allow(clippy::cast_precision_loss)]
            DataType::Fp16 | DataType::Bf16 | DataType::Fp32 | DataType::Fp64 => {
                self.float(value as f64)
            }
            DataType::Bool | DataType::Bytes => Err(self.wrong("a number")),
        }
    }

    fn float<E: de::Error>(&mut self, value: f64) -> Result<(), E> {
        match self.datatype {
            DataType::Fp16 => self.push(&half::f16::from_f64(value).to_le_bytes()),
            DataType::Bf16 => self.push(&half::bf16::from_f64(value).to_le_bytes()),
            // Rounds to the nearest FP32, as a cast from the parsed double does everywhere.
            #[allow(clippy::cast_possible_truncation)]
            DataType::Fp32 => self.push(&(value as f32).to_le_bytes()),
            DataType::Fp64 => self.push(&value.to_le_bytes()),
            _ if matches!(self.datatype, DataType::Bool | DataType::Bytes) => {
                Err(self.wrong("a number"))
            }
            _ => Err(E::custom(format_args!(
                "element {}: {value} is not an integer, as {} needs",
                *self.count,
                self.datatype.as_str()
            ))),
        }
    }

    fn push<E>(&mut self, bytes: &[u8]) -> Result<(), E> {
        self.out.extend_from_slice(bytes);
        *self.count += 1;
        Ok(())
    }

    fn wrong<E: de::Error>(&self, got: &str) -> E {
        let expected = match self.datatype {
            DataType::Bool => "true or false",
            DataType::Bytes => "a string",
            _ => "a number",
        };
        E::custom(format_args!(
            "element {}: expected {expected} for {}, got {got}",
            *self.count,
            self.datatype.as_str()
        ))
    }
}

impl<'de> DeserializeSeed<'de> for Sink<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Sink<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "an array of {} values", self.datatype.as_str())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Sink {
            datatype,
            out,
            count,
        } = self;
        // Nested arrays are read row-major, as the protocol's nested form is defined.
        while seq
            .next_element_seed(Sink {
                datatype,
                out: &mut *out,
                count: &mut *count,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_bool<E: de::Error>(mut self, value: bool) -> Result<(), E> {
        if self.datatype == DataType::Bool {
            self.push(&[u8::from(value)])
        } else {
            Err(self.wrong("a boolean"))
        }
    }

    fn visit_i64<E: de::Error>(mut self, value: i64) -> Result<(), E> {
        self.integer(i128::from(value))
    }

    fn visit_u64<E: de::Error>(mut self, value: u64) -> Result<(), E> {
        self.integer(i128::from(value))
    }

    fn visit_f64<E: de::Error>(mut self, value: f64) -> Result<(), E> {
        self.float(value)
    }

    fn visit_str<E: de::Error>(mut self, value: &str) -> Result<(), E> {
        if self.datatype != DataType::Bytes {
            return Err(self.wrong("a string"));
        }
        let len = u32::try_from(value.len())
            .map_err(|_| E::custom("a string of 4 GiB or more cannot be a BYTES element"))?;
        self.out.extend_from_slice(&len.to_le_bytes());
        self.push(value.as_bytes())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.wrong("null"))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, _map: A) -> Result<(), A::Error> {
        Err(self.wrong("an object"))
    }
}

/// A JSON input's `data` in the raw layout of `datatype` (BYTES: each string's 4-byte
/// little-endian length, then its bytes) and how many elements it held.
pub fn decode_data(datatype: DataType, data: &RawValue) -> Result<(Vec<u8>, usize), String> {
    let mut out = Vec::new();
    let mut count = 0;
    let mut deserializer = serde_json::Deserializer::from_str(data.get());
    let sink = Sink {
        datatype,
        out: &mut out,
        count: &mut count,
    };
    sink.deserialize(&mut deserializer)
        .map_err(|error| error.to_string())?;
    Ok((out, count))
}

/// Appends `raw` (the raw layout of `datatype`) to `out` as a flat JSON array. FP16 and BF16
/// are written as the numbers they hold; FP32 as its exact double, so reading it back gives
/// the same bits; non-finite values, which JSON cannot hold, as `null` (binary data carries
/// them exactly). BYTES elements are written as strings (invalid UTF-8 replaced).
pub fn write_data(out: &mut Vec<u8>, datatype: DataType, raw: &[u8]) -> Result<(), String> {
    out.push(b'[');
    let mut first = true;
    let mut separator = |out: &mut Vec<u8>| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
    };
    if datatype == DataType::Bytes {
        let mut pos = 0;
        while pos < raw.len() {
            let len = raw
                .get(pos..pos + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .ok_or("a BYTES output ends inside an element's length")?;
            let element = raw
                .get(pos + 4..pos + 4 + len)
                .ok_or("a BYTES output ends inside an element")?;
            separator(out);
            serde_json::to_writer(&mut *out, &String::from_utf8_lossy(element))
                .map_err(|error| error.to_string())?;
            pos += 4 + len;
        }
    } else {
        let size = datatype.element_size().unwrap_or(1);
        if !raw.len().is_multiple_of(size) {
            return Err(format!(
                "{} bytes are not whole {} elements",
                raw.len(),
                datatype.as_str()
            ));
        }
        let mut integer = itoa::Buffer::new();
        for element in raw.chunks_exact(size) {
            separator(out);
            let mut array = [0u8; 8];
            array[..size].copy_from_slice(element);
            let text = match datatype {
                DataType::Bool => {
                    out.extend_from_slice(if element[0] != 0 { b"true" } else { b"false" });
                    continue;
                }
                DataType::Uint8 => integer.format(element[0]),
                DataType::Int8 => integer.format(i8::from_le_bytes([element[0]])),
                DataType::Uint16 => integer.format(u16::from_le_bytes([array[0], array[1]])),
                DataType::Int16 => integer.format(i16::from_le_bytes([array[0], array[1]])),
                DataType::Uint32 => {
                    integer.format(u32::from_le_bytes([array[0], array[1], array[2], array[3]]))
                }
                DataType::Int32 => {
                    integer.format(i32::from_le_bytes([array[0], array[1], array[2], array[3]]))
                }
                DataType::Uint64 => integer.format(u64::from_le_bytes(array)),
                DataType::Int64 => integer.format(i64::from_le_bytes(array)),
                DataType::Fp16 => {
                    write_float(out, half::f16::from_le_bytes([array[0], array[1]]).to_f64());
                    continue;
                }
                DataType::Bf16 => {
                    write_float(
                        out,
                        half::bf16::from_le_bytes([array[0], array[1]]).to_f64(),
                    );
                    continue;
                }
                DataType::Fp32 => {
                    let value = f32::from_le_bytes([array[0], array[1], array[2], array[3]]);
                    write_float(out, f64::from(value));
                    continue;
                }
                DataType::Fp64 => {
                    write_float(out, f64::from_le_bytes(array));
                    continue;
                }
                DataType::Bytes => unreachable!("BYTES is written above. This is a bug."),
            };
            out.extend_from_slice(text.as_bytes());
        }
    }
    out.push(b']');
    Ok(())
}

/// The shortest text that reads back as `value` (ryu), or `null` when JSON has no number for
/// it.
fn write_float(out: &mut Vec<u8>, value: f64) {
    if value.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn decode(datatype: DataType, json: &str) -> Result<(Vec<u8>, usize), String> {
        let raw: Box<RawValue> = serde_json::from_str(json).unwrap();
        decode_data(datatype, &raw)
    }

    fn round_trip(datatype: DataType, json: &str) -> String {
        let (raw, _) = decode(datatype, json).unwrap();
        let mut out = Vec::new();
        write_data(&mut out, datatype, &raw).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn nested_and_flat_data_give_the_same_bytes() {
        let flat = decode(DataType::Int32, "[1,2,3,4,5,6]").unwrap();
        let nested = decode(DataType::Int32, "[[1,2,3],[4,5,6]]").unwrap();
        assert_eq!(flat, nested);
        assert_eq!(flat.1, 6);
        assert_eq!(&flat.0[..4], &1i32.to_le_bytes());
    }

    #[test]
    fn every_datatype_round_trips() {
        assert_eq!(round_trip(DataType::Bool, "[true,false]"), "[true,false]");
        assert_eq!(round_trip(DataType::Uint8, "[0,255]"), "[0,255]");
        assert_eq!(round_trip(DataType::Int8, "[-128,127]"), "[-128,127]");
        assert_eq!(round_trip(DataType::Uint16, "[65535]"), "[65535]");
        assert_eq!(round_trip(DataType::Int16, "[-32768]"), "[-32768]");
        assert_eq!(round_trip(DataType::Uint32, "[4294967295]"), "[4294967295]");
        assert_eq!(
            round_trip(DataType::Int32, "[-2147483648]"),
            "[-2147483648]"
        );
        assert_eq!(
            round_trip(DataType::Uint64, "[18446744073709551615]"),
            "[18446744073709551615]"
        );
        assert_eq!(
            round_trip(DataType::Int64, "[-9223372036854775808]"),
            "[-9223372036854775808]"
        );
        assert_eq!(
            round_trip(DataType::Fp16, "[1.5,-2,65504]"),
            "[1.5,-2.0,65504.0]"
        );
        assert_eq!(round_trip(DataType::Bf16, "[1.5,-2]"), "[1.5,-2.0]");
        assert_eq!(round_trip(DataType::Fp64, "[0.1,1e300]"), "[0.1,1e300]");
        assert_eq!(
            round_trip(DataType::Bytes, r#"["a","","é\"\u0000"]"#),
            r#"["a","","é\"\u0000"]"#
        );
    }

    #[test]
    fn fp32_is_written_as_its_exact_double_so_it_reads_back_bit_for_bit() {
        let value = 0.1f32;
        let mut out = Vec::new();
        write_data(&mut out, DataType::Fp32, &value.to_le_bytes()).unwrap();
        let text = String::from_utf8(out).unwrap();
        let parsed: Vec<f64> = serde_json::from_str(&text).unwrap();
        #[allow(clippy::cast_possible_truncation)]
        let back = parsed[0] as f32;
        assert_eq!(back.to_bits(), value.to_bits());
        let (raw, _) = decode(DataType::Fp32, &text).unwrap();
        assert_eq!(raw, value.to_le_bytes());
    }

    #[test]
    fn doubles_read_back_bit_for_bit() {
        // A spread of bit patterns (an LCG): each written, then read, gives the same bits
        // (serde_json's float_roundtrip; without it the last bit is sometimes off).
        let mut bits = 0x3ff0_0000_0000_0001u64;
        for _ in 0..20_000 {
            bits = bits
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let value = f64::from_bits(bits);
            if !value.is_finite() {
                continue;
            }
            let mut out = Vec::new();
            write_data(&mut out, DataType::Fp64, &value.to_le_bytes()).unwrap();
            let text = String::from_utf8(out).unwrap();
            let (raw, _) = decode(DataType::Fp64, &text).unwrap();
            assert_eq!(raw, value.to_le_bytes(), "{text}");
        }
    }

    #[test]
    fn non_finite_values_are_null() {
        let mut out = Vec::new();
        let raw: Vec<u8> = [f32::NAN, f32::INFINITY]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        write_data(&mut out, DataType::Fp32, &raw).unwrap();
        assert_eq!(out, b"[null,null]");
    }

    #[test]
    fn bytes_elements_are_length_prefixed() {
        let (raw, count) = decode(DataType::Bytes, r#"["ab"]"#).unwrap();
        assert_eq!(count, 1);
        assert_eq!(raw, [2, 0, 0, 0, b'a', b'b']);
    }

    #[test]
    fn wrong_values_name_the_element_and_what_was_expected() {
        let error = decode(DataType::Uint8, "[1,256]").unwrap_err();
        assert!(
            error.contains("element 1: 256 is out of range for UINT8"),
            "{error}"
        );
        let error = decode(DataType::Int32, "[1.5]").unwrap_err();
        assert!(error.contains("not an integer"), "{error}");
        let error = decode(DataType::Fp32, r#"["x"]"#).unwrap_err();
        assert!(
            error.contains("expected a number for FP32, got a string"),
            "{error}"
        );
        let error = decode(DataType::Bytes, "[1]").unwrap_err();
        assert!(error.contains("expected a string for BYTES"), "{error}");
        let error = decode(DataType::Bool, "[null]").unwrap_err();
        assert!(error.contains("expected true or false"), "{error}");
        let error = decode(DataType::Fp32, r#"[{"a":1}]"#).unwrap_err();
        assert!(error.contains("got an object"), "{error}");
    }

    #[test]
    fn a_scalar_is_one_element() {
        assert_eq!(decode(DataType::Fp64, "2.5").unwrap().1, 1);
    }
}
