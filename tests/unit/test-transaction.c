/* Unit tests of host/transaction: the checkpoint and restore state machines over a fake
 * txn_ops that models the world (VM state, gate, agent, journal, bundle) and fails, or raises
 * the cancel flag, at any chosen call. Each fault is checked against the invariant: no gate
 * left, agent thawed, VM as before, journal removed, no partial bundle taken for complete. */
#include <errno.h>
#include <setjmp.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "host/transaction.h"

enum bstate { B_NONE, B_PARTIAL, B_COMMITTED };

struct fake {
    /* the world */
    enum txn_vm_state vm;
    bool gate, frozen, journal, taps_exist;
    enum bstate bundle;
    bool saved; /* a VM state exists (partial or committed bundle, or snapshot) */
    bool verify_mismatch;
    /* injection: fail (or raise cancel during) the Nth op call, counting from 0 */
    int fail_at, signal_at;
    int fail_errno;
    int calls;
    volatile sig_atomic_t cancel;
    /* save failing leaves the VM in this state (libvirt resumes on failure, normally) */
    enum txn_vm_state vm_after_failed_save;
    /* a second, independent fault: this op always fails (rollback faults) */
    const char *always_fail;
    char trace[8192];
    uint64_t clock;
    /* replay: the phase that fails (-1: none), and what the fake saw */
    int replay_fail;
    bool replay_capturing, replay_closed_last;
    bool bundle_continue; /* bundle_open: a --continue bundle (a rollback on restore) */
    /* rollback safety: rollback_decide's verdict, and what agent_report was asked */
    bool rollback_verdict, report_reset_stale;
};

static int hit(struct fake *f, const char *op)
{
    int n = f->calls++;
    size_t l = strlen(f->trace);
    snprintf(f->trace + l, sizeof(f->trace) - l, "%s%s", l ? " " : "", op);
    if (n == f->signal_at)
        f->cancel = 1;
    if (f->always_fail && !strcmp(f->always_fail, op))
        return -EIO;
    if (n == f->fail_at)
        return f->fail_errno;
    return 0;
}

#define F ((struct fake *)ud)

static int f_discover(void *ud, const char *domain, struct txn_domain *out, char *err,
                      size_t errlen)
{
    int r = hit(F, "discover");
    if (r)
        return r;
    if (F->vm == TXN_VM_ABSENT)
        return -ENOENT;
    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "%s", domain);
    snprintf(out->uuid, sizeof(out->uuid), "0b2c3d4e-0000-4000-8000-000000000001");
    snprintf(out->taps[0], sizeof(out->taps[0]), "nctap0");
    snprintf(out->taps[1], sizeof(out->taps[1]), "nctap1");
    out->n_taps = 2;
    out->state = F->vm;
    out->xml = strdup("<domain/>");
    return 0;
}

static int f_vm_state(void *ud, enum txn_vm_state *out)
{
    *out = F->vm; /* a query, not an effect: never fails, not traced */
    return 0;
}

static int f_gate_install(void *ud, const char *domain, const char *const *taps, size_t n,
                          char *err, size_t errlen)
{
    int r = hit(F, "gate_install");
    if (r)
        return r;
    if (!F->taps_exist && F->vm != TXN_VM_PAUSED && F->vm != TXN_VM_RUNNING)
        return -ENODEV;
    F->gate = true;
    return 0;
}

static int f_gate_lift(void *ud, const char *domain, char *err, size_t errlen)
{
    int r = hit(F, "gate_lift");
    if (r)
        return r;
    F->gate = false;
    return 0;
}

static int f_gate_counters(void *ud, const char *domain, struct gate_counters *c)
{
    int r = hit(F, "gate_counters");
    if (r)
        return r;
    c->to_guest_pkts = 3;
    c->to_guest_bytes = 180;
    return 0;
}

/* The agent runs only in a running guest; otherwise calls time out. */
static int f_agent_freeze(void *ud, uint32_t watchdog_ms, json_object **image, char *err,
                          size_t errlen)
{
    int r = hit(F, "agent_freeze");
    if (F->vm != TXN_VM_RUNNING)
        return -ETIMEDOUT;
    if (r == -ETIMEDOUT)
        F->frozen = true; /* worst case: it froze after we stopped waiting */
    if (r)
        return r;
    F->frozen = true;
    *image = json_tokener_parse(
        "{\"image_id\":\"0123456789abcdef0123456789abcdef\",\"connections\":[{},{},{}]}");
    return 0;
}

static int f_agent_thaw(void *ud, uint64_t host_time_ns, json_object **reply, char *err,
                        size_t errlen)
{
    int r = hit(F, "agent_thaw");
    if (r)
        return r;
    if (F->vm != TXN_VM_RUNNING)
        return -ETIMEDOUT;
    F->frozen = false;
    if (reply)
        *reply = json_object_new_object();
    return 0;
}

static int f_agent_verify(void *ud, json_object *image, json_object **diff, char *err,
                          size_t errlen)
{
    int r = hit(F, "agent_verify");
    if (r)
        return r;
    if (F->vm != TXN_VM_RUNNING)
        return -ETIMEDOUT;
    if (F->verify_mismatch) {
        *diff = json_object_new_array();
        return 0;
    }
    return 1;
}

static int f_agent_report(void *ud, json_object *image, json_object *thaw, bool reset_stale,
                          json_object **report, char *err, size_t errlen)
{
    int r = hit(F, "agent_report");
    if (r)
        return r;
    *report = json_object_new_object();
    return 0;
}

static int f_save(void *ud, bool snapshot, bool halt, txn_progress_fn progress, void *pud,
                  char *err, size_t errlen)
{
    int r = hit(F, "save");
    if (r) {
        F->vm = F->vm_after_failed_save;
        return r;
    }
    if (progress)
        progress(pud, 50, 100);
    F->saved = true;
    if (halt || !snapshot)
        F->vm = snapshot ? TXN_VM_OFF : TXN_VM_ABSENT;
    return 0;
}

static int f_restore_saved(void *ud, char *err, size_t errlen)
{
    int r = hit(F, "restore_saved");
    if (r)
        return r;
    if (!F->saved)
        return -ENOENT;
    F->vm = TXN_VM_PAUSED;
    return 0;
}

static int f_restore_bundle(void *ud, char *err, size_t errlen)
{
    int r = hit(F, "restore_bundle");
    if (r)
        return r;
    F->vm = TXN_VM_PAUSED;
    F->frozen = true; /* the saved guest had its sockets in repair mode */
    return 0;
}

/* resume and suspend: a traced op that is only legal from one VM state. */
static int vm_move(struct fake *f, const char *op, enum txn_vm_state from, enum txn_vm_state to)
{
    int r = hit(f, op);
    if (r)
        return r;
    if (f->vm != from)
        return -EINVAL;
    f->vm = to;
    return 0;
}

static int f_resume(void *ud, char *err, size_t errlen)
{
    return vm_move(F, "resume", TXN_VM_PAUSED, TXN_VM_RUNNING);
}

static int f_suspend(void *ud, char *err, size_t errlen)
{
    return vm_move(F, "suspend", TXN_VM_RUNNING, TXN_VM_PAUSED);
}

static int f_destroy(void *ud, char *err, size_t errlen)
{
    int r = hit(F, "destroy");
    if (r)
        return r;
    F->vm = TXN_VM_ABSENT;
    F->frozen = false; /* the guest is gone */
    return 0;
}

static int f_bundle_begin(void *ud, const char *path, char *tmp, size_t tmplen, char *err,
                          size_t errlen)
{
    int r = hit(F, "bundle_begin");
    if (r)
        return r;
    snprintf(tmp, tmplen, "/tmp/.b.partial");
    F->bundle = B_PARTIAL;
    return 0;
}

static int f_bundle_add(void *ud, const char *name, const void *buf, size_t len, char *err,
                        size_t errlen)
{
    return hit(F, "bundle_add");
}

static int f_bundle_commit(void *ud, struct manifest *m, char *err, size_t errlen)
{
    int r = hit(F, "bundle_commit");
    if (r)
        return r; /* stays partial: rollback must abort it */
    F->bundle = B_COMMITTED;
    return 0;
}

static void f_bundle_abort(void *ud)
{
    hit(F, "bundle_abort");
    if (F->bundle == B_PARTIAL) {
        F->bundle = B_NONE;
        F->saved = false;
    }
}

static int f_bundle_open(void *ud, const char *path, const char *override, struct manifest *m,
                         json_object **image, char *err, size_t errlen)
{
    int r = hit(F, "bundle_open");
    if (r)
        return r;
    memset(m, 0, sizeof(*m));
    snprintf(m->domain_name, sizeof(m->domain_name), "vm1");
    snprintf(m->taps[0], sizeof(m->taps[0]), "nctap0");
    m->n_taps = 1;
    if (F->bundle_continue)
        m->mode = MANIFEST_MODE_CONTINUE;
    *image = json_object_new_object();
    return 0;
}

static int f_journal_check(void *ud, const char *domain)
{
    return hit(F, "journal_check");
}

static int f_journal_write(void *ud, const struct journal_entry *e)
{
    int r = hit(F, "journal_write");
    if (r)
        return r;
    assert_true(e->pid > 0);
    F->journal = true;
    return 0;
}

static int f_journal_remove(void *ud, const char *domain)
{
    int r = hit(F, "journal_remove");
    if (r)
        return r;
    F->journal = false;
    return 0;
}

static uint64_t f_clock(void *ud, bool realtime)
{
    return F->clock += 1000;
}

static const struct txn_ops fake_ops = {
    .discover = f_discover,
    .vm_state = f_vm_state,
    .gate_install = f_gate_install,
    .gate_lift = f_gate_lift,
    .gate_counters = f_gate_counters,
    .agent_freeze = f_agent_freeze,
    .agent_thaw = f_agent_thaw,
    .agent_verify = f_agent_verify,
    .agent_report = f_agent_report,
    .save = f_save,
    .restore_saved = f_restore_saved,
    .restore_bundle = f_restore_bundle,
    .resume = f_resume,
    .suspend = f_suspend,
    .destroy = f_destroy,
    .bundle_begin = f_bundle_begin,
    .bundle_add = f_bundle_add,
    .bundle_commit = f_bundle_commit,
    .bundle_abort = f_bundle_abort,
    .bundle_open = f_bundle_open,
    .journal_check = f_journal_check,
    .journal_write = f_journal_write,
    .journal_remove = f_journal_remove,
    .clock = f_clock,
};

static void fake_init(struct fake *f, enum txn_vm_state vm)
{
    memset(f, 0, sizeof(*f));
    f->vm = vm;
    f->fail_at = -1;
    f->signal_at = -1;
    f->fail_errno = -EIO;
    f->taps_exist = true;
    f->vm_after_failed_save = TXN_VM_RUNNING;
    f->replay_fail = -1;
}

static enum txn_outcome run_checkpoint(struct fake *f, bool cont, bool snap, struct txn_result *r)
{
    struct txn_ctx ctx = {.ops = &fake_ops, .ud = f, .cancel = &f->cancel, .pid = 4242};
    struct txn_checkpoint_opts o = {.domain = "vm1",
                                    .dir = "/tmp/b",
                                    .continue_running = cont,
                                    .snapshot = snap,
                                    .watchdog_ms = 30000};
    return txn_checkpoint(&ctx, &o, r);
}

/* Which ops' failures are only warnings (the transaction still succeeds). */
static bool nonfatal(const char *op, int nth_write, bool last_remove)
{
    return !strcmp(op, "gate_counters") || !strcmp(op, "agent_report") ||
           (!strcmp(op, "journal_write") && nth_write > 0) ||
           (!strcmp(op, "journal_remove") && last_remove);
}

/* The nth op name in a trace. */
static void trace_op(const char *trace, int n, char *out, size_t len)
{
    const char *p = trace;
    for (int i = 0; i < n; i++) {
        p = strchr(p, ' ');
        assert_non_null(p);
        p++;
    }
    size_t l = strcspn(p, " ");
    snprintf(out, len, "%.*s", (int)(l < len ? l : len - 1), p);
}

static int count_ops(const char *trace)
{
    int n = *trace ? 1 : 0;
    for (const char *p = trace; *p; p++)
        n += *p == ' ';
    return n;
}

static int count_before(const char *trace, int n, const char *op)
{
    int c = 0;
    char name[64];
    for (int i = 0; i < n; i++) {
        trace_op(trace, i, name, sizeof(name));
        c += !strcmp(name, op);
    }
    return c;
}

static void assert_checkpoint_rolled_back(const struct fake *f, const struct txn_result *r,
                                          const char *what)
{
    if (f->gate || f->frozen || f->vm != TXN_VM_RUNNING || f->journal || f->bundle == B_PARTIAL) {
        fail_msg("%s: invariant broken: outcome=%s gate=%d frozen=%d vm=%s journal=%d bundle=%d "
                 "msg='%s' rollback='%s' trace: %s",
                 what, txn_outcome_name(r->outcome), f->gate, f->frozen, txn_vm_state_name(f->vm),
                 f->journal, f->bundle, r->message, r->rollback_errors, f->trace);
    }
    assert_false(r->gate_left);
}

static void checkpoint_success(bool cont, bool snap)
{
    struct fake f;
    struct txn_result r;
    fake_init(&f, TXN_VM_RUNNING);
    assert_int_equal(run_checkpoint(&f, cont, snap, &r), TXN_OK);
    assert_int_equal(f.bundle, B_COMMITTED);
    assert_false(f.gate);
    assert_false(f.journal);
    if (cont) {
        assert_int_equal(f.vm, TXN_VM_RUNNING);
        assert_false(f.frozen);
        assert_non_null(r.report);
    } else {
        assert_true(f.vm == TXN_VM_ABSENT || f.vm == TXN_VM_OFF);
        assert_true(f.frozen); /* frozen inside the saved state, as it must be */
    }
    assert_string_equal(r.m.image_id, "0123456789abcdef0123456789abcdef");
    assert_int_equal(r.m.n_connections, 3);
    assert_int_equal(r.m.counters.to_guest_pkts, 3);
    assert_int_equal(r.m.n_taps, 2);
    assert_true(r.m.n_steps >= 5);
    assert_string_equal(r.m.steps[0].name, "discover");
    txn_result_done(&r);
}

static void test_checkpoint_ok_stop(void **state)
{
    checkpoint_success(false, false);
}
static void test_checkpoint_ok_continue(void **state)
{
    checkpoint_success(true, false);
}
static void test_checkpoint_ok_snapshot(void **state)
{
    checkpoint_success(false, true);
    checkpoint_success(true, true);
}

/* Inject errno at every op call of a successful run, in turn. */
static void checkpoint_fault_everywhere(bool cont, bool snap, int err)
{
    struct fake f;
    struct txn_result r;
    fake_init(&f, TXN_VM_RUNNING);
    assert_int_equal(run_checkpoint(&f, cont, snap, &r), TXN_OK);
    txn_result_done(&r);
    char trace[8192];
    snprintf(trace, sizeof(trace), "%s", f.trace);
    int n = count_ops(trace);
    assert_true(n > 10);

    for (int i = 0; i < n; i++) {
        char op[64], what[160];
        trace_op(trace, i, op, sizeof(op));
        snprintf(what, sizeof(what), "%s %s: fail call %d (%s) with %d", cont ? "continue" : "stop",
                 snap ? "snapshot" : "save", i, op, err);
        fake_init(&f, TXN_VM_RUNNING);
        f.fail_at = i;
        f.fail_errno = err;
        enum txn_outcome o = run_checkpoint(&f, cont, snap, &r);
        bool last_remove = !strcmp(op, "journal_remove") && i == n - 1;
        if (!strcmp(op, "bundle_abort")) {
            /* void op: the injection has no effect */
            txn_result_done(&r);
            continue;
        }
        if (nonfatal(op, count_before(trace, i, "journal_write"), last_remove)) {
            if (o != TXN_OK)
                fail_msg("%s: a non-fatal fault failed the transaction: %s (%s)", what,
                         txn_outcome_name(o), r.message);
            assert_true(r.warnings[0] != 0);
            txn_result_done(&r);
            continue;
        }
        if (!strcmp(op, "gate_lift") && !cont) {
            /* stop mode, after the commit: the checkpoint is complete, the gate is not
             * lifted, the journal keeps it for unblock. */
            assert_int_equal(o, TXN_ROLLBACK_FAILED);
            assert_true(f.gate && f.journal && f.bundle == B_COMMITTED && r.gate_left);
            txn_result_done(&r);
            continue;
        }
        if (o == TXN_OK)
            fail_msg("%s: succeeded despite the fault; trace %s", what, f.trace);
        if (o == TXN_ROLLBACK_FAILED)
            fail_msg("%s: rollback failed: %s; trace %s", what, r.rollback_errors, f.trace);
        assert_true(o == TXN_FAILED || o == TXN_ROLLED_BACK || o == TXN_BUSY);
        assert_true(r.failed_step != TXN_STEP_NONE);
        assert_true(r.message[0] != 0);
        assert_checkpoint_rolled_back(&f, &r, what);
        /* Before the gate nothing needed undoing. */
        if (o == TXN_FAILED)
            assert_false(r.rolled_back);
        /* A committed bundle may remain only when the failure came after the commit (it is
         * a complete, valid checkpoint then). */
        if (f.bundle == B_COMMITTED)
            assert_true(cont && r.bundle_committed);
        txn_result_done(&r);
    }
}

static void test_checkpoint_fault_each_step(void **state)
{
    checkpoint_fault_everywhere(false, false, -EIO);
    checkpoint_fault_everywhere(true, false, -EIO);
    checkpoint_fault_everywhere(false, true, -EIO);
    checkpoint_fault_everywhere(true, true, -EIO);
}

static void test_checkpoint_agent_timeout_and_error(void **state)
{
    checkpoint_fault_everywhere(false, false, -ETIMEDOUT);
    checkpoint_fault_everywhere(false, false, -EREMOTEIO);
    checkpoint_fault_everywhere(true, false, -ETIMEDOUT);
}

static void test_checkpoint_disk_full(void **state)
{
    checkpoint_fault_everywhere(false, false, -ENOSPC);
    checkpoint_fault_everywhere(true, false, -ENOSPC);

    /* Disk full exactly at commit in stop mode: the VM is saved and off; rollback must bring
     * it back from the saved state before the partial bundle goes. */
    struct fake f;
    struct txn_result r;
    fake_init(&f, TXN_VM_RUNNING);
    assert_int_equal(run_checkpoint(&f, false, false, &r), TXN_OK);
    txn_result_done(&r);
    char *p = strstr(f.trace, "bundle_commit");
    assert_non_null(p);
    int at = count_ops(f.trace) - count_ops(p);
    fake_init(&f, TXN_VM_RUNNING);
    f.fail_at = at;
    f.fail_errno = -ENOSPC;
    assert_int_equal(run_checkpoint(&f, false, false, &r), TXN_ROLLED_BACK);
    assert_int_equal(r.failed_step, TXN_STEP_COMMIT);
    assert_int_equal(r.error, -ENOSPC);
    assert_non_null(strstr(f.trace, "restore_saved resume gate_lift agent_thaw bundle_abort"));
    assert_checkpoint_rolled_back(&f, &r, "enospc at commit");
    assert_false(r.bundle_committed);
    txn_result_done(&r);
}

static void test_checkpoint_save_failure_states(void **state)
{
    /* libvirt may leave the VM paused, or (worst case) off after a failed save. */
    enum txn_vm_state after[] = {TXN_VM_RUNNING, TXN_VM_PAUSED};
    for (size_t k = 0; k < 2; k++) {
        struct fake f;
        struct txn_result r;
        fake_init(&f, TXN_VM_RUNNING);
        assert_int_equal(run_checkpoint(&f, false, false, &r), TXN_OK);
        txn_result_done(&r);
        int at = count_ops(f.trace) - count_ops(strstr(f.trace, "save"));
        fake_init(&f, TXN_VM_RUNNING);
        f.fail_at = at;
        f.vm_after_failed_save = after[k];
        assert_int_equal(run_checkpoint(&f, false, false, &r), TXN_ROLLED_BACK);
        assert_int_equal(r.failed_step, TXN_STEP_SAVE);
        assert_checkpoint_rolled_back(&f, &r, "save failure");
        txn_result_done(&r);
    }
    /* Off with nothing saved: rollback cannot bring it back and must say so. */
    struct fake f;
    struct txn_result r;
    fake_init(&f, TXN_VM_RUNNING);
    assert_int_equal(run_checkpoint(&f, false, false, &r), TXN_OK);
    txn_result_done(&r);
    int at = count_ops(f.trace) - count_ops(strstr(f.trace, "save"));
    fake_init(&f, TXN_VM_RUNNING);
    f.fail_at = at;
    f.vm_after_failed_save = TXN_VM_ABSENT;
    assert_int_equal(run_checkpoint(&f, false, false, &r), TXN_ROLLBACK_FAILED);
    assert_true(r.rollback_errors[0] != 0);
    assert_false(f.gate);                  /* the gate is still lifted */
    assert_true(f.journal);                /* kept for unblock */
    assert_int_equal(f.bundle, B_PARTIAL); /* might hold the only copy: kept */
    txn_result_done(&r);
}

static void test_checkpoint_signal_each_step(void **state)
{
    for (int mode = 0; mode < 2; mode++) {
        bool cont = mode == 1;
        struct fake f;
        struct txn_result r;
        fake_init(&f, TXN_VM_RUNNING);
        assert_int_equal(run_checkpoint(&f, cont, false, &r), TXN_OK);
        txn_result_done(&r);
        int n = count_ops(f.trace);
        char trace[8192];
        snprintf(trace, sizeof(trace), "%s", f.trace);
        for (int i = 0; i < n; i++) {
            char op[64], what[128];
            trace_op(trace, i, op, sizeof(op));
            snprintf(what, sizeof(what), "%s: signal during call %d (%s)",
                     cont ? "continue" : "stop", i, op);
            fake_init(&f, TXN_VM_RUNNING);
            f.signal_at = i;
            enum txn_outcome o = run_checkpoint(&f, cont, false, &r);
            if (o == TXN_OK) {
                /* Only once the outcome is decided: stop mode after commit, continue mode
                 * after the lift. */
                /* (the journal update just before the commit belongs to the commit step) */
                int commit_at = n - count_ops(strstr(trace, "bundle_commit"));
                if (i < commit_at - 1)
                    fail_msg("%s: completed despite the signal", what);
                assert_false(f.gate);
                assert_false(f.journal);
                txn_result_done(&r);
                continue;
            }
            if (o != TXN_INTERRUPTED)
                fail_msg("%s: outcome %s (%s; rollback: %s)", what, txn_outcome_name(o), r.message,
                         r.rollback_errors);
            assert_true(r.interrupted);
            assert_checkpoint_rolled_back(&f, &r, what);
            txn_result_done(&r);
        }
    }
}

static void test_checkpoint_rollback_fault(void **state)
{
    /* The freeze fails and then the gate lift in the rollback fails too: the outcome says
     * so, the journal stays so that unblock or the next start can lift the gate. */
    struct fake f;
    struct txn_result r;
    fake_init(&f, TXN_VM_RUNNING);
    assert_int_equal(run_checkpoint(&f, false, false, &r), TXN_OK);
    txn_result_done(&r);
    int at = count_ops(f.trace) - count_ops(strstr(f.trace, "agent_freeze"));
    fake_init(&f, TXN_VM_RUNNING);
    f.fail_at = at;
    f.always_fail = "gate_lift";
    assert_int_equal(run_checkpoint(&f, false, false, &r), TXN_ROLLBACK_FAILED);
    assert_true(f.gate);
    assert_true(f.journal);
    assert_true(r.gate_left);
    assert_non_null(strstr(r.rollback_errors, "gate lift"));
    assert_int_equal(f.vm, TXN_VM_RUNNING);
    txn_result_done(&r);
}

static void test_checkpoint_continue_mismatch(void **state)
{
    /* The VM resumed from the state just saved does not match the image: roll back, and the
     * (complete) bundle stays for inspection. */
    struct fake f;
    struct txn_result r;
    fake_init(&f, TXN_VM_RUNNING);
    f.verify_mismatch = true;
    assert_int_equal(run_checkpoint(&f, true, false, &r), TXN_ROLLED_BACK);
    assert_int_equal(r.failed_step, TXN_STEP_VERIFY);
    assert_checkpoint_rolled_back(&f, &r, "continue mismatch");
    assert_int_equal(f.bundle, B_COMMITTED);
    txn_result_done(&r);
}

static void test_checkpoint_refusals(void **state)
{
    struct fake f;
    struct txn_result r;
    /* not running */
    fake_init(&f, TXN_VM_PAUSED);
    assert_int_equal(run_checkpoint(&f, false, false, &r), TXN_FAILED);
    assert_int_equal(r.failed_step, TXN_STEP_DISCOVER);
    assert_false(f.journal || f.gate || f.bundle);
    txn_result_done(&r);
    /* busy */
    fake_init(&f, TXN_VM_RUNNING);
    f.always_fail = NULL;
    f.fail_at = 1; /* journal_check */
    f.fail_errno = -EBUSY;
    assert_int_equal(run_checkpoint(&f, false, false, &r), TXN_BUSY);
    assert_false(f.journal || f.gate || f.bundle);
    txn_result_done(&r);
}

/* ---- restore ---- */

static enum txn_outcome run_restore(struct fake *f, bool paused, struct txn_result *r)
{
    struct txn_ctx ctx = {.ops = &fake_ops, .ud = f, .cancel = &f->cancel, .pid = 4242};
    struct txn_restore_opts o = {.bundle = "/tmp/b", .leave_paused = paused};
    return txn_restore(&ctx, &o, r);
}

static void test_restore_ok(void **state)
{
    for (int te = 0; te < 2; te++) {
        struct fake f;
        struct txn_result r;
        fake_init(&f, TXN_VM_ABSENT);
        f.taps_exist = te;
        assert_int_equal(run_restore(&f, false, &r), TXN_OK);
        assert_int_equal(f.vm, TXN_VM_RUNNING);
        assert_false(f.gate || f.frozen || f.journal);
        assert_non_null(r.report);
        /* verify ran with the VM running and the gate up, before the lift and the thaw */
        assert_non_null(strstr(f.trace, "resume agent_verify gate_lift agent_thaw"));
        txn_result_done(&r);
    }
}

static void test_restore_mismatch_refused(void **state)
{
    struct fake f;
    struct txn_result r;
    fake_init(&f, TXN_VM_ABSENT);
    f.verify_mismatch = true;
    assert_int_equal(run_restore(&f, false, &r), TXN_REFUSED);
    assert_int_equal(r.failed_step, TXN_STEP_VERIFY);
    assert_int_equal(f.vm, TXN_VM_PAUSED);
    assert_true(f.gate);     /* the mismatched state never reaches the network */
    assert_true(f.frozen);   /* sockets still in repair */
    assert_false(f.journal); /* so no recovery lifts the gate behind the user's back */
    assert_true(r.gate_left);
    assert_non_null(strstr(r.message, "unblock"));
    txn_result_done(&r);
}

static void test_restore_paused(void **state)
{
    struct fake f;
    struct txn_result r;
    fake_init(&f, TXN_VM_ABSENT);
    assert_int_equal(run_restore(&f, true, &r), TXN_OK);
    assert_int_equal(f.vm, TXN_VM_PAUSED);
    assert_true(f.gate && f.frozen && r.gate_left);
    assert_false(f.journal);
    txn_result_done(&r);
}

static void test_restore_refusals(void **state)
{
    struct fake f;
    struct txn_result r;
    /* corrupt bundle */
    fake_init(&f, TXN_VM_ABSENT);
    f.fail_at = 0;
    f.fail_errno = -EINVAL;
    assert_int_equal(run_restore(&f, false, &r), TXN_REFUSED);
    assert_int_equal(r.failed_step, TXN_STEP_OPEN);
    assert_false(f.journal || f.gate);
    txn_result_done(&r);
    /* the domain runs */
    fake_init(&f, TXN_VM_RUNNING);
    assert_int_equal(run_restore(&f, false, &r), TXN_FAILED);
    assert_false(f.journal || f.gate);
    assert_int_equal(f.vm, TXN_VM_RUNNING);
    txn_result_done(&r);
}

static void restore_faults(int err, bool signal)
{
    struct fake f;
    struct txn_result r;
    fake_init(&f, TXN_VM_ABSENT);
    assert_int_equal(run_restore(&f, false, &r), TXN_OK);
    txn_result_done(&r);
    char trace[8192];
    snprintf(trace, sizeof(trace), "%s", f.trace);
    int n = count_ops(trace);
    int lift_at = n - count_ops(strstr(trace, "gate_lift"));
    for (int i = 0; i < n; i++) {
        char op[64], what[128];
        trace_op(trace, i, op, sizeof(op));
        snprintf(what, sizeof(what), "restore: %s at call %d (%s)", signal ? "signal" : "fault", i,
                 op);
        fake_init(&f, TXN_VM_ABSENT);
        if (signal)
            f.signal_at = i;
        else {
            f.fail_at = i;
            f.fail_errno = err;
        }
        enum txn_outcome o = run_restore(&f, false, &r);
        if (i > lift_at || (signal && i == lift_at)) {
            /* Past the lift the restore goes forward: VM running, network open. */
            assert_int_equal(f.vm, TXN_VM_RUNNING);
            assert_false(f.gate);
            if (!signal && !strcmp(op, "agent_thaw")) {
                /* the retry thaws */
                assert_int_equal(o, TXN_OK);
                assert_false(f.frozen);
            }
            txn_result_done(&r);
            continue;
        }
        if (o == TXN_OK)
            fail_msg("%s: succeeded", what);
        if (!signal && i == 0) {
            assert_int_equal(o, TXN_FAILED); /* -EIO opening the bundle: not a refusal */
        } else if (!(o == TXN_ROLLED_BACK || o == TXN_INTERRUPTED || o == TXN_FAILED))
            fail_msg("%s: outcome %s (%s / %s) trace %s", what, txn_outcome_name(o), r.message,
                     r.rollback_errors, f.trace);
        if (f.gate || f.journal || (f.vm != TXN_VM_ABSENT && f.vm != TXN_VM_OFF))
            fail_msg("%s: invariant broken gate=%d journal=%d vm=%s trace %s", what, f.gate,
                     f.journal, txn_vm_state_name(f.vm), f.trace);
        txn_result_done(&r);
    }
}

static void test_restore_fault_each_step(void **state)
{
    restore_faults(-EIO, false);
    restore_faults(-ETIMEDOUT, false);
}

static void test_restore_signal_each_step(void **state)
{
    restore_faults(0, true);
}

/* ---- held-traffic replay: only ever a warning ---- */

static int f_replay(void *ud, enum txn_replay_phase ph, json_object *image,
                    struct txn_replay_stats *st, char *err, size_t errlen)
{
    static const char *const names[] = {"replay_begin", "replay_stop", "replay_keep", "replay_send",
                                        "replay_close"};
    struct fake *f = F;
    (void)hit(f, names[ph]); /* traced only: the injected faults below are the replay's own */
    f->replay_closed_last = ph == TXN_REPLAY_CLOSE;
    switch (ph) {
    case TXN_REPLAY_BEGIN:
        assert_true(f->gate); /* capture only behind an installed gate */
        f->replay_capturing = true;
        break;
    case TXN_REPLAY_STOP:
        f->replay_capturing = false;
        break;
    case TXN_REPLAY_KEEP:
        assert_int_equal(f->bundle, B_PARTIAL); /* before the commit */
        assert_non_null(image);
        st->held += 7;
        break;
    case TXN_REPLAY_SEND:
        assert_false(f->gate || f->frozen); /* after the lift and the thaw */
        assert_false(f->replay_capturing);
        assert_non_null(image);
        st->held += 5;
        st->replayed += 5;
        break;
    case TXN_REPLAY_CLOSE:
        f->replay_capturing = false;
        break;
    }
    if ((int)ph == f->replay_fail) {
        snprintf(err, errlen, "injected replay fault");
        return -EIO;
    }
    return 0;
}

static enum txn_outcome run_replay(struct fake *f, int kind, bool no_replay, struct txn_result *r)
{
    struct txn_ops ops = fake_ops;
    ops.replay = f_replay;
    struct txn_ctx ctx = {.ops = &ops, .ud = f, .cancel = &f->cancel, .pid = 4242};
    if (kind == 2) {
        struct txn_restore_opts o = {.bundle = "/tmp/b", .no_replay = no_replay};
        return txn_restore(&ctx, &o, r);
    }
    struct txn_checkpoint_opts o = {.domain = "vm1",
                                    .dir = "/tmp/b",
                                    .continue_running = kind == 1,
                                    .watchdog_ms = 30000,
                                    .no_replay = no_replay};
    return txn_checkpoint(&ctx, &o, r);
}

static void test_replay_failure_is_warning(void **state)
{
    /* kind 0: stop-mode checkpoint, 1: continue, 2: restore */
    static const char *const want[] = {
        "gate_install journal_write replay_begin agent_freeze",
        "gate_lift replay_stop agent_thaw replay_send",
        "gate_lift replay_stop agent_thaw replay_send",
    };
    for (int kind = 0; kind < 3; kind++) {
        for (int ph = -1; ph <= TXN_REPLAY_CLOSE; ph++) {
            struct fake f;
            struct txn_result r;
            fake_init(&f, kind == 2 ? TXN_VM_ABSENT : TXN_VM_RUNNING);
            f.replay_fail = ph;
            assert_int_equal(run_replay(&f, kind, false, &r), TXN_OK);
            assert_true(r.replay.enabled);
            assert_false(f.gate || f.journal);
            assert_true(f.replay_closed_last);
            assert_false(f.replay_capturing);
            if (!strstr(f.trace, want[kind]))
                fprintf(stderr, "trace: %s\n", f.trace);
            assert_non_null(strstr(f.trace, want[kind]));
            if (kind == 0) {
                assert_non_null(
                    strstr(f.trace, "replay_stop replay_keep journal_write bundle_commit"));
                assert_null(strstr(f.trace, "replay_send"));
                assert_int_equal(r.replay.held, 7);
            } else {
                assert_int_equal(r.replay.replayed, 5);
                assert_int_equal(f.vm, TXN_VM_RUNNING);
            }
            bool called = ph >= 0 && ph != TXN_REPLAY_CLOSE &&
                          (kind == 0 ? ph != TXN_REPLAY_SEND : ph != TXN_REPLAY_KEEP);
            if (called)
                assert_non_null(strstr(r.warnings, "held-traffic"));
            else
                assert_null(strstr(r.warnings, "held-traffic"));
            txn_result_done(&r);
        }
    }
}

static void test_replay_off_and_rollback(void **state)
{
    for (int kind = 0; kind < 3; kind++) {
        struct fake f;
        struct txn_result r;
        fake_init(&f, kind == 2 ? TXN_VM_ABSENT : TXN_VM_RUNNING);
        assert_int_equal(run_replay(&f, kind, true, &r), TXN_OK);
        assert_false(r.replay.enabled);
        assert_null(strstr(f.trace, "replay"));
        txn_result_done(&r);
    }
    /* A rollback (a --continue bundle) with --stale=auto: nothing replayed into the stale
     * connections; with --stale=keep the replay runs. */
    for (int keep = 0; keep < 2; keep++) {
        struct fake g;
        struct txn_result q;
        struct txn_ops ops = fake_ops;
        ops.replay = f_replay;
        struct txn_ctx ctx = {.ops = &ops, .ud = &g, .cancel = &g.cancel, .pid = 4242};
        struct txn_restore_opts o = {.bundle = "/tmp/b", .reset_stale = !keep};
        fake_init(&g, TXN_VM_ABSENT);
        g.bundle_continue = true;
        assert_int_equal(txn_restore(&ctx, &o, &q), TXN_OK);
        assert_int_equal(q.replay.skipped, !keep);
        assert_int_equal(strstr(g.trace, "replay_send") != NULL, keep);
        assert_true(g.replay_closed_last);
        txn_result_done(&q);
    }
    /* A failure after the capture began still closes it, after the rollback's lift. */
    struct fake f;
    struct txn_result r;
    fake_init(&f, TXN_VM_RUNNING);
    f.always_fail = "agent_freeze";
    assert_int_equal(run_replay(&f, 1, false, &r), TXN_ROLLED_BACK);
    assert_true(f.replay_closed_last);
    assert_false(f.gate);
    assert_null(strstr(f.trace, "replay_send"));
    txn_result_done(&r);
}

/* ---- rollback safety ops (docs/rollback.md) ---- */

static void f_history_record(void *ud, enum txn_history_event ev, const struct manifest *m)
{
    static const char *const names[] = {"history_stopped", "history_continued", "history_restored"};
    hit(F, names[ev]);
}

static void f_rollback_decide(void *ud, const struct manifest *m, bool vm_active,
                              struct txn_rollback *out)
{
    hit(F, "rollback_decide");
    out->detected = F->rollback_verdict;
    out->known = true;
    snprintf(out->reason, sizeof(out->reason), "fake");
}

static int f_agent_thaw_quiet(void *ud, uint64_t host_time_ns, json_object **reply, char *err,
                              size_t errlen)
{
    int r = hit(F, "agent_thaw_quiet");
    if (r)
        return r;
    if (F->vm != TXN_VM_RUNNING)
        return -ETIMEDOUT;
    F->frozen = false;
    return 0;
}

static int f_reset_image(void *ud, json_object *image, int *n_reset, int *probes, char *err,
                         size_t errlen)
{
    int r = hit(F, "reset_image");
    if (r)
        return r;
    assert_false(F->frozen); /* only after the thaw */
    assert_false(F->gate);   /* and the lift: the RSTs and probes must get out */
    *n_reset = *probes = 3;
    return 0;
}

static int f_report_seen(void *ud, json_object *image, json_object *thaw, bool reset_stale,
                         json_object **report, char *err, size_t errlen)
{
    F->report_reset_stale = reset_stale;
    return f_agent_report(ud, image, thaw, reset_stale, report, err, errlen);
}

static struct txn_ops rollback_ops(void)
{
    struct txn_ops ops = fake_ops;
    ops.replay = f_replay;
    ops.history_record = f_history_record;
    ops.rollback_decide = f_rollback_decide;
    ops.agent_thaw_quiet = f_agent_thaw_quiet;
    ops.reset_image = f_reset_image;
    ops.agent_report = f_report_seen;
    return ops;
}

static void test_rollback_safety(void **state)
{
    /* verdict x --stale: a rollback with auto thaws quietly, resets the image after the lift,
     * skips the replay and leaves the report's stale reset off; otherwise a plain restore. */
    for (int rb = 0; rb < 2; rb++) {
        for (int keep = 0; keep < 2; keep++) {
            struct fake f;
            struct txn_result r;
            struct txn_ops ops = rollback_ops();
            struct txn_ctx ctx = {.ops = &ops, .ud = &f, .cancel = &f.cancel, .pid = 4242};
            struct txn_restore_opts o = {.bundle = "/tmp/b", .reset_stale = !keep};
            fake_init(&f, TXN_VM_ABSENT);
            f.rollback_verdict = rb;
            assert_int_equal(txn_restore(&ctx, &o, &r), TXN_OK);
            bool reset = rb && !keep;
            assert_true(r.rollback.checked);
            assert_int_equal(r.rollback.detected, rb);
            assert_int_equal(r.rollback.reset, reset);
            assert_int_equal(r.rollback.n_reset, reset ? 3 : 0);
            assert_int_equal(r.replay.skipped, reset);
            assert_int_equal(strstr(f.trace, "replay_send") != NULL, !reset);
            assert_int_equal(
                strstr(f.trace, "gate_lift replay_stop agent_thaw_quiet reset_image") != NULL,
                reset);
            assert_int_equal(strstr(f.trace, "agent_thaw ") != NULL, !reset);
            assert_int_equal(f.report_reset_stale, !keep && !reset);
            assert_non_null(strstr(f.trace, "bundle_open discover rollback_decide"));
            assert_non_null(strstr(f.trace, "history_restored"));
            txn_result_done(&r);
        }
    }
    /* The reset fails: a warning, and the report's stale reset takes over. */
    struct fake f;
    struct txn_result r;
    struct txn_ops ops = rollback_ops();
    struct txn_ctx ctx = {.ops = &ops, .ud = &f, .cancel = &f.cancel, .pid = 4242};
    struct txn_restore_opts o = {.bundle = "/tmp/b", .reset_stale = true};
    fake_init(&f, TXN_VM_ABSENT);
    f.rollback_verdict = true;
    f.always_fail = "reset_image";
    assert_int_equal(txn_restore(&ctx, &o, &r), TXN_OK);
    assert_false(r.rollback.reset);
    assert_true(f.report_reset_stale);
    assert_non_null(strstr(r.warnings, "resetting the rolled-back connections failed"));
    txn_result_done(&r);
    /* A restore rolled back (resume fails): nothing recorded. */
    fake_init(&f, TXN_VM_ABSENT);
    f.always_fail = "resume";
    assert_int_equal(txn_restore(&ctx, &o, &r), TXN_ROLLED_BACK);
    assert_null(strstr(f.trace, "history_"));
    txn_result_done(&r);
    /* Without the ops: a --continue bundle is the rollback (the manifest decides). */
    struct txn_ops plain = fake_ops;
    ctx.ops = &plain;
    fake_init(&f, TXN_VM_ABSENT);
    f.bundle_continue = true;
    assert_int_equal(txn_restore(&ctx, &o, &r), TXN_OK);
    assert_true(r.rollback.detected);
    assert_false(r.rollback.reset);
    txn_result_done(&r);
    /* Checkpoints record after the commit, by mode; a failed one records nothing. */
    ctx.ops = &ops;
    for (int cont = 0; cont < 3; cont++) {
        struct txn_checkpoint_opts co = {
            .domain = "vm1", .dir = "/tmp/b", .continue_running = cont == 1, .watchdog_ms = 1};
        fake_init(&f, TXN_VM_RUNNING);
        if (cont == 2)
            f.always_fail = "bundle_commit";
        txn_checkpoint(&ctx, &co, &r);
        const char *want = cont == 0   ? "bundle_commit history_stopped"
                           : cont == 1 ? "bundle_commit history_continued"
                                       : NULL;
        if (want)
            assert_non_null(strstr(f.trace, want));
        else
            assert_null(strstr(f.trace, "history_"));
        txn_result_done(&r);
    }
}

static void test_restore_no_kick(void **state)
{
    /* --no-kick thaws quietly like a rollback reset does, but still replays and reports. */
    for (int nk = 0; nk < 2; nk++) {
        struct fake f;
        struct txn_result r;
        struct txn_ops ops = rollback_ops();
        struct txn_ctx ctx = {.ops = &ops, .ud = &f, .cancel = &f.cancel, .pid = 4242};
        struct txn_restore_opts o = {.bundle = "/tmp/b", .reset_stale = true, .no_kick = nk};
        fake_init(&f, TXN_VM_ABSENT);
        assert_int_equal(txn_restore(&ctx, &o, &r), TXN_OK);
        assert_false(f.frozen || f.gate);
        assert_int_equal(strstr(f.trace, "agent_thaw_quiet") != NULL, nk);
        assert_int_equal(strstr(f.trace, "agent_thaw ") != NULL, !nk);
        assert_non_null(strstr(f.trace, "replay_send"));
        assert_null(strstr(f.trace, "reset_image"));
        assert_false(r.rollback.detected);
        txn_result_done(&r);
    }
    /* Without a quiet thaw op the kick thaw is the only one there is. */
    struct fake f;
    struct txn_result r;
    struct txn_ops ops = fake_ops;
    struct txn_ctx ctx = {.ops = &ops, .ud = &f, .cancel = &f.cancel, .pid = 4242};
    struct txn_restore_opts o = {.bundle = "/tmp/b", .no_kick = true};
    fake_init(&f, TXN_VM_ABSENT);
    assert_int_equal(txn_restore(&ctx, &o, &r), TXN_OK);
    assert_non_null(strstr(f.trace, "agent_thaw "));
    txn_result_done(&r);
}

static void test_names(void **state)
{
    assert_string_equal(txn_step_name(TXN_STEP_FREEZE), "freeze");
    assert_string_equal(txn_step_name((enum txn_step)999), "unknown");
    assert_string_equal(txn_outcome_name(TXN_ROLLED_BACK), "rolled-back");
    assert_string_equal(txn_vm_state_name(TXN_VM_PAUSED), "paused");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_replay_failure_is_warning),
        cmocka_unit_test(test_replay_off_and_rollback),
        cmocka_unit_test(test_rollback_safety),
        cmocka_unit_test(test_restore_no_kick),
        cmocka_unit_test(test_checkpoint_ok_stop),
        cmocka_unit_test(test_checkpoint_ok_continue),
        cmocka_unit_test(test_checkpoint_ok_snapshot),
        cmocka_unit_test(test_checkpoint_fault_each_step),
        cmocka_unit_test(test_checkpoint_agent_timeout_and_error),
        cmocka_unit_test(test_checkpoint_disk_full),
        cmocka_unit_test(test_checkpoint_save_failure_states),
        cmocka_unit_test(test_checkpoint_signal_each_step),
        cmocka_unit_test(test_checkpoint_rollback_fault),
        cmocka_unit_test(test_checkpoint_continue_mismatch),
        cmocka_unit_test(test_checkpoint_refusals),
        cmocka_unit_test(test_restore_ok),
        cmocka_unit_test(test_restore_mismatch_refused),
        cmocka_unit_test(test_restore_paused),
        cmocka_unit_test(test_restore_refusals),
        cmocka_unit_test(test_restore_fault_each_step),
        cmocka_unit_test(test_restore_signal_each_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
