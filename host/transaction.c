/* host/transaction.c: see transaction.h. Each transaction is a straight sequence of steps;
 * what has taken effect so far lives in a small "done" record, and rollback undoes exactly
 * that, in the order that lets each undo work (the VM must run before its agent can thaw). */
#include "host/transaction.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

const char *txn_vm_state_name(enum txn_vm_state s)
{
    switch (s) {
    case TXN_VM_UNKNOWN:
        return "unknown";
    case TXN_VM_ABSENT:
        return "absent";
    case TXN_VM_OFF:
        return "shut off";
    case TXN_VM_RUNNING:
        return "running";
    case TXN_VM_PAUSED:
        return "paused";
    }
    return "unknown";
}

const char *txn_step_name(enum txn_step s)
{
    static const char *const names[] = {
        [TXN_STEP_NONE] = "none",       [TXN_STEP_DISCOVER] = "discover",
        [TXN_STEP_PREPARE] = "prepare", [TXN_STEP_JOURNAL] = "journal",
        [TXN_STEP_GATE] = "gate",       [TXN_STEP_FREEZE] = "freeze",
        [TXN_STEP_SAVE] = "save",       [TXN_STEP_COMMIT] = "commit",
        [TXN_STEP_OPEN] = "open",       [TXN_STEP_RESTORE] = "restore",
        [TXN_STEP_RESUME] = "resume",   [TXN_STEP_VERIFY] = "verify",
        [TXN_STEP_LIFT] = "lift",       [TXN_STEP_THAW] = "thaw",
        [TXN_STEP_REPORT] = "report",   [TXN_STEP_DONE] = "done",
    };
    if ((size_t)s < sizeof(names) / sizeof(names[0]) && names[s])
        return names[s];
    return "unknown";
}

const char *txn_outcome_name(enum txn_outcome o)
{
    switch (o) {
    case TXN_OK:
        return "ok";
    case TXN_FAILED:
        return "failed";
    case TXN_BUSY:
        return "busy";
    case TXN_REFUSED:
        return "refused";
    case TXN_ROLLED_BACK:
        return "rolled-back";
    case TXN_ROLLBACK_FAILED:
        return "rollback-failed";
    case TXN_INTERRUPTED:
        return "interrupted";
    }
    return "unknown";
}

void txn_result_done(struct txn_result *r)
{
    json_object_put(r->image);
    json_object_put(r->verify_diff);
    json_object_put(r->thaw_reply);
    json_object_put(r->report);
    r->image = r->verify_diff = r->thaw_reply = r->report = NULL;
}

/* ---- small helpers ---- */

/* What has taken effect, so rollback knows what to undo. */
struct done {
    bool bundle_open, committed, journaled, gate_tried, freeze_tried, frozen, save_tried, restored;
};

struct run {
    struct txn_ctx *ctx;
    struct txn_result *r;
    struct done d;
    enum txn_step step;
    uint64_t step_start;
    char err[512];
    char tmp[4096];
    const char *domain;
    sigset_t saved_mask;
    int blocked;
    bool replay_on;
};

static uint64_t mono(struct run *x)
{
    return x->ctx->ops->clock(x->ctx->ud, false);
}

static bool cancelled(const struct run *x)
{
    return x->ctx->cancel && *x->ctx->cancel;
}

static void notify(struct run *x, enum txn_event ev, uint64_t done, uint64_t total, const char *msg)
{
    if (x->ctx->notify)
        x->ctx->notify(x->ctx->nud, ev, x->step, done, total, msg);
}

static void warn(struct run *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(struct run *x, const char *fmt, ...)
{
    char m[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof(m), fmt, ap);
    va_end(ap);
    log_warn("%s", m);
    append_listf(x->r->warnings, sizeof(x->r->warnings), "%s", m);
    notify(x, TXN_EV_WARNING, 0, 0, m);
}

static void begin(struct run *x, enum txn_step s)
{
    x->step = s;
    x->err[0] = 0;
    x->step_start = mono(x);
    log_debug("txn: step %s", txn_step_name(s));
    notify(x, TXN_EV_STEP_BEGIN, 0, 0, NULL);
}

static void end(struct run *x)
{
    uint64_t now = mono(x);
    manifest_add_step(&x->r->m, txn_step_name(x->step),
                      now >= x->step_start ? now - x->step_start : 0);
    notify(x, TXN_EV_STEP_END, 0, 0, NULL);
}

/* Record the failure of the current step (the first failure wins). */
static void fail(struct run *x, int error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct run *x, int error, const char *fmt, ...)
{
    if (x->r->failed_step != TXN_STEP_NONE)
        return;
    x->r->failed_step = x->step;
    x->r->error = error < 0 ? error : -EIO;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->r->message, sizeof(x->r->message), fmt, ap);
    va_end(ap);
    /* Debug only: the caller prints the one summary line (the CLI's failure report, netckptd's
     * job-failed event), so a failure is not said twice. */
    log_debug("%s failed: %s", txn_step_name(x->step), x->r->message);
}

static const char *why(struct run *x, int error)
{
    if (x->err[0])
        return x->err;
    snprintf(x->err, sizeof(x->err), "%s", strerror(error < 0 ? -error : EIO));
    return x->err;
}

/* Steps that must not be torn by a signal (gate install, commit, rollback) run with SIGINT and
 * SIGTERM blocked; the flag still records the request, and we act on it after the step. */
static void block_signals(struct run *x)
{
    if (x->blocked++)
        return;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGINT);
    sigaddset(&s, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &s, &x->saved_mask);
}

static void unblock_signals(struct run *x)
{
    if (!x->blocked || --x->blocked)
        return;
    pthread_sigmask(SIG_SETMASK, &x->saved_mask, NULL);
}

static void set_interrupted(struct run *x)
{
    if (x->r->failed_step == TXN_STEP_NONE) {
        fail(x, -EINTR, "interrupted by a signal after step %s", txn_step_name(x->step));
    }
    x->r->interrupted = true;
}

static void journal_step(struct run *x, struct journal_entry *je, const char *step)
{
    snprintf(je->step, sizeof(je->step), "%s", step);
    int r = x->ctx->ops->journal_write(x->ctx->ud, je);
    if (r < 0) /* the first entry is what recovery needs; later steps are informative */
        warn(x, "journal update to '%s' failed: %s", step, strerror(-r));
}

static void fill_journal(struct run *x, struct journal_entry *je, const char *domain,
                         const char *uuid, const char (*taps)[16], size_t n_taps,
                         bool vm_was_running)
{
    memset(je, 0, sizeof(*je));
    snprintf(je->domain, sizeof(je->domain), "%s", domain);
    snprintf(je->uuid, sizeof(je->uuid), "%s", uuid ? uuid : "");
    for (size_t i = 0; i < n_taps && i < ELEMENTSOF(je->taps); i++)
        snprintf(je->taps[i], sizeof(je->taps[i]), "%s", taps[i]);
    je->n_taps = n_taps < ELEMENTSOF(je->taps) ? n_taps : ELEMENTSOF(je->taps);
    snprintf(je->bundle_tmp, sizeof(je->bundle_tmp), "%s", x->tmp);
    je->pid = x->ctx->pid > 0 ? x->ctx->pid : getpid();
    je->started_ns = x->ctx->ops->clock(x->ctx->ud, true);
    je->vm_was_running = vm_was_running;
}

static void taps_ptrs(const char (*taps)[16], size_t n, const char **out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = taps[i];
}

static void progress_cb(void *ud, uint64_t done, uint64_t total)
{
    struct run *x = ud;
    notify(x, TXN_EV_PROGRESS, done, total, NULL);
}

/* Count and id of a socket image (already validated by the ops). */
static void image_summary(json_object *img, struct manifest *m)
{
    json_object *v;
    if (json_object_object_get_ex(img, "image_id", &v) && json_object_is_type(v, json_type_string))
        snprintf(m->image_id, sizeof(m->image_id), "%s", json_object_get_string(v));
    if (json_object_object_get_ex(img, "connections", &v) &&
        json_object_is_type(v, json_type_array))
        m->n_connections = (uint32_t)json_object_array_length(v);
}

static void watch(struct run *x)
{
    if (!x->ctx->ops->watch_begin)
        return;
    int q = x->ctx->ops->watch_begin(x->ctx->ud, x->r->image);
    if (q < 0)
        warn(x, "cannot watch the taps for the report: %s", strerror(-q));
}

static const char *replay_phase_name(enum txn_replay_phase ph)
{
    switch (ph) {
    case TXN_REPLAY_BEGIN:
        return "capture";
    case TXN_REPLAY_STOP:
        return "drain";
    case TXN_REPLAY_KEEP:
        return "keeping the held frames";
    case TXN_REPLAY_SEND:
        return "replay";
    case TXN_REPLAY_CLOSE:
        return "close";
    }
    return "?";
}

/* Held-traffic replay only makes the resume faster; a failure never fails the transaction. */
static void replay(struct run *x, enum txn_replay_phase ph, json_object *image)
{
    if (!x->replay_on)
        return;
    char e[512] = "";
    int q = x->ctx->ops->replay(x->ctx->ud, ph, image, &x->r->replay, e, sizeof(e));
    if (q < 0 && ph != TXN_REPLAY_CLOSE)
        warn(x, "held-traffic %s failed: %s (the peers retransmit instead)", replay_phase_name(ph),
             e[0] ? e : strerror(-q));
}

static void init_result(struct txn_result *r)
{
    memset(r, 0, sizeof(*r));
    r->outcome = TXN_FAILED;
    r->failed_step = TXN_STEP_NONE;
}

/* ---- rollback steps shared by checkpoint and restore ---- */

/* Signals stay blocked until rollback_end(): a rollback must not be torn. */
static void rollback_begin(struct run *x)
{
    block_signals(x);
    x->r->rolled_back = true;
    if (cancelled(x)) /* the failure may be the signal's doing (an aborted save) */
        x->r->interrupted = true;
    notify(x, TXN_EV_ROLLBACK, 0, 0, x->r->message);
}

static void rollback_lift_gate(struct run *x)
{
    if (!x->d.gate_tried)
        return;
    char e[512] = "";
    int q = x->ctx->ops->gate_lift(x->ctx->ud, x->domain, e, sizeof(e));
    if (q < 0)
        append_listf(x->r->rollback_errors, sizeof(x->r->rollback_errors), "gate lift failed: %s",
                     e[0] ? e : strerror(-q));
}

/* The journal entry goes only when nothing is left to finish; then the VM state as left. */
static void rollback_end(struct run *x)
{
    const struct txn_ops *ops = x->ctx->ops;
    if (!x->r->rollback_errors[0] && x->d.journaled) {
        int q = ops->journal_remove(x->ctx->ud, x->domain);
        if (q < 0)
            warn(x, "journal remove failed: %s", strerror(-q));
    }
    if (ops->vm_state(x->ctx->ud, &x->r->vm_after) < 0)
        x->r->vm_after = TXN_VM_UNKNOWN;
    unblock_signals(x);
}

/* ---- checkpoint ---- */

static enum txn_outcome checkpoint_rollback(struct run *x)
{
    const struct txn_ops *ops = x->ctx->ops;
    void *ud = x->ctx->ud;
    struct txn_result *r = x->r;
    char e[512];
    bool vm_ok = true;

    rollback_begin(x);
    log_debug("rolling back after %s failed", txn_step_name(r->failed_step)); /* the CLI says it */

    /* 1. The VM back to running: the agent can only thaw in a running guest. */
    enum txn_vm_state s = TXN_VM_UNKNOWN;
    if (ops->vm_state(ud, &s) < 0)
        s = TXN_VM_UNKNOWN;
    if ((s == TXN_VM_OFF || s == TXN_VM_ABSENT) && x->d.save_tried) {
        e[0] = 0;
        int q = ops->restore_saved(ud, e, sizeof(e));
        if (q < 0) {
            vm_ok = false;
            append_listf(
                r->rollback_errors, sizeof(r->rollback_errors),
                "could not bring the saved VM back: %s%s", e[0] ? e : strerror(-q),
                x->d.bundle_open && !x->d.committed ? " (the partial bundle keeps its state)" : "");
        } else {
            s = TXN_VM_PAUSED;
        }
    } else if (s == TXN_VM_OFF || s == TXN_VM_ABSENT) {
        vm_ok = false;
        append_listf(r->rollback_errors, sizeof(r->rollback_errors),
                     "the VM is %s and was not saved", txn_vm_state_name(s));
    }
    if (s == TXN_VM_PAUSED && r->vm_before == TXN_VM_RUNNING) {
        e[0] = 0;
        int q = ops->resume(ud, e, sizeof(e));
        if (q < 0) {
            vm_ok = false;
            append_listf(r->rollback_errors, sizeof(r->rollback_errors), "resume failed: %s",
                         e[0] ? e : strerror(-q));
        }
    } else if (s == TXN_VM_UNKNOWN) {
        e[0] = 0;
        /* We cannot tell; a resume of a running VM fails harmlessly. */
        (void)ops->resume(ud, e, sizeof(e));
    }

    /* 2. The gate. */
    rollback_lift_gate(x);

    /* 3. The agent. If the freeze never completed, the agent undid it itself or its
     * watchdog will, so a failed thaw is only a warning then. */
    if (x->d.freeze_tried && vm_ok) {
        e[0] = 0;
        json_object *reply = NULL;
        int q = ops->agent_thaw(ud, ops->clock(ud, true), &reply, e, sizeof(e));
        json_object_put(reply);
        if (q < 0) {
            if (x->d.frozen)
                append_listf(r->rollback_errors, sizeof(r->rollback_errors),
                             "agent thaw failed: %s (its watchdog thaws it)",
                             e[0] ? e : strerror(-q));
            else
                warn(x, "agent thaw after a failed freeze: %s", e[0] ? e : strerror(-q));
        }
    } else if (x->d.frozen) {
        append_listf(r->rollback_errors, sizeof(r->rollback_errors),
                     "agent not thawed: the VM is not running (its watchdog thaws it on resume)");
    }

    /* 4. The bundle: a partial one goes, unless it holds the only copy of the VM. */
    if (x->d.bundle_open && !x->d.committed) {
        if (vm_ok) {
            ops->bundle_abort(ud);
            x->d.bundle_open = false;
        }
    }

    /* 5. The journal goes only when nothing is left to finish. */
    rollback_end(x);
    if (r->rollback_errors[0]) {
        r->gate_left = true; /* assume the worst; the journal records it */
        return r->outcome = TXN_ROLLBACK_FAILED;
    }
    r->gate_left = false;
    return r->outcome = r->interrupted ? TXN_INTERRUPTED : TXN_ROLLED_BACK;
}

/* Check the cancel flag between steps; true means "roll back now". */
static bool check_cancel(struct run *x)
{
    if (!cancelled(x))
        return false;
    set_interrupted(x);
    return true;
}

/* The resume step, the same in the continue-mode checkpoint and in restore: the caller rolls
 * back on a negative return. */
static int step_resume(struct run *x)
{
    begin(x, TXN_STEP_RESUME);
    int q = x->ctx->ops->resume(x->ctx->ud, x->err, sizeof(x->err));
    if (q < 0) {
        fail(x, q, "resume failed: %s", why(x, q));
        return q;
    }
    end(x);
    return 0;
}

/* Watch the taps, then lift the gate of a running, verified VM (continue-mode checkpoint and
 * restore alike); signals are held off while the rules change. The caller rolls back on a
 * negative return. */
/* Install the gate on the domain's taps; on failure the step fails with what (the caller's
 * wording) and the caller rolls back. */
static int step_gate_install(struct run *x, const struct txn_domain *dom, const char *what)
{
    const char *taps[TXN_MAX_TAPS];
    taps_ptrs((const char(*)[16])dom->taps, dom->n_taps, taps);
    block_signals(x);
    x->d.gate_tried = true;
    int q =
        x->ctx->ops->gate_install(x->ctx->ud, x->domain, taps, dom->n_taps, x->err, sizeof(x->err));
    unblock_signals(x);
    if (q < 0)
        fail(x, q, "%s failed: %s", what, why(x, q));
    return q;
}

static int step_lift(struct run *x)
{
    watch(x);
    begin(x, TXN_STEP_LIFT);
    block_signals(x);
    int q = x->ctx->ops->gate_lift(x->ctx->ud, x->domain, x->err, sizeof(x->err));
    unblock_signals(x);
    if (q < 0) {
        fail(x, q, "gate lift failed: %s", why(x, q));
        return q;
    }
    replay(x, TXN_REPLAY_STOP, NULL);
    end(x);
    return 0;
}

/* The tail of a successful checkpoint-and-continue or restore: the per-connection report
 * (only a warning if it fails: the VM is already running) and the journal entry dropped. */
static void finish_ok(struct run *x, bool reset_stale)
{
    const struct txn_ops *ops = x->ctx->ops;
    void *ud = x->ctx->ud;
    struct txn_result *r = x->r;
    int q;
    if (ops->agent_report) {
        begin(x, TXN_STEP_REPORT);
        q = ops->agent_report(ud, r->image, r->thaw_reply, reset_stale, &r->report, x->err,
                              sizeof(x->err));
        if (q < 0)
            warn(x, "per-connection report failed: %s", why(x, q));
        end(x);
    }
    q = ops->journal_remove(ud, x->domain);
    if (q < 0)
        warn(x, "journal remove failed: %s", strerror(-q));
    r->outcome = TXN_OK;
}

enum txn_outcome txn_checkpoint(struct txn_ctx *ctx, const struct txn_checkpoint_opts *o,
                                struct txn_result *r)
{
    const struct txn_ops *ops = ctx->ops;
    void *ud = ctx->ud;
    struct run x = {.ctx = ctx, .r = r, .domain = o->domain};
    x.replay_on = !o->no_replay && ctx->ops->replay;
    struct txn_domain dom = {0};
    struct journal_entry je;
    int q;

    init_result(r);
    snprintf(r->bundle_path, sizeof(r->bundle_path), "%s", o->dir);
    r->m.mode = o->continue_running ? MANIFEST_MODE_CONTINUE : MANIFEST_MODE_STOP;
    r->m.state = o->snapshot ? MANIFEST_STATE_SNAPSHOT : MANIFEST_STATE_SAVE;
    r->m.created_ns = ops->clock(ud, true);
    r->replay.enabled = x.replay_on;

    /* Discover: nothing to undo if this fails. */
    begin(&x, TXN_STEP_DISCOVER);
    q = ops->discover(ud, o->domain, &dom, x.err, sizeof(x.err));
    if (q < 0) {
        fail(&x, q, "%s", why(&x, q));
        goto out_plain;
    }
    r->vm_before = dom.state;
    snprintf(r->m.domain_name, sizeof(r->m.domain_name), "%s", dom.name);
    snprintf(r->m.domain_uuid, sizeof(r->m.domain_uuid), "%s", dom.uuid);
    x.domain = r->m.domain_name;
    if (dom.state != TXN_VM_RUNNING) {
        fail(&x, -ENOTCONN,
             "domain %s is %s; a checkpoint needs it running (its agent must answer)", dom.name,
             txn_vm_state_name(dom.state));
        goto out_plain;
    }
    if (dom.n_taps == 0 || dom.n_taps > TXN_MAX_TAPS) {
        fail(&x, -ENODEV, "domain %s has %zu tap devices (1..%d supported)", dom.name, dom.n_taps,
             TXN_MAX_TAPS);
        goto out_plain;
    }
    for (size_t i = 0; i < dom.n_taps; i++)
        snprintf(r->m.taps[i], sizeof(r->m.taps[i]), "%s", dom.taps[i]);
    r->m.n_taps = dom.n_taps;
    q = ops->journal_check(ud, x.domain);
    if (q == -EBUSY) {
        fail(&x, q, "another netckpt process is working on domain %s", x.domain);
        r->outcome = TXN_BUSY;
        goto out_free;
    } else if (q < 0) {
        fail(&x, q,
             "domain %s has a journal entry left by a dead process%s; run 'netckpt unblock %s'",
             x.domain, q == -ESTALE ? "" : " (or it is unreadable)", x.domain);
        goto out_plain;
    }
    end(&x);
    if (check_cancel(&x)) {
        r->outcome = TXN_INTERRUPTED;
        goto out_free;
    }

    begin(&x, TXN_STEP_PREPARE);
    q = ops->bundle_begin(ud, o->dir, x.tmp, sizeof(x.tmp), x.err, sizeof(x.err));
    if (q < 0) {
        fail(&x, q, "cannot start the bundle %s: %s", o->dir, why(&x, q));
        goto out_plain;
    }
    x.d.bundle_open = true;
    end(&x);

    begin(&x, TXN_STEP_JOURNAL);
    fill_journal(&x, &je, x.domain, dom.uuid, (const char(*)[16])dom.taps, dom.n_taps, true);
    snprintf(je.step, sizeof(je.step), "gating");
    q = ops->journal_write(ud, &je);
    if (q < 0) {
        fail(&x, q, "cannot write the journal: %s", strerror(-q));
        ops->bundle_abort(ud);
        x.d.bundle_open = false;
        goto out_plain;
    }
    x.d.journaled = true;
    end(&x);
    if (check_cancel(&x)) {
        ops->bundle_abort(ud);
        ops->journal_remove(ud, x.domain);
        r->outcome = TXN_INTERRUPTED;
        goto out_free;
    }

    /* From here on every failure rolls back. */
    begin(&x, TXN_STEP_GATE);
    if ((q = step_gate_install(&x, &dom, "gate install")) < 0)
        goto rollback;
    journal_step(&x, &je, "gated");
    replay(&x, TXN_REPLAY_BEGIN, NULL);
    end(&x);
    if (check_cancel(&x))
        goto rollback;

    begin(&x, TXN_STEP_FREEZE);
    x.d.freeze_tried = true;
    q = ops->agent_freeze(ud, o->watchdog_ms, &r->image, x.err, sizeof(x.err));
    if (q < 0) {
        fail(&x, q, "guest-net-freeze failed: %s", why(&x, q));
        goto rollback;
    }
    x.d.frozen = true;
    image_summary(r->image, &r->m);
    {
        const char *s = json_object_to_json_string_ext(
            r->image, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        q = ops->bundle_add(ud, BUNDLE_SOCKET_IMAGE, s, strlen(s), x.err, sizeof(x.err));
        if (q >= 0 && dom.xml)
            q = ops->bundle_add(ud, BUNDLE_DOMAIN_XML, dom.xml, strlen(dom.xml), x.err,
                                sizeof(x.err));
    }
    if (q < 0) {
        fail(&x, q, "writing the socket image into the bundle failed: %s", why(&x, q));
        goto rollback;
    }
    journal_step(&x, &je, "frozen");
    end(&x);
    if (check_cancel(&x))
        goto rollback;

    begin(&x, TXN_STEP_SAVE);
    journal_step(&x, &je, "saving");
    x.d.save_tried = true;
    q = ops->save(ud, o->snapshot, !o->continue_running, progress_cb, &x, x.err, sizeof(x.err));
    if (q < 0) {
        fail(&x, q, "%s failed: %s", o->snapshot ? "snapshot" : "save", why(&x, q));
        goto rollback;
    }
    {
        struct gate_counters c = {0};
        q = ops->gate_counters(ud, x.domain, &c);
        if (q < 0)
            warn(&x, "reading the gate counters failed: %s", strerror(-q));
        r->m.counters.to_guest_pkts = c.to_guest_pkts;
        r->m.counters.to_guest_bytes = c.to_guest_bytes;
        r->m.counters.from_guest_pkts = c.from_guest_pkts;
        r->m.counters.from_guest_bytes = c.from_guest_bytes;
    }
    if (!o->continue_running) {
        /* The VM is off: what reached the gate during the save goes into the bundle. */
        replay(&x, TXN_REPLAY_STOP, NULL);
        replay(&x, TXN_REPLAY_KEEP, r->image);
    }
    end(&x);
    if (check_cancel(&x))
        goto rollback;

    begin(&x, TXN_STEP_COMMIT);
    journal_step(&x, &je, "committing");
    block_signals(&x);
    /* The manifest records the steps up to the save; its own commit cannot be in it. */
    q = ops->bundle_commit(ud, &r->m, x.err, sizeof(x.err));
    unblock_signals(&x);
    if (q < 0) {
        fail(&x, q, "bundle commit failed: %s", why(&x, q));
        goto rollback;
    }
    x.d.committed = true;
    r->bundle_committed = true;
    if (ops->history_record) /* from here the domain's network state stops or runs on at it */
        ops->history_record(ud, o->continue_running ? TXN_HISTORY_CONTINUED : TXN_HISTORY_STOPPED,
                            &r->m);
    end(&x);

    if (!o->continue_running) {
        /* Stop mode: the VM is off; lift the gate so nothing stays gated. A signal here
         * changes nothing: the checkpoint is complete. */
        begin(&x, TXN_STEP_LIFT);
        block_signals(&x);
        q = ops->gate_lift(ud, x.domain, x.err, sizeof(x.err));
        unblock_signals(&x);
        if (q < 0) {
            fail(&x, q,
                 "the checkpoint is complete but the gate could not be lifted: %s; "
                 "run 'netckpt unblock %s'",
                 why(&x, q), x.domain);
            r->gate_left = true;
            r->outcome = TXN_ROLLBACK_FAILED; /* the journal keeps the gate on record */
            goto out_state;
        }
        end(&x);
        q = ops->journal_remove(ud, x.domain);
        if (q < 0)
            warn(&x, "journal remove failed: %s", strerror(-q));
        r->outcome = TXN_OK;
        goto out_state;
    }

    /* Continue mode: bring the VM back if the save stopped it, resume, lift, thaw. */
    journal_step(&x, &je, "resuming");
    {
        enum txn_vm_state s = TXN_VM_UNKNOWN;
        if (ops->vm_state(ud, &s) < 0)
            s = TXN_VM_UNKNOWN;
        if (s == TXN_VM_OFF || s == TXN_VM_ABSENT) {
            begin(&x, TXN_STEP_RESTORE);
            q = ops->restore_saved(ud, x.err, sizeof(x.err));
            if (q < 0) {
                fail(&x, q, "restoring the saved VM failed: %s", why(&x, q));
                goto rollback;
            }
            end(&x);
            s = TXN_VM_PAUSED;
        }
        if (s != TXN_VM_RUNNING && step_resume(&x) < 0)
            goto rollback;
    }
    if (check_cancel(&x))
        goto rollback;
    /* The VM came back from the state just saved: check its sockets against the image before
     * anything reaches them (this also has the agent channel open for a quick thaw). */
    begin(&x, TXN_STEP_VERIFY);
    q = ops->agent_verify(ud, r->image, &r->verify_diff, x.err, sizeof(x.err));
    if (q <= 0) {
        if (q == 0)
            fail(&x, -EPROTO, "the resumed VM's sockets do not match the image just taken");
        else
            fail(&x, q, "guest-net-verify failed: %s", why(&x, q));
        goto rollback;
    }
    end(&x);
    if (check_cancel(&x))
        goto rollback;
    if (step_lift(&x) < 0)
        goto rollback;
    begin(&x, TXN_STEP_THAW);
    q = ops->agent_thaw(ud, ops->clock(ud, true), &r->thaw_reply, x.err, sizeof(x.err));
    if (q < 0) {
        fail(&x, q, "guest-net-thaw failed: %s", why(&x, q));
        goto rollback;
    }
    x.d.frozen = false;
    /* The guest's sockets are live again: give them what the peers sent meanwhile. */
    replay(&x, TXN_REPLAY_SEND, r->image);
    end(&x);
    finish_ok(&x, false);
    goto out_state;

rollback:
    checkpoint_rollback(&x);
    goto out_free;
out_plain:
    if (r->outcome != TXN_BUSY)
        r->outcome = TXN_FAILED;
    goto out_state;
out_state:
    if (ops->vm_state(ud, &r->vm_after) < 0)
        r->vm_after = TXN_VM_UNKNOWN;
out_free:
    replay(&x, TXN_REPLAY_CLOSE, NULL);
    if (r->outcome == TXN_OK)
        r->failed_step = TXN_STEP_NONE;
    free(dom.xml);
    return r->outcome;
}

/* ---- restore ---- */

static enum txn_outcome restore_rollback(struct run *x)
{
    const struct txn_ops *ops = x->ctx->ops;
    void *ud = x->ctx->ud;
    struct txn_result *r = x->r;
    char e[512];

    rollback_begin(x);
    log_debug("rolling back the restore after %s failed", txn_step_name(r->failed_step));

    /* "As before" for a restore is: the domain not running, the bundle untouched. */
    if (x->d.restored) {
        enum txn_vm_state s = TXN_VM_UNKNOWN;
        if (ops->vm_state(ud, &s) < 0)
            s = TXN_VM_UNKNOWN;
        if (s != TXN_VM_OFF && s != TXN_VM_ABSENT) {
            e[0] = 0;
            int q = ops->destroy(ud, e, sizeof(e));
            if (q < 0)
                append_listf(r->rollback_errors, sizeof(r->rollback_errors),
                             "could not stop the half-restored domain: %s",
                             e[0] ? e : strerror(-q));
        }
    }
    rollback_lift_gate(x);
    rollback_end(x);
    if (r->rollback_errors[0]) {
        r->gate_left = true;
        return r->outcome = TXN_ROLLBACK_FAILED;
    }
    return r->outcome = r->interrupted ? TXN_INTERRUPTED : TXN_ROLLED_BACK;
}

/* Is restoring this bundle a rollback? The history decides when the implementation keeps
 * one; otherwise a --continue bundle is one (its domain ran on after it). */
static void decide_rollback(struct run *x, bool vm_active)
{
    struct txn_rollback *rb = &x->r->rollback;
    const struct txn_ops *ops = x->ctx->ops;
    memset(rb, 0, sizeof(*rb));
    if (ops->rollback_decide) {
        ops->rollback_decide(x->ctx->ud, &x->r->m, vm_active, rb);
    } else {
        rb->detected = x->r->m.mode == MANIFEST_MODE_CONTINUE || vm_active;
        snprintf(rb->reason, sizeof(rb->reason), "%s",
                 rb->detected ? "the bundle was made with --continue, or the domain runs"
                              : "a stop-mode bundle");
    }
    rb->checked = true;
}

static bool refusal_errno(int q)
{
    return q == -EINVAL || q == -ENOENT || q == -EFBIG || q == -EBADMSG;
}

enum txn_outcome txn_restore(struct txn_ctx *ctx, const struct txn_restore_opts *o,
                             struct txn_result *r)
{
    const struct txn_ops *ops = ctx->ops;
    void *ud = ctx->ud;
    struct run x = {.ctx = ctx, .r = r};
    x.replay_on = !o->no_replay && ctx->ops->replay;
    struct txn_domain dom = {0};
    struct journal_entry je;
    int q;

    init_result(r);
    snprintf(r->bundle_path, sizeof(r->bundle_path), "%s", o->bundle);
    r->replay.enabled = x.replay_on;

    begin(&x, TXN_STEP_OPEN);
    q = ops->bundle_open(ud, o->bundle, o->image_override, &r->m, &r->image, x.err, sizeof(x.err));
    if (q < 0) {
        if (q == -ENXIO)
            fail(&x, q, "%s", why(&x, q));
        else
            fail(&x, q, "bundle %s refused: %s", o->bundle, why(&x, q));
        r->outcome = refusal_errno(q) ? TXN_REFUSED : TXN_FAILED;
        goto out;
    }
    r->bundle_committed = true;
    x.domain = r->m.domain_name;
    r->m.n_steps = 0; /* from here on the steps are the restore's own (the bundle keeps its) */
    end(&x);

    begin(&x, TXN_STEP_DISCOVER);
    q = ops->discover(ud, x.domain, &dom, x.err, sizeof(x.err));
    if (q == -ENOENT) {
        dom.state = TXN_VM_ABSENT;
    } else if (q < 0) {
        fail(&x, q, "%s", why(&x, q));
        r->outcome = TXN_FAILED;
        goto out;
    }
    free(dom.xml);
    dom.xml = NULL;
    r->vm_before = dom.state;
    decide_rollback(&x, dom.state == TXN_VM_RUNNING || dom.state == TXN_VM_PAUSED);
    if (dom.state == TXN_VM_RUNNING || dom.state == TXN_VM_PAUSED) {
        fail(&x, -EBUSY, "domain %s is %s; stop it (virsh destroy or shutdown) before restoring",
             x.domain, txn_vm_state_name(dom.state));
        r->outcome = TXN_FAILED;
        goto out;
    }
    q = ops->journal_check(ud, x.domain);
    if (q == -EBUSY) {
        fail(&x, q, "another netckpt process is working on domain %s", x.domain);
        r->outcome = TXN_BUSY;
        goto out;
    } else if (q < 0) {
        fail(&x, q,
             "domain %s has a journal entry left by a dead process; run 'netckpt unblock %s'",
             x.domain, x.domain);
        r->outcome = TXN_FAILED;
        goto out;
    }
    end(&x);
    if (check_cancel(&x)) {
        r->outcome = TXN_INTERRUPTED;
        goto out;
    }

    begin(&x, TXN_STEP_JOURNAL);
    fill_journal(&x, &je, x.domain, r->m.domain_uuid, (const char(*)[16])r->m.taps, r->m.n_taps,
                 false);
    snprintf(je.step, sizeof(je.step), "restoring");
    q = ops->journal_write(ud, &je);
    if (q < 0) {
        fail(&x, q, "cannot write the journal: %s", strerror(-q));
        r->outcome = TXN_FAILED;
        goto out;
    }
    x.d.journaled = true;
    end(&x);

    /* Gate the recorded taps that exist already (taps made beforehand, managed='no'), so
     * nothing queues up for the guest while QEMU starts. Taps libvirt creates only exist
     * after the restore; the live gate below covers them. */
    begin(&x, TXN_STEP_GATE);
    if (r->m.n_taps > 0) {
        const char *taps[TXN_MAX_TAPS];
        taps_ptrs((const char(*)[16])r->m.taps, r->m.n_taps, taps);
        block_signals(&x);
        x.d.gate_tried = true;
        q = ops->gate_install(ud, x.domain, taps, r->m.n_taps, x.err, sizeof(x.err));
        unblock_signals(&x);
        if (q == -ENODEV) {
            log_debug("restore: taps of %s do not exist yet; gating after the restore", x.domain);
        } else if (q < 0) {
            fail(&x, q, "gate install failed: %s", why(&x, q));
            goto rollback;
        }
    }
    end(&x);
    if (check_cancel(&x))
        goto rollback;

    begin(&x, TXN_STEP_RESTORE);
    block_signals(&x);
    x.d.restored = true; /* even a failed restore may leave a domain behind */
    q = ops->restore_bundle(ud, x.err, sizeof(x.err));
    unblock_signals(&x);
    if (q < 0) {
        fail(&x, q, "%s", why(&x, q)); /* the step is named "restore" already */
        goto rollback;
    }
    q = ops->discover(ud, x.domain, &dom, x.err, sizeof(x.err));
    free(dom.xml);
    dom.xml = NULL;
    if (q < 0) {
        fail(&x, q, "the restored domain cannot be read: %s", why(&x, q));
        goto rollback;
    }
    if (dom.n_taps == 0 || dom.n_taps > TXN_MAX_TAPS) {
        fail(&x, -ENODEV, "the restored domain has %zu tap devices", dom.n_taps);
        goto rollback;
    }
    if ((q = step_gate_install(&x, &dom, "gate install on the restored taps")) < 0)
        goto rollback;
    replay(&x, TXN_REPLAY_BEGIN, NULL);
    end(&x);
    if (check_cancel(&x))
        goto rollback;

    /* Resume with the gate up: the guest's sockets are still in repair mode, and the agent
     * must run to answer guest-net-verify. */
    if (step_resume(&x) < 0)
        goto rollback;
    if (check_cancel(&x))
        goto rollback;

    begin(&x, TXN_STEP_VERIFY);
    q = ops->agent_verify(ud, r->image, &r->verify_diff, x.err, sizeof(x.err));
    if (q < 0) {
        fail(&x, q, "guest-net-verify failed: %s", why(&x, q));
        goto rollback;
    }
    if (q == 0) {
        /* Refuse: the mismatched state must not reach the network. Keep it paused and gated;
         * drop the journal entry so that no recovery lifts this gate behind the user's back.
         * `netckpt unblock` releases it. */
        fail(&x, -EPROTO,
             "the live sockets of %s do not match the bundle's socket image; "
             "the VM is left paused and gated ('netckpt unblock %s' releases it)",
             x.domain, x.domain);
        block_signals(&x);
        char e[512] = "";
        int s = ops->suspend(ud, e, sizeof(e));
        if (s < 0)
            warn(&x, "could not pause the VM again: %s", e[0] ? e : strerror(-s));
        ops->journal_remove(ud, x.domain);
        unblock_signals(&x);
        r->gate_left = true;
        r->outcome = TXN_REFUSED;
        goto out_state;
    }
    end(&x);
    if (check_cancel(&x))
        goto rollback;

    if (o->leave_paused) {
        block_signals(&x);
        char e[512] = "";
        q = ops->suspend(ud, e, sizeof(e));
        if (q < 0) {
            snprintf(x.err, sizeof(x.err), "%s", e);
            fail(&x, q, "pausing after verify failed: %s", why(&x, q));
            unblock_signals(&x);
            goto rollback;
        }
        ops->journal_remove(ud, x.domain);
        unblock_signals(&x);
        r->gate_left = true;
        r->outcome = TXN_OK;
        goto out_state;
    }

    if (step_lift(&x) < 0)
        goto rollback;

    /* Past the lift the restore is committed forward: the VM runs with an open network. A
     * thaw failure leaves the agent's watchdog to thaw; we say so, we do not destroy. */
    begin(&x, TXN_STEP_THAW);
    /* A rollback with --stale=auto resets every connection of the image right after the thaw;
     * it thaws without the window probe (docs/rollback.md). --no-kick asks for the same thaw
     * (bench/resume measures netckpt without replay and kick). */
    bool reset_all = r->rollback.detected && o->reset_stale;
    int (*thaw)(void *, uint64_t, json_object **, char *, size_t) =
        (reset_all || o->no_kick) && ops->agent_thaw_quiet ? ops->agent_thaw_quiet
                                                           : ops->agent_thaw;
    q = thaw(ud, o->keep_clock ? 0 : ops->clock(ud, true), &r->thaw_reply, x.err, sizeof(x.err));
    if (q < 0) {
        char first[512];
        snprintf(first, sizeof(first), "%s", why(&x, q));
        x.err[0] = 0;
        q = thaw(ud, o->keep_clock ? 0 : ops->clock(ud, true), &r->thaw_reply, x.err,
                 sizeof(x.err));
        if (q < 0) {
            fail(&x, q,
                 "guest-net-thaw failed: %s; the VM runs with its network open and the "
                 "agent's watchdog thaws its sockets",
                 first);
            ops->journal_remove(ud, x.domain);
            r->outcome = TXN_FAILED;
            goto out_state;
        }
    }
    /* On a rollback the peers are ahead of the image: their held frames would only meet
     * connections about to be reset. */
    if (reset_all) {
        r->replay.skipped = x.replay_on;
        if (ops->reset_image) {
            q = ops->reset_image(ud, r->image, &r->rollback.n_reset, &r->rollback.probes, x.err,
                                 sizeof(x.err));
            if (q < 0)
                warn(&x, "resetting the rolled-back connections failed: %s", why(&x, q));
            else
                r->rollback.reset = true;
        }
    } else {
        replay(&x, TXN_REPLAY_SEND, r->image);
    }
    end(&x);

    finish_ok(&x, o->reset_stale && !r->rollback.reset);
    goto out_state;

rollback:
    restore_rollback(&x);
    goto out;
out_state:
    /* The domain exists now and runs (or will run, once unblocked) on from this bundle. */
    if (ops->history_record)
        ops->history_record(ud, TXN_HISTORY_RESTORED, &r->m);
    if (ops->vm_state(ud, &r->vm_after) < 0)
        r->vm_after = TXN_VM_UNKNOWN;
out:
    replay(&x, TXN_REPLAY_CLOSE, NULL);
    if (r->outcome == TXN_OK)
        r->failed_step = TXN_STEP_NONE;
    free(dom.xml);
    return r->outcome;
}
