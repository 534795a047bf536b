//! BYTES tensors through the batcher: requests' length-prefixed inputs concatenate into one
//! batch of elements, and a BYTES output (rows of any size) is cut back into each request's
//! rows by walking the length prefixes.

mod common;

use std::time::Duration;

use common::*;
use ferroserve_batcher::{BatchError, NextBatch, Request};
use ferroserve_tensor::{decode_bytes_offsets, encode_bytes};
use proptest::prelude::*;

/// A request whose one BYTES input of shape [rows, per_row] holds `elements`.
fn text_request(token: u32, per_row: i64, elements: &[&[u8]]) -> Request<Vec<u8>, u32> {
    let rows = i64::try_from(elements.len()).expect("small") / per_row;
    Request {
        inputs: vec![encode_bytes(elements.iter().copied()).expect("small elements")],
        shapes: vec![vec![rows, per_row]],
        token,
        priority: 0,
        timeout_us: 0,
        deadline: None,
    }
}

#[test]
fn bytes_inputs_concatenate_into_the_batchs_elements() {
    let queue = queue(batching(8));
    submit(&queue, text_request(1, 2, &[b"ab", b""]));
    submit(
        &queue,
        text_request(2, 2, &[b"c\0d", b"\xff", b"", b"long"]),
    );
    let batch = batch(&queue, Duration::ZERO);
    assert_eq!(batch.inputs[0].shape, vec![3, 2]);
    let data = batch.inputs[0].data.as_ref();
    let elements: Vec<&[u8]> = decode_bytes_offsets(data, 6)
        .expect("well formed")
        .into_iter()
        .map(|range| &data[range])
        .collect();
    let expected: [&[u8]; 6] = [b"ab", b"", b"c\0d", b"\xff", b"", b"long"];
    assert_eq!(elements, expected);
}

#[test]
fn a_bytes_output_is_cut_at_each_requests_rows() {
    let queue = queue(batching(8));
    submit(&queue, text_request(1, 1, &[b"first"]));
    submit(&queue, text_request(2, 1, &[b"", b"x", b"yz"]));
    submit(&queue, text_request(3, 1, &[b"a much longer string"]));
    let batch = batch(&queue, Duration::ZERO);
    // An echo model: its output is its input.
    let output = batch.inputs[0].data.as_ref();
    let pieces = batch.split_bytes(output, 5, 5).expect("5 rows of 1");
    let expected = [
        encode_bytes([b"first".as_slice()]).expect("small"),
        encode_bytes([b"".as_slice(), b"x", b"yz"]).expect("small"),
        encode_bytes([b"a much longer string".as_slice()]).expect("small"),
    ];
    assert_eq!(
        pieces,
        expected.iter().map(Vec::as_slice).collect::<Vec<_>>()
    );
}

#[test]
fn a_malformed_bytes_output_is_an_error_not_a_panic() {
    let queue = queue(batching(8));
    submit(&queue, text_request(1, 1, &[b"ab"]));
    submit(&queue, text_request(2, 1, &[b"cd"]));
    let batch = batch(&queue, Duration::ZERO);
    let output = batch.inputs[0].data.as_ref().to_vec();
    assert!(matches!(
        batch.split_bytes(&output, 3, 3),
        Err(BatchError::OutputRows {
            expected: 2,
            actual: 3,
            ..
        })
    ));
    // 3 elements do not make 2 equal rows; a cut-off element; a stray byte after the last one.
    for (bytes, elements) in [
        (&output[..], 3),
        (&output[..output.len() - 1], 2),
        (&[&output[..], &[0]].concat()[..], 2),
    ] {
        assert!(matches!(
            batch.split_bytes(bytes, 2, elements),
            Err(BatchError::OutputElements { .. })
        ));
    }
}

#[test]
fn without_batching_the_request_gets_the_whole_bytes_output() {
    let queue = queue(batching(0));
    submit(&queue, text_request(1, 2, &[b"a", b"bc"]));
    let batch = batch(&queue, Duration::ZERO);
    let output = encode_bytes([b"anything".as_slice()]).expect("small");
    assert_eq!(
        batch.split_bytes(&output, 9, 1).expect("one request"),
        [&output[..]]
    );
}

/// Requests of 1-3 rows of 1-3 elements each, elements of 0-20 bytes (empty ones included).
fn text_requests() -> impl Strategy<Value = (i64, Vec<Vec<Vec<u8>>>)> {
    (1i64..=3).prop_flat_map(|per_row| {
        let element = prop::collection::vec(any::<u8>(), 0..20);
        let request = (1usize..=3).prop_flat_map(move |rows| {
            prop::collection::vec(element.clone(), rows * per_row as usize)
        });
        (Just(per_row), prop::collection::vec(request, 1..30))
    })
}

proptest! {
    #[test]
    fn split_of_concat_returns_each_request_its_elements(
        (per_row, requests) in text_requests(),
        max_batch_size in 3usize..=9,
    ) {
        let queue = queue(batching(max_batch_size));
        for (token, elements) in requests.iter().enumerate() {
            let slices: Vec<&[u8]> = elements.iter().map(Vec::as_slice).collect();
            queue.submit(text_request(token as u32, per_row, &slices))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        let mut seen = vec![false; requests.len()];
        while let NextBatch::Batch(batch) = queue.next_batch(Duration::ZERO) {
            let output = batch.inputs[0].data.as_ref();
            let elements = batch.size() * per_row as usize;
            let pieces = batch.split_bytes(output, batch.size(), elements)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(pieces.len(), batch.tokens.len());
            for (&token, piece) in batch.tokens.iter().zip(pieces) {
                let sent = &requests[token as usize];
                let expected = encode_bytes(sent.iter().map(Vec::as_slice))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(piece, &expected[..]);
                prop_assert!(!seen[token as usize], "token {} twice", token);
                seen[token as usize] = true;
            }
        }
        prop_assert!(seen.iter().all(|&s| s), "some request never came out");
    }
}
