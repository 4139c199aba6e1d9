/* guest/tcp-retrans.c: see tcp-retrans.h. */
#include "guest/tcp-retrans.h"

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/tcp.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/macro.h"
#include "guest/socket-image.h"

#define SEQ      0x6e637274u
#define RECV_BUF (64u << 10)
/* The states that carry a stream (as the freeze's); SYN_SENT retransmits SYNs, which is a
 * peer that does not answer, not a connection in trouble. */
#define STATES                                                                                     \
    ((1u << TCP_ESTABLISHED) | (1u << TCP_FIN_WAIT1) | (1u << TCP_FIN_WAIT2) |                     \
     (1u << TCP_CLOSE_WAIT) | (1u << TCP_LAST_ACK) | (1u << TCP_CLOSING))

/* The fields of struct tcp_info we read, at their offsets; a short tcp_info reads as 0. */
static void info_fields(const void *p, size_t len, uint8_t *retransmits, uint8_t *probes,
                        uint8_t *backoff, uint32_t *unacked)
{
    struct tcp_info ti;
    memset(&ti, 0, sizeof(ti));
    memcpy(&ti, p, len < sizeof(ti) ? len : sizeof(ti));
    *retransmits = ti.tcpi_retransmits;
    *probes = ti.tcpi_probes;
    *backoff = ti.tcpi_backoff;
    *unacked = ti.tcpi_unacked;
}

bool tcp_retrans_is_probing(const void *tcp_info, size_t len)
{
    uint8_t rx, pr, bo;
    uint32_t un;
    info_fields(tcp_info, len, &rx, &pr, &bo, &un);
    return pr > 0 && rx == 0 && !(bo > 0 && un > 0);
}

bool tcp_retrans_is_retransmitting(const void *tcp_info, size_t len)
{
    uint8_t rx, pr, bo;
    uint32_t un;
    info_fields(tcp_info, len, &rx, &pr, &bo, &un);
    return rx > 0 || (bo > 0 && un > 0) || pr > 0;
}

static void endpoint(struct tcp_endpoint *ep, uint8_t family, const __be32 addr[4])
{
    memset(ep, 0, sizeof(*ep));
    ep->family = family;
    if (family == AF_INET) {
        ep->addr.s6_addr[10] = 0xff;
        ep->addr.s6_addr[11] = 0xff;
        memcpy(&ep->addr.s6_addr[12], &addr[0], 4);
    } else {
        memcpy(&ep->addr, addr, 16);
        if (IN6_IS_ADDR_V4MAPPED(&ep->addr))
            ep->family = AF_INET;
    }
}

/* One inet_diag_msg with its attributes. */
static void count_one(const uint8_t *payload, size_t plen, const struct local_addrs *la,
                      struct tcp_retrans_count *c)
{
    struct inet_diag_msg m;
    if (plen < sizeof(m))
        return;
    memcpy(&m, payload, sizeof(m));
    if ((m.idiag_family != AF_INET && m.idiag_family != AF_INET6) || m.idiag_state > 11 ||
        !(STATES & (1u << m.idiag_state)))
        return;
    struct tcp_endpoint remote;
    endpoint(&remote, m.idiag_family, m.id.idiag_dst);
    if (socket_image_classify(la, &remote))
        return; /* both ends in the guest */
    c->connections++;
    size_t off = NLMSG_ALIGN(sizeof(m));
    while (off + sizeof(struct rtattr) <= plen) {
        struct rtattr a;
        memcpy(&a, payload + off, sizeof(a));
        if (a.rta_len < sizeof(a) || off + a.rta_len > plen)
            return;
        if (a.rta_type == INET_DIAG_INFO) {
            const uint8_t *ti = payload + off + RTA_LENGTH(0);
            size_t tl = a.rta_len - RTA_LENGTH(0);
            if (tcp_retrans_is_retransmitting(ti, tl))
                c->retransmitting++;
            if (tcp_retrans_is_probing(ti, tl))
                c->probing++;
            return;
        }
        off += RTA_ALIGN(a.rta_len);
    }
}

static int dump_family(int fd, uint8_t family, const struct local_addrs *la, uint8_t *buf,
                       struct tcp_retrans_count *c)
{
    struct {
        struct nlmsghdr h;
        struct inet_diag_req_v2 r;
    } req;
    memset(&req, 0, sizeof(req));
    req.h.nlmsg_len = sizeof(req);
    req.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.h.nlmsg_seq = SEQ;
    req.r.sdiag_family = family;
    req.r.sdiag_protocol = IPPROTO_TCP;
    req.r.idiag_states = STATES;
    req.r.idiag_ext = 1u << (INET_DIAG_INFO - 1);
    struct sockaddr_nl nl = {.nl_family = AF_NETLINK};
    if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&nl, sizeof(nl)) < 0)
        return negative_errno();
    for (;;) {
        ssize_t k = recv(fd, buf, RECV_BUF, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return negative_errno();
        if (k == 0)
            return -EBADMSG;
        size_t len = (size_t)k;
        const uint8_t *p = buf;
        while (len >= sizeof(struct nlmsghdr)) {
            struct nlmsghdr h;
            memcpy(&h, p, sizeof(h));
            if (h.nlmsg_len < sizeof(h) || h.nlmsg_len > len || h.nlmsg_seq != SEQ)
                return -EBADMSG;
            if (h.nlmsg_type == NLMSG_DONE)
                return 0;
            if (h.nlmsg_type == NLMSG_ERROR) {
                int e = 0;
                if (h.nlmsg_len >= sizeof(h) + sizeof(int))
                    memcpy(&e, p + sizeof(h), sizeof(e));
                return e < 0 && e >= -4095 ? e : -EBADMSG;
            }
            if (h.nlmsg_type == SOCK_DIAG_BY_FAMILY)
                count_one(p + sizeof(h), h.nlmsg_len - sizeof(h), la, c);
            size_t step = NLMSG_ALIGN(h.nlmsg_len);
            if (step >= len)
                break;
            p += step;
            len -= step;
        }
    }
}

int tcp_retrans_count(struct tcp_retrans_count *out)
{
    memset(out, 0, sizeof(*out));
    struct local_addrs la = {0};
    int r = socket_image_local_addrs(&la);
    if (r < 0)
        return r;
    uint8_t *buf = malloc(RECV_BUF);
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (!buf || fd < 0) {
        r = !buf ? -ENOMEM : negative_errno();
    } else {
        r = dump_family(fd, AF_INET, &la, buf, out);
        if (r == 0) {
            /* one request per socket keeps the replies apart */
            close(fd);
            fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
            r = fd < 0 ? negative_errno() : dump_family(fd, AF_INET6, &la, buf, out);
        }
    }
    if (fd >= 0)
        close(fd);
    free(buf);
    local_addrs_free(&la);
    return r;
}
