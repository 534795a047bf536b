//! A stateful model on the native path (Triton's sequence batcher), end to end in Rust: requests
//! with `sequence_id`, `sequence_start` and `sequence_end` parameters through `SequenceRoute`
//! and its `Sequencer`, a real batch queue and executor thread, and a stand-in accumulator
//! engine that reports the control inputs and state it was fed.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferroserve_batcher::{BatchQueue, BatcherConfig, SequenceConfig};
use ferroserve_frontend::{
    Code, ControlKind, CorrelationType, InferRoute, NativeRoute, PendingInfer, SequencePlan,
    SequenceRoute, Sequencer, StateTensor, Status,
};
use ferroserve_runtime::{
    Completions, Deliver, Engine, Executor, InputTensor, Layout, OutputTensor, Routed,
    RuntimeError, Waiter,
};
use ferroserve_tensor::wire::{self, FastSignature, InputLayout};

type Queue = BatchQueue<Bytes, Waiter<(), Vec<u8>>>;

/// Per row: y = x + state (FP32), the next state = y, and `fed` = [START, END, READY, CORRID]
/// as it saw them (INT32; CORRID's low 32 bits).
struct Accumulator;

fn rows_f32(data: &[u8]) -> Vec<f32> {
    data.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn rows_i32(data: &[u8]) -> Vec<i32> {
    data.chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

impl Engine for Accumulator {
    type Output = Vec<u8>;

    fn run(
        &self,
        _instance: usize,
        inputs: &[InputTensor<'_>],
        outputs: &[String],
    ) -> Result<Vec<OutputTensor<Vec<u8>>>, RuntimeError> {
        let names: Vec<&str> = inputs.iter().map(|input| input.name).collect();
        assert_eq!(names, ["x", "START", "END", "READY", "CORRID", "STATE"]);
        assert_eq!(outputs, ["y", "fed", "STATE_OUT"]);
        let rows = usize::try_from(inputs[0].shape[0]).unwrap();
        for input in inputs {
            assert_eq!(input.shape, [rows as i64, 1], "{}", input.name);
        }
        let x = rows_f32(inputs[0].data);
        let state = rows_f32(inputs[5].data);
        let corrid: Vec<u64> = inputs[4]
            .data
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let y: Vec<u8> = (0..rows)
            .flat_map(|r| (x[r] + state[r]).to_le_bytes())
            .collect();
        let mut fed = Vec::new();
        for (r, &id) in corrid.iter().enumerate() {
            for control in &inputs[1..4] {
                fed.extend(rows_i32(control.data)[r].to_le_bytes());
            }
            fed.extend((id as i32).to_le_bytes());
        }
        let y_len = y.len();
        let fed_len = fed.len();
        Ok(vec![
            OutputTensor::new(y.clone(), vec![rows as i64, 1], y_len),
            OutputTensor::new(fed, vec![rows as i64, 4], fed_len),
            OutputTensor::new(y, vec![rows as i64, 1], y_len),
        ])
    }

    fn instances(&self) -> usize {
        1
    }
}

fn int32_flags() -> [Vec<u8>; 2] {
    [0i32.to_le_bytes().to_vec(), 1i32.to_le_bytes().to_vec()]
}

struct Served {
    route: Arc<dyn InferRoute>,
    sequencer: Arc<Sequencer<Bytes, (), Vec<u8>>>,
    _executor: Executor<Bytes, Waiter<(), Vec<u8>>, Accumulator>,
    runtime: tokio::runtime::Runtime,
}

fn serve(slots: usize, max_idle: Duration) -> Served {
    serve_bounded(slots, max_idle, 0)
}

fn serve_bounded(slots: usize, max_idle: Duration, max_held: usize) -> Served {
    let queue: Arc<Queue> = Arc::new(
        BatchQueue::new(
            "acc",
            BatcherConfig {
                max_batch_size: 4,
                ..BatcherConfig::default()
            },
        )
        .unwrap(),
    );
    let routed: Arc<Routed<(), Vec<u8>>> = Arc::new(Routed::new(Completions::new().unwrap()));
    let plan = SequencePlan {
        config: SequenceConfig {
            slots,
            max_idle,
            max_held,
        },
        controls: vec![
            ControlKind::Start(int32_flags()),
            ControlKind::End(int32_flags()),
            ControlKind::Ready(int32_flags()),
            ControlKind::CorrelationId(CorrelationType::U64),
        ],
        states: vec![StateTensor {
            output: 2,
            initial: Bytes::from(0f32.to_le_bytes().to_vec()),
            dims: vec![1],
        }],
        batches: true,
    };
    let sequencer = Sequencer::start("acc", Arc::clone(&queue), Arc::clone(&routed), plan).unwrap();
    let executor = Executor::start(
        "acc",
        Arc::clone(&queue),
        Arc::new(Accumulator),
        Arc::clone(&sequencer) as Arc<dyn Deliver<Waiter<(), Vec<u8>>, Vec<u8>>>,
        Layout {
            input_names: ["x", "START", "END", "READY", "CORRID", "STATE"]
                .map(String::from)
                .to_vec(),
            output_names: ["y", "fed", "STATE_OUT"].map(String::from).to_vec(),
            batches: true,
            input_reshapes: vec![None; 6],
            output_reshapes: vec![None; 3],
        },
        None,
        None,
    )
    .unwrap();
    let signature = FastSignature {
        inputs: vec![InputLayout {
            name: "x".into(),
            datatype: "FP32".into(),
            shape: vec![-1, 1],
            itemsize: 4,
        }],
        max_batch_size: 4,
        outputs: vec!["y".into(), "fed".into()],
    };
    let route = NativeRoute::new(
        "acc".into(),
        "1".into(),
        signature,
        vec!["FP32".into(), "INT32".into()],
        queue,
        routed,
    );
    let route: Arc<dyn InferRoute> = Arc::new(SequenceRoute::new(route, Arc::clone(&sequencer)));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    Served {
        route,
        sequencer,
        _executor: executor,
        runtime,
    }
}

// Protobuf helpers.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn field(number: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, (u64::from(number) << 3) | 2);
    put_varint(&mut out, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

fn varint_field(number: u32, value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, u64::from(number) << 3);
    put_varint(&mut out, value);
    out
}

/// A `parameters` entry whose `InferParameter` is `value`.
fn parameter(name: &str, value: &[u8]) -> Vec<u8> {
    field(4, &[field(1, name.as_bytes()), field(2, value)].concat())
}

/// One row x = `value` of sequence `id` (0: no sequence_id), with its flags.
fn request(id: u64, start: bool, end: bool, value: f32) -> Vec<u8> {
    let tensor = [field(1, b"x"), field(2, b"FP32"), field(3, &[1, 1])].concat();
    let mut message = [field(1, b"acc"), field(5, &tensor)].concat();
    if id != 0 {
        message.extend(parameter("sequence_id", &varint_field(2, id)));
    }
    message.extend(parameter(
        "sequence_start",
        &varint_field(1, u64::from(start)),
    ));
    message.extend(parameter("sequence_end", &varint_field(1, u64::from(end))));
    message.extend(field(7, &value.to_le_bytes()));
    message
}

/// What the model answered: y, and the [START, END, READY, CORRID] it was fed.
fn answer(response: &[u8]) -> (f32, Vec<i32>) {
    let view = wire::parse_infer_response(response, false).unwrap();
    let names: Vec<&[u8]> = view
        .outputs
        .iter()
        .map(|o| &response[o.name.clone()])
        .collect();
    assert_eq!(
        names,
        [&b"y"[..], &b"fed"[..]],
        "the state output stays inside"
    );
    let y = rows_f32(&response[view.raw_output_contents[0].clone()])[0];
    (y, rows_i32(&response[view.raw_output_contents[1].clone()]))
}

fn send(served: &Served, message: Vec<u8>) -> Result<Vec<u8>, Status> {
    let message = Bytes::from(message);
    let view = wire::parse_infer_request(&message).unwrap();
    let pending = Arc::clone(&served.route)
        .infer(message, view, None, false)
        .expect("the route takes it");
    served.runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), pending)
            .await
            .expect("answered")
    })
}

#[test]
fn each_sequence_accumulates_its_own_state_and_sees_its_controls() {
    let served = serve(2, Duration::from_secs(10));
    let (y, fed) = answer(&send(&served, request(11, true, false, 1.0)).unwrap());
    assert_eq!((y, fed), (1.0, vec![1, 0, 1, 11]));
    let (y, fed) = answer(&send(&served, request(22, true, false, 100.0)).unwrap());
    assert_eq!((y, fed), (100.0, vec![1, 0, 1, 22]));
    let (y, fed) = answer(&send(&served, request(11, false, false, 2.0)).unwrap());
    assert_eq!((y, fed), (3.0, vec![0, 0, 1, 11]));
    let (y, _) = answer(&send(&served, request(22, false, false, 5.0)).unwrap());
    assert_eq!(y, 105.0);
    let (y, fed) = answer(&send(&served, request(11, false, true, 3.0)).unwrap());
    assert_eq!((y, fed), (6.0, vec![0, 1, 1, 11]));
    // Ended: the id takes only a new START, which starts from the initial state.
    let late = send(&served, request(11, false, false, 1.0)).unwrap_err();
    assert_eq!(late.code, Code::InvalidArgument);
    assert!(
        late.message.contains("must specify the START flag"),
        "{}",
        late.message
    );
    let (y, _) = answer(&send(&served, request(11, true, true, 7.0)).unwrap());
    assert_eq!(y, 7.0);
}

#[test]
fn tritons_errors_come_back_as_invalid_argument() {
    let served = serve(1, Duration::from_secs(10));
    let none = send(&served, request(0, true, false, 1.0)).unwrap_err();
    assert_eq!(none.code, Code::InvalidArgument);
    assert_eq!(
        none.message,
        "inference request to model 'acc' must specify a non-zero or non-empty correlation ID"
    );
    // The same request with two rows.
    let tensor = [field(1, b"x"), field(2, b"FP32"), field(3, &[2, 1])].concat();
    let two_rows = [
        field(1, b"acc"),
        field(5, &tensor),
        parameter("sequence_id", &varint_field(2, 5)),
        parameter("sequence_start", &varint_field(1, 1)),
        field(7, &[0; 8]),
    ]
    .concat();
    let rows = send(&served, two_rows).unwrap_err();
    assert!(
        rows.message.contains("must specify batch-size 1"),
        "{}",
        rows.message
    );
}

#[test]
fn a_sequence_beyond_the_slots_waits_and_an_idle_one_gives_its_slot_up() {
    let served = serve(1, Duration::from_millis(200));
    answer(&send(&served, request(1, true, false, 1.0)).unwrap());
    // Sequence 2 waits in the backlog: sequence 1 holds the only slot until it is idle.
    let message = Bytes::from(request(2, true, false, 10.0));
    let view = wire::parse_infer_request(&message).unwrap();
    let waiting = Arc::clone(&served.route)
        .infer(message, view, None, false)
        .unwrap();
    let started = std::time::Instant::now();
    let answered = served.runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("answered once sequence 1 is reaped")
    });
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "it waited for the slot"
    );
    let (y, fed) = answer(&answered.unwrap());
    assert_eq!((y, fed), (10.0, vec![1, 0, 1, 2]));
    // Sequence 1 lost its slot: it must start again.
    let late = send(&served, request(1, false, false, 1.0)).unwrap_err();
    assert!(late.message.contains("must specify the START flag"));
    served.sequencer.close();
}

/// Submits `message` without waiting for its answer.
fn submit(served: &Served, message: Vec<u8>) -> PendingInfer {
    let message = Bytes::from(message);
    let view = wire::parse_infer_request(&message).unwrap();
    Arc::clone(&served.route)
        .infer(message, view, None, false)
        .expect("the route takes it")
}

#[test]
fn a_flood_of_new_sequences_is_refused_past_the_bound_and_cancelled_ones_free_room() {
    let served = serve_bounded(1, Duration::from_secs(30), 8);
    answer(&send(&served, request(1, true, false, 1.0)).unwrap());
    // Sequence 1 holds the only slot: new one-request sequences wait in the backlog, up to 8.
    let mut waiting: Vec<PendingInfer> = (2..10)
        .map(|sequence| submit(&served, request(sequence, true, true, sequence as f32)))
        .collect();
    for sequence in 10..1000 {
        let refused = send(&served, request(sequence, true, true, 1.0)).unwrap_err();
        assert_eq!(refused.code, Code::ResourceExhausted);
        assert!(
            refused
                .message
                .contains("sequence batcher holds 8 requests already"),
            "{}",
            refused.message
        );
    }
    // Clients that give up free their places (a dropped request is withdrawn).
    waiting.truncate(4);
    waiting.push(submit(&served, request(5000, true, true, 5000.0)));
    // Sequence 1 ends: the backlog runs in arrival order, the late one included.
    answer(&send(&served, request(1, false, true, 1.0)).unwrap());
    let answers: Vec<f32> = waiting
        .into_iter()
        .map(|pending| {
            let answered = served.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), pending)
                    .await
                    .expect("answered")
            });
            answer(&answered.unwrap()).0
        })
        .collect();
    assert_eq!(answers, vec![2.0, 3.0, 4.0, 5.0, 5000.0]);
    served.sequencer.close();
}
