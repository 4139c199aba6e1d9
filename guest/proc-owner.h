/* guest/proc-owner.h: which processes hold which sockets, from /proc/PID/fd.
 *
 * Owns one scan of /proc: every fd that is a socket ("socket:[INODE]") gives an owner
 * (pid, fd, comm). A socket may have several owners (fork, SCM_RIGHTS, dup). Processes and
 * fds that vanish during the scan are skipped silently: they no longer own anything.
 * Threads share their process's fd table, so only thread-group leaders are scanned.
 *
 * Functions return 0 (or a count) on success and -errno on failure. */
#pragma once
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

/* The sockfs inode of an open fd (fstat), -ENOTSOCK if it is not a socket. */
int fd_socket_inode(int fd, uint64_t *inode);
