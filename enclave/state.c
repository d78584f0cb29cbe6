/*
 * state.c: the persistent state: ledger + job table over the journal (state.h).
 */
#include "enclave/state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/hex.h"
#include "appliance/log.h"
#include "billing/ledger.h"
#include "enclave/hmap.h"
#include "enclave/runtime/journal.h"

struct estate {
	struct journal *j;
	struct ledger *l;
	struct hmap *jobs;     /* id -> struct estate_job */
	struct hmap *invoices; /* payment_hash -> struct estate_job (not owned) */
	size_t max_jobs;
	size_t active;
	uint64_t seq; /* last J1 seq */
	struct estate_invoice *unpaid;
	size_t nunpaid, capunpaid;
};

/* ---- record lines ---- */

size_t estate_format_record(char *buf, size_t cap, const struct estate_record *r)
{
	char job[65], h[65];
	hex_encode(job, r->job, 32);
	int n;
	if (r->seen) {
		char cl[65];
		hex_encode(cl, r->client, 32);
		n = snprintf(buf, cap, "J1 %llu %llu seen %s %s %llu %d", (unsigned long long)r->seq,
			     (unsigned long long)r->at, job, cl, (unsigned long long)r->created_at, r->encrypted ? 1 : 0);
	} else if (r->has_hash) {
		hex_encode(h, r->hash, 32);
		n = snprintf(buf, cap, "J1 %llu %llu state %s %s %s", (unsigned long long)r->seq, (unsigned long long)r->at,
			     job, job_state_name(r->state), h);
	} else if (r->reason[0]) {
		n = snprintf(buf, cap, "J1 %llu %llu state %s %s %s", (unsigned long long)r->seq, (unsigned long long)r->at,
			     job, job_state_name(r->state), r->reason);
	} else {
		n = snprintf(buf, cap, "J1 %llu %llu state %s %s", (unsigned long long)r->seq, (unsigned long long)r->at, job,
			     job_state_name(r->state));
	}
	return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

static int reason_ok(const char *s, size_t n)
{
	if (n < 1 || n > ESTATE_REASON_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

/* Splits line into at most max tokens separated by single spaces. Returns the count or -1. */
static int split(const char *line, size_t len, const char **tok, size_t *tlen, int max)
{
	int n = 0;
	size_t i = 0;
	while (i < len) {
		if (n == max)
			return -1;
		size_t s = i;
		while (i < len && line[i] != ' ')
			i++;
		if (i == s)
			return -1; /* empty token: double space or leading/trailing space */
		tok[n] = line + s;
		tlen[n] = i - s;
		n++;
		if (i < len) {
			i++;
			if (i == len)
				return -1;
		}
	}
	return n;
}

static int dec(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
			return -1;
	}
	*out = v;
	return 0;
}

static int hex32(const char *s, size_t n, uint8_t out[32])
{
	return n == 64 && hex_is_lower(s, n) && hex_decode(out, 32, s, n, 1) == 0 ? 0 : -1;
}

int estate_parse_record(struct estate_record *out, const char **reason, const char *line, size_t len)
{
	const char *t[9];
	size_t tl[9];
	const char *why = "malformed J1 record";
	memset(out, 0, sizeof *out);
	int n = split(line, len, t, tl, 9);
	if (n < 6 || tl[0] != 2 || memcmp(t[0], "J1", 2)) {
		why = "not a J1 record";
		goto bad;
	}
	if (dec(t[1], tl[1], &out->seq) || out->seq == 0 || dec(t[2], tl[2], &out->at)) {
		why = "bad seq or time";
		goto bad;
	}
	if (hex32(t[4], tl[4], out->job)) {
		why = "bad job id";
		goto bad;
	}
	if (tl[3] == 4 && !memcmp(t[3], "seen", 4)) {
		out->seen = 1;
		if (n != 8 || hex32(t[5], tl[5], out->client) || dec(t[6], tl[6], &out->created_at) || tl[7] != 1 ||
		    (t[7][0] != '0' && t[7][0] != '1')) {
			why = "bad seen record";
			goto bad;
		}
		out->encrypted = t[7][0] == '1';
	} else if (tl[3] == 5 && !memcmp(t[3], "state", 5)) {
		if (n < 6 || n > 7 || job_state_parse(&out->state, t[5], tl[5]) != 0) {
			why = "bad state";
			goto bad;
		}
		int want_hash = out->state == JOB_INVOICED || out->state == JOB_DONE;
		int want_reason = out->state == JOB_FAILED;
		if (want_hash) {
			if (n != 7 || hex32(t[6], tl[6], out->hash)) {
				why = "state needs a 64-hex argument";
				goto bad;
			}
			out->has_hash = 1;
		} else if (want_reason) {
			if (n != 7 || !reason_ok(t[6], tl[6])) {
				why = "failed needs a reason word";
				goto bad;
			}
			memcpy(out->reason, t[6], tl[6]);
			out->reason[tl[6]] = 0;
		} else if (n != 6) {
			why = "unexpected argument";
			goto bad;
		}
	} else {
		why = "unknown J1 record type";
		goto bad;
	}
	/* canonical: the line must be exactly what we would write */
	char buf[JOURNAL_RECORD_MAX + 1];
	size_t fl = estate_format_record(buf, sizeof buf, out);
	if (fl != len || memcmp(buf, line, len)) {
		why = "not in canonical form";
		goto bad;
	}
	if (reason)
		*reason = NULL;
	return 0;
bad:
	if (reason)
		*reason = why;
	return APP_EPARSE;
}

/* ---- job table ---- */

static int add_job(struct estate *st, struct estate_job **out, const struct estate_record *r)
{
	if (hmap_get(st->jobs, r->job))
		return APP_EEXIST;
	if (hmap_count(st->jobs) >= st->max_jobs)
		return APP_ELIMIT;
	struct estate_job *jb = calloc(1, sizeof *jb);
	if (!jb)
		return APP_ENOMEM;
	memcpy(jb->id, r->job, 32);
	memcpy(jb->client, r->client, 32);
	jb->created_at = r->created_at;
	jb->encrypted = r->encrypted;
	jb->state = JOB_RECEIVED;
	int rc = hmap_put(st->jobs, jb->id, jb);
	if (rc) {
		free(jb);
		return rc;
	}
	st->active++;
	if (out)
		*out = jb;
	return 0;
}

static int apply_state(struct estate *st, struct estate_job *jb, const struct estate_record *r)
{
	if (!job_transition_ok(jb->state, r->state))
		return APP_ESTATE;
	if (r->state == JOB_INVOICED) {
		int rc = hmap_put(st->invoices, r->hash, jb);
		if (rc)
			return rc;
		memcpy(jb->payment_hash, r->hash, 32);
		jb->has_invoice = 1;
	} else if (r->state == JOB_DONE) {
		memcpy(jb->result_id, r->hash, 32);
		jb->has_result = 1;
	} else if (r->state == JOB_FAILED) {
		memcpy(jb->reason, r->reason, sizeof jb->reason);
	}
	jb->state = r->state;
	if (job_state_terminal(r->state) && st->active)
		st->active--;
	return 0;
}

static int journal_write(struct estate *st, struct estate_record *r)
{
	char buf[JOURNAL_RECORD_MAX + 1];
	r->seq = st->seq + 1;
	size_t n = estate_format_record(buf, sizeof buf, r);
	if (!n)
		return APP_EINTERNAL;
	int rc = journal_append(st->j, buf, n);
	if (rc == 0)
		st->seq = r->seq;
	return rc;
}

static int ledger_hook(void *arg, const char *line, size_t len)
{
	struct estate *st = arg;
	if (len && line[len - 1] == '\n')
		len--;
	return journal_append(st->j, line, len);
}

/* ---- replay ---- */

struct replay {
	struct estate *st;
	char *ltext; /* L1 lines */
	size_t llen, lcap;
	char *err;
	size_t errcap;
	uint64_t index;
};

static int unpaid_add(struct estate *st, const uint8_t ph[32], uint64_t amount, uint64_t expires)
{
	if (st->nunpaid == st->capunpaid) {
		size_t nc = st->capunpaid ? st->capunpaid * 2 : 16;
		if (nc > LEDGER_MAX_RECORDS)
			return APP_ELIMIT;
		struct estate_invoice *p = realloc(st->unpaid, nc * sizeof *p);
		if (!p)
			return APP_ENOMEM;
		st->unpaid = p;
		st->capunpaid = nc;
	}
	memcpy(st->unpaid[st->nunpaid].payment_hash, ph, 32);
	st->unpaid[st->nunpaid].amount_msat = amount;
	st->unpaid[st->nunpaid].expires_at = expires;
	st->nunpaid++;
	return 0;
}

static void unpaid_del(struct estate *st, const uint8_t ph[32])
{
	for (size_t i = 0; i < st->nunpaid; i++)
		if (!memcmp(st->unpaid[i].payment_hash, ph, 32)) {
			st->unpaid[i] = st->unpaid[--st->nunpaid];
			return;
		}
}

static int replay_record(void *arg, const char *rec, size_t len, uint64_t index)
{
	struct replay *rp = arg;
	struct estate *st = rp->st;
	const char *why = NULL;
	int rc;
	rp->index = index;
	if (len >= 3 && !memcmp(rec, "L1 ", 3)) {
		struct ledger_record lr;
		if ((rc = ledger_record_parse(&lr, &why, rec, len)) != 0)
			goto bad;
		if (lr.type == LEDGER_INVOICE || lr.type == LEDGER_TOPUP) {
			if ((rc = unpaid_add(st, lr.payment_hash, lr.amount_msat, lr.expires_at)) != 0) {
				why = "too many invoices";
				goto bad;
			}
		} else if (lr.type == LEDGER_PAID) {
			unpaid_del(st, lr.payment_hash);
		}
		size_t need;
		if (__builtin_add_overflow(rp->llen, len + 2, &need) || need > LEDGER_JOURNAL_MAX) {
			rc = APP_ETOOBIG;
			why = "ledger records over LEDGER_JOURNAL_MAX";
			goto bad;
		}
		if (need > rp->lcap) {
			size_t nc = rp->lcap ? rp->lcap : 4096;
			while (nc < need)
				nc *= 2;
			char *p = realloc(rp->ltext, nc);
			if (!p) {
				rc = APP_ENOMEM;
				why = "out of memory";
				goto bad;
			}
			rp->ltext = p;
			rp->lcap = nc;
		}
		memcpy(rp->ltext + rp->llen, rec, len);
		rp->llen += len;
		rp->ltext[rp->llen++] = '\n';
		rp->ltext[rp->llen] = 0;
		return 0;
	}
	struct estate_record r;
	if ((rc = estate_parse_record(&r, &why, rec, len)) != 0)
		goto bad;
	if (r.seq != st->seq + 1) {
		rc = APP_EROLLBACK;
		why = "J1 sequence number out of order (gap, repeat or reordering)";
		goto bad;
	}
	if (r.seen) {
		if ((rc = add_job(st, NULL, &r)) != 0) {
			why = rc == APP_EEXIST ? "job seen twice" : "cannot add the job";
			goto bad;
		}
	} else {
		struct estate_job *jb = hmap_get(st->jobs, r.job);
		if (!jb) {
			rc = APP_ENOTFOUND;
			why = "state change of an unknown job";
			goto bad;
		}
		if ((rc = apply_state(st, jb, &r)) != 0) {
			why = rc == APP_ESTATE ? "state change the state machine forbids" : "payment_hash used twice";
			goto bad;
		}
	}
	st->seq = r.seq;
	return 0;
bad:
	if (rp->err && rp->errcap)
		snprintf(rp->err, rp->errcap, "journal record %llu: %s (%s)", (unsigned long long)index,
			 why ? why : "refused", app_errname(rc));
	return rc ? rc : APP_EPARSE;
}

int estate_open(struct estate **out, char *err, size_t errcap, struct journal *j, size_t max_jobs)
{
	struct replay rp;
	struct estate *st = calloc(1, sizeof *st);
	int rc = APP_ENOMEM;
	*out = NULL;
	memset(&rp, 0, sizeof rp);
	if (err && errcap)
		err[0] = 0;
	if (!st)
		return APP_ENOMEM;
	st->j = j;
	st->max_jobs = max_jobs;
	if ((rc = hmap_new(&st->jobs, max_jobs)) != 0 || (rc = hmap_new(&st->invoices, max_jobs)) != 0)
		goto out;
	rp.st = st;
	rp.err = err;
	rp.errcap = errcap;
	uint64_t n = 0;
	if ((rc = journal_replay(j, replay_record, &rp, &n)) != 0) {
		if (err && errcap && !err[0])
			snprintf(err, errcap, "journal: cannot read (%s)", app_errname(rc));
		goto out;
	}
	const char *why = NULL;
	size_t line = 0;
	if ((rc = ledger_replay(&st->l, &why, &line, rp.ltext ? rp.ltext : "", rp.llen)) != 0) {
		if (err && errcap)
			snprintf(err, errcap, "journal: ledger record %zu: %s (%s)", line, why ? why : "refused",
				 app_errname(rc));
		goto out;
	}
	ledger_set_journal(st->l, ledger_hook, st);
	log_info("event=journal_replayed records=%llu jobs=%zu active=%zu ledger_records=%llu unpaid_invoices=%zu",
		 (unsigned long long)n, hmap_count(st->jobs), st->active, (unsigned long long)ledger_count(st->l),
		 st->nunpaid);
	*out = st;
	st = NULL;
	rc = 0;
out:
	free(rp.ltext);
	estate_free(st, NULL);
	return rc;
}

struct free_rt_ctx {
	void (*fn)(void *rt);
};

static int free_rt_cb(void *arg, const uint8_t key[32], void *val)
{
	struct free_rt_ctx *c = arg;
	struct estate_job *jb = val;
	(void)key;
	if (jb->rt)
		c->fn(jb->rt);
	jb->rt = NULL;
	return 0;
}

void estate_free(struct estate *st, void (*free_rt)(void *rt))
{
	if (!st)
		return;
	if (free_rt && st->jobs) {
		struct free_rt_ctx c = {free_rt};
		(void)hmap_foreach(st->jobs, free_rt_cb, &c);
	}
	hmap_free(st->invoices, NULL);
	hmap_free(st->jobs, free);
	ledger_free(st->l);
	free(st->unpaid);
	free(st);
}

struct ledger *estate_ledger(struct estate *st)
{
	return st->l;
}

struct estate_job *estate_job(struct estate *st, const uint8_t id[32])
{
	return hmap_get(st->jobs, id);
}

struct estate_job *estate_job_by_invoice(struct estate *st, const uint8_t payment_hash[32])
{
	return hmap_get(st->invoices, payment_hash);
}

int estate_job_add(struct estate *st, struct estate_job **out, const uint8_t id[32], const uint8_t client[32],
		   uint64_t created_at, int encrypted, uint64_t at)
{
	struct estate_record r;
	memset(&r, 0, sizeof r);
	r.seen = 1;
	r.at = at;
	memcpy(r.job, id, 32);
	memcpy(r.client, client, 32);
	r.created_at = created_at;
	r.encrypted = encrypted;
	*out = NULL;
	if (hmap_get(st->jobs, id))
		return APP_EEXIST;
	if (hmap_count(st->jobs) >= st->max_jobs)
		return APP_ELIMIT;
	int rc = journal_write(st, &r);
	if (rc)
		return rc;
	return add_job(st, out, &r);
}

int estate_job_set(struct estate *st, struct estate_job *job, enum job_state to, const void *arg, uint64_t at)
{
	struct estate_record r;
	memset(&r, 0, sizeof r);
	r.at = at;
	r.state = to;
	memcpy(r.job, job->id, 32);
	if (!job_transition_ok(job->state, to))
		return APP_ESTATE;
	if (to == JOB_INVOICED || to == JOB_DONE) {
		if (!arg)
			return APP_EINVAL;
		memcpy(r.hash, arg, 32);
		r.has_hash = 1;
		if (to == JOB_INVOICED && hmap_get(st->invoices, r.hash))
			return APP_EEXIST;
	} else if (to == JOB_FAILED) {
		const char *why = arg ? arg : "failed";
		if (!reason_ok(why, strlen(why)))
			return APP_EINVAL;
		memcpy(r.reason, why, strlen(why) + 1);
	} else if (arg) {
		return APP_EINVAL;
	}
	int rc = journal_write(st, &r);
	if (rc)
		return rc;
	return apply_state(st, job, &r);
}

size_t estate_job_count(const struct estate *st)
{
	return hmap_count(st->jobs);
}

size_t estate_active_count(const struct estate *st)
{
	return st->active;
}

struct foreach_ctx {
	int (*fn)(void *arg, struct estate_job *job);
	void *arg;
};

static int foreach_cb(void *arg, const uint8_t key[32], void *val)
{
	struct foreach_ctx *c = arg;
	(void)key;
	return c->fn(c->arg, val);
}

int estate_foreach(struct estate *st, int (*fn)(void *arg, struct estate_job *job), void *arg)
{
	struct foreach_ctx c = {fn, arg};
	return hmap_foreach(st->jobs, foreach_cb, &c);
}

struct evict_ctx {
	uint64_t before;
	uint8_t (*ids)[32];
	size_t n, cap;
};

static int evict_collect(void *arg, const uint8_t key[32], void *val)
{
	struct evict_ctx *c = arg;
	struct estate_job *jb = val;
	if (job_state_terminal(jb->state) && !jb->rt && jb->created_at < c->before && c->n < c->cap)
		memcpy(c->ids[c->n++], key, 32);
	return 0;
}

size_t estate_evict(struct estate *st, uint64_t before, void (*free_rt)(void *rt))
{
	struct evict_ctx c = {before, NULL, 0, hmap_count(st->jobs)};
	if (!c.cap || !(c.ids = malloc(c.cap * sizeof *c.ids)))
		return 0;
	(void)hmap_foreach(st->jobs, evict_collect, &c);
	for (size_t i = 0; i < c.n; i++) {
		struct estate_job *jb = hmap_del(st->jobs, c.ids[i]);
		if (!jb)
			continue;
		if (jb->has_invoice && hmap_get(st->invoices, jb->payment_hash) == jb)
			(void)hmap_del(st->invoices, jb->payment_hash);
		if (free_rt && jb->rt)
			free_rt(jb->rt);
		free(jb);
	}
	free(c.ids);
	return c.n;
}

int estate_unpaid_invoices(const struct estate *st, struct estate_invoice **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!st->nunpaid)
		return 0;
	*out = malloc(st->nunpaid * sizeof **out);
	if (!*out)
		return APP_ENOMEM;
	memcpy(*out, st->unpaid, st->nunpaid * sizeof **out);
	*n = st->nunpaid;
	return 0;
}
