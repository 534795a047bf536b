"""ferroserve: a high-performance KServe v2 / Triton-compatible model server for ONNX models.

The serving hot path (batching, tensor concatenation and splitting, BYTES codec) lives in the
Rust extension `ferroserve._core`; this package owns policy: configuration, the model registry,
onnxruntime sessions and the gRPC services.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ferroserve")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
