/* agent/qga-server.h: the qga server half: command table, dispatch, replies.
 *
 * Transport-agnostic: the caller reads bytes from wherever (virtio-serial, UNIX or vsock
 * socket) and hands them to qga_server_feed(), which parses with agent/qga-stream.h,
 * dispatches through the caller's command table and writes replies to out_fd, one compact
 * JSON object plus "\n" each. guest-sync, guest-sync-delimited and guest-ping are built in
 * (the table may list them too, with or without a handler; the built-in wins).
 *
 * Request:  {"execute":"NAME", "arguments":{...}?, "id":ANY?}
 * Reply:    {"return":VALUE, "id":ANY?}  or  {"error":{"class":"..","desc":".."}, "id":ANY?}
 * guest-sync-delimited's reply is preceded by one 0xFF byte. */
#pragma once
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/qga-error.h"
#include "agent/qga-stream.h"

/* Return 0 and set *ret (owned by the server afterwards; NULL means {}), or <0 and fill err
 * (an unfilled err becomes GenericError with strerror). args is never NULL: an absent
 * "arguments" is passed as an empty object. args is borrowed. */
typedef int (*qga_handler)(void *userdata, json_object *args, json_object **ret,
                           struct qga_error *err);

struct qga_command {
    const char *name;
    qga_handler handler; /* may be NULL for the built-ins */
    bool allowed_while_frozen;
};

#define QGA_SERVER_WRITE_TIMEOUT_MS 10000

/* Caller-owned. */
struct qga_server {
    const struct qga_command *cmds; /* borrowed; must outlive the server */
    size_t n_cmds;
    void *userdata;
    bool (*is_frozen)(void *userdata); /* NULL: never frozen */
    int write_timeout_ms;              /* bound on a blocked peer; default 10 s */
    struct qga_reader reader;

    uint64_t n_requests, n_errors; /* stats */
};

/* -EINVAL if the table has a duplicate or empty name, or a non-built-in without handler. */
int qga_server_init(struct qga_server *s, const struct qga_command *table, size_t n, void *userdata,
                    bool (*is_frozen)(void *userdata));
void qga_server_free(struct qga_server *s);
/* Drop partial input (a new host connection). */
void qga_server_reset(struct qga_server *s);

/* Parse buf, dispatch every complete request, write each reply to out_fd. Framing errors get
 * an error reply too (no id) and the stream resynchronises. out_fd < 0 drops the replies (for
 * fuzzing). Returns the number of requests handled, or -errno if writing to out_fd failed or
 * timed out (the caller should reconnect and reset). */
int qga_server_feed(struct qga_server *s, const void *buf, size_t len, int out_fd);

/* Dispatch one parsed request (borrowed) and build its reply (caller owns). *delimited is set
 * when the reply must be preceded by 0xFF. Never NULL except on ENOMEM. */
json_object *qga_server_dispatch(struct qga_server *s, json_object *req, bool *delimited);

/* Look a command up in the table (NULL if absent; built-ins not listed are absent). */
const struct qga_command *qga_server_find(const struct qga_server *s, const char *name);

/* qemu-ga style guest-info value: {"version":V,"supported_commands":[{"name":..,
 * "enabled":bool,"success-response":true},...]}, enabled false for commands refused right
 * now (frozen). Built-ins are always listed. NULL on ENOMEM. */
json_object *qga_server_info(const struct qga_server *s, const char *version);

/* Argument helpers for handlers. Each returns 1 when the key was present and valid (out set),
 * 0 when absent and not required (out untouched), or -EINVAL with err filled
 * (InvalidParameter, naming the key and the expected type/range). */
int qga_arg_int(json_object *args, const char *key, bool required, int64_t min, int64_t max,
                int64_t *out, struct qga_error *err);
int qga_arg_bool(json_object *args, const char *key, bool required, bool *out,
                 struct qga_error *err);
/* *out is borrowed from args. */
int qga_arg_string(json_object *args, const char *key, bool required, size_t max_len,
                   const char **out, struct qga_error *err);
/* type is json_type_object or json_type_array; *out is borrowed from args. */
int qga_arg_json(json_object *args, const char *key, bool required, json_type type,
                 json_object **out, struct qga_error *err);
/* -EINVAL with InvalidParameter if args has a key not in known (NULL-terminated). */
int qga_args_check_known(json_object *args, const char *const *known, struct qga_error *err);
