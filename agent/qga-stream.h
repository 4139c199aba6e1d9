/* agent/qga-stream.h: the streaming framer of qga JSON over a byte stream.
 *
 * Owns the split of a byte stream into messages, shared by the server (guest) and the client
 * (host). A message starts with '{' (or '[') and is complete when its braces and brackets
 * balance, with strings and escapes respected; newlines and other whitespace between messages
 * are ignored. A 0xFF byte, anywhere, silently discards half-read input (qemu-ga's resync).
 *
 * Parsing is strict JSON (json-c strict mode; raw control characters inside strings are
 * refused by the framer, since json-c would accept them).
 *
 * Everything here is untrusted input: a message over max_bytes or nested deeper than
 * max_depth, and bytes outside any message, give one clear error and then the reader skips
 * to the end of that message (or the next '{', '[' or 0xFF for stray bytes). Memory stays
 * bounded by about 2 * max_bytes whatever arrives. */
#pragma once
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/qga-error.h"

#define QGA_MAX_MESSAGE_BYTES (16u << 20) /* one request or reply, 16 MiB */
#define QGA_MAX_DEPTH         1024        /* nesting of objects and arrays */
#define QGA_SENTINEL          0xFF        /* resync byte (guest-sync-delimited) */
#define QGA_READER_MAX_BYTES  (1u << 30)  /* highest max_bytes accepted (replies with images) */
#define QGA_READER_MIN_WINDOW (64u << 10) /* feed() always takes this much unscanned input */

enum qga_reader_mode {
    QGA_READER_IDLE,    /* between messages */
    QGA_READER_MESSAGE, /* inside a message that is being kept */
    QGA_READER_SKIP,    /* inside a message that is being discarded (over a limit) */
    QGA_READER_GARBAGE, /* after stray bytes, waiting for '{', '[' or 0xFF */
};

/* Caller-owned; plain fields are readable (counters are handy in tests and logs). */
struct qga_reader {
    size_t max_bytes;
    unsigned max_depth;

    /* buf[start, scan) is the current message scanned so far, buf[scan, end) not yet scanned. */
    char *buf;
    size_t cap, start, scan, end;

    enum qga_reader_mode mode;
    uint64_t depth; /* may exceed max_depth while skipping */
    bool in_string, escaped;

    json_tokener *tok;

    uint64_t n_messages;  /* messages returned */
    uint64_t n_errors;    /* errors returned */
    uint64_t n_sentinels; /* 0xFF bytes seen */
    uint64_t n_discarded; /* bytes thrown away (errors, 0xFF, garbage) */
};

/* max_bytes 0 means QGA_MAX_MESSAGE_BYTES (at most QGA_READER_MAX_BYTES), max_depth 0 means
 * QGA_MAX_DEPTH. Never fails; memory is allocated on demand. */
void qga_reader_init(struct qga_reader *r, size_t max_bytes, unsigned max_depth);
/* Free the buffers; the reader may be re-initialised afterwards. */
void qga_reader_free(struct qga_reader *r);
/* Drop all pending input and state (e.g. a new peer connected). */
void qga_reader_reset(struct qga_reader *r);

/* Append input. Call qga_reader_next() until it returns 0 before feeding more: feed refuses
 * with -ENOBUFS when unscanned input would exceed max(max_bytes, QGA_READER_MIN_WINDOW)
 * (then feed smaller chunks). 0, -ENOBUFS or -ENOMEM. */
int qga_reader_feed(struct qga_reader *r, const void *buf, size_t len);

/* Next complete message. Returns 1 and *msg (caller owns; a JSON object or array), 0 when
 * more input is needed, -EBADMSG (bad JSON, stray bytes, nesting over max_depth) or -EMSGSIZE
 * (message over max_bytes) with err filled (class GenericError). After an error the reader
 * has already resynchronised: keep calling. -ENOMEM on allocation failure. */
int qga_reader_next(struct qga_reader *r, json_object **msg, struct qga_error *err);

/* Bytes held right now (scanned partial message plus unscanned input). */
size_t qga_reader_pending(const struct qga_reader *r);
