//! The BYTES wire format of `raw_input_contents` / `raw_output_contents`: each element is a
//! 4-byte little-endian u32 length followed by that many bytes, elements back to back in
//! row-major order (KServe v2 protocol, "Raw tensor data" / Triton `BYTES` serialization).

use std::ops::Range;

use crate::TensorError;

/// Size of the little-endian u32 length prefix before each element.
const PREFIX: usize = 4;

/// Reads the length prefix at `pos`, or `None` if fewer than 4 bytes remain.
fn prefix_at(raw: &[u8], pos: usize) -> Option<usize> {
    let bytes: [u8; PREFIX] = raw.get(pos..pos.checked_add(PREFIX)?)?.try_into().ok()?;
    // A u32 always fits in usize on the 32- and 64-bit targets we build for.
    usize::try_from(u32::from_le_bytes(bytes)).ok()
}

/// Parses one element at `pos`: its data range, or the error naming element `index`.
fn element_at(raw: &[u8], pos: usize, index: usize) -> Result<Range<usize>, TensorError> {
    let remaining = raw.len() - pos;
    let length =
        prefix_at(raw, pos).ok_or(TensorError::TruncatedLengthPrefix { index, remaining })?;
    let start = pos + PREFIX;
    let remaining = raw.len() - start;
    if length > remaining {
        return Err(TensorError::ElementOverrun {
            index,
            claimed: length,
            remaining,
        });
    }
    Ok(start..start + length)
}

/// Counts the whole elements in `raw[pos..]`, or `None` if they do not parse to the end.
fn count_whole_elements(raw: &[u8], mut pos: usize) -> Option<usize> {
    let mut count = 0;
    while pos < raw.len() {
        pos = element_at(raw, pos, count).ok()?.end;
        count += 1;
    }
    Some(count)
}

/// Walks the `expected_count` elements of `raw` in order, handing `visit` each one's index and
/// data range (without its prefix), and allocates nothing: the fast-path matcher and the native
/// engine's string tensors use it on every request. A huge claimed count costs nothing either:
/// the walk ends where the buffer does.
///
/// Errors name the first problem: a truncated length prefix or an element longer than what is
/// left (with its index), too few whole elements or more whole elements than expected (count
/// mismatch), or bytes after the last expected element that do not parse as elements; or the
/// first error `visit` returns (elements after it are not read).
pub fn walk_bytes_elements<E: From<TensorError>>(
    raw: &[u8],
    expected_count: usize,
    mut visit: impl FnMut(usize, Range<usize>) -> Result<(), E>,
) -> Result<(), E> {
    let mut pos = 0;
    for index in 0..expected_count {
        if pos == raw.len() {
            return Err(TensorError::CountMismatch {
                expected: expected_count,
                actual: index,
            }
            .into());
        }
        let range = element_at(raw, pos, index)?;
        pos = range.end;
        visit(index, range)?;
    }
    if pos < raw.len() {
        return Err(match count_whole_elements(raw, pos) {
            Some(extra) => TensorError::CountMismatch {
                expected: expected_count,
                actual: expected_count + extra,
            },
            None => TensorError::TrailingBytes {
                count: expected_count,
                trailing: raw.len() - pos,
            },
        }
        .into());
    }
    Ok(())
}

/// The data range (without its prefix) of each of the `expected_count` elements in `raw`, with
/// the errors of [`walk_bytes_elements`].
pub fn decode_bytes_offsets(
    raw: &[u8],
    expected_count: usize,
) -> Result<Vec<Range<usize>>, TensorError> {
    // Every element needs at least its prefix: cap the reservation by what the buffer can hold
    // so that a huge claimed count cannot make us allocate.
    let mut offsets = Vec::with_capacity(expected_count.min(raw.len() / PREFIX));
    walk_bytes_elements(raw, expected_count, |_, range| {
        offsets.push(range);
        Ok::<_, TensorError>(())
    })?;
    Ok(offsets)
}

/// Where the element after the next `count` whole elements from `pos` starts: how a batch's
/// BYTES output is cut into its requests' rows, which have no fixed size. `None` when `raw`
/// ends inside those elements.
pub fn skip_bytes_elements(raw: &[u8], mut pos: usize, count: usize) -> Option<usize> {
    for _ in 0..count {
        let length = prefix_at(raw, pos)?;
        pos = (pos + PREFIX)
            .checked_add(length)
            .filter(|&end| end <= raw.len())?;
    }
    Some(pos)
}

/// Serializes `elements` in the BYTES wire format.
///
/// Fails only for an element of 4 GiB or more, whose length does not fit the u32 prefix.
pub fn encode_bytes<'a, I>(elements: I) -> Result<Vec<u8>, TensorError>
where
    I: IntoIterator<Item = &'a [u8]>,
    I::IntoIter: Clone,
{
    let elements = elements.into_iter();
    let total = elements.clone().try_fold(0usize, |total, element| {
        total.checked_add(PREFIX + element.len())
    });
    let mut out = Vec::with_capacity(total.unwrap_or(0));
    for (index, element) in elements.enumerate() {
        let length = u32::try_from(element.len()).map_err(|_| TensorError::ElementTooLarge {
            index,
            length: element.len(),
        })?;
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(element);
    }
    Ok(out)
}

/// Checks that every element (`ranges` from [`decode_bytes_offsets`]) is valid UTF-8.
pub fn check_utf8(raw: &[u8], ranges: &[Range<usize>]) -> Result<(), TensorError> {
    for (index, range) in ranges.iter().enumerate() {
        if let Err(error) = std::str::from_utf8(&raw[range.clone()]) {
            return Err(TensorError::NotUtf8 {
                index,
                valid_up_to: error.valid_up_to(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode(raw: &[u8], count: usize) -> Result<Vec<&[u8]>, TensorError> {
        Ok(decode_bytes_offsets(raw, count)?
            .into_iter()
            .map(|range| &raw[range])
            .collect())
    }

    #[test]
    fn encodes_little_endian_prefixes() {
        let raw = encode_bytes([b"ab".as_slice(), b"".as_slice(), b"xyz".as_slice()])
            .expect("small elements");
        assert_eq!(raw, b"\x02\0\0\0ab\0\0\0\0\x03\0\0\0xyz");
        assert_eq!(decode(&raw, 3), Ok(vec![b"ab".as_slice(), b"", b"xyz"]));
    }

    #[test]
    fn empty_tensor_is_empty_buffer() {
        assert_eq!(encode_bytes(std::iter::empty::<&[u8]>()), Ok(Vec::new()));
        assert_eq!(decode(b"", 0), Ok(vec![]));
    }

    #[test]
    fn truncated_prefix_names_the_element() {
        let mut raw = encode_bytes([b"ab".as_slice()]).expect("small elements");
        raw.extend_from_slice(&[1, 0]);
        assert_eq!(
            decode(&raw, 2),
            Err(TensorError::TruncatedLengthPrefix {
                index: 1,
                remaining: 2
            })
        );
    }

    #[test]
    fn overrun_names_claimed_and_remaining() {
        let raw = b"\x02\0\0\0ab\x09\0\0\0xyz";
        assert_eq!(
            decode(raw, 2),
            Err(TensorError::ElementOverrun {
                index: 1,
                claimed: 9,
                remaining: 3
            })
        );
    }

    #[test]
    fn too_few_elements_is_a_count_mismatch() {
        let raw = encode_bytes([b"a".as_slice(), b"b".as_slice()]).expect("small elements");
        assert_eq!(
            decode(&raw, 3),
            Err(TensorError::CountMismatch {
                expected: 3,
                actual: 2
            })
        );
    }

    #[test]
    fn too_many_whole_elements_is_a_count_mismatch() {
        let raw = encode_bytes([b"a".as_slice(), b"b".as_slice(), b"c".as_slice()])
            .expect("small elements");
        assert_eq!(
            decode(&raw, 1),
            Err(TensorError::CountMismatch {
                expected: 1,
                actual: 3
            })
        );
    }

    #[test]
    fn garbage_after_the_last_element_is_trailing_bytes() {
        let mut raw = encode_bytes([b"a".as_slice()]).expect("small elements");
        raw.extend_from_slice(&[7, 7, 7]);
        assert_eq!(
            decode(&raw, 1),
            Err(TensorError::TrailingBytes {
                count: 1,
                trailing: 3
            })
        );
    }

    #[test]
    fn huge_count_does_not_allocate() {
        assert_eq!(
            decode(b"", usize::MAX),
            Err(TensorError::CountMismatch {
                expected: usize::MAX,
                actual: 0
            })
        );
    }

    proptest! {
        #[test]
        fn round_trip(elements in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..20)) {
            let raw = encode_bytes(elements.iter().map(Vec::as_slice)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let decoded = decode(&raw, elements.len()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(decoded, elements.iter().map(Vec::as_slice).collect::<Vec<_>>());
        }

        #[test]
        fn any_truncation_is_an_error(
            elements in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..16), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let raw = encode_bytes(elements.iter().map(Vec::as_slice)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let cut = cut.index(raw.len());
            prop_assert!(decode(&raw[..cut], elements.len()).is_err());
        }

        #[test]
        fn skipping_walks_the_same_elements_as_decoding(
            elements in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..16), 0..12),
        ) {
            let raw = encode_bytes(elements.iter().map(Vec::as_slice)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let ranges = decode_bytes_offsets(&raw, elements.len()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut pos = 0;
            for range in &ranges {
                pos = skip_bytes_elements(&raw, pos, 1).ok_or_else(|| TestCaseError::fail("ended early"))?;
                prop_assert_eq!(pos, range.end);
            }
            prop_assert_eq!(skip_bytes_elements(&raw, 0, elements.len()), Some(raw.len()));
        }

        #[test]
        fn arbitrary_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..64), count in 0usize..10) {
            let _ = decode_bytes_offsets(&raw, count);
        }
    }

    #[test]
    fn the_walk_stops_at_the_first_error_of_visit() {
        let raw = encode_bytes([b"a".as_slice(), b"\xff".as_slice(), b"c".as_slice()])
            .expect("small elements");
        let mut seen = Vec::new();
        let walked = walk_bytes_elements(&raw, 3, |index, range| {
            seen.push(index);
            std::str::from_utf8(&raw[range])
                .map(drop)
                .map_err(|error| TensorError::NotUtf8 {
                    index,
                    valid_up_to: error.valid_up_to(),
                })
        });
        assert_eq!(
            walked,
            Err(TensorError::NotUtf8 {
                index: 1,
                valid_up_to: 0
            })
        );
        assert_eq!(seen, vec![0, 1]);
    }

    #[test]
    fn skipping_elements_finds_the_next_one() {
        let raw = encode_bytes([b"ab".as_slice(), b"".as_slice(), b"xyz".as_slice()])
            .expect("small elements");
        assert_eq!(skip_bytes_elements(&raw, 0, 0), Some(0));
        assert_eq!(skip_bytes_elements(&raw, 0, 1), Some(6));
        assert_eq!(skip_bytes_elements(&raw, 6, 1), Some(10));
        assert_eq!(skip_bytes_elements(&raw, 0, 3), Some(raw.len()));
        assert_eq!(skip_bytes_elements(&raw, 0, 4), None);
        assert_eq!(skip_bytes_elements(&raw[..raw.len() - 1], 0, 3), None);
        assert_eq!(skip_bytes_elements(&raw, 0, usize::MAX), None);
    }

    #[test]
    fn utf8_check_names_the_element() {
        let raw = encode_bytes([b"ok".as_slice(), b"\xff\xfe".as_slice()]).expect("encodes");
        let ranges = decode_bytes_offsets(&raw, 2).expect("decodes");
        assert_eq!(
            check_utf8(&raw, &ranges),
            Err(TensorError::NotUtf8 {
                index: 1,
                valid_up_to: 0
            })
        );
        assert_eq!(check_utf8(&raw, &ranges[..1]), Ok(()));
    }
}
