# alertsleuth: server, CLI and the demo exporter in one image.
FROM python:3.11-slim
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /usr/local/bin/uv
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy PATH="/app/.venv/bin:$PATH" \
    ALERTSLEUTH_HOST=0.0.0.0 ALERTSLEUTH_PORT=8080 \
    ALERTSLEUTH_DATABASE_URL=sqlite:////data/alertsleuth.db ALERTSLEUTH_REPORTS_DIR=/data/alert_reports
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY agent agent
COPY tools tools
COPY server server
COPY exporter exporter
COPY prompts prompts
COPY deploy deploy
RUN uv sync --frozen --no-dev && mkdir -p /data && useradd --system --home /data alertsleuth && chown alertsleuth /data
USER alertsleuth
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz')" || exit 1
ENTRYPOINT ["alertsleuth"]
CMD ["serve"]
