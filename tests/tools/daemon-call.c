/* tests/tools/daemon-call.c: call one netckptd command through host/daemon-client.h and print
 * the reply as JSON: `daemon-call SOCKET COMMAND [ARGS-JSON]`. Exit 0 with the return value on
 * stdout, 1 with {"error":{"class","desc"}} on stdout for an error reply, 2 when the call
 * itself failed (message on stderr). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "host/daemon-client.h"

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: daemon-call SOCKET COMMAND [ARGS-JSON]\n");
        return 2;
    }
    json_object *args = NULL;
    if (argc == 4 && !(args = json_tokener_parse(argv[3]))) {
        fprintf(stderr, "daemon-call: the arguments are not JSON\n");
        return 2;
    }
    struct daemon_client dc;
    int r = daemon_client_connect(&dc, argv[1], 5000);
    if (r < 0) {
        fprintf(stderr, "daemon-call: cannot connect to %s: %s\n", argv[1], strerror(-r));
        json_object_put(args);
        return 2;
    }
    json_object *ret = NULL;
    struct qga_error err;
    r = daemon_client_call(&dc, argv[2], args, -1, &ret, &err);
    daemon_client_close(&dc);
    json_object_put(args);
    if (r == -EREMOTEIO) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "error", qga_error_to_json(&err));
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
        return 1;
    }
    if (r < 0) {
        fprintf(stderr, "daemon-call: %s: %s\n", argv[2], strerror(-r));
        return 2;
    }
    printf("%s\n", json_object_to_json_string_ext(ret, JSON_C_TO_STRING_PLAIN));
    json_object_put(ret);
    return 0;
}
