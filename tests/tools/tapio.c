/* tests/tools/tapio.c: the guest end of a real tap for the gate tests. Attaches to an existing
 * tap (TUNSETIFF, IFF_TAP|IFF_NO_PI), which brings its carrier up, prints "attached", writes
 * N broadcast frames into the host (the tap's ingress), then counts the frames the host sends
 * to it (the tap's egress) for S seconds and prints "received=COUNT".
 * usage: tapio IFNAME N S */
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 4 || strlen(argv[1]) >= IFNAMSIZ) {
        fprintf(stderr, "usage: tapio IFNAME N SECONDS\n");
        return 2;
    }
    int n = atoi(argv[2]), secs = atoi(argv[3]);
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        perror("tapio: /dev/net/tun");
        return 2;
    }
    struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI};
    memcpy(ifr.ifr_name, argv[1], strlen(argv[1]));
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        perror("tapio: TUNSETIFF");
        return 2;
    }
    printf("attached\n");
    fflush(stdout);

    /* Broadcast, locally administered source, the IEEE local-experimental ethertype. */
    unsigned char frame[60] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
                               0x00, 0x00, 0x00, 0x00, 0x01, 0x88, 0xb5};
    for (int i = 0; i < n; i++) {
        frame[14] = (unsigned char)i;
        if (write_full(fd, frame, sizeof(frame)) < 0) {
            perror("tapio: write");
            return 2;
        }
    }

    uint64_t end = now_monotonic_ns() + (uint64_t)secs * 1000000000ull;
    unsigned long received = 0;
    for (;;) {
        uint64_t now = now_monotonic_ns();
        if (now >= end)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)((end - now) / 1000000) + 1);
        if (r < 0 && errno != EINTR) {
            perror("tapio: poll");
            return 2;
        }
        if (r > 0) {
            unsigned char buf[65536];
            if (read(fd, buf, sizeof(buf)) > 0)
                received++;
        }
    }
    printf("received=%lu\n", received);
    close(fd);
    return 0;
}
