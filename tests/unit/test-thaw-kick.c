/* Unit tests of guest/thaw-kick that need no privileges: arguments, verdict names, and the
 * verdicts that send nothing (an idle loopback connection never needs a kick). The kick
 * itself is tested on real backed-off connections in tests/integration/thaw-kick.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "guest/thaw-kick.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

static void test_names(void **unused)
{
    (void)unused;
    assert_string_equal(thaw_kick_verdict_name(THAW_KICK_NOT_NEEDED), "not-needed");
    assert_string_equal(thaw_kick_verdict_name(THAW_KICK_RTO_REVERT), "rto-revert");
    assert_string_equal(thaw_kick_verdict_name(THAW_KICK_SKIP_RECVERR), "skipped-recverr");
    assert_string_equal(thaw_kick_verdict_name(THAW_KICK_SKIP_STATE), "skipped-state");
    assert_string_equal(thaw_kick_verdict_name((enum thaw_kick_verdict)99), "?");
}

static void v4(struct tcp_endpoint *ep, uint16_t port)
{
    memset(ep, 0, sizeof(*ep));
    ep->family = AF_INET;
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &ep->addr);
    ep->port = port;
}

static void test_arguments(void **unused)
{
    (void)unused;
    struct tcp_conn_state st = {.sock_family = AF_INET};
    struct thaw_kick_result res;
    int p[2];
    v4(&st.local, 1);
    v4(&st.remote, 2);
    assert_int_equal(thaw_kick(0, NULL, &res), -EINVAL);
    assert_int_equal(thaw_kick(0, &st, NULL), -EINVAL);
    assert_true(thaw_kick(-1, &st, &res) < 0);
    assert_int_equal(pipe(p), 0);
    assert_true(thaw_kick(p[0], &st, &res) < 0); /* not a socket */
    close(p[0]);
    close(p[1]);
    st.remote.family = AF_INET6; /* the two ends must agree */
    assert_int_equal(thaw_kick(0, &st, &res), -EAFNOSUPPORT);
}

/* An established loopback connection with nothing outstanding: not needed, nothing sent. An
 * unconnected socket (CLOSE) is not kicked either. */
static void test_not_needed(void **unused)
{
    (void)unused;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(ls >= 0);
    assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(ls, 1), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &al), 0);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
    int s = accept(ls, NULL, NULL);
    assert_true(s >= 0);

    struct tcp_conn_state st = {.sock_family = AF_INET};
    struct sockaddr_in l;
    socklen_t ll = sizeof(l);
    assert_int_equal(getsockname(c, (struct sockaddr *)&l, &ll), 0);
    v4(&st.local, ntohs(l.sin_port));
    v4(&st.remote, ntohs(a.sin_port));
    struct thaw_kick_result res;
    memset(&res, 0xa5, sizeof(res));
    assert_int_equal(thaw_kick(c, &st, &res), 0);
    assert_int_equal(res.verdict, THAW_KICK_NOT_NEEDED);
    assert_int_equal(res.backoff, 0);
    assert_int_equal(res.sent, 0);

    int u = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(thaw_kick(u, &st, &res), 0);
    assert_int_equal(res.verdict, THAW_KICK_NOT_NEEDED);
    assert_int_equal(res.sent, 0);
    close(u);
    close(s);
    close(c);
    close(ls);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_not_needed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
