/* Unit tests of agent/qga-client.c against the real server over a socketpair, in one process:
 * the transport pumps the server side before each client read, so nothing is threaded and
 * every test is deterministic. */
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "agent/agent-commands.h"
#include "agent/qga-client.h"
#include "agent/qga-server.h"

struct pump {
    int cfd, sfd; /* client end, server end */
    struct qga_server srv;
    struct qga_command table[AGENT_COMMAND_COUNT];
    struct qga_transport fdt; /* the plain fd transport of cfd, wrapped */
    bool hold;                /* server "hangs": requests are kept, not answered */
    char held[1 << 16];
    size_t n_held;
    const char *inject; /* raw bytes the "server" writes before its next replies */
    int counter;
    size_t big_reply;
    bool frozen;
};

static bool is_frozen(void *ud)
{
    return ((struct pump *)ud)->frozen;
}

static int h_status(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    struct pump *p = ud;
    *ret = json_object_new_object();
    json_object_object_add(*ret, "n", json_object_new_int(++p->counter));
    if (p->big_reply) {
        char *s = malloc(p->big_reply + 1);
        memset(s, 'z', p->big_reply);
        s[p->big_reply] = 0;
        json_object_object_add(*ret, "pad", json_object_new_string(s));
        free(s);
    }
    return 0;
}

static int h_freeze(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    ((struct pump *)ud)->frozen = true;
    return 0;
}

static int h_verify(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    const char *id = NULL;
    if (qga_arg_string(args, "image_id", true, 32, &id, err) < 0)
        return -EINVAL;
    *ret = json_object_new_object();
    json_object_object_add(*ret, "match", json_object_new_boolean(!strcmp(id, "good")));
    return 0;
}

static void pump_server(struct pump *p)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(p->sfd, buf, sizeof(buf));
        if (n <= 0)
            break;
        if (p->hold) {
            assert_true(p->n_held + (size_t)n <= sizeof(p->held));
            memcpy(p->held + p->n_held, buf, (size_t)n);
            p->n_held += (size_t)n;
            continue;
        }
        if (p->n_held) {
            assert_true(qga_server_feed(&p->srv, p->held, p->n_held, p->sfd) >= 0);
            p->n_held = 0;
        }
        if (p->inject) {
            assert_int_equal(write(p->sfd, p->inject, strlen(p->inject)),
                             (ssize_t)strlen(p->inject));
            p->inject = NULL;
        }
        assert_true(qga_server_feed(&p->srv, buf, (size_t)n, p->sfd) >= 0);
    }
}

static ssize_t t_send(void *ctx, const void *buf, size_t len)
{
    struct pump *p = ctx;
    return p->fdt.send(p->fdt.ctx, buf, len);
}

static ssize_t t_recv(void *ctx, void *buf, size_t len, int timeout_ms)
{
    struct pump *p = ctx;
    pump_server(p);
    return p->fdt.recv(p->fdt.ctx, buf, len, timeout_ms);
}

static int setup(void **state)
{
    struct pump *p = calloc(1, sizeof(*p));
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    p->cfd = fds[0];
    p->sfd = fds[1];
    fcntl(p->sfd, F_SETFL, O_NONBLOCK);
    struct agent_handlers h = {h_status, h_freeze, h_status, h_status, h_verify, h_status};
    assert_int_equal(agent_commands_table(&h, p->table), 0);
    assert_int_equal(qga_server_init(&p->srv, p->table, AGENT_COMMAND_COUNT, p, is_frozen), 0);
    qga_transport_fd(&p->fdt, &p->cfd);
    *state = p;
    return 0;
}

static int teardown(void **state)
{
    struct pump *p = *state;
    qga_server_free(&p->srv);
    if (p->cfd >= 0)
        close(p->cfd);
    if (p->sfd >= 0)
        close(p->sfd);
    free(p);
    return 0;
}

static struct qga_client *client(struct pump *p)
{
    struct qga_transport t = {.ctx = p, .send = t_send, .recv = t_recv};
    struct qga_client *c = qga_client_new(&t);
    assert_non_null(c);
    return c;
}

static int status_n(json_object *ret)
{
    json_object *n;
    assert_true(json_object_object_get_ex(ret, "n", &n));
    return json_object_get_int(n);
}

static void test_call_and_sync(void **state)
{
    struct pump *p = *state;
    _cleanup_qga_client_ struct qga_client *c = client(p);
    json_object *ret;
    struct qga_error err;
    assert_int_equal(qga_client_sync(c, 5000), 0);
    assert_int_equal(qga_client_call(c, "guest-net-status", NULL, 5000, &ret, &err), 0);
    assert_int_equal(status_n(ret), 1);
    json_object_put(ret);
    assert_int_equal(qga_client_call(c, "guest-ping", NULL, 5000, &ret, &err), 0);
    assert_true(json_object_is_type(ret, json_type_object));
    json_object_put(ret);

    json_object *args = json_tokener_parse("{\"image_id\":\"good\"}");
    assert_int_equal(qga_client_call(c, "guest-net-verify", args, 5000, &ret, &err), 0);
    assert_true(json_object_get_boolean(json_object_object_get(ret, "match")));
    json_object_put(ret);
    /* args was borrowed, still ours. */
    assert_int_equal(json_object_object_length(args), 1);

    /* A big request (like a full image) goes out uncopied and arrives whole. */
    char *pad = malloc(50001);
    memset(pad, 'q', 50000);
    pad[50000] = 0;
    json_object_object_add(args, "pad", json_object_new_string(pad));
    free(pad);
    assert_int_equal(qga_client_call(c, "guest-net-verify", args, 5000, &ret, &err), 0);
    assert_true(json_object_get_boolean(json_object_object_get(ret, "match")));
    json_object_put(ret);
    json_object_put(args);
}

static void test_first_call_syncs(void **state)
{
    struct pump *p = *state;
    /* A previous host left half a request in the agent. */
    assert_int_equal(write(p->cfd, "{\"execute\":\"guest-net-sta", 25), 25);
    _cleanup_qga_client_ struct qga_client *c = client(p);
    json_object *ret;
    struct qga_error err;
    assert_int_equal(qga_client_call(c, "guest-net-status", NULL, 5000, &ret, &err), 0);
    assert_int_equal(status_n(ret), 1);
    json_object_put(ret);
}

static void test_timeout_then_resync_ignores_stale(void **state)
{
    struct pump *p = *state;
    _cleanup_qga_client_ struct qga_client *c = client(p);
    json_object *ret;
    struct qga_error err;
    assert_int_equal(qga_client_sync(c, 5000), 0);

    /* The agent hangs: the call times out (no timing is asserted, only the outcome). */
    p->hold = true;
    assert_int_equal(qga_client_call(c, "guest-net-status", NULL, 50, &ret, &err), -ETIMEDOUT);
    assert_int_equal(err.cls, QGA_ERR_TIMEOUT);
    assert_null(ret);

    /* It wakes up: it answers the old request first (n=1). The client must resync, ignore
     * that stale reply, and return the answer to the new call (n=2). */
    p->hold = false;
    assert_int_equal(qga_client_call(c, "guest-net-status", NULL, 5000, &ret, &err), 0);
    assert_int_equal(status_n(ret), 2);
    json_object_put(ret);
    assert_int_equal(p->counter, 2);
}

static void test_stale_reply_with_wrong_id(void **state)
{
    struct pump *p = *state;
    _cleanup_qga_client_ struct qga_client *c = client(p);
    json_object *ret;
    struct qga_error err;
    assert_int_equal(qga_client_sync(c, 5000), 0);
    p->inject = "{\"return\":{\"n\":999},\"id\":12}\n[1]\n";
    assert_int_equal(qga_client_call(c, "guest-net-status", NULL, 5000, &ret, &err), 0);
    assert_int_equal(status_n(ret), 1);
    json_object_put(ret);
}

static void test_garbage_and_partial_before_sync(void **state)
{
    struct pump *p = *state;
    _cleanup_qga_client_ struct qga_client *c = client(p);
    json_object *ret;
    struct qga_error err;
    /* Stale junk and half a reply wait in the client's stream before the sync reply. */
    p->inject = "junk {\"return\":{\"n\":5},\"id\":1}\n{\"return\":{\"n\":";
    assert_int_equal(qga_client_call(c, "guest-net-status", NULL, 5000, &ret, &err), 0);
    assert_int_equal(status_n(ret), 1);
    json_object_put(ret);
}

static void test_error_mapping(void **state)
{
    struct pump *p = *state;
    _cleanup_qga_client_ struct qga_client *c = client(p);
    json_object *ret;
    struct qga_error err;
    assert_int_equal(qga_client_call(c, "guest-exec", NULL, 5000, &ret, &err), -EREMOTEIO);
    assert_int_equal(err.cls, QGA_ERR_COMMAND_NOT_FOUND);
    assert_non_null(strstr(err.desc, "guest-exec"));

    assert_int_equal(qga_client_call(c, "guest-net-freeze", NULL, 5000, &ret, &err), 0);
    json_object_put(ret);
    assert_int_equal(qga_client_call(c, "guest-net-freeze", NULL, 5000, &ret, &err), -EREMOTEIO);
    assert_int_equal(err.cls, QGA_ERR_COMMAND_DISABLED);
    assert_non_null(strstr(err.desc, "frozen"));

    assert_int_equal(qga_client_call(c, "guest-net-reset-stale", NULL, 5000, &ret, &err),
                     -EREMOTEIO);
    assert_int_equal(err.cls, QGA_ERR_COMMAND_DISABLED);
    p->frozen = false;
    json_object *args = json_tokener_parse("{\"image_id\":7}");
    assert_int_equal(qga_client_call(c, "guest-net-verify", args, 5000, &ret, &err), -EREMOTEIO);
    json_object_put(args);
    assert_int_equal(err.cls, QGA_ERR_INVALID_PARAMETER);

    /* A class we do not know stays readable. */
    p->inject = "{\"error\":{\"class\":\"DeviceNotActive\",\"desc\":\"gone\"}}\n";
    assert_int_equal(qga_client_call(c, "guest-ping", NULL, 5000, &ret, &err), -EREMOTEIO);
    assert_int_equal(err.cls, QGA_ERR_GENERIC_ERROR);
    assert_string_equal(err.desc, "DeviceNotActive: gone");
    /* That injected reply had no id and was taken as ours; the real one is now stale. The
     * next call still gets its own answer. */
    assert_int_equal(qga_client_call(c, "guest-net-status", NULL, 5000, &ret, &err), 0);
    assert_int_equal(status_n(ret), 1);
    json_object_put(ret);

    /* Neither return nor error. */
    p->inject = "{\"huh\":1}\n";
    assert_int_equal(qga_client_call(c, "guest-ping", NULL, 5000, &ret, &err), -EPROTO);
    assert_int_equal(qga_client_call(c, "guest-net-status", NULL, 5000, &ret, &err), 0);
    assert_int_equal(status_n(ret), 2);
    json_object_put(ret);
}

static void test_reply_size_limit(void **state)
{
    struct pump *p = *state;
    _cleanup_qga_client_ struct qga_client *c = client(p);
    json_object *ret;
    struct qga_error err;
    assert_int_equal(qga_client_set_max_reply(c, 0), -EINVAL);
    assert_int_equal(qga_client_set_max_reply(c, 4096), 0);
    p->big_reply = 8192;
    assert_int_equal(qga_client_call(c, "guest-net-status", NULL, 5000, &ret, &err), -EMSGSIZE);
    assert_non_null(strstr(err.desc, "larger than 4096"));
    p->big_reply = 0;
    assert_int_equal(qga_client_call(c, "guest-net-status", NULL, 5000, &ret, &err), 0);
    assert_int_equal(status_n(ret), 2);
    json_object_put(ret);
    /* Raised, the same reply goes through. */
    assert_int_equal(qga_client_set_max_reply(c, 1 << 20), 0);
    p->big_reply = 8192;
    assert_int_equal(qga_client_call(c, "guest-net-status", NULL, 5000, &ret, &err), 0);
    assert_int_equal(status_n(ret), 3);
    json_object_put(ret);
}

static void test_eof(void **state)
{
    struct pump *p = *state;
    _cleanup_qga_client_ struct qga_client *c = client(p);
    json_object *ret;
    struct qga_error err;
    assert_int_equal(qga_client_sync(c, 5000), 0);
    close(p->sfd);
    p->sfd = -1;
    int r = qga_client_call(c, "guest-ping", NULL, 5000, &ret, &err);
    assert_true(r == -ECONNRESET || r == -EPIPE);
    assert_true(err.desc[0] != 0);
}

static void test_bad_args(void **state)
{
    struct pump *p = *state;
    _cleanup_qga_client_ struct qga_client *c = client(p);
    json_object *ret;
    struct qga_error err;
    json_object *arr = json_object_new_array();
    assert_int_equal(qga_client_call(c, "guest-ping", arr, 5000, &ret, &err), -EINVAL);
    json_object_put(arr);
}

int main(void)
{
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_call_and_sync),
        T(test_first_call_syncs),
        T(test_timeout_then_resync_ignores_stale),
        T(test_stale_reply_with_wrong_id),
        T(test_garbage_and_partial_before_sync),
        T(test_error_mapping),
        T(test_reply_size_limit),
        T(test_eof),
        T(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
