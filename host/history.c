/* host/history.c: see history.h. */
#include "host/history.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/util.h"

static const char *const kind_names[] = {
    [HISTORY_STOPPED] = "stopped",
    [HISTORY_CONTINUED] = "continued",
    [HISTORY_RESTORED] = "restored",
    [HISTORY_MIGRATED] = "migrated",
};

const char *history_kind_name(enum history_kind k)
{
    return (unsigned)k < ELEMENTSOF(kind_names) ? kind_names[k] : "?";
}

static int kind_from_name(const char *s)
{
    for (size_t i = 0; i < ELEMENTSOF(kind_names); i++)
        if (!strcmp(s, kind_names[i]))
            return (int)i;
    return -EINVAL;
}

int history_uuid_valid(const char *s)
{
    if (!s || strlen(s) != 36)
        return 0;
    for (size_t i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return 0;
    }
    return 1;
}

/* Image ids are hex (the agent's random_id); "" only for a migration. */
static bool image_id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n >= sizeof(((struct history_event *)0)->image_id))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return false;
    return true;
}

void history_decide(const struct history *h, const char *image_id, bool continue_mode,
                    bool vm_active, struct history_decision *out)
{
    memset(out, 0, sizeof(*out));
    out->known = h && h->n > 0;
    if (vm_active) {
        out->rollback = true;
        snprintf(out->reason, sizeof(out->reason),
                 "the domain is running or paused now: it ran on past any checkpoint");
        return;
    }
    if (!out->known) {
        out->rollback = continue_mode;
        snprintf(out->reason, sizeof(out->reason), "%s",
                 continue_mode ? "no history of this domain here, and the bundle was made with "
                                 "--continue: the domain ran on after it"
                               : "no history of this domain here; a stop-mode bundle is taken "
                                 "as the domain's last network state");
        return;
    }
    const struct history_event *last = &h->ev[h->n - 1];
    bool same = image_id && image_id[0] && !strcmp(last->image_id, image_id);
    out->rollback = true;
    switch (last->kind) {
    case HISTORY_STOPPED:
        if (same && !continue_mode) {
            out->rollback = false;
            snprintf(out->reason, sizeof(out->reason),
                     "the domain stopped at this checkpoint and has not run since");
        } else {
            snprintf(out->reason, sizeof(out->reason),
                     "the domain last stopped at another checkpoint, image %.12s", last->image_id);
        }
        break;
    case HISTORY_CONTINUED:
        if (same)
            snprintf(out->reason, sizeof(out->reason),
                     "the domain ran on after this --continue checkpoint");
        else
            snprintf(out->reason, sizeof(out->reason),
                     "the domain ran on after another --continue checkpoint, image %.12s",
                     last->image_id);
        break;
    case HISTORY_RESTORED:
        if (same)
            snprintf(out->reason, sizeof(out->reason),
                     "this checkpoint was restored before and the domain ran on from it");
        else
            snprintf(out->reason, sizeof(out->reason),
                     "the domain was restored from another checkpoint, image %.12s, and ran on",
                     last->image_id);
        break;
    case HISTORY_MIGRATED:
    default:
        snprintf(out->reason, sizeof(out->reason),
                 "the domain migrated away after its last checkpoint here");
        break;
    }
}

void history_push(struct history *h, const struct history_event *e)
{
    if (h->n == HISTORY_MAX) {
        memmove(&h->ev[0], &h->ev[1], (HISTORY_MAX - 1) * sizeof(h->ev[0]));
        h->n--;
    }
    h->ev[h->n++] = *e;
}

static json_object *get(json_object *o, const char *k, json_type t)
{
    json_object *v = NULL;
    if (!o || !json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, t))
        return NULL;
    return v;
}

int history_parse(const char *text, size_t len, struct history *h, char *err, size_t errlen)
{
    memset(h, 0, sizeof(*h));
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return -ENOMEM;
    json_object *root = len <= INT_MAX ? json_tokener_parse_ex(tok, text, (int)len) : NULL;
    bool complete = root && json_tokener_get_error(tok) == json_tokener_success &&
                    (size_t)json_tokener_get_parse_end(tok) == len;
    json_tokener_free(tok);
    int r = -EBADMSG;
    json_object *v, *evs;
    if (!complete) {
        set_errbuf(err, errlen, "not one JSON object");
        goto out;
    }
    if (!(v = get(root, "version", json_type_int)) || json_object_get_int64(v) != 1) {
        set_errbuf(err, errlen, "no version 1");
        goto out;
    }
    if (!(v = get(root, "uuid", json_type_string)) ||
        !history_uuid_valid(json_object_get_string(v))) {
        set_errbuf(err, errlen, "no valid uuid");
        goto out;
    }
    snprintf(h->uuid, sizeof(h->uuid), "%s", json_object_get_string(v));
    if (!(evs = get(root, "events", json_type_array))) {
        set_errbuf(err, errlen, "no events array");
        goto out;
    }
    size_t n = json_object_array_length(evs);
    if (n > HISTORY_MAX) {
        set_errbuf(err, errlen, "%zu events (at most %d)", n, HISTORY_MAX);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(evs, i);
        json_object *k = get(e, "event", json_type_string);
        json_object *id = get(e, "image_id", json_type_string);
        json_object *t = get(e, "time_ns", json_type_int);
        int kind = k ? kind_from_name(json_object_get_string(k)) : -EINVAL;
        if (kind < 0 || !id || !image_id_valid(json_object_get_string(id)) || !t ||
            json_object_get_int64(t) < 0 ||
            (kind != HISTORY_MIGRATED && !json_object_get_string(id)[0])) {
            set_errbuf(err, errlen, "event %zu is malformed", i);
            goto out;
        }
        h->ev[i].kind = (enum history_kind)kind;
        snprintf(h->ev[i].image_id, sizeof(h->ev[i].image_id), "%s", json_object_get_string(id));
        h->ev[i].time_ns = (uint64_t)json_object_get_int64(t);
    }
    h->n = n;
    r = 0;
out:
    json_object_put(root);
    if (r < 0)
        memset(h, 0, sizeof(*h));
    return r;
}

char *history_format(const struct history *h)
{
    json_object *root = json_object_new_object();
    json_object *evs = json_object_new_array();
    json_object_object_add(root, "version", json_object_new_int(1));
    json_object_object_add(root, "uuid", json_object_new_string(h->uuid));
    for (size_t i = 0; i < h->n && i < HISTORY_MAX; i++) {
        json_object *e = json_object_new_object();
        json_object_object_add(e, "event",
                               json_object_new_string(history_kind_name(h->ev[i].kind)));
        json_object_object_add(e, "image_id", json_object_new_string(h->ev[i].image_id));
        json_object_object_add(e, "time_ns", json_object_new_int64((int64_t)h->ev[i].time_ns));
        json_object_array_add(evs, e);
    }
    json_object_object_add(root, "events", evs);
    const char *s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY);
    char *out = s ? strdup(s) : NULL;
    json_object_put(root);
    return out;
}

static int history_path(const char *state_dir, const char *uuid, const char *suffix, char *buf,
                        size_t len)
{
    if (!state_dir || !*state_dir || !history_uuid_valid(uuid))
        return -EINVAL;
    int n = snprintf(buf, len, "%s/history/%s%s", state_dir, uuid, suffix);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int history_load(const char *state_dir, const char *uuid, struct history *h, char *err,
                 size_t errlen)
{
    char path[PATH_MAX];
    memset(h, 0, sizeof(*h));
    int r = history_path(state_dir, uuid, ".json", path, sizeof(path));
    if (r < 0)
        return r;
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    r = read_file(path, HISTORY_MAX_FILE, &text, &len);
    if (r == -EFBIG) {
        set_errbuf(err, errlen, "%s: over %d bytes", path, HISTORY_MAX_FILE);
        return -EBADMSG;
    }
    if (r < 0)
        return r;
    char why[128] = "";
    r = history_parse(text, len, h, why, sizeof(why));
    if (r == 0 && strcasecmp(h->uuid, uuid)) {
        snprintf(why, sizeof(why), "it is the history of %s", h->uuid);
        memset(h, 0, sizeof(*h));
        r = -EBADMSG;
    }
    if (r < 0)
        set_errbuf(err, errlen, "%s: %s", path, why);
    return r;
}

int history_record(const char *state_dir, const char *uuid, enum history_kind kind,
                   const char *image_id, uint64_t time_ns)
{
    char path[PATH_MAX], dir[PATH_MAX];
    int r = history_path(state_dir, uuid, ".json", path, sizeof(path));
    if (r < 0)
        return r;
    if ((unsigned)kind >= ELEMENTSOF(kind_names) || !image_id || !image_id_valid(image_id) ||
        (kind != HISTORY_MIGRATED && !image_id[0]))
        return -EINVAL;
    struct history h;
    char err[256] = "";
    r = history_load(state_dir, uuid, &h, err, sizeof(err));
    if (r == -EBADMSG) {
        char bad[PATH_MAX];
        if (history_path(state_dir, uuid, ".json.bad", bad, sizeof(bad)) == 0 &&
            rename(path, bad) == 0)
            log_warn("history malformed: %s; kept as %s, starting a new one", err, bad);
        else
            log_warn("history malformed: %s; starting a new one", err);
    } else if (r < 0 && r != -ENOENT) {
        return r;
    }
    if (r < 0)
        memset(&h, 0, sizeof(h));
    snprintf(h.uuid, sizeof(h.uuid), "%s", uuid);
    struct history_event e = {.kind = kind, .time_ns = time_ns};
    snprintf(e.image_id, sizeof(e.image_id), "%s", image_id);
    history_push(&h, &e);
    _cleanup_free_ char *text = history_format(&h);
    if (!text)
        return -ENOMEM;
    int n = snprintf(dir, sizeof(dir), "%s/history", state_dir);
    if (n < 0 || (size_t)n >= sizeof(dir))
        return -ENAMETOOLONG;
    if ((r = mkdir_p(dir, 0700)) < 0)
        return r;
    return write_file_atomic(path, text, strlen(text), 0600);
}
