/* common/inet-csum.h: the Internet checksum (RFC 1071) and the big-endian field access that
 * packets built or checked by hand need (guest ICMP kicks and repair injections, host peer
 * probes, replay's frame repair and segmentation, their tests). Owns only the arithmetic:
 * no header layouts, no state. */
#pragma once
#include <stddef.h>
#include <stdint.h>

static inline uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
    put_be16(p, (uint16_t)(v >> 16));
    put_be16(p + 2, (uint16_t)v);
}

/* Add len bytes as big-endian 16-bit words to sum (an odd tail is padded with zero). Chain
 * calls for several pieces; every piece but the last must have an even length. */
uint32_t inet_sum(const void *buf, size_t len, uint32_t sum);
/* Fold the carries: the one's-complement sum, not yet complemented. */
uint16_t inet_fold(uint32_t sum);
/* The checksum field's value for a running sum: ~inet_fold(sum). */
uint16_t inet_csum_finish(uint32_t sum);
/* The checksum of one buffer; 0 when buf holds a correct checksum already. */
uint16_t inet_csum(const void *buf, size_t len);
/* The TCP/UDP pseudo-header sum: source and destination (alen 4 or 16 bytes each), protocol
 * and the L4 length. */
uint32_t inet_pseudo_sum(const uint8_t *src, const uint8_t *dst, size_t alen, uint8_t proto,
                         uint32_t l4len);
