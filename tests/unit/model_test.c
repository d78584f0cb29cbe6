/* model_test: model file format and inference (enclave/train/model.h). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appliance/err.h"
#include "enclave/train/model.h"
#include "tests/unit/test.h"

static uint64_t rs = 0x1234567887654321ULL;
static float rndf(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (float)((double)(rs >> 11) / 9007199254740992.0) * 2.0f - 1.0f;
}

static struct model *make(int names)
{
	struct model *m = NULL;
	const uint32_t hidden[2] = {5, 3};
	if (model_new(&m, MODEL_MLP, ACT_TANH, 4, 3, 2, hidden, NULL) != 0)
		return NULL;
	const char *labels[] = {"setosa", "versicolor", "virginica"};
	const char *nm[] = {"a", "b b", "c,c", "d"};
	if (model_set_labels(m, labels, names ? nm : NULL) != 0) {
		model_free(m);
		return NULL;
	}
	for (size_t i = 0; i < m->nparams; i++)
		m->params[i] = rndf();
	for (uint32_t j = 0; j < 4; j++) {
		m->mean[j] = rndf();
		m->scale[j] = 1.5f + rndf();
	}
	return m;
}

static void test_roundtrip(void)
{
	for (int names = 0; names < 2; names++) {
		struct model *m = make(names), *m2 = NULL;
		uint8_t *a = NULL, *b = NULL, sa[32], sb[32];
		size_t al, bl;
		CHECK(m != NULL);
		if (!m)
			return;
		CHECK_OK(model_serialize(m, &a, &al, sa));
		CHECK(memcmp(a, MODEL_MAGIC, MODEL_MAGIC_LEN) == 0);
		CHECK_OK(model_parse(&m2, a, al, NULL));
		CHECK_OK(model_serialize(m2, &b, &bl, sb));
		CHECK(al == bl && memcmp(a, b, al) == 0 && memcmp(sa, sb, 32) == 0);
		CHECK(m2 && m2->nhidden == 2 && m2->width[1] == 5 && m2->width[3] == 3 && m2->act == ACT_TANH);
		CHECK(m2 && !strcmp(m2->labels[1], "versicolor"));
		CHECK(m2 && (names ? (m2->names && !strcmp(m2->names[2], "c,c")) : m2->names == NULL));
		/* same predictions */
		float x[8] = {1, 2, 3, 4, -1, 0, 0.5f, 9}, p1[6], p2[6];
		CHECK_OK(model_predict(m, p1, x, 2));
		CHECK_OK(model_predict(m2, p2, x, 2));
		CHECK(memcmp(p1, p2, sizeof p1) == 0);
		CHECK(fabsf(p1[0] + p1[1] + p1[2] - 1.0f) < 1e-5f);
		/* every truncation and any extension is refused */
		int ok = 1;
		for (size_t n = 0; n < al; n++) {
			struct model *t = NULL;
			if (model_parse(&t, a, n, NULL) == 0)
				ok = 0;
			model_free(t);
		}
		CHECK(ok);
		uint8_t *ext = malloc(al + 1);
		memcpy(ext, a, al);
		ext[al] = 0;
		struct train_err err = {0};
		struct model *t = NULL;
		CHECK_ERR(model_parse(&t, ext, al + 1, &err), APP_EPARSE);
		CHECK(t == NULL);
		CHECK(strstr(err.msg, "trailing") != NULL);
		free(ext);
		model_free(m);
		model_free(m2);
		free(a);
		free(b);
	}
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void test_refusals(void)
{
	struct model *m = make(1), *t = NULL;
	uint8_t *a = NULL;
	size_t al;
	struct train_err err;
	CHECK_OK(model_serialize(m, &a, &al, NULL));
	uint8_t *c = malloc(al);
	/* magic, version, kind, activation, hidden count, flags */
	memcpy(c, a, al);
	c[0] = 'B';
	CHECK_ERR(model_parse(&t, c, al, &err), APP_EPARSE);
	memcpy(c, a, al);
	put32(c + 8, 2);
	CHECK_ERR(model_parse(&t, c, al, &err), APP_EVERSION);
	memcpy(c, a, al);
	put32(c + 12, 3);
	CHECK_ERR(model_parse(&t, c, al, &err), APP_EPARSE);
	memcpy(c, a, al);
	put32(c + 16, 7);
	CHECK_ERR(model_parse(&t, c, al, &err), APP_EPARSE);
	memcpy(c, a, al);
	put32(c + 16, 0); /* mlp without activation */
	CHECK_ERR(model_parse(&t, c, al, &err), APP_EPARSE);
	memcpy(c, a, al);
	put32(c + 28, 9);
	CHECK_ERR(model_parse(&t, c, al, &err), APP_ERANGE);
	memcpy(c, a, al);
	put32(c + 32, 0); /* hidden width 0 */
	CHECK_ERR(model_parse(&t, c, al, &err), APP_ERANGE);
	memcpy(c, a, al);
	put32(c + 40, 2); /* flags */
	CHECK_ERR(model_parse(&t, c, al, &err), APP_EPARSE);
	/* huge architecture: refused before allocating */
	memcpy(c, a, al);
	put32(c + 20, 100000);
	put32(c + 32, 4096);
	put32(c + 36, 4096);
	CHECK_ERR(model_parse(&t, c, al, &err), APP_ETOOBIG);
	/* a NaN weight, a zero scale */
	memcpy(c, a, al);
	put32(c + al - 4, 0x7fc00000u);
	CHECK_ERR(model_parse(&t, c, al, &err), APP_ERANGE);
	size_t scale_off = al - 4 * m->nparams - 4 * 4;
	memcpy(c, a, al);
	put32(c + scale_off, 0);
	CHECK_ERR(model_parse(&t, c, al, &err), APP_ERANGE);
	/* duplicate labels */
	memcpy(c, a, al);
	{
		/* labels start after the 44-byte header: "setosa" (len 6) then "versicolor" */
		size_t l0 = 44;
		CHECK(c[l0] == 6 && memcmp(c + l0 + 2, "setosa", 6) == 0);
	}
	CHECK(t == NULL);
	/* model_new ranges */
	const uint32_t h[1] = {0};
	CHECK_ERR(model_new(&t, MODEL_MLP, ACT_RELU, 3, 2, 1, h, NULL), APP_ERANGE);
	CHECK_ERR(model_new(&t, MODEL_LOGREG, ACT_RELU, 3, 2, 0, NULL, NULL), APP_EINVAL);
	CHECK_ERR(model_new(&t, MODEL_LOGREG, ACT_NONE, 3, 1, 0, NULL, NULL), APP_ERANGE);
	const char *dup[] = {"x", "x", "y"};
	CHECK_ERR(model_set_labels(m, dup, NULL), APP_EINVAL);
	free(c);
	free(a);
	model_free(m);
}

static void test_save_load(void)
{
	struct model *m = make(1), *m2 = NULL;
	uint8_t s1[32], s2[32];
	char path[] = "/tmp/model_test_XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	struct train_err err = {0};
	CHECK_OK(model_save(m, path, s1, &err));
	CHECK_OK(model_load(&m2, path, s2, &err));
	CHECK(memcmp(s1, s2, 32) == 0);
	CHECK(m2 && m2->nparams == m->nparams && memcmp(m2->params, m->params, m->nparams * 4) == 0);
	unlink(path);
	model_free(m2);
	m2 = NULL;
	CHECK_ERR(model_load(&m2, "/nonexistent/model", NULL, &err), APP_ENOENT);
	model_free(m);
}

static void test_binary_probs(void)
{
	struct model *m = NULL;
	CHECK_OK(model_new(&m, MODEL_LOGREG, ACT_NONE, 2, 2, 0, NULL, NULL));
	if (!m)
		return;
	CHECK(model_outputs(m) == 1 && m->nparams == 3);
	m->W[0][0] = 1;
	m->W[0][1] = -2;
	m->b[0][0] = 0.5f;
	float x[2] = {1, 1}, p[2];
	CHECK_OK(model_predict(m, p, x, 1));
	float z = 1 - 2 + 0.5f, s = 1.0f / (1.0f + expf(-z));
	CHECK(fabsf(p[1] - s) < 1e-6f && fabsf(p[0] + p[1] - 1) < 1e-6f);
	CHECK_STR(model_kind_name(MODEL_LOGREG), "logreg");
	CHECK_STR(model_act_name(ACT_SIGMOID), "sigmoid");
	model_free(m);
}

int main(void)
{
	RUN(test_roundtrip);
	RUN(test_refusals);
	RUN(test_save_load);
	RUN(test_binary_probs);
	return test_summary();
}
