//! The gRPC deframer on arbitrary chunks: never a panic, never more held than about what
//! arrived (a declared length reserves nothing), never more handed out than arrived.
#![no_main]

use ferroserve_frontend::grpc::Deframer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u32, Vec<Vec<u8>>)| {
    let (limit, chunks) = input;
    let mut deframer = Deframer::default();
    let (mut arrived, mut handed_out) = (0usize, 0usize);
    for chunk in &chunks {
        arrived += chunk.len();
        deframer.push(chunk);
        loop {
            match deframer.next_message(limit as usize) {
                Ok(Some(message)) => handed_out += 5 + message.data.len(),
                Ok(None) => break,
                Err(status) => {
                    assert!(status.message.contains("larger than max"));
                    return;
                }
            }
        }
        assert!(deframer.held() <= 2 * arrived + 64);
        assert!(handed_out <= arrived);
    }
});
