/* host/virt.h: one libvirt connection with its event loop, and the domain operations the
 * checkpoint transaction needs (lookup, state, save with progress, restore paused, resume,
 * snapshot with memory, versions).
 *
 * The embedded QEMU driver lives inside the process that opens it and needs an event loop, so
 * struct nc_virt owns both the connection and a thread running libvirt's default event loop.
 * Nothing here is global: the caller owns the struct. Keep one open nc_virt per process: the
 * event loop implementation underneath is libvirt's process-wide one. Errors are -errno; the
 * libvirt message is copied into v->err (and logged at debug level), after the operation's
 * name (tests/unit/test-virt.c relies on it). nc_virt_open returns -EBUSY
 * when another process holds the embedded driver's root, with v->err naming that process. */
#pragma once
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libvirt/libvirt.h>

#define NC_VIRT_DEFAULT_STATE_DIR "/var/lib/netckpt"

struct nc_virt {
    virConnectPtr conn;
    pthread_t loop_thread;
    bool loop_started;
    atomic_bool loop_quit;
    char uri[4200];
    char state_dir[4096];
    char err[1024]; /* last error message, for the caller's report */
};

/* Set v->err (printf-style). */
void nc_virt_set_err(struct nc_virt *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* $NETCKPT_STATE_DIR, else /var/lib/netckpt. */
int nc_virt_default_state_dir(char *buf, size_t len);
/* qemu:///embed?root=<state_dir>/libvirt */
int nc_virt_default_uri(const char *state_dir, char *buf, size_t len);
/* Write <root>/etc/qemu.conf for the embedded driver when it is missing (MACHINE-NOTES).
 * Returns 1 when written, 0 when it already existed. */
int nc_virt_write_embed_conf(const char *root);

/* For main() only, before any thread or libvirt call: send libvirt's own log lines (warnings
 * such as "tainted: high-privileges") to <state_dir>/libvirt/log/libvirt.log instead of stderr,
 * by setting LIBVIRT_LOG_OUTPUTS unless the user already set it. Changes the environment. */
int nc_virt_log_to_file(const char *state_dir);

/* Open uri (NULL: the embedded default under state_dir; state_dir NULL: the default one).
 * Any qemu:///embed?root=DIR URI gets DIR/etc/qemu.conf written when it has none.
 * Starts the event loop thread first. On failure v is left closed. */
int nc_virt_open(struct nc_virt *v, const char *uri, const char *state_dir);
/* Close the connection and stop the event loop thread. Safe on a closed or zeroed struct. */
void nc_virt_close(struct nc_virt *v);

/* Lookup by name, then UUID string. Caller frees with virDomainFree. -ENOENT when absent. */
int nc_virt_lookup(struct nc_virt *v, const char *name_or_uuid, virDomainPtr *out);
/* virDomainState value and reason. */
int nc_virt_state(struct nc_virt *v, virDomainPtr dom, int *state, int *reason);
const char *nc_virt_state_name(int state);
/* Live (or inactive when not running) XML. Caller frees. */
int nc_virt_xml(struct nc_virt *v, virDomainPtr dom, unsigned int flags, char **out);
/* Library version as "major.minor.micro", and the driver (hypervisor) version. */
int nc_virt_lib_version(struct nc_virt *v, char *buf, size_t len);
int nc_virt_hv_version(struct nc_virt *v, char *buf, size_t len);

/* Progress of a save: bytes processed and total as libvirt's job info reports them
 * (total may be 0 while unknown). Called from the caller's thread. */
typedef void (*nc_virt_progress_fn)(void *userdata, uint64_t done, uint64_t total);

/* virDomainSaveFlags(dom, path, dxml, flags) in a worker thread while this thread polls
 * virDomainGetJobInfo every poll_ms (default 100) and calls progress. The domain is off
 * afterwards, as with virsh save. */
int nc_virt_save(struct nc_virt *v, virDomainPtr dom, const char *path, const char *dxml,
                 unsigned int flags, nc_virt_progress_fn progress, void *userdata, int poll_ms);
/* Ask libvirt to abort the domain's running job (a save or snapshot in progress: the call then
 * fails with -ECANCELED and the domain keeps running). Safe from the progress callback. */
int nc_virt_abort_job(struct nc_virt *v, virDomainPtr dom);

/* Restore a save file, leaving the domain paused, and look it up (out may be NULL). */
int nc_virt_restore_paused(struct nc_virt *v, const char *path, const char *dxml,
                           virDomainPtr *out);
int nc_virt_resume(struct nc_virt *v, virDomainPtr dom);
int nc_virt_suspend(struct nc_virt *v, virDomainPtr dom);

/* An internal snapshot with memory (<memory snapshot='internal'/>, so it needs qcow2 disks)
 * named name, as the alternative to a save file. Progress as for nc_virt_save. halt: stop the
 * domain afterwards. */
int nc_virt_snapshot_create(struct nc_virt *v, virDomainPtr dom, const char *name, bool halt,
                            nc_virt_progress_fn progress, void *userdata, int poll_ms);
/* Revert to snapshot name, leaving the domain paused. */
int nc_virt_snapshot_revert_paused(struct nc_virt *v, virDomainPtr dom, const char *name);

/* A second connection (a migration's destination) served by the event loop loop_owner
 * already runs: libvirt's default loop is process-wide, so v starts no thread of its own and
 * nc_virt_close(v) only closes the connection. Close v before loop_owner. */
int nc_virt_open_peer(struct nc_virt *v, const struct nc_virt *loop_owner, const char *uri);

/* What virDomainMigrateToURI3 gets (host/migrate.h). NULL strings are left to libvirt. */
struct nc_virt_migrate_args {
    const char *dest_uri;       /* the destination libvirt (peer to peer: the source dials it) */
    const char *migrate_uri;    /* VIR_MIGRATE_PARAM_URI: QEMU's stream, e.g. tcp://ADDR:PORT */
    const char *listen_address; /* VIR_MIGRATE_PARAM_LISTEN_ADDRESS on the destination */
    const char *dest_xml;       /* VIR_MIGRATE_PARAM_DEST_XML (a file's contents) */
    unsigned int flags;         /* VIR_MIGRATE_* */
    unsigned long long
        bandwidth_mib; /* VIR_MIGRATE_PARAM_BANDWIDTH (MiB/s) from the start; 0: libvirt's */
};
/* Blocking virDomainMigrateToURI3 (run it in a thread; nc_virt_abort_job cancels it). The
 * error goes to err (thread-safe: not v->err) and comes back as -errno. */
int nc_virt_migrate(virDomainPtr dom, const struct nc_virt_migrate_args *a, char *err,
                    size_t errlen);

/* Hold an outgoing migration where it is, or let it go on: QEMU's max-bandwidth through the
 * monitor (libvirt-qemu passthrough: libvirt's own speed call waits for the migration job,
 * and libvirt taints the domain "custom-monitor"). Held, it moves about 1 KiB/s, so QEMU's
 * switch-over threshold (bandwidth x downtime limit) is under one page and it cannot switch
 * over while the guest runs. Release sets *bw back. *bw (bytes/s): from
 * nc_virt_migrate_bandwidth() beforehand, so that the hold is one monitor round trip.
 * -errno with err. */
int nc_virt_migrate_hold(virDomainPtr dom, bool hold, uint64_t bw, char *err, size_t errlen);
int nc_virt_migrate_bandwidth(virDomainPtr dom, uint64_t *bw, char *err, size_t errlen);

/* An outgoing migration's memory progress (QEMU's query-migrate through the monitor; -ENOENT
 * unless QEMU is actively migrating). */
struct nc_virt_job_mem {
    uint64_t total, processed, remaining; /* bytes */
    uint64_t iteration;                   /* QEMU dirty syncs: 1 in the first pass, 2 after it */
    uint64_t dirty_rate;                  /* pages/s, 0 when unknown */
};
int nc_virt_job_mem(virDomainPtr dom, struct nc_virt_job_mem *out);
