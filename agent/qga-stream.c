/* agent/qga-stream.c: see qga-stream.h.
 *
 * The framer is a byte-level state machine: it only needs to know whether it is inside a
 * string (and after a backslash) and how deep it is, so it can skip an over-limit message to
 * its end with O(1) memory. json-c then parses each complete message in strict mode. */
#include "agent/qga-stream.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SHRINK_ABOVE (1u << 20) /* free the buffer when idle if it grew past this */

void qga_reader_init(struct qga_reader *r, size_t max_bytes, unsigned max_depth)
{
    memset(r, 0, sizeof(*r));
    r->max_bytes = max_bytes ? max_bytes : QGA_MAX_MESSAGE_BYTES;
    if (r->max_bytes > QGA_READER_MAX_BYTES) /* json-c takes an int length */
        r->max_bytes = QGA_READER_MAX_BYTES;
    r->max_depth = max_depth ? max_depth : QGA_MAX_DEPTH;
}

static void reset_state(struct qga_reader *r)
{
    r->mode = QGA_READER_IDLE;
    r->depth = 0;
    r->in_string = r->escaped = false;
}

void qga_reader_free(struct qga_reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->cap = r->start = r->scan = r->end = 0;
    if (r->tok)
        json_tokener_free(r->tok);
    r->tok = NULL;
    reset_state(r);
}

void qga_reader_reset(struct qga_reader *r)
{
    r->n_discarded += r->end - r->start;
    r->start = r->scan = r->end = 0;
    if (r->cap > SHRINK_ABOVE) {
        free(r->buf);
        r->buf = NULL;
        r->cap = 0;
    }
    reset_state(r);
}

size_t qga_reader_pending(const struct qga_reader *r)
{
    return r->end - r->start;
}

int qga_reader_feed(struct qga_reader *r, const void *buf, size_t len)
{
    if (len == 0)
        return 0;
    size_t window = r->max_bytes > QGA_READER_MIN_WINDOW ? r->max_bytes : QGA_READER_MIN_WINDOW;
    if (len > window || r->end - r->scan > window - len)
        return -ENOBUFS;
    if (r->cap - r->end < len && r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->scan -= r->start;
        r->end -= r->start;
        r->start = 0;
    }
    if (r->cap - r->end < len) {
        size_t need = r->end + len;
        size_t ncap = r->cap ? r->cap : 4096;
        while (ncap < need)
            ncap *= 2;
        char *n = realloc(r->buf, ncap);
        if (!n)
            return -ENOMEM;
        r->buf = n;
        r->cap = ncap;
    }
    memcpy(r->buf + r->end, buf, len);
    r->end += len;
    return 0;
}

/* Throw away the scanned part of the current message. */
static void drop_scanned(struct qga_reader *r)
{
    r->n_discarded += r->scan - r->start;
    r->start = r->scan;
}

static int fail(struct qga_reader *r, int code, struct qga_error *err, const char *fmt, ...)
    _printf_(4, 5);
static int fail(struct qga_reader *r, int code, struct qga_error *err, const char *fmt, ...)
{
    r->n_errors++;
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->cls = QGA_ERR_GENERIC_ERROR;
        vsnprintf(err->desc, sizeof(err->desc), fmt, ap);
        va_end(ap);
    }
    return code;
}

static int parse_message(struct qga_reader *r, json_object **msg, struct qga_error *err)
{
    size_t len = r->scan - r->start;
    const char *p = r->buf + r->start;
    r->start = r->scan;
    r->mode = QGA_READER_IDLE;

    if (!r->tok) {
        /* json-c counts its own levels slightly differently; our framer enforces the limit. */
        r->tok = json_tokener_new_ex((int)r->max_depth + 2);
        if (!r->tok)
            return -ENOMEM;
        json_tokener_set_flags(r->tok, JSON_TOKENER_STRICT);
    }
    json_tokener_reset(r->tok);
    json_object *o = json_tokener_parse_ex(r->tok, p, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(r->tok);
    if (!o || jerr != json_tokener_success || json_tokener_get_parse_end(r->tok) != len) {
        size_t at = json_tokener_get_parse_end(r->tok);
        json_object_put(o);
        r->n_discarded += len;
        return fail(r, -EBADMSG, err, "invalid JSON at byte %zu of a %zu-byte message: %s", at, len,
                    jerr == json_tokener_success || jerr == json_tokener_continue
                        ? "trailing or incomplete data"
                        : json_tokener_error_desc(jerr));
    }
    r->n_messages++;
    *msg = o;
    return 1;
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int qga_reader_next(struct qga_reader *r, json_object **msg, struct qga_error *err)
{
    *msg = NULL;
    while (r->scan < r->end) {
        unsigned char c = (unsigned char)r->buf[r->scan];

        if (c == QGA_SENTINEL) {
            /* Resync: whatever was half-read is abandoned, silently. */
            drop_scanned(r);
            r->scan++;
            r->start = r->scan;
            r->n_sentinels++;
            reset_state(r);
            continue;
        }

        switch (r->mode) {
        case QGA_READER_IDLE:
        case QGA_READER_GARBAGE:
            r->scan++;
            if (c == '{' || c == '[') {
                r->start = r->scan - 1;
                r->mode = QGA_READER_MESSAGE;
                r->depth = 1;
                continue;
            }
            r->start = r->scan;
            if (is_space(c) && r->mode == QGA_READER_IDLE)
                continue;
            r->n_discarded++;
            if (r->mode == QGA_READER_GARBAGE)
                continue;
            r->mode = QGA_READER_GARBAGE;
            return fail(r, -EBADMSG, err,
                        "unexpected byte 0x%02x outside a JSON object; skipping to the next '{' "
                        "or 0xFF",
                        c);

        case QGA_READER_MESSAGE:
        case QGA_READER_SKIP:
            if (r->in_string && !r->escaped) {
                /* Fast path through string content, where the bulk (base64) lives. */
                const unsigned char *p = (const unsigned char *)r->buf + r->scan;
                const unsigned char *q = (const unsigned char *)r->buf + r->end;
                const unsigned char *p0 = p;
                while (p < q && *p >= 0x20 && *p != '"' && *p != '\\' && *p != QGA_SENTINEL)
                    p++;
                if (p != p0) {
                    r->scan += (size_t)(p - p0);
                    if (r->mode == QGA_READER_SKIP) {
                        drop_scanned(r);
                    } else if (r->scan - r->start > r->max_bytes) {
                        r->mode = QGA_READER_SKIP;
                        drop_scanned(r);
                        return fail(r, -EMSGSIZE, err,
                                    "JSON message larger than %zu bytes; discarding it",
                                    r->max_bytes);
                    }
                    continue;
                }
            }
            r->scan++;
            if (r->in_string) {
                if (r->escaped)
                    r->escaped = false;
                else if (c == '\\')
                    r->escaped = true;
                else if (c == '"')
                    r->in_string = false;
                else if (c < 0x20 && r->mode == QGA_READER_MESSAGE) {
                    /* JSON forbids them and json-c would let them through. */
                    r->mode = QGA_READER_SKIP;
                    drop_scanned(r);
                    return fail(r, -EBADMSG, err,
                                "raw control character 0x%02x inside a JSON string; discarding "
                                "the message",
                                c);
                }
            } else if (c == '"') {
                r->in_string = true;
            } else if (c == '{' || c == '[') {
                r->depth++;
                if (r->depth > r->max_depth && r->mode == QGA_READER_MESSAGE) {
                    r->mode = QGA_READER_SKIP;
                    drop_scanned(r);
                    return fail(r, -EBADMSG, err,
                                "JSON nested deeper than %u levels; discarding the message",
                                r->max_depth);
                }
            } else if (c == '}' || c == ']') {
                r->depth--;
            }

            if (r->mode == QGA_READER_SKIP) {
                drop_scanned(r);
                if (r->depth == 0)
                    reset_state(r);
                continue;
            }
            if (r->scan - r->start > r->max_bytes) {
                r->mode = QGA_READER_SKIP;
                drop_scanned(r);
                if (r->depth == 0)
                    reset_state(r);
                return fail(r, -EMSGSIZE, err, "JSON message larger than %zu bytes; discarding it",
                            r->max_bytes);
            }
            if (r->depth == 0)
                return parse_message(r, msg, err);
            continue;
        }
    }

    /* All input scanned: keep only the partial message, and give memory back when idle. */
    if (r->start == r->end) {
        r->start = r->scan = r->end = 0;
        if (r->cap > SHRINK_ABOVE) {
            free(r->buf);
            r->buf = NULL;
            r->cap = 0;
        }
    }
    return 0;
}
