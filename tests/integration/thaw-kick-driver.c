/* tests/integration/thaw-kick-driver.c: the thaw kick (guest/thaw-kick.h) on real sockets.
 *
 * Run inside the guest namespace; the peer listens in --peer-ns. Four connections stream to
 * the peer; the gate (--gate-on/--gate-off shell commands, a drop on the router) goes up, more
 * data is written and lost into it, and all four are frozen until the RTO of the three with
 * lost data has backed off at least MIN_BACKOFF times (a timeout of seconds). The gate lifts
 * and all are thawed with the window probe:
 *   A  kicked                 must move before the backed-off RTO could fire;
 *   B  not kicked (control)   same history as A: proves that A's timer had not fired;
 *   C  kicked, IP_RECVERR set  must be skipped (the ICMP would be an application error);
 *   D  kicked, idle            nothing unacknowledged: not needed.
 * The structural check: when A's peer has every byte, B's peer has none of its lost bytes and
 * B has not retransmitted since the thaw. No timing is asserted. Then every stream must
 * arrive byte-exact and no socket may carry an error.
 *
 *   thaw-kick-driver --peer-ns NS --local ADDR --peer ADDR --port N
 *                    --gate-on CMD --gate-off CMD                            (root) */
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "guest/tcp-repair.h"
#include "guest/thaw-kick.h"

#define N_CONNS     4
#define WARM_BYTES  8000u
#define LOST_BYTES  4000u
#define MIN_BACKOFF 4 /* RTO >= 16 x 200 ms: 3.2 s or more */

enum { A, B, C, D };
static const char *const names[N_CONNS] = {"A(kick)", "B(control)", "C(recverr)", "D(idle)"};

struct conn {
    int fd, pfd;        /* guest side, peer side */
    uint32_t sent, got; /* bytes written by the guest, read by the peer */
    bool bad;           /* a byte arrived that was not the one written there */
    struct tcp_conn_state st;
};

struct opts {
    const char *peer_ns, *local, *peer, *gate_on, *gate_off;
    int port;
};

static uint8_t pattern(int k, uint32_t i)
{
    return (uint8_t)(i * 7u + (uint32_t)k * 31u + (i >> 8));
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int parse_addr(const char *s, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, s, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof(*a4);
        return 0;
    }
    if (inet_pton(AF_INET6, s, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*a6);
        return 0;
    }
    return -EINVAL;
}

static int enter_ns_path(const char *path)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return negative_errno();
    return setns(fd, CLONE_NEWNET) < 0 ? negative_errno() : 0;
}

static int write_stream(struct conn *c, int k, uint32_t n)
{
    uint8_t buf[4096];
    while (n > 0) {
        uint32_t m = n < sizeof(buf) ? n : (uint32_t)sizeof(buf);
        for (uint32_t i = 0; i < m; i++)
            buf[i] = pattern(k, c->sent + i);
        ssize_t w = write(c->fd, buf, m);
        if (w <= 0)
            return w < 0 ? negative_errno() : -EIO;
        c->sent += (uint32_t)w;
        n -= (uint32_t)w;
    }
    return 0;
}

/* Read whatever the peer sockets hold, checking every byte against the pattern. */
static void drain_peer(struct conn *cs, int wait_ms)
{
    struct pollfd p[N_CONNS];
    for (int k = 0; k < N_CONNS; k++)
        p[k] = (struct pollfd){.fd = cs[k].pfd, .events = POLLIN};
    if (poll(p, N_CONNS, wait_ms) <= 0)
        return;
    for (int k = 0; k < N_CONNS; k++) {
        if (!(p[k].revents & POLLIN))
            continue;
        uint8_t buf[65536];
        ssize_t n = recv(cs[k].pfd, buf, sizeof(buf), MSG_DONTWAIT);
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != pattern(k, cs[k].got + (uint32_t)i))
                cs[k].bad = true;
        if (n > 0)
            cs[k].got += (uint32_t)n;
    }
}

static bool all_arrived(const struct conn *cs, unsigned mask)
{
    for (int k = 0; k < N_CONNS; k++)
        if ((mask & (1u << k)) && cs[k].got < cs[k].sent)
            return false;
    return true;
}

static int wait_arrived(struct conn *cs, unsigned mask, double limit_ms)
{
    double end = now_ms() + limit_ms;
    while (!all_arrived(cs, mask)) {
        if (now_ms() > end)
            return -ETIMEDOUT;
        drain_peer(cs, 10);
    }
    return 0;
}

static int info(int fd, struct tcp_info *ti)
{
    socklen_t sl = sizeof(*ti);
    return getsockopt(fd, IPPROTO_TCP, TCP_INFO, ti, &sl) < 0 ? negative_errno() : 0;
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "thaw-kick: FAIL: " __VA_ARGS__);                                          \
        fputc('\n', stderr);                                                                       \
        return 1;                                                                                  \
    } while (0)

static int run(const struct opts *o)
{
    struct sockaddr_storage la, pa;
    socklen_t ll, pl;
    struct conn cs[N_CONNS];
    struct tcp_info ti;
    char nspath[512];
    int r;

    memset(cs, 0, sizeof(cs));
    if (parse_addr(o->local, 0, &la, &ll) < 0 || parse_addr(o->peer, o->port, &pa, &pl) < 0)
        FAIL("bad address");
    snprintf(nspath, sizeof(nspath), "/run/netns/%s", o->peer_ns);
    _cleanup_close_ int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self < 0 || enter_ns_path(nspath) < 0)
        FAIL("cannot enter the peer namespace: %m");
    /* A v4-mapped peer address listens as plain IPv4 on the peer. */
    struct sockaddr_storage lpa = pa;
    socklen_t lpl = pl;
    if (pa.ss_family == AF_INET6 &&
        IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&pa)->sin6_addr)) {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&lpa;
        struct in_addr v4;
        memcpy(&v4, &((struct sockaddr_in6 *)&pa)->sin6_addr.s6_addr[12], 4);
        memset(&lpa, 0, sizeof(lpa));
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)o->port);
        a4->sin_addr = v4;
        lpl = sizeof(*a4);
    }
    _cleanup_close_ int ls = socket(lpa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(ls, (struct sockaddr *)&lpa, lpl) < 0 || listen(ls, 8) < 0)
        FAIL("peer listen: %m");
    if (setns(self, CLONE_NEWNET) < 0)
        FAIL("back to the guest namespace: %m");

    for (int k = 0; k < N_CONNS; k++) {
        cs[k].fd = socket(pa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (cs[k].fd < 0 || connect(cs[k].fd, (struct sockaddr *)&pa, pl) < 0)
            FAIL("connect %s: %m", names[k]);
        setsockopt(cs[k].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        cs[k].pfd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        if (cs[k].pfd < 0)
            FAIL("accept: %m");
    }
    /* The application asked for ICMP errors on C: a kick must never become one of them. */
    if (setsockopt(cs[C].fd, SOL_IP, IP_RECVERR, &one, sizeof(one)) < 0)
        FAIL("IP_RECVERR: %m");
    if (pa.ss_family == AF_INET6 &&
        setsockopt(cs[C].fd, SOL_IPV6, IPV6_RECVERR, &one, sizeof(one)) < 0)
        FAIL("IPV6_RECVERR: %m");

    for (int k = 0; k < N_CONNS; k++)
        if ((r = write_stream(&cs[k], k, WARM_BYTES)) < 0)
            FAIL("warm-up write: %s", strerror(-r));
    if (wait_arrived(cs, 0xf, 20000) < 0)
        FAIL("warm-up data did not arrive");

    if (system(o->gate_on) != 0)
        FAIL("gate on failed");
    for (int k = A; k <= C; k++)
        if ((r = write_stream(&cs[k], k, LOST_BYTES)) < 0)
            FAIL("write into the gate: %s", strerror(-r));
    usleep(50000);
    for (int k = 0; k < N_CONNS; k++)
        if ((r = tcp_repair_freeze(cs[k].fd, &cs[k].st)) < 0 ||
            (r = tcp_repair_dump(cs[k].fd, &cs[k].st)) < 0)
            FAIL("freeze/dump %s: %s", names[k], strerror(-r));

    /* Frozen, the RTO keeps firing into the gate and backing off. */
    double end = now_ms() + 30000;
    for (;;) {
        int lo = 255;
        for (int k = A; k <= C; k++) {
            if (info(cs[k].fd, &ti) < 0)
                FAIL("TCP_INFO: %m");
            lo = ti.tcpi_backoff < lo ? ti.tcpi_backoff : lo;
        }
        if (lo >= MIN_BACKOFF)
            break;
        if (now_ms() > end)
            FAIL("the RTO did not back off %d times in 30 s", MIN_BACKOFF);
        usleep(50000);
    }
    for (int k = 0; k < N_CONNS; k++)
        if (cs[k].got != WARM_BYTES)
            FAIL("%s: data crossed the gate", names[k]);

    if (system(o->gate_off) != 0)
        FAIL("gate off failed");
    double t0 = now_ms();
    struct thaw_kick_result kr[N_CONNS];
    memset(kr, 0, sizeof(kr));
    for (int k = 0; k < N_CONNS; k++) {
        if ((r = tcp_repair_thaw(cs[k].fd, &cs[k].st, true)) < 0)
            FAIL("thaw %s: %s", names[k], strerror(-r));
        if (k != B && (r = thaw_kick(cs[k].fd, &cs[k].st, &kr[k])) < 0)
            FAIL("kick %s: %s", names[k], strerror(-r));
    }
    struct tcp_info b0;
    if (info(cs[B].fd, &b0) < 0)
        FAIL("TCP_INFO: %m");
    printf("backoff at thaw: A %u (rto %u ms), B %u (rto %u ms)\n", kr[A].backoff, kr[A].rto_ms,
           b0.tcpi_backoff, b0.tcpi_rto / 1000);
    if (kr[A].verdict != THAW_KICK_RTO_REVERT || kr[A].sent < MIN_BACKOFF)
        FAIL("A: kick verdict %s, %u sent", thaw_kick_verdict_name(kr[A].verdict), kr[A].sent);
    if (kr[C].verdict != THAW_KICK_SKIP_RECVERR)
        FAIL("C (IP_RECVERR): kick verdict %s", thaw_kick_verdict_name(kr[C].verdict));
    if (kr[D].verdict != THAW_KICK_NOT_NEEDED)
        FAIL("D (idle): kick verdict %s", thaw_kick_verdict_name(kr[D].verdict));

    /* A's lost bytes must arrive while B's identical backed-off timer is still pending. The
     * limit only bounds the test: a broken kick shows as B moving first or with A. */
    if (wait_arrived(cs, 1u << A, 60000) < 0)
        FAIL("A's data never arrived");
    double ta = now_ms() - t0;
    struct tcp_info b1;
    drain_peer(cs, 0);
    if (info(cs[B].fd, &b1) < 0)
        FAIL("TCP_INFO: %m");
    printf("A complete %.0f ms after the thaw; B then: %u of %u bytes at the peer, "
           "retransmissions %u -> %u\n",
           ta, cs[B].got, cs[B].sent, b0.tcpi_total_retrans, b1.tcpi_total_retrans);
    if (cs[B].got != WARM_BYTES || b1.tcpi_total_retrans != b0.tcpi_total_retrans)
        FAIL("the control B moved by the time A did: A's data did not beat the backed-off "
             "RTO, so the kick did not work");

    /* Everything else arrives on its own timers; then the streams go on. */
    if (wait_arrived(cs, 0xf, 60000) < 0)
        FAIL("B/C never completed");
    for (int k = 0; k < N_CONNS; k++)
        if ((r = write_stream(&cs[k], k, 1000)) < 0)
            FAIL("write after thaw %s: %s", names[k], strerror(-r));
    if (wait_arrived(cs, 0xf, 20000) < 0)
        FAIL("data after the thaw did not arrive");
    for (int k = 0; k < N_CONNS; k++) {
        int err = 0;
        socklen_t sl = sizeof(err);
        getsockopt(cs[k].fd, SOL_SOCKET, SO_ERROR, &err, &sl);
        if (err)
            FAIL("%s: socket error %s", names[k], strerror(err));
        if (cs[k].bad || cs[k].got != cs[k].sent)
            FAIL("%s: stream not byte-exact (%u of %u)", names[k], cs[k].got, cs[k].sent);
        tcp_conn_state_free(&cs[k].st);
        close(cs[k].fd);
        close(cs[k].pfd);
    }
    printf("ok: %s kicked (%u ICMP), control waited, recverr skipped, idle not needed; "
           "streams byte-exact\n",
           o->peer, kr[A].sent);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {{"peer-ns", required_argument, NULL, 'n'},
                                       {"local", required_argument, NULL, 'l'},
                                       {"peer", required_argument, NULL, 'p'},
                                       {"port", required_argument, NULL, 'P'},
                                       {"gate-on", required_argument, NULL, 'g'},
                                       {"gate-off", required_argument, NULL, 'G'},
                                       {NULL, 0, NULL, 0}};
    struct opts o = {0};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'n':
            o.peer_ns = optarg;
            break;
        case 'l':
            o.local = optarg;
            break;
        case 'p':
            o.peer = optarg;
            break;
        case 'P':
            o.port = atoi(optarg);
            break;
        case 'g':
            o.gate_on = optarg;
            break;
        case 'G':
            o.gate_off = optarg;
            break;
        default:
            return 2;
        }
    }
    if (!o.peer_ns || !o.local || !o.peer || o.port <= 0 || !o.gate_on || !o.gate_off) {
        fprintf(stderr, "usage: thaw-kick-driver --peer-ns NS --local ADDR --peer ADDR --port N "
                        "--gate-on CMD --gate-off CMD\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    return run(&o);
}
