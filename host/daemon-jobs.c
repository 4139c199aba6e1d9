/* host/daemon-jobs.c: claims, jobs and their worker threads, the event ring, the metrics file. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "host/daemon.h"
#include "host/virt.h"

int daemon_init(struct daemon *d, const struct daemon_config *cfg, struct nc_virt *virt,
                const struct daemon_runner *runner, const struct sched_clock *clk)
{
    memset(d, 0, sizeof(*d));
    d->cfg = *cfg;
    d->virt = virt;
    d->runner = runner;
    d->start_mono_ns = now_monotonic_ns();
    d->next_job_id = 1;
    d->events = calloc(DAEMON_EVENTS, sizeof(*d->events));
    if (!d->events)
        return -ENOMEM;
    d->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (d->wake_fd < 0) {
        free(d->events);
        return negative_errno();
    }
    pthread_mutex_init(&d->lock, NULL);
    pthread_mutex_init(&d->flush_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cond, &ca);
    pthread_condattr_destroy(&ca);
    sched_init(&d->sched, clk);
    d->metrics.start_real_ns = now_realtime_ns();
    snprintf(d->policies.dir, sizeof(d->policies.dir), "%s", cfg->policy_dir);
    return 0;
}

void daemon_wake(struct daemon *d)
{
    uint64_t one = 1;
    if (write(d->wake_fd, &one, sizeof(one)) < 0) {
        /* the counter is already non-zero: the main loop wakes anyway */
    }
}

/* Wait on d->cond until deadline (CLOCK_MONOTONIC ns, 0: forever). Under d->lock. */
static int cond_wait_until(struct daemon *d, uint64_t deadline_ns)
{
    if (!deadline_ns)
        return pthread_cond_wait(&d->cond, &d->lock);
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / UINT64_C(1000000000)),
                          .tv_nsec = (long)(deadline_ns % UINT64_C(1000000000))};
    return pthread_cond_timedwait(&d->cond, &d->lock, &ts);
}

static uint64_t deadline_after(int timeout_ms)
{
    return timeout_ms < 0 ? 0 : now_monotonic_ns() + (uint64_t)timeout_ms * UINT64_C(1000000);
}

static void job_free(struct daemon_job *j)
{
    if (!j)
        return;
    if (j->result)
        json_object_put(j->result);
    free(j->policy);
    free(j);
}

void daemon_stop(struct daemon *d, unsigned wait_s)
{
    pthread_mutex_lock(&d->lock);
    d->stopping = true;
    for (size_t i = 0; i < d->n_jobs; i++)
        if (d->jobs[i]->state == DAEMON_JOB_RUNNING)
            d->jobs[i]->cancel = SIGTERM; /* the transaction rolls back between steps */
    for (size_t i = 0; i < d->n_clients; i++)
        shutdown(d->client_fds[i], SHUT_RDWR); /* their threads see EOF and end */
    pthread_cond_broadcast(&d->cond);
    uint64_t deadline = now_monotonic_ns() + (uint64_t)wait_s * UINT64_C(1000000000);
    if (d->running)
        log_info("waiting for %u job%s to finish or roll back", d->running,
                 d->running == 1 ? "" : "s");
    while ((d->running || d->n_clients || d->workers_done != d->workers_started) &&
           now_monotonic_ns() < deadline)
        cond_wait_until(d, deadline);
    if (d->running)
        log_err("%u job%s still running after %u s; exiting anyway (the journal keeps their "
                "gates for the next start)",
                d->running, d->running == 1 ? "" : "s", wait_s);
    pthread_mutex_unlock(&d->lock);
}

void daemon_free(struct daemon *d)
{
    /* Only after daemon_stop found no running job: workers hold d. */
    for (size_t i = 0; i < d->n_jobs; i++)
        job_free(d->jobs[i]);
    d->n_jobs = 0;
    policy_set_free(&d->policies);
    sched_free(&d->sched);
    free(d->events);
    d->events = NULL;
    if (d->wake_fd >= 0)
        close(d->wake_fd);
    d->wake_fd = -1;
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->lock);
    pthread_mutex_destroy(&d->flush_lock);
}

/* ---- claims ---- */

static struct daemon_claim *claim_find(struct daemon *d, const char *domain)
{
    for (size_t i = 0; i < d->n_claims; i++)
        if (!strcmp(d->claims[i].domain, domain))
            return &d->claims[i];
    return NULL;
}

static int claim_locked(struct daemon *d, const char *domain, const char *what, uint64_t job,
                        char *err, size_t errlen)
{
    struct daemon_claim *c = claim_find(d, domain);
    if (c) {
        if (err) {
            char held[64] = "";
            if (c->job)
                snprintf(held, sizeof(held), " (job %" PRIu64 ")", c->job);
            snprintf(err, errlen, "domain %s is busy: a %s%s is running since %" PRIu64 " s ago",
                     domain, c->what, held,
                     (now_realtime_ns() - c->since_real_ns) / UINT64_C(1000000000));
        }
        return -EBUSY;
    }
    if (d->n_claims == DAEMON_MAX_CLAIMS) {
        if (err)
            snprintf(err, errlen, "too many domains busy at once (%d)", DAEMON_MAX_CLAIMS);
        return -EAGAIN;
    }
    c = &d->claims[d->n_claims++];
    memset(c, 0, sizeof(*c));
    snprintf(c->domain, sizeof(c->domain), "%s", domain);
    snprintf(c->what, sizeof(c->what), "%s", what);
    c->job = job;
    c->since_real_ns = now_realtime_ns();
    return 0;
}

static void release_locked(struct daemon *d, const char *domain)
{
    struct daemon_claim *c = claim_find(d, domain);
    if (!c)
        return;
    size_t i = (size_t)(c - d->claims);
    memmove(&d->claims[i], &d->claims[i + 1], (d->n_claims - i - 1) * sizeof(*c));
    d->n_claims--;
}

int daemon_claim(struct daemon *d, const char *domain, const char *what, uint64_t job, char *err,
                 size_t errlen)
{
    pthread_mutex_lock(&d->lock);
    int r = d->stopping ? -ESHUTDOWN : claim_locked(d, domain, what, job, err, errlen);
    if (r == -ESHUTDOWN && err)
        snprintf(err, errlen, "the daemon is stopping");
    pthread_mutex_unlock(&d->lock);
    return r;
}

void daemon_release(struct daemon *d, const char *domain)
{
    pthread_mutex_lock(&d->lock);
    release_locked(d, domain);
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

int daemon_claim_get(struct daemon *d, const char *domain, struct daemon_claim *out)
{
    pthread_mutex_lock(&d->lock);
    struct daemon_claim *c = claim_find(d, domain);
    if (c && out)
        *out = *c;
    pthread_mutex_unlock(&d->lock);
    return c != NULL;
}

/* ---- jobs ---- */

static const char *kind_name(enum daemon_job_kind k)
{
    return k == DAEMON_JOB_RESTORE ? "restore" : k == DAEMON_JOB_MIGRATE ? "migrate" : "checkpoint";
}

static void *worker(void *arg)
{
    struct daemon_job *j = arg;
    struct daemon *d = j->d;
    d->runner->run(d, j);
    j->finished_real_ns = now_realtime_ns();

    bool skipped = !strcmp(j->outcome, "skipped"), deferred = !strcmp(j->outcome, "deferred");
    daemon_event(d,
                 j->ok                 ? "info"
                 : skipped || deferred ? "warn"
                                       : "error",
                 j->ok      ? "job-done"
                 : skipped  ? "job-skipped"
                 : deferred ? "job-deferred"
                            : "job-failed",
                 j->domain, j->policy ? j->policy->name : NULL, j->id, "%s of %s: %s%s%s",
                 kind_name(j->kind), j->domain, j->outcome, j->message[0] ? ": " : "", j->message);
    if (j->policy) {
        if (deferred)
            daemon_policy_deferred(d, j);
        else
            daemon_policy_settled(d, j);
    }

    pthread_mutex_lock(&d->lock);
    j->state = DAEMON_JOB_DONE;
    release_locked(d, j->domain);
    d->running--;
    d->metrics.jobs_running = d->running;
    pthread_mutex_unlock(&d->lock);
    daemon_metrics_flush(d);

    /* Last, and nothing after it: daemon_stop frees d once running is 0 and it is woken. */
    pthread_mutex_lock(&d->lock);
    d->workers_done++;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

/* Drop the oldest finished, unreferenced job when the table is full. Under d->lock. */
static bool make_room(struct daemon *d)
{
    if (d->n_jobs < DAEMON_JOB_HISTORY)
        return true;
    for (size_t i = 0; i < d->n_jobs; i++) {
        struct daemon_job *j = d->jobs[i];
        if (j->state == DAEMON_JOB_DONE && !j->refs) {
            job_free(j);
            memmove(&d->jobs[i], &d->jobs[i + 1], (d->n_jobs - i - 1) * sizeof(j));
            d->n_jobs--;
            return true;
        }
    }
    return false;
}

int daemon_job_start(struct daemon *d, struct daemon_job *tmpl, struct daemon_job **out, char *err,
                     size_t errlen)
{
    if (out)
        *out = NULL;
    struct daemon_job *j = calloc(1, sizeof(*j));
    if (!j) {
        free(tmpl->policy);
        tmpl->policy = NULL;
        return -ENOMEM;
    }
    *j = *tmpl;
    tmpl->policy = NULL;
    j->d = d;
    j->state = DAEMON_JOB_RUNNING;
    j->result = NULL;
    j->cancel = 0;
    j->refs = out ? 1 : 0;
    j->started_real_ns = now_realtime_ns();
    snprintf(j->outcome, sizeof(j->outcome), "running");

    pthread_mutex_lock(&d->lock);
    int r = 0;
    if (d->stopping) {
        r = -ESHUTDOWN;
        snprintf(err, errlen, "the daemon is stopping");
    } else if (d->running >= DAEMON_MAX_RUNNING || !make_room(d)) {
        r = -EAGAIN;
        snprintf(err, errlen, "too many jobs running (%u); try again later", d->running);
    } else {
        j->id = d->next_job_id;
        r = claim_locked(d, j->domain, kind_name(j->kind), j->id, err, errlen);
    }
    if (r == 0) {
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        pthread_t t;
        r = -pthread_create(&t, &a, worker, j);
        pthread_attr_destroy(&a);
        if (r < 0) {
            release_locked(d, j->domain);
            snprintf(err, errlen, "cannot start a worker thread: %s", strerror(-r));
        } else {
            d->next_job_id++;
            d->jobs[d->n_jobs++] = j;
            d->running++;
            d->workers_started++;
            d->metrics.jobs_running = d->running;
        }
    }
    pthread_mutex_unlock(&d->lock);
    if (r < 0) {
        job_free(j);
        return r;
    }
    daemon_event(d, "info", "job-started", j->domain, j->policy ? j->policy->name : NULL, j->id,
                 "%s of %s started%s%s", kind_name(j->kind), j->domain,
                 j->policy ? " by policy " : "", j->policy ? j->policy->name : "");
    if (out)
        *out = j;
    return 0;
}

int daemon_job_wait(struct daemon *d, struct daemon_job *j, int timeout_ms)
{
    uint64_t deadline = deadline_after(timeout_ms);
    pthread_mutex_lock(&d->lock);
    int r = 0;
    while (j->state != DAEMON_JOB_DONE) {
        if (d->stopping) {
            r = -ESHUTDOWN;
            break;
        }
        if (deadline && now_monotonic_ns() >= deadline) {
            r = -ETIMEDOUT;
            break;
        }
        cond_wait_until(d, deadline);
    }
    pthread_mutex_unlock(&d->lock);
    return r;
}

void daemon_job_put(struct daemon *d, struct daemon_job *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&d->lock);
    if (j->refs)
        j->refs--;
    pthread_mutex_unlock(&d->lock);
}

struct daemon_job *daemon_job_get(struct daemon *d, uint64_t id)
{
    struct daemon_job *found = NULL;
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->n_jobs; i++)
        if (d->jobs[i]->id == id) {
            found = d->jobs[i];
            found->refs++;
            break;
        }
    pthread_mutex_unlock(&d->lock);
    return found;
}

json_object *daemon_job_json(const struct daemon_job *j, bool with_result)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "job", json_object_new_int64((int64_t)j->id));
    json_object_object_add(o, "kind", json_object_new_string(kind_name(j->kind)));
    json_object_object_add(o, "domain", json_object_new_string(j->domain));
    json_object_object_add(o, "policy", j->policy ? json_object_new_string(j->policy->name) : NULL);
    json_object_object_add(o, "path", j->path[0] ? json_object_new_string(j->path) : NULL);
    json_object_object_add(
        o, "state", json_object_new_string(j->state == DAEMON_JOB_DONE ? "done" : "running"));
    json_object_object_add(o, "step", j->step[0] ? json_object_new_string(j->step) : NULL);
    if (j->state == DAEMON_JOB_RUNNING && (j->progress_done || j->progress_total)) {
        json_object *p = json_object_new_object();
        json_object_object_add(p, "done", json_object_new_int64((int64_t)j->progress_done));
        json_object_object_add(p, "total", json_object_new_int64((int64_t)j->progress_total));
        json_object_object_add(o, "progress", p);
    }
    json_object_object_add(o, "outcome", json_object_new_string(j->outcome));
    json_object_object_add(o, "ok", json_object_new_boolean(j->ok));
    json_object_object_add(o, "message", j->message[0] ? json_object_new_string(j->message) : NULL);
    json_object_object_add(o, "started_ns", json_object_new_int64((int64_t)j->started_real_ns));
    json_object_object_add(o, "finished_ns",
                           j->finished_real_ns ? json_object_new_int64((int64_t)j->finished_real_ns)
                                               : NULL);
    if (with_result)
        json_object_object_add(o, "result", j->result ? json_object_get(j->result) : NULL);
    return o;
}

/* ---- events ---- */

void daemon_event(struct daemon *d, const char *level, const char *kind, const char *domain,
                  const char *policy, uint64_t job, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    enum log_level lv = !strcmp(level, "error")  ? LOG_LVL_ERR
                        : !strcmp(level, "warn") ? LOG_LVL_WARN
                                                 : LOG_LVL_INFO;
    log_msg(lv, "%s: %s", kind, msg);

    pthread_mutex_lock(&d->lock);
    struct daemon_event *e = &d->events[d->event_seq % DAEMON_EVENTS];
    memset(e, 0, sizeof(*e));
    e->seq = ++d->event_seq;
    e->time_ns = now_realtime_ns();
    snprintf(e->level, sizeof(e->level), "%s", level);
    snprintf(e->kind, sizeof(e->kind), "%s", kind);
    snprintf(e->domain, sizeof(e->domain), "%s", domain ? domain : "");
    snprintf(e->policy, sizeof(e->policy), "%s", policy ? policy : "");
    e->job = job;
    memcpy(e->message, msg, sizeof(msg));
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

static json_object *event_json(const struct daemon_event *e)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "seq", json_object_new_int64((int64_t)e->seq));
    json_object_object_add(o, "time_ns", json_object_new_int64((int64_t)e->time_ns));
    json_object_object_add(o, "level", json_object_new_string(e->level));
    json_object_object_add(o, "kind", json_object_new_string(e->kind));
    json_object_object_add(o, "domain", e->domain[0] ? json_object_new_string(e->domain) : NULL);
    json_object_object_add(o, "policy", e->policy[0] ? json_object_new_string(e->policy) : NULL);
    json_object_object_add(o, "job", e->job ? json_object_new_int64((int64_t)e->job) : NULL);
    json_object_object_add(o, "message", json_object_new_string(e->message));
    return o;
}

json_object *daemon_events_json(struct daemon *d, uint64_t since, size_t max, int timeout_ms,
                                uint64_t *next)
{
    uint64_t deadline = deadline_after(timeout_ms);
    json_object *arr = json_object_new_array();
    pthread_mutex_lock(&d->lock);
    while (d->event_seq <= since && timeout_ms > 0 && !d->stopping && now_monotonic_ns() < deadline)
        cond_wait_until(d, deadline);
    uint64_t oldest = d->event_seq > DAEMON_EVENTS ? d->event_seq - DAEMON_EVENTS + 1 : 1;
    uint64_t s = since + 1 > oldest ? since + 1 : oldest;
    for (; s <= d->event_seq && json_object_array_length(arr) < max; s++)
        json_object_array_add(arr, event_json(&d->events[(s - 1) % DAEMON_EVENTS]));
    *next = s - 1 > since ? s - 1 : since;
    pthread_mutex_unlock(&d->lock);
    return arr;
}

void daemon_metrics_flush(struct daemon *d)
{
    if (!d->cfg.metrics_path[0])
        return;
    pthread_mutex_lock(&d->flush_lock);
    pthread_mutex_lock(&d->lock);
    struct metrics m = d->metrics;
    pthread_mutex_unlock(&d->lock);
    int r = metrics_write(d->cfg.metrics_path, &m);
    pthread_mutex_unlock(&d->flush_lock);
    if (r < 0)
        log_warn("cannot write the metrics file %s: %s", d->cfg.metrics_path, strerror(-r));
}

struct nc_virt *daemon_virt_view(struct daemon *d, struct nc_virt *out)
{
    memset(out, 0, sizeof(*out));
    if (!d->virt || !d->virt->conn)
        return NULL;
    if (virConnectRef(d->virt->conn) < 0)
        return NULL;
    out->conn = d->virt->conn;
    memcpy(out->uri, d->virt->uri, sizeof(out->uri));
    memcpy(out->state_dir, d->virt->state_dir, sizeof(out->state_dir));
    /* loop_started stays false: nc_virt_close() then only drops our reference */
    return out;
}

void daemon_virt_view_done(struct nc_virt *v)
{
    if (v)
        nc_virt_close(v);
}
