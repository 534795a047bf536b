//! The front end end to end: a real HTTP/2 client on TCP, a stand-in engine behind a batch queue
//! and executor thread for the natively routed model "m", and a stand-in Python backend (an
//! HTTP/2 server on a Unix socket) for everything else. Covers native unary and stream answers,
//! forwarding, the message size limit, client deadlines, a missing backend and stopping.
// A test that cannot set up panics: unwrap says as much as expect would here.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use ferroserve_frontend::{Code, Method};
use ferroserve_tensor::wire;
use tokio::net::TcpStream;

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn a_routed_unary_request_is_answered_natively() {
    let h = Harness::start(true, 1 << 20);
    let address = h.frontend.address();
    h.run(async {
        let mut client = connect(&h.frontend).await;
        let raw = rows_of(2, 1);
        let message = infer_request("m", "1", "req-1", &[2, 4], &raw);
        let reply = unary(&mut client, address, MODEL_INFER, &message, None).await;
        assert_eq!(reply.status(), (0, String::new()));
        assert_eq!(reply.messages, vec![doubled_response("req-1", &raw, false)]);

        // The default version ("") is routed too; the answer names the route's version.
        let raw = rows_of(1, 40);
        let message = infer_request("m", "", "", &[1, 4], &raw);
        let reply = unary(&mut client, address, MODEL_INFER, &message, None).await;
        assert_eq!(reply.status(), (0, String::new()));
        assert_eq!(reply.messages, vec![doubled_response("", &raw, false)]);
    });
    assert_eq!(h.calls(), 2);
    assert_eq!(
        h.frontend.counters().snapshot(),
        vec![(Method::ModelInfer, Code::Ok, 2)]
    );
}

#[test]
fn a_typed_request_is_answered_natively_as_its_raw_twin() {
    let h = Harness::start(true, 1 << 20);
    let address = h.frontend.address();
    h.run(async {
        let mut client = connect(&h.frontend).await;
        let raw = rows_of(2, 1);
        let message = typed_request("typed", &[2, 4], &raw, &[]);
        let reply = unary(&mut client, address, MODEL_INFER, &message, None).await;
        assert_eq!(reply.status(), (0, String::new()));
        assert_eq!(reply.messages, vec![doubled_response("typed", &raw, false)]);
        // What the native path does not take goes to the backend, which words the error:
        // a count that does not match the shape, typed and raw contents for one input.
        let cases = [
            typed_request("short", &[2, 4], &raw[..28], &[]),
            typed_request("both", &[2, 4], &raw, &[&raw]),
        ];
        for message in cases {
            let reply = unary(&mut client, address, MODEL_INFER, &message, None).await;
            assert_eq!(reply.messages, vec![backend_answer(MODEL_INFER, &message)]);
        }
    });
    assert_eq!(h.calls(), 1);
}

#[test]
fn other_calls_are_forwarded_to_the_backend() {
    let h = Harness::start(true, 1 << 20);
    let address = h.frontend.address();
    h.run(async {
        let mut client = connect(&h.frontend).await;
        let cases = [
            // A model that is not routed.
            infer_request("other", "1", "a", &[1, 4], &rows_of(1, 0)),
            // A routed model version that is not.
            infer_request("m", "2", "b", &[1, 4], &rows_of(1, 0)),
            // A request the native path does not take (wrong shape): the backend words errors.
            infer_request("m", "1", "c", &[1, 5], &[0; 20]),
            // Too many rows for max_batch_size.
            infer_request("m", "1", "d", &[9, 4], &rows_of(9, 0)),
        ];
        for message in cases {
            let reply = unary(&mut client, address, MODEL_INFER, &message, None).await;
            assert_eq!(reply.status(), (0, String::new()));
            assert_eq!(reply.messages, vec![backend_answer(MODEL_INFER, &message)]);
        }
        let reply = unary(&mut client, address, SERVER_LIVE, b"", None).await;
        assert_eq!(reply.status(), (0, String::new()));
        assert_eq!(reply.messages, vec![backend_answer(SERVER_LIVE, b"")]);
    });
    assert_eq!(h.calls(), 0);
    assert_eq!(h.frontend.counters().snapshot(), vec![]);
}

#[test]
fn a_stream_mixes_native_and_forwarded_answers() {
    let h = Harness::start(true, 1 << 20);
    let address = h.frontend.address();
    h.run(async {
        let mut client = connect(&h.frontend).await;
        let mut stream = Stream::open(&mut client, address, None).await;
        for round in 0..3u8 {
            let raw = rows_of(usize::from(round) + 1, round * 10);
            let id = format!("native-{round}");
            stream.send(&infer_request(
                "m",
                "1",
                &id,
                &[i64::from(round) + 1, 4],
                &raw,
            ));
            assert_eq!(
                stream.next_message().await,
                doubled_response(&id, &raw, true)
            );

            let other = infer_request("other", "", &format!("fwd-{round}"), &[1, 4], &raw);
            stream.send(&other);
            assert_eq!(
                stream.next_message().await,
                [&b"backend:"[..], &other].concat()
            );
        }
        assert_eq!(stream.finish().await, (0, String::new()));
    });
    assert_eq!(h.calls(), 3);
    // The Python server took part, so it counts the call.
    assert_eq!(h.frontend.counters().snapshot(), vec![]);
}

#[test]
fn a_native_only_stream_is_counted_here() {
    let h = Harness::start(true, 1 << 20);
    let address = h.frontend.address();
    h.run(async {
        let mut client = connect(&h.frontend).await;
        let mut stream = Stream::open(&mut client, address, None).await;
        // Sent at once, before any answer is read: every one is answered.
        let mut expected = Vec::new();
        for index in 0..4u8 {
            let raw = rows_of(1, index);
            let id = format!("s{index}");
            stream.send(&infer_request("m", "", &id, &[1, 4], &raw));
            expected.push(doubled_response(&id, &raw, true));
        }
        let mut answers = Vec::new();
        for _ in 0..4 {
            answers.push(stream.next_message().await);
        }
        answers.sort();
        expected.sort();
        assert_eq!(answers, expected);
        assert_eq!(stream.finish().await, (0, String::new()));
    });
    assert_eq!(
        h.frontend.counters().snapshot(),
        vec![(Method::ModelStreamInfer, Code::Ok, 1)]
    );
}

#[test]
fn a_message_over_the_limit_is_resource_exhausted() {
    let limit = 4096;
    let h = Harness::start(true, limit);
    let address = h.frontend.address();
    h.run(async {
        let mut client = connect(&h.frontend).await;
        // Exactly at the limit: read, and forwarded (it is no ModelInferRequest).
        let at_limit = vec![7u8; limit];
        let reply = unary(&mut client, address, MODEL_INFER, &at_limit, None).await;
        assert_eq!(reply.status(), (0, String::new()));
        assert_eq!(reply.messages, vec![backend_answer(MODEL_INFER, &at_limit)]);
        let over = vec![7u8; limit + 1];
        let reply = unary(&mut client, address, MODEL_INFER, &over, None).await;
        assert_eq!(reply.status().0, 8, "{:?}", reply.status());

        let raw = vec![1u8; limit];
        let message = infer_request("m", "1", "big", &[256, 4], &raw);
        assert!(message.len() > limit);
        let reply = unary(&mut client, address, MODEL_INFER, &message, None).await;
        assert!(reply.messages.is_empty());
        let (code, text) = reply.status();
        assert_eq!(code, 8, "{text}");
        assert!(
            text.contains(&format!("({} vs. {limit})", message.len())),
            "{text}"
        );

        // In a stream the declared length alone ends the call.
        let mut stream = Stream::open(&mut client, address, None).await;
        stream.send(&message);
        let (code, text) = stream.end().await;
        assert_eq!(code, 8, "{text}");
        assert!(
            text.contains(&format!("({} vs. {limit})", message.len())),
            "{text}"
        );

        // The connection still serves calls.
        let raw = rows_of(1, 3);
        let ok = infer_request("m", "1", "", &[1, 4], &raw);
        let reply = unary(&mut client, address, MODEL_INFER, &ok, None).await;
        assert_eq!(reply.messages, vec![doubled_response("", &raw, false)]);
    });
    assert_eq!(h.calls(), 1);
    assert_eq!(
        h.frontend.counters().snapshot(),
        vec![
            (Method::ModelInfer, Code::Ok, 1),
            (Method::ModelInfer, Code::ResourceExhausted, 2),
            (Method::ModelStreamInfer, Code::ResourceExhausted, 1),
        ]
    );
}

#[test]
fn a_request_that_cannot_run_in_time_is_deadline_exceeded_and_never_runs() {
    let h = Harness::start(true, 1 << 20);
    let address = h.frontend.address();
    h.run(async {
        let mut client = connect(&h.frontend).await;
        // The slow request holds the only executor thread.
        let slow_raw = [vec![SLOW_MARKER], vec![1; 15]].concat();
        let slow = infer_request("m", "1", "slow", &[1, 4], &slow_raw);
        let mut slow_client = client.clone();
        let slow_call = tokio::spawn(async move {
            unary(&mut slow_client, address, MODEL_INFER, &slow, None).await
        });
        while h.calls() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }

        let started = Instant::now();
        let raw = rows_of(1, 5);
        let late = infer_request("m", "1", "late", &[1, 4], &raw);
        let mut stream_client = client.clone();
        let stream_call = async move {
            let mut stream = Stream::open(&mut stream_client, address, Some("50m")).await;
            let late = infer_request("m", "1", "late-stream", &[1, 4], &raw);
            stream.send(&late);
            let answer = stream.next_message().await;
            (answer, stream.finish().await)
        };
        let (reply, (stream_answer, stream_status)) = tokio::join!(
            unary(&mut client, address, MODEL_INFER, &late, Some("50m")),
            stream_call
        );
        let elapsed = started.elapsed();
        assert!(
            !slow_call.is_finished(),
            "answered only after the slow request"
        );

        let (code, text) = reply.status();
        assert_eq!(code, 4, "{text}");
        assert!(text.contains("deadline exceeded"), "{text}");
        assert!(reply.messages.is_empty());
        // In a stream, the failed request gets an error message and the stream goes on.
        assert_eq!(
            stream_answer,
            wire::encode_stream_error(b"m", b"1", b"late-stream", "model 'm': deadline exceeded")
        );
        assert_eq!(stream_status, (0, String::new()));
        assert!(elapsed < SLOW, "answered after {elapsed:?}");
        assert_eq!(h.queue.pending(), 0, "the late requests left the queue");

        let reply = slow_call.await.unwrap();
        assert_eq!(reply.status(), (0, String::new()));
        assert_eq!(
            reply.messages,
            vec![doubled_response("slow", &slow_raw, false)]
        );
        // Time for the executor to pick up anything left behind.
        tokio::time::sleep(Duration::from_millis(50)).await;
    });
    assert_eq!(h.calls(), 1, "the late requests ran");
    assert_eq!(
        h.frontend.counters().snapshot(),
        vec![
            (Method::ModelInfer, Code::Ok, 1),
            (Method::ModelInfer, Code::DeadlineExceeded, 1),
            (Method::ModelStreamInfer, Code::Ok, 1),
        ]
    );
}

#[test]
fn a_missing_backend_is_unavailable() {
    let h = Harness::start(false, 1 << 20);
    let address = h.frontend.address();
    let socket = h.socket.display().to_string();
    h.run(async {
        let mut client = connect(&h.frontend).await;
        let reply = unary(&mut client, address, SERVER_LIVE, b"", None).await;
        let (code, text) = reply.status();
        assert_eq!(code, 14, "{text}");
        // It says what is wrong, not where the server's files are.
        assert!(text.contains("not reachable"), "{text}");
        assert!(!text.contains(&socket), "{text}");
        assert!(reply.trailers.is_none(), "a trailers-only response");

        // In a stream, native messages are answered; a forwarded one fails the stream with the
        // same status.
        let mut stream = Stream::open(&mut client, address, None).await;
        let raw = rows_of(1, 9);
        stream.send(&infer_request("m", "1", "n", &[1, 4], &raw));
        assert_eq!(
            stream.next_message().await,
            doubled_response("n", &raw, true)
        );
        stream.send(&infer_request("other", "", "", &[1, 4], &rows_of(1, 0)));
        let (code, text) = stream.finish().await;
        assert_eq!(code, 14, "{text}");
        assert!(!text.contains(&socket), "{text}");

        // The native path does not need the backend.
        let message = infer_request("m", "1", "n", &[1, 4], &raw);
        let reply = unary(&mut client, address, MODEL_INFER, &message, None).await;
        assert_eq!(reply.messages, vec![doubled_response("n", &raw, false)]);
    });
}

#[test]
fn a_failed_forwarded_stream_ends_without_waiting_for_the_client() {
    let h = Harness::start(false, 1 << 20);
    let address = h.frontend.address();
    h.run(async {
        let mut client = connect(&h.frontend).await;
        let mut stream = Stream::open(&mut client, address, None).await;
        stream.send(&infer_request("other", "", "", &[1, 4], &rows_of(1, 0)));
        // The request stays open, as a client waiting for its answer leaves it.
        let ended = tokio::time::timeout(Duration::from_secs(1), stream.end()).await;
        let (code, text) = ended.expect("the stream did not end when its forwarded part failed");
        assert_eq!(code, 14, "{text}");
    });
}

#[test]
fn stop_lets_calls_in_flight_finish_then_refuses_connections() {
    let mut h = Harness::start(true, 1 << 20);
    let address = h.frontend.address();
    let slow_raw = [vec![SLOW_MARKER], vec![2; 15]].concat();
    let slow = infer_request("m", "1", "slow", &[1, 4], &slow_raw);
    let (slow_call, idle) = h.run(async {
        let mut client = connect(&h.frontend).await;
        // A second connection left idle must not hold stop up for the grace period.
        let idle = connect(&h.frontend).await;
        let reply = unary(&mut client, address, SERVER_LIVE, b"", None).await;
        assert_eq!(reply.status(), (0, String::new()));
        let call =
            tokio::spawn(
                async move { unary(&mut client, address, MODEL_INFER, &slow, None).await },
            );
        while h.calls() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        (call, idle)
    });

    let started = Instant::now();
    h.frontend.stop(Duration::from_secs(3));
    let stopped = started.elapsed();
    // It waited for the running call, not for the whole grace period.
    assert!(stopped < Duration::from_secs(2), "stop took {stopped:?}");

    let reply = h.run(slow_call).unwrap();
    assert_eq!(reply.status(), (0, String::new()));
    assert_eq!(
        reply.messages,
        vec![doubled_response("slow", &slow_raw, false)]
    );
    let refused = h.run(TcpStream::connect(address));
    assert!(refused.is_err(), "still accepting after stop");
    // The server closed both connections.
    assert!(idle.is_closed());
    // Stopping again does nothing.
    h.frontend.stop(Duration::ZERO);
}
