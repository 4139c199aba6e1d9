/* host/transaction.h: the checkpoint and restore transactions as explicit state machines.
 *
 * Owns the order of the steps and the rollback promise; nothing else. Every effect goes
 * through struct txn_ops, a vtable that host/txn-real.c wires to the gate, journal, libvirt,
 * agent-link and bundle modules, and that the unit tests replace with a fake that fails at any
 * step. The caller owns struct txn_ctx (no globals); a signal only sets the flag that
 * ctx->cancel points to, and the transaction checks it between steps.
 *
 * Checkpoint: discover, bundle begin, journal, gate, freeze, save (or snapshot), commit; then
 *   stop mode: lift the gate (the VM is off, nothing stays gated);
 *   continue mode: restore the VM paused when the save stopped it, resume, lift, thaw.
 * Restore: open and verify the bundle, journal, gate the taps that already exist, restore
 *   paused, gate the live taps, resume (still gated, sockets still in repair, so the agent can
 *   answer), guest-net-verify against the image, lift, thaw with the host's clock, report.
 *   The agent cannot answer while the VM is paused, so verify runs after resume: the gate and
 *   the repair mode keep the network still until then.
 * Held-traffic replay (optional txn_ops.replay, docs/cli.md) rides along: capture from the
 *   gate on the live taps to the lift, the frames into the bundle (stop mode) or into the taps
 *   after the thaw. It never fails a transaction: a replay failure is a warning.
 *
 * Invariant on any failure or signal after the gate step began (checkpoint): no gate left,
 * agent thawed, VM running as before, journal removed, no partial bundle left or taken for
 * complete. Restore rolls back to "as before" too: the half-restored domain is destroyed, the
 * gate lifted, the bundle untouched. One documented exception: when guest-net-verify says the
 * live sockets do not match the image, the restore is REFUSED and the VM stays paused and
 * gated (nothing of the mismatched state escapes); `netckpt unblock` releases it. */
#pragma once
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "host/bundle.h"
#include "host/gate.h"
#include "host/journal.h"

#define TXN_MAX_TAPS GATE_MAX_TAPS

enum txn_vm_state {
    TXN_VM_UNKNOWN,
    TXN_VM_ABSENT, /* no such domain (a transient domain after save) */
    TXN_VM_OFF,    /* defined but not running */
    TXN_VM_RUNNING,
    TXN_VM_PAUSED,
};
const char *txn_vm_state_name(enum txn_vm_state s);

enum txn_step {
    TXN_STEP_NONE,
    TXN_STEP_DISCOVER,
    TXN_STEP_PREPARE, /* bundle begin */
    TXN_STEP_JOURNAL,
    TXN_STEP_GATE,
    TXN_STEP_FREEZE,
    TXN_STEP_SAVE,
    TXN_STEP_COMMIT,
    TXN_STEP_OPEN,    /* restore: open and verify the bundle */
    TXN_STEP_RESTORE, /* restore paused (save file or snapshot) */
    TXN_STEP_RESUME,
    TXN_STEP_VERIFY, /* guest-net-verify */
    TXN_STEP_LIFT,
    TXN_STEP_THAW,
    TXN_STEP_REPORT,
    TXN_STEP_DONE,
};
const char *txn_step_name(enum txn_step s);

enum txn_outcome {
    TXN_OK,
    TXN_FAILED,          /* before any effect, or nothing to undo */
    TXN_BUSY,            /* another live process holds the domain's journal entry */
    TXN_REFUSED,         /* bundle/image refused; for a verify mismatch the VM stays paused+gated */
    TXN_ROLLED_BACK,     /* failed after the gate; rollback complete */
    TXN_ROLLBACK_FAILED, /* rollback incomplete (see rollback_errors); journal kept */
    TXN_INTERRUPTED,     /* signal; rollback complete */
};
const char *txn_outcome_name(enum txn_outcome o);

/* What discover finds about a domain. */
struct txn_domain {
    char name[256];
    char uuid[37];
    char taps[TXN_MAX_TAPS][16];
    size_t n_taps;
    enum txn_vm_state state;
    char *xml; /* malloc'd live domain XML for the bundle (may be NULL); the caller frees */
};

typedef void (*txn_progress_fn)(void *userdata, uint64_t done, uint64_t total);

/* Held-traffic replay (host/replay.h), in the order the transaction calls it. */
enum txn_replay_phase {
    TXN_REPLAY_BEGIN, /* right after the gate went on the (live) taps: start capturing */
    TXN_REPLAY_STOP,  /* right after the lift (stop mode: after the save): drain, end capture */
    TXN_REPLAY_KEEP,  /* stop mode, before commit: put the held frames in the bundle */
    TXN_REPLAY_SEND,  /* after the thaw: replay (restore: the bundle's frames first) */
    TXN_REPLAY_CLOSE, /* always, at the end: free everything (safe when never begun) */
};
struct txn_replay_stats {
    bool enabled;       /* replay was on for this transaction */
    uint64_t held;      /* frames held (restore: the bundle's plus the restore window's) */
    uint64_t replayed;  /* frames sent into the taps */
    uint64_t dropped;   /* over the bound, not kept (the peers retransmit them) */
    uint64_t rejected;  /* not the domain's, or refused at replay */
    uint64_t failed;    /* the send failed, or over the tap's MTU and not TCP (cannot be split) */
    uint64_t segmented; /* TCP super-frames over the tap's MTU split into segments (replayed
                           counts the segments) */
    uint64_t outage;    /* restore: frames the stop-mode outage holder handed over (in held) */
    int holder_pid;     /* stop-mode checkpoint: the outage holder left running (0: none) */
    bool skipped;       /* not replayed on purpose (a rollback whose stale connections reset) */
};

/* Rollback safety (docs/rollback.md): is this restore a rollback, and what was done. */
struct txn_rollback {
    bool checked;     /* judged (false: the restore failed before) */
    bool detected;    /* the peers may be ahead of the bundle */
    bool known;       /* the domain's history decided (else the manifest and VM state) */
    char reason[256]; /* one sentence */
    bool reset;       /* --stale=auto: every connection of the image was reset */
    int n_reset;      /* connections the agent reset */
    int probes;       /* peer probes sent (host/peer-probe.h) */
};

/* What a transaction tells the domain's history (host/history.h). */
enum txn_history_event {
    TXN_HISTORY_STOPPED,   /* stop-mode checkpoint committed */
    TXN_HISTORY_CONTINUED, /* continue-mode checkpoint committed */
    TXN_HISTORY_RESTORED,  /* a restore left the domain there (running, paused or refused) */
};

/* The effects. ud is the implementation's context. Every int function returns 0 or -errno and
 * may fill err (errlen bytes) with a one-line reason. */
struct txn_ops {
    /* The named domain: -ENOENT when absent (state then TXN_VM_ABSENT is fine too). */
    int (*discover)(void *ud, const char *domain, struct txn_domain *out, char *err, size_t errlen);
    /* Current state of the domain discover found (or the restore brought back). */
    int (*vm_state)(void *ud, enum txn_vm_state *out);

    int (*gate_install)(void *ud, const char *domain, const char *const *taps, size_t n, char *err,
                        size_t errlen);
    int (*gate_lift)(void *ud, const char *domain, char *err, size_t errlen);
    int (*gate_counters)(void *ud, const char *domain, struct gate_counters *c);

    /* guest-net-freeze; *image: the validated socket image (caller puts). watchdog_ms: the
     * agent thaws by itself after that long. */
    int (*agent_freeze)(void *ud, uint32_t watchdog_ms, json_object **image, char *err,
                        size_t errlen);
    /* guest-net-thaw with the host's CLOCK_REALTIME (0: do not touch the guest clock).
     * *reply may be NULL. Thawing a guest that is not frozen succeeds. */
    int (*agent_thaw)(void *ud, uint64_t host_time_ns, json_object **reply, char *err,
                      size_t errlen);
    /* guest-net-verify: 1 when the live sockets match image, 0 on a mismatch (*diff says how;
     * caller puts), or -errno. */
    int (*agent_verify)(void *ud, json_object *image, json_object **diff, char *err, size_t errlen);
    /* Optional: start watching the taps for the image's connections, before the gate lifts
     * (so the report sees the first frames). Failure is only a warning. */
    int (*watch_begin)(void *ud, json_object *image);
    /* After thaw: per-connection outcome {"connections":[{..,"result":"survived"|"reset"|
     * "stalled","stall_ms":N}],...}; stale "auto" resets stalled connections. May be NULL. */
    int (*agent_report)(void *ud, json_object *image, json_object *thaw_reply, bool reset_stale,
                        json_object **report, char *err, size_t errlen);

    /* Save the VM into the open bundle (save file) or as a snapshot with memory. halt: the VM
     * is off afterwards (a save file always stops it). progress may be NULL. */
    int (*save)(void *ud, bool snapshot, bool halt, txn_progress_fn progress, void *pud, char *err,
                size_t errlen);
    /* Bring back, paused, the VM state this checkpoint saved (from the partial or committed
     * bundle, or the snapshot). Rollback and continue mode use it. */
    int (*restore_saved)(void *ud, char *err, size_t errlen);
    /* Restore the bundle opened by bundle_open, paused. */
    int (*restore_bundle)(void *ud, char *err, size_t errlen);
    int (*resume)(void *ud, char *err, size_t errlen);
    int (*suspend)(void *ud, char *err, size_t errlen);
    /* Stop the domain without saving (restore rollback). */
    int (*destroy)(void *ud, char *err, size_t errlen);

    /* Start the bundle at path; tmp gets the partial directory (for the journal). */
    int (*bundle_begin)(void *ud, const char *path, char *tmp, size_t tmplen, char *err,
                        size_t errlen);
    int (*bundle_add)(void *ud, const char *name, const void *buf, size_t len, char *err,
                      size_t errlen);
    /* m is complete except files and versions; commit fills them. */
    int (*bundle_commit)(void *ud, struct manifest *m, char *err, size_t errlen);
    void (*bundle_abort)(void *ud);
    /* Open and fully verify a bundle: manifest, the socket image (validated; caller puts),
     * -EINVAL/-ENOENT/-EFBIG => refused; -ENXIO: nothing at path (a mistyped argument, err
     * says so) => failed. image_override: a socket-image file used instead of
     * the bundle's (NULL: the bundle's). */
    int (*bundle_open)(void *ud, const char *path, const char *image_override, struct manifest *m,
                       json_object **image, char *err, size_t errlen);

    /* -EBUSY when a live process holds the domain's journal entry, -ESTALE when a dead one
     * left it (recovery could not clean it), 0 when free. */
    int (*journal_check)(void *ud, const char *domain);
    int (*journal_write)(void *ud, const struct journal_entry *e);
    int (*journal_remove)(void *ud, const char *domain);

    /* Optional (NULL: no replay). image: the socket image (NULL before the freeze); st
     * accumulates the counts. Every failure is only a warning: the peers retransmit. */
    int (*replay)(void *ud, enum txn_replay_phase ph, json_object *image,
                  struct txn_replay_stats *st, char *err, size_t errlen);

    /* Optional rollback safety (NULL: a --continue bundle is a rollback, nothing recorded).
     * history_record: the event for m's domain and bundle (a failure is only logged).
     * rollback_decide: is restoring m a rollback (vm_active: the domain runs or is paused)?
     * agent_thaw_quiet: guest-net-thaw without the window-probe kick, for a rollback about to
     * reset every connection (a probe's answer would use up the peer's rate-limited reply).
     * reset_image: reset every connection of image in the guest and make the peers hear it;
     * fills *n_reset and *probes. */
    void (*history_record)(void *ud, enum txn_history_event ev, const struct manifest *m);
    void (*rollback_decide)(void *ud, const struct manifest *m, bool vm_active,
                            struct txn_rollback *out);
    int (*agent_thaw_quiet)(void *ud, uint64_t host_time_ns, json_object **reply, char *err,
                            size_t errlen);
    int (*reset_image)(void *ud, json_object *image, int *n_reset, int *probes, char *err,
                       size_t errlen);

    /* CLOCK_MONOTONIC or CLOCK_REALTIME in ns. */
    uint64_t (*clock)(void *ud, bool realtime);
};

enum txn_event {
    TXN_EV_STEP_BEGIN,
    TXN_EV_STEP_END,
    TXN_EV_PROGRESS,
    TXN_EV_ROLLBACK, /* step = the one that failed */
    TXN_EV_WARNING,  /* message */
};

struct txn_ctx {
    const struct txn_ops *ops;
    void *ud;
    /* Set (to non-zero) by a signal handler the caller owns. NULL: never cancelled. */
    const volatile sig_atomic_t *cancel;
    /* Optional: step and progress events for the CLI. */
    void (*notify)(void *nud, enum txn_event ev, enum txn_step step, uint64_t done, uint64_t total,
                   const char *message);
    void *nud;
    pid_t pid; /* recorded in the journal */
};

struct txn_checkpoint_opts {
    const char *domain;
    const char *dir; /* the bundle path to create */
    bool continue_running;
    bool snapshot;
    uint32_t watchdog_ms; /* --freeze-timeout */
    bool no_replay;       /* --no-replay */
};

struct txn_restore_opts {
    const char *bundle;
    const char *image_override; /* --image FILE, NULL: the bundle's */
    bool reset_stale;           /* --stale=auto */
    bool leave_paused;          /* --paused: stop after verify, VM paused and gated */
    bool no_replay;             /* --no-replay */
    bool keep_clock;            /* --clock=keep: thaw without the host's time */
    bool no_kick;               /* --no-kick: thaw quietly (agent_thaw_quiet), no window probe */
};

/* What happened, for the report. Free with txn_result_done(). */
struct txn_result {
    enum txn_outcome outcome;
    enum txn_step failed_step; /* TXN_STEP_NONE on success */
    int error;                 /* -errno of the failure */
    char message[1024];        /* why it failed, or "" */
    bool interrupted;
    bool rolled_back;
    char rollback_errors[1024]; /* "" when the rollback was complete */
    char warnings[1024];        /* non-fatal problems, "; "-separated */
    enum txn_vm_state vm_before, vm_after;
    bool gate_left; /* a gate is still installed (REFUSED, --paused, rollback failure) */
    bool bundle_committed;
    char bundle_path[4096];
    struct manifest m;        /* what was (or would have been) committed / was restored */
    json_object *image;       /* socket image (checkpoint: from freeze; restore: the bundle's) */
    json_object *verify_diff; /* restore: differences when refused */
    json_object *thaw_reply;
    json_object *report; /* restore and continue mode: per-connection results */
    struct txn_replay_stats replay;
    struct txn_rollback rollback; /* restore only */
};

void txn_result_done(struct txn_result *r);

/* Run a checkpoint. Fills r (always) and returns r->outcome. */
enum txn_outcome txn_checkpoint(struct txn_ctx *ctx, const struct txn_checkpoint_opts *o,
                                struct txn_result *r);
/* Run a restore. Fills r (always) and returns r->outcome. */
enum txn_outcome txn_restore(struct txn_ctx *ctx, const struct txn_restore_opts *o,
                             struct txn_result *r);
