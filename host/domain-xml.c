/* host/domain-xml.c: see domain-xml.h. */
#include "host/domain-xml.h"
#include "common/macro.h"
#include "common/util.h"

#include <limits.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

struct parse_state {
    bool had_dtd;
    char msg[512];
};

/* A DTD could declare entities (expansion bombs) or pull external files: stop parsing the
 * moment one starts, before any declaration inside it is read. */
static void refuse_dtd(void *ctx, const xmlChar *name, const xmlChar *ext_id, const xmlChar *sys_id)
{
    xmlParserCtxtPtr ctxt = ctx;
    struct parse_state *ps = ctxt->_private;
    ps->had_dtd = true;
    xmlStopParser(ctxt);
}

/* Keep libxml2 quiet (no stderr from a library) and remember the first error. */
static void record_error(void *ctx, xmlErrorPtr e)
{
    xmlParserCtxtPtr ctxt = ctx;
    struct parse_state *ps = ctxt ? ctxt->_private : NULL;
    if (!ps || ps->msg[0] || !e || !e->message)
        return;
    snprintf(ps->msg, sizeof(ps->msg), "line %d: %s", e->line, e->message);
    size_t n = strlen(ps->msg);
    while (n > 0 && (ps->msg[n - 1] == '\n' || ps->msg[n - 1] == ' '))
        ps->msg[--n] = 0;
}

bool nc_xml_is_elem(const xmlNode *n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name);
}

xmlNode *nc_xml_child(const xmlNode *n, const char *name)
{
    for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
        if (nc_xml_is_elem(c, name))
            return c;
    return NULL;
}

int nc_xml_attr(const xmlNode *n, const char *name, char *buf, size_t len)
{
    buf[0] = 0;
    xmlChar *v = n ? xmlGetProp(n, (const xmlChar *)name) : NULL;
    if (!v)
        return 0;
    size_t l = strlen((const char *)v);
    int r = l < len ? 1 : -ENOBUFS;
    if (r > 0)
        memcpy(buf, v, l + 1);
    xmlFree(v);
    return r;
}

/* Copy an attribute into buf; "" when absent. Returns false when it does not fit. */
static bool attr(const xmlNode *n, const char *name, char *buf, size_t len)
{
    return nc_xml_attr(n, name, buf, len) >= 0;
}

int nc_xml_text(const xmlNode *n, char *buf, size_t len)
{
    buf[0] = 0;
    xmlChar *v = n ? xmlNodeGetContent(n) : NULL;
    if (!v)
        return 0;
    const char *s = (const char *)v;
    while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
        s++;
    size_t l = strlen(s);
    while (l > 0 && (s[l - 1] == ' ' || s[l - 1] == '\n' || s[l - 1] == '\t' || s[l - 1] == '\r'))
        l--;
    int r = l < len ? 1 : -ENOBUFS;
    if (r > 0) {
        memcpy(buf, s, l);
        buf[l] = 0;
    }
    xmlFree(v);
    return r;
}

/* Trimmed text into buf; "" when absent. Returns false when it does not fit. */
static bool text(const xmlNode *n, char *buf, size_t len)
{
    return nc_xml_text(n, buf, len) >= 0;
}

static int parse_iface(const xmlNode *n, struct domain_iface *ifc, char *err, size_t errlen)
{
    memset(ifc, 0, sizeof(*ifc));
    if (!attr(n, "type", ifc->type, sizeof(ifc->type)) ||
        !attr(nc_xml_child(n, "target"), "dev", ifc->tap, sizeof(ifc->tap)) ||
        !attr(nc_xml_child(n, "mac"), "address", ifc->mac, sizeof(ifc->mac)) ||
        !attr(nc_xml_child(n, "model"), "type", ifc->model, sizeof(ifc->model))) {
        set_errbuf(err, errlen,
                   "domain XML: an <interface> has an overlong type, target dev, mac "
                   "or model (tap names have at most 15 characters)");
        return -EINVAL;
    }
    for (char *p = ifc->mac; *p; p++)
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    return 0;
}

int nc_xml_read_safe(const char *buf, size_t len, const char *what, xmlDocPtr *out, char *err,
                     size_t errlen)
{
    *out = NULL;
    if (len > INT_MAX)
        return -EFBIG;
    struct parse_state ps = {0};
    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    if (!ctxt)
        return -ENOMEM;
    ctxt->_private = &ps;
    ctxt->sax->internalSubset = refuse_dtd;
    ctxt->sax->serror = record_error;
    /* No XML_PARSE_NOENT (entities stay unexpanded), no DTD loading, no network. */
    xmlDocPtr doc =
        xmlCtxtReadMemory(ctxt, buf, (int)len, what, NULL, XML_PARSE_NONET | XML_PARSE_NOCDATA);
    int r = 0;
    if (ps.had_dtd) {
        set_errbuf(err, errlen,
                   "%s: refused, it has a DTD (<!DOCTYPE>); entities and external subsets are "
                   "not accepted",
                   what);
        r = -EINVAL;
    } else if (!doc) {
        set_errbuf(err, errlen, "%s: not well-formed: %s", what,
                   ps.msg[0] ? ps.msg : "parse error");
        r = -EINVAL;
    }
    xmlFreeParserCtxt(ctxt);
    if (r < 0) {
        xmlFreeDoc(doc);
        return r;
    }
    *out = doc;
    return 0;
}

int domain_xml_parse(const char *xml, const char *want_agent_name, struct domain_info *out,
                     char *err, size_t errlen)
{
    const char *want = want_agent_name && *want_agent_name ? want_agent_name : DOMAIN_AGENT_NAME;
    memset(out, 0, sizeof(*out));
    set_errbuf(err, errlen, "%s", "");
    if (!xml) {
        set_errbuf(err, errlen, "domain XML: none given");
        return -EINVAL;
    }
    size_t len = strlen(xml);
    if (len > DOMAIN_XML_MAX) {
        set_errbuf(err, errlen, "domain XML: %zu bytes, over the %u byte limit", len,
                   DOMAIN_XML_MAX);
        return -EINVAL;
    }
    xmlDocPtr doc;
    int r = nc_xml_read_safe(xml, len, "domain XML", &doc, err, errlen);
    if (r < 0)
        return r;

    xmlNode *root = xmlDocGetRootElement(doc);
    if (!nc_xml_is_elem(root, "domain")) {
        set_errbuf(err, errlen, "domain XML: the root element is <%s>, not <domain>",
                   root ? (const char *)root->name : "");
        xmlFreeDoc(doc);
        return -EINVAL;
    }
    if (!text(nc_xml_child(root, "name"), out->name, sizeof(out->name)) ||
        !text(nc_xml_child(root, "uuid"), out->uuid, sizeof(out->uuid))) {
        set_errbuf(err, errlen, "domain XML: <name> or <uuid> is too long");
        xmlFreeDoc(doc);
        return -EINVAL;
    }
    if (!out->name[0]) {
        set_errbuf(err, errlen, "domain XML: <domain> has no <name>");
        xmlFreeDoc(doc);
        return -EINVAL;
    }

    xmlNode *devices = nc_xml_child(root, "devices");
    size_t n_taps = 0, n_seen = 0;
    for (xmlNode *d = devices ? devices->children : NULL; d; d = d->next) {
        if (nc_xml_is_elem(d, "interface")) {
            n_seen++;
            if (out->n_ifaces == DOMAIN_MAX_IFACES) {
                out->n_untracked++; /* more than we gate: reported by domain_info_ungated() */
                continue;
            }
            struct domain_iface *ifc = &out->ifaces[out->n_ifaces];
            r = parse_iface(d, ifc, err, errlen);
            if (r < 0) {
                xmlFreeDoc(doc);
                return r;
            }
            out->n_ifaces++;
            if (ifc->tap[0])
                n_taps++;
        } else if (nc_xml_is_elem(d, "channel") && !out->agent_name[0]) {
            xmlNode *target = nc_xml_child(d, "target");
            char ttype[16], tname[64];
            if (!attr(target, "type", ttype, sizeof(ttype)) ||
                !attr(target, "name", tname, sizeof(tname)))
                continue;
            if (strcmp(ttype, "virtio") != 0 || strcmp(tname, want) != 0)
                continue;
            snprintf(out->agent_name, sizeof(out->agent_name), "%s", tname);
            out->agent_is_qga_name = !strcmp(tname, DOMAIN_QGA_NAME);
            attr(target, "state", out->agent_state, sizeof(out->agent_state));
            char ctype[16];
            attr(d, "type", ctype, sizeof(ctype));
            if (!strcmp(ctype, "unix")) {
                xmlNode *src = nc_xml_child(d, "source");
                if (!attr(src, "path", out->agent_socket, sizeof(out->agent_socket)) ||
                    !attr(src, "mode", out->agent_source_mode, sizeof(out->agent_source_mode))) {
                    out->agent_socket[0] = 0;
                    out->agent_source_mode[0] = 0;
                }
            }
        }
    }
    xmlFreeDoc(doc);

    if (n_taps == 0) {
        if (n_seen > 0)
            set_errbuf(err, errlen,
                       "domain '%s' has %zu <interface> but none with a tap device (<target "
                       "dev='...'/>); start the domain so libvirt assigns one, or use a tap you "
                       "created:\n  <interface type='ethernet'>\n    <target dev='tap0' "
                       "managed='no'/>\n    <model type='virtio'/>\n  </interface>",
                       out->name, n_seen);
        else
            set_errbuf(err, errlen,
                       "domain '%s' has no network interface, so there is no tap to gate; add one "
                       "under <devices>, e.g.:\n  <interface type='ethernet'>\n    <target "
                       "dev='tap0' managed='no'/>\n    <model type='virtio'/>\n  </interface>",
                       out->name);
        return -ENODEV;
    }
    if (!out->agent_name[0]) {
        set_errbuf(err, errlen,
                   "domain '%s' has no agent channel named '%s'; add under <devices>:\n"
                   "  <channel type='unix'>\n    <source mode='bind'/>\n"
                   "    <target type='virtio' name='%s'/>\n  </channel>",
                   out->name, want, want);
        return -ENOENT;
    }
    return 0;
}

size_t domain_info_taps(const struct domain_info *di, const char *taps[], size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < di->n_ifaces && n < max; i++)
        if (di->ifaces[i].tap[0])
            taps[n++] = di->ifaces[i].tap;
    return n;
}

size_t domain_info_ungated(const struct domain_info *di)
{
    size_t n = di->n_untracked;
    for (size_t i = 0; i < di->n_ifaces; i++)
        if (!di->ifaces[i].tap[0])
            n++;
    return n;
}
