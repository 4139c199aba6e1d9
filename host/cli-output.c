/* host/cli-output.c: output helpers shared by the command handlers (see cli.h). */
#include "host/cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void cli_print_json(json_object *obj)
{
    const char *s = json_object_to_json_string_ext(
        obj, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
    fputs(s, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    json_object_put(obj);
}

void cli_out(const struct cli_ctx *ctx, const char *fmt, ...)
{
    if (ctx->quiet || ctx->json)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
}

static void human_bytes(uint64_t b, char *buf, size_t len)
{
    if (b >= (1ull << 30))
        snprintf(buf, len, "%.1f GiB", (double)b / (double)(1ull << 30));
    else if (b >= (1ull << 20))
        snprintf(buf, len, "%.1f MiB", (double)b / (double)(1ull << 20));
    else if (b >= 1024)
        snprintf(buf, len, "%.1f KiB", (double)b / 1024.0);
    else
        snprintf(buf, len, "%llu B", (unsigned long long)b);
}

void cli_progress(const struct cli_ctx *ctx, const char *step, uint64_t done, uint64_t total)
{
    if (!ctx->tty || ctx->quiet)
        return;
    char d[32], t[32];
    human_bytes(done, d, sizeof(d));
    if (total && done <= total) {
        human_bytes(total, t, sizeof(t));
        fprintf(stderr, "\r\033[K%s: %3u%% (%s of %s)", step, (unsigned)(done * 100 / total), d, t);
    } else {
        fprintf(stderr, "\r\033[K%s: %s", step, d);
    }
    fflush(stderr);
}

void cli_progress_done(const struct cli_ctx *ctx)
{
    if (!ctx->tty || ctx->quiet)
        return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
}

json_object *cli_jget(json_object *o, const char *k)
{
    json_object *v = NULL;
    return o && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

const char *cli_jstr(json_object *o, const char *k, const char *dflt)
{
    json_object *v = cli_jget(o, k);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : dflt;
}

json_object *cli_error_json(int code, const char *message)
{
    json_object *o = json_object_new_object();
    json_object *e = json_object_new_object();
    json_object_object_add(e, "code", json_object_new_int(code));
    json_object_object_add(e, "name", json_object_new_string(nc_exit_name(code)));
    json_object_object_add(e, "message", json_object_new_string(message ? message : ""));
    json_object_object_add(o, "error", e);
    return o;
}
