//! Hostile clients against the front end (docs/security.md): each test plays one abuse with a
//! raw HTTP/2 client and checks that the server's memory stays flat (the heap bytes this test
//! process holds, counted by its allocator), that the abuse is cut off, and that a normal
//! client is still served.
// A test that cannot set up panics: unwrap says as much as expect would here.
#![allow(clippy::unwrap_used)]

mod common;

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::raw::{self, RawConnection};
use common::*;
use ferroserve_frontend::ConnectionLimits;
use http_body_util::BodyExt;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Heap bytes allocated and not yet freed, by the whole process.
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// The most `LIVE` has been since `reset_peak`.
static PEAK: AtomicIsize = AtomicIsize::new(0);

/// Counts `bytes` more live, raising the peak.
fn grew(bytes: isize) {
    let now = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

/// The system allocator, counting live bytes.
struct Counting;

// SAFETY: every call is passed to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        // SAFETY: the caller's guarantees for `layout` are the system allocator's.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            grew(layout.size() as isize);
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: AllocLayout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            grew(layout.size() as isize);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: AllocLayout) {
        // SAFETY: `pointer` was allocated by `System` with `layout` (above).
        unsafe { System.dealloc(pointer, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: AllocLayout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; the caller guarantees `new_size` is valid for `layout`.
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            grew(new_size as isize - layout.size() as isize);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap bytes held now.
fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Starts a new peak from what is held now, which it returns.
fn reset_peak() -> isize {
    let now = live();
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// The most held since `reset_peak`.
fn peak() -> isize {
    PEAK.load(Ordering::Relaxed)
}

/// The tests measure the whole process's heap: one at a time.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

const MIB: isize = 1 << 20;

/// A normal client's call is answered natively, as usual.
async fn served(h: &Harness) {
    let address = h.frontend.address();
    let mut client = connect(&h.frontend).await;
    let raw = rows_of(1, 3);
    let request = infer_request("m", "1", "ok", &[1, 4], &raw);
    let reply = unary(&mut client, address, MODEL_INFER, &request, None).await;
    assert_eq!(reply.messages, vec![doubled_response("ok", &raw, false)]);
}

#[test]
fn streams_declaring_the_largest_message_hold_no_memory() {
    let _serial = one_at_a_time();
    let limit = 64 << 20;
    let h = Harness::start(true, limit);
    h.run(async {
        served(&h).await;
        let before = live();
        let mut connection = RawConnection::open(h.frontend.address()).await;
        // 200 calls, half of them streams, each declaring a 64 MiB message and sending 300
        // bytes of it: within HTTP/2's initial 64 KiB window, in frames large enough that h2
        // does not cut the connection for sending many small ones.
        let mut prefix = vec![0u8];
        prefix.extend_from_slice(&u32::try_from(limit).unwrap().to_be_bytes());
        for call in 0..200u32 {
            let stream = 2 * call + 1;
            let path = if call % 2 == 0 {
                MODEL_STREAM_INFER
            } else {
                MODEL_INFER
            };
            let headers = raw::frame(
                raw::HEADERS,
                raw::END_HEADERS,
                stream,
                &raw::grpc_headers(path),
            );
            assert!(connection.send(&headers).await);
            let data = [&prefix[..], &[7u8; 295][..]].concat();
            assert!(
                connection
                    .send(&raw::frame(raw::DATA, 0, stream, &data))
                    .await
            );
        }
        assert!(
            connection
                .still_open_after(Duration::from_millis(300))
                .await
        );
        let held = live() - before;
        assert!(held < 8 * MIB, "{} MiB held for 60 KB received", held / MIB);
        served(&h).await;
    });
}

/// Limits that close idle connections within a second.
fn quick_timeouts() -> ConnectionLimits {
    ConnectionLimits {
        handshake_timeout: Duration::from_millis(300),
        idle_timeout: Some(Duration::from_millis(300)),
        ..ConnectionLimits::default()
    }
}

/// Whether the server closes `stream` within `within` (it reads end of file).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    let read = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // SETTINGS, GOAWAY: read on until the close
            }
        }
    });
    read.await.is_ok()
}

#[test]
fn connections_that_send_nothing_or_stay_idle_are_closed() {
    let _serial = one_at_a_time();
    let h = Harness::with_limits(true, 1 << 20, quick_timeouts());
    let address = h.frontend.address();
    h.run(async {
        // Never sends the HTTP/2 preface.
        let mut silent = TcpStream::connect(address).await.unwrap();
        // Sends the preface, never a request.
        let mut no_request = RawConnection::open(address).await;
        // Makes one call, then nothing.
        let mut one_call = RawConnection::open(address).await;
        let request = infer_request("m", "1", "one", &[1, 4], &rows_of(1, 0));
        let headers = raw::grpc_headers(MODEL_INFER);
        assert!(
            one_call
                .send(&raw::frame(raw::HEADERS, raw::END_HEADERS, 1, &headers))
                .await
        );
        let data = raw::frame(raw::DATA, raw::END_STREAM, 1, &frame(&request));
        assert!(one_call.send(&data).await);
        // Keeps a stream open without sending on it: never idle.
        let mut client = connect(&h.frontend).await;
        let mut stream = Stream::open(&mut client, address, None).await;

        let within = Duration::from_millis(1500);
        assert!(closed_within(&mut silent, within).await, "silent");
        assert!(
            closed_within(&mut no_request.stream, within).await,
            "no request"
        );
        assert!(
            closed_within(&mut one_call.stream, within).await,
            "after one call"
        );
        let raw = rows_of(1, 9);
        stream.send(&infer_request("m", "", "late", &[1, 4], &raw));
        assert_eq!(
            stream.next_message().await,
            doubled_response("late", &raw, true)
        );
        assert_eq!(stream.finish().await, (0, String::new()));
    });
}

#[test]
fn thousands_of_idle_connections_leave_room_for_a_real_client() {
    let _serial = one_at_a_time();
    let limits = ConnectionLimits {
        max_connections: 500,
        ..ConnectionLimits::default()
    };
    let h = Harness::with_limits(true, 1 << 20, limits);
    let address = h.frontend.address();
    h.runtime.block_on(async {
        let mut idle = Vec::with_capacity(2000);
        for _ in 0..2000 {
            idle.push(TcpStream::connect(address).await.unwrap());
            assert!(h.frontend.open_connections() <= 500);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(h.frontend.open_connections() <= 500);
        let started = Instant::now();
        tokio::time::timeout(Duration::from_secs(5), served(&h))
            .await
            .expect("a real client waited over 5 s");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(h.frontend.open_connections() <= 500);
        drop(idle);
    });
}

#[test]
fn a_rapid_reset_flood_is_cut_off() {
    let _serial = one_at_a_time();
    let h = Harness::start(true, 1 << 20);
    h.run(async {
        served(&h).await;
        let before = live();
        let calls = h.calls();
        let mut connection = RawConnection::open(h.frontend.address()).await;
        let headers = raw::grpc_headers(MODEL_INFER);
        let mut burst = Vec::new();
        for call in 0..10_000u32 {
            let stream = 2 * call + 1;
            burst.extend(raw::frame(raw::HEADERS, raw::END_HEADERS, stream, &headers));
            // CANCEL
            burst.extend(raw::frame(raw::RST_STREAM, 0, stream, &8u32.to_be_bytes()));
        }
        let _ = connection.send(&burst).await;
        connection.until_closed().await;
        assert!(live() - before < 8 * MIB);
        assert_eq!(h.calls(), calls, "a reset call reached the model");
        served(&h).await;
    });
}

#[test]
fn a_continuation_flood_is_cut_off() {
    let _serial = one_at_a_time();
    let h = Harness::start(true, 1 << 20);
    h.run(async {
        let before = live();
        let mut connection = RawConnection::open(h.frontend.address()).await;
        let headers = raw::grpc_headers(MODEL_INFER);
        assert!(
            connection
                .send(&raw::frame(raw::HEADERS, 0, 1, &headers))
                .await
        );
        // Header fields that never end: 16 KiB CONTINUATION frames, up to 160 MiB.
        let filler = raw::header_block(&[("x-filler", &"a".repeat(100))]);
        let block: Vec<u8> = filler.iter().copied().cycle().take(16 * 1024).collect();
        let continuation = raw::frame(raw::CONTINUATION, 0, 1, &block);
        let mut sent = 0;
        while sent < 10_000 && connection.send(&continuation).await {
            sent += 1;
        }
        assert!(sent < 10_000, "the server read 160 MiB of headers");
        assert!(live() - before < 8 * MIB);
        served(&h).await;
    });
}

/// A request body of `limit` stream messages made as the connection takes them, counting them.
struct Endless {
    message: Bytes,
    taken: Arc<AtomicUsize>,
    limit: usize,
}

impl http_body::Body for Endless {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let taken = self.taken.fetch_add(1, Ordering::SeqCst);
        if taken >= self.limit {
            return std::task::Poll::Ready(None);
        }
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(self.message.clone()))))
    }
}

#[test]
fn a_stream_that_never_reads_its_answers_is_paused() {
    let _serial = one_at_a_time();
    let h = Harness::start(true, 1 << 20);
    let address = h.frontend.address();
    h.run(async {
        served(&h).await;
        let before = live();
        // A client with HTTP/2's smallest windows, so that what it does not read fills them
        // soon: the server is then left holding what it has not sent.
        let tcp = TcpStream::connect(address).await.unwrap();
        let (mut client, connection) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .initial_stream_window_size(65_535)
                .initial_connection_window_size(65_535)
                .handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(connection);
        let taken = Arc::new(AtomicUsize::new(0));
        let total = 100_000;
        // Over 256 bytes: h2 cuts a connection that buffers many smaller DATA frames.
        let id = "s".repeat(200);
        let body = Endless {
            message: frame(&infer_request("m", "", &id, &[8, 4], &rows_of(8, 1))),
            taken: Arc::clone(&taken),
            limit: total,
        };
        let request = grpc_request(address, MODEL_STREAM_INFER, None, body.boxed());
        client.ready().await.unwrap();
        // The answers are never read: the response is held, its body never polled.
        let _response = client.send_request(request).await.unwrap();
        // Wait until the client can send no more.
        let mut last = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = taken.load(Ordering::SeqCst);
            if now == last || now >= total {
                break;
            }
            last = now;
        }
        let sent = taken.load(Ordering::SeqCst);
        assert!(
            sent < total / 10,
            "the server read {sent} of {total} messages"
        );
        let held = live() - before;
        assert!(held < 8 * MIB, "{} MiB held", held / MIB);
        served(&h).await;
    });
}

#[test]
fn a_request_with_thousands_of_tensor_entries_is_refused_before_any_parser_builds_them() {
    let _serial = one_at_a_time();
    let h = Harness::start(true, 64 << 20);
    let address = h.frontend.address();
    h.run(async {
        // A million empty `inputs` entries: 2 MB that a protobuf parser would build into
        // ~100 MB of objects. Refused here, for a routed model and for any other (the Python
        // server would build them).
        let entries = field(5, b"").repeat(1 << 20);
        for model in ["m", "python_model"] {
            let request = [field(1, model.as_bytes()), entries.clone()].concat();
            let mut client = connect(&h.frontend).await;
            let reply = unary(&mut client, address, MODEL_INFER, &request, None).await;
            let (code, message) = reply.status();
            assert_eq!(code, 3, "{message}");
            assert!(
                message.contains("1048576 'inputs' entries; a request may have at most 4096"),
                "{message}"
            );
        }
    });
}

/// `message` gzipped, framed with the compressed flag.
fn gzip_frame(message: &[u8]) -> Bytes {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(message).unwrap();
    let mut framed = frame(&encoder.finish().unwrap()).to_vec();
    framed[0] = 1;
    framed.into()
}

/// A unary call with a compressed body.
async fn gzip_unary(h: &Harness, framed: Bytes) -> Reply {
    let address = h.frontend.address();
    let mut client = connect(&h.frontend).await;
    let mut request = grpc_request(
        address,
        MODEL_INFER,
        None,
        http_body_util::Full::new(framed).boxed(),
    );
    request
        .headers_mut()
        .insert("grpc-encoding", http::HeaderValue::from_static("gzip"));
    client.ready().await.unwrap();
    let response = client.send_request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    let mut buffer = collected.to_bytes().to_vec();
    let mut messages = Vec::new();
    while let Some(message) = take_message(&mut buffer) {
        messages.push(message);
    }
    Reply {
        headers: parts.headers,
        messages,
        trailers,
    }
}

#[test]
fn a_gzip_bomb_is_refused_at_the_limit_and_gzip_requests_are_inflated() {
    let _serial = one_at_a_time();
    let h = Harness::start(true, 1 << 20);
    h.run(async {
        // A valid request, gzipped: inflated here and answered by the Python server (the
        // stand-in answers with what it received: the inflated message).
        let raw = rows_of(2, 5);
        let request = infer_request("m", "1", "gz", &[2, 4], &raw);
        let reply = gzip_unary(&h, gzip_frame(&request)).await;
        assert_eq!(reply.messages, vec![backend_answer(MODEL_INFER, &request)]);
        assert_eq!(h.calls(), 0);
        // 16 MiB of zeros in ~70 KB: stopped at the 1 MiB limit, memory flat; it never held
        // the limit's worth of inflated bytes either (they stayed in the inflating thread's
        // malloc arena: benches/soak.py found the server growing with bombs 12 s apart).
        let bomb = gzip_frame(&vec![0; 16 << 20]);
        let before = reset_peak();
        let reply = gzip_unary(&h, bomb).await;
        let (code, message) = reply.status();
        assert_eq!(code, 8, "{message}");
        assert!(
            message.contains("once decompressed vs. 1048576"),
            "{message}"
        );
        assert!(live() - before < 8 * MIB);
        let held = peak() - before;
        assert!(
            held < MIB / 2,
            "inflating the bomb held {held} bytes at once"
        );
        served(&h).await;
    });
}

#[test]
fn a_gzip_bomb_over_http_is_413_and_allocates_nothing() {
    let _serial = one_at_a_time();
    let h = Harness::start(true, 1 << 20);
    let address = h.frontend.http_address().unwrap();
    h.run(async {
        // 16 MiB of zeros in ~70 KB, as `Content-Encoding: gzip` on the REST port: refused at
        // the 1 MiB limit by the same two-pass inflate as gRPC's (the size counted through a
        // stack buffer first), so the heap never holds the limit's worth of inflated bytes.
        let mut bomb = gzip_frame(&vec![0; 16 << 20]);
        let body = bomb.split_off(5);
        let before = reset_peak();
        let stream = TcpStream::connect(address).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        let request = http::Request::post(format!("http://{address}/v2/models/m/infer"))
            .header("host", "localhost")
            .header("content-encoding", "gzip")
            .body(http_body_util::Full::new(body))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
        let answer = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&answer);
        assert!(text.contains("once decompressed vs. 1048576"), "{text}");
        assert!(live() - before < 8 * MIB);
        let held = peak() - before;
        assert!(
            held < MIB / 2,
            "inflating the bomb held {held} bytes at once"
        );
        served(&h).await;
    });
    assert_eq!(h.calls(), 1);
}
