/* host/peer-probe.c: see peer-probe.h. */
#include "host/peer-probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/inet-csum.h"
#include "common/macro.h"
#include "common/util.h"

#define TCP_HDR 20

struct addr {
    int family;
    uint8_t b[16];
};

static int parse_addr(const char *s, struct addr *a)
{
    struct in6_addr v6;
    if (!s)
        return -EINVAL;
    if (inet_pton(AF_INET, s, a->b) == 1) {
        a->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, &v6) != 1)
        return -EINVAL;
    if (IN6_IS_ADDR_V4MAPPED(&v6)) {
        a->family = AF_INET;
        memcpy(a->b, &v6.s6_addr[12], 4);
    } else {
        a->family = AF_INET6;
        memcpy(a->b, v6.s6_addr, 16);
    }
    return 0;
}

int peer_probe_build(const char *local, uint16_t lport, const char *remote, uint16_t rport,
                     uint32_t seq, uint32_t ack, uint8_t *buf, size_t len)
{
    struct addr src, dst;
    if (parse_addr(local, &src) < 0 || parse_addr(remote, &dst) < 0 || src.family != dst.family ||
        !lport || !rport)
        return -EINVAL;
    size_t alen = src.family == AF_INET ? 4 : 16;
    size_t ip = src.family == AF_INET ? 20 : 40;
    if (len < ip + TCP_HDR)
        return -ENOSPC;
    memset(buf, 0, ip + TCP_HDR);
    uint8_t *t = buf + ip;
    put_be16(t, lport);
    put_be16(t + 2, rport);
    put_be32(t + 4, seq - 1); /* below what the peer acknowledged: never acceptable */
    put_be32(t + 8, ack);
    t[12] = (TCP_HDR / 4) << 4;
    t[13] = 0x10;          /* ACK */
    put_be16(t + 14, 512); /* some window; never a zero window */
    /* pseudo-header: addresses, protocol, TCP length */
    uint32_t s = inet_pseudo_sum(src.b, dst.b, alen, IPPROTO_TCP, TCP_HDR);
    put_be16(t + 16, inet_csum_finish(inet_sum(t, TCP_HDR, s)));
    if (src.family == AF_INET) {
        buf[0] = 0x45;
        put_be16(buf + 2, (uint16_t)(ip + TCP_HDR));
        buf[6] = 0x40; /* DF */
        buf[8] = 64;
        buf[9] = IPPROTO_TCP;
        memcpy(buf + 12, src.b, 4);
        memcpy(buf + 16, dst.b, 4);
        put_be16(buf + 10, inet_csum(buf, 20));
    } else {
        buf[0] = 0x60;
        put_be16(buf + 4, TCP_HDR);
        buf[6] = IPPROTO_TCP;
        buf[7] = 64;
        memcpy(buf + 8, src.b, 16);
        memcpy(buf + 24, dst.b, 16);
    }
    return (int)(ip + TCP_HDR);
}

static json_object *get(json_object *o, const char *k)
{
    json_object *v = NULL;
    return o && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

static int64_t get_int(json_object *o, const char *k, int64_t dflt)
{
    json_object *v = get(o, k);
    return v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : dflt;
}

int peer_probe_image(json_object *image, char *err, size_t errlen)
{
    json_object *conns = get(image, "connections");
    if (!conns || !json_object_is_type(conns, json_type_array))
        return -EINVAL;
    int fds[2] = {-1, -1}; /* AF_INET, AF_INET6, opened on first use */
    int sent = 0, first_err = 0;
    for (size_t i = 0; i < json_object_array_length(conns); i++) {
        json_object *c = json_object_array_get_idx(conns, i);
        json_object *lo = get(c, "local"), *re = get(c, "remote");
        const char *la = json_object_get_string(get(lo, "addr"));
        const char *ra = json_object_get_string(get(re, "addr"));
        int64_t lp = get_int(lo, "port", -1), rp = get_int(re, "port", -1);
        uint32_t snd_seq = (uint32_t)get_int(c, "snd_seq", 0);
        uint32_t unacked = (uint32_t)get_int(get(c, "unacked"), "len", 0);
        uint32_t unsent = (uint32_t)get_int(get(c, "unsent"), "len", 0);
        uint32_t rcv = (uint32_t)get_int(c, "rcv_seq", 0);
        uint8_t pkt[64];
        int n = lp > 0 && lp <= 65535 && rp > 0 && rp <= 65535
                    ? peer_probe_build(la, (uint16_t)lp, ra, (uint16_t)rp,
                                       snd_seq - unacked - unsent, rcv, pkt, sizeof(pkt))
                    : -EINVAL;
        if (n < 0) {
            if (!first_err) {
                first_err = n;
                set_errbuf(err, errlen, "connection %zu: no usable addresses", i);
            }
            continue;
        }
        bool v4 = n == 20 + TCP_HDR;
        int *fd = &fds[v4 ? 0 : 1];
        if (*fd < 0) {
            *fd = socket(v4 ? AF_INET : AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
            if (*fd < 0) {
                int e = negative_errno();
                if (!first_err) {
                    first_err = e;
                    set_errbuf(err, errlen, "raw socket: %s", strerror(-e));
                }
                continue;
            }
        }
        struct sockaddr_storage ss = {0};
        socklen_t sl;
        if (v4) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
            sin->sin_family = AF_INET;
            memcpy(&sin->sin_addr, pkt + 16, 4);
            sl = sizeof(*sin);
        } else {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
            sin6->sin6_family = AF_INET6;
            memcpy(&sin6->sin6_addr, pkt + 24, 16);
            sl = sizeof(*sin6);
        }
        if (sendto(*fd, pkt, (size_t)n, 0, (struct sockaddr *)&ss, sl) < 0) {
            int e = negative_errno();
            if (!first_err) {
                first_err = e;
                set_errbuf(err, errlen, "probe to %s:%d: %s", ra, (int)rp, strerror(-e));
            }
            continue;
        }
        sent++;
    }
    for (size_t i = 0; i < 2; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return sent > 0 || !first_err ? sent : first_err;
}
