//! `SequencePlan`: what a stateful model's requests are given besides their own inputs
//! (Triton's `sequence_batching` control inputs and implicit state), as Python describes it
//! from config.pbtxt; `OrtExecutor` builds the version's `Sequencer` from it.

use std::time::Duration;

use bytes::Bytes;
use ferroserve_batcher::SequenceConfig;
use ferroserve_frontend::{ControlKind, CorrelationType, SequencePlan, StateTensor};
use pyo3::prelude::*;

use crate::exceptions::InvalidInputError;

/// A stateful model's sequence batcher settings.
#[pyclass(name = "SequencePlan", frozen, module = "ferroserve._core")]
pub(crate) struct PySequencePlan {
    /// The model's name, as its sequencer's errors name it.
    pub(crate) model: String,
    pub(crate) plan: SequencePlan,
}

#[pymethods]
impl PySequencePlan {
    /// `model`: the model's name, for messages; `slots`: sequences running at once; `max_idle_us`: the idle timeout; `max_held`: requests held waiting for a slot or their turn (0: no bound); `controls`: per
    /// control input in the executor's order after the client's inputs, (kind, false value,
    /// true value, CORRID datatype): kind START, END or READY with one element's bytes for
    /// false and true, or CORRID with its datatype (UINT64, INT64, UINT32, INT32, BYTES);
    /// `states`: per state input after the controls, (executor output index of the next
    /// state, one row's initial bytes, dims without the batch dim).
    #[new]
    #[pyo3(signature = (*, model, slots, max_idle_us, max_held, controls, states, batches))]
    fn new(
        model: String,
        slots: usize,
        max_idle_us: u64,
        max_held: usize,
        controls: Vec<(String, Vec<u8>, Vec<u8>, String)>,
        states: Vec<(usize, Vec<u8>, Vec<i64>)>,
        batches: bool,
    ) -> PyResult<Self> {
        let controls = controls
            .into_iter()
            .map(|(kind, off, on, datatype)| {
                Ok(match kind.as_str() {
                    "START" => ControlKind::Start([off, on]),
                    "END" => ControlKind::End([off, on]),
                    "READY" => ControlKind::Ready([off, on]),
                    "CORRID" => ControlKind::CorrelationId(match datatype.as_str() {
                        "UINT64" => CorrelationType::U64,
                        "INT64" => CorrelationType::I64,
                        "UINT32" => CorrelationType::U32,
                        "INT32" => CorrelationType::I32,
                        "BYTES" => CorrelationType::Text,
                        other => {
                            return Err(InvalidInputError::new_err(format!(
                                "a CORRID control cannot be {other}"
                            )));
                        }
                    }),
                    other => {
                        return Err(InvalidInputError::new_err(format!(
                            "unknown sequence control kind '{other}'"
                        )));
                    }
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        let states = states
            .into_iter()
            .map(|(output, initial, dims)| StateTensor {
                output,
                initial: Bytes::from(initial),
                dims,
            })
            .collect();
        Ok(PySequencePlan {
            model,
            plan: SequencePlan {
                config: SequenceConfig {
                    slots: slots.max(1),
                    max_idle: Duration::from_micros(max_idle_us),
                    max_held,
                },
                controls,
                states,
                batches,
            },
        })
    }
}
