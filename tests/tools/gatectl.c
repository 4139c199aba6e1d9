/* tests/tools/gatectl.c: a test-only front end to host/gate and host/journal, so the
 * integration tests drive the real library before the netckpt CLI exists. Exit codes: 0 ok,
 * 1 "no" (installed), 2 error. */
#include "host/gate.h"
#include "host/journal.h"
#include "common/util.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: gatectl install [--allow-missing] DOMAIN TAP...\n"
               "       gatectl lift DOMAIN\n"
               "       gatectl counters DOMAIN\n"
               "       gatectl installed DOMAIN\n"
               "       gatectl table-name DOMAIN\n"
               "       gatectl hold STATE_DIR DOMAIN TAP...   journal + gate, then wait for "
               "SIGTERM (lift) or SIGKILL\n"
               "       gatectl recover STATE_DIR\n"
               "       gatectl journal-list STATE_DIR\n"
               "       gatectl bench DOMAIN ROUNDS TAP...   time install/read/lift\n");
}

static int fail(const char *what, int r)
{
    fprintf(stderr, "gatectl: %s: %s\n", what, strerror(-r));
    return 2;
}

static int recover_cb(const struct journal_entry *e, void *userdata)
{
    int *calls = userdata;
    (*calls)++;
    printf("recover-callback domain=%s step=%s pid=%d vm_was_running=%d\n", e->domain, e->step,
           (int)e->pid, e->vm_was_running);
    return 0;
}

static int cmd_hold(const char *state_dir, const char *domain, char **taps, size_t n)
{
    if (n > GATE_MAX_TAPS)
        return fail("hold", -EINVAL);
    struct journal_entry e = {
        .pid = getpid(), .started_ns = now_realtime_ns(), .vm_was_running = true};
    snprintf(e.domain, sizeof(e.domain), "%s", domain);
    snprintf(e.step, sizeof(e.step), "gating");
    for (size_t i = 0; i < n; i++)
        snprintf(e.taps[i], sizeof(e.taps[i]), "%s", taps[i]);
    e.n_taps = n;

    /* Block first so a SIGTERM sent as soon as "held" appears is not lost. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);

    int r = journal_write(state_dir, &e);
    if (r < 0)
        return fail("journal_write", r);
    r = gate_install(domain, (const char *const *)taps, n);
    if (r < 0) {
        journal_remove(state_dir, domain);
        return fail("gate_install", r);
    }
    snprintf(e.step, sizeof(e.step), "gated");
    r = journal_write(state_dir, &e);
    if (r < 0)
        return fail("journal_write", r);
    printf("held pid=%d\n", (int)getpid());
    fflush(stdout);

    int sig;
    sigwait(&set, &sig);
    r = gate_lift(domain);
    if (r < 0)
        return fail("gate_lift", r);
    r = journal_remove(state_dir, domain);
    if (r < 0)
        return fail("journal_remove", r);
    printf("released\n");
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *ns, size_t n)
{
    qsort(ns, n, sizeof(*ns), cmp_u64);
    printf("%s: n=%zu p50_us=%llu p90_us=%llu max_us=%llu\n", what, n,
           (unsigned long long)(ns[n / 2] / 1000), (unsigned long long)(ns[n * 9 / 10] / 1000),
           (unsigned long long)(ns[n - 1] / 1000));
}

/* Time install, counter read and lift, each in-process (no exec in the figures). */
static int cmd_bench(const char *domain, int rounds, char **taps, size_t n)
{
    if (rounds < 1 || rounds > 100000)
        return fail("bench", -EINVAL);
    uint64_t *t[3];
    for (int k = 0; k < 3; k++) {
        t[k] = calloc((size_t)rounds, sizeof(uint64_t));
        if (!t[k])
            return fail("bench", -ENOMEM);
    }
    for (int i = 0; i < rounds; i++) {
        struct gate_counters c;
        uint64_t a = now_monotonic_ns();
        int r = gate_install(domain, (const char *const *)taps, n);
        uint64_t b = now_monotonic_ns();
        if (r >= 0)
            r = gate_read_counters(domain, &c);
        uint64_t d = now_monotonic_ns();
        if (r >= 0)
            r = gate_lift(domain);
        uint64_t e = now_monotonic_ns();
        if (r < 0)
            return fail("bench", r);
        t[0][i] = b - a;
        t[1][i] = d - b;
        t[2][i] = e - d;
    }
    printf("taps=%zu\n", n);
    report("install", t[0], (size_t)rounds);
    report("read_counters", t[1], (size_t)rounds);
    report("lift", t[2], (size_t)rounds);
    for (int k = 0; k < 3; k++)
        free(t[k]);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    int r;
    if (strcmp(cmd, "install") == 0 && argc >= 5 && strcmp(argv[2], "--allow-missing") == 0) {
        r = gate_install_flags(argv[3], (const char *const *)argv + 4, (size_t)argc - 4,
                               GATE_ALLOW_MISSING_TAP);
        return r < 0 ? fail("install", r) : 0;
    }
    if (strcmp(cmd, "install") == 0 && argc >= 4) {
        r = gate_install(argv[2], (const char *const *)argv + 3, (size_t)argc - 3);
        return r < 0 ? fail("install", r) : 0;
    }
    if (strcmp(cmd, "lift") == 0 && argc == 3) {
        r = gate_lift(argv[2]);
        if (r < 0)
            return fail("lift", r);
        printf("%s\n", r ? "lifted" : "absent");
        return 0;
    }
    if (strcmp(cmd, "installed") == 0 && argc == 3) {
        r = gate_is_installed(argv[2]);
        if (r < 0)
            return fail("installed", r);
        printf("%s\n", r ? "yes" : "no");
        return r ? 0 : 1;
    }
    if (strcmp(cmd, "counters") == 0 && argc == 3) {
        struct gate_counters c;
        r = gate_read_counters(argv[2], &c);
        if (r < 0)
            return fail("counters", r);
        printf("to_guest_pkts=%llu to_guest_bytes=%llu from_guest_pkts=%llu "
               "from_guest_bytes=%llu\n",
               (unsigned long long)c.to_guest_pkts, (unsigned long long)c.to_guest_bytes,
               (unsigned long long)c.from_guest_pkts, (unsigned long long)c.from_guest_bytes);
        return 0;
    }
    if (strcmp(cmd, "table-name") == 0 && argc == 3) {
        char t[GATE_TABLE_NAME_MAX];
        r = gate_table_name(argv[2], t, sizeof(t));
        if (r < 0)
            return fail("table-name", r);
        printf("%s\n", t);
        return 0;
    }
    if (strcmp(cmd, "hold") == 0 && argc >= 5)
        return cmd_hold(argv[2], argv[3], argv + 4, (size_t)argc - 4);
    if (strcmp(cmd, "bench") == 0 && argc >= 5)
        return cmd_bench(argv[2], atoi(argv[3]), argv + 4, (size_t)argc - 4);
    if (strcmp(cmd, "recover") == 0 && argc == 3) {
        int calls = 0;
        r = journal_recover(argv[2], recover_cb, &calls);
        if (r < 0)
            return fail("recover", r);
        printf("recovered=%d callbacks=%d\n", r, calls);
        return 0;
    }
    if (strcmp(cmd, "journal-list") == 0 && argc == 3) {
        struct journal_entry *list = NULL;
        size_t n = 0;
        r = journal_list(argv[2], &list, &n);
        if (r < 0)
            return fail("journal-list", r);
        for (size_t i = 0; i < n; i++)
            printf("domain=%s step=%s pid=%d alive=%d taps=%zu\n", list[i].domain, list[i].step,
                   (int)list[i].pid, journal_owner_alive(&list[i]), list[i].n_taps);
        if (r > 0)
            printf("corrupt=%d\n", r);
        free(list);
        return 0;
    }
    usage(stderr);
    return 2;
}
