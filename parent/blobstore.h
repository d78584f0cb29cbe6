/*
 * blobstore.h: the parent's sealed-blob store (DESIGN §2, §8; PROTOCOL.md
 * "Parent ↔ enclave channel", control service): where the enclave keeps its
 * journal and other state it sealed itself. The parent cannot read what it
 * stores (ciphertext under keys that never leave an enclave) and decides
 * nothing from the content: it only enforces names, sizes and quotas.
 *
 * Layout: DIR/<instance id>/<name>, one file per blob, directories 0700,
 * files 0600. Rules:
 *   - append-only per instance id: a name is written once; a PUT of an
 *     existing name is refused (APP_EEXIST), never overwritten; nothing is
 *     ever deleted through the channel.
 *   - durable before acknowledged: the blob is written to a temporary file,
 *     fsync'ed, linked to its name (link(2) fails on an existing name, so
 *     two racing PUTs cannot both win), the temporary unlinked, and the
 *     instance directory fsync'ed, all before blobstore_put returns 0.
 *   - quotas per instance: total bytes and number of blobs; the largest
 *     blob is max_blob (<= CTLMSG_BLOB_MAX).
 *   - names and ids: appliance/ctlmsg.h (1..128 / 1..64 bytes of
 *     [A-Za-z0-9._-], not starting with '.'); temporary files start with
 *     '.' and are never listed, read, or counted (left-overs of a crash are
 *     removed when the instance is first used).
 * Thread-safe (one lock).
 */
#ifndef PARENT_BLOBSTORE_H
#define PARENT_BLOBSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/ctlmsg.h"
#include "appliance/err.h"

#define BLOBSTORE_INSTANCES_MAX 64 /* instance ids served by one store */

struct blobstore_config {
	const char *dir;         /* created (0700) if missing */
	uint64_t max_bytes;      /* per instance (default 1 GiB) */
	uint64_t max_blobs;      /* per instance (default 100000) */
	size_t max_blob;         /* bytes of one blob, 1..CTLMSG_BLOB_MAX (default CTLMSG_BLOB_MAX) */
};

struct blobstore_entry {
	char name[CTLMSG_NAME_MAX + 1];
	uint64_t size;
};

struct blobstore_stats {
	uint64_t puts, gets, lists;  /* successful operations */
	uint64_t refused;            /* exists, quota, too big, bad name */
	uint64_t fsyncs;             /* fsync calls made (file + directory per put) */
};

struct blobstore;

/*
 * blobstore_open: the store rooted at cfg->dir (copied). Returns 0; APP_EINVAL
 * (NULL dir, caps out of range); APP_EIO (cannot create or open dir);
 * APP_ENOMEM.
 */
int blobstore_open(struct blobstore **out, const struct blobstore_config *cfg) APP_WUR;

/* blobstore_close: frees; NULL is a no-op. */
void blobstore_close(struct blobstore *s);

/*
 * blobstore_put: stores data[0..len) as instance/name, durably (above).
 * Returns 0; APP_EINVAL (bad instance id or name); APP_EEXIST; APP_ETOOBIG
 * (len > max_blob); APP_ELIMIT (a quota: BLOBSTORE_INSTANCES_MAX instances,
 * bytes or blobs); APP_EIO.
 */
int blobstore_put(struct blobstore *s, const char *instance, const char *name, const uint8_t *data, size_t len) APP_WUR;

/*
 * blobstore_get: the blob instance/name into a new buffer (*data, free with
 * free(); non-NULL for 0 bytes). Returns 0; APP_EINVAL; APP_ENOTFOUND;
 * APP_ETOOBIG (the file grew past max_blob: tampered with on disk);
 * APP_EIO; APP_ENOMEM.
 */
int blobstore_get(struct blobstore *s, const char *instance, const char *name, uint8_t **data, size_t *len) APP_WUR;

/*
 * blobstore_list: up to max entries (1..CTLMSG_LIST_MAX) of instance whose
 * names sort after `after` (byte order; NULL or "" = from the start), in
 * order, into out[0..*n); *more = 1 when more follow. An unknown instance
 * lists as empty. Returns 0; APP_EINVAL; APP_EIO.
 */
int blobstore_list(struct blobstore *s, const char *instance, const char *after, struct blobstore_entry *out,
		   size_t max, size_t *n, int *more) APP_WUR;

/* blobstore_usage: bytes and blobs stored for instance. Returns 0, APP_EINVAL, APP_EIO. */
int blobstore_usage(struct blobstore *s, const char *instance, uint64_t *bytes, uint64_t *blobs) APP_WUR;

/* blobstore_get_stats: a snapshot of the counters. */
void blobstore_get_stats(struct blobstore *s, struct blobstore_stats *out);

#endif
