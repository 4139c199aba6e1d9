/* Unit tests of common/util: base64 round trip and refusal of malformed input (padding only at
 * the end), read_file's limit, mkdir_p over a file, rm_rf of a nested tree without following
 * symlinks, write_file_atomic, sha256_hex. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/macro.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void test_base64_round_trip(void **state)
{
    (void)state;
    uint8_t in[256];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 7 + 3);
    for (size_t len = 0; len <= sizeof(in); len += 1 + len / 8) {
        char *enc = base64_encode(in, len);
        assert_non_null(enc);
        assert_int_equal(strlen(enc), 4 * ((len + 2) / 3));
        uint8_t *out = NULL;
        size_t n = 99;
        assert_int_equal(base64_decode(enc, strlen(enc), &out, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(out, in, len);
        free(out);
        free(enc);
    }
}

static void test_base64_refuses(void **state)
{
    (void)state;
    /* '=' anywhere but as trailing padding, bad characters, bad lengths. */
    static const char *const bad[] = {"AB=C", "QQ=A", "A===",  "====", "=QQQ",
                                      "QQ=",  "ab c", "QQ\n=", "Q-_A", "QUJD\0AAA"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t len = i == 9 ? 8 : strlen(bad[i]);
        uint8_t *out = NULL;
        size_t n = 0;
        int r = base64_decode(bad[i], len, &out, &n);
        if (r != -EINVAL)
            fail_msg("base64_decode accepted \"%s\" (%d)", bad[i], r);
        assert_null(out);
    }
    uint8_t *out = NULL;
    size_t n = 0;
    assert_int_equal(base64_decode("QUI=", 4, &out, &n), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(out, "AB", 2);
    free(out);
}

static void test_sha256(void **state)
{
    (void)state;
    char hex[SHA256_HEX_LEN];
    sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

struct tmp {
    char dir[64];
};

static int setup(void **state)
{
    struct tmp *t = calloc(1, sizeof(*t));
    snprintf(t->dir, sizeof(t->dir), "/tmp/nc-util-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct tmp *t = *state;
    rm_rf(t->dir);
    free(t);
    return 0;
}

static void test_files(void **state)
{
    struct tmp *t = *state;
    char p[PATH_MAX], q[PATH_MAX];
    snprintf(p, sizeof(p), "%s/f", t->dir);
    assert_int_equal(write_file_atomic(p, "hello", 5, 0600), 0);
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(read_file(p, 5, &buf, &len), 0);
    assert_int_equal(len, 5);
    assert_string_equal(buf, "hello");
    free(buf);
    buf = NULL;
    assert_int_equal(read_file(p, 4, &buf, &len), -EFBIG);
    assert_null(buf);

    /* mkdir_p: nested dirs, an existing dir, and a file in the way */
    snprintf(q, sizeof(q), "%s/a/b/c", t->dir);
    assert_int_equal(mkdir_p(q, 0700), 0);
    assert_int_equal(mkdir_p(q, 0700), 0);
    assert_int_equal(mkdir_p(p, 0700), -ENOTDIR);
    snprintf(q, sizeof(q), "%s/f/x", t->dir);
    assert_int_equal(mkdir_p(q, 0700), -ENOTDIR);
}

static void test_rm_rf(void **state)
{
    struct tmp *t = *state;
    /* a tree with a symlink pointing outside it: the target must survive */
    char outside[PATH_MAX], tree[256], p[PATH_MAX];
    snprintf(outside, sizeof(outside), "%s/keep", t->dir);
    snprintf(tree, sizeof(tree), "%s/tree", t->dir);
    assert_int_equal(mkdir_p(outside, 0700), 0);
    snprintf(p, sizeof(p), "%s/keep/file", t->dir);
    assert_int_equal(write_file_atomic(p, "x", 1, 0600), 0);
    snprintf(p, sizeof(p), "%s/d1/d2", tree);
    assert_int_equal(mkdir_p(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/d1/d2/f", tree);
    assert_int_equal(write_file_atomic(p, "y", 1, 0600), 0);
    snprintf(p, sizeof(p), "%s/d1/link", tree);
    assert_int_equal(symlink(outside, p), 0);
    assert_int_equal(rm_rf(tree), 0);
    struct stat st;
    assert_int_equal(stat(tree, &st), -1);
    snprintf(p, sizeof(p), "%s/keep/file", t->dir);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(rm_rf(tree), 0); /* already gone */
}

static void test_unix_connect(void **state)
{
    struct tmp *t = *state;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s", t->dir);
    const char *p = sa.sun_path;
    assert_int_equal(unix_connect(p, 0), -ENOENT);

    char longp[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
    memset(longp, 'x', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = 0;
    assert_int_equal(unix_connect(longp, 0), -ENAMETOOLONG);

    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(l >= 0);
    assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(l, 0), 0);
    int fd = unix_connect(p, 0);
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(write_full(fd, "ping", 4), 0);
    int a = accept(l, NULL, NULL);
    assert_true(a >= 0);
    char buf[4];
    assert_int_equal(read_full(a, buf, 4), 0);
    assert_memory_equal(buf, "ping", 4);
    close(a);
    close(fd);

    /* Nobody accepts: once the backlog is full a timed connect fails instead of blocking. */
    int fds[8], n = 0, r = 0;
    while (n < 8 && (r = unix_connect(p, 50)) >= 0)
        fds[n++] = r;
    assert_int_equal(r, -ETIMEDOUT);
    while (n > 0)
        close(fds[--n]);
    close(l);
}

static void test_append_listf(void **state)
{
    (void)state;
    char b[16] = "";
    append_listf(b, sizeof(b), "one");
    assert_string_equal(b, "one");
    append_listf(b, sizeof(b), "t%s", "wo");
    assert_string_equal(b, "one; two");
    append_listf(b, sizeof(b), "three-long");
    assert_string_equal(b, "one; two; three"); /* truncated, still terminated */
    append_listf(b, sizeof(b), "four");
    assert_string_equal(b, "one; two; three"); /* full: nothing more */
}

static void test_signalfd_block(void **state)
{
    static const int sigs[] = {SIGUSR1, SIGUSR2};
    sigset_t old;
    assert_int_equal(sigprocmask(SIG_SETMASK, NULL, &old), 0);
    int fd = signalfd_block(sigs, ELEMENTSOF(sigs));
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    struct signalfd_siginfo si;
    assert_int_equal(read(fd, &si, sizeof(si)), -1); /* nothing pending, does not block */
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(raise(SIGUSR2), 0); /* blocked: queued for the fd, not delivered */
    assert_int_equal(read(fd, &si, sizeof(si)), sizeof(si));
    assert_int_equal(si.ssi_signo, SIGUSR2);
    assert_ptr_equal(signal(SIGPIPE, SIG_IGN), SIG_IGN);
    static const int bad[] = {0};
    assert_int_equal(signalfd_block(bad, 1), -EINVAL);
    close(fd);
    assert_int_equal(sigprocmask(SIG_SETMASK, &old, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_round_trip),
        cmocka_unit_test(test_base64_refuses),
        cmocka_unit_test(test_sha256),
        cmocka_unit_test_setup_teardown(test_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rm_rf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unix_connect, setup, teardown),
        cmocka_unit_test(test_append_listf),
        cmocka_unit_test(test_signalfd_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
