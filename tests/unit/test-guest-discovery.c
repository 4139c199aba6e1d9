/* Unit tests for guest/sock-diag's reply parser (crafted and random netlink buffers) and
 * guest/proc-owner on a fake /proc tree. The real-kernel side is in
 * tests/integration/guest-discovery.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/macro.h"
#include "common/util.h"
#include "guest/proc-owner.h"
#include "guest/quiesce.h"
#include "guest/sock-diag.h"

#define SEQ 77

struct nlbuf {
    uint8_t b[8192];
    size_t len;
};

static void *put_msg(struct nlbuf *nb, uint16_t type, uint32_t seq, const void *payload,
                     size_t plen)
{
    struct nlmsghdr h = {
        .nlmsg_len = (uint32_t)(sizeof(h) + plen), .nlmsg_type = type, .nlmsg_seq = seq};
    assert_true(nb->len + NLMSG_ALIGN(h.nlmsg_len) <= sizeof(nb->b));
    memcpy(nb->b + nb->len, &h, sizeof(h));
    void *p = nb->b + nb->len + sizeof(h);
    if (plen)
        memcpy(p, payload, plen);
    nb->len += NLMSG_ALIGN(h.nlmsg_len);
    return p;
}

static struct inet_diag_msg diag_v4(uint8_t state, const char *src, uint16_t sport, const char *dst,
                                    uint16_t dport, uint32_t inode)
{
    struct inet_diag_msg m = {
        .idiag_family = AF_INET, .idiag_state = state, .idiag_inode = inode, .idiag_uid = 1000};
    inet_pton(AF_INET, src, &m.id.idiag_src[0]);
    inet_pton(AF_INET, dst, &m.id.idiag_dst[0]);
    m.id.idiag_sport = htons(sport);
    m.id.idiag_dport = htons(dport);
    m.id.idiag_cookie[0] = 0x11223344;
    m.id.idiag_cookie[1] = 0x55667788;
    m.id.idiag_if = 3;
    return m;
}

static struct inet_diag_msg diag_v6(uint8_t state, const char *src, const char *dst, uint32_t inode)
{
    struct inet_diag_msg m = {.idiag_family = AF_INET6, .idiag_state = state, .idiag_inode = inode};
    inet_pton(AF_INET6, src, m.id.idiag_src);
    inet_pton(AF_INET6, dst, m.id.idiag_dst);
    m.id.idiag_sport = htons(1);
    m.id.idiag_dport = htons(2);
    return m;
}

static int parse(const struct nlbuf *nb, struct sock_diag_tcp **v, size_t *n, int *done)
{
    size_t cap = 0;
    *v = NULL;
    *n = 0;
    return sock_diag_parse_reply(nb->b, nb->len, SEQ, v, n, &cap, done);
}

static void test_parse_good(void **state)
{
    struct nlbuf nb = {0};
    struct inet_diag_msg m = diag_v4(TCP_ESTABLISHED, "10.0.0.1", 1234, "10.0.0.2", 80, 4242);
    put_msg(&nb, SOCK_DIAG_BY_FAMILY, SEQ, &m, sizeof(m));
    m = diag_v6(TCP_FIN_WAIT2, "fd00::1", "fd00::2", 4343);
    /* Attributes after the fixed part are ignored. */
    uint8_t with_attr[sizeof(m) + 8] = {0};
    memcpy(with_attr, &m, sizeof(m));
    put_msg(&nb, SOCK_DIAG_BY_FAMILY, SEQ, with_attr, sizeof(with_attr));
    m = diag_v6(12 /* TCP_NEW_SYN_RECV */, "::ffff:10.0.0.1", "::ffff:10.0.0.9", 0);
    put_msg(&nb, SOCK_DIAG_BY_FAMILY, SEQ, &m, sizeof(m));
    put_msg(&nb, NLMSG_NOOP, SEQ, NULL, 0);
    int zero = 0;
    put_msg(&nb, NLMSG_DONE, SEQ, &zero, sizeof(zero));

    _cleanup_free_ struct sock_diag_tcp *v = NULL;
    size_t n;
    int done;
    assert_int_equal(parse(&nb, &v, &n, &done), 0);
    assert_int_equal(done, 1);
    assert_int_equal(n, 3);
    assert_int_equal(v[0].family, AF_INET);
    assert_int_equal(v[0].state, TCP_ESTABLISHED);
    assert_int_equal(v[0].local.family, AF_INET);
    assert_int_equal(v[0].local.port, 1234);
    assert_int_equal(v[0].remote.port, 80);
    assert_true(IN6_IS_ADDR_V4MAPPED(&v[0].local.addr));
    assert_int_equal(v[0].local.addr.s6_addr[15], 1);
    assert_int_equal(v[0].remote.addr.s6_addr[15], 2);
    assert_int_equal(v[0].inode, 4242);
    assert_int_equal(v[0].uid, 1000);
    assert_int_equal(v[0].cookie, 0x5566778811223344ull);
    assert_int_equal(v[0].ifindex, 3);
    assert_int_equal(v[1].family, AF_INET6);
    assert_int_equal(v[1].local.family, AF_INET6);
    assert_int_equal(v[1].state, TCP_FIN_WAIT2);
    /* A dual-stack socket's IPv4 peer: socket AF_INET6, wire AF_INET. */
    assert_int_equal(v[2].family, AF_INET6);
    assert_int_equal(v[2].local.family, AF_INET);
    assert_int_equal(v[2].remote.family, AF_INET);
    assert_int_equal(v[2].state, TCP_SYN_RECV);
}

static void test_parse_partial(void **state)
{
    /* A batch without DONE: more to come. */
    struct nlbuf nb = {0};
    struct inet_diag_msg m = diag_v4(TCP_LISTEN, "0.0.0.0", 22, "0.0.0.0", 0, 1);
    put_msg(&nb, SOCK_DIAG_BY_FAMILY, SEQ, &m, sizeof(m));
    _cleanup_free_ struct sock_diag_tcp *v = NULL;
    size_t n;
    int done;
    assert_int_equal(parse(&nb, &v, &n, &done), 0);
    assert_int_equal(done, 0);
    assert_int_equal(n, 1);
}

static void expect_error(struct nlbuf *nb, int code)
{
    struct sock_diag_tcp *v = NULL;
    size_t n;
    int done;
    assert_int_equal(parse(nb, &v, &n, &done), code);
    free(v);
}

static void test_parse_errors(void **state)
{
    struct inet_diag_msg m = diag_v4(TCP_ESTABLISHED, "10.0.0.1", 1, "10.0.0.2", 2, 5);
    struct nlbuf nb = {0};

    /* Truncated header. */
    nb.len = 10;
    expect_error(&nb, -EBADMSG);

    /* nlmsg_len smaller than a header, and larger than the buffer. */
    nb = (struct nlbuf){0};
    put_msg(&nb, SOCK_DIAG_BY_FAMILY, SEQ, &m, sizeof(m));
    ((struct nlmsghdr *)nb.b)->nlmsg_len = 8;
    expect_error(&nb, -EBADMSG);
    ((struct nlmsghdr *)nb.b)->nlmsg_len = (uint32_t)nb.len + 1;
    expect_error(&nb, -EBADMSG);

    /* Payload shorter than inet_diag_msg. */
    nb = (struct nlbuf){0};
    put_msg(&nb, SOCK_DIAG_BY_FAMILY, SEQ, &m, sizeof(m) - 1);
    expect_error(&nb, -EBADMSG);

    /* Another request's reply. */
    nb = (struct nlbuf){0};
    put_msg(&nb, SOCK_DIAG_BY_FAMILY, SEQ + 1, &m, sizeof(m));
    expect_error(&nb, -EBADMSG);

    /* Unknown family, impossible state. */
    nb = (struct nlbuf){0};
    m.idiag_family = AF_UNIX;
    put_msg(&nb, SOCK_DIAG_BY_FAMILY, SEQ, &m, sizeof(m));
    expect_error(&nb, -EBADMSG);
    nb = (struct nlbuf){0};
    m.idiag_family = AF_INET;
    m.idiag_state = 200;
    put_msg(&nb, SOCK_DIAG_BY_FAMILY, SEQ, &m, sizeof(m));
    expect_error(&nb, -EBADMSG);

    /* The kernel's errors come back as they are; an ACK is done. */
    struct nlmsgerr e = {.error = -EPERM};
    nb = (struct nlbuf){0};
    put_msg(&nb, NLMSG_ERROR, SEQ, &e, sizeof(e));
    expect_error(&nb, -EPERM);
    e.error = 5; /* positive: nonsense */
    nb = (struct nlbuf){0};
    put_msg(&nb, NLMSG_ERROR, SEQ, &e, sizeof(e));
    expect_error(&nb, -EBADMSG);
    nb = (struct nlbuf){0};
    put_msg(&nb, NLMSG_ERROR, SEQ, &e, 2); /* too short for the error code */
    expect_error(&nb, -EBADMSG);
    int dump_err = -ENOMEM;
    nb = (struct nlbuf){0};
    put_msg(&nb, NLMSG_DONE, SEQ, &dump_err, sizeof(dump_err));
    expect_error(&nb, -ENOMEM);
    nb = (struct nlbuf){0};
    put_msg(&nb, NLMSG_OVERRUN, SEQ, NULL, 0);
    expect_error(&nb, -EBADMSG);

    e.error = 0;
    nb = (struct nlbuf){0};
    put_msg(&nb, NLMSG_ERROR, SEQ, &e, sizeof(e));
    struct sock_diag_tcp *v = NULL;
    size_t n;
    int done;
    assert_int_equal(parse(&nb, &v, &n, &done), 0);
    assert_int_equal(done, 1);
    assert_int_equal(n, 0);
}

/* Random and bit-flipped buffers: any result but a crash (ASan watches). */
static void test_parse_random(void **state)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    struct nlbuf good = {0};
    struct inet_diag_msg m = diag_v4(TCP_ESTABLISHED, "10.0.0.1", 1, "10.0.0.2", 2, 5);
    for (int i = 0; i < 5; i++)
        put_msg(&good, SOCK_DIAG_BY_FAMILY, SEQ, &m, sizeof(m));
    int zero = 0;
    put_msg(&good, NLMSG_DONE, SEQ, &zero, sizeof(zero));
    for (int round = 0; round < 20000; round++) {
        struct nlbuf nb = good;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if (round % 2) {
            for (int k = 0; k < 4; k++)
                nb.b[(x >> (k * 12)) % nb.len] ^= (uint8_t)(1u << ((x >> (k * 3 + 50)) & 7));
        } else {
            nb.len = (size_t)(x % 512);
            for (size_t k = 0; k < nb.len; k++)
                nb.b[k] = (uint8_t)(x >> ((k % 8) * 8)) ^ (uint8_t)k;
        }
        nb.len = round % 3 ? nb.len : (size_t)((x >> 20) % (nb.len + 1));
        struct sock_diag_tcp *v = NULL;
        size_t n = 0, cap = 0;
        int done;
        int r = sock_diag_parse_reply(nb.b, nb.len, SEQ, &v, &n, &cap, &done);
        assert_true(r <= 0);
        free(v);
    }
}

/* ------------------------------------------------------------------ proc-owner */

static void mkfile(const char *dir, const char *name, const char *content)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    assert_int_equal(write_file_atomic(p, content, strlen(content), 0644), 0);
}

static void mklink(const char *dir, const char *name, const char *target)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    assert_int_equal(symlink(target, p), 0);
}

static void test_proc_owner_fake(void **state)
{
    char root[] = "/tmp/netckpt-fakeproc-XXXXXX";
    assert_non_null(mkdtemp(root));
    char d[512];
    const char *dirs[] = {
        "123",  "123/fd",  "456",         "456/fd",         "789", "abc",   "abc/fd",
        "0042", "0042/fd", "99999999999", "99999999999/fd", "555", "555/fd"};
    for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
        snprintf(d, sizeof(d), "%s/%s", root, dirs[i]);
        assert_int_equal(mkdir(d, 0755), 0);
    }
    mkfile(root, "123/comm", "server\n");
    mklink(root, "123/fd/3", "socket:[555]");
    mklink(root, "123/fd/4", "/dev/null");
    mklink(root, "123/fd/5", "socket:[777]");
    mklink(root, "123/fd/6", "socket:[abc]");
    mklink(root, "123/fd/7", "socket:[99999999999999999999999]");
    mklink(root, "123/fd/8", "socket:[]");
    mklink(root, "123/fd/x9", "socket:[1]");
    mkfile(root, "456/comm", "w\x01rker\n");
    mklink(root, "456/fd/10", "socket:[555]");
    mklink(root, "abc/fd/1", "socket:[1]");
    mklink(root, "0042/fd/1", "socket:[1]"); /* not how /proc spells a pid */
    mklink(root, "99999999999/fd/1", "socket:[1]");
    mklink(root, "555/fd/1", "socket:[555]"); /* no comm file: exited meanwhile */
    mklink(root, "self", "123");

    struct proc_owner_map m;
    assert_int_equal(proc_owner_scan(root, 0, &m), 0);
    const struct proc_owner_entry *e;
    assert_int_equal(proc_owner_lookup(&m, 555, &e), 3);
    assert_int_equal(e[0].owner.pid, 123);
    assert_int_equal(e[0].owner.fd, 3);
    assert_string_equal(e[0].owner.comm, "server");
    assert_int_equal(e[1].owner.pid, 456);
    assert_int_equal(e[1].owner.fd, 10);
    assert_string_equal(e[1].owner.comm, "w?rker");
    assert_int_equal(e[2].owner.pid, 555);
    assert_int_equal(proc_owner_lookup(&m, 777, &e), 1);
    assert_int_equal(proc_owner_lookup(&m, 1, &e), 0);
    assert_null(e);
    assert_int_equal(proc_owner_lookup(&m, 556, &e), 0);
    assert_int_equal(m.n, 4);
    proc_owner_map_free(&m);

    assert_int_equal(proc_owner_scan(root, 123, &m), 0);
    assert_int_equal(proc_owner_lookup(&m, 555, &e), 2);
    assert_int_equal(e[0].owner.pid, 456);
    proc_owner_map_free(&m);
    proc_owner_map_free(&m);

    assert_int_equal(proc_owner_scan("/nonexistent-netckpt", 0, &m), -ENOENT);
    rm_rf(root);
}

/* The real /proc: our own socket is found under our pid, with our comm. */
static void test_proc_owner_self(void **state)
{
    _cleanup_close_ int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    uint64_t inode;
    assert_int_equal(fd_socket_inode(s, &inode), 0);
    _cleanup_close_ int f = open("/dev/null", O_RDONLY | O_CLOEXEC);
    uint64_t dummy;
    assert_int_equal(fd_socket_inode(f, &dummy), -ENOTSOCK);
    assert_int_equal(fd_socket_inode(-1, &dummy), -EBADF);

    struct proc_owner_map m;
    assert_int_equal(proc_owner_scan("/proc", 0, &m), 0);
    const struct proc_owner_entry *e;
    assert_int_equal(proc_owner_lookup(&m, inode, &e), 1);
    assert_int_equal(e->owner.pid, getpid());
    assert_int_equal(e->owner.fd, s);
    proc_owner_map_free(&m);
    assert_int_equal(proc_owner_scan("/proc", getpid(), &m), 0);
    assert_int_equal(proc_owner_lookup(&m, inode, &e), 0);
    proc_owner_map_free(&m);
}

static void test_inode_set(void **state)
{
    struct inode_set s = {0};
    assert_false(inode_set_has(&s, 1));
    assert_int_equal(inode_set_add(&s, 0), -EINVAL);
    for (uint64_t i = 1; i <= 10000; i++)
        assert_int_equal(inode_set_add(&s, 4000000 + i), 1);
    assert_int_equal(inode_set_add(&s, 4000001), 0); /* already there */
    assert_int_equal(s.n, 10000);
    for (uint64_t i = 1; i <= 10000; i++)
        assert_true(inode_set_has(&s, 4000000 + i));
    assert_false(inode_set_has(&s, 4000000));
    assert_false(inode_set_has(&s, 4010001));
    assert_false(inode_set_has(&s, 0));
    inode_set_free(&s);
    inode_set_free(&s);
    assert_false(inode_set_has(&s, 4000001));
}

/* A hold callback over a fake /proc: counts holds per pid, and can make an owner move a
 * socket to another fd before it stops, report a process gone, or fail. */
struct fake_hold {
    const char *root;
    int holds[1000];
    pid_t gone_pid, fail_pid, moves_pid;
};

static int fake_hold(void *ctx, pid_t pid, const char *comm)
{
    struct fake_hold *h = ctx;
    assert_true(pid > 0 && pid < 1000);
    assert_non_null(comm);
    h->holds[pid]++;
    if (pid == h->fail_pid)
        return -EPERM;
    if (pid == h->gone_pid)
        return 0;
    if (pid == h->moves_pid) { /* dup2(3, 9); close(3) just before the stop */
        char from[512], to[512];
        snprintf(from, sizeof(from), "%s/%d/fd/3", h->root, (int)pid);
        snprintf(to, sizeof(to), "%s/%d/fd/9", h->root, (int)pid);
        assert_int_equal(rename(from, to), 0);
    }
    return 1;
}

static void want_set(struct inode_set *w, const uint64_t *inodes, size_t n)
{
    inode_set_free(w);
    for (size_t i = 0; i < n; i++)
        assert_true(inode_set_add(w, inodes[i]) >= 0);
}

static void test_proc_owner_held_fake(void **state)
{
    char root[] = "/tmp/netckpt-fakeproc-XXXXXX";
    assert_non_null(mkdtemp(root));
    char d[512];
    const char *dirs[] = {"123",    "123/fd", "456",    "456/fd", "600",
                          "600/fd", "700",    "700/fd", "800"};
    for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
        snprintf(d, sizeof(d), "%s/%s", root, dirs[i]);
        assert_int_equal(mkdir(d, 0755), 0);
    }
    mkfile(root, "123/comm", "server\n");
    mklink(root, "123/fd/3", "socket:[555]");
    mklink(root, "123/fd/4", "/dev/null");
    mklink(root, "123/fd/5", "socket:[777]"); /* not wanted, but held processes record all */
    mklink(root, "456/fd/10", "socket:[555]");
    mklink(root, "600/fd/1", "socket:[888]"); /* not wanted: 600 is left running */
    mklink(root, "700/fd/2", "socket:[555]"); /* exits as it is being held */
    mklink(root, "self", "123");

    struct fake_hold h = {.root = root, .gone_pid = 700, .moves_pid = 123};
    struct proc_owner_cache cache = {0};
    struct inode_set want = {0};
    struct proc_owner_map m;
    const struct proc_owner_entry *e;

    /* Round 1: every owner of 555 is held once and read after its hold. */
    want_set(&want, (const uint64_t[]){555}, 1);
    assert_int_equal(proc_owner_scan_held(root, 0, &want, fake_hold, &h, &cache, &m), 0);
    assert_int_equal(h.holds[123], 1);
    assert_int_equal(h.holds[456], 1);
    assert_int_equal(h.holds[700], 1);
    assert_int_equal(h.holds[600], 0);
    assert_int_equal(proc_owner_lookup(&m, 555, &e), 2);
    assert_int_equal(e[0].owner.pid, 123);
    assert_int_equal(e[0].owner.fd, 9); /* where it is once 123 stopped, not where it was */
    assert_string_equal(e[0].owner.comm, "server");
    assert_int_equal(e[1].owner.pid, 456);
    assert_int_equal(proc_owner_lookup(&m, 777, &e), 1);
    assert_int_equal(proc_owner_lookup(&m, 888, &e), 0);
    assert_int_equal(m.n, 3);
    size_t read1 = cache.n_read;
    assert_true(read1 >= 6);
    proc_owner_map_free(&m);

    /* Round 2: 600 got 555 meanwhile and is held now; the held ones are not read again (a
     * change behind their back would show if they were). */
    mklink(root, "600/fd/7", "socket:[555]");
    mklink(root, "456/fd/11", "socket:[555]");
    want_set(&want, (const uint64_t[]){555, 999}, 2);
    h.moves_pid = 0;
    assert_int_equal(proc_owner_scan_held(root, 0, &want, fake_hold, &h, &cache, &m), 0);
    assert_int_equal(h.holds[123], 1);
    assert_int_equal(h.holds[456], 1);
    assert_int_equal(h.holds[600], 1);
    assert_int_equal(h.holds[700], 2); /* still listed, still not held */
    assert_int_equal(proc_owner_lookup(&m, 555, &e), 3);
    assert_int_equal(e[0].owner.pid, 123);
    assert_int_equal(e[1].owner.pid, 456);
    assert_int_equal(e[1].owner.fd, 10);
    assert_int_equal(e[2].owner.pid, 600);
    assert_int_equal(e[2].owner.fd, 7);
    assert_int_equal(proc_owner_lookup(&m, 888, &e), 1); /* 600 is held: all its sockets */
    proc_owner_map_free(&m);

    /* Round 3: a held process that is no longer listed owns nothing. */
    snprintf(d, sizeof(d), "%s/456", root);
    assert_int_equal(rm_rf(d), 0);
    assert_int_equal(proc_owner_scan_held(root, 600, &want, fake_hold, &h, &cache, &m), 0);
    assert_int_equal(proc_owner_lookup(&m, 555, &e), 1);
    assert_int_equal(e[0].owner.pid, 123);
    proc_owner_map_free(&m);

    /* A hold that fails aborts the round with its error. */
    proc_owner_cache_free(&cache);
    h.fail_pid = 123;
    assert_int_equal(proc_owner_scan_held(root, 0, &want, fake_hold, &h, &cache, &m), -EPERM);
    assert_int_equal(m.n, 0);
    assert_int_equal(proc_owner_scan_held(root, 0, NULL, fake_hold, &h, &cache, &m), -EINVAL);
    assert_int_equal(
        proc_owner_scan_held("/nonexistent-netckpt", 0, &want, fake_hold, &h, &cache, &m), -ENOENT);
    proc_owner_cache_free(&cache);
    proc_owner_cache_free(&cache);
    inode_set_free(&want);
    rm_rf(root);
}

/* The real /proc: a held scan finds our own socket under our pid after holding us. */
static int self_hold(void *ctx, pid_t pid, const char *comm)
{
    (*(int *)ctx)++;
    return pid == getpid() ? 1 : 0;
}

static void test_proc_owner_held_self(void **state)
{
    _cleanup_close_ int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    uint64_t inode;
    assert_int_equal(fd_socket_inode(s, &inode), 0);
    struct inode_set want = {0};
    assert_int_equal(inode_set_add(&want, inode), 1);
    struct proc_owner_cache cache = {0};
    struct proc_owner_map m;
    int holds = 0;
    assert_int_equal(proc_owner_scan_held("/proc", 0, &want, self_hold, &holds, &cache, &m), 0);
    assert_int_equal(holds, 1);
    const struct proc_owner_entry *e;
    assert_int_equal(proc_owner_lookup(&m, inode, &e), 1);
    assert_int_equal(e->owner.pid, getpid());
    assert_int_equal(e->owner.fd, s);
    proc_owner_map_free(&m);
    assert_int_equal(proc_owner_scan_held("/proc", 0, &want, self_hold, &holds, &cache, &m), 0);
    assert_int_equal(holds, 1); /* held: not read again */
    assert_int_equal(proc_owner_lookup(&m, inode, &e), 1);
    proc_owner_map_free(&m);
    proc_owner_cache_free(&cache);
    inode_set_free(&want);
}

/* pidfd_cache_take: one pidfd per process, the fds it gives are the owner's sockets. */
static void test_pidfd_cache(void **state)
{
    _cleanup_close_ int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    uint64_t inode, got;
    assert_int_equal(fd_socket_inode(s, &inode), 0);
    struct pidfd_cache c = {0};
    for (int i = 0; i < 3; i++) {
        int fd = pidfd_cache_take(&c, getpid(), s);
        assert_true(fd >= 0);
        assert_int_equal(fd_socket_inode(fd, &got), 0);
        assert_true(got == inode);
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        close(fd);
    }
    assert_int_equal(c.n, 1);
    assert_int_equal(pidfd_cache_take(&c, getpid(), 100000), -EBADF);
    assert_int_equal(pidfd_cache_take(&c, 0, s), -EINVAL);
    assert_int_equal(pidfd_cache_take(&c, getpid(), -1), -EINVAL);
    /* A process that is gone (reaped) stays gone, without asking the kernel again. */
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0)
        _exit(0);
    assert_int_equal(waitpid(child, NULL, 0), child);
    assert_int_equal(pidfd_cache_take(&c, child, 0), -ESRCH);
    assert_int_equal(pidfd_cache_take(&c, child, 0), -ESRCH);
    /* Growing keeps what is there. */
    for (pid_t p = 2000000; p < 2000100; p++)
        assert_int_equal(pidfd_cache_take(&c, p, 0), -ESRCH);
    int fd = pidfd_cache_take(&c, getpid(), s);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(c.n, 102);
    pidfd_cache_done(&c);
    pidfd_cache_done(&c);
}

/* Out of fds for one more pidfd: the cache gives its own back and the socket is still taken. */
static void test_pidfd_cache_emfile(void **state)
{
    _cleanup_close_ int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    uint64_t inode;
    assert_int_equal(fd_socket_inode(s, &inode), 0);
    pid_t kids[4];
    for (size_t i = 0; i < ELEMENTSOF(kids); i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            for (;;)
                pause();
        }
    }
    pid_t t = fork();
    assert_true(t >= 0);
    if (t == 0) { /* the limit only for this process */
        int top = -1;
        for (int fd = 0; fd < 4096; fd++)
            if (fcntl(fd, F_GETFD) >= 0)
                top = fd;
        for (;;) { /* fill the holes below the highest open fd */
            int fd = open("/dev/null", O_RDONLY);
            if (fd < 0)
                _exit(11);
            if (fd > top) {
                close(fd);
                break;
            }
        }
        /* Room for three fds: two cached pidfds and the socket, or a third pidfd. */
        struct rlimit rl = {.rlim_cur = (rlim_t)top + 4, .rlim_max = (rlim_t)top + 4};
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            _exit(10);
        struct pidfd_cache c = {0};
        for (size_t i = 0; i < ELEMENTSOF(kids); i++) {
            int fd = pidfd_cache_take(&c, kids[i], s);
            uint64_t got = 0;
            if (fd < 0 || fd_socket_inode(fd, &got) < 0 || got != inode)
                _exit(20 + (int)i);
            close(fd);
        }
        if (c.n >= ELEMENTSOF(kids))
            _exit(30); /* it could not have kept them all */
        pidfd_cache_done(&c);
        _exit(0);
    }
    int st = -1;
    assert_int_equal(waitpid(t, &st, 0), t);
    for (size_t i = 0; i < ELEMENTSOF(kids); i++) {
        kill(kids[i], SIGKILL);
        waitpid(kids[i], NULL, 0);
    }
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_partial),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_random),
        cmocka_unit_test(test_proc_owner_fake),
        cmocka_unit_test(test_proc_owner_self),
        cmocka_unit_test(test_inode_set),
        cmocka_unit_test(test_proc_owner_held_fake),
        cmocka_unit_test(test_proc_owner_held_self),
        cmocka_unit_test(test_pidfd_cache),
        cmocka_unit_test(test_pidfd_cache_emfile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
