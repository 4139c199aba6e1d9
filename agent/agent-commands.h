/* agent/agent-commands.h: the canonical command table of netckpt-agent, as data.
 *
 * Owns the list of commands, their one-line summaries and which are allowed while the guest
 * network is frozen. schemas/agent-commands.json declares the same (arguments and returns
 * too); a unit test checks that both agree. The guest binds its handlers with
 * agent_commands_table(); the host uses the names. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "agent/qga-server.h"

#define AGENT_CMD_SYNC            "guest-sync"
#define AGENT_CMD_SYNC_DELIMITED  "guest-sync-delimited"
#define AGENT_CMD_PING            "guest-ping"
#define AGENT_CMD_INFO            "guest-info"
#define AGENT_CMD_NET_FREEZE      "guest-net-freeze"
#define AGENT_CMD_NET_THAW        "guest-net-thaw"
#define AGENT_CMD_NET_STATUS      "guest-net-status"
#define AGENT_CMD_NET_VERIFY      "guest-net-verify"
#define AGENT_CMD_NET_RESET_STALE "guest-net-reset-stale"
#define AGENT_CMD_GET_TIME        "guest-get-time"

#define AGENT_COMMAND_COUNT 10

struct agent_command_info {
    const char *name;
    bool allowed_while_frozen;
    bool builtin; /* served by qga-server itself */
    const char *summary;
};

/* The table (AGENT_COMMAND_COUNT entries, constant). */
const struct agent_command_info *agent_commands(size_t *n);
/* NULL if name is not a netckpt-agent command. */
const struct agent_command_info *agent_command_find(const char *name);

/* Handlers of the non-built-in commands, provided by netckpt-agent. guest-get-time needs no
 * state and is bound by agent_commands_table() itself. */
struct agent_handlers {
    qga_handler info;
    qga_handler net_freeze;
    qga_handler net_thaw;
    qga_handler net_status;
    qga_handler net_verify;
    qga_handler net_reset_stale;
};

/* Fill out[] with every command, the canonical frozen flags and h's handlers (NULL for the
 * built-ins), ready for qga_server_init(). -EINVAL if a handler is missing. */
int agent_commands_table(const struct agent_handlers *h,
                         struct qga_command out[AGENT_COMMAND_COUNT]);
