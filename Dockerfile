# Image Processing Service: the Serve app on the official Ray image.
#
#   docker build -t image-processing-service:0.1.0 .
#   docker run --rm --shm-size=2g -p 8000:8000 -p 127.0.0.1:8265:8265 \
#     image-processing-service:0.1.0
#
# The whole stack (PostgreSQL, Redis, MinIO, Prometheus, Grafana): kuberay/compose.yaml.
#
# GPU variant (same Ray, CUDA base):
#   docker build --build-arg RAY_IMAGE=rayproject/ray:2.60.0-py311-gpu \
#     -t image-processing-service:0.1.0-gpu .
#
# The Ray version must equal the `ray[serve]` pin in pyproject.toml (a test checks it).
# On Kubernetes, KubeRay replaces CMD with its own `ray start` (see kuberay/).
ARG RAY_IMAGE=rayproject/ray:2.60.0-py311
FROM ${RAY_IMAGE}

LABEL org.opencontainers.image.title="image-processing-service" \
      org.opencontainers.image.description="Image processing and image AI over HTTP, on Ray Serve" \
      org.opencontainers.image.licenses="MIT"

# System packages the service uses (the Makefile's SYSTEM_PACKAGES; a test keeps them equal).
USER root
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        fonts-dejavu-core tesseract-ocr tesseract-ocr-eng \
    && rm -rf /var/lib/apt/lists/*

# Everything else as the image's non-root user (uid 1000, group users), into its own Python.
USER ray
WORKDIR /home/ray/app
COPY --chown=ray:users pyproject.toml README.md LICENSE ./
COPY --chown=ray:users pipelines ./pipelines
COPY --chown=ray:users deployments ./deployments
COPY --chown=ray:users serve_app ./serve_app
RUN pip install --no-cache-dir . \
    && pip install --no-cache-dir --no-deps facenet-pytorch==2.6.0 \
    && rm -rf build ./*.egg-info
COPY --chown=ray:users serve_config.yaml ./

# Embedded defaults (SQLite metadata, blob folder) live here; mount a volume to keep them, or
# set DATABASE_URL / STORAGE_URL to real services. Settings are read from the environment.
ENV DATA_DIR=/home/ray/data
RUN mkdir -p "$DATA_DIR"

# Serve's fast HTTP path, as `make run` starts it (serve_app/cli/local.py, fast_ingress_env; the
# figures are in bench/RESULTS.md): HAProxy on the HTTP port in front of ingress replicas that
# serve HTTP themselves. Ray reads it when its processes start, so it applies on KubeRay's
# pods too. With it, serve_app/cli/local.py's SERVE_ENV: Serve's logs go to its log files only
# (not also to each worker's stderr file), its controller loops at 2 Hz instead of 10, and
# uvicorn trusts no X-Forwarded-For (the guard reads it, per FORWARDED_TRUSTED_HOPS).
ENV RAY_SERVE_ENABLE_HA_PROXY=1 RAY_SERVE_LOG_TO_STDERR=0 RAY_SERVE_CONTROL_LOOP_INTERVAL_S=0.5
ENV FORWARDED_ALLOW_IPS=none
# An ingress replica that dies: requests not yet handed to it are retried on another replica;
# only connection failures are retried (serve_app/cli/local.py, HAPROXY_RETRIES, says why).
ENV RAY_SERVE_HAPROXY_RETRY_ON=conn-failure RAY_SERVE_HAPROXY_RETRIES=3

# 8000: Serve's HTTP port (HAProxy). 8265: the Ray dashboard (it can run jobs: publish it privately).
# 8080: Ray's Prometheus metrics (Serve's ray_serve_* and ours), as on KubeRay's pods.
EXPOSE 8000 8265 8080

# A Ray head, then the app. serve_config.yaml binds 127.0.0.1 for laptops and `serve run` has
# no host flag, so Serve is started first with its proxy on all interfaces; `serve run` then
# keeps those HTTP options (it logs that the file's differ) and deploys the applications from
# the file. GCS on 6380: 6379 is Redis's. Metrics on 8080, where kuberay/compose.yaml's
# Prometheus scrapes them. `serve run` shuts Serve down on SIGINT.
STOPSIGNAL SIGINT
CMD ["bash", "-c", "ray start --head --port=6380 --dashboard-host=0.0.0.0 --metrics-export-port=8080 --disable-usage-stats && serve start --http-host=0.0.0.0 --http-port=8000 && exec serve run serve_config.yaml"]
