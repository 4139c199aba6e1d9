/* host/cli-txn.c: the checkpoint and restore commands: options to the transaction, progress
 * on a TTY, and the report (text or --json). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "host/cli.h"
#include "host/replay.h"
#include "host/tap-watch.h"
#include "host/transaction.h"
#include "host/txn-real.h"

#define DEFAULT_FREEZE_TIMEOUT_S 60

struct ui {
    struct cli_ctx *ctx;
    bool progress_shown;
};

static void on_event(void *nud, enum txn_event ev, enum txn_step step, uint64_t done,
                     uint64_t total, const char *message)
{
    struct ui *u = nud;
    const struct cli_ctx *ctx = u->ctx;
    switch (ev) {
    case TXN_EV_PROGRESS:
        cli_progress(ctx, txn_step_name(step), done, total);
        u->progress_shown = true;
        break;
    case TXN_EV_STEP_BEGIN:
        if (ctx->tty && !ctx->quiet) {
            fprintf(stderr, "\r\033[K%s ...", txn_step_name(step));
            fflush(stderr);
        }
        break;
    case TXN_EV_STEP_END:
        if (u->progress_shown) {
            cli_progress_done(ctx);
            u->progress_shown = false;
        }
        if (ctx->tty && !ctx->quiet) {
            fprintf(stderr, "\r\033[K");
            fflush(stderr);
        }
        break;
    case TXN_EV_ROLLBACK:
        if (u->progress_shown)
            cli_progress_done(ctx);
        u->progress_shown = false;
        /* The reason comes once, in the failure summary; here only that rollback began. */
        if (!ctx->quiet)
            fprintf(stderr, "%snetckpt: %s failed; rolling back\n", ctx->tty ? "\r\033[K" : "",
                    txn_step_name(step));
        break;
    case TXN_EV_WARNING:
        break; /* logged already */
    }
}

int cli_exit_for_outcome(enum txn_outcome o)
{
    switch (o) {
    case TXN_OK:
        return NC_EXIT_OK;
    case TXN_FAILED:
        return NC_EXIT_FAILURE;
    case TXN_BUSY:
        return NC_EXIT_BUSY;
    case TXN_REFUSED:
        return NC_EXIT_REFUSED;
    case TXN_ROLLED_BACK:
        return NC_EXIT_ROLLED_BACK;
    case TXN_ROLLBACK_FAILED:
        return NC_EXIT_ROLLBACK_FAILED;
    case TXN_INTERRUPTED:
        return NC_EXIT_INTERRUPTED;
    }
    return NC_EXIT_FAILURE;
}

static json_object *jstr_or_null(const char *s)
{
    return s && *s ? json_object_new_string(s) : NULL;
}

static json_object *warnings_json(const char *w)
{
    json_object *arr = json_object_new_array();
    while (w && *w) {
        const char *sep = strstr(w, "; ");
        size_t n = sep ? (size_t)(sep - w) : strlen(w);
        json_object_array_add(arr, json_object_new_string_len(w, (int)n));
        w = sep ? sep + 2 : NULL;
    }
    return arr;
}

static uint64_t total_ns(const struct manifest *m)
{
    uint64_t t = 0;
    for (size_t i = 0; i < m->n_steps; i++)
        t += m->steps[i].duration_ns;
    return t;
}

/* The common report of both transactions (stable keys, docs/cli.md). */
json_object *cli_txn_result_json(const char *command, const struct txn_result *r, int code)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "command", json_object_new_string(command));
    json_object_object_add(o, "outcome", json_object_new_string(txn_outcome_name(r->outcome)));
    json_object_object_add(o, "exit_code", json_object_new_int(code));
    json_object_object_add(o, "domain", jstr_or_null(r->m.domain_name));
    json_object_object_add(o, "bundle", jstr_or_null(r->bundle_path));
    json_object_object_add(o, "bundle_committed", json_object_new_boolean(r->bundle_committed));
    json_object_object_add(o, "failed_step",
                           r->failed_step == TXN_STEP_NONE
                               ? NULL
                               : json_object_new_string(txn_step_name(r->failed_step)));
    json_object_object_add(o, "error", jstr_or_null(r->message));
    json_object_object_add(o, "errno", r->error ? json_object_new_int(-r->error) : NULL);
    json_object_object_add(o, "rolled_back", json_object_new_boolean(r->rolled_back));
    json_object_object_add(o, "rollback_errors", jstr_or_null(r->rollback_errors));
    json_object_object_add(o, "interrupted", json_object_new_boolean(r->interrupted));
    json_object_object_add(o, "gate_left", json_object_new_boolean(r->gate_left));
    json_object_object_add(o, "vm_before", json_object_new_string(txn_vm_state_name(r->vm_before)));
    json_object_object_add(o, "vm_after", json_object_new_string(txn_vm_state_name(r->vm_after)));
    json_object_object_add(o, "total_ms", json_object_new_double((double)total_ns(&r->m) / 1e6));
    json_object_object_add(o, "manifest", cli_manifest_json(&r->m));
    json_object_object_add(o, "warnings", warnings_json(r->warnings));
    json_object_object_add(o, "verify_differences", json_object_get(r->verify_diff));
    json_object_object_add(o, "thaw", json_object_get(r->thaw_reply));
    json_object_object_add(o, "report", json_object_get(r->report));
    json_object *rp = json_object_new_object();
    json_object_object_add(rp, "enabled", json_object_new_boolean(r->replay.enabled));
    json_object_object_add(rp, "skipped", json_object_new_boolean(r->replay.skipped));
    json_object_object_add(rp, "held", json_object_new_int64((int64_t)r->replay.held));
    json_object_object_add(rp, "replayed", json_object_new_int64((int64_t)r->replay.replayed));
    json_object_object_add(rp, "dropped", json_object_new_int64((int64_t)r->replay.dropped));
    json_object_object_add(rp, "rejected", json_object_new_int64((int64_t)r->replay.rejected));
    json_object_object_add(rp, "failed", json_object_new_int64((int64_t)r->replay.failed));
    json_object_object_add(rp, "segmented", json_object_new_int64((int64_t)r->replay.segmented));
    json_object_object_add(rp, "outage", json_object_new_int64((int64_t)r->replay.outage));
    json_object_object_add(rp, "holder_pid", json_object_new_int(r->replay.holder_pid));
    json_object_object_add(o, "replay", rp);
    json_object *rb = NULL;
    if (r->rollback.checked) {
        rb = json_object_new_object();
        json_object_object_add(rb, "detected", json_object_new_boolean(r->rollback.detected));
        json_object_object_add(rb, "reason", json_object_new_string(r->rollback.reason));
        json_object_object_add(rb, "from_history", json_object_new_boolean(r->rollback.known));
        json_object_object_add(rb, "reset", json_object_new_boolean(r->rollback.reset));
        json_object_object_add(rb, "connections_reset", json_object_new_int(r->rollback.n_reset));
        json_object_object_add(rb, "peers_probed", json_object_new_int(r->rollback.probes));
    }
    json_object_object_add(o, "rollback", rb);
    return o;
}

static uint64_t ju64(json_object *o, const char *k)
{
    json_object *v = cli_jget(o, k);
    int64_t x = v ? json_object_get_int64(v) : 0;
    return x > 0 ? (uint64_t)x : 0;
}

/* The text output below is printed from the --json report (cli_txn_result_json), so that a
 * report that came from netckptd prints exactly as one made here. */
static void print_steps(json_object *res)
{
    json_object *steps = cli_jget(cli_jget(res, "manifest"), "steps");
    printf("  steps:");
    for (size_t i = 0; steps && i < json_object_array_length(steps); i++) {
        json_object *st = json_object_array_get_idx(steps, i);
        printf("%s %s %.0f ms", i ? "," : "", cli_jstr(st, "name", "?"),
               json_object_get_double(cli_jget(st, "ms")));
    }
    printf(" (total %.2f s)\n", json_object_get_double(cli_jget(res, "total_ms")) / 1e3);
}

static void print_report(json_object *rep)
{
    json_object *conns = cli_jget(rep, "connections");
    if (!conns || json_object_array_length(conns) == 0) {
        if (conns)
            printf("  no connections to report\n");
        return;
    }
    /* watched_ms is how long the tap watch ran after the thaw: it ends as soon as every
     * connection has answered (frames the replay drew before the thaw count as at the thaw,
     * so it may be 0), else at --watch. STALL_MS and ANSWER_MS count from the same instant. */
    int stalled = json_object_get_int(cli_jget(rep, "stalled")),
        watched = json_object_get_int(cli_jget(rep, "watched_ms"));
    printf("  connections: %d survived, %d stale, %d reset, %d stalled\n",
           json_object_get_int(cli_jget(rep, "survived")),
           json_object_get_int(cli_jget(rep, "stale")), json_object_get_int(cli_jget(rep, "reset")),
           stalled);
    if (stalled)
        printf("  (the taps were watched for %d ms after the thaw; times are ms after the thaw)\n",
               watched);
    else
        printf("  (the watch ended %d ms after the thaw: every connection had answered, or was "
               "stale or reset; times are ms after the thaw)\n",
               watched);
    printf("  %-4s %-9s %9s %9s  %-22s %-22s\n", "ID", "RESULT", "STALL_MS", "ANSWER_MS", "LOCAL",
           "REMOTE");
    for (size_t i = 0; i < json_object_array_length(conns); i++) {
        json_object *c = json_object_array_get_idx(conns, i);
        char l[64], r[64], st[16] = "-", an[16] = "-";
        json_object *lo = cli_jget(c, "local"), *re = cli_jget(c, "remote");
        snprintf(l, sizeof(l), "%s:%d", json_object_get_string(cli_jget(lo, "addr")),
                 json_object_get_int(cli_jget(lo, "port")));
        snprintf(r, sizeof(r), "%s:%d", json_object_get_string(cli_jget(re, "addr")),
                 json_object_get_int(cli_jget(re, "port")));
        if (cli_jget(c, "stall_ms"))
            snprintf(st, sizeof(st), "%d", json_object_get_int(cli_jget(c, "stall_ms")));
        if (cli_jget(c, "answer_ms"))
            snprintf(an, sizeof(an), "%d", json_object_get_int(cli_jget(c, "answer_ms")));
        printf("  %-4d %-9s %9s %9s  %-22s %-22s\n", json_object_get_int(cli_jget(c, "id")),
               json_object_get_string(cli_jget(c, "result")), st, an, l, r);
    }
}

/* One line: was the restore a rollback, why, and what was done about it. */
static void print_rollback(json_object *rb)
{
    if (!rb)
        return;
    if (!json_object_get_boolean(cli_jget(rb, "detected")))
        printf("  rollback: no (%s)\n", cli_jstr(rb, "reason", ""));
    else if (json_object_get_boolean(cli_jget(rb, "reset")))
        printf("  rollback: yes (%s); %d connections reset, %d peers probed\n",
               cli_jstr(rb, "reason", ""), json_object_get_int(cli_jget(rb, "connections_reset")),
               json_object_get_int(cli_jget(rb, "peers_probed")));
    else
        printf("  rollback: yes (%s); connections left as they are\n", cli_jstr(rb, "reason", ""));
}

static void print_replay(json_object *res, bool stop_mode)
{
    json_object *s = cli_jget(res, "replay");
    if (!json_object_get_boolean(cli_jget(s, "enabled")))
        printf("  held-traffic replay: off\n");
    else if (json_object_get_boolean(cli_jget(s, "skipped")))
        printf("  held-traffic replay: skipped (a rollback: the connections are reset)\n");
    else if (stop_mode)
        printf("  held-traffic replay: %" PRIu64 " frames kept in the bundle, %" PRIu64
               " over the bound dropped, %" PRIu64 " rejected\n",
               ju64(s, "held"), ju64(s, "dropped"), ju64(s, "rejected"));
    else
        printf("  held-traffic replay: %" PRIu64 " held, %" PRIu64 " replayed, %" PRIu64
               " dropped, %" PRIu64 " rejected, %" PRIu64 " failed to send\n",
               ju64(s, "held"), ju64(s, "replayed"), ju64(s, "dropped"), ju64(s, "rejected"),
               ju64(s, "failed"));
}

/* The thaw's clock step; a backwards one is said so (the guest was ahead of the host). */
static void print_clock(json_object *c)
{
    if (!c) {
        printf("  guest clock: left as it was (not stepped)\n");
        return;
    }
    double ms = (double)json_object_get_int64(cli_jget(c, "step_ns")) / 1e6;
    const char *na = json_object_get_boolean(cli_jget(c, "applied")) ? "" : " (not applied)";
    if (ms < 0)
        printf("  guest clock: stepped BACKWARDS by %.1f ms%s: it was ahead of the host\n", -ms,
               na);
    else
        printf("  guest clock: stepped forward by %.1f ms%s\n", ms, na);
}

/* name: what the user asked for (domain or bundle), for failures before discover named it. */
static void print_failure(const char *what, const char *name, json_object *res)
{
    const char *dom = cli_jstr(res, "domain", name);
    const char *outcome = cli_jstr(res, "outcome", "failed");
    fprintf(stderr, "netckpt: %s of %s failed at step %s: %s\n", what, dom,
            cli_jstr(res, "failed_step", "none"), cli_jstr(res, "error", ""));
    if (!strcmp(outcome, txn_outcome_name(TXN_ROLLED_BACK)) ||
        !strcmp(outcome, txn_outcome_name(TXN_INTERRUPTED))) {
        fprintf(stderr, "netckpt: rolled back: the VM is %s, its network open%s\n",
                cli_jstr(res, "vm_after", "?"),
                json_object_get_boolean(cli_jget(res, "bundle_committed"))
                    ? "; the bundle is complete and kept"
                    : "; no bundle");
    } else if (!strcmp(outcome, txn_outcome_name(TXN_ROLLBACK_FAILED))) {
        fprintf(stderr, "netckpt: ROLLBACK INCOMPLETE: %s\n",
                cli_jstr(res, "rollback_errors", cli_jstr(res, "error", "")));
        fprintf(stderr, "netckpt: run 'netckpt unblock %s' to finish\n",
                cli_jstr(res, "domain", ""));
    }
}

int cli_txn_print(const struct cli_ctx *ctx, const char *command, json_object *res,
                  const char *asked, bool continue_running, bool paused)
{
    json_object *ec = cli_jget(res, "exit_code");
    int code = ec ? json_object_get_int(ec) : NC_EXIT_FAILURE;
    bool ok = code == NC_EXIT_OK;
    bool restore = !strcmp(command, "restore");
    json_object *m = cli_jget(res, "manifest");
    if (ctx->json)
        return code;
    if (ok && !restore) {
        if (!ctx->quiet) {
            json_object *c = cli_jget(m, "gate_counters");
            uint64_t n = ju64(m, "connections");
            printf("checkpoint of %s complete: %s\n", cli_jstr(res, "domain", ""),
                   cli_jstr(res, "bundle", ""));
            printf("  %s mode, VM state in a %s, %" PRIu64 " connection%s frozen, image %s\n",
                   cli_jstr(m, "mode", "?"),
                   !strcmp(cli_jstr(m, "state", ""), "snapshot") ? "snapshot" : "save file", n,
                   n == 1 ? "" : "s", cli_jstr(m, "image_id", ""));
            printf("  gate dropped %" PRIu64 " packets (%" PRIu64 " bytes) to the guest, %" PRIu64
                   " (%" PRIu64 " bytes) from it\n",
                   ju64(c, "to_guest_pkts"), ju64(c, "to_guest_bytes"), ju64(c, "from_guest_pkts"),
                   ju64(c, "from_guest_bytes"));
            print_steps(res);
            print_replay(res, !continue_running);
            if (continue_running)
                print_report(cli_jget(res, "report"));
            else
                printf("  the VM is saved and off; bring it back with: netckpt restore %s\n",
                       cli_jstr(res, "bundle", ""));
        }
    } else if (ok) {
        if (!ctx->quiet) {
            const char *dom = cli_jstr(res, "domain", "");
            if (paused) {
                printf("restore of %s from %s verified; the VM is paused and gated with its "
                       "sockets frozen\n  continue with: netckpt unblock %s\n",
                       dom, cli_jstr(res, "bundle", ""), dom);
            } else {
                printf("restore of %s from %s complete: the VM is %s\n", dom,
                       cli_jstr(res, "bundle", ""), cli_jstr(res, "vm_after", "?"));
                print_rollback(cli_jget(res, "rollback"));
                print_steps(res);
                print_replay(res, false);
                print_clock(cli_jget(cli_jget(res, "thaw"), "clock"));
                print_report(cli_jget(res, "report"));
            }
        }
    } else if (restore && code == NC_EXIT_REFUSED) {
        fprintf(stderr, "netckpt: restore refused: %s\n", cli_jstr(res, "error", ""));
        json_object *d = cli_jget(res, "verify_differences");
        for (size_t i = 0; d && json_object_is_type(d, json_type_array) &&
                           i < json_object_array_length(d) && i < 10;
             i++)
            fprintf(stderr, "  %s\n",
                    json_object_to_json_string_ext(json_object_array_get_idx(d, i),
                                                   JSON_C_TO_STRING_PLAIN));
    } else {
        print_failure(command, asked, res);
    }
    return code;
}

/* --replay-limit, checked the same way here and when forwarded to netckptd. */
int cli_replay_limit(const char *command, const struct cli_args *a, size_t *out)
{
    uint64_t v = 0;
    if (cli_arg_size(a, "replay-limit", CLI_REPLAY_LIMIT_MIN, REPLAY_MAX_LIMIT, &v) < 0) {
        fprintf(stderr,
                "netckpt: %s: --replay-limit must be 64K..256M: bytes, or with a K, M or G "
                "suffix (KiB units), not '%s'\n",
                command, cli_arg_str(a, "replay-limit"));
        return -EINVAL;
    }
    *out = (size_t)v;
    return 0;
}

int cli_freeze_timeout(const char *command, const struct cli_args *a, uint64_t *out)
{
    *out = DEFAULT_FREEZE_TIMEOUT_S;
    if (cli_arg_uint(a, "freeze-timeout", out) < 0 || *out == 0 || *out > 86400) {
        fprintf(stderr, "netckpt: %s: --freeze-timeout must be 1..86400 seconds\n", command);
        return -EINVAL;
    }
    return 0;
}

int cli_watch_ms(const char *command, const struct cli_args *a, uint64_t *out)
{
    *out = TAP_WATCH_DEFAULT_MS;
    if (cli_arg_uint(a, "watch", out) < 0 || *out > 600000) {
        fprintf(stderr, "netckpt: %s: --watch must be 0..600000 ms\n", command);
        return -EINVAL;
    }
    return 0;
}

static void prepare(struct cli_ctx *ctx, const struct cli_args *a, struct txn_real *t,
                    struct txn_ctx *tc, struct ui *u)
{
    txn_real_init(t, ctx->virt, ctx->state_dir, ctx->interrupted);
    t->agent_name = cli_arg_str(a, "agent-channel");
    *u = (struct ui){.ctx = ctx};
    *tc = (struct txn_ctx){.ops = &txn_real_ops,
                           .ud = t,
                           .cancel = ctx->interrupted,
                           .notify = on_event,
                           .nud = u,
                           .pid = getpid()};
}

int cli_cmd_checkpoint(struct cli_ctx *ctx, const struct cli_args *a)
{
    uint64_t freeze_s;
    size_t limit = 0;
    if (cli_freeze_timeout("checkpoint", a, &freeze_s) < 0 ||
        cli_replay_limit("checkpoint", a, &limit) < 0)
        return NC_EXIT_USAGE;
    struct txn_real t;
    struct txn_ctx tc;
    struct ui u;
    prepare(ctx, a, &t, &tc, &u);
    t.replay_limit = limit;
    struct txn_checkpoint_opts o = {
        .domain = cli_arg_str(a, "domain"),
        .dir = cli_arg_str(a, "dir"),
        .continue_running = cli_arg_bool(a, "continue"),
        .snapshot = cli_arg_bool(a, "snapshot"),
        .watchdog_ms = (uint32_t)(freeze_s * 1000),
        .no_replay = cli_arg_bool(a, "no-replay"),
    };
    struct txn_result r;
    txn_checkpoint(&tc, &o, &r);
    txn_real_done(&t);
    int code = cli_exit_for_outcome(r.outcome);

    if (r.outcome == TXN_OK) {
        json_object *rec = json_object_new_object();
        char iso[64];
        cli_iso_time(r.m.created_ns, iso, sizeof(iso));
        json_object_object_add(rec, "bundle", json_object_new_string(r.bundle_path));
        json_object_object_add(rec, "created_ns", json_object_new_int64((int64_t)r.m.created_ns));
        json_object_object_add(rec, "created", json_object_new_string(iso));
        json_object_object_add(rec, "mode", json_object_new_string(manifest_mode_name(r.m.mode)));
        json_object_object_add(rec, "image_id", json_object_new_string(r.m.image_id));
        json_object_object_add(rec, "connections", json_object_new_int64(r.m.n_connections));
        int q = cli_last_checkpoint_write(ctx, r.m.domain_name, rec);
        if (q < 0)
            log_warn("cannot record the last checkpoint: %s", strerror(-q));
        json_object_put(rec);
    }
    json_object *res = cli_txn_result_json("checkpoint", &r, code);
    cli_txn_print(ctx, "checkpoint", res, o.domain, o.continue_running, false);
    if (ctx->json)
        cli_print_json(res);
    else
        json_object_put(res);
    txn_result_done(&r);
    return code;
}

int cli_cmd_restore(struct cli_ctx *ctx, const struct cli_args *a)
{
    uint64_t watch;
    size_t limit = 0;
    if (cli_watch_ms("restore", a, &watch) < 0 || cli_replay_limit("restore", a, &limit) < 0)
        return NC_EXIT_USAGE;
    const char *stale = cli_arg_str(a, "stale");
    struct txn_real t;
    struct txn_ctx tc;
    struct ui u;
    prepare(ctx, a, &t, &tc, &u);
    t.watch_ms = (int)watch;
    t.replay_limit = limit;
    struct txn_restore_opts o = {
        .bundle = cli_arg_str(a, "bundle"),
        .image_override = cli_arg_str(a, "image"),
        .reset_stale = !stale || !strcmp(stale, "auto"),
        .leave_paused = cli_arg_bool(a, "paused"),
        .no_replay = cli_arg_bool(a, "no-replay"),
        .keep_clock = cli_arg_str(a, "clock") && !strcmp(cli_arg_str(a, "clock"), "keep"),
        .no_kick = cli_arg_bool(a, "no-kick"),
    };
    struct txn_result r;
    txn_restore(&tc, &o, &r);
    txn_real_done(&t);
    int code = cli_exit_for_outcome(r.outcome);
    json_object *res = cli_txn_result_json("restore", &r, code);
    cli_txn_print(ctx, "restore", res, o.bundle, false, o.leave_paused);
    if (ctx->json)
        cli_print_json(res);
    else
        json_object_put(res);
    txn_result_done(&r);
    return code;
}
