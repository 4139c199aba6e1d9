/* The restore's text report says how the thaw stepped the guest clock, and says it loudly
 * when the step went backwards (the guest was ahead): never silently (issue 5). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "host/cli.h"

/* The text cli_txn_print() writes for a successful restore whose thaw reported clock (a JSON
 * object, or NULL for none). Caller frees. */
static char *restore_text(const char *clock)
{
    char buf[2048];
    snprintf(buf, sizeof(buf),
             "{\"command\":\"restore\",\"outcome\":\"ok\",\"exit_code\":0,\"domain\":\"vm\","
             "\"bundle\":\"/b\",\"vm_after\":\"running\",\"total_ms\":1.0,"
             "\"manifest\":{\"steps\":[]},\"replay\":{\"enabled\":false},"
             "\"thaw\":{\"was_frozen\":true%s%s},\"report\":null}",
             clock ? ",\"clock\":" : "", clock ? clock : "");
    json_object *res = json_tokener_parse(buf);
    assert_non_null(res);
    struct cli_ctx ctx = {0};
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDOUT_FILENO) >= 0);
    int code = cli_txn_print(&ctx, "restore", res, "/b", false, false);
    fflush(stdout);
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    assert_int_equal(code, 0);
    json_object_put(res);
    long n = ftell(tmp);
    assert_true(n > 0);
    char *out = calloc(1, (size_t)n + 1);
    assert_non_null(out);
    rewind(tmp);
    assert_int_equal(fread(out, 1, (size_t)n, tmp), (size_t)n);
    fclose(tmp);
    return out;
}

static void test_forward(void **state)
{
    char *t = restore_text("{\"step_ns\":30500000000,\"backwards\":false,\"applied\":true}");
    assert_non_null(strstr(t, "guest clock: stepped forward by 30500.0 ms\n"));
    free(t);
}

static void test_backwards_said(void **state)
{
    char *t = restore_text("{\"step_ns\":-2500000,\"backwards\":true,\"applied\":true}");
    assert_non_null(strstr(t, "guest clock: stepped BACKWARDS by 2.5 ms: it was ahead"));
    free(t);
    t = restore_text("{\"step_ns\":-2500000,\"backwards\":true,\"applied\":false}");
    assert_non_null(strstr(t, "BACKWARDS by 2.5 ms (not applied)"));
    free(t);
}

static void test_kept(void **state)
{
    char *t = restore_text(NULL);
    assert_non_null(strstr(t, "guest clock: left as it was (not stepped)\n"));
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward),
        cmocka_unit_test(test_backwards_said),
        cmocka_unit_test(test_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
