/* host/metrics.c: see metrics.h. */
#include "host/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/macro.h"
#include "common/util.h"
#include "host/transaction.h"

double metrics_gate_seconds(const struct txn_result *r)
{
    const struct manifest *m = &r->m;
    uint64_t ns = 0;
    bool up = false;
    for (size_t i = 0; i < m->n_steps; i++) {
        if (!strcmp(m->steps[i].name, "gate")) {
            up = true;
            continue;
        }
        if (!up)
            continue;
        ns += m->steps[i].duration_ns;
        if (!strcmp(m->steps[i].name, "lift"))
            break;
    }
    return (double)ns / 1e9;
}

static int64_t report_count(json_object *rep, const char *key)
{
    json_object *v;
    if (rep && json_object_object_get_ex(rep, key, &v) && json_object_is_type(v, json_type_int))
        return json_object_get_int64(v) > 0 ? json_object_get_int64(v) : 0;
    return 0;
}

void metrics_record(struct metrics *m, bool restore, const struct txn_result *r)
{
    bool ok = r->outcome == TXN_OK;
    if (restore)
        ok ? m->restores_ok++ : m->restores_failed++;
    else
        ok ? m->checkpoints_ok++ : m->checkpoints_failed++;
    uint64_t total = 0;
    for (size_t i = 0; i < r->m.n_steps; i++)
        total += r->m.steps[i].duration_ns;
    if (!restore) {
        m->last_duration_s = (double)total / 1e9;
        m->last_gate_s = metrics_gate_seconds(r);
        if (ok) {
            m->last_success_real_ns = r->m.created_ns ? r->m.created_ns : now_realtime_ns();
            m->last_connections = r->m.n_connections;
            m->conns_frozen += r->m.n_connections;
        }
    }
    m->conns_kept += (uint64_t)report_count(r->report, "survived");
    m->conns_lost +=
        (uint64_t)(report_count(r->report, "reset") + report_count(r->report, "stale"));
    m->conns_stalled += (uint64_t)report_count(r->report, "stalled");
}

struct buf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void put(struct buf *b, const char *fmt, ...) _printf_(2, 3);
static void put(struct buf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

static void metric(struct buf *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A metric with one unlabelled integer sample: most of them. */
static void metric_u64(struct buf *b, const char *name, const char *type, const char *help,
                       uint64_t v)
{
    metric(b, name, type, help);
    put(b, "%s %" PRIu64 "\n", name, v);
}

int metrics_render(const struct metrics *m, char **out)
{
    struct buf b = {.p = malloc(4096), .cap = 4096};
    if (!b.p)
        return -ENOMEM;
    b.p[0] = 0;
    metric(&b, "netckptd_checkpoints_total", "counter", "Checkpoints finished, by result.");
    put(&b, "netckptd_checkpoints_total{result=\"ok\"} %" PRIu64 "\n", m->checkpoints_ok);
    put(&b, "netckptd_checkpoints_total{result=\"failed\"} %" PRIu64 "\n", m->checkpoints_failed);
    metric(&b, "netckptd_restores_total", "counter", "Restores finished, by result.");
    put(&b, "netckptd_restores_total{result=\"ok\"} %" PRIu64 "\n", m->restores_ok);
    put(&b, "netckptd_restores_total{result=\"failed\"} %" PRIu64 "\n", m->restores_failed);
    metric(&b, "netckptd_migrations_total", "counter", "Live migrations finished, by result.");
    put(&b, "netckptd_migrations_total{result=\"ok\"} %" PRIu64 "\n", m->migrations_ok);
    put(&b, "netckptd_migrations_total{result=\"failed\"} %" PRIu64 "\n", m->migrations_failed);
    metric_u64(&b, "netckptd_policy_runs_skipped_total", "counter",
               "Policy checkpoints skipped (agent silent, domain busy or unusable).",
               m->policy_skipped);
    metric_u64(&b, "netckptd_policy_runs_deferred_total", "counter",
               "Policy checkpoints deferred (too many connections retransmitting).",
               m->policy_deferred);
    metric(&b, "netckptd_last_checkpoint_duration_seconds", "gauge",
           "Duration of the last checkpoint, all steps.");
    put(&b, "netckptd_last_checkpoint_duration_seconds %.6f\n", m->last_duration_s);
    metric(&b, "netckptd_last_checkpoint_gate_seconds", "gauge",
           "How long the gate held the network in the last checkpoint.");
    put(&b, "netckptd_last_checkpoint_gate_seconds %.6f\n", m->last_gate_s);
    metric_u64(&b, "netckptd_last_checkpoint_success_timestamp_seconds", "gauge",
               "When the last successful checkpoint was taken (0: never).",
               m->last_success_real_ns / UINT64_C(1000000000));
    metric_u64(&b, "netckptd_connections_frozen_total", "counter",
               "Connections frozen into socket images by successful checkpoints.", m->conns_frozen);
    metric_u64(&b, "netckptd_connections_kept_total", "counter",
               "Connections that survived a resume (continue mode or restore).", m->conns_kept);
    metric_u64(&b, "netckptd_connections_lost_total", "counter",
               "Connections reset or found stale after a resume.", m->conns_lost);
    metric_u64(&b, "netckptd_connections_stalled_total", "counter",
               "Connections still stalled when the report was taken.", m->conns_stalled);
    metric_u64(&b, "netckptd_bundles_pruned_total", "counter", "Bundles removed by retention.",
               m->bundles_pruned);
    metric_u64(&b, "netckptd_jobs_running", "gauge", "Checkpoint and restore jobs running now.",
               m->jobs_running);
    metric(&b, "netckptd_policies", "gauge", "Policy files, by state at the last load.");
    put(&b, "netckptd_policies{state=\"loaded\"} %" PRIu64 "\n", m->policies_loaded);
    put(&b, "netckptd_policies{state=\"refused\"} %" PRIu64 "\n", m->policy_files_refused);
    metric_u64(&b, "netckptd_journal_recovered_total", "counter",
               "Interrupted transactions cleaned up by journal recovery at start.", m->recovered);
    metric_u64(&b, "netckptd_start_timestamp_seconds", "gauge", "When the daemon started.",
               m->start_real_ns / UINT64_C(1000000000));
    if (b.oom) {
        free(b.p);
        return -ENOMEM;
    }
    *out = b.p;
    return 0;
}

int metrics_write(const char *path, const struct metrics *m)
{
    char *text;
    int r = metrics_render(m, &text);
    if (r < 0)
        return r;
    r = write_file_atomic(path, text, strlen(text), 0644);
    free(text);
    return r;
}
