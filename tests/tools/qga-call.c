/* tests/tools/qga-call.c: run one qga command against an agent's UNIX socket.
 *
 *   qga-call [--timeout MS] [--max-reply BYTES] SOCKET COMMAND [JSON-ARGS|@FILE]
 *
 * @FILE reads the arguments object from FILE (images are too big for a command line).
 * Prints the "return" value as one compact JSON line and exits 0; an error reply is printed
 * as {"error":{"class":..,"desc":..}} and exits 1; usage errors exit 2; transport failures
 * (connect, timeout, EOF, bad reply) exit 3. Built on agent/qga-client.h, so every call also
 * exercises the client's resync. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/qga-client.h"
#include <json-c/json_util.h>
#include "common/macro.h"
#include "common/util.h"

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"timeout", required_argument, NULL, 't'},
        {"max-reply", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int timeout_ms = 60000;
    size_t max_reply = 1u << 30;
    int c;
    while ((c = getopt_long(argc, argv, "t:m:h", opts, NULL)) >= 0) {
        switch (c) {
        case 't':
            timeout_ms = atoi(optarg);
            break;
        case 'm':
            max_reply = strtoull(optarg, NULL, 10);
            break;
        case 'h':
            printf("usage: qga-call [--timeout MS] [--max-reply BYTES] SOCKET COMMAND "
                   "[JSON-ARGS]\n");
            return 0;
        default:
            return 2;
        }
    }
    if (argc - optind < 2 || argc - optind > 3) {
        fprintf(stderr, "usage: qga-call [--timeout MS] SOCKET COMMAND [JSON-ARGS]\n");
        return 2;
    }
    const char *path = argv[optind], *cmd = argv[optind + 1];
    json_object *args = NULL;
    if (argc - optind == 3) {
        const char *a = argv[optind + 2];
        args = a[0] == '@' ? json_object_from_file(a + 1) : json_tokener_parse(a);
        if (!args || !json_object_is_type(args, json_type_object)) {
            fprintf(stderr, "qga-call: JSON-ARGS must be a JSON object\n");
            json_object_put(args);
            return 2;
        }
    }
    int fd = unix_connect(path, 0);
    if (fd < 0) {
        fprintf(stderr, "qga-call: connect %s: %s\n", path, strerror(-fd));
        json_object_put(args);
        return 3;
    }
    struct qga_transport t;
    qga_transport_fd(&t, &fd);
    struct qga_client *cl = qga_client_new(&t);
    if (!cl) {
        close(fd);
        json_object_put(args);
        return 3;
    }
    (void)qga_client_set_max_reply(cl, max_reply);
    json_object *ret = NULL;
    struct qga_error err = {0};
    int r = qga_client_call(cl, cmd, args, timeout_ms, &ret, &err);
    int rc = 0;
    if (r == 0) {
        printf("%s\n", json_object_to_json_string_ext(ret, JSON_C_TO_STRING_PLAIN));
    } else if (r == -EREMOTEIO) {
        json_object *e = json_object_new_object(), *inner = qga_error_to_json(&err);
        json_object_object_add(e, "error", inner);
        printf("%s\n", json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN));
        json_object_put(e);
        rc = 1;
    } else {
        fprintf(stderr, "qga-call: %s: %s%s%s\n", cmd, strerror(-r), err.desc[0] ? ": " : "",
                err.desc);
        rc = 3;
    }
    json_object_put(ret);
    json_object_put(args);
    qga_client_free(cl);
    close(fd);
    return rc;
}
