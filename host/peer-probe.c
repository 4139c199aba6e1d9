/* host/peer-probe.c: see peer-probe.h. */
#include "host/peer-probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/inet-csum.h"
#include "common/macro.h"
#include "common/util.h"
#include "host/tap-watch.h"

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

/* The connections as tap-watch reads them from the image (endpoints, snd_una, rcv_nxt): one
 * reading of the image serves the thaw's watch and the probes. */
int peer_probe_image(json_object *image, char *err, size_t errlen)
{
    _cleanup_(tap_watch_stop) struct tap_watch w = {0};
    int r = tap_watch_init_conns(&w, image);
    if (r < 0)
        return r;
    json_object *conns = NULL;
    json_object_object_get_ex(image, "connections", &conns);
    size_t skipped = json_object_array_length(conns) - w.n;
    int fds[2] = {-1, -1}; /* AF_INET, AF_INET6, opened on first use */
    int sent = 0, first_err = skipped ? -EINVAL : 0;
    if (skipped)
        set_errbuf(err, errlen, "%zu connection(s): no usable addresses", skipped);
    for (size_t i = 0; i < w.n; i++) {
        const struct tap_watch_conn *c = &w.c[i];
        char la[INET6_ADDRSTRLEN], ra[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &c->gaddr, la, sizeof(la)); /* v4-mapped reads as IPv4 again */
        inet_ntop(AF_INET6, &c->paddr, ra, sizeof(ra));
        uint8_t pkt[64];
        int n =
            peer_probe_build(la, c->gport, ra, c->pport, c->snd_una, c->rcv_nxt, pkt, sizeof(pkt));
        if (n < 0) {
            if (!first_err) {
                first_err = n;
                set_errbuf(err, errlen, "connection %" PRIu32 ": no usable addresses", c->id);
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
                set_errbuf(err, errlen, "probe to %s:%u: %s", ra, c->pport, strerror(-e));
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
