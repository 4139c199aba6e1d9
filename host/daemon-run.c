/* host/daemon-run.c: what a daemon job does (the transaction of host/transaction.h through
 * host/txn-real.h, the same code the netckpt CLI runs), a policy's conditions and retention
 * around it, and the start-up clean-up (journal replay, interrupted bundles). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent-commands.h"
#include "common/log.h"
#include "common/util.h"
#include "host/cli.h"
#include "host/daemon.h"
#include "host/journal.h"
#include "host/migrate.h"
#include "host/retention.h"
#include "host/tap-watch.h"
#include "host/transaction.h"
#include "host/txn-real.h"
#include "host/virt.h"

static void on_txn_event(void *nud, enum txn_event ev, enum txn_step step, uint64_t done,
                         uint64_t total, const char *message)
{
    struct daemon_job *j = nud;
    struct daemon *d = j->d;
    if (ev == TXN_EV_STEP_BEGIN || ev == TXN_EV_PROGRESS) {
        /* the step and its progress, for `status job` (the CLI's progress line) */
        pthread_mutex_lock(&d->lock);
        snprintf(j->step, sizeof(j->step), "%s", txn_step_name(step));
        j->progress_done = ev == TXN_EV_PROGRESS ? done : 0;
        j->progress_total = ev == TXN_EV_PROGRESS ? total : 0;
        pthread_mutex_unlock(&d->lock);
    } else if (ev == TXN_EV_ROLLBACK) {
        daemon_event(d, "warn", "rollback", j->domain, j->policy ? j->policy->name : NULL, j->id,
                     "%s failed: %s; rolling back", txn_step_name(step), message ? message : "");
    }
}

static void finish(struct daemon_job *j, bool ok, const char *outcome, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void finish(struct daemon_job *j, bool ok, const char *outcome, const char *fmt, ...)
{
    j->ok = ok;
    snprintf(j->outcome, sizeof(j->outcome), "%s", outcome);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->message, sizeof(j->message), fmt, ap);
    va_end(ap);
}

/* The record `netckpt status` shows as the last checkpoint. */
static void record_last(struct daemon *d, const struct txn_result *r)
{
    struct cli_ctx cctx = {.state_dir = d->cfg.state_dir};
    json_object *rec = json_object_new_object();
    char iso[64];
    cli_iso_time(r->m.created_ns, iso, sizeof(iso));
    json_object_object_add(rec, "bundle", json_object_new_string(r->bundle_path));
    json_object_object_add(rec, "created_ns", json_object_new_int64((int64_t)r->m.created_ns));
    json_object_object_add(rec, "created", json_object_new_string(iso));
    json_object_object_add(rec, "mode", json_object_new_string(manifest_mode_name(r->m.mode)));
    json_object_object_add(rec, "image_id", json_object_new_string(r->m.image_id));
    json_object_object_add(rec, "connections", json_object_new_int64(r->m.n_connections));
    int q = cli_last_checkpoint_write(&cctx, r->m.domain_name, rec);
    if (q < 0)
        log_warn("cannot record the last checkpoint of %s: %s", r->m.domain_name, strerror(-q));
    json_object_put(rec);
}

/* The policy's conditions. 1: go on, 0: j finished (skipped or deferred). */
static int check_conditions(struct daemon *d, struct daemon_job *j)
{
    const struct policy *p = j->policy;
    if (!p->agent_check && !p->retrans_check)
        return 1;
    struct txn_real t;
    struct nc_virt view;
    txn_real_init(&t, daemon_virt_view(d, &view), d->cfg.state_dir, &j->cancel);
    t.agent_name = j->agent_channel[0] ? j->agent_channel : NULL;
    snprintf(t.domain, sizeof(t.domain), "%s", j->domain);
    json_object *st = NULL;
    char err[512] = "";
    uint32_t tmo_s = p->agent_check ? p->agent_timeout_s : 5;
    int r = txn_real_agent_call(&t, AGENT_CMD_NET_STATUS, NULL, (int)tmo_s * 1000, &st, err,
                                sizeof(err));
    txn_real_done(&t);
    daemon_virt_view_done(t.v);
    if (r < 0) {
        if (p->agent_check) {
            finish(j, false, "skipped", "the agent did not answer guest-net-status within %u s: %s",
                   tmo_s, err[0] ? err : strerror(-r));
            return 0;
        }
        return 1; /* the checkpoint itself will report the agent */
    }
    int go = 1;
    if (p->retrans_check) {
        /* guest-net-status's "retransmitting" (guest/tcp-retrans.h), validated: guest data */
        int64_t n;
        char why[256];
        uint64_t now = now_realtime_ns();
        switch (policy_retrans_eval(p, st, j->deferred_since_ns, now, &n, why, sizeof(why))) {
        case POLICY_RETRANS_GO:
            break;
        case POLICY_RETRANS_UNAVAILABLE:
            daemon_event(d, "info", "condition-unavailable", j->domain, p->name, j->id,
                         "retransmitting condition not evaluated: %s", why);
            break;
        case POLICY_RETRANS_GIVE_UP:
            finish(j, false, "skipped", "%s", why);
            go = 0;
            break;
        case POLICY_RETRANS_DEFER:
            j->deferred_since_ns = j->deferred_since_ns ? j->deferred_since_ns : now;
            j->retry_s = p->retrans_retry_s;
            finish(j, false, "deferred", "%s", why);
            go = 0;
            break;
        }
    }
    json_object_put(st);
    return go;
}

int daemon_bundle_path(const char *bundle_dir, const char *domain, char *buf, size_t len)
{
    char name[32];
    int r = retention_bundle_name(now_realtime_ns(), name, sizeof(name));
    if (r < 0)
        return r;
    for (int i = 0; i < 100; i++) {
        int n = i ? snprintf(buf, len, "%s/%s/%s-%d", bundle_dir, domain, name, i)
                  : snprintf(buf, len, "%s/%s/%s", bundle_dir, domain, name);
        if (n < 0 || (size_t)n >= len)
            return -ENAMETOOLONG;
        char partial[4400];
        const char *base = strrchr(buf, '/') + 1;
        snprintf(partial, sizeof(partial), "%s/%s/.%s%s", bundle_dir, domain, base,
                 BUNDLE_PARTIAL_SUFFIX);
        if (access(buf, F_OK) < 0 && errno == ENOENT && access(partial, F_OK) < 0 &&
            errno == ENOENT)
            return 0;
    }
    return -EEXIST;
}

/* The part of a job's transaction that checkpoint and restore share: the real ops bound to
 * this job's cancel flag, agent channel and event sink. */
static struct txn_ctx job_txn_begin(struct daemon *d, struct daemon_job *j, struct txn_real *t,
                                    struct nc_virt *view)
{
    /* this thread's own view of the connection: its errors are its own */
    txn_real_init(t, daemon_virt_view(d, view), d->cfg.state_dir, &j->cancel);
    t->agent_name = j->agent_channel[0] ? j->agent_channel : NULL;
    return (struct txn_ctx){.ops = &txn_real_ops,
                            .ud = t,
                            .cancel = &j->cancel,
                            .notify = on_txn_event,
                            .nud = j,
                            .pid = getpid()};
}

/* After the transaction: release the ops, keep the result for the job and count it. */
static void job_txn_end(struct daemon *d, struct daemon_job *j, struct txn_real *t, bool restore,
                        const struct txn_result *r)
{
    txn_real_done(t);
    daemon_virt_view_done(t->v);
    j->result = cli_txn_result_json(restore ? "restore" : "checkpoint", r,
                                    cli_exit_for_outcome(r->outcome));
    pthread_mutex_lock(&d->lock);
    metrics_record(&d->metrics, restore, r);
    pthread_mutex_unlock(&d->lock);
}

static void run_checkpoint(struct daemon *d, struct daemon_job *j)
{
    if (j->policy) {
        if (!check_conditions(d, j))
            return;
        int q = daemon_bundle_path(j->policy->bundle_dir, j->domain, j->path, sizeof(j->path));
        if (q < 0) {
            finish(j, false, "failed", "no bundle path under %s: %s", j->policy->bundle_dir,
                   strerror(-q));
            return;
        }
    }
    struct txn_real t;
    struct nc_virt view;
    struct txn_ctx tc = job_txn_begin(d, j, &t, &view);
    struct txn_checkpoint_opts o = {
        .domain = j->domain,
        .dir = j->path,
        .continue_running = j->continue_running,
        .snapshot = j->snapshot,
        .watchdog_ms = j->freeze_timeout_s * 1000u,
        .no_replay = j->no_replay,
    };
    t.replay_limit = j->replay_limit;
    struct txn_result r;
    txn_checkpoint(&tc, &o, &r);
    job_txn_end(d, j, &t, false, &r);
    if (r.outcome == TXN_OK) {
        record_last(d, &r);
        finish(j, true, txn_outcome_name(r.outcome), "bundle %s", r.bundle_path);
    } else {
        finish(j, false, txn_outcome_name(r.outcome), "step %s: %s", txn_step_name(r.failed_step),
               r.message);
    }
    txn_result_done(&r);

    if (j->ok && j->policy && (j->policy->keep || j->policy->max_age_s)) {
        char dir[4400];
        snprintf(dir, sizeof(dir), "%s/%s", j->policy->bundle_dir, j->domain);
        struct retention_rule rule = {.keep = j->policy->keep, .max_age_s = j->policy->max_age_s};
        json_object *rep = NULL;
        int n = retention_apply(dir, &rule, now_realtime_ns(), &rep);
        if (n < 0)
            daemon_event(d, "warn", "retention", j->domain, j->policy->name, j->id,
                         "retention of %s failed: %s", dir, strerror(-n));
        else if (n > 0)
            daemon_event(d, "info", "retention", j->domain, j->policy->name, j->id,
                         "retention removed %d bundle%s from %s", n, n == 1 ? "" : "s", dir);
        if (n > 0) {
            pthread_mutex_lock(&d->lock);
            d->metrics.bundles_pruned += (uint64_t)n;
            pthread_mutex_unlock(&d->lock);
        }
        if (rep && j->result)
            json_object_object_add(j->result, "retention", rep);
        else
            json_object_put(rep);
    }
}

static void run_restore(struct daemon *d, struct daemon_job *j)
{
    struct txn_real t;
    struct nc_virt view;
    struct txn_ctx tc = job_txn_begin(d, j, &t, &view);
    t.watch_ms = j->watch_ms >= 0 ? j->watch_ms : TAP_WATCH_DEFAULT_MS;
    struct txn_restore_opts o = {
        .bundle = j->path,
        .image_override = j->image[0] ? j->image : NULL,
        .reset_stale = j->reset_stale,
        .leave_paused = j->paused,
        .no_replay = j->no_replay,
        .keep_clock = j->keep_clock,
        .no_kick = j->no_kick,
    };
    t.replay_limit = j->replay_limit;
    struct txn_result r;
    txn_restore(&tc, &o, &r);
    job_txn_end(d, j, &t, true, &r);
    if (r.outcome == TXN_OK)
        finish(j, true, txn_outcome_name(r.outcome), "restored %s", j->path);
    else
        finish(j, false, txn_outcome_name(r.outcome), "step %s: %s", txn_step_name(r.failed_step),
               r.message);
    txn_result_done(&r);
}

static void on_migrate_step(void *ud, enum migrate_step step, bool end, uint64_t done,
                            uint64_t total)
{
    struct daemon_job *j = ud;
    struct daemon *d = j->d;
    pthread_mutex_lock(&d->lock);
    snprintf(j->step, sizeof(j->step), "%s", migrate_step_name(step));
    j->progress_done = !end ? done : 0;
    j->progress_total = !end ? total : 0;
    pthread_mutex_unlock(&d->lock);
}

/* A live migration (host/migrate.h). From a policy: its conditions first, and with <bundles>
 * a continue-mode checkpoint there first (checkpoint-before-migrate), whose report stays in
 * result.checkpoint. */
static void run_migrate(struct daemon *d, struct daemon_job *j)
{
    json_object *before = NULL;
    const struct policy *p = j->policy;
    if (p) {
        snprintf(j->dest_uri, sizeof(j->dest_uri), "%s", p->migrate_dest_uri);
        snprintf(j->migrate_uri, sizeof(j->migrate_uri), "%s", p->migrate_stream_uri);
        snprintf(j->listen_address, sizeof(j->listen_address), "%s", p->migrate_listen_address);
        snprintf(j->dest_netns, sizeof(j->dest_netns), "%s", p->migrate_dest_netns);
        j->watch_ms = -1;
        j->reset_stale = true;
        if (p->bundle_dir[0]) {
            j->continue_running = true;
            run_checkpoint(d, j); /* conditions, checkpoint, retention */
            if (!j->ok) {
                char m[sizeof(j->message)];
                snprintf(m, sizeof(m), "%s", j->message);
                snprintf(j->message, sizeof(j->message), "checkpoint before migrate: %.900s", m);
                return;
            }
            before = j->result;
            j->result = NULL;
        } else if (!check_conditions(d, j)) {
            return;
        }
    }
    struct nc_virt view;
    struct nc_virt *v = daemon_virt_view(d, &view);
    if (!v) {
        json_object_put(before);
        finish(j, false, "failed", "no libvirt connection");
        return;
    }
    /* migrate_run() serves the destination connection from the owner's event loop
     * (nc_virt_open_peer() asks loop_started); the view never stops that loop: cleared before
     * it is released. */
    v->loop_started = d->virt->loop_started;
    struct migrate_opts o = {
        .domain = j->domain,
        .dest_uri = j->dest_uri,
        .migrate_uri = j->migrate_uri[0] ? j->migrate_uri : NULL,
        .listen_address = j->listen_address[0] ? j->listen_address : NULL,
        .dest_netns = j->dest_netns[0] ? j->dest_netns : NULL,
        /* only a policy (root's file) names these; the socket cannot */
        .dest_xml = p && p->migrate_dest_xml[0] ? p->migrate_dest_xml : NULL,
        .switchover_hook = p && p->migrate_hook[0] ? p->migrate_hook : NULL,
        .watchdog_ms = j->freeze_timeout_s * 1000u,
        .watch_ms = j->watch_ms >= 0 ? j->watch_ms : TAP_WATCH_DEFAULT_MS,
        .reset_stale = j->reset_stale,
    };
    struct migrate_ctx mc = {
        .src = v,
        .state_dir = d->cfg.state_dir,
        .agent_name = j->agent_channel[0] ? j->agent_channel : NULL,
        .cancel = &j->cancel,
        .notify = on_migrate_step,
        .nud = j,
    };
    struct migrate_result r;
    migrate_run(&mc, &o, &r);
    v->loop_started = false;
    daemon_virt_view_done(v);
    bool ok = r.outcome == TXN_OK;
    json_object_put(j->result);
    j->result = cli_migrate_result_json(&o, &r, cli_exit_for_outcome(r.outcome));
    if (before)
        json_object_object_add(j->result, "checkpoint", before);
    pthread_mutex_lock(&d->lock);
    ok ? d->metrics.migrations_ok++ : d->metrics.migrations_failed++;
    pthread_mutex_unlock(&d->lock);
    if (ok)
        finish(j, true, txn_outcome_name(r.outcome), "migrated to %s", j->dest_uri);
    else
        finish(j, false, txn_outcome_name(r.outcome), "step %s: %s",
               migrate_step_name(r.failed_step), r.message);
    migrate_result_done(&r);
}

static void real_run(struct daemon *d, struct daemon_job *j)
{
    if (j->kind == DAEMON_JOB_RESTORE)
        run_restore(d, j);
    else if (j->kind == DAEMON_JOB_MIGRATE)
        run_migrate(d, j);
    else
        run_checkpoint(d, j);
}

const struct daemon_runner daemon_real_runner = {.run = real_run};

/* ---- start-up ---- */

int daemon_mark_interrupted(struct daemon *d, const char *bundle_dir, uint64_t min_age_s)
{
    struct journal_entry *live = NULL;
    size_t n_live = 0;
    if (journal_list(d->cfg.state_dir, &live, &n_live) < 0) {
        live = NULL;
        n_live = 0;
    }
    DIR *top = opendir(bundle_dir);
    if (!top) {
        free(live);
        return errno == ENOENT ? 0 : negative_errno();
    }
    int marked = 0;
    struct dirent *de;
    uint64_t now_s = now_realtime_ns() / UINT64_C(1000000000);
    while ((de = readdir(top))) {
        if (de->d_name[0] == '.')
            continue;
        char dom[4400];
        snprintf(dom, sizeof(dom), "%s/%s", bundle_dir, de->d_name);
        DIR *sub = opendir(dom);
        if (!sub)
            continue;
        struct dirent *pe;
        while ((pe = readdir(sub))) {
            size_t l = strlen(pe->d_name), sl = strlen(BUNDLE_PARTIAL_SUFFIX);
            if (pe->d_name[0] != '.' || l <= 1 + sl ||
                strcmp(pe->d_name + l - sl, BUNDLE_PARTIAL_SUFFIX) != 0)
                continue;
            char path[4700], failed[4700];
            snprintf(path, sizeof(path), "%s/%s", dom, pe->d_name);
            bool owned = false;
            for (size_t i = 0; i < n_live; i++)
                if (!strcmp(live[i].bundle_tmp, path) && journal_owner_alive(&live[i]) == 1)
                    owned = true;
            struct stat st;
            /* A live netckpt writes its journal entry just after creating the partial dir, so
             * a very young unowned one may still be in progress. */
            if (owned || lstat(path, &st) < 0 || !S_ISDIR(st.st_mode) ||
                (uint64_t)st.st_mtime + min_age_s > now_s)
                continue;
            snprintf(failed, sizeof(failed), "%s/%.*s.failed", dom, (int)(l - sl), pe->d_name);
            if (rename(path, failed) < 0) {
                daemon_event(d, "warn", "recovery", de->d_name, NULL, 0,
                             "cannot mark the interrupted bundle %s failed: %s", path,
                             strerror(errno));
                continue;
            }
            marked++;
            daemon_event(d, "warn", "bundle-failed", de->d_name, NULL, 0,
                         "interrupted bundle %s marked failed (now %s)", path, failed);
        }
        closedir(sub);
    }
    closedir(top);
    free(live);
    return marked;
}

void daemon_recover(struct daemon *d)
{
    struct journal_entry *list = NULL;
    size_t n = 0;
    int r = journal_list(d->cfg.state_dir, &list, &n);
    size_t stale = 0;
    for (size_t i = 0; r >= 0 && i < n; i++)
        if (journal_owner_alive(&list[i]) == 0) {
            stale++;
            daemon_event(d, "warn", "recovery", list[i].domain, NULL, 0,
                         "journal: %s of pid %d died at step %s; lifting its gate, thawing and "
                         "resuming",
                         list[i].domain, (int)list[i].pid, list[i].step);
        }
    free(list);
    if (r > 0)
        daemon_event(d, "warn", "recovery", NULL, NULL, 0,
                     "journal: %d corrupt entr%s skipped (see the log)", r, r == 1 ? "y" : "ies");
    if (stale) {
        r = txn_real_recover(d->virt, d->cfg.state_dir);
        if (r < 0)
            daemon_event(d, "error", "recovery", NULL, NULL, 0,
                         "journal recovery incomplete: %s (the entries stay for the next start)",
                         strerror(-r));
        else
            daemon_event(d, "info", "recovery", NULL, NULL, 0,
                         "journal recovery: %d domain%s cleaned up", r, r == 1 ? "" : "s");
        pthread_mutex_lock(&d->lock);
        d->metrics.recovered += r > 0 ? (uint64_t)r : 0;
        pthread_mutex_unlock(&d->lock);
    }
    /* Partial bundles the journal did not know of (killed before its entry was written). */
    pthread_mutex_lock(&d->lock);
    size_t np = d->policies.n;
    char(*dirs)[4096] = np ? calloc(np, sizeof(*dirs)) : NULL;
    for (size_t i = 0; dirs && i < np; i++)
        memcpy(dirs[i], d->policies.p[i].bundle_dir, sizeof(dirs[i]));
    pthread_mutex_unlock(&d->lock);
    char def[4200];
    snprintf(def, sizeof(def), "%s/bundles", d->cfg.state_dir);
    daemon_mark_interrupted(d, def, 60);
    for (size_t i = 0; dirs && i < np; i++) {
        bool seen = !strcmp(dirs[i], def);
        for (size_t k = 0; k < i && !seen; k++)
            seen = !strcmp(dirs[k], dirs[i]);
        if (!seen)
            daemon_mark_interrupted(d, dirs[i], 60);
    }
    free(dirs);
}
