//! The RESP2 parser's tests: hand-written replies, the caps, and proptest over random replies
//! (split at every byte boundary they parse as whole) and random garbage (never a panic).

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;

/// A reply as the tests compare them: items and texts as owned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Array(Vec<Option<Vec<u8>>>),
    Error(Vec<u8>),
    Status(Vec<u8>),
    Unexpected,
}

/// Every reply in `buffer` (which must hold whole replies only), as `Seen`.
fn parse_all(buffer: &[u8]) -> Result<Vec<Seen>, ProtocolError> {
    let mut items = Vec::new();
    let mut replies = Vec::new();
    let mut at = 0;
    while at < buffer.len() {
        match parse_reply(buffer, at, &mut items)? {
            Parsed::Complete { reply, end } => {
                replies.push(reply);
                at = end;
            }
            Parsed::Incomplete => panic!("incomplete at {at} of {}", buffer.len()),
        }
    }
    Ok(seen(&Answers::new(
        Bytes::copy_from_slice(buffer),
        items,
        replies,
    )))
}

fn seen(answers: &Answers) -> Vec<Seen> {
    (0..answers.len())
        .map(|index| match answers.reply(index).unwrap() {
            Reply::Array { .. } => Seen::Array(
                answers
                    .items(index)
                    .unwrap()
                    .map(|item| item.map(<[u8]>::to_vec))
                    .collect(),
            ),
            Reply::Error(span) => Seen::Error(answers.text(span).unwrap().to_vec()),
            Reply::Status(span) => Seen::Status(answers.text(span).unwrap().to_vec()),
            Reply::Unexpected => Seen::Unexpected,
        })
        .collect()
}

#[test]
fn hmget_is_encoded_as_an_array_of_bulk_strings() {
    let fields = HmgetFields::new(&[b"\x01\x02\x03\x04".to_vec(), b"_ts:v".to_vec()]);
    let mut out = Vec::new();
    encode_hmget(b"key\r\n", &fields, &mut out);
    assert_eq!(
        out,
        b"*4\r\n$5\r\nHMGET\r\n$5\r\nkey\r\n\r\n$4\r\n\x01\x02\x03\x04\r\n$5\r\n_ts:v\r\n"
    );
    out.clear();
    encode_command(&[b"AUTH", b"pw"], &mut out);
    assert_eq!(out, b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n");
}

#[test]
fn every_reply_type_of_resp2() {
    let buffer = b"*3\r\n$3\r\nabc\r\n$-1\r\n$0\r\n\r\n\
        -WRONGTYPE Operation against a key holding the wrong kind of value\r\n\
        +OK\r\n:42\r\n$2\r\nhi\r\n$-1\r\n*-1\r\n*2\r\n$1\r\na\r\n:1\r\n*1\r\n*1\r\n$1\r\nx\r\n*0\r\n";
    assert_eq!(
        parse_all(buffer).unwrap(),
        [
            Seen::Array(vec![Some(b"abc".to_vec()), None, Some(Vec::new())]),
            Seen::Error(
                b"WRONGTYPE Operation against a key holding the wrong kind of value".to_vec()
            ),
            Seen::Status(b"OK".to_vec()),
            Seen::Unexpected,
            Seen::Unexpected,
            Seen::Unexpected,
            Seen::Unexpected,
            // An array holding an integer, a nested array: not an HMGET answer.
            Seen::Unexpected,
            Seen::Unexpected,
            Seen::Array(Vec::new()),
        ]
    );
}

#[test]
fn a_prefix_is_incomplete_and_leaves_the_items_as_they_were() {
    let reply = b"*2\r\n$3\r\nabc\r\n$-1\r\n";
    for end in 0..reply.len() {
        let mut items = vec![None];
        assert_eq!(
            parse_reply(&reply[..end], 0, &mut items),
            Ok(Parsed::Incomplete),
            "{end}"
        );
        assert_eq!(items, [None]);
    }
    let mut items = vec![None];
    assert_eq!(
        parse_reply(reply, 0, &mut items),
        Ok(Parsed::Complete {
            reply: Reply::Array { first: 1, count: 2 },
            end: reply.len()
        })
    );
    assert_eq!(items, [None, Some(Span { start: 8, len: 3 }), None]);
}

#[test]
fn declared_lengths_past_the_caps_and_bad_syntax_are_protocol_errors() {
    let too_long = format!("${}\r\n", MAX_BULK_LEN + 1);
    let too_many = format!("*{}\r\n", MAX_ARRAY_LEN + 1);
    let long_line = [b"+".as_slice(), &vec![b'x'; MAX_LINE_LEN + 1]].concat();
    let deep = "*1\r\n".repeat(MAX_DEPTH + 1);
    let cases: [(&[u8], &str); 11] = [
        (too_long.as_bytes(), "declared length"),
        (too_many.as_bytes(), "declared length"),
        (b"$-2\r\n", "declared length"),
        (b"$99999999999999999999\r\n", "not an integer"),
        (b"$abc\r\n", "not an integer"),
        (b":\r\n", "not an integer"),
        (b"$3\r\nabcd\r\n", "not followed by CRLF"),
        (b"+OK\rX", "CR not followed by LF"),
        (&long_line, "longer than"),
        (deep.as_bytes(), "nested"),
        (b"%1\r\n", "type byte"),
    ];
    for (bytes, expected) in cases {
        let mut items = Vec::new();
        let error = parse_reply(bytes, 0, &mut items).unwrap_err();
        assert!(error.0.contains(expected), "{bytes:?}: {error}");
        assert!(items.is_empty());
    }
    // A huge declared length within the cap only waits for its bytes (no allocation).
    let mut items = Vec::new();
    let declared = format!("${MAX_BULK_LEN}\r\n");
    assert_eq!(
        parse_reply(declared.as_bytes(), 0, &mut items),
        Ok(Parsed::Incomplete)
    );
}

/// A RESP2 value to encode.
#[derive(Debug, Clone)]
enum Value {
    Status(Vec<u8>),
    Error(Vec<u8>),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Value>>),
}

fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Status(text) => out.extend([b"+", text.as_slice(), b"\r\n"].concat()),
        Value::Error(text) => out.extend([b"-", text.as_slice(), b"\r\n"].concat()),
        Value::Integer(value) => out.extend(format!(":{value}\r\n").into_bytes()),
        Value::Bulk(None) => out.extend(b"$-1\r\n"),
        Value::Bulk(Some(bytes)) => {
            out.extend(format!("${}\r\n", bytes.len()).into_bytes());
            out.extend(bytes);
            out.extend(b"\r\n");
        }
        Value::Array(None) => out.extend(b"*-1\r\n"),
        Value::Array(Some(values)) => {
            out.extend(format!("*{}\r\n", values.len()).into_bytes());
            for value in values {
                encode(value, out);
            }
        }
    }
}

/// What the parser must make of a top-level `value`.
fn expected(value: &Value) -> Seen {
    match value {
        Value::Status(text) => Seen::Status(text.clone()),
        Value::Error(text) => Seen::Error(text.clone()),
        Value::Array(Some(values)) => values
            .iter()
            .map(|value| match value {
                Value::Bulk(bytes) => Some(bytes.clone()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map_or(Seen::Unexpected, Seen::Array),
        _ => Seen::Unexpected,
    }
}

fn arbitrary_value() -> impl Strategy<Value = Value> {
    // Line text: no CR or LF.
    let text = prop::collection::vec(
        prop::num::u8::ANY.prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
        0..12,
    );
    let leaf = prop_oneof![
        text.clone().prop_map(Value::Status),
        text.prop_map(Value::Error),
        any::<i64>().prop_map(Value::Integer),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..12)).prop_map(Value::Bulk),
    ];
    let answer = prop::collection::vec(
        prop::option::weighted(0.8, prop::collection::vec(any::<u8>(), 0..12))
            .prop_map(Value::Bulk),
        0..6,
    )
    .prop_map(|items| Value::Array(Some(items)));
    let nested = leaf.clone().prop_recursive(3, 16, 4, |inner| {
        prop::option::of(prop::collection::vec(inner, 0..4)).prop_map(Value::Array)
    });
    prop_oneof![2 => answer, 1 => leaf, 1 => nested]
}

proptest! {
    /// Replies received in two reads, split anywhere, parse as they do whole, and as encoded.
    #[test]
    fn replies_split_at_every_byte_parse_as_whole(values in prop::collection::vec(arbitrary_value(), 1..5)) {
        let mut buffer = Vec::new();
        for value in &values {
            encode(value, &mut buffer);
        }
        let whole = parse_all(&buffer).unwrap();
        prop_assert_eq!(&whole, &values.iter().map(expected).collect::<Vec<_>>());
        for split in 0..=buffer.len() {
            // A reader: parse what arrived, and again from the same place once more arrived.
            let mut items = Vec::new();
            let mut replies = Vec::new();
            let mut at = 0;
            for received in [split, buffer.len()] {
                while at < received {
                    match parse_reply(&buffer[..received], at, &mut items).unwrap() {
                        Parsed::Complete { reply, end } => {
                            replies.push(reply);
                            at = end;
                        }
                        Parsed::Incomplete => break,
                    }
                }
            }
            prop_assert_eq!(at, buffer.len());
            let answers = Answers::new(Bytes::copy_from_slice(&buffer), items, replies);
            prop_assert_eq!(&seen(&answers), &whole);
        }
    }

    /// Any bytes: a reply, incomplete or a protocol error; never a panic, never past the end.
    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(prop_oneof![
        4 => any::<u8>(),
        1 => prop::sample::select(b"*$-+:\r\n0123456789".to_vec()),
    ], 0..64)) {
        let mut items = Vec::new();
        let mut at = 0;
        while let Ok(Parsed::Complete { end, .. }) = parse_reply(&bytes, at, &mut items) {
            prop_assert!(end > at && end <= bytes.len());
            at = end;
        }
        prop_assert!(items.iter().flatten().all(|span| span.start + span.len <= bytes.len()));
    }
}
