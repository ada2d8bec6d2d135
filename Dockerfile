# One image for every warmfleet process: `docker run IMAGE <command>` runs `warmfleet <command>`
# (sim, poller, worker, clock, reader, ...). Settings come from WARMFLEET_* variables.
#
#   docker build -t warmfleet .
#   docker run --rm warmfleet --help

# --- build: wheels for the project and its dependencies, into a self-contained venv -------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# compilers only for the rare dependency without a wheel for this platform; they stay in this stage
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/warmfleet
ENV PATH=/opt/warmfleet/bin:$PATH

WORKDIR /src
# dependencies first, so a source change does not reinstall them
COPY pyproject.toml README.md ./
COPY topics ./topics
COPY tiers ./tiers
COPY schedules ./schedules
COPY workers ./workers
COPY readers ./readers
COPY sim ./sim
COPY stack ./stack
COPY ab ./ab
COPY chaos ./chaos
COPY demand ./demand
RUN pip install --upgrade pip \
    && pip install .

# --- run: slim, non-root --------------------------------------------------------------------------
FROM python:3.11-slim

LABEL org.opencontainers.image.title="warmfleet" \
      org.opencontainers.image.description="Streaming cache-warming worker fleet for crypto market data" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid 10001 warmfleet \
    && useradd --system --uid 10001 --gid warmfleet --home-dir /home/warmfleet --create-home \
       --shell /usr/sbin/nologin warmfleet

COPY --from=build /opt/warmfleet /opt/warmfleet

ENV PATH=/opt/warmfleet/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WARMFLEET_LOG_FORMAT=json

# the working directory is the one writable place besides /tmp: Faust keeps its data dir here
# (the helm chart mounts emptyDirs on both, so the root filesystem can be read-only)
RUN mkdir -p /var/lib/warmfleet && chown 10001:10001 /var/lib/warmfleet
WORKDIR /var/lib/warmfleet
USER 10001:10001

# sim 8899, reader 8080, metrics: poller 9101, worker 9102, clock 9103
EXPOSE 8080 8899 9101 9102 9103

ENTRYPOINT ["warmfleet"]
CMD ["--help"]
