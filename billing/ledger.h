/*
 * ledger.h: the append-only billing ledger (DESIGN §5.3, §6, §8).
 *
 * Records (serialization: appliance/PROTOCOL.md "Ledger records"; one text
 * line each, "L1 seq at type fields...\n"):
 *   quote   a price quote: quote id, job, client, amount, expires_at
 *   invoice an invoice for a quote: payment_hash, quote id, amount, expires_at
 *   topup   an invoice without a job (prepaid credit): payment_hash, client,
 *           amount, expires_at
 *   paid    a settled invoice: payment_hash, amount received, settled_at;
 *           credits the invoice's client
 *   debit   a job started: job, client, amount (from the client's balance)
 *   credit  credit to a client: client, amount, reason, ref; reason
 *           "refund" gives back a job's debit (ref = the job id); any other
 *           reason ([a-z0-9_]{1,32}) is an operator credit with a unique ref
 *
 * Balances (msat, integer, overflow-checked) are a pure function of the
 * records: replaying a journal gives the same balances. Exactly once:
 *   - a payment_hash is credited at most once (a second paid: APP_EEXIST);
 *   - a job is debited at most once, refunded at most once and only after
 *     its debit, for exactly the debited amount;
 *   - an invoice settled after its expiry is never credited (APP_EEXPIRED);
 *     a payment below the invoice amount is never credited (APP_ERANGE);
 *   - quote ids, invoice payment_hashes and (reason, ref) pairs are unique.
 * A refused record changes nothing and is not journaled. A job that fails
 * after it was debited is refunded into the client's balance (its credit):
 * ledger_refund_job.
 *
 * Journal hook: with ledger_set_journal, every accepted record is handed to
 * the callback (its exact serialized line) before the ledger applies it; if
 * the callback fails, the record is not applied (journal first, then act).
 *
 * Hash tables are keyed with a per-ledger random SipHash key (client
 * pubkeys are attacker-chosen). Not thread-safe: one owner.
 */
#ifndef BILLING_LEDGER_H
#define BILLING_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"
#include "billing/quote.h"

#define LEDGER_RECORD_MAX 512                     /* bytes of one record line, '\n' included */
#define LEDGER_JOURNAL_MAX (256u * 1024 * 1024)   /* bytes of a journal given to ledger_replay */
#define LEDGER_MAX_RECORDS 4000000u               /* records in one ledger */
#define LEDGER_REASON_MAX 32                      /* characters of a credit reason */
#define LEDGER_REASON_REFUND "refund"

enum ledger_type {
	LEDGER_QUOTE = 1,
	LEDGER_INVOICE = 2,
	LEDGER_TOPUP = 3,
	LEDGER_PAID = 4,
	LEDGER_DEBIT = 5,
	LEDGER_CREDIT = 6,
};

/* One record. Which fields a type uses: see the file comment and PROTOCOL.md. */
struct ledger_record {
	enum ledger_type type;
	uint64_t seq;                   /* 1, 2, ...: set by ledger_append */
	uint64_t at;                    /* unix seconds when the record was made */
	uint8_t quote_id[QUOTE_ID_LEN]; /* quote, invoice */
	uint8_t payment_hash[32];       /* invoice, topup, paid */
	uint8_t job[32];                /* quote, debit */
	uint8_t client[32];             /* quote, topup, debit, credit */
	uint8_t ref[32];                /* credit */
	uint64_t amount_msat;           /* every type; >= 1 */
	uint64_t expires_at;            /* quote, invoice, topup (unix seconds) */
	uint64_t settled_at;            /* paid (unix seconds) */
	char reason[LEDGER_REASON_MAX + 1]; /* credit: [a-z0-9_]{1,32} */
};

/* An account: a client's balance and its running totals (msat). */
struct ledger_account {
	uint8_t client[32];
	uint64_t balance_msat;
	uint64_t paid_msat;     /* sum of its paid records */
	uint64_t debited_msat;  /* sum of its debits */
	uint64_t credited_msat; /* sum of its credit records (refunds included) */
};

/* An invoice as the ledger knows it (ledger_invoice_get). */
struct ledger_invoice_info {
	int is_topup;
	uint8_t quote_id[QUOTE_ID_LEN]; /* when !is_topup */
	uint8_t client[32];
	uint64_t amount_msat;
	uint64_t expires_at;
	int paid;
	uint64_t paid_msat;
	uint64_t settled_at;
};

struct ledger;

/*
 * ledger_journal_fn: receives line[0..len) (one record, ending in '\n')
 * before it is applied; returns 0 to accept it, anything else to refuse it
 * (the ledger then returns APP_EIO and changes nothing).
 */
typedef int (*ledger_journal_fn)(void *arg, const char *line, size_t len);

/* ledger_new: an empty ledger. Returns 0 or APP_ENOMEM. */
int ledger_new(struct ledger **out) APP_WUR;

/* ledger_free: frees; NULL is a no-op. */
void ledger_free(struct ledger *l);

/* ledger_set_journal: installs (or, with NULL, removes) the journal hook. */
void ledger_set_journal(struct ledger *l, ledger_journal_fn fn, void *arg);

/*
 * ledger_append: checks rec against the record rules and the ledger's state,
 * gives it the next seq, journals it and applies it.
 * Returns 0 (rec->seq set); APP_EINVAL (a field out of its range: zero
 * amount, bad reason, unknown type); APP_EEXIST (already done: duplicate
 * quote id, invoice, paid, debit, refund or credit ref: nothing changes);
 * APP_ENOTFOUND (paid/invoice/refund naming an unknown invoice/quote/job);
 * APP_ERANGE (paid below the invoice amount; refund amount differs from the
 * debit; a total would overflow); APP_EEXPIRED (settled after the invoice
 * expired); APP_ELIMIT (debit above the client's balance; LEDGER_MAX_RECORDS);
 * APP_EREFUSED (debit/refund client differs from the job's); APP_EIO (the
 * journal hook refused); APP_ENOMEM.
 */
int ledger_append(struct ledger *l, struct ledger_record *rec) APP_WUR;

/* Convenience builders over ledger_append (same returns). `at` is unix seconds. */
int ledger_add_quote(struct ledger *l, const struct quote *q, uint64_t at) APP_WUR;
int ledger_add_invoice(struct ledger *l, const uint8_t payment_hash[32], const uint8_t quote_id[QUOTE_ID_LEN],
		       uint64_t amount_msat, uint64_t expires_at, uint64_t at) APP_WUR;
int ledger_add_topup(struct ledger *l, const uint8_t payment_hash[32], const uint8_t client[32],
		     uint64_t amount_msat, uint64_t expires_at, uint64_t at) APP_WUR;
int ledger_add_paid(struct ledger *l, const uint8_t payment_hash[32], uint64_t amount_msat, uint64_t settled_at,
		    uint64_t at) APP_WUR;
int ledger_add_debit(struct ledger *l, const uint8_t job[32], const uint8_t client[32], uint64_t amount_msat,
		     uint64_t at) APP_WUR;
int ledger_add_credit(struct ledger *l, const uint8_t client[32], uint64_t amount_msat, const char *reason,
		      const uint8_t ref[32], uint64_t at) APP_WUR;

/*
 * ledger_refund_job: a debited job failed: its amount goes back to the
 * client's balance as credit (reason "refund", ref = job), once.
 * Returns 0; APP_ENOTFOUND (never debited); APP_EEXIST (already refunded);
 * the other errors of ledger_append.
 */
int ledger_refund_job(struct ledger *l, const uint8_t job[32], uint64_t at) APP_WUR;

/* ledger_balance: the client's balance in msat (0 for an unknown client). */
uint64_t ledger_balance(const struct ledger *l, const uint8_t client[32]);

/* ledger_account_get: the client's account. Returns 0 or APP_ENOTFOUND. */
int ledger_account_get(const struct ledger *l, const uint8_t client[32], struct ledger_account *out) APP_WUR;

/*
 * ledger_accounts: every account sorted by client pubkey (new array, free
 * with free(); NULL when there are none). Returns 0 or APP_ENOMEM.
 */
int ledger_accounts(const struct ledger *l, struct ledger_account **out, size_t *n) APP_WUR;

/* ledger_invoice_get: what the ledger knows of an invoice. Returns 0 or APP_ENOTFOUND. */
int ledger_invoice_get(const struct ledger *l, const uint8_t payment_hash[32], struct ledger_invoice_info *out) APP_WUR;

/* ledger_quote_get: a recorded quote (units are not recorded: 0). Returns 0 or APP_ENOTFOUND. */
int ledger_quote_get(const struct ledger *l, const uint8_t quote_id[QUOTE_ID_LEN], struct quote *out) APP_WUR;

/* ledger_job_state: 0 never debited, 1 debited, 2 debited then refunded. */
int ledger_job_state(const struct ledger *l, const uint8_t job[32]);

/* ledger_count: records appended so far (= the last seq). */
uint64_t ledger_count(const struct ledger *l);

/*
 * ledger_journal: the whole ledger as its serialized records (a view into
 * the ledger, valid until the next append; *len bytes, NUL-terminated).
 */
const char *ledger_journal(const struct ledger *l, size_t *len);

/*
 * ledger_record_format: rec as its line ("L1 ... \n") into buf[0..cap),
 * NUL-terminated. Returns the line length, or 0 when rec is invalid
 * (fields out of range) or cap < LEDGER_RECORD_MAX.
 */
size_t ledger_record_format(char *buf, size_t cap, const struct ledger_record *rec);

/*
 * ledger_record_parse: one record line line[0..len) (with or without the
 * final '\n'), strictly: the version tag, single spaces, canonical decimals
 * (no sign, no leading zeros), lowercase hex of the exact length, the type's
 * exact field count. Refused with *reason (static text): over
 * LEDGER_RECORD_MAX (APP_ETOOBIG); anything else malformed (APP_EPARSE);
 * field out of range (APP_EINVAL). reason may be NULL.
 */
int ledger_record_parse(struct ledger_record *rec, const char **reason, const char *line, size_t len) APP_WUR;

/*
 * ledger_replay: a new ledger from a journal text[0..len) (records in
 * order, each ending in '\n'), applying every record with the rules of
 * ledger_append; seq must run 1, 2, 3, ... without gaps.
 * Returns 0 with *out; on a refused record the error of ledger_record_parse
 * or ledger_append (APP_EROLLBACK for a seq out of order), with *reason and
 * *line_no (1-based; may be NULL) naming it; APP_ETOOBIG over
 * LEDGER_JOURNAL_MAX; APP_EPARSE for a final line without '\n'.
 */
int ledger_replay(struct ledger **out, const char **reason, size_t *line_no, const char *text, size_t len) APP_WUR;

/* ledger_type_name: "quote", "invoice", "topup", "paid", "debit", "credit", or "?". */
const char *ledger_type_name(enum ledger_type t);

#endif
