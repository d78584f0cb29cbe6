/*
 * model.c: model structure, file format and inference (see model.h).
 */
/* Vectorize the elementwise loops (activations, deltas, optimizer): GCC's
 * -O2 cost model leaves them scalar. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif

#include "enclave/train/model.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appliance/hash.h"

#define MODEL_PREDICT_BLOCK 256 /* rows per forward block */

const char *model_kind_name(enum model_kind k)
{
	return k == MODEL_LOGREG ? "logreg" : k == MODEL_MLP ? "mlp" : "unknown";
}

const char *model_act_name(enum model_act a)
{
	switch (a) {
	case ACT_NONE:
		return "none";
	case ACT_RELU:
		return "relu";
	case ACT_TANH:
		return "tanh";
	case ACT_SIGMOID:
		return "sigmoid";
	}
	return "unknown";
}

uint32_t model_outputs(const struct model *m)
{
	return m->classes == 2 ? 1 : m->classes;
}

static void free_strs(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void model_free(struct model *m)
{
	if (!m)
		return;
	free_strs(m->labels, m->classes);
	free_strs(m->names, m->features);
	free(m->mean);
	free(m->scale);
	free(m->params);
	free(m);
}

int model_new(struct model **out, enum model_kind kind, enum model_act act, uint32_t features, uint32_t classes,
	      uint32_t nhidden, const uint32_t *hidden, struct train_err *err)
{
	struct model *m = NULL;
	if (!out)
		return APP_EINVAL;
	*out = NULL;
	if (kind == MODEL_LOGREG) {
		if (nhidden != 0 || act != ACT_NONE)
			return train_err_set(err, APP_EINVAL, NULL, 0, 0, "logreg has no hidden layers");
	} else if (kind == MODEL_MLP) {
		if (nhidden < 1 || nhidden > MODEL_MAX_HIDDEN || !hidden)
			return train_err_set(err, APP_ERANGE, NULL, 0, 0, "hidden: 1..%d layers", MODEL_MAX_HIDDEN);
		if (act != ACT_RELU && act != ACT_TANH && act != ACT_SIGMOID)
			return train_err_set(err, APP_EINVAL, NULL, 0, 0, "activation: relu, tanh or sigmoid");
		for (uint32_t i = 0; i < nhidden; i++)
			if (hidden[i] < 1 || hidden[i] > MODEL_MAX_WIDTH)
				return train_err_set(err, APP_ERANGE, NULL, 0, 0, "hidden: widths 1..%d",
						     MODEL_MAX_WIDTH);
	} else {
		return train_err_set(err, APP_EINVAL, NULL, 0, 0, "model: logreg or mlp");
	}
	if (features < 1 || features > DATASET_MAX_FEATURES)
		return train_err_set(err, APP_ERANGE, NULL, 0, 0, "features: 1..%u", DATASET_MAX_FEATURES);
	if (classes < 2 || classes > DATASET_MAX_CLASSES)
		return train_err_set(err, APP_ERANGE, NULL, 0, 0, "classes: 2..%u", DATASET_MAX_CLASSES);
	if (!(m = calloc(1, sizeof *m)))
		goto nomem;
	m->kind = kind;
	m->act = act;
	m->features = features;
	m->classes = classes;
	m->nhidden = nhidden;
	m->nlayers = nhidden + 1;
	m->width[0] = features;
	for (uint32_t i = 0; i < nhidden; i++)
		m->width[i + 1] = hidden[i];
	m->width[m->nlayers] = model_outputs(m);
	uint64_t np = 0;
	for (uint32_t l = 0; l < m->nlayers; l++)
		np += (uint64_t)m->width[l] * m->width[l + 1] + m->width[l + 1];
	if (np > MODEL_MAX_PARAMS) {
		model_free(m);
		return train_err_set(err, APP_ETOOBIG, NULL, 0, 0, "%llu parameters, more than %u",
				     (unsigned long long)np, MODEL_MAX_PARAMS);
	}
	m->nparams = (size_t)np;
	if (!(m->params = calloc(m->nparams, sizeof(float))) || !(m->mean = calloc(features, sizeof(float))) ||
	    !(m->scale = malloc(features * sizeof(float))) || !(m->labels = calloc(classes, sizeof(char *))))
		goto nomem;
	for (uint32_t j = 0; j < features; j++)
		m->scale[j] = 1.0f;
	for (uint32_t c = 0; c < classes; c++) {
		char tmp[16];
		snprintf(tmp, sizeof tmp, "%u", c);
		if (!(m->labels[c] = strdup(tmp)))
			goto nomem;
	}
	float *p = m->params;
	for (uint32_t l = 0; l < m->nlayers; l++) {
		m->W[l] = p;
		p += (size_t)m->width[l] * m->width[l + 1];
		m->b[l] = p;
		p += m->width[l + 1];
	}
	*out = m;
	return 0;
nomem:
	model_free(m);
	return train_err_set(err, APP_ENOMEM, NULL, 0, 0, "out of memory");
}

static int label_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n < 1 || n > DATASET_MAX_LABEL_LEN)
		return 0;
	return !strpbrk(s, "\r\n");
}

int model_set_labels(struct model *m, const char *const *labels, const char *const *names)
{
	char **nl = NULL, **nn = NULL;
	if (!m || !labels)
		return APP_EINVAL;
	for (uint32_t c = 0; c < m->classes; c++) {
		if (!label_ok(labels[c]))
			return APP_EINVAL;
		for (uint32_t d = 0; d < c; d++)
			if (!strcmp(labels[c], labels[d]))
				return APP_EINVAL;
	}
	if (names)
		for (uint32_t j = 0; j < m->features; j++)
			if (!label_ok(names[j]))
				return APP_EINVAL;
	if (!(nl = calloc(m->classes, sizeof *nl)))
		goto nomem;
	for (uint32_t c = 0; c < m->classes; c++)
		if (!(nl[c] = strdup(labels[c])))
			goto nomem;
	if (names) {
		if (!(nn = calloc(m->features, sizeof *nn)))
			goto nomem;
		for (uint32_t j = 0; j < m->features; j++)
			if (!(nn[j] = strdup(names[j])))
				goto nomem;
	}
	free_strs(m->labels, m->classes);
	free_strs(m->names, m->features);
	m->labels = nl;
	m->names = nn;
	return 0;
nomem:
	free_strs(nl, m->classes);
	free_strs(nn, m->features);
	return APP_ENOMEM;
}

/* ---- inference ---- */

void model_standardize_rows(const struct model *m, float *a0, const float *x, const size_t *idx, size_t n)
{
	const size_t d = m->features;
	const float *mu = m->mean, *sc = m->scale;
	for (size_t i = 0; i < n; i++) {
		const float *src = x + (idx ? idx[i] : i) * d;
		float *dst = a0 + i * d;
		for (size_t j = 0; j < d; j++)
			dst[j] = (src[j] - mu[j]) / sc[j];
	}
}

static void bias_act(float *z, const float *b, size_t rows, size_t n, enum model_act act)
{
	for (size_t i = 0; i < rows; i++) {
		float *r = z + i * n;
		switch (act) {
		case ACT_RELU:
			for (size_t j = 0; j < n; j++) {
				float v = r[j] + b[j];
				r[j] = v > 0.0f ? v : 0.0f;
			}
			break;
		case ACT_TANH:
			for (size_t j = 0; j < n; j++)
				r[j] = tanhf(r[j] + b[j]);
			break;
		case ACT_SIGMOID:
			for (size_t j = 0; j < n; j++)
				r[j] = 1.0f / (1.0f + expf(-(r[j] + b[j])));
			break;
		case ACT_NONE:
			for (size_t j = 0; j < n; j++)
				r[j] += b[j];
			break;
		}
	}
}

static void softmax_rows(float *z, size_t rows, size_t n)
{
	for (size_t i = 0; i < rows; i++) {
		float *r = z + i * n, mx = r[0], s = 0.0f;
		for (size_t j = 1; j < n; j++)
			mx = r[j] > mx ? r[j] : mx;
		for (size_t j = 0; j < n; j++) {
			r[j] = expf(r[j] - mx);
			s += r[j];
		}
		float inv = 1.0f / s;
		for (size_t j = 0; j < n; j++)
			r[j] *= inv;
	}
}

void model_forward(const struct model *m, float *const *a, size_t rows)
{
	const int B = (int)rows;
	for (uint32_t l = 0; l < m->nlayers; l++) {
		const int in = (int)m->width[l], out = (int)m->width[l + 1];
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, out, in, 1.0f, a[l], in, m->W[l], out, 0.0f,
			    a[l + 1], out);
		if (l + 1 < m->nlayers) {
			bias_act(a[l + 1], m->b[l], rows, (size_t)out, m->act);
		} else if (out == 1) {
			bias_act(a[l + 1], m->b[l], rows, 1, ACT_SIGMOID);
		} else {
			bias_act(a[l + 1], m->b[l], rows, (size_t)out, ACT_NONE);
			softmax_rows(a[l + 1], rows, (size_t)out);
		}
	}
}

int model_predict_rows(const struct model *m, float *probs, const float *x, const size_t *idx, size_t n)
{
	float *ws = NULL, *a[MODEL_MAX_HIDDEN + 2];
	size_t total = 0;
	if (!m || (n && (!probs || !x)))
		return APP_EINVAL;
	for (uint32_t l = 0; l <= m->nlayers; l++)
		total += (size_t)MODEL_PREDICT_BLOCK * m->width[l];
	if (!(ws = malloc(total * sizeof(float))))
		return APP_ENOMEM;
	float *p = ws;
	for (uint32_t l = 0; l <= m->nlayers; l++) {
		a[l] = p;
		p += (size_t)MODEL_PREDICT_BLOCK * m->width[l];
	}
	const uint32_t C = m->classes, O = m->width[m->nlayers];
	for (size_t s = 0; s < n; s += MODEL_PREDICT_BLOCK) {
		size_t bn = n - s < MODEL_PREDICT_BLOCK ? n - s : MODEL_PREDICT_BLOCK;
		if (idx)
			model_standardize_rows(m, a[0], x, idx + s, bn);
		else
			model_standardize_rows(m, a[0], x + s * m->features, NULL, bn);
		model_forward(m, a, bn);
		const float *o = a[m->nlayers];
		float *dst = probs + s * C;
		for (size_t i = 0; i < bn * O; i++)
			if (isnan(o[i])) {
				/* extreme weights of an untrusted model overflowed */
				free(ws);
				return APP_ERANGE;
			}
		if (O == 1) {
			for (size_t i = 0; i < bn; i++) {
				dst[2 * i + 1] = o[i];
				dst[2 * i] = 1.0f - o[i];
			}
		} else {
			memcpy(dst, o, bn * C * sizeof(float));
		}
	}
	free(ws);
	return 0;
}

int model_predict(const struct model *m, float *probs, const float *x, size_t rows)
{
	return model_predict_rows(m, probs, x, NULL, rows);
}

/* ---- file format ---- */

struct wbuf {
	uint8_t *p;
	size_t len, cap;
};

static void put_u32(struct wbuf *w, uint32_t v)
{
	uint8_t *q = w->p + w->len;
	q[0] = (uint8_t)v;
	q[1] = (uint8_t)(v >> 8);
	q[2] = (uint8_t)(v >> 16);
	q[3] = (uint8_t)(v >> 24);
	w->len += 4;
}

static void put_bytes(struct wbuf *w, const void *s, size_t n)
{
	memcpy(w->p + w->len, s, n);
	w->len += n;
}

static void put_f32s(struct wbuf *w, const float *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t u;
		memcpy(&u, &v[i], 4);
		put_u32(w, u);
	}
}

static void put_str(struct wbuf *w, const char *s)
{
	size_t n = strlen(s);
	w->p[w->len++] = (uint8_t)n;
	w->p[w->len++] = (uint8_t)(n >> 8);
	put_bytes(w, s, n);
}

int model_serialize(const struct model *m, uint8_t **out, size_t *len, uint8_t sha256[32])
{
	struct wbuf w = {0};
	if (!m || !out || !len)
		return APP_EINVAL;
	*out = NULL;
	*len = 0;
	uint64_t n = MODEL_MAGIC_LEN + 4 * 6 + 4 * (uint64_t)m->nhidden + 4;
	for (uint32_t c = 0; c < m->classes; c++)
		n += 2 + strlen(m->labels[c]);
	if (m->names)
		for (uint32_t j = 0; j < m->features; j++)
			n += 2 + strlen(m->names[j]);
	n += 8 * (uint64_t)m->features + 4 * (uint64_t)m->nparams;
	if (n > MODEL_MAX_FILE)
		return APP_ETOOBIG;
	if (!(w.p = malloc((size_t)n)))
		return APP_ENOMEM;
	w.cap = (size_t)n;
	put_bytes(&w, MODEL_MAGIC, MODEL_MAGIC_LEN);
	put_u32(&w, MODEL_VERSION);
	put_u32(&w, (uint32_t)m->kind);
	put_u32(&w, (uint32_t)m->act);
	put_u32(&w, m->features);
	put_u32(&w, m->classes);
	put_u32(&w, m->nhidden);
	for (uint32_t i = 0; i < m->nhidden; i++)
		put_u32(&w, m->width[i + 1]);
	put_u32(&w, m->names ? 1u : 0u);
	for (uint32_t c = 0; c < m->classes; c++)
		put_str(&w, m->labels[c]);
	if (m->names)
		for (uint32_t j = 0; j < m->features; j++)
			put_str(&w, m->names[j]);
	put_f32s(&w, m->mean, m->features);
	put_f32s(&w, m->scale, m->features);
	put_f32s(&w, m->params, m->nparams);
	if (w.len != w.cap) {
		free(w.p);
		return APP_EINTERNAL;
	}
	if (sha256)
		hash_sha256(sha256, w.p, w.len);
	*out = w.p;
	*len = w.len;
	return 0;
}

struct rbuf {
	const uint8_t *p, *end;
};

static int get_u32(struct rbuf *r, uint32_t *v)
{
	if ((size_t)(r->end - r->p) < 4)
		return APP_EPARSE;
	*v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 | (uint32_t)r->p[3] << 24;
	r->p += 4;
	return 0;
}

static int get_str(struct rbuf *r, char **out)
{
	if ((size_t)(r->end - r->p) < 2)
		return APP_EPARSE;
	size_t n = (size_t)r->p[0] | (size_t)r->p[1] << 8;
	r->p += 2;
	if (n < 1 || n > DATASET_MAX_LABEL_LEN || n > (size_t)(r->end - r->p))
		return APP_EPARSE;
	if (memchr(r->p, 0, n) || memchr(r->p, '\n', n) || memchr(r->p, '\r', n))
		return APP_EPARSE;
	char *s = malloc(n + 1);
	if (!s)
		return APP_ENOMEM;
	memcpy(s, r->p, n);
	s[n] = 0;
	r->p += n;
	*out = s;
	return 0;
}

static int get_f32s(struct rbuf *r, float *v, size_t n)
{
	if (n > (size_t)(r->end - r->p) / 4)
		return APP_EPARSE;
	for (size_t i = 0; i < n; i++) {
		uint32_t u = 0;
		(void)get_u32(r, &u);
		memcpy(&v[i], &u, 4);
		if (!isfinite(v[i]))
			return APP_ERANGE;
	}
	return 0;
}

int model_parse(struct model **out, const uint8_t *buf, size_t len, struct train_err *err)
{
	struct model *m = NULL;
	struct rbuf rb = {buf, buf + len};
	uint32_t version, kind, act, features, classes, nhidden, hidden[MODEL_MAX_HIDDEN], flags;
	int r;
	if (!out || (!buf && len))
		return APP_EINVAL;
	*out = NULL;
	if (len > MODEL_MAX_FILE)
		return train_err_set(err, APP_ETOOBIG, NULL, 0, 0, "model file over %u bytes", MODEL_MAX_FILE);
	if (len < MODEL_MAGIC_LEN || memcmp(buf, MODEL_MAGIC, MODEL_MAGIC_LEN))
		return train_err_set(err, APP_EPARSE, NULL, 0, 0, "not a model file (bad magic)");
	rb.p += MODEL_MAGIC_LEN;
	if (get_u32(&rb, &version) || get_u32(&rb, &kind) || get_u32(&rb, &act) || get_u32(&rb, &features) ||
	    get_u32(&rb, &classes) || get_u32(&rb, &nhidden))
		return train_err_set(err, APP_EPARSE, NULL, 0, 0, "model file truncated (header)");
	if (version != MODEL_VERSION)
		return train_err_set(err, APP_EVERSION, NULL, 0, 0, "model version %u not supported", version);
	if (nhidden > MODEL_MAX_HIDDEN)
		return train_err_set(err, APP_ERANGE, NULL, 0, 0, "model has %u hidden layers (max %d)", nhidden,
				     MODEL_MAX_HIDDEN);
	for (uint32_t i = 0; i < nhidden; i++)
		if (get_u32(&rb, &hidden[i]))
			return train_err_set(err, APP_EPARSE, NULL, 0, 0, "model file truncated (hidden)");
	if (get_u32(&rb, &flags))
		return train_err_set(err, APP_EPARSE, NULL, 0, 0, "model file truncated (flags)");
	if (flags > 1)
		return train_err_set(err, APP_EPARSE, NULL, 0, 0, "unknown model flags %#x", flags);
	if (kind != MODEL_LOGREG && kind != MODEL_MLP)
		return train_err_set(err, APP_EPARSE, NULL, 0, 0, "unknown model kind %u", kind);
	if (act > ACT_SIGMOID)
		return train_err_set(err, APP_EPARSE, NULL, 0, 0, "unknown activation %u", act);
	if ((r = model_new(&m, (enum model_kind)kind, (enum model_act)act, features, classes, nhidden, hidden, err)) !=
	    0) {
		if (r == APP_EINVAL) {
			r = APP_EPARSE;
			if (err)
				err->code = r;
		}
		return r;
	}
	/* Check the remaining size before allocating names. */
	uint64_t need = 8 * (uint64_t)features + 4 * (uint64_t)m->nparams + 3 * (uint64_t)classes;
	if (flags)
		need += 3 * (uint64_t)features;
	if (need > (uint64_t)(rb.end - rb.p)) {
		r = train_err_set(err, APP_EPARSE, NULL, 0, 0, "model file truncated");
		goto fail;
	}
	for (uint32_t c = 0; c < classes; c++) {
		free(m->labels[c]);
		m->labels[c] = NULL;
		if ((r = get_str(&rb, &m->labels[c])) != 0) {
			r = train_err_set(err, r, NULL, 0, 0, "bad class label %u", c);
			goto fail;
		}
		for (uint32_t d = 0; d < c; d++)
			if (!strcmp(m->labels[c], m->labels[d])) {
				r = train_err_set(err, APP_EPARSE, NULL, 0, 0, "duplicate class label %u", c);
				goto fail;
			}
	}
	if (flags) {
		if (!(m->names = calloc(features, sizeof(char *)))) {
			r = train_err_set(err, APP_ENOMEM, NULL, 0, 0, "out of memory");
			goto fail;
		}
		for (uint32_t j = 0; j < features; j++)
			if ((r = get_str(&rb, &m->names[j])) != 0) {
				r = train_err_set(err, r, NULL, 0, 0, "bad feature name %u", j);
				goto fail;
			}
	}
	if ((r = get_f32s(&rb, m->mean, features)) != 0 || (r = get_f32s(&rb, m->scale, features)) != 0) {
		r = train_err_set(err, r, NULL, 0, 0, "bad scaler values");
		goto fail;
	}
	for (uint32_t j = 0; j < features; j++)
		if (!(m->scale[j] > 0.0f)) {
			r = train_err_set(err, APP_ERANGE, NULL, 0, 0, "scaler scale %u not positive", j);
			goto fail;
		}
	if ((r = get_f32s(&rb, m->params, m->nparams)) != 0) {
		r = train_err_set(err, r, NULL, 0, 0, r == APP_ERANGE ? "non-finite weight" : "weights truncated");
		goto fail;
	}
	if (rb.p != rb.end) {
		r = train_err_set(err, APP_EPARSE, NULL, 0, 0, "%zu trailing bytes after the model",
				  (size_t)(rb.end - rb.p));
		goto fail;
	}
	*out = m;
	return 0;
fail:
	model_free(m);
	return r;
}

int model_save(const struct model *m, const char *path, uint8_t sha256[32], struct train_err *err)
{
	uint8_t *buf = NULL;
	size_t len;
	char tmp[4096];
	FILE *f = NULL;
	int r;
	if (!m || !path)
		return APP_EINVAL;
	if ((r = model_serialize(m, &buf, &len, sha256)) != 0)
		return train_err_set(err, r, path, 0, 0, "cannot serialize the model");
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp) {
		r = train_err_set(err, APP_EINVAL, path, 0, 0, "path too long");
		goto out;
	}
	if (!(f = fopen(tmp, "wb"))) {
		r = train_err_set(err, APP_EIO, tmp, 0, 0, "cannot create: %s", strerror(errno));
		goto out;
	}
	if (fwrite(buf, 1, len, f) != len || fflush(f) != 0 || fsync(fileno(f)) != 0) {
		r = train_err_set(err, APP_EIO, tmp, 0, 0, "write failed: %s", strerror(errno));
		goto out;
	}
	if (fclose(f) != 0) {
		f = NULL;
		r = train_err_set(err, APP_EIO, tmp, 0, 0, "write failed: %s", strerror(errno));
		goto out;
	}
	f = NULL;
	if (rename(tmp, path) != 0) {
		r = train_err_set(err, APP_EIO, path, 0, 0, "rename failed: %s", strerror(errno));
		goto out;
	}
	r = 0;
out:
	if (f)
		fclose(f);
	if (r)
		unlink(tmp);
	free(buf);
	return r;
}

int model_load(struct model **out, const char *path, uint8_t sha256[32], struct train_err *err)
{
	FILE *f = NULL;
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	int r;
	if (!out || !path)
		return APP_EINVAL;
	*out = NULL;
	if (!(f = fopen(path, "rb")))
		return train_err_set(err, errno == ENOENT ? APP_ENOENT : APP_EIO, path, 0, 0, "cannot open: %s",
				     strerror(errno));
	for (;;) {
		if (len == cap) {
			if (cap >= MODEL_MAX_FILE + (size_t)1) {
				r = train_err_set(err, APP_ETOOBIG, path, 0, 0, "model file over %u bytes",
						  MODEL_MAX_FILE);
				goto out;
			}
			size_t nc = cap ? cap * 2 : 65536;
			if (nc > MODEL_MAX_FILE + (size_t)1)
				nc = MODEL_MAX_FILE + (size_t)1;
			uint8_t *nb = realloc(buf, nc);
			if (!nb) {
				r = train_err_set(err, APP_ENOMEM, path, 0, 0, "out of memory");
				goto out;
			}
			buf = nb;
			cap = nc;
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0) {
			if (ferror(f)) {
				r = train_err_set(err, APP_EIO, path, 0, 0, "read failed");
				goto out;
			}
			break;
		}
	}
	if (len > MODEL_MAX_FILE) {
		r = train_err_set(err, APP_ETOOBIG, path, 0, 0, "model file over %u bytes", MODEL_MAX_FILE);
		goto out;
	}
	if ((r = model_parse(out, buf, len, err)) != 0) {
		if (err) {
			char msg[sizeof err->msg];
			snprintf(msg, sizeof msg, "%s", err->msg);
			train_err_set(err, r, path, 0, 0, "%s", msg);
		}
		goto out;
	}
	if (sha256)
		hash_sha256(sha256, buf, len);
	r = 0;
out:
	fclose(f);
	free(buf);
	return r;
}
