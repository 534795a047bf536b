//! KServe v2 tensor basics: the datatype names, their element sizes, the expected byte size of a
//! fixed-size tensor, the BYTES wire format (`raw_input_contents`: per element a 4-byte
//! little-endian length, then the bytes), and the protobuf wire format of `ModelInferRequest` and
//! `ModelInferResponse` (`wire`: parse in place, match against a signature, write the response).
//! Used by the native engine (`ferroserve-runtime`: datatypes and sizes), the native gRPC front
//! end (`ferroserve-frontend`: the wire codec), the batcher (cutting a batch's BYTES outputs
//! into its requests' rows) and the Python bindings (BYTES codec, wire codec).

mod bytes;
mod datatype;
mod error;
pub mod wire;

pub use bytes::{
    check_utf8, decode_bytes_offsets, encode_bytes, skip_bytes_elements, walk_bytes_elements,
};
pub use datatype::{DataType, expected_raw_size};
pub use error::TensorError;
