# syntax=docker/dockerfile:1.7
# ferroserve's container image (docs/deploying-kubernetes.md), in two variants of one runtime stage:
#   docker build -t ferroserve:cpu .                                # CPU
#   docker build --build-arg VARIANT=cuda -t ferroserve:cuda .      # NVIDIA GPUs: CUDA 13, cuDNN 9
# The builder compiles the wheel (Rust extension + Python package) with maturin; the runtime stage
# holds Python, the installed wheel with its dependencies, and nothing that builds.

ARG VARIANT=cpu
# onnxruntime-gpu 1.31 (PyPI) links CUDA 13 (libcudart.so.13, libcublas.so.13) and loads cuDNN 9;
# it also runs on CPU, which is why both variants use it (pyproject.toml). Keep the CUDA base's
# major versions in step with the pinned onnxruntime-gpu: docs/deploying-kubernetes.md has the pairs.
ARG ONNXRUNTIME_GPU_VERSION=1.31.1
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04
ARG UBUNTU_IMAGE=ubuntu:24.04
ARG RUST_IMAGE=rust:1.95-slim-bookworm

# --- the wheel ----------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/maturin \
 && /opt/maturin/bin/pip install --no-cache-dir maturin==1.16.0
WORKDIR /src
COPY Cargo.toml Cargo.lock pyproject.toml README.md ./
COPY rust/ rust/
# A workspace member: cargo reads every member's manifest before it builds any of them.
COPY benches/loadgen/ benches/loadgen/
COPY python/ python/
# abi3 (pyo3's abi3-py310): one wheel for every CPython from 3.10 on, whichever base runs it.
RUN /opt/maturin/bin/maturin build --release --locked --out /dist

# --- runtime bases: only the libraries each variant needs ----------------------------------------
FROM ${UBUNTU_IMAGE} AS cpu-base
FROM ${CUDA_IMAGE} AS cuda-base

# --- runtime --------------------------------------------------------------------------------------
FROM ${VARIANT}-base AS runtime
ARG ONNXRUNTIME_GPU_VERSION
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/ferroserve/bin:$PATH
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
# The s3 extra (boto3) serves --model-repository s3://bucket/prefix (deploy/kubernetes/overlays/s3).
RUN --mount=type=bind,from=builder,source=/dist,target=/dist \
    python3 -m venv /opt/ferroserve \
 && wheel="$(echo /dist/ferroserve-*.whl)" \
 && /opt/ferroserve/bin/pip install --no-cache-dir "${wheel}[s3]" \
      "onnxruntime-gpu==${ONNXRUNTIME_GPU_VERSION}"
# Not root: uid/gid 10001 (the Kubernetes manifests' runAsUser), no login shell; /models is
# where a repository is mounted by default.
RUN groupadd --system --gid 10001 ferroserve \
 && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/ferroserve \
      --shell /usr/sbin/nologin ferroserve \
 && mkdir /models && chown 10001:10001 /models
USER 10001
WORKDIR /home/ferroserve
# 8001: gRPC (KServe v2 / Triton); 8002: the metrics sidecar (/metrics and the dashboard).
EXPOSE 8001 8002
# Readiness through the gRPC health service (grpc.health.v1 Check of the whole server).
# Against a TLS server (--grpc-use-ssl) set FERROSERVE_ROOT_CERT (and FERROSERVE_CLIENT_CERT,
# FERROSERVE_CLIENT_KEY under mutual TLS): `ferroserve health` reads them (docs/security.md).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["ferroserve", "health", "--server", "127.0.0.1:8001"]
ENTRYPOINT ["ferroserve"]
CMD ["serve", "--model-repository", "/models", "--host", "0.0.0.0"]
