/* agent/qga-error.c: see qga-error.h. */
#include "agent/qga-error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const class_names[_QGA_ERR_MAX] = {
    [QGA_ERR_GENERIC_ERROR] = "GenericError",
    [QGA_ERR_COMMAND_NOT_FOUND] = "CommandNotFound",
    [QGA_ERR_COMMAND_DISABLED] = "CommandDisabled",
    [QGA_ERR_INVALID_PARAMETER] = "InvalidParameter",
    [QGA_ERR_UNSUPPORTED] = "Unsupported",
    [QGA_ERR_TIMEOUT] = "Timeout",
    [QGA_ERR_BUSY] = "Busy",
    [QGA_ERR_NOT_FOUND] = "NotFound",
};

const char *qga_error_class_name(enum qga_error_class c)
{
    if ((unsigned)c >= _QGA_ERR_MAX)
        return class_names[QGA_ERR_GENERIC_ERROR];
    return class_names[c];
}

bool qga_error_class_from_name(const char *name, enum qga_error_class *out)
{
    for (unsigned i = 0; name && i < _QGA_ERR_MAX; i++)
        if (!strcmp(name, class_names[i])) {
            *out = (enum qga_error_class)i;
            return true;
        }
    *out = QGA_ERR_GENERIC_ERROR;
    return false;
}

void qga_error_clear(struct qga_error *e)
{
    if (!e)
        return;
    e->cls = QGA_ERR_GENERIC_ERROR;
    e->desc[0] = 0;
}

static void verror(struct qga_error *e, enum qga_error_class c, const char *fmt, va_list ap)
    _printf_(3, 0);
static void verror(struct qga_error *e, enum qga_error_class c, const char *fmt, va_list ap)
{
    e->cls = c;
    vsnprintf(e->desc, sizeof(e->desc), fmt, ap);
}

void qga_error_set(struct qga_error *e, enum qga_error_class c, const char *fmt, ...)
{
    if (!e)
        return;
    va_list ap;
    va_start(ap, fmt);
    verror(e, c, fmt, ap);
    va_end(ap);
}

int qga_error_errno(struct qga_error *e, int negerr, const char *fmt, ...)
{
    if (negerr >= 0)
        negerr = -EIO;
    if (!e)
        return negerr;
    va_list ap;
    va_start(ap, fmt);
    verror(e, QGA_ERR_GENERIC_ERROR, fmt, ap);
    va_end(ap);
    size_t l = strlen(e->desc);
    snprintf(e->desc + l, sizeof(e->desc) - l, ": %s", strerror(-negerr));
    return negerr;
}

json_object *qga_error_to_json(const struct qga_error *e)
{
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    json_object *cls = json_object_new_string(qga_error_class_name(e->cls));
    json_object *desc = json_object_new_string(e->desc);
    if (!cls || !desc || json_object_object_add(o, "class", cls) < 0) {
        json_object_put(cls);
        json_object_put(desc);
        json_object_put(o);
        return NULL;
    }
    if (json_object_object_add(o, "desc", desc) < 0) {
        json_object_put(desc);
        json_object_put(o);
        return NULL;
    }
    return o;
}

int qga_error_from_json(json_object *j, struct qga_error *e)
{
    json_object *cls, *desc;
    if (!json_object_is_type(j, json_type_object) || !json_object_object_get_ex(j, "class", &cls) ||
        !json_object_is_type(cls, json_type_string)) {
        qga_error_set(e, QGA_ERR_GENERIC_ERROR, "malformed error reply (no string \"class\")");
        return -EBADMSG;
    }
    const char *d = "(no description)";
    if (json_object_object_get_ex(j, "desc", &desc) && json_object_is_type(desc, json_type_string))
        d = json_object_get_string(desc);
    enum qga_error_class c;
    if (qga_error_class_from_name(json_object_get_string(cls), &c))
        qga_error_set(e, c, "%s", d);
    else
        qga_error_set(e, c, "%s: %s", json_object_get_string(cls), d);
    return 0;
}
