/* host/daemon.h: netckptd, the host daemon: its context and the pieces its source files share.
 *
 * Owns struct daemon (one per process, built by main in host/netckptd.c and passed to every
 * function: no globals), the job table (one worker thread per checkpoint or restore; one
 * claim per domain, so the same domain is serialised and a second request gets Busy), the
 * event ring that the `events` command serves, and the glue between policies, the scheduler,
 * retention and metrics. Files:
 *   daemon-jobs.c      claims, jobs, worker threads, events, metrics file
 *   daemon-run.c       what a job does: the transaction (host/txn-real.h), policy conditions,
 *                      retention; journal recovery and interrupted bundles at start
 *   daemon-policy.c    policy (re)load, scheduling, policy runs, deferrals, last-run state
 *   daemon-server.c    the control socket: listen, peer check, one thread per client
 *   daemon-commands.c  the command table (schemas/daemon-commands.json) and handlers
 * Locking: d->lock guards everything mutable in struct daemon (jobs, claims, events, metrics,
 * policies, scheduler). libvirt calls and transactions run without it, on the one shared
 * connection (libvirt connections are thread-safe; host/virt.h allows one per process). */
#pragma once
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "agent/qga-server.h"
#include "host/metrics.h"
#include "host/policy.h"
#include "host/scheduler.h"

#define DAEMON_DEFAULT_SOCKET     "/run/netckpt/netckptd.sock"
#define DAEMON_DEFAULT_POLICY_DIR POLICY_DEFAULT_DIR
#define DAEMON_MAX_REQUEST        (64u << 10) /* control requests are small */
#define DAEMON_MAX_DEPTH          32
#define DAEMON_MAX_CLIENTS        64
#define DAEMON_CLIENT_IDLE_MS     (15 * 60 * 1000) /* a silent client is dropped after this */
#define DAEMON_MAX_RUNNING        16               /* jobs at once */
#define DAEMON_JOB_HISTORY        64 /* running + recently finished jobs kept for status */
#define DAEMON_EVENTS             512
#define DAEMON_MAX_CLAIMS         64
#define DAEMON_MAX_DEFERS         64
#define DAEMON_STOP_WAIT_S        300 /* how long a stop waits for jobs to roll back */

struct nc_virt;

struct daemon_config {
    char socket_path[108]; /* sun_path */
    mode_t socket_mode;    /* 0600, or 0660 with a group */
    bool have_group;
    gid_t gid;
    char state_dir[4096];
    const char *uri; /* NULL: the embedded default */
    char policy_dir[4096];
    char metrics_path[4096]; /* "" : none */
};

enum daemon_job_kind { DAEMON_JOB_CHECKPOINT, DAEMON_JOB_RESTORE, DAEMON_JOB_MIGRATE };
enum daemon_job_state { DAEMON_JOB_RUNNING, DAEMON_JOB_DONE };

struct daemon;

struct daemon_job {
    uint64_t id;
    enum daemon_job_kind kind;
    enum daemon_job_state state;
    struct daemon *d;
    unsigned refs; /* holders besides the table (waiting clients); under d->lock */

    /* request */
    char domain[256];
    char path[4096]; /* checkpoint: bundle to create ("" : policy picks); restore: bundle */
    bool continue_running, snapshot, paused, reset_stale, no_replay;
    bool keep_clock;       /* restore --clock=keep */
    bool no_kick;          /* restore --no-kick */
    uint32_t replay_limit; /* bytes of held frames per domain, 0: REPLAY_DEFAULT_LIMIT */
    uint32_t freeze_timeout_s;
    int32_t watch_ms; /* restore: tap watch for the report; < 0: the default */
    char image[4096]; /* restore: verify against this socket image ("" : bundle's) */
    /* migrate (host/migrate.h): destination libvirt, QEMU's stream, listen address, the
     * destination's network namespace ("" : libvirt chooses / ours) */
    char dest_uri[1024], migrate_uri[1024], listen_address[72], dest_netns[4096];
    char agent_channel[64];     /* "" : org.netckpt.agent.0 */
    struct policy *policy;      /* policy runs: a copy, owned by the job */
    uint64_t deferred_since_ns; /* policy retries: when the first deferral happened */

    /* progress and result */
    uint64_t started_real_ns, finished_real_ns;
    char step[32];
    uint64_t progress_done, progress_total; /* of the running step (save), 0/0 when none */
    char outcome[32];                       /* txn outcome name, or "skipped" / "deferred" */
    bool ok;
    char message[1024];
    uint32_t retry_s;    /* "deferred": when to try again */
    json_object *result; /* the transaction report (cli_txn_result_json keys) */
    volatile sig_atomic_t cancel;
};

struct daemon_event {
    uint64_t seq;
    uint64_t time_ns;
    char level[8]; /* info, warn, error */
    char kind[32];
    char domain[256];
    char policy[POLICY_NAME_MAX];
    uint64_t job;
    char message[512];
};

struct daemon_claim {
    char domain[256];
    char what[32];
    uint64_t job; /* 0: an inline operation (unblock, status probe) */
    uint64_t since_real_ns;
};

struct daemon_defer {
    char key[SCHED_KEY_MAX]; /* "policy/domain" */
    uint64_t since_real_ns;
};

/* What a job does; the real one runs transactions, unit tests put a fake here. */
struct daemon_runner {
    /* Run j to the end: fill j->outcome, ok, message, result (and retry_s for "deferred"). */
    void (*run)(struct daemon *d, struct daemon_job *j);
};
extern const struct daemon_runner daemon_real_runner;

struct daemon {
    struct daemon_config cfg;
    struct nc_virt *virt;
    const struct daemon_runner *runner;
    uint64_t start_mono_ns;

    pthread_mutex_t lock;
    pthread_cond_t cond; /* jobs finished, events appended, clients gone */
    bool stopping;
    int wake_fd; /* eventfd: wakes the main loop (scheduler changed) */

    struct daemon_job *jobs[DAEMON_JOB_HISTORY];
    size_t n_jobs;
    uint64_t next_job_id;
    unsigned running;
    uint64_t workers_started, workers_done; /* a worker touches d until it counts itself done */
    struct daemon_claim claims[DAEMON_MAX_CLAIMS];
    size_t n_claims;

    struct daemon_event *events; /* ring of DAEMON_EVENTS */
    uint64_t event_seq;          /* seq of the newest event; 0: none yet */

    struct policy_set policies;
    struct scheduler sched;
    struct daemon_defer defers[DAEMON_MAX_DEFERS];
    size_t n_defers;
    struct metrics metrics;
    pthread_mutex_t flush_lock; /* orders metrics file writes (copy and write together) */

    int client_fds[DAEMON_MAX_CLIENTS];
    size_t n_clients;
};

/* ---- daemon-jobs.c ---- */
/* A view of the daemon's one libvirt connection for the calling thread: out gets the same
 * connection (referenced) and the URI, with its own error buffer, so that threads never share
 * nc_virt.err (libvirt's own last error is per thread already). NULL when the daemon has no
 * connection (unit tests), else out. Release with daemon_virt_view_done(). */
struct nc_virt *daemon_virt_view(struct daemon *d, struct nc_virt *out);
void daemon_virt_view_done(struct nc_virt *v);

int daemon_init(struct daemon *d, const struct daemon_config *cfg, struct nc_virt *virt,
                const struct daemon_runner *runner, const struct sched_clock *clk);
/* Cancel running jobs, wait for them (at most wait_s) and for the client threads, free. */
void daemon_stop(struct daemon *d, unsigned wait_s);
void daemon_free(struct daemon *d);

/* Claim a domain for an operation; -EBUSY with err naming the holder. Under no lock. */
int daemon_claim(struct daemon *d, const char *domain, const char *what, uint64_t job, char *err,
                 size_t errlen);
void daemon_release(struct daemon *d, const char *domain);
/* The claim on domain (copied into *out) : 1, or 0 when free. */
int daemon_claim_get(struct daemon *d, const char *domain, struct daemon_claim *out);

/* Claim tmpl->domain and start a worker thread running a copy of tmpl (tmpl->policy is taken
 * over, also on failure). *out (may be NULL) gets a reference to release with
 * daemon_job_put. -EBUSY (domain busy), -EAGAIN (too many jobs), -ESHUTDOWN, -errno. */
int daemon_job_start(struct daemon *d, struct daemon_job *tmpl, struct daemon_job **out, char *err,
                     size_t errlen);
/* Wait until j is done (timeout_ms < 0: forever). 0, -ETIMEDOUT, -ESHUTDOWN. */
int daemon_job_wait(struct daemon *d, struct daemon_job *j, int timeout_ms);
void daemon_job_put(struct daemon *d, struct daemon_job *j);
/* Find a job by id and take a reference (NULL when gone). */
struct daemon_job *daemon_job_get(struct daemon *d, uint64_t id);
/* j as JSON (under d->lock or on a done job). */
json_object *daemon_job_json(const struct daemon_job *j, bool with_result);

/* Append an event (and log it). level: "info", "warn" or "error". */
void daemon_event(struct daemon *d, const char *level, const char *kind, const char *domain,
                  const char *policy, uint64_t job, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* Events with seq > since, at most max; waits up to timeout_ms for one. *next: the seq to
 * pass next time. */
json_object *daemon_events_json(struct daemon *d, uint64_t since, size_t max, int timeout_ms,
                                uint64_t *next);
/* Write the metrics file if configured (takes d->lock). */
void daemon_metrics_flush(struct daemon *d);
void daemon_wake(struct daemon *d);

/* ---- daemon-run.c ---- */
/* A new bundle path <bundle_dir>/<domain>/<UTC time>[-N] where neither it nor its partial
 * directory exists yet. */
int daemon_bundle_path(const char *bundle_dir, const char *domain, char *buf, size_t len);
/* Start-up: journal recovery (lift stale gates, thaw, resume, clean partial bundles) and
 * marking interrupted bundles in the policies' bundle dirs failed. */
void daemon_recover(struct daemon *d);
/* Rename ".<name>.partial" dirs under dir/<domain>/ that no live journal entry owns and that
 * are older than min_age_s to ".<name>.failed". Returns how many. */
int daemon_mark_interrupted(struct daemon *d, const char *bundle_dir, uint64_t min_age_s);

/* ---- daemon-policy.c ---- */
/* Load (or reload on SIGHUP) the policy dir; schedule the valid policies, unschedule the
 * removed ones, report refused files as events. */
int daemon_policies_load(struct daemon *d);
/* Run a policy now for every running domain it matches (only_domain: just that one, for a
 * deferred retry). *report: {policy, jobs, skipped} (caller puts). wait: until its jobs end
 * (then report.results). -ENOENT for an unknown policy. */
int daemon_policy_run(struct daemon *d, const char *name, const char *only_domain, bool wait,
                      json_object **report, char *err, size_t errlen);
/* Run what the scheduler says is due. */
void daemon_policies_tick(struct daemon *d);
/* A policy job was deferred: schedule its retry (or give up). Under no lock. */
void daemon_policy_deferred(struct daemon *d, const struct daemon_job *j);
void daemon_policy_settled(struct daemon *d, const struct daemon_job *j);
json_object *daemon_policies_json(struct daemon *d);

/* ---- daemon-server.c ---- */
/* Create the listening socket (refuses when another daemon answers on it). fd or -errno. */
int daemon_listen(const struct daemon_config *cfg, char *err, size_t errlen);
/* Accept one connection and serve it in its own thread. */
void daemon_accept(struct daemon *d, int listen_fd);
/* Is the peer allowed (root, our own uid, or a member of the configured group). */
bool daemon_peer_allowed(const struct daemon *d, int fd, uid_t *uid, pid_t *pid);

/* ---- daemon-commands.c ---- */
struct daemon_arg {
    const char *name;
    json_type type;
    bool required;
};

struct daemon_command {
    const char *name;
    qga_handler handler;
    const struct daemon_arg *args; /* terminated by {NULL} */
};

#define DAEMON_COMMAND_COUNT 10
const struct daemon_command *daemon_commands(size_t *n);
/* The qga_server table (handlers' userdata: struct daemon_conn *). */
void daemon_command_table(struct qga_command out[DAEMON_COMMAND_COUNT]);

struct daemon_conn {
    struct daemon *d;
    int fd;
    uid_t uid;
    pid_t pid;
};
