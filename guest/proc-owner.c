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

static int vec_push(struct vec *v, const struct proc_owner_entry *e)
{
    if (v->n >= MAX_ENTRIES)
        return -E2BIG;
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 64;
        struct proc_owner_entry *nv = reallocarray(v->v, nc, sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        v->v = nv;
        v->cap = nc;
    }
    v->v[v->n++] = *e;
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

static int scan_pid(int procfd, pid_t pid, struct vec *v)
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
        uint64_t inode;
        if (!parse_socket_link(link, &inode))
            continue;
        if (!have_comm) {
            read_comm(procfd, pid, comm);
            have_comm = true;
        }
        struct proc_owner_entry e = {.inode = inode, .owner = {.pid = pid, .fd = (int)fd}};
        memcpy(e.owner.comm, comm, sizeof(comm));
        int r = vec_push(v, &e);
        if (r < 0)
            return r;
    }
    return 0;
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

int proc_owner_scan(const char *proc_root, pid_t skip_pid, struct proc_owner_map *m)
{
    m->v = NULL;
    m->n = 0;
    int procfd = open(proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (procfd < 0)
        return negative_errno();
    _cleanup_closedir_ DIR *d = fdopendir(procfd);
    if (!d) {
        int r = negative_errno();
        close(procfd);
        return r;
    }
    struct vec v = {0};
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        unsigned long long pid;
        if (!parse_uint(de->d_name, INT_MAX, &pid) || pid == 0 || (pid_t)pid == skip_pid)
            continue;
        int r = scan_pid(dirfd(d), (pid_t)pid, &v);
        if (r < 0) {
            free(v.v);
            return r;
        }
        errno = 0;
    }
    if (errno != 0) {
        int r = negative_errno();
        free(v.v);
        return r;
    }
    if (v.n)
        qsort(v.v, v.n, sizeof(*v.v), cmp_entry);
    m->v = v.v;
    m->n = v.n;
    return 0;
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
