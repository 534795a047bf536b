//! The protobuf wire format of the two messages on the inference hot path, read and written
//! directly: `ModelInferRequest` is parsed into byte ranges of the received message (no copy
//! of any tensor), and `ModelInferResponse` (optionally wrapped in a
//! `ModelStreamInferResponse`) is written in one buffer. Field numbers are those of
//! `protos/grpc_service.proto` (Triton's). Everything else on the protocol goes through the
//! generated protobuf classes; this module only exists because those cost more per request
//! than the model call for small models.

use std::ops::Range;

use thiserror::Error;

use crate::DataType;

mod contents;
mod response;

pub use response::{InferResponseView, OutputTensorView, parse_infer_response};

/// Why a message could not be read as a `ModelInferRequest`.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// The message ends inside a field.
    #[error("message truncated at byte {0}")]
    Truncated(usize),
    /// A varint longer than 10 bytes.
    #[error("malformed varint at byte {0}")]
    BadVarint(usize),
    /// A tag with field number 0 or wider than 32 bits.
    #[error("invalid field number at byte {0}")]
    BadFieldNumber(usize),
    /// A wire type protobuf does not define (or a deprecated group).
    #[error("unsupported wire type {wire_type} at byte {at}")]
    BadWireType {
        /// The wire type found.
        wire_type: u64,
        /// Where its tag starts.
        at: usize,
    },
    /// A string field that is not UTF-8.
    #[error("field {0} is not valid UTF-8")]
    NotUtf8(u32),
    /// More entries of a repeated field than the reader takes.
    #[error("too many entries of field {0}")]
    TooMany(u32),
    /// A known field with the wrong wire type.
    #[error("field {field} has wire type {wire_type}")]
    WrongWireType {
        /// The field number.
        field: u32,
        /// The wire type found.
        wire_type: u64,
    },
}

/// One `InferInputTensor`: ranges into the parsed message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InputTensorView {
    /// `name` (field 1).
    pub name: Range<usize>,
    /// `datatype` (field 2).
    pub datatype: Range<usize>,
    /// `shape` (field 3), packed or not.
    pub shape: Vec<i64>,
    /// `contents` (field 5), typed values instead of a `raw_input_contents` entry: the range
    /// of each time it is given, in message order (protobuf merges them). Empty when absent;
    /// one empty range when present but empty.
    pub contents: Vec<Range<usize>>,
}

/// One `InferRequestedOutputTensor`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestedOutputView {
    /// `name` (field 1).
    pub name: Range<usize>,
    /// Whether its `parameters` (field 2) hold one the fast path does not take: the
    /// classification extension (answered by the general path), or a malformed entry. Other
    /// keys are ignored on both paths.
    pub has_parameters: bool,
}

/// A `ModelInferRequest` as ranges into the message it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InferRequestView {
    /// `model_name` (1).
    pub model_name: Range<usize>,
    /// `model_version` (2).
    pub model_version: Range<usize>,
    /// `id` (3).
    pub id: Range<usize>,
    /// Whether request `parameters` (4) hold one the fast path leaves to the general path:
    /// `priority` or `timeout` with a value it cannot use, or a malformed entry. Other keys
    /// are ignored on both paths.
    pub has_parameters: bool,
    /// The `priority` parameter (Triton's scheduling level; uint64 or non-negative int64), 0
    /// when absent.
    pub priority: u64,
    /// The `timeout` parameter, the request's own queue timeout in microseconds (uint64 or
    /// non-negative int64), 0 when absent.
    pub timeout_us: u64,
    /// Triton's sequence parameters, read for a model with a sequence batcher; every other
    /// model ignores them, as Triton's ONNX backend does.
    pub sequence: SequenceParameters,
    /// `inputs` (5), in message order: each entry's range, read by `input` when needed (only
    /// the first `MAX_REQUEST_TENSORS`; `counts` has them all).
    pub inputs: Vec<Range<usize>>,
    /// `outputs` (6), the outputs asked for (empty means all): each entry's range, read by
    /// `output` (the first `MAX_REQUEST_TENSORS`).
    pub outputs: Vec<Range<usize>>,
    /// `raw_input_contents` (7), in message order (the first `MAX_REQUEST_TENSORS`).
    pub raw_input_contents: Vec<Range<usize>>,
    /// How many entries each repeated field has.
    pub counts: EntryCounts,
}

/// A request's `sequence_id`, `sequence_start` and `sequence_end` parameters (tritonclient's
/// `sequence_id=`, `sequence_start=`, `sequence_end=`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SequenceParameters {
    /// `sequence_id`: an int64 or uint64 (as its 64 bits, as Triton reads it) or a string;
    /// None when absent.
    pub id: Option<SequenceIdView>,
    /// `sequence_start` (a bool).
    pub start: bool,
    /// `sequence_end` (a bool).
    pub end: bool,
    /// One of them had a value of another type: a sequence model refuses the request.
    pub malformed: bool,
}

/// A `sequence_id` as the request carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceIdView {
    /// An integer id.
    Number(u64),
    /// A string id: its range in the message (UTF-8, checked).
    Text(Range<usize>),
}

/// Entries of each repeated field of a `ModelInferRequest`, all of them counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EntryCounts {
    /// `parameters` (4).
    pub parameters: usize,
    /// `inputs` (5).
    pub inputs: usize,
    /// `outputs` (6).
    pub outputs: usize,
    /// `raw_input_contents` (7).
    pub raw_input_contents: usize,
}

/// The most entries of any repeated field a request may have (`parameters`, `inputs`,
/// `outputs`, `raw_input_contents`). Each entry can be two bytes on the wire and cost a
/// protobuf parser a hundred in memory, so more are refused before any parser builds them
/// (docs/security.md); no model has this many tensors.
pub const MAX_REQUEST_TENSORS: usize = 4096;

/// Entries of one input's typed `contents` the fast path reads (protobuf merges them; a
/// client sends one).
const MAX_CONTENTS_ENTRIES: usize = 64;

impl InferRequestView {
    /// The repeated field with more than `MAX_REQUEST_TENSORS` entries, and how many it has.
    pub fn excess(&self) -> Option<(&'static str, usize)> {
        let counts = self.counts;
        [
            ("parameters", counts.parameters),
            ("inputs", counts.inputs),
            ("outputs", counts.outputs),
            ("raw_input_contents", counts.raw_input_contents),
        ]
        .into_iter()
        .find(|&(_, count)| count > MAX_REQUEST_TENSORS)
    }

    /// Input `index` of `data` (the message this view was parsed from), read in full.
    pub fn input(&self, data: &[u8], index: usize) -> Result<InputTensorView, WireError> {
        parse_input(data, self.inputs[index].clone(), usize::MAX)
    }

    /// Requested output `index` of `data`.
    pub fn output(&self, data: &[u8], index: usize) -> Result<RequestedOutputView, WireError> {
        parse_output(data, self.outputs[index].clone())
    }
}

/// Keeps `range` in `ranges` unless the field has `MAX_REQUEST_TENSORS` kept already; counts
/// it either way.
fn keep(ranges: &mut Vec<Range<usize>>, count: &mut usize, range: Range<usize>) {
    *count += 1;
    if ranges.len() < MAX_REQUEST_TENSORS {
        ranges.push(range);
    }
}

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LENGTH_DELIMITED: u64 = 2;
const FIXED32: u64 = 5;

/// Reads one message's fields: (field number, wire type, payload) where the payload of a
/// length-delimited field is its range and that of a varint its value.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
    end: usize,
}

#[derive(Clone)]
enum Payload {
    Varint(u64),
    Bytes(Range<usize>),
    /// A 4- or 8-byte value: its range.
    Fixed(Range<usize>),
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8], range: Range<usize>) -> Self {
        Reader {
            data,
            at: range.start,
            end: range.end,
        }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let start = self.at;
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            if self.at >= self.end {
                return Err(WireError::Truncated(self.at));
            }
            let byte = self.data[self.at];
            self.at += 1;
            // The 10th byte holds bit 63 only: more would not fit 64 bits (strict protobuf
            // parsers refuse it, so the fast path does too).
            if shift == 63 && byte > 1 {
                return Err(WireError::BadVarint(start));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(WireError::BadVarint(start))
    }

    fn skip(&mut self, bytes: usize) -> Result<Range<usize>, WireError> {
        let start = self.at;
        let end = start
            .checked_add(bytes)
            .filter(|&end| end <= self.end)
            .ok_or(WireError::Truncated(self.end))?;
        self.at = end;
        Ok(start..end)
    }

    /// The next field, or None at the end.
    fn field(&mut self) -> Result<Option<(u32, u64, Payload)>, WireError> {
        if self.at >= self.end {
            return Ok(None);
        }
        let tag_at = self.at;
        let key = self.varint()?;
        let wire_type = key & 7;
        // A tag is 32 bits and field 0 does not exist: protobuf refuses the message.
        let field = u32::try_from(key)
            .ok()
            .map(|key| key >> 3)
            .filter(|&field| field != 0)
            .ok_or(WireError::BadFieldNumber(tag_at))?;
        let payload = match wire_type {
            VARINT => Payload::Varint(self.varint()?),
            FIXED64 => Payload::Fixed(self.skip(8)?),
            LENGTH_DELIMITED => {
                let length = usize::try_from(self.varint()?).unwrap_or(usize::MAX);
                Payload::Bytes(self.skip(length)?)
            }
            FIXED32 => Payload::Fixed(self.skip(4)?),
            _ => {
                return Err(WireError::BadWireType {
                    wire_type,
                    at: tag_at,
                });
            }
        };
        Ok(Some((field, wire_type, payload)))
    }
}

fn bytes_field(field: u32, wire_type: u64, payload: Payload) -> Result<Range<usize>, WireError> {
    match payload {
        Payload::Bytes(range) => Ok(range),
        _ => Err(WireError::WrongWireType { field, wire_type }),
    }
}

fn string_field(
    data: &[u8],
    field: u32,
    wire_type: u64,
    payload: Payload,
) -> Result<Range<usize>, WireError> {
    let range = bytes_field(field, wire_type, payload)?;
    std::str::from_utf8(&data[range.clone()]).map_err(|_| WireError::NotUtf8(field))?;
    Ok(range)
}

/// Reads one `InferInputTensor`; `max_dims` bounds what its shape may hold (the fast path
/// passes the signature's largest rank, so a shape of a million dims costs no memory):
/// `TooMany` past it.
fn parse_input(
    data: &[u8],
    range: Range<usize>,
    max_dims: usize,
) -> Result<InputTensorView, WireError> {
    let mut input = InputTensorView::default();
    let mut reader = Reader::new(data, range);
    let dim = |input: &mut InputTensorView, value: u64| {
        if input.shape.len() >= max_dims {
            return Err(WireError::TooMany(3));
        }
        // int64 as a varint: negative values are 10-byte two's complement.
        input.shape.push(value as i64);
        Ok(())
    };
    while let Some((field, wire_type, payload)) = reader.field()? {
        match field {
            1 => input.name = string_field(data, field, wire_type, payload)?,
            2 => input.datatype = string_field(data, field, wire_type, payload)?,
            3 => match payload {
                Payload::Varint(value) => dim(&mut input, value)?,
                Payload::Bytes(packed) => {
                    let mut values = Reader::new(data, packed);
                    while values.at < values.end {
                        dim(&mut input, values.varint()?)?;
                    }
                }
                Payload::Fixed(_) => return Err(WireError::WrongWireType { field, wire_type }),
            },
            5 => {
                if input.contents.len() >= MAX_CONTENTS_ENTRIES {
                    return Err(WireError::TooMany(5));
                }
                input.contents.push(bytes_field(field, wire_type, payload)?);
            }
            _ => {} // parameters (4) and unknown fields: not needed on the hot path
        }
    }
    Ok(input)
}

fn parse_output(data: &[u8], range: Range<usize>) -> Result<RequestedOutputView, WireError> {
    let mut output = RequestedOutputView::default();
    let mut reader = Reader::new(data, range);
    while let Some((field, wire_type, payload)) = reader.field()? {
        match field {
            1 => output.name = string_field(data, field, wire_type, payload)?,
            2 => {
                let entry = bytes_field(field, wire_type, payload)?;
                // The general path reads only `classification` (Triton's classification
                // extension, answered there) and ignores the rest, as Triton's ONNX backend
                // does (`binary_data` is an HTTP key).
                match parameter_entry(data, entry) {
                    Some((key, _)) if data[key.clone()] != *b"classification" => {}
                    _ => output.has_parameters = true,
                }
            }
            _ => {}
        }
    }
    Ok(output)
}

/// `InferParameter.int64_param`: Triton reads `priority` and `timeout` from it or from
/// `uint64_param`.
const INT64_PARAM: u32 = 2;
/// `InferParameter.string_param`: protobuf refuses a message whose string is not UTF-8.
const STRING_PARAM: u32 = 3;
/// `InferParameter.uint64_param`.
const UINT64_PARAM: u32 = 5;

/// What one request parameter (a `parameters` map entry) means to the fast path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Parameter {
    /// A key the server does not read (a custom parameter, `sequence_id` for a model without a
    /// sequence batcher, perf_analyzer's `triton_enable_empty_final_response`, which only asks
    /// decoupled models for an empty final response): ignored on both paths, as Triton's ONNX
    /// backend ignores it.
    Ignorable,
    /// `priority` with a usable value.
    Priority(u64),
    /// `timeout` (µs) with a usable value.
    Timeout(u64),
    /// `sequence_id`, `sequence_start` or `sequence_end`.
    Sequence(SequenceParameter),
    /// `priority` or `timeout` with a value of another type or a negative one, or a malformed
    /// entry: the general path words the error.
    Other,
}

/// One of Triton's sequence parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SequenceParameter {
    /// `sequence_id`.
    Id(SequenceIdView),
    /// `sequence_start`.
    Start(bool),
    /// `sequence_end`.
    End(bool),
    /// One of them with a value of another type.
    Malformed,
}

/// `InferParameter.bool_param`.
const BOOL_PARAM: u32 = 1;

/// An `InferParameter`'s oneof as last set: its field number, with its value when it is a
/// varint, or its range when it is length-delimited.
type ParameterChoice = Option<(u32, ChoiceValue)>;

/// The value of an `InferParameter`'s oneof.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ChoiceValue {
    /// A varint (bool, int64, uint64).
    Varint(u64),
    /// A length-delimited value (string).
    Bytes(Range<usize>),
    /// A fixed-width one (double).
    Fixed,
}

/// Reads the `parameters` map entry at `entry` (key = 1, value = 2, an `InferParameter`) as
/// protobuf does: the key's range, and the value's oneof as last set (a message field given
/// twice is merged, so a later choice wins): its field number, with its value when it is a
/// varint. None when protobuf would refuse the message (malformed, a key or string value that
/// is not UTF-8).
fn parameter_entry(data: &[u8], entry: Range<usize>) -> Option<(Range<usize>, ParameterChoice)> {
    let mut reader = Reader::new(data, entry);
    let mut key = 0..0;
    let mut choice = None;
    while let Some((field, wire_type, payload)) = reader.field().ok()? {
        match (field, payload) {
            (1, payload) => key = string_field(data, 1, wire_type, payload).ok()?,
            (2, Payload::Bytes(value)) => parameter_choice(data, value, &mut choice).ok()?,
            (2, _) => return None,
            _ => {}
        }
    }
    Some((key, choice))
}

/// Reads a request parameter entry: see `Parameter`.
fn parameter(data: &[u8], entry: Range<usize>) -> Parameter {
    let Some((key, choice)) = parameter_entry(data, entry) else {
        return Parameter::Other;
    };
    let key = &data[key];
    if key != b"priority" && key != b"timeout" {
        return match key
            .strip_prefix(b"sequence_")
            .and_then(|name| sequence_parameter(name, choice))
        {
            Some(sequence) => Parameter::Sequence(sequence),
            None => Parameter::Ignorable,
        };
    }
    let value = match choice {
        // A negative int64 is an error the general path words.
        Some((INT64_PARAM, ChoiceValue::Varint(value))) if i64::try_from(value).is_ok() => value,
        Some((UINT64_PARAM, ChoiceValue::Varint(value))) => value,
        _ => return Parameter::Other,
    };
    if key == b"priority" {
        Parameter::Priority(value)
    } else {
        Parameter::Timeout(value)
    }
}

/// `sequence_<name>` with value `choice`: Triton's grpc front end takes `sequence_id` as an
/// int64 (a uint64 too) or a string, `sequence_start` and `sequence_end` as bools; any other
/// `sequence_` key is ignored like every unknown key (None).
fn sequence_parameter(name: &[u8], choice: ParameterChoice) -> Option<SequenceParameter> {
    Some(match (name, choice) {
        (b"id", Some((INT64_PARAM | UINT64_PARAM, ChoiceValue::Varint(id)))) => {
            SequenceParameter::Id(SequenceIdView::Number(id))
        }
        (b"id", Some((STRING_PARAM, ChoiceValue::Bytes(text)))) => {
            SequenceParameter::Id(SequenceIdView::Text(text))
        }
        (b"start", Some((BOOL_PARAM, ChoiceValue::Varint(flag)))) => {
            SequenceParameter::Start(flag != 0)
        }
        (b"end", Some((BOOL_PARAM, ChoiceValue::Varint(flag)))) => {
            SequenceParameter::End(flag != 0)
        }
        (b"id" | b"start" | b"end", _) => SequenceParameter::Malformed,
        _ => return None,
    })
}

/// Reads an `InferParameter` at `range` into `choice`: its oneof field (1 to 5) as last set,
/// with the value when it is a varint. Unknown fields are skipped, as protobuf does; a
/// `string_param` must be UTF-8.
fn parameter_choice(
    data: &[u8],
    range: Range<usize>,
    choice: &mut ParameterChoice,
) -> Result<(), WireError> {
    let mut reader = Reader::new(data, range);
    while let Some((field, wire_type, payload)) = reader.field()? {
        if field == STRING_PARAM && wire_type == LENGTH_DELIMITED {
            string_field(data, field, wire_type, payload.clone())?;
        }
        if (1..=5).contains(&field) {
            let value = match payload {
                Payload::Varint(value) => ChoiceValue::Varint(value),
                Payload::Bytes(range) => ChoiceValue::Bytes(range),
                Payload::Fixed(_) => ChoiceValue::Fixed,
            };
            *choice = Some((field, value));
        }
    }
    Ok(())
}

/// Parses a serialized `ModelInferRequest`'s top level. Repeated scalar fields are read packed
/// or not; for a singular field given twice the last one wins, as in every protobuf parser.
/// The `inputs` and `outputs` entries are kept as ranges, read when matched: the parse
/// allocates a few vectors of ranges (at most 16 bytes per entry of at least 2 bytes), never
/// per nested field.
pub fn parse_infer_request(data: &[u8]) -> Result<InferRequestView, WireError> {
    let mut request = InferRequestView::default();
    let mut reader = Reader::new(data, 0..data.len());
    while let Some((field, wire_type, payload)) = reader.field()? {
        match field {
            1 => request.model_name = string_field(data, field, wire_type, payload)?,
            2 => request.model_version = string_field(data, field, wire_type, payload)?,
            3 => request.id = string_field(data, field, wire_type, payload)?,
            4 => {
                let entry = bytes_field(field, wire_type, payload)?;
                request.counts.parameters += 1;
                match parameter(data, entry) {
                    Parameter::Ignorable => {}
                    Parameter::Priority(priority) => request.priority = priority,
                    Parameter::Timeout(timeout_us) => request.timeout_us = timeout_us,
                    Parameter::Sequence(parameter) => {
                        let sequence = &mut request.sequence;
                        match parameter {
                            SequenceParameter::Id(id) => sequence.id = Some(id),
                            SequenceParameter::Start(start) => sequence.start = start,
                            SequenceParameter::End(end) => sequence.end = end,
                            SequenceParameter::Malformed => sequence.malformed = true,
                        }
                    }
                    Parameter::Other => request.has_parameters = true,
                }
            }
            5 => {
                let range = bytes_field(field, wire_type, payload)?;
                keep(&mut request.inputs, &mut request.counts.inputs, range);
            }
            6 => {
                let range = bytes_field(field, wire_type, payload)?;
                keep(&mut request.outputs, &mut request.counts.outputs, range);
            }
            7 => {
                let range = bytes_field(field, wire_type, payload)?;
                let count = &mut request.counts.raw_input_contents;
                keep(&mut request.raw_input_contents, count, range);
            }
            _ => {}
        }
    }
    Ok(request)
}

/// What the fast path checks one input against (precomputed once per model version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputLayout {
    /// Input name.
    pub name: String,
    /// v2 datatype name.
    pub datatype: String,
    /// Client-visible shape, -1 where any size is accepted (the batch dim among them).
    pub shape: Vec<i64>,
    /// Bytes per element; 0 for BYTES, whose elements each carry their length (every
    /// element's prefix and text are checked; see `bytes_input_fits`).
    pub itemsize: usize,
}

/// A model version's signature as the fast path sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastSignature {
    /// Inputs in signature order.
    pub inputs: Vec<InputLayout>,
    /// Triton's max_batch_size; 0 when the model has no batch dim.
    pub max_batch_size: i64,
    /// Output names in signature order.
    pub outputs: Vec<String>,
}

/// A request the fast path accepted: per input (signature order) its shape and where its bytes
/// are, and the outputs wanted (indices into the signature's outputs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// Shapes of the inputs, in signature order (the request may send them in any order).
    pub shapes: Vec<Vec<i64>>,
    /// The inputs' bytes in the raw layout.
    pub contents: MatchedContents,
    /// Requested outputs, all of them by default.
    pub wanted: Vec<usize>,
}

/// Where a matched request's input bytes are. A request sends raw contents for every input or
/// typed contents for every input (the general path rejects a mix), so this is per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchedContents {
    /// The ranges of the view's `raw_input_contents` in signature order, to be used in place.
    Raw(Vec<Range<usize>>),
    /// Typed `contents` converted to the raw layout: one buffer per input, in signature order.
    Converted(Vec<Vec<u8>>),
}

/// Whether `raw` holds exactly `elements` BYTES elements, each UTF-8 text: what the general path
/// accepts (onnxruntime string tensors hold text), checked element by element without
/// allocating, so every malformed input is left to the general path to word.
fn bytes_input_fits(raw: &[u8], elements: u128) -> bool {
    let Ok(elements) = usize::try_from(elements) else {
        return false;
    };
    crate::walk_bytes_elements(raw, elements, |index, range| {
        std::str::from_utf8(&raw[range])
            .map(drop)
            .map_err(|error| crate::TensorError::NotUtf8 {
                index,
                valid_up_to: error.valid_up_to(),
            })
    })
    .is_ok()
}

/// Whether the raw contents `raw` of an input laid out as `layout` hold exactly `elements`
/// valid elements.
fn raw_input_fits(raw: &[u8], layout: &InputLayout, elements: u128) -> bool {
    match layout.itemsize {
        0 => bytes_input_fits(raw, elements),
        itemsize => elements.saturating_mul(itemsize as u128) == raw.len() as u128,
    }
}

/// Accepts the common request: request parameters it can read or ignore, inputs by the
/// signature's names (in any order) with valid shapes, all of them raw with the right byte
/// sizes (BYTES: well-formed elements of UTF-8 text) or all of them typed `contents` that
/// convert to the raw layout as the general path would convert them (`contents::convert`),
/// requested outputs by known names without the classification parameter. None sends the request to the general path, which handles
/// every other case and words every error; the fast path never rejects anything itself.
pub fn match_request(
    data: &[u8],
    view: &InferRequestView,
    signature: &FastSignature,
) -> Option<Matched> {
    let layouts = &signature.inputs;
    // The general path's rule: raw contents for every input, or for none (then typed ones).
    let typed = view.raw_input_contents.is_empty();
    if view.has_parameters
        || view.excess().is_some()
        || view.counts.inputs != layouts.len()
        || (!typed && view.counts.raw_input_contents != layouts.len())
    {
        return None;
    }
    // Read only now, as many as the signature has, none with more dims than its largest rank.
    let max_dims = layouts.iter().map(|layout| layout.shape.len()).max()?;
    let inputs: Vec<InputTensorView> = view
        .inputs
        .iter()
        .map(|range| parse_input(data, range.clone(), max_dims))
        .collect::<Result<_, _>>()
        .ok()?;
    let batches = signature.max_batch_size > 0;
    // Dim 0 of the inputs seen so far: every input must share it.
    let mut rows = -1;
    let mut shapes = Vec::with_capacity(layouts.len());
    // Allocated only for a typed request: the raw path's inputs stay in the message.
    let mut converted = Vec::new();
    // The raw inputs' ranges in signature order (inputs may come in any order).
    let mut raw_ranges = Vec::with_capacity(if typed { 0 } else { layouts.len() });
    for (position, layout) in layouts.iter().enumerate() {
        // The input named like the layout: usually at the same position. The counts are equal
        // and the layouts' names distinct, so each input is found once or a name is missing.
        let named = |input: &InputTensorView| data[input.name.clone()] == *layout.name.as_bytes();
        let index = if inputs.get(position).is_some_and(named) {
            position
        } else {
            inputs.iter().position(named)?
        };
        let input = &inputs[index];
        let has_contents = !input.contents.is_empty();
        if has_contents != typed
            || data[input.datatype.clone()] != *layout.datatype.as_bytes()
            || input.shape.len() != layout.shape.len()
        {
            return None;
        }
        let mut elements = 1u128;
        for (&want, &got) in layout.shape.iter().zip(&input.shape) {
            if got < 0 || (want != -1 && want != got) {
                return None;
            }
            elements = elements.saturating_mul(got as u128);
        }
        if typed {
            let datatype: DataType = layout.datatype.parse().ok()?;
            converted.push(contents::convert(
                data,
                &input.contents,
                datatype,
                elements,
            )?);
        } else {
            let raw = view.raw_input_contents[index].clone();
            if !raw_input_fits(&data[raw.clone()], layout, elements) {
                return None;
            }
            raw_ranges.push(raw);
        }
        if batches {
            let first = *input.shape.first()?;
            if !(1..=signature.max_batch_size).contains(&first) || (rows != -1 && rows != first) {
                return None;
            }
            rows = first;
        }
        shapes.push(input.shape.clone());
    }
    let wanted = if view.outputs.is_empty() {
        (0..signature.outputs.len()).collect()
    } else {
        let mut wanted = Vec::with_capacity(view.outputs.len());
        for range in &view.outputs {
            let output = parse_output(data, range.clone()).ok()?;
            if output.has_parameters {
                return None;
            }
            let name = &data[output.name.clone()];
            wanted.push(
                signature
                    .outputs
                    .iter()
                    .position(|o| o.as_bytes() == name)?,
            );
        }
        wanted
    };
    let contents = if typed {
        MatchedContents::Converted(converted)
    } else {
        MatchedContents::Raw(raw_ranges)
    };
    Some(Matched {
        shapes,
        contents,
        wanted,
    })
}

/// One output of a `ModelInferResponse`: its metadata and raw little-endian contents.
#[derive(Debug, Clone, Copy)]
pub struct ResponseOutput<'a> {
    /// Output name.
    pub name: &'a str,
    /// v2 datatype name.
    pub datatype: &'a str,
    /// Client-visible shape.
    pub shape: &'a [i64],
    /// `raw_output_contents` entry.
    pub raw: &'a [u8],
}

fn varint_len(mut value: u64) -> usize {
    let mut length = 1;
    while value >= 0x80 {
        value >>= 7;
        length += 1;
    }
    length
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn field_len(field: u32, payload: usize) -> usize {
    varint_len(u64::from(field) << 3) + varint_len(payload as u64) + payload
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(out, (u64::from(field) << 3) | LENGTH_DELIMITED);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// `put_bytes` for proto3 singular strings: an empty one is not written.
fn put_string(out: &mut Vec<u8>, field: u32, text: &[u8]) {
    if !text.is_empty() {
        put_bytes(out, field, text);
    }
}

fn string_len(field: u32, text: &[u8]) -> usize {
    if text.is_empty() {
        0
    } else {
        field_len(field, text.len())
    }
}

fn shape_payload_len(shape: &[i64]) -> usize {
    shape.iter().map(|&d| varint_len(d as u64)).sum()
}

fn response_output_len(output: &ResponseOutput<'_>) -> usize {
    let shape = shape_payload_len(output.shape);
    string_len(1, output.name.as_bytes())
        + string_len(2, output.datatype.as_bytes())
        + if shape == 0 { 0 } else { field_len(3, shape) }
}

/// Writes a serialized `ModelInferResponse` (or, with `stream`, a `ModelStreamInferResponse`
/// whose `infer_response` it is) with raw output contents. Byte-for-byte what protobuf's own
/// serializer writes for the same message (fields in number order, packed shapes).
pub fn encode_infer_response(
    model_name: &[u8],
    model_version: &[u8],
    id: &[u8],
    outputs: &[ResponseOutput<'_>],
    stream: bool,
) -> Vec<u8> {
    let tensors: Vec<usize> = outputs.iter().map(response_output_len).collect();
    let body = string_len(1, model_name)
        + string_len(2, model_version)
        + string_len(3, id)
        + tensors.iter().map(|&len| field_len(5, len)).sum::<usize>()
        + outputs
            .iter()
            .map(|o| field_len(6, o.raw.len()))
            .sum::<usize>();
    let mut out = Vec::with_capacity(body + if stream { field_len(2, body) } else { 0 });
    if stream {
        put_varint(&mut out, (2 << 3) | LENGTH_DELIMITED);
        put_varint(&mut out, body as u64);
    }
    put_string(&mut out, 1, model_name);
    put_string(&mut out, 2, model_version);
    put_string(&mut out, 3, id);
    for (output, &length) in outputs.iter().zip(&tensors) {
        put_varint(&mut out, (5 << 3) | LENGTH_DELIMITED);
        put_varint(&mut out, length as u64);
        put_string(&mut out, 1, output.name.as_bytes());
        put_string(&mut out, 2, output.datatype.as_bytes());
        let shape = shape_payload_len(output.shape);
        if shape > 0 {
            put_varint(&mut out, (3 << 3) | LENGTH_DELIMITED);
            put_varint(&mut out, shape as u64);
            for &dim in output.shape {
                put_varint(&mut out, dim as u64);
            }
        }
    }
    for output in outputs {
        put_bytes(&mut out, 6, output.raw);
    }
    out
}

/// Writes a `ModelStreamInferResponse` that reports a failed request: `error_message`, and an
/// `infer_response` naming the request's model, version and id, as protobuf would write it.
pub fn encode_stream_error(
    model_name: &[u8],
    model_version: &[u8],
    id: &[u8],
    message: &str,
) -> Vec<u8> {
    let body = string_len(1, model_name) + string_len(2, model_version) + string_len(3, id);
    let mut out = Vec::with_capacity(string_len(1, message.as_bytes()) + field_len(2, body));
    put_string(&mut out, 1, message.as_bytes());
    put_varint(&mut out, (2 << 3) | LENGTH_DELIMITED);
    put_varint(&mut out, body as u64);
    put_string(&mut out, 1, model_name);
    put_string(&mut out, 2, model_version);
    put_string(&mut out, 3, id);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn input(name: &str, datatype: &str, shape: &[i64], packed: bool) -> Vec<u8> {
        let mut tensor = [bytes(1, name.as_bytes()), bytes(2, datatype.as_bytes())].concat();
        if packed {
            let mut dims = Vec::new();
            for &d in shape {
                put_varint(&mut dims, d as u64);
            }
            tensor.extend(bytes(3, &dims));
        } else {
            for &d in shape {
                tensor.extend(key(3, VARINT));
                put_varint(&mut tensor, d as u64);
            }
        }
        bytes(5, &tensor)
    }

    fn text(data: &[u8], range: &Range<usize>) -> String {
        String::from_utf8(data[range.clone()].to_vec()).unwrap_or_default()
    }

    fn signature() -> FastSignature {
        FastSignature {
            inputs: vec![InputLayout {
                name: "a".into(),
                datatype: "FP32".into(),
                shape: vec![-1, 4],
                itemsize: 4,
            }],
            max_batch_size: 8,
            outputs: vec!["y".into(), "z".into()],
        }
    }

    fn request(shape: &[i64], raw_bytes: usize, extra: &[u8]) -> Vec<u8> {
        [
            bytes(1, b"m"),
            input("a", "FP32", shape, true),
            bytes(7, &vec![0; raw_bytes]),
            extra.to_vec(),
        ]
        .concat()
    }

    #[test]
    fn matches_the_common_request() {
        let message = request(&[2, 4], 32, &bytes(6, &bytes(1, b"z")));
        let view = parse_infer_request(&message).expect("parses");
        let matched = match_request(&message, &view, &signature()).expect("fast");
        assert_eq!(matched.shapes, vec![vec![2, 4]]);
        assert_eq!(matched.wanted, vec![1]);
        let all = request(&[1, 4], 16, &[]);
        let view = parse_infer_request(&all).expect("parses");
        assert_eq!(
            match_request(&all, &view, &signature()).map(|m| m.wanted),
            Some(vec![0, 1])
        );
    }

    #[test]
    fn inputs_may_come_in_any_order() {
        let mut two = signature();
        two.inputs.push(InputLayout {
            name: "b".into(),
            datatype: "INT64".into(),
            shape: vec![-1, 2],
            itemsize: 8,
        });
        let message = [
            bytes(1, b"m"),
            input("b", "INT64", &[1, 2], true),
            input("a", "FP32", &[1, 4], true),
            bytes(7, &[2; 16]),
            bytes(7, &[1; 16]),
        ]
        .concat();
        let view = parse_infer_request(&message).expect("parses");
        let matched = match_request(&message, &view, &two).expect("fast");
        assert_eq!(matched.shapes, vec![vec![1, 4], vec![1, 2]]);
        let MatchedContents::Raw(ranges) = matched.contents else {
            panic!("raw contents");
        };
        let queued: Vec<&[u8]> = ranges.iter().map(|r| &message[r.clone()]).collect();
        assert_eq!(queued, vec![&[1u8; 16][..], &[2u8; 16][..]]);
        // An input given twice (the general path words it) is never taken.
        let twice = [
            bytes(1, b"m"),
            input("a", "FP32", &[1, 4], true),
            input("a", "FP32", &[1, 4], true),
            bytes(7, &[1; 16]),
            bytes(7, &[1; 16]),
        ]
        .concat();
        let view = parse_infer_request(&twice).expect("parses");
        assert_eq!(match_request(&twice, &view, &two), None);
    }

    #[test]
    fn leaves_everything_else_to_the_general_path() {
        let cases = [
            request(&[2, 4], 31, &[]),                        // byte size
            request(&[2, 5], 40, &[]),                        // shape
            request(&[9, 4], 144, &[]),                       // over max_batch_size
            request(&[0, 4], 0, &[]),                         // zero rows
            request(&[2, 4], 32, &bytes(4, &[1])),            // request parameters
            request(&[2, 4], 32, &bytes(6, &bytes(1, b"q"))), // unknown output
            request(
                &[2, 4],
                32,
                &bytes(6, &[bytes(1, b"y"), bytes(2, &[1])].concat()),
            ),
            request(&[2, 4], 32, &bytes(7, &[])), // extra raw content
            [
                bytes(1, b"m"),
                input("b", "FP32", &[1, 4], true),
                bytes(7, &[0; 16]),
            ]
            .concat(),
            [
                bytes(1, b"m"),
                input("a", "FP64", &[1, 4], true),
                bytes(7, &[0; 16]),
            ]
            .concat(),
        ];
        for message in cases {
            let view = parse_infer_request(&message).expect("parses");
            assert_eq!(match_request(&message, &view, &signature()), None);
        }
    }

    #[test]
    fn parses_a_request_with_packed_and_unpacked_shapes() {
        let message = [
            bytes(1, b"mlp"),
            bytes(2, b"1"),
            bytes(3, b"req-7"),
            input("a", "FP32", &[2, 64], true),
            input("b", "INT64", &[-1, 3], false),
            bytes(7, &[1, 2, 3]),
            bytes(7, &[]),
            // unknown fields of every wire type are skipped
            [key(99, VARINT), vec![5]].concat(),
            [key(98, FIXED64), vec![0; 8]].concat(),
            [key(97, FIXED32), vec![0; 4]].concat(),
        ]
        .concat();
        let view = parse_infer_request(&message).expect("parses");
        assert_eq!(text(&message, &view.model_name), "mlp");
        assert_eq!(text(&message, &view.model_version), "1");
        assert_eq!(text(&message, &view.id), "req-7");
        assert!(!view.has_parameters);
        assert_eq!(view.inputs.len(), 2);
        let inputs = [0, 1].map(|index| view.input(&message, index).expect("parses"));
        assert_eq!(text(&message, &inputs[0].name), "a");
        assert_eq!(text(&message, &inputs[1].datatype), "INT64");
        assert_eq!(inputs[0].shape, vec![2, 64]);
        assert_eq!(inputs[1].shape, vec![-1, 3]);
        assert!(view.outputs.is_empty());
        assert_eq!(view.raw_input_contents.len(), 2);
        assert_eq!(&message[view.raw_input_contents[0].clone()], &[1, 2, 3]);
        assert!(view.raw_input_contents[1].is_empty());
    }

    #[test]
    fn flags_parameters_contents_and_requested_outputs() {
        let tensor = [bytes(1, b"x"), bytes(5, &[])].concat();
        let output = [bytes(1, b"y"), bytes(2, &[1])].concat();
        let message = [bytes(4, &[0]), bytes(5, &tensor), bytes(6, &output)].concat();
        let view = parse_infer_request(&message).expect("parses");
        assert!(view.has_parameters);
        let input = view.input(&message, 0).expect("parses");
        assert_eq!(input.contents.len(), 1);
        let output = view.output(&message, 0).expect("parses");
        assert_eq!(text(&message, &output.name), "y");
        assert!(output.has_parameters);
    }

    fn text_signature() -> FastSignature {
        FastSignature {
            inputs: vec![
                InputLayout {
                    name: "t".into(),
                    datatype: "BYTES".into(),
                    shape: vec![-1, 2],
                    itemsize: 0,
                },
                InputLayout {
                    name: "x".into(),
                    datatype: "FP32".into(),
                    shape: vec![-1, 1],
                    itemsize: 4,
                },
            ],
            max_batch_size: 8,
            outputs: vec!["y".into()],
        }
    }

    fn text_request(shape: &[i64], text: &[u8]) -> Vec<u8> {
        let rows = shape[0];
        [
            bytes(1, b"m"),
            input("t", "BYTES", shape, true),
            input("x", "FP32", &[rows, 1], false),
            bytes(7, text),
            bytes(7, &vec![0; usize::try_from(rows).unwrap_or(0) * 4]),
        ]
        .concat()
    }

    fn encoded(elements: &[&[u8]]) -> Vec<u8> {
        crate::encode_bytes(elements.iter().copied()).unwrap_or_default()
    }

    #[test]
    fn matches_raw_bytes_inputs_beside_numeric_ones() {
        let elements: [&[u8]; 4] = [b"", b"a\0b", "caf\u{e9}".as_bytes(), &[b'z'; 300]];
        let message = text_request(&[2, 2], &encoded(&elements));
        let view = parse_infer_request(&message).expect("parses");
        let matched = match_request(&message, &view, &text_signature()).expect("fast");
        assert_eq!(matched.shapes, vec![vec![2, 2], vec![2, 1]]);
    }

    #[test]
    fn leaves_malformed_bytes_to_the_general_path() {
        let four: [&[u8]; 4] = [b"ab", b"", b"cde", b"f"];
        let cases = [
            // truncated length prefix of element 3
            [encoded(&four[..3]), vec![1, 0]].concat(),
            // element 3 claims 100 bytes, 1 follows
            [encoded(&four[..3]), vec![100, 0, 0, 0, b'f']].concat(),
            // trailing bytes after the 4 elements
            [encoded(&four), b"xyz".to_vec()].concat(),
            // 3 elements where the shape needs 4, and 5 where it needs 4
            encoded(&four[..3]),
            encoded(&[b"ab", b"", b"cde", b"f", b"g"]),
            // not UTF-8 text
            encoded(&[b"ok", b"\xff\xfe", b"c", b"d"]),
        ];
        for text in cases {
            let message = text_request(&[2, 2], &text);
            let view = parse_infer_request(&message).expect("parses");
            assert_eq!(match_request(&message, &view, &text_signature()), None);
        }
        // A shape that claims more elements than any buffer holds costs one look at the buffer.
        let huge = [
            bytes(1, b"m"),
            input("t", "BYTES", &[1, i64::MAX], true),
            input("x", "FP32", &[1, 1], false),
            bytes(7, &encoded(&four)),
            bytes(7, &[0; 4]),
        ]
        .concat();
        let view = parse_infer_request(&huge).expect("parses");
        let mut signature = text_signature();
        signature.inputs[0].shape = vec![-1, -1];
        assert_eq!(match_request(&huge, &view, &signature), None);
    }

    #[test]
    fn perf_analyzers_final_response_flag_is_not_a_parameter() {
        let flag = bytes(1, b"triton_enable_empty_final_response");
        let value = [key(8, VARINT), vec![1]].concat(); // InferParameter.bool_param = true
        let entry = [flag, bytes(2, &value)].concat();
        let message = [bytes(1, b"mlp"), bytes(4, &entry)].concat();
        assert!(
            !parse_infer_request(&message)
                .expect("parses")
                .has_parameters
        );
        let priority = [bytes(1, b"priority"), bytes(2, &value)].concat();
        let message = [bytes(4, &entry), bytes(4, &priority)].concat();
        assert!(
            parse_infer_request(&message)
                .expect("parses")
                .has_parameters
        );
    }

    #[test]
    fn rejects_malformed_messages() {
        assert_eq!(
            parse_infer_request(&[0x0a, 5, b'a']),
            Err(WireError::Truncated(3))
        );
        assert_eq!(
            parse_infer_request(&[0x08, 0x80]),
            Err(WireError::Truncated(2))
        );
        assert_eq!(
            parse_infer_request(&[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ]),
            Err(WireError::BadVarint(1))
        );
        assert!(matches!(
            parse_infer_request(&[0x0b]),
            Err(WireError::BadWireType { wire_type: 3, .. })
        ));
        assert_eq!(
            parse_infer_request(&bytes(1, &[0xff])),
            Err(WireError::NotUtf8(1))
        );
        assert_eq!(
            parse_infer_request(&[0x08, 1]),
            Err(WireError::WrongWireType {
                field: 1,
                wire_type: 0
            })
        );
        // field number 0, and a tag wider than 32 bits
        assert_eq!(
            parse_infer_request(&[0x00, 0x00]),
            Err(WireError::BadFieldNumber(0))
        );
        assert_eq!(
            parse_infer_request(&[0x80, 0x80, 0x80, 0x80, 0x10, 0x00]),
            Err(WireError::BadFieldNumber(0))
        );
        // a length that would overflow the cursor
        let huge = [&[0x3a][..], &[0xff; 9], &[0x01]].concat();
        assert!(matches!(
            parse_infer_request(&huge),
            Err(WireError::Truncated(_))
        ));
    }

    #[test]
    fn encodes_the_response_field_by_field() {
        let raw = [1u8, 2, 3, 4];
        let outputs = [ResponseOutput {
            name: "out",
            datatype: "FP32",
            shape: &[1, 300],
            raw: &raw,
        }];
        let message = encode_infer_response(b"m", b"1", b"", &outputs, false);
        let tensor = [
            bytes(1, b"out"),
            bytes(2, b"FP32"),
            bytes(3, &[1, 0xac, 0x02]),
        ]
        .concat();
        let expected = [
            bytes(1, b"m"),
            bytes(2, b"1"),
            bytes(5, &tensor),
            bytes(6, &raw),
        ]
        .concat();
        assert_eq!(message, expected);
        let streamed = encode_infer_response(b"m", b"1", b"", &outputs, true);
        assert_eq!(streamed, bytes(2, &expected));
    }

    /// A `parameters` map entry whose `InferParameter` is `value` (its fields, encoded).
    fn parameter(name: &str, value: &[u8]) -> Vec<u8> {
        bytes(4, &[bytes(1, name.as_bytes()), bytes(2, value)].concat())
    }

    /// An `InferParameter` with varint field `field` (1 bool, 2 int64, 5 uint64) = `value`.
    fn varint_value(field: u32, value: u64) -> Vec<u8> {
        let mut out = key(field, VARINT);
        put_varint(&mut out, value);
        out
    }

    #[test]
    fn reads_priority_and_timeout_of_either_integer_type() {
        for (priority_field, timeout_field) in [(5, 2), (2, 5), (2, 2), (5, 5)] {
            let extra = [
                parameter("priority", &varint_value(priority_field, 3)),
                parameter("timeout", &varint_value(timeout_field, 20_000)),
            ]
            .concat();
            let message = request(&[2, 4], 32, &extra);
            let view = parse_infer_request(&message).expect("parses");
            assert!(!view.has_parameters);
            assert_eq!((view.priority, view.timeout_us), (3, 20_000));
            assert!(match_request(&message, &view, &signature()).is_some());
        }
        let plain = parse_infer_request(&request(&[2, 4], 32, &[])).expect("parses");
        assert_eq!((plain.priority, plain.timeout_us), (0, 0));
        let huge = parameter("priority", &varint_value(5, u64::MAX));
        let view = parse_infer_request(&huge).expect("parses");
        assert_eq!((view.priority, view.has_parameters), (u64::MAX, false));
    }

    #[test]
    fn other_parameters_and_unusable_values_go_to_the_general_path() {
        let mut double = key(4, FIXED64);
        double.extend(1.5f64.to_le_bytes());
        let cases = [
            parameter("priority", &varint_value(2, (-1i64) as u64)), // negative int64
            parameter("timeout", &varint_value(1, 1)),               // bool
            parameter("priority", &bytes(3, b"1")),                  // string
            parameter("priority", &double),                          // double
            parameter("timeout", &[]),                               // no value set
            parameter("priority", &bytes(2, &[1])), // int64 with the wrong wire type
            parameter("priority", &[0x10, 0x80]),   // truncated value
            // oneof: the last choice wins, here a string
            parameter("priority", &[varint_value(2, 1), bytes(3, b"x")].concat()),
            bytes(4, &[0xff]),                       // malformed entry
            parameter("custom", &bytes(3, &[0xff])), // a string value that is not UTF-8
            bytes(
                4,
                &[bytes(1, &[0xff]), bytes(2, &varint_value(2, 1))].concat(),
            ), // key not UTF-8
        ];
        for extra in cases {
            let message = request(&[2, 4], 32, &extra);
            let view = parse_infer_request(&message).expect("a parameter never fails the parse");
            assert!(view.has_parameters, "{extra:?}");
            assert_eq!(match_request(&message, &view, &signature()), None);
        }
        // The oneof's later choice wins the other way round too; the value message may come
        // in two parts (protobuf merges them).
        let merged = [
            bytes(1, b"priority"),
            bytes(2, &bytes(3, b"x")),
            bytes(2, &varint_value(5, 2)),
        ]
        .concat();
        let view = parse_infer_request(&bytes(4, &merged)).expect("parses");
        assert_eq!((view.priority, view.has_parameters), (2, false));
    }

    #[test]
    fn reads_tritons_sequence_parameters() {
        let read = |extra: &[u8]| {
            let message = request(&[2, 4], 32, extra);
            let view = parse_infer_request(&message).expect("parses");
            assert!(!view.has_parameters, "the fast path takes it");
            (message, view.sequence)
        };
        let flags = [
            parameter("sequence_start", &varint_value(1, 1)),
            parameter("sequence_end", &varint_value(1, 0)),
        ]
        .concat();
        let (_, numbered) = read(&[parameter("sequence_id", &varint_value(2, 42)), flags].concat());
        assert_eq!(numbered.id, Some(SequenceIdView::Number(42)));
        assert!(numbered.start && !numbered.end && !numbered.malformed);
        let (_, unsigned) = read(&parameter("sequence_id", &varint_value(5, u64::MAX)));
        assert_eq!(unsigned.id, Some(SequenceIdView::Number(u64::MAX)));
        let (message, text) = read(&parameter("sequence_id", &bytes(3, b"user-9")));
        let Some(SequenceIdView::Text(range)) = text.id else {
            panic!("a string id: {text:?}");
        };
        assert_eq!(&message[range], b"user-9");
        // The last entry of a key wins, as in protobuf's map.
        let twice = [
            parameter("sequence_end", &varint_value(1, 1)),
            parameter("sequence_end", &varint_value(1, 0)),
        ];
        assert!(!read(&twice.concat()).1.end);
        let mut double = key(4, FIXED64);
        double.extend(7.0f64.to_le_bytes());
        for malformed in [
            parameter("sequence_id", &double),
            parameter("sequence_start", &varint_value(2, 1)), // an int64
            parameter("sequence_end", &bytes(3, b"true")),    // a string
        ] {
            let (_, sequence) = read(&malformed);
            assert!(sequence.malformed, "{malformed:?}");
        }
        let (_, none) = read(&parameter("sequence_other", &varint_value(1, 1)));
        assert_eq!(none, SequenceParameters::default());
    }

    #[test]
    fn parameters_the_server_does_not_read_are_ignored_on_the_fast_path() {
        let mut double = key(4, FIXED64);
        double.extend(1.5f64.to_le_bytes());
        let ignored = [
            parameter("sequence_id", &varint_value(2, 7)),
            parameter("custom", &bytes(3, "caf\u{e9}".as_bytes())),
            parameter("flag", &varint_value(1, 1)),
            parameter("ratio", &double),
            parameter("empty", &[]),
            bytes(4, &bytes(2, &varint_value(2, 1))), // no key: the key ""
            parameter("triton_enable_empty_final_response", &varint_value(1, 1)),
        ];
        for extra in ignored {
            let message = request(&[2, 4], 32, &extra);
            let view = parse_infer_request(&message).expect("parses");
            assert!(!view.has_parameters, "{extra:?}");
            assert!(match_request(&message, &view, &signature()).is_some());
        }
        // Output parameters: any but classification (the general path answers it).
        let output = |parameters: &[u8]| {
            let wanted = [bytes(1, b"y"), parameters.to_vec()].concat();
            request(&[2, 4], 32, &bytes(6, &wanted))
        };
        let binary = bytes(
            2,
            &[bytes(1, b"binary_data"), bytes(2, &varint_value(1, 1))].concat(),
        );
        let message = output(&binary);
        let view = parse_infer_request(&message).expect("parses");
        assert!(!view.output(&message, 0).expect("parses").has_parameters);
        assert!(match_request(&message, &view, &signature()).is_some());
        let classification = bytes(
            2,
            &[bytes(1, b"classification"), bytes(2, &varint_value(2, 3))].concat(),
        );
        for parameters in [classification, bytes(2, &[0xff])] {
            let message = output(&parameters);
            let view = parse_infer_request(&message).expect("parses");
            assert!(view.output(&message, 0).expect("parses").has_parameters);
            assert_eq!(match_request(&message, &view, &signature()), None);
        }
    }

    proptest::proptest! {
        /// Any integer value of either type: read when it is a valid one, else left to the
        /// general path; never a parse error.
        #[test]
        fn integer_parameters_are_read_or_left_alone(
            value: u64,
            field in proptest::prop_oneof![proptest::strategy::Just(2u32), proptest::strategy::Just(5u32)],
            timeout: bool,
        ) {
            let name = if timeout { "timeout" } else { "priority" };
            let message = parameter(name, &varint_value(field, value));
            let view = parse_infer_request(&message).expect("parses");
            let usable = field == 5 || i64::try_from(value).is_ok();
            proptest::prop_assert_eq!(view.has_parameters, !usable);
            let read = if timeout { view.timeout_us } else { view.priority };
            proptest::prop_assert_eq!(read, if usable { value } else { 0 });
        }

        /// Whatever bytes a parameter entry holds, parsing never fails or panics.
        #[test]
        fn any_parameter_entry_parses(
            name in proptest::prop_oneof![
                proptest::strategy::Just("priority"),
                proptest::strategy::Just("timeout"),
                proptest::strategy::Just("binary_data_output"),
            ],
            value: Vec<u8>,
            noise: Vec<u8>,
        ) {
            let entry = [bytes(1, name.as_bytes()), bytes(2, &value)].concat();
            parse_infer_request(&[bytes(1, b"m"), bytes(4, &entry)].concat())
                .expect("an entry is length-delimited");
            parse_infer_request(&[bytes(1, b"m"), bytes(4, &noise)].concat())
                .expect("an entry is length-delimited");
        }

        /// Every well-formed value of a key the server does not read keeps the request on the
        /// fast path, whichever oneof choice it makes.
        #[test]
        fn any_valid_custom_parameter_is_ignored(
            choice in 1u32..=5,
            number: u64,
            text in "\\PC{0,12}",
        ) {
            let value = match choice {
                3 => bytes(3, text.as_bytes()),
                4 => [key(4, FIXED64), number.to_le_bytes().to_vec()].concat(),
                field => varint_value(field, number),
            };
            let message = request(&[2, 4], 32, &parameter("custom", &value));
            let view = parse_infer_request(&message).expect("parses");
            proptest::prop_assert!(!view.has_parameters);
        }
    }

    #[test]
    fn encodes_negative_dims_and_empty_shapes() {
        let outputs = [
            ResponseOutput {
                name: "a",
                datatype: "INT8",
                shape: &[-1],
                raw: &[],
            },
            ResponseOutput {
                name: "s",
                datatype: "BYTES",
                shape: &[],
                raw: &[9],
            },
        ];
        let message = encode_infer_response(b"m", b"", b"id", &outputs, false);
        let mut minus_one = Vec::new();
        put_varint(&mut minus_one, u64::MAX);
        let expected = [
            bytes(1, b"m"),
            bytes(3, b"id"),
            bytes(
                5,
                &[bytes(1, b"a"), bytes(2, b"INT8"), bytes(3, &minus_one)].concat(),
            ),
            bytes(5, &[bytes(1, b"s"), bytes(2, b"BYTES")].concat()),
            bytes(6, &[]),
            bytes(6, &[9]),
        ]
        .concat();
        assert_eq!(message, expected);
    }
}
