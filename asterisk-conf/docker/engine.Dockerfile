# The callcenter engine: AMI client, FastAGI server and web server (`callcenter serve`).
# Build from the repository root: docker build -f asterisk-conf/docker/engine.Dockerfile .
FROM python:3.11-slim-bookworm

# Same uid/gid as the asterisk user of asterisk.Dockerfile: both containers share the rendered
# configuration, the Asterisk instance folders and the recordings through volumes.
ARG CALLCENTER_UID=10001
ARG CALLCENTER_GID=10001

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# espeak-ng and sox generate the placeholder IVR prompts (callcenter/ivr/prompts.py).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends espeak-ng sox \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid "${CALLCENTER_GID}" callcenter \
 && useradd --uid "${CALLCENTER_UID}" --gid callcenter \
        --home-dir /srv/callcenter --no-create-home --shell /usr/sbin/nologin callcenter

WORKDIR /srv/callcenter

# README.m[d]: copied when present (pyproject.toml names it), without failing when it is not.
COPY pyproject.toml README.m[d] ./
COPY callcenter/ ./callcenter/
COPY asterisk-conf/ ./asterisk-conf/
COPY ivr_flows/ ./ivr_flows/

# Editable (-e) on purpose: the engine finds asterisk-conf/ next to its package
# (callcenter/asterisk/render.py: CONF_DIR), which a plain `pip install .` into site-packages
# would break. psycopg is the PostgreSQL driver for CALLCENTER_DATABASE_URL=postgresql+psycopg://.
# var/ and recordings/ are the volume mount points; created here so fresh volumes get this owner.
RUN pip install -e . "psycopg[binary]" \
 && install -d -o callcenter -g callcenter -m 0750 /srv/callcenter/var /srv/callcenter/recordings

ENV CALLCENTER_DATA_DIR=/srv/callcenter/var \
    CALLCENTER_RECORDINGS_DIR=/srv/callcenter/recordings \
    CALLCENTER_FLOWS_DIR=/srv/callcenter/ivr_flows

# The engine binds only unprivileged ports (HTTP 8080, FastAGI 4573 on loopback).
USER callcenter
EXPOSE 8080
CMD ["callcenter", "serve"]
