/* libFuzzer target for agent/: the framer (default and tiny limits), the server (dispatch
 * and replies over the netckpt-agent table) and the client (replies from a hostile agent).
 *
 * Input: byte 0 picks the chunk size the stream is cut into (so splits land everywhere),
 * the rest is the byte stream. Invariants checked: the reader never holds more than it may,
 * every message it returns is an object or array, nothing crashes or leaks. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "agent/agent-commands.h"
#include "agent/qga-client.h"
#include "agent/qga-server.h"
#include "agent/qga-stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        __builtin_trap();
}

static void run_reader(const uint8_t *p, size_t len, size_t chunk, size_t max, unsigned depth)
{
    struct qga_reader r;
    qga_reader_init(&r, max, depth);
    size_t window = r.max_bytes > QGA_READER_MIN_WINDOW ? r.max_bytes : QGA_READER_MIN_WINDOW;
    while (len > 0) {
        size_t n = len < chunk ? len : chunk;
        check(qga_reader_feed(&r, p, n) == 0);
        p += n;
        len -= n;
        for (;;) {
            json_object *m;
            struct qga_error e;
            int ret = qga_reader_next(&r, &m, &e);
            if (ret == 0)
                break;
            if (ret == 1) {
                check(json_object_is_type(m, json_type_object) ||
                      json_object_is_type(m, json_type_array));
                json_object_put(m);
            } else {
                check(ret == -EBADMSG || ret == -EMSGSIZE);
                check(e.desc[0] != 0);
            }
        }
        check(r.scan == r.end);
        check(qga_reader_pending(&r) <= r.max_bytes);
        check(r.cap <= 2 * window + 4096);
    }
    qga_reader_free(&r);
}

static int h_ok(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    static const char *const known[] = {"timeout",  "include", "kick",        "host_time_ns",
                                        "image_id", "image",   "connections", NULL};
    int64_t i;
    bool b;
    const char *s;
    json_object *o;
    if (qga_args_check_known(args, known, err) < 0 ||
        qga_arg_int(args, "timeout", false, 1, 86400, &i, err) < 0 ||
        qga_arg_int(args, "host_time_ns", false, 0, INT64_MAX, &i, err) < 0 ||
        qga_arg_bool(args, "kick", false, &b, err) < 0 ||
        qga_arg_string(args, "image_id", false, 32, &s, err) < 0 ||
        qga_arg_json(args, "image", false, json_type_object, &o, err) < 0 ||
        qga_arg_json(args, "include", false, json_type_array, &o, err) < 0 ||
        qga_arg_json(args, "connections", false, json_type_array, &o, err) < 0)
        return -EINVAL;
    *ret = json_object_get(args);
    return 0;
}

struct fz {
    struct qga_server srv;
    bool frozen;
};

static bool is_frozen(void *ud)
{
    return ((struct fz *)ud)->frozen;
}

static int h_freeze(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    ((struct fz *)ud)->frozen = true;
    return h_ok(ud, args, ret, err);
}

static int h_thaw(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    ((struct fz *)ud)->frozen = false;
    return h_ok(ud, args, ret, err);
}

static int h_info(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    *ret = qga_server_info(&((struct fz *)ud)->srv, "fuzz");
    return *ret ? 0 : -ENOMEM;
}

static void run_server(const uint8_t *p, size_t len, size_t chunk)
{
    struct fz f = {0};
    struct qga_command table[AGENT_COMMAND_COUNT];
    struct agent_handlers h = {h_info, h_freeze, h_thaw, h_ok, h_ok, h_ok};
    check(agent_commands_table(&h, table) == 0);
    check(qga_server_init(&f.srv, table, AGENT_COMMAND_COUNT, &f, is_frozen) == 0);
    while (len > 0) {
        size_t n = len < chunk ? len : chunk;
        check(qga_server_feed(&f.srv, p, n, -1) >= 0); /* -1: replies built, then dropped */
        p += n;
        len -= n;
    }
    qga_server_free(&f.srv);
}

/* The client reads the fuzz input as the agent's replies. A sync request is answered first
 * with its own id, so the call path (not only the sync path) sees the hostile bytes. */
struct replay {
    const uint8_t *p;
    size_t len, chunk;
    char sync_reply[64];
    size_t sync_len;
};

static ssize_t r_send(void *ctx, const void *buf, size_t len)
{
    struct replay *rp = ctx;
    const char *s = buf;
    if (len > 0 && (uint8_t)s[0] == QGA_SENTINEL) {
        json_tokener *tok = json_tokener_new();
        json_object *req = tok ? json_tokener_parse_ex(tok, s + 1, (int)(len - 1)) : NULL;
        if (tok)
            json_tokener_free(tok);
        json_object *args, *id;
        if (req && json_object_object_get_ex(req, "arguments", &args) &&
            json_object_object_get_ex(args, "id", &id))
            rp->sync_len =
                (size_t)snprintf(rp->sync_reply, sizeof(rp->sync_reply),
                                 "\xff{\"return\":%" PRId64 "}\n", json_object_get_int64(id));
        json_object_put(req);
    }
    return (ssize_t)len;
}

static ssize_t r_recv(void *ctx, void *buf, size_t len, int timeout_ms)
{
    struct replay *rp = ctx;
    if (rp->sync_len) {
        size_t n = rp->sync_len < len ? rp->sync_len : len;
        memcpy(buf, rp->sync_reply, n);
        rp->sync_len = 0;
        return (ssize_t)n;
    }
    if (rp->len == 0)
        return -ETIMEDOUT;
    size_t n = rp->len < rp->chunk ? rp->len : rp->chunk;
    if (n > len)
        n = len;
    memcpy(buf, rp->p, n);
    rp->p += n;
    rp->len -= n;
    return (ssize_t)n;
}

static void run_client(const uint8_t *p, size_t len, size_t chunk)
{
    struct replay rp = {.p = p, .len = len, .chunk = chunk};
    struct qga_transport t = {&rp, r_send, r_recv};
    struct qga_client *c = qga_client_new(&t);
    if (!c)
        return;
    check(qga_client_set_max_reply(c, 4096) == 0);
    for (int i = 0; i < 8 && rp.len > 0; i++) {
        json_object *ret = NULL;
        struct qga_error err;
        int r = qga_client_call(c, "guest-net-status", NULL, -1, &ret, &err);
        check(r <= 0);
        check(r == 0 || err.desc[0] != 0);
        json_object_put(ret);
        if (r == -ETIMEDOUT)
            break;
    }
    qga_client_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = (size_t)data[0] + 1;
    data++;
    size--;
    /* The server runs a reader with the default limits; this one hits the limits often. */
    run_reader(data, size, chunk, 64, 4);
    run_server(data, size, chunk);
    run_client(data, size, chunk);
    return 0;
}
