/* agent/agent-commands.c: see agent-commands.h. Keep in step with schemas/agent-commands.json
 * (tests/unit/test-qga-schema.c checks it). */
#include "agent/agent-commands.h"

#include <errno.h>
#include <string.h>
#include <time.h>

static const struct agent_command_info commands[AGENT_COMMAND_COUNT] = {
    {AGENT_CMD_SYNC, true, true, "Echo an integer id back, to resynchronise the stream"},
    {AGENT_CMD_SYNC_DELIMITED, true, true,
     "Like guest-sync, with a 0xFF byte sent before the reply"},
    {AGENT_CMD_PING, true, true, "Check that the agent answers"},
    {AGENT_CMD_INFO, true, false, "Agent version and supported commands"},
    {AGENT_CMD_NET_FREEZE, false, false,
     "Freeze the guest's external TCP connections and return their socket image"},
    {AGENT_CMD_NET_THAW, true, false,
     "Thaw every frozen connection and report per socket (idempotent)"},
    {AGENT_CMD_NET_STATUS, true, false, "Whether the network is frozen, since when, how many"},
    /* Allowed while frozen, unlike the brief's list: it compares the *frozen* sockets of a
     * restored guest with the image before the thaw, so frozen is the only state where it
     * means anything. */
    {AGENT_CMD_NET_VERIFY, true, false,
     "Compare the frozen sockets with a socket image and list the differences"},
    {AGENT_CMD_NET_RESET_STALE, false, false,
     "Abort the listed connections with RST so applications fail fast"},
    /* qemu-ga's name and reply: the host measures the guest clock's skew with it. */
    {AGENT_CMD_GET_TIME, true, false, "The guest's CLOCK_REALTIME in nanoseconds since the epoch"},
};

const struct agent_command_info *agent_commands(size_t *n)
{
    if (n)
        *n = ELEMENTSOF(commands);
    return commands;
}

const struct agent_command_info *agent_command_find(const char *name)
{
    for (size_t i = 0; name && i < ELEMENTSOF(commands); i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

static int get_time(void *userdata, json_object *args, json_object **ret, struct qga_error *err)
{
    static const char *const known[] = {NULL};
    int r = qga_args_check_known(args, known, err);
    if (r < 0)
        return r;
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
        return qga_error_errno(err, -errno, "clock_gettime");
    *ret = json_object_new_int64((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
    return *ret ? 0 : qga_error_errno(err, -ENOMEM, "get-time");
}

static qga_handler handler_for(const struct agent_handlers *h, const char *name)
{
    if (!strcmp(name, AGENT_CMD_INFO))
        return h->info;
    if (!strcmp(name, AGENT_CMD_NET_FREEZE))
        return h->net_freeze;
    if (!strcmp(name, AGENT_CMD_NET_THAW))
        return h->net_thaw;
    if (!strcmp(name, AGENT_CMD_NET_STATUS))
        return h->net_status;
    if (!strcmp(name, AGENT_CMD_NET_VERIFY))
        return h->net_verify;
    if (!strcmp(name, AGENT_CMD_NET_RESET_STALE))
        return h->net_reset_stale;
    if (!strcmp(name, AGENT_CMD_GET_TIME))
        return get_time;
    return NULL;
}

int agent_commands_table(const struct agent_handlers *h,
                         struct qga_command out[AGENT_COMMAND_COUNT])
{
    for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
        out[i].name = commands[i].name;
        out[i].allowed_while_frozen = commands[i].allowed_while_frozen;
        out[i].handler = commands[i].builtin ? NULL : handler_for(h, commands[i].name);
        if (!commands[i].builtin && !out[i].handler)
            return -EINVAL;
    }
    return 0;
}
