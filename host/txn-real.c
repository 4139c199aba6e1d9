/* host/txn-real.c: see txn-real.h. */
#include "host/txn-real.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "agent/agent-commands.h"
#include "common/log.h"
#include "common/util.h"
#include "guest/socket-image.h"
#include "host/gate.h"
#include "host/hold.h"
#include "host/journal.h"
#include "host/migrate.h"
#include "host/rollback.h"
#include "host/tap-watch.h"

#define T ((struct txn_real *)ud)

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void link_close(struct txn_real *t)
{
    if (t->link_open)
        agent_link_close(&t->link);
    t->link_open = false;
}

/* The domain's QEMU changed (restore, revert): its XML and channel must be read again. */
static void invalidate(struct txn_real *t)
{
    t->have_di = false;
    link_close(t);
}

static void set_dom(struct txn_real *t, virDomainPtr d)
{
    if (t->dom)
        virDomainFree(t->dom);
    t->dom = d;
    t->have_di = false;
    link_close(t); /* a new QEMU, or none: the old channel is gone */
}

void txn_real_init(struct txn_real *t, struct nc_virt *v, const char *state_dir,
                   const volatile sig_atomic_t *cancel)
{
    memset(t, 0, sizeof(*t));
    t->v = v;
    t->state_dir = state_dir;
    t->cancel = cancel;
    t->link.fd = -1;
    t->watch_ms = TAP_WATCH_DEFAULT_MS;
}

void txn_real_done(struct txn_real *t)
{
    link_close(t);
    if (t->dom)
        virDomainFree(t->dom);
    t->dom = NULL;
    if (t->b.active)
        bundle_abort(&t->b);
    if (t->rescue[0])
        unlink(t->rescue);
    t->rescue[0] = 0;
    replay_session_close(&t->rs);
    json_object_put(t->rollback_reset);
    t->rollback_reset = NULL;
    if (t->watch) {
        tap_watch_stop(t->watch);
        free(t->watch);
        t->watch = NULL;
    }
}

static enum txn_vm_state map_state(int s)
{
    switch (s) {
    case VIR_DOMAIN_RUNNING:
        return TXN_VM_RUNNING;
    case VIR_DOMAIN_PAUSED:
    case VIR_DOMAIN_PMSUSPENDED:
        return TXN_VM_PAUSED;
    case VIR_DOMAIN_BLOCKED:
        return TXN_VM_RUNNING;
    default:
        return TXN_VM_OFF;
    }
}

/* Look the domain up afresh: after a save of a transient domain it is gone, after a restore
 * it is a new object. */
static int refresh(struct txn_real *t, enum txn_vm_state *st)
{
    virDomainPtr d = NULL;
    int r = nc_virt_lookup(t->v, t->domain, &d);
    if (r == -ENOENT) {
        set_dom(t, NULL);
        *st = TXN_VM_ABSENT;
        return 0;
    }
    if (r < 0)
        return r;
    unsigned char a[VIR_UUID_BUFLEN], b[VIR_UUID_BUFLEN];
    bool same = t->dom && virDomainGetUUID(t->dom, a) == 0 && virDomainGetUUID(d, b) == 0 &&
                !memcmp(a, b, sizeof(a)) && virDomainGetID(t->dom) == virDomainGetID(d);
    if (same) {
        virDomainFree(d);
    } else {
        set_dom(t, d);
    }
    int s = 0, reason = 0;
    r = nc_virt_state(t->v, t->dom, &s, &reason);
    if (r == -ENOENT) {
        *st = TXN_VM_ABSENT;
        return 0;
    }
    if (r < 0)
        return r;
    *st = map_state(s);
    return 0;
}

static int read_di(struct txn_real *t, char **xml_out, char *err, size_t errlen)
{
    _cleanup_free_ char *xml = NULL;
    int r = nc_virt_xml(t->v, t->dom, 0, &xml);
    if (r < 0) {
        seterr(err, errlen, "reading the domain XML: %s", t->v->err);
        return r;
    }
    r = domain_xml_parse(xml, t->agent_name, &t->di, err, errlen);
    if (r < 0)
        return r;
    t->have_di = true;
    if (xml_out)
        *xml_out = TAKE_PTR(xml);
    return 0;
}

static int r_discover(void *ud, const char *domain, struct txn_domain *out, char *err,
                      size_t errlen)
{
    struct txn_real *t = T;
    memset(out, 0, sizeof(*out));
    snprintf(t->domain, sizeof(t->domain), "%s", domain);
    enum txn_vm_state st;
    int r = refresh(t, &st);
    if (r < 0) {
        seterr(err, errlen, "looking up domain %s: %s", domain, t->v->err);
        return r;
    }
    out->state = st;
    if (st == TXN_VM_ABSENT) {
        seterr(err, errlen, "domain %s not found", domain);
        return -ENOENT;
    }
    const char *name = virDomainGetName(t->dom);
    snprintf(out->name, sizeof(out->name), "%s", name ? name : domain);
    snprintf(t->domain, sizeof(t->domain), "%s", out->name);
    char uuid[VIR_UUID_STRING_BUFLEN];
    if (virDomainGetUUIDString(t->dom, uuid) == 0)
        snprintf(out->uuid, sizeof(out->uuid), "%s", uuid);
    if (st != TXN_VM_RUNNING && st != TXN_VM_PAUSED)
        return 0; /* no live XML to read: taps only exist while it runs */
    r = read_di(t, &out->xml, err, errlen);
    if (r < 0) {
        free(out->xml);
        out->xml = NULL;
        return r;
    }
    const char *taps[DOMAIN_MAX_IFACES];
    size_t n = domain_info_taps(&t->di, taps, DOMAIN_MAX_IFACES);
    for (size_t i = 0; i < n && i < TXN_MAX_TAPS; i++) {
        if (!gate_ifname_valid(taps[i])) {
            seterr(err, errlen, "domain %s has an invalid tap name", out->name);
            free(out->xml);
            out->xml = NULL;
            return -EINVAL;
        }
        /* QEMU's tap lives in the namespace libvirt (and so netckpt) ran in; gating a name
         * that is not here would hook nothing (or fail only after the gate step). */
        if (!t->open_ok && !if_nametoindex(taps[i])) {
            seterr(err, errlen,
                   "tap %s of %s is not in this network namespace; run netckpt in the one that "
                   "holds it (ip netns exec NS netckpt ...)",
                   taps[i], out->name);
            free(out->xml);
            out->xml = NULL;
            return -ENODEV;
        }
        snprintf(out->taps[i], sizeof(out->taps[i]), "%s", taps[i]);
    }
    out->n_taps = n;
    if (st == TXN_VM_RUNNING && !t->open_ok) {
        /* A checkpoint: make sure the agent answers, and is not frozen already, before
         * anything is gated. This also opens and syncs the channel, so the freeze that
         * follows is a single round trip. */
        json_object *ret = NULL;
        char e[512] = "";
        int q = txn_real_agent_call(t, AGENT_CMD_NET_STATUS, NULL, TXN_REAL_PING_MS, &ret, e,
                                    sizeof(e));
        if (q < 0) {
            seterr(err, errlen, "the agent of %s does not answer: %s", out->name, e);
            json_object_put(ret);
            free(out->xml);
            out->xml = NULL;
            return q;
        }
        json_object *fr;
        bool frozen = json_object_object_get_ex(ret, "frozen", &fr) && json_object_get_boolean(fr);
        json_object_put(ret);
        if (frozen) {
            seterr(err, errlen,
                   "the agent of %s is frozen already (another checkpoint, or an interrupted "
                   "one: 'netckpt unblock %s' thaws it)",
                   out->name, out->name);
            free(out->xml);
            out->xml = NULL;
            return -EBUSY;
        }
    }
    return 0;
}

static int r_vm_state(void *ud, enum txn_vm_state *out)
{
    return refresh(T, out);
}

static int r_gate_install(void *ud, const char *domain, const char *const *taps, size_t n,
                          char *err, size_t errlen)
{
    struct txn_real *t = T;
    /* Before a restore, a tap libvirt has yet to create may be gated by name; anywhere else a
     * missing tap means the wrong network namespace, and gating nothing would be a lie. */
    unsigned flags = t->open_ok && !t->restored ? GATE_ALLOW_MISSING_TAP : 0;
    int r = gate_install_flags(domain, taps, n, flags);
    if (r < 0)
        seterr(err, errlen, "%s",
               r == -ENODEV ? "a tap does not exist in this network namespace" : strerror(-r));
    return r;
}

static int r_gate_lift(void *ud, const char *domain, char *err, size_t errlen)
{
    struct txn_real *t = T;
    if (t->restored) /* the holder's tables must not outlive the outage (replay off too) */
        hold_stop(t->state_dir, domain);
    int r = gate_lift(domain);
    if (r < 0)
        seterr(err, errlen, "%s", strerror(-r));
    return r < 0 ? r : 0;
}

static int r_gate_counters(void *ud, const char *domain, struct gate_counters *c)
{
    return gate_read_counters(domain, c);
}

/* ---- the agent ---- */

static int link_ensure(struct txn_real *t, char *err, size_t errlen)
{
    if (t->link_open)
        return 0;
    if (!t->dom) {
        enum txn_vm_state st;
        int r = refresh(t, &st);
        if (r < 0 || !t->dom) {
            seterr(err, errlen, "domain %s is not there", t->domain);
            return r < 0 ? r : -ENOENT;
        }
    }
    if (!t->have_di) {
        int r = read_di(t, NULL, err, errlen);
        if (r < 0)
            return r;
    }
    /* QEMU may still be setting the channel up right after a start or restore. */
    uint64_t deadline = now_monotonic_ns() + (uint64_t)TXN_REAL_CONNECT_MS * 1000000;
    int r;
    for (;;) {
        r = agent_link_open(&t->link, t->v, t->dom, &t->di);
        if (r == 0)
            break;
        if (now_monotonic_ns() > deadline || (t->cancel && *t->cancel)) {
            seterr(err, errlen, "cannot reach the agent of %s: %s", t->domain, t->v->err);
            return r;
        }
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    t->link_open = true;
    return 0;
}

/* $NETCKPT_AGENT_TIMEOUT_MS caps every agent call (tests of hung agents; slow guests). */
static int agent_timeout(int dflt)
{
    const char *e = getenv("NETCKPT_AGENT_TIMEOUT_MS");
    if (!e || !*e)
        return dflt;
    char *end;
    long v = strtol(e, &end, 10);
    return *end || v <= 0 || v > 3600000 ? dflt : (int)v;
}

int txn_real_agent_call(struct txn_real *t, const char *cmd, json_object *args, int timeout_ms,
                        json_object **ret, char *err, size_t errlen)
{
    timeout_ms = agent_timeout(timeout_ms);
    int r = link_ensure(t, err, errlen);
    if (r < 0)
        return r;
    struct qga_error qe = {0};
    r = agent_link_call(&t->link, cmd, args, timeout_ms, ret, &qe);
    if (r == -EREMOTEIO)
        seterr(err, errlen, "%s: %s: %s", cmd, qga_error_class_name(qe.cls), qe.desc);
    else if (r == -ETIMEDOUT)
        seterr(err, errlen, "%s: the agent did not answer within %d ms", cmd, timeout_ms);
    else if (r < 0)
        seterr(err, errlen, "%s: %s%s%s", cmd, strerror(-r), qe.desc[0] ? ": " : "", qe.desc);
    if (r < 0 && r != -EREMOTEIO)
        link_close(t); /* reconnect next time: the channel may be half-dead */
    return r;
}

static int r_agent_freeze(void *ud, uint32_t watchdog_ms, json_object **image, char *err,
                          size_t errlen)
{
    struct txn_real *t = T;
    json_object *args = json_object_new_object();
    if (watchdog_ms)
        json_object_object_add(args, "timeout", json_object_new_int64((watchdog_ms + 999) / 1000));
    json_object *ret = NULL;
    int r =
        txn_real_agent_call(t, AGENT_CMD_NET_FREEZE, args, TXN_REAL_FREEZE_MS, &ret, err, errlen);
    json_object_put(args);
    if (r < 0)
        return r;
    /* The guest is untrusted: validate the image fully before it goes anywhere. */
    struct socket_image img;
    char why[256];
    r = socket_image_from_json(ret, &img, why, sizeof(why));
    if (r < 0) {
        seterr(err, errlen, "the agent returned an invalid socket image: %s", why);
        json_object_put(ret);
        return -EBADMSG;
    }
    socket_image_free(&img);
    *image = ret;
    return 0;
}

static int thaw_call(struct txn_real *t, uint64_t host_time_ns, bool kick, json_object **reply,
                     char *err, size_t errlen)
{
    json_object *args = json_object_new_object();
    if (host_time_ns && host_time_ns <= INT64_MAX)
        json_object_object_add(args, "host_time_ns", json_object_new_int64((int64_t)host_time_ns));
    json_object_object_add(args, "kick", json_object_new_boolean(kick));
    json_object *ret = NULL;
    int r = txn_real_agent_call(t, AGENT_CMD_NET_THAW, args, TXN_REAL_CALL_MS, &ret, err, errlen);
    json_object_put(args);
    if (r < 0)
        return r;
    if (reply)
        *reply = ret;
    else
        json_object_put(ret);
    return 0;
}

static int r_agent_thaw(void *ud, uint64_t host_time_ns, json_object **reply, char *err,
                        size_t errlen)
{
    return thaw_call(T, host_time_ns, true, reply, err, errlen);
}

static int r_agent_thaw_quiet(void *ud, uint64_t host_time_ns, json_object **reply, char *err,
                              size_t errlen)
{
    return thaw_call(T, host_time_ns, false, reply, err, errlen);
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

static int r_agent_verify(void *ud, json_object *image, json_object **diff, char *err,
                          size_t errlen)
{
    struct txn_real *t = T;
    json_object *args = json_object_new_object();
    json_object_object_add(args, "image", json_object_get(image));
    json_object *ret = NULL;
    char e[512] = "";
    int r =
        txn_real_agent_call(t, AGENT_CMD_NET_VERIFY, args, TXN_REAL_FREEZE_MS, &ret, e, sizeof(e));
    json_object_put(args);
    if (r < 0) {
        seterr(err, errlen, "%s", e);
        return r;
    }
    json_object *m;
    if (!json_object_object_get_ex(ret, "match", &m) ||
        !json_object_is_type(m, json_type_boolean)) {
        seterr(err, errlen, "guest-net-verify: reply without a boolean 'match'");
        json_object_put(ret);
        return -EBADMSG;
    }
    bool match = json_object_get_boolean(m);
    if (!match) {
        json_object *d;
        if (json_object_object_get_ex(ret, "differences", &d))
            *diff = json_object_get(d);
    }
    json_object_put(ret);
    return match ? 1 : 0;
}

static int r_watch_begin(void *ud, json_object *image)
{
    struct txn_real *t = T;
    if (t->watch_ms <= 0)
        return 0;
    if (!t->watch) {
        t->watch = calloc(1, sizeof(*t->watch));
        if (!t->watch)
            return -ENOMEM;
    }
    if (!t->have_di) {
        int r = read_di(t, NULL, NULL, 0);
        if (r < 0)
            return r;
    }
    const char *taps[DOMAIN_MAX_IFACES];
    size_t n = domain_info_taps(&t->di, taps, DOMAIN_MAX_IFACES);
    return tap_watch_start(t->watch, taps, n, image);
}

static int r_agent_report(void *ud, json_object *image, json_object *thaw_reply, bool reset_stale,
                          json_object **report, char *err, size_t errlen)
{
    struct txn_real *t = T;
    if (!t->watch || !t->watch->active)
        return 0; /* disabled, or the watch could not start (already warned) */
    tap_watch_run(t->watch, t->watch_ms, t->cancel);
    json_object *rep = tap_watch_report(t->watch, thaw_reply);
    tap_watch_stop(t->watch);
    if (!rep)
        return -ENOMEM;
    rollback_mark_report(rep, t->rollback_reset);
    json_object *stale = tap_watch_stale_list(rep);
    if (reset_stale && stale && json_object_array_length(stale) > 0) {
        json_object *args = json_object_new_object();
        json_object_object_add(args, "connections", json_object_get(stale));
        json_object *ret = NULL;
        char e[512] = "";
        int r = txn_real_agent_call(t, AGENT_CMD_NET_RESET_STALE, args, TXN_REAL_CALL_MS, &ret, e,
                                    sizeof(e));
        json_object_put(args);
        if (r == 0)
            tap_watch_mark_reset(rep, ret);
        else
            log_warn("resetting stale connections failed: %s", e);
        json_object_put(ret);
    }
    json_object_put(stale);
    *report = rep;
    return 0;
}

/* ---- save and restore ---- */

struct progress_ctx {
    struct txn_real *t;
    txn_progress_fn fn;
    void *ud;
};

static void on_progress(void *ud, uint64_t done, uint64_t total)
{
    struct progress_ctx *p = ud;
    /* A signal during the save aborts libvirt's job; the transaction then rolls back. */
    if (p->t->cancel && *p->t->cancel && !p->t->abort_sent && p->t->dom) {
        p->t->abort_sent = true;
        log_warn("interrupted: aborting the save job");
        virDomainAbortJob(p->t->dom);
    }
    if (p->fn)
        p->fn(p->ud, done, total);
}

static int r_save(void *ud, bool snapshot, bool halt, txn_progress_fn progress, void *pud,
                  char *err, size_t errlen)
{
    struct txn_real *t = T;
    struct progress_ctx p = {.t = t, .fn = progress, .ud = pud};
    if (!t->dom) {
        seterr(err, errlen, "domain %s is gone", t->domain);
        return -ENOENT;
    }
    t->abort_sent = false;
    int r;
    t->snapshot = snapshot;
    if (snapshot) {
        char id[33];
        random_id(id);
        snprintf(t->snapshot_name, sizeof(t->snapshot_name), "netckpt-%.12s", id);
        r = nc_virt_snapshot_create(t->v, t->dom, t->snapshot_name, halt, on_progress, &p, 100);
        if (r < 0) {
            seterr(err, errlen, "%s", t->v->err);
            t->snapshot_name[0] = 0;
        }
        return r;
    }
    char path[PATH_MAX];
    r = bundle_file_path(&t->b, BUNDLE_VM_STATE, path, sizeof(path));
    if (r < 0)
        return r;
    r = nc_virt_save(t->v, t->dom, path, NULL, 0, on_progress, &p, 100);
    if (r < 0) {
        seterr(err, errlen, "%s", t->v->err);
        unlink(path);
        return r;
    }
    t->state_in_bundle = true;
    r = bundle_add_file(&t->b, BUNDLE_VM_STATE, NULL);
    if (r < 0)
        seterr(err, errlen, "registering vm.state: %s", strerror(-r));
    return r;
}

/* Where the saved VM state is right now. */
static int saved_path(struct txn_real *t, char *buf, size_t len)
{
    if (t->committed)
        return snprintf(buf, len, "%s/%s", t->bundle_path, BUNDLE_VM_STATE) < (int)len
                   ? 0
                   : -ENAMETOOLONG;
    if (t->rescue[0] && access(t->rescue, R_OK) == 0)
        return snprintf(buf, len, "%s", t->rescue) < (int)len ? 0 : -ENAMETOOLONG;
    if (t->b.active && t->state_in_bundle)
        return bundle_file_path(&t->b, BUNDLE_VM_STATE, buf, len);
    return -ENOENT;
}

static int r_restore_saved(void *ud, char *err, size_t errlen)
{
    struct txn_real *t = T;
    int r;
    if (t->snapshot) {
        if (!t->snapshot_name[0]) {
            seterr(err, errlen, "no snapshot was taken");
            return -ENOENT;
        }
        enum txn_vm_state st;
        if ((r = refresh(t, &st)) < 0 || !t->dom) {
            seterr(err, errlen, "domain %s is gone", t->domain);
            return r < 0 ? r : -ENOENT;
        }
        r = nc_virt_snapshot_revert_paused(t->v, t->dom, t->snapshot_name);
        if (r < 0)
            seterr(err, errlen, "%s", t->v->err);
        invalidate(t);
        return r;
    }
    char path[PATH_MAX];
    r = saved_path(t, path, sizeof(path));
    if (r < 0) {
        seterr(err, errlen, "no saved VM state to restore");
        return r;
    }
    virDomainPtr d = NULL;
    r = nc_virt_restore_paused(t->v, path, NULL, &d);
    if (r < 0) {
        seterr(err, errlen, "restoring %s: %s", path, t->v->err);
        return r;
    }
    set_dom(t, d);
    return 0;
}

static int r_restore_bundle(void *ud, char *err, size_t errlen)
{
    struct txn_real *t = T;
    int r;
    if (!t->open_ok)
        return -EINVAL;
    if (t->open_m.state == MANIFEST_STATE_SNAPSHOT) {
        t->restored = true;
        virDomainPtr d = NULL;
        r = nc_virt_lookup(t->v, t->open_m.domain_uuid[0] ? t->open_m.domain_uuid : t->domain, &d);
        if (r < 0) {
            seterr(err, errlen, "the snapshot's domain %s is not defined", t->domain);
            return r;
        }
        set_dom(t, d);
        r = nc_virt_snapshot_revert_paused(t->v, t->dom, t->open_m.snapshot_name);
        if (r < 0)
            seterr(err, errlen, "%s", t->v->err);
        invalidate(t);
        return r;
    }
    t->restored = true;
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", t->open_path, BUNDLE_VM_STATE) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    virDomainPtr d = NULL;
    r = nc_virt_restore_paused(t->v, path, NULL, &d);
    if (r < 0) {
        seterr(err, errlen, "%s", t->v->err);
        return r;
    }
    set_dom(t, d);
    return 0;
}

static int ensure_dom(struct txn_real *t, char *err, size_t errlen)
{
    enum txn_vm_state st;
    int r = refresh(t, &st);
    if (r == 0 && !t->dom)
        r = -ENOENT;
    if (r < 0)
        seterr(err, errlen, "domain %s is not there", t->domain);
    return r;
}

static int r_resume(void *ud, char *err, size_t errlen)
{
    struct txn_real *t = T;
    int r = ensure_dom(t, err, errlen);
    if (r < 0)
        return r;
    r = nc_virt_resume(t->v, t->dom);
    if (r < 0)
        seterr(err, errlen, "%s", t->v->err);
    return r;
}

static int r_suspend(void *ud, char *err, size_t errlen)
{
    struct txn_real *t = T;
    int r = ensure_dom(t, err, errlen);
    if (r < 0)
        return r;
    r = nc_virt_suspend(t->v, t->dom);
    if (r < 0)
        seterr(err, errlen, "%s", t->v->err);
    return r;
}

static int r_destroy(void *ud, char *err, size_t errlen)
{
    struct txn_real *t = T;
    int r = ensure_dom(t, err, errlen);
    if (r < 0)
        return r == -ENOENT ? 0 : r;
    link_close(t);
    if (virDomainDestroy(t->dom) < 0) {
        const char *m = virGetLastErrorMessage();
        seterr(err, errlen, "%s", m ? m : "virDomainDestroy failed");
        return -EIO;
    }
    return 0;
}

/* ---- bundles ---- */

static int r_bundle_begin(void *ud, const char *path, char *tmp, size_t tmplen, char *err,
                          size_t errlen)
{
    struct txn_real *t = T;
    int r = bundle_begin(path, &t->b);
    if (r == -EEXIST)
        seterr(err, errlen, "%s already exists", path);
    else if (r == -EBUSY)
        seterr(err, errlen, "a partial bundle of an interrupted checkpoint is in the way (%s)",
               t->b.tmp_path[0] ? t->b.tmp_path : "next to it");
    else if (r < 0)
        seterr(err, errlen, "%s", strerror(-r));
    if (r < 0)
        return r;
    snprintf(t->bundle_path, sizeof(t->bundle_path), "%s", t->b.path);
    snprintf(tmp, tmplen, "%s", t->b.tmp_path);
    return 0;
}

static int r_bundle_add(void *ud, const char *name, const void *buf, size_t len, char *err,
                        size_t errlen)
{
    int r = bundle_add_buffer(&T->b, name, buf, len);
    if (r < 0)
        seterr(err, errlen, "writing %s: %s", name, strerror(-r));
    return r;
}

static int r_bundle_commit(void *ud, struct manifest *m, char *err, size_t errlen)
{
    struct txn_real *t = T;
    if (t->snapshot) {
        snprintf(m->snapshot_name, sizeof(m->snapshot_name), "%s", t->snapshot_name);
    } else if (t->state_in_bundle) {
        /* bundle_commit removes the partial directory when it fails; the VM is off by then,
         * so keep its state reachable through a hard link until the commit is done. */
        char src[PATH_MAX];
        int r = bundle_file_path(&t->b, BUNDLE_VM_STATE, src, sizeof(src));
        if (r == 0 && snprintf(t->rescue, sizeof(t->rescue), "%s.vm.state", t->b.tmp_path) >=
                          (int)sizeof(t->rescue))
            r = -ENAMETOOLONG;
        if (r == 0 && link(src, t->rescue) < 0) {
            r = negative_errno();
            if (r == -EEXIST) {
                unlink(t->rescue);
                r = link(src, t->rescue) < 0 ? negative_errno() : 0;
            }
        }
        if (r < 0) {
            seterr(err, errlen, "cannot protect vm.state during the commit: %s", strerror(-r));
            t->rescue[0] = 0;
            return r;
        }
    }
    int r = bundle_commit(&t->b, m);
    if (r < 0 && !t->b.active && access(t->bundle_path, F_OK) == 0) {
        /* Renamed into place; only the final fsync of the parent failed. */
        log_warn("bundle %s committed, but syncing its directory failed: %s", t->bundle_path,
                 strerror(-r));
        r = 0;
    }
    if (r < 0) {
        seterr(err, errlen, "%s", strerror(-r));
        return r;
    }
    t->committed = true;
    if (t->rescue[0]) {
        unlink(t->rescue);
        t->rescue[0] = 0;
    }
    return 0;
}

static void r_bundle_abort(void *ud)
{
    struct txn_real *t = T;
    bundle_abort(&t->b);
    if (t->rescue[0])
        unlink(t->rescue);
    t->rescue[0] = 0;
    t->state_in_bundle = false;
    if (t->snapshot && t->snapshot_name[0] && t->dom) {
        virDomainSnapshotPtr s = virDomainSnapshotLookupByName(t->dom, t->snapshot_name, 0);
        if (s) {
            virDomainSnapshotDelete(s, 0);
            virDomainSnapshotFree(s);
        }
    }
}

/* Read and validate a socket image file (untrusted: the bundle may come from anywhere). */
static int load_image(const char *path, json_object **out, char *err, size_t errlen)
{
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    int r = read_file(path, BUNDLE_SOCKET_IMAGE_MAX, &buf, &len);
    if (r < 0) {
        seterr(err, errlen, "reading %s: %s", path, strerror(-r));
        return r == -EFBIG ? -EFBIG : r == -ENOENT ? -ENOENT : -EINVAL;
    }
    json_tokener *tok = json_tokener_new_ex(SOCKET_IMAGE_MAX_DEPTH);
    if (!tok)
        return -ENOMEM;
    json_object *j = json_tokener_parse_ex(tok, buf, (int)len);
    enum json_tokener_error je = json_tokener_get_error(tok);
    json_tokener_free(tok);
    if (!j || je != json_tokener_success) {
        json_object_put(j);
        seterr(err, errlen, "%s is not valid JSON: %s", path, json_tokener_error_desc(je));
        return -EINVAL;
    }
    struct socket_image img;
    char why[256];
    r = socket_image_from_json(j, &img, why, sizeof(why));
    if (r < 0) {
        json_object_put(j);
        seterr(err, errlen, "%s: %s", path, why);
        return r == -E2BIG ? -EFBIG : -EINVAL;
    }
    socket_image_free(&img);
    *out = j;
    return 0;
}

int txn_real_open_bundle(const char *path, const char *image_override, struct manifest *m,
                         json_object **image, char *err, size_t errlen)
{
    int r = bundle_open_verify(path, m, err, errlen);
    if (r < 0)
        return r;
    char ipath[PATH_MAX];
    if (image_override)
        snprintf(ipath, sizeof(ipath), "%s", image_override);
    else if (snprintf(ipath, sizeof(ipath), "%s/%s", path, BUNDLE_SOCKET_IMAGE) >=
             (int)sizeof(ipath))
        return -ENAMETOOLONG;
    r = load_image(ipath, image, err, errlen);
    if (r < 0)
        return r;
    const char *id = jstr(*image, "image_id");
    if (!image_override && (!id || strcmp(id, m->image_id) != 0)) {
        seterr(err, errlen, "the socket image id does not match the manifest's");
        json_object_put(*image);
        *image = NULL;
        return -EINVAL;
    }
    return 0;
}

bool txn_real_bundle_missing(const char *path, char *msg, size_t len)
{
    struct stat st;
    if (lstat(path, &st) == 0 || errno != ENOENT)
        return false;
    char partial[PATH_MAX];
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    const char *slash = memrchr(path, '/', n);
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    if (snprintf(partial, sizeof(partial), "%.*s.%.*s.partial", (int)dir_len, path,
                 (int)(n - dir_len), path + dir_len) < (int)sizeof(partial) &&
        lstat(partial, &st) == 0)
        return false;
    snprintf(msg, len, "no such bundle: %s", path);
    return true;
}

static int r_bundle_open(void *ud, const char *path, const char *image_override, struct manifest *m,
                         json_object **image, char *err, size_t errlen)
{
    struct txn_real *t = T;
    if (txn_real_bundle_missing(path, err, errlen))
        return -ENXIO;
    int r = txn_real_open_bundle(path, image_override, m, image, err, errlen);
    if (r < 0)
        return r;
    t->open_m = *m;
    t->open_ok = true;
    snprintf(t->open_path, sizeof(t->open_path), "%s", path);
    snprintf(t->domain, sizeof(t->domain), "%s", m->domain_name);
    return 0;
}

/* ---- held-traffic replay ---- */

/* The live taps with their NICs' MACs, from the domain XML. */
static int replay_taps(struct txn_real *t, struct replay_tap *taps, size_t max, size_t *n,
                       char *err, size_t errlen)
{
    *n = 0;
    if (!t->have_di) {
        int r = ensure_dom(t, err, errlen);
        if (r == 0)
            r = read_di(t, NULL, err, errlen);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; i < t->di.n_ifaces && *n < max; i++) {
        const struct domain_iface *f = &t->di.ifaces[i];
        if (!f->tap[0] || !f->mac[0])
            continue;
        int r = replay_tap_set(&taps[*n], f->tap, f->mac);
        if (r < 0) {
            seterr(err, errlen, "tap %s / MAC %s: %s", f->tap, f->mac, strerror(-r));
            return r;
        }
        (*n)++;
    }
    if (*n == 0) {
        seterr(err, errlen, "no tap with a MAC address in the domain XML");
        return -ENODEV;
    }
    return 0;
}

static bool manifest_lists(const struct manifest *m, const char *name)
{
    for (size_t i = 0; i < m->n_files; i++)
        if (!strcmp(m->files[i].name, name))
            return true;
    return false;
}

static void add_counts(struct txn_replay_stats *st, const struct replay_buf *b)
{
    st->held += b->n;
    st->dropped += b->dropped_pkts;
    st->rejected += b->rejected_pkts;
}

static int r_replay(void *ud, enum txn_replay_phase ph, json_object *image,
                    struct txn_replay_stats *st, char *err, size_t errlen)
{
    struct txn_real *t = T;
    struct replay_session *rs = &t->rs;
    int r = 0;
    switch (ph) {
    case TXN_REPLAY_BEGIN: {
        struct replay_tap taps[ELEMENTSOF(rs->taps)];
        size_t n = 0;
        replay_session_close(rs); /* a restore gates twice; capture the live taps only */
        memset(rs, 0, sizeof(*rs));
        r = replay_taps(t, taps, ELEMENTSOF(taps), &n, err, errlen);
        if (r == 0) {
            r = replay_session_begin(rs, t->domain, taps, n, t->replay_limit);
            if (r < 0)
                seterr(err, errlen, "cannot capture on the gated taps: %s", strerror(-r));
        }
        if (r < 0)
            memset(rs, 0, sizeof(*rs)); /* left closed by replay_session_begin */
        if (t->open_ok && n) /* a restore: the outage holder's frames (host/hold.h) */
            hold_txn_take(t->state_dir, t->domain, t->open_m.image_id, taps, n, t->replay_limit,
                          &rs->outage, st);
        return r;
    }
    case TXN_REPLAY_STOP:
        if (!rs->capturing)
            return 0;
        r = replay_session_stop(rs);
        if (rs->cap.lost_events)
            log_warn("replay: the kernel dropped nflog messages %" PRIu64 " times",
                     rs->cap.lost_events);
        if (r < 0)
            seterr(err, errlen, "draining the capture: %s", strerror(-r));
        return r;
    case TXN_REPLAY_KEEP: {
        if (!rs->n_taps)
            return 0; /* capture never began (already warned) */
        add_counts(st, &rs->cap.buf);
        _cleanup_free_ uint8_t *p = NULL;
        size_t len = 0;
        r = replay_pcap_encode(&rs->cap.buf, &p, &len);
        if (r == 0)
            r = bundle_add_buffer(&t->b, REPLAY_PCAP_NAME, p, len);
        if (r < 0)
            seterr(err, errlen, "writing %s into the bundle: %s", REPLAY_PCAP_NAME, strerror(-r));
        else
            log_info("replay: %zu frames held for the bundle (%" PRIu64 " over the bound)",
                     rs->cap.buf.n, rs->cap.buf.dropped_pkts);
        if (r == 0) /* the VM is off from here: hold what the peers send meanwhile */
            r = hold_txn_begin(t->state_dir, t->domain, rs->taps, rs->n_taps, image,
                               t->replay_limit, st, err, errlen);
        return r;
    }
    case TXN_REPLAY_SEND: {
        struct replay_buf prior = {0};
        bool have_prior = false;
        if (t->open_ok && manifest_lists(&t->open_m, REPLAY_PCAP_NAME)) {
            char path[PATH_MAX];
            r = replay_buf_init(&prior, t->replay_limit);
            if (r == 0 && snprintf(path, sizeof(path), "%s/%s", t->open_path, REPLAY_PCAP_NAME) >=
                              (int)sizeof(path))
                r = -ENAMETOOLONG;
            if (r == 0)
                r = replay_pcap_read(path, NULL, &prior);
            if (r < 0)
                log_warn("replay: the bundle's %s is refused (%s); replaying only the restore "
                         "window's frames",
                         REPLAY_PCAP_NAME, strerror(-r));
            else
                have_prior = true;
        }
        if (rs->n_taps || have_prior || rs->outage.n) {
            /* The taps of the QEMU that runs now: a continue-mode save may have restarted it
             * on other taps than the capture began on. */
            struct replay_tap taps[ELEMENTSOF(rs->taps)];
            size_t n = 0;
            r = replay_taps(t, taps, ELEMENTSOF(taps), &n, err, errlen);
            if (r == 0)
                r = replay_session_set_taps(rs, t->domain, taps, n);
            if (r < 0 && !rs->n_taps) {
                replay_buf_free(&prior);
                return r;
            }
            if (r < 0)
                log_warn("replay: cannot read the live taps (%s); using the captured ones", err);
        }
        if (have_prior)
            add_counts(st, &prior);
        st->held += rs->outage.n; /* its drops and refusals were counted at the handover */
        if (rs->n_taps)
            add_counts(st, &rs->cap.buf);
        if (!rs->n_taps) {
            replay_buf_free(&prior);
            return 0;
        }
        struct replay_send_stats ss = {0};
        r = replay_session_replay(rs, have_prior ? &prior : NULL, image, NULL, &ss);
        replay_buf_free(&prior);
        st->replayed += ss.sent;
        st->rejected += ss.refused;
        st->failed += ss.errors + ss.oversize;
        st->segmented += ss.segmented;
        if (r == -ENOENT)
            return 0; /* no connection with an address: nothing to replay for */
        if (r < 0)
            seterr(err, errlen, "replaying into the taps: %s", strerror(-r));
        else
            log_info("replay: %" PRIu64 " frames replayed in %" PRIu64 " ms (%" PRIu64
                     " refused, %" PRIu64 " failed to send, %" PRIu64 " dropped by the tap)",
                     ss.sent, ss.duration_ns / 1000000, ss.refused, ss.errors, ss.tap_dropped);
        return r;
    }
    case TXN_REPLAY_CLOSE:
        replay_session_close(rs);
        if (st->holder_pid && !t->committed) /* a checkpoint that did not complete */
            hold_stop(t->state_dir, t->domain);
        return 0;
    }
    return -EINVAL;
}

/* ---- journal and clock ---- */

static int r_journal_check(void *ud, const char *domain)
{
    struct journal_entry e;
    int r = journal_read(T->state_dir, domain, &e);
    if (r == -ENOENT)
        return 0;
    if (r == -EBADMSG)
        return -ESTALE;
    if (r < 0)
        return r;
    return journal_owner_alive(&e) == 1 ? -EBUSY : -ESTALE;
}

static int r_journal_write(void *ud, const struct journal_entry *e)
{
    return journal_write(T->state_dir, e);
}

static int r_journal_remove(void *ud, const char *domain)
{
    int r = journal_remove(T->state_dir, domain);
    return r < 0 ? r : 0;
}

static uint64_t r_clock(void *ud, bool realtime)
{
    return realtime ? now_realtime_ns() : now_monotonic_ns();
}

const struct txn_ops txn_real_ops = {
    .discover = r_discover,
    .vm_state = r_vm_state,
    .gate_install = r_gate_install,
    .gate_lift = r_gate_lift,
    .gate_counters = r_gate_counters,
    .agent_freeze = r_agent_freeze,
    .agent_thaw = r_agent_thaw,
    .agent_verify = r_agent_verify,
    .watch_begin = r_watch_begin,
    .agent_report = r_agent_report,
    .save = r_save,
    .restore_saved = r_restore_saved,
    .restore_bundle = r_restore_bundle,
    .resume = r_resume,
    .suspend = r_suspend,
    .destroy = r_destroy,
    .bundle_begin = r_bundle_begin,
    .bundle_add = r_bundle_add,
    .bundle_commit = r_bundle_commit,
    .bundle_abort = r_bundle_abort,
    .bundle_open = r_bundle_open,
    .journal_check = r_journal_check,
    .journal_write = r_journal_write,
    .journal_remove = r_journal_remove,
    .replay = r_replay,
    .history_record = rollback_history_record,
    .rollback_decide = rollback_decide,
    .agent_thaw_quiet = r_agent_thaw_quiet,
    .reset_image = rollback_reset_image,
    .clock = r_clock,
};

/* ---- recovery and unblock ---- */

/* A partial bundle path we may delete: a directory named ".<name>.partial". */
static bool is_partial_path(const char *p)
{
    const char *base = strrchr(p, '/');
    base = base ? base + 1 : p;
    size_t n = strlen(base), s = strlen(BUNDLE_PARTIAL_SUFFIX);
    return base[0] == '.' && n > s + 1 && !strcmp(base + n - s, BUNDLE_PARTIAL_SUFFIX);
}

/* Bring a domain left by netckpt back to running with its agent thawed. */
static int bring_back(struct txn_real *t, bool was_running, bool restoring, const char *bundle_tmp,
                      json_object *actions)
{
    enum txn_vm_state st;
    int r = refresh(t, &st);
    if (r < 0) {
        log_err("recovery: cannot read the state of %s: %s", t->domain, t->v->err);
        return r;
    }
    log_debug("recovery: %s is %s", t->domain, txn_vm_state_name(st));
    char e[512] = "";
    if ((st == TXN_VM_ABSENT || st == TXN_VM_OFF) && was_running && bundle_tmp &&
        is_partial_path(bundle_tmp)) {
        /* The save finished but the commit did not: the state is in the partial bundle (or
         * the rescue link next to it). */
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s.vm.state", bundle_tmp);
        if (access(path, R_OK) != 0)
            snprintf(path, sizeof(path), "%s/%s", bundle_tmp, BUNDLE_VM_STATE);
        if (access(path, R_OK) == 0) {
            virDomainPtr d = NULL;
            r = nc_virt_restore_paused(t->v, path, NULL, &d);
            if (r < 0) {
                log_err("recovery: restoring %s from %s failed: %s", t->domain, path, t->v->err);
                return r;
            }
            set_dom(t, d);
            st = TXN_VM_PAUSED;
            json_object_array_add(actions, json_object_new_string("restored-saved-state"));
        }
    }
    if (st == TXN_VM_PAUSED && restoring) {
        /* A restore died before it verified the image: undo it as its rollback would. */
        if (virDomainDestroy(t->dom) == 0)
            json_object_array_add(actions, json_object_new_string("destroyed-half-restored"));
        return 0;
    }
    if (st == TXN_VM_PAUSED) {
        /* Right after a (re)connect, libvirt may still be recovering the job a dead process
         * left (an aborted save resumes the CPUs itself): retry until it runs. */
        for (int i = 0; i < 50 && st == TXN_VM_PAUSED; i++) {
            r = nc_virt_resume(t->v, t->dom);
            if (r == 0) {
                json_object_array_add(actions, json_object_new_string("resumed"));
                st = TXN_VM_RUNNING;
                break;
            }
            log_debug("recovery: resuming %s: %s; retrying", t->domain, t->v->err);
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
            if (refresh(t, &st) < 0)
                st = TXN_VM_UNKNOWN;
        }
        if (st != TXN_VM_RUNNING) {
            log_err("resuming %s failed: %s", t->domain, t->v->err);
            return r < 0 ? r : -EIO;
        }
    }
    if (st == TXN_VM_RUNNING) {
        json_object *args = json_object_new_object();
        json_object_object_add(args, "host_time_ns",
                               json_object_new_int64((int64_t)now_realtime_ns()));
        json_object_object_add(args, "kick", json_object_new_boolean(true));
        json_object *ret = NULL;
        r = txn_real_agent_call(t, AGENT_CMD_NET_THAW, args, TXN_REAL_CALL_MS, &ret, e, sizeof(e));
        json_object_put(args);
        json_object_put(ret);
        if (r < 0)
            log_warn("thawing the agent of %s: %s (its watchdog thaws it)", t->domain, e);
        else
            json_object_array_add(actions, json_object_new_string("thawed"));
    }
    if (bundle_tmp && bundle_tmp[0] && is_partial_path(bundle_tmp) && st == TXN_VM_RUNNING) {
        char rescue[PATH_MAX];
        snprintf(rescue, sizeof(rescue), "%s.vm.state", bundle_tmp);
        unlink(rescue);
        if (access(bundle_tmp, F_OK) == 0 && rm_rf(bundle_tmp) == 0)
            json_object_array_add(actions, json_object_new_string("removed-partial-bundle"));
    }
    return 0;
}

int txn_real_recover_entry(const struct journal_entry *e, void *userdata)
{
    struct nc_virt *v = userdata;
    if (!v)
        return 0;
    hold_stop(v->state_dir, e->domain); /* the VM comes back: no outage to hold */
    struct txn_real t;
    txn_real_init(&t, v, NULL, NULL);
    snprintf(t.domain, sizeof(t.domain), "%s", e->domain);
    json_object *actions = json_object_new_array();
    int r =
        bring_back(&t, e->vm_was_running, !strcmp(e->step, "restoring"), e->bundle_tmp, actions);
    log_info("recovered domain %s: %s", e->domain,
             json_object_to_json_string_ext(actions, JSON_C_TO_STRING_PLAIN));
    json_object_put(actions);
    txn_real_done(&t);
    return r;
}

int txn_real_recover(struct nc_virt *v, const char *state_dir)
{
    int r = journal_recover(state_dir, v ? txn_real_recover_entry : NULL, v);
    /* The destination gates of a migration that died (host/migrate.h). */
    int q = migrate_recover(state_dir);
    hold_recover(state_dir); /* files of outage holders that are gone (host/hold.h) */
    return r < 0 ? r : q < 0 ? q : r + q;
}

int txn_real_unblock(struct nc_virt *v, const char *state_dir, const char *domain, bool force,
                     json_object **report, char *err, size_t errlen)
{
    struct journal_entry je;
    bool have_je = false;
    int r = journal_read(state_dir, domain, &je);
    if (r == 0) {
        have_je = true;
        if (journal_owner_alive(&je) == 1 && !force) {
            seterr(err, errlen, "netckpt pid %d is still working on %s (use --force to override)",
                   (int)je.pid, domain);
            return -EBUSY;
        }
    } else if (r != -ENOENT) {
        log_warn("journal entry of %s is unreadable (%s); unblocking anyway", domain, strerror(-r));
    }
    json_object *rep = json_object_new_object();
    json_object *actions = json_object_new_array();
    json_object_object_add(rep, "domain", json_object_new_string(domain));
    json_object_object_add(rep, "journal", json_object_new_boolean(have_je));
    /* A journal file (even unreadable), a gate or a holder: something of this name to release,
     * whether or not the domain still exists. */
    bool recorded = r != -ENOENT;
    if (hold_stop(state_dir, domain) > 0) {
        json_object_array_add(actions, json_object_new_string("outage-hold-stopped"));
        recorded = true;
    }
    /* The gate lives where the journal says (the checkpoint may have run in another network
     * namespace, where QEMU's tap is); without an entry, in ours. */
    int g;
    if (have_je) {
        r = journal_lift_gate(&je, &g);
    } else {
        g = gate_is_installed(domain);
        r = gate_lift(domain);
    }
    if (r < 0) {
        seterr(err, errlen, "lifting the gate of %s failed: %s", domain, strerror(-r));
        json_object_put(actions);
        json_object_put(rep);
        return r;
    }
    if (r > 0)
        json_object_array_add(actions, json_object_new_string("gate-lifted"));
    json_object_object_add(rep, "gate_was_installed", json_object_new_boolean(g > 0));
    recorded = recorded || g > 0 || r > 0;

    int result = 0;
    bool absent = false;
    if (v) {
        struct txn_real t;
        txn_real_init(&t, v, state_dir, NULL);
        snprintf(t.domain, sizeof(t.domain), "%s", domain);
        /* Resume only what netckpt left paused: a gate or a journal entry says it did. */
        bool ours = have_je || g > 0;
        enum txn_vm_state st;
        if (refresh(&t, &st) == 0 && st != TXN_VM_ABSENT) {
            if (ours)
                result = bring_back(&t, have_je ? je.vm_was_running : true, false,
                                    have_je ? je.bundle_tmp : NULL, actions);
            json_object_object_add(rep, "vm_state",
                                   json_object_new_string(txn_vm_state_name(
                                       refresh(&t, &st) == 0 ? st : TXN_VM_UNKNOWN)));
        } else {
            json_object_object_add(rep, "vm_state", json_object_new_string("absent"));
            absent = true;
        }
        txn_real_done(&t);
    }
    /* Like status: a name libvirt does not know, with nothing recorded for it, is a mistake. */
    if (absent && !recorded) {
        seterr(err, errlen, "domain %s not found (nothing to unblock)", domain);
        json_object_put(actions);
        json_object_put(rep);
        return -ENOENT;
    }
    if (result < 0) {
        seterr(err, errlen, "the gate is lifted but %s could not be brought back: %s", domain,
               v && v->err[0] ? v->err : strerror(-result));
    } else if (have_je) {
        journal_remove(state_dir, domain);
        json_object_array_add(actions, json_object_new_string("journal-removed"));
    }
    json_object_object_add(rep, "actions", actions);
    *report = rep;
    return result;
}
