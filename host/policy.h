/* host/policy.h: netckptd's policy files (schemas/policy.rng, docs/policy.md).
 *
 * Owns parsing and validating one policy file, and loading a policy directory file by file:
 * a bad file (not well-formed, a DTD, invalid against the schema, or a semantic fault such as
 * a bad glob or a duplicate name) is refused on its own with its line and reason, and never
 * stops the valid ones. Files are untrusted: size-limited, parsed with no network and no
 * entity expansion, validated against the RelaxNG schema compiled into the library. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "host/scheduler.h"

#define POLICY_MAX_FILE         (256u << 10)
#define POLICY_MAX_FILES        256
#define POLICY_MAX_DOMAINS      64
#define POLICY_NAME_MAX         64
#define POLICY_DEFAULT_DIR      "/etc/netckpt/policies"
#define POLICY_DEFAULT_FREEZE_S 60
#define POLICY_REPLAY_MIN_LIMIT (64u << 10) /* <replayLimit>'s floor, as --replay-limit's */

struct policy {
    char name[POLICY_NAME_MAX];
    char file[4096];
    bool enabled;
    char domains[POLICY_MAX_DOMAINS][256]; /* names or fnmatch(3) globs */
    size_t n_domains;
    struct sched_spec schedule; /* SCHED_INTERVAL or SCHED_DAILY */
    bool continue_running;      /* <mode>continue</mode> (the default) */
    char bundle_dir[4096];      /* bundles go to <bundle_dir>/<domain>/<UTC time> */
    uint32_t keep;              /* 0: no count limit */
    uint64_t max_age_s;         /* 0: no age limit */
    bool agent_check;           /* <conditions><agent/>: skip when the agent is silent */
    uint32_t agent_timeout_s;
    bool retrans_check; /* <conditions><retransmitting/> */
    uint32_t retrans_max, retrans_retry_s, retrans_give_up_s;
    uint32_t freeze_timeout_s;
    uint32_t replay_limit;  /* <replayLimit>, bytes; 0: REPLAY_DEFAULT_LIMIT */
    char agent_channel[64]; /* <agentChannel>; "" : org.netckpt.agent.0 */
    /* <mode>migrate</mode> with <migrate uri=.../>: a live migration (host/migrate.h); with
     * <bundles>, a continue-mode checkpoint there first (checkpoint-before-migrate). */
    bool migrate;
    char migrate_dest_uri[1024];
    char migrate_stream_uri[1024];   /* "" : libvirt chooses */
    char migrate_listen_address[72]; /* "" : libvirt chooses */
    char migrate_dest_netns[4096];   /* "" : the destination's taps are in our namespace */
    char migrate_dest_xml[4096];     /* a file; "" : libvirt's own */
    char migrate_hook[1024];         /* /bin/sh -c at the switchover; "" : none */
};

struct policy_error {
    char file[4096];
    int line; /* 0 when unknown */
    char reason[512];
};

struct policy_set {
    char dir[4096];
    struct policy *p;
    size_t n;
    struct policy_error *errors;
    size_t n_errors;
};

/* Parse and validate one policy document. rng_path NULL: the compiled-in schema. 0, or
 * -EINVAL / -EFBIG with e filled (file is copied into e->file). */
int policy_parse(const char *xml, size_t len, const char *file, const char *rng_path,
                 struct policy *out, struct policy_error *e);
/* Read and parse one file. */
int policy_load_file(const char *path, const char *rng_path, struct policy *out,
                     struct policy_error *e);
/* Every "*.xml" in dir, in name order; refused files land in out->errors and the others in
 * out->p (a duplicate policy name is refused in the later file). A missing dir is an empty
 * set. -errno only when the dir exists but cannot be read, or on ENOMEM. */
int policy_load_dir(const char *dir, const char *rng_path, struct policy_set *out);
void policy_set_free(struct policy_set *s);

const struct policy *policy_find(const struct policy_set *s, const char *name);
/* Does domain match one of p's names or globs. */
bool policy_matches(const struct policy *p, const char *domain);
/* A domain name usable as a directory name under the bundle dir (no '/', not "." or "..",
 * no leading dot, no control characters). */
bool policy_domain_dirname_ok(const char *domain);

/* <conditions><retransmitting max retry giveUp/> against the agent's guest-net-status reply.
 * The reply is the guest's word: "retransmitting" counts only as an integer in
 * 0..POLICY_RETRANS_REPORT_MAX and not above the reply's "connections" when that is given;
 * anything else makes the condition unavailable (never a deferral). */
#define POLICY_RETRANS_REPORT_MAX 1000000
enum policy_retrans_verdict {
    POLICY_RETRANS_GO,          /* at most max: checkpoint now */
    POLICY_RETRANS_DEFER,       /* more than max: retry after retry seconds */
    POLICY_RETRANS_GIVE_UP,     /* more than max for giveUp seconds: skip this run */
    POLICY_RETRANS_UNAVAILABLE, /* no usable count: go on, and report it */
};
/* deferred_since_ns: realtime of this domain's first deferral in a row (0: none); now_ns:
 * realtime. *n gets the count (-1 when unavailable), msg the reason, for events. */
enum policy_retrans_verdict policy_retrans_eval(const struct policy *p, json_object *status,
                                                uint64_t deferred_since_ns, uint64_t now_ns,
                                                int64_t *n, char *msg, size_t msglen);
