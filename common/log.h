/* common/log.h: leveled logging to stderr (the journal when run under systemd).
 * Stateless on purpose: the level comes from $NETCKPT_LOG (err|warn|info|debug, default info),
 * the name from program_invocation_short_name, so no module holds logging state. */
#pragma once
#include "common/macro.h"

enum log_level { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_msg(enum log_level lvl, const char *fmt, ...) _printf_(2, 3);

#define log_err(...)   log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
