/* guest/thaw-kick.c: see thaw-kick.h and docs/tcp-repair.md ("Thaw kick").
 *
 * Kernel facts this file depends on (read in net/ipv4/tcp_ipv4.c, net/ipv6/tcp_ipv6.c and
 * tcp_timer.c, measured with bench/resume/kick-lab.py):
 *  - tcp_v4_err() reverts one RTO backoff step for ICMP net/host unreachable, tcp_v6_err() for
 *    ICMPv6 no-route, when the quoted sequence number is snd_una and the socket has backed
 *    off (tcp_ld_RTO_revert); when the reverted timeout has already elapsed since the head's
 *    last transmission it calls tcp_retransmit_timer() there and then.
 *  - The same ICMP sets sk_err_soft (cleared by the next ACK that advances snd_una), or, with
 *    IP_RECVERR/IPV6_RECVERR, sk_err: an error the application would read. Hence the skip.
 *  - In SYN_SENT/SYN_RECV the ICMP kills the connection: only synchronized states are kicked.
 *  - The quoted header's TTL is checked against IP_MINTTL (the outer hop limit against
 *    IPV6_MINHOPCOUNT), so both say 255. */
#include "guest/thaw-kick.h"
#include "common/inet-csum.h"
#include "common/macro.h"

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/ioctl.h>

#define ICMP_DEST_UNREACH_TYPE   3
#define ICMP_HOST_UNREACH_CODE   1
#define ICMPV6_DEST_UNREACH_TYPE 1
#define ICMPV6_NOROUTE_CODE      0
/* More steps than tcp_retries2 allows; a bound against a nonsense tcpi_backoff. */
#define KICK_MAX_STEPS 32

#define TCPF(s) (1u << (s))
/* Synchronized states that can hold unacknowledged data (FIN_WAIT2 has none left). */
#define KICKABLE                                                                                   \
    (TCPF(TCP_ESTABLISHED) | TCPF(TCP_FIN_WAIT1) | TCPF(TCP_CLOSE_WAIT) | TCPF(TCP_CLOSING) |      \
     TCPF(TCP_LAST_ACK))

const char *thaw_kick_verdict_name(enum thaw_kick_verdict v)
{
    switch (v) {
    case THAW_KICK_NOT_NEEDED:
        return "not-needed";
    case THAW_KICK_RTO_REVERT:
        return "rto-revert";
    case THAW_KICK_SKIP_RECVERR:
        return "skipped-recverr";
    case THAW_KICK_SKIP_STATE:
        return "skipped-state";
    }
    return "?";
}

/* The quoted segment: our header as we would have sent it at snd_una. */
static void quoted_tcp(uint8_t *th, const struct tcp_conn_state *st, uint32_t snd_una)
{
    memset(th, 0, 20);
    put_be16(th, st->local.port);
    put_be16(th + 2, st->remote.port);
    put_be32(th + 4, snd_una);
    th[12] = 5 << 4;
    th[13] = 0x10; /* ACK */
}

/* ICMP host unreachable "from" the peer to us, about our segment at snd_una. */
static size_t build_v4(uint8_t *pkt, const struct tcp_conn_state *st, uint32_t snd_una)
{
    const uint8_t *l4 = &st->local.addr.s6_addr[12], *r4 = &st->remote.addr.s6_addr[12];
    uint8_t *icmp = pkt + 20, *in = icmp + 8;
    size_t len = 20 + 8 + 20 + 20;
    memset(pkt, 0, len);
    pkt[0] = 0x45;
    put_be16(pkt + 2, (uint16_t)len);
    pkt[8] = 255;
    pkt[9] = IPPROTO_ICMP;
    memcpy(pkt + 12, r4, 4);
    memcpy(pkt + 16, l4, 4);
    /* The kernel fills the outer id and header checksum for IPPROTO_RAW. */
    icmp[0] = ICMP_DEST_UNREACH_TYPE;
    icmp[1] = ICMP_HOST_UNREACH_CODE;
    in[0] = 0x45;
    put_be16(in + 2, 40);
    in[8] = 255;
    in[9] = IPPROTO_TCP;
    memcpy(in + 12, l4, 4);
    memcpy(in + 16, r4, 4);
    put_be16(in + 10, inet_csum(in, 20));
    quoted_tcp(in + 20, st, snd_una);
    put_be16(icmp + 2, inet_csum(icmp, 8 + 40));
    return len;
}

/* ICMPv6 destination unreachable, no route, likewise. */
static size_t build_v6(uint8_t *pkt, const struct tcp_conn_state *st, uint32_t snd_una)
{
    uint8_t *icmp = pkt + 40, *in = icmp + 8;
    size_t plen = 8 + 40 + 20;
    memset(pkt, 0, 40 + plen);
    pkt[0] = 0x60;
    put_be16(pkt + 4, (uint16_t)plen);
    pkt[6] = IPPROTO_ICMPV6;
    pkt[7] = 255;
    memcpy(pkt + 8, &st->remote.addr, 16);
    memcpy(pkt + 24, &st->local.addr, 16);
    icmp[0] = ICMPV6_DEST_UNREACH_TYPE;
    icmp[1] = ICMPV6_NOROUTE_CODE;
    in[0] = 0x60;
    put_be16(in + 4, 20);
    in[6] = IPPROTO_TCP;
    in[7] = 255;
    memcpy(in + 8, &st->local.addr, 16);
    memcpy(in + 24, &st->remote.addr, 16);
    quoted_tcp(in + 40, st, snd_una);
    uint32_t pseudo = inet_pseudo_sum(pkt + 8, pkt + 24, 16, IPPROTO_ICMPV6, (uint32_t)plen);
    put_be16(icmp + 2, inet_csum_finish(inet_sum(icmp, plen, pseudo)));
    return 40 + plen;
}

/* Whether an ICMP error would become sk_err, which the application reads as a failure. */
static int recverr_set(int fd, int sock_family)
{
    int v = 0;
    socklen_t sl = sizeof(v);
    if (getsockopt(fd, SOL_IP, IP_RECVERR, &v, &sl) < 0)
        return negative_errno();
    if (v)
        return 1;
    if (sock_family == AF_INET6) {
        sl = sizeof(v);
        if (getsockopt(fd, SOL_IPV6, IPV6_RECVERR, &v, &sl) < 0)
            return negative_errno();
    }
    return !!v;
}

int thaw_kick(int fd, const struct tcp_conn_state *st, struct thaw_kick_result *res)
{
    struct tcp_info ti;
    socklen_t sl = sizeof(ti);
    int v, r, outq;

    if (!st || !res)
        return -EINVAL;
    *res = (struct thaw_kick_result){.verdict = THAW_KICK_NOT_NEEDED};
    if (st->local.family != st->remote.family ||
        (st->local.family != AF_INET && st->local.family != AF_INET6))
        return -EAFNOSUPPORT;
    sl = sizeof(v);
    if (getsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &v, &sl) < 0)
        return negative_errno();
    if (v)
        return -EBUSY;
    sl = sizeof(ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &sl) < 0)
        return negative_errno();
    res->backoff = ti.tcpi_backoff;
    res->rto_ms = ti.tcpi_rto / 1000;
    if (!(TCPF(ti.tcpi_state) & KICKABLE)) {
        if (ti.tcpi_backoff)
            res->verdict = THAW_KICK_SKIP_STATE;
        return 0;
    }
    /* The kernel reverts only a backed-off retransmission timer with data outstanding. */
    if (ti.tcpi_backoff == 0 || ti.tcpi_retransmits == 0 || ti.tcpi_unacked == 0)
        return 0;
    if ((r = recverr_set(fd, st->sock_family)) != 0) {
        res->verdict = THAW_KICK_SKIP_RECVERR;
        return r < 0 ? r : 0;
    }
    /* write_seq is still the dumped one (the owners are quiesced), so snd_una = write_seq
     * minus the send queue, read now. */
    if (ioctl(fd, SIOCOUTQ, &outq) < 0)
        return negative_errno();
    res->snd_una = st->snd_seq - (uint32_t)outq;

    uint8_t pkt[128];
    struct sockaddr_storage dst;
    socklen_t dlen;
    size_t len;
    memset(&dst, 0, sizeof(dst));
    if (st->local.family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&dst;
        len = build_v4(pkt, st, res->snd_una);
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, &st->local.addr.s6_addr[12], 4);
        dlen = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&dst;
        len = build_v6(pkt, st, res->snd_una);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = st->local.addr;
        dlen = sizeof(*sin6);
    }
    _cleanup_close_ int raw = socket(st->local.family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
    if (raw < 0)
        return negative_errno();
    unsigned steps = ti.tcpi_backoff < KICK_MAX_STEPS ? ti.tcpi_backoff : KICK_MAX_STEPS;
    /* One message per step; the last one, with the timeout already spent, retransmits. */
    for (unsigned i = 0; i < steps; i++) {
        if (sendto(raw, pkt, len, 0, (struct sockaddr *)&dst, dlen) < 0) {
            if (!res->sent)
                return negative_errno();
            break; /* a partial revert still shortens the wait */
        }
        res->sent++;
    }
    res->verdict = THAW_KICK_RTO_REVERT;
    return 0;
}
