#include "ledger.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/hash.h"
#include "appliance/hex.h"
#include "appliance/log.h"

/* --- a small open-addressing hash map: 32-byte keys, fixed-size values ----------------------- */

#define SLOT_VAL_OFF 40 /* 1 byte used + 32 key, rounded up to 8 */

struct map {
	uint8_t *slots;
	size_t cap; /* power of two, or 0 */
	size_t n;
	size_t ssize; /* bytes per slot */
};

static void map_init(struct map *m, size_t vsize)
{
	memset(m, 0, sizeof *m);
	m->ssize = SLOT_VAL_OFF + ((vsize + 7) & ~(size_t)7);
}

static void map_free(struct map *m)
{
	free(m->slots);
	m->slots = NULL;
	m->cap = m->n = 0;
}

static uint64_t map_hash(const unsigned char hkey[crypto_shorthash_KEYBYTES], const uint8_t key[32])
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v = 0;
	crypto_shorthash(h, key, 32, hkey);
	for (int i = 0; i < 8; i++)
		v = (v << 8) | h[i];
	return v;
}

static uint8_t *map_slot(const struct map *m, size_t i)
{
	return m->slots + i * m->ssize;
}

static void *map_find(const struct map *m, const unsigned char *hkey, const uint8_t key[32])
{
	if (!m->cap)
		return NULL;
	for (size_t i = (size_t)map_hash(hkey, key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		uint8_t *s = map_slot(m, i);
		if (!s[0])
			return NULL;
		if (memcmp(s + 1, key, 32) == 0)
			return s + SLOT_VAL_OFF;
	}
}

/* Inserts a key known to be absent; capacity must have been reserved. Returns its zeroed value. */
static void *map_put(struct map *m, const unsigned char *hkey, const uint8_t key[32])
{
	for (size_t i = (size_t)map_hash(hkey, key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		uint8_t *s = map_slot(m, i);
		if (!s[0]) {
			s[0] = 1;
			memcpy(s + 1, key, 32);
			memset(s + SLOT_VAL_OFF, 0, m->ssize - SLOT_VAL_OFF);
			m->n++;
			return s + SLOT_VAL_OFF;
		}
	}
}

/* Makes room for one more entry (load factor <= 1/2). Returns 0, APP_ENOMEM. */
static int map_reserve(struct map *m, const unsigned char *hkey)
{
	if (m->cap && (m->n + 1) * 2 <= m->cap)
		return 0;
	size_t ncap = m->cap ? m->cap * 2 : 64, bytes;
	if (ncap < m->cap || __builtin_mul_overflow(ncap, m->ssize, &bytes))
		return APP_ENOMEM;
	struct map nm = *m;
	nm.slots = calloc(1, bytes);
	if (!nm.slots)
		return APP_ENOMEM;
	nm.cap = ncap;
	nm.n = 0;
	for (size_t i = 0; i < m->cap; i++) {
		uint8_t *s = map_slot(m, i);
		if (s[0])
			memcpy(map_put(&nm, hkey, s + 1), s + SLOT_VAL_OFF, m->ssize - SLOT_VAL_OFF);
	}
	free(m->slots);
	*m = nm;
	return 0;
}

/* --- the ledger -------------------------------------------------------------------------------- */

struct quote_v {
	uint8_t job[32], client[32];
	uint64_t amount, expires_at, created_at;
};
struct inv_v {
	int is_topup, paid;
	uint8_t quote_id[QUOTE_ID_LEN], client[32];
	uint64_t amount, expires_at, paid_msat, settled_at;
};
struct job_v {
	uint8_t client[32];
	uint64_t amount;
	int state; /* 1 debited, 2 refunded */
};
struct acct_v {
	uint64_t balance, paid, debited, credited;
};
struct cref_v {
	uint8_t present;
};

struct ledger {
	unsigned char hkey[crypto_shorthash_KEYBYTES];
	struct map quotes, invoices, jobs, accounts, crefs;
	uint64_t seq;
	char *journal;
	size_t jlen, jcap;
	ledger_journal_fn jfn;
	void *jarg;
};

static const char *const type_names[] = {NULL, "quote", "invoice", "topup", "paid", "debit", "credit"};

const char *ledger_type_name(enum ledger_type t)
{
	return t >= LEDGER_QUOTE && t <= LEDGER_CREDIT ? type_names[t] : "?";
}

int ledger_new(struct ledger **out)
{
	struct ledger *l = calloc(1, sizeof *l);
	*out = NULL;
	if (!l)
		return APP_ENOMEM;
	if (sodium_init() < 0) {
		free(l);
		return APP_EINTERNAL;
	}
	crypto_shorthash_keygen(l->hkey);
	map_init(&l->quotes, sizeof(struct quote_v));
	map_init(&l->invoices, sizeof(struct inv_v));
	map_init(&l->jobs, sizeof(struct job_v));
	map_init(&l->accounts, sizeof(struct acct_v));
	map_init(&l->crefs, sizeof(struct cref_v));
	l->journal = malloc(1);
	if (!l->journal) {
		free(l);
		return APP_ENOMEM;
	}
	l->journal[0] = 0;
	l->jcap = 1;
	*out = l;
	return 0;
}

void ledger_free(struct ledger *l)
{
	if (!l)
		return;
	map_free(&l->quotes);
	map_free(&l->invoices);
	map_free(&l->jobs);
	map_free(&l->accounts);
	map_free(&l->crefs);
	free(l->journal);
	sodium_memzero(l, sizeof *l);
	free(l);
}

void ledger_set_journal(struct ledger *l, ledger_journal_fn fn, void *arg)
{
	l->jfn = fn;
	l->jarg = arg;
}

uint64_t ledger_count(const struct ledger *l)
{
	return l->seq;
}

const char *ledger_journal(const struct ledger *l, size_t *len)
{
	*len = l->jlen;
	return l->journal;
}

static void quote_key(uint8_t key[32], const uint8_t id[QUOTE_ID_LEN])
{
	memset(key, 0, 32);
	memcpy(key, id, QUOTE_ID_LEN);
}

static void cref_key(uint8_t key[32], const char *reason, const uint8_t ref[32])
{
	uint8_t buf[8 + LEDGER_REASON_MAX + 1 + 32];
	size_t rl = strlen(reason);
	memcpy(buf, "ledger:c", 8);
	memcpy(buf + 8, reason, rl);
	buf[8 + rl] = 0;
	memcpy(buf + 9 + rl, ref, 32);
	hash_sha256(key, buf, 9 + rl + 32);
}

static int reason_ok(const char *r)
{
	size_t n = strnlen(r, LEDGER_REASON_MAX + 1);
	if (n == 0 || n > LEDGER_REASON_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((r[i] >= 'a' && r[i] <= 'z') || (r[i] >= '0' && r[i] <= '9') || r[i] == '_'))
			return 0;
	return 1;
}

/* Field-level validity (independent of the ledger's state). */
static int record_valid(const struct ledger_record *rec)
{
	if (rec->type < LEDGER_QUOTE || rec->type > LEDGER_CREDIT)
		return 0;
	if (rec->amount_msat == 0)
		return 0;
	if (rec->type == LEDGER_CREDIT && !reason_ok(rec->reason))
		return 0;
	return 1;
}

/* --- serialization ------------------------------------------------------------------------------ */

struct out {
	char *p;
	size_t n, cap;
	int err;
};

static void o_str(struct out *o, const char *s)
{
	size_t l = strlen(s);
	if (o->err || l >= o->cap - o->n) {
		o->err = 1;
		return;
	}
	memcpy(o->p + o->n, s, l);
	o->n += l;
	o->p[o->n] = 0;
}

static void o_u64(struct out *o, uint64_t v)
{
	char b[24];
	snprintf(b, sizeof b, " %llu", (unsigned long long)v);
	o_str(o, b);
}

static void o_hex(struct out *o, const uint8_t *b, size_t n)
{
	char h[65];
	o_str(o, " ");
	hex_encode(h, b, n);
	o_str(o, h);
}

size_t ledger_record_format(char *buf, size_t cap, const struct ledger_record *rec)
{
	if (cap < LEDGER_RECORD_MAX || !record_valid(rec))
		return 0;
	struct out o = {buf, 0, cap, 0};
	buf[0] = 0;
	o_str(&o, "L1");
	o_u64(&o, rec->seq);
	o_u64(&o, rec->at);
	o_str(&o, " ");
	o_str(&o, ledger_type_name(rec->type));
	switch (rec->type) {
	case LEDGER_QUOTE:
		o_hex(&o, rec->quote_id, QUOTE_ID_LEN);
		o_hex(&o, rec->job, 32);
		o_hex(&o, rec->client, 32);
		o_u64(&o, rec->amount_msat);
		o_u64(&o, rec->expires_at);
		break;
	case LEDGER_INVOICE:
		o_hex(&o, rec->payment_hash, 32);
		o_hex(&o, rec->quote_id, QUOTE_ID_LEN);
		o_u64(&o, rec->amount_msat);
		o_u64(&o, rec->expires_at);
		break;
	case LEDGER_TOPUP:
		o_hex(&o, rec->payment_hash, 32);
		o_hex(&o, rec->client, 32);
		o_u64(&o, rec->amount_msat);
		o_u64(&o, rec->expires_at);
		break;
	case LEDGER_PAID:
		o_hex(&o, rec->payment_hash, 32);
		o_u64(&o, rec->amount_msat);
		o_u64(&o, rec->settled_at);
		break;
	case LEDGER_DEBIT:
		o_hex(&o, rec->job, 32);
		o_hex(&o, rec->client, 32);
		o_u64(&o, rec->amount_msat);
		break;
	case LEDGER_CREDIT:
		o_hex(&o, rec->client, 32);
		o_u64(&o, rec->amount_msat);
		o_str(&o, " ");
		o_str(&o, rec->reason);
		o_hex(&o, rec->ref, 32);
		break;
	}
	o_str(&o, "\n");
	return o.err ? 0 : o.n;
}

/* Parsing: a cursor over the line's space-separated fields. */
struct cur {
	const char *p, *end;
};

static int next_tok(struct cur *c, const char **tok, size_t *n)
{
	if (c->p >= c->end)
		return -1;
	const char *sp = memchr(c->p, ' ', (size_t)(c->end - c->p));
	const char *e = sp ? sp : c->end;
	if (e == c->p)
		return -1; /* empty field: double space or leading/trailing space */
	*tok = c->p;
	*n = (size_t)(e - c->p);
	c->p = sp ? sp + 1 : c->end;
	if (sp && c->p == c->end)
		return -1; /* trailing space */
	return 0;
}

static int tok_u64(struct cur *c, uint64_t *v)
{
	const char *t;
	size_t n;
	if (next_tok(c, &t, &n) || n > 20 || (n > 1 && t[0] == '0'))
		return -1;
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++) {
		if (t[i] < '0' || t[i] > '9')
			return -1;
		if (__builtin_mul_overflow(x, 10, &x) || __builtin_add_overflow(x, (uint64_t)(t[i] - '0'), &x))
			return -1;
	}
	*v = x;
	return 0;
}

static int tok_hex(struct cur *c, uint8_t *out, size_t n)
{
	const char *t;
	size_t l;
	if (next_tok(c, &t, &l) || l != 2 * n)
		return -1;
	return hex_decode(out, n, t, l, 1) == 0 ? 0 : -1;
}

int ledger_record_parse(struct ledger_record *rec, const char **reason, const char *line, size_t len)
{
	const char *why = "malformed record";
	int r = APP_EPARSE;
	struct ledger_record t;
	struct cur c;
	const char *tok;
	size_t n;

	memset(&t, 0, sizeof t);
	if (len > LEDGER_RECORD_MAX) {
		r = APP_ETOOBIG;
		why = "record longer than LEDGER_RECORD_MAX";
		goto out;
	}
	if (len && line[len - 1] == '\n')
		len--;
	if (memchr(line, '\n', len) || memchr(line, 0, len)) {
		why = "record contains a newline or NUL";
		goto out;
	}
	c.p = line;
	c.end = line + len;
	if (next_tok(&c, &tok, &n) || n != 2 || memcmp(tok, "L1", 2) != 0) {
		r = APP_EVERSION;
		why = "not an L1 record";
		goto out;
	}
	if (tok_u64(&c, &t.seq) || t.seq == 0) {
		why = "bad seq";
		goto out;
	}
	if (tok_u64(&c, &t.at)) {
		why = "bad at";
		goto out;
	}
	if (next_tok(&c, &tok, &n)) {
		why = "no type";
		goto out;
	}
	t.type = 0;
	for (int i = LEDGER_QUOTE; i <= LEDGER_CREDIT; i++)
		if (strlen(type_names[i]) == n && memcmp(type_names[i], tok, n) == 0)
			t.type = (enum ledger_type)i;
	why = "bad fields";
	switch (t.type) {
	case LEDGER_QUOTE:
		if (tok_hex(&c, t.quote_id, QUOTE_ID_LEN) || tok_hex(&c, t.job, 32) || tok_hex(&c, t.client, 32) ||
		    tok_u64(&c, &t.amount_msat) || tok_u64(&c, &t.expires_at))
			goto out;
		break;
	case LEDGER_INVOICE:
		if (tok_hex(&c, t.payment_hash, 32) || tok_hex(&c, t.quote_id, QUOTE_ID_LEN) ||
		    tok_u64(&c, &t.amount_msat) || tok_u64(&c, &t.expires_at))
			goto out;
		break;
	case LEDGER_TOPUP:
		if (tok_hex(&c, t.payment_hash, 32) || tok_hex(&c, t.client, 32) || tok_u64(&c, &t.amount_msat) ||
		    tok_u64(&c, &t.expires_at))
			goto out;
		break;
	case LEDGER_PAID:
		if (tok_hex(&c, t.payment_hash, 32) || tok_u64(&c, &t.amount_msat) || tok_u64(&c, &t.settled_at))
			goto out;
		break;
	case LEDGER_DEBIT:
		if (tok_hex(&c, t.job, 32) || tok_hex(&c, t.client, 32) || tok_u64(&c, &t.amount_msat))
			goto out;
		break;
	case LEDGER_CREDIT:
		if (tok_hex(&c, t.client, 32) || tok_u64(&c, &t.amount_msat) || next_tok(&c, &tok, &n) ||
		    n > LEDGER_REASON_MAX)
			goto out;
		memcpy(t.reason, tok, n);
		t.reason[n] = 0;
		if (tok_hex(&c, t.ref, 32))
			goto out;
		break;
	default:
		why = "unknown record type";
		goto out;
	}
	if (c.p != c.end) {
		why = "extra fields";
		goto out;
	}
	if (!record_valid(&t)) {
		r = APP_EINVAL;
		why = t.amount_msat == 0 ? "amount is zero" : "bad credit reason";
		goto out;
	}
	*rec = t;
	r = 0;
out:
	if (reason)
		*reason = r ? why : NULL;
	return r;
}

/* --- applying records ---------------------------------------------------------------------------- */

static int add_u64(uint64_t *dst, uint64_t a, uint64_t b)
{
	return __builtin_add_overflow(a, b, dst) ? APP_ERANGE : 0;
}

static int journal_reserve(struct ledger *l, size_t n)
{
	size_t need;
	if (__builtin_add_overflow(l->jlen, n + 1, &need))
		return APP_ENOMEM;
	if (need > l->jcap) {
		size_t nc = l->jcap;
		while (nc < need) {
			if (__builtin_mul_overflow(nc, 2, &nc))
				return APP_ENOMEM;
		}
		char *p = realloc(l->journal, nc);
		if (!p)
			return APP_ENOMEM;
		l->journal = p;
		l->jcap = nc;
	}
	return 0;
}

int ledger_append(struct ledger *l, struct ledger_record *rec)
{
	char line[LEDGER_RECORD_MAX];
	uint8_t key[32];
	int r = APP_EINVAL;
	struct ledger_record t = *rec;
	/* planned changes, computed before anything is touched */
	struct acct_v *acct = NULL, newacct;
	struct inv_v *inv = NULL;
	struct job_v *job = NULL;
	int need_acct = 0;

	if (!record_valid(&t))
		return APP_EINVAL;
	if (l->seq >= LEDGER_MAX_RECORDS)
		return APP_ELIMIT;
	t.seq = l->seq + 1;
	memset(&newacct, 0, sizeof newacct);

	switch (t.type) {
	case LEDGER_QUOTE:
		quote_key(key, t.quote_id);
		if (map_find(&l->quotes, l->hkey, key))
			return APP_EEXIST;
		if ((r = map_reserve(&l->quotes, l->hkey)) != 0)
			return r;
		break;
	case LEDGER_INVOICE:
	case LEDGER_TOPUP:
		if (map_find(&l->invoices, l->hkey, t.payment_hash))
			return APP_EEXIST;
		if (t.type == LEDGER_INVOICE) {
			quote_key(key, t.quote_id);
			if (!map_find(&l->quotes, l->hkey, key))
				return APP_ENOTFOUND;
		}
		if ((r = map_reserve(&l->invoices, l->hkey)) != 0)
			return r;
		break;
	case LEDGER_PAID:
		inv = map_find(&l->invoices, l->hkey, t.payment_hash);
		if (!inv)
			return APP_ENOTFOUND;
		if (inv->paid)
			return APP_EEXIST;
		if (t.amount_msat < inv->amount)
			return APP_ERANGE;
		if (t.settled_at > inv->expires_at)
			return APP_EEXPIRED;
		acct = map_find(&l->accounts, l->hkey, inv->client);
		if (acct)
			newacct = *acct;
		else
			need_acct = 1;
		if (add_u64(&newacct.balance, newacct.balance, t.amount_msat) ||
		    add_u64(&newacct.paid, newacct.paid, t.amount_msat))
			return APP_ERANGE;
		break;
	case LEDGER_DEBIT:
		if (map_find(&l->jobs, l->hkey, t.job))
			return APP_EEXIST;
		acct = map_find(&l->accounts, l->hkey, t.client);
		if (!acct || acct->balance < t.amount_msat)
			return APP_ELIMIT;
		newacct = *acct;
		newacct.balance -= t.amount_msat;
		if (add_u64(&newacct.debited, newacct.debited, t.amount_msat))
			return APP_ERANGE;
		if ((r = map_reserve(&l->jobs, l->hkey)) != 0)
			return r;
		break;
	case LEDGER_CREDIT:
		if (strcmp(t.reason, LEDGER_REASON_REFUND) == 0) {
			job = map_find(&l->jobs, l->hkey, t.ref);
			if (!job)
				return APP_ENOTFOUND;
			if (job->state == 2)
				return APP_EEXIST;
			if (memcmp(job->client, t.client, 32) != 0)
				return APP_EREFUSED;
			if (job->amount != t.amount_msat)
				return APP_ERANGE;
		} else {
			cref_key(key, t.reason, t.ref);
			if (map_find(&l->crefs, l->hkey, key))
				return APP_EEXIST;
			if ((r = map_reserve(&l->crefs, l->hkey)) != 0)
				return r;
		}
		acct = map_find(&l->accounts, l->hkey, t.client);
		if (acct)
			newacct = *acct;
		else
			need_acct = 1;
		if (add_u64(&newacct.balance, newacct.balance, t.amount_msat) ||
		    add_u64(&newacct.credited, newacct.credited, t.amount_msat))
			return APP_ERANGE;
		break;
	default:
		return APP_EINVAL;
	}
	if (need_acct && (r = map_reserve(&l->accounts, l->hkey)) != 0)
		return r;
	size_t n = ledger_record_format(line, sizeof line, &t);
	if (n == 0)
		return APP_EINVAL;
	if ((r = journal_reserve(l, n)) != 0)
		return r;
	if (l->jfn && l->jfn(l->jarg, line, n) != 0)
		return APP_EIO;

	/* commit: nothing below can fail */
	switch (t.type) {
	case LEDGER_QUOTE: {
		struct quote_v *q = map_put(&l->quotes, l->hkey, key);
		memcpy(q->job, t.job, 32);
		memcpy(q->client, t.client, 32);
		q->amount = t.amount_msat;
		q->expires_at = t.expires_at;
		q->created_at = t.at;
		break;
	}
	case LEDGER_INVOICE:
	case LEDGER_TOPUP: {
		struct inv_v *v = map_put(&l->invoices, l->hkey, t.payment_hash);
		v->is_topup = t.type == LEDGER_TOPUP;
		if (v->is_topup) {
			memcpy(v->client, t.client, 32);
		} else {
			const struct quote_v *q = map_find(&l->quotes, l->hkey, key);
			memcpy(v->client, q->client, 32);
			memcpy(v->quote_id, t.quote_id, QUOTE_ID_LEN);
		}
		v->amount = t.amount_msat;
		v->expires_at = t.expires_at;
		break;
	}
	case LEDGER_PAID:
		inv->paid = 1;
		inv->paid_msat = t.amount_msat;
		inv->settled_at = t.settled_at;
		if (need_acct)
			acct = map_put(&l->accounts, l->hkey, inv->client);
		*acct = newacct;
		log_info("event=ledger_paid payment_hash=%02x%02x%02x%02x%02x%02x%02x%02x amount_msat=%llu seq=%llu",
			 t.payment_hash[0], t.payment_hash[1], t.payment_hash[2], t.payment_hash[3], t.payment_hash[4],
			 t.payment_hash[5], t.payment_hash[6], t.payment_hash[7], (unsigned long long)t.amount_msat,
			 (unsigned long long)t.seq);
		break;
	case LEDGER_DEBIT:
		job = map_put(&l->jobs, l->hkey, t.job);
		memcpy(job->client, t.client, 32);
		job->amount = t.amount_msat;
		job->state = 1;
		*acct = newacct;
		break;
	case LEDGER_CREDIT:
		if (job)
			job->state = 2;
		else
			((struct cref_v *)map_put(&l->crefs, l->hkey, key))->present = 1;
		if (need_acct)
			acct = map_put(&l->accounts, l->hkey, t.client);
		*acct = newacct;
		break;
	}
	memcpy(l->journal + l->jlen, line, n + 1);
	l->jlen += n;
	l->seq = t.seq;
	rec->seq = t.seq;
	return 0;
}

int ledger_add_quote(struct ledger *l, const struct quote *q, uint64_t at)
{
	struct ledger_record r;
	memset(&r, 0, sizeof r);
	r.type = LEDGER_QUOTE;
	r.at = at;
	memcpy(r.quote_id, q->id, QUOTE_ID_LEN);
	memcpy(r.job, q->job, 32);
	memcpy(r.client, q->client, 32);
	r.amount_msat = q->amount_msat;
	r.expires_at = q->expires_at;
	return ledger_append(l, &r);
}

int ledger_add_invoice(struct ledger *l, const uint8_t payment_hash[32], const uint8_t quote_id[QUOTE_ID_LEN],
		       uint64_t amount_msat, uint64_t expires_at, uint64_t at)
{
	struct ledger_record r;
	memset(&r, 0, sizeof r);
	r.type = LEDGER_INVOICE;
	r.at = at;
	memcpy(r.payment_hash, payment_hash, 32);
	memcpy(r.quote_id, quote_id, QUOTE_ID_LEN);
	r.amount_msat = amount_msat;
	r.expires_at = expires_at;
	return ledger_append(l, &r);
}

int ledger_add_topup(struct ledger *l, const uint8_t payment_hash[32], const uint8_t client[32],
		     uint64_t amount_msat, uint64_t expires_at, uint64_t at)
{
	struct ledger_record r;
	memset(&r, 0, sizeof r);
	r.type = LEDGER_TOPUP;
	r.at = at;
	memcpy(r.payment_hash, payment_hash, 32);
	memcpy(r.client, client, 32);
	r.amount_msat = amount_msat;
	r.expires_at = expires_at;
	return ledger_append(l, &r);
}

int ledger_add_paid(struct ledger *l, const uint8_t payment_hash[32], uint64_t amount_msat, uint64_t settled_at,
		    uint64_t at)
{
	struct ledger_record r;
	memset(&r, 0, sizeof r);
	r.type = LEDGER_PAID;
	r.at = at;
	memcpy(r.payment_hash, payment_hash, 32);
	r.amount_msat = amount_msat;
	r.settled_at = settled_at;
	return ledger_append(l, &r);
}

int ledger_add_debit(struct ledger *l, const uint8_t job[32], const uint8_t client[32], uint64_t amount_msat,
		     uint64_t at)
{
	struct ledger_record r;
	memset(&r, 0, sizeof r);
	r.type = LEDGER_DEBIT;
	r.at = at;
	memcpy(r.job, job, 32);
	memcpy(r.client, client, 32);
	r.amount_msat = amount_msat;
	return ledger_append(l, &r);
}

int ledger_add_credit(struct ledger *l, const uint8_t client[32], uint64_t amount_msat, const char *reason,
		      const uint8_t ref[32], uint64_t at)
{
	struct ledger_record r;
	memset(&r, 0, sizeof r);
	if (!reason || strnlen(reason, LEDGER_REASON_MAX + 1) > LEDGER_REASON_MAX)
		return APP_EINVAL;
	r.type = LEDGER_CREDIT;
	r.at = at;
	memcpy(r.client, client, 32);
	r.amount_msat = amount_msat;
	memcpy(r.reason, reason, strlen(reason) + 1);
	memcpy(r.ref, ref, 32);
	return ledger_append(l, &r);
}

int ledger_refund_job(struct ledger *l, const uint8_t job[32], uint64_t at)
{
	const struct job_v *j = map_find(&l->jobs, l->hkey, job);
	if (!j)
		return APP_ENOTFOUND;
	if (j->state == 2)
		return APP_EEXIST;
	return ledger_add_credit(l, j->client, j->amount, LEDGER_REASON_REFUND, job, at);
}

uint64_t ledger_balance(const struct ledger *l, const uint8_t client[32])
{
	const struct acct_v *a = map_find(&l->accounts, l->hkey, client);
	return a ? a->balance : 0;
}

static void fill_account(struct ledger_account *out, const uint8_t client[32], const struct acct_v *a)
{
	memcpy(out->client, client, 32);
	out->balance_msat = a->balance;
	out->paid_msat = a->paid;
	out->debited_msat = a->debited;
	out->credited_msat = a->credited;
}

int ledger_account_get(const struct ledger *l, const uint8_t client[32], struct ledger_account *out)
{
	const struct acct_v *a = map_find(&l->accounts, l->hkey, client);
	if (!a)
		return APP_ENOTFOUND;
	fill_account(out, client, a);
	return 0;
}

static int cmp_account(const void *a, const void *b)
{
	return memcmp(((const struct ledger_account *)a)->client, ((const struct ledger_account *)b)->client, 32);
}

int ledger_accounts(const struct ledger *l, struct ledger_account **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (l->accounts.n == 0)
		return 0;
	struct ledger_account *v = calloc(l->accounts.n, sizeof *v);
	if (!v)
		return APP_ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < l->accounts.cap; i++) {
		const uint8_t *s = map_slot(&l->accounts, i);
		if (s[0])
			fill_account(&v[k++], s + 1, (const struct acct_v *)(const void *)(s + SLOT_VAL_OFF));
	}
	qsort(v, k, sizeof *v, cmp_account);
	*out = v;
	*n = k;
	return 0;
}

int ledger_invoice_get(const struct ledger *l, const uint8_t payment_hash[32], struct ledger_invoice_info *out)
{
	const struct inv_v *v = map_find(&l->invoices, l->hkey, payment_hash);
	if (!v)
		return APP_ENOTFOUND;
	memset(out, 0, sizeof *out);
	out->is_topup = v->is_topup;
	memcpy(out->quote_id, v->quote_id, QUOTE_ID_LEN);
	memcpy(out->client, v->client, 32);
	out->amount_msat = v->amount;
	out->expires_at = v->expires_at;
	out->paid = v->paid;
	out->paid_msat = v->paid_msat;
	out->settled_at = v->settled_at;
	return 0;
}

int ledger_quote_get(const struct ledger *l, const uint8_t quote_id[QUOTE_ID_LEN], struct quote *out)
{
	uint8_t key[32];
	quote_key(key, quote_id);
	const struct quote_v *q = map_find(&l->quotes, l->hkey, key);
	if (!q)
		return APP_ENOTFOUND;
	memset(out, 0, sizeof *out);
	memcpy(out->id, quote_id, QUOTE_ID_LEN);
	memcpy(out->job, q->job, 32);
	memcpy(out->client, q->client, 32);
	out->amount_msat = q->amount;
	out->created_at = q->created_at;
	out->expires_at = q->expires_at;
	return 0;
}

int ledger_job_state(const struct ledger *l, const uint8_t job[32])
{
	const struct job_v *j = map_find(&l->jobs, l->hkey, job);
	return j ? j->state : 0;
}

int ledger_replay(struct ledger **out, const char **reason, size_t *line_no, const char *text, size_t len)
{
	struct ledger *l = NULL;
	const char *why = NULL;
	size_t ln = 0;
	int r;

	*out = NULL;
	if (len > LEDGER_JOURNAL_MAX) {
		r = APP_ETOOBIG;
		why = "journal longer than LEDGER_JOURNAL_MAX";
		goto out;
	}
	if ((r = ledger_new(&l)) != 0) {
		why = "out of memory";
		goto out;
	}
	size_t pos = 0;
	while (pos < len) {
		ln++;
		const char *nl = memchr(text + pos, '\n', len - pos);
		if (!nl) {
			r = APP_EPARSE;
			why = "last record has no newline (truncated journal)";
			goto out;
		}
		size_t n = (size_t)(nl - (text + pos)) + 1;
		struct ledger_record rec;
		if ((r = ledger_record_parse(&rec, &why, text + pos, n)) != 0)
			goto out;
		if (rec.seq != l->seq + 1) {
			r = APP_EROLLBACK;
			why = "record out of sequence (gap, repeat or reordering)";
			goto out;
		}
		if ((r = ledger_append(l, &rec)) != 0) {
			why = r == APP_EEXIST	       ? "record repeats one already applied"
			      : r == APP_ENOTFOUND     ? "record names an unknown quote, invoice or job"
			      : r == APP_ELIMIT	       ? "debit above the balance"
			      : r == APP_EEXPIRED      ? "paid after the invoice expired"
			      : r == APP_ERANGE	       ? "amount out of range"
			      : r == APP_EREFUSED      ? "refund to another client"
						       : "record refused";
			goto out;
		}
		/* the stored line must be the canonical form of what was read */
		if (memcmp(l->journal + l->jlen - n, text + pos, n) != 0) {
			r = APP_EPARSE;
			why = "record is not in canonical form";
			goto out;
		}
		pos += n;
	}
	*out = l;
	l = NULL;
	ln = 0;
	r = 0;
out:
	ledger_free(l);
	if (reason)
		*reason = r ? why : NULL;
	if (line_no)
		*line_no = ln;
	return r;
}
