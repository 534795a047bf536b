//! The in-place parser against a real protobuf library (prost): whatever the bytes, a request
//! the fast path accepts (parsed and matched) is one protobuf accepts too, and reads the same:
//! model, version, id, shapes, raw contents, scheduling parameters, requested outputs. The
//! messages are valid requests prost writes, then mutated (bytes flipped, cut, inserted,
//! repeated), so most cases sit near the edge of validity.
// A test that cannot set up panics: unwrap says as much as expect would here.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;

use ferroserve_tensor::wire::{
    FastSignature, InputLayout, MatchedContents, match_request, parse_infer_request,
};
use proptest::prelude::*;
use prost::Message;

#[derive(Clone, PartialEq, prost::Oneof)]
enum Choice {
    #[prost(bool, tag = "1")]
    Bool(bool),
    #[prost(int64, tag = "2")]
    Int64(i64),
    #[prost(string, tag = "3")]
    Text(String),
    #[prost(double, tag = "4")]
    Double(f64),
    #[prost(uint64, tag = "5")]
    Uint64(u64),
}

#[derive(Clone, PartialEq, prost::Message)]
struct InferParameter {
    #[prost(oneof = "Choice", tags = "1, 2, 3, 4, 5")]
    choice: Option<Choice>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Contents {
    #[prost(bool, repeated, tag = "1")]
    bools: Vec<bool>,
    #[prost(int32, repeated, tag = "2")]
    ints: Vec<i32>,
    #[prost(int64, repeated, tag = "3")]
    int64s: Vec<i64>,
    #[prost(uint32, repeated, tag = "4")]
    uints: Vec<u32>,
    #[prost(uint64, repeated, tag = "5")]
    uint64s: Vec<u64>,
    #[prost(float, repeated, tag = "6")]
    fp32s: Vec<f32>,
    #[prost(double, repeated, tag = "7")]
    fp64s: Vec<f64>,
    #[prost(bytes = "vec", repeated, tag = "8")]
    bytes: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Input {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    datatype: String,
    #[prost(int64, repeated, tag = "3")]
    shape: Vec<i64>,
    #[prost(map = "string, message", tag = "4")]
    parameters: HashMap<String, InferParameter>,
    #[prost(message, optional, tag = "5")]
    contents: Option<Contents>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Output {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(map = "string, message", tag = "2")]
    parameters: HashMap<String, InferParameter>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Request {
    #[prost(string, tag = "1")]
    model_name: String,
    #[prost(string, tag = "2")]
    model_version: String,
    #[prost(string, tag = "3")]
    id: String,
    #[prost(map = "string, message", tag = "4")]
    parameters: HashMap<String, InferParameter>,
    #[prost(message, repeated, tag = "5")]
    inputs: Vec<Input>,
    #[prost(message, repeated, tag = "6")]
    outputs: Vec<Output>,
    #[prost(bytes = "vec", repeated, tag = "7")]
    raw_input_contents: Vec<Vec<u8>>,
}

fn signature() -> FastSignature {
    FastSignature {
        inputs: vec![
            InputLayout {
                name: "a".into(),
                datatype: "FP32".into(),
                shape: vec![-1, 4],
                itemsize: 4,
            },
            InputLayout {
                name: "b".into(),
                datatype: "INT64".into(),
                shape: vec![-1, 2],
                itemsize: 8,
            },
        ],
        max_batch_size: 8,
        outputs: vec!["y".into(), "z".into()],
    }
}

/// A valid request for `signature()`: `rows` rows, raw or typed contents, inputs in either
/// order, some parameters, some outputs.
fn valid_request() -> impl Strategy<Value = Request> {
    (
        1i64..=8,
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(0u64..5),
        proptest::option::of(0u64..100_000),
        proptest::collection::vec(prop_oneof![Just("y"), Just("z")], 0..3),
        "[a-z0-9]{0,8}",
    )
        .prop_map(|(rows, typed, swapped, priority, timeout, outputs, id)| {
            let elements = |width: i64| usize::try_from(rows * width).unwrap();
            let fp32: Vec<f32> = (0..elements(4)).map(|i| i as f32 * 0.5).collect();
            let int64: Vec<i64> = (0..elements(2)).map(|i| i as i64 - 3).collect();
            let mut a = Input {
                name: "a".into(),
                datatype: "FP32".into(),
                shape: vec![rows, 4],
                ..Input::default()
            };
            let mut b = Input {
                name: "b".into(),
                datatype: "INT64".into(),
                shape: vec![rows, 2],
                ..Input::default()
            };
            let mut raw = vec![
                fp32.iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect::<Vec<u8>>(),
                int64.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ];
            if typed {
                a.contents = Some(Contents {
                    fp32s: fp32,
                    ..Contents::default()
                });
                b.contents = Some(Contents {
                    int64s: int64,
                    ..Contents::default()
                });
                raw.clear();
            }
            let mut inputs = vec![a, b];
            if swapped {
                inputs.reverse();
                raw.reverse();
            }
            let mut parameters = HashMap::new();
            if let Some(priority) = priority {
                let choice = Some(Choice::Uint64(priority));
                parameters.insert("priority".into(), InferParameter { choice });
            }
            if let Some(timeout) = timeout {
                let choice = Some(Choice::Int64(i64::try_from(timeout).unwrap()));
                parameters.insert("timeout".into(), InferParameter { choice });
            }
            Request {
                model_name: "m".into(),
                model_version: "1".into(),
                id,
                parameters,
                inputs,
                outputs: outputs
                    .into_iter()
                    .map(|name| Output {
                        name: name.into(),
                        parameters: HashMap::new(),
                    })
                    .collect(),
                raw_input_contents: raw,
            }
        })
}

/// What a mutation does to the encoded bytes.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Cut(usize),
    Insert(usize, Vec<u8>),
    Repeat(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, bits)| Mutation::Flip(at, bits)),
        any::<usize>().prop_map(Mutation::Cut),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..6))
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Repeat(at, len)),
    ]
}

fn mutate(message: &mut Vec<u8>, mutation: &Mutation) {
    if message.is_empty() {
        return;
    }
    let len = message.len();
    match mutation {
        Mutation::Flip(at, bits) => message[at % len] ^= bits,
        Mutation::Cut(at) => message.truncate(at % len),
        Mutation::Insert(at, bytes) => {
            let at = at % len;
            message.splice(at..at, bytes.iter().copied());
        }
        Mutation::Repeat(at, count) => {
            let start = at % len;
            let end = (start + count).min(len);
            let copy = message[start..end].to_vec();
            message.splice(end..end, copy);
        }
    }
}

/// The parameter `key` as the fast path reads it (0 when absent).
fn scheduling(parameters: &HashMap<String, InferParameter>, key: &str) -> u64 {
    match parameters.get(key).and_then(|p| p.choice.clone()) {
        Some(Choice::Uint64(value)) => value,
        Some(Choice::Int64(value)) => u64::try_from(value).unwrap(),
        _ => 0,
    }
}

/// Checks that the fast path, if it takes `message`, agrees with protobuf on everything it read.
fn agrees_with_protobuf(message: &[u8]) -> Result<bool, TestCaseError> {
    let Ok(view) = parse_infer_request(message) else {
        return Ok(false);
    };
    let signature = signature();
    let Some(matched) = match_request(message, &view, &signature) else {
        return Ok(false);
    };
    let decoded = Request::decode(message);
    prop_assert!(
        decoded.is_ok(),
        "protobuf refuses a request the fast path took: {decoded:?}"
    );
    let decoded = decoded.unwrap();
    let text = |range: &std::ops::Range<usize>| &message[range.clone()];
    prop_assert_eq!(text(&view.model_name), decoded.model_name.as_bytes());
    prop_assert_eq!(text(&view.model_version), decoded.model_version.as_bytes());
    prop_assert_eq!(text(&view.id), decoded.id.as_bytes());
    prop_assert_eq!(view.priority, scheduling(&decoded.parameters, "priority"));
    prop_assert_eq!(view.timeout_us, scheduling(&decoded.parameters, "timeout"));
    for (position, layout) in signature.inputs.iter().enumerate() {
        let index = decoded
            .inputs
            .iter()
            .position(|input| input.name == layout.name)
            .unwrap();
        let input = &decoded.inputs[index];
        prop_assert_eq!(&matched.shapes[position], &input.shape);
        match &matched.contents {
            MatchedContents::Raw(ranges) => {
                prop_assert_eq!(
                    text(&ranges[position]),
                    &decoded.raw_input_contents[index][..]
                );
            }
            MatchedContents::Converted(buffers) => {
                let contents = input.contents.clone().unwrap_or_default();
                if layout.datatype == "FP32" {
                    // A NaN may come out quieted, as the general path (numpy, through Python's
                    // float) writes it: equal as values, not as bits.
                    let got: Vec<f32> = buffers[position]
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                    prop_assert_eq!(got.len(), contents.fp32s.len());
                    for (got, want) in got.iter().zip(&contents.fp32s) {
                        let same =
                            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan());
                        prop_assert!(same, "{} read as {}", want, got);
                    }
                } else {
                    let want: Vec<u8> = contents
                        .int64s
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect();
                    prop_assert_eq!(&buffers[position], &want);
                }
            }
        }
    }
    let wanted: Vec<&str> = matched
        .wanted
        .iter()
        .map(|&index| signature.outputs[index].as_str())
        .collect();
    let asked: Vec<&str> = if decoded.outputs.is_empty() {
        vec!["y", "z"]
    } else {
        decoded.outputs.iter().map(|o| o.name.as_str()).collect()
    };
    prop_assert_eq!(wanted, asked);
    Ok(true)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Valid requests as protobuf writes them are all taken, and read as protobuf reads them.
    #[test]
    fn valid_requests_are_taken_and_read_alike(request in valid_request()) {
        let message = request.encode_to_vec();
        prop_assert!(agrees_with_protobuf(&message)?, "a valid request was not taken");
    }

    /// Mutated requests: whatever the fast path takes, protobuf accepts and reads alike.
    #[test]
    fn mutated_requests_taken_are_valid_protobuf(
        request in valid_request(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut message = request.encode_to_vec();
        for mutation in &mutations {
            mutate(&mut message, mutation);
        }
        agrees_with_protobuf(&message)?;
    }

    /// Arbitrary bytes: never a panic, and nothing protobuf refuses is taken.
    #[test]
    fn arbitrary_bytes_taken_are_valid_protobuf(
        message in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        agrees_with_protobuf(&message)?;
    }
}
