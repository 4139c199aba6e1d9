/* host/netckptd.c: main of netckptd. Parses the options, owns the signals (a signalfd, so no
 * handler and no global flag), the one libvirt connection and the struct daemon, runs the
 * start-up recovery and then the loop: control socket, signals (SIGHUP reloads the policies,
 * SIGTERM/SIGINT stop after rolling back running jobs) and the scheduler. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/util.h"
#include "host/daemon.h"
#include "host/hold.h"
#include "host/virt.h"
#include "version.h"

#define MAX_SLEEP_MS 60000 /* re-read the clocks at least this often (wall-clock steps) */

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: netckptd [OPTIONS]\n"
            "The netckpt host daemon: checkpoints, restores and scheduled policies over a\n"
            "local control socket. See netckptd(8).\n\n"
            "  -c, --connect URI       libvirt URI (default: the embedded QEMU driver under\n"
            "                          the state dir)\n"
            "  -s, --socket PATH       control socket (default %s)\n"
            "  -g, --group NAME        also allow this group (socket mode 0660)\n"
            "      --socket-mode MODE  octal mode of the socket (default 0600, 0660 with\n"
            "                          --group); peers are checked with SO_PEERCRED anyway\n"
            "  -d, --state-dir DIR     state (journal, bundles, libvirt root; default\n"
            "                          $NETCKPT_STATE_DIR or %s)\n"
            "  -p, --policy-dir DIR    policy files (default %s)\n"
            "  -m, --metrics FILE      Prometheus text file (default <state-dir>/netckptd.prom;\n"
            "                          'none' disables it)\n"
            "  -v, --verbose           debug logging\n"
            "  -h, --help              this help\n"
            "  -V, --version           the version\n",
            DAEMON_DEFAULT_SOCKET, NC_VIRT_DEFAULT_STATE_DIR, DAEMON_DEFAULT_POLICY_DIR);
}

/* systemd's readiness protocol, without libsystemd: one datagram to $NOTIFY_SOCKET. */
static void notify_systemd(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = 0; /* abstract namespace */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, len) < 0)
        log_debug("sd_notify: %s", strerror(errno));
    close(fd);
}

static uint64_t real_clock(void *ud, bool realtime)
{
    return realtime ? now_realtime_ns() : now_monotonic_ns();
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], HOLD_RUN_ARG)) /* the outage holder (host/hold.h) */
        return hold_main(argc - 1, argv + 1);
    static const struct option opts[] = {
        {"connect", required_argument, NULL, 'c'},
        {"socket", required_argument, NULL, 's'},
        {"group", required_argument, NULL, 'g'},
        {"socket-mode", required_argument, NULL, 'M'},
        {"state-dir", required_argument, NULL, 'd'},
        {"policy-dir", required_argument, NULL, 'p'},
        {"metrics", required_argument, NULL, 'm'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct daemon_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.socket_path, sizeof(cfg.socket_path), "%s", DAEMON_DEFAULT_SOCKET);
    snprintf(cfg.policy_dir, sizeof(cfg.policy_dir), "%s", DAEMON_DEFAULT_POLICY_DIR);
    const char *state_dir = NULL, *metrics = NULL;
    long mode = -1;
    int c;
    while ((c = getopt_long(argc, argv, "c:s:g:d:p:m:vhV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (!*optarg) {
                fprintf(stderr, "netckptd: the URI is empty\n");
                return 2;
            }
            cfg.uri = optarg;
            break;
        case 's':
            if (snprintf(cfg.socket_path, sizeof(cfg.socket_path), "%s", optarg) >=
                    (int)sizeof(cfg.socket_path) ||
                optarg[0] != '/') {
                fprintf(stderr, "netckptd: --socket needs an absolute path under %zu bytes\n",
                        sizeof(cfg.socket_path));
                return 2;
            }
            break;
        case 'g': {
            struct group *gr = getgrnam(optarg);
            if (!gr) {
                fprintf(stderr, "netckptd: no group named %s\n", optarg);
                return 2;
            }
            cfg.have_group = true;
            cfg.gid = gr->gr_gid;
            break;
        }
        case 'M': {
            char *end;
            mode = strtol(optarg, &end, 8);
            if (*end || !*optarg || mode < 0 || mode > 0777) {
                fprintf(stderr, "netckptd: --socket-mode needs an octal mode such as 0600\n");
                return 2;
            }
            break;
        }
        case 'd':
            state_dir = optarg;
            break;
        case 'p':
            snprintf(cfg.policy_dir, sizeof(cfg.policy_dir), "%s", optarg);
            break;
        case 'm':
            metrics = optarg;
            break;
        case 'v':
            setenv("NETCKPT_LOG", "debug", 1);
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("netckptd %s\n", NETCKPT_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "netckptd: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (state_dir)
        snprintf(cfg.state_dir, sizeof(cfg.state_dir), "%s", state_dir);
    else if (nc_virt_default_state_dir(cfg.state_dir, sizeof(cfg.state_dir)) < 0) {
        fprintf(stderr, "netckptd: $NETCKPT_STATE_DIR is too long\n");
        return 2;
    }
    /* The library modules (CLI helpers, txn-real) read the state dir from here too. */
    setenv("NETCKPT_STATE_DIR", cfg.state_dir, 1);
    cfg.socket_mode = mode >= 0 ? (mode_t)mode : cfg.have_group ? 0660 : 0600;
    if (!metrics)
        snprintf(cfg.metrics_path, sizeof(cfg.metrics_path), "%.4000s/netckptd.prom",
                 cfg.state_dir);
    else if (strcmp(metrics, "none") != 0)
        snprintf(cfg.metrics_path, sizeof(cfg.metrics_path), "%s", metrics);

    /* Signals are read from a signalfd by this thread; every thread started from here on
     * (libvirt's event loop, workers, clients) inherits the blocked mask. */
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    int sfd = signalfd_block(sigs, ELEMENTSOF(sigs));
    if (sfd < 0) {
        log_err("signalfd: %s", strerror(-sfd));
        return 1;
    }
    int r = mkdir_p(cfg.state_dir, 0700);
    if (r < 0) {
        log_err("cannot create the state dir %s: %s", cfg.state_dir, strerror(-r));
        return 1;
    }

    struct nc_virt v;
    memset(&v, 0, sizeof(v));
    r = nc_virt_open(&v, cfg.uri, cfg.state_dir);
    if (r < 0) {
        log_err("cannot connect to %s: %s", cfg.uri ? cfg.uri : "the embedded QEMU driver",
                v.err[0] ? v.err : strerror(-r));
        return 1;
    }
    struct daemon d;
    struct sched_clock clk = {.now = real_clock};
    r = daemon_init(&d, &cfg, &v, &daemon_real_runner, &clk);
    if (r < 0) {
        log_err("cannot initialise: %s", strerror(-r));
        nc_virt_close(&v);
        return 1;
    }
    daemon_policies_load(&d);
    daemon_recover(&d);

    char err[512] = "";
    int lfd = daemon_listen(&cfg, err, sizeof(err));
    if (lfd < 0) {
        log_err("%s", err[0] ? err : strerror(-lfd));
        daemon_stop(&d, 0);
        daemon_free(&d);
        nc_virt_close(&v);
        return 1;
    }
    daemon_event(&d, "info", "start", NULL, NULL, 0,
                 "netckptd %s listening on %s (mode %04o), libvirt %s, state %s", NETCKPT_VERSION,
                 cfg.socket_path, (unsigned)cfg.socket_mode, v.uri, cfg.state_dir);
    daemon_metrics_flush(&d);
    notify_systemd("READY=1");

    for (;;) {
        pthread_mutex_lock(&d.lock);
        int64_t t = sched_timeout_ms(&d.sched);
        pthread_mutex_unlock(&d.lock);
        int timeout = t < 0 || t > MAX_SLEEP_MS ? MAX_SLEEP_MS : (int)t;
        struct pollfd p[3] = {
            {.fd = lfd, .events = POLLIN},
            {.fd = sfd, .events = POLLIN},
            {.fd = d.wake_fd, .events = POLLIN},
        };
        int n = poll(p, 3, timeout);
        if (n < 0 && errno != EINTR) {
            log_err("poll: %s", strerror(errno));
            break;
        }
        bool stop = false;
        if (n > 0 && (p[1].revents & POLLIN)) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
                if (si.ssi_signo == SIGHUP) {
                    daemon_event(&d, "info", "reload", NULL, NULL, 0,
                                 "SIGHUP: reloading the policies");
                    daemon_policies_load(&d);
                } else {
                    stop = true;
                }
            }
        }
        if (stop) {
            daemon_event(&d, "info", "stop", NULL, NULL, 0, "stopping");
            break;
        }
        if (n > 0 && (p[2].revents & POLLIN)) {
            uint64_t x;
            (void)!read(d.wake_fd, &x, sizeof(x));
        }
        if (n > 0 && (p[0].revents & POLLIN))
            daemon_accept(&d, lfd);
        daemon_policies_tick(&d);
    }
    notify_systemd("STOPPING=1");
    close(lfd);
    unlink(cfg.socket_path);
    daemon_stop(&d, DAEMON_STOP_WAIT_S);
    daemon_metrics_flush(&d);
    bool jobs_left = d.running > 0 || d.workers_done != d.workers_started;
    if (!jobs_left) {
        daemon_free(&d);
        nc_virt_close(&v);
    }
    close(sfd);
    return jobs_left ? 1 : 0;
}
