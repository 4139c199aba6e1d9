/* host/cli-migrate.c: `netckpt migrate DOMAIN DEST-URI`: options to host/migrate.h, step
 * lines on a TTY, and the report (text or --json, keys in docs/migrate.md). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "host/cli.h"
#include "host/migrate.h"
#include "host/tap-watch.h"

#define DEFAULT_FREEZE_TIMEOUT_S 60

static void on_step(void *ud, enum migrate_step step, bool end, uint64_t done, uint64_t total)
{
    const struct cli_ctx *ctx = ud;
    if (step == MIGRATE_STEP_PRECOPY && !end && total) {
        cli_progress(ctx, "precopy", done, total);
        return;
    }
    if (!ctx->tty || ctx->quiet)
        return;
    if (end)
        fprintf(stderr, "\r\033[K");
    else
        fprintf(stderr, "\r\033[K%s ...", migrate_step_name(step));
    fflush(stderr);
}

static json_object *ms(uint64_t ns)
{
    return json_object_new_double((double)(ns / 1000) / 1000.0);
}

static json_object *counters_json(const struct gate_counters *c)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "to_guest_pkts", json_object_new_int64((int64_t)c->to_guest_pkts));
    json_object_object_add(o, "from_guest_pkts",
                           json_object_new_int64((int64_t)c->from_guest_pkts));
    return o;
}

json_object *cli_migrate_result_json(const struct migrate_opts *o, const struct migrate_result *r,
                                     int code)
{
    json_object *j = json_object_new_object();
    json_object_object_add(j, "command", json_object_new_string("migrate"));
    json_object_object_add(j, "outcome", json_object_new_string(txn_outcome_name(r->outcome)));
    json_object_object_add(j, "exit_code", json_object_new_int(code));
    json_object_object_add(j, "domain", json_object_new_string(o->domain));
    json_object_object_add(j, "destination", json_object_new_string(o->dest_uri));
    json_object_object_add(j, "failed_step",
                           r->failed_step == MIGRATE_STEP_NONE
                               ? NULL
                               : json_object_new_string(migrate_step_name(r->failed_step)));
    json_object_object_add(j, "message", r->message[0] ? json_object_new_string(r->message) : NULL);
    json_object_object_add(j, "rollback_errors",
                           r->rollback_errors[0] ? json_object_new_string(r->rollback_errors)
                                                 : NULL);
    json_object_object_add(j, "warnings",
                           r->warnings[0] ? json_object_new_string(r->warnings) : NULL);
    json_object_object_add(j, "switched_over", json_object_new_boolean(r->switched_over));
    json_object_object_add(j, "quiesced", json_object_new_boolean(r->quiesced));
    json_object_object_add(j, "source_gate_left", json_object_new_boolean(r->source_gate_left));
    json_object_object_add(j, "dest_gate_left", json_object_new_boolean(r->dest_gate_left));
    json_object_object_add(j, "connections", json_object_new_int64(r->n_connections));
    json_object_object_add(j, "kick", json_object_new_boolean(!o->no_kick));
    json_object *t = json_object_new_object();
    json_object_object_add(t, "total_ms", ms(r->t.total));
    json_object_object_add(t, "precopy_ms", ms(r->t.precopy));
    json_object_object_add(t, "freeze_ms", ms(r->t.freeze));
    json_object_object_add(t, "switchover_ms", ms(r->t.switchover));
    json_object_object_add(t, "downtime_ms", ms(r->t.downtime));
    json_object_object_add(t, "gate_ms", ms(r->t.gate));
    json_object_object_add(t, "verify_ms", ms(r->t.verify));
    json_object_object_add(t, "thaw_ms", ms(r->t.thaw));
    json_object_object_add(j, "times", t);
    json_object *m = json_object_new_object();
    json_object_object_add(m, "total", json_object_new_int64((int64_t)r->mem.total));
    json_object_object_add(m, "processed", json_object_new_int64((int64_t)r->mem.processed));
    json_object_object_add(m, "remaining", json_object_new_int64((int64_t)r->mem.remaining));
    json_object_object_add(m, "iterations", json_object_new_int64((int64_t)r->iterations));
    json_object_object_add(j, "memory_at_quiesce", m);
    json_object_object_add(j, "source_gate", counters_json(&r->src_counters));
    json_object_object_add(j, "dest_gate", counters_json(&r->dst_counters));
    json_object_object_add(j, "report", json_object_get(r->report));
    json_object_object_add(j, "verify_differences", json_object_get(r->verify_diff));
    return j;
}

static json_object *jget(json_object *o, const char *k)
{
    json_object *v = NULL;
    return o && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

/* The worst stall the tap watch saw, -1 when none was measured. */
static int worst_stall(json_object *rep)
{
    json_object *conns = jget(rep, "connections");
    int worst = -1;
    for (size_t i = 0; conns && i < json_object_array_length(conns); i++) {
        json_object *s = jget(json_object_array_get_idx(conns, i), "stall_ms");
        if (s && json_object_get_int(s) > worst)
            worst = json_object_get_int(s);
    }
    return worst;
}

static void print_ok(const struct migrate_opts *o, const struct migrate_result *r)
{
    printf("migration of %s to %s complete: the VM runs on the destination\n", o->domain,
           o->dest_uri);
    printf("  precopy %.3f s (%" PRIu64 " MiB of %" PRIu64 " MiB, pass %" PRIu64
           "), freeze %.1f ms, switchover %.3f s\n",
           (double)r->t.precopy / 1e9, r->mem.processed >> 20, r->mem.total >> 20, r->iterations,
           (double)r->t.freeze / 1e6, (double)r->t.switchover / 1e9);
    printf("  downtime %.3f s (source suspended to destination resumed), gate time %.3f s\n",
           (double)r->t.downtime / 1e9, (double)r->t.gate / 1e9);
    if (r->quiesced)
        printf("  %u connection%s frozen on the source, verified on the destination (%.1f ms), "
               "thawed %s the kick (%.1f ms)\n",
               r->n_connections, r->n_connections == 1 ? "" : "s", (double)r->t.verify / 1e6,
               o->no_kick ? "without" : "with", (double)r->t.thaw / 1e6);
    printf("  destination gate dropped %" PRIu64 " packets to the guest, %" PRIu64 " from it\n",
           r->dst_counters.to_guest_pkts, r->dst_counters.from_guest_pkts);
    json_object *rep = r->report;
    if (rep) {
        int w = worst_stall(rep);
        printf("  connections: %d survived, %d stale, %d reset, %d stalled; worst stall %s%d%s\n",
               json_object_get_int(jget(rep, "survived")), json_object_get_int(jget(rep, "stale")),
               json_object_get_int(jget(rep, "reset")), json_object_get_int(jget(rep, "stalled")),
               w < 0 ? "" : "", w < 0 ? 0 : w, w < 0 ? " (none measured)" : " ms");
    }
    if (r->warnings[0])
        printf("  warnings: %s\n", r->warnings);
}

static void print_failure(const struct migrate_opts *o, const struct migrate_result *r)
{
    fprintf(stderr, "netckpt: migration of %s failed at step %s: %s\n", o->domain,
            migrate_step_name(r->failed_step), r->message);
    switch (r->outcome) {
    case TXN_ROLLED_BACK:
    case TXN_INTERRUPTED:
        if (r->switched_over)
            fprintf(stderr, "netckpt: the VM runs on the destination (the switchover was done), "
                            "its network open, its agent thawed\n");
        else
            fprintf(stderr, "netckpt: rolled back: the VM runs on the source, its network "
                            "open\n");
        break;
    case TXN_ROLLBACK_FAILED:
        fprintf(stderr, "netckpt: ROLLBACK INCOMPLETE: %s\n",
                r->rollback_errors[0] ? r->rollback_errors : r->message);
        fprintf(stderr,
                "netckpt: run 'netckpt unblock %s' (and lift the destination gate with "
                "'netckpt unblock' there) to finish\n",
                o->domain);
        break;
    default:
        break;
    }
}

int cli_cmd_migrate(struct cli_ctx *ctx, const struct cli_args *a)
{
    uint64_t freeze_s = DEFAULT_FREEZE_TIMEOUT_S, watch = TAP_WATCH_DEFAULT_MS;
    if (cli_arg_uint(a, "freeze-timeout", &freeze_s) < 0 || freeze_s == 0 || freeze_s > 86400) {
        fprintf(stderr, "netckpt: migrate: --freeze-timeout must be 1..86400 seconds\n");
        return NC_EXIT_USAGE;
    }
    if (cli_arg_uint(a, "watch", &watch) < 0 || watch > 600000) {
        fprintf(stderr, "netckpt: migrate: --watch must be 0..600000 ms\n");
        return NC_EXIT_USAGE;
    }
    uint64_t hold = MIGRATE_HOLD_PERCENT_DEFAULT;
    if (cli_arg_uint(a, "precopy", &hold) < 0 || hold == 0 || hold > 95) {
        fprintf(stderr, "netckpt: migrate: --precopy must be 1..95 (percent)\n");
        return NC_EXIT_USAGE;
    }
    const char *stale = cli_arg_str(a, "stale");
    struct migrate_opts o = {
        .domain = cli_arg_str(a, "domain"),
        .dest_uri = cli_arg_str(a, "desturi"),
        .migrate_uri = cli_arg_str(a, "migrate-uri"),
        .listen_address = cli_arg_str(a, "listen-address"),
        .dest_xml = cli_arg_str(a, "xml"),
        .dest_netns = cli_arg_str(a, "dest-netns"),
        .switchover_hook = cli_arg_str(a, "switchover-hook"),
        .watchdog_ms = (uint32_t)(freeze_s * 1000),
        .watch_ms = (int)watch,
        .hold_percent = (unsigned)hold,
        .reset_stale = stale && !strcmp(stale, "auto"),
        .no_kick = cli_arg_bool(a, "no-kick"),
    };
    struct migrate_ctx mc = {
        .src = ctx->virt,
        .state_dir = ctx->state_dir,
        .agent_name = cli_arg_str(a, "agent-channel"),
        .cancel = ctx->interrupted,
        .notify = on_step,
        .nud = ctx,
    };
    struct migrate_result r;
    migrate_run(&mc, &o, &r);
    if (ctx->tty && !ctx->quiet)
        cli_progress_done(ctx);
    int code = cli_exit_for_outcome(r.outcome);
    if (ctx->json)
        cli_print_json(cli_migrate_result_json(&o, &r, code));
    else if (r.outcome == TXN_OK && !ctx->quiet)
        print_ok(&o, &r);
    else if (r.outcome != TXN_OK)
        print_failure(&o, &r);
    migrate_result_done(&r);
    return code;
}
