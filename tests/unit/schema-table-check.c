/* tests/unit/schema-table-check.c: see schema-table-check.h. */
#include "tests/unit/schema-table-check.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json_util.h>

json_object *schema_load(const char *name)
{
    const char *src = getenv("NETCKPT_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/schemas/%s", src ? src : ".", name);
    json_object *o = json_object_from_file(path);
    if (!o)
        fprintf(stderr, "cannot load %s: %s\n", path, json_util_get_last_err());
    return o;
}

json_object *schema_get(json_object *o, const char *key, json_type t)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, t))
        fail_msg("schema: member '%s' missing or of the wrong type in %s", key,
                 json_object_to_json_string(o));
    return v;
}

json_object *schema_commands(json_object *schema, size_t n, const char *code_file)
{
    json_object *cmds = schema_get(schema, "commands", json_type_array);
    if (json_object_array_length(cmds) != n)
        fail_msg("schema lists %zu commands, %s %zu", json_object_array_length(cmds), code_file, n);
    return cmds;
}

json_object *schema_command(json_object *cmds, size_t i, const char *code_name)
{
    json_object *c = json_object_array_get_idx(cmds, i);
    const char *name = json_object_get_string(schema_get(c, "name", json_type_string));
    if (strcmp(name, code_name) != 0)
        fail_msg("command %zu: schema says %s, code says %s", i, name, code_name);
    return c;
}
