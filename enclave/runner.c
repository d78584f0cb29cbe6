/*
 * runner.c: dataset probes and job runs on worker threads (runner.h).
 */
#include "enclave/runner.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/event.h"
#include "appliance/hash.h"
#include "appliance/hex.h"
#include "appliance/log.h"
#include "appliance/nip44.h"
#include "appliance/sealed.h"
#include "enclave/econfig.h"
#include "enclave/fetch.h"
#include "enclave/runtime/identity.h"
#include "enclave/mbox.h"
#include "enclave/reply.h"
#include "enclave/result.h"
#include "enclave/train/csv.h"
#include "enclave/train/model.h"
#include "enclave/train/train.h"

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void idp(char out[17], const uint8_t id[32])
{
	hex_encode(out, id, 8);
}

void run_ctx_free(struct run_ctx *c)
{
	if (!c)
		return;
	job_spec_free(c->spec);
	event_free(c->request);
	free(c->sizes);
	free(c);
}

/* ---- probe ---- */

void runner_probe(void *arg)
{
	struct run_ctx *c = arg;
	struct emsg *m = emsg_new(EMSG_PROBED, c->spec->id);
	uint64_t *sizes = calloc(c->spec->ndatasets, sizeof *sizes);
	uint64_t total = 0;
	char why[FETCH_WHY_MAX];
	if (!m || !sizes) {
		free(sizes);
		if (m) {
			m->rc = APP_ENOMEM;
			snprintf(m->why, sizeof m->why, "instance: out of memory");
			mbox_post(c->mb, m);
		}
		return;
	}
	atomic_store(&c->started_ms, mono_ms());
	for (size_t i = 0; i < c->spec->ndatasets; i++) {
		uint64_t left = c->cfg->max_dataset_bytes - total, size = 0;
		int r = fetch_probe(c->cfg, c->spec->ds[i].url, left, &size, why, sizeof why, &c->cancel);
		if (r) {
			m->rc = r;
			if (r == APP_ETOOBIG)
				snprintf(m->why, sizeof m->why,
					 "dataset %zu: %s (this instance takes at most %llu bytes of datasets per job)", i + 1, why,
					 (unsigned long long)c->cfg->max_dataset_bytes);
			else
				snprintf(m->why, sizeof m->why, "dataset %zu: %s", i + 1, why);
			free(sizes);
			mbox_post(c->mb, m);
			return;
		}
		sizes[i] = size;
		total += size;
	}
	m->sizes = sizes;
	m->nsizes = c->spec->ndatasets;
	m->a = total;
	mbox_post(c->mb, m);
}

void runner_drop_probe(void *arg)
{
	struct run_ctx *c = arg;
	struct emsg *m = emsg_new(EMSG_PROBED, c->spec->id);
	if (m) {
		m->rc = APP_ECANCELED;
		snprintf(m->why, sizeof m->why, "instance: shutting down");
		mbox_post(c->mb, m);
	}
}

/* ---- run ---- */

struct ds_feed {
	struct hash_sha256_ctx *h;
	struct csv_parser *p;
	struct sealed_dec *dec;
	struct train_err *te;
	uint8_t head[SEALED_MAGIC_LEN];
	size_t nhead;
	int decided, has_key, need_key, csv_failed, dec_failed;
	uint8_t key[32];
};

static int csv_sink(void *arg, const uint8_t *d, size_t n)
{
	struct ds_feed *f = arg;
	int r = csv_parser_feed(f->p, d, n, f->te);
	if (r)
		f->csv_failed = 1;
	return r;
}

static int feed(struct ds_feed *f, const uint8_t *d, size_t n)
{
	if (!n)
		return 0;
	if (f->dec) {
		int r = sealed_dec_update(f->dec, d, n);
		if (r && !f->csv_failed)
			f->dec_failed = 1;
		return r;
	}
	return csv_sink(f, d, n);
}

static int decide(struct ds_feed *f)
{
	f->decided = 1;
	if (sealed_is_sealed(f->head, f->nhead)) {
		if (!f->has_key) {
			f->need_key = 1;
			return APP_EREFUSED;
		}
		int r = sealed_dec_new(&f->dec, f->key, NULL, 0, csv_sink, f);
		if (r)
			return r;
	}
	return feed(f, f->head, f->nhead);
}

static int body_sink(void *arg, const uint8_t *d, size_t n)
{
	struct ds_feed *f = arg;
	hash_sha256_update(f->h, d, n);
	if (!f->decided) {
		size_t take = SEALED_MAGIC_LEN - f->nhead;
		if (take > n)
			take = n;
		memcpy(f->head + f->nhead, d, take);
		f->nhead += take;
		d += take;
		n -= take;
		if (f->nhead < SEALED_MAGIC_LEN)
			return 0;
		int r = decide(f);
		if (r)
			return r;
	}
	return feed(f, d, n);
}

struct progress_ctx {
	struct run_ctx *c;
	uint64_t last_ms;
};

static int progress(void *arg, uint32_t epoch, uint32_t epochs, double loss, double vloss)
{
	struct progress_ctx *p = arg;
	(void)loss, (void)vloss;
	if (atomic_load(&p->c->cancel))
		return 1;
	uint64_t now = mono_ms();
	if (epoch < epochs && now - p->last_ms >= (uint64_t)p->c->cfg->feedback_interval * 1000) {
		struct emsg *m = emsg_new(EMSG_PROGRESS, p->c->spec->id);
		if (m) {
			m->a = epoch;
			m->b = epochs;
			mbox_post(p->c->mb, m);
		}
		p->last_ms = now;
	}
	return 0;
}

/* tmpl with every "{sha256}" replaced by hex (new string). */
static char *subst(const char *tmpl, const char *hex)
{
	size_t n = 0;
	for (const char *p = tmpl; (p = strstr(p, "{sha256}")); p += 8)
		n++;
	size_t len = strlen(tmpl) + n * (64 - 8) + 1;
	char *out = malloc(len), *o = out;
	if (!out)
		return NULL;
	for (const char *p = tmpl; *p;) {
		if (!strncmp(p, "{sha256}", 8)) {
			memcpy(o, hex, 64);
			o += 64;
			p += 8;
		} else {
			*o++ = *p++;
		}
	}
	*o = 0;
	return out;
}

/* Fetches and parses every dataset into *ds. Returns 0 or an error with why set. */
static int load_datasets(struct run_ctx *c, struct dataset **ds, struct result_dataset *rds, char *why, size_t cap)
{
	struct csv_options o;
	struct csv_parser *p = NULL;
	struct train_err te;
	struct ds_feed f;
	int r;
	memset(&te, 0, sizeof te);
	memset(&f, 0, sizeof f);
	csv_options_default(&o);
	if (c->spec->label_column[0] && (r = csv_options_label(&o, c->spec->label_column)) != 0) {
		snprintf(why, cap, "label_column: 'last', a 0-based column index or a header name");
		return APP_EINVAL;
	}
	o.max_bytes = c->cfg->max_dataset_bytes;
	if ((r = csv_parser_new(&p, &o, &te)) != 0) {
		snprintf(why, cap, "label_column: %s", te.msg);
		return r;
	}
	for (size_t i = 0; i < c->spec->ndatasets; i++) {
		char name[32], fwhy[FETCH_WHY_MAX];
		uint64_t got = 0;
		snprintf(name, sizeof name, "dataset%zu", i + 1);
		memset(&f, 0, sizeof f);
		f.te = &te;
		f.p = p;
		f.has_key = job_keys_get(c->spec, i, f.key) == 0;
		if (!(f.h = hash_sha256_new())) {
			r = APP_ENOMEM;
			snprintf(why, cap, "instance: out of memory");
			goto out;
		}
		if ((r = csv_parser_begin(p, name, &te)) != 0) {
			snprintf(why, cap, "dataset %zu: %s", i + 1, te.msg);
			goto out;
		}
		r = fetch_get(c->cfg, c->spec->ds[i].url, c->sizes[i], body_sink, &f, &got, fwhy, sizeof fwhy, &c->cancel);
		if (r == 0 && !f.decided)
			r = decide(&f);
		if (r == 0 && f.dec && (r = sealed_dec_final(f.dec)) != 0)
			f.dec_failed = 1;
		if (r == 0 && (r = csv_parser_end(p, &te)) != 0)
			f.csv_failed = 1;
		if (r) {
			if (f.need_key)
				snprintf(why, cap, "dataset %zu: the dataset is sealed but no dataset_key was given", i + 1);
			else if (f.dec_failed)
				snprintf(why, cap, "dataset %zu: sealed data refused: wrong dataset_key or modified data (%s)", i + 1,
					 app_errname(r));
			else if (f.csv_failed)
				snprintf(why, cap, "%s", te.msg);
			else if (r == APP_ETOOBIG)
				snprintf(why, cap, "dataset %zu: larger than the %llu bytes it had when quoted", i + 1,
					 (unsigned long long)c->sizes[i]);
			else
				snprintf(why, cap, "dataset %zu: %s", i + 1, fwhy);
			goto out;
		}
		hash_sha256_final(f.h, rds[i].sha256);
		hash_sha256_free(f.h);
		f.h = NULL;
		rds[i].bytes = got;
		sealed_dec_free(f.dec);
		f.dec = NULL;
		sodium_memzero(f.key, sizeof f.key);
		if (c->spec->ds[i].has_sha256 && sodium_memcmp(rds[i].sha256, c->spec->ds[i].sha256, 32) != 0) {
			char want[65], have[65];
			hex_encode(want, c->spec->ds[i].sha256, 32);
			hex_encode(have, rds[i].sha256, 32);
			snprintf(why, cap, "dataset %zu: sha256 mismatch: expected %s, got %s", i + 1, want, have);
			r = APP_ECHECKSUM;
			goto out;
		}
	}
	if ((r = csv_parser_finish(p, ds, &te)) != 0) {
		snprintf(why, cap, "%s", te.msg);
		goto out;
	}
	r = 0;
out:
	hash_sha256_free(f.h);
	sealed_dec_free(f.dec);
	sodium_memzero(f.key, sizeof f.key);
	csv_parser_free(p);
	return r;
}

/* Builds the signed result of a trained model. Returns 0 with *out, or an error with why. */
static int build_result(struct run_ctx *c, struct event **out, const struct model *mod, const struct train_metrics *met,
			const struct result_dataset *rds, char *why, size_t cap)
{
	uint8_t *bytes = NULL, *sealed = NULL, digest[32], (*dsh)[32] = NULL;
	size_t nbytes = 0, nsealed = 0, mlen = 0, clen = 0;
	char *metrics = NULL, *content = NULL, *tee = NULL, *put = NULL, *get = NULL;
	struct event *att = NULL;
	struct result_model rm;
	size_t tlen = 0;
	int r;
	memset(&rm, 0, sizeof rm);
	if ((r = model_serialize(mod, &bytes, &nbytes, rm.sha256)) != 0) {
		snprintf(why, cap, "result: cannot serialize the model (%s)", app_errname(r));
		goto out;
	}
	rm.bytes = nbytes;
	if ((r = result_metrics_json(&metrics, &mlen, met, mod)) != 0) {
		snprintf(why, cap, "limit: the metrics are too large (%s)", app_errname(r));
		goto out;
	}
	if (!(dsh = calloc(c->spec->ndatasets, sizeof *dsh))) {
		r = APP_ENOMEM;
		snprintf(why, cap, "instance: out of memory");
		goto out;
	}
	for (size_t i = 0; i < c->spec->ndatasets; i++)
		memcpy(dsh[i], rds[i].sha256, 32);
	if ((r = result_digest(digest, c->spec->id, (const uint8_t(*)[32])dsh, c->spec->ndatasets, rm.sha256, metrics, mlen)) != 0) {
		snprintf(why, cap, "instance: out of memory");
		goto out;
	}
	uint64_t now = (uint64_t)time(NULL);
	if ((r = identity_attest(c->id, &att, NULL, digest, 32, now)) != 0) {
		snprintf(why, cap, "result: the attestation failed (%s)", app_errname(r));
		goto out;
	}
	if ((r = event_to_json(&tee, &tlen, att)) != 0) {
		snprintf(why, cap, "instance: out of memory");
		goto out;
	}
	int blob = nbytes > c->cfg->inline_max;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (!blob) {
			rm.data = bytes;
			r = result_content_json(&content, &clen, NIP44_MAX_PLAINTEXT, c->spec->id, metrics, mlen, &rm, rds,
						c->spec->ndatasets, digest);
			if (r == APP_ETOOBIG && c->cfg->put_url) {
				blob = 1;
				continue;
			}
			break;
		}
		/* by reference: sealed with a fresh key, PUT to the blob store */
		char hex[65], fwhy[FETCH_WHY_MAX];
		rm.data = NULL;
		if (!c->cfg->put_url) {
			r = APP_ETOOBIG;
			snprintf(why, cap,
				 "limit: the model is %zu bytes; this instance carries at most %llu bytes inline and has no blob store",
				 nbytes, (unsigned long long)c->cfg->inline_max);
			goto out;
		}
		if ((r = sealed_key_generate(rm.key)) != 0 ||
		    (r = sealed_seal_mem(&sealed, &nsealed, bytes, nbytes, rm.key, 0, NULL, 0)) != 0) {
			snprintf(why, cap, "result: cannot seal the model (%s)", app_errname(r));
			goto out;
		}
		if (nsealed > c->cfg->max_result_bytes) {
			r = APP_ETOOBIG;
			snprintf(why, cap, "limit: the result is %zu bytes, over this instance's limit of %llu bytes", nsealed,
				 (unsigned long long)c->cfg->max_result_bytes);
			goto out;
		}
		hash_sha256(rm.sealed_sha256, sealed, nsealed);
		rm.sealed_bytes = nsealed;
		hex_encode(hex, rm.sealed_sha256, 32);
		if (!(put = subst(c->cfg->put_url, hex)) || !(get = subst(c->cfg->get_url, hex))) {
			r = APP_ENOMEM;
			snprintf(why, cap, "instance: out of memory");
			goto out;
		}
		rm.url = get;
		if ((r = fetch_put(c->cfg, put, sealed, nsealed, fwhy, sizeof fwhy, &c->cancel)) != 0) {
			snprintf(why, cap, "result: the blob store refused the model (%s)", fwhy);
			goto out;
		}
		r = result_content_json(&content, &clen, NIP44_MAX_PLAINTEXT, c->spec->id, metrics, mlen, &rm, rds,
					c->spec->ndatasets, digest);
		break;
	}
	if (r) {
		snprintf(why, cap, "limit: the result is over %d bytes (%s)", NIP44_MAX_PLAINTEXT, app_errname(r));
		goto out;
	}
	struct reply_to to;
	memcpy(to.request_id, c->spec->id, 32);
	memcpy(to.client, c->spec->client, 32);
	to.encrypted = c->spec->encrypted;
	if ((r = reply_result(out, identity_keypair(c->id), &to, c->request, content, clen, c->paid_msat, tee, now)) != 0) {
		snprintf(why, cap, "result: cannot build the result event (%s)", app_errname(r));
		goto out;
	}
	r = 0;
out:
	if (content) {
		sodium_memzero(content, clen);
		free(content);
	}
	sodium_memzero(rm.key, sizeof rm.key);
	free(bytes);
	free(sealed);
	free(metrics);
	free(tee);
	free(put);
	free(get);
	free(dsh);
	event_free(att);
	return r;
}

void runner_run(void *arg)
{
	struct run_ctx *c = arg;
	struct emsg *m = emsg_new(EMSG_RUN_DONE, c->spec->id);
	struct result_dataset *rds = calloc(c->spec->ndatasets, sizeof *rds);
	struct dataset *ds = NULL;
	struct model *mod = NULL;
	struct train_metrics met;
	struct train_err te;
	char id[17], why[JOB_ERR_MAX] = "";
	int r;
	memset(&met, 0, sizeof met);
	memset(&te, 0, sizeof te);
	idp(id, c->spec->id);
	atomic_store(&c->started_ms, mono_ms());
	if (!m || !rds) {
		r = APP_ENOMEM;
		snprintf(why, sizeof why, "instance: out of memory");
		goto out;
	}
	uint64_t t0 = mono_ms();
	if ((r = load_datasets(c, &ds, rds, why, sizeof why)) != 0)
		goto out;
	log_info("event=datasets_loaded job=%s rows=%zu features=%zu classes=%zu fetch_ms=%llu", id, ds->rows,
		 ds->features, ds->nclasses, (unsigned long long)(mono_ms() - t0));
	struct emsg *st = emsg_new(EMSG_STAGE, c->spec->id);
	if (st) {
		st->stage = JOB_TRAINING;
		mbox_post(c->mb, st);
	}
	struct progress_ctx pc = {c, mono_ms()};
	if ((r = train_run(&mod, &met, ds, &c->spec->params, progress, &pc, &te)) != 0) {
		if (r == APP_ECANCELED)
			snprintf(why, sizeof why, "canceled");
		else
			snprintf(why, sizeof why, "training: %s", te.msg);
		goto out;
	}
	dataset_free(ds);
	ds = NULL;
	log_info("event=trained job=%s epochs=%u train_ms=%.1f", id, met.epochs_run, met.train_ms);
	if (atomic_load(&c->cancel)) {
		r = APP_ECANCELED;
		snprintf(why, sizeof why, "canceled");
		goto out;
	}
	r = build_result(c, &m->ev, mod, &met, rds, why, sizeof why);
out:
	train_metrics_free(&met);
	model_free(mod);
	dataset_free(ds);
	free(rds);
	if (m) {
		m->rc = r;
		if (r)
			snprintf(m->why, sizeof m->why, "%s", why[0] ? why : app_strerror(r));
		mbox_post(c->mb, m); /* the last touch of c: the main thread may free it now */
	}
}

void runner_drop_run(void *arg)
{
	struct run_ctx *c = arg;
	struct emsg *m = emsg_new(EMSG_RUN_DONE, c->spec->id);
	if (m) {
		m->rc = APP_ECANCELED;
		snprintf(m->why, sizeof m->why, "canceled");
		mbox_post(c->mb, m);
	}
}
