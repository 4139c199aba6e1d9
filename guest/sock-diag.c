/* guest/sock-diag.c: see sock-diag.h. */
#include "guest/sock-diag.h"

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/macro.h"

#define DIAG_SEQ    0x6e636b70u /* any value: one request per netlink socket */
#define RECV_BUF    (64u << 10) /* the kernel sizes dump batches to fit */
#define MAX_SOCKETS (1u << 22)  /* refuse absurd dumps instead of growing without bound */

static int open_diag_socket(void)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0)
        return negative_errno();
    return fd;
}

static void fill_endpoint(struct tcp_endpoint *ep, uint8_t family, const __be32 addr[4],
                          __be16 port)
{
    memset(ep, 0, sizeof(*ep));
    ep->family = family;
    if (family == AF_INET) {
        ep->addr.s6_addr[10] = 0xff;
        ep->addr.s6_addr[11] = 0xff;
        memcpy(&ep->addr.s6_addr[12], &addr[0], 4);
    } else {
        memcpy(&ep->addr, addr, 16);
        /* A dual-stack socket's IPv4 peer: the wire protocol is IPv4 (see tcp-repair.h). */
        if (IN6_IS_ADDR_V4MAPPED(&ep->addr))
            ep->family = AF_INET;
    }
    ep->port = ntohs(port);
}

static int parse_diag_msg(const void *payload, size_t len, struct sock_diag_tcp *e)
{
    struct inet_diag_msg m;
    if (len < sizeof(m))
        return -EBADMSG;
    memcpy(&m, payload, sizeof(m)); /* the buffer may be unaligned for the fuzzer */
    if (m.idiag_family != AF_INET && m.idiag_family != AF_INET6)
        return -EBADMSG;
    if (m.idiag_state == 0 || m.idiag_state > 12)
        return -EBADMSG;
    if (m.idiag_state == 12) /* TCP_NEW_SYN_RECV: a request socket, which is SYN_RECV to us */
        m.idiag_state = TCP_SYN_RECV;
    memset(e, 0, sizeof(*e));
    e->family = m.idiag_family;
    e->state = m.idiag_state;
    fill_endpoint(&e->local, m.idiag_family, m.id.idiag_src, m.id.idiag_sport);
    fill_endpoint(&e->remote, m.idiag_family, m.id.idiag_dst, m.id.idiag_dport);
    e->inode = m.idiag_inode;
    e->uid = m.idiag_uid;
    e->cookie = (uint64_t)m.id.idiag_cookie[0] | ((uint64_t)m.id.idiag_cookie[1] << 32);
    e->ifindex = m.id.idiag_if;
    /* Attributes: only INET_DIAG_INFO is kept. They are extras: a malformed run ends the walk
     * (the socket stays listed, without tcp_info). */
    size_t off = NLMSG_ALIGN(sizeof(m));
    while (off + sizeof(struct rtattr) <= len) {
        struct rtattr a;
        memcpy(&a, (const uint8_t *)payload + off, sizeof(a));
        if (a.rta_len < sizeof(a) || a.rta_len > len - off)
            break;
        if (a.rta_type == INET_DIAG_INFO) {
            size_t tl = a.rta_len - RTA_LENGTH(0);
            if (tl > sizeof(e->tcp_info))
                tl = sizeof(e->tcp_info);
            memcpy(e->tcp_info, (const uint8_t *)payload + off + RTA_LENGTH(0), tl);
            e->tcp_info_len = (uint16_t)tl;
        }
        off += RTA_ALIGN(a.rta_len);
    }
    return 0;
}

static int nlmsg_error_code(const void *payload, size_t len)
{
    struct nlmsgerr err;
    if (len < sizeof(err.error))
        return -EBADMSG;
    memcpy(&err.error, payload, sizeof(err.error));
    if (err.error > 0 || err.error < -4095)
        return -EBADMSG;
    return err.error;
}

int sock_diag_parse_reply(const void *buf, size_t len, uint32_t seq, struct sock_diag_tcp **v,
                          size_t *n, size_t *cap, int *done)
{
    const uint8_t *p = buf;
    *done = 0;
    while (len > 0) {
        struct nlmsghdr h;
        if (len < sizeof(h))
            return -EBADMSG;
        memcpy(&h, p, sizeof(h));
        if (h.nlmsg_len < sizeof(h) || h.nlmsg_len > len)
            return -EBADMSG;
        const uint8_t *payload = p + sizeof(h);
        size_t plen = h.nlmsg_len - sizeof(h);
        if (h.nlmsg_seq != seq)
            return -EBADMSG;

        if (h.nlmsg_type == NLMSG_DONE) {
            /* A dump that failed midway says so in the DONE payload. */
            if (plen >= sizeof(int)) {
                int r;
                memcpy(&r, payload, sizeof(r));
                if (r < 0)
                    return r < -4095 ? -EBADMSG : r;
            }
            *done = 1;
            return 0;
        }
        if (h.nlmsg_type == NLMSG_ERROR) {
            int r = nlmsg_error_code(payload, plen);
            if (r < 0)
                return r;
            *done = 1; /* an ACK */
            return 0;
        }
        if (h.nlmsg_type == SOCK_DIAG_BY_FAMILY) {
            if (*n >= MAX_SOCKETS)
                return -E2BIG;
            if (*n == *cap) {
                size_t nc = *cap ? *cap * 2 : 256;
                struct sock_diag_tcp *nv = reallocarray(*v, nc, sizeof(**v));
                if (!nv)
                    return -ENOMEM;
                *v = nv;
                *cap = nc;
            }
            int r = parse_diag_msg(payload, plen, &(*v)[*n]);
            if (r < 0)
                return r;
            (*n)++;
        }
        /* Lost data means an incomplete list; other types (NLMSG_NOOP) carry nothing. */
        if (h.nlmsg_type == NLMSG_OVERRUN)
            return -EBADMSG;

        size_t step = NLMSG_ALIGN(h.nlmsg_len);
        if (step >= len)
            break;
        p += step;
        len -= step;
    }
    return 0;
}

static int send_request(int fd, uint16_t type, uint16_t flags, const struct inet_diag_req_v2 *req)
{
    struct {
        struct nlmsghdr h;
        struct inet_diag_req_v2 r;
    } msg;
    memset(&msg, 0, sizeof(msg));
    msg.h.nlmsg_len = sizeof(msg);
    msg.h.nlmsg_type = type;
    msg.h.nlmsg_flags = NLM_F_REQUEST | flags;
    msg.h.nlmsg_seq = DIAG_SEQ;
    msg.r = *req;
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    for (;;) {
        ssize_t k = sendto(fd, &msg, sizeof(msg), 0, (struct sockaddr *)&sa, sizeof(sa));
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return negative_errno();
        if ((size_t)k != sizeof(msg))
            return -EIO;
        return 0;
    }
}

/* Receive replies until DONE or an ACK/error; appends dump entries to *v. */
static int receive_all(int fd, struct sock_diag_tcp **v, size_t *n, size_t *cap)
{
    _cleanup_free_ uint8_t *buf = malloc(RECV_BUF);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        struct sockaddr_nl from;
        struct iovec iov = {.iov_base = buf, .iov_len = RECV_BUF};
        struct msghdr mh = {
            .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov, .msg_iovlen = 1};
        ssize_t k = recvmsg(fd, &mh, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return negative_errno();
        if (k == 0 || (mh.msg_flags & MSG_TRUNC))
            return -EBADMSG;
        if (mh.msg_namelen < sizeof(from) || from.nl_pid != 0)
            continue; /* not from the kernel */
        int done = 0;
        int r = sock_diag_parse_reply(buf, (size_t)k, DIAG_SEQ, v, n, cap, &done);
        if (r < 0)
            return r;
        if (done)
            return 0;
    }
}

static int dump_family(uint8_t family, uint32_t state_mask, uint8_t ext, struct sock_diag_tcp **v,
                       size_t *n, size_t *cap)
{
    _cleanup_close_ int fd = open_diag_socket();
    if (fd < 0)
        return fd;
    struct inet_diag_req_v2 req = {
        .sdiag_family = family,
        .sdiag_protocol = IPPROTO_TCP,
        .idiag_states = state_mask,
        .idiag_ext = ext,
    };
    int r = send_request(fd, SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, &req);
    if (r < 0)
        return r;
    return receive_all(fd, v, n, cap);
}

static int list(uint32_t state_mask, uint8_t ext, struct sock_diag_tcp **out, size_t *n)
{
    _cleanup_free_ struct sock_diag_tcp *v = NULL;
    size_t cnt = 0, cap = 0;
    int r = dump_family(AF_INET, state_mask, ext, &v, &cnt, &cap);
    if (r < 0)
        return r;
    r = dump_family(AF_INET6, state_mask, ext, &v, &cnt, &cap);
    /* A kernel without IPv6 has no AF_INET6 handler: that is an empty list, not a failure. */
    if (r < 0 && r != -ENOENT && r != -EAFNOSUPPORT)
        return r;
    *out = cnt ? TAKE_PTR(v) : NULL;
    *n = cnt;
    return 0;
}

int sock_diag_tcp_list(uint32_t state_mask, struct sock_diag_tcp **out, size_t *n)
{
    return list(state_mask, 0, out, n);
}

int sock_diag_tcp_list_info(uint32_t state_mask, struct sock_diag_tcp **out, size_t *n)
{
    return list(state_mask, 1u << (INET_DIAG_INFO - 1), out, n);
}

static void endpoint_to_diag(const struct tcp_endpoint *ep, uint8_t family, __be32 addr[4],
                             __be16 *port)
{
    if (family == AF_INET)
        memcpy(&addr[0], &ep->addr.s6_addr[12], 4);
    else
        memcpy(addr, &ep->addr, 16);
    *port = htons(ep->port);
}

int sock_diag_tcp_destroy(const struct sock_diag_tcp *e)
{
    if (!e || (e->family != AF_INET && e->family != AF_INET6))
        return -EINVAL;
    _cleanup_close_ int fd = open_diag_socket();
    if (fd < 0)
        return fd;
    struct inet_diag_req_v2 req = {
        .sdiag_family = e->family,
        .sdiag_protocol = IPPROTO_TCP,
        .idiag_states = SOCK_DIAG_ALL_STATES,
    };
    endpoint_to_diag(&e->local, e->family, req.id.idiag_src, &req.id.idiag_sport);
    endpoint_to_diag(&e->remote, e->family, req.id.idiag_dst, &req.id.idiag_dport);
    req.id.idiag_if = e->ifindex;
    req.id.idiag_cookie[0] = (uint32_t)e->cookie;
    req.id.idiag_cookie[1] = (uint32_t)(e->cookie >> 32);
    int r = send_request(fd, SOCK_DESTROY, NLM_F_ACK, &req);
    if (r < 0)
        return r;
    size_t n = 0, cap = 0;
    _cleanup_free_ struct sock_diag_tcp *v = NULL;
    return receive_all(fd, &v, &n, &cap);
}
