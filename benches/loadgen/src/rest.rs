//! The KServe v2 REST request and the check of its answer: `POST /v2/models/{m}/infer` with
//! JSON tensors (the encoding every v2 server speaks: each input's values in a flat `data`
//! array) or with Triton's binary tensor data extension (a JSON header, its length in
//! `Inference-Header-Content-Length`, then each input's raw bytes; outputs asked in binary
//! too). Built once per run, by hand like the protobuf (a few fields need no serializer).

use std::fmt::Write;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};

use crate::proto::{Parameter, ParameterValue, TensorSpec, WireError};
use crate::report::quote;
use crate::tally::Failure;

/// Triton's binary tensor data extension: the length of the JSON part of a body.
pub const HEADER_LENGTH: &str = "inference-header-content-length";
/// How much of a failed answer's body the first error shows.
const EXCERPT_CHARS: usize = 300;

/// How the tensors travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Values as JSON numbers (`data`), in the request and in the answer.
    Json,
    /// Triton's binary tensor data extension, in the request and in the answer.
    Binary,
}

impl Encoding {
    /// `json` or `binary` (the `--http` flag's value).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "json" => Some(Encoding::Json),
            "binary" => Some(Encoding::Binary),
            _ => None,
        }
    }

    /// The report's `mode`.
    pub fn mode(self) -> &'static str {
        match self {
            Encoding::Json => "http-json",
            Encoding::Binary => "http-binary",
        }
    }
}

/// One request, built once: its path, body and (binary) JSON header length.
#[derive(Debug, Clone)]
pub struct RestRequest {
    /// `/v2/models/{model}[/versions/{version}]/infer`.
    pub path: String,
    /// The whole body.
    pub body: Bytes,
    /// `Inference-Header-Content-Length` (binary only).
    pub header_length: Option<usize>,
}

impl RestRequest {
    /// The request for `inputs` (spec, shape, raw little-endian contents).
    pub fn build(
        model: &str,
        version: &str,
        parameters: &[Parameter],
        inputs: &[(&TensorSpec, &[i64], &[u8])],
        encoding: Encoding,
    ) -> Result<Self, WireError> {
        let mut json = String::from("{\"inputs\":[");
        for (index, (spec, shape, raw)) in inputs.iter().enumerate() {
            if index > 0 {
                json.push(',');
            }
            let dims: Vec<String> = shape.iter().map(i64::to_string).collect();
            let _ = write!(
                json,
                "{{\"name\":{},\"shape\":[{}],\"datatype\":{},",
                quote(&spec.name),
                dims.join(","),
                quote(&spec.datatype)
            );
            match encoding {
                Encoding::Json => {
                    json.push_str("\"data\":[");
                    json_values(&mut json, &spec.datatype, raw)?;
                    json.push_str("]}");
                }
                Encoding::Binary => {
                    let _ = write!(
                        json,
                        "\"parameters\":{{\"binary_data_size\":{}}}}}",
                        raw.len()
                    );
                }
            }
        }
        json.push(']');
        let mut entries: Vec<String> = parameters.iter().map(parameter_entry).collect();
        if encoding == Encoding::Binary {
            entries.push("\"binary_data_output\":true".into());
        }
        if !entries.is_empty() {
            let _ = write!(json, ",\"parameters\":{{{}}}", entries.join(","));
        }
        json.push('}');
        let header_length = (encoding == Encoding::Binary).then_some(json.len());
        let mut body = json.into_bytes();
        if encoding == Encoding::Binary {
            for (_, _, raw) in inputs {
                body.extend_from_slice(raw);
            }
        }
        Ok(RestRequest {
            path: infer_path(model, version),
            body: Bytes::from(body),
            header_length,
        })
    }

    /// The request's `Content-Type`.
    pub fn content_type(&self) -> HeaderValue {
        HeaderValue::from_static(if self.header_length.is_some() {
            "application/octet-stream"
        } else {
            "application/json"
        })
    }
}

/// The v2 inference path; names are put in as they are (model names are path-safe).
pub fn infer_path(model: &str, version: &str) -> String {
    if version.is_empty() {
        format!("/v2/models/{model}/infer")
    } else {
        format!("/v2/models/{model}/versions/{version}/infer")
    }
}

fn parameter_entry(parameter: &Parameter) -> String {
    let value = match &parameter.value {
        ParameterValue::Bool(flag) => flag.to_string(),
        ParameterValue::Int64(number) => number.to_string(),
        ParameterValue::String(text) => quote(text),
    };
    format!("{}:{value}", quote(&parameter.key))
}

/// Appends `raw` (little-endian elements of `datatype`) as comma-separated JSON values.
fn json_values(out: &mut String, datatype: &str, raw: &[u8]) -> Result<(), WireError> {
    let unsupported = || WireError::Datatype(datatype.to_owned());
    let size = match datatype {
        "BOOL" | "UINT8" | "INT8" => 1,
        "UINT16" | "INT16" | "FP16" | "BF16" => 2,
        "UINT32" | "INT32" | "FP32" => 4,
        "UINT64" | "INT64" | "FP64" => 8,
        _ => return Err(unsupported()),
    };
    for (index, element) in raw.chunks_exact(size).enumerate() {
        if index > 0 {
            out.push(',');
        }
        let mut bytes = [0u8; 8];
        bytes[..size].copy_from_slice(element);
        let bits = u64::from_le_bytes(bytes);
        // Each arm reads the element's own width; the truncating casts pick those bits.
        #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
        let _ = match datatype {
            "BOOL" => write!(out, "{}", bits != 0),
            "UINT8" | "UINT16" | "UINT32" | "UINT64" => write!(out, "{bits}"),
            "INT8" => write!(out, "{}", bits as u8 as i8),
            "INT16" => write!(out, "{}", bits as u16 as i16),
            "INT32" => write!(out, "{}", bits as u32 as i32),
            "INT64" => write!(out, "{}", bits as i64),
            "FP16" => write!(out, "{}", half_to_f32(bits as u16)),
            "BF16" => write!(out, "{}", f32::from_bits((bits as u32) << 16)),
            "FP32" => write!(out, "{}", f32::from_bits(bits as u32)),
            _ => write!(out, "{}", f64::from_bits(bits)),
        };
    }
    Ok(())
}

/// IEEE half precision to single (exact: every half is a float).
fn half_to_f32(half: u16) -> f32 {
    let sign = if half & 0x8000 == 0 { 1.0 } else { -1.0 };
    let exponent = i32::from((half >> 10) & 0x1F);
    let mantissa = f32::from(half & 0x3FF);
    sign * match exponent {
        0 => mantissa * 2f32.powi(-24),
        31 if mantissa == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        _ => (1.0 + mantissa / 1024.0) * 2f32.powi(exponent - 15),
    }
}

/// An answer counts when its status is 2xx and its JSON (the part before any binary tensors)
/// is an object that names its `outputs`; anything else is a failure: `HTTP <status>` with
/// the start of the body, or `malformed answer`.
pub(crate) fn check_answer(
    status: StatusCode,
    header_length: Option<&HeaderValue>,
    body: &[u8],
) -> Result<(), Failure> {
    if !status.is_success() {
        return Err(Failure {
            kind: format!("HTTP {}", status.as_u16()),
            message: excerpt(body),
        });
    }
    let malformed = |why: String| Failure {
        kind: "malformed answer".to_owned(),
        message: why,
    };
    let json = match header_length {
        None => body,
        Some(value) => {
            let length = value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<usize>().ok())
                .ok_or_else(|| malformed(format!("{HEADER_LENGTH}: {value:?}")))?;
            body.get(..length).ok_or_else(|| {
                malformed(format!(
                    "{HEADER_LENGTH} {length} past the body's {} bytes",
                    body.len()
                ))
            })?
        }
    };
    let object = json.trim_ascii_start().starts_with(b"{");
    if object && json.windows(9).any(|window| window == b"\"outputs\"") {
        Ok(())
    } else {
        Err(malformed(format!("no outputs in {}", excerpt(json))))
    }
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mlp_input(rows: u64) -> (TensorSpec, Vec<i64>, Vec<u8>) {
        let spec = TensorSpec::parse("input:FP32:4").expect("valid");
        let shape = spec.shape(rows);
        let raw = [1.5f32, -0.25, 0.0, 3.0]
            .iter()
            .cycle()
            .take(4 * usize::try_from(rows).expect("small"))
            .flat_map(|value| value.to_le_bytes())
            .collect();
        (spec, shape, raw)
    }

    #[test]
    fn a_json_request_carries_its_values_as_numbers() {
        let (spec, shape, raw) = mlp_input(2);
        let request = RestRequest::build("mlp", "", &[], &[(&spec, &shape, &raw)], Encoding::Json)
            .expect("built");
        assert_eq!(request.path, "/v2/models/mlp/infer");
        assert_eq!(request.header_length, None);
        assert_eq!(request.content_type(), "application/json");
        assert_eq!(
            request.body,
            r#"{"inputs":[{"name":"input","shape":[2,4],"datatype":"FP32","data":[1.5,-0.25,0,3,1.5,-0.25,0,3]}]}"#
        );
    }

    #[test]
    fn a_binary_request_is_a_json_header_then_the_raw_bytes() {
        let (spec, shape, raw) = mlp_input(1);
        let priority = Parameter::parse("priority=2").expect("valid");
        let tag = Parameter::parse("tag=a\"b").expect("valid");
        let request = RestRequest::build(
            "mlp",
            "3",
            &[priority, tag],
            &[(&spec, &shape, &raw)],
            Encoding::Binary,
        )
        .expect("built");
        let header = r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}],"parameters":{"priority":2,"tag":"a\"b","binary_data_output":true}}"#;
        assert_eq!(request.path, "/v2/models/mlp/versions/3/infer");
        assert_eq!(request.header_length, Some(header.len()));
        assert_eq!(request.content_type(), "application/octet-stream");
        assert_eq!(&request.body[..header.len()], header.as_bytes());
        assert_eq!(&request.body[header.len()..], &raw[..]);
    }

    #[test]
    fn every_datatype_is_written_as_json() {
        let write = |datatype: &str, raw: &[u8]| {
            let mut out = String::new();
            json_values(&mut out, datatype, raw).map(|()| out)
        };
        assert_eq!(write("BOOL", &[0, 1]).as_deref(), Ok("false,true"));
        assert_eq!(write("INT8", &[0xFF, 7]).as_deref(), Ok("-1,7"));
        assert_eq!(write("UINT16", &[0xFF, 0xFF]).as_deref(), Ok("65535"));
        assert_eq!(write("INT32", &(-5i32).to_le_bytes()).as_deref(), Ok("-5"));
        assert_eq!(
            write("INT64", &i64::MIN.to_le_bytes()).as_deref(),
            Ok("-9223372036854775808")
        );
        assert_eq!(write("FP64", &0.1f64.to_le_bytes()).as_deref(), Ok("0.1"));
        assert_eq!(
            write("FP16", &[0x00, 0x3C, 0x00, 0xBC, 0x01, 0x00]).as_deref(),
            Ok("1,-1,0.000000059604645")
        );
        assert_eq!(write("BF16", &[0x80, 0x3F]).as_deref(), Ok("1"));
        assert_eq!(
            write("BYTES", &[1]),
            Err(WireError::Datatype("BYTES".into()))
        );
    }

    #[test]
    fn answers_with_outputs_count() {
        let json = br#"{"model_name":"mlp","outputs":[{"name":"output","data":[0.5]}]}"#;
        assert!(check_answer(StatusCode::OK, None, json).is_ok());
        let mut binary =
            br#" {"outputs":[{"name":"output","parameters":{"binary_data_size":4}}]}"#.to_vec();
        let length = HeaderValue::from(binary.len());
        binary.extend_from_slice(&[0, 0, 0, 0]);
        assert!(check_answer(StatusCode::OK, Some(&length), &binary).is_ok());
    }

    #[test]
    fn failed_and_malformed_answers_say_why() {
        let failure = check_answer(
            StatusCode::BAD_REQUEST,
            None,
            br#"{"error":"no such input"}"#,
        )
        .expect_err("a 400");
        assert_eq!(failure.kind, "HTTP 400");
        assert_eq!(failure.message, r#"{"error":"no such input"}"#);
        let long = vec![b'x'; 1000];
        let failure =
            check_answer(StatusCode::INTERNAL_SERVER_ERROR, None, &long).expect_err("500");
        assert_eq!(failure.message.len(), EXCERPT_CHARS + 3);
        for (header, body) in [
            (None, &br#"{"model_name":"mlp"}"#[..]),
            (None, &b"[\"outputs\"]"[..]),
            (Some(HeaderValue::from(99)), &br#"{"outputs":[]}"#[..]),
            (
                Some(HeaderValue::from_static("ten")),
                &br#"{"outputs":[]}"#[..],
            ),
            // The header's length cuts the JSON before its outputs.
            (
                Some(HeaderValue::from(5)),
                &br#"{"id":"1","outputs":[]}"#[..],
            ),
        ] {
            let failure = check_answer(StatusCode::OK, header.as_ref(), body).expect_err("bad");
            assert_eq!(failure.kind, "malformed answer", "{}", failure.message);
        }
    }
}
