# syntax=docker/dockerfile:1
# The monitor as a container: build a wheel and its dependencies in one stage, run them slim and
# non-root in another. Data lives in the /data volume (a folder: SQLite's WAL files sit beside
# the database).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY monitor ./monitor
RUN python -m venv /opt/monitor \
 && /opt/monitor/bin/pip install --no-cache-dir --disable-pip-version-check -c constraints.txt .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /data monitor \
 && mkdir -p /data /etc/monitor && chown monitor /data
COPY --from=build /opt/monitor /opt/monitor
COPY config.toml /etc/monitor/config.toml
ENV PATH=/opt/monitor/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MONITOR_STORAGE__PATH=/data/monitor.db \
    MONITOR_HTTP__LISTEN=0.0.0.0:9464
USER monitor
VOLUME ["/data"]
EXPOSE 9464
# /healthz says whether the monitor is doing its job; a Genesys outage makes it 503 but the
# process is alive, so the health check only asks whether the HTTP side answers at all.
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s \
  CMD ["python", "-c", "import urllib.request as u, urllib.error as e\ntry: u.urlopen('http://127.0.0.1:9464/healthz', timeout=2)\nexcept e.HTTPError: pass"]
CMD ["monitor", "run", "--config", "/etc/monitor/config.toml"]
