/* common/inet-csum.c: see inet-csum.h. */
#include "common/inet-csum.h"

uint32_t inet_sum(const void *buf, size_t len, uint32_t sum)
{
    const uint8_t *p = buf;
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += get_be16(p + i);
    if (len & 1)
        sum += (uint32_t)p[len - 1] << 8;
    return sum;
}

uint16_t inet_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)sum;
}

uint16_t inet_csum_finish(uint32_t sum)
{
    return (uint16_t)~inet_fold(sum);
}

uint16_t inet_csum(const void *buf, size_t len)
{
    return inet_csum_finish(inet_sum(buf, len, 0));
}

uint32_t inet_pseudo_sum(const uint8_t *src, const uint8_t *dst, size_t alen, uint8_t proto,
                         uint32_t l4len)
{
    uint32_t s = inet_sum(dst, alen, inet_sum(src, alen, 0));
    return s + proto + (l4len & 0xffff) + (l4len >> 16);
}
