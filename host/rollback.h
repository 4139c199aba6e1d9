/* host/rollback.h: rollback safety for the real transaction ops (host/txn-real.h).
 *
 * Owns the glue between the restore and the modules that make a rollback safe: recording
 * each checkpoint and restore in the domain's history (host/history.h), deciding from it
 * whether a restore is a rollback, and, for a rollback with --stale=auto, resetting every
 * connection of the image in the guest (guest-net-reset-stale by image id, after a thaw
 * without the window probe) and probing the peers so that the reset reaches them
 * (host/peer-probe.h). The functions have txn_ops signatures; ud is a struct txn_real.
 * See docs/rollback.md. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "host/bundle.h"
#include "host/transaction.h"

void rollback_history_record(void *ud, enum txn_history_event ev, const struct manifest *m);
void rollback_decide(void *ud, const struct manifest *m, bool vm_active, struct txn_rollback *out);
/* Keeps the agent's reply in the txn_real (rollback_reset) for rollback_mark_report(). */
int rollback_reset_image(void *ud, json_object *image, int *n_reset, int *probes, char *err,
                         size_t errlen);
/* Mark the connections the reset reply lists as "reset" (reset_because "rollback") in a
 * tap-watch report, and fix its counts. */
void rollback_mark_report(json_object *report, json_object *reset_reply);
