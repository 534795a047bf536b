//! How request tensors map onto the model's: the batch dim and config.pbtxt `reshape`.

use std::ops::Range;

use crate::{InputTensor, OutputTensor};

/// The model version's tensor layout as its config declares it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// The graph inputs in the order requests carry them (config.pbtxt's order).
    pub input_names: Vec<String>,
    /// The graph outputs in the order requests get them.
    pub output_names: Vec<String>,
    /// Whether dim 0 of every tensor is the batch dim (max_batch_size > 0).
    pub batches: bool,
    /// Per input: from the client's dims to the model's, where `reshape` differs from the
    /// dims the client sends.
    pub input_reshapes: Vec<Option<Reshape>>,
    /// Per output: from the model's dims to the client's, where `reshape` differs from the
    /// model's.
    pub output_reshapes: Vec<Option<Reshape>>,
}

/// A config.pbtxt `reshape` from one side's dims (the client's for an input, the model's for
/// an output; without the batch dim) to the other's, mapped as Triton maps it (core
/// `InferenceRequest::Normalize` and `InferenceResponse::Output::Reshape`): the i-th -1 of
/// the target takes the size of the source's i-th -1. Triton's validation (config/validation.py)
/// makes both sides have as many -1s, with the runs of fixed dims between them holding the
/// same counts, so the element count always agrees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reshape {
    /// The target dims.
    dims: Vec<i64>,
    /// Per -1 of `dims`, in order, the index of the source dim whose size it takes. Empty when
    /// the source has no -1: `dims` then has at most one, filled from the element count (a
    /// graph output onnxruntime describes as a scalar is given `[-1]`: all its elements).
    wildcards: Vec<usize>,
}

impl Reshape {
    /// The reshape of a tensor whose dims are `source` on one side and `target` on the other.
    pub fn between(source: &[i64], target: &[i64]) -> Self {
        let wildcards: Vec<usize> = (0..source.len()).filter(|&i| source[i] == -1).collect();
        let wanted = target.iter().filter(|&&dim| dim == -1).count();
        Reshape {
            dims: target.to_vec(),
            wildcards: if wildcards.len() == wanted {
                wildcards
            } else {
                Vec::new()
            },
        }
    }

    /// The target shape of a tensor of shape `source` (without the batch dim).
    fn apply(&self, source: &[i64]) -> Vec<i64> {
        if self.wildcards.is_empty() {
            return resolve(&self.dims, elements(source));
        }
        let mut sizes = self
            .wildcards
            .iter()
            .map(|&index| source.get(index).copied().unwrap_or(0));
        self.dims
            .iter()
            .map(|&dim| {
                if dim == -1 {
                    sizes.next().unwrap_or(0)
                } else {
                    dim
                }
            })
            .collect()
    }
}

impl Layout {
    /// The shape to run input `index` with, given the shape the client sent.
    pub fn model_input_shape(&self, index: usize, shape: &[i64]) -> Vec<i64> {
        match self.input_reshapes.get(index) {
            Some(Some(reshape)) => match (self.batches, shape.split_first()) {
                (true, Some((&rows, tail))) => {
                    std::iter::once(rows).chain(reshape.apply(tail)).collect()
                }
                (true, None) => std::iter::once(0).chain(reshape.apply(&[0])).collect(),
                (false, _) => reshape.apply(shape),
            },
            _ => shape.to_vec(),
        }
    }

    /// The model's shape of each input, from the shapes a request (or batch) carries.
    pub fn model_input_shapes<'s>(
        &self,
        shapes: impl IntoIterator<Item = &'s [i64]>,
    ) -> Vec<Vec<i64>> {
        shapes
            .into_iter()
            .enumerate()
            .map(|(index, shape)| self.model_input_shape(index, shape))
            .collect()
    }

    /// The engine's inputs: each input's bytes with its graph name and model shape (from
    /// `model_input_shapes`), in request order.
    pub fn input_tensors<'a>(
        &'a self,
        data: impl IntoIterator<Item = &'a [u8]>,
        model_shapes: &'a [Vec<i64>],
    ) -> Vec<InputTensor<'a>> {
        data.into_iter()
            .zip(model_shapes)
            .zip(&self.input_names)
            .map(|((data, shape), name)| InputTensor { name, data, shape })
            .collect()
    }

    /// All of output `index` for one request (nothing to split): its byte range and the
    /// client's shape, with the rows the model produced.
    pub fn whole_output<O>(
        &self,
        index: usize,
        output: &OutputTensor<O>,
    ) -> (Range<usize>, Vec<i64>) {
        let rows = output.shape().first().copied().unwrap_or(1);
        (
            0..output.len(),
            self.client_output_shape(index, output.shape(), rows),
        )
    }

    /// The shape the client gets for output `index` with `rows` rows (ignored without a batch
    /// dim), given the output's shape from the model.
    pub fn client_output_shape(&self, index: usize, model_shape: &[i64], rows: i64) -> Vec<i64> {
        let tail = if self.batches {
            model_shape.get(1..).unwrap_or_default()
        } else {
            model_shape
        };
        let tail = match self.output_reshapes.get(index) {
            Some(Some(reshape)) => reshape.apply(tail),
            _ => tail.to_vec(),
        };
        if self.batches {
            std::iter::once(rows).chain(tail).collect()
        } else {
            tail
        }
    }
}

/// Elements of a tensor of `shape`: 0 when any dim is 0 (a client may send `[1, 0, 2^62]`,
/// whose dims multiply past i64 before the 0), else the product, saturating.
fn elements(shape: &[i64]) -> i64 {
    product(shape.iter().copied())
}

/// `elements` of the dims `dims` yields.
fn product(dims: impl Iterator<Item = i64> + Clone) -> i64 {
    if dims.clone().any(|dim| dim == 0) {
        return 0;
    }
    dims.fold(1i64, i64::saturating_mul)
}

/// `dims` with one -1 filled in so that they hold `elements` elements.
fn resolve(dims: &[i64], elements: i64) -> Vec<i64> {
    let known = product(dims.iter().copied().filter(|&dim| dim != -1));
    dims.iter()
        .map(|&dim| {
            if dim == -1 && known != 0 {
                elements / known
            } else {
                dim
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_pass_through_without_reshape() {
        let layout = Layout {
            input_names: vec!["x".into()],
            output_names: vec!["y".into()],
            batches: true,
            input_reshapes: vec![None],
            output_reshapes: vec![None],
        };
        assert_eq!(layout.model_input_shape(0, &[3, 4]), vec![3, 4]);
        assert_eq!(layout.client_output_shape(0, &[5, 2], 2), vec![2, 2]);
    }

    #[test]
    fn reshapes_keep_the_batch_dim() {
        let layout = Layout {
            input_names: vec!["x".into()],
            output_names: vec!["y".into()],
            batches: true,
            input_reshapes: vec![Some(Reshape::between(&[4], &[2, 2]))],
            output_reshapes: vec![Some(Reshape::between(&[2, 5], &[-1]))],
        };
        assert_eq!(layout.model_input_shape(0, &[3, 4]), vec![3, 2, 2]);
        assert_eq!(layout.client_output_shape(0, &[3, 2, 5], 3), vec![3, 10]);
    }

    #[test]
    fn several_variable_dims_take_their_sizes_in_order() {
        // Triton's example: [2, 4, -1, 6] fed as [8, -1, 1, 6]; and two -1s each way.
        let layout = Layout {
            input_names: vec!["x".into(), "z".into()],
            output_names: vec!["y".into()],
            batches: true,
            input_reshapes: vec![
                Some(Reshape::between(&[2, 4, -1, 6], &[8, -1, 1, 6])),
                Some(Reshape::between(&[-1, 2, 3, -1], &[-1, 6, -1])),
            ],
            output_reshapes: vec![Some(Reshape::between(&[-1, 6, -1], &[-1, 2, 3, -1]))],
        };
        assert_eq!(
            layout.model_input_shape(0, &[3, 2, 4, 5, 6]),
            vec![3, 8, 5, 1, 6]
        );
        assert_eq!(
            layout.model_input_shape(1, &[1, 7, 2, 3, 9]),
            vec![1, 7, 6, 9]
        );
        assert_eq!(
            layout.client_output_shape(0, &[2, 7, 6, 9], 2),
            vec![2, 7, 2, 3, 9]
        );
        let unbatched = Layout {
            batches: false,
            ..layout
        };
        assert_eq!(unbatched.model_input_shape(1, &[7, 2, 3, 9]), vec![7, 6, 9]);
        assert_eq!(
            unbatched.client_output_shape(0, &[7, 6, 0], 0),
            vec![7, 2, 3, 0]
        );
    }

    #[test]
    fn dims_whose_product_overflows_before_a_zero_hold_no_elements() {
        let layout = Layout {
            input_names: vec!["x".into()],
            output_names: vec!["y".into()],
            batches: true,
            input_reshapes: vec![Some(Reshape::between(&[2, 4, 1], &[-1, 2]))],
            output_reshapes: vec![Some(Reshape::between(&[2, 4, 1], &[-1]))],
        };
        let huge = 1i64 << 62;
        assert_eq!(layout.model_input_shape(0, &[1, huge, 4, 0]), vec![1, 0, 2]);
        assert_eq!(
            layout.client_output_shape(0, &[1, huge, 4, 0], 1),
            vec![1, 0]
        );
        assert_eq!(elements(&[huge, huge]), i64::MAX);
    }

    #[test]
    fn reshapes_without_a_batch_dim() {
        let layout = Layout {
            input_names: vec!["x".into()],
            output_names: vec!["y".into()],
            batches: false,
            input_reshapes: vec![Some(Reshape::between(&[-1], &[1, -1]))],
            output_reshapes: vec![Some(Reshape::between(&[6], &[2, 3]))],
        };
        assert_eq!(layout.model_input_shape(0, &[6]), vec![1, 6]);
        assert_eq!(layout.client_output_shape(0, &[6], 0), vec![2, 3]);
    }
}
