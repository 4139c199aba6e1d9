/* libFuzzer target for netckptd's policy files (host/policy.h): any bytes through
 * policy_parse (well-formedness, no DTD, the built-in RelaxNG schema, the semantic checks).
 * Nothing may crash or leak; an accepted policy must be within its limits, and a refusal must
 * say why. (DTD refusal is checked by tests/unit/test-policy.c: "<!DOCTYPE" may sit in a
 * comment.) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > POLICY_MAX_FILE + 1)
        return 0;
    struct policy *p = malloc(sizeof(*p));
    struct policy_error *e = malloc(sizeof(*e));
    if (p && e) {
        int r = policy_parse((const char *)data, size, "fuzz.xml", NULL, p, e);
        if (r == 0) {
            if (!p->name[0] || p->n_domains == 0 || p->n_domains > POLICY_MAX_DOMAINS ||
                p->bundle_dir[0] != '/')
                abort();
            if (p->schedule.kind == SCHED_DAILY &&
                (p->schedule.n_times == 0 || p->schedule.n_times > SCHED_MAX_TIMES))
                abort();
            if (p->schedule.kind == SCHED_INTERVAL && p->schedule.interval_s == 0)
                abort();
            for (size_t i = 0; i < p->n_domains; i++)
                policy_matches(p, p->domains[i]);
        } else if (!e->reason[0]) {
            abort(); /* every refusal says why */
        }
    }
    free(p);
    free(e);
    return 0;
}
