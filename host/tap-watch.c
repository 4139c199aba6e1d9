/* host/tap-watch.c: see tap-watch.h. */
#include "host/tap-watch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/util.h"

static bool seq_after(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) > 0;
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

static int parse_ep(json_object *ep, struct in6_addr *a, uint16_t *port)
{
    json_object *addr = get(ep, "addr");
    int64_t p = get_int(ep, "port", -1);
    if (!addr || !json_object_is_type(addr, json_type_string) || p < 0 || p > 65535)
        return -EINVAL;
    const char *s = json_object_get_string(addr);
    struct in_addr v4;
    if (inet_pton(AF_INET, s, &v4) == 1) {
        memset(a, 0, sizeof(*a));
        a->s6_addr[10] = a->s6_addr[11] = 0xff;
        memcpy(&a->s6_addr[12], &v4, 4);
    } else if (inet_pton(AF_INET6, s, a) != 1) {
        return -EINVAL;
    }
    *port = (uint16_t)p;
    return 0;
}

int tap_watch_init_conns(struct tap_watch *w, json_object *image)
{
    memset(w, 0, sizeof(*w));
    for (size_t i = 0; i < TAP_WATCH_MAX_TAPS; i++)
        w->fds[i] = -1;
    json_object *conns = get(image, "connections");
    if (!conns || !json_object_is_type(conns, json_type_array))
        return -EINVAL;
    size_t n = json_object_array_length(conns);
    w->c = calloc(n ? n : 1, sizeof(*w->c));
    if (!w->c)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_object *c = json_object_array_get_idx(conns, i);
        struct tap_watch_conn *t = &w->c[w->n];
        if (parse_ep(get(c, "local"), &t->gaddr, &t->gport) < 0 ||
            parse_ep(get(c, "remote"), &t->paddr, &t->pport) < 0)
            continue; /* the image was validated; skip what we cannot match anyway */
        t->id = (uint32_t)get_int(c, "id", (int64_t)i);
        uint32_t snd_seq = (uint32_t)get_int(c, "snd_seq", 0);
        uint32_t unacked = (uint32_t)get_int(get(c, "unacked"), "len", 0);
        uint32_t unsent = (uint32_t)get_int(get(c, "unsent"), "len", 0);
        t->snd_una = snd_seq - unacked - unsent;
        t->snd_nxt = t->snd_una + unacked;
        t->rcv_nxt = (uint32_t)get_int(c, "rcv_seq", 0);
        t->queued = unacked + unsent > 0;
        w->n++;
    }
    return 0;
}

int tap_watch_start(struct tap_watch *w, const char *const *taps, size_t n_taps, json_object *image)
{
    tap_watch_stop(w);
    int r = tap_watch_init_conns(w, image);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n_taps && i < TAP_WATCH_MAX_TAPS; i++) {
        unsigned idx = if_nametoindex(taps[i]);
        if (!idx)
            continue;
        int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL));
        if (fd < 0) {
            r = negative_errno();
            tap_watch_stop(w);
            return r;
        }
        struct sockaddr_ll sll = {
            .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = (int)idx};
        if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
            r = negative_errno();
            close(fd);
            tap_watch_stop(w);
            return r;
        }
        int sz = 4 << 20;
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
            (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
        w->fds[w->n_fds++] = fd;
    }
    if (w->n_fds == 0) {
        tap_watch_stop(w);
        return -ENODEV;
    }
    w->active = true;
    return 0;
}

void tap_watch_stop(struct tap_watch *w)
{
    for (size_t i = 0; i < w->n_fds; i++)
        if (w->fds[i] >= 0)
            close(w->fds[i]);
    w->n_fds = 0;
    w->active = false;
    free(w->c);
    w->c = NULL;
    w->n = 0;
}

struct seg {
    struct in6_addr src, dst;
    uint16_t sport, dport;
    uint32_t seq, ack;
    uint8_t flags;
    size_t payload;
};

/* Headers are read from the len captured bytes; lengths may run up to wire bytes (a packet
 * socket truncates what it hands us, and a TSO frame from the guest can be up to 64 KiB). */
static int parse_frame(const uint8_t *f, size_t len, size_t wire, struct seg *s)
{
    if (wire < len)
        wire = len;
    if (len < 14)
        return -EINVAL;
    size_t off = 12;
    uint16_t et = (uint16_t)(f[off] << 8 | f[off + 1]);
    off += 2;
    for (int vl = 0; vl < 2 && (et == 0x8100 || et == 0x88a8); vl++) {
        if (len < off + 4)
            return -EINVAL;
        et = (uint16_t)(f[off + 2] << 8 | f[off + 3]);
        off += 4;
    }
    size_t ip_end;
    if (et == 0x0800) {
        if (len < off + 20)
            return -EINVAL;
        const uint8_t *ip = f + off;
        size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
        size_t tot = (size_t)(ip[2] << 8 | ip[3]);
        if (tot == 0 && wire > off) /* a GSO frame over 64 KiB */
            tot = wire - off;
        if ((ip[0] >> 4) != 4 || ihl < 20 || tot < ihl || wire < off + tot || len < off + ihl)
            return -EINVAL;
        if (ip[9] != 6)
            return 0;
        if ((ip[6] & 0x3f) || ip[7]) /* a fragment: no TCP header to trust */
            return 0;
        memset(&s->src, 0, sizeof(s->src));
        memset(&s->dst, 0, sizeof(s->dst));
        s->src.s6_addr[10] = s->src.s6_addr[11] = 0xff;
        s->dst.s6_addr[10] = s->dst.s6_addr[11] = 0xff;
        memcpy(&s->src.s6_addr[12], ip + 12, 4);
        memcpy(&s->dst.s6_addr[12], ip + 16, 4);
        ip_end = off + tot;
        off += ihl;
    } else if (et == 0x86dd) {
        if (len < off + 40)
            return -EINVAL;
        const uint8_t *ip = f + off;
        size_t plen = (size_t)(ip[4] << 8 | ip[5]);
        if ((ip[0] >> 4) != 6 || wire < off + 40 + plen)
            return -EINVAL;
        if (ip[6] != 6) /* extension headers: not from our guests' TCP; ignore */
            return 0;
        memcpy(&s->src, ip + 8, 16);
        memcpy(&s->dst, ip + 24, 16);
        ip_end = off + 40 + plen;
        off += 40;
    } else {
        return 0;
    }
    if (ip_end < off + 20 || len < off + 20)
        return -EINVAL;
    const uint8_t *t = f + off;
    size_t doff = (size_t)(t[12] >> 4) * 4;
    if (doff < 20 || off + doff > ip_end)
        return -EINVAL;
    s->sport = (uint16_t)(t[0] << 8 | t[1]);
    s->dport = (uint16_t)(t[2] << 8 | t[3]);
    s->seq = (uint32_t)t[4] << 24 | (uint32_t)t[5] << 16 | (uint32_t)t[6] << 8 | t[7];
    s->ack = (uint32_t)t[8] << 24 | (uint32_t)t[9] << 16 | (uint32_t)t[10] << 8 | t[11];
    s->flags = t[13];
    s->payload = ip_end - off - doff;
    return 1;
}

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_ACK 0x10

int tap_watch_feed(struct tap_watch *w, const uint8_t *frame, size_t len, uint64_t now_ns)
{
    return tap_watch_feed_wire(w, frame, len, len, now_ns);
}

int tap_watch_feed_wire(struct tap_watch *w, const uint8_t *frame, size_t len, size_t wire,
                        uint64_t now_ns)
{
    struct seg s;
    int r = parse_frame(frame, len, wire, &s);
    if (r <= 0)
        return r;
    w->frames++;
    for (size_t i = 0; i < w->n; i++) {
        struct tap_watch_conn *c = &w->c[i];
        bool from_peer = !memcmp(&s.src, &c->paddr, 16) && s.sport == c->pport &&
                         !memcmp(&s.dst, &c->gaddr, 16) && s.dport == c->gport;
        bool from_guest = !memcmp(&s.src, &c->gaddr, 16) && s.sport == c->gport &&
                          !memcmp(&s.dst, &c->paddr, 16) && s.dport == c->pport;
        if (!from_peer && !from_guest)
            continue;
        if (s.flags & TH_RST)
            c->rst = true;
        if (from_peer) {
            if (!c->first_peer_ns)
                c->first_peer_ns = now_ns;
            c->bytes_to_guest += s.payload;
            /* The peer acknowledges data this guest state never sent: it lived on past the
             * checkpoint (one sequence number of slack for a FIN). What the guest sent since
             * the thaw may be acknowledged, of course. */
            uint32_t limit = c->snd_nxt + 1;
            bool judged = !w->lost && !c->guest_new;
            if (c->guest_sent && seq_after(c->guest_end + 1, limit))
                limit = c->guest_end + 1;
            if (judged && (s.flags & TH_ACK) && !(s.flags & (TH_SYN | TH_RST)) &&
                seq_after(s.ack, limit) && !c->stale) {
                c->stale = true;
                c->stale_ack = s.ack;
            }
        } else {
            c->bytes_from_guest += s.payload;
            uint32_t end = s.seq + (uint32_t)s.payload + ((s.flags & TH_FIN) ? 1 : 0);
            if (!(s.flags & TH_SYN) && (!c->guest_sent || seq_after(end, c->guest_end))) {
                c->guest_end = end;
                c->guest_sent = true;
            }
            /* Once the guest sends beyond its frozen state, a high ACK proves nothing. */
            if (seq_after(end, c->snd_nxt + 1))
                c->guest_new = true;
        }
        if (s.payload && !c->first_data_ns)
            c->first_data_ns = now_ns;
        return 1;
    }
    return 0;
}

static bool settled(const struct tap_watch *w)
{
    for (size_t i = 0; i < w->n; i++) {
        const struct tap_watch_conn *c = &w->c[i];
        if (c->rst || c->stale)
            continue;
        if (!c->first_peer_ns || (c->queued && !c->first_data_ns))
            return false;
    }
    return true;
}

void tap_watch_run(struct tap_watch *w, int max_ms, const volatile sig_atomic_t *cancel)
{
    w->t0_ns = now_monotonic_ns();
    if (!w->active)
        return;
    uint64_t deadline = w->t0_ns + (uint64_t)(max_ms > 0 ? max_ms : 0) * 1000000;
    uint8_t buf[256]; /* headers are enough: MSG_TRUNC tells the real length */
    /* Frames that arrived between the lift and the thaw count as at t0. */
    for (;;) {
        bool any = false;
        for (size_t i = 0; i < w->n_fds; i++) {
            for (;;) {
                ssize_t n = recv(w->fds[i], buf, sizeof(buf), MSG_TRUNC);
                if (n < 0)
                    break;
                any = true;
                (void)tap_watch_feed_wire(w, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf),
                                          (size_t)n, now_monotonic_ns());
            }
        }
        for (size_t i = 0; i < w->n_fds; i++) {
            struct tpacket_stats st;
            socklen_t sl = sizeof(st);
            if (getsockopt(w->fds[i], SOL_PACKET, PACKET_STATISTICS, &st, &sl) == 0 && st.tp_drops)
                w->lost += st.tp_drops; /* reading resets them */
        }
        if (settled(w) || (cancel && *cancel))
            return;
        uint64_t now = now_monotonic_ns();
        if (now >= deadline)
            return;
        if (any)
            continue;
        struct pollfd p[TAP_WATCH_MAX_TAPS];
        for (size_t i = 0; i < w->n_fds; i++)
            p[i] = (struct pollfd){.fd = w->fds[i], .events = POLLIN};
        int left = (int)((deadline - now) / 1000000) + 1;
        (void)poll(p, w->n_fds, left > 50 ? 50 : left);
    }
}

static json_object *ep_json(const struct in6_addr *a, uint16_t port)
{
    char s[INET6_ADDRSTRLEN];
    if (IN6_IS_ADDR_V4MAPPED(a))
        inet_ntop(AF_INET, &a->s6_addr[12], s, sizeof(s));
    else
        inet_ntop(AF_INET6, a, s, sizeof(s));
    json_object *o = json_object_new_object();
    json_object_object_add(o, "addr", json_object_new_string(s));
    json_object_object_add(o, "port", json_object_new_int(port));
    return o;
}

static json_object *ms_since(uint64_t t0, uint64_t t)
{
    if (!t)
        return NULL;
    return json_object_new_int64(t > t0 ? (int64_t)((t - t0) / 1000000) : 0);
}

static bool thaw_failed(json_object *thaw, uint32_t id)
{
    json_object *conns = get(thaw, "connections");
    if (!conns || !json_object_is_type(conns, json_type_array))
        return false;
    for (size_t i = 0; i < json_object_array_length(conns); i++) {
        json_object *c = json_object_array_get_idx(conns, i);
        json_object *res = get(c, "result");
        if (get_int(c, "id", -1) == (int64_t)id && res &&
            json_object_is_type(res, json_type_string) &&
            !strcmp(json_object_get_string(res), "failed"))
            return true;
    }
    return false;
}

static void recount(json_object *rep)
{
    static const char *const kinds[] = {"survived", "stale", "reset", "stalled"};
    int64_t n[4] = {0};
    json_object *conns = get(rep, "connections");
    for (size_t i = 0; conns && i < json_object_array_length(conns); i++) {
        json_object *res = get(json_object_array_get_idx(conns, i), "result");
        for (size_t k = 0; k < 4; k++)
            if (res && !strcmp(json_object_get_string(res), kinds[k]))
                n[k]++;
    }
    for (size_t k = 0; k < 4; k++)
        json_object_object_add(rep, kinds[k], json_object_new_int64(n[k]));
}

json_object *tap_watch_report(const struct tap_watch *w, json_object *thaw_reply)
{
    json_object *rep = json_object_new_object();
    json_object *arr = json_object_new_array();
    if (!rep || !arr) {
        json_object_put(rep);
        json_object_put(arr);
        return NULL;
    }
    uint64_t now = now_monotonic_ns();
    json_object_object_add(
        rep, "watched_ms",
        json_object_new_int64(now > w->t0_ns ? (int64_t)((now - w->t0_ns) / 1000000) : 0));
    json_object_object_add(rep, "frames", json_object_new_int64((int64_t)w->frames));
    json_object_object_add(rep, "frames_lost", json_object_new_int64((int64_t)w->lost));
    for (size_t i = 0; i < w->n; i++) {
        const struct tap_watch_conn *c = &w->c[i];
        const char *result = c->rst || thaw_failed(thaw_reply, c->id) ? "reset"
                             : c->stale                               ? "stale"
                             : c->first_peer_ns                       ? "survived"
                                                                      : "stalled";
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_int64(c->id));
        json_object_object_add(o, "local", ep_json(&c->gaddr, c->gport));
        json_object_object_add(o, "remote", ep_json(&c->paddr, c->pport));
        json_object_object_add(o, "result", json_object_new_string(result));
        json_object_object_add(o, "stall_ms", ms_since(w->t0_ns, c->first_data_ns));
        json_object_object_add(o, "answer_ms", ms_since(w->t0_ns, c->first_peer_ns));
        json_object_object_add(o, "bytes_to_guest",
                               json_object_new_int64((int64_t)c->bytes_to_guest));
        json_object_object_add(o, "bytes_from_guest",
                               json_object_new_int64((int64_t)c->bytes_from_guest));
        if (c->stale) { /* the evidence */
            json_object_object_add(o, "peer_ack", json_object_new_int64(c->stale_ack));
            json_object_object_add(o, "guest_snd_nxt", json_object_new_int64(c->snd_nxt));
        }
        json_object_array_add(arr, o);
    }
    json_object_object_add(rep, "connections", arr);
    recount(rep);
    return rep;
}

json_object *tap_watch_stale_list(json_object *report)
{
    json_object *out = json_object_new_array();
    json_object *conns = get(report, "connections");
    for (size_t i = 0; conns && i < json_object_array_length(conns); i++) {
        json_object *c = json_object_array_get_idx(conns, i);
        json_object *res = get(c, "result");
        if (!res || strcmp(json_object_get_string(res), "stale"))
            continue;
        json_object *k = json_object_new_object();
        json_object_object_add(k, "local", json_object_get(get(c, "local")));
        json_object_object_add(k, "remote", json_object_get(get(c, "remote")));
        json_object_array_add(out, k);
    }
    return out;
}

static bool same_ep(json_object *a, json_object *b)
{
    json_object *aa = get(a, "addr"), *ba = get(b, "addr");
    return aa && ba && !strcmp(json_object_get_string(aa), json_object_get_string(ba)) &&
           get_int(a, "port", -1) == get_int(b, "port", -2);
}

void tap_watch_mark_reset(json_object *report, json_object *reset_reply)
{
    json_object *conns = get(report, "connections");
    json_object *done = get(reset_reply, "connections");
    for (size_t i = 0; conns && done && i < json_object_array_length(done); i++) {
        json_object *d = json_object_array_get_idx(done, i);
        json_object *res = get(d, "result");
        if (!res || strcmp(json_object_get_string(res), "reset"))
            continue;
        for (size_t j = 0; j < json_object_array_length(conns); j++) {
            json_object *c = json_object_array_get_idx(conns, j);
            if (same_ep(get(c, "local"), get(d, "local")) &&
                same_ep(get(c, "remote"), get(d, "remote"))) {
                json_object_object_add(c, "result", json_object_new_string("reset"));
                json_object_object_add(c, "reset_because", json_object_new_string("stale"));
            }
        }
    }
    recount(report);
}
