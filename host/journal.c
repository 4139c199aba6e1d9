/* host/journal.c: see journal.h. The file format is described in docs/gate.md. */
#include "host/journal.h"
#include "host/gate.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#define JOURNAL_VERSION 1
/* Writers hold the journal directory locked shared (flock) while write_file_atomic() has a
 * "*.json.tmp.XXXXXX" file out; the listing locks it exclusive, never waiting, to know that no
 * temp file belongs to a live writer (a killed writer's lock goes with it). A temp file must
 * also be this old before it is removed, so that a writer without the lock (an older netckpt,
 * or one that gave up waiting for it), which needs milliseconds, is never caught either. */
#define JOURNAL_TMP_MIN_AGE_S 60

static inline void json_putp(json_object **o)
{
    if (*o)
        json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_putp)

static inline void json_tokener_freep(json_tokener **t)
{
    if (*t)
        json_tokener_free(*t);
}

static int journal_dir(const char *state_dir, char *buf, size_t len)
{
    if (!state_dir || !*state_dir)
        return -EINVAL;
    int n = snprintf(buf, len, "%s/journal", state_dir);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int journal_path(const char *state_dir, const char *domain, char *buf, size_t len)
{
    char table[GATE_TABLE_NAME_MAX];
    int r = gate_table_name(domain, table, sizeof(table));
    if (r < 0)
        return r;
    int n = snprintf(buf, len, "%s/journal/%s.json", state_dir, table);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* "TABLE.json.tmp.XXXXXX", as write_file_atomic() names its temp files. */
static bool is_tmp_name(const char *name)
{
    const char *t = strstr(name, ".json.tmp.");
    return t && t != name && name[0] != '.' && strlen(t + 10) == 6 && !strchr(t + 10, '/');
}

/* The writer's shared lock on the journal directory (an fd to close when done, or -1). A
 * sweep holds it exclusive for a moment; should one hang (a stopped process), the write goes
 * on unlocked after a second: its temp file is far too fresh to be swept anyway. */
static int write_lock(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1; /* write_file_atomic() reports what is wrong with dir */
    for (int i = 0; i < 200; i++) {
        if (flock(fd, LOCK_SH | LOCK_NB) == 0)
            return fd;
        if (errno != EWOULDBLOCK && errno != EINTR)
            break;
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    log_warn("journal: writing without the lock of %s (%m)", dir);
    close(fd);
    return -1;
}

/* Remove the temp files of writers that died mid-write. Only when no writer holds the lock;
 * a busy lock leaves everything for the next listing. Returns how many were removed. */
static int sweep_dead_tmp(DIR *d, const char *dir)
{
    _cleanup_close_ int lock = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) < 0)
        return 0; /* a write is under way (or the directory just went) */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int removed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        struct stat st;
        if (!is_tmp_name(de->d_name) ||
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
            now.tv_sec - st.st_mtim.tv_sec < JOURNAL_TMP_MIN_AGE_S)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) < 0) {
            log_debug("journal: cannot remove %s/%s: %m", dir, de->d_name);
            continue;
        }
        log_info("journal: removed %s/%s, left by a writer that died mid-write", dir, de->d_name);
        removed++;
    }
    rewinddir(d);
    return removed;
}

static bool uuid_valid(const char *s)
{
    if (!*s)
        return true;
    if (strlen(s) != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        char ch = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (ch != '-')
                return false;
        } else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
                     (ch >= 'A' && ch <= 'F'))) {
            return false;
        }
    }
    return true;
}

static bool step_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof(((struct journal_entry *)0)->step))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '-' || s[i] == '_'))
            return false;
    return true;
}

/* Checks shared by write and read; why names what is wrong for the error message. */
static int entry_validate(const struct journal_entry *e, const char **why)
{
    size_t dlen = strnlen(e->domain, sizeof(e->domain));
    if (dlen == 0 || dlen >= sizeof(e->domain))
        return *why = "domain name empty or too long", -EINVAL;
    if (strnlen(e->uuid, sizeof(e->uuid)) >= sizeof(e->uuid) || !uuid_valid(e->uuid))
        return *why = "uuid is not a UUID", -EINVAL;
    if (e->n_taps > ELEMENTSOF(e->taps))
        return *why = "too many taps", -EINVAL;
    for (size_t i = 0; i < e->n_taps; i++)
        if (strnlen(e->taps[i], sizeof(e->taps[i])) >= sizeof(e->taps[i]) ||
            !gate_ifname_valid(e->taps[i]))
            return *why = "a tap name is not a valid interface name", -EINVAL;
    if (strnlen(e->step, sizeof(e->step)) >= sizeof(e->step) || !step_valid(e->step))
        return *why = "step is not a lowercase word", -EINVAL;
    size_t blen = strnlen(e->bundle_tmp, sizeof(e->bundle_tmp));
    if (blen >= sizeof(e->bundle_tmp) || (blen > 0 && e->bundle_tmp[0] != '/'))
        return *why = "bundle_tmp is not an absolute path", -EINVAL;
    if (e->pid <= 0)
        return *why = "pid is not positive", -EINVAL;
    return 0;
}

/* Start time (field 22) and zombie state of a process, from /proc/PID/stat. */
static int proc_start_ticks(pid_t pid, uint64_t *ticks, bool *zombie)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    _cleanup_free_ char *buf = NULL;
    int r = read_file(path, 4096, &buf, NULL);
    if (r < 0)
        return r;
    /* comm may hold spaces and parentheses: fields resume after the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -EIO;
    p++;
    char state = 0;
    unsigned long long st = 0;
    /* Fields 3 (state) ... 22 (starttime): skip 18 between them. */
    int n = sscanf(p,
                   " %c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s "
                   "%*s %llu",
                   &state, &st);
    if (n != 2)
        return -EIO;
    *ticks = st;
    *zombie = state == 'Z' || state == 'X';
    return 0;
}

/* Identity of a network namespace file (or of the calling thread's when path is NULL). */
static int netns_id(const char *path, uint64_t *dev, uint64_t *ino)
{
    struct stat st;
    if (stat(path ? path : "/proc/thread-self/ns/net", &st) < 0)
        return negative_errno();
    *dev = (uint64_t)st.st_dev;
    *ino = (uint64_t)st.st_ino;
    return 0;
}

static bool netns_is(const char *path, const struct journal_entry *e)
{
    uint64_t dev, ino;
    return netns_id(path, &dev, &ino) >= 0 && dev == e->netns_dev && ino == e->netns_ino;
}

/* A path naming the entry's namespace: a bind mount under /run/netns (ip netns), else the
 * namespace of any process in it. 0 and path set, or -ENOENT. */
static int netns_find(const struct journal_entry *e, char *path, size_t len)
{
    static const char *const dirs[] = {"/run/netns", "/proc"};
    for (size_t k = 0; k < ELEMENTSOF(dirs); k++) {
        _cleanup_closedir_ DIR *d = opendir(dirs[k]);
        if (!d)
            continue;
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.')
                continue;
            if (k == 1 && (de->d_name[0] < '0' || de->d_name[0] > '9'))
                continue;
            int n = snprintf(path, len, k == 0 ? "%s/%s" : "%s/%s/ns/net", dirs[k], de->d_name);
            if (n < 0 || (size_t)n >= len)
                continue;
            if (netns_is(path, e))
                return 0;
        }
    }
    return -ENOENT;
}

struct lift_job {
    int nsfd;
    const char *domain;
    int r;
    int installed; /* gate_is_installed() there, before the lift */
};

/* setns() moves only the calling thread: a short-lived thread lifts the gate over there, and
 * the caller's own namespace never changes. */
static void *lift_in_ns_thread(void *p)
{
    struct lift_job *j = p;
    if (setns(j->nsfd, CLONE_NEWNET) < 0) {
        j->r = negative_errno();
    } else {
        j->installed = gate_is_installed(j->domain);
        j->r = gate_lift(j->domain);
    }
    return NULL;
}

int journal_lift_gate(const struct journal_entry *e, int *was_installed)
{
    int dummy;
    if (!was_installed)
        was_installed = &dummy;
    *was_installed = 0;
    if ((e->netns_dev == 0 && e->netns_ino == 0) || netns_is(NULL, e)) {
        *was_installed = gate_is_installed(e->domain);
        return gate_lift(e->domain);
    }
    char path[PATH_MAX];
    if (netns_find(e, path, sizeof(path)) < 0) {
        log_warn("journal: the network namespace of %s's gate no longer exists; its gate went "
                 "with it",
                 e->domain);
        return 0;
    }
    log_info("journal: lifting the gate of %s in network namespace %s", e->domain, path);
    struct lift_job j = {.nsfd = open(path, O_RDONLY | O_CLOEXEC), .domain = e->domain};
    if (j.nsfd < 0)
        return negative_errno();
    pthread_t t;
    int r = pthread_create(&t, NULL, lift_in_ns_thread, &j);
    if (r != 0) {
        close(j.nsfd);
        return -r;
    }
    pthread_join(t, NULL);
    close(j.nsfd);
    *was_installed = j.installed;
    return j.r;
}

int journal_owner_alive(const struct journal_entry *e)
{
    if (e->pid <= 0)
        return 0;
    if (kill(e->pid, 0) < 0 && errno == ESRCH)
        return 0;
    uint64_t ticks;
    bool zombie;
    if (proc_start_ticks(e->pid, &ticks, &zombie) < 0)
        return 0; /* gone between kill() and the read */
    if (zombie)
        return 0;
    if (e->pid_start_ticks && ticks != e->pid_start_ticks)
        return 0; /* the pid was reused by another process */
    return 1;
}

static json_object *entry_to_json(const struct journal_entry *e, const char *table)
{
    json_object *o = json_object_new_object();
    json_object *taps = json_object_new_array();
    if (!o || !taps) {
        json_object_put(o);
        json_object_put(taps);
        return NULL;
    }
    json_object_object_add(o, "version", json_object_new_int(JOURNAL_VERSION));
    json_object_object_add(o, "domain", json_object_new_string(e->domain));
    json_object_object_add(o, "uuid", json_object_new_string(e->uuid));
    json_object_object_add(o, "table", json_object_new_string(table));
    for (size_t i = 0; i < e->n_taps; i++)
        json_object_array_add(taps, json_object_new_string(e->taps[i]));
    json_object_object_add(o, "taps", taps);
    json_object_object_add(o, "step", json_object_new_string(e->step));
    json_object_object_add(o, "bundle_tmp", json_object_new_string(e->bundle_tmp));
    json_object_object_add(o, "pid", json_object_new_int64(e->pid));
    json_object_object_add(o, "pid_start_ticks",
                           json_object_new_int64((int64_t)e->pid_start_ticks));
    json_object_object_add(o, "started_ns", json_object_new_int64((int64_t)e->started_ns));
    json_object_object_add(o, "netns_dev", json_object_new_int64((int64_t)e->netns_dev));
    json_object_object_add(o, "netns_ino", json_object_new_int64((int64_t)e->netns_ino));
    json_object_object_add(o, "vm_was_running", json_object_new_boolean(e->vm_was_running));
    return o;
}

int journal_write(const char *state_dir, const struct journal_entry *in)
{
    if (!state_dir || !in)
        return -EINVAL;
    struct journal_entry e = *in;
    const char *why = NULL;
    int r = entry_validate(&e, &why);
    if (r < 0) {
        log_err("journal: refusing to write an entry: %s", why);
        return r;
    }
    if (e.started_ns > INT64_MAX || e.pid_start_ticks > INT64_MAX)
        return -EINVAL;
    if (e.netns_dev == 0 && e.netns_ino == 0 &&
        (r = netns_id(NULL, &e.netns_dev, &e.netns_ino)) < 0)
        return r;
    if (e.netns_dev > INT64_MAX || e.netns_ino > INT64_MAX)
        return -EINVAL;
    if (e.pid_start_ticks == 0) {
        bool zombie;
        if (proc_start_ticks(e.pid, &e.pid_start_ticks, &zombie) < 0)
            e.pid_start_ticks = 0; /* the owner is already gone: recovery will see that */
    }

    char dir[PATH_MAX], path[PATH_MAX], table[GATE_TABLE_NAME_MAX];
    if ((r = journal_dir(state_dir, dir, sizeof(dir))) < 0 ||
        (r = journal_path(state_dir, e.domain, path, sizeof(path))) < 0 ||
        (r = gate_table_name(e.domain, table, sizeof(table))) < 0)
        return r;
    r = mkdir_p(dir, 0700);
    if (r < 0) {
        log_err("journal: cannot create %s: %s", dir, strerror(-r));
        return r;
    }
    _cleanup_json_ json_object *o = entry_to_json(&e, table);
    if (!o)
        return -ENOMEM;
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
    if (!text)
        return -ENOMEM;
    _cleanup_close_ _unused_ int lock = write_lock(dir); /* held until the rename is done */
    r = write_file_atomic(path, text, strlen(text), 0600);
    if (r < 0)
        log_err("journal: cannot write %s: %s", path, strerror(-r));
    return r;
}

/* A string field copied into dst, refusing wrong types, embedded NULs and overlong values. */
static int get_str(json_object *o, const char *key, char *dst, size_t dstlen, bool required,
                   const char **why)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v)) {
        if (required)
            return *why = key, -ENODATA;
        dst[0] = 0;
        return 0;
    }
    if (!json_object_is_type(v, json_type_string))
        return *why = key, -ENODATA;
    const char *s = json_object_get_string(v);
    size_t len = (size_t)json_object_get_string_len(v);
    if (len >= dstlen || strlen(s) != len)
        return *why = key, -ENODATA;
    memcpy(dst, s, len + 1);
    return 0;
}

static int get_i64(json_object *o, const char *key, int64_t min, int64_t max, int64_t *out,
                   const char **why)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
        return *why = key, -ENODATA;
    errno = 0;
    int64_t x = json_object_get_int64(v);
    if (errno != 0 || x < min || x > max)
        return *why = key, -ENODATA;
    *out = x;
    return 0;
}

/* Parse and validate one journal file's text: -EBADMSG with why a phrase, or -ENODATA with why
 * the name of a missing or invalid field. */
static int entry_from_text(const char *text, size_t len, struct journal_entry *e, const char **why)
{
    memset(e, 0, sizeof(*e));
    if (len > JOURNAL_MAX_FILE)
        return *why = "larger than JOURNAL_MAX_FILE", -EBADMSG;
    _cleanup_(json_tokener_freep) json_tokener *tok = json_tokener_new_ex(16);
    if (!tok)
        return -ENOMEM;
    _cleanup_json_ json_object *o = json_tokener_parse_ex(tok, text, (int)len);
    if (!o || json_tokener_get_error(tok) != json_tokener_success)
        return *why = "not valid JSON", -EBADMSG;
    if (json_tokener_get_parse_end(tok) < len) {
        /* trailing bytes other than whitespace mean a damaged file */
        for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
            if (!strchr(" \t\r\n", text[i]))
                return *why = "trailing data after the JSON object", -EBADMSG;
    }
    if (!json_object_is_type(o, json_type_object))
        return *why = "not a JSON object", -EBADMSG;

    int64_t x;
    int r;
    if ((r = get_i64(o, "version", 0, INT64_MAX, &x, why)) < 0)
        return r;
    if (x != JOURNAL_VERSION)
        return *why = "unsupported version", -EBADMSG;
    if ((r = get_str(o, "domain", e->domain, sizeof(e->domain), true, why)) < 0 ||
        (r = get_str(o, "uuid", e->uuid, sizeof(e->uuid), false, why)) < 0 ||
        (r = get_str(o, "step", e->step, sizeof(e->step), true, why)) < 0 ||
        (r = get_str(o, "bundle_tmp", e->bundle_tmp, sizeof(e->bundle_tmp), false, why)) < 0)
        return r;
    if ((r = get_i64(o, "pid", 1, INT32_MAX, &x, why)) < 0)
        return r;
    e->pid = (pid_t)x;
    if ((r = get_i64(o, "pid_start_ticks", 0, INT64_MAX, &x, why)) < 0)
        return r;
    e->pid_start_ticks = (uint64_t)x;
    if ((r = get_i64(o, "started_ns", 0, INT64_MAX, &x, why)) < 0)
        return r;
    e->started_ns = (uint64_t)x;
    if ((r = get_i64(o, "netns_dev", 0, INT64_MAX, &x, why)) < 0)
        return r;
    e->netns_dev = (uint64_t)x;
    if ((r = get_i64(o, "netns_ino", 0, INT64_MAX, &x, why)) < 0)
        return r;
    e->netns_ino = (uint64_t)x;

    json_object *v;
    if (!json_object_object_get_ex(o, "vm_was_running", &v) ||
        !json_object_is_type(v, json_type_boolean))
        return *why = "vm_was_running", -ENODATA;
    e->vm_was_running = json_object_get_boolean(v);

    if (!json_object_object_get_ex(o, "taps", &v) || !json_object_is_type(v, json_type_array) ||
        json_object_array_length(v) > ELEMENTSOF(e->taps))
        return *why = "taps", -ENODATA;
    e->n_taps = json_object_array_length(v);
    for (size_t i = 0; i < e->n_taps; i++) {
        json_object *t = json_object_array_get_idx(v, i);
        if (!json_object_is_type(t, json_type_string) ||
            (size_t)json_object_get_string_len(t) >= sizeof(e->taps[i]) ||
            strlen(json_object_get_string(t)) != (size_t)json_object_get_string_len(t))
            return *why = "taps", -ENODATA;
        memcpy(e->taps[i], json_object_get_string(t), (size_t)json_object_get_string_len(t) + 1);
    }

    if (entry_validate(e, why) < 0)
        return -EBADMSG;
    return 0;
}

int journal_parse(const char *text, size_t len, struct journal_entry *e, char *err, size_t errlen)
{
    if (!text || !e)
        return -EINVAL;
    const char *why = "?";
    int r = entry_from_text(text, len, e, &why);
    if (r == -ENODATA) {
        if (err && errlen)
            snprintf(err, errlen, "field '%s' missing or invalid", why);
        return -EBADMSG;
    }
    if (r == -EBADMSG && err && errlen)
        snprintf(err, errlen, "%s", why);
    return r;
}

/* Read path, expecting an entry whose file name is file_table (or any when NULL). */
static int read_entry_file(const char *path, const char *file_table, struct journal_entry *e)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    int r = read_file(path, JOURNAL_MAX_FILE, &text, &len);
    if (r == -EFBIG) {
        log_err("journal: %s is corrupt: larger than %d bytes", path, JOURNAL_MAX_FILE);
        return -EBADMSG;
    }
    if (r < 0) {
        if (r != -ENOENT)
            log_err("journal: cannot read %s: %s", path, strerror(-r));
        return r;
    }
    char why[128];
    r = journal_parse(text, len, e, why, sizeof(why));
    if (r == -EBADMSG) {
        log_err("journal: %s is corrupt (%s); it is left alone: lift its gate with 'nft delete "
                "table netdev %s' if present, then remove the file",
                path, why, file_table ? file_table : "<table>");
        return r;
    }
    if (r < 0)
        return r;
    char table[GATE_TABLE_NAME_MAX];
    r = gate_table_name(e->domain, table, sizeof(table));
    if (r < 0)
        return r;
    if (file_table && strcmp(table, file_table) != 0) {
        log_err("journal: %s is corrupt: it names domain '%s', which belongs in %s.json", path,
                e->domain, table);
        return -EBADMSG;
    }
    return 0;
}

int journal_read(const char *state_dir, const char *domain, struct journal_entry *e)
{
    if (!state_dir || !domain || !e)
        return -EINVAL;
    char path[PATH_MAX], table[GATE_TABLE_NAME_MAX];
    int r;
    if ((r = journal_path(state_dir, domain, path, sizeof(path))) < 0 ||
        (r = gate_table_name(domain, table, sizeof(table))) < 0)
        return r;
    r = read_entry_file(path, table, e);
    if (r < 0)
        return r;
    if (strcmp(e->domain, domain) != 0) {
        log_err("journal: %s is corrupt: it names another domain", path);
        return -EBADMSG;
    }
    return 0;
}

int journal_remove(const char *state_dir, const char *domain)
{
    if (!state_dir || !domain)
        return -EINVAL;
    char dir[PATH_MAX], path[PATH_MAX];
    int r;
    if ((r = journal_dir(state_dir, dir, sizeof(dir))) < 0 ||
        (r = journal_path(state_dir, domain, path, sizeof(path))) < 0)
        return r;
    if (unlink(path) < 0) {
        if (errno == ENOENT)
            return 0;
        r = negative_errno();
        log_err("journal: cannot remove %s: %s", path, strerror(-r));
        return r;
    }
    r = fsync_dir(dir);
    return r < 0 ? r : 1;
}

int journal_list(const char *state_dir, struct journal_entry **out, size_t *n)
{
    if (!state_dir || !out || !n)
        return -EINVAL;
    *out = NULL;
    *n = 0;
    char dir[PATH_MAX];
    int r = journal_dir(state_dir, dir, sizeof(dir));
    if (r < 0)
        return r;
    _cleanup_closedir_ DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : negative_errno();

    (void)sweep_dead_tmp(d, dir);

    _cleanup_free_ struct journal_entry *list = NULL;
    size_t count = 0, cap = 0;
    int corrupt = 0;
    struct dirent *de;
    while ((errno = 0, de = readdir(d))) {
        size_t len = strlen(de->d_name);
        /* Skips write_file_atomic's "*.json.tmp.XXXXXX" files too (a live writer's). */
        if (len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0 || de->d_name[0] == '.')
            continue;
        char path[PATH_MAX], table[GATE_TABLE_NAME_MAX];
        if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path) ||
            len - 5 >= sizeof(table)) {
            log_err("journal: ignoring %s/%s: name too long", dir, de->d_name);
            corrupt++;
            continue;
        }
        memcpy(table, de->d_name, len - 5);
        table[len - 5] = 0;
        struct stat st;
        if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
            log_err("journal: ignoring %s: not a regular file", path);
            corrupt++;
            continue;
        }
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            struct journal_entry *nl = realloc(list, ncap * sizeof(*nl));
            if (!nl)
                return -ENOMEM;
            list = nl;
            cap = ncap;
        }
        r = read_entry_file(path, table, &list[count]);
        if (r == -ENOENT)
            continue; /* removed while we listed */
        if (r < 0) {
            corrupt++;
            continue;
        }
        count++;
    }
    if (errno != 0)
        return negative_errno();
    *out = TAKE_PTR(list);
    *n = count;
    return corrupt;
}

int journal_recover(const char *state_dir, journal_recover_fn fn, void *userdata)
{
    _cleanup_free_ struct journal_entry *list = NULL;
    size_t n = 0;
    int r = journal_list(state_dir, &list, &n);
    if (r < 0)
        return r;
    int first_err = 0, recovered = 0;
    for (size_t i = 0; i < n; i++) {
        const struct journal_entry *e = &list[i];
        if (journal_owner_alive(e)) {
            log_debug("journal: %s is held by live pid %d", e->domain, (int)e->pid);
            continue;
        }
        log_warn("journal: recovering domain %s (step %s, owner pid %d is gone)", e->domain,
                 e->step, (int)e->pid);
        r = journal_lift_gate(e, NULL);
        if (r < 0) {
            log_err("journal: cannot lift the gate of %s: %s", e->domain, strerror(-r));
            first_err = first_err ?: r;
            continue;
        }
        if (fn) {
            r = fn(e, userdata);
            if (r < 0) {
                log_err("journal: recovery of %s failed after lifting its gate: %s; entry kept",
                        e->domain, strerror(-r));
                first_err = first_err ?: r;
                continue;
            }
        }
        r = journal_remove(state_dir, e->domain);
        if (r < 0) {
            first_err = first_err ?: r;
            continue;
        }
        recovered++;
    }
    return first_err ? first_err : recovered;
}
