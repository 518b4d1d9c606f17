# syntax=docker/dockerfile:1.7
# The deterministic OpenAI-compatible mock upstream (tests, benchmarks, the offline demo).
# Build from the repository root:
#   docker build -f deploy/docker/mock-llm.Dockerfile -t cogni/mock-llm .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.8
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY packages ./packages
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package cogni-mock-llm

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 cogni \
    && useradd --system --uid 10001 --gid cogni --home-dir /app --shell /usr/sbin/nologin cogni \
    && chown cogni:cogni /app
WORKDIR /app
COPY --from=build --chown=cogni:cogni /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 4010
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:4010/health', timeout=2)"]
CMD ["python", "-m", "cogni_mock_llm", "--host", "0.0.0.0", "--port", "4010"]
