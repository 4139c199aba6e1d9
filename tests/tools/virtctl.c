/* virtctl: a test-only driver of host/virt, host/domain-xml and host/agent-link, running a
 * sequence of commands in ONE process, because libvirt's embedded driver lives inside the
 * process that opened it. Commands are separated by "::":
 *
 *   virtctl [-c URI] [-s STATE_DIR] CMD ARGS [:: CMD ARGS ...]
 *
 *   list                          active and inactive domains, one per line
 *   define FILE                   define from an XML file
 *   start NAME [--paused]
 *   state NAME [EXPECTED]         print the state; fail when EXPECTED differs
 *   xml NAME [AGENT_NAME]         parse the live XML; print taps and the agent socket
 *   socket-exists NAME            the agent channel's UNIX socket exists
 *   save NAME PATH                save with progress lines on stderr
 *   restore PATH                  restore paused
 *   resume NAME | suspend NAME | destroy NAME | undefine NAME
 *   snapshot NAME SNAP            snapshot with memory (internal), then revert paused
 *   agent-timeout NAME MS [KIND [AGENT]]  an agent call with no agent must time out (not
 *                                 hang); KIND: auto (default), unix, stream or qemu-agent;
 *                                 AGENT: the channel name (default org.netckpt.agent.0)
 *   agent-call NAME CMD MS KIND [AGENT]  run CMD (no arguments) over path KIND; must succeed
 *   agent-bench NAME N KIND [AGENT]  N guest-ping round trips over KIND: median, p99, max (us)
 *   save-bundle NAME DIR          save into a bundle's partial dir with its live XML and a stub
 *                                 socket image, commit, verify (then `restore DIR/vm.state`)
 *   pid NAME FILE                 write QEMU's pid (from the embedded run dir) to FILE
 *   versions
 * Exit 0 when every command succeeded; the first failure stops the sequence. */
#include "common/log.h"
#include "common/util.h"
#include "host/agent-link.h"
#include "host/bundle.h"
#include "host/domain-xml.h"
#include "host/virt.h"

#include <errno.h>
#include <libvirt/virterror.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct ctx {
    struct nc_virt v;
    unsigned progress_calls;
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void progress(void *ud, uint64_t done, uint64_t total)
{
    struct ctx *c = ud;
    c->progress_calls++;
    fprintf(stderr, "virtctl: save progress %" PRIu64 "/%" PRIu64 "\n", done, total);
}

static int lookup(struct ctx *c, const char *name, virDomainPtr *d)
{
    int r = nc_virt_lookup(&c->v, name, d);
    if (r < 0)
        fprintf(stderr, "virtctl: %s\n", c->v.err);
    return r;
}

static int live_info(struct ctx *c, virDomainPtr d, const char *agent, struct domain_info *di,
                     bool quiet)
{
    char *xml = NULL;
    int r = nc_virt_xml(&c->v, d, 0, &xml);
    if (r < 0)
        return r;
    char err[1024];
    r = domain_xml_parse(xml, agent, di, err, sizeof(err));
    free(xml);
    if (r < 0 && !quiet)
        fprintf(stderr, "virtctl: %s\n", err);
    return r;
}

static int run(struct ctx *c, int argc, char **argv)
{
    const char *cmd = argv[0];
    virDomainPtr d = NULL;
    int r = -EINVAL;
#define NEED(n)                                                                                    \
    do {                                                                                           \
        if (argc < (n) + 1) {                                                                      \
            fprintf(stderr, "virtctl: %s needs %d argument(s)\n", cmd, n);                         \
            return -EINVAL;                                                                        \
        }                                                                                          \
    } while (0)

    if (!strcmp(cmd, "list")) {
        virDomainPtr *doms = NULL;
        int n = virConnectListAllDomains(c->v.conn, &doms, 0);
        if (n < 0)
            return -EIO;
        for (int i = 0; i < n; i++) {
            int st = 0;
            nc_virt_state(&c->v, doms[i], &st, NULL);
            printf("%s %s\n", virDomainGetName(doms[i]), nc_virt_state_name(st));
            virDomainFree(doms[i]);
        }
        free(doms);
        return 0;
    }
    if (!strcmp(cmd, "versions")) {
        char a[32], b[32];
        r = nc_virt_lib_version(&c->v, a, sizeof(a));
        if (r == 0)
            r = nc_virt_hv_version(&c->v, b, sizeof(b));
        if (r == 0)
            printf("libvirt %s hypervisor %s\n", a, b);
        return r;
    }
    if (!strcmp(cmd, "define")) {
        NEED(1);
        char *xml = NULL;
        r = read_file(argv[1], DOMAIN_XML_MAX, &xml, NULL);
        if (r < 0)
            return r;
        d = virDomainDefineXML(c->v.conn, xml);
        free(xml);
        if (!d) {
            fprintf(stderr, "virtctl: define: %s\n", virGetLastErrorMessage());
            return -EIO;
        }
        virDomainFree(d);
        return 0;
    }
    if (!strcmp(cmd, "restore")) {
        NEED(1);
        r = nc_virt_restore_paused(&c->v, argv[1], NULL, &d);
        if (r < 0) {
            fprintf(stderr, "virtctl: %s\n", c->v.err);
            return r;
        }
        printf("restored %s paused\n", virDomainGetName(d));
        virDomainFree(d);
        return 0;
    }

    NEED(1);
    r = lookup(c, argv[1], &d);
    if (r < 0)
        return r;
    if (!strcmp(cmd, "start")) {
        bool paused = argc > 2 && !strcmp(argv[2], "--paused");
        r = virDomainCreateWithFlags(d, paused ? VIR_DOMAIN_START_PAUSED : 0) < 0 ? -EIO : 0;
        if (r < 0)
            fprintf(stderr, "virtctl: start: %s\n", virGetLastErrorMessage());
    } else if (!strcmp(cmd, "state")) {
        int st = 0;
        r = nc_virt_state(&c->v, d, &st, NULL);
        if (r == 0) {
            printf("%s %s\n", argv[1], nc_virt_state_name(st));
            if (argc > 2 && strcmp(argv[2], nc_virt_state_name(st)) != 0) {
                fprintf(stderr, "virtctl: %s is %s, expected %s\n", argv[1], nc_virt_state_name(st),
                        argv[2]);
                r = -EPROTO;
            }
        }
    } else if (!strcmp(cmd, "xml")) {
        struct domain_info di;
        r = live_info(c, d, argc > 2 ? argv[2] : NULL, &di, false);
        if (r == 0) {
            for (size_t i = 0; i < di.n_ifaces; i++)
                printf("iface type=%s tap=%s mac=%s model=%s\n", di.ifaces[i].type,
                       di.ifaces[i].tap, di.ifaces[i].mac, di.ifaces[i].model);
            printf("agent name=%s socket=%s state=%s\n", di.agent_name, di.agent_socket,
                   di.agent_state);
        }
    } else if (!strcmp(cmd, "socket-exists")) {
        struct domain_info di;
        r = live_info(c, d, NULL, &di, false);
        struct stat st;
        if (r == 0 &&
            (!di.agent_socket[0] || stat(di.agent_socket, &st) < 0 || !S_ISSOCK(st.st_mode))) {
            fprintf(stderr, "virtctl: agent socket '%s' does not exist\n", di.agent_socket);
            r = -ENOENT;
        }
    } else if (!strcmp(cmd, "save")) {
        NEED(2);
        c->progress_calls = 0;
        r = nc_virt_save(&c->v, d, argv[2], NULL, 0, progress, c, 20);
        if (r < 0)
            fprintf(stderr, "virtctl: %s\n", c->v.err);
        else
            printf("saved %s to %s (%u progress reports)\n", argv[1], argv[2], c->progress_calls);
    } else if (!strcmp(cmd, "resume")) {
        r = nc_virt_resume(&c->v, d);
    } else if (!strcmp(cmd, "suspend")) {
        r = nc_virt_suspend(&c->v, d);
    } else if (!strcmp(cmd, "destroy")) {
        r = virDomainDestroy(d) < 0 ? -EIO : 0;
    } else if (!strcmp(cmd, "undefine")) {
        r = virDomainUndefineFlags(d, VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA) < 0 ? -EIO : 0;
    } else if (!strcmp(cmd, "snapshot")) {
        NEED(2);
        r = nc_virt_snapshot_create(&c->v, d, argv[2], false, progress, c, 20);
        if (r == 0)
            r = nc_virt_snapshot_revert_paused(&c->v, d, argv[2]);
    } else if (!strcmp(cmd, "agent-timeout")) {
        NEED(2);
        struct domain_info di;
        r = live_info(c, d, argc > 4 ? argv[4] : NULL, &di, false);
        struct agent_link l;
        enum agent_link_kind kind = AGENT_LINK_AUTO;
        if (argc > 3 && !strcmp(argv[3], "unix"))
            kind = AGENT_LINK_UNIX;
        else if (argc > 3 && !strcmp(argv[3], "stream"))
            kind = AGENT_LINK_STREAM;
        else if (argc > 3 && !strcmp(argv[3], "qemu-agent"))
            kind = AGENT_LINK_QEMU_AGENT;
        if (r == 0)
            r = agent_link_open_kind(&l, &c->v, d, &di, kind);
        if (r == 0) {
            json_object *ret = NULL;
            struct qga_error e;
            uint64_t t0 = now_monotonic_ns();
            int q = agent_link_call(&l, "guest-ping", NULL, atoi(argv[2]), &ret, &e);
            printf("agent over %s: call returned %d after %" PRIu64 " ms\n",
                   agent_link_kind_name(l.kind), q, (now_monotonic_ns() - t0) / 1000000);
            json_object_put(ret);
            agent_link_close(&l);
            r = q == -ETIMEDOUT ? 0 : -EPROTO;
        }
    } else if (!strcmp(cmd, "agent-call")) {
        NEED(4);
        struct domain_info di;
        r = live_info(c, d, argc > 5 ? argv[5] : NULL, &di, false);
        enum agent_link_kind kind = AGENT_LINK_AUTO;
        if (!strcmp(argv[4], "unix"))
            kind = AGENT_LINK_UNIX;
        else if (!strcmp(argv[4], "stream"))
            kind = AGENT_LINK_STREAM;
        else if (!strcmp(argv[4], "qemu-agent"))
            kind = AGENT_LINK_QEMU_AGENT;
        struct agent_link l;
        if (r == 0)
            r = agent_link_open_kind(&l, &c->v, d, &di, kind);
        if (r == 0) {
            json_object *ret = NULL;
            struct qga_error e;
            /* Right after opening, the embedded driver may still be reconnecting the agent:
             * agent-link retries that within the timeout by itself. */
            r = agent_link_call(&l, argv[2], NULL, atoi(argv[3]), &ret, &e);
            printf("agent over %s: %s returned %d: %s\n", agent_link_kind_name(l.kind), argv[2], r,
                   r == 0 ? json_object_to_json_string(ret) : e.desc);
            json_object_put(ret);
            agent_link_close(&l);
        }
    } else if (!strcmp(cmd, "agent-bench")) {
        NEED(3);
        int n = atoi(argv[2]);
        if (n < 1 || n > 100000)
            n = 100;
        struct domain_info di;
        r = live_info(c, d, argc > 4 ? argv[4] : NULL, &di, false);
        enum agent_link_kind kind = !strcmp(argv[3], "unix")         ? AGENT_LINK_UNIX
                                    : !strcmp(argv[3], "stream")     ? AGENT_LINK_STREAM
                                    : !strcmp(argv[3], "qemu-agent") ? AGENT_LINK_QEMU_AGENT
                                                                     : AGENT_LINK_AUTO;
        struct agent_link l;
        if (r == 0)
            r = agent_link_open_kind(&l, &c->v, d, &di, kind);
        if (r == 0) {
            uint64_t *us = calloc((size_t)n, sizeof(*us));
            json_object *ret = NULL;
            struct qga_error e;
            r = agent_link_sync(&l, 5000);
            for (int i = 0; i < n && r == 0; i++) {
                uint64_t t0 = now_monotonic_ns();
                r = agent_link_call(&l, "guest-ping", NULL, 5000, &ret, &e);
                us[i] = (now_monotonic_ns() - t0) / 1000;
                json_object_put(ret);
            }
            if (r == 0) {
                qsort(us, (size_t)n, sizeof(*us), cmp_u64);
                printf("agent-bench %s n=%d median_us=%" PRIu64 " p99_us=%" PRIu64
                       " max_us=%" PRIu64 "\n",
                       agent_link_kind_name(l.kind), n, us[n / 2], us[(n * 99) / 100], us[n - 1]);
            }
            free(us);
            agent_link_close(&l);
        }
    } else if (!strcmp(cmd, "save-bundle")) {
        NEED(2);
        struct bundle b;
        struct manifest m = {0};
        char *xml = NULL, path[4200], err[2048];
        struct domain_info di;
        r = nc_virt_xml(&c->v, d, VIR_DOMAIN_XML_SECURE, &xml);
        if (r == 0) {
            domain_xml_parse(xml, NULL, &di, NULL, 0);
            r = bundle_begin(argv[2], &b);
        }
        if (r == 0) {
            static const char img[] = "{\"image_id\":\"00112233445566778899aabbccddeeff\"}";
            uint64_t t0 = now_monotonic_ns();
            r = bundle_file_path(&b, BUNDLE_VM_STATE, path, sizeof(path));
            if (r == 0)
                r = nc_virt_save(&c->v, d, path, NULL, 0, progress, c, 20);
            if (r == 0)
                r = bundle_add_file(&b, BUNDLE_VM_STATE, NULL);
            manifest_add_step(&m, "save", now_monotonic_ns() - t0);
            if (r == 0)
                r = bundle_add_buffer(&b, BUNDLE_DOMAIN_XML, xml, strlen(xml));
            if (r == 0)
                r = bundle_add_buffer(&b, BUNDLE_SOCKET_IMAGE, img, sizeof(img) - 1);
            snprintf(m.domain_name, sizeof(m.domain_name), "%s", di.name);
            snprintf(m.domain_uuid, sizeof(m.domain_uuid), "%s", di.uuid);
            snprintf(m.image_id, sizeof(m.image_id), "00112233445566778899aabbccddeeff");
            const char *taps[BUNDLE_MAX_TAPS];
            m.n_taps = domain_info_taps(&di, taps, BUNDLE_MAX_TAPS);
            for (size_t i = 0; i < m.n_taps; i++)
                snprintf(m.taps[i], sizeof(m.taps[i]), "%s", taps[i]);
            if (r == 0)
                nc_virt_lib_version(&c->v, m.libvirt_version, sizeof(m.libvirt_version));
            if (r == 0)
                r = bundle_commit(&b, &m);
            else
                bundle_abort(&b);
        }
        free(xml);
        struct manifest got;
        if (r == 0 && (r = bundle_open_verify(argv[2], &got, err, sizeof(err))) < 0)
            fprintf(stderr, "virtctl: %s\n", err);
        if (r == 0)
            printf("bundle %s committed and verified: %zu files, vm.state %" PRIu64 " bytes\n",
                   argv[2], got.n_files, got.files[0].size);
    } else if (!strcmp(cmd, "pid")) {
        NEED(2);
        char p[4200], *s = NULL;
        snprintf(p, sizeof(p), "%s/libvirt/run/qemu/%s.pid", c->v.state_dir, argv[1]);
        r = read_file(p, 64, &s, NULL);
        if (r == 0)
            r = write_file_atomic(argv[2], s, strlen(s), 0600);
        free(s);
    } else {
        fprintf(stderr, "virtctl: unknown command %s\n", cmd);
        r = -EINVAL;
    }
    if (r < 0 && c->v.err[0])
        fprintf(stderr, "virtctl: %s: %s\n", cmd, c->v.err);
    else if (r < 0)
        fprintf(stderr, "virtctl: %s: %s\n", cmd, virGetLastErrorMessage());
    virDomainFree(d);
    return r;
}

int main(int argc, char **argv)
{
    const char *uri = NULL, *state_dir = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "+c:s:")) != -1) {
        if (opt == 'c')
            uri = optarg;
        else if (opt == 's')
            state_dir = optarg;
        else
            return 2;
    }
    if (optind >= argc) {
        fprintf(stderr, "usage: virtctl [-c URI] [-s STATE_DIR] CMD ARGS [:: CMD ARGS ...]\n");
        return 2;
    }
    if (state_dir)
        nc_virt_log_to_file(state_dir);
    struct ctx c = {0};
    int r = nc_virt_open(&c.v, uri, state_dir);
    if (r < 0) {
        fprintf(stderr, "virtctl: cannot open %s: %s\n", uri ? uri : "the default URI", c.v.err);
        return 1;
    }
    int status = 0;
    for (int i = optind; i < argc && status == 0;) {
        int j = i;
        while (j < argc && strcmp(argv[j], "::") != 0)
            j++;
        if (j > i) {
            fprintf(stderr, "virtctl: >> %s\n", argv[i]);
            if (run(&c, j - i, argv + i) < 0)
                status = 1;
        }
        i = j + 1;
    }
    nc_virt_close(&c.v);
    return status;
}
