/* agent/qga-client.c: see qga-client.h. */
#include "agent/qga-client.h"

#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "agent/qga-stream.h"
#include "common/log.h"
#include "common/util.h"

#define SEND_TIMEOUT_MS 30000
#define SMALL_REQUEST   4096                      /* requests up to this size go out in one write */
#define ID_MASK         ((UINT64_C(1) << 53) - 1) /* ids stay exact in any JSON consumer */

struct qga_client {
    struct qga_transport t;
    struct qga_reader reader;
    bool need_sync;
    uint64_t next_id;
    char rbuf[QGA_READER_MIN_WINDOW];
};

/* ---- fd transport ---- */

static int remaining_ms(uint64_t deadline_ns)
{
    if (deadline_ns == UINT64_MAX)
        return -1;
    uint64_t now = now_monotonic_ns();
    if (now >= deadline_ns)
        return 0;
    uint64_t ms = (deadline_ns - now + 999999) / 1000000;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

static uint64_t deadline_after(int timeout_ms)
{
    if (timeout_ms < 0)
        return UINT64_MAX;
    return now_monotonic_ns() + (uint64_t)timeout_ms * 1000000;
}

static ssize_t fd_send(void *ctx, const void *buf, size_t len)
{
    int fd = *(int *)ctx;
    const char *p = buf;
    size_t left = len;
    bool sock = true;
    uint64_t deadline = deadline_after(SEND_TIMEOUT_MS);
    while (left > 0) {
        ssize_t n = sock ? send(fd, p, left, MSG_NOSIGNAL | MSG_DONTWAIT) : write(fd, p, left);
        if (n < 0 && sock && errno == ENOTSOCK) {
            sock = false;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int ms = remaining_ms(deadline);
            if (ms == 0)
                return -ETIMEDOUT;
            if (poll(&pfd, 1, ms) < 0 && errno != EINTR)
                return negative_errno();
            continue;
        }
        if (n < 0)
            return negative_errno();
        p += n;
        left -= (size_t)n;
    }
    return (ssize_t)len;
}

static ssize_t fd_recv(void *ctx, void *buf, size_t len, int timeout_ms)
{
    int fd = *(int *)ctx;
    uint64_t deadline = deadline_after(timeout_ms);
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, remaining_ms(deadline));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            return negative_errno();
        if (pr == 0)
            return -ETIMEDOUT;
        ssize_t n = read(fd, buf, len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (n < 0)
            return negative_errno();
        return n;
    }
}

void qga_transport_fd(struct qga_transport *t, int *fd)
{
    t->ctx = fd;
    t->send = fd_send;
    t->recv = fd_recv;
}

/* ---- client ---- */

static int random_u53(uint64_t *out)
{
    char hex[33];
    int r = random_id(hex);
    if (r < 0)
        return r;
    hex[16] = 0;
    *out = strtoull(hex, NULL, 16) & ID_MASK;
    if (*out == 0)
        *out = 1;
    return 0;
}

struct qga_client *qga_client_new(const struct qga_transport *t)
{
    struct qga_client *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->t = *t;
    qga_reader_init(&c->reader, 0, 0);
    c->need_sync = true; /* the agent may hold half a request from an earlier host */
    if (random_u53(&c->next_id) < 0)
        c->next_id = now_monotonic_ns() & ID_MASK;
    return c;
}

void qga_client_free(struct qga_client *c)
{
    if (!c)
        return;
    qga_reader_free(&c->reader);
    free(c);
}

int qga_client_set_max_reply(struct qga_client *c, size_t bytes)
{
    if (bytes == 0 || bytes > QGA_READER_MAX_BYTES)
        return -EINVAL;
    c->reader.max_bytes = bytes;
    return 0;
}

void qga_client_reset(struct qga_client *c)
{
    qga_reader_reset(&c->reader);
    c->need_sync = true;
}

/* Next message from the peer before the deadline. 1 with *msg, or -errno (framing errors with
 * err filled; the reader has resynchronised itself). */
static int read_message(struct qga_client *c, uint64_t deadline, json_object **msg,
                        struct qga_error *err)
{
    for (;;) {
        int r = qga_reader_next(&c->reader, msg, err);
        if (r != 0)
            return r;
        int ms = remaining_ms(deadline);
        if (ms == 0)
            return -ETIMEDOUT;
        ssize_t n = c->t.recv(c->t.ctx, c->rbuf, sizeof(c->rbuf), ms);
        if (n == 0)
            return -ECONNRESET;
        if (n < 0)
            return (int)n;
        r = qga_reader_feed(&c->reader, c->rbuf, (size_t)n);
        if (r < 0)
            return r;
    }
}

static int send_request(struct qga_client *c, bool sentinel, const char *cmd, json_object *args,
                        const char *id_key, uint64_t id)
{
    _cleanup_json_ json_object *req = json_object_new_object();
    if (!req)
        return -ENOMEM;
    json_object *v = json_object_new_string(cmd);
    if (!v || json_object_object_add(req, "execute", v) < 0) {
        json_object_put(v);
        return -ENOMEM;
    }
    if (args) {
        json_object_get(args);
        if (json_object_object_add(req, "arguments", args) < 0) {
            json_object_put(args);
            return -ENOMEM;
        }
    }
    if (id_key) {
        json_object *dst = req;
        if (!strcmp(id_key, "arguments.id")) {
            dst = json_object_new_object();
            if (!dst || json_object_object_add(req, "arguments", dst) < 0) {
                json_object_put(dst);
                return -ENOMEM;
            }
        }
        v = json_object_new_int64((int64_t)id);
        if (!v || json_object_object_add(dst, "id", v) < 0) {
            json_object_put(v);
            return -ENOMEM;
        }
    }
    size_t len;
    const char *txt = json_object_to_json_string_length(
        req, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (!txt)
        return -ENOMEM;
    ssize_t n;
    if (len > SMALL_REQUEST) {
        /* A full socket image (guest-net-verify) is big: send it in place, not copied. */
        const char sent = (char)QGA_SENTINEL;
        n = sentinel ? c->t.send(c->t.ctx, &sent, 1) : 0;
        if (n >= 0)
            n = c->t.send(c->t.ctx, txt, len);
        if (n >= 0)
            n = c->t.send(c->t.ctx, "\n", 1);
        return n < 0 ? (int)n : 0;
    }
    char line[SMALL_REQUEST + 2];
    size_t off = 0;
    if (sentinel)
        line[off++] = (char)QGA_SENTINEL;
    memcpy(line + off, txt, len);
    off += len;
    line[off++] = '\n';
    n = c->t.send(c->t.ctx, line, off);
    return n < 0 ? (int)n : 0;
}

static bool int_equals(json_object *o, uint64_t id)
{
    return o && json_object_is_type(o, json_type_int) && json_object_get_int64(o) == (int64_t)id;
}

static int sync_until(struct qga_client *c, uint64_t deadline)
{
    uint64_t id;
    int r = random_u53(&id);
    if (r < 0)
        return r;
    /* Whatever half-reply we hold is stale now. */
    qga_reader_reset(&c->reader);
    /* 0xFF first makes the agent drop any half-read request; then sync-delimited. */
    r = send_request(c, true, "guest-sync-delimited", NULL, "arguments.id", id);
    if (r < 0)
        return r;
    for (;;) {
        _cleanup_json_ json_object *msg = NULL;
        struct qga_error e;
        r = read_message(c, deadline, &msg, &e);
        if (r == -EBADMSG || r == -EMSGSIZE) {
            log_debug("qga sync: ignoring bad input: %s", e.desc);
            continue;
        }
        if (r < 0)
            return r;
        json_object *ret;
        if (json_object_is_type(msg, json_type_object) &&
            json_object_object_get_ex(msg, "return", &ret) && int_equals(ret, id)) {
            c->need_sync = false;
            return 0;
        }
        log_debug("qga sync: ignoring a stale message");
    }
}

int qga_client_sync(struct qga_client *c, int timeout_ms)
{
    c->need_sync = true;
    return sync_until(c, deadline_after(timeout_ms));
}

int qga_client_call(struct qga_client *c, const char *cmd, json_object *args, int timeout_ms,
                    json_object **ret, struct qga_error *err)
{
    struct qga_error scratch;
    if (!err)
        err = &scratch;
    qga_error_clear(err);
    *ret = NULL;
    if (!cmd || (args && !json_object_is_type(args, json_type_object))) {
        qga_error_set(err, QGA_ERR_INVALID_PARAMETER, "bad command or non-object arguments");
        return -EINVAL;
    }
    uint64_t deadline = deadline_after(timeout_ms);

    int r;
    if (c->need_sync) {
        r = sync_until(c, deadline);
        if (r < 0) {
            qga_error_set(err, r == -ETIMEDOUT ? QGA_ERR_TIMEOUT : QGA_ERR_GENERIC_ERROR,
                          "agent did not answer guest-sync-delimited: %s", strerror(-r));
            return r;
        }
    }

    uint64_t id = c->next_id = (c->next_id + 1) & ID_MASK;
    r = send_request(c, false, cmd, args, "id", id);
    if (r < 0) {
        c->need_sync = true;
        return qga_error_errno(err, r, "sending %s", cmd);
    }
    for (;;) {
        _cleanup_json_ json_object *msg = NULL;
        r = read_message(c, deadline, &msg, err);
        if (r == -EBADMSG) {
            /* Stray bytes before our reply (e.g. a stale half reply): keep waiting. */
            log_debug("qga: ignoring bad input while waiting for %s: %s", cmd, err->desc);
            continue;
        }
        if (r < 0) {
            c->need_sync = true;
            if (r == -ETIMEDOUT)
                qga_error_set(err, QGA_ERR_TIMEOUT, "no reply to %s in %d ms", cmd, timeout_ms);
            else if (r != -EMSGSIZE)
                qga_error_errno(err, r, "reading the reply to %s", cmd);
            return r;
        }
        if (!json_object_is_type(msg, json_type_object)) {
            log_debug("qga: ignoring a non-object reply");
            continue;
        }
        json_object *rid, *v;
        /* A reply without "id" is ours: after the sync the stream is aligned, and framing
         * errors are answered without one. */
        if (json_object_object_get_ex(msg, "id", &rid) && !int_equals(rid, id)) {
            log_debug("qga: ignoring a stale reply");
            continue;
        }
        if (json_object_object_get_ex(msg, "return", &v)) {
            qga_error_clear(err); /* forget any stray input we skipped */
            *ret = json_object_get(v);
            return 0;
        }
        if (json_object_object_get_ex(msg, "error", &v)) {
            if (qga_error_from_json(v, err) < 0) {
                c->need_sync = true;
                return -EPROTO;
            }
            return -EREMOTEIO;
        }
        qga_error_set(err, QGA_ERR_GENERIC_ERROR, "reply to %s has neither return nor error", cmd);
        c->need_sync = true;
        return -EPROTO;
    }
}
