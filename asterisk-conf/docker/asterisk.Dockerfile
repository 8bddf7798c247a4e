# Asterisk 22 for the callcenter command center, installed exactly the way the engine provisions
# it outside Docker (callcenter/asterisk/provision.py): Debian sid packages `asterisk` and
# `asterisk-modules`, no recommends. Debian 12 has no Asterisk 22; sid has.
#
# The image holds no configuration of its own: the engine renders it into the shared volume
# mounted at /srv/callcenter/var, and the entrypoint waits for it (see asterisk-entrypoint.sh).
#
# sid moves every day. For a reproducible production image pin the base by digest, e.g.
#   FROM debian:sid-slim@sha256:<digest>
FROM debian:sid-slim

# The asterisk user shares its uid/gid with the engine's user (engine.Dockerfile): the engine
# writes the configuration (mode 0640) and creates the run/log/spool/lib and recordings folders,
# Asterisk must read and write them. Keep both images built with the same values.
ARG CALLCENTER_UID=10001
ARG CALLCENTER_GID=10001

# Created before the package is installed, so its maintainer script reuses this user.
# /etc/hosts is left alone: Docker manages it (the chroot setup writes one; a container has one).
# The stock users.conf defines phones of its own; the rendered config never includes it, but it
# is moved aside so nobody mistakes it for ours.
RUN groupadd --system --gid "${CALLCENTER_GID}" asterisk \
 && useradd --system --uid "${CALLCENTER_UID}" --gid asterisk \
        --home-dir /var/lib/asterisk --no-create-home --shell /usr/sbin/nologin asterisk \
 && apt-get -o Acquire::Check-Valid-Until=false update \
 && DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Check-Valid-Until=false install -y \
        --no-install-recommends asterisk asterisk-modules \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && if [ -e /etc/asterisk/users.conf ]; then \
        mv /etc/asterisk/users.conf /etc/asterisk/users.conf.debian; \
    fi \
 && asterisk -V | grep -q '^Asterisk 22' \
 && install -d -o asterisk -g asterisk -m 0750 /srv/callcenter/var /srv/callcenter/recordings

COPY asterisk-conf/docker/asterisk-entrypoint.sh /usr/local/bin/asterisk-entrypoint
RUN chmod 0755 /usr/local/bin/asterisk-entrypoint

# Starts as root only so that `asterisk -U asterisk -G asterisk` can drop privileges itself.
ENTRYPOINT ["/usr/local/bin/asterisk-entrypoint"]
