//! Errors over HTTP as the v2 REST protocol and Triton's HTTP server answer them: an HTTP
//! status chosen from the gRPC code the same failure has on the gRPC port, and
//! `{"error": "<the same message>"}`, so a client reads the same words on either port.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};

use crate::body::{GrpcBody, full};
use crate::grpc::{Code, Status};

/// The HTTP status of a failure with gRPC code `code`, as Triton's HTTP server maps its error
/// codes (INVALID_ARG 400, NOT_FOUND 404, UNAVAILABLE 503, UNSUPPORTED 501, INTERNAL 500);
/// codes Triton has no twin for get the HTTP status that says the same.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Internal | Code::Unknown | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::AlreadyExists => StatusCode::CONFLICT,
        Code::InvalidArgument
        | Code::FailedPrecondition
        | Code::OutOfRange
        | Code::Aborted
        | Code::Cancelled => StatusCode::BAD_REQUEST,
    }
}

/// A JSON body with `status`.
pub fn json_response(status: StatusCode, json: Vec<u8>) -> Response<GrpcBody> {
    let mut response = Response::new(full(Bytes::from(json)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `{"error": message}` with `status`.
pub fn error_with(status: StatusCode, message: &str) -> Response<GrpcBody> {
    let body = serde_json::to_vec(&serde_json::json!({ "error": message }))
        .unwrap_or_else(|_| b"{\"error\":\"\"}".to_vec());
    json_response(status, body)
}

/// The answer to a failed call: its status mapped as above, its message as the error.
pub fn error_response(status: &Status) -> Response<GrpcBody> {
    error_with(http_status(status.code), &status.message)
}

/// 400 with `message`: the request itself is malformed.
pub fn bad_request(message: impl Into<String>) -> Status {
    Status::new(Code::InvalidArgument, message)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn codes_map_like_tritons_http_server() {
        assert_eq!(http_status(Code::InvalidArgument), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(Code::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(
            http_status(Code::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            http_status(Code::Unimplemented),
            StatusCode::NOT_IMPLEMENTED
        );
        assert_eq!(
            http_status(Code::Internal),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        for code in Code::ALL {
            // Every failure is an error status: nothing reads as success.
            assert_eq!(code == Code::Ok, http_status(code).is_success());
        }
    }

    #[tokio::test]
    async fn an_error_body_carries_the_message_as_json() {
        let response = error_response(&Status::new(Code::NotFound, "model 'x' \"quoted\""));
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["error"], "model 'x' \"quoted\"");
    }
}
