/*
 * wallet.c: the wallet thread over the NIP-47 client (wallet.h).
 */
#include "enclave/wallet.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "appliance/log.h"
#include "billing/bolt11.h"
#include "billing/nwc.h"
#include "enclave/econfig.h"
#include "enclave/mbox.h"

#define NOTIFY_WAIT_MS 20     /* how long one idle step waits for a notification */
#define EXPIRY_GRACE_S 60     /* a last lookup this long after an invoice expired */
#define BACKOFF_MAX_S 30
#define WALLET_CONNECT_TIMEOUT_MS 2000 /* one connection attempt (also bounds how long a stop waits) */

enum op_type { OP_INVOICE = 1, OP_WATCH };

struct op {
	struct op *next;
	enum op_type t;
	uint8_t job[32];
	uint8_t hash[32];
	uint64_t amount, expires_at;
	uint32_t expiry;
	char desc[WALLET_DESC_MAX + 1];
};

struct watch {
	uint8_t hash[32];
	uint64_t amount, expires_at;
	uint64_t next_poll;
	uint32_t interval;
};

struct wallet {
	pthread_t th;
	int started;
	pthread_mutex_t lock;
	struct op *head, *tail;
	size_t nops;
	atomic_int stop, connected;
	const struct econfig *cfg;
	struct nwc_uri *uri;
	struct mbox *mb;
	struct nwc_client *c;
	struct watch *w;
	size_t nw, capw;
	uint64_t next_connect;
	unsigned backoff;
};

static uint64_t now_s(void)
{
	return (uint64_t)time(NULL);
}

static void hp(char out[17], const uint8_t h[32])
{
	static const char hx[] = "0123456789abcdef";
	for (int i = 0; i < 8; i++) {
		out[2 * i] = hx[h[i] >> 4];
		out[2 * i + 1] = hx[h[i] & 15];
	}
	out[16] = 0;
}

static int push(struct wallet *w, struct op *o)
{
	pthread_mutex_lock(&w->lock);
	if (w->nops >= WALLET_QUEUE_MAX) {
		pthread_mutex_unlock(&w->lock);
		free(o);
		return APP_ELIMIT;
	}
	if (w->tail)
		w->tail->next = o;
	else
		w->head = o;
	w->tail = o;
	w->nops++;
	pthread_mutex_unlock(&w->lock);
	return 0;
}

static struct op *pop(struct wallet *w)
{
	pthread_mutex_lock(&w->lock);
	struct op *o = w->head;
	if (o) {
		w->head = o->next;
		if (!w->head)
			w->tail = NULL;
		w->nops--;
	}
	pthread_mutex_unlock(&w->lock);
	return o;
}

static struct watch *find_watch(struct wallet *w, const uint8_t hash[32])
{
	for (size_t i = 0; i < w->nw; i++)
		if (!memcmp(w->w[i].hash, hash, 32))
			return &w->w[i];
	return NULL;
}

static void del_watch(struct wallet *w, struct watch *x)
{
	size_t i = (size_t)(x - w->w);
	w->w[i] = w->w[--w->nw];
}

static void add_watch(struct wallet *w, const uint8_t hash[32], uint64_t amount, uint64_t expires_at)
{
	if (find_watch(w, hash))
		return;
	if (w->nw == w->capw) {
		size_t nc = w->capw ? w->capw * 2 : 64;
		struct watch *p = nc <= WALLET_WATCH_MAX ? realloc(w->w, nc * sizeof *p) : NULL;
		if (!p) {
			char h[17];
			hp(h, hash);
			log_error("event=wallet_watch_dropped payment_hash=%s reason=watch_list_full", h);
			return;
		}
		w->w = p;
		w->capw = nc;
	}
	struct watch *x = &w->w[w->nw++];
	memcpy(x->hash, hash, 32);
	x->amount = amount;
	x->expires_at = expires_at;
	x->interval = w->cfg->lookup_interval;
	x->next_poll = now_s() + x->interval;
}

static void drop_client(struct wallet *w, const char *why)
{
	if (!w->c)
		return;
	log_warn("event=wallet_disconnected reason=\"%s\"", why);
	nwc_client_free(w->c);
	w->c = NULL;
	atomic_store(&w->connected, 0);
	w->next_connect = now_s() + 1;
}

static void connect_wallet(struct wallet *w)
{
	struct nwc_client_opts o;
	const char *why = NULL;
	nwc_client_opts_default(&o);
	o.ca_file = w->cfg->ca_file;
	o.timeout_ms = w->cfg->wallet_timeout_ms;
	o.connect_timeout_ms = WALLET_CONNECT_TIMEOUT_MS;
	int r = nwc_client_new(&w->c, &why, w->uri, &o);
	if (r) {
		w->backoff = w->backoff ? (w->backoff * 2 > BACKOFF_MAX_S ? BACKOFF_MAX_S : w->backoff * 2) : 1;
		w->next_connect = now_s() + w->backoff;
		log_warn("event=wallet_connect_failed err=%s reason=\"%s\" retry_in_s=%u", app_errname(r), why ? why : "",
			 w->backoff);
		return;
	}
	w->backoff = 0;
	atomic_store(&w->connected, 1);
	log_info("event=wallet_connected encryption=%s notifications=%d",
		 nwc_client_encryption(w->c) == NWC_NIP44 ? "nip44_v2" : "nip04",
		 nwc_client_info(w->c) ? nwc_client_info(w->c)->notifications : 0);
}

static void post_invoice_error(struct wallet *w, const uint8_t job[32], int rc, const char *fmt, const char *detail)
{
	struct emsg *m = emsg_new(EMSG_INVOICE, job);
	if (!m)
		return;
	m->rc = rc ? rc : APP_EINTERNAL;
	snprintf(m->why, sizeof m->why, fmt, detail);
	mbox_post(w->mb, m);
}

static void do_invoice(struct wallet *w, struct op *o)
{
	struct nwc_tx tx;
	struct nwc_error werr;
	struct bolt11 *inv = NULL;
	const char *why = NULL;
	char h[17];
	memset(&werr, 0, sizeof werr);
	if (!w->c) {
		post_invoice_error(w, o->job, APP_ECONN, "payment: the operator's wallet is unreachable%s; no payment was taken, try again later", "");
		return;
	}
	int r = nwc_make_invoice(w->c, &tx, &werr, &why, o->amount, o->desc, o->expiry);
	if (r) {
		log_warn("event=make_invoice_failed err=%s code=%s", app_errname(r), werr.code ? nwc_code_name(werr.code) : "-");
		if (r == APP_EREFUSED)
			post_invoice_error(w, o->job, r,
					   "payment: the operator's wallet refused to make an invoice (%s); no payment was taken",
					   nwc_code_name(werr.code));
		else
			post_invoice_error(w, o->job, r,
					   "payment: the operator's wallet did not answer%s; no payment was taken, try again later", "");
		if (r == APP_ECONN || r == APP_EINTERNAL)
			drop_client(w, "make_invoice failed");
		return;
	}
	r = bolt11_decode(&inv, &why, tx.invoice, strlen(tx.invoice));
	if (r == 0 && (memcmp(inv->payment_hash, tx.payment_hash, 32) || !inv->has_amount || inv->amount_msat != o->amount)) {
		r = APP_EPROTO;
		why = "the invoice does not match the wallet's answer (payment_hash or amount)";
	}
	if (r) {
		log_error("event=make_invoice_bad_invoice err=%s reason=\"%s\"", app_errname(r), why ? why : "");
		post_invoice_error(w, o->job, APP_EPROTO,
				   "payment: the operator's wallet returned an invalid invoice%s; no payment was taken", "");
		goto out;
	}
	struct emsg *m = emsg_new(EMSG_INVOICE, o->job);
	if (!m || !(m->text = strdup(tx.invoice))) {
		emsg_free(m);
		post_invoice_error(w, o->job, APP_ENOMEM, "instance: out of memory%s", "");
		goto out;
	}
	memcpy(m->hash, inv->payment_hash, 32);
	m->a = o->amount;
	m->b = bolt11_expires_at(inv);
	add_watch(w, inv->payment_hash, o->amount, m->b);
	hp(h, inv->payment_hash);
	log_info("event=invoice payment_hash=%s amount_msat=%llu", h, (unsigned long long)o->amount);
	mbox_post(w->mb, m);
out:
	bolt11_free(inv);
	nwc_tx_clear(&tx);
}

/* lookup_invoice on a watched invoice; posts PAID / EXPIRED and removes it when decided. */
static void confirm(struct wallet *w, struct watch *x)
{
	struct nwc_tx tx;
	struct nwc_error werr;
	const char *why = NULL;
	char h[17];
	uint64_t now = now_s();
	hp(h, x->hash);
	if (!w->c)
		return;
	int r = nwc_lookup_invoice(w->c, &tx, &werr, &why, x->hash);
	if (r) {
		log_warn("event=lookup_invoice_failed payment_hash=%s err=%s", h, app_errname(r));
		if (r == APP_ECONN || r == APP_EINTERNAL)
			drop_client(w, "lookup_invoice failed");
		x->next_poll = now + x->interval;
		return;
	}
	r = nwc_payment_check(&tx, &why, x->hash, x->amount);
	if (r == 0) {
		struct emsg *m = emsg_new(EMSG_PAID, NULL);
		if (m) {
			memcpy(m->hash, x->hash, 32);
			m->a = tx.amount_msat;
			m->b = tx.settled_at ? tx.settled_at : now;
			log_info("event=payment_confirmed payment_hash=%s amount_msat=%llu", h, (unsigned long long)tx.amount_msat);
			mbox_post(w->mb, m);
			del_watch(w, x);
		}
	} else if (r == APP_EEXPIRED || (r == APP_EAGAIN && now > x->expires_at + EXPIRY_GRACE_S)) {
		struct emsg *m = emsg_new(EMSG_EXPIRED, NULL);
		if (m) {
			memcpy(m->hash, x->hash, 32);
			log_info("event=invoice_expired payment_hash=%s", h);
			mbox_post(w->mb, m);
			del_watch(w, x);
		}
	} else {
		if (r != APP_EAGAIN)
			log_warn("event=payment_refused payment_hash=%s err=%s reason=\"%s\"", h, app_errname(r), why ? why : "");
		if (x->interval < 8 * w->cfg->lookup_interval)
			x->interval *= 2;
		x->next_poll = now + x->interval;
		if (x->next_poll > x->expires_at + EXPIRY_GRACE_S && now <= x->expires_at + EXPIRY_GRACE_S)
			x->next_poll = x->expires_at + EXPIRY_GRACE_S + 1;
	}
	nwc_tx_clear(&tx);
}

static void *run(void *arg)
{
	struct wallet *w = arg;
	while (!atomic_load(&w->stop)) {
		uint64_t now = now_s();
		if (!w->c && now >= w->next_connect) {
			connect_wallet(w);
			continue;
		}
		struct op *o = pop(w);
		if (o) {
			if (o->t == OP_INVOICE)
				do_invoice(w, o);
			else
				add_watch(w, o->hash, o->amount, o->expires_at);
			free(o);
			continue;
		}
		struct watch *due = NULL;
		for (size_t i = 0; i < w->nw; i++)
			if (w->w[i].next_poll <= now) {
				due = &w->w[i];
				break;
			}
		if (due && w->c) {
			confirm(w, due);
			continue;
		}
		if (!w->c) {
			usleep(NOTIFY_WAIT_MS * 1000);
			continue;
		}
		struct nwc_notification n;
		int r = nwc_next_notification(w->c, &n, NOTIFY_WAIT_MS);
		if (r == APP_ETIMEOUT)
			continue;
		if (r) {
			drop_client(w, "relay pool failure");
			continue;
		}
		if (n.type == NWC_PAYMENT_RECEIVED && n.tx.has_payment_hash) {
			struct watch *x = find_watch(w, n.tx.payment_hash);
			if (x)
				confirm(w, x);
		}
		nwc_notification_clear(&n);
	}
	return NULL;
}

int wallet_start(struct wallet **out, const struct econfig *cfg, struct nwc_uri *uri, struct mbox *mb)
{
	*out = NULL;
	struct wallet *w = calloc(1, sizeof *w);
	if (!w) {
		nwc_uri_free(uri);
		return APP_ENOMEM;
	}
	pthread_mutex_init(&w->lock, NULL);
	w->cfg = cfg;
	w->uri = uri;
	w->mb = mb;
	if (pthread_create(&w->th, NULL, run, w) != 0) {
		wallet_stop(w);
		return APP_EINTERNAL;
	}
	w->started = 1;
	(void)pthread_setname_np(w->th, "wallet");
	*out = w;
	return 0;
}

void wallet_stop(struct wallet *w)
{
	if (!w)
		return;
	atomic_store(&w->stop, 1);
	if (w->started)
		pthread_join(w->th, NULL);
	for (struct op *o = w->head, *n; o; o = n) {
		n = o->next;
		free(o);
	}
	nwc_client_free(w->c);
	nwc_uri_free(w->uri);
	free(w->w);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

int wallet_make_invoice(struct wallet *w, const uint8_t job[32], uint64_t amount_msat, const char *description,
			uint32_t expiry_s)
{
	struct op *o = calloc(1, sizeof *o);
	if (!o)
		return APP_ENOMEM;
	o->t = OP_INVOICE;
	memcpy(o->job, job, 32);
	o->amount = amount_msat;
	o->expiry = expiry_s;
	snprintf(o->desc, sizeof o->desc, "%s", description);
	return push(w, o);
}

int wallet_watch(struct wallet *w, const uint8_t payment_hash[32], uint64_t amount_msat, uint64_t expires_at)
{
	struct op *o = calloc(1, sizeof *o);
	if (!o)
		return APP_ENOMEM;
	o->t = OP_WATCH;
	memcpy(o->hash, payment_hash, 32);
	o->amount = amount_msat;
	o->expires_at = expires_at;
	return push(w, o);
}

int wallet_connected(struct wallet *w)
{
	return atomic_load(&w->connected);
}
