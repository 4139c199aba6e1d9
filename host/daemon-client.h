/* host/daemon-client.h: talking to a running netckptd over its control socket, for the netckpt
 * CLI (which uses the daemon when one runs and works alone when none does) and for tools.
 *
 * Owns one connection: the socket plus an agent/qga-client.h client over it (the daemon speaks
 * the agent protocol's framing, so the client resyncs and matches ids the same way). Replies
 * are size-limited. Caller-owned struct; no global state. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "agent/qga-client.h"
#include "agent/qga-error.h"

#define DAEMON_CLIENT_REPLY_MAX (64u << 20)

struct daemon_client {
    int fd;
    struct qga_transport tr;
    struct qga_client *c;
};

/* The socket path: path if given, else $NETCKPTD_SOCKET, else /run/netckpt/netckptd.sock. */
const char *daemon_client_socket(const char *path);

/* Connect (timeout_ms bounds the first sync too). 0, or -ENOENT / -ECONNREFUSED when no
 * daemon runs there (the CLI then works alone), -EACCES when not allowed, or -errno. The
 * struct must not move while connected. */
int daemon_client_connect(struct daemon_client *dc, const char *path, int timeout_ms);
/* Is a daemon answering on path (daemon_client_socket rules)? */
bool daemon_client_available(const char *path);

/* Run a command: 0 with *ret (caller puts), -EREMOTEIO with err from the daemon's error reply,
 * -ETIMEDOUT, -ECONNRESET, or -errno. timeout_ms < 0 waits forever (a checkpoint with wait). */
int daemon_client_call(struct daemon_client *dc, const char *cmd, json_object *args, int timeout_ms,
                       json_object **ret, struct qga_error *err);
void daemon_client_close(struct daemon_client *dc);

/* One call on a fresh connection, for a front end that only forwards one command: connect
 * (path as above), call, close. 0 with *ret; -ENOENT/-ECONNREFUSED: no daemon (work alone);
 * -EREMOTEIO: the daemon refused, msg says why; other -errno with msg filled. */
int daemon_client_run(const char *path, const char *cmd, json_object *args, int timeout_ms,
                      json_object **ret, char *msg, size_t msglen);
