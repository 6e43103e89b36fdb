#!/usr/bin/env bash
# Runs a command inside a network namespace of its own (as root: `unshare --net`), with `lo`
# up and a veth pair whose veth0 holds 192.0.2.1/24 (TEST-NET-1, documentation range).
#
# LiveKit's SIP, egress and ingress workers use WebRTC stacks that ignore loopback, and the
# ingress worker binds its ports on every interface: inside this namespace they talk over
# 192.0.2.1 while nothing can leave it and no port can collide with the host's. Every test
# component, the service under test and the test process run inside it.
#   usage: scripts/in-netns.sh <command> [args...]   (exports TEST_NETNS_ADDR=192.0.2.1)
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 <command> [args...]" >&2; exit 2; }
if [ "$(id -u)" -ne 0 ]; then
  echo "$0: creating a network namespace needs root (unshare --net)" >&2
  exit 1
fi
exec unshare --net -- bash -euo pipefail -c '
  ip link set lo up
  ip link add veth0 type veth peer name veth1
  ip addr add 192.0.2.1/24 dev veth0
  ip link set veth0 up
  ip link set veth1 up
  export TEST_NETNS_ADDR=192.0.2.1
  exec "$@"
' in-netns "$@"
