/*
 * journal.h: the enclave's append-only journal of state changes (DESIGN §8;
 * PROTOCOL.md "Enclave journal").
 *
 * A narrow interface: a record is one line of printable ASCII (no '\n'),
 * appended in order and durable when journal_append returns, so the caller
 * appends a record *before* acting on it. journal_replay hands every record
 * back in order at start. What the records mean (ledger lines "L1 ...", job
 * lines "J1 ...") is the caller's business (enclave/state.h).
 *
 * Backends: a local file (this issue: write + fdatasync per record; a torn
 * last line, left by a crash in the middle of an append, was never acted
 * upon and is cut off at open), or any implementation of struct
 * journal_backend (the keystore work seals each record with the disk key and
 * ships it to the parent's blob store; the interface does not change).
 *
 * Not thread-safe: one owner (the daemon's main thread).
 */
#ifndef ENCLAVE_JOURNAL_H
#define ENCLAVE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"

#define JOURNAL_RECORD_MAX 4096                 /* bytes of one record, without its '\n' */
#define JOURNAL_MAX (512u * 1024 * 1024)        /* bytes of a whole journal read at start */

/* A storage backend. Every function returns 0 or an APP_E* code. */
struct journal_backend {
	/* append: stores rec[0..len) followed by '\n' durably (returns only once it is). */
	int (*append)(void *arg, const char *rec, size_t len);
	/*
	 * load: the whole journal into a new buffer (*text, *len; free with
	 * free()): complete records, each ending in '\n' (a torn tail is
	 * dropped by the backend).
	 */
	int (*load)(void *arg, char **text, size_t *len);
	/* close: releases the backend (may be NULL). */
	void (*close)(void *arg);
};

struct journal;

/*
 * journal_open_file: the file backend at path, created (mode 0600) if
 * missing. A last line without '\n' (a torn append) is truncated away and
 * logged. Returns 0 with *out (journal_close); APP_EIO; APP_ETOOBIG (over
 * JOURNAL_MAX); APP_ENOMEM.
 */
int journal_open_file(struct journal **out, const char *path) APP_WUR;

/* journal_open: a journal over a custom backend (borrowed arg). Returns 0 or APP_ENOMEM. */
int journal_open(struct journal **out, const struct journal_backend *be, void *arg) APP_WUR;

/*
 * journal_append: appends one record rec[0..len), durable on return.
 * Returns 0; APP_EINVAL (empty, a byte outside 0x20..0x7e, over
 * JOURNAL_RECORD_MAX); APP_ESTATE (an earlier append failed: the journal
 * refuses everything after a failure, the daemon must stop); the backend's
 * error (APP_EIO).
 */
int journal_append(struct journal *j, const char *rec, size_t len) APP_WUR;

/*
 * journal_record_fn: one replayed record rec[0..len) (not NUL-terminated),
 * index 1, 2, ... Returns 0 to go on, anything else stops the replay and
 * is returned by journal_replay.
 */
typedef int (*journal_record_fn)(void *arg, const char *rec, size_t len, uint64_t index);

/*
 * journal_replay: calls fn for every stored record in order. Returns 0 with
 * *count (may be NULL) records; APP_EPARSE (a record with bytes outside
 * 0x20..0x7e, or empty, or over JOURNAL_RECORD_MAX); the backend's error;
 * fn's error.
 */
int journal_replay(struct journal *j, journal_record_fn fn, void *arg, uint64_t *count) APP_WUR;

/* journal_count: records appended through this handle plus those replayed. */
uint64_t journal_count(const struct journal *j);

/* journal_close: closes the backend and frees; NULL is a no-op. */
void journal_close(struct journal *j);

#endif
