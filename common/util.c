/* common/util.c: see util.h. */
#include "common/util.h"
#include "common/macro.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>

int write_full(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return negative_errno();
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return negative_errno();
        }
        if (n == 0)
            return -EPIPE;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int read_file(const char *path, size_t max, char **out, size_t *out_len)
{
    if (max >= SIZE_MAX - 1)
        return -EINVAL;
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return negative_errno();
    size_t cap = 4096, len = 0;
    _cleanup_free_ char *buf = malloc(cap + 1);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        if (len == cap) {
            if (cap >= max + 1)
                return -EFBIG;
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb)
                return -ENOMEM;
            buf = nb;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return negative_errno();
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max)
            return -EFBIG;
    }
    buf[len] = 0;
    if (out_len)
        *out_len = len;
    *out = TAKE_PTR(buf);
    return 0;
}

int fsync_dir(const char *path)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return negative_errno();
    return fsync(fd) < 0 ? negative_errno() : 0;
}

int write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return negative_errno();
    int r = write_full(fd, buf, len);
    if (r >= 0 && fchmod(fd, mode) < 0)
        r = negative_errno();
    if (r >= 0 && fsync(fd) < 0)
        r = negative_errno();
    if (r >= 0 && rename(tmp, path) < 0)
        r = negative_errno();
    if (r < 0) {
        unlink(tmp);
        return r;
    }
    _cleanup_free_ char *dir = strdup(path);
    if (!dir)
        return -ENOMEM;
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    return fsync_dir(slash ? (dir[0] ? dir : "/") : ".");
}

int mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return negative_errno();
        *p = '/';
    }
    if (mkdir(buf, mode) < 0) {
        if (errno != EEXIST)
            return negative_errno();
        /* EEXIST is success only for a directory (or a link to one), not a file. */
        struct stat st;
        if (stat(buf, &st) < 0)
            return negative_errno();
        if (!S_ISDIR(st.st_mode))
            return -ENOTDIR;
    }
    return 0;
}

static int rm_rf_at(int dirfd)
{
    DIR *d = fdopendir(dirfd);
    if (!d) {
        close(dirfd);
        return negative_errno();
    }
    int r = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        bool is_dir = de->d_type == DT_DIR;
        if (de->d_type == DT_UNKNOWN) { /* filesystems that do not fill d_type */
            struct stat st;
            is_dir =
                fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
        }
        if (is_dir) {
            int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0) {
                int q = rm_rf_at(sub);
                if (q < 0 && r == 0)
                    r = q;
            }
            if (unlinkat(dirfd, de->d_name, AT_REMOVEDIR) < 0 && r == 0)
                r = negative_errno();
        } else if (unlinkat(dirfd, de->d_name, 0) < 0 && r == 0) {
            r = negative_errno();
        }
    }
    closedir(d);
    return r;
}

int rm_rf(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : negative_errno();
    int r = rm_rf_at(fd);
    if (rmdir(path) < 0 && r == 0)
        r = negative_errno();
    return r;
}

static uint64_t clock_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t now_monotonic_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

uint64_t now_realtime_ns(void)
{
    return clock_ns(CLOCK_REALTIME);
}

static void hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = 0;
}

void sha256_hex(const void *buf, size_t len, char out[SHA256_HEX_LEN])
{
    uint8_t md[32];
    unsigned int mdlen = sizeof(md);
    EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL);
    hex(md, 32, out);
}

int sha256_file_hex(const char *path, char out[SHA256_HEX_LEN])
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return negative_errno();
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return -ENOMEM;
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    static const size_t chunk = 1 << 20;
    _cleanup_free_ char *buf = malloc(chunk);
    int r = buf ? 0 : -ENOMEM;
    while (r == 0) {
        ssize_t n = read(fd, buf, chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            r = negative_errno();
        else if (n == 0)
            break;
        else
            EVP_DigestUpdate(ctx, buf, (size_t)n);
    }
    uint8_t md[32];
    unsigned int mdlen = sizeof(md);
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    if (r == 0)
        hex(md, 32, out);
    return r;
}

char *base64_encode(const void *buf, size_t len)
{
    if (len > (SIZE_MAX / 4) * 3 - 4 || len > INT_MAX)
        return NULL;
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (!out)
        return NULL;
    EVP_EncodeBlock((unsigned char *)out, buf, (int)len);
    return out;
}

int base64_decode(const char *in, size_t in_len, uint8_t **out, size_t *out_len)
{
    if (in_len % 4 != 0 || in_len > INT_MAX)
        return -EINVAL;
    for (size_t i = 0; i < in_len; i++) {
        char c = in[i];
        /* '=' only as trailing padding: "AB=C" is not base64. */
        bool pad = c == '=' && i >= in_len - 2 && in[in_len - 1] == '=';
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '/' || pad;
        if (!ok)
            return -EINVAL;
    }
    _cleanup_free_ uint8_t *buf = malloc(in_len / 4 * 3 + 1);
    if (!buf)
        return -ENOMEM;
    int n = in_len ? EVP_DecodeBlock(buf, (const unsigned char *)in, (int)in_len) : 0;
    if (n < 0)
        return -EINVAL;
    /* EVP_DecodeBlock counts padding as zero bytes; take them back off. */
    if (in_len >= 1 && in[in_len - 1] == '=')
        n--;
    if (in_len >= 2 && in[in_len - 2] == '=')
        n--;
    *out_len = (size_t)n;
    *out = TAKE_PTR(buf);
    return 0;
}

int random_id(char out[33])
{
    uint8_t b[16];
    size_t got = 0;
    while (got < sizeof(b)) {
        ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return negative_errno();
        }
        got += (size_t)n;
    }
    hex(b, sizeof(b), out);
    return 0;
}

void set_errbuf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void append_listf(char *buf, size_t len, const char *fmt, ...)
{
    size_t used = strnlen(buf, len);
    if (used + 1 >= len)
        return;
    if (used)
        used += (size_t)snprintf(buf + used, len - used, "; ");
    if (used + 1 >= len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, len - used, fmt, ap);
    va_end(ap);
}

int unix_connect(const char *path, int timeout_ms)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return negative_errno();
    if (timeout_ms > 0) {
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
            return negative_errno();
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        /* With SO_SNDTIMEO a full backlog shows up as EAGAIN. */
        if (timeout_ms > 0 && (errno == EAGAIN || errno == EINPROGRESS))
            return -ETIMEDOUT;
        return negative_errno();
    }
    return TAKE_FD(fd);
}

int signalfd_block(const int *sigs, size_t n)
{
    sigset_t mask;
    sigemptyset(&mask);
    for (size_t i = 0; i < n; i++)
        if (sigaddset(&mask, sigs[i]) < 0)
            return negative_errno();
    int r = pthread_sigmask(SIG_BLOCK, &mask, NULL);
    if (r != 0)
        return -r;
    signal(SIGPIPE, SIG_IGN);
    int fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    return fd < 0 ? negative_errno() : fd;
}
