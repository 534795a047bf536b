//! Request bodies: read within the message limit (a declared `Content-Length` over it is
//! refused before a byte is read; a chunked body is counted as it arrives), and the model
//! repository calls' small JSON bodies.

use std::collections::HashMap;

use base64::Engine;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::errors::error_with;
use super::proto::{ModelRepositoryParameter, RepositoryParameterChoice};
use crate::body::GrpcBody;
use crate::grpc;

/// 413 with gRPC's wording of the same refusal.
fn too_large(len: usize, limit: usize) -> Response<GrpcBody> {
    error_with(
        StatusCode::PAYLOAD_TOO_LARGE,
        &grpc::too_large(len, limit).message,
    )
}

/// The whole body, at most `limit` bytes; else the answer to send (413, or 400 when the
/// client broke off).
pub async fn read(
    headers: &HeaderMap,
    mut body: Incoming,
    limit: usize,
) -> Result<Bytes, Response<GrpcBody>> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if let Some(declared) = declared
        && declared > limit as u64
    {
        return Err(too_large(
            usize::try_from(declared).unwrap_or(usize::MAX),
            limit,
        ));
    }
    // A body in one piece is kept as it is; pieces are gathered, never beyond the limit.
    let mut first: Option<Bytes> = None;
    let mut gathered = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            error_with(
                StatusCode::BAD_REQUEST,
                &format!("reading the request body failed: {error}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let received = first.as_ref().map_or(gathered.len(), Bytes::len) + data.len();
        if received > limit {
            return Err(too_large(received, limit));
        }
        match first.take() {
            None if gathered.is_empty() => first = Some(data),
            earlier => {
                if let Some(earlier) = earlier {
                    gathered.extend_from_slice(&earlier);
                }
                gathered.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| gathered.freeze()))
}

/// The `parameters` of a load or unload body (`{"parameters": {...}}`; an empty body has
/// none): booleans, integers and strings as they are, a `file:` key's base64 text as its
/// bytes (Triton's model repository extension).
pub fn repository_parameters(
    body: &[u8],
) -> Result<HashMap<String, ModelRepositoryParameter>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(HashMap::new());
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| format!("the body is not JSON: {error}"))?;
    let parameters = match value.get("parameters") {
        None => return Ok(HashMap::new()),
        Some(serde_json::Value::Object(parameters)) => parameters,
        Some(_) => return Err("'parameters' must be an object".into()),
    };
    let mut out = HashMap::with_capacity(parameters.len());
    for (name, value) in parameters {
        let choice = match value {
            serde_json::Value::String(text) if name.starts_with("file:") => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|error| format!("parameter '{name}' is not base64: {error}"))?;
                RepositoryParameterChoice::Bytes(Bytes::from(bytes))
            }
            serde_json::Value::String(text) => RepositoryParameterChoice::String(text.clone()),
            serde_json::Value::Bool(flag) => RepositoryParameterChoice::Bool(*flag),
            serde_json::Value::Number(number) if number.is_i64() => {
                RepositoryParameterChoice::Int64(number.as_i64().unwrap_or_default())
            }
            _ => {
                return Err(format!(
                    "parameter '{name}' must be a boolean, an integer or a string"
                ));
            }
        };
        out.insert(
            name.clone(),
            ModelRepositoryParameter {
                choice: Some(choice),
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn repository_parameters_keep_their_types() {
        assert!(repository_parameters(b"").unwrap().is_empty());
        assert!(repository_parameters(b"{}").unwrap().is_empty());
        let parameters = repository_parameters(
            br#"{"parameters":{"unload_dependents":false,"config":"{}","file:1/model.onnx":"AAE="}}"#,
        )
        .unwrap();
        assert_eq!(
            parameters["unload_dependents"].choice,
            Some(RepositoryParameterChoice::Bool(false))
        );
        assert_eq!(
            parameters["file:1/model.onnx"].choice,
            Some(RepositoryParameterChoice::Bytes(Bytes::from_static(&[
                0, 1
            ])))
        );
        assert!(repository_parameters(br#"{"parameters":{"x":[1]}}"#).is_err());
        assert!(repository_parameters(br#"{"parameters":{"file:a":"!"}}"#).is_err());
        assert!(repository_parameters(b"{").is_err());
    }
}
