/* host/journal.h: the gate journal, one small JSON file per domain under <state_dir>/journal/.
 *
 * Owns the on-disk record of every gate and the transaction step it was in. An entry is
 * written (atomically, fsync'd) before the gate goes up and removed after it is lifted, so a
 * crashed or killed netckpt leaves enough behind for the next start to lift the gate and let
 * the caller thaw the agent and resume the VM. Files are named after gate_table_name(), so a
 * domain name never becomes a path. Everything read back is validated; a corrupt file is
 * refused with -EBADMSG and a log line naming the file and the fault. See docs/gate.md. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Largest journal file accepted on read. */
#define JOURNAL_MAX_FILE (64 * 1024)

struct journal_entry {
    char domain[256];
    char uuid[37]; /* "" when unknown */
    char taps[16][16];
    size_t n_taps;
    char step[32]; /* "gating","gated","frozen","saving","committing","resuming","restoring" */
    char bundle_tmp[4096];
    pid_t pid;           /* the owning process; its death makes the entry stale */
    uint64_t started_ns; /* CLOCK_REALTIME of the transaction start */
    bool vm_was_running;
    /* Start time of pid in clock ticks since boot (/proc/PID/stat field 22) so a reused pid is
     * not taken for the owner. journal_write() fills it when 0 and pid is alive. */
    uint64_t pid_start_ticks;
    /* The network namespace the gate was put in (st_dev/st_ino of /proc/thread-self/ns/net),
     * so recovery lifts it there even when run from another namespace. journal_write() fills
     * them when both are 0. */
    uint64_t netns_dev, netns_ino;
};

/* Write or replace the domain's entry (validated first: -EINVAL for bad fields). Creates
 * <state_dir>/journal (0700); the file is 0600. */
int journal_write(const char *state_dir, const struct journal_entry *e);

/* Read the domain's entry. -ENOENT if none, -EBADMSG if corrupt or not for this domain. */
int journal_read(const char *state_dir, const char *domain, struct journal_entry *e);

/* Remove the domain's entry. 1 if removed, 0 if there was none, or -errno. */
int journal_remove(const char *state_dir, const char *domain);

/* Parse and validate the text of one journal file (no file name check). 0, or -EBADMSG with
 * the fault in err. */
int journal_parse(const char *text, size_t len, struct journal_entry *e, char *err, size_t errlen);

/* All valid entries (caller frees *out). Corrupt files are logged and skipped; their count is
 * returned (0 when all were good), or -errno. A missing journal dir is an empty list. */
int journal_list(const char *state_dir, struct journal_entry **out, size_t *n);

/* 1 if the entry's owner process still runs (same pid and start time), 0 if dead. */
int journal_owner_alive(const struct journal_entry *e);

/* Lift e's gate in the network namespace e records (the caller's own is never changed):
 * the current one, else one found under /run/netns or as a process's (as journal_recover()
 * does). *was_installed (may be NULL) gets gate_is_installed() there before the lift (0 when
 * the namespace is gone). Returns gate_lift()'s result, 0 when the namespace is gone. */
int journal_lift_gate(const struct journal_entry *e, int *was_installed);

/* Called by journal_recover() for each stale entry after its gate was lifted: thaw the agent,
 * resume the VM if e->vm_was_running, clean e->bundle_tmp. Return 0 to have the entry removed,
 * or -errno to keep it for the next recovery. */
typedef int (*journal_recover_fn)(const struct journal_entry *e, void *userdata);

/* For every entry whose owner is dead: lift its gate, call fn (may be NULL), then remove the
 * entry. Entries with a live owner are left alone. The gate is lifted in the entry's network
 * namespace: the current one, else the one found under /run/netns or as some process's
 * namespace (QEMU keeps the tap's). A namespace found nowhere is taken as destroyed, and its
 * tables with it (logged). Returns the number of entries recovered, or the first -errno after
 * trying all of them. */
int journal_recover(const char *state_dir, journal_recover_fn fn, void *userdata);
