/* libFuzzer target for the host's untrusted XML: the first byte picks the parser (even: a
 * domain's XML through domain_xml_parse under both agent names; odd: a bundle manifest through
 * manifest_from_xml, which validates against the built-in RelaxNG schema), the rest is the
 * document. Nothing may crash, leak, or accept a DTD. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/bundle.h"
#include "host/domain-xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return 0;
    char *xml = malloc(size);
    if (!xml)
        return 0;
    memcpy(xml, data + 1, size - 1);
    xml[size - 1] = 0;
    char err[1024];
    if ((data[0] & 1) == 0) {
        struct domain_info *di = malloc(sizeof(*di));
        if (di) {
            int r = domain_xml_parse(xml, NULL, di, err, sizeof(err));
            if (r == 0 && (!di->name[0] || di->n_ifaces > DOMAIN_MAX_IFACES))
                abort();
            domain_xml_parse(xml, DOMAIN_QGA_NAME, di, err, sizeof(err));
            free(di);
        }
    } else {
        struct manifest *m = malloc(sizeof(*m));
        if (m) {
            int r = manifest_from_xml(xml, strlen(xml), m, err, sizeof(err));
            if (r == 0 && (m->n_files > BUNDLE_MAX_FILES || m->n_taps > BUNDLE_MAX_TAPS))
                abort();
            if (r == 0 && strstr(xml, "<!DOCTYPE"))
                abort();
            free(m);
        }
    }
    free(xml);
    return 0;
}
