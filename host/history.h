/* host/history.h: what each domain's network state did, so a restore can tell a rollback.
 *
 * Owns one small JSON file per domain under <state_dir>/history/<uuid>.json: the last
 * HISTORY_MAX events (a stop-mode checkpoint, a continue-mode checkpoint, a restore, a
 * migration), each naming the bundle by its socket image id. The restore asks
 * history_decide() whether restoring a bundle rolls the domain back behind its peers: only
 * "the last event is a stop-mode checkpoint of this very bundle" means nothing ran since.
 * Without a history (a bundle from another host, a new state dir) the manifest's mode and
 * the domain's current state decide. The user is never asked. A malformed file counts as no
 * history (the caller warns); it is moved aside to <uuid>.json.bad before it is replaced, so
 * nothing is lost. Writes are atomic (write_file_atomic). Domains are named by UUID, which is
 * validated, so a manifest's UUID never becomes an arbitrary path. See docs/rollback.md. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HISTORY_MAX      16          /* events kept per domain (the oldest are dropped) */
#define HISTORY_MAX_FILE (64 * 1024) /* largest history file read */

enum history_kind {
    HISTORY_STOPPED,   /* stop-mode checkpoint: the domain's network state stops at the bundle */
    HISTORY_CONTINUED, /* continue-mode checkpoint: the domain ran on after the bundle */
    HISTORY_RESTORED,  /* restore: the domain runs on from the bundle */
    HISTORY_MIGRATED,  /* the domain left this host (live migration hook) */
};
const char *history_kind_name(enum history_kind k);

struct history_event {
    enum history_kind kind;
    char image_id[65]; /* the bundle's socket image id ("" for a migration) */
    uint64_t time_ns;  /* CLOCK_REALTIME */
};

struct history {
    char uuid[37];
    struct history_event ev[HISTORY_MAX];
    size_t n; /* oldest first */
};

/* The verdict on restoring one bundle. */
struct history_decision {
    bool rollback;    /* the peers may be ahead of the bundle: reset its connections */
    bool known;       /* a (readable) history of this domain decided it */
    char reason[256]; /* one sentence for the report */
};

/* 1 when s is a canonical 36-character UUID (hex and dashes), else 0. */
int history_uuid_valid(const char *s);

/* Decide whether restoring the bundle (image_id, made in continue mode or not) is a
 * rollback. h: the domain's history, or NULL when there is none or it was unreadable.
 * vm_active: the domain is running or paused now. Pure: no I/O. */
void history_decide(const struct history *h, const char *image_id, bool continue_mode,
                    bool vm_active, struct history_decision *out);

/* Parse/format the file's text. parse: 0, or -EBADMSG with the fault in err. */
int history_parse(const char *text, size_t len, struct history *h, char *err, size_t errlen);
char *history_format(const struct history *h); /* malloc'd JSON text, NULL on ENOMEM */

/* Append e to h, dropping the oldest event when full. */
void history_push(struct history *h, const struct history_event *e);

/* Load the domain's history: 0, -ENOENT when there is none, -EBADMSG (malformed; err says
 * why), -EINVAL for a bad uuid, or -errno. */
int history_load(const char *state_dir, const char *uuid, struct history *h, char *err,
                 size_t errlen);

/* Append one event to the domain's history file (creating <state_dir>/history, 0700; the
 * file is 0600). A malformed file is moved to <uuid>.json.bad and a new history started.
 * 0 or -errno (-EINVAL for a bad uuid or kind). */
int history_record(const char *state_dir, const char *uuid, enum history_kind kind,
                   const char *image_id, uint64_t time_ns);
