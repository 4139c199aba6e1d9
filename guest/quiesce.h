/* guest/quiesce.h: stop processes without them or their parents noticing, and take their fds.
 *
 * Owns a set of ptrace-seized threads. Every thread of a process is seized (PTRACE_SEIZE) and
 * interrupted (PTRACE_INTERRUPT), the thread list re-read until no new thread appears, and each
 * one waited for until it is in a ptrace stop. No SIGSTOP is ever sent: the parent sees no
 * stop and no SIGCHLD, and job control is untouched. Signals that arrive meanwhile are
 * re-delivered on release. A thread that exits while held is reaped and forgotten.
 *
 * ptrace ties the tracees to the seizing thread: only that thread may release them, so the
 * caller must stay single-threaded (or do all quiesce calls from one thread).
 *
 * Functions return 0 (or a count) on success and -errno on failure. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct quiesce_thread {
    pid_t tid;
    pid_t tgid;
    int pending_sig; /* a signal we intercepted, re-injected on release */
    bool exited;
};

/* Caller-owned; zero-initialise (or quiesce_init) before use. */
struct quiesce_set {
    struct quiesce_thread *threads;
    size_t n, cap;
    unsigned timeout_ms; /* per quiesce_add wait for stops; 0 means the default (5000) */
};

void quiesce_init(struct quiesce_set *s);

/* Seize and stop every thread of process pid (including threads created meanwhile). Returns
 * the number of threads newly stopped; 0 if pid is us, already held, or gone (-ESRCH is not an
 * error: a process that exited owns nothing). On error the threads of pid seized so far are
 * released again. */
int quiesce_add(struct quiesce_set *s, pid_t pid);

/* True if pid (a tgid) is held by the set. */
bool quiesce_holds(const struct quiesce_set *s, pid_t pid);

/* Resume and detach everything (idempotent; the set is emptied and may be reused). Threads
 * that exited meanwhile are reaped. Returns how many threads were resumed. */
int quiesce_release(struct quiesce_set *s);

/* Free the set's memory; releases first if anything is still held. */
void quiesce_done(struct quiesce_set *s);

/* pidfd_open(pid) then pidfd_getfd(fd): a duplicate of another process's fd, O_CLOEXEC.
 * Returns the new fd or -errno (-ESRCH if the process is gone, -EBADF if the fd is). */
int pidfd_take_socket(pid_t pid, int fd);

/* The pidfds of the processes a freeze takes sockets from, each opened once (a process
 * often owns many sockets). Zero-initialise; pidfd_cache_done() closes them. */
struct pidfd_slot {
    pid_t pid; /* 0: a free slot */
    int pidfd; /* -ESRCH if the process is gone */
};
struct pidfd_cache {
    struct pidfd_slot *slots; /* open addressing */
    size_t cap, n;            /* cap: 0 or a power of two */
};

/* pidfd_take_socket() through the cache. A process found gone stays gone; when pidfd_open
 * runs out of fds the cache is emptied and this call goes without it. */
int pidfd_cache_take(struct pidfd_cache *c, pid_t pid, int fd);
void pidfd_cache_done(struct pidfd_cache *c);
