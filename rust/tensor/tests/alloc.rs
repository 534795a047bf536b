//! Parsing and matching a `ModelInferRequest` allocates at most `K` times the message's size
//! (plus a small constant), whatever the message holds: a client cannot make the server hold
//! more than a few times what it sent (docs/security.md). Allocations are counted per thread by
//! this test binary's allocator.
// A test that cannot set up panics: unwrap says as much as expect would here.
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ferroserve_tensor::wire::{FastSignature, InputLayout, match_request, parse_infer_request};
use proptest::prelude::*;

/// Bytes allocated per byte of message, at most.
const K: usize = 16;
/// Allocations any request may need whatever its size (a few vectors).
const CONSTANT: usize = 8 * 1024;

thread_local! {
    /// Bytes this thread asked for (growth only: a `realloc` counts what it added).
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

fn count(bytes: usize) {
    // `try_with`: the counter may be gone while the thread exits.
    let _ = ALLOCATED.try_with(|allocated| allocated.set(allocated.get() + bytes));
}

/// The system allocator, counting what each thread asks for.
struct Counting;

// SAFETY: every call is passed to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's guarantees for `layout` are the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: `pointer` was allocated by `System` with `layout` (above).
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size.saturating_sub(layout.size()));
        // SAFETY: as for `dealloc`; the caller guarantees `new_size` is valid for `layout`.
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes allocated while parsing `message` and matching it against `signature`.
fn allocated_by(message: &[u8], signature: &FastSignature) -> usize {
    let before = ALLOCATED.with(Cell::get);
    if let Ok(view) = parse_infer_request(message) {
        let matched = match_request(message, &view, signature);
        drop(matched);
        drop(view);
    }
    ALLOCATED.with(Cell::get) - before
}

fn assert_bounded(message: &[u8], signature: &FastSignature, what: &str) {
    let allocated = allocated_by(message, signature);
    assert!(
        allocated <= K * message.len() + CONSTANT,
        "{what}: {allocated} bytes allocated for a {}-byte message ({}x)",
        message.len(),
        allocated / message.len().max(1)
    );
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A length-delimited field.
fn field(number: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, (u64::from(number) << 3) | 2);
    put_varint(&mut out, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

/// The MLP's signature: one FP32 input [-1, 64], one output.
fn signature() -> FastSignature {
    FastSignature {
        inputs: vec![InputLayout {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![-1, 64],
            itemsize: 4,
        }],
        max_batch_size: 64,
        outputs: vec!["output".into()],
    }
}

/// One valid input tensor entry's payload with `dims` (packed).
fn tensor(dims: &[u64]) -> Vec<u8> {
    let mut packed = Vec::new();
    for &dim in dims {
        put_varint(&mut packed, dim);
    }
    [field(1, b"input"), field(2, b"FP32"), field(3, &packed)].concat()
}

const MANY: usize = 1 << 20;

#[test]
fn a_million_empty_entries_of_any_repeated_field() {
    for number in [4, 5, 6, 7] {
        let entry = field(number, b"");
        let message = [field(1, b"mlp"), entry.repeat(MANY)].concat();
        assert_bounded(&message, &signature(), &format!("field {number}"));
    }
}

#[test]
fn an_input_with_a_million_dims_or_contents_entries() {
    let dims = vec![1u64; MANY];
    let message = [field(1, b"mlp"), field(5, &tensor(&dims))].concat();
    assert_bounded(&message, &signature(), "dims");
    let unpacked: Vec<u8> = [0x18u8, 1].repeat(MANY); // field 3, varint 1
    let input = [field(1, b"input"), field(2, b"FP32"), unpacked].concat();
    let message = [field(1, b"mlp"), field(5, &input)].concat();
    assert_bounded(&message, &signature(), "unpacked dims");
    let contents = field(5, b"").repeat(MANY);
    let input = [tensor(&[1, 64]), contents].concat();
    let message = [field(1, b"mlp"), field(5, &input)].concat();
    assert_bounded(&message, &signature(), "contents entries");
}

#[test]
fn a_valid_request_and_typed_contents() {
    let raw = vec![0u8; 64 * 4];
    let message = [
        field(1, b"mlp"),
        field(5, &tensor(&[1, 64])),
        field(7, &raw),
    ]
    .concat();
    assert_bounded(&message, &signature(), "raw");
    // INT64 zeros packed as one byte each: the widest typed contents can grow (8x).
    let mut int_signature = signature();
    int_signature.inputs[0].datatype = "INT64".into();
    int_signature.inputs[0].itemsize = 8;
    let input = [
        field(1, b"input"),
        field(2, b"INT64"),
        field(3, &[1, 64]),
        field(5, &field(3, &[0u8; 64])),
    ]
    .concat();
    let message = [field(1, b"mlp"), field(5, &input)].concat();
    assert_bounded(&message, &int_signature, "typed");
}

/// A top-level field of `ModelInferRequest` with a small payload: any of its numbers, a few
/// entries of the nested messages, or noise.
fn top_level_field() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (1u32..=8, proptest::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(number, payload)| field(number, &payload)),
        proptest::collection::vec(1u64..70, 0..6).prop_map(|dims| field(5, &tensor(&dims))),
        Just(field(6, &field(1, b"output"))),
        proptest::collection::vec(any::<u8>(), 0..4),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever fields a message holds, and however many times each.
    #[test]
    fn any_message_allocates_a_bounded_multiple_of_its_size(
        fields in proptest::collection::vec((top_level_field(), 1usize..200), 0..20),
    ) {
        let message: Vec<u8> = fields
            .iter()
            .flat_map(|(field, times)| field.repeat(*times))
            .collect();
        assert_bounded(&message, &signature(), "generated");
    }
}
