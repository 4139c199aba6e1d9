/* Unit tests of host/history (the rollback decision table, the file: round trip, bound,
 * malformed files taken as no history and kept aside, hostile uuids) and of the peer probe's
 * packet (host/peer-probe: headers and checksums). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/util.h"
#include "host/history.h"
#include "host/peer-probe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define UUID  "0f8fad5b-d9cb-469f-a165-70867728950e"
#define IMG_B "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0"
#define IMG_C "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0"

static void hist(struct history *h, int n, const enum history_kind *k, const char *const *ids)
{
    memset(h, 0, sizeof(*h));
    snprintf(h->uuid, sizeof(h->uuid), UUID);
    for (int i = 0; i < n; i++) {
        struct history_event e = {.kind = k[i], .time_ns = (uint64_t)i + 1};
        snprintf(e.image_id, sizeof(e.image_id), "%s", ids[i]);
        history_push(h, &e);
    }
}

/* One row of the decision table: the last event (or none), the bundle, mode, VM state. */
struct row {
    int has;                /* 0: no history */
    enum history_kind last; /* the history's last event */
    const char *last_id;
    const char *bundle; /* the restored bundle's image id */
    bool cont, active;
    bool rollback, known;
    const char *reason_has;
};

static void test_decision_table(void **state)
{
    (void)state;
    const struct row rows[] = {
        /* stopped at B, nothing since: not a rollback */
        {1, HISTORY_STOPPED, IMG_B, IMG_B, false, false, false, true, "not run since"},
        /* stopped at C, restoring B (older or foreign): rollback */
        {1, HISTORY_STOPPED, IMG_C, IMG_B, false, false, true, true, "another checkpoint"},
        /* continue-mode checkpoint of B: the domain ran on */
        {1, HISTORY_CONTINUED, IMG_B, IMG_B, true, false, true, true, "ran on after this"},
        {1, HISTORY_CONTINUED, IMG_C, IMG_B, false, false, true, true,
         "another --continue checkpoint"},
        /* B was restored already: restoring it again is a rollback */
        {1, HISTORY_RESTORED, IMG_B, IMG_B, false, false, true, true, "restored before"},
        {1, HISTORY_RESTORED, IMG_C, IMG_B, false, false, true, true, "another checkpoint"},
        {1, HISTORY_MIGRATED, "", IMG_B, false, false, true, true, "migrated"},
        /* a "stopped at B" record but a --continue manifest (inconsistent): rollback */
        {1, HISTORY_STOPPED, IMG_B, IMG_B, true, false, true, true, "another checkpoint"},
        /* the domain runs now: always a rollback */
        {1, HISTORY_STOPPED, IMG_B, IMG_B, false, true, true, true, "running or paused"},
        /* no history: the manifest's mode and the VM state decide */
        {0, 0, NULL, IMG_B, false, false, false, false, "no history"},
        {0, 0, NULL, IMG_B, true, false, true, false, "--continue"},
        {0, 0, NULL, IMG_B, false, true, true, false, "running or paused"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *w = &rows[i];
        struct history h;
        const enum history_kind k[] = {HISTORY_CONTINUED, w->last};
        const char *ids[] = {IMG_C, w->last_id};
        hist(&h, 2, k, ids);
        struct history_decision d;
        history_decide(w->has ? &h : NULL, w->bundle, w->cont, w->active, &d);
        if (d.rollback != w->rollback || d.known != w->known || !strstr(d.reason, w->reason_has))
            fail_msg("row %zu: rollback %d known %d reason '%s'", i, d.rollback, d.known, d.reason);
    }
    /* An empty history is no history. */
    struct history empty = {0};
    struct history_decision d;
    history_decide(&empty, IMG_B, false, false, &d);
    assert_false(d.rollback);
    assert_false(d.known);
}

/* The sequences of the issue, event by event. */
static void test_sequences(void **state)
{
    (void)state;
    struct history h = {0};
    struct history_decision d;
    struct history_event e = {.kind = HISTORY_STOPPED};
    snprintf(h.uuid, sizeof(h.uuid), UUID);
    /* stop-mode checkpoint B, restore B: fine; restore B again: rollback */
    snprintf(e.image_id, sizeof(e.image_id), IMG_B);
    history_push(&h, &e);
    history_decide(&h, IMG_B, false, false, &d);
    assert_false(d.rollback);
    e.kind = HISTORY_RESTORED;
    history_push(&h, &e);
    history_decide(&h, IMG_B, false, false, &d);
    assert_true(d.rollback);
    /* then a stop-mode checkpoint C: restoring C is fine, B is a rollback */
    e.kind = HISTORY_STOPPED;
    snprintf(e.image_id, sizeof(e.image_id), IMG_C);
    history_push(&h, &e);
    history_decide(&h, IMG_C, false, false, &d);
    assert_false(d.rollback);
    history_decide(&h, IMG_B, false, false, &d);
    assert_true(d.rollback);
}

static void test_push_bound(void **state)
{
    (void)state;
    struct history h = {0};
    for (int i = 0; i < HISTORY_MAX + 5; i++) {
        struct history_event e = {.kind = HISTORY_RESTORED, .time_ns = (uint64_t)i};
        snprintf(e.image_id, sizeof(e.image_id), "%032x", i);
        history_push(&h, &e);
    }
    assert_int_equal(h.n, HISTORY_MAX);
    assert_int_equal(h.ev[0].time_ns, 5);
    assert_int_equal(h.ev[HISTORY_MAX - 1].time_ns, HISTORY_MAX + 4);
}

static void test_uuid(void **state)
{
    (void)state;
    assert_true(history_uuid_valid(UUID));
    assert_true(history_uuid_valid("0F8FAD5B-D9CB-469F-A165-70867728950E"));
    assert_false(history_uuid_valid(NULL));
    assert_false(history_uuid_valid(""));
    assert_false(history_uuid_valid("../../../../etc/passwd-aaaaaaaaaaaaaa"));
    assert_false(history_uuid_valid("0f8fad5b-d9cb-469f-a165-70867728950"));
    assert_false(history_uuid_valid("0f8fad5b-d9cb-469f-a165-70867728950e0"));
    assert_false(history_uuid_valid("0f8fad5bxd9cb-469f-a165-70867728950e"));
    assert_false(history_uuid_valid("0f8fad5b-d9cb-469f-a165-70867728950g"));
}

static void test_parse(void **state)
{
    (void)state;
    struct history h;
    char err[128];
    const char *good = "{\"version\":1,\"uuid\":\"" UUID "\",\"events\":[{\"event\":\"stopped\","
                       "\"image_id\":\"" IMG_B "\",\"time_ns\":5},{\"event\":\"migrated\","
                       "\"image_id\":\"\",\"time_ns\":6}]}";
    assert_int_equal(history_parse(good, strlen(good), &h, err, sizeof(err)), 0);
    assert_int_equal(h.n, 2);
    assert_int_equal(h.ev[0].kind, HISTORY_STOPPED);
    assert_string_equal(h.ev[0].image_id, IMG_B);
    assert_int_equal(h.ev[1].kind, HISTORY_MIGRATED);
    /* format and parse again: the same history */
    char *text = history_format(&h);
    assert_non_null(text);
    struct history h2;
    assert_int_equal(history_parse(text, strlen(text), &h2, err, sizeof(err)), 0);
    assert_memory_equal(&h, &h2, sizeof(h));
    free(text);

    const char *bad[] = {
        "",
        "{",
        "[]",
        "{\"version\":2,\"uuid\":\"" UUID "\",\"events\":[]}",
        "{\"version\":1,\"uuid\":\"../x\",\"events\":[]}",
        "{\"version\":1,\"uuid\":\"" UUID "\"}",
        "{\"version\":1,\"uuid\":\"" UUID "\",\"events\":[{\"event\":\"jumped\",\"image_id\":"
        "\"" IMG_B "\",\"time_ns\":1}]}",
        "{\"version\":1,\"uuid\":\"" UUID "\",\"events\":[{\"event\":\"stopped\",\"image_id\":"
        "\"\",\"time_ns\":1}]}",
        "{\"version\":1,\"uuid\":\"" UUID "\",\"events\":[{\"event\":\"stopped\",\"image_id\":"
        "\"zz\",\"time_ns\":1}]}",
        "{\"version\":1,\"uuid\":\"" UUID "\",\"events\":[{\"event\":\"stopped\",\"image_id\":"
        "\"" IMG_B "\",\"time_ns\":-1}]}",
        "{\"version\":1,\"uuid\":\"" UUID "\",\"events\":[{\"event\":\"stopped\",\"image_id\":"
        "\"" IMG_B "\"}]}",
        "{\"version\":1,\"uuid\":\"" UUID "\",\"events\":[]} trailing",
        "{\"version\":1,\"uuid\":\"" UUID "\",\"events\":[7]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        if (history_parse(bad[i], strlen(bad[i]), &h, err, sizeof(err)) != -EBADMSG || !err[0])
            fail_msg("bad input %zu accepted", i);
        assert_int_equal(h.n, 0);
    }
    /* more events than the bound */
    char big[8192];
    size_t off =
        (size_t)snprintf(big, sizeof(big), "{\"version\":1,\"uuid\":\"" UUID "\",\"events\":[");
    for (int i = 0; i <= HISTORY_MAX; i++)
        off += (size_t)snprintf(
            big + off, sizeof(big) - off,
            "%s{\"event\":\"restored\",\"image_id\":\"" IMG_B "\",\"time_ns\":1}", i ? "," : "");
    snprintf(big + off, sizeof(big) - off, "]}");
    assert_int_equal(history_parse(big, strlen(big), &h, err, sizeof(err)), -EBADMSG);
}

static void test_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/netckpt-test-history-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct history h;
    char err[512], path[256], bad[256];
    snprintf(path, sizeof(path), "%s/history/" UUID ".json", dir);
    snprintf(bad, sizeof(bad), "%s/history/" UUID ".json.bad", dir);

    assert_int_equal(history_load(dir, UUID, &h, err, sizeof(err)), -ENOENT);
    assert_int_equal(history_record(dir, UUID, HISTORY_STOPPED, IMG_B, 10), 0);
    assert_int_equal(history_record(dir, UUID, HISTORY_RESTORED, IMG_B, 11), 0);
    assert_int_equal(history_load(dir, UUID, &h, err, sizeof(err)), 0);
    assert_int_equal(h.n, 2);
    assert_int_equal(h.ev[1].kind, HISTORY_RESTORED);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* bounded on disk too */
    for (int i = 0; i < 3 * HISTORY_MAX; i++)
        assert_int_equal(history_record(dir, UUID, HISTORY_CONTINUED, IMG_C, (uint64_t)i), 0);
    assert_int_equal(history_load(dir, UUID, &h, err, sizeof(err)), 0);
    assert_int_equal(h.n, HISTORY_MAX);

    /* refused arguments: no file created under a hostile name */
    assert_int_equal(history_record(dir, "../../x", HISTORY_STOPPED, IMG_B, 1), -EINVAL);
    assert_int_equal(history_record(dir, UUID, HISTORY_STOPPED, "", 1), -EINVAL);
    assert_int_equal(history_record(dir, UUID, HISTORY_STOPPED, "not/hex", 1), -EINVAL);
    assert_int_equal(history_record(dir, UUID, (enum history_kind)9, IMG_B, 1), -EINVAL);
    assert_int_equal(history_load(dir, "nope", &h, err, sizeof(err)), -EINVAL);
    assert_int_equal(history_load(NULL, UUID, &h, err, sizeof(err)), -EINVAL);

    /* a malformed file: no history (-EBADMSG with the path), then moved aside on record */
    assert_int_equal(write_file_atomic(path, "{garbage", 8, 0600), 0);
    err[0] = 0;
    assert_int_equal(history_load(dir, UUID, &h, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, path));
    assert_int_equal(history_record(dir, UUID, HISTORY_STOPPED, IMG_B, 20), 0);
    assert_int_equal(history_load(dir, UUID, &h, err, sizeof(err)), 0);
    assert_int_equal(h.n, 1);
    assert_int_equal(stat(bad, &st), 0);

    /* another domain's history under this name is malformed */
    const char *other = "{\"version\":1,\"uuid\":\"11111111-2222-3333-4444-555555555555\","
                        "\"events\":[]}";
    assert_int_equal(write_file_atomic(path, other, strlen(other), 0600), 0);
    assert_int_equal(history_load(dir, UUID, &h, err, sizeof(err)), -EBADMSG);
    /* an oversized file */
    size_t n = HISTORY_MAX_FILE + 10;
    char *huge = malloc(n);
    assert_non_null(huge);
    memset(huge, ' ', n);
    assert_int_equal(write_file_atomic(path, huge, n, 0600), 0);
    free(huge);
    assert_int_equal(history_load(dir, UUID, &h, err, sizeof(err)), -EBADMSG);
    assert_int_equal(rm_rf(dir), 0);
}

static uint16_t csum(const uint8_t *p, size_t n, uint32_t s)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)s;
}

static void test_probe_packet(void **state)
{
    (void)state;
    uint8_t b[64];
    int n = peer_probe_build("10.0.2.15", 40000, "10.0.3.2", 7001, 1000, 2000, b, sizeof(b));
    assert_int_equal(n, 40);
    assert_int_equal(b[0], 0x45);
    assert_int_equal(b[9], 6);
    assert_int_equal(csum(b, 20, 0), 0xffff); /* IP header checksum */
    uint8_t *t = b + 20;
    assert_int_equal(t[0] << 8 | t[1], 40000);
    assert_int_equal(t[2] << 8 | t[3], 7001);
    uint32_t seq = (uint32_t)t[4] << 24 | (uint32_t)t[5] << 16 | (uint32_t)t[6] << 8 | t[7];
    uint32_t ack = (uint32_t)t[8] << 24 | (uint32_t)t[9] << 16 | (uint32_t)t[10] << 8 | t[11];
    assert_int_equal(seq, 999);
    assert_int_equal(ack, 2000);
    assert_int_equal(t[13], 0x10);               /* ACK only: never an RST or a SYN */
    assert_int_not_equal(t[14] << 8 | t[15], 0); /* never a zero window */
    uint32_t ps = csum(b + 12, 8, 0) + 6 + 20;   /* pseudo-header */
    assert_int_equal(csum(t, 20, ps), 0xffff);   /* TCP checksum */
    /* sequence wrap */
    n = peer_probe_build("10.0.2.15", 1, "10.0.3.2", 2, 0, 0, b, sizeof(b));
    assert_int_equal(n, 40);
    assert_int_equal(b[24] & b[25] & b[26] & b[27], 0xff);
    /* v4-mapped counts as IPv4; IPv6 */
    assert_int_equal(
        peer_probe_build("::ffff:10.0.2.15", 1, "::ffff:10.0.3.2", 2, 5, 6, b, sizeof(b)), 40);
    n = peer_probe_build("fd00::15", 1, "fd00::2", 2, 5, 6, b, sizeof(b));
    assert_int_equal(n, 60);
    assert_int_equal(b[0] >> 4, 6);
    assert_int_equal(b[6], 6);
    ps = csum(b + 8, 32, 0) + 6 + 20;
    assert_int_equal(csum(b + 40, 20, ps), 0xffff);
    /* refusals */
    assert_int_equal(peer_probe_build("10.0.2.15", 1, "fd00::2", 2, 0, 0, b, sizeof(b)), -EINVAL);
    assert_int_equal(peer_probe_build("x", 1, "10.0.3.2", 2, 0, 0, b, sizeof(b)), -EINVAL);
    assert_int_equal(peer_probe_build(NULL, 1, "10.0.3.2", 2, 0, 0, b, sizeof(b)), -EINVAL);
    assert_int_equal(peer_probe_build("10.0.2.15", 0, "10.0.3.2", 2, 0, 0, b, sizeof(b)), -EINVAL);
    assert_int_equal(peer_probe_build("10.0.2.15", 1, "10.0.3.2", 2, 0, 0, b, 39), -ENOSPC);
    assert_int_equal(peer_probe_image(NULL, NULL, 0), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decision_table), cmocka_unit_test(test_sequences),
        cmocka_unit_test(test_push_bound),     cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_parse),          cmocka_unit_test(test_files),
        cmocka_unit_test(test_probe_packet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
