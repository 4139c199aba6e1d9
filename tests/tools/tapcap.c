/* tests/tools/tapcap.c: the guest end of a real tap for the replay tests. Attaches to an
 * existing tap (TUNSETIFF, IFF_TAP|IFF_NO_PI; carrier up), prints "attached", then keeps every
 * unicast frame the host sends to the guest until it has MAX of them, SECONDS pass, or SIGTERM
 * comes, and writes them to OUT as a pcap file (host/replay's writer). Group-addressed frames
 * (IGMP reports, ARP requests a bridge or the host floods) are not counted or kept: the tests
 * are about the unicast frames for the guest. It never writes into the tap.
 * usage: tapcap IFNAME OUT.pcap MAX SECONDS */
#include "host/replay.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 5 || strlen(argv[1]) >= IFNAMSIZ) {
        fprintf(stderr, "usage: tapcap IFNAME OUT.pcap MAX SECONDS\n");
        return 2;
    }
    long max = atol(argv[3]), secs = atol(argv[4]);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0 || sfd < 0) {
        perror("tapcap: open");
        return 2;
    }
    struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI};
    memcpy(ifr.ifr_name, argv[1], strlen(argv[1]));
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        perror("tapcap: TUNSETIFF");
        return 2;
    }
    struct replay_buf b;
    replay_buf_init(&b, REPLAY_MAX_LIMIT);
    printf("attached\n");
    fflush(stdout);

    static unsigned char frame[65536];
    uint64_t end = now_monotonic_ns() + (uint64_t)secs * 1000000000ull;
    while ((long)b.n < max) {
        uint64_t now = now_monotonic_ns();
        if (now >= end)
            break;
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
        int r = poll(p, 2, (int)((end - now) / 1000000) + 1);
        if (r < 0 && errno != EINTR) {
            perror("tapcap: poll");
            return 2;
        }
        if (p[1].revents & POLLIN)
            break;
        if (r > 0 && (p[0].revents & POLLIN)) {
            ssize_t n = read(fd, frame, sizeof(frame));
            if (n >= (ssize_t)REPLAY_MIN_FRAME && n <= (ssize_t)REPLAY_MAX_FRAME && !(frame[0] & 1))
                replay_buf_add(&b, now_realtime_ns(), frame, (size_t)n);
        }
    }
    int r = replay_pcap_write(&b, argv[2]);
    if (r < 0) {
        fprintf(stderr, "tapcap: writing %s: %s\n", argv[2], strerror(-r));
        return 2;
    }
    printf("received=%zu\n", b.n);
    replay_buf_free(&b);
    close(fd);
    return 0;
}
