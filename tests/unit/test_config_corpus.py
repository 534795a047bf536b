"""The config.pbtxt corpus (tests/corpus/configs, read by support/config_corpus.py): real-world
configs from Triton's docs and the kinds of cases its model-config QA covers, each loaded by
the real loader against a small ONNX graph, with its expected outcome checked: loads (with the
completed config it states), loads with a warning naming what is ignored, or is refused with a
message naming what to change."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ferroserve._proto import model_config_pb2 as mc
from ferroserve.config import read_config
from ferroserve.datatypes import BY_CONFIG_NAME
from ferroserve.errors import ModelLoadError
from ferroserve.runtime.loader import load_version
from ferroserve.runtime.model import ServedModel
from google.protobuf import text_format
from support.config_corpus import GRAPHS, Case, cases

CASES = cases()


def _write_case(case: Case, root: Path) -> Path:
    folder = root / case.name
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.onnx").write_bytes(GRAPHS[case.graph]().SerializeToString())
    (folder / "config.pbtxt").write_text(case.path.read_text(encoding="utf-8"), encoding="utf-8")
    if case.files:
        _write_files(folder)
    return folder


def _write_files(folder: Path) -> None:
    """The label files and warm-up data files the config names."""
    config = mc.ModelConfig()
    text_format.Parse((folder / "config.pbtxt").read_text(), config, allow_unknown_field=True)
    for output in config.output:
        if output.label_filename:
            labels = "\n".join(f"label_{i}" for i in range(1000))
            (folder / output.label_filename).write_text(labels, encoding="utf-8")
    for sample in config.model_warmup:
        for source in sample.inputs.values():
            if source.input_data_file:
                datatype = BY_CONFIG_NAME[mc.DataType.Name(source.data_type)]
                assert datatype.numpy is not None
                data = np.ones(int(np.prod(list(source.dims))), datatype.numpy)
                (folder / "warmup").mkdir(exist_ok=True)
                (folder / "warmup" / source.input_data_file).write_bytes(data.tobytes())


def _load(folder: Path) -> ServedModel:
    async def load_and_unload() -> ServedModel:
        config = read_config(folder)
        model_file = folder / "1" / "model.onnx"
        loop = asyncio.get_running_loop()
        model = await asyncio.to_thread(load_version, config, folder, model_file, 1, loop)
        await model.unload()
        return model

    return asyncio.run(load_and_unload())


def _check_completed(case: Case, served: mc.ModelConfig) -> None:
    expected = text_format.Parse(case.completed, mc.ModelConfig())
    for descriptor, value in expected.ListFields():
        got = getattr(served, descriptor.name)
        if descriptor.message_type is not None and not _repeated(descriptor):
            assert served.HasField(descriptor.name), f"{case.name}: no {descriptor.name}"
        assert (list(got) if _repeated(descriptor) else got) == (
            list(value) if _repeated(descriptor) else value
        ), f"{case.name}: {descriptor.name} is {got}, expected {value}"
    for name in case.absent:
        assert not served.HasField(name), f"{case.name}: {name} should be absent"


def _repeated(descriptor: Any) -> bool:
    # `label` is deprecated in newer protobuf releases in favour of `is_repeated`.
    is_repeated = getattr(descriptor, "is_repeated", None)
    if is_repeated is not None:
        return bool(is_repeated)
    return bool(descriptor.label == descriptor.LABEL_REPEATED)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_config_corpus(
    case: Case, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    folder = _write_case(case, tmp_path)
    caplog.set_level(logging.INFO, logger="ferroserve")
    if case.expect == "rejected":
        with pytest.raises(ModelLoadError) as caught:
            _load(folder)
        for fragment in case.naming:
            assert fragment in str(caught.value), f"{fragment!r} not in {caught.value}"
        return
    model = _load(folder)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    said = [r.getMessage() for r in caplog.records] + [model.report.warmup]
    if case.expect == "loads":
        assert warnings == [], f"{case.name} loads with no warning"
        for fragment in case.naming:
            assert any(fragment in message for message in said), (fragment, said)
    else:
        for fragment in case.naming:
            assert any(fragment in message for message in warnings), (fragment, warnings)
    _check_completed(case, model.config)


def test_the_corpus_covers_each_outcome() -> None:
    outcomes = {case.expect for case in CASES}
    assert outcomes == {"loads", "warns", "rejected"}
    assert sum(case.name.startswith("autocomplete_") for case in CASES) >= 5
