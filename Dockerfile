# vectorql API image: `docker build -t vectorql .` (docker-compose.yml builds it as well).
ARG PYTHON_IMAGE=python:3.11-slim

# Build stage: install the package and its dependencies into a virtualenv.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# .dockerignore lets in only what the package needs (pyproject.toml, README, graph/, resolvers/, store/).
COPY . .
RUN /opt/venv/bin/pip install .

# Runtime stage: the virtualenv and an unprivileged user, no build context, no pip cache.
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VECTORQL_HOST=0.0.0.0 \
    VECTORQL_PORT=8000
RUN groupadd --system --gid 10001 vectorql \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --create-home vectorql
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# Liveness only (the process answers); docker-compose.yml checks readiness (/readyz) instead.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["vectorql", "serve", "--host", "0.0.0.0", "--port", "8000"]
