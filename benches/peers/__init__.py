"""Peer-server benchmark: ferroserve beside KServe's Python ModelServer, Seldon MLServer, the
Python gRPC transport ceiling and in-process onnxruntime, on the same ONNX models and with the
same client, written up as markdown and PNG plots under docs/benchmarks/.

    python -m benches.peers [--quick] [--out-dir docs/benchmarks]
"""
