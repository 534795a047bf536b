//! `parse_infer_request` and the fast path's `match_request` against an arbitrary signature:
//! never a panic, and a matched request's parts lie inside the message with the sizes its
//! shapes need.
#![no_main]

use arbitrary::Arbitrary;
use ferroserve_tensor::wire::{
    FastSignature, InputLayout, MatchedContents, match_request, parse_infer_request,
};
use libfuzzer_sys::fuzz_target;

/// Datatypes and their element sizes (0: BYTES).
const DATATYPES: [(&str, usize); 6] = [
    ("FP32", 4),
    ("INT64", 8),
    ("BYTES", 0),
    ("BOOL", 1),
    ("FP16", 2),
    ("UINT8", 1),
];

#[derive(Arbitrary, Debug)]
struct Case<'a> {
    /// Per input: datatype index and dims (negative: any size).
    inputs: Vec<(u8, Vec<i8>)>,
    max_batch_size: u8,
    outputs: u8,
    message: &'a [u8],
}

fuzz_target!(|case: Case<'_>| {
    let signature = FastSignature {
        inputs: case
            .inputs
            .iter()
            .take(8)
            .enumerate()
            .map(|(index, (datatype, dims))| {
                let (datatype, itemsize) = DATATYPES[usize::from(*datatype) % DATATYPES.len()];
                InputLayout {
                    name: format!("i{index}"),
                    datatype: datatype.into(),
                    shape: dims.iter().take(6).map(|&d| i64::from(d).max(-1)).collect(),
                    itemsize,
                }
            })
            .collect(),
        max_batch_size: i64::from(case.max_batch_size),
        outputs: (0..case.outputs % 4).map(|index| format!("o{index}")).collect(),
    };
    let Ok(view) = parse_infer_request(case.message) else {
        return;
    };
    let Some(matched) = match_request(case.message, &view, &signature) else {
        return;
    };
    assert_eq!(matched.shapes.len(), signature.inputs.len());
    assert!(matched.wanted.iter().all(|&index| index < signature.outputs.len()));
    if let MatchedContents::Raw(ranges) = &matched.contents {
        for ((range, shape), layout) in ranges.iter().zip(&matched.shapes).zip(&signature.inputs) {
            assert!(range.end <= case.message.len());
            if layout.itemsize > 0 {
                let elements: u128 = shape.iter().map(|&d| d as u128).product();
                assert_eq!(elements * layout.itemsize as u128, range.len() as u128);
            }
        }
    }
});
