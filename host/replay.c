/* host/replay.c: see replay.h and docs/replay.md. Every length that comes from the kernel, a
 * pcap file or a frame is checked before it is used; nothing here trusts a byte. */
#include "host/replay.h"
#include "host/gate.h"
#include "common/inet-csum.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <linux/if_packet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <nftables/libnftables.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#define ETH_HLEN_      14
#define ETHTYPE_IPV4   0x0800
#define ETHTYPE_IPV6   0x86dd
#define ETHTYPE_8021Q  0x8100
#define ETHTYPE_8021AD 0x88a8
#define ETHTYPE_QINQ   0x9100

#define PCAP_MAGIC_US          0xa1b2c3d4u
#define PCAP_MAGIC_NS          0xa1b23c4du
#define PCAP_LINKTYPE_ETHERNET 1u
#define PCAP_MAX_SNAPLEN       262144u

/* The socket's receive buffer: nflog sends one skb per frame, whose truesize is several KiB,
 * so a burst needs room while the drain thread catches up. */
#define CAPTURE_RCVBUF (32 << 20)
#define CAPTURE_RXBUF  (256 << 10)
/* How many groups past the derived one replay_capture_open() tries. */
#define CAPTURE_GROUP_TRIES 16

/* ---- addresses and validation ------------------------------------------------------------ */

int replay_parse_mac(const char *s, uint8_t out[REPLAY_ETH_ALEN])
{
    if (!s || strlen(s) != 17)
        return -EINVAL;
    for (int i = 0; i < REPLAY_ETH_ALEN; i++) {
        const char *p = s + 3 * i;
        if (i < 5 && p[2] != ':')
            return -EINVAL;
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            char ch = p[k];
            unsigned d;
            if (ch >= '0' && ch <= '9')
                d = (unsigned)(ch - '0');
            else if (ch >= 'a' && ch <= 'f')
                d = (unsigned)(ch - 'a' + 10);
            else if (ch >= 'A' && ch <= 'F')
                d = (unsigned)(ch - 'A' + 10);
            else
                return -EINVAL;
            v = v * 16 + d;
        }
        out[i] = (uint8_t)v;
    }
    return 0;
}

int replay_addrs_add_mac(struct replay_addrs *a, const char *mac)
{
    uint8_t m[REPLAY_ETH_ALEN];
    if (!a || replay_parse_mac(mac, m) < 0)
        return -EINVAL;
    if (m[0] & 1) /* a group address is never a NIC's own */
        return -EINVAL;
    for (size_t i = 0; i < a->n_macs; i++)
        if (memcmp(a->macs[i], m, REPLAY_ETH_ALEN) == 0)
            return 0;
    if (a->n_macs >= REPLAY_MAX_MACS)
        return -E2BIG;
    memcpy(a->macs[a->n_macs++], m, REPLAY_ETH_ALEN);
    return 0;
}

int replay_addrs_add_ip(struct replay_addrs *a, const char *ip, int mac_idx)
{
    if (!a || !ip)
        return -EINVAL;
    struct replay_ip x = {.mac_idx = mac_idx < 0 ? -1 : mac_idx};
    if (inet_pton(AF_INET, ip, &x.v4) == 1)
        x.family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &x.v6) == 1)
        x.family = AF_INET6;
    else
        return -EINVAL;
    for (size_t i = 0; i < a->n_ips; i++) {
        const struct replay_ip *y = &a->ips[i];
        if (y->family == x.family &&
            (x.family == AF_INET ? memcmp(&y->v4, &x.v4, 4) : memcmp(&y->v6, &x.v6, 16)) == 0)
            return 0;
    }
    if (a->n_ips >= REPLAY_MAX_IPS)
        return -E2BIG;
    a->ips[a->n_ips++] = x;
    return 0;
}

/* The guest address of one image endpoint, unless wildcard or loopback. */
static int add_image_addr(struct replay_addrs *a, const char *s)
{
    struct in6_addr v6;
    struct in_addr v4;
    char buf[INET_ADDRSTRLEN];
    if (inet_pton(AF_INET, s, &v4) == 1) {
        uint32_t h = ntohl(v4.s_addr);
        if (h == 0 || (h >> 24) == 127)
            return 0;
    } else if (inet_pton(AF_INET6, s, &v6) == 1) {
        if (IN6_IS_ADDR_UNSPECIFIED(&v6) || IN6_IS_ADDR_LOOPBACK(&v6))
            return 0;
        if (IN6_IS_ADDR_V4MAPPED(&v6)) {
            if (!inet_ntop(AF_INET, &v6.s6_addr[12], buf, sizeof(buf)))
                return -EINVAL;
            return add_image_addr(a, buf);
        }
    } else {
        return -EINVAL;
    }
    size_t before = a->n_ips;
    int r = replay_addrs_add_ip(a, s, -1);
    if (r < 0)
        return r;
    return a->n_ips > before;
}

int replay_addrs_add_image(struct replay_addrs *a, struct json_object *image)
{
    json_object *conns;
    if (!a || !image || !json_object_object_get_ex(image, "connections", &conns) ||
        !json_object_is_type(conns, json_type_array))
        return -EINVAL;
    int added = 0;
    size_t n = json_object_array_length(conns);
    for (size_t i = 0; i < n; i++) {
        json_object *c = json_object_array_get_idx(conns, i), *local, *addr;
        if (!json_object_object_get_ex(c, "local", &local) ||
            !json_object_object_get_ex(local, "addr", &addr) ||
            !json_object_is_type(addr, json_type_string))
            return -EINVAL;
        int r = add_image_addr(a, json_object_get_string(addr));
        if (r < 0)
            return r;
        added += r;
    }
    return added;
}

const char *replay_verdict_name(enum replay_verdict v)
{
    switch (v) {
    case REPLAY_OK:
        return "ok";
    case REPLAY_TRUNCATED:
        return "truncated";
    case REPLAY_TOO_BIG:
        return "too-big";
    case REPLAY_BAD_MAC:
        return "not-the-domain-mac";
    case REPLAY_VLAN:
        return "vlan-tagged";
    case REPLAY_BAD_ETHERTYPE:
        return "not-ip";
    case REPLAY_BAD_IP_HDR:
        return "bad-ip-header";
    case REPLAY_BAD_IP:
        return "not-the-domain-ip";
    }
    return "?";
}

static int mac_index(const struct replay_addrs *a, const uint8_t *mac)
{
    for (size_t i = 0; i < a->n_macs; i++)
        if (memcmp(a->macs[i], mac, REPLAY_ETH_ALEN) == 0)
            return (int)i;
    return -1;
}

/* The entry of a->ips holding this address, or NULL. */
static const struct replay_ip *ip_lookup(const struct replay_addrs *a, int family,
                                         const uint8_t *addr)
{
    for (size_t i = 0; i < a->n_ips; i++) {
        const struct replay_ip *y = &a->ips[i];
        if (y->family != family)
            continue;
        if (family == AF_INET ? memcmp(&y->v4, addr, 4) == 0 : memcmp(&y->v6, addr, 16) == 0)
            return y;
    }
    return NULL;
}

/* Checks of an L3 packet (after the Ethernet header). */
static enum replay_verdict validate_l3(const struct replay_addrs *a, uint16_t type,
                                       const uint8_t *p, size_t len)
{
    if (type == ETHTYPE_IPV4) {
        if (len < 20)
            return REPLAY_TRUNCATED;
        if ((p[0] >> 4) != 4)
            return REPLAY_BAD_IP_HDR;
        size_t ihl = (size_t)(p[0] & 0x0f) * 4, tot = get_be16(p + 2);
        if (ihl < 20 || tot < ihl)
            return REPLAY_BAD_IP_HDR;
        if (ihl > len || tot > len) /* Ethernet padding after tot is fine */
            return REPLAY_TRUNCATED;
        return a->any_ip || ip_lookup(a, AF_INET, p + 16) ? REPLAY_OK : REPLAY_BAD_IP;
    }
    if (type == ETHTYPE_IPV6) {
        if (len < 40)
            return REPLAY_TRUNCATED;
        if ((p[0] >> 4) != 6)
            return REPLAY_BAD_IP_HDR;
        size_t plen = get_be16(p + 4);
        if (plen == 0) /* jumbogram or garbage: neither is ours to replay */
            return REPLAY_BAD_IP_HDR;
        if (40 + plen > len)
            return REPLAY_TRUNCATED;
        return a->any_ip || ip_lookup(a, AF_INET6, p + 24) ? REPLAY_OK : REPLAY_BAD_IP;
    }
    if (type == ETHTYPE_8021Q || type == ETHTYPE_8021AD || type == ETHTYPE_QINQ)
        return REPLAY_VLAN;
    return REPLAY_BAD_ETHERTYPE;
}

enum replay_verdict replay_validate_frame(const struct replay_addrs *a, const uint8_t *frame,
                                          size_t len)
{
    if (!a || !frame || len < ETH_HLEN_)
        return REPLAY_TRUNCATED;
    if (len > REPLAY_MAX_FRAME)
        return REPLAY_TOO_BIG;
    if ((frame[0] & 1) || mac_index(a, frame) < 0)
        return REPLAY_BAD_MAC;
    return validate_l3(a, get_be16(frame + 12), frame + ETH_HLEN_, len - ETH_HLEN_);
}

/* ---- the buffer -------------------------------------------------------------------------- */

int replay_buf_init(struct replay_buf *b, size_t limit)
{
    if (!b)
        return -EINVAL;
    if (limit == 0)
        limit = REPLAY_DEFAULT_LIMIT;
    if (limit > REPLAY_MAX_LIMIT)
        return -EINVAL;
    *b = (struct replay_buf){.limit = limit};
    return 0;
}

void replay_buf_free(struct replay_buf *b)
{
    if (!b)
        return;
    free(b->data);
    free(b->recs);
    size_t limit = b->limit;
    *b = (struct replay_buf){.limit = limit};
}

int replay_buf_add(struct replay_buf *b, uint64_t ts_ns, const uint8_t *frame, size_t len)
{
    if (!b || !frame || len < REPLAY_MIN_FRAME || len > REPLAY_MAX_FRAME)
        return -EINVAL;
    if (len > b->limit - b->used) {
        b->dropped_pkts++;
        b->dropped_bytes += len;
        return -ENOSPC;
    }
    if (b->used + len > b->alloc) {
        size_t na = b->alloc ? b->alloc : 64 * 1024;
        while (na < b->used + len)
            na *= 2;
        if (na > b->limit)
            na = b->limit;
        uint8_t *nd = realloc(b->data, na);
        if (!nd)
            return -ENOMEM;
        b->data = nd;
        b->alloc = na;
    }
    if (b->n == b->recs_alloc) {
        size_t nr = b->recs_alloc ? b->recs_alloc * 2 : 256;
        struct replay_rec *r = reallocarray(b->recs, nr, sizeof(*r));
        if (!r)
            return -ENOMEM;
        b->recs = r;
        b->recs_alloc = nr;
    }
    memcpy(b->data + b->used, frame, len);
    b->recs[b->n++] = (struct replay_rec){.ts_ns = ts_ns, .off = b->used, .len = (uint32_t)len};
    b->used += len;
    return 0;
}

int replay_buf_add_checked(struct replay_buf *b, const struct replay_addrs *a, uint64_t ts_ns,
                           const uint8_t *frame, size_t len)
{
    enum replay_verdict v = replay_validate_frame(a, frame, len);
    if (v != REPLAY_OK) {
        log_debug("replay: not keeping a %zu-byte frame: %s", len, replay_verdict_name(v));
        b->rejected_pkts++;
        return 1;
    }
    return replay_buf_add(b, ts_ns, frame, len);
}

int replay_buf_append(struct replay_buf *dst, const struct replay_buf *src)
{
    if (!dst || !src)
        return -EINVAL;
    for (size_t i = 0; i < src->n; i++) {
        int r = replay_buf_add(dst, src->recs[i].ts_ns, replay_buf_frame(src, i), src->recs[i].len);
        if (r < 0 && r != -ENOSPC)
            return r;
    }
    dst->dropped_pkts += src->dropped_pkts;
    dst->dropped_bytes += src->dropped_bytes;
    dst->rejected_pkts += src->rejected_pkts;
    return 0;
}

/* ---- pcap -------------------------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4); /* host order: the magic tells readers which */
}

static void put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

int replay_pcap_encode(const struct replay_buf *b, uint8_t **out, size_t *out_len)
{
    if (!b || !out || !out_len)
        return -EINVAL;
    size_t total = REPLAY_PCAP_HDR + b->used + b->n * REPLAY_PCAP_REC_HDR;
    uint8_t *p = malloc(total);
    if (!p)
        return -ENOMEM;
    put32(p, PCAP_MAGIC_NS);
    put16(p + 4, 2);
    put16(p + 6, 4);
    put32(p + 8, 0);  /* thiszone */
    put32(p + 12, 0); /* sigfigs */
    put32(p + 16, REPLAY_MAX_FRAME);
    put32(p + 20, PCAP_LINKTYPE_ETHERNET);
    size_t o = REPLAY_PCAP_HDR;
    for (size_t i = 0; i < b->n; i++) {
        const struct replay_rec *r = &b->recs[i];
        put32(p + o, (uint32_t)(r->ts_ns / 1000000000u));
        put32(p + o + 4, (uint32_t)(r->ts_ns % 1000000000u));
        put32(p + o + 8, r->len);
        put32(p + o + 12, r->len);
        memcpy(p + o + 16, b->data + r->off, r->len);
        o += REPLAY_PCAP_REC_HDR + r->len;
    }
    *out = p;
    *out_len = o;
    return 0;
}

int replay_pcap_write(const struct replay_buf *b, const char *path)
{
    _cleanup_free_ uint8_t *p = NULL;
    size_t len;
    int r = replay_pcap_encode(b, &p, &len);
    if (r < 0)
        return r;
    return write_file_atomic(path, p, len, 0600);
}

static uint32_t get32(const uint8_t *p, bool swap)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return swap ? __builtin_bswap32(v) : v;
}

static uint16_t get16(const uint8_t *p, bool swap)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return swap ? __builtin_bswap16(v) : v;
}

int replay_pcap_parse(const uint8_t *data, size_t len, const struct replay_addrs *a,
                      struct replay_buf *b)
{
    if (!data || !b)
        return -EINVAL;
    if (len < REPLAY_PCAP_HDR) {
        log_err("replay: pcap: %zu bytes, shorter than the 24-byte file header", len);
        return -EBADMSG;
    }
    uint32_t magic;
    memcpy(&magic, data, 4);
    bool swap, nsec;
    if (magic == PCAP_MAGIC_US || magic == PCAP_MAGIC_NS)
        swap = false;
    else if (__builtin_bswap32(magic) == PCAP_MAGIC_US || __builtin_bswap32(magic) == PCAP_MAGIC_NS)
        swap = true;
    else {
        log_err("replay: pcap: bad magic 0x%08x (not a classic pcap file)", magic);
        return -EBADMSG;
    }
    nsec = (swap ? __builtin_bswap32(magic) : magic) == PCAP_MAGIC_NS;
    uint16_t vmaj = get16(data + 4, swap), vmin = get16(data + 6, swap);
    uint32_t snaplen = get32(data + 16, swap), link = get32(data + 20, swap);
    if (vmaj != 2 || vmin != 4) {
        log_err("replay: pcap: version %u.%u, want 2.4", vmaj, vmin);
        return -EBADMSG;
    }
    if (link != PCAP_LINKTYPE_ETHERNET) {
        log_err("replay: pcap: link type %u, want 1 (Ethernet)", link);
        return -EBADMSG;
    }
    if (snaplen == 0 || snaplen > PCAP_MAX_SNAPLEN) {
        log_err("replay: pcap: snaplen %u out of range", snaplen);
        return -EBADMSG;
    }

    /* Roll back to this on error: a refused file adds nothing. */
    size_t n0 = b->n, used0 = b->used;
    uint64_t dp0 = b->dropped_pkts, db0 = b->dropped_bytes, rj0 = b->rejected_pkts;
    size_t o = REPLAY_PCAP_HDR;
    int r = 0;
    while (o < len) {
        if (len - o < REPLAY_PCAP_REC_HDR) {
            log_err("replay: pcap: truncated record header at offset %zu", o);
            r = -EBADMSG;
            break;
        }
        uint32_t sec = get32(data + o, swap), frac = get32(data + o + 4, swap);
        uint32_t incl = get32(data + o + 8, swap), orig = get32(data + o + 12, swap);
        if (frac >= (nsec ? 1000000000u : 1000000u)) {
            log_err("replay: pcap: record at offset %zu: bad timestamp fraction %u", o, frac);
            r = -EBADMSG;
            break;
        }
        if (incl != orig) {
            log_err("replay: pcap: record at offset %zu holds %u of %u bytes (a cut frame "
                    "cannot be replayed)",
                    o, incl, orig);
            r = -EBADMSG;
            break;
        }
        if (incl < REPLAY_MIN_FRAME || incl > REPLAY_MAX_FRAME || incl > snaplen) {
            log_err("replay: pcap: record at offset %zu: length %u out of range", o, incl);
            r = -EBADMSG;
            break;
        }
        if (len - o - REPLAY_PCAP_REC_HDR < incl) {
            log_err("replay: pcap: record at offset %zu: %u bytes, file ends first", o, incl);
            r = -EBADMSG;
            break;
        }
        const uint8_t *f = data + o + REPLAY_PCAP_REC_HDR;
        uint64_t ts = (uint64_t)sec * 1000000000u + (nsec ? frac : (uint64_t)frac * 1000u);
        int k = a ? replay_buf_add_checked(b, a, ts, f, incl) : replay_buf_add(b, ts, f, incl);
        if (k < 0 && k != -ENOSPC) {
            r = k;
            break;
        }
        o += REPLAY_PCAP_REC_HDR + incl;
    }
    if (r < 0) {
        b->n = n0;
        b->used = used0;
        b->dropped_pkts = dp0;
        b->dropped_bytes = db0;
        b->rejected_pkts = rj0;
    }
    return r;
}

int replay_pcap_read(const char *path, const struct replay_addrs *a, struct replay_buf *b)
{
    if (!path || !b)
        return -EINVAL;
    /* The largest file whose frames could all fit in the limit. */
    size_t max =
        REPLAY_PCAP_HDR + b->limit + (b->limit / REPLAY_MIN_FRAME + 1) * REPLAY_PCAP_REC_HDR;
    _cleanup_free_ char *text = NULL;
    size_t len;
    int r = read_file(path, max, &text, &len);
    if (r == -EFBIG || r == -E2BIG) {
        log_err("replay: %s is larger than %zu bytes (limit %zu): refused", path, max, b->limit);
        return -EFBIG;
    }
    if (r < 0)
        return r;
    return replay_pcap_parse((const uint8_t *)text, len, a, b);
}

/* ---- nflog ------------------------------------------------------------------------------- */

/* A TCP/UDP checksum the sender left to offload (CHECKSUM_PARTIAL: the field holds only the
 * folded pseudo-header sum, as for traffic from a local veth, a bridged VM or the host). The
 * frame was captured before any device finished it, and AF_PACKET sends it as it is, so the
 * guest would drop it: complete it. A checksum that is simply wrong is left wrong (the guest
 * drops that frame as it would have). The frame must already be valid (validate_l3). */
static void complete_partial_csum(uint8_t *f, size_t len)
{
    uint16_t type = get_be16(f + 12);
    uint8_t *ip = f + ETH_HLEN_;
    uint8_t proto;
    const uint8_t *src, *dst;
    size_t alen, l4off, l4len;
    if (type == ETHTYPE_IPV4) {
        if (get_be16(ip + 6) & 0x3fff) /* a fragment: the checksum covers the whole datagram */
            return;
        proto = ip[9];
        alen = 4;
        src = ip + 12;
        dst = ip + 16;
        l4off = (size_t)(ip[0] & 0x0f) * 4;
        l4len = get_be16(ip + 2) - l4off;
    } else {
        proto = ip[6]; /* only when TCP/UDP follows the fixed header directly */
        alen = 16;
        src = ip + 8;
        dst = ip + 24;
        l4off = 40;
        l4len = get_be16(ip + 4);
    }
    size_t coff = proto == 6 ? 16 : proto == 17 ? 6 : 0;
    if (!coff || l4len < coff + 2 || ETH_HLEN_ + l4off + l4len > len)
        return;
    uint8_t *l4 = ip + l4off;
    uint16_t field = get_be16(l4 + coff);
    if (proto == 17 && type == ETHTYPE_IPV4 && field == 0) /* no checksum */
        return;
    uint32_t pseudo = inet_pseudo_sum(src, dst, alen, proto, (uint32_t)l4len);
    if (inet_fold(inet_sum(l4, l4len, pseudo)) == 0xffff) /* already complete and right */
        return;
    if (field != inet_fold(pseudo))
        return;
    l4[coff] = l4[coff + 1] = 0;
    uint16_t c = inet_csum_finish(inet_sum(l4, l4len, pseudo));
    if (proto == 17 && c == 0)
        c = 0xffff;
    put_be16(l4 + coff, c);
}

/* Keep a frame from the kernel: validated, and with an offloaded checksum completed. */
static void keep_frame(const struct replay_addrs *a, struct replay_buf *b, uint64_t ts, uint8_t *f,
                       size_t len)
{
    if (replay_validate_frame(a, f, len) == REPLAY_OK)
        complete_partial_csum(f, len);
    replay_buf_add_checked(b, a, ts, f, len);
}

/* A frame for an L3 packet logged on the hold path: the destination IP's MAC, a zero source
 * (filled in at replay with the tap's), TTL/hop limit lowered as forwarding would have. */
static void keep_l3(const struct replay_addrs *a, struct replay_buf *b, uint64_t ts, int family,
                    const uint8_t *pkt, size_t len, uint8_t *scratch)
{
    uint16_t type = family == AF_INET ? ETHTYPE_IPV4 : ETHTYPE_IPV6;
    const struct replay_ip *ip = NULL;
    if (family == AF_INET && len >= 20)
        ip = ip_lookup(a, AF_INET, pkt + 16);
    else if (family == AF_INET6 && len >= 40)
        ip = ip_lookup(a, AF_INET6, pkt + 24);
    if ((!ip && !a->any_ip) || a->n_macs == 0 || len > REPLAY_MAX_FRAME - ETH_HLEN_) {
        b->rejected_pkts++;
        return;
    }
    size_t mi = ip && ip->mac_idx >= 0 && (size_t)ip->mac_idx < a->n_macs ? (size_t)ip->mac_idx : 0;
    memcpy(scratch, a->macs[mi], REPLAY_ETH_ALEN);
    memset(scratch + 6, 0, REPLAY_ETH_ALEN);
    scratch[12] = (uint8_t)(type >> 8);
    scratch[13] = (uint8_t)type;
    memcpy(scratch + ETH_HLEN_, pkt, len);
    uint8_t *l3 = scratch + ETH_HLEN_;
    if (validate_l3(a, type, l3, len) == REPLAY_OK) {
        if (family == AF_INET && l3[8] > 1) {
            size_t ihl = (size_t)(l3[0] & 0x0f) * 4;
            l3[8]--;
            l3[10] = l3[11] = 0;
            put_be16(l3 + 10, inet_csum(l3, ihl));
        } else if (family == AF_INET6 && l3[7] > 1) {
            l3[7]--;
        }
    }
    keep_frame(a, b, ts, scratch, ETH_HLEN_ + len);
}

struct nfattrs {
    const uint8_t *payload, *l2hdr;
    size_t payload_len, l2hdr_len;
    bool has_hdr, has_vlan, has_ts;
    uint8_t hook;
    uint64_t ts_ns;
};

static int parse_attrs(const uint8_t *p, size_t len, struct nfattrs *x)
{
    while (len >= sizeof(struct nlattr)) {
        struct nlattr na;
        memcpy(&na, p, sizeof(na));
        if (na.nla_len < sizeof(na) || na.nla_len > len)
            return -EBADMSG;
        const uint8_t *v = p + sizeof(na);
        size_t vl = na.nla_len - sizeof(na);
        switch (na.nla_type & NLA_TYPE_MASK) {
        case NFULA_PACKET_HDR:
            if (vl < sizeof(struct nfulnl_msg_packet_hdr))
                return -EBADMSG;
            x->has_hdr = true;
            x->hook = v[2];
            break;
        case NFULA_TIMESTAMP:
            if (vl < 16)
                return -EBADMSG;
            {
                uint64_t sec = (uint64_t)get_be32(v) << 32 | get_be32(v + 4);
                uint64_t usec = (uint64_t)get_be32(v + 8) << 32 | get_be32(v + 12);
                if (sec < (1ull << 33) && usec < 1000000) {
                    x->ts_ns = sec * 1000000000u + usec * 1000u;
                    x->has_ts = true;
                }
            }
            break;
        case NFULA_PAYLOAD:
            x->payload = v;
            x->payload_len = vl;
            break;
        case NFULA_L2HDR:
            x->l2hdr = v;
            x->l2hdr_len = vl;
            break;
        case NFULA_VLAN:
            x->has_vlan = true;
            break;
        default:
            break;
        }
        size_t step = NLA_ALIGN(na.nla_len);
        if (step >= len)
            break;
        p += step;
        len -= step;
    }
    return 0;
}

static uint64_t realtime_ns(void)
{
    return now_realtime_ns();
}

/* One NFULNL_MSG_PACKET. */
static void handle_packet(const struct replay_addrs *a, struct replay_buf *b, uint8_t family,
                          const struct nfattrs *x, uint8_t *scratch)
{
    uint64_t ts = x->has_ts ? x->ts_ns : realtime_ns();
    if (!x->payload || x->has_vlan) {
        b->rejected_pkts++;
        return;
    }
    switch (family) {
    case NFPROTO_NETDEV:
        /* At the egress hook the skb holds the whole frame. */
        if (x->has_hdr && x->hook == NF_NETDEV_EGRESS && x->payload_len <= REPLAY_MAX_FRAME) {
            memcpy(scratch, x->payload, x->payload_len);
            keep_frame(a, b, ts, scratch, x->payload_len);
        } else {
            b->rejected_pkts++;
        }
        break;
    case NFPROTO_BRIDGE:
        if (!x->l2hdr || x->l2hdr_len != ETH_HLEN_ ||
            x->payload_len > REPLAY_MAX_FRAME - ETH_HLEN_) {
            b->rejected_pkts++;
            break;
        }
        memcpy(scratch, x->l2hdr, ETH_HLEN_);
        memcpy(scratch + ETH_HLEN_, x->payload, x->payload_len);
        keep_frame(a, b, ts, scratch, ETH_HLEN_ + x->payload_len);
        break;
    case NFPROTO_IPV4:
        keep_l3(a, b, ts, AF_INET, x->payload, x->payload_len, scratch);
        break;
    case NFPROTO_IPV6:
        keep_l3(a, b, ts, AF_INET6, x->payload, x->payload_len, scratch);
        break;
    default:
        b->rejected_pkts++;
        break;
    }
}

int replay_nflog_parse(const uint8_t *buf, size_t len, const struct replay_addrs *a,
                       struct replay_buf *b)
{
    if (!buf || !a || !b)
        return -EINVAL;
    _cleanup_free_ uint8_t *scratch = NULL;
    int seen = 0;
    while (len >= sizeof(struct nlmsghdr)) {
        struct nlmsghdr nh;
        memcpy(&nh, buf, sizeof(nh));
        if (nh.nlmsg_len < sizeof(nh) || nh.nlmsg_len > len)
            return -EBADMSG;
        size_t body_len = nh.nlmsg_len - sizeof(nh);
        const uint8_t *body = buf + sizeof(nh);
        if (nh.nlmsg_type == (NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET)) {
            if (body_len < sizeof(struct nfgenmsg))
                return -EBADMSG;
            struct nfgenmsg g;
            memcpy(&g, body, sizeof(g));
            size_t off = NLMSG_ALIGN(sizeof(g));
            struct nfattrs x = {0};
            if (off <= body_len && parse_attrs(body + off, body_len - off, &x) < 0)
                return -EBADMSG;
            if (!scratch && !(scratch = malloc(REPLAY_MAX_FRAME)))
                return -ENOMEM;
            handle_packet(a, b, g.nfgen_family, &x, scratch);
            seen++;
        }
        size_t step = NLMSG_ALIGN(nh.nlmsg_len);
        if (step >= len)
            break;
        buf += step;
        len -= step;
    }
    return seen;
}

uint16_t replay_group_for(const char *domain)
{
    char hex[SHA256_HEX_LEN];
    const char *d = domain ? domain : "";
    sha256_hex(d, strlen(d), hex);
    unsigned v = (unsigned)strtoul((char[5]){hex[0], hex[1], hex[2], hex[3], 0}, NULL, 16);
    return (uint16_t)(REPLAY_GROUP_BASE + v % REPLAY_GROUP_SPAN);
}

/* Send one nflog config request for group and wait for its ack. */
static int nflog_config(int fd, uint16_t group, uint16_t attr, const void *val, size_t vlen)
{
    uint8_t msg[64] = {0};
    struct nlmsghdr *nh = (struct nlmsghdr *)msg;
    size_t len = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg)) + NLA_HDRLEN + NLA_ALIGN(vlen);
    if (len > sizeof(msg))
        return -EINVAL;
    nh->nlmsg_len = (uint32_t)len;
    nh->nlmsg_type = NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_CONFIG;
    nh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    nh->nlmsg_seq = group;
    struct nfgenmsg *g = (struct nfgenmsg *)(msg + NLMSG_HDRLEN);
    g->nfgen_family = AF_UNSPEC;
    g->version = NFNETLINK_V0;
    g->res_id = htons(group);
    struct nlattr *na = (struct nlattr *)(msg + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(*g)));
    na->nla_len = (uint16_t)(NLA_HDRLEN + vlen);
    na->nla_type = attr;
    memcpy((uint8_t *)na + NLA_HDRLEN, val, vlen);
    struct sockaddr_nl k = {.nl_family = AF_NETLINK};
    if (sendto(fd, msg, len, 0, (struct sockaddr *)&k, sizeof(k)) < 0)
        return negative_errno();
    /* The ack; packets for this group cannot arrive before the bind succeeded and the rules
     * pointing at it exist, so anything else here is skipped. */
    for (int tries = 0; tries < 16; tries++) {
        uint8_t rb[4096];
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, 1000); /* the kernel acks at once; never hang on a lost ack */
        if (pr == 0)
            return -ETIMEDOUT;
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            return negative_errno();
        }
        ssize_t n = recv(fd, rb, sizeof(rb), MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return negative_errno();
        }
        size_t left = (size_t)n;
        const uint8_t *p = rb;
        while (left >= sizeof(struct nlmsghdr)) {
            struct nlmsghdr h;
            memcpy(&h, p, sizeof(h));
            if (h.nlmsg_len < sizeof(h) || h.nlmsg_len > left)
                return -EBADMSG;
            if (h.nlmsg_type == NLMSG_ERROR && h.nlmsg_len >= NLMSG_HDRLEN + sizeof(int)) {
                int err;
                memcpy(&err, p + NLMSG_HDRLEN, sizeof(err));
                return err; /* 0 or -errno */
            }
            size_t step = NLMSG_ALIGN(h.nlmsg_len);
            if (step >= left)
                break;
            p += step;
            left -= step;
        }
    }
    return -EPROTO;
}

static int capture_bind(int fd, uint16_t group)
{
    struct nfulnl_msg_config_cmd cmd = {.command = NFULNL_CFG_CMD_BIND};
    int r = nflog_config(fd, group, NFULA_CFG_CMD, &cmd, sizeof(cmd));
    if (r < 0)
        return r;
    struct nfulnl_msg_config_mode mode = {.copy_range = htonl(REPLAY_MAX_FRAME),
                                          .copy_mode = NFULNL_COPY_PACKET};
    if ((r = nflog_config(fd, group, NFULA_CFG_MODE, &mode, sizeof(mode))) < 0)
        return r;
    /* One message per frame: nothing waits in the kernel for a flush timer. */
    uint32_t qthresh = htonl(1);
    return nflog_config(fd, group, NFULA_CFG_QTHRESH, &qthresh, sizeof(qthresh));
}

int replay_capture_open(struct replay_capture *c, const char *domain, uint16_t group,
                        const struct replay_addrs *a, size_t limit)
{
    if (!c || !a)
        return -EINVAL;
    *c = (struct replay_capture){.fd = -1, .stop_fd = -1};
    int r = replay_buf_init(&c->buf, limit);
    if (r < 0)
        return r;
    c->addrs = *a;
    pthread_mutex_init(&c->lock, NULL);
    c->rxlen = CAPTURE_RXBUF;
    c->rxbuf = malloc(c->rxlen);
    if (!c->rxbuf)
        return -ENOMEM;
    c->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    if (c->fd < 0) {
        r = negative_errno();
        log_err("replay: netlink socket: %s", strerror(-r));
        return r;
    }
    int sz = CAPTURE_RCVBUF;
    if (setsockopt(c->fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
        (void)setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    struct sockaddr_nl me = {.nl_family = AF_NETLINK};
    if (bind(c->fd, (struct sockaddr *)&me, sizeof(me)) < 0)
        return negative_errno();

    uint16_t first = group ? group : replay_group_for(domain);
    int tries = group ? 1 : CAPTURE_GROUP_TRIES;
    for (int i = 0; i < tries; i++) {
        uint16_t g = (uint16_t)(first + i);
        if (g == 0)
            continue;
        r = capture_bind(c->fd, g);
        if (r == 0) {
            c->group = g;
            log_debug("replay: listening on nflog group %u", g);
            return 0;
        }
        /* EPERM from nfnetlink_log: the group belongs to another socket. */
        if (r != -EPERM && r != -EBUSY)
            break;
    }
    log_err("replay: cannot bind nflog group %u%s: %s", first, tries > 1 ? " (or the next 15)" : "",
            strerror(-r));
    return r;
}

/* Read one datagram (or nothing when would-block). 1 read, 0 nothing, -errno. */
static int capture_read_one(struct replay_capture *c)
{
    ssize_t n = recv(c->fd, c->rxbuf, c->rxlen, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (errno == EINTR)
            return 1;
        if (errno == ENOBUFS) { /* the kernel dropped some: TCP will retransmit them */
            pthread_mutex_lock(&c->lock);
            c->lost_events++;
            pthread_mutex_unlock(&c->lock);
            return 1;
        }
        return negative_errno();
    }
    pthread_mutex_lock(&c->lock);
    if ((size_t)n > c->rxlen) {
        c->lost_events++;
    } else {
        int k = replay_nflog_parse(c->rxbuf, (size_t)n, &c->addrs, &c->buf);
        if (k > 0)
            c->seen += (uint64_t)k;
        else if (k < 0)
            log_warn("replay: malformed nflog message skipped: %s", strerror(-k));
    }
    pthread_mutex_unlock(&c->lock);
    return 1;
}

static int capture_drain(struct replay_capture *c)
{
    int r;
    while ((r = capture_read_one(c)) > 0)
        ;
    return r;
}

int replay_capture_poll(struct replay_capture *c, int timeout_ms)
{
    if (!c || c->fd < 0)
        return -EINVAL;
    uint64_t before = c->seen;
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno != EINTR)
        return negative_errno();
    r = capture_drain(c);
    if (r < 0)
        return r;
    return (int)(c->seen - before);
}

static void *capture_thread(void *arg)
{
    struct replay_capture *c = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN},
                              {.fd = c->stop_fd, .events = POLLIN}};
        int r = poll(p, 2, -1);
        if (r < 0 && errno != EINTR)
            break;
        if (capture_drain(c) < 0)
            break;
        if (p[1].revents & POLLIN)
            break;
    }
    capture_drain(c); /* what the kernel queued before the rules went away */
    return NULL;
}

int replay_capture_start(struct replay_capture *c)
{
    if (!c || c->fd < 0 || c->thread_running)
        return -EINVAL;
    c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->stop_fd < 0)
        return negative_errno();
    int r = pthread_create(&c->thread, NULL, capture_thread, c);
    if (r != 0) {
        close(c->stop_fd);
        c->stop_fd = -1;
        return -r;
    }
    c->thread_running = true;
    return 0;
}

int replay_capture_stop(struct replay_capture *c)
{
    if (!c)
        return -EINVAL;
    if (!c->thread_running)
        return c->fd >= 0 ? (capture_drain(c) < 0 ? -EIO : 0) : 0;
    uint64_t one = 1;
    if (write(c->stop_fd, &one, sizeof(one)) < 0)
        log_warn("replay: waking the capture thread: %m");
    pthread_join(c->thread, NULL);
    c->thread_running = false;
    close(c->stop_fd);
    c->stop_fd = -1;
    return 0;
}

void replay_capture_close(struct replay_capture *c)
{
    if (!c)
        return;
    if (c->thread_running)
        replay_capture_stop(c);
    if (c->fd >= 0) {
        /* Closing the socket releases its nflog group; no unbind request (whose ack could sit
         * behind a full queue of packets). */
        close(c->fd);
        c->fd = -1;
    }
    if (c->rxbuf) {
        pthread_mutex_destroy(&c->lock);
        free(c->rxbuf);
        c->rxbuf = NULL;
    }
    replay_buf_free(&c->buf);
}

/* ---- software segmentation of super-frames ---------------------------------------------- */

#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_URG 0x20
#define TCP_CWR 0x80

/* The TCP pseudo-header sum of an IP packet (ip: its header) for l4len bytes of TCP. */
static uint32_t tcp_pseudo(const uint8_t *ip, bool v4, size_t l4len)
{
    return v4 ? inet_pseudo_sum(ip + 12, ip + 16, 4, 6, (uint32_t)l4len)
              : inet_pseudo_sum(ip + 8, ip + 24, 16, 6, (uint32_t)l4len);
}

int replay_segment(const uint8_t *f, size_t len, unsigned mtu, replay_seg_emit_fn emit, void *ud)
{
    if (!f || !emit || len < ETH_HLEN_ || len > REPLAY_MAX_FRAME || mtu > REPLAY_MAX_FRAME)
        return -EINVAL;
    uint16_t type = get_be16(f + 12);
    const uint8_t *ip = f + ETH_HLEN_;
    size_t l3len = len - ETH_HLEN_, iphl, pktlen;
    uint8_t proto;
    bool v4 = type == ETHTYPE_IPV4;
    if (v4) {
        if (l3len < 20 || (ip[0] >> 4) != 4)
            return -EBADMSG;
        iphl = (size_t)(ip[0] & 0x0f) * 4;
        pktlen = get_be16(ip + 2);
        if (iphl < 20 || pktlen < iphl || pktlen > l3len)
            return -EBADMSG;
        if (pktlen <= mtu)
            return 0;
        if (inet_csum(ip, iphl) != 0)
            return -EBADMSG;
        if (get_be16(ip + 6) & 0x3fff) /* a fragment: its TCP header may be elsewhere */
            return -EPROTONOSUPPORT;
        proto = ip[9];
    } else if (type == ETHTYPE_IPV6) {
        if (l3len < 40 || (ip[0] >> 4) != 6)
            return -EBADMSG;
        iphl = 40;
        pktlen = 40 + (size_t)get_be16(ip + 4);
        if (pktlen == 40 || pktlen > l3len)
            return -EBADMSG;
        if (pktlen <= mtu)
            return 0;
        proto = ip[6]; /* extension headers are not walked: not splittable here */
    } else {
        return l3len <= mtu ? 0 : -EPROTONOSUPPORT;
    }
    if (proto != 6)
        return -EPROTONOSUPPORT;
    const uint8_t *th = ip + iphl;
    size_t l4len = pktlen - iphl;
    if (l4len < 20)
        return -EBADMSG;
    size_t thl = (size_t)(th[12] >> 4) * 4;
    if (thl < 20 || thl > l4len)
        return -EBADMSG;
    /* Never launder a corrupt frame: the checksum must be complete and right, or the
     * pseudo-header sum a sender left for offload (as complete_partial_csum accepts). */
    uint32_t pseudo = tcp_pseudo(ip, v4, l4len);
    if (inet_fold(inet_sum(th, l4len, pseudo)) != 0xffff && get_be16(th + 16) != inet_fold(pseudo))
        return -EBADMSG;
    if (iphl + thl >= mtu)
        return -EINVAL;
    size_t mss = mtu - iphl - thl, payload = l4len - thl, hdrs = ETH_HLEN_ + iphl + thl;
    _cleanup_free_ uint8_t *seg = malloc(ETH_HLEN_ + mtu);
    if (!seg)
        return -ENOMEM;
    uint32_t seq0 = get_be32(th + 4);
    uint16_t id0 = v4 ? get_be16(ip + 4) : 0, urp = get_be16(th + 18);
    int n = 0;
    for (size_t off = 0; off < payload; off += mss, n++) {
        size_t chunk = payload - off < mss ? payload - off : mss;
        bool last = off + chunk == payload;
        memcpy(seg, f, hdrs);
        memcpy(seg + hdrs, th + thl + off, chunk);
        uint8_t *sip = seg + ETH_HLEN_, *sth = sip + iphl;
        if (v4) {
            put_be16(sip + 2, (uint16_t)(iphl + thl + chunk));
            put_be16(sip + 4, (uint16_t)(id0 + n));
            sip[10] = sip[11] = 0;
            put_be16(sip + 10, inet_csum(sip, iphl));
        } else {
            put_be16(sip + 4, (uint16_t)(thl + chunk));
        }
        put_be32(sth + 4, seq0 + (uint32_t)off);
        uint8_t fl = th[13];
        if (!last)
            fl &= (uint8_t) ~(TCP_FIN | TCP_PSH);
        if (n > 0)
            fl &= (uint8_t)~TCP_CWR;
        if (fl & TCP_URG) { /* the pointer is relative to this segment's first byte */
            if (urp > off) {
                put_be16(sth + 18, (uint16_t)(urp - off));
            } else {
                fl &= (uint8_t)~TCP_URG;
                put_be16(sth + 18, 0);
            }
        }
        sth[13] = fl;
        sth[16] = sth[17] = 0;
        put_be16(sth + 16,
                 inet_csum_finish(inet_sum(sth, thl + chunk, tcp_pseudo(sip, v4, thl + chunk))));
        int r = emit(ud, seg, hdrs + chunk);
        if (r < 0)
            return r;
    }
    return n;
}

/* ---- replay into a tap ------------------------------------------------------------------- */

/* The tap's tx_dropped from this namespace's /proc/net/dev (sysfs may show another one). */
static int tap_tx_dropped(const char *tap, uint64_t *out)
{
    _cleanup_fclose_ FILE *f = fopen("/proc/thread-self/net/dev", "re");
    if (!f)
        return negative_errno();
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = 0;
        char *name = line + strspn(line, " ");
        if (strcmp(name, tap) != 0)
            continue;
        unsigned long long v[16] = {0};
        int n =
            sscanf(colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
                   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11]);
        if (n < 12)
            return -EBADMSG;
        *out = v[11];
        return 0;
    }
    return -ENODEV;
}

/* One replay_send() in progress: the socket, pacing and counts. */
struct sender {
    int fd;
    const char *tap;
    const struct replay_addrs *a;
    struct replay_send_opts opts;
    struct replay_send_stats *st;
    bool have_drops;
    uint64_t last_dropped;
    uint32_t in_burst;
};

/* Send one frame, pausing between bursts. 0 (sent or counted as an error). */
static int send_frame(struct sender *s, const uint8_t *f, size_t len)
{
    if (s->opts.burst && s->in_burst == s->opts.burst) {
        s->in_burst = 0;
        uint64_t now_dropped;
        if (s->opts.adaptive && s->have_drops && tap_tx_dropped(s->tap, &now_dropped) == 0) {
            if (now_dropped > s->last_dropped && s->opts.pace_us < REPLAY_MAX_PACE_US)
                s->opts.pace_us = s->opts.pace_us ? 2 * s->opts.pace_us : 100;
            s->last_dropped = now_dropped;
        }
        if (s->opts.pace_us) {
            struct timespec ts = {.tv_sec = s->opts.pace_us / 1000000,
                                  .tv_nsec = (long)(s->opts.pace_us % 1000000) * 1000};
            while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
        }
    }
    ssize_t n;
    int tries = 0;
    /* A full device queue says ENOBUFS: give the reader a moment, a few times. */
    while ((n = send(s->fd, f, len, 0)) < 0 && (errno == EINTR || errno == ENOBUFS) && tries++ < 50)
        if (errno == ENOBUFS)
            usleep(200);
    if (n != (ssize_t)len) {
        s->st->errors++;
        log_debug("replay: send on %s: %m", s->tap);
        return 0;
    }
    s->st->sent++;
    s->st->sent_bytes += len;
    s->in_burst++;
    return 0;
}

/* replay_segment()'s emit: every segment is checked again like any frame. */
static int send_segment(void *ud, const uint8_t *f, size_t len)
{
    struct sender *s = ud;
    enum replay_verdict v = replay_validate_frame(s->a, f, len);
    if (v != REPLAY_OK) { /* cannot happen for a valid super-frame; never send it anyway */
        log_debug("replay: refusing a segment: %s", replay_verdict_name(v));
        s->st->refused++;
        return 0;
    }
    s->st->segments++;
    return send_frame(s, f, len);
}

int replay_send(const struct replay_buf *b, const char *tap, const struct replay_addrs *a,
                const struct replay_send_opts *o, struct replay_send_stats *st)
{
    if (!b || !a || !st || !gate_ifname_valid(tap))
        return -EINVAL;
    *st = (struct replay_send_stats){0};
    if (a->any_ip) { /* replay checks the IP, always */
        log_err("replay: refusing to replay without the domain's IP addresses");
        return -EINVAL;
    }
    struct sender s = {.tap = tap,
                       .a = a,
                       .st = st,
                       .opts = {.burst = REPLAY_DEFAULT_BURST,
                                .pace_us = REPLAY_DEFAULT_PACE_US,
                                .adaptive = true}};
    if (o)
        s.opts = *o;
    unsigned idx = if_nametoindex(tap);
    if (idx == 0) {
        log_err("replay: tap %s does not exist in this network namespace", tap);
        return -ENODEV;
    }
    /* Protocol 0: this socket only sends, it never receives a copy of anything. */
    _cleanup_close_ int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return negative_errno();
    s.fd = fd;
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_ifindex = (int)idx};
    if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
        return negative_errno();
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", tap);
    uint8_t tap_mac[REPLAY_ETH_ALEN] = {0};
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) == 0)
        memcpy(tap_mac, ifr.ifr_hwaddr.sa_data, REPLAY_ETH_ALEN);
    /* 0 when unknown: then frames go as they are and an oversize one fails to send. */
    unsigned mtu = 0;
    if (ioctl(fd, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu > 0)
        mtu = (unsigned)ifr.ifr_mtu;
    static const uint8_t zero[REPLAY_ETH_ALEN];

    uint64_t drop0 = 0, drop1 = 0;
    s.have_drops = tap_tx_dropped(tap, &drop0) == 0;
    s.last_dropped = drop0;
    uint64_t t0 = now_monotonic_ns();
    _cleanup_free_ uint8_t *scratch = NULL;
    for (size_t i = 0; i < b->n; i++) {
        const uint8_t *f = replay_buf_frame(b, i);
        size_t len = b->recs[i].len;
        if (len < ETH_HLEN_ || (f[0] & 1) || mac_index(a, f) < 0) {
            st->other++;
            continue;
        }
        st->matched++;
        enum replay_verdict v = replay_validate_frame(a, f, len);
        if (v != REPLAY_OK) {
            log_debug("replay: refusing frame %zu: %s", i, replay_verdict_name(v));
            st->refused++;
            continue;
        }
        if (memcmp(f + 6, zero, REPLAY_ETH_ALEN) == 0) {
            if (!scratch && !(scratch = malloc(REPLAY_MAX_FRAME)))
                return -ENOMEM;
            memcpy(scratch, f, len);
            memcpy(scratch + 6, tap_mac, REPLAY_ETH_ALEN);
            f = scratch;
        }
        if (mtu && len - ETH_HLEN_ > mtu) {
            int k = replay_segment(f, len, mtu, send_segment, &s);
            if (k > 0) {
                st->segmented++;
                continue;
            }
            if (k < 0) {
                log_debug("replay: frame %zu (%zu bytes) over the MTU %u of %s: %s", i, len, mtu,
                          tap, strerror(-k));
                if (k == -EBADMSG)
                    st->refused++;
                else
                    st->oversize++;
                continue;
            }
            /* 0: its IP packet fits (Ethernet padding made it long): send it whole */
        }
        send_frame(&s, f, len);
    }
    st->duration_ns = now_monotonic_ns() - t0;
    if (s.have_drops && tap_tx_dropped(tap, &drop1) == 0 && drop1 >= drop0)
        st->tap_dropped = drop1 - drop0;
    log_info("replay: %s: %" PRIu64 " frame(s) replayed (%" PRIu64
             " super-frames split into %" PRIu64 " segments, %" PRIu64 " other, %" PRIu64
             " refused, %" PRIu64 " over the MTU, %" PRIu64 " errors, %" PRIu64
             " dropped by the tap)",
             tap, st->sent, st->segmented, st->segments, st->other, st->refused, st->oversize,
             st->errors, st->tap_dropped);
    return 0;
}

int replay_tap_set(struct replay_tap *t, const char *tap, const char *mac)
{
    if (!t || !gate_ifname_valid(tap))
        return -EINVAL;
    uint8_t m[REPLAY_ETH_ALEN];
    if (replay_parse_mac(mac, m) < 0 || (m[0] & 1))
        return -EINVAL;
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", tap);
    memcpy(t->mac, m, REPLAY_ETH_ALEN);
    return 0;
}

int replay_send_taps(const struct replay_buf *b, const struct replay_tap *taps, size_t n_taps,
                     const struct replay_addrs *a, const struct replay_send_opts *o,
                     struct replay_send_stats *total)
{
    if (!b || !a || !total || (n_taps && !taps) || a->any_ip)
        return -EINVAL;
    *total = (struct replay_send_stats){0};
    int first = 0;
    struct replay_addrs one = *a;
    for (size_t i = 0; i < n_taps; i++) {
        memcpy(one.macs[0], taps[i].mac, REPLAY_ETH_ALEN);
        one.n_macs = 1;
        for (size_t k = 0; k < one.n_ips; k++)
            one.ips[k].mac_idx = -1;
        struct replay_send_stats st;
        int r = replay_send(b, taps[i].name, &one, o, &st);
        if (r < 0) {
            if (!first)
                first = r;
            continue;
        }
        total->sent += st.sent;
        total->sent_bytes += st.sent_bytes;
        total->refused += st.refused;
        total->errors += st.errors;
        total->matched += st.matched;
        total->segmented += st.segmented;
        total->segments += st.segments;
        total->oversize += st.oversize;
        total->tap_dropped += st.tap_dropped;
        total->duration_ns += st.duration_ns;
    }
    total->other = b->n > total->matched ? b->n - total->matched : 0;
    return first;
}

/* ---- the session -------------------------------------------------------------------- */

int replay_session_set_taps(struct replay_session *s, const char *domain,
                            const struct replay_tap *taps, size_t n_taps)
{
    if (!s || !domain || !taps || n_taps == 0 || n_taps > ELEMENTSOF(s->taps) ||
        strlen(domain) >= sizeof(s->domain))
        return -EINVAL;
    for (size_t i = 0; i < n_taps; i++)
        if (!gate_ifname_valid(taps[i].name) || (taps[i].mac[0] & 1))
            return -EINVAL;
    snprintf(s->domain, sizeof(s->domain), "%s", domain);
    memcpy(s->taps, taps, n_taps * sizeof(*taps));
    s->n_taps = n_taps;
    return 0;
}

int replay_session_begin(struct replay_session *s, const char *domain,
                         const struct replay_tap *taps, size_t n_taps, size_t limit)
{
    if (!s)
        return -EINVAL;
    *s = (struct replay_session){.cap = {.fd = -1, .stop_fd = -1}};
    int r = replay_session_set_taps(s, domain, taps, n_taps);
    if (r < 0)
        return r;
    struct replay_addrs a = {.any_ip = true};
    for (size_t i = 0; i < n_taps; i++) {
        if (mac_index(&a, taps[i].mac) >= 0)
            continue;
        memcpy(a.macs[a.n_macs++], taps[i].mac, REPLAY_ETH_ALEN);
    }
    r = replay_capture_open(&s->cap, domain, 0, &a, limit);
    if (r >= 0)
        r = replay_capture_start(&s->cap);
    const char *names[16];
    for (size_t i = 0; i < n_taps; i++)
        names[i] = s->taps[i].name;
    if (r >= 0)
        r = gate_capture_add(domain, names, n_taps, s->cap.group);
    if (r < 0) {
        log_warn("replay: no held-traffic capture for %s (%s): the peers will retransmit", domain,
                 strerror(-r));
        replay_capture_close(&s->cap);
        return r;
    }
    s->capturing = true;
    return 0;
}

int replay_session_stop(struct replay_session *s)
{
    if (!s || !s->capturing)
        return 0;
    int r = replay_capture_stop(&s->cap);
    if (s->cap.fd >= 0) {
        close(s->cap.fd); /* releases the group; the frames stay in cap.buf */
        s->cap.fd = -1;
    }
    s->capturing = false;
    log_info("replay: %s: %zu frame(s) held (%zu bytes), %" PRIu64 " over the bound, %" PRIu64
             " not the domain's, %" PRIu64 " kernel overruns",
             s->domain, s->cap.buf.n, s->cap.buf.used, s->cap.buf.dropped_pkts,
             s->cap.buf.rejected_pkts, s->cap.lost_events);
    return r;
}

int replay_session_replay(struct replay_session *s, const struct replay_buf *prior,
                          struct json_object *image, const struct replay_send_opts *o,
                          struct replay_send_stats *st)
{
    if (!s || !st || s->n_taps == 0 || s->capturing)
        return -EINVAL;
    *st = (struct replay_send_stats){0};
    struct replay_addrs full = {0};
    int r = image ? replay_addrs_add_image(&full, image) : -EINVAL;
    if (r < 0)
        return r;
    if (full.n_ips == 0)
        return -ENOENT;
    size_t limit = s->cap.buf.limit  ? s->cap.buf.limit
                   : s->outage.limit ? s->outage.limit
                                     : (prior ? prior->limit : 0);
    struct replay_buf all;
    if ((r = replay_buf_init(&all, limit)) < 0)
        return r;
    if (prior)
        r = replay_buf_append(&all, prior);
    if (r >= 0)
        r = replay_buf_append(&all, &s->outage);
    if (r >= 0)
        r = replay_buf_append(&all, &s->cap.buf);
    if (r >= 0)
        r = replay_send_taps(&all, s->taps, s->n_taps, &full, o, st);
    replay_buf_free(&all);
    return r;
}

void replay_session_close(struct replay_session *s)
{
    if (!s)
        return;
    /* rxbuf marks an opened capture (a zeroed struct has fd 0, which is not ours) */
    if (s->cap.rxbuf)
        replay_capture_close(&s->cap);
    replay_buf_free(&s->outage);
    s->capturing = false;
}

/* ---- stop-mode hold tables --------------------------------------------------------------- */

static inline void nft_ctx_freep(struct nft_ctx **c)
{
    if (*c)
        nft_ctx_free(*c);
}

/* Run nft text we generated ourselves from binary addresses and the derived table name, in
 * nft (NULL: a context of its own, freed at once). */
static int nft_text(struct nft_ctx *nft, const char *cmd, bool quiet)
{
    _cleanup_(nft_ctx_freep) struct nft_ctx *own = NULL;
    if (!nft) {
        nft = own = nft_ctx_new(NFT_CTX_DEFAULT);
        if (!nft)
            return -ENOMEM;
        if (nft_ctx_buffer_output(nft) < 0 || nft_ctx_buffer_error(nft) < 0)
            return -ENOMEM;
    }
    log_debug("replay: nft %s", cmd);
    if (nft_run_cmd_from_buffer(nft, cmd) != 0) {
        const char *err = nft_ctx_get_error_buffer(nft);
        err = err ? err : "";
        if (!quiet)
            log_err("replay: nft refused: %.*s", (int)strcspn(err, "\n"), err);
        return strstr(err, "No such file or directory") ? -ENOENT
               : strstr(err, "Operation not permitted") ? -EPERM
                                                        : -EIO;
    }
    return 0;
}

static int hold_table(const char *domain, char *buf, size_t len)
{
    char t[GATE_TABLE_NAME_MAX];
    int r = gate_table_name(domain, t, sizeof(t));
    if (r < 0)
        return r;
    if ((size_t)snprintf(buf, len, "%s_hold", t) >= len)
        return -ENOBUFS;
    return 0;
}

int replay_hold_forward_begin(const char *domain, uint16_t group, const struct replay_addrs *a,
                              unsigned flags)
{
    if (flags & REPLAY_HOLD_OWNED)
        return -EINVAL; /* owned by a context freed on return: the tables would vanish */
    return replay_hold_forward_begin_nft(NULL, domain, group, a, flags);
}

int replay_hold_forward_begin_nft(struct nft_ctx *nft, const char *domain, uint16_t group,
                                  const struct replay_addrs *a, unsigned flags)
{
    char t[GATE_TABLE_NAME_MAX + 8];
    int r = hold_table(domain, t, sizeof(t));
    if (r < 0)
        return r;
    if (!a || group == 0 || (a->n_ips == 0 && a->n_macs == 0))
        return -EINVAL;
    const char *verdict = (flags & REPLAY_HOLD_PASS) ? "" : " drop";
    _cleanup_free_ char *cmd = NULL;
    size_t cmdlen = 0;
    _cleanup_fclose_ FILE *f = open_memstream(&cmd, &cmdlen);
    if (!f)
        return -ENOMEM;
    /* add+delete+add: one transaction that yields exactly this, whatever existed. */
    /* owner: the kernel removes the tables with the netlink socket of nft, i.e. when the
     * process holding it dies, however it dies: a killed holder cannot black-hole the guest. */
    const char *tflags = (flags & REPLAY_HOLD_OWNED) ? " { flags owner; }" : "";
    fprintf(f, "add table inet %s\ndelete table inet %s\nadd table inet %s%s\n", t, t, t, tflags);
    fprintf(f,
            "add chain inet %s pre { type filter hook prerouting priority -300; policy accept; }\n",
            t);
    for (int fam = 0; fam < 2; fam++) {
        int want = fam ? AF_INET6 : AF_INET;
        bool any = false;
        for (size_t i = 0; i < a->n_ips; i++) {
            if (a->ips[i].family != want)
                continue;
            char s[INET6_ADDRSTRLEN];
            const void *src =
                want == AF_INET ? (const void *)&a->ips[i].v4 : (const void *)&a->ips[i].v6;
            if (!inet_ntop(want, src, s, sizeof(s)))
                return -EINVAL;
            if (any)
                fprintf(f, ", %s", s);
            else
                fprintf(f, "add rule inet %s pre %s daddr { %s", t, fam ? "ip6" : "ip", s);
            any = true;
        }
        if (any)
            fprintf(f, " } counter log group %u%s\n", group, verdict);
    }
    fprintf(f, "add table bridge %s\ndelete table bridge %s\nadd table bridge %s%s\n", t, t, t,
            tflags);
    if (a->n_macs) {
        fprintf(f,
                "add chain bridge %s pre { type filter hook prerouting priority -300; policy "
                "accept; }\n",
                t);
        fprintf(f, "add rule bridge %s pre ether daddr { ", t);
        for (size_t i = 0; i < a->n_macs; i++) {
            const uint8_t *m = a->macs[i];
            fprintf(f, "%s%02x:%02x:%02x:%02x:%02x:%02x", i ? ", " : "", m[0], m[1], m[2], m[3],
                    m[4], m[5]);
        }
        fprintf(f, " } counter log group %u%s\n", group, verdict);
    }
    if (fflush(f) != 0)
        return -ENOMEM;
    r = nft_text(nft, cmd, false);
    if (r < 0)
        return r;
    log_info("replay: holding traffic for %s on the prerouting path (nflog group %u%s)", t, group,
             (flags & REPLAY_HOLD_PASS) ? ", pass" : "");
    return 0;
}

int replay_hold_forward_end(const char *domain)
{
    return replay_hold_forward_end_nft(NULL, domain);
}

int replay_hold_forward_end_nft(struct nft_ctx *nft, const char *domain)
{
    char t[GATE_TABLE_NAME_MAX + 8];
    int r = hold_table(domain, t, sizeof(t));
    if (r < 0)
        return r;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "list table inet %s", t);
    bool inet = nft_text(nft, cmd, true) == 0;
    snprintf(cmd, sizeof(cmd), "list table bridge %s", t);
    bool bridge = nft_text(nft, cmd, true) == 0;
    if (!inet && !bridge)
        return 0;
    /* Only delete what exists: an "add table" without the owner flag on an owned table is
     * refused (a table's owner flag cannot be taken away). */
    snprintf(cmd, sizeof(cmd), "%s%s%s%s%s%s", inet ? "delete table inet " : "", inet ? t : "",
             inet ? "\n" : "", bridge ? "delete table bridge " : "", bridge ? t : "",
             bridge ? "\n" : "");
    r = nft_text(nft, cmd, false);
    if (r < 0)
        return r;
    log_info("replay: %s removed", t);
    return 1;
}
