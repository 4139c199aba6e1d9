/* Unit tests of host/retention.h: the plan (keep N, max age, failed and bad entries, and above
 * all: the newest good bundle is never removed), bundle names, and scan/apply on a real
 * directory with real bundles (host/bundle.h), partial and foreign entries left alone. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/util.h"
#include "host/bundle.h"
#include "host/retention.h"

#define S   UINT64_C(1000000000)
#define DAY (86400 * S)
#define NOW (UINT64_C(1796292000) * S) /* 2026-12-03 10:00:00 UTC */

static struct retention_item item(const char *name, uint64_t created, enum retention_kind k)
{
    struct retention_item it = {.created_ns = created, .kind = k};
    snprintf(it.name, sizeof(it.name), "%s", name);
    return it;
}

static bool removed(const struct retention_item *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i].name, name))
            return v[i].remove;
    fail_msg("no item %s", name);
    return false;
}

static void test_keep(void **state)
{
    struct retention_item v[] = {
        item("b3", NOW - 3 * DAY, RETENTION_GOOD),
        item("b1", NOW - 1 * DAY, RETENTION_GOOD),
        item("b4", NOW - 4 * DAY, RETENTION_GOOD),
        item("b2", NOW - 2 * DAY, RETENTION_GOOD),
    };
    struct retention_rule r = {.keep = 2};
    assert_int_equal(retention_plan(v, 4, &r, NOW), 2);
    assert_false(removed(v, 4, "b1"));
    assert_false(removed(v, 4, "b2"));
    assert_true(removed(v, 4, "b3"));
    assert_true(removed(v, 4, "b4"));
    r.keep = 0; /* no limits: nothing goes */
    assert_int_equal(retention_plan(v, 4, &r, NOW), 0);
    r.keep = 10;
    assert_int_equal(retention_plan(v, 4, &r, NOW), 0);
}

static void test_max_age(void **state)
{
    struct retention_item v[] = {
        item("new", NOW - 1 * DAY, RETENTION_GOOD),
        item("mid", NOW - 3 * DAY, RETENTION_GOOD),
        item("old", NOW - 10 * DAY, RETENTION_GOOD),
    };
    struct retention_rule r = {.max_age_s = 2 * 86400};
    assert_int_equal(retention_plan(v, 3, &r, NOW), 2);
    assert_false(removed(v, 3, "new"));
    /* both limits: the stricter one wins */
    r.keep = 1;
    r.max_age_s = 30 * 86400;
    assert_int_equal(retention_plan(v, 3, &r, NOW), 2);
    assert_false(removed(v, 3, "new"));
}

static void test_last_good_never_removed(void **state)
{
    /* Every bundle is far too old, and keep is 1: the newest good one stays regardless. */
    struct retention_item v[] = {
        item("g-old", NOW - 100 * DAY, RETENTION_GOOD),
        item("g-newest", NOW - 50 * DAY, RETENTION_GOOD),
        item("failed-newer", NOW - 1 * DAY, RETENTION_FAILED),
        item("bad-newer", NOW - 2 * DAY, RETENTION_BAD),
    };
    struct retention_rule r = {.keep = 1, .max_age_s = 86400};
    retention_plan(v, 4, &r, NOW);
    assert_false(removed(v, 4, "g-newest"));
    assert_true(removed(v, 4, "g-old"));
    /* Failed/bad entries newer than the last good one stay until they age out (exactly one
     * day old is not older than a one-day limit; two days is)... */
    assert_false(removed(v, 4, "failed-newer"));
    assert_true(removed(v, 4, "bad-newer"));
    r.max_age_s = 30 * 86400;
    retention_plan(v, 4, &r, NOW);
    assert_false(removed(v, 4, "failed-newer"));
    assert_false(removed(v, 4, "bad-newer"));
    assert_false(removed(v, 4, "g-newest"));
    /* ...and an only good bundle is kept even with nothing but failures after it. */
    struct retention_item one[] = {item("only", NOW - 365 * DAY, RETENTION_GOOD)};
    r = (struct retention_rule){.keep = 1, .max_age_s = 1};
    assert_int_equal(retention_plan(one, 1, &r, NOW), 0);
}

static void test_failed_after_good(void **state)
{
    /* A failed attempt older than a good bundle is useless: it goes. */
    struct retention_item v[] = {
        item("good", NOW - 1 * DAY, RETENTION_GOOD),
        item("failed", NOW - 2 * DAY, RETENTION_FAILED),
        item("bad", NOW - 3 * DAY, RETENTION_BAD),
    };
    struct retention_rule r = {.keep = 5};
    assert_int_equal(retention_plan(v, 3, &r, NOW), 2);
    assert_false(removed(v, 3, "good"));
    /* With no good bundle at all, failures stay until max age. */
    v[0].kind = RETENTION_FAILED;
    assert_int_equal(retention_plan(v, 3, &r, NOW), 0);
    assert_int_equal(retention_plan(NULL, 0, &r, NOW), 0);
}

static void test_names(void **state)
{
    char buf[32];
    uint64_t t;
    assert_int_equal(retention_bundle_name(NOW + 5 * S, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "20261203T100005Z");
    assert_true(retention_name_valid(buf, &t));
    assert_int_equal(t, NOW + 5 * S);
    assert_true(retention_name_valid("20261203T100005Z-3", &t));
    assert_false(retention_name_valid("20261203T100005Z-", &t));
    assert_false(retention_name_valid("20261203T100005", &t));
    assert_false(retention_name_valid("20261303T100005Z", &t));
    assert_false(retention_name_valid("my-important-bundle", &t));
    assert_false(retention_name_valid("20261203X100005Z", &t));
    assert_false(retention_name_valid("", &t));
}

/* ---- on disk ---- */

static char *tmpdir;

static int setup_dir(void **state)
{
    char tmpl[] = "/tmp/nc-retention-XXXXXX";
    tmpdir = strdup(mkdtemp(tmpl));
    return tmpdir ? 0 : -1;
}

static int teardown_dir(void **state)
{
    rm_rf(tmpdir);
    free(tmpdir);
    return 0;
}

static void make_bundle(const char *name, uint64_t created)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    struct bundle b;
    assert_int_equal(bundle_begin(path, &b), 0);
    const char img[] = "{\"image_id\":\"0123456789abcdef0123456789abcdef\",\"connections\":[]}\n";
    assert_int_equal(bundle_add_buffer(&b, BUNDLE_SOCKET_IMAGE, img, sizeof(img) - 1), 0);
    struct manifest m;
    memset(&m, 0, sizeof(m));
    snprintf(m.domain_name, sizeof(m.domain_name), "web1");
    snprintf(m.domain_uuid, sizeof(m.domain_uuid), "6f1b7c7e-2a55-4a0e-9a43-1c2d3e4f5a6b");
    m.created_ns = created;
    snprintf(m.image_id, sizeof(m.image_id), "0123456789abcdef0123456789abcdef");
    snprintf(m.taps[0], sizeof(m.taps[0]), "vnet0");
    m.n_taps = 1;
    assert_int_equal(bundle_commit(&b, &m), 0);
}

static void make_dir(const char *name)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    assert_int_equal(mkdir(path, 0700), 0);
}

static bool exists(const char *name)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    return access(path, F_OK) == 0;
}

static void test_apply(void **state)
{
    char n[6][32];
    for (int i = 0; i < 6; i++)
        retention_bundle_name(NOW - (uint64_t)(6 - i) * DAY, n[i], sizeof(n[i]));
    make_bundle(n[0], NOW - 6 * DAY);
    make_bundle(n[1], NOW - 5 * DAY);
    make_bundle(n[2], NOW - 4 * DAY);
    char failed[64], partial[64], bad[32];
    snprintf(failed, sizeof(failed), ".%s.failed", n[3]); /* an interrupted checkpoint */
    make_dir(failed);
    snprintf(bad, sizeof(bad), "%s", n[4]); /* named like ours, no manifest */
    make_dir(bad);
    snprintf(partial, sizeof(partial), ".%s.partial", n[5]); /* maybe in progress */
    make_dir(partial);
    make_dir("operator-kept"); /* not ours */

    struct retention_item *items;
    size_t cnt;
    assert_int_equal(retention_scan(tmpdir, &items, &cnt), 0);
    assert_int_equal(cnt, 5); /* 3 good, failed, bad; not the partial nor the foreign dir */
    size_t good = 0;
    for (size_t i = 0; i < cnt; i++)
        good += items[i].kind == RETENTION_GOOD;
    assert_int_equal(good, 3);
    free(items);

    struct retention_rule r = {.keep = 2};
    json_object *rep = NULL;
    /* keep 2 good: n[0] goes; failed and bad are newer than every good one: they stay */
    assert_int_equal(retention_apply(tmpdir, &r, NOW, &rep), 1);
    assert_non_null(rep);
    json_object_put(rep);
    assert_false(exists(n[0]));
    assert_true(exists(n[1]) && exists(n[2]) && exists(failed) && exists(bad));
    assert_true(exists(partial) && exists("operator-kept"));

    /* Everything ages out: only the newest good bundle (and what is not ours) remains. */
    r = (struct retention_rule){.keep = 1, .max_age_s = 3600};
    assert_int_equal(retention_apply(tmpdir, &r, NOW, NULL), 3);
    assert_true(exists(n[2]));
    assert_false(exists(n[1]) || exists(failed) || exists(bad));
    assert_true(exists(partial) && exists("operator-kept"));
    /* and again: nothing more to do */
    assert_int_equal(retention_apply(tmpdir, &r, NOW, NULL), 0);
    assert_true(exists(n[2]));

    /* A missing dir is empty, not an error. */
    assert_int_equal(retention_apply("/nonexistent/netckpt-retention", &r, NOW, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keep),
        cmocka_unit_test(test_max_age),
        cmocka_unit_test(test_last_good_never_removed),
        cmocka_unit_test(test_failed_after_good),
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_apply, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
