/* tests/integration/tcp-repair-driver.c: real-kernel test of guest/tcp-repair.
 *
 * Run inside the "guest" network namespace; it creates the peer's sockets in --peer-ns and
 * drives a silent-drop gate (nft netdev ingress/egress) on --gate-dev in --router-ns, as the
 * host daemon's gate would on the tap. For each case and every connection:
 *   establish, pump checksummed streams both ways, shape the guest end into the wanted TCP
 *   state while the gate drops traffic, freeze + dump (checking the dumped queues byte for
 *   byte against what the application wrote and has not read), then either thaw in place
 *   (mode live) or close silently, rebuild in ANOTHER process from a serialized image and
 *   thaw the rebuilt socket (mode rebuild). Finally both ends finish their streams and the
 *   sha256 of all bytes sent must equal the sha256 of all bytes received, each direction.
 *
 *   tcp-repair-driver run --peer-ns P --router-ns R --gate-dev DEV --addr4 G,P --addr6 G,P
 *                         --port N --case NAME[,NAME...] [--family v4|v6|mapped]
 *                         [--mode live|rebuild] [--conns N] [--bytes N]
 *   tcp-repair-driver loopback             (rebuild of a loopback connection, big MSS)
 *   tcp-repair-driver rebuild-child FILE   (internal: fd 3 is where rebuilt fds go)
 *
 * Prints one line per case and "N passed, N failed" at the end. */
#include "common/log.h"
#include "common/macro.h"
#include "common/util.h"
#include "guest/tcp-repair.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/sockios.h>
#include <nftables/libnftables.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#define CHUNK (64u << 10)

enum gate_mode { GATE_OFF, GATE_BOTH, GATE_OUT };

struct side {
    int fd;
    uint64_t sent, rcvd, write_limit, total;
    bool read_on, shut_wanted, shut_done, eof;
    EVP_MD_CTX *tx, *rx;
};

struct conn {
    uint32_t id;
    struct side s[2]; /* 0 guest, 1 peer */
    struct tcp_conn_state st;
};

struct opts {
    const char *peer_ns, *router_ns, *gate_dev, *cases, *family, *mode;
    char g4[64], p4[64], g6[64], p6[64];
    int port;
    uint32_t conns;
    uint64_t bytes;
};

struct ctx {
    struct opts o;
    int ns_self, ns_peer, ns_router;
    struct nft_ctx *nft;
    struct conn *c;
    uint32_t n;
    uint64_t last_progress_ms;
    char err[512];
    uint8_t *buf, *gbuf;
};

struct case_def {
    const char *name;
    uint8_t state;
    bool fullrecv, big;
    bool keepalive; /* idle connection, aggressive keepalive and user timeout, long freeze */
};

static const struct case_def cases[] = {
    {"established", TCP_ESTABLISHED, false, false, false},
    {"fullrecv", TCP_ESTABLISHED, true, false, false},
    {"big", TCP_ESTABLISHED, false, true, false},
    {"fin_wait1", TCP_FIN_WAIT1, false, false, false},
    {"fin_wait2", TCP_FIN_WAIT2, false, false, false},
    {"close_wait", TCP_CLOSE_WAIT, false, false, false},
    {"last_ack", TCP_LAST_ACK, false, false, false},
    {"closing", TCP_CLOSING, false, false, false},
    {"keepalive", TCP_ESTABLISHED, false, false, true},
};

/* Settings the guest sockets carry (see apply_settings). */
struct settings {
    int idle, intvl, cnt, uto;
};
static const struct settings normal_settings = {7, 3, 4, 12345};
/* Would kill an idle connection silenced for about 2 s: the freeze must suspend them. */
static const struct settings deadly_settings = {1, 1, 1, 1500};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

_printf_(2, 3) static int fail(struct ctx *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err, sizeof(x->err), fmt, ap);
    va_end(ap);
    return -1;
}

/* Deterministic stream content: 8 bytes per splitmix64 step of (seed, offset / 8). */
static void gen_fill(uint64_t seed, uint64_t off, uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len;) {
        uint64_t blk = (off + i) / 8, z = seed * 0x9e3779b97f4a7c15ull + blk + 1;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        for (unsigned b = (unsigned)((off + i) % 8); b < 8 && i < len; b++, i++)
            buf[i] = (uint8_t)(z >> (8 * b));
    }
}

static uint64_t seed_of(const struct conn *c, int side)
{
    return (uint64_t)c->id * 2 + (uint64_t)side + 1;
}

static bool gen_equal(struct ctx *x, uint64_t seed, uint64_t off, const uint8_t *data, size_t len)
{
    for (size_t done = 0; done < len;) {
        size_t n = len - done < CHUNK ? len - done : CHUNK;
        gen_fill(seed, off + done, x->gbuf, n);
        if (memcmp(x->gbuf, data + done, n) != 0)
            return false;
        done += n;
    }
    return true;
}

static int enter_ns(int fd)
{
    return setns(fd, CLONE_NEWNET) < 0 ? negative_errno() : 0;
}

static int open_ns(const char *name)
{
    char p[256];
    snprintf(p, sizeof(p), "/run/netns/%s", name);
    return open(p, O_RDONLY | O_CLOEXEC);
}

/* --- gate ------------------------------------------------------------------------------ */

static int nft_run(struct ctx *x, const char *cmd)
{
    int r = enter_ns(x->ns_router);
    if (r < 0)
        return r;
    r = nft_run_cmd_from_buffer(x->nft, cmd);
    const char *e = nft_ctx_get_error_buffer(x->nft);
    if (r != 0)
        fprintf(stderr, "nft: %s: %s\n", cmd, e ? e : "");
    int r2 = enter_ns(x->ns_self);
    return r != 0 ? -EIO : r2;
}

static int gate_init(struct ctx *x)
{
    char cmd[1024];
    /* libnftables opens its netlink socket in nft_ctx_new(), in the current namespace. */
    if (enter_ns(x->ns_router) < 0)
        return -errno;
    x->nft = nft_ctx_new(NFT_CTX_DEFAULT);
    if (enter_ns(x->ns_self) < 0 || !x->nft)
        return -ENOMEM;
    nft_ctx_buffer_output(x->nft);
    nft_ctx_buffer_error(x->nft);
    snprintf(cmd, sizeof(cmd),
             "add table netdev ncktest_gate\n"
             "add chain netdev ncktest_gate in { type filter hook ingress device \"%s\" "
             "priority 0; policy accept; }\n"
             "add chain netdev ncktest_gate out { type filter hook egress device \"%s\" "
             "priority 0; policy accept; }\n",
             x->o.gate_dev, x->o.gate_dev);
    return nft_run(x, cmd);
}

/* GATE_BOTH drops everything between guest and peer; GATE_OUT only guest -> peer (what
 * enters the router from the guest's link). */
static int gate_set(struct ctx *x, enum gate_mode m)
{
    const char *cmd = m == GATE_OFF   ? "flush chain netdev ncktest_gate in\n"
                                        "flush chain netdev ncktest_gate out\n"
                      : m == GATE_OUT ? "flush chain netdev ncktest_gate in\n"
                                        "flush chain netdev ncktest_gate out\n"
                                        "add rule netdev ncktest_gate in counter drop\n"
                                      : "flush chain netdev ncktest_gate in\n"
                                        "flush chain netdev ncktest_gate out\n"
                                        "add rule netdev ncktest_gate in counter drop\n"
                                        "add rule netdev ncktest_gate out counter drop\n";
    int r = nft_run(x, cmd);
    if (getenv("TCPR_DEBUG")) {
        char sh[256];
        snprintf(sh, sizeof(sh), "ip netns exec %s nft list ruleset >&2", x->o.router_ns);
        (void)!system(sh);
    }
    return r;
}

/* --- streams --------------------------------------------------------------------------- */

static int side_write(struct ctx *x, struct conn *c, int si)
{
    struct side *s = &c->s[si];
    while (s->sent < s->write_limit) {
        size_t n = s->write_limit - s->sent < CHUNK ? s->write_limit - s->sent : CHUNK;
        gen_fill(seed_of(c, si), s->sent, x->buf, n);
        ssize_t w = send(s->fd, x->buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return 0;
            return fail(x, "conn %u side %d: send: %m", c->id, si);
        }
        EVP_DigestUpdate(s->tx, x->buf, (size_t)w);
        s->sent += (uint64_t)w;
        x->last_progress_ms = now_ms();
    }
    if (s->shut_wanted && !s->shut_done && s->sent == s->total) {
        if (shutdown(s->fd, SHUT_WR) < 0)
            return fail(x, "conn %u side %d: shutdown: %m", c->id, si);
        s->shut_done = true;
        x->last_progress_ms = now_ms();
    }
    return 0;
}

static int side_read(struct ctx *x, struct conn *c, int si)
{
    struct side *s = &c->s[si];
    for (;;) {
        ssize_t r = recv(s->fd, x->buf, CHUNK, MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return 0;
            return fail(x, "conn %u side %d: recv after %llu bytes: %m", c->id, si,
                        (unsigned long long)s->rcvd);
        }
        if (r == 0) {
            s->eof = true;
            x->last_progress_ms = now_ms();
            return 0;
        }
        if (!gen_equal(x, seed_of(c, !si), s->rcvd, x->buf, (size_t)r))
            return fail(x, "conn %u side %d: wrong bytes at offset %llu", c->id, si,
                        (unsigned long long)s->rcvd);
        EVP_DigestUpdate(s->rx, x->buf, (size_t)r);
        s->rcvd += (uint64_t)r;
        if (s->rcvd > c->s[!si].total)
            return fail(x, "conn %u side %d: more bytes than were sent", c->id, si);
        x->last_progress_ms = now_ms();
    }
}

enum cond { C_IDLE, C_STATE, C_DONE, C_DELIVERED };

static int guest_state(int fd)
{
    struct tcp_info ti;
    socklen_t sl = sizeof(ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &sl) < 0)
        return -1;
    return ti.tcpi_state;
}

static bool cond_met(struct ctx *x, enum cond cd, int arg)
{
    switch (cd) {
    case C_IDLE:
        return now_ms() - x->last_progress_ms >= (uint64_t)arg;
    case C_STATE:
        for (uint32_t i = 0; i < x->n; i++)
            if (guest_state(x->c[i].s[0].fd) != arg)
                return false;
        return true;
    case C_DONE:
        for (uint32_t i = 0; i < x->n; i++)
            for (int si = 0; si < 2; si++) {
                struct side *s = &x->c[i].s[si];
                if (s->sent != s->total || !s->shut_done || !s->eof)
                    return false;
            }
        return true;
    case C_DELIVERED: /* every byte written so far was read by the other end */
        for (uint32_t i = 0; i < x->n; i++)
            for (int si = 0; si < 2; si++)
                if (x->c[i].s[si].sent < x->c[i].s[si].write_limit ||
                    x->c[i].s[!si].rcvd != x->c[i].s[si].sent)
                    return false;
        return true;
    }
    return false;
}

static int pump(struct ctx *x, enum cond cd, int arg, int timeout_ms)
{
    if (getenv("TCPR_DEBUG"))
        fprintf(stderr,
                "pump cond %d arg %d; guest sent %llu rcvd %llu, peer sent %llu rcvd %llu\n", cd,
                arg, (unsigned long long)x->c[0].s[0].sent, (unsigned long long)x->c[0].s[0].rcvd,
                (unsigned long long)x->c[0].s[1].sent, (unsigned long long)x->c[0].s[1].rcvd);
    _cleanup_free_ struct pollfd *pf = calloc((size_t)x->n * 2, sizeof(*pf));
    _cleanup_free_ uint32_t *who = calloc((size_t)x->n * 2, sizeof(*who));
    if (!pf || !who)
        return fail(x, "out of memory");
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    x->last_progress_ms = now_ms();
    for (;;) {
        for (uint32_t i = 0; i < x->n; i++)
            for (int si = 0; si < 2; si++)
                if (side_write(x, &x->c[i], si) < 0)
                    return -1;
        if (cond_met(x, cd, arg))
            return 0;
        if (now_ms() > deadline)
            return fail(x, "timeout waiting (cond %d arg %d)", cd, arg);
        nfds_t k = 0;
        for (uint32_t i = 0; i < x->n; i++)
            for (int si = 0; si < 2; si++) {
                struct side *s = &x->c[i].s[si];
                short ev = 0;
                if (s->sent < s->write_limit)
                    ev |= POLLOUT;
                if (s->read_on && !s->eof)
                    ev |= POLLIN;
                if (!ev)
                    continue;
                pf[k] = (struct pollfd){.fd = s->fd, .events = ev};
                who[k++] = i * 2 + (uint32_t)si;
            }
        int r = poll(pf, k, 20);
        if (r < 0 && errno != EINTR)
            return fail(x, "poll: %m");
        for (nfds_t j = 0; r > 0 && j < k; j++) {
            if (!pf[j].revents)
                continue;
            struct conn *c = &x->c[who[j] / 2];
            int si = (int)(who[j] % 2);
            if (c->s[si].read_on && side_read(x, c, si) < 0)
                return -1;
        }
    }
}

static void set_all(struct ctx *x, int si, bool read_on)
{
    for (uint32_t i = 0; i < x->n; i++)
        x->c[i].s[si].read_on = read_on;
}

static void limit_all(struct ctx *x, int si, uint64_t limit, bool shut)
{
    for (uint32_t i = 0; i < x->n; i++) {
        struct side *s = &x->c[i].s[si];
        s->write_limit = limit < s->total ? limit : s->total;
        s->shut_wanted = shut;
    }
}

/* --- setup ----------------------------------------------------------------------------- */

static int parse_addr(int family, const char *s, uint16_t port, struct sockaddr_storage *ss,
                      socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        *len = sizeof(*a);
        return inet_pton(AF_INET, s, &a->sin_addr) == 1 ? 0 : -EINVAL;
    }
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    *len = sizeof(*a);
    if (strchr(s, ':'))
        return inet_pton(AF_INET6, s, &a->sin6_addr) == 1 ? 0 : -EINVAL;
    char m[80];
    snprintf(m, sizeof(m), "::ffff:%s", s); /* v4-mapped */
    return inet_pton(AF_INET6, m, &a->sin6_addr) == 1 ? 0 : -EINVAL;
}

static int set_bufs(int fd, int bytes)
{
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof(bytes)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) < 0)
        return negative_errno();
    return 0;
}

static int establish(struct ctx *x, const struct case_def *cd, int port)
{
    const char *fam = x->o.family;
    bool v6 = strcmp(fam, "v6") == 0, mapped = strcmp(fam, "mapped") == 0;
    int pfam = v6 ? AF_INET6 : AF_INET, gfam = (v6 || mapped) ? AF_INET6 : AF_INET;
    struct sockaddr_storage la, ca, ga;
    socklen_t ll, cl, gl;
    if (parse_addr(pfam, v6 ? x->o.p6 : x->o.p4, (uint16_t)port, &la, &ll) < 0 ||
        parse_addr(gfam, v6 ? x->o.p6 : x->o.p4, (uint16_t)port, &ca, &cl) < 0 ||
        parse_addr(gfam, v6 ? x->o.g6 : x->o.g4, 0, &ga, &gl) < 0)
        return fail(x, "bad addresses");

    if (enter_ns(x->ns_peer) < 0)
        return fail(x, "setns peer: %m");
    _cleanup_close_ int lfd = socket(pfam, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (enter_ns(x->ns_self) < 0 || lfd < 0)
        return fail(x, "listener socket: %m");
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&la, ll) < 0 || listen(lfd, 4096) < 0)
        return fail(x, "listen: %m");

    int gbuf = cd->big ? (8 << 20) : (1 << 20);
    _cleanup_free_ int *by_port = malloc(65536 * sizeof(int));
    if (!by_port)
        return fail(x, "out of memory");
    memset(by_port, 0xff, 65536 * sizeof(int));
    for (uint32_t i = 0; i < x->n; i++) {
        struct conn *c = &x->c[i];
        int fd = socket(gfam, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            return fail(x, "socket: %m");
        c->s[0].fd = fd;
        int zero = 0;
        if (gfam == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
        /* Big buffers so whole bursts queue up while the gate drops. */
        if (set_bufs(fd, gbuf) < 0)
            return fail(x, "buffers: %m");
        if (bind(fd, (struct sockaddr *)&ga, gl) < 0)
            return fail(x, "bind: %m");
        if (connect(fd, (struct sockaddr *)&ca, cl) < 0 && errno != EINPROGRESS)
            return fail(x, "connect: %m");
        struct sockaddr_storage me;
        socklen_t ml = sizeof(me);
        getsockname(fd, (struct sockaddr *)&me, &ml);
        uint16_t p = ntohs(me.ss_family == AF_INET ? ((struct sockaddr_in *)&me)->sin_port
                                                   : ((struct sockaddr_in6 *)&me)->sin6_port);
        by_port[p] = (int)i;
    }
    uint32_t got = 0;
    uint64_t deadline = now_ms() + 30000;
    while (got < x->n) {
        struct pollfd pfd = {.fd = lfd, .events = POLLIN};
        if (now_ms() > deadline)
            return fail(x, "accepted only %u of %u", got, x->n);
        poll(&pfd, 1, 100);
        for (;;) {
            struct sockaddr_storage pa;
            socklen_t pl = sizeof(pa);
            int afd = accept4(lfd, (struct sockaddr *)&pa, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (afd < 0)
                break;
            uint16_t p = ntohs(pa.ss_family == AF_INET ? ((struct sockaddr_in *)&pa)->sin_port
                                                       : ((struct sockaddr_in6 *)&pa)->sin6_port);
            if (by_port[p] < 0 || x->c[by_port[p]].s[1].fd >= 0) {
                close(afd);
                return fail(x, "unexpected connection from port %u", p);
            }
            x->c[by_port[p]].s[1].fd = afd;
            got++;
        }
    }
    return 0;
}

/* --- image of the test's own (the JSON image is socket-image.c's) ---------------------- */

static int write_q(FILE *f, const struct tcp_repair_queue *q)
{
    return fwrite(&q->len, sizeof(q->len), 1, f) == 1 &&
                   (q->len == 0 || fwrite(q->data, q->len, 1, f) == 1)
               ? 0
               : -EIO;
}

static int read_q(FILE *f, struct tcp_repair_queue *q)
{
    q->data = NULL;
    if (fread(&q->len, sizeof(q->len), 1, f) != 1 || q->len > TCP_REPAIR_MAX_QUEUE)
        return -EIO;
    if (q->len == 0)
        return 0;
    q->data = malloc(q->len);
    if (!q->data || fread(q->data, q->len, 1, f) != 1)
        return -EIO;
    return 0;
}

static int save_image(struct ctx *x, const char *path)
{
    _cleanup_fclose_ FILE *f = fopen(path, "we");
    if (!f)
        return -errno;
    if (fwrite(&x->n, sizeof(x->n), 1, f) != 1)
        return -EIO;
    for (uint32_t i = 0; i < x->n; i++) {
        struct tcp_conn_state flat = x->c[i].st;
        flat.unacked = flat.unsent = flat.recv = (struct tcp_repair_queue){0};
        if (fwrite(&flat, sizeof(flat), 1, f) != 1 || write_q(f, &x->c[i].st.unacked) < 0 ||
            write_q(f, &x->c[i].st.unsent) < 0 || write_q(f, &x->c[i].st.recv) < 0)
            return -EIO;
    }
    return fflush(f) == 0 ? 0 : -EIO;
}

static int send_fds(int sock, const int *fds, size_t n)
{
    char dummy = 'f';
    struct iovec iov = {.iov_base = &dummy, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int) * 200)];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr m = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = u.buf,
                       .msg_controllen = CMSG_SPACE(sizeof(int) * n)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
    return sendmsg(sock, &m, 0) == 1 ? 0 : -EIO;
}

static int recv_fds(int sock, int *fds, size_t n)
{
    char dummy;
    struct iovec iov = {.iov_base = &dummy, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int) * 200)];
        struct cmsghdr align;
    } u;
    struct msghdr m = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = u.buf,
                       .msg_controllen = CMSG_SPACE(sizeof(int) * n)};
    if (recvmsg(sock, &m, MSG_CMSG_CLOEXEC) != 1)
        return -EIO;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    if (!cm || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len != CMSG_LEN(sizeof(int) * n))
        return -EIO;
    memcpy(fds, CMSG_DATA(cm), sizeof(int) * n);
    return 0;
}

/* The other process: reads the image, rebuilds every connection, hands the fds back. */
static int rebuild_child(const char *path)
{
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    uint32_t n;
    if (!f || fread(&n, sizeof(n), 1, f) != 1 || n > 100000)
        return 2;
    int fds[200];
    size_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct tcp_conn_state st;
        if (fread(&st, sizeof(st), 1, f) != 1)
            return 2;
        st.unacked = st.unsent = st.recv = (struct tcp_repair_queue){0};
        if (read_q(f, &st.unacked) < 0 || read_q(f, &st.unsent) < 0 || read_q(f, &st.recv) < 0) {
            tcp_conn_state_free(&st);
            return 2;
        }
        int fd = tcp_repair_rebuild(&st);
        tcp_conn_state_free(&st);
        if (fd < 0) {
            fprintf(stderr, "rebuild-child: connection %u (%s): %s\n", i, tcp_state_name(st.state),
                    strerror(-fd));
            return 1;
        }
        fds[k++] = fd;
        if (k == ELEMENTSOF(fds) || i + 1 == n) {
            if (send_fds(3, fds, k) < 0)
                return 2;
            for (size_t j = 0; j < k; j++)
                close(fds[j]);
            k = 0;
        }
    }
    return 0;
}

static int rebuild_elsewhere(struct ctx *x, const char *self, double *secs)
{
    char path[] = "/tmp/ncktest-tcp-image-XXXXXX";
    _cleanup_close_ int tfd = mkstemp(path);
    if (tfd < 0)
        return fail(x, "mkstemp: %m");
    if (save_image(x, path) < 0) {
        unlink(path);
        return fail(x, "save image failed");
    }
    /* The old sockets must be gone before their 4-tuples can be reused. */
    for (uint32_t i = 0; i < x->n; i++) {
        int r = tcp_repair_close_silently(x->c[i].s[0].fd);
        x->c[i].s[0].fd = -1;
        if (r < 0) {
            unlink(path);
            return fail(x, "close_silently: %s", strerror(-r));
        }
    }
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
        return fail(x, "socketpair: %m");
    double t0 = now_s();
    pid_t pid = fork();
    if (pid < 0)
        return fail(x, "fork: %m");
    if (pid == 0) {
        if (dup2(sp[1], 3) < 0)
            _exit(2);
        execl(self, self, "rebuild-child", path, (char *)NULL);
        _exit(127);
    }
    close(sp[1]);
    int rc = 0;
    for (uint32_t i = 0; i < x->n && rc == 0; i += 200) {
        size_t k = x->n - i < 200 ? x->n - i : 200;
        int fds[200];
        if (recv_fds(sp[0], fds, k) < 0) {
            rc = fail(x, "rebuild child sent no fds (see its stderr)");
            break;
        }
        for (size_t j = 0; j < k; j++) {
            x->c[i + j].s[0].fd = fds[j];
            fcntl(fds[j], F_SETFL, O_NONBLOCK);
        }
    }
    close(sp[0]);
    int status;
    waitpid(pid, &status, 0);
    *secs = now_s() - t0;
    unlink(path);
    if (rc == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
        rc = fail(x, "rebuild child failed (status %d)", status);
    return rc;
}

/* --- one case -------------------------------------------------------------------------- */

static int check_dump(struct ctx *x, struct conn *c, uint8_t want_state)
{
    struct tcp_conn_state *st = &c->st;
    if (st->state != want_state)
        return fail(x, "conn %u: dumped state %s, wanted %s", c->id, tcp_state_name(st->state),
                    tcp_state_name(want_state));
    uint64_t sq = (uint64_t)st->unacked.len + st->unsent.len;
    /* The send queue is the tail of what the application wrote... */
    if (sq > c->s[0].sent)
        return fail(x, "conn %u: send queue larger than what was written", c->id);
    uint64_t off = c->s[0].sent - sq;
    if (!gen_equal(x, seed_of(c, 0), off, st->unacked.data, st->unacked.len) ||
        !gen_equal(x, seed_of(c, 0), off + st->unacked.len, st->unsent.data, st->unsent.len))
        return fail(x, "conn %u: dumped send queue differs from the written stream", c->id);
    /* ...and the receive queue is what it will read next. */
    if (!gen_equal(x, seed_of(c, 1), c->s[0].rcvd, st->recv.data, st->recv.len))
        return fail(x, "conn %u: dumped receive queue differs from the peer's stream", c->id);
    return 0;
}

static bool queue_eq(const struct tcp_repair_queue *a, const struct tcp_repair_queue *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* The send queue must hold the same bytes. The boundary between unacked and unsent may only
 * move forward: repair mode does not stop timers, and a loss probe or retransmission timeout
 * of the rebuilt socket may send (into the gate) what was unsent. */
static bool sendq_eq(const struct tcp_conn_state *now, const struct tcp_conn_state *was)
{
    uint32_t n = now->unacked.len + now->unsent.len;
    if (n != was->unacked.len + was->unsent.len || now->unacked.len < was->unacked.len)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t a =
            i < now->unacked.len ? now->unacked.data[i] : now->unsent.data[i - now->unacked.len];
        uint8_t b =
            i < was->unacked.len ? was->unacked.data[i] : was->unsent.data[i - was->unacked.len];
        if (a != b)
            return false;
    }
    return true;
}

/* Segment size in use, to check that a rebuilt socket is not stuck at the default MSS. */
static uint32_t snd_mss(int fd)
{
    struct tcp_info ti;
    socklen_t sl = sizeof(ti);
    return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &sl) < 0 ? 0 : ti.tcpi_snd_mss;
}

/* A rebuilt socket (still in repair mode) must dump to the image it was built from. */
static int check_rebuilt(struct ctx *x, struct conn *c)
{
    struct tcp_conn_state now = c->st, *was = &c->st;
    now.unacked = now.unsent = now.recv = (struct tcp_repair_queue){0};
    int r = tcp_repair_dump(c->s[0].fd, &now);
    if (r < 0)
        return fail(x, "conn %u: dump of the rebuilt socket: %s", c->id, strerror(-r));
    const char *what = NULL;
    if (now.state != was->state)
        what = "state";
    else if (now.snd_seq != was->snd_seq || now.rcv_seq != was->rcv_seq)
        what = "sequence numbers";
    else if (!queue_eq(&now.recv, &was->recv) || !sendq_eq(&now, was))
        what = "queues";
    else if (now.mss != was->mss || now.opt_sack != was->opt_sack ||
             now.opt_timestamps != was->opt_timestamps || now.opt_wscale != was->opt_wscale ||
             now.snd_wscale != was->snd_wscale || now.rcv_wscale != was->rcv_wscale)
        what = "options";
    else if (now.has_window != was->has_window ||
             memcmp(&now.window, &was->window, sizeof(now.window)) != 0)
        what = "window";
    else if (memcmp(&now.local, &was->local, sizeof(now.local)) != 0 ||
             memcmp(&now.remote, &was->remote, sizeof(now.remote)) != 0 ||
             now.sock_family != was->sock_family || now.v6only != was->v6only)
        what = "addresses";
    else if (now.timestamp - was->timestamp > 60000) /* TSval (ms) moves on, never back */
        what = "timestamp";
    else if (snd_mss(c->s[0].fd) + 40 < was->mss) /* at most the options' share below */
        what = "segment size in use";
    if (what && getenv("TCPR_DEBUG"))
        fprintf(stderr,
                "was: %s snd %u rcv %u q %u/%u/%u win %u %u %u %u %u ts %u\n"
                "now: %s snd %u rcv %u q %u/%u/%u win %u %u %u %u %u ts %u\n",
                tcp_state_name(was->state), was->snd_seq, was->rcv_seq, was->unacked.len,
                was->unsent.len, was->recv.len, was->window.snd_wl1, was->window.snd_wnd,
                was->window.max_window, was->window.rcv_wnd, was->window.rcv_wup, was->timestamp,
                tcp_state_name(now.state), now.snd_seq, now.rcv_seq, now.unacked.len,
                now.unsent.len, now.recv.len, now.window.snd_wl1, now.window.snd_wnd,
                now.window.max_window, now.window.rcv_wnd, now.window.rcv_wup, now.timestamp);
    tcp_conn_state_free(&now);
    if (what)
        return fail(x, "conn %u: rebuilt socket differs from its image in %s", c->id, what);
    return 0;
}

/* Application settings the guest sockets carry through freeze/thaw and rebuild. Cork only
 * on odd connections (it delays partial segments), nodelay on even ones. */
static int setting(int fd, int level, int name)
{
    int v = -1;
    socklen_t l = sizeof(v);
    getsockopt(fd, level, name, &v, &l);
    return v;
}

static int apply_settings(struct ctx *x, struct conn *c, const struct settings *set)
{
    int fd = c->s[0].fd, on = 1, odd = (int)(c->id & 1);
    if (setsockopt(fd, IPPROTO_TCP, odd ? TCP_CORK : TCP_NODELAY, &on, sizeof(on)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &set->idle, sizeof(int)) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &set->intvl, sizeof(int)) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &set->cnt, sizeof(int)) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &set->uto, sizeof(int)) < 0)
        return fail(x, "conn %u: settings: %m", c->id);
    return 0;
}

/* frozen: deadlines suspended and settings saved; otherwise: all settings as applied. */
static int check_settings(struct ctx *x, struct conn *c, const struct settings *set, bool frozen)
{
    int fd = c->s[0].fd, odd = (int)(c->id & 1);
    if (frozen) {
        if (setting(fd, SOL_SOCKET, SO_KEEPALIVE) != 0 ||
            setting(fd, IPPROTO_TCP, TCP_USER_TIMEOUT) != 0 ||
            setting(fd, IPPROTO_TCP, TCP_REPAIR) != 1)
            return fail(x, "conn %u: keepalive or user timeout not suspended while frozen", c->id);
        const struct tcp_conn_state *st = &c->st;
        if (!st->keepalive.enabled || st->user_timeout_ms != (uint32_t)set->uto ||
            st->nodelay != !odd || st->cork != odd || st->keepalive.idle != set->idle ||
            st->keepalive.intvl != set->intvl || st->keepalive.cnt != set->cnt)
            return fail(x, "conn %u: freeze saved the wrong settings", c->id);
        return 0;
    }
    if (setting(fd, IPPROTO_TCP, TCP_REPAIR) != 0 || setting(fd, SOL_SOCKET, SO_KEEPALIVE) != 1 ||
        setting(fd, IPPROTO_TCP, TCP_KEEPIDLE) != set->idle ||
        setting(fd, IPPROTO_TCP, TCP_KEEPINTVL) != set->intvl ||
        setting(fd, IPPROTO_TCP, TCP_KEEPCNT) != set->cnt ||
        setting(fd, IPPROTO_TCP, TCP_USER_TIMEOUT) != set->uto ||
        setting(fd, IPPROTO_TCP, TCP_NODELAY) != !odd || setting(fd, IPPROTO_TCP, TCP_CORK) != odd)
        return fail(x, "conn %u: settings not restored by thaw", c->id);
    return 0;
}

/* Bring every guest end into cd->state with data queued, the gate dropping both ways. */
static int shape(struct ctx *x, const struct case_def *cd)
{
    uint64_t total = x->o.bytes, pre = total / 2, mid = pre + (total - pre) / 2;
    int r = 0;
    switch (cd->state) {
    case TCP_ESTABLISHED:
        if (cd->keepalive) {
            /* Idle: everything delivered, nothing outstanding, so keepalive is what runs. */
            if (pump(x, C_DELIVERED, 0, 60000) < 0)
                return -1;
            return gate_set(x, GATE_BOTH);
        }
        if (cd->fullrecv) {
            /* The guest stops reading; the peer writes until the guest's window is shut. */
            set_all(x, 0, false);
            limit_all(x, 1, total, false);
            limit_all(x, 0, pre, false);
            if (pump(x, C_IDLE, 500, 60000) < 0)
                return -1;
        } else {
            set_all(x, 0, false); /* receive queue fills while we shape */
            limit_all(x, 1, mid, false);
            if (pump(x, C_IDLE, 200, 60000) < 0)
                return -1;
        }
        if (gate_set(x, GATE_BOTH) < 0)
            return fail(x, "gate");
        /* A first burst leaves as far as cwnd allows and is lost (unacked); after the RTO
         * collapses cwnd the rest stays queued (unsent). */
        limit_all(x, 0, mid, false);
        if (!cd->fullrecv)
            limit_all(x, 1, mid + (total - mid) / 2, false);
        if (pump(x, C_IDLE, 300, 60000) < 0)
            return -1;
        limit_all(x, 0, total, false);
        if (!cd->fullrecv)
            limit_all(x, 1, total, false);
        return pump(x, C_IDLE, 100, 60000);
    case TCP_FIN_WAIT1:
        set_all(x, 0, false);
        limit_all(x, 1, mid, false);
        if (pump(x, C_IDLE, 200, 60000) < 0 || gate_set(x, GATE_BOTH) < 0)
            return -1;
        limit_all(x, 0, mid, false);
        if (pump(x, C_IDLE, 300, 60000) < 0)
            return -1;
        limit_all(x, 0, total, true);
        limit_all(x, 1, total, false);
        if (pump(x, C_IDLE, 100, 60000) < 0)
            return -1;
        return pump(x, C_STATE, TCP_FIN_WAIT1, 5000);
    case TCP_FIN_WAIT2:
        /* Our FIN goes through and is acknowledged; the peer keeps sending. */
        limit_all(x, 0, total, true);
        if (pump(x, C_STATE, TCP_FIN_WAIT2, 20000) < 0)
            return -1;
        set_all(x, 0, false);
        limit_all(x, 1, mid, false);
        if (pump(x, C_IDLE, 200, 60000) < 0 || gate_set(x, GATE_BOTH) < 0)
            return -1;
        limit_all(x, 1, total, false);
        return pump(x, C_IDLE, 200, 60000);
    case TCP_CLOSE_WAIT:
    case TCP_LAST_ACK:
        /* The peer's data and FIN land in the receive queue, unread. */
        set_all(x, 0, false);
        limit_all(x, 1, total, true);
        if (pump(x, C_STATE, TCP_CLOSE_WAIT, 20000) < 0 || pump(x, C_IDLE, 100, 60000) < 0)
            return -1;
        if (gate_set(x, GATE_BOTH) < 0)
            return -1;
        limit_all(x, 0, mid, false);
        if (pump(x, C_IDLE, 300, 60000) < 0)
            return -1;
        limit_all(x, 0, total, cd->state == TCP_LAST_ACK);
        if (pump(x, C_IDLE, 100, 60000) < 0)
            return -1;
        return pump(x, C_STATE, cd->state, 5000);
    case TCP_CLOSING:
        /* Simultaneous close: our FIN is dropped, the peer's arrives (with some data) and
         * does not acknowledge ours. */
        limit_all(x, 1, total - 8192, false);
        if (pump(x, C_DELIVERED, 0, 60000) < 0)
            return -1;
        set_all(x, 0, false);
        if (gate_set(x, GATE_OUT) < 0)
            return -1;
        limit_all(x, 0, total, true);
        if (pump(x, C_STATE, TCP_FIN_WAIT1, 5000) < 0)
            return -1;
        limit_all(x, 1, total, true);
        if (pump(x, C_STATE, TCP_CLOSING, 20000) < 0 || gate_set(x, GATE_BOTH) < 0)
            return -1;
        return pump(x, C_IDLE, 100, 60000);
    }
    return r;
}

static void conns_free(struct ctx *x)
{
    for (uint32_t i = 0; x->c && i < x->n; i++) {
        for (int si = 0; si < 2; si++) {
            if (x->c[i].s[si].fd >= 0)
                close(x->c[i].s[si].fd);
            EVP_MD_CTX_free(x->c[i].s[si].tx);
            EVP_MD_CTX_free(x->c[i].s[si].rx);
        }
        tcp_conn_state_free(&x->c[i].st);
    }
    free(x->c);
    x->c = NULL;
}

static int run_case(struct ctx *x, const struct case_def *cd, int port, const char *self)
{
    bool rebuild = strcmp(x->o.mode, "rebuild") == 0;
    x->err[0] = 0;
    x->c = calloc(x->n, sizeof(*x->c));
    if (!x->c)
        return fail(x, "out of memory");
    uint64_t total = x->o.bytes;
    for (uint32_t i = 0; i < x->n; i++) {
        x->c[i].id = i;
        for (int si = 0; si < 2; si++) {
            struct side *s = &x->c[i].s[si];
            s->fd = -1;
            s->total = total;
            s->read_on = true;
            s->tx = EVP_MD_CTX_new();
            s->rx = EVP_MD_CTX_new();
            if (!s->tx || !s->rx)
                return fail(x, "out of memory");
            EVP_DigestInit_ex(s->tx, EVP_sha256(), NULL);
            EVP_DigestInit_ex(s->rx, EVP_sha256(), NULL);
        }
    }
    if (gate_set(x, GATE_OFF) < 0 || establish(x, cd, port) < 0)
        return -1;
    const struct settings *set = cd->keepalive ? &deadly_settings : &normal_settings;
    for (uint32_t i = 0; i < x->n; i++)
        if (apply_settings(x, &x->c[i], set) < 0)
            return -1;

    /* Warm up: both directions flowing and read. */
    limit_all(x, 0, total / 4, false);
    limit_all(x, 1, total / 4, false);
    if (pump(x, C_DELIVERED, 0, 60000) < 0)
        return -1;
    if (shape(x, cd) < 0)
        return -1;

    double t0 = now_s(), t_dump_only = 0;
    for (uint32_t i = 0; i < x->n; i++) {
        int r = tcp_repair_freeze(x->c[i].s[0].fd, &x->c[i].st);
        double t1 = now_s();
        if (r >= 0)
            r = tcp_repair_dump(x->c[i].s[0].fd, &x->c[i].st);
        t_dump_only += now_s() - t1;
        if (r < 0)
            return fail(x, "conn %u: freeze/dump: %s", i, strerror(-r));
    }
    double t_freeze = now_s() - t0;
    if (getenv("TCPR_DEBUG"))
        fprintf(stderr, "freeze %.2f ms, dump %.2f ms\n", (t_freeze - t_dump_only) * 1e3,
                t_dump_only * 1e3);
    for (int k = getenv("TCPR_REDUMP") ? atoi(getenv("TCPR_REDUMP")) : 0; k > 0; k--) {
        double t1 = now_s(); /* profiling aid: dump the frozen sockets again */
        for (uint32_t i = 0; i < x->n; i++)
            if (tcp_repair_dump(x->c[i].s[0].fd, &x->c[i].st) < 0)
                return fail(x, "re-dump failed");
        fprintf(stderr, "re-dump %.2f ms\n", (now_s() - t1) * 1e3);
    }
    for (uint32_t i = 0; i < x->n; i++) {
        /* A second freeze is a no-op that keeps the first one's settings. */
        if (i == 0 && tcp_repair_freeze(x->c[i].s[0].fd, &x->c[i].st) < 0)
            return fail(x, "second freeze failed");
        if (check_settings(x, &x->c[i], set, true) < 0)
            return -1;
    }
    uint64_t q_unacked = 0, q_unsent = 0, q_recv = 0, max_snd = 0, max_rcv = 0;
    uint32_t both = 0;
    for (uint32_t i = 0; i < x->n; i++) {
        struct tcp_conn_state *st = &x->c[i].st;
        if (check_dump(x, &x->c[i], cd->state) < 0)
            return -1;
        q_unacked += st->unacked.len;
        q_unsent += st->unsent.len;
        q_recv += st->recv.len;
        both += st->unacked.len && st->unsent.len;
        uint64_t sq = (uint64_t)st->unacked.len + st->unsent.len;
        max_snd = sq > max_snd ? sq : max_snd;
        max_rcv = st->recv.len > max_rcv ? st->recv.len : max_rcv;
    }
    if (cd->big && (max_snd < (2u << 20) || max_rcv < (2u << 20)))
        return fail(x, "big queues wanted, got send %llu recv %llu", (unsigned long long)max_snd,
                    (unsigned long long)max_rcv);
    if (cd->state == TCP_ESTABLISHED && !cd->fullrecv && !cd->big && !cd->keepalive && both == 0)
        return fail(x, "no connection had both unacked and unsent data");
    if (cd->fullrecv && q_recv == 0)
        return fail(x, "receive queues empty");

    /* Frozen: the peer retransmits into the drop meanwhile. The keepalive case holds past
     * its keepalive and user-timeout deadlines. */
    int hold_ms = cd->keepalive ? 3000 : 200;
    if (getenv("TCPR_UNSUSPEND")) /* negative control: re-arm what freeze suspended */
        for (uint32_t i = 0; i < x->n; i++) {
            int on = 1;
            setsockopt(x->c[i].s[0].fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
            setsockopt(x->c[i].s[0].fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &set->uto, sizeof(int));
        }
    usleep((useconds_t)hold_ms * 1000);
    double t_rebuild = 0;
    if (rebuild && rebuild_elsewhere(x, self, &t_rebuild) < 0)
        return -1;
    if (getenv("TCPR_DELAY_MS"))
        usleep((useconds_t)atoi(getenv("TCPR_DELAY_MS")) * 1000);
    for (uint32_t i = 0; rebuild && i < x->n; i++)
        if (check_rebuilt(x, &x->c[i]) < 0)
            return -1;
    if (gate_set(x, GATE_OFF) < 0)
        return fail(x, "gate off");
    t0 = now_s();
    for (uint32_t i = 0; i < x->n; i++) {
        int r = tcp_repair_thaw(x->c[i].s[0].fd, &x->c[i].st, true);
        if (r < 0)
            return fail(x, "conn %u: thaw: %s", i, strerror(-r));
    }
    double t_thaw = now_s() - t0;
    for (uint32_t i = 0; i < x->n; i++)
        if (check_settings(x, &x->c[i], set, false) < 0)
            return -1;

    /* Finish both streams; every byte must arrive once and in order. */
    set_all(x, 0, true);
    set_all(x, 1, true);
    limit_all(x, 0, total, true);
    limit_all(x, 1, total, true);
    if (pump(x, C_DONE, 0, 90000) < 0)
        return -1;
    for (uint32_t i = 0; i < x->n; i++)
        for (int si = 0; si < 2; si++) {
            unsigned char a[32], b[32];
            unsigned la = 0, lb = 0;
            EVP_DigestFinal_ex(x->c[i].s[si].tx, a, &la);
            EVP_DigestFinal_ex(x->c[i].s[!si].rx, b, &lb);
            if (x->c[i].s[!si].rcvd != total || la != lb || memcmp(a, b, la) != 0)
                return fail(x, "conn %u: %s stream: sha256 of sent != received", i,
                            si ? "peer->guest" : "guest->peer");
        }
    printf("  %u conn(s) %s: unacked %llu unsent %llu recv %llu bytes; freeze+dump %.2f ms, "
           "%s%.2f ms, thaw %.2f ms\n",
           x->n, tcp_state_name(cd->state), (unsigned long long)q_unacked,
           (unsigned long long)q_unsent, (unsigned long long)q_recv, t_freeze * 1e3,
           rebuild ? "close+rebuild in another process " : "hold ",
           rebuild ? t_rebuild * 1e3 : (double)hold_ms, t_thaw * 1e3);
    return 0;
}

/* A loopback connection has an MSS clamp (about 65483) above what TCP_MAXSEG accepts; it must
 * still dump, close silently, rebuild and carry on byte-exact. Runs in the current netns. */
static int loopback_check(void)
{
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    _cleanup_close_ int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t al = sizeof(a);
    if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &al) < 0)
        return fprintf(stderr, "loopback: listen: %m\n"), 1;
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) < 0)
        return fprintf(stderr, "loopback: connect: %m\n"), 1;
    _cleanup_close_ int p = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    if (p < 0 || write_full(c, "to-peer.", 8) < 0 || write_full(p, "to-guest", 8) < 0)
        return fprintf(stderr, "loopback: setup: %m\n"), 1;
    usleep(50 * 1000);
    struct tcp_conn_state st = {0};
    int r = tcp_repair_freeze(c, &st);
    if (r >= 0)
        r = tcp_repair_dump(c, &st);
    if (r >= 0)
        r = tcp_repair_close_silently(c);
    int n = r < 0 ? r : tcp_repair_rebuild(&st);
    if (n < 0) {
        tcp_conn_state_free(&st);
        return fprintf(stderr, "loopback: %s (mss %u)\n", strerror(-n), st.mss), 1;
    }
    r = tcp_repair_thaw(n, &st, true);
    char b1[8], b2[16];
    bool ok = r >= 0 && read_full(n, b1, 8) == 0 && memcmp(b1, "to-guest", 8) == 0 &&
              write_full(n, "+rebuilt", 8) == 0 && read_full(p, b2, 16) == 0 &&
              memcmp(b2, "to-peer.+rebuilt", 16) == 0;
    printf("%s: loopback rebuild (mss %u)\n", ok ? "ok" : "FAIL", st.mss);
    printf("%d passed, %d failed\n", ok, !ok);
    tcp_conn_state_free(&st);
    close(n);
    return ok ? 0 : 1;
}

static int split_pair(const char *arg, char *a, char *b)
{
    const char *comma = strchr(arg, ',');
    if (!comma || (size_t)(comma - arg) >= 64 || strlen(comma + 1) >= 64)
        return -EINVAL;
    memcpy(a, arg, (size_t)(comma - arg));
    a[comma - arg] = 0;
    strcpy(b, comma + 1);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "rebuild-child") == 0)
        return rebuild_child(argv[2]);
    if (argc == 2 && strcmp(argv[1], "loopback") == 0)
        return loopback_check();
    if (argc < 2 || strcmp(argv[1], "run") != 0) {
        fprintf(stderr, "usage: %s run OPTIONS | rebuild-child FILE\n", argv[0]);
        return 2;
    }
    struct ctx x = {.ns_self = -1, .ns_peer = -1, .ns_router = -1};
    x.o = (struct opts){.family = "v4", .mode = "live", .conns = 1, .bytes = 256 << 10};
    static const struct option lo[] = {
        {"peer-ns", 1, 0, 'p'}, {"router-ns", 1, 0, 'r'}, {"gate-dev", 1, 0, 'd'},
        {"addr4", 1, 0, '4'},   {"addr6", 1, 0, '6'},     {"port", 1, 0, 'P'},
        {"case", 1, 0, 'c'},    {"family", 1, 0, 'f'},    {"mode", 1, 0, 'm'},
        {"conns", 1, 0, 'n'},   {"bytes", 1, 0, 'b'},     {0, 0, 0, 0},
    };
    int o;
    optind = 2;
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (o) {
        case 'p':
            x.o.peer_ns = optarg;
            break;
        case 'r':
            x.o.router_ns = optarg;
            break;
        case 'd':
            x.o.gate_dev = optarg;
            break;
        case '4':
            if (split_pair(optarg, x.o.g4, x.o.p4) < 0)
                return 2;
            break;
        case '6':
            if (split_pair(optarg, x.o.g6, x.o.p6) < 0)
                return 2;
            break;
        case 'P':
            x.o.port = atoi(optarg);
            break;
        case 'c':
            x.o.cases = optarg;
            break;
        case 'f':
            x.o.family = optarg;
            break;
        case 'm':
            x.o.mode = optarg;
            break;
        case 'n':
            x.o.conns = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'b':
            x.o.bytes = strtoull(optarg, NULL, 10);
            break;
        default:
            return 2;
        }
    }
    if (!x.o.peer_ns || !x.o.router_ns || !x.o.gate_dev || !x.o.cases || !x.o.port || !x.o.conns ||
        x.o.bytes < 65536) {
        fprintf(stderr, "missing or bad options\n");
        return 2;
    }
    struct rlimit rl = {.rlim_cur = 16384, .rlim_max = 16384};
    setrlimit(RLIMIT_NOFILE, &rl);
    x.ns_self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    x.ns_peer = open_ns(x.o.peer_ns);
    x.ns_router = open_ns(x.o.router_ns);
    x.buf = malloc(CHUNK);
    x.gbuf = malloc(CHUNK);
    if (x.ns_self < 0 || x.ns_peer < 0 || x.ns_router < 0 || !x.buf || !x.gbuf) {
        fprintf(stderr, "setup: %m\n");
        return 2;
    }
    if (gate_init(&x) < 0) {
        fprintf(stderr, "cannot install the test gate\n");
        return 2;
    }
    x.n = x.o.conns;
    int passed = 0, failed = 0, port = x.o.port;
    _cleanup_free_ char *list = strdup(x.o.cases);
    char *save = NULL;
    for (char *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        const struct case_def *cd = NULL;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
            if (strcmp(cases[i].name, name) == 0)
                cd = &cases[i];
        if (!cd) {
            fprintf(stderr, "unknown case %s\n", name);
            failed++;
            continue;
        }
        uint64_t bytes = x.o.bytes;
        if (cd->big && x.o.bytes < (8u << 20))
            x.o.bytes = 8u << 20;
        int r = run_case(&x, cd, port++, argv[0]);
        x.o.bytes = bytes;
        printf("%s: %s %s %s x%u%s%s\n", r < 0 ? "FAIL" : "ok", name, x.o.family, x.o.mode, x.n,
               r < 0 ? ": " : "", r < 0 ? x.err : "");
        fflush(stdout);
        if (r < 0)
            failed++;
        else
            passed++;
        conns_free(&x);
    }
    (void)gate_set(&x, GATE_OFF);
    (void)nft_run(&x, "delete table netdev ncktest_gate\n");
    nft_ctx_free(x.nft);
    free(x.buf);
    free(x.gbuf);
    close(x.ns_self);
    close(x.ns_peer);
    close(x.ns_router);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
