#!/usr/bin/env bash
# ckpt-outage.sh with a static neighbour entry for the guest (what a bridged L2 peer sees): no
# ICMP reaches the peer during the outage, so its retransmission backoff grows unchecked and
# a SYN sent while the VM is off is lost silently instead of refused.
VM_NEIGH=static exec bash "$(dirname "$0")/ckpt-outage.sh"
