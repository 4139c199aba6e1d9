/* host/hold.c: see hold.h and docs/replay.md ("The outage holder"). The holder is a plain
 * poll loop over its nflog socket, its control socket and a signalfd; everything it is sent
 * and everything it hands over is size-limited and validated. */
#include "host/hold.h"
#include "host/gate.h"
#include "host/journal.h"
#include "host/transaction.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <net/if.h>
#include <nftables/libnftables.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HOLD_MAX_FILE     (64 * 1024) /* ID.json */
#define HOLD_MAX_REQUEST  4096        /* one JSON line on the control socket */
#define HOLD_IO_MS        5000        /* a request or reply on the control socket */
#define HOLD_READY_MS     20000       /* holder start-up: exec, nflog bind, one nft transaction */
#define HOLD_TICK_MS      500         /* how often the holder checks its lifetime and the taps */
#define HOLD_KILL_WAIT_MS 3000

/* ---- names and files ---------------------------------------------------------------------- */

int hold_id(const char *domain, char out[HOLD_ID_LEN + 1])
{
    if (!domain || !*domain || strlen(domain) >= 256)
        return -EINVAL;
    char hex[SHA256_HEX_LEN];
    sha256_hex(domain, strlen(domain), hex);
    memcpy(out, hex, HOLD_ID_LEN);
    out[HOLD_ID_LEN] = 0;
    return 0;
}

static bool id_valid(const char *id)
{
    if (!id || strlen(id) != HOLD_ID_LEN)
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* <state_dir>/hold/ID.ext, or <state_dir>/hold when id is NULL. */
static int hold_path(const char *state_dir, const char *id, const char *ext, char *buf, size_t len)
{
    if (!state_dir || state_dir[0] != '/')
        return -EINVAL;
    int n = id ? snprintf(buf, len, "%s/hold/%s.%s", state_dir, id, ext)
               : snprintf(buf, len, "%s/hold", state_dir);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static void mac_str(const uint8_t *m, char out[18])
{
    snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

static json_object *spec_to_json(const struct hold_spec *s)
{
    json_object *o = json_object_new_object(), *macs = json_object_new_array(),
                *ips = json_object_new_array(), *taps = json_object_new_array();
    if (!o || !macs || !ips || !taps) {
        json_object_put(o);
        json_object_put(macs);
        json_object_put(ips);
        json_object_put(taps);
        return NULL;
    }
    json_object_object_add(o, "domain", json_object_new_string(s->domain));
    json_object_object_add(o, "image_id", json_object_new_string(s->image_id));
    for (size_t i = 0; i < s->addrs.n_macs; i++) {
        char m[18];
        mac_str(s->addrs.macs[i], m);
        json_object_array_add(macs, json_object_new_string(m));
    }
    for (size_t i = 0; i < s->addrs.n_ips; i++) {
        const struct replay_ip *ip = &s->addrs.ips[i];
        char a[INET6_ADDRSTRLEN] = "";
        inet_ntop(ip->family, ip->family == AF_INET ? (const void *)&ip->v4 : (const void *)&ip->v6,
                  a, sizeof(a));
        json_object *e = json_object_new_object();
        json_object_object_add(e, "addr", json_object_new_string(a));
        json_object_object_add(e, "nic", json_object_new_int(ip->mac_idx));
        json_object_array_add(ips, e);
    }
    for (size_t i = 0; i < s->n_taps; i++)
        json_object_array_add(taps, json_object_new_string(s->taps[i]));
    json_object_object_add(o, "macs", macs);
    json_object_object_add(o, "ips", ips);
    json_object_object_add(o, "taps", taps);
    json_object_object_add(o, "limit", json_object_new_int64((int64_t)s->limit));
    json_object_object_add(o, "lifetime_s", json_object_new_int64(s->lifetime_s));
    return o;
}

static const char *jstr(json_object *o, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

static bool jint(json_object *o, const char *k, int64_t lo, int64_t hi, int64_t *out)
{
    json_object *v;
    if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_int))
        return false;
    int64_t x = json_object_get_int64(v);
    if (x < lo || x > hi)
        return false;
    *out = x;
    return true;
}

/* Validate everything: the file lives in a 0700 directory of ours, but it is still input. */
static int spec_from_json(json_object *o, struct hold_spec *s, const char **why)
{
    memset(s, 0, sizeof(*s));
    const char *d = jstr(o, "domain"), *img = jstr(o, "image_id");
    json_object *macs, *ips, *taps;
    int64_t limit, life;
    if (!d || !*d || strlen(d) >= sizeof(s->domain))
        return *why = "bad domain", -EBADMSG;
    if (!img || strlen(img) >= sizeof(s->image_id))
        return *why = "bad image_id", -EBADMSG;
    if (!json_object_object_get_ex(o, "macs", &macs) ||
        !json_object_is_type(macs, json_type_array) || !json_object_object_get_ex(o, "ips", &ips) ||
        !json_object_is_type(ips, json_type_array) ||
        !json_object_object_get_ex(o, "taps", &taps) || !json_object_is_type(taps, json_type_array))
        return *why = "macs, ips or taps missing", -EBADMSG;
    if (!jint(o, "limit", 0, REPLAY_MAX_LIMIT, &limit) ||
        !jint(o, "lifetime_s", 0, HOLD_MAX_LIFETIME_S, &life))
        return *why = "bad limit or lifetime_s", -EBADMSG;
    snprintf(s->domain, sizeof(s->domain), "%s", d);
    snprintf(s->image_id, sizeof(s->image_id), "%s", img);
    s->limit = (size_t)limit;
    s->lifetime_s = (uint32_t)life;
    size_t n = json_object_array_length(macs);
    if (n > REPLAY_MAX_MACS)
        return *why = "too many macs", -EBADMSG;
    for (size_t i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(macs, i);
        if (!json_object_is_type(m, json_type_string) ||
            replay_addrs_add_mac(&s->addrs, json_object_get_string(m)) < 0)
            return *why = "bad mac", -EBADMSG;
    }
    n = json_object_array_length(ips);
    if (n > REPLAY_MAX_IPS)
        return *why = "too many ips", -EBADMSG;
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(ips, i);
        const char *a = json_object_is_type(e, json_type_object) ? jstr(e, "addr") : NULL;
        int64_t nic;
        if (!a || !jint(e, "nic", -1, REPLAY_MAX_MACS - 1, &nic) ||
            replay_addrs_add_ip(&s->addrs, a, (int)nic) < 0)
            return *why = "bad ip", -EBADMSG;
    }
    n = json_object_array_length(taps);
    if (n > HOLD_MAX_TAPS)
        return *why = "too many taps", -EBADMSG;
    for (size_t i = 0; i < n; i++) {
        json_object *t = json_object_array_get_idx(taps, i);
        if (!json_object_is_type(t, json_type_string) ||
            !gate_ifname_valid(json_object_get_string(t)))
            return *why = "bad tap", -EBADMSG;
        snprintf(s->taps[s->n_taps++], sizeof(s->taps[0]), "%s", json_object_get_string(t));
    }
    if (s->addrs.n_macs == 0)
        return *why = "no mac", -EBADMSG;
    return 0;
}

static int read_json_file(const char *path, json_object **out)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    int r = read_file(path, HOLD_MAX_FILE, &text, &len);
    if (r < 0)
        return r;
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return -ENOMEM;
    json_object *o = json_tokener_parse_ex(tok, text, (int)len);
    bool ok = o && json_tokener_get_error(tok) == json_tokener_success &&
              json_object_is_type(o, json_type_object);
    json_tokener_free(tok);
    if (!ok) {
        json_object_put(o);
        return -EBADMSG;
    }
    *out = o;
    return 0;
}

static int write_json_file(const char *path, json_object *o)
{
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    return s ? write_file_atomic(path, s, strlen(s), 0600) : -ENOMEM;
}

int hold_spec_fill(struct hold_spec *s, const char *domain, const struct replay_tap *taps,
                   size_t n_taps, struct json_object *image, size_t limit)
{
    if (!s || !domain || !*domain || strlen(domain) >= sizeof(s->domain) || !taps || !n_taps ||
        n_taps > HOLD_MAX_TAPS || !image)
        return -EINVAL;
    memset(s, 0, sizeof(*s));
    snprintf(s->domain, sizeof(s->domain), "%s", domain);
    json_object *v;
    if (!json_object_object_get_ex(image, "image_id", &v) ||
        !json_object_is_type(v, json_type_string) ||
        strlen(json_object_get_string(v)) >= sizeof(s->image_id))
        return -EINVAL;
    snprintf(s->image_id, sizeof(s->image_id), "%s", json_object_get_string(v));
    for (size_t i = 0; i < n_taps; i++) {
        char m[18];
        mac_str(taps[i].mac, m);
        int r = replay_addrs_add_mac(&s->addrs, m);
        if (r < 0)
            return r;
        if (!gate_ifname_valid(taps[i].name))
            return -EINVAL;
        snprintf(s->taps[s->n_taps++], sizeof(s->taps[0]), "%s", taps[i].name);
    }
    int r = replay_addrs_add_image(&s->addrs, image);
    if (r < 0)
        return r;
    s->limit = limit;
    return 0;
}

/* ---- the control socket (client side) ---------------------------------------------------- */

/* One request, one reply line. -ENOENT/-ECONNREFUSED when no holder listens. */
static int request(const char *sock, const char *cmd, json_object **reply)
{
    *reply = NULL;
    _cleanup_close_ int fd = unix_connect(sock, HOLD_IO_MS);
    if (fd < 0)
        return fd;
    struct timeval tv = {.tv_sec = HOLD_IO_MS / 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char line[128];
    int n = snprintf(line, sizeof(line), "{\"cmd\":\"%s\"}\n", cmd);
    int r = write_full(fd, line, (size_t)n);
    if (r < 0)
        return r;
    char buf[HOLD_MAX_REQUEST];
    size_t got = 0;
    while (got < sizeof(buf) - 1) {
        ssize_t k = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return errno == EAGAIN ? -ETIMEDOUT : negative_errno();
        if (k == 0)
            break;
        got += (size_t)k;
        if (memchr(buf, '\n', got))
            break;
    }
    buf[got] = 0;
    json_object *o = json_tokener_parse(buf);
    if (!o || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return -EBADMSG;
    }
    *reply = o;
    return 0;
}

/* Is pid the holder with this id? Its command line says so (a reused pid would not). */
static bool is_holder(pid_t pid, const char *id)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    _cleanup_free_ char *text = NULL;
    size_t len;
    if (pid <= 1 || read_file(path, 8192, &text, &len) < 0)
        return false;
    const char *argv[4] = {0};
    size_t k = 0;
    for (size_t o = 0; o < len && k < ELEMENTSOF(argv); k++) {
        argv[k] = text + o;
        o += strnlen(text + o, len - o) + 1;
    }
    return k == ELEMENTSOF(argv) && !strcmp(argv[1], HOLD_RUN_ARG) && !strcmp(argv[3], id);
}

static bool pid_gone(pid_t pid)
{
    char path[64], *text = NULL;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (read_file(path, 4096, &text, NULL) < 0)
        return true;
    const char *p = strrchr(text, ')');
    bool zombie = p && (p[2] == 'Z' || p[2] == 'X');
    free(text);
    return zombie;
}

/* SIGKILL a holder that does not answer; its owner-flagged tables go with its nft socket. */
static void kill_holder(pid_t pid, const char *id)
{
    if (!is_holder(pid, id))
        return;
    log_warn("hold: holder pid %d does not answer: killing it", (int)pid);
    kill(pid, SIGKILL);
    for (int i = 0; i < HOLD_KILL_WAIT_MS / 50 && !pid_gone(pid); i++)
        usleep(50 * 1000);
}

static void remove_files(const char *state_dir, const char *id)
{
    static const char *const ext[] = {"sock", "json", "pcap"};
    for (size_t i = 0; i < ELEMENTSOF(ext); i++) {
        char p[PATH_MAX];
        if (hold_path(state_dir, id, ext[i], p, sizeof(p)) == 0)
            unlink(p);
    }
}

/* The recorded pid (0 when the file or the field is missing). */
static pid_t recorded_pid(const char *state_dir, const char *id)
{
    char p[PATH_MAX];
    json_object *o = NULL;
    int64_t pid = 0;
    if (hold_path(state_dir, id, "json", p, sizeof(p)) == 0 && read_json_file(p, &o) == 0 &&
        !jint(o, "pid", 2, INT32_MAX, &pid))
        pid = 0;
    json_object_put(o);
    return (pid_t)pid;
}

/* Send cmd; a holder that does not answer is killed, and its files removed either way.
 * 1 a holder or its files were there, 0 nothing, -errno; *reply: the answer if any. */
static int command(const char *state_dir, const char *id, const char *cmd, json_object **reply)
{
    char sock[PATH_MAX], rec[PATH_MAX];
    *reply = NULL;
    int r = hold_path(state_dir, id, "sock", sock, sizeof(sock));
    if (r == 0)
        r = hold_path(state_dir, id, "json", rec, sizeof(rec));
    if (r < 0)
        return r;
    bool present = access(sock, F_OK) == 0 || access(rec, F_OK) == 0;
    if (!present)
        return 0;
    pid_t pid = recorded_pid(state_dir, id);
    r = request(sock, cmd, reply);
    if (r < 0) {
        log_debug("hold: %s: %s", sock, strerror(-r));
        if (pid > 0)
            kill_holder(pid, id);
        remove_files(state_dir, id);
        return 1;
    }
    /* It answered, then exits; its files are gone (it removes them before answering). */
    return 1;
}

static bool reply_ok(json_object *o)
{
    json_object *v;
    return o && json_object_object_get_ex(o, "ok", &v) && json_object_get_boolean(v);
}

int hold_stop(const char *state_dir, const char *domain)
{
    char id[HOLD_ID_LEN + 1];
    int r = hold_id(domain, id);
    if (r < 0)
        return r;
    json_object *rep = NULL;
    r = command(state_dir, id, "stop", &rep);
    if (r > 0)
        log_info("hold: the outage holder of %s is stopped", domain);
    json_object_put(rep);
    return r;
}

int hold_status(const char *state_dir, const char *domain, json_object **out)
{
    char id[HOLD_ID_LEN + 1], sock[PATH_MAX];
    int r = hold_id(domain, id);
    if (r == 0)
        r = hold_path(state_dir, id, "sock", sock, sizeof(sock));
    if (r < 0)
        return r;
    r = request(sock, "status", out);
    if (r == -ECONNREFUSED || r == -ENOENT)
        return -ENOENT;
    return r;
}

static void taps_addrs(const struct replay_tap *taps, size_t n, struct replay_addrs *a)
{
    memset(a, 0, sizeof(*a));
    a->any_ip = true;
    for (size_t i = 0; i < n; i++) {
        char m[18];
        mac_str(taps[i].mac, m);
        replay_addrs_add_mac(a, m);
    }
}

int hold_read_frames(const char *path, const struct replay_tap *taps, size_t n_taps,
                     struct replay_buf *out)
{
    if (!path || !out || (n_taps && !taps))
        return -EINVAL;
    struct replay_addrs a;
    taps_addrs(taps, n_taps, &a);
    return replay_pcap_read(path, &a, out);
}

static uint64_t ju64(json_object *o, const char *k)
{
    int64_t x = 0;
    return jint(o, k, 0, INT64_MAX, &x) ? (uint64_t)x : 0;
}

int hold_handover(const char *state_dir, const char *domain, const char *image_id,
                  const struct replay_tap *taps, size_t n_taps, struct replay_buf *out,
                  struct hold_handover *h)
{
    if (!image_id || !out || !h || (n_taps && !taps))
        return -EINVAL;
    memset(h, 0, sizeof(*h));
    char id[HOLD_ID_LEN + 1], pcap[PATH_MAX];
    int r = hold_id(domain, id);
    if (r == 0)
        r = hold_path(state_dir, id, "pcap", pcap, sizeof(pcap));
    if (r < 0)
        return r;
    unlink(pcap); /* never read a stale one */
    json_object *rep = NULL;
    r = command(state_dir, id, "handover", &rep);
    if (r <= 0 || !reply_ok(rep)) {
        if (r > 0)
            log_warn("hold: the outage holder of %s was gone or did not answer: no outage "
                     "frames",
                     domain);
        json_object_put(rep);
        unlink(pcap);
        return r < 0 ? r : 0;
    }
    int64_t pid = 0;
    jint(rep, "pid", 0, INT32_MAX, &pid);
    h->pid = (pid_t)pid;
    h->frames = ju64(rep, "frames");
    h->dropped = ju64(rep, "dropped");
    h->rejected = ju64(rep, "rejected");
    h->lost_events = ju64(rep, "lost_events");
    char held_for[65] = "?";
    const char *hf = jstr(rep, "image_id");
    h->mismatch = !hf || strcmp(hf, image_id) != 0;
    if (hf)
        snprintf(held_for, sizeof(held_for), "%s", hf);
    json_object_put(rep);
    if (h->mismatch) {
        log_warn(
            "hold: the outage holder of %s held for another checkpoint (image %s): its %" PRIu64
            " frames are not used",
            domain, held_for, h->frames);
        unlink(pcap);
        return 1;
    }
    uint64_t rejected0 = out->rejected_pkts, dropped0 = out->dropped_pkts;
    size_t n0 = out->n;
    r = hold_read_frames(pcap, taps, n_taps, out);
    unlink(pcap);
    if (r < 0) {
        log_warn("hold: the outage frames of %s are refused (%s)", domain, strerror(-r));
        return r;
    }
    h->rejected += out->rejected_pkts - rejected0;
    h->dropped += out->dropped_pkts - dropped0;
    log_info("hold: %zu outage frame(s) of %s handed over (%" PRIu64 " over the bound, %" PRIu64
             " rejected)",
             out->n - n0, domain, h->dropped, h->rejected);
    return 1;
}

int hold_recover(const char *state_dir)
{
    char dir[PATH_MAX];
    int r = hold_path(state_dir, NULL, NULL, dir, sizeof(dir));
    if (r < 0)
        return r;
    _cleanup_closedir_ DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : negative_errno();
    int cleaned = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len != HOLD_ID_LEN + 5 || strcmp(de->d_name + HOLD_ID_LEN, ".json") != 0)
            continue;
        char id[HOLD_ID_LEN + 1];
        memcpy(id, de->d_name, HOLD_ID_LEN);
        id[HOLD_ID_LEN] = 0;
        if (!id_valid(id))
            continue;
        char sock[PATH_MAX];
        if (hold_path(state_dir, id, "sock", sock, sizeof(sock)) < 0)
            continue;
        json_object *rep = NULL;
        int q = request(sock, "status", &rep);
        json_object_put(rep);
        if (q == 0)
            continue; /* alive and holding: its lifetime is its own business */
        pid_t pid = recorded_pid(state_dir, id);
        char rec[PATH_MAX];
        struct stat st;
        if (pid == 0 && hold_path(state_dir, id, "json", rec, sizeof(rec)) == 0 &&
            stat(rec, &st) == 0 &&
            now_realtime_ns() < (uint64_t)st.st_mtim.tv_sec * 1000000000u +
                                    (uint64_t)st.st_mtim.tv_nsec + HOLD_READY_MS * 1000000ull)
            continue; /* being started: the holder has not written its pid yet */
        if (pid > 0)
            kill_holder(pid, id);
        remove_files(state_dir, id);
        log_info("hold: removed the leftovers of a holder that is gone (%s)", id);
        cleaned++;
    }
    return cleaned;
}

/* ---- starting a holder ------------------------------------------------------------------- */

/* A fd of at least 3 (so the child's dup2 onto 0..2 cannot clobber it), close-on-exec. */
static int high_fd(int fd)
{
    if (fd < 0 || fd > 2)
        return fd;
    int n = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int saved = errno;
    close(fd);
    errno = saved;
    return n;
}

/* Read the holder's start-up lines ("pid N", then "ok GROUP" or "error TEXT"). */
static int read_ready(int fd, pid_t *pid, char *err, size_t errlen)
{
    char buf[1024];
    size_t got = 0;
    uint64_t deadline = now_monotonic_ns() + (uint64_t)HOLD_READY_MS * 1000000u;
    for (;;) {
        buf[got] = 0;
        char *ok = strstr(buf, "\nok "), *bad = strstr(buf, "\nerror ");
        const char *p = strstr(buf, "pid ");
        if (p == buf)
            *pid = (pid_t)strtol(p + 4, NULL, 10);
        if (ok && strchr(ok + 1, '\n'))
            return 0;
        if (bad && strchr(bad + 1, '\n')) {
            bad += 7;
            set_errbuf(err, errlen, "%.*s", (int)strcspn(bad, "\n"), bad);
            return -EIO;
        }
        uint64_t now = now_monotonic_ns();
        if (now >= deadline || got >= sizeof(buf) - 1) {
            set_errbuf(err, errlen, "the holder did not report ready");
            return -ETIMEDOUT;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        ssize_t k = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            set_errbuf(err, errlen, "the holder exited during start-up (see its log)");
            return -ECHILD;
        }
        got += (size_t)k;
    }
}

int hold_start(const char *state_dir, const struct hold_spec *s, const char *exe, pid_t *pid,
               char *err, size_t errlen)
{
    if (!s || !pid) {
        set_errbuf(err, errlen, "bad arguments");
        return -EINVAL;
    }
    *pid = 0;
    char id[HOLD_ID_LEN + 1], dir[PATH_MAX], rec[PATH_MAX], sock[PATH_MAX], logp[PATH_MAX];
    int r = hold_id(s->domain, id);
    if (r == 0)
        r = hold_path(state_dir, NULL, NULL, dir, sizeof(dir));
    if (r == 0)
        r = hold_path(state_dir, id, "json", rec, sizeof(rec));
    if (r == 0)
        r = hold_path(state_dir, id, "sock", sock, sizeof(sock));
    if (r == 0)
        r = hold_path(state_dir, id, "log", logp, sizeof(logp));
    if (r == 0 && strlen(sock) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        r = -ENAMETOOLONG;
    if (r < 0) {
        set_errbuf(err, errlen, "state directory %s: %s", state_dir ? state_dir : "?",
                   strerror(-r));
        return r;
    }
    if (s->addrs.n_macs == 0) {
        set_errbuf(err, errlen, "no MAC address to hold for");
        return -EINVAL;
    }
    hold_stop(state_dir, s->domain); /* one holder per domain: the newest checkpoint's */
    if ((r = mkdir_p(dir, 0700)) < 0) {
        set_errbuf(err, errlen, "cannot create %s: %s", dir, strerror(-r));
        return r;
    }
    json_object *o = spec_to_json(s);
    r = o ? write_json_file(rec, o) : -ENOMEM;
    json_object_put(o);
    if (r < 0) {
        set_errbuf(err, errlen, "cannot write %s: %s", rec, strerror(-r));
        return r;
    }

    const char *path = exe ? exe : "/proc/self/exe";
    int ready[2] = {-1, -1};
    _cleanup_close_ int logfd = high_fd(open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    _cleanup_close_ int nullfd = high_fd(open("/dev/null", O_RDWR | O_CLOEXEC));
    if (logfd < 0 || nullfd < 0 || pipe2(ready, O_CLOEXEC) < 0) {
        r = negative_errno();
        set_errbuf(err, errlen, "cannot set up the holder: %s", strerror(-r));
        unlink(rec);
        return r;
    }
    _cleanup_close_ int rd = ready[0];
    int wr = high_fd(ready[1]);
    char fdarg[16];
    snprintf(fdarg, sizeof(fdarg), "%d", wr);
    char *argv[] = {
        (char *)"netckpt-hold", (char *)HOLD_RUN_ARG, (char *)state_dir, id, fdarg, NULL};
    pid_t c = wr < 0 ? -1 : fork();
    if (c == 0) {
        /* Only async-signal-safe calls from here to exec: the parent may run other threads. */
        setsid();
        pid_t g = fork();
        if (g != 0)
            _exit(g < 0 ? 1 : 0);
        dup2(nullfd, 0);
        dup2(nullfd, 1);
        dup2(logfd, 2);
        /* nothing else of the caller's may stay open in a process that lives for an hour */
        if (wr > 3)
            close_range(3, (unsigned)wr - 1, 0);
        close_range((unsigned)wr + 1, ~0u, 0);
        fcntl(wr, F_SETFD, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(path, argv);
        _exit(127);
    }
    int saved = errno;
    if (wr >= 0)
        close(wr);
    if (c < 0) {
        r = -saved;
        set_errbuf(err, errlen, "fork: %s", strerror(saved));
        unlink(rec);
        return r;
    }
    int st;
    while (waitpid(c, &st, 0) < 0 && errno == EINTR)
        ;
    pid_t h = 0;
    r = read_ready(rd, &h, err, errlen);
    if (r < 0) {
        if (h > 0)
            kill_holder(h, id);
        remove_files(state_dir, id);
        return r;
    }
    *pid = h;
    return 0;
}

/* ---- the holder -------------------------------------------------------------------------- */

struct holder {
    const char *state_dir;
    char id[HOLD_ID_LEN + 1];
    char rec[PATH_MAX], sock[PATH_MAX], pcap[PATH_MAX];
    struct hold_spec spec;
    struct replay_capture cap;
    struct nft_ctx *nft;
    int lfd, sfd, ifd;
    uint64_t deadline_mono, deadline_real;
    bool tables;
};

static void ready_line(int fd, const char *fmt, ...) _printf_(2, 3);
static void ready_line(int fd, const char *fmt, ...)
{
    if (fd < 0)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0)
        write_full(fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static json_object *holder_status(const struct holder *h)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(true));
    json_object_object_add(o, "pid", json_object_new_int(getpid()));
    json_object_object_add(o, "group", json_object_new_int(h->cap.group));
    json_object_object_add(o, "domain", json_object_new_string(h->spec.domain));
    json_object_object_add(o, "image_id", json_object_new_string(h->spec.image_id));
    json_object_object_add(o, "frames", json_object_new_int64((int64_t)h->cap.buf.n));
    json_object_object_add(o, "bytes", json_object_new_int64((int64_t)h->cap.buf.used));
    json_object_object_add(o, "dropped", json_object_new_int64((int64_t)h->cap.buf.dropped_pkts));
    json_object_object_add(o, "rejected", json_object_new_int64((int64_t)h->cap.buf.rejected_pkts));
    json_object_object_add(o, "seen", json_object_new_int64((int64_t)h->cap.seen));
    json_object_object_add(o, "lost_events", json_object_new_int64((int64_t)h->cap.lost_events));
    json_object_object_add(o, "deadline_ns", json_object_new_int64((int64_t)h->deadline_real));
    return o;
}

/* Remove the tables (the owner may), take what the kernel queued, drop the files. */
static void holder_end(struct holder *h)
{
    if (h->tables) {
        int r = replay_hold_forward_end_nft(h->nft, h->spec.domain);
        if (r < 0)
            log_warn("hold: removing the hold tables: %s (they go with this process)",
                     strerror(-r));
        h->tables = false;
    }
    if (h->cap.fd >= 0)
        while (replay_capture_poll(&h->cap, 0) > 0)
            ;
    unlink(h->sock);
    unlink(h->rec);
}

/* The domain's tap runs again (QEMU has it open) while no netckpt transaction is on the
 * domain: someone restored or started the VM without netckpt. Holding on would black-hole it. */
static bool domain_back(const struct holder *h)
{
    bool running = false;
    for (size_t i = 0; i < h->spec.n_taps && !running; i++) {
        struct ifreq ifr = {0};
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", h->spec.taps[i]);
        running = ioctl(h->ifd, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP) &&
                  (ifr.ifr_flags & IFF_RUNNING);
    }
    if (!running)
        return false;
    struct journal_entry e;
    return journal_read(h->state_dir, h->spec.domain, &e) == -ENOENT;
}

/* Serve one connection. 1: the holder is done (stop or handover), 0: go on. */
static int serve(struct holder *h, int fd)
{
    struct timeval tv = {.tv_sec = HOLD_IO_MS / 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    char buf[HOLD_MAX_REQUEST];
    size_t got = 0;
    while (got < sizeof(buf) - 1 && !memchr(buf, '\n', got)) {
        ssize_t k = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    buf[got] = 0;
    json_object *req = json_tokener_parse(buf);
    const char *cmd = req && json_object_is_type(req, json_type_object) ? jstr(req, "cmd") : NULL;
    json_object *rep = NULL;
    int done = 0;
    if (cmd && !strcmp(cmd, "status")) {
        rep = holder_status(h);
    } else if (cmd && !strcmp(cmd, "stop")) {
        holder_end(h);
        rep = holder_status(h);
        log_info("hold: %s: stopped (%zu frames discarded)", h->spec.domain, h->cap.buf.n);
        done = 1;
    } else if (cmd && !strcmp(cmd, "handover")) {
        holder_end(h);
        int r = replay_pcap_write(&h->cap.buf, h->pcap);
        rep = r < 0 ? json_object_new_object() : holder_status(h);
        if (r < 0) {
            json_object_object_add(rep, "ok", json_object_new_boolean(false));
            json_object_object_add(rep, "error", json_object_new_string(strerror(-r)));
        }
        log_info("hold: %s: %zu frames handed over (%" PRIu64 " over the bound, %" PRIu64
                 " rejected, %" PRIu64 " overruns)",
                 h->spec.domain, h->cap.buf.n, h->cap.buf.dropped_pkts, h->cap.buf.rejected_pkts,
                 h->cap.lost_events);
        done = 1;
    } else {
        rep = json_object_new_object();
        json_object_object_add(rep, "ok", json_object_new_boolean(false));
        json_object_object_add(rep, "error", json_object_new_string("unknown command"));
    }
    json_object_put(req);
    const char *s = json_object_to_json_string_ext(rep, JSON_C_TO_STRING_PLAIN);
    if (s && (write_full(fd, s, strlen(s)) < 0 || write_full(fd, "\n", 1) < 0))
        log_warn("hold: reply: %m");
    json_object_put(rep);
    return done;
}

static int holder_setup(struct holder *h, int ready)
{
    json_object *o = NULL;
    const char *why = "";
    int r = read_json_file(h->rec, &o);
    if (r == 0)
        r = spec_from_json(o, &h->spec, &why);
    json_object_put(o);
    if (r < 0) {
        ready_line(ready, "error %s: %s %s\n", h->rec, strerror(-r), why);
        return r;
    }
    uint32_t life = h->spec.lifetime_s ? h->spec.lifetime_s : HOLD_DEFAULT_LIFETIME_S;
    h->deadline_mono = now_monotonic_ns() + (uint64_t)life * 1000000000u;
    h->deadline_real = now_realtime_ns() + (uint64_t)life * 1000000000u;
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
    h->sfd = signalfd_block(sigs, ELEMENTSOF(sigs));
    h->ifd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (h->sfd < 0 || h->ifd < 0) {
        r = h->sfd < 0 ? h->sfd : negative_errno();
        ready_line(ready, "error signals or socket: %s\n", strerror(-r));
        return r;
    }
    r = replay_capture_open(&h->cap, h->spec.domain, 0, &h->spec.addrs, h->spec.limit);
    if (r < 0) {
        ready_line(ready, "error nflog capture: %s\n", strerror(-r));
        return r;
    }
    h->nft = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!h->nft || nft_ctx_buffer_output(h->nft) < 0 || nft_ctx_buffer_error(h->nft) < 0) {
        ready_line(ready, "error nft context: out of memory\n");
        return -ENOMEM;
    }
    r = replay_hold_forward_begin_nft(h->nft, h->spec.domain, h->cap.group, &h->spec.addrs,
                                      REPLAY_HOLD_OWNED);
    if (r < 0) {
        ready_line(ready, "error hold tables: %s\n", strerror(-r));
        return r;
    }
    h->tables = true;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t sl = strlen(h->sock);
    if (sl >= sizeof(sa.sun_path)) {
        ready_line(ready, "error control socket path too long: %s\n", h->sock);
        return -ENAMETOOLONG;
    }
    memcpy(sa.sun_path, h->sock, sl + 1);
    h->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    unlink(h->sock);
    mode_t old = umask(0077);
    r = h->lfd < 0 || bind(h->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(h->lfd, 8) < 0
            ? negative_errno()
            : 0;
    umask(old);
    if (r < 0) {
        ready_line(ready, "error control socket %s: %s\n", h->sock, strerror(-r));
        return r;
    }
    /* The record now names the holder: stop, handover and recovery find it by it. */
    json_object *rec = spec_to_json(&h->spec);
    if (!rec)
        return -ENOMEM;
    json_object_object_add(rec, "pid", json_object_new_int(getpid()));
    json_object_object_add(rec, "group", json_object_new_int(h->cap.group));
    json_object_object_add(rec, "deadline_ns", json_object_new_int64((int64_t)h->deadline_real));
    r = write_json_file(h->rec, rec);
    json_object_put(rec);
    if (r < 0) {
        ready_line(ready, "error %s: %s\n", h->rec, strerror(-r));
        return r;
    }
    log_info("hold: holding the outage of %s (pid %d, nflog group %u, %zu MACs, %zu IPs, %u s)",
             h->spec.domain, (int)getpid(), h->cap.group, h->spec.addrs.n_macs, h->spec.addrs.n_ips,
             life);
    ready_line(ready, "\nok %u\n", h->cap.group);
    return 0;
}

static int holder_loop(struct holder *h)
{
    for (;;) {
        struct pollfd p[3] = {{.fd = h->cap.fd, .events = POLLIN},
                              {.fd = h->lfd, .events = POLLIN},
                              {.fd = h->sfd, .events = POLLIN}};
        int pr = poll(p, 3, HOLD_TICK_MS);
        if (pr < 0 && errno != EINTR) {
            log_err("hold: poll: %m");
            return 1;
        }
        if (p[0].revents & POLLIN) {
            int r = replay_capture_poll(&h->cap, 0);
            if (r < 0 && r != -EAGAIN)
                log_warn("hold: capture: %s", strerror(-r));
        }
        if (p[1].revents & POLLIN) {
            _cleanup_close_ int c = accept4(h->lfd, NULL, NULL, SOCK_CLOEXEC);
            if (c >= 0 && serve(h, c) > 0)
                return 0;
        }
        if (p[2].revents & POLLIN) {
            log_info("hold: %s: signal: stopping (%zu frames discarded)", h->spec.domain,
                     h->cap.buf.n);
            return 0;
        }
        if (now_monotonic_ns() >= h->deadline_mono) {
            log_info("hold: %s: lifetime over: stopping (%zu frames discarded)", h->spec.domain,
                     h->cap.buf.n);
            return 0;
        }
        if (access(h->rec, F_OK) < 0 && errno == ENOENT) {
            /* its state directory was removed (a test's or an operator's clean-up): nobody
             * could ever ask for the frames, and nothing would find this process */
            log_warn("hold: %s: %s is gone: stopping", h->spec.domain, h->rec);
            return 0;
        }
        if (domain_back(h)) {
            log_warn("hold: %s: its tap runs again without a netckpt restore: stopping (%zu "
                     "frames discarded)",
                     h->spec.domain, h->cap.buf.n);
            return 0;
        }
    }
}

int hold_main(int argc, char **argv)
{
    if (argc != 4 || strcmp(argv[0], HOLD_RUN_ARG) != 0) {
        fprintf(stderr, "%s: internal command of netckpt, not for direct use\n", HOLD_RUN_ARG);
        return 2;
    }
    char *end;
    long ready = strtol(argv[3], &end, 10);
    if (*end || ready < 3 || ready > 65535)
        return 2;
    struct holder h = {
        .state_dir = argv[1], .lfd = -1, .sfd = -1, .ifd = -1, .cap = {.fd = -1, .stop_fd = -1}};
    int rfd = (int)ready;
    ready_line(rfd, "pid %d\n", (int)getpid());
    int r = id_valid(argv[2]) ? 0 : -EINVAL;
    if (r == 0) {
        snprintf(h.id, sizeof(h.id), "%s", argv[2]);
        r = hold_path(h.state_dir, h.id, "json", h.rec, sizeof(h.rec));
    }
    if (r == 0)
        r = hold_path(h.state_dir, h.id, "sock", h.sock, sizeof(h.sock));
    if (r == 0)
        r = hold_path(h.state_dir, h.id, "pcap", h.pcap, sizeof(h.pcap));
    if (r < 0)
        ready_line(rfd, "\nerror bad state directory or id\n");
    if (r == 0)
        r = holder_setup(&h, rfd);
    close(rfd);
    int rc = r < 0 ? 1 : holder_loop(&h);
    holder_end(&h);
    if (r < 0 && h.lfd < 0)
        unlink(h.rec); /* a failed start leaves nothing for anyone to find */
    if (h.nft)
        nft_ctx_free(h.nft); /* closes its socket: any table still owned goes with it */
    replay_capture_close(&h.cap);
    if (h.lfd >= 0)
        close(h.lfd);
    if (h.sfd >= 0)
        close(h.sfd);
    if (h.ifd >= 0)
        close(h.ifd);
    return rc;
}

/* ---- the transaction's calls ------------------------------------------------------------- */

int hold_txn_begin(const char *state_dir, const char *domain, const struct replay_tap *taps,
                   size_t n_taps, struct json_object *image, size_t limit,
                   struct txn_replay_stats *st, char *err, size_t errlen)
{
    struct hold_spec s;
    char e[512] = "";
    pid_t pid = 0;
    int r = hold_spec_fill(&s, domain, taps, n_taps, image, limit);
    if (r < 0)
        snprintf(e, sizeof(e), "%s", strerror(-r));
    else
        r = hold_start(state_dir, &s, NULL, &pid, e, sizeof(e));
    if (r < 0) {
        set_errbuf(err, errlen, "no outage hold: %s", e);
        return r;
    }
    st->holder_pid = pid;
    log_info("hold: the outage of %s is held by pid %d until its restore (at most %u s)", domain,
             (int)pid, s.lifetime_s ? s.lifetime_s : HOLD_DEFAULT_LIFETIME_S);
    return 0;
}

int hold_txn_take(const char *state_dir, const char *domain, const char *image_id,
                  const struct replay_tap *taps, size_t n_taps, size_t limit,
                  struct replay_buf *out, struct txn_replay_stats *st)
{
    int r = replay_buf_init(out, limit);
    if (r < 0)
        return r;
    struct hold_handover h;
    r = hold_handover(state_dir, domain, image_id, taps, n_taps, out, &h);
    if (r <= 0)
        return r;
    st->outage += out->n;
    st->dropped += h.dropped;
    st->rejected += h.rejected;
    return 0;
}
