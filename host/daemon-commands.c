/* host/daemon-commands.c: the control commands of netckptd (schemas/daemon-commands.json) and
 * their handlers. Arguments are checked against the table (unknown ones refused with
 * InvalidParameter), so the table, the schema and the code cannot drift apart unnoticed
 * (tests/unit/test-daemon-schema.c). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "agent/agent-commands.h"
#include "common/util.h"
#include "host/bundle.h"
#include "host/cli.h"
#include "host/daemon.h"
#include "host/domain-xml.h"
#include "host/gate.h"
#include "host/journal.h"
#include "host/retention.h"
#include "host/txn-real.h"
#include "host/virt.h"
#include "version.h"

#define DEFAULT_FREEZE_S 60

static const struct daemon_arg args_checkpoint[] = {
    {"domain", json_type_string, true},         {"dir", json_type_string, false},
    {"continue", json_type_boolean, false},     {"snapshot", json_type_boolean, false},
    {"freeze-timeout", json_type_int, false},   {"wait", json_type_boolean, false},
    {"agent-channel", json_type_string, false}, {NULL, 0, false},
};
static const struct daemon_arg args_restore[] = {
    {"bundle", json_type_string, true},         {"stale", json_type_string, false},
    {"paused", json_type_boolean, false},       {"wait", json_type_boolean, false},
    {"agent-channel", json_type_string, false}, {NULL, 0, false},
};
static const struct daemon_arg args_status[] = {
    {"domain", json_type_string, false},
    {"job", json_type_int, false},
    {"agent-channel", json_type_string, false},
    {NULL, 0, false},
};
static const struct daemon_arg args_list[] = {
    {"all", json_type_boolean, false},
    {NULL, 0, false},
};
static const struct daemon_arg args_unblock[] = {
    {"domain", json_type_string, true},
    {"force", json_type_boolean, false},
    {NULL, 0, false},
};
static const struct daemon_arg args_none[] = {{NULL, 0, false}};
static const struct daemon_arg args_policy_run[] = {
    {"name", json_type_string, true},
    {"wait", json_type_boolean, false},
    {NULL, 0, false},
};
static const struct daemon_arg args_events[] = {
    {"since", json_type_int, false},
    {"max", json_type_int, false},
    {"timeout", json_type_int, false},
    {NULL, 0, false},
};

static int cmd_checkpoint(void *ud, json_object *args, json_object **ret, struct qga_error *err);
static int cmd_restore(void *ud, json_object *args, json_object **ret, struct qga_error *err);
static int cmd_status(void *ud, json_object *args, json_object **ret, struct qga_error *err);
static int cmd_list(void *ud, json_object *args, json_object **ret, struct qga_error *err);
static int cmd_unblock(void *ud, json_object *args, json_object **ret, struct qga_error *err);
static int cmd_policy_list(void *ud, json_object *args, json_object **ret, struct qga_error *err);
static int cmd_policy_run(void *ud, json_object *args, json_object **ret, struct qga_error *err);
static int cmd_events(void *ud, json_object *args, json_object **ret, struct qga_error *err);

static const struct daemon_command commands[DAEMON_COMMAND_COUNT] = {
    {"checkpoint", cmd_checkpoint, args_checkpoint},
    {"restore", cmd_restore, args_restore},
    {"status", cmd_status, args_status},
    {"list", cmd_list, args_list},
    {"unblock", cmd_unblock, args_unblock},
    {"policy-list", cmd_policy_list, args_none},
    {"policy-run", cmd_policy_run, args_policy_run},
    {"events", cmd_events, args_events},
};

const struct daemon_command *daemon_commands(size_t *n)
{
    *n = DAEMON_COMMAND_COUNT;
    return commands;
}

void daemon_command_table(struct qga_command out[DAEMON_COMMAND_COUNT])
{
    for (size_t i = 0; i < DAEMON_COMMAND_COUNT; i++)
        out[i] = (struct qga_command){commands[i].name, commands[i].handler, true};
}

/* Refuse arguments the table does not list. */
static int check_known(json_object *args, const struct daemon_arg *known, struct qga_error *err)
{
    const char *names[16];
    size_t n = 0;
    for (; known[n].name && n < ELEMENTSOF(names) - 1; n++)
        names[n] = known[n].name;
    names[n] = NULL;
    return qga_args_check_known(args, names, err);
}

static bool opt_bool(json_object *args, const char *key, bool dflt, int *r, struct qga_error *err)
{
    bool v = dflt;
    if (*r >= 0) {
        int q = qga_arg_bool(args, key, false, &v, err);
        if (q < 0)
            *r = q;
    }
    return v;
}

/* Resolve a name or UUID to the domain's name. -ENOENT when libvirt has no such domain. */
static int canonical_name(struct daemon *d, const char *in, char *out, size_t len,
                          struct qga_error *err)
{
    virDomainPtr dom = NULL;
    int r = nc_virt_lookup(d->virt, in, &dom);
    if (r == -ENOENT) {
        qga_error_set(err, QGA_ERR_NOT_FOUND, "no domain named %s", in);
        return r;
    }
    if (r < 0)
        return qga_error_errno(err, r, "looking up domain %s", in);
    const char *name = virDomainGetName(dom);
    snprintf(out, len, "%s", name ? name : in);
    virDomainFree(dom);
    return 0;
}

/* The optional agent-channel argument: one of the two names netckpt knows. */
static int agent_channel_arg(json_object *args, char *out, size_t len, struct qga_error *err)
{
    const char *ch = NULL;
    int r = qga_arg_string(args, "agent-channel", false, 63, &ch, err);
    if (r <= 0)
        return r;
    if (strcmp(ch, DOMAIN_AGENT_NAME) && strcmp(ch, DOMAIN_QGA_NAME)) {
        qga_error_set(err, QGA_ERR_INVALID_PARAMETER, "agent-channel must be %s or %s",
                      DOMAIN_AGENT_NAME, DOMAIN_QGA_NAME);
        return -EINVAL;
    }
    snprintf(out, len, "%s", ch);
    return 1;
}

static int start_error(int r, const char *msg, struct qga_error *err)
{
    qga_error_set(err, r == -EBUSY || r == -EAGAIN ? QGA_ERR_BUSY : QGA_ERR_GENERIC_ERROR, "%s",
                  msg);
    return r;
}

/* Start the job and, when asked, wait for it: {job, state, outcome, ..., result}. */
static int run_job(struct daemon *d, struct daemon_job *t, bool wait, json_object **ret,
                   struct qga_error *err)
{
    struct daemon_job *j = NULL;
    char msg[512] = "";
    int r = daemon_job_start(d, t, &j, msg, sizeof(msg));
    if (r < 0)
        return start_error(r, msg, err);
    if (wait) {
        r = daemon_job_wait(d, j, -1);
        if (r < 0) {
            daemon_job_put(d, j);
            qga_error_set(err, QGA_ERR_GENERIC_ERROR,
                          "the daemon is stopping; the job was asked to roll back");
            return r;
        }
    }
    pthread_mutex_lock(&d->lock);
    *ret = daemon_job_json(j, wait);
    pthread_mutex_unlock(&d->lock);
    daemon_job_put(d, j);
    return 0;
}

static int cmd_checkpoint(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    struct daemon *d = ((struct daemon_conn *)ud)->d;
    const char *domain = NULL, *dir = NULL;
    int64_t freeze = DEFAULT_FREEZE_S;
    int r = check_known(args, args_checkpoint, err);
    if (r >= 0)
        r = qga_arg_string(args, "domain", true, 255, &domain, err);
    if (r >= 0)
        r = qga_arg_string(args, "dir", false, 4000, &dir, err);
    if (r >= 0)
        r = qga_arg_int(args, "freeze-timeout", false, 1, 86400, &freeze, err);
    struct daemon_job t = {.kind = DAEMON_JOB_CHECKPOINT, .freeze_timeout_s = (uint32_t)freeze};
    if (r >= 0)
        r = agent_channel_arg(args, t.agent_channel, sizeof(t.agent_channel), err);
    t.continue_running = opt_bool(args, "continue", false, &r, err);
    t.snapshot = opt_bool(args, "snapshot", false, &r, err);
    bool wait = opt_bool(args, "wait", true, &r, err);
    if (r < 0)
        return r;
    if (dir && dir[0] != '/') {
        qga_error_set(err, QGA_ERR_INVALID_PARAMETER, "dir must be an absolute path");
        return -EINVAL;
    }
    r = canonical_name(d, domain, t.domain, sizeof(t.domain), err);
    if (r < 0)
        return r;
    if (dir) {
        snprintf(t.path, sizeof(t.path), "%s", dir);
    } else {
        if (!policy_domain_dirname_ok(t.domain)) {
            qga_error_set(err, QGA_ERR_INVALID_PARAMETER,
                          "the domain name %s cannot be a directory name; give dir", t.domain);
            return -EINVAL;
        }
        char base[4200];
        snprintf(base, sizeof(base), "%s/bundles", d->cfg.state_dir);
        r = daemon_bundle_path(base, t.domain, t.path, sizeof(t.path));
        if (r < 0)
            return qga_error_errno(err, r, "no bundle path under %s", base);
    }
    return run_job(d, &t, wait, ret, err);
}

static int cmd_restore(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    struct daemon *d = ((struct daemon_conn *)ud)->d;
    const char *bundle = NULL, *stale = NULL;
    int r = check_known(args, args_restore, err);
    if (r >= 0)
        r = qga_arg_string(args, "bundle", true, 4000, &bundle, err);
    if (r >= 0)
        r = qga_arg_string(args, "stale", false, 8, &stale, err);
    struct daemon_job t = {.kind = DAEMON_JOB_RESTORE};
    if (r >= 0)
        r = agent_channel_arg(args, t.agent_channel, sizeof(t.agent_channel), err);
    t.paused = opt_bool(args, "paused", false, &r, err);
    bool wait = opt_bool(args, "wait", true, &r, err);
    if (r < 0)
        return r;
    if (stale && strcmp(stale, "auto") && strcmp(stale, "keep")) {
        qga_error_set(err, QGA_ERR_INVALID_PARAMETER, "stale must be auto or keep");
        return -EINVAL;
    }
    if (bundle[0] != '/') {
        qga_error_set(err, QGA_ERR_INVALID_PARAMETER, "bundle must be an absolute path");
        return -EINVAL;
    }
    t.reset_stale = !stale || !strcmp(stale, "auto");
    snprintf(t.path, sizeof(t.path), "%s", bundle);
    /* The domain to serialise on comes from the manifest (schema-checked); the full
     * verification of every file is the transaction's first step. */
    char mpath[4200], *xml = NULL, msg[512] = "";
    size_t len;
    snprintf(mpath, sizeof(mpath), "%s/%s", bundle, BUNDLE_MANIFEST);
    r = read_file(mpath, BUNDLE_MANIFEST_MAX, &xml, &len);
    if (r < 0) {
        qga_error_set(err, r == -ENOENT ? QGA_ERR_NOT_FOUND : QGA_ERR_GENERIC_ERROR,
                      "bundle %s refused: %s: %s", bundle, mpath, strerror(-r));
        return r;
    }
    struct manifest *m = calloc(1, sizeof(*m));
    r = m ? manifest_from_xml(xml, len, m, msg, sizeof(msg)) : -ENOMEM;
    free(xml);
    if (r < 0) {
        free(m);
        qga_error_set(err, QGA_ERR_GENERIC_ERROR, "bundle %s refused: %s", bundle,
                      msg[0] ? msg : strerror(-r));
        return r;
    }
    snprintf(t.domain, sizeof(t.domain), "%s", m->domain_name);
    free(m);
    return run_job(d, &t, wait, ret, err);
}

static json_object *journal_json(const struct journal_entry *e)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "step", json_object_new_string(e->step));
    json_object_object_add(o, "pid", json_object_new_int(e->pid));
    json_object_object_add(o, "owner_alive", json_object_new_boolean(journal_owner_alive(e) == 1));
    json_object_object_add(o, "started_ns", json_object_new_int64((int64_t)e->started_ns));
    json_object_object_add(o, "bundle_tmp", json_object_new_string(e->bundle_tmp));
    return o;
}

static json_object *claim_json(struct daemon *d, const char *domain)
{
    struct daemon_claim c;
    if (!daemon_claim_get(d, domain, &c))
        return NULL;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "what", json_object_new_string(c.what));
    json_object_object_add(o, "job", c.job ? json_object_new_int64((int64_t)c.job) : NULL);
    json_object_object_add(o, "since_ns", json_object_new_int64((int64_t)c.since_real_ns));
    return o;
}

static json_object *daemon_status_json(struct daemon *d)
{
    json_object *o = json_object_new_object(), *jobs = json_object_new_array();
    json_object_object_add(o, "version", json_object_new_string(NETCKPT_VERSION));
    json_object_object_add(o, "pid", json_object_new_int(getpid()));
    json_object_object_add(o, "uptime_s",
                           json_object_new_int64((int64_t)((now_monotonic_ns() - d->start_mono_ns) /
                                                           UINT64_C(1000000000))));
    json_object_object_add(o, "socket", json_object_new_string(d->cfg.socket_path));
    json_object_object_add(o, "state_dir", json_object_new_string(d->cfg.state_dir));
    json_object_object_add(o, "uri", d->virt ? json_object_new_string(d->virt->uri) : NULL);
    json_object_object_add(o, "policy_dir", json_object_new_string(d->cfg.policy_dir));
    json_object_object_add(o, "metrics_file",
                           d->cfg.metrics_path[0] ? json_object_new_string(d->cfg.metrics_path)
                                                  : NULL);
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->n_jobs; i++)
        json_object_array_add(jobs, daemon_job_json(d->jobs[i], false));
    json_object_object_add(o, "running", json_object_new_int(d->running));
    json_object_object_add(o, "clients", json_object_new_int((int)d->n_clients));
    json_object_object_add(o, "policies", json_object_new_int64((int64_t)d->policies.n));
    json_object_object_add(o, "policies_refused",
                           json_object_new_int64((int64_t)d->policies.n_errors));
    json_object_object_add(o, "events", json_object_new_int64((int64_t)d->event_seq));
    struct metrics m = d->metrics;
    pthread_mutex_unlock(&d->lock);
    json_object_object_add(o, "jobs", jobs);
    json_object *c = json_object_new_object();
    json_object_object_add(c, "checkpoints_ok", json_object_new_int64((int64_t)m.checkpoints_ok));
    json_object_object_add(c, "checkpoints_failed",
                           json_object_new_int64((int64_t)m.checkpoints_failed));
    json_object_object_add(c, "restores_ok", json_object_new_int64((int64_t)m.restores_ok));
    json_object_object_add(c, "restores_failed", json_object_new_int64((int64_t)m.restores_failed));
    json_object_object_add(c, "policy_skipped", json_object_new_int64((int64_t)m.policy_skipped));
    json_object_object_add(c, "policy_deferred", json_object_new_int64((int64_t)m.policy_deferred));
    json_object_object_add(c, "recovered", json_object_new_int64((int64_t)m.recovered));
    json_object_object_add(o, "counters", c);
    return o;
}

static int cmd_status(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    struct daemon *d = ((struct daemon_conn *)ud)->d;
    const char *domain = NULL;
    int64_t job = 0;
    int r = check_known(args, args_status, err);
    if (r >= 0)
        r = qga_arg_string(args, "domain", false, 255, &domain, err);
    if (r >= 0)
        r = qga_arg_int(args, "job", false, 1, INT64_MAX, &job, err);
    char channel[64] = "";
    if (r >= 0)
        r = agent_channel_arg(args, channel, sizeof(channel), err);
    if (r < 0)
        return r;
    if (job) {
        struct daemon_job *j = daemon_job_get(d, (uint64_t)job);
        if (!j) {
            qga_error_set(err, QGA_ERR_NOT_FOUND,
                          "no job %" PRId64 " (finished jobs are kept "
                          "for the last %d)",
                          job, DAEMON_JOB_HISTORY);
            return -ENOENT;
        }
        pthread_mutex_lock(&d->lock);
        *ret = daemon_job_json(j, true);
        pthread_mutex_unlock(&d->lock);
        daemon_job_put(d, j);
        return 0;
    }
    if (!domain) {
        *ret = daemon_status_json(d);
        return 0;
    }

    json_object *o = json_object_new_object();
    virDomainPtr dom = NULL;
    char name[256];
    snprintf(name, sizeof(name), "%s", domain);
    int st = -1, reason = 0;
    r = nc_virt_lookup(d->virt, domain, &dom);
    if (r == 0) {
        const char *n = virDomainGetName(dom);
        snprintf(name, sizeof(name), "%s", n ? n : domain);
        char uuid[VIR_UUID_STRING_BUFLEN] = "";
        virDomainGetUUIDString(dom, uuid);
        nc_virt_state(d->virt, dom, &st, &reason);
        virDomainFree(dom);
        json_object_object_add(o, "domain", json_object_new_string(name));
        json_object_object_add(o, "uuid", json_object_new_string(uuid));
        json_object_object_add(o, "state", json_object_new_string(nc_virt_state_name(st)));
    } else if (r == -ENOENT) {
        json_object_object_add(o, "domain", json_object_new_string(domain));
        json_object_object_add(o, "uuid", NULL);
        json_object_object_add(o, "state", json_object_new_string("absent"));
    } else {
        json_object_put(o);
        return qga_error_errno(err, r, "looking up domain %s", domain);
    }
    json_object *gate = json_object_new_object();
    int g = gate_is_installed(name);
    json_object_object_add(gate, "installed", g < 0 ? NULL : json_object_new_boolean(g == 1));
    struct gate_counters c;
    if (g == 1 && gate_read_counters(name, &c) == 0) {
        json_object *cj = json_object_new_object();
        json_object_object_add(cj, "to_guest_pkts",
                               json_object_new_int64((int64_t)c.to_guest_pkts));
        json_object_object_add(cj, "from_guest_pkts",
                               json_object_new_int64((int64_t)c.from_guest_pkts));
        json_object_object_add(gate, "counters", cj);
    }
    json_object_object_add(o, "gate", gate);
    struct journal_entry e;
    json_object_object_add(o, "journal",
                           journal_read(d->cfg.state_dir, name, &e) == 0 ? journal_json(&e) : NULL);
    json_object_object_add(o, "busy", claim_json(d, name));

    /* Ask the agent only when no job is talking to it; hold the domain meanwhile. */
    json_object *agent = json_object_new_object();
    char msg[512] = "";
    if (st != VIR_DOMAIN_RUNNING) {
        json_object_object_add(agent, "reachable", json_object_new_boolean(false));
        json_object_object_add(agent, "error", json_object_new_string("the domain is not running"));
    } else if (daemon_claim(d, name, "status", 0, msg, sizeof(msg)) < 0) {
        json_object_object_add(agent, "reachable", NULL);
        json_object_object_add(agent, "error", json_object_new_string(msg));
    } else {
        struct txn_real t;
        txn_real_init(&t, d->virt, d->cfg.state_dir, NULL);
        t.agent_name = channel[0] ? channel : NULL;
        snprintf(t.domain, sizeof(t.domain), "%s", name);
        json_object *sret = NULL;
        r = txn_real_agent_call(&t, AGENT_CMD_NET_STATUS, NULL, 3000, &sret, msg, sizeof(msg));
        txn_real_done(&t);
        daemon_release(d, name);
        json_object_object_add(agent, "reachable", json_object_new_boolean(r == 0));
        json_object_object_add(agent, "status", sret);
        json_object_object_add(agent, "error", r == 0 ? NULL : json_object_new_string(msg));
    }
    json_object_object_add(o, "agent", agent);
    struct cli_ctx cctx = {.state_dir = d->cfg.state_dir};
    json_object_object_add(o, "last_checkpoint", cli_last_checkpoint_read(&cctx, name));
    *ret = o;
    return 0;
}

static int cmd_list(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    struct daemon *d = ((struct daemon_conn *)ud)->d;
    int r = check_known(args, args_list, err);
    bool all = opt_bool(args, "all", false, &r, err);
    if (r < 0)
        return r;
    virDomainPtr *doms = NULL;
    int n =
        virConnectListAllDomains(d->virt->conn, &doms, all ? 0 : VIR_CONNECT_LIST_DOMAINS_ACTIVE);
    if (n < 0) {
        const char *m = virGetLastErrorMessage();
        qga_error_set(err, QGA_ERR_GENERIC_ERROR, "listing domains failed: %s", m ? m : "?");
        return -EIO;
    }
    json_object *arr = json_object_new_array();
    for (int i = 0; i < n; i++) {
        json_object *o = json_object_new_object();
        const char *name = virDomainGetName(doms[i]);
        char uuid[VIR_UUID_STRING_BUFLEN] = "";
        virDomainGetUUIDString(doms[i], uuid);
        int st = 0, reason = 0;
        nc_virt_state(d->virt, doms[i], &st, &reason);
        json_object_object_add(o, "name", json_object_new_string(name ? name : ""));
        json_object_object_add(o, "uuid", json_object_new_string(uuid));
        json_object_object_add(o, "state", json_object_new_string(nc_virt_state_name(st)));
        int g = name ? gate_is_installed(name) : -EINVAL;
        json_object_object_add(o, "gated", g < 0 ? NULL : json_object_new_boolean(g == 1));
        json_object_object_add(o, "busy", name ? claim_json(d, name) : NULL);
        json_object_array_add(arr, o);
        virDomainFree(doms[i]);
    }
    free(doms);
    *ret = json_object_new_object();
    json_object_object_add(*ret, "domains", arr);
    return 0;
}

static int cmd_unblock(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    struct daemon *d = ((struct daemon_conn *)ud)->d;
    const char *domain = NULL;
    int r = check_known(args, args_unblock, err);
    if (r >= 0)
        r = qga_arg_string(args, "domain", true, 255, &domain, err);
    bool force = opt_bool(args, "force", false, &r, err);
    if (r < 0)
        return r;
    char name[256];
    struct qga_error ignore;
    /* An absent domain may still have a gate (a refused restore destroyed it). */
    if (canonical_name(d, domain, name, sizeof(name), &ignore) < 0)
        snprintf(name, sizeof(name), "%s", domain);
    char msg[1024] = "";
    r = daemon_claim(d, name, "unblock", 0, msg, sizeof(msg));
    if (r < 0)
        return start_error(r, msg, err);
    /* An entry of this very process is a job of ours that could not roll back (we hold the
     * domain's claim now, so none runs): it is ours to clean, no force needed. */
    struct journal_entry je;
    if (!force && journal_read(d->cfg.state_dir, name, &je) == 0 && je.pid == getpid())
        force = true;
    json_object *rep = NULL;
    r = txn_real_unblock(d->virt, d->cfg.state_dir, name, force, &rep, msg, sizeof(msg));
    daemon_release(d, name);
    if (r < 0) {
        json_object_put(rep);
        qga_error_set(err, r == -EBUSY ? QGA_ERR_BUSY : QGA_ERR_GENERIC_ERROR, "%s",
                      msg[0] ? msg : strerror(-r));
        return r;
    }
    daemon_event(d, "info", "unblock", name, NULL, 0, "unblocked %s", name);
    *ret = rep;
    return 0;
}

static int cmd_policy_list(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    struct daemon *d = ((struct daemon_conn *)ud)->d;
    int r = check_known(args, args_none, err);
    if (r < 0)
        return r;
    *ret = daemon_policies_json(d);
    return 0;
}

static int cmd_policy_run(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    struct daemon *d = ((struct daemon_conn *)ud)->d;
    const char *name = NULL;
    int r = check_known(args, args_policy_run, err);
    if (r >= 0)
        r = qga_arg_string(args, "name", true, POLICY_NAME_MAX - 1, &name, err);
    bool wait = opt_bool(args, "wait", false, &r, err);
    if (r < 0)
        return r;
    char msg[512] = "";
    r = daemon_policy_run(d, name, NULL, wait, ret, msg, sizeof(msg));
    if (r < 0)
        qga_error_set(err, r == -ENOENT ? QGA_ERR_NOT_FOUND : QGA_ERR_GENERIC_ERROR, "%s", msg);
    return r;
}

static int cmd_events(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    struct daemon *d = ((struct daemon_conn *)ud)->d;
    int64_t since = 0, max = 100, timeout = 0;
    int r = check_known(args, args_events, err);
    if (r >= 0)
        r = qga_arg_int(args, "since", false, 0, INT64_MAX, &since, err);
    if (r >= 0)
        r = qga_arg_int(args, "max", false, 1, 1000, &max, err);
    if (r >= 0)
        r = qga_arg_int(args, "timeout", false, 0, 600000, &timeout, err);
    if (r < 0)
        return r;
    uint64_t next;
    json_object *ev = daemon_events_json(d, (uint64_t)since, (size_t)max, (int)timeout, &next);
    *ret = json_object_new_object();
    json_object_object_add(*ret, "events", ev);
    json_object_object_add(*ret, "next", json_object_new_int64((int64_t)next));
    return 0;
}
