/* host/migrate.h: live migration with a network quiesce around the switchover.
 *
 * Owns the order of the migration's steps and its rollback, on top of the same effects the
 * checkpoint uses (host/txn-real.h for the domain, agent, gate and journal; host/virt.h for
 * virDomainMigrateToURI3). The caller owns everything (no globals).
 *
 * Order (docs/migrate.md):
 *   discover the domain on the source; journal the source gate and the destination gate;
 *   gate the destination taps (by name, before QEMU opens them there);
 *   migrate live, peer to peer, with VIR_MIGRATE_PAUSED (the destination stays paused) and a
 *   1 ms downtime limit, the network running;
 *   the pre-copy runs held from its start (QEMU's bandwidth MIGRATE_PRECOPY_BW_MIB, so that
 *   bandwidth x downtime limit is under one page and QEMU cannot switch over by itself);
 *   part way through the first pass over RAM (or after MIGRATE_PRECOPY_MAX_MS), gate the
 *   source taps, freeze the guest's sockets (the host keeps the image), suspend the source,
 *   release (full bandwidth): the rest is copied and libvirt switches over;
 *   on the destination: re-gate the live taps, start the tap watch, run the switchover hook
 *   (the fabric moves the guest's route), resume (gated, sockets in repair), guest-net-verify
 *   against the image, lift, thaw with the host's clock and the kick (unless no_kick), report;
 *   lift the source gate, drop both journal entries, record HISTORY_MIGRATED (history.h).
 * If QEMU switches over before the quiesce anyway, nothing is frozen: a plain live migration,
 * reported (quiesced false).
 * Any failure before the switchover rolls back: the job is aborted, the source resumed, both
 * gates lifted, the agent thawed. After the switchover the guest only lives on the
 * destination, so a failure there goes forward: lift, thaw, resume, and report it. */
#pragma once
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "host/gate.h"
#include "host/transaction.h"
#include "host/virt.h"

/* Destination-gate journal entries live in <state_dir>/MIGRATE_DEST_JOURNAL_DIR/journal. */
#define MIGRATE_DEST_JOURNAL_DIR "migrate-dest"
/* The held pre-copy runs at most this long before the quiesce, whatever its progress. */
#define MIGRATE_PRECOPY_MAX_MS 2000
/* QEMU's bandwidth until the freeze is done (VIR_MIGRATE_PARAM_BANDWIDTH, MiB/s): QEMU
 * switches over once what is left fits in bandwidth x downtime limit (1 ms), and 3 MiB/s x
 * 1 ms is under one 4 KiB page, so only a guest that dirtied nothing at all could complete.
 * Zero pages cost QEMU 9 bytes each, so they still fly. */
#define MIGRATE_PRECOPY_BW_MIB 3
/* Hold the pre-copy once its first pass has covered this much of RAM (percent). */
#define MIGRATE_HOLD_PERCENT_DEFAULT 30

enum migrate_step {
    MIGRATE_STEP_NONE,
    MIGRATE_STEP_DISCOVER,
    MIGRATE_STEP_CONNECT, /* the destination libvirt and namespace */
    MIGRATE_STEP_JOURNAL,
    MIGRATE_STEP_DEST_GATE,
    MIGRATE_STEP_PRECOPY,
    MIGRATE_STEP_GATE, /* source */
    MIGRATE_STEP_FREEZE,
    MIGRATE_STEP_SWITCHOVER, /* suspend the source, libvirt finishes the copy */
    MIGRATE_STEP_RESUME,     /* destination */
    MIGRATE_STEP_VERIFY,
    MIGRATE_STEP_LIFT,
    MIGRATE_STEP_THAW,
    MIGRATE_STEP_REPORT,
    MIGRATE_STEP_DONE,
};
const char *migrate_step_name(enum migrate_step s);

struct migrate_opts {
    const char *domain;
    const char *dest_uri;       /* the destination libvirt */
    const char *migrate_uri;    /* QEMU's stream (tcp://ADDR:PORT); NULL: libvirt chooses */
    const char *listen_address; /* where the destination QEMU listens; NULL: libvirt chooses */
    const char *dest_xml;       /* the domain XML for the destination (contents); may be NULL */
    /* The destination's network namespace (a path, or a name under /run/netns) where its taps
     * are, when it is not ours: only on one machine standing for two hosts (tests). NULL:
     * the destination taps are in this namespace. */
    const char *dest_netns;
    /* Run with /bin/sh -c once the destination holds the guest paused behind its gate, before
     * it resumes: where the fabric is told that the guest moved (tests move a route). */
    const char *switchover_hook;
    uint32_t watchdog_ms; /* the agent thaws by itself after this long */
    /* Quiesce once the held first pass covered this share of RAM, 1..95 (0:
     * MIGRATE_HOLD_PERCENT_DEFAULT), or after MIGRATE_PRECOPY_MAX_MS. Later: less to copy
     * with the network gated, a longer migration. */
    unsigned hold_percent;
    bool no_kick; /* thaw without the kick (agent_thaw_quiet), as restore --no-kick */
    int watch_ms; /* tap watch for the per-connection report; 0: off */
    bool reset_stale;
};

/* Durations in ns (0: did not happen). */
struct migrate_times {
    uint64_t total;
    uint64_t precopy;    /* migration start to the source gate */
    uint64_t freeze;     /* guest-net-freeze */
    uint64_t switchover; /* source suspended to the destination paused with the guest */
    uint64_t downtime;   /* source suspended to the destination resumed */
    uint64_t gate;       /* source gate up to the destination gate lifted */
    uint64_t verify, thaw;
};

struct migrate_result {
    enum txn_outcome outcome;
    enum migrate_step failed_step;
    int error;
    char message[1024];
    char rollback_errors[1024];
    char warnings[1024];
    bool switched_over;  /* the guest runs on the destination now */
    bool quiesced;       /* gate and freeze happened before the switchover */
    bool dest_gate_left; /* a gate is still up on the destination */
    bool source_gate_left;
    struct migrate_times t;
    struct nc_virt_job_mem mem; /* the last progress seen before the quiesce */
    uint64_t iterations;        /* passes over RAM before the quiesce */
    unsigned n_connections;     /* in the socket image */
    struct gate_counters src_counters, dst_counters;
    json_object *image; /* the socket image the host kept */
    json_object *verify_diff;
    json_object *thaw_reply;
    json_object *report; /* per-connection results from the destination's tap watch */
};
void migrate_result_done(struct migrate_result *r);

/* Progress and step events, like struct txn_ctx's. */
typedef void (*migrate_notify_fn)(void *ud, enum migrate_step step, bool end, uint64_t done,
                                  uint64_t total);

struct migrate_ctx {
    struct nc_virt *src; /* open on the source; its event loop serves the destination too */
    const char *state_dir;
    const char *agent_name; /* NULL: org.netckpt.agent.0 */
    const volatile sig_atomic_t *cancel;
    migrate_notify_fn notify;
    void *nud;
};

/* Run one migration. Fills r (always) and returns r->outcome. */
enum txn_outcome migrate_run(const struct migrate_ctx *ctx, const struct migrate_opts *o,
                             struct migrate_result *r);

/* Journal recovery of destination gates left by a dead migrate (lifted in their own
 * namespace). Returns the number recovered or -errno. Called by txn_real_recover(). */
int migrate_recover(const char *state_dir);
