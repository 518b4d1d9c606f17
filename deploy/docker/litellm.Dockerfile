# syntax=docker/dockerfile:1.7
# The LiteLLM proxy with our spend-log sink (cogni_litellm_sink.callback.spend_sink) installed.
# LiteLLM pins its own fastapi/openai, so it gets its own image and venv, never the workspace's.
# The config is mounted at /etc/litellm/config.yaml (deploy/litellm/config.yaml).
# Build from the repository root:
#   docker build -f deploy/docker/litellm.Dockerfile -t cogni/litellm .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.8
# Same pin as the tests' cached proxy venv (cogni_litellm_sink.venv.DEFAULT_LITELLM_VERSION).
ARG LITELLM_VERSION=1.106.2
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never
WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY packages ./packages
# The sink's locked requirements plus the pinned proxy, resolved together into one venv.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv export --frozen --no-dev --no-editable --no-hashes --package cogni-litellm-sink -o sink-requirements.txt \
    && uv venv /app/.venv \
    && uv pip install --python /app/.venv/bin/python -r sink-requirements.txt "litellm[proxy]==${LITELLM_VERSION}"

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 cogni \
    && useradd --system --uid 10001 --gid cogni --home-dir /app --shell /usr/sbin/nologin cogni \
    && mkdir -p /etc/litellm \
    && chown cogni:cogni /app
WORKDIR /app
COPY --from=build --chown=cogni:cogni /app/.venv /app/.venv
COPY --chown=cogni:cogni deploy/litellm/config.yaml /etc/litellm/config.yaml
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    LITELLM_TELEMETRY=False
USER 10001:10001
EXPOSE 4000
HEALTHCHECK --interval=10s --timeout=3s --start-period=40s --retries=5 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:4000/health/liveliness', timeout=2)"]
CMD ["litellm", "--config", "/etc/litellm/config.yaml", "--host", "0.0.0.0", "--port", "4000"]
