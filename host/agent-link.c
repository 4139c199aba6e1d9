/* host/agent-link.c: see agent-link.h. */
#include "host/agent-link.h"
#include "agent/qga-stream.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/util.h"

#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

/* A non-blocking virStream plus a wakeup from the event loop thread: the stream callback only
 * signals; reads and writes stay in the caller's thread. */
struct agent_link_stream {
    virStreamPtr st;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int events; /* what the callback saw since the last wait */
    bool cb_added;
};

const char *agent_link_kind_name(enum agent_link_kind k)
{
    switch (k) {
    case AGENT_LINK_UNIX:
        return "unix-socket";
    case AGENT_LINK_STREAM:
        return "libvirt-channel";
    case AGENT_LINK_QEMU_AGENT:
        return "libvirt-qemu-agent";
    default:
        return "auto";
    }
}

static void link_init(struct agent_link *l)
{
    memset(l, 0, sizeof(*l));
    l->fd = -1;
    l->max_reply = AGENT_LINK_REPLY_MAX;
}

int agent_link_set_max_reply(struct agent_link *l, size_t bytes)
{
    /* Checked here too: a link without a client (libvirt's agent API) would otherwise keep a
     * limit the qga client refuses, and make_client() would drop it silently. */
    if (bytes == 0 || bytes > QGA_READER_MAX_BYTES)
        return -EINVAL;
    if (l->client) {
        int r = qga_client_set_max_reply(l->client, bytes);
        if (r < 0)
            return r;
    }
    l->max_reply = bytes;
    return 0;
}

/* --- UNIX socket ------------------------------------------------------------------------ */

static int make_client(struct agent_link *l)
{
    l->client = qga_client_new(&l->tr);
    if (!l->client)
        return -ENOMEM;
    qga_client_set_max_reply(l->client, l->max_reply);
    return 0;
}

int agent_link_open_unix(struct agent_link *l, const char *path, int timeout_ms)
{
    link_init(l);
    int fd = unix_connect(path, timeout_ms > 0 ? timeout_ms : 5000);
    if (fd < 0)
        return fd;
    l->fd = fd;
    l->kind = AGENT_LINK_UNIX;
    qga_transport_fd(&l->tr, &l->fd);
    int r = make_client(l);
    if (r < 0)
        agent_link_close(l);
    return r;
}

/* --- virStream -------------------------------------------------------------------------- */

static void stream_cb(virStreamPtr st, int events, void *opaque)
{
    struct agent_link_stream *s = opaque;
    pthread_mutex_lock(&s->lock);
    s->events |= events;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* Wait until the stream is readable/writable (events) or timeout_ms passes (<0: forever).
 * libvirt's stream calls are never made while s->lock is held: the callback may run with
 * libvirt's own stream lock held, so the two locks are only ever taken in that order. The
 * watch is on only while waiting (it is level-triggered: left on, unread data would spin the
 * event loop). */
static int stream_wait(struct agent_link_stream *s, int events, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (timeout_ms >= 0) {
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&s->lock);
    s->events = 0;
    pthread_mutex_unlock(&s->lock);
    if (virStreamEventUpdateCallback(s->st,
                                     events | VIR_STREAM_EVENT_ERROR | VIR_STREAM_EVENT_HANGUP) < 0)
        return -EIO;
    int r = 0;
    pthread_mutex_lock(&s->lock);
    while (!s->events) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&s->cond, &s->lock);
            continue;
        }
        if (pthread_cond_timedwait(&s->cond, &s->lock, &deadline) == ETIMEDOUT) {
            r = -ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    virStreamEventUpdateCallback(s->st, 0);
    return r;
}

static ssize_t stream_send(void *ctx, const void *buf, size_t len)
{
    struct agent_link_stream *s = ctx;
    const char *p = buf;
    size_t left = len;
    while (left > 0) {
        int n = virStreamSend(s->st, p, left);
        if (n == -2) {
            int r = stream_wait(s, VIR_STREAM_EVENT_WRITABLE, 5000);
            if (r < 0)
                return r;
            continue;
        }
        if (n < 0)
            return -EIO;
        p += n;
        left -= (size_t)n;
    }
    return (ssize_t)len;
}

static ssize_t stream_recv(void *ctx, void *buf, size_t len, int timeout_ms)
{
    struct agent_link_stream *s = ctx;
    uint64_t start = now_monotonic_ns();
    for (;;) {
        int n = virStreamRecv(s->st, buf, len);
        if (n >= 0)
            return n;
        if (n != -2)
            return -EIO;
        int left = timeout_ms;
        if (timeout_ms >= 0) {
            uint64_t spent = (now_monotonic_ns() - start) / 1000000;
            if (spent >= (uint64_t)timeout_ms)
                return -ETIMEDOUT;
            left = timeout_ms - (int)spent;
        }
        int r = stream_wait(s, VIR_STREAM_EVENT_READABLE, left);
        if (r < 0)
            return r;
    }
}

static void stream_free(struct agent_link_stream *s)
{
    if (!s)
        return;
    if (s->st) {
        if (s->cb_added)
            virStreamEventRemoveCallback(s->st);
        virStreamAbort(s->st);
        virStreamFree(s->st);
    }
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static int open_stream(struct agent_link *l, struct nc_virt *v, virDomainPtr dom, const char *name)
{
    struct agent_link_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    l->st = s;
    s->st = virStreamNew(v->conn, VIR_STREAM_NONBLOCK);
    if (!s->st)
        return -ENOMEM;
    if (virDomainOpenChannel(dom, name, s->st, 0) < 0) {
        nc_virt_set_err(v, "opening channel %s: %s", name, virGetLastErrorMessage());
        return -EIO;
    }
    if (virStreamEventAddCallback(s->st, 0, stream_cb, s, NULL) < 0) {
        nc_virt_set_err(v, "stream events: %s", virGetLastErrorMessage());
        return -EIO;
    }
    s->cb_added = true;
    l->tr = (struct qga_transport){.ctx = s, .send = stream_send, .recv = stream_recv};
    l->kind = AGENT_LINK_STREAM;
    return make_client(l);
}

/* --- open/close ------------------------------------------------------------------------- */

int agent_link_open_kind(struct agent_link *l, struct nc_virt *v, virDomainPtr dom,
                         const struct domain_info *di, enum agent_link_kind kind)
{
    link_init(l);
    if (!di->agent_name[0]) {
        nc_virt_set_err(v, "domain '%s' has no agent channel", di->name);
        return -ENOENT;
    }
    snprintf(l->agent_name, sizeof(l->agent_name), "%s", di->agent_name);
    l->v = v;
    if (virDomainRef(dom) < 0)
        return -EINVAL;
    l->dom = dom;

    int r = -ENOENT;
    /* libvirt keeps the qga socket to itself: only its agent API reaches that one. */
    if (di->agent_is_qga_name && (kind == AGENT_LINK_AUTO || kind == AGENT_LINK_QEMU_AGENT)) {
        l->kind = AGENT_LINK_QEMU_AGENT;
        return 0;
    }
    if (kind == AGENT_LINK_QEMU_AGENT) {
        nc_virt_set_err(v, "libvirt's agent API only serves %s", DOMAIN_QGA_NAME);
        r = -EOPNOTSUPP;
        goto fail;
    }
    if ((kind == AGENT_LINK_AUTO || kind == AGENT_LINK_UNIX) && di->agent_socket[0] &&
        strcmp(di->agent_source_mode, "connect") != 0) {
        r = unix_connect(di->agent_socket, 5000);
        if (r >= 0) {
            l->fd = r;
            l->kind = AGENT_LINK_UNIX;
            qga_transport_fd(&l->tr, &l->fd);
            r = make_client(l);
            if (r < 0)
                goto fail;
            return 0;
        }
        nc_virt_set_err(v, "connecting to %s: %s", di->agent_socket, strerror(-r));
        log_debug("agent link: %s", v->err);
        if (kind == AGENT_LINK_UNIX)
            goto fail;
    }
    if (kind == AGENT_LINK_AUTO || kind == AGENT_LINK_STREAM) {
        r = open_stream(l, v, dom, di->agent_name);
        if (r == 0)
            return 0;
        stream_free(l->st);
        l->st = NULL;
    }
fail:
    agent_link_close(l);
    return r;
}

int agent_link_open(struct agent_link *l, struct nc_virt *v, virDomainPtr dom,
                    const struct domain_info *di)
{
    /* Lets tests and operators pin one path (e.g. the e2e test exercising the stream). */
    const char *e = getenv("NETCKPT_AGENT_LINK");
    enum agent_link_kind k = AGENT_LINK_AUTO;
    if (e && !strcmp(e, "unix"))
        k = AGENT_LINK_UNIX;
    else if (e && !strcmp(e, "stream"))
        k = AGENT_LINK_STREAM;
    else if (e && !strcmp(e, "qemu-agent"))
        k = AGENT_LINK_QEMU_AGENT;
    return agent_link_open_kind(l, v, dom, di, k);
}

void agent_link_close(struct agent_link *l)
{
    if (l->client)
        qga_client_free(l->client);
    l->client = NULL;
    stream_free(l->st);
    l->st = NULL;
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    if (l->dom)
        virDomainFree(l->dom);
    l->dom = NULL;
    l->kind = AGENT_LINK_AUTO;
}

/* --- calls ------------------------------------------------------------------------------ */

/* Parse libvirt's copy of the agent's reply: untrusted, so size and depth limited. */
int agent_link_parse_reply(const char *reply, size_t max, json_object **ret, struct qga_error *err)
{
    *ret = NULL;
    size_t len = strnlen(reply, max + 1);
    if (len > max || len > INT_MAX) {
        qga_error_set(err, QGA_ERR_GENERIC_ERROR, "agent reply over the %zu byte limit", max);
        return -EMSGSIZE;
    }
    json_tokener *tok = json_tokener_new_ex(QGA_MAX_DEPTH);
    if (!tok)
        return -ENOMEM;
    json_object *j = json_tokener_parse_ex(tok, reply, (int)len);
    bool bad = json_tokener_get_error(tok) != json_tokener_success;
    /* One object and nothing after it but whitespace. */
    for (size_t i = bad ? len : json_tokener_get_parse_end(tok); i < len; i++)
        if (reply[i] != ' ' && reply[i] != '\n' && reply[i] != '\r' && reply[i] != '\t')
            bad = true;
    json_tokener_free(tok);
    if (bad || !json_object_is_type(j, json_type_object)) {
        json_object_put(j);
        qga_error_set(err, QGA_ERR_GENERIC_ERROR, "agent reply is not a JSON object");
        return -EBADMSG;
    }
    json_object *v;
    int r;
    if (json_object_object_get_ex(j, "return", &v) && v) {
        *ret = json_object_get(v);
        r = 0;
    } else if (json_object_object_get_ex(j, "error", &v)) {
        r = qga_error_from_json(v, err) < 0 ? -EBADMSG : -EREMOTEIO;
        if (r == -EBADMSG)
            qga_error_set(err, QGA_ERR_GENERIC_ERROR, "agent error reply is malformed");
    } else {
        qga_error_set(err, QGA_ERR_GENERIC_ERROR, "agent reply has neither return nor error");
        r = -EBADMSG;
    }
    json_object_put(j);
    return r;
}

static int call_qemu_agent(struct agent_link *l, const char *cmd, json_object *args, int timeout_ms,
                           json_object **ret, struct qga_error *err)
{
    json_object *req = json_object_new_object();
    if (!req)
        return -ENOMEM;
    json_object_object_add(req, "execute", json_object_new_string(cmd));
    if (args)
        json_object_object_add(req, "arguments", json_object_get(args));
    const char *s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
    if (!s) {
        json_object_put(req);
        return -ENOMEM;
    }
    uint64_t start = now_monotonic_ns();
    char *reply = NULL;
    int r = 0;
    for (;;) {
        int left = timeout_ms;
        if (timeout_ms >= 0) {
            uint64_t spent = (now_monotonic_ns() - start) / 1000000;
            left = spent >= (uint64_t)timeout_ms ? 0 : timeout_ms - (int)spent;
        }
        /* libvirt counts in whole seconds; round up so a short timeout is never "no wait". */
        int secs = left < 0 ? VIR_DOMAIN_QEMU_AGENT_COMMAND_BLOCK : (left + 999) / 1000;
        if (secs == 0)
            secs = 1;
        uint64_t t0 = now_monotonic_ns();
        reply = virDomainQemuAgentCommand(l->dom, s, secs, 0);
        if (reply)
            break;
        int code = virGetLastErrorCode();
        const char *m = virGetLastErrorMessage();
        if (l->v)
            nc_virt_set_err(l->v, "%s", m ? m : "agent command failed");
        if (code != VIR_ERR_AGENT_UNRESPONSIVE && code != VIR_ERR_OPERATION_TIMEOUT) {
            qga_error_set(err, QGA_ERR_GENERIC_ERROR, "%s", m ? m : "agent command failed");
            r = -EIO;
            break;
        }
        qga_error_set(err, QGA_ERR_TIMEOUT, "%s", m ? m : "agent timeout");
        r = -ETIMEDOUT;
        /* A fast "unresponsive" means libvirt has not (re)connected the agent yet, as after
         * opening the embedded driver: nothing was sent, so trying again is safe. A real
         * timeout used up the whole second(s) and is not retried. */
        uint64_t took_ms = (now_monotonic_ns() - t0) / 1000000;
        uint64_t spent = (now_monotonic_ns() - start) / 1000000;
        if (took_ms >= 500 || (timeout_ms >= 0 && spent + 100 >= (uint64_t)timeout_ms))
            break;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    json_object_put(req);
    if (!reply)
        return r;
    r = agent_link_parse_reply(reply, l->max_reply, ret, err);
    free(reply);
    return r;
}

int agent_link_call(struct agent_link *l, const char *cmd, json_object *args, int timeout_ms,
                    json_object **ret, struct qga_error *err)
{
    *ret = NULL;
    qga_error_clear(err);
    if (l->kind == AGENT_LINK_QEMU_AGENT)
        return call_qemu_agent(l, cmd, args, timeout_ms, ret, err);
    if (!l->client)
        return -ENOTCONN;
    /* The client resyncs by itself after a timeout or a bad reply. */
    return qga_client_call(l->client, cmd, args, timeout_ms, ret, err);
}

int agent_link_sync(struct agent_link *l, int timeout_ms)
{
    if (l->kind == AGENT_LINK_QEMU_AGENT) {
        /* libvirt syncs before every command; a ping proves the agent answers. */
        json_object *ret = NULL;
        struct qga_error e;
        int r = call_qemu_agent(l, "guest-ping", NULL, timeout_ms, &ret, &e);
        json_object_put(ret);
        return r;
    }
    if (!l->client)
        return -ENOTCONN;
    return qga_client_sync(l->client, timeout_ms);
}
