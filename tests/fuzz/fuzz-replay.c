/* libFuzzer target: host/replay's readers of untrusted bytes, the pcap reader (a bundle's
 * held.pcap) and the nflog message parser. The first input byte picks the reader and whether
 * frames are validated. Oracles: a refused pcap leaves the buffer as it was; an accepted one
 * re-encodes and re-parses to the same frames; every kept frame is within the bound and, when
 * validation was asked for, validates. */
#include "host/replay.h"

#include <errno.h>
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
