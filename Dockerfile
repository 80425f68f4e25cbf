# FP-Studio on an NVIDIA CUDA runtime base, one image per CUDA version:
#   docker build -t fp-studio:cuda12.8 .                                     (default: CUDA 12.8, torch cu128)
#   docker build --build-arg CUDA_VERSION=12.6.3 --build-arg TORCH_CUDA=cu126 -t fp-studio:cuda12.6 .
#   docker build --build-arg CUDA_VERSION=13.0.2 --build-arg TORCH_CUDA=cu130 -t fp-studio:cuda13.0 .
# The host needs an NVIDIA driver that supports the chosen CUDA version and the NVIDIA Container Toolkit.
ARG CUDA_VERSION=12.8.1
ARG UBUNTU_VERSION=24.04
FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu${UBUNTU_VERSION}

ARG TORCH_CUDA=cu128
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
ARG INSTALL_SAGEATTENTION=0
# 1: Ray too (requirements-cluster.txt), for the compose `cluster` profile: the studio as Ray head, GPU workers.
ARG INSTALL_CLUSTER=0
ARG SAGEATTENTION_VERSION=1.0.6
ARG UID=1000
ARG GID=1000

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    FP_STUDIO_DATA_DIR=/data \
    HF_HOME=/data/hf_home \
    GRADIO_ANALYTICS_ENABLED=False \
    PYTHONPATH=/app

# Versions come with the base image's Ubuntu release; pinning them would break the build at every security update.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv "$VIRTUAL_ENV" \
 && (userdel --remove ubuntu 2>/dev/null || true) \
 && groupadd --gid "$GID" fpstudio \
 && useradd --no-log-init --create-home --uid "$UID" --gid "$GID" --shell /bin/bash fpstudio \
 && mkdir -p /data/hf_home /data/outputs /data/loras /data/presets \
 && chown -R fpstudio:fpstudio /data

WORKDIR /app

# torch first, from the index of the CUDA build that matches the base image (its wheels bundle the CUDA libraries).
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}" \
        --index-url "https://download.pytorch.org/whl/${TORCH_CUDA}"
COPY requirements.txt requirements-cluster.txt ./
RUN pip install --no-cache-dir -r requirements.txt \
 && if [ "$INSTALL_SAGEATTENTION" = "1" ]; then pip install --no-cache-dir "sageattention==${SAGEATTENTION_VERSION}"; fi \
 && if [ "$INSTALL_CLUSTER" = "1" ]; then pip install --no-cache-dir -r requirements-cluster.txt; fi

# The application itself stays owned by root (read-only for the app); user data lives in /data.
COPY . .

USER ${UID}:${GID}
VOLUME ["/data"]
EXPOSE 7860

HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=8)"]

# 0.0.0.0 inside the container only (outside Docker the app listens on 127.0.0.1); publish the port to choose who sees it.
CMD ["python", "app.py", "--listen", "0.0.0.0", "--port", "7860"]
