/* host/daemon-policy.c: policies in the daemon: (re)load, scheduling, runs, deferrals, and the
 * last-run times kept in <state_dir>/daemon/policy-runs.json so that a restart does not push
 * an interval policy's next run back by a whole interval. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "common/log.h"
#include "common/util.h"
#include "host/daemon.h"
#include "host/virt.h"

#define RUNS_FILE_MAX (256u << 10)

static void runs_path(const struct daemon *d, char *buf, size_t len)
{
    snprintf(buf, len, "%s/daemon/policy-runs.json", d->cfg.state_dir);
}

static json_object *runs_read(const struct daemon *d)
{
    char path[4200], *buf = NULL;
    size_t len;
    runs_path(d, path, sizeof(path));
    if (read_file(path, RUNS_FILE_MAX, &buf, &len) < 0)
        return json_object_new_object();
    json_object *j = json_tokener_parse(buf);
    free(buf);
    if (!j || !json_object_is_type(j, json_type_object)) {
        json_object_put(j);
        log_warn("%s is not a JSON object; policy last-run times forgotten", path);
        return json_object_new_object();
    }
    return j;
}

static uint64_t runs_get(json_object *runs, const char *name)
{
    json_object *v;
    if (json_object_object_get_ex(runs, name, &v) && json_object_is_type(v, json_type_int) &&
        json_object_get_int64(v) > 0)
        return (uint64_t)json_object_get_int64(v);
    return 0;
}

static void runs_set(struct daemon *d, const char *name, uint64_t t)
{
    char path[4200], dir[4200];
    runs_path(d, path, sizeof(path));
    snprintf(dir, sizeof(dir), "%s/daemon", d->cfg.state_dir);
    json_object *runs = runs_read(d);
    json_object_object_add(runs, name, json_object_new_int64((int64_t)t));
    const char *s = json_object_to_json_string_ext(runs, JSON_C_TO_STRING_PLAIN);
    int r = mkdir_p(dir, 0700);
    if (r >= 0)
        r = write_file_atomic(path, s, strlen(s), 0600);
    if (r < 0)
        log_warn("cannot record the run of policy %s in %s: %s", name, path, strerror(-r));
    json_object_put(runs);
}

int daemon_policies_load(struct daemon *d)
{
    struct policy_set ns;
    int r = policy_load_dir(d->cfg.policy_dir, NULL, &ns);
    if (r < 0) {
        daemon_event(d, "error", "policy-load", NULL, NULL, 0,
                     "cannot read the policy dir %s: %s; keeping the policies loaded before",
                     d->cfg.policy_dir, strerror(-r));
        return r;
    }
    for (size_t i = 0; i < ns.n_errors; i++)
        daemon_event(d, "error", "policy-refused", NULL, NULL, 0, "%s:%d: %s", ns.errors[i].file,
                     ns.errors[i].line, ns.errors[i].reason);
    json_object *runs = runs_read(d);
    pthread_mutex_lock(&d->lock);
    /* Unschedule what went away or got disabled; (re)schedule the rest (unchanged schedules
     * keep their due time). Pending deferral retries stay. */
    for (size_t i = 0; i < d->policies.n; i++) {
        const struct policy *p = policy_find(&ns, d->policies.p[i].name);
        if (!p || !p->enabled)
            sched_remove(&d->sched, d->policies.p[i].name);
    }
    for (size_t i = 0; i < ns.n; i++) {
        const struct policy *p = &ns.p[i];
        if (!p->enabled) {
            sched_remove(&d->sched, p->name);
            continue;
        }
        int q = sched_set(&d->sched, p->name, &p->schedule, runs_get(runs, p->name));
        if (q < 0)
            log_warn("policy %s: cannot schedule: %s", p->name, strerror(-q));
    }
    policy_set_free(&d->policies);
    d->policies = ns;
    d->metrics.policies_loaded = ns.n;
    d->metrics.policy_files_refused = ns.n_errors;
    pthread_mutex_unlock(&d->lock);
    json_object_put(runs);
    daemon_event(d, ns.n_errors ? "warn" : "info", "policy-load", NULL, NULL, 0,
                 "%zu polic%s loaded from %s, %zu file%s refused", ns.n, ns.n == 1 ? "y" : "ies",
                 d->cfg.policy_dir, ns.n_errors, ns.n_errors == 1 ? "" : "s");
    daemon_wake(d);
    daemon_metrics_flush(d);
    return 0;
}

static json_object *skip(json_object *skipped, const char *domain, const char *reason)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "domain", json_object_new_string(domain));
    json_object_object_add(o, "reason", json_object_new_string(reason));
    json_object_array_add(skipped, o);
    return o;
}

int daemon_policy_run(struct daemon *d, const char *name, const char *only_domain, bool wait,
                      json_object **report, char *err, size_t errlen)
{
    *report = NULL;
    struct policy p;
    uint64_t deferred_since = 0;
    pthread_mutex_lock(&d->lock);
    const struct policy *found = policy_find(&d->policies, name);
    if (found)
        p = *found;
    if (found && only_domain) {
        char key[SCHED_KEY_MAX];
        snprintf(key, sizeof(key), "%s/%s", name, only_domain);
        for (size_t i = 0; i < d->n_defers; i++)
            if (!strcmp(d->defers[i].key, key))
                deferred_since = d->defers[i].since_real_ns;
    }
    pthread_mutex_unlock(&d->lock);
    if (!found) {
        snprintf(err, errlen, "no policy named %s is loaded", name);
        return -ENOENT;
    }

    virDomainPtr *doms = NULL;
    int n = virConnectListAllDomains(d->virt->conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
    if (n < 0) {
        const char *m = virGetLastErrorMessage();
        snprintf(err, errlen, "listing domains failed: %s", m ? m : "?");
        return -EIO;
    }
    json_object *jobs = json_object_new_array(), *skipped = json_object_new_array();
    struct daemon_job *started[DAEMON_MAX_RUNNING];
    size_t n_started = 0;
    for (int i = 0; i < n; i++) {
        const char *dom = virDomainGetName(doms[i]);
        if (!dom || !policy_matches(&p, dom) || (only_domain && strcmp(dom, only_domain)))
            continue;
        if (p.bundle_dir[0] && !policy_domain_dirname_ok(dom)) {
            skip(skipped, dom, "the domain name cannot be a directory name under the bundle dir");
            daemon_event(d, "warn", "policy-skip", dom, p.name, 0,
                         "skipped: the domain name cannot be a directory name");
            continue;
        }
        struct daemon_job t = {
            /* a migrate policy's job checkpoints first when it has bundles (daemon-run.c) */
            .kind = p.migrate ? DAEMON_JOB_MIGRATE : DAEMON_JOB_CHECKPOINT,
            .continue_running = p.continue_running,
            .freeze_timeout_s = p.freeze_timeout_s,
            .replay_limit = p.replay_limit,
            .deferred_since_ns = deferred_since,
        };
        snprintf(t.domain, sizeof(t.domain), "%s", dom);
        snprintf(t.agent_channel, sizeof(t.agent_channel), "%s", p.agent_channel);
        t.policy = malloc(sizeof(*t.policy));
        if (!t.policy) {
            skip(skipped, dom, strerror(ENOMEM));
            continue;
        }
        *t.policy = p;
        struct daemon_job *j = NULL;
        char jerr[512] = "";
        int r = daemon_job_start(d, &t, &j, jerr, sizeof(jerr));
        if (r < 0) {
            skip(skipped, dom, jerr);
            daemon_event(d, "warn", "policy-skip", dom, p.name, 0, "skipped: %s", jerr);
            pthread_mutex_lock(&d->lock);
            d->metrics.policy_skipped++;
            pthread_mutex_unlock(&d->lock);
            continue;
        }
        json_object *o = json_object_new_object();
        json_object_object_add(o, "domain", json_object_new_string(dom));
        json_object_object_add(o, "job", json_object_new_int64((int64_t)j->id));
        json_object_array_add(jobs, o);
        if (wait && n_started < DAEMON_MAX_RUNNING)
            started[n_started++] = j;
        else
            daemon_job_put(d, j);
    }
    for (int i = 0; i < n; i++)
        virDomainFree(doms[i]);
    free(doms);
    if (!json_object_array_length(jobs) && !json_object_array_length(skipped))
        daemon_event(d, "info", "policy-run", only_domain, p.name, 0,
                     "policy %s matched no running domain", p.name);

    json_object *rep = json_object_new_object();
    json_object_object_add(rep, "policy", json_object_new_string(p.name));
    json_object_object_add(rep, "jobs", jobs);
    json_object_object_add(rep, "skipped", skipped);
    if (wait) {
        json_object *results = json_object_new_array();
        for (size_t i = 0; i < n_started; i++) {
            daemon_job_wait(d, started[i], -1);
            pthread_mutex_lock(&d->lock);
            json_object_array_add(results, daemon_job_json(started[i], true));
            pthread_mutex_unlock(&d->lock);
            daemon_job_put(d, started[i]);
        }
        json_object_object_add(rep, "results", results);
    }
    *report = rep;
    return 0;
}

void daemon_policies_tick(struct daemon *d)
{
    for (;;) {
        char key[SCHED_KEY_MAX];
        pthread_mutex_lock(&d->lock);
        int due = d->stopping ? 0 : sched_pop_due(&d->sched, key);
        pthread_mutex_unlock(&d->lock);
        if (!due)
            return;
        char *slash = strchr(key, '/');
        const char *domain = NULL;
        if (slash) { /* a deferred domain's retry */
            *slash = 0;
            domain = slash + 1;
        } else {
            runs_set(d, key, now_realtime_ns());
        }
        json_object *rep = NULL;
        char err[512] = "";
        daemon_event(d, "info", "policy-run", domain, key, 0, "policy %s due%s%s", key,
                     domain ? ": retrying " : "", domain ? domain : "");
        if (daemon_policy_run(d, key, domain, false, &rep, err, sizeof(err)) < 0)
            daemon_event(d, "error", "policy-run", domain, key, 0, "policy %s: %s", key, err);
        json_object_put(rep);
    }
}

void daemon_policy_deferred(struct daemon *d, const struct daemon_job *j)
{
    char key[SCHED_KEY_MAX];
    snprintf(key, sizeof(key), "%s/%s", j->policy->name, j->domain);
    struct sched_spec once = {.kind = SCHED_ONCE, .delay_s = j->retry_s ? j->retry_s : 60};
    pthread_mutex_lock(&d->lock);
    d->metrics.policy_deferred++;
    size_t i;
    for (i = 0; i < d->n_defers; i++)
        if (!strcmp(d->defers[i].key, key))
            break;
    if (i == d->n_defers && d->n_defers < DAEMON_MAX_DEFERS) {
        snprintf(d->defers[i].key, sizeof(d->defers[i].key), "%s", key);
        d->defers[i].since_real_ns = j->deferred_since_ns;
        d->n_defers++;
    }
    sched_set(&d->sched, key, &once, 0);
    pthread_mutex_unlock(&d->lock);
    daemon_wake(d);
}

void daemon_policy_settled(struct daemon *d, const struct daemon_job *j)
{
    char key[SCHED_KEY_MAX];
    snprintf(key, sizeof(key), "%s/%s", j->policy->name, j->domain);
    pthread_mutex_lock(&d->lock);
    if (!strcmp(j->outcome, "skipped"))
        d->metrics.policy_skipped++;
    for (size_t i = 0; i < d->n_defers; i++)
        if (!strcmp(d->defers[i].key, key)) {
            memmove(&d->defers[i], &d->defers[i + 1], (d->n_defers - i - 1) * sizeof(d->defers[0]));
            d->n_defers--;
            break;
        }
    pthread_mutex_unlock(&d->lock);
}

json_object *daemon_policies_json(struct daemon *d)
{
    json_object *o = json_object_new_object(), *pols = json_object_new_array(),
                *bad = json_object_new_array();
    pthread_mutex_lock(&d->lock);
    json_object_object_add(o, "dir", json_object_new_string(d->cfg.policy_dir));
    for (size_t i = 0; i < d->policies.n; i++) {
        const struct policy *p = &d->policies.p[i];
        json_object *j = json_object_new_object();
        json_object_object_add(j, "name", json_object_new_string(p->name));
        json_object_object_add(j, "file", json_object_new_string(p->file));
        json_object_object_add(j, "enabled", json_object_new_boolean(p->enabled));
        json_object *doms = json_object_new_array();
        for (size_t k = 0; k < p->n_domains; k++)
            json_object_array_add(doms, json_object_new_string(p->domains[k]));
        json_object_object_add(j, "domains", doms);
        json_object *s = json_object_new_object();
        if (p->schedule.kind == SCHED_INTERVAL) {
            json_object_object_add(s, "interval_s",
                                   json_object_new_int64((int64_t)p->schedule.interval_s));
        } else {
            json_object *times = json_object_new_array();
            for (size_t k = 0; k < p->schedule.n_times; k++) {
                char hm[8];
                snprintf(hm, sizeof(hm), "%02u:%02u", (unsigned)(p->schedule.times_min[k] / 60),
                         (unsigned)(p->schedule.times_min[k] % 60));
                json_object_array_add(times, json_object_new_string(hm));
            }
            json_object_object_add(s, "daily", times);
            json_object_object_add(s, "timezone",
                                   json_object_new_string(p->schedule.utc ? "utc" : "local"));
        }
        json_object_object_add(j, "schedule", s);
        json_object_object_add(j, "mode",
                               json_object_new_string(p->migrate            ? "migrate"
                                                      : p->continue_running ? "continue"
                                                                            : "stop"));
        json_object_object_add(j, "bundle_dir",
                               p->bundle_dir[0] ? json_object_new_string(p->bundle_dir) : NULL);
        json_object_object_add(j, "destination",
                               p->migrate ? json_object_new_string(p->migrate_dest_uri) : NULL);
        json_object *ret = json_object_new_object();
        json_object_object_add(ret, "keep", p->keep ? json_object_new_int64(p->keep) : NULL);
        json_object_object_add(ret, "max_age_s",
                               p->max_age_s ? json_object_new_int64((int64_t)p->max_age_s) : NULL);
        json_object_object_add(j, "retention", ret);
        json_object *c = json_object_new_object();
        json_object_object_add(c, "agent_timeout_s",
                               p->agent_check ? json_object_new_int64(p->agent_timeout_s) : NULL);
        json_object_object_add(c, "max_retransmitting",
                               p->retrans_check ? json_object_new_int64(p->retrans_max) : NULL);
        json_object_object_add(j, "conditions", c);
        uint64_t next = sched_next_real_ns(&d->sched, p->name);
        json_object_object_add(j, "next_run_ns",
                               next ? json_object_new_int64((int64_t)next) : NULL);
        const struct sched_entry *e = sched_find(&d->sched, p->name);
        json_object_object_add(
            j, "last_run_ns",
            e && e->last_run_real_ns ? json_object_new_int64((int64_t)e->last_run_real_ns) : NULL);
        json_object_array_add(pols, j);
    }
    for (size_t i = 0; i < d->policies.n_errors; i++) {
        const struct policy_error *e = &d->policies.errors[i];
        json_object *j = json_object_new_object();
        json_object_object_add(j, "file", json_object_new_string(e->file));
        json_object_object_add(j, "line", e->line ? json_object_new_int(e->line) : NULL);
        json_object_object_add(j, "reason", json_object_new_string(e->reason));
        json_object_array_add(bad, j);
    }
    pthread_mutex_unlock(&d->lock);
    json_object_object_add(o, "policies", pols);
    json_object_object_add(o, "refused", bad);
    return o;
}
