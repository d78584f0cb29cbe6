/*
 * announce.c: announcement, NIP-89 handler, profile and relay list (announce.h).
 */
#include "enclave/announce.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/fileio.h"
#include "appliance/event.h"
#include "appliance/json.h"
#include "appliance/nec.h"
#include "billing/quote.h"
#include "enclave/econfig.h"
#include "enclave/job.h"

#define RELEASE_FILE_MAX (64 * 1024)

int announce_load_releases(struct event **out, size_t max, size_t *n, const struct econfig *cfg, char *err,
			   size_t errcap)
{
	*n = 0;
	for (size_t i = 0; i < cfg->release_file.n; i++) {
		const char *path = cfg->release_file.v[i];
		char *text = NULL;
		size_t len = 0;
		const char *why = NULL;
		struct nec_release rel;
		int r;
		if (*n == max) {
			snprintf(err, errcap, "release_file: at most %zu", max);
			r = APP_ELIMIT;
			goto fail;
		}
		if ((r = file_read_all(&text, &len, path, RELEASE_FILE_MAX)) != 0) {
			snprintf(err, errcap, "release_file %s: cannot read (%s)", path, app_errname(r));
			goto fail;
		}
		while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
			len--;
		r = event_parse(&out[*n], &why, text, len);
		free(text);
		if (r) {
			snprintf(err, errcap, "release_file %s: not an event (%s)", path, why ? why : app_errname(r));
			goto fail;
		}
		if ((r = nec_release_verify(&rel, &why, out[*n])) != 0) {
			snprintf(err, errcap, "release_file %s: not a valid release signature (%s)", path,
				 why ? why : app_errname(r));
			event_free(out[*n]);
			goto fail;
		}
		(*n)++;
		continue;
	fail:
		for (size_t k = 0; k < *n; k++)
			event_free(out[k]);
		*n = 0;
		return r;
	}
	return 0;
}

static int metadata(char **out, size_t *len, const struct econfig *cfg, int dev, int handler)
{
	struct jw w;
	char about[512];
	snprintf(about, sizeof about, "%s%s", cfg->about,
		 dev ? " (development instance: its attestation chains to a development root, not AWS)" : "");
	jw_init(&w, 8192);
	jw_char(&w, '{');
	jw_key(&w, 0, "name");
	jw_cstr(&w, cfg->name);
	jw_key(&w, 1, "about");
	jw_cstr(&w, about);
	if (handler) {
		jw_raw(&w, ",\"nip90Params\":{", 16);
		static const char *const params[][2] = {
			{"model", "logreg|mlp"},
			{"hidden", "1-4 widths of 1..4096, e.g. 64,32"},
			{"activation", "relu|tanh|sigmoid"},
			{"epochs", "1..10000"},
			{"learning_rate", "(0, 10]"},
			{"batch_size", "1..65536"},
			{"optimizer", "sgd|adam"},
			{"momentum", "[0, 0.999]"},
			{"l2", "[0, 1000]"},
			{"seed", "0..2^64-1"},
			{"validation_split", "[0, 0.9]"},
			{"patience", "0..1000"},
			{"threads", "1..max_train_threads"},
			{"label_column", "last|INDEX|NAME"},
			{"dataset_key", "64 hex digits"},
			{"sha256", "64 hex digits"},
		};
		for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
			jw_key(&w, i > 0, params[i][0]);
			jw_raw(&w, "{\"values\":[", 11);
			jw_cstr(&w, params[i][1]);
			jw_raw(&w, "]}", 2);
		}
		jw_char(&w, '}');
	}
	jw_char(&w, '}');
	return jw_finish(&w, out, len);
}

int announce_build(struct event *out[ANNOUNCE_EVENTS], const struct econfig *cfg, const struct keypair *kp,
		   const struct event *attestation, const struct event *const *releases, size_t nreleases, int dev,
		   uint64_t now)
{
	struct event *ev[ANNOUNCE_EVENTS] = {0};
	char *meta = NULL;
	size_t mlen = 0;
	int r;
	for (size_t i = 0; i < ANNOUNCE_EVENTS; i++)
		out[i] = NULL;

	struct nec_announcement a;
	memset(&a, 0, sizeof a);
	a.name = cfg->name;
	a.version = cfg->version;
	a.repo = cfg->repo;
	a.relay = cfg->inbox;
	a.open = cfg->open;
	a.content = cfg->about;
	a.price_base_msat = cfg->base_msat;
	a.price_msat_per_unit = cfg->msat_per_unit;
	a.price_unit = QUOTE_UNIT;
	a.releases = releases;
	a.nreleases = nreleases;
	a.keystore = cfg->keystore;
	if ((r = nec_announcement_create(&ev[0], kp, attestation, &a, now)) != 0)
		goto out;

	if ((r = metadata(&meta, &mlen, cfg, dev, 1)) != 0 || (r = event_new(&ev[1], 31990, now, meta, mlen)) != 0 ||
	    (r = event_add_tagv(ev[1], "d", ANNOUNCE_HANDLER_D, NULL)) != 0 ||
	    (r = event_add_tagv(ev[1], "k", "5720", NULL)) != 0 || (r = event_add_tagv(ev[1], "t", "ml-training", NULL)) != 0 ||
	    (r = event_sign(ev[1], kp)) != 0)
		goto out;
	free(meta);
	meta = NULL;

	if ((r = metadata(&meta, &mlen, cfg, dev, 0)) != 0 || (r = event_new(&ev[2], 0, now, meta, mlen)) != 0 ||
	    (r = event_sign(ev[2], kp)) != 0)
		goto out;

	if ((r = event_new(&ev[3], 10002, now, NULL, 0)) != 0)
		goto out;
	for (size_t i = 0; i < cfg->relay.n; i++)
		if ((r = event_add_tagv(ev[3], "r", cfg->relay.v[i], NULL)) != 0)
			goto out;
	if ((r = event_sign(ev[3], kp)) != 0)
		goto out;
	for (size_t i = 0; i < ANNOUNCE_EVENTS; i++) {
		out[i] = ev[i];
		ev[i] = NULL;
	}
	r = 0;
out:
	free(meta);
	for (size_t i = 0; i < ANNOUNCE_EVENTS; i++)
		event_free(ev[i]);
	return r;
}
