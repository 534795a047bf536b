//! HTTP content codings, as Triton's HTTP server takes them (tritonclient.http's
//! `request_compression_algorithm` and `response_compression_algorithm`): a request body sent
//! with `Content-Encoding: gzip` or `deflate` is inflated by `compression`'s bounded two-pass
//! inflate (never past the message limit; a bomb is refused having allocated nothing), and an
//! inference answer is compressed with the coding `Accept-Encoding` prefers. Both run on a
//! blocking thread; a request with neither header costs two header lookups here.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;

use super::errors::error_with;
use crate::body::{GrpcBody, full};
use crate::compression::Encoding;
use crate::grpc::Code;

/// The codings taken, as a 415 answer's `Accept-Encoding` lists them (RFC 9110 15.5.16).
const TAKEN: &str = "gzip, deflate";

/// How the request body is encoded (`Content-Encoding`): None for identity (or no header),
/// else gzip or deflate; Err naming any other coding (`unsupported` answers it).
pub(super) fn request_coding(headers: &HeaderMap) -> Result<Option<Encoding>, String> {
    let Some(value) = headers.get(http::header::CONTENT_ENCODING) else {
        return Ok(None);
    };
    match Encoding::named(value.as_bytes()) {
        Encoding::Identity => Ok(None),
        Encoding::Unsupported(name) => Err(name),
        encoding => Ok(Some(encoding)),
    }
}

/// 415 for a body in coding `name`, naming the codings taken.
pub(super) fn unsupported(name: &str) -> Response<GrpcBody> {
    let message = format!(
        "Content-Encoding '{name}' is not supported: send the body uncompressed, or compressed \
         with gzip or deflate"
    );
    let mut response = error_with(StatusCode::UNSUPPORTED_MEDIA_TYPE, &message);
    response.headers_mut().insert(
        http::header::ACCEPT_ENCODING,
        HeaderValue::from_static(TAKEN),
    );
    response
}

/// `body` inflated, at most `limit` bytes: 413 past it (the same rule and words as a body over
/// the limit), 400 when it does not inflate.
pub(super) async fn inflate(
    encoding: Encoding,
    body: Bytes,
    limit: usize,
) -> Result<Bytes, Response<GrpcBody>> {
    crate::service::inflate(&encoding, body, limit)
        .await
        .map_err(|status| {
            let code = match status.code {
                Code::ResourceExhausted => StatusCode::PAYLOAD_TOO_LARGE,
                Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            error_with(code, &status.message)
        })
}

/// The coding to compress the answer with: the one of gzip and deflate that `Accept-Encoding`
/// gives the highest weight (the first listed among equals; `*` stands for the first of them it
/// does not name), None when it names neither or refuses both (`q=0`).
pub(super) fn response_coding(headers: &HeaderMap) -> Option<Encoding> {
    let accepted = headers.get(http::header::ACCEPT_ENCODING)?.to_str().ok()?;
    let mut best: Option<(Encoding, f32)> = None;
    let mut wildcard: Option<f32> = None;
    let (mut gzip_named, mut deflate_named) = (false, false);
    for item in accepted.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let weight = parts
            .find_map(|parameter| {
                let (key, value) = parameter.split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case("q")
                    .then(|| value.trim().parse::<f32>().ok())?
            })
            .unwrap_or(1.0);
        if name == "*" {
            wildcard = Some(weight);
            continue;
        }
        let encoding = Encoding::named(name.as_bytes());
        gzip_named |= encoding == Encoding::Gzip;
        deflate_named |= encoding == Encoding::Deflate;
        if !matches!(encoding, Encoding::Gzip | Encoding::Deflate) {
            continue;
        }
        if weight > 0.0 && best.as_ref().is_none_or(|(_, most)| weight > *most) {
            best = Some((encoding, weight));
        }
    }
    let unnamed = if !gzip_named {
        Some(Encoding::Gzip)
    } else if !deflate_named {
        Some(Encoding::Deflate)
    } else {
        None
    };
    if let (Some(weight), Some(encoding)) = (wildcard, unnamed)
        && weight > 0.0
        && best.as_ref().is_none_or(|(_, most)| weight > *most)
    {
        best = Some((encoding, weight));
    }
    best.map(|(encoding, _)| encoding)
}

/// `response` with its body compressed with `encoding` (`Content-Encoding` set, `Vary:
/// Accept-Encoding` added); an empty body, or one already encoded, is left as it is.
pub(super) async fn compress(
    response: Response<GrpcBody>,
    encoding: Encoding,
) -> Response<GrpcBody> {
    if response
        .headers()
        .contains_key(http::header::CONTENT_ENCODING)
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Every answer of the REST port is one buffer (`full`): collecting it waits for nothing.
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            return error_with(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("the answer could not be read to compress it: {error}"),
            );
        }
    };
    if body.is_empty() {
        return Response::from_parts(parts, full(body));
    }
    let name = match encoding {
        Encoding::Gzip => "gzip",
        Encoding::Deflate => "deflate",
        Encoding::Identity | Encoding::Unsupported(_) => {
            return Response::from_parts(parts, full(body));
        }
    };
    let compressed = tokio::task::spawn_blocking(move || encoding.compress(&body)).await;
    let Ok(Some(compressed)) = compressed else {
        return error_with(
            StatusCode::INTERNAL_SERVER_ERROR,
            "compressing the answer failed. This is a bug.",
        );
    };
    parts.headers.insert(
        http::header::CONTENT_ENCODING,
        HeaderValue::from_static(name),
    );
    parts.headers.remove(http::header::CONTENT_LENGTH);
    parts.headers.append(
        http::header::VARY,
        HeaderValue::from_static("accept-encoding"),
    );
    Response::from_parts(parts, full(Bytes::from(compressed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepting(value: &str) -> Option<Encoding> {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).expect("a header value"),
        );
        response_coding(&headers)
    }

    #[test]
    fn accept_encoding_picks_the_heaviest_coding_taken() {
        assert_eq!(response_coding(&HeaderMap::new()), None);
        assert_eq!(accepting("gzip"), Some(Encoding::Gzip));
        assert_eq!(accepting("deflate"), Some(Encoding::Deflate));
        // curl --compressed; browsers.
        assert_eq!(
            accepting("deflate, gzip, br, zstd"),
            Some(Encoding::Deflate)
        );
        assert_eq!(accepting("gzip, deflate, br"), Some(Encoding::Gzip));
        assert_eq!(accepting("gzip;q=0.5, deflate"), Some(Encoding::Deflate));
        assert_eq!(accepting("gzip; q=0, deflate;q=0"), None);
        assert_eq!(accepting("br, identity"), None);
        assert_eq!(accepting("*"), Some(Encoding::Gzip));
        assert_eq!(accepting("gzip;q=0, *"), Some(Encoding::Deflate));
        assert_eq!(accepting("gzip;q=0, deflate;q=0, *"), None);
        assert_eq!(accepting("DEFLATE;Q=0.9, *;q=0.1"), Some(Encoding::Deflate));
    }

    #[test]
    fn content_encoding_other_than_gzip_or_deflate_is_415_naming_them() {
        let mut headers = HeaderMap::new();
        assert!(matches!(request_coding(&headers), Ok(None)));
        headers.insert(
            http::header::CONTENT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        assert!(matches!(request_coding(&headers), Ok(None)));
        headers.insert(
            http::header::CONTENT_ENCODING,
            HeaderValue::from_static("gzip"),
        );
        assert!(matches!(request_coding(&headers), Ok(Some(Encoding::Gzip))));
        headers.insert(
            http::header::CONTENT_ENCODING,
            HeaderValue::from_static("br"),
        );
        let Err(name) = request_coding(&headers) else {
            panic!("br taken")
        };
        let refused = unsupported(&name);
        assert_eq!(refused.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(refused.headers()[http::header::ACCEPT_ENCODING], TAKEN);
    }
}
