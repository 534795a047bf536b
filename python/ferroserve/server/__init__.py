"""The Python gRPC server: the v2 inference service, health and reflection on grpc.aio, and the
process that hosts them and starts the native Rust front end, which forwards to it every call
it does not answer itself."""
