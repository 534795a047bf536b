//! `EnsemblePlan`: an ensemble's steps and the tensors between them, by index. Python checks
//! the config against Triton's rules and the composing models (config/ensemble.py) and hands
//! the steps over in dependency order; `EnsemblePlan::new` checks the invariants the route
//! relies on, so a plan that breaks them is refused at load instead of failing requests.

use thiserror::Error;

/// One step: a composing model version and how its tensors map to the ensemble's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnsembleStep {
    /// The composing model's name.
    pub model: String,
    /// The version number it names, or "" for the model's routed version (Triton's -1).
    pub version: String,
    /// (composing model input, ensemble tensor index) per `input_map` entry.
    pub inputs: Vec<(String, usize)>,
    /// (composing model output, ensemble tensor index) per `output_map` entry.
    pub outputs: Vec<(String, usize)>,
}

/// A plan that breaks an invariant the route relies on (Python validates first, so this
/// names a bug rather than a config mistake).
#[derive(Debug, Error, PartialEq, Eq)]
#[error("ensemble plan: {0}. This is a bug.")]
pub struct PlanError(String);

/// An ensemble's DAG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnsemblePlan {
    /// Every ensemble tensor's name, by index.
    tensors: Vec<String>,
    /// The tensor of each ensemble input, in signature order.
    inputs: Vec<usize>,
    /// The tensor of each ensemble output, in signature order.
    outputs: Vec<usize>,
    /// The steps, each after every step that produces one of its inputs.
    steps: Vec<EnsembleStep>,
    /// Per tensor, how many step inputs read it: once they are all submitted, a tensor
    /// that is not an output is dropped (a request holds only the tensors still needed).
    reads: Vec<usize>,
}

impl EnsemblePlan {
    /// The plan, if every index is in range, every tensor is produced once (by an ensemble
    /// input or a step), and every step reads only tensors produced before it.
    pub fn new(
        tensors: Vec<String>,
        inputs: Vec<usize>,
        outputs: Vec<usize>,
        steps: Vec<EnsembleStep>,
    ) -> Result<Self, PlanError> {
        let count = tensors.len();
        let in_range = |index: usize| {
            if index < count {
                Ok(index)
            } else {
                Err(PlanError(format!("tensor {index} of {count}")))
            }
        };
        let mut produced = vec![false; count];
        for &tensor in &inputs {
            let tensor = in_range(tensor)?;
            if std::mem::replace(&mut produced[tensor], true) {
                return Err(PlanError(format!("'{}' produced twice", tensors[tensor])));
            }
        }
        let mut reads = vec![0usize; count];
        for step in &steps {
            for &(_, tensor) in &step.inputs {
                if !produced[in_range(tensor)?] {
                    return Err(PlanError(format!(
                        "model '{}' reads '{}' before it is produced",
                        step.model, tensors[tensor]
                    )));
                }
                reads[tensor] += 1;
            }
            for &(_, tensor) in &step.outputs {
                if std::mem::replace(&mut produced[in_range(tensor)?], true) {
                    return Err(PlanError(format!("'{}' produced twice", tensors[tensor])));
                }
            }
        }
        for &tensor in &outputs {
            if !produced[in_range(tensor)?] {
                return Err(PlanError(format!(
                    "output '{}' is never produced",
                    tensors[tensor]
                )));
            }
        }
        Ok(EnsemblePlan {
            tensors,
            inputs,
            outputs,
            steps,
            reads,
        })
    }

    /// The name of tensor `index`.
    pub fn tensor(&self, index: usize) -> &str {
        &self.tensors[index]
    }

    /// How many tensors there are.
    pub fn tensor_count(&self) -> usize {
        self.tensors.len()
    }

    /// The tensor of each ensemble input, in signature order.
    pub fn inputs(&self) -> &[usize] {
        &self.inputs
    }

    /// The tensor of each ensemble output, in signature order.
    pub fn outputs(&self) -> &[usize] {
        &self.outputs
    }

    /// The steps, in dependency order.
    pub fn steps(&self) -> &[EnsembleStep] {
        &self.steps
    }

    /// How many step inputs read each tensor.
    pub fn reads(&self) -> &[usize] {
        &self.reads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(model: &str, inputs: &[usize], outputs: &[usize]) -> EnsembleStep {
        EnsembleStep {
            model: model.into(),
            version: String::new(),
            inputs: inputs.iter().map(|&t| ("in".into(), t)).collect(),
            outputs: outputs.iter().map(|&t| ("out".into(), t)).collect(),
        }
    }

    fn names(count: usize) -> Vec<String> {
        (0..count).map(|i| format!("t{i}")).collect()
    }

    #[test]
    fn a_diamond_is_a_plan_and_counts_its_reads() {
        // t0 -> a -> t1 -> {b -> t2, c -> t3} -> d(t2, t3, t0) -> t4
        let steps = vec![
            step("a", &[0], &[1]),
            step("b", &[1], &[2]),
            step("c", &[1], &[3]),
            step("d", &[2, 3, 0], &[4]),
        ];
        let plan = EnsemblePlan::new(names(5), vec![0], vec![4], steps).expect("plan");
        assert_eq!(plan.reads(), &[2, 2, 1, 1, 0]);
        assert_eq!(plan.steps().len(), 4);
    }

    #[test]
    fn broken_invariants_are_refused() {
        let out_of_order = vec![step("b", &[1], &[2]), step("a", &[0], &[1])];
        let error =
            EnsemblePlan::new(names(3), vec![0], vec![2], out_of_order).expect_err("refused");
        assert!(
            error.to_string().contains("before it is produced"),
            "{error}"
        );
        let twice = vec![step("a", &[0], &[1]), step("b", &[0], &[1])];
        let error = EnsemblePlan::new(names(2), vec![0], vec![1], twice).expect_err("refused");
        assert!(error.to_string().contains("'t1' produced twice"), "{error}");
        let missing = vec![step("a", &[0], &[1])];
        let error = EnsemblePlan::new(names(3), vec![0], vec![2], missing).expect_err("refused");
        assert!(error.to_string().contains("never produced"), "{error}");
        let range = vec![step("a", &[7], &[1])];
        assert!(EnsemblePlan::new(names(2), vec![0], vec![1], range).is_err());
    }
}
