/* host/metrics.h: netckptd's counters and their Prometheus text exposition file.
 *
 * Owns struct metrics (plain counters; the daemon guards it with its lock), how a finished
 * transaction updates it, the text format (version 0.0.4: HELP/TYPE lines, label values
 * escaped) and writing the file atomically (temp file, fsync, rename), so a scraper such as
 * node_exporter's textfile collector never reads half a file. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct txn_result;

struct metrics {
    uint64_t start_real_ns;
    uint64_t checkpoints_ok, checkpoints_failed;
    uint64_t restores_ok, restores_failed;
    uint64_t migrations_ok, migrations_failed;
    uint64_t policy_skipped, policy_deferred;
    uint64_t policy_files_refused; /* at the last load */
    uint64_t policies_loaded;
    uint64_t bundles_pruned;
    uint64_t jobs_running;
    uint64_t recovered; /* journal entries recovered at start */
    /* the last finished checkpoint */
    double last_duration_s, last_gate_s;
    uint64_t last_success_real_ns;
    uint32_t last_connections;
    /* connections: frozen into images, kept (survived a resume), lost (reset or stale) */
    uint64_t conns_frozen, conns_kept, conns_lost, conns_stalled;
};

/* Time the gate was up in a transaction: the steps after "gate" up to and including "lift"
 * (or to the end when the gate was never lifted). */
double metrics_gate_seconds(const struct txn_result *r);
/* Count a finished checkpoint (restore false) or restore. */
void metrics_record(struct metrics *m, bool restore, const struct txn_result *r);

/* The exposition text. Caller frees. -ENOMEM. */
int metrics_render(const struct metrics *m, char **out);
/* Render and write path atomically (mode 0644). */
int metrics_write(const char *path, const struct metrics *m);
