#!/usr/bin/env bash
# Run a command inside a private, loopback-only network namespace (plus a private mount
# namespace), so that nothing it starts can reach a real metadata service or any address
# off this machine. Inside, the emulator may own the real addresses:
#   169.254.169.254/32 on lo (port 80)   -> Azure IMDS default endpoint
#   localhost:40342                      -> Arc HIMDS default endpoint
#   /var/opt/azcmagent/tokens (tmpfs)    -> the Arc key directory, invisible to the host
# The command sees IMDS_RUNBOOK_NETNS=1. Where no namespace can be made (no unshare, no
# user namespaces), it runs as is with IMDS_RUNBOOK_NETNS=0 and the namespace tests skip.
#
# Usage: tests/isolated.sh COMMAND [ARG...]
set -euo pipefail

if [ "${IMDS_RUNBOOK_NETNS_STAGE:-}" = inner ]; then
    unset IMDS_RUNBOOK_NETNS_STAGE
    ip link set lo up
    ip addr add 169.254.169.254/32 dev lo
    # HIMDS's fixed port must never be handed out as an ephemeral port (a client socket or an
    # emulator on port 0 holding 40342 would make the real-endpoint tests fail at random).
    echo 40342 > /proc/sys/net/ipv4/ip_local_reserved_ports 2>/dev/null || true
    # A private tmpfs over /var/opt: the tokens directory exists only in this namespace.
    if [ -d /var/opt ] && mount -t tmpfs -o mode=0755 imds-runbook-varopt /var/opt 2>/dev/null; then
        mkdir -p /var/opt/azcmagent/tokens
        chmod 0750 /var/opt/azcmagent/tokens
        export IMDS_RUNBOOK_TOKENS_DIR_MOUNTED=1
    else
        export IMDS_RUNBOOK_TOKENS_DIR_MOUNTED=0
    fi
    # Make sure nothing but loopback exists here; refuse to run otherwise.
    if ip -o link show | awk -F': ' '{print $2}' | grep -qv '^lo$'; then
        echo "isolated.sh: refusing to run: a non-loopback interface exists in the namespace" >&2
        exit 2
    fi
    export IMDS_RUNBOOK_NETNS=1
    exec "$@"
fi

if [ $# -eq 0 ]; then
    echo "isolated.sh: usage: tests/isolated.sh COMMAND [ARG...]" >&2
    exit 2
fi

self="$(readlink -f "$0")"
if command -v unshare >/dev/null 2>&1 && command -v ip >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        flags=(--net --mount --propagation private)
    else
        flags=(--map-root-user --net --mount --propagation private)
    fi
    if unshare "${flags[@]}" true 2>/dev/null; then
        IMDS_RUNBOOK_NETNS_STAGE=inner exec unshare "${flags[@]}" "$self" "$@"
    fi
fi

echo "isolated.sh: WARNING: no private network namespace could be made here;" \
     "running without it (namespace tests will skip)" >&2
export IMDS_RUNBOOK_NETNS=0
exec "$@"
