/* host/scheduler.c: see scheduler.h. */
#include "host/scheduler.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_PER_S  UINT64_C(1000000000)
#define NS_PER_MS UINT64_C(1000000)

void sched_init(struct scheduler *s, const struct sched_clock *clk)
{
    memset(s, 0, sizeof(*s));
    s->clk = *clk;
}

void sched_free(struct scheduler *s)
{
    free(s->e);
    s->e = NULL;
    s->n = s->cap = 0;
}

static uint64_t now(const struct scheduler *s, bool realtime)
{
    return s->clk.now(s->clk.ud, realtime);
}

int sched_parse_hhmm(const char *str, uint16_t *out)
{
    if (!str || strlen(str) != 5 || str[2] != ':')
        return -EINVAL;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (str[i] < '0' || str[i] > '9'))
            return -EINVAL;
    int h = (str[0] - '0') * 10 + (str[1] - '0');
    int m = (str[3] - '0') * 10 + (str[4] - '0');
    if (h > 23 || m > 59)
        return -EINVAL;
    *out = (uint16_t)(h * 60 + m);
    return 0;
}

/* Today's (or, with add_days, a later day's) occurrence of minute-of-day t in seconds. */
static int64_t day_time(time_t now_s, uint16_t t, int add_days, bool utc)
{
    if (utc)
        return (int64_t)now_s - (int64_t)now_s % 86400 + (int64_t)add_days * 86400 + t * 60;
    struct tm tm;
    localtime_r(&now_s, &tm);
    tm.tm_mday += add_days;
    tm.tm_hour = t / 60;
    tm.tm_min = t % 60;
    tm.tm_sec = 0;
    tm.tm_isdst = -1; /* let mktime decide across DST changes */
    return (int64_t)mktime(&tm);
}

uint64_t sched_daily_next(const struct sched_spec *spec, uint64_t now_real_ns)
{
    time_t now_s = (time_t)(now_real_ns / NS_PER_S);
    int64_t best = -1;
    /* Two days ahead covers a DST day that lacks a listed time. */
    for (int d = 0; d <= 2; d++)
        for (size_t i = 0; i < spec->n_times; i++) {
            int64_t c = day_time(now_s, spec->times_min[i], d, spec->utc);
            if (c > (int64_t)now_s && (best < 0 || c < best))
                best = c;
        }
    return best < 0 ? 0 : (uint64_t)best * NS_PER_S;
}

static bool spec_valid(const struct sched_spec *sp)
{
    switch (sp->kind) {
    case SCHED_INTERVAL:
        return sp->interval_s > 0 && sp->interval_s <= 366ull * 86400;
    case SCHED_DAILY:
        if (sp->n_times == 0 || sp->n_times > SCHED_MAX_TIMES)
            return false;
        for (size_t i = 0; i < sp->n_times; i++)
            if (sp->times_min[i] >= 24 * 60)
                return false;
        return true;
    case SCHED_ONCE:
        return sp->delay_s <= 366ull * 86400;
    }
    return false;
}

static bool spec_equal(const struct sched_spec *a, const struct sched_spec *b)
{
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case SCHED_INTERVAL:
        return a->interval_s == b->interval_s;
    case SCHED_DAILY:
        return a->utc == b->utc && a->n_times == b->n_times &&
               !memcmp(a->times_min, b->times_min, a->n_times * sizeof(a->times_min[0]));
    case SCHED_ONCE:
        return false; /* setting a one-shot again re-arms it */
    }
    return false;
}

static struct sched_entry *find(const struct scheduler *s, const char *key)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->e[i].key, key))
            return &s->e[i];
    return NULL;
}

const struct sched_entry *sched_find(const struct scheduler *s, const char *key)
{
    return find(s, key);
}

static void arm(struct scheduler *s, struct sched_entry *e, uint64_t last_run_real_ns)
{
    uint64_t mono = now(s, false), real = now(s, true);
    switch (e->spec.kind) {
    case SCHED_INTERVAL: {
        uint64_t iv = e->spec.interval_s * NS_PER_S, delay = iv;
        if (last_run_real_ns) {
            /* Due at last run + interval, never later than one interval from now. */
            uint64_t due = last_run_real_ns + iv;
            delay = due <= real ? 0 : due - real;
            if (delay > iv)
                delay = iv;
        }
        e->due_mono_ns = mono + delay;
        break;
    }
    case SCHED_DAILY:
        e->due_real_ns = sched_daily_next(&e->spec, real);
        break;
    case SCHED_ONCE:
        e->due_mono_ns = mono + e->spec.delay_s * NS_PER_S;
        break;
    }
}

int sched_set(struct scheduler *s, const char *key, const struct sched_spec *spec,
              uint64_t last_run_real_ns)
{
    if (!key || !*key || strlen(key) >= SCHED_KEY_MAX || !spec_valid(spec))
        return -EINVAL;
    struct sched_entry *e = find(s, key);
    if (e) {
        if (spec_equal(&e->spec, spec))
            return 0;
    } else {
        if (s->n == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 8;
            struct sched_entry *ne = realloc(s->e, cap * sizeof(*ne));
            if (!ne)
                return -ENOMEM;
            s->e = ne;
            s->cap = cap;
        }
        e = &s->e[s->n++];
        memset(e, 0, sizeof(*e));
        strcpy(e->key, key);
    }
    e->spec = *spec;
    if (last_run_real_ns)
        e->last_run_real_ns = last_run_real_ns;
    arm(s, e, e->last_run_real_ns);
    return 0;
}

int sched_remove(struct scheduler *s, const char *key)
{
    struct sched_entry *e = find(s, key);
    if (!e)
        return 0;
    size_t i = (size_t)(e - s->e);
    memmove(&s->e[i], &s->e[i + 1], (s->n - i - 1) * sizeof(*e));
    s->n--;
    return 1;
}

/* ns until e is due (0 when due). */
static uint64_t wait_ns(const struct scheduler *s, const struct sched_entry *e, uint64_t mono,
                        uint64_t real)
{
    if (e->spec.kind == SCHED_DAILY)
        return e->due_real_ns <= real ? 0 : e->due_real_ns - real;
    return e->due_mono_ns <= mono ? 0 : e->due_mono_ns - mono;
}

int64_t sched_timeout_ms(const struct scheduler *s)
{
    if (!s->n)
        return -1;
    uint64_t mono = now(s, false), real = now(s, true), best = UINT64_MAX;
    for (size_t i = 0; i < s->n; i++) {
        uint64_t w = wait_ns(s, &s->e[i], mono, real);
        if (w < best)
            best = w;
    }
    uint64_t ms = (best + NS_PER_MS - 1) / NS_PER_MS;
    return ms > INT64_MAX ? INT64_MAX : (int64_t)ms;
}

int sched_pop_due(struct scheduler *s, char key[SCHED_KEY_MAX])
{
    uint64_t mono = now(s, false), real = now(s, true);
    struct sched_entry *due = NULL;
    uint64_t due_since = 0;
    for (size_t i = 0; i < s->n; i++) {
        struct sched_entry *e = &s->e[i];
        if (wait_ns(s, e, mono, real) > 0)
            continue;
        /* How long overdue: the most overdue goes first. */
        uint64_t over = e->spec.kind == SCHED_DAILY ? real - e->due_real_ns : mono - e->due_mono_ns;
        if (!due || over > due_since) {
            due = e;
            due_since = over;
        }
    }
    if (!due)
        return 0;
    strcpy(key, due->key);
    if (due->spec.kind == SCHED_ONCE) {
        sched_remove(s, key);
        return 1;
    }
    due->last_run_real_ns = real;
    if (due->spec.kind == SCHED_INTERVAL)
        due->due_mono_ns = mono + due->spec.interval_s * NS_PER_S; /* no burst after a stall */
    else
        due->due_real_ns = sched_daily_next(&due->spec, real);
    return 1;
}

uint64_t sched_next_real_ns(const struct scheduler *s, const char *key)
{
    const struct sched_entry *e = find(s, key);
    if (!e)
        return 0;
    if (e->spec.kind == SCHED_DAILY)
        return e->due_real_ns;
    return now(s, true) + wait_ns(s, e, now(s, false), now(s, true));
}
