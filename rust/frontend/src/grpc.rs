//! gRPC over HTTP/2, the parts the front end needs: status codes and trailers, the 5-byte
//! message framing, the `grpc-timeout` header and `grpc-message`'s percent-encoding. Public
//! for the fuzz targets (fuzz/).

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};

/// gRPC status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// 0.
    Ok = 0,
    /// 1: the client went away.
    Cancelled = 1,
    /// 2.
    Unknown = 2,
    /// 3.
    InvalidArgument = 3,
    /// 4.
    DeadlineExceeded = 4,
    /// 5.
    NotFound = 5,
    /// 6.
    AlreadyExists = 6,
    /// 7.
    PermissionDenied = 7,
    /// 8: a queue or message size limit.
    ResourceExhausted = 8,
    /// 9.
    FailedPrecondition = 9,
    /// 10.
    Aborted = 10,
    /// 11.
    OutOfRange = 11,
    /// 12.
    Unimplemented = 12,
    /// 13.
    Internal = 13,
    /// 14.
    Unavailable = 14,
    /// 15.
    DataLoss = 15,
    /// 16.
    Unauthenticated = 16,
}

impl Code {
    /// Every code, by number.
    pub const ALL: [Code; 17] = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    /// The code numbered `number` (UNKNOWN for a number gRPC does not define).
    pub fn from_number(number: u16) -> Code {
        Code::ALL
            .get(usize::from(number))
            .copied()
            .unwrap_or(Code::Unknown)
    }

    /// The canonical name (`grpc.StatusCode` names), as metrics label it.
    pub fn name(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::DataLoss => "DATA_LOSS",
            Code::Unauthenticated => "UNAUTHENTICATED",
        }
    }
}

/// A call's final status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The code.
    pub code: Code,
    /// What happened and what to fix.
    pub message: String,
}

impl Status {
    /// A status with a message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Status {
            code,
            message: message.into(),
        }
    }

    /// OK.
    pub fn ok() -> Self {
        Status::new(Code::Ok, "")
    }

    /// `grpc-status` and `grpc-message` headers (trailers, or a trailers-only response's
    /// headers).
    pub fn to_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(2);
        self.write_headers(&mut headers);
        headers
    }

    /// Adds `grpc-status` and, when there is one, `grpc-message` to `headers`.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        headers.insert("grpc-status", HeaderValue::from(self.code as u16));
        if !self.message.is_empty()
            && let Ok(value) = HeaderValue::from_maybe_shared(percent_encode(&self.message))
        {
            headers.insert("grpc-message", value);
        }
    }
}

/// gRPC's percent-encoding of `grpc-message`: printable ASCII except '%' stays, every other
/// byte of the UTF-8 becomes %XX.
pub fn percent_encode(message: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(message.len());
    for &byte in message.as_bytes() {
        if (0x20..=0x7E).contains(&byte) && byte != b'%' {
            out.put_u8(byte);
        } else {
            out.extend_from_slice(format!("%{byte:02X}").as_bytes());
        }
    }
    out.freeze()
}

/// Undoes `percent_encode` (a `%` not followed by two hex digits stays as it is; bytes that
/// are not UTF-8 become U+FFFD).
pub fn percent_decode(value: &[u8]) -> String {
    let mut out = Vec::with_capacity(value.len());
    let mut index = 0;
    while index < value.len() {
        if value[index] == b'%'
            && index + 2 < value.len()
            && let Ok(byte) = u8::from_str_radix(
                std::str::from_utf8(&value[index + 1..index + 3]).unwrap_or("zz"),
                16,
            )
        {
            out.push(byte);
            index += 3;
        } else {
            out.push(value[index]);
            index += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A `grpc-timeout` value ("100m", "5S", ...: up to 8 digits and a unit), or None when it is
/// not one.
pub fn parse_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(amount.checked_mul(3600)?),
        b'M' => Duration::from_secs(amount.checked_mul(60)?),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// One message with its length prefix (uncompressed).
pub fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(message);
    out.freeze()
}

/// A framed message as read off a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Whether the sender compressed it (the native path leaves those to the backend).
    pub compressed: bool,
    /// The message bytes (without the prefix).
    pub data: Bytes,
}

/// Splits a byte stream into length-prefixed messages.
#[derive(Debug, Default)]
pub struct Deframer {
    buffer: BytesMut,
}

impl Deframer {
    /// Adds received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// The next whole message, None until one is complete; an error when its declared length
    /// is over `limit`.
    pub fn next_message(&mut self, limit: usize) -> Result<Option<Message>, Status> {
        if self.buffer.len() < 5 {
            return Ok(None);
        }
        let compressed = self.buffer[0] != 0;
        let len = u32::from_be_bytes([
            self.buffer[1],
            self.buffer[2],
            self.buffer[3],
            self.buffer[4],
        ]) as usize;
        if len > limit {
            return Err(too_large(len, limit));
        }
        // The buffer grows as bytes arrive (amortized doubling), never to the declared length:
        // a 5-byte prefix declaring the limit must not make the server hold the limit.
        if self.buffer.len() < 5 + len {
            return Ok(None);
        }
        self.buffer.advance(5);
        let data = self.buffer.split_to(len).freeze();
        Ok(Some(Message { compressed, data }))
    }

    /// Bytes held for unfinished messages (at most about twice what arrived of them).
    pub fn held(&self) -> usize {
        self.buffer.capacity()
    }

    /// Whether bytes of an unfinished message are left.
    pub fn has_partial(&self) -> bool {
        !self.buffer.is_empty()
    }
}

/// RESOURCE_EXHAUSTED for a message over the size limit, worded like gRPC's own.
pub fn too_large(len: usize, limit: usize) -> Status {
    Status::new(
        Code::ResourceExhausted,
        format!(
            "Received message larger than max ({len} vs. {limit}); raise the server's \
             --max-message-bytes or send smaller requests"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_in_every_unit() {
        assert_eq!(parse_timeout(b"100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_timeout(b"5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_timeout(b"2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout(b"7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_timeout(b"9n"), Some(Duration::from_nanos(9)));
        assert_eq!(parse_timeout(b"m"), None);
        assert_eq!(parse_timeout(b"123456789m"), None);
        assert_eq!(parse_timeout(b"1x"), None);
        assert_eq!(parse_timeout(b"-1m"), None);
    }

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
            while let Some(message) = deframer.next_message(1000).expect("within limit") {
                out.push(message.data);
            }
        }
        assert_eq!(out, vec![&b"hello"[..], &b""[..], &[7u8; 300][..]]);
        assert!(!deframer.has_partial());
    }

    #[test]
    fn an_oversized_message_is_refused_before_it_arrives() {
        let mut deframer = Deframer::default();
        deframer.push(&[0, 0, 0, 4, 0]);
        let error = deframer.next_message(1000).expect_err("over the limit");
        assert_eq!(error.code, Code::ResourceExhausted);
        assert!(error.message.contains("1024 vs. 1000"), "{}", error.message);
    }

    #[test]
    fn a_declared_length_reserves_nothing_before_the_bytes_arrive() {
        let mut deframer = Deframer::default();
        // The prefix declares 256 MiB; 10 bytes of it arrive.
        deframer.push(&[0, 0x10, 0, 0, 0]);
        deframer.push(&[1; 10]);
        assert_eq!(deframer.next_message(1 << 30).expect("within limit"), None);
        assert!(
            deframer.buffer.capacity() < 4096,
            "{} bytes held for 15 received",
            deframer.buffer.capacity()
        );
    }

    /// `parse_timeout` written from gRPC's grammar: TimeoutValue (1 to 8 ASCII digits) and
    /// TimeoutUnit.
    fn reference_timeout(value: &[u8]) -> Option<Duration> {
        let text = std::str::from_utf8(value).ok()?;
        let unit = text.chars().last()?;
        let digits = &text[..text.len() - unit.len_utf8()];
        if !(1..=8).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let amount: u64 = digits.parse().ok()?;
        Some(match unit {
            'H' => Duration::from_secs(amount * 3600),
            'M' => Duration::from_secs(amount * 60),
            'S' => Duration::from_secs(amount),
            'm' => Duration::from_millis(amount),
            'u' => Duration::from_micros(amount),
            'n' => Duration::from_nanos(amount),
            _ => return None,
        })
    }

    proptest::proptest! {
        /// Messages come out whole and in order however the bytes are cut into chunks.
        #[test]
        fn any_messages_in_any_chunks_deframe(
            messages in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), 0..12),
            chunk in 1usize..64,
        ) {
            let stream: Vec<u8> = messages.iter().flat_map(|m| frame(m).to_vec()).collect();
            let mut deframer = Deframer::default();
            let mut out = Vec::new();
            for piece in stream.chunks(chunk) {
                deframer.push(piece);
                while let Some(message) = deframer.next_message(1000).expect("within limit") {
                    out.push(message.data.to_vec());
                }
            }
            proptest::prop_assert_eq!(out, messages);
            proptest::prop_assert!(!deframer.has_partial());
        }

        /// Any bytes: no panic, and what is held is at most about what arrived.
        #[test]
        fn arbitrary_bytes_never_hold_more_than_arrived(
            chunks in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), 0..32),
        ) {
            let mut deframer = Deframer::default();
            let mut arrived = 0;
            for chunk in &chunks {
                arrived += chunk.len();
                deframer.push(chunk);
                while let Ok(Some(_)) = deframer.next_message(usize::MAX) {}
                proptest::prop_assert!(deframer.buffer.capacity() <= 2 * arrived + 64);
            }
        }

        /// `grpc-timeout` values: exactly gRPC's grammar, whatever the bytes.
        #[test]
        fn timeouts_follow_the_grammar(
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12),
            text in "[0-9]{0,10}[HMSmun x]",
        ) {
            proptest::prop_assert_eq!(parse_timeout(&noise), reference_timeout(&noise));
            let value = text.into_bytes();
            proptest::prop_assert_eq!(parse_timeout(&value), reference_timeout(&value));
        }

        /// Every message survives `grpc-message` encoding; any header value decodes.
        #[test]
        fn percent_encoding_round_trips(text in "\\PC{0,40}", noise: Vec<u8>) {
            proptest::prop_assert_eq!(percent_decode(&percent_encode(&text)), text);
            let _ = percent_decode(&noise);
        }
    }

    #[test]
    fn messages_are_percent_encoded() {
        assert_eq!(&percent_encode("a b%c\né")[..], b"a b%25c%0A%C3%A9");
        let headers = Status::new(Code::Internal, "boom").to_headers();
        assert_eq!(headers["grpc-status"], "13");
        assert_eq!(headers["grpc-message"], "boom");
    }
}
