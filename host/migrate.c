/* host/migrate.c: see migrate.h. */
#include "host/migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/util.h"
#include "guest/socket-image.h"
#include "host/history.h"
#include "host/journal.h"
#include "host/tap-watch.h"
#include "host/txn-real.h"

#define POLL_MS 50
/* The held pre-copy moves MIGRATE_PRECOPY_BW_MIB: a poll per QEMU rate window is plenty,
 * and every query-migrate is a monitor round trip through libvirt. */
#define PRECOPY_POLL_MS 100

const char *migrate_step_name(enum migrate_step s)
{
    static const char *const names[] = {
        [MIGRATE_STEP_NONE] = "none",
        [MIGRATE_STEP_DISCOVER] = "discover",
        [MIGRATE_STEP_CONNECT] = "connect",
        [MIGRATE_STEP_JOURNAL] = "journal",
        [MIGRATE_STEP_DEST_GATE] = "dest-gate",
        [MIGRATE_STEP_PRECOPY] = "precopy",
        [MIGRATE_STEP_GATE] = "gate",
        [MIGRATE_STEP_FREEZE] = "freeze",
        [MIGRATE_STEP_SWITCHOVER] = "switchover",
        [MIGRATE_STEP_RESUME] = "resume",
        [MIGRATE_STEP_VERIFY] = "verify",
        [MIGRATE_STEP_LIFT] = "lift",
        [MIGRATE_STEP_THAW] = "thaw",
        [MIGRATE_STEP_REPORT] = "report",
        [MIGRATE_STEP_DONE] = "done",
    };
    return (unsigned)s < sizeof(names) / sizeof(names[0]) && names[s] ? names[s] : "?";
}

void migrate_result_done(struct migrate_result *r)
{
    json_object_put(r->image);
    json_object_put(r->verify_diff);
    json_object_put(r->thaw_reply);
    json_object_put(r->report);
    r->image = r->verify_diff = r->thaw_reply = r->report = NULL;
}

/* ---- the destination's network namespace ----
 * setns() moves only the calling thread, so work on the destination's taps (gate, discover's
 * tap check, the tap watch's sockets) runs in a short-lived thread that joins it. A packet
 * socket opened there stays bound to that namespace afterwards. */

struct ns_call {
    int nsfd;
    int (*fn)(void *);
    void *arg;
    int r;
};

static void *ns_main(void *p)
{
    struct ns_call *c = p;
    c->r = setns(c->nsfd, CLONE_NEWNET) < 0 ? -errno : c->fn(c->arg);
    return NULL;
}

static int in_netns(int nsfd, int (*fn)(void *), void *arg)
{
    if (nsfd < 0)
        return fn(arg);
    struct ns_call c = {.nsfd = nsfd, .fn = fn, .arg = arg};
    pthread_t t;
    int r = -pthread_create(&t, NULL, ns_main, &c);
    if (r < 0)
        return r;
    pthread_join(t, NULL);
    return c.r;
}

static int open_netns(const char *spec, char *err, size_t errlen)
{
    char path[PATH_MAX];
    if (strchr(spec, '/'))
        snprintf(path, sizeof(path), "%s", spec);
    else if (snprintf(path, sizeof(path), "/run/netns/%s", spec) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "destination network namespace %.256s: %s", path, strerror(e));
        return -e;
    }
    return fd;
}

struct gate_call {
    const char *domain;
    const char *const *taps;
    size_t n;
    unsigned flags;
    struct gate_counters *counters;
};

static int gate_install_cb(void *p)
{
    struct gate_call *g = p;
    return gate_install_flags(g->domain, g->taps, g->n, g->flags);
}

static int gate_lift_cb(void *p)
{
    struct gate_call *g = p;
    int r = gate_lift(g->domain);
    return r < 0 ? r : 0;
}

static int gate_counters_cb(void *p)
{
    struct gate_call *g = p;
    return gate_read_counters(g->domain, g->counters);
}

struct discover_call {
    struct txn_real *t;
    const char *domain;
    struct txn_domain *out;
    char *err;
    size_t errlen;
};

static int discover_cb(void *p)
{
    struct discover_call *d = p;
    return txn_real_ops.discover(d->t, d->domain, d->out, d->err, d->errlen);
}

struct watch_call {
    struct txn_real *t;
    json_object *image;
};

static int watch_cb(void *p)
{
    struct watch_call *w = p;
    return txn_real_ops.watch_begin(w->t, w->image);
}

/* ---- the migration job ---- */

struct mig_job {
    virDomainPtr dom;
    struct nc_virt_migrate_args a;
    atomic_bool done;
    int r;
    char err[1024];
};

static void *mig_main(void *p)
{
    struct mig_job *j = p;
    j->r = nc_virt_migrate(j->dom, &j->a, j->err, sizeof(j->err));
    atomic_store(&j->done, true);
    return NULL;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* $NETCKPT_MIGRATE_FAULT=STEP (tests): fail at that step as a real failure would. Only
 * "switchover" (abort libvirt's job after the suspend) is implemented. */
static bool fault_at(enum migrate_step s)
{
    const char *f = getenv("NETCKPT_MIGRATE_FAULT");
    return f && !strcmp(f, migrate_step_name(s));
}

/* ---- the run ---- */

struct run {
    const struct migrate_ctx *ctx;
    const struct migrate_opts *o;
    struct migrate_result *r;
    struct txn_real src, dst;
    bool dst_init;
    struct nc_virt vdst;
    int nsfd;
    char dest_state[PATH_MAX];
    struct txn_domain dom;  /* on the source */
    struct txn_domain ddom; /* on the destination */
    const char *taps[TXN_MAX_TAPS];
    const char *dtaps[TXN_MAX_TAPS];
    size_t n_dtaps;
    bool src_journal, dst_journal, dst_gated, src_gated, frozen, suspended;
    bool downtime_set, held;
    unsigned long long old_downtime;
    uint64_t old_bw;
    char hold_err[256];
    virDomainPtr sdom; /* the source domain (a reference of our own) */
    pthread_t job_thread;
    bool job_started;
    struct mig_job job;
    uint64_t t0, t_gate, t_suspend;
};

static void notify(struct run *x, enum migrate_step s, bool end, uint64_t done, uint64_t total)
{
    if (x->ctx->notify)
        x->ctx->notify(x->ctx->nud, s, end, done, total);
}

static bool cancelled(const struct run *x)
{
    return x->ctx->cancel && *x->ctx->cancel;
}

static int fail(struct run *x, enum migrate_step s, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(struct run *x, enum migrate_step s, int err, const char *fmt, ...)
{
    struct migrate_result *r = x->r;
    if (r->failed_step == MIGRATE_STEP_NONE) {
        r->failed_step = s;
        r->error = err;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->message, sizeof(r->message), fmt, ap);
        va_end(ap);
        log_err("migrate %s: %s failed: %s", x->o->domain, migrate_step_name(s), r->message);
    }
    return err < 0 ? err : -EIO;
}

static void warn(struct run *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(struct run *x, const char *fmt, ...)
{
    char m[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof(m), fmt, ap);
    va_end(ap);
    log_warn("migrate %s: %s", x->o->domain, m);
    append_listf(x->r->warnings, sizeof(x->r->warnings), "%s", m);
}

static int dest_gate(struct run *x, const char *const *taps, size_t n, unsigned flags)
{
    struct gate_call g = {.domain = x->dom.name, .taps = taps, .n = n, .flags = flags};
    return in_netns(x->nsfd, gate_install_cb, &g);
}

static int dest_lift(struct run *x)
{
    struct gate_call g = {.domain = x->dom.name};
    int r = in_netns(x->nsfd, gate_lift_cb, &g);
    if (r == 0)
        x->dst_gated = false;
    return r;
}

static void fill_entry(struct run *x, struct journal_entry *e, const char *const *taps, size_t n)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->domain, sizeof(e->domain), "%s", x->dom.name);
    snprintf(e->uuid, sizeof(e->uuid), "%s", x->dom.uuid);
    for (size_t i = 0; i < n && i < 16; i++)
        snprintf(e->taps[i], sizeof(e->taps[i]), "%s", taps[i]);
    e->n_taps = n;
    snprintf(e->step, sizeof(e->step), "migrating");
    e->pid = getpid();
    e->started_ns = now_realtime_ns();
    e->vm_was_running = true;
}

static int write_dest_journal(struct run *x, const char *const *taps, size_t n)
{
    struct journal_entry e;
    fill_entry(x, &e, taps, n);
    if (x->nsfd >= 0) {
        struct stat st;
        if (fstat(x->nsfd, &st) < 0)
            return -errno;
        e.netns_dev = st.st_dev;
        e.netns_ino = st.st_ino;
    }
    int r = mkdir_p(x->dest_state, 0700);
    return r < 0 ? r : journal_write(x->dest_state, &e);
}

/* The shell hook where the fabric learns that the guest moved. Its failure is a warning: the
 * guest runs either way, and the operator sees why it may be unreachable. */
static void run_hook(struct run *x)
{
    if (!x->o->switchover_hook)
        return;
    pid_t pid = fork();
    if (pid < 0) {
        warn(x, "switchover hook: fork: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        setenv("NETCKPT_DOMAIN", x->dom.name, 1);
        setenv("NETCKPT_MIGRATE_DEST", x->o->dest_uri, 1);
        execl("/bin/sh", "sh", "-c", x->o->switchover_hook, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        warn(x, "switchover hook failed (status %d)", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static int start_job(struct run *x, char *dest_xml)
{
    unsigned flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER | VIR_MIGRATE_PAUSED;
    if (virDomainIsPersistent(x->sdom) == 1)
        flags |= VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE;
    x->job = (struct mig_job){
        .dom = x->sdom,
        .a = {.dest_uri = x->o->dest_uri,
              .migrate_uri = x->o->migrate_uri,
              .listen_address = x->o->listen_address,
              .dest_xml = dest_xml,
              .flags = flags,
              .bandwidth_mib = MIGRATE_PRECOPY_BW_MIB},
    };
    /* The pre-copy may not switch over by itself: only our suspend ends it, so the gate and
     * the freeze always come before the switchover. */
    /* A 1 ms limit: QEMU switches over by itself only when what is left fits in 1 ms. (A
     * limit of 0 is worse: QEMU then skips the dirty sync and completes at the end of the
     * first pass.) */
    if (virDomainMigrateGetMaxDowntime(x->sdom, &x->old_downtime, 0) == 0 &&
        virDomainMigrateSetMaxDowntime(x->sdom, 1, 0) == 0)
        x->downtime_set = true;
    else
        warn(x,
             "cannot set the migration downtime limit (%s): the switchover may come before "
             "the quiesce",
             virGetLastErrorMessage());
    /* The bandwidth libvirt gives QEMU as the job starts, to restore after the hold. */
    unsigned long mib = 0;
    x->old_bw = virDomainMigrateGetMaxSpeed(x->sdom, &mib, 0) == 0 && mib && mib < (1ul << 43)
                    ? (uint64_t)mib << 20
                    : (uint64_t)INT64_MAX;
    int r = -pthread_create(&x->job_thread, NULL, mig_main, &x->job);
    if (r < 0)
        return r;
    x->job_started = true;
    /* Held from its start: release() raises the bandwidth after the freeze. */
    x->held = true;
    return 0;
}

/* The migration runs held since its start (MIGRATE_PRECOPY_BW_MIB): make sure it is still
 * going with the domain running here. 1 when so, 0 when the job ended meanwhile (switched
 * over, or failed). */
static int hold(struct run *x)
{
    int st = 0, reason = 0;
    bool done = atomic_load(&x->job.done);
    int q = done ? 0 : nc_virt_state(x->ctx->src, x->sdom, &st, &reason);
    log_debug("migrate: at the quiesce: job %s, state %d reason %d (%d)", done ? "done" : "running",
              st, reason, q);
    if (done || q < 0 || st != VIR_DOMAIN_RUNNING)
        return 0;
    return 1;
}

static int release(struct run *x)
{
    if (!x->held || atomic_load(&x->job.done))
        return 0;
    int q = nc_virt_migrate_hold(x->sdom, false, x->old_bw, x->hold_err, sizeof(x->hold_err));
    if (q == 0)
        x->held = false;
    return atomic_load(&x->job.done) ? 0 : q;
}

/* Wait for the job to end; a cancel aborts it (once). */
static void wait_job(struct run *x)
{
    bool aborted = false;
    while (!atomic_load(&x->job.done)) {
        if (cancelled(x) && !aborted) {
            aborted = true;
            log_warn("interrupted: aborting the migration job");
            virDomainAbortJob(x->sdom);
        }
        sleep_ms(POLL_MS);
    }
    pthread_join(x->job_thread, NULL);
    x->job_started = false;
}

static void abort_job(struct run *x)
{
    if (x->job_started && !atomic_load(&x->job.done))
        virDomainAbortJob(x->sdom);
    if (x->job_started)
        wait_job(x);
}

/* Pre-copy until the first pass over RAM is done (or nearly all of it is copied). 1: time to
 * quiesce, 0: the job ended by itself (done or failed), -ECANCELED. */
static int precopy(struct run *x)
{
    uint64_t start = now_monotonic_ns();
    uint64_t hold_percent = x->o->hold_percent && x->o->hold_percent <= 95
                                ? x->o->hold_percent
                                : MIGRATE_HOLD_PERCENT_DEFAULT;
    while (!atomic_load(&x->job.done)) {
        sleep_ms(PRECOPY_POLL_MS);
        if (cancelled(x))
            return -ECANCELED;
        struct nc_virt_job_mem m;
        uint64_t tq = now_monotonic_ns();
        int qr = nc_virt_job_mem(x->sdom, &m);
        if (qr == 0)
            log_debug("migrate: %.3f s: pass %" PRIu64 ", %" PRIu64 " bytes left (query %.1f ms)",
                      (double)(tq - start) / 1e9, m.iteration, m.remaining,
                      (double)(now_monotonic_ns() - tq) / 1e6);
        if (qr < 0 && now_monotonic_ns() - start < (uint64_t)MIGRATE_PRECOPY_MAX_MS * 1000000)
            continue;

        x->r->mem = m;
        x->r->iterations = m.iteration;
        notify(x, MIGRATE_STEP_PRECOPY, false, m.processed, m.total);
        /* QEMU counts its dirty-bitmap syncs: 1 during the first pass, 2 once it is done. */
        /* Hold near the end of the first pass, while QEMU cannot complete yet (only once
         * a pass is over and what is left fits in the downtime limit, which came within
         * milliseconds of the first pass's end here). The later the hold, the less is left
         * to copy with the guest paused, and the likelier the switchover comes first (then
         * it is a plain live migration, reported). Zero pages fly: 150 MB went in 90 ms. */
        if (m.total &&
            (m.iteration >= 2 || (m.total - m.remaining) * 100 >= m.total * hold_percent))
            return 1;
        if (now_monotonic_ns() - start > (uint64_t)MIGRATE_PRECOPY_MAX_MS * 1000000) {
            log_info("migrate %s: %d s of held pre-copy (%" PRIu64 " of %" PRIu64
                     " bytes of RAM covered): quiescing",
                     x->o->domain, MIGRATE_PRECOPY_MAX_MS / 1000, m.total - m.remaining, m.total);
            return 1;
        }
    }
    return 0;
}

/* guest-net-thaw with the host's clock, with the kick unless --no-kick. */
static int thaw(struct run *x, struct txn_real *t, json_object **reply, char *e, size_t elen)
{
    return (x->o->no_kick ? txn_real_ops.agent_thaw_quiet
                          : txn_real_ops.agent_thaw)(t, now_realtime_ns(), reply, e, elen);
}

/* The guest left this host: the domain's history says so, so a later restore of an older
 * bundle here counts as a rollback (history.h). A failure is a warning: the guest runs. */
static void record_history(struct run *x)
{
    int q = history_record(x->ctx->state_dir, x->dom.uuid, HISTORY_MIGRATED, "", now_realtime_ns());
    if (q < 0)
        warn(x, "recording the migration in the domain's history: %s", strerror(-q));
}

/* Undo everything on the source side while the guest still lives there. */
static void rollback_source(struct run *x)
{
    struct migrate_result *r = x->r;
    char e[512] = "";
    abort_job(x);
    /* The bandwidth stays in QEMU after the job: put it back. */
    if (x->held && nc_virt_migrate_hold(x->sdom, false, x->old_bw, e, sizeof(e)) == 0)
        x->held = false;
    if (x->downtime_set && virDomainMigrateSetMaxDowntime(x->sdom, x->old_downtime, 0) == 0)
        x->downtime_set = false;
    int st = 0, reason = 0;
    if (nc_virt_state(x->ctx->src, x->sdom, &st, &reason) == 0 && st == VIR_DOMAIN_PAUSED) {
        if (nc_virt_resume(x->ctx->src, x->sdom) < 0)
            append_listf(r->rollback_errors, sizeof(r->rollback_errors), "resume: %s",
                         x->ctx->src->err);
    }
    if (x->src_gated) {
        if (txn_real_ops.gate_lift(&x->src, x->dom.name, e, sizeof(e)) < 0)
            append_listf(r->rollback_errors, sizeof(r->rollback_errors), "source gate lift: %s", e);
        else
            x->src_gated = false;
    }
    if (x->frozen) {
        json_object *rep = NULL;
        if (thaw(x, &x->src, &rep, e, sizeof(e)) < 0)
            append_listf(r->rollback_errors, sizeof(r->rollback_errors), "thaw: %s", e);
        else
            x->frozen = false;
        json_object_put(rep);
    }
    if (x->dst_gated) {
        int q = dest_lift(x);
        if (q < 0)
            append_listf(r->rollback_errors, sizeof(r->rollback_errors),
                         "destination gate lift: %s", strerror(-q));
    }
}

/* After the switchover: the guest only lives on the destination; bring it to running with its
 * network open, whatever failed. */
static void forward_dest(struct run *x)
{
    struct migrate_result *r = x->r;
    char e[512] = "";
    if (x->dst_gated) {
        int q = dest_lift(x);
        if (q < 0)
            append_listf(r->rollback_errors, sizeof(r->rollback_errors),
                         "destination gate lift: %s", strerror(-q));
    }
    enum txn_vm_state st = TXN_VM_UNKNOWN;
    if (txn_real_ops.vm_state(&x->dst, &st) == 0 && st == TXN_VM_PAUSED &&
        txn_real_ops.resume(&x->dst, e, sizeof(e)) < 0)
        append_listf(r->rollback_errors, sizeof(r->rollback_errors), "destination resume: %s", e);
    if (x->frozen) {
        json_object *rep = NULL;
        if (thaw(x, &x->dst, &rep, e, sizeof(e)) < 0)
            append_listf(r->rollback_errors, sizeof(r->rollback_errors), "thaw: %s", e);
        else
            x->frozen = false;
        json_object_put(rep);
    }
}

static void cleanup_end(struct run *x)
{
    char e[512] = "";
    if (x->src_gated && txn_real_ops.gate_lift(&x->src, x->dom.name, e, sizeof(e)) == 0)
        x->src_gated = false;
    x->r->source_gate_left = x->src_gated;
    x->r->dest_gate_left = x->dst_gated;
    /* A gate still up stays on record for recovery and unblock. */
    if (x->src_journal && !x->src_gated)
        journal_remove(x->ctx->state_dir, x->dom.name);
    if (x->dst_journal && !x->dst_gated)
        journal_remove(x->dest_state, x->dom.name);
}

static enum txn_outcome finish_failure(struct run *x)
{
    struct migrate_result *r = x->r;
    cleanup_end(x);
    if (r->rollback_errors[0] || r->source_gate_left || r->dest_gate_left)
        r->outcome = TXN_ROLLBACK_FAILED;
    else if (cancelled(x))
        r->outcome = TXN_INTERRUPTED;
    else
        r->outcome = TXN_ROLLED_BACK;
    return r->outcome;
}

static int read_file_str(const char *path, char **out, char *err, size_t errlen)
{
    size_t len = 0;
    int r = read_file(path, 4u << 20, out, &len);
    if (r < 0)
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(-r));
    return r;
}

/* The part after the switchover, on the destination. */
static int on_destination(struct run *x)
{
    struct migrate_result *r = x->r;
    char e[1024] = "";
    int q;

    /* The live taps there (libvirt may have made new ones) behind the gate. */
    struct discover_call d = {&x->dst, x->dom.name, &x->ddom, e, sizeof(e)};
    q = in_netns(x->nsfd, discover_cb, &d);
    free(x->ddom.xml);
    x->ddom.xml = NULL;
    if (q < 0)
        return fail(x, MIGRATE_STEP_RESUME, q, "the domain on the destination: %s", e);
    for (size_t i = 0; i < x->ddom.n_taps; i++)
        x->dtaps[i] = x->ddom.taps[i];
    x->n_dtaps = x->ddom.n_taps;
    if (x->n_dtaps) {
        q = write_dest_journal(x, x->dtaps, x->n_dtaps);
        if (q == 0)
            q = dest_gate(x, x->dtaps, x->n_dtaps, 0);
        if (q < 0)
            return fail(x, MIGRATE_STEP_RESUME, q, "gating the destination taps: %s", strerror(-q));
        x->dst_gated = true;
    }
    if (r->image && x->dst.watch_ms > 0) {
        struct watch_call w = {&x->dst, r->image};
        q = in_netns(x->nsfd, watch_cb, &w);
        if (q < 0)
            warn(x, "tap watch on the destination: %s (no per-connection report)", strerror(-q));
    }
    run_hook(x);

    notify(x, MIGRATE_STEP_RESUME, false, 0, 0);
    q = txn_real_ops.resume(&x->dst, e, sizeof(e));
    uint64_t t_resumed = now_monotonic_ns();
    r->t.downtime = t_resumed - x->t_suspend;
    notify(x, MIGRATE_STEP_RESUME, true, 0, 0);
    if (q < 0)
        return fail(x, MIGRATE_STEP_RESUME, q, "resuming on the destination: %s", e);

    if (r->image) {
        notify(x, MIGRATE_STEP_VERIFY, false, 0, 0);
        json_object *diff = NULL;
        uint64_t t = now_monotonic_ns();
        q = txn_real_ops.agent_verify(&x->dst, r->image, &diff, e, sizeof(e));
        r->t.verify = now_monotonic_ns() - t;
        notify(x, MIGRATE_STEP_VERIFY, true, 0, 0);
        if (q == 0) {
            r->verify_diff = diff;
            return fail(x, MIGRATE_STEP_VERIFY, -EBADE,
                        "the guest's sockets on the destination do not match the image taken "
                        "on the source");
        }
        if (q < 0)
            return fail(x, MIGRATE_STEP_VERIFY, q, "%s", e);
    }

    notify(x, MIGRATE_STEP_LIFT, false, 0, 0);
    struct gate_call g = {.domain = x->dom.name, .counters = &r->dst_counters};
    if (x->dst_gated)
        (void)in_netns(x->nsfd, gate_counters_cb, &g);
    q = x->dst_gated ? dest_lift(x) : 0;
    r->t.gate = now_monotonic_ns() - x->t_gate;
    notify(x, MIGRATE_STEP_LIFT, true, 0, 0);
    if (q < 0)
        return fail(x, MIGRATE_STEP_LIFT, q, "lifting the destination gate: %s", strerror(-q));

    if (x->frozen) {
        notify(x, MIGRATE_STEP_THAW, false, 0, 0);
        uint64_t t = now_monotonic_ns();
        q = thaw(x, &x->dst, &r->thaw_reply, e, sizeof(e));
        r->t.thaw = now_monotonic_ns() - t;
        notify(x, MIGRATE_STEP_THAW, true, 0, 0);
        if (q < 0)
            return fail(x, MIGRATE_STEP_THAW, q, "%s", e);
        x->frozen = false;
    }

    if (r->image) {
        notify(x, MIGRATE_STEP_REPORT, false, 0, 0);
        q = txn_real_ops.agent_report(&x->dst, r->image, r->thaw_reply, x->o->reset_stale,
                                      &r->report, e, sizeof(e));
        notify(x, MIGRATE_STEP_REPORT, true, 0, 0);
        if (q < 0)
            warn(x, "per-connection report: %s", e[0] ? e : strerror(-q));
    }
    return 0;
}

enum txn_outcome migrate_run(const struct migrate_ctx *ctx, const struct migrate_opts *o,
                             struct migrate_result *r)
{
    memset(r, 0, sizeof(*r));
    struct run *x = calloc(1, sizeof(*x));
    if (!x) {
        r->outcome = TXN_FAILED;
        r->error = -ENOMEM;
        snprintf(r->message, sizeof(r->message), "out of memory");
        return r->outcome;
    }
    x->ctx = ctx;
    x->o = o;
    x->r = r;
    x->nsfd = -1;
    x->t0 = now_monotonic_ns();
    char e[1024] = "";
    _cleanup_free_ char *dest_xml = NULL;
    int q;

    txn_real_init(&x->src, ctx->src, ctx->state_dir, ctx->cancel);
    x->src.agent_name = ctx->agent_name;
    snprintf(x->dest_state, sizeof(x->dest_state), "%s/%s", ctx->state_dir,
             MIGRATE_DEST_JOURNAL_DIR);

    /* ---- discover, connect, journal: nothing to undo yet ---- */
    notify(x, MIGRATE_STEP_DISCOVER, false, 0, 0);
    q = txn_real_ops.discover(&x->src, o->domain, &x->dom, e, sizeof(e));
    free(x->dom.xml);
    x->dom.xml = NULL;
    if (q == 0 && x->dom.state != TXN_VM_RUNNING)
        q = -EINVAL, snprintf(e, sizeof(e), "domain %s is %s, not running", x->dom.name,
                              txn_vm_state_name(x->dom.state));
    if (q == 0 && x->dom.n_taps == 0)
        q = -EINVAL, snprintf(e, sizeof(e), "domain %s has no tap to gate", x->dom.name);
    notify(x, MIGRATE_STEP_DISCOVER, true, 0, 0);
    if (q < 0) {
        fail(x, MIGRATE_STEP_DISCOVER, q, "%s", e);
        goto out_failed;
    }
    for (size_t i = 0; i < x->dom.n_taps; i++)
        x->taps[i] = x->dom.taps[i];
    if (nc_virt_lookup(ctx->src, x->dom.name, &x->sdom) < 0) {
        fail(x, MIGRATE_STEP_DISCOVER, -ENOENT, "%s", ctx->src->err);
        goto out_failed;
    }
    if (o->dest_xml && read_file_str(o->dest_xml, &dest_xml, e, sizeof(e)) < 0) {
        fail(x, MIGRATE_STEP_DISCOVER, -EINVAL, "%s", e);
        goto out_failed;
    }

    notify(x, MIGRATE_STEP_CONNECT, false, 0, 0);
    if (o->dest_netns && (x->nsfd = open_netns(o->dest_netns, e, sizeof(e))) < 0) {
        fail(x, MIGRATE_STEP_CONNECT, x->nsfd, "%s", e);
        goto out_failed;
    }
    q = nc_virt_open_peer(&x->vdst, ctx->src, o->dest_uri);
    notify(x, MIGRATE_STEP_CONNECT, true, 0, 0);
    if (q < 0) {
        fail(x, MIGRATE_STEP_CONNECT, q, "cannot connect to %s: %s", o->dest_uri, x->vdst.err);
        goto out_failed;
    }
    txn_real_init(&x->dst, &x->vdst, ctx->state_dir, ctx->cancel);
    x->dst.agent_name = ctx->agent_name;
    x->dst.watch_ms = o->watch_ms;
    x->dst_init = true;
    {
        virDomainPtr already = virDomainLookupByName(x->vdst.conn, x->dom.name);
        if (already) {
            virDomainFree(already);
            fail(x, MIGRATE_STEP_CONNECT, -EEXIST, "the destination already has a domain %s",
                 x->dom.name);
            goto out_failed;
        }
    }

    notify(x, MIGRATE_STEP_JOURNAL, false, 0, 0);
    q = txn_real_ops.journal_check(&x->src, x->dom.name);
    if (q == -EBUSY) {
        fail(x, MIGRATE_STEP_JOURNAL, q, "another netckpt process holds domain %s", x->dom.name);
        r->outcome = TXN_BUSY;
        goto out_done;
    }
    if (q < 0) {
        fail(x, MIGRATE_STEP_JOURNAL, q,
             "domain %s has a stale journal entry ('netckpt unblock %s' first)", x->dom.name,
             x->dom.name);
        goto out_failed;
    }
    struct journal_entry je;
    fill_entry(x, &je, x->taps, x->dom.n_taps);
    q = journal_write(ctx->state_dir, &je);
    if (q == 0) {
        x->src_journal = true;
        q = write_dest_journal(x, x->taps, x->dom.n_taps);
        if (q == 0)
            x->dst_journal = true;
    }
    notify(x, MIGRATE_STEP_JOURNAL, true, 0, 0);
    if (q < 0) {
        fail(x, MIGRATE_STEP_JOURNAL, q, "writing the journal: %s", strerror(-q));
        goto out_rollback;
    }

    /* ---- destination gate by name: the taps QEMU will open there ---- */
    notify(x, MIGRATE_STEP_DEST_GATE, false, 0, 0);
    q = dest_gate(x, x->taps, x->dom.n_taps, GATE_ALLOW_MISSING_TAP);
    notify(x, MIGRATE_STEP_DEST_GATE, true, 0, 0);
    if (q < 0) {
        fail(x, MIGRATE_STEP_DEST_GATE, q, "gating the destination taps: %s", strerror(-q));
        goto out_rollback;
    }
    x->dst_gated = true;

    /* ---- live pre-copy with the network running ---- */
    notify(x, MIGRATE_STEP_PRECOPY, false, 0, 0);
    uint64_t t_start = now_monotonic_ns();
    q = start_job(x, dest_xml);
    if (q < 0) {
        fail(x, MIGRATE_STEP_PRECOPY, q, "cannot start the migration thread: %s", strerror(-q));
        goto out_rollback;
    }
    q = precopy(x);
    notify(x, MIGRATE_STEP_PRECOPY, true, r->mem.processed, r->mem.total);
    if (q == -EIO) {
        fail(x, MIGRATE_STEP_PRECOPY, q, "reading the migration bandwidth: %s", x->hold_err);
        goto out_rollback;
    }
    if (q == -ECANCELED) {
        fail(x, MIGRATE_STEP_PRECOPY, q, "interrupted");
        goto out_rollback;
    }
    if (q == 1) {
        /* ---- quiesce: gate, freeze, suspend ---- */
        r->t.precopy = now_monotonic_ns() - t_start;
        q = hold(x);
        if (q == 0)
            goto unquiesced;
        notify(x, MIGRATE_STEP_GATE, false, 0, 0);
        q = txn_real_ops.gate_install(&x->src, x->dom.name, x->taps, x->dom.n_taps, e, sizeof(e));
        x->t_gate = now_monotonic_ns();
        notify(x, MIGRATE_STEP_GATE, true, 0, 0);
        if (q < 0) {
            fail(x, MIGRATE_STEP_GATE, q, "gating the source taps: %s", e);
            goto out_rollback;
        }
        x->src_gated = true;
        if (cancelled(x)) {
            fail(x, MIGRATE_STEP_GATE, -ECANCELED, "interrupted");
            goto out_rollback;
        }
        notify(x, MIGRATE_STEP_FREEZE, false, 0, 0);
        uint64_t t = now_monotonic_ns();
        q = txn_real_ops.agent_freeze(&x->src, o->watchdog_ms, &r->image, e, sizeof(e));
        r->t.freeze = now_monotonic_ns() - t;
        notify(x, MIGRATE_STEP_FREEZE, true, 0, 0);
        /* A freeze that failed may still finish in the guest: thaw it wherever it runs. */
        x->frozen = true;
        if (q < 0 && atomic_load(&x->job.done)) {
            /* libvirt switched over under the freeze (the channel closed with the source
             * QEMU): go on with the guest on the destination, thawed there, unverified. */
            wait_job(x);
            if (x->job.r == 0) {
                warn(x,
                     "libvirt switched over during the freeze (%s): the sockets are not "
                     "verified",
                     e);
                json_object_put(r->image);
                r->image = NULL;
                x->t_suspend = now_monotonic_ns();
                goto switched;
            }
        }
        if (q < 0) {
            fail(x, MIGRATE_STEP_FREEZE, q, "%s", e);
            goto out_rollback;
        }
        struct socket_image img;
        char why[256];
        if (socket_image_from_json(r->image, &img, why, sizeof(why)) == 0) {
            r->n_connections = (unsigned)img.n_conns;
            socket_image_free(&img);
        }
        if (cancelled(x)) {
            fail(x, MIGRATE_STEP_FREEZE, -ECANCELED, "interrupted");
            goto out_rollback;
        }
        /* The freeze is done: a switchover from now on is safe. */
        notify(x, MIGRATE_STEP_SWITCHOVER, false, 0, 0);
        x->t_suspend = now_monotonic_ns();
        r->quiesced = true;
        if (fault_at(MIGRATE_STEP_SWITCHOVER)) {
            log_warn("NETCKPT_MIGRATE_FAULT: aborting the migration at the switchover");
            virDomainAbortJob(x->sdom);
        }
        /* Suspend the source, then raise the bandwidth: the rest is copied with the guest
         * stopped. Every millisecond the guest runs while QEMU tracks its dirty pages risks a
         * lost page under QEMU 7.2's TCG here (docs/migrate.md: guest oopses on the
         * destination, more often the longer the guest ran live during the copy). */
        if (!atomic_load(&x->job.done) && !cancelled(x)) {
            q = nc_virt_suspend(ctx->src, x->sdom);
            /* Should QEMU have stopped the guest for its own switchover, libvirt refuses the
             * suspend (not running): wait for the job then. */
            int st = VIR_DOMAIN_RUNNING, reason = 0;
            if (q < 0 && !atomic_load(&x->job.done) &&
                nc_virt_state(ctx->src, x->sdom, &st, &reason) == 0 && st == VIR_DOMAIN_PAUSED) {
                log_info("migrate %s: the source stopped by itself (reason %d): QEMU is "
                         "switching over",
                         x->dom.name, reason);
                q = 0;
            }
            if (q < 0 && !atomic_load(&x->job.done)) {
                fail(x, MIGRATE_STEP_SWITCHOVER, q, "suspending the source: %s", ctx->src->err);
                goto out_rollback;
            }
            x->suspended = true;
        }
        q = release(x);
        if (q < 0) {
            fail(x, MIGRATE_STEP_SWITCHOVER, q, "cannot release the held migration: %s",
                 x->hold_err);
            goto out_rollback;
        }
    } else {
    unquiesced:
        x->t_suspend = now_monotonic_ns();
        notify(x, MIGRATE_STEP_SWITCHOVER, false, 0, 0);
        /* Nothing frozen: a job still held would only crawl on. */
        if (release(x) < 0)
            warn(x, "cannot release the held migration: %s", x->hold_err);
    }
    wait_job(x);
switched:
    r->t.switchover = now_monotonic_ns() - x->t_suspend;
    notify(x, MIGRATE_STEP_SWITCHOVER, true, 0, 0);
    if (x->job.r < 0) {
        fail(x, MIGRATE_STEP_SWITCHOVER, x->job.r, "%s", cancelled(x) ? "interrupted" : x->job.err);
        goto out_rollback;
    }
    r->switched_over = true;
    if (!r->quiesced && !x->frozen)
        warn(x, "libvirt switched over before the quiesce: a plain live migration (no gate, "
                "no freeze, nothing verified)");
    if (!x->t_gate)
        x->t_gate = x->t_suspend;
    log_info("migrate %s: switched over to %s in %.3f s", x->dom.name, o->dest_uri,
             (double)r->t.switchover / 1e9);

    /* ---- the destination ---- */
    record_history(x);
    q = on_destination(x);
    if (q < 0) {
        forward_dest(x);
        /* The source gate has nothing left behind it. */
        finish_failure(x);
        goto out_done;
    }
    cleanup_end(x);
    r->outcome = r->source_gate_left || r->dest_gate_left ? TXN_ROLLBACK_FAILED : TXN_OK;
    if (r->source_gate_left)
        append_listf(r->rollback_errors, sizeof(r->rollback_errors), "the source gate is still up");
    goto out_done;

out_rollback:
    rollback_source(x);
    finish_failure(x);
    goto out_done;
out_failed:
    r->outcome = TXN_FAILED;
out_done:
    r->t.total = now_monotonic_ns() - x->t0;
    if (x->job_started)
        wait_job(x);
    if (x->dst_init)
        txn_real_done(&x->dst);
    nc_virt_close(&x->vdst);
    txn_real_done(&x->src);
    if (x->sdom)
        virDomainFree(x->sdom);
    if (x->nsfd >= 0)
        close(x->nsfd);
    free(x);
    return r->outcome;
}

int migrate_recover(const char *state_dir)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof(dir), "%s/%s", state_dir, MIGRATE_DEST_JOURNAL_DIR) >=
        (int)sizeof(dir))
        return -ENAMETOOLONG;
    if (access(dir, F_OK) != 0)
        return 0;
    /* No callback: the guest's agent thaws by its own watchdog, and the domain on the
     * destination is the destination libvirt's to resume. */
    return journal_recover(dir, NULL, NULL);
}
