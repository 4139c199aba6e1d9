/* tests/tools/replayctl.c: a test-only front end to host/replay (with host/gate), so the
 * integration tests and bench/replay drive the real library. Output is key=value lines.
 *
 *   replayctl hold DOMAIN TAP ADDRS [--limit N] [--pcap OUT] [--no-replay] [--capture-any-ip]
 * [PACE] gate TAP with capture on; print "held group=G"; on SIGUSR1 (or SIGTERM) lift the gate,
 *       stop the capture, print its counts, write OUT, replay into TAP (unless --no-replay).
 *   replayctl hold-forward DOMAIN ADDRS [--limit N] [--pcap OUT] [--pass]
 *       stop mode: hold tables on the prerouting path; on SIGUSR1 remove them and write OUT.
 *   replayctl send TAP ADDRS [--limit N] [PACE] PCAP...
 *       replay the frames of the pcap files, in the order given, into TAP.
 *   replayctl send-taps ADDRS --tap TAP=MAC ... [--limit N] [PACE] PCAP...
 *       the same over several taps, each with its own MAC (replay_send_taps; ADDRS' MACs
 *       filter what the reader keeps).
 *   replayctl capture-add DOMAIN GROUP TAP...   gate_capture_add on an installed gate.
 *   replayctl session DOMAIN --tap TAP=MAC... [--limit N] [--pcap OUT] [--image IMAGE.json
 *       [--prior PCAP]]   the transaction's flow through struct replay_session: gate, capture,
 *       "held", on SIGUSR1 lift, stop, write OUT; with --image replay PRIOR's frames then the
 *       session's, checked against the image's addresses.
 *   replayctl check ADDRS PCAP      validate every frame: "frame I VERDICT" lines.
 *   replayctl outage-start STATE DOMAIN --tap TAP=MAC... [--ip IP...] [--image-id ID]
 *       [--limit N] [--lifetime S] [--exe PATH]   start the detached outage holder (host/hold.h,
 *       hold_start): "holding pid=P"; --exe: the binary to run it (default: replayctl itself)
 *   replayctl outage-status STATE DOMAIN          its status as key=value
 *   replayctl outage-handover STATE DOMAIN --tap TAP=MAC... [--image-id ID] [--pcap OUT]
 *       hold_handover: "handover found=0|1 frames= ... mismatch=", the frames written to OUT
 *   replayctl outage-stop STATE DOMAIN            hold_stop: "stopped=0|1"
 *   replayctl outage-recover STATE                hold_recover: "cleaned=N"
 * ADDRS: --mac MAC (repeatable) --ip IP[@MACINDEX] (repeatable). PACE: --burst N --pace-us US
 * [--adaptive] (none given: the library's default pacing; --burst 0 --pace-us 0: unpaced).
 * Exit codes: 0 ok, 2 error. */
#include "host/gate.h"
#include "host/hold.h"
#include "host/replay.h"
#include "common/macro.h"
#include "common/util.h"

#include <errno.h>
#include <json-c/json.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct opts {
    struct replay_addrs addrs;
    size_t limit;
    const char *pcap, *image, *prior, *image_id, *exe;
    uint32_t lifetime_s;
    bool no_replay, pass, paced, capture_any_ip;
    struct replay_send_opts pace;
    struct replay_tap taps[16];
    size_t n_taps;
    char *pos[64];
    size_t n_pos;
};

static int usage(void)
{
    fprintf(stderr, "usage: replayctl hold DOMAIN TAP ADDRS [--limit N] [--pcap OUT] [--no-replay] "
                    "[--burst N --pace-us US]\n"
                    "       replayctl hold-forward DOMAIN ADDRS [--limit N] [--pcap OUT] [--pass]\n"
                    "       replayctl send TAP ADDRS [--limit N] [--burst N --pace-us US] PCAP...\n"
                    "       replayctl send-taps ADDRS --tap TAP=MAC... [PACE] PCAP...\n"
                    "       replayctl capture-add DOMAIN GROUP TAP...\n"
                    "       replayctl session DOMAIN --tap TAP=MAC... [--limit N] [--pcap OUT] "
                    "[--image IMAGE.json [--prior PCAP]]\n"
                    "       replayctl check ADDRS PCAP\n"
                    "ADDRS: --mac MAC ... --ip IP ...\n");
    return 2;
}

static int fail(const char *what, int r)
{
    fprintf(stderr, "replayctl: %s: %s\n", what, strerror(-r));
    return 2;
}

static int parse(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){0};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(a, "--mac") == 0 && has) {
            if (replay_addrs_add_mac(&o->addrs, argv[++i]) < 0)
                return -EINVAL;
        } else if (strcmp(a, "--ip") == 0 && has) {
            /* --ip IP@N: the address of the NIC whose MAC is the N-th --mac */
            char ip[64];
            snprintf(ip, sizeof(ip), "%s", argv[++i]);
            char *at = strchr(ip, '@');
            int idx = -1;
            if (at) {
                *at = 0;
                idx = atoi(at + 1);
            }
            if (replay_addrs_add_ip(&o->addrs, ip, idx) < 0)
                return -EINVAL;
        } else if (strcmp(a, "--limit") == 0 && has) {
            o->limit = strtoull(argv[++i], NULL, 0);
        } else if (strcmp(a, "--pcap") == 0 && has) {
            o->pcap = argv[++i];
        } else if (strcmp(a, "--image") == 0 && has) {
            o->image = argv[++i];
        } else if (strcmp(a, "--image-id") == 0 && has) {
            o->image_id = argv[++i];
        } else if (strcmp(a, "--exe") == 0 && has) {
            o->exe = argv[++i];
        } else if (strcmp(a, "--lifetime") == 0 && has) {
            o->lifetime_s = (uint32_t)strtoul(argv[++i], NULL, 0);
        } else if (strcmp(a, "--prior") == 0 && has) {
            o->prior = argv[++i];
        } else if (strcmp(a, "--burst") == 0 && has) {
            o->pace.burst = (uint32_t)strtoul(argv[++i], NULL, 0);
            o->paced = true;
        } else if (strcmp(a, "--adaptive") == 0) {
            o->pace.adaptive = true;
            o->paced = true;
        } else if (strcmp(a, "--pace-us") == 0 && has) {
            o->pace.pace_us = (uint32_t)strtoul(argv[++i], NULL, 0);
            o->paced = true;
        } else if (strcmp(a, "--tap") == 0 && has) {
            char t[64];
            snprintf(t, sizeof(t), "%s", argv[++i]);
            char *eq = strchr(t, '=');
            if (!eq || o->n_taps >= ELEMENTSOF(o->taps))
                return -EINVAL;
            *eq = 0;
            if (replay_tap_set(&o->taps[o->n_taps++], t, eq + 1) < 0)
                return -EINVAL;
        } else if (strcmp(a, "--capture-any-ip") == 0) {
            o->capture_any_ip = true;
        } else if (strcmp(a, "--no-replay") == 0) {
            o->no_replay = true;
        } else if (strcmp(a, "--pass") == 0) {
            o->pass = true;
        } else if (a[0] == '-' && a[1] == '-') {
            return -EINVAL;
        } else if (o->n_pos < ELEMENTSOF(o->pos)) {
            o->pos[o->n_pos++] = argv[i];
        } else {
            return -E2BIG;
        }
    }
    return 0;
}

static void wait_signal(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sig;
    sigwait(&set, &sig);
}

static void print_capture(const struct replay_capture *c)
{
    printf("captured seen=%" PRIu64 " kept=%zu bytes=%zu dropped=%" PRIu64 " dropped_bytes=%" PRIu64
           " rejected=%" PRIu64 " lost_events=%" PRIu64 "\n",
           c->seen, c->buf.n, c->buf.used, c->buf.dropped_pkts, c->buf.dropped_bytes,
           c->buf.rejected_pkts, c->lost_events);
}

static void print_send(const struct replay_send_stats *st, uint64_t since_ns)
{
    printf("replayed sent=%" PRIu64 " bytes=%" PRIu64 " other=%" PRIu64 " refused=%" PRIu64
           " errors=%" PRIu64 " segmented=%" PRIu64 " segments=%" PRIu64 " oversize=%" PRIu64
           " tap_dropped=%" PRIu64 " send_us=%" PRIu64 " lift_to_done_us=%" PRIu64 "\n",
           st->sent, st->sent_bytes, st->other, st->refused, st->errors, st->segmented,
           st->segments, st->oversize, st->tap_dropped, st->duration_ns / 1000,
           since_ns ? (now_monotonic_ns() - since_ns) / 1000 : 0);
}

static int cmd_hold(struct opts *o, bool forward)
{
    size_t need = forward ? 1 : 2;
    if (o->n_pos != need)
        return usage();
    const char *domain = o->pos[0], *tap = forward ? NULL : o->pos[1];
    /* Block first so a signal sent as soon as "held" appears is not lost. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    /* --capture-any-ip: capture as the transaction does before the socket image is known;
     * the replay below still checks the IPs given. */
    struct replay_addrs ca = o->addrs;
    ca.any_ip = o->capture_any_ip;
    struct replay_capture c;
    int r = replay_capture_open(&c, domain, 0, &ca, o->limit);
    if (r < 0) {
        replay_capture_close(&c);
        return fail("capture open", r);
    }
    if ((r = replay_capture_start(&c)) < 0) {
        replay_capture_close(&c);
        return fail("capture start", r);
    }
    if (forward) {
        r = replay_hold_forward_begin(domain, c.group, &o->addrs, o->pass ? REPLAY_HOLD_PASS : 0);
    } else {
        const char *taps[1] = {tap};
        r = gate_install(domain, taps, 1);
        if (r >= 0)
            r = gate_capture_add(domain, taps, 1, c.group);
    }
    if (r < 0) {
        if (forward)
            replay_hold_forward_end(domain);
        else
            gate_lift(domain);
        replay_capture_close(&c);
        return fail("hold", r);
    }
    printf("held group=%u\n", c.group);
    fflush(stdout);
    wait_signal();

    uint64_t lift_ns = now_monotonic_ns();
    r = forward ? replay_hold_forward_end(domain) : gate_lift(domain);
    int rs = replay_capture_stop(&c);
    if (r < 0 || rs < 0) {
        replay_capture_close(&c);
        return fail("lift", r < 0 ? r : rs);
    }
    print_capture(&c);
    if (o->pcap && (r = replay_pcap_write(&c.buf, o->pcap)) < 0) {
        replay_capture_close(&c);
        return fail("pcap write", r);
    }
    if (!forward && !o->no_replay) {
        struct replay_send_stats st;
        r = replay_send(&c.buf, tap, &o->addrs, o->paced ? &o->pace : NULL, &st);
        if (r < 0) {
            replay_capture_close(&c);
            return fail("replay", r);
        }
        print_send(&st, lift_ns);
    }
    fflush(stdout);
    replay_capture_close(&c);
    return 0;
}

static int cmd_send(struct opts *o, bool multi)
{
    if (o->n_pos < (multi ? 1u : 2u) || (multi && o->n_taps == 0))
        return usage();
    struct replay_buf b;
    int r = replay_buf_init(&b, o->limit);
    if (r < 0)
        return fail("limit", r);
    for (size_t i = multi ? 0 : 1; i < o->n_pos; i++) {
        r = replay_pcap_read(o->pos[i], &o->addrs, &b);
        if (r < 0) {
            replay_buf_free(&b);
            fprintf(stderr, "replayctl: %s refused\n", o->pos[i]);
            return fail("pcap read", r);
        }
    }
    printf("loaded frames=%zu bytes=%zu dropped=%" PRIu64 " rejected=%" PRIu64 "\n", b.n, b.used,
           b.dropped_pkts, b.rejected_pkts);
    struct replay_send_stats st;
    const struct replay_send_opts *pace = o->paced ? &o->pace : NULL;
    if (multi)
        r = replay_send_taps(&b, o->taps, o->n_taps, &o->addrs, pace, &st);
    else
        r = replay_send(&b, o->pos[0], &o->addrs, pace, &st);
    replay_buf_free(&b);
    if (r < 0)
        return fail("replay", r);
    print_send(&st, 0);
    return 0;
}

static int cmd_session(struct opts *o)
{
    if (o->n_pos != 1 || o->n_taps == 0)
        return usage();
    const char *domain = o->pos[0];
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    const char *names[16];
    for (size_t i = 0; i < o->n_taps; i++)
        names[i] = o->taps[i].name;
    int r = gate_install(domain, names, o->n_taps);
    if (r < 0)
        return fail("gate", r);
    struct replay_session s;
    r = replay_session_begin(&s, domain, o->taps, o->n_taps, o->limit);
    if (r < 0) {
        gate_lift(domain);
        replay_session_close(&s);
        return fail("session begin", r);
    }
    printf("held group=%u\n", s.cap.group);
    fflush(stdout);
    wait_signal();
    uint64_t lift_ns = now_monotonic_ns();
    r = gate_lift(domain);
    int rs = replay_session_stop(&s);
    if (r < 0 || rs < 0) {
        replay_session_close(&s);
        return fail("lift", r < 0 ? r : rs);
    }
    print_capture(&s.cap);
    if (o->pcap && (r = replay_pcap_write(&s.cap.buf, o->pcap)) < 0) {
        replay_session_close(&s);
        return fail("pcap write", r);
    }
    if (o->image) {
        json_object *img = json_object_from_file(o->image);
        struct replay_buf prior;
        replay_buf_init(&prior, 0);
        if (o->prior && (r = replay_pcap_read(o->prior, NULL, &prior)) < 0) {
            json_object_put(img);
            replay_buf_free(&prior);
            replay_session_close(&s);
            return fail("prior pcap", r);
        }
        struct replay_send_stats st;
        r = replay_session_replay(&s, o->prior ? &prior : NULL, img, NULL, &st);
        json_object_put(img);
        replay_buf_free(&prior);
        if (r < 0) {
            replay_session_close(&s);
            return fail("replay", r);
        }
        print_send(&st, lift_ns);
    }
    fflush(stdout);
    replay_session_close(&s);
    return 0;
}

static int cmd_check(struct opts *o)
{
    if (o->n_pos != 1)
        return usage();
    struct replay_buf b;
    int r = replay_buf_init(&b, REPLAY_MAX_LIMIT);
    if (r < 0)
        return fail("init", r);
    r = replay_pcap_read(o->pos[0], NULL, &b);
    if (r < 0) {
        replay_buf_free(&b);
        return fail("pcap read", r);
    }
    for (size_t i = 0; i < b.n; i++)
        printf("frame %zu %s\n", i,
               replay_verdict_name(
                   replay_validate_frame(&o->addrs, replay_buf_frame(&b, i), b.recs[i].len)));
    replay_buf_free(&b);
    return 0;
}

static int cmd_outage(const char *sub, struct opts *o)
{
    if (o->n_pos < 1)
        return usage();
    const char *state = o->pos[0], *domain = o->n_pos > 1 ? o->pos[1] : NULL;
    const char *image_id = o->image_id ? o->image_id : "test-image";
    if (!strcmp(sub, "recover")) {
        int r = hold_recover(state);
        if (r < 0)
            return fail("recover", r);
        printf("cleaned=%d\n", r);
        return 0;
    }
    if (!domain)
        return usage();
    if (!strcmp(sub, "start")) {
        struct hold_spec sp = {.limit = o->limit, .lifetime_s = o->lifetime_s};
        snprintf(sp.domain, sizeof(sp.domain), "%s", domain);
        snprintf(sp.image_id, sizeof(sp.image_id), "%s", image_id);
        sp.addrs = o->addrs;
        for (size_t i = 0; i < o->n_taps; i++) {
            char m[18];
            const uint8_t *x = o->taps[i].mac;
            snprintf(m, sizeof(m), "%02x:%02x:%02x:%02x:%02x:%02x", x[0], x[1], x[2], x[3], x[4],
                     x[5]);
            replay_addrs_add_mac(&sp.addrs, m);
            snprintf(sp.taps[sp.n_taps++], sizeof(sp.taps[0]), "%s", o->taps[i].name);
        }
        pid_t pid;
        char err[512] = "";
        int r = hold_start(state, &sp, o->exe, &pid, err, sizeof(err));
        if (r < 0) {
            fprintf(stderr, "replayctl: outage-start: %s\n", err);
            return 2;
        }
        printf("holding pid=%d\n", (int)pid);
        return 0;
    }
    if (!strcmp(sub, "status")) {
        json_object *st = NULL;
        int r = hold_status(state, domain, &st);
        if (r < 0)
            return fail("status", r);
        printf("status");
        json_object_object_foreach(st, k, v) printf(" %s=%s", k, json_object_get_string(v));
        printf("\n");
        json_object_put(st);
        return 0;
    }
    if (!strcmp(sub, "handover")) {
        struct replay_buf b;
        replay_buf_init(&b, o->limit);
        struct hold_handover h;
        int r = hold_handover(state, domain, image_id, o->taps, o->n_taps, &b, &h);
        if (r < 0) {
            replay_buf_free(&b);
            return fail("handover", r);
        }
        printf("handover found=%d pid=%d frames=%zu held=%" PRIu64 " dropped=%" PRIu64
               " rejected=%" PRIu64 " lost_events=%" PRIu64 " mismatch=%d\n",
               r, (int)h.pid, b.n, h.frames, h.dropped, h.rejected, h.lost_events, h.mismatch);
        if (o->pcap && (r = replay_pcap_write(&b, o->pcap)) < 0) {
            replay_buf_free(&b);
            return fail("pcap write", r);
        }
        replay_buf_free(&b);
        return 0;
    }
    if (!strcmp(sub, "stop")) {
        int r = hold_stop(state, domain);
        if (r < 0)
            return fail("stop", r);
        printf("stopped=%d\n", r);
        return 0;
    }
    return usage();
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], HOLD_RUN_ARG) == 0)
        return hold_main(argc - 1, argv + 1);
    if (argc < 2)
        return usage();
    struct opts o;
    if (parse(argc - 2, argv + 2, &o) < 0)
        return usage();
    if (strcmp(argv[1], "hold") == 0)
        return cmd_hold(&o, false);
    if (strcmp(argv[1], "hold-forward") == 0)
        return cmd_hold(&o, true);
    if (strcmp(argv[1], "send") == 0)
        return cmd_send(&o, false);
    if (strcmp(argv[1], "session") == 0)
        return cmd_session(&o);
    if (strcmp(argv[1], "send-taps") == 0)
        return cmd_send(&o, true);
    if (strcmp(argv[1], "capture-add") == 0) {
        if (o.n_pos < 3)
            return usage();
        int r = gate_capture_add(o.pos[0], (const char *const *)o.pos + 2, o.n_pos - 2,
                                 (uint16_t)atoi(o.pos[1]));
        return r < 0 ? fail("capture-add", r) : 0;
    }
    if (strcmp(argv[1], "check") == 0)
        return cmd_check(&o);
    if (strncmp(argv[1], "outage-", 7) == 0)
        return cmd_outage(argv[1] + 7, &o);
    return usage();
}
