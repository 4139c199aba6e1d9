#!/usr/bin/env bash
# outage-matrix.sh with 120 s outages (ctest e2e-outage-long, label "long", kept out of the
# normal e2e run): replay on with a static neighbour (the peer backs off in silence) and the
# clock resync; replay off with ARP and --clock=keep (the guest stays ~2 min behind).
export NETCKPT_E2E_MATRIX=${NETCKPT_E2E_MATRIX:-'t=120 replay=on neigh=static clock=sync
t=120 replay=off neigh=dynamic clock=keep'}
export NETCKPT_E2E_SYN=${NETCKPT_E2E_SYN:-0}
exec bash "$(dirname "$0")/outage-matrix.sh"
