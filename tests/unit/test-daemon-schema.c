/* schemas/daemon-commands.json and host/daemon-commands.c must agree: the same commands in the
 * same order, the same arguments with the same JSON types and required flags, and the
 * protocol limits the daemon applies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tests/unit/schema-table-check.h"

#include "host/daemon.h"

static json_object *schema;

static int load(void **state)
{
    schema = schema_load("daemon-commands.json");
    return schema ? 0 : -1;
}

static int unload(void **state)
{
    json_object_put(schema);
    return 0;
}

static json_type type_of(const char *name)
{
    if (!strcmp(name, "string"))
        return json_type_string;
    if (!strcmp(name, "boolean"))
        return json_type_boolean;
    if (!strcmp(name, "integer"))
        return json_type_int;
    if (!strcmp(name, "object"))
        return json_type_object;
    if (!strcmp(name, "array"))
        return json_type_array;
    fail_msg("schema: unknown type %s", name);
    return json_type_null;
}

static void test_commands_agree(void **state)
{
    size_t n;
    const struct daemon_command *tab = daemon_commands(&n);
    assert_int_equal(n, DAEMON_COMMAND_COUNT);
    json_object *cmds = schema_commands(schema, n, "host/daemon-commands.c");
    for (size_t i = 0; i < n; i++) {
        json_object *c = schema_command(cmds, i, tab[i].name);
        const char *name = tab[i].name;
        assert_non_null(tab[i].handler);
        schema_get(c, "description", json_type_string);
        schema_get(c, "returns", json_type_object);
        json_object *args = schema_get(c, "arguments", json_type_object);
        size_t n_code = 0;
        for (const struct daemon_arg *a = tab[i].args; a->name; a++, n_code++) {
            json_object *sa = NULL;
            if (!json_object_object_get_ex(args, a->name, &sa))
                fail_msg("%s: argument %s is in the code, not in the schema", name, a->name);
            json_type t = type_of(json_object_get_string(schema_get(sa, "type", json_type_string)));
            if (t != a->type)
                fail_msg("%s.%s: schema type %s, code type %s", name, a->name, json_type_to_name(t),
                         json_type_to_name(a->type));
            bool req = json_object_get_boolean(schema_get(sa, "required", json_type_boolean));
            if (req != a->required)
                fail_msg("%s.%s: required is %d in the schema, %d in the code", name, a->name, req,
                         a->required);
            schema_get(sa, "description", json_type_string);
        }
        if ((size_t)json_object_object_length(args) != n_code)
            fail_msg("%s: the schema has %d arguments, the code %zu", name,
                     json_object_object_length(args), n_code);
    }
}

static void test_protocol_agrees(void **state)
{
    json_object *p = schema_get(schema, "protocol", json_type_object);
    assert_int_equal(json_object_get_int64(schema_get(p, "max-request-bytes", json_type_int)),
                     DAEMON_MAX_REQUEST);
    assert_int_equal(json_object_get_int64(schema_get(p, "max-depth", json_type_int)),
                     DAEMON_MAX_DEPTH);
    assert_string_equal(json_object_get_string(schema_get(p, "socket", json_type_string)),
                        DAEMON_DEFAULT_SOCKET);
    /* every listed error class is one qga knows */
    json_object *cl = schema_get(schema, "error-classes", json_type_array);
    for (size_t i = 0; i < json_object_array_length(cl); i++) {
        enum qga_error_class c;
        const char *name = json_object_get_string(json_object_array_get_idx(cl, i));
        if (!qga_error_class_from_name(name, &c))
            fail_msg("unknown error class %s", name);
    }
    /* the table is one qga_server accepts */
    struct qga_command table[DAEMON_COMMAND_COUNT];
    daemon_command_table(table);
    struct qga_server s;
    assert_int_equal(qga_server_init(&s, table, DAEMON_COMMAND_COUNT, NULL, NULL), 0);
    qga_server_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands_agree),
        cmocka_unit_test(test_protocol_agrees),
    };
    return cmocka_run_group_tests(tests, load, unload);
}
