# syntax=docker/dockerfile:1
# The monitor as a container: the package and its pinned dependencies are installed into a
# virtual environment in a build stage, and only that environment is copied into a slim runtime
# that runs as an unprivileged user. Data lives in the /data volume (a folder, because SQLite's
# WAL files sit beside the database). The same image runs the built-in simulator (`monitor sim`).
#
# For reproducible builds, pin the base image by digest: python:3.11-slim@sha256:...
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY monitor ./monitor
# No pip inside the runtime environment: the build stage's pip installs into it.
RUN python -m venv --without-pip /opt/monitor \
 && python -m pip --python /opt/monitor/bin/python install --no-cache-dir \
      --disable-pip-version-check -c constraints.txt .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="genesys-presence-monitor" \
      org.opencontainers.image.description="Presence and routing-status monitor for Genesys Cloud" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed, unprivileged uid and gid, so files in /data keep their owner across image upgrades.
RUN groupadd --system --gid 10001 monitor \
 && useradd --system --uid 10001 --gid monitor --home-dir /data --no-create-home monitor \
 && mkdir -p /data /etc/monitor \
 && chown monitor:monitor /data \
 && chmod 0750 /data
COPY --from=build /opt/monitor /opt/monitor
COPY config.toml /etc/monitor/config.toml
# Time zones: the tzdata Python package (a dependency) carries the whole IANA database, aliases
# included, so schedules and rules resolve any zone whatever the base image ships.
# MONITOR_CONFIG lets other commands (`monitor backup`, `monitor export`) find the settings
# without --config. The HTTP side listens on every interface inside the container, so the
# action endpoint (POST /api/v1/presence) is off: the monitor refuses to serve it on a reachable
# address without a token. Set MONITOR_API_TOKEN and MONITOR_HTTP__ACTIONS=true to use it.
ENV PATH=/opt/monitor/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MONITOR_CONFIG=/etc/monitor/config.toml \
    MONITOR_STORAGE__PATH=/data/monitor.db \
    MONITOR_HTTP__LISTEN=0.0.0.0:9464 \
    MONITOR_HTTP__ACTIONS=false
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 9464
# Asks whether the process answers HTTP at all. /healthz is 503 while Genesys is unreachable or a
# channel is down, but restarting the container would not help then (the monitor reconnects by
# itself and reports the outage in its metrics), so any HTTP answer counts as healthy and only
# no answer (a dead or hung process) as unhealthy. Slim images have no curl: Python asks.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import http.client as h, os; p = int(os.environ.get('MONITOR_HTTP__LISTEN', ':9464').strip(chr(34)).rsplit(':', 1)[1]); c = h.HTTPConnection('127.0.0.1', p, timeout=4); c.request('GET', '/healthz'); c.getresponse()"]
# Exec form: the monitor is PID 1 and gets SIGTERM itself, then drains its writer and exits
# within its 8 s drain limit, inside Docker's default 10 s grace period.
STOPSIGNAL SIGTERM
CMD ["monitor", "run", "--config", "/etc/monitor/config.toml"]
