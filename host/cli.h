/* host/cli.h: the netckpt command line: exit codes, the virsh-style command and option
 * tables, the parser, and the output helpers the command handlers share.
 *
 * Owns: the exit-code contract (also in docs/man/netckpt.1 and docs/cli.md), argument parsing
 * and the per-invocation struct cli_ctx. Handlers live in host/cli-*.c; main is in
 * host/netckpt.c. Nothing here holds global state: main builds one cli_ctx and passes it. */
#pragma once
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

#include "host/transaction.h"

/* Exit codes. Stable: scripts and the e2e tests rely on them. Keep in sync with the man page. */
enum nc_exit {
    NC_EXIT_OK = 0,
    NC_EXIT_FAILURE = 1,         /* failed; nothing was changed, or nothing needed undoing */
    NC_EXIT_USAGE = 2,           /* bad command line */
    NC_EXIT_REFUSED = 3,         /* bundle or image refused: incomplete, corrupt, tampered, or the
                                    live sockets do not match the image */
    NC_EXIT_ROLLED_BACK = 4,     /* a transaction failed after the gate went up and was rolled
                                    back: VM running as before, network open, agent thawed */
    NC_EXIT_ROLLBACK_FAILED = 5, /* rollback incomplete; the journal keeps the gate on record
                                    so that `netckpt unblock DOMAIN` can finish it */
    NC_EXIT_INTERRUPTED = 6,     /* SIGINT/SIGTERM; rolled back as for 4 */
    NC_EXIT_BUSY = 7,            /* another live netckpt process holds this domain */
};

const char *nc_exit_name(int code);

/* ---- option and command tables (virsh's vshCmdDef/vshCmdOptDef, in our own words) ---- */

enum cli_opt_type {
    CLI_OPT_BOOL,   /* --name */
    CLI_OPT_STRING, /* --name VALUE or --name=VALUE */
    CLI_OPT_INT,    /* like STRING, parsed as a non-negative integer */
    CLI_OPT_SIZE,   /* like STRING, a byte size read with cli_arg_size() (shown as SIZE) */
};

enum cli_opt_flags {
    CLI_OPT_REQUIRED = 1 << 0,
    CLI_OPT_POSITIONAL = 1 << 1, /* may be given without --name, in table order */
};

/* What bash completion offers for an option's value. */
enum cli_complete {
    CLI_COMPLETE_NONE,
    CLI_COMPLETE_DOMAIN,
    CLI_COMPLETE_DIR,
    CLI_COMPLETE_FILE,
};

struct cli_opt {
    const char *name; /* without the leading "--" */
    enum cli_opt_type type;
    unsigned flags;
    const char *help;
    const char *choices; /* for STRING: "auto|keep", checked by the parser; NULL: any */
    enum cli_complete complete;
};

#define CLI_MAX_OPTS 16

struct cli_ctx;
struct cli_args;

struct cli_cmd {
    const char *name;
    const char *summary;        /* one line for `netckpt help` */
    const char *description;    /* paragraph for `netckpt help CMD` */
    const struct cli_opt *opts; /* terminated by {NULL} */
    bool needs_conn;            /* open libvirt before the handler */
    bool raw_args;              /* pass the arguments through unparsed (demo) */
    bool no_setup;              /* no state dir, no journal recovery (help) */
    int (*handler)(struct cli_ctx *ctx, const struct cli_args *args); /* returns nc_exit */
};

struct cli_args {
    const struct cli_cmd *cmd;
    const char *val[CLI_MAX_OPTS]; /* by index into cmd->opts; "1" for a set bool */
    bool help;                     /* CMD --help */
    int raw_argc;                  /* raw_args commands */
    char **raw_argv;
};

/* Parse argv (argv[0] is the command's first argument, not its name). Returns 0, or
 * NC_EXIT_USAGE with a message in err. */
int cli_parse(const struct cli_cmd *cmd, int argc, char *const *argv, struct cli_args *out,
              char *err, size_t errlen);

const char *cli_arg_str(const struct cli_args *a, const char *name);
bool cli_arg_bool(const struct cli_args *a, const char *name);
/* 1 and *out set when given, 0 when absent (*out untouched), -EINVAL on a bad number. */
int cli_arg_uint(const struct cli_args *a, const char *name, uint64_t *out);
/* A size in bytes: plain digits or with a K, M or G suffix (KiB units, "KiB"/"MiB"/"GiB"
 * too; k/m/g alike). 1 and *out set when given and within min..max, 0 when absent, -EINVAL
 * otherwise. */
/* --replay-limit's range (the top is REPLAY_MAX_LIMIT of host/replay.h). */
#define CLI_REPLAY_LIMIT_MIN (64u << 10)
int cli_arg_size(const struct cli_args *a, const char *name, uint64_t min, uint64_t max,
                 uint64_t *out);
/* --replay-limit of COMMAND into *out (0 when absent: the default); prints the usage error
 * and returns -EINVAL when it is bad (host/cli-txn.c). */
int cli_replay_limit(const char *command, const struct cli_args *a, size_t *out);
/* --freeze-timeout (seconds, 1..86400, default 60) and --watch (ms, 0..600000, default
 * TAP_WATCH_DEFAULT_MS) of COMMAND, the same way: *out set, or the usage error printed and
 * -EINVAL (host/cli-txn.c). */
int cli_freeze_timeout(const char *command, const struct cli_args *a, uint64_t *out);
int cli_watch_ms(const char *command, const struct cli_args *a, uint64_t *out);

/* The table itself (host/cli-commands.c). */
extern const struct cli_cmd cli_commands[];
const struct cli_cmd *cli_find_command(const char *name);

/* ---- the per-invocation context ---- */

struct nc_virt;

struct cli_ctx {
    const char *uri;       /* -c, or NULL for the default */
    const char *state_dir; /* $NETCKPT_STATE_DIR or /var/lib/netckpt */
    bool json;
    bool quiet;
    bool tty;                                 /* stderr is a terminal: show progress */
    const volatile sig_atomic_t *interrupted; /* owned by main; set by SIGINT/SIGTERM */
    struct nc_virt *virt;                     /* open when cmd->needs_conn */
    const char *argv0;
    /* netckptd: checkpoint, restore, status, list, unblock and policy go through a daemon that
     * answers on this socket (NULL: $NETCKPTD_SOCKET or the default) unless no_daemon
     * (--no-daemon, NETCKPT_NO_DAEMON=1). host/cli-daemon.c. */
    const char *daemon_socket;
    bool no_daemon;
    /* The domains of the dead netckpt processes' journal entries that start-up recovery found
     * (main owns them): unblock of such a domain has released something, even if recovery
     * already did all of it. */
    char (*recovered)[256];
    size_t n_recovered;
};

/* Output helpers. With --json, print obj to stdout (pretty, stable key order as built);
 * takes ownership of obj. */
void cli_print_json(json_object *obj);
/* A message for humans on stdout, suppressed by -q and --json. */
void cli_out(const struct cli_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Progress line on a TTY (stderr, carriage return); cleared by cli_progress_done(). */
void cli_progress(const struct cli_ctx *ctx, const char *step, uint64_t done, uint64_t total);
void cli_progress_done(const struct cli_ctx *ctx);

/* Reading a --json object (ours or one netckptd sent): member k of o, NULL when o is NULL or has
 * none; cli_jstr: its string, dflt when absent or not a string. */
json_object *cli_jget(json_object *o, const char *k);
const char *cli_jstr(json_object *o, const char *k, const char *dflt);

/* --json error object for a failed command: {"error":{"code":N,"name":..,"message":..}}. */
json_object *cli_error_json(int code, const char *message);

/* The manifest as JSON (stable keys; see docs/cli.md). */
struct manifest;
json_object *cli_manifest_json(const struct manifest *m);
/* ns since the epoch as "2026-12-03T14:06:26Z". */
void cli_iso_time(uint64_t realtime_ns, char *buf, size_t len);

/* The last successful checkpoint of a domain, under <state_dir>/checkpoints/. */
int cli_last_checkpoint_write(const struct cli_ctx *ctx, const char *domain, json_object *rec);
json_object *cli_last_checkpoint_read(const struct cli_ctx *ctx, const char *domain);

/* A transaction's outcome as an exit code, and its report as JSON (stable keys). */
int cli_exit_for_outcome(enum txn_outcome o);
json_object *cli_txn_result_json(const char *command, const struct txn_result *r, int code);

/* Text output of a checkpoint or restore from its --json report (also one netckptd made);
 * nothing with --json (the caller prints res). asked: the domain or bundle given. Returns the
 * report's exit code. */
int cli_txn_print(const struct cli_ctx *ctx, const char *command, json_object *res,
                  const char *asked, bool continue_running, bool paused);

/* list, status and unblock as JSON and as output, shared by the CLI and netckptd: the daemon
 * builds the same objects, and a CLI forwarding to it prints them with the same functions.
 * cli_list_json: the domains array (NULL with err). cli_status_json: NULL with err when
 * libvirt fails; no_probe: do not ask the agent, report this reason instead. The print
 * functions take ownership and return the exit code. */
struct nc_virt;
json_object *cli_list_json(struct nc_virt *v, const char *state_dir, bool all, char *err,
                           size_t errlen);
int cli_list_print(const struct cli_ctx *ctx, json_object *arr);
json_object *cli_status_json(struct nc_virt *v, const char *state_dir, const char *domain,
                             const char *agent_channel, const char *no_probe, char *err,
                             size_t errlen);
int cli_status_print(const struct cli_ctx *ctx, json_object *o, const char *asked);
/* r: 0, or -errno with err (rep may be NULL then). */
int cli_unblock_print(const struct cli_ctx *ctx, const char *domain, json_object *rep, int r,
                      const char *err);

/* Run the command through netckptd when one answers (host/cli-daemon.c): 1 with *rc set when
 * it did (or when it had to fail: an explicit --daemon-socket that does not answer), 0 when
 * netckpt works alone (no daemon, --no-daemon, or a daemon on another libvirt URI). */
int cli_daemon_forward(struct cli_ctx *ctx, const struct cli_args *a, int *rc);

/* Command handlers (host/cli-commands.c, host/cli-txn.c). */
int cli_cmd_checkpoint(struct cli_ctx *ctx, const struct cli_args *a);
int cli_cmd_restore(struct cli_ctx *ctx, const struct cli_args *a);
int cli_cmd_migrate(struct cli_ctx *ctx, const struct cli_args *a); /* host/cli-migrate.c */
/* The --json report of a migration (host/cli-migrate.c; netckptd's migrate jobs too). */
struct migrate_opts;
struct migrate_result;
json_object *cli_migrate_result_json(const struct migrate_opts *o, const struct migrate_result *r,
                                     int code);
int cli_cmd_status(struct cli_ctx *ctx, const struct cli_args *a);
int cli_cmd_inspect(struct cli_ctx *ctx, const struct cli_args *a);
int cli_cmd_verify(struct cli_ctx *ctx, const struct cli_args *a);
int cli_cmd_list(struct cli_ctx *ctx, const struct cli_args *a);
int cli_cmd_unblock(struct cli_ctx *ctx, const struct cli_args *a);
int cli_cmd_policy(struct cli_ctx *ctx, const struct cli_args *a);
int cli_cmd_demo(struct cli_ctx *ctx, const struct cli_args *a);
int cli_cmd_help(struct cli_ctx *ctx, const struct cli_args *a);

/* Usage and help text. */
void cli_usage(FILE *f);
void cli_command_help(FILE *f, const struct cli_cmd *cmd);
