/*
 * appliance job status | result: follows a job request on the relays and
 * fetches, verifies and saves its result. Also the result verification that
 * `appliance submit` shares (client.h: cli_result_verify and friends),
 * PROTOCOL.md "Result (kind 6720)" / "Verifying a result".
 */
#include <cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "appliance/b64.h"
#include "appliance/cli/cli.h"
#include "appliance/cli/client.h"
#include "appliance/event.h"
#include "appliance/filter.h"
#include "appliance/hash.h"
#include "appliance/hex.h"
#include "appliance/json.h"
#include "appliance/keys.h"
#include "appliance/nec.h"
#include "appliance/nip19.h"
#include "appliance/nip44.h"
#include "appliance/sealed.h"
#include "enclave/train/model.h"

#define RESULT_DIGEST_TAG "appliance-result-v1" /* PROTOCOL.md "Result digest" */
#define RESULT_JSON_DEPTH 16
#define MODEL_FETCH_TIMEOUT_S 120
/* the largest sealed model: a MODEL_MAX_FILE plaintext in default-size chunks */
#define SEALED_MODEL_MAX ((size_t)MODEL_MAX_FILE + SEALED_HEADER_LEN + SEALED_ABYTES * ((MODEL_MAX_FILE / SEALED_CHUNK_DEFAULT) + 1))
#define JOB_TIMEOUT_DEFAULT 10 /* seconds for status / result queries */
#define JOB_MAX_EVENTS 512     /* feedback and results kept per query */

/* ---- HTTP GET of a model blob ---- */

struct membuf {
	uint8_t *p;
	size_t len, cap, max;
	int over;
};

static size_t mem_write(char *data, size_t size, size_t n, void *arg)
{
	struct membuf *m = arg;
	size_t len = size * n;
	if (len > m->max - m->len) {
		m->over = 1;
		return 0;
	}
	if (m->len + len > m->cap) {
		size_t nc = m->cap ? m->cap : 65536;
		while (nc < m->len + len)
			nc = nc > m->max / 2 ? m->max : nc * 2;
		uint8_t *np = realloc(m->p, nc);
		if (!np)
			return 0;
		m->p = np;
		m->cap = nc;
	}
	memcpy(m->p + m->len, data, len);
	m->len += len;
	return len;
}

/* http_get: url's body (at most max bytes) into *out. Returns 0 or APP_E* with why filled. */
static int http_get(uint8_t **out, size_t *outlen, const char *url, size_t max, const char *ca_file, char *why,
		    size_t cap)
{
	struct membuf m = {.max = max};
	char errbuf[CURL_ERROR_SIZE] = "";
	long status = 0;
	int r = APP_ECONN;
	CURL *h = curl_easy_init();
	if (!h)
		return APP_ENOMEM;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 3L);
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)MODEL_FETCH_TIMEOUT_S);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, mem_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &m);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "appliance");
	if (ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);
	CURLcode cr = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	if (m.over || cr == CURLE_FILESIZE_EXCEEDED) {
		snprintf(why, cap, "more than the %zu bytes announced", max);
		r = APP_ETOOBIG;
	} else if (cr != CURLE_OK) {
		snprintf(why, cap, "%s", errbuf[0] ? errbuf : curl_easy_strerror(cr));
	} else if (status != 200) {
		snprintf(why, cap, "HTTP status %ld", status);
		r = APP_ENOTFOUND;
	} else {
		*out = m.p;
		*outlen = m.len;
		m.p = NULL;
		r = 0;
	}
	free(m.p);
	return r;
}

/* ---- JSON helpers ---- */

/*
 * canon: JSON.stringify of a parsed value (cJSON keeps numbers as the
 * doubles JSON.parse gives; jw_f64 writes them as ECMAScript does). Refuses
 * duplicate keys (JSON.parse would keep the last one) and keys that look like
 * array indexes (JSON.stringify would reorder them). Returns 0 or -1.
 */
static int canon(struct jw *w, const cJSON *j, int depth)
{
	const cJSON *e;
	if (depth > RESULT_JSON_DEPTH)
		return -1;
	if (cJSON_IsNull(j)) {
		jw_raw(w, "null", 4);
	} else if (cJSON_IsTrue(j)) {
		jw_raw(w, "true", 4);
	} else if (cJSON_IsFalse(j)) {
		jw_raw(w, "false", 5);
	} else if (cJSON_IsNumber(j)) {
		jw_f64(w, j->valuedouble);
	} else if (cJSON_IsString(j)) {
		jw_cstr(w, j->valuestring);
	} else if (cJSON_IsArray(j)) {
		int first = 1;
		jw_char(w, '[');
		cJSON_ArrayForEach(e, j)
		{
			if (!first)
				jw_char(w, ',');
			first = 0;
			if (canon(w, e, depth + 1) != 0)
				return -1;
		}
		jw_char(w, ']');
	} else if (cJSON_IsObject(j)) {
		int first = 1;
		jw_char(w, '{');
		cJSON_ArrayForEach(e, j)
		{
			const char *k = e->string;
			if (!k || (k[0] >= '0' && k[0] <= '9'))
				return -1;
			for (const cJSON *d = j->child; d != e; d = d->next)
				if (!strcmp(d->string, k))
					return -1;
			if (!first)
				jw_char(w, ',');
			first = 0;
			jw_cstr(w, k);
			jw_char(w, ':');
			if (canon(w, e, depth + 1) != 0)
				return -1;
		}
		jw_char(w, '}');
	} else {
		return -1;
	}
	return 0;
}

static int get_hex32(const cJSON *obj, const char *key, uint8_t out[32])
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsString(x) && strlen(x->valuestring) == 64 && hex_decode(out, 32, x->valuestring, 64, 1) == 0 ? 0 : -1;
}

static int get_u64(const cJSON *obj, const char *key, uint64_t max, uint64_t *out)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
	return x && json_get_u64(x, max, out) == 0 ? 0 : -1;
}

static double get_num(const cJSON *obj, const char *key, int *has)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (has)
		*has = cJSON_IsNumber(x);
	return cJSON_IsNumber(x) ? x->valuedouble : 0;
}

static void read_metrics(struct cli_metrics *m, const cJSON *j)
{
	uint64_t v;
	memset(m, 0, sizeof *m);
	m->accuracy = get_num(j, "accuracy", NULL);
	m->log_loss = get_num(j, "log_loss", NULL);
	m->auc = get_num(j, "auc", &m->has_auc);
	m->train_ms = get_num(j, "train_ms", NULL);
	const cJSON *on = cJSON_GetObjectItemCaseSensitive(j, "metrics_on");
	m->on_train = cJSON_IsString(on) && !strcmp(on->valuestring, "train");
	static const struct {
		const char *k;
		size_t off;
	} u[] = {
		{"samples", offsetof(struct cli_metrics, samples)},
		{"train_samples", offsetof(struct cli_metrics, train_samples)},
		{"validation_samples", offsetof(struct cli_metrics, validation_samples)},
		{"features", offsetof(struct cli_metrics, features)},
		{"classes", offsetof(struct cli_metrics, classes)},
		{"epochs_run", offsetof(struct cli_metrics, epochs_run)},
	};
	for (size_t i = 0; i < sizeof u / sizeof u[0]; i++)
		if (get_u64(j, u[i].k, UINT64_MAX, &v) == 0)
			memcpy((char *)m + u[i].off, &v, sizeof v);
}

/* ---- result verification ---- */

void cli_result_free(struct cli_result *r)
{
	if (!r)
		return;
	free(r->content);
	free(r->metrics);
	free(r->model);
	free(r->tee_root);
	cli_verdict_clear(&r->att);
	memset(r, 0, sizeof *r);
}

#define FAIL(...)                                  \
	do {                                       \
		snprintf(why, cap, __VA_ARGS__);   \
		r = APP_EREFUSED;                  \
		goto done;                         \
	} while (0)

/* model_bytes: the model file of the result's "model" object into out->model. */
static int model_bytes(struct cli_client *c, struct cli_result *out, const cJSON *mo, char *why, size_t cap)
{
	uint8_t *sealed = NULL, key[SEALED_KEY_LEN], sealed_sha[32], h[32];
	size_t sealed_len = 0;
	uint64_t bytes, sealed_bytes;
	int r = APP_EREFUSED;
	const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(mo, "format");
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(mo, "data");
	const cJSON *url = cJSON_GetObjectItemCaseSensitive(mo, "url");
	if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, MODEL_MAGIC) != 0)
		FAIL("model: format is not %s", MODEL_MAGIC);
	if (get_hex32(mo, "sha256", out->model_sha256) != 0 || get_u64(mo, "bytes", MODEL_MAX_FILE, &bytes) != 0)
		FAIL("model: sha256 or bytes missing or malformed");
	if (cJSON_IsString(data)) {
		const cJSON *enc = cJSON_GetObjectItemCaseSensitive(mo, "encoding");
		if (!cJSON_IsString(enc) || strcmp(enc->valuestring, "base64") != 0)
			FAIL("model: inline data without \"encoding\":\"base64\"");
		if (b64_decode_alloc(&out->model, &out->model_len, data->valuestring, strlen(data->valuestring),
				     (size_t)bytes) != 0)
			FAIL("model: inline data is not base64 of %llu bytes", (unsigned long long)bytes);
		out->model_inline = 1;
	} else if (cJSON_IsString(url)) {
		char ferr[200] = "";
		if (get_hex32(mo, "sealed_sha256", sealed_sha) != 0 || get_hex32(mo, "key", key) != 0 ||
		    get_u64(mo, "sealed_bytes", SEALED_MODEL_MAX, &sealed_bytes) != 0)
			FAIL("model: url without sealed_sha256, sealed_bytes and key");
		if (strncmp(url->valuestring, "https://", 8) != 0 && strncmp(url->valuestring, "http://", 7) != 0)
			FAIL("model: the blob URL is not http(s)");
		if ((r = http_get(&sealed, &sealed_len, url->valuestring, (size_t)sealed_bytes, c->ca_file, ferr,
				  sizeof ferr)) != 0) {
			snprintf(why, cap, "model: cannot fetch the sealed model from the blob store: %s", ferr);
			r = r == APP_ENOMEM ? r : APP_ECONN;
			goto done;
		}
		r = APP_EREFUSED;
		hash_sha256(h, sealed, sealed_len);
		if (sealed_len != sealed_bytes || crypto_verify_32(h, sealed_sha) != 0)
			FAIL("model: the blob store's sealed model does not match sealed_sha256");
		if (sealed_open_mem(&out->model, &out->model_len, sealed, sealed_len, key, NULL, 0, MODEL_MAX_FILE) != 0)
			FAIL("model: the sealed model does not open with its key");
	} else {
		FAIL("model: neither inline data nor a url");
	}
	hash_sha256(h, out->model, out->model_len);
	if (out->model_len != bytes || crypto_verify_32(h, out->model_sha256) != 0)
		FAIL("model: the model bytes do not match model.sha256");
	struct model *m = NULL;
	struct train_err te;
	memset(&te, 0, sizeof te);
	if (model_parse(&m, out->model, out->model_len, &te) != 0)
		FAIL("model: not a valid model file: %s", te.msg);
	model_free(m);
	r = 0;
done:
	sodium_memzero(key, sizeof key);
	free(sealed);
	return r;
}

int cli_result_verify(struct cli_client *c, struct cli_result *out, char *why, size_t cap, const struct event *res,
		      const struct cli_result_expect *ex)
{
	cJSON *j = NULL;
	struct event *tee = NULL;
	uint8_t ck[32], h[32], digest[32];
	char idhex[65];
	int r = APP_EREFUSED;
	memset(out, 0, sizeof *out);
	why[0] = 0;
	hex_encode(idhex, ex->request_id, 32);
	if (res->kind != 6720)
		FAIL("result: kind %u is not 6720", (unsigned)res->kind);
	if (event_verify(res) != 0)
		FAIL("result: its id or signature does not verify");
	if (ex->instance && memcmp(res->pubkey, ex->instance, 32) != 0)
		FAIL("result: signed by another key than the instance's");
	const char *e = event_tag_value(res, "e");
	if (!e || strcmp(e, idhex) != 0)
		FAIL("result: its e tag does not name our request");
	if (ex->client) {
		uint8_t pub[32];
		char phex[65];
		keys_pubkey(ex->client, pub);
		hex_encode(phex, pub, 32);
		const char *p = event_tag_value(res, "p");
		if (!p || strcmp(p, phex) != 0)
			FAIL("result: its p tag does not name us");
	}
	const char *amount = event_tag_value(res, "amount");
	unsigned long long amt = 0;
	if (amount && cli_parse_u64(&amt, amount, UINT64_MAX) != 0)
		FAIL("result: malformed amount tag");
	out->amount_msat = amt;
	size_t pos = 0;
	int encrypted = event_tag_find(res, &pos, "encrypted", 1) != NULL;
	if (encrypted) {
		uint8_t *pt = NULL;
		size_t ptl = 0;
		if (!ex->client)
			FAIL("result: encrypted to the client; its key is needed to read it (--sec-file)");
		if ((r = nip44_conversation_key(ck, ex->client, res->pubkey)) != 0 ||
		    (r = nip44_decrypt(&pt, &ptl, ck, res->content, res->content_len)) != 0) {
			r = r == APP_ENOMEM ? r : APP_EREFUSED;
			snprintf(why, cap, "result: does not decrypt with our key (%s)", app_errname(r));
			goto done;
		}
		out->content = (char *)pt;
		out->content_len = ptl;
	} else {
		if (!(out->content = malloc(res->content_len + 1))) {
			r = APP_ENOMEM;
			goto done;
		}
		memcpy(out->content, res->content, res->content_len + 1);
		out->content_len = res->content_len;
	}
	r = APP_EREFUSED;
	if (json_parse(&j, out->content, out->content_len, EVENT_MAX_JSON, RESULT_JSON_DEPTH) != 0 || !cJSON_IsObject(j))
		FAIL("result: the content is not a JSON object");
	const cJSON *job = cJSON_GetObjectItemCaseSensitive(j, "job");
	if (!cJSON_IsString(job) || strcmp(job->valuestring, idhex) != 0)
		FAIL("result: \"job\" is not our request id");
	const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(j, "metrics");
	struct jw w;
	jw_init(&w, EVENT_MAX_JSON);
	if (!cJSON_IsObject(metrics) || canon(&w, metrics, 1) != 0) {
		jw_free(&w);
		FAIL("result: \"metrics\" is not a well-formed object");
	}
	if (jw_finish(&w, &out->metrics, &out->metrics_len) != 0) {
		r = APP_ENOMEM;
		goto done;
	}
	read_metrics(&out->m, metrics);
	const cJSON *mo = cJSON_GetObjectItemCaseSensitive(j, "model");
	if (!cJSON_IsObject(mo))
		FAIL("result: no \"model\" object");
	if ((r = model_bytes(c, out, mo, why, cap)) != 0)
		goto done;
	r = APP_EREFUSED;
	const cJSON *ds = cJSON_GetObjectItemCaseSensitive(j, "datasets"), *d;
	if (!cJSON_IsArray(ds))
		FAIL("result: no \"datasets\" array");
	cJSON_ArrayForEach(d, ds)
	{
		if (out->nds == CLI_RESULT_MAX_DATASETS)
			FAIL("result: more than %d datasets", CLI_RESULT_MAX_DATASETS);
		if (!cJSON_IsObject(d) || get_hex32(d, "sha256", out->ds_sha256[out->nds]) != 0 ||
		    get_u64(d, "bytes", UINT64_MAX >> 11, &out->ds_bytes[out->nds]) != 0)
			FAIL("result: dataset %zu: sha256 or bytes malformed", out->nds + 1);
		out->nds++;
	}
	if (ex->ndatasets && out->nds != ex->ndatasets)
		FAIL("result: %zu datasets, the request had %zu", out->nds, ex->ndatasets);
	for (size_t i = 0; ex->ds_sha256 && ex->ds_known && i < out->nds && i < ex->ndatasets; i++)
		if (ex->ds_known[i] && crypto_verify_32(ex->ds_sha256[i], out->ds_sha256[i]) != 0)
			FAIL("result: dataset %zu: the instance trained on other bytes than we uploaded (sha256)", i + 1);
	/* the result digest (PROTOCOL.md), recomputed */
	struct hash_sha256_ctx *hc = hash_sha256_new();
	if (!hc) {
		r = APP_ENOMEM;
		goto done;
	}
	uint8_t n4[4] = {(uint8_t)(out->nds >> 24), (uint8_t)(out->nds >> 16), (uint8_t)(out->nds >> 8), (uint8_t)out->nds};
	hash_sha256_update(hc, RESULT_DIGEST_TAG, strlen(RESULT_DIGEST_TAG));
	hash_sha256_update(hc, ex->request_id, 32);
	hash_sha256_update(hc, n4, 4);
	for (size_t i = 0; i < out->nds; i++)
		hash_sha256_update(hc, out->ds_sha256[i], 32);
	hash_sha256_update(hc, out->model_sha256, 32);
	hash_sha256_update(hc, out->metrics, out->metrics_len);
	hash_sha256_final(hc, out->digest);
	hash_sha256_free(hc);
	if (get_hex32(j, "digest", digest) != 0 || crypto_verify_32(digest, out->digest) != 0)
		FAIL("result: \"digest\" is not the digest of this job, datasets, model and metrics");
	/* the attestation: valid, of the author's key, bound to this digest, of the trusted build */
	const char *tr = event_tag_value(res, "tee_root");
	const char *pw = NULL;
	if (!tr)
		FAIL("attestation: the result has no tee_root tag");
	if (event_parse(&tee, &pw, tr, strlen(tr)) != 0 || tee->kind != NEC_KIND_ATTESTATION)
		FAIL("attestation: tee_root is not an attestation event (23793)");
	if (memcmp(tee->pubkey, res->pubkey, 32) != 0)
		FAIL("attestation: tee_root is signed by another key than the result");
	if ((r = cli_check_attestation(c, tee, ex->at, &out->att)) != 0) {
		if (r == APP_EREFUSED)
			snprintf(why, cap, "attestation: %s", out->att.reason);
		goto done;
	}
	r = APP_EREFUSED;
	const struct attest_doc *doc = out->att.doc;
	if (!doc->public_key || doc->public_key_len != 32 || memcmp(doc->public_key, res->pubkey, 32) != 0)
		FAIL("attestation: its public_key is not the result's signer");
	if (!doc->user_data || doc->user_data_len != 32 || crypto_verify_32(doc->user_data, out->digest) != 0)
		FAIL("attestation: its user_data is not this result's digest (not bound to this result)");
	if (ex->pcrs) {
		struct attest_pcr_policy pol;
		memset(&pol, 0, sizeof pol);
		pol.mask = 7;
		for (int i = 0; i < 3; i++)
			memcpy(pol.pcrs[i], ex->pcrs->pcrs[i], ATTEST_PCR_LEN);
		if (attest_pcr_policy_check(doc, &pol, NULL) != 0)
			FAIL("attestation: its PCRs differ from the instance's announcement (another build)");
	}
	if (c->ntrusted && !ex->repo)
		FAIL("release: no repository to check releases against (the instance's announcement was not found; "
		     "give --repo)");
	if ((r = cli_check_build(c, doc, out->att.dev, ex->repo, ex->ann, &out->att)) != 0) {
		if (r == APP_EREFUSED)
			snprintf(why, cap, "trust: %s", out->att.reason);
		goto done;
	}
	if (!(out->tee_root = strdup(tr))) {
		r = APP_ENOMEM;
		goto done;
	}
	r = 0;
done:
	sodium_memzero(ck, sizeof ck);
	sodium_memzero(h, sizeof h);
	cJSON_Delete(j);
	event_free(tee);
	if (r != 0 && !why[0])
		snprintf(why, cap, "%s", app_strerror(r));
	return r;
}

#undef FAIL

/* ---- saving and printing ---- */

static int write_file(const char *cmd, const char *dir, const char *name, const void *data, size_t len)
{
	char path[4096];
	if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
		return cli_error(CLI_USAGE, cmd, "path too long: %s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return cli_error(CLI_USAGE, cmd, "cannot create %s: %s", path, strerror(errno));
	const uint8_t *p = data;
	size_t left = len;
	while (left) {
		ssize_t n = write(fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = errno;
			close(fd);
			return cli_error(CLI_USAGE, cmd, "cannot write %s: %s", path, strerror(e));
		}
		p += n;
		left -= (size_t)n;
	}
	if (close(fd) != 0)
		return cli_error(CLI_USAGE, cmd, "cannot write %s: %s", path, strerror(errno));
	return 0;
}

int cli_result_save(const char *cmd, const char *dir, const struct cli_result *r, const struct event *res)
{
	char *ev = NULL, dig[66];
	size_t evl = 0;
	int rc;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return cli_error(CLI_USAGE, cmd, "cannot create %s: %s", dir, strerror(errno));
	if (event_to_json(&ev, &evl, res) != 0)
		return cli_error(CLI_USAGE, cmd, "out of memory");
	hex_encode(dig, r->digest, 32);
	dig[64] = '\n';
	dig[65] = 0;
	if ((rc = write_file(cmd, dir, "model.bin", r->model, r->model_len)) == 0 &&
	    (rc = write_file(cmd, dir, "result.json", r->content, r->content_len)) == 0 &&
	    (rc = write_file(cmd, dir, "metrics.json", r->metrics, r->metrics_len)) == 0 &&
	    (rc = write_file(cmd, dir, "tee_root.json", r->tee_root, strlen(r->tee_root))) == 0 &&
	    (rc = write_file(cmd, dir, "digest", dig, 65)) == 0)
		rc = write_file(cmd, dir, "result-event.json", ev, evl);
	free(ev);
	return rc;
}

void cli_result_print(const struct cli_result *r, const struct event *res, const char *dir)
{
	char id[65], npub[32], sha[65], pcr0[2 * ATTEST_PCR_LEN + 1], dig[65];
	const struct cli_metrics *m = &r->m;
	hex_encode(id, res->id, 32);
	cli_npub_short(npub, sizeof npub, res->pubkey);
	hex_encode(sha, r->model_sha256, 32);
	hex_encode(dig, r->digest, 32);
	hex_encode(pcr0, r->att.doc->pcrs[0], ATTEST_PCR_LEN);
	printf("verified result %.16s.. from %s\n", id, npub);
	printf("  accuracy     %.4f\n", m->accuracy);
	printf("  log loss     %.4f\n", m->log_loss);
	if (m->has_auc)
		printf("  ROC AUC      %.4f\n", m->auc);
	printf("  data         %llu rows (%llu train, %llu validation), %llu features, %llu classes; metrics on the %s rows\n",
	       (unsigned long long)m->samples, (unsigned long long)m->train_samples,
	       (unsigned long long)m->validation_samples, (unsigned long long)m->features,
	       (unsigned long long)m->classes, m->on_train ? "training" : "validation");
	printf("  training     %llu epochs in %.1f ms\n", (unsigned long long)m->epochs_run, m->train_ms);
	printf("  model        %zu bytes (%s), sha256 %s\n", r->model_len, r->model_inline ? "inline" : "from the blob store",
	       sha);
	printf("  attested     PCR0 %s (%s root)\n", pcr0, r->att.dev ? "development" : "AWS Nitro");
	printf("  bound        the attestation's user_data = result digest %s\n", dig);
	if (r->att.nvalid)
		printf("  releases     signed by %zu trusted maintainer%s\n", r->att.nvalid, r->att.nvalid == 1 ? "" : "s");
	if (r->amount_msat)
		printf("  paid         %llu msat\n", (unsigned long long)r->amount_msat);
	if (dir)
		printf("  saved in     %s/ (model.bin, result.json, metrics.json, tee_root.json)\n", dir);
}

char *cli_result_json(const struct cli_result *r, const struct event *res, const char *dir)
{
	struct jw w;
	char *s = NULL;
	size_t n = 0;
	jw_init(&w, 0);
	jw_raw(&w, "{\"step\":\"result\",\"ok\":true", 26);
	jw_key(&w, 1, "result_id");
	jw_hex(&w, res->id, 32);
	jw_key(&w, 1, "instance");
	jw_hex(&w, res->pubkey, 32);
	jw_key(&w, 1, "model_sha256");
	jw_hex(&w, r->model_sha256, 32);
	jw_key(&w, 1, "model_bytes");
	jw_u64(&w, r->model_len);
	jw_key(&w, 1, "digest");
	jw_hex(&w, r->digest, 32);
	jw_key(&w, 1, "pcr0");
	jw_hex(&w, r->att.doc->pcrs[0], ATTEST_PCR_LEN);
	jw_key(&w, 1, "pcr1");
	jw_hex(&w, r->att.doc->pcrs[1], ATTEST_PCR_LEN);
	jw_key(&w, 1, "pcr2");
	jw_hex(&w, r->att.doc->pcrs[2], ATTEST_PCR_LEN);
	jw_key(&w, 1, "dev");
	jw_raw(&w, r->att.dev ? "true" : "false", r->att.dev ? 4 : 5);
	jw_key(&w, 1, "trusted_releases");
	jw_u64(&w, r->att.nvalid);
	jw_key(&w, 1, "amount_msat");
	jw_u64(&w, r->amount_msat);
	jw_key(&w, 1, "out");
	if (dir)
		jw_cstr(&w, dir);
	else
		jw_raw(&w, "null", 4);
	jw_key(&w, 1, "metrics");
	jw_raw(&w, r->metrics, r->metrics_len);
	jw_char(&w, '}');
	if (jw_finish(&w, &s, &n) != 0)
		return NULL;
	return s;
}

/* ---- job status | result ---- */

static const char job_usage[] =
	"usage: appliance job status REQUEST_ID --relay URL [--relay URL ...] [--sec-file FILE] [--json]\n"
	"       appliance job result REQUEST_ID --relay URL [--relay URL ...] [--sec-file FILE]\n"
	"                            [--out DIR] [--trust NPUB ... [--threshold K]] [--allow-dev --root PEM]\n"
	"                            [--instance NPUB] [--repo R] [--json]\n"
	"\n"
	"REQUEST_ID is the job request's event id (64 hex digits, note1... or nevent1...), as\n"
	"`appliance submit` prints it.\n"
	"\n"
	"status  lists the request and its feedback (payment-required, processing, error,\n"
	"        success) and whether a result was published. Encrypted feedback texts are\n"
	"        shown with the client's key (--sec-file; `appliance submit` keeps it in its\n"
	"        --out directory as client.key). Exit 0 when the request or any reply was\n"
	"        found, 1 when nothing was.\n"
	"result  fetches the result (kind 6720) signed by the instance the request named and\n"
	"        verifies it as `appliance submit` does: signature, e/p tags, decryption, model\n"
	"        bytes against their sha256, the result digest, and the tee_root attestation\n"
	"        (valid at the result's time, bound to the digest, PCRs = the instance's\n"
	"        announcement when it is still on the relays, the --trust policy). Saves\n"
	"        model.bin, result.json, metrics.json, tee_root.json in --out DIR and prints\n"
	"        the metrics. Exit 0 verified, 1 refused or no result, 2 usage or no relay.\n"
	"\n"
	"options:\n"
	"  --sec-file FILE      the client's secret key (else APPLIANCE_SEC)\n"
	"  --out DIR            where `job result` saves the result (default job-<id prefix>)\n"
	"  --instance NPUB      the instance (when the request itself is no longer on the relays)\n"
	"  --repo R             the repository releases must name (when the announcement is gone)\n";

struct job_found {
	uint8_t id[32];
	struct event *request;
	struct event *ev[JOB_MAX_EVENTS];
	size_t n;
};

static void job_on_event(void *arg, struct event **ev)
{
	struct job_found *f = arg;
	struct event *e = *ev;
	if (!memcmp(e->id, f->id, 32)) {
		if (!f->request) {
			f->request = e;
			*ev = NULL;
		}
		return;
	}
	if (f->n < JOB_MAX_EVENTS) {
		f->ev[f->n++] = e;
		*ev = NULL;
	}
}

/* ev_rank: the protocol's order of replies within one second. */
static int ev_rank(const struct event *e)
{
	static const char *const order[] = {"payment-required", "processing", "error"};
	if (e->kind == 6720)
		return 3;
	const char *st = event_tag_value(e, "status");
	for (int i = 0; st && i < 3; i++)
		if (!strcmp(st, order[i]))
			return i;
	return 4; /* success, unknown */
}

static int ev_cmp(const void *a, const void *b)
{
	const struct event *x = *(const struct event *const *)a, *y = *(const struct event *const *)b;
	if (x->created_at != y->created_at)
		return x->created_at < y->created_at ? -1 : 1;
	return ev_rank(x) - ev_rank(y);
}

/* parse_event_id: 64 hex, note1 or nevent1. Returns 0 or -1. */
static int parse_event_id(uint8_t out[32], const char *s)
{
	size_t n = strlen(s);
	if (n == 64)
		return hex_decode(out, 32, s, n, 0);
	struct nip19 *v = NULL;
	if (nip19_decode(&v, s, n) != 0)
		return -1;
	int ok = v->type == NIP19_NOTE || v->type == NIP19_NEVENT;
	if (ok)
		memcpy(out, v->key, 32);
	nip19_free(v);
	return ok ? 0 : -1;
}

/* feedback_text: the status text of a 7000 (decrypted when encrypted and a key is given) into buf. */
static void feedback_text(char *buf, size_t cap, const struct event *ev, const struct keypair *kp)
{
	size_t pos = 0;
	const struct event_tag *st = event_tag_find(ev, &pos, "status", 2);
	const char *text = st && st->n >= 3 ? st->v[2] : NULL;
	cJSON *j = NULL;
	uint8_t *pt = NULL, ck[32];
	size_t ptl = 0;
	pos = 0;
	buf[0] = 0;
	if (!text && event_tag_find(ev, &pos, "encrypted", 1)) {
		if (!kp) {
			snprintf(buf, cap, "(encrypted: --sec-file shows it)");
			return;
		}
		if (nip44_conversation_key(ck, kp, ev->pubkey) == 0 && nip44_decrypt(&pt, &ptl, ck, ev->content, ev->content_len) == 0 &&
		    json_parse(&j, (const char *)pt, ptl, NIP44_MAX_PLAINTEXT, 4) == 0 && cJSON_IsArray(j)) {
			const cJSON *t;
			cJSON_ArrayForEach(t, j)
			{
				const cJSON *a = cJSON_GetArrayItem(t, 0), *c = cJSON_GetArrayItem(t, 2);
				if (cJSON_IsString(a) && !strcmp(a->valuestring, "status") && cJSON_IsString(c))
					text = c->valuestring;
			}
		}
		if (!text)
			snprintf(buf, cap, "(encrypted; does not decrypt with this key)");
	}
	if (text) {
		size_t k = 0;
		for (const unsigned char *p = (const unsigned char *)text; *p && k + 1 < cap; p++)
			buf[k++] = (char)(*p >= 0x20 && *p != 0x7f ? *p : '?');
		buf[k] = 0;
	}
	cJSON_Delete(j);
	if (pt) {
		sodium_memzero(pt, ptl);
		free(pt);
	}
	sodium_memzero(ck, sizeof ck);
}

static void iso(char out[32], uint64_t t)
{
	time_t s = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&s, &tm) || !strftime(out, 32, "%Y-%m-%d %H:%M:%SZ", &tm))
		snprintf(out, 32, "%llu", (unsigned long long)t);
}

/* load_key: --sec-file, else APPLIANCE_SEC when set, else none (0 with *kp NULL). */
static int load_key(struct keypair **kp, const char *path)
{
	*kp = NULL;
	if (!path && !getenv(KEYS_ENV_SECRET))
		return 0;
	return cli_load_secret(kp, path);
}

/* request_datasets: the number of i tags of our request (decrypted with kp when private), or 0. */
static size_t request_datasets(const struct event *req, const struct keypair *kp)
{
	size_t n = 0, pos = 0;
	if (event_tag_find(req, &pos, "encrypted", 1)) {
		uint8_t ck[32], *pt = NULL, inst[32];
		size_t ptl = 0;
		cJSON *j = NULL;
		const char *p = event_tag_value(req, "p");
		if (!kp || !p || hex_decode(inst, 32, p, strlen(p), 1) != 0)
			return 0;
		if (nip44_conversation_key(ck, kp, inst) == 0 && nip44_decrypt(&pt, &ptl, ck, req->content, req->content_len) == 0 &&
		    json_parse(&j, (const char *)pt, ptl, NIP44_MAX_PLAINTEXT, 4) == 0 && cJSON_IsArray(j)) {
			const cJSON *t;
			cJSON_ArrayForEach(t, j)
			{
				const cJSON *a = cJSON_GetArrayItem(t, 0);
				n += cJSON_IsString(a) && !strcmp(a->valuestring, "i");
			}
		}
		cJSON_Delete(j);
		if (pt) {
			sodium_memzero(pt, ptl);
			free(pt);
		}
		sodium_memzero(ck, sizeof ck);
		return n;
	}
	pos = 0;
	while (event_tag_find(req, &pos, "i", 2))
		n++;
	return n;
}

struct ann_found {
	struct event *ev;
};

static void ann_on_event(void *arg, struct event **ev)
{
	struct ann_found *a = arg;
	if (!a->ev || (*ev)->created_at > a->ev->created_at) {
		event_free(a->ev);
		a->ev = *ev;
		*ev = NULL;
	}
}

int cmd_job(int argc, char **argv)
{
	static const struct option opts[] = {CLI_CLIENT_LONGOPTS,
					     {"sec-file", required_argument, 0, 's'},
					     {"out", required_argument, 0, 'o'},
					     {"instance", required_argument, 0, 'i'},
					     {"repo", required_argument, 0, 'R'},
					     {"help", no_argument, 0, 'h'},
					     {0}};
	struct cli_client c;
	struct job_found *f = NULL;
	struct filter *f1 = NULL, *f2 = NULL;
	struct keypair *kp = NULL;
	struct ann_found ann = {0};
	struct cli_verdict annv;
	struct cli_result res;
	const char *sec = NULL, *outdir = NULL, *repo = NULL, *sub;
	char defdir[32], why[CLI_REASON_MAX + 64];
	uint8_t inst[32];
	int have_inst = 0, opt, rc = CLI_USAGE, r;
	memset(&annv, 0, sizeof annv);
	memset(&res, 0, sizeof res);
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		if (argc < 2)
			return cli_error(CLI_USAGE, "job", "expected status or result (see --help)");
		fputs(job_usage, stdout);
		fputs(cli_client_help, stdout);
		return CLI_OK;
	}
	sub = argv[1];
	if (strcmp(sub, "status") != 0 && strcmp(sub, "result") != 0)
		return cli_error(CLI_USAGE, "job", "unknown subcommand '%s' (status, result)", sub);
	int is_result = !strcmp(sub, "result");
	cli_client_init(&c, is_result ? "job result" : "job status");
	argc--;
	argv++;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			fputs(job_usage, stdout);
			fputs(cli_client_help, stdout);
			return CLI_OK;
		case 's': sec = optarg; continue;
		case 'o': outdir = optarg; continue;
		case 'R': repo = optarg; continue;
		case 'i':
			if (cli_parse_pubkey(inst, optarg) != 0)
				return cli_error(CLI_USAGE, c.cmd, "--instance takes an npub or 64 hex digits");
			have_inst = 1;
			continue;
		}
		int h = cli_client_opt(&c, opt, optarg);
		if (h == -1) {
			fputs(job_usage, stderr);
			return CLI_USAGE;
		}
		if (h)
			return h;
	}
	if (optind != argc - 1)
		return cli_error(CLI_USAGE, c.cmd, "expected one REQUEST_ID (see --help)");
	if (!(f = calloc(1, sizeof *f)))
		return cli_error(CLI_USAGE, c.cmd, "out of memory");
	if (parse_event_id(f->id, argv[optind]) != 0) {
		rc = cli_error(CLI_USAGE, c.cmd, "REQUEST_ID: 64 hex digits, note1... or nevent1...");
		goto out;
	}
	if ((rc = load_key(&kp, sec)) != 0)
		goto out;
	if ((rc = cli_client_start(&c)) != 0)
		goto out;
	rc = CLI_USAGE;
	char idhex[65];
	hex_encode(idhex, f->id, 32);
	if ((r = filter_new(&f1)) != 0 || (r = filter_add_id(f1, f->id)) != 0 || (r = filter_new(&f2)) != 0 ||
	    (r = filter_add_kind(f2, 7000)) != 0 || (r = filter_add_kind(f2, 6720)) != 0 ||
	    (r = filter_add_tag_value(f2, 'e', idhex)) != 0) {
		rc = cli_error(CLI_USAGE, c.cmd, "%s", app_strerror(r));
		goto out;
	}
	const struct filter *fs[2] = {f1, f2};
	unsigned to = (unsigned)((c.timeout_s ? c.timeout_s : JOB_TIMEOUT_DEFAULT) * 1000u);
	r = cli_fetch(&c, fs, 2, to, job_on_event, f);
	if (r == APP_ECONN || r == APP_ECANCELED) {
		rc = cli_error(CLI_USAGE, c.cmd, "%s", r == APP_ECONN ? "no relay could be reached" : "interrupted");
		goto out;
	}
	if (r == APP_ETIMEOUT)
		fprintf(stderr, "appliance %s: not every relay answered within %u s\n", c.cmd, to / 1000);
	else if (r) {
		rc = cli_error(CLI_USAGE, c.cmd, "%s", app_strerror(r));
		goto out;
	}
	if (f->n)
		qsort(f->ev, f->n, sizeof f->ev[0], ev_cmp);
	/* the instance: the request's p tag, else --instance */
	if (f->request) {
		const char *p = event_tag_value(f->request, "p");
		uint8_t rp[32];
		if (p && hex_decode(rp, 32, p, strlen(p), 1) == 0) {
			if (have_inst && memcmp(rp, inst, 32) != 0) {
				rc = cli_error(CLI_REFUSED, c.cmd, "the request names another instance than --instance");
				goto out;
			}
			memcpy(inst, rp, 32);
			have_inst = 1;
		}
	}
	if (!is_result) {
		char t[32], npub[32], text[600];
		if (!f->request && !f->n) {
			rc = cli_error(CLI_REFUSED, c.cmd, "nothing found for request %.16s.. on these relays", idhex);
			goto out;
		}
		const char *state = "unknown";
		int has_result = 0;
		struct jw w;
		jw_init(&w, 0);
		jw_raw(&w, "{\"request\":", 11);
		jw_hex(&w, f->id, 32);
		jw_key(&w, 1, "found");
		jw_raw(&w, f->request ? "true" : "false", f->request ? 4 : 5);
		jw_key(&w, 1, "instance");
		if (have_inst)
			jw_hex(&w, inst, 32);
		else
			jw_raw(&w, "null", 4);
		jw_key(&w, 1, "events");
		jw_char(&w, '[');
		if (!c.json) {
			if (f->request) {
				size_t pos = 0;
				int enc = event_tag_find(f->request, &pos, "encrypted", 1) != NULL;
				iso(t, f->request->created_at);
				cli_npub_short(npub, sizeof npub, have_inst ? inst : f->request->pubkey);
				printf("request   %.16s.. at %s to %s (%s)\n", idhex, t, have_inst ? npub : "any instance",
				       enc ? "encrypted" : "public");
			} else {
				printf("request   %.16s.. not on these relays (its replies are)\n", idhex);
			}
		}
		size_t shown = 0;
		for (size_t i = 0; i < f->n; i++) {
			const struct event *e = f->ev[i];
			if (have_inst && memcmp(e->pubkey, inst, 32) != 0)
				continue; /* replies by anyone else are not the instance's */
			iso(t, e->created_at);
			char eid[65];
			hex_encode(eid, e->id, 32);
			if (shown++)
				jw_char(&w, ',');
			jw_char(&w, '{');
			jw_key(&w, 0, "kind");
			jw_u64(&w, e->kind);
			jw_key(&w, 1, "id");
			jw_cstr(&w, eid);
			jw_key(&w, 1, "created_at");
			jw_u64(&w, e->created_at);
			if (e->kind == 6720) {
				has_result = 1;
				state = "done";
				if (!c.json)
					printf("result    %s  %s\n", t, eid);
			} else {
				const char *st = event_tag_value(e, "status");
				size_t pos = 0;
				const struct event_tag *am = event_tag_find(e, &pos, "amount", 2);
				feedback_text(text, sizeof text, e, kp);
				char stname[24];
				snprintf(stname, sizeof stname, "%s", st ? st : "?");
				for (char *q = stname; *q; q++)
					if (*q < 0x20 || *q > 0x7e)
						*q = '?';
				if (!has_result)
					state = !strcmp(stname, "success") ? "done" : stname;
				jw_key(&w, 1, "status");
				jw_cstr(&w, stname);
				jw_key(&w, 1, "text");
				jw_cstr(&w, text);
				if (am) {
					jw_key(&w, 1, "amount_msat");
					jw_cstr(&w, am->v[1]);
				}
				if (!c.json)
					printf("feedback  %s  %-16s %s%s%s%s\n", t, stname, text, am ? " [" : "",
					       am ? am->v[1] : "", am ? " msat]" : "");
			}
			jw_char(&w, '}');
		}
		jw_raw(&w, "],\"state\":", 10);
		jw_cstr(&w, state);
		jw_key(&w, 1, "result");
		jw_raw(&w, has_result ? "true" : "false", has_result ? 4 : 5);
		jw_char(&w, '}');
		char *s = NULL;
		size_t sl = 0;
		if (jw_finish(&w, &s, &sl) != 0) {
			rc = cli_error(CLI_USAGE, c.cmd, "out of memory");
			goto out;
		}
		if (c.json)
			printf("%s\n", s);
		else
			printf("state     %s%s\n", state,
			       has_result ? " (appliance job result REQUEST_ID --relay ... verifies and saves it)" : "");
		free(s);
		rc = CLI_OK;
		goto out;
	}
	/* job result */
	if (!have_inst) {
		rc = cli_error(CLI_USAGE, c.cmd, "the request is not on these relays: give --instance NPUB");
		goto out;
	}
	const struct event *result = NULL;
	for (size_t i = 0; i < f->n; i++)
		if (f->ev[i]->kind == 6720 && !memcmp(f->ev[i]->pubkey, inst, 32)) {
			result = f->ev[i];
			break;
		}
	if (!result) {
		rc = cli_error(CLI_REFUSED, c.cmd, "no result from the instance for request %.16s.. (yet); see `appliance job status`",
			       idhex);
		goto out;
	}
	/* the instance's announcement, when still there: its PCRs, repo and releases */
	struct filter *fa = NULL;
	if ((r = filter_new(&fa)) == 0 && (r = filter_add_kind(fa, 13793)) == 0 && (r = filter_add_author(fa, inst)) == 0) {
		const struct filter *fsa[1] = {fa};
		r = cli_fetch(&c, fsa, 1, to, ann_on_event, &ann);
	}
	filter_free(fa);
	if (r == APP_ENOMEM) {
		rc = cli_error(CLI_USAGE, c.cmd, "out of memory");
		goto out;
	}
	if ((r = cli_client_load_releases(&c)) != 0 && r != APP_ECONN && r != APP_ECANCELED) {
		rc = cli_error(CLI_USAGE, c.cmd, "%s", app_strerror(r));
		goto out;
	}
	const struct attest_doc *pcrs = NULL;
	if (ann.ev) {
		/* verified as of the result's time: the instance may have announced since */
		struct attest_verify_opts o = {.time_mode = ATTEST_TIME_AT, .at = result->created_at, .allow_dev = c.allow_dev};
		struct attest_result ares;
		if (nec_announcement_verify(c.v, NULL, &ares, &annv.doc, ann.ev, &o) == 0) {
			pcrs = annv.doc;
			if (!repo)
				repo = event_tag_value(ann.ev, "r");
		} else if (!c.json) {
			fprintf(stderr, "appliance %s: note: the instance's announcement does not verify; its PCRs are not compared\n",
				c.cmd);
		}
	} else if (!c.json) {
		fprintf(stderr, "appliance %s: note: the instance's announcement is gone; the attested PCRs are shown, not compared\n",
			c.cmd);
	}
	uint64_t now = (uint64_t)time(NULL);
	struct cli_result_expect ex = {.request_id = f->id,
				       .instance = inst,
				       .client = kp,
				       .pcrs = pcrs,
				       .repo = repo,
				       .ann = ann.ev,
				       .ndatasets = f->request ? request_datasets(f->request, kp) : 0,
				       .at = result->created_at < now ? result->created_at : 0};
	r = cli_result_verify(&c, &res, why, sizeof why, result, &ex);
	if (r == APP_ENOMEM) {
		rc = cli_error(CLI_USAGE, c.cmd, "out of memory");
		goto out;
	}
	if (r) {
		rc = cli_error(r == APP_ECONN ? CLI_USAGE : CLI_REFUSED, c.cmd, "result refused: %s", why);
		goto out;
	}
	if (!outdir) {
		snprintf(defdir, sizeof defdir, "job-%.12s", idhex);
		outdir = defdir;
	}
	if ((rc = cli_result_save(c.cmd, outdir, &res, result)) != 0)
		goto out;
	if (c.json) {
		char *s = cli_result_json(&res, result, outdir);
		if (!s) {
			rc = cli_error(CLI_USAGE, c.cmd, "out of memory");
			goto out;
		}
		printf("%s\n", s);
		free(s);
	} else {
		cli_result_print(&res, result, outdir);
	}
	rc = CLI_OK;
out:
	cli_result_free(&res);
	cli_verdict_clear(&annv);
	event_free(ann.ev);
	if (f) {
		event_free(f->request);
		for (size_t i = 0; i < f->n; i++)
			event_free(f->ev[i]);
	}
	free(f);
	filter_free(f1);
	filter_free(f2);
	keys_free(kp);
	cli_client_free(&c);
	return rc;
}
