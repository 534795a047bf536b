//! Triton's restricted protocols at the front end's door: a call of a restricted protocol
//! without its header is refused with Triton's status and words before it is answered natively
//! or forwarded; with the header it is served; other protocols are untouched.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ferroserve_frontend::{ConnectionLimits, Restrictions};

const REPOSITORY_INDEX: &str = "/inference.GRPCInferenceService/RepositoryIndex";
const REFUSED: &str =
    "This protocol is restricted, expecting header 'triton-grpc-protocol-infer-key'";

fn restricted() -> Harness {
    let restrictions = Restrictions::parse(&[
        "health,inference:infer-key=infer-value",
        "model-repository:admin-key=admin-value",
    ])
    .unwrap();
    Harness::with_config(true, 1 << 20, ConnectionLimits::default(), restrictions)
}

#[test]
fn restricted_calls_without_their_header_are_refused_before_anything_runs() {
    let h = restricted();
    let address = h.frontend.address();
    h.run(async {
        let mut client = connect(&h.frontend).await;
        let message = infer_request("m", "1", "r", &[1, 4], &rows_of(1, 3));
        // Native path: refused, the model never runs.
        let reply = unary(&mut client, address, MODEL_INFER, &message, None).await;
        assert_eq!(reply.status(), (14, REFUSED.to_owned()));
        assert!(reply.messages.is_empty());
        // The wrong value, or another protocol's header, is no better.
        let wrong = [("triton-grpc-protocol-infer-key", "infer-valuE")];
        let reply =
            unary_with_headers(&mut client, address, MODEL_INFER, &message, None, &wrong).await;
        assert_eq!(reply.status().0, 14);
        // Forwarded calls: refused here, the backend never sees them.
        let reply = unary(&mut client, address, SERVER_LIVE, b"", None).await;
        assert_eq!(reply.status(), (14, REFUSED.to_owned()));
        let infer = [("triton-grpc-protocol-infer-key", "infer-value")];
        let reply =
            unary_with_headers(&mut client, address, REPOSITORY_INDEX, b"", None, &infer).await;
        assert_eq!(
            reply.status(),
            (
                14,
                "This protocol is restricted, expecting header 'triton-grpc-protocol-admin-key'"
                    .to_owned()
            )
        );
        // A stream is refused as a whole.
        let stream = Stream::open(&mut client, address, None).await;
        assert_eq!(status_in(&stream.headers), Some((14, REFUSED.to_owned())));
    });
    assert_eq!(h.calls(), 0);
}

#[test]
fn restricted_calls_with_their_header_and_other_protocols_are_served() {
    let h = restricted();
    let address = h.frontend.address();
    h.run(async {
        let mut client = connect(&h.frontend).await;
        let infer = [("triton-grpc-protocol-infer-key", "infer-value")];
        let raw = rows_of(1, 3);
        let message = infer_request("m", "1", "r", &[1, 4], &raw);
        let reply =
            unary_with_headers(&mut client, address, MODEL_INFER, &message, None, &infer).await;
        assert_eq!(reply.status(), (0, String::new()));
        assert_eq!(reply.messages, vec![doubled_response("r", &raw, false)]);
        let reply = unary_with_headers(&mut client, address, SERVER_LIVE, b"", None, &infer).await;
        assert_eq!(reply.messages, vec![backend_answer(SERVER_LIVE, b"")]);
        let admin = [("triton-grpc-protocol-admin-key", "admin-value")];
        let reply =
            unary_with_headers(&mut client, address, REPOSITORY_INDEX, b"", None, &admin).await;
        assert_eq!(reply.messages, vec![backend_answer(REPOSITORY_INDEX, b"")]);
        // Statistics is not restricted here.
        let stats = "/inference.GRPCInferenceService/ModelStatistics";
        let reply = unary(&mut client, address, stats, b"", None).await;
        assert_eq!(reply.messages, vec![backend_answer(stats, b"")]);
    });
    assert_eq!(h.calls(), 1);
}
