/* tests/tools/mkbundle.c: make a checkpoint bundle with host/bundle and a synthetic socket image
 * (built with guest/socket-image, so valid by construction), for the CLI's inspect/verify/restore
 * tests. Test-only.
 *
 *   mkbundle DIR [--domain NAME] [--conns N] [--image-out FILE]
 *
 * --image-out also writes a *different* valid image (another id) to FILE, for --image tests. */
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "guest/socket-image.h"
#include "host/bundle.h"

static void ep(struct tcp_endpoint *e, uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
    memset(e, 0, sizeof(*e));
    e->family = AF_INET;
    e->addr.s6_addr[10] = e->addr.s6_addr[11] = 0xff;
    e->addr.s6_addr[12] = a;
    e->addr.s6_addr[13] = b;
    e->addr.s6_addr[14] = c;
    e->addr.s6_addr[15] = d;
    e->port = port;
}

static char *make_image(size_t n, char id_out[33])
{
    struct socket_image img;
    memset(&img, 0, sizeof(img));
    if (socket_image_init_header(&img) < 0)
        return NULL;
    img.conns = calloc(n ? n : 1, sizeof(*img.conns));
    static struct sock_owner owner = {.pid = 100, .fd = 3, .comm = "workload"};
    for (size_t i = 0; i < n; i++) {
        struct image_conn *c = &img.conns[i];
        c->id = (uint32_t)i + 1;
        c->inode = 1000 + i;
        c->owners = &owner;
        c->n_owners = 1;
        c->st.sock_family = AF_INET;
        c->st.state = TCP_ESTABLISHED;
        ep(&c->st.local, 10, 0, 2, 15, (uint16_t)(7000 + i));
        ep(&c->st.remote, 10, 0, 3, 2, (uint16_t)(40000 + i));
        c->st.snd_seq = 1000u * (uint32_t)(i + 1);
        c->st.rcv_seq = 5000u * (uint32_t)(i + 1);
        static uint8_t data[] = "hello";
        c->st.recv.data = data;
        c->st.recv.len = 5;
        c->st.mss = 1460;
        c->st.opt_sack = true;
        c->st.opt_timestamps = true;
        c->st.opt_wscale = true;
        c->st.snd_wscale = 7;
        c->st.rcv_wscale = 7;
    }
    img.n_conns = n;
    json_object *j = socket_image_to_json(&img);
    memcpy(id_out, img.image_id, 33);
    free(img.conns);
    if (!j)
        return NULL;
    char *s = strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
    json_object_put(j);
    return s;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *domain = "vm1", *image_out = NULL;
    size_t n = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--domain") && i + 1 < argc)
            domain = argv[++i];
        else if (!strcmp(argv[i], "--conns") && i + 1 < argc)
            n = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--image-out") && i + 1 < argc)
            image_out = argv[++i];
        else if (!dir)
            dir = argv[i];
        else {
            fprintf(stderr, "usage: mkbundle DIR [--domain NAME] [--conns N] [--image-out F]\n");
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "usage: mkbundle DIR [--domain NAME] [--conns N] [--image-out F]\n");
        return 2;
    }
    char id[33];
    char *img = make_image(n, id);
    if (!img) {
        fprintf(stderr, "mkbundle: cannot build the image\n");
        return 1;
    }
    struct bundle b;
    int r = bundle_begin(dir, &b);
    if (r == 0)
        r = bundle_add_buffer(&b, BUNDLE_SOCKET_IMAGE, img, strlen(img));
    char xml[512];
    snprintf(xml, sizeof(xml), "<domain type='qemu'><name>%s</name></domain>\n", domain);
    if (r == 0)
        r = bundle_add_buffer(&b, BUNDLE_DOMAIN_XML, xml, strlen(xml));
    if (r == 0)
        r = bundle_add_buffer(&b, BUNDLE_VM_STATE, "not a real save image\n", 22);
    struct manifest m;
    memset(&m, 0, sizeof(m));
    snprintf(m.domain_name, sizeof(m.domain_name), "%s", domain);
    snprintf(m.domain_uuid, sizeof(m.domain_uuid), "0b2c3d4e-0000-4000-8000-000000000001");
    m.created_ns = now_realtime_ns();
    m.mode = MANIFEST_MODE_STOP;
    m.state = MANIFEST_STATE_SAVE;
    snprintf(m.image_id, sizeof(m.image_id), "%s", id);
    m.n_connections = (uint32_t)n;
    snprintf(m.taps[0], sizeof(m.taps[0]), "nctap0");
    m.n_taps = 1;
    m.counters.to_guest_pkts = 4;
    m.counters.to_guest_bytes = 240;
    manifest_add_step(&m, "discover", 1000000);
    manifest_add_step(&m, "save", 2000000000);
    if (r == 0)
        r = bundle_commit(&b, &m);
    free(img);
    if (r < 0) {
        fprintf(stderr, "mkbundle: %s\n", strerror(-r));
        bundle_abort(&b);
        return 1;
    }
    if (image_out) {
        char id2[33];
        char *other = make_image(n, id2);
        if (!other || write_file_atomic(image_out, other, strlen(other), 0644) < 0) {
            fprintf(stderr, "mkbundle: cannot write %s\n", image_out);
            free(other);
            return 1;
        }
        free(other);
    }
    printf("%s\n", id);
    return 0;
}
