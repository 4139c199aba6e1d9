/* host/txn-real.h: the real struct txn_ops, wiring the transaction to libvirt (host/virt),
 * the domain XML (host/domain-xml), the agent (host/agent-link), the gate and journal
 * (host/gate, host/journal) and bundles (host/bundle). Also the clean-up paths that are not a
 * transaction but need the same wiring: journal recovery at start-up and `unblock`.
 *
 * Owns struct txn_real, one per transaction or clean-up, caller-allocated: the domain handle,
 * its parsed XML, the agent link (reopened after every restore, since QEMU is new), the open
 * bundle, and where the saved VM state lives at each moment (partial bundle, a rescue hard
 * link kept while the bundle commits, or the committed bundle), so rollback can bring a
 * saved-and-stopped VM back even when the commit failed with ENOSPC. */
#pragma once
#include <signal.h>
#include <stdbool.h>

#include <json-c/json.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "host/agent-link.h"
#include "host/bundle.h"
#include "host/domain-xml.h"
#include "host/replay.h"
#include "host/transaction.h"
#include "host/virt.h"

struct tap_watch;

/* Agent call timeouts (ms). The freeze dumps every queue, so it gets longer. */
#define TXN_REAL_CALL_MS   10000
#define TXN_REAL_FREEZE_MS 30000
#define TXN_REAL_PING_MS   5000
/* How long the agent may take to appear after QEMU (re)starts. */
#define TXN_REAL_CONNECT_MS 10000

struct txn_real {
    struct nc_virt *v;
    const char *state_dir;
    const char *agent_name; /* channel to use; NULL: org.netckpt.agent.0 */
    const volatile sig_atomic_t *cancel;

    char domain[256];
    virDomainPtr dom;
    struct domain_info di;
    bool have_di;
    struct agent_link link;
    bool link_open;

    /* checkpoint */
    struct bundle b;
    char bundle_path[4096];
    char rescue[4096]; /* hard link of vm.state held across bundle_commit */
    bool state_in_bundle, committed, snapshot;
    char snapshot_name[256];
    bool abort_sent;

    /* the per-connection report (host/tap-watch.h); watch_ms 0 disables it */
    struct tap_watch *watch;
    int watch_ms;

    /* restore */
    char open_path[4096];
    struct manifest open_m;
    bool open_ok;
    bool restored; /* restore_bundle ran: taps must exist from now on */
    /* held-traffic replay (host/replay.h); replay_limit 0: REPLAY_DEFAULT_LIMIT */
    struct replay_session rs;
    size_t replay_limit;
    /* a rollback's guest-net-reset-stale reply, for the report (host/rollback.h) */
    json_object *rollback_reset;
};

extern const struct txn_ops txn_real_ops;

void txn_real_init(struct txn_real *t, struct nc_virt *v, const char *state_dir,
                   const volatile sig_atomic_t *cancel);
void txn_real_done(struct txn_real *t);

/* Run an agent command on the domain t->domain names (opening the link as needed). */
int txn_real_agent_call(struct txn_real *t, const char *cmd, json_object *args, int timeout_ms,
                        json_object **ret, char *err, size_t errlen);

/* Verify a bundle completely (bundle_open_verify) and load its socket image, or the file
 * image_override instead, validated as untrusted input; without an override the image id must
 * be the manifest's. -EINVAL/-ENOENT/-EFBIG (refused) with err filled, or -errno. */
int txn_real_open_bundle(const char *path, const char *image_override, struct manifest *m,
                         json_object **image, char *err, size_t errlen);

/* Nothing at path (and no half-written PATH's .partial sibling): a mistyped argument, not a
 * refused bundle. true with "no such bundle: PATH" in msg. restore, verify and inspect all
 * fail with exit 1 then (docs/cli.md); the bundle_open op returns -ENXIO for it. */
bool txn_real_bundle_missing(const char *path, char *msg, size_t len);

/* The journal_recover() callback: bring the VM of a dead transaction back to running with
 * its agent thawed (restore it from the partial bundle if the save had stopped it), and
 * remove the partial bundle. userdata: struct nc_virt *. */
int txn_real_recover_entry(const struct journal_entry *e, void *userdata);

/* Journal recovery at start-up: lift stale gates, thaw, resume. Returns the number of entries
 * recovered or -errno. v may be NULL (then only entries that need no libvirt are cleaned). */
int txn_real_recover(struct nc_virt *v, const char *state_dir);

/* `netckpt unblock DOMAIN`: lift the domain's gate, resume it if it was left paused by
 * netckpt, thaw its agent, clean its journal entry and partial bundle. force: even when the
 * journal's owner still runs. *report: what was done (caller puts). 0, -EBUSY, or -errno. */
int txn_real_unblock(struct nc_virt *v, const char *state_dir, const char *domain, bool force,
                     json_object **report, char *err, size_t errlen);
