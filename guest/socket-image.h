/* guest/socket-image.h: the socket image, what guest-net-freeze returns and bundles store.
 *
 * Owns the in-memory image (struct socket_image), its JSON form (json-c), the strict parser
 * the host uses on what the untrusted guest sends (every field type- and range-checked, queue
 * bytes base64 with a sha256 each, size limits), and the diff guest-net-verify reports. The
 * format is documented in docs/socket-image.md and schemas/socket-image.schema.json.
 * Also the intra-guest test: which connections have both ends inside the guest.
 *
 * Functions return 0 (or a count) on success and -errno on failure. */
#pragma once
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guest/proc-owner.h"
#include "guest/tcp-repair.h"

#define SOCKET_IMAGE_FORMAT  "netckpt-socket-image"
#define SOCKET_IMAGE_VERSION 1

/* Limits enforced by the parser (and respected by the writer). */
#define SOCKET_IMAGE_MAX_CONNS       65536u
#define SOCKET_IMAGE_MAX_SKIPPED     65536u
#define SOCKET_IMAGE_MAX_OWNERS      4096u                /* per connection */
#define SOCKET_IMAGE_MAX_QUEUE       TCP_REPAIR_MAX_QUEUE /* per queue, decoded */
#define SOCKET_IMAGE_MAX_TOTAL_QUEUE (1024ull << 20)      /* all queues, decoded */
#define SOCKET_IMAGE_MAX_JSON        (1024ull << 20) /* socket_image_parse input (as the agent link) */
#define SOCKET_IMAGE_MAX_DEPTH       16              /* JSON nesting */

struct image_conn {
    uint32_t id;
    uint64_t inode;
    struct sock_owner *owners;
    size_t n_owners;
    struct tcp_conn_state st;
};

/* Why a socket was recorded but not frozen. */
#define SKIP_LOOPBACK    "loopback"
#define SKIP_INTRA_GUEST "intra-guest"
#define SKIP_LISTEN      "listen"
#define SKIP_NOT_OWNED   "not-owned"

struct image_skipped {
    struct tcp_endpoint local, remote;
    uint8_t state;
    const char *reason; /* one of the SKIP_* strings (static, never freed) */
};

struct socket_image {
    char image_id[33]; /* 32 lowercase hex */
    char boot_id[37];  /* /proc/sys/kernel/random/boot_id, a lowercase uuid */
    char hostname[65];
    uint64_t monotonic_ns, realtime_ns;
    struct image_conn *conns;
    size_t n_conns;
    struct image_skipped *skipped;
    size_t n_skipped;
};

/* Fill the header: a fresh image_id, boot id, hostname and both clocks. */
int socket_image_init_header(struct socket_image *img);

/* NULL on allocation failure (or a queue that cannot be encoded). */
json_object *socket_image_to_json(const struct socket_image *img);

/* Strict parse: on failure returns -EINVAL (-ENOMEM, -E2BIG for limits), writes a message
 * naming the offending field into err, and leaves *out empty (nothing to free). */
int socket_image_from_json(json_object *j, struct socket_image *out, char *err, size_t errlen);

/* Tokenise (depth- and size-limited) then socket_image_from_json. */
int socket_image_parse(const char *buf, size_t len, struct socket_image *out, char *err,
                       size_t errlen);

/* Compare an image with the live frozen state; connections are matched by their 4-tuple.
 * *differences gets a JSON array of {"connection","field","expected","live"} objects.
 * Returns the number of differences (0: they match) or -errno. */
int socket_image_diff(const struct socket_image *expected, const struct socket_image *live,
                      json_object **differences);

void socket_image_free(struct socket_image *img);

/* The guest's own addresses (getifaddrs; IPv4 stored v4-mapped), for intra-guest detection. */
struct local_addrs {
    struct in6_addr *v;
    size_t n;
};
int socket_image_local_addrs(struct local_addrs *la);
void local_addrs_free(struct local_addrs *la);

/* Why a connection stays out of the image: SKIP_LOOPBACK if the remote end is a loopback
 * address, SKIP_INTRA_GUEST if it is one of la's, else NULL (an external peer). */
const char *socket_image_classify(const struct local_addrs *la, const struct tcp_endpoint *remote);

/* "1.2.3.4" for AF_INET endpoints, inet_ntop(AF_INET6) otherwise ("::ffff:1.2.3.4" for
 * v4-mapped). buf needs INET6_ADDRSTRLEN. */
const char *tcp_endpoint_addr_str(const struct tcp_endpoint *ep, char *buf, size_t len);
