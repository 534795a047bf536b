"""Warm-up samples in-process: `model_warmup` read as Triton reads it (batch_size rows of the
sample's dims, zero/random/file data, count, batch 0 skipped) and refused where Triton fails;
a generated warm-up that fails is reported, never fatal."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
import pytest
from ferroserve._proto import model_config_pb2 as mc
from ferroserve.config import ModelSignature, TensorSpec
from ferroserve.datatypes import DATATYPES
from ferroserve.errors import ConfigError, ModelLoadError
from ferroserve.runtime.model import LoadReport
from ferroserve.runtime.warmup import warm_up, warmup_samples
from google.protobuf import text_format

SIGNATURE = ModelSignature(
    8,
    (
        TensorSpec("x", DATATYPES["FP32"], (2, -1), (2, -1)),
        TensorSpec("t", DATATYPES["BYTES"], (1,), (1,)),
    ),
    (TensorSpec("y", DATATYPES["FP32"], (2,), (2,)),),
)


def config(samples: str) -> mc.ModelConfig:
    return text_format.Parse(f'name: "m" {samples}', mc.ModelConfig())


def sample(name: str, batch: int, x: str, t: str = "zero_data: true", extra: str = "") -> str:
    return f"""model_warmup [ {{ name: "{name}" batch_size: {batch} {extra}
      inputs {{ key: "x" value {{ data_type: TYPE_FP32 dims: [ 2, 3 ] {x} }} }}
      inputs {{ key: "t" value {{ data_type: TYPE_STRING dims: [ 1 ] {t} }} }} }} ]"""


def test_a_sample_is_a_batch_of_its_dims_run_count_times(tmp_path: Path) -> None:
    (tmp_path / "warmup").mkdir()
    (tmp_path / "warmup" / "x.raw").write_bytes(np.arange(8, dtype=np.float32).tobytes())
    (tmp_path / "warmup" / "t.raw").write_bytes(struct.pack("<I", 2) + b"hi")
    text = sample("files", 3, 'input_data_file: "x.raw"', 'input_data_file: "t.raw"', "count: 4")
    (got,) = warmup_samples(config(text), SIGNATURE, tmp_path)
    assert (got.name, got.count) == ("files", 4)
    # Triton reads the bytes the dims need (the file may hold more) into every row.
    np.testing.assert_array_equal(got.feeds["x"], np.tile(np.arange(6.0).reshape(2, 3), (3, 1, 1)))
    assert got.feeds["t"].tolist() == [["hi"]] * 3


def test_random_and_zero_data_and_skipped_samples(tmp_path: Path) -> None:
    text = sample("random", 2, "random_data: true", "random_data: true")
    text = text.replace("model_warmup [", 'model_warmup [ { name: "none" batch_size: 0 },')
    (got,) = warmup_samples(config(text), SIGNATURE, tmp_path)
    assert got.feeds["x"].shape == (2, 2, 3) and got.feeds["x"].dtype == np.float32
    assert got.count == 1
    assert got.feeds["t"].tolist() == [[b""], [b""]]  # random STRING data is empty strings


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (sample("big", 9, "zero_data: true"), "batch_size 9 exceeds max_batch_size 8"),
        (sample("any", 1, "zero_data: true").replace("2, 3", "2, -1"), "variable-size"),
        (sample("dims", 1, "zero_data: true").replace("2, 3", "3, 3"), "do not fit"),
        (sample("kind", 1, "zero_data: true").replace("TYPE_FP32", "TYPE_INT32"), "TYPE_INT32"),
        (sample("none", 1, ""), "set zero_data, random_data or input_data_file"),
        (sample("file", 1, 'input_data_file: "absent.raw"'), "does not exist"),
        (
            'model_warmup [ { name: "half" batch_size: 1 inputs { key: "x" value { '
            "data_type: TYPE_FP32 dims: [ 2, 3 ] zero_data: true } } } ]",
            "has no input 't'",
        ),
    ],
)
def test_what_triton_refuses_is_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        warmup_samples(config(text), SIGNATURE, tmp_path)


def test_a_model_that_does_not_batch_takes_batch_size_1(tmp_path: Path) -> None:
    unbatched = ModelSignature(0, SIGNATURE.inputs, SIGNATURE.outputs)
    (got,) = warmup_samples(config(sample("one", 1, "zero_data: true")), unbatched, tmp_path)
    assert got.feeds["x"].shape == (2, 3)
    with pytest.raises(ConfigError, match="batch_size must be 1"):
        warmup_samples(config(sample("two", 2, "zero_data: true")), unbatched, tmp_path)


class FailingExecutor:
    """An Executor stand-in whose every run fails, recording the instances asked for."""

    warm_up_instances = 2

    def __init__(self) -> None:
        self.runs: list[int] = []

    def warm_up(self, feeds: dict[str, np.ndarray], instance: int) -> None:
        self.runs.append(instance)
        raise RuntimeError("Range: delta cannot be zero")


def test_a_failing_generated_warmup_is_reported_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    executor = FailingExecutor()
    with caplog.at_level(logging.WARNING, logger="ferroserve"):
        outcome = warm_up(executor, config(""), SIGNATURE, tmp_path, 3)  # type: ignore[arg-type]
    assert executor.runs == [0]
    assert "generated warm-up request failed" in outcome.summary and "delta" in outcome.summary
    assert outcome.shown, "clients see it as the READY version's reason"
    assert any("model 'm' version 3: generated" in r.getMessage() for r in caplog.records)


def test_a_failing_model_warmup_sample_fails_the_load(tmp_path: Path) -> None:
    executor = FailingExecutor()
    with pytest.raises(ModelLoadError, match="model_warmup sample 'zeros' failed: Range"):
        warm_up(
            executor,  # type: ignore[arg-type]
            config(sample("zeros", 1, "zero_data: true")),
            SIGNATURE,
            tmp_path,
            1,
        )


class RecordingExecutor:
    """An Executor stand-in whose runs succeed."""

    warm_up_instances = 2

    def __init__(self) -> None:
        self.runs: list[int] = []

    def warm_up(self, feeds: dict[str, np.ndarray], instance: int) -> None:
        self.runs.append(instance)


def test_samples_that_ran_are_the_ready_reason_a_generated_request_that_ran_is_not(
    tmp_path: Path,
) -> None:
    executor = RecordingExecutor()
    text = sample("zeros", 2, "zero_data: true", extra="count: 3")
    ran = warm_up(executor, config(text), SIGNATURE, tmp_path, 1)  # type: ignore[arg-type]
    assert executor.runs == [0, 0, 0, 1, 1, 1]
    assert ran.shown and ran.summary.startswith("1 model_warmup sample(s), 6 run(s) on 2")
    report = LoadReport("CPUExecutionProvider", (), 0.1, ran.summary, ran.shown)
    assert report.ready_reason == f"warm-up: {ran.summary}"
    generated = warm_up(RecordingExecutor(), config(""), SIGNATURE, tmp_path, 1)  # type: ignore[arg-type]
    assert generated.summary.startswith("generated zero-filled request ran")
    assert not generated.shown
    quiet = LoadReport("CPUExecutionProvider", (), 0.1, generated.summary, generated.shown)
    assert quiet.ready_reason == ""
