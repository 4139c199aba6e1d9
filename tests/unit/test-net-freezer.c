/* tests/unit/test-net-freezer.c: the parts of guest/net-freezer that need no sockets to
 * freeze: endpoint parsing, thaw/status/verify/reset-stale when thawed, and start-up recovery
 * from good, stale and corrupt state files. (Freezing itself runs in the integration tests,
 * inside network namespaces: never here, where it would freeze the host's connections.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "guest/net-freezer.h"

static void test_endpoint_parse(void **state)
{
    struct tcp_endpoint ep;
    assert_int_equal(net_endpoint_parse("10.1.2.3", 80, &ep), 0);
    assert_int_equal(ep.family, AF_INET);
    assert_int_equal(ep.port, 80);
    assert_true(IN6_IS_ADDR_V4MAPPED(&ep.addr));
    assert_int_equal(ep.addr.s6_addr[15], 3);

    struct tcp_endpoint m;
    assert_int_equal(net_endpoint_parse("::ffff:10.1.2.3", 80, &m), 0);
    assert_memory_equal(&m.addr, &ep.addr, sizeof(ep.addr));

    assert_int_equal(net_endpoint_parse("fd00::1", 65535, &ep), 0);
    assert_int_equal(ep.family, AF_INET6);
    assert_int_equal(ep.port, 65535);

    assert_int_equal(net_endpoint_parse("fd00::1", 65536, &ep), -EINVAL);
    assert_int_equal(net_endpoint_parse("10.1.2", 1, &ep), -EINVAL);
    assert_int_equal(net_endpoint_parse("", 1, &ep), -EINVAL);
    assert_int_equal(net_endpoint_parse("host.example", 1, &ep), -EINVAL);
}

static json_object *get(json_object *o, const char *k)
{
    json_object *v = NULL;
    assert_true(json_object_object_get_ex(o, k, &v));
    return v;
}

static void test_thawed_commands(void **state)
{
    struct net_freezer nf;
    struct net_freezer_config cfg = {.state_file = NULL, .set_clock = false};
    net_freezer_init(&nf, &cfg);
    assert_false(net_freezer_is_frozen(&nf));
    assert_int_equal(net_freezer_deadline(&nf), 0);

    json_object *st = net_freezer_status(&nf);
    assert_false(json_object_get_boolean(get(st, "frozen")));
    assert_int_equal(json_object_get_int(get(st, "freeze_timeout_ms")), 30000);
    json_object_put(st);

    /* Thaw is idempotent; the clock step is reported but not applied. */
    struct net_thaw_opts o = {.window_probe = true,
                              .has_host_time = true,
                              .host_time_ns = (int64_t)now_realtime_ns() - 5000000000ll};
    json_object *rep = NULL;
    assert_int_equal(net_freezer_thaw(&nf, NET_THAW_COMMAND, &o, &rep), 0);
    assert_false(json_object_get_boolean(get(rep, "was_frozen")));
    json_object *clk = get(rep, "clock");
    assert_true(json_object_get_boolean(get(clk, "backwards")));
    assert_false(json_object_get_boolean(get(clk, "applied")));
    assert_true(json_object_get_int64(get(clk, "step_ns")) < 0);
    json_object_put(rep);

    /* Verify with nothing frozen: a difference, not an error. */
    struct qga_error err = {0};
    json_object *v = NULL;
    assert_int_equal(net_freezer_verify(&nf, "0123456789abcdef0123456789abcdef", NULL, &v, &err),
                     0);
    assert_false(json_object_get_boolean(get(v, "match")));
    assert_int_equal(json_object_array_length(get(v, "differences")), 1);
    json_object_put(v);
    assert_int_equal(net_freezer_verify(&nf, NULL, NULL, &v, &err), -EINVAL);
    assert_int_equal(err.cls, QGA_ERR_INVALID_PARAMETER);

    /* A bad image is refused before anything is compared. */
    json_object *bad = json_tokener_parse("{\"format\":\"nope\"}");
    assert_int_equal(net_freezer_verify(&nf, NULL, bad, &v, &err), -EINVAL);
    assert_int_equal(err.cls, QGA_ERR_INVALID_PARAMETER);
    json_object_put(bad);

    /* Reset-stale by an id this agent never froze. */
    assert_int_equal(
        net_freezer_reset_stale(&nf, NULL, 0, "0123456789abcdef0123456789abcdef", &v, &err),
        -ENOENT);
    assert_int_equal(err.cls, QGA_ERR_NOT_FOUND);
    net_freezer_done(&nf);
}

static char *tmp_state(void)
{
    char *path = strdup("/tmp/test-net-freezer-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    return path;
}

static void write_str(const char *path, const char *s)
{
    assert_int_equal(write_file_atomic(path, s, strlen(s), 0600), 0);
}

static int recover_from(const char *path, const char *content, json_object **recovery)
{
    struct net_freezer nf;
    struct net_freezer_config cfg = {.state_file = path};
    net_freezer_init(&nf, &cfg);
    if (content)
        write_str(path, content);
    int r = net_freezer_recover(&nf);
    *recovery = nf.recovery ? json_object_get(nf.recovery) : NULL;
    net_freezer_done(&nf);
    return r;
}

static void test_recover(void **state)
{
    _cleanup_free_ char *path = tmp_state();
    json_object *rec = NULL;

    /* No file. */
    unlink(path);
    assert_int_equal(recover_from(path, NULL, &rec), 0);
    assert_null(rec);

    /* Corrupt: refused, removed. */
    assert_int_equal(recover_from(path, "{\"frozen\": tru", &rec), -EBADMSG);
    assert_null(rec);
    assert_int_equal(access(path, F_OK), -1);

    /* Another boot: ignored, removed. */
    assert_int_equal(recover_from(path,
                                  "{\"version\":1,\"frozen\":true,\"boot_id\":\"00000000-0000-0000-"
                                  "0000-000000000000\",\"sockets\":[{\"inode\":1}]}",
                                  &rec),
                     0);
    assert_null(rec);
    assert_int_equal(access(path, F_OK), -1);

    /* This boot, a dead agent, a socket that no longer exists: reported gone, file removed. */
    _cleanup_free_ char *boot = NULL;
    size_t n = 0;
    assert_int_equal(read_file("/proc/sys/kernel/random/boot_id", 64, &boot, &n), 0);
    boot[strcspn(boot, "\n")] = 0;
    char buf[512];
    snprintf(buf, sizeof(buf),
             "{\"version\":1,\"frozen\":true,\"complete\":true,\"agent_pid\":999999999,"
             "\"boot_id\":\"%s\",\"image_id\":\"0123456789abcdef0123456789abcdef\","
             "\"sockets\":[{\"inode\":18446744073709551000,\"owners\":[],\"settings\":{}}]}",
             boot);
    assert_int_equal(recover_from(path, buf, &rec), 0);
    assert_non_null(rec);
    assert_int_equal(json_object_get_int(get(rec, "gone")), 1);
    assert_int_equal(json_object_get_int(get(rec, "thawed")), 0);
    assert_string_equal(json_object_get_string(get(rec, "image_id")),
                        "0123456789abcdef0123456789abcdef");
    json_object_put(rec);
    assert_int_equal(access(path, F_OK), -1);

    /* Not frozen: nothing to do. */
    snprintf(buf, sizeof(buf), "{\"version\":1,\"frozen\":false,\"boot_id\":\"%s\"}", boot);
    assert_int_equal(recover_from(path, buf, &rec), 0);
    assert_null(rec);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoint_parse),
        cmocka_unit_test(test_thawed_commands),
        cmocka_unit_test(test_recover),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
