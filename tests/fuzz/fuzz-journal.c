/* libFuzzer target: the journal file parser (host/journal) and the gate's name checks
 * (host/gate) over arbitrary bytes. Whatever the parser accepts must be safe to hand to nft. */
#include "host/gate.h"
#include "host/journal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct journal_entry *e = malloc(sizeof(*e));
    if (!e)
        return 0;
    char err[128];
    if (journal_parse((const char *)data, size, e, err, sizeof(err)) == 0) {
        char t[GATE_TABLE_NAME_MAX];
        if (gate_table_name(e->domain, t, sizeof(t)) != 0 || e->n_taps > 16 || e->pid <= 0)
            abort();
        for (size_t i = 0; i < e->n_taps; i++)
            if (!gate_ifname_valid(e->taps[i]))
                abort();
    }
    free(e);

    /* The raw bytes as a name: validation and mapping must never overrun. */
    char name[300];
    size_t n = size < sizeof(name) - 1 ? size : sizeof(name) - 1;
    memcpy(name, data, n);
    name[n] = 0;
    if (gate_ifname_valid(name) && (strlen(name) >= 16 || strchr(name, ' ')))
        abort();
    char t[GATE_TABLE_NAME_MAX];
    if (gate_table_name(name, t, sizeof(t)) == 0)
        for (const char *p = t; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '_'))
                abort();
    return 0;
}
