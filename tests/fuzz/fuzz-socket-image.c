/* libFuzzer target for what the host reads from the untrusted guest: the socket image
 * (bytes -> json_tokener -> socket_image_from_json), and, when the first byte is '\x01', the
 * sock_diag netlink reply parser. Whatever parses must also survive a write/parse round trip
 * unchanged and diff as identical to itself. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guest/sock-diag.h"
#include "guest/socket-image.h"

static void fuzz_netlink(const uint8_t *data, size_t size)
{
    struct sock_diag_tcp *v = NULL;
    size_t n = 0, cap = 0;
    int done = 0;
    uint32_t seq = 0;
    if (size >= 4) {
        memcpy(&seq, data, 4);
        data += 4;
        size -= 4;
    }
    int r = sock_diag_parse_reply(data, size, seq, &v, &n, &cap, &done);
    if (r > 0 || n > cap)
        abort();
    free(v);
}

static void fuzz_image(const uint8_t *data, size_t size)
{
    struct socket_image img;
    char err[256];
    if (socket_image_parse((const char *)data, size, &img, err, sizeof(err)) < 0) {
        if (img.conns || img.skipped || !err[0])
            abort(); /* a failure leaves nothing behind and always says why */
        return;
    }
    json_object *j = socket_image_to_json(&img);
    if (!j)
        abort();
    const char *s1 = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN);
    struct socket_image again;
    if (socket_image_parse(s1, strlen(s1), &again, err, sizeof(err)) < 0)
        abort();
    json_object *j2 = socket_image_to_json(&again);
    if (!j2 || strcmp(s1, json_object_to_json_string_ext(j2, JSON_C_TO_STRING_PLAIN)) != 0)
        abort();
    json_object *diff = NULL;
    if (socket_image_diff(&img, &again, &diff) != 0)
        abort();
    json_object_put(diff);
    json_object_put(j2);
    json_object_put(j);
    socket_image_free(&again);
    socket_image_free(&img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 0 && data[0] == 1)
        fuzz_netlink(data + 1, size - 1);
    else
        fuzz_image(data, size);
    return 0;
}
