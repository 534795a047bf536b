//! KServe v2 tensor basics shared by the batcher and the Python bindings: the datatype names,
//! their element sizes, the expected byte size of a fixed-size tensor, and the BYTES wire format
//! (`raw_input_contents`: per element a 4-byte little-endian length, then the bytes), and the
//! wire format of the infer request and response (`wire`).

mod bytes;
mod datatype;
mod error;
pub mod wire;

pub use bytes::{check_utf8, decode_bytes_offsets, encode_bytes};
pub use datatype::{DataType, expected_raw_size};
pub use error::TensorError;
