/* host/cli-opts.c: the option parser over the command tables, exit-code names, and help. */
#include "host/cli.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *nc_exit_name(int code)
{
    switch (code) {
    case NC_EXIT_OK:
        return "ok";
    case NC_EXIT_FAILURE:
        return "failure";
    case NC_EXIT_USAGE:
        return "usage";
    case NC_EXIT_REFUSED:
        return "refused";
    case NC_EXIT_ROLLED_BACK:
        return "rolled-back";
    case NC_EXIT_ROLLBACK_FAILED:
        return "rollback-failed";
    case NC_EXIT_INTERRUPTED:
        return "interrupted";
    case NC_EXIT_BUSY:
        return "busy";
    }
    return "unknown";
}

static int opt_index(const struct cli_cmd *cmd, const char *name, size_t namelen)
{
    for (int i = 0; cmd->opts && cmd->opts[i].name; i++)
        if (strlen(cmd->opts[i].name) == namelen && !strncmp(cmd->opts[i].name, name, namelen))
            return i;
    return -1;
}

static bool choice_ok(const char *choices, const char *v)
{
    size_t vl = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == vl && !strncmp(p, v, l))
            return true;
        if (!bar)
            break;
        p = bar + 1;
    }
    return false;
}

static bool uint_ok(const char *v)
{
    if (!*v)
        return false;
    for (const char *p = v; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    errno = 0;
    (void)strtoull(v, NULL, 10);
    return errno == 0;
}

static int usage_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int usage_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return NC_EXIT_USAGE;
}

static int set_value(const struct cli_cmd *cmd, int i, const char *v, struct cli_args *out,
                     char *err, size_t errlen)
{
    const struct cli_opt *o = &cmd->opts[i];
    if (out->val[i])
        return usage_err(err, errlen, "%s: option --%s given twice", cmd->name, o->name);
    if (o->type == CLI_OPT_INT && !uint_ok(v))
        return usage_err(err, errlen, "%s: --%s wants a non-negative integer, not '%s'", cmd->name,
                         o->name, v);
    if (o->type == CLI_OPT_STRING && o->choices && !choice_ok(o->choices, v))
        return usage_err(err, errlen, "%s: --%s must be one of %s, not '%s'", cmd->name, o->name,
                         o->choices, v);
    if (o->type != CLI_OPT_BOOL && !*v)
        return usage_err(err, errlen, "%s: --%s wants a non-empty value", cmd->name, o->name);
    out->val[i] = v;
    return 0;
}

int cli_parse(const struct cli_cmd *cmd, int argc, char *const *argv, struct cli_args *out,
              char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->cmd = cmd;
    bool only_positional = false;
    int n_opts = 0;
    while (cmd->opts && cmd->opts[n_opts].name)
        n_opts++;
    if (n_opts > CLI_MAX_OPTS)
        return usage_err(err, errlen, "%s: too many options in the table", cmd->name);

    for (int a = 0; a < argc; a++) {
        const char *arg = argv[a];
        if (!only_positional && !strcmp(arg, "--")) {
            only_positional = true;
            continue;
        }
        if (!only_positional && (!strcmp(arg, "--help") || !strcmp(arg, "-h"))) {
            out->help = true;
            continue;
        }
        if (!only_positional && arg[0] == '-' && arg[1] == '-') {
            const char *name = arg + 2;
            const char *eq = strchr(name, '=');
            size_t nl = eq ? (size_t)(eq - name) : strlen(name);
            int i = opt_index(cmd, name, nl);
            if (i < 0)
                return usage_err(err, errlen,
                                 "%s: unknown option '--%.*s' (see 'netckpt %s --help')", cmd->name,
                                 (int)nl, name, cmd->name);
            const struct cli_opt *o = &cmd->opts[i];
            if (o->type == CLI_OPT_BOOL) {
                if (eq)
                    return usage_err(err, errlen, "%s: --%s takes no value", cmd->name, o->name);
                int r = set_value(cmd, i, "1", out, err, errlen);
                if (r)
                    return r;
                continue;
            }
            const char *v;
            if (eq)
                v = eq + 1;
            else if (a + 1 < argc)
                v = argv[++a];
            else
                return usage_err(err, errlen, "%s: --%s wants a value", cmd->name, o->name);
            int r = set_value(cmd, i, v, out, err, errlen);
            if (r)
                return r;
            continue;
        }
        if (!only_positional && arg[0] == '-' && arg[1])
            return usage_err(err, errlen, "%s: unknown option '%s' (see 'netckpt %s --help')",
                             cmd->name, arg, cmd->name);
        /* A positional: the first POSITIONAL option not yet given. */
        int i;
        for (i = 0; i < n_opts; i++)
            if ((cmd->opts[i].flags & CLI_OPT_POSITIONAL) && !out->val[i])
                break;
        if (i == n_opts)
            return usage_err(err, errlen, "%s: unexpected argument '%s'", cmd->name, arg);
        int r = set_value(cmd, i, arg, out, err, errlen);
        if (r)
            return r;
    }
    if (out->help)
        return 0;
    for (int i = 0; i < n_opts; i++)
        if ((cmd->opts[i].flags & CLI_OPT_REQUIRED) && !out->val[i])
            return usage_err(err, errlen, "%s: missing %s%s (see 'netckpt %s --help')", cmd->name,
                             (cmd->opts[i].flags & CLI_OPT_POSITIONAL) ? "" : "--",
                             cmd->opts[i].name, cmd->name);
    return 0;
}

static const char *lookup(const struct cli_args *a, const char *name, enum cli_opt_type *type)
{
    int i = opt_index(a->cmd, name, strlen(name));
    if (i < 0)
        abort(); /* a handler asked for an option its table lacks: a programming error */
    if (type)
        *type = a->cmd->opts[i].type;
    return a->val[i];
}

const char *cli_arg_str(const struct cli_args *a, const char *name)
{
    return lookup(a, name, NULL);
}

bool cli_arg_bool(const struct cli_args *a, const char *name)
{
    return lookup(a, name, NULL) != NULL;
}

int cli_arg_uint(const struct cli_args *a, const char *name, uint64_t *out)
{
    const char *v = lookup(a, name, NULL);
    if (!v)
        return 0;
    if (!uint_ok(v))
        return -EINVAL;
    *out = strtoull(v, NULL, 10);
    return 1;
}

int cli_arg_size(const struct cli_args *a, const char *name, uint64_t min, uint64_t max,
                 uint64_t *out)
{
    const char *v = lookup(a, name, NULL);
    if (!v)
        return 0;
    size_t digits = strspn(v, "0123456789");
    if (digits == 0 || digits > 12)
        return -EINVAL;
    uint64_t n = strtoull(v, NULL, 10);
    const char *suf = v + digits;
    unsigned shift = 0;
    if (*suf) {
        const char *units = "KMG";
        const char *u = strchr(units, toupper((unsigned char)suf[0])); /* suf[0] is not NUL */
        if (!u || (suf[1] && strcmp(suf + 1, "iB")))
            return -EINVAL;
        shift = 10u * (unsigned)(u - units + 1);
    }
    /* 12 digits times 2^30 still fits in 64 bits. */
    n <<= shift;
    if (n < min || n > max)
        return -EINVAL;
    *out = n;
    return 1;
}

const struct cli_cmd *cli_find_command(const char *name)
{
    for (const struct cli_cmd *c = cli_commands; c->name; c++)
        if (!strcmp(c->name, name))
            return c;
    return NULL;
}

void cli_usage(FILE *f)
{
    fprintf(f, "Usage: netckpt [-c URI] [--json] [-q] [-v] COMMAND [ARGS...]\n\n"
               "Network-consistent checkpoints of libvirt/QEMU VMs.\n\n"
               "Global options:\n"
               "  -c, --connect URI  libvirt URI (default: the embedded QEMU driver under\n"
               "                     $NETCKPT_STATE_DIR/libvirt)\n"
               "      --json         machine-readable output on stdout\n"
               "  -q, --quiet        no progress or informational output\n"
               "  -v, --verbose      debug logging (same as NETCKPT_LOG=debug)\n"
               "      --daemon-socket PATH  netckptd's socket (default $NETCKPTD_SOCKET, else\n"
               "                     /run/netckpt/netckptd.sock)\n"
               "      --no-daemon    work alone even when netckptd runs (NETCKPT_NO_DAEMON=1)\n"
               "  -h, --help         this help\n"
               "  -V, --version      print the version\n\n"
               "Commands:\n");
    for (const struct cli_cmd *c = cli_commands; c->name; c++)
        fprintf(f, "  %-11s %s\n", c->name, c->summary);
    fprintf(f, "\n'netckpt help COMMAND' or 'netckpt COMMAND --help' describes a command.\n"
               "Exit codes: 0 ok, 1 failure, 2 usage, 3 refused, 4 rolled back,\n"
               "5 rollback incomplete, 6 interrupted, 7 busy (see netckpt(1)).\n");
}

/* The value's placeholder: the option's name in capitals, N for numbers, SIZE for sizes. */
static void metavar(const struct cli_opt *o, char *buf, size_t len)
{
    if (o->type == CLI_OPT_INT || o->type == CLI_OPT_SIZE) {
        snprintf(buf, len, o->type == CLI_OPT_INT ? "N" : "SIZE");
        return;
    }
    size_t i = 0;
    for (; o->name[i] && i + 1 < len; i++)
        buf[i] = o->name[i] == '-' ? '_' : (char)toupper((unsigned char)o->name[i]);
    buf[i] = 0;
}

void cli_command_help(FILE *f, const struct cli_cmd *cmd)
{
    fprintf(f, "Usage: netckpt %s", cmd->name);
    for (const struct cli_opt *o = cmd->opts; o && o->name; o++) {
        bool req = o->flags & CLI_OPT_REQUIRED;
        bool pos = o->flags & CLI_OPT_POSITIONAL;
        fputs(req ? " " : " [", f);
        char meta[64];
        metavar(o, meta, sizeof(meta));
        if (pos)
            fprintf(f, "%s", meta);
        else if (o->type == CLI_OPT_BOOL)
            fprintf(f, "--%s", o->name);
        else if (o->choices)
            fprintf(f, "--%s=%s", o->name, o->choices);
        else
            fprintf(f, "--%s %s", o->name, meta);
        if (!req)
            fputc(']', f);
    }
    fprintf(f, "\n\n  %s\n\n", cmd->summary);
    if (cmd->description)
        fprintf(f, "%s\n\n", cmd->description);
    if (cmd->opts && cmd->opts[0].name) {
        fprintf(f, "Options:\n");
        for (const struct cli_opt *o = cmd->opts; o->name; o++) {
            char left[96], meta[64];
            metavar(o, meta, sizeof(meta));
            if (o->flags & CLI_OPT_POSITIONAL)
                snprintf(left, sizeof(left), "[--%s] %s", o->name, meta);
            else if (o->type == CLI_OPT_BOOL || o->choices)
                snprintf(left, sizeof(left), "--%s", o->name);
            else
                snprintf(left, sizeof(left), "--%s %s", o->name, meta);
            fprintf(f, "  %-26s %s\n", left, o->help);
        }
    }
}
