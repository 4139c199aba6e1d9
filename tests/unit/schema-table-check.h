/* tests/unit/schema-table-check.h: what the tests that hold a JSON command schema in schemas/
 * against its C command table share: loading the schema and typed member lookup. */
#pragma once
#include <json-c/json.h>

/* Load $NETCKPT_SOURCE_DIR/schemas/NAME (or ./schemas/NAME). NULL, after a message on
 * stderr, when it is missing or not JSON. */
json_object *schema_load(const char *name);
/* o's member key, which must exist with type t; fails the running test otherwise. */
json_object *schema_get(json_object *o, const char *key, json_type t);
/* The schema's "commands" array; fails the running test unless it lists n commands, the
 * number the table in code_file has. */
json_object *schema_commands(json_object *schema, size_t n, const char *code_file);
/* Entry i of cmds; fails the running test unless its "name" is code_name. */
json_object *schema_command(json_object *cmds, size_t i, const char *code_name);
