//! Typed `InferTensorContents` (an input's `contents`, field 5) converted to the raw
//! little-endian layout a `raw_input_contents` entry of the same tensor has, so the native path
//! can queue typed requests. The rules are the general path's (`codec._buffer` in
//! python/ferroserve/codec.py: protobuf's upb decoder, then numpy), and where that path rejects
//! a request or could differ, `convert` returns None: the request is forwarded and the Python
//! server words the error. Nothing here rejects anything.
//!
//! Which field carries which datatype is Triton's rule (`InferTensorContents` in
//! protos/grpc_service.proto): BOOL in `bool_contents` (1); INT8, INT16, INT32 as int32 values
//! in `int_contents` (2); INT64 in `int64_contents` (3); UINT8, UINT16, UINT32 as uint32 values
//! in `uint_contents` (4); UINT64 in `uint64_contents` (5); FP32 in `fp32_contents` (6); FP64 in
//! `fp64_contents` (7); BYTES in `bytes_contents` (8). FP16 and BF16 have no typed field.

use std::ops::Range;

use super::{FIXED32, FIXED64, LENGTH_DELIMITED, Payload, Reader, VARINT};
use crate::DataType;

/// How the values of a datatype's typed field are encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// Varints (bool, int32, int64, uint32, uint64), packed or one per field.
    Varint,
    /// 4-byte little-endian values (float), packed or one per field.
    Fixed32,
    /// 8-byte little-endian values (double), packed or one per field.
    Fixed64,
    /// One length-delimited field per element (bytes; never packed).
    Bytes,
}

/// The `InferTensorContents` field that carries `datatype` and how it is encoded; None for FP16
/// and BF16, which have none (the general path answers "send it in raw_input_contents").
fn typed_field(datatype: DataType) -> Option<(u32, Encoding)> {
    Some(match datatype {
        DataType::Bool => (1, Encoding::Varint),
        DataType::Int8 | DataType::Int16 | DataType::Int32 => (2, Encoding::Varint),
        DataType::Int64 => (3, Encoding::Varint),
        DataType::Uint8 | DataType::Uint16 | DataType::Uint32 => (4, Encoding::Varint),
        DataType::Uint64 => (5, Encoding::Varint),
        DataType::Fp32 => (6, Encoding::Fixed32),
        DataType::Fp64 => (7, Encoding::Fixed64),
        DataType::Bytes => (8, Encoding::Bytes),
        DataType::Fp16 | DataType::Bf16 => return None,
    })
}

/// Appends one varint-encoded value of `datatype` in its raw layout, or None when the general
/// path rejects it.
///
/// protobuf reads an int32 or uint32 field from any varint by keeping its low 32 bits (upb,
/// like every protobuf runtime), and a bool as "not zero". numpy then narrows the Python ints
/// to INT8/INT16/UINT8/UINT16 with a range check (an OverflowError, which the general path
/// words as "a value does not fit INT8"), so a value out of range is left to it.
fn push_varint(out: &mut Vec<u8>, datatype: DataType, value: u64) -> Option<()> {
    // The truncations below are protobuf's decoding of int32 / uint32 fields.
    let int32 = value as u32 as i32;
    let uint32 = value as u32;
    match datatype {
        DataType::Bool => out.push(u8::from(value != 0)),
        DataType::Int8 => out.extend(i8::try_from(int32).ok()?.to_le_bytes()),
        DataType::Int16 => out.extend(i16::try_from(int32).ok()?.to_le_bytes()),
        DataType::Int32 => out.extend(int32.to_le_bytes()),
        DataType::Int64 => out.extend((value as i64).to_le_bytes()),
        DataType::Uint8 => out.extend(u8::try_from(uint32).ok()?.to_le_bytes()),
        DataType::Uint16 => out.extend(u16::try_from(uint32).ok()?.to_le_bytes()),
        DataType::Uint32 => out.extend(uint32.to_le_bytes()),
        DataType::Uint64 => out.extend(value.to_le_bytes()),
        _ => return None,
    }
    Some(())
}

/// Appends one FP32 value (its little-endian bits) as the general path returns it. protobuf's
/// Python binding hands each float to Python as a double and numpy narrows it back to float32:
/// exact for every value, except that the widening quiets a signalling NaN (IEEE 754 format
/// conversions set the quiet bit and keep the payload, on x86-64 and on AArch64 with default
/// NaN mode off, Linux's default). So a signalling NaN is quieted here too.
fn push_fp32(out: &mut Vec<u8>, bits: [u8; 4]) {
    const EXPONENT: u32 = 0x7f80_0000;
    const MANTISSA: u32 = 0x007f_ffff;
    const QUIET: u32 = 0x0040_0000;
    let mut value = u32::from_le_bytes(bits);
    if value & EXPONENT == EXPONENT && value & MANTISSA != 0 {
        value |= QUIET;
    }
    out.extend(value.to_le_bytes());
}

/// Appends the values of one occurrence of the typed field (`payload`, as read with wire type
/// `wire_type`), counting them in `count`; None when protobuf would not read them as the
/// field's values (another wire type is an unknown field to it, a packed run of the wrong
/// length a parse error), when a value is one the general path rejects, or when there are more
/// than `elements`.
fn push_values(
    out: &mut Vec<u8>,
    data: &[u8],
    datatype: DataType,
    encoding: Encoding,
    (wire_type, payload): (u64, Payload),
    count: &mut usize,
    elements: usize,
) -> Option<()> {
    let mut take = |n: usize| {
        *count = count.checked_add(n).filter(|&total| total <= elements)?;
        Some(())
    };
    match (encoding, wire_type, payload) {
        (Encoding::Varint, VARINT, Payload::Varint(value)) => {
            take(1)?;
            push_varint(out, datatype, value)?;
        }
        (Encoding::Varint, LENGTH_DELIMITED, Payload::Bytes(packed)) => {
            let mut values = Reader::new(data, packed);
            while values.at < values.end {
                take(1)?;
                push_varint(out, datatype, values.varint().ok()?)?;
            }
        }
        (Encoding::Fixed32, FIXED32, Payload::Fixed(value)) => {
            take(1)?;
            push_fp32(out, data[value].try_into().ok()?);
        }
        (Encoding::Fixed32, LENGTH_DELIMITED, Payload::Bytes(packed)) => {
            let packed = &data[packed];
            if packed.len() % 4 != 0 {
                return None;
            }
            take(packed.len() / 4)?;
            for bits in packed.chunks_exact(4) {
                push_fp32(out, bits.try_into().ok()?);
            }
        }
        // Doubles come back bit for bit: a Python float is the double protobuf read, and numpy
        // copies it.
        (Encoding::Fixed64, FIXED64, Payload::Fixed(value)) => {
            take(1)?;
            out.extend_from_slice(&data[value]);
        }
        (Encoding::Fixed64, LENGTH_DELIMITED, Payload::Bytes(packed)) => {
            if packed.len() % 8 != 0 {
                return None;
            }
            take(packed.len() / 8)?;
            out.extend_from_slice(&data[packed]);
        }
        // The general path checks every element as UTF-8 text (onnxruntime string tensors hold
        // text) after framing it in the raw layout.
        (Encoding::Bytes, LENGTH_DELIMITED, Payload::Bytes(element)) => {
            take(1)?;
            let element = &data[element];
            std::str::from_utf8(element).ok()?;
            out.extend(u32::try_from(element.len()).ok()?.to_le_bytes());
            out.extend_from_slice(element);
        }
        _ => return None,
    }
    Some(())
}

/// The raw layout of an input of `datatype` with `elements` elements whose `contents` are the
/// `InferTensorContents` messages at `messages` (protobuf merges a message field given more than
/// once: their repeated fields concatenate, in order). None, for the general path to answer,
/// unless the datatype's own typed field (packed or not) holds exactly `elements` values the
/// general path accepts and no other field is present.
///
/// Work and memory are bounded by the message: every element takes at least one byte of it, so
/// a claimed count beyond the contents' size is refused before anything is allocated, and the
/// output is at most 8 bytes per byte of contents (an INT64 or UINT64 varint of one byte; BYTES
/// at most 2, FP32 and FP64 1).
pub(super) fn convert(
    data: &[u8],
    messages: &[Range<usize>],
    datatype: DataType,
    elements: u128,
) -> Option<Vec<u8>> {
    let (field, encoding) = typed_field(datatype)?;
    let size: usize = messages.iter().map(|message| message.len()).sum();
    let elements = usize::try_from(elements).ok().filter(|&n| n <= size)?;
    // A BYTES element is 4 + n bytes raw and at least 2 + n on the wire (a tag and a length).
    let capacity = match datatype.element_size() {
        Some(itemsize) => elements.checked_mul(itemsize)?,
        None => size.checked_add(elements.checked_mul(2)?)?,
    };
    let mut out = Vec::with_capacity(capacity);
    let mut count = 0;
    for message in messages {
        let mut reader = Reader::new(data, message.clone());
        while let Some((number, wire_type, payload)) = reader.field().ok()? {
            if number != field {
                return None;
            }
            push_values(
                &mut out,
                data,
                datatype,
                encoding,
                (wire_type, payload),
                &mut count,
                elements,
            )?;
        }
    }
    (count == elements).then_some(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::wire::{
        FastSignature, InputLayout, MatchedContents, match_request, parse_infer_request, put_bytes,
        put_varint,
    };

    fn key(field: u32, wire_type: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, (u64::from(field) << 3) | wire_type);
        out
    }

    fn bytes(field: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put_bytes(&mut out, field, payload);
        out
    }

    fn varint(value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, value);
        out
    }

    /// One typed value as protobuf writes it: a varint (negative int32 and int64 values as
    /// 10-byte two's complement), 4 or 8 little-endian bytes, or a length-delimited element.
    #[derive(Debug, Clone, PartialEq)]
    enum Value {
        Varint(u64),
        Fixed(Vec<u8>),
        Element(Vec<u8>),
    }

    impl Value {
        fn payload(&self) -> Vec<u8> {
            match self {
                Value::Varint(value) => varint(*value),
                Value::Fixed(bits) => bits.clone(),
                Value::Element(element) => [varint(element.len() as u64), element.clone()].concat(),
            }
        }
    }

    /// `values` in field `field`, one field per value (unpacked), or in packed runs of
    /// `run` values (bytes are never packed).
    fn encode(field: u32, values: &[Value], run: Option<usize>) -> Vec<u8> {
        let Some(run) = run.filter(|_| !matches!(values.first(), Some(Value::Element(_)))) else {
            return values
                .iter()
                .flat_map(|value| {
                    let wire_type = match value {
                        Value::Varint(_) => VARINT,
                        Value::Fixed(bits) if bits.len() == 4 => FIXED32,
                        Value::Fixed(_) => FIXED64,
                        Value::Element(_) => LENGTH_DELIMITED,
                    };
                    [key(field, wire_type), value.payload()].concat()
                })
                .collect();
        };
        values
            .chunks(run.max(1))
            .flat_map(|chunk| {
                bytes(
                    field,
                    &chunk.iter().flat_map(Value::payload).collect::<Vec<_>>(),
                )
            })
            .collect()
    }

    /// Converts `contents` (one message) of `datatype` with `elements` elements.
    fn convert_one(contents: &[u8], datatype: DataType, elements: u128) -> Option<Vec<u8>> {
        convert(
            contents,
            std::slice::from_ref(&(0..contents.len())),
            datatype,
            elements,
        )
    }

    /// The typed values of `datatype` that `raw` (its raw layout) holds, as a client writes
    /// them, in the datatype's typed field.
    fn typed_values(datatype: DataType, raw: &[u8]) -> Vec<Value> {
        let Some(itemsize) = datatype.element_size() else {
            let mut values = Vec::new();
            crate::walk_bytes_elements(raw, usize::MAX, |_, range| {
                values.push(Value::Element(raw[range].to_vec()));
                Ok::<_, crate::TensorError>(())
            })
            .ok();
            return values;
        };
        raw.chunks_exact(itemsize)
            .map(|bits| {
                let mut wide = [0u8; 8];
                wide[..itemsize].copy_from_slice(bits);
                let unsigned = u64::from_le_bytes(wide);
                let shift = 64 - 8 * itemsize as u32;
                // Sign-extended, as protobuf writes a negative int32 or int64.
                let signed = ((unsigned << shift) as i64 >> shift) as u64;
                match datatype {
                    DataType::Fp32 | DataType::Fp64 => Value::Fixed(bits.to_vec()),
                    DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                        Value::Varint(signed)
                    }
                    _ => Value::Varint(unsigned),
                }
            })
            .collect()
    }

    const TYPED: [DataType; 12] = [
        DataType::Bool,
        DataType::Uint8,
        DataType::Uint16,
        DataType::Uint32,
        DataType::Uint64,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Fp32,
        DataType::Fp64,
        DataType::Bytes,
    ];

    /// Raw-layout bytes of `count` elements of `datatype` from `seed` bytes: every bit pattern,
    /// except that BOOL is 0 or 1, FP32 NaNs are quiet and BYTES elements are text.
    fn raw_values(datatype: DataType, seed: &[u8], count: usize) -> Vec<u8> {
        let mut bits = seed.iter().copied().cycle();
        match datatype.element_size() {
            None => crate::encode_bytes(
                (0..count)
                    .map(|i| "e\u{e9}\0x".repeat(i % 4).into_bytes())
                    .collect::<Vec<_>>()
                    .iter()
                    .map(Vec::as_slice),
            )
            .unwrap_or_default(),
            Some(itemsize) => {
                let mut raw: Vec<u8> = (0..count * itemsize)
                    .map(|_| bits.next().unwrap_or(0))
                    .collect();
                match datatype {
                    DataType::Bool => raw.iter_mut().for_each(|b| *b &= 1),
                    DataType::Fp32 => raw.chunks_exact_mut(4).for_each(|chunk| {
                        let mut quiet = Vec::new();
                        push_fp32(&mut quiet, [chunk[0], chunk[1], chunk[2], chunk[3]]);
                        chunk.copy_from_slice(&quiet);
                    }),
                    _ => {}
                }
                raw
            }
        }
    }

    #[test]
    fn every_typed_datatype_converts_to_its_raw_layout_packed_or_not() {
        let seed = [
            0x00, 0xff, 0x80, 0x7f, 0x01, 0xc0, 0x7f, 0x12, 0x34, 0xfe, 0x80, 0x00,
        ];
        for datatype in TYPED {
            let (field, _) = typed_field(datatype).expect("has a typed field");
            let raw = raw_values(datatype, &seed, 6);
            let values = typed_values(datatype, &raw);
            assert_eq!(values.len(), 6, "{datatype}");
            for run in [None, Some(1), Some(4), Some(6)] {
                let contents = encode(field, &values, run);
                assert_eq!(
                    convert_one(&contents, datatype, 6).as_deref(),
                    Some(raw.as_slice()),
                    "{datatype} {run:?}"
                );
            }
        }
    }

    #[test]
    fn reads_values_as_protobuf_does() {
        let int32 = |values: &[u64]| {
            encode(
                2,
                &values.iter().map(|&v| Value::Varint(v)).collect::<Vec<_>>(),
                None,
            )
        };
        // int32 and uint32 keep the low 32 bits of any varint; -1 comes as 5 or 10 bytes.
        let contents = int32(&[(1 << 32) + 5, u64::MAX, 0xffff_ffff]);
        let expected: Vec<u8> = [5i32, -1, -1]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(convert_one(&contents, DataType::Int32, 3), Some(expected));
        // so an INT8 value is range-checked after that truncation
        assert_eq!(
            convert_one(
                &int32(&[(1 << 32) + 0x7f, u64::MAX - 127]),
                DataType::Int8,
                2
            ),
            Some(vec![0x7f, 0x80])
        );
        let uint = encode(4, &[Value::Varint((1 << 32) + 300)], None);
        assert_eq!(
            convert_one(&uint, DataType::Uint16, 1),
            Some(300u16.to_le_bytes().to_vec())
        );
        // a bool is "not zero"
        let flags = encode(
            1,
            &[Value::Varint(2), Value::Varint(0), Value::Varint(1 << 40)],
            Some(3),
        );
        assert_eq!(convert_one(&flags, DataType::Bool, 3), Some(vec![1, 0, 1]));
        // a signalling NaN comes back quiet with its payload, a quiet NaN and FP64 as sent
        let fp32 = encode(
            6,
            &[
                Value::Fixed(0x7f80_0001u32.to_le_bytes().to_vec()),
                Value::Fixed(0xff80_0123u32.to_le_bytes().to_vec()),
                Value::Fixed(0x7fc0_0001u32.to_le_bytes().to_vec()),
            ],
            Some(3),
        );
        let expected: Vec<u8> = [0x7fc0_0001u32, 0xffc0_0123, 0x7fc0_0001]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(convert_one(&fp32, DataType::Fp32, 3), Some(expected));
        let signalling = 0x7ff0_0000_0000_0001u64.to_le_bytes().to_vec();
        let fp64 = encode(7, &[Value::Fixed(signalling.clone())], None);
        assert_eq!(convert_one(&fp64, DataType::Fp64, 1), Some(signalling));
    }

    #[test]
    fn merges_contents_given_more_than_once() {
        let first = encode(3, &[Value::Varint(1)], None);
        let second = encode(3, &[Value::Varint(u64::MAX)], Some(1));
        let data = [first.clone(), second].concat();
        let expected: Vec<u8> = [1i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            convert(
                &data,
                &[0..first.len(), first.len()..data.len()],
                DataType::Int64,
                2
            ),
            Some(expected)
        );
        // empty contents of an empty tensor
        assert_eq!(
            convert(&data, std::slice::from_ref(&(0..0)), DataType::Fp32, 0),
            Some(Vec::new())
        );
    }

    #[test]
    fn leaves_what_the_general_path_rejects_or_reads_otherwise_to_it() {
        let ints = |field: u32, values: &[i64]| {
            encode(
                field,
                &values
                    .iter()
                    .map(|&v| Value::Varint(v as u64))
                    .collect::<Vec<_>>(),
                Some(8),
            )
        };
        let floats = encode(
            6,
            &[Value::Fixed(vec![0; 4]), Value::Fixed(vec![0; 4])],
            Some(2),
        );
        let cases: Vec<(Vec<u8>, DataType, u128, &str)> = vec![
            (ints(2, &[128]), DataType::Int8, 1, "out of INT8's range"),
            (ints(2, &[-129]), DataType::Int8, 1, "out of INT8's range"),
            (
                ints(2, &[40_000]),
                DataType::Int16,
                1,
                "out of INT16's range",
            ),
            (ints(4, &[256]), DataType::Uint8, 1, "out of UINT8's range"),
            (
                ints(4, &[70_000]),
                DataType::Uint16,
                1,
                "out of UINT16's range",
            ),
            (ints(3, &[1]), DataType::Int32, 1, "INT32 in int64_contents"),
            (ints(2, &[1]), DataType::Int64, 1, "INT64 in int_contents"),
            (ints(4, &[1]), DataType::Int32, 1, "INT32 in uint_contents"),
            (floats.clone(), DataType::Fp64, 2, "FP64 in fp32_contents"),
            (floats.clone(), DataType::Fp16, 2, "FP16 has no typed field"),
            (floats.clone(), DataType::Bf16, 2, "BF16 has no typed field"),
            (
                floats.clone(),
                DataType::Fp32,
                1,
                "more values than elements",
            ),
            (
                floats.clone(),
                DataType::Fp32,
                3,
                "fewer values than elements",
            ),
            (
                [floats.clone(), ints(2, &[1])].concat(),
                DataType::Fp32,
                2,
                "another field too",
            ),
            (
                [floats.clone(), key(99, VARINT), vec![0]].concat(),
                DataType::Fp32,
                2,
                "an unknown field",
            ),
            (
                [key(6, VARINT), vec![0]].concat(),
                DataType::Fp32,
                1,
                "fp32 as a varint",
            ),
            (
                bytes(6, &[0; 6]),
                DataType::Fp32,
                1,
                "packed floats of 6 bytes",
            ),
            (
                bytes(7, &[0; 12]),
                DataType::Fp64,
                1,
                "packed doubles of 12 bytes",
            ),
            (
                bytes(2, &[0x80]),
                DataType::Int32,
                1,
                "a truncated packed varint",
            ),
            (vec![0x10], DataType::Int32, 1, "a truncated field"),
            (
                encode(8, &[Value::Element(vec![0xff])], None),
                DataType::Bytes,
                1,
                "not UTF-8",
            ),
            (
                [key(8, VARINT), vec![1]].concat(),
                DataType::Bytes,
                1,
                "bytes as a varint",
            ),
            (
                floats.clone(),
                DataType::Fp32,
                u128::MAX,
                "a count no buffer holds",
            ),
        ];
        for (contents, datatype, elements, why) in cases {
            assert_eq!(convert_one(&contents, datatype, elements), None, "{why}");
        }
    }

    /// A one-input model of `datatype` with shape [-1, -1] and a request for it, its input
    /// given as `raw` or, when `typed`, as typed contents of the same values (packed in runs of
    /// `run`).
    fn request(
        datatype: DataType,
        raw: &[u8],
        rows: i64,
        typed: Option<Option<usize>>,
    ) -> (FastSignature, Vec<u8>) {
        let signature = FastSignature {
            inputs: vec![InputLayout {
                name: "x".into(),
                datatype: datatype.as_str().into(),
                shape: vec![-1, -1],
                itemsize: datatype.element_size().unwrap_or(0),
            }],
            max_batch_size: 64,
            outputs: vec!["y".into()],
        };
        let values = typed_values(datatype, raw);
        let columns = values.len() as i64 / rows;
        let mut tensor = [bytes(1, b"x"), bytes(2, datatype.as_str().as_bytes())].concat();
        tensor.extend(bytes(
            3,
            &[varint(rows as u64), varint(columns as u64)].concat(),
        ));
        let message = match typed {
            Some(run) => {
                let (field, _) = typed_field(datatype).expect("typed");
                tensor.extend(bytes(5, &encode(field, &values, run)));
                bytes(5, &tensor)
            }
            None => [bytes(5, &tensor), bytes(7, raw)].concat(),
        };
        (signature, [bytes(1, b"m"), message].concat())
    }

    /// The bytes the native path queues for `message`: its raw input, or the converted one.
    fn queued(signature: &FastSignature, message: &[u8]) -> Option<Vec<u8>> {
        let view = parse_infer_request(message).ok()?;
        let matched = match_request(message, &view, signature)?;
        Some(match matched.contents {
            MatchedContents::Raw(ranges) => message[ranges[0].clone()].to_vec(),
            MatchedContents::Converted(mut buffers) => buffers.pop()?,
        })
    }

    #[test]
    fn the_fast_path_takes_typed_requests_but_not_mixed_ones() {
        let raw = raw_values(DataType::Fp32, &[1, 2, 3, 4, 5], 4);
        let (signature, typed) = request(DataType::Fp32, &raw, 2, Some(None));
        assert_eq!(queued(&signature, &typed), Some(raw.clone()));
        // typed contents and a raw entry for the same input
        let both = [typed.clone(), bytes(7, &raw)].concat();
        assert_eq!(queued(&signature, &both), None);
        // no contents at all where raw_input_contents is empty
        let (_, plain) = request(DataType::Fp32, &raw, 2, None);
        let view = parse_infer_request(&plain).expect("parses");
        let bare = plain[..view.raw_input_contents[0].start - 2].to_vec();
        assert_eq!(queued(&signature, &bare), None);
        // one input raw, the other typed
        let mut two = signature.clone();
        two.inputs.push(InputLayout {
            name: "x2".into(),
            ..signature.inputs[0].clone()
        });
        let second = [bytes(1, b"x2"), bytes(2, b"FP32"), bytes(3, &[2, 2])].concat();
        let typed_second = bytes(
            5,
            &[
                second.clone(),
                bytes(5, &encode(6, &typed_values(DataType::Fp32, &raw), None)),
            ]
            .concat(),
        );
        let mixed = [plain.clone(), typed_second].concat();
        assert_eq!(queued(&two, &mixed), None);
        let both_raw = [plain, bytes(5, &second), bytes(7, &raw)].concat();
        assert_eq!(queued(&two, &both_raw), Some(raw));
    }

    fn datatype() -> impl Strategy<Value = DataType> {
        proptest::sample::select(TYPED.to_vec())
    }

    proptest! {
        /// Raw and typed contents of the same values (packed in runs of any length or
        /// unpacked) queue identical bytes, for every datatype with a typed field.
        #[test]
        fn raw_and_typed_contents_queue_identical_bytes(
            datatype in datatype(),
            seed in proptest::collection::vec(any::<u8>(), 1..64),
            rows in 1i64..4,
            columns in 0usize..40,
            run in proptest::option::of(1usize..50),
        ) {
            let raw = raw_values(datatype, &seed, rows as usize * columns);
            let (signature, raw_request) = request(datatype, &raw, rows, None);
            let (_, typed_request) = request(datatype, &raw, rows, Some(run));
            let from_raw = queued(&signature, &raw_request);
            prop_assert_eq!(from_raw.as_deref(), Some(raw.as_slice()));
            prop_assert_eq!(queued(&signature, &typed_request), from_raw);
        }

        /// Whatever a contents message holds, conversion never panics, and what it returns
        /// is the raw layout's size and at most 8 bytes per byte of contents.
        #[test]
        fn any_contents_convert_within_bounds_or_not_at_all(
            datatype in datatype(),
            contents in proptest::collection::vec(any::<u8>(), 0..200),
            elements in 0u128..300,
        ) {
            if let Some(raw) = convert_one(&contents, datatype, elements) {
                prop_assert!(raw.len() <= 8 * contents.len());
                match datatype.element_size() {
                    Some(itemsize) => prop_assert_eq!(raw.len() as u128, elements * itemsize as u128),
                    None => prop_assert!(
                        crate::walk_bytes_elements(&raw, elements as usize, |_, _| Ok::<_, crate::TensorError>(())).is_ok()
                    ),
                }
            }
        }
    }
}
