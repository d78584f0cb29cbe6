/*
 * result.h: the content of a job result (kind 6720) and its digest
 * (DESIGN §5.3 step 6; PROTOCOL.md "Job result content" and "Result
 * digest").
 *
 * Content (JSON object, keys in this order):
 *   {"job": hex request id,
 *    "metrics": {accuracy, log_loss, [auc], samples, train_samples,
 *                validation_samples, evaluated, metrics_on, features, classes,
 *                epochs_run, train_ms, train_loss, class_labels, support,
 *                confusion},
 *    "model": {"format":"APMODEL1","sha256":hex,"bytes":N,
 *              "encoding":"base64","data":...}                      (inline)
 *          or {"format":"APMODEL1","sha256":hex,"bytes":N,"url":...,
 *              "sealed_sha256":hex,"sealed_bytes":N,"key":hex}     (blob store)
 *    "datasets": [{"sha256":hex,"bytes":N}, ...]   (in i order, as fetched)
 *    "digest": hex}
 *
 * Numbers are written as JavaScript's JSON.stringify writes them (jw_f64),
 * and no key is an integer-like string, so JSON.stringify(JSON.parse(x))
 * gives back x byte for byte: a client recomputes the digest from the parsed
 * content.
 *
 * Digest (the attestation's user_data):
 *   SHA-256( "appliance-result-v1" (19 ASCII bytes) ‖ job id (32 bytes) ‖
 *            number of datasets (u32 big-endian) ‖ SHA-256 of each dataset
 *            (32 bytes each, i order) ‖ SHA-256 of the model file (32 bytes) ‖
 *            the metrics JSON exactly as in the content (UTF-8) )
 */
#ifndef ENCLAVE_RESULT_H
#define ENCLAVE_RESULT_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"
#include "enclave/train/model.h"
#include "enclave/train/train.h"

#define RESULT_DIGEST_TAG "appliance-result-v1"
#define RESULT_CONTENT_MAX (1u << 20) /* bytes of a content JSON (before encryption) */

/*
 * result_metrics_json: the metrics object of m for model mod as JSON text
 * (new buffer, NUL-terminated; free with free()). Returns 0, APP_ETOOBIG
 * (over RESULT_CONTENT_MAX: a huge confusion matrix), APP_ENOMEM.
 */
int result_metrics_json(char **out, size_t *len, const struct train_metrics *m, const struct model *mod) APP_WUR;

/* result_digest: the digest above. ds_sha: nds hashes of 32 bytes. Returns 0 or APP_ENOMEM. */
int result_digest(uint8_t out[32], const uint8_t job[32], const uint8_t (*ds_sha)[32], size_t nds,
		  const uint8_t model_sha[32], const char *metrics_json, size_t metrics_len) APP_WUR;

/* How the model travels: inline (data set) or by reference (url set). */
struct result_model {
	uint8_t sha256[32]; /* of the model file */
	uint64_t bytes;     /* model file size */
	const uint8_t *data; /* inline: the model file; NULL when by reference */
	const char *url;     /* by reference: where the sealed model is */
	uint8_t sealed_sha256[32];
	uint64_t sealed_bytes;
	uint8_t key[32];     /* sealed-data key of the blob */
};

struct result_dataset {
	uint8_t sha256[32];
	uint64_t bytes;
};

/*
 * result_content_json: the content object (new buffer, free with free();
 * wipe it first when it holds a blob key: sodium_memzero(*out, *len)). Returns 0, APP_ETOOBIG (over
 * max bytes), APP_ENOMEM.
 */
int result_content_json(char **out, size_t *len, size_t max, const uint8_t job[32], const char *metrics_json,
			size_t metrics_len, const struct result_model *model, const struct result_dataset *ds,
			size_t nds, const uint8_t digest[32]) APP_WUR;

#endif
