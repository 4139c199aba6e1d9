/* agent/qga-server.c: see qga-server.h. */
#include "agent/qga-server.h"

#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/util.h"

#define SMALL_REPLY 4096 /* replies up to this size go out in one write */

enum builtin { BUILTIN_NONE, BUILTIN_SYNC, BUILTIN_SYNC_DELIMITED, BUILTIN_PING };

static const char *const builtin_names[] = {
    [BUILTIN_SYNC] = "guest-sync",
    [BUILTIN_SYNC_DELIMITED] = "guest-sync-delimited",
    [BUILTIN_PING] = "guest-ping",
};

static enum builtin builtin_of(const char *name)
{
    for (unsigned i = BUILTIN_SYNC; i < ELEMENTSOF(builtin_names); i++)
        if (!strcmp(name, builtin_names[i]))
            return (enum builtin)i;
    return BUILTIN_NONE;
}

int qga_server_init(struct qga_server *s, const struct qga_command *table, size_t n, void *userdata,
                    bool (*is_frozen)(void *userdata))
{
    memset(s, 0, sizeof(*s));
    if (n && !table)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!table[i].name || !table[i].name[0])
            return -EINVAL;
        if (!table[i].handler && builtin_of(table[i].name) == BUILTIN_NONE)
            return -EINVAL;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(table[i].name, table[j].name))
                return -EINVAL;
    }
    s->cmds = table;
    s->n_cmds = n;
    s->userdata = userdata;
    s->is_frozen = is_frozen;
    s->write_timeout_ms = QGA_SERVER_WRITE_TIMEOUT_MS;
    qga_reader_init(&s->reader, 0, 0);
    return 0;
}

void qga_server_free(struct qga_server *s)
{
    qga_reader_free(&s->reader);
}

void qga_server_reset(struct qga_server *s)
{
    qga_reader_reset(&s->reader);
}

const struct qga_command *qga_server_find(const struct qga_server *s, const char *name)
{
    for (size_t i = 0; i < s->n_cmds; i++)
        if (!strcmp(s->cmds[i].name, name))
            return &s->cmds[i];
    return NULL;
}

static bool frozen(const struct qga_server *s)
{
    return s->is_frozen && s->is_frozen(s->userdata);
}

/* ---- argument helpers ---- */

static json_object *arg_get(json_object *args, const char *key)
{
    json_object *v;
    if (!args || !json_object_object_get_ex(args, key, &v))
        return NULL;
    return v;
}

static int arg_missing(const char *key, bool required, struct qga_error *err)
{
    if (!required)
        return 0;
    qga_error_set(err, QGA_ERR_INVALID_PARAMETER, "missing required argument '%s'", key);
    return -EINVAL;
}

int qga_arg_int(json_object *args, const char *key, bool required, int64_t min, int64_t max,
                int64_t *out, struct qga_error *err)
{
    json_object *v = arg_get(args, key);
    if (!v)
        return arg_missing(key, required, err);
    if (!json_object_is_type(v, json_type_int)) {
        qga_error_set(err, QGA_ERR_INVALID_PARAMETER, "argument '%s' must be an integer", key);
        return -EINVAL;
    }
    int64_t x = json_object_get_int64(v);
    /* json-c keeps values above INT64_MAX as uint64 and clamps them here. */
    bool too_big = json_object_get_uint64(v) > (uint64_t)INT64_MAX && x >= 0;
    if (x < min || x > max || (too_big && max == INT64_MAX)) {
        qga_error_set(err, QGA_ERR_INVALID_PARAMETER,
                      "argument '%s' must be between %" PRId64 " and %" PRId64, key, min, max);
        return -EINVAL;
    }
    *out = x;
    return 1;
}

int qga_arg_bool(json_object *args, const char *key, bool required, bool *out,
                 struct qga_error *err)
{
    json_object *v = arg_get(args, key);
    if (!v)
        return arg_missing(key, required, err);
    if (!json_object_is_type(v, json_type_boolean)) {
        qga_error_set(err, QGA_ERR_INVALID_PARAMETER, "argument '%s' must be a boolean", key);
        return -EINVAL;
    }
    *out = json_object_get_boolean(v);
    return 1;
}

int qga_arg_string(json_object *args, const char *key, bool required, size_t max_len,
                   const char **out, struct qga_error *err)
{
    json_object *v = arg_get(args, key);
    if (!v)
        return arg_missing(key, required, err);
    if (!json_object_is_type(v, json_type_string)) {
        qga_error_set(err, QGA_ERR_INVALID_PARAMETER, "argument '%s' must be a string", key);
        return -EINVAL;
    }
    size_t len = (size_t)json_object_get_string_len(v);
    const char *str = json_object_get_string(v);
    if (len > max_len || strlen(str) != len) {
        qga_error_set(err, QGA_ERR_INVALID_PARAMETER,
                      "argument '%s' must be a string of at most %zu bytes without NUL", key,
                      max_len);
        return -EINVAL;
    }
    *out = str;
    return 1;
}

int qga_arg_json(json_object *args, const char *key, bool required, json_type type,
                 json_object **out, struct qga_error *err)
{
    json_object *v = arg_get(args, key);
    if (!v)
        return arg_missing(key, required, err);
    if (!json_object_is_type(v, type)) {
        qga_error_set(err, QGA_ERR_INVALID_PARAMETER, "argument '%s' must be %s", key,
                      type == json_type_array ? "an array" : "an object");
        return -EINVAL;
    }
    *out = v;
    return 1;
}

int qga_args_check_known(json_object *args, const char *const *known, struct qga_error *err)
{
    if (!args)
        return 0;
    json_object_object_foreach(args, k, v)
    {
        (void)v;
        bool ok = false;
        for (size_t i = 0; known && known[i]; i++)
            if (!strcmp(k, known[i])) {
                ok = true;
                break;
            }
        if (!ok) {
            qga_error_set(err, QGA_ERR_INVALID_PARAMETER, "unexpected argument '%s'", k);
            return -EINVAL;
        }
    }
    return 0;
}

/* ---- dispatch ---- */

static int run_builtin(enum builtin b, json_object *args, json_object **ret, struct qga_error *err)
{
    static const char *const sync_keys[] = {"id", NULL};
    static const char *const no_keys[] = {NULL};

    if (b == BUILTIN_PING) {
        if (qga_args_check_known(args, no_keys, err) < 0)
            return -EINVAL;
        *ret = json_object_new_object();
        return *ret ? 0 : -ENOMEM;
    }
    if (qga_args_check_known(args, sync_keys, err) < 0)
        return -EINVAL;
    json_object *id = arg_get(args, "id");
    if (!id || !json_object_is_type(id, json_type_int)) {
        qga_error_set(err, QGA_ERR_INVALID_PARAMETER, "argument 'id' must be an integer");
        return -EINVAL;
    }
    /* Echo the very value, so no integer conversion can change it. */
    *ret = json_object_get(id);
    return 0;
}

static void append_allowed(const struct qga_server *s, char *buf, size_t len)
{
    size_t used = strlen(buf);
    for (unsigned i = BUILTIN_SYNC; i < ELEMENTSOF(builtin_names); i++) {
        int w = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", builtin_names[i]);
        if (w < 0 || (size_t)w >= len - used)
            return;
        used += (size_t)w;
    }
    for (size_t i = 0; i < s->n_cmds; i++) {
        if (!s->cmds[i].allowed_while_frozen || builtin_of(s->cmds[i].name) != BUILTIN_NONE)
            continue;
        int w = snprintf(buf + used, len - used, ", %s", s->cmds[i].name);
        if (w < 0 || (size_t)w >= len - used)
            return;
        used += (size_t)w;
    }
}

/* Run one request; 0 with *ret, or <0 with err. */
static int execute(struct qga_server *s, json_object *req, json_object **ret, bool *delimited,
                   struct qga_error *err)
{
    if (!json_object_is_type(req, json_type_object)) {
        qga_error_set(err, QGA_ERR_GENERIC_ERROR,
                      "a request must be a JSON object like {\"execute\":\"guest-ping\"}");
        return -EINVAL;
    }
    json_object *execute = NULL, *args = NULL;
    json_object_object_foreach(req, k, v)
    {
        if (!strcmp(k, "execute"))
            execute = v;
        else if (!strcmp(k, "arguments"))
            args = v;
        else if (strcmp(k, "id") != 0) {
            qga_error_set(err, QGA_ERR_GENERIC_ERROR,
                          "unexpected member '%.64s' in request (allowed: execute, arguments, "
                          "id)",
                          k);
            return -EINVAL;
        }
    }
    if (!execute || !json_object_is_type(execute, json_type_string)) {
        qga_error_set(err, QGA_ERR_GENERIC_ERROR, "request has no string member 'execute'");
        return -EINVAL;
    }
    if (args && !json_object_is_type(args, json_type_object)) {
        qga_error_set(err, QGA_ERR_INVALID_PARAMETER, "'arguments' must be a JSON object");
        return -EINVAL;
    }
    const char *name = json_object_get_string(execute);

    enum builtin b = builtin_of(name);
    if (b != BUILTIN_NONE) {
        *delimited = b == BUILTIN_SYNC_DELIMITED;
        return run_builtin(b, args, ret, err);
    }

    const struct qga_command *cmd = qga_server_find(s, name);
    if (!cmd || !cmd->handler) {
        qga_error_set(err, QGA_ERR_COMMAND_NOT_FOUND, "The command %.200s has not been found",
                      name);
        return -ENOENT;
    }
    if (!cmd->allowed_while_frozen && frozen(s)) {
        char allowed[256] = "";
        append_allowed(s, allowed, sizeof(allowed));
        qga_error_set(err, QGA_ERR_COMMAND_DISABLED,
                      "command %s is disabled while the guest network is frozen; thaw first "
                      "(allowed while frozen: %s)",
                      cmd->name, allowed);
        return -EBUSY;
    }

    _cleanup_json_ json_object *empty = NULL;
    if (!args) {
        empty = json_object_new_object();
        if (!empty)
            return -ENOMEM;
        args = empty;
    }
    int r = cmd->handler(s->userdata, args, ret, err);
    if (r < 0) {
        if (*ret) {
            json_object_put(*ret);
            *ret = NULL;
        }
        if (!err->desc[0])
            qga_error_set(err, err->cls, "%s failed: %s", cmd->name, strerror(-r));
        return r;
    }
    if (!*ret) {
        *ret = json_object_new_object();
        if (!*ret)
            return -ENOMEM;
    }
    return 0;
}

static int add_owned(json_object *o, const char *key, json_object *v)
{
    if (!v)
        return -ENOMEM;
    if (json_object_object_add(o, key, v) < 0) {
        json_object_put(v);
        return -ENOMEM;
    }
    return 0;
}

static json_object *make_reply(json_object *ret, const struct qga_error *err, json_object *id)
{
    json_object *reply = json_object_new_object();
    if (!reply) {
        json_object_put(ret);
        return NULL;
    }
    int r =
        ret ? add_owned(reply, "return", ret) : add_owned(reply, "error", qga_error_to_json(err));
    if (r == 0 && id)
        r = add_owned(reply, "id", json_object_get(id));
    if (r < 0) {
        json_object_put(reply);
        return NULL;
    }
    return reply;
}

json_object *qga_server_dispatch(struct qga_server *s, json_object *req, bool *delimited)
{
    struct qga_error err;
    qga_error_clear(&err);
    json_object *ret = NULL, *id = NULL;
    *delimited = false;

    s->n_requests++;
    if (json_object_is_type(req, json_type_object))
        json_object_object_get_ex(req, "id", &id);
    if (execute(s, req, &ret, delimited, &err) < 0) {
        s->n_errors++;
        ret = NULL;
        log_debug("qga request refused: %s: %s", qga_error_class_name(err.cls), err.desc);
    }
    return make_reply(ret, &err, id);
}

json_object *qga_server_info(const struct qga_server *s, const char *version)
{
    _cleanup_json_ json_object *o = json_object_new_object();
    json_object *list = json_object_new_array();
    if (!o || add_owned(o, "version", json_object_new_string(version ? version : "")) < 0 ||
        add_owned(o, "supported_commands", list) < 0)
        return NULL;
    bool fz = frozen(s);
    for (size_t i = 0; i < ELEMENTSOF(builtin_names) + s->n_cmds; i++) {
        const char *name;
        bool enabled = true;
        if (i < ELEMENTSOF(builtin_names)) {
            name = builtin_names[i];
            if (!name || qga_server_find(s, name))
                continue;
        } else {
            const struct qga_command *c = &s->cmds[i - ELEMENTSOF(builtin_names)];
            name = c->name;
            enabled = builtin_of(name) != BUILTIN_NONE || !fz || c->allowed_while_frozen;
        }
        json_object *e = json_object_new_object();
        if (!e || json_object_array_add(list, e) < 0) {
            json_object_put(e);
            return NULL;
        }
        if (add_owned(e, "name", json_object_new_string(name)) < 0 ||
            add_owned(e, "enabled", json_object_new_boolean(enabled)) < 0 ||
            add_owned(e, "success-response", json_object_new_boolean(true)) < 0)
            return NULL;
    }
    return TAKE_PTR(o);
}

/* ---- output ---- */

/* All of buf to fd, without SIGPIPE on sockets, waiting at most timeout_ms for a peer that
 * does not read. */
static int send_all(int fd, const char *buf, size_t len, int timeout_ms)
{
    bool sock = true;
    while (len > 0) {
        ssize_t n = sock ? send(fd, buf, len, MSG_NOSIGNAL) : write(fd, buf, len);
        if (n < 0 && sock && errno == ENOTSOCK) {
            sock = false;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int pr = poll(&p, 1, timeout_ms);
            if (pr == 0)
                return -ETIMEDOUT;
            if (pr < 0 && errno != EINTR)
                return negative_errno();
            continue;
        }
        if (n < 0)
            return negative_errno();
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_reply(struct qga_server *s, json_object *reply, bool delimited, int out_fd)
{
    if (!reply)
        return -ENOMEM;
    size_t len;
    const char *txt = json_object_to_json_string_length(
        reply, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (!txt)
        return -ENOMEM;
    if (out_fd < 0)
        return 0;
    const char sentinel = (char)QGA_SENTINEL;
    if (len > SMALL_REPLY) {
        /* A socket image can be most of the guest's spare memory: never copy it. */
        int r = delimited ? send_all(out_fd, &sentinel, 1, s->write_timeout_ms) : 0;
        if (r == 0)
            r = send_all(out_fd, txt, len, s->write_timeout_ms);
        return r < 0 ? r : send_all(out_fd, "\n", 1, s->write_timeout_ms);
    }
    char line[SMALL_REPLY + 2];
    size_t off = 0;
    if (delimited)
        line[off++] = sentinel;
    memcpy(line + off, txt, len);
    off += len;
    line[off++] = '\n';
    return send_all(out_fd, line, off, s->write_timeout_ms);
}

int qga_server_feed(struct qga_server *s, const void *buf, size_t len, int out_fd)
{
    const char *p = buf;
    int handled = 0;
    do {
        size_t chunk = len < QGA_READER_MIN_WINDOW ? len : QGA_READER_MIN_WINDOW;
        int r = qga_reader_feed(&s->reader, p, chunk);
        if (r < 0)
            return r;
        p += chunk;
        len -= chunk;
        for (;;) {
            _cleanup_json_ json_object *req = NULL;
            _cleanup_json_ json_object *reply = NULL;
            struct qga_error err;
            bool delimited = false;
            r = qga_reader_next(&s->reader, &req, &err);
            if (r == 0)
                break;
            if (r == -EBADMSG || r == -EMSGSIZE) {
                s->n_errors++;
                log_debug("qga framing error: %s", err.desc);
                reply = make_reply(NULL, &err, NULL);
            } else if (r < 0) {
                return r;
            } else {
                reply = qga_server_dispatch(s, req, &delimited);
                if (handled < INT_MAX)
                    handled++;
            }
            r = write_reply(s, reply, delimited, out_fd);
            if (r < 0)
                return r;
        }
    } while (len > 0);
    return handled;
}
