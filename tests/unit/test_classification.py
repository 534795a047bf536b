"""Triton's classification extension in-process: top-k strings as Triton's server writes them
("value:index:label", six decimals for floats, highest first), their shapes with and without a
batch dim, label files, and the requests refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ferroserve import _core
from ferroserve._proto import grpc_service_pb2 as pb
from ferroserve._proto import model_config_pb2 as mc
from ferroserve.classification import RequestedOutput, classify, read_labels
from ferroserve.codec import encode_response
from ferroserve.config import ModelSignature, TensorSpec
from ferroserve.datatypes import DATATYPES
from ferroserve.errors import ConfigError
from google.protobuf import text_format


def spec(datatype: str, dims: tuple[int, ...]) -> TensorSpec:
    return TensorSpec("probs", DATATYPES[datatype], dims, dims)


def strings(raw: bytes, count: int) -> list[bytes]:
    return list(_core.decode_bytes_tensor(raw, count, "probs"))


def test_top_classes_per_row_with_labels() -> None:
    probs = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]], np.float32)
    raw, shape = classify(
        spec("FP32", (3,)), probs.tobytes(), [2, 3], True, 2, ("cat", "dog", "bird")
    )
    assert shape == [2, 2]
    assert strings(raw, 4) == [
        b"0.700000:1:dog",
        b"0.200000:2:bird",
        b"0.500000:0:cat",
        b"0.250000:1:dog",  # equal values: the lower index first
    ]


def test_integers_without_labels_and_more_classes_than_elements() -> None:
    values = np.array([3, -1, 9], np.int64)
    raw, shape = classify(spec("INT64", (3,)), values.tobytes(), [3], False, 5, ())
    assert shape == [3]
    assert strings(raw, 3) == [b"9:2", b"3:0", b"-1:1"]


def test_missing_and_empty_labels_leave_the_label_out() -> None:
    values = np.array([[1.0, 2.0, 3.0]], np.float64)
    raw, _ = classify(spec("FP64", (3,)), values.tobytes(), [1, 3], True, 3, ("a", ""))
    assert strings(raw, 3) == [b"3.000000:2", b"2.000000:1", b"1.000000:0:a"]


def test_label_files_are_read_from_the_model_folder(tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text("cat\r\ndog\nbird\n", encoding="utf-8")
    config = text_format.Parse(
        'name: "m" output [ { name: "probs" label_filename: "labels.txt" }, { name: "x" } ]',
        mc.ModelConfig(),
    )
    labels = read_labels(config, tmp_path)
    assert labels == {"probs": ("cat", "dog", "bird", "")}
    config.output[1].label_filename = "absent.txt"
    with pytest.raises(ConfigError, match=r"output 'x': label_filename .*absent\.txt"):
        read_labels(config, tmp_path)


def test_the_response_carries_bytes_in_place_of_the_tensor() -> None:
    signature = ModelSignature(
        4, (TensorSpec("x", DATATYPES["FP32"], (2,), (2,)),), (spec("FP32", (3,)),)
    )
    probs = np.array([[0.2, 0.3, 0.5]], np.float32)
    request = pb.ModelInferRequest(model_name="m", id="r1")
    response = encode_response(
        request,
        ("m", "1"),
        signature,
        [RequestedOutput(0, 1)],
        ([probs.tobytes()], [[1, 3]]),
        {"probs": ("a", "b", "c")},
    )
    (output,) = response.outputs
    assert (output.name, output.datatype, list(output.shape)) == ("probs", "BYTES", [1, 1])
    assert strings(response.raw_output_contents[0], 1) == [b"0.500000:2:c"]
