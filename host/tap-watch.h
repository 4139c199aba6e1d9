/* host/tap-watch.h: the per-connection report after a thaw, measured on the tap.
 *
 * Owns packet sockets (AF_PACKET, ETH_P_ALL) bound to a domain's taps, opened before the gate
 * lifts, and what they see of each connection of the socket image afterwards: the peer's
 * first segment, the first payload in either direction (the stall), RSTs, and whether the
 * peer acknowledges data this guest state never sent (the peer has moved past the checkpoint:
 * the connection is stale). Nothing here trusts the frames: every header is bounds-checked.
 *
 * Results per connection: "survived" (the peer answered consistently), "stale" (the peer is
 * ahead of the restored state), "reset" (an RST, or the agent failed to thaw it), "stalled"
 * (no word from the peer within the watch). */
#pragma once
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#define TAP_WATCH_DEFAULT_MS 2000
#define TAP_WATCH_MAX_TAPS   16

struct tap_watch_conn {
    uint32_t id;
    struct in6_addr gaddr, paddr; /* guest (local) and peer (remote), v4 stored v4-mapped */
    uint16_t gport, pport;
    uint32_t snd_una, snd_nxt, rcv_nxt;    /* the guest's view, from the image */
    bool queued;                           /* the guest had data to send: wait for it to move */
    uint64_t first_peer_ns, first_data_ns; /* 0: not seen */
    uint64_t bytes_to_guest, bytes_from_guest;
    bool rst, stale;
    uint32_t stale_ack;
    bool guest_sent;    /* the guest sent sequence space after the thaw: */
    uint32_t guest_end; /* its highest end (the peer may acknowledge up to it) */
    bool guest_new;     /* ... beyond its frozen snd_nxt: staleness is no longer judged */
};

struct tap_watch {
    bool active;
    int fds[TAP_WATCH_MAX_TAPS];
    size_t n_fds;
    struct tap_watch_conn *c;
    size_t n;
    uint64_t t0_ns; /* CLOCK_MONOTONIC when the thaw returned; times are reported from it */
    uint64_t frames;
    uint64_t lost; /* frames the packet sockets dropped: staleness is not judged then */
};

/* Open the watch on taps for the connections of image (borrowed). 0 or -errno (CAP_NET_RAW). */
int tap_watch_start(struct tap_watch *w, const char *const *taps, size_t n_taps,
                    json_object *image);
/* Only the connection table, no sockets (tests, fuzzing). */
int tap_watch_init_conns(struct tap_watch *w, json_object *image);
/* Account one Ethernet frame seen at now_ns (CLOCK_MONOTONIC). Returns 1 if it matched a
 * connection, 0 if not, -EINVAL if malformed. */
int tap_watch_feed(struct tap_watch *w, const uint8_t *frame, size_t len, uint64_t now_ns);
/* Same, for a frame of wire bytes of which only the first len were captured. */
int tap_watch_feed_wire(struct tap_watch *w, const uint8_t *frame, size_t len, size_t wire,
                        uint64_t now_ns);
/* Read frames until every connection has answered (and, when the guest had data queued,
 * moved data), or is reset/stale, or max_ms passes, or *cancel is set. Sets t0 first. */
void tap_watch_run(struct tap_watch *w, int max_ms, const volatile sig_atomic_t *cancel);
/* {"watched_ms":N,"connections":[{"id","local","remote","result","stall_ms","answer_ms",
 *  "bytes_to_guest","bytes_from_guest"}],"survived":N,"stale":N,"reset":N,"stalled":N}.
 * thaw_reply (may be NULL) marks connections the agent failed to thaw as reset. */
json_object *tap_watch_report(const struct tap_watch *w, json_object *thaw_reply);
/* The stale connections of a report as guest-net-reset-stale's "connections" argument. */
json_object *tap_watch_stale_list(json_object *report);
/* After guest-net-reset-stale: mark those connections "reset" in the report, fix counts. */
void tap_watch_mark_reset(json_object *report, json_object *reset_reply);
/* Close the sockets and free the table. Idempotent. */
void tap_watch_stop(struct tap_watch *w);
