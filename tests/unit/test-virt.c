/* Unit tests of host/virt against libvirt's test:///default driver (no VM, no root): open and
 * close with the event loop thread (twice in a row), lookup, state, versions, save with
 * progress and restore, and the embedded driver's qemu.conf and default URI. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/util.h"
#include "host/virt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct prog {
    unsigned calls;
    uint64_t last_done, last_total;
};

static void on_progress(void *ud, uint64_t done, uint64_t total)
{
    struct prog *p = ud;
    p->calls++;
    p->last_done = done;
    p->last_total = total;
}

static void test_open_lookup_state(void **state)
{
    for (int round = 0; round < 2; round++) { /* the loop thread stops and starts again */
        struct nc_virt v;
        assert_int_equal(nc_virt_open(&v, "test:///default", "/nonexistent-unused"), 0);
        virDomainPtr d;
        assert_int_equal(nc_virt_lookup(&v, "test", &d), 0);
        int st = -1;
        assert_int_equal(nc_virt_state(&v, d, &st, NULL), 0);
        assert_int_equal(st, VIR_DOMAIN_RUNNING);
        assert_string_equal(nc_virt_state_name(st), "running");
        char uuid[VIR_UUID_STRING_BUFLEN];
        assert_int_equal(virDomainGetUUIDString(d, uuid), 0);
        virDomainPtr d2;
        assert_int_equal(nc_virt_lookup(&v, uuid, &d2), 0); /* by UUID too */
        virDomainFree(d2);
        virDomainFree(d);
        assert_int_equal(nc_virt_lookup(&v, "no-such-domain", &d), -ENOENT);
        assert_null(d);
        assert_non_null(strstr(v.err, "no-such-domain"));
        char ver[32];
        assert_int_equal(nc_virt_lib_version(&v, ver, sizeof(ver)), 0);
        assert_true(ver[0] >= '1' && ver[0] <= '9' && strchr(ver, '.'));
        assert_int_equal(nc_virt_hv_version(&v, ver, sizeof(ver)), 0);
        nc_virt_close(&v);
        nc_virt_close(&v); /* idempotent */
    }
}

static void test_save_restore(void **state)
{
    struct nc_virt v;
    assert_int_equal(nc_virt_open(&v, "test:///default", "/nonexistent-unused"), 0);
    virDomainPtr d;
    assert_int_equal(nc_virt_lookup(&v, "test", &d), 0);
    char dir[] = "/tmp/netckpt-test-virt-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/vm.state", dir);
    struct prog p = {0};
    assert_int_equal(nc_virt_save(&v, d, path, NULL, 0, on_progress, &p, 5), 0);
    /* the test driver finishes at once; the final report always comes */
    assert_true(p.calls >= 1);
    assert_true(p.last_done == p.last_total && p.last_total > 0);
    int st;
    assert_int_equal(nc_virt_state(&v, d, &st, NULL), 0);
    assert_int_equal(st, VIR_DOMAIN_SHUTOFF);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);

    /* the test driver cannot restore paused: a clear error, nothing restored */
    virDomainPtr r = NULL;
    assert_int_equal(nc_virt_restore_paused(&v, path, NULL, &r), -EINVAL);
    assert_null(r);
    assert_non_null(strstr(v.err, "restore"));
    assert_int_equal(nc_virt_state(&v, d, &st, NULL), 0);
    assert_int_equal(st, VIR_DOMAIN_SHUTOFF);
    /* so restore it running, then pause and resume through the helpers */
    assert_int_equal(virDomainRestore(v.conn, path), 0);
    assert_int_equal(nc_virt_suspend(&v, d), 0);
    assert_int_equal(nc_virt_state(&v, d, &st, NULL), 0);
    assert_int_equal(st, VIR_DOMAIN_PAUSED);
    assert_int_equal(nc_virt_resume(&v, d), 0);
    assert_int_equal(nc_virt_state(&v, d, &st, NULL), 0);
    assert_int_equal(st, VIR_DOMAIN_RUNNING);

    /* a save to an impossible path fails with libvirt's message and the domain runs on */
    assert_true(nc_virt_save(&v, d, "/nonexistent/dir/x", NULL, 0, NULL, NULL, 0) < 0);
    assert_non_null(strstr(v.err, "save"));
    assert_int_equal(nc_virt_state(&v, d, &st, NULL), 0);
    assert_int_equal(st, VIR_DOMAIN_RUNNING);

    /* snapshot names reach XML only when safe */
    assert_int_equal(nc_virt_snapshot_create(&v, d, "a<b", false, NULL, NULL, 0), -EINVAL);

    virDomainFree(d);
    nc_virt_close(&v);
    rm_rf(dir);
}

static void test_embed_conf_and_uri(void **state)
{
    char dir[] = "/tmp/netckpt-test-virt-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char root[128], conf[160];
    snprintf(root, sizeof(root), "%s/libvirt", dir);
    snprintf(conf, sizeof(conf), "%s/etc/qemu.conf", root);
    assert_int_equal(nc_virt_write_embed_conf(root), 1);
    char *s = NULL;
    assert_int_equal(read_file(conf, 4096, &s, NULL), 0);
    const char *want[] = {"stdio_handler = \"file\"",   "user = \"root\"",
                          "group = \"root\"",           "dynamic_ownership = 0",
                          "security_driver = \"none\"", "namespaces = [ ]",
                          "cgroup_controllers = [ ]",   "remember_owner = 0"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(s, want[i]))
            fail_msg("qemu.conf lacks %s", want[i]);
    free(s);
    /* an existing file (the operator's) is left alone */
    assert_int_equal(write_file_atomic(conf, "# mine\n", 7, 0600), 0);
    assert_int_equal(nc_virt_write_embed_conf(root), 0);
    assert_int_equal(read_file(conf, 4096, &s, NULL), 0);
    assert_string_equal(s, "# mine\n");
    free(s);

    /* an explicit embedded URI gets its qemu.conf too (the open itself may fail here) */
    char uri[256], conf2[200];
    snprintf(uri, sizeof(uri), "qemu:///embed?root=%s/explicit", dir);
    snprintf(conf2, sizeof(conf2), "%s/explicit/etc/qemu.conf", dir);
    struct nc_virt v;
    if (nc_virt_open(&v, uri, dir) == 0)
        nc_virt_close(&v);
    struct stat sb;
    assert_int_equal(stat(conf2, &sb), 0);

    assert_int_equal(nc_virt_default_uri("/var/lib/netckpt", uri, sizeof(uri)), 0);
    assert_string_equal(uri, "qemu:///embed?root=/var/lib/netckpt/libvirt");
    assert_int_equal(nc_virt_default_uri("/tmp/a&b", uri, sizeof(uri)), -EINVAL);

    char sd[256];
    setenv("NETCKPT_STATE_DIR", dir, 1);
    assert_int_equal(nc_virt_default_state_dir(sd, sizeof(sd)), 0);
    assert_string_equal(sd, dir);
    setenv("NETCKPT_STATE_DIR", "relative/dir", 1);
    assert_int_equal(nc_virt_default_state_dir(sd, sizeof(sd)), -EINVAL);
    unsetenv("NETCKPT_STATE_DIR");
    assert_int_equal(nc_virt_default_state_dir(sd, sizeof(sd)), 0);
    assert_string_equal(sd, NC_VIRT_DEFAULT_STATE_DIR);
    rm_rf(dir);
}

static void test_bad_uri(void **state)
{
    struct nc_virt v;
    assert_true(nc_virt_open(&v, "nosuchdriver:///x", "/tmp") < 0);
    assert_true(v.err[0] != 0);
    assert_null(v.conn);
    nc_virt_close(&v); /* safe after a failed open */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_lookup_state),
        cmocka_unit_test(test_save_restore),
        cmocka_unit_test(test_embed_conf_and_uri),
        cmocka_unit_test(test_bad_uri),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
