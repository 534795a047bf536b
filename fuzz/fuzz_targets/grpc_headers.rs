//! The headers the front end reads and writes: `grpc-timeout` (never a panic; only gRPC's
//! grammar of 1-8 digits and a unit) and `grpc-message` percent-encoding (any bytes decode;
//! any text survives encoding).
#![no_main]

use ferroserve_frontend::grpc::{parse_timeout, percent_decode, percent_encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if parse_timeout(data).is_some() {
        let (unit, digits) = data.split_last().expect("a unit");
        assert!((1..=8).contains(&digits.len()));
        assert!(digits.iter().all(u8::is_ascii_digit));
        assert!(b"HMSmun".contains(unit));
    }
    let decoded = percent_decode(data);
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(percent_decode(&percent_encode(text)), text);
    }
    let _ = decoded;
});
