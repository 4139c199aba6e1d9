/* schemas/agent-commands.json and agent/agent-commands.c must agree exactly: the same command
 * names, in the same order, with the same allowed-while-frozen and builtin flags; every
 * argument must have a JSON type and a required flag; the error classes and limits must be
 * the ones the code uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tests/unit/schema-table-check.h"

#include "agent/agent-commands.h"
#include "agent/qga-stream.h"

static json_object *schema;

static int load(void **state)
{
    schema = schema_load("agent-commands.json");
    return schema ? 0 : -1;
}

static int unload(void **state)
{
    json_object_put(schema);
    return 0;
}

static void test_commands_agree(void **state)
{
    size_t n;
    const struct agent_command_info *tab = agent_commands(&n);
    assert_int_equal(n, AGENT_COMMAND_COUNT);
    json_object *cmds = schema_commands(schema, n, "agent/agent-commands.c");
    for (size_t i = 0; i < n; i++) {
        json_object *c = schema_command(cmds, i, tab[i].name);
        const char *name = tab[i].name;
        bool fz = json_object_get_boolean(schema_get(c, "allowed-while-frozen", json_type_boolean));
        if (fz != tab[i].allowed_while_frozen)
            fail_msg("%s: allowed-while-frozen differs (schema %d, code %d)", name, fz,
                     tab[i].allowed_while_frozen);
        bool bi = json_object_get_boolean(schema_get(c, "builtin", json_type_boolean));
        if (bi != tab[i].builtin)
            fail_msg("%s: builtin differs", name);
        assert_true(json_object_get_string_len(schema_get(c, "description", json_type_string)) >
                    10);
        schema_get(c, "returns", json_type_object);
    }
}

static bool valid_type(const char *t)
{
    static const char *const types[] = {"string", "integer", "number", "boolean",
                                        "object", "array",   "null"};
    for (size_t i = 0; i < ELEMENTSOF(types); i++)
        if (!strcmp(t, types[i]))
            return true;
    return false;
}

static void test_arguments_typed(void **state)
{
    json_object *cmds = schema_get(schema, "commands", json_type_array);
    for (size_t i = 0; i < json_object_array_length(cmds); i++) {
        json_object *c = json_object_array_get_idx(cmds, i);
        const char *name = json_object_get_string(schema_get(c, "name", json_type_string));
        json_object *args = schema_get(c, "arguments", json_type_object);
        json_object_object_foreach(args, k, a)
        {
            const char *t = json_object_get_string(schema_get(a, "type", json_type_string));
            if (!valid_type(t))
                fail_msg("%s: argument %s has type '%s'", name, k, t);
            schema_get(a, "required", json_type_boolean);
            schema_get(a, "description", json_type_string);
        }
        json_object *groups;
        if (json_object_object_get_ex(c, "requires-one-of", &groups)) {
            for (size_t g = 0; g < json_object_array_length(groups); g++) {
                json_object *grp = json_object_array_get_idx(groups, g);
                for (size_t j = 0; j < json_object_array_length(grp); j++) {
                    const char *ak = json_object_get_string(json_object_array_get_idx(grp, j));
                    if (!json_object_object_get_ex(args, ak, NULL))
                        fail_msg("%s: requires-one-of names unknown argument %s", name, ak);
                }
            }
        }
    }
    /* The arguments the brief fixes. */
    json_object *c;
    size_t n = json_object_array_length(cmds);
    for (size_t i = 0; i < n; i++) {
        c = json_object_array_get_idx(cmds, i);
        const char *name = json_object_get_string(schema_get(c, "name", json_type_string));
        json_object *args = schema_get(c, "arguments", json_type_object);
        if (!strcmp(name, "guest-sync") || !strcmp(name, "guest-sync-delimited"))
            assert_true(json_object_get_boolean(schema_get(schema_get(args, "id", json_type_object),
                                                           "required", json_type_boolean)));
        if (!strcmp(name, "guest-net-freeze")) {
            schema_get(args, "timeout", json_type_object);
            schema_get(args, "include", json_type_object);
        }
        if (!strcmp(name, "guest-net-thaw")) {
            schema_get(args, "host_time_ns", json_type_object);
            schema_get(args, "kick", json_type_object);
        }
        if (!strcmp(name, "guest-net-verify")) {
            schema_get(args, "image_id", json_type_object);
            schema_get(args, "image", json_type_object);
        }
        if (!strcmp(name, "guest-net-reset-stale")) {
            schema_get(args, "connections", json_type_object);
            schema_get(args, "image_id", json_type_object);
        }
    }
}

static void test_errors_and_limits(void **state)
{
    json_object *cls = schema_get(schema, "error-classes", json_type_array);
    assert_int_equal(json_object_array_length(cls), _QGA_ERR_MAX);
    for (int i = 0; i < _QGA_ERR_MAX; i++)
        assert_string_equal(json_object_get_string(json_object_array_get_idx(cls, i)),
                            qga_error_class_name(i));
    json_object *p = schema_get(schema, "protocol", json_type_object);
    assert_int_equal(json_object_get_int64(schema_get(p, "max-message-bytes", json_type_int)),
                     QGA_MAX_MESSAGE_BYTES);
    assert_int_equal(json_object_get_int64(schema_get(p, "max-depth", json_type_int)),
                     QGA_MAX_DEPTH);
    assert_int_equal(json_object_get_int64(schema_get(p, "sentinel", json_type_int)), QGA_SENTINEL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands_agree),
        cmocka_unit_test(test_arguments_typed),
        cmocka_unit_test(test_errors_and_limits),
    };
    return cmocka_run_group_tests(tests, load, unload);
}
