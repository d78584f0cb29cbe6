/*
 * train.c: parameters, training loop, optimizers and metrics (see train.h).
 */
/* Vectorize the elementwise loops (activations, deltas, optimizer): GCC's
 * -O2 cost model leaves them scalar. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif

#include "enclave/train/train.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#define EVAL_BLOCK 4096       /* rows per metrics block */
#define PROB_EPS 1e-7         /* probability clip for the reported losses */
#define EARLY_TOL 1e-4        /* validation loss improvement that counts */
#define ADAM_B1 0.9
#define ADAM_B2 0.999
#define ADAM_EPS 1e-8

/* ---- deterministic random numbers: splitmix64 -> xoshiro256** ---- */

struct rng {
	uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ULL);
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return res;
}

/* Uniform in [0, n) without bias (Lemire). */
static uint64_t rng_below(struct rng *r, uint64_t n)
{
	unsigned __int128 m = (unsigned __int128)rng_next(r) * n;
	uint64_t l = (uint64_t)m;
	if (l < n) {
		uint64_t t = -n % n;
		while (l < t) {
			m = (unsigned __int128)rng_next(r) * n;
			l = (uint64_t)m;
		}
	}
	return (uint64_t)(m >> 64);
}

/* Uniform float in [-1, 1). */
static float rng_sym(struct rng *r)
{
	return (float)((double)(rng_next(r) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static void shuffle(size_t *v, size_t n, struct rng *r)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)rng_below(r, i);
		size_t t = v[i - 1];
		v[i - 1] = v[j];
		v[j] = t;
	}
}

/* ---- parameters ---- */

void train_params_default(struct train_params *p)
{
	memset(p, 0, sizeof *p);
	p->model = MODEL_LOGREG;
	p->nhidden = 1;
	p->hidden[0] = 64;
	p->activation = ACT_RELU;
	p->epochs = 20;
	p->learning_rate = 0;
	p->batch_size = 64;
	p->optimizer = OPT_ADAM;
	p->momentum = 0.9;
	p->l2 = 1e-4;
	p->seed = 1;
	p->validation_split = 0.2;
	p->patience = 0;
	p->threads = 1;
}

static int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	if (!*s || strlen(s) > 20)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v))
			return -1;
	}
	*out = v;
	return 0;
}

/* Plain decimal (optionally with exponent); no hex, inf or nan. */
static int parse_dbl(const char *s, double *out)
{
	if (!*s || strlen(s) > TRAIN_PARAM_VALUE_MAX)
		return -1;
	for (const char *q = s; *q; q++)
		if (!((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E' || *q == '-' || *q == '+'))
			return -1;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (*end || end == s || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

static int bad(struct train_err *err, int code, const char *name, const char *fmt, const char *value,
	       const char *range)
{
	char v[TRAIN_PARAM_VALUE_MAX + 8];
	size_t j = 0;
	for (size_t i = 0; value[i] && j + 4 < sizeof v; i++) {
		unsigned char c = (unsigned char)value[i];
		v[j++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	v[j] = 0;
	(void)fmt;
	if (code == APP_ERANGE)
		return train_err_set(err, code, NULL, 0, 0, "%s: %s is out of range %s", name, v, range);
	return train_err_set(err, code, NULL, 0, 0, "%s: '%s' is not %s", name, v, range);
}

static int set_u32(uint32_t *dst, const char *name, const char *value, uint32_t lo, uint32_t hi,
		   struct train_err *err)
{
	uint64_t v;
	char range[64];
	snprintf(range, sizeof range, "%u..%u", lo, hi);
	if (parse_u64(value, &v) != 0)
		return bad(err, APP_EINVAL, name, NULL, value, "an integer");
	if (v < lo || v > hi)
		return bad(err, APP_ERANGE, name, NULL, value, range);
	*dst = (uint32_t)v;
	return 0;
}

static int set_dbl(double *dst, const char *name, const char *value, double lo, int lo_open, double hi,
		   const char *range, struct train_err *err)
{
	double v;
	if (parse_dbl(value, &v) != 0)
		return bad(err, APP_EINVAL, name, NULL, value, "a decimal number");
	if ((lo_open ? !(v > lo) : !(v >= lo)) || !(v <= hi))
		return bad(err, APP_ERANGE, name, NULL, value, range);
	*dst = v;
	return 0;
}

int train_params_set(struct train_params *p, const char *name, const char *value, struct train_err *err)
{
	if (!p || !name || !value)
		return train_err_set(err, APP_EINVAL, NULL, 0, 0, "parameter without name or value");
	if (strlen(value) > TRAIN_PARAM_VALUE_MAX)
		return train_err_set(err, APP_ERANGE, NULL, 0, 0, "%s: value longer than %d bytes",
				     strlen(name) < 64 ? name : "parameter", TRAIN_PARAM_VALUE_MAX);
	if (!strcmp(name, "model")) {
		if (!strcmp(value, "logreg"))
			p->model = MODEL_LOGREG;
		else if (!strcmp(value, "mlp"))
			p->model = MODEL_MLP;
		else
			return bad(err, APP_EINVAL, name, NULL, value, "logreg or mlp");
		return 0;
	}
	if (!strcmp(name, "hidden")) {
		uint32_t h[MODEL_MAX_HIDDEN], n = 0;
		const char *s = value;
		char range[64];
		snprintf(range, sizeof range, "1..%d comma-separated widths of 1..%d", MODEL_MAX_HIDDEN,
			 MODEL_MAX_WIDTH);
		for (;;) {
			const char *c = strchr(s, ',');
			size_t len = c ? (size_t)(c - s) : strlen(s);
			char tmp[24];
			uint64_t v;
			if (len == 0 || len >= sizeof tmp)
				return bad(err, APP_EINVAL, name, NULL, value, range);
			memcpy(tmp, s, len);
			tmp[len] = 0;
			if (parse_u64(tmp, &v) != 0)
				return bad(err, APP_EINVAL, name, NULL, value, range);
			if (n == MODEL_MAX_HIDDEN || v < 1 || v > MODEL_MAX_WIDTH)
				return bad(err, APP_ERANGE, name, NULL, value, range);
			h[n++] = (uint32_t)v;
			if (!c)
				break;
			s = c + 1;
		}
		memcpy(p->hidden, h, n * sizeof h[0]);
		p->nhidden = n;
		p->set_hidden = 1;
		return 0;
	}
	if (!strcmp(name, "activation")) {
		if (!strcmp(value, "relu"))
			p->activation = ACT_RELU;
		else if (!strcmp(value, "tanh"))
			p->activation = ACT_TANH;
		else if (!strcmp(value, "sigmoid"))
			p->activation = ACT_SIGMOID;
		else
			return bad(err, APP_EINVAL, name, NULL, value, "relu, tanh or sigmoid");
		p->set_activation = 1;
		return 0;
	}
	if (!strcmp(name, "optimizer")) {
		if (!strcmp(value, "sgd"))
			p->optimizer = OPT_SGD;
		else if (!strcmp(value, "adam"))
			p->optimizer = OPT_ADAM;
		else
			return bad(err, APP_EINVAL, name, NULL, value, "sgd or adam");
		return 0;
	}
	if (!strcmp(name, "epochs"))
		return set_u32(&p->epochs, name, value, 1, TRAIN_EPOCHS_MAX, err);
	if (!strcmp(name, "batch_size"))
		return set_u32(&p->batch_size, name, value, 1, TRAIN_BATCH_MAX, err);
	if (!strcmp(name, "patience"))
		return set_u32(&p->patience, name, value, 0, TRAIN_PATIENCE_MAX, err);
	if (!strcmp(name, "threads"))
		return set_u32(&p->threads, name, value, 1, TRAIN_THREADS_MAX, err);
	if (!strcmp(name, "seed")) {
		uint64_t v;
		if (parse_u64(value, &v) != 0)
			return bad(err, APP_EINVAL, name, NULL, value, "an integer in 0..18446744073709551615");
		p->seed = v;
		return 0;
	}
	if (!strcmp(name, "learning_rate"))
		return set_dbl(&p->learning_rate, name, value, 0.0, 1, TRAIN_LR_MAX, "(0, 10]", err);
	if (!strcmp(name, "l2"))
		return set_dbl(&p->l2, name, value, 0.0, 0, TRAIN_L2_MAX, "[0, 1000]", err);
	if (!strcmp(name, "validation_split"))
		return set_dbl(&p->validation_split, name, value, 0.0, 0, TRAIN_VSPLIT_MAX, "[0, 0.9]", err);
	if (!strcmp(name, "momentum")) {
		p->set_momentum = 1;
		return set_dbl(&p->momentum, name, value, 0.0, 0, TRAIN_MOMENTUM_MAX, "[0, 0.999]", err);
	}
	char sh[40];
	snprintf(sh, sizeof sh, "%s", name);
	return train_err_set(err, APP_ENOTFOUND, NULL, 0, 0, "%s: unknown parameter", sh);
}

int train_params_check(const struct train_params *p, struct train_err *err)
{
	if (!p)
		return APP_EINVAL;
	if (p->model != MODEL_LOGREG && p->model != MODEL_MLP)
		return train_err_set(err, APP_EINVAL, NULL, 0, 0, "model: logreg or mlp");
	if (p->model == MODEL_LOGREG && p->set_hidden)
		return train_err_set(err, APP_EINVAL, NULL, 0, 0, "hidden: only with model=mlp");
	if (p->model == MODEL_LOGREG && p->set_activation)
		return train_err_set(err, APP_EINVAL, NULL, 0, 0, "activation: only with model=mlp");
	if (p->optimizer == OPT_ADAM && p->set_momentum)
		return train_err_set(err, APP_EINVAL, NULL, 0, 0, "momentum: only with optimizer=sgd");
	if (p->patience && !(p->validation_split > 0))
		return train_err_set(err, APP_EINVAL, NULL, 0, 0, "patience: needs validation_split > 0");
	if (p->epochs < 1 || p->epochs > TRAIN_EPOCHS_MAX)
		return train_err_set(err, APP_ERANGE, NULL, 0, 0, "epochs: out of range 1..%u", TRAIN_EPOCHS_MAX);
	if (p->batch_size < 1 || p->batch_size > TRAIN_BATCH_MAX)
		return train_err_set(err, APP_ERANGE, NULL, 0, 0, "batch_size: out of range 1..%u", TRAIN_BATCH_MAX);
	if (p->threads < 1 || p->threads > TRAIN_THREADS_MAX)
		return train_err_set(err, APP_ERANGE, NULL, 0, 0, "threads: out of range 1..%u", TRAIN_THREADS_MAX);
	if (p->learning_rate < 0 || p->learning_rate > TRAIN_LR_MAX)
		return train_err_set(err, APP_ERANGE, NULL, 0, 0, "learning_rate: out of range (0, 10]");
	if (!(p->l2 >= 0 && p->l2 <= TRAIN_L2_MAX))
		return train_err_set(err, APP_ERANGE, NULL, 0, 0, "l2: out of range [0, 1000]");
	if (!(p->validation_split >= 0 && p->validation_split <= TRAIN_VSPLIT_MAX))
		return train_err_set(err, APP_ERANGE, NULL, 0, 0, "validation_split: out of range [0, 0.9]");
	if (!(p->momentum >= 0 && p->momentum <= TRAIN_MOMENTUM_MAX))
		return train_err_set(err, APP_ERANGE, NULL, 0, 0, "momentum: out of range [0, 0.999]");
	return 0;
}

void train_set_threads(uint32_t threads)
{
	if (threads < 1)
		threads = 1;
	if (threads > TRAIN_THREADS_MAX)
		threads = TRAIN_THREADS_MAX;
	openblas_set_num_threads((int)threads);
}

/* ---- split ---- */

int train_split(size_t **train, size_t *ntrain, size_t **val, size_t *nval, size_t rows, double vsplit,
		uint64_t seed)
{
	size_t *perm = NULL, *v = NULL;
	if (!train || !ntrain || !val || !nval)
		return APP_EINVAL;
	*train = *val = NULL;
	*ntrain = *nval = 0;
	if (!(vsplit >= 0 && vsplit <= TRAIN_VSPLIT_MAX))
		return APP_ERANGE;
	size_t nv = (size_t)ceil((double)rows * vsplit);
	if (nv >= rows)
		return APP_ERANGE;
	if (rows > SIZE_MAX / sizeof(size_t))
		return APP_ETOOBIG;
	if (!(perm = malloc(rows * sizeof *perm)))
		return APP_ENOMEM;
	for (size_t i = 0; i < rows; i++)
		perm[i] = i;
	struct rng r;
	rng_seed(&r, seed, 1);
	shuffle(perm, rows, &r);
	if (nv) {
		if (!(v = malloc(nv * sizeof *v))) {
			free(perm);
			return APP_ENOMEM;
		}
		memcpy(v, perm, nv * sizeof *v);
		memmove(perm, perm + nv, (rows - nv) * sizeof *perm);
	}
	*train = perm;
	*ntrain = rows - nv;
	*val = v;
	*nval = nv;
	return 0;
}

/* ---- metrics ---- */

void train_metrics_free(struct train_metrics *m)
{
	if (!m)
		return;
	free(m->confusion);
	free(m->support);
	m->confusion = m->support = NULL;
}

struct scored {
	float s;
	uint32_t pos;
};

static int cmp_scored(const void *a, const void *b)
{
	float x = ((const struct scored *)a)->s, y = ((const struct scored *)b)->s;
	return (x > y) - (x < y);
}

/* ROC AUC by the rank-sum (Mann-Whitney) statistic with averaged ties. */
static double auc_of(struct scored *v, size_t n)
{
	qsort(v, n, sizeof *v, cmp_scored);
	double rank_sum = 0;
	uint64_t npos = 0;
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j < n && v[j].s == v[i].s)
			j++;
		double avg = ((double)i + 1 + (double)j) / 2.0; /* ranks i+1..j */
		for (size_t k = i; k < j; k++)
			if (v[k].pos) {
				rank_sum += avg;
				npos++;
			}
		i = j;
	}
	uint64_t nneg = n - npos;
	if (!npos || !nneg)
		return 0.5;
	return (rank_sum - (double)npos * ((double)npos + 1) / 2.0) / ((double)npos * (double)nneg);
}

int train_evaluate(struct train_metrics *met, const struct model *m, const struct dataset *ds, const size_t *idx,
		   size_t n, struct train_err *err)
{
	float *probs = NULL;
	struct scored *sc = NULL;
	size_t *blk = NULL;
	int r;
	if (!met || !m || !ds)
		return APP_EINVAL;
	if (ds->features != m->features)
		return train_err_set(err, APP_EINVAL, NULL, 0, 0, "dataset has %zu features, the model %u",
				     ds->features, m->features);
	if (ds->nclasses > m->classes)
		return train_err_set(err, APP_EINVAL, NULL, 0, 0, "dataset has %zu classes, the model %u",
				     ds->nclasses, m->classes);
	if (!idx)
		n = ds->rows;
	const uint32_t C = m->classes;
	train_metrics_free(met);
	met->features = m->features;
	met->classes = C;
	met->evaluated = n;
	met->has_auc = C == 2;
	r = APP_ENOMEM;
	size_t bn = n < EVAL_BLOCK ? n : EVAL_BLOCK;
	if (!(met->confusion = calloc((size_t)C * C, sizeof(uint64_t))) ||
	    !(met->support = calloc(C, sizeof(uint64_t))) || !(probs = malloc((bn ? bn : 1) * C * sizeof(float))) ||
	    !(blk = malloc((bn ? bn : 1) * sizeof(size_t))) ||
	    (C == 2 && !(sc = malloc((n ? n : 1) * sizeof *sc)))) {
		r = train_err_set(err, APP_ENOMEM, NULL, 0, 0, "out of memory");
		goto out;
	}
	double loss = 0;
	uint64_t correct = 0;
	for (size_t s = 0; s < n; s += EVAL_BLOCK) {
		size_t k = n - s < EVAL_BLOCK ? n - s : EVAL_BLOCK;
		for (size_t i = 0; i < k; i++)
			blk[i] = idx ? idx[s + i] : s + i;
		if ((r = model_predict_rows(m, probs, ds->x, blk, k)) != 0) {
			r = train_err_set(err, r, NULL, 0, 0,
					  r == APP_ERANGE ? "the model's outputs overflow on this data (row %zu)"
							  : "prediction failed (row %zu)",
					  blk[0] + 1);
			goto out;
		}
		for (size_t i = 0; i < k; i++) {
			const float *pr = probs + i * C;
			uint32_t t = ds->y[blk[i]], best = 0;
			for (uint32_t c = 1; c < C; c++)
				if (pr[c] > pr[best])
					best = c;
			correct += best == t;
			met->confusion[(size_t)t * C + best]++;
			met->support[t]++;
			double pt = pr[t];
			if (pt < PROB_EPS)
				pt = PROB_EPS;
			loss -= log(pt);
			if (sc) {
				sc[s + i].s = pr[1];
				sc[s + i].pos = t == 1;
			}
		}
	}
	met->accuracy = n ? (double)correct / (double)n : 0;
	met->log_loss = n ? loss / (double)n : 0;
	met->auc = sc ? auc_of(sc, n) : 0;
	r = 0;
out:
	free(probs);
	free(sc);
	free(blk);
	return r;
}

/* ---- training ---- */

struct trainer {
	struct model *m;
	const struct train_params *p;
	size_t B;                 /* batch capacity */
	float *a[MODEL_MAX_HIDDEN + 2];
	float *d0, *d1;           /* deltas, B x max width */
	float *grad, *m1, *m2;    /* like params */
	float *gW[MODEL_MAX_HIDDEN + 1], *gb[MODEL_MAX_HIDDEN + 1];
	float *best;              /* best params (early stopping) */
	float *ws;
	uint64_t step;
};

static void trainer_free(struct trainer *t)
{
	free(t->ws);
	free(t->best);
}

static int trainer_init(struct trainer *t, struct model *m, const struct train_params *p, size_t B,
			struct train_err *err)
{
	memset(t, 0, sizeof *t);
	t->m = m;
	t->p = p;
	t->B = B;
	uint64_t maxw = 0, total = 0;
	for (uint32_t l = 0; l <= m->nlayers; l++) {
		total += (uint64_t)B * m->width[l];
		if (m->width[l] > maxw)
			maxw = m->width[l];
	}
	total += 2 * (uint64_t)B * maxw + 3 * (uint64_t)m->nparams;
	if (total > (uint64_t)SIZE_MAX / sizeof(float) || total * sizeof(float) > (8ULL << 30))
		return train_err_set(err, APP_ETOOBIG, NULL, 0, 0, "batch_size: workspace over 8 GiB");
	if (!(t->ws = calloc((size_t)total, sizeof(float))))
		return train_err_set(err, APP_ENOMEM, NULL, 0, 0, "out of memory for the workspace");
	float *q = t->ws;
	for (uint32_t l = 0; l <= m->nlayers; l++) {
		t->a[l] = q;
		q += B * m->width[l];
	}
	t->d0 = q;
	q += B * maxw;
	t->d1 = q;
	q += B * maxw;
	t->grad = q;
	q += m->nparams;
	t->m1 = q;
	q += m->nparams;
	t->m2 = q;
	for (uint32_t l = 0; l < m->nlayers; l++) {
		t->gW[l] = t->grad + (m->W[l] - m->params);
		t->gb[l] = t->grad + (m->b[l] - m->params);
	}
	if (p->patience && !(t->best = malloc(m->nparams * sizeof(float))))
		return train_err_set(err, APP_ENOMEM, NULL, 0, 0, "out of memory");
	return 0;
}

/* Forward and backward of one mini-batch into t->grad (without the L2
 * term). Returns the summed cross-entropy. */
static double batch_grad(struct trainer *t, const struct dataset *ds, const size_t *rows, size_t n)
{
	struct model *m = t->m;
	const uint32_t L = m->nlayers, O = m->width[L];
	const float invn = 1.0f / (float)n;
	double loss = 0;
	model_standardize_rows(m, t->a[0], ds->x, rows, n);
	model_forward(m, t->a, n);
	/* Output delta (P - Y) / n and the loss. */
	float *d = t->d0, *dn = t->d1;
	const float *P = t->a[L];
	if (O == 1) {
		for (size_t i = 0; i < n; i++) {
			float pi = P[i];
			int y = ds->y[rows[i]] == 1;
			float pt = y ? pi : 1.0f - pi;
			loss -= log(pt > (float)PROB_EPS ? pt : (float)PROB_EPS);
			d[i] = (pi - (float)y) * invn;
		}
	} else {
		for (size_t i = 0; i < n; i++) {
			const float *pr = P + i * O;
			float *di = d + i * O;
			uint32_t y = ds->y[rows[i]];
			float pt = pr[y];
			loss -= log(pt > (float)PROB_EPS ? pt : (float)PROB_EPS);
			for (uint32_t c = 0; c < O; c++)
				di[c] = pr[c] * invn;
			di[y] -= invn;
		}
	}
	/* Backward. */
	for (uint32_t l = L; l-- > 0;) {
		const int in = (int)m->width[l], out = (int)m->width[l + 1], B = (int)n;
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, in, out, B, 1.0f, t->a[l], in, d, out, 0.0f,
			    t->gW[l], out);
		float *gb = t->gb[l];
		memset(gb, 0, (size_t)out * sizeof(float));
		for (size_t i = 0; i < n; i++) {
			const float *di = d + i * (size_t)out;
			for (int j = 0; j < out; j++)
				gb[j] += di[j];
		}
		if (l == 0)
			break;
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, in, out, 1.0f, d, out, m->W[l], out, 0.0f, dn,
			    in);
		const float *A = t->a[l];
		size_t cnt = n * (size_t)in;
		switch (m->act) {
		case ACT_RELU:
			for (size_t k = 0; k < cnt; k++)
				dn[k] = A[k] > 0.0f ? dn[k] : 0.0f;
			break;
		case ACT_TANH:
			for (size_t k = 0; k < cnt; k++)
				dn[k] *= 1.0f - A[k] * A[k];
			break;
		case ACT_SIGMOID:
			for (size_t k = 0; k < cnt; k++)
				dn[k] *= A[k] * (1.0f - A[k]);
			break;
		case ACT_NONE:
			break;
		}
		float *tmp = d;
		d = dn;
		dn = tmp;
	}
	return loss;
}

/* One mini-batch: gradient, then the optimizer step. Returns the summed loss. */
static double train_batch(struct trainer *t, const struct dataset *ds, const size_t *rows, size_t n,
			  double decay, double lr)
{
	struct model *m = t->m;
	const uint32_t L = m->nlayers;
	double loss = batch_grad(t, ds, rows, n);
	/* Update: weights get the L2 term, biases do not. */
	t->step++;
	const float fdecay = (float)decay;
	for (uint32_t l = 0; l < L; l++) {
		for (int part = 0; part < 2; part++) {
			float *w = part ? m->b[l] : m->W[l];
			size_t off = (size_t)(w - m->params);
			size_t cnt = part ? m->width[l + 1] : (size_t)m->width[l] * m->width[l + 1];
			float *g = t->grad + off, *m1 = t->m1 + off, *m2 = t->m2 + off;
			float dec = part ? 0.0f : fdecay;
			if (t->p->optimizer == OPT_ADAM) {
				double bc1 = 1.0 - pow(ADAM_B1, (double)t->step);
				double bc2 = 1.0 - pow(ADAM_B2, (double)t->step);
				float lrt = (float)(lr * sqrt(bc2) / bc1);
				const float b1 = (float)ADAM_B1, b2 = (float)ADAM_B2, eps = (float)ADAM_EPS;
				for (size_t k = 0; k < cnt; k++) {
					float gk = g[k] + dec * w[k];
					m1[k] = b1 * m1[k] + (1.0f - b1) * gk;
					m2[k] = b2 * m2[k] + (1.0f - b2) * gk * gk;
					w[k] -= lrt * m1[k] / (sqrtf(m2[k]) + eps);
				}
			} else {
				const float mu = (float)t->p->momentum, flr = (float)lr;
				for (size_t k = 0; k < cnt; k++) {
					float gk = g[k] + dec * w[k];
					m1[k] = mu * m1[k] - flr * gk;
					w[k] += m1[k];
				}
			}
		}
	}
	return loss;
}

int train_loss_grad(const struct model *m, double *loss, float *grad, const struct dataset *ds, const size_t *rows,
		    size_t n, double decay)
{
	struct trainer t;
	struct train_params p;
	int r;
	if (!m || !loss || !grad || !ds || !rows || !n || ds->features != m->features || ds->nclasses > m->classes)
		return APP_EINVAL;
	train_params_default(&p);
	if ((r = trainer_init(&t, (struct model *)m, &p, n, NULL)) != 0)
		return r;
	double ce = batch_grad(&t, ds, rows, n) / (double)n, pen = 0;
	memcpy(grad, t.grad, m->nparams * sizeof(float));
	for (uint32_t l = 0; l < m->nlayers; l++) {
		size_t off = (size_t)(m->W[l] - m->params), cnt = (size_t)m->width[l] * m->width[l + 1];
		for (size_t k = 0; k < cnt; k++) {
			double w = m->params[off + k];
			pen += w * w;
			grad[off + k] += (float)(decay * w);
		}
	}
	*loss = ce + 0.5 * decay * pen;
	trainer_free(&t);
	return 0;
}

/* Mean loss of the model on rows idx[0..n) (forward only, in t's workspace). */
static double mean_loss(struct trainer *t, const struct dataset *ds, const size_t *idx, size_t n)
{
	struct model *m = t->m;
	const uint32_t L = m->nlayers, O = m->width[L];
	double loss = 0;
	for (size_t s = 0; s < n; s += t->B) {
		size_t k = n - s < t->B ? n - s : t->B;
		model_standardize_rows(m, t->a[0], ds->x, idx + s, k);
		model_forward(m, t->a, k);
		for (size_t i = 0; i < k; i++) {
			uint32_t y = ds->y[idx[s + i]];
			float pt = O == 1 ? (y == 1 ? t->a[L][i] : 1.0f - t->a[L][i]) : t->a[L][i * O + y];
			loss -= log(pt > (float)PROB_EPS ? pt : (float)PROB_EPS);
		}
	}
	return n ? loss / (double)n : 0;
}

static void fit_scaler(struct model *m, const struct dataset *ds, const size_t *tr, size_t ntr)
{
	const size_t d = ds->features;
	double *sum = calloc(2 * d, sizeof(double));
	if (!sum) {
		/* fall back to the identity scaler */
		return;
	}
	double *sq = sum + d;
	for (size_t i = 0; i < ntr; i++) {
		const float *x = ds->x + tr[i] * d;
		for (size_t j = 0; j < d; j++)
			sum[j] += x[j];
	}
	for (size_t j = 0; j < d; j++)
		sum[j] /= (double)ntr;
	for (size_t i = 0; i < ntr; i++) {
		const float *x = ds->x + tr[i] * d;
		for (size_t j = 0; j < d; j++) {
			double c = x[j] - sum[j];
			sq[j] += c * c;
		}
	}
	for (size_t j = 0; j < d; j++) {
		double sd = sqrt(sq[j] / (double)ntr);
		m->mean[j] = (float)sum[j];
		m->scale[j] = (sd > 1e-12 && isfinite(sd) && (float)sd > 0.0f) ? (float)sd : 1.0f;
	}
	free(sum);
}

static void init_weights(struct model *m, const struct train_params *p)
{
	if (m->kind == MODEL_LOGREG)
		return; /* zeros: the convex problem needs no symmetry breaking */
	struct rng r;
	rng_seed(&r, p->seed, 2);
	for (uint32_t l = 0; l < m->nlayers; l++) {
		double fan = (double)m->width[l] + m->width[l + 1];
		double factor = m->act == ACT_SIGMOID ? 2.0 : 6.0;
		float bound = (float)sqrt(factor / fan);
		size_t nw = (size_t)m->width[l] * m->width[l + 1];
		for (size_t k = 0; k < nw; k++)
			m->W[l][k] = bound * rng_sym(&r);
		for (size_t k = 0; k < m->width[l + 1]; k++)
			m->b[l][k] = bound * rng_sym(&r);
	}
}

/*
 * Denormal floats (tiny gradients, Adam moments) are 10-100x slower on x86;
 * training runs with flush-to-zero and denormals-are-zero, restored after.
 * The result stays deterministic.
 */
static unsigned fp_fast_begin(void)
{
#if defined(__SSE__)
	unsigned old = _mm_getcsr();
	_mm_setcsr(old | 0x8040u); /* FTZ | DAZ */
	return old;
#else
	return 0;
#endif
}

static void fp_fast_end(unsigned old)
{
#if defined(__SSE__)
	_mm_setcsr(old);
#else
	(void)old;
#endif
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int train_fit(struct model **out, struct train_metrics *met, const struct dataset *ds, const size_t *tr, size_t ntr,
	      const size_t *va, size_t nva, const struct train_params *p, train_progress_fn cb, void *cbarg,
	      struct train_err *err)
{
	struct model *m = NULL;
	struct trainer t = {0};
	size_t *order = NULL;
	int r;
	if (!out || !met || !ds || !tr || !p || (nva && !va))
		return train_err_set(err, APP_EINVAL, NULL, 0, 0, "missing argument");
	*out = NULL;
	if ((r = train_params_check(p, err)) != 0)
		return r;
	if (ntr == 0)
		return train_err_set(err, APP_EINVAL, NULL, 0, 0, "no training rows");
	if (ds->nclasses < 2 || ds->nclasses > DATASET_MAX_CLASSES)
		return train_err_set(err, APP_EINVAL, NULL, 0, 0, "need 2..%u classes, the dataset has %zu",
				     DATASET_MAX_CLASSES, ds->nclasses);
	if (ds->features < 1 || ds->features > DATASET_MAX_FEATURES)
		return train_err_set(err, APP_EINVAL, NULL, 0, 0, "features out of range");
	double t0 = now_ms();
	unsigned csr = fp_fast_begin();
	train_set_threads(p->threads);
	if ((r = model_new(&m, p->model, p->model == MODEL_MLP ? p->activation : ACT_NONE, (uint32_t)ds->features,
			   (uint32_t)ds->nclasses, p->model == MODEL_MLP ? p->nhidden : 0, p->hidden, err)) != 0)
		goto out;
	if ((r = model_set_labels(m, (const char *const *)ds->classes, (const char *const *)ds->names)) != 0) {
		r = train_err_set(err, r, NULL, 0, 0, "class labels or feature names not storable");
		goto out;
	}
	fit_scaler(m, ds, tr, ntr);
	init_weights(m, p);
	size_t B = p->batch_size < ntr ? p->batch_size : ntr;
	if ((r = trainer_init(&t, m, p, B, err)) != 0)
		goto out;
	if (!(order = malloc(ntr * sizeof *order))) {
		r = train_err_set(err, APP_ENOMEM, NULL, 0, 0, "out of memory");
		goto out;
	}
	memcpy(order, tr, ntr * sizeof *order);
	struct rng rs;
	rng_seed(&rs, p->seed, 3);
	double lr = p->learning_rate > 0 ? p->learning_rate : (p->optimizer == OPT_ADAM ? 0.001 : 0.01);
	double decay = p->l2 / (double)ntr;
	double best = INFINITY, vloss = -1, tloss = 0;
	uint32_t since_best = 0, epoch;
	for (epoch = 1; epoch <= p->epochs; epoch++) {
		shuffle(order, ntr, &rs);
		double sum = 0;
		for (size_t s = 0; s < ntr; s += B) {
			size_t k = ntr - s < B ? ntr - s : B;
			sum += train_batch(&t, ds, order + s, k, decay, lr);
		}
		tloss = sum / (double)ntr;
		if (!isfinite(tloss)) {
			r = train_err_set(err, APP_ERANGE, NULL, 0, 0,
					  "learning_rate: training diverged (non-finite loss) at epoch %u", epoch);
			goto out;
		}
		int stop = 0;
		if (p->patience && nva) {
			vloss = mean_loss(&t, ds, va, nva);
			if (vloss < best - EARLY_TOL) {
				best = vloss;
				since_best = 0;
				memcpy(t.best, m->params, m->nparams * sizeof(float));
			} else if (++since_best >= p->patience) {
				stop = 1;
			}
		}
		if (cb && cb(cbarg, epoch, p->epochs, tloss, vloss) != 0) {
			r = train_err_set(err, APP_ECANCELED, NULL, 0, 0, "canceled at epoch %u", epoch);
			goto out;
		}
		if (stop) {
			epoch++;
			break;
		}
	}
	if (t.best && isfinite(best))
		memcpy(m->params, t.best, m->nparams * sizeof(float));
	if (p->patience && nva)
		vloss = isfinite(best) ? best : vloss;
	double t1 = now_ms();
	memset(met, 0, sizeof *met);
	if ((r = train_evaluate(met, m, ds, nva ? va : tr, nva ? nva : ntr, err)) != 0)
		goto out;
	met->metrics_on_train = nva == 0;
	met->samples = ntr + nva;
	met->train_samples = ntr;
	met->validation_samples = nva;
	met->epochs_run = epoch - 1;
	met->train_ms = t1 - t0;
	met->train_loss = tloss;
	met->val_loss = nva ? (p->patience ? vloss : met->log_loss) : -1;
	*out = m;
	m = NULL;
	r = 0;
out:
	fp_fast_end(csr);
	free(order);
	trainer_free(&t);
	model_free(m);
	return r;
}

int train_run(struct model **out, struct train_metrics *met, const struct dataset *ds, const struct train_params *p,
	      train_progress_fn cb, void *cbarg, struct train_err *err)
{
	size_t *tr = NULL, *va = NULL, ntr, nva;
	int r;
	if (!ds || !p)
		return train_err_set(err, APP_EINVAL, NULL, 0, 0, "missing argument");
	if ((r = train_params_check(p, err)) != 0)
		return r;
	r = train_split(&tr, &ntr, &va, &nva, ds->rows, p->validation_split, p->seed);
	if (r == APP_ERANGE)
		return train_err_set(err, r, NULL, 0, 0, "validation_split: leaves no training rows (%zu rows)",
				     ds->rows);
	if (r)
		return train_err_set(err, r, NULL, 0, 0, "out of memory");
	r = train_fit(out, met, ds, tr, ntr, va, nva, p, cb, cbarg, err);
	free(tr);
	free(va);
	return r;
}
