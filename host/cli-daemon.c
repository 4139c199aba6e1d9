/* host/cli-daemon.c: the netckpt CLI as a front end of netckptd. When a daemon answers on its
 * socket and drives the same libvirt URI, checkpoint, restore, status, list, unblock, policy and
 * migrate are sent to it (host/daemon-client.h) and its replies printed with the CLI's own
 * printers, so output, --json and exit codes are those of the standalone CLI. Without a daemon (or
 * with
 * --no-daemon / NETCKPT_NO_DAEMON=1) nothing here runs and netckpt works alone. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "host/cli.h"
#include "host/daemon-client.h"
#include "host/tap-watch.h"
#include "host/transaction.h"
#include "host/virt.h"

#define CONNECT_TIMEOUT_MS 5000
#define CALL_TIMEOUT_MS    30000 /* one request; jobs are polled, never waited for in one call */
#define POLL_MS            200

struct fwd {
    struct cli_ctx *ctx;
    struct daemon_client dc;
    const char *path;
};

static int fail(const struct cli_ctx *ctx, int code, const char *msg)
{
    fprintf(stderr, "netckpt: %s\n", msg);
    if (ctx->json)
        cli_print_json(cli_error_json(code, msg));
    return code;
}

/* A daemon's error reply as the standalone CLI's exit code. */
static int exit_for_class(enum qga_error_class c)
{
    switch (c) {
    case QGA_ERR_BUSY:
        return NC_EXIT_BUSY;
    case QGA_ERR_INVALID_PARAMETER:
        return NC_EXIT_USAGE;
    default:
        return NC_EXIT_FAILURE;
    }
}

/* One call; on failure print it as the CLI would and return the exit code (> 0). */
static int call(struct fwd *f, const char *cmd, json_object *args, json_object **ret)
{
    struct qga_error err;
    qga_error_clear(&err);
    *ret = NULL;
    int r = daemon_client_call(&f->dc, cmd, args, CALL_TIMEOUT_MS, ret, &err);
    if (r == 0)
        return 0;
    char msg[700];
    if (r == -EREMOTEIO) {
        snprintf(msg, sizeof(msg), "%s", err.desc);
        return fail(f->ctx, exit_for_class(err.cls), msg);
    }
    snprintf(msg, sizeof(msg), "netckptd at %s: %s: %s", f->path, cmd, strerror(-r));
    return fail(f->ctx, NC_EXIT_FAILURE, msg);
}

/* An absolute path for the daemon, which does not share our working directory. */
static int absolute(const char *in, char *out, size_t len)
{
    if (in[0] == '/')
        return snprintf(out, len, "%s", in) < (int)len ? 0 : -ENAMETOOLONG;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof(cwd)))
        return -errno;
    return snprintf(out, len, "%s/%s", cwd, in) < (int)len ? 0 : -ENAMETOOLONG;
}

static void add_str(json_object *o, const char *k, const char *v)
{
    if (v)
        json_object_object_add(o, k, json_object_new_string(v));
}

static void add_bool(json_object *o, const char *k, bool v)
{
    if (v)
        json_object_object_add(o, k, json_object_new_boolean(true));
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal cuts it short: the loop looks at the flag */
}

/* Follow a job to its end: the step (and the save's progress) on a TTY, and a cancel when we
 * are interrupted, so that the daemon rolls back as the CLI itself would. Returns 0 with *res
 * (the job's result), or the exit code. */
static int follow_job(struct fwd *f, int64_t id, json_object **res)
{
    struct cli_ctx *ctx = f->ctx;
    char shown[32] = "";
    bool progress = false, cancelled = false;
    *res = NULL;
    for (;;) {
        if (*ctx->interrupted && !cancelled) {
            json_object *a = json_object_new_object(), *ret = NULL;
            json_object_object_add(a, "job", json_object_new_int64(id));
            struct qga_error err;
            daemon_client_call(&f->dc, "cancel", a, CALL_TIMEOUT_MS, &ret, &err);
            json_object_put(a);
            json_object_put(ret);
            cancelled = true;
        }
        json_object *a = json_object_new_object(), *job = NULL;
        json_object_object_add(a, "job", json_object_new_int64(id));
        struct qga_error err;
        qga_error_clear(&err);
        int r = daemon_client_call(&f->dc, "status", a, CALL_TIMEOUT_MS, &job, &err);
        json_object_put(a);
        if (r < 0) {
            if (progress)
                cli_progress_done(ctx);
            char msg[900];
            /* The daemon died or dropped us mid-job: its journal keeps any gate, and its next
             * start (or `netckpt unblock`) clears it, so this is "rollback incomplete". */
            snprintf(msg, sizeof(msg),
                     "lost netckptd at %s while it ran job %" PRId64 " (%s); its journal keeps "
                     "any gate: restart netckptd or run 'netckpt unblock DOMAIN'",
                     f->path, id, r == -EREMOTEIO ? err.desc : strerror(-r));
            return fail(ctx, NC_EXIT_ROLLBACK_FAILED, msg);
        }
        if (!strcmp(cli_jstr(job, "state", ""), "done")) {
            if (progress)
                cli_progress_done(ctx);
            if (ctx->tty && !ctx->quiet && shown[0]) {
                fprintf(stderr, "\r\033[K");
                fflush(stderr);
            }
            *res = json_object_get(cli_jget(job, "result"));
            if (!*res) {
                char msg[1200];
                snprintf(msg, sizeof(msg), "netckptd job %" PRId64 ": %s", id,
                         cli_jstr(job, "message", cli_jstr(job, "outcome", "failed")));
                json_object_put(job);
                return fail(ctx, NC_EXIT_FAILURE, msg);
            }
            json_object_put(job);
            return 0;
        }
        const char *step = cli_jstr(job, "step", "");
        json_object *p = cli_jget(job, "progress");
        if (p) {
            cli_progress(ctx, step, (uint64_t)json_object_get_int64(cli_jget(p, "done")),
                         (uint64_t)json_object_get_int64(cli_jget(p, "total")));
            progress = true;
        } else if (step[0] && strcmp(step, shown) != 0) {
            if (progress)
                cli_progress_done(ctx);
            progress = false;
            if (ctx->tty && !ctx->quiet) {
                fprintf(stderr, "\r\033[K%s ...", step);
                fflush(stderr);
            }
        }
        snprintf(shown, sizeof(shown), "%s", step);
        json_object_put(job);
        sleep_ms(POLL_MS);
    }
}

static void print_migrate(const struct cli_ctx *ctx, json_object *res);

/* Start a job (wait:false), follow it, print its report as the standalone command would. */
static int run_job(struct fwd *f, const char *cmd, json_object *args, const char *asked,
                   bool continue_running, bool paused)
{
    json_object_object_add(args, "wait", json_object_new_boolean(false));
    json_object *started = NULL;
    int code = call(f, cmd, args, &started);
    json_object_put(args);
    if (code)
        return code;
    int64_t id = json_object_get_int64(cli_jget(started, "job"));
    log_debug("netckptd runs the %s as job %" PRId64, cmd, id);
    json_object_put(started);
    json_object *res = NULL;
    code = follow_job(f, id, &res);
    if (code)
        return code;
    /* The standalone CLI prints this line when the rollback begins; here it is known at the
     * end. */
    if (!strcmp(cmd, "migrate")) {
        json_object *ec = cli_jget(res, "exit_code");
        code = ec ? json_object_get_int(ec) : NC_EXIT_FAILURE;
        if (!f->ctx->json)
            print_migrate(f->ctx, res);
    } else {
        if (json_object_get_boolean(cli_jget(res, "rolled_back")) && !f->ctx->quiet)
            fprintf(stderr, "netckpt: %s failed; rolling back\n",
                    cli_jstr(res, "failed_step", "none"));
        code = cli_txn_print(f->ctx, cmd, res, asked, continue_running, paused);
    }
    if (f->ctx->json)
        cli_print_json(res);
    else
        json_object_put(res);
    return code;
}

static int fwd_checkpoint(struct fwd *f, const struct cli_args *a)
{
    uint64_t freeze_s;
    if (cli_freeze_timeout("checkpoint", a, &freeze_s) < 0)
        return NC_EXIT_USAGE;
    char dir[PATH_MAX];
    if (absolute(cli_arg_str(a, "dir"), dir, sizeof(dir)) < 0)
        return fail(f->ctx, NC_EXIT_USAGE, "checkpoint: --dir is too long");
    size_t limit = 0;
    if (cli_replay_limit("checkpoint", a, &limit) < 0)
        return NC_EXIT_USAGE;
    json_object *o = json_object_new_object();
    add_str(o, "domain", cli_arg_str(a, "domain"));
    add_str(o, "dir", dir);
    add_bool(o, "continue", cli_arg_bool(a, "continue"));
    add_bool(o, "snapshot", cli_arg_bool(a, "snapshot"));
    json_object_object_add(o, "freeze-timeout", json_object_new_int64((int64_t)freeze_s));
    add_bool(o, "no-replay", cli_arg_bool(a, "no-replay"));
    if (limit)
        json_object_object_add(o, "replay-limit", json_object_new_int64((int64_t)limit));
    add_str(o, "agent-channel", cli_arg_str(a, "agent-channel"));
    return run_job(f, "checkpoint", o, cli_arg_str(a, "domain"), cli_arg_bool(a, "continue"),
                   false);
}

static int fwd_restore(struct fwd *f, const struct cli_args *a)
{
    uint64_t watch;
    if (cli_watch_ms("restore", a, &watch) < 0)
        return NC_EXIT_USAGE;
    char bundle[PATH_MAX], image[PATH_MAX];
    const char *img = cli_arg_str(a, "image");
    if (absolute(cli_arg_str(a, "bundle"), bundle, sizeof(bundle)) < 0 ||
        (img && absolute(img, image, sizeof(image)) < 0))
        return fail(f->ctx, NC_EXIT_USAGE, "restore: a path is too long");
    size_t limit = 0;
    if (cli_replay_limit("restore", a, &limit) < 0)
        return NC_EXIT_USAGE;
    json_object *o = json_object_new_object();
    add_str(o, "bundle", bundle);
    add_str(o, "stale", cli_arg_str(a, "stale"));
    add_bool(o, "paused", cli_arg_bool(a, "paused"));
    add_str(o, "image", img ? image : NULL);
    json_object_object_add(o, "watch", json_object_new_int64((int64_t)watch));
    add_bool(o, "no-replay", cli_arg_bool(a, "no-replay"));
    add_str(o, "clock", cli_arg_str(a, "clock"));
    if (limit)
        json_object_object_add(o, "replay-limit", json_object_new_int64((int64_t)limit));
    add_bool(o, "no-kick", cli_arg_bool(a, "no-kick"));
    add_str(o, "agent-channel", cli_arg_str(a, "agent-channel"));
    return run_job(f, "restore", o, cli_arg_str(a, "bundle"), false, cli_arg_bool(a, "paused"));
}

static int fwd_status(struct fwd *f, const struct cli_args *a)
{
    const char *domain = cli_arg_str(a, "domain");
    json_object *o = json_object_new_object(), *ret = NULL;
    add_str(o, "domain", domain);
    add_str(o, "agent-channel", cli_arg_str(a, "agent-channel"));
    int code = call(f, "status", o, &ret);
    json_object_put(o);
    if (code)
        return code;
    json_object_object_del(ret, "busy"); /* the daemon's addition; the agent error names it */
    return cli_status_print(f->ctx, ret, domain);
}

static int fwd_list(struct fwd *f, const struct cli_args *a)
{
    json_object *o = json_object_new_object(), *ret = NULL;
    add_bool(o, "all", cli_arg_bool(a, "all"));
    int code = call(f, "list", o, &ret);
    json_object_put(o);
    if (code)
        return code;
    json_object *arr = json_object_get(cli_jget(ret, "domains"));
    json_object_put(ret);
    if (!arr || !json_object_is_type(arr, json_type_array)) {
        json_object_put(arr);
        return fail(f->ctx, NC_EXIT_FAILURE, "netckptd's list reply has no domains");
    }
    for (size_t i = 0; i < json_object_array_length(arr); i++)
        json_object_object_del(json_object_array_get_idx(arr, i), "busy");
    return cli_list_print(f->ctx, arr);
}

static int fwd_unblock(struct fwd *f, const struct cli_args *a)
{
    const char *domain = cli_arg_str(a, "domain");
    json_object *o = json_object_new_object(), *ret = NULL;
    add_str(o, "domain", domain);
    add_bool(o, "force", cli_arg_bool(a, "force"));
    struct qga_error err;
    qga_error_clear(&err);
    int r = daemon_client_call(&f->dc, "unblock", o, CALL_TIMEOUT_MS, &ret, &err);
    json_object_put(o);
    if (r == -EREMOTEIO)
        return cli_unblock_print(f->ctx, domain, NULL, err.cls == QGA_ERR_BUSY ? -EBUSY : -EIO,
                                 err.desc);
    if (r < 0) {
        char msg[600];
        snprintf(msg, sizeof(msg), "netckptd at %s: unblock: %s", f->path, strerror(-r));
        return cli_unblock_print(f->ctx, domain, NULL, r, msg);
    }
    return cli_unblock_print(f->ctx, domain, ret, 0, NULL);
}

static double jd(json_object *o, const char *k)
{
    json_object *v = cli_jget(o, k);
    return v ? json_object_get_double(v) : 0;
}

static int64_t ji(json_object *o, const char *k)
{
    json_object *v = cli_jget(o, k);
    return v ? json_object_get_int64(v) : 0;
}

/* `netckpt migrate`'s text from its --json report (host/cli-migrate.c prints the same from
 * its struct; keep the two in step). */
static void print_migrate(const struct cli_ctx *ctx, json_object *res)
{
    const char *dom = cli_jstr(res, "domain", "?"), *dest = cli_jstr(res, "destination", "?");
    const char *outcome = cli_jstr(res, "outcome", "failed");
    json_object *t = cli_jget(res, "times"), *m = cli_jget(res, "memory_at_quiesce");
    if (!strcmp(outcome, "ok")) {
        if (ctx->quiet)
            return;
        printf("migration of %s to %s complete: the VM runs on the destination\n", dom, dest);
        printf("  precopy %.3f s (%" PRId64 " MiB of %" PRId64 " MiB, pass %" PRId64
               "), freeze %.1f ms, switchover %.3f s\n",
               jd(t, "precopy_ms") / 1e3, ji(m, "processed") >> 20, ji(m, "total") >> 20,
               ji(m, "iterations"), jd(t, "freeze_ms"), jd(t, "switchover_ms") / 1e3);
        printf("  downtime %.3f s (source suspended to destination resumed), gate time %.3f s\n",
               jd(t, "downtime_ms") / 1e3, jd(t, "gate_ms") / 1e3);
        int64_t n = ji(res, "connections");
        if (json_object_get_boolean(cli_jget(res, "quiesced")))
            printf("  %" PRId64 " connection%s frozen on the source, verified on the destination "
                   "(%.1f ms), thawed with the kick (%.1f ms)\n",
                   n, n == 1 ? "" : "s", jd(t, "verify_ms"), jd(t, "thaw_ms"));
        json_object *dg = cli_jget(res, "dest_gate");
        printf("  destination gate dropped %" PRId64 " packets to the guest, %" PRId64 " from it\n",
               ji(dg, "to_guest_pkts"), ji(dg, "from_guest_pkts"));
        json_object *rep = cli_jget(res, "report"), *conns = cli_jget(rep, "connections");
        if (rep) {
            int worst = -1;
            for (size_t i = 0; conns && i < json_object_array_length(conns); i++) {
                json_object *st = cli_jget(json_object_array_get_idx(conns, i), "stall_ms");
                if (st && json_object_get_int(st) > worst)
                    worst = json_object_get_int(st);
            }
            printf("  connections: %d survived, %d stale, %d reset, %d stalled; worst stall "
                   "%d%s\n",
                   (int)ji(rep, "survived"), (int)ji(rep, "stale"), (int)ji(rep, "reset"),
                   (int)ji(rep, "stalled"), worst < 0 ? 0 : worst,
                   worst < 0 ? " (none measured)" : " ms");
        }
        if (cli_jget(res, "warnings"))
            printf("  warnings: %s\n", cli_jstr(res, "warnings", ""));
        return;
    }
    fprintf(stderr, "netckpt: migration of %s failed at step %s: %s\n", dom,
            cli_jstr(res, "failed_step", "none"), cli_jstr(res, "message", ""));
    if (!strcmp(outcome, "rolled-back") || !strcmp(outcome, "interrupted")) {
        if (json_object_get_boolean(cli_jget(res, "switched_over")))
            fprintf(stderr, "netckpt: the VM runs on the destination (the switchover was done), "
                            "its network open, its agent thawed\n");
        else
            fprintf(stderr, "netckpt: rolled back: the VM runs on the source, its network "
                            "open\n");
    } else if (!strcmp(outcome, "rollback-failed")) {
        fprintf(stderr, "netckpt: ROLLBACK INCOMPLETE: %s\n",
                cli_jstr(res, "rollback_errors", cli_jstr(res, "message", "")));
        fprintf(stderr,
                "netckpt: run 'netckpt unblock %s' (and lift the destination gate with "
                "'netckpt unblock' there) to finish\n",
                dom);
    }
}

static int fwd_migrate(struct fwd *f, const struct cli_args *a)
{
    uint64_t freeze_s, watch;
    if (cli_freeze_timeout("migrate", a, &freeze_s) < 0 || cli_watch_ms("migrate", a, &watch) < 0)
        return NC_EXIT_USAGE;
    json_object *o = json_object_new_object();
    add_str(o, "domain", cli_arg_str(a, "domain"));
    add_str(o, "dest-uri", cli_arg_str(a, "desturi"));
    add_str(o, "migrate-uri", cli_arg_str(a, "migrate-uri"));
    add_str(o, "listen-address", cli_arg_str(a, "listen-address"));
    add_str(o, "dest-netns", cli_arg_str(a, "dest-netns"));
    json_object_object_add(o, "freeze-timeout", json_object_new_int64((int64_t)freeze_s));
    json_object_object_add(o, "watch", json_object_new_int64((int64_t)watch));
    add_str(o, "stale", cli_arg_str(a, "stale"));
    add_str(o, "agent-channel", cli_arg_str(a, "agent-channel"));
    return run_job(f, "migrate", o, cli_arg_str(a, "domain"), false, false);
}

static void print_policies(json_object *ret)
{
    json_object *ps = cli_jget(ret, "policies"), *bad = cli_jget(ret, "refused");
    printf(" %-20s %-8s %-9s %-30s %s\n", "Name", "Enabled", "Mode", "Domains", "Next run");
    printf(
        "------------------------------------------------------------------------------------\n");
    for (size_t i = 0; ps && i < json_object_array_length(ps); i++) {
        json_object *p = json_object_array_get_idx(ps, i);
        char doms[256] = "", next[64] = "-";
        json_object *d = cli_jget(p, "domains");
        for (size_t k = 0; d && k < json_object_array_length(d); k++) {
            size_t n = strlen(doms);
            snprintf(doms + n, sizeof(doms) - n, "%s%s", k ? "," : "",
                     json_object_get_string(json_object_array_get_idx(d, k)));
        }
        int64_t nx = json_object_get_int64(cli_jget(p, "next_run_ns"));
        if (nx > 0)
            cli_iso_time((uint64_t)nx, next, sizeof(next));
        json_object *en = cli_jget(p, "enabled");
        printf(" %-20s %-8s %-9s %-30s %s\n", cli_jstr(p, "name", "?"),
               !en || json_object_get_boolean(en) ? "yes" : "no", cli_jstr(p, "mode", "?"), doms,
               next);
    }
    for (size_t i = 0; bad && i < json_object_array_length(bad); i++) {
        json_object *b = json_object_array_get_idx(bad, i);
        printf("refused: %s:%" PRId64 ": %s\n", cli_jstr(b, "file", "?"),
               json_object_get_int64(cli_jget(b, "line")), cli_jstr(b, "reason", "?"));
    }
}

static int fwd_policy(struct fwd *f, const struct cli_args *a)
{
    const char *action = cli_arg_str(a, "action");
    const char *name = cli_arg_str(a, "name");
    json_object *o = json_object_new_object(), *ret = NULL;
    const char *cmd = "policy-list";
    if (action && !strcmp(action, "run")) {
        if (!name) {
            json_object_put(o);
            fprintf(stderr, "netckpt: policy run: the policy name is missing\n");
            return NC_EXIT_USAGE;
        }
        cmd = "policy-run";
        add_str(o, "name", name);
        add_bool(o, "wait", cli_arg_bool(a, "wait"));
    } else if (name) {
        json_object_put(o);
        fprintf(stderr, "netckpt: policy list takes no name\n");
        return NC_EXIT_USAGE;
    }
    struct qga_error err;
    qga_error_clear(&err);
    /* policy-run --wait waits for its checkpoints */
    int r = daemon_client_call(&f->dc, cmd, o, cli_arg_bool(a, "wait") ? -1 : CALL_TIMEOUT_MS, &ret,
                               &err);
    json_object_put(o);
    if (r == -EREMOTEIO)
        return fail(f->ctx, exit_for_class(err.cls), err.desc);
    if (r < 0) {
        char msg[600];
        snprintf(msg, sizeof(msg), "netckptd at %s: %s: %s", f->path, cmd, strerror(-r));
        return fail(f->ctx, NC_EXIT_FAILURE, msg);
    }
    int code = NC_EXIT_OK;
    json_object *results = cli_jget(ret, "results");
    for (size_t i = 0; results && i < json_object_array_length(results); i++)
        if (!json_object_get_boolean(cli_jget(json_object_array_get_idx(results, i), "ok")))
            code = NC_EXIT_FAILURE;
    if (f->ctx->json) {
        cli_print_json(ret);
        return code;
    }
    if (!f->ctx->quiet) {
        if (!strcmp(cmd, "policy-list")) {
            print_policies(ret);
        } else {
            json_object *jobs = cli_jget(ret, "jobs"), *sk = cli_jget(ret, "skipped");
            printf("policy %s: %zu job%s started, %zu domain%s skipped\n", name,
                   jobs ? json_object_array_length(jobs) : 0,
                   jobs && json_object_array_length(jobs) == 1 ? "" : "s",
                   sk ? json_object_array_length(sk) : 0,
                   sk && json_object_array_length(sk) == 1 ? "" : "s");
            for (size_t i = 0; jobs && i < json_object_array_length(jobs); i++) {
                json_object *j = json_object_array_get_idx(jobs, i);
                printf("  %s: job %" PRId64 "\n", cli_jstr(j, "domain", "?"),
                       json_object_get_int64(cli_jget(j, "job")));
            }
            for (size_t i = 0; sk && i < json_object_array_length(sk); i++) {
                json_object *s = json_object_array_get_idx(sk, i);
                printf("  %s: skipped: %s\n", cli_jstr(s, "domain", "?"),
                       cli_jstr(s, "reason", "?"));
            }
            for (size_t i = 0; results && i < json_object_array_length(results); i++) {
                json_object *j = json_object_array_get_idx(results, i);
                printf("  %s: job %" PRId64 " %s: %s\n", cli_jstr(j, "domain", "?"),
                       json_object_get_int64(cli_jget(j, "job")), cli_jstr(j, "outcome", "?"),
                       cli_jstr(j, "message", ""));
            }
        }
    }
    json_object_put(ret);
    return code;
}

/* Does the daemon drive the libvirt this invocation would? Otherwise work alone: `netckpt -c
 * test:///default list` must not list the daemon's domains. */
static bool same_uri(struct fwd *f, bool *answered)
{
    json_object *st = NULL;
    struct qga_error err;
    *answered = false;
    if (daemon_client_call(&f->dc, "status", NULL, CALL_TIMEOUT_MS, &st, &err) < 0)
        return false;
    *answered = true;
    char mine[4200];
    const char *want = f->ctx->uri;
    if (!want) {
        if (nc_virt_default_uri(f->ctx->state_dir, mine, sizeof(mine)) < 0) {
            json_object_put(st);
            return false;
        }
        want = mine;
    }
    bool same = !strcmp(cli_jstr(st, "uri", ""), want);
    if (!same)
        log_debug("netckptd at %s drives %s, not %s: working alone", f->path,
                  cli_jstr(st, "uri", "?"), want);
    json_object_put(st);
    return same;
}

int cli_daemon_forward(struct cli_ctx *ctx, const struct cli_args *a, int *rc)
{
    static const char *const cmds[] = {"checkpoint", "restore", "status", "list",
                                       "unblock",    "policy",  "migrate"};
    const char *name = a->cmd->name;
    bool ours = false;
    for (size_t i = 0; i < ELEMENTSOF(cmds); i++)
        ours = ours || !strcmp(name, cmds[i]);
    if (!ours || ctx->no_daemon)
        return 0;
    /* The daemon runs no caller's shell command and reads no caller's file (and its migrate
     * job has no --no-kick yet). */
    if (!strcmp(name, "migrate") && (cli_arg_str(a, "switchover-hook") || cli_arg_str(a, "xml") ||
                                     cli_arg_bool(a, "no-kick"))) {
        log_info("netckptd does not take --switchover-hook, --xml or --no-kick for migrate: "
                 "working alone");
        return 0;
    }
    struct fwd f = {.ctx = ctx, .path = daemon_client_socket(ctx->daemon_socket)};
    bool explicit = ctx->daemon_socket != NULL;
    int r = daemon_client_connect(&f.dc, ctx->daemon_socket, CONNECT_TIMEOUT_MS);
    if (r < 0) {
        char msg[600];
        snprintf(msg, sizeof(msg), "cannot reach netckptd at %s: %s", f.path,
                 r == -EACCES ? "permission denied" : strerror(-r));
        if (explicit) {
            *rc = fail(ctx, NC_EXIT_FAILURE, msg);
            return 1;
        }
        if (r != -ENOENT && r != -ECONNREFUSED)
            log_warn("%s; working alone", msg);
        return 0;
    }
    bool answered;
    if (!same_uri(&f, &answered)) {
        daemon_client_close(&f.dc);
        if (explicit || !answered) {
            char msg[700];
            snprintf(msg, sizeof(msg), "netckptd at %s %s", f.path,
                     answered ? "drives another libvirt URI (see 'netckpt -v')"
                              : "does not answer its status request");
            *rc = fail(ctx, NC_EXIT_FAILURE, msg);
            return 1;
        }
        return 0;
    }
    log_debug("via netckptd at %s", f.path);
    if (!strcmp(name, "checkpoint"))
        *rc = fwd_checkpoint(&f, a);
    else if (!strcmp(name, "restore"))
        *rc = fwd_restore(&f, a);
    else if (!strcmp(name, "status"))
        *rc = fwd_status(&f, a);
    else if (!strcmp(name, "list"))
        *rc = fwd_list(&f, a);
    else if (!strcmp(name, "unblock"))
        *rc = fwd_unblock(&f, a);
    else if (!strcmp(name, "migrate"))
        *rc = fwd_migrate(&f, a);
    else
        *rc = fwd_policy(&f, a);
    daemon_client_close(&f.dc);
    return 1;
}
