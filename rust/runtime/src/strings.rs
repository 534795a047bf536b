//! onnxruntime string tensors to and from the v2 raw BYTES format (each element a u32
//! little-endian length, then its bytes). Every element is copied with its explicit length, so
//! empty strings, embedded NUL bytes and bytes that are not UTF-8 come through exactly (`ort`'s
//! own string helpers go through C strings and Rust `String`s, which lose or refuse them).
//! The layout rules are pure functions, tested without onnxruntime; the two C API calls per
//! direction are all that is left here.

use ferroserve_tensor::walk_bytes_elements;
use ort::AsPointer;
use ort::memory::Allocator;
use ort::value::{DynTensor, TensorElementType};

use crate::RuntimeError;

/// Size of the little-endian u32 length prefix before each element.
const PREFIX: usize = 4;

/// A string tensor of `shape` holding the `count` elements of `raw` (v2 raw BYTES format, as a
/// request or a batch carries it). Created by onnxruntime's CPU allocator: string tensors live
/// in host memory on every provider (CUDA runs string operators on the CPU).
pub(crate) fn string_tensor(
    name: &str,
    raw: &[u8],
    shape: &[i64],
) -> Result<DynTensor, RuntimeError> {
    let count = element_count(shape).ok_or_else(|| {
        RuntimeError::Input(format!("input '{name}' has an invalid shape {shape:?}"))
    })?;
    let mut tensor = DynTensor::new(&Allocator::default(), TensorElementType::String, shape)?;
    let value = tensor.ptr_mut();
    walk_bytes_elements(raw, count, |index, range| {
        let element = &raw[range];
        let mut buffer: *mut std::ffi::c_char = std::ptr::null_mut();
        // SAFETY: `value` is the string tensor created above, of `count` elements, and `index`
        // < `count`; onnxruntime resizes that element's std::string to `element.len()` bytes and
        // points `buffer` at them (no terminator is written or needed).
        let status = unsafe {
            (ort::api().GetResizedStringTensorElementBuffer)(
                value,
                index,
                element.len(),
                &raw mut buffer,
            )
        };
        // SAFETY: a status the C API just returned, owned by us.
        unsafe { ort::Error::result_from_status(status) }?;
        if !element.is_empty() {
            // SAFETY: `buffer` points at the element's `element.len()` writable bytes (checked
            // non-null by the status above), which nothing else references until `run`.
            unsafe {
                std::ptr::copy_nonoverlapping(element.as_ptr(), buffer.cast(), element.len());
            }
        }
        Ok::<_, RuntimeError>(())
    })
    .map_err(|error| match error {
        RuntimeError::Input(message) => {
            RuntimeError::Input(format!("input '{name}': BYTES contents: {message}"))
        }
        other => other,
    })?;
    Ok(tensor)
}

/// A string tensor's elements in the v2 raw BYTES format: read with one `GetStringTensorContent`
/// into the buffer they end up in, then given their prefixes in place.
pub(crate) fn bytes_of_strings(name: &str, tensor: &DynTensor) -> Result<Vec<u8>, RuntimeError> {
    let count = element_count(tensor.shape()).ok_or_else(|| {
        RuntimeError::Run(format!(
            "output '{name}' has an invalid shape {:?}",
            tensor.shape()
        ))
    })?;
    if count == 0 {
        return Ok(Vec::new());
    }
    let value = tensor.ptr();
    let mut content = 0usize;
    // SAFETY: `value` is a string tensor onnxruntime returned; it writes one usize.
    let status = unsafe { (ort::api().GetStringTensorDataLength)(value, &raw mut content) };
    // SAFETY: a status the C API just returned, owned by us.
    unsafe { ort::Error::result_from_status(status) }?;
    let prefixes = count
        .checked_mul(PREFIX)
        .and_then(|prefixes| prefixes.checked_add(content))
        .ok_or_else(|| RuntimeError::Run(format!("output '{name}' is too large")))?;
    let mut buffer = vec![0u8; prefixes];
    let mut offsets = vec![0usize; count];
    // SAFETY: the contents (`content` bytes, as onnxruntime just reported) go after the room
    // left for the prefixes, which is exactly `content` bytes long; `offsets` has one slot per
    // element, as the call requires.
    let status = unsafe {
        (ort::api().GetStringTensorContent)(
            value,
            buffer.as_mut_ptr().add(count * PREFIX).cast(),
            content,
            offsets.as_mut_ptr(),
            count,
        )
    };
    // SAFETY: a status the C API just returned, owned by us.
    unsafe { ort::Error::result_from_status(status) }?;
    prefix_in_place(&mut buffer, &offsets).map_err(|reason| {
        RuntimeError::Run(format!("output '{name}': {reason}. This is a bug."))
    })?;
    Ok(buffer)
}

/// Elements in `shape`, or `None` for a negative dim or an overflow.
fn element_count(shape: &[i64]) -> Option<usize> {
    shape.iter().try_fold(1usize, |count, &dim| {
        count.checked_mul(usize::try_from(dim).ok()?)
    })
}

/// Turns `buffer` into the v2 raw BYTES format in place. On entry it holds `4 * offsets.len()`
/// bytes of room, then the elements' bytes back to back, element `i` starting `offsets[i]`
/// bytes into them (what `GetStringTensorContent` writes). Element `i` moves to
/// `4 * (i + 1) + offsets[i]`, never to the right of where it was, so walking the elements in
/// order never overwrites one not yet moved; its prefix goes in the 4 bytes before it.
fn prefix_in_place(buffer: &mut [u8], offsets: &[usize]) -> Result<(), String> {
    let room = offsets.len() * PREFIX;
    let content = buffer
        .len()
        .checked_sub(room)
        .ok_or("fewer bytes than length prefixes")?;
    for (index, &start) in offsets.iter().enumerate() {
        let end = offsets.get(index + 1).copied().unwrap_or(content);
        if start > end || end > content {
            return Err(format!(
                "element {index} spans {start}..{end} of {content} bytes"
            ));
        }
        let length = u32::try_from(end - start)
            .map_err(|_| format!("element {index} is {} bytes, 4 GiB or more", end - start))?;
        let at = index * PREFIX + start;
        buffer.copy_within(room + start..room + end, at + PREFIX);
        buffer[at..at + PREFIX].copy_from_slice(&length.to_le_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroserve_tensor::encode_bytes;
    use proptest::prelude::*;

    /// What `GetStringTensorContent` would write for `elements`, after the prefixes' room.
    fn content_layout(elements: &[Vec<u8>]) -> (Vec<u8>, Vec<usize>) {
        let mut buffer = vec![0xAA; elements.len() * PREFIX];
        let mut offsets = Vec::new();
        let mut at = 0;
        for element in elements {
            offsets.push(at);
            buffer.extend_from_slice(element);
            at += element.len();
        }
        (buffer, offsets)
    }

    #[test]
    fn contents_become_the_raw_bytes_format() {
        let elements = vec![
            b"ab".to_vec(),
            Vec::new(),
            b"\0\xff\0".to_vec(),
            b"z".to_vec(),
        ];
        let (mut buffer, offsets) = content_layout(&elements);
        prefix_in_place(&mut buffer, &offsets).expect("well formed");
        let expected = encode_bytes(elements.iter().map(Vec::as_slice)).expect("small");
        assert_eq!(buffer, expected);
    }

    #[test]
    fn bad_offsets_are_refused() {
        let mut buffer = vec![0; 8 + 3];
        assert!(prefix_in_place(&mut buffer, &[2, 1]).is_err());
        assert!(prefix_in_place(&mut buffer, &[0, 4]).is_err());
        assert!(prefix_in_place(&mut [0; 3], &[0]).is_err());
    }

    #[test]
    fn element_counts() {
        assert_eq!(element_count(&[2, 3]), Some(6));
        assert_eq!(element_count(&[]), Some(1));
        assert_eq!(element_count(&[4, 0]), Some(0));
        assert_eq!(element_count(&[-1, 2]), None);
        assert_eq!(element_count(&[i64::MAX, i64::MAX]), None);
    }

    proptest! {
        #[test]
        fn any_elements_come_out_as_encode_bytes_writes_them(
            elements in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..24), 0..24),
        ) {
            let (mut buffer, offsets) = content_layout(&elements);
            prefix_in_place(&mut buffer, &offsets).map_err(TestCaseError::fail)?;
            let expected = encode_bytes(elements.iter().map(Vec::as_slice))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(buffer, expected);
        }
    }
}
