/* host/policy.c: see policy.h. */
#include "host/policy.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/relaxng.h>
#include <libxml/tree.h>

#include "common/log.h"
#include "common/util.h"
#include "host/replay.h"

/* schemas/policy.rng, compiled in by host/daemon.cmake. */
extern const unsigned char netckpt_policy_rng[];
extern const size_t netckpt_policy_rng_len;

static void seterr(struct policy_error *e, int line, const char *fmt, ...) _printf_(3, 4);
static void seterr(struct policy_error *e, int line, const char *fmt, ...)
{
    if (!e)
        return;
    e->line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->reason, sizeof(e->reason), fmt, ap);
    va_end(ap);
    /* one line: libxml2 messages end in "\n" */
    for (char *p = e->reason; *p; p++)
        if (*p == '\n')
            *p = *(p + 1) ? ' ' : 0;
}

/* The first error libxml2 reports, with its line. */
struct xml_err {
    bool had_dtd;
    bool set;
    int line;
    char msg[400];
};

static void xml_error(void *ud, const xmlError *err)
{
    struct xml_err *x = ud;
    if (!err)
        return;
    if (x->set) {
        /* Some RelaxNG errors carry no line; the ones that follow them do. */
        if (!x->line && err->line > 0)
            x->line = err->line;
        return;
    }
    x->set = true;
    x->line = err->line;
    snprintf(x->msg, sizeof(x->msg), "%s", err->message ? err->message : "error");
    size_t l = strlen(x->msg);
    while (l && (x->msg[l - 1] == '\n' || x->msg[l - 1] == ' '))
        x->msg[--l] = 0;
}

static void xml_serror(void *ud, xmlErrorPtr err)
{
    xml_error(ud, err);
}

/* Parser errors come with the parser context as their user data. */
static void parse_serror(void *ud, xmlErrorPtr err)
{
    xmlParserCtxtPtr c = ud;
    xml_error(c->_private, err);
}

static void refuse_dtd(void *ctx, const xmlChar *name, const xmlChar *ext, const xmlChar *sys)
{
    xmlParserCtxtPtr c = ctx;
    ((struct xml_err *)c->_private)->had_dtd = true;
    xmlStopParser(c);
}

static int read_doc(const char *xml, size_t len, const char *file, xmlDocPtr *out,
                    struct policy_error *e)
{
    *out = NULL;
    struct xml_err x = {0};
    xmlParserCtxtPtr c = xmlNewParserCtxt();
    if (!c)
        return -ENOMEM;
    c->_private = &x;
    c->sax->internalSubset = refuse_dtd;
    c->sax->serror = parse_serror;
    xmlDocPtr doc =
        xmlCtxtReadMemory(c, xml, (int)len, file, NULL, XML_PARSE_NONET | XML_PARSE_NOCDATA);
    int line = c->input ? c->input->line : 0;
    const xmlError *le = xmlCtxtGetLastError(c);
    if (le && le->level >= XML_ERR_ERROR && !x.set)
        xml_error(&x, le);
    xmlFreeParserCtxt(c);
    if (x.had_dtd) {
        xmlFreeDoc(doc);
        seterr(e, line, "refused: a DTD (<!DOCTYPE>); entities are not accepted in policy files");
        return -EINVAL;
    }
    if (!doc || x.set) {
        xmlFreeDoc(doc);
        seterr(e, x.set ? x.line : line, "not well-formed XML: %s", x.set ? x.msg : "parse error");
        return -EINVAL;
    }
    *out = doc;
    return 0;
}

static int validate(xmlDocPtr doc, const char *rng_path, struct policy_error *e)
{
    struct xml_err x = {0};
    xmlRelaxNGParserCtxtPtr pc = rng_path
                                     ? xmlRelaxNGNewParserCtxt(rng_path)
                                     : xmlRelaxNGNewMemParserCtxt((const char *)netckpt_policy_rng,
                                                                  (int)netckpt_policy_rng_len);
    if (!pc)
        return -ENOMEM;
    xmlRelaxNGSetParserStructuredErrors(pc, xml_serror, &x);
    xmlRelaxNGPtr schema = xmlRelaxNGParse(pc);
    xmlRelaxNGFreeParserCtxt(pc);
    if (!schema) {
        seterr(e, 0, "the policy schema cannot be loaded: %s", x.set ? x.msg : "?");
        return -EINVAL;
    }
    xmlRelaxNGValidCtxtPtr vc = xmlRelaxNGNewValidCtxt(schema);
    int r = -ENOMEM;
    if (vc) {
        memset(&x, 0, sizeof(x));
        xmlRelaxNGSetValidStructuredErrors(vc, xml_serror, &x);
        int v = xmlRelaxNGValidateDoc(vc, doc);
        r = 0;
        if (v != 0) {
            seterr(e, x.set ? x.line : 0, "not valid against policy.rng: %s",
                   x.set ? x.msg : "invalid");
            r = -EINVAL;
        }
        xmlRelaxNGFreeValidCtxt(vc);
    }
    xmlRelaxNGFree(schema);
    return r;
}

static bool is_elem(const xmlNode *n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name);
}

static xmlNode *child(const xmlNode *n, const char *name)
{
    for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
        if (is_elem(c, name))
            return c;
    return NULL;
}

/* Trimmed text content into buf; false when it does not fit. */
static bool text(const xmlNode *n, char *buf, size_t len)
{
    buf[0] = 0;
    xmlChar *v = n ? xmlNodeGetContent(n) : NULL;
    if (!v)
        return true;
    const char *s = (const char *)v;
    while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
        s++;
    size_t l = strlen(s);
    while (l && (s[l - 1] == ' ' || s[l - 1] == '\n' || s[l - 1] == '\t' || s[l - 1] == '\r'))
        l--;
    bool ok = l < len;
    if (ok) {
        memcpy(buf, s, l);
        buf[l] = 0;
    }
    xmlFree(v);
    return ok;
}

static bool prop(const xmlNode *n, const char *name, char *buf, size_t len)
{
    buf[0] = 0;
    xmlChar *v = n ? xmlGetProp(n, (const xmlChar *)name) : NULL;
    if (!v)
        return false;
    bool ok = strlen((const char *)v) < len;
    if (ok)
        strcpy(buf, (const char *)v);
    xmlFree(v);
    return ok;
}

static int line_of(const xmlNode *n)
{
    long l = n ? xmlGetLineNo(n) : 0;
    return l > 0 && l < INT_MAX ? (int)l : 0;
}

static uint64_t unit_seconds(const char *u)
{
    if (!*u || !strcmp(u, "s"))
        return 1;
    if (!strcmp(u, "min"))
        return 60;
    if (!strcmp(u, "h"))
        return 3600;
    if (!strcmp(u, "d"))
        return 86400;
    return 0;
}

/* A number with an optional unit attribute, in seconds. */
static int seconds_of(const xmlNode *n, uint64_t max_s, uint64_t *out, struct policy_error *e)
{
    char v[32], u[8];
    if (!text(n, v, sizeof(v)))
        return seterr(e, line_of(n), "<%s>: value too long", n->name), -EINVAL;
    prop(n, "unit", u, sizeof(u));
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    uint64_t mul = unit_seconds(u);
    if (errno || *end || !v[0] || !mul || x == 0 || x > max_s / mul) {
        seterr(e, line_of(n), "<%s>%s</%s>: must be 1..%llu seconds", n->name, v, n->name,
               (unsigned long long)max_s);
        return -EINVAL;
    }
    *out = x * mul;
    return 0;
}

static int uint_prop(const xmlNode *n, const char *name, uint32_t dflt, uint32_t *out)
{
    char v[32];
    if (!prop(n, name, v, sizeof(v))) {
        *out = dflt;
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long x = strtoul(v, &end, 10);
    if (errno || *end || !v[0] || x > UINT32_MAX)
        return -EINVAL;
    *out = (uint32_t)x;
    return 0;
}

/* fnmatch(3) accepts anything; refuse globs that cannot mean what the operator wrote. */
static bool glob_valid(const char *g)
{
    for (const char *p = g; *p; p++) {
        if (*p == '\\') {
            if (!*++p)
                return false;
        } else if (*p == '[') {
            const char *q = p + 1;
            if (*q == '!' || *q == '^')
                q++;
            if (*q == ']')
                q++;
            while (*q && *q != ']')
                q++;
            if (!*q)
                return false;
            p = q;
        } else if ((unsigned char)*p < 0x20 || *p == '/') {
            return false;
        }
    }
    return *g != 0;
}

bool policy_domain_dirname_ok(const char *d)
{
    if (!d || !*d || d[0] == '.' || strlen(d) > 255)
        return false;
    for (const char *p = d; *p; p++)
        if (*p == '/' || (unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

static int interpret(xmlDocPtr doc, struct policy *p, struct policy_error *e)
{
    xmlNode *root = xmlDocGetRootElement(doc);
    char v[64];
    p->enabled = !prop(root, "enabled", v, sizeof(v)) || strcmp(v, "no") != 0;
    xmlNode *n = child(root, "name");
    if (!text(n, p->name, sizeof(p->name)) || !p->name[0])
        return seterr(e, line_of(n), "<name>: 1..63 characters of [A-Za-z0-9_.-]"), -EINVAL;

    xmlNode *doms = child(root, "domains");
    for (xmlNode *c = doms ? doms->children : NULL; c; c = c->next) {
        if (!is_elem(c, "domain"))
            continue;
        if (p->n_domains == POLICY_MAX_DOMAINS)
            return seterr(e, line_of(c), "more than %d <domain> entries", POLICY_MAX_DOMAINS),
                   -EINVAL;
        char *d = p->domains[p->n_domains];
        if (!text(c, d, sizeof(p->domains[0])) || !glob_valid(d))
            return seterr(e, line_of(c),
                          "<domain>%s</domain>: not a domain name or a valid glob (unclosed "
                          "'[', trailing '\\', '/' or a control character)",
                          d),
                   -EINVAL;
        p->n_domains++;
    }

    xmlNode *sch = child(root, "schedule");
    xmlNode *iv = child(sch, "interval"), *cal = child(sch, "calendar");
    if (iv) {
        p->schedule.kind = SCHED_INTERVAL;
        if (seconds_of(iv, 366ull * 86400, &p->schedule.interval_s, e) < 0)
            return -EINVAL;
    } else if (cal) {
        p->schedule.kind = SCHED_DAILY;
        p->schedule.utc = prop(cal, "timezone", v, sizeof(v)) && !strcmp(v, "utc");
        for (xmlNode *c = cal->children; c; c = c->next) {
            if (!is_elem(c, "time"))
                continue;
            if (p->schedule.n_times == SCHED_MAX_TIMES)
                return seterr(e, line_of(c), "more than %d <time> entries", SCHED_MAX_TIMES),
                       -EINVAL;
            uint16_t t;
            if (!text(c, v, sizeof(v)) || sched_parse_hhmm(v, &t) < 0)
                return seterr(e, line_of(c), "<time>%s</time>: not HH:MM", v), -EINVAL;
            for (size_t i = 0; i < p->schedule.n_times; i++)
                if (p->schedule.times_min[i] == t)
                    return seterr(e, line_of(c), "<time>%s</time> is listed twice", v), -EINVAL;
            p->schedule.times_min[p->schedule.n_times++] = t;
        }
    } else {
        return seterr(e, line_of(sch), "<schedule> needs <interval> or <calendar>"), -EINVAL;
    }

    xmlNode *mode = child(root, "mode");
    p->continue_running = true;
    if (mode) {
        text(mode, v, sizeof(v));
        p->continue_running = strcmp(v, "stop") != 0;
        p->migrate = !strcmp(v, "migrate");
    }
    xmlNode *mig = child(root, "migrate");
    if (p->migrate && !mig)
        return seterr(e, line_of(mode),
                      "<mode>migrate</mode> needs <migrate uri=\"DESTINATION\"/>"),
               -EINVAL;
    if (mig && !p->migrate)
        return seterr(e, line_of(mig), "<migrate> needs <mode>migrate</mode>"), -EINVAL;
    if (mig) {
        /* the schema bounds these; an attribute left out stays "" */
        if (!prop(mig, "uri", p->migrate_dest_uri, sizeof(p->migrate_dest_uri)))
            return seterr(e, line_of(mig), "<migrate uri=...>: missing or too long"), -EINVAL;
        prop(mig, "streamUri", p->migrate_stream_uri, sizeof(p->migrate_stream_uri));
        prop(mig, "listenAddress", p->migrate_listen_address, sizeof(p->migrate_listen_address));
        prop(mig, "destNetns", p->migrate_dest_netns, sizeof(p->migrate_dest_netns));
        prop(mig, "destXml", p->migrate_dest_xml, sizeof(p->migrate_dest_xml));
        prop(mig, "switchoverHook", p->migrate_hook, sizeof(p->migrate_hook));
    }
    n = child(root, "bundles");
    if (!n && p->migrate) {
        /* a migration without a checkpoint before it: nothing goes to disk */
    } else if (!n) {
        return seterr(e, line_of(root),
                      "<bundles dir=...> is needed: where the checkpoints go (only a "
                      "<mode>migrate</mode> policy goes without)"),
               -EINVAL;
    } else if (!prop(n, "dir", p->bundle_dir, sizeof(p->bundle_dir)) || p->bundle_dir[0] != '/') {
        return seterr(e, line_of(n), "<bundles dir=...>: an absolute path is needed"), -EINVAL;
    }
    if (n && (strstr(p->bundle_dir, "/../") ||
              !strcmp(p->bundle_dir + strlen(p->bundle_dir) - 3, "/..")))
        return seterr(e, line_of(n), "<bundles dir=...>: no '..' components"), -EINVAL;

    xmlNode *ret = child(root, "retention");
    if ((n = child(ret, "keep"))) {
        uint64_t k;
        char kv[32];
        text(n, kv, sizeof(kv));
        char *end;
        k = strtoull(kv, &end, 10);
        if (*end || !kv[0] || k == 0 || k > 100000)
            return seterr(e, line_of(n), "<keep>%s</keep>: must be 1..100000", kv), -EINVAL;
        p->keep = (uint32_t)k;
    }
    if ((n = child(ret, "maxAge")) && seconds_of(n, 3660ull * 86400, &p->max_age_s, e) < 0)
        return -EINVAL;

    xmlNode *cond = child(root, "conditions");
    if ((n = child(cond, "agent"))) {
        p->agent_check = true;
        if (uint_prop(n, "timeout", 5, &p->agent_timeout_s) < 0 || !p->agent_timeout_s)
            return seterr(e, line_of(n), "<agent timeout=...>: 1..86400 seconds"), -EINVAL;
    }
    if ((n = child(cond, "retransmitting"))) {
        p->retrans_check = true;
        if (uint_prop(n, "max", 0, &p->retrans_max) < 0 ||
            uint_prop(n, "retry", 60, &p->retrans_retry_s) < 0 || !p->retrans_retry_s ||
            uint_prop(n, "giveUp", 900, &p->retrans_give_up_s) < 0 || !p->retrans_give_up_s)
            return seterr(e, line_of(n), "<retransmitting>: bad max, retry or giveUp"), -EINVAL;
    }
    if ((n = child(root, "agentChannel")) && !text(n, p->agent_channel, sizeof(p->agent_channel)))
        return seterr(e, line_of(n), "<agentChannel>: too long"), -EINVAL;
    p->freeze_timeout_s = POLICY_DEFAULT_FREEZE_S;
    if ((n = child(root, "freezeTimeout"))) {
        uint64_t s;
        if (seconds_of(n, 86400, &s, e) < 0)
            return -EINVAL;
        p->freeze_timeout_s = (uint32_t)s;
    }
    if ((n = child(root, "replayLimit"))) {
        char u[8] = "B";
        prop(n, "unit", u, sizeof(u));
        text(n, v, sizeof(v));
        char *end;
        errno = 0;
        unsigned long long x = strtoull(v, &end, 10);
        unsigned shift = !strcmp(u, "KiB")   ? 10
                         : !strcmp(u, "MiB") ? 20
                         : !strcmp(u, "GiB") ? 30
                                             : 0;
        if (errno || *end || !v[0] || x > (REPLAY_MAX_LIMIT >> shift) ||
            (x << shift) < POLICY_REPLAY_MIN_LIMIT)
            return seterr(e, line_of(n), "<replayLimit>%s</replayLimit>: must be 64 KiB..256 MiB",
                          v),
                   -EINVAL;
        p->replay_limit = (uint32_t)(x << shift);
    }
    return 0;
}

int policy_parse(const char *xml, size_t len, const char *file, const char *rng_path,
                 struct policy *out, struct policy_error *e)
{
    memset(out, 0, sizeof(*out));
    if (e) {
        memset(e, 0, sizeof(*e));
        snprintf(e->file, sizeof(e->file), "%s", file ? file : "policy");
    }
    snprintf(out->file, sizeof(out->file), "%s", file ? file : "");
    if (len > POLICY_MAX_FILE) {
        seterr(e, 0, "%zu bytes, over the %u byte limit", len, POLICY_MAX_FILE);
        return -EFBIG;
    }
    xmlDocPtr doc;
    int r = read_doc(xml, len, file ? file : "policy", &doc, e);
    if (r < 0)
        return r;
    r = validate(doc, rng_path, e);
    if (r == 0)
        r = interpret(doc, out, e);
    xmlFreeDoc(doc);
    return r;
}

int policy_load_file(const char *path, const char *rng_path, struct policy *out,
                     struct policy_error *e)
{
    char *buf = NULL;
    size_t len = 0;
    int r = read_file(path, POLICY_MAX_FILE, &buf, &len);
    if (r < 0) {
        memset(out, 0, sizeof(*out));
        if (e) {
            memset(e, 0, sizeof(*e));
            snprintf(e->file, sizeof(e->file), "%s", path);
        }
        if (r == -EFBIG)
            seterr(e, 0, "over the %u byte limit", POLICY_MAX_FILE);
        else
            seterr(e, 0, "cannot read: %s", strerror(-r));
        return r;
    }
    r = policy_parse(buf, len, path, rng_path, out, e);
    free(buf);
    return r;
}

static int cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_policy_file(const char *n)
{
    size_t l = strlen(n);
    return n[0] != '.' && l > 4 && !strcmp(n + l - 4, ".xml");
}

int policy_load_dir(const char *dir, const char *rng_path, struct policy_set *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->dir, sizeof(out->dir), "%s", dir);
    struct dirent **names = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : negative_errno();
    char **files = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    int r = 0;
    while ((de = readdir(d))) {
        if (!is_policy_file(de->d_name))
            continue;
        if (n == POLICY_MAX_FILES) {
            log_warn("policy dir %s: more than %d files; the rest are ignored", dir,
                     POLICY_MAX_FILES);
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nf = realloc(files, cap * sizeof(*nf));
            if (!nf) {
                r = -ENOMEM;
                break;
            }
            files = nf;
        }
        if (!(files[n] = strdup(de->d_name))) {
            r = -ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    (void)names;
    if (r == 0 && n) {
        qsort(files, n, sizeof(*files), cmpstr);
        out->p = calloc(n, sizeof(*out->p));
        out->errors = calloc(n, sizeof(*out->errors));
        if (!out->p || !out->errors)
            r = -ENOMEM;
    }
    for (size_t i = 0; r == 0 && i < n; i++) {
        char path[4096];
        if (snprintf(path, sizeof(path), "%s/%s", dir, files[i]) >= (int)sizeof(path))
            continue;
        struct policy *p = &out->p[out->n];
        struct policy_error *e = &out->errors[out->n_errors];
        if (policy_load_file(path, rng_path, p, e) < 0) {
            out->n_errors++;
            continue;
        }
        const struct policy *dup = policy_find(out, p->name);
        if (dup) {
            memset(e, 0, sizeof(*e));
            snprintf(e->file, sizeof(e->file), "%.4000s", path);
            seterr(e, 0, "policy name '%s' is already used by %s", p->name, dup->file);
            out->n_errors++;
            continue;
        }
        out->n++;
    }
    for (size_t i = 0; i < n; i++)
        free(files[i]);
    free(files);
    if (r < 0)
        policy_set_free(out);
    return r;
}

void policy_set_free(struct policy_set *s)
{
    free(s->p);
    free(s->errors);
    s->p = NULL;
    s->errors = NULL;
    s->n = s->n_errors = 0;
}

const struct policy *policy_find(const struct policy_set *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->p[i].name, name))
            return &s->p[i];
    return NULL;
}

bool policy_matches(const struct policy *p, const char *domain)
{
    for (size_t i = 0; i < p->n_domains; i++)
        if (fnmatch(p->domains[i], domain, 0) == 0)
            return true;
    return false;
}

enum policy_retrans_verdict policy_retrans_eval(const struct policy *p, json_object *status,
                                                uint64_t deferred_since_ns, uint64_t now_ns,
                                                int64_t *n, char *msg, size_t msglen)
{
    json_object *v = NULL, *c = NULL;
    *n = -1;
    if (!status || !json_object_is_type(status, json_type_object) ||
        !json_object_object_get_ex(status, "retransmitting", &v)) {
        snprintf(msg, msglen, "the agent does not report retransmitting connections");
        return POLICY_RETRANS_UNAVAILABLE;
    }
    /* json-c reads "1.5" as a double and "7" as an int; only a plain integer is taken */
    if (!json_object_is_type(v, json_type_int)) {
        snprintf(msg, msglen, "the agent's retransmitting count is not an integer");
        return POLICY_RETRANS_UNAVAILABLE;
    }
    errno = 0;
    int64_t x = json_object_get_int64(v);
    if (errno || x < 0 || x > POLICY_RETRANS_REPORT_MAX) {
        snprintf(msg, msglen, "the agent's retransmitting count is out of range (0..%d)",
                 POLICY_RETRANS_REPORT_MAX);
        return POLICY_RETRANS_UNAVAILABLE;
    }
    if (json_object_object_get_ex(status, "connections", &c)) {
        int64_t conns = json_object_is_type(c, json_type_int) ? json_object_get_int64(c) : -1;
        if (conns < 0 || conns > POLICY_RETRANS_REPORT_MAX || x > conns) {
            snprintf(msg, msglen,
                     "the agent's counts do not agree (%" PRId64 " retransmitting, connections %s)",
                     x, json_object_get_string(c));
            return POLICY_RETRANS_UNAVAILABLE;
        }
    }
    *n = x;
    if ((uint64_t)x <= p->retrans_max) {
        snprintf(msg, msglen, "%" PRId64 " connections retransmitting (at most %u)", x,
                 p->retrans_max);
        return POLICY_RETRANS_GO;
    }
    uint64_t since = deferred_since_ns ? deferred_since_ns : now_ns;
    uint64_t waited_s = now_ns > since ? (now_ns - since) / UINT64_C(1000000000) : 0;
    if (waited_s >= p->retrans_give_up_s) {
        snprintf(msg, msglen,
                 "%" PRId64 " connections retransmitting (more than %u) for %" PRIu64 " s; gave up",
                 x, p->retrans_max, waited_s);
        return POLICY_RETRANS_GIVE_UP;
    }
    snprintf(msg, msglen, "%" PRId64 " connections retransmitting (more than %u); retry in %u s", x,
             p->retrans_max, p->retrans_retry_s);
    return POLICY_RETRANS_DEFER;
}
