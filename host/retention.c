/* host/retention.c: see retention.h. */
#include "host/retention.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "host/bundle.h"

#define NS_PER_S UINT64_C(1000000000)

int retention_bundle_name(uint64_t realtime_ns, char *buf, size_t len)
{
    time_t t = (time_t)(realtime_ns / NS_PER_S);
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return -EINVAL;
    if (strftime(buf, len, "%Y%m%dT%H%M%SZ", &tm) == 0)
        return -ENOBUFS;
    return 0;
}

bool retention_name_valid(const char *name, uint64_t *realtime_ns)
{
    /* YYYYmmddTHHMMSSZ[-N] */
    size_t l = strlen(name);
    if (l < 16 || l > 16 + 1 + 6)
        return false;
    for (int i = 0; i < 15; i++) {
        bool digit = name[i] >= '0' && name[i] <= '9';
        if (i == 8 ? name[i] != 'T' : !digit)
            return false;
    }
    if (name[15] != 'Z')
        return false;
    if (l > 16) {
        if (name[16] != '-' || l == 17)
            return false;
        for (size_t i = 17; i < l; i++)
            if (name[i] < '0' || name[i] > '9')
                return false;
    }
    struct tm tm = {0};
    if (sscanf(name, "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return false;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    if (t < 0)
        return false;
    if (realtime_ns)
        *realtime_ns = (uint64_t)t * NS_PER_S;
    return true;
}

static int by_newest(const void *a, const void *b)
{
    const struct retention_item *x = *(const struct retention_item *const *)a;
    const struct retention_item *y = *(const struct retention_item *const *)b;
    if (x->created_ns != y->created_ns)
        return x->created_ns < y->created_ns ? 1 : -1;
    return -strcmp(x->name, y->name);
}

size_t retention_plan(struct retention_item *items, size_t n, const struct retention_rule *rule,
                      uint64_t now_real_ns)
{
    if (!n)
        return 0;
    struct retention_item **v = calloc(n, sizeof(*v));
    if (!v)
        return 0; /* removing nothing is always safe */
    for (size_t i = 0; i < n; i++) {
        v[i] = &items[i];
        v[i]->remove = false;
    }
    qsort(v, n, sizeof(*v), by_newest);
    uint64_t age_limit = rule->max_age_s * NS_PER_S;
    size_t good_seen = 0, removed = 0;
    bool newer_good = false;
    for (size_t i = 0; i < n; i++) {
        struct retention_item *it = v[i];
        bool too_old = rule->max_age_s && now_real_ns > it->created_ns &&
                       now_real_ns - it->created_ns > age_limit;
        if (it->kind == RETENTION_GOOD) {
            good_seen++;
            if (good_seen == 1) {
                newer_good = true;
                continue; /* the newest good bundle stays, always */
            }
            it->remove = too_old || (rule->keep && good_seen > rule->keep);
        } else {
            it->remove = too_old || newer_good;
        }
        removed += it->remove;
    }
    free(v);
    return removed;
}

/* Classify one entry of dir. 1 with *it filled, 0 to ignore it. */
static int classify(int dfd, const char *name, struct retention_item *it)
{
    memset(it, 0, sizeof(*it));
    char base[256];
    enum retention_kind kind;
    size_t l = strlen(name);
    const char *failed = ".failed";
    if (name[0] == '.') {
        /* ".<name>.failed" only; ".<name>.partial" may be a checkpoint in progress. */
        size_t fl = strlen(failed);
        if (l <= 1 + fl || strcmp(name + l - fl, failed) != 0 || l - 1 - fl >= sizeof(base))
            return 0;
        memcpy(base, name + 1, l - 1 - fl);
        base[l - 1 - fl] = 0;
        kind = RETENTION_FAILED;
    } else {
        if (l >= sizeof(base))
            return 0;
        strcpy(base, name);
        kind = RETENTION_GOOD;
    }
    uint64_t t;
    if (!retention_name_valid(base, &t))
        return 0;
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
        return 0;
    snprintf(it->name, sizeof(it->name), "%s", name);
    it->created_ns = t;
    it->kind = kind;
    if (kind != RETENTION_GOOD)
        return 1;
    /* Good only when its manifest is there and valid; its own time wins over the name's. */
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int mfd = fd < 0 ? -1 : openat(fd, BUNDLE_MANIFEST, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0)
        close(fd);
    char *buf = NULL;
    size_t len = 0;
    if (mfd >= 0) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", mfd);
        if (read_file(path, BUNDLE_MANIFEST_MAX, &buf, &len) < 0)
            buf = NULL;
        close(mfd);
    }
    struct manifest *m = buf ? calloc(1, sizeof(*m)) : NULL;
    char err[256];
    if (!m || manifest_from_xml(buf, len, m, err, sizeof(err)) < 0)
        it->kind = RETENTION_BAD;
    else if (m->created_ns)
        it->created_ns = m->created_ns;
    free(m);
    free(buf);
    return 1;
}

int retention_scan(const char *dir, struct retention_item **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : negative_errno();
    struct retention_item *v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *de;
    int r = 0;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        struct retention_item it;
        if (!classify(dirfd(d), de->d_name, &it))
            continue;
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 16;
            struct retention_item *nv = realloc(v, nc * sizeof(*nv));
            if (!nv) {
                r = -ENOMEM;
                break;
            }
            v = nv;
            cap = nc;
        }
        v[cnt++] = it;
    }
    closedir(d);
    if (r < 0) {
        free(v);
        return r;
    }
    *out = v;
    *n = cnt;
    return 0;
}

int retention_apply(const char *dir, const struct retention_rule *rule, uint64_t now_real_ns,
                    json_object **report)
{
    if (report)
        *report = NULL;
    struct retention_item *items;
    size_t n;
    int r = retention_scan(dir, &items, &n);
    if (r < 0)
        return r;
    retention_plan(items, n, rule, now_real_ns);
    json_object *removed = json_object_new_array(), *errors = json_object_new_array();
    int count = 0;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (!items[i].remove) {
            kept++;
            continue;
        }
        char path[4096 + 256];
        snprintf(path, sizeof(path), "%s/%s", dir, items[i].name);
        int q = rm_rf(path);
        if (q < 0) {
            char msg[4500];
            snprintf(msg, sizeof(msg), "%s: %s", path, strerror(-q));
            log_warn("retention: cannot remove %s", msg);
            json_object_array_add(errors, json_object_new_string(msg));
            continue;
        }
        log_info("retention: removed %s", path);
        json_object_array_add(removed, json_object_new_string(items[i].name));
        count++;
    }
    free(items);
    if (count)
        fsync_dir(dir);
    if (report) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "dir", json_object_new_string(dir));
        json_object_object_add(o, "kept", json_object_new_int64((int64_t)kept));
        json_object_object_add(o, "removed", removed);
        json_object_object_add(o, "errors", errors);
        *report = o;
    } else {
        json_object_put(removed);
        json_object_put(errors);
    }
    return count;
}
