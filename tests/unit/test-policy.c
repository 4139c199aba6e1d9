/* Unit tests of host/policy.h: every tests/unit/data/policy-good-*.xml parses to the expected
 * values, every policy-bad-*.xml is refused with a line and a reason; the compiled-in schema
 * and schemas/policy.rng agree on every file; a directory with good and bad files loads the
 * good ones and reports each bad one; duplicate names, size limit, globs. */
#include <dirent.h>
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
#include "host/policy.h"

static char data[4096], rng[4096];

static int setup(void **state)
{
    const char *src = getenv("NETCKPT_SOURCE_DIR");
    snprintf(data, sizeof(data), "%s/tests/unit/data", src ? src : ".");
    snprintf(rng, sizeof(rng), "%s/schemas/policy.rng", src ? src : ".");
    return 0;
}

static void load(const char *name, const char *rng_path, struct policy *p, struct policy_error *e,
                 int *r)
{
    char path[8300];
    snprintf(path, sizeof(path), "%s/%s", data, name);
    *r = policy_load_file(path, rng_path, p, e);
}

/* A file the tests expect to be accepted: fail with the parser's line and reason otherwise. */
static void load_good(const char *name, struct policy *p)
{
    struct policy_error e;
    int r;
    load(name, NULL, p, &e, &r);
    if (r < 0)
        fail_msg("%s refused: line %d: %s", name, e.line, e.reason);
}

static void test_good_interval(void **state)
{
    struct policy p;
    load_good("policy-good-interval.xml", &p);
    assert_string_equal(p.name, "hourly-web");
    assert_true(p.enabled);
    assert_int_equal(p.n_domains, 2);
    assert_string_equal(p.domains[0], "web-*");
    assert_string_equal(p.domains[1], "db1");
    assert_int_equal(p.schedule.kind, SCHED_INTERVAL);
    assert_int_equal(p.schedule.interval_s, 3600);
    assert_true(p.continue_running);
    assert_string_equal(p.bundle_dir, "/var/lib/netckpt/bundles");
    assert_int_equal(p.keep, 24);
    assert_int_equal(p.max_age_s, 2 * 86400);
    assert_true(p.agent_check);
    assert_int_equal(p.agent_timeout_s, 5);
    assert_true(p.retrans_check);
    assert_int_equal(p.retrans_max, 4);
    assert_int_equal(p.retrans_retry_s, 60);
    assert_int_equal(p.retrans_give_up_s, 900);
    assert_int_equal(p.freeze_timeout_s, 60);
    assert_string_equal(p.agent_channel, "org.qemu.guest_agent.0");
    assert_true(policy_matches(&p, "web-1"));
    assert_true(policy_matches(&p, "web-"));
    assert_true(policy_matches(&p, "db1"));
    assert_false(policy_matches(&p, "db10"));
    assert_false(policy_matches(&p, "xweb-1"));
}

static void test_good_migrate(void **state)
{
    (void)state;
    struct policy p;
    load_good("policy-good-migrate.xml", &p);
    assert_true(p.migrate);
    assert_true(p.continue_running);
    assert_string_equal(p.migrate_dest_uri, "qemu+tcp://10.0.0.2/system");
    assert_string_equal(p.migrate_stream_uri, "tcp://10.0.0.2:49152");
    assert_string_equal(p.migrate_listen_address, "10.0.0.2");
    assert_string_equal(p.migrate_dest_netns, "host-b");
    assert_string_equal(p.migrate_dest_xml, "/etc/netckpt/web-on-b.xml");
    assert_string_equal(p.migrate_hook, "/usr/local/sbin/move-route web");
    assert_string_equal(p.bundle_dir, "/var/lib/netckpt/before-migrate");
    assert_int_equal(p.keep, 1);
    /* without <bundles>: a plain migration; the optional attributes stay empty */
    struct policy_error e;
    const char *xml = "<policy><name>m</name><domains><domain>a</domain></domains>"
                      "<schedule><interval>60</interval></schedule><mode>migrate</mode>"
                      "<migrate uri=\"qemu:///system\"/></policy>";
    assert_int_equal(policy_parse(xml, strlen(xml), "m.xml", NULL, &p, &e), 0);
    assert_true(p.migrate);
    assert_string_equal(p.bundle_dir, "");
    assert_string_equal(p.migrate_stream_uri, "");
    assert_string_equal(p.migrate_dest_netns, "");
    assert_string_equal(p.migrate_hook, "");
}

static void test_good_calendar(void **state)
{
    struct policy p;
    load_good("policy-good-calendar.xml", &p);
    assert_string_equal(p.name, "nightly");
    assert_int_equal(p.schedule.kind, SCHED_DAILY);
    assert_true(p.schedule.utc);
    assert_int_equal(p.schedule.n_times, 2);
    assert_int_equal(p.schedule.times_min[0], 2 * 60 + 30);
    assert_int_equal(p.schedule.times_min[1], 14 * 60);
    assert_false(p.continue_running);
    assert_int_equal(p.keep, 0);
    assert_int_equal(p.max_age_s, 0);
    assert_false(p.agent_check);
    assert_false(p.retrans_check);
    assert_int_equal(p.freeze_timeout_s, POLICY_DEFAULT_FREEZE_S);
    assert_string_equal(p.agent_channel, "");
    assert_true(policy_matches(&p, "vm1"));
    assert_false(policy_matches(&p, "vm12"));
}

/* What each bad file must be refused for: a line and a word of the reason. */
static const struct {
    const char *file;
    int line;
    const char *reason;
} bad[] = {
    {"policy-bad-mode.xml", 5, "mode"},
    {"policy-bad-time.xml", 6, "policy.rng"},
    {"policy-bad-xml.xml", 5, "tag mismatch"},
    {"policy-bad-relative.xml", 5, "bundles"},
    {"policy-bad-dtd.xml", 2, "DTD"},
    {"policy-bad-unknown.xml", 6, "compression"},
    {"policy-bad-glob.xml", 3, "glob"},
    {"policy-bad-migrate-nouri.xml", 5, "<migrate uri"},
    {"policy-bad-migrate-mode.xml", 6, "<mode>migrate</mode>"},
    {"policy-bad-migrate-uri.xml", 6, "migrate"},
    {"policy-bad-nobundles.xml", 1, "<bundles dir=...> is needed"},
};

static void test_bad_files(void **state)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct policy p;
        struct policy_error e;
        int r;
        load(bad[i].file, NULL, &p, &e, &r);
        if (r != -EINVAL)
            fail_msg("%s: expected -EINVAL, got %d", bad[i].file, r);
        if (e.line != bad[i].line || !strstr(e.reason, bad[i].reason))
            fail_msg("%s: expected line %d and '%s', got line %d: %s", bad[i].file, bad[i].line,
                     bad[i].reason, e.line, e.reason);
        assert_non_null(strstr(e.file, bad[i].file));
    }
}

/* The schema compiled into the library is schemas/policy.rng: same verdict on every file. */
static void test_compiled_schema_matches_file(void **state)
{
    DIR *d = opendir(data);
    assert_non_null(d);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "policy-", 7) != 0)
            continue;
        struct policy p1, p2;
        struct policy_error e1, e2;
        int r1, r2;
        load(de->d_name, NULL, &p1, &e1, &r1);
        load(de->d_name, rng, &p2, &e2, &r2);
        if (r1 != r2 || (r1 < 0 && strcmp(e1.reason, e2.reason)))
            fail_msg("%s: compiled-in schema says %d (%s), %s says %d (%s)", de->d_name, r1,
                     e1.reason, rng, r2, e2.reason);
        bool good = !strncmp(de->d_name, "policy-good-", 12);
        if (good != (r1 == 0))
            fail_msg("%s: verdict %d (%s)", de->d_name, r1, r1 ? e1.reason : "");
        n++;
    }
    closedir(d);
    assert_true(n >= 9);
}

static void test_inline(void **state)
{
    struct policy p;
    struct policy_error e;
#define BASE                                                                                       \
    "<policy><name>%s</name><domains><domain>%s</domain></domains>"                                \
    "<schedule>%s</schedule><bundles dir='/b'/>%s</policy>"
    char xml[2048];
    struct {
        const char *name, *dom, *sched, *extra;
        int want;
        const char *why;
    } cases[] = {
        {"ok", "a", "<interval unit='min'>5</interval>", "", 0, NULL},
        {"ok", "a", "<interval unit='d'>400</interval>", "", -EINVAL, "seconds"},
        {"ok", "a", "<interval>0</interval>", "", -EINVAL, "policy.rng"},
        {"bad name", "a", "<interval>5</interval>", "", -EINVAL, "policy.rng"},
        {"ok", "a/b", "<interval>5</interval>", "", -EINVAL, "policy.rng"},
        {"ok", "a\\", "<interval>5</interval>", "", -EINVAL, "glob"},
        {"ok", "[!a]x", "<interval>5</interval>", "", 0, NULL},
        {"ok", "a", "<calendar><time>01:00</time><time>01:00</time></calendar>", "", -EINVAL,
         "twice"},
        {"ok", "a", "<interval>5</interval>", "<retention><keep>100001</keep></retention>", -EINVAL,
         "keep"},
        {"ok", "a", "<interval>5</interval>", "<conditions><retransmitting max='0'/></conditions>",
         0, NULL},
        {"ok", "a", "<interval>5</interval>", "<freezeTimeout>86401</freezeTimeout>", -EINVAL,
         "policy.rng"},
        {"ok", "a", "<interval>5</interval>", "<agentChannel>org.evil.0</agentChannel>", -EINVAL,
         "policy.rng"},
        {"ok", "a", "<interval>5</interval>", "<replayLimit unit='MiB'>256</replayLimit>", 0, NULL},
        {"ok", "a", "<interval>5</interval>", "<replayLimit>65536</replayLimit>", 0, NULL},
        {"ok", "a", "<interval>5</interval>", "<replayLimit unit='KiB'>63</replayLimit>", -EINVAL,
         "64 KiB"},
        {"ok", "a", "<interval>5</interval>", "<replayLimit unit='GiB'>1</replayLimit>", -EINVAL,
         "64 KiB"},
        {"ok", "a", "<interval>5</interval>", "<replayLimit unit='TiB'>1</replayLimit>", -EINVAL,
         "policy.rng"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(xml, sizeof(xml), BASE, cases[i].name, cases[i].dom, cases[i].sched,
                 cases[i].extra);
        int r = policy_parse(xml, strlen(xml), "inline.xml", NULL, &p, &e);
        if (r != cases[i].want || (r < 0 && !strstr(e.reason, cases[i].why)))
            fail_msg("case %zu (%s): want %d '%s', got %d: %s", i, xml, cases[i].want,
                     cases[i].why ? cases[i].why : "", r, r < 0 ? e.reason : "");
        assert_int_equal(e.line == 0 || e.line == 1, 1);
    }
    /* <replayLimit> in bytes; absent: 0 (the replay's default) */
    snprintf(xml, sizeof(xml), BASE, "ok", "a", "<interval>5</interval>",
             "<replayLimit unit='KiB'>512</replayLimit>");
    assert_int_equal(policy_parse(xml, strlen(xml), "x.xml", NULL, &p, &e), 0);
    assert_int_equal(p.replay_limit, 512u << 10);
    snprintf(xml, sizeof(xml), BASE, "ok", "a", "<interval>5</interval>", "");
    assert_int_equal(policy_parse(xml, strlen(xml), "x.xml", NULL, &p, &e), 0);
    assert_int_equal(p.replay_limit, 0);
    /* disabled */
    snprintf(xml, sizeof(xml),
             "<policy enabled='no'><name>x</name><domains><domain>a</domain></domains>"
             "<schedule><interval>5</interval></schedule><bundles dir='/b'/></policy>");
    assert_int_equal(policy_parse(xml, strlen(xml), "x.xml", NULL, &p, &e), 0);
    assert_false(p.enabled);
    /* size limit */
    char *big = calloc(1, POLICY_MAX_FILE + 2);
    memset(big, ' ', POLICY_MAX_FILE + 1);
    assert_int_equal(policy_parse(big, POLICY_MAX_FILE + 1, "big.xml", NULL, &p, &e), -EFBIG);
    free(big);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_int_equal(write_file_atomic(path, text, strlen(text), 0600), 0);
}

static void test_load_dir(void **state)
{
    char tmpl[] = "/tmp/nc-policy-XXXXXX";
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
#define GOOD                                                                                       \
    "<policy><name>%s</name><domains><domain>*</domain></domains><schedule>"                       \
    "<interval>60</interval></schedule><bundles dir='/b'/></policy>"
    char buf[512];
    snprintf(buf, sizeof(buf), GOOD, "one");
    write_file(dir, "10-one.xml", buf);
    snprintf(buf, sizeof(buf), GOOD, "two");
    write_file(dir, "20-two.xml", buf);
    write_file(dir, "30-dup.xml", buf); /* same name as 20-two */
    write_file(dir, "40-broken.xml", "<policy>\n<name>x</name>\n");
    write_file(dir, "README", "not a policy");
    write_file(dir, ".hidden.xml", "<nonsense/>");
    char *src = NULL;
    size_t len;
    char path[8300];
    snprintf(path, sizeof(path), "%s/policy-good-calendar.xml", data);
    assert_int_equal(read_file(path, POLICY_MAX_FILE, &src, &len), 0);
    write_file(dir, "50-nightly.xml", src);
    free(src);

    struct policy_set s;
    assert_int_equal(policy_load_dir(dir, NULL, &s), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.p[0].name, "one");
    assert_string_equal(s.p[1].name, "two");
    assert_string_equal(s.p[2].name, "nightly");
    assert_non_null(policy_find(&s, "nightly"));
    assert_null(policy_find(&s, "x"));
    assert_int_equal(s.n_errors, 2);
    assert_non_null(strstr(s.errors[0].file, "30-dup.xml"));
    assert_non_null(strstr(s.errors[0].reason, "already used"));
    assert_non_null(strstr(s.errors[1].file, "40-broken.xml"));
    assert_true(s.errors[1].line > 0);
    policy_set_free(&s);

    /* A missing dir is an empty set. */
    assert_int_equal(policy_load_dir("/nonexistent/netckpt-policies", NULL, &s), 0);
    assert_int_equal(s.n + s.n_errors, 0);
    policy_set_free(&s);
    rm_rf(dir);
}

static void test_dirname(void **state)
{
    assert_true(policy_domain_dirname_ok("web-1"));
    assert_true(policy_domain_dirname_ok("vm with spaces"));
    assert_false(policy_domain_dirname_ok(".hidden"));
    assert_false(policy_domain_dirname_ok(".."));
    assert_false(policy_domain_dirname_ok("a/b"));
    assert_false(policy_domain_dirname_ok("a\nb"));
    assert_false(policy_domain_dirname_ok(""));
}

/* The retransmitting condition on fake guest-net-status replies: the guest's numbers are
 * untrusted, so anything but a sane integer makes the condition unavailable, never a deferral. */
static enum policy_retrans_verdict eval(const struct policy *p, const char *reply, uint64_t since,
                                        uint64_t now, int64_t *n)
{
    json_object *st = reply ? json_tokener_parse(reply) : NULL;
    char msg[256];
    enum policy_retrans_verdict v = policy_retrans_eval(p, st, since, now, n, msg, sizeof(msg));
    assert_true(msg[0] != 0);
    json_object_put(st);
    return v;
}

static void test_retrans_condition(void **state)
{
    (void)state;
    struct policy p = {
        .retrans_check = true, .retrans_max = 2, .retrans_retry_s = 30, .retrans_give_up_s = 600};
    const uint64_t s = UINT64_C(1000000000), now = 1000000 * s;
    int64_t n;
    assert_int_equal(
        eval(&p, "{\"frozen\":false,\"retransmitting\":2,\"connections\":9}", 0, now, &n),
        POLICY_RETRANS_GO);
    assert_int_equal(n, 2);
    assert_int_equal(eval(&p, "{\"retransmitting\":3,\"connections\":9}", 0, now, &n),
                     POLICY_RETRANS_DEFER);
    assert_int_equal(n, 3);
    /* deferred for less than giveUp: again deferred; for giveUp: skipped */
    assert_int_equal(eval(&p, "{\"retransmitting\":3}", now - 599 * s, now, &n),
                     POLICY_RETRANS_DEFER);
    assert_int_equal(eval(&p, "{\"retransmitting\":3}", now - 600 * s, now, &n),
                     POLICY_RETRANS_GIVE_UP);
    /* no count (an older agent), or one that makes no sense */
    static const char *const replies[] = {
        NULL,
        "[]",
        "{\"frozen\":false}",
        "{\"retransmitting\":\"3\"}",
        "{\"retransmitting\":3.5}",
        "{\"retransmitting\":-1}",
        "{\"retransmitting\":true}",
        "{\"retransmitting\":null}",
        "{\"retransmitting\":1000001}",
        "{\"retransmitting\":99999999999999999999999}",
        "{\"retransmitting\":5,\"connections\":4}",
        "{\"retransmitting\":1,\"connections\":\"x\"}",
        "{\"retransmitting\":1,\"connections\":-3}",
    };
    for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
        assert_int_equal(eval(&p, replies[i], 0, now, &n), POLICY_RETRANS_UNAVAILABLE);
        assert_int_equal(n, -1);
    }
    /* max 0: any retransmitting connection defers */
    p.retrans_max = 0;
    assert_int_equal(eval(&p, "{\"retransmitting\":0,\"connections\":0}", 0, now, &n),
                     POLICY_RETRANS_GO);
    assert_int_equal(eval(&p, "{\"retransmitting\":1,\"connections\":1}", 0, now, &n),
                     POLICY_RETRANS_DEFER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_interval), cmocka_unit_test(test_good_calendar),
        cmocka_unit_test(test_bad_files),     cmocka_unit_test(test_compiled_schema_matches_file),
        cmocka_unit_test(test_inline),        cmocka_unit_test(test_load_dir),
        cmocka_unit_test(test_dirname),       cmocka_unit_test(test_retrans_condition),
        cmocka_unit_test(test_good_migrate),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
