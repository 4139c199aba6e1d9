/* Unit tests of host/bundle: write, commit and verify; the manifest round trip and its
 * validity against schemas/checkpoint.rng; and refusal of partial, corrupt and tampered
 * bundles (a flipped byte, a deleted, added or truncated file, a truncated manifest, a
 * leftover partial directory, an oversized or foreign socket image, symlinks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/macro.h"
#include "common/util.h"
#include "host/bundle.h"
#include "version.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IMAGE_ID "0123456789abcdef0123456789abcdef"

struct fx {
    char dir[64];
    char path[128];
    char err[2048];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/netckpt-test-bundle-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/ckpt-1", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    rm_rf(f->dir);
    free(f);
    return 0;
}

static void fill_manifest(struct manifest *m)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->domain_name, sizeof(m->domain_name), "vm <one> & 'two'");
    snprintf(m->domain_uuid, sizeof(m->domain_uuid), "6f1b7c7e-2a55-4a0e-9a43-1c2d3e4f5a6b");
    m->created_ns = 1764770000123456789ull;
    m->mode = MANIFEST_MODE_CONTINUE;
    m->state = MANIFEST_STATE_SAVE;
    snprintf(m->image_id, sizeof(m->image_id), IMAGE_ID);
    m->n_connections = 3;
    snprintf(m->taps[0], sizeof(m->taps[0]), "vnet0");
    snprintf(m->taps[1], sizeof(m->taps[1]), "nctap.1");
    m->n_taps = 2;
    m->counters = (struct manifest_counters){7, 700, 9, 900};
    manifest_add_step(m, "gate", 1000);
    manifest_add_step(m, "freeze", 2000);
    manifest_add_step(m, "save", 3000000000ull);
    manifest_add_step(m, "Bad Name", 1); /* dropped: not a step name */
}

/* A complete bundle: domain.xml, socket-image.json, vm.state (written "by libvirt"). */
static void write_bundle(struct fx *f, struct manifest *m)
{
    struct bundle b;
    assert_int_equal(bundle_begin(f->path, &b), 0);
    const char dx[] = "<domain><name>vm</name></domain>\n";
    assert_int_equal(bundle_add_buffer(&b, BUNDLE_DOMAIN_XML, dx, sizeof(dx) - 1), 0);
    const char img[] =
        "{\"format\":\"netckpt-socket-image\",\"image_id\":\"" IMAGE_ID "\",\"connections\":[]}\n";
    assert_int_equal(bundle_add_buffer(&b, BUNDLE_SOCKET_IMAGE, img, sizeof(img) - 1), 0);
    char p[4096];
    assert_int_equal(bundle_file_path(&b, BUNDLE_VM_STATE, p, sizeof(p)), 0);
    char state[10000];
    for (size_t i = 0; i < sizeof(state); i++)
        state[i] = (char)(i * 7);
    assert_int_equal(write_file_atomic(p, state, sizeof(state), 0600), 0);
    assert_int_equal(bundle_add_file(&b, BUNDLE_VM_STATE, NULL), 0);
    fill_manifest(m);
    assert_int_equal(bundle_commit(&b, m), 0);
}

static void bpath(struct fx *f, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", f->path, name);
}

static void test_roundtrip(void **state)
{
    struct fx *f = *state;
    struct manifest m, r;
    write_bundle(f, &m);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    char partial[256];
    snprintf(partial, sizeof(partial), "%s/.ckpt-1.partial", f->dir);
    assert_int_not_equal(stat(partial, &st), 0); /* renamed away */

    assert_int_equal(bundle_open_verify(f->path, &r, f->err, sizeof(f->err)), 0);
    assert_string_equal(r.domain_name, m.domain_name);
    assert_string_equal(r.domain_uuid, m.domain_uuid);
    assert_true(r.created_ns == m.created_ns);
    assert_int_equal(r.mode, MANIFEST_MODE_CONTINUE);
    assert_int_equal(r.state, MANIFEST_STATE_SAVE);
    assert_string_equal(r.image_id, IMAGE_ID);
    assert_int_equal(r.n_connections, 3);
    assert_int_equal(r.n_taps, 2);
    assert_string_equal(r.taps[1], "nctap.1");
    assert_true(r.counters.to_guest_pkts == 7 && r.counters.to_guest_bytes == 700 &&
                r.counters.from_guest_pkts == 9 && r.counters.from_guest_bytes == 900);
    assert_int_equal(r.n_files, 3);
    assert_int_equal(r.n_steps, 3);
    assert_string_equal(r.steps[2].name, "save");
    assert_true(r.steps[2].duration_ns == 3000000000ull);
    assert_string_equal(r.netckpt_version, NETCKPT_VERSION);
    assert_true(r.libvirt_version[0] >= '0' && r.libvirt_version[0] <= '9');
    char sum[SHA256_HEX_LEN], p[256];
    bpath(f, BUNDLE_VM_STATE, p, sizeof(p));
    assert_int_equal(sha256_file_hex(p, sum), 0);
    for (size_t i = 0; i < r.n_files; i++)
        if (!strcmp(r.files[i].name, BUNDLE_VM_STATE)) {
            assert_string_equal(r.files[i].sha256, sum);
            assert_true(r.files[i].size == 10000);
        }
}

static void test_manifest_validates_against_schema_file(void **state)
{
    struct fx *f = *state;
    struct manifest m;
    write_bundle(f, &m);
    char p[256], rng[4096];
    bpath(f, BUNDLE_MANIFEST, p, sizeof(p));
    const char *src = getenv("NETCKPT_SOURCE_DIR");
    snprintf(rng, sizeof(rng), "%s/schemas/checkpoint.rng", src ? src : NETCKPT_SOURCE_DIR);
    char *xml = NULL;
    size_t len = 0;
    assert_int_equal(read_file(p, 1 << 20, &xml, &len), 0);
    assert_int_equal(manifest_validate(xml, len, rng, f->err, sizeof(f->err)), 0);
    assert_non_null(strstr(xml, "<mode>continue</mode>"));
    assert_non_null(strstr(xml, "vm &lt;one&gt; &amp; 'two'"));

    /* and the schema does reject things */
    const char *bad[] = {
        "<checkpoint version='1'/>",
        "<checkpoint version='2'><domain/></checkpoint>",
    };
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(manifest_validate(bad[i], strlen(bad[i]), rng, f->err, sizeof(f->err)),
                         -EINVAL);
    char *mod = strdup(xml);
    char *at = strstr(mod, "<mode>continue");
    memcpy(at, "<mode>cntinue!", 14);
    assert_int_equal(manifest_validate(mod, strlen(mod), rng, f->err, sizeof(f->err)), -EINVAL);
    assert_int_equal(manifest_validate(mod, strlen(mod), NULL, f->err, sizeof(f->err)), -EINVAL);
    assert_non_null(strstr(f->err, "line"));
    free(mod);
    free(xml);

    /* a snapshot-mode manifest validates too */
    fill_manifest(&m);
    m.state = MANIFEST_STATE_SNAPSHOT;
    snprintf(m.snapshot_name, sizeof(m.snapshot_name), "netckpt-1");
    snprintf(m.files[0].name, sizeof(m.files[0].name), "domain.xml");
    snprintf(m.files[0].sha256, sizeof(m.files[0].sha256), "%064d", 0);
    m.n_files = 1;
    snprintf(m.netckpt_version, sizeof(m.netckpt_version), "0.1.0");
    snprintf(m.libvirt_version, sizeof(m.libvirt_version), "9.0.0");
    assert_int_equal(manifest_to_xml(&m, &xml), 0);
    assert_int_equal(manifest_validate(xml, strlen(xml), rng, f->err, sizeof(f->err)), 0);
    struct manifest r;
    assert_int_equal(manifest_from_xml(xml, strlen(xml), &r, f->err, sizeof(f->err)), 0);
    assert_int_equal(r.state, MANIFEST_STATE_SNAPSHOT);
    assert_string_equal(r.snapshot_name, "netckpt-1");
    free(xml);
}

static void expect_refused(struct fx *f, int want, const char *needle)
{
    struct manifest r;
    int rv = bundle_open_verify(f->path, &r, f->err, sizeof(f->err));
    if (rv != want || !strstr(f->err, needle))
        fail_msg("verify returned %d (want %d), message '%s' (want '%s')", rv, want, f->err,
                 needle);
}

static void test_flip_byte(void **state)
{
    struct fx *f = *state;
    struct manifest m;
    write_bundle(f, &m);
    char p[256];
    bpath(f, BUNDLE_VM_STATE, p, sizeof(p));
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    char c;
    assert_int_equal(pread(fd, &c, 1, 5000), 1);
    c ^= 0x01;
    assert_int_equal(pwrite(fd, &c, 1, 5000), 1);
    close(fd);
    expect_refused(f, -EINVAL, "sha256");
    expect_refused(f, -EINVAL, "vm.state");
}

static void test_delete_file(void **state)
{
    struct fx *f = *state;
    struct manifest m;
    write_bundle(f, &m);
    char p[256];
    bpath(f, BUNDLE_SOCKET_IMAGE, p, sizeof(p));
    assert_int_equal(unlink(p), 0);
    expect_refused(f, -ENOENT, "socket-image.json is missing");
}

static void test_truncated_file(void **state)
{
    struct fx *f = *state;
    struct manifest m;
    write_bundle(f, &m);
    char p[256];
    bpath(f, BUNDLE_VM_STATE, p, sizeof(p));
    assert_int_equal(truncate(p, 100), 0);
    expect_refused(f, -EINVAL, "truncated");
}

static void test_truncated_manifest(void **state)
{
    struct fx *f = *state;
    struct manifest m;
    write_bundle(f, &m);
    char p[256];
    bpath(f, BUNDLE_MANIFEST, p, sizeof(p));
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(truncate(p, st.st_size / 2), 0);
    expect_refused(f, -EINVAL, "manifest.xml");
    assert_int_equal(unlink(p), 0);
    expect_refused(f, -ENOENT, "no readable manifest.xml");
}

static void test_tampered_manifest(void **state)
{
    struct fx *f = *state;
    struct manifest m;
    write_bundle(f, &m);
    char p[256];
    bpath(f, BUNDLE_MANIFEST, p, sizeof(p));
    char *xml = NULL;
    size_t len;
    assert_int_equal(read_file(p, 1 << 20, &xml, &len), 0);
    /* lists vm.state twice */
    char *files = strstr(xml, "<files>");
    assert_non_null(files);
    char *line = strstr(files, "<file name=\"vm.state\"");
    assert_non_null(line);
    char *end = strstr(line, "/>") + 2;
    size_t ll = (size_t)(end - line);
    char *out = malloc(len + ll + 1);
    size_t pre = (size_t)(end - xml);
    memcpy(out, xml, pre);
    memcpy(out + pre, line, ll);
    memcpy(out + pre + ll, end, len - pre + 1);
    assert_int_equal(write_file_atomic(p, out, strlen(out), 0600), 0);
    expect_refused(f, -EINVAL, "listed twice");
    free(out);

    /* a path in a file name */
    char *x2 = strdup(xml);
    char *n = strstr(x2, "name=\"domain.xml\"");
    memcpy(n, "name=\"../etc/pw\"", 16);
    assert_int_equal(write_file_atomic(p, x2, strlen(x2), 0600), 0);
    expect_refused(f, -EINVAL, "manifest.xml is invalid");
    free(x2);

    /* a DTD smuggled in */
    char *x3 = malloc(len + 64);
    snprintf(x3, len + 64, "<!DOCTYPE checkpoint [<!ENTITY x \"y\">]>%s",
             strstr(xml, "<checkpoint"));
    assert_int_equal(write_file_atomic(p, x3, strlen(x3), 0600), 0);
    expect_refused(f, -EINVAL, "DTD");
    free(x3);
    free(xml);
}

static void test_extra_file_and_symlink(void **state)
{
    struct fx *f = *state;
    struct manifest m;
    write_bundle(f, &m);
    char p[256];
    bpath(f, "evil.sh", p, sizeof(p));
    assert_int_equal(write_file_atomic(p, "x", 1, 0600), 0);
    expect_refused(f, -EINVAL, "unexpected file 'evil.sh'");
    unlink(p);
    expect_refused(f, 0, "");

    /* a listed file replaced by a symlink to the same content */
    char target[256], sp[256];
    snprintf(target, sizeof(target), "%s/elsewhere", f->dir);
    bpath(f, BUNDLE_DOMAIN_XML, sp, sizeof(sp));
    assert_int_equal(rename(sp, target), 0);
    assert_int_equal(symlink(target, sp), 0);
    struct manifest r;
    assert_true(bundle_open_verify(f->path, &r, f->err, sizeof(f->err)) < 0);
    assert_non_null(strstr(f->err, "domain.xml"));
}

static void test_partial(void **state)
{
    struct fx *f = *state;
    struct bundle b;
    assert_int_equal(bundle_begin(f->path, &b), 0);
    assert_int_equal(bundle_add_buffer(&b, BUNDLE_DOMAIN_XML, "<x/>", 4), 0);
    /* interrupted here: the final path does not exist, the partial one does */
    expect_refused(f, -ENOENT, "incomplete");
    char partial[256];
    snprintf(partial, sizeof(partial), "%s/.ckpt-1.partial", f->dir);
    struct manifest r;
    assert_int_equal(bundle_open_verify(partial, &r, f->err, sizeof(f->err)), -ENOENT);
    assert_non_null(strstr(f->err, "incomplete"));
    /* a second checkpoint to the same path is refused until the partial one is removed */
    struct bundle b2;
    assert_int_equal(bundle_begin(f->path, &b2), -EBUSY);
    bundle_abort(&b);
    struct stat st;
    assert_int_not_equal(stat(partial, &st), 0);
    assert_int_equal(bundle_begin(f->path, &b2), 0);
    bundle_abort(&b2);

    /* a directory that appears at the final path before the commit is not replaced */
    assert_int_equal(bundle_begin(f->path, &b2), 0);
    assert_int_equal(bundle_add_buffer(&b2, BUNDLE_DOMAIN_XML, "<x/>", 4), 0);
    assert_int_equal(mkdir(f->path, 0700), 0);
    struct manifest m0;
    fill_manifest(&m0);
    assert_int_equal(bundle_commit(&b2, &m0), -EEXIST);
    assert_int_not_equal(stat(partial, &st), 0); /* aborted */
    assert_int_equal(rmdir(f->path), 0);

    /* a bundle that exists is never overwritten */
    struct manifest m;
    write_bundle(f, &m);
    assert_int_equal(bundle_begin(f->path, &b2), -EEXIST);
}

static void test_socket_image_checks(void **state)
{
    struct fx *f = *state;
    struct manifest m;
    write_bundle(f, &m);
    char p[256];
    bpath(f, BUNDLE_SOCKET_IMAGE, p, sizeof(p));
    /* over the size limit (sparse: nothing is written) */
    assert_int_equal(truncate(p, (off_t)BUNDLE_SOCKET_IMAGE_MAX + 1), 0);
    expect_refused(f, -EFBIG, "over the");
    rm_rf(f->path);

    /* not JSON, or not this image: consistent checksums, so only the content check sees it */
    const char *bad[] = {"{\"image_id\":", "[1,2]", "{\"image_id\":\"ffff\"}",
                         "{\"image_id\":\"" IMAGE_ID "\"} trailing", "{\"connections\":[]}"};
    const char *why[] = {"not valid JSON", "not a JSON object", "the manifest says",
                         "not valid JSON", "has image_id '(none)'"};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        struct bundle b;
        assert_int_equal(bundle_begin(f->path, &b), 0);
        assert_int_equal(bundle_add_buffer(&b, BUNDLE_DOMAIN_XML, "<x/>", 4), 0);
        assert_int_equal(bundle_add_buffer(&b, BUNDLE_SOCKET_IMAGE, bad[i], strlen(bad[i])), 0);
        assert_int_equal(bundle_add_buffer(&b, BUNDLE_VM_STATE, "s", 1), 0);
        fill_manifest(&m);
        assert_int_equal(bundle_commit(&b, &m), 0);
        expect_refused(f, -EINVAL, why[i]);
        rm_rf(f->path);
    }

    /* deep nesting is refused, not recursed into */
    size_t depth = 5000;
    char *deep = malloc(2 * depth + 1);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[2 * depth] = 0;
    struct bundle b;
    assert_int_equal(bundle_begin(f->path, &b), 0);
    assert_int_equal(bundle_add_buffer(&b, BUNDLE_DOMAIN_XML, "<x/>", 4), 0);
    assert_int_equal(bundle_add_buffer(&b, BUNDLE_SOCKET_IMAGE, deep, 2 * depth), 0);
    assert_int_equal(bundle_add_buffer(&b, BUNDLE_VM_STATE, "s", 1), 0);
    fill_manifest(&m);
    assert_int_equal(bundle_commit(&b, &m), 0);
    expect_refused(f, -EINVAL, "not valid JSON");
    free(deep);
}

static void test_names_and_missing_required(void **state)
{
    struct fx *f = *state;
    struct bundle b;
    assert_int_equal(bundle_begin(f->path, &b), 0);
    const char *badn[] = {"../x", ".hidden", "a/b", "", "manifest.xml", "x y"};
    for (size_t i = 0; i < ELEMENTSOF(badn); i++)
        assert_int_equal(bundle_add_buffer(&b, badn[i], "x", 1), -EINVAL);
    assert_true(bundle_file_name_valid("vm.state"));
    assert_false(bundle_file_name_valid("0123456789012345678901234567890123456789012345678901234"
                                        "5678901234"));
    /* no vm.state listed for a save-mode bundle */
    assert_int_equal(bundle_add_buffer(&b, BUNDLE_DOMAIN_XML, "<x/>", 4), 0);
    assert_int_equal(bundle_add_buffer(&b, BUNDLE_SOCKET_IMAGE, "{}", 2), 0);
    struct manifest m;
    fill_manifest(&m);
    assert_int_equal(bundle_commit(&b, &m), 0);
    expect_refused(f, -EINVAL, "does not list vm.state");

    /* a manifest that does not validate is never committed */
    rm_rf(f->path);
    assert_int_equal(bundle_begin(f->path, &b), 0);
    fill_manifest(&m);
    snprintf(m.image_id, sizeof(m.image_id), "NOT HEX");
    assert_true(bundle_commit(&b, &m) < 0);
    struct stat st;
    assert_int_not_equal(stat(f->path, &st), 0);
    char partial[256];
    snprintf(partial, sizeof(partial), "%s/.ckpt-1.partial", f->dir);
    assert_int_not_equal(stat(partial, &st), 0);
}

static void test_copy_in(void **state)
{
    struct fx *f = *state;
    char src[256];
    snprintf(src, sizeof(src), "%s/src.xml", f->dir);
    assert_int_equal(write_file_atomic(src, "<domain/>", 9, 0600), 0);
    struct bundle b;
    assert_int_equal(bundle_begin(f->path, &b), 0);
    assert_int_equal(bundle_add_file(&b, BUNDLE_DOMAIN_XML, src), 0);
    assert_int_equal(bundle_add_buffer(&b, BUNDLE_SOCKET_IMAGE, "{}", 2), 0);
    /* the later write of a name wins */
    const char *img = "{\"image_id\":\"" IMAGE_ID "\"}";
    assert_int_equal(bundle_add_buffer(&b, BUNDLE_SOCKET_IMAGE, img, strlen(img)), 0);
    assert_int_equal(bundle_add_buffer(&b, BUNDLE_VM_STATE, "", 0), 0);
    assert_int_equal(bundle_add_file(&b, "missing", "/nonexistent/file"), -ENOENT);
    struct manifest m, r;
    fill_manifest(&m);
    assert_int_equal(bundle_commit(&b, &m), 0);
    assert_int_equal(bundle_open_verify(f->path, &r, f->err, sizeof(f->err)), 0);
    assert_int_equal(r.n_files, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manifest_validates_against_schema_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_flip_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_manifest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_manifest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extra_file_and_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_image_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names_and_missing_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_in, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
