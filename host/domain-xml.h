/* host/domain-xml.h: what netckpt needs from a domain's XML (live or inactive), parsed with
 * libxml2 safely: no network, no entity substitution, documents with a DTD are refused, size
 * limited. The XML comes from libvirt but may be user supplied (a bundle's domain.xml), so it
 * is treated as untrusted. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include <libxml/tree.h>

#define DOMAIN_MAX_IFACES 16
#define DOMAIN_XML_MAX    (4u << 20)
#define DOMAIN_AGENT_NAME "org.netckpt.agent.0"
#define DOMAIN_QGA_NAME   "org.qemu.guest_agent.0"

struct domain_iface {
    char type[16];  /* network, bridge, ethernet, user, ... */
    char tap[16];   /* <target dev>, "" when libvirt has not assigned one (inactive XML) */
    char mac[18];   /* lowercase aa:bb:cc:dd:ee:ff or "" */
    char model[32]; /* virtio, e1000, ... or "" */
};

struct domain_info {
    char name[256];
    char uuid[37];
    struct domain_iface ifaces[DOMAIN_MAX_IFACES];
    size_t n_ifaces;
    char agent_name[64];       /* the virtio channel target name found, "" when none */
    char agent_socket[4096];   /* its UNIX socket (<source path>), "" when not a unix channel */
    bool agent_is_qga_name;    /* the channel is org.qemu.guest_agent.0 */
    char agent_state[16];      /* <target state>: connected, disconnected or "" */
    char agent_source_mode[8]; /* bind or connect, "" when not a unix channel */
    size_t n_untracked;        /* <interface>s past DOMAIN_MAX_IFACES: counted as ungated */
};

/* Parse xml into out, looking for the agent channel want_agent_name (NULL: the netckpt name).
 * Returns 0 when the domain has a tap and the channel; otherwise out is still filled as far as
 * possible and the return is:
 *   -EINVAL  malformed or refused XML (DTD, too large, not a <domain>);
 *   -ENODEV  no interface with a tap device (err shows the <interface> XML to add);
 *   -ENOENT  no agent channel of that name (err shows the <channel> XML to add).
 * err (may be NULL) gets a one-paragraph message. */
int domain_xml_parse(const char *xml, const char *want_agent_name, struct domain_info *out,
                     char *err, size_t errlen);

/* Interfaces without a tap (user-mode, vhost-user, or not yet started) and those past
 * DOMAIN_MAX_IFACES: the gate cannot hold their traffic, so a checkpoint should refuse or
 * warn. Returns their count. */
size_t domain_info_ungated(const struct domain_info *di);

/* The taps of di (non-empty <target dev>) into taps[], at most max. Returns the count. */
size_t domain_info_taps(const struct domain_info *di, const char *taps[], size_t max);

/* Parse untrusted XML with libxml2 the way this module does (no network, no entity
 * substitution, a DTD refused before anything in it is read; errors kept off stderr). what
 * names the document in messages. Caller frees *out with xmlFreeDoc. 0 or -EINVAL/-EFBIG. */
int nc_xml_read_safe(const char *buf, size_t len, const char *what, xmlDocPtr *out, char *err,
                     size_t errlen);
/* Small DOM helpers shared with host/bundle.c. True when n is an element called name. */
bool nc_xml_is_elem(const xmlNode *n, const char *name);
/* The first child element of n named name, or NULL (n may be NULL). */
xmlNode *nc_xml_child(const xmlNode *n, const char *name);
/* Copy attribute name of n into buf: 1 when copied, 0 when absent (or n NULL), -ENOBUFS when
 * it does not fit; buf is "" unless 1. */
int nc_xml_attr(const xmlNode *n, const char *name, char *buf, size_t len);
/* The same for n's text content, surrounding whitespace trimmed. */
int nc_xml_text(const xmlNode *n, char *buf, size_t len);
