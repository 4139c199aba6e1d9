/* guest/tcp-retrans.c: see tcp-retrans.h. */
#include "guest/tcp-retrans.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "guest/sock-diag.h"
#include "guest/socket-image.h"

/* The states that carry a stream (as the freeze's); SYN_SENT retransmits SYNs, which is a
 * peer that does not answer, not a connection in trouble. */
#define STATES                                                                                     \
    ((1u << TCP_ESTABLISHED) | (1u << TCP_FIN_WAIT1) | (1u << TCP_FIN_WAIT2) |                     \
     (1u << TCP_CLOSE_WAIT) | (1u << TCP_LAST_ACK) | (1u << TCP_CLOSING))

/* The fields of struct tcp_info we read, at their offsets; a short tcp_info reads as 0. */
static void info_fields(const void *p, size_t len, uint8_t *retransmits, uint8_t *probes,
                        uint8_t *backoff, uint32_t *unacked)
{
    struct tcp_info ti;
    memset(&ti, 0, sizeof(ti));
    memcpy(&ti, p, len < sizeof(ti) ? len : sizeof(ti));
    *retransmits = ti.tcpi_retransmits;
    *probes = ti.tcpi_probes;
    *backoff = ti.tcpi_backoff;
    *unacked = ti.tcpi_unacked;
}

bool tcp_retrans_is_probing(const void *tcp_info, size_t len)
{
    uint8_t rx, pr, bo;
    uint32_t un;
    info_fields(tcp_info, len, &rx, &pr, &bo, &un);
    return pr > 0 && rx == 0 && !(bo > 0 && un > 0);
}

bool tcp_retrans_is_retransmitting(const void *tcp_info, size_t len)
{
    uint8_t rx, pr, bo;
    uint32_t un;
    info_fields(tcp_info, len, &rx, &pr, &bo, &un);
    return rx > 0 || (bo > 0 && un > 0) || pr > 0;
}

int tcp_retrans_count(struct tcp_retrans_count *out)
{
    memset(out, 0, sizeof(*out));
    _cleanup_(local_addrs_free) struct local_addrs la = {0};
    int r = socket_image_local_addrs(&la);
    if (r < 0)
        return r;
    _cleanup_free_ struct sock_diag_tcp *v = NULL;
    size_t n = 0;
    r = sock_diag_tcp_list_info(STATES, &v, &n);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        const struct sock_diag_tcp *e = &v[i];
        if (!(STATES & SOCK_DIAG_STATE_BIT(e->state)))
            continue;
        if (socket_image_classify(&la, &e->remote))
            continue; /* both ends in the guest */
        out->connections++;
        if (!e->tcp_info_len)
            continue;
        if (tcp_retrans_is_retransmitting(e->tcp_info, e->tcp_info_len))
            out->retransmitting++;
        if (tcp_retrans_is_probing(e->tcp_info, e->tcp_info_len))
            out->probing++;
    }
    return 0;
}
