/* host/agent-link.h: reaching the netckpt agent in a domain, over the best path available:
 *   1. the channel's UNIX socket from the live XML (QEMU listens on it; we connect);
 *   2. virDomainOpenChannel with a non-blocking virStream;
 *   3. virDomainQemuAgentCommand, when the agent serves org.qemu.guest_agent.0 (libvirt then
 *      owns the socket and does the sync itself).
 * Paths 1 and 2 speak qga through agent/qga-client.h. Every call has a timeout; after a timeout
 * the next call resyncs first. Replies are untrusted and size limited. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>
#include <libvirt/libvirt.h>

#include "agent/qga-client.h"
#include "agent/qga-error.h"
#include "host/domain-xml.h"
#include "host/virt.h"

#define AGENT_LINK_REPLY_MAX (16u << 20)

enum agent_link_kind {
    AGENT_LINK_AUTO, /* for agent_link_open_kind: try in the order above */
    AGENT_LINK_UNIX,
    AGENT_LINK_STREAM,
    AGENT_LINK_QEMU_AGENT,
};

struct agent_link_stream; /* private: the virStream and its wakeup */

struct agent_link {
    enum agent_link_kind kind;
    struct nc_virt *v;
    virDomainPtr dom;             /* referenced */
    int fd;                       /* AGENT_LINK_UNIX */
    struct agent_link_stream *st; /* AGENT_LINK_STREAM */
    struct qga_transport tr;
    struct qga_client *client;
    size_t max_reply;
    char agent_name[64];
};

const char *agent_link_kind_name(enum agent_link_kind k);

/* The struct must not move in memory between open and close (the transport points into it). */

/* Open the link for domain dom described by di (from its live XML). 0 or -errno.
 * $NETCKPT_AGENT_LINK=unix|stream|qemu-agent pins one path instead of trying them in order. */
int agent_link_open(struct agent_link *l, struct nc_virt *v, virDomainPtr dom,
                    const struct domain_info *di);
/* Same, forcing one path (AGENT_LINK_AUTO = agent_link_open). */
int agent_link_open_kind(struct agent_link *l, struct nc_virt *v, virDomainPtr dom,
                         const struct domain_info *di, enum agent_link_kind kind);
/* Connect to a UNIX socket directly (no libvirt), e.g. a test agent. */
int agent_link_open_unix(struct agent_link *l, const char *path, int timeout_ms);

/* Run cmd with args (borrowed, may be NULL). 0 with *ret (caller puts), -EREMOTEIO with err
 * filled from the agent's error, -ETIMEDOUT (the next call resyncs), or -errno. */
int agent_link_call(struct agent_link *l, const char *cmd, json_object *args, int timeout_ms,
                    json_object **ret, struct qga_error *err);
/* guest-sync-delimited now (after a reconnect or before a critical command). */
int agent_link_sync(struct agent_link *l, int timeout_ms);
void agent_link_close(struct agent_link *l);
/* Raise or lower the reply size limit (default AGENT_LINK_REPLY_MAX; a big socket image may
 * need more, capped by agent/qga-client.h). Applies to the qga paths and to libvirt's. */
int agent_link_set_max_reply(struct agent_link *l, size_t bytes);
/* Parse one reply as libvirt's agent API hands it over (exposed for tests): untrusted, limited
 * to max bytes and QGA_MAX_DEPTH. 0 with *ret, -EREMOTEIO with err, or -EMSGSIZE/-EBADMSG. */
int agent_link_parse_reply(const char *reply, size_t max, json_object **ret, struct qga_error *err);
