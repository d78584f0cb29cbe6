/*
 * result.c: job result content and digest (result.h).
 */
#include "enclave/result.h"

#include <stdlib.h>
#include <string.h>

#include "appliance/b64.h"
#include "appliance/hash.h"
#include "appliance/json.h"

int result_metrics_json(char **out, size_t *len, const struct train_metrics *m, const struct model *mod)
{
	struct jw w;
	jw_init(&w, RESULT_CONTENT_MAX);
	jw_char(&w, '{');
	jw_key(&w, 0, "accuracy");
	jw_f64(&w, m->accuracy);
	jw_key(&w, 1, "log_loss");
	jw_f64(&w, m->log_loss);
	if (m->has_auc) {
		jw_key(&w, 1, "auc");
		jw_f64(&w, m->auc);
	}
	jw_key(&w, 1, "samples");
	jw_u64(&w, m->samples);
	jw_key(&w, 1, "train_samples");
	jw_u64(&w, m->train_samples);
	jw_key(&w, 1, "validation_samples");
	jw_u64(&w, m->validation_samples);
	jw_key(&w, 1, "evaluated");
	jw_u64(&w, m->evaluated);
	jw_key(&w, 1, "metrics_on");
	jw_cstr(&w, m->metrics_on_train ? "train" : "validation");
	jw_key(&w, 1, "features");
	jw_u64(&w, m->features);
	jw_key(&w, 1, "classes");
	jw_u64(&w, m->classes);
	jw_key(&w, 1, "epochs_run");
	jw_u64(&w, m->epochs_run);
	jw_key(&w, 1, "train_ms");
	jw_f64(&w, m->train_ms);
	jw_key(&w, 1, "train_loss");
	jw_f64(&w, m->train_loss);
	jw_key(&w, 1, "class_labels");
	jw_char(&w, '[');
	for (uint32_t c = 0; c < mod->classes; c++) {
		if (c)
			jw_char(&w, ',');
		jw_cstr(&w, mod->labels[c]);
	}
	jw_raw(&w, "],\"support\":[", 13);
	for (uint32_t c = 0; c < m->classes; c++) {
		if (c)
			jw_char(&w, ',');
		jw_u64(&w, m->support ? m->support[c] : 0);
	}
	jw_raw(&w, "],\"confusion\":[", 15);
	for (uint32_t t = 0; t < m->classes; t++) {
		jw_raw(&w, t ? ",[" : "[", t ? 2 : 1);
		for (uint32_t p = 0; p < m->classes; p++) {
			if (p)
				jw_char(&w, ',');
			jw_u64(&w, m->confusion ? m->confusion[(size_t)t * m->classes + p] : 0);
		}
		jw_char(&w, ']');
	}
	jw_raw(&w, "]}", 2);
	return jw_finish(&w, out, len);
}

int result_digest(uint8_t out[32], const uint8_t job[32], const uint8_t (*ds_sha)[32], size_t nds,
		  const uint8_t model_sha[32], const char *metrics_json, size_t metrics_len)
{
	struct hash_sha256_ctx *c = hash_sha256_new();
	uint8_t n[4] = {(uint8_t)(nds >> 24), (uint8_t)(nds >> 16), (uint8_t)(nds >> 8), (uint8_t)nds};
	if (!c)
		return APP_ENOMEM;
	hash_sha256_update(c, RESULT_DIGEST_TAG, strlen(RESULT_DIGEST_TAG));
	hash_sha256_update(c, job, 32);
	hash_sha256_update(c, n, 4);
	for (size_t i = 0; i < nds; i++)
		hash_sha256_update(c, ds_sha[i], 32);
	hash_sha256_update(c, model_sha, 32);
	hash_sha256_update(c, metrics_json, metrics_len);
	hash_sha256_final(c, out);
	hash_sha256_free(c);
	return 0;
}

int result_content_json(char **out, size_t *len, size_t max, const uint8_t job[32], const char *metrics_json,
			size_t metrics_len, const struct result_model *model, const struct result_dataset *ds,
			size_t nds, const uint8_t digest[32])
{
	struct jw w;
	jw_init(&w, max);
	jw_char(&w, '{');
	jw_key(&w, 0, "job");
	jw_hex(&w, job, 32);
	jw_key(&w, 1, "metrics");
	jw_raw(&w, metrics_json, metrics_len);
	jw_key(&w, 1, "model");
	jw_raw(&w, "{\"format\":\"APMODEL1\",\"sha256\":", 30);
	jw_hex(&w, model->sha256, 32);
	jw_key(&w, 1, "bytes");
	jw_u64(&w, model->bytes);
	if (model->data) {
		size_t el = b64_encoded_len((size_t)model->bytes);
		char *b = malloc(el + 1);
		if (!b || b64_encode(b, el + 1, model->data, (size_t)model->bytes) != 0) {
			free(b);
			jw_free(&w);
			return APP_ENOMEM;
		}
		jw_raw(&w, ",\"encoding\":\"base64\",\"data\":\"", 29);
		jw_raw(&w, b, el);
		jw_char(&w, '"');
		free(b);
	} else {
		jw_key(&w, 1, "url");
		jw_cstr(&w, model->url);
		jw_key(&w, 1, "sealed_sha256");
		jw_hex(&w, model->sealed_sha256, 32);
		jw_key(&w, 1, "sealed_bytes");
		jw_u64(&w, model->sealed_bytes);
		jw_key(&w, 1, "key");
		jw_hex(&w, model->key, 32);
	}
	jw_raw(&w, "},\"datasets\":[", 14);
	for (size_t i = 0; i < nds; i++) {
		jw_raw(&w, i ? ",{\"sha256\":" : "{\"sha256\":", i ? 11 : 10);
		jw_hex(&w, ds[i].sha256, 32);
		jw_key(&w, 1, "bytes");
		jw_u64(&w, ds[i].bytes);
		jw_char(&w, '}');
	}
	jw_raw(&w, "],\"digest\":", 11);
	jw_hex(&w, digest, 32);
	jw_char(&w, '}');
	return jw_finish(&w, out, len);
}
