/* peer-probe IMAGE.json: send host/peer-probe.h's probe for every connection of a socket
 * image file, from the caller's network namespace; prints "sent N". For
 * tests/integration/rollback-probe.sh. Exit 0 when every connection got its probe. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "host/peer-probe.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: peer-probe IMAGE.json\n");
        return 2;
    }
    json_object *img = json_object_from_file(argv[1]);
    json_object *conns = NULL;
    if (!img || !json_object_object_get_ex(img, "connections", &conns)) {
        fprintf(stderr, "peer-probe: %s: not a socket image\n", argv[1]);
        return 2;
    }
    char err[256] = "";
    int n = peer_probe_image(img, err, sizeof(err));
    int want = (int)json_object_array_length(conns);
    json_object_put(img);
    if (n < 0) {
        fprintf(stderr, "peer-probe: %s\n", err);
        return 1;
    }
    printf("sent %d\n", n);
    if (err[0])
        fprintf(stderr, "peer-probe: %s\n", err);
    return n == want ? 0 : 1;
}
