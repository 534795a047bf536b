//! What the executor tests share: waiting for a number of answers.

use std::time::{Duration, Instant};

use ferroserve_runtime::{Completed, Completions};

/// Answers until `count` arrived (or 5 s passed), sorted by token.
pub fn wait_for(done: &Completions<u32, Vec<u8>>, count: usize) -> Vec<Completed<u32, Vec<u8>>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut all = Vec::new();
    while all.len() < count && Instant::now() < deadline {
        all.extend(done.take());
        std::thread::sleep(Duration::from_millis(1));
    }
    all.sort_by_key(|(token, _)| *token);
    all
}
