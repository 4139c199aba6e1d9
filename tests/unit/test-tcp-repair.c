/* Unit tests of guest/tcp-repair that need no privileges and no network: state names,
 * validation of (untrusted) states before rebuild, and argument checking of every call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "guest/tcp-repair.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_state_names(void **unused)
{
    static const struct {
        int v;
        const char *n;
    } all[] = {
        {TCP_ESTABLISHED, "ESTABLISHED"},
        {TCP_SYN_SENT, "SYN_SENT"},
        {TCP_SYN_RECV, "SYN_RECV"},
        {TCP_FIN_WAIT1, "FIN_WAIT1"},
        {TCP_FIN_WAIT2, "FIN_WAIT2"},
        {TCP_TIME_WAIT, "TIME_WAIT"},
        {TCP_CLOSE, "CLOSE"},
        {TCP_CLOSE_WAIT, "CLOSE_WAIT"},
        {TCP_LAST_ACK, "LAST_ACK"},
        {TCP_LISTEN, "LISTEN"},
        {TCP_CLOSING, "CLOSING"},
    };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        assert_string_equal(tcp_state_name((uint8_t)all[i].v), all[i].n);
        assert_int_equal(tcp_state_from_name(all[i].n), all[i].v);
    }
    assert_null(tcp_state_name(0));
    for (int v = TCP_CLOSING + 1; v < 256; v++)
        assert_null(tcp_state_name((uint8_t)v));
    assert_int_equal(tcp_state_from_name(NULL), -EINVAL);
    assert_int_equal(tcp_state_from_name(""), -EINVAL);
    assert_int_equal(tcp_state_from_name("established"), -EINVAL); /* exact spelling only */
    assert_int_equal(tcp_state_from_name("ESTABLISHED "), -EINVAL);
    assert_int_equal(tcp_state_from_name("FIN-WAIT-1"), -EINVAL);
}

static void test_supported(void **unused)
{
    int yes[] = {TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2,
                 TCP_CLOSE_WAIT,  TCP_LAST_ACK,  TCP_CLOSING};
    int no[] = {0,  TCP_SYN_SENT, TCP_SYN_RECV, TCP_TIME_WAIT, TCP_CLOSE, TCP_LISTEN,
                12, 31,           32,           200,           255};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        assert_true(tcp_repair_state_supported((uint8_t)yes[i]));
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        assert_false(tcp_repair_state_supported((uint8_t)no[i]));
}

static void v4(struct tcp_endpoint *ep, const char *a, uint16_t port)
{
    char m[64];
    snprintf(m, sizeof(m), "::ffff:%s", a);
    memset(ep, 0, sizeof(*ep));
    ep->family = AF_INET;
    assert_int_equal(inet_pton(AF_INET6, m, &ep->addr), 1);
    ep->port = port;
}

static void v6(struct tcp_endpoint *ep, const char *a, uint16_t port)
{
    memset(ep, 0, sizeof(*ep));
    ep->family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, a, &ep->addr), 1);
    ep->port = port;
}

static struct tcp_conn_state good(void)
{
    struct tcp_conn_state st = {0};
    st.sock_family = AF_INET;
    v4(&st.local, "10.0.0.1", 40000);
    v4(&st.remote, "10.0.0.2", 80);
    st.state = TCP_ESTABLISHED;
    st.mss = 1448;
    st.opt_wscale = true;
    st.snd_wscale = 7;
    st.rcv_wscale = 7;
    st.has_window = true;
    st.window = (struct tcp_repair_win){1, 1000, 2000, 3000, 4};
    return st;
}

static void test_validate(void **unused)
{
    static uint8_t byte;
    struct tcp_conn_state st = good();
    assert_int_equal(tcp_repair_validate(&st), 0);
    assert_int_equal(tcp_repair_validate(NULL), -EINVAL);

    /* v4-mapped on an AF_INET6 socket is fine unless v6only; pure v6 too. */
    st.sock_family = AF_INET6;
    assert_int_equal(tcp_repair_validate(&st), 0);
    st.v6only = true;
    assert_int_equal(tcp_repair_validate(&st), -EINVAL);
    st = good();
    st.v6only = true; /* meaningless on AF_INET */
    assert_int_equal(tcp_repair_validate(&st), -EINVAL);
    st = good();
    st.sock_family = AF_INET6;
    v6(&st.local, "fd00::1", 1);
    v6(&st.remote, "fd00::2", 2);
    assert_int_equal(tcp_repair_validate(&st), 0);
    st.sock_family = AF_INET; /* a v6 address on a v4 socket */
    assert_int_equal(tcp_repair_validate(&st), -EINVAL);
    st.sock_family = AF_INET6;
    v4(&st.remote, "10.0.0.2", 80); /* mixed families */
    assert_int_equal(tcp_repair_validate(&st), -EINVAL);
    v6(&st.remote, "fe80::2", 2); /* link-local: no scope in the image */
    assert_int_equal(tcp_repair_validate(&st), -EINVAL);
    v6(&st.remote, "::", 2);
    assert_int_equal(tcp_repair_validate(&st), -EINVAL);
    v6(&st.remote, "::ffff:10.0.0.2", 2); /* says v6 but is v4-mapped */
    assert_int_equal(tcp_repair_validate(&st), -EINVAL);

    st = good();
    st.local.family = AF_INET6; /* says v6 but the address is v4-mapped */
    assert_int_equal(tcp_repair_validate(&st), -EINVAL);
    st = good();
    st.sock_family = AF_UNIX;
    assert_int_equal(tcp_repair_validate(&st), -EAFNOSUPPORT);
    st = good();
    st.remote.port = 0;
    assert_int_equal(tcp_repair_validate(&st), -EINVAL);
    st = good();
    st.local.family = 99;
    assert_int_equal(tcp_repair_validate(&st), -EINVAL);

    int bad_states[] = {0, TCP_SYN_SENT, TCP_SYN_RECV, TCP_TIME_WAIT, TCP_CLOSE, TCP_LISTEN, 77};
    for (size_t i = 0; i < sizeof(bad_states) / sizeof(bad_states[0]); i++) {
        st = good();
        st.state = (uint8_t)bad_states[i];
        assert_int_equal(tcp_repair_validate(&st), -EOPNOTSUPP);
    }

    st = good();
    st.recv.len = TCP_REPAIR_MAX_QUEUE + 1;
    st.recv.data = &byte;
    assert_int_equal(tcp_repair_validate(&st), -EFBIG);
    st = good();
    st.unacked.len = 1; /* length without bytes */
    assert_int_equal(tcp_repair_validate(&st), -EINVAL);
    st = good();
    st.unacked.len = TCP_REPAIR_MAX_QUEUE;
    st.unacked.data = &byte;
    st.unsent.len = 1;
    st.unsent.data = &byte; /* each within the limit, the send queue is not */
    assert_int_equal(tcp_repair_validate(&st), -EFBIG);

    st = good();
    st.state = TCP_FIN_WAIT2; /* our FIN acknowledged: nothing may be outstanding */
    assert_int_equal(tcp_repair_validate(&st), 0);
    st.unsent.len = 1;
    st.unsent.data = &byte;
    assert_int_equal(tcp_repair_validate(&st), -EINVAL);

    st = good();
    st.mss = 0;
    assert_int_equal(tcp_repair_validate(&st), -EINVAL);
    st.mss = 70000;
    assert_int_equal(tcp_repair_validate(&st), -EINVAL);
    st = good();
    st.rcv_wscale = 15;
    assert_int_equal(tcp_repair_validate(&st), -EINVAL);
    st.opt_wscale = false; /* scales are ignored without the option */
    assert_int_equal(tcp_repair_validate(&st), 0);
    st = good();
    st.window.max_window = st.window.snd_wnd - 1;
    assert_int_equal(tcp_repair_validate(&st), -EINVAL);
    st = good();
    st.keepalive.cnt = -1;
    assert_int_equal(tcp_repair_validate(&st), -EINVAL);
    st = good();
    st.user_timeout_ms = 0x80000000u;
    assert_int_equal(tcp_repair_validate(&st), -EINVAL);
}

static void test_rebuild_refuses_before_touching_the_kernel(void **unused)
{
    assert_int_equal(tcp_repair_rebuild(NULL), -EINVAL);
    struct tcp_conn_state st = good();
    st.state = TCP_TIME_WAIT;
    assert_int_equal(tcp_repair_rebuild(&st), -EOPNOTSUPP);
    st = good();
    st.sock_family = 12345;
    assert_int_equal(tcp_repair_rebuild(&st), -EAFNOSUPPORT);
}

static void test_arguments(void **unused)
{
    struct tcp_conn_state st = {0};
    assert_int_equal(tcp_repair_freeze(-1, &st), -EBADF);
    assert_int_equal(tcp_repair_dump(-1, &st), -EBADF);
    assert_int_equal(tcp_repair_thaw(-1, &st, true), -EBADF);
    assert_int_equal(tcp_repair_close_silently(-1), -EBADF);

    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(tcp >= 0);
    assert_int_equal(tcp_repair_freeze(tcp, NULL), -EINVAL);
    assert_int_equal(tcp_repair_dump(tcp, NULL), -EINVAL);
    assert_int_equal(tcp_repair_thaw(tcp, NULL, false), -EINVAL);
    /* Dumping a socket that is not frozen would race the live stack. */
    assert_int_equal(tcp_repair_dump(tcp, &st), -EPERM);
    /* An unconnected socket (CLOSE) is refused before repair mode is touched. */
    assert_int_equal(tcp_repair_freeze(tcp, &st), -EOPNOTSUPP);
    /* Thaw of a socket that is not frozen does nothing (its settings stay). */
    int on = 1, v = 0;
    socklen_t vl = sizeof(v);
    assert_int_equal(setsockopt(tcp, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)), 0);
    assert_int_equal(tcp_repair_thaw(tcp, &st, true), 0);
    assert_int_equal(getsockopt(tcp, SOL_SOCKET, SO_KEEPALIVE, &v, &vl), 0);
    assert_int_equal(v, 1);
    close(tcp);

    int udp = socket(AF_INET, SOCK_DGRAM, 0), sp[2];
    assert_true(udp >= 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    assert_int_equal(tcp_repair_freeze(udp, &st), -EPROTOTYPE);
    assert_int_equal(tcp_repair_dump(sp[0], &st), -EPROTOTYPE);
    assert_int_equal(tcp_repair_thaw(sp[1], &st, true), -EPROTOTYPE);
    assert_int_equal(tcp_repair_close_silently(udp), -EPROTOTYPE);
    close(udp);
    close(sp[0]);
    close(sp[1]);

    int file = open("/dev/null", O_RDONLY);
    assert_true(file >= 0);
    assert_int_equal(tcp_repair_freeze(file, &st), -ENOTSOCK);
    close(file);
}

static void test_state_free(void **unused)
{
    tcp_conn_state_free(NULL);
    struct tcp_conn_state st = {0};
    st.recv.data = malloc(3);
    st.recv.len = 3;
    st.unsent.data = malloc(1);
    st.unsent.len = 1;
    tcp_conn_state_free(&st);
    assert_null(st.recv.data);
    assert_int_equal(st.recv.len, 0);
    assert_null(st.unsent.data);
    tcp_conn_state_free(&st); /* twice is harmless */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_supported),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_rebuild_refuses_before_touching_the_kernel),
        cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_state_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
