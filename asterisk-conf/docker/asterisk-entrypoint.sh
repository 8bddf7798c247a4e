#!/bin/sh
# Start Asterisk in the foreground on the configuration the callcenter engine renders into the
# shared volume. The engine container writes it at start-up; until then there is nothing to run,
# so wait for it (bounded) instead of starting Asterisk on a missing or half-written config.
#
# Environment:
#   ASTERISK_CONFIG       the rendered asterisk.conf
#                         (default /srv/callcenter/var/asterisk/etc/asterisk.conf)
#   ASTERISK_CONFIG_WAIT  seconds to wait for it (default 120)
# Extra arguments are passed on to asterisk.
set -eu

conf="${ASTERISK_CONFIG:-/srv/callcenter/var/asterisk/etc/asterisk.conf}"
wait_max="${ASTERISK_CONFIG_WAIT:-120}"
etc_dir=$(dirname "$conf")

case "$wait_max" in
    '' | *[!0-9]*)
        echo "asterisk-entrypoint: error: ASTERISK_CONFIG_WAIT must be whole seconds, got '$wait_max'" >&2
        exit 64
        ;;
esac

# asterisk.conf is not the last file the engine writes: the generated SIP accounts and queue
# members come after the templates. Wait for all three.
config_ready() {
    [ -s "$conf" ] && [ -s "$etc_dir/pjsip_accounts.conf" ] && [ -s "$etc_dir/queues_members.conf" ]
}

waited=0
while ! config_ready; do
    if [ "$waited" -ge "$wait_max" ]; then
        echo "asterisk-entrypoint: error: no rendered Asterisk configuration in $etc_dir after" \
            "${wait_max}s; the engine service renders it into the shared volume - check" \
            "'docker compose logs engine'" >&2
        exit 1
    fi
    if [ "$waited" -eq 0 ]; then
        echo "asterisk-entrypoint: waiting up to ${wait_max}s for the engine to render $conf"
    fi
    sleep 1
    waited=$((waited + 1))
done

echo "asterisk-entrypoint: starting Asterisk on $conf"
exec asterisk -f -C "$conf" -U asterisk -G asterisk "$@"
