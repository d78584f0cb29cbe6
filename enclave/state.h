/*
 * state.h: the enclave's persistent state (DESIGN §6, §8; PROTOCOL.md
 * "Enclave journal"): the billing ledger (billing/ledger.h) and the job
 * table, both rebuilt at start by replaying the journal (enclave/runtime/journal.h)
 * and changed only through records appended to it first.
 *
 * Journal records, one line each:
 *   L1 ...                                   a ledger record (billing/ledger.h)
 *   J1 SEQ AT seen JOB CLIENT CREATED_AT ENC a request was accepted (ENC 0|1: private form)
 *   J1 SEQ AT state JOB STATE [ARG]          a state change (job.h): ARG is the
 *                                            payment_hash for invoiced, the result
 *                                            event id for done, a reason word
 *                                            [a-z0-9_]{1,32} for failed, absent otherwise
 * SEQ runs 1, 2, ... over the J1 records (the L1 records have their own);
 * AT is unix seconds; JOB, CLIENT, hashes are 64 lowercase hex digits;
 * decimals canonical. A replay refuses (and the daemon does not start) on a
 * malformed record, a gap or repeat in SEQ (APP_EROLLBACK), a job seen
 * twice, a state change of an unknown job or one the state machine forbids.
 *
 * Not thread-safe: the daemon's main thread owns it.
 */
#ifndef ENCLAVE_STATE_H
#define ENCLAVE_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"
#include "enclave/job.h"

struct journal;
struct ledger;

#define ESTATE_REASON_MAX 32

struct estate_job {
	uint8_t id[32];      /* the request event id */
	uint8_t client[32];  /* the request's pubkey */
	uint64_t created_at; /* the request's created_at */
	int encrypted;
	enum job_state state;
	int has_invoice;
	uint8_t payment_hash[32];
	int has_result;
	uint8_t result_id[32];
	char reason[ESTATE_REASON_MAX + 1]; /* failed */
	void *rt; /* the daemon's runtime data (never persisted) */
};

struct estate;

/*
 * estate_open: replays journal j (borrowed; must outlive the state) into a
 * new state holding at most max_jobs jobs, then journals every later change
 * through j. Returns 0 with *out (estate_free); the replay's refusal with
 * err naming the record (APP_EPARSE, APP_EROLLBACK, APP_EEXIST,
 * APP_ENOTFOUND, APP_ESTATE, and the ledger's codes); APP_ELIMIT (more jobs
 * than max_jobs); APP_ENOMEM.
 */
int estate_open(struct estate **out, char *err, size_t errcap, struct journal *j, size_t max_jobs) APP_WUR;

/* estate_free: frees (free_rt, may be NULL, releases each job's rt). NULL is a no-op. */
void estate_free(struct estate *st, void (*free_rt)(void *rt));

/* estate_ledger: the ledger (its records are journaled by the state). */
struct ledger *estate_ledger(struct estate *st);

/* estate_job: the job with this id, or NULL. */
struct estate_job *estate_job(struct estate *st, const uint8_t id[32]);

/* estate_job_by_invoice: the job invoiced with this payment_hash, or NULL. */
struct estate_job *estate_job_by_invoice(struct estate *st, const uint8_t payment_hash[32]);

/*
 * estate_job_add: journals "seen" and adds a job in state received.
 * Returns 0 with *out; APP_EEXIST (already known: a replay); APP_ELIMIT
 * (max_jobs); the journal's error; APP_ENOMEM.
 */
int estate_job_add(struct estate *st, struct estate_job **out, const uint8_t id[32], const uint8_t client[32],
		   uint64_t created_at, int encrypted, uint64_t at) APP_WUR;

/*
 * estate_job_set: journals and applies a state change. arg: the payment_hash
 * (32 bytes) for invoiced, the result id (32 bytes) for done, a reason word
 * (NUL-terminated [a-z0-9_]{1,32}) for failed, NULL otherwise.
 * Returns 0; APP_ESTATE (the state machine forbids it); APP_EINVAL (arg);
 * APP_EEXIST (payment_hash already used by another job); the journal's error.
 */
int estate_job_set(struct estate *st, struct estate_job *job, enum job_state to, const void *arg, uint64_t at) APP_WUR;

/* estate_job_count / estate_active_count: jobs held / of which not done or failed. */
size_t estate_job_count(const struct estate *st);
size_t estate_active_count(const struct estate *st);

/* estate_foreach: fn for every job until it returns non-zero (returned). fn must not add or evict. */
int estate_foreach(struct estate *st, int (*fn)(void *arg, struct estate_job *job), void *arg);

/*
 * estate_evict: forgets (in memory only) done and failed jobs whose request
 * is older than `before` (unix seconds): they are past the replay window.
 * Jobs whose rt is still set (a worker may still use it) are kept.
 * free_rt is unused (kept for symmetry with estate_free). Returns the number
 * evicted.
 */
size_t estate_evict(struct estate *st, uint64_t before, void (*free_rt)(void *rt));

/* One invoice of the ledger that no paid record settled (from the replay and later appends). */
struct estate_invoice {
	uint8_t payment_hash[32];
	uint64_t amount_msat;
	uint64_t expires_at;
};

/*
 * estate_unpaid_invoices: the invoices found unpaid by the replay (the
 * daemon watches them again). *out is a new array (free with free(); NULL
 * when none). Returns 0 or APP_ENOMEM.
 */
int estate_unpaid_invoices(const struct estate *st, struct estate_invoice **out, size_t *n) APP_WUR;

/* One job-state journal record (the J1 line; PROTOCOL.md "Job protocol", journal records). */
struct estate_record {
	uint64_t seq, at;
	int seen; /* 1: seen, 0: state */
	uint8_t job[32], client[32];
	uint64_t created_at;
	int encrypted;
	enum job_state state;
	int has_hash;
	uint8_t hash[32];
	char reason[ESTATE_REASON_MAX + 1];
};

/*
 * estate_format_record: writes the J1 line of r (no newline, NUL-terminated)
 * into buf[0..cap). Returns its length in bytes, or 0 when it does not fit.
 */
size_t estate_format_record(char *buf, size_t cap, const struct estate_record *r);

/*
 * estate_parse_record: one J1 line line[0..len) (no newline) into *out.
 * Returns 0, or APP_EPARSE with *reason (a static text) for a malformed line.
 */
int estate_parse_record(struct estate_record *out, const char **reason, const char *line, size_t len) APP_WUR;

#endif
