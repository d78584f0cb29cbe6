/*
 * model.h: trained models (logistic/softmax regression and MLPs), their
 * file format (PROTOCOL.md "Model file format") and inference.
 *
 * A model is a stack of dense layers: width[0] = features, width[1..nhidden]
 * the hidden layers (activation `act`), width[nlayers] = outputs (1 with a
 * sigmoid for two classes, `classes` with a softmax otherwise). Layer l
 * (1-based) has W[l-1] of width[l-1] x width[l] floats (row-major: input
 * index major) and b[l-1] of width[l] floats. Inputs are standardized with
 * the stored scaler first: x' = (x - mean) / scale.
 */
#ifndef TRAIN_MODEL_H
#define TRAIN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "enclave/train/dataset.h"

#define MODEL_MAGIC "APMODEL1"
#define MODEL_MAGIC_LEN 8
#define MODEL_VERSION 1
#define MODEL_MAX_HIDDEN 4           /* hidden layers */
#define MODEL_MAX_WIDTH 4096         /* units per hidden layer */
#define MODEL_MAX_PARAMS (64u << 20) /* weights + biases (256 MiB of float32) */
#define MODEL_MAX_FILE (512u << 20)  /* bytes of a model file */

enum model_kind { MODEL_LOGREG = 1, MODEL_MLP = 2 };
enum model_act { ACT_NONE = 0, ACT_RELU = 1, ACT_TANH = 2, ACT_SIGMOID = 3 };

struct model {
	enum model_kind kind;
	enum model_act act;         /* ACT_NONE for logreg */
	uint32_t features;
	uint32_t classes;           /* 2..DATASET_MAX_CLASSES */
	uint32_t nhidden;           /* 0 for logreg, 1..MODEL_MAX_HIDDEN for mlp */
	uint32_t nlayers;           /* nhidden + 1 */
	uint32_t width[MODEL_MAX_HIDDEN + 2];
	char **labels;              /* classes label strings */
	char **names;               /* feature names, or NULL */
	float *mean, *scale;        /* features each; scale > 0 */
	float *params;              /* all weights and biases, layer by layer */
	size_t nparams;
	float *W[MODEL_MAX_HIDDEN + 1];
	float *b[MODEL_MAX_HIDDEN + 1];
};

/*
 * model_new: a zero-initialized model of the given architecture, scaler
 * mean 0 / scale 1, labels "0".."classes-1" (replace with model_set_labels)
 * and no names. For MODEL_LOGREG nhidden must be 0 and act ACT_NONE; for
 * MODEL_MLP 1..MODEL_MAX_HIDDEN hidden widths of 1..MODEL_MAX_WIDTH and an
 * activation. Returns 0, APP_EINVAL / APP_ERANGE (architecture out of range,
 * message in err), APP_ETOOBIG (over MODEL_MAX_PARAMS), APP_ENOMEM.
 */
int model_new(struct model **out, enum model_kind kind, enum model_act act, uint32_t features,
	      uint32_t classes, uint32_t nhidden, const uint32_t *hidden, struct train_err *err) APP_WUR;

/*
 * model_set_labels: copies labels[0..classes) (each 1..DATASET_MAX_LABEL_LEN
 * bytes, distinct) and, when names is non-NULL, names[0..features).
 * Returns 0, APP_EINVAL, APP_ENOMEM.
 */
int model_set_labels(struct model *m, const char *const *labels, const char *const *names) APP_WUR;

/* model_free: frees m; NULL is a no-op. */
void model_free(struct model *m);

/* model_outputs: width of the output layer (1 for two classes, else classes). */
uint32_t model_outputs(const struct model *m);

/*
 * model_serialize: the model file bytes (PROTOCOL.md "Model file format")
 * in a new buffer (*out, *len; free with free()) and, when sha256 is not
 * NULL, their SHA-256. Deterministic: the same model gives the same bytes.
 * Returns 0, APP_ETOOBIG, APP_ENOMEM.
 */
int model_serialize(const struct model *m, uint8_t **out, size_t *len, uint8_t sha256[32]) APP_WUR;

/*
 * model_parse: parses model file bytes (untrusted). Every field is
 * range-checked before allocating; trailing bytes, non-finite weights or
 * scaler values, scale <= 0, bad labels or names are refused.
 * Returns 0; APP_EPARSE (bad magic, truncated, trailing bytes, bad field:
 * message in err); APP_EVERSION; APP_ERANGE; APP_ETOOBIG; APP_ENOMEM.
 */
int model_parse(struct model **out, const uint8_t *buf, size_t len, struct train_err *err) APP_WUR;

/*
 * model_save: writes the model file to path (via a temporary file and
 * rename) and its SHA-256 to sha256 (may be NULL). Returns 0, APP_EIO,
 * APP_ENOMEM.
 */
int model_save(const struct model *m, const char *path, uint8_t sha256[32], struct train_err *err) APP_WUR;

/*
 * model_load: reads at most MODEL_MAX_FILE bytes from path and parses them;
 * sha256 (may be NULL) receives the file's SHA-256. Returns 0, APP_ENOENT,
 * APP_EIO, APP_ETOOBIG or the errors of model_parse.
 */
int model_load(struct model **out, const char *path, uint8_t sha256[32], struct train_err *err) APP_WUR;

/*
 * model_predict: class probabilities for rows x features raw (unscaled)
 * inputs: probs is rows x classes (row-major; for two classes column 1 is
 * the sigmoid output and column 0 its complement). Rows are processed in
 * blocks through cblas_sgemm with a workspace allocated once.
 * Returns 0, APP_EINVAL, APP_ENOMEM, APP_ERANGE (an output is NaN: the
 * weights or scaler of an untrusted model overflow float32 on this input).
 */
int model_predict(const struct model *m, float *probs, const float *x, size_t rows) APP_WUR;

/*
 * model_predict_rows: as model_predict for the rows idx[0..n) of the
 * matrix x (rows of m->features floats). probs is n x classes.
 */
int model_predict_rows(const struct model *m, float *probs, const float *x, const size_t *idx,
		       size_t n) APP_WUR;

/*
 * model_forward: the forward pass of `rows` standardized input rows.
 * a[0] holds the inputs (rows x width[0]); a[l] (rows x width[l]) receives
 * the activations of layer l; a[nlayers] the output probabilities
 * (sigmoid for one output, softmax otherwise). No allocation.
 */
void model_forward(const struct model *m, float *const *a, size_t rows);

/*
 * model_standardize_rows: a0[i] = (x[idx[i]] - mean) / scale for i < n
 * (idx NULL: rows 0..n-1 of x). a0 is n x features.
 */
void model_standardize_rows(const struct model *m, float *a0, const float *x, const size_t *idx, size_t n);

/* model_kind_name / model_act_name: "logreg"/"mlp", "none"/"relu"/"tanh"/"sigmoid". */
const char *model_kind_name(enum model_kind k);
const char *model_act_name(enum model_act a);

#endif
