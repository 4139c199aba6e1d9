/* libFuzzer target: host/replay's code over untrusted bytes: the pcap reader (a bundle's
 * held.pcap), the nflog message parser, and the segmenter of super-frames. The first input
 * byte picks which and whether frames are validated. Oracles: a refused pcap leaves the buffer
 * as it was; an accepted one re-encodes and re-parses to the same frames; every kept frame is
 * within the bound and, when validation was asked for, validates; every segment fits the MTU,
 * carries right checksums and, put together, the super-frame's payload, and validates when the
 * super-frame did. */
#include "host/replay.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LIMIT (64 * 1024)

static void addrs(struct replay_addrs *a)
{
    memset(a, 0, sizeof(*a));
    replay_addrs_add_mac(a, "52:54:00:12:34:56");
    replay_addrs_add_mac(a, "02:00:00:00:09:02");
    replay_addrs_add_ip(a, "10.77.9.2", 1);
    replay_addrs_add_ip(a, "10.0.0.2", -1);
    replay_addrs_add_ip(a, "fd00::2", 0);
}

static void check_kept(const struct replay_buf *b, const struct replay_addrs *a)
{
    if (b->used > b->limit)
        abort();
    size_t sum = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (b->recs[i].len < REPLAY_MIN_FRAME || b->recs[i].len > REPLAY_MAX_FRAME)
            abort();
        if (a && replay_validate_frame(a, replay_buf_frame(b, i), b->recs[i].len) != REPLAY_OK)
            abort();
        sum += b->recs[i].len;
    }
    if (sum != b->used)
        abort();
}

static uint32_t sum16(const uint8_t *p, size_t len, uint32_t s)
{
    for (size_t i = 0; i + 1 < len; i += 2)
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1)
        s += (uint32_t)p[len - 1] << 8;
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return s;
}

struct seg_check {
    const uint8_t *orig;
    size_t hdrs, payload, off; /* the super-frame's header bytes and payload; payload seen */
    unsigned mtu;
    const struct replay_addrs *a; /* check each segment validates (NULL: not asked) */
    int n;
};

/* Every segment: within the MTU, the next slice of the payload, right checksums. */
static int seg_emit(void *ud, const uint8_t *f, size_t len)
{
    struct seg_check *c = ud;
    if (len < c->hdrs || len - 14 > c->mtu || len - c->hdrs > c->payload - c->off)
        abort();
    if (memcmp(f + c->hdrs, c->orig + c->hdrs + c->off, len - c->hdrs) != 0)
        abort();
    bool v4 = f[12] == 0x08;
    const uint8_t *ip = f + 14;
    size_t iphl = v4 ? (size_t)(ip[0] & 0x0f) * 4 : 40;
    size_t l4 = len - 14 - iphl;
    uint32_t ps = v4 ? sum16(ip + 12, 8, 0) : sum16(ip + 8, 32, 0);
    ps += 6 + (uint32_t)l4;
    if (sum16(ip + iphl, l4, ps) != 0xffff)
        abort();
    if (v4 && sum16(ip, iphl, 0) != 0xffff)
        abort();
    if (c->a && replay_validate_frame(c->a, f, len) != REPLAY_OK)
        abort();
    c->off += len - c->hdrs;
    c->n++;
    return 0;
}

static void fuzz_segment(const uint8_t *data, size_t size, const struct replay_addrs *a)
{
    if (size < 2)
        return;
    unsigned mtu = 40 + ((unsigned)data[0] << 8 | data[1]) % 9000;
    data += 2;
    size -= 2;
    struct seg_check c = {.orig = data, .mtu = mtu};
    if (size >= 14 + 40 && (data[12] == 0x08 || data[12] == 0x86)) {
        bool v4 = data[12] == 0x08;
        size_t iphl = v4 ? (size_t)(data[14] & 0x0f) * 4 : 40;
        size_t pkt =
            v4 ? (size_t)(data[16] << 8 | data[17]) : 40 + (size_t)(data[18] << 8 | data[19]);
        if (14 + iphl + 13 < size) {
            c.hdrs = 14 + iphl + (size_t)(data[14 + iphl + 12] >> 4) * 4;
            c.payload = pkt > c.hdrs - 14 ? pkt - (c.hdrs - 14) : 0;
        }
    }
    if (a && replay_validate_frame(a, data, size) == REPLAY_OK)
        c.a = a;
    int r = replay_segment(data, size, mtu, seg_emit, &c);
    if (r > 0 && (r != c.n || c.off != c.payload || r < 2))
        abort();
    if (r == 0 && c.n != 0)
        abort();
    if (r < 0 && r != -EINVAL && r != -EBADMSG && r != -EPROTONOSUPPORT && r != -ENOMEM)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    struct replay_addrs a;
    addrs(&a);
    const struct replay_addrs *va = (mode & 2) ? &a : NULL;
    struct replay_buf b;
    if (replay_buf_init(&b, LIMIT) < 0)
        abort();

    if (mode & 4) {
        fuzz_segment(data, size, va);
        replay_buf_free(&b);
        return 0;
    }
    if (mode & 1) {
        int r = replay_nflog_parse(data, size, &a, &b);
        if (r < 0 && r != -EBADMSG && r != -ENOMEM)
            abort();
        check_kept(&b, &a);
        replay_buf_free(&b);
        return 0;
    }

    int r = replay_pcap_parse(data, size, va, &b);
    if (r < 0) {
        if (b.n != 0 || b.used != 0 || b.dropped_pkts != 0)
            abort();
        replay_buf_free(&b);
        return 0;
    }
    check_kept(&b, va);
    uint8_t *p;
    size_t len;
    if (replay_pcap_encode(&b, &p, &len) == 0) {
        struct replay_buf c;
        replay_buf_init(&c, LIMIT);
        if (replay_pcap_parse(p, len, NULL, &c) != 0 || c.n != b.n)
            abort();
        for (size_t i = 0; i < b.n; i++)
            if (c.recs[i].len != b.recs[i].len || c.recs[i].ts_ns != b.recs[i].ts_ns ||
                memcmp(replay_buf_frame(&c, i), replay_buf_frame(&b, i), b.recs[i].len) != 0)
                abort();
        replay_buf_free(&c);
        free(p);
    }
    replay_buf_free(&b);
    return 0;
}
