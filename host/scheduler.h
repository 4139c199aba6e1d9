/* host/scheduler.h: when netckptd's policies run, over an injectable clock.
 *
 * Owns a table of keyed entries (a policy name, or "policy/domain" for a one-shot retry of a
 * deferred domain) and their next due time. Interval entries run on CLOCK_MONOTONIC, so a
 * wall-clock step neither skips nor repeats them; daily calendar entries run on
 * CLOCK_REALTIME at each listed HH:MM (local time or UTC). Nothing here sleeps or reads a clock
 * directly: struct sched_clock is the only source of time, so tests drive a fake one. The
 * caller owns the struct and serialises calls. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCHED_KEY_MAX   320
#define SCHED_MAX_TIMES 48

struct sched_clock {
    uint64_t (*now)(void *ud, bool realtime); /* ns */
    void *ud;
};

enum sched_kind {
    SCHED_INTERVAL, /* every interval_s, first one interval after it is added (or after last run) */
    SCHED_DAILY,    /* at each times_min[] (minutes after midnight) */
    SCHED_ONCE,     /* once, delay_s after it is set; removed when it fires */
};

struct sched_spec {
    enum sched_kind kind;
    uint64_t interval_s; /* SCHED_INTERVAL */
    uint16_t times_min[SCHED_MAX_TIMES];
    size_t n_times;   /* SCHED_DAILY */
    bool utc;         /* SCHED_DAILY: UTC, else the local time zone */
    uint64_t delay_s; /* SCHED_ONCE */
};

struct sched_entry {
    char key[SCHED_KEY_MAX];
    struct sched_spec spec;
    uint64_t due_mono_ns; /* SCHED_INTERVAL, SCHED_ONCE */
    uint64_t due_real_ns; /* SCHED_DAILY */
    uint64_t last_run_real_ns;
};

struct scheduler {
    struct sched_clock clk;
    struct sched_entry *e;
    size_t n, cap;
};

void sched_init(struct scheduler *s, const struct sched_clock *clk);
void sched_free(struct scheduler *s);

/* Add or replace key. When key exists with the same spec, its due time is kept (a policy
 * reload does not restart its interval). last_run_real_ns (0: never) is when it last ran,
 * e.g. before a daemon restart: an interval entry is then due at last run + interval (at
 * once when that passed). -EINVAL for a bad spec or key, -ENOMEM. */
int sched_set(struct scheduler *s, const char *key, const struct sched_spec *spec,
              uint64_t last_run_real_ns);
/* 1 if removed, 0 if absent. */
int sched_remove(struct scheduler *s, const char *key);
const struct sched_entry *sched_find(const struct scheduler *s, const char *key);

/* Milliseconds until the earliest entry is due (0: something is due now), or -1 when empty. */
int64_t sched_timeout_ms(const struct scheduler *s);
/* Take one due entry: copy its key, reschedule it (SCHED_ONCE: remove it) and return 1; 0
 * when nothing is due. Entries due together come out earliest first. */
int sched_pop_due(struct scheduler *s, char key[SCHED_KEY_MAX]);
/* When key is next due, in CLOCK_REALTIME ns (0 when absent), for reports. */
uint64_t sched_next_real_ns(const struct scheduler *s, const char *key);

/* The first daily time strictly after now_real_ns, in CLOCK_REALTIME ns (0 for no times). */
uint64_t sched_daily_next(const struct sched_spec *spec, uint64_t now_real_ns);
/* "HH:MM" into minutes after midnight. -EINVAL when malformed. */
int sched_parse_hhmm(const char *s, uint16_t *out);
