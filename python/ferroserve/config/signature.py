"""What a loaded model version accepts and returns (`ModelSignature`, one `TensorSpec` per
tensor) and how onnxruntime describes the graph (`OnnxTensor`). Built once per version by the
config completion (config/autocomplete.py); request validation and the runtime read it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from ferroserve.datatypes import Datatype


@dataclass(slots=True, frozen=True)
class TensorSpec:
    """One model input or output as clients see it."""

    name: str
    datatype: Datatype
    dims: tuple[int, ...]
    """Dims without the batch dim; -1 means any size."""
    model_dims: tuple[int, ...]
    """What the ONNX graph is fed or returns (config `reshape`), without the batch dim."""
    optional: bool = False
    """An input a request may leave out (config `optional: true`: a graph initializer that
    requests may override; left out, the graph's own value is fed)."""

    @property
    def output_dims(self) -> tuple[int, ...]:
        """The dims the runtime builds this output's shape from when they differ from
        `model_dims`. A graph scalar of a model that does not batch (dims [1], no model dims)
        is built as [-1]: [1] for a real scalar, and an output whose rank the graph does not
        declare (onnxruntime describes it as a scalar) keeps all its elements."""
        return (-1,) if self.dims == (1,) and self.model_dims == () else self.dims

    def model_input_shape(self, shape: Sequence[int]) -> list[int]:
        """The graph's shape of an input a request sent as `shape` (without the batch dim)."""
        return reshape_dims(self.dims, self.model_dims, shape)

    def client_output_shape(self, shape: Sequence[int]) -> list[int]:
        """The client's shape of an output the graph returned as `shape` (without the batch
        dim)."""
        return reshape_dims(self.model_dims, self.output_dims, shape)


def reshape_dims(source: Sequence[int], target: Sequence[int], shape: Sequence[int]) -> list[int]:
    """A config `reshape` applied as Triton applies it (core `InferenceRequest::Normalize`,
    `InferenceResponse::Output::Reshape`): a tensor whose dims are `source` and whose shape is
    `shape` gets `target`, the i-th -1 of `target` taking the size of the i-th -1 of
    `source` (validation.py makes both have as many, the fixed dims between them holding the
    same counts). Without a -1 in `source`, `target`'s one -1 is filled from the element
    count. The native engine's `Reshape` (rust/runtime/src/layout.rs) does the same."""
    sizes = [size for dim, size in zip(source, shape, strict=False) if dim == -1]
    if not sizes or len(sizes) != list(target).count(-1):
        known = math.prod(dim for dim in target if dim != -1)
        elements = math.prod(shape)
        return [elements // known if dim == -1 and known else dim for dim in target]
    taken = iter(sizes)
    return [next(taken) if dim == -1 else dim for dim in target]


@dataclass(slots=True, frozen=True)
class InputLayout:
    """One input as the request fast path checks it."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    """Full client shape, -1 for any size (the batch dim included)."""
    itemsize: int
    """Bytes per element; 0 for BYTES (length-prefixed elements, each checked by the fast path)."""


@dataclass(slots=True, frozen=True)
class ModelSignature:
    """The tensors a model version accepts and returns, and whether dim 0 is a batch dim."""

    max_batch_size: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    input_layouts: tuple[InputLayout, ...] = field(init=False)
    """Per input, what the request fast path checks (precomputed once per model)."""

    def __post_init__(self) -> None:
        layouts = tuple(
            InputLayout(
                spec.name,
                spec.datatype.name,
                tuple(self.client_shape(spec)),
                0 if spec.datatype.numpy is None else spec.datatype.numpy.itemsize,
            )
            for spec in self.inputs
        )
        object.__setattr__(self, "input_layouts", layouts)

    @property
    def batches(self) -> bool:
        return self.max_batch_size > 0

    def client_shape(self, spec: TensorSpec) -> list[int]:
        """The full shape a client sees in metadata (-1 for the batch dim)."""
        return [-1, *spec.dims] if self.batches else list(spec.dims)


@dataclass(slots=True, frozen=True)
class OnnxTensor:
    """A graph input or output as onnxruntime reports it."""

    name: str
    onnx_type: str
    shape: tuple[int | None, ...]
    """None for a symbolic or unknown dim."""
