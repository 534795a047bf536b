//! Entity keys: their parts, the one byte encoding the index stores for keys that are not a
//! single INT64 (each part in its raw tensor layout, back to back, so a single BYTES key is its
//! request element as is), reading a batch row's key out of the request buffers without
//! allocating, and rendering a key for an error message (`user_id=42, card="abc"`).

use std::fmt::Write as _;
use std::ops::Range;

use ferroserve_tensor::{DataType, walk_bytes_elements};

use crate::JoinError;

/// Bytes of an INT64 key part, and of a BYTES part's length prefix.
const INT64_BYTES: usize = 8;
const PREFIX_BYTES: usize = 4;
/// Longest BYTES part shown in full in a message; longer ones are cut with "...".
const RENDERED_BYTES: usize = 64;

/// The datatype of one part of an entity key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// A 64-bit integer (INT64 request input).
    Int64,
    /// A byte string (BYTES request input).
    Bytes,
}

impl KeyKind {
    /// The kind of a request input's datatype, if it can carry a key part.
    pub const fn of(datatype: DataType) -> Option<KeyKind> {
        match datatype {
            DataType::Int64 => Some(KeyKind::Int64),
            DataType::Bytes => Some(KeyKind::Bytes),
            _ => None,
        }
    }
}

/// One part of a view's entity key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyPart {
    /// The request input (and snapshot key column) that carries it.
    pub name: String,
    /// Its datatype.
    pub kind: KeyKind,
}

/// One part of a key value, for building or looking up keys outside a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyValue<'a> {
    /// An INT64 part.
    Int64(i64),
    /// A BYTES part (the bytes, without a length prefix).
    Bytes(&'a [u8]),
}

/// Appends the encoding of `parts` (INT64 as 8 little-endian bytes, BYTES as a 4-byte
/// little-endian length and the bytes) to `out`. Parts of 4 GiB or more cannot be keys; their
/// length is cut to 32 bits, so they never equal a stored key.
pub fn encode_key(parts: &[KeyValue<'_>], out: &mut Vec<u8>) {
    for part in parts {
        match *part {
            KeyValue::Int64(value) => out.extend_from_slice(&value.to_le_bytes()),
            KeyValue::Bytes(bytes) => {
                let length = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&length.to_le_bytes());
                out.extend_from_slice(bytes);
            }
        }
    }
}

/// Renders an encoded key as `name=value` pairs: integers in decimal, byte strings quoted with
/// non-printable bytes escaped and long ones cut.
pub(crate) fn render_key(parts: &[KeyPart], encoded: &[u8]) -> String {
    let mut text = String::new();
    let mut pos = 0;
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            text.push_str(", ");
        }
        text.push_str(&part.name);
        text.push('=');
        match part.kind {
            KeyKind::Int64 => {
                let value = encoded
                    .get(pos..pos + INT64_BYTES)
                    .and_then(|bytes| bytes.try_into().ok())
                    .map(i64::from_le_bytes);
                pos += INT64_BYTES;
                match value {
                    Some(value) => {
                        let _ = write!(text, "{value}");
                    }
                    None => text.push('?'),
                }
            }
            KeyKind::Bytes => {
                let length = encoded
                    .get(pos..pos + PREFIX_BYTES)
                    .and_then(|bytes| bytes.try_into().ok())
                    .map_or(0, |bytes| u32::from_le_bytes(bytes) as usize);
                pos += PREFIX_BYTES;
                let bytes = encoded.get(pos..pos + length).unwrap_or(&[]);
                pos += length;
                text.push('"');
                for &byte in bytes.iter().take(RENDERED_BYTES) {
                    text.extend(std::ascii::escape_default(byte).map(char::from));
                }
                if bytes.len() > RENDERED_BYTES {
                    text.push_str("...");
                }
                text.push('"');
            }
        }
    }
    text
}

/// Where one key part's values are in a batch's request buffers.
#[derive(Debug)]
pub(crate) enum PartColumn<'a> {
    /// An INT64 input: row `r` is bytes `8r..8r+8`.
    Int64(&'a [u8]),
    /// A BYTES input, walked row by row from `next` (the start of the next row's element).
    Bytes {
        /// The raw buffer.
        raw: &'a [u8],
        /// Start of the next row's element (its length prefix).
        next: usize,
    },
}

/// Row `row`'s value of an INT64 buffer (0 past its end: sizes are checked beforehand).
#[inline]
pub(crate) fn int64_at(raw: &[u8], row: usize) -> i64 {
    let start = row * INT64_BYTES;
    raw.get(start..start + INT64_BYTES)
        .and_then(|bytes| bytes.try_into().ok())
        .map_or(0, i64::from_le_bytes)
}

impl<'a> PartColumn<'a> {
    /// The column of a part of `kind` in request buffer `raw`, at row 0.
    pub(crate) fn new(kind: KeyKind, raw: &'a [u8]) -> Self {
        match kind {
            KeyKind::Int64 => PartColumn::Int64(raw),
            KeyKind::Bytes => PartColumn::Bytes { raw, next: 0 },
        }
    }

    /// Row `row`'s part in its encoded form (a BYTES element with its prefix), or `None` past
    /// the buffer's end (checked beforehand by `check_bytes_rows`). BYTES columns are read in
    /// row order: each call returns the element after the previous one.
    #[inline]
    pub(crate) fn next_encoded(&mut self, row: usize) -> Option<&'a [u8]> {
        match self {
            PartColumn::Int64(raw) => {
                let start = row * INT64_BYTES;
                raw.get(start..start + INT64_BYTES)
            }
            PartColumn::Bytes { raw, next } => {
                let start = *next;
                let prefix: [u8; PREFIX_BYTES] =
                    raw.get(start..start + PREFIX_BYTES)?.try_into().ok()?;
                let end = (start + PREFIX_BYTES).checked_add(u32::from_le_bytes(prefix) as usize)?;
                let element = raw.get(start..end)?;
                *next = end;
                Some(element)
            }
        }
    }
}

/// Checks that a BYTES request buffer holds exactly `rows` whole elements: the gather then reads
/// each row's element without failing halfway through a batch. Bounded by the buffer's size.
pub(crate) fn check_bytes_rows(input: &str, raw: &[u8], rows: usize) -> Result<(), JoinError> {
    walk_bytes_elements(raw, rows, |_, _: Range<usize>| {
        Ok::<_, ferroserve_tensor::TensorError>(())
    })
    .map_err(|source| JoinError::BadBytesKey {
        input: input.to_owned(),
        rows,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_composite_keys_readably() {
        let parts = [
            KeyPart {
                name: "user_id".into(),
                kind: KeyKind::Int64,
            },
            KeyPart {
                name: "card".into(),
                kind: KeyKind::Bytes,
            },
        ];
        let mut encoded = Vec::new();
        encode_key(
            &[KeyValue::Int64(-42), KeyValue::Bytes(b"ab\"c\n")],
            &mut encoded,
        );
        assert_eq!(
            render_key(&parts, &encoded),
            r#"user_id=-42, card="ab\"c\n""#
        );
    }

    #[test]
    fn long_byte_keys_are_cut() {
        let parts = [KeyPart {
            name: "k".into(),
            kind: KeyKind::Bytes,
        }];
        let mut encoded = Vec::new();
        encode_key(&[KeyValue::Bytes(&[b'x'; 100])], &mut encoded);
        let text = render_key(&parts, &encoded);
        assert!(text.ends_with("xxx...\""), "{text}");
        assert_eq!(text.len(), "k=\"".len() + 64 + "...\"".len());
    }

    #[test]
    fn bytes_column_walks_elements_with_their_prefix() {
        let raw = ferroserve_tensor::encode_bytes([b"ab".as_slice(), b"".as_slice()])
            .expect("small elements");
        let mut column = PartColumn::Bytes { raw: &raw, next: 0 };
        assert_eq!(column.next_encoded(0), Some(&raw[..6]));
        assert_eq!(column.next_encoded(1), Some(&raw[6..]));
        assert_eq!(column.next_encoded(2), None);
        assert!(check_bytes_rows("k", &raw, 2).is_ok());
        assert!(matches!(
            check_bytes_rows("k", &raw, 3),
            Err(JoinError::BadBytesKey { .. })
        ));
    }
}
