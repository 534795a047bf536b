"""An MLServer custom inference runtime for ONNX files, written the way MLServer's "custom
inference runtimes" docs show: an `MLModel` subclass with async `load` and `predict`, codecs for
the tensors. Imported by MLServer's worker processes (its folder is put on PYTHONPATH and
model-settings.json names `mlserver_runtime.OnnxRuntime`); runs in the MLServer virtual
environment only, never imported by the benchmark itself.
"""

from __future__ import annotations

import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, NumpyRequestCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


def cpu_session(uri: str) -> ort.InferenceSession:
    """ferroserve's defaults (docs/configuration.md): one intra-op and one inter-op thread, no
    spinning, so every server runs onnxruntime the same way."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(uri, options, providers=["CPUExecutionProvider"])


class OnnxRuntime(MLModel):
    """One ONNX file; with adaptive batching MLServer concatenates requests along the first
    dimension before `predict` and splits the answer after it."""

    async def load(self) -> bool:
        self._session = cpu_session(await get_model_uri(self._settings))
        self._input = self._session.get_inputs()[0].name
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        batch = self.decode_request(payload, default_codec=NumpyRequestCodec)
        (result,) = self._session.run(None, {self._input: batch})
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            id=payload.id,
            outputs=[NumpyCodec.encode_output("output", result)],
        )
