/* guest/tcp-retrans.h: how many of the guest's external TCP connections are retransmitting
 * right now, for guest-net-status (the host's policy condition "defer while more than N
 * connections are retransmitting", docs/policy.md).
 *
 * Owns one sock_diag dump with TCP_INFO (INET_DIAG_INFO) per address family and the rule that
 * calls a connection retransmitting: the kernel has an RTO retransmission outstanding for it
 * (tcpi_retransmits > 0: the head segment timed out and no ACK has moved since), or its RTO is
 * backed off (tcpi_backoff > 0) with data still unacknowledged. Zero-window and keepalive
 * probes (tcpi_probes) do not count: a closed window is a slow reader, not a lossy path, and
 * a keepalive probe carries no data. Connections whose both ends are in the guest (loopback,
 * the guest's own addresses) are left out, as the freeze leaves them out. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tcp_retrans_count {
    uint32_t connections;    /* external connections in a data-carrying state */
    uint32_t retransmitting; /* of those, retransmitting (the rule above) */
    uint32_t probing;        /* zero-window or keepalive probes out, not retransmitting */
};

/* Count now. 0, or -errno (no sock_diag, out of memory). */
int tcp_retrans_count(struct tcp_retrans_count *out);

/* The rule, on a struct tcp_info of len bytes as the kernel sent it (shorter from older
 * kernels; missing fields read as 0). Exposed for tests. */
bool tcp_retrans_is_retransmitting(const void *tcp_info, size_t len);
bool tcp_retrans_is_probing(const void *tcp_info, size_t len);
