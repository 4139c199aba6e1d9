/* guest/proc-owner.c: see proc-owner.h. */
#include "guest/proc-owner.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macro.h"

#define MAX_ENTRIES (1u << 24) /* a bound on growth, far above any real fd count */

struct vec {
    struct proc_owner_entry *v;
    size_t n, cap;
};

static int vec_push(struct proc_owner_entry **v, size_t *n, size_t *cap,
                    const struct proc_owner_entry *e)
{
    if (*n >= MAX_ENTRIES)
        return -E2BIG;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        struct proc_owner_entry *nv = reallocarray(*v, nc, sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = *e;
    return 0;
}

/* Strictly decimal, no sign, no leading junk; false for "self", "." and overflow. */
static bool parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
    if (!*s)
        return false;
    unsigned long long x = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (x > (max - d) / 10)
            return false;
        x = x * 10 + d;
    }
    *out = x;
    return true;
}

/* "socket:[12345]" -> 12345. */
static bool parse_socket_link(const char *l, uint64_t *inode)
{
    static const char pfx[] = "socket:[";
    size_t len = strlen(l);
    if (len < sizeof(pfx) + 1 || strncmp(l, pfx, sizeof(pfx) - 1) != 0 || l[len - 1] != ']')
        return false;
    char num[24];
    size_t nl = len - (sizeof(pfx) - 1) - 1;
    if (nl == 0 || nl >= sizeof(num))
        return false;
    memcpy(num, l + sizeof(pfx) - 1, nl);
    num[nl] = 0;
    unsigned long long x;
    if (!parse_uint(num, UINT64_MAX, &x))
        return false;
    *inode = x;
    return true;
}

static void read_comm(int procfd, pid_t pid, char comm[16])
{
    char path[64];
    snprintf(path, sizeof(path), "%d/comm", (int)pid);
    memset(comm, 0, 16);
    _cleanup_close_ int fd = openat(procfd, path, O_RDONLY | O_CLOEXEC);
    ssize_t k = fd >= 0 ? read(fd, comm, 15) : -1;
    if (k <= 0) {
        strcpy(comm, "?"); /* exited meanwhile: the entry is dropped by its caller anyway */
        return;
    }
    comm[k] = 0;
    if (k > 0 && comm[k - 1] == '\n')
        comm[k - 1] = 0;
    for (char *c = comm; *c; c++)
        if (!isprint((unsigned char)*c))
            *c = '?';
}

/* How one process is read: every socket fd (hold NULL), or, in a freeze's round, nothing
 * until a wanted socket shows up, then hold the process and read all its socket fds again. */
struct pid_scan {
    const struct inode_set *want;
    proc_owner_hold_fn hold;
    void *ctx;
    size_t *n_read; /* may be NULL */
};

/* Appends pid's socket fds to (*v, *n, *cap). 1 if they were read (with a hold: after the
 * process was held), 0 if there is nothing to record. */
static int scan_pid(int procfd, pid_t pid, const struct pid_scan *ps, struct proc_owner_entry **v,
                    size_t *n, size_t *cap)
{
    char path[64];
    snprintf(path, sizeof(path), "%d/fd", (int)pid);
    int dfd = openat(procfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return 0; /* exited, a kernel thread we may not read, or no permission: no sockets */
    _cleanup_closedir_ DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return 0;
    }
    char comm[16];
    bool have_comm = false;
    bool held = !ps->hold;
    struct dirent *de;
    while ((de = readdir(d))) {
        unsigned long long fd;
        if (!parse_uint(de->d_name, INT_MAX, &fd))
            continue;
        char link[64];
        ssize_t k = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);
        if (k < 0)
            continue; /* closed meanwhile */
        link[k] = 0;
        if (ps->n_read)
            (*ps->n_read)++;
        uint64_t inode;
        if (!parse_socket_link(link, &inode))
            continue;
        if (!have_comm) {
            read_comm(procfd, pid, comm);
            have_comm = true;
        }
        if (!held) {
            if (!inode_set_has(ps->want, inode))
                continue;
            int r = ps->hold(ps->ctx, pid, comm);
            if (r <= 0)
                return r; /* gone (0) or an error */
            /* Stopped now: what was read before may have changed meanwhile, so start over;
             * from here on the fd table holds still. */
            held = true;
            rewinddir(d);
            continue;
        }
        struct proc_owner_entry e = {.inode = inode, .owner = {.pid = pid, .fd = (int)fd}};
        memcpy(e.owner.comm, comm, sizeof(comm));
        int r = vec_push(v, n, cap, &e);
        if (r < 0)
            return r;
    }
    return held ? 1 : 0;
}

static int cmp_entry(const void *a, const void *b)
{
    const struct proc_owner_entry *x = a, *y = b;
    if (x->inode != y->inode)
        return x->inode < y->inode ? -1 : 1;
    if (x->owner.pid != y->owner.pid)
        return x->owner.pid < y->owner.pid ? -1 : 1;
    return (x->owner.fd > y->owner.fd) - (x->owner.fd < y->owner.fd);
}

/* Open proc_root to walk its PID directories. */
static int open_proc(const char *proc_root, DIR **out)
{
    int procfd = open(proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (procfd < 0)
        return negative_errno();
    DIR *d = fdopendir(procfd);
    if (!d) {
        int r = negative_errno();
        close(procfd);
        return r;
    }
    *out = d;
    return 0;
}

/* The next PID directory of d but skip_pid: 1 with *pid set, 0 at the end, or -errno. */
static int next_pid(DIR *d, pid_t skip_pid, pid_t *pid)
{
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        unsigned long long v;
        if (parse_uint(de->d_name, INT_MAX, &v) && v != 0 && (pid_t)v != skip_pid) {
            *pid = (pid_t)v;
            return 1;
        }
        errno = 0;
    }
    return errno ? negative_errno() : 0;
}

int proc_owner_scan(const char *proc_root, pid_t skip_pid, struct proc_owner_map *m)
{
    m->v = NULL;
    m->n = 0;
    _cleanup_closedir_ DIR *d = NULL;
    int r = open_proc(proc_root, &d);
    if (r < 0)
        return r;
    struct vec v = {0};
    const struct pid_scan every = {0};
    pid_t pid;
    while ((r = next_pid(d, skip_pid, &pid)) > 0) {
        r = scan_pid(dirfd(d), pid, &every, &v.v, &v.n, &v.cap);
        if (r < 0)
            break;
    }
    if (r < 0) {
        free(v.v);
        return r;
    }
    if (v.n)
        qsort(v.v, v.n, sizeof(*v.v), cmp_entry);
    m->v = v.v;
    m->n = v.n;
    return 0;
}

static int cmp_held(const void *a, const void *b)
{
    const struct proc_owner_held *x = a, *y = b;
    return (x->pid > y->pid) - (x->pid < y->pid);
}

static const struct proc_owner_held *find_held(const struct proc_owner_cache *c, size_t n,
                                               pid_t pid)
{
    const struct proc_owner_held key = {.pid = pid};
    return n ? bsearch(&key, c->procs, n, sizeof(key), cmp_held) : NULL;
}

static int push_held(struct proc_owner_cache *c, const struct proc_owner_held *h)
{
    if (c->n_procs == c->cap_procs) {
        size_t nc = c->cap_procs ? c->cap_procs * 2 : 16;
        struct proc_owner_held *nv = reallocarray(c->procs, nc, sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        c->procs = nv;
        c->cap_procs = nc;
    }
    c->procs[c->n_procs++] = *h;
    return 0;
}

int proc_owner_scan_held(const char *proc_root, pid_t skip_pid, const struct inode_set *want,
                         proc_owner_hold_fn hold, void *ctx, struct proc_owner_cache *cache,
                         struct proc_owner_map *m)
{
    m->v = NULL;
    m->n = 0;
    if (!want || !hold)
        return -EINVAL;
    _cleanup_closedir_ DIR *d = NULL;
    int r = open_proc(proc_root, &d);
    if (r < 0)
        return r;
    /* Processes held in earlier rounds (sorted); those still listed are marked in seen. */
    size_t n_old = cache->n_procs;
    _cleanup_free_ bool *seen = n_old ? calloc(n_old, sizeof(*seen)) : NULL;
    if (n_old && !seen)
        return -ENOMEM;
    const struct pid_scan ps = {.want = want, .hold = hold, .ctx = ctx, .n_read = &cache->n_read};
    pid_t pid;
    while ((r = next_pid(d, skip_pid, &pid)) > 0) {
        const struct proc_owner_held *h = find_held(cache, n_old, pid);
        if (h) {
            seen[h - cache->procs] = true; /* stopped since it was read: nothing to redo */
            continue;
        }
        size_t first = cache->n;
        r = scan_pid(dirfd(d), pid, &ps, &cache->v, &cache->n, &cache->cap);
        if (r > 0)
            r = push_held(cache, &(struct proc_owner_held){pid, first, cache->n - first});
        else
            cache->n = first; /* not held: nothing of it is kept */
        if (r < 0) {
            cache->n = first;
            return r;
        }
    }
    if (r < 0)
        return r;

    size_t total = 0;
    for (size_t i = 0; i < cache->n_procs; i++)
        if (i >= n_old || seen[i])
            total += cache->procs[i].n;
    struct proc_owner_entry *v = total ? malloc(total * sizeof(*v)) : NULL;
    if (total && !v)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < cache->n_procs; i++) {
        const struct proc_owner_held *h = &cache->procs[i];
        if (i < n_old && !seen[i])
            continue; /* gone: owns nothing any more */
        memcpy(v + k, cache->v + h->first, h->n * sizeof(*v));
        k += h->n;
    }
    if (cache->n_procs > n_old)
        qsort(cache->procs, cache->n_procs, sizeof(*cache->procs), cmp_held);
    if (total)
        qsort(v, total, sizeof(*v), cmp_entry);
    m->v = v;
    m->n = total;
    return 0;
}

void proc_owner_cache_free(struct proc_owner_cache *c)
{
    free(c->v);
    free(c->procs);
    memset(c, 0, sizeof(*c));
}

/* 64-bit mix (splitmix64's finaliser): inodes are sequential, the slots must not be. */
static size_t inode_slot(uint64_t x, size_t cap)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return (size_t)x & (cap - 1);
}

static int inode_set_grow(struct inode_set *s)
{
    size_t nc = s->cap ? s->cap * 2 : 64;
    if (nc > SIZE_MAX / sizeof(uint64_t))
        return -ENOMEM;
    uint64_t *nv = calloc(nc, sizeof(*nv));
    if (!nv)
        return -ENOMEM;
    for (size_t i = 0; i < s->cap; i++) {
        uint64_t x = s->slots[i];
        if (!x)
            continue;
        size_t j = inode_slot(x, nc);
        while (nv[j])
            j = (j + 1) & (nc - 1);
        nv[j] = x;
    }
    free(s->slots);
    s->slots = nv;
    s->cap = nc;
    return 0;
}

int inode_set_add(struct inode_set *s, uint64_t inode)
{
    if (inode == 0)
        return -EINVAL;
    if ((s->n + 1) * 2 > s->cap) { /* at most half full: probes stay short */
        int r = inode_set_grow(s);
        if (r < 0)
            return r;
    }
    size_t j = inode_slot(inode, s->cap);
    while (s->slots[j]) {
        if (s->slots[j] == inode)
            return 0;
        j = (j + 1) & (s->cap - 1);
    }
    s->slots[j] = inode;
    s->n++;
    return 1;
}

bool inode_set_has(const struct inode_set *s, uint64_t inode)
{
    if (!s->cap || inode == 0)
        return false;
    for (size_t j = inode_slot(inode, s->cap);; j = (j + 1) & (s->cap - 1)) {
        if (s->slots[j] == inode)
            return true;
        if (!s->slots[j])
            return false;
    }
}

void inode_set_free(struct inode_set *s)
{
    free(s->slots);
    memset(s, 0, sizeof(*s));
}

size_t proc_owner_lookup(const struct proc_owner_map *m, uint64_t inode,
                         const struct proc_owner_entry **first)
{
    *first = NULL;
    size_t lo = 0, hi = m->n;
    while (lo < hi) { /* lower bound */
        size_t mid = lo + (hi - lo) / 2;
        if (m->v[mid].inode < inode)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t end = lo;
    while (end < m->n && m->v[end].inode == inode)
        end++;
    if (end > lo)
        *first = &m->v[lo];
    return end - lo;
}

void proc_owner_map_free(struct proc_owner_map *m)
{
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

int fd_socket_inode(int fd, uint64_t *inode)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return negative_errno();
    if (!S_ISSOCK(st.st_mode))
        return -ENOTSOCK;
    *inode = st.st_ino;
    return 0;
}
