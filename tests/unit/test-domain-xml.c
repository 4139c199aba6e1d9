/* Unit tests of host/domain-xml: interfaces of every type, the agent channel under both names,
 * clear errors for a missing tap or channel, and hostile XML (entity bombs, external DTDs and
 * entities, oversized input) refused without expansion or network access. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/util.h"
#include "host/domain-xml.h"
#include "version.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *load(const char *name)
{
    const char *src = getenv("NETCKPT_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/tests/unit/data/%s", src ? src : NETCKPT_SOURCE_DIR, name);
    char *buf = NULL;
    int r = read_file(path, 1 << 20, &buf, NULL);
    if (r < 0)
        fail_msg("cannot read %s: %s", path, strerror(-r));
    return buf;
}

static int parse(const char *name, const char *want, struct domain_info *di, char *err,
                 size_t errlen)
{
    char *xml = load(name);
    int r = domain_xml_parse(xml, want, di, err, errlen);
    free(xml);
    return r;
}

static void test_ethernet(void **state)
{
    struct domain_info di;
    char err[1024];
    assert_int_equal(parse("domain-ethernet.xml", NULL, &di, err, sizeof(err)), 0);
    assert_string_equal(di.name, "vm-eth");
    assert_string_equal(di.uuid, "6f1b7c7e-2a55-4a0e-9a43-1c2d3e4f5a6b");
    assert_int_equal(di.n_ifaces, 1);
    assert_string_equal(di.ifaces[0].type, "ethernet");
    assert_string_equal(di.ifaces[0].tap, "nctap0");
    assert_string_equal(di.ifaces[0].mac, "52:54:00:ab:cd:01"); /* lowercased */
    assert_string_equal(di.ifaces[0].model, "virtio");
    assert_string_equal(di.agent_name, "org.netckpt.agent.0");
    assert_false(di.agent_is_qga_name);
    assert_string_equal(di.agent_state, "connected");
    assert_string_equal(di.agent_source_mode, "bind");
    assert_string_equal(di.agent_socket, "/var/lib/netckpt/libvirt/channel/target/"
                                         "domain-1-vm-eth/org.netckpt.agent.0");
    const char *taps[4];
    assert_int_equal(domain_info_taps(&di, taps, 4), 1);
    assert_string_equal(taps[0], "nctap0");
    assert_int_equal(domain_info_ungated(&di), 0);
}

static void test_bridge(void **state)
{
    struct domain_info di;
    assert_int_equal(parse("domain-bridge.xml", NULL, &di, NULL, 0), 0);
    assert_int_equal(di.n_ifaces, 2);
    assert_string_equal(di.ifaces[0].type, "bridge");
    assert_string_equal(di.ifaces[0].tap, "vnet3");
    assert_string_equal(di.ifaces[0].model, "e1000");
    assert_string_equal(di.ifaces[1].tap, "vnet4");
    assert_string_equal(di.ifaces[1].mac, "52:54:00:00:00:03");
    assert_string_equal(di.agent_socket, "/run/br.sock");
    assert_string_equal(di.agent_state, "");
}

static void test_network_pty_channel(void **state)
{
    struct domain_info di;
    assert_int_equal(parse("domain-network.xml", NULL, &di, NULL, 0), 0);
    assert_string_equal(di.ifaces[0].type, "network");
    assert_string_equal(di.ifaces[0].tap, "vnet0");
    assert_string_equal(di.agent_name, "org.netckpt.agent.0");
    assert_string_equal(di.agent_socket, ""); /* a pty: only libvirt's stream reaches it */
    assert_string_equal(di.agent_state, "disconnected");
}

static void test_no_tap(void **state)
{
    struct domain_info di;
    char err[1024];
    assert_int_equal(parse("domain-notap.xml", NULL, &di, err, sizeof(err)), -ENODEV);
    assert_non_null(strstr(err, "vm-notap"));
    assert_non_null(strstr(err, "<target dev="));
    assert_non_null(strstr(err, "<interface type='ethernet'>"));
    /* still filled as far as possible */
    assert_int_equal(di.n_ifaces, 1);
    assert_string_equal(di.ifaces[0].tap, "");
    assert_int_equal(domain_info_ungated(&di), 1);

    assert_int_equal(parse("domain-nonet.xml", NULL, &di, err, sizeof(err)), -ENODEV);
    assert_non_null(strstr(err, "no network interface"));
    assert_non_null(strstr(err, "<interface type='ethernet'>"));
}

/* A domain with more interfaces than the gate tracks: the extra ones count as ungated, so a
 * checkpoint cannot think every tap is held. */
static void test_too_many_ifaces(void **state)
{
    (void)state;
    char xml[8192];
    size_t n = (size_t)snprintf(xml, sizeof(xml), "<domain><name>many</name><devices>");
    for (int i = 0; i < DOMAIN_MAX_IFACES + 2; i++)
        n += (size_t)snprintf(xml + n, sizeof(xml) - n,
                              "<interface type='ethernet'><target dev='tap%d'/></interface>", i);
    snprintf(xml + n, sizeof(xml) - n,
             "<channel type='unix'><source mode='bind' path='/tmp/a.sock'/>"
             "<target type='virtio' name='org.netckpt.agent.0'/></channel></devices></domain>");
    struct domain_info di;
    char err[512];
    assert_int_equal(domain_xml_parse(xml, NULL, &di, err, sizeof(err)), 0);
    assert_int_equal(di.n_ifaces, DOMAIN_MAX_IFACES);
    assert_int_equal(domain_info_ungated(&di), 2);
    const char *taps[DOMAIN_MAX_IFACES];
    assert_int_equal(domain_info_taps(&di, taps, DOMAIN_MAX_IFACES), DOMAIN_MAX_IFACES);
}

static void test_no_channel(void **state)
{
    struct domain_info di;
    char err[1024];
    assert_int_equal(parse("domain-nochannel.xml", NULL, &di, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "org.netckpt.agent.0"));
    assert_non_null(strstr(err, "<channel type='unix'>"));
    assert_non_null(strstr(err, "<target type='virtio' name='org.netckpt.agent.0'/>"));
    assert_string_equal(di.ifaces[0].tap, "tap9");
    assert_string_equal(di.agent_name, "");

    /* the qga-named channel is not ours unless asked for */
    assert_int_equal(parse("domain-qga.xml", NULL, &di, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "org.netckpt.agent.0"));
}

static void test_qga_name(void **state)
{
    struct domain_info di;
    char err[1024];
    assert_int_equal(parse("domain-qga.xml", DOMAIN_QGA_NAME, &di, err, sizeof(err)), 0);
    assert_true(di.agent_is_qga_name);
    assert_string_equal(di.agent_name, "org.qemu.guest_agent.0");
    assert_string_equal(di.agent_socket, "/run/qga.sock");

    assert_int_equal(parse("domain-ethernet.xml", DOMAIN_QGA_NAME, &di, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "org.qemu.guest_agent.0"));
}

static void test_entity_bomb_refused(void **state)
{
    struct domain_info di;
    char err[1024];
    assert_int_equal(parse("domain-entities.xml", NULL, &di, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "DTD"));
    assert_string_equal(di.name, "");
}

static void test_external_entity_refused(void **state)
{
    struct domain_info di;
    char err[1024];
    assert_int_equal(parse("domain-xxe.xml", NULL, &di, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "DTD"));
    assert_null(strstr(di.name, "root:")); /* nothing from /etc/shadow */
    /* an entity reference without any declaration is simply not well-formed */
    assert_int_equal(parse("domain-undeclared-entity.xml", NULL, &di, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not well-formed"));
}

static void test_malformed_and_limits(void **state)
{
    struct domain_info di;
    char err[512];
    assert_int_equal(domain_xml_parse("<domain><name>x</name>", NULL, &di, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "not well-formed"));
    assert_int_equal(
        domain_xml_parse("<network><name>x</name></network>", NULL, &di, err, sizeof(err)),
        -EINVAL);
    assert_non_null(strstr(err, "<network>"));
    assert_int_equal(domain_xml_parse("<domain/>", NULL, &di, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "<name>"));
    assert_int_equal(domain_xml_parse(NULL, NULL, &di, err, sizeof(err)), -EINVAL);

    /* a tap name longer than IFNAMSIZ allows */
    assert_int_equal(domain_xml_parse("<domain><name>x</name><devices><interface "
                                      "type='ethernet'><target dev='0123456789abcdefg'/>"
                                      "</interface></devices></domain>",
                                      NULL, &di, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "15"));

    size_t big = DOMAIN_XML_MAX + 16;
    char *x = malloc(big + 1);
    assert_non_null(x);
    memset(x, ' ', big);
    memcpy(x, "<domain>", 8);
    x[big] = 0;
    assert_int_equal(domain_xml_parse(x, NULL, &di, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "limit"));
    free(x);

    /* more interfaces than tracked: the first ones are kept */
    char many[8192] = "<domain><name>m</name><devices>";
    for (int i = 0; i < 20; i++) {
        char one[128];
        snprintf(one, sizeof(one), "<interface type='ethernet'><target dev='t%d'/></interface>", i);
        strcat(many, one);
    }
    strcat(many, "<channel type='unix'><target type='virtio' name='org.netckpt.agent.0'/>"
                 "</channel></devices></domain>");
    assert_int_equal(domain_xml_parse(many, NULL, &di, err, sizeof(err)), 0);
    assert_int_equal(di.n_ifaces, DOMAIN_MAX_IFACES);
    assert_string_equal(di.ifaces[15].tap, "t15");
}

static void test_safe_reader(void **state)
{
    xmlDocPtr doc = NULL;
    char err[256];
    const char ok[] = "<a><b>1</b></a>";
    assert_int_equal(nc_xml_read_safe(ok, sizeof(ok) - 1, "t", &doc, err, sizeof(err)), 0);
    assert_non_null(doc);
    xmlFreeDoc(doc);
    const char dtd[] = "<!DOCTYPE a [<!ELEMENT a ANY>]><a/>";
    assert_int_equal(nc_xml_read_safe(dtd, sizeof(dtd) - 1, "t", &doc, err, sizeof(err)), -EINVAL);
    assert_null(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ethernet),
        cmocka_unit_test(test_bridge),
        cmocka_unit_test(test_network_pty_channel),
        cmocka_unit_test(test_no_tap),
        cmocka_unit_test(test_too_many_ifaces),
        cmocka_unit_test(test_no_channel),
        cmocka_unit_test(test_qga_name),
        cmocka_unit_test(test_entity_bomb_refused),
        cmocka_unit_test(test_external_entity_refused),
        cmocka_unit_test(test_malformed_and_limits),
        cmocka_unit_test(test_safe_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
