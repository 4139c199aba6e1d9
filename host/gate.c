/* host/gate.c: see gate.h. All nft input is built as libnftables JSON with json-c, so names are
 * data, never syntax; they are still validated so nothing odd is ever stored in the kernel. */
#include "host/gate.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/util.h"

#include <errno.h>
#include <json-c/json.h>
#include <net/if.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <string.h>

/* Before any other netdev chain a user might have (most use 0), so our counters see every
 * frame; a drop in one base chain is final whatever the others say. */
#define GATE_PRIO -500
/* Chain and counter names: prefix + tap name (a valid nft identifier, at most 24 chars). */
#define TO_GUEST   "to_guest_"
#define FROM_GUEST "from_guest_"

static inline void json_putp(json_object **o)
{
    if (*o)
        json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_putp)

static inline void nft_ctx_freep(struct nft_ctx **c)
{
    if (*c)
        nft_ctx_free(*c);
}

bool gate_ifname_valid(const char *ifname)
{
    if (!ifname)
        return false;
    size_t n = strnlen(ifname, IFNAMSIZ);
    if (n == 0 || n >= IFNAMSIZ)
        return false;
    if (strcmp(ifname, ".") == 0 || strcmp(ifname, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)ifname[i];
        /* isalnum() is locale dependent; spell the ASCII set out. */
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';
        if (!ok)
            return false;
    }
    return true;
}

int gate_table_name(const char *domain, char *buf, size_t len)
{
    if (!domain || !buf)
        return -EINVAL;
    size_t dlen = strnlen(domain, 256);
    if (dlen == 0 || dlen >= 256)
        return -EINVAL;
    char hex[SHA256_HEX_LEN];
    sha256_hex(domain, dlen, hex);

    char clean[33];
    size_t k = 0;
    for (size_t i = 0; i < dlen && k < sizeof(clean) - 1; i++) {
        unsigned char ch = (unsigned char)domain[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_';
        clean[k++] = ok ? (char)ch : '_';
    }
    clean[k] = 0;
    int n = snprintf(buf, len, "nc_%s_%.12s", clean, hex);
    if (n < 0 || (size_t)n >= len)
        return -ENOBUFS;
    return 0;
}

/* Run one libnftables command (JSON in, JSON out). *out gets the output when wanted. The
 * nft_ctx lives only for this call. */
static int nft_run_json(json_object *cmd, char **out)
{
    _cleanup_(nft_ctx_freep) struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!nft)
        return -ENOMEM;
    /* JSON output also makes libnftables parse the input as JSON first. */
    nft_ctx_output_set_flags(nft, NFT_CTX_OUTPUT_JSON);
    if (nft_ctx_buffer_output(nft) < 0 || nft_ctx_buffer_error(nft) < 0)
        return -ENOMEM;
    const char *text = json_object_to_json_string_ext(cmd, JSON_C_TO_STRING_PLAIN);
    if (!text)
        return -ENOMEM;
    log_debug("gate: nft %s", text);
    if (nft_run_cmd_from_buffer(nft, text) != 0) {
        const char *err = nft_ctx_get_error_buffer(nft);
        err = err ? err : "";
        log_debug("gate: nft failed: %s", err);
        if (strstr(err, "Operation not permitted"))
            return -EPERM;
        if (strstr(err, "No such file or directory"))
            return -ENOENT;
        log_err("gate: nft refused the command: %.*s", (int)strcspn(err, "\n"), err);
        return -EIO;
    }
    if (out) {
        const char *o = nft_ctx_get_output_buffer(nft);
        *out = strdup(o ? o : "");
        if (!*out)
            return -ENOMEM;
    }
    return 0;
}

/* {"<verb>": {"<kind>": obj}} appended to the nftables array. */
static int add_cmd(json_object *arr, const char *verb, const char *kind, json_object *obj)
{
    json_object *inner = json_object_new_object();
    json_object *outer = json_object_new_object();
    if (!inner || !outer || !obj) {
        json_object_put(inner);
        json_object_put(outer);
        json_object_put(obj);
        return -ENOMEM;
    }
    json_object_object_add(inner, kind, obj);
    json_object_object_add(outer, verb, inner);
    json_object_array_add(arr, outer);
    return 0;
}

static json_object *table_obj(const char *table)
{
    json_object *t = json_object_new_object();
    if (!t)
        return NULL;
    json_object_object_add(t, "family", json_object_new_string("netdev"));
    json_object_object_add(t, "name", json_object_new_string(table));
    return t;
}

/* {"nftables": [...]} with its array returned in *arr (owned by the root). */
static json_object *new_batch(json_object **arr)
{
    json_object *root = json_object_new_object();
    *arr = json_object_new_array();
    if (!root || !*arr) {
        json_object_put(root);
        json_object_put(*arr);
        return NULL;
    }
    json_object_object_add(root, "nftables", *arr);
    return root;
}

static json_object *named_obj(const char *table, const char *name)
{
    json_object *o = table_obj(table);
    if (!o)
        return NULL;
    json_object_object_del(o, "name");
    json_object_object_add(o, "table", json_object_new_string(table));
    json_object_object_add(o, "name", json_object_new_string(name));
    return o;
}

/* One direction of one tap: a named counter, a base chain with policy drop on the hook, and
 * its rule list. The rules are a list on purpose: held-traffic capture adds a
 * {"log": {"group": N}} rule after the counter in the egress chain, before the policy drop,
 * without changing anything else (see docs/gate.md). */
static int add_direction(json_object *arr, const char *table, const char *tap, const char *prefix,
                         const char *hook)
{
    char name[64];
    snprintf(name, sizeof(name), "%s%s", prefix, tap);

    int r = add_cmd(arr, "add", "counter", named_obj(table, name));
    if (r < 0)
        return r;

    json_object *ch = named_obj(table, name);
    if (!ch)
        return -ENOMEM;
    json_object_object_add(ch, "type", json_object_new_string("filter"));
    json_object_object_add(ch, "hook", json_object_new_string(hook));
    json_object_object_add(ch, "dev", json_object_new_string(tap));
    json_object_object_add(ch, "prio", json_object_new_int(GATE_PRIO));
    json_object_object_add(ch, "policy", json_object_new_string("drop"));
    r = add_cmd(arr, "add", "chain", ch);
    if (r < 0)
        return r;

    json_object *rule = json_object_new_object();
    json_object *expr = json_object_new_array();
    json_object *stmt = json_object_new_object();
    if (!rule || !expr || !stmt) {
        json_object_put(rule);
        json_object_put(expr);
        json_object_put(stmt);
        return -ENOMEM;
    }
    json_object_object_add(stmt, "counter", json_object_new_string(name));
    json_object_array_add(expr, stmt);
    json_object_object_add(rule, "family", json_object_new_string("netdev"));
    json_object_object_add(rule, "table", json_object_new_string(table));
    json_object_object_add(rule, "chain", json_object_new_string(name));
    json_object_object_add(rule, "expr", expr);
    return add_cmd(arr, "add", "rule", rule);
}

/* The table's listing as parsed JSON, or -ENOENT when the table does not exist. */
static int list_table(const char *table, json_object **out)
{
    json_object *arr;
    _cleanup_json_ json_object *root = new_batch(&arr);
    if (!root)
        return -ENOMEM;
    int r = add_cmd(arr, "list", "table", table_obj(table));
    if (r < 0)
        return r;
    _cleanup_free_ char *text = NULL;
    r = nft_run_json(root, &text);
    if (r < 0)
        return r;
    json_object *parsed = json_tokener_parse(text);
    json_object *items;
    if (!parsed || !json_object_object_get_ex(parsed, "nftables", &items) ||
        !json_object_is_type(items, json_type_array)) {
        json_object_put(parsed);
        log_err("gate: unexpected nft JSON output for table %s", table);
        return -EIO;
    }
    *out = parsed;
    return 0;
}

/* Iterate the items of kind ("chain", "counter", ...) belonging to table. */
static json_object *item_of(json_object *items, size_t i, const char *kind, const char *table)
{
    json_object *it = json_object_array_get_idx(items, i), *o, *t, *fam;
    if (!it || !json_object_object_get_ex(it, kind, &o))
        return NULL;
    if (!json_object_object_get_ex(o, "table", &t) ||
        strcmp(json_object_get_string(t) ?: "", table) != 0)
        return NULL;
    if (!json_object_object_get_ex(o, "family", &fam) ||
        strcmp(json_object_get_string(fam) ?: "", "netdev") != 0)
        return NULL;
    return o;
}

static const char *str_field(json_object *o, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v))
        return "";
    return json_object_get_string(v) ?: "";
}

/* 1 when the installed table already has exactly one drop chain per tap and direction. */
static int table_matches(json_object *listing, const char *table, const char *const *taps,
                         size_t n_taps)
{
    json_object *items;
    json_object_object_get_ex(listing, "nftables", &items);
    size_t n = json_object_array_length(items), chains = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *ch = item_of(items, i, "chain", table);
        if (!ch)
            continue;
        chains++;
        const char *name = str_field(ch, "name"), *hook = str_field(ch, "hook");
        const char *tap;
        if (strncmp(name, TO_GUEST, strlen(TO_GUEST)) == 0 && strcmp(hook, "egress") == 0)
            tap = name + strlen(TO_GUEST);
        else if (strncmp(name, FROM_GUEST, strlen(FROM_GUEST)) == 0 && strcmp(hook, "ingress") == 0)
            tap = name + strlen(FROM_GUEST);
        else
            return 0;
        if (strcmp(str_field(ch, "policy"), "drop") != 0)
            return 0;
        /* nft 1.0.6 leaves "dev" out of single-device chains; check it when present. */
        const char *dev = str_field(ch, "dev");
        if (*dev && strcmp(dev, tap) != 0)
            return 0;
        bool found = false;
        for (size_t j = 0; j < n_taps && !found; j++)
            found = strcmp(taps[j], tap) == 0;
        if (!found)
            return 0;
    }
    if (chains != 2 * n_taps)
        return 0;
    /* and the counters the chains reference */
    size_t counters = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *ctr = item_of(items, i, "counter", table);
        if (!ctr)
            continue;
        const char *name = str_field(ctr, "name");
        for (size_t j = 0; j < n_taps; j++) {
            char want[2][40];
            snprintf(want[0], sizeof(want[0]), TO_GUEST "%s", taps[j]);
            snprintf(want[1], sizeof(want[1]), FROM_GUEST "%s", taps[j]);
            if (strcmp(name, want[0]) == 0 || strcmp(name, want[1]) == 0)
                counters++;
        }
    }
    return counters == 2 * n_taps;
}

int gate_install(const char *domain, const char *const *taps, size_t n_taps)
{
    return gate_install_flags(domain, taps, n_taps, 0);
}

int gate_install_flags(const char *domain, const char *const *taps, size_t n_taps, unsigned flags)
{
    char table[GATE_TABLE_NAME_MAX];
    int r = gate_table_name(domain, table, sizeof(table));
    if (r < 0)
        return r;
    if (!taps || n_taps == 0 || n_taps > GATE_MAX_TAPS)
        return -EINVAL;
    for (size_t i = 0; i < n_taps; i++) {
        if (!gate_ifname_valid(taps[i])) {
            log_err("gate: refusing tap name %zu of domain %s: not a valid interface name", i,
                    table);
            return -EINVAL;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(taps[i], taps[j]) == 0) {
                log_err("gate: tap %s listed twice", taps[i]);
                return -EINVAL;
            }
        /* Recent kernels accept a netdev hook on a device that does not exist yet; the gate
         * would then hold nothing, so insist on the device being here. */
        if (!(flags & GATE_ALLOW_MISSING_TAP) && if_nametoindex(taps[i]) == 0) {
            log_err("gate: tap %s does not exist in this network namespace", taps[i]);
            return -ENODEV;
        }
    }

    _cleanup_json_ json_object *listing = NULL;
    r = list_table(table, &listing);
    if (r >= 0 && table_matches(listing, table, taps, n_taps)) {
        log_debug("gate: %s already installed", table);
        return 0;
    }
    if (r < 0 && r != -ENOENT)
        return r;

    /* add+delete+add: one transaction that yields exactly this table whether or not it (or an
     * older variant of it) existed. */
    json_object *arr;
    _cleanup_json_ json_object *root = new_batch(&arr);
    if (!root)
        return -ENOMEM;
    if ((r = add_cmd(arr, "add", "table", table_obj(table))) < 0 ||
        (r = add_cmd(arr, "delete", "table", table_obj(table))) < 0 ||
        (r = add_cmd(arr, "add", "table", table_obj(table))) < 0)
        return r;
    for (size_t i = 0; i < n_taps; i++) {
        if ((r = add_direction(arr, table, taps[i], TO_GUEST, "egress")) < 0 ||
            (r = add_direction(arr, table, taps[i], FROM_GUEST, "ingress")) < 0)
            return r;
    }
    r = nft_run_json(root, NULL);
    if (r == -ENOENT && (flags & GATE_ALLOW_MISSING_TAP))
        r = -ENODEV; /* a kernel that hooks only existing devices */
    if (r < 0) {
        log_err("gate: installing %s failed: %s", table, strerror(-r));
        return r;
    }
    log_info("gate: %s installed on %zu tap(s)", table, n_taps);
    return 0;
}

int gate_is_installed(const char *domain)
{
    char table[GATE_TABLE_NAME_MAX];
    int r = gate_table_name(domain, table, sizeof(table));
    if (r < 0)
        return r;
    json_object *arr;
    _cleanup_json_ json_object *root = new_batch(&arr);
    if (!root)
        return -ENOMEM;
    json_object *fam = json_object_new_object();
    if (!fam)
        return -ENOMEM;
    json_object_object_add(fam, "family", json_object_new_string("netdev"));
    if ((r = add_cmd(arr, "list", "tables", fam)) < 0)
        return r;
    _cleanup_free_ char *text = NULL;
    r = nft_run_json(root, &text);
    if (r < 0)
        return r;
    _cleanup_json_ json_object *parsed = json_tokener_parse(text);
    json_object *items;
    if (!parsed || !json_object_object_get_ex(parsed, "nftables", &items) ||
        !json_object_is_type(items, json_type_array))
        return -EIO;
    size_t n = json_object_array_length(items);
    for (size_t i = 0; i < n; i++) {
        json_object *it = json_object_array_get_idx(items, i), *t;
        if (!json_object_object_get_ex(it, "table", &t))
            continue;
        if (strcmp(str_field(t, "family"), "netdev") == 0 &&
            strcmp(str_field(t, "name"), table) == 0)
            return 1;
    }
    return 0;
}

int gate_lift(const char *domain)
{
    char table[GATE_TABLE_NAME_MAX];
    int r = gate_table_name(domain, table, sizeof(table));
    if (r < 0)
        return r;
    int was = gate_is_installed(domain);
    if (was < 0)
        return was;
    if (was == 0)
        return 0;
    /* add+delete is idempotent even if someone removed the table since we looked. */
    json_object *arr;
    _cleanup_json_ json_object *root = new_batch(&arr);
    if (!root)
        return -ENOMEM;
    if ((r = add_cmd(arr, "add", "table", table_obj(table))) < 0 ||
        (r = add_cmd(arr, "delete", "table", table_obj(table))) < 0)
        return r;
    r = nft_run_json(root, NULL);
    if (r < 0) {
        log_err("gate: lifting %s failed: %s", table, strerror(-r));
        return r;
    }
    log_info("gate: %s lifted", table);
    return 1;
}

static uint64_t u64_field(json_object *o, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v))
        return 0;
    int64_t x = json_object_get_int64(v);
    return x > 0 ? (uint64_t)x : 0;
}

int gate_read_counters(const char *domain, struct gate_counters *c)
{
    char table[GATE_TABLE_NAME_MAX];
    int r = gate_table_name(domain, table, sizeof(table));
    if (r < 0)
        return r;
    if (!c)
        return -EINVAL;
    _cleanup_json_ json_object *listing = NULL;
    r = list_table(table, &listing);
    if (r < 0)
        return r;
    memset(c, 0, sizeof(*c));
    json_object *items;
    json_object_object_get_ex(listing, "nftables", &items);
    size_t n = json_object_array_length(items);
    for (size_t i = 0; i < n; i++) {
        json_object *ctr = item_of(items, i, "counter", table);
        if (!ctr)
            continue;
        const char *name = str_field(ctr, "name");
        if (strncmp(name, TO_GUEST, strlen(TO_GUEST)) == 0) {
            c->to_guest_pkts += u64_field(ctr, "packets");
            c->to_guest_bytes += u64_field(ctr, "bytes");
        } else if (strncmp(name, FROM_GUEST, strlen(FROM_GUEST)) == 0) {
            c->from_guest_pkts += u64_field(ctr, "packets");
            c->from_guest_bytes += u64_field(ctr, "bytes");
        }
    }
    return 0;
}

/* 1 when chain already has a rule logging to group. */
static bool chain_logs_to(json_object *items, const char *table, const char *chain, uint16_t group)
{
    size_t n = json_object_array_length(items);
    for (size_t i = 0; i < n; i++) {
        json_object *rule = item_of(items, i, "rule", table), *expr;
        if (!rule || strcmp(str_field(rule, "chain"), chain) != 0 ||
            !json_object_object_get_ex(rule, "expr", &expr) ||
            !json_object_is_type(expr, json_type_array))
            continue;
        for (size_t k = 0; k < json_object_array_length(expr); k++) {
            json_object *st = json_object_array_get_idx(expr, k), *log;
            if (st && json_object_object_get_ex(st, "log", &log) &&
                u64_field(log, "group") == group)
                return true;
        }
    }
    return false;
}

int gate_capture_add(const char *domain, const char *const *taps, size_t n_taps, uint16_t group)
{
    char table[GATE_TABLE_NAME_MAX];
    int r = gate_table_name(domain, table, sizeof(table));
    if (r < 0)
        return r;
    if (!taps || n_taps == 0 || n_taps > GATE_MAX_TAPS || group == 0)
        return -EINVAL;
    for (size_t i = 0; i < n_taps; i++)
        if (!gate_ifname_valid(taps[i]))
            return -EINVAL;
    _cleanup_json_ json_object *listing = NULL;
    r = list_table(table, &listing);
    if (r < 0)
        return r;
    json_object *items;
    json_object_object_get_ex(listing, "nftables", &items);

    json_object *arr;
    _cleanup_json_ json_object *root = new_batch(&arr);
    if (!root)
        return -ENOMEM;
    size_t added = 0;
    for (size_t i = 0; i < n_taps; i++) {
        char chain[64];
        snprintf(chain, sizeof(chain), TO_GUEST "%s", taps[i]);
        if (chain_logs_to(items, table, chain, group))
            continue;
        json_object *rule = json_object_new_object();
        json_object *expr = json_object_new_array();
        json_object *stmt = json_object_new_object();
        json_object *log = json_object_new_object();
        if (!rule || !expr || !stmt || !log) {
            json_object_put(rule);
            json_object_put(expr);
            json_object_put(stmt);
            json_object_put(log);
            return -ENOMEM;
        }
        json_object_object_add(log, "group", json_object_new_int(group));
        json_object_object_add(stmt, "log", log);
        json_object_array_add(expr, stmt);
        json_object_object_add(rule, "family", json_object_new_string("netdev"));
        json_object_object_add(rule, "table", json_object_new_string(table));
        json_object_object_add(rule, "chain", json_object_new_string(chain));
        json_object_object_add(rule, "expr", expr);
        if ((r = add_cmd(arr, "add", "rule", rule)) < 0)
            return r;
        added++;
    }
    if (added == 0)
        return 0;
    r = nft_run_json(root, NULL);
    if (r < 0) {
        log_err("gate: adding the capture rule to %s failed: %s", table, strerror(-r));
        return r;
    }
    log_info("gate: %s copies frames to the guest to nflog group %u", table, group);
    return 0;
}
