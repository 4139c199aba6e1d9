/* guest/agent-main.c: netckpt-agent, the in-guest daemon.
 *
 * Owns the process: options, the transport (virtio-serial port, or a listening UNIX or vsock
 * socket), the poll loop with a signalfd and the watchdog's timerfd, and the qga command
 * handlers that parse arguments and call guest/net-freezer. Single-threaded on purpose:
 * ptrace ties quiesced processes to the thread that seized them. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/agent-commands.h"
#include "agent/qga-server.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/util.h"
#include "guest/net-freezer.h"
#include "version.h"

#define DEFAULT_PORT_NAME "org.netckpt.agent.0"
#define VIRTIO_PORTS_DIR  "/sys/class/virtio-ports"
#define READ_CHUNK        (64u << 10)
/* No host on the virtio port: the port reports POLLHUP until one connects, and there is no
 * event for the connect itself, so look again after this long instead of spinning. */
#define HUP_RETRY_MS    100
#define MAX_RESET_STALE 65536
#define MAX_INCLUDE     1024

enum method { METHOD_VIRTIO, METHOD_UNIX, METHOD_VSOCK };

struct agent {
    enum method method;
    const char *path;
    const char *port_name;
    bool clock_step;

    struct net_freezer nf;
    struct qga_server srv;
    struct qga_command table[AGENT_COMMAND_COUNT];

    int listen_fd; /* unix/vsock */
    int conn_fd;   /* the host connection (or the virtio port) */
    int sig_fd, timer_fd;
    uint64_t hup_until_ns; /* virtio: do not poll the port before this */
    bool host_connected;   /* virtio: last thing we saw was data, not a hangup */
    bool quit;
    int exit_code;
};

/* ---- command handlers ---- */

static bool agent_is_frozen(void *userdata)
{
    struct agent *a = userdata;
    return net_freezer_is_frozen(&a->nf);
}

static int h_info(void *userdata, json_object *args, json_object **ret, struct qga_error *err)
{
    struct agent *a = userdata;
    json_object *o = qga_server_info(&a->srv, NETCKPT_VERSION);
    if (!o)
        return qga_error_errno(err, -ENOMEM, "guest-info");
    json_object_object_add(o, "name", json_object_new_string("netckpt-agent"));
    *ret = o;
    return 0;
}

static int h_freeze(void *userdata, json_object *args, json_object **ret, struct qga_error *err)
{
    static const char *const known[] = {"timeout", "include", NULL};
    struct agent *a = userdata;
    int64_t timeout_s = 0;
    json_object *inc = NULL;
    int r = qga_args_check_known(args, known, err);
    if (r < 0)
        return r;
    r = qga_arg_int(args, "timeout", false, 1, NET_FREEZER_MAX_TIMEOUT_MS / 1000, &timeout_s, err);
    if (r < 0)
        return r;
    r = qga_arg_json(args, "include", false, json_type_array, &inc, err);
    if (r < 0)
        return r;
    size_t n = inc ? json_object_array_length(inc) : 0;
    if (n > MAX_INCLUDE) {
        qga_error_set(err, QGA_ERR_INVALID_PARAMETER, "'include' has more than %u filters",
                      MAX_INCLUDE);
        return -EINVAL;
    }
    _cleanup_free_ struct net_freeze_filter *f = calloc(n ? n : 1, sizeof(*f));
    if (!f)
        return qga_error_errno(err, -ENOMEM, "freeze");
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(inc, i), *v;
        struct tcp_endpoint ep;
        if (!json_object_is_type(e, json_type_object))
            goto bad;
        json_object_object_foreach(e, key, val)
        {
            (void)val;
            if (strcmp(key, "addr") && strcmp(key, "port"))
                goto bad;
        }
        if (json_object_object_get_ex(e, "addr", &v)) {
            if (!json_object_is_type(v, json_type_string) ||
                net_endpoint_parse(json_object_get_string(v), 0, &ep) < 0)
                goto bad;
            f[i].has_addr = true;
            f[i].addr = ep.addr;
        }
        if (json_object_object_get_ex(e, "port", &v)) {
            if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1 ||
                json_object_get_int64(v) > 65535)
                goto bad;
            f[i].port = (uint16_t)json_object_get_int64(v);
        }
        continue;
    bad:
        qga_error_set(err, QGA_ERR_INVALID_PARAMETER,
                      "'include[%zu]' must be {\"addr\":IP?,\"port\":1-65535?}", i);
        return -EINVAL;
    }
    struct net_freeze_opts o = {
        .timeout_ms = (uint32_t)timeout_s * 1000u, .include = f, .n_include = n};
    return net_freezer_freeze(&a->nf, &o, ret, err);
}

static int h_thaw(void *userdata, json_object *args, json_object **ret, struct qga_error *err)
{
    static const char *const known[] = {"kick", "host_time_ns", NULL};
    struct agent *a = userdata;
    struct net_thaw_opts o = {.window_probe = true};
    int64_t t = 0;
    int r = qga_args_check_known(args, known, err);
    if (r < 0)
        return r;
    r = qga_arg_bool(args, "kick", false, &o.window_probe, err);
    if (r < 0)
        return r;
    r = qga_arg_int(args, "host_time_ns", false, 0, INT64_MAX, &t, err);
    if (r < 0)
        return r;
    o.has_host_time = r > 0;
    o.host_time_ns = t;
    r = net_freezer_thaw(&a->nf, NET_THAW_COMMAND, &o, ret);
    if (r < 0)
        return qga_error_errno(err, r, "thaw");
    return 0;
}

static int h_status(void *userdata, json_object *args, json_object **ret, struct qga_error *err)
{
    static const char *const known[] = {NULL};
    struct agent *a = userdata;
    int r = qga_args_check_known(args, known, err);
    if (r < 0)
        return r;
    *ret = net_freezer_status(&a->nf);
    return *ret ? 0 : qga_error_errno(err, -ENOMEM, "status");
}

static int h_verify(void *userdata, json_object *args, json_object **ret, struct qga_error *err)
{
    static const char *const known[] = {"image_id", "image", NULL};
    struct agent *a = userdata;
    const char *id = NULL;
    json_object *image = NULL;
    int r = qga_args_check_known(args, known, err);
    if (r < 0)
        return r;
    r = qga_arg_string(args, "image_id", false, 32, &id, err);
    if (r < 0)
        return r;
    r = qga_arg_json(args, "image", false, json_type_object, &image, err);
    if (r < 0)
        return r;
    if (id && strlen(id) != 32) {
        qga_error_set(err, QGA_ERR_INVALID_PARAMETER, "'image_id' must be 32 hex digits");
        return -EINVAL;
    }
    return net_freezer_verify(&a->nf, id, image, ret, err);
}

static int parse_endpoint(json_object *o, const char *what, size_t i, struct tcp_endpoint *ep,
                          struct qga_error *err)
{
    json_object *addr, *port;
    if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, "addr", &addr) ||
        !json_object_is_type(addr, json_type_string) ||
        !json_object_object_get_ex(o, "port", &port) || !json_object_is_type(port, json_type_int) ||
        json_object_get_int64(port) < 0 || json_object_get_int64(port) > 65535 ||
        net_endpoint_parse(json_object_get_string(addr), (unsigned)json_object_get_int64(port),
                           ep) < 0) {
        qga_error_set(err, QGA_ERR_INVALID_PARAMETER,
                      "'connections[%zu].%s' must be {\"addr\":IP,\"port\":0-65535}", i, what);
        return -EINVAL;
    }
    return 0;
}

static int h_reset_stale(void *userdata, json_object *args, json_object **ret,
                         struct qga_error *err)
{
    static const char *const known[] = {"connections", "image_id", NULL};
    struct agent *a = userdata;
    json_object *list = NULL;
    const char *id = NULL;
    int r = qga_args_check_known(args, known, err);
    if (r < 0)
        return r;
    r = qga_arg_json(args, "connections", false, json_type_array, &list, err);
    if (r < 0)
        return r;
    r = qga_arg_string(args, "image_id", false, 32, &id, err);
    if (r < 0)
        return r;
    if (!list && !id) {
        qga_error_set(err, QGA_ERR_INVALID_PARAMETER, "give 'connections' or 'image_id'");
        return -EINVAL;
    }
    size_t n = list ? json_object_array_length(list) : 0;
    if (n > MAX_RESET_STALE) {
        qga_error_set(err, QGA_ERR_INVALID_PARAMETER, "'connections' has more than %u entries",
                      MAX_RESET_STALE);
        return -EINVAL;
    }
    _cleanup_free_ struct net_conn_key *keys = calloc(n ? n : 1, sizeof(*keys));
    if (!keys)
        return qga_error_errno(err, -ENOMEM, "reset-stale");
    for (size_t i = 0; i < n; i++) {
        json_object *c = json_object_array_get_idx(list, i), *l = NULL, *rm = NULL;
        if (json_object_is_type(c, json_type_object)) {
            json_object_object_get_ex(c, "local", &l);
            json_object_object_get_ex(c, "remote", &rm);
        }
        r = parse_endpoint(l, "local", i, &keys[i].local, err);
        if (r < 0)
            return r;
        r = parse_endpoint(rm, "remote", i, &keys[i].remote, err);
        if (r < 0)
            return r;
    }
    return net_freezer_reset_stale(&a->nf, keys, n, id, ret, err);
}

static int build_table(struct agent *a)
{
    const struct agent_handlers h = {
        .info = h_info,
        .net_freeze = h_freeze,
        .net_thaw = h_thaw,
        .net_status = h_status,
        .net_verify = h_verify,
        .net_reset_stale = h_reset_stale,
    };
    int r = agent_commands_table(&h, a->table);
    if (r < 0)
        return r;
    return qga_server_init(&a->srv, a->table, AGENT_COMMAND_COUNT, a, agent_is_frozen);
}

/* ---- transports ---- */

/* /sys/class/virtio-ports/vportNpM/name == name  ->  /dev/vportNpM */
static int find_virtio_port(const char *name, char *out, size_t len)
{
    DIR *d = opendir(VIRTIO_PORTS_DIR);
    if (!d)
        return negative_errno();
    int r = -ENOENT;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char p[PATH_MAX];
        snprintf(p, sizeof(p), VIRTIO_PORTS_DIR "/%s/name", de->d_name);
        _cleanup_free_ char *buf = NULL;
        size_t n = 0;
        if (read_file(p, 256, &buf, &n) < 0)
            continue;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
            buf[--n] = 0;
        if (!strcmp(buf, name)) {
            snprintf(out, len, "/dev/%s", de->d_name);
            r = 0;
            break;
        }
    }
    closedir(d);
    return r;
}

static int open_transport(struct agent *a)
{
    switch (a->method) {
    case METHOD_VIRTIO: {
        char dev[PATH_MAX];
        const char *path = a->path;
        if (!path) {
            int r = find_virtio_port(a->port_name, dev, sizeof(dev));
            if (r < 0) {
                log_err("no virtio-serial port named %s under " VIRTIO_PORTS_DIR ": %s",
                        a->port_name, strerror(-r));
                return r;
            }
            path = dev;
        }
        a->conn_fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (a->conn_fd < 0) {
            log_err("cannot open %s: %m", path);
            return negative_errno();
        }
        log_info("serving on virtio-serial port %s", path);
        return 0;
    }
    case METHOD_UNIX: {
        if (!a->path) {
            log_err("--method unix-listen needs --path");
            return -EINVAL;
        }
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(a->path) >= sizeof(sa.sun_path)) {
            log_err("socket path too long: %s", a->path);
            return -ENAMETOOLONG;
        }
        strcpy(sa.sun_path, a->path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return negative_errno();
        struct stat stb;
        if (lstat(a->path, &stb) == 0 && S_ISSOCK(stb.st_mode))
            unlink(a->path); /* a stale socket from an agent that died */
        mode_t old = umask(0077);
        int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
        umask(old);
        if (r < 0 || listen(fd, 4) < 0) {
            r = negative_errno();
            log_err("cannot listen on %s: %s", a->path, strerror(-r));
            close(fd);
            return r;
        }
        a->listen_fd = fd;
        log_info("listening on UNIX socket %s", a->path);
        return 0;
    }
    case METHOD_VSOCK: {
        unsigned cid = VMADDR_CID_ANY, port = 0;
        const char *p = a->path ? a->path : "";
        char extra;
        if (sscanf(p, "%u:%u%c", &cid, &port, &extra) != 2) {
            cid = VMADDR_CID_ANY;
            if (sscanf(p, "%u%c", &port, &extra) != 1) {
                log_err("--method vsock-listen needs --path PORT or CID:PORT");
                return -EINVAL;
            }
        }
        struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};
        int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            int r = negative_errno();
            log_err("vsock: %s", strerror(-r));
            return r;
        }
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
            int r = negative_errno();
            log_err("cannot listen on vsock %u:%u: %s", cid, port, strerror(-r));
            close(fd);
            return r;
        }
        a->listen_fd = fd;
        log_info("listening on vsock port %u", port);
        return 0;
    }
    }
    return -EINVAL;
}

/* The host went away: forget its half-read input. The virtio port stays open; a socket
 * connection is closed and the next one accepted. */
static void host_gone(struct agent *a, const char *why)
{
    if (a->method == METHOD_VIRTIO) {
        /* Polled every HUP_RETRY_MS while no host is there: log the transition only. */
        if (a->host_connected)
            log_debug("host disconnected (%s)", why);
        a->host_connected = false;
        qga_server_reset(&a->srv);
        a->hup_until_ns = now_monotonic_ns() + HUP_RETRY_MS * 1000000ull;
        return;
    }
    log_debug("host disconnected (%s)", why);
    qga_server_reset(&a->srv);
    if (a->conn_fd >= 0)
        close(a->conn_fd);
    a->conn_fd = -1;
}

static void handle_accept(struct agent *a)
{
    int fd = accept4(a->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            log_warn("accept: %m");
        return;
    }
    a->conn_fd = fd;
    qga_server_reset(&a->srv);
    log_debug("host connected");
}

static void handle_input(struct agent *a, short revents)
{
    char buf[READ_CHUNK];
    if (revents & POLLIN) {
        ssize_t n = read(a->conn_fd, buf, sizeof(buf));
        if (n > 0) {
            if (a->method == METHOD_VIRTIO && !a->host_connected) {
                log_debug("host connected");
                a->host_connected = true;
            }
            int r = qga_server_feed(&a->srv, buf, (size_t)n, a->conn_fd);
            if (r < 0)
                host_gone(a, strerror(-r));
            return;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        host_gone(a, n == 0 ? "EOF" : strerror(errno));
        return;
    }
    if (revents & (POLLHUP | POLLERR | POLLNVAL))
        host_gone(a, "hangup");
}

/* ---- signals and watchdog ---- */

static int setup_signals(struct agent *a)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT};
    int fd = signalfd_block(sigs, ELEMENTSOF(sigs));
    if (fd < 0)
        return fd;
    a->sig_fd = fd;
    a->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (a->timer_fd < 0)
        return negative_errno();
    return 0;
}

static void arm_watchdog(struct agent *a)
{
    uint64_t dl = net_freezer_deadline(&a->nf);
    struct itimerspec its = {0};
    if (dl) {
        its.it_value.tv_sec = (time_t)(dl / 1000000000ull);
        its.it_value.tv_nsec = (long)(dl % 1000000000ull);
    }
    if (timerfd_settime(a->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
        log_err("timerfd_settime: %m");
}

static void thaw_now(struct agent *a, enum net_thaw_reason why)
{
    if (!net_freezer_is_frozen(&a->nf))
        return;
    int r = net_freezer_thaw(&a->nf, why, NULL, NULL);
    if (r < 0)
        log_err("%s thaw failed: %s", net_thaw_reason_name(why), strerror(-r));
}

static void handle_timer(struct agent *a)
{
    uint64_t ticks;
    (void)!read(a->timer_fd, &ticks, sizeof(ticks));
    uint64_t dl = net_freezer_deadline(&a->nf);
    if (dl && now_monotonic_ns() >= dl) {
        log_warn("watchdog: frozen for %u ms without a thaw; thawing", a->nf.timeout_ms);
        thaw_now(a, NET_THAW_WATCHDOG);
    }
}

static void handle_signal(struct agent *a)
{
    struct signalfd_siginfo si;
    while (read(a->sig_fd, &si, sizeof(si)) == sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGTERM:
        case SIGINT:
        case SIGQUIT:
            log_info("signal %u: %sexiting", si.ssi_signo,
                     net_freezer_is_frozen(&a->nf) ? "thawing, then " : "");
            thaw_now(a, NET_THAW_SIGNAL);
            a->quit = true;
            break;
        default:
            log_info("signal %u ignored", si.ssi_signo);
        }
    }
}

static int run(struct agent *a)
{
    while (!a->quit) {
        struct pollfd p[3];
        int n = 0, ti = -1, timeout = -1;
        p[n++] = (struct pollfd){.fd = a->sig_fd, .events = POLLIN};
        p[n++] = (struct pollfd){.fd = a->timer_fd, .events = POLLIN};
        uint64_t now = now_monotonic_ns();
        if (a->conn_fd >= 0 && a->hup_until_ns > now) {
            timeout = (int)((a->hup_until_ns - now) / 1000000ull) + 1;
        } else if (a->conn_fd >= 0) {
            ti = n;
            p[n++] = (struct pollfd){.fd = a->conn_fd, .events = POLLIN};
        } else if (a->listen_fd >= 0) {
            ti = n;
            p[n++] = (struct pollfd){.fd = a->listen_fd, .events = POLLIN};
        }
        if (poll(p, (nfds_t)n, timeout) < 0) {
            if (errno == EINTR)
                continue;
            log_err("poll: %m");
            return -errno;
        }
        if (p[0].revents)
            handle_signal(a);
        if (p[1].revents)
            handle_timer(a);
        if (a->quit)
            break;
        if (ti >= 0 && p[ti].revents) {
            if (p[ti].fd == a->listen_fd)
                handle_accept(a);
            else
                handle_input(a, p[ti].revents);
        }
        arm_watchdog(a);
    }
    return 0;
}

/* Each frozen socket costs us one fd (plus a pidfd while taking it). */
static void raise_nofile(void)
{
    struct rlimit rl = {.rlim_cur = 1u << 20, .rlim_max = 1u << 20};
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        return;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "Usage: netckpt-agent [OPTION]...\n"
        "The netckpt guest agent: freezes the guest's TCP connections for a checkpoint.\n"
        "\n"
        "  -m, --method=METHOD       virtio-serial (default), unix-listen or vsock-listen\n"
        "  -p, --path=PATH           device or socket path (vsock: PORT or CID:PORT);\n"
        "                            virtio-serial default: the port named --port-name\n"
        "  -n, --port-name=NAME      virtio-serial port name (default " DEFAULT_PORT_NAME ")\n"
        "  -t, --freeze-timeout=SEC  watchdog: thaw by itself after SEC seconds frozen\n"
        "                            without a thaw (default %u)\n"
        "  -s, --state-file=PATH     where frozen-ness is recorded (default " NET_FREEZER_STATE_FILE
        ")\n"
        "      --no-clock-step       report guest-net-thaw's host_time_ns step, do not set it\n"
        "  -v, --verbose             debug logging\n"
        "  -h, --help                this help\n"
        "  -V, --version             print the version\n",
        NET_FREEZER_DEFAULT_TIMEOUT_MS / 1000);
}

int main(int argc, char **argv)
{
    enum { OPT_NO_CLOCK = 0x100 };
    static const struct option opts[] = {
        {"method", required_argument, NULL, 'm'},
        {"path", required_argument, NULL, 'p'},
        {"port-name", required_argument, NULL, 'n'},
        {"freeze-timeout", required_argument, NULL, 't'},
        {"state-file", required_argument, NULL, 's'},
        {"no-clock-step", no_argument, NULL, OPT_NO_CLOCK},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    struct agent a = {
        .method = METHOD_VIRTIO,
        .port_name = DEFAULT_PORT_NAME,
        .clock_step = true,
        .listen_fd = -1,
        .conn_fd = -1,
        .sig_fd = -1,
        .timer_fd = -1,
    };
    struct net_freezer_config cfg = {.state_file = NET_FREEZER_STATE_FILE,
                                     .freeze_timeout_ms = NET_FREEZER_DEFAULT_TIMEOUT_MS};
    int c;
    while ((c = getopt_long(argc, argv, "m:p:n:t:s:vhV", opts, NULL)) >= 0) {
        switch (c) {
        case 'm':
            if (!strcmp(optarg, "virtio-serial"))
                a.method = METHOD_VIRTIO;
            else if (!strcmp(optarg, "unix-listen"))
                a.method = METHOD_UNIX;
            else if (!strcmp(optarg, "vsock-listen"))
                a.method = METHOD_VSOCK;
            else {
                fprintf(stderr, "netckpt-agent: unknown method '%s'\n", optarg);
                return 2;
            }
            break;
        case 'p':
            a.path = optarg;
            break;
        case 'n':
            a.port_name = optarg;
            break;
        case 't': {
            char *end;
            errno = 0;
            unsigned long s = strtoul(optarg, &end, 10);
            if (errno || *end || s == 0 || s > NET_FREEZER_MAX_TIMEOUT_MS / 1000) {
                fprintf(stderr, "netckpt-agent: bad --freeze-timeout '%s' (1-%u seconds)\n", optarg,
                        NET_FREEZER_MAX_TIMEOUT_MS / 1000);
                return 2;
            }
            cfg.freeze_timeout_ms = (uint32_t)s * 1000u;
            break;
        }
        case 's':
            cfg.state_file = optarg[0] ? optarg : NULL;
            break;
        case OPT_NO_CLOCK:
            a.clock_step = false;
            break;
        case 'v':
            setenv("NETCKPT_LOG", "debug", 1);
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("netckpt-agent %s\n", NETCKPT_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "netckpt-agent: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    cfg.set_clock = a.clock_step;
    const char *nosent = getenv("NETCKPT_AGENT_NO_SENTINEL");
    cfg.no_sentinel = nosent && !strcmp(nosent, "1");
    const char *fault = getenv("NETCKPT_AGENT_FAULT_FREEZE_AT");
    if (fault && *fault) {
        cfg.fault_freeze_at = strtoul(fault, NULL, 10);
        const char *crash = getenv("NETCKPT_AGENT_FAULT_CRASH");
        cfg.fault_crash = crash && !strcmp(crash, "1");
        log_warn("test hook: the dump of socket %zu will %s", cfg.fault_freeze_at,
                 cfg.fault_crash ? "kill the agent" : "fail");
    }
    raise_nofile();

    net_freezer_init(&a.nf, &cfg);
    int r = setup_signals(&a);
    if (r < 0) {
        log_err("signals: %s", strerror(-r));
        return 1;
    }
    r = build_table(&a);
    if (r < 0) {
        log_err("command table: %s", strerror(-r));
        return 1;
    }
    /* A previous agent that died frozen left sockets in repair mode: thaw them first. */
    (void)net_freezer_recover(&a.nf);

    r = open_transport(&a);
    if (r < 0) {
        qga_server_free(&a.srv);
        net_freezer_done(&a.nf);
        return 1;
    }
    log_info("netckpt-agent %s ready (freeze timeout %u s, state file %s)", NETCKPT_VERSION,
             cfg.freeze_timeout_ms / 1000, cfg.state_file ? cfg.state_file : "none");
    r = run(&a);

    thaw_now(&a, NET_THAW_SIGNAL);
    if (a.conn_fd >= 0)
        close(a.conn_fd);
    if (a.listen_fd >= 0) {
        close(a.listen_fd);
        if (a.method == METHOD_UNIX)
            unlink(a.path);
    }
    close(a.sig_fd);
    close(a.timer_fd);
    qga_server_free(&a.srv);
    net_freezer_done(&a.nf);
    log_info("exiting");
    return r < 0 ? 1 : 0;
}
