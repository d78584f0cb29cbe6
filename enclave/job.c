/*
 * job.c: the job request parser and the job state machine (job.h).
 */
#include "enclave/job.h"

#include <cJSON.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/event.h"
#include "appliance/hex.h"
#include "appliance/json.h"
#include "appliance/keys.h"
#include "appliance/nip44.h"

struct job_keys {
	size_t n;
	uint8_t key[JOB_MAX_DATASETS][32];
};

static int fail(char *err, size_t cap, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t cap, int code, const char *fmt, ...)
{
	if (err && cap) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, cap, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* A client string made safe to quote in an error text: printable ASCII, at most 40 bytes. */
static void sanitize(char out[48], const char *s)
{
	size_t j = 0;
	for (size_t i = 0; s[i] && j < 40; i++) {
		unsigned char c = (unsigned char)s[i];
		out[j++] = c >= 0x20 && c < 0x7f && c != '\'' ? (char)c : '?';
	}
	if (s[0] && strlen(s) > 40 && j >= 3)
		memcpy(out + j - 3, "...", 3);
	out[j] = 0;
}

void job_spec_free(struct job_spec *s)
{
	if (!s)
		return;
	if (s->ds)
		for (size_t i = 0; i < s->ndatasets; i++)
			free(s->ds[i].url);
	free(s->ds);
	if (s->keys) {
		sodium_memzero(s->keys, sizeof *s->keys);
		sodium_free(s->keys);
	}
	sodium_memzero(s, sizeof *s);
	free(s);
}

int job_keys_get(const struct job_spec *s, size_t index, uint8_t key[32])
{
	if (!s->keys || !s->keys->n)
		return APP_ENOTFOUND;
	if (s->keys->n == 1) {
		memcpy(key, s->keys->key[0], 32);
		return 0;
	}
	if (index >= s->keys->n)
		return APP_ENOTFOUND;
	memcpy(key, s->keys->key[index], 32);
	return 0;
}

/* Canonical decimal u64 (no sign, no leading zero). */
static int parse_msat(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	size_t n = strlen(s);
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

/* Parameters the engine knows (train_params_set), each at most once. */
static const char *const train_names[] = {"model",	   "hidden",	 "activation", "epochs",    "learning_rate",
					  "batch_size",	   "optimizer",	 "momentum",   "l2",	    "seed",
					  "validation_split", "patience", "threads"};
#define NTRAIN (sizeof train_names / sizeof train_names[0])

int job_tags_parse(struct job_spec **out, char *err, size_t errcap, const char *const *const *tags,
		   const size_t *nfields, size_t ntags, const struct job_policy *pol)
{
	struct job_spec *s = NULL;
	const char *pnames[JOB_MAX_PARAMS], *pvalues[JOB_MAX_PARAMS];
	size_t nparams = 0, nsha = 0, nkeys = 0;
	uint8_t sha[JOB_MAX_DATASETS][32];
	char q[48], q2[48];
	int r = APP_ENOMEM, have_output = 0;
	size_t maxds = pol && pol->max_datasets && pol->max_datasets <= JOB_MAX_DATASETS ? pol->max_datasets
											   : JOB_MAX_DATASETS;

	*out = NULL;
	if (err && errcap)
		err[0] = 0;
	if (ntags > JOB_MAX_TAGS)
		return fail(err, errcap, APP_ETOOBIG, "request: more than %d tags", JOB_MAX_TAGS);
	if (!(s = calloc(1, sizeof *s)))
		return fail(err, errcap, APP_ENOMEM, "instance: out of memory");
	train_params_default(&s->params);
	if (!(s->ds = calloc(maxds, sizeof *s->ds)))
		goto nomem;

	for (size_t k = 0; k < ntags; k++) {
		const char *const *v = tags[k];
		size_t n = nfields[k];
		if (n < 1)
			continue;
		if (!strcmp(v[0], "i")) {
			size_t idx = s->ndatasets + 1;
			if (n < 2 || !v[1][0]) {
				r = fail(err, errcap, APP_EINVAL, "i: dataset %zu: no URL (expected [\"i\", URL, \"url\"])", idx);
				goto out;
			}
			if (n < 3) {
				r = fail(err, errcap, APP_EINVAL,
					 "i: dataset %zu: no input type (expected [\"i\", URL, \"url\"])", idx);
				goto out;
			}
			if (strcmp(v[2], "url")) {
				sanitize(q, v[2]);
				r = fail(err, errcap, APP_EINVAL, "i: dataset %zu: input type '%s' is not supported (only url)",
					 idx, q);
				goto out;
			}
			if (s->ndatasets == maxds) {
				r = fail(err, errcap, APP_ETOOBIG, "i: at most %zu datasets per job", maxds);
				goto out;
			}
			size_t ulen = strlen(v[1]);
			if (ulen > JOB_URL_MAX) {
				r = fail(err, errcap, APP_ETOOBIG, "i: dataset %zu: URL longer than %d bytes", idx, JOB_URL_MAX);
				goto out;
			}
			if (pol && pol->url_check) {
				char why[200] = "";
				int cr = pol->url_check(pol->url_arg, v[1], why, sizeof why);
				if (cr) {
					r = fail(err, errcap, cr == APP_ENOMEM ? APP_ENOMEM : APP_EREFUSED, "i: dataset %zu: %s",
						 idx, why[0] ? why : "URL refused");
					goto out;
				}
			}
			if (!(s->ds[s->ndatasets].url = strdup(v[1])))
				goto nomem;
			s->ndatasets++;
		} else if (!strcmp(v[0], "param")) {
			if (n != 3) {
				r = fail(err, errcap, APP_EINVAL, "param: malformed tag (expected [\"param\", name, value])");
				goto out;
			}
			if (nparams == JOB_MAX_PARAMS) {
				r = fail(err, errcap, APP_ETOOBIG, "param: more than %d parameters", JOB_MAX_PARAMS);
				goto out;
			}
			pnames[nparams] = v[1];
			pvalues[nparams] = v[2];
			nparams++;
		} else if (!strcmp(v[0], "bid")) {
			if (s->has_bid) {
				r = fail(err, errcap, APP_EINVAL, "bid: given twice");
				goto out;
			}
			if (n < 2 || parse_msat(v[1], &s->bid_msat) != 0) {
				sanitize(q, n < 2 ? "" : v[1]);
				r = fail(err, errcap, APP_EINVAL, "bid: '%s' is not an amount in msat (a decimal integer)", q);
				goto out;
			}
			s->has_bid = 1;
		} else if (!strcmp(v[0], "output")) {
			if (have_output || n < 2 || strcmp(v[1], "application/json")) {
				r = fail(err, errcap, APP_EINVAL, "output: only one [\"output\", \"application/json\"] is supported");
				goto out;
			}
			have_output = 1;
		}
		/* p, relays, t, encrypted, expiration, alt, client and unknown tags: nothing to check here */
	}
	if (s->ndatasets == 0) {
		r = fail(err, errcap, APP_EINVAL, "i: no dataset (add [\"i\", URL, \"url\"])");
		goto out;
	}

	unsigned seen = 0;
	int seen_label = 0;
	struct train_err te;
	for (size_t i = 0; i < nparams; i++) {
		const char *name = pnames[i], *value = pvalues[i];
		sanitize(q, name);
		if (!strcmp(name, "dataset_key")) {
			if (nkeys == s->ndatasets) {
				r = fail(err, errcap, APP_EINVAL, "dataset_key: give one key for all datasets or one per dataset (%zu)",
					 s->ndatasets);
				goto out;
			}
			if (!s->keys) {
				if (!(s->keys = sodium_malloc(sizeof *s->keys)))
					goto nomem;
				sodium_memzero(s->keys, sizeof *s->keys);
			}
			if (strlen(value) != 64 || hex_decode(s->keys->key[nkeys], 32, value, 64, 0) != 0) {
				r = fail(err, errcap, APP_EINVAL, "dataset_key: not 64 hex digits");
				goto out;
			}
			s->keys->n = ++nkeys;
			continue;
		}
		if (!strcmp(name, "sha256")) {
			if (nsha == s->ndatasets) {
				r = fail(err, errcap, APP_EINVAL, "sha256: give one per dataset (%zu)", s->ndatasets);
				goto out;
			}
			if (strlen(value) != 64 || hex_decode(sha[nsha], 32, value, 64, 0) != 0) {
				sanitize(q2, value);
				r = fail(err, errcap, APP_EINVAL, "sha256: '%s' is not 64 hex digits", q2);
				goto out;
			}
			nsha++;
			continue;
		}
		if (!strcmp(name, "label_column")) {
			size_t l = strlen(value);
			if (seen_label) {
				r = fail(err, errcap, APP_EINVAL, "label_column: given twice");
				goto out;
			}
			if (l == 0 || l > JOB_LABEL_MAX) {
				r = fail(err, errcap, APP_ERANGE, "label_column: 'last', a 0-based column index or a header name of 1..%d bytes",
					 JOB_LABEL_MAX);
				goto out;
			}
			memcpy(s->label_column, value, l + 1);
			seen_label = 1;
			continue;
		}
		size_t t;
		for (t = 0; t < NTRAIN; t++)
			if (!strcmp(name, train_names[t]))
				break;
		if (t == NTRAIN) {
			r = fail(err, errcap, APP_EINVAL, "%s: unknown parameter", q[0] ? q : "(empty name)");
			goto out;
		}
		if (seen & (1u << t)) {
			r = fail(err, errcap, APP_EINVAL, "%s: given twice", q);
			goto out;
		}
		seen |= 1u << t;
		memset(&te, 0, sizeof te);
		int pr = train_params_set(&s->params, name, value, &te);
		if (pr) {
			r = fail(err, errcap, pr == APP_ERANGE ? APP_ERANGE : APP_EINVAL, "%s", te.msg);
			goto out;
		}
	}
	if (nkeys > 1 && nkeys != s->ndatasets) {
		r = fail(err, errcap, APP_EINVAL, "dataset_key: give one key for all datasets or one per dataset (%zu)",
			 s->ndatasets);
		goto out;
	}
	if (nsha && nsha != s->ndatasets) {
		r = fail(err, errcap, APP_EINVAL, "sha256: give one per dataset (%zu)", s->ndatasets);
		goto out;
	}
	for (size_t i = 0; i < nsha; i++) {
		memcpy(s->ds[i].sha256, sha[i], 32);
		s->ds[i].has_sha256 = 1;
	}
	memset(&te, 0, sizeof te);
	if (train_params_check(&s->params, &te) != 0) {
		r = fail(err, errcap, te.code == APP_ERANGE ? APP_ERANGE : APP_EINVAL, "%s", te.msg);
		goto out;
	}
	if (pol && pol->max_threads && s->params.threads > pol->max_threads) {
		r = fail(err, errcap, APP_ERANGE, "threads: %u is above this instance's limit of %u", s->params.threads,
			 pol->max_threads);
		goto out;
	}
	*out = s;
	s = NULL;
	r = 0;
	goto out;
nomem:
	r = fail(err, errcap, APP_ENOMEM, "instance: out of memory");
out:
	sodium_memzero(sha, sizeof sha);
	job_spec_free(s);
	return r;
}

/* Wipes every string of a parsed cJSON tree (the decrypted content holds dataset keys). */
static void wipe_json(cJSON *j)
{
	for (; j; j = j->next) {
		if (j->valuestring)
			sodium_memzero(j->valuestring, strlen(j->valuestring));
		wipe_json(j->child);
	}
}

int job_request_parse(struct job_spec **out, char *err, size_t errcap, const struct event *ev,
		      const struct keypair *service, const struct job_policy *pol)
{
	const char **flat = NULL;
	const char *const **tags = NULL;
	size_t *nf = NULL, ntags = 0, nflat = 0;
	uint8_t *pt = NULL, ck[32];
	size_t ptlen = 0;
	cJSON *arr = NULL;
	uint8_t me[32];
	char mehex[65];
	int r = APP_ENOMEM, encrypted = 0, np = 0, forme = 0;

	*out = NULL;
	if (err && errcap)
		err[0] = 0;
	if (ev->kind != JOB_KIND_REQUEST)
		return fail(err, errcap, APP_EINVAL, "request: kind %u is not %d", ev->kind, JOB_KIND_REQUEST);
	keys_pubkey(service, me);
	hex_encode(mehex, me, 32);
	for (size_t i = 0; i < ev->ntags; i++) {
		const struct event_tag *t = &ev->tags[i];
		if (!strcmp(t->v[0], "p") && t->n >= 2) {
			np++;
			if (!strcmp(t->v[1], mehex))
				forme = 1;
		} else if (!strcmp(t->v[0], "encrypted")) {
			encrypted = 1;
		}
	}
	if ((np && !forme) || (!np && !(pol && pol->open)))
		return APP_ENOTFOUND;
	if (ev->ntags > JOB_MAX_TAGS)
		return fail(err, errcap, APP_ETOOBIG, "request: more than %d tags", JOB_MAX_TAGS);
	if (ev->content_len > JOB_CONTENT_MAX)
		return fail(err, errcap, APP_ETOOBIG, "request: content longer than %d bytes", JOB_CONTENT_MAX);

	size_t ninner = 0;
	if (encrypted) {
		for (size_t i = 0; i < ev->ntags; i++)
			if (!strcmp(ev->tags[i].v[0], "i") || !strcmp(ev->tags[i].v[0], "param"))
				return fail(err, errcap, APP_EINVAL,
					    "encrypted: i and param tags must be inside the encrypted content");
		if ((r = nip44_conversation_key(ck, service, ev->pubkey)) != 0) {
			r = fail(err, errcap, APP_EBADKEY, "encrypted: the request pubkey is not a valid key");
			goto out;
		}
		r = nip44_decrypt(&pt, &ptlen, ck, ev->content, ev->content_len);
		if (r) {
			r = fail(err, errcap, r == APP_ENOMEM ? APP_ENOMEM : r,
				 "encrypted: the content does not decrypt with NIP-44 v2 from your pubkey to this instance (%s)",
				 app_errname(r));
			goto out;
		}
		if ((r = json_parse(&arr, (const char *)pt, ptlen, NIP44_MAX_PLAINTEXT, 4)) != 0 || !cJSON_IsArray(arr)) {
			r = fail(err, errcap, r == APP_ENOMEM ? APP_ENOMEM : APP_EPARSE,
				 "encrypted: the decrypted content is not a JSON array of tags");
			goto out;
		}
		for (cJSON *t = arr->child; t; t = t->next) {
			if (!cJSON_IsArray(t) || !t->child) {
				r = fail(err, errcap, APP_EPARSE,
					 "encrypted: the decrypted content is not a JSON array of tags (arrays of strings)");
				goto out;
			}
			for (cJSON *f = t->child; f; f = f->next) {
				if (!cJSON_IsString(f)) {
					r = fail(err, errcap, APP_EPARSE,
						 "encrypted: the decrypted content is not a JSON array of tags (arrays of strings)");
					goto out;
				}
				if (nflat == JOB_MAX_FIELDS) {
					r = fail(err, errcap, APP_ETOOBIG, "request: more than %d tag fields in the encrypted content",
						 JOB_MAX_FIELDS);
					goto out;
				}
				nflat++;
			}
			if (++ninner > JOB_MAX_TAGS) {
				r = fail(err, errcap, APP_ETOOBIG, "request: more than %d tags", JOB_MAX_TAGS);
				goto out;
			}
		}
	}
	size_t total = ev->ntags + ninner;
	if (total > JOB_MAX_TAGS) {
		r = fail(err, errcap, APP_ETOOBIG, "request: more than %d tags", JOB_MAX_TAGS);
		goto out;
	}
	r = APP_ENOMEM;
	if (!(tags = calloc(total ? total : 1, sizeof *tags)) || !(nf = calloc(total ? total : 1, sizeof *nf)) ||
	    !(flat = calloc(nflat ? nflat : 1, sizeof *flat))) {
		r = fail(err, errcap, APP_ENOMEM, "instance: out of memory");
		goto out;
	}
	for (size_t i = 0; i < ev->ntags; i++) {
		tags[ntags] = (const char *const *)ev->tags[i].v;
		nf[ntags++] = ev->tags[i].n;
	}
	if (arr) {
		size_t o = 0;
		for (cJSON *t = arr->child; t; t = t->next) {
			size_t start = o;
			for (cJSON *f = t->child; f; f = f->next)
				flat[o++] = f->valuestring;
			tags[ntags] = flat + start;
			nf[ntags++] = o - start;
		}
	}
	if ((r = job_tags_parse(out, err, errcap, tags, nf, ntags, pol)) != 0)
		goto out;
	memcpy((*out)->id, ev->id, 32);
	memcpy((*out)->client, ev->pubkey, 32);
	(*out)->created_at = ev->created_at;
	(*out)->encrypted = encrypted;
	r = 0;
out:
	sodium_memzero(ck, sizeof ck);
	if (pt) {
		sodium_memzero(pt, ptlen);
		free(pt);
	}
	if (arr) {
		wipe_json(arr);
		cJSON_Delete(arr);
	}
	free(flat);
	free(tags);
	free(nf);
	return r;
}

/* ---- state machine ---- */

static const char *const state_names[JOB_STATE_COUNT] = {
	"received", "quoted", "invoiced", "paid", "fetching", "training", "publishing", "done", "failed",
};

const char *job_state_name(enum job_state s)
{
	return (unsigned)s < JOB_STATE_COUNT ? state_names[s] : "?";
}

int job_state_parse(enum job_state *out, const char *s, size_t len)
{
	for (unsigned i = 0; i < JOB_STATE_COUNT; i++)
		if (strlen(state_names[i]) == len && !memcmp(state_names[i], s, len)) {
			*out = (enum job_state)i;
			return 0;
		}
	return APP_EPARSE;
}

int job_state_terminal(enum job_state s)
{
	return s == JOB_DONE || s == JOB_FAILED;
}

int job_transition_ok(enum job_state from, enum job_state to)
{
	if ((unsigned)from >= JOB_STATE_COUNT || (unsigned)to >= JOB_STATE_COUNT || job_state_terminal(from))
		return 0;
	if (to == JOB_FAILED)
		return 1;
	switch (from) {
	case JOB_RECEIVED: return to == JOB_QUOTED || to == JOB_PAID; /* PAID: a free job (price 0) */
	case JOB_QUOTED: return to == JOB_INVOICED || to == JOB_PAID;
	case JOB_INVOICED: return to == JOB_PAID;
	case JOB_PAID: return to == JOB_FETCHING;
	case JOB_FETCHING: return to == JOB_TRAINING;
	case JOB_TRAINING: return to == JOB_PUBLISHING;
	case JOB_PUBLISHING: return to == JOB_DONE;
	default: return 0;
	}
}
