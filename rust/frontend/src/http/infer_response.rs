//! A `ModelInferResponse` (the native path's or the Python server's) written as the v2 REST
//! answer: JSON, or with Triton's binary tensor data extension a JSON header followed by the
//! binary outputs' bytes (`Inference-Header-Content-Length` gives the header's size).

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use ferroserve_tensor::DataType;
use prost::Message;

use super::infer_request::BinaryOutputs;
use super::proto::{InferParameter, ModelInferResponse, ParameterChoice};

/// The answer's body and, when outputs are in binary, the JSON header's length.
#[derive(Debug)]
pub struct EncodedResponse {
    /// The body.
    pub body: Bytes,
    /// `Inference-Header-Content-Length`, when binary outputs follow the header.
    pub header_length: Option<usize>,
}

fn write_string(out: &mut Vec<u8>, text: &str) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

fn write_parameters(out: &mut Vec<u8>, parameters: &HashMap<String, InferParameter>) {
    out.push(b'{');
    let mut names: Vec<&String> = parameters.keys().collect();
    names.sort();
    for (index, name) in names.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_string(out, name);
        out.push(b':');
        let value = match &parameters[name].choice {
            Some(ParameterChoice::Bool(value)) => serde_json::json!(value),
            Some(ParameterChoice::Int64(value)) => serde_json::json!(value),
            Some(ParameterChoice::String(value)) => serde_json::json!(value),
            Some(ParameterChoice::Double(value)) => serde_json::json!(value),
            Some(ParameterChoice::Uint64(value)) => serde_json::json!(value),
            None => serde_json::Value::Null,
        };
        let _ = serde_json::to_writer(&mut *out, &value);
    }
    out.push(b'}');
}

/// Writes `message` (a serialized `ModelInferResponse`) as the REST answer, each output in
/// binary or JSON as `binary` says.
pub fn encode(message: &[u8], binary: &BinaryOutputs) -> Result<EncodedResponse, String> {
    let response = ModelInferResponse::decode(message)
        .map_err(|error| format!("the inference answer is not a ModelInferResponse: {error}"))?;
    if response.raw_output_contents.len() != response.outputs.len() {
        return Err(format!(
            "the inference answer has {} outputs but {} raw contents",
            response.outputs.len(),
            response.raw_output_contents.len()
        ));
    }
    let mut out = Vec::with_capacity(256 + message.len() * 2);
    out.extend_from_slice(b"{\"model_name\":");
    write_string(&mut out, &response.model_name);
    out.extend_from_slice(b",\"model_version\":");
    write_string(&mut out, &response.model_version);
    if !response.id.is_empty() {
        out.extend_from_slice(b",\"id\":");
        write_string(&mut out, &response.id);
    }
    if !response.parameters.is_empty() {
        out.extend_from_slice(b",\"parameters\":");
        write_parameters(&mut out, &response.parameters);
    }
    out.extend_from_slice(b",\"outputs\":[");
    let mut binary_parts = Vec::new();
    for (index, (output, raw)) in response
        .outputs
        .iter()
        .zip(&response.raw_output_contents)
        .enumerate()
    {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        write_string(&mut out, &output.name);
        out.extend_from_slice(b",\"datatype\":");
        write_string(&mut out, &output.datatype);
        out.extend_from_slice(b",\"shape\":[");
        let mut integer = itoa::Buffer::new();
        for (dim_index, dim) in output.shape.iter().enumerate() {
            if dim_index > 0 {
                out.push(b',');
            }
            out.extend_from_slice(integer.format(*dim).as_bytes());
        }
        out.push(b']');
        let mut parameters = output.parameters.clone();
        if binary.binary(&output.name) {
            let size = i64::try_from(raw.len()).unwrap_or(i64::MAX);
            parameters.insert(
                "binary_data_size".into(),
                InferParameter {
                    choice: Some(ParameterChoice::Int64(size)),
                },
            );
            out.extend_from_slice(b",\"parameters\":");
            write_parameters(&mut out, &parameters);
            binary_parts.push(raw.clone());
        } else {
            if !parameters.is_empty() {
                out.extend_from_slice(b",\"parameters\":");
                write_parameters(&mut out, &parameters);
            }
            let datatype: DataType = output.datatype.parse().map_err(|_| {
                format!(
                    "output '{}' has datatype '{}'",
                    output.name, output.datatype
                )
            })?;
            out.extend_from_slice(b",\"data\":");
            super::tensor_json::write_data(&mut out, datatype, raw)
                .map_err(|error| format!("output '{}': {error}", output.name))?;
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    if binary_parts.is_empty() {
        return Ok(EncodedResponse {
            body: Bytes::from(out),
            header_length: None,
        });
    }
    let header_length = out.len();
    let total = header_length + binary_parts.iter().map(Bytes::len).sum::<usize>();
    let mut body = BytesMut::with_capacity(total);
    body.extend_from_slice(&out);
    for part in binary_parts {
        body.extend_from_slice(&part);
    }
    Ok(EncodedResponse {
        body: body.freeze(),
        header_length: Some(header_length),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::proto::InferOutputTensor;
    use super::*;

    fn answer() -> Vec<u8> {
        ModelInferResponse {
            model_name: "mlp".into(),
            model_version: "1".into(),
            id: "r1".into(),
            parameters: HashMap::new(),
            outputs: vec![
                InferOutputTensor {
                    name: "y".into(),
                    datatype: "FP32".into(),
                    shape: vec![1, 2],
                    parameters: HashMap::new(),
                },
                InferOutputTensor {
                    name: "s".into(),
                    datatype: "BYTES".into(),
                    shape: vec![1],
                    parameters: HashMap::new(),
                },
            ],
            raw_output_contents: vec![
                [0.5f32, -1.0]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect::<Vec<u8>>()
                    .into(),
                Bytes::from_static(&[2, 0, 0, 0, b'h', b'i']),
            ],
        }
        .encode_to_vec()
    }

    #[test]
    fn json_outputs_are_written_as_data() {
        let encoded = encode(&answer(), &BinaryOutputs::default()).unwrap();
        assert_eq!(encoded.header_length, None);
        let value: serde_json::Value = serde_json::from_slice(&encoded.body).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"model_name": "mlp", "model_version": "1", "id": "r1",
                "outputs": [
                    {"name": "y", "datatype": "FP32", "shape": [1, 2], "data": [0.5, -1.0]},
                    {"name": "s", "datatype": "BYTES", "shape": [1], "data": ["hi"]}]})
        );
    }

    #[test]
    fn binary_outputs_follow_the_header() {
        let binary = BinaryOutputs {
            all: true,
            by_name: HashMap::from([("s".to_string(), false)]),
        };
        let encoded = encode(&answer(), &binary).unwrap();
        let length = encoded.header_length.unwrap();
        let header: serde_json::Value = serde_json::from_slice(&encoded.body[..length]).unwrap();
        assert_eq!(header["outputs"][0]["parameters"]["binary_data_size"], 8);
        assert!(header["outputs"][0].get("data").is_none());
        assert_eq!(header["outputs"][1]["data"], serde_json::json!(["hi"]));
        let expected: Vec<u8> = [0.5f32, -1.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(&encoded.body[length..], expected.as_slice());
    }

    #[test]
    fn a_malformed_answer_is_an_error_not_a_panic() {
        assert!(encode(&[0xff, 0xff], &BinaryOutputs::default()).is_err());
    }
}
