/* Unit tests of host/scheduler.h with a fake clock: intervals on the monotonic clock (immune
 * to wall-clock steps, no burst after a stall, restart from the last run), daily calendar
 * times in UTC and local time, one-shot retries, replacement keeping the due time. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "host/scheduler.h"

#define S UINT64_C(1000000000)

struct fake {
    uint64_t mono, real;
};

static uint64_t fake_now(void *ud, bool realtime)
{
    struct fake *f = ud;
    return realtime ? f->real : f->mono;
}

/* 2026-12-03 10:00:00 UTC */
#define T0 UINT64_C(1796292000)

static void setup(struct scheduler *s, struct fake *f)
{
    f->mono = 1000 * S;
    f->real = T0 * S;
    struct sched_clock clk = {.now = fake_now, .ud = f};
    sched_init(s, &clk);
}

static void advance(struct fake *f, uint64_t ns)
{
    f->mono += ns;
    f->real += ns;
}

static void test_interval(void **state)
{
    struct scheduler s;
    struct fake f;
    setup(&s, &f);
    struct sched_spec sp = {.kind = SCHED_INTERVAL, .interval_s = 60};
    char key[SCHED_KEY_MAX];
    assert_int_equal(sched_timeout_ms(&s), -1);
    assert_int_equal(sched_set(&s, "p", &sp, 0), 0);
    assert_int_equal(sched_timeout_ms(&s), 60000);
    assert_int_equal(sched_pop_due(&s, key), 0);
    advance(&f, 59 * S);
    assert_int_equal(sched_pop_due(&s, key), 0);
    assert_int_equal(sched_timeout_ms(&s), 1000);
    advance(&f, 1 * S);
    assert_int_equal(sched_pop_due(&s, key), 1);
    assert_string_equal(key, "p");
    assert_int_equal(sched_pop_due(&s, key), 0);
    assert_int_equal(sched_timeout_ms(&s), 60000);
    /* A long stall (suspend, busy daemon) gives one run, not a burst. */
    advance(&f, 3600 * S);
    assert_int_equal(sched_pop_due(&s, key), 1);
    assert_int_equal(sched_pop_due(&s, key), 0);
    assert_int_equal(sched_timeout_ms(&s), 60000);
    sched_free(&s);
}

static void test_interval_wall_clock_step(void **state)
{
    struct scheduler s;
    struct fake f;
    setup(&s, &f);
    struct sched_spec sp = {.kind = SCHED_INTERVAL, .interval_s = 60};
    char key[SCHED_KEY_MAX];
    sched_set(&s, "p", &sp, 0);
    f.real -= 3600 * S; /* the wall clock steps back an hour */
    f.mono += 60 * S;
    assert_int_equal(sched_pop_due(&s, key), 1);
    f.real += 7200 * S; /* and forward two */
    assert_int_equal(sched_pop_due(&s, key), 0);
    sched_free(&s);
}

static void test_interval_last_run(void **state)
{
    struct scheduler s;
    struct fake f;
    setup(&s, &f);
    struct sched_spec sp = {.kind = SCHED_INTERVAL, .interval_s = 3600};
    char key[SCHED_KEY_MAX];
    /* Ran 50 min before a restart: due in 10 min, not in an hour. */
    sched_set(&s, "a", &sp, f.real - 3000 * S);
    assert_int_equal(sched_timeout_ms(&s), 600000);
    /* Ran 2 h ago: due at once. */
    sched_set(&s, "b", &sp, f.real - 7200 * S);
    assert_int_equal(sched_timeout_ms(&s), 0);
    assert_int_equal(sched_pop_due(&s, key), 1);
    assert_string_equal(key, "b");
    /* A last run in the future (clock stepped back): at most one interval away. */
    sched_set(&s, "c", &sp, f.real + 86400 * S);
    assert_true(sched_find(&s, "c")->due_mono_ns <= f.mono + 3600 * S);
    sched_free(&s);
}

static void test_replace_keeps_due(void **state)
{
    struct scheduler s;
    struct fake f;
    setup(&s, &f);
    struct sched_spec sp = {.kind = SCHED_INTERVAL, .interval_s = 60};
    sched_set(&s, "p", &sp, 0);
    advance(&f, 50 * S);
    sched_set(&s, "p", &sp, 0); /* a reload with the same schedule */
    assert_int_equal(sched_timeout_ms(&s), 10000);
    sp.interval_s = 120; /* a changed schedule starts over */
    sched_set(&s, "p", &sp, 0);
    assert_int_equal(sched_timeout_ms(&s), 120000);
    assert_int_equal(sched_remove(&s, "p"), 1);
    assert_int_equal(sched_remove(&s, "p"), 0);
    assert_int_equal(sched_timeout_ms(&s), -1);
    sched_free(&s);
}

static void test_daily_utc(void **state)
{
    struct scheduler s;
    struct fake f;
    setup(&s, &f); /* 10:00 UTC */
    struct sched_spec sp = {.kind = SCHED_DAILY, .utc = true, .n_times = 2};
    assert_int_equal(sched_parse_hhmm("02:30", &sp.times_min[0]), 0);
    assert_int_equal(sched_parse_hhmm("14:00", &sp.times_min[1]), 0);
    char key[SCHED_KEY_MAX];
    sched_set(&s, "n", &sp, 0);
    assert_int_equal(sched_next_real_ns(&s, "n"), (T0 + 4 * 3600) * S);
    assert_int_equal(sched_timeout_ms(&s), 4 * 3600 * 1000);
    advance(&f, 4 * 3600 * S - S);
    assert_int_equal(sched_pop_due(&s, key), 0);
    advance(&f, S);
    assert_int_equal(sched_pop_due(&s, key), 1);
    /* next: 02:30 tomorrow */
    assert_int_equal(sched_next_real_ns(&s, "n"), (T0 + 16 * 3600 + 30 * 60) * S);
    /* The daily schedule follows the wall clock: a step forward makes it due. */
    f.real += 13 * 3600 * S;
    assert_int_equal(sched_pop_due(&s, key), 1);
    sched_free(&s);
}

static void test_daily_local(void **state)
{
    setenv("TZ", "Europe/Berlin", 1); /* UTC+1 in December */
    tzset();
    struct sched_spec sp = {.kind = SCHED_DAILY, .utc = false, .n_times = 1};
    sched_parse_hhmm("12:00", &sp.times_min[0]);
    /* 10:00 UTC = 11:00 local: next is 12:00 local = 11:00 UTC today */
    assert_int_equal(sched_daily_next(&sp, T0 * S), (T0 + 3600) * S);
    /* exactly at the time: the next day's */
    assert_int_equal(sched_daily_next(&sp, (T0 + 3600) * S), (T0 + 3600 + 86400) * S);
    /* across the spring DST change (2027-03-28, 02:00 -> 03:00): 02:30 does not exist; the
     * run still happens that day (mktime normalises it), and the next day at 02:30 again */
    sched_parse_hhmm("02:30", &sp.times_min[0]);
    uint64_t mar27_noon = UINT64_C(1806145200); /* 2027-03-27 11:00 UTC */
    uint64_t n1 = sched_daily_next(&sp, mar27_noon * S);
    assert_true(n1 > mar27_noon * S && n1 <= (mar27_noon + 86400) * S);
    uint64_t n2 = sched_daily_next(&sp, n1);
    assert_true(n2 > n1 && n2 - n1 >= 20 * 3600 * S && n2 - n1 <= 26 * 3600 * S);
    unsetenv("TZ");
    tzset();
}

static void test_once(void **state)
{
    struct scheduler s;
    struct fake f;
    setup(&s, &f);
    struct sched_spec iv = {.kind = SCHED_INTERVAL, .interval_s = 600};
    struct sched_spec once = {.kind = SCHED_ONCE, .delay_s = 30};
    char key[SCHED_KEY_MAX];
    sched_set(&s, "p", &iv, 0);
    sched_set(&s, "p/web1", &once, 0);
    assert_int_equal(sched_timeout_ms(&s), 30000);
    advance(&f, 30 * S);
    assert_int_equal(sched_pop_due(&s, key), 1);
    assert_string_equal(key, "p/web1");
    assert_null(sched_find(&s, "p/web1"));
    /* both due: the most overdue first */
    sched_set(&s, "p/web2", &once, 0);
    advance(&f, 600 * S);
    assert_int_equal(sched_pop_due(&s, key), 1);
    assert_string_equal(key, "p/web2"); /* due at 60 s */
    assert_int_equal(sched_pop_due(&s, key), 1);
    assert_string_equal(key, "p"); /* due at 600 s */
    assert_int_equal(sched_pop_due(&s, key), 0);
    sched_free(&s);
}

static void test_bad_specs(void **state)
{
    struct scheduler s;
    struct fake f;
    setup(&s, &f);
    struct sched_spec sp = {.kind = SCHED_INTERVAL, .interval_s = 0};
    assert_int_equal(sched_set(&s, "p", &sp, 0), -EINVAL);
    sp = (struct sched_spec){.kind = SCHED_DAILY, .n_times = 0};
    assert_int_equal(sched_set(&s, "p", &sp, 0), -EINVAL);
    sp = (struct sched_spec){.kind = SCHED_DAILY, .n_times = 1, .times_min = {1440}};
    assert_int_equal(sched_set(&s, "p", &sp, 0), -EINVAL);
    sp = (struct sched_spec){.kind = SCHED_INTERVAL, .interval_s = 5};
    assert_int_equal(sched_set(&s, "", &sp, 0), -EINVAL);
    char long_key[SCHED_KEY_MAX + 1];
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[SCHED_KEY_MAX] = 0;
    assert_int_equal(sched_set(&s, long_key, &sp, 0), -EINVAL);
    uint16_t t;
    assert_int_equal(sched_parse_hhmm("24:00", &t), -EINVAL);
    assert_int_equal(sched_parse_hhmm("1:00", &t), -EINVAL);
    assert_int_equal(sched_parse_hhmm("12:60", &t), -EINVAL);
    assert_int_equal(sched_parse_hhmm("23:59", &t), 0);
    assert_int_equal(t, 23 * 60 + 59);
    sched_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interval),
        cmocka_unit_test(test_interval_wall_clock_step),
        cmocka_unit_test(test_interval_last_run),
        cmocka_unit_test(test_replace_keeps_due),
        cmocka_unit_test(test_daily_utc),
        cmocka_unit_test(test_daily_local),
        cmocka_unit_test(test_once),
        cmocka_unit_test(test_bad_specs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
