/* guest/net-freezer.h: netckpt-agent's freeze/thaw state machine.
 *
 * Owns one freeze of the guest's external TCP connections: which sockets are frozen (our own
 * pidfd_getfd duplicates, in TCP_REPAIR), the quiesced owner processes, the socket image that
 * was returned, the watchdog deadline and the state file that lets a restarted agent find and
 * thaw sockets a dead agent left in repair mode. Transport, JSON-RPC and argument parsing
 * live in agent-main.c; this module only does the work and builds the JSON results.
 *
 * Lifecycle: THAWED --freeze--> FROZEN --thaw|watchdog|signal--> THAWED. Owners stay quiesced
 * for the whole freeze: an application call on a socket in repair mode would fail (EPERM,
 * EINVAL) or, worse, land in the wrong queue.
 *
 * The caller owns struct net_freezer and must call every function from one thread (ptrace
 * ties tracees to the thread that seized them). Functions return 0 (or a count) on success
 * and -errno on failure. */
#pragma once
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/qga-error.h"
#include "guest/quiesce.h"
#include "guest/socket-image.h"
#include "guest/tcp-repair.h"

#define NET_FREEZER_DEFAULT_TIMEOUT_MS 30000u
#define NET_FREEZER_MAX_TIMEOUT_MS     (24u * 3600u * 1000u)
#define NET_FREEZER_STATE_FILE         "/run/netckpt-agent.state"
/* The sentinel acts this long after the watchdog deadline if the agent has not thawed by then
 * (the agent is stuck, not dead: dead is noticed at once). */
#define NET_FREEZER_SENTINEL_GRACE_MS 5000u
/* A dump can race owners that were still running: scan, quiesce new owners, rescan. */
#define NET_FREEZER_MAX_ROUNDS 4

struct net_freezer_config {
    const char *state_file;     /* NULL: keep no state file */
    uint32_t freeze_timeout_ms; /* watchdog default; 0 means NET_FREEZER_DEFAULT_TIMEOUT_MS */
    bool set_clock;             /* apply thaw's host_time_ns (false: only report the step) */
    const char *proc_root;      /* NULL means "/proc" */
    /* Test hook (NETCKPT_AGENT_FAULT_FREEZE_AT=N): the dump of the Nth socket fails after it
     * entered repair mode, to exercise the rollback. 0: off. */
    size_t fault_freeze_at;
    bool fault_crash; /* NETCKPT_AGENT_FAULT_CRASH=1: SIGKILL ourselves there instead */
    bool no_sentinel; /* tests: exercise the state-file recovery alone */
};

enum net_thaw_reason {
    NET_THAW_COMMAND,  /* guest-net-thaw */
    NET_THAW_WATCHDOG, /* --freeze-timeout expired */
    NET_THAW_SIGNAL,   /* SIGTERM/SIGINT while frozen */
    NET_THAW_RECOVERY, /* a restarted agent thawed what the state file listed */
    NET_THAW_ROLLBACK, /* a freeze failed half-way */
};

const char *net_thaw_reason_name(enum net_thaw_reason r);

struct net_thaw_opts {
    /* The thaw kick ("kick" in guest-net-thaw): TCP_REPAIR_OFF with its window probe, then
     * thaw_kick() for the socket's own backed-off data. false: TCP_REPAIR_OFF_NO_WP only. */
    bool window_probe;
    bool has_host_time; /* step CLOCK_REALTIME to host_time_ns after the thaw */
    int64_t host_time_ns;
};

struct net_thaw_summary {
    bool valid;
    enum net_thaw_reason reason;
    uint64_t at_realtime_ns;
    uint64_t frozen_ms;
    size_t thawed, failed;
};

/* One connection named by guest-net-reset-stale. */
struct net_conn_key {
    struct tcp_endpoint local, remote;
};

/* guest-net-freeze's "include": freeze only connections whose remote end matches one. */
struct net_freeze_filter {
    bool has_addr;
    struct in6_addr addr; /* v4 stored v4-mapped */
    uint16_t port;        /* 0: any */
};

struct net_freeze_opts {
    uint32_t timeout_ms; /* 0: the configured default */
    const struct net_freeze_filter *include;
    size_t n_include; /* 0: every external connection */
};

struct net_freezer {
    struct net_freezer_config cfg;

    bool frozen;
    uint64_t since_mono_ns, since_real_ns;
    uint64_t deadline_mono_ns; /* watchdog; 0 when not frozen */
    uint32_t timeout_ms;       /* of the current freeze */

    struct socket_image img; /* what the freeze returned; conns[i] is frozen in fds[i] */
    int *fds;
    struct quiesce_set qs;
    size_t n_procs;
    /* A forked child holding copies of the frozen fds: it thaws them the moment the agent
     * dies (the kernel releases the owners at once then, so a restart would come too late),
     * or if the agent is stuck past the watchdog. */
    pid_t sentinel_pid;
    int sentinel_fd; /* our end of its pipe; -1 when none */

    uint64_t n_freezes;
    struct net_thaw_summary last_thaw;
    /* The connections of the last freeze, kept after the thaw for reset-stale by image id. */
    char last_image_id[33];
    struct net_conn_key *last_keys;
    size_t n_last_keys;
    /* What start-up recovery from the state file did (NULL: nothing to recover). */
    json_object *recovery;
};

void net_freezer_init(struct net_freezer *nf, const struct net_freezer_config *cfg);
/* Frees everything. Does NOT thaw: call net_freezer_thaw() first if frozen. */
void net_freezer_done(struct net_freezer *nf);

bool net_freezer_is_frozen(const struct net_freezer *nf);
/* CLOCK_MONOTONIC deadline of the watchdog, 0 when not frozen. */
uint64_t net_freezer_deadline(const struct net_freezer *nf);

/* guest-net-freeze (o may be NULL for the defaults). On success *image is the socket image
 * (caller owns). On failure everything done so far is undone (sockets thawed, processes
 * released) and err says why; -EBUSY if already frozen. Connections left out by o->include
 * are neither frozen nor recorded. */
int net_freezer_freeze(struct net_freezer *nf, const struct net_freeze_opts *o, json_object **image,
                       struct qga_error *err);

/* guest-net-thaw (also the watchdog, signals, rollback). Idempotent: thawing when not frozen
 * reports "was_frozen": false. *report (may be NULL) gets the per-socket result. Returns the
 * number of sockets that failed to thaw (they are still released), or -errno. */
int net_freezer_thaw(struct net_freezer *nf, enum net_thaw_reason why,
                     const struct net_thaw_opts *o, json_object **report);

/* guest-net-status. NULL on ENOMEM. */
json_object *net_freezer_status(const struct net_freezer *nf);

/* guest-net-verify: re-dump the live frozen sockets and compare them with image (a full
 * socket image, borrowed, may be NULL) or, with only image_id, with the image this freeze
 * returned. *ret = {"match":bool,"image_id":..,"checked":N,"differences":[...]}. */
int net_freezer_verify(struct net_freezer *nf, const char *image_id, json_object *image,
                       json_object **ret, struct qga_error *err);

/* guest-net-reset-stale: RST each listed connection (sock_diag destroy), plus, with image_id,
 * every connection of the last freeze if it had that id (NotFound otherwise). Refused while
 * frozen. *ret = {"reset":N,"connections":[{"local","remote","result"[,"error"]}]}. */
int net_freezer_reset_stale(struct net_freezer *nf, const struct net_conn_key *keys, size_t n,
                            const char *image_id, json_object **ret, struct qga_error *err);

/* At start-up: if the state file says a previous agent died frozen, find those sockets again
 * (by inode, through their owners) and thaw them, then record what happened (status shows it
 * as "recovery"). Returns the number of sockets thawed, 0 when there was nothing to do. */
int net_freezer_recover(struct net_freezer *nf);

/* Parse "1.2.3.4" / "::1" / "::ffff:1.2.3.4" and a port into an endpoint (v4 stored
 * v4-mapped, family AF_INET). -EINVAL on a bad address. */
int net_endpoint_parse(const char *addr, unsigned port, struct tcp_endpoint *ep);
