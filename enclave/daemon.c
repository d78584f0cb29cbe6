/*
 * daemon.c: the instance's main loop and job state machine (daemon.h).
 */
#include "enclave/daemon.h"

#include <libwebsockets.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/event.h"
#include "appliance/filter.h"
#include "appliance/hex.h"
#include "appliance/keys.h"
#include "appliance/log.h"
#include "appliance/nec.h"
#include "billing/ledger.h"
#include "billing/nwc.h"
#include "billing/quote.h"
#include "enclave/announce.h"
#include "enclave/econfig.h"
#include "enclave/fetch.h"
#include "enclave/hmap.h"
#include "enclave/runtime/identity.h"
#include "enclave/job.h"
#include "enclave/runtime/journal.h"
#include "enclave/sjboot.h"
#include "enclave/limits.h"
#include "enclave/mbox.h"
#include "enclave/reply.h"
#include "enclave/runner.h"
#include "enclave/state.h"
#include "enclave/wallet.h"
#include "enclave/workq.h"
#include "relay-client/pool.h"

#define PROBE_THREADS 2
#define MAX_JOBS_HELD 200000      /* jobs in memory (seen within the replay window) */
#define REFUSED_MAX 65536         /* refused request ids remembered per generation */
#define RATELIM_KEYS 65536        /* pubkeys tracked by the rate limiter */
#define PUBLISH_TRIES 3           /* attempts to publish a result */
#define SHUTDOWN_FLUSH_MS 3000    /* pending publishes at shutdown */
#define TICK_MS 1000              /* timers */
#define STATS_S 60
#define ANNOUNCE_MARGIN_S 600     /* republish this long before the attestation expires */
#define FUTURE_SKEW_S 60          /* requests dated this far ahead are accepted */

struct jrt {
	struct estate_job *job; /* back pointer */
	struct job_spec *spec;  /* until the run starts */
	struct event *request;  /* until the run starts */
	uint64_t *sizes;        /* per dataset, from the probe */
	uint64_t total;
	struct quote q;
	uint64_t price, debited;
	struct run_ctx *probe, *run;
	uint64_t last_progress_ms;
	int timed_out, shutdown;
	unsigned publish_tries;
	struct event *result;
};

struct daemon {
	const struct econfig *cfg;
	struct identity *id;
	struct journal *j;
	struct sjboot *sjb; /* the sealed journal's keystores and store ([keystore]; NULL: journal file) */
	struct estate *st;
	struct ledger *l;
	struct relay_pool *pool;
	struct mbox *mb;
	struct wallet *w;
	struct workq *probeq, *jobq;
	struct ratelim *rl;
	struct hmap *refused[2]; /* current and previous generation */
	uint64_t refused_rotate_at;
	struct hmap *pending;    /* result event id -> struct estate_job (publishing) */
	struct estate_job **running;
	size_t nrunning;
	struct event *releases[NEC_RELEASES_MAX];
	size_t nreleases;
	struct job_policy pol;
	struct quote_config qc;
	struct limit_counters cnt;
	int dev;
	uint64_t next_announce, next_tick_ms, next_stats;
	atomic_int stop;
	int fatal;
	uint8_t me[32];
	char mehex[65];
};

/* ---- small helpers ---- */

static uint64_t now_s(void)
{
	return (uint64_t)time(NULL);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* 16 hex digits: the identifier prefix logged for event ids, pubkeys and payment hashes. */
static const char *pfx(char out[17], const uint8_t id[32])
{
	hex_encode(out, id, 8);
	return out;
}

/* append: appends s to buf (NUL-terminated, cap bytes), truncating. */
static void append(char *buf, size_t cap, const char *s)
{
	size_t n = strlen(buf);
	if (n + 1 < cap)
		snprintf(buf + n, cap - n, "%s", s);
}

static void jrt_free(void *v)
{
	struct jrt *rt = v;
	if (!rt)
		return;
	job_spec_free(rt->spec);
	event_free(rt->request);
	free(rt->sizes);
	event_free(rt->result);
	/* probe/run contexts are freed when their final message arrives */
	free(rt);
}

static void journal_broken(struct daemon *d, int r)
{
	log_error("event=journal_failed err=%s action=stop", app_errname(r));
	d->fatal = 1;
	atomic_store(&d->stop, 1);
}

static void publish(struct daemon *d, const struct event *ev, relay_publish_cb cb)
{
	int r = relay_publish(d->pool, NULL, ev, NULL, 0, cb, d);
	if (r) {
		char id[17];
		log_warn("event=publish_refused id=%s kind=%u err=%s", pfx(id, ev->id), ev->kind, app_errname(r));
	}
}

static void send_feedback(struct daemon *d, const uint8_t req[32], const uint8_t client[32], int encrypted,
			  const char *status, const char *text, uint64_t amount, const char *bolt11, uint64_t expiration)
{
	struct reply_to to;
	struct event *ev = NULL;
	memcpy(to.request_id, req, 32);
	memcpy(to.client, client, 32);
	to.encrypted = encrypted;
	int r = reply_feedback(&ev, identity_keypair(d->id), &to, status, text, amount, bolt11, expiration, now_s());
	if (r) {
		char id[17];
		log_warn("event=feedback_failed job=%s status=%s err=%s", pfx(id, req), status, app_errname(r));
		return;
	}
	publish(d, ev, NULL);
	event_free(ev);
}

static void feedback(struct daemon *d, const struct estate_job *job, const char *status, const char *text,
		     uint64_t amount, const char *bolt11, uint64_t expiration)
{
	send_feedback(d, job->id, job->client, job->encrypted, status, text, amount, bolt11, expiration);
}

static int is_encrypted(const struct event *ev)
{
	for (size_t i = 0; i < ev->ntags; i++)
		if (!strcmp(ev->tags[i].v[0], "encrypted"))
			return 1;
	return 0;
}

static int refused_seen(struct daemon *d, const uint8_t id[32])
{
	return hmap_get(d->refused[0], id) || hmap_get(d->refused[1], id);
}

/* Starts a new generation of refused ids (the previous one is forgotten). */
static void refused_rotate(struct daemon *d)
{
	struct hmap *fresh = NULL;
	if (hmap_new(&fresh, REFUSED_MAX) != 0)
		return; /* keep both generations; retried at the next rotation */
	hmap_free(d->refused[1], NULL);
	d->refused[1] = d->refused[0];
	d->refused[0] = fresh;
}

static void refused_add(struct daemon *d, const uint8_t id[32])
{
	if (hmap_put(d->refused[0], id, (void *)1) == APP_ELIMIT) {
		refused_rotate(d); /* a full generation: start a new one early */
		if (hmap_put(d->refused[0], id, (void *)1) != 0)
			log_warn("event=refused_set_full");
	}
}

/* An error feedback for a request that never became a job. */
static void refuse(struct daemon *d, const struct event *ev, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void refuse(struct daemon *d, const struct event *ev, const char *fmt, ...)
{
	char text[JOB_ERR_MAX + 64], id[17];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	if (!strstr(text, "no payment was taken"))
		append(text, sizeof text, "; no payment was taken");
	refused_add(d, ev->id);
	log_info("event=request_refused id=%s", pfx(id, ev->id));
	send_feedback(d, ev->id, ev->pubkey, is_encrypted(ev), "error", text, 0, NULL, 0);
}

static void running_add(struct daemon *d, struct estate_job *job)
{
	if (d->nrunning < d->cfg->max_queue)
		d->running[d->nrunning++] = job;
}

static void running_del(struct daemon *d, struct estate_job *job)
{
	for (size_t i = 0; i < d->nrunning; i++)
		if (d->running[i] == job) {
			d->running[i] = d->running[--d->nrunning];
			return;
		}
}

/*
 * fail_job: the job fails with `text` for the client: a debited amount is
 * refunded as credit first (journaled), then the state (journaled), then the
 * error feedback.
 */
static void fail_job(struct daemon *d, struct estate_job *job, const char *reason, const char *text)
{
	struct jrt *rt = job->rt;
	char full[JOB_ERR_MAX + 160], id[17];
	uint64_t now = now_s();
	int r;
	if (job_state_terminal(job->state))
		return;
	snprintf(full, sizeof full, "%s", text);
	if (ledger_job_state(d->l, job->id) == 1) {
		struct ledger_account acct;
		uint64_t amount = rt ? rt->debited : 0;
		if ((r = ledger_refund_job(d->l, job->id, now)) != 0) {
			log_error("event=refund_failed job=%s err=%s", pfx(id, job->id), app_errname(r));
			if (r == APP_EIO || r == APP_ESTATE) {
				journal_broken(d, r);
				return;
			}
		} else {
			d->cnt.refunds++;
			if (ledger_account_get(d->l, job->client, &acct) != 0)
				acct.balance_msat = 0;
			char tail[160];
			if (amount)
				snprintf(tail, sizeof tail, "; %llu msat credited to your balance (now %llu msat): it pays your next job",
					 (unsigned long long)amount, (unsigned long long)acct.balance_msat);
			else
				snprintf(tail, sizeof tail, "; the amount was credited to your balance (now %llu msat)",
					 (unsigned long long)acct.balance_msat);
			append(full, sizeof full, tail);
		}
	} else {
		struct ledger_invoice_info inf;
		if (job->has_invoice && ledger_invoice_get(d->l, job->payment_hash, &inf) == 0 && inf.paid) {
			char tail[160];
			snprintf(tail, sizeof tail, "; your payment of %llu msat stays as credit for your next job (balance %llu msat)",
				 (unsigned long long)inf.paid_msat, (unsigned long long)ledger_balance(d->l, job->client));
			append(full, sizeof full, tail);
		} else if (job->state < JOB_PAID && !strstr(full, "no payment was taken")) {
			append(full, sizeof full, "; no payment was taken");
		}
	}
	if ((r = estate_job_set(d->st, job, JOB_FAILED, reason, now)) != 0) {
		journal_broken(d, r);
		return;
	}
	d->cnt.jobs_failed++;
	log_info("event=job_failed job=%s reason=%s", pfx(id, job->id), reason);
	feedback(d, job, "error", full, 0, NULL, 0);
	running_del(d, job);
	if (rt && !rt->probe && !rt->run) {
		jrt_free(rt);
		job->rt = NULL;
	}
}

static int set_state(struct daemon *d, struct estate_job *job, enum job_state to, const void *arg)
{
	int r = estate_job_set(d->st, job, to, arg, now_s());
	if (r) {
		char id[17];
		log_error("event=state_change_failed job=%s to=%s err=%s", pfx(id, job->id), job_state_name(to),
			  app_errname(r));
		if (r == APP_EIO || r == APP_ESTATE)
			journal_broken(d, r);
	}
	return r;
}

/* ---- the job flow ---- */

static void start_run(struct daemon *d, struct estate_job *job)
{
	struct jrt *rt = job->rt;
	char id[17];
	if (set_state(d, job, JOB_FETCHING, NULL) != 0)
		return;
	struct run_ctx *c = calloc(1, sizeof *c);
	if (!c) {
		fail_job(d, job, "nomem", "instance: out of memory");
		return;
	}
	c->cfg = d->cfg;
	c->id = d->id;
	c->mb = d->mb;
	c->spec = rt->spec;
	c->request = rt->request;
	c->sizes = rt->sizes;
	c->paid_msat = rt->debited;
	rt->spec = NULL;
	rt->request = NULL;
	rt->sizes = NULL;
	rt->run = c;
	int r = workq_submit(d->jobq, runner_run, runner_drop_run, c);
	if (r) {
		rt->run = NULL;
		run_ctx_free(c);
		d->cnt.busy++;
		fail_job(d, job, "busy", "busy: too many jobs are running; try again later");
		return;
	}
	running_add(d, job);
	log_info("event=job_started job=%s paid_msat=%llu", pfx(id, job->id), (unsigned long long)rt->debited);
}

/* Debits the price and starts the job (payment confirmed or credit sufficient). */
static void pay_and_start(struct daemon *d, struct estate_job *job, const char *how)
{
	struct jrt *rt = job->rt;
	char id[17], text[160];
	int r;
	if (atomic_load(&d->stop) || !d->jobq) {
		fail_job(d, job, "shutdown", "instance: shutting down");
		return;
	}
	if (rt->price) {
		if ((r = ledger_add_debit(d->l, job->id, job->client, rt->price, now_s())) != 0) {
			log_error("event=debit_failed job=%s err=%s", pfx(id, job->id), app_errname(r));
			if (r == APP_EIO) {
				journal_broken(d, r);
				return;
			}
			fail_job(d, job, "debit", "payment: the payment could not be applied to this job");
			return;
		}
		rt->debited = rt->price;
	}
	if (set_state(d, job, JOB_PAID, NULL) != 0)
		return;
	snprintf(text, sizeof text, "%s; fetching the datasets", how);
	feedback(d, job, "processing", text, 0, NULL, 0);
	rt->last_progress_ms = mono_ms();
	start_run(d, job);
}

static void on_probed(struct daemon *d, struct emsg *m)
{
	struct estate_job *job = estate_job(d->st, m->job);
	struct jrt *rt = job ? job->rt : NULL;
	char id[17], text[JOB_ERR_MAX + 64];
	uint64_t now = now_s();
	int r;
	if (!rt)
		return;
	if (rt->probe) {
		rt->probe->spec = NULL; /* borrowed from rt */
		rt->probe->request = NULL;
		run_ctx_free(rt->probe);
		rt->probe = NULL;
	}
	if (job->state != JOB_RECEIVED) {
		if (job_state_terminal(job->state)) {
			jrt_free(rt);
			job->rt = NULL;
		}
		return;
	}
	if (atomic_load(&d->stop)) {
		fail_job(d, job, "shutdown", "instance: shutting down");
		return;
	}
	if (m->rc) {
		if (m->rc == APP_ETOOBIG)
			d->cnt.dataset_too_big++;
		else if (m->rc != APP_ECANCELED)
			d->cnt.dataset_refused++;
		fail_job(d, job, m->rc == APP_ECANCELED ? "shutdown" : "dataset", m->why);
		return;
	}
	rt->sizes = m->sizes;
	m->sizes = NULL;
	rt->total = m->a;
	r = quote_make(&rt->q, &d->qc, job->id, job->client, rt->total, rt->spec->params.epochs, now);
	if (r) {
		d->cnt.price_refused++;
		if (r == APP_ELIMIT)
			snprintf(text, sizeof text,
				 "price: the job (%llu bytes x %u epochs) would cost more than this instance's maximum of %llu msat",
				 (unsigned long long)rt->total, rt->spec->params.epochs, (unsigned long long)d->qc.max_msat);
		else
			snprintf(text, sizeof text, "price: cannot price this job (%s)", app_errname(r));
		fail_job(d, job, "price", text);
		return;
	}
	rt->price = rt->q.amount_msat;
	if (rt->spec->has_bid && quote_check_bid(&rt->q, rt->spec->bid_msat) != 0) {
		d->cnt.price_refused++;
		snprintf(text, sizeof text, "bid: %llu msat is below the price of %llu msat",
			 (unsigned long long)rt->spec->bid_msat, (unsigned long long)rt->price);
		fail_job(d, job, "bid", text);
		return;
	}
	if (rt->price == 0) { /* a free instance (price 0): no ledger records */
		pay_and_start(d, job, "free job");
		return;
	}
	if ((r = ledger_add_quote(d->l, &rt->q, now)) != 0) {
		if (r == APP_EIO) {
			journal_broken(d, r);
			return;
		}
		fail_job(d, job, "quote", "price: the quote could not be recorded");
		return;
	}
	if (set_state(d, job, JOB_QUOTED, NULL) != 0)
		return;
	uint64_t balance = ledger_balance(d->l, job->client);
	log_info("event=quote job=%s amount_msat=%llu units=%llu balance_msat=%llu", pfx(id, job->id),
		 (unsigned long long)rt->price, (unsigned long long)rt->q.units, (unsigned long long)balance);
	if (balance >= rt->price) {
		d->cnt.credit_jobs++;
		snprintf(text, sizeof text, "paid from your credit: %llu msat (%llu msat left)", (unsigned long long)rt->price,
			 (unsigned long long)(balance - rt->price));
		pay_and_start(d, job, text);
		return;
	}
	char desc[WALLET_DESC_MAX], hex[65];
	hex_encode(hex, job->id, 32);
	snprintf(desc, sizeof desc, "appliance job %s", hex);
	if ((r = wallet_make_invoice(d->w, job->id, rt->price, desc, d->cfg->invoice_expiry)) != 0) {
		d->cnt.busy++;
		fail_job(d, job, "busy", "busy: the wallet queue is full; try again later");
	}
}

static void on_invoice(struct daemon *d, struct emsg *m)
{
	struct estate_job *job = estate_job(d->st, m->job);
	struct jrt *rt = job ? job->rt : NULL;
	char id[17];
	int r;
	if (!rt || job->state != JOB_QUOTED)
		return;
	if (atomic_load(&d->stop)) {
		fail_job(d, job, "shutdown", "instance: shutting down");
		return;
	}
	if (m->rc) {
		fail_job(d, job, "wallet", m->why);
		return;
	}
	if ((r = ledger_add_invoice(d->l, m->hash, rt->q.id, m->a, m->b, now_s())) != 0) {
		log_error("event=invoice_record_failed job=%s err=%s", pfx(id, job->id), app_errname(r));
		if (r == APP_EIO) {
			journal_broken(d, r);
			return;
		}
		fail_job(d, job, "wallet", "payment: the invoice could not be recorded");
		return;
	}
	if (set_state(d, job, JOB_INVOICED, m->hash) != 0)
		return;
	d->cnt.invoices++;
	feedback(d, job, "payment-required", "pay the invoice to start the job", rt->price, m->text, m->b);
}

static void on_paid(struct daemon *d, struct emsg *m)
{
	char h[17];
	int r = ledger_add_paid(d->l, m->hash, m->a, m->b, now_s());
	if (r == APP_EEXIST) {
		d->cnt.duplicate_payments++;
		log_info("event=payment_duplicate payment_hash=%s", pfx(h, m->hash));
		return;
	}
	if (r) {
		log_warn("event=payment_not_recorded payment_hash=%s err=%s", pfx(h, m->hash), app_errname(r));
		if (r == APP_EIO)
			journal_broken(d, r);
		return;
	}
	d->cnt.payments++;
	struct estate_job *job = estate_job_by_invoice(d->st, m->hash);
	if (!job || job->state != JOB_INVOICED || !job->rt) {
		log_info("event=payment_credited payment_hash=%s reason=no_waiting_job", pfx(h, m->hash));
		return;
	}
	log_info("event=payment payment_hash=%s amount_msat=%llu", pfx(h, m->hash), (unsigned long long)m->a);
	pay_and_start(d, job, "payment received");
}

static void on_expired(struct daemon *d, struct emsg *m)
{
	struct estate_job *job = estate_job_by_invoice(d->st, m->hash);
	if (job && job->state == JOB_INVOICED)
		fail_job(d, job, "expired", "payment: the invoice expired unpaid; no payment was taken");
}

static void on_stage(struct daemon *d, struct emsg *m)
{
	struct estate_job *job = estate_job(d->st, m->job);
	if (job && job->state == JOB_FETCHING && m->stage == JOB_TRAINING)
		(void)set_state(d, job, JOB_TRAINING, NULL);
}

static void on_progress(struct daemon *d, struct emsg *m)
{
	struct estate_job *job = estate_job(d->st, m->job);
	struct jrt *rt = job ? job->rt : NULL;
	char text[64];
	if (!rt || (job->state != JOB_TRAINING && job->state != JOB_FETCHING))
		return;
	uint64_t t = mono_ms();
	if (t - rt->last_progress_ms < (uint64_t)d->cfg->feedback_interval * 1000)
		return;
	rt->last_progress_ms = t;
	snprintf(text, sizeof text, "training: epoch %llu/%llu", (unsigned long long)m->a, (unsigned long long)m->b);
	feedback(d, job, "processing", text, 0, NULL, 0);
}

static void on_result_published(void *user, uint64_t publish_id, const uint8_t id[32],
				const struct relay_pub_result *res, size_t n);

static void publish_result(struct daemon *d, struct estate_job *job)
{
	struct jrt *rt = job->rt;
	int r = hmap_put(d->pending, rt->result->id, job);
	if (r && r != APP_EEXIST) {
		fail_job(d, job, "publish", "publish: the result could not be queued");
		return;
	}
	rt->publish_tries++;
	r = relay_publish(d->pool, NULL, rt->result, NULL, 0, on_result_published, d);
	if (r) {
		(void)hmap_del(d->pending, rt->result->id);
		fail_job(d, job, "publish", "publish: the result could not be queued");
	}
}

static void on_result_published(void *user, uint64_t publish_id, const uint8_t id[32],
				const struct relay_pub_result *res, size_t n)
{
	struct daemon *d = user;
	struct estate_job *job = hmap_del(d->pending, id);
	char jid[17], rid[17], text[160];
	(void)publish_id;
	if (!job || job->state != JOB_PUBLISHING || !job->rt)
		return;
	size_t ok = 0;
	for (size_t i = 0; i < n; i++)
		if (res[i].status == RELAY_PUB_ACCEPTED)
			ok++;
	if (!ok) {
		if (((struct jrt *)job->rt)->publish_tries < PUBLISH_TRIES && !atomic_load(&d->stop)) {
			publish_result(d, job);
			return;
		}
		fail_job(d, job, "publish", "publish: no relay accepted the result");
		return;
	}
	if (set_state(d, job, JOB_DONE, id) != 0)
		return;
	d->cnt.jobs_done++;
	log_info("event=job_done job=%s result=%s relays_ok=%zu", pfx(jid, job->id), pfx(rid, id), ok);
	hex_encode(text, id, 32);
	char msg[200];
	snprintf(msg, sizeof msg, "result published: %s", text);
	feedback(d, job, "success", msg, 0, NULL, 0);
	jrt_free(job->rt);
	job->rt = NULL;
}

static void on_run_done(struct daemon *d, struct emsg *m)
{
	struct estate_job *job = estate_job(d->st, m->job);
	struct jrt *rt = job ? job->rt : NULL;
	char text[JOB_ERR_MAX + 64];
	if (!rt)
		return;
	struct run_ctx *c = rt->run;
	rt->run = NULL;
	running_del(d, job);
	run_ctx_free(c);
	if (job_state_terminal(job->state)) {
		jrt_free(rt);
		job->rt = NULL;
		return;
	}
	if (m->rc == 0 && m->ev) {
		if (job->state == JOB_FETCHING && set_state(d, job, JOB_TRAINING, NULL) != 0)
			return;
		if (set_state(d, job, JOB_PUBLISHING, NULL) != 0)
			return;
		rt->result = m->ev;
		m->ev = NULL;
		publish_result(d, job);
		return;
	}
	const char *reason = "run";
	if (rt->timed_out) {
		d->cnt.wall_time++;
		snprintf(text, sizeof text, "limit: the job exceeded this instance's wall time limit of %u s",
			 d->cfg->job_timeout);
		reason = "wall_time";
	} else if (rt->shutdown || m->rc == APP_ECANCELED) {
		snprintf(text, sizeof text, "instance: shutting down, the job was stopped");
		reason = "shutdown";
	} else {
		if (!strncmp(m->why, "limit: the result", 17) || !strncmp(m->why, "limit: the model", 16))
			d->cnt.result_too_big++;
		snprintf(text, sizeof text, "%s", m->why);
	}
	fail_job(d, job, reason, text);
}

static void drain(struct daemon *d)
{
	struct emsg *m = mbox_take(d->mb);
	while (m) {
		struct emsg *n = m->next;
		if (!d->fatal) {
			switch (m->type) {
			case EMSG_PROBED: on_probed(d, m); break;
			case EMSG_STAGE: on_stage(d, m); break;
			case EMSG_PROGRESS: on_progress(d, m); break;
			case EMSG_RUN_DONE: on_run_done(d, m); break;
			case EMSG_INVOICE: on_invoice(d, m); break;
			case EMSG_PAID: on_paid(d, m); break;
			case EMSG_EXPIRED: on_expired(d, m); break;
			}
		}
		emsg_free(m);
		m = n;
	}
}

/* ---- requests from relays ---- */

static void on_request(void *user, uint64_t sub, size_t relay, struct event **evp)
{
	struct daemon *d = user;
	struct event *ev = *evp;
	struct job_spec *spec = NULL;
	struct estate_job *job = NULL;
	char err[JOB_ERR_MAX], id[17], cl[17];
	uint64_t now = now_s();
	int r, first = 0;
	(void)sub;
	(void)relay;
	d->cnt.requests++;
	if (ev->kind != JOB_KIND_REQUEST || atomic_load(&d->stop))
		return;
	if (ev->created_at + d->cfg->request_max_age < now || ev->created_at > now + FUTURE_SKEW_S) {
		d->cnt.stale++;
		return;
	}
	if (estate_job(d->st, ev->id) || refused_seen(d, ev->id)) {
		d->cnt.replays++;
		return;
	}
	/* cheap addressing check before anything costs (the parser checks it again) */
	int np = 0, forme = 0;
	for (size_t i = 0; i < ev->ntags; i++)
		if (!strcmp(ev->tags[i].v[0], "p") && ev->tags[i].n >= 2) {
			np++;
			if (!strcmp(ev->tags[i].v[1], d->mehex))
				forme = 1;
		}
	if ((np && !forme) || (!np && !d->cfg->open)) {
		d->cnt.not_for_us++;
		return;
	}
	if (ratelim_hit(d->rl, ev->pubkey, now, &first) != 0) {
		d->cnt.rate_limited++;
		if (first)
			refuse(d, ev, "rate-limited: at most %u requests per %u s per pubkey; try again later",
			       d->cfg->rate_requests, d->cfg->rate_window);
		else
			refused_add(d, ev->id);
		return;
	}
	if (estate_active_count(d->st) >= d->cfg->max_queue) {
		d->cnt.busy++;
		refuse(d, ev, "busy: %u jobs are waiting or running; try again later", d->cfg->max_queue);
		return;
	}
	if (ev->content_len > d->cfg->max_request_bytes) {
		d->cnt.request_too_big++;
		refuse(d, ev, "request: content longer than %llu bytes", (unsigned long long)d->cfg->max_request_bytes);
		return;
	}
	r = job_request_parse(&spec, err, sizeof err, ev, identity_keypair(d->id), &d->pol);
	if (r == APP_ENOTFOUND) {
		d->cnt.not_for_us++;
		return;
	}
	if (r) {
		d->cnt.invalid++;
		log_info("event=request_invalid id=%s client=%s err=%s", pfx(id, ev->id), pfx(cl, ev->pubkey), app_errname(r));
		refuse(d, ev, "%s", err);
		return;
	}
	if ((r = estate_job_add(d->st, &job, ev->id, ev->pubkey, ev->created_at, spec->encrypted, now)) != 0) {
		job_spec_free(spec);
		if (r == APP_ELIMIT) {
			d->cnt.busy++;
			refuse(d, ev, "busy: too many recent jobs; try again later");
			return;
		}
		journal_broken(d, r);
		return;
	}
	struct jrt *rt = calloc(1, sizeof *rt);
	struct run_ctx *pc = calloc(1, sizeof *pc);
	if (!rt || !pc) {
		free(pc);
		free(rt);
		job_spec_free(spec);
		fail_job(d, job, "nomem", "instance: out of memory");
		return;
	}
	rt->job = job;
	rt->spec = spec;
	rt->request = ev;
	*evp = NULL; /* the job keeps the request for its result */
	job->rt = rt;
	pc->cfg = d->cfg;
	pc->id = d->id;
	pc->mb = d->mb;
	pc->spec = spec; /* borrowed: cleared before run_ctx_free */
	rt->probe = pc;
	log_info("event=request id=%s client=%s datasets=%zu encrypted=%d", pfx(id, ev->id), pfx(cl, ev->pubkey),
		 spec->ndatasets, spec->encrypted);
	if ((r = workq_submit(d->probeq, runner_probe, runner_drop_probe, pc)) != 0) {
		rt->probe = NULL;
		pc->spec = NULL;
		run_ctx_free(pc);
		d->cnt.busy++;
		fail_job(d, job, "busy", "busy: too many requests are being checked; try again later");
	}
}

static void on_relay_state(void *user, size_t relay, enum relay_state state, const char *detail)
{
	(void)user;
	if (state == RELAY_CONNECTED)
		log_info("event=relay_connected relay=%zu", relay);
	else if (state == RELAY_BACKOFF)
		log_warn("event=relay_backoff relay=%zu detail=\"%s\"", relay, detail ? detail : "");
}

static void wake(void *arg)
{
	struct daemon *d = arg;
	lws_cancel_service(relay_pool_lws_context(d->pool));
}

/* ---- announcements, timers, recovery ---- */

static int announce(struct daemon *d)
{
	struct event *att = NULL, *ev[ANNOUNCE_EVENTS] = {0};
	uint64_t now = now_s(), exp = 0;
	int r = identity_attest(d->id, &att, &exp, NULL, 0, now);
	if (r)
		goto out;
	const char *t = event_tag_value(att, "t");
	d->dev = t && !strcmp(t, "dev");
	if ((r = announce_build(ev, d->cfg, identity_keypair(d->id), att, (const struct event *const *)d->releases,
				d->nreleases, d->dev, now)) != 0) {
		log_error("event=announce_build err=%s", app_errname(r));
		goto out;
	}
	for (size_t i = 0; i < ANNOUNCE_EVENTS; i++)
		publish(d, ev[i], NULL);
	uint64_t next = now + d->cfg->announce_interval;
	if (exp && exp > now + ANNOUNCE_MARGIN_S && exp - ANNOUNCE_MARGIN_S < next)
		next = exp - ANNOUNCE_MARGIN_S;
	else if (exp && exp <= now + ANNOUNCE_MARGIN_S)
		next = now + 60;
	d->next_announce = next;
	log_info("event=announced pubkey=%s attestation=%s expires_at=%llu next_in_s=%llu", d->mehex,
		 d->dev ? "dev" : "prod", (unsigned long long)exp, (unsigned long long)(next - now));
out:
	event_free(att);
	for (size_t i = 0; i < ANNOUNCE_EVENTS; i++)
		event_free(ev[i]);
	if (r)
		d->next_announce = now + 60;
	return r;
}

static void log_stats(struct daemon *d)
{
	const struct limit_counters *c = &d->cnt;
	struct relay_pool_stats ps;
	uint64_t invalid = 0, delivered = 0, duplicate = 0;
	relay_pool_get_stats(d->pool, &ps);
	for (size_t i = 0; i < relay_pool_relay_count(d->pool); i++) {
		struct relay_status rs;
		if (relay_pool_relay_status(d->pool, i, &rs) == 0) {
			invalid += rs.events_invalid;
			delivered += rs.events_delivered;
			duplicate += rs.events_duplicate;
		}
	}
	log_info("event=stats requests=%llu not_for_us=%llu stale=%llu replays=%llu invalid=%llu rate_limited=%llu "
		 "busy=%llu request_too_big=%llu dataset_refused=%llu dataset_too_big=%llu price_refused=%llu "
		 "wall_time=%llu result_too_big=%llu invoices=%llu payments=%llu duplicate_payments=%llu credit_jobs=%llu "
		 "refunds=%llu done=%llu failed=%llu jobs_held=%zu active=%zu publishes_pending=%llu events_delivered=%llu "
		 "events_duplicate=%llu events_invalid=%llu",
		 (unsigned long long)c->requests, (unsigned long long)c->not_for_us, (unsigned long long)c->stale,
		 (unsigned long long)c->replays, (unsigned long long)c->invalid, (unsigned long long)c->rate_limited,
		 (unsigned long long)c->busy, (unsigned long long)c->request_too_big, (unsigned long long)c->dataset_refused,
		 (unsigned long long)c->dataset_too_big, (unsigned long long)c->price_refused,
		 (unsigned long long)c->wall_time, (unsigned long long)c->result_too_big, (unsigned long long)c->invoices,
		 (unsigned long long)c->payments, (unsigned long long)c->duplicate_payments,
		 (unsigned long long)c->credit_jobs, (unsigned long long)c->refunds, (unsigned long long)c->jobs_done,
		 (unsigned long long)c->jobs_failed, estate_job_count(d->st), estate_active_count(d->st),
		 (unsigned long long)ps.publishes_pending, (unsigned long long)delivered, (unsigned long long)duplicate,
		 (unsigned long long)invalid);
}

static void timers(struct daemon *d)
{
	uint64_t t = mono_ms();
	if (t < d->next_tick_ms)
		return;
	d->next_tick_ms = t + TICK_MS;
	uint64_t now = now_s();
	/* wall time of running jobs */
	for (size_t i = 0; i < d->nrunning; i++) {
		struct jrt *rt = d->running[i]->rt;
		if (!rt || !rt->run || rt->timed_out)
			continue;
		uint64_t started = atomic_load(&rt->run->started_ms);
		if (started && t > started + (uint64_t)d->cfg->job_timeout * 1000) {
			rt->timed_out = 1;
			atomic_store(&rt->run->cancel, 1);
		}
	}
	if (now >= d->next_announce)
		(void)announce(d);
	if (now >= d->refused_rotate_at) {
		refused_rotate(d);
		d->refused_rotate_at = now + d->cfg->request_max_age + FUTURE_SKEW_S;
	}
	if (now >= d->next_stats) {
		d->next_stats = now + STATS_S;
		log_stats(d);
		(void)ratelim_expire(d->rl, now);
		if (now > (uint64_t)d->cfg->request_max_age + FUTURE_SKEW_S)
			(void)estate_evict(d->st, now - d->cfg->request_max_age - FUTURE_SKEW_S, jrt_free);
	}
}

struct recover_ctx {
	struct daemon *d;
	struct estate_job **list;
	size_t n, cap;
};

static int recover_collect(void *arg, struct estate_job *job)
{
	struct recover_ctx *c = arg;
	if (!job_state_terminal(job->state) && c->n < c->cap)
		c->list[c->n++] = job;
	return 0;
}

/* Jobs a previous run left unfinished: none can go on (the service key is new). */
static void recover(struct daemon *d)
{
	struct recover_ctx c = {d, NULL, 0, estate_active_count(d->st)};
	struct estate_invoice *inv = NULL;
	size_t ninv = 0;
	uint64_t now = now_s();
	if (c.cap && (c.list = calloc(c.cap, sizeof *c.list))) {
		(void)estate_foreach(d->st, recover_collect, &c);
		for (size_t i = 0; i < c.n && !d->fatal; i++) {
			struct estate_job *job = c.list[i];
			if (job->state == JOB_INVOICED)
				fail_job(d, job, "restart",
					 "instance: restarted before your payment arrived; if you still pay the invoice, the amount "
					 "becomes credit for your next job");
			else if (job->state < JOB_PAID)
				fail_job(d, job, "restart", "instance: restarted before the job was paid");
			else
				fail_job(d, job, "restart", "instance: restarted during the job");
		}
		free(c.list);
	}
	if (estate_unpaid_invoices(d->st, &inv, &ninv) == 0) {
		for (size_t i = 0; i < ninv; i++)
			if (inv[i].expires_at + 60 > now)
				if (wallet_watch(d->w, inv[i].payment_hash, inv[i].amount_msat, inv[i].expires_at) != 0)
					log_warn("event=watch_refused reason=wallet_queue_full");
		free(inv);
	}
}

static int subscribe(struct daemon *d)
{
	struct filter *f[2] = {NULL, NULL};
	size_t nf = 0;
	uint64_t sub = 0;
	static const struct relay_sub_cbs cbs = {on_request, NULL, NULL};
	int r;
	if ((r = filter_new(&f[0])) != 0 || (r = filter_add_kind(f[0], JOB_KIND_REQUEST)) != 0 ||
	    (r = filter_add_tag_value(f[0], 'p', d->mehex)) != 0)
		goto out;
	f[0]->since = now_s() - 10;
	f[0]->has_since = 1;
	nf = 1;
	if (d->cfg->open) {
		if ((r = filter_new(&f[1])) != 0 || (r = filter_add_kind(f[1], JOB_KIND_REQUEST)) != 0)
			goto out;
		f[1]->since = f[0]->since;
		f[1]->has_since = 1;
		nf = 2;
	}
	r = relay_sub_open(d->pool, &sub, (const struct filter *const *)f, nf, NULL, 0, &cbs, d);
out:
	filter_free(f[0]);
	filter_free(f[1]);
	return r;
}

/* ---- signals ---- */

/*
 * SIGINT/SIGTERM/SIGHUP set a flag the main loop checks after every service
 * step (at most 250 ms apart). A handler rather than a sigwait thread:
 * libraries start threads of their own (OpenBLAS at load time) that would
 * otherwise take the signal with its default action.
 */
static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

static void install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

/* ---- run ---- */

static int url_check(void *arg, const char *url, char *why, size_t whycap)
{
	return fetch_url_check(arg, url, why, whycap);
}

static void shutdown_jobs(struct daemon *d)
{
	for (size_t i = 0; i < d->nrunning; i++) {
		struct jrt *rt = d->running[i]->rt;
		if (rt && rt->run) {
			rt->shutdown = 1;
			atomic_store(&rt->run->cancel, 1);
		}
	}
}

static int cancel_probe(void *arg, struct estate_job *job)
{
	(void)arg;
	struct jrt *rt = job->rt;
	if (rt && rt->probe)
		atomic_store(&rt->probe->cancel, 1);
	if (rt && rt->run) {
		rt->shutdown = 1;
		atomic_store(&rt->run->cancel, 1);
	}
	return 0;
}

/* stop_requested: ends the wait for the keystores at start on a stop signal. */
static int stop_requested(void *arg)
{
	(void)arg;
	return got_signal != 0;
}

int daemon_run(const struct econfig *cfg, struct nwc_uri *uri)
{
	struct daemon *d = calloc(1, sizeof *d);
	int r = APP_ENOMEM, fetch_init = 0;
	char err[512];

	if (!d) {
		nwc_uri_free(uri);
		return APP_ENOMEM;
	}
	d->cfg = cfg;
	got_signal = 0;
	install_signals();

	if ((r = fetch_global_init()) != 0) {
		log_error("event=startup step=curl err=%s", app_errname(r));
		goto out;
	}
	fetch_init = 1;
	if ((r = identity_new(&d->id, cfg->nsm)) != 0) {
		log_error("event=startup step=identity err=%s", app_errname(r));
		goto out;
	}
	memcpy(d->me, identity_pubkey(d->id), 32);
	hex_encode(d->mehex, d->me, 32);
	err[0] = 0;
	if (sjboot_enabled(cfg)) /* sealed, in the parent's store, key and checkpoint in keystores */
		r = sjboot_open(&d->j, &d->sjb, cfg, stop_requested, NULL, err, sizeof err);
	else
		r = journal_open_file(&d->j, cfg->journal);
	if (r) {
		log_error("event=startup step=journal err=%s reason=\"%s\"", app_errname(r), err);
		goto out;
	}
	if ((r = estate_open(&d->st, err, sizeof err, d->j, MAX_JOBS_HELD)) != 0) {
		log_error("event=startup step=replay err=%s reason=\"%s\"", app_errname(r), err);
		goto out;
	}
	if (d->sjb && (r = sjboot_start(d->sjb)) != 0) {
		log_error("event=startup step=checkpoints err=%s", app_errname(r));
		goto out;
	}
	d->l = estate_ledger(d->st);
	if ((r = announce_load_releases(d->releases, NEC_RELEASES_MAX, &d->nreleases, cfg, err, sizeof err)) != 0) {
		log_error("event=startup step=releases err=%s reason=\"%s\"", app_errname(r), err);
		goto out;
	}
	d->qc.base_msat = cfg->base_msat;
	d->qc.msat_per_unit = cfg->msat_per_unit;
	d->qc.min_msat = cfg->min_msat;
	d->qc.max_msat = cfg->max_msat;
	d->qc.ttl_s = cfg->invoice_expiry;
	if ((r = quote_config_check(&d->qc)) != 0) {
		log_error("event=startup step=price err=%s", app_errname(r));
		goto out;
	}
	d->pol.max_datasets = cfg->max_datasets;
	d->pol.max_threads = cfg->max_train_threads;
	d->pol.open = cfg->open;
	d->pol.url_check = url_check;
	d->pol.url_arg = (void *)cfg;
	if ((r = ratelim_new(&d->rl, cfg->rate_requests, cfg->rate_window, RATELIM_KEYS)) != 0 ||
	    (r = hmap_new(&d->refused[0], REFUSED_MAX)) != 0 || (r = hmap_new(&d->refused[1], REFUSED_MAX)) != 0 ||
	    (r = hmap_new(&d->pending, cfg->max_queue + 16)) != 0)
		goto out;
	if (!(d->running = calloc(cfg->max_queue, sizeof *d->running))) {
		r = APP_ENOMEM;
		goto out;
	}
	d->refused_rotate_at = now_s() + cfg->request_max_age + FUTURE_SKEW_S;
	if ((r = mbox_new(&d->mb, NULL, NULL)) != 0)
		goto out;

	struct relay_pool_opts po;
	relay_pool_opts_default(&po);
	po.ca_file = cfg->ca_file;
	po.on_relay = on_relay_state;
	po.user = d;
	po.max_publishes = 4096;
	po.max_queue = 4096;
	if ((r = relay_pool_new(&d->pool, &po)) != 0) {
		log_error("event=startup step=relay_pool err=%s", app_errname(r));
		goto out;
	}
	for (size_t i = 0; i < cfg->relay.n; i++)
		if ((r = relay_pool_add_relay(d->pool, NULL, cfg->relay.v[i], NULL)) != 0) {
			log_error("event=startup step=add_relay index=%zu err=%s", i, app_errname(r));
			goto out;
		}
	mbox_set_wake(d->mb, wake, d);
	if ((r = wallet_start(&d->w, cfg, uri, d->mb)) != 0) {
		uri = NULL;
		log_error("event=startup step=wallet err=%s", app_errname(r));
		goto out;
	}
	uri = NULL;
	if ((r = workq_new(&d->probeq, PROBE_THREADS, cfg->max_queue, "probe")) != 0 ||
	    (r = workq_new(&d->jobq, cfg->max_concurrent_jobs, cfg->max_queue, "job")) != 0) {
		log_error("event=startup step=workers err=%s", app_errname(r));
		goto out;
	}
	recover(d);
	if (d->fatal) {
		r = APP_EIO;
		goto out;
	}
	(void)announce(d);
	if ((r = subscribe(d)) != 0) {
		log_error("event=startup step=subscribe err=%s", app_errname(r));
		goto out;
	}
	d->next_stats = now_s() + STATS_S;
	log_info("event=ready pubkey=%s relays=%zu journal_records=%llu", d->mehex, cfg->relay.n,
		 (unsigned long long)journal_count(d->j));

	while (!atomic_load(&d->stop)) {
		if (got_signal) {
			log_info("event=signal sig=%d action=stop", (int)got_signal);
			atomic_store(&d->stop, 1);
			break;
		}
		r = relay_pool_service(d->pool, 250);
		if (r && r != APP_ECANCELED) {
			log_error("event=relay_pool_failed err=%s", app_errname(r));
			break;
		}
		drain(d);
		timers(d);
	}
	log_info("event=stopping");
	(void)estate_foreach(d->st, cancel_probe, NULL);
	shutdown_jobs(d);
	workq_free(d->probeq);
	d->probeq = NULL;
	workq_free(d->jobq);
	d->jobq = NULL;
	atomic_store(&d->stop, 1);
	drain(d);
	/* give the last feedbacks and results a moment to reach the relays */
	uint64_t until = mono_ms() + SHUTDOWN_FLUSH_MS;
	for (;;) {
		struct relay_pool_stats ps;
		relay_pool_get_stats(d->pool, &ps);
		if (!ps.publishes_pending || mono_ms() >= until)
			break;
		if (relay_pool_service(d->pool, 50) != 0)
			break;
		drain(d);
	}
	log_stats(d);
	r = d->fatal ? APP_EIO : 0;
out:
	workq_free(d->probeq);
	workq_free(d->jobq);
	if (d->mb && d->st && d->pool)
		drain(d); /* messages posted by drop callbacks */
	/* no wake-ups into a freed pool: the wallet thread may still post */
	if (d->mb)
		mbox_set_wake(d->mb, NULL, NULL);
	relay_pool_free(d->pool);
	d->pool = NULL;
	wallet_stop(d->w);
	nwc_uri_free(uri);
	mbox_free(d->mb); /* wallet messages after the pool closed are dropped */
	estate_free(d->st, jrt_free);
	journal_close(d->j);
	sjboot_free(d->sjb);
	identity_free(d->id);
	ratelim_free(d->rl);
	hmap_free(d->refused[0], NULL);
	hmap_free(d->refused[1], NULL);
	hmap_free(d->pending, NULL);
	free(d->running);
	for (size_t i = 0; i < d->nreleases; i++)
		event_free(d->releases[i]);
	if (fetch_init)
		fetch_global_cleanup();
	free(d);
	return r;
}
