//! Reading a serialized `ModelInferResponse` (or the `infer_response` of a
//! `ModelStreamInferResponse`) as ranges into the message: what the front end needs to compare
//! a shadow version's answer with the one the client got. Off the request path (shadowed
//! requests only, after their answer is sent).

use std::ops::Range;

use super::{Payload, Reader, WireError, bytes_field, string_field};

/// One `InferOutputTensor` of a response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutputTensorView {
    /// `name` (field 1).
    pub name: Range<usize>,
    /// `datatype` (field 2).
    pub datatype: Range<usize>,
    /// `shape` (field 3), packed or not.
    pub shape: Vec<i64>,
    /// Whether typed `contents` (field 5) were given instead of a raw entry.
    pub typed: bool,
}

/// A `ModelInferResponse` as ranges into the message it was read from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InferResponseView {
    /// `model_version` (2).
    pub model_version: Range<usize>,
    /// `outputs` (5), in message order.
    pub outputs: Vec<OutputTensorView>,
    /// `raw_output_contents` (6), in message order.
    pub raw_output_contents: Vec<Range<usize>>,
}

/// Parses a serialized `ModelInferResponse`; with `stream`, a `ModelStreamInferResponse` whose
/// `infer_response` (field 2) it reads (an empty one when absent).
pub fn parse_infer_response(data: &[u8], stream: bool) -> Result<InferResponseView, WireError> {
    let mut range = 0..data.len();
    if stream {
        let mut reader = Reader::new(data, range);
        range = 0..0;
        while let Some((field, wire_type, payload)) = reader.field()? {
            if field == 2 {
                range = bytes_field(field, wire_type, payload)?;
            }
        }
    }
    let mut response = InferResponseView::default();
    let mut reader = Reader::new(data, range);
    while let Some((field, wire_type, payload)) = reader.field()? {
        match field {
            2 => response.model_version = string_field(data, field, wire_type, payload)?,
            5 => {
                let range = bytes_field(field, wire_type, payload)?;
                response.outputs.push(parse_output_tensor(data, range)?);
            }
            6 => response
                .raw_output_contents
                .push(bytes_field(field, wire_type, payload)?),
            _ => {}
        }
    }
    Ok(response)
}

fn parse_output_tensor(data: &[u8], range: Range<usize>) -> Result<OutputTensorView, WireError> {
    let mut output = OutputTensorView::default();
    let mut reader = Reader::new(data, range);
    while let Some((field, wire_type, payload)) = reader.field()? {
        match field {
            1 => output.name = string_field(data, field, wire_type, payload)?,
            2 => output.datatype = string_field(data, field, wire_type, payload)?,
            3 => match payload {
                // int64 as a varint: negative values are 10-byte two's complement.
                Payload::Varint(value) => output.shape.push(value as i64),
                Payload::Bytes(packed) => {
                    let mut values = Reader::new(data, packed);
                    while values.at < values.end {
                        output.shape.push(values.varint()? as i64);
                    }
                }
                Payload::Fixed(_) => return Err(WireError::WrongWireType { field, wire_type }),
            },
            5 => output.typed = true,
            _ => {}
        }
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ResponseOutput, encode_infer_response};

    #[test]
    fn reads_what_the_encoder_writes() {
        let first = [1.0f32, 2.0].map(f32::to_le_bytes).concat();
        let second = [7u8, 8, 9];
        let outputs = [
            ResponseOutput {
                name: "y",
                datatype: "FP32",
                shape: &[1, 2],
                raw: &first,
            },
            ResponseOutput {
                name: "z",
                datatype: "UINT8",
                shape: &[3],
                raw: &second,
            },
        ];
        for stream in [false, true] {
            let message = encode_infer_response(b"m", b"3", b"id", &outputs, stream);
            let view = parse_infer_response(&message, stream).expect("parses");
            assert_eq!(&message[view.model_version.clone()], b"3");
            let names: Vec<&[u8]> = view
                .outputs
                .iter()
                .map(|o| &message[o.name.clone()])
                .collect();
            assert_eq!(names, [b"y".as_slice(), b"z"]);
            assert_eq!(&message[view.outputs[0].datatype.clone()], b"FP32");
            assert_eq!(view.outputs[0].shape, [1, 2]);
            assert_eq!(view.outputs[1].shape, [3]);
            assert_eq!(
                &message[view.raw_output_contents[0].clone()],
                first.as_slice()
            );
            assert_eq!(
                &message[view.raw_output_contents[1].clone()],
                second.as_slice()
            );
        }
    }

    #[test]
    fn truncated_messages_are_errors() {
        let raw = [0u8; 4];
        let outputs = [ResponseOutput {
            name: "y",
            datatype: "FP32",
            shape: &[1],
            raw: &raw,
        }];
        let message = encode_infer_response(b"m", b"1", b"", &outputs, false);
        for end in 1..message.len() {
            // Every prefix either parses as fewer fields or fails: never a panic.
            let _ = parse_infer_response(&message[..end], false);
        }
        assert!(parse_infer_response(&message[..message.len() - 1], false).is_err());
    }
}
