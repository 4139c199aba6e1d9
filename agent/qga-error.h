/* agent/qga-error.h: qga error classes and the error value every agent/ function fills.
 *
 * Owns the mapping between our error classes and the wire names that qemu-ga uses in
 * {"error":{"class":"...","desc":"..."}}. A struct qga_error is caller-owned and fixed-size,
 * so filling one never allocates. */
#pragma once
#include <json-c/json.h>
#include <stdbool.h>

#include "common/macro.h"

enum qga_error_class {
    QGA_ERR_GENERIC_ERROR,     /* "GenericError" */
    QGA_ERR_COMMAND_NOT_FOUND, /* "CommandNotFound" */
    QGA_ERR_COMMAND_DISABLED,  /* "CommandDisabled" (e.g. while the network is frozen) */
    QGA_ERR_INVALID_PARAMETER, /* "InvalidParameter" */
    QGA_ERR_UNSUPPORTED,       /* "Unsupported" */
    QGA_ERR_TIMEOUT,           /* "Timeout" */
    QGA_ERR_BUSY,              /* "Busy" (e.g. freeze while already frozen) */
    QGA_ERR_NOT_FOUND,         /* "NotFound" (e.g. an unknown image_id) */
    _QGA_ERR_MAX,
};

#define QGA_ERROR_DESC_MAX 512

struct qga_error {
    enum qga_error_class cls;
    char desc[QGA_ERROR_DESC_MAX];
};

/* Fill e (may be NULL: then nothing happens). desc is truncated to fit. */
void qga_error_set(struct qga_error *e, enum qga_error_class c, const char *fmt, ...)
    _printf_(3, 4);
/* GenericError with "<fmt>: <strerror(-negerr)>"; returns negerr so handlers can
 * `return qga_error_errno(err, r, "...")`. */
int qga_error_errno(struct qga_error *e, int negerr, const char *fmt, ...) _printf_(3, 4);
/* Reset to GenericError with an empty desc. */
void qga_error_clear(struct qga_error *e);

/* Wire name of a class ("GenericError" for out-of-range values). */
const char *qga_error_class_name(enum qga_error_class c);
/* Class for a wire name; unknown names map to QGA_ERR_GENERIC_ERROR and return false. */
bool qga_error_class_from_name(const char *name, enum qga_error_class *out);

/* {"class":"...","desc":"..."} (the value of a reply's "error" member). NULL on ENOMEM. */
json_object *qga_error_to_json(const struct qga_error *e);
/* Parse the value of a reply's "error" member. Unknown classes become GenericError with the
 * wire class kept in desc. -EBADMSG if j is not an object with a string "class". */
int qga_error_from_json(json_object *j, struct qga_error *e);

/* Cleanup helper for json-c objects: `_cleanup_json_ json_object *o = NULL;`. */
static inline void qga_json_putp(json_object **o)
{
    if (*o)
        json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(qga_json_putp)
