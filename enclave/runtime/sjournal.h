/*
 * sjournal.h: the sealed journal (DESIGN §8; PROTOCOL.md "Sealed journal
 * and checkpoints"): a struct journal_backend (enclave/runtime/journal.h) whose
 * records are sealed with the disk key and kept in an untrusted store (the
 * parent's sealed-blob store, or a local directory), with the disk key and
 * a checkpoint {epoch, head} kept in keystores (appliance-keystore).
 *
 * Stored record (one blob per record, named "journal-" + 20-digit sequence
 * number, so that byte order is sequence order; other names in the store
 * are not the journal's and are left alone):
 *   offset size
 *   0      4    magic "APJ1"
 *   4      16   instance id (random, made with the disk key)
 *   20     8    sequence number, big-endian, 1, 2, ...
 *   28     32   hash of the previous record: SHA-256 of its whole blob
 *               (32 zero bytes for record 1)
 *   60     ...  the record line sealed (appliance/sealed.h) with the disk key,
 *               additional data = "appliance-journal-v1" || bytes 4..60
 *               (instance id || sequence number || previous hash)
 * A record is durable (the store's put returned: the parent fsynced it)
 * before journal_append returns, so the daemon acts only on stored records.
 *
 * Keystore data (<= KSRPC_DATA_MAX, set with epoch = the checkpoint epoch):
 *   "ajk1 INSTANCE KEY EPOCH HEAD"   (hex 32, hex 64, decimal, hex 64)
 * where EPOCH is the number of records when the checkpoint was made and
 * HEAD the hash of record EPOCH (zeros for 0). Keystores refuse a lower
 * epoch than they hold (anti-rollback), so the newest checkpoint wins.
 *
 * Start (sjournal_open), in rounds until it can decide:
 *   1. ask every keystore (get, with the release signatures for this build);
 *   2. some keystore found the key: all that found it must agree on key and
 *      instance (else: refused); the highest checkpoint is used;
 *      every keystore answered a definitive "not found" (and there is at
 *      least one): a new key and instance id are made, but only when the
 *      store holds no record (else: refused, nothing written), and stored in
 *      the keystores before the first record;
 *      otherwise (no answer, errors, refusals): wait (retry_min_ms doubling
 *      to retry_max_ms) and ask again; never a new key;
 *   3. replay: every record is fetched and checked: name and sequence
 *      contiguous from 1 (a gap: refused), instance id ours (another
 *      instance's journal: refused), sequence number = position (reordered:
 *      refused), previous hash = hash of the record before (replaced or
 *      reordered: refused), the seal opens (bad tag: refused), at least
 *      EPOCH records and record EPOCH hashes to HEAD (older than the
 *      checkpoint, or replaced: refused, APP_EROLLBACK).
 * A refusal returns an error naming the reason; nothing is written to the
 * store or the keystores. After a successful start, keystores that did not
 * hold the checkpoint (or held an older one, or hold the key only under the
 * previous build's PCRs after an upgrade) get it at once.
 *
 * Checkpoints: a thread (sjournal_start) stores {epoch, head} in every
 * keystore every checkpoint_interval_s, and right after each record the
 * classifier marks (default: ledger records that move money, "L1 ... paid",
 * "debit", "credit"), re-discovering keystores that restarted.
 *
 * Secrets: the disk key lives in sodium_malloc memory, wiped on free; logs
 * carry sequence numbers, instance id prefixes and keystore prefixes only.
 */
#ifndef ENCLAVE_SJOURNAL_H
#define ENCLAVE_SJOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"
#include "enclave/runtime/journal.h"
#include "enclave/runtime/ksclient.h"

struct parentlink;

#define SJ_MAGIC "APJ1"
#define SJ_HEADER_LEN 60
#define SJ_INSTANCE_LEN 16
#define SJ_AD_DOMAIN "appliance-journal-v1"
#define SJ_NAME_PREFIX "journal-"
#define SJ_NAME_PREFIX_LEN 8
#define SJ_NAME_LEN 28          /* "journal-" + 20 digits */
#define SJ_BLOB_MAX 8192        /* bytes of one stored record */
#define SJ_RECORDS_MAX 10000000 /* records in one journal */
#define SJ_DATA_PREFIX "ajk1"
#define SJ_ERR_MAX 256

/* ---- storage of sealed records ---- */

/*
 * A store: put is durable on return and never overwrites (APP_EEXIST);
 * list gives names in ascending byte order. Untrusted: whatever it returns
 * is checked.
 */
struct sj_store_ops {
	int (*put)(void *arg, const char *name, const uint8_t *data, size_t len);
	int (*get)(void *arg, const char *name, uint8_t **data, size_t *len, size_t max);
	int (*list)(void *arg, int (*fn)(void *a, const char *name, uint64_t size), void *a);
	void (*close)(void *arg);
};

struct sj_store {
	const struct sj_store_ops *ops;
	void *arg;
};

/*
 * sj_store_dir_open: a local directory (created 0700 if missing). put
 * writes a temporary file, fsyncs it, links it to its name (never over an
 * existing one) and fsyncs the directory. Returns 0 with *out
 * (sj_store_close); APP_EINVAL; APP_EIO; APP_ENOMEM.
 */
int sj_store_dir_open(struct sj_store **out, const char *dir) APP_WUR;

/*
 * sj_store_parent_open: the parent's sealed-blob store over the control
 * channel (enclave/runtime/parentlink.h; borrowed link), timeout_ms per request.
 * A put whose connection broke is retried; APP_EEXIST then means it was
 * stored if the stored bytes are ours (checked by sjournal).
 * Returns 0 or APP_ENOMEM.
 */
int sj_store_parent_open(struct sj_store **out, struct parentlink *pl, unsigned timeout_ms) APP_WUR;

/* sj_store_close: closes; NULL is a no-op. */
void sj_store_close(struct sj_store *s);

/* ---- keystores ---- */

/* The keystores an enclave uses (enclave/runtime/ksset.h implements them over ksclient). */
struct sj_keystores_ops {
	/* refresh: re-discovers keystores (may be NULL). Returns 0 or an error (logged, not fatal). */
	int (*refresh)(void *arg);
	size_t (*count)(void *arg);
	/* name: a short printable identifier of keystore i for logs (a pubkey prefix). */
	void (*name)(void *arg, size_t i, char *out, size_t cap);
	/* get, set: as ksclient_get / ksclient_set for keystore i (returns a local failure only). */
	int (*get)(void *arg, size_t i, enum ksclient_answer *ans, uint8_t *data, size_t *len, uint64_t *epoch,
		   char *why, size_t whycap);
	int (*set)(void *arg, size_t i, enum ksclient_answer *ans, char *why, size_t whycap, const uint8_t *data,
		   size_t len, uint64_t epoch);
};

/* ---- the journal ---- */

struct sjournal_opts {
	struct sj_store *store;                 /* borrowed; must outlive the journal */
	const struct sj_keystores_ops *ks;      /* used by the opening thread, then by the checkpoint thread */
	void *ks_arg;
	unsigned retry_min_ms, retry_max_ms;    /* start-up waits (default 500 / 10000) */
	unsigned start_timeout_s;               /* give up after (0 = never) */
	unsigned checkpoint_interval_s;         /* periodic checkpoints (default 60) */
	int (*is_checkpoint_record)(const char *rec, size_t len); /* NULL: sjournal_money_record */
	int (*should_stop)(void *arg);          /* ends the start-up wait (signals); may be NULL */
	void *stop_arg;
	int read_only;                          /* inspect only: never a new key, no checkpoint, no append
						   (`appliance keystore journal`); all not found: APP_ENOTFOUND */
};

/* What sjournal_open found. */
struct sjournal_info {
	uint8_t instance[SJ_INSTANCE_LEN];
	uint64_t records;          /* replayed */
	uint64_t checkpoint_epoch; /* the highest checkpoint found (0 for a new key) */
	int new_key;               /* a first start */
	int upgraded;              /* the key came through release signatures (another build's entry) */
	size_t keystores, found, not_found, refused, no_answer; /* the deciding round */
	unsigned rounds;
};

struct sjournal;

/*
 * sjournal_open: the start-up above. On success *out (journal_close of a
 * journal over sjournal_backend() frees it, or sjournal_free) and *info
 * (may be NULL). Returns 0; APP_EROLLBACK (journal older than the
 * checkpoint, gap, reordering, replaced record, another instance's
 * journal); APP_EBADMAC (a record's seal does not open); APP_EPARSE (a
 * malformed record or name); APP_EREFUSED (keystores disagree; a journal
 * exists but every keystore said not found); APP_ETIMEOUT
 * (start_timeout_s passed without a decision); APP_ECANCELED
 * (should_stop); the store's errors (APP_EIO); APP_ENOMEM. err (may be
 * NULL) receives one line naming the reason.
 */
int sjournal_open(struct sjournal **out, struct sjournal_info *info, char *err, size_t errcap,
		  const struct sjournal_opts *o) APP_WUR;

/* sjournal_backend: the journal_backend of a sjournal (arg = the sjournal; close frees it). */
const struct journal_backend *sjournal_backend(void);

/* sjournal_start: starts the checkpoint thread. Returns 0, APP_ESTATE (already), APP_EINTERNAL. */
int sjournal_start(struct sjournal *sj) APP_WUR;

/*
 * sjournal_checkpoint: one checkpoint round now, on the caller's thread
 * (only while the thread is not started). Returns 0 when at least one
 * keystore stored it; APP_EAGAIN when none did.
 */
int sjournal_checkpoint(struct sjournal *sj) APP_WUR;

/* Counters of the checkpoint side. */
struct sjournal_stats {
	uint64_t records;         /* in the journal now */
	uint64_t appends;         /* since open */
	uint64_t checkpoints;     /* rounds in which at least one keystore stored the latest */
	uint64_t checkpoint_failures; /* keystore sets that failed */
	uint64_t last_checkpoint_epoch;
};

/* sjournal_get_stats: a snapshot (thread-safe). */
void sjournal_get_stats(struct sjournal *sj, struct sjournal_stats *out);

/* sjournal_free: stops the thread, wipes the key, frees; NULL is a no-op. */
void sjournal_free(struct sjournal *sj);

/* sjournal_money_record: 1 for "L1 SEQ AT paid|debit|credit ..." (ledger records that move money). */
int sjournal_money_record(const char *rec, size_t len);

/* ---- the record format (also for fuzzing) ---- */

struct sj_record {
	uint8_t instance[SJ_INSTANCE_LEN];
	uint64_t seq;
	uint8_t prev[32];
	const uint8_t *sealed; /* points into the blob */
	size_t sealed_len;
};

/*
 * sj_record_parse: the header of a stored record blob[0..len).
 * Returns 0; APP_ETOOBIG (over SJ_BLOB_MAX); APP_EPARSE (short, bad magic,
 * sequence 0).
 */
int sj_record_parse(struct sj_record *out, const uint8_t *blob, size_t len) APP_WUR;

/*
 * sj_record_open: the record line of a parsed record (a new buffer, *line
 * NUL-terminated, free with free()), opened with key. Returns 0;
 * APP_EBADMAC (the seal does not open: modified, truncated, extended,
 * another key or another header); APP_EPARSE (not a journal line: empty,
 * over JOURNAL_RECORD_MAX, a byte outside 0x20..0x7e); APP_ENOMEM.
 */
int sj_record_open(char **line, size_t *len, const struct sj_record *rec, const uint8_t key[32]) APP_WUR;

/*
 * sj_record_seal: the blob of record line[0..len) at seq after prev with
 * key (*blob, free with free()). Returns 0; APP_EINVAL (not a journal
 * line, seq 0); APP_ENOMEM.
 */
int sj_record_seal(uint8_t **blob, size_t *blob_len, const uint8_t instance[SJ_INSTANCE_LEN], uint64_t seq,
		   const uint8_t prev[32], const uint8_t key[32], const char *line, size_t len) APP_WUR;

/* sj_record_name: "journal-%020llu" of seq into out (SJ_NAME_LEN + 1 bytes). */
void sj_record_name(char out[SJ_NAME_LEN + 1], uint64_t seq);

#endif
