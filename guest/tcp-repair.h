/* guest/tcp-repair.h: dump and rebuild one TCP connection with the kernel's TCP_REPAIR.
 *
 * A small plain-struct library in the spirit of CRIU's soccr. It owns nothing beyond the
 * struct it fills: the caller decides which socket, when, and what surrounds it (a gate that
 * drops traffic, quiesced owners). Nothing may reach a socket while it is in repair mode, and
 * repair mode does not stop its timers from transmitting (retransmissions, loss probes), so
 * callers must hold the network gate from tcp_repair_freeze() to tcp_repair_thaw().
 * docs/tcp-repair.md has the ordering, the reasons and the kernel facts.
 *
 * Functions return 0 (or a count) on success and -errno on failure. */
#pragma once
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* Upper bound for one queue we dump or rebuild; bigger queues are refused, not truncated. */
#define TCP_REPAIR_MAX_QUEUE (64u << 20)

struct tcp_endpoint {
    int family;           /* wire protocol: AF_INET (also for v4-mapped peers of an AF_INET6
                             socket) or AF_INET6 */
    struct in6_addr addr; /* AF_INET: v4 address stored v4-mapped (::ffff:a.b.c.d) */
    uint16_t port;        /* host byte order */
};

struct tcp_repair_queue {
    uint8_t *data; /* malloc'd; NULL when len == 0 */
    uint32_t len;
};

/* Mirrors struct tcp_repair_window (20 bytes) from linux/tcp.h. */
struct tcp_repair_win {
    uint32_t snd_wl1;
    uint32_t snd_wnd;
    uint32_t max_window;
    uint32_t rcv_wnd;
    uint32_t rcv_wup;
};

struct tcp_keepalive_cfg {
    bool enabled; /* SO_KEEPALIVE */
    int idle;     /* TCP_KEEPIDLE, seconds */
    int intvl;    /* TCP_KEEPINTVL, seconds */
    int cnt;      /* TCP_KEEPCNT */
};

struct tcp_conn_state {
    /* Socket family as created: AF_INET6 sockets may carry v4-mapped peers. */
    int sock_family;
    bool v6only;
    struct tcp_endpoint local, remote;
    uint8_t state; /* TCP_ESTABLISHED, TCP_FIN_WAIT1, ... (netinet/tcp.h values) */

    /* Sequence numbers as TCP_QUEUE_SEQ reports them for each queue. A FIN takes one
     * sequence number and is counted in them: snd_seq includes our FIN in FIN_WAIT1/2,
     * CLOSING and LAST_ACK; rcv_seq includes the peer's FIN in CLOSE_WAIT, LAST_ACK, CLOSING. */
    uint32_t snd_seq; /* next sequence number to be queued (write_seq) */
    uint32_t rcv_seq; /* next sequence number expected (rcv_nxt) */

    /* The send queue, split at what the peer has seen: sent but unacknowledged first,
     * then not yet sent (SIOCOUTQNSD). unacked.len + unsent.len == whole send queue. *
     * The boundary may move forward while frozen (a timer sends unsent data into the gate),
     * so compare the send queue as a whole, never the split. */
    struct tcp_repair_queue unacked;
    struct tcp_repair_queue unsent;
    struct tcp_repair_queue recv;

    bool has_window;
    struct tcp_repair_win window;

    /* Negotiated options (TCPI_OPT_*), re-applied with TCP_REPAIR_OPTIONS. */
    uint32_t mss;
    bool opt_sack;
    bool opt_timestamps;
    bool opt_wscale;
    uint8_t snd_wscale;
    uint8_t rcv_wscale;
    uint32_t timestamp; /* TCP_TIMESTAMP */

    /* Settings the application chose; saved at freeze, restored at thaw or rebuild. */
    bool nodelay;
    bool cork;
    struct tcp_keepalive_cfg keepalive;
    uint32_t user_timeout_ms; /* TCP_USER_TIMEOUT */
};

/* Enter repair mode and suspend keepalive and user-timeout deadlines so the connection cannot
 * die while frozen. Fills only st's settings (nodelay, cork, keepalive, user_timeout_ms) with
 * what thaw will restore. Idempotent per socket: on a socket already in repair mode it returns
 * 0 and leaves st untouched (the first freeze's settings must be kept). A socket in a state
 * dump cannot handle (LISTEN, SYN_SENT, CLOSE, ...) is refused with -EOPNOTSUPP, untouched.
 * Needs CAP_NET_ADMIN (-EPERM otherwise). */
int tcp_repair_freeze(int fd, struct tcp_conn_state *st);

/* Dump everything needed to rebuild the connection. The socket must be frozen (-EPERM if
 * not). Keeps st's settings from freeze, frees any queues st held, and fills the rest.
 * -EOPNOTSUPP for states other than ESTABLISHED, FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK and
 * CLOSING (an fd never shows TIME_WAIT: the kernel moves that to a timewait mini-socket and
 * leaves the fd in CLOSE). -EFBIG if a queue exceeds TCP_REPAIR_MAX_QUEUE. On failure st
 * holds no allocations. */
int tcp_repair_dump(int fd, struct tcp_conn_state *st);

/* Restore the saved settings and leave repair mode. With window_probe, the kernel sends a
 * window probe on leaving repair (TCP_REPAIR_OFF) so the peer answers at once; otherwise
 * TCP_REPAIR_OFF_NO_WP. The kernel sends that probe only in ESTABLISHED; half-closed
 * connections move again on their next timer or on the peer's retransmission. On a socket
 * that is not in repair mode (never frozen, or already thawed) it does nothing and returns 0,
 * so it is idempotent. */
int tcp_repair_thaw(int fd, const struct tcp_conn_state *st, bool window_probe);

/* Build a new socket that continues the dumped connection (CRIU-style restore): bind, set
 * sequence numbers, connect in repair mode, options, queues, the half-closed state, then the
 * window. Returns the new fd (>= 0) still in repair mode; call tcp_repair_thaw() after the
 * old socket is gone and any gate allows it. Needs CAP_NET_ADMIN, and CAP_NET_RAW for the
 * half-closed states (a FIN from the peer, or the ACK of ours, is replayed as a segment
 * through the local stack; see docs/tcp-repair.md). st is validated first (-EINVAL,
 * -EOPNOTSUPP, -EFBIG, -EAFNOSUPPORT). */
int tcp_repair_rebuild(const struct tcp_conn_state *st);

/* Check a state (e.g. parsed from an untrusted image) before rebuilding it: families and
 * addresses agree, the state is supported, queues are within limits and have data, options
 * are in range. 0 or -errno as tcp_repair_rebuild() would return it. */
int tcp_repair_validate(const struct tcp_conn_state *st);

/* Whether dump and rebuild handle this TCP state. */
bool tcp_repair_state_supported(uint8_t state);

/* End a connection without sending FIN or RST (the peer must not notice): repair mode on,
 * tcp_disconnect() through connect(AF_UNSPEC), then close(fd). The disconnect acts on the
 * socket, so it ends the connection for every process holding it, not only this fd. */
int tcp_repair_close_silently(int fd);

void tcp_conn_state_free(struct tcp_conn_state *st);

/* "ESTABLISHED", "FIN_WAIT1", ...; NULL for unknown values. And the reverse (-EINVAL). */
const char *tcp_state_name(uint8_t state);
int tcp_state_from_name(const char *name);
