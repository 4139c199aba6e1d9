/* host/peer-probe.h: make the peers of connections the guest just reset hear the reset.
 *
 * After a rollback the guest's sockets are behind their peers. Destroying them in the guest
 * (guest-net-reset-stale) sends an RST at the guest's old snd_nxt, which a peer that already
 * received more from the guest takes as out of its window and drops in silence (measured on
 * Linux 6.18: no challenge ACK). Owns one probe per connection: a bare ACK from the guest's
 * address and port to the peer's, one below the sequence the guest had acknowledged at the
 * checkpoint, without options. Such a segment is never acceptable to the peer, so it answers
 * with its current ACK; the guest, with no socket left for that 4-tuple, answers that with an
 * RST carrying exactly the peer's expected sequence, which the peer accepts (ECONNRESET).
 * The probes leave through the host's own stack (raw socket, the caller's network namespace:
 * the one holding the tap), so they need a route to the peers from there. See
 * docs/rollback.md. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

/* Build the probe for one connection (IPv4 or IPv6 header plus a 20-byte TCP header, checksum
 * set) into buf. local: the guest's endpoint, remote: the peer's; "::ffff:a.b.c.d" counts as
 * IPv4. seq: the guest's snd_una at the checkpoint (the probe carries seq-1), ack: its
 * rcv_nxt. Returns the length, -EINVAL for bad addresses or families that differ, -ENOSPC. */
int peer_probe_build(const char *local, uint16_t lport, const char *remote, uint16_t rport,
                     uint32_t seq, uint32_t ack, uint8_t *buf, size_t len);

/* Send one probe for each connection of a (validated) socket image. Returns the number sent,
 * or -errno when none could be (no raw socket: CAP_NET_RAW); err names the first failure. */
int peer_probe_image(json_object *image, char *err, size_t errlen);
