//! BYTES outputs through the executor with a stand-in engine: a batch of requests whose strings
//! have different lengths is run once and each request gets back exactly its own elements.
// A test that cannot set up panics: unwrap says as much as expect would here.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferroserve_batcher::{BatchQueue, BatcherConfig, Request};
use ferroserve_runtime::{
    Completed, Completions, Deliver, Engine, Executor, InputTensor, Layout, OutputTensor,
    RuntimeError,
};
use ferroserve_tensor::encode_bytes;

/// Echoes its BYTES input as a BYTES output, counting its calls.
#[derive(Default)]
struct TextEcho {
    calls: std::sync::atomic::AtomicUsize,
}

impl Engine for TextEcho {
    type Output = Vec<u8>;

    fn run(
        &self,
        _instance: usize,
        inputs: &[InputTensor<'_>],
        _outputs: &[String],
    ) -> Result<Vec<OutputTensor<Vec<u8>>>, RuntimeError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let input = inputs[0];
        let data = input.data.to_vec();
        let len = data.len();
        Ok(vec![OutputTensor::bytes(data, input.shape.to_vec(), len)])
    }

    fn instances(&self) -> usize {
        1
    }
}

#[test]
fn a_batch_of_strings_of_different_lengths_splits_back_per_request() {
    let sent: Vec<Vec<&[u8]>> = vec![
        vec![b"", b"a"],
        vec![b"embedded\0nul", b"\xff\xfe not utf-8", b"", b"x"],
        vec![&[b'z'; 1000], b"end"],
    ];
    let rows: usize = sent.iter().map(|elements| elements.len() / 2).sum();
    let queue = Arc::new(
        BatchQueue::new(
            "m",
            BatcherConfig {
                max_batch_size: rows,
                max_queue_delay: Duration::from_secs(60),
                ..BatcherConfig::default()
            },
        )
        .unwrap(),
    );
    for (token, elements) in sent.iter().enumerate() {
        let request_rows = i64::try_from(elements.len() / 2).unwrap();
        queue
            .submit(Request {
                inputs: vec![encode_bytes(elements.iter().copied()).unwrap()],
                shapes: vec![vec![request_rows, 2]],
                token: u32::try_from(token).unwrap(),
                priority: 0,
                timeout_us: 0,
                deadline: None,
            })
            .unwrap();
    }
    let engine = Arc::new(TextEcho::default());
    let done = Arc::new(Completions::<u32, Vec<u8>>::new().unwrap());
    let layout = Layout {
        input_names: vec!["t".into()],
        output_names: vec!["u".into()],
        batches: true,
        input_reshapes: vec![None],
        output_reshapes: vec![None],
    };
    let executor = Executor::start(
        "m",
        Arc::clone(&queue),
        Arc::clone(&engine),
        Arc::clone(&done) as Arc<dyn Deliver<_, _>>,
        layout,
        None,
        None,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut answers: Vec<Completed<u32, Vec<u8>>> = Vec::new();
    while answers.len() < sent.len() && Instant::now() < deadline {
        answers.extend(done.take());
        std::thread::sleep(Duration::from_millis(1));
    }
    answers.sort_by_key(|(token, _)| *token);
    assert_eq!(answers.len(), sent.len());
    assert_eq!(engine.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    for ((_, answer), elements) in answers.iter().zip(&sent) {
        let answer = answer.as_ref().unwrap();
        let (range, shape) = &answer.parts[0];
        assert_eq!(
            &answer.outputs[0].as_ref()[range.clone()],
            &encode_bytes(elements.iter().copied()).unwrap()[..]
        );
        assert_eq!(shape, &vec![i64::try_from(elements.len() / 2).unwrap(), 2]);
    }
    queue.close(true);
    assert!(executor.join(Duration::from_secs(5)));
}
