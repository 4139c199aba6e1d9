/* host/hold.h: the stop-mode outage hold. After a stop-mode checkpoint the VM and its tap are
 * gone until a restore, but frames for the guest still reach the host (forwarded, or on the
 * bridge). A detached holder process keeps them: netckpt starts it right after the held frames
 * of the gate window went into the bundle (double fork, setsid, exec of the same binary with
 * the internal first argument HOLD_RUN_ARG), it installs the stop-mode hold tables
 * (replay_hold_forward_begin_nft with the owner flag: the kernel removes them when the holder
 * dies, however it dies) and an nflog capture for the domain's MACs and the socket image's
 * IPs, bounded like the gate's capture, and lives until the restore of that checkpoint asks
 * for the frames (handover), until told to stop, until its lifetime ends (1 h), until the
 * domain's tap runs again without a netckpt transaction on the domain (a plain virsh restore),
 * or until its record file disappears (the state directory was removed).
 *
 * Owns the holder's files under <state_dir>/hold/, named by hold_id(domain): ID.json (what to
 * hold, then the holder's pid and deadline), ID.sock (its control socket, JSON lines:
 * {"cmd":"status"|"stop"|"handover"}), ID.pcap (the frames of a handover, read by the restore
 * as untrusted input and removed) and ID.log (its stderr). See docs/replay.md. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "host/replay.h"

struct json_object;

#define HOLD_RUN_ARG            "__netckpt-hold" /* argv[1] of a holder: main() calls hold_main */
#define HOLD_DEFAULT_LIFETIME_S 3600u
#define HOLD_MAX_LIFETIME_S     (7u * 24 * 3600)
#define HOLD_ID_LEN             16 /* hex characters of hold_id() */
#define HOLD_MAX_TAPS           16

/* What a holder holds. */
struct hold_spec {
    char domain[256];
    char image_id[65];         /* the checkpoint's socket image: a restore of it gets the frames */
    struct replay_addrs addrs; /* the domain's MACs and the image's IPs (no any_ip) */
    char taps[HOLD_MAX_TAPS][16]; /* the domain's taps: one running again outside a netckpt
                                     transaction on the domain ends the hold */
    size_t n_taps;
    size_t limit;        /* bytes of frames kept, 0: REPLAY_DEFAULT_LIMIT */
    uint32_t lifetime_s; /* 0: HOLD_DEFAULT_LIFETIME_S */
};

/* The file name stem of a domain's holder: HOLD_ID_LEN hex characters of its name's sha256. */
int hold_id(const char *domain, char out[HOLD_ID_LEN + 1]);

/* A spec for a stop-mode checkpoint: the taps with their NICs' MACs, the IPs of the socket
 * image's connections, the image's id. -EINVAL (bad image or taps), -E2BIG. */
int hold_spec_fill(struct hold_spec *s, const char *domain, const struct replay_tap *taps,
                   size_t n_taps, struct json_object *image, size_t limit);

/* Start the holder of s->domain, in the caller's network namespace (where the tap was). An
 * earlier holder of the domain is stopped first. exe: the binary to run, whose main() must hand
 * argv[1] == HOLD_RUN_ARG to hold_main() (NULL: /proc/self/exe). Returns 0 once the holder's
 * tables and capture are in place, with *pid, or -errno with err filled (the holder then left
 * nothing behind). */
int hold_start(const char *state_dir, const struct hold_spec *s, const char *exe, pid_t *pid,
               char *err, size_t errlen);

/* The holder's main: argv = {HOLD_RUN_ARG, STATE_DIR, ID, READY_FD}. Returns the exit code. */
int hold_main(int argc, char **argv);

struct hold_handover {
    pid_t pid;            /* the holder that answered */
    uint64_t frames;      /* kept by the holder */
    uint64_t dropped;     /* over its bound */
    uint64_t rejected;    /* not the domain's (its capture, then the reader here) */
    uint64_t lost_events; /* nflog overruns */
    bool mismatch;        /* it held for another checkpoint: the frames were not used */
};

/* Ask the domain's holder for its frames: it removes its tables, writes its frames into the
 * state directory and exits. When it held for image_id, the frames, validated against the
 * taps' MACs (untrusted input; any IP: the replay checks the image's), are appended to out.
 * 1 handed over (h says what), 0 no holder (or a dead one, whose files are then removed),
 * -errno (the holder is stopped anyway: by its socket, else killed by its pid once /proc says
 * it is that holder). */
int hold_handover(const char *state_dir, const char *domain, const char *image_id,
                  const struct replay_tap *taps, size_t n_taps, struct replay_buf *out,
                  struct hold_handover *h);

/* Read a handover's pcap (untrusted): size-limited by out's bound, every frame validated for
 * the taps' MACs. What replay_pcap_read returns. */
int hold_read_frames(const char *path, const struct replay_tap *taps, size_t n_taps,
                     struct replay_buf *out);

/* Stop the domain's holder (frames discarded) and remove its files. 1 a holder or its files
 * were there, 0 none, -errno. */
int hold_stop(const char *state_dir, const char *domain);

/* A live holder's status ({"pid","group","frames","bytes","dropped","rejected","seen",
 * "lost_events","domain","image_id","deadline_ns"}; caller puts). -ENOENT when none answers. */
int hold_status(const char *state_dir, const char *domain, struct json_object **out);

/* The transaction's two calls (host/txn-real.c, txn_ops.replay), every failure a warning:
 * hold_txn_begin at the stop-mode checkpoint's TXN_REPLAY_KEEP (the VM is off, the bundle's
 * held.pcap written): start the holder for the taps and image; st->holder_pid says which.
 * hold_txn_take at the restore's TXN_REPLAY_BEGIN (the restored taps gated and captured):
 * hand the outage over into out (initialised here with limit), counted in st->outage, dropped
 * and rejected. */
struct txn_replay_stats;
int hold_txn_begin(const char *state_dir, const char *domain, const struct replay_tap *taps,
                   size_t n_taps, struct json_object *image, size_t limit,
                   struct txn_replay_stats *st, char *err, size_t errlen);
int hold_txn_take(const char *state_dir, const char *domain, const char *image_id,
                  const struct replay_tap *taps, size_t n_taps, size_t limit,
                  struct replay_buf *out, struct txn_replay_stats *st);

/* For every holder file set in the state directory: remove those whose holder is gone (its
 * tables went with it) and stop holders that do not answer. Returns how many were cleaned. */
int hold_recover(const char *state_dir);
