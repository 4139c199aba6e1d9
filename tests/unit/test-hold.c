/* Unit tests of host/hold that need no kernel: the file names, a spec from a socket image and
 * taps, the handover reader's refusal of hostile frames (untrusted pcap), and the clean-up of
 * what a dead holder left (its record and socket file) without a process or an nft call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "host/hold.h"
#include "common/macro.h"
#include "common/util.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const uint8_t guest_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

static void test_id(void **state)
{
    (void)state;
    char a[HOLD_ID_LEN + 1], b[HOLD_ID_LEN + 1];
    assert_int_equal(hold_id("vm1", a), 0);
    assert_int_equal(strlen(a), HOLD_ID_LEN);
    assert_int_equal(hold_id("vm1", b), 0);
    assert_string_equal(a, b);
    assert_int_equal(hold_id("vm2", b), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(hold_id("../../etc", b), 0); /* a name never becomes a path */
    assert_null(strchr(b, '/'));
    assert_int_equal(hold_id("", b), -EINVAL);
    assert_int_equal(hold_id(NULL, b), -EINVAL);
}

static json_object *image(const char *id, const char *const *addrs, size_t n)
{
    json_object *o = json_object_new_object(), *conns = json_object_new_array();
    if (id)
        json_object_object_add(o, "image_id", json_object_new_string(id));
    for (size_t i = 0; i < n; i++) {
        json_object *c = json_object_new_object(), *l = json_object_new_object();
        json_object_object_add(l, "addr", json_object_new_string(addrs[i]));
        json_object_object_add(l, "port", json_object_new_int(80));
        json_object_object_add(c, "local", l);
        json_object_array_add(conns, c);
    }
    json_object_object_add(o, "connections", conns);
    return o;
}

static void test_spec_fill(void **state)
{
    (void)state;
    struct replay_tap taps[2];
    assert_int_equal(replay_tap_set(&taps[0], "vnet0", "52:54:00:12:34:56"), 0);
    assert_int_equal(replay_tap_set(&taps[1], "vnet1", "52:54:00:12:34:57"), 0);
    static const char *const addrs[] = {"10.0.0.2", "::ffff:10.0.0.2", "fd00::2", "127.0.0.1",
                                        "0.0.0.0"};
    json_object *img = image("abc123", addrs, ELEMENTSOF(addrs));
    struct hold_spec s;
    assert_int_equal(hold_spec_fill(&s, "vm1", taps, 2, img, 0), 0);
    assert_string_equal(s.domain, "vm1");
    assert_string_equal(s.image_id, "abc123");
    assert_int_equal(s.addrs.n_macs, 2);
    assert_int_equal(s.addrs.n_ips, 2); /* 10.0.0.2 once, fd00::2; never loopback or any */
    assert_false(s.addrs.any_ip);
    assert_int_equal(s.n_taps, 2);
    assert_string_equal(s.taps[1], "vnet1");
    json_object_put(img);

    img = image(NULL, addrs, 1); /* no image id: a restore could never claim the frames */
    assert_int_equal(hold_spec_fill(&s, "vm1", taps, 2, img, 0), -EINVAL);
    json_object_put(img);
    static const char *const bad[] = {"not-an-address"};
    img = image("x", bad, 1);
    assert_int_equal(hold_spec_fill(&s, "vm1", taps, 2, img, 0), -EINVAL);
    assert_int_equal(hold_spec_fill(&s, "vm1", taps, 0, img, 0), -EINVAL);
    assert_int_equal(hold_spec_fill(&s, "", taps, 1, img, 0), -EINVAL);
    assert_int_equal(hold_spec_fill(&s, "vm1", taps, 1, NULL, 0), -EINVAL);
    json_object_put(img);
}

/* An IPv4/UDP frame to dst_mac/dst_ip with a valid header. */
static size_t frame(uint8_t *f, const uint8_t *dst_mac, uint8_t last_ip_byte)
{
    memset(f, 0, 60);
    memcpy(f, dst_mac, 6);
    f[6] = 0x02;
    f[12] = 0x08;
    uint8_t *ip = f + 14;
    ip[0] = 0x45;
    ip[3] = 28;
    ip[8] = 64;
    ip[9] = 17;
    ip[12] = 10;
    ip[15] = 1;
    ip[16] = 10;
    ip[19] = last_ip_byte;
    return 14 + 28;
}

static void test_read_frames(void **state)
{
    (void)state;
    char dir[] = "/tmp/test-hold-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/x.pcap", dir);
    struct replay_buf b;
    replay_buf_init(&b, 0);
    uint8_t f[64];
    const uint8_t other[6] = {0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc};
    replay_buf_add(&b, 1, f, frame(f, guest_mac, 2));
    replay_buf_add(&b, 2, f, frame(f, other, 2));     /* a stranger's MAC */
    replay_buf_add(&b, 3, f, frame(f, guest_mac, 9)); /* another IP: kept, the replay checks IPs */
    size_t n = frame(f, guest_mac, 2);
    f[14] = 0x44; /* IPv4 header length 16: malformed */
    replay_buf_add(&b, 4, f, n);
    assert_int_equal(replay_pcap_write(&b, path), 0);
    replay_buf_free(&b);

    struct replay_tap t;
    assert_int_equal(replay_tap_set(&t, "vnet0", "52:54:00:12:34:56"), 0);
    struct replay_buf out;
    replay_buf_init(&out, 0);
    assert_int_equal(hold_read_frames(path, &t, 1, &out), 0);
    assert_int_equal(out.n, 2);
    assert_int_equal(out.rejected_pkts, 2);
    assert_int_equal(out.recs[0].ts_ns, 1);
    assert_int_equal(out.recs[1].ts_ns, 3);
    replay_buf_free(&out);

    /* A file larger than the bound allows is not even read; a cut file is refused whole. */
    replay_buf_init(&out, 20);
    assert_int_equal(hold_read_frames(path, &t, 1, &out), -EFBIG);
    replay_buf_free(&out);
    FILE *fp = fopen(path, "r+");
    assert_non_null(fp);
    assert_int_equal(ftruncate(fileno(fp), 24 + 16 + 10), 0);
    fclose(fp);
    replay_buf_init(&out, 0);
    assert_int_equal(hold_read_frames(path, &t, 1, &out), -EBADMSG);
    assert_int_equal(out.n, 0);
    replay_buf_free(&out);
    unlink(path);
    rmdir(dir);
}

static void test_no_holder(void **state)
{
    (void)state;
    char dir[] = "/tmp/test-hold-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct replay_tap t;
    assert_int_equal(replay_tap_set(&t, "vnet0", "52:54:00:12:34:56"), 0);
    struct replay_buf out;
    replay_buf_init(&out, 0);
    struct hold_handover h;
    assert_int_equal(hold_stop(dir, "vm1"), 0);
    assert_int_equal(hold_handover(dir, "vm1", "img", &t, 1, &out, &h), 0);
    assert_int_equal(out.n, 0);
    json_object *st = NULL;
    assert_int_equal(hold_status(dir, "vm1", &st), -ENOENT);
    assert_int_equal(hold_recover(dir), 0);
    assert_int_equal(hold_stop("relative/dir", "vm1"), -EINVAL);

    /* What a dead holder leaves: its record (with a pid that is not a holder) and socket
     * file. Handover and recovery clean it, never signalling that pid. */
    char id[HOLD_ID_LEN + 1], p[512];
    assert_int_equal(hold_id("vm1", id), 0);
    snprintf(p, sizeof(p), "%s/hold", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    char rec[512], sock[512];
    snprintf(rec, sizeof(rec), "%s/hold/%s.json", dir, id);
    snprintf(sock, sizeof(sock), "%s/hold/%s.sock", dir, id);
    char text[128];
    snprintf(text, sizeof(text), "{\"domain\":\"vm1\",\"pid\":%d}", (int)getpid());
    assert_int_equal(write_file_atomic(rec, text, strlen(text), 0600), 0);
    assert_int_equal(write_file_atomic(sock, "", 0, 0600), 0);
    assert_int_equal(hold_handover(dir, "vm1", "img", &t, 1, &out, &h), 0);
    assert_int_equal(access(rec, F_OK), -1);
    assert_int_equal(access(sock, F_OK), -1);
    assert_int_equal(write_file_atomic(rec, text, strlen(text), 0600), 0);
    assert_int_equal(hold_recover(dir), 1);
    assert_int_equal(access(rec, F_OK), -1);
    /* A record being written by a starter (no pid yet) is left alone for a while. */
    assert_int_equal(write_file_atomic(rec, "{\"domain\":\"vm1\"}", 16, 0600), 0);
    assert_int_equal(hold_recover(dir), 0);
    assert_int_equal(access(rec, F_OK), 0);
    assert_int_equal(hold_stop(dir, "vm1"), 1);
    assert_int_equal(access(rec, F_OK), -1);
    replay_buf_free(&out);
    rm_rf(dir);
}

static void test_start_refusals(void **state)
{
    (void)state;
    struct hold_spec s = {0};
    snprintf(s.domain, sizeof(s.domain), "vm1");
    pid_t pid;
    char err[256] = "";
    assert_int_equal(hold_start("relative", &s, NULL, &pid, err, sizeof(err)), -EINVAL);
    assert_true(err[0] != 0);
    char longdir[200];
    memset(longdir, 'a', sizeof(longdir) - 1);
    longdir[0] = '/';
    longdir[sizeof(longdir) - 1] = 0;
    assert_int_equal(hold_start(longdir, &s, NULL, &pid, err, sizeof(err)), -ENAMETOOLONG);
    char dir[] = "/tmp/test-hold-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(hold_start(dir, &s, NULL, &pid, err, sizeof(err)), -EINVAL); /* no MAC */
    assert_int_equal(hold_start(dir, NULL, NULL, &pid, err, sizeof(err)), -EINVAL);
    rm_rf(dir);
    char *argv[] = {(char *)HOLD_RUN_ARG, (char *)"/tmp", (char *)"zz", NULL};
    assert_int_equal(hold_main(3, argv), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id),
        cmocka_unit_test(test_spec_fill),
        cmocka_unit_test(test_read_frames),
        cmocka_unit_test(test_no_holder),
        cmocka_unit_test(test_start_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
