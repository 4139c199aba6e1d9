/* Unit tests for guest/socket-image: round trip, every validation failure, diff, classify,
 * and JSON Schema agreement (written images validate; rejected images are rejected too). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/macro.h"
#include "common/util.h"
#include "guest/socket-image.h"

static void set_ep(struct tcp_endpoint *ep, int family, const char *addr, uint16_t port)
{
    memset(ep, 0, sizeof(*ep));
    ep->family = family;
    ep->port = port;
    if (family == AF_INET) {
        ep->addr.s6_addr[10] = ep->addr.s6_addr[11] = 0xff;
        assert_int_equal(inet_pton(AF_INET, addr, &ep->addr.s6_addr[12]), 1);
    } else {
        assert_int_equal(inet_pton(AF_INET6, addr, &ep->addr), 1);
    }
}

static void fill_queue(struct tcp_repair_queue *q, uint32_t len, uint8_t seed)
{
    q->len = len;
    q->data = len ? malloc(len) : NULL;
    for (uint32_t i = 0; i < len; i++)
        q->data[i] = (uint8_t)(seed + i * 7);
}

/* Three connections (IPv4, IPv6, v4-mapped dual stack) and two skipped sockets. */
static void sample_image(struct socket_image *img)
{
    memset(img, 0, sizeof(*img));
    strcpy(img->image_id, "0123456789abcdef0123456789abcdef");
    strcpy(img->boot_id, "01234567-89ab-cdef-0123-456789abcdef");
    strcpy(img->hostname, "guest \"one\"");
    img->monotonic_ns = 123456789012ull;
    img->realtime_ns = 1700000000000000000ull;
    img->n_conns = 3;
    img->conns = calloc(3, sizeof(*img->conns));
    for (size_t i = 0; i < 3; i++) {
        struct image_conn *c = &img->conns[i];
        c->id = (uint32_t)i + 1;
        c->inode = 1000 + i;
        c->n_owners = i + 1;
        c->owners = calloc(c->n_owners, sizeof(*c->owners));
        for (size_t k = 0; k < c->n_owners; k++) {
            c->owners[k].pid = 100 + (pid_t)k;
            c->owners[k].fd = 3 + (int)k;
            snprintf(c->owners[k].comm, sizeof(c->owners[k].comm), "app-%u", (unsigned)(k % 10));
        }
        struct tcp_conn_state *st = &c->st;
        st->state = i == 0 ? TCP_ESTABLISHED : i == 1 ? TCP_FIN_WAIT2 : TCP_CLOSE_WAIT;
        st->snd_seq = i == 0 ? 0xfffffff0u : 12345;
        st->rcv_seq = 0x80000000u + (uint32_t)i;
        fill_queue(&st->unacked, i == 0 ? 1000 : 0, 1);
        fill_queue(&st->unsent, i == 0 ? 3 : 1, 2);
        fill_queue(&st->recv, i == 1 ? 70000 : 2, 3);
        st->has_window = i != 2;
        st->window = (struct tcp_repair_win){1, 2, 3, 4, 5};
        st->mss = 1448;
        st->opt_sack = true;
        st->opt_timestamps = i != 1;
        st->opt_wscale = true;
        st->snd_wscale = 7;
        st->rcv_wscale = 14;
        st->timestamp = 4000000000u;
        st->nodelay = i == 1;
        st->cork = false;
        st->keepalive = (struct tcp_keepalive_cfg){i == 0, 7200, 75, 9};
        st->user_timeout_ms = 30000;
    }
    struct tcp_conn_state *st = &img->conns[0].st;
    st->sock_family = AF_INET;
    set_ep(&st->local, AF_INET, "10.0.0.2", 40000);
    set_ep(&st->remote, AF_INET, "10.0.1.2", 5000);
    st = &img->conns[1].st;
    st->sock_family = AF_INET6;
    st->v6only = true;
    set_ep(&st->local, AF_INET6, "fd00::2", 40001);
    set_ep(&st->remote, AF_INET6, "fd00:1::2", 5001);
    st = &img->conns[2].st;
    st->sock_family = AF_INET6;
    set_ep(&st->local, AF_INET, "10.0.0.2", 40002); /* dual stack, IPv4 peer: wire is AF_INET */
    set_ep(&st->remote, AF_INET, "10.0.1.2", 5002);

    img->n_skipped = 2;
    img->skipped = calloc(2, sizeof(*img->skipped));
    set_ep(&img->skipped[0].local, AF_INET, "127.0.0.1", 80);
    set_ep(&img->skipped[0].remote, AF_INET, "127.0.0.1", 33000);
    img->skipped[0].state = TCP_ESTABLISHED;
    img->skipped[0].reason = SKIP_LOOPBACK;
    set_ep(&img->skipped[1].local, AF_INET6, "::", 22);
    set_ep(&img->skipped[1].remote, AF_INET6, "::", 0);
    img->skipped[1].state = TCP_LISTEN;
    img->skipped[1].reason = SKIP_LISTEN;
}

static char *to_string(const struct socket_image *img)
{
    json_object *j = socket_image_to_json(img);
    assert_non_null(j);
    char *s = strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
    json_object_put(j);
    return s;
}

static void assert_queue_eq(const struct tcp_repair_queue *a, const struct tcp_repair_queue *b)
{
    assert_int_equal(a->len, b->len);
    if (a->len)
        assert_memory_equal(a->data, b->data, a->len);
}

static void assert_ep_eq(const struct tcp_endpoint *a, const struct tcp_endpoint *b)
{
    assert_int_equal(a->family, b->family);
    assert_int_equal(a->port, b->port);
    assert_memory_equal(&a->addr, &b->addr, sizeof(a->addr));
}

static void test_round_trip(void **state)
{
    struct socket_image a, b;
    sample_image(&a);
    _cleanup_free_ char *s1 = to_string(&a);
    char err[256];
    int r = socket_image_parse(s1, strlen(s1), &b, err, sizeof(err));
    if (r < 0)
        fail_msg("parse: %s", err);
    assert_string_equal(a.image_id, b.image_id);
    assert_string_equal(a.boot_id, b.boot_id);
    assert_string_equal(a.hostname, b.hostname);
    assert_int_equal(a.monotonic_ns, b.monotonic_ns);
    assert_int_equal(a.realtime_ns, b.realtime_ns);
    assert_int_equal(a.n_conns, b.n_conns);
    for (size_t i = 0; i < a.n_conns; i++) {
        const struct image_conn *x = &a.conns[i], *y = &b.conns[i];
        assert_int_equal(x->id, y->id);
        assert_int_equal(x->inode, y->inode);
        assert_int_equal(x->n_owners, y->n_owners);
        for (size_t k = 0; k < x->n_owners; k++) {
            assert_int_equal(x->owners[k].pid, y->owners[k].pid);
            assert_int_equal(x->owners[k].fd, y->owners[k].fd);
            assert_string_equal(x->owners[k].comm, y->owners[k].comm);
        }
        const struct tcp_conn_state *p = &x->st, *q = &y->st;
        assert_int_equal(p->sock_family, q->sock_family);
        assert_int_equal(p->v6only, q->v6only);
        assert_int_equal(p->state, q->state);
        assert_ep_eq(&p->local, &q->local);
        assert_ep_eq(&p->remote, &q->remote);
        assert_int_equal(p->snd_seq, q->snd_seq);
        assert_int_equal(p->rcv_seq, q->rcv_seq);
        assert_queue_eq(&p->unacked, &q->unacked);
        assert_queue_eq(&p->unsent, &q->unsent);
        assert_queue_eq(&p->recv, &q->recv);
        assert_int_equal(p->has_window, q->has_window);
        if (p->has_window)
            assert_memory_equal(&p->window, &q->window, sizeof(p->window));
        assert_int_equal(p->mss, q->mss);
        assert_int_equal(p->opt_sack, q->opt_sack);
        assert_int_equal(p->opt_timestamps, q->opt_timestamps);
        assert_int_equal(p->opt_wscale, q->opt_wscale);
        assert_int_equal(p->snd_wscale, q->snd_wscale);
        assert_int_equal(p->rcv_wscale, q->rcv_wscale);
        assert_int_equal(p->timestamp, q->timestamp);
        assert_int_equal(p->nodelay, q->nodelay);
        assert_int_equal(p->cork, q->cork);
        assert_memory_equal(&p->keepalive, &q->keepalive, sizeof(p->keepalive));
        assert_int_equal(p->user_timeout_ms, q->user_timeout_ms);
    }
    assert_int_equal(a.n_skipped, b.n_skipped);
    for (size_t i = 0; i < a.n_skipped; i++) {
        assert_ep_eq(&a.skipped[i].local, &b.skipped[i].local);
        assert_ep_eq(&a.skipped[i].remote, &b.skipped[i].remote);
        assert_int_equal(a.skipped[i].state, b.skipped[i].state);
        assert_string_equal(a.skipped[i].reason, b.skipped[i].reason);
    }
    /* And the JSON is a fixed point. */
    _cleanup_free_ char *s2 = to_string(&b);
    assert_string_equal(s1, s2);
    json_object *diff = NULL;
    assert_int_equal(socket_image_diff(&a, &b, &diff), 0);
    assert_int_equal(json_object_array_length(diff), 0);
    json_object_put(diff);
    socket_image_free(&a);
    socket_image_free(&b);
    socket_image_free(&b); /* idempotent */
}

static void test_empty_image(void **state)
{
    struct socket_image a = {0}, b;
    strcpy(a.image_id, "ffffffffffffffffffffffffffffffff");
    strcpy(a.boot_id, "01234567-89ab-cdef-0123-456789abcdef");
    _cleanup_free_ char *s = to_string(&a);
    char err[256];
    assert_int_equal(socket_image_parse(s, strlen(s), &b, err, sizeof(err)), 0);
    assert_int_equal(b.n_conns, 0);
    assert_null(b.conns);
    socket_image_free(&b);
}

static void test_init_header(void **state)
{
    struct socket_image a = {0};
    assert_int_equal(socket_image_init_header(&a), 0);
    assert_int_equal(strlen(a.image_id), 32);
    assert_int_equal(strlen(a.boot_id), 36);
    assert_true(a.monotonic_ns > 0);
    _cleanup_free_ char *s = to_string(&a);
    struct socket_image b;
    char err[256];
    int r = socket_image_parse(s, strlen(s), &b, err, sizeof(err));
    if (r < 0)
        fail_msg("parse: %s", err);
    socket_image_free(&b);
}

/* ------------------------------------------------------------------ mutations */

/* Walk a path like "connections.0.unacked.sha256" and replace (or with value NULL and del,
 * delete) the last element. */
static void mutate(json_object *root, const char *path, const char *value_json)
{
    _cleanup_free_ char *p = strdup(path);
    json_object *cur = root;
    char *save = NULL, *tok = strtok_r(p, ".", &save);
    for (;;) {
        char *next = strtok_r(NULL, ".", &save);
        bool is_idx = tok[0] >= '0' && tok[0] <= '9';
        if (!next) {
            json_object *v = NULL;
            bool del = value_json && strcmp(value_json, "<delete>") == 0;
            if (value_json && !del) {
                v = json_tokener_parse(value_json);
                if (!v && strcmp(value_json, "null") != 0)
                    fail_msg("bad mutation value %s", value_json);
            }
            if (is_idx) {
                assert_false(del);
                json_object_array_put_idx(cur, (size_t)atoi(tok), v);
            } else if (del) {
                json_object_object_del(cur, tok);
            } else {
                json_object_object_add(cur, tok, v);
            }
            return;
        }
        cur = is_idx ? json_object_array_get_idx(cur, (size_t)atoi(tok))
                     : json_object_object_get(cur, tok);
        assert_non_null(cur);
        tok = next;
    }
}

struct mutation {
    const char *path;
    const char *value; /* JSON text, "<delete>" to remove the key */
    const char *err;   /* a substring of the expected message; NULL: must be accepted */
    bool schema;       /* the JSON Schema can express this rule too */
};

static const struct mutation mutations[] = {
    {"format", "\"other\"", "\"format\"", true},
    {"version", "2", "\"version\"", true},
    {"version", "\"1\"", "must be an integer, not string", true},
    {"image_id", "\"0123\"", "image_id", true},
    {"image_id", "\"0123456789ABCDEF0123456789ABCDEF\"", "image_id", true},
    {"boot_id", "\"not-a-uuid\"", "boot_id", true},
    {"hostname", "\"a\\u0001b\"", "control characters", true},
    {"hostname", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"", "longer",
     true},
    {"monotonic_ns", "-1", "out of range", true},
    {"monotonic_ns", "1.5", "not a fraction", true},
    {"realtime_ns", "18446744073709551615", "out of range", true},
    {"realtime_ns", "<delete>", "missing \"realtime_ns\"", true},
    {"connections", "{}", "\"connections\" must be array", true},
    {"skipped", "null", "\"skipped\" must be array", true},
    {"surprise", "1", "unknown key \"surprise\"", true},
    {"connections.0", "[]", "connections[0]: must be an object", true},
    {"connections.0.extra", "true", "connections[0]: unknown key", true},
    {"connections.0.id", "\"1\"", "\"id\" must be an integer", true},
    {"connections.0.id", "4294967296", "\"id\"", true},
    {"connections.1.id", "1", "duplicate id 1", false},
    {"connections.0.inode", "-5", "\"inode\"", true},
    {"connections.0.owners", "[]", "\"owners\" is empty", true},
    {"connections.0.owners.0.pid", "0", "\"pid\"", true},
    {"connections.0.owners.0.fd", "-1", "\"fd\"", true},
    {"connections.0.owners.0.comm", "\"0123456789abcdef\"", "\"comm\" longer", true},
    {"connections.0.owners.0.comm", "\"a\\nb\"", "control characters", true},
    {"connections.0.owners.0", "5", "owners[0]: must be an object", true},
    {"connections.0.family", "\"ipx\"", "\"family\"", true},
    {"connections.0.v6only", "true", "\"v6only\" set on an ipv4", true},
    {"connections.0.v6only", "0", "\"v6only\" must be boolean", true},
    {"connections.0.state", "\"LISTEN\"", "cannot be a frozen connection", true},
    {"connections.0.state", "\"TIME_WAIT\"", "cannot be a frozen connection", true},
    {"connections.0.state", "\"BOGUS\"", "unknown state", true},
    {"connections.0.state", "3", "\"state\" must be string", true},
    {"connections.0.local.addr", "\"10.0.0\"", "not an IPv4 address", false},
    {"connections.0.local.addr", "\"fd00::1\"", "not an IPv4 address", false},
    {"connections.1.remote.addr", "\"10.0.0.1\"", "families differ", false},
    {"connections.1.local.addr", "\"::ffff:10.0.0.1\"", "families differ", false},
    {"connections.2.local.addr", "\"::ffff:10.0.0.1\"", NULL, false},
    {"connections.1.local.addr", "\"fd00::1\"", NULL, false},
    {"connections.0.local.port", "0", "\"port\"", true},
    {"connections.0.remote.port", "65536", "\"port\"", true},
    {"connections.0.remote.zone", "1", "unknown key", true},
    {"connections.0.snd_seq", "4294967296", "\"snd_seq\"", true},
    {"connections.0.rcv_seq", "-1", "\"rcv_seq\"", true},
    {"connections.0.unsent.data", "\"!!!!\"", "not valid base64", true},
    {"connections.0.unacked.data", "\"AAAA\"", "not the base64 of", false},
    {"connections.0.unsent.data", "\"A=B=\"", "not valid base64", true},
    {"connections.0.unsent.data", "\"AAAAAAAA\"", "not the base64 of", false},
    {"connections.0.unacked.sha256",
     "\"0000000000000000000000000000000000000000000000000000000000000000\"", "does not match",
     false},
    {"connections.0.unacked.sha256", "\"abc\"", "\"sha256\"", true},
    {"connections.0.recv.len", "3", "decodes to 2 bytes", false},
    {"connections.0.recv.len", "67108865", "\"len\"", true},
    {"connections.0.recv.data", "<delete>", "missing \"data\"", true},
    {"connections.0.window.rcv_wup", "<delete>", "missing \"rcv_wup\"", true},
    {"connections.0.window.snd_wnd", "4294967296", "\"snd_wnd\"", true},
    {"connections.0.options", "<delete>", "missing \"options\"", true},
    {"connections.0.options.mss", "65536", "\"mss\"", true},
    {"connections.0.options.snd_wscale", "15", "\"snd_wscale\"", true},
    {"connections.0.options.sack", "\"yes\"", "\"sack\" must be boolean", true},
    {"connections.0.timestamp", "4294967296", "\"timestamp\"", true},
    {"connections.0.settings.keepcnt", "200", "\"keepcnt\"", true},
    {"connections.0.settings.nodelay", "1", "\"nodelay\" must be boolean", true},
    {"connections.0.settings.user_timeout_ms", "-1", "\"user_timeout_ms\"", true},
    {"skipped.0.reason", "\"bored\"", "unknown reason", true},
    {"skipped.0.state", "\"NOPE\"", "unknown state", true},
    {"skipped.1.local.addr", "\"garbage\"", "not an IP address", false},
    {"skipped.0", "\"x\"", "skipped[0]: must be an object", true},
};

static void test_mutations(void **state)
{
    struct socket_image img;
    sample_image(&img);
    _cleanup_free_ char *good = to_string(&img);
    socket_image_free(&img);

    const char *src = getenv("NETCKPT_SOURCE_DIR");
    char dir[] = "/tmp/netckpt-image-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    size_t n_schema = 0;
    for (size_t i = 0; i < ELEMENTSOF(mutations); i++) {
        const struct mutation *m = &mutations[i];
        json_object *j = json_tokener_parse(good);
        mutate(j, m->path, m->value);
        char err[256] = "";
        struct socket_image out;
        int r = socket_image_from_json(j, &out, err, sizeof(err));
        if (!m->err) { /* an equivalent spelling that must be accepted */
            if (r < 0)
                fail_msg("mutation %s = %s was refused: %s", m->path, m->value, err);
            socket_image_free(&out);
            json_object_put(j);
            continue;
        }
        if (r >= 0)
            fail_msg("mutation %s = %s was accepted", m->path, m->value);
        if (!strstr(err, m->err))
            fail_msg("mutation %s = %s: message \"%s\" lacks \"%s\"", m->path, m->value, err,
                     m->err);
        assert_null(out.conns);
        assert_int_equal(out.n_conns, 0);
        if (m->schema && src) {
            char path[128];
            snprintf(path, sizeof(path), "%s/bad-%03zu.json", dir, i);
            assert_int_equal(json_object_to_file(path, j), 0);
            n_schema++;
        }
        json_object_put(j);
    }
    /* The schema must reject every one of those as well. */
    if (src) {
        char cmd[1024];
        snprintf(cmd, sizeof(cmd),
                 "python3 %s/tests/tools/validate-json-schema.py --invalid "
                 "%s/schemas/socket-image.schema.json %s/bad-*.json",
                 src, src, dir);
        int st = system(cmd);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    rm_rf(dir);
    print_message("%zu mutations tried, %zu checked against the schema\n", ELEMENTSOF(mutations),
                  n_schema);
}

static void expect_parse_error(const char *text, int code, const char *msg)
{
    struct socket_image out;
    char err[256] = "";
    int r = socket_image_parse(text, strlen(text), &out, err, sizeof(err));
    assert_int_equal(r, code);
    if (!strstr(err, msg))
        fail_msg("message \"%s\" lacks \"%s\"", err, msg);
    assert_null(out.conns);
}

static void test_parse_errors(void **state)
{
    expect_parse_error("", -EINVAL, "not JSON");
    expect_parse_error("{\"format\":", -EINVAL, "truncated");
    expect_parse_error("[1,2]", -EINVAL, "must be a JSON object");
    expect_parse_error("{} x", -EINVAL, "image: "); /* strict tokenizer or our trailing check */
    expect_parse_error("{} \n", -EINVAL, "missing \"format\""); /* whitespace is fine */
    expect_parse_error("{\"format\":\"\xff\xfe\"}", -EINVAL, "not JSON");
    /* Nesting past the tokenizer's depth. */
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 99);
    deep[199] = 0;
    expect_parse_error(deep, -EINVAL, "not JSON");
    expect_parse_error("{\"format\":\"netckpt-socket-image\",\"version\":1}", -EINVAL,
                       "missing \"image_id\"");
}

/* 65537 connections is refused before any of them is looked at. */
static void test_too_many(void **state)
{
    struct socket_image img;
    sample_image(&img);
    json_object *j = socket_image_to_json(&img);
    socket_image_free(&img);
    json_object *conns = json_object_object_get(j, "connections");
    json_object_array_put_idx(conns, SOCKET_IMAGE_MAX_CONNS, json_object_new_object());
    struct socket_image out;
    char err[256];
    assert_int_equal(socket_image_from_json(j, &out, err, sizeof(err)), -E2BIG);
    assert_non_null(strstr(err, "more than 65536 connections"));
    json_object_array_del_idx(conns, 3, SOCKET_IMAGE_MAX_CONNS + 1 - 3);
    json_object *sk = json_object_object_get(j, "skipped");
    json_object_array_put_idx(sk, SOCKET_IMAGE_MAX_SKIPPED, json_object_new_object());
    assert_int_equal(socket_image_from_json(j, &out, err, sizeof(err)), -E2BIG);
    json_object_array_del_idx(sk, 2, SOCKET_IMAGE_MAX_SKIPPED + 1 - 2);
    json_object *owners = json_object_object_get(json_object_array_get_idx(conns, 0), "owners");
    json_object_array_put_idx(owners, SOCKET_IMAGE_MAX_OWNERS, json_object_new_object());
    assert_int_equal(socket_image_from_json(j, &out, err, sizeof(err)), -E2BIG);
    json_object_array_del_idx(owners, 1, SOCKET_IMAGE_MAX_OWNERS);
    /* Back to a valid image. */
    int r = socket_image_from_json(j, &out, err, sizeof(err));
    if (r < 0)
        fail_msg("%s", err);
    socket_image_free(&out);
    json_object_put(j);
}

/* A queue over the per-queue limit, with data that really is that long. */
static void test_oversized_queue(void **state)
{
    struct socket_image img;
    sample_image(&img);
    json_object *j = socket_image_to_json(&img);
    socket_image_free(&img);
    size_t len = SOCKET_IMAGE_MAX_QUEUE + 3;
    _cleanup_free_ uint8_t *buf = calloc(1, len);
    _cleanup_free_ char *b64 = base64_encode(buf, len);
    char sha[SHA256_HEX_LEN];
    sha256_hex(buf, len, sha);
    json_object *q = json_object_object_get(
        json_object_array_get_idx(json_object_object_get(j, "connections"), 0), "recv");
    json_object_object_add(q, "len", json_object_new_int64((int64_t)len));
    json_object_object_add(q, "sha256", json_object_new_string(sha));
    json_object_object_add(q, "data", json_object_new_string(b64));
    struct socket_image out;
    char err[256];
    assert_int_equal(socket_image_from_json(j, &out, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "out of range"));
    json_object_put(j);
}

/* ------------------------------------------------------------------ diff */

static void test_diff(void **state)
{
    struct socket_image a, b;
    sample_image(&a);
    sample_image(&b);
    json_object *d = NULL;
    assert_int_equal(socket_image_diff(&a, &b, &d), 0);
    json_object_put(d);

    b.conns[0].st.snd_seq++;
    b.conns[1].st.recv.data[5] ^= 1;
    b.conns[2].st.window.rcv_wnd = 99; /* has_window is false on both: not compared */
    b.conns[0].st.window.rcv_wnd += 4096; /* our advertised window may move while frozen */
    b.conns[0].st.window.rcv_wup += 1;
    b.conns[0].st.timestamp++;         /* a clock: never compared */
    b.conns[0].inode = 77;             /* bookkeeping: never compared */
    assert_int_equal(socket_image_diff(&a, &b, &d), 2);
    json_object *e0 = json_object_array_get_idx(d, 0);
    assert_string_equal(json_object_get_string(json_object_object_get(e0, "field")), "snd_seq");
    assert_string_equal(json_object_get_string(json_object_object_get(e0, "connection")),
                        "10.0.0.2:40000 -> 10.0.1.2:5000");
    assert_int_equal(json_object_get_int64(json_object_object_get(e0, "expected")), 0xfffffff0u);
    assert_int_equal(json_object_get_int64(json_object_object_get(e0, "live")), 0xfffffff1u);
    json_object *e1 = json_object_array_get_idx(d, 1);
    assert_string_equal(json_object_get_string(json_object_object_get(e1, "field")), "recv");
    assert_string_equal(json_object_get_string(json_object_object_get(e1, "connection")),
                        "[fd00::2]:40001 -> [fd00:1::2]:5001");
    json_object_put(d);

    /* One connection missing from live, another one extra, and a different boot. */
    b.conns[0].st.snd_seq--;
    b.conns[1].st.recv.data[5] ^= 1;
    b.conns[2].st.remote.port = 6000;
    b.boot_id[0] = 'f';
    assert_int_equal(socket_image_diff(&a, &b, &d), 3);
    const char *text = json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN);
    assert_non_null(strstr(text, "\"field\":\"boot_id\""));
    assert_non_null(strstr(text, "5002\",\"field\":\"connection\",\"expected\":\"present\","
                                 "\"live\":\"missing\""));
    assert_non_null(strstr(text, "6000\",\"field\":\"connection\",\"expected\":\"missing\""));
    json_object_put(d);
    socket_image_free(&a);
    socket_image_free(&b);
}

/* Matching is by 4-tuple, not position, and scales (n log n) to large images. */
static void test_diff_large(void **state)
{
    enum { N = 20000 };
    struct socket_image a = {0}, b = {0};
    strcpy(a.boot_id, "01234567-89ab-cdef-0123-456789abcdef");
    strcpy(b.boot_id, a.boot_id);
    a.conns = calloc(N, sizeof(*a.conns));
    b.conns = calloc(N, sizeof(*b.conns));
    a.n_conns = b.n_conns = N;
    for (int i = 0; i < N; i++) {
        struct tcp_conn_state *st = &a.conns[i].st;
        st->sock_family = AF_INET;
        st->state = TCP_ESTABLISHED;
        set_ep(&st->local, AF_INET, "10.0.0.2", (uint16_t)(1 + i % 60000));
        set_ep(&st->remote, AF_INET, i < 60000 ? "10.0.1.2" : "10.0.1.3", 80);
        st->snd_seq = (uint32_t)i;
    }
    for (int i = 0; i < N; i++) /* same connections, reversed */
        b.conns[i].st = a.conns[N - 1 - i].st;
    json_object *d = NULL;
    assert_int_equal(socket_image_diff(&a, &b, &d), 0);
    json_object_put(d);
    b.conns[17].st.snd_seq++;
    assert_int_equal(socket_image_diff(&a, &b, &d), 1);
    json_object_put(d);
    free(a.conns);
    free(b.conns); /* no queues or owners to free */
}

/* ------------------------------------------------------------------ classify */

static void test_classify(void **state)
{
    struct local_addrs la = {0};
    assert_int_equal(socket_image_local_addrs(&la), 0);
    struct tcp_endpoint ep;
    set_ep(&ep, AF_INET, "127.0.0.9", 1);
    assert_string_equal(socket_image_classify(&la, &ep), SKIP_LOOPBACK);
    set_ep(&ep, AF_INET6, "::1", 1);
    assert_string_equal(socket_image_classify(&la, &ep), SKIP_LOOPBACK);
    set_ep(&ep, AF_INET6, "::ffff:127.1.2.3", 1);
    assert_string_equal(socket_image_classify(&la, &ep), SKIP_LOOPBACK);
    set_ep(&ep, AF_INET, "127.1.2.3", 1);
    assert_string_equal(socket_image_classify(&la, &ep), SKIP_LOOPBACK);
    set_ep(&ep, AF_INET, "192.0.2.1", 1);
    assert_null(socket_image_classify(&la, &ep));
    local_addrs_free(&la);

    struct in6_addr own[2];
    assert_int_equal(inet_pton(AF_INET6, "::ffff:10.9.8.7", &own[0]), 1);
    assert_int_equal(inet_pton(AF_INET6, "fd00::7", &own[1]), 1);
    struct local_addrs fake = {.v = own, .n = 2};
    set_ep(&ep, AF_INET, "10.9.8.7", 1);
    assert_string_equal(socket_image_classify(&fake, &ep), SKIP_INTRA_GUEST);
    set_ep(&ep, AF_INET6, "::ffff:10.9.8.7", 1); /* v4-mapped peer of a dual-stack socket */
    assert_string_equal(socket_image_classify(&fake, &ep), SKIP_INTRA_GUEST);
    set_ep(&ep, AF_INET6, "fd00::7", 1);
    assert_string_equal(socket_image_classify(&fake, &ep), SKIP_INTRA_GUEST);
    set_ep(&ep, AF_INET6, "fd00::8", 1);
    assert_null(socket_image_classify(&fake, &ep));
}

/* ------------------------------------------------------------------ schema */

static void test_schema_accepts_written(void **state)
{
    const char *src = getenv("NETCKPT_SOURCE_DIR");
    if (!src)
        skip();
    char dir[] = "/tmp/netckpt-image-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct socket_image img;
    sample_image(&img);
    char path[128];
    json_object *j = socket_image_to_json(&img);
    snprintf(path, sizeof(path), "%s/full.json", dir);
    assert_int_equal(json_object_to_file(path, j), 0);
    json_object_put(j);
    socket_image_free(&img);

    struct socket_image empty = {0};
    assert_int_equal(socket_image_init_header(&empty), 0);
    j = socket_image_to_json(&empty);
    snprintf(path, sizeof(path), "%s/empty.json", dir);
    assert_int_equal(json_object_to_file(path, j), 0);
    json_object_put(j);

    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "python3 %s/tests/tools/validate-json-schema.py %s/schemas/socket-image.schema.json "
             "%s/full.json %s/empty.json",
             src, src, dir, dir);
    int st = system(cmd);
    rm_rf(dir);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_empty_image),
        cmocka_unit_test(test_init_header),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_too_many),
        cmocka_unit_test(test_oversized_queue),
        cmocka_unit_test(test_diff),
        cmocka_unit_test(test_diff_large),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_schema_accepts_written),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
