/* guest/proc-owner.h: which processes hold which sockets, from /proc/PID/fd.
 *
 * Owns the scans of /proc: every fd that is a socket ("socket:[INODE]") gives an owner
 * (pid, fd, comm). A socket may have several owners (fork, SCM_RIGHTS, dup). Processes and
 * fds that vanish during the scan are skipped silently: they no longer own anything.
 * Threads share their process's fd table, so only thread-group leaders are scanned.
 *
 * Two kinds of scan: proc_owner_scan() reads every socket fd once (recovery, tests), and
 * proc_owner_scan_held(), a freeze's round, which stops each owner of a wanted socket as soon
 * as it is seen and reads its fds again once it is stopped; a stopped process's fd table
 * cannot change, so later rounds reuse that reading instead of going through its fds again.
 * The fd links are read with readlinkat(), never stat(): a stat would call into the target's
 * file system (a FUSE daemon that is itself stopped would hang the freeze).
 *
 * Functions return 0 (or a count) on success and -errno on failure. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sock_owner {
    pid_t pid;
    int fd;
    char comm[16]; /* NUL-terminated; non-printable bytes replaced by '?' */
};

struct proc_owner_entry {
    uint64_t inode;
    struct sock_owner owner;
};

/* Sorted by (inode, pid, fd) so lookups are a binary search. */
struct proc_owner_map {
    struct proc_owner_entry *v;
    size_t n;
};

/* Scan proc_root ("/proc" normally; tests may pass a fake tree). skip_pid (e.g. the agent's
 * own pid, or 0 for none) is left out. */
int proc_owner_scan(const char *proc_root, pid_t skip_pid, struct proc_owner_map *m);

/* Owners of one inode: returns how many and points *first at the first (contiguous). */
size_t proc_owner_lookup(const struct proc_owner_map *m, uint64_t inode,
                         const struct proc_owner_entry **first);

void proc_owner_map_free(struct proc_owner_map *m);

/* A set of socket inodes (open addressing; 0 is never a socket inode, it marks a free slot). */
struct inode_set {
    uint64_t *slots;
    size_t cap, n; /* cap: 0 or a power of two */
};

int inode_set_add(struct inode_set *s, uint64_t inode);
bool inode_set_has(const struct inode_set *s, uint64_t inode);
void inode_set_free(struct inode_set *s);

/* Stops process pid (comm for messages) so that its fds can be read for good. Returns 1 if
 * it is held (now or already), 0 if it is gone, -errno to abort the scan. */
typedef int (*proc_owner_hold_fn)(void *ctx, pid_t pid, const char *comm);

/* What the rounds of one freeze remember: every socket fd of the processes read after they
 * were held, grouped by process. Zero-initialise; proc_owner_cache_free() when done. */
struct proc_owner_held {
    pid_t pid;
    size_t first, n; /* their entries in v */
};
struct proc_owner_cache {
    struct proc_owner_entry *v;
    size_t n, cap;
    struct proc_owner_held *procs; /* sorted by pid after each round */
    size_t n_procs, cap_procs;
    size_t n_read; /* fd links read in all rounds (for the log) */
};

/* One round: every process that holds a socket in want is held through hold() and its fds
 * read after that; processes held in an earlier round are not read again. *m gets the
 * socket fds of the held processes still listed in proc_root (sorted as above), so it names
 * every owner of every wanted socket, as far as this round could see. */
int proc_owner_scan_held(const char *proc_root, pid_t skip_pid, const struct inode_set *want,
                         proc_owner_hold_fn hold, void *ctx, struct proc_owner_cache *cache,
                         struct proc_owner_map *m);

void proc_owner_cache_free(struct proc_owner_cache *c);

/* The sockfs inode of an open fd (fstat), -ENOTSOCK if it is not a socket. */
int fd_socket_inode(int fd, uint64_t *inode);
