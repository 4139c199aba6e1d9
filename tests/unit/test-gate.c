/* Unit tests of host/gate that need no kernel: interface name validation, the domain to table
 * name mapping, and the refusals that must happen before nft is ever called. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "host/gate.h"

#include <errno.h>
#include <string.h>

static void test_ifname_valid(void **state)
{
    (void)state;
    const char *good[] = {"vnet0", "tap0", "a", "-", "tap-1.a_b", "ABCdef012345678", "...", "x..y"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(gate_ifname_valid(good[i]));
}

static void test_ifname_hostile(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        ".",
        "..",
        "abcdefghijklmnop", /* 16 chars: IFNAMSIZ needs room for the NUL */
        "a very long name that goes on",
        "tap 0",
        " tap0",
        "tap0 ",
        "tap\"0",
        "tap'0",
        "tap;0",
        "tap0;flush",
        "tap\n0",
        "tap\r0",
        "tap\t0",
        "tap{0",
        "tap}0",
        "tap[0]",
        "tap/0",
        "tap\\0",
        "tap:0",
        "tap$0",
        "tap#0",
        "tap*",
        "t\xc3\xa4p0",     /* UTF-8 a-umlaut */
        "\xe2\x80\x8btap", /* zero-width space */
        "tap\x7f",
        "tap\x01",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (gate_ifname_valid(bad[i]))
            fail_msg("accepted hostile name #%zu", i);
    }
    assert_false(gate_ifname_valid(NULL));
}

static bool table_charset_ok(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

static void test_table_name(void **state)
{
    (void)state;
    char a[GATE_TABLE_NAME_MAX], b[GATE_TABLE_NAME_MAX];
    assert_int_equal(gate_table_name("web-1", a, sizeof(a)), 0);
    assert_int_equal(strncmp(a, "nc_web_1_", 9), 0);
    assert_int_equal(strlen(a), strlen("nc_web_1_") + 12);
    assert_true(table_charset_ok(a));
    /* deterministic */
    assert_int_equal(gate_table_name("web-1", b, sizeof(b)), 0);
    assert_string_equal(a, b);

    /* names that sanitize alike still map apart */
    const char *alike[] = {"a b", "a_b", "a;b", "a\"b", "a\nb", "a}b", "a\xc3\xa4"};
    char names[7][GATE_TABLE_NAME_MAX];
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(gate_table_name(alike[i], names[i], sizeof(names[i])), 0);
        assert_true(table_charset_ok(names[i]));
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(names[i], names[j]);
    }
}

static void test_table_name_hostile(void **state)
{
    (void)state;
    char t[GATE_TABLE_NAME_MAX];
    const char *hostile[] = {"x; flush ruleset", "\"}]}",     "dom\nadd table ip x",
                             "../../etc/passwd", "$(reboot)", "\xf0\x9f\x92\xa3"};
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        assert_int_equal(gate_table_name(hostile[i], t, sizeof(t)), 0);
        assert_true(table_charset_ok(t));
        assert_true(strlen(t) < GATE_TABLE_NAME_MAX);
    }

    char longdom[256];
    memset(longdom, 'd', 255);
    longdom[255] = 0;
    assert_int_equal(gate_table_name(longdom, t, sizeof(t)), 0);
    assert_true(strlen(t) <= 3 + 32 + 1 + 12);

    char toolong[300];
    memset(toolong, 'd', 299);
    toolong[299] = 0;
    assert_int_equal(gate_table_name(toolong, t, sizeof(t)), -EINVAL);
    assert_int_equal(gate_table_name("", t, sizeof(t)), -EINVAL);
    assert_int_equal(gate_table_name(NULL, t, sizeof(t)), -EINVAL);
    assert_int_equal(gate_table_name("web", t, 8), -ENOBUFS);
}

/* These refusals come before any nft_ctx exists, so they need no privileges. */
static void test_install_refuses_early(void **state)
{
    (void)state;
    const char *hostile[] = {"tap0;", "ok0"};
    assert_int_equal(gate_install("dom", hostile, 2), -EINVAL);
    const char *dup[] = {"lo", "lo"};
    assert_int_equal(gate_install("dom", dup, 2), -EINVAL);
    const char *one[] = {"lo"};
    assert_int_equal(gate_install("dom", one, 0), -EINVAL);
    assert_int_equal(gate_install("dom", NULL, 1), -EINVAL);
    assert_int_equal(gate_install("", one, 1), -EINVAL);
    const char *many[GATE_MAX_TAPS + 1];
    for (size_t i = 0; i < GATE_MAX_TAPS + 1; i++)
        many[i] = "lo";
    assert_int_equal(gate_install("dom", many, GATE_MAX_TAPS + 1), -EINVAL);
    const char *missing[] = {"nc-no-such-if"};
    assert_int_equal(gate_install("dom", missing, 1), -ENODEV);
    struct gate_counters c;
    assert_int_equal(gate_read_counters("", &c), -EINVAL);
    assert_int_equal(gate_lift(""), -EINVAL);
    assert_int_equal(gate_is_installed(NULL), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ifname_valid),
        cmocka_unit_test(test_ifname_hostile),
        cmocka_unit_test(test_table_name),
        cmocka_unit_test(test_table_name_hostile),
        cmocka_unit_test(test_install_refuses_early),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
