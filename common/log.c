/* common/log.c: see log.h. */
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

static enum log_level max_level(void)
{
    const char *e = getenv("NETCKPT_LOG");
    if (!e)
        return LOG_LVL_INFO;
    if (!strcmp(e, "debug"))
        return LOG_LVL_DEBUG;
    if (!strcmp(e, "warn"))
        return LOG_LVL_WARN;
    if (!strcmp(e, "err"))
        return LOG_LVL_ERR;
    return LOG_LVL_INFO;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    if (lvl > max_level())
        return;
    int saved = errno;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* One write per line so concurrent writers do not interleave. */
    char out[2200];
    int n = snprintf(out, sizeof(out), "%s: %s: %s\n", program_invocation_short_name, names[lvl],
                     line);
    if (n > 0)
        (void)!write(STDERR_FILENO, out, (size_t)n < sizeof(out) ? (size_t)n : sizeof(out) - 1);
    errno = saved;
}
