/* common/util.h: I/O, time, hashing and encoding helpers shared by host and guest.
 * Owns nothing stateful; every function is reentrant. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Write all of buf, retrying on EINTR and short writes. 0 or -errno. */
int write_full(int fd, const void *buf, size_t len);
/* Read exactly len bytes. 0, -EPIPE on early EOF, or -errno. */
int read_full(int fd, void *buf, size_t len);
/* Read a whole file into a NUL-terminated buffer, refusing files over max bytes (-EFBIG). */
int read_file(const char *path, size_t max, char **out, size_t *out_len);
/* Write a file atomically: temp file in the same directory, fsync, rename, fsync dir. */
int write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode);
/* fsync a directory by path. */
int fsync_dir(const char *path);
/* mkdir -p. -ENOTDIR when path (or a parent) exists but is not a directory. */
int mkdir_p(const char *path, mode_t mode);
/* rm -rf of a directory we own (no symlink following). */
int rm_rf(const char *path);

uint64_t now_monotonic_ns(void);
uint64_t now_realtime_ns(void);

/* sha256 as 64 lowercase hex chars plus NUL. */
#define SHA256_HEX_LEN 65
void sha256_hex(const void *buf, size_t len, char out[SHA256_HEX_LEN]);
int sha256_file_hex(const char *path, char out[SHA256_HEX_LEN]);

/* base64 (RFC 4648, padded). Caller frees. Decode refuses bad input with -EINVAL. */
char *base64_encode(const void *buf, size_t len);
int base64_decode(const char *in, size_t in_len, uint8_t **out, size_t *out_len);

/* vsnprintf into a caller's optional message buffer: nothing when err is NULL or errlen 0. */
void set_errbuf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Append one item to a "; "-separated list in buf (NUL-terminated, len bytes), truncating
 * rather than overflowing: the warnings and rollback-error lists of the transactions. */
void append_listf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* 16 random bytes as 32 hex chars plus NUL, from getrandom(). */
int random_id(char out[33]);

/* Connect a blocking SOCK_STREAM|SOCK_CLOEXEC UNIX socket to path. timeout_ms > 0 sets
 * SO_SNDTIMEO first, so a peer with a full backlog fails with -ETIMEDOUT instead of blocking.
 * Returns the fd, -ENAMETOOLONG when path does not fit sun_path, or -errno. */
int unix_connect(const char *path, int timeout_ms);

/* Block the n signals in sigs for the calling thread (and the threads it starts later),
 * ignore SIGPIPE, and return a non-blocking, close-on-exec signalfd for them, or -errno. */
int signalfd_block(const int *sigs, size_t n);
