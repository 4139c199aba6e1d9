#!/usr/bin/env bash
# sock-diag, proc-owner, quiesce and pidfd_take_socket against the real kernel, inside a
# network namespace of our own (only its loopback is used).
set -euo pipefail
bin=${NETCKPT_BUILD_DIR:?}/tests/integration/test-guest-discovery-live
ns=nckdisc$$
cleanup() {
    ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" "$bin"
