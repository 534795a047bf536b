//! The REST endpoints that are not inference: each one is the gRPC call of the same name,
//! made on the Python server behind the front end (the one implementation of readiness,
//! metadata, configuration, statistics and the model repository, with its checks: model
//! control mode, draining, not-found wording), its protobuf answer rendered as the JSON
//! Triton's HTTP server writes: protobuf's JSON mapping with the proto field names, every
//! field printed, and 64-bit integers as numbers (Triton's `ModelConfigToJson` fix-up).

use std::sync::OnceLock;

use bytes::{Buf, Bytes};
use http::{HeaderMap, HeaderValue, Request};
use http_body_util::BodyExt;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

use crate::body::full;
use crate::grpc::{self, Code, Status};
use crate::proxy::Backend;

/// The v2 protocol's descriptor set, as the Python package ships it (tools/gen_protos.py).
const DESCRIPTORS: &[u8] = include_bytes!("../../../../python/ferroserve/_proto/inference.binpb");

fn pool() -> Result<&'static DescriptorPool, Status> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(DESCRIPTORS).map_err(|error| error.to_string()))
        .as_ref()
        .map_err(|error| {
            Status::new(
                Code::Internal,
                format!("the protocol's descriptor set does not load: {error}. This is a bug."),
            )
        })
}

/// The status a gRPC answer's headers or trailers carry, if they carry one.
fn status_in(headers: &HeaderMap) -> Option<Status> {
    let code = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<u16>()
        .ok()?;
    let message = headers
        .get("grpc-message")
        .map(|value| grpc::percent_decode(value.as_bytes()))
        .unwrap_or_default();
    Some(Status::new(Code::from_number(code), message))
}

/// Calls the unary method `path` of the Python server with `message` and returns its answer
/// message, or the status it failed with.
pub async fn call(backend: &Backend, path: &str, message: &[u8]) -> Result<Bytes, Status> {
    let mut request = Request::new(full(grpc::frame(message)));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = path.parse().map_err(|_| {
        Status::new(
            Code::Internal,
            format!("'{path}' is not a path. This is a bug."),
        )
    })?;
    let headers = request.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("te", HeaderValue::from_static("trailers"));
    let response = backend.forward(request).await;
    if let Some(status) = status_in(response.headers())
        && status.code != Code::Ok
    {
        return Err(status);
    }
    let collected = response.into_body().collect().await.map_err(|error| {
        Status::new(
            Code::Unavailable,
            format!("the server's Python gRPC backend broke off its answer: {error}"),
        )
    })?;
    if let Some(status) = collected.trailers().and_then(status_in)
        && status.code != Code::Ok
    {
        return Err(status);
    }
    let mut body = collected.to_bytes();
    if body.len() < 5 {
        return Err(Status::new(
            Code::Internal,
            format!("{path} answered without a message"),
        ));
    }
    body.advance(5);
    Ok(body)
}

/// `message`, a serialized `inference.<name>`, as Triton's JSON.
pub fn render(name: &str, message: &[u8]) -> Result<serde_json::Value, Status> {
    let internal = |what: String| Status::new(Code::Internal, what);
    let descriptor = pool()?
        .get_message_by_name(&format!("inference.{name}"))
        .ok_or_else(|| internal(format!("no message inference.{name}. This is a bug.")))?;
    let decoded = DynamicMessage::decode(descriptor, message)
        .map_err(|error| internal(format!("the server's {name} does not decode: {error}")))?;
    let options = SerializeOptions::new()
        .stringify_64_bit_integers(false)
        .use_proto_field_name(true)
        .skip_default_fields(false);
    decoded
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|error| internal(format!("{name} does not render as JSON: {error}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use prost::Message;

    use super::super::proto::ModelRequest;

    #[test]
    fn answers_render_with_proto_names_and_numbers() {
        // ModelStatisticsRequest shares ModelRequest's layout: a quick valid message.
        let bytes = ModelRequest {
            name: "mlp".into(),
            version: String::new(),
        }
        .encode_to_vec();
        let value = render("ModelMetadataRequest", &bytes).unwrap();
        assert_eq!(value, serde_json::json!({"name": "mlp", "version": ""}));
        // repeated int64 shape: numbers, not protobuf's strings.
        let mut metadata = Vec::new();
        // TensorMetadata { name: "x", datatype: "FP32", shape: [-1, 64] } in outputs (5).
        let tensor: Vec<u8> = [
            &[10u8, 1, b'x', 18, 4][..],
            b"FP32",
            &[26, 11],
            &[
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 64,
            ],
        ]
        .concat();
        metadata.push(42u8);
        metadata.push(u8::try_from(tensor.len()).unwrap());
        metadata.extend_from_slice(&tensor);
        let value = render("ModelMetadataResponse", &metadata).unwrap();
        assert_eq!(value["outputs"][0]["shape"], serde_json::json!([-1, 64]));
        assert_eq!(value["inputs"], serde_json::json!([]));
    }

    #[test]
    fn a_status_is_read_from_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_static("5"));
        headers.insert("grpc-message", HeaderValue::from_static("model%20'x'"));
        assert_eq!(
            status_in(&headers),
            Some(Status::new(Code::NotFound, "model 'x'"))
        );
    }
}
