/* guest/thaw-kick.h: make a thawed connection send its own unacknowledged data now.
 *
 * Repair mode stops no timer, so while a socket is frozen behind the gate its retransmission
 * timer keeps firing into the gate and backing off. After the thaw the socket would wait out
 * that backed-off timeout (seconds after a long freeze) before the peer sees any of the
 * guest's lost data. The window probe does not help: its answer acknowledges nothing.
 *
 * The kick tells the socket's own stack what happened: the path was unreachable. One ICMP
 * "host unreachable" (ICMPv6 "no route") per backoff step, quoting our segment at snd_una, is
 * looped through the local stack (it never leaves the guest). The kernel's RFC 6069 handler
 * (tcp_ld_RTO_revert) undoes one backoff step for each and, once the reverted timeout has
 * already run out, retransmits at once. It claims nothing about data: no ACK, no SACK, no
 * window. docs/tcp-repair.md ("Thaw kick") has the measurements, the limits and the kicks that
 * do not work.
 *
 * Functions return 0 or -errno. */
#pragma once
#include "guest/tcp-repair.h"

enum thaw_kick_verdict {
    THAW_KICK_NOT_NEEDED,   /* nothing unacknowledged, or the timer never backed off */
    THAW_KICK_RTO_REVERT,   /* the backoff steps were reverted (ICMP sent) */
    THAW_KICK_SKIP_RECVERR, /* IP_RECVERR set: the ICMP would reach the application as an error */
    THAW_KICK_SKIP_STATE,   /* a state where an ICMP error is not harmless (SYN_SENT, ...) */
};

struct thaw_kick_result {
    enum thaw_kick_verdict verdict;
    uint8_t backoff;  /* RTO backoff steps found (tcpi_backoff) */
    uint32_t rto_ms;  /* the backed-off RTO found */
    uint32_t snd_una; /* the sequence number the ICMP quoted */
    unsigned sent;    /* ICMP messages injected */
};

/* Kick one socket that has just left repair mode (-EBUSY if it is still in repair mode:
 * nothing may reach a frozen socket). st gives the addresses and write_seq as dumped; the
 * owners are still quiesced, so write_seq has not moved. Needs CAP_NET_RAW. */
int thaw_kick(int fd, const struct tcp_conn_state *st, struct thaw_kick_result *res);

/* "not-needed", "rto-revert", "skipped-recverr", "skipped-state". */
const char *thaw_kick_verdict_name(enum thaw_kick_verdict v);
