"""The general path's codec, for the requests the Python server answers (those the native front
end forwards: malformed messages, invalid inputs, compressed bodies, and every request of a
model the native engine does not run). Turns a v2
`ModelInferRequest` into the raw little-endian buffers the batcher queues, and per-request
output buffers back into a `ModelInferResponse`. Validates every input against the model
signature so errors name the input with expected vs received: the one place request errors are
worded (the native front end's matcher never rejects, it forwards).

Raw contents are passed on as the request's own `bytes` objects (no copy); typed `contents` are
converted once. Element-wise work on BYTES (length prefixes) happens in the Rust extension.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from ferroserve import _core
from ferroserve._proto import grpc_service_pb2 as pb
from ferroserve.classification import RequestedOutput, check_classifiable, class_count, classify
from ferroserve.config import ModelSignature, TensorSpec
from ferroserve.errors import InvalidInputError


@dataclass(slots=True)
class DecodedInputs:
    """One request's inputs in signature order, ready for `BatchQueue.submit`."""

    buffers: list[bytes]
    shapes: list[list[int]]
    rows: int
    """Rows in dim 0 (1 for a model without a batch dim)."""


def parse_request(data: bytes) -> pb.ModelInferRequest:
    """A received message as a protobuf object; InvalidInputError when it is malformed."""
    try:
        return pb.ModelInferRequest.FromString(data)
    except DecodeError as error:
        raise InvalidInputError(f"malformed ModelInferRequest message: {error}") from None


def serialize_response(response: pb.ModelInferResponse, stream: bool) -> bytes:
    """The response's bytes, wrapped as a `ModelStreamInferResponse` for a stream."""
    if stream:
        return pb.ModelStreamInferResponse(infer_response=response).SerializeToString()
    return response.SerializeToString()


def decode_inputs(
    request: pb.ModelInferRequest,
    model: str,
    signature: ModelSignature,
    defaults: Mapping[str, tuple[bytes, list[int]]] | None = None,
) -> DecodedInputs:
    """Validates the request's inputs and returns their raw buffers; an optional input the
    request leaves out gets its value from `defaults` (raw bytes and shape, by name).
    InvalidInputError otherwise."""
    specs = signature.inputs
    received = request.inputs
    raw = request.raw_input_contents
    if raw and len(raw) != len(received):
        raise InvalidInputError(
            f"model '{model}': request has {len(received)} inputs but {len(raw)} "
            "raw_input_contents; send raw contents for every input or for none"
        )
    by_name: dict[str, int] = {}
    for index, tensor in enumerate(received):
        if tensor.name in by_name:
            raise InvalidInputError(f"model '{model}': input '{tensor.name}' is given twice")
        by_name[tensor.name] = index
    left_out = [s.name for s in specs if s.name not in by_name]
    if any(name not in (defaults or {}) for name in left_out) or len(by_name) + len(
        left_out
    ) != len(specs):
        _raise_name_mismatch(model, specs, by_name)
    buffers: list[bytes] = []
    shapes: list[list[int]] = []
    rows = -1
    for spec in specs:
        if spec.name not in by_name:
            assert defaults is not None
            buffer, shape = defaults[spec.name]
            buffers.append(buffer)
            shapes.append(list(shape))
            continue
        index = by_name[spec.name]
        tensor = received[index]
        shape = _check_shape(model, spec, tensor, signature)
        if signature.batches:
            if rows not in (-1, shape[0]):
                raise InvalidInputError(
                    f"model '{model}': input '{spec.name}' has batch size {shape[0]} but other "
                    f"inputs have {rows}; all inputs must share dim 0"
                )
            rows = shape[0]
        buffer = _buffer(model, spec, tensor, shape, raw[index] if raw else None)
        buffers.append(buffer)
        shapes.append(shape)
    return DecodedInputs(buffers, shapes, rows if signature.batches else 1)


def _raise_name_mismatch(model: str, specs: Sequence[TensorSpec], by_name: dict[str, int]) -> None:
    expected = [s.name for s in specs]
    missing = [s.name for s in specs if s.name not in by_name and not s.optional]
    extra = [n for n in by_name if n not in expected]
    parts = []
    if missing:
        parts.append(f"missing input(s) {missing}")
    if extra:
        parts.append(f"unexpected input(s) {extra}")
    raise InvalidInputError(f"model '{model}': {'; '.join(parts)}; the model expects {expected}")


def _check_shape(
    model: str,
    spec: TensorSpec,
    tensor: pb.ModelInferRequest.InferInputTensor,
    signature: ModelSignature,
) -> list[int]:
    where = f"model '{model}' input '{spec.name}'"
    if tensor.datatype != spec.datatype.name:
        raise InvalidInputError(
            f"{where}: expected datatype {spec.datatype.name}, got '{tensor.datatype}'"
        )
    shape = list(tensor.shape)
    expected = signature.client_shape(spec)
    mismatch = len(shape) != len(expected) or any(
        want not in (-1, got) for want, got in zip(expected, shape, strict=True)
    )
    if mismatch or any(d < 0 for d in shape):
        raise InvalidInputError(f"{where}: expected shape {_show(expected)}, got {shape}")
    if signature.batches and not 1 <= shape[0] <= signature.max_batch_size:
        raise InvalidInputError(
            f"{where}: batch size {shape[0]} is outside 1..{signature.max_batch_size} "
            "(max_batch_size)"
        )
    return shape


def _show(shape: Sequence[int]) -> str:
    return "[" + ", ".join("-1" if d == -1 else str(d) for d in shape) + "]"


def _element_count(shape: Sequence[int]) -> int:
    count = 1
    for d in shape:
        count *= d
    return count


def _buffer(
    model: str,
    spec: TensorSpec,
    tensor: pb.ModelInferRequest.InferInputTensor,
    shape: list[int],
    raw: bytes | None,
) -> bytes:
    where = f"model '{model}' input '{spec.name}'"
    datatype = spec.datatype
    count = _element_count(shape)
    if raw is not None:
        if tensor.HasField("contents"):
            raise InvalidInputError(f"{where}: has both raw_input_contents and typed contents")
        if datatype.is_bytes:
            if count > len(raw) // 4:  # each element has a 4-byte length prefix
                raise InvalidInputError(
                    f"{where}: shape {shape} needs {count} BYTES elements but raw content has "
                    f"{len(raw)} bytes (4 or more per element)"
                )
            # onnxruntime string tensors hold UTF-8 text: reject anything else here, not in a
            # batch shared with other requests.
            _core.validate_bytes_tensor(raw, count, spec.name, utf8=True)
        else:
            expected = _core.expected_byte_size(datatype.name, shape)
            if len(raw) != expected:
                raise InvalidInputError(
                    f"{where}: raw content has {len(raw)} bytes but shape {shape} of "
                    f"{datatype.name} needs {expected}"
                )
        return raw
    field = datatype.contents_field
    if field is None:
        raise InvalidInputError(
            f"{where}: {datatype.name} has no typed contents field; send it in raw_input_contents"
        )
    values = getattr(tensor.contents, field)
    if len(values) != count:
        raise InvalidInputError(
            f"{where}: contents.{field} has {len(values)} elements but shape {shape} needs {count}"
        )
    if datatype.is_bytes:
        encoded = _core.encode_bytes_tensor(np.array(list(values), dtype=object))
        _core.validate_bytes_tensor(encoded, count, spec.name, utf8=True)
        return encoded
    assert datatype.numpy is not None
    try:
        # list(): numpy wraps out-of-range values from a protobuf container silently but raises
        # OverflowError for Python ints.
        array = np.asarray(list(values), dtype=datatype.numpy)
    except OverflowError as error:
        raise InvalidInputError(f"{where}: a value does not fit {datatype.name}: {error}") from None
    return array.tobytes()


def output_buffer(array: np.ndarray) -> bytes:
    """Raw v2 bytes for one output tensor (BYTES -> length-prefixed)."""
    if array.dtype == object or array.dtype.kind in "SU":
        return _core.encode_bytes_tensor(array)
    return np.ascontiguousarray(array).tobytes()


def requested_outputs(
    request: pb.ModelInferRequest, model: str, signature: ModelSignature
) -> list[RequestedOutput]:
    """The outputs the client asked for (all by default), each with the class count it asked
    for through Triton's classification extension (0: the tensor itself)."""
    if not request.outputs:
        return [RequestedOutput(index) for index in range(len(signature.outputs))]
    names = [s.name for s in signature.outputs]
    chosen = []
    for wanted in request.outputs:
        if wanted.name not in names:
            raise InvalidInputError(
                f"model '{model}': requested output '{wanted.name}' does not exist; outputs "
                f"are {names}"
            )
        index = names.index(wanted.name)
        count = 0
        if "classification" in wanted.parameters:
            count = class_count(wanted.parameters["classification"], model, wanted.name)
            if count:
                check_classifiable(signature.outputs[index], model)
        chosen.append(RequestedOutput(index, count))
    return chosen


def scheduling_parameters(request: pb.ModelInferRequest, model: str) -> tuple[int, int]:
    """Triton's per-request `priority` and `timeout` (microseconds) parameters, as sent (0: not
    sent). What they mean for the model (the level, whether the timeout applies) is the queue's
    rule (`BatcherConfig::level`, `QueuePolicy::timeout_us` in rust/batcher), the same for
    requests the native front end queues."""
    parameters = request.parameters
    priority = timeout_us = 0
    if "priority" in parameters:
        priority = _int_parameter(parameters["priority"], "priority", model)
    if "timeout" in parameters:
        timeout_us = _int_parameter(parameters["timeout"], "timeout", model)
    if priority < 0 or timeout_us < 0:
        raise InvalidInputError(f"model '{model}': priority and timeout must be >= 0")
    return priority, timeout_us


def _int_parameter(value: Any, key: str, model: str) -> int:
    kind = value.WhichOneof("parameter_choice")
    if kind in ("int64_param", "uint64_param"):
        return int(getattr(value, kind))
    raise InvalidInputError(
        f"model '{model}': request parameter '{key}' must be an integer (int64_param), got {kind}"
    )


def encode_response(
    request: pb.ModelInferRequest,
    model: tuple[str, str],
    signature: ModelSignature,
    wanted: Sequence[RequestedOutput],
    result: tuple[list[bytes], list[list[int]]],
    labels: Mapping[str, tuple[str, ...]] | None = None,
) -> pb.ModelInferResponse:
    """The response to `request` from `model` (name, version label): the outputs `wanted` of
    `result` (a buffer and a shape per output), classified where asked, with `labels` (per
    output name, from `label_filename`)."""
    buffers, shapes = result
    name, version = model
    response = pb.ModelInferResponse(model_name=name, model_version=version, id=request.id)
    outputs = signature.outputs
    for output in wanted:
        spec = outputs[output.index]
        buffer, shape, datatype = buffers[output.index], shapes[output.index], spec.datatype.name
        if output.class_count:
            buffer, shape = classify(
                spec,
                buffer,
                shape,
                signature.batches,
                output.class_count,
                (labels or {}).get(spec.name, ()),
            )
            datatype = "BYTES"
        response.outputs.add(name=spec.name, datatype=datatype, shape=shape)
        response.raw_output_contents.append(buffer)
    return response
