/*
 * train.h: job parameters, training and evaluation (PROTOCOL.md "Job
 * parameters and ranges"; DESIGN §5.2).
 *
 * Training: mini-batch SGD with momentum or Adam on the mean cross-entropy
 * plus an L2 penalty on weights (not biases):
 *     J(W) = (1/n) * sum_i loss_i + l2 / (2n) * ||W||^2      (n = training rows)
 * (scikit-learn's LogisticRegression with C = 1/l2; MLPClassifier's alpha
 * for full batches). Inputs are standardized with mean / standard deviation
 * fitted on the training split only (constant columns get scale 1).
 * Forward and backward passes run batch-major through cblas_sgemm with
 * workspaces allocated once per job; nothing is allocated per batch.
 *
 * Determinism: the same dataset, parameters, seed and thread count give
 * byte-identical model files. The seed drives the validation split, the
 * initial weights (Glorot-uniform, as scikit-learn) and the per-epoch
 * shuffle, through xoshiro256** seeded with splitmix64.
 */
#ifndef TRAIN_TRAIN_H
#define TRAIN_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "enclave/train/dataset.h"
#include "enclave/train/model.h"

enum train_optimizer { OPT_SGD = 1, OPT_ADAM = 2 };

/* Ranges (inclusive unless noted); see PROTOCOL.md. */
#define TRAIN_EPOCHS_MAX 10000u
#define TRAIN_BATCH_MAX 65536u
#define TRAIN_LR_MAX 10.0          /* learning_rate in (0, 10] */
#define TRAIN_L2_MAX 1000.0        /* l2 in [0, 1000] */
#define TRAIN_MOMENTUM_MAX 0.999   /* momentum in [0, 0.999] */
#define TRAIN_VSPLIT_MAX 0.9       /* validation_split in [0, 0.9] */
#define TRAIN_PATIENCE_MAX 1000u
#define TRAIN_THREADS_MAX 64u
#define TRAIN_PARAM_VALUE_MAX 64   /* bytes of a parameter's value text */

struct train_params {
	enum model_kind model;      /* default logreg */
	uint32_t nhidden;           /* mlp: 1..4 (default 1 layer of 64) */
	uint32_t hidden[MODEL_MAX_HIDDEN];
	enum model_act activation;  /* mlp: default relu */
	uint32_t epochs;            /* 1..TRAIN_EPOCHS_MAX, default 20 */
	double learning_rate;       /* 0 = default: 0.001 (adam), 0.01 (sgd) */
	uint32_t batch_size;        /* 1..TRAIN_BATCH_MAX, default 64 */
	enum train_optimizer optimizer; /* default adam */
	double momentum;            /* sgd: default 0.9 */
	double l2;                  /* default 0.0001 */
	uint64_t seed;              /* default 1 */
	double validation_split;    /* default 0.2; 0 = none (metrics on training rows) */
	uint32_t patience;          /* early stopping epochs, 0 = off (default) */
	uint32_t threads;           /* OpenBLAS threads, 1..TRAIN_THREADS_MAX, default 1 */
	/* which were given explicitly (for the consistency checks) */
	unsigned set_hidden : 1, set_activation : 1, set_momentum : 1;
};

/* train_params_default: the defaults above. */
void train_params_default(struct train_params *p);

/*
 * train_params_set: sets parameter `name` (job protocol names: model,
 * hidden, activation, epochs, learning_rate, batch_size, optimizer,
 * momentum, l2, seed, validation_split, patience, threads) from its text
 * value. Returns 0; APP_ENOTFOUND for an unknown name (so callers can
 * handle their own, e.g. dataset_key, sha256, label_column); APP_EINVAL
 * for malformed text or an unknown choice; APP_ERANGE outside the range.
 * err->msg always names the parameter ("epochs: 0 is out of range
 * 1..10000").
 */
int train_params_set(struct train_params *p, const char *name, const char *value, struct train_err *err) APP_WUR;

/*
 * train_params_check: the cross-parameter rules: hidden/activation only
 * with model=mlp, momentum only with optimizer=sgd, patience needs
 * validation_split > 0. Returns 0 or APP_EINVAL naming the parameter.
 */
int train_params_check(const struct train_params *p, struct train_err *err) APP_WUR;

/*
 * train_metrics: the figures of a job (DESIGN §5.3 step 6). Classification
 * metrics are computed on the validation rows, or on the training rows when
 * validation_split is 0 (metrics_on_train = 1), or on all rows of an
 * evaluated dataset. confusion[t * classes + p] counts rows of true class t
 * predicted as p; support[c] = rows of class c among the evaluated rows.
 * auc is the ROC AUC of class 1 (binary only; has_auc). Free the arrays
 * with train_metrics_free.
 */
struct train_metrics {
	double accuracy;
	double log_loss;
	double auc;
	int has_auc;
	int metrics_on_train;
	uint64_t samples;             /* all rows (train + validation), or evaluated rows */
	uint64_t train_samples;
	uint64_t validation_samples;
	uint64_t evaluated;           /* rows the metrics are computed on */
	uint32_t features;
	uint32_t classes;
	uint32_t epochs_run;
	double train_ms;              /* wall time of training, ms */
	double train_loss;            /* mean training loss of the last epoch */
	double val_loss;              /* validation loss at the end, or -1 */
	uint64_t *confusion;
	uint64_t *support;
};

/* train_metrics_free: frees the arrays (not m itself); NULL is a no-op. */
void train_metrics_free(struct train_metrics *m);

/*
 * train_progress_fn: called after each epoch (1-based) with the mean
 * training loss and the validation loss (-1 when not computed: it is only
 * computed with patience > 0). Return non-zero to cancel the job
 * (train_fit then returns APP_ECANCELED).
 */
typedef int (*train_progress_fn)(void *arg, uint32_t epoch, uint32_t epochs, double train_loss,
				 double val_loss);

/*
 * train_split: the deterministic train/validation split of `rows` rows:
 * a seeded permutation, the first ceil(rows * validation_split) indices
 * validate, the rest train (both in permutation order). Arrays are new
 * (free with free(); *val is NULL when nval is 0).
 * Returns 0, APP_ERANGE (no training row left, or validation_split out of
 * range), APP_ENOMEM.
 */
int train_split(size_t **train, size_t *ntrain, size_t **val, size_t *nval, size_t rows,
		double validation_split, uint64_t seed) APP_WUR;

/*
 * train_fit: trains a model on rows tr[0..ntr) of ds and fills *met from
 * rows va[0..nva) (or the training rows when nva is 0). The model carries
 * the dataset's class labels and feature names. cb may be NULL.
 * Returns 0; APP_EINVAL (bad parameters: message in err); APP_ETOOBIG
 * (model or workspace over a cap); APP_ENOMEM; APP_ECANCELED; APP_ERANGE
 * (training diverged: non-finite loss).
 */
int train_fit(struct model **out, struct train_metrics *met, const struct dataset *ds, const size_t *tr,
	      size_t ntr, const size_t *va, size_t nva, const struct train_params *p, train_progress_fn cb,
	      void *cbarg, struct train_err *err) APP_WUR;

/* train_run: train_split with the parameters' split and seed, then train_fit. */
int train_run(struct model **out, struct train_metrics *met, const struct dataset *ds,
	      const struct train_params *p, train_progress_fn cb, void *cbarg, struct train_err *err) APP_WUR;

/*
 * train_evaluate: metrics of model m on rows idx[0..n) of ds (idx NULL:
 * all rows). ds->y must index m's classes (parse evaluation data with the
 * model's labels as a fixed class list) and ds->features must equal
 * m->features. Returns 0, APP_EINVAL (shape mismatch, message in err),
 * APP_ERANGE (the model's outputs overflow on this data), APP_ENOMEM.
 */
int train_evaluate(struct train_metrics *met, const struct model *m, const struct dataset *ds, const size_t *idx,
		   size_t n, struct train_err *err) APP_WUR;

/*
 * train_loss_grad: the objective on rows[0..n) of ds and its gradient, for
 * gradient checks: *loss = (1/n) sum CE_i + decay/2 * ||W||^2 (decay =
 * l2 / training rows; biases not penalized) and grad (m->nparams floats, the
 * layout of m->params) its gradient, computed by the training code's own
 * backward pass. The loss clips probabilities at 1e-7. Returns 0,
 * APP_EINVAL (shape mismatch), APP_ENOMEM.
 */
int train_loss_grad(const struct model *m, double *loss, float *grad, const struct dataset *ds, const size_t *rows,
		    size_t n, double decay) APP_WUR;

/*
 * train_set_threads: sets OpenBLAS's thread count (1..TRAIN_THREADS_MAX)
 * for this process. train_fit calls it with the job's `threads`.
 */
void train_set_threads(uint32_t threads);

#endif
