/* Real-kernel tests of sock-diag, proc-owner, quiesce and pidfd_take_socket. Run as root in a
 * network namespace of its own (tests/integration/guest-discovery.sh makes it), on loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "common/util.h"
#include "guest/proc-owner.h"
#include "guest/quiesce.h"
#include "guest/sock-diag.h"

static void msleep(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------ sockets */

static int listener(int family, const char *addr, bool v6only, uint16_t *port)
{
    int s = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, addr, &a->sin_addr), 1);
        len = sizeof(*a);
    } else {
        int v = v6only;
        assert_int_equal(setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof(v)), 0);
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, addr, &a->sin6_addr), 1);
        len = sizeof(*a);
    }
    assert_int_equal(bind(s, (struct sockaddr *)&ss, len), 0);
    assert_int_equal(listen(s, 16), 0);
    len = sizeof(ss);
    assert_int_equal(getsockname(s, (struct sockaddr *)&ss, &len), 0);
    *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                    : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return s;
}

static int connect_to(int family, const char *addr, uint16_t port)
{
    int s = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        inet_pton(AF_INET, addr, &a->sin_addr);
        len = sizeof(*a);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        inet_pton(AF_INET6, addr, &a->sin6_addr);
        len = sizeof(*a);
    }
    assert_int_equal(connect(s, (struct sockaddr *)&ss, len), 0);
    return s;
}

static int accept_one(int l)
{
    int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    assert_true(s >= 0);
    return s;
}

static uint64_t inode_of(int fd)
{
    uint64_t ino = 0;
    assert_int_equal(fd_socket_inode(fd, &ino), 0);
    return ino;
}

/* The sock_diag entry of fd, found by inode; NULL if absent. */
static const struct sock_diag_tcp *find(const struct sock_diag_tcp *v, size_t n, int fd)
{
    uint64_t ino = inode_of(fd);
    for (size_t i = 0; i < n; i++)
        if (v[i].inode == ino)
            return &v[i];
    return NULL;
}

/* List until fd's entry is in state (loopback state changes are quick but asynchronous). */
static struct sock_diag_tcp expect_state(int fd, uint8_t state)
{
    for (int tries = 0; tries < 500; tries++) {
        _cleanup_free_ struct sock_diag_tcp *v = NULL;
        size_t n = 0;
        assert_int_equal(sock_diag_tcp_list(SOCK_DIAG_ALL_STATES, &v, &n), 0);
        const struct sock_diag_tcp *e = find(v, n, fd);
        if (e && e->state == state)
            return *e;
        msleep(10);
    }
    fail_msg("fd %d never reached state %u", fd, state);
    return (struct sock_diag_tcp){0};
}

static uint16_t local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                         : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

static void test_sock_diag_lists(void **state)
{
    uint16_t p4, p6, pd;
    _cleanup_close_ int l4 = listener(AF_INET, "127.0.0.1", false, &p4);
    _cleanup_close_ int l6 = listener(AF_INET6, "::1", true, &p6);
    _cleanup_close_ int ld = listener(AF_INET6, "::", false, &pd);

    _cleanup_close_ int c4 = connect_to(AF_INET, "127.0.0.1", p4);
    _cleanup_close_ int s4 = accept_one(l4);
    _cleanup_close_ int c6 = connect_to(AF_INET6, "::1", p6);
    _cleanup_close_ int s6 = accept_one(l6);
    _cleanup_close_ int cm = connect_to(AF_INET, "127.0.0.1", pd); /* to a dual-stack server */
    _cleanup_close_ int sm = accept_one(ld);
    _cleanup_close_ int ch = connect_to(AF_INET6, "::1", p6); /* half-closed below */
    _cleanup_close_ int sh = accept_one(l6);
    assert_int_equal(shutdown(ch, SHUT_WR), 0);

    struct sock_diag_tcp e = expect_state(l4, TCP_LISTEN);
    assert_int_equal(e.family, AF_INET);
    assert_int_equal(e.local.port, p4);
    e = expect_state(l6, TCP_LISTEN);
    assert_int_equal(e.family, AF_INET6);
    assert_int_equal(e.local.family, AF_INET6);
    assert_true(IN6_IS_ADDR_LOOPBACK(&e.local.addr));
    e = expect_state(ld, TCP_LISTEN);
    assert_int_equal(e.family, AF_INET6);
    assert_true(IN6_IS_ADDR_UNSPECIFIED(&e.local.addr));

    e = expect_state(c4, TCP_ESTABLISHED);
    assert_int_equal(e.family, AF_INET);
    assert_int_equal(e.local.port, local_port(c4));
    assert_int_equal(e.remote.port, p4);
    assert_int_equal(e.remote.addr.s6_addr[12], 127);
    assert_int_equal(e.uid, getuid());
    e = expect_state(s4, TCP_ESTABLISHED);
    assert_int_equal(e.local.port, p4);
    assert_int_equal(e.remote.port, local_port(c4));

    e = expect_state(c6, TCP_ESTABLISHED);
    assert_int_equal(e.family, AF_INET6);
    assert_int_equal(e.remote.family, AF_INET6);
    assert_int_equal(e.remote.port, p6);
    expect_state(s6, TCP_ESTABLISHED);

    /* The accepted socket of a dual-stack listener: AF_INET6 with a v4-mapped peer. */
    e = expect_state(sm, TCP_ESTABLISHED);
    assert_int_equal(e.family, AF_INET6);
    assert_int_equal(e.local.family, AF_INET);
    assert_int_equal(e.remote.family, AF_INET);
    assert_true(IN6_IS_ADDR_V4MAPPED(&e.remote.addr));
    assert_int_equal(e.remote.port, local_port(cm));
    e = expect_state(cm, TCP_ESTABLISHED);
    assert_int_equal(e.family, AF_INET);

    expect_state(ch, TCP_FIN_WAIT2);
    expect_state(sh, TCP_CLOSE_WAIT);
    /* And the other half-closed side closes too: LAST_ACK is too brief on loopback, so
     * check that sh's socket goes away once both sides are done. */

    /* A state mask selects. */
    _cleanup_free_ struct sock_diag_tcp *v = NULL;
    size_t n = 0;
    assert_int_equal(sock_diag_tcp_list(SOCK_DIAG_STATE_BIT(TCP_LISTEN), &v, &n), 0);
    assert_true(n >= 3);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(v[i].state, TCP_LISTEN);
    assert_non_null(find(v, n, l4));
    assert_null(find(v, n, c4));
}

static void test_sock_diag_many(void **state)
{
    uint16_t p;
    _cleanup_close_ int l = listener(AF_INET, "127.0.0.1", false, &p);
    enum { N = 300 };
    int fds[2 * N];
    for (int i = 0; i < N; i++) {
        fds[2 * i] = connect_to(AF_INET, "127.0.0.1", p);
        fds[2 * i + 1] = accept_one(l);
    }
    _cleanup_free_ struct sock_diag_tcp *v = NULL;
    size_t n = 0;
    assert_int_equal(sock_diag_tcp_list(SOCK_DIAG_STATE_BIT(TCP_ESTABLISHED), &v, &n), 0);
    assert_true(n >= 2 * N); /* several netlink batches */
    for (int i = 0; i < 2 * N; i++) {
        assert_non_null(find(v, n, fds[i]));
        close(fds[i]);
    }
}

static void test_sock_diag_destroy(void **state)
{
    uint16_t p;
    _cleanup_close_ int l = listener(AF_INET, "127.0.0.1", false, &p);
    _cleanup_close_ int c = connect_to(AF_INET, "127.0.0.1", p);
    _cleanup_close_ int s = accept_one(l);
    struct sock_diag_tcp e = expect_state(c, TCP_ESTABLISHED);
    /* The cookie names this very socket: a stale one (a socket since reused) is refused. */
    struct sock_diag_tcp stale = e;
    stale.cookie ^= 1;
    assert_int_equal(sock_diag_tcp_destroy(&stale), -ENOENT);
    expect_state(c, TCP_ESTABLISHED);
    assert_int_equal(sock_diag_tcp_destroy(&e), 0);
    char b;
    assert_int_equal(recv(c, &b, 1, 0), -1);
    assert_int_equal(errno, ECONNABORTED);
    assert_int_equal(recv(s, &b, 1, 0), -1); /* the peer got an RST */
    assert_int_equal(errno, ECONNRESET);
    assert_int_equal(sock_diag_tcp_destroy(&e), -ENOENT);

    /* IPv6 with a v4-mapped peer: destroyed through its AF_INET6 socket family. */
    uint16_t pd;
    _cleanup_close_ int ld = listener(AF_INET6, "::", false, &pd);
    _cleanup_close_ int cm = connect_to(AF_INET, "127.0.0.1", pd);
    _cleanup_close_ int sm = accept_one(ld);
    e = expect_state(sm, TCP_ESTABLISHED);
    assert_int_equal(sock_diag_tcp_destroy(&e), 0);
    assert_int_equal(recv(cm, &b, 1, 0), -1);
    assert_int_equal(errno, ECONNRESET);
}

/* ------------------------------------------------------------------ proc-owner */

/* A child that keeps its copy of keep_fd, renames itself, says so on ready, and exits at EOF
 * on the gate. */
static pid_t spawn_holder(const char *name, int keep_fd, const int gate[2], int ready)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int gate_fd = gate[0];
        close(gate[1]); /* EOF on the gate once the test closes its end */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        prctl(PR_SET_NAME, name);
        char b = 'r';
        (void)!write(ready, &b, 1);
        while (read(gate_fd, &b, 1) < 0 && errno == EINTR)
            ;
        (void)keep_fd;
        _exit(0);
    }
    return pid;
}

static void reap_child(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
}

static void test_proc_owner_shared(void **state)
{
    uint16_t p;
    _cleanup_close_ int l = listener(AF_INET, "127.0.0.1", false, &p);
    int c = connect_to(AF_INET, "127.0.0.1", p);
    _cleanup_close_ _unused_ int s = accept_one(l); /* held open, never read */
    uint64_t ino = inode_of(c);
    int gate[2];
    assert_int_equal(pipe2(gate, O_CLOEXEC), 0);
    /* fork keeps the fd even with CLOEXEC (no exec). */
    int ready[2];
    assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
    pid_t a = spawn_holder("owner-a", c, gate, ready[1]);
    pid_t b = spawn_holder("owner-b", c, gate, ready[1]);
    int cfd = c;
    close(c);
    close(ready[1]);
    char rb[2];
    assert_int_equal(read_full(ready[0], rb, 2), 0); /* both are named */
    close(ready[0]);

    struct proc_owner_map m;
    assert_int_equal(proc_owner_scan("/proc", 0, &m), 0);
    const struct proc_owner_entry *e;
    assert_int_equal(proc_owner_lookup(&m, ino, &e), 2);
    pid_t lo = a < b ? a : b;
    assert_int_equal(e[0].owner.pid, lo);
    assert_int_equal(e[1].owner.pid, a < b ? b : a);
    assert_int_equal(e[0].owner.fd, cfd);
    assert_string_equal(e[0].owner.comm, lo == a ? "owner-a" : "owner-b");
    proc_owner_map_free(&m);

    close(gate[1]); /* both exit */
    reap_child(a);
    reap_child(b);
    close(gate[0]);
    assert_int_equal(proc_owner_scan("/proc", 0, &m), 0);
    assert_int_equal(proc_owner_lookup(&m, ino, &e), 0);
    proc_owner_map_free(&m);
}

/* ------------------------------------------------------------------ quiesce */

struct shared {
    _Atomic pid_t target;
    _Atomic int done;
    _Atomic int parent_saw_stop; /* waitpid WUNTRACED/WCONTINUED reports */
    _Atomic int parent_sigchld;  /* SIGCHLD deliveries to the parent */
    _Atomic int target_status;   /* how the target ended, as the parent saw it */
    _Atomic int target_reaped;
    _Atomic unsigned long counters[8]; /* 0..3 workers, 4 main, 5 short-lived threads */
};

static struct shared *shm_new(void)
{
    struct shared *sh =
        mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(sh != MAP_FAILED);
    memset(sh, 0, sizeof(*sh));
    return sh;
}

struct worker_arg {
    struct shared *sh;
    int idx;
};

static void *worker(void *p)
{
    struct worker_arg *w = p;
    for (;;) {
        atomic_fetch_add(&w->sh->counters[w->idx], 1);
        for (volatile int i = 0; i < 1000; i++)
            ;
    }
    return NULL;
}

static void *short_lived(void *p)
{
    struct shared *sh = p;
    atomic_fetch_add(&sh->counters[5], 1);
    return NULL;
}

/* Creates threads all the time: the quiescer must catch those that appear meanwhile. */
static void *spawner(void *p)
{
    for (;;) {
        pthread_t t;
        if (pthread_create(&t, NULL, short_lived, p) == 0)
            pthread_join(t, NULL);
    }
    return NULL;
}

static void target_main(struct shared *sh)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test must not leave spinners behind */
    static struct worker_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct worker_arg){sh, i};
        pthread_t t;
        if (pthread_create(&t, NULL, worker, &args[i]) != 0)
            _exit(3);
    }
    pthread_t t;
    if (pthread_create(&t, NULL, spawner, sh) != 0)
        _exit(3);
    for (;;) {
        atomic_fetch_add(&sh->counters[4], 1);
        msleep(1);
    }
}

/* The target's real parent: watches for any stop notification or SIGCHLD, then reaps the
 * target. SIGCHLD is blocked and polled, so no handler (and no global) is needed. */
static void parent_main(struct shared *sh)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    pid_t t = fork();
    if (t < 0)
        _exit(2);
    if (t == 0)
        target_main(sh);
    atomic_store(&sh->target, t);
    for (;;) {
        int st;
        pid_t r = waitpid(t, &st, WUNTRACED | WCONTINUED | WNOHANG);
        if (r == t && (WIFSTOPPED(st) || WIFCONTINUED(st)))
            atomic_fetch_add(&sh->parent_saw_stop, 1);
        if (r == t && (WIFEXITED(st) || WIFSIGNALED(st))) {
            atomic_store(&sh->target_status, st);
            atomic_store(&sh->target_reaped, 1);
            _exit(0);
        }
        struct timespec zero = {0, 0};
        if (!atomic_load(&sh->done) && sigtimedwait(&chld, NULL, &zero) == SIGCHLD)
            atomic_fetch_add(&sh->parent_sigchld, 1);
        if (atomic_load(&sh->done)) {
            kill(t, SIGKILL);
            atomic_store(&sh->done, 0);
        }
        msleep(1);
    }
}

static pid_t start_family(struct shared *sh)
{
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0)
        parent_main(sh);
    for (int i = 0; i < 1000 && !atomic_load(&sh->target); i++)
        msleep(5);
    assert_true(atomic_load(&sh->target) > 0);
    /* Running: every counter moved. */
    for (int i = 0; i < 1000; i++) {
        bool all = true;
        for (int k = 0; k < 6; k++)
            all = all && atomic_load(&sh->counters[k]) > 0;
        if (all)
            return p;
        msleep(5);
    }
    fail_msg("target never started");
    return p;
}

static void end_family(struct shared *sh, pid_t p)
{
    atomic_store(&sh->done, 1);
    for (int i = 0; i < 2000; i++) {
        int st;
        pid_t r = waitpid(p, &st, WNOHANG);
        if (r == p)
            return;
        msleep(5);
    }
    kill(p, SIGKILL);
    kill(atomic_load(&sh->target), SIGKILL);
    reap_child(p);
    fail_msg("the target's parent never saw it exit");
}

/* Threads listed, and how many are in a ptrace stop ('t'). */
static void task_states(pid_t pid, int *total, int *traced)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    DIR *d = opendir(path);
    assert_non_null(d);
    *total = *traced = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char p2[340], buf[512];
        snprintf(p2, sizeof(p2), "%s/%s/stat", path, de->d_name);
        int fd = open(p2, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t k = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (k <= 0)
            continue;
        buf[k] = 0;
        char *c = strrchr(buf, ')');
        (*total)++;
        if (c && c[2] == 't')
            (*traced)++;
    }
    closedir(d);
}

static void snapshot(struct shared *sh, unsigned long out[6])
{
    for (int k = 0; k < 6; k++)
        out[k] = atomic_load(&sh->counters[k]);
}

static void test_quiesce_multithreaded(void **state)
{
    struct shared *sh = shm_new();
    pid_t p = start_family(sh);
    pid_t t = atomic_load(&sh->target);

    struct quiesce_set qs;
    quiesce_init(&qs);
    for (int round = 0; round < 3; round++) {
        int held = quiesce_add(&qs, t);
        assert_true(held >= 6); /* main, 4 workers, spawner (+ a short-lived one) */
        assert_true(quiesce_holds(&qs, t));
        assert_int_equal(quiesce_add(&qs, t), 0); /* already held */
        int total, traced;
        task_states(t, &total, &traced);
        assert_int_equal(traced, total);
        assert_int_equal(total, held);

        unsigned long a[6], b[6];
        snapshot(sh, a);
        msleep(50);
        snapshot(sh, b);
        assert_memory_equal(a, b, sizeof(a)); /* nothing runs */

        assert_int_equal(quiesce_release(&qs), held);
        assert_false(quiesce_holds(&qs, t));
        assert_int_equal(quiesce_release(&qs), 0); /* idempotent */
        /* Everything runs again. */
        bool moved = false;
        for (int i = 0; i < 1000 && !moved; i++) {
            snapshot(sh, b);
            moved = true;
            for (int k = 0; k < 6; k++)
                moved = moved && b[k] > a[k];
            if (!moved)
                msleep(5);
        }
        assert_true(moved);
        task_states(t, &total, &traced);
        assert_int_equal(traced, 0);
    }
    quiesce_done(&qs);
    /* The real parent never heard of any of it. */
    assert_int_equal(atomic_load(&sh->parent_saw_stop), 0);
    assert_int_equal(atomic_load(&sh->parent_sigchld), 0);
    end_family(sh, p);
    assert_true(atomic_load(&sh->target_reaped));
    munmap(sh, sizeof(*sh));
}

static void test_quiesce_exit_while_held(void **state)
{
    struct shared *sh = shm_new();
    pid_t p = start_family(sh);
    pid_t t = atomic_load(&sh->target);
    struct quiesce_set qs;
    quiesce_init(&qs);
    assert_true(quiesce_add(&qs, t) >= 6);
    assert_int_equal(kill(t, SIGKILL), 0);
    assert_int_equal(quiesce_release(&qs), 0); /* nothing left to resume, and no hang */
    /* The parent is told (we reaped it as tracer, so the kernel notifies the parent). */
    for (int i = 0; i < 2000 && !atomic_load(&sh->target_reaped); i++)
        msleep(5);
    assert_true(atomic_load(&sh->target_reaped));
    int st = atomic_load(&sh->target_status);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
    reap_child(p);
    quiesce_done(&qs);

    /* Edge cases: us, a pid that does not exist. */
    quiesce_init(&qs);
    assert_int_equal(quiesce_add(&qs, getpid()), 0);
    pid_t gone = fork();
    if (gone == 0)
        _exit(0);
    reap_child(gone);
    assert_int_equal(quiesce_add(&qs, gone), 0);
    assert_int_equal(quiesce_add(&qs, -1), -EINVAL);
    assert_int_equal(quiesce_release(&qs), 0);
    quiesce_done(&qs);
    munmap(sh, sizeof(*sh));
}

/* A field of /proc/PID/status ("TracerPid", ...), -1 when unreadable. */
static long status_field(pid_t pid, const char *name)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    long v = -1;
    size_t nl = strlen(name);
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, name, nl) && line[nl] == ':')
            v = strtol(line + nl + 1, NULL, 10);
    fclose(f);
    return v;
}

static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 'X';
    ssize_t k = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (k <= 0)
        return 'X';
    buf[k] = 0;
    char *c = strrchr(buf, ')');
    return c && c[1] == ' ' ? c[2] : 'X';
}

/* A thread that cannot stop in time (here: a vfork parent, waiting for its child in
 * uninterruptible sleep) makes quiesce_add time out. Its interrupt is still pending and stops
 * it once the child exits; the rollback must then detach it, not leave it in a ptrace stop. */
static void test_quiesce_timeout_releases(void **state)
{
    pid_t c = fork();
    assert_true(c >= 0);
    if (c == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        pid_t v = vfork();
        if (v == 0) {
            struct timespec ts = {0, 300 * 1000000L};
            nanosleep(&ts, NULL);
            _exit(0);
        }
        for (;;)
            pause();
    }
    /* Wait until the parent sits in the vfork wait (D). */
    bool in_vfork = false;
    for (int i = 0; i < 2000 && !in_vfork; i++) {
        in_vfork = proc_state(c) == 'D';
        if (!in_vfork)
            msleep(1);
    }
    if (!in_vfork) {
        kill(c, SIGKILL);
        reap_child(c);
        skip(); /* the vfork child finished before we looked: nothing to time out on */
    }
    struct quiesce_set qs;
    quiesce_init(&qs);
    qs.timeout_ms = 50;
    int r = quiesce_add(&qs, c);
    bool held = quiesce_holds(&qs, c);
    /* Released: not traced by us, and not stuck in a ptrace stop. */
    long tracer = status_field(c, "TracerPid");
    char st = proc_state(c);
    quiesce_done(&qs);
    kill(c, SIGKILL); /* before asserting, so a failure leaves nothing behind */
    reap_child(c);
    assert_int_equal(r, -ETIMEDOUT);
    assert_false(held);
    assert_int_equal(tracer, 0);
    assert_true(st != 't');
}

/* ------------------------------------------------------------------ pidfd */

static void test_pidfd_take_socket(void **state)
{
    uint16_t port;
    _cleanup_close_ int l = listener(AF_INET, "127.0.0.1", false, &port);
    int info[2], gate[2];
    assert_int_equal(pipe2(info, O_CLOEXEC), 0);
    assert_int_equal(pipe2(gate, O_CLOEXEC), 0);
    pid_t c = fork();
    assert_true(c >= 0);
    if (c == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(gate[1]);
        close(info[0]);
        /* Open a few fds first so the socket's number differs from ours. */
        for (int i = 0; i < 5; i++)
            (void)!dup(0);
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0)
            _exit(2);
        uint64_t ino = 0;
        fd_socket_inode(s, &ino);
        uint64_t msg[2] = {(uint64_t)s, ino};
        (void)!write(info[1], msg, sizeof(msg));
        char b;
        while (read(gate[0], &b, 1) < 0 && errno == EINTR)
            ;
        _exit(0);
    }
    close(info[1]);
    close(gate[0]);
    _cleanup_close_ int srv = accept_one(l);
    uint64_t msg[2];
    assert_int_equal(read_full(info[0], msg, sizeof(msg)), 0);
    close(info[0]);

    /* Taken while the owner is quiesced, as the agent does. */
    struct quiesce_set qs;
    quiesce_init(&qs);
    assert_true(quiesce_add(&qs, c) >= 1);
    int fd = pidfd_take_socket(c, (int)msg[0]);
    assert_true(fd >= 0);
    assert_int_equal(inode_of(fd), msg[1]);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    /* It is the same socket: what we send arrives at the other end. */
    assert_int_equal(send(fd, "x", 1, 0), 1);
    char b;
    assert_int_equal(recv(srv, &b, 1, 0), 1);
    close(fd);
    assert_int_equal(pidfd_take_socket(c, 999), -EBADF);
    assert_int_equal(quiesce_release(&qs), 1);
    quiesce_done(&qs);

    close(gate[1]);
    reap_child(c);
    assert_int_equal(pidfd_take_socket(c, (int)msg[0]), -ESRCH);
    assert_int_equal(pidfd_take_socket(0, 1), -EINVAL);
}

int main(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "needs root (ptrace, sock_diag destroy)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sock_diag_lists),
        cmocka_unit_test(test_sock_diag_many),
        cmocka_unit_test(test_sock_diag_destroy),
        cmocka_unit_test(test_proc_owner_shared),
        cmocka_unit_test(test_quiesce_multithreaded),
        cmocka_unit_test(test_quiesce_exit_while_held),
        cmocka_unit_test(test_quiesce_timeout_releases),
        cmocka_unit_test(test_pidfd_take_socket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
