/* Unit tests of the netckpt CLI: option parsing over the command tables, exit codes, and the
 * stable keys of the --json output. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "host/cli.h"

static int parse(const char *cmd, struct cli_args *a, char *err, size_t errlen, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, errlen);
    for (const char *s; (s = va_arg(ap, const char *)) && argc < 32;)
        argv[argc++] = (char *)s;
    va_end(ap);
    const struct cli_cmd *c = cli_find_command(cmd);
    assert_non_null(c);
    return cli_parse(c, argc, argv, a, err, errlen);
}

static void test_parse_checkpoint(void **state)
{
    struct cli_args a;
    char err[256];
    assert_int_equal(parse("checkpoint", &a, err, sizeof(err), "vm1", "--dir", "/b", "--continue",
                           "--freeze-timeout=30", NULL),
                     0);
    assert_string_equal(cli_arg_str(&a, "domain"), "vm1");
    assert_string_equal(cli_arg_str(&a, "dir"), "/b");
    assert_true(cli_arg_bool(&a, "continue"));
    assert_false(cli_arg_bool(&a, "snapshot"));
    uint64_t v = 0;
    assert_int_equal(cli_arg_uint(&a, "freeze-timeout", &v), 1);
    assert_int_equal(v, 30);

    /* --domain may be named, options in any order, "--" ends options */
    assert_int_equal(parse("checkpoint", &a, err, sizeof(err), "--dir=/x", "--domain", "vm2", NULL),
                     0);
    assert_string_equal(cli_arg_str(&a, "domain"), "vm2");
    assert_int_equal(parse("checkpoint", &a, err, sizeof(err), "--dir", "/x", "--", "--odd", NULL),
                     0);
    assert_string_equal(cli_arg_str(&a, "domain"), "--odd");
}

static void test_parse_errors(void **state)
{
    struct cli_args a;
    char err[256];
    /* missing required */
    assert_int_equal(parse("checkpoint", &a, err, sizeof(err), "vm1", NULL), NC_EXIT_USAGE);
    assert_non_null(strstr(err, "--dir"));
    /* unknown option */
    assert_int_equal(
        parse("checkpoint", &a, err, sizeof(err), "vm1", "--dir", "/b", "--bogus", NULL),
        NC_EXIT_USAGE);
    assert_non_null(strstr(err, "bogus"));
    /* value missing */
    assert_int_equal(parse("checkpoint", &a, err, sizeof(err), "vm1", "--dir", NULL),
                     NC_EXIT_USAGE);
    /* bad integer */
    assert_int_equal(parse("checkpoint", &a, err, sizeof(err), "vm1", "--dir", "/b",
                           "--freeze-timeout", "ten", NULL),
                     NC_EXIT_USAGE);
    assert_int_equal(parse("checkpoint", &a, err, sizeof(err), "vm1", "--dir", "/b",
                           "--freeze-timeout", "-1", NULL),
                     NC_EXIT_USAGE);
    /* twice */
    assert_int_equal(
        parse("checkpoint", &a, err, sizeof(err), "vm1", "--dir", "/b", "--dir", "/c", NULL),
        NC_EXIT_USAGE);
    /* extra positional */
    assert_int_equal(parse("checkpoint", &a, err, sizeof(err), "vm1", "vm2", "--dir", "/b", NULL),
                     NC_EXIT_USAGE);
    /* bool with a value */
    assert_int_equal(
        parse("checkpoint", &a, err, sizeof(err), "vm1", "--dir", "/b", "--continue=yes", NULL),
        NC_EXIT_USAGE);
    /* choices */
    assert_int_equal(parse("restore", &a, err, sizeof(err), "/b", "--stale=maybe", NULL),
                     NC_EXIT_USAGE);
    assert_int_equal(parse("restore", &a, err, sizeof(err), "/b", "--stale=keep", NULL), 0);
    assert_string_equal(cli_arg_str(&a, "stale"), "keep");
    /* empty value */
    assert_int_equal(parse("restore", &a, err, sizeof(err), "", NULL), NC_EXIT_USAGE);
}

static void test_parse_help(void **state)
{
    struct cli_args a;
    char err[256];
    /* --help wins over missing required options */
    assert_int_equal(parse("checkpoint", &a, err, sizeof(err), "--help", NULL), 0);
    assert_true(a.help);
    assert_int_equal(parse("help", &a, err, sizeof(err), "restore", NULL), 0);
    assert_string_equal(cli_arg_str(&a, "command"), "restore");
}

static void test_table(void **state)
{
    const char *names[] = {"checkpoint", "restore", "status", "inspect", "verify",
                           "list",       "unblock", "policy", "demo",    "help"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const struct cli_cmd *c = cli_find_command(names[i]);
        assert_non_null(c);
        assert_non_null(c->handler);
        assert_non_null(c->summary);
        /* positional options come first so that help reads naturally */
        bool seen_named = false;
        for (const struct cli_opt *o = c->opts; o && o->name; o++) {
            if (o->flags & CLI_OPT_POSITIONAL)
                assert_false(seen_named);
            else
                seen_named = true;
            assert_non_null(o->help);
        }
    }
    assert_null(cli_find_command("nope"));
    /* help text mentions every option */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cli_command_help(f, cli_find_command("restore"));
    fclose(f);
    assert_non_null(strstr(buf, "--stale=auto|keep"));
    assert_non_null(strstr(buf, "--paused"));
    free(buf);
}

static void test_exit_codes(void **state)
{
    /* the documented contract (docs/man/netckpt.1) */
    assert_int_equal(NC_EXIT_OK, 0);
    assert_int_equal(NC_EXIT_FAILURE, 1);
    assert_int_equal(NC_EXIT_USAGE, 2);
    assert_int_equal(NC_EXIT_REFUSED, 3);
    assert_int_equal(NC_EXIT_ROLLED_BACK, 4);
    assert_int_equal(NC_EXIT_ROLLBACK_FAILED, 5);
    assert_int_equal(NC_EXIT_INTERRUPTED, 6);
    assert_int_equal(NC_EXIT_BUSY, 7);
    assert_string_equal(nc_exit_name(3), "refused");
    assert_string_equal(nc_exit_name(99), "unknown");
    assert_int_equal(cli_exit_for_outcome(TXN_OK), 0);
    assert_int_equal(cli_exit_for_outcome(TXN_FAILED), 1);
    assert_int_equal(cli_exit_for_outcome(TXN_REFUSED), 3);
    assert_int_equal(cli_exit_for_outcome(TXN_ROLLED_BACK), 4);
    assert_int_equal(cli_exit_for_outcome(TXN_ROLLBACK_FAILED), 5);
    assert_int_equal(cli_exit_for_outcome(TXN_INTERRUPTED), 6);
    assert_int_equal(cli_exit_for_outcome(TXN_BUSY), 7);
}

static void assert_keys(json_object *o, const char *const *keys)
{
    for (; *keys; keys++)
        if (!json_object_object_get_ex(o, *keys, NULL))
            fail_msg("missing key '%s' in %s", *keys, json_object_to_json_string(o));
}

static void test_json_keys(void **state)
{
    struct txn_result r;
    memset(&r, 0, sizeof(r));
    r.outcome = TXN_ROLLED_BACK;
    r.failed_step = TXN_STEP_SAVE;
    r.error = -ENOSPC;
    snprintf(r.message, sizeof(r.message), "save failed: disk full");
    snprintf(r.warnings, sizeof(r.warnings), "a; b");
    snprintf(r.m.domain_name, sizeof(r.m.domain_name), "vm1");
    manifest_add_step(&r.m, "discover", 1000000);
    json_object *o = cli_txn_result_json("checkpoint", &r, 4);
    static const char *const top[] = {"command",
                                      "outcome",
                                      "exit_code",
                                      "domain",
                                      "bundle",
                                      "bundle_committed",
                                      "failed_step",
                                      "error",
                                      "errno",
                                      "rolled_back",
                                      "rollback_errors",
                                      "interrupted",
                                      "gate_left",
                                      "vm_before",
                                      "vm_after",
                                      "total_ms",
                                      "manifest",
                                      "warnings",
                                      "verify_differences",
                                      "thaw",
                                      "report",
                                      "rollback",
                                      NULL};
    assert_keys(o, top);
    json_object *v;
    json_object_object_get_ex(o, "rollback", &v);
    assert_null(v); /* a checkpoint (or a restore that failed before judging) */
    json_object_put(o);
    r.rollback = (struct txn_rollback){
        .checked = true, .detected = true, .reset = true, .n_reset = 2, .probes = 2};
    snprintf(r.rollback.reason, sizeof(r.rollback.reason), "the domain ran on");
    o = cli_txn_result_json("restore", &r, 4);
    json_object_object_get_ex(o, "rollback", &v);
    static const char *const rkeys[] = {
        "detected", "reason", "from_history", "reset", "connections_reset", "peers_probed", NULL};
    assert_keys(v, rkeys);
    json_object_object_get_ex(o, "outcome", &v);
    assert_string_equal(json_object_get_string(v), "rolled-back");
    json_object_object_get_ex(o, "failed_step", &v);
    assert_string_equal(json_object_get_string(v), "save");
    json_object_object_get_ex(o, "errno", &v);
    assert_int_equal(json_object_get_int(v), ENOSPC);
    json_object_object_get_ex(o, "warnings", &v);
    assert_int_equal(json_object_array_length(v), 2);
    json_object *m;
    json_object_object_get_ex(o, "manifest", &m);
    static const char *const mkeys[] = {"domain",
                                        "uuid",
                                        "created_ns",
                                        "created",
                                        "mode",
                                        "state",
                                        "snapshot",
                                        "image_id",
                                        "connections",
                                        "taps",
                                        "gate_counters",
                                        "files",
                                        "steps",
                                        "netckpt_version",
                                        "libvirt_version",
                                        NULL};
    assert_keys(m, mkeys);
    json_object_object_get_ex(m, "gate_counters", &v);
    static const char *const ckeys[] = {"to_guest_pkts", "to_guest_bytes", "from_guest_pkts",
                                        "from_guest_bytes", NULL};
    assert_keys(v, ckeys);
    json_object_put(o);

    o = cli_error_json(NC_EXIT_USAGE, "bad");
    assert_true(json_object_object_get_ex(o, "error", &v));
    static const char *const ekeys[] = {"code", "name", "message", NULL};
    assert_keys(v, ekeys);
    json_object_put(o);
}

static void test_iso_time(void **state)
{
    char buf[64];
    cli_iso_time(0, buf, sizeof(buf));
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
    cli_iso_time(1800000000ull * 1000000000ull, buf, sizeof(buf));
    assert_string_equal(buf, "2027-01-15T08:00:00Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_checkpoint), cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_help),       cmocka_unit_test(test_table),
        cmocka_unit_test(test_exit_codes),       cmocka_unit_test(test_json_keys),
        cmocka_unit_test(test_iso_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
