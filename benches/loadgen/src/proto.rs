//! The protobuf the load generator writes and reads, by hand (no prost: a few fields, built
//! once per run, so the client shares no code with the servers it measures): ModelInferRequest
//! and ModelInferResponse / ModelStreamInferResponse (field numbers from
//! protos/grpc_service.proto), and a small field reader.

use bytes::{BufMut, Bytes, BytesMut};

/// What can be wrong with a tensor declaration or a received message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// A datatype the client cannot size (BYTES has per-element lengths) or does not know.
    #[error(
        "datatype {0:?} is not supported (use BOOL, UINT8..64, INT8..64, FP16, BF16, FP32, FP64)"
    )]
    Datatype(String),
    /// A tensor argument that is not `NAME:DATATYPE:DIMS`.
    #[error(
        "tensor {0:?} is not NAME:DATATYPE:DIMS (DIMS comma-separated, e.g. input:FP32:3,64,64)"
    )]
    TensorSyntax(String),
    /// A protobuf message that ends inside a field.
    #[error("truncated protobuf message")]
    Truncated,
    /// A protobuf wire type this reader does not know (groups).
    #[error("protobuf wire type {0} is not supported")]
    WireType(u8),
    /// A framed gRPC message marked compressed (the client never offers compression).
    #[error("compressed gRPC message, but no compression was offered")]
    Compressed,
    /// A request parameter argument that is not `KEY=VALUE`.
    #[error("parameter {0:?} is not KEY=VALUE (e.g. priority=1)")]
    ParameterSyntax(String),
    /// FP16 and BF16 have no typed contents field in the protocol.
    #[error("{0} has no typed contents field (send it raw: leave out --typed)")]
    NoTypedField(String),
}

/// A request parameter's value: `InferParameter`'s oneof (bool_param = 1, int64_param = 2,
/// string_param = 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParameterValue {
    /// `bool_param`.
    Bool(bool),
    /// `int64_param`.
    Int64(i64),
    /// `string_param`.
    String(String),
}

/// One entry of a request's `parameters` map (e.g. Triton's `priority` and `timeout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    /// The key.
    pub key: String,
    /// The value.
    pub value: ParameterValue,
}

impl Parameter {
    /// Parses `KEY=VALUE`, typing the value as tritonclient types a Python value: `true` or
    /// `false` is a bool, an integer an int64, anything else a string.
    pub fn parse(text: &str) -> Result<Self, WireError> {
        let (key, value) = text
            .split_once('=')
            .filter(|(key, _)| !key.is_empty())
            .ok_or_else(|| WireError::ParameterSyntax(text.to_owned()))?;
        let value = match value {
            "true" => ParameterValue::Bool(true),
            "false" => ParameterValue::Bool(false),
            _ => match value.parse::<i64>() {
                Ok(number) => ParameterValue::Int64(number),
                Err(_) => ParameterValue::String(value.to_owned()),
            },
        };
        Ok(Parameter {
            key: key.to_owned(),
            value,
        })
    }

    /// The map entry as serialized: key = 1, value = 2 (an `InferParameter`). A oneof member
    /// is written even when it holds its default value, as protobuf does.
    fn entry(&self) -> BytesMut {
        let mut value = BytesMut::new();
        match &self.value {
            ParameterValue::Bool(flag) => {
                put_varint(&mut value, 1 << 3);
                put_varint(&mut value, u64::from(*flag));
            }
            ParameterValue::Int64(number) => {
                put_varint(&mut value, 2 << 3);
                // int64 varints take negative values as their 64-bit two's complement.
                put_varint(&mut value, *number as u64);
            }
            ParameterValue::String(text) => put_bytes(&mut value, 3, text.as_bytes()),
        }
        let mut entry = BytesMut::new();
        put_string(&mut entry, 1, &self.key);
        put_bytes(&mut entry, 2, &value);
        entry
    }
}

/// A tensor as the v2 protocol declares it: name, datatype and the dimensions of one row (the
/// batch dimension, rows per request, is put in front when a request is built).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Tensor name, e.g. `input`.
    pub name: String,
    /// v2 datatype name, e.g. `FP32`.
    pub datatype: String,
    /// Dimensions of one row.
    pub row_shape: Vec<i64>,
}

impl TensorSpec {
    /// Parses `NAME:DATATYPE:DIMS`, DIMS comma-separated (empty for one value per row).
    pub fn parse(text: &str) -> Result<Self, WireError> {
        let syntax = || WireError::TensorSyntax(text.to_owned());
        let mut parts = text.splitn(3, ':');
        let (Some(name), Some(datatype), Some(dims)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(syntax());
        };
        if name.is_empty() {
            return Err(syntax());
        }
        let row_shape = if dims.is_empty() {
            Vec::new()
        } else {
            dims.split(',')
                .map(|dim| dim.trim().parse::<i64>().ok().filter(|d| *d > 0))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(syntax)?
        };
        let spec = TensorSpec {
            name: name.to_owned(),
            datatype: datatype.to_ascii_uppercase(),
            row_shape,
        };
        spec.element_bytes()?;
        Ok(spec)
    }

    /// Bytes per element of the datatype.
    pub fn element_bytes(&self) -> Result<usize, WireError> {
        Ok(match self.datatype.as_str() {
            "BOOL" | "UINT8" | "INT8" => 1,
            "UINT16" | "INT16" | "FP16" | "BF16" => 2,
            "UINT32" | "INT32" | "FP32" => 4,
            "UINT64" | "INT64" | "FP64" => 8,
            other => return Err(WireError::Datatype(other.to_owned())),
        })
    }

    /// The shape of a request or answer of `rows` rows.
    pub fn shape(&self, rows: u64) -> Vec<i64> {
        let rows = i64::try_from(rows).unwrap_or(i64::MAX);
        std::iter::once(rows)
            .chain(self.row_shape.iter().copied())
            .collect()
    }

    /// Raw bytes of `rows` rows.
    pub fn byte_size(&self, rows: u64) -> Result<usize, WireError> {
        let elements: i64 = self.shape(rows).iter().product();
        Ok(usize::try_from(elements).unwrap_or(usize::MAX) * self.element_bytes()?)
    }

    /// Raw contents for `rows` rows: small pseudo-random values for the float types (a
    /// fixed seed, so every run and every server gets the same bytes), zeros otherwise (an
    /// integer tensor is often an index, and zero is always a valid one).
    pub fn contents(&self, rows: u64) -> Result<Vec<u8>, WireError> {
        let size = self.byte_size(rows)?;
        let mut out = Vec::with_capacity(size);
        let mut state: u32 = 0x9E37_79B9;
        let mut next = move || {
            // xorshift32: no dependency, and the values need only be ordinary numbers.
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        // Values in [-1, 1): the sign bit and an exponent of 0 or -1 keep them normal.
        match self.datatype.as_str() {
            "FP32" => {
                while out.len() < size {
                    let value = (f64::from(next()) / f64::from(u32::MAX)) * 2.0 - 1.0;
                    #[allow(clippy::cast_possible_truncation)]
                    out.extend_from_slice(&(value as f32).to_le_bytes());
                }
            }
            "FP64" => {
                while out.len() < size {
                    let value = (f64::from(next()) / f64::from(u32::MAX)) * 2.0 - 1.0;
                    out.extend_from_slice(&value.to_le_bytes());
                }
            }
            // FP16 / BF16: 0x3C00 is 1.0 in FP16, 0x3F80 in BF16; alternate the sign.
            "FP16" | "BF16" => {
                let one: u16 = if self.datatype == "FP16" {
                    0x3C00
                } else {
                    0x3F80
                };
                let mut sign = 0u16;
                while out.len() < size {
                    out.extend_from_slice(&(one | sign).to_le_bytes());
                    sign ^= 0x8000;
                }
            }
            _ => out.resize(size, 0),
        }
        Ok(out)
    }
}

/// Appends a base-128 varint.
fn put_varint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

/// Appends a length-delimited field (wire type 2).
fn put_bytes(out: &mut BytesMut, field: u32, value: &[u8]) {
    put_varint(out, u64::from(field << 3 | 2));
    put_varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// Appends a string field, omitted when empty (proto3 leaves default values out, so the
/// bytes match what protobuf's own serializer writes).
fn put_string(out: &mut BytesMut, field: u32, value: &str) {
    if !value.is_empty() {
        put_bytes(out, field, value.as_bytes());
    }
}

/// A tensor declaration (InferInputTensor / InferOutputTensor: name = 1, datatype = 2,
/// packed int64 shape = 3).
fn tensor_message(name: &str, datatype: &str, shape: &[i64]) -> BytesMut {
    let mut tensor = BytesMut::new();
    put_string(&mut tensor, 1, name);
    put_string(&mut tensor, 2, datatype);
    if !shape.is_empty() {
        let mut packed = BytesMut::new();
        for &dim in shape {
            // int64 varints take negative values as their 64-bit two's complement.
            put_varint(&mut packed, dim as u64);
        }
        put_bytes(&mut tensor, 3, &packed);
    }
    tensor
}

/// The `InferTensorContents` holding the raw little-endian `raw` of `datatype` in the
/// datatype's typed field, packed, as protobuf's serializer writes it: BOOL in bool_contents
/// (1); INT8/16/32 in int_contents (2, sign-extended varints); INT64 in int64_contents (3);
/// UINT8/16/32 in uint_contents (4); UINT64 in uint64_contents (5); FP32 in fp32_contents (6);
/// FP64 in fp64_contents (7).
pub fn typed_contents(datatype: &str, raw: &[u8]) -> Result<BytesMut, WireError> {
    let mut packed = BytesMut::new();
    let field = match datatype {
        "FP32" => {
            packed.extend_from_slice(raw);
            6
        }
        "FP64" => {
            packed.extend_from_slice(raw);
            7
        }
        "BOOL" | "INT8" | "INT16" | "INT32" | "INT64" | "UINT8" | "UINT16" | "UINT32"
        | "UINT64" => {
            let (field, size, signed) = match datatype {
                "BOOL" => (1, 1, false),
                "INT8" => (2, 1, true),
                "INT16" => (2, 2, true),
                "INT32" => (2, 4, true),
                "INT64" => (3, 8, true),
                "UINT8" => (4, 1, false),
                "UINT16" => (4, 2, false),
                "UINT32" => (4, 4, false),
                _ => (5, 8, false),
            };
            for bits in raw.chunks_exact(size) {
                let mut wide = [0u8; 8];
                wide[..size].copy_from_slice(bits);
                let unsigned = u64::from_le_bytes(wide);
                let shift = 64 - 8 * size as u32;
                let value = if signed {
                    // protobuf writes a negative int32 / int64 as its 64-bit two's complement.
                    ((unsigned << shift) as i64 >> shift) as u64
                } else {
                    unsigned
                };
                put_varint(&mut packed, value);
            }
            field
        }
        other => return Err(WireError::NoTypedField(other.to_owned())),
    };
    let mut contents = BytesMut::new();
    if !packed.is_empty() {
        put_bytes(&mut contents, field, &packed);
    }
    Ok(contents)
}

/// A serialized ModelInferRequest: model_name = 1, model_version = 2, id = 3, parameters = 4
/// (in the order given), inputs = 5, raw_input_contents = 7 (one entry per input, in order);
/// with `typed`, each input's values go in its `contents` (InferInputTensor field 5) instead.
pub fn infer_request(
    model: &str,
    version: &str,
    id: &str,
    parameters: &[Parameter],
    inputs: &[(&TensorSpec, &[i64], &[u8])],
    typed: bool,
) -> Result<Bytes, WireError> {
    let mut out = BytesMut::new();
    put_string(&mut out, 1, model);
    put_string(&mut out, 2, version);
    put_string(&mut out, 3, id);
    for parameter in parameters {
        put_bytes(&mut out, 4, &parameter.entry());
    }
    for (spec, shape, contents) in inputs {
        let mut tensor = tensor_message(&spec.name, &spec.datatype, shape);
        if typed {
            put_bytes(&mut tensor, 5, &typed_contents(&spec.datatype, contents)?);
        }
        put_bytes(&mut out, 5, &tensor);
    }
    if !typed {
        for (_, _, contents) in inputs {
            put_bytes(&mut out, 7, contents);
        }
    }
    Ok(out.freeze())
}

/// A serialized ModelInferResponse with one raw output: model_name = 1, model_version = 2,
/// outputs = 5, raw_output_contents = 6.
pub fn infer_response(
    model: &str,
    version: &str,
    output: &TensorSpec,
    shape: &[i64],
    contents: &[u8],
) -> Bytes {
    let mut out = BytesMut::new();
    put_string(&mut out, 1, model);
    put_string(&mut out, 2, version);
    put_bytes(
        &mut out,
        5,
        &tensor_message(&output.name, &output.datatype, shape),
    );
    put_bytes(&mut out, 6, contents);
    out.freeze()
}

/// A serialized ModelStreamInferResponse: error_message = 1, infer_response = 2.
pub fn stream_response(error_message: &str, infer_response: Option<&[u8]>) -> Bytes {
    let mut out = BytesMut::new();
    put_string(&mut out, 1, error_message);
    if let Some(response) = infer_response {
        put_bytes(&mut out, 2, response);
    }
    out.freeze()
}

/// A field's value as read off the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: strings, bytes, messages, packed repeated fields.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

/// The fields of a protobuf message in wire order: (field number, value).
pub struct Fields<'a> {
    data: &'a [u8],
}

impl<'a> Fields<'a> {
    /// Reads `data` as one message.
    pub fn new(data: &'a [u8]) -> Self {
        Fields { data }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.data.split_first().ok_or(WireError::Truncated)?;
            self.data = rest;
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::Truncated)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], WireError> {
        if self.data.len() < len {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.data.split_at(len);
        self.data = rest;
        Ok(head)
    }

    fn field(&mut self) -> Result<(u32, Value<'a>), WireError> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).map_err(|_| WireError::Truncated)?;
        let value = match (key & 7) as u8 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().map_err(|_| WireError::Truncated)?,
            )),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| WireError::Truncated)?;
                Value::Bytes(self.take(len)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(
                self.take(4)?.try_into().map_err(|_| WireError::Truncated)?,
            )),
            other => return Err(WireError::WireType(other)),
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.data.is_empty() {
            return None;
        }
        let field = self.field();
        if field.is_err() {
            // Stop after the first error rather than read garbage.
            self.data = &[];
        }
        Some(field)
    }
}

/// The `error_message` (field 1) of a ModelStreamInferResponse; empty when the answer is a
/// result.
pub fn stream_error(message: &[u8]) -> Result<String, WireError> {
    let mut error = String::new();
    for field in Fields::new(message) {
        if let (1, Value::Bytes(text)) = field? {
            error = String::from_utf8_lossy(text).into_owned();
        }
    }
    Ok(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ModelInferRequest(model_name="mlp", model_version="1", id="r7")` with one input
    /// `input` FP32 [2, 3] and raw_input_contents `bytes(range(24))`, serialized by Python's
    /// protobuf (tritonclient's service_pb2), as hex.
    const PYTHON_REQUEST: &str = "0a036d6c701201311a027237\
        2a110a05696e707574120446503332\
        1a0202033a18000102030405060708090a0b0c0d0e0f1011121314151617";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[test]
    fn a_request_has_the_bytes_python_protobuf_writes() {
        let spec = TensorSpec::parse("input:FP32:3").expect("valid");
        let contents: Vec<u8> = (0..24).collect();
        let inputs = [(&spec, &spec.shape(2)[..], &contents[..])];
        let request = infer_request("mlp", "1", "r7", &[], &inputs, false).expect("raw");
        assert_eq!(hex(&request), PYTHON_REQUEST.replace(' ', ""));
    }

    #[test]
    fn a_typed_request_has_the_bytes_python_protobuf_writes() {
        // The request above with fp32_contents instead of raw_input_contents, and INT16
        // [-2, 300, 0] / UINT64 [2^64 - 1, 5] in requests of their own, from Python.
        let spec = TensorSpec::parse("input:FP32:3").expect("valid");
        let contents: Vec<u8> = (0..24).collect();
        let inputs = [(&spec, &spec.shape(2)[..], &contents[..])];
        let request = infer_request("mlp", "1", "r7", &[], &inputs, true).expect("typed");
        assert_eq!(
            hex(&request),
            "0a036d6c701201311a0272372a2d0a05696e7075741204465033321a0202032a1a32180001020304\
             05060708090a0b0c0d0e0f1011121314151617"
        );
        let int16: Vec<u8> = [-2i16, 300, 0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let uint64: Vec<u8> = [u64::MAX, 5].iter().flat_map(|v| v.to_le_bytes()).collect();
        for (tensor, raw, python) in [
            (
                "i:INT16:3",
                int16,
                "0a016d2a1f0a01691205494e5431361a0201032a0f120dfeffffffffffffffff01ac0200",
            ),
            (
                "i:UINT64:2",
                uint64,
                "0a016d2a1e0a0169120655494e5436341a0201022a0d2a0bffffffffffffffffff0105",
            ),
        ] {
            let spec = TensorSpec::parse(tensor).expect("valid");
            let inputs = [(&spec, &spec.shape(1)[..], &raw[..])];
            let request = infer_request("m", "", "", &[], &inputs, true).expect("typed");
            assert_eq!(hex(&request), python, "{tensor}");
        }
        let half = TensorSpec::parse("h:FP16:2").expect("valid");
        let raw = half.contents(1).expect("sized");
        let inputs = [(&half, &half.shape(1)[..], &raw[..])];
        assert_eq!(
            infer_request("m", "", "", &[], &inputs, true),
            Err(WireError::NoTypedField("FP16".into()))
        );
    }

    #[test]
    fn parameters_have_the_bytes_python_protobuf_writes() {
        // The request above with parameters["priority"].int64_param = 2, from Python.
        let with_priority = "0a036d6c701201311a027237\
            220e0a087072696f72697479120210022a110a05696e7075741204465033321a020203\
            3a18000102030405060708090a0b0c0d0e0f1011121314151617";
        let spec = TensorSpec::parse("input:FP32:3").expect("valid");
        let contents: Vec<u8> = (0..24).collect();
        let priority = Parameter::parse("priority=2").expect("valid");
        assert_eq!(priority.value, ParameterValue::Int64(2));
        let request = infer_request(
            "mlp",
            "1",
            "r7",
            &[priority],
            &[(&spec, &spec.shape(2), &contents)],
            false,
        )
        .expect("raw");
        assert_eq!(hex(&request), with_priority.replace(' ', ""));
        // Each type alone in an otherwise empty request (Python: bool_param = True,
        // int64_param = -5, string_param = "x y", bool_param = False).
        for (argument, python) in [
            ("a=true", "22070a016112020801"),
            ("b=-5", "22100a0162120b10fbffffffffffffffff01"),
            ("c=x y", "220a0a016312051a03782079"),
            ("d=false", "22070a016412020800"),
        ] {
            let parameter = Parameter::parse(argument).expect("valid");
            let request = infer_request("", "", "", &[parameter], &[], false).expect("raw");
            assert_eq!(hex(&request), python);
        }
    }

    #[test]
    fn a_parameter_argument_needs_a_key_and_an_equals_sign() {
        for bad in ["priority", "=1", ""] {
            assert_eq!(
                Parameter::parse(bad),
                Err(WireError::ParameterSyntax(bad.to_owned()))
            );
        }
        let text = Parameter::parse("note=a=b").expect("valid");
        assert_eq!(text.value, ParameterValue::String("a=b".into()));
    }

    #[test]
    fn a_request_reads_back_field_by_field() {
        let first = TensorSpec::parse("input:FP32:3,64,64").expect("valid");
        let second = TensorSpec::parse("ids:INT64:").expect("valid");
        let (a, b) = (
            first.contents(4).expect("sized"),
            second.contents(4).expect("sized"),
        );
        assert_eq!(a.len(), 4 * 3 * 64 * 64 * 4);
        assert_eq!(b, vec![0; 32]);
        let request = infer_request(
            "cnn",
            "",
            "",
            &[],
            &[
                (&first, &first.shape(4), &a),
                (&second, &second.shape(4), &b),
            ],
            false,
        )
        .expect("raw");
        let fields: Vec<_> = Fields::new(&request)
            .collect::<Result<_, _>>()
            .expect("well formed");
        let numbers: Vec<u32> = fields.iter().map(|(number, _)| *number).collect();
        assert_eq!(numbers, vec![1, 5, 5, 7, 7]);
        assert_eq!(fields[0].1, Value::Bytes(b"cnn"));
        let Value::Bytes(tensor) = fields[1].1 else {
            panic!("inputs is a message")
        };
        let tensor: Vec<_> = Fields::new(tensor)
            .collect::<Result<_, _>>()
            .expect("well formed");
        assert_eq!(tensor[0], (1, Value::Bytes(b"input")));
        assert_eq!(tensor[1], (2, Value::Bytes(b"FP32")));
        let Value::Bytes(packed) = tensor[2].1 else {
            panic!("shape is packed")
        };
        let mut dims = Fields::new(packed);
        let shape: Vec<u64> = std::iter::from_fn(|| (!dims.data.is_empty()).then(|| dims.varint()))
            .collect::<Result<_, _>>()
            .expect("varints");
        assert_eq!(shape, vec![4, 3, 64, 64]);
        assert_eq!(fields[3].1, Value::Bytes(&a[..]));
        assert_eq!(fields[4].1, Value::Bytes(&b[..]));
    }

    #[test]
    fn float_contents_are_ordinary_numbers_in_minus_one_one() {
        let spec = TensorSpec::parse("x:fp32:100").expect("valid");
        let bytes = spec.contents(1).expect("sized");
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|chunk| f32::from_le_bytes(chunk.try_into().expect("4 bytes")))
            .collect();
        assert!(
            values
                .iter()
                .all(|v| v.is_finite() && (-1.0..1.0).contains(v))
        );
        assert!(values.windows(2).any(|pair| pair[0] != pair[1]));
    }

    #[test]
    fn bad_tensor_arguments_are_refused() {
        assert!(matches!(
            TensorSpec::parse("input:BYTES:1"),
            Err(WireError::Datatype(_))
        ));
        for bad in ["input:FP32", ":FP32:1", "input:FP32:0", "input:FP32:a,b"] {
            assert!(
                matches!(TensorSpec::parse(bad), Err(WireError::TensorSyntax(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_stream_error_reads_back_and_an_answer_has_none() {
        let spec = TensorSpec::parse("output:FP32:10").expect("valid");
        let answer = infer_response("mlp", "1", &spec, &spec.shape(1), &[0; 40]);
        assert_eq!(
            stream_error(&stream_response("", Some(&answer))).expect("ok"),
            ""
        );
        assert_eq!(
            stream_error(&stream_response("no model", None)).expect("ok"),
            "no model"
        );
        assert_eq!(stream_error(&[0x0a, 5, b'a']), Err(WireError::Truncated));
    }
}
