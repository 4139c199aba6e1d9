/* guest/tcp-repair.c: see tcp-repair.h and docs/tcp-repair.md (ordering and kernel facts).
 *
 * Kernel facts this file depends on (checked on 6.18, see docs/tcp-repair.md):
 *  - Repair mode does NOT stop transmission. Only a write or push while TCP_REPAIR_QUEUE is
 *    TCP_SEND_QUEUE skips the wire; timers (RTO, probe0) and pushes with TCP_NO_QUEUE send
 *    real packets. Hence the caller's gate.
 *  - TCP_QUEUE_SEQ can only be set while the socket is TCP_CLOSE (before connect), and
 *    TCP_REPAIR_OPTIONS only while ESTABLISHED and before any byte was sent, so every
 *    half-closed state is rebuilt as ESTABLISHED first and walked forward.
 *  - A connect() in repair mode leaves snd_wnd at 0: data written with repair off before
 *    TCP_REPAIR_WINDOW stays queued as unsent, which is exactly what "unsent" must mean.
 *  - The repair API cannot put a FIN into the receive queue or acknowledge our own FIN, so
 *    those two events are injected as segments through a raw socket on the local stack. */
#include "guest/tcp-repair.h"
#include "common/inet-csum.h"
#include "common/macro.h"

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/ioctl.h>

#ifndef SIOCOUTQNSD
#define SIOCOUTQNSD 0x894B
#endif
#ifndef SO_BUF_LOCK
#define SO_BUF_LOCK 72
#endif
#ifndef TCPOPT_SACK_PERM
#define TCPOPT_SACK_PERM TCPOPT_SACK_PERMITTED
#endif

#define TCPF(s) (1u << (s))
/* Our FIN is in the send queue and not yet acknowledged: SIOCOUTQ counts it. */
#define SND_FIN_UNACKED (TCPF(TCP_FIN_WAIT1) | TCPF(TCP_CLOSING) | TCPF(TCP_LAST_ACK))
/* Our FIN was sent (acknowledged or not). */
#define SND_FIN (SND_FIN_UNACKED | TCPF(TCP_FIN_WAIT2))
/* The peer's FIN was received: rcv_nxt counts it. */
#define RCV_FIN (TCPF(TCP_CLOSE_WAIT) | TCPF(TCP_LAST_ACK) | TCPF(TCP_CLOSING))
#define SUPPORTED                                                                                  \
    (TCPF(TCP_ESTABLISHED) | TCPF(TCP_FIN_WAIT1) | TCPF(TCP_FIN_WAIT2) | TCPF(TCP_CLOSE_WAIT) |    \
     TCPF(TCP_LAST_ACK) | TCPF(TCP_CLOSING))

/* Segments from a memory allocator's view: how much buffer one restored queue needs. */
#define QUEUE_BUF_SLACK (256u << 10)

static const char *const state_names[] = {
    [TCP_ESTABLISHED] = "ESTABLISHED",
    [TCP_SYN_SENT] = "SYN_SENT",
    [TCP_SYN_RECV] = "SYN_RECV",
    [TCP_FIN_WAIT1] = "FIN_WAIT1",
    [TCP_FIN_WAIT2] = "FIN_WAIT2",
    [TCP_TIME_WAIT] = "TIME_WAIT",
    [TCP_CLOSE] = "CLOSE",
    [TCP_CLOSE_WAIT] = "CLOSE_WAIT",
    [TCP_LAST_ACK] = "LAST_ACK",
    [TCP_LISTEN] = "LISTEN",
    [TCP_CLOSING] = "CLOSING",
};

const char *tcp_state_name(uint8_t state)
{
    if (state >= ELEMENTSOF(state_names))
        return NULL;
    return state_names[state];
}

int tcp_state_from_name(const char *name)
{
    if (!name)
        return -EINVAL;
    for (size_t i = 0; i < ELEMENTSOF(state_names); i++)
        if (state_names[i] && strcmp(state_names[i], name) == 0)
            return (int)i;
    return -EINVAL;
}

bool tcp_repair_state_supported(uint8_t state)
{
    return state < 32 && (TCPF(state) & SUPPORTED);
}

static int sopt(int fd, int level, int name, int val)
{
    if (setsockopt(fd, level, name, &val, sizeof(val)) < 0)
        return negative_errno();
    return 0;
}

static int gopt(int fd, int level, int name, int *val)
{
    socklen_t len = sizeof(*val);
    *val = 0;
    if (getsockopt(fd, level, name, val, &len) < 0)
        return negative_errno();
    return 0;
}

/* A TCP stream socket, or -ENOTSOCK / -EPROTOTYPE. */
static int check_tcp_socket(int fd)
{
    int type, proto, r;
    if (fd < 0)
        return -EBADF;
    r = gopt(fd, SOL_SOCKET, SO_TYPE, &type);
    if (r < 0)
        return r;
    r = gopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto);
    if (r < 0)
        return r;
    if (type != SOCK_STREAM || proto != IPPROTO_TCP)
        return -EPROTOTYPE;
    return 0;
}

static int repair_set(int fd, int mode)
{
    return sopt(fd, IPPROTO_TCP, TCP_REPAIR, mode);
}

static int repair_queue(int fd, int q)
{
    return sopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, q);
}

/* 1 if the socket is in repair mode, 0 if not, -errno. */
static int repair_get(int fd)
{
    int v, r = gopt(fd, IPPROTO_TCP, TCP_REPAIR, &v);
    return r < 0 ? r : !!v;
}

static int get_state(int fd)
{
    struct tcp_info ti;
    socklen_t sl = sizeof(ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &sl) < 0)
        return negative_errno();
    return ti.tcpi_state;
}

static int read_settings(int fd, struct tcp_conn_state *st)
{
    int v, r;
    if ((r = gopt(fd, IPPROTO_TCP, TCP_NODELAY, &v)) < 0)
        return r;
    st->nodelay = v;
    if ((r = gopt(fd, IPPROTO_TCP, TCP_CORK, &v)) < 0)
        return r;
    st->cork = v;
    if ((r = gopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v)) < 0)
        return r;
    st->keepalive.enabled = v;
    if ((r = gopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &st->keepalive.idle)) < 0)
        return r;
    if ((r = gopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &st->keepalive.intvl)) < 0)
        return r;
    if ((r = gopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &st->keepalive.cnt)) < 0)
        return r;
    if ((r = gopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &v)) < 0)
        return r;
    st->user_timeout_ms = (uint32_t)v;
    return 0;
}

/* The socket options freeze saves and dump carries over; the rest of the state is the
 * kernel's and is read anew by dump. */
static void copy_saved_settings(struct tcp_conn_state *dst, const struct tcp_conn_state *src)
{
    dst->nodelay = src->nodelay;
    dst->cork = src->cork;
    dst->keepalive = src->keepalive;
    dst->user_timeout_ms = src->user_timeout_ms;
}

/* Shared entry checks of freeze and dump: st given, fd a TCP socket. Returns whether the
 * socket is in repair mode (0/1) or -errno. */
static int check_and_repair_get(int fd, const struct tcp_conn_state *st)
{
    int r;
    if (!st)
        return -EINVAL;
    if ((r = check_tcp_socket(fd)) < 0)
        return r;
    return repair_get(fd);
}

int tcp_repair_freeze(int fd, struct tcp_conn_state *st)
{
    int r = check_and_repair_get(fd, st);
    if (r < 0)
        return r;
    if (r == 1)
        return 0; /* already frozen: st still holds the settings of the first freeze */
    /* Refuse what dump cannot handle before changing anything. */
    if ((r = get_state(fd)) < 0)
        return r;
    if (!tcp_repair_state_supported((uint8_t)r))
        return -EOPNOTSUPP;

    struct tcp_conn_state saved = {0};
    if ((r = read_settings(fd, &saved)) < 0)
        return r;
    if ((r = repair_set(fd, TCP_REPAIR_ON)) < 0)
        return r;
    /* Keepalive probes and the user timeout are the deadlines that can kill a connection
     * whose peer is silenced by the gate; the retransmission limit (tcp_retries2, ~15 min)
     * is far beyond any freeze. SO_KEEPALIVE off deletes the keepalive timer; a user
     * timeout of 0 falls back to tcp_retries2. */
    if (saved.keepalive.enabled && (r = sopt(fd, SOL_SOCKET, SO_KEEPALIVE, 0)) < 0)
        goto undo;
    if (saved.user_timeout_ms && (r = sopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, 0)) < 0)
        goto undo;

    copy_saved_settings(st, &saved);
    return 0;
undo:
    if (saved.keepalive.enabled)
        (void)sopt(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
    (void)repair_set(fd, TCP_REPAIR_OFF_NO_WP);
    return r;
}

static int endpoint_from_sockaddr(const struct sockaddr_storage *ss, struct tcp_endpoint *ep)
{
    memset(ep, 0, sizeof(*ep));
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        ep->family = AF_INET;
        ep->addr.s6_addr[10] = 0xff;
        ep->addr.s6_addr[11] = 0xff;
        memcpy(&ep->addr.s6_addr[12], &sin->sin_addr, 4);
        ep->port = ntohs(sin->sin_port);
        return 0;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        ep->family = IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) ? AF_INET : AF_INET6;
        ep->addr = sin6->sin6_addr;
        ep->port = ntohs(sin6->sin6_port);
        /* Link-local addresses would need a scope id the image does not carry. */
        if (IN6_IS_ADDR_LINKLOCAL(&sin6->sin6_addr))
            return -EOPNOTSUPP;
        return 0;
    }
    return -EAFNOSUPPORT;
}

/* Build a sockaddr for a socket of sock_family. */
static socklen_t endpoint_to_sockaddr(int sock_family, const struct tcp_endpoint *ep,
                                      struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (sock_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, &ep->addr.s6_addr[12], 4);
        sin->sin_port = htons(ep->port);
        return sizeof(*sin);
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_addr = ep->addr;
    sin6->sin6_port = htons(ep->port);
    return sizeof(*sin6);
}

/* Peek one queue in repair mode. len is what SIOCINQ/SIOCOUTQ promised; we ask for one byte
 * more so a short or long queue is an error, never a silent truncation. */
static int peek_queue(int fd, int q, uint32_t *seq, uint32_t len, uint8_t **out)
{
    int r;
    *out = NULL;
    if ((r = repair_queue(fd, q)) < 0)
        return r;
    socklen_t sl = sizeof(*seq);
    if (getsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, seq, &sl) < 0)
        return negative_errno();
    if (len == 0)
        return 0;
    _cleanup_free_ uint8_t *buf = malloc((size_t)len + 1);
    if (!buf)
        return -ENOMEM;
    ssize_t n = recv(fd, buf, (size_t)len + 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0)
        return negative_errno();
    if ((size_t)n != len)
        return -EIO; /* the queue changed under us: the socket is not quiet */
    *out = TAKE_PTR(buf);
    return 0;
}

int tcp_repair_dump(int fd, struct tcp_conn_state *st)
{
    int r = check_and_repair_get(fd, st);
    if (r < 0)
        return r;
    if (r == 0)
        return -EPERM; /* not frozen: a dump would race the live stack */

    /* Keep what freeze saved; everything else is rebuilt from the kernel. */
    struct tcp_conn_state d = {0};
    copy_saved_settings(&d, st);

    if ((r = gopt(fd, SOL_SOCKET, SO_DOMAIN, &d.sock_family)) < 0)
        return r;
    if (d.sock_family == AF_INET6) {
        int v;
        if ((r = gopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v)) < 0)
            return r;
        d.v6only = v;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return negative_errno();
    if ((r = endpoint_from_sockaddr(&ss, &d.local)) < 0)
        return r;
    sl = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
        return negative_errno();
    if ((r = endpoint_from_sockaddr(&ss, &d.remote)) < 0)
        return r;

    struct tcp_info ti;
    sl = sizeof(ti);
    memset(&ti, 0, sizeof(ti));
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &sl) < 0)
        return negative_errno();
    d.state = ti.tcpi_state;
    if (!tcp_repair_state_supported(d.state))
        return -EOPNOTSUPP;

    /* SIOCOUTQ is write_seq - snd_una, so a queued FIN counts one; SIOCINQ already leaves
     * the peer's FIN out. */
    int outq, unsentq, inq;
    if (ioctl(fd, SIOCOUTQ, &outq) < 0 || ioctl(fd, SIOCINQ, &inq) < 0)
        return negative_errno();
    if ((TCPF(d.state) & SND_FIN_UNACKED) && outq > 0)
        outq--;
    if (outq < 0 || inq < 0)
        return -EIO;
    if ((uint32_t)outq > TCP_REPAIR_MAX_QUEUE || (uint32_t)inq > TCP_REPAIR_MAX_QUEUE)
        return -EFBIG;

    d.opt_sack = ti.tcpi_options & TCPI_OPT_SACK;
    d.opt_timestamps = ti.tcpi_options & TCPI_OPT_TIMESTAMPS;
    d.opt_wscale = ti.tcpi_options & TCPI_OPT_WSCALE;
    if (d.opt_wscale) {
        d.snd_wscale = ti.tcpi_snd_wscale;
        d.rcv_wscale = ti.tcpi_rcv_wscale;
    }
    int v;
    /* In repair mode TCP_MAXSEG reports the clamp (what the peer announced), which is what
     * TCP_REPAIR_OPTIONS takes back. */
    if ((r = gopt(fd, IPPROTO_TCP, TCP_MAXSEG, &v)) < 0)
        return r;
    d.mss = (uint32_t)v;
    if ((r = gopt(fd, IPPROTO_TCP, TCP_TIMESTAMP, &v)) < 0)
        return r;
    d.timestamp = (uint32_t)v;

    struct tcp_repair_window w;
    sl = sizeof(w);
    if (getsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, &sl) == 0 && sl == sizeof(w)) {
        d.has_window = true;
        d.window =
            (struct tcp_repair_win){w.snd_wl1, w.snd_wnd, w.max_window, w.rcv_wnd, w.rcv_wup};
    } else if (errno != ENOPROTOOPT) {
        return negative_errno();
    }

    uint8_t *sendq = NULL;
    r = peek_queue(fd, TCP_RECV_QUEUE, &d.rcv_seq, (uint32_t)inq, &d.recv.data);
    if (r >= 0)
        r = peek_queue(fd, TCP_SEND_QUEUE, &d.snd_seq, (uint32_t)outq, &sendq);
    (void)repair_queue(fd, TCP_NO_QUEUE);
    /* The split is read only now: while TCP_SEND_QUEUE was selected, a deferred
     * tcp_write_xmit (TSQ, pacing) may have marked unsent data as sent without sending it.
     * SIOCOUTQNSD is write_seq - snd_nxt, so an unsent FIN counts one. */
    if (r >= 0 && ioctl(fd, SIOCOUTQNSD, &unsentq) < 0)
        r = negative_errno();
    if (r >= 0 && (TCPF(d.state) & SND_FIN_UNACKED) && unsentq > 0)
        unsentq--;
    if (r >= 0 && (unsentq < 0 || unsentq > outq))
        r = -EIO;
    if (r < 0) {
        free(sendq);
        free(d.recv.data);
        return r;
    }
    d.recv.len = (uint32_t)inq;

    /* Split the send queue where the peer has stopped seeing it. */
    uint32_t unacked = (uint32_t)(outq - unsentq), unsent = (uint32_t)unsentq;
    if (unsent == 0 || unacked == 0) {
        struct tcp_repair_queue *q = unsent == 0 ? &d.unacked : &d.unsent;
        q->data = sendq;
        q->len = (uint32_t)outq;
    } else {
        d.unsent.data = malloc(unsent);
        if (!d.unsent.data) {
            free(sendq);
            free(d.recv.data);
            return -ENOMEM;
        }
        memcpy(d.unsent.data, sendq + unacked, unsent);
        d.unsent.len = unsent;
        uint8_t *shrunk = realloc(sendq, unacked);
        d.unacked.data = shrunk ? shrunk : sendq;
        d.unacked.len = unacked;
    }

    tcp_conn_state_free(st);
    *st = d;
    return 0;
}

int tcp_repair_thaw(int fd, const struct tcp_conn_state *st, bool window_probe)
{
    int r;
    if (!st)
        return -EINVAL;
    if ((r = check_tcp_socket(fd)) < 0)
        return r;
    /* Not in repair mode: never frozen, or already thawed. Touch nothing, so a repeated thaw
     * neither overwrites settings the application changed since nor sends another probe. */
    if ((r = repair_get(fd)) <= 0)
        return r;
    /* Timers first: re-arming keepalive or the user timeout sends nothing. */
    if ((r = sopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, (int)st->user_timeout_ms)) < 0)
        return r;
    if (st->keepalive.enabled) {
        if (st->keepalive.idle > 0 &&
            (r = sopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, st->keepalive.idle)) < 0)
            return r;
        if (st->keepalive.intvl > 0 &&
            (r = sopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, st->keepalive.intvl)) < 0)
            return r;
        if (st->keepalive.cnt > 0 &&
            (r = sopt(fd, IPPROTO_TCP, TCP_KEEPCNT, st->keepalive.cnt)) < 0)
            return r;
    }
    if ((r = sopt(fd, SOL_SOCKET, SO_KEEPALIVE, st->keepalive.enabled)) < 0)
        return r;
    /* Leaving repair: TCP_REPAIR_OFF also sends a window probe (only in ESTABLISHED) whose
     * answer refreshes the peer's window and restarts stalled data at once. */
    if ((r = repair_set(fd, window_probe ? TCP_REPAIR_OFF : TCP_REPAIR_OFF_NO_WP)) < 0)
        return r;
    /* NODELAY and CORK last: clearing cork (and setting nodelay) pushes pending data, which
     * must happen on the wire and not be swallowed as "sent" by repair mode. */
    if ((r = sopt(fd, IPPROTO_TCP, TCP_NODELAY, st->nodelay)) < 0)
        return r;
    if ((r = sopt(fd, IPPROTO_TCP, TCP_CORK, st->cork)) < 0)
        return r;
    return 0;
}

static int queue_check(const struct tcp_repair_queue *q)
{
    if (q->len > TCP_REPAIR_MAX_QUEUE)
        return -EFBIG;
    return q->len == 0 || q->data ? 0 : -EINVAL;
}

static bool endpoint_ok(int sock_family, bool v6only, const struct tcp_endpoint *ep)
{
    if (ep->port == 0)
        return false;
    bool mapped = IN6_IS_ADDR_V4MAPPED(&ep->addr);
    if (ep->family == AF_INET)
        return mapped && (sock_family == AF_INET || (sock_family == AF_INET6 && !v6only));
    if (ep->family == AF_INET6)
        return !mapped && sock_family == AF_INET6 && !IN6_IS_ADDR_LINKLOCAL(&ep->addr) &&
               !IN6_IS_ADDR_UNSPECIFIED(&ep->addr);
    return false;
}

int tcp_repair_validate(const struct tcp_conn_state *st)
{
    if (!st)
        return -EINVAL;
    if (st->sock_family != AF_INET && st->sock_family != AF_INET6)
        return -EAFNOSUPPORT;
    if (st->sock_family == AF_INET && st->v6only)
        return -EINVAL;
    if (!endpoint_ok(st->sock_family, st->v6only, &st->local) ||
        !endpoint_ok(st->sock_family, st->v6only, &st->remote) ||
        st->local.family != st->remote.family)
        return -EINVAL;
    if (!tcp_repair_state_supported(st->state))
        return -EOPNOTSUPP;
    int r;
    if ((r = queue_check(&st->unacked)) < 0 || (r = queue_check(&st->unsent)) < 0 ||
        (r = queue_check(&st->recv)) < 0)
        return r;
    if ((uint64_t)st->unacked.len + st->unsent.len > TCP_REPAIR_MAX_QUEUE)
        return -EFBIG;
    /* Once our FIN is acknowledged, nothing before it can be outstanding. */
    if (st->state == TCP_FIN_WAIT2 && (st->unacked.len || st->unsent.len))
        return -EINVAL;
    if (st->mss < 64 || st->mss > 65535)
        return -EINVAL;
    if (st->opt_wscale && (st->snd_wscale > 14 || st->rcv_wscale > 14))
        return -EINVAL;
    if (st->has_window && st->window.max_window < st->window.snd_wnd)
        return -EINVAL;
    if (st->keepalive.idle < 0 || st->keepalive.intvl < 0 || st->keepalive.cnt < 0)
        return -EINVAL;
    if (st->user_timeout_ms > INT32_MAX)
        return -EINVAL;
    return 0;
}

/* Send one segment "from the peer" to our own socket through the local stack. The packet
 * never leaves the host: its destination is a local address, so it loops through lo, where
 * a gate on the external interface cannot drop it. The window is 0 so that processing it
 * pushes none of our unsent data; TCP_REPAIR_WINDOW overwrites it afterwards. */
static int inject_segment(const struct tcp_conn_state *st, uint32_t seq, uint32_t ack,
                          uint8_t flags)
{
    uint8_t pkt[40 + 20 + 12];
    uint8_t tcp[20 + 12];
    size_t tcplen = st->opt_timestamps ? 32 : 20;

    memset(tcp, 0, sizeof(tcp));
    uint16_t sport = htons(st->remote.port), dport = htons(st->local.port);
    uint32_t nseq = htonl(seq), nack = htonl(ack);
    memcpy(tcp + 0, &sport, 2);
    memcpy(tcp + 2, &dport, 2);
    memcpy(tcp + 4, &nseq, 4);
    memcpy(tcp + 8, &nack, 4);
    tcp[12] = (uint8_t)((tcplen / 4) << 4);
    tcp[13] = flags;
    if (st->opt_timestamps) {
        /* TSval 0 passes PAWS against any ts_recent and leaves ts_recent at 0, which the
         * rebuilt socket already has, so the peer's next real TSval is accepted. */
        tcp[20] = TCPOPT_NOP;
        tcp[21] = TCPOPT_NOP;
        tcp[22] = TCPOPT_TIMESTAMP;
        tcp[23] = TCPOLEN_TIMESTAMP;
    }

    int fam = st->local.family;
    uint32_t sum = 0;
    size_t hl;
    struct sockaddr_storage dst;
    socklen_t dlen;
    memset(&dst, 0, sizeof(dst));
    memset(pkt, 0, sizeof(pkt));
    if (fam == AF_INET) {
        const uint8_t *s4 = &st->remote.addr.s6_addr[12], *d4 = &st->local.addr.s6_addr[12];
        uint8_t pseudo[12] = {0};
        memcpy(pseudo, s4, 4);
        memcpy(pseudo + 4, d4, 4);
        pseudo[9] = IPPROTO_TCP;
        pseudo[10] = (uint8_t)(tcplen >> 8);
        pseudo[11] = (uint8_t)tcplen;
        sum = inet_sum(tcp, tcplen, inet_sum(pseudo, sizeof(pseudo), 0));
        hl = 20;
        pkt[0] = 0x45;
        pkt[2] = (uint8_t)((hl + tcplen) >> 8);
        pkt[3] = (uint8_t)(hl + tcplen);
        pkt[6] = 0x40; /* DF */
        pkt[8] = 64;
        pkt[9] = IPPROTO_TCP;
        memcpy(pkt + 12, s4, 4);
        memcpy(pkt + 16, d4, 4);
        /* The kernel fills the IP id and header checksum for IPPROTO_RAW. */
        struct sockaddr_in *sin = (struct sockaddr_in *)&dst;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, d4, 4);
        dlen = sizeof(*sin);
    } else {
        uint8_t pseudo[40] = {0};
        memcpy(pseudo, &st->remote.addr, 16);
        memcpy(pseudo + 16, &st->local.addr, 16);
        pseudo[34] = (uint8_t)(tcplen >> 8);
        pseudo[35] = (uint8_t)tcplen;
        pseudo[39] = IPPROTO_TCP;
        sum = inet_sum(tcp, tcplen, inet_sum(pseudo, sizeof(pseudo), 0));
        hl = 40;
        pkt[0] = 0x60;
        pkt[4] = (uint8_t)(tcplen >> 8);
        pkt[5] = (uint8_t)tcplen;
        pkt[6] = IPPROTO_TCP;
        pkt[7] = 64;
        memcpy(pkt + 8, &st->remote.addr, 16);
        memcpy(pkt + 24, &st->local.addr, 16);
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&dst;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = st->local.addr;
        dlen = sizeof(*sin6);
    }
    uint16_t c = htons(inet_csum_finish(sum));
    memcpy(tcp + 16, &c, 2);
    memcpy(pkt + hl, tcp, tcplen);

    _cleanup_close_ int raw = socket(fam, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
    if (raw < 0)
        return negative_errno();
    ssize_t n = sendto(raw, pkt, hl + tcplen, 0, (struct sockaddr *)&dst, dlen);
    if (n < 0)
        return negative_errno();
    if ((size_t)n != hl + tcplen)
        return -EIO;
    return 0;
}

/* Write a queue in repair mode. The receive queue goes straight into the socket's receive
 * queue; the send queue is marked as sent (skipping the wire). The kernel takes at most
 * one skb of 17 pages per receive-queue write, so loop on short writes. */
static int write_queue(int fd, int q, const struct tcp_repair_queue *data)
{
    int r;
    if (data->len == 0)
        return 0;
    if (q >= 0 && (r = repair_queue(fd, q)) < 0)
        return r;
    uint32_t off = 0;
    while (off < data->len) {
        ssize_t n = send(fd, data->data + off, data->len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? -ENOBUFS : negative_errno();
        }
        if (n == 0)
            return -EIO;
        off += (uint32_t)n;
    }
    return 0;
}

/* Queue our FIN after all data, as shutdown() does. If it had been sent, mark it sent with
 * the repair send queue; if not, queue it with repair off so it waits like the unsent data
 * in front of it (snd_wnd is still 0, so nothing leaves). */
static int restore_our_fin(int fd, bool sent)
{
    int r;
    if (sent) {
        if ((r = repair_queue(fd, TCP_SEND_QUEUE)) < 0)
            return r;
        r = shutdown(fd, SHUT_WR) < 0 ? negative_errno() : 0;
        int r2 = repair_queue(fd, TCP_NO_QUEUE);
        return r < 0 ? r : r2;
    }
    if ((r = repair_set(fd, TCP_REPAIR_OFF_NO_WP)) < 0)
        return r;
    r = shutdown(fd, SHUT_WR) < 0 ? negative_errno() : 0;
    int r2 = repair_set(fd, TCP_REPAIR_ON);
    return r < 0 ? r : r2;
}

static int expect_state(int fd, uint8_t want)
{
    int s = get_state(fd);
    if (s < 0)
        return s;
    return s == want ? 0 : -EPROTO;
}

int tcp_repair_rebuild(const struct tcp_conn_state *st)
{
    int r = tcp_repair_validate(st);
    if (r < 0)
        return r;
    uint32_t smask = TCPF(st->state);
    bool rcv_fin = smask & RCV_FIN, snd_fin = smask & SND_FIN;
    bool fin_acked = st->state == TCP_FIN_WAIT2;
    uint32_t sndq = st->unacked.len + st->unsent.len;

    _cleanup_close_ int fd = socket(st->sock_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0)
        return negative_errno();
    if (st->sock_family == AF_INET6 && (r = sopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, st->v6only)) < 0)
        return r;
    /* Repair mode sets SK_FORCE_REUSE, which lets bind() take the port even if a lingering
     * socket still holds it; SO_REUSEADDR would overwrite that, so it is not used. */
    if ((r = repair_set(fd, TCP_REPAIR_ON)) < 0)
        return r;
    /* Restored queues are charged to the socket buffers, and a restored write blocks or
     * fails (ENOMEM) when they are full; size them for the queues, then hand sizing back to
     * autotuning with SO_BUF_LOCK at the end. Done after connect so the window clamp is
     * computed as for a normal socket. */
    struct sockaddr_storage ss;
    socklen_t sl = endpoint_to_sockaddr(st->sock_family, &st->local, &ss);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0)
        return negative_errno();

    /* Sequence numbers are set before connect (only allowed in TCP_CLOSE) at the start of
     * each queue; writing the queues advances them to the dumped values. FINs are
     * restored separately, so their sequence number is left out here. */
    uint32_t snd_start = st->snd_seq - sndq - (snd_fin ? 1 : 0);
    uint32_t rcv_start = st->rcv_seq - st->recv.len - (rcv_fin ? 1 : 0);
    if ((r = repair_queue(fd, TCP_SEND_QUEUE)) < 0 ||
        (r = sopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, (int)snd_start)) < 0)
        return r;
    if ((r = repair_queue(fd, TCP_RECV_QUEUE)) < 0 ||
        (r = sopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, (int)rcv_start)) < 0)
        return r;
    if ((r = repair_queue(fd, TCP_NO_QUEUE)) < 0)
        return r;

    /* TCP_REPAIR_OPTIONS below sets the MSS clamp only after connect, when the segment size
     * in use (mss_cache) was already derived from the default clamp of 536 and is not
     * recomputed until a path MTU change: the connection would go on in 524-byte segments.
     * A user MSS set before connect becomes the clamp that connect derives it from. */
    if (st->mss >= 88) { /* setsockopt takes 88 (TCP_MIN_MSS) .. 32767 (MAX_TCP_WINDOW) */
        int umss = st->mss > 32767 ? 32767 : (int)st->mss;
        if ((r = sopt(fd, IPPROTO_TCP, TCP_MAXSEG, umss)) < 0)
            return r;
    }
    sl = endpoint_to_sockaddr(st->sock_family, &st->remote, &ss);
    /* In repair mode connect() sends no SYN: the socket goes straight to ESTABLISHED. */
    if (connect(fd, (struct sockaddr *)&ss, sl) < 0)
        return negative_errno();

    struct tcp_repair_opt opts[4];
    size_t n = 0;
    if (st->opt_sack)
        opts[n++] = (struct tcp_repair_opt){TCPOPT_SACK_PERM, 0};
    if (st->opt_wscale)
        opts[n++] = (struct tcp_repair_opt){TCPOPT_WINDOW,
                                            st->snd_wscale | ((uint32_t)st->rcv_wscale << 16)};
    if (st->opt_timestamps)
        opts[n++] = (struct tcp_repair_opt){TCPOPT_TIMESTAMP, 0};
    opts[n++] = (struct tcp_repair_opt){TCPOPT_MAXSEG, st->mss};
    if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_OPTIONS, opts, (socklen_t)(n * sizeof(opts[0]))) < 0)
        return negative_errno();
    if ((r = sopt(fd, IPPROTO_TCP, TCP_TIMESTAMP, (int)st->timestamp)) < 0)
        return r;

    uint64_t want_snd = 2ull * sndq + QUEUE_BUF_SLACK,
             want_rcv = 2ull * st->recv.len + QUEUE_BUF_SLACK;
    int cur;
    if ((r = gopt(fd, SOL_SOCKET, SO_SNDBUF, &cur)) < 0)
        return r;
    if ((uint64_t)cur < want_snd && (r = sopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, (int)want_snd)) < 0)
        return r;
    if ((r = gopt(fd, SOL_SOCKET, SO_RCVBUF, &cur)) < 0)
        return r;
    if ((uint64_t)cur < want_rcv && (r = sopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, (int)want_rcv)) < 0)
        return r;

    if ((r = write_queue(fd, TCP_RECV_QUEUE, &st->recv)) < 0)
        return r;
    if ((r = write_queue(fd, TCP_SEND_QUEUE, &st->unacked)) < 0)
        return r;
    if ((r = repair_queue(fd, TCP_NO_QUEUE)) < 0)
        return r;
    if (st->unsent.len) {
        /* Never-sent data is written as an application would, with repair off, so TCP keeps
         * it as unsent; snd_wnd is still 0 after a repair connect, so none of it leaves. */
        if ((r = repair_set(fd, TCP_REPAIR_OFF_NO_WP)) < 0)
            return r;
        r = write_queue(fd, -1, &st->unsent);
        int r2 = repair_set(fd, TCP_REPAIR_ON);
        if (r < 0 || (r = r2) < 0)
            return r;
    }

    /* Half-closed states, walked forward from ESTABLISHED in the order they happened. A
     * received FIN needs a receive window to land in (a full restored queue has none), so
     * open one at rcv_nxt first; the dumped window is set last and overrides it. */
    uint32_t snd_una = st->snd_seq - sndq - (snd_fin ? 1 : 0);
    if (rcv_fin) {
        struct tcp_repair_window w = {.snd_wl1 = st->rcv_seq - 1,
                                      .snd_wnd = 0,
                                      .max_window = st->has_window ? st->window.max_window : 0,
                                      .rcv_wnd = 65535,
                                      .rcv_wup = st->rcv_seq - 1};
        if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, sizeof(w)) < 0)
            return negative_errno();
    }
    switch (st->state) {
    case TCP_ESTABLISHED:
        break;
    case TCP_FIN_WAIT1:
    case TCP_FIN_WAIT2:
        if ((r = restore_our_fin(fd, st->unsent.len == 0)) < 0)
            return r;
        if (fin_acked) {
            /* Our FIN was acknowledged: replay that ACK (FIN_WAIT1 -> FIN_WAIT2). */
            if ((r = inject_segment(st, st->rcv_seq, st->snd_seq, TH_ACK)) < 0)
                return r;
        }
        break;
    case TCP_CLOSE_WAIT:
        if ((r = inject_segment(st, st->rcv_seq - 1, snd_una, TH_FIN | TH_ACK)) < 0)
            return r;
        break;
    case TCP_LAST_ACK:
        /* The peer's FIN came first (CLOSE_WAIT), then ours (LAST_ACK). */
        if ((r = inject_segment(st, st->rcv_seq - 1, snd_una, TH_FIN | TH_ACK)) < 0)
            return r;
        if ((r = expect_state(fd, TCP_CLOSE_WAIT)) < 0)
            return r;
        if ((r = restore_our_fin(fd, st->unsent.len == 0)) < 0)
            return r;
        break;
    case TCP_CLOSING:
        /* Ours first (FIN_WAIT1), then the peer's FIN that did not acknowledge ours. */
        if ((r = restore_our_fin(fd, st->unsent.len == 0)) < 0)
            return r;
        if ((r = inject_segment(st, st->rcv_seq - 1, snd_una, TH_FIN | TH_ACK)) < 0)
            return r;
        break;
    default:
        return -EOPNOTSUPP;
    }
    /* The injected segment is processed synchronously in sendto() on the loopback path only
     * by softirq; wait until it landed, bounded. */
    for (int i = 0; i < 1000; i++) {
        int s = get_state(fd);
        if (s < 0)
            return s;
        if (s == st->state)
            break;
        if (i == 999)
            return -EPROTO;
        usleep(1000);
    }

    if (st->has_window) {
        struct tcp_repair_window w = {st->window.snd_wl1, st->window.snd_wnd, st->window.max_window,
                                      st->window.rcv_wnd, st->window.rcv_wup};
        if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, sizeof(w)) < 0)
            return negative_errno();
    }
    /* Hand buffer sizing back to autotuning (the sizes we forced stay as a floor). */
    (void)sopt(fd, SOL_SOCKET, SO_BUF_LOCK, 0);
    return TAKE_FD(fd);
}

int tcp_repair_close_silently(int fd)
{
    int r;
    if ((r = check_tcp_socket(fd)) < 0)
        return r;
    if ((r = repair_set(fd, TCP_REPAIR_ON)) < 0)
        return r;
    /* connect(AF_UNSPEC) is tcp_disconnect(): in repair mode it sends neither FIN nor RST and
     * unhashes the connection at once, for every holder of the socket (a plain close()
     * would only drop this reference if another process or a pidfd_getfd copy holds it). */
    struct sockaddr sa = {.sa_family = AF_UNSPEC};
    if (connect(fd, &sa, sizeof(sa)) < 0) {
        r = negative_errno();
        close(fd);
        return r;
    }
    if (close(fd) < 0)
        return negative_errno();
    return 0;
}

void tcp_conn_state_free(struct tcp_conn_state *st)
{
    if (!st)
        return;
    free(st->unacked.data);
    free(st->unsent.data);
    free(st->recv.data);
    st->unacked = st->unsent = st->recv = (struct tcp_repair_queue){0};
}
