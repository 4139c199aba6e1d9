/* guest/sock-diag.h: list and destroy TCP sockets through NETLINK_SOCK_DIAG (inet_diag).
 *
 * Owns only the netlink exchange: one dump per address family (IPv4 and IPv6, so dual-stack
 * sockets with v4-mapped peers show up as AF_INET6), optionally with TCP_INFO, and SOCK_DESTROY of
 * one socket, which makes the kernel send an RST. Replies are parsed with every length
 * bounds-checked; a malformed reply is an error (-EBADMSG), never a crash.
 *
 * Functions return 0 (or a count) on success and -errno on failure. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "guest/tcp-repair.h"

/* One bit per TCP state (1u << TCP_ESTABLISHED ...), as inet_diag's idiag_states. */
#define SOCK_DIAG_ALL_STATES   0xfffu
#define SOCK_DIAG_STATE_BIT(s) (1u << (s))
/* The most of a struct tcp_info kept per socket: glibc's whole struct fits; a newer kernel's
 * longer one is cut. */
#define SOCK_DIAG_TCP_INFO_MAX 256

struct sock_diag_tcp {
    uint8_t family; /* AF_INET or AF_INET6: the socket's own family */
    uint8_t state;  /* TCP_ESTABLISHED, ... (netinet/tcp.h values) */
    /* endpoint.family is the wire protocol: AF_INET for the v4-mapped peers of an AF_INET6
     * socket (as in tcp-repair.h), so compare addresses, not families, with the socket's. */
    struct tcp_endpoint local, remote;
    uint64_t inode; /* sockfs inode, as in /proc/PID/fd/N -> socket:[inode] */
    uint32_t uid;
    /* Needed to name the socket exactly when destroying it. */
    uint64_t cookie;
    uint32_t ifindex; /* bound device, 0 if none */
    /* struct tcp_info as the kernel sent it (INET_DIAG_INFO; shorter from older kernels),
     * only from sock_diag_tcp_list_info; tcp_info_len 0 otherwise. */
    uint16_t tcp_info_len;
    uint8_t tcp_info[SOCK_DIAG_TCP_INFO_MAX];
};

/* Dump every TCP socket whose state bit is set in state_mask, IPv4 then IPv6. *out is
 * malloc'd (NULL when *n == 0); the caller frees it. */
int sock_diag_tcp_list(uint32_t state_mask, struct sock_diag_tcp **out, size_t *n);
/* The same, with each socket's tcp_info (for tcp-retrans). */
int sock_diag_tcp_list_info(uint32_t state_mask, struct sock_diag_tcp **out, size_t *n);

/* Destroy one socket (the kernel sends RST and the owner sees ECONNABORTED). -ENOENT if it
 * is gone or its cookie is stale (the 4-tuple was reused by another socket), -EOPNOTSUPP
 * without CONFIG_INET_DIAG_DESTROY. */
int sock_diag_tcp_destroy(const struct sock_diag_tcp *e);

/* Parse one buffer of a dump reply (a run of nlmsghdr), appending to *v (capacity *cap).
 * Sets *done on NLMSG_DONE. Exposed for tests and fuzzing; -EBADMSG on malformed input,
 * or the kernel's error from NLMSG_ERROR. */
int sock_diag_parse_reply(const void *buf, size_t len, uint32_t seq, struct sock_diag_tcp **v,
                          size_t *n, size_t *cap, int *done);
