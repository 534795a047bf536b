//! The KServe v2 REST protocol on its own port (`--http-port`), served by the same front end
//! as gRPC: HTTP/1.1 with keep-alive, and h2c. An inference request, JSON or with Triton's
//! binary tensor data extension, becomes the `ModelInferRequest` the gRPC path takes and goes
//! the same way (route table, fast path, batch queue, engine; the Python server for the rest),
//! and its answer is written back as JSON (and binary). Every other endpoint is the gRPC call
//! of the same name on the Python server, rendered as Triton's JSON (`control`). Bodies may be
//! compressed both ways (`coding`).

mod body;
mod coding;
mod control;
mod errors;
mod infer_request;
mod infer_response;
pub(crate) mod listener;
mod proto;
mod router;
mod tensor_json;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use prost::Message;

use crate::body::{GrpcBody, full};
use crate::grpc::{Code, Status};
use crate::restrict::Restrictions;
use crate::service::{MODEL_INFER, Service};
use errors::{bad_request, error_response, error_with, json_response};
use proto::{ModelRequest, ReadyResponse, RepositoryIndexRequest};
use router::{Endpoint, ModelRef, NoRoute};

pub use errors::http_status;
pub use router::{percent_decode, route};

/// Triton's binary tensor data extension: the JSON header's length in the body.
const HEADER_LENGTH: &str = "inference-header-content-length";

/// This API's OpenAPI description (`GET /v2/openapi.json`, docs/http.md).
const OPENAPI: &str = include_str!("openapi.json");

/// The gRPC service's method path of `name`.
fn method(name: &str) -> String {
    format!("/inference.GRPCInferenceService/{name}")
}

/// Answers REST requests with the gRPC service's state and paths.
pub struct HttpService {
    service: Arc<Service>,
    /// Triton's `--http-restricted-api`: checked before anything else.
    restrictions: Restrictions,
}

impl HttpService {
    /// REST over `service` (its routes, backend and message limit), its endpoints restricted
    /// by `restrictions`.
    pub fn new(service: Arc<Service>, restrictions: Restrictions) -> Self {
        HttpService {
            service,
            restrictions,
        }
    }

    /// Answers one request.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<GrpcBody> {
        let endpoint = match route(request.method(), request.uri().path()) {
            Ok(endpoint) => endpoint,
            Err(NoRoute::NotFound) => {
                let message = format!(
                    "no endpoint at {}; GET /v2/openapi.json lists them",
                    request.uri().path()
                );
                return error_with(StatusCode::NOT_FOUND, &message);
            }
            Err(NoRoute::Method(allowed)) => {
                let message = format!("{} takes {allowed} only", request.uri().path());
                let mut response = error_with(StatusCode::METHOD_NOT_ALLOWED, &message);
                response
                    .headers_mut()
                    .insert(http::header::ALLOW, HeaderValue::from_static(allowed));
                return response;
            }
        };
        if !self.restrictions.is_empty() {
            let headers = request.headers();
            let allowed = self
                .restrictions
                .check_protocol(endpoint.protocol(), |name| {
                    headers.get(name).map(http::HeaderValue::as_bytes)
                });
            if let Err(status) = allowed {
                return error_response(&status);
            }
        }
        let (parts, body) = request.into_parts();
        let body = if matches!(
            endpoint,
            Endpoint::Infer(_)
                | Endpoint::RepositoryIndex
                | Endpoint::RepositoryLoad(_)
                | Endpoint::RepositoryUnload(_)
        ) {
            let limit = self.service.max_message_bytes;
            let coding = match coding::request_coding(&parts.headers) {
                Ok(coding) => coding,
                Err(name) => return coding::unsupported(&name),
            };
            let read = match body::read(&parts.headers, body, limit).await {
                Ok(body) => body,
                Err(refused) => return refused,
            };
            match coding {
                None => read,
                Some(encoding) => match coding::inflate(encoding, read, limit).await {
                    Ok(inflated) => inflated,
                    Err(refused) => return refused,
                },
            }
        } else {
            Bytes::new()
        };
        let answered = match endpoint {
            Endpoint::Infer(model) => {
                let answer = self.infer(model, &parts.headers, body).await;
                // Inference answers only, as Triton: tritonclient.http's asyncio client (whose
                // aiohttp asks for gzip on every request) inflates those and reads the other
                // endpoints' answers as they come.
                return match coding::response_coding(&parts.headers) {
                    None => answer,
                    Some(encoding) => coding::compress(answer, encoding).await,
                };
            }
            Endpoint::ServerLive => Ok(empty(StatusCode::OK)),
            Endpoint::OpenApi => Ok(json_response(StatusCode::OK, OPENAPI.as_bytes().to_vec())),
            Endpoint::ServerReady => self.ready("ServerReady", Vec::new()).await,
            Endpoint::ModelReady(model) => self.ready("ModelReady", model_request(&model)).await,
            Endpoint::ServerMetadata => self.json("ServerMetadata", Vec::new(), None).await,
            Endpoint::ModelMetadata(model) => {
                self.json("ModelMetadata", model_request(&model), None)
                    .await
            }
            Endpoint::ModelConfig(model) => {
                self.json("ModelConfig", model_request(&model), Some("config"))
                    .await
            }
            Endpoint::ModelStatistics(model) => {
                let model = model.unwrap_or(ModelRef {
                    name: String::new(),
                    version: String::new(),
                });
                self.json("ModelStatistics", model_request(&model), None)
                    .await
            }
            Endpoint::RepositoryIndex => self.repository_index(&body).await,
            Endpoint::RepositoryLoad(model) => {
                self.repository_change("RepositoryModelLoad", model, &body)
                    .await
            }
            Endpoint::RepositoryUnload(model) => {
                self.repository_change("RepositoryModelUnload", model, &body)
                    .await
            }
        };
        answered.unwrap_or_else(|status| error_response(&status))
    }

    /// `GET .../ready`: 200 when ready, 400 when not (Triton's answers), the call's error
    /// otherwise.
    async fn ready(&self, name: &str, message: Vec<u8>) -> Result<Response<GrpcBody>, Status> {
        let answer = control::call(&self.service.backend, &method(name), &message).await?;
        let ready = ReadyResponse::decode(answer).map_err(|error| {
            Status::new(
                Code::Internal,
                format!("{name}'s answer does not decode: {error}"),
            )
        })?;
        Ok(empty(if ready.ready {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        }))
    }

    /// The gRPC call `name` rendered as JSON (only its field `member`, when given).
    async fn json(
        &self,
        name: &str,
        message: Vec<u8>,
        member: Option<&str>,
    ) -> Result<Response<GrpcBody>, Status> {
        let answer = control::call(&self.service.backend, &method(name), &message).await?;
        let mut value = control::render(&format!("{name}Response"), &answer)?;
        if let Some(member) = member {
            value = value
                .get_mut(member)
                .map(serde_json::Value::take)
                .unwrap_or_else(|| serde_json::json!({}));
        }
        let body = serde_json::to_vec(&value)
            .map_err(|error| Status::new(Code::Internal, error.to_string()))?;
        Ok(json_response(StatusCode::OK, body))
    }

    /// `POST /v2/repository/index` (`{"ready": bool}`, optional): the models as an array.
    async fn repository_index(&self, body: &[u8]) -> Result<Response<GrpcBody>, Status> {
        let ready = if body.iter().all(u8::is_ascii_whitespace) {
            false
        } else {
            let value: serde_json::Value = serde_json::from_slice(body)
                .map_err(|error| bad_request(format!("the body is not JSON: {error}")))?;
            match value.get("ready") {
                None => false,
                Some(serde_json::Value::Bool(ready)) => *ready,
                Some(_) => return Err(bad_request("'ready' must be a boolean")),
            }
        };
        let message = RepositoryIndexRequest {
            repository_name: String::new(),
            ready,
        }
        .encode_to_vec();
        let answer =
            control::call(&self.service.backend, &method("RepositoryIndex"), &message).await?;
        let mut value = control::render("RepositoryIndexResponse", &answer)?;
        let models = value
            .get_mut("models")
            .map(serde_json::Value::take)
            .unwrap_or_else(|| serde_json::json!([]));
        let body = serde_json::to_vec(&models)
            .map_err(|error| Status::new(Code::Internal, error.to_string()))?;
        Ok(json_response(StatusCode::OK, body))
    }

    /// `POST /v2/repository/models/{m}/load` or `.../unload`, with its optional
    /// `{"parameters": {...}}`.
    async fn repository_change(
        &self,
        name: &str,
        model: String,
        body: &[u8],
    ) -> Result<Response<GrpcBody>, Status> {
        let parameters = body::repository_parameters(body).map_err(bad_request)?;
        let message = proto::RepositoryModelRequest {
            repository_name: String::new(),
            model_name: model,
            parameters,
        }
        .encode_to_vec();
        control::call(&self.service.backend, &method(name), &message).await?;
        Ok(empty(StatusCode::OK))
    }

    /// `POST .../infer`: decoded into the gRPC request, answered by the native path when it
    /// takes it, by the Python server otherwise, and written back in the request's encoding.
    async fn infer(
        &self,
        model: ModelRef,
        headers: &http::HeaderMap,
        received: Bytes,
    ) -> Response<GrpcBody> {
        let header_length = match headers.get(HEADER_LENGTH) {
            None => None,
            Some(value) => match value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
            {
                Some(length) => Some(length),
                None => {
                    return error_response(&bad_request(format!(
                        "{HEADER_LENGTH} must be a byte count"
                    )));
                }
            },
        };
        let (header, binary) = match header_length {
            None => (received, Bytes::new()),
            Some(length) if length <= received.len() => {
                (received.slice(..length), received.slice(length..))
            }
            Some(length) => {
                return error_response(&bad_request(format!(
                    "{HEADER_LENGTH} is {length} but the body has {} bytes",
                    received.len()
                )));
            }
        };
        let decoded = match infer_request::decode(&model, &header, &binary) {
            Ok(decoded) => decoded,
            Err(message) => return error_response(&bad_request(message)),
        };
        let message = Bytes::from(decoded.message.encode_to_vec());
        let answer = match self.service.start(&message, None, false, true) {
            Some(pending) => pending.await.map(Bytes::from),
            None => control::call(&self.service.backend, MODEL_INFER, &message).await,
        };
        let encoded = answer.and_then(|answer| {
            infer_response::encode(&answer, &decoded.binary)
                .map_err(|error| Status::new(Code::Internal, error))
        });
        match encoded {
            Ok(encoded) => {
                let binary = encoded.header_length;
                let mut response = json_response(StatusCode::OK, Vec::new());
                *response.body_mut() = full(encoded.body);
                if let Some(length) = binary {
                    let headers = response.headers_mut();
                    headers.insert(HEADER_LENGTH, HeaderValue::from(length));
                    headers.insert(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/octet-stream"),
                    );
                }
                response
            }
            Err(status) => error_response(&status),
        }
    }
}

/// A request naming `model` (ModelReady, ModelMetadata, ModelConfig, ModelStatistics).
fn model_request(model: &ModelRef) -> Vec<u8> {
    ModelRequest {
        name: model.name.clone(),
        version: model.version.clone(),
    }
    .encode_to_vec()
}

/// `status` with no body.
fn empty(status: StatusCode) -> Response<GrpcBody> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = status;
    response
}
