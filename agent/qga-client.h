/* agent/qga-client.h: the qga client half (the host side), over any byte transport.
 *
 * Owns the request/reply exchange and its resynchronisation: a fresh client, and any client
 * after a timeout, EOF or corrupt reply, first sends 0xFF plus guest-sync-delimited with a
 * random id and discards everything until the reply carrying that id. Every call carries its
 * own "id" too; replies with another id are stale and ignored. Replies are size- and
 * depth-limited like requests (agent/qga-stream.h): the guest is untrusted. */
#pragma once
#include <json-c/json.h>
#include <stddef.h>
#include <sys/types.h>

#include "agent/qga-error.h"

struct qga_transport {
    void *ctx;
    /* All of buf or -errno. */
    ssize_t (*send)(void *ctx, const void *buf, size_t len);
    /* Up to len bytes; 0 on EOF, -ETIMEDOUT when nothing came in timeout_ms (<0: forever),
     * other -errno on error. */
    ssize_t (*recv)(void *ctx, void *buf, size_t len, int timeout_ms);
};

/* A transport over a plain fd (UNIX, vsock or virtio-serial); ctx = fd, which must stay
 * valid (and is not closed by the client). Sends use MSG_NOSIGNAL on sockets. */
void qga_transport_fd(struct qga_transport *t, int *fd);

struct qga_client;

/* t is copied. NULL on ENOMEM. */
struct qga_client *qga_client_new(const struct qga_transport *t);
void qga_client_free(struct qga_client *c);
static inline void qga_client_freep(struct qga_client **c)
{
    qga_client_free(*c);
}
#define _cleanup_qga_client_ _cleanup_(qga_client_freep)

/* Reply size limit (default QGA_MAX_MESSAGE_BYTES). A socket image with big queues may need
 * more: the host raises it for guest-net-freeze. Capped at 1 GiB; takes effect at once. */
int qga_client_set_max_reply(struct qga_client *c, size_t bytes);

/* Resynchronise now: 0xFF + guest-sync-delimited with a random id, wait for that id.
 * 0, -ETIMEDOUT, -ECONNRESET (EOF) or -errno. */
int qga_client_sync(struct qga_client *c, int timeout_ms);

/* Forget partial input and resync before the next call (e.g. after reconnecting). */
void qga_client_reset(struct qga_client *c);

/* Send {"execute":cmd,"arguments":args,"id":N} (args borrowed, may be NULL) and wait for the
 * reply with that id (timeout_ms covers the resync too; <0: forever). Returns 0 with *ret
 * (caller owns; NULL only if the agent returned JSON null), -EREMOTEIO with err filled from an
 * error reply, -ETIMEDOUT (the next call resyncs first), -ECONNRESET on EOF, -EMSGSIZE / -EBADMSG /
 * -EPROTO on a bad reply (err says what), or another -errno. */
int qga_client_call(struct qga_client *c, const char *cmd, json_object *args, int timeout_ms,
                    json_object **ret, struct qga_error *err);
