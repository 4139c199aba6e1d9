/* guest/net-freezer.c: see net-freezer.h. */
#include "guest/net-freezer.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/util.h"
#include "guest/proc-owner.h"
#include "guest/sock-diag.h"
#include "guest/tcp-retrans.h"
#include "guest/thaw-kick.h"

#define STATE_FILE_VERSION 1
#define STATE_FILE_MAX     (256u << 20)

const char *net_thaw_reason_name(enum net_thaw_reason r)
{
    switch (r) {
    case NET_THAW_COMMAND:
        return "command";
    case NET_THAW_WATCHDOG:
        return "watchdog";
    case NET_THAW_SIGNAL:
        return "signal";
    case NET_THAW_RECOVERY:
        return "recovery";
    case NET_THAW_ROLLBACK:
        return "rollback";
    }
    return "unknown";
}

static const char *proc_root(const struct net_freezer *nf)
{
    return nf->cfg.proc_root ? nf->cfg.proc_root : "/proc";
}

void net_freezer_init(struct net_freezer *nf, const struct net_freezer_config *cfg)
{
    memset(nf, 0, sizeof(*nf));
    if (cfg)
        nf->cfg = *cfg;
    if (!nf->cfg.freeze_timeout_ms)
        nf->cfg.freeze_timeout_ms = NET_FREEZER_DEFAULT_TIMEOUT_MS;
    quiesce_init(&nf->qs);
    nf->sentinel_fd = -1;
}

static void sentinel_stop(struct net_freezer *nf);

static void close_fds(struct net_freezer *nf)
{
    for (size_t i = 0; nf->fds && i < nf->img.n_conns; i++)
        if (nf->fds[i] >= 0)
            close(nf->fds[i]);
    free(nf->fds);
    nf->fds = NULL;
}

void net_freezer_done(struct net_freezer *nf)
{
    sentinel_stop(nf);
    close_fds(nf);
    socket_image_free(&nf->img);
    quiesce_done(&nf->qs);
    if (nf->recovery)
        json_object_put(nf->recovery);
    nf->recovery = NULL;
    free(nf->last_keys);
    nf->last_keys = NULL;
    nf->n_last_keys = 0;
}

bool net_freezer_is_frozen(const struct net_freezer *nf)
{
    return nf->frozen;
}

uint64_t net_freezer_deadline(const struct net_freezer *nf)
{
    return nf->frozen ? nf->deadline_mono_ns : 0;
}

/* ---- small JSON helpers ---- */

static json_object *endpoint_json(const struct tcp_endpoint *ep)
{
    char buf[INET6_ADDRSTRLEN];
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    const char *s = tcp_endpoint_addr_str(ep, buf, sizeof(buf));
    json_object_object_add(o, "addr", json_object_new_string(s ? s : "?"));
    json_object_object_add(o, "port", json_object_new_int(ep->port));
    return o;
}

static void add_conn_ident(json_object *o, uint32_t id, uint64_t inode,
                           const struct tcp_conn_state *st)
{
    const char *state = tcp_state_name(st->state);
    if (id)
        json_object_object_add(o, "id", json_object_new_int64(id));
    json_object_object_add(o, "inode", json_object_new_uint64(inode));
    json_object_object_add(o, "local", endpoint_json(&st->local));
    json_object_object_add(o, "remote", endpoint_json(&st->remote));
    json_object_object_add(o, "state", json_object_new_string(state ? state : "UNKNOWN"));
}

static bool endpoint_eq(const struct tcp_endpoint *a, const struct tcp_endpoint *b)
{
    return a->port == b->port && !memcmp(&a->addr, &b->addr, sizeof(a->addr));
}

int net_endpoint_parse(const char *addr, unsigned port, struct tcp_endpoint *ep)
{
    struct in_addr a4;
    memset(ep, 0, sizeof(*ep));
    if (port > 65535)
        return -EINVAL;
    ep->port = (uint16_t)port;
    if (inet_pton(AF_INET, addr, &a4) == 1) {
        ep->family = AF_INET;
        ep->addr.s6_addr[10] = 0xff;
        ep->addr.s6_addr[11] = 0xff;
        memcpy(&ep->addr.s6_addr[12], &a4, 4);
        return 0;
    }
    if (inet_pton(AF_INET6, addr, &ep->addr) == 1) {
        ep->family = IN6_IS_ADDR_V4MAPPED(&ep->addr) ? AF_INET : AF_INET6;
        return 0;
    }
    return -EINVAL;
}

/* ---- state file ----
 * {"version":1,"frozen":true,"complete":bool,"agent_pid":N,"boot_id":"..","image_id":"..",
 *  "since_realtime_ns":N,"sockets":[{"inode":N,"owners":[{"pid":N,"fd":N}],"settings":{..}}]}
 * "complete" is false while a freeze is in progress: sockets without "settings" were maybe
 * put in repair mode, but their saved settings were not recorded yet. */

static json_object *settings_json(const struct tcp_conn_state *st)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    json_object_object_add(o, "family", json_object_new_int(st->sock_family));
    json_object_object_add(o, "nodelay", json_object_new_boolean(st->nodelay));
    json_object_object_add(o, "cork", json_object_new_boolean(st->cork));
    json_object_object_add(o, "keepalive", json_object_new_boolean(st->keepalive.enabled));
    json_object_object_add(o, "keepidle", json_object_new_int(st->keepalive.idle));
    json_object_object_add(o, "keepintvl", json_object_new_int(st->keepalive.intvl));
    json_object_object_add(o, "keepcnt", json_object_new_int(st->keepalive.cnt));
    json_object_object_add(o, "user_timeout_ms", json_object_new_int64(st->user_timeout_ms));
    return o;
}

static int64_t get_int(json_object *o, const char *key, int64_t def)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
        return def;
    return json_object_get_int64(v);
}

static bool get_bool(json_object *o, const char *key, bool def)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_boolean))
        return def;
    return json_object_get_boolean(v);
}

static void settings_from_json(json_object *o, struct tcp_conn_state *st)
{
    st->sock_family = (int)get_int(o, "family", AF_INET);
    st->nodelay = get_bool(o, "nodelay", false);
    st->cork = get_bool(o, "cork", false);
    st->keepalive.enabled = get_bool(o, "keepalive", false);
    st->keepalive.idle = (int)get_int(o, "keepidle", 7200);
    st->keepalive.intvl = (int)get_int(o, "keepintvl", 75);
    st->keepalive.cnt = (int)get_int(o, "keepcnt", 9);
    st->user_timeout_ms = (uint32_t)get_int(o, "user_timeout_ms", 0);
}

struct pending_sock {
    uint64_t inode;
    const struct proc_owner_entry *owners; /* into the last owner map */
    size_t n_owners;
    struct sock_diag_tcp diag;
};

static int state_file_write(struct net_freezer *nf, const struct pending_sock *ps, size_t n_ps)
{
    if (!nf->cfg.state_file)
        return 0;
    json_object *root = json_object_new_object();
    json_object *socks = json_object_new_array();
    if (!root || !socks) {
        json_object_put(root);
        json_object_put(socks);
        return -ENOMEM;
    }
    bool complete = !ps;
    json_object_object_add(root, "version", json_object_new_int(STATE_FILE_VERSION));
    json_object_object_add(root, "frozen", json_object_new_boolean(true));
    json_object_object_add(root, "complete", json_object_new_boolean(complete));
    json_object_object_add(root, "agent_pid", json_object_new_int(getpid()));
    json_object_object_add(root, "boot_id", json_object_new_string(nf->img.boot_id));
    json_object_object_add(root, "image_id", json_object_new_string(nf->img.image_id));
    json_object_object_add(root, "since_realtime_ns", json_object_new_uint64(nf->since_real_ns));
    json_object_object_add(root, "sockets", socks);
    size_t n = complete ? nf->img.n_conns : n_ps;
    for (size_t i = 0; i < n; i++) {
        json_object *s = json_object_new_object();
        json_object *owners = json_object_new_array();
        json_object_array_add(socks, s);
        json_object_object_add(s, "owners", owners);
        if (complete) {
            const struct image_conn *c = &nf->img.conns[i];
            json_object_object_add(s, "inode", json_object_new_uint64(c->inode));
            json_object_object_add(s, "settings", settings_json(&c->st));
            for (size_t k = 0; k < c->n_owners; k++) {
                json_object *ow = json_object_new_object();
                json_object_object_add(ow, "pid", json_object_new_int(c->owners[k].pid));
                json_object_object_add(ow, "fd", json_object_new_int(c->owners[k].fd));
                json_object_array_add(owners, ow);
            }
        } else {
            json_object_object_add(s, "inode", json_object_new_uint64(ps[i].inode));
            for (size_t k = 0; k < ps[i].n_owners; k++) {
                json_object *ow = json_object_new_object();
                json_object_object_add(ow, "pid", json_object_new_int(ps[i].owners[k].owner.pid));
                json_object_object_add(ow, "fd", json_object_new_int(ps[i].owners[k].owner.fd));
                json_object_array_add(owners, ow);
            }
        }
    }
    size_t len = 0;
    const char *txt = json_object_to_json_string_length(root, JSON_C_TO_STRING_PLAIN, &len);
    int r = txt ? 0 : -ENOMEM;
    if (r == 0) {
        /* The directory may not exist yet in an initramfs. */
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s", nf->cfg.state_file);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = 0;
            (void)mkdir_p(dir, 0755);
        }
        r = write_file_atomic(nf->cfg.state_file, txt, len, 0600);
    }
    json_object_put(root);
    if (r < 0)
        log_err("cannot write state file %s: %s", nf->cfg.state_file, strerror(-r));
    return r;
}

static void state_file_clear(struct net_freezer *nf)
{
    if (!nf->cfg.state_file)
        return;
    if (unlink(nf->cfg.state_file) < 0 && errno != ENOENT)
        log_warn("cannot remove state file %s: %m", nf->cfg.state_file);
}

/* Alive means not gone and not a zombie (a killed tracee waits for us to reap it). */
static bool pid_alive(const char *proc, pid_t pid)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%d/stat", proc, (int)pid);
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    if (read_file(path, 4096, &buf, &len) < 0)
        return false;
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* pid of another live netckpt-agent that holds a frozen state file, else 0. Two agents may
 * share a guest (one on org.netckpt.agent.0, one on org.qemu.guest_agent.0); neither may
 * thaw or overwrite what the other froze. */
static pid_t state_file_other_agent(const struct net_freezer *nf)
{
    if (!nf->cfg.state_file)
        return 0;
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    if (read_file(nf->cfg.state_file, STATE_FILE_MAX, &buf, &len) < 0)
        return 0;
    json_object *root = json_tokener_parse(buf);
    pid_t pid = (pid_t)get_int(root, "agent_pid", 0);
    bool frozen = get_bool(root, "frozen", false);
    json_object_put(root);
    if (!frozen || pid <= 0 || pid == getpid())
        return 0;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%d/comm", proc_root(nf), (int)pid);
    _cleanup_free_ char *comm = NULL;
    if (!pid_alive(proc_root(nf), pid) || read_file(path, 64, &comm, &len) < 0)
        return 0;
    return strncmp(comm, "netckpt-agent", 13) == 0 ? pid : 0;
}

/* ---- freeze ---- */

static bool state_freezable(uint8_t s)
{
    switch (s) {
    case TCP_ESTABLISHED:
    case TCP_FIN_WAIT1:
    case TCP_FIN_WAIT2:
    case TCP_CLOSE_WAIT:
    case TCP_LAST_ACK:
    case TCP_CLOSING:
        return true;
    default:
        return false;
    }
}

/* Why this socket is recorded but not frozen; NULL if it is a candidate. */
static const char *skip_reason(const struct local_addrs *la, const struct sock_diag_tcp *e)
{
    if (e->state == TCP_LISTEN)
        return SKIP_LISTEN;
    const char *why = socket_image_classify(la, &e->remote);
    if (why)
        return why;
    /* TIME_WAIT and orphans have no inode; SYN_SENT/SYN_RECV/CLOSE carry no stream yet, and
     * their owners may go on running: the gate holds their packets like any other. */
    if (e->inode == 0 || !state_freezable(e->state))
        return SKIP_NOT_OWNED;
    return NULL;
}

static int add_skipped(struct socket_image *img, size_t *cap, const struct sock_diag_tcp *e,
                       const char *reason)
{
    if (img->n_skipped == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct image_skipped *v = realloc(img->skipped, nc * sizeof(*v));
        if (!v)
            return -ENOMEM;
        img->skipped = v;
        *cap = nc;
    }
    struct image_skipped *s = &img->skipped[img->n_skipped++];
    memset(s, 0, sizeof(*s));
    s->local = e->local;
    s->remote = e->remote;
    s->state = e->state;
    s->reason = reason;
    return 0;
}

/* Leave the repair queue selector at "none" so that, should an owner ever run while the
 * socket is still in repair mode (the agent was killed), its send() fails instead of
 * appending to the receive queue. */
static void repair_queue_none(int fd)
{
    int q = TCP_NO_QUEUE;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q));
}

/* Leave repair mode without restoring anything, for when the saved settings are unknown or
 * the proper thaw failed. Only if the socket is in repair mode: TCP_REPAIR_OFF also resets
 * SO_REUSEADDR, which must not happen to a socket we never froze. 1 if it was in repair. */
static int repair_off_if_on(int fd)
{
    int on = 0;
    socklen_t l = sizeof(on);
    if (getsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &on, &l) < 0)
        return negative_errno();
    if (!on)
        return 0;
    int off = TCP_REPAIR_OFF;
    if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &off, sizeof(off)) < 0)
        return negative_errno();
    return 1;
}

/* Undo a half-done freeze: thaw what is frozen, release owners, forget the image. */
static void rollback(struct net_freezer *nf)
{
    for (size_t i = 0; i < nf->img.n_conns; i++) {
        if (nf->fds[i] < 0)
            continue;
        int r = tcp_repair_thaw(nf->fds[i], &nf->img.conns[i].st, true);
        if (r < 0)
            log_err("rollback: thaw of socket %" PRIu64 " failed: %s", nf->img.conns[i].inode,
                    strerror(-r));
    }
    close_fds(nf);
    quiesce_release(&nf->qs);
    socket_image_free(&nf->img);
    memset(&nf->img, 0, sizeof(nf->img));
    nf->n_procs = 0;
    state_file_clear(nf);
}

static size_t count_procs(const struct quiesce_set *qs)
{
    size_t n = 0;
    for (size_t i = 0; i < qs->n; i++) {
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = qs->threads[k].tgid == qs->threads[i].tgid;
        if (!seen && !qs->threads[i].exited)
            n++;
    }
    return n;
}

static bool included(const struct net_freeze_opts *o, const struct tcp_endpoint *remote)
{
    if (!o || o->n_include == 0)
        return true;
    for (size_t i = 0; i < o->n_include; i++) {
        const struct net_freeze_filter *f = &o->include[i];
        if (f->port && f->port != remote->port)
            continue;
        if (f->has_addr && memcmp(&f->addr, &remote->addr, sizeof(f->addr)))
            continue;
        return true;
    }
    return false;
}

/* Stops an owner the moment the scan sees it holding a wanted socket (proc_owner_hold_fn). */
struct hold_ctx {
    struct quiesce_set *qs;
    struct qga_error *err;
    int added;   /* processes newly quiesced in this round */
    bool failed; /* err is set */
};

static int hold_owner(void *ctx, pid_t pid, const char *comm)
{
    struct hold_ctx *h = ctx;
    if (quiesce_holds(h->qs, pid))
        return 1;
    int r = quiesce_add(h->qs, pid);
    if (r < 0) {
        h->failed = true;
        return qga_error_errno(h->err, r, "quiescing pid %d (%s)", (int)pid, comm);
    }
    if (r == 0)
        return 0; /* exited: it owns nothing */
    h->added++;
    return 1;
}

/* One discovery round: list sockets, then go through /proc, quiescing each owner of a
 * socket to freeze as soon as it is seen and reading its fds once it is stopped; owners
 * stopped in an earlier round are not read again (owners_cache). Returns how many processes
 * were newly quiesced; the lists stay valid for the caller. */
static int discover(struct net_freezer *nf, const struct net_freeze_opts *o,
                    const struct local_addrs *la, struct sock_diag_tcp **ents, size_t *n_ents,
                    struct proc_owner_cache *owners_cache, struct proc_owner_map *map,
                    struct qga_error *err)
{
    uint64_t t0 = now_monotonic_ns();
    int r = sock_diag_tcp_list(SOCK_DIAG_ALL_STATES, ents, n_ents);
    if (r == -ENOENT)
        return qga_error_errno(err, r,
                               "listing TCP sockets (sock_diag; are the inet_diag and tcp_diag "
                               "modules loaded?)");
    if (r < 0)
        return qga_error_errno(err, r, "listing TCP sockets (sock_diag)");
    uint64_t t1 = now_monotonic_ns();
    _cleanup_(inode_set_free) struct inode_set want = {0};
    for (size_t i = 0; i < *n_ents; i++) {
        const struct sock_diag_tcp *e = &(*ents)[i];
        if (skip_reason(la, e) || !included(o, &e->remote))
            continue;
        r = inode_set_add(&want, e->inode);
        if (r < 0)
            return qga_error_errno(err, r, "freeze");
    }
    if (want.n == 0)
        return 0; /* nothing to freeze: no owners to look for */
    size_t read0 = owners_cache->n_read;
    struct hold_ctx h = {.qs = &nf->qs, .err = err};
    r = proc_owner_scan_held(proc_root(nf), getpid(), &want, hold_owner, &h, owners_cache, map);
    if (r < 0)
        return h.failed ? r
                        : qga_error_errno(err, r, "scanning %s for socket owners", proc_root(nf));
    log_debug("discover: %zu sockets listed in %.1f ms, %zu to freeze; %zu fd links read, %d "
              "processes quiesced, %zu owner fds in %.1f ms",
              *n_ents, (double)(t1 - t0) / 1e6, want.n, owners_cache->n_read - read0, h.added,
              map->n, (double)(now_monotonic_ns() - t1) / 1e6);
    return h.added;
}

/* Take one socket from one of its owners; -ENOENT if none still has it. */
static int take_socket(struct pidfd_cache *pidfds, const struct pending_sock *p)
{
    for (size_t k = 0; k < p->n_owners; k++) {
        int fd = pidfd_cache_take(pidfds, p->owners[k].owner.pid, p->owners[k].owner.fd);
        if (fd < 0)
            continue;
        uint64_t ino = 0;
        if (fd_socket_inode(fd, &ino) == 0 && ino == p->inode)
            return fd;
        close(fd); /* the fd number was reused before the owner stopped */
    }
    return -ENOENT;
}

/* ---- sentinel ---- */

/* In the child: wait for a word from the agent, its death (EOF) or the deadline plus grace.
 * Only the latter two make it thaw. Never returns. */
/* Keep only stdio, the pipe and the frozen sockets: the agent's transport (an exclusive
 * virtio port, the host's connection) must close when the agent does. */
static void sentinel_close_others(struct net_freezer *nf, int rfd)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    int dfd = dirfd(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        int fd = atoi(de->d_name);
        if (de->d_name[0] == '.' || fd <= 2 || fd == rfd || fd == dfd)
            continue;
        bool keep = false;
        for (size_t i = 0; i < nf->img.n_conns && !keep; i++)
            keep = nf->fds[i] == fd;
        if (!keep)
            close(fd);
    }
    closedir(d);
}

static _Noreturn void sentinel_run(struct net_freezer *nf, int rfd)
{
    (void)prctl(PR_SET_NAME, "netckpt-sentinel");
    sentinel_close_others(nf, rfd);
    uint64_t until = nf->deadline_mono_ns + NET_FREEZER_SENTINEL_GRACE_MS * 1000000ull;
    const char *why = NULL;
    for (;;) {
        uint64_t now = now_monotonic_ns();
        if (now >= until) {
            why = "the agent did not thaw by the watchdog deadline";
            break;
        }
        struct pollfd p = {.fd = rfd, .events = POLLIN};
        int ms = (int)((until - now) / 1000000ull) + 1;
        int r = poll(&p, 1, ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r > 0) {
            char c;
            ssize_t n = read(rfd, &c, 1);
            if (n > 0)
                _exit(0); /* the agent thaws itself */
            if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                why = "the agent died";
                break;
            }
        }
    }
    size_t thawed = 0;
    for (size_t i = 0; i < nf->img.n_conns; i++) {
        if (nf->fds[i] < 0)
            continue;
        if (tcp_repair_thaw(nf->fds[i], &nf->img.conns[i].st, true) < 0)
            (void)repair_off_if_on(nf->fds[i]);
        else
            thawed++;
    }
    log_warn("sentinel: %s while frozen; thawed %zu of %zu sockets", why, thawed, nf->img.n_conns);
    if (strcmp(why, "the agent died") == 0)
        state_file_clear(nf);
    _exit(0);
}

static void sentinel_start(struct net_freezer *nf)
{
    int p[2];
    if (nf->cfg.no_sentinel || pipe2(p, O_CLOEXEC) < 0)
        return;
    pid_t pid = fork();
    if (pid < 0) {
        log_warn("no sentinel (fork: %m); a killed agent's sockets wait for the next agent");
        close(p[0]);
        close(p[1]);
        return;
    }
    if (pid == 0) {
        close(p[1]);
        sentinel_run(nf, p[0]);
    }
    close(p[0]);
    nf->sentinel_pid = pid;
    nf->sentinel_fd = p[1];
}

/* Dismiss the sentinel (it exits without touching anything) and reap it. */
static void sentinel_stop(struct net_freezer *nf)
{
    if (nf->sentinel_fd >= 0) {
        (void)!write(nf->sentinel_fd, "x", 1);
        close(nf->sentinel_fd);
        nf->sentinel_fd = -1;
    }
    if (nf->sentinel_pid > 0) {
        while (waitpid(nf->sentinel_pid, NULL, 0) < 0 && errno == EINTR)
            ;
        nf->sentinel_pid = 0;
    }
}

/* Remember the connections of this freeze for reset-stale after the thaw. */
static void remember_keys(struct net_freezer *nf)
{
    free(nf->last_keys);
    nf->last_keys = calloc(nf->img.n_conns ? nf->img.n_conns : 1, sizeof(*nf->last_keys));
    nf->n_last_keys = 0;
    snprintf(nf->last_image_id, sizeof(nf->last_image_id), "%s", nf->img.image_id);
    for (size_t i = 0; nf->last_keys && i < nf->img.n_conns; i++)
        nf->last_keys[nf->n_last_keys++] = (struct net_conn_key){
            .local = nf->img.conns[i].st.local, .remote = nf->img.conns[i].st.remote};
}

int net_freezer_freeze(struct net_freezer *nf, const struct net_freeze_opts *o, json_object **image,
                       struct qga_error *err)
{
    uint32_t timeout_ms = o ? o->timeout_ms : 0;
    if (nf->frozen) {
        qga_error_set(err, QGA_ERR_BUSY, "the network is already frozen (image %s)",
                      nf->img.image_id);
        return -EBUSY;
    }
    if (timeout_ms == 0)
        timeout_ms = nf->cfg.freeze_timeout_ms;
    pid_t other = state_file_other_agent(nf);
    if (other) {
        qga_error_set(err, QGA_ERR_BUSY,
                      "another netckpt-agent (pid %d) has the network frozen (state file %s)",
                      (int)other, nf->cfg.state_file);
        return -EBUSY;
    }

    struct local_addrs la = {0};
    struct sock_diag_tcp *ents = NULL;
    size_t n_ents = 0;
    struct proc_owner_map map = {0};
    struct proc_owner_cache owners_cache = {0};
    struct pidfd_cache pidfds = {0};
    struct pending_sock *ps = NULL;
    size_t n_ps = 0, skipped_cap = 0;
    int r;

    memset(&nf->img, 0, sizeof(nf->img));
    nf->n_procs = 0;
    uint64_t t0 = now_monotonic_ns();

    r = socket_image_local_addrs(&la);
    if (r < 0) {
        qga_error_errno(err, r, "listing the guest's addresses");
        goto fail;
    }
    r = socket_image_init_header(&nf->img);
    if (r < 0) {
        qga_error_errno(err, r, "building the image header");
        goto fail;
    }
    nf->since_mono_ns = t0;
    nf->since_real_ns = now_realtime_ns();

    /* Owners that were running while we listed may have changed their sockets: repeat until
     * a round finds no owner that is not already stopped. */
    for (int round = 0;; round++) {
        free(ents);
        ents = NULL;
        n_ents = 0;
        proc_owner_map_free(&map);
        r = discover(nf, o, &la, &ents, &n_ents, &owners_cache, &map, err);
        if (r < 0)
            goto fail;
        if (r == 0 || round + 1 >= NET_FREEZER_MAX_ROUNDS)
            break;
    }

    uint64_t t_disc = now_monotonic_ns();
    ps = calloc(n_ents ? n_ents : 1, sizeof(*ps));
    if (!ps) {
        r = qga_error_errno(err, -ENOMEM, "freeze");
        goto fail;
    }
    for (size_t i = 0; i < n_ents; i++) {
        const struct sock_diag_tcp *e = &ents[i];
        const char *why = skip_reason(&la, e);
        if (!why && !included(o, &e->remote))
            continue; /* not asked for: not part of this image at all */
        if (!why) {
            const struct proc_owner_entry *first = NULL;
            size_t no = proc_owner_lookup(&map, e->inode, &first);
            if (no == 0) {
                why = SKIP_NOT_OWNED;
            } else {
                ps[n_ps++] = (struct pending_sock){
                    .inode = e->inode, .owners = first, .n_owners = no, .diag = *e};
                continue;
            }
        }
        r = add_skipped(&nf->img, &skipped_cap, e, why);
        if (r < 0) {
            qga_error_errno(err, r, "freeze");
            goto fail;
        }
    }

    /* Record the inodes before touching them: a crash from here on leaves sockets in repair
     * mode that the next agent must find. */
    r = state_file_write(nf, ps, n_ps);
    if (r < 0) {
        qga_error_errno(err, r, "writing the state file %s", nf->cfg.state_file);
        goto fail;
    }

    uint64_t t_state = now_monotonic_ns();
    nf->img.conns = calloc(n_ps ? n_ps : 1, sizeof(*nf->img.conns));
    nf->fds = malloc((n_ps ? n_ps : 1) * sizeof(int));
    if (!nf->img.conns || !nf->fds) {
        r = qga_error_errno(err, -ENOMEM, "freeze");
        goto fail;
    }
    for (size_t i = 0; i < n_ps; i++) {
        const struct pending_sock *p = &ps[i];
        int fd = take_socket(&pidfds, p);
        if (fd < 0) {
            /* Closed before its owner stopped: nothing left to freeze. */
            r = add_skipped(&nf->img, &skipped_cap, &p->diag, SKIP_NOT_OWNED);
            if (r < 0) {
                qga_error_errno(err, r, "freeze");
                goto fail;
            }
            continue;
        }
        size_t k = nf->img.n_conns;
        struct image_conn *c = &nf->img.conns[k];
        memset(c, 0, sizeof(*c));
        c->id = (uint32_t)k + 1;
        c->inode = p->inode;
        nf->fds[k] = fd;
        nf->img.n_conns++;
        c->owners = calloc(p->n_owners, sizeof(*c->owners));
        if (!c->owners) {
            r = qga_error_errno(err, -ENOMEM, "freeze");
            goto fail;
        }
        for (size_t w = 0; w < p->n_owners; w++)
            c->owners[w] = p->owners[w].owner;
        c->n_owners = p->n_owners;

        char lb[INET6_ADDRSTRLEN], rb[INET6_ADDRSTRLEN];
        r = tcp_repair_freeze(fd, &c->st);
        if (r == -EOPNOTSUPP) {
            /* Its state moved to one without a stream since the listing (a timer fired, its
             * owner shut it down): untouched, so just leave it out, as it is now. */
            struct sock_diag_tcp now_diag = p->diag;
            struct tcp_info ti;
            socklen_t tl = sizeof(ti);
            if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0)
                now_diag.state = ti.tcpi_state;
            close(fd);
            free(c->owners);
            memset(c, 0, sizeof(*c));
            nf->img.n_conns--;
            r = add_skipped(&nf->img, &skipped_cap, &now_diag, SKIP_NOT_OWNED);
            if (r < 0) {
                qga_error_errno(err, r, "freeze");
                goto fail;
            }
            continue;
        }
        if (r < 0) {
            /* Its saved settings are unknown: leave repair mode without touching them, and
             * keep it out of the rollback. */
            (void)repair_off_if_on(fd);
            nf->fds[k] = -1;
            close(fd);
        } else if (nf->cfg.fault_freeze_at && nf->img.n_conns == nf->cfg.fault_freeze_at) {
            if (nf->cfg.fault_crash)
                kill(getpid(), SIGKILL); /* a crash half-way through the freeze */
            r = -EIO;                    /* injected */
        } else {
            r = tcp_repair_dump(fd, &c->st);
        }
        if (r < 0) {
            qga_error_errno(err, r, "freezing connection %s:%u -> %s:%u (pid %d, %s)",
                            tcp_endpoint_addr_str(&p->diag.local, lb, sizeof(lb)),
                            p->diag.local.port,
                            tcp_endpoint_addr_str(&p->diag.remote, rb, sizeof(rb)),
                            p->diag.remote.port, (int)c->owners[0].pid, c->owners[0].comm);
            goto fail;
        }
        repair_queue_none(fd);
    }

    pidfd_cache_done(&pidfds); /* not to be inherited by the sentinel */
    uint64_t t_dump = now_monotonic_ns();
    nf->frozen = true;
    nf->timeout_ms = timeout_ms;
    nf->deadline_mono_ns = now_monotonic_ns() + (uint64_t)timeout_ms * 1000000ull;
    nf->n_procs = count_procs(&nf->qs);
    r = state_file_write(nf, NULL, 0);
    if (r < 0) {
        nf->frozen = false;
        qga_error_errno(err, r, "writing the state file %s", nf->cfg.state_file);
        goto fail;
    }

    uint64_t t_state2 = now_monotonic_ns();
    json_object *j = socket_image_to_json(&nf->img);
    if (!j) {
        nf->frozen = false;
        r = qga_error_errno(err, -ENOMEM, "encoding the socket image");
        goto fail;
    }
    nf->n_freezes++;
    remember_keys(nf);
    uint64_t t_json = now_monotonic_ns();
    sentinel_start(nf);
    uint64_t t_end = now_monotonic_ns();
    log_debug("freeze phases: discover+quiesce %.1f ms, state file %.1f ms, take+repair+dump "
              "%.1f ms, state file %.1f ms, image JSON %.1f ms, sentinel %.1f ms",
              (double)(t_disc - t0) / 1e6, (double)(t_state - t_disc) / 1e6,
              (double)(t_dump - t_state) / 1e6, (double)(t_state2 - t_dump) / 1e6,
              (double)(t_json - t_state2) / 1e6, (double)(t_end - t_json) / 1e6);
    log_info("frozen %zu connections of %zu processes (%zu skipped) in %.1f ms, image %s, "
             "watchdog %u ms",
             nf->img.n_conns, nf->n_procs, nf->img.n_skipped,
             (double)(now_monotonic_ns() - t0) / 1e6, nf->img.image_id, timeout_ms);
    *image = j;
    free(ps);
    free(ents);
    proc_owner_map_free(&map);
    proc_owner_cache_free(&owners_cache);
    local_addrs_free(&la);
    return 0;

fail:
    log_err("freeze failed: %s", err ? err->desc : strerror(-r));
    if (!nf->fds) {
        /* Nothing frozen yet; still release anyone we stopped. */
        quiesce_release(&nf->qs);
        socket_image_free(&nf->img);
        memset(&nf->img, 0, sizeof(nf->img));
        state_file_clear(nf);
    } else {
        rollback(nf);
    }
    nf->frozen = false;
    nf->deadline_mono_ns = 0;
    nf->last_thaw = (struct net_thaw_summary){
        .valid = true, .reason = NET_THAW_ROLLBACK, .at_realtime_ns = now_realtime_ns()};
    pidfd_cache_done(&pidfds);
    free(ps);
    free(ents);
    proc_owner_map_free(&map);
    proc_owner_cache_free(&owners_cache);
    local_addrs_free(&la);
    return r < 0 ? r : -EIO;
}

/* ---- thaw ---- */

static size_t owners_alive(const struct net_freezer *nf, const struct image_conn *c)
{
    size_t n = 0;
    for (size_t k = 0; k < c->n_owners; k++)
        if (pid_alive(proc_root(nf), c->owners[k].pid))
            n++;
    return n;
}

/* host_ns was the host's time when it sent the thaw; since_ns is how long ago (guest
 * monotonic) the thaw began here: the sockets' thaw comes first and takes tens of ms, which
 * would otherwise leave the guest that far behind. */
static json_object *step_clock(const struct net_freezer *nf, int64_t host_ns, uint64_t since_ns)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    uint64_t mono = now_monotonic_ns();
    int64_t delay = mono > since_ns ? (int64_t)(mono - since_ns) : 0;
    if (host_ns > INT64_MAX - delay)
        delay = 0;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t guest_ns = (int64_t)now.tv_sec * 1000000000ll + now.tv_nsec;
    host_ns += delay;
    int64_t step = host_ns - guest_ns;
    json_object_object_add(o, "host_time_ns", json_object_new_int64(host_ns - delay));
    json_object_object_add(o, "delay_ns", json_object_new_int64(delay));
    json_object_object_add(o, "guest_time_ns", json_object_new_int64(guest_ns));
    json_object_object_add(o, "step_ns", json_object_new_int64(step));
    json_object_object_add(o, "backwards", json_object_new_boolean(step < 0));
    bool applied = false;
    if (nf->cfg.set_clock) {
        struct timespec ts = {.tv_sec = host_ns / 1000000000ll, .tv_nsec = host_ns % 1000000000ll};
        if (clock_settime(CLOCK_REALTIME, &ts) < 0) {
            json_object_object_add(o, "error", json_object_new_string(strerror(errno)));
            log_err("cannot set the clock: %m");
        } else {
            applied = true;
        }
    }
    json_object_object_add(o, "applied", json_object_new_boolean(applied));
    if (step < 0)
        log_warn("clock step of %" PRId64 " ns goes backwards%s", step,
                 applied ? "" : " (not applied)");
    else
        log_info("clock step %" PRId64 " ns%s", step, applied ? "" : " (not applied)");
    return o;
}

/* The thaw kick after the window probe: the socket's own lost data goes out now instead of
 * after its backed-off RTO (guest/thaw-kick.h). A kick that fails costs only that wait, so
 * it is reported, never a thaw failure. */
static void kick_one(int fd, const struct image_conn *c, json_object *e, size_t *kicked)
{
    struct thaw_kick_result k;
    int r = thaw_kick(fd, &c->st, &k);
    if (r < 0) {
        log_warn("thaw kick of connection %u (inode %" PRIu64 ") failed: %s", c->id, c->inode,
                 strerror(-r));
        json_object_object_add(e, "kick", json_object_new_string("failed"));
        return;
    }
    json_object_object_add(e, "kick", json_object_new_string(thaw_kick_verdict_name(k.verdict)));
    if (k.verdict != THAW_KICK_NOT_NEEDED || k.backoff) {
        json_object_object_add(e, "backoff", json_object_new_int64(k.backoff));
        json_object_object_add(e, "rto_ms", json_object_new_int64(k.rto_ms));
    }
    if (k.verdict == THAW_KICK_RTO_REVERT) {
        log_debug("kick: connection %u: RTO backed off %u times (%u ms), reverted by %u ICMP",
                  c->id, k.backoff, k.rto_ms, k.sent);
        (*kicked)++;
    }
}

int net_freezer_thaw(struct net_freezer *nf, enum net_thaw_reason why,
                     const struct net_thaw_opts *o, json_object **report)
{
    struct net_thaw_opts def = {.window_probe = true};
    if (!o)
        o = &def;
    json_object *rep = json_object_new_object();
    json_object *list = json_object_new_array();
    if (!rep || !list) {
        json_object_put(rep);
        json_object_put(list);
        return -ENOMEM;
    }
    bool was = nf->frozen;
    json_object_object_add(rep, "was_frozen", json_object_new_boolean(was));
    json_object_object_add(rep, "reason", json_object_new_string(net_thaw_reason_name(why)));
    json_object_object_add(rep, "connections", list);

    size_t thawed = 0, failed = 0, released = 0, kicked = 0;
    uint64_t t0 = now_monotonic_ns();
    uint64_t frozen_ms = 0;
    if (was) {
        /* First, so that it holds no copy of a socket we are about to close. */
        sentinel_stop(nf);
        for (size_t i = 0; i < nf->img.n_conns; i++) {
            const struct image_conn *c = &nf->img.conns[i];
            int r = tcp_repair_thaw(nf->fds[i], &c->st, o->window_probe);
            if (r < 0) {
                /* Whatever failed, never hand a socket in repair mode back to its owner. */
                (void)repair_off_if_on(nf->fds[i]);
            }
            json_object *e = json_object_new_object();
            add_conn_ident(e, c->id, c->inode, &c->st);
            json_object_object_add(e, "result",
                                   json_object_new_string(r < 0 ? "failed" : "thawed"));
            if (r < 0) {
                json_object_object_add(e, "error", json_object_new_string(strerror(-r)));
                log_err("thaw of connection %u (inode %" PRIu64 ") failed: %s", c->id, c->inode,
                        strerror(-r));
                failed++;
            } else {
                thawed++;
            }
            json_object_object_add(e, "owners_alive",
                                   json_object_new_int64((int64_t)owners_alive(nf, c)));
            json_object_array_add(list, e);
        }
        /* The kicks once every window probe is out (a kick may retransmit there and then, and
         * no probe should wait for another socket's kick), and before the owners run, so that
         * write_seq is still the dumped one. */
        for (size_t i = 0; o->window_probe && i < nf->img.n_conns; i++) {
            json_object *e = json_object_array_get_idx(list, i);
            if (e && !json_object_object_get_ex(e, "error", NULL))
                kick_one(nf->fds[i], &nf->img.conns[i], e, &kicked);
        }
        /* Our duplicates go before the owners run again; a socket whose owners all exited
         * while frozen is closed normally here, as their exit would have done. */
        close_fds(nf);
    }
    if (o->has_host_time)
        json_object_object_add(rep, "clock", step_clock(nf, o->host_time_ns, t0));
    if (was) {
        int r = quiesce_release(&nf->qs);
        released = r > 0 ? (size_t)r : 0;
        if (r < 0)
            log_err("releasing quiesced processes: %s", strerror(-r));
        frozen_ms = (now_monotonic_ns() - nf->since_mono_ns) / 1000000ull;
        state_file_clear(nf);
        log_info("thawed %zu connections (%zu failed, %zu kicked) in %.1f ms, frozen for %" PRIu64
                 " ms (%s)",
                 thawed, failed, kicked, (double)(now_monotonic_ns() - t0) / 1e6, frozen_ms,
                 net_thaw_reason_name(why));
        json_object_object_add(rep, "image_id", json_object_new_string(nf->img.image_id));
        socket_image_free(&nf->img);
        memset(&nf->img, 0, sizeof(nf->img));
        nf->frozen = false;
        nf->deadline_mono_ns = 0;
        nf->last_thaw = (struct net_thaw_summary){.valid = true,
                                                  .reason = why,
                                                  .at_realtime_ns = now_realtime_ns(),
                                                  .frozen_ms = frozen_ms,
                                                  .thawed = thawed,
                                                  .failed = failed};
        nf->n_procs = 0;
    }
    json_object_object_add(rep, "thawed", json_object_new_int64((int64_t)thawed));
    json_object_object_add(rep, "failed", json_object_new_int64((int64_t)failed));
    json_object_object_add(rep, "kicked", json_object_new_int64((int64_t)kicked));
    json_object_object_add(rep, "threads_released", json_object_new_int64((int64_t)released));
    json_object_object_add(rep, "frozen_ms", json_object_new_int64((int64_t)frozen_ms));
    if (report)
        *report = rep;
    else
        json_object_put(rep);
    return (int)failed;
}

/* ---- status ---- */

json_object *net_freezer_status(const struct net_freezer *nf)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    json_object_object_add(o, "frozen", json_object_new_boolean(nf->frozen));
    json_object_object_add(o, "sockets",
                           json_object_new_int64(nf->frozen ? (int64_t)nf->img.n_conns : 0));
    json_object_object_add(o, "processes",
                           json_object_new_int64(nf->frozen ? (int64_t)nf->n_procs : 0));
    json_object_object_add(o, "freeze_timeout_ms",
                           json_object_new_int64(nf->cfg.freeze_timeout_ms));
    json_object_object_add(o, "freezes", json_object_new_uint64(nf->n_freezes));
    if (nf->frozen) {
        uint64_t now = now_monotonic_ns();
        json_object_object_add(o, "image_id", json_object_new_string(nf->img.image_id));
        json_object_object_add(o, "skipped", json_object_new_int64((int64_t)nf->img.n_skipped));
        json_object_object_add(o, "since_monotonic_ns", json_object_new_uint64(nf->since_mono_ns));
        json_object_object_add(o, "since_realtime_ns", json_object_new_uint64(nf->since_real_ns));
        json_object_object_add(
            o, "frozen_ms",
            json_object_new_int64((int64_t)((now - nf->since_mono_ns) / 1000000ull)));
        json_object_object_add(o, "timeout_ms", json_object_new_int64(nf->timeout_ms));
        if (nf->sentinel_pid > 0)
            json_object_object_add(o, "sentinel_pid", json_object_new_int(nf->sentinel_pid));
        uint64_t left = nf->deadline_mono_ns > now ? nf->deadline_mono_ns - now : 0;
        json_object_object_add(o, "watchdog_ms_left",
                               json_object_new_int64((int64_t)(left / 1000000ull)));
    }
    if (nf->last_thaw.valid) {
        json_object *t = json_object_new_object();
        json_object_object_add(t, "reason",
                               json_object_new_string(net_thaw_reason_name(nf->last_thaw.reason)));
        json_object_object_add(t, "at_realtime_ns",
                               json_object_new_uint64(nf->last_thaw.at_realtime_ns));
        json_object_object_add(t, "frozen_ms", json_object_new_uint64(nf->last_thaw.frozen_ms));
        json_object_object_add(t, "thawed", json_object_new_int64((int64_t)nf->last_thaw.thawed));
        json_object_object_add(t, "failed", json_object_new_int64((int64_t)nf->last_thaw.failed));
        json_object_object_add(o, "last_thaw", t);
    }
    if (nf->recovery)
        json_object_object_add(o, "recovery", json_object_get(nf->recovery));
    /* For the host's "defer while more than N are retransmitting" (guest/tcp-retrans.h).
     * Absent when sock_diag cannot say: the host then reports the condition unavailable. */
    struct tcp_retrans_count rc;
    if (tcp_retrans_count(&rc) == 0) {
        json_object_object_add(o, "connections", json_object_new_int64(rc.connections));
        json_object_object_add(o, "retransmitting", json_object_new_int64(rc.retransmitting));
        json_object_object_add(o, "probing", json_object_new_int64(rc.probing));
    }
    return o;
}

/* ---- verify ---- */

static void copy_settings(struct tcp_conn_state *dst, const struct tcp_conn_state *src)
{
    dst->nodelay = src->nodelay;
    dst->cork = src->cork;
    dst->keepalive = src->keepalive;
    dst->user_timeout_ms = src->user_timeout_ms;
}

static bool queues_equal(const struct tcp_repair_queue *a1, const struct tcp_repair_queue *a2,
                         const struct tcp_repair_queue *b1, const struct tcp_repair_queue *b2)
{
    if ((uint64_t)a1->len + a2->len != (uint64_t)b1->len + b2->len)
        return false;
    /* Compare a1||a2 with b1||b2 without joining them. */
    uint64_t total = (uint64_t)a1->len + a2->len;
    for (uint64_t off = 0; off < total;) {
        const struct tcp_repair_queue *qa = off < a1->len ? a1 : a2;
        uint64_t oa = off < a1->len ? off : off - a1->len;
        const struct tcp_repair_queue *qb = off < b1->len ? b1 : b2;
        uint64_t ob = off < b1->len ? off : off - b1->len;
        uint64_t n = qa->len - oa < qb->len - ob ? qa->len - oa : qb->len - ob;
        if (memcmp(qa->data + oa, qb->data + ob, n))
            return false;
        off += n;
    }
    return true;
}

static int queue_dup(struct tcp_repair_queue *dst, const struct tcp_repair_queue *src)
{
    free(dst->data);
    dst->data = NULL;
    dst->len = 0;
    if (!src->len)
        return 0;
    dst->data = malloc(src->len);
    if (!dst->data)
        return -ENOMEM;
    memcpy(dst->data, src->data, src->len);
    dst->len = src->len;
    return 0;
}

/* In repair mode with the send queue selected, the kernel marks unsent data as sent without
 * transmitting it whenever something runs tcp_write_xmit (a deferred TSQ flush on
 * release_sock, the pacing timer), so the unacked/unsent split of a frozen socket can move
 * between two dumps. The bytes and sequence numbers cannot: when those agree, report the split
 * the freeze recorded. */
static int normalize_split(struct tcp_conn_state *live, const struct tcp_conn_state *frozen)
{
    if (live->snd_seq != frozen->snd_seq ||
        !queues_equal(&live->unacked, &live->unsent, &frozen->unacked, &frozen->unsent))
        return 0;
    if (live->unacked.len == frozen->unacked.len)
        return 0;
    int r = queue_dup(&live->unacked, &frozen->unacked);
    if (r >= 0)
        r = queue_dup(&live->unsent, &frozen->unsent);
    return r < 0 ? r : 1;
}

int net_freezer_verify(struct net_freezer *nf, const char *image_id, json_object *image,
                       json_object **ret, struct qga_error *err)
{
    struct socket_image expected = {0}, live = {0};
    const struct socket_image *exp = NULL;
    json_object *diffs = NULL;
    int r;

    if (image) {
        char msg[256] = "";
        r = socket_image_from_json(image, &expected, msg, sizeof(msg));
        if (r < 0) {
            qga_error_set(err, QGA_ERR_INVALID_PARAMETER, "'image' is not a valid socket image: %s",
                          msg[0] ? msg : strerror(-r));
            return r;
        }
        if (image_id && strcmp(image_id, expected.image_id)) {
            qga_error_set(err, QGA_ERR_INVALID_PARAMETER,
                          "'image_id' %s does not match the image's %s", image_id,
                          expected.image_id);
            socket_image_free(&expected);
            return -EINVAL;
        }
        exp = &expected;
    } else if (!image_id) {
        qga_error_set(err, QGA_ERR_INVALID_PARAMETER, "give 'image_id' or 'image'");
        return -EINVAL;
    }

    json_object *o = json_object_new_object();
    if (!o) {
        socket_image_free(&expected);
        return -ENOMEM;
    }
    json_object_object_add(o, "frozen", json_object_new_boolean(nf->frozen));
    const char *want_id = exp ? exp->image_id : image_id;
    json_object_object_add(o, "image_id", json_object_new_string(want_id));

    if (!nf->frozen || strcmp(want_id, nf->img.image_id)) {
        /* Nothing to compare the sockets with: the whole state is a difference. */
        diffs = json_object_new_array();
        json_object *d = json_object_new_object();
        json_object_object_add(d, "connection", NULL);
        json_object_object_add(d, "field",
                               json_object_new_string(nf->frozen ? "image_id" : "frozen"));
        if (nf->frozen) {
            json_object_object_add(d, "expected", json_object_new_string(want_id));
            json_object_object_add(d, "live", json_object_new_string(nf->img.image_id));
        } else {
            json_object_object_add(d, "expected", json_object_new_boolean(true));
            json_object_object_add(d, "live", json_object_new_boolean(false));
        }
        json_object_array_add(diffs, d);
        /* A full image can still be checked against the live freeze under another id. */
        if (!(nf->frozen && exp))
            goto out;
        json_object_put(diffs);
        diffs = NULL;
    }
    if (!exp)
        exp = &nf->img;

    /* Re-dump every frozen socket into a live image. */
    live = nf->img;
    live.conns = calloc(nf->img.n_conns ? nf->img.n_conns : 1, sizeof(*live.conns));
    live.n_conns = 0;
    live.skipped = NULL;
    live.n_skipped = 0;
    if (!live.conns) {
        r = -ENOMEM;
        goto fail;
    }
    json_object *dump_errors = json_object_new_array();
    for (size_t i = 0; i < nf->img.n_conns; i++) {
        const struct image_conn *c = &nf->img.conns[i];
        struct image_conn *l = &live.conns[live.n_conns];
        memset(l, 0, sizeof(*l));
        copy_settings(&l->st, &c->st);
        r = tcp_repair_dump(nf->fds[i], &l->st);
        if (r < 0) {
            json_object *d = json_object_new_object();
            add_conn_ident(d, c->id, c->inode, &c->st);
            json_object_object_add(d, "field", json_object_new_string("dump"));
            json_object_object_add(d, "error", json_object_new_string(strerror(-r)));
            json_object_array_add(dump_errors, d);
            continue;
        }
        repair_queue_none(nf->fds[i]);
        copy_settings(&l->st, &c->st);
        if (normalize_split(&l->st, &c->st) > 0)
            log_debug("verify: connection %u: send queue split moved in repair mode", c->id);
        l->id = c->id;
        l->inode = c->inode;
        l->owners = calloc(c->n_owners ? c->n_owners : 1, sizeof(*l->owners));
        if (l->owners)
            memcpy(l->owners, c->owners, c->n_owners * sizeof(*l->owners));
        l->n_owners = l->owners ? c->n_owners : 0;
        live.n_conns++;
    }
    /* live borrowed the header only; the skipped list stays nf's. */
    r = socket_image_diff(exp, &live, &diffs);
    if (r < 0) {
        json_object_put(dump_errors);
        goto fail;
    }
    for (size_t i = 0; i < json_object_array_length(dump_errors); i++)
        json_object_array_add(diffs, json_object_get(json_object_array_get_idx(dump_errors, i)));
    json_object_put(dump_errors);
    json_object_object_add(o, "checked", json_object_new_int64((int64_t)live.n_conns));

out:
    json_object_object_add(o, "match",
                           json_object_new_boolean(json_object_array_length(diffs) == 0));
    json_object_object_add(o, "differences", diffs);
    if (live.conns)
        socket_image_free(&live);
    socket_image_free(&expected);
    *ret = o;
    return 0;

fail:
    if (live.conns)
        socket_image_free(&live);
    socket_image_free(&expected);
    json_object_put(o);
    return qga_error_errno(err, r, "verify");
}

/* ---- reset-stale ---- */

int net_freezer_reset_stale(struct net_freezer *nf, const struct net_conn_key *given,
                            size_t n_given, const char *image_id, json_object **ret,
                            struct qga_error *err)
{
    if (nf->frozen) {
        qga_error_set(err, QGA_ERR_BUSY, "the network is frozen; thaw first");
        return -EBUSY;
    }
    if (image_id && (!nf->last_image_id[0] || strcmp(image_id, nf->last_image_id))) {
        qga_error_set(err, QGA_ERR_NOT_FOUND, "image %s is not this agent's last freeze (%s)",
                      image_id, nf->last_image_id[0] ? nf->last_image_id : "none");
        return -ENOENT;
    }
    size_t n = n_given + (image_id ? nf->n_last_keys : 0);
    _cleanup_free_ struct net_conn_key *keys = calloc(n ? n : 1, sizeof(*keys));
    if (!keys)
        return qga_error_errno(err, -ENOMEM, "reset-stale");
    if (n_given)
        memcpy(keys, given, n_given * sizeof(*keys));
    if (image_id && nf->n_last_keys)
        memcpy(keys + n_given, nf->last_keys, nf->n_last_keys * sizeof(*keys));
    struct sock_diag_tcp *ents = NULL;
    size_t n_ents = 0;
    int r =
        sock_diag_tcp_list(SOCK_DIAG_ALL_STATES & ~SOCK_DIAG_STATE_BIT(TCP_LISTEN), &ents, &n_ents);
    if (r < 0)
        return qga_error_errno(err, r, "listing TCP sockets (sock_diag)");
    json_object *o = json_object_new_object();
    json_object *list = json_object_new_array();
    size_t n_reset = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_new_object();
        json_object_object_add(e, "local", endpoint_json(&keys[i].local));
        json_object_object_add(e, "remote", endpoint_json(&keys[i].remote));
        const char *result = "not-found";
        int dr = 0;
        for (size_t k = 0; k < n_ents; k++) {
            if (!endpoint_eq(&ents[k].local, &keys[i].local) ||
                !endpoint_eq(&ents[k].remote, &keys[i].remote) || ents[k].state == TCP_TIME_WAIT)
                continue;
            dr = sock_diag_tcp_destroy(&ents[k]);
            if (dr == -ENOENT)
                continue;
            result = dr < 0 ? "failed" : "reset";
            if (dr >= 0)
                n_reset++;
            break;
        }
        json_object_object_add(e, "result", json_object_new_string(result));
        if (dr < 0 && dr != -ENOENT)
            json_object_object_add(e, "error", json_object_new_string(strerror(-dr)));
        json_object_array_add(list, e);
    }
    free(ents);
    json_object_object_add(o, "reset", json_object_new_int64((int64_t)n_reset));
    json_object_object_add(o, "connections", list);
    log_info("reset-stale: %zu of %zu connections reset", n_reset, n);
    *ret = o;
    return 0;
}

/* ---- recovery ---- */

static int read_boot_id(char out[37])
{
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    int r = read_file("/proc/sys/kernel/random/boot_id", 64, &buf, &len);
    if (r < 0)
        return r;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
        buf[--len] = 0;
    snprintf(out, 37, "%s", buf);
    return 0;
}

static int recover_one(const struct proc_owner_map *map, json_object *s, bool complete,
                       json_object *list)
{
    uint64_t inode = (uint64_t)get_int(s, "inode", 0);
    json_object *settings = NULL;
    bool has_settings = json_object_object_get_ex(s, "settings", &settings) &&
                        json_object_is_type(settings, json_type_object);
    json_object *e = json_object_new_object();
    json_object_object_add(e, "inode", json_object_new_uint64(inode));
    json_object_array_add(list, e);

    const struct proc_owner_entry *first = NULL;
    size_t no = inode ? proc_owner_lookup(map, inode, &first) : 0;
    int fd = -1;
    for (size_t k = 0; k < no && fd < 0; k++) {
        fd = pidfd_take_socket(first[k].owner.pid, first[k].owner.fd);
        uint64_t ino = 0;
        if (fd >= 0 && (fd_socket_inode(fd, &ino) < 0 || ino != inode)) {
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0) {
        json_object_object_add(e, "result", json_object_new_string("gone"));
        return 0;
    }
    int on = 0;
    socklen_t l = sizeof(on);
    if (getsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &on, &l) == 0 && !on) {
        /* The freeze died before reaching it (or something thawed it): leave it be. */
        close(fd);
        json_object_object_add(e, "result", json_object_new_string("not-frozen"));
        return 2;
    }
    int r;
    if (has_settings) {
        struct tcp_conn_state st = {0};
        settings_from_json(settings, &st);
        r = tcp_repair_thaw(fd, &st, true);
        if (r < 0)
            (void)repair_off_if_on(fd);
    } else {
        /* The freeze died before recording this socket's settings: at least leave repair
         * (keepalive and the user timeout stay as the freeze left them: suspended). */
        r = repair_off_if_on(fd);
        json_object_object_add(e, "settings_lost", json_object_new_boolean(true));
    }
    (void)complete;
    close(fd);
    json_object_object_add(e, "result", json_object_new_string(r < 0 ? "failed" : "thawed"));
    if (r < 0)
        json_object_object_add(e, "error", json_object_new_string(strerror(-r)));
    return r < 0 ? r : 1;
}

int net_freezer_recover(struct net_freezer *nf)
{
    if (!nf->cfg.state_file)
        return 0;
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    int r = read_file(nf->cfg.state_file, STATE_FILE_MAX, &buf, &len);
    if (r == -ENOENT)
        return 0;
    if (r < 0) {
        log_err("cannot read state file %s: %s", nf->cfg.state_file, strerror(-r));
        return r;
    }
    json_object *root = json_tokener_parse(buf);
    if (!root || !json_object_is_type(root, json_type_object)) {
        log_err("state file %s is corrupt; ignoring it", nf->cfg.state_file);
        json_object_put(root);
        state_file_clear(nf);
        return -EBADMSG;
    }
    char boot_id[37] = "";
    (void)read_boot_id(boot_id);
    json_object *v = NULL;
    const char *file_boot =
        json_object_object_get_ex(root, "boot_id", &v) ? json_object_get_string(v) : "";
    if (!get_bool(root, "frozen", false) || strcmp(file_boot ? file_boot : "", boot_id)) {
        log_info("state file %s: nothing frozen in this boot", nf->cfg.state_file);
        json_object_put(root);
        state_file_clear(nf);
        return 0;
    }
    pid_t other = state_file_other_agent(nf);
    if (other) {
        log_info("state file %s belongs to netckpt-agent pid %d, which is alive and frozen; "
                 "leaving it alone",
                 nf->cfg.state_file, (int)other);
        json_object_put(root);
        return 0;
    }
    bool complete = get_bool(root, "complete", false);
    json_object *socks = NULL;
    if (!json_object_object_get_ex(root, "sockets", &socks) ||
        !json_object_is_type(socks, json_type_array))
        socks = NULL;
    log_warn("a previous agent (pid %" PRId64 ") died with the network frozen; thawing %zu "
             "sockets it left in repair mode",
             get_int(root, "agent_pid", 0), socks ? json_object_array_length(socks) : 0);

    struct proc_owner_map map = {0};
    r = proc_owner_scan(proc_root(nf), getpid(), &map);
    if (r < 0) {
        log_err("scanning %s: %s", proc_root(nf), strerror(-r));
        json_object_put(root);
        return r;
    }
    json_object *rec = json_object_new_object();
    json_object *list = json_object_new_array();
    size_t thawed = 0, failed = 0, gone = 0, untouched = 0;
    for (size_t i = 0; socks && i < json_object_array_length(socks); i++) {
        int x = recover_one(&map, json_object_array_get_idx(socks, i), complete, list);
        if (x == 2)
            untouched++;
        else if (x > 0)
            thawed++;
        else if (x < 0)
            failed++;
        else
            gone++;
    }
    proc_owner_map_free(&map);
    json_object_object_add(rec, "previous_agent_pid",
                           json_object_new_int64(get_int(root, "agent_pid", 0)));
    v = NULL;
    json_object_object_get_ex(root, "image_id", &v);
    json_object_object_add(rec, "image_id", json_object_get(v));
    json_object_object_add(rec, "complete", json_object_new_boolean(complete));
    json_object_object_add(rec, "thawed", json_object_new_int64((int64_t)thawed));
    json_object_object_add(rec, "failed", json_object_new_int64((int64_t)failed));
    json_object_object_add(rec, "gone", json_object_new_int64((int64_t)gone));
    json_object_object_add(rec, "not_frozen", json_object_new_int64((int64_t)untouched));
    json_object_object_add(rec, "at_realtime_ns", json_object_new_uint64(now_realtime_ns()));
    json_object_object_add(rec, "connections", list);
    json_object_put(root);
    if (nf->recovery)
        json_object_put(nf->recovery);
    nf->recovery = rec;
    nf->last_thaw = (struct net_thaw_summary){.valid = true,
                                              .reason = NET_THAW_RECOVERY,
                                              .at_realtime_ns = now_realtime_ns(),
                                              .thawed = thawed,
                                              .failed = failed};
    log_info("recovery: %zu thawed, %zu failed, %zu gone, %zu were not frozen", thawed, failed,
             gone, untouched);
    if (failed == 0)
        state_file_clear(nf);
    return (int)thawed;
}
