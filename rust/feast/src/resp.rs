//! The reader's side of Redis's wire protocol (RESP2), without I/O: `HMGET` commands encoded
//! into a byte buffer, and an incremental reply parser that records each answer's bulk strings
//! as spans of the bytes received, so decoding a row reads slices of one buffer per round trip
//! with no allocation per field (the redis crate built a `Value` with an owned `Vec` per field:
//! 34 allocations per 33-field answer, docs/benchmarks.md "Where the Redis path's cost goes").
//! The `connection` module feeds it the bytes it reads; the `client` module reads the answers.
//!
//! Spec: <https://redis.io/docs/latest/develop/reference/protocol-spec/> (RESP2: `+` simple
//! string, `-` error, `:` integer, `$` bulk string, `*` array; `$-1` / `*-1` are nil). We never
//! send `HELLO 3`, so Redis answers in RESP2; any other type byte is a protocol error.

use bytes::Bytes;

/// Longest bulk string accepted. A Feast value of a scalar feature is a few bytes and a
/// `Timestamp` a dozen; 1 MiB leaves room for any value a view can hold while a broken or
/// hostile server that declares a huge length breaks the connection instead of making us wait
/// for (and buffer) gigabytes.
pub(crate) const MAX_BULK_LEN: usize = 1 << 20;
/// Most items in one array: an HMGET answer has one per field asked (a view's features + 1);
/// no view has 65,536 features, and the cap bounds what a declared count can make us expect.
pub(crate) const MAX_ARRAY_LEN: usize = 65_536;
/// Longest line (`+`, `-`, `:` and the headers of `$` and `*`) without its CRLF: Redis's error
/// messages are short; a server that sends more without a line end is broken.
pub(crate) const MAX_LINE_LEN: usize = 64 * 1024;
/// Deepest nesting of arrays: HMGET answers are flat; deeper replies are skipped but bounded,
/// so a hostile server cannot exhaust the stack.
const MAX_DEPTH: usize = 8;
/// Most digits of a length or integer: enough for any i64.
const MAX_DIGITS: usize = 19;

/// Where a bulk string's bytes are in the round trip's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Offset of its first byte.
    pub start: usize,
    /// Its length.
    pub len: usize,
}

/// One complete reply as the reader keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// An array of bulk strings and nils (an HMGET answer): its items are `count` entries of
    /// the round trip's item list from `first`.
    Array {
        /// Index of its first item.
        first: usize,
        /// Its item count.
        count: usize,
    },
    /// An error reply (`-WRONGTYPE ...`): its text, without `-` and CRLF.
    Error(Span),
    /// A simple string (`+OK`): its text (the handshake checks it).
    Status(Span),
    /// Anything else an HMGET never answers: an integer, a bulk string or nil on its own, a nil
    /// array, an array holding other types.
    Unexpected,
}

/// The outcome of parsing from a position of the bytes received so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// One reply, which ends (CRLF included) at `end`.
    Complete {
        /// The reply.
        reply: Reply,
        /// Offset just past it: where the next reply starts.
        end: usize,
    },
    /// The reply is not all there yet: parse again from the same position with more bytes.
    Incomplete,
}

/// Bytes that are not a RESP2 reply, or one beyond the caps: the connection is out of step and
/// must be dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Redis sent bytes that are not a RESP2 reply: {0}")]
pub struct ProtocolError(pub String);

/// An HMGET's field arguments, encoded once per view (they never change), so each command costs
/// its header, its key and one copy of these bytes.
#[derive(Debug)]
pub(crate) struct HmgetFields {
    /// Fields asked.
    count: usize,
    /// `$len\r\nfield\r\n` per field.
    encoded: Vec<u8>,
}

impl HmgetFields {
    /// The encoding of `fields`.
    pub(crate) fn new(fields: &[Vec<u8>]) -> HmgetFields {
        let mut encoded = Vec::new();
        for field in fields {
            push_bulk(field, &mut encoded);
        }
        HmgetFields {
            count: fields.len(),
            encoded,
        }
    }
}

/// Appends `HMGET key field...` to `out` as a RESP array of bulk strings.
pub(crate) fn encode_hmget(key: &[u8], fields: &HmgetFields, out: &mut Vec<u8>) {
    out.reserve(32 + key.len() + fields.encoded.len());
    push_header(b'*', fields.count + 2, out);
    push_bulk(b"HMGET", out);
    push_bulk(key, out);
    out.extend_from_slice(&fields.encoded);
}

/// Appends a command of bulk-string `args` to `out` (the handshake's AUTH and SELECT).
pub(crate) fn encode_command(args: &[&[u8]], out: &mut Vec<u8>) {
    push_header(b'*', args.len(), out);
    for arg in args {
        push_bulk(arg, out);
    }
}

fn push_header(kind: u8, count: usize, out: &mut Vec<u8>) {
    out.push(kind);
    out.extend_from_slice(count.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn push_bulk(bytes: &[u8], out: &mut Vec<u8>) {
    push_header(b'$', bytes.len(), out);
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// Parses the reply that starts at `buffer[start..]`. An array of bulk strings and nils appends
/// its items to `items` (their spans are offsets in `buffer`); on `Incomplete` or an error,
/// `items` is left as it was. Never panics, whatever the bytes.
pub fn parse_reply(
    buffer: &[u8],
    start: usize,
    items: &mut Vec<Option<Span>>,
) -> Result<Parsed, ProtocolError> {
    let before = items.len();
    let mut cursor = Cursor { buffer, at: start };
    match cursor.reply(items) {
        Ok(Some(reply)) => Ok(Parsed::Complete {
            reply,
            end: cursor.at,
        }),
        Ok(None) => {
            items.truncate(before);
            Ok(Parsed::Incomplete)
        }
        Err(error) => {
            items.truncate(before);
            Err(error)
        }
    }
}

/// The parser's position in the bytes received. Its methods answer `Ok(None)` when the bytes
/// end before what they parse does.
struct Cursor<'a> {
    buffer: &'a [u8],
    at: usize,
}

/// What one value (at any depth) was, for its parent.
enum Shape {
    Bulk(Span),
    Nil,
    Other,
}

/// `Ok(None)` out of the enclosing function when `$step` is incomplete.
macro_rules! need {
    ($step:expr) => {
        match $step? {
            Some(value) => value,
            None => return Ok(None),
        }
    };
}

impl Cursor<'_> {
    /// A top-level reply.
    fn reply(&mut self, items: &mut Vec<Option<Span>>) -> Result<Option<Reply>, ProtocolError> {
        let kind = need!(Ok(self.buffer.get(self.at).copied()));
        self.at += 1;
        Ok(Some(match kind {
            b'*' => {
                let first = items.len();
                let Some(count) = need!(self.length(MAX_ARRAY_LEN)) else {
                    return Ok(Some(Reply::Unexpected));
                };
                let mut plain = true;
                for _ in 0..count {
                    match need!(self.value(1)) {
                        Shape::Bulk(span) => items.push(Some(span)),
                        Shape::Nil => items.push(None),
                        Shape::Other => plain = false,
                    }
                }
                if plain {
                    Reply::Array { first, count }
                } else {
                    items.truncate(first);
                    Reply::Unexpected
                }
            }
            b'-' => Reply::Error(need!(self.line())),
            b'+' => Reply::Status(need!(self.line())),
            _ => {
                self.at -= 1;
                need!(self.value(0));
                Reply::Unexpected
            }
        }))
    }

    /// A value inside an array `depth` deep (or a top-level scalar, `depth` 0).
    fn value(&mut self, depth: usize) -> Result<Option<Shape>, ProtocolError> {
        let kind = need!(Ok(self.buffer.get(self.at).copied()));
        self.at += 1;
        Ok(Some(match kind {
            b'+' | b'-' => {
                need!(self.line());
                Shape::Other
            }
            b':' => {
                let line = need!(self.line());
                integer(&self.buffer[line.start..line.start + line.len])?;
                Shape::Other
            }
            b'$' => match need!(self.length(MAX_BULK_LEN)) {
                None => Shape::Nil,
                Some(len) => {
                    let start = self.at;
                    let end = start + len;
                    if self.buffer.len() < end + 2 {
                        return Ok(None);
                    }
                    if &self.buffer[end..end + 2] != b"\r\n" {
                        return Err(ProtocolError(format!(
                            "a bulk string of {len} bytes is not followed by CRLF"
                        )));
                    }
                    self.at = end + 2;
                    Shape::Bulk(Span { start, len })
                }
            },
            b'*' => {
                if depth >= MAX_DEPTH {
                    return Err(ProtocolError(format!(
                        "arrays nested more than {MAX_DEPTH} deep"
                    )));
                }
                if let Some(count) = need!(self.length(MAX_ARRAY_LEN)) {
                    for _ in 0..count {
                        need!(self.value(depth + 1));
                    }
                }
                Shape::Other
            }
            other => {
                return Err(ProtocolError(format!(
                    "type byte {:?} (0x{other:02x}) is not one of + - : $ *",
                    char::from(other)
                )));
            }
        }))
    }

    /// The header of a `$` or `*`: `None` for -1 (nil), else a length up to `cap`.
    fn length(&mut self, cap: usize) -> Result<Option<Option<usize>>, ProtocolError> {
        let line = need!(self.line());
        let value = integer(&self.buffer[line.start..line.start + line.len])?;
        if value == -1 {
            return Ok(Some(None));
        }
        match usize::try_from(value) {
            Ok(len) if len <= cap => Ok(Some(Some(len))),
            _ => Err(ProtocolError(format!(
                "a declared length of {value} (at most {cap} accepted)"
            ))),
        }
    }

    /// The text up to the next CRLF, moving past the CRLF.
    fn line(&mut self) -> Result<Option<Span>, ProtocolError> {
        let rest = &self.buffer[self.at..];
        let searched = &rest[..rest.len().min(MAX_LINE_LEN + 1)];
        let Some(cr) = searched.iter().position(|&byte| byte == b'\r') else {
            if rest.len() > MAX_LINE_LEN {
                return Err(ProtocolError(format!(
                    "a line longer than {MAX_LINE_LEN} bytes"
                )));
            }
            return Ok(None);
        };
        match rest.get(cr + 1) {
            None => Ok(None),
            Some(b'\n') => {
                let span = Span {
                    start: self.at,
                    len: cr,
                };
                self.at += cr + 2;
                Ok(Some(span))
            }
            Some(_) => Err(ProtocolError("a CR not followed by LF".to_owned())),
        }
    }
}

/// A RESP integer: an optional `-` and 1 to 19 digits.
fn integer(text: &[u8]) -> Result<i64, ProtocolError> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', digits)) => (true, digits),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > MAX_DIGITS || !digits.iter().all(u8::is_ascii_digit) {
        return Err(ProtocolError(format!(
            "{:?} is not an integer",
            String::from_utf8_lossy(&text[..text.len().min(32)])
        )));
    }
    let magnitude = digits
        .iter()
        .fold(0i64, |value, digit| value * 10 + i64::from(digit - b'0'));
    Ok(if negative { -magnitude } else { magnitude })
}

/// The replies of one round trip, in command order, over the bytes they came in: what the
/// connection hands the client, shared (`Arc`) by the lookups of the round trip.
#[derive(Debug, Default)]
pub(crate) struct Answers {
    /// The bytes of the replies, as received.
    bytes: Bytes,
    /// The items of every array reply, in order.
    items: Vec<Option<Span>>,
    /// One per command.
    replies: Vec<Reply>,
}

impl Answers {
    /// The answers whose replies `replies` (and items `items`) were parsed from `bytes`.
    pub(crate) fn new(bytes: Bytes, items: Vec<Option<Span>>, replies: Vec<Reply>) -> Answers {
        Answers {
            bytes,
            items,
            replies,
        }
    }

    /// How many replies there are.
    pub(crate) fn len(&self) -> usize {
        self.replies.len()
    }

    /// Reply `index`.
    pub(crate) fn reply(&self, index: usize) -> Option<Reply> {
        self.replies.get(index).copied()
    }

    /// The items of reply `index` if it is an array of bulk strings and nils (`None` for a nil).
    pub(crate) fn items(&self, index: usize) -> Option<impl Iterator<Item = Option<&[u8]>>> {
        match self.reply(index)? {
            Reply::Array { first, count } => Some(
                self.items
                    .get(first..first + count)?
                    .iter()
                    .map(|item| item.and_then(|span| self.text(span))),
            ),
            _ => None,
        }
    }

    /// The bytes of `span`.
    pub(crate) fn text(&self, span: Span) -> Option<&[u8]> {
        self.bytes
            .get(span.start..span.start.checked_add(span.len)?)
    }
}

#[cfg(test)]
#[path = "resp_tests.rs"]
mod tests;
