//! Compressed request messages (`grpc-encoding: gzip` or `deflate`, and HTTP bodies with
//! `Content-Encoding`, `http::coding`): inflated here, never past the message limit, so a small
//! compressed message cannot make the server hold gigabytes (a compression bomb); once inflated
//! they take the same way as uncompressed ones. Also compresses HTTP answers.

use std::io::{Read, Write};

use bytes::Bytes;
use flate2::Compression;
use flate2::read::{GzDecoder, ZlibDecoder};
use flate2::write::{GzEncoder, ZlibEncoder};
use http::HeaderMap;

use crate::grpc::{Code, Status};

/// The encodings a client may compress its messages with, as `grpc-accept-encoding` lists them.
pub const ACCEPTED: &str = "identity,deflate,gzip";

/// How a call's compressed messages are encoded (`grpc-encoding`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoding {
    /// None given, or `identity`: no message may be flagged compressed.
    Identity,
    /// gzip (RFC 1952).
    Gzip,
    /// `deflate`: zlib (RFC 1950), as gRPC names it.
    Deflate,
    /// Another algorithm, named.
    Unsupported(String),
}

impl Encoding {
    /// The call's encoding, from its headers.
    pub fn of(headers: &HeaderMap) -> Self {
        headers
            .get("grpc-encoding")
            .map_or(Encoding::Identity, |value| {
                Encoding::named(value.as_bytes())
            })
    }

    /// The encoding `name` names (gRPC's names, which are HTTP's content codings; HTTP's are
    /// case-insensitive and `x-gzip` is gzip, RFC 9110 8.4.1.3).
    pub fn named(name: &[u8]) -> Self {
        let name = name.trim_ascii();
        if name.eq_ignore_ascii_case(b"identity") {
            Encoding::Identity
        } else if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip") {
            Encoding::Gzip
        } else if name.eq_ignore_ascii_case(b"deflate") {
            Encoding::Deflate
        } else {
            Encoding::Unsupported(String::from_utf8_lossy(name).into_owned())
        }
    }

    /// `data` compressed (gzip or zlib) at level 1: answers are mostly tensor bytes, which
    /// compress little at any level, and the server's CPU is the scarce resource. None for
    /// `Identity` and `Unsupported`.
    pub fn compress(&self, data: &[u8]) -> Option<Vec<u8>> {
        let out = Vec::with_capacity(data.len() / 2 + 64);
        let compressed = match self {
            Encoding::Gzip => {
                let mut encoder = GzEncoder::new(out, Compression::fast());
                encoder.write_all(data).and_then(|()| encoder.finish())
            }
            Encoding::Deflate => {
                let mut encoder = ZlibEncoder::new(out, Compression::fast());
                encoder.write_all(data).and_then(|()| encoder.finish())
            }
            Encoding::Identity | Encoding::Unsupported(_) => return None,
        };
        // Writing into a Vec cannot fail.
        compressed.ok()
    }

    /// The message flagged compressed, inflated: RESOURCE_EXHAUSTED as soon as it passes
    /// `limit` bytes, UNIMPLEMENTED for an algorithm not supported, INVALID_ARGUMENT for data
    /// that does not inflate.
    ///
    /// Inflated twice: first into a small buffer on the stack, only counting, then into one
    /// buffer of exactly that size. A bomb is refused having allocated nothing: its memory,
    /// freed or not, would otherwise stay in the malloc arena of the blocking thread that
    /// inflated it, and tokio replaces an idle blocking thread after 10 s, so bombs spaced
    /// further apart grew the process by up to twice the limit each, arena after arena (found
    /// by benches/soak.py). Compressed requests are rare and answered by the Python server;
    /// the second pass is their cost.
    pub fn inflate(&self, data: &[u8], limit: usize) -> Result<Bytes, Status> {
        let size = self.inflated_size(data, limit)?;
        let mut inflated = Vec::with_capacity(size);
        let read = self
            .reader(data)?
            .take(size as u64)
            .read_to_end(&mut inflated);
        read.map_err(does_not_inflate)?;
        Ok(Bytes::from(inflated))
    }

    /// The inflated size of `data`, read through a stack buffer: RESOURCE_EXHAUSTED past
    /// `limit`.
    fn inflated_size(&self, data: &[u8], limit: usize) -> Result<usize, Status> {
        let mut reader = self.reader(data)?;
        let mut scratch = [0u8; 16 * 1024];
        let mut size = 0usize;
        loop {
            let read = reader.read(&mut scratch).map_err(does_not_inflate)?;
            if read == 0 {
                return Ok(size);
            }
            size += read;
            if size > limit {
                return Err(Status::new(
                    Code::ResourceExhausted,
                    format!(
                        "Received message larger than max (over {limit} bytes once decompressed \
                         vs. {limit}); raise the server's --grpc-max-message-bytes or send \
                         smaller requests"
                    ),
                ));
            }
        }
    }

    /// A reader inflating `data`.
    fn reader<'a>(&self, data: &'a [u8]) -> Result<Box<dyn Read + 'a>, Status> {
        Ok(match self {
            Encoding::Gzip => Box::new(GzDecoder::new(data)),
            Encoding::Deflate => Box::new(ZlibDecoder::new(data)),
            Encoding::Identity => {
                return Err(Status::new(
                    Code::InvalidArgument,
                    "a message is flagged compressed but the call's grpc-encoding is identity: \
                     send grpc-encoding gzip or deflate, or clear the flag",
                ));
            }
            Encoding::Unsupported(name) => return Err(unsupported(name)),
        })
    }
}

/// INVALID_ARGUMENT for data that does not inflate.
fn does_not_inflate(error: std::io::Error) -> Status {
    Status::new(
        Code::InvalidArgument,
        format!("the compressed message does not inflate: {error}"),
    )
}

/// UNIMPLEMENTED for a compression algorithm the server does not take.
pub fn unsupported(name: &str) -> Status {
    Status::new(
        Code::Unimplemented,
        format!(
            "grpc-encoding '{name}' is not supported: send messages compressed with {ACCEPTED}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).expect("in memory");
        encoder.finish().expect("in memory")
    }

    #[test]
    fn both_algorithms_inflate_within_the_limit() {
        let message = b"a message".repeat(100);
        assert_eq!(
            Encoding::Gzip.inflate(&gzip(&message), 900).as_deref(),
            Ok(&message[..])
        );
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(&message).expect("in memory");
        let deflated = encoder.finish().expect("in memory");
        assert_eq!(
            Encoding::Deflate.inflate(&deflated, 900).as_deref(),
            Ok(&message[..])
        );
    }

    #[test]
    fn compressed_answers_inflate_back_and_names_read_as_http_writes_them() {
        let message = b"an answer".repeat(100);
        for encoding in [Encoding::Gzip, Encoding::Deflate] {
            let compressed = encoding.compress(&message).expect("a compressing encoding");
            assert!(compressed.len() < message.len());
            assert_eq!(
                encoding.inflate(&compressed, message.len()).as_deref(),
                Ok(&message[..])
            );
        }
        assert_eq!(Encoding::Identity.compress(b"x"), None);
        assert_eq!(Encoding::named(b"GZip"), Encoding::Gzip);
        assert_eq!(Encoding::named(b" x-gzip "), Encoding::Gzip);
        assert_eq!(Encoding::named(b"Deflate"), Encoding::Deflate);
        assert_eq!(Encoding::named(b"identity"), Encoding::Identity);
        assert_eq!(
            Encoding::named(b"br"),
            Encoding::Unsupported("br".to_owned())
        );
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let bomb = gzip(&vec![0; 16 << 20]);
        assert!(bomb.len() < 64 * 1024);
        let error = Encoding::Gzip
            .inflate(&bomb, 1 << 20)
            .expect_err("over the limit");
        assert_eq!(error.code, Code::ResourceExhausted);
        assert!(
            error.message.contains("once decompressed vs. 1048576"),
            "{}",
            error.message
        );
    }

    #[test]
    fn what_cannot_inflate_says_why() {
        let error = Encoding::Gzip
            .inflate(b"not gzip", 100)
            .expect_err("corrupt");
        assert_eq!(error.code, Code::InvalidArgument);
        let error = Encoding::Unsupported("snappy".into())
            .inflate(b"", 100)
            .expect_err("unsupported");
        assert_eq!(error.code, Code::Unimplemented);
        assert!(error.message.contains("'snappy'"));
        let error = Encoding::Identity
            .inflate(b"", 100)
            .expect_err("not compressed");
        assert_eq!(error.code, Code::InvalidArgument);
    }
}
