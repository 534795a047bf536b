"""Whether this machine can run models on a GPU, asked the way the server asks: the native
engine registers onnxruntime's CUDA provider for a tiny model. GPU tests skip with the reason
when it cannot (CI has no GPU); on a GPU machine they run."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from ferroserve import _core
from ferroserve.runtime.native import library_path

from support import models as m

CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"


@functools.cache
def cuda_unavailable_reason() -> str | None:
    """None when the native engine really runs a model on CUDA here, else why not."""
    library = library_path()
    if library is None:
        return "the onnxruntime package ships no shared library"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "probe.onnx"
        path.write_bytes(m.identity_model("FP32", [1]).SerializeToString())
        try:
            model = _core.OrtModel.load(library, path, accelerator="cuda", gpus=[0])
        except _core.UnavailableError as error:
            return str(error)
    if model.providers != [CUDA]:
        return f"the probe ran on {model.providers}"
    return None
