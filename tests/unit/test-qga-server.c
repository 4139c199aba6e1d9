/* Unit tests of agent/qga-server.c and agent/agent-commands.c: dispatch, built-ins, the
 * frozen allowlist, id echo, error shapes. Replies are read back from a socketpair. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "agent/agent-commands.h"
#include "agent/qga-server.h"

struct fixture {
    struct qga_server srv;
    struct qga_command table[AGENT_COMMAND_COUNT];
    int fds[2]; /* [0] server writes, [1] test reads */
    bool frozen;
    int calls;
};

static bool is_frozen(void *ud)
{
    return ((struct fixture *)ud)->frozen;
}

static int h_status(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    struct fixture *f = ud;
    f->calls++;
    assert_non_null(args);
    *ret = json_object_new_object();
    json_object_object_add(*ret, "frozen", json_object_new_boolean(f->frozen));
    return 0;
}

static int h_freeze(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    static const char *const known[] = {"timeout", "include", NULL};
    struct fixture *f = ud;
    int64_t timeout = 30;
    if (qga_args_check_known(args, known, err) < 0 ||
        qga_arg_int(args, "timeout", false, 1, 86400, &timeout, err) < 0)
        return -EINVAL;
    f->calls++;
    f->frozen = true;
    *ret = json_object_new_object();
    json_object_object_add(*ret, "timeout", json_object_new_int64(timeout));
    return 0;
}

static int h_thaw(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    struct fixture *f = ud;
    f->calls++;
    f->frozen = false;
    return 0; /* no *ret: becomes {} */
}

static int h_fail_errno(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    return -EIO; /* err left empty: the server says why */
}

static int h_fail_class(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    qga_error_set(err, QGA_ERR_NOT_FOUND, "no image with id %s", "abc");
    return -ENOENT;
}

static int h_info(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    struct fixture *f = ud;
    *ret = qga_server_info(&f->srv, "9.9");
    return *ret ? 0 : -ENOMEM;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct agent_handlers h = {
        .info = h_info,
        .net_freeze = h_freeze,
        .net_thaw = h_thaw,
        .net_status = h_status,
        .net_verify = h_fail_class,
        .net_reset_stale = h_fail_errno,
    };
    assert_int_equal(agent_commands_table(&h, f->table), 0);
    assert_int_equal(qga_server_init(&f->srv, f->table, AGENT_COMMAND_COUNT, f, is_frozen), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f->fds), 0);
    fcntl(f->fds[1], F_SETFL, O_NONBLOCK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    qga_server_free(&f->srv);
    close(f->fds[0]);
    close(f->fds[1]);
    free(f);
    return 0;
}

/* Feed text to the server and return everything it wrote (static buffer per call). */
static const char *roundtrip(struct fixture *f, const char *in, size_t len, char *out,
                             size_t out_len)
{
    int r = qga_server_feed(&f->srv, in, len, f->fds[0]);
    assert_true(r >= 0);
    ssize_t n = read(f->fds[1], out, out_len - 1);
    if (n < 0)
        n = 0;
    out[n] = 0;
    return out;
}

#define RT(f, s) roundtrip(f, s, strlen(s), out, sizeof(out))

static void test_sync_echoes_id(void **state)
{
    struct fixture *f = *state;
    char out[4096];
    assert_string_equal(RT(f, "{\"execute\":\"guest-sync\",\"arguments\":{\"id\":1234567890123}}"),
                        "{\"return\":1234567890123}\n");
    /* Values beyond int64 come back unchanged too. */
    assert_string_equal(RT(f, "{\"execute\":\"guest-sync\",\"arguments\":{\"id\":-5}}"),
                        "{\"return\":-5}\n");
    assert_string_equal(
        RT(f, "{\"execute\":\"guest-sync\",\"arguments\":{\"id\":18446744073709551615}}"),
        "{\"return\":18446744073709551615}\n");
    /* Missing or non-integer id. */
    assert_non_null(strstr(RT(f, "{\"execute\":\"guest-sync\"}"), "\"InvalidParameter\""));
    assert_non_null(strstr(RT(f, "{\"execute\":\"guest-sync\",\"arguments\":{\"id\":\"x\"}}"),
                           "must be an integer"));
}

static void test_sync_delimited(void **state)
{
    struct fixture *f = *state;
    char out[4096];
    /* Garbage half-request, 0xFF, then the sync: the half request is dropped silently. */
    const char *o = RT(f, "{\"execute\":\"guest-ne\xff{\"execute\":\"guest-sync-delimited\","
                          "\"arguments\":{\"id\":42}}\n{\"execute\":\"guest-ping\"}");
    assert_string_equal(o, "\xff{\"return\":42}\n{\"return\":{}}\n");
}

static void test_ping_and_id_echo(void **state)
{
    struct fixture *f = *state;
    char out[4096];
    assert_string_equal(RT(f, "{\"execute\":\"guest-ping\"}"), "{\"return\":{}}\n");
    assert_string_equal(RT(f, "{\"id\":\"abc\",\"execute\":\"guest-ping\"}"),
                        "{\"return\":{},\"id\":\"abc\"}\n");
    assert_string_equal(RT(f, "{\"execute\":\"guest-ping\",\"id\":{\"n\":[1,2]}}"),
                        "{\"return\":{},\"id\":{\"n\":[1,2]}}\n");
    /* Errors echo the id too. */
    const char *o = RT(f, "{\"execute\":\"nope\",\"id\":7}");
    assert_non_null(strstr(o, "\"id\":7}\n"));
    assert_non_null(strstr(o, "CommandNotFound"));
}

static void test_unknown_command(void **state)
{
    struct fixture *f = *state;
    char out[4096];
    assert_string_equal(
        RT(f, "{\"execute\":\"guest-exec\"}"),
        "{\"error\":{\"class\":\"CommandNotFound\",\"desc\":\"The command guest-exec has not "
        "been found\"}}\n");
}

static void test_frozen_refusal(void **state)
{
    struct fixture *f = *state;
    char out[4096];
    assert_string_equal(RT(f, "{\"execute\":\"guest-net-freeze\",\"arguments\":{\"timeout\":5}}"),
                        "{\"return\":{\"timeout\":5}}\n");
    assert_true(f->frozen);

    const char *o = RT(f, "{\"execute\":\"guest-net-freeze\"}");
    assert_non_null(strstr(o, "\"class\":\"CommandDisabled\""));
    assert_non_null(strstr(o, "frozen"));
    o = RT(f, "{\"execute\":\"guest-net-reset-stale\"}");
    assert_non_null(strstr(o, "CommandDisabled"));
    assert_int_equal(f->calls, 1);

    /* The allowlist still works while frozen. */
    assert_string_equal(RT(f, "{\"execute\":\"guest-net-status\"}"),
                        "{\"return\":{\"frozen\":true}}\n");
    /* verify runs while frozen (its handler here answers NotFound). */
    o = RT(f, "{\"execute\":\"guest-net-verify\",\"arguments\":{\"image_id\":\"x\"}}");
    assert_non_null(strstr(o, "NotFound"));
    assert_string_equal(RT(f, "{\"execute\":\"guest-ping\"}"), "{\"return\":{}}\n");
    assert_string_equal(RT(f, "{\"execute\":\"guest-sync\",\"arguments\":{\"id\":1}}"),
                        "{\"return\":1}\n");
    o = RT(f, "{\"execute\":\"guest-info\"}");
    assert_non_null(strstr(o, "{\"name\":\"guest-net-freeze\",\"enabled\":false"));
    assert_non_null(strstr(o, "{\"name\":\"guest-net-thaw\",\"enabled\":true"));
    assert_non_null(strstr(o, "\"version\":\"9.9\""));
    assert_string_equal(RT(f, "{\"execute\":\"guest-net-thaw\"}"), "{\"return\":{}}\n");
    assert_false(f->frozen);
    o = RT(f, "{\"execute\":\"guest-info\"}");
    assert_null(strstr(o, "\"enabled\":false"));
}

static void test_bad_requests(void **state)
{
    struct fixture *f = *state;
    char out[4096];
    const char *o = RT(f, "[1,2]");
    assert_non_null(strstr(o, "must be a JSON object"));
    o = RT(f, "{\"arguments\":{}}");
    assert_non_null(strstr(o, "no string member 'execute'"));
    o = RT(f, "{\"execute\":\"guest-ping\",\"extra\":1}");
    assert_non_null(strstr(o, "unexpected member 'extra'"));
    o = RT(f, "{\"execute\":\"guest-ping\",\"arguments\":[]}");
    assert_non_null(strstr(o, "InvalidParameter"));
    o = RT(f, "{\"execute\":\"guest-ping\",\"arguments\":{\"x\":1}}");
    assert_non_null(strstr(o, "unexpected argument 'x'"));
    o = RT(f, "{\"execute\":\"guest-net-freeze\",\"arguments\":{\"timeout\":0}}");
    assert_non_null(strstr(o, "between 1 and 86400"));
    assert_false(f->frozen);
    /* Framing errors get a reply and the stream goes on. */
    o = RT(f, "garbage{\"execute\":\"guest-ping\"}");
    assert_non_null(strstr(o, "{\"error\":{\"class\":\"GenericError\",\"desc\":\"unexpected byte"));
    assert_non_null(strstr(o, "}\n{\"return\":{}}\n"));
}

static void test_handler_errors(void **state)
{
    struct fixture *f = *state;
    char out[4096];
    f->frozen = false;
    const char *o = RT(f, "{\"execute\":\"guest-net-reset-stale\"}");
    assert_string_equal(o,
                        "{\"error\":{\"class\":\"GenericError\",\"desc\":\"guest-net-reset-stale "
                        "failed: Input/output error\"}}\n");
    o = RT(f, "{\"execute\":\"guest-net-verify\",\"id\":1}");
    assert_string_equal(
        o, "{\"error\":{\"class\":\"NotFound\",\"desc\":\"no image with id abc\"},\"id\":1}\n");
}

static void test_oversized_request(void **state)
{
    struct fixture *f = *state;
    size_t len = QGA_MAX_MESSAGE_BYTES + 1;
    char *b = malloc(len + 64);
    strcpy(b, "{\"execute\":\"guest-ping\",\"arguments\":{\"pad\":\"");
    size_t off = strlen(b);
    memset(b + off, 'p', len - off - 3);
    memcpy(b + len - 3, "\"}}", 3);
    strcpy(b + len, "{\"execute\":\"guest-ping\"}");
    /* The reader reports the oversized request once; the next one works. Read as we go. */
    int r = qga_server_feed(&f->srv, b, strlen(b), f->fds[0]);
    free(b);
    assert_int_equal(r, 1);
    char out[4096];
    ssize_t n = read(f->fds[1], out, sizeof(out) - 1);
    assert_true(n > 0);
    out[n] = 0;
    assert_non_null(strstr(out, "larger than 16777216 bytes"));
    assert_non_null(strstr(out, "}\n{\"return\":{}}\n"));
}

static void test_table_validation(void **state)
{
    struct qga_server s;
    struct qga_command dup[] = {{"a", h_thaw, true}, {"a", h_thaw, true}};
    assert_int_equal(qga_server_init(&s, dup, 2, NULL, NULL), -EINVAL);
    struct qga_command nohandler[] = {{"guest-info", NULL, true}};
    assert_int_equal(qga_server_init(&s, nohandler, 1, NULL, NULL), -EINVAL);
    struct qga_command builtins[] = {{"guest-ping", NULL, true}};
    assert_int_equal(qga_server_init(&s, builtins, 1, NULL, NULL), 0);
    qga_server_free(&s);
    struct agent_handlers h = {.info = h_info};
    struct qga_command t[AGENT_COMMAND_COUNT];
    assert_int_equal(agent_commands_table(&h, t), -EINVAL);
    assert_non_null(agent_command_find("guest-net-thaw"));
    assert_true(agent_command_find("guest-net-thaw")->allowed_while_frozen);
    assert_false(agent_command_find("guest-net-freeze")->allowed_while_frozen);
    assert_false(agent_command_find("guest-net-reset-stale")->allowed_while_frozen);
    assert_true(agent_command_find("guest-net-verify")->allowed_while_frozen);
    assert_null(agent_command_find("guest-exec"));
}

static void test_arg_helpers(void **state)
{
    json_object *a = json_tokener_parse(
        "{\"i\":5,\"big\":18446744073709551615,\"b\":true,\"s\":\"hey\",\"o\":{},\"l\":[]}");
    struct qga_error e;
    int64_t i = 0;
    bool b = false;
    const char *s = NULL;
    json_object *o = NULL;
    assert_int_equal(qga_arg_int(a, "i", true, 0, 10, &i, &e), 1);
    assert_int_equal(i, 5);
    assert_int_equal(qga_arg_int(a, "i", true, 6, 10, &i, &e), -EINVAL);
    assert_int_equal(e.cls, QGA_ERR_INVALID_PARAMETER);
    assert_int_equal(qga_arg_int(a, "big", true, 0, INT64_MAX, &i, &e), -EINVAL);
    assert_int_equal(qga_arg_int(a, "none", false, 0, 1, &i, &e), 0);
    assert_int_equal(qga_arg_int(a, "none", true, 0, 1, &i, &e), -EINVAL);
    assert_non_null(strstr(e.desc, "missing required argument 'none'"));
    assert_int_equal(qga_arg_int(a, "s", true, 0, 1, &i, &e), -EINVAL);
    assert_int_equal(qga_arg_bool(a, "b", true, &b, &e), 1);
    assert_true(b);
    assert_int_equal(qga_arg_bool(a, "i", true, &b, &e), -EINVAL);
    assert_int_equal(qga_arg_string(a, "s", true, 3, &s, &e), 1);
    assert_string_equal(s, "hey");
    assert_int_equal(qga_arg_string(a, "s", true, 2, &s, &e), -EINVAL);
    assert_int_equal(qga_arg_json(a, "o", true, json_type_object, &o, &e), 1);
    assert_int_equal(qga_arg_json(a, "l", true, json_type_array, &o, &e), 1);
    assert_int_equal(qga_arg_json(a, "l", true, json_type_object, &o, &e), -EINVAL);
    static const char *const known[] = {"i", "big", "b", "s", "o", NULL};
    assert_int_equal(qga_args_check_known(a, known, &e), -EINVAL);
    assert_non_null(strstr(e.desc, "'l'"));
    json_object_put(a);
}

static void test_error_json(void **state)
{
    struct qga_error e;
    json_object *j = json_tokener_parse("{\"class\":\"CommandDisabled\",\"desc\":\"frozen\"}");
    assert_int_equal(qga_error_from_json(j, &e), 0);
    assert_int_equal(e.cls, QGA_ERR_COMMAND_DISABLED);
    assert_string_equal(e.desc, "frozen");
    json_object_put(j);
    j = json_tokener_parse("{\"class\":\"WeirdClass\",\"desc\":\"x\"}");
    assert_int_equal(qga_error_from_json(j, &e), 0);
    assert_int_equal(e.cls, QGA_ERR_GENERIC_ERROR);
    assert_string_equal(e.desc, "WeirdClass: x");
    json_object_put(j);
    j = json_tokener_parse("{\"desc\":\"x\"}");
    assert_int_equal(qga_error_from_json(j, &e), -EBADMSG);
    json_object_put(j);
    for (int c = 0; c < _QGA_ERR_MAX; c++) {
        enum qga_error_class back;
        assert_true(qga_error_class_from_name(qga_error_class_name(c), &back));
        assert_int_equal(back, c);
    }
    assert_string_equal(qga_error_class_name(_QGA_ERR_MAX), "GenericError");
    assert_int_equal(qga_error_errno(&e, -ENOENT, "open %s", "x"), -ENOENT);
    assert_string_equal(e.desc, "open x: No such file or directory");
}

int main(void)
{
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_sync_echoes_id),  T(test_sync_delimited),    T(test_ping_and_id_echo),
        T(test_unknown_command), T(test_frozen_refusal),    T(test_bad_requests),
        T(test_handler_errors),  T(test_oversized_request), T(test_table_validation),
        T(test_arg_helpers),     T(test_error_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
