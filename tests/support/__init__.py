"""Helpers shared by ferroserve's tests: tiny ONNX models, repository writers, a server process
fixture and gRPC assertions."""
