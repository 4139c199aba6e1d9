/* Unit tests of host/replay that need no kernel: frame validation (wrong MAC, wrong IP,
 * truncated, VLAN, ...), the bounded buffer, the pcap writer/reader round trip and its refusal
 * of malformed files, the nflog message parser (netdev, bridge and layer-3 frames, malformed
 * lengths), the software segmentation of TCP super-frames (byte-exact reassembly, checksums,
 * flags), and the refusals that happen before any socket or nft call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "host/gate.h"
#include "host/replay.h"
#include "common/inet-csum.h"
#include "common/macro.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GUEST_MAC "52:54:00:12:34:56"
#define OTHER_MAC "52:54:00:aa:bb:cc"

static const uint8_t guest_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
static const uint8_t other_mac[6] = {0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc};
static const uint8_t peer_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};

static void addrs(struct replay_addrs *a)
{
    memset(a, 0, sizeof(*a));
    assert_int_equal(replay_addrs_add_mac(a, GUEST_MAC), 0);
    assert_int_equal(replay_addrs_add_ip(a, "10.0.0.2", -1), 0);
    assert_int_equal(replay_addrs_add_ip(a, "fd00::2", -1), 0);
}

/* An IPv4/UDP frame to dst_ip with payload_len bytes of payload. Returns its length. */
static size_t v4_frame(uint8_t *f, const uint8_t *dst_mac, const char *dst_ip, size_t payload_len)
{
    memcpy(f, dst_mac, 6);
    memcpy(f + 6, peer_mac, 6);
    f[12] = 0x08;
    f[13] = 0x00;
    uint8_t *ip = f + 14;
    memset(ip, 0, 28);
    size_t tot = 28 + payload_len;
    ip[0] = 0x45;
    ip[2] = (uint8_t)(tot >> 8);
    ip[3] = (uint8_t)tot;
    ip[8] = 64;
    ip[9] = 17;
    inet_pton(AF_INET, "10.0.1.1", ip + 12);
    inet_pton(AF_INET, dst_ip, ip + 16);
    put_be16(ip + 10, inet_csum(ip, 20));
    for (size_t i = 0; i < payload_len; i++)
        ip[28 + i] = (uint8_t)i;
    return 14 + tot;
}

static size_t v6_frame(uint8_t *f, const uint8_t *dst_mac, const char *dst_ip, size_t payload_len)
{
    memcpy(f, dst_mac, 6);
    memcpy(f + 6, peer_mac, 6);
    f[12] = 0x86;
    f[13] = 0xdd;
    uint8_t *ip = f + 14;
    memset(ip, 0, 40);
    ip[0] = 0x60;
    ip[4] = (uint8_t)(payload_len >> 8);
    ip[5] = (uint8_t)payload_len;
    ip[6] = 59; /* no next header */
    ip[7] = 64;
    inet_pton(AF_INET6, "fd00::1", ip + 8);
    inet_pton(AF_INET6, dst_ip, ip + 24);
    memset(ip + 40, 0xab, payload_len);
    return 14 + 40 + payload_len;
}

static void test_addrs(void **state)
{
    (void)state;
    uint8_t m[6];
    assert_int_equal(replay_parse_mac("52:54:00:12:34:56", m), 0);
    assert_memory_equal(m, guest_mac, 6);
    assert_int_equal(replay_parse_mac("52:54:00:AA:bb:Cc", m), 0);
    const char *bad[] = {"",
                         "52:54:00:12:34",
                         "52:54:00:12:34:56:",
                         "52-54-00-12-34-56",
                         "52:54:00:12:34:5g",
                         "5:54:00:12:34:567",
                         " 52:54:00:12:34:5"};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++)
        assert_int_equal(replay_parse_mac(bad[i], m), -EINVAL);
    assert_int_equal(replay_parse_mac(NULL, m), -EINVAL);

    struct replay_addrs a = {0};
    assert_int_equal(replay_addrs_add_mac(&a, "ff:ff:ff:ff:ff:ff"), -EINVAL); /* group address */
    assert_int_equal(replay_addrs_add_mac(&a, "01:00:5e:00:00:01"), -EINVAL);
    assert_int_equal(replay_addrs_add_mac(&a, GUEST_MAC), 0);
    assert_int_equal(replay_addrs_add_mac(&a, GUEST_MAC), 0); /* duplicate ignored */
    assert_int_equal(a.n_macs, 1);
    assert_int_equal(replay_addrs_add_ip(&a, "10.0.0.2", 0), 0);
    assert_int_equal(replay_addrs_add_ip(&a, "10.0.0.2", 0), 0);
    assert_int_equal(replay_addrs_add_ip(&a, "fd00::2", 0), 0);
    assert_int_equal(a.n_ips, 2);
    assert_int_equal(replay_addrs_add_ip(&a, "10.0.0.256", 0), -EINVAL);
    assert_int_equal(replay_addrs_add_ip(&a, "host.example", 0), -EINVAL);
    for (int i = 2; i < REPLAY_MAX_MACS + 2; i++) {
        char s[18];
        snprintf(s, sizeof(s), "02:00:00:00:01:%02x", i);
        int r = replay_addrs_add_mac(&a, s);
        assert_int_equal(r, i <= REPLAY_MAX_MACS ? 0 : -E2BIG);
    }
}

static void test_validate(void **state)
{
    (void)state;
    struct replay_addrs a;
    addrs(&a);
    uint8_t f[2048];
    size_t n = v4_frame(f, guest_mac, "10.0.0.2", 32);
    assert_int_equal(replay_validate_frame(&a, f, n), REPLAY_OK);
    /* Ethernet padding after the IP packet is fine. */
    assert_int_equal(replay_validate_frame(&a, f, n + 10), REPLAY_OK);

    n = v4_frame(f, other_mac, "10.0.0.2", 32);
    assert_int_equal(replay_validate_frame(&a, f, n), REPLAY_BAD_MAC);
    static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    n = v4_frame(f, bcast, "10.0.0.2", 32);
    assert_int_equal(replay_validate_frame(&a, f, n), REPLAY_BAD_MAC);

    n = v4_frame(f, guest_mac, "10.0.0.3", 32);
    assert_int_equal(replay_validate_frame(&a, f, n), REPLAY_BAD_IP);

    /* truncated: short of an Ethernet header, of an IP header, of the IP total length */
    n = v4_frame(f, guest_mac, "10.0.0.2", 32);
    assert_int_equal(replay_validate_frame(&a, f, 13), REPLAY_TRUNCATED);
    assert_int_equal(replay_validate_frame(&a, f, 14 + 19), REPLAY_TRUNCATED);
    assert_int_equal(replay_validate_frame(&a, f, n - 1), REPLAY_TRUNCATED);
    assert_int_equal(replay_validate_frame(&a, NULL, 0), REPLAY_TRUNCATED);
    /* malformed headers */
    f[14] = 0x44; /* IHL 4 */
    assert_int_equal(replay_validate_frame(&a, f, n), REPLAY_BAD_IP_HDR);
    f[14] = 0x55; /* version 5 */
    assert_int_equal(replay_validate_frame(&a, f, n), REPLAY_BAD_IP_HDR);
    f[14] = 0x4f; /* IHL 15 = 60 bytes > total length 60? total is 60: header == packet */
    f[16] = 0;
    f[17] = 20; /* total length shorter than the header */
    assert_int_equal(replay_validate_frame(&a, f, n), REPLAY_BAD_IP_HDR);

    /* VLAN tags (both kinds) are refused, not looked through */
    n = v4_frame(f, guest_mac, "10.0.0.2", 32);
    uint8_t t[2048];
    memcpy(t, f, 12);
    t[12] = 0x81;
    t[13] = 0x00;
    t[14] = 0x00;
    t[15] = 0x05;
    memcpy(t + 16, f + 12, n - 12);
    assert_int_equal(replay_validate_frame(&a, t, n + 4), REPLAY_VLAN);
    t[12] = 0x88;
    t[13] = 0xa8;
    assert_int_equal(replay_validate_frame(&a, t, n + 4), REPLAY_VLAN);

    /* ARP and others */
    n = v4_frame(f, guest_mac, "10.0.0.2", 32);
    f[12] = 0x08;
    f[13] = 0x06;
    assert_int_equal(replay_validate_frame(&a, f, n), REPLAY_BAD_ETHERTYPE);

    /* IPv6 */
    n = v6_frame(f, guest_mac, "fd00::2", 16);
    assert_int_equal(replay_validate_frame(&a, f, n), REPLAY_OK);
    assert_int_equal(replay_validate_frame(&a, f, n - 1), REPLAY_TRUNCATED);
    n = v6_frame(f, guest_mac, "fd00::3", 16);
    assert_int_equal(replay_validate_frame(&a, f, n), REPLAY_BAD_IP);
    n = v6_frame(f, guest_mac, "fd00::2", 0); /* payload length 0: a jumbogram */
    assert_int_equal(replay_validate_frame(&a, f, n), REPLAY_BAD_IP_HDR);

    /* An IPv4 address given, but the frame is IPv6 to an address not listed */
    struct replay_addrs only4 = {0};
    replay_addrs_add_mac(&only4, GUEST_MAC);
    replay_addrs_add_ip(&only4, "10.0.0.2", -1);
    n = v6_frame(f, guest_mac, "fd00::2", 16);
    assert_int_equal(replay_validate_frame(&only4, f, n), REPLAY_BAD_IP);

    /* too big */
    uint8_t *big = calloc(1, REPLAY_MAX_FRAME + 1);
    assert_non_null(big);
    v4_frame(big, guest_mac, "10.0.0.2", 32);
    assert_int_equal(replay_validate_frame(&a, big, REPLAY_MAX_FRAME + 1), REPLAY_TOO_BIG);
    free(big);
    /* any_ip (capture before the image is known): the IP is not checked, the rest is */
    struct replay_addrs any = {0};
    replay_addrs_add_mac(&any, GUEST_MAC);
    any.any_ip = true;
    n = v4_frame(f, guest_mac, "10.9.9.9", 32);
    assert_int_equal(replay_validate_frame(&any, f, n), REPLAY_OK);
    assert_int_equal(replay_validate_frame(&any, f, n - 1), REPLAY_TRUNCATED);
    n = v4_frame(f, other_mac, "10.9.9.9", 32);
    assert_int_equal(replay_validate_frame(&any, f, n), REPLAY_BAD_MAC);
    struct replay_buf rb;
    replay_buf_init(&rb, 0);
    struct replay_send_stats st;
    assert_int_equal(replay_send(&rb, "lo", &any, NULL, &st), -EINVAL); /* replay checks IPs */
    replay_buf_free(&rb);

    for (int v = REPLAY_OK; v <= REPLAY_BAD_IP; v++)
        assert_string_not_equal(replay_verdict_name((enum replay_verdict)v), "?");
}

static void test_buf_bound(void **state)
{
    (void)state;
    struct replay_buf b;
    assert_int_equal(replay_buf_init(&b, REPLAY_MAX_LIMIT + 1), -EINVAL);
    assert_int_equal(replay_buf_init(&b, 0), 0);
    assert_int_equal(b.limit, REPLAY_DEFAULT_LIMIT);
    replay_buf_free(&b);

    struct replay_addrs a;
    addrs(&a);
    assert_int_equal(replay_buf_init(&b, 1000), 0);
    uint8_t f[2048];
    size_t n = v4_frame(f, guest_mac, "10.0.0.2", 158); /* 200 bytes */
    assert_int_equal(n, 200);
    for (int i = 0; i < 5; i++)
        assert_int_equal(replay_buf_add_checked(&b, &a, (uint64_t)i, f, n), 0);
    assert_int_equal(replay_buf_add_checked(&b, &a, 5, f, n), -ENOSPC);
    assert_int_equal(replay_buf_add(&b, 6, f, n), -ENOSPC);
    size_t m = v4_frame(f, other_mac, "10.0.0.2", 158);
    assert_int_equal(replay_buf_add_checked(&b, &a, 7, f, m), 1);
    assert_int_equal(b.n, 5);
    assert_int_equal(b.used, 1000);
    assert_int_equal(b.dropped_pkts, 2);
    assert_int_equal(b.dropped_bytes, 400);
    assert_int_equal(b.rejected_pkts, 1);
    assert_int_equal(replay_buf_add(&b, 0, f, 13), -EINVAL);

    /* append keeps order and the destination's bound, and adds the counts */
    struct replay_buf d;
    assert_int_equal(replay_buf_init(&d, 700), 0);
    assert_int_equal(replay_buf_append(&d, &b), 0);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.recs[2].ts_ns, 2);
    assert_int_equal(d.dropped_pkts, 2 + 2);
    assert_int_equal(d.rejected_pkts, 1);
    replay_buf_free(&d);
    replay_buf_free(&b);
}

static void fill(struct replay_buf *b, int count)
{
    uint8_t f[2048];
    for (int i = 0; i < count; i++) {
        size_t n = i % 2 ? v6_frame(f, guest_mac, "fd00::2", (size_t)(10 + i))
                         : v4_frame(f, guest_mac, "10.0.0.2", (size_t)(20 + i));
        f[n - 1] = (uint8_t)i;
        assert_int_equal(replay_buf_add(b, 1700000000123456789ull + (uint64_t)i * 1001, f, n), 0);
    }
}

static void same_frames(const struct replay_buf *x, const struct replay_buf *y)
{
    assert_int_equal(x->n, y->n);
    for (size_t i = 0; i < x->n; i++) {
        assert_int_equal(x->recs[i].len, y->recs[i].len);
        assert_int_equal(x->recs[i].ts_ns, y->recs[i].ts_ns);
        assert_memory_equal(replay_buf_frame(x, i), replay_buf_frame(y, i), x->recs[i].len);
    }
}

static void test_pcap_round_trip(void **state)
{
    (void)state;
    struct replay_buf b, r;
    replay_buf_init(&b, 0);
    fill(&b, 50);
    uint8_t *p;
    size_t len;
    assert_int_equal(replay_pcap_encode(&b, &p, &len), 0);
    assert_int_equal(len, REPLAY_PCAP_HDR + b.used + 50 * REPLAY_PCAP_REC_HDR);
    uint32_t magic;
    memcpy(&magic, p, 4);
    assert_int_equal(magic, 0xa1b23c4d);
    replay_buf_init(&r, 0);
    assert_int_equal(replay_pcap_parse(p, len, NULL, &r), 0);
    same_frames(&b, &r);
    replay_buf_free(&r);

    /* through a file, with validation: all are the domain's */
    char dir[] = "/tmp/test-replay-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/held.pcap", dir);
    assert_int_equal(replay_pcap_write(&b, path), 0);
    struct replay_addrs a;
    addrs(&a);
    replay_buf_init(&r, 0);
    assert_int_equal(replay_pcap_read(path, &a, &r), 0);
    same_frames(&b, &r);
    assert_int_equal(r.rejected_pkts, 0);
    replay_buf_free(&r);

    /* a smaller reader limit: the frames that fit, the rest counted as dropped */
    replay_buf_init(&r, b.recs[10].off);
    /* the file is larger than that limit allows: refused before reading */
    assert_int_equal(replay_pcap_read(path, &a, &r), -EFBIG);
    assert_int_equal(replay_pcap_parse(p, len, &a, &r), 0);
    assert_int_equal(r.n, 10);
    assert_int_equal(r.dropped_pkts, 40);
    replay_buf_free(&r);

    /* an empty capture is a valid, empty file */
    struct replay_buf e;
    replay_buf_init(&e, 0);
    uint8_t *ep;
    size_t elen;
    assert_int_equal(replay_pcap_encode(&e, &ep, &elen), 0);
    assert_int_equal(elen, 24);
    assert_int_equal(replay_pcap_parse(ep, elen, &a, &e), 0);
    assert_int_equal(e.n, 0);
    free(ep);
    replay_buf_free(&e);

    /* the other byte order and the microsecond magic */
    uint8_t sw[24 + 16 + 60];
    const uint8_t hdr[24] = {0xa1, 0xb2, 0xc3, 0xd4, 0, 2, 0,    4,    0, 0, 0, 0,
                             0,    0,    0,    0,    0, 0, 0xff, 0xff, 0, 0, 0, 1};
    memcpy(sw, hdr, 24);
    const uint8_t rec[16] = {0x65, 0, 0, 0, 0, 0x0f, 0x42, 0x3f, 0, 0, 0, 60, 0, 0, 0, 60};
    memcpy(sw + 24, rec, 16);
    v4_frame(sw + 40, guest_mac, "10.0.0.2", 18);
    replay_buf_init(&r, 0);
    assert_int_equal(replay_pcap_parse(sw, sizeof(sw), &a, &r), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.recs[0].len, 60);
    assert_int_equal(r.recs[0].ts_ns, 0x65000000ull * 1000000000ull + 999999000ull);
    replay_buf_free(&r);

    unlink(path);
    rmdir(dir);
    free(p);
    replay_buf_free(&b);
}

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static void test_pcap_bad(void **state)
{
    (void)state;
    struct replay_buf b, r;
    replay_buf_init(&b, 0);
    fill(&b, 3);
    uint8_t *p;
    size_t len;
    assert_int_equal(replay_pcap_encode(&b, &p, &len), 0);
    uint8_t *q = malloc(len);
    assert_non_null(q);
    struct {
        const char *what;
        size_t off;
        uint32_t val;
        size_t len; /* 0: whole */
    } cases[] = {
        {"short header", 0, 0xa1b23c4d, 23},
        {"bad magic", 0, 0x0a0d0d0a, 0}, /* pcapng */
        {"version", 4, 0x00030002, 0},
        {"link type", 20, 105, 0},
        {"snaplen 0", 16, 0, 0},
        {"snaplen huge", 16, 0x7fffffff, 0},
        {"record header cut", 0, 0xa1b23c4d, 24 + 7},
        {"frame cut", 0, 0xa1b23c4d, 0 /* set below */},
        {"incl != orig", 24 + 12, 5000, 0},
        {"incl over the file", 24 + 8, 0xfffffff0, 0},
        {"incl under an Ethernet header", 24 + 8, 10, 0},
        {"ns fraction", 24 + 4, 1000000000u, 0},
    };
    cases[7].len = len - 1;
    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        memcpy(q, p, len);
        put32(q + cases[i].off, cases[i].val);
        if (strcmp(cases[i].what, "incl over the file") == 0 ||
            strcmp(cases[i].what, "incl under an Ethernet header") == 0)
            put32(q + cases[i].off + 4, cases[i].val);
        replay_buf_init(&r, 0);
        fill(&r, 2); /* what the buffer had before must stay, and nothing more */
        size_t n0 = r.n, used0 = r.used;
        int rc = replay_pcap_parse(q, cases[i].len ? cases[i].len : len, NULL, &r);
        if (rc != -EBADMSG)
            fail_msg("%s: accepted (%d)", cases[i].what, rc);
        assert_int_equal(r.n, n0);
        assert_int_equal(r.used, used0);
        assert_int_equal(r.dropped_pkts, 0);
        replay_buf_free(&r);
    }
    /* positive control: the untouched bytes parse */
    replay_buf_init(&r, 0);
    assert_int_equal(replay_pcap_parse(p, len, NULL, &r), 0);
    assert_int_equal(r.n, 3);
    replay_buf_free(&r);
    /* a missing file */
    replay_buf_init(&r, 0);
    assert_int_equal(replay_pcap_read("/nonexistent/held.pcap", NULL, &r), -ENOENT);
    replay_buf_free(&r);
    free(q);
    free(p);
    replay_buf_free(&b);
}

/* ---- nflog messages ---- */

struct msgb {
    uint8_t buf[8192];
    size_t len, start;
};

static void msg_begin(struct msgb *m, uint8_t family)
{
    m->start = m->len;
    struct nlmsghdr nh = {.nlmsg_type = NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET};
    memcpy(m->buf + m->len, &nh, sizeof(nh));
    m->len += NLMSG_HDRLEN;
    struct nfgenmsg g = {.nfgen_family = family, .version = NFNETLINK_V0, .res_id = htons(7)};
    memcpy(m->buf + m->len, &g, sizeof(g));
    m->len += NLMSG_ALIGN(sizeof(g));
}

static void msg_attr(struct msgb *m, uint16_t type, const void *v, size_t vl)
{
    struct nlattr na = {.nla_len = (uint16_t)(NLA_HDRLEN + vl), .nla_type = type};
    memcpy(m->buf + m->len, &na, sizeof(na));
    memcpy(m->buf + m->len + NLA_HDRLEN, v, vl);
    memset(m->buf + m->len + NLA_HDRLEN + vl, 0, NLA_ALIGN(vl) - vl);
    m->len += NLA_HDRLEN + NLA_ALIGN(vl);
}

static void msg_end(struct msgb *m)
{
    uint32_t l = (uint32_t)(m->len - m->start);
    memcpy(m->buf + m->start, &l, 4);
}

static void msg_hdr(struct msgb *m, uint8_t hook)
{
    struct nfulnl_msg_packet_hdr h = {.hw_protocol = htons(0x0800), .hook = hook};
    msg_attr(m, NFULA_PACKET_HDR, &h, sizeof(h));
}

static void test_nflog_parse(void **state)
{
    (void)state;
    struct replay_addrs a;
    addrs(&a);
    struct replay_buf b;
    replay_buf_init(&b, 0);
    struct msgb m = {0};
    uint8_t f[2048];

    /* 1: netdev egress, whole frame, with a timestamp */
    size_t n1 = v4_frame(f, guest_mac, "10.0.0.2", 40);
    msg_begin(&m, NFPROTO_NETDEV);
    msg_hdr(&m, NF_NETDEV_EGRESS);
    uint8_t ts[16] = {0};
    ts[7] = 100; /* sec 100 */
    ts[15] = 7;  /* usec 7 */
    msg_attr(&m, NFULA_TIMESTAMP, ts, 16);
    msg_attr(&m, NFULA_PAYLOAD, f, n1);
    msg_end(&m);
    /* 2: netdev egress for another MAC: rejected */
    size_t n2 = v4_frame(f + 1024, other_mac, "10.0.0.2", 40);
    msg_begin(&m, NFPROTO_NETDEV);
    msg_hdr(&m, NF_NETDEV_EGRESS);
    msg_attr(&m, NFULA_PAYLOAD, f + 1024, n2);
    msg_end(&m);
    /* 3: IPv4 layer 3 (the hold tables): rebuilt with the guest's MAC, TTL 63 */
    msg_begin(&m, NFPROTO_IPV4);
    msg_hdr(&m, NF_INET_PRE_ROUTING);
    msg_attr(&m, NFULA_PAYLOAD, f + 14, n1 - 14);
    msg_end(&m);
    /* 4: bridge, L2 header + payload */
    msg_begin(&m, NFPROTO_BRIDGE);
    msg_hdr(&m, NF_INET_PRE_ROUTING);
    msg_attr(&m, NFULA_L2HDR, f, 14);
    msg_attr(&m, NFULA_PAYLOAD, f + 14, n1 - 14);
    msg_end(&m);
    /* 5: a VLAN attribute: refused */
    msg_begin(&m, NFPROTO_BRIDGE);
    msg_hdr(&m, NF_INET_PRE_ROUTING);
    msg_attr(&m, NFULA_L2HDR, f, 14);
    msg_attr(&m, NFULA_VLAN | NLA_F_NESTED, "\0\0\0\0", 4);
    msg_attr(&m, NFULA_PAYLOAD, f + 14, n1 - 14);
    msg_end(&m);
    /* 6: netdev ingress (never ours): refused */
    msg_begin(&m, NFPROTO_NETDEV);
    msg_hdr(&m, NF_NETDEV_INGRESS);
    msg_attr(&m, NFULA_PAYLOAD, f, n1);
    msg_end(&m);
    /* 7: IPv6 layer 3 */
    size_t n7 = v6_frame(f + 1024, guest_mac, "fd00::2", 24);
    msg_begin(&m, NFPROTO_IPV6);
    msg_hdr(&m, NF_INET_PRE_ROUTING);
    msg_attr(&m, NFULA_PAYLOAD, f + 1024 + 14, n7 - 14);
    msg_end(&m);

    assert_int_equal(replay_nflog_parse(m.buf, m.len, &a, &b), 7);
    assert_int_equal(b.n, 4);
    assert_int_equal(b.rejected_pkts, 3);
    /* 1 */
    assert_int_equal(b.recs[0].len, n1);
    assert_memory_equal(replay_buf_frame(&b, 0), f, n1);
    assert_int_equal(b.recs[0].ts_ns, 100000007000ull);
    /* 3 */
    const uint8_t *r3 = replay_buf_frame(&b, 1);
    assert_int_equal(b.recs[1].len, n1);
    assert_memory_equal(r3, guest_mac, 6);
    static const uint8_t zero[6];
    assert_memory_equal(r3 + 6, zero, 6);
    assert_int_equal(r3[14 + 8], 63);
    assert_int_equal(inet_csum(r3 + 14, 20), 0);
    assert_memory_equal(r3 + 14 + 12, f + 14 + 12, n1 - 26); /* the rest is untouched */
    /* 4 */
    assert_memory_equal(replay_buf_frame(&b, 2), f, n1);
    /* 7 */
    const uint8_t *r7 = replay_buf_frame(&b, 3);
    assert_int_equal(r7[12], 0x86);
    assert_int_equal(r7[14 + 7], 63);
    assert_memory_equal(r7 + 14 + 8, f + 1024 + 14 + 8, n7 - 22);

    /* malformed: a message longer than the datagram, an attribute longer than its message */
    assert_int_equal(replay_nflog_parse(m.buf, 20, &a, &b), -EBADMSG);
    struct msgb bad = {0};
    msg_begin(&bad, NFPROTO_NETDEV);
    msg_hdr(&bad, NF_NETDEV_EGRESS);
    msg_attr(&bad, NFULA_PAYLOAD, f, n1);
    msg_end(&bad);
    uint16_t huge = 0xfff0;
    memcpy(bad.buf + NLMSG_HDRLEN + 4 + 8, &huge, 2); /* the payload attribute's length */
    assert_int_equal(replay_nflog_parse(bad.buf, bad.len, &a, &b), -EBADMSG);
    uint32_t tiny = 3;
    memcpy(bad.buf, &tiny, 4);
    assert_int_equal(replay_nflog_parse(bad.buf, bad.len, &a, &b), -EBADMSG);
    /* a short packet header attribute */
    struct msgb sh = {0};
    msg_begin(&sh, NFPROTO_NETDEV);
    msg_attr(&sh, NFULA_PACKET_HDR, "\0", 1);
    msg_end(&sh);
    assert_int_equal(replay_nflog_parse(sh.buf, sh.len, &a, &b), -EBADMSG);
    /* not a packet message: ignored */
    struct nlmsghdr done = {.nlmsg_len = NLMSG_HDRLEN, .nlmsg_type = NLMSG_DONE};
    assert_int_equal(replay_nflog_parse((const uint8_t *)&done, sizeof(done), &a, &b), 0);
    assert_int_equal(b.n, 4);
    replay_buf_free(&b);
}

/* One's complement sum of the pseudo header + UDP part of an IPv4/UDP frame (check included). */
static uint16_t udp_sum(const uint8_t *f)
{
    const uint8_t *ip = f + 14, *udp = ip + 20;
    size_t ulen = (size_t)(udp[4] << 8 | udp[5]);
    return inet_fold(inet_sum(udp, ulen, inet_pseudo_sum(ip + 12, ip + 16, 4, 17, (uint32_t)ulen)));
}

static void test_partial_checksum(void **state)
{
    (void)state;
    struct replay_addrs a;
    addrs(&a);
    uint8_t f[256];
    size_t n = v4_frame(f, guest_mac, "10.0.0.2", 21);
    uint8_t *udp = f + 14 + 20;
    udp[4] = 0;
    udp[5] = 8 + 21;
    /* CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum only */
    uint32_t ps = 0;
    for (int i = 12; i < 20; i += 2)
        ps += (uint32_t)(f[14 + i] << 8 | f[14 + i + 1]);
    ps += 17 + 8 + 21;
    while (ps >> 16)
        ps = (ps & 0xffff) + (ps >> 16);
    udp[6] = (uint8_t)(ps >> 8);
    udp[7] = (uint8_t)ps;
    assert_int_not_equal(udp_sum(f), 0xffff);

    uint8_t wrong[256];
    memcpy(wrong, f, n);
    wrong[14 + 20 + 6] ^= 0x55; /* simply wrong: must stay wrong */

    struct msgb m = {0};
    msg_begin(&m, NFPROTO_NETDEV);
    msg_hdr(&m, NF_NETDEV_EGRESS);
    msg_attr(&m, NFULA_PAYLOAD, f, n);
    msg_end(&m);
    msg_begin(&m, NFPROTO_NETDEV);
    msg_hdr(&m, NF_NETDEV_EGRESS);
    msg_attr(&m, NFULA_PAYLOAD, wrong, n);
    msg_end(&m);
    struct replay_buf b;
    replay_buf_init(&b, 0);
    assert_int_equal(replay_nflog_parse(m.buf, m.len, &a, &b), 2);
    assert_int_equal(b.n, 2);
    assert_int_equal(udp_sum(replay_buf_frame(&b, 0)), 0xffff);
    assert_memory_equal(replay_buf_frame(&b, 0), f, 14 + 20 + 6); /* only the checksum moved */
    assert_memory_equal(replay_buf_frame(&b, 1), wrong, n);
    replay_buf_free(&b);
}

static void test_session_refusals(void **state)
{
    (void)state;
    struct replay_session s = {0};
    int fd0_before = fcntl(0, F_GETFD) >= 0;
    replay_session_close(&s); /* zeroed: nothing to close, fd 0 untouched */
    assert_int_equal(fcntl(0, F_GETFD) >= 0, fd0_before);
    struct replay_tap t[2];
    replay_tap_set(&t[0], "vnet0", GUEST_MAC);
    assert_int_equal(replay_session_begin(&s, "dom", t, 0, 0), -EINVAL);
    replay_session_close(&s);
    assert_int_equal(replay_session_begin(&s, "", t, 1, 0), -EINVAL);
    replay_session_close(&s);
    assert_int_equal(replay_session_stop(&s), 0); /* never begun */
    struct replay_send_stats st;
    assert_int_equal(replay_session_replay(&s, NULL, NULL, NULL, &st), -EINVAL); /* no taps */
    assert_int_equal(replay_session_set_taps(&s, "dom", t, 1), 0);
    json_object *img =
        json_tokener_parse("{\"connections\":[{\"local\":{\"addr\":\"0.0.0.0\",\"port\":1}}]}");
    assert_int_equal(replay_session_replay(&s, NULL, img, NULL, &st), -ENOENT);
    assert_int_equal(replay_session_replay(&s, NULL, NULL, NULL, &st), -EINVAL);
    json_object_put(img);
    replay_session_close(&s);
}

static void test_refusals(void **state)
{
    (void)state;
    struct replay_addrs a;
    addrs(&a);
    struct replay_addrs none = {0};
    uint16_t g = replay_group_for("web-1");
    assert_true(g >= REPLAY_GROUP_BASE && g < REPLAY_GROUP_BASE + REPLAY_GROUP_SPAN);
    assert_int_equal(g, replay_group_for("web-1"));
    assert_int_equal(replay_hold_forward_begin("", 7, &a, 0), -EINVAL);
    assert_int_equal(replay_hold_forward_begin("dom", 0, &a, 0), -EINVAL);
    assert_int_equal(replay_hold_forward_begin("dom", 7, &none, 0), -EINVAL);
    assert_int_equal(replay_hold_forward_begin("dom", 7, NULL, 0), -EINVAL);
    assert_int_equal(replay_hold_forward_end(""), -EINVAL);
    struct replay_buf b;
    replay_buf_init(&b, 0);
    struct replay_send_stats st;
    assert_int_equal(replay_send(&b, "tap;0", &a, NULL, &st), -EINVAL);
    assert_int_equal(replay_send(&b, "", &a, NULL, &st), -EINVAL);
    assert_int_equal(replay_send(&b, "nosuchtap9", &a, NULL, &st), -ENODEV);
    replay_buf_free(&b);
    /* a zeroed capture closes cleanly */
    struct replay_capture c = {.fd = -1, .stop_fd = -1};
    replay_capture_close(&c);
}

static void test_image_addrs(void **state)
{
    (void)state;
    const char *img =
        "{\"connections\":["
        "{\"local\":{\"addr\":\"10.0.0.2\",\"port\":1},\"remote\":{\"addr\":\"10.0.1.1\",\"port\":"
        "2}},"
        "{\"local\":{\"addr\":\"10.0.0.2\",\"port\":3},\"remote\":{\"addr\":\"10.0.1.1\",\"port\":"
        "2}},"
        "{\"local\":{\"addr\":\"::ffff:10.0.0.3\",\"port\":4},\"remote\":{\"addr\":\"10.0.1.1\","
        "\"port\":2}},"
        "{\"local\":{\"addr\":\"fd00::2\",\"port\":5},\"remote\":{\"addr\":\"fd00::1\",\"port\":2}}"
        ","
        "{\"local\":{\"addr\":\"0.0.0.0\",\"port\":6},\"remote\":{\"addr\":\"10.0.1.1\",\"port\":2}"
        "},"
        "{\"local\":{\"addr\":\"127.0.0.1\",\"port\":7},\"remote\":{\"addr\":\"10.0.1.1\",\"port\":"
        "2}},"
        "{\"local\":{\"addr\":\"::1\",\"port\":8},\"remote\":{\"addr\":\"fd00::1\",\"port\":2}}"
        "],\"skipped\":[]}";
    json_object *o = json_tokener_parse(img);
    assert_non_null(o);
    struct replay_addrs a = {0};
    assert_int_equal(replay_addrs_add_image(&a, o), 3);
    assert_int_equal(a.n_ips, 3);
    assert_int_equal(a.ips[1].family, AF_INET); /* the v4-mapped one */
    assert_int_equal(replay_addrs_add_image(&a, o), 0);
    json_object_put(o);
    o = json_tokener_parse("{\"connections\":[{\"local\":{\"addr\":\"bogus\"}}]}");
    assert_int_equal(replay_addrs_add_image(&a, o), -EINVAL);
    json_object_put(o);
    o = json_tokener_parse("{\"connections\":{}}");
    assert_int_equal(replay_addrs_add_image(&a, o), -EINVAL);
    json_object_put(o);
    assert_int_equal(replay_addrs_add_image(&a, NULL), -EINVAL);
}

static void test_taps_and_gate_refusals(void **state)
{
    (void)state;
    struct replay_tap t;
    assert_int_equal(replay_tap_set(&t, "vnet0", GUEST_MAC), 0);
    assert_string_equal(t.name, "vnet0");
    assert_memory_equal(t.mac, guest_mac, 6);
    assert_int_equal(replay_tap_set(&t, "vnet 0", GUEST_MAC), -EINVAL);
    assert_int_equal(replay_tap_set(&t, "vnet0", "ff:ff:ff:ff:ff:ff"), -EINVAL);
    assert_int_equal(replay_tap_set(&t, "vnet0", "nonsense"), -EINVAL);

    struct replay_addrs a;
    addrs(&a);
    struct replay_buf b;
    replay_buf_init(&b, 0);
    fill(&b, 3);
    struct replay_send_stats st;
    /* no taps: nothing sent, every frame is "other" */
    assert_int_equal(replay_send_taps(&b, NULL, 0, &a, NULL, &st), 0);
    assert_int_equal(st.sent, 0);
    assert_int_equal(st.other, 3);
    replay_tap_set(&t, "nosuchtap9", GUEST_MAC);
    assert_int_equal(replay_send_taps(&b, &t, 1, &a, NULL, &st), -ENODEV);
    replay_buf_free(&b);

    /* gate_capture_add refuses before nft */
    const char *taps[] = {"vnet0"}, *bad[] = {"vnet;0"};
    assert_int_equal(gate_capture_add("dom", taps, 1, 0), -EINVAL);
    assert_int_equal(gate_capture_add("dom", bad, 1, 7), -EINVAL);
    assert_int_equal(gate_capture_add("dom", taps, 0, 7), -EINVAL);
    assert_int_equal(gate_capture_add("", taps, 1, 7), -EINVAL);
    assert_int_equal(gate_capture_add("dom", NULL, 1, 7), -EINVAL);
}

/* ---- software segmentation of TCP super-frames ---- */

/* The pseudo-header sum for l4len bytes of TCP after the IP header at ip. */
static uint32_t pseudo_tcp(const uint8_t *ip, bool v4, size_t l4len)
{
    return v4 ? inet_pseudo_sum(ip + 12, ip + 16, 4, 6, (uint32_t)l4len)
              : inet_pseudo_sum(ip + 8, ip + 24, 16, 6, (uint32_t)l4len);
}

#define SEG_OPTS 12 /* NOP NOP timestamps: the options every segment must repeat */

/* A TCP super-frame to the guest: payload_len bytes (i * 7 + 3), timestamps option, the given
 * flags. partial: leave the TCP checksum to "offload" (pseudo-header sum only). */
static size_t tcp_frame(uint8_t *f, bool v4, size_t payload_len, uint8_t flags, uint16_t urp,
                        bool partial)
{
    memcpy(f, guest_mac, 6);
    memcpy(f + 6, peer_mac, 6);
    uint8_t *ip = f + 14;
    size_t iphl = v4 ? 20 : 40, thl = 20 + SEG_OPTS, l4len = thl + payload_len;
    memset(ip, 0, iphl + thl);
    if (v4) {
        f[12] = 0x08;
        f[13] = 0x00;
        ip[0] = 0x45;
        ip[1] = 0x02; /* ECT(0): kept on every segment */
        ip[2] = (uint8_t)((iphl + l4len) >> 8);
        ip[3] = (uint8_t)(iphl + l4len);
        ip[4] = 0xff; /* ID 0xfffe: the increment wraps */
        ip[5] = 0xfe;
        ip[6] = 0x40; /* DF */
        ip[8] = 64;
        ip[9] = 6;
        inet_pton(AF_INET, "10.0.1.1", ip + 12);
        inet_pton(AF_INET, "10.0.0.2", ip + 16);
        put_be16(ip + 10, inet_csum(ip, 20));
    } else {
        f[12] = 0x86;
        f[13] = 0xdd;
        ip[0] = 0x60;
        ip[4] = (uint8_t)(l4len >> 8);
        ip[5] = (uint8_t)l4len;
        ip[6] = 6;
        ip[7] = 64;
        inet_pton(AF_INET6, "fd00::1", ip + 8);
        inet_pton(AF_INET6, "fd00::2", ip + 24);
    }
    uint8_t *th = ip + iphl;
    th[0] = 0x9c; /* source port 40000 */
    th[1] = 0x40;
    th[2] = 0x1f; /* 8080 */
    th[3] = 0x90;
    th[4] = 0xff; /* seq 0xffffff00: advancing wraps */
    th[5] = 0xff;
    th[6] = 0xff;
    th[7] = 0x00;
    th[8] = 0x12; /* ack */
    th[9] = 0x34;
    th[10] = 0x56;
    th[11] = 0x78;
    th[12] = (uint8_t)((thl / 4) << 4);
    th[13] = flags;
    th[14] = 0x01; /* window 502 */
    th[15] = 0xf6;
    th[18] = (uint8_t)(urp >> 8);
    th[19] = (uint8_t)urp;
    const uint8_t opts[SEG_OPTS] = {1, 1, 8, 10, 0, 0, 0, 42, 0, 0, 0, 7};
    memcpy(th + 20, opts, SEG_OPTS);
    for (size_t i = 0; i < payload_len; i++)
        th[thl + i] = (uint8_t)(i * 7 + 3);
    uint32_t ps = pseudo_tcp(ip, v4, l4len);
    uint16_t c = partial ? inet_fold(ps) : (uint16_t)~inet_fold(inet_sum(th, l4len, ps));
    th[16] = (uint8_t)(c >> 8);
    th[17] = (uint8_t)c;
    return 14 + iphl + l4len;
}

struct segs {
    struct replay_buf b;
    int fail_at; /* emit returns -EIO at this segment (or never: -1) */
};

static int collect(void *ud, const uint8_t *f, size_t len)
{
    struct segs *s = ud;
    if ((int)s->b.n == s->fail_at)
        return -EIO;
    return replay_buf_add(&s->b, 0, f, len);
}

/* Every segment: at most mtu of IP packet, right lengths and checksums, headers as the
 * super-frame's except what segmentation changes; the payloads put together are the original. */
static void check_segments(const uint8_t *orig, size_t olen, bool v4, unsigned mtu,
                           const struct replay_buf *b)
{
    size_t iphl = v4 ? 20 : 40, thl = 20 + SEG_OPTS, hdrs = 14 + iphl + thl;
    size_t payload = olen - hdrs, mss = mtu - iphl - thl;
    assert_int_equal(b->n, (payload + mss - 1) / mss);
    const uint8_t *oth = orig + 14 + iphl;
    uint32_t seq0 =
        (uint32_t)oth[4] << 24 | (uint32_t)oth[5] << 16 | (uint32_t)oth[6] << 8 | oth[7];
    uint16_t urp0 = (uint16_t)(oth[18] << 8 | oth[19]);
    uint8_t *joined = malloc(payload);
    assert_non_null(joined);
    size_t off = 0;
    for (size_t i = 0; i < b->n; i++) {
        const uint8_t *f = replay_buf_frame(b, i);
        size_t len = b->recs[i].len, chunk = len - hdrs;
        bool last = i + 1 == b->n;
        assert_true(len - 14 <= mtu);
        assert_true(last ? chunk >= 1 && chunk <= mss : chunk == mss);
        assert_memory_equal(f, orig, 14); /* Ethernet header */
        const uint8_t *ip = f + 14, *th = ip + iphl;
        if (v4) {
            assert_int_equal(ip[2] << 8 | ip[3], iphl + thl + chunk);
            assert_int_equal(ip[4] << 8 | ip[5], (0xfffe + i) & 0xffff);
            assert_int_equal(inet_csum(ip, iphl), 0);
            assert_memory_equal(ip + 6, orig + 14 + 6, 4); /* flags, TTL, protocol */
            assert_memory_equal(ip + 12, orig + 14 + 12, 8);
            assert_int_equal(ip[1], orig[15]);
        } else {
            assert_int_equal(ip[4] << 8 | ip[5], thl + chunk);
            assert_memory_equal(ip, orig + 14, 4);
            assert_memory_equal(ip + 6, orig + 14 + 6, 34);
        }
        uint32_t seq = (uint32_t)th[4] << 24 | (uint32_t)th[5] << 16 | (uint32_t)th[6] << 8 | th[7];
        assert_int_equal(seq, (uint32_t)(seq0 + off));
        assert_memory_equal(th, oth, 4);           /* ports */
        assert_memory_equal(th + 8, oth + 8, 5);   /* ack, data offset */
        assert_memory_equal(th + 14, oth + 14, 2); /* window */
        assert_memory_equal(th + 20, oth + 20, SEG_OPTS);
        uint8_t want = oth[13];
        if (!last)
            want &= (uint8_t) ~(0x01 | 0x08);
        if (i > 0)
            want &= (uint8_t)~0x80;
        if ((want & 0x20) && urp0 <= off)
            want &= (uint8_t)~0x20;
        assert_int_equal(th[13], want);
        if (want & 0x20)
            assert_int_equal(th[18] << 8 | th[19], urp0 - off);
        else
            assert_int_equal(th[18] << 8 | th[19], (oth[13] & 0x20) ? 0 : urp0);
        assert_int_equal(inet_fold(inet_sum(th, thl + chunk, pseudo_tcp(ip, v4, thl + chunk))),
                         0xffff);
        memcpy(joined + off, th + thl, chunk);
        off += chunk;
    }
    assert_int_equal(off, payload);
    assert_memory_equal(joined, orig + hdrs, payload);
    free(joined);
}

static void test_segment(void **state)
{
    (void)state;
    static uint8_t f[70000];
    struct replay_addrs a;
    addrs(&a);
    const struct {
        bool v4;
        size_t payload;
        uint8_t flags;
        uint16_t urp;
        bool partial;
        unsigned mtu;
    } cases[] = {
        {true, 5000, 0x80 | 0x10 | 0x08 | 0x01, 0, false, 1500}, /* CWR ACK PSH FIN */
        {true, 2896, 0x10 | 0x08, 0, true, 1500}, /* two full segments, offload sum */
        {true, 64000, 0x10, 0, false, 1500},
        {true, 3000, 0x10 | 0x20, 2000, false, 1500}, /* URG: pointer into the second segment */
        {true, 1449, 0x10, 0, false, 1500},           /* one byte over: 1448 + 1 */
        {true, 9000, 0x10 | 0x08, 0, false, 576},
        {false, 5000, 0x80 | 0x10 | 0x08 | 0x01, 0, false, 1500},
        {false, 20000, 0x10, 0, true, 1280},
        {false, 60000, 0x10 | 0x08, 0, false, 9000},
    };
    for (size_t k = 0; k < ELEMENTSOF(cases); k++) {
        size_t n = tcp_frame(f, cases[k].v4, cases[k].payload, cases[k].flags, cases[k].urp,
                             cases[k].partial);
        assert_int_equal(replay_validate_frame(&a, f, n), REPLAY_OK);
        struct segs s = {.fail_at = -1};
        replay_buf_init(&s.b, REPLAY_MAX_LIMIT);
        int r = replay_segment(f, n, cases[k].mtu, collect, &s);
        assert_int_equal(r, (int)s.b.n);
        assert_true(r >= 2);
        check_segments(f, n, cases[k].v4, cases[k].mtu, &s.b);
        for (size_t i = 0; i < s.b.n; i++) /* validation still applies to each segment */
            assert_int_equal(replay_validate_frame(&a, replay_buf_frame(&s.b, i), s.b.recs[i].len),
                             REPLAY_OK);
        replay_buf_free(&s.b);
    }
}

static void test_segment_refusals(void **state)
{
    (void)state;
    static uint8_t f[70000], g[70000];
    struct segs s = {.fail_at = -1};
    replay_buf_init(&s.b, REPLAY_MAX_LIMIT);

    /* Fits: nothing to do, emit never called (also with Ethernet padding after the packet). */
    size_t n = tcp_frame(f, true, 1448, 0x10, 0, false);
    assert_int_equal(replay_segment(f, n, 1500, collect, &s), 0);
    memset(f + n, 0, 30);
    assert_int_equal(replay_segment(f, n + 30, 1500, collect, &s), 0);
    n = tcp_frame(f, false, 1428, 0x10, 0, false);
    assert_int_equal(replay_segment(f, n, 1500, collect, &s), 0);
    assert_int_equal(s.b.n, 0);

    /* Not TCP: UDP, a fragment, IPv6 with an extension header, ARP-sized garbage. */
    n = v4_frame(f, guest_mac, "10.0.0.2", 3000);
    assert_int_equal(replay_segment(f, n, 1500, collect, &s), -EPROTONOSUPPORT);
    n = tcp_frame(f, true, 3000, 0x10, 0, false);
    memcpy(g, f, n);
    g[14 + 6] = 0x20; /* MF */
    g[14 + 10] = g[14 + 11] = 0;
    put_be16(g + 14 + 10, inet_csum(g + 14, 20));
    assert_int_equal(replay_segment(g, n, 1500, collect, &s), -EPROTONOSUPPORT);
    n = tcp_frame(f, false, 3000, 0x10, 0, false);
    memcpy(g, f, n);
    g[14 + 6] = 0; /* hop-by-hop options first */
    assert_int_equal(replay_segment(g, n, 1500, collect, &s), -EPROTONOSUPPORT);
    n = v4_frame(f, guest_mac, "10.0.0.2", 3000);
    f[12] = 0x81; /* VLAN-tagged: not parsed, not split */
    f[13] = 0x00;
    assert_int_equal(replay_segment(f, n, 1500, collect, &s), -EPROTONOSUPPORT);
    assert_int_equal(s.b.n, 0);

    /* A corrupt super-frame is never turned into valid segments. */
    n = tcp_frame(f, true, 3000, 0x10, 0, false);
    memcpy(g, f, n);
    g[n - 1] ^= 0x40; /* payload */
    assert_int_equal(replay_segment(g, n, 1500, collect, &s), -EBADMSG);
    memcpy(g, f, n);
    g[14 + 8] = 3; /* TTL, without fixing the header checksum */
    assert_int_equal(replay_segment(g, n, 1500, collect, &s), -EBADMSG);
    n = tcp_frame(f, false, 3000, 0x10, 0, true);
    memcpy(g, f, n);
    g[14 + 40 + 16] ^= 1; /* neither complete nor the offload sum */
    assert_int_equal(replay_segment(g, n, 1500, collect, &s), -EBADMSG);

    /* Malformed headers. */
    n = tcp_frame(f, true, 3000, 0x10, 0, false);
    memcpy(g, f, n);
    g[14 + 20 + 12] = 0x40; /* data offset 16 bytes */
    assert_int_equal(replay_segment(g, n, 1500, collect, &s), -EBADMSG);
    memcpy(g, f, n);
    g[14 + 20 + 12] = 0xf0; /* data offset 60: a possible length, but the checksum is off */
    assert_int_equal(replay_segment(g, n, 1500, collect, &s), -EBADMSG);
    assert_int_equal(replay_segment(f, n - 100, 1500, collect, &s), -EBADMSG); /* cut */
    assert_int_equal(replay_segment(f, 20, 1500, collect, &s), -EBADMSG);
    assert_int_equal(s.b.n, 0);

    /* No room for a payload byte; bad arguments. */
    assert_int_equal(replay_segment(f, n, 52, collect, &s), -EINVAL);
    assert_int_equal(replay_segment(f, n, 53, collect, &s), 3000); /* MSS 1 */
    replay_buf_free(&s.b);
    replay_buf_init(&s.b, REPLAY_MAX_LIMIT);
    assert_int_equal(replay_segment(NULL, n, 1500, collect, &s), -EINVAL);
    assert_int_equal(replay_segment(f, n, 1500, NULL, &s), -EINVAL);
    assert_int_equal(replay_segment(f, 10, 1500, collect, &s), -EINVAL);

    /* emit's error stops the split and is passed on. */
    s.fail_at = 1;
    assert_int_equal(replay_segment(f, n, 1500, collect, &s), -EIO);
    assert_int_equal(s.b.n, 1);
    replay_buf_free(&s.b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addrs),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_buf_bound),
        cmocka_unit_test(test_pcap_round_trip),
        cmocka_unit_test(test_pcap_bad),
        cmocka_unit_test(test_nflog_parse),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_image_addrs),
        cmocka_unit_test(test_taps_and_gate_refusals),
        cmocka_unit_test(test_partial_checksum),
        cmocka_unit_test(test_session_refusals),
        cmocka_unit_test(test_segment),
        cmocka_unit_test(test_segment_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
