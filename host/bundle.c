/* host/bundle.c: see bundle.h. */
#include "host/bundle.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/util.h"
#include "host/domain-xml.h"
#include "version.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <string.h>
#include <stdio.h>
#include <sys/stat.h>

#include <json-c/json.h>
#include <libvirt/libvirt.h>
#include <libxml/relaxng.h>
#include <libxml/tree.h>

/* Generated from schemas/checkpoint.rng (host/CMakeLists.txt). */
extern const unsigned char netckpt_checkpoint_rng[];
extern const size_t netckpt_checkpoint_rng_len;

/* The socket image is JSON nested a few levels deep; more is hostile. */
#define SOCKET_IMAGE_JSON_DEPTH 32

bool bundle_file_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= BUNDLE_FILE_NAME_MAX || name[0] == '.')
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return false;
    return true;
}

static bool step_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 31)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
            return false;
    return true;
}

void manifest_add_step(struct manifest *m, const char *name, uint64_t duration_ns)
{
    if (m->n_steps >= BUNDLE_MAX_STEPS || !step_name_valid(name))
        return;
    snprintf(m->steps[m->n_steps].name, sizeof(m->steps[0].name), "%s", name);
    m->steps[m->n_steps].duration_ns = duration_ns;
    m->n_steps++;
}

const char *manifest_mode_name(enum manifest_mode m)
{
    return m == MANIFEST_MODE_CONTINUE ? "continue" : "stop";
}

/* --- writing ----------------------------------------------------------------------------- */

static int split_path(const char *path, char *parent, size_t plen, char *base, size_t blen)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    size_t n = strlen(tmp);
    while (n > 1 && tmp[n - 1] == '/')
        tmp[--n] = 0;
    char *slash = strrchr(tmp, '/');
    const char *b = slash ? slash + 1 : tmp;
    if (!*b || !strcmp(b, ".") || !strcmp(b, ".."))
        return -EINVAL;
    if (snprintf(base, blen, "%s", b) >= (int)blen)
        return -ENAMETOOLONG;
    if (!slash)
        snprintf(parent, plen, ".");
    else if (slash == tmp)
        snprintf(parent, plen, "/");
    else {
        *slash = 0;
        if (snprintf(parent, plen, "%s", tmp) >= (int)plen)
            return -ENAMETOOLONG;
    }
    return 0;
}

static int partial_path(const char *path, char *buf, size_t len)
{
    char parent[PATH_MAX], base[NAME_MAX + 1];
    int r = split_path(path, parent, sizeof(parent), base, sizeof(base));
    if (r < 0)
        return r;
    return snprintf(buf, len, "%s/.%s" BUNDLE_PARTIAL_SUFFIX, parent, base) >= (int)len
               ? -ENAMETOOLONG
               : 0;
}

int bundle_begin(const char *path, struct bundle *b)
{
    memset(b, 0, sizeof(*b));
    char parent[PATH_MAX], base[NAME_MAX + 1];
    int r = split_path(path, parent, sizeof(parent), base, sizeof(base));
    if (r < 0)
        return r;
    if (snprintf(b->path, sizeof(b->path), "%s/%s", parent, base) >= (int)sizeof(b->path))
        return -ENAMETOOLONG;
    r = partial_path(path, b->tmp_path, sizeof(b->tmp_path));
    if (r < 0)
        return r;
    struct stat st;
    if (lstat(b->path, &st) == 0)
        return -EEXIST;
    if (lstat(b->tmp_path, &st) == 0)
        return -EBUSY;
    r = mkdir_p(parent, 0755);
    if (r < 0)
        return r;
    if (mkdir(b->tmp_path, 0700) < 0)
        return errno == EEXIST ? -EBUSY : negative_errno();
    b->active = true;
    return 0;
}

int bundle_file_path(const struct bundle *b, const char *name, char *buf, size_t len)
{
    if (!b->active)
        return -EINVAL;
    if (!bundle_file_name_valid(name) || !strcmp(name, BUNDLE_MANIFEST))
        return -EINVAL;
    return snprintf(buf, len, "%s/%s", b->tmp_path, name) >= (int)len ? -ENAMETOOLONG : 0;
}

static struct manifest_file *reserve(struct bundle *b, const char *name)
{
    for (size_t i = 0; i < b->n_files; i++)
        if (!strcmp(b->files[i].name, name))
            return &b->files[i]; /* replaced: the later write wins */
    if (b->n_files >= BUNDLE_MAX_FILES)
        return NULL;
    return &b->files[b->n_files++];
}

/* fsync and hash a file now inside the partial directory. */
static int register_file(struct bundle *b, const char *name, const char *path)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return negative_errno();
    struct stat st;
    if (fstat(fd, &st) < 0)
        return negative_errno();
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    if (fsync(fd) < 0)
        return negative_errno();
    char sum[SHA256_HEX_LEN];
    int r = sha256_file_hex(path, sum);
    if (r < 0)
        return r;
    struct manifest_file *f = reserve(b, name);
    if (!f)
        return -E2BIG;
    snprintf(f->name, sizeof(f->name), "%s", name);
    f->size = (uint64_t)st.st_size;
    memcpy(f->sha256, sum, sizeof(f->sha256));
    return 0;
}

static int copy_file(const char *src, const char *dst)
{
    _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return negative_errno();
    _cleanup_close_ int out =
        open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0)
        return negative_errno();
    char buf[1 << 16];
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return negative_errno();
        if (n == 0)
            return 0;
        int r = write_full(out, buf, (size_t)n);
        if (r < 0)
            return r;
    }
}

int bundle_add_file(struct bundle *b, const char *name, const char *src)
{
    char path[PATH_MAX];
    int r = bundle_file_path(b, name, path, sizeof(path));
    if (r < 0)
        return r;
    if (src) {
        r = copy_file(src, path);
        if (r < 0) {
            unlink(path);
            return r;
        }
    }
    return register_file(b, name, path);
}

int bundle_add_buffer(struct bundle *b, const char *name, const void *buf, size_t len)
{
    char path[PATH_MAX];
    int r = bundle_file_path(b, name, path, sizeof(path));
    if (r < 0)
        return r;
    _cleanup_close_ int fd =
        open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return negative_errno();
    r = write_full(fd, buf, len);
    if (r < 0) {
        unlink(path);
        return r;
    }
    return register_file(b, name, path);
}

void bundle_abort(struct bundle *b)
{
    if (!b->active)
        return;
    int r = rm_rf(b->tmp_path);
    if (r < 0)
        log_warn("cannot remove %s: %s", b->tmp_path, strerror(-r));
    b->active = false;
}

static xmlNodePtr add_text(xmlNodePtr parent, const char *name, const char *value)
{
    return xmlNewTextChild(parent, NULL, (const xmlChar *)name, (const xmlChar *)value);
}

static void set_attr(xmlNodePtr n, const char *name, const char *value)
{
    xmlSetProp(n, (const xmlChar *)name, (const xmlChar *)value);
}

static void set_attr_u64(xmlNodePtr n, const char *name, uint64_t value)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRIu64, value);
    set_attr(n, name, buf);
}

int manifest_to_xml(const struct manifest *m, char **out)
{
    xmlDocPtr doc = xmlNewDoc((const xmlChar *)"1.0");
    if (!doc)
        return -ENOMEM;
    xmlNodePtr root = xmlNewDocNode(doc, NULL, (const xmlChar *)"checkpoint", NULL);
    xmlDocSetRootElement(doc, root);
    set_attr(root, "version", "1");

    xmlNodePtr dom = xmlNewChild(root, NULL, (const xmlChar *)"domain", NULL);
    add_text(dom, "name", m->domain_name);
    add_text(dom, "uuid", m->domain_uuid);

    char buf[64];
    snprintf(buf, sizeof(buf), "%" PRIu64, (uint64_t)(m->created_ns / 1000000000ULL));
    xmlNodePtr ct = add_text(root, "creationTime", buf);
    set_attr_u64(ct, "nsec", (uint64_t)(m->created_ns % 1000000000ULL));
    add_text(root, "mode", manifest_mode_name(m->mode));

    xmlNodePtr st = xmlNewChild(root, NULL, (const xmlChar *)"state", NULL);
    if (m->state == MANIFEST_STATE_SNAPSHOT) {
        set_attr(st, "type", "snapshot");
        set_attr(st, "name", m->snapshot_name);
    } else {
        set_attr(st, "type", "save");
        set_attr(st, "file", BUNDLE_VM_STATE);
    }

    xmlNodePtr img = xmlNewChild(root, NULL, (const xmlChar *)"image", NULL);
    set_attr(img, "id", m->image_id);
    set_attr_u64(img, "connections", m->n_connections);

    if (m->n_taps) {
        xmlNodePtr ifs = xmlNewChild(root, NULL, (const xmlChar *)"interfaces", NULL);
        for (size_t i = 0; i < m->n_taps && i < BUNDLE_MAX_TAPS; i++)
            set_attr(xmlNewChild(ifs, NULL, (const xmlChar *)"interface", NULL), "dev", m->taps[i]);
    }

    xmlNodePtr gate = xmlNewChild(root, NULL, (const xmlChar *)"gate", NULL);
    xmlNodePtr d = xmlNewChild(gate, NULL, (const xmlChar *)"dropped", NULL);
    set_attr(d, "direction", "to-guest");
    set_attr_u64(d, "packets", m->counters.to_guest_pkts);
    set_attr_u64(d, "bytes", m->counters.to_guest_bytes);
    d = xmlNewChild(gate, NULL, (const xmlChar *)"dropped", NULL);
    set_attr(d, "direction", "from-guest");
    set_attr_u64(d, "packets", m->counters.from_guest_pkts);
    set_attr_u64(d, "bytes", m->counters.from_guest_bytes);

    xmlNodePtr files = xmlNewChild(root, NULL, (const xmlChar *)"files", NULL);
    for (size_t i = 0; i < m->n_files && i < BUNDLE_MAX_FILES; i++) {
        xmlNodePtr f = xmlNewChild(files, NULL, (const xmlChar *)"file", NULL);
        set_attr(f, "name", m->files[i].name);
        set_attr_u64(f, "size", m->files[i].size);
        set_attr(f, "sha256", m->files[i].sha256);
    }

    xmlNodePtr ver = xmlNewChild(root, NULL, (const xmlChar *)"versions", NULL);
    set_attr(ver, "netckpt", m->netckpt_version);
    set_attr(ver, "libvirt", m->libvirt_version);

    xmlNodePtr tm = xmlNewChild(root, NULL, (const xmlChar *)"timings", NULL);
    for (size_t i = 0; i < m->n_steps && i < BUNDLE_MAX_STEPS; i++) {
        xmlNodePtr s = xmlNewChild(tm, NULL, (const xmlChar *)"step", NULL);
        set_attr(s, "name", m->steps[i].name);
        set_attr_u64(s, "ns", m->steps[i].duration_ns);
    }

    xmlChar *mem = NULL;
    int len = 0;
    xmlDocDumpFormatMemoryEnc(doc, &mem, &len, "UTF-8", 1);
    xmlFreeDoc(doc);
    if (!mem)
        return -ENOMEM;
    *out = strndup((const char *)mem, (size_t)len);
    xmlFree(mem);
    return *out ? 0 : -ENOMEM;
}

int bundle_commit(struct bundle *b, struct manifest *m)
{
    if (!b->active)
        return -EINVAL;
    int r = 0;
    memcpy(m->files, b->files, sizeof(b->files));
    m->n_files = b->n_files;
    if (!m->netckpt_version[0])
        snprintf(m->netckpt_version, sizeof(m->netckpt_version), "%s", NETCKPT_VERSION);
    if (!m->libvirt_version[0]) {
        unsigned long v = 0;
        if (virGetVersion(&v, NULL, NULL) == 0)
            snprintf(m->libvirt_version, sizeof(m->libvirt_version), "%lu.%lu.%lu", v / 1000000,
                     v / 1000 % 1000, v % 1000);
        else
            snprintf(m->libvirt_version, sizeof(m->libvirt_version), "unknown");
    }
    if (!m->created_ns)
        m->created_ns = now_realtime_ns();

    _cleanup_free_ char *xml = NULL;
    char err[1024];
    r = manifest_to_xml(m, &xml);
    /* Never commit what we could not read back: the schema is the contract. */
    if (r == 0) {
        r = manifest_validate(xml, strlen(xml), NULL, err, sizeof(err));
        if (r < 0)
            log_err("refusing to commit bundle %s: %s", b->path, err);
    }
    char mpath[PATH_MAX];
    if (r == 0 &&
        snprintf(mpath, sizeof(mpath), "%s/%s", b->tmp_path, BUNDLE_MANIFEST) >= (int)sizeof(mpath))
        r = -ENAMETOOLONG;
    if (r == 0)
        r = write_file_atomic(mpath, xml, strlen(xml), 0600);
    if (r == 0)
        r = fsync_dir(b->tmp_path);
    /* rename(2) would replace an empty directory that appeared meanwhile: never replace. */
    if (r == 0 && renameat2(AT_FDCWD, b->tmp_path, AT_FDCWD, b->path, RENAME_NOREPLACE) < 0) {
        r = negative_errno();
        if (r == -EINVAL) { /* a filesystem without RENAME_NOREPLACE */
            struct stat st;
            r = lstat(b->path, &st) == 0 ? -EEXIST : 0;
            if (r == 0 && rename(b->tmp_path, b->path) < 0)
                r = negative_errno();
        }
    }
    if (r < 0) {
        bundle_abort(b);
        return r;
    }
    b->active = false;
    char parent[PATH_MAX], base[NAME_MAX + 1];
    if (split_path(b->path, parent, sizeof(parent), base, sizeof(base)) == 0)
        r = fsync_dir(parent);
    return r;
}

/* --- reading ----------------------------------------------------------------------------- */

struct rng_errors {
    char *buf;
    size_t len;
    int n;
};

static void rng_error(void *ctx, xmlErrorPtr e)
{
    struct rng_errors *re = ctx;
    if (!re->buf || !e || !e->message || re->n >= 3)
        return;
    size_t used = strlen(re->buf);
    if (used + 2 >= re->len)
        return;
    snprintf(re->buf + used, re->len - used, "%sline %d: %s", re->n ? "; " : "", e->line,
             e->message);
    used = strlen(re->buf);
    while (used > 0 && re->buf[used - 1] == '\n')
        re->buf[--used] = 0;
    re->n++;
}

int manifest_validate(const char *xml, size_t len, const char *rng_path, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = 0;
    struct rng_errors re = {.buf = err, .len = errlen};
    xmlDocPtr doc;
    int r = nc_xml_read_safe(xml, len, "manifest.xml", &doc, err, errlen);
    if (r < 0)
        return r;
    xmlRelaxNGParserCtxtPtr pc =
        rng_path ? xmlRelaxNGNewParserCtxt(rng_path)
                 : xmlRelaxNGNewMemParserCtxt((const char *)netckpt_checkpoint_rng,
                                              (int)netckpt_checkpoint_rng_len);
    xmlRelaxNGPtr schema = NULL;
    if (pc) {
        xmlRelaxNGSetParserStructuredErrors(pc, rng_error, &re);
        schema = xmlRelaxNGParse(pc);
        xmlRelaxNGFreeParserCtxt(pc);
    }
    if (!schema) {
        size_t used = strlen(err);
        snprintf(err + used, errlen - used, "%scannot load the schema %s", used ? "; " : "",
                 rng_path ? rng_path : "(built in)");
        xmlFreeDoc(doc);
        return -EIO;
    }
    xmlRelaxNGValidCtxtPtr vc = xmlRelaxNGNewValidCtxt(schema);
    if (!vc) {
        r = -ENOMEM;
    } else {
        xmlRelaxNGSetValidStructuredErrors(vc, rng_error, &re);
        int v = xmlRelaxNGValidateDoc(vc, doc);
        if (v != 0) {
            r = -EINVAL;
            if (!err[0])
                snprintf(err, errlen, "does not match schemas/checkpoint.rng");
        }
        xmlRelaxNGFreeValidCtxt(vc);
    }
    xmlRelaxNGFree(schema);
    xmlFreeDoc(doc);
    return r;
}

/* Copy a present attribute into buf; false when absent or too long. */
static bool get_attr(const xmlNode *n, const char *name, char *buf, size_t len)
{
    return nc_xml_attr(n, name, buf, len) > 0;
}

static bool get_text(const xmlNode *n, char *buf, size_t len)
{
    buf[0] = 0;
    xmlChar *v = n ? xmlNodeGetContent(n) : NULL;
    if (!v)
        return false;
    bool ok = strlen((const char *)v) < len;
    if (ok)
        strcpy(buf, (const char *)v);
    xmlFree(v);
    return ok;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!*s || *s == '-' || *s == '+')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static bool attr_u64(const xmlNode *n, const char *name, uint64_t *out)
{
    char buf[32];
    return get_attr(n, name, buf, sizeof(buf)) && parse_u64(buf, out);
}

int manifest_from_xml(const char *xml, size_t len, struct manifest *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof(*m));
    char verr[768];
    int r = manifest_validate(xml, len, NULL, verr, sizeof(verr));
    if (r < 0) {
        set_errbuf(err, errlen, "manifest.xml is invalid: %s", verr);
        return r == -EIO ? r : -EINVAL;
    }
    xmlDocPtr doc;
    r = nc_xml_read_safe(xml, len, "manifest.xml", &doc, err, errlen);
    if (r < 0)
        return r;
    /* The schema has checked structure and value syntax; what remains is the meaning. */
    xmlNode *root = xmlDocGetRootElement(doc);
    xmlNode *dom = nc_xml_child(root, "domain");
    char buf[64];
    uint64_t secs = 0, nsec = 0, u = 0;
    r = -EINVAL;
    if (!get_text(nc_xml_child(dom, "name"), m->domain_name, sizeof(m->domain_name)) ||
        !get_text(nc_xml_child(dom, "uuid"), m->domain_uuid, sizeof(m->domain_uuid))) {
        set_errbuf(err, errlen, "manifest.xml: bad <domain>");
        goto out;
    }
    xmlNode *ct = nc_xml_child(root, "creationTime");
    if (!get_text(ct, buf, sizeof(buf)) || !parse_u64(buf, &secs) || !attr_u64(ct, "nsec", &nsec) ||
        secs > UINT64_MAX / 1000000000ULL - 1) {
        set_errbuf(err, errlen, "manifest.xml: bad <creationTime>");
        goto out;
    }
    m->created_ns = secs * 1000000000ULL + nsec;
    get_text(nc_xml_child(root, "mode"), buf, sizeof(buf));
    m->mode = !strcmp(buf, "continue") ? MANIFEST_MODE_CONTINUE : MANIFEST_MODE_STOP;

    xmlNode *st = nc_xml_child(root, "state");
    get_attr(st, "type", buf, sizeof(buf));
    char state_file[BUNDLE_FILE_NAME_MAX] = "";
    if (!strcmp(buf, "snapshot")) {
        m->state = MANIFEST_STATE_SNAPSHOT;
        get_attr(st, "name", m->snapshot_name, sizeof(m->snapshot_name));
    } else {
        m->state = MANIFEST_STATE_SAVE;
        get_attr(st, "file", state_file, sizeof(state_file));
        if (strcmp(state_file, BUNDLE_VM_STATE) != 0) {
            set_errbuf(err, errlen, "manifest.xml: the VM state file must be %s, not '%s'",
                       BUNDLE_VM_STATE, state_file);
            goto out;
        }
    }

    xmlNode *img = nc_xml_child(root, "image");
    get_attr(img, "id", m->image_id, sizeof(m->image_id));
    if (!attr_u64(img, "connections", &u) || u > UINT32_MAX) {
        set_errbuf(err, errlen, "manifest.xml: bad <image connections>");
        goto out;
    }
    m->n_connections = (uint32_t)u;

    for (xmlNode *c = nc_xml_child(nc_xml_child(root, "interfaces"), "interface"); c; c = c->next) {
        if (!nc_xml_is_elem(c, "interface"))
            continue;
        if (m->n_taps >= BUNDLE_MAX_TAPS) {
            set_errbuf(err, errlen, "manifest.xml: more than %d interfaces", BUNDLE_MAX_TAPS);
            goto out;
        }
        get_attr(c, "dev", m->taps[m->n_taps], sizeof(m->taps[0]));
        m->n_taps++;
    }

    for (xmlNode *c = nc_xml_child(root, "gate") ? nc_xml_child(root, "gate")->children : NULL; c;
         c = c->next) {
        if (!nc_xml_is_elem(c, "dropped"))
            continue;
        get_attr(c, "direction", buf, sizeof(buf));
        bool to = !strcmp(buf, "to-guest");
        if (!attr_u64(c, "packets",
                      to ? &m->counters.to_guest_pkts : &m->counters.from_guest_pkts) ||
            !attr_u64(c, "bytes",
                      to ? &m->counters.to_guest_bytes : &m->counters.from_guest_bytes)) {
            set_errbuf(err, errlen, "manifest.xml: bad <gate> counter");
            goto out;
        }
    }

    for (xmlNode *c = nc_xml_child(nc_xml_child(root, "files"), "file"); c; c = c->next) {
        if (!nc_xml_is_elem(c, "file"))
            continue;
        if (m->n_files >= BUNDLE_MAX_FILES) {
            set_errbuf(err, errlen, "manifest.xml: more than %d files", BUNDLE_MAX_FILES);
            goto out;
        }
        struct manifest_file *f = &m->files[m->n_files];
        if (!get_attr(c, "name", f->name, sizeof(f->name)) || !bundle_file_name_valid(f->name) ||
            !strcmp(f->name, BUNDLE_MANIFEST) || !attr_u64(c, "size", &f->size) ||
            !get_attr(c, "sha256", f->sha256, sizeof(f->sha256)) || strlen(f->sha256) != 64) {
            set_errbuf(err, errlen, "manifest.xml: bad <file> entry '%s'", f->name);
            goto out;
        }
        for (size_t i = 0; i < m->n_files; i++)
            if (!strcmp(m->files[i].name, f->name)) {
                set_errbuf(err, errlen, "manifest.xml: file '%s' is listed twice", f->name);
                goto out;
            }
        m->n_files++;
    }

    xmlNode *ver = nc_xml_child(root, "versions");
    get_attr(ver, "netckpt", m->netckpt_version, sizeof(m->netckpt_version));
    get_attr(ver, "libvirt", m->libvirt_version, sizeof(m->libvirt_version));

    for (xmlNode *c = nc_xml_child(nc_xml_child(root, "timings"), "step"); c; c = c->next) {
        if (!nc_xml_is_elem(c, "step") || m->n_steps >= BUNDLE_MAX_STEPS)
            continue;
        struct manifest_step *s = &m->steps[m->n_steps];
        if (!get_attr(c, "name", s->name, sizeof(s->name)) || !attr_u64(c, "ns", &s->duration_ns)) {
            set_errbuf(err, errlen, "manifest.xml: bad <step>");
            goto out;
        }
        m->n_steps++;
    }
    r = 0;
out:
    xmlFreeDoc(doc);
    return r;
}

static const struct manifest_file *find_file(const struct manifest *m, const char *name)
{
    for (size_t i = 0; i < m->n_files; i++)
        if (!strcmp(m->files[i].name, name))
            return &m->files[i];
    return NULL;
}

/* The socket image is the guest's output: parse it with limits, and check it is the image
 * this manifest names (the full field-by-field check is socket_image_parse's, at restore). */
static int check_socket_image(int dirfd, const struct manifest *m, char *err, size_t errlen)
{
    _cleanup_close_ int fd = openat(dirfd, BUNDLE_SOCKET_IMAGE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return negative_errno();
    json_tokener *tok = json_tokener_new_ex(SOCKET_IMAGE_JSON_DEPTH);
    if (!tok)
        return -ENOMEM;
    char buf[1 << 16];
    json_object *j = NULL;
    enum json_tokener_error je = json_tokener_continue;
    int r = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = negative_errno();
            break;
        }
        if (n == 0)
            break;
        if (j) { /* trailing bytes after a complete value */
            for (ssize_t i = 0; i < n; i++)
                if (buf[i] != ' ' && buf[i] != '\n' && buf[i] != '\t' && buf[i] != '\r')
                    je = json_tokener_error_parse_unexpected;
            if (je != json_tokener_success)
                break;
            continue;
        }
        j = json_tokener_parse_ex(tok, buf, (int)n);
        je = json_tokener_get_error(tok);
        if (je != json_tokener_continue && je != json_tokener_success)
            break;
        if (j) {
            size_t off = json_tokener_get_parse_end(tok);
            for (size_t i = off; i < (size_t)n; i++)
                if (buf[i] != ' ' && buf[i] != '\n' && buf[i] != '\t' && buf[i] != '\r')
                    je = json_tokener_error_parse_unexpected;
            if (je != json_tokener_success)
                break;
        }
    }
    json_tokener_free(tok);
    if (r == 0 && (!j || je != json_tokener_success)) {
        set_errbuf(err, errlen, "%s is not valid JSON (%s)", BUNDLE_SOCKET_IMAGE,
                   je == json_tokener_success ? "truncated" : json_tokener_error_desc(je));
        r = -EINVAL;
    } else if (r == 0 && !json_object_is_type(j, json_type_object)) {
        set_errbuf(err, errlen, "%s is not a JSON object", BUNDLE_SOCKET_IMAGE);
        r = -EINVAL;
    } else if (r == 0) {
        json_object *id = NULL;
        if (!json_object_object_get_ex(j, "image_id", &id) ||
            !json_object_is_type(id, json_type_string) ||
            strcmp(json_object_get_string(id), m->image_id) != 0) {
            set_errbuf(err, errlen, "%s has image_id '%.64s', the manifest says '%s'",
                       BUNDLE_SOCKET_IMAGE, id ? json_object_get_string(id) : "(none)",
                       m->image_id);
            r = -EINVAL;
        }
    }
    json_object_put(j);
    return r;
}

int bundle_open_verify(const char *path, struct manifest *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof(*m));
    set_errbuf(err, errlen, "%s", "");
    char parent[PATH_MAX], base[NAME_MAX + 1], partial[PATH_MAX];
    int r = split_path(path, parent, sizeof(parent), base, sizeof(base));
    if (r < 0) {
        set_errbuf(err, errlen, "%s: not a bundle path", path);
        return r;
    }
    size_t bl = strlen(base), sl = strlen(BUNDLE_PARTIAL_SUFFIX);
    if (bl > sl && !strcmp(base + bl - sl, BUNDLE_PARTIAL_SUFFIX)) {
        set_errbuf(err, errlen,
                   "%s is an incomplete bundle (a checkpoint was interrupted before its commit); "
                   "it cannot be restored, remove it",
                   path);
        return -ENOENT;
    }
    struct stat st;
    if (stat(path, &st) < 0) {
        r = negative_errno();
        if (r == -ENOENT && partial_path(path, partial, sizeof(partial)) == 0 &&
            lstat(partial, &st) == 0)
            set_errbuf(err, errlen,
                       "%s does not exist, only the incomplete %s (a checkpoint was interrupted "
                       "before its commit)",
                       path, partial);
        else
            set_errbuf(err, errlen, "%s: %s", path, strerror(-r));
        return r;
    }
    if (!S_ISDIR(st.st_mode)) {
        set_errbuf(err, errlen, "%s is not a bundle directory", path);
        return -ENOTDIR;
    }
    _cleanup_close_ int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        r = negative_errno();
        set_errbuf(err, errlen, "%s: %s", path, strerror(-r));
        return r;
    }

    /* manifest.xml is written last: without it the bundle is incomplete. */
    _cleanup_close_ int mfd = openat(dirfd, BUNDLE_MANIFEST, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (mfd < 0) {
        r = negative_errno();
        set_errbuf(err, errlen, "%s: no readable %s (%s): incomplete or not a bundle", path,
                   BUNDLE_MANIFEST, strerror(-r));
        return r == -ENOENT ? -ENOENT : r;
    }
    if (fstat(mfd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > BUNDLE_MANIFEST_MAX) {
        set_errbuf(err, errlen, "%s/%s: not a regular file of at most %u bytes", path,
                   BUNDLE_MANIFEST, BUNDLE_MANIFEST_MAX);
        return -EFBIG;
    }
    _cleanup_free_ char *xml = malloc((size_t)st.st_size + 1);
    if (!xml)
        return -ENOMEM;
    r = read_full(mfd, xml, (size_t)st.st_size);
    if (r < 0) {
        set_errbuf(err, errlen, "%s/%s: %s", path, BUNDLE_MANIFEST, strerror(-r));
        return r;
    }
    xml[st.st_size] = 0;
    char merr[900];
    r = manifest_from_xml(xml, (size_t)st.st_size, m, merr, sizeof(merr));
    if (r < 0) {
        set_errbuf(err, errlen, "%s: %s", path, merr);
        return r;
    }

    /* Required files, then nothing unlisted, then each file's size and checksum. */
    const char *required[] = {BUNDLE_DOMAIN_XML, BUNDLE_SOCKET_IMAGE,
                              m->state == MANIFEST_STATE_SAVE ? BUNDLE_VM_STATE : NULL};
    for (size_t i = 0; i < ELEMENTSOF(required); i++)
        if (required[i] && !find_file(m, required[i])) {
            set_errbuf(err, errlen, "%s: the manifest does not list %s", path, required[i]);
            return -EINVAL;
        }
    int dfd = dup(dirfd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        r = negative_errno();
        if (dfd >= 0)
            close(dfd);
        set_errbuf(err, errlen, "%s: %s", path, strerror(-r));
        return r;
    }
    struct dirent *de;
    r = 0;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
            !strcmp(de->d_name, BUNDLE_MANIFEST) || find_file(m, de->d_name))
            continue;
        set_errbuf(err, errlen,
                   "%s: unexpected file '%s' (not in the manifest: tampered with, or "
                   "left over from an interrupted write)",
                   path, de->d_name);
        r = -EINVAL;
        break;
    }
    closedir(d);
    if (r < 0)
        return r;

    for (size_t i = 0; i < m->n_files; i++) {
        const struct manifest_file *f = &m->files[i];
        _cleanup_close_ int fd = openat(dirfd, f->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            r = negative_errno();
            set_errbuf(err, errlen, "%s: %s is missing or unreadable (%s)", path, f->name,
                       strerror(-r));
            return r == -ELOOP ? -EINVAL : r;
        }
        if (fstat(fd, &st) < 0)
            return negative_errno();
        if (!S_ISREG(st.st_mode)) {
            set_errbuf(err, errlen, "%s: %s is not a regular file", path, f->name);
            return -EINVAL;
        }
        if (!strcmp(f->name, BUNDLE_SOCKET_IMAGE) &&
            ((uint64_t)st.st_size > BUNDLE_SOCKET_IMAGE_MAX || f->size > BUNDLE_SOCKET_IMAGE_MAX)) {
            set_errbuf(err, errlen, "%s: %s is %" PRIu64 " bytes, over the %u byte limit", path,
                       f->name, (uint64_t)st.st_size, BUNDLE_SOCKET_IMAGE_MAX);
            return -EFBIG;
        }
        if ((uint64_t)st.st_size != f->size) {
            set_errbuf(err, errlen,
                       "%s: %s is %" PRIu64 " bytes, the manifest says %" PRIu64
                       " (truncated or tampered with)",
                       path, f->name, (uint64_t)st.st_size, f->size);
            return -EINVAL;
        }
        char sum[SHA256_HEX_LEN], fpath[PATH_MAX];
        snprintf(fpath, sizeof(fpath), "/proc/self/fd/%d", fd);
        r = sha256_file_hex(fpath, sum);
        if (r < 0) {
            set_errbuf(err, errlen, "%s: reading %s: %s", path, f->name, strerror(-r));
            return r;
        }
        if (strcmp(sum, f->sha256) != 0) {
            set_errbuf(err, errlen,
                       "%s: %s has sha256 %s, the manifest says %s (corrupt or "
                       "tampered with)",
                       path, f->name, sum, f->sha256);
            return -EINVAL;
        }
    }
    r = check_socket_image(dirfd, m, err, errlen);
    if (r < 0 && err && !err[0])
        set_errbuf(err, errlen, "%s: %s: %s", path, BUNDLE_SOCKET_IMAGE, strerror(-r));
    return r;
}
