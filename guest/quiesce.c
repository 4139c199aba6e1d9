/* guest/quiesce.c: see quiesce.h. */
#include "guest/quiesce.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "common/util.h"

#define DEFAULT_TIMEOUT_MS 5000u
#define MAX_RESCANS        1000 /* a process spawning threads faster than we stop them */
#define REAP_TIMEOUT_MS    1000u

void quiesce_init(struct quiesce_set *s)
{
    memset(s, 0, sizeof(*s));
}

bool quiesce_holds(const struct quiesce_set *s, pid_t pid)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->threads[i].tgid == pid && !s->threads[i].exited)
            return true;
    return false;
}

/* Only this process's entries (from start) can hold one of its tids: keeps adding many
 * processes linear in the total thread count. */
static bool holds_tid(const struct quiesce_set *s, size_t start, pid_t tid)
{
    for (size_t i = start; i < s->n; i++)
        if (s->threads[i].tid == tid)
            return true;
    return false;
}

static void nap(unsigned *us)
{
    struct timespec ts = {0, (long)*us * 1000};
    nanosleep(&ts, NULL);
    if (*us < 2000)
        *us *= 2;
}

/* Wait for one seized, interrupted thread. 1: in a ptrace stop; 0: it exited (reaped). */
static int wait_stopped(struct quiesce_thread *t, unsigned timeout_ms)
{
    uint64_t deadline = now_monotonic_ns() + (uint64_t)timeout_ms * 1000000u;
    unsigned us = 20;
    for (;;) {
        int st;
        pid_t r = waitpid(t->tid, &st, __WALL | WNOHANG);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == ECHILD) {
            t->exited = true; /* gone and reaped by someone: nothing to hold */
            return 0;
        }
        if (r < 0)
            return negative_errno();
        if (r == 0) {
            if (now_monotonic_ns() > deadline)
                return -ETIMEDOUT;
            nap(&us);
            continue;
        }
        if (WIFEXITED(st) || WIFSIGNALED(st)) {
            t->exited = true;
            return 0;
        }
        if (!WIFSTOPPED(st))
            continue;
        int event = st >> 16;
        if (event == 0 && WSTOPSIG(st) != SIGTRAP) {
            /* A signal-delivery stop came first: the thread is stopped all the same; hand the
             * signal back when we let go. */
            t->pending_sig = WSTOPSIG(st);
        }
        return 1;
    }
}

static char thread_state(pid_t pid, pid_t tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 'X';
    ssize_t k = read(fd, buf, sizeof(buf) - 1);
    if (k <= 0)
        return 'X';
    buf[k] = 0;
    const char *p = strrchr(buf, ')'); /* comm may contain anything, even ") " */
    return p && p[1] == ' ' && p[2] ? p[2] : 'X';
}

static int push_thread(struct quiesce_set *s, pid_t tid, pid_t tgid)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        struct quiesce_thread *nv = reallocarray(s->threads, nc, sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        s->threads = nv;
        s->cap = nc;
    }
    s->threads[s->n++] = (struct quiesce_thread){.tid = tid, .tgid = tgid};
    return 0;
}

/* Settle threads that PTRACE_DETACH refused (ESRCH: not in a ptrace stop). Most died while
 * traced: reap them so their parent learns of the exit (a traced thread-group leader can only
 * be reaped after its other threads, so all are polled together). The others were seized but
 * had not stopped yet (quiesce_add timed out, e.g. a thread in uninterruptible sleep): the
 * pending interrupt stops them later, so detach them when that stop shows up, or they would
 * sit in a ptrace stop until the agent exits. Bounded by REAP_TIMEOUT_MS. */
static void reap_all(pid_t *tids, size_t n)
{
    uint64_t deadline = now_monotonic_ns() + (uint64_t)REAP_TIMEOUT_MS * 1000000u;
    unsigned us = 20;
    size_t left = n;
    while (left > 0) {
        for (size_t i = 0; i < n; i++) {
            if (tids[i] <= 0)
                continue;
            int st;
            pid_t r = waitpid(tids[i], &st, __WALL | WNOHANG);
            if (r < 0 && errno == EINTR) {
                i--;
                continue;
            }
            if (r > 0 && WIFSTOPPED(st)) {
                /* Hand back a signal caught in a signal-delivery stop, as release does. */
                int sig = (st >> 16) == 0 && WSTOPSIG(st) != SIGTRAP ? WSTOPSIG(st) : 0;
                if (ptrace(PTRACE_DETACH, tids[i], NULL, (void *)(long)sig) < 0 && errno == ESRCH)
                    continue; /* died meanwhile: reaped on a later pass */
                r = -1;
            }
            if (r < 0 || (r > 0 && (WIFEXITED(st) || WIFSIGNALED(st)))) {
                tids[i] = 0;
                left--;
            }
        }
        if (left == 0 || now_monotonic_ns() > deadline)
            return;
        nap(&us);
    }
}

static int release_range(struct quiesce_set *s, size_t from)
{
    int resumed = 0;
    size_t dying = 0;
    _cleanup_free_ pid_t *tids = s->n > from ? calloc(s->n - from, sizeof(*tids)) : NULL;
    for (size_t i = from; i < s->n; i++) {
        struct quiesce_thread *t = &s->threads[i];
        if (t->exited)
            continue;
        if (ptrace(PTRACE_DETACH, t->tid, NULL, (void *)(long)t->pending_sig) == 0)
            resumed++;
        else if (errno == ESRCH && tids)
            tids[dying++] = t->tid; /* exiting, or seized but not stopped yet */
    }
    if (dying)
        reap_all(tids, dying);
    s->n = from;
    return resumed;
}

/* Seize and interrupt one thread. 1: seized; 0: it is gone or a zombie. */
static int seize_one(struct quiesce_set *s, pid_t pid, pid_t tid)
{
    if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) < 0) {
        int r = negative_errno();
        if (r == -ESRCH)
            return 0;
        if (r == -EPERM) {
            char c = thread_state(pid, tid);
            if (c == 'Z' || c == 'X')
                return 0; /* an exited leader stays listed until the last thread goes */
        }
        return r;
    }
    int r = push_thread(s, tid, pid);
    if (r < 0) {
        ptrace(PTRACE_DETACH, tid, NULL, NULL);
        return r;
    }
    if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) < 0 && errno != ESRCH)
        return negative_errno(); /* released by the caller's rollback */
    return 1;
}

int quiesce_add(struct quiesce_set *s, pid_t pid)
{
    if (pid <= 0)
        return -EINVAL;
    if (pid == getpid() || quiesce_holds(s, pid))
        return 0;
    unsigned timeout = s->timeout_ms ? s->timeout_ms : DEFAULT_TIMEOUT_MS;
    size_t start = s->n;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    int r = 0;

    for (int round = 0;; round++) {
        if (round >= MAX_RESCANS) {
            r = -EAGAIN;
            goto fail;
        }
        _cleanup_closedir_ DIR *d = opendir(path);
        if (!d) {
            if (errno == ENOENT || errno == ESRCH)
                break; /* the whole process exited */
            r = negative_errno();
            goto fail;
        }
        size_t before = s->n;
        struct dirent *de;
        while ((de = readdir(d))) {
            char *end;
            errno = 0;
            long tid = strtol(de->d_name, &end, 10);
            if (*end || errno || tid <= 0 || tid > INT_MAX || de->d_name[0] == '0')
                continue;
            if (holds_tid(s, start, (pid_t)tid))
                continue;
            r = seize_one(s, pid, (pid_t)tid);
            if (r < 0)
                goto fail;
        }
        if (s->n == before)
            break; /* every thread listed is held and stopped: none can start another */
        for (size_t i = before; i < s->n; i++) {
            r = wait_stopped(&s->threads[i], timeout);
            if (r < 0)
                goto fail;
        }
    }

    int held = 0;
    for (size_t i = start; i < s->n; i++)
        held += !s->threads[i].exited;
    if (held == 0)
        s->n = start; /* gone entirely */
    return held;

fail:
    release_range(s, start);
    return r;
}

int quiesce_release(struct quiesce_set *s)
{
    return release_range(s, 0);
}

void quiesce_done(struct quiesce_set *s)
{
    if (s->n)
        quiesce_release(s);
    free(s->threads);
    memset(s, 0, sizeof(*s));
}

int pidfd_take_socket(pid_t pid, int fd)
{
    if (pid <= 0 || fd < 0)
        return -EINVAL;
    _cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0)
        return negative_errno();
    int nfd = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
    if (nfd < 0)
        return negative_errno();
    return nfd;
}

static size_t pid_slot(pid_t pid, size_t cap)
{
    return (size_t)((uint32_t)pid * 2654435761u) & (cap - 1);
}

static struct pidfd_slot *pidfd_slot_find(struct pidfd_cache *c, pid_t pid)
{
    for (size_t j = pid_slot(pid, c->cap);; j = (j + 1) & (c->cap - 1))
        if (c->slots[j].pid == pid || c->slots[j].pid == 0)
            return &c->slots[j];
}

static int pidfd_cache_grow(struct pidfd_cache *c)
{
    size_t nc = c->cap ? c->cap * 2 : 16;
    struct pidfd_slot *nv = calloc(nc, sizeof(*nv));
    if (!nv)
        return -ENOMEM;
    struct pidfd_cache n = {.slots = nv, .cap = nc, .n = c->n};
    for (size_t i = 0; i < c->cap; i++)
        if (c->slots[i].pid)
            *pidfd_slot_find(&n, c->slots[i].pid) = c->slots[i];
    free(c->slots);
    *c = n;
    return 0;
}

int pidfd_cache_take(struct pidfd_cache *c, pid_t pid, int fd)
{
    if (pid <= 0 || fd < 0)
        return -EINVAL;
    if ((c->n + 1) * 2 > c->cap) {
        int r = pidfd_cache_grow(c);
        if (r < 0)
            return r;
    }
    struct pidfd_slot *s = pidfd_slot_find(c, pid);
    if (!s->pid) {
        int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (pfd < 0) {
            pfd = negative_errno();
            if (pfd == -EMFILE || pfd == -ENFILE) {
                /* Out of fds (one per owner adds up): give the cached ones back, go on
                 * without the cache. */
                pidfd_cache_done(c);
                return pidfd_take_socket(pid, fd);
            }
            if (pfd != -ESRCH)
                return pfd; /* not remembered: it may work next time */
        }
        *s = (struct pidfd_slot){.pid = pid, .pidfd = pfd};
        c->n++;
    }
    if (s->pidfd < 0)
        return s->pidfd;
    int nfd = (int)syscall(SYS_pidfd_getfd, s->pidfd, fd, 0);
    if (nfd >= 0)
        return nfd;
    int r = negative_errno();
    if ((r == -EMFILE || r == -ENFILE) && c->n > 1) {
        pidfd_cache_done(c);
        return pidfd_take_socket(pid, fd);
    }
    return r;
}

void pidfd_cache_done(struct pidfd_cache *c)
{
    for (size_t i = 0; i < c->cap; i++)
        if (c->slots[i].pid && c->slots[i].pidfd >= 0)
            close(c->slots[i].pidfd);
    free(c->slots);
    memset(c, 0, sizeof(*c));
}
