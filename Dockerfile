# authgate: a multi-stage image, non-root, with a health check.
# Build: docker build -t authgate .   Run: see compose.yaml and docs/operations.md.

FROM python:3.11-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir "uv==0.13.8"
COPY pyproject.toml uv.lock README.md ./
COPY src ./src
# The locked dependencies, then authgate itself, into one virtual environment.
RUN uv venv /opt/authgate \
 && UV_PROJECT_ENVIRONMENT=/opt/authgate uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/authgate --create-home authgate
COPY --from=build /opt/authgate /opt/authgate
ENV PATH=/opt/authgate/bin:$PATH \
    AUTHGATE_HOST=0.0.0.0 \
    AUTHGATE_DATA_DIR=/var/lib/authgate \
    PYTHONUNBUFFERED=1
USER authgate
WORKDIR /var/lib/authgate
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"
CMD ["authgate", "serve"]
