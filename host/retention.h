/* host/retention.h: pruning of a policy's bundles, per domain.
 *
 * Owns the decision of which bundles in <bundles dir>/<domain>/ go, and the removal. The
 * decision (retention_plan) is a pure function over a list, so tests need no files. Rules:
 *   - only entries netckptd named (UTC time stamps, see retention_name_valid) are considered;
 *     anything else in the directory is never touched;
 *   - good bundles (committed, manifest.xml valid against the schema) beyond the newest `keep`
 *     go, and so do bundles older than max_age;
 *   - failed ones (".<name>.failed", left by an interrupted checkpoint) and bad ones (manifest
 *     missing or invalid) go once older than max_age, or once a newer good bundle exists;
 *   - partial ones (".<name>.partial", maybe in progress) are never touched;
 *   - the newest good bundle is never removed, whatever the rules say. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

enum retention_kind { RETENTION_GOOD, RETENTION_FAILED, RETENTION_BAD };

struct retention_rule {
    uint32_t keep;      /* 0: no count limit */
    uint64_t max_age_s; /* 0: no age limit */
};

struct retention_item {
    char name[256];      /* entry name in the directory */
    uint64_t created_ns; /* CLOCK_REALTIME: the manifest's time, else the name's */
    enum retention_kind kind;
    bool remove; /* the plan's verdict */
};

/* Bundle name for time t: "20261203T145501Z" (+ "-N" to make it unique, by the caller). */
int retention_bundle_name(uint64_t realtime_ns, char *buf, size_t len);
/* Is name one netckptd makes ("YYYYmmddTHHMMSSZ" optionally "-N"), and its time. */
bool retention_name_valid(const char *name, uint64_t *realtime_ns);

/* Mark items[].remove; returns how many. Never marks the newest good item. */
size_t retention_plan(struct retention_item *items, size_t n, const struct retention_rule *rule,
                      uint64_t now_real_ns);

/* List the entries of dir that retention may consider (good, failed, bad; never partial).
 * A missing dir is an empty list. Caller frees *out. */
int retention_scan(const char *dir, struct retention_item **out, size_t *n);

/* Scan, plan and remove. *report (may be NULL): {"dir","kept":N,"removed":[names],
 * "errors":[..]} (caller puts). Returns the number removed or -errno. */
int retention_apply(const char *dir, const struct retention_rule *rule, uint64_t now_real_ns,
                    json_object **report);
