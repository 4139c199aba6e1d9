/* host/daemon-server.c: the control socket. A UNIX stream socket, root-only by default (mode
 * 0600; 0660 and the group with --group); every peer is checked again with SO_PEERCRED, so a
 * looser mode never lets a stranger in. Each client is served by its own thread through
 * agent/qga-server.h (the agent protocol's framer and dispatch) with a small request limit, so
 * a command that waits for a job blocks only its own client. */
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "host/daemon.h"

int daemon_listen(const struct daemon_config *cfg, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(cfg->socket_path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "socket path too long: %s", cfg->socket_path);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, cfg->socket_path);
    char dir[sizeof(sa.sun_path)];
    snprintf(dir, sizeof(dir), "%s", cfg->socket_path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        int r = mkdir_p(dir, 0755);
        if (r < 0) {
            snprintf(err, errlen, "cannot create %s: %s", dir, strerror(-r));
            return r;
        }
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return negative_errno();
    struct stat st;
    if (lstat(cfg->socket_path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "%s exists and is not a socket; refusing to replace it",
                     cfg->socket_path);
            close(fd);
            return -EEXIST;
        }
        /* Another netckptd answering there must not lose its socket. */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            close(probe);
            close(fd);
            snprintf(err, errlen, "another netckptd is listening on %s", cfg->socket_path);
            return -EADDRINUSE;
        }
        if (probe >= 0)
            close(probe);
        unlink(cfg->socket_path);
    }
    /* Bind with no permission for anyone, then open it up to the configured mode: no window
     * in which the socket is wider than asked. */
    mode_t old = umask(0777);
    int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (r < 0) {
        r = negative_errno();
        snprintf(err, errlen, "cannot bind %s: %s", cfg->socket_path, strerror(-r));
        close(fd);
        return r;
    }
    if ((cfg->have_group && chown(cfg->socket_path, (uid_t)-1, cfg->gid) < 0) ||
        chmod(cfg->socket_path, cfg->socket_mode) < 0 || listen(fd, 64) < 0) {
        r = negative_errno();
        snprintf(err, errlen, "cannot set up %s: %s", cfg->socket_path, strerror(-r));
        close(fd);
        unlink(cfg->socket_path);
        return r;
    }
    return fd;
}

static bool uid_in_group(uid_t uid, gid_t primary, gid_t want)
{
    if (primary == want)
        return true;
    char buf[16384];
    struct passwd pw, *res = NULL;
    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) != 0 || !res)
        return false;
    gid_t groups[256];
    int n = 256;
    if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) < 0)
        return false;
    for (int i = 0; i < n; i++)
        if (groups[i] == want)
            return true;
    return false;
}

bool daemon_peer_allowed(const struct daemon *d, int fd, uid_t *uid, pid_t *pid)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
        return false;
    *uid = cr.uid;
    *pid = cr.pid;
    if (cr.uid == 0 || cr.uid == geteuid())
        return true;
    return d->cfg.have_group && uid_in_group(cr.uid, cr.gid, d->cfg.gid);
}

static void send_error(int fd, const char *desc)
{
    struct qga_error e;
    qga_error_set(&e, QGA_ERR_GENERIC_ERROR, "%s", desc);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "error", qga_error_to_json(&e));
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    char line[1024];
    int n = snprintf(line, sizeof(line), "%s\n", s);
    if (n > 0 && (size_t)n < sizeof(line))
        (void)!send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    json_object_put(o);
}

static void *client_thread(void *arg)
{
    struct daemon_conn *c = arg;
    struct daemon *d = c->d;
    struct qga_command table[DAEMON_COMMAND_COUNT];
    daemon_command_table(table);
    struct qga_server s;
    if (qga_server_init(&s, table, DAEMON_COMMAND_COUNT, c, NULL) == 0) {
        /* Control requests are small: a tighter limit than the agent's 16 MiB. */
        qga_reader_free(&s.reader);
        qga_reader_init(&s.reader, DAEMON_MAX_REQUEST, DAEMON_MAX_DEPTH);
        char *buf = malloc(DAEMON_MAX_REQUEST);
        while (buf) {
            /* A client that says nothing for this long gives its slot back. */
            struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
            int pr = poll(&pfd, 1, DAEMON_CLIENT_IDLE_MS);
            if (pr < 0 && errno == EINTR)
                continue;
            if (pr <= 0)
                break;
            ssize_t n = read(c->fd, buf, DAEMON_MAX_REQUEST);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            if (qga_server_feed(&s, buf, (size_t)n, c->fd) < 0)
                break; /* the client stopped reading its replies */
        }
        free(buf);
        qga_server_free(&s);
    }
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->n_clients; i++)
        if (d->client_fds[i] == c->fd) {
            d->client_fds[i] = d->client_fds[--d->n_clients];
            break;
        }
    close(c->fd);
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    free(c);
    return NULL;
}

void daemon_accept(struct daemon *d, int listen_fd)
{
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            log_warn("accept: %s", strerror(errno));
        return;
    }
    uid_t uid = (uid_t)-1;
    pid_t pid = 0;
    if (!daemon_peer_allowed(d, fd, &uid, &pid)) {
        log_warn("control socket: refused uid %u (pid %d): not root%s", (unsigned)uid, (int)pid,
                 d->cfg.have_group ? " nor in the daemon's group" : "");
        send_error(fd, "permission denied: the netckptd control socket is for root (and the "
                       "group given with --group)");
        close(fd);
        return;
    }
    struct daemon_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    *c = (struct daemon_conn){.d = d, .fd = fd, .uid = uid, .pid = pid};
    /* A bound on a client that stops reading its replies. */
    struct timeval tv = {.tv_sec = QGA_SERVER_WRITE_TIMEOUT_MS / 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

    pthread_mutex_lock(&d->lock);
    bool full = d->n_clients >= DAEMON_MAX_CLIENTS || d->stopping;
    if (!full)
        d->client_fds[d->n_clients++] = fd;
    pthread_mutex_unlock(&d->lock);
    if (full) {
        send_error(fd, "too many control connections; try again later");
        close(fd);
        free(c);
        return;
    }
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int r = pthread_create(&t, &a, client_thread, c);
    pthread_attr_destroy(&a);
    if (r != 0) {
        log_warn("cannot start a client thread: %s", strerror(r));
        pthread_mutex_lock(&d->lock);
        for (size_t i = 0; i < d->n_clients; i++)
            if (d->client_fds[i] == fd) {
                d->client_fds[i] = d->client_fds[--d->n_clients];
                break;
            }
        pthread_mutex_unlock(&d->lock);
        close(fd);
        free(c);
    }
}
