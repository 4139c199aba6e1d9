/* tests/unit/test-tcp-retrans.c: the rule that calls a connection retransmitting
 * (guest/tcp-retrans.h) on hand-made tcp_info records, short ones included, and a live count
 * that runs (its real behaviour is tested in tests/integration/daemon-retrans.sh). */
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "guest/tcp-retrans.h"

static void test_rule(void **state)
{
    (void)state;
    struct tcp_info ti;
    memset(&ti, 0, sizeof(ti));
    assert_false(tcp_retrans_is_retransmitting(&ti, sizeof(ti)));
    ti.tcpi_retransmits = 1; /* an RTO fired for the head segment, not acknowledged since */
    assert_true(tcp_retrans_is_retransmitting(&ti, sizeof(ti)));
    memset(&ti, 0, sizeof(ti));
    ti.tcpi_backoff = 3; /* backed off with data out */
    assert_false(tcp_retrans_is_retransmitting(&ti, sizeof(ti)));
    ti.tcpi_unacked = 2;
    assert_true(tcp_retrans_is_retransmitting(&ti, sizeof(ti)));
    memset(&ti, 0, sizeof(ti));
    ti.tcpi_probes = 2; /* unanswered zero-window or keepalive probes: the peer is silent */
    ti.tcpi_backoff = 2;
    assert_true(tcp_retrans_is_retransmitting(&ti, sizeof(ti)));
    assert_true(tcp_retrans_is_probing(&ti, sizeof(ti)));
    ti.tcpi_probes = 0; /* answered probes, window still closed: a slow reader */
    assert_false(tcp_retrans_is_retransmitting(&ti, sizeof(ti)));
    assert_false(tcp_retrans_is_probing(&ti, sizeof(ti)));
    ti.tcpi_retransmits = 1; /* a real retransmission is not "probing" */
    ti.tcpi_probes = 1;
    assert_false(tcp_retrans_is_probing(&ti, sizeof(ti)));
    /* a short record (an older kernel): only what it holds counts */
    memset(&ti, 0, sizeof(ti));
    ti.tcpi_retransmits = 1;
    assert_true(tcp_retrans_is_retransmitting(&ti, offsetof(struct tcp_info, tcpi_probes)));
    assert_false(tcp_retrans_is_retransmitting(&ti, 0));
}

static void test_live(void **state)
{
    (void)state;
    struct tcp_retrans_count c;
    assert_int_equal(tcp_retrans_count(&c), 0);
    assert_true(c.retransmitting <= c.connections);
    assert_true(c.probing <= c.retransmitting);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule),
        cmocka_unit_test(test_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
