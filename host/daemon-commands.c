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
#include "host/replay.h"
#include "host/retention.h"
#include "host/txn-real.h"
#include "host/virt.h"
#include "version.h"

#define DEFAULT_FREEZE_S 60

static const struct daemon_arg args_checkpoint[] = {
    {"domain", json_type_string, true},         {"dir", json_type_string, false},
    {"continue", json_type_boolean, false},     {"snapshot", json_type_boolean, false},
    {"freeze-timeout", json_type_int, false},   {"wait", json_type_boolean, false},
    {"agent-channel", json_type_string, false}, {"no-replay", json_type_boolean, false},
    {"replay-limit", json_type_int, false},     {NULL, 0, false},
};
static const struct daemon_arg args_restore[] = {
    {"bundle", json_type_string, true},         {"stale", json_type_string, false},
    {"paused", json_type_boolean, false},       {"wait", json_type_boolean, false},
    {"agent-channel", json_type_string, false}, {"no-replay", json_type_boolean, false},
    {"image", json_type_string, false},         {"watch", json_type_int, false},
    {"clock", json_type_string, false},         {"replay-limit", json_type_int, false},
    {"no-kick", json_type_boolean, false},      {NULL, 0, false},
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
static const struct daemon_arg args_migrate[] = {
    {"domain", json_type_string, true},
    {"dest-uri", json_type_string, true},
    {"migrate-uri", json_type_string, false},
    {"listen-address", json_type_string, false},
    {"dest-netns", json_type_string, false},
    {"freeze-timeout", json_type_int, false},
    {"watch", json_type_int, false},
    {"stale", json_type_string, false},
    {"wait", json_type_boolean, false},
    {"agent-channel", json_type_string, false},
    {NULL, 0, false},
};
static const struct daemon_arg args_cancel[] = {
    {"job", json_type_int, true},
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
static int cmd_cancel(void *ud, json_object *args, json_object **ret, struct qga_error *err);
static int cmd_migrate(void *ud, json_object *args, json_object **ret, struct qga_error *err);

static const struct daemon_command commands[DAEMON_COMMAND_COUNT] = {
    {"checkpoint", cmd_checkpoint, args_checkpoint},
    {"restore", cmd_restore, args_restore},
    {"status", cmd_status, args_status},
    {"list", cmd_list, args_list},
    {"unblock", cmd_unblock, args_unblock},
    {"policy-list", cmd_policy_list, args_none},
    {"policy-run", cmd_policy_run, args_policy_run},
    {"events", cmd_events, args_events},
    {"cancel", cmd_cancel, args_cancel},
    {"migrate", cmd_migrate, args_migrate},
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

/* Resolve a name or UUID to the domain's name. -ENOENT when libvirt has no such domain. */
static int canonical_name(struct daemon *d, const char *in, char *out, size_t len,
                          struct qga_error *err)
{
    virDomainPtr dom = NULL;
    struct nc_virt view;
    struct nc_virt *v = daemon_virt_view(d, &view);
    int r = v ? nc_virt_lookup(v, in, &dom) : -ENOTCONN;
    daemon_virt_view_done(v);
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

/* The optional replay-limit argument, in bytes (the CLI's --replay-limit range). */
static int replay_limit_arg(json_object *args, uint32_t *out, struct qga_error *err)
{
    int64_t v = 0;
    int r =
        qga_arg_int(args, "replay-limit", false, CLI_REPLAY_LIMIT_MIN, REPLAY_MAX_LIMIT, &v, err);
    if (r > 0)
        *out = (uint32_t)v;
    return r;
}

/* A string argument with no control characters (it ends up in libvirt URIs and paths). */
static int plain_string(json_object *args, const char *key, bool required, size_t max,
                        const char **out, struct qga_error *err)
{
    int r = qga_arg_string(args, key, required, max, out, err);
    if (r <= 0)
        return r;
    for (const char *c = *out; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            qga_error_set(err, QGA_ERR_INVALID_PARAMETER, "%s: no control characters", key);
            return -EINVAL;
        }
    return 1;
}

/* How a handler reads one argument. The kind says what out points to (strings: const char **,
 * ARG_INT: int64_t *, ARG_BOOL: bool *, ARG_CHANNEL: a char[max], ARG_REPLAY_LIMIT: uint32_t *);
 * out keeps its default when the argument is absent. One table per handler, in its order. */
enum arg_kind { ARG_STRING, ARG_PATH, ARG_PLAIN, ARG_INT, ARG_BOOL, ARG_CHANNEL, ARG_REPLAY_LIMIT };
struct arg_get {
    const char *key;
    enum arg_kind kind;
    void *out;
    bool required;
    int64_t min, max;   /* ARG_INT's range; a string's max length; ARG_CHANNEL's buffer size */
    const char *one_of; /* a string's two allowed values, "a\0b" */
};

static int get_one(json_object *args, const struct arg_get *g, struct qga_error *err)
{
    switch (g->kind) {
    case ARG_INT:
        return qga_arg_int(args, g->key, g->required, g->min, g->max, g->out, err);
    case ARG_BOOL:
        return qga_arg_bool(args, g->key, g->required, g->out, err);
    case ARG_CHANNEL:
        return agent_channel_arg(args, g->out, (size_t)g->max, err);
    case ARG_REPLAY_LIMIT:
        return replay_limit_arg(args, g->out, err);
    case ARG_PLAIN:
        return plain_string(args, g->key, g->required, (size_t)g->max, g->out, err);
    case ARG_STRING:
    case ARG_PATH:
        break;
    }
    const char **s = g->out;
    int r = qga_arg_string(args, g->key, g->required, (size_t)g->max, s, err);
    if (r <= 0)
        return r;
    if (g->kind == ARG_PATH && (*s)[0] != '/') {
        qga_error_set(err, QGA_ERR_INVALID_PARAMETER, "%s must be an absolute path", g->key);
        return -EINVAL;
    }
    const char *a = g->one_of, *b = a ? a + strlen(a) + 1 : NULL;
    if (a && strcmp(*s, a) && strcmp(*s, b)) {
        qga_error_set(err, QGA_ERR_INVALID_PARAMETER, "%s must be %s or %s", g->key, a, b);
        return -EINVAL;
    }
    return r;
}

/* Refuse arguments the command's table does not list, then read each of get[] in turn. */
static int get_args(json_object *args, const struct daemon_arg *known, const struct arg_get *get,
                    size_t n, struct qga_error *err)
{
    int r = check_known(args, known, err);
    for (size_t i = 0; r >= 0 && i < n; i++)
        r = get_one(args, &get[i], err);
    return r < 0 ? r : 0;
}
#define GET_ARGS(args, known, get, err) get_args(args, known, get, ELEMENTSOF(get), err)

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
    bool wait = true;
    struct daemon_job t = {.kind = DAEMON_JOB_CHECKPOINT};
    const struct arg_get get[] = {
        {"domain", ARG_STRING, &domain, true, .max = 255},
        {"dir", ARG_PATH, &dir, .max = 4000},
        {"freeze-timeout", ARG_INT, &freeze, .min = 1, .max = 86400},
        {"agent-channel", ARG_CHANNEL, t.agent_channel, .max = sizeof(t.agent_channel)},
        {"continue", ARG_BOOL, .out = &t.continue_running},
        {"snapshot", ARG_BOOL, .out = &t.snapshot},
        {"no-replay", ARG_BOOL, .out = &t.no_replay},
        {"replay-limit", ARG_REPLAY_LIMIT, .out = &t.replay_limit},
        {"wait", ARG_BOOL, .out = &wait},
    };
    int r = GET_ARGS(args, args_checkpoint, get, err);
    if (r < 0)
        return r;
    t.freeze_timeout_s = (uint32_t)freeze;
    /* An unknown domain still gets a job: its transaction fails at discover with the report
     * the CLI prints for it (a forwarding CLI shows the same). */
    struct qga_error lookup;
    r = canonical_name(d, domain, t.domain, sizeof(t.domain), &lookup);
    if (r == -ENOENT && dir) {
        snprintf(t.domain, sizeof(t.domain), "%s", domain);
    } else if (r < 0) {
        *err = lookup;
        return r;
    }
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
    const char *bundle = NULL, *stale = NULL, *clock = NULL, *image = NULL;
    int64_t watch = -1;
    bool wait = true;
    struct daemon_job t = {.kind = DAEMON_JOB_RESTORE};
    const struct arg_get get[] = {
        {"bundle", ARG_PATH, &bundle, true, .max = 4000},
        {"stale", ARG_STRING, &stale, .max = 8, .one_of = "auto\0keep"},
        {"clock", ARG_STRING, &clock, .max = 8, .one_of = "sync\0keep"},
        {"image", ARG_PATH, &image, .max = 4000},
        {"watch", ARG_INT, &watch, .min = 0, .max = 600000},
        {"agent-channel", ARG_CHANNEL, t.agent_channel, .max = sizeof(t.agent_channel)},
        {"paused", ARG_BOOL, .out = &t.paused},
        {"no-replay", ARG_BOOL, .out = &t.no_replay},
        {"no-kick", ARG_BOOL, .out = &t.no_kick},
        {"replay-limit", ARG_REPLAY_LIMIT, .out = &t.replay_limit},
        {"wait", ARG_BOOL, .out = &wait},
    };
    int r = GET_ARGS(args, args_restore, get, err);
    if (r < 0)
        return r;
    t.watch_ms = (int32_t)watch;
    t.keep_clock = clock && !strcmp(clock, "keep");
    if (image)
        snprintf(t.image, sizeof(t.image), "%s", image);
    t.reset_stale = !stale || !strcmp(stale, "auto");
    snprintf(t.path, sizeof(t.path), "%s", bundle);
    /* The domain to serialise on comes from the manifest (schema-checked); the full
     * verification of every file is the transaction's first step. */
    char mpath[4200], *xml = NULL, msg[512] = "";
    size_t len;
    snprintf(mpath, sizeof(mpath), "%s/%s", bundle, BUNDLE_MANIFEST);
    r = read_file(mpath, BUNDLE_MANIFEST_MAX, &xml, &len);
    struct manifest *m = r < 0 ? NULL : calloc(1, sizeof(*m));
    if (r >= 0)
        r = m ? manifest_from_xml(xml, len, m, msg, sizeof(msg)) : -ENOMEM;
    free(xml);
    if (r == -ENOMEM) {
        free(m);
        return qga_error_errno(err, r, "reading %s", mpath);
    }
    /* A bundle without a readable manifest names no domain: the job claims the path instead,
     * and its transaction refuses the bundle at its first step with the report (and exit code)
     * of `netckpt restore`. */
    if (r < 0)
        snprintf(t.domain, sizeof(t.domain), "bundle:%s", bundle);
    else
        snprintf(t.domain, sizeof(t.domain), "%s", m->domain_name);
    free(m);
    return run_job(d, &t, wait, ret, err);
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
    char channel[64] = "";
    const struct arg_get get[] = {
        {"domain", ARG_STRING, &domain, .max = 255},
        {"job", ARG_INT, &job, .min = 1, .max = INT64_MAX},
        {"agent-channel", ARG_CHANNEL, channel, .max = sizeof(channel)},
    };
    int r = GET_ARGS(args, args_status, get, err);
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

    /* The object of `netckpt --json status` (the same builder), plus busy: the claim. The
     * agent is asked only when no job is talking to it; the domain is held meanwhile. */
    char name[256], msg[1024] = "";
    struct qga_error ignore;
    if (canonical_name(d, domain, name, sizeof(name), &ignore) < 0)
        snprintf(name, sizeof(name), "%s", domain);
    bool claimed = daemon_claim(d, name, "status", 0, msg, sizeof(msg)) == 0;
    json_object *busy = claimed ? NULL : claim_json(d, name);
    char lerr[1024] = "";
    struct nc_virt view;
    struct nc_virt *v = daemon_virt_view(d, &view);
    json_object *o = v ? cli_status_json(v, d->cfg.state_dir, name, channel[0] ? channel : NULL,
                                         claimed ? NULL : msg, lerr, sizeof(lerr))
                       : NULL;
    daemon_virt_view_done(v);
    if (claimed)
        daemon_release(d, name);
    if (!o) {
        json_object_put(busy);
        qga_error_set(err, QGA_ERR_GENERIC_ERROR, "looking up domain %s: %s", domain, lerr);
        return -EIO;
    }
    json_object_object_add(o, "busy", busy);
    *ret = o;
    return 0;
}

static int cmd_list(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    struct daemon *d = ((struct daemon_conn *)ud)->d;
    bool all = false;
    const struct arg_get get[] = {{"all", ARG_BOOL, .out = &all}};
    int r = GET_ARGS(args, args_list, get, err);
    if (r < 0)
        return r;
    char msg[512];
    struct nc_virt view;
    struct nc_virt *v = daemon_virt_view(d, &view);
    json_object *arr = v ? cli_list_json(v, d->cfg.state_dir, all, msg, sizeof(msg)) : NULL;
    daemon_virt_view_done(v);
    if (!arr) {
        qga_error_set(err, QGA_ERR_GENERIC_ERROR, "listing domains failed: %s", msg);
        return -EIO;
    }
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *o = json_object_array_get_idx(arr, i), *nm = NULL;
        json_object_object_get_ex(o, "name", &nm);
        json_object_object_add(o, "busy", claim_json(d, json_object_get_string(nm)));
    }
    *ret = json_object_new_object();
    json_object_object_add(*ret, "domains", arr);
    return 0;
}

static int cmd_unblock(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    struct daemon *d = ((struct daemon_conn *)ud)->d;
    const char *domain = NULL;
    bool force = false;
    const struct arg_get get[] = {
        {"domain", ARG_STRING, &domain, true, .max = 255},
        {"force", ARG_BOOL, .out = &force},
    };
    int r = GET_ARGS(args, args_unblock, get, err);
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
    struct nc_virt view;
    struct nc_virt *v = daemon_virt_view(d, &view);
    r = txn_real_unblock(v, d->cfg.state_dir, name, force, &rep, msg, sizeof(msg));
    daemon_virt_view_done(v);
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
    bool wait = false;
    const struct arg_get get[] = {
        {"name", ARG_STRING, &name, true, .max = POLICY_NAME_MAX - 1},
        {"wait", ARG_BOOL, .out = &wait},
    };
    int r = GET_ARGS(args, args_policy_run, get, err);
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
    const struct arg_get get[] = {
        {"since", ARG_INT, &since, .min = 0, .max = INT64_MAX},
        {"max", ARG_INT, &max, .min = 1, .max = 1000},
        {"timeout", ARG_INT, &timeout, .min = 0, .max = 600000},
    };
    int r = GET_ARGS(args, args_events, get, err);
    if (r < 0)
        return r;
    uint64_t next;
    json_object *ev = daemon_events_json(d, (uint64_t)since, (size_t)max, (int)timeout, &next);
    *ret = json_object_new_object();
    json_object_object_add(*ret, "events", ev);
    json_object_object_add(*ret, "next", json_object_new_int64((int64_t)next));
    return 0;
}

/* Ask a running job to stop: its transaction rolls back between steps, as on SIGINT for the
 * CLI (outcome interrupted). A job that is done is left as it is. */
static int cmd_cancel(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    struct daemon *d = ((struct daemon_conn *)ud)->d;
    int64_t id = 0;
    const struct arg_get get[] = {{"job", ARG_INT, &id, true, .min = 1, .max = INT64_MAX}};
    int r = GET_ARGS(args, args_cancel, get, err);
    if (r < 0)
        return r;
    struct daemon_job *j = daemon_job_get(d, (uint64_t)id);
    if (!j) {
        qga_error_set(err, QGA_ERR_NOT_FOUND, "no job %" PRId64, id);
        return -ENOENT;
    }
    pthread_mutex_lock(&d->lock);
    bool running = j->state == DAEMON_JOB_RUNNING;
    if (running)
        j->cancel = SIGINT;
    *ret = daemon_job_json(j, false);
    json_object_object_add(*ret, "cancelled", json_object_new_boolean(running));
    char domain[256];
    snprintf(domain, sizeof(domain), "%s", j->domain);
    pthread_mutex_unlock(&d->lock);
    daemon_job_put(d, j);
    if (running)
        daemon_event(d, "info", "job-cancel", domain, NULL, (uint64_t)id,
                     "job %" PRId64 " asked to stop by a client", id);
    return 0;
}

/* A live migration through host/migrate.h (the job of `netckpt migrate`), serialised with the
 * domain's other jobs. */
static int cmd_migrate(void *ud, json_object *args, json_object **ret, struct qga_error *err)
{
    struct daemon *d = ((struct daemon_conn *)ud)->d;
    const char *domain = NULL, *dest = NULL, *muri = NULL, *listen = NULL, *netns = NULL,
               *stale = NULL;
    int64_t freeze = DEFAULT_FREEZE_S, watch = -1;
    bool wait = true;
    struct daemon_job t = {.kind = DAEMON_JOB_MIGRATE};
    const struct arg_get get[] = {
        {"domain", ARG_STRING, &domain, true, .max = 255},
        {"dest-uri", ARG_PLAIN, &dest, true, .max = 1000},
        {"migrate-uri", ARG_PLAIN, &muri, .max = 1000},
        {"listen-address", ARG_PLAIN, &listen, .max = 64},
        {"dest-netns", ARG_PLAIN, &netns, .max = 4000},
        {"freeze-timeout", ARG_INT, &freeze, .min = 1, .max = 86400},
        {"watch", ARG_INT, &watch, .min = 0, .max = 600000},
        {"stale", ARG_STRING, &stale, .max = 8, .one_of = "auto\0keep"},
        {"agent-channel", ARG_CHANNEL, t.agent_channel, .max = sizeof(t.agent_channel)},
        {"wait", ARG_BOOL, .out = &wait},
    };
    int r = GET_ARGS(args, args_migrate, get, err);
    if (r < 0)
        return r;
    t.freeze_timeout_s = (uint32_t)freeze;
    t.watch_ms = (int32_t)watch;
    t.reset_stale = stale && !strcmp(stale, "auto");
    r = canonical_name(d, domain, t.domain, sizeof(t.domain), err);
    if (r < 0)
        return r;
    snprintf(t.dest_uri, sizeof(t.dest_uri), "%s", dest);
    snprintf(t.migrate_uri, sizeof(t.migrate_uri), "%s", muri ? muri : "");
    snprintf(t.listen_address, sizeof(t.listen_address), "%s", listen ? listen : "");
    snprintf(t.dest_netns, sizeof(t.dest_netns), "%s", netns ? netns : "");
    return run_job(d, &t, wait, ret, err);
}
