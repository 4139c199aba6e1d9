/* netckpt-workload: the test traffic of the real-VM tests and benchmarks.
 *
 * One binary, built static for the guest and dynamic for the peer namespace:
 *   serve  --port P          in the guest: stream responder on P, echo on P+1, and a checksum
 *                            line protocol on P+2 (each line answered "<sha256> <len>").
 *   dial   --connect A:P     in the guest: keeps --conns K outbound connections to a peer's
 *                            `stream --listen`, answering as responder; reconnects.
 *   stream --connect A:P | --listen [A:]P
 *                            on the peer: the controller of K stream sessions. It picks the
 *                            mode, ends them, verifies both directions and prints JSON.
 *
 * The stream protocol frames everything: a 4-byte header (type, 24-bit big-endian length),
 * then the payload. 'H' hello (controller: "NCW1 mode=M rate=R chunk=C"), 'D' data, 'F'
 * finish ("bytes=N sha256=H rxbytes=N rxsha256=H": no more data follows from its sender),
 * 'V' the controller's final receive totals. The controller sends F first; the responder
 * stops, answers F; the controller answers V and half-closes. Each side hashes every data
 * byte it sends and receives, so comparing totals proves nothing was lost or duplicated in
 * either direction.
 *
 * Stalls: a direction stalls while bytes are owed and none move. Receive progress is a read
 * returning data; send progress is the peer acknowledging (our written total minus SIOCOUTQ
 * growing). SIGUSR1 records a marker (e.g. "the VM was just restored"); for each marker the
 * report gives the time until each direction next moved. SIGINT/SIGTERM end the sessions
 * cleanly (the verification still runs).
 */
#include "common/log.h"
#include "common/macro.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#define FRAME_HDR        4
#define FRAME_MAX_DATA   65536
#define FRAME_MAX_CTRL   1024
#define MAX_MARKERS      32
#define MAX_CONNS        1024
#define LINE_MAX_BYTES   65536
#define ECHO_MAX_PENDING (1u << 20)
#define DEFAULT_CHUNK    16384
#define RECONNECT_NS     (1000ull * 1000 * 1000)
#define NS_PER_MS        1000000ull

enum role { ROLE_CONTROLLER, ROLE_RESPONDER, ROLE_ECHO, ROLE_LINES };

enum mode { MODE_IDLE = 0, MODE_OUT = 1, MODE_IN = 2, MODE_BOTH = 3 };

/* One direction of one stream: what moved, its hash, and its stalls. */
struct dir_stats {
    bool active; /* bytes are owed in this direction */
    uint64_t bytes;
    EVP_MD_CTX *sha;
    char sha_hex[65];
    bool finished;
    uint64_t last_move_ns;
    uint64_t max_stall_ns;
    uint64_t after_marker_ns[MAX_MARKERS];
    bool marker_pending[MAX_MARKERS];
    bool marker_seen[MAX_MARKERS];
    /* what the other side said it sent / received in this direction */
    bool peer_known;
    uint64_t peer_bytes;
    char peer_sha_hex[65];
};

struct buf {
    uint8_t *data;
    size_t len, off, cap;
};

struct conn {
    int fd;
    int id;
    enum role role;
    bool connecting;
    bool hello_done;
    enum mode mode; /* controller's view: OUT = controller sends */
    uint64_t rate;  /* bytes per second per direction, 0 = unlimited */
    size_t chunk;
    struct buf out, in;
    struct dir_stats tx, rx;
    uint64_t written_total; /* every byte written to the socket, framing included */
    uint64_t acked_total;
    uint64_t tokens_ns; /* rate limiting: time up to which sending is paid for */
    uint64_t rng;
    bool want_finish, sent_fin, got_fin, sent_verdict, got_verdict, shut_wr, got_eof;
    bool done;
    char error[160];
    uint64_t start_ns, end_ns, finish_deadline_ns;
    char local[64], remote[64];
    struct conn *next;
};

struct marker {
    uint64_t t_ns;
};

/* Everything the event loop owns; lives in main()'s frame. */
struct workload {
    enum role role; /* of new connections */
    enum mode mode;
    uint64_t rate;
    size_t chunk;
    unsigned conns_wanted;
    unsigned conns_accepted; /* by `stream --listen` */
    unsigned sessions_done;  /* controller sessions reported */
    unsigned next_id;
    int listen_fd[3];
    enum role listen_role[3];
    size_t n_listen;
    struct sockaddr_storage connect_addr;
    socklen_t connect_len;
    bool dial; /* keep conns_wanted outbound responders forever */
    uint64_t reconnect_at_ns;
    uint64_t start_ns, seconds_ns, connect_deadline_ns, finish_timeout_ns;
    bool finishing;
    int sigfd;
    struct marker markers[MAX_MARKERS];
    size_t n_markers;
    struct conn *conns;
    json_object *results; /* finished controller/responder sessions */
    FILE *report;         /* responder JSON lines, may be NULL */
    const char *ready_file;
    bool ready_written;
    bool quit;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double ns_to_ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

/* ---- buffers ---- */

static int buf_reserve(struct buf *b, size_t extra)
{
    if (b->off > 0 && b->off == b->len) {
        b->off = b->len = 0;
    }
    if (b->len + extra <= b->cap)
        return 0;
    if (b->off > 0) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->len + extra <= b->cap)
            return 0;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

static size_t buf_pending(const struct buf *b)
{
    return b->len - b->off;
}

static int buf_append_frame(struct buf *b, char type, const void *payload, size_t len)
{
    int r = buf_reserve(b, FRAME_HDR + len);
    if (r < 0)
        return r;
    uint8_t *h = b->data + b->len;
    h[0] = (uint8_t)type;
    h[1] = (uint8_t)(len >> 16);
    h[2] = (uint8_t)(len >> 8);
    h[3] = (uint8_t)len;
    if (len)
        memcpy(h + FRAME_HDR, payload, len);
    b->len += FRAME_HDR + len;
    return 0;
}

/* ---- directions ---- */

static int dir_init(struct dir_stats *d, uint64_t now)
{
    memset(d, 0, sizeof(*d));
    d->sha = EVP_MD_CTX_new();
    if (!d->sha || EVP_DigestInit_ex(d->sha, EVP_sha256(), NULL) != 1)
        return -ENOMEM;
    d->last_move_ns = now;
    return 0;
}

static void dir_free(struct dir_stats *d)
{
    EVP_MD_CTX_free(d->sha);
    d->sha = NULL;
}

static void dir_hash(struct dir_stats *d, const void *p, size_t len)
{
    EVP_DigestUpdate(d->sha, p, len);
    d->bytes += len;
}

static void dir_finish(struct dir_stats *d)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (d->finished)
        return;
    EVP_DigestFinal_ex(d->sha, md, &n);
    for (unsigned int i = 0; i < n && i < 32; i++)
        snprintf(d->sha_hex + 2 * i, 3, "%02x", md[i]);
    d->finished = true;
}

/* Something moved in this direction at time t. */
static void dir_moved(struct dir_stats *d, uint64_t t, const struct marker *m, size_t n_markers)
{
    if (t > d->last_move_ns && t - d->last_move_ns > d->max_stall_ns)
        d->max_stall_ns = t - d->last_move_ns;
    d->last_move_ns = t;
    for (size_t i = 0; i < n_markers; i++) {
        if (d->marker_pending[i]) {
            d->marker_pending[i] = false;
            d->marker_seen[i] = true;
            d->after_marker_ns[i] = t > m[i].t_ns ? t - m[i].t_ns : 0;
        }
    }
}

/* Nothing is owed right now (e.g. all sent data acknowledged): not a stall. */
static void dir_idle(struct dir_stats *d, uint64_t t, const struct marker *m, size_t n_markers)
{
    dir_moved(d, t, m, n_markers);
}

/* ---- addresses ---- */

static int parse_hostport(const char *s, bool host_optional, struct sockaddr_storage *ss,
                          socklen_t *len)
{
    char host[256] = "";
    const char *port;
    const char *colon = strrchr(s, ':');
    if (colon) {
        size_t hl = (size_t)(colon - s);
        if (hl >= sizeof(host))
            return -EINVAL;
        memcpy(host, s, hl);
        host[hl] = 0;
        port = colon + 1;
    } else if (host_optional) {
        port = s;
    } else {
        return -EINVAL;
    }
    /* [v6]:port */
    char *h = host;
    size_t hl = strlen(h);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h[hl - 1] = 0;
        h++;
    }
    char *end;
    errno = 0;
    unsigned long p = strtoul(port, &end, 10);
    if (errno || *end || end == port || p > 65535)
        return -EINVAL;
    memset(ss, 0, sizeof(*ss));
    if (!*h) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)p);
        *len = sizeof(*sin);
        return 0;
    }
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, h, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)p);
        *len = sizeof(*sin);
        return 0;
    }
    if (inet_pton(AF_INET6, h, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)p);
        *len = sizeof(*sin6);
        return 0;
    }
    return -EINVAL; /* numeric only: the guest has no resolver */
}

static void format_addr(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a));
        port = ntohs(s->sin_port);
        snprintf(buf, len, "%s:%u", a, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a));
        port = ntohs(s->sin6_port);
        snprintf(buf, len, "[%s]:%u", a, port);
    } else {
        snprintf(buf, len, "?");
    }
}

static void conn_names(struct conn *c)
{
    struct sockaddr_storage ss;
    socklen_t l = sizeof(ss);
    if (getsockname(c->fd, (struct sockaddr *)&ss, &l) == 0)
        format_addr(&ss, c->local, sizeof(c->local));
    l = sizeof(ss);
    if (getpeername(c->fd, (struct sockaddr *)&ss, &l) == 0)
        format_addr(&ss, c->remote, sizeof(c->remote));
}

/* ---- connections ---- */

static void conn_fail(struct conn *c, const char *what, int err)
{
    if (!c->error[0]) {
        if (err)
            snprintf(c->error, sizeof(c->error), "%s: %s", what, strerror(err));
        else
            snprintf(c->error, sizeof(c->error), "%s", what);
    }
    c->done = true;
}

static struct conn *conn_new(struct workload *w, int fd, enum role role, bool connecting)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    uint64_t t = now_ns();
    c->fd = fd;
    c->id = (int)w->next_id++;
    c->role = role;
    c->connecting = connecting;
    c->mode = w->mode;
    c->rate = w->rate;
    c->chunk = w->chunk;
    c->start_ns = t;
    c->rng = t ^ ((uint64_t)(uintptr_t)c << 17) ^ ((uint64_t)c->id * 0x9e3779b97f4a7c15ull);
    if (!c->rng)
        c->rng = 1;
    if (dir_init(&c->tx, t) < 0 || dir_init(&c->rx, t) < 0) {
        dir_free(&c->tx);
        dir_free(&c->rx);
        free(c);
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (!connecting)
        conn_names(c);
    c->next = w->conns;
    w->conns = c;
    return c;
}

static void conn_free(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    dir_free(&c->tx);
    dir_free(&c->rx);
    free(c->out.data);
    free(c->in.data);
    free(c);
}

/* Directions as seen by this end. */
static bool sends(const struct conn *c)
{
    if (c->role == ROLE_CONTROLLER)
        return c->mode & MODE_OUT;
    return c->mode & MODE_IN;
}

static bool receives(const struct conn *c)
{
    if (c->role == ROLE_CONTROLLER)
        return c->mode & MODE_IN;
    return c->mode & MODE_OUT;
}

static const char *mode_name(enum mode m)
{
    switch (m) {
    case MODE_OUT:
        return "out";
    case MODE_IN:
        return "in";
    case MODE_BOTH:
        return "both";
    default:
        return "idle";
    }
}

static int mode_parse(const char *s, enum mode *m)
{
    if (!strcmp(s, "out"))
        *m = MODE_OUT;
    else if (!strcmp(s, "in"))
        *m = MODE_IN;
    else if (!strcmp(s, "both"))
        *m = MODE_BOTH;
    else if (!strcmp(s, "idle"))
        *m = MODE_IDLE;
    else
        return -EINVAL;
    return 0;
}

static void send_hello(struct conn *c)
{
    char p[FRAME_MAX_CTRL];
    int n = snprintf(p, sizeof(p), "NCW1 mode=%s rate=%llu chunk=%zu", mode_name(c->mode),
                     (unsigned long long)c->rate, c->chunk);
    if (buf_append_frame(&c->out, 'H', p, (size_t)n) < 0)
        conn_fail(c, "out of memory", 0);
    c->hello_done = true;
    c->tx.active = sends(c);
    c->rx.active = receives(c);
}

static void send_fin(struct conn *c)
{
    char p[FRAME_MAX_CTRL];
    dir_finish(&c->tx);
    /* A responder answers F after the controller's F: its receive side is complete too. */
    if (c->role == ROLE_RESPONDER)
        dir_finish(&c->rx);
    int n = snprintf(p, sizeof(p), "bytes=%llu sha256=%s rxbytes=%llu rxsha256=%s",
                     (unsigned long long)c->tx.bytes, c->tx.sha_hex,
                     (unsigned long long)c->rx.bytes, c->rx.finished ? c->rx.sha_hex : "-");
    if (buf_append_frame(&c->out, 'F', p, (size_t)n) < 0)
        conn_fail(c, "out of memory", 0);
    c->sent_fin = true;
    c->tx.active = false;
}

static void send_verdict(struct conn *c)
{
    char p[FRAME_MAX_CTRL];
    int n = snprintf(p, sizeof(p), "rxbytes=%llu rxsha256=%s", (unsigned long long)c->rx.bytes,
                     c->rx.sha_hex);
    if (buf_append_frame(&c->out, 'V', p, (size_t)n) < 0)
        conn_fail(c, "out of memory", 0);
    c->sent_verdict = true;
}

static int parse_totals(const char *p, const char *bkey, const char *skey, uint64_t *bytes,
                        char sha[65])
{
    char kb[32], ks[32];
    snprintf(kb, sizeof(kb), "%s=", bkey);
    snprintf(ks, sizeof(ks), "%s=", skey);
    const char *b = strstr(p, kb);
    const char *s = strstr(p, ks);
    /* "bytes=" also matches inside "rxbytes=": require a word start. */
    while (b && b != p && b[-1] != ' ')
        b = strstr(b + 1, kb);
    while (s && s != p && s[-1] != ' ')
        s = strstr(s + 1, ks);
    if (!b || !s)
        return -EBADMSG;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(b + strlen(kb), &end, 10);
    if (errno || (*end && *end != ' '))
        return -EBADMSG;
    const char *h = s + strlen(ks);
    size_t hl = strcspn(h, " ");
    if (hl == 1 && h[0] == '-') {
        sha[0] = 0;
    } else {
        if (hl != 64 || strspn(h, "0123456789abcdef") < 64)
            return -EBADMSG;
        memcpy(sha, h, 64);
        sha[64] = 0;
    }
    *bytes = v;
    return 0;
}

static void handle_hello(struct conn *c, const char *p)
{
    char m[16] = "";
    unsigned long long rate = 0;
    size_t chunk = 0;
    if (sscanf(p, "NCW1 mode=%15s rate=%llu chunk=%zu", m, &rate, &chunk) != 3 ||
        mode_parse(m, &c->mode) < 0 || chunk == 0 || chunk > FRAME_MAX_DATA) {
        conn_fail(c, "bad hello", 0);
        return;
    }
    c->rate = rate;
    c->chunk = chunk;
    c->hello_done = true;
    c->tx.active = sends(c);
    c->rx.active = receives(c);
}

/* One complete frame from the other side. */
static void handle_frame(struct workload *w, struct conn *c, char type, const uint8_t *p,
                         size_t len)
{
    char ctl[FRAME_MAX_CTRL + 1];
    if (type != 'D') {
        if (len > FRAME_MAX_CTRL) {
            conn_fail(c, "control frame too long", 0);
            return;
        }
        memcpy(ctl, p, len);
        ctl[len] = 0;
    }
    switch (type) {
    case 'H':
        if (c->role != ROLE_RESPONDER || c->hello_done)
            conn_fail(c, "unexpected hello", 0);
        else
            handle_hello(c, ctl);
        return;
    case 'D':
        if (!c->hello_done || c->got_fin || !receives(c)) {
            conn_fail(c, "unexpected data frame", 0);
            return;
        }
        dir_hash(&c->rx, p, len);
        return;
    case 'F':
        /* The controller finishes first; a responder's F only ever answers it. */
        if (!c->hello_done || c->got_fin || (c->role == ROLE_CONTROLLER && !c->sent_fin)) {
            conn_fail(c, "unexpected finish", 0);
            return;
        }
        c->got_fin = true;
        if (parse_totals(ctl, "bytes", "sha256", &c->rx.peer_bytes, c->rx.peer_sha_hex) < 0) {
            conn_fail(c, "bad finish frame", 0);
            return;
        }
        c->rx.peer_known = true;
        dir_finish(&c->rx);
        c->rx.active = false;
        if (c->role == ROLE_RESPONDER) {
            send_fin(c);
        } else {
            /* The responder reports what it received from us. */
            if (parse_totals(ctl, "rxbytes", "rxsha256", &c->tx.peer_bytes, c->tx.peer_sha_hex) <
                0) {
                conn_fail(c, "bad finish frame", 0);
                return;
            }
            c->tx.peer_known = true;
            send_verdict(c);
        }
        return;
    case 'V':
        if (c->role != ROLE_RESPONDER || !c->sent_fin || c->got_verdict) {
            conn_fail(c, "unexpected verdict", 0);
            return;
        }
        if (parse_totals(ctl, "rxbytes", "rxsha256", &c->tx.peer_bytes, c->tx.peer_sha_hex) < 0) {
            conn_fail(c, "bad verdict frame", 0);
            return;
        }
        c->tx.peer_known = true;
        c->got_verdict = true;
        return;
    default:
        conn_fail(c, "unknown frame type", 0);
    }
    (void)w;
}

static void parse_frames(struct workload *w, struct conn *c)
{
    while (!c->done) {
        size_t avail = buf_pending(&c->in);
        if (avail < FRAME_HDR)
            return;
        const uint8_t *h = c->in.data + c->in.off;
        size_t len = ((size_t)h[1] << 16) | ((size_t)h[2] << 8) | h[3];
        if (len > FRAME_MAX_DATA) {
            conn_fail(c, "frame too long", 0);
            return;
        }
        if (avail < FRAME_HDR + len)
            return;
        handle_frame(w, c, (char)h[0], h + FRAME_HDR, len);
        c->in.off += FRAME_HDR + len;
    }
}

static void handle_lines(struct conn *c)
{
    for (;;) {
        uint8_t *start = c->in.data + c->in.off;
        size_t avail = buf_pending(&c->in);
        uint8_t *nl = memchr(start, '\n', avail);
        if (!nl) {
            if (avail > LINE_MAX_BYTES)
                conn_fail(c, "line too long", 0);
            return;
        }
        size_t len = (size_t)(nl - start);
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        EVP_Digest(start, len, md, &n, EVP_sha256(), NULL);
        char reply[100];
        size_t o = 0;
        for (unsigned int i = 0; i < n && i < 32; i++)
            o += (size_t)snprintf(reply + o, sizeof(reply) - o, "%02x", md[i]);
        o += (size_t)snprintf(reply + o, sizeof(reply) - o, " %zu\n", len);
        if (buf_reserve(&c->out, o) < 0) {
            conn_fail(c, "out of memory", 0);
            return;
        }
        memcpy(c->out.data + c->out.len, reply, o);
        c->out.len += o;
        c->in.off += len + 1;
    }
}

static void conn_read(struct workload *w, struct conn *c)
{
    for (int rounds = 0; rounds < 16 && !c->done; rounds++) {
        if (buf_reserve(&c->in, FRAME_MAX_DATA + FRAME_HDR) < 0) {
            conn_fail(c, "out of memory", 0);
            return;
        }
        /* Echo: never read more than we can give back; backpressure instead. */
        if (c->role == ROLE_ECHO && buf_pending(&c->out) > ECHO_MAX_PENDING)
            return;
        ssize_t n = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            conn_fail(c, "read", errno);
            return;
        }
        if (n == 0) {
            c->got_eof = true;
            return;
        }
        c->in.len += (size_t)n;
        if (c->role == ROLE_CONTROLLER || c->role == ROLE_RESPONDER) {
            dir_moved(&c->rx, now_ns(), w->markers, w->n_markers);
            parse_frames(w, c);
        } else if (c->role == ROLE_ECHO) {
            size_t len = buf_pending(&c->in);
            if (buf_reserve(&c->out, len) < 0) {
                conn_fail(c, "out of memory", 0);
                return;
            }
            memcpy(c->out.data + c->out.len, c->in.data + c->in.off, len);
            c->out.len += len;
            c->in.off += len;
        } else {
            handle_lines(c);
        }
        if (c->in.off == c->in.len)
            c->in.off = c->in.len = 0;
    }
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

/* Queue the next data frame if this end owes data and the rate allows it. */
static void maybe_generate(struct conn *c, uint64_t t)
{
    if (!c->hello_done || c->sent_fin || c->want_finish || !sends(c) || buf_pending(&c->out) > 0)
        return;
    if (c->rate) {
        if (c->tokens_ns + 1000000000ull < t)
            c->tokens_ns = t - 1000000000ull; /* at most one second of burst */
        if (c->tokens_ns > t)
            return;
        c->tokens_ns += c->chunk * 1000000000ull / c->rate;
    }
    if (buf_reserve(&c->out, FRAME_HDR + c->chunk) < 0) {
        conn_fail(c, "out of memory", 0);
        return;
    }
    uint8_t *h = c->out.data + c->out.len;
    h[0] = 'D';
    h[1] = (uint8_t)(c->chunk >> 16);
    h[2] = (uint8_t)(c->chunk >> 8);
    h[3] = (uint8_t)c->chunk;
    uint8_t *p = h + FRAME_HDR;
    for (size_t i = 0; i < c->chunk; i += 8) {
        uint64_t v = xorshift(&c->rng);
        memcpy(p + i, &v, c->chunk - i < 8 ? c->chunk - i : 8);
    }
    dir_hash(&c->tx, p, c->chunk);
    c->out.len += FRAME_HDR + c->chunk;
}

static void conn_write(struct conn *c)
{
    /* Bounded, so that one fast connection cannot starve the others or the loop's checks. */
    for (int rounds = 0; rounds < 16 && buf_pending(&c->out) > 0; rounds++) {
        ssize_t n = write(c->fd, c->out.data + c->out.off, buf_pending(&c->out));
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            conn_fail(c, "write", errno);
            return;
        }
        c->out.off += (size_t)n;
        c->written_total += (uint64_t)n;
        if (c->role == ROLE_CONTROLLER || c->role == ROLE_RESPONDER)
            maybe_generate(c, now_ns());
    }
}

/* Send progress: what the peer acknowledged grew, or nothing is outstanding. */
static void check_acks(struct workload *w, struct conn *c, uint64_t t)
{
    if (!c->tx.active && !c->sent_fin)
        return;
    int outq = 0;
    if (ioctl(c->fd, SIOCOUTQ, &outq) < 0)
        return;
    uint64_t acked = c->written_total - (uint64_t)outq;
    if (acked > c->acked_total) {
        c->acked_total = acked;
        dir_moved(&c->tx, t, w->markers, w->n_markers);
    } else if (outq == 0 && buf_pending(&c->out) == 0) {
        /* Caught up (e.g. rate-limited): nothing owed, nothing stalled. */
        dir_idle(&c->tx, t, w->markers, w->n_markers);
    }
}

static bool conn_complete(const struct conn *c)
{
    if (c->role == ROLE_CONTROLLER)
        return c->sent_verdict && buf_pending(&c->out) == 0 && c->got_eof;
    if (c->role == ROLE_RESPONDER)
        return c->got_verdict && buf_pending(&c->out) == 0;
    return c->got_eof && buf_pending(&c->out) == 0;
}

static json_object *dir_json(const struct dir_stats *d, bool active, size_t n_markers)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "active", json_object_new_boolean(active));
    json_object_object_add(o, "bytes", json_object_new_uint64(d->bytes));
    json_object_object_add(o, "sha256", d->finished ? json_object_new_string(d->sha_hex) : NULL);
    if (d->peer_known) {
        json_object_object_add(o, "peer_bytes", json_object_new_uint64(d->peer_bytes));
        json_object_object_add(o, "peer_sha256", json_object_new_string(d->peer_sha_hex));
    }
    bool match = d->peer_known && d->finished && d->peer_bytes == d->bytes &&
                 !strcmp(d->peer_sha_hex, d->sha_hex);
    json_object_object_add(o, "match", json_object_new_boolean(match));
    json_object_object_add(o, "max_stall_ms",
                           active ? json_object_new_double(ns_to_ms(d->max_stall_ns)) : NULL);
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < n_markers; i++)
        json_object_array_add(a, active && d->marker_seen[i]
                                     ? json_object_new_double(ns_to_ms(d->after_marker_ns[i]))
                                     : NULL);
    json_object_object_add(o, "stall_after_marker_ms", a);
    return o;
}

static bool dir_match(const struct dir_stats *d)
{
    return d->peer_known && d->finished && d->peer_bytes == d->bytes &&
           !strcmp(d->peer_sha_hex, d->sha_hex);
}

static json_object *conn_json(const struct workload *w, const struct conn *c)
{
    json_object *o = json_object_new_object();
    bool tx_on = sends(c), rx_on = receives(c);
    bool ok = !c->error[0] && dir_match(&c->tx) && dir_match(&c->rx);
    json_object_object_add(o, "id", json_object_new_int(c->id));
    json_object_object_add(
        o, "role", json_object_new_string(c->role == ROLE_CONTROLLER ? "controller" : "responder"));
    json_object_object_add(o, "mode", json_object_new_string(mode_name(c->mode)));
    json_object_object_add(o, "local", json_object_new_string(c->local));
    json_object_object_add(o, "remote", json_object_new_string(c->remote));
    json_object_object_add(o, "ok", json_object_new_boolean(ok));
    json_object_object_add(o, "error", c->error[0] ? json_object_new_string(c->error) : NULL);
    json_object_object_add(o, "duration_ms",
                           json_object_new_double(ns_to_ms(c->end_ns - c->start_ns)));
    json_object_object_add(o, "tx", dir_json(&c->tx, tx_on, w->n_markers));
    json_object_object_add(o, "rx", dir_json(&c->rx, rx_on, w->n_markers));
    return o;
}

static void conn_report(struct workload *w, struct conn *c)
{
    c->end_ns = now_ns();
    if (!c->done && !c->error[0])
        c->done = true;
    if (c->role != ROLE_CONTROLLER && c->role != ROLE_RESPONDER)
        return;
    if (c->role == ROLE_RESPONDER && !c->hello_done && c->rx.bytes == 0)
        return; /* a probe that connected and left without a word */
    bool ok = !c->error[0] && dir_match(&c->tx) && dir_match(&c->rx);
    log_info("%s %s <-> %s mode=%s %s tx=%llu rx=%llu max_stall_ms=%.0f/%.0f%s%s",
             c->role == ROLE_CONTROLLER ? "controller" : "responder", c->local, c->remote,
             mode_name(c->mode), ok ? "ok" : "FAILED", (unsigned long long)c->tx.bytes,
             (unsigned long long)c->rx.bytes, ns_to_ms(c->tx.max_stall_ns),
             ns_to_ms(c->rx.max_stall_ns), c->error[0] ? " error: " : "", c->error);
    json_object *j = conn_json(w, c);
    if (w->report) {
        fprintf(w->report, "%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
        fflush(w->report);
    }
    if (c->role == ROLE_CONTROLLER) {
        json_object_array_add(w->results, j);
        w->sessions_done++;
    } else
        json_object_put(j);
}

/* ---- the event loop ---- */

static int start_connect(struct workload *w)
{
    int fd = socket(w->connect_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return negative_errno();
    if (connect(fd, (struct sockaddr *)&w->connect_addr, w->connect_len) < 0 &&
        errno != EINPROGRESS) {
        int r = negative_errno();
        close(fd);
        return r;
    }
    struct conn *c = conn_new(w, fd, w->role, true);
    if (!c) {
        close(fd);
        return -ENOMEM;
    }
    return 0;
}

static unsigned count_conns(const struct workload *w, enum role role)
{
    unsigned n = 0;
    for (const struct conn *c = w->conns; c; c = c->next)
        n += c->role == role;
    return n;
}

static void connect_done(struct workload *w, struct conn *c)
{
    int err = 0;
    socklen_t l = sizeof(err);
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) {
        /* Not established yet: retry quietly until the deadline (the server may be starting). */
        c->done = true;
        snprintf(c->error, sizeof(c->error), "connect: %s", strerror(err));
        return;
    }
    c->connecting = false;
    c->start_ns = now_ns();
    c->tx.last_move_ns = c->rx.last_move_ns = c->start_ns;
    conn_names(c);
    if (c->role == ROLE_CONTROLLER)
        send_hello(c);
}

static void accept_one(struct workload *w, size_t i)
{
    int fd = accept4(w->listen_fd[i], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    if (count_conns(w, w->listen_role[i]) >= MAX_CONNS) {
        close(fd);
        return;
    }
    struct conn *c = conn_new(w, fd, w->listen_role[i], false);
    if (!c) {
        close(fd);
        return;
    }
    if (c->role == ROLE_CONTROLLER) {
        send_hello(c);
        /* `stream --listen` takes exactly --conns sessions, then stops listening. */
        if (++w->conns_accepted >= w->conns_wanted) {
            close(w->listen_fd[i]);
            w->listen_fd[i] = -1;
        }
    }
}

static void add_marker(struct workload *w, uint64_t t)
{
    if (w->n_markers >= MAX_MARKERS) {
        log_warn("more than %d markers; ignoring", MAX_MARKERS);
        return;
    }
    w->markers[w->n_markers].t_ns = t;
    for (struct conn *c = w->conns; c; c = c->next) {
        if (c->role != ROLE_CONTROLLER && c->role != ROLE_RESPONDER)
            continue;
        c->tx.marker_pending[w->n_markers] = true;
        c->rx.marker_pending[w->n_markers] = true;
    }
    w->n_markers++;
    log_info("marker %zu at %.3f s", w->n_markers, ns_to_ms(t - w->start_ns) / 1000);
}

static void handle_signals(struct workload *w)
{
    struct signalfd_siginfo si;
    while (read(w->sigfd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGUSR1) {
            add_marker(w, now_ns());
        } else if (w->role != ROLE_CONTROLLER || w->finishing) {
            /* Servers and dialers just stop; a second signal stops a controller too. */
            if (w->role == ROLE_CONTROLLER)
                log_warn("second signal: giving up on a clean finish");
            w->quit = true;
        } else {
            w->finishing = true;
        }
    }
}

/* Marks the connections as established (the connect deadline stops counting), and tells a
 * waiting script so through the ready file when one was given. */
static void write_ready(struct workload *w)
{
    if (w->ready_written)
        return;
    w->ready_written = true;
    if (!w->ready_file)
        return;
    FILE *f = fopen(w->ready_file, "we");
    if (f) {
        fprintf(f, "%u\n", count_conns(w, ROLE_CONTROLLER));
        fclose(f);
    }
}

static void step_conn(struct workload *w, struct conn *c, short revents, uint64_t t)
{
    if (c->connecting) {
        if (revents & (POLLOUT | POLLERR | POLLHUP))
            connect_done(w, c);
        return;
    }
    if (revents & (POLLIN | POLLHUP | POLLERR))
        conn_read(w, c);
    if (c->done)
        return;
    bool stream = c->role == ROLE_CONTROLLER || c->role == ROLE_RESPONDER;
    if (stream) {
        if (c->role == ROLE_CONTROLLER && c->want_finish && !c->sent_fin && c->hello_done) {
            /* Finish between frames: the queued data frame goes out first. */
            if (buf_pending(&c->out) == 0 || !sends(c))
                send_fin(c);
        }
        maybe_generate(c, t);
    }
    conn_write(c);
    if (c->done)
        return;
    if (stream) {
        check_acks(w, c, t);
        if (c->role == ROLE_CONTROLLER && c->sent_verdict && !c->shut_wr &&
            buf_pending(&c->out) == 0) {
            shutdown(c->fd, SHUT_WR);
            c->shut_wr = true;
        }
        if (c->got_eof && !conn_complete(c))
            conn_fail(c, "connection closed before the finish handshake", 0);
        if (c->finish_deadline_ns && t > c->finish_deadline_ns && !conn_complete(c))
            conn_fail(c, "finish handshake timed out", 0);
    }
    if (conn_complete(c))
        c->done = true;
}

static int event_loop(struct workload *w)
{
    struct pollfd pfd[MAX_CONNS + 8];
    struct conn *pc[MAX_CONNS + 8];
    for (;;) {
        uint64_t t = now_ns();
        if (w->quit)
            break;
        /* Outbound connections: the initial ones, retries of refused ones until the
         * deadline (the server may still be starting), and the dialer's refills. */
        unsigned want = w->conns_wanted;
        if (w->connect_len && t >= w->reconnect_at_ns && !w->finishing) {
            unsigned started = count_conns(w, w->role) + (w->dial ? 0 : w->sessions_done);
            for (; started < want; started++) {
                int r = start_connect(w);
                if (r < 0) {
                    log_warn("connect: %s", strerror(-r));
                    w->reconnect_at_ns = t + RECONNECT_NS;
                    break;
                }
            }
        }
        bool controller_run = w->role == ROLE_CONTROLLER;
        if (controller_run) {
            unsigned up = w->sessions_done;
            for (struct conn *c = w->conns; c; c = c->next)
                up += c->role == ROLE_CONTROLLER && !c->connecting;
            if (up >= want)
                write_ready(w);
            if (w->seconds_ns && t - w->start_ns >= w->seconds_ns)
                w->finishing = true;
            if (!w->ready_written && t > w->connect_deadline_ns && !w->finishing) {
                log_err("only %u of %u connection(s) established in time", up, want);
                w->finishing = true;
            }
            if (w->sessions_done >= want || (w->finishing && !w->conns))
                break;
        }
        if (w->finishing) {
            for (struct conn *c = w->conns; c; c = c->next) {
                if (c->role == ROLE_CONTROLLER && !c->want_finish) {
                    c->want_finish = true;
                    c->finish_deadline_ns = t + w->finish_timeout_ns;
                }
            }
        }

        size_t n = 0;
        bool busy = false;
        for (size_t i = 0; i < w->n_listen; i++) {
            if (w->listen_fd[i] < 0)
                continue;
            pfd[n] = (struct pollfd){.fd = w->listen_fd[i], .events = POLLIN};
            pc[n++] = NULL;
        }
        if (w->sigfd >= 0) {
            pfd[n] = (struct pollfd){.fd = w->sigfd, .events = POLLIN};
            pc[n++] = NULL;
        }
        for (struct conn *c = w->conns; c && n < ELEMENTSOF(pfd); c = c->next) {
            short ev = POLLIN;
            if (c->connecting || buf_pending(&c->out) > 0)
                ev |= POLLOUT;
            /* EOF seen, or an echo client that does not read its echoes: stop reading. */
            if (c->got_eof || (c->role == ROLE_ECHO && buf_pending(&c->out) > ECHO_MAX_PENDING))
                ev &= ~POLLIN;
            pfd[n] = (struct pollfd){.fd = c->fd, .events = ev};
            pc[n++] = c;
            /* Poll acks and the rate often while data is owed. */
            if (c->tx.active || (c->sent_fin && !c->done) || c->want_finish)
                busy = true;
        }
        int timeout = busy ? 5 : 100;
        if (poll(pfd, n, timeout) < 0 && errno != EINTR) {
            log_err("poll: %m");
            return -errno;
        }
        t = now_ns();
        for (size_t i = 0; i < n; i++) {
            if (pc[i]) {
                step_conn(w, pc[i], pfd[i].revents, t);
            } else if (pfd[i].fd == w->sigfd) {
                if (pfd[i].revents & POLLIN)
                    handle_signals(w);
            } else if (pfd[i].revents & POLLIN) {
                for (size_t j = 0; j < w->n_listen; j++)
                    if (w->listen_fd[j] == pfd[i].fd)
                        accept_one(w, j);
            }
        }
        /* Reap finished connections. */
        for (struct conn **pp = &w->conns; *pp;) {
            struct conn *c = *pp;
            if (!c->done) {
                pp = &c->next;
                continue;
            }
            *pp = c->next;
            if (c->connecting) {
                /* A refused connect: retry later (dial forever, stream until its deadline). */
                w->reconnect_at_ns = t + (w->dial ? RECONNECT_NS : RECONNECT_NS / 5);
            } else {
                conn_report(w, c);
                if (w->dial)
                    w->reconnect_at_ns = t + RECONNECT_NS;
            }
            conn_free(c);
        }
    }
    return 0;
}

static int listen_on(const struct sockaddr_storage *ss, socklen_t len)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return negative_errno();
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, 128) < 0) {
        int r = negative_errno();
        close(fd);
        return r;
    }
    return fd;
}

static void set_port(struct sockaddr_storage *ss, unsigned port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}

static unsigned get_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: netckpt-workload serve --port P [--bind ADDR] [--report FILE]\n"
               "       netckpt-workload dial --connect ADDR:PORT [--conns K] [--report FILE]\n"
               "       netckpt-workload stream (--connect ADDR:PORT | --listen [ADDR:]PORT)\n"
               "                [--mode in|out|both|idle] [--seconds N] [--conns K]\n"
               "                [--rate BYTES_PER_S] [--chunk BYTES] [--connect-timeout S]\n"
               "                [--finish-timeout S] [--json FILE] [--ready-file FILE]\n"
               "serve: stream responder on P, echo on P+1, checksum lines on P+2.\n"
               "stream: mode is the controller's view (out: it sends). --seconds 0 runs until\n"
               "SIGINT/SIGTERM; SIGUSR1 records a marker. Prints a JSON report; exit 0 when every\n"
               "connection finished with both directions verified, 1 otherwise, 2 on bad usage.\n");
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || end == s || v > max || s[0] == '-')
        return -EINVAL;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    enum {
        OPT_PORT = 256,
        OPT_BIND,
        OPT_CONNECT,
        OPT_LISTEN,
        OPT_MODE,
        OPT_SECONDS,
        OPT_CONNS,
        OPT_RATE,
        OPT_CHUNK,
        OPT_CTIMEOUT,
        OPT_FTIMEOUT,
        OPT_JSON,
        OPT_REPORT,
        OPT_READY
    };
    static const struct option opts[] = {
        {"port", required_argument, NULL, OPT_PORT},
        {"bind", required_argument, NULL, OPT_BIND},
        {"connect", required_argument, NULL, OPT_CONNECT},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"mode", required_argument, NULL, OPT_MODE},
        {"seconds", required_argument, NULL, OPT_SECONDS},
        {"conns", required_argument, NULL, OPT_CONNS},
        {"rate", required_argument, NULL, OPT_RATE},
        {"chunk", required_argument, NULL, OPT_CHUNK},
        {"connect-timeout", required_argument, NULL, OPT_CTIMEOUT},
        {"finish-timeout", required_argument, NULL, OPT_FTIMEOUT},
        {"json", required_argument, NULL, OPT_JSON},
        {"report", required_argument, NULL, OPT_REPORT},
        {"ready-file", required_argument, NULL, OPT_READY},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    bool serve = !strcmp(cmd, "serve"), dial = !strcmp(cmd, "dial"),
         stream = !strcmp(cmd, "stream");
    if (!serve && !dial && !stream) {
        fprintf(stderr, "netckpt-workload: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
    }

    struct workload w = {
        .mode = MODE_BOTH,
        .chunk = DEFAULT_CHUNK,
        .conns_wanted = 1,
        .listen_fd = {-1, -1, -1},
        .sigfd = -1,
        .finish_timeout_ns = 120ull * 1000000000ull,
    };
    uint64_t port = 0, seconds = 10, conns = 1, rate = 0, chunk = DEFAULT_CHUNK, ctimeout = 30,
             ftimeout = 120;
    const char *bind_addr = NULL, *connect_to = NULL, *listen_at = NULL, *json_path = NULL,
               *report_path = NULL;
    int r = 0, o;
    optind = 2;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case OPT_PORT:
            r = parse_u64(optarg, 65533, &port);
            break;
        case OPT_BIND:
            bind_addr = optarg;
            break;
        case OPT_CONNECT:
            connect_to = optarg;
            break;
        case OPT_LISTEN:
            listen_at = optarg;
            break;
        case OPT_MODE:
            r = mode_parse(optarg, &w.mode);
            break;
        case OPT_SECONDS:
            r = parse_u64(optarg, 86400 * 365, &seconds);
            break;
        case OPT_CONNS:
            r = parse_u64(optarg, MAX_CONNS, &conns);
            r = r < 0 ? r : (conns ? 0 : -EINVAL);
            break;
        case OPT_RATE:
            r = parse_u64(optarg, UINT64_MAX / 1000000000ull, &rate);
            break;
        case OPT_CHUNK:
            r = parse_u64(optarg, FRAME_MAX_DATA, &chunk);
            r = r < 0 ? r : (chunk ? 0 : -EINVAL);
            break;
        case OPT_CTIMEOUT:
            r = parse_u64(optarg, 86400, &ctimeout);
            break;
        case OPT_FTIMEOUT:
            r = parse_u64(optarg, 86400, &ftimeout);
            break;
        case OPT_JSON:
            json_path = optarg;
            break;
        case OPT_REPORT:
            report_path = optarg;
            break;
        case OPT_READY:
            w.ready_file = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (r < 0) {
            fprintf(stderr, "netckpt-workload: bad value for --%s: '%s'\n", opts[o - OPT_PORT].name,
                    optarg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "netckpt-workload: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    w.rate = rate;
    w.chunk = (size_t)chunk;
    w.conns_wanted = (unsigned)conns;
    w.seconds_ns = seconds * 1000000000ull;
    w.finish_timeout_ns = ftimeout * 1000000000ull;
    w.start_ns = now_ns();
    w.connect_deadline_ns = w.start_ns + ctimeout * 1000000000ull;
    w.results = json_object_new_array();

    if (serve) {
        if (!port) {
            fprintf(stderr, "netckpt-workload serve: --port is required\n");
            return 2;
        }
        struct sockaddr_storage ss;
        socklen_t len;
        char spec[300];
        snprintf(spec, sizeof(spec), "%s:%llu", bind_addr ? bind_addr : "",
                 (unsigned long long)port);
        if (parse_hostport(spec, true, &ss, &len) < 0) {
            fprintf(stderr, "netckpt-workload: bad --bind address '%s'\n", bind_addr);
            return 2;
        }
        static const enum role roles[3] = {ROLE_RESPONDER, ROLE_ECHO, ROLE_LINES};
        for (size_t i = 0; i < 3; i++) {
            set_port(&ss, (unsigned)port + (unsigned)i);
            int fd = listen_on(&ss, len);
            if (fd < 0) {
                log_err("listen on port %llu: %s", (unsigned long long)port + i, strerror(-fd));
                return 1;
            }
            w.listen_fd[i] = fd;
            w.listen_role[i] = roles[i];
        }
        w.n_listen = 3;
        w.role = ROLE_RESPONDER;
        w.seconds_ns = 0;
        log_info("serving stream on %llu, echo on %llu, lines on %llu", (unsigned long long)port,
                 (unsigned long long)port + 1, (unsigned long long)port + 2);
    } else if (dial) {
        if (!connect_to || parse_hostport(connect_to, false, &w.connect_addr, &w.connect_len)) {
            fprintf(stderr, "netckpt-workload dial: --connect ADDR:PORT is required\n");
            return 2;
        }
        w.role = ROLE_RESPONDER;
        w.dial = true;
        w.seconds_ns = 0;
    } else {
        if (!!connect_to == !!listen_at) {
            fprintf(stderr, "netckpt-workload stream: give one of --connect or --listen\n");
            return 2;
        }
        w.role = ROLE_CONTROLLER;
        if (connect_to) {
            if (parse_hostport(connect_to, false, &w.connect_addr, &w.connect_len) < 0) {
                fprintf(stderr, "netckpt-workload: bad --connect '%s' (numeric ADDR:PORT)\n",
                        connect_to);
                return 2;
            }
        } else {
            struct sockaddr_storage ss;
            socklen_t len;
            if (parse_hostport(listen_at, true, &ss, &len) < 0 || !get_port(&ss)) {
                fprintf(stderr, "netckpt-workload: bad --listen '%s'\n", listen_at);
                return 2;
            }
            int fd = listen_on(&ss, len);
            if (fd < 0) {
                log_err("listen on %s: %s", listen_at, strerror(-fd));
                return 1;
            }
            w.listen_fd[0] = fd;
            w.listen_role[0] = ROLE_CONTROLLER;
            w.n_listen = 1;
        }
    }
    if (report_path) {
        w.report = fopen(report_path, "ae");
        if (!w.report) {
            log_err("cannot open %s: %m", report_path);
            return 1;
        }
    }

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGUSR1);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    w.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (w.sigfd < 0) {
        log_err("signalfd: %m");
        return 1;
    }

    r = event_loop(&w);

    /* Connections still open at a forced quit are reported as failed. */
    while (w.conns) {
        struct conn *c = w.conns;
        w.conns = c->next;
        if (!c->connecting) {
            conn_fail(c, "aborted", 0);
            conn_report(&w, c);
        }
        conn_free(c);
    }
    int status = 0;
    if (stream) {
        unsigned ok = 0, total = (unsigned)json_object_array_length(w.results);
        double worst = 0;
        json_object *summary = json_object_new_object();
        json_object *mk = json_object_new_array();
        for (size_t m = 0; m < w.n_markers; m++) {
            double wm = -1;
            for (size_t i = 0; i < total; i++) {
                json_object *cj = json_object_array_get_idx(w.results, i);
                for (int d = 0; d < 2; d++) {
                    json_object *dj, *a;
                    json_object_object_get_ex(cj, d ? "rx" : "tx", &dj);
                    json_object_object_get_ex(dj, "stall_after_marker_ms", &a);
                    json_object *v = json_object_array_get_idx(a, m);
                    if (v && json_object_get_double(v) > wm)
                        wm = json_object_get_double(v);
                }
            }
            json_object *e = json_object_new_object();
            json_object_object_add(
                e, "t_ms", json_object_new_double(ns_to_ms(w.markers[m].t_ns - w.start_ns)));
            json_object_object_add(e, "worst_stall_ms",
                                   wm >= 0 ? json_object_new_double(wm) : NULL);
            json_object_array_add(mk, e);
        }
        for (size_t i = 0; i < total; i++) {
            json_object *cj = json_object_array_get_idx(w.results, i), *v;
            if (json_object_object_get_ex(cj, "ok", &v) && json_object_get_boolean(v))
                ok++;
            for (int d = 0; d < 2; d++) {
                json_object *dj;
                json_object_object_get_ex(cj, d ? "rx" : "tx", &dj);
                if (json_object_object_get_ex(dj, "max_stall_ms", &v) && v &&
                    json_object_get_double(v) > worst)
                    worst = json_object_get_double(v);
            }
        }
        if (total < w.conns_wanted)
            log_err("only %u of %u connection(s) were established", total, w.conns_wanted);
        json_object_object_add(summary, "connections", json_object_new_int((int)w.conns_wanted));
        json_object_object_add(summary, "ok", json_object_new_int((int)ok));
        json_object_object_add(summary, "failed", json_object_new_int((int)(w.conns_wanted - ok)));
        json_object_object_add(summary, "max_stall_ms", json_object_new_double(worst));
        json_object_object_add(summary, "markers", mk);
        json_object *top = json_object_new_object();
        json_object_object_add(top, "format", json_object_new_string("netckpt-workload-stream"));
        json_object_object_add(top, "mode", json_object_new_string(mode_name(w.mode)));
        json_object_object_add(top, "summary", summary);
        json_object_object_add(top, "connections", json_object_get(w.results));
        const char *s = json_object_to_json_string_ext(top, JSON_C_TO_STRING_PRETTY |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE);
        if (json_path) {
            FILE *f = fopen(json_path, "we");
            if (!f || fprintf(f, "%s\n", s) < 0 || fclose(f) != 0) {
                log_err("cannot write %s", json_path);
                status = 1;
            }
        } else {
            printf("%s\n", s);
        }
        json_object_put(top);
        if (ok < w.conns_wanted || r < 0)
            status = 1;
    }
    json_object_put(w.results);
    for (size_t i = 0; i < w.n_listen; i++)
        if (w.listen_fd[i] >= 0)
            close(w.listen_fd[i]);
    close(w.sigfd);
    if (w.report)
        fclose(w.report);
    return status;
}
