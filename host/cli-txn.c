/* host/cli-txn.c: the checkpoint and restore commands: options to the transaction, progress
 * on a TTY, and the report (text or --json). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "host/cli.h"
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
    json_object_object_add(o, "replay", rp);
    return o;
}

static void print_steps(const struct manifest *m)
{
    printf("  steps:");
    for (size_t i = 0; i < m->n_steps; i++)
        printf("%s %s %.0f ms", i ? "," : "", m->steps[i].name,
               (double)m->steps[i].duration_ns / 1e6);
    printf(" (total %.2f s)\n", (double)total_ns(m) / 1e9);
}

static json_object *jget(json_object *o, const char *k)
{
    json_object *v = NULL;
    return o && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

static void print_report(json_object *rep)
{
    json_object *conns = jget(rep, "connections");
    if (!conns || json_object_array_length(conns) == 0) {
        if (conns)
            printf("  no connections to report\n");
        return;
    }
    printf("  connections: %d survived, %d stale, %d reset, %d stalled (watched %d ms)\n",
           json_object_get_int(jget(rep, "survived")), json_object_get_int(jget(rep, "stale")),
           json_object_get_int(jget(rep, "reset")), json_object_get_int(jget(rep, "stalled")),
           json_object_get_int(jget(rep, "watched_ms")));
    printf("  %-4s %-9s %9s %9s  %-22s %-22s\n", "ID", "RESULT", "STALL_MS", "ANSWER_MS", "LOCAL",
           "REMOTE");
    for (size_t i = 0; i < json_object_array_length(conns); i++) {
        json_object *c = json_object_array_get_idx(conns, i);
        char l[64], r[64], st[16] = "-", an[16] = "-";
        json_object *lo = jget(c, "local"), *re = jget(c, "remote");
        snprintf(l, sizeof(l), "%s:%d", json_object_get_string(jget(lo, "addr")),
                 json_object_get_int(jget(lo, "port")));
        snprintf(r, sizeof(r), "%s:%d", json_object_get_string(jget(re, "addr")),
                 json_object_get_int(jget(re, "port")));
        if (jget(c, "stall_ms"))
            snprintf(st, sizeof(st), "%d", json_object_get_int(jget(c, "stall_ms")));
        if (jget(c, "answer_ms"))
            snprintf(an, sizeof(an), "%d", json_object_get_int(jget(c, "answer_ms")));
        printf("  %-4d %-9s %9s %9s  %-22s %-22s\n", json_object_get_int(jget(c, "id")),
               json_object_get_string(jget(c, "result")), st, an, l, r);
    }
}

static void print_replay(const struct txn_result *r, bool stop_mode)
{
    const struct txn_replay_stats *s = &r->replay;
    if (!s->enabled)
        printf("  held-traffic replay: off\n");
    else if (s->skipped)
        printf("  held-traffic replay: skipped (a rollback: the stale connections are reset)\n");
    else if (stop_mode)
        printf("  held-traffic replay: %" PRIu64 " frames kept in the bundle, %" PRIu64
               " over the bound dropped, %" PRIu64 " rejected\n",
               s->held, s->dropped, s->rejected);
    else
        printf("  held-traffic replay: %" PRIu64 " held, %" PRIu64 " replayed, %" PRIu64
               " dropped, %" PRIu64 " rejected, %" PRIu64 " failed to send\n",
               s->held, s->replayed, s->dropped, s->rejected, s->failed);
}

/* name: what the user asked for (domain or bundle), for failures before discover named it. */
static void print_failure(const char *what, const char *name, const struct txn_result *r)
{
    fprintf(stderr, "netckpt: %s of %s failed at step %s: %s\n", what,
            r->m.domain_name[0] ? r->m.domain_name : name, txn_step_name(r->failed_step),
            r->message);
    switch (r->outcome) {
    case TXN_ROLLED_BACK:
    case TXN_INTERRUPTED:
        fprintf(stderr, "netckpt: rolled back: the VM is %s, its network open%s\n",
                txn_vm_state_name(r->vm_after),
                r->bundle_committed ? "; the bundle is complete and kept" : "; no bundle");
        break;
    case TXN_ROLLBACK_FAILED:
        fprintf(stderr, "netckpt: ROLLBACK INCOMPLETE: %s\n",
                r->rollback_errors[0] ? r->rollback_errors : r->message);
        fprintf(stderr, "netckpt: run 'netckpt unblock %s' to finish\n", r->m.domain_name);
        break;
    default:
        break;
    }
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
    uint64_t freeze_s = DEFAULT_FREEZE_TIMEOUT_S;
    if (cli_arg_uint(a, "freeze-timeout", &freeze_s) < 0 || freeze_s == 0 || freeze_s > 86400) {
        fprintf(stderr, "netckpt: checkpoint: --freeze-timeout must be 1..86400 seconds\n");
        return NC_EXIT_USAGE;
    }
    struct txn_real t;
    struct txn_ctx tc;
    struct ui u;
    prepare(ctx, a, &t, &tc, &u);
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
    if (ctx->json) {
        cli_print_json(cli_txn_result_json("checkpoint", &r, code));
    } else if (r.outcome == TXN_OK) {
        if (!ctx->quiet) {
            printf("checkpoint of %s complete: %s\n", r.m.domain_name, r.bundle_path);
            printf("  %s mode, VM state in a %s, %u connection%s frozen, image %s\n",
                   manifest_mode_name(r.m.mode),
                   r.m.state == MANIFEST_STATE_SNAPSHOT ? "snapshot" : "save file",
                   r.m.n_connections, r.m.n_connections == 1 ? "" : "s", r.m.image_id);
            printf("  gate dropped %" PRIu64 " packets (%" PRIu64 " bytes) to the guest, %" PRIu64
                   " (%" PRIu64 " bytes) from it\n",
                   r.m.counters.to_guest_pkts, r.m.counters.to_guest_bytes,
                   r.m.counters.from_guest_pkts, r.m.counters.from_guest_bytes);
            print_steps(&r.m);
            print_replay(&r, !o.continue_running);
            if (o.continue_running)
                print_report(r.report);
            else
                printf("  the VM is saved and off; bring it back with: netckpt restore %s\n",
                       r.bundle_path);
        }
    } else {
        print_failure("checkpoint", o.domain, &r);
    }
    txn_result_done(&r);
    return code;
}

int cli_cmd_restore(struct cli_ctx *ctx, const struct cli_args *a)
{
    uint64_t watch = TAP_WATCH_DEFAULT_MS;
    if (cli_arg_uint(a, "watch", &watch) < 0 || watch > 600000) {
        fprintf(stderr, "netckpt: restore: --watch must be 0..600000 ms\n");
        return NC_EXIT_USAGE;
    }
    const char *stale = cli_arg_str(a, "stale");
    struct txn_real t;
    struct txn_ctx tc;
    struct ui u;
    prepare(ctx, a, &t, &tc, &u);
    t.watch_ms = (int)watch;
    struct txn_restore_opts o = {
        .bundle = cli_arg_str(a, "bundle"),
        .image_override = cli_arg_str(a, "image"),
        .reset_stale = !stale || !strcmp(stale, "auto"),
        .leave_paused = cli_arg_bool(a, "paused"),
        .no_replay = cli_arg_bool(a, "no-replay"),
        .keep_clock = cli_arg_str(a, "clock") && !strcmp(cli_arg_str(a, "clock"), "keep"),
    };
    struct txn_result r;
    txn_restore(&tc, &o, &r);
    txn_real_done(&t);
    int code = cli_exit_for_outcome(r.outcome);
    if (ctx->json) {
        cli_print_json(cli_txn_result_json("restore", &r, code));
    } else if (r.outcome == TXN_OK) {
        if (!ctx->quiet) {
            if (o.leave_paused) {
                printf("restore of %s from %s verified; the VM is paused and gated with its "
                       "sockets frozen\n  continue with: netckpt unblock %s\n",
                       r.m.domain_name, r.bundle_path, r.m.domain_name);
            } else {
                printf("restore of %s from %s complete: the VM is %s\n", r.m.domain_name,
                       r.bundle_path, txn_vm_state_name(r.vm_after));
                print_steps(&r.m);
                print_replay(&r, false);
                print_report(r.report);
            }
        }
    } else if (r.outcome == TXN_REFUSED) {
        fprintf(stderr, "netckpt: restore refused: %s\n", r.message);
        json_object *d = r.verify_diff;
        for (size_t i = 0; d && json_object_is_type(d, json_type_array) &&
                           i < json_object_array_length(d) && i < 10;
             i++)
            fprintf(stderr, "  %s\n",
                    json_object_to_json_string_ext(json_object_array_get_idx(d, i),
                                                   JSON_C_TO_STRING_PLAIN));
    } else {
        print_failure("restore", o.bundle, &r);
    }
    txn_result_done(&r);
    return code;
}
