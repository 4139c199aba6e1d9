/* guest/socket-image.c: see socket-image.h. The parser treats its input as hostile: it checks
 * every type and range, refuses unknown keys, bounds every allocation before making it, and
 * recomputes each queue's sha256. */
#include "guest/socket-image.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/macro.h"
#include "common/util.h"

/* ---------------------------------------------------------------- writing */

const char *tcp_endpoint_addr_str(const struct tcp_endpoint *ep, char *buf, size_t len)
{
    if (ep->family == AF_INET)
        return inet_ntop(AF_INET, &ep->addr.s6_addr[12], buf, (socklen_t)len);
    return inet_ntop(AF_INET6, &ep->addr, buf, (socklen_t)len);
}

static int add(json_object *o, const char *key, json_object *v)
{
    if (!v)
        return -ENOMEM;
    if (json_object_object_add(o, key, v) < 0) {
        json_object_put(v);
        return -ENOMEM;
    }
    return 0;
}

/* Add keys[i] = vals[i] in order (o may be NULL: out of memory). After the first failure the
 * remaining values are released, so the caller owns nothing either way. */
static int add_all(json_object *o, const char *const *keys, json_object **vals, size_t n)
{
    int r = o ? 0 : -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (r == 0)
            r = add(o, keys[i], vals[i]);
        else
            json_object_put(vals[i]);
    }
    return r;
}

#define ADD_ALL(o, keys, vals)                                                                     \
    ({                                                                                             \
        _Static_assert(ELEMENTSOF(keys) == ELEMENTSOF(vals), "one value per key");                 \
        add_all(o, keys, vals, ELEMENTSOF(keys));                                                  \
    })

/* A new object holding keys/vals, or NULL (the values released). */
static json_object *new_obj(const char *const *keys, json_object **vals, size_t n)
{
    json_object *o = json_object_new_object();
    if (add_all(o, keys, vals, n) < 0) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

#define NEW_OBJ(keys, vals)                                                                        \
    ({                                                                                             \
        _Static_assert(ELEMENTSOF(keys) == ELEMENTSOF(vals), "one value per key");                 \
        new_obj(keys, vals, ELEMENTSOF(keys));                                                     \
    })

static json_object *endpoint_json(const struct tcp_endpoint *ep)
{
    char buf[INET6_ADDRSTRLEN];
    if (!tcp_endpoint_addr_str(ep, buf, sizeof(buf)))
        return NULL;
    static const char *const k[] = {"addr", "port"};
    json_object *v[] = {json_object_new_string(buf), json_object_new_int(ep->port)};
    return NEW_OBJ(k, v);
}

static json_object *queue_json(const struct tcp_repair_queue *q)
{
    char sha[SHA256_HEX_LEN];
    sha256_hex(q->data ? (const void *)q->data : "", q->len, sha);
    _cleanup_free_ char *b64 = base64_encode(q->data ? (const void *)q->data : "", q->len);
    if (!b64)
        return NULL;
    static const char *const k[] = {"len", "sha256", "data"};
    json_object *v[] = {json_object_new_int64(q->len), json_object_new_string(sha),
                        json_object_new_string(b64)};
    return NEW_OBJ(k, v);
}

static json_object *owners_json(const struct image_conn *c)
{
    json_object *owners = json_object_new_array();
    for (size_t i = 0; owners && i < c->n_owners; i++) {
        static const char *const k[] = {"pid", "fd", "comm"};
        json_object *v[] = {json_object_new_int(c->owners[i].pid),
                            json_object_new_int(c->owners[i].fd),
                            json_object_new_string(c->owners[i].comm)};
        json_object *w = NEW_OBJ(k, v);
        if (!w || json_object_array_add(owners, w) < 0) {
            json_object_put(w);
            json_object_put(owners);
            return NULL;
        }
    }
    return owners;
}

static json_object *conn_json(const struct image_conn *c)
{
    const struct tcp_conn_state *st = &c->st;
    const char *state = tcp_state_name(st->state);
    if (!state)
        return NULL;
    json_object *o = json_object_new_object();
    static const char *const k[] = {"id",      "inode",  "owners", "family",  "v6only",
                                    "state",   "local",  "remote", "snd_seq", "rcv_seq",
                                    "unacked", "unsent", "recv"};
    json_object *v[] = {json_object_new_int64(c->id),
                        json_object_new_int64((int64_t)c->inode),
                        owners_json(c),
                        json_object_new_string(st->sock_family == AF_INET6 ? "ipv6" : "ipv4"),
                        json_object_new_boolean(st->v6only),
                        json_object_new_string(state),
                        endpoint_json(&st->local),
                        endpoint_json(&st->remote),
                        json_object_new_int64(st->snd_seq),
                        json_object_new_int64(st->rcv_seq),
                        queue_json(&st->unacked),
                        queue_json(&st->unsent),
                        queue_json(&st->recv)};
    int r = ADD_ALL(o, k, v);
    if (r == 0 && st->has_window) {
        static const char *const wk[] = {"snd_wl1", "snd_wnd", "max_window", "rcv_wnd", "rcv_wup"};
        json_object *wv[] = {
            json_object_new_int64(st->window.snd_wl1), json_object_new_int64(st->window.snd_wnd),
            json_object_new_int64(st->window.max_window), json_object_new_int64(st->window.rcv_wnd),
            json_object_new_int64(st->window.rcv_wup)};
        r = add(o, "window", NEW_OBJ(wk, wv));
    }
    if (r == 0) {
        static const char *const pk[] = {"mss",    "sack",       "timestamps",
                                         "wscale", "snd_wscale", "rcv_wscale"};
        json_object *pv[] = {json_object_new_int64(st->mss),
                             json_object_new_boolean(st->opt_sack),
                             json_object_new_boolean(st->opt_timestamps),
                             json_object_new_boolean(st->opt_wscale),
                             json_object_new_int(st->snd_wscale),
                             json_object_new_int(st->rcv_wscale)};
        r = add(o, "options", NEW_OBJ(pk, pv));
    }
    if (r == 0)
        r = add(o, "timestamp", json_object_new_int64(st->timestamp));
    if (r == 0) {
        static const char *const sk[] = {"nodelay",   "cork",    "keepalive",      "keepidle",
                                         "keepintvl", "keepcnt", "user_timeout_ms"};
        json_object *sv[] = {
            json_object_new_boolean(st->nodelay),           json_object_new_boolean(st->cork),
            json_object_new_boolean(st->keepalive.enabled), json_object_new_int(st->keepalive.idle),
            json_object_new_int(st->keepalive.intvl),       json_object_new_int(st->keepalive.cnt),
            json_object_new_int64(st->user_timeout_ms)};
        r = add(o, "settings", NEW_OBJ(sk, sv));
    }
    if (r < 0) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

static json_object *skipped_json(const struct image_skipped *s)
{
    const char *state = tcp_state_name(s->state);
    if (!state || !s->reason)
        return NULL;
    static const char *const k[] = {"local", "remote", "state", "reason"};
    json_object *v[] = {endpoint_json(&s->local), endpoint_json(&s->remote),
                        json_object_new_string(state), json_object_new_string(s->reason)};
    return NEW_OBJ(k, v);
}

json_object *socket_image_to_json(const struct socket_image *img)
{
    json_object *o = json_object_new_object();
    json_object *conns = json_object_new_array_ext((int)(img->n_conns ? img->n_conns : 1));
    json_object *skipped = json_object_new_array();
    int r = o && conns && skipped ? 0 : -ENOMEM;
    for (size_t i = 0; r == 0 && i < img->n_conns; i++) {
        json_object *c = conn_json(&img->conns[i]);
        if (!c || json_object_array_add(conns, c) < 0) {
            json_object_put(c);
            r = -ENOMEM;
        }
    }
    for (size_t i = 0; r == 0 && i < img->n_skipped; i++) {
        json_object *c = skipped_json(&img->skipped[i]);
        if (!c || json_object_array_add(skipped, c) < 0) {
            json_object_put(c);
            r = -ENOMEM;
        }
    }
    if (r == 0) {
        static const char *const k[] = {"format",      "version",     "image_id",
                                        "boot_id",     "hostname",    "monotonic_ns",
                                        "realtime_ns", "connections", "skipped"};
        json_object *v[] = {json_object_new_string(SOCKET_IMAGE_FORMAT),
                            json_object_new_int(SOCKET_IMAGE_VERSION),
                            json_object_new_string(img->image_id),
                            json_object_new_string(img->boot_id),
                            json_object_new_string(img->hostname),
                            json_object_new_int64((int64_t)img->monotonic_ns),
                            json_object_new_int64((int64_t)img->realtime_ns),
                            TAKE_PTR(conns),
                            TAKE_PTR(skipped)};
        r = ADD_ALL(o, k, v);
    }
    json_object_put(conns);
    json_object_put(skipped);
    if (r < 0) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

int socket_image_init_header(struct socket_image *img)
{
    int r = random_id(img->image_id);
    if (r < 0)
        return r;
    _cleanup_free_ char *boot = NULL;
    size_t len = 0;
    r = read_file("/proc/sys/kernel/random/boot_id", 64, &boot, &len);
    if (r < 0)
        return r;
    while (len > 0 && (boot[len - 1] == '\n' || boot[len - 1] == ' '))
        boot[--len] = 0;
    if (len != 36)
        return -EIO;
    memcpy(img->boot_id, boot, 37);
    char host[256] = "";
    if (gethostname(host, sizeof(host) - 1) < 0)
        host[0] = 0;
    size_t hl = strnlen(host, 64);
    for (size_t i = 0; i < hl; i++)
        if ((unsigned char)host[i] < 0x20 || (unsigned char)host[i] >= 0x7f)
            host[i] = '?'; /* ASCII only: the host's parser insists on valid UTF-8 */
    memcpy(img->hostname, host, hl);
    img->hostname[hl] = 0;
    img->monotonic_ns = now_monotonic_ns();
    img->realtime_ns = now_realtime_ns();
    return 0;
}

/* ---------------------------------------------------------------- parsing */

struct pctx {
    char *err;
    size_t errlen;
    uint64_t total_queue;
};

static int fail(struct pctx *c, int r, const char *path, const char *fmt, ...) _printf_(4, 5);
static int fail(struct pctx *c, int r, const char *path, const char *fmt, ...)
{
    if (c->err && c->errlen) {
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        snprintf(c->err, c->errlen, "%s: %s", path, msg);
    }
    return r;
}

/* Refuse keys outside allowed (a NULL-terminated list). */
static int only_keys(struct pctx *c, json_object *o, const char *path, const char *const *allowed)
{
    json_object_object_foreach(o, key, val)
    {
        (void)val;
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, key) == 0;
        if (!ok)
            return fail(c, -EINVAL, path, "unknown key \"%.64s\"", key);
    }
    return 0;
}

static int get_field(struct pctx *c, json_object *o, const char *path, const char *key,
                     json_type type, bool required, json_object **out)
{
    static const char *const names[] = {"null",   "boolean", "number", "number",
                                        "object", "array",   "string"};
    json_object *v = NULL;
    *out = NULL;
    if (!json_object_object_get_ex(o, key, &v)) {
        if (required)
            return fail(c, -EINVAL, path, "missing \"%s\"", key);
        return 0;
    }
    if (!json_object_is_type(v, type)) {
        json_type t = json_object_get_type(v);
        return fail(c, -EINVAL, path, "\"%s\" must be %s, not %s", key,
                    type == json_type_int ? "an integer" : names[type],
                    t == json_type_double ? "a fraction" : names[t]);
    }
    *out = v;
    return 0;
}

static int get_int(struct pctx *c, json_object *o, const char *path, const char *key, int64_t min,
                   int64_t max, int64_t *out)
{
    json_object *v;
    int r = get_field(c, o, path, key, json_type_int, true, &v);
    if (r < 0)
        return r;
    int64_t x = json_object_get_int64(v);
    /* json-c keeps integers above INT64_MAX as uint64 and clamps get_int64. */
    if (x >= 0 && json_object_get_uint64(v) != (uint64_t)x)
        return fail(c, -EINVAL, path, "\"%s\" out of range", key);
    if (x < min || x > max)
        return fail(c, -EINVAL, path, "\"%s\" = %lld out of range [%lld, %lld]", key, (long long)x,
                    (long long)min, (long long)max);
    *out = x;
    return 0;
}

static int get_bool(struct pctx *c, json_object *o, const char *path, const char *key, bool *out)
{
    json_object *v;
    int r = get_field(c, o, path, key, json_type_boolean, true, &v);
    if (r < 0)
        return r;
    *out = json_object_get_boolean(v);
    return 0;
}

/* A string without NUL bytes of at most maxlen bytes. */
static int get_str(struct pctx *c, json_object *o, const char *path, const char *key, size_t maxlen,
                   const char **out, size_t *len)
{
    json_object *v;
    int r = get_field(c, o, path, key, json_type_string, true, &v);
    if (r < 0)
        return r;
    const char *s = json_object_get_string(v);
    size_t l = (size_t)json_object_get_string_len(v);
    if (l > maxlen)
        return fail(c, -EINVAL, path, "\"%s\" longer than %zu bytes", key, maxlen);
    if (strlen(s) != l)
        return fail(c, -EINVAL, path, "\"%s\" contains a NUL byte", key);
    *out = s;
    if (len)
        *len = l;
    return 0;
}

static bool is_hex_lower(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static bool is_uuid(const char *s, size_t l)
{
    if (l != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !is_hex_lower(&s[i], 1))
            return false;
    }
    return true;
}

static bool is_printable(const char *s, size_t l)
{
    for (size_t i = 0; i < l; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* family: AF_INET or AF_INET6 to insist on, 0 to accept either textual form. */
static int parse_endpoint(struct pctx *c, json_object *parent, const char *ppath, const char *key,
                          int family, int min_port, struct tcp_endpoint *ep)
{
    char path[96];
    snprintf(path, sizeof(path), "%s.%s", ppath, key);
    json_object *o;
    int r = get_field(c, parent, ppath, key, json_type_object, true, &o);
    if (r < 0)
        return r;
    static const char *const keys[] = {"addr", "port", NULL};
    if ((r = only_keys(c, o, path, keys)) < 0)
        return r;
    const char *a;
    int64_t port;
    if ((r = get_str(c, o, path, "addr", INET6_ADDRSTRLEN - 1, &a, NULL)) < 0 ||
        (r = get_int(c, o, path, "port", min_port, 65535, &port)) < 0)
        return r;
    memset(ep, 0, sizeof(*ep));
    /* endpoint.family is the wire protocol: a v4-mapped address (a dual-stack socket's IPv4
     * peer) is AF_INET whichever way it is written. */
    struct in_addr v4;
    if (inet_pton(AF_INET, a, &v4) == 1) {
        ep->family = AF_INET;
        ep->addr.s6_addr[10] = 0xff;
        ep->addr.s6_addr[11] = 0xff;
        memcpy(&ep->addr.s6_addr[12], &v4, 4);
    } else if (family != AF_INET && inet_pton(AF_INET6, a, &ep->addr) == 1) {
        ep->family = IN6_IS_ADDR_V4MAPPED(&ep->addr) ? AF_INET : AF_INET6;
    } else {
        return fail(c, -EINVAL, path, "\"addr\" is not an %s address",
                    family == AF_INET ? "IPv4" : "IP");
    }
    ep->port = (uint16_t)port;
    return 0;
}

static int parse_queue(struct pctx *c, json_object *parent, const char *ppath, const char *key,
                       struct tcp_repair_queue *q)
{
    char path[96];
    snprintf(path, sizeof(path), "%s.%s", ppath, key);
    json_object *o;
    int r = get_field(c, parent, ppath, key, json_type_object, true, &o);
    if (r < 0)
        return r;
    static const char *const keys[] = {"len", "sha256", "data", NULL};
    if ((r = only_keys(c, o, path, keys)) < 0)
        return r;
    int64_t len;
    const char *sha, *data;
    size_t sha_len, data_len;
    if ((r = get_int(c, o, path, "len", 0, SOCKET_IMAGE_MAX_QUEUE, &len)) < 0 ||
        (r = get_str(c, o, path, "sha256", 64, &sha, &sha_len)) < 0)
        return r;
    if (sha_len != 64 || !is_hex_lower(sha, 64))
        return fail(c, -EINVAL, path, "\"sha256\" must be 64 lowercase hex digits");
    /* Bound the decode by the declared length before allocating anything. */
    size_t want = 4 * (((size_t)len + 2) / 3);
    if ((r = get_str(c, o, path, "data", 4 * ((SOCKET_IMAGE_MAX_QUEUE + 2) / 3), &data,
                     &data_len)) < 0)
        return r;
    if (data_len != want)
        return fail(c, -EINVAL, path, "\"data\" is not the base64 of \"len\" bytes");
    if (c->total_queue + (uint64_t)len > SOCKET_IMAGE_MAX_TOTAL_QUEUE)
        return fail(c, -E2BIG, path, "queues exceed %llu bytes in total",
                    (unsigned long long)SOCKET_IMAGE_MAX_TOTAL_QUEUE);
    uint8_t *buf = NULL;
    size_t got = 0;
    r = base64_decode(data, data_len, &buf, &got);
    if (r == -ENOMEM)
        return fail(c, r, path, "out of memory");
    if (r < 0)
        return fail(c, -EINVAL, path, "\"data\" is not valid base64");
    if (got != (size_t)len) {
        free(buf);
        return fail(c, -EINVAL, path, "\"data\" decodes to %zu bytes, \"len\" says %lld", got,
                    (long long)len);
    }
    char actual[SHA256_HEX_LEN];
    sha256_hex(buf, got, actual);
    if (memcmp(actual, sha, 64) != 0) {
        free(buf);
        return fail(c, -EINVAL, path, "\"sha256\" does not match the data");
    }
    c->total_queue += (uint64_t)len;
    if (got == 0) {
        free(buf);
        buf = NULL;
    }
    q->data = buf;
    q->len = (uint32_t)len;
    return 0;
}

static bool repairable_state(int s)
{
    switch (s) {
    case TCP_ESTABLISHED:
    case TCP_SYN_SENT:
    case TCP_FIN_WAIT1:
    case TCP_FIN_WAIT2:
    case TCP_CLOSE_WAIT:
    case TCP_LAST_ACK:
    case TCP_CLOSING:
        return true;
    default:
        return false;
    }
}

static int parse_state(struct pctx *c, json_object *o, const char *path, bool conn, uint8_t *out)
{
    const char *s;
    int r = get_str(c, o, path, "state", 32, &s, NULL);
    if (r < 0)
        return r;
    int st = tcp_state_from_name(s);
    if (st <= 0 || st > 255)
        return fail(c, -EINVAL, path, "unknown state \"%s\"", s);
    if (conn && !repairable_state(st))
        return fail(c, -EINVAL, path, "state \"%s\" cannot be a frozen connection", s);
    *out = (uint8_t)st;
    return 0;
}

static int parse_owners(struct pctx *c, json_object *conn, const char *ppath, struct image_conn *ic)
{
    json_object *a;
    int r = get_field(c, conn, ppath, "owners", json_type_array, true, &a);
    if (r < 0)
        return r;
    size_t n = json_object_array_length(a);
    if (n == 0)
        return fail(c, -EINVAL, ppath, "\"owners\" is empty");
    if (n > SOCKET_IMAGE_MAX_OWNERS)
        return fail(c, -E2BIG, ppath, "more than %u owners", SOCKET_IMAGE_MAX_OWNERS);
    ic->owners = calloc(n, sizeof(*ic->owners));
    if (!ic->owners)
        return fail(c, -ENOMEM, ppath, "out of memory");
    ic->n_owners = n;
    static const char *const keys[] = {"pid", "fd", "comm", NULL};
    for (size_t i = 0; i < n; i++) {
        char path[96];
        snprintf(path, sizeof(path), "%s.owners[%zu]", ppath, i);
        json_object *w = json_object_array_get_idx(a, i);
        if (!json_object_is_type(w, json_type_object))
            return fail(c, -EINVAL, path, "must be an object");
        int64_t pid, fd;
        const char *comm;
        size_t cl;
        if ((r = only_keys(c, w, path, keys)) < 0 ||
            (r = get_int(c, w, path, "pid", 1, 4194304, &pid)) < 0 ||
            (r = get_int(c, w, path, "fd", 0, INT_MAX, &fd)) < 0 ||
            (r = get_str(c, w, path, "comm", 15, &comm, &cl)) < 0)
            return r;
        if (!is_printable(comm, cl))
            return fail(c, -EINVAL, path, "\"comm\" has control characters");
        ic->owners[i].pid = (pid_t)pid;
        ic->owners[i].fd = (int)fd;
        memcpy(ic->owners[i].comm, comm, cl + 1);
    }
    return 0;
}

static int parse_conn(struct pctx *c, json_object *o, const char *path, struct image_conn *ic)
{
    static const char *const keys[] = {"id",        "inode",    "owners", "family",  "v6only",
                                       "state",     "local",    "remote", "snd_seq", "rcv_seq",
                                       "unacked",   "unsent",   "recv",   "window",  "options",
                                       "timestamp", "settings", NULL};
    int r;
    if (!json_object_is_type(o, json_type_object))
        return fail(c, -EINVAL, path, "must be an object");
    if ((r = only_keys(c, o, path, keys)) < 0)
        return r;
    struct tcp_conn_state *st = &ic->st;
    int64_t v;
    if ((r = get_int(c, o, path, "id", 0, UINT32_MAX, &v)) < 0)
        return r;
    ic->id = (uint32_t)v;
    if ((r = get_int(c, o, path, "inode", 0, INT64_MAX, &v)) < 0)
        return r;
    ic->inode = (uint64_t)v;
    if ((r = parse_owners(c, o, path, ic)) < 0)
        return r;
    const char *fam;
    if ((r = get_str(c, o, path, "family", 8, &fam, NULL)) < 0)
        return r;
    if (strcmp(fam, "ipv4") == 0)
        st->sock_family = AF_INET;
    else if (strcmp(fam, "ipv6") == 0)
        st->sock_family = AF_INET6;
    else
        return fail(c, -EINVAL, path, "\"family\" must be \"ipv4\" or \"ipv6\"");
    if ((r = get_bool(c, o, path, "v6only", &st->v6only)) < 0)
        return r;
    if (st->sock_family == AF_INET && st->v6only)
        return fail(c, -EINVAL, path, "\"v6only\" set on an ipv4 socket");
    if ((r = parse_state(c, o, path, true, &st->state)) < 0 ||
        (r = parse_endpoint(c, o, path, "local", st->sock_family, 1, &st->local)) < 0 ||
        (r = parse_endpoint(c, o, path, "remote", st->sock_family, 1, &st->remote)) < 0)
        return r;
    if (st->local.family != st->remote.family)
        return fail(c, -EINVAL, path, "local and remote address families differ");
    if (st->v6only && st->local.family == AF_INET)
        return fail(c, -EINVAL, path, "IPv4 addresses on a v6only socket");
    if ((r = get_int(c, o, path, "snd_seq", 0, UINT32_MAX, &v)) < 0)
        return r;
    st->snd_seq = (uint32_t)v;
    if ((r = get_int(c, o, path, "rcv_seq", 0, UINT32_MAX, &v)) < 0)
        return r;
    st->rcv_seq = (uint32_t)v;
    if ((r = parse_queue(c, o, path, "unacked", &st->unacked)) < 0 ||
        (r = parse_queue(c, o, path, "unsent", &st->unsent)) < 0 ||
        (r = parse_queue(c, o, path, "recv", &st->recv)) < 0)
        return r;
    if ((uint64_t)st->unacked.len + st->unsent.len > SOCKET_IMAGE_MAX_QUEUE)
        return fail(c, -E2BIG, path, "send queue over %u bytes", SOCKET_IMAGE_MAX_QUEUE);

    json_object *w;
    char sub[96];
    if ((r = get_field(c, o, path, "window", json_type_object, false, &w)) < 0)
        return r;
    if (w) {
        static const char *const wkeys[] = {"snd_wl1", "snd_wnd", "max_window",
                                            "rcv_wnd", "rcv_wup", NULL};
        snprintf(sub, sizeof(sub), "%s.window", path);
        uint32_t *dst[] = {&st->window.snd_wl1, &st->window.snd_wnd, &st->window.max_window,
                           &st->window.rcv_wnd, &st->window.rcv_wup};
        if ((r = only_keys(c, w, sub, wkeys)) < 0)
            return r;
        for (size_t i = 0; i < ELEMENTSOF(dst); i++) {
            if ((r = get_int(c, w, sub, wkeys[i], 0, UINT32_MAX, &v)) < 0)
                return r;
            *dst[i] = (uint32_t)v;
        }
        st->has_window = true;
    }

    json_object *p;
    if ((r = get_field(c, o, path, "options", json_type_object, true, &p)) < 0)
        return r;
    snprintf(sub, sizeof(sub), "%s.options", path);
    static const char *const okeys[] = {"mss",        "sack",       "timestamps", "wscale",
                                        "snd_wscale", "rcv_wscale", NULL};
    if ((r = only_keys(c, p, sub, okeys)) < 0 || (r = get_int(c, p, sub, "mss", 0, 65535, &v)) < 0)
        return r;
    st->mss = (uint32_t)v;
    if ((r = get_bool(c, p, sub, "sack", &st->opt_sack)) < 0 ||
        (r = get_bool(c, p, sub, "timestamps", &st->opt_timestamps)) < 0 ||
        (r = get_bool(c, p, sub, "wscale", &st->opt_wscale)) < 0)
        return r;
    if ((r = get_int(c, p, sub, "snd_wscale", 0, 14, &v)) < 0)
        return r;
    st->snd_wscale = (uint8_t)v;
    if ((r = get_int(c, p, sub, "rcv_wscale", 0, 14, &v)) < 0)
        return r;
    st->rcv_wscale = (uint8_t)v;

    if ((r = get_int(c, o, path, "timestamp", 0, UINT32_MAX, &v)) < 0)
        return r;
    st->timestamp = (uint32_t)v;

    json_object *s;
    if ((r = get_field(c, o, path, "settings", json_type_object, true, &s)) < 0)
        return r;
    snprintf(sub, sizeof(sub), "%s.settings", path);
    static const char *const skeys[] = {"nodelay",   "cork",    "keepalive",       "keepidle",
                                        "keepintvl", "keepcnt", "user_timeout_ms", NULL};
    if ((r = only_keys(c, s, sub, skeys)) < 0 ||
        (r = get_bool(c, s, sub, "nodelay", &st->nodelay)) < 0 ||
        (r = get_bool(c, s, sub, "cork", &st->cork)) < 0 ||
        (r = get_bool(c, s, sub, "keepalive", &st->keepalive.enabled)) < 0)
        return r;
    if ((r = get_int(c, s, sub, "keepidle", 0, 32767, &v)) < 0)
        return r;
    st->keepalive.idle = (int)v;
    if ((r = get_int(c, s, sub, "keepintvl", 0, 32767, &v)) < 0)
        return r;
    st->keepalive.intvl = (int)v;
    if ((r = get_int(c, s, sub, "keepcnt", 0, 127, &v)) < 0)
        return r;
    st->keepalive.cnt = (int)v;
    if ((r = get_int(c, s, sub, "user_timeout_ms", 0, INT32_MAX, &v)) < 0)
        return r;
    st->user_timeout_ms = (uint32_t)v;
    return 0;
}

static const char *skip_reason(const char *s)
{
    static const char *const reasons[] = {SKIP_LOOPBACK, SKIP_INTRA_GUEST, SKIP_LISTEN,
                                          SKIP_NOT_OWNED};
    for (size_t i = 0; i < ELEMENTSOF(reasons); i++)
        if (strcmp(s, reasons[i]) == 0)
            return reasons[i];
    return NULL;
}

static int parse_skipped(struct pctx *c, json_object *o, const char *path, struct image_skipped *sk)
{
    static const char *const keys[] = {"local", "remote", "state", "reason", NULL};
    int r;
    if (!json_object_is_type(o, json_type_object))
        return fail(c, -EINVAL, path, "must be an object");
    if ((r = only_keys(c, o, path, keys)) < 0 ||
        (r = parse_endpoint(c, o, path, "local", 0, 0, &sk->local)) < 0 ||
        (r = parse_endpoint(c, o, path, "remote", 0, 0, &sk->remote)) < 0 ||
        (r = parse_state(c, o, path, false, &sk->state)) < 0)
        return r;
    const char *reason;
    if ((r = get_str(c, o, path, "reason", 32, &reason, NULL)) < 0)
        return r;
    sk->reason = skip_reason(reason);
    if (!sk->reason)
        return fail(c, -EINVAL, path, "unknown reason \"%s\"", reason);
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static int check_unique_ids(struct pctx *c, const struct socket_image *img)
{
    if (img->n_conns < 2)
        return 0;
    _cleanup_free_ uint32_t *ids = calloc(img->n_conns, sizeof(*ids));
    if (!ids)
        return fail(c, -ENOMEM, "connections", "out of memory");
    for (size_t i = 0; i < img->n_conns; i++)
        ids[i] = img->conns[i].id;
    qsort(ids, img->n_conns, sizeof(*ids), cmp_u32);
    for (size_t i = 1; i < img->n_conns; i++)
        if (ids[i] == ids[i - 1])
            return fail(c, -EINVAL, "connections", "duplicate id %u", ids[i]);
    return 0;
}

static int parse_image(struct pctx *c, json_object *j, struct socket_image *img)
{
    static const char *const keys[] = {
        "format",       "version",     "image_id",    "boot_id", "hostname",
        "monotonic_ns", "realtime_ns", "connections", "skipped", NULL};
    int r;
    if (!j || !json_object_is_type(j, json_type_object))
        return fail(c, -EINVAL, "image", "must be a JSON object");
    if ((r = only_keys(c, j, "image", keys)) < 0)
        return r;
    const char *s;
    size_t l;
    int64_t v;
    if ((r = get_str(c, j, "image", "format", 64, &s, NULL)) < 0)
        return r;
    if (strcmp(s, SOCKET_IMAGE_FORMAT) != 0)
        return fail(c, -EINVAL, "image", "\"format\" is not \"%s\"", SOCKET_IMAGE_FORMAT);
    if ((r = get_int(c, j, "image", "version", SOCKET_IMAGE_VERSION, SOCKET_IMAGE_VERSION, &v)) < 0)
        return r;
    if ((r = get_str(c, j, "image", "image_id", 32, &s, &l)) < 0)
        return r;
    if (l != 32 || !is_hex_lower(s, 32))
        return fail(c, -EINVAL, "image", "\"image_id\" must be 32 lowercase hex digits");
    memcpy(img->image_id, s, 33);
    if ((r = get_str(c, j, "image", "boot_id", 36, &s, &l)) < 0)
        return r;
    if (!is_uuid(s, l))
        return fail(c, -EINVAL, "image", "\"boot_id\" must be a lowercase uuid");
    memcpy(img->boot_id, s, 37);
    if ((r = get_str(c, j, "image", "hostname", 64, &s, &l)) < 0)
        return r;
    if (!is_printable(s, l))
        return fail(c, -EINVAL, "image", "\"hostname\" has control characters");
    memcpy(img->hostname, s, l + 1);
    if ((r = get_int(c, j, "image", "monotonic_ns", 0, INT64_MAX, &v)) < 0)
        return r;
    img->monotonic_ns = (uint64_t)v;
    if ((r = get_int(c, j, "image", "realtime_ns", 0, INT64_MAX, &v)) < 0)
        return r;
    img->realtime_ns = (uint64_t)v;

    json_object *a;
    if ((r = get_field(c, j, "image", "connections", json_type_array, true, &a)) < 0)
        return r;
    size_t n = json_object_array_length(a);
    if (n > SOCKET_IMAGE_MAX_CONNS)
        return fail(c, -E2BIG, "image", "more than %u connections", SOCKET_IMAGE_MAX_CONNS);
    if (n) {
        img->conns = calloc(n, sizeof(*img->conns));
        if (!img->conns)
            return fail(c, -ENOMEM, "image", "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        char path[48];
        snprintf(path, sizeof(path), "connections[%zu]", i);
        img->n_conns = i + 1; /* so a partial entry is freed on failure */
        if ((r = parse_conn(c, json_object_array_get_idx(a, i), path, &img->conns[i])) < 0)
            return r;
    }
    if ((r = check_unique_ids(c, img)) < 0)
        return r;

    if ((r = get_field(c, j, "image", "skipped", json_type_array, true, &a)) < 0)
        return r;
    n = json_object_array_length(a);
    if (n > SOCKET_IMAGE_MAX_SKIPPED)
        return fail(c, -E2BIG, "image", "more than %u skipped sockets", SOCKET_IMAGE_MAX_SKIPPED);
    if (n) {
        img->skipped = calloc(n, sizeof(*img->skipped));
        if (!img->skipped)
            return fail(c, -ENOMEM, "image", "out of memory");
    }
    img->n_skipped = n;
    for (size_t i = 0; i < n; i++) {
        char path[48];
        snprintf(path, sizeof(path), "skipped[%zu]", i);
        if ((r = parse_skipped(c, json_object_array_get_idx(a, i), path, &img->skipped[i])) < 0)
            return r;
    }
    return 0;
}

int socket_image_from_json(json_object *j, struct socket_image *out, char *err, size_t errlen)
{
    struct pctx c = {.err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = 0;
    memset(out, 0, sizeof(*out));
    int r = parse_image(&c, j, out);
    if (r < 0)
        socket_image_free(out);
    return r;
}

int socket_image_parse(const char *buf, size_t len, struct socket_image *out, char *err,
                       size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (len > SOCKET_IMAGE_MAX_JSON || len > INT_MAX) {
        if (err && errlen)
            snprintf(err, errlen, "image: larger than %llu bytes",
                     (unsigned long long)SOCKET_IMAGE_MAX_JSON);
        return -E2BIG;
    }
    json_tokener *tok = json_tokener_new_ex(SOCKET_IMAGE_MAX_DEPTH);
    if (!tok)
        return -ENOMEM;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *j = json_tokener_parse_ex(tok, buf, (int)len);
    enum json_tokener_error e = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!j || e != json_tokener_success) {
        if (err && errlen)
            snprintf(err, errlen, "image: not JSON: %s",
                     e == json_tokener_continue ? "truncated" : json_tokener_error_desc(e));
        json_object_put(j);
        return -EINVAL;
    }
    for (; used < len; used++) {
        if (!isspace((unsigned char)buf[used])) {
            if (err && errlen)
                snprintf(err, errlen, "image: trailing data after the JSON object");
            json_object_put(j);
            return -EINVAL;
        }
    }
    int r = socket_image_from_json(j, out, err, errlen);
    json_object_put(j);
    return r;
}

void socket_image_free(struct socket_image *img)
{
    if (!img)
        return;
    for (size_t i = 0; i < img->n_conns; i++) {
        free(img->conns[i].owners);
        tcp_conn_state_free(&img->conns[i].st);
    }
    free(img->conns);
    free(img->skipped);
    img->conns = NULL;
    img->skipped = NULL;
    img->n_conns = img->n_skipped = 0;
}

/* ---------------------------------------------------------------- diff */

static void conn_key(const struct tcp_conn_state *st, char *buf, size_t len)
{
    char l[INET6_ADDRSTRLEN] = "?", r[INET6_ADDRSTRLEN] = "?";
    tcp_endpoint_addr_str(&st->local, l, sizeof(l));
    tcp_endpoint_addr_str(&st->remote, r, sizeof(r));
    bool v6 = st->local.family == AF_INET6;
    snprintf(buf, len, v6 ? "[%s]:%u -> [%s]:%u" : "%s:%u -> %s:%u", l, st->local.port, r,
             st->remote.port);
}

static int add_diff(json_object *arr, const char *conn, const char *field, json_object *exp,
                    json_object *live)
{
    json_object *o = json_object_new_object();
    int r = o ? 0 : -ENOMEM;
    if (r == 0)
        r = conn ? add(o, "connection", json_object_new_string(conn))
                 : json_object_object_add(o, "connection", NULL);
    if (r == 0)
        r = add(o, "field", json_object_new_string(field));
    /* add() takes the value even on failure; a NULL value means JSON null here. */
    if (r == 0)
        r = exp ? add(o, "expected", exp) : json_object_object_add(o, "expected", NULL);
    else
        json_object_put(exp);
    exp = NULL;
    if (r == 0)
        r = live ? add(o, "live", live) : json_object_object_add(o, "live", NULL);
    else
        json_object_put(live);
    live = NULL;
    if (r == 0 && json_object_array_add(arr, o) < 0)
        r = -ENOMEM;
    if (r < 0) {
        json_object_put(o);
        return -ENOMEM;
    }
    return 0;
}

static json_object *queue_summary(const struct tcp_repair_queue *q)
{
    char sha[SHA256_HEX_LEN];
    sha256_hex(q->data ? (const void *)q->data : "", q->len, sha);
    char buf[128];
    snprintf(buf, sizeof(buf), "len %u sha256 %s", q->len, sha);
    return json_object_new_string(buf);
}

struct differ {
    json_object *arr;
    const char *key;
    int count;
    int err;
};

static void diff_u64(struct differ *d, const char *field, uint64_t a, uint64_t b)
{
    if (a == b || d->err)
        return;
    d->err = add_diff(d->arr, d->key, field, json_object_new_int64((int64_t)a),
                      json_object_new_int64((int64_t)b));
    d->count++;
}

static void diff_str(struct differ *d, const char *field, const char *a, const char *b)
{
    if (strcmp(a ? a : "", b ? b : "") == 0 || d->err)
        return;
    d->err = add_diff(d->arr, d->key, field, a ? json_object_new_string(a) : NULL,
                      b ? json_object_new_string(b) : NULL);
    d->count++;
}

static void diff_queue(struct differ *d, const char *field, const struct tcp_repair_queue *a,
                       const struct tcp_repair_queue *b)
{
    if (d->err)
        return;
    if (a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0))
        return;
    d->err = add_diff(d->arr, d->key, field, queue_summary(a), queue_summary(b));
    d->count++;
}

/* Everything that makes the connection what it is. Not the timestamp (a clock), owners or
 * inode (bookkeeping, not TCP state), nor our own advertised window (see below). */
static void diff_conn(struct differ *d, const struct tcp_conn_state *a,
                      const struct tcp_conn_state *b)
{
    diff_str(d, "family", a->sock_family == AF_INET6 ? "ipv6" : "ipv4",
             b->sock_family == AF_INET6 ? "ipv6" : "ipv4");
    diff_u64(d, "v6only", a->v6only, b->v6only);
    diff_str(d, "state", tcp_state_name(a->state), tcp_state_name(b->state));
    diff_u64(d, "snd_seq", a->snd_seq, b->snd_seq);
    diff_u64(d, "rcv_seq", a->rcv_seq, b->rcv_seq);
    diff_queue(d, "unacked", &a->unacked, &b->unacked);
    diff_queue(d, "unsent", &a->unsent, &b->unsent);
    diff_queue(d, "recv", &a->recv, &b->recv);
    diff_u64(d, "window", a->has_window, b->has_window);
    if (a->has_window && b->has_window) {
        diff_u64(d, "window.snd_wl1", a->window.snd_wl1, b->window.snd_wl1);
        diff_u64(d, "window.snd_wnd", a->window.snd_wnd, b->window.snd_wnd);
        diff_u64(d, "window.max_window", a->window.max_window, b->window.max_window);
        /* rcv_wnd and rcv_wup are not compared: the frozen socket's delayed-ACK timer still
         * runs in repair mode and re-selects the advertised window into the gate, so they move
         * on a correctly paired state (seen in 1 of 6 --continue runs). They describe what we
         * offer, not what was exchanged; sequence numbers and queues decide the pairing. */
    }
    diff_u64(d, "options.mss", a->mss, b->mss);
    diff_u64(d, "options.sack", a->opt_sack, b->opt_sack);
    diff_u64(d, "options.timestamps", a->opt_timestamps, b->opt_timestamps);
    diff_u64(d, "options.wscale", a->opt_wscale, b->opt_wscale);
    diff_u64(d, "options.snd_wscale", a->snd_wscale, b->snd_wscale);
    diff_u64(d, "options.rcv_wscale", a->rcv_wscale, b->rcv_wscale);
    diff_u64(d, "settings.nodelay", a->nodelay, b->nodelay);
    diff_u64(d, "settings.cork", a->cork, b->cork);
    diff_u64(d, "settings.keepalive", a->keepalive.enabled, b->keepalive.enabled);
    diff_u64(d, "settings.keepidle", (uint64_t)a->keepalive.idle, (uint64_t)b->keepalive.idle);
    diff_u64(d, "settings.keepintvl", (uint64_t)a->keepalive.intvl, (uint64_t)b->keepalive.intvl);
    diff_u64(d, "settings.keepcnt", (uint64_t)a->keepalive.cnt, (uint64_t)b->keepalive.cnt);
    diff_u64(d, "settings.user_timeout_ms", a->user_timeout_ms, b->user_timeout_ms);
}

static int cmp_endpoint(const struct tcp_endpoint *a, const struct tcp_endpoint *b)
{
    if (a->family != b->family)
        return a->family < b->family ? -1 : 1;
    int r = memcmp(&a->addr, &b->addr, sizeof(a->addr));
    if (r)
        return r;
    return (a->port > b->port) - (a->port < b->port);
}

static int cmp_tuple(const struct tcp_conn_state *a, const struct tcp_conn_state *b)
{
    int r = cmp_endpoint(&a->local, &b->local);
    return r ? r : cmp_endpoint(&a->remote, &b->remote);
}

static int cmp_conn_ptr(const void *a, const void *b)
{
    const struct image_conn *x = *(const struct image_conn *const *)a;
    const struct image_conn *y = *(const struct image_conn *const *)b;
    return cmp_tuple(&x->st, &y->st);
}

/* Connections sorted by 4-tuple, so matching is n log n even at SOCKET_IMAGE_MAX_CONNS. */
static const struct image_conn **sorted_conns(const struct socket_image *img)
{
    const struct image_conn **v = calloc(img->n_conns ? img->n_conns : 1, sizeof(*v));
    if (!v)
        return NULL;
    for (size_t i = 0; i < img->n_conns; i++)
        v[i] = &img->conns[i];
    if (img->n_conns > 1)
        qsort(v, img->n_conns, sizeof(*v), cmp_conn_ptr);
    return v;
}

static const struct image_conn *find_conn(const struct image_conn **sorted, size_t n,
                                          const struct image_conn *key)
{
    const struct image_conn **hit = bsearch(&key, sorted, n, sizeof(*sorted), cmp_conn_ptr);
    return hit ? *hit : NULL;
}

int socket_image_diff(const struct socket_image *expected, const struct socket_image *live,
                      json_object **differences)
{
    *differences = NULL;
    _cleanup_free_ const struct image_conn **se = sorted_conns(expected);
    _cleanup_free_ const struct image_conn **sl = sorted_conns(live);
    if (!se || !sl)
        return -ENOMEM;
    struct differ d = {.arr = json_object_new_array()};
    if (!d.arr)
        return -ENOMEM;
    diff_str(&d, "boot_id", expected->boot_id, live->boot_id);
    for (size_t i = 0; i < expected->n_conns && !d.err; i++) {
        const struct image_conn *e = &expected->conns[i];
        char key[128];
        conn_key(&e->st, key, sizeof(key));
        d.key = key;
        const struct image_conn *l = find_conn(sl, live->n_conns, e);
        if (!l) {
            d.err = add_diff(d.arr, key, "connection", json_object_new_string("present"),
                             json_object_new_string("missing"));
            d.count++;
            continue;
        }
        diff_conn(&d, &e->st, &l->st);
    }
    for (size_t i = 0; i < live->n_conns && !d.err; i++) {
        if (find_conn(se, expected->n_conns, &live->conns[i]))
            continue;
        char key[128];
        conn_key(&live->conns[i].st, key, sizeof(key));
        d.err = add_diff(d.arr, key, "connection", json_object_new_string("missing"),
                         json_object_new_string("present"));
        d.count++;
    }
    if (d.err) {
        json_object_put(d.arr);
        return d.err;
    }
    *differences = d.arr;
    return d.count;
}

/* ---------------------------------------------------------------- intra-guest */

int socket_image_local_addrs(struct local_addrs *la)
{
    la->v = NULL;
    la->n = 0;
    struct ifaddrs *ifa = NULL;
    if (getifaddrs(&ifa) < 0)
        return negative_errno();
    size_t n = 0;
    for (struct ifaddrs *i = ifa; i; i = i->ifa_next)
        if (i->ifa_addr &&
            (i->ifa_addr->sa_family == AF_INET || i->ifa_addr->sa_family == AF_INET6))
            n++;
    if (n) {
        la->v = calloc(n, sizeof(*la->v));
        if (!la->v) {
            freeifaddrs(ifa);
            return -ENOMEM;
        }
    }
    for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
        if (!i->ifa_addr)
            continue;
        if (i->ifa_addr->sa_family == AF_INET) {
            struct in6_addr *a = &la->v[la->n++];
            memset(a, 0, sizeof(*a));
            a->s6_addr[10] = a->s6_addr[11] = 0xff;
            memcpy(&a->s6_addr[12], &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr, 4);
        } else if (i->ifa_addr->sa_family == AF_INET6) {
            la->v[la->n++] = ((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr;
        }
    }
    freeifaddrs(ifa);
    return 0;
}

void local_addrs_free(struct local_addrs *la)
{
    free(la->v);
    la->v = NULL;
    la->n = 0;
}

const char *socket_image_classify(const struct local_addrs *la, const struct tcp_endpoint *remote)
{
    const struct in6_addr *a = &remote->addr;
    if (IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127))
        return SKIP_LOOPBACK;
    for (size_t i = 0; la && i < la->n; i++)
        if (memcmp(&la->v[i], a, sizeof(*a)) == 0)
            return SKIP_INTRA_GUEST;
    return NULL;
}
