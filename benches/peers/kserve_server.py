"""KServe's Python ModelServer serving ONNX files with onnxruntime, the way KServe's custom-model
docs show it: a `kserve.Model` subclass whose `predict` takes a v2 `InferRequest` and returns an
`InferResponse`, started with `ModelServer().start([...])`; gRPC v2 on --grpc_port. Runs with the
KServe virtual environment's Python (kserve is no ferroserve dependency), never imported here.

    python kserve_server.py --models-dir DIR --grpc_port P --http_port H [ModelServer flags]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer, model_server


def cpu_session(path: Path) -> ort.InferenceSession:
    """ferroserve's defaults (docs/configuration.md): one intra-op and one inter-op thread, no
    spinning, so every server runs onnxruntime the same way."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxModel(Model):
    """One ONNX file; `predict` runs it on the request's first input."""

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(name)
        self._path = path
        self._session: ort.InferenceSession | None = None
        self._input = ""
        self.load()

    def load(self) -> bool:
        self._session = cpu_session(self._path)
        self._input = self._session.get_inputs()[0].name
        self.ready = True
        return self.ready

    def predict(
        self, payload: InferRequest, headers: dict[str, str] | None = None
    ) -> InferResponse:
        assert self._session is not None
        batch = payload.inputs[0].as_numpy()
        (result,) = self._session.run(None, {self._input: batch})
        output = InferOutput(name="output", shape=list(result.shape), datatype="FP32")
        output.set_data_from_numpy(result)
        return InferResponse(
            response_id=payload.id or "",
            model_name=self.name,
            infer_outputs=[output],
            use_binary_outputs=payload.use_binary_outputs,
        )


def main() -> None:
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--models-dir", type=Path, required=True, help="folder of <name>.onnx")
    args, _ = parser.parse_known_args()
    models = [OnnxModel(path.stem, path) for path in sorted(args.models_dir.glob("*.onnx"))]
    ModelServer().start(models)


if __name__ == "__main__":
    main()
