/* host/gate.h: the network gate, a silent drop on a domain's tap devices.
 *
 * Owns one nftables netdev table per domain (named by gate_table_name()) holding, per tap, an
 * ingress chain (frames from the guest) and an egress chain (frames to the guest), both with
 * policy drop and a named counter. Never rejects, never sends ICMP. Install and lift are each
 * one atomic libnftables transaction and both are idempotent. Tables live in the calling
 * thread's network namespace. Every call makes and frees its own nft_ctx: no global state.
 *
 * Every tap name is checked with gate_ifname_valid() and the domain name only reaches nft as
 * the derived table name, so nothing from the guest or the domain XML reaches nft unchecked.
 * See docs/gate.md for the table layout. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* At most this many taps per domain (matches struct journal_entry). */
#define GATE_MAX_TAPS 16
/* Table names are "nc_" + up to 32 sanitized domain chars + "_" + 12 hex chars of sha256. */
#define GATE_TABLE_NAME_MAX 64

struct gate_counters {
    uint64_t to_guest_pkts; /* dropped at the taps' egress hooks (towards the guest) */
    uint64_t to_guest_bytes;
    uint64_t from_guest_pkts; /* dropped at the taps' ingress hooks (sent by the guest) */
    uint64_t from_guest_bytes;
};

/* A usable interface name: 1..15 chars of [A-Za-z0-9_.-], not "." or "..". */
bool gate_ifname_valid(const char *ifname);

/* The nft table name for a domain: only [A-Za-z0-9_], unique per domain name (hash suffix),
 * at most GATE_TABLE_NAME_MAX-1 chars. 0, -EINVAL (empty/overlong domain) or -ENOBUFS. */
int gate_table_name(const char *domain, char *buf, size_t len);

/* Drop all traffic on taps in one transaction. Re-installing with the same taps changes
 * nothing (counters kept); with other taps the table is rebuilt atomically to exactly the
 * given set. -EINVAL for bad names or n_taps 0 or > GATE_MAX_TAPS, -ENODEV when a tap does
 * not exist in this namespace (nft would silently accept a hook on a missing device), -EIO
 * when nft fails (its message is logged). */
int gate_install(const char *domain, const char *const *taps, size_t n_taps);

/* gate_install() with flags. GATE_ALLOW_MISSING_TAP gates a tap name that does not exist yet:
 * recent kernels (verified on these hosts' 6.18) hook the device the moment it appears, so a
 * restore can gate the tap before libvirt creates it. Older kernels refuse: -ENODEV. */
#define GATE_ALLOW_MISSING_TAP (1u << 0)
int gate_install_flags(const char *domain, const char *const *taps, size_t n_taps, unsigned flags);

/* Held-traffic capture (issue 5, host/replay.h): append `log group G` to the egress
 * (to_guest_<tap>) chain of each listed tap of an installed gate, after the counter and before
 * the policy drop, in one transaction, so every frame sent to the guest is copied to the nflog
 * group before it is dropped. Idempotent (a chain that already logs to G is left alone).
 * Open the nflog listener first: a frame logged to a group nobody has bound is only dropped.
 * -EINVAL (names, group 0), -ENOENT when no gate is installed, -EIO. */
int gate_capture_add(const char *domain, const char *const *taps, size_t n_taps, uint16_t group);

/* Remove the domain's table in one transaction. 1 if a gate was lifted, 0 if there was none,
 * or -errno. */
int gate_lift(const char *domain);

/* Sum the gate's counters over all taps. -ENOENT when no gate is installed. */
int gate_read_counters(const char *domain, struct gate_counters *c);

/* 1 if the domain's table exists, 0 if not, or -errno. */
int gate_is_installed(const char *domain);
