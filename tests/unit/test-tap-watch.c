/* Unit tests of host/tap-watch: frame parsing (crafted IPv4/IPv6 TCP frames, truncated and
 * random ones), the per-connection results and the stale-connection list. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "host/tap-watch.h"

static const char *IMAGE =
    "{\"connections\":["
    "{\"id\":1,\"local\":{\"addr\":\"10.0.2.15\",\"port\":7000},"
    " \"remote\":{\"addr\":\"10.0.3.2\",\"port\":40000},\"snd_seq\":1000,\"rcv_seq\":5000,"
    " \"unacked\":{\"len\":100},\"unsent\":{\"len\":0}},"
    "{\"id\":2,\"local\":{\"addr\":\"10.0.2.15\",\"port\":7001},"
    " \"remote\":{\"addr\":\"10.0.3.2\",\"port\":40001},\"snd_seq\":2000,\"rcv_seq\":6000,"
    " \"unacked\":{\"len\":0},\"unsent\":{\"len\":0}},"
    "{\"id\":3,\"local\":{\"addr\":\"fd00::15\",\"port\":7002},"
    " \"remote\":{\"addr\":\"fd00::2\",\"port\":40002},\"snd_seq\":3000,\"rcv_seq\":7000,"
    " \"unacked\":{\"len\":0},\"unsent\":{\"len\":0}}]}";

static size_t frame4(uint8_t *f, const char *src, uint16_t sport, const char *dst, uint16_t dport,
                     uint32_t seq, uint32_t ack, uint8_t flags, size_t payload)
{
    memset(f, 0, 14 + 20 + 20 + payload);
    f[12] = 0x08;
    f[13] = 0x00;
    uint8_t *ip = f + 14;
    ip[0] = 0x45;
    size_t tot = 20 + 20 + payload;
    ip[2] = (uint8_t)(tot >> 8);
    ip[3] = (uint8_t)tot;
    ip[8] = 64;
    ip[9] = 6;
    inet_pton(AF_INET, src, ip + 12);
    inet_pton(AF_INET, dst, ip + 16);
    uint8_t *t = ip + 20;
    t[0] = (uint8_t)(sport >> 8);
    t[1] = (uint8_t)sport;
    t[2] = (uint8_t)(dport >> 8);
    t[3] = (uint8_t)dport;
    for (int i = 0; i < 4; i++) {
        t[4 + i] = (uint8_t)(seq >> (24 - 8 * i));
        t[8 + i] = (uint8_t)(ack >> (24 - 8 * i));
    }
    t[12] = 5 << 4;
    t[13] = flags;
    return 14 + tot;
}

static size_t frame6(uint8_t *f, const char *src, uint16_t sport, const char *dst, uint16_t dport,
                     uint8_t flags, size_t payload)
{
    memset(f, 0, 14 + 40 + 20 + payload);
    f[12] = 0x86;
    f[13] = 0xdd;
    uint8_t *ip = f + 14;
    ip[0] = 0x60;
    size_t plen = 20 + payload;
    ip[4] = (uint8_t)(plen >> 8);
    ip[5] = (uint8_t)plen;
    ip[6] = 6;
    inet_pton(AF_INET6, src, ip + 8);
    inet_pton(AF_INET6, dst, ip + 24);
    uint8_t *t = ip + 40;
    t[0] = (uint8_t)(sport >> 8);
    t[1] = (uint8_t)sport;
    t[2] = (uint8_t)(dport >> 8);
    t[3] = (uint8_t)dport;
    t[12] = 5 << 4;
    t[13] = flags;
    return 14 + 40 + plen;
}

static json_object *conn(json_object *rep, int idx)
{
    json_object *c;
    json_object_object_get_ex(rep, "connections", &c);
    return json_object_array_get_idx(c, (size_t)idx);
}

static const char *result(json_object *rep, int idx)
{
    json_object *v;
    json_object_object_get_ex(conn(rep, idx), "result", &v);
    return json_object_get_string(v);
}

static void test_results(void **state)
{
    json_object *img = json_tokener_parse(IMAGE);
    struct tap_watch w;
    assert_int_equal(tap_watch_init_conns(&w, img), 0);
    assert_int_equal(w.n, 3);
    assert_int_equal(w.c[0].snd_una, 900);
    assert_int_equal(w.c[0].snd_nxt, 1000);
    w.t0_ns = 1000000000;
    uint8_t f[2048];
    /* conn 1: the peer answers the probe with an ACK within what the guest sent, then data */
    size_t n = frame4(f, "10.0.3.2", 40000, "10.0.2.15", 7000, 5000, 950, 0x10, 0);
    assert_int_equal(tap_watch_feed(&w, f, n, 1005000000), 1);
    n = frame4(f, "10.0.2.15", 7000, "10.0.3.2", 40000, 1000, 5000, 0x18, 200);
    assert_int_equal(tap_watch_feed(&w, f, n, 1020000000), 1);
    /* conn 1: the peer acknowledging what the guest sent after the thaw is not stale */
    n = frame4(f, "10.0.3.2", 40000, "10.0.2.15", 7000, 5000, 1200, 0x10, 0);
    assert_int_equal(tap_watch_feed(&w, f, n, 1021000000), 1);
    assert_false(w.c[0].stale);
    /* conn 2: the peer acknowledges data this state never sent: stale */
    n = frame4(f, "10.0.3.2", 40001, "10.0.2.15", 7001, 6000, 2500, 0x10, 0);
    assert_int_equal(tap_watch_feed(&w, f, n, 1003000000), 1);
    /* unrelated flow, and a non-TCP frame */
    n = frame4(f, "10.0.3.2", 1, "10.0.2.15", 2, 0, 0, 0x10, 0);
    assert_int_equal(tap_watch_feed(&w, f, n, 1003000000), 0);
    f[23] = 17;
    assert_int_equal(tap_watch_feed(&w, f, n, 1003000000), 0);
    /* conn 3 (IPv6): nothing from the peer: stalled */
    n = frame6(f, "fd00::15", 7002, "fd00::2", 40002, 0x10, 0);
    assert_int_equal(tap_watch_feed(&w, f, n, 1003000000), 1);

    json_object *rep = tap_watch_report(&w, NULL);
    assert_string_equal(result(rep, 0), "survived");
    assert_string_equal(result(rep, 1), "stale");
    assert_string_equal(result(rep, 2), "stalled");
    json_object *v;
    json_object_object_get_ex(conn(rep, 0), "stall_ms", &v);
    assert_int_equal(json_object_get_int(v), 20);
    json_object_object_get_ex(conn(rep, 0), "answer_ms", &v);
    assert_int_equal(json_object_get_int(v), 5);
    json_object_object_get_ex(conn(rep, 0), "bytes_from_guest", &v);
    assert_int_equal(json_object_get_int(v), 200);
    json_object_object_get_ex(rep, "survived", &v);
    assert_int_equal(json_object_get_int(v), 1);

    /* the stale list feeds guest-net-reset-stale; its reply marks them reset */
    json_object *stale = tap_watch_stale_list(rep);
    assert_int_equal(json_object_array_length(stale), 1);
    json_object *reply = json_tokener_parse(
        "{\"reset\":1,\"connections\":[{\"local\":{\"addr\":\"10.0.2.15\",\"port\":7001},"
        "\"remote\":{\"addr\":\"10.0.3.2\",\"port\":40001},\"result\":\"reset\"}]}");
    tap_watch_mark_reset(rep, reply);
    assert_string_equal(result(rep, 1), "reset");
    json_object_object_get_ex(rep, "stale", &v);
    assert_int_equal(json_object_get_int(v), 0);
    json_object_object_get_ex(rep, "reset", &v);
    assert_int_equal(json_object_get_int(v), 1);
    json_object_put(reply);
    json_object_put(stale);
    json_object_put(rep);

    /* an RST, and a connection the agent failed to thaw, are reset */
    n = frame6(f, "fd00::2", 40002, "fd00::15", 7002, 0x04, 0);
    assert_int_equal(tap_watch_feed(&w, f, n, 1003000000), 1);
    json_object *thaw = json_tokener_parse(
        "{\"connections\":[{\"id\":1,\"local\":{},\"remote\":{},\"result\":\"failed\"}]}");
    rep = tap_watch_report(&w, thaw);
    assert_string_equal(result(rep, 0), "reset");
    assert_string_equal(result(rep, 2), "reset");
    json_object_put(rep);
    json_object_put(thaw);
    tap_watch_stop(&w);
    json_object_put(img);
}

static void test_malformed(void **state)
{
    json_object *img = json_tokener_parse(IMAGE);
    struct tap_watch w;
    assert_int_equal(tap_watch_init_conns(&w, img), 0);
    uint8_t f[2048];
    size_t n = frame4(f, "10.0.3.2", 40000, "10.0.2.15", 7000, 1, 1, 0x10, 10);
    /* every truncation is refused or ignored, never read past the end */
    for (size_t l = 0; l < n; l++) {
        uint8_t *copy = malloc(l ? l : 1);
        memcpy(copy, f, l);
        assert_true(tap_watch_feed(&w, copy, l, 1) <= 0);
        free(copy);
    }
    /* lying lengths */
    f[14 + 2] = 0xff;
    assert_int_equal(tap_watch_feed(&w, f, n, 1), -EINVAL);
    n = frame4(f, "10.0.3.2", 40000, "10.0.2.15", 7000, 1, 1, 0x10, 10);
    f[14 + 20 + 12] = 0xf0; /* data offset 60 > segment */
    assert_int_equal(tap_watch_feed(&w, f, n, 1), -EINVAL);
    n = frame6(f, "fd00::2", 40002, "fd00::15", 7002, 0x10, 0);
    f[14 + 5] = 0xff;
    assert_int_equal(tap_watch_feed(&w, f, n, 1), -EINVAL);
    /* random bytes */
    srand(42);
    for (int i = 0; i < 20000; i++) {
        size_t l = (size_t)rand() % 200;
        uint8_t *buf = malloc(l ? l : 1);
        for (size_t k = 0; k < l; k++)
            buf[k] = (uint8_t)rand();
        if (l > 14 && (i & 1)) {
            buf[12] = 0x08;
            buf[13] = 0;
        }
        (void)tap_watch_feed(&w, buf, l, 1);
        free(buf);
    }
    tap_watch_stop(&w);
    tap_watch_stop(&w); /* idempotent */
    json_object_put(img);
}

/* A TSO frame from the guest, captured truncated: its length comes from the IP header, and
 * the peer's ACK of it is not taken for staleness. */
static void test_truncated_tso(void **state)
{
    json_object *img = json_tokener_parse(IMAGE);
    struct tap_watch w;
    assert_int_equal(tap_watch_init_conns(&w, img), 0);
    static uint8_t f[14 + 40 + 30000];
    size_t n = frame4(f, "10.0.2.15", 7001, "10.0.3.2", 40001, 2000, 6000, 0x18, 30000);
    assert_int_equal(tap_watch_feed_wire(&w, f, 256, n, 5), 1);
    assert_int_equal(w.c[1].bytes_from_guest, 30000);
    assert_int_equal(w.c[1].guest_end, 32000);
    n = frame4(f, "10.0.3.2", 40001, "10.0.2.15", 7001, 6000, 32000, 0x10, 0);
    assert_int_equal(tap_watch_feed(&w, f, n, 6), 1);
    assert_false(w.c[1].stale);
    /* a frame claiming more than the wire carried is refused */
    n = frame4(f, "10.0.2.15", 7001, "10.0.3.2", 40001, 2000, 6000, 0x18, 30000);
    assert_int_equal(tap_watch_feed_wire(&w, f, 256, 1000, 5), -EINVAL);
    tap_watch_stop(&w);
    json_object_put(img);
}

static void test_bad_image(void **state)
{
    struct tap_watch w;
    json_object *img = json_tokener_parse("{\"connections\":7}");
    assert_int_equal(tap_watch_init_conns(&w, img), -EINVAL);
    tap_watch_stop(&w);
    json_object_put(img);
    img = json_tokener_parse("{\"connections\":[{\"local\":{\"addr\":\"x\",\"port\":1}}]}");
    assert_int_equal(tap_watch_init_conns(&w, img), 0);
    assert_int_equal(w.n, 0); /* unusable entries are skipped */
    tap_watch_stop(&w);
    json_object_put(img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_results),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_truncated_tso),
        cmocka_unit_test(test_bad_image),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
