/* host/daemon-client.c: see daemon-client.h. */
#include "host/daemon-client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/macro.h"
#include "common/util.h"

#define DEFAULT_SOCKET "/run/netckpt/netckptd.sock"

const char *daemon_client_socket(const char *path)
{
    if (path && *path)
        return path;
    const char *e = getenv("NETCKPTD_SOCKET");
    return e && *e ? e : DEFAULT_SOCKET;
}

int daemon_client_connect(struct daemon_client *dc, const char *path, int timeout_ms)
{
    memset(dc, 0, sizeof(*dc));
    dc->fd = -1;
    path = daemon_client_socket(path);
    int fd = unix_connect(path, 0);
    if (fd < 0)
        return fd;
    dc->fd = fd;
    qga_transport_fd(&dc->tr, &dc->fd);
    dc->c = qga_client_new(&dc->tr);
    if (!dc->c) {
        daemon_client_close(dc);
        return -ENOMEM;
    }
    qga_client_set_max_reply(dc->c, DAEMON_CLIENT_REPLY_MAX);
    /* A refused peer gets one error line and EOF; the sync turns that into an error here. */
    int r = qga_client_sync(dc->c, timeout_ms);
    if (r < 0) {
        daemon_client_close(dc);
        return r == -ECONNRESET ? -EACCES : r;
    }
    return 0;
}

bool daemon_client_available(const char *path)
{
    struct daemon_client dc;
    if (daemon_client_connect(&dc, path, 2000) < 0)
        return false;
    daemon_client_close(&dc);
    return true;
}

int daemon_client_call(struct daemon_client *dc, const char *cmd, json_object *args, int timeout_ms,
                       json_object **ret, struct qga_error *err)
{
    if (!dc->c)
        return -ENOTCONN;
    return qga_client_call(dc->c, cmd, args, timeout_ms, ret, err);
}

void daemon_client_close(struct daemon_client *dc)
{
    if (dc->c)
        qga_client_free(dc->c);
    dc->c = NULL;
    if (dc->fd >= 0)
        close(dc->fd);
    dc->fd = -1;
}

int daemon_client_run(const char *path, const char *cmd, json_object *args, int timeout_ms,
                      json_object **ret, char *msg, size_t msglen)
{
    *ret = NULL;
    if (msglen)
        msg[0] = 0;
    struct daemon_client dc;
    int r =
        daemon_client_connect(&dc, path, timeout_ms < 0 || timeout_ms > 5000 ? 5000 : timeout_ms);
    if (r < 0) {
        snprintf(msg, msglen, "cannot reach netckptd at %s: %s", daemon_client_socket(path),
                 strerror(-r));
        return r;
    }
    struct qga_error err;
    qga_error_clear(&err);
    r = daemon_client_call(&dc, cmd, args, timeout_ms, ret, &err);
    daemon_client_close(&dc);
    if (r == -EREMOTEIO)
        snprintf(msg, msglen, "%s: %s", qga_error_class_name(err.cls), err.desc);
    else if (r < 0)
        snprintf(msg, msglen, "netckptd %s: %s", cmd, strerror(-r));
    return r;
}
