/* guest/tcp-retrans.h: how many of the guest's external TCP connections are retransmitting
 * right now, for guest-net-status (the host's policy condition "defer while more than N
 * connections are retransmitting", docs/policy.md).
 *
 * Owns the rule that calls a connection retransmitting, i.e. its peer has stopped answering,
 * applied to sock-diag's dump with TCP_INFO (sock_diag_tcp_list_info):
 *  - an RTO retransmission is outstanding (tcpi_retransmits > 0: the head segment timed out
 *    and no ACK has come since), or the RTO is backed off (tcpi_backoff > 0) with data
 *    unacknowledged;
 *  - or a zero-window or keepalive probe is unanswered (tcpi_probes > 0: the kernel zeroes it
 *    on every ACK, so an answered probe, a peer that is alive but reads slowly, leaves 0).
 *    These are also counted apart as "probing" (a stalled reader behind a dead path sends
 *    probes, not retransmissions).
 * A backed-off zero-window probe that the peer answers (tcpi_backoff > 0, nothing unacked, no
 * probe out) is a slow reader and does not count. Connections whose both ends are in the guest
 * (loopback, the guest's own addresses) are left out, as the freeze leaves them out. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tcp_retrans_count {
    uint32_t connections;    /* external connections in a data-carrying state */
    uint32_t retransmitting; /* of those, retransmitting (the rule above) */
    uint32_t probing;        /* of those, counted for an unanswered probe alone */
};

/* Count now. 0, or -errno (no sock_diag, out of memory). */
int tcp_retrans_count(struct tcp_retrans_count *out);

/* The rule, on a struct tcp_info of len bytes as the kernel sent it (shorter from older
 * kernels; missing fields read as 0). Exposed for tests. */
bool tcp_retrans_is_retransmitting(const void *tcp_info, size_t len);
bool tcp_retrans_is_probing(const void *tcp_info, size_t len);
