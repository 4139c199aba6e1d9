/* host/rollback.c: see rollback.h. */
#include "host/rollback.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent/agent-commands.h"
#include "common/log.h"
#include "common/util.h"
#include "host/history.h"
#include "host/peer-probe.h"
#include "host/tap-watch.h"
#include "host/txn-real.h"

#define T ((struct txn_real *)ud)

void rollback_history_record(void *ud, enum txn_history_event ev, const struct manifest *m)
{
    struct txn_real *t = T;
    static const enum history_kind kinds[] = {
        [TXN_HISTORY_STOPPED] = HISTORY_STOPPED,
        [TXN_HISTORY_CONTINUED] = HISTORY_CONTINUED,
        [TXN_HISTORY_RESTORED] = HISTORY_RESTORED,
    };
    if (!t->state_dir || (unsigned)ev >= sizeof(kinds) / sizeof(kinds[0]))
        return;
    if (!history_uuid_valid(m->domain_uuid) || !m->image_id[0]) {
        log_warn("history: domain %s has no usable uuid or image id; not recorded", m->domain_name);
        return;
    }
    int r = history_record(t->state_dir, m->domain_uuid, kinds[ev], m->image_id, now_realtime_ns());
    if (r < 0)
        log_warn("history of %s: recording '%s' failed: %s", m->domain_name,
                 history_kind_name(kinds[ev]), strerror(-r));
}

void rollback_decide(void *ud, const struct manifest *m, bool vm_active, struct txn_rollback *out)
{
    struct txn_real *t = T;
    struct history h;
    char err[512] = "";
    int r = -ENOENT;
    if (t->state_dir && history_uuid_valid(m->domain_uuid))
        r = history_load(t->state_dir, m->domain_uuid, &h, err, sizeof(err));
    if (r == -EBADMSG)
        log_warn("history of %s unreadable (%s): taken as no history", m->domain_name, err);
    else if (r < 0 && r != -ENOENT)
        log_warn("history of %s: %s: taken as no history", m->domain_name, strerror(-r));
    struct history_decision d;
    history_decide(r == 0 ? &h : NULL, m->image_id, m->mode == MANIFEST_MODE_CONTINUE, vm_active,
                   &d);
    memset(out, 0, sizeof(*out));
    out->detected = d.rollback;
    out->known = d.known;
    snprintf(out->reason, sizeof(out->reason), "%s", d.reason);
}

int rollback_reset_image(void *ud, json_object *image, int *n_reset, int *probes, char *err,
                         size_t errlen)
{
    struct txn_real *t = T;
    json_object *id = NULL;
    *n_reset = *probes = 0;
    if (!json_object_object_get_ex(image, "image_id", &id) ||
        !json_object_is_type(id, json_type_string)) {
        set_errbuf(err, errlen, "the socket image has no image_id");
        return -EINVAL;
    }
    json_object *args = json_object_new_object();
    json_object_object_add(args, "image_id", json_object_get(id));
    json_object *ret = NULL;
    int r = txn_real_agent_call(t, AGENT_CMD_NET_RESET_STALE, args, TXN_REAL_CALL_MS, &ret, err,
                                errlen);
    json_object_put(args);
    if (r < 0)
        return r;
    json_object *n = NULL;
    if (json_object_object_get_ex(ret, "reset", &n) && json_object_is_type(n, json_type_int))
        *n_reset = (int)json_object_get_int64(n);
    json_object_put(t->rollback_reset);
    t->rollback_reset = ret;
    /* The guest's own RST sits below the window of a peer that received more from the guest
     * after the checkpoint: probe the peers so that the guest's answer lands. */
    char e[256] = "";
    int p = peer_probe_image(image, e, sizeof(e));
    if (p < 0)
        log_warn("probing the peers of the reset connections failed: %s", e);
    else if (e[0])
        log_warn("probing the peers: %s", e);
    *probes = p < 0 ? 0 : p;
    log_info("rollback: %d connections reset in the guest, %d peers probed", *n_reset, *probes);
    return 0;
}

static json_object *get(json_object *o, const char *k)
{
    json_object *v = NULL;
    return o && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

void rollback_mark_report(json_object *report, json_object *reset_reply)
{
    if (!report || !reset_reply)
        return;
    tap_watch_mark_reset(report, reset_reply);
    json_object *conns = get(report, "connections");
    for (size_t i = 0; conns && i < json_object_array_length(conns); i++) {
        json_object *c = json_object_array_get_idx(conns, i);
        json_object *b = get(c, "reset_because");
        if (b && !strcmp(json_object_get_string(b), "stale"))
            json_object_object_add(c, "reset_because", json_object_new_string("rollback"));
    }
}
