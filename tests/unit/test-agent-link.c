/* Unit tests of host/agent-link over its UNIX socket path, against a real qga server
 * (agent/qga-server) in a thread: calls, agent errors, a timeout followed by a resync, the
 * reply size limit, a vanished agent; and the untrusted-reply parser used for libvirt's agent
 * API path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/qga-server.h"
#include "common/util.h"
#include "agent/qga-stream.h"
#include "host/agent-link.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

struct srv {
    char dir[64];
    char path[128];
    int lfd;
    _Atomic int cfd; /* the connection being served, so teardown can cut it */
    pthread_t thread;
};

static int h_echo(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    *ret = json_object_get(args);
    return 0;
}

static int h_fail(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    qga_error_set(err, QGA_ERR_INVALID_PARAMETER, "no such thing");
    return -EINVAL;
}

static int h_slow(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    struct timespec ts = {0, 400 * 1000000L};
    nanosleep(&ts, NULL);
    *ret = json_object_new_string("late");
    return 0;
}

static int h_big(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    char *s = malloc(100001);
    memset(s, 'x', 100000);
    s[100000] = 0;
    *ret = json_object_new_string(s);
    free(s);
    return 0;
}

static const struct qga_command table[] = {
    {"test-echo", h_echo, false},
    {"test-fail", h_fail, false},
    {"test-slow", h_slow, false},
    {"test-big", h_big, false},
};

/* Serves connections one after another until the listening socket is shut down. */
static void *serve(void *arg)
{
    struct srv *s = arg;
    for (;;) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        s->cfd = fd;
        struct qga_server qs;
        if (qga_server_init(&qs, table, sizeof(table) / sizeof(table[0]), NULL, NULL) < 0) {
            close(fd);
            return NULL;
        }
        char buf[4096];
        ssize_t n;
        while ((n = read(fd, buf, sizeof(buf))) > 0)
            if (qga_server_feed(&qs, buf, (size_t)n, fd) < 0)
                break;
        qga_server_free(&qs);
        s->cfd = -1;
        close(fd);
    }
}

static int setup(void **state)
{
    struct srv *s = calloc(1, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "/tmp/netckpt-test-alink-XXXXXX");
    if (!mkdtemp(s->dir))
        return -1;
    snprintf(s->path, sizeof(s->path), "%s/agent.sock", s->dir);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, s->path);
    s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s->lfd, 4) < 0)
        return -1;
    s->cfd = -1;
    pthread_create(&s->thread, NULL, serve, s);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    struct srv *s = *state;
    shutdown(s->lfd, SHUT_RDWR);
    int c = s->cfd;
    if (c >= 0)
        shutdown(c, SHUT_RDWR);
    pthread_join(s->thread, NULL);
    close(s->lfd);
    rm_rf(s->dir);
    free(s);
    return 0;
}

static void test_calls(void **state)
{
    struct srv *s = *state;
    struct agent_link l;
    assert_int_equal(agent_link_open_unix(&l, s->path, 1000), 0);
    assert_int_equal(l.kind, AGENT_LINK_UNIX);
    assert_string_equal(agent_link_kind_name(l.kind), "unix-socket");
    assert_int_equal(agent_link_sync(&l, 2000), 0);

    json_object *ret = NULL;
    struct qga_error e;
    assert_int_equal(agent_link_call(&l, "guest-ping", NULL, 2000, &ret, &e), 0);
    json_object_put(ret);

    json_object *args = json_object_new_object();
    json_object_object_add(args, "k", json_object_new_int(42));
    assert_int_equal(agent_link_call(&l, "test-echo", args, 2000, &ret, &e), 0);
    json_object *k;
    assert_true(json_object_object_get_ex(ret, "k", &k));
    assert_int_equal(json_object_get_int(k), 42);
    json_object_put(ret);
    json_object_put(args);

    assert_int_equal(agent_link_call(&l, "test-fail", NULL, 2000, &ret, &e), -EREMOTEIO);
    assert_int_equal(e.cls, QGA_ERR_INVALID_PARAMETER);
    assert_string_equal(e.desc, "no such thing");
    assert_null(ret);
    assert_int_equal(agent_link_call(&l, "no-such-cmd", NULL, 2000, &ret, &e), -EREMOTEIO);
    assert_int_equal(e.cls, QGA_ERR_COMMAND_NOT_FOUND);
    agent_link_close(&l);
    agent_link_close(&l); /* idempotent */
}

static void test_timeout_then_resync(void **state)
{
    struct srv *s = *state;
    struct agent_link l;
    assert_int_equal(agent_link_open_unix(&l, s->path, 1000), 0);
    json_object *ret = NULL;
    struct qga_error e;
    assert_int_equal(agent_link_call(&l, "test-slow", NULL, 100, &ret, &e), -ETIMEDOUT);
    /* the late reply arrives later; the next call resyncs past it and gets its own */
    json_object *args = json_object_new_object();
    json_object_object_add(args, "who", json_object_new_string("mine"));
    assert_int_equal(agent_link_call(&l, "test-echo", args, 3000, &ret, &e), 0);
    json_object *who;
    assert_true(json_object_object_get_ex(ret, "who", &who));
    assert_string_equal(json_object_get_string(who), "mine");
    json_object_put(ret);
    json_object_put(args);
    agent_link_close(&l);
}

static void test_reply_limit(void **state)
{
    struct srv *s = *state;
    struct agent_link l;
    assert_int_equal(agent_link_open_unix(&l, s->path, 1000), 0);
    assert_int_equal(agent_link_set_max_reply(&l, 10000), 0);
    json_object *ret = NULL;
    struct qga_error e;
    int r = agent_link_call(&l, "test-big", NULL, 2000, &ret, &e);
    assert_true(r == -EMSGSIZE || r == -ETIMEDOUT);
    assert_null(ret);
    assert_int_equal(agent_link_set_max_reply(&l, 1 << 20), 0);
    assert_int_equal(agent_link_call(&l, "test-big", NULL, 3000, &ret, &e), 0);
    assert_int_equal(json_object_get_string_len(ret), 100000);
    json_object_put(ret);
    agent_link_close(&l);

    /* A link without a qga client (libvirt's agent API) refuses what the client would. */
    struct agent_link q = {.kind = AGENT_LINK_QEMU_AGENT, .fd = -1};
    assert_int_equal(agent_link_set_max_reply(&q, (size_t)QGA_READER_MAX_BYTES + 1), -EINVAL);
    assert_int_equal(agent_link_set_max_reply(&q, QGA_READER_MAX_BYTES), 0);
    assert_int_equal(q.max_reply, QGA_READER_MAX_BYTES);
}

static void test_no_agent(void **state)
{
    struct srv *s = *state;
    struct agent_link l;
    char p[160];
    snprintf(p, sizeof(p), "%s/absent.sock", s->dir);
    assert_int_equal(agent_link_open_unix(&l, p, 500), -ENOENT);
    json_object *ret = NULL;
    struct qga_error e;
    struct agent_link z;
    memset(&z, 0, sizeof(z));
    z.fd = -1;
    assert_int_equal(agent_link_call(&z, "guest-ping", NULL, 100, &ret, &e), -ENOTCONN);
}

static void test_parse_reply(void **state)
{
    json_object *ret = NULL;
    struct qga_error e;
    assert_int_equal(agent_link_parse_reply("{\"return\":{\"a\":1}}", 1000, &ret, &e), 0);
    assert_true(json_object_is_type(ret, json_type_object));
    json_object_put(ret);
    assert_int_equal(agent_link_parse_reply("{\"error\":{\"class\":\"CommandDisabled\","
                                            "\"desc\":\"frozen\"}}",
                                            1000, &ret, &e),
                     -EREMOTEIO);
    assert_int_equal(e.cls, QGA_ERR_COMMAND_DISABLED);
    assert_string_equal(e.desc, "frozen");
    const char *bad[] = {
        "", "[1]", "{\"return\":", "{\"x\":1}", "{\"error\":\"str\"}", "{\"return\":1} junk"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ret = NULL;
        int r = agent_link_parse_reply(bad[i], 1000, &ret, &e);
        if (r != -EBADMSG)
            fail_msg("'%s' gave %d", bad[i], r);
        assert_null(ret);
    }
    assert_int_equal(agent_link_parse_reply("{\"return\":\"0123456789\"}", 10, &ret, &e),
                     -EMSGSIZE);
    size_t depth = 5000;
    char *deep = malloc(2 * depth + 20);
    strcpy(deep, "{\"return\":");
    memset(deep + 10, '[', depth);
    memset(deep + 10 + depth, ']', depth);
    strcpy(deep + 10 + 2 * depth, "}");
    assert_int_equal(agent_link_parse_reply(deep, 1 << 20, &ret, &e), -EBADMSG);
    free(deep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_then_resync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_agent, setup, teardown),
        cmocka_unit_test(test_parse_reply),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
