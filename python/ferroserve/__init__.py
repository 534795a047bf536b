"""ferroserve: a high-performance KServe v2 / Triton-compatible model server for ONNX models.

The request path is Rust, in the extension `ferroserve._core`: the native gRPC front end answers
inference for models on the native engine (batching, onnxruntime's C API on CPU and GPU)
without Python. This package owns policy: configuration, the model registry, model loading, the
metrics sidecar, and the grpc.aio server behind the front end that answers every call it
forwards (unusual requests, whose errors it words, and models off the native engine, which run
on onnxruntime's Python binding).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ferroserve")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
