/* host/netckpt.c: main of the netckpt CLI. Parses the global options, owns the signal flag
 * and the libvirt connection, runs journal recovery, and dispatches to the command table
 * (host/cli-commands.c). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "host/cli.h"
#include "host/daemon-client.h"
#include "host/hold.h"
#include "host/journal.h"
#include "host/txn-real.h"
#include "host/virt.h"
#include "version.h"

/* The only process-wide state: a signal handler can reach nothing else. Everything else gets
 * its address through struct cli_ctx. */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    interrupted = sig;
}

static int install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
        return -errno;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* Signals go to the main thread only: threads libvirt starts inherit a blocked mask. */
static void block_term_signals(sigset_t *old)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGINT);
    sigaddset(&s, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &s, old);
}

/* netckpt drives QEMU (test:/// for trying it out); any other scheme is most likely a typo, and
 * libvirt then falls back to its remote driver with a confusing TLS error. */
static bool known_scheme(const char *uri)
{
    size_t n = strcspn(uri, "+:");
    return (n == 4 && !strncmp(uri, "qemu", 4)) || (n == 4 && !strncmp(uri, "test", 4));
}

/* host/virt.c's busy message names the holder as "in use by process N (COMM)". When that is
 * netckptd, waiting or starting one is the wrong advice: the CLI should have gone through it
 * (it did not answer where we looked, or --no-daemon was given). */
static void busy_msg(const struct cli_ctx *ctx, const char *err, char *msg, size_t len)
{
    const char *p = strstr(err, " in use by process ");
    int pid = 0;
    char comm[32] = "";
    if (!p || sscanf(p, " in use by process %d (%31[^)])", &pid, comm) != 2 || pid <= 0 ||
        strcmp(comm, "netckptd") != 0) {
        snprintf(msg, len, "%s", err);
        return;
    }
    const char *under = strstr(err, " under "), *is = strstr(err, " is in use by ");
    int root_len = under && is && under < is ? (int)(is - under - 7) : 0;
    const char *sock = daemon_client_socket(ctx->daemon_socket);
    if (ctx->no_daemon)
        snprintf(msg, len,
                 "netckptd (pid %d) serves this libvirt root%s%.*s: the CLI talks to it through "
                 "its socket, so drop --no-daemon (and NETCKPT_NO_DAEMON)",
                 pid, root_len ? " " : "", root_len, root_len ? under + 7 : "");
    else if (daemon_client_available(ctx->daemon_socket))
        snprintf(msg, len,
                 "netckptd (pid %d) serves this libvirt root%s%.*s and answers at %s, but does not "
                 "run this command for the CLI (see netckpt(1)); stop it to run the command alone",
                 pid, root_len ? " " : "", root_len, root_len ? under + 7 : "", sock);
    else
        snprintf(msg, len,
                 "netckptd (pid %d) serves this libvirt root%s%.*s: the CLI talks to it through "
                 "its socket; it does not answer at %s: pass --daemon-socket PATH or set "
                 "NETCKPTD_SOCKET if it does not listen on the default path",
                 pid, root_len ? " " : "", root_len, root_len ? under + 7 : "", sock);
}

/* Open the connection; on failure print one line and leave it in msg (for --json too). */
static int open_conn(struct cli_ctx *ctx, struct nc_virt *v, char *msg, size_t len)
{
    sigset_t old;
    block_term_signals(&old);
    int r = nc_virt_open(v, ctx->uri, ctx->state_dir);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r < 0) {
        if (r == -EBUSY) /* its message names the root and the holder */
            busy_msg(ctx, v->err, msg, len);
        else
            snprintf(msg, len, "cannot connect to %s: %s%s",
                     ctx->uri ? ctx->uri : "the embedded QEMU driver",
                     v->err[0] ? v->err : strerror(-r),
                     ctx->uri && !known_scheme(ctx->uri)
                         ? " (netckpt works with qemu:///system, qemu:///embed?root=DIR or "
                           "test:///default; without -c it uses its own embedded driver)"
                         : "");
        log_err("%s", msg);
        return r;
    }
    ctx->virt = v;
    return 0;
}

/* Lift the gates of netckpt processes that died, and bring their VMs back. Needs libvirt only
 * when there is something to recover. */
static void recover(struct cli_ctx *ctx, struct nc_virt *v)
{
    struct journal_entry *list = NULL;
    size_t n = 0;
    int r = journal_list(ctx->state_dir, &list, &n);
    if (r < 0) {
        if (r != -ENOENT && r != -EACCES && r != -EPERM)
            log_debug("journal: cannot list %s: %s", ctx->state_dir, strerror(-r));
        return;
    }
    size_t stale = 0;
    for (size_t i = 0; i < n; i++)
        stale += journal_owner_alive(&list[i]) == 0;
    if (stale && (ctx->recovered = calloc(stale, sizeof(*ctx->recovered))))
        for (size_t i = 0; i < n; i++)
            if (journal_owner_alive(&list[i]) == 0 && ctx->n_recovered < stale)
                snprintf(ctx->recovered[ctx->n_recovered++], sizeof(*ctx->recovered), "%s",
                         list[i].domain);
    free(list);
    if (!stale)
        return;
    char msg[1536];
    if (!ctx->virt && open_conn(ctx, v, msg, sizeof(msg)) < 0) {
        log_warn("journal: %zu stale entr%s not recovered: no libvirt connection", stale,
                 stale == 1 ? "y" : "ies");
        return;
    }
    r = txn_real_recover(ctx->virt, ctx->state_dir);
    if (r < 0)
        log_warn("journal recovery incomplete: %s", strerror(-r));
    else if (r > 0)
        log_info("journal recovery: %d domain%s cleaned up", r, r == 1 ? "" : "s");
}

#if defined(__SANITIZE_ADDRESS__)
#define NC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NC_ASAN 1
#endif
#endif

/* The embedded QEMU driver reconnects to running domains in its own threads, which may still
 * run when we are done; exit() would then unload libnuma/libnl under them (a crash seen in
 * about 1 of 60 short runs). Everything we own is closed or fsync'd by now, so leave with
 * _exit(). ASan builds return normally so that the leak check still runs. */
static int leave(int rc)
{
    fflush(NULL);
#ifndef NC_ASAN
    _exit(rc);
#endif
    return rc;
}

static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "netckpt: %s%s%s%s\nTry 'netckpt --help'.\n", what, arg ? " '" : "",
            arg ? arg : "", arg ? "'" : "");
    return NC_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], HOLD_RUN_ARG)) /* the outage holder (host/hold.h) */
        return hold_main(argc - 1, argv + 1);
    struct cli_ctx ctx = {.interrupted = &interrupted, .argv0 = argv[0]};
    struct nc_virt v;
    memset(&v, 0, sizeof(v));
    char state_dir[4096];
    bool verbose = false;
    int i;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-')
            break;
        if (!strcmp(a, "-c") || !strcmp(a, "--connect")) {
            if (++i >= argc)
                return usage_error("a URI is missing after", a);
            ctx.uri = argv[i];
        } else if (!strncmp(a, "--connect=", 10)) {
            ctx.uri = a + 10;
        } else if (!strcmp(a, "--json")) {
            ctx.json = true;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            ctx.quiet = true;
            /* our own info lines too; an explicit NETCKPT_LOG or -v still wins */
            setenv("NETCKPT_LOG", "warn", 0);
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            setenv("NETCKPT_LOG", "debug", 1);
            verbose = true;
        } else if (!strcmp(a, "--no-daemon")) {
            ctx.no_daemon = true;
        } else if (!strcmp(a, "--daemon-socket")) {
            if (++i >= argc)
                return usage_error("a socket path is missing after", a);
            ctx.daemon_socket = argv[i];
        } else if (!strncmp(a, "--daemon-socket=", 16)) {
            ctx.daemon_socket = a + 16;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cli_usage(stdout);
            return NC_EXIT_OK;
        } else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            printf("netckpt %s\n", NETCKPT_VERSION);
            return NC_EXIT_OK;
        } else {
            return usage_error("unknown option", a);
        }
    }
    if (ctx.uri && !ctx.uri[0])
        return usage_error("the URI is empty", NULL);
    if (ctx.daemon_socket && !ctx.daemon_socket[0])
        return usage_error("the daemon socket path is empty", NULL);
    const char *nd = getenv("NETCKPT_NO_DAEMON");
    if (nd && *nd && strcmp(nd, "0") != 0)
        ctx.no_daemon = true;
    if (i >= argc) {
        cli_usage(stderr);
        return NC_EXIT_USAGE;
    }
    const struct cli_cmd *cmd = cli_find_command(argv[i]);
    if (!cmd)
        return usage_error("unknown command", argv[i]);

    struct cli_args args;
    char err[512];
    if (cmd->raw_args) {
        memset(&args, 0, sizeof(args));
        args.cmd = cmd;
        args.raw_argc = argc - i - 1;
        args.raw_argv = argv + i + 1;
    } else {
        int r = cli_parse(cmd, argc - i - 1, argv + i + 1, &args, err, sizeof(err));
        if (r) {
            fprintf(stderr, "netckpt: %s\n", err);
            if (ctx.json)
                cli_print_json(cli_error_json(NC_EXIT_USAGE, err));
            return NC_EXIT_USAGE;
        }
        if (args.help) {
            cli_command_help(stdout, cmd);
            return NC_EXIT_OK;
        }
    }
    if (!cmd->no_setup) {
        if (nc_virt_default_state_dir(state_dir, sizeof(state_dir)) < 0) {
            fprintf(stderr, "netckpt: $NETCKPT_STATE_DIR is too long\n");
            return NC_EXIT_USAGE;
        }
        ctx.state_dir = state_dir;
        /* libvirt's own info and warning lines ("tainted", "security driver none") are noise
         * on every command: they go to the state directory's log, unless -v. Our errors carry
         * libvirt's message. Best effort: an unwritable state dir leaves them on stderr. */
        if (!verbose && nc_virt_log_to_file(state_dir) < 0)
            log_debug("libvirt's log stays on stderr");
    }
    ctx.tty = isatty(STDERR_FILENO) && !ctx.json;
    if (install_signals() < 0) {
        log_err("cannot install signal handlers: %s", strerror(errno));
        return NC_EXIT_FAILURE;
    }

    int rc;
    if (cmd->no_setup) {
        rc = cmd->handler(&ctx, &args);
    } else if (!cmd->raw_args && cli_daemon_forward(&ctx, &args, &rc)) {
        /* netckptd ran it (and does its own journal recovery) */
    } else {
        char msg[1536];
        int r = cmd->needs_conn ? open_conn(&ctx, &v, msg, sizeof(msg)) : 0;
        if (r < 0) {
            int code = r == -EBUSY ? NC_EXIT_BUSY : NC_EXIT_FAILURE;
            if (ctx.json)
                cli_print_json(cli_error_json(code, msg));
            nc_virt_close(&v);
            return code;
        }
        recover(&ctx, &v);
        rc = cmd->handler(&ctx, &args);
    }
    if (ctx.virt)
        nc_virt_close(ctx.virt);
    free(ctx.recovered);
    return leave(rc);
}
