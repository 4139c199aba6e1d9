/* Unit tests of host/journal: round trip, validation on write, refusal of corrupt files, list,
 * owner liveness (dead, zombie, reused pid) and recovery picking dead owners only. Recovery
 * lifts gates, so that test runs in a private network namespace and skips without root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "host/gate.h"
#include "host/journal.h"
#include "common/util.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct fixture {
    char dir[64];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/netckpt-test-journal-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rm_rf(f->dir);
    free(f);
    return 0;
}

static void fill(struct journal_entry *e, const char *domain, pid_t pid)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->domain, sizeof(e->domain), "%s", domain);
    snprintf(e->uuid, sizeof(e->uuid), "0f8fad5b-d9cb-469f-a165-70867728950e");
    snprintf(e->taps[0], sizeof(e->taps[0]), "vnet0");
    snprintf(e->taps[1], sizeof(e->taps[1]), "vnet1.5");
    e->n_taps = 2;
    snprintf(e->step, sizeof(e->step), "frozen");
    snprintf(e->bundle_tmp, sizeof(e->bundle_tmp), "/var/lib/netckpt/b/.x.partial");
    e->pid = pid;
    e->started_ns = 1764000000123456789ull;
    e->vm_was_running = true;
}

static void file_for(struct fixture *f, const char *domain, char *path, size_t len)
{
    char t[GATE_TABLE_NAME_MAX];
    assert_int_equal(gate_table_name(domain, t, sizeof(t)), 0);
    snprintf(path, len, "%s/journal/%s.json", f->dir, t);
}

/* A dead pid: a child that exited and was reaped. */
static pid_t dead_pid(void)
{
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0)
        _exit(0);
    assert_int_equal(waitpid(p, NULL, 0), p);
    return p;
}

static void test_round_trip(void **state)
{
    struct fixture *f = *state;
    struct journal_entry e, got;
    fill(&e, "web \"one\"; {x}", getpid());
    assert_int_equal(journal_write(f->dir, &e), 0);
    assert_int_equal(journal_read(f->dir, e.domain, &got), 0);
    assert_string_equal(got.domain, e.domain);
    assert_string_equal(got.uuid, e.uuid);
    assert_int_equal(got.n_taps, 2);
    assert_string_equal(got.taps[0], "vnet0");
    assert_string_equal(got.taps[1], "vnet1.5");
    assert_string_equal(got.step, "frozen");
    assert_string_equal(got.bundle_tmp, e.bundle_tmp);
    assert_int_equal(got.pid, getpid());
    assert_true(got.started_ns == e.started_ns);
    assert_true(got.vm_was_running);
    assert_true(got.pid_start_ticks != 0); /* filled by journal_write */
    assert_true(got.netns_ino != 0);       /* this thread's namespace */
    assert_int_equal(journal_owner_alive(&got), 1);

    char path[PATH_MAX];
    file_for(f, e.domain, path, sizeof(path));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/journal", f->dir);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);

    /* rewrite with a new step replaces */
    snprintf(e.step, sizeof(e.step), "saving");
    e.vm_was_running = false;
    assert_int_equal(journal_write(f->dir, &e), 0);
    assert_int_equal(journal_read(f->dir, e.domain, &got), 0);
    assert_string_equal(got.step, "saving");
    assert_false(got.vm_was_running);

    assert_int_equal(journal_remove(f->dir, e.domain), 1);
    assert_int_equal(journal_remove(f->dir, e.domain), 0);
    assert_int_equal(journal_read(f->dir, e.domain, &got), -ENOENT);
}

static void test_write_refuses_bad(void **state)
{
    struct fixture *f = *state;
    struct journal_entry e;

    fill(&e, "", getpid());
    assert_int_equal(journal_write(f->dir, &e), -EINVAL);
    fill(&e, "d", getpid());
    snprintf(e.taps[1], sizeof(e.taps[1]), "bad;tap");
    assert_int_equal(journal_write(f->dir, &e), -EINVAL);
    fill(&e, "d", 0);
    assert_int_equal(journal_write(f->dir, &e), -EINVAL);
    fill(&e, "d", getpid());
    snprintf(e.uuid, sizeof(e.uuid), "not-a-uuid");
    assert_int_equal(journal_write(f->dir, &e), -EINVAL);
    fill(&e, "d", getpid());
    snprintf(e.step, sizeof(e.step), "Gated\n");
    assert_int_equal(journal_write(f->dir, &e), -EINVAL);
    fill(&e, "d", getpid());
    snprintf(e.bundle_tmp, sizeof(e.bundle_tmp), "relative/path");
    assert_int_equal(journal_write(f->dir, &e), -EINVAL);
    fill(&e, "d", getpid());
    e.n_taps = 17;
    assert_int_equal(journal_write(f->dir, &e), -EINVAL);

    struct journal_entry got;
    assert_int_equal(journal_read(f->dir, "d", &got), -ENOENT);
}

static void put_file(const char *path, const char *text, size_t len)
{
    assert_int_equal(write_file_atomic(path, text, len, 0600), 0);
}

static void test_corrupt_refused(void **state)
{
    struct fixture *f = *state;
    struct journal_entry e, got;
    fill(&e, "victim", getpid());
    assert_int_equal(journal_write(f->dir, &e), 0);
    char path[PATH_MAX];
    file_for(f, "victim", path, sizeof(path));

    static const char *const bad[] = {
        "",
        "garbage",
        "{\"version\":1,\"domain\":\"victim\"",
        "[1,2,3]",
        "{\"version\":2,\"domain\":\"victim\",\"taps\":[],\"step\":\"gated\",\"pid\":1,"
        "\"pid_start_ticks\":0,\"started_ns\":0,\"netns_dev\":1,\"netns_ino\":1,\"vm_was_running\":"
        "true}",
        /* wrong type */
        "{\"version\":1,\"domain\":\"victim\",\"taps\":[],\"step\":\"gated\",\"pid\":\"1\","
        "\"pid_start_ticks\":0,\"started_ns\":0,\"netns_dev\":1,\"netns_ino\":1,\"vm_was_running\":"
        "true}",
        /* missing vm_was_running */
        "{\"version\":1,\"domain\":\"victim\",\"taps\":[],\"step\":\"gated\",\"pid\":1,"
        "\"pid_start_ticks\":0,\"started_ns\":0,\"netns_dev\":1,\"netns_ino\":1}",
        /* hostile tap */
        "{\"version\":1,\"domain\":\"victim\",\"taps\":[\"x; flush ruleset\"],\"step\":\"gated\","
        "\"pid\":1,\"pid_start_ticks\":0,\"started_ns\":0,\"netns_dev\":1,\"netns_ino\":1,\"vm_was_"
        "running\":true}",
        /* embedded NUL in the domain */
        "{\"version\":1,\"domain\":\"victim\\u0000x\",\"taps\":[],\"step\":\"gated\",\"pid\":1,"
        "\"pid_start_ticks\":0,\"started_ns\":0,\"netns_dev\":1,\"netns_ino\":1,\"vm_was_running\":"
        "true}",
        /* embedded NUL in a tap ("vnet0" to nft, something else on disk) */
        "{\"version\":1,\"domain\":\"victim\",\"taps\":[\"vnet0\\u0000x\"],\"step\":\"gated\","
        "\"pid\":1,\"pid_start_ticks\":0,\"started_ns\":0,\"netns_dev\":1,\"netns_ino\":1,"
        "\"vm_was_running\":true}",
        /* negative pid */
        "{\"version\":1,\"domain\":\"victim\",\"taps\":[],\"step\":\"gated\",\"pid\":-5,"
        "\"pid_start_ticks\":0,\"started_ns\":0,\"netns_dev\":1,\"netns_ino\":1,\"vm_was_running\":"
        "true}",
        /* another domain's entry under this file name */
        "{\"version\":1,\"domain\":\"other\",\"taps\":[],\"step\":\"gated\",\"pid\":1,"
        "\"pid_start_ticks\":0,\"started_ns\":0,\"netns_dev\":1,\"netns_ino\":1,\"vm_was_running\":"
        "true}",
        /* trailing garbage */
        "{\"version\":1,\"domain\":\"victim\",\"taps\":[],\"step\":\"gated\",\"pid\":1,"
        "\"pid_start_ticks\":0,\"started_ns\":0,\"netns_dev\":1,\"netns_ino\":1,\"vm_was_running\":"
        "true} xx",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        put_file(path, bad[i], strlen(bad[i]));
        int r = journal_read(f->dir, "victim", &got);
        if (r != -EBADMSG)
            fail_msg("corrupt variant #%zu gave %d, not -EBADMSG", i, r);
    }

    /* the fault is named */
    char err[128] = "";
    struct journal_entry pe;
    assert_int_equal(journal_parse(bad[5], strlen(bad[5]), &pe, err, sizeof(err)), -EBADMSG);
    assert_string_equal(err, "field 'pid' missing or invalid");
    assert_int_equal(journal_parse("{", 1, &pe, err, sizeof(err)), -EBADMSG);
    assert_string_equal(err, "not valid JSON");

    /* positive control: the same shape, well formed, is accepted */
    static const char good[] =
        "{\"version\":1,\"domain\":\"victim\",\"taps\":[\"vnet0\"],\"step\":\"gated\",\"pid\":1,"
        "\"pid_start_ticks\":0,\"started_ns\":0,\"netns_dev\":1,\"netns_ino\":1,"
        "\"vm_was_running\":true}";
    put_file(path, good, strlen(good));
    assert_int_equal(journal_read(f->dir, "victim", &got), 0);
    assert_string_equal(got.taps[0], "vnet0");

    /* deep nesting must not recurse without bound */
    size_t deep = 10000;
    char *nest = malloc(2 * deep + 1);
    assert_non_null(nest);
    memset(nest, '[', deep);
    memset(nest + deep, ']', deep);
    nest[2 * deep] = 0;
    put_file(path, nest, 2 * deep);
    free(nest);
    assert_int_equal(journal_read(f->dir, "victim", &got), -EBADMSG);

    /* oversized */
    size_t big = JOURNAL_MAX_FILE + 10;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, ' ', big);
    put_file(path, huge, big);
    free(huge);
    assert_int_equal(journal_read(f->dir, "victim", &got), -EBADMSG);

    /* the good one reads again after a rewrite */
    assert_int_equal(journal_write(f->dir, &e), 0);
    assert_int_equal(journal_read(f->dir, "victim", &got), 0);
    assert_int_equal(journal_remove(f->dir, "victim"), 1);
}

static void test_list(void **state)
{
    struct fixture *f = *state;
    struct journal_entry *list = NULL;
    size_t n = 99;
    assert_int_equal(journal_list(f->dir, &list, &n), 0); /* no journal dir yet */
    assert_int_equal(n, 0);
    free(list);

    struct journal_entry e;
    const char *doms[] = {"a", "b", "c d"};
    for (size_t i = 0; i < 3; i++) {
        fill(&e, doms[i], getpid());
        assert_int_equal(journal_write(f->dir, &e), 0);
    }
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/journal/nc_junk_000000000000.json", f->dir);
    put_file(path, "{", 1);
    snprintf(path, sizeof(path), "%s/journal/leftover.json.tmp.abcdef", f->dir);
    put_file(path, "{", 1);

    assert_int_equal(journal_list(f->dir, &list, &n), 1); /* one corrupt file skipped */
    assert_int_equal(n, 3);
    int seen = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < 3; j++)
            if (strcmp(list[i].domain, doms[j]) == 0)
                seen |= 1 << j;
    assert_int_equal(seen, 7);
    free(list);
}

static void test_owner_alive(void **state)
{
    (void)state;
    struct journal_entry e;
    fill(&e, "x", getpid());
    assert_int_equal(journal_owner_alive(&e), 1);
    e.pid = dead_pid();
    assert_int_equal(journal_owner_alive(&e), 0);

    /* same pid, different start time: a reused pid is not the owner */
    fill(&e, "x", getpid());
    e.pid_start_ticks = 1;
    assert_int_equal(journal_owner_alive(&e), 0);

    /* an unreaped (zombie) owner is dead */
    pid_t z = fork();
    assert_true(z >= 0);
    if (z == 0)
        _exit(0);
    fill(&e, "x", z);
    siginfo_t si;
    assert_int_equal(waitid(P_PID, (id_t)z, &si, WEXITED | WNOWAIT), 0);
    assert_int_equal(journal_owner_alive(&e), 0);
    assert_int_equal(waitpid(z, NULL, 0), z);
}

struct cb_log {
    int calls;
    char last[256];
    int ret;
};

static int record_cb(const struct journal_entry *e, void *userdata)
{
    struct cb_log *l = userdata;
    l->calls++;
    snprintf(l->last, sizeof(l->last), "%s", e->domain);
    return l->ret;
}

static void test_recover_dead_only(void **state)
{
    struct fixture *f = *state;
    /* gate_lift talks to nftables: keep it in a private, empty network namespace */
    if (unshare(CLONE_NEWNET) < 0) {
        print_message("skipping: unshare(CLONE_NEWNET) needs root\n");
        skip();
    }
    struct journal_entry e;
    fill(&e, "alive", getpid());
    assert_int_equal(journal_write(f->dir, &e), 0);
    fill(&e, "dead", dead_pid());
    assert_int_equal(journal_write(f->dir, &e), 0);

    /* a failing callback keeps the entry */
    struct cb_log l = {.ret = -EIO};
    assert_int_equal(journal_recover(f->dir, record_cb, &l), -EIO);
    assert_int_equal(l.calls, 1);
    assert_string_equal(l.last, "dead");
    struct journal_entry got;
    assert_int_equal(journal_read(f->dir, "dead", &got), 0);

    l = (struct cb_log){.ret = 0};
    assert_int_equal(journal_recover(f->dir, record_cb, &l), 1);
    assert_int_equal(l.calls, 1);
    assert_string_equal(l.last, "dead");
    assert_int_equal(journal_read(f->dir, "dead", &got), -ENOENT);
    assert_int_equal(journal_read(f->dir, "alive", &got), 0);

    /* nothing left to recover: the live owner's entry stays */
    l = (struct cb_log){.ret = 0};
    assert_int_equal(journal_recover(f->dir, record_cb, &l), 0);
    assert_int_equal(l.calls, 0);
    assert_int_equal(journal_read(f->dir, "alive", &got), 0);
    assert_int_equal(journal_remove(f->dir, "alive"), 1);
}

/* An entry whose network namespace is gone: its tables went with it, so it is recovered. */
static void test_recover_vanished_netns(void **state)
{
    struct fixture *f = *state;
    if (unshare(CLONE_NEWNET) < 0) {
        print_message("skipping: unshare(CLONE_NEWNET) needs root\n");
        skip();
    }
    struct journal_entry e, got;
    fill(&e, "elsewhere", dead_pid());
    e.netns_dev = 1;
    e.netns_ino = 1;
    assert_int_equal(journal_write(f->dir, &e), 0);
    assert_int_equal(journal_read(f->dir, "elsewhere", &got), 0);
    assert_true(got.netns_dev == 1 && got.netns_ino == 1);
    struct cb_log l = {.ret = 0};
    assert_int_equal(journal_recover(f->dir, record_cb, &l), 1);
    assert_int_equal(l.calls, 1);
    assert_int_equal(journal_read(f->dir, "elsewhere", &got), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_refuses_bad, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_dead_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_vanished_netns, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
