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
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
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

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Back-date a file by ten minutes: past the age a temp file needs before it is removed. */
static void age(const char *path)
{
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= 600;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static size_t list_count(struct fixture *f)
{
    struct journal_entry *list = NULL;
    size_t n = 0;
    assert_true(journal_list(f->dir, &list, &n) >= 0);
    free(list);
    return n;
}

/* Temp files of dead writers go at the next listing; a live writer's (it holds the journal
 * directory's lock, or the file is too fresh) and anything not named like one stay. */
static void test_list_sweeps_dead_tmp(void **state)
{
    struct fixture *f = *state;
    struct journal_entry e;
    fill(&e, "a", getpid());
    assert_int_equal(journal_write(f->dir, &e), 0);
    char jdir[128], dead[256], fresh[256], notmp[256], sub[256], lnk[256];
    snprintf(jdir, sizeof(jdir), "%s/journal", f->dir);
    snprintf(dead, sizeof(dead), "%s/nc_x_000000000000.json.tmp.Ab12Cd", jdir);
    snprintf(fresh, sizeof(fresh), "%s/nc_y_000000000000.json.tmp.Zz99Yy", jdir);
    snprintf(notmp, sizeof(notmp), "%s/notes.json.tmp.toolong", jdir);
    snprintf(sub, sizeof(sub), "%s/nc_z_000000000000.json.tmp.dirdir", jdir);
    snprintf(lnk, sizeof(lnk), "%s/nc_w_000000000000.json.tmp.linkxx", jdir);
    put_file(dead, "{\"ver", 5);
    put_file(fresh, "{\"ver", 5);
    put_file(notmp, "x", 1);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(symlink(dead, lnk), 0);
    age(dead);
    age(notmp);
    age(sub);
    age(lnk);

    /* A writer is under way (the shared lock it holds in journal_write): nothing goes. */
    int lock = open(jdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(lock >= 0);
    assert_int_equal(flock(lock, LOCK_SH), 0);
    assert_int_equal(list_count(f), 1);
    assert_true(exists(dead));
    close(lock);

    assert_int_equal(list_count(f), 1);
    assert_false(exists(dead));
    assert_true(exists(fresh)); /* could be a writer that takes no lock */
    assert_true(exists(notmp));
    assert_true(exists(sub));
    assert_true(exists(lnk));
    char entry[PATH_MAX];
    file_for(f, "a", entry, sizeof(entry));
    assert_true(exists(entry));

    /* A sweep that never lets go (its process stopped) delays a write, never blocks it. */
    lock = open(jdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(lock >= 0);
    assert_int_equal(flock(lock, LOCK_EX), 0);
    snprintf(e.step, sizeof(e.step), "saving");
    assert_int_equal(journal_write(f->dir, &e), 0);
    close(lock);
    struct journal_entry got;
    assert_int_equal(journal_read(f->dir, "a", &got), 0);
    assert_string_equal(got.step, "saving");
}

/* A writer killed mid-write: its lock dies with it, so its temp file is swept, while the same
 * file stays for as long as the writer lives. */
static void test_list_sweeps_killed_writer(void **state)
{
    struct fixture *f = *state;
    struct journal_entry e;
    fill(&e, "a", getpid());
    assert_int_equal(journal_write(f->dir, &e), 0);
    char jdir[128], tmp[256];
    snprintf(jdir, sizeof(jdir), "%s/journal", f->dir);
    snprintf(tmp, sizeof(tmp), "%s/nc_k_000000000000.json.tmp.Kk11Kk", jdir);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t w = fork();
    assert_true(w >= 0);
    if (w == 0) { /* what journal_write does, stopped half-way */
        int lock = open(jdir, O_RDONLY | O_DIRECTORY);
        if (lock < 0 || flock(lock, LOCK_SH) < 0)
            _exit(1);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd < 0 || write(fd, "{\"ver", 5) != 5 || write(ready[1], "x", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(ready[1]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    age(tmp);
    assert_int_equal(list_count(f), 1);
    assert_true(exists(tmp)); /* alive: never touched */
    assert_int_equal(kill(w, SIGKILL), 0);
    assert_int_equal(waitpid(w, NULL, 0), w);
    assert_int_equal(list_count(f), 1);
    assert_false(exists(tmp));
    /* journal_recover lists the same way */
    assert_int_equal(journal_write(f->dir, &e), 0);
    assert_int_equal(list_count(f), 1);
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
        cmocka_unit_test_setup_teardown(test_list_sweeps_dead_tmp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_sweeps_killed_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_dead_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_vanished_netns, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
