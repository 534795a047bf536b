//! gRPC over HTTP/2, the parts the load generator and the echo need: the service's paths, the
//! 5-byte message framing, status codes from trailers (and HTTP statuses mapped to them).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::HeaderMap;

use crate::proto::WireError;

/// The unary inference RPC.
pub const MODEL_INFER: &str = "/inference.GRPCInferenceService/ModelInfer";
/// The bidirectional streaming inference RPC.
pub const MODEL_STREAM_INFER: &str = "/inference.GRPCInferenceService/ModelStreamInfer";
/// Health RPCs the echo answers, so anything that waits for a server to be ready can wait
/// for it too.
pub const SERVER_LIVE: &str = "/inference.GRPCInferenceService/ServerLive";
/// See [`SERVER_LIVE`].
pub const SERVER_READY: &str = "/inference.GRPCInferenceService/ServerReady";
/// See [`SERVER_LIVE`].
pub const MODEL_READY: &str = "/inference.GRPCInferenceService/ModelReady";

/// One message with gRPC's length prefix (not compressed).
pub fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(message);
    out.freeze()
}

/// Splits a received byte stream into gRPC messages.
#[derive(Debug, Default)]
pub struct Deframer {
    buffer: BytesMut,
}

impl Deframer {
    /// Adds received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// The next whole message, None until one is complete.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, WireError> {
        if self.buffer.len() < 5 {
            return Ok(None);
        }
        if self.buffer[0] != 0 {
            return Err(WireError::Compressed);
        }
        let len = u32::from_be_bytes([
            self.buffer[1],
            self.buffer[2],
            self.buffer[3],
            self.buffer[4],
        ]) as usize;
        if self.buffer.len() < 5 + len {
            return Ok(None);
        }
        self.buffer.advance(5);
        Ok(Some(self.buffer.split_to(len).freeze()))
    }

    /// Whether bytes of an unfinished message are left.
    pub fn has_partial(&self) -> bool {
        !self.buffer.is_empty()
    }
}

/// gRPC status code names (`grpc.StatusCode`), by number.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The canonical name of a status code (UNKNOWN for a number gRPC does not define).
pub fn code_name(code: u32) -> &'static str {
    usize::try_from(code)
        .ok()
        .and_then(|index| CODE_NAMES.get(index))
        .copied()
        .unwrap_or("UNKNOWN")
}

/// The number of a status code name.
pub fn code_number(name: &str) -> Option<u32> {
    CODE_NAMES
        .iter()
        .position(|known| *known == name)
        .and_then(|index| u32::try_from(index).ok())
}

/// `grpc-status` and the percent-decoded `grpc-message` of trailers (or of a trailers-only
/// answer's headers); None when there is no `grpc-status`.
pub fn status(headers: &HeaderMap) -> Option<(u32, String)> {
    let code = headers.get("grpc-status")?;
    let code = std::str::from_utf8(code.as_bytes())
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(2);
    let message = headers
        .get("grpc-message")
        .map(|value| percent_decode(value.as_bytes()))
        .unwrap_or_default();
    Some((code, message))
}

/// gRPC's percent-encoding of `grpc-message`, undone (a malformed escape is kept as is).
fn percent_decode(value: &[u8]) -> String {
    let mut out = Vec::with_capacity(value.len());
    let mut index = 0;
    while index < value.len() {
        let hex = value
            .get(index + 1..index + 3)
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u8::from_str_radix(digits, 16).ok());
        match (value[index], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                index += 3;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The gRPC code a non-200 HTTP status maps to (gRPC's "HTTP to gRPC Status Code Mapping").
pub fn code_for_http_status(status: http::StatusCode) -> u32 {
    match status.as_u16() {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502..=504 => 14,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_split_across_chunks_come_out_whole() {
        let mut stream = Vec::new();
        stream.extend_from_slice(&frame(b"hello"));
        stream.extend_from_slice(&frame(b""));
        stream.extend_from_slice(&frame(&[7; 300]));
        let mut deframer = Deframer::default();
        let mut out = Vec::new();
        for chunk in stream.chunks(3) {
            deframer.push(chunk);
            while let Some(message) = deframer.next_message().expect("uncompressed") {
                out.push(message);
            }
        }
        assert_eq!(out, vec![&b"hello"[..], &b""[..], &[7u8; 300][..]]);
        assert!(!deframer.has_partial());
    }

    #[test]
    fn statuses_read_from_trailers() {
        let mut headers = HeaderMap::new();
        assert_eq!(status(&headers), None);
        headers.insert("grpc-status", "5".parse().expect("header"));
        headers.insert(
            "grpc-message",
            "model%20%25x%C3%A9 not found".parse().expect("header"),
        );
        assert_eq!(status(&headers), Some((5, "model %xé not found".into())));
        assert_eq!(code_name(5), "NOT_FOUND");
        assert_eq!(code_name(99), "UNKNOWN");
        assert_eq!(code_number("UNAVAILABLE"), Some(14));
    }
}
