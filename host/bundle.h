/* host/bundle.h: checkpoint bundles, a directory written atomically (".<name>.partial", each
 * file fsync'd, manifest.xml last, rename, fsync of the parent), and the manifest.xml that
 * describes it (schemas/checkpoint.rng, see docs/bundle.md).
 *
 * Opening a bundle verifies it completely: the manifest is validated against the RelaxNG
 * schema (compiled into the library from schemas/checkpoint.rng), every listed file exists
 * with its size and sha256, no unlisted file is present, sizes are within limits. A bundle
 * that is partial, corrupt or tampered with is refused with a message saying what is wrong. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BUNDLE_MANIFEST         "manifest.xml"
#define BUNDLE_SOCKET_IMAGE     "socket-image.json"
#define BUNDLE_DOMAIN_XML       "domain.xml"
#define BUNDLE_VM_STATE         "vm.state"
#define BUNDLE_PARTIAL_SUFFIX   ".partial"
#define BUNDLE_MAX_FILES        16
#define BUNDLE_MAX_STEPS        32
#define BUNDLE_MAX_TAPS         16
#define BUNDLE_MANIFEST_MAX     (1u << 20)
#define BUNDLE_SOCKET_IMAGE_MAX (1u << 30) /* the most agent/qga-client accepts */
#define BUNDLE_FILE_NAME_MAX    64

enum manifest_mode { MANIFEST_MODE_STOP, MANIFEST_MODE_CONTINUE };
enum manifest_state { MANIFEST_STATE_SAVE, MANIFEST_STATE_SNAPSHOT };

/* The gate's dropped-packet counters (same meaning as struct gate_counters). */
struct manifest_counters {
    uint64_t to_guest_pkts, to_guest_bytes, from_guest_pkts, from_guest_bytes;
};

struct manifest_file {
    char name[BUNDLE_FILE_NAME_MAX]; /* [A-Za-z0-9._-], no leading dot, no slash */
    uint64_t size;
    char sha256[65];
};

struct manifest_step {
    char name[32]; /* discover, gate, freeze, save, commit, resume, thaw, ... */
    uint64_t duration_ns;
};

struct manifest {
    char domain_name[256];
    char domain_uuid[37];
    uint64_t created_ns; /* CLOCK_REALTIME */
    enum manifest_mode mode;
    enum manifest_state state;
    char snapshot_name[256]; /* MANIFEST_STATE_SNAPSHOT: the libvirt snapshot holding memory */
    char image_id[65];       /* the socket image's id, from the agent */
    uint32_t n_connections;  /* connections in the socket image */
    char taps[BUNDLE_MAX_TAPS][16];
    size_t n_taps;
    struct manifest_counters counters;
    struct manifest_file files[BUNDLE_MAX_FILES]; /* filled by bundle_commit */
    size_t n_files;
    struct manifest_step steps[BUNDLE_MAX_STEPS];
    size_t n_steps;
    char netckpt_version[32]; /* bundle_commit fills it when empty */
    char libvirt_version[32];
};

/* A bundle being written. Zero it or bundle_begin it; bundle_abort is always safe. */
struct bundle {
    char path[4096];     /* final path */
    char tmp_path[4096]; /* <parent>/.<name>.partial */
    struct manifest_file files[BUNDLE_MAX_FILES];
    size_t n_files;
    bool active;
};

/* Valid bundle file name (see struct manifest_file). */
bool bundle_file_name_valid(const char *name);
/* Record a step's duration (drops it when the table is full). */
void manifest_add_step(struct manifest *m, const char *name, uint64_t duration_ns);
const char *manifest_mode_name(enum manifest_mode m);

/* Start a bundle at path: -EEXIST when path exists, -EBUSY when a partial one of the same name
 * exists (an interrupted checkpoint: remove it first). Creates the parent directory. */
int bundle_begin(const char *path, struct bundle *b);
/* The path inside the partial directory where name is to be written by someone else (e.g.
 * virDomainSaveFlags); register it afterwards with bundle_add_file(b, name, NULL). */
int bundle_file_path(const struct bundle *b, const char *name, char *buf, size_t len);
/* Add a file: copy src into the bundle, or (src NULL) register the file already written at
 * bundle_file_path. The file is fsync'd and hashed. */
int bundle_add_file(struct bundle *b, const char *name, const char *src);
int bundle_add_buffer(struct bundle *b, const char *name, const void *buf, size_t len);
/* Write manifest.xml (m->files is filled from the bundle, the versions when empty), fsync it
 * and the directory, rename to the final path, fsync the parent. On failure before the rename
 * the partial directory is removed; an error from the parent's fsync comes after the rename
 * (b->active is then false: the bundle is complete, its rename maybe not yet durable). */
int bundle_commit(struct bundle *b, struct manifest *m);
/* Remove the partial directory. */
void bundle_abort(struct bundle *b);

/* Verify the bundle at path completely and read its manifest. 0, or -EINVAL (corrupt or
 * tampered), -ENOENT (missing or partial), -EFBIG (over a size limit), with err filled. */
int bundle_open_verify(const char *path, struct manifest *m, char *err, size_t errlen);

/* The manifest as XML (caller frees) and back. from_xml validates against the schema. */
int manifest_to_xml(const struct manifest *m, char **out);
int manifest_from_xml(const char *xml, size_t len, struct manifest *m, char *err, size_t errlen);
/* Validate XML against a RelaxNG schema file, or the compiled-in checkpoint.rng when rng_path
 * is NULL. 0, or -EINVAL with err filled with the first problems. */
int manifest_validate(const char *xml, size_t len, const char *rng_path, char *err, size_t errlen);
