/* Unit tests of agent/qga-stream.c: framing, limits and resynchronisation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agent/qga-stream.h"

/* What a run of the reader produced. */
struct collected {
    json_object *msgs[64];
    size_t n_msgs;
    int errors[64];
    size_t n_errors;
    char last_desc[QGA_ERROR_DESC_MAX];
};

static void collected_free(struct collected *c)
{
    for (size_t i = 0; i < c->n_msgs; i++)
        json_object_put(c->msgs[i]);
    memset(c, 0, sizeof(*c));
}

static void drain(struct qga_reader *r, struct collected *c)
{
    for (;;) {
        json_object *m;
        struct qga_error e;
        int ret = qga_reader_next(r, &m, &e);
        if (ret == 0)
            return;
        if (ret == 1) {
            assert_true(c->n_msgs < ELEMENTSOF(c->msgs));
            c->msgs[c->n_msgs++] = m;
            continue;
        }
        assert_true(ret == -EBADMSG || ret == -EMSGSIZE);
        assert_null(m);
        assert_int_equal(e.cls, QGA_ERR_GENERIC_ERROR);
        assert_true(e.desc[0] != 0);
        assert_true(c->n_errors < ELEMENTSOF(c->errors));
        c->errors[c->n_errors++] = ret;
        memcpy(c->last_desc, e.desc, sizeof(e.desc));
    }
}

/* Feed in chunks of at most chunk bytes, draining after each. */
static void feed_chunks(struct qga_reader *r, const char *buf, size_t len, size_t chunk,
                        struct collected *c)
{
    while (len > 0) {
        size_t n = len < chunk ? len : chunk;
        assert_int_equal(qga_reader_feed(r, buf, n), 0);
        drain(r, c);
        buf += n;
        len -= n;
    }
}

static void assert_json_eq(json_object *got, const char *want_txt)
{
    json_object *want = json_tokener_parse(want_txt);
    assert_non_null(want);
    if (!json_object_equal(got, want))
        fail_msg("got %s, want %s", json_object_to_json_string(got), want_txt);
    json_object_put(want);
}

static const char three[] = "{\"execute\":\"guest-ping\"}\n"
                            "  {\"a\":\"}{][\\\"\\\\\",\"b\":[1,{\"c\":\"\\u0041\"}]}\r\n\t"
                            "[1,2,\"]\"]";
static const char *const three_json[] = {
    "{\"execute\":\"guest-ping\"}",
    "{\"a\":\"}{][\\\"\\\\\",\"b\":[1,{\"c\":\"A\"}]}",
    "[1,2,\"]\"]",
};

static void test_split_every_byte(void **state)
{
    size_t len = strlen(three);
    for (size_t k = 0; k <= len; k++) {
        struct qga_reader r;
        struct collected c = {0};
        qga_reader_init(&r, 0, 0);
        assert_int_equal(qga_reader_feed(&r, three, k), 0);
        drain(&r, &c);
        assert_int_equal(qga_reader_feed(&r, three + k, len - k), 0);
        drain(&r, &c);
        assert_int_equal(c.n_errors, 0);
        assert_int_equal(c.n_msgs, 3);
        for (size_t i = 0; i < 3; i++)
            assert_json_eq(c.msgs[i], three_json[i]);
        assert_int_equal(qga_reader_pending(&r), 0);
        collected_free(&c);
        qga_reader_free(&r);
    }
}

static void test_byte_at_a_time(void **state)
{
    struct qga_reader r;
    struct collected c = {0};
    qga_reader_init(&r, 0, 0);
    feed_chunks(&r, three, strlen(three), 1, &c);
    assert_int_equal(c.n_errors, 0);
    assert_int_equal(c.n_msgs, 3);
    for (size_t i = 0; i < 3; i++)
        assert_json_eq(c.msgs[i], three_json[i]);
    assert_int_equal(r.n_messages, 3);
    collected_free(&c);
    qga_reader_free(&r);
}

static void test_many_in_one_buffer(void **state)
{
    char buf[4096] = "";
    for (int i = 0; i < 50; i++) {
        char one[64];
        snprintf(one, sizeof(one), "{\"n\":%d,\"s\":\"{x}\"}%s", i, i % 2 ? "\n" : "");
        strcat(buf, one);
    }
    struct qga_reader r;
    struct collected c = {0};
    qga_reader_init(&r, 0, 0);
    assert_int_equal(qga_reader_feed(&r, buf, strlen(buf)), 0);
    for (int i = 0; i < 50; i++) {
        json_object *m, *n;
        assert_int_equal(qga_reader_next(&r, &m, NULL), 1);
        assert_true(json_object_object_get_ex(m, "n", &n));
        assert_int_equal(json_object_get_int(n), i);
        json_object_put(m);
    }
    drain(&r, &c);
    assert_int_equal(c.n_msgs + c.n_errors, 0);
    qga_reader_free(&r);
}

static void test_strings_with_braces_and_escapes(void **state)
{
    static const char in[] = "{\"k\":\"a}b{c\\\"}\\\\\"}{\"k\":\"\\\\\\\"{\"}";
    struct qga_reader r;
    struct collected c = {0};
    qga_reader_init(&r, 0, 0);
    feed_chunks(&r, in, strlen(in), 3, &c);
    assert_int_equal(c.n_errors, 0);
    assert_int_equal(c.n_msgs, 2);
    json_object *k;
    assert_true(json_object_object_get_ex(c.msgs[0], "k", &k));
    assert_string_equal(json_object_get_string(k), "a}b{c\"}\\");
    assert_true(json_object_object_get_ex(c.msgs[1], "k", &k));
    assert_string_equal(json_object_get_string(k), "\\\"{");
    collected_free(&c);
    qga_reader_free(&r);
}

static void test_sentinel_mid_message(void **state)
{
    /* Half a request, then 0xFF (even inside a string), then a whole one. */
    static const char in[] = "{\"execute\":\"gue\xff{\"execute\":\"guest-ping\"}"
                             "{\"a\":{\"b\":[\xff  {\"ok\":true}\xff";
    struct qga_reader r;
    struct collected c = {0};
    qga_reader_init(&r, 0, 0);
    for (size_t chunk = 1; chunk <= sizeof(in); chunk++) {
        qga_reader_reset(&r);
        feed_chunks(&r, in, strlen(in), chunk, &c);
        assert_int_equal(c.n_errors, 0);
        assert_int_equal(c.n_msgs, 2);
        assert_json_eq(c.msgs[0], "{\"execute\":\"guest-ping\"}");
        assert_json_eq(c.msgs[1], "{\"ok\":true}");
        collected_free(&c);
    }
    assert_true(r.n_sentinels >= 3);
    qga_reader_free(&r);
}

static void test_garbage_then_valid(void **state)
{
    static const char in[] = "hello world\n\x01\x02 123 \"x\"{\"execute\":\"guest-ping\"}"
                             " trailing junk \xff{\"n\":1}";
    struct qga_reader r;
    struct collected c = {0};
    qga_reader_init(&r, 0, 0);
    feed_chunks(&r, in, strlen(in), 5, &c);
    /* One error per run of stray bytes, not one per byte. */
    assert_int_equal(c.n_errors, 2);
    assert_int_equal(c.errors[0], -EBADMSG);
    assert_non_null(strstr(c.last_desc, "outside a JSON object"));
    assert_int_equal(c.n_msgs, 2);
    assert_json_eq(c.msgs[0], "{\"execute\":\"guest-ping\"}");
    assert_json_eq(c.msgs[1], "{\"n\":1}");
    collected_free(&c);
    qga_reader_free(&r);
}

static void test_invalid_json_balanced(void **state)
{
    static const char in[] = "{\"a\":}{'single':'quotes'}{\"a\":1,}{\"ok\":1}";
    struct qga_reader r;
    struct collected c = {0};
    qga_reader_init(&r, 0, 0);
    feed_chunks(&r, in, strlen(in), 64, &c);
    assert_int_equal(c.n_errors, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(c.errors[i], -EBADMSG);
    assert_non_null(strstr(c.last_desc, "invalid JSON"));
    assert_int_equal(c.n_msgs, 1);
    assert_json_eq(c.msgs[0], "{\"ok\":1}");
    collected_free(&c);
    qga_reader_free(&r);
}

/* {"a":"xxx...x"} of exactly len bytes. */
static char *big_message(size_t len)
{
    char *b = malloc(len + 1);
    assert_non_null(b);
    memcpy(b, "{\"a\":\"", 6);
    memset(b + 6, 'x', len - 8);
    memcpy(b + len - 2, "\"}", 3);
    return b;
}

static void test_oversized(void **state)
{
    const size_t max = QGA_MAX_MESSAGE_BYTES;
    struct qga_reader r;
    struct collected c = {0};
    qga_reader_init(&r, 0, 0);

    /* Exactly the limit is fine. */
    char *b = big_message(max);
    feed_chunks(&r, b, max, 65536, &c);
    free(b);
    assert_int_equal(c.n_errors, 0);
    assert_int_equal(c.n_msgs, 1);
    assert_int_equal(json_object_get_string_len(json_object_object_get(c.msgs[0], "a")), max - 8);
    collected_free(&c);

    /* One byte more is refused, skipped to its end, and the next message still parses. */
    b = big_message(max + 1);
    size_t peak = 0;
    const char *p = b;
    size_t left = max + 1;
    while (left > 0) {
        size_t n = left < 65536 ? left : 65536;
        assert_int_equal(qga_reader_feed(&r, p, n), 0);
        drain(&r, &c);
        if (qga_reader_pending(&r) > peak)
            peak = qga_reader_pending(&r);
        p += n;
        left -= n;
    }
    free(b);
    static const char next[] = "\n{\"execute\":\"guest-ping\"}";
    feed_chunks(&r, next, strlen(next), 65536, &c);
    assert_int_equal(c.n_errors, 1);
    assert_int_equal(c.errors[0], -EMSGSIZE);
    assert_non_null(strstr(c.last_desc, "larger than"));
    assert_int_equal(c.n_msgs, 1);
    assert_json_eq(c.msgs[0], "{\"execute\":\"guest-ping\"}");
    assert_true(peak <= max);
    collected_free(&c);
    qga_reader_free(&r);
}

static void test_oversized_small_limit_stream(void **state)
{
    /* A never-ending message costs no memory beyond the limit. */
    struct qga_reader r;
    struct collected c = {0};
    qga_reader_init(&r, 100, 0);
    char chunk[4096];
    memset(chunk, '[', sizeof(chunk));
    for (int i = 0; i < 64; i++) {
        assert_int_equal(qga_reader_feed(&r, chunk, sizeof(chunk)), 0);
        drain(&r, &c);
        assert_true(qga_reader_pending(&r) <= 100);
    }
    assert_int_equal(c.n_errors, 1); /* the size limit (101 bytes), once */
    assert_int_equal(c.errors[0], -EMSGSIZE);
    feed_chunks(&r, "\xff{}", 3, 3, &c);
    assert_int_equal(c.n_msgs, 1);
    assert_true(r.cap <= 2 * 65536 + 4096);
    collected_free(&c);
    qga_reader_free(&r);
}

static char *nested(unsigned depth)
{
    /* {"a":{"a":...{}...}} with depth objects */
    size_t len = (size_t)depth * 6 + 1;
    char *b = malloc(len + 1), *p = b;
    assert_non_null(b);
    for (unsigned i = 0; i + 1 < depth; i++) {
        memcpy(p, "{\"a\":", 5);
        p += 5;
    }
    *p++ = '{';
    for (unsigned i = 0; i < depth; i++)
        *p++ = '}';
    *p = 0;
    return b;
}

static void test_nesting(void **state)
{
    struct qga_reader r;
    struct collected c = {0};
    qga_reader_init(&r, 0, 0);

    char *ok = nested(QGA_MAX_DEPTH);
    feed_chunks(&r, ok, strlen(ok), 1000, &c);
    free(ok);
    assert_int_equal(c.n_errors, 0);
    assert_int_equal(c.n_msgs, 1);
    collected_free(&c);

    char *bad = nested(QGA_MAX_DEPTH + 1);
    feed_chunks(&r, bad, strlen(bad), 1000, &c);
    free(bad);
    static const char next[] = "{\"after\":true}";
    feed_chunks(&r, next, strlen(next), 7, &c);
    assert_int_equal(c.n_errors, 1);
    assert_int_equal(c.errors[0], -EBADMSG);
    assert_non_null(strstr(c.last_desc, "nested deeper than 1024"));
    assert_int_equal(c.n_msgs, 1);
    assert_json_eq(c.msgs[0], next);

    /* Brackets count as nesting too. */
    collected_free(&c);
    char deep[2100];
    memset(deep, '[', 1025);
    memset(deep + 1025, ']', 1025);
    feed_chunks(&r, deep, 2050, 2050, &c);
    assert_int_equal(c.n_errors, 1);
    assert_int_equal(c.n_msgs, 0);
    collected_free(&c);
    qga_reader_free(&r);
}

static void test_feed_refuses_unbounded(void **state)
{
    struct qga_reader r;
    qga_reader_init(&r, 100, 0);
    char buf[QGA_READER_MIN_WINDOW];
    memset(buf, ' ', sizeof(buf));
    assert_int_equal(qga_reader_feed(&r, buf, sizeof(buf)), 0);
    /* Not drained: more is refused rather than buffered without bound. */
    assert_int_equal(qga_reader_feed(&r, buf, 1), -ENOBUFS);
    json_object *m;
    assert_int_equal(qga_reader_next(&r, &m, NULL), 0);
    assert_int_equal(qga_reader_feed(&r, buf, 1), 0);
    qga_reader_free(&r);
}

static void test_reset_drops_partial(void **state)
{
    struct qga_reader r;
    struct collected c = {0};
    qga_reader_init(&r, 0, 0);
    feed_chunks(&r, "{\"execute\":\"gu", 14, 14, &c);
    qga_reader_reset(&r);
    feed_chunks(&r, "{\"n\":2}", 7, 7, &c);
    assert_int_equal(c.n_errors, 0);
    assert_int_equal(c.n_msgs, 1);
    assert_json_eq(c.msgs[0], "{\"n\":2}");
    collected_free(&c);
    qga_reader_free(&r);
}

static void test_nul_and_controls(void **state)
{
    /* A raw NUL or newline inside a string is not valid JSON: an error, then resync. */
    static const char in[] = "{\"a\":\"x\0y\"}{\"a\":\"x\ny\"}{\"ok\":1}";
    struct qga_reader r;
    struct collected c = {0};
    qga_reader_init(&r, 0, 0);
    feed_chunks(&r, in, sizeof(in) - 1, 4, &c);
    assert_int_equal(c.n_msgs, 1);
    assert_json_eq(c.msgs[0], "{\"ok\":1}");
    assert_int_equal(c.n_errors, 2);
    collected_free(&c);
    qga_reader_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_every_byte),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_many_in_one_buffer),
        cmocka_unit_test(test_strings_with_braces_and_escapes),
        cmocka_unit_test(test_sentinel_mid_message),
        cmocka_unit_test(test_garbage_then_valid),
        cmocka_unit_test(test_invalid_json_balanced),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_oversized_small_limit_stream),
        cmocka_unit_test(test_nesting),
        cmocka_unit_test(test_feed_refuses_unbounded),
        cmocka_unit_test(test_reset_drops_partial),
        cmocka_unit_test(test_nul_and_controls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
