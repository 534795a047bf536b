//! A v2 REST inference request (JSON, with or without Triton's binary tensor data extension)
//! turned into the `ModelInferRequest` the gRPC path takes, so both encodings share one path:
//! route table, fast-path matcher, batch queue, engine, and the Python server's wording of
//! every error. Every input is written into `raw_input_contents`; what the JSON got wrong is
//! refused here, naming the field.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use ferroserve_tensor::DataType;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::proto::{
    InferInputTensor, InferParameter, InferRequestedOutputTensor, ModelInferRequest,
    ParameterChoice,
};
use super::router::ModelRef;

/// Request parameter: every output in binary unless it says otherwise (Triton's extension).
const BINARY_DATA_OUTPUT: &str = "binary_data_output";
/// Input parameter: the input's bytes follow the JSON header (Triton's extension).
const BINARY_DATA_SIZE: &str = "binary_data_size";
/// Output parameter: this output in binary or not (Triton's extension).
const BINARY_DATA: &str = "binary_data";

/// Which outputs the response carries as binary data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BinaryOutputs {
    /// The request's `binary_data_output`.
    pub all: bool,
    /// Outputs whose own `binary_data` says otherwise.
    pub by_name: HashMap<String, bool>,
}

impl BinaryOutputs {
    /// Whether output `name` goes in binary.
    pub fn binary(&self, name: &str) -> bool {
        self.by_name.get(name).copied().unwrap_or(self.all)
    }
}

/// A decoded request: the protobuf message and how to write its answer.
#[derive(Debug)]
pub struct DecodedRequest {
    /// The `ModelInferRequest` for the shared path.
    pub message: ModelInferRequest,
    /// Which outputs the answer writes in binary.
    pub binary: BinaryOutputs,
}

type Object<'a> = BTreeMap<String, &'a RawValue>;

/// `value` parsed as `T`, or a message naming `field`.
fn field<'a, T: Deserialize<'a>>(
    field: &str,
    value: &'a RawValue,
    expected: &str,
) -> Result<T, String> {
    serde_json::from_str(value.get()).map_err(|error| {
        let error = error.to_string();
        // serde_json's position is within the field's own text: not useful to a client.
        let error = error.split(" at line ").next().unwrap_or(&error);
        format!("'{field}' must be {expected} ({error})")
    })
}

fn object<'a>(name: &str, value: &'a RawValue) -> Result<Object<'a>, String> {
    serde_json::from_str(value.get()).map_err(|_| format!("'{name}' must be a JSON object"))
}

/// A JSON parameter value as an `InferParameter`.
fn parameter(name: &str, value: &Value) -> Result<InferParameter, String> {
    let choice = match value {
        Value::Bool(value) => ParameterChoice::Bool(*value),
        Value::String(value) => ParameterChoice::String(value.clone()),
        Value::Number(number) => {
            if let Some(value) = number.as_i64() {
                ParameterChoice::Int64(value)
            } else if let Some(value) = number.as_u64() {
                ParameterChoice::Uint64(value)
            } else {
                ParameterChoice::Double(number.as_f64().unwrap_or(f64::NAN))
            }
        }
        _ => {
            return Err(format!(
                "parameter '{name}' must be a boolean, a number or a string"
            ));
        }
    };
    Ok(InferParameter {
        choice: Some(choice),
    })
}

/// The `parameters` object of `owner` as protobuf parameters, without `http_only` (the
/// extension's own keys, which the gRPC path would not understand), and the removed boolean.
fn parameters(
    owner: &str,
    value: Option<&&RawValue>,
    http_only: &str,
) -> Result<(HashMap<String, InferParameter>, Option<Value>), String> {
    let Some(value) = value else {
        return Ok((HashMap::new(), None));
    };
    let map: BTreeMap<String, Value> = field(&format!("{owner}parameters"), value, "an object")?;
    let mut out = HashMap::with_capacity(map.len());
    let mut extension = None;
    for (name, value) in map {
        if name == http_only {
            extension = Some(value);
        } else {
            let converted =
                parameter(&name, &value).map_err(|error| format!("{owner}parameters: {error}"))?;
            out.insert(name, converted);
        }
    }
    Ok((out, extension))
}

/// The product of `shape`, when every dim is known and it fits.
fn element_count(shape: &[i64]) -> Option<usize> {
    shape.iter().try_fold(1usize, |count, &dim| {
        count.checked_mul(usize::try_from(dim).ok()?)
    })
}

/// Decodes `header` (the JSON part of the body) and `binary` (the bytes after it, empty
/// without the extension) into the request for `model`.
pub fn decode(model: &ModelRef, header: &[u8], binary: &Bytes) -> Result<DecodedRequest, String> {
    let text = std::str::from_utf8(header)
        .map_err(|_| "the request's JSON is not UTF-8 text".to_string())?;
    let top: Object<'_> = serde_json::from_str(text)
        .map_err(|error| format!("the request is not a JSON object: {error}"))?;
    let id = match top.get("id") {
        Some(value) => field::<String>("id", value, "a string")?,
        None => String::new(),
    };
    let (request_parameters, binary_output) =
        parameters("", top.get("parameters"), BINARY_DATA_OUTPUT)?;
    let all_binary = match binary_output {
        None => false,
        Some(Value::Bool(value)) => value,
        Some(_) => {
            return Err(format!(
                "parameter '{BINARY_DATA_OUTPUT}' must be a boolean"
            ));
        }
    };
    let inputs_json: Vec<&RawValue> = match top.get("inputs") {
        Some(value) => field("inputs", value, "an array of input objects")?,
        None => return Err("the request has no 'inputs'".into()),
    };
    let mut offset = 0usize;
    let mut inputs = Vec::with_capacity(inputs_json.len());
    let mut raw = Vec::with_capacity(inputs_json.len());
    for (index, input) in inputs_json.iter().enumerate() {
        let at = format!("inputs[{index}].");
        let input = object(&format!("inputs[{index}]"), input)?;
        let required = |name: &str| {
            input
                .get(name)
                .ok_or_else(|| format!("'{at}{name}' is missing"))
        };
        let name: String = field(&format!("{at}name"), required("name")?, "a string")?;
        let shape: Vec<i64> = field(
            &format!("{at}shape"),
            required("shape")?,
            "an array of integers",
        )?;
        let datatype_name: String =
            field(&format!("{at}datatype"), required("datatype")?, "a string")?;
        let (input_parameters, binary_size) =
            parameters(&at, input.get("parameters"), BINARY_DATA_SIZE)?;
        let contents = match (binary_size, input.get("data")) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "input '{name}' has both '{BINARY_DATA_SIZE}' and 'data'; send one"
                ));
            }
            (Some(size), None) => {
                let size = size
                    .as_u64()
                    .and_then(|size| usize::try_from(size).ok())
                    .ok_or_else(|| {
                        format!(
                            "input '{name}': '{BINARY_DATA_SIZE}' must be a non-negative integer"
                        )
                    })?;
                let end = offset
                    .checked_add(size)
                    .filter(|&end| end <= binary.len())
                    .ok_or_else(|| {
                        format!(
                            "input '{name}': '{BINARY_DATA_SIZE}' is {size} but only {} bytes of \
                             binary data are left after the JSON header",
                            binary.len() - offset
                        )
                    })?;
                let slice = binary.slice(offset..end);
                offset = end;
                slice
            }
            (None, Some(data)) => {
                let datatype: DataType = datatype_name
                    .parse()
                    .map_err(|_| format!("input '{name}': unknown datatype '{datatype_name}'"))?;
                let (bytes, count) = super::tensor_json::decode_data(datatype, data)
                    .map_err(|error| format!("input '{name}': 'data': {error}"))?;
                if let Some(expected) = element_count(&shape)
                    && expected != count
                {
                    return Err(format!(
                        "input '{name}': 'data' has {count} elements but shape {shape:?} holds \
                         {expected}"
                    ));
                }
                Bytes::from(bytes)
            }
            (None, None) => {
                return Err(format!(
                    "input '{name}' has no 'data' (or '{BINARY_DATA_SIZE}' with binary data)"
                ));
            }
        };
        inputs.push(InferInputTensor {
            name,
            datatype: datatype_name,
            shape,
            parameters: input_parameters,
        });
        raw.push(contents);
    }
    if offset != binary.len() {
        return Err(format!(
            "{} bytes of binary data follow the JSON header but the inputs' '{BINARY_DATA_SIZE}' \
             add up to {offset}",
            binary.len()
        ));
    }
    let mut binary_outputs = BinaryOutputs {
        all: all_binary,
        by_name: HashMap::new(),
    };
    let outputs_json: Vec<&RawValue> = match top.get("outputs") {
        Some(value) => field("outputs", value, "an array of output objects")?,
        None => Vec::new(),
    };
    let mut outputs = Vec::with_capacity(outputs_json.len());
    for (index, output) in outputs_json.iter().enumerate() {
        let at = format!("outputs[{index}].");
        let output = object(&format!("outputs[{index}]"), output)?;
        let name: String = match output.get("name") {
            Some(value) => field(&format!("{at}name"), value, "a string")?,
            None => return Err(format!("'{at}name' is missing")),
        };
        let (output_parameters, binary) = parameters(&at, output.get("parameters"), BINARY_DATA)?;
        match binary {
            None => {}
            Some(Value::Bool(binary)) => {
                binary_outputs.by_name.insert(name.clone(), binary);
            }
            Some(_) => {
                return Err(format!(
                    "output '{name}': '{BINARY_DATA}' must be a boolean"
                ));
            }
        }
        outputs.push(InferRequestedOutputTensor {
            name,
            parameters: output_parameters,
        });
    }
    Ok(DecodedRequest {
        message: ModelInferRequest {
            model_name: model.name.clone(),
            model_version: model.version.clone(),
            id,
            parameters: request_parameters,
            inputs,
            outputs,
            raw_input_contents: raw,
        },
        binary: binary_outputs,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn mlp() -> ModelRef {
        ModelRef {
            name: "mlp".into(),
            version: String::new(),
        }
    }

    fn decode_json(json: &str) -> Result<DecodedRequest, String> {
        decode(&mlp(), json.as_bytes(), &Bytes::new())
    }

    #[test]
    fn a_json_request_becomes_the_grpc_message() {
        let decoded = decode_json(
            r#"{"id":"7","parameters":{"priority":1,"binary_data_output":true},
                "inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[[1,2]]}],
                "outputs":[{"name":"y","parameters":{"binary_data":false,"classification":2}}]}"#,
        )
        .unwrap();
        let message = decoded.message;
        assert_eq!(message.model_name, "mlp");
        assert_eq!(message.id, "7");
        assert_eq!(
            message.parameters["priority"].choice,
            Some(ParameterChoice::Int64(1))
        );
        assert!(!message.parameters.contains_key(BINARY_DATA_OUTPUT));
        assert_eq!(message.inputs[0].shape, [1, 2]);
        let expected: Vec<u8> = [1f32, 2f32].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(message.raw_input_contents[0].as_ref(), expected.as_slice());
        assert!(message.outputs[0].parameters.contains_key("classification"));
        assert!(!message.outputs[0].parameters.contains_key(BINARY_DATA));
        assert!(decoded.binary.all);
        assert!(!decoded.binary.binary("y"));
        assert!(decoded.binary.binary("z"));
    }

    #[test]
    fn binary_inputs_take_their_bytes_in_order() {
        let header = br#"{"inputs":[
            {"name":"a","shape":[2],"datatype":"UINT8","parameters":{"binary_data_size":2}},
            {"name":"b","shape":[1],"datatype":"UINT8","parameters":{"binary_data_size":1}}]}"#;
        let decoded = decode(&mlp(), header, &Bytes::from_static(&[1, 2, 3])).unwrap();
        assert_eq!(decoded.message.raw_input_contents[0].as_ref(), [1, 2]);
        assert_eq!(decoded.message.raw_input_contents[1].as_ref(), [3]);
        assert!(decoded.message.inputs[0].parameters.is_empty());
    }

    #[test]
    fn binary_sizes_must_add_up_to_the_bytes_sent() {
        let header = br#"{"inputs":[{"name":"a","shape":[2],"datatype":"UINT8",
            "parameters":{"binary_data_size":4}}]}"#;
        let error = decode(&mlp(), header, &Bytes::from_static(&[1, 2])).unwrap_err();
        assert!(
            error.contains("only 2 bytes of binary data are left"),
            "{error}"
        );
        let header = br#"{"inputs":[{"name":"a","shape":[1],"datatype":"UINT8",
            "parameters":{"binary_data_size":1}}]}"#;
        let error = decode(&mlp(), header, &Bytes::from_static(&[1, 2])).unwrap_err();
        assert!(error.contains("add up to 1"), "{error}");
        let huge = br#"{"inputs":[{"name":"a","shape":[1],"datatype":"UINT8",
            "parameters":{"binary_data_size":18446744073709551615}}]}"#;
        assert!(decode(&mlp(), huge, &Bytes::new()).is_err());
    }

    #[test]
    fn malformed_requests_name_the_field() {
        let cases = [
            ("[]", "not a JSON object"),
            ("{", "not a JSON object"),
            ("{}", "no 'inputs'"),
            (r#"{"inputs":{}}"#, "'inputs' must be an array"),
            (
                r#"{"inputs":[{"shape":[1],"datatype":"FP32","data":[1]}]}"#,
                "'inputs[0].name' is missing",
            ),
            (
                r#"{"inputs":[{"name":"x","shape":"1","datatype":"FP32","data":[1]}]}"#,
                "'inputs[0].shape' must be an array of integers",
            ),
            (
                r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1]}]}"#,
                "'data' has 1 elements but shape [2] holds 2",
            ),
            (
                r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP33","data":[1]}]}"#,
                "unknown datatype 'FP33'",
            ),
            (
                r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}"#,
                "has no 'data'",
            ),
            (
                r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":["a"]}]}"#,
                "input 'x': 'data': element 0",
            ),
            (r#"{"id":5,"inputs":[]}"#, "'id' must be a string"),
            (
                r#"{"parameters":{"p":[1]},"inputs":[]}"#,
                "parameter 'p' must be",
            ),
            (
                r#"{"inputs":[],"outputs":[{"parameters":{}}]}"#,
                "'outputs[0].name' is missing",
            ),
            (
                r#"{"inputs":[],"outputs":[{"name":"y","parameters":{"binary_data":1}}]}"#,
                "'binary_data' must be a boolean",
            ),
        ];
        for (json, expected) in cases {
            let error = decode_json(json).unwrap_err();
            assert!(error.contains(expected), "{json}: {error}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_recursed_into() {
        let deep = format!(
            r#"{{"inputs":[{{"name":"x","shape":[1],"datatype":"FP32","data":{}1{}}}]}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(decode_json(&deep).is_err());
    }
}
