/* host/cli-commands.c: the command table and the commands that only read or clean up:
 * list, status, inspect, verify, unblock, policy, demo, help. checkpoint and restore are in
 * host/cli-txn.c. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>

#include "agent/agent-commands.h"
#include "common/log.h"
#include "common/util.h"
#include "host/bundle.h"
#include "host/cli.h"
#include "host/daemon-client.h"
#include "host/gate.h"
#include "host/hold.h"
#include "host/journal.h"
#include "host/txn-real.h"
#include "host/virt.h"
#include "version.h"

#define AGENT_CHANNEL_OPT                                                                          \
    {                                                                                              \
        "agent-channel", CLI_OPT_STRING, 0,                                                        \
            "virtio channel of the agent: org.netckpt.agent.0 (default) or "                       \
            "org.qemu.guest_agent.0",                                                              \
            "org.netckpt.agent.0|org.qemu.guest_agent.0", CLI_COMPLETE_NONE                        \
    }

/* Options that several commands take, written once so their help and checks agree. */
#define DOMAIN_ARG_OPT                                                                             \
    {                                                                                              \
        "domain", CLI_OPT_STRING, CLI_OPT_REQUIRED | CLI_OPT_POSITIONAL, "domain name or UUID",    \
            NULL, CLI_COMPLETE_DOMAIN                                                              \
    }

#define NO_REPLAY_OPT                                                                              \
    {                                                                                              \
        "no-replay", CLI_OPT_BOOL, 0,                                                              \
            "do not hold and replay the frames sent to the guest while it is gated (the peers "    \
            "retransmit them, later)",                                                             \
            NULL, CLI_COMPLETE_NONE                                                                \
    }

#define REPLAY_LIMIT_OPT                                                                           \
    {                                                                                              \
        "replay-limit", CLI_OPT_SIZE, 0,                                                           \
            "bytes of held frames kept per domain for the replay: N, NK, NM or NG (KiB units; "    \
            "default 4M, 64K..256M)",                                                              \
            NULL, CLI_COMPLETE_NONE                                                                \
    }

static const struct cli_opt opts_checkpoint[] = {
    DOMAIN_ARG_OPT,
    {"dir", CLI_OPT_STRING, CLI_OPT_REQUIRED, "bundle directory to create (must not exist)", NULL,
     CLI_COMPLETE_DIR},
    {"continue", CLI_OPT_BOOL, 0, "keep the VM running afterwards (checkpoint-and-continue)", NULL,
     CLI_COMPLETE_NONE},
    {"snapshot", CLI_OPT_BOOL, 0, "keep the VM state as a libvirt snapshot with memory", NULL,
     CLI_COMPLETE_NONE},
    {"freeze-timeout", CLI_OPT_INT, 0,
     "seconds after which the agent thaws by itself if netckpt vanishes (default 60)", NULL,
     CLI_COMPLETE_NONE},
    NO_REPLAY_OPT,
    REPLAY_LIMIT_OPT,
    AGENT_CHANNEL_OPT,
    {NULL, 0, 0, NULL, NULL, 0},
};

static const struct cli_opt opts_restore[] = {
    {"bundle", CLI_OPT_STRING, CLI_OPT_REQUIRED | CLI_OPT_POSITIONAL, "bundle directory", NULL,
     CLI_COMPLETE_DIR},
    {"stale", CLI_OPT_STRING, 0,
     "connections whose peer moved past the checkpoint: auto resets them so they fail fast "
     "(default), keep leaves them",
     "auto|keep", CLI_COMPLETE_NONE},
    {"paused", CLI_OPT_BOOL, 0,
     "stop after the verification: VM paused, gated, sockets frozen ('unblock' continues)", NULL,
     CLI_COMPLETE_NONE},
    {"image", CLI_OPT_STRING, 0, "verify against this socket image instead of the bundle's", NULL,
     CLI_COMPLETE_FILE},
    {"watch", CLI_OPT_INT, 0,
     "milliseconds to watch the taps for the per-connection report (default 2000, 0: off)", NULL,
     CLI_COMPLETE_NONE},
    {"clock", CLI_OPT_STRING, 0,
     "sync steps the guest's wall clock to the host's at the thaw (default), keep leaves it "
     "behind by the outage",
     "sync|keep", CLI_COMPLETE_NONE},
    NO_REPLAY_OPT,
    REPLAY_LIMIT_OPT,
    {"no-kick", CLI_OPT_BOOL, 0,
     "thaw without the kick (no window probe, no RTO revert): the peers resume at their next "
     "retransmission",
     NULL, CLI_COMPLETE_NONE},
    AGENT_CHANNEL_OPT,
    {NULL, 0, 0, NULL, NULL, 0},
};

static const struct cli_opt opts_migrate[] = {
    DOMAIN_ARG_OPT,
    {"desturi", CLI_OPT_STRING, CLI_OPT_REQUIRED | CLI_OPT_POSITIONAL,
     "destination libvirt URI (the source connects to it: peer to peer)", NULL, CLI_COMPLETE_NONE},
    {"migrate-uri", CLI_OPT_STRING, 0, "QEMU's migration stream, e.g. tcp://ADDR:PORT", NULL,
     CLI_COMPLETE_NONE},
    {"listen-address", CLI_OPT_STRING, 0, "address the destination QEMU listens on", NULL,
     CLI_COMPLETE_NONE},
    {"xml", CLI_OPT_STRING, 0, "domain XML to use on the destination", NULL, CLI_COMPLETE_FILE},
    {"dest-netns", CLI_OPT_STRING, 0,
     "network namespace (name or path) holding the destination's taps, when not this one", NULL,
     CLI_COMPLETE_NONE},
    {"switchover-hook", CLI_OPT_STRING, 0,
     "shell command run when the destination holds the guest, gated, before it resumes", NULL,
     CLI_COMPLETE_NONE},
    {"precopy", CLI_OPT_INT, 0,
     "percent of RAM the held first pass covers before the quiesce, which comes after 2 s at "
     "the latest (default 30, 1..95)",
     NULL, CLI_COMPLETE_NONE},
    {"freeze-timeout", CLI_OPT_INT, 0,
     "seconds after which the agent thaws by itself if netckpt vanishes (default 60)", NULL,
     CLI_COMPLETE_NONE},
    {"watch", CLI_OPT_INT, 0,
     "milliseconds to watch the destination taps for the per-connection report (default 2000, "
     "0: off)",
     NULL, CLI_COMPLETE_NONE},
    {"stale", CLI_OPT_STRING, 0, "auto resets connections that stay stalled; keep (default)",
     "auto|keep", CLI_COMPLETE_NONE},
    {"no-kick", CLI_OPT_BOOL, 0,
     "thaw on the destination without the kick (no window probe): the peers resume at their "
     "next retransmission",
     NULL, CLI_COMPLETE_NONE},
    AGENT_CHANNEL_OPT,
    {NULL, 0, 0, NULL, NULL, 0},
};

static const struct cli_opt opts_domain_agent[] = {
    DOMAIN_ARG_OPT,
    AGENT_CHANNEL_OPT,
    {NULL, 0, 0, NULL, NULL, 0},
};

static const struct cli_opt opts_unblock[] = {
    DOMAIN_ARG_OPT,
    {"force", CLI_OPT_BOOL, 0, "even if the journal's netckpt process still runs", NULL,
     CLI_COMPLETE_NONE},
    AGENT_CHANNEL_OPT,
    {NULL, 0, 0, NULL, NULL, 0},
};

static const struct cli_opt opts_bundle[] = {
    {"bundle", CLI_OPT_STRING, CLI_OPT_REQUIRED | CLI_OPT_POSITIONAL, "bundle directory", NULL,
     CLI_COMPLETE_DIR},
    {NULL, 0, 0, NULL, NULL, 0},
};

static const struct cli_opt opts_list[] = {
    {"all", CLI_OPT_BOOL, 0, "also inactive domains", NULL, CLI_COMPLETE_NONE},
    {NULL, 0, 0, NULL, NULL, 0},
};

static const struct cli_opt opts_policy[] = {
    {"action", CLI_OPT_STRING, CLI_OPT_POSITIONAL, "list (default) or run", "list|run",
     CLI_COMPLETE_NONE},
    {"name", CLI_OPT_STRING, CLI_OPT_POSITIONAL, "the policy to run", NULL, CLI_COMPLETE_NONE},
    {"wait", CLI_OPT_BOOL, 0, "run: wait for the policy's checkpoints", NULL, CLI_COMPLETE_NONE},
    {NULL, 0, 0, NULL, NULL, 0},
};

static const struct cli_opt opts_help[] = {
    {"command", CLI_OPT_STRING, CLI_OPT_POSITIONAL, "command to describe", NULL, CLI_COMPLETE_NONE},
    {NULL, 0, 0, NULL, NULL, 0},
};

static const struct cli_opt opts_none[] = {
    {NULL, 0, 0, NULL, NULL, 0},
};

const struct cli_cmd cli_commands[] = {
    {"checkpoint", "checkpoint a running domain with its TCP connections",
     "Discover the domain's taps and agent, gate the taps (silent drop), freeze the guest's TCP\n"
     "connections, save the VM into a new bundle and commit it. Without --continue the VM is\n"
     "left saved and off (and nothing stays gated); with --continue it is resumed, the gate\n"
     "lifted and the agent thawed. Any failure or signal rolls back: VM running, network open.",
     opts_checkpoint, true, false, false, cli_cmd_checkpoint},
    {"restore", "restore a bundle and carry its TCP connections on",
     "Verify the bundle, gate the taps, restore the VM paused, resume it while gated, have the\n"
     "agent verify the live sockets against the image (refused on a mismatch: the VM stays\n"
     "paused and gated), lift the gate, thaw with the host's clock, and report each\n"
     "connection: survived, stale, reset or stalled, with the stall measured on the tap.",
     opts_restore, true, false, false, cli_cmd_restore},
    {"migrate", "migrate a running domain live, its TCP connections quiesced at the switchover",
     "Pre-copy the domain live to DESTURI (peer to peer) while its network runs; then gate the\n"
     "source taps, freeze the guest's TCP connections, suspend, and let libvirt switch over to\n"
     "the destination, paused behind its own gate. There: resume, verify the sockets against\n"
     "the image, lift, thaw with the kick, and report each connection. A failure before the\n"
     "switchover rolls back to the source; after it, the VM is brought up on the destination.",
     opts_migrate, true, false, false, cli_cmd_migrate},
    {"status", "show a domain's gate, agent and last checkpoint", NULL, opts_domain_agent, true,
     false, false, cli_cmd_status},
    {"inspect", "show a bundle's manifest and its connections",
     "Verify the bundle completely and print its manifest and a table of the connections of\n"
     "its socket image.",
     opts_bundle, false, false, false, cli_cmd_inspect},
    {"verify", "verify a bundle (completeness, checksums, schema)",
     "Exit 0 when the bundle is complete and intact, 3 when it is refused.", opts_bundle, false,
     false, false, cli_cmd_verify},
    {"list", "list domains with their gate and journal state", NULL, opts_list, true, false, false,
     cli_cmd_list},
    {"unblock", "lift a domain's gate and let it run again",
     "Lift the gate, resume the domain if netckpt left it paused, thaw its agent, and clean its\n"
     "journal entry and partial bundle. For a refused or --paused restore, and after a netckpt\n"
     "that was killed.",
     opts_unblock, false, false, false, cli_cmd_unblock},
    {"policy", "list netckptd's policies, or run one now",
     "'policy' or 'policy list' shows the policies netckptd loaded (and the files it refused);\n"
     "'policy run NAME [--wait]' runs one now for every running domain it matches. Needs a\n"
     "running netckptd (see netckptd(8)).",
     opts_policy, false, false, false, cli_cmd_policy},
    {"demo", "run the real-VM demo (scripts/demo; arguments pass through)", NULL, opts_none, false,
     true, true, cli_cmd_demo},
    {"help", "describe the commands", NULL, opts_help, false, false, true, cli_cmd_help},
    {NULL, NULL, NULL, NULL, false, false, false, NULL},
};

/* ---- shared helpers ---- */

void cli_iso_time(uint64_t realtime_ns, char *buf, size_t len)
{
    time_t t = (time_t)(realtime_ns / 1000000000ull);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_object *counters_json(const struct manifest_counters *c)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "to_guest_pkts", json_object_new_int64((int64_t)c->to_guest_pkts));
    json_object_object_add(o, "to_guest_bytes", json_object_new_int64((int64_t)c->to_guest_bytes));
    json_object_object_add(o, "from_guest_pkts",
                           json_object_new_int64((int64_t)c->from_guest_pkts));
    json_object_object_add(o, "from_guest_bytes",
                           json_object_new_int64((int64_t)c->from_guest_bytes));
    return o;
}

json_object *cli_manifest_json(const struct manifest *m)
{
    char iso[64];
    json_object *o = json_object_new_object();
    json_object_object_add(o, "domain", json_object_new_string(m->domain_name));
    json_object_object_add(o, "uuid", json_object_new_string(m->domain_uuid));
    json_object_object_add(o, "created_ns", json_object_new_int64((int64_t)m->created_ns));
    cli_iso_time(m->created_ns, iso, sizeof(iso));
    json_object_object_add(o, "created", json_object_new_string(iso));
    json_object_object_add(o, "mode", json_object_new_string(manifest_mode_name(m->mode)));
    json_object_object_add(
        o, "state",
        json_object_new_string(m->state == MANIFEST_STATE_SNAPSHOT ? "snapshot" : "save"));
    json_object_object_add(o, "snapshot",
                           m->snapshot_name[0] ? json_object_new_string(m->snapshot_name) : NULL);
    json_object_object_add(o, "image_id", json_object_new_string(m->image_id));
    json_object_object_add(o, "connections", json_object_new_int64(m->n_connections));
    json_object *taps = json_object_new_array();
    for (size_t i = 0; i < m->n_taps; i++)
        json_object_array_add(taps, json_object_new_string(m->taps[i]));
    json_object_object_add(o, "taps", taps);
    json_object_object_add(o, "gate_counters", counters_json(&m->counters));
    json_object *files = json_object_new_array();
    for (size_t i = 0; i < m->n_files; i++) {
        json_object *f = json_object_new_object();
        json_object_object_add(f, "name", json_object_new_string(m->files[i].name));
        json_object_object_add(f, "size", json_object_new_int64((int64_t)m->files[i].size));
        json_object_object_add(f, "sha256", json_object_new_string(m->files[i].sha256));
        json_object_array_add(files, f);
    }
    json_object_object_add(o, "files", files);
    json_object *steps = json_object_new_array();
    for (size_t i = 0; i < m->n_steps; i++) {
        json_object *s = json_object_new_object();
        json_object_object_add(s, "name", json_object_new_string(m->steps[i].name));
        json_object_object_add(s, "ms",
                               json_object_new_double((double)m->steps[i].duration_ns / 1e6));
        json_object_array_add(steps, s);
    }
    json_object_object_add(o, "steps", steps);
    json_object_object_add(o, "netckpt_version", json_object_new_string(m->netckpt_version));
    json_object_object_add(o, "libvirt_version", json_object_new_string(m->libvirt_version));
    return o;
}

static int checkpoint_record_path(const struct cli_ctx *ctx, const char *domain, char *buf,
                                  size_t len)
{
    char table[GATE_TABLE_NAME_MAX];
    int r = gate_table_name(domain, table, sizeof(table));
    if (r < 0)
        return r;
    return snprintf(buf, len, "%s/checkpoints/%s.json", ctx->state_dir, table) < (int)len
               ? 0
               : -ENAMETOOLONG;
}

int cli_last_checkpoint_write(const struct cli_ctx *ctx, const char *domain, json_object *rec)
{
    char path[PATH_MAX], dir[PATH_MAX];
    int r = checkpoint_record_path(ctx, domain, path, sizeof(path));
    if (r < 0)
        return r;
    snprintf(dir, sizeof(dir), "%s/checkpoints", ctx->state_dir);
    r = mkdir_p(dir, 0700);
    if (r < 0)
        return r;
    const char *s = json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN |
                                                            JSON_C_TO_STRING_NOSLASHESCAPE);
    return write_file_atomic(path, s, strlen(s), 0600);
}

json_object *cli_last_checkpoint_read(const struct cli_ctx *ctx, const char *domain)
{
    char path[PATH_MAX];
    _cleanup_free_ char *buf = NULL;
    size_t len;
    if (checkpoint_record_path(ctx, domain, path, sizeof(path)) < 0 ||
        read_file(path, 64 * 1024, &buf, &len) < 0)
        return NULL;
    json_object *j = json_tokener_parse(buf);
    if (j && !json_object_is_type(j, json_type_object)) {
        json_object_put(j);
        return NULL;
    }
    return j;
}

static int64_t jint(json_object *o, const char *k, int64_t dflt)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_int))
        return json_object_get_int64(v);
    return dflt;
}

static json_object *journal_json(const struct journal_entry *e)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "step", json_object_new_string(e->step));
    json_object_object_add(o, "pid", json_object_new_int(e->pid));
    json_object_object_add(o, "owner_alive", json_object_new_boolean(journal_owner_alive(e) == 1));
    json_object_object_add(o, "started_ns", json_object_new_int64((int64_t)e->started_ns));
    json_object_object_add(o, "bundle_tmp", json_object_new_string(e->bundle_tmp));
    json_object *taps = json_object_new_array();
    for (size_t i = 0; i < e->n_taps; i++)
        json_object_array_add(taps, json_object_new_string(e->taps[i]));
    json_object_object_add(o, "taps", taps);
    return o;
}

static int exit_for_errno(int r)
{
    return r == -EINVAL || r == -ENOENT || r == -EFBIG || r == -EBADMSG ? NC_EXIT_REFUSED
                                                                        : NC_EXIT_FAILURE;
}

static int fail_msg(const struct cli_ctx *ctx, int code, const char *msg)
{
    fprintf(stderr, "netckpt: %s\n", msg);
    if (ctx->json)
        cli_print_json(cli_error_json(code, msg));
    return code;
}

/* A path that does not exist is a mistyped argument, not a bundle refused (exit 3 is for
 * bundles that are there but incomplete, corrupt or tampered with: also a half-written one,
 * which lives at DIR/.NAME.partial until its commit). restore follows the same rule. */
static bool bundle_missing(const char *path, char *msg, size_t len)
{
    return txn_real_bundle_missing(path, msg, len);
}

/* ---- list ---- */

/* The domains as `netckpt --json list` shows them (also netckptd's list). NULL with err set
 * when libvirt cannot list. */
json_object *cli_list_json(struct nc_virt *v, const char *state_dir, bool all, char *err,
                           size_t errlen)
{
    virDomainPtr *doms = NULL;
    int n = virConnectListAllDomains(v->conn, &doms, all ? 0 : VIR_CONNECT_LIST_DOMAINS_ACTIVE);
    if (n < 0) {
        const char *m = virGetLastErrorMessage();
        snprintf(err, errlen, "%s", m ? m : "listing domains failed");
        return NULL;
    }
    json_object *arr = json_object_new_array();
    for (int i = 0; i < n; i++) {
        json_object *o = json_object_new_object();
        const char *name = virDomainGetName(doms[i]);
        char uuid[VIR_UUID_STRING_BUFLEN] = "";
        virDomainGetUUIDString(doms[i], uuid);
        unsigned id = virDomainGetID(doms[i]);
        int st = 0, reason = 0;
        nc_virt_state(v, doms[i], &st, &reason);
        json_object_object_add(o, "name", json_object_new_string(name ? name : ""));
        json_object_object_add(o, "uuid", json_object_new_string(uuid));
        json_object_object_add(o, "id", id == (unsigned)-1 ? NULL : json_object_new_int64(id));
        json_object_object_add(o, "state", json_object_new_string(nc_virt_state_name(st)));
        json_object_object_add(o, "persistent",
                               json_object_new_boolean(virDomainIsPersistent(doms[i]) == 1));
        int g = name ? gate_is_installed(name) : -EINVAL;
        json_object_object_add(o, "gated", g < 0 ? NULL : json_object_new_boolean(g == 1));
        struct journal_entry e;
        json_object_object_add(
            o, "journal",
            name && state_dir && journal_read(state_dir, name, &e) == 0 ? journal_json(&e) : NULL);
        json_object_array_add(arr, o);
        virDomainFree(doms[i]);
    }
    free(doms);
    return arr;
}

int cli_list_print(const struct cli_ctx *ctx, json_object *arr)
{
    if (ctx->json) {
        json_object *out = json_object_new_object();
        json_object_object_add(out, "domains", arr);
        cli_print_json(out);
        return NC_EXIT_OK;
    }
    if (!ctx->quiet) {
        printf(" %-5s %-30s %-12s %s\n", "Id", "Name", "State", "Gate");
        printf("-----------------------------------------------------------\n");
        for (size_t i = 0; i < json_object_array_length(arr); i++) {
            json_object *o = json_object_array_get_idx(arr, i);
            json_object *id = cli_jget(o, "id"), *g = cli_jget(o, "gated");
            printf(" %-5s %-30s %-12s %s\n", id ? json_object_get_string(id) : "-",
                   cli_jstr(o, "name", ""), cli_jstr(o, "state", ""),
                   !g                           ? "?"
                   : json_object_get_boolean(g) ? "gated"
                                                : "open");
        }
    }
    json_object_put(arr);
    return NC_EXIT_OK;
}

int cli_cmd_list(struct cli_ctx *ctx, const struct cli_args *a)
{
    char err[512];
    json_object *arr =
        cli_list_json(ctx->virt, ctx->state_dir, cli_arg_bool(a, "all"), err, sizeof(err));
    if (!arr)
        return fail_msg(ctx, NC_EXIT_FAILURE, err);
    return cli_list_print(ctx, arr);
}

/* ---- status ---- */

/* The stop-mode outage holder of a domain that is off (host/hold.h), from its own status
 * reply; NULL when none answers. Only asked while the domain is not running: a running tap
 * ends the hold. */
static json_object *outage_hold_json(const char *state_dir, const char *domain)
{
    json_object *hs = NULL;
    if (hold_status(state_dir, domain, &hs) < 0 || !hs)
        return NULL;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "pid", json_object_new_int((int)jint(hs, "pid", 0)));
    json_object_object_add(o, "frames", json_object_new_int64(jint(hs, "frames", 0)));
    json_object_object_add(o, "bytes", json_object_new_int64(jint(hs, "bytes", 0)));
    json_object_object_add(o, "dropped", json_object_new_int64(jint(hs, "dropped", 0)));
    json_object_object_add(o, "image_id", json_object_new_string(cli_jstr(hs, "image_id", "")));
    char until[64] = "";
    int64_t dl = jint(hs, "deadline_ns", 0);
    if (dl > 0)
        cli_iso_time((uint64_t)dl, until, sizeof(until));
    json_object_object_add(o, "until", until[0] ? json_object_new_string(until) : NULL);
    json_object_put(hs);
    return o;
}

json_object *cli_status_json(struct nc_virt *v, const char *state_dir, const char *domain,
                             const char *agent_channel, const char *no_probe, char *err,
                             size_t errlen)
{
    json_object *o = json_object_new_object();
    virDomainPtr dom = NULL;
    int r = nc_virt_lookup(v, domain, &dom);
    const char *name = domain;
    int st = -1, reason = 0;
    if (r == 0) {
        name = virDomainGetName(dom);
        char uuid[VIR_UUID_STRING_BUFLEN] = "";
        virDomainGetUUIDString(dom, uuid);
        nc_virt_state(v, dom, &st, &reason);
        json_object_object_add(o, "domain", json_object_new_string(name));
        json_object_object_add(o, "uuid", json_object_new_string(uuid));
        json_object_object_add(o, "state", json_object_new_string(nc_virt_state_name(st)));
    } else if (r == -ENOENT) {
        json_object_object_add(o, "domain", json_object_new_string(domain));
        json_object_object_add(o, "uuid", NULL);
        json_object_object_add(o, "state", json_object_new_string("absent"));
    } else {
        json_object_put(o);
        snprintf(err, errlen, "%s", v->err[0] ? v->err : strerror(-r));
        return NULL;
    }
    json_object *gate = json_object_new_object();
    int g = gate_is_installed(name);
    json_object_object_add(gate, "installed", g < 0 ? NULL : json_object_new_boolean(g == 1));
    struct gate_counters c;
    if (g == 1 && gate_read_counters(name, &c) == 0) {
        struct manifest_counters mc = {c.to_guest_pkts, c.to_guest_bytes, c.from_guest_pkts,
                                       c.from_guest_bytes};
        json_object_object_add(gate, "counters", counters_json(&mc));
    } else {
        json_object_object_add(gate, "counters", NULL);
    }
    if (g < 0)
        json_object_object_add(gate, "error", json_object_new_string(strerror(-g)));
    json_object_object_add(o, "gate", gate);
    struct journal_entry e;
    json_object_object_add(o, "journal",
                           journal_read(state_dir, name, &e) == 0 ? journal_json(&e) : NULL);
    json_object *agent = json_object_new_object();
    char not_running[96];
    if (st < 0)
        snprintf(not_running, sizeof(not_running), "the domain does not exist");
    else
        snprintf(not_running, sizeof(not_running), "the domain is %s", nc_virt_state_name(st));
    if (st == VIR_DOMAIN_RUNNING && !no_probe) {
        struct txn_real t;
        txn_real_init(&t, v, state_dir, NULL);
        t.agent_name = agent_channel;
        snprintf(t.domain, sizeof(t.domain), "%s", name);
        json_object *ret = NULL;
        char aerr[512] = "";
        r = txn_real_agent_call(&t, AGENT_CMD_NET_STATUS, NULL, 3000, &ret, aerr, sizeof(aerr));
        txn_real_done(&t);
        json_object_object_add(agent, "reachable", json_object_new_boolean(r == 0));
        json_object *fr = cli_jget(ret, "frozen");
        json_object_object_add(agent, "frozen", fr ? json_object_get(fr) : NULL);
        json_object_object_add(agent, "status", ret);
        json_object_object_add(agent, "error", r == 0 ? NULL : json_object_new_string(aerr));
    } else {
        /* no_probe: netckptd has a job talking to this agent right now */
        json_object_object_add(agent, "reachable",
                               st == VIR_DOMAIN_RUNNING ? NULL : json_object_new_boolean(false));
        json_object_object_add(agent, "frozen", NULL);
        json_object_object_add(agent, "status", NULL);
        json_object_object_add(
            agent, "error",
            json_object_new_string(st == VIR_DOMAIN_RUNNING ? no_probe : not_running));
    }
    json_object_object_add(o, "agent", agent);
    struct cli_ctx cctx = {.state_dir = state_dir};
    json_object_object_add(o, "last_checkpoint", cli_last_checkpoint_read(&cctx, name));
    json_object_object_add(o, "outage_hold",
                           st == VIR_DOMAIN_RUNNING || st == VIR_DOMAIN_PAUSED
                               ? NULL
                               : outage_hold_json(state_dir, name));
    if (dom)
        virDomainFree(dom);
    return o;
}

int cli_status_print(const struct cli_ctx *ctx, json_object *o, const char *asked)
{
    /* An unknown domain is an error (exit 1); --json keeps the same keys and adds "error".
     * A gate or journal entry netckpt still holds under that name is shown all the same. */
    int code = NC_EXIT_OK;
    bool show = !ctx->quiet;
    json_object *gate = cli_jget(o, "gate"), *agent = cli_jget(o, "agent");
    if (!strcmp(cli_jstr(o, "state", ""), "absent")) {
        char msg[600];
        snprintf(msg, sizeof(msg), "domain %s not found", asked);
        fprintf(stderr, "netckpt: %s\n", msg);
        if (ctx->json) {
            json_object *err = cli_error_json(NC_EXIT_FAILURE, msg);
            json_object_object_add(o, "error", json_object_get(cli_jget(err, "error")));
            json_object_put(err);
        }
        code = NC_EXIT_FAILURE;
        json_object *gi = cli_jget(gate, "installed");
        show = show && ((gi && json_object_get_boolean(gi)) || cli_jget(o, "journal") ||
                        cli_jget(o, "outage_hold"));
    }
    if (ctx->json) {
        cli_print_json(o);
        return code;
    }
    if (show) {
        json_object *gi = cli_jget(gate, "installed"), *cnt = cli_jget(gate, "counters");
        printf("Domain:      %s\n", cli_jstr(o, "domain", ""));
        printf("State:       %s\n", cli_jstr(o, "state", ""));
        printf("Gate:        %s", !gi ? "unknown" : json_object_get_boolean(gi) ? "gated" : "open");
        if (cnt)
            printf(" (dropped %" PRId64 " packets to the guest, %" PRId64 " from it)",
                   jint(cnt, "to_guest_pkts", 0), jint(cnt, "from_guest_pkts", 0));
        printf("\n");
        json_object *j = cli_jget(o, "journal");
        if (j)
            printf("Journal:     step %s, pid %" PRId64 " (%s)\n", cli_jstr(j, "step", "?"),
                   jint(j, "pid", 0),
                   json_object_get_boolean(cli_jget(j, "owner_alive")) ? "running" : "dead");
        json_object *fr = cli_jget(agent, "frozen");
        if (json_object_get_boolean(cli_jget(agent, "reachable")))
            printf("Agent:       reachable, %s\n",
                   fr && json_object_get_boolean(fr) ? "frozen" : "not frozen");
        else
            printf("Agent:       not reachable: %s\n", cli_jstr(agent, "error", ""));
        json_object *lc = cli_jget(o, "last_checkpoint");
        if (lc)
            printf("Last checkpoint: %s (%s, %s mode, %" PRId64 " connections)\n",
                   cli_jstr(lc, "bundle", "?"), cli_jstr(lc, "created", "?"),
                   cli_jstr(lc, "mode", "?"), jint(lc, "connections", 0));
        else
            printf("Last checkpoint: none\n");
        json_object *oh = cli_jget(o, "outage_hold");
        if (oh)
            printf("Outage hold: pid %" PRId64 ", %" PRId64 " frames (%" PRId64 " bytes, %" PRId64
                   " dropped) held for the restore of image %s, until %s\n",
                   jint(oh, "pid", 0), jint(oh, "frames", 0), jint(oh, "bytes", 0),
                   jint(oh, "dropped", 0), cli_jstr(oh, "image_id", "?"),
                   cli_jstr(oh, "until", "?"));
    }
    json_object_put(o);
    return code;
}

int cli_cmd_status(struct cli_ctx *ctx, const struct cli_args *a)
{
    const char *domain = cli_arg_str(a, "domain");
    char err[1024];
    json_object *o = cli_status_json(ctx->virt, ctx->state_dir, domain,
                                     cli_arg_str(a, "agent-channel"), NULL, err, sizeof(err));
    if (!o)
        return fail_msg(ctx, NC_EXIT_FAILURE, err);
    return cli_status_print(ctx, o, domain);
}

/* ---- inspect and verify ---- */

static void ep_str(json_object *ep, char *buf, size_t len)
{
    const char *addr = cli_jstr(ep, "addr", "?");
    int64_t port = jint(ep, "port", 0);
    if (strchr(addr, ':'))
        snprintf(buf, len, "[%s]:%" PRId64, addr, port);
    else
        snprintf(buf, len, "%s:%" PRId64, addr, port);
}

int cli_cmd_inspect(struct cli_ctx *ctx, const struct cli_args *a)
{
    const char *path = cli_arg_str(a, "bundle");
    struct manifest m;
    json_object *img = NULL;
    char err[1024] = "";
    if (bundle_missing(path, err, sizeof(err)))
        return fail_msg(ctx, NC_EXIT_FAILURE, err);
    int r = txn_real_open_bundle(path, NULL, &m, &img, err, sizeof(err));
    if (r < 0) {
        char msg[1200];
        snprintf(msg, sizeof(msg), "bundle %s refused: %s", path, err[0] ? err : strerror(-r));
        return fail_msg(ctx, exit_for_errno(r), msg);
    }
    json_object *conns = json_object_new_array();
    json_object *ic = cli_jget(img, "connections");
    for (size_t i = 0; ic && i < json_object_array_length(ic); i++) {
        json_object *c = json_object_array_get_idx(ic, i);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_int64(jint(c, "id", (int64_t)i)));
        json_object_object_add(o, "state", json_object_new_string(cli_jstr(c, "state", "?")));
        json_object_object_add(o, "local", json_object_get(cli_jget(c, "local")));
        json_object_object_add(o, "remote", json_object_get(cli_jget(c, "remote")));
        json_object_object_add(o, "unacked",
                               json_object_new_int64(jint(cli_jget(c, "unacked"), "len", 0)));
        json_object_object_add(o, "unsent",
                               json_object_new_int64(jint(cli_jget(c, "unsent"), "len", 0)));
        json_object_object_add(o, "recv",
                               json_object_new_int64(jint(cli_jget(c, "recv"), "len", 0)));
        json_object_object_add(o, "owners", json_object_get(cli_jget(c, "owners")));
        json_object_array_add(conns, o);
    }
    json_object *out = json_object_new_object();
    json_object_object_add(out, "bundle", json_object_new_string(path));
    json_object_object_add(out, "valid", json_object_new_boolean(true));
    json_object_object_add(out, "manifest", cli_manifest_json(&m));
    json_object_object_add(out, "connections", conns);
    json_object_object_add(out, "skipped", json_object_get(cli_jget(img, "skipped")));
    json_object_put(img);
    if (ctx->json) {
        cli_print_json(out);
        return NC_EXIT_OK;
    }
    if (!ctx->quiet) {
        char iso[64];
        cli_iso_time(m.created_ns, iso, sizeof(iso));
        printf("Bundle:      %s (verified)\n", path);
        printf("Domain:      %s (%s)\n", m.domain_name, m.domain_uuid);
        printf("Created:     %s, %s mode, VM state in a %s\n", iso, manifest_mode_name(m.mode),
               m.state == MANIFEST_STATE_SNAPSHOT ? "snapshot" : "save file");
        printf("Image:       %s, %u connections\n", m.image_id, m.n_connections);
        printf("Gate drops:  %" PRIu64 " packets (%" PRIu64 " bytes) to the guest, %" PRIu64
               " (%" PRIu64 " bytes) from it\n",
               m.counters.to_guest_pkts, m.counters.to_guest_bytes, m.counters.from_guest_pkts,
               m.counters.from_guest_bytes);
        printf("Versions:    netckpt %s, libvirt %s\n\n", m.netckpt_version, m.libvirt_version);
        printf("%-4s %-12s %-24s %-24s %8s %8s %8s  %s\n", "ID", "STATE", "LOCAL", "REMOTE",
               "UNACKED", "UNSENT", "RECV", "OWNERS");
        for (size_t i = 0; i < json_object_array_length(conns); i++) {
            json_object *c = json_object_array_get_idx(conns, i);
            char l[64], rm[64], owners[128] = "";
            ep_str(cli_jget(c, "local"), l, sizeof(l));
            ep_str(cli_jget(c, "remote"), rm, sizeof(rm));
            json_object *ow = cli_jget(c, "owners");
            for (size_t k = 0; ow && k < json_object_array_length(ow) && k < 4; k++) {
                json_object *w = json_object_array_get_idx(ow, k);
                size_t used = strlen(owners);
                snprintf(owners + used, sizeof(owners) - used, "%s%s(%" PRId64 ")", k ? "," : "",
                         cli_jstr(w, "comm", "?"), jint(w, "pid", 0));
            }
            printf("%-4" PRId64 " %-12s %-24s %-24s %8" PRId64 " %8" PRId64 " %8" PRId64 "  %s\n",
                   jint(c, "id", 0), cli_jstr(c, "state", "?"), l, rm, jint(c, "unacked", 0),
                   jint(c, "unsent", 0), jint(c, "recv", 0), owners);
        }
        json_object *sk = cli_jget(out, "skipped");
        if (sk && json_object_array_length(sk))
            printf("\n%zu socket(s) skipped (loopback, intra-guest or listening)\n",
                   json_object_array_length(sk));
    }
    json_object_put(out);
    return NC_EXIT_OK;
}

int cli_cmd_verify(struct cli_ctx *ctx, const struct cli_args *a)
{
    const char *path = cli_arg_str(a, "bundle");
    struct manifest m;
    json_object *img = NULL;
    char err[1024] = "";
    bool missing = bundle_missing(path, err, sizeof(err));
    int r = missing ? -ENOENT : txn_real_open_bundle(path, NULL, &m, &img, err, sizeof(err));
    json_object_put(img);
    int code = missing ? NC_EXIT_FAILURE : r < 0 ? exit_for_errno(r) : NC_EXIT_OK;
    if (ctx->json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "bundle", json_object_new_string(path));
        json_object_object_add(o, "valid", json_object_new_boolean(r == 0));
        json_object_object_add(o, "error",
                               r == 0 ? NULL : json_object_new_string(err[0] ? err : strerror(-r)));
        json_object_object_add(o, "domain", r == 0 ? json_object_new_string(m.domain_name) : NULL);
        json_object_object_add(o, "image_id", r == 0 ? json_object_new_string(m.image_id) : NULL);
        json_object_object_add(o, "files", json_object_new_int64(r == 0 ? (int64_t)m.n_files : 0));
        json_object_object_add(o, "exit_code", json_object_new_int(code));
        cli_print_json(o);
    } else if (missing) {
        fprintf(stderr, "netckpt: %s\n", err);
    } else if (r < 0) {
        fprintf(stderr, "netckpt: bundle %s refused: %s\n", path, err[0] ? err : strerror(-r));
    } else {
        cli_out(ctx, "bundle %s is complete and intact (%zu files, domain %s, image %s)\n", path,
                m.n_files, m.domain_name, m.image_id);
    }
    return code;
}

/* ---- unblock ---- */

static bool recovered_at_start(const struct cli_ctx *ctx, const char *domain)
{
    for (size_t i = 0; i < ctx->n_recovered; i++)
        if (!strcmp(ctx->recovered[i], domain))
            return true;
    return false;
}

int cli_cmd_unblock(struct cli_ctx *ctx, const struct cli_args *a)
{
    const char *domain = cli_arg_str(a, "domain");
    struct nc_virt v;
    memset(&v, 0, sizeof(v));
    /* The gate goes even without libvirt; resuming and thawing need it. */
    sigset_t s, old;
    sigemptyset(&s);
    sigaddset(&s, SIGINT);
    sigaddset(&s, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &s, &old);
    struct nc_virt *conn = ctx->virt; /* open already when recovery needed it */
    if (!conn) {
        int r = nc_virt_open(&v, ctx->uri, ctx->state_dir);
        if (r < 0)
            log_warn("no libvirt connection (%s): only the gate is lifted",
                     v.err[0] ? v.err : strerror(-r));
        else
            conn = &v;
    }
    json_object *rep = NULL;
    char err[1024] = "";
    int r = txn_real_unblock(conn, ctx->state_dir, domain, cli_arg_bool(a, "force"), &rep, err,
                             sizeof(err));
    if (r == -ENOENT && !rep && recovered_at_start(ctx, domain)) {
        /* Start-up recovery released what this domain's dead netckpt left: that is done. */
        r = 0;
        err[0] = 0;
        rep = json_object_new_object();
        json_object_object_add(rep, "domain", json_object_new_string(domain));
        json_object_object_add(rep, "journal", json_object_new_boolean(true));
        json_object *acts = json_object_new_array();
        json_object_array_add(acts, json_object_new_string("recovered-at-start"));
        json_object_object_add(rep, "actions", acts);
    }
    if (conn == &v) /* ours: it must not outlive this frame */
        nc_virt_close(&v);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return cli_unblock_print(ctx, domain, rep, r, err);
}

int cli_unblock_print(const struct cli_ctx *ctx, const char *domain, json_object *rep, int r,
                      const char *err)
{
    int code = r == 0 ? NC_EXIT_OK : r == -EBUSY ? NC_EXIT_BUSY : NC_EXIT_FAILURE;
    if (r < 0 && !rep)
        return fail_msg(ctx, code, err);
    if (r < 0)
        fprintf(stderr, "netckpt: %s\n", err);
    if (ctx->json) {
        json_object_object_add(rep, "error", r < 0 ? json_object_new_string(err) : NULL);
        cli_print_json(rep);
    } else {
        json_object *acts = cli_jget(rep, "actions");
        if (!acts || json_object_array_length(acts) == 0) {
            cli_out(ctx, "%s: nothing to unblock\n", domain);
        } else {
            cli_out(ctx, "%s:", domain);
            for (size_t i = 0; i < json_object_array_length(acts); i++)
                cli_out(ctx, " %s", json_object_get_string(json_object_array_get_idx(acts, i)));
            cli_out(ctx, "\n");
        }
        json_object_put(rep);
    }
    return code;
}

/* ---- policy, demo, help ---- */

int cli_cmd_policy(struct cli_ctx *ctx, const struct cli_args *a)
{
    (void)a;
    char msg[600];
    snprintf(msg, sizeof(msg), "policies are netckptd's: no daemon answers at %s%s",
             daemon_client_socket(ctx->daemon_socket), ctx->no_daemon ? " (--no-daemon)" : "");
    return fail_msg(ctx, NC_EXIT_FAILURE, msg);
}

int cli_cmd_demo(struct cli_ctx *ctx, const struct cli_args *a)
{
    const char *src = getenv("NETCKPT_SOURCE_DIR");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/scripts/demo", src && *src ? src : NETCKPT_SOURCE_DIR);
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "netckpt: %s not found (set NETCKPT_SOURCE_DIR to the source tree)\n",
                path);
        return NC_EXIT_FAILURE;
    }
    char **argv = calloc((size_t)a->raw_argc + 3, sizeof(char *));
    if (!argv)
        return NC_EXIT_FAILURE;
    argv[0] = "bash";
    argv[1] = path;
    for (int i = 0; i < a->raw_argc; i++)
        argv[i + 2] = a->raw_argv[i];
    fflush(NULL);
    execv("/bin/bash", argv);
    fprintf(stderr, "netckpt: cannot run %s: %s\n", path, strerror(errno));
    free(argv);
    return NC_EXIT_FAILURE;
}

int cli_cmd_help(struct cli_ctx *ctx, const struct cli_args *a)
{
    const char *name = cli_arg_str(a, "command");
    if (!name) {
        cli_usage(stdout);
        return NC_EXIT_OK;
    }
    const struct cli_cmd *c = cli_find_command(name);
    if (!c) {
        fprintf(stderr, "netckpt: unknown command '%s'\n", name);
        return NC_EXIT_USAGE;
    }
    cli_command_help(stdout, c);
    return NC_EXIT_OK;
}
