//! A raw HTTP/2 client that writes frames by hand, for what a well-behaved client never does:
//! reset streams as fast as it opens them, send headers that never end, declare a message and
//! go quiet, stop reading.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types.
pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const GOAWAY: u8 = 7;
pub const WINDOW_UPDATE: u8 = 8;
pub const CONTINUATION: u8 = 9;

/// Flags.
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// One frame: 9-byte header and payload.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("frame too long");
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK header block of literal fields without indexing (no Huffman, names and values
/// under 127 bytes).
pub fn header_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        assert!(name.len() < 127 && value.len() < 127);
        out.push(0x00);
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.push(value.len() as u8);
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// The request headers of a gRPC call to `path`.
pub fn grpc_headers(path: &str) -> Vec<u8> {
    header_block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ])
}

/// A TCP connection speaking raw HTTP/2 frames.
pub struct RawConnection {
    pub stream: TcpStream,
}

impl RawConnection {
    /// Connects and sends the preface and an empty SETTINGS frame.
    pub async fn open(address: SocketAddr) -> Self {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream.write_all(PREFACE).await.expect("preface");
        stream
            .write_all(&frame(SETTINGS, 0, 0, &[]))
            .await
            .expect("settings");
        RawConnection { stream }
    }

    /// Writes bytes; false once the server closed the connection.
    pub async fn send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    /// The next frame's type and payload; None once the connection is closed.
    pub async fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut header = [0u8; 9];
        self.stream.read_exact(&mut header).await.ok()?;
        let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0; len];
        self.stream.read_exact(&mut payload).await.ok()?;
        Some((header[3], payload))
    }

    /// Reads frames until the server closes the connection or sends GOAWAY; the GOAWAY's
    /// error code if it sent one.
    pub async fn until_closed(&mut self) -> Option<u32> {
        loop {
            let (kind, payload) = self.next_frame().await?;
            if kind == GOAWAY && payload.len() >= 8 {
                return Some(u32::from_be_bytes([
                    payload[4], payload[5], payload[6], payload[7],
                ]));
            }
        }
    }

    /// Whether the connection is still open, without GOAWAY, after reading what the server
    /// sends for `quiet`.
    pub async fn still_open_after(&mut self, quiet: std::time::Duration) -> bool {
        let watch = tokio::time::timeout(quiet, async {
            loop {
                match self.next_frame().await {
                    Some((GOAWAY, _)) | None => return,
                    Some(_) => {}
                }
            }
        });
        watch.await.is_err()
    }
}
