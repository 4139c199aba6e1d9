/* host/virt.c: see virt.h. */
#include "host/virt.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/util.h"
#include "host/domain-xml.h"

#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <json-c/json.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

/* The embedded driver's settings (MACHINE-NOTES): no virtlogd, run as root, no cgroups,
 * namespaces or security labels, and never chown what QEMU opens. */
static const char embed_qemu_conf[] = "# written by netckpt for libvirt's embedded QEMU driver\n"
                                      "stdio_handler = \"file\"\n"
                                      "user = \"root\"\n"
                                      "group = \"root\"\n"
                                      "dynamic_ownership = 0\n"
                                      "remember_owner = 0\n"
                                      "security_driver = \"none\"\n"
                                      "namespaces = [ ]\n"
                                      "cgroup_controllers = [ ]\n";

void nc_virt_set_err(struct nc_virt *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->err, sizeof(v->err), fmt, ap);
    va_end(ap);
}

static void set_verr(struct nc_virt *v, const char *what)
{
    const char *m = virGetLastErrorMessage();
    nc_virt_set_err(v, "%s: %s", what, m ? m : "unknown libvirt error");
    log_debug("%s", v->err);
}

/* Map libvirt's error to an errno the callers can act on. */
static int verr_errno(void)
{
    switch (virGetLastErrorCode()) {
    case VIR_ERR_NO_DOMAIN:
    case VIR_ERR_NO_DOMAIN_SNAPSHOT:
        return -ENOENT;
    case VIR_ERR_OPERATION_TIMEOUT:
        return -ETIMEDOUT;
    case VIR_ERR_NO_SUPPORT:
    case VIR_ERR_OPERATION_UNSUPPORTED:
        return -EOPNOTSUPP;
    case VIR_ERR_OPERATION_INVALID:
    case VIR_ERR_INVALID_ARG:
        return -EINVAL;
    case VIR_ERR_OPERATION_ABORTED:
        return -ECANCELED;
    case VIR_ERR_AGENT_UNRESPONSIVE:
        return -EHOSTUNREACH;
    case VIR_ERR_SYSTEM_ERROR:
        return -EIO;
    default:
        return -EIO;
    }
}

static int fail(struct nc_virt *v, const char *what)
{
    set_verr(v, what);
    return verr_errno();
}

int nc_virt_default_state_dir(char *buf, size_t len)
{
    const char *e = getenv("NETCKPT_STATE_DIR");
    const char *d = e && *e ? e : NC_VIRT_DEFAULT_STATE_DIR;
    if (d[0] != '/')
        return -EINVAL;
    return snprintf(buf, len, "%s", d) >= (int)len ? -ENAMETOOLONG : 0;
}

int nc_virt_default_uri(const char *state_dir, char *buf, size_t len)
{
    /* The root goes into a URI query: refuse characters that would need escaping. */
    for (const char *p = state_dir; *p; p++)
        if (*p == '&' || *p == '?' || *p == '#' || *p == '%' || *p == ' ' || *p == '=')
            return -EINVAL;
    return snprintf(buf, len, "qemu:///embed?root=%s/libvirt", state_dir) >= (int)len
               ? -ENAMETOOLONG
               : 0;
}

int nc_virt_write_embed_conf(const char *root)
{
    char etc[PATH_MAX], conf[PATH_MAX];
    if (snprintf(etc, sizeof(etc), "%s/etc", root) >= (int)sizeof(etc) ||
        snprintf(conf, sizeof(conf), "%s/qemu.conf", etc) >= (int)sizeof(conf))
        return -ENAMETOOLONG;
    if (access(conf, F_OK) == 0)
        return 0;
    int r = mkdir_p(etc, 0700);
    if (r < 0)
        return r;
    r = write_file_atomic(conf, embed_qemu_conf, sizeof(embed_qemu_conf) - 1, 0600);
    return r < 0 ? r : 1;
}

int nc_virt_log_to_file(const char *state_dir)
{
    if (getenv("LIBVIRT_LOG_OUTPUTS"))
        return 0;
    char dir[PATH_MAX], val[PATH_MAX + 32];
    if (snprintf(dir, sizeof(dir), "%s/libvirt/log", state_dir) >= (int)sizeof(dir) ||
        snprintf(val, sizeof(val), "3:file:%s/libvirt.log", dir) >= (int)sizeof(val))
        return -ENAMETOOLONG;
    int r = mkdir_p(dir, 0700);
    if (r < 0)
        return r;
    return setenv("LIBVIRT_LOG_OUTPUTS", val, 0) < 0 ? negative_errno() : 1;
}

static void quiet_error(void *userdata, virErrorPtr e)
{
}

static void wake_cb(int timer, void *opaque)
{
    /* Only here to make virEventRunDefaultImpl return so the thread sees loop_quit. */
}

static void *loop_main(void *arg)
{
    struct nc_virt *v = arg;
    while (!atomic_load(&v->loop_quit))
        if (virEventRunDefaultImpl() < 0)
            log_warn("libvirt event loop: %s", virGetLastErrorMessage());
    return NULL;
}

static void stop_loop(struct nc_virt *v)
{
    if (!v->loop_started)
        return;
    atomic_store(&v->loop_quit, true);
    /* A zero timeout fires on the next iteration, waking the loop thread. */
    int t = virEventAddTimeout(0, wake_cb, NULL, NULL);
    pthread_join(v->loop_thread, NULL);
    if (t >= 0)
        virEventRemoveTimeout(t);
    v->loop_started = false;
}

/* DIR of qemu:///embed?root=DIR, or -EINVAL for any other URI. */
static int embed_root(const char *uri, char *buf, size_t len)
{
    const char *p = strstr(uri, "root=");
    if (strncmp(uri, "qemu:///embed?", 14) || !p || p[5] != '/')
        return -EINVAL;
    size_t n = strcspn(p + 5, "&#");
    if (n >= len)
        return -ENAMETOOLONG;
    memcpy(buf, p + 5, n);
    buf[n] = 0;
    return 0;
}

/* The process holding root/run/qemu/driver.pid: libvirt keeps a write lock on it for as long as
 * the embedded driver lives, so ask the kernel who holds it (F_GETLK), and unless lock_only fall
 * back to the pid libvirt wrote into it. 0 when nobody does or it cannot be told. */
static pid_t embed_holder(const char *root, bool lock_only)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/run/qemu/driver.pid", root) >= (int)sizeof(path))
        return 0;
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return 0;
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK && fl.l_pid > 0)
        return fl.l_pid;
    if (lock_only)
        return 0;
    char buf[32];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    char *end;
    long pid = strtol(buf, &end, 10);
    return pid > 0 && pid < INT_MAX && (*end == 0 || isspace((unsigned char)*end)) ? (pid_t)pid : 0;
}

/* The embedded driver lives in one process at a time: say who has it, and what to do. */
static int embed_busy(struct nc_virt *v, const char *root)
{
    pid_t pid = embed_holder(root, false);
    char who[96] = "another process";
    if (pid > 0) {
        char comm_path[64], comm[32] = "";
        _cleanup_free_ char *c = NULL;
        size_t len = 0;
        snprintf(comm_path, sizeof(comm_path), "/proc/%d/comm", (int)pid);
        if (read_file(comm_path, sizeof(comm), &c, &len) == 0 && len > 0) {
            snprintf(comm, sizeof(comm), "%.*s", (int)strcspn(c, "\n"), c);
            snprintf(who, sizeof(who), "process %d (%s)", (int)pid, comm);
        } else {
            snprintf(who, sizeof(who), "process %d", (int)pid);
        }
    }
    nc_virt_set_err(v,
                    "libvirt's embedded QEMU driver under %s is in use by %s; wait for it to "
                    "finish, or run netckptd to serve many requests from one process",
                    root, who);
    log_debug("%s", v->err);
    return -EBUSY;
}

int nc_virt_open(struct nc_virt *v, const char *uri, const char *state_dir)
{
    memset(v, 0, sizeof(*v));
    int r = 0;
    if (state_dir)
        r = snprintf(v->state_dir, sizeof(v->state_dir), "%s", state_dir) >=
                    (int)sizeof(v->state_dir)
                ? -ENAMETOOLONG
                : 0;
    else
        r = nc_virt_default_state_dir(v->state_dir, sizeof(v->state_dir));
    if (r < 0)
        return r;

    if (uri) {
        if (snprintf(v->uri, sizeof(v->uri), "%s", uri) >= (int)sizeof(v->uri))
            return -ENAMETOOLONG;
        /* An explicit embedded URI gets the same qemu.conf when it has none. */
        char root[PATH_MAX];
        if (embed_root(uri, root, sizeof(root)) == 0) {
            r = nc_virt_write_embed_conf(root);
            if (r < 0) {
                nc_virt_set_err(v, "cannot write %s/etc/qemu.conf: %s", root, strerror(-r));
                return r;
            }
        }
    } else {
        r = nc_virt_default_uri(v->state_dir, v->uri, sizeof(v->uri));
        if (r < 0) {
            nc_virt_set_err(v, "state directory '%s' cannot be put in a URI", v->state_dir);
            return r;
        }
        char root[PATH_MAX];
        if (snprintf(root, sizeof(root), "%s/libvirt", v->state_dir) >= (int)sizeof(root))
            return -ENAMETOOLONG;
        r = nc_virt_write_embed_conf(root);
        if (r < 0) {
            nc_virt_set_err(v, "cannot write %s/etc/qemu.conf: %s", root, strerror(-r));
            return r;
        }
    }

    if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0)
        return fail(v, "libvirt initialisation");
    /* Errors reach the caller through v->err and return codes; libvirt's own stderr printer
     * would repeat each one (also for the open itself, before any connection exists). */
    virSetErrorFunc(NULL, quiet_error);
    atomic_store(&v->loop_quit, false);
    r = -pthread_create(&v->loop_thread, NULL, loop_main, v);
    if (r < 0) {
        nc_virt_set_err(v, "cannot start the event loop thread: %s", strerror(-r));
        return r;
    }
    v->loop_started = true;

    v->conn = virConnectOpen(v->uri);
    if (!v->conn) {
        /* The caller names the URI; v->err carries only libvirt's reason. */
        const char *m = virGetLastErrorMessage();
        char root[PATH_MAX];
        /* The message may be translated: a lock held on the pid file says the same. */
        if (embed_root(v->uri, root, sizeof(root)) == 0 &&
            ((m && strstr(m, "Failed to acquire pid file")) || embed_holder(root, true) > 0)) {
            r = embed_busy(v, root);
        } else {
            nc_virt_set_err(v, "%s", m ? m : "unknown libvirt error");
            log_debug("virConnectOpen %s: %s", v->uri, v->err);
            r = verr_errno();
        }
        stop_loop(v);
        return r;
    }
    /* Errors reach the caller through v->err and return codes, not libvirt's stderr printer. */
    virConnSetErrorFunc(v->conn, NULL, quiet_error);
    return 0;
}

void nc_virt_close(struct nc_virt *v)
{
    if (v->conn) {
        virConnectClose(v->conn);
        v->conn = NULL;
    }
    stop_loop(v);
}

int nc_virt_lookup(struct nc_virt *v, const char *name_or_uuid, virDomainPtr *out)
{
    *out = NULL;
    virDomainPtr d = virDomainLookupByName(v->conn, name_or_uuid);
    if (!d && strlen(name_or_uuid) == 36)
        d = virDomainLookupByUUIDString(v->conn, name_or_uuid);
    if (!d) {
        nc_virt_set_err(v, "domain '%s' not found", name_or_uuid);
        return -ENOENT;
    }
    *out = d;
    return 0;
}

int nc_virt_state(struct nc_virt *v, virDomainPtr dom, int *state, int *reason)
{
    int s = 0, rs = 0;
    if (virDomainGetState(dom, &s, &rs, 0) < 0)
        return fail(v, "virDomainGetState");
    if (state)
        *state = s;
    if (reason)
        *reason = rs;
    return 0;
}

const char *nc_virt_state_name(int state)
{
    switch (state) {
    case VIR_DOMAIN_NOSTATE:
        return "no state";
    case VIR_DOMAIN_RUNNING:
        return "running";
    case VIR_DOMAIN_BLOCKED:
        return "blocked";
    case VIR_DOMAIN_PAUSED:
        return "paused";
    case VIR_DOMAIN_SHUTDOWN:
        return "in shutdown";
    case VIR_DOMAIN_SHUTOFF:
        return "shut off";
    case VIR_DOMAIN_CRASHED:
        return "crashed";
    case VIR_DOMAIN_PMSUSPENDED:
        return "pmsuspended";
    default:
        return "unknown";
    }
}

int nc_virt_xml(struct nc_virt *v, virDomainPtr dom, unsigned int flags, char **out)
{
    char *x = virDomainGetXMLDesc(dom, flags);
    if (!x)
        return fail(v, "virDomainGetXMLDesc");
    *out = x;
    return 0;
}

static int fmt_version(unsigned long long ver, char *buf, size_t len)
{
    return snprintf(buf, len, "%llu.%llu.%llu", ver / 1000000, ver / 1000 % 1000, ver % 1000) >=
                   (int)len
               ? -ENOBUFS
               : 0;
}

int nc_virt_lib_version(struct nc_virt *v, char *buf, size_t len)
{
    unsigned long ver = 0;
    if (virGetVersion(&ver, NULL, NULL) < 0)
        return fail(v, "libvirt version");
    return fmt_version(ver, buf, len);
}

int nc_virt_hv_version(struct nc_virt *v, char *buf, size_t len)
{
    unsigned long ver = 0;
    if (virConnectGetVersion(v->conn, &ver) < 0)
        return fail(v, "hypervisor version");
    return fmt_version(ver, buf, len);
}

/* A long libvirt job run in a worker thread while the caller's thread reports progress. */
struct job {
    struct nc_virt *v;
    virDomainPtr dom;
    const char *path, *dxml, *name;
    unsigned int flags;
    bool snapshot;
    atomic_bool done;
    int r;
    char err[1024];
};

static void *job_main(void *arg)
{
    struct job *j = arg;
    int r;
    if (j->snapshot) {
        virDomainSnapshotPtr s = virDomainSnapshotCreateXML(j->dom, j->dxml, j->flags);
        r = s ? 0 : -1;
        if (s)
            virDomainSnapshotFree(s);
    } else {
        r = virDomainSaveFlags(j->dom, j->path, j->dxml, j->flags);
    }
    if (r < 0) {
        const char *m = virGetLastErrorMessage();
        snprintf(j->err, sizeof(j->err), "%s", m ? m : "unknown libvirt error");
        j->r = verr_errno();
    }
    atomic_store(&j->done, true);
    return NULL;
}

static int run_job(struct nc_virt *v, struct job *j, nc_virt_progress_fn progress, void *ud,
                   int poll_ms)
{
    if (poll_ms <= 0)
        poll_ms = 100;
    pthread_t t;
    int r = -pthread_create(&t, NULL, job_main, j);
    if (r < 0)
        return r;
    uint64_t last_done = UINT64_MAX;
    while (!atomic_load(&j->done)) {
        struct timespec ts = {poll_ms / 1000, (long)(poll_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        if (!progress || atomic_load(&j->done))
            continue;
        virDomainJobInfo info;
        /* Fails between jobs (not started yet, or just finished): not an error. */
        if (virDomainGetJobInfo(j->dom, &info) == 0 && info.type != VIR_DOMAIN_JOB_NONE) {
            uint64_t done = info.dataProcessed, total = info.dataTotal;
            if (done != last_done)
                progress(ud, done, total);
            last_done = done;
        }
    }
    pthread_join(t, NULL);
    if (j->r < 0) {
        nc_virt_set_err(v, "%s: %s", j->snapshot ? "snapshot" : "save", j->err);
        return j->r;
    }
    return 0;
}

int nc_virt_save(struct nc_virt *v, virDomainPtr dom, const char *path, const char *dxml,
                 unsigned int flags, nc_virt_progress_fn progress, void *userdata, int poll_ms)
{
    struct job j = {.v = v, .dom = dom, .path = path, .dxml = dxml, .flags = flags};
    int r = run_job(v, &j, progress, userdata, poll_ms);
    if (r == 0 && progress) {
        struct stat st;
        uint64_t sz = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
        progress(userdata, sz, sz);
    }
    return r;
}

int nc_virt_abort_job(struct nc_virt *v, virDomainPtr dom)
{
    return virDomainAbortJob(dom) < 0 ? fail(v, "abort job") : 0;
}

int nc_virt_restore_paused(struct nc_virt *v, const char *path, const char *dxml, virDomainPtr *out)
{
    if (out)
        *out = NULL;
    if (virDomainRestoreFlags(v->conn, path, dxml, VIR_DOMAIN_SAVE_PAUSED) < 0)
        return fail(v, "restore");
    if (!out)
        return 0;
    /* The save file names its domain; read it to find what was restored. */
    char *x = virDomainSaveImageGetXMLDesc(v->conn, path, 0);
    if (!x)
        return fail(v, "reading the save image's XML");
    struct domain_info di;
    int r = domain_xml_parse(x, NULL, &di, v->err, sizeof(v->err));
    free(x);
    if (r == -EINVAL || r == -ENOMEM)
        return r;
    *out = virDomainLookupByUUIDString(v->conn, di.uuid);
    return *out ? 0 : fail(v, "looking up the restored domain");
}

int nc_virt_resume(struct nc_virt *v, virDomainPtr dom)
{
    return virDomainResume(dom) < 0 ? fail(v, "resume") : 0;
}

int nc_virt_suspend(struct nc_virt *v, virDomainPtr dom)
{
    return virDomainSuspend(dom) < 0 ? fail(v, "suspend") : 0;
}

static bool snapshot_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 200)
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return false;
    return true;
}

int nc_virt_snapshot_create(struct nc_virt *v, virDomainPtr dom, const char *name, bool halt,
                            nc_virt_progress_fn progress, void *userdata, int poll_ms)
{
    if (!snapshot_name_valid(name)) {
        nc_virt_set_err(v, "snapshot name '%s' is not [A-Za-z0-9._-]{1,200}", name);
        return -EINVAL;
    }
    char xml[512];
    snprintf(xml, sizeof(xml),
             "<domainsnapshot><name>%s</name><description>netckpt checkpoint</description>"
             "<memory snapshot='internal'/></domainsnapshot>",
             name);
    struct job j = {.v = v, .dom = dom, .dxml = xml, .snapshot = true};
    j.flags = halt ? VIR_DOMAIN_SNAPSHOT_CREATE_HALT : 0;
    return run_job(v, &j, progress, userdata, poll_ms);
}

int nc_virt_snapshot_revert_paused(struct nc_virt *v, virDomainPtr dom, const char *name)
{
    virDomainSnapshotPtr s = virDomainSnapshotLookupByName(dom, name, 0);
    if (!s)
        return fail(v, "snapshot lookup");
    int r = virDomainRevertToSnapshot(s, VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED) < 0
                ? fail(v, "snapshot revert")
                : 0;
    virDomainSnapshotFree(s);
    return r;
}

int nc_virt_open_peer(struct nc_virt *v, const struct nc_virt *loop_owner, const char *uri)
{
    memset(v, 0, sizeof(*v));
    if (!loop_owner || !loop_owner->loop_started) {
        nc_virt_set_err(v, "no event loop runs for a second connection");
        return -EINVAL;
    }
    if (snprintf(v->uri, sizeof(v->uri), "%s", uri) >= (int)sizeof(v->uri))
        return -ENAMETOOLONG;
    snprintf(v->state_dir, sizeof(v->state_dir), "%s", loop_owner->state_dir);
    v->conn = virConnectOpen(v->uri);
    if (!v->conn)
        return fail(v, "connecting");
    return 0;
}

int nc_virt_migrate(virDomainPtr dom, const struct nc_virt_migrate_args *a, char *err,
                    size_t errlen)
{
    virTypedParameterPtr params = NULL;
    int n = 0, max = 0, r = 0;
    if ((a->migrate_uri &&
         virTypedParamsAddString(&params, &n, &max, VIR_MIGRATE_PARAM_URI, a->migrate_uri) < 0) ||
        (a->listen_address &&
         virTypedParamsAddString(&params, &n, &max, VIR_MIGRATE_PARAM_LISTEN_ADDRESS,
                                 a->listen_address) < 0) ||
        (a->dest_xml &&
         virTypedParamsAddString(&params, &n, &max, VIR_MIGRATE_PARAM_DEST_XML, a->dest_xml) < 0) ||
        (a->bandwidth_mib && virTypedParamsAddULLong(&params, &n, &max, VIR_MIGRATE_PARAM_BANDWIDTH,
                                                     a->bandwidth_mib) < 0))
        r = -ENOMEM;
    if (r == 0 && virDomainMigrateToURI3(dom, a->dest_uri, params, (unsigned)n, a->flags) < 0) {
        const char *m = virGetLastErrorMessage();
        snprintf(err, errlen, "%s", m ? m : "unknown libvirt error");
        r = verr_errno();
    } else if (r < 0) {
        snprintf(err, errlen, "out of memory");
    }
    virTypedParamsFree(params, n);
    return r;
}

static int qmp(virDomainPtr dom, const char *cmd, char **reply, char *err, size_t errlen)
{
    *reply = NULL;
    if (virDomainQemuMonitorCommand(dom, cmd, reply, 0) < 0) {
        const char *m = virGetLastErrorMessage();
        snprintf(err, errlen, "%s", m ? m : "unknown libvirt error");
        return verr_errno();
    }
    return 0;
}

static uint64_t ju64(json_object *o, const char *key)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
        return 0;
    int64_t x = json_object_get_int64(v);
    return x > 0 ? (uint64_t)x : 0;
}

/* QEMU's query-migrate through the monitor: libvirt's virDomainGetJobStats waited here for
 * seconds at a time while the migration ran (its job lock), the monitor passthrough did not. */
int nc_virt_job_mem(virDomainPtr dom, struct nc_virt_job_mem *out)
{
    memset(out, 0, sizeof(*out));
    char *reply = NULL, e[256];
    if (qmp(dom, "{\"execute\":\"query-migrate\"}", &reply, e, sizeof(e)) < 0)
        return -ENOENT;
    json_object *o = reply ? json_tokener_parse(reply) : NULL;
    free(reply);
    json_object *ret = NULL, *st = NULL, *ram = NULL;
    int r = -ENOENT;
    if (o && json_object_object_get_ex(o, "return", &ret) &&
        json_object_object_get_ex(ret, "status", &st) &&
        json_object_is_type(st, json_type_string) &&
        !strcmp(json_object_get_string(st), "active") &&
        json_object_object_get_ex(ret, "ram", &ram)) {
        out->total = ju64(ram, "total");
        out->processed = ju64(ram, "transferred");
        out->remaining = ju64(ram, "remaining");
        out->iteration = ju64(ram, "dirty-sync-count");
        out->dirty_rate = ju64(ram, "dirty-pages-rate");
        r = 0;
    }
    json_object_put(o);
    return r;
}

int nc_virt_migrate_bandwidth(virDomainPtr dom, uint64_t *bw, char *err, size_t errlen)
{
    char *reply = NULL;
    int r = qmp(dom, "{\"execute\":\"query-migrate-parameters\"}", &reply, err, errlen);
    if (r < 0)
        return r;
    /* Our own monitor's reply, still read with care. */
    const char *key = "\"max-bandwidth\":";
    const char *p = reply ? strstr(reply, key) : NULL;
    unsigned long long v = p ? strtoull(p + strlen(key), NULL, 10) : 0;
    free(reply);
    *bw = v ? v : 128ull << 20;
    return 0;
}

int nc_virt_migrate_hold(virDomainPtr dom, bool hold, uint64_t bw, char *err, size_t errlen)
{
    char cmd[160], *reply = NULL;
    snprintf(cmd, sizeof(cmd),
             "{\"execute\":\"migrate-set-parameters\",\"arguments\":{\"max-bandwidth\":%llu}}",
             hold ? 1024ull : (unsigned long long)bw);
    int r = qmp(dom, cmd, &reply, err, errlen);
    free(reply);
    return r;
}
