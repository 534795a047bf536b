"""The gRPC surface: v2 inference service, health, reflection, and the process that hosts them."""
