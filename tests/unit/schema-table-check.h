/* tests/unit/schema-table-check.h: what the tests that hold a JSON command schema in schemas/
 * against its C command table share: loading the schema and typed member lookup. */
#pragma once
#include <json-c/json.h>

/* Load $NETCKPT_SOURCE_DIR/schemas/NAME (or ./schemas/NAME). NULL, after a message on
 * stderr, when it is missing or not JSON. */
json_object *schema_load(const char *name);
/* o's member key, which must exist with type t; fails the running test otherwise. */
json_object *schema_get(json_object *o, const char *key, json_type t);
