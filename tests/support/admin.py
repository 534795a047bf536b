"""Helpers of the deployment tests (test_admin.py, test_routing.py, test_swaps.py): the
plus-constant model whose answer names its version, the `ferroserve` CLI run in process, a
snapshot of a repository's files, and an inference that reports the version that answered."""

from __future__ import annotations

import io
import os
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import tritonclient.grpc as triton_grpc
from ferroserve import cli

from support import models as m

MODEL = "fraud"
CONFIG = f"""\
name: "{MODEL}"
max_batch_size: 8
input [{{ name: "INPUT0" data_type: TYPE_FP32 dims: [4] }}]
output [{{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [4] }}]
dynamic_batching {{ max_queue_delay_microseconds: 500 }}
"""
PYTHON_ENGINE = 'parameters { key: "native_engine" value { string_value: "false" } }\n'
"""Appended to CONFIG: the model runs on onnxruntime's Python binding, so the Python server
answers its requests (the native front end forwards them)."""


def plus(value: float) -> bytes:
    """A model adding `value` to its input: a zero input comes back as the version's number."""
    return m.plus_constant_model(value).SerializeToString()


def run_cli(*argv: str) -> tuple[int, str, str]:
    """`ferroserve ARGV` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def tree(root: Path) -> list[tuple[str, int]]:
    """Every path under `root` with its size (folders 0): what 'unchanged' compares."""
    entries = []
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            entries.append((os.path.relpath(Path(folder, name), root), 0))
        for name in files:
            path = Path(folder, name)
            entries.append((os.path.relpath(path, root), path.stat().st_size))
    return sorted(entries)


def answer(url: str, version: str = "", model: str = MODEL) -> tuple[float, str]:
    """(what the model added to a zero input, the response's model_version)."""
    client = triton_grpc.InferenceServerClient(url)
    try:
        x = triton_grpc.InferInput("INPUT0", [1, 4], "FP32")
        x.set_data_from_numpy(np.zeros((1, 4), np.float32))
        result = client.infer(model, [x], model_version=version)
        output = result.as_numpy("OUTPUT0")
        assert output is not None
        return float(output[0, 0]), result.get_response().model_version
    finally:
        client.close()
