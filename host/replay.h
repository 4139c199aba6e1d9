/* host/replay.h: held-traffic replay. Frames sent to a gated (or stopped) guest are captured
 * instead of lost, kept in a bounded per-domain buffer, saved as a pcap file in the bundle, and
 * sent into the tap after the thaw, so the guest's TCP answers at once instead of waiting for
 * the peer's next retransmission.
 *
 * Owns: the frame buffer (struct replay_buf) and its bound; the frame validation against the
 * domain's MAC and IP addresses (struct replay_addrs, filled by the caller from discovery and
 * the socket image); the classic pcap writer and reader (untrusted input: size-limited and
 * checked); the NETLINK_NETFILTER nflog socket that receives the frames the nftables
 * `log group N` rules copy (struct replay_capture, optionally drained by its own thread); the
 * AF_PACKET sender that replays into a tap; and the stop-mode hold tables
 * (replay_hold_forward_begin/end) that catch the guest's traffic on the prerouting path while
 * the VM and its tap are gone. The gate's capture rule itself is gate_capture_add() in
 * host/gate.h. See docs/replay.md. No global state: every call gets its context. */
#pragma once
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REPLAY_DEFAULT_LIMIT (4u << 20) /* bytes of frames kept per domain */
#define REPLAY_MAX_LIMIT     (256u << 20)
#define REPLAY_MAX_FRAME     65535u /* longest frame kept (nflog copy range, pcap snaplen) */
#define REPLAY_MIN_FRAME     14u    /* an Ethernet header */
#define REPLAY_MAX_MACS      16
#define REPLAY_MAX_IPS       64
#define REPLAY_PCAP_HDR      24u
#define REPLAY_PCAP_REC_HDR  16u
#define REPLAY_ETH_ALEN      6
#define REPLAY_PCAP_NAME     "held.pcap" /* the bundle file (bundle_add_buffer) */

/* What belongs to the domain. Frames are kept and replayed only when their destination MAC is
 * one of macs (unicast only) and their destination IP one of ips. */
struct replay_ip {
    int family; /* AF_INET or AF_INET6 */
    union {
        struct in_addr v4;
        struct in6_addr v6;
    };
    int mac_idx; /* index into macs of the NIC holding this address (for frames rebuilt from
                    layer 3, see replay_hold_forward_begin), or -1: macs[0] */
};

struct replay_addrs {
    uint8_t macs[REPLAY_MAX_MACS][REPLAY_ETH_ALEN];
    size_t n_macs;
    struct replay_ip ips[REPLAY_MAX_IPS];
    size_t n_ips;
    /* Do not check the destination IP (the headers still are). For a capture that starts
     * with the gate, before the socket image says which addresses the guest uses; replay then
     * validates again with the full set. Never for replay_send itself. */
    bool any_ip;
};

/* "52:54:00:12:34:56" into out. 0 or -EINVAL. */
int replay_parse_mac(const char *s, uint8_t out[REPLAY_ETH_ALEN]);
/* Add a MAC ("aa:bb:..") or an IP ("10.0.0.2", "fd00::2") to a. -EINVAL, -E2BIG when full;
 * duplicates are ignored. */
int replay_addrs_add_mac(struct replay_addrs *a, const char *mac);
int replay_addrs_add_ip(struct replay_addrs *a, const char *ip, int mac_idx);
/* Add the guest-side addresses of a (validated) socket image's connections: the addresses the
 * held frames must be for. Wildcard and loopback addresses are skipped; "::ffff:a.b.c.d" counts
 * as IPv4. Returns how many were added (duplicates not counted), -E2BIG when full, -EINVAL. */
struct json_object;
int replay_addrs_add_image(struct replay_addrs *a, struct json_object *image);

enum replay_verdict {
    REPLAY_OK = 0,
    REPLAY_TRUNCATED,     /* shorter than its headers say, or than an Ethernet header */
    REPLAY_TOO_BIG,       /* over REPLAY_MAX_FRAME */
    REPLAY_BAD_MAC,       /* destination not one of the domain's unicast MACs */
    REPLAY_VLAN,          /* 802.1Q/802.1ad tagged: the domain's addresses are untagged */
    REPLAY_BAD_ETHERTYPE, /* not IPv4 or IPv6 */
    REPLAY_BAD_IP_HDR,    /* malformed IP header */
    REPLAY_BAD_IP,        /* destination IP not the domain's */
};
const char *replay_verdict_name(enum replay_verdict v);

/* Is this frame one the domain may receive? Pure function over untrusted bytes. */
enum replay_verdict replay_validate_frame(const struct replay_addrs *a, const uint8_t *frame,
                                          size_t len);

/* The bounded buffer of held frames, in arrival order. */
struct replay_rec {
    uint64_t ts_ns; /* CLOCK_REALTIME of the capture */
    size_t off;
    uint32_t len;
};

struct replay_buf {
    size_t limit; /* bytes of frame data kept at most */
    uint8_t *data;
    size_t used, alloc;
    struct replay_rec *recs;
    size_t n, recs_alloc;
    uint64_t dropped_pkts, dropped_bytes; /* over the limit: not kept (TCP retransmits them) */
    uint64_t rejected_pkts;               /* not the domain's (replay_validate_frame) */
};

/* limit 0: REPLAY_DEFAULT_LIMIT; over REPLAY_MAX_LIMIT: -EINVAL. */
int replay_buf_init(struct replay_buf *b, size_t limit);
void replay_buf_free(struct replay_buf *b);
/* Keep a copy of frame. 0 kept, -ENOSPC over the limit (counted in dropped_*), -EINVAL for a
 * length outside [REPLAY_MIN_FRAME, REPLAY_MAX_FRAME], -ENOMEM. Does not validate. */
int replay_buf_add(struct replay_buf *b, uint64_t ts_ns, const uint8_t *frame, size_t len);
/* Validate against a, then keep: 0 kept, 1 rejected (counted), -ENOSPC dropped (counted). */
int replay_buf_add_checked(struct replay_buf *b, const struct replay_addrs *a, uint64_t ts_ns,
                           const uint8_t *frame, size_t len);
/* Append every frame of src (in order) to dst, with dst's limit; src's drop counts add up. */
int replay_buf_append(struct replay_buf *dst, const struct replay_buf *src);
static inline const uint8_t *replay_buf_frame(const struct replay_buf *b, size_t i)
{
    return b->data + b->recs[i].off;
}

/* Classic pcap (nanosecond magic, LINKTYPE_ETHERNET, snaplen REPLAY_MAX_FRAME) of b's frames.
 * *out is malloc'd (for bundle_add_buffer). */
int replay_pcap_encode(const struct replay_buf *b, uint8_t **out, size_t *out_len);
/* Atomic file write of the same (write_file_atomic, mode 0600). */
int replay_pcap_write(const struct replay_buf *b, const char *path);
/* Parse pcap bytes (untrusted) and append the frames to b, up to b's limit (the rest counted
 * as dropped). Accepts both byte orders and the microsecond and nanosecond magics,
 * LINKTYPE_ETHERNET only; every record must be whole (incl_len == orig_len), within the
 * snaplen and REPLAY_MAX_FRAME, with a valid timestamp. With a non-NULL a, frames that fail
 * replay_validate_frame are skipped and counted as rejected. Anything malformed: -EBADMSG with
 * a log line saying what and where, and b keeps only what it had before. */
int replay_pcap_parse(const uint8_t *data, size_t len, const struct replay_addrs *a,
                      struct replay_buf *b);
/* Read a pcap file, refusing files larger than b's limit allows (-EFBIG). */
int replay_pcap_read(const char *path, const struct replay_addrs *a, struct replay_buf *b);

/* Parse one datagram from the nflog socket (a run of netlink messages; untrusted lengths all
 * checked) and keep the frames it carries in b, validated against a. Frames logged at a netdev
 * egress hook are whole Ethernet frames; bridge-family ones are rebuilt from NFULA_L2HDR and
 * the payload; IPv4/IPv6 ones (the hold tables) get an Ethernet header towards the MAC of
 * their destination IP (source 00:00:00:00:00:00: the tap's MAC is filled in at replay), with
 * the TTL/hop limit lowered by one as forwarding would have done. A TCP/UDP checksum left to
 * offload (the field holds the pseudo-header sum) is completed. Returns the number of frames
 * seen (kept or not) or -EBADMSG at the first malformed message (the frames of the messages
 * before it are kept: each message is independent). */
int replay_nflog_parse(const uint8_t *buf, size_t len, const struct replay_addrs *a,
                       struct replay_buf *b);

/* The nflog listener of one domain. */
struct replay_capture {
    int fd;
    uint16_t group;
    struct replay_addrs addrs;
    struct replay_buf buf; /* guarded by lock while the thread runs */
    uint64_t lost_events;  /* ENOBUFS: the kernel dropped an unknown number of frames */
    uint64_t seen;         /* frames the kernel handed us */
    pthread_mutex_t lock;
    pthread_t thread;
    bool thread_running;
    int stop_fd;    /* eventfd telling the thread to drain and exit */
    uint8_t *rxbuf; /* one datagram */
    size_t rxlen;
};

/* Derive a group from the domain name (stable, in [REPLAY_GROUP_BASE, +REPLAY_GROUP_SPAN)). */
#define REPLAY_GROUP_BASE 0x4e00
#define REPLAY_GROUP_SPAN 0x1000
uint16_t replay_group_for(const char *domain);

/* Open a NETLINK_NETFILTER socket in the current network namespace and bind nflog group
 * (copy-packet mode, whole frames, one message per frame, a large receive buffer). group 0:
 * replay_group_for(domain), then the next free ones when taken (-EBUSY from the kernel means
 * another listener has it). c->group says which. limit as replay_buf_init. */
int replay_capture_open(struct replay_capture *c, const char *domain, uint16_t group,
                        const struct replay_addrs *a, size_t limit);
/* Read what is queued (timeout_ms: -1 wait, 0 none) and keep it. Frames seen, or -errno.
 * For an event loop (poll c->fd); do not mix with replay_capture_start(). */
int replay_capture_poll(struct replay_capture *c, int timeout_ms);
/* Drain in a thread of its own until replay_capture_stop(), which drains what the kernel has
 * already queued (call it after the rules are gone) and joins. */
int replay_capture_start(struct replay_capture *c);
int replay_capture_stop(struct replay_capture *c);
/* Stop if running, unbind, close, free the buffer. Safe on a zeroed or half-opened struct. */
void replay_capture_close(struct replay_capture *c);

/* Replay into a tap (after the gate lifted; the egress hook would drop them otherwise). A tap
 * queues at most 500 frames for its reader (QEMU) and silently drops beyond, so an unpaced
 * burst of thousands loses most of them (bench/replay); the defaults (o == NULL) pace it. */
#define REPLAY_DEFAULT_BURST   64
#define REPLAY_DEFAULT_PACE_US 1000
#define REPLAY_MAX_PACE_US     32000
struct replay_send_opts {
    uint32_t burst;   /* frames per burst (0: all at once, unpaced) */
    uint32_t pace_us; /* pause between bursts */
    bool adaptive;    /* double the pause (up to REPLAY_MAX_PACE_US) whenever the tap's
                         tx_dropped grew during a burst: the reader is slower than us */
};
struct replay_send_stats {
    uint64_t sent, sent_bytes;
    uint64_t other;       /* for a MAC not given (another tap of the domain, or a stranger) */
    uint64_t refused;     /* failed validation */
    uint64_t errors;      /* send() failed */
    uint64_t matched;     /* frames of the buffer for this tap's MAC (sent or not) */
    uint64_t segmented;   /* super-frames over the tap's MTU split by replay_segment() */
    uint64_t segments;    /* the segments they became (counted in sent when sent) */
    uint64_t oversize;    /* over the MTU and not splittable TCP: dropped (the peer resends) */
    uint64_t tap_dropped; /* the tap's tx_dropped grew by this much while replaying (its queue
                             overflowed: the guest did not read fast enough) */
    uint64_t duration_ns;
};
/* Send, in order, every frame of b whose destination MAC is in a->macs and that validates
 * against a, through an AF_PACKET socket bound to tap. A frame with an all-zero source MAC
 * (rebuilt from layer 3) gets the tap's MAC. A frame whose IP packet is longer than the tap's
 * MTU (SIOCGIFMTU) is split with replay_segment() and each segment validated again; one that
 * cannot be split is dropped and counted (oversize). 0 (stats say how many went) or -errno. */
int replay_send(const struct replay_buf *b, const char *tap, const struct replay_addrs *a,
                const struct replay_send_opts *o, struct replay_send_stats *st);

/* GSO/GRO super-frames. The tap's egress hook sees a peer's TSO or a forwarded GRO train before
 * it is segmented, so a held frame's IP packet may be longer than the tap's MTU, and AF_PACKET
 * refuses to send those (EMSGSIZE). replay_segment() splits a TCP one (IPv4 without fragments,
 * IPv6 with TCP right after the fixed header; untagged) into packets of at most mtu bytes:
 * payload chunks of MSS = mtu - IP header - TCP header (options repeated on every segment),
 * sequence numbers advanced, ack/window/options kept, FIN and PSH only on the last segment, CWR
 * only on the first, URG while the urgent pointer lies ahead, the IPv4 ID incremented per
 * segment, and lengths, IPv4 header checksum and TCP checksum computed afresh. The super-frame's
 * own checksums must be right (the TCP one complete or left to offload) so that a corrupt frame
 * is never turned into valid segments. emit gets each segment in order (the bytes are valid
 * during the call only) and may stop the split with a negative return, which is passed on.
 * Returns the number of segments, 0 when the packet fits in mtu (emit not called),
 * -EPROTONOSUPPORT when it does not fit and is not a TCP packet that can be split, -EBADMSG for
 * malformed headers or a wrong checksum, -EINVAL when mtu leaves no room for a payload byte. */
typedef int (*replay_seg_emit_fn)(void *ud, const uint8_t *frame, size_t len);
int replay_segment(const uint8_t *frame, size_t len, unsigned mtu, replay_seg_emit_fn emit,
                   void *ud);

/* One tap of the domain with the MAC of the NIC on it (domain_info.ifaces[].tap/.mac). */
struct replay_tap {
    char name[16];
    uint8_t mac[REPLAY_ETH_ALEN];
};
/* Fill t from strings: -EINVAL for a bad tap name or MAC. */
int replay_tap_set(struct replay_tap *t, const char *tap, const char *mac);
/* replay_send() on every tap, each with its own MAC and all of a's IPs (a's MACs are not
 * used). total sums the taps; total->other counts frames no tap took. 0 when every tap could
 * be sent on, else the first error (the other taps are still tried). */
int replay_send_taps(const struct replay_buf *b, const struct replay_tap *taps, size_t n_taps,
                     const struct replay_addrs *a, const struct replay_send_opts *o,
                     struct replay_send_stats *total);

/* The whole gate-window flow for one domain, for the transaction: four calls.
 *   gate_install(domain, taps)            (the transaction, as before)
 *   replay_session_begin(&s, ...)         capture on every tap; warning-only on failure
 *   ... freeze, save / resume ...
 *   gate_lift(domain); replay_session_stop(&s)
 *   stop mode: replay_pcap_encode(&s.cap.buf, ...) -> bundle_add_buffer(REPLAY_PCAP_NAME)
 *   after the thaw: replay_session_replay(&s, prior, image, NULL, &st)
 *   replay_session_close(&s)              always (safe on a zeroed struct) */
struct replay_session {
    char domain[256];
    struct replay_tap taps[16];
    size_t n_taps;
    struct replay_capture cap;
    bool capturing;
    /* A restore: the frames of the stop-mode outage, handed over by the holder (host/hold.h)
     * after replay_session_begin(); replayed after prior and before the session's own. */
    struct replay_buf outage;
};
/* Open the capture (frames for the taps' MACs, any IP: the image is not known yet) and add the
 * capture rule to the installed gate. limit 0: the default. On failure s is left closed. */
int replay_session_begin(struct replay_session *s, const char *domain,
                         const struct replay_tap *taps, size_t n_taps, size_t limit);
/* After gate_lift(): drain what the kernel queued and end the capture (s->cap.buf keeps the
 * frames). A session never begun: 0. */
int replay_session_stop(struct replay_session *s);
/* Replay prior (frames held earlier, e.g. the bundle's held.pcap read with no addresses; may
 * be NULL), then s->outage, then the session's frames, in that order (the order they were
 * captured in) and under the session's bound, on the taps
 * by destination MAC, each checked against the taps' MACs and the addresses of image's
 * connections (replay_addrs_add_image). An image with no usable address replays nothing
 * (-ENOENT). taps: the session's; a session never begun can still replay prior when given
 * taps through replay_session_set_taps(). */
int replay_session_replay(struct replay_session *s, const struct replay_buf *prior,
                          struct json_object *image, const struct replay_send_opts *o,
                          struct replay_send_stats *st);
/* For a restore that only replays a bundle's frames: set the taps without capturing. */
int replay_session_set_taps(struct replay_session *s, const char *domain,
                            const struct replay_tap *taps, size_t n_taps);
void replay_session_close(struct replay_session *s);

/* Stop mode: while the VM (and its tap) is down, frames for it still reach this namespace.
 * Install (one transaction, idempotent) an `inet` table whose prerouting chain does
 * `ip daddr {IPs} log group G drop` (and ip6), and a `bridge` table whose prerouting chain does
 * `ether daddr {MACs} log group G drop`, named gate_table_name(domain) + "_hold". With
 * REPLAY_HOLD_PASS the rules log but let the frame go on (the kernel then answers with ICMP
 * unreachable as it would without netckpt). A capture must be listening on G (else the frames
 * are only dropped). */
#define REPLAY_HOLD_PASS (1u << 0)
/* The tables carry nft's owner flag: they belong to the netlink socket of the nft context that
 * made them, only it may change them, and the kernel removes them when it closes (the process
 * exits or is killed). Only with replay_hold_forward_begin_nft() and a context that lives as
 * long as the hold (host/hold.h). */
#define REPLAY_HOLD_OWNED (1u << 1)
int replay_hold_forward_begin(const char *domain, uint16_t group, const struct replay_addrs *a,
                              unsigned flags);
struct nft_ctx;
int replay_hold_forward_begin_nft(struct nft_ctx *nft, const char *domain, uint16_t group,
                                  const struct replay_addrs *a, unsigned flags);
/* Remove both tables (one transaction). 1 removed, 0 none, -EPERM when another live process
 * owns them (REPLAY_HOLD_OWNED), -errno. The _nft form runs in nft (the owner's context). */
int replay_hold_forward_end(const char *domain);
int replay_hold_forward_end_nft(struct nft_ctx *nft, const char *domain);
