//! The few protobuf wire rules the layout needs, by hand (two tiny messages do not earn a code
//! generator or a build-time protoc): reading a message's fields and writing varint and fixed
//! fields. Follows the encoding spec (protobuf.dev/programming-guides/encoding): tags are
//! `field << 3 | wire type`, varints at most 10 bytes, groups (wire types 3 and 4) are not
//! used by these messages and are refused.

/// Wire types (encoding spec, "Message Structure").
pub(crate) const VARINT: u8 = 0;
pub(crate) const FIXED64: u8 = 1;
pub(crate) const LENGTH_DELIMITED: u8 = 2;
pub(crate) const FIXED32: u8 = 5;

/// One field's payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Wire<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64([u8; 8]),
    /// Wire type 2.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32([u8; 4]),
}

/// A message that does not follow the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

/// Reads the fields of one message in order.
pub(crate) struct Fields<'a> {
    /// The unread rest of the message.
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    /// The fields of `message`.
    pub(crate) fn new(message: &'a [u8]) -> Self {
        Fields { rest: message }
    }

    /// Reads a varint.
    fn varint(&mut self) -> Result<u64, Malformed> {
        let mut value = 0u64;
        for (index, &byte) in self.rest.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte < 0x80 {
                self.rest = &self.rest[index + 1..];
                return Ok(value);
            }
        }
        Err(Malformed)
    }

    /// Takes the next `count` bytes.
    fn take(&mut self, count: usize) -> Result<&'a [u8], Malformed> {
        if count > self.rest.len() {
            return Err(Malformed);
        }
        let (taken, rest) = self.rest.split_at(count);
        self.rest = rest;
        Ok(taken)
    }

    /// The next field (number, payload), `None` at the end of the message.
    pub(crate) fn next_field(&mut self) -> Result<Option<(u64, Wire<'a>)>, Malformed> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let wire = match (tag & 7) as u8 {
            VARINT => Wire::Varint(self.varint()?),
            FIXED64 => Wire::Fixed64(self.take(8)?.try_into().map_err(|_| Malformed)?),
            LENGTH_DELIMITED => {
                let length = usize::try_from(self.varint()?).map_err(|_| Malformed)?;
                Wire::Bytes(self.take(length)?)
            }
            FIXED32 => Wire::Fixed32(self.take(4)?.try_into().map_err(|_| Malformed)?),
            _ => return Err(Malformed),
        };
        Ok(Some((tag >> 3, wire)))
    }
}

/// Appends `value` as a varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a field's tag.
pub(crate) fn put_tag(out: &mut Vec<u8>, field: u64, wire_type: u8) {
    put_varint(out, (field << 3) | u64::from(wire_type));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_wire_type() {
        let message =
            b"\x08\x96\x01\x11\x01\x02\x03\x04\x05\x06\x07\x08\x1a\x02hi\x25\x01\x02\x03\x04";
        let mut fields = Fields::new(message);
        assert_eq!(fields.next_field(), Ok(Some((1, Wire::Varint(150)))));
        assert_eq!(
            fields.next_field(),
            Ok(Some((2, Wire::Fixed64([1, 2, 3, 4, 5, 6, 7, 8]))))
        );
        assert_eq!(fields.next_field(), Ok(Some((3, Wire::Bytes(b"hi")))));
        assert_eq!(
            fields.next_field(),
            Ok(Some((4, Wire::Fixed32([1, 2, 3, 4]))))
        );
        assert_eq!(fields.next_field(), Ok(None));
    }

    #[test]
    fn truncated_and_group_fields_are_malformed() {
        for message in [
            &b"\x08"[..],
            b"\x08\x80",
            b"\x11\x01",
            b"\x1a\x05hi",
            b"\x0b",
            &[0xff; 11],
        ] {
            let mut fields = Fields::new(message);
            assert_eq!(fields.next_field(), Err(Malformed), "{message:?}");
        }
    }

    #[test]
    fn varints_round_trip() {
        for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            let mut fields = Fields::new(&out);
            assert_eq!(fields.varint(), Ok(value));
            assert!(fields.rest.is_empty());
        }
    }
}
