/* Unit tests of the daemon's job table with a fake runner (no libvirt): the same domain is
 * serialised and a second request gets a clear Busy error, different domains run in parallel
 * (both jobs are seen running at once; no timing involved), the job limit, stop cancels
 * running jobs and waits for them, events (order, since, the ring dropping the oldest),
 * metrics, and the control commands that need no libvirt through qga dispatch (unknown
 * arguments, bad types, events, status, policy-list). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/util.h"
#include "host/daemon.h"
#include "host/metrics.h"
#include "host/transaction.h"

/* The fake runner's shared state: jobs block until released or cancelled. */
struct fake {
    pthread_mutex_t m;
    pthread_cond_t c;
    unsigned in_run, max_in_run;
    bool release;
};

static struct fake fk = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, false};

static void fake_run(struct daemon *d, struct daemon_job *j)
{
    pthread_mutex_lock(&fk.m);
    fk.in_run++;
    if (fk.in_run > fk.max_in_run)
        fk.max_in_run = fk.in_run;
    pthread_cond_broadcast(&fk.c);
    while (!fk.release && !j->cancel) {
        /* the cancel flag is set by daemon_stop without a signal to fk.c: poll it */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&fk.c, &fk.m, &ts);
    }
    fk.in_run--;
    pthread_mutex_unlock(&fk.m);
    j->ok = !j->cancel;
    snprintf(j->outcome, sizeof(j->outcome), "%s", j->cancel ? "interrupted" : "ok");
    snprintf(j->message, sizeof(j->message), "fake %s", j->domain);
}

static const struct daemon_runner fake_runner = {.run = fake_run};

static uint64_t clock_now(void *ud, bool realtime)
{
    return realtime ? now_realtime_ns() : now_monotonic_ns();
}

static struct daemon *new_daemon(void)
{
    struct daemon *d = calloc(1, sizeof(*d));
    struct daemon_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.state_dir, sizeof(cfg.state_dir), "/nonexistent/netckpt-test");
    snprintf(cfg.policy_dir, sizeof(cfg.policy_dir), "/nonexistent/netckpt-policies");
    snprintf(cfg.socket_path, sizeof(cfg.socket_path), "/nonexistent/sock");
    struct sched_clock clk = {.now = clock_now};
    assert_int_equal(daemon_init(d, &cfg, NULL, &fake_runner, &clk), 0);
    pthread_mutex_lock(&fk.m);
    fk.in_run = fk.max_in_run = 0;
    fk.release = false;
    pthread_mutex_unlock(&fk.m);
    return d;
}

static void wait_in_run(unsigned n)
{
    pthread_mutex_lock(&fk.m);
    while (fk.in_run < n)
        pthread_cond_wait(&fk.c, &fk.m);
    pthread_mutex_unlock(&fk.m);
}

static void release_all(void)
{
    pthread_mutex_lock(&fk.m);
    fk.release = true;
    pthread_cond_broadcast(&fk.c);
    pthread_mutex_unlock(&fk.m);
}

static int start(struct daemon *d, const char *domain, struct daemon_job **out, char *err,
                 size_t errlen)
{
    struct daemon_job t = {.kind = DAEMON_JOB_CHECKPOINT};
    snprintf(t.domain, sizeof(t.domain), "%s", domain);
    return daemon_job_start(d, &t, out, err, errlen);
}

static void finish(struct daemon *d)
{
    release_all();
    daemon_stop(d, 60);
    assert_int_equal(d->running, 0);
    daemon_free(d);
    free(d);
}

static void test_same_domain_busy_other_parallel(void **state)
{
    struct daemon *d = new_daemon();
    struct daemon_job *a = NULL, *b = NULL, *c = NULL;
    char err[512] = "";
    assert_int_equal(start(d, "web1", &a, err, sizeof(err)), 0);
    wait_in_run(1);
    assert_int_equal(start(d, "web1", &b, err, sizeof(err)), -EBUSY);
    assert_null(b);
    assert_non_null(strstr(err, "domain web1 is busy: a checkpoint (job 1) is running"));
    /* an inline operation on the busy domain is refused too */
    assert_int_equal(daemon_claim(d, "web1", "unblock", 0, err, sizeof(err)), -EBUSY);
    /* another domain runs at the same time */
    assert_int_equal(start(d, "web2", &c, err, sizeof(err)), 0);
    wait_in_run(2);
    struct daemon_claim cl;
    assert_int_equal(daemon_claim_get(d, "web2", &cl), 1);
    assert_int_equal(cl.job, c->id);
    release_all();
    assert_int_equal(daemon_job_wait(d, a, -1), 0);
    assert_int_equal(daemon_job_wait(d, c, -1), 0);
    assert_true(a->ok && c->ok);
    assert_string_equal(a->outcome, "ok");
    assert_int_equal(fk.max_in_run, 2);
    daemon_job_put(d, a);
    daemon_job_put(d, c);
    /* wait for the workers to leave the table's running count */
    pthread_mutex_lock(&d->lock);
    while (d->running)
        pthread_cond_wait(&d->cond, &d->lock);
    pthread_mutex_unlock(&d->lock);
    /* free again: the domain can be claimed */
    assert_int_equal(daemon_claim_get(d, "web1", NULL), 0);
    assert_int_equal(daemon_claim(d, "web1", "unblock", 0, err, sizeof(err)), 0);
    daemon_release(d, "web1");
    /* status by id keeps the finished job */
    struct daemon_job *g = daemon_job_get(d, 1);
    assert_non_null(g);
    json_object *j = daemon_job_json(g, true);
    assert_string_equal(json_object_get_string(json_object_object_get(j, "state")), "done");
    json_object_put(j);
    daemon_job_put(d, g);
    assert_null(daemon_job_get(d, 999));
    finish(d);
}

static void test_job_limit_and_stop(void **state)
{
    struct daemon *d = new_daemon();
    char err[512], name[32];
    struct daemon_job *first = NULL;
    for (int i = 0; i < DAEMON_MAX_RUNNING; i++) {
        snprintf(name, sizeof(name), "vm%d", i);
        assert_int_equal(start(d, name, i ? NULL : &first, err, sizeof(err)), 0);
    }
    wait_in_run(DAEMON_MAX_RUNNING);
    assert_int_equal(start(d, "one-more", NULL, err, sizeof(err)), -EAGAIN);
    assert_non_null(strstr(err, "too many jobs"));
    /* stop: every running job is cancelled (rolls back) and waited for */
    daemon_stop(d, 60);
    assert_int_equal(d->running, 0);
    assert_string_equal(first->outcome, "interrupted");
    assert_int_equal(start(d, "late", NULL, err, sizeof(err)), -ESHUTDOWN);
    daemon_job_put(d, first);
    daemon_free(d);
    free(d);
}

static void test_events(void **state)
{
    struct daemon *d = new_daemon();
    uint64_t next;
    json_object *ev = daemon_events_json(d, 0, 100, 0, &next);
    assert_int_equal(json_object_array_length(ev), 0);
    assert_int_equal(next, 0);
    json_object_put(ev);
    daemon_event(d, "info", "test", "web1", "pol", 7, "hello %d", 1);
    daemon_event(d, "warn", "test", NULL, NULL, 0, "second");
    ev = daemon_events_json(d, 0, 100, 0, &next);
    assert_int_equal(json_object_array_length(ev), 2);
    assert_int_equal(next, 2);
    json_object *e0 = json_object_array_get_idx(ev, 0);
    assert_string_equal(json_object_get_string(json_object_object_get(e0, "message")), "hello 1");
    assert_string_equal(json_object_get_string(json_object_object_get(e0, "domain")), "web1");
    assert_int_equal(json_object_get_int(json_object_object_get(e0, "job")), 7);
    json_object_put(ev);
    ev = daemon_events_json(d, 1, 100, 0, &next);
    assert_int_equal(json_object_array_length(ev), 1);
    json_object_put(ev);
    /* the ring keeps the newest DAEMON_EVENTS */
    for (int i = 0; i < DAEMON_EVENTS + 10; i++)
        daemon_event(d, "info", "flood", NULL, NULL, 0, "n%d", i);
    ev = daemon_events_json(d, 0, 1000, 0, &next);
    assert_int_equal(json_object_array_length(ev), DAEMON_EVENTS);
    assert_int_equal(next, DAEMON_EVENTS + 12);
    assert_int_equal(
        json_object_get_int64(json_object_object_get(json_object_array_get_idx(ev, 0), "seq")), 13);
    json_object_put(ev);
    /* max */
    ev = daemon_events_json(d, 0, 5, 0, &next);
    assert_int_equal(json_object_array_length(ev), 5);
    assert_int_equal(next, 17);
    json_object_put(ev);
    finish(d);
}

static void test_metrics(void **state)
{
    struct txn_result r;
    memset(&r, 0, sizeof(r));
    r.outcome = TXN_OK;
    manifest_add_step(&r.m, "discover", 1000000);
    manifest_add_step(&r.m, "gate", 2000000);
    manifest_add_step(&r.m, "freeze", 30000000);
    manifest_add_step(&r.m, "save", 500000000);
    manifest_add_step(&r.m, "lift", 1000000);
    manifest_add_step(&r.m, "thaw", 7000000);
    r.m.n_connections = 3;
    r.report = json_tokener_parse("{\"survived\":2,\"reset\":1,\"stale\":0,\"stalled\":0}");
    /* the gate was up from the end of "gate" to the end of "lift" */
    assert_true(metrics_gate_seconds(&r) > 0.530999 && metrics_gate_seconds(&r) < 0.531001);
    struct metrics m = {0};
    metrics_record(&m, false, &r);
    r.outcome = TXN_ROLLED_BACK;
    metrics_record(&m, false, &r);
    assert_int_equal(m.checkpoints_ok, 1);
    assert_int_equal(m.checkpoints_failed, 1);
    assert_int_equal(m.conns_kept, 4);
    assert_int_equal(m.conns_lost, 2);
    assert_int_equal(m.conns_frozen, 3);
    char *text = NULL;
    assert_int_equal(metrics_render(&m, &text), 0);
    assert_non_null(strstr(text, "# TYPE netckptd_checkpoints_total counter\n"));
    assert_non_null(strstr(text, "netckptd_checkpoints_total{result=\"ok\"} 1\n"));
    assert_non_null(strstr(text, "netckptd_checkpoints_total{result=\"failed\"} 1\n"));
    assert_non_null(strstr(text, "netckptd_last_checkpoint_gate_seconds 0.531000\n"));
    assert_non_null(strstr(text, "netckptd_connections_kept_total 4\n"));
    assert_non_null(strstr(text, "netckptd_connections_lost_total 2\n"));
    /* every sample line is NAME[{labels}] VALUE, every family has HELP and TYPE */
    size_t help = 0, type = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strncmp(line, "# HELP ", 7))
            help++;
        else if (!strncmp(line, "# TYPE ", 7))
            type++;
        else
            assert_non_null(strchr(line, ' '));
    }
    assert_int_equal(help, type);
    free(text);
    json_object_put(r.report);

    char tmpl[] = "/tmp/nc-metrics-XXXXXX";
    char *dir = mkdtemp(tmpl);
    char path[128];
    snprintf(path, sizeof(path), "%s/netckptd.prom", dir);
    assert_int_equal(metrics_write(path, &m), 0);
    char *buf;
    size_t len;
    assert_int_equal(read_file(path, 1 << 20, &buf, &len), 0);
    assert_non_null(strstr(buf, "netckptd_jobs_running 0"));
    free(buf);
    rm_rf(dir);
}

/* ---- commands through the qga dispatch ---- */

static json_object *call(struct qga_server *s, const char *req)
{
    json_object *r = json_tokener_parse(req);
    assert_non_null(r);
    bool delim;
    json_object *rep = qga_server_dispatch(s, r, &delim);
    json_object_put(r);
    return rep;
}

static const char *err_class(json_object *rep)
{
    json_object *e = json_object_object_get(rep, "error");
    return e ? json_object_get_string(json_object_object_get(e, "class")) : NULL;
}

static void test_commands(void **state)
{
    struct daemon *d = new_daemon();
    struct daemon_conn conn = {.d = d, .fd = -1};
    struct qga_command table[DAEMON_COMMAND_COUNT];
    daemon_command_table(table);
    struct qga_server s;
    assert_int_equal(qga_server_init(&s, table, DAEMON_COMMAND_COUNT, &conn, NULL), 0);

    json_object *rep = call(&s, "{\"execute\":\"events\",\"arguments\":{\"bogus\":1}}");
    assert_string_equal(err_class(rep), "InvalidParameter");
    json_object_put(rep);
    rep = call(&s, "{\"execute\":\"events\",\"arguments\":{\"max\":0}}");
    assert_string_equal(err_class(rep), "InvalidParameter");
    json_object_put(rep);
    rep = call(&s, "{\"execute\":\"checkpoint\",\"arguments\":{}}");
    assert_string_equal(err_class(rep), "InvalidParameter"); /* domain is required */
    json_object_put(rep);
    rep = call(&s, "{\"execute\":\"checkpoint\",\"arguments\":{\"domain\":7}}");
    assert_string_equal(err_class(rep), "InvalidParameter");
    json_object_put(rep);
    rep = call(&s, "{\"execute\":\"restore\",\"arguments\":{\"bundle\":\"rel/path\"}}");
    assert_string_equal(err_class(rep), "InvalidParameter");
    json_object_put(rep);
    /* A bundle without a manifest still gets a job (claiming the path): its transaction
     * refuses it with the CLI's report. Here the fake job runs until cancelled. */
    rep = call(&s, "{\"execute\":\"restore\",\"arguments\":{\"bundle\":\"/nonexistent/b\","
                   "\"wait\":false}}");
    assert_null(err_class(rep));
    json_object *jr = json_object_object_get(rep, "return");
    assert_string_equal(json_object_get_string(json_object_object_get(jr, "domain")),
                        "bundle:/nonexistent/b");
    int64_t jid = json_object_get_int64(json_object_object_get(jr, "job"));
    json_object_put(rep);
    char req[160];
    snprintf(req, sizeof(req), "{\"execute\":\"cancel\",\"arguments\":{\"job\":%" PRId64 "}}", jid);
    rep = call(&s, req);
    assert_null(err_class(rep));
    assert_true(json_object_get_boolean(
        json_object_object_get(json_object_object_get(rep, "return"), "cancelled")));
    json_object_put(rep);
    for (;;) { /* the fake job sees the cancel flag within 10 ms */
        snprintf(req, sizeof(req), "{\"execute\":\"status\",\"arguments\":{\"job\":%" PRId64 "}}",
                 jid);
        rep = call(&s, req);
        jr = json_object_object_get(rep, "return");
        bool done = !strcmp(json_object_get_string(json_object_object_get(jr, "state")), "done");
        if (done)
            assert_string_equal(json_object_get_string(json_object_object_get(jr, "outcome")),
                                "interrupted");
        json_object_put(rep);
        if (done)
            break;
        usleep(10000);
    }
    rep = call(&s, "{\"execute\":\"cancel\",\"arguments\":{\"job\":9999}}");
    assert_string_equal(err_class(rep), "NotFound");
    json_object_put(rep);
    rep = call(&s, "{\"execute\":\"policy-run\",\"arguments\":{\"name\":\"nope\"}}");
    assert_string_equal(err_class(rep), "NotFound");
    json_object_put(rep);
    rep = call(&s, "{\"execute\":\"status\",\"arguments\":{\"agent-channel\":\"x\"}}");
    assert_string_equal(err_class(rep), "InvalidParameter");
    json_object_put(rep);
    rep = call(&s, "{\"execute\":\"no-such\"}");
    assert_string_equal(err_class(rep), "CommandNotFound");
    json_object_put(rep);

    pthread_mutex_lock(&d->lock);
    uint64_t seq0 = d->event_seq; /* the job above left its own events */
    pthread_mutex_unlock(&d->lock);
    daemon_event(d, "info", "test", NULL, NULL, 0, "one");
    snprintf(req, sizeof(req),
             "{\"execute\":\"events\",\"arguments\":{\"since\":%" PRIu64 "},\"id\":5}", seq0);
    rep = call(&s, req);
    assert_null(err_class(rep));
    json_object *ret = json_object_object_get(rep, "return");
    assert_int_equal(json_object_array_length(json_object_object_get(ret, "events")), 1);
    assert_int_equal(json_object_get_int(json_object_object_get(ret, "next")), (int)seq0 + 1);
    assert_int_equal(json_object_get_int(json_object_object_get(rep, "id")), 5);
    json_object_put(rep);

    rep = call(&s, "{\"execute\":\"status\"}");
    ret = json_object_object_get(rep, "return");
    assert_non_null(ret);
    assert_int_equal(json_object_get_int(json_object_object_get(ret, "running")), 0);
    json_object_put(rep);
    rep = call(&s, "{\"execute\":\"status\",\"arguments\":{\"job\":42}}");
    assert_string_equal(err_class(rep), "NotFound");
    json_object_put(rep);
    rep = call(&s, "{\"execute\":\"policy-list\"}");
    ret = json_object_object_get(rep, "return");
    assert_int_equal(json_object_array_length(json_object_object_get(ret, "policies")), 0);
    json_object_put(rep);
    rep = call(&s, "{\"execute\":\"guest-ping\"}"); /* built in: lets clients resync */
    assert_null(err_class(rep));
    json_object_put(rep);
    qga_server_free(&s);
    finish(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_domain_busy_other_parallel),
        cmocka_unit_test(test_job_limit_and_stop),
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_commands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
