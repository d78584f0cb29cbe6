/* train_test: parameters, gradients, determinism, metrics and accuracy against scikit-learn. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appliance/err.h"
#include "enclave/train/csv.h"
#include "enclave/train/model.h"
#include "enclave/train/train.h"
#include "tests/unit/test.h"

static struct dataset *load(const char *name)
{
	char path[512];
	const char *root = getenv("APPLIANCE_ROOT");
	struct csv_options o;
	struct dataset *ds = NULL;
	struct train_err err = {0};
	snprintf(path, sizeof path, "%s/tests/data/%s", root ? root : ".", name);
	const char *paths[] = {path};
	csv_options_default(&o);
	if (csv_read_files(&ds, paths, 1, &o, &err) != 0)
		fprintf(stderr, "load %s: %s\n", name, err.msg);
	return ds;
}

static int setp(struct train_params *p, const char *name, const char *value)
{
	struct train_err err = {0};
	int r = train_params_set(p, name, value, &err);
	if (r)
		fprintf(stderr, "param %s=%s: %s\n", name, value, err.msg);
	return r;
}

struct pcase {
	const char *name, *value;
	int code;
	const char *msg;
};

static void test_params(void)
{
	static const struct pcase cases[] = {
		{"model", "mlp", 0, NULL},
		{"model", "svm", APP_EINVAL, "model: 'svm' is not logreg or mlp"},
		{"hidden", "64,32", 0, NULL},
		{"hidden", "1,2,3,4", 0, NULL},
		{"hidden", "1,2,3,4,5", APP_ERANGE, "hidden:"},
		{"hidden", "0", APP_ERANGE, "hidden:"},
		{"hidden", "4097", APP_ERANGE, "hidden:"},
		{"hidden", "64,", APP_EINVAL, "hidden:"},
		{"hidden", "a", APP_EINVAL, "hidden:"},
		{"activation", "tanh", 0, NULL},
		{"activation", "gelu", APP_EINVAL, "activation: 'gelu' is not relu, tanh or sigmoid"},
		{"epochs", "1", 0, NULL},
		{"epochs", "0", APP_ERANGE, "epochs: 0 is out of range 1..10000"},
		{"epochs", "10001", APP_ERANGE, "epochs: 10001 is out of range"},
		{"epochs", "-1", APP_EINVAL, "epochs: '-1' is not an integer"},
		{"epochs", "1e3", APP_EINVAL, "epochs:"},
		{"learning_rate", "0.5", 0, NULL},
		{"learning_rate", "0", APP_ERANGE, "learning_rate: 0 is out of range (0, 10]"},
		{"learning_rate", "11", APP_ERANGE, "learning_rate:"},
		{"learning_rate", "nan", APP_EINVAL, "learning_rate:"},
		{"learning_rate", "inf", APP_EINVAL, "learning_rate:"},
		{"learning_rate", "0x1p-3", APP_EINVAL, "learning_rate:"},
		{"batch_size", "65536", 0, NULL},
		{"batch_size", "65537", APP_ERANGE, "batch_size:"},
		{"optimizer", "sgd", 0, NULL},
		{"optimizer", "rmsprop", APP_EINVAL, "optimizer:"},
		{"momentum", "0.95", 0, NULL},
		{"momentum", "1", APP_ERANGE, "momentum:"},
		{"l2", "0", 0, NULL},
		{"l2", "-0.1", APP_ERANGE, "l2:"},
		{"seed", "18446744073709551615", 0, NULL},
		{"seed", "18446744073709551616", APP_EINVAL, "seed:"},
		{"validation_split", "0.9", 0, NULL},
		{"validation_split", "0.95", APP_ERANGE, "validation_split:"},
		{"patience", "1001", APP_ERANGE, "patience:"},
		{"threads", "0", APP_ERANGE, "threads:"},
		{"threads", "65", APP_ERANGE, "threads:"},
		{"bogus", "1", APP_ENOTFOUND, "bogus: unknown parameter"},
		{"epochs", "", APP_EINVAL, "epochs:"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct train_params p;
		struct train_err err = {0};
		train_params_default(&p);
		int r = train_params_set(&p, cases[i].name, cases[i].value, &err);
		CHECKM(r == cases[i].code, "%s=%s: %d, expected %d (%s)", cases[i].name, cases[i].value, r,
		       cases[i].code, err.msg);
		if (cases[i].msg)
			CHECKM(strstr(err.msg, cases[i].msg) != NULL, "%s=%s: message '%s' lacks '%s'", cases[i].name,
			       cases[i].value, err.msg, cases[i].msg);
	}
	struct train_params p;
	struct train_err err = {0};
	train_params_default(&p);
	CHECK_OK(train_params_check(&p, &err));
	CHECK_OK(setp(&p, "hidden", "8"));
	CHECK_ERR(train_params_check(&p, &err), APP_EINVAL);
	CHECK(strstr(err.msg, "hidden: only with model=mlp") != NULL);
	CHECK_OK(setp(&p, "model", "mlp"));
	CHECK_OK(train_params_check(&p, &err));
	CHECK_OK(setp(&p, "momentum", "0.5"));
	CHECK_ERR(train_params_check(&p, &err), APP_EINVAL);
	CHECK(strstr(err.msg, "momentum") != NULL);
	CHECK_OK(setp(&p, "optimizer", "sgd"));
	CHECK_OK(train_params_check(&p, &err));
	CHECK_OK(setp(&p, "patience", "3"));
	CHECK_OK(setp(&p, "validation_split", "0"));
	CHECK_ERR(train_params_check(&p, &err), APP_EINVAL);
	CHECK(strstr(err.msg, "patience") != NULL);
}

/* Analytic gradients of every layer type against central differences. */
static void gradcheck(enum model_kind kind, enum model_act act, uint32_t classes, uint32_t nh, const uint32_t *h)
{
	const size_t n = 7, d = 5;
	struct dataset ds = {0};
	struct model *m = NULL;
	char *cls[4] = {"a", "b", "c", "d"};
	float x[7 * 5];
	uint32_t y[7];
	size_t rows[7];
	uint64_t s = 99 + classes + (uint64_t)act;
	for (size_t i = 0; i < n * d; i++) {
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		x[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 4 - 2);
	}
	for (size_t i = 0; i < n; i++) {
		y[i] = (uint32_t)(i % classes);
		rows[i] = n - 1 - i;
	}
	ds.rows = n;
	ds.features = d;
	ds.x = x;
	ds.y = y;
	ds.nclasses = classes;
	ds.classes = cls;
	CHECK_OK(model_new(&m, kind, act, (uint32_t)d, classes, nh, h, NULL));
	if (!m)
		return;
	for (size_t i = 0; i < m->nparams; i++) {
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		m->params[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
	}
	for (size_t j = 0; j < d; j++) {
		m->mean[j] = 0.1f * (float)j;
		m->scale[j] = 1.0f + 0.2f * (float)j;
	}
	const double decay = 0.05;
	double l0;
	int bad = 0;
	float *g0 = malloc(m->nparams * sizeof(float)), *tmp = malloc(m->nparams * sizeof(float));
	CHECK_OK(train_loss_grad(m, &l0, g0, &ds, rows, n, decay));
	for (size_t i = 0; i < m->nparams; i++) {
		float w = m->params[i];
		const float eps = 1e-3f;
		double lp, lm;
		m->params[i] = w + eps;
		if (train_loss_grad(m, &lp, tmp, &ds, rows, n, decay) != 0)
			bad++;
		m->params[i] = w - eps;
		if (train_loss_grad(m, &lm, tmp, &ds, rows, n, decay) != 0)
			bad++;
		m->params[i] = w;
		double fd = (lp - lm) / ((double)(w + eps) - (double)(w - eps));
		if (fabs(fd - g0[i]) > 2e-3 + 2e-2 * fabs(fd)) {
			if (bad < 5)
				fprintf(stderr, "%s/%s/%u param %zu: analytic %.6g, numeric %.6g\n", model_kind_name(kind),
					model_act_name(act), classes, i, g0[i], fd);
			bad++;
		}
	}
	CHECKM(bad == 0, "%s %s classes=%u: %d gradient mismatches of %zu", model_kind_name(kind),
	       model_act_name(act), classes, bad, m->nparams);
	free(g0);
	free(tmp);
	model_free(m);
}

static void test_gradients(void)
{
	const uint32_t h1[1] = {6}, h2[2] = {6, 4}, h4[4] = {3, 4, 3, 5};
	gradcheck(MODEL_LOGREG, ACT_NONE, 2, 0, NULL);
	gradcheck(MODEL_LOGREG, ACT_NONE, 3, 0, NULL);
	for (int a = ACT_RELU; a <= ACT_SIGMOID; a++) {
		gradcheck(MODEL_MLP, (enum model_act)a, 2, 1, h1);
		gradcheck(MODEL_MLP, (enum model_act)a, 4, 2, h2);
	}
	gradcheck(MODEL_MLP, ACT_TANH, 3, 4, h4);
}

static int train_bytes(const struct dataset *ds, const struct train_params *p, uint8_t **bytes, size_t *len,
		       struct train_metrics *met)
{
	struct model *m = NULL;
	struct train_err err = {0};
	int r = train_run(&m, met, ds, p, NULL, NULL, &err);
	if (r) {
		fprintf(stderr, "train: %s\n", err.msg);
		return r;
	}
	r = model_serialize(m, bytes, len, NULL);
	model_free(m);
	return r;
}

static void test_determinism(void)
{
	struct dataset *ds = load("breast_cancer.csv");
	struct train_params p;
	struct train_metrics m1 = {0}, m2 = {0}, m3 = {0};
	uint8_t *a = NULL, *b = NULL, *c = NULL;
	size_t al = 0, bl = 0, cl = 0;
	if (!ds)
		return;
	train_params_default(&p);
	CHECK_OK(setp(&p, "model", "mlp"));
	CHECK_OK(setp(&p, "hidden", "16,8"));
	CHECK_OK(setp(&p, "epochs", "15"));
	CHECK_OK(setp(&p, "batch_size", "32"));
	CHECK_OK(train_bytes(ds, &p, &a, &al, &m1));
	CHECK_OK(train_bytes(ds, &p, &b, &bl, &m2));
	CHECK(al == bl && a && b && memcmp(a, b, al) == 0);
	CHECK(m1.accuracy == m2.accuracy && m1.log_loss == m2.log_loss && m1.auc == m2.auc);
	CHECK_OK(setp(&p, "seed", "2"));
	CHECK_OK(train_bytes(ds, &p, &c, &cl, &m3));
	CHECK(cl == al && c && memcmp(a, c, al) != 0);
	CHECK(m1.epochs_run == 15 && m1.samples == 569 && m1.validation_samples == 114 && m1.train_samples == 455);
	free(a);
	free(b);
	free(c);
	train_metrics_free(&m1);
	train_metrics_free(&m2);
	train_metrics_free(&m3);
	dataset_free(ds);
}

static void test_save_load_evaluate(void)
{
	struct dataset *ds = load("iris.csv");
	struct train_params p;
	struct train_metrics met = {0}, ev = {0};
	struct train_err err = {0};
	struct model *m = NULL, *m2 = NULL;
	size_t *tr = NULL, *va = NULL, ntr, nva;
	char path[] = "/tmp/train_test_XXXXXX";
	if (!ds)
		return;
	train_params_default(&p);
	CHECK_OK(setp(&p, "model", "mlp"));
	CHECK_OK(setp(&p, "activation", "tanh"));
	CHECK_OK(setp(&p, "epochs", "50"));
	CHECK_OK(train_split(&tr, &ntr, &va, &nva, ds->rows, p.validation_split, p.seed));
	CHECK(ntr == 120 && nva == 30);
	CHECK_OK(train_fit(&m, &met, ds, tr, ntr, va, nva, &p, NULL, NULL, &err));
	int fd = mkstemp(path);
	if (fd >= 0)
		close(fd);
	uint8_t s1[32], s2[32];
	CHECK_OK(model_save(m, path, s1, &err));
	CHECK_OK(model_load(&m2, path, s2, &err));
	CHECK(memcmp(s1, s2, 32) == 0);
	CHECK_OK(train_evaluate(&ev, m2, ds, va, nva, &err));
	CHECK(ev.accuracy == met.accuracy && ev.log_loss == met.log_loss);
	CHECK(ev.classes == 3 && !ev.has_auc && ev.evaluated == 30);
	uint64_t total = 0;
	for (int i = 0; i < 9; i++)
		total += ev.confusion[i];
	CHECK(total == 30 && memcmp(ev.confusion, met.confusion, 9 * sizeof(uint64_t)) == 0);
	CHECK(m2 && !strcmp(m2->labels[0], "setosa") && m2->names && !strcmp(m2->names[3], "petal width (cm)"));
	unlink(path);
	free(tr);
	free(va);
	train_metrics_free(&met);
	train_metrics_free(&ev);
	model_free(m);
	model_free(m2);
	dataset_free(ds);
}

struct prog {
	uint32_t calls, cancel_at;
	double last_loss;
};

static int on_progress(void *arg, uint32_t epoch, uint32_t epochs, double loss, double vloss)
{
	struct prog *pr = arg;
	(void)epochs;
	(void)vloss;
	pr->calls++;
	pr->last_loss = loss;
	return pr->cancel_at && epoch >= pr->cancel_at;
}

static void test_progress_and_early_stop(void)
{
	struct dataset *ds = load("breast_cancer.csv");
	struct train_params p;
	struct train_metrics met = {0};
	struct train_err err = {0};
	struct model *m = NULL;
	struct prog pr = {0};
	if (!ds)
		return;
	train_params_default(&p);
	CHECK_OK(setp(&p, "epochs", "7"));
	CHECK_OK(train_run(&m, &met, ds, &p, on_progress, &pr, &err));
	CHECK(pr.calls == 7 && pr.last_loss > 0 && pr.last_loss == met.train_loss);
	model_free(m);
	m = NULL;
	train_metrics_free(&met);
	pr = (struct prog){0, 3, 0};
	CHECK_ERR(train_run(&m, &met, ds, &p, on_progress, &pr, &err), APP_ECANCELED);
	CHECK(m == NULL && pr.calls == 3);
	/* early stopping: a large learning rate and many epochs stop early */
	CHECK_OK(setp(&p, "model", "mlp"));
	CHECK_OK(setp(&p, "epochs", "2000"));
	CHECK_OK(setp(&p, "learning_rate", "0.05"));
	CHECK_OK(setp(&p, "patience", "5"));
	CHECK_OK(train_run(&m, &met, ds, &p, NULL, NULL, &err));
	CHECK(met.epochs_run < 200 && met.epochs_run >= 6);
	CHECK(met.val_loss >= 0 && met.accuracy > 0.9);
	model_free(m);
	train_metrics_free(&met);
	/* no validation: metrics on the training rows */
	train_params_default(&p);
	CHECK_OK(setp(&p, "validation_split", "0"));
	CHECK_OK(setp(&p, "epochs", "3"));
	m = NULL;
	CHECK_OK(train_run(&m, &met, ds, &p, NULL, NULL, &err));
	CHECK(met.metrics_on_train && met.evaluated == 569 && met.validation_samples == 0);
	model_free(m);
	train_metrics_free(&met);
	dataset_free(ds);
}

/* AUC, log loss and accuracy on a hand-computed case. */
static void test_metrics(void)
{
	struct model *m = NULL;
	struct train_metrics met = {0};
	struct dataset ds = {0};
	char *cls[2] = {"n", "p"};
	float x[6] = {-2, -1, 0, 1, 2, 0.5f};
	uint32_t y[6] = {0, 0, 1, 1, 1, 0};
	ds.rows = 6;
	ds.features = 1;
	ds.x = x;
	ds.y = y;
	ds.nclasses = 2;
	ds.classes = cls;
	CHECK_OK(model_new(&m, MODEL_LOGREG, ACT_NONE, 1, 2, 0, NULL, NULL));
	if (!m)
		return;
	m->W[0][0] = 1; /* p = sigmoid(x) */
	CHECK_OK(train_evaluate(&met, m, &ds, NULL, 0, NULL));
	/* predictions: 0,0,(0.5 -> class 0 by tie),1,1,1 -> correct: 0,0,-,1,1,- = 4/6 */
	CHECK(fabs(met.accuracy - 4.0 / 6.0) < 1e-12);
	/* positives {0,1,2} vs negatives {-2,-1,0.5}: pairs won 3+3+2 = 8 of 9 */
	CHECK(met.has_auc && fabs(met.auc - 8.0 / 9.0) < 1e-12);
	double ll = 0;
	for (int i = 0; i < 6; i++) {
		double p1 = 1 / (1 + exp(-(double)x[i]));
		ll -= log(y[i] ? p1 : 1 - p1);
	}
	CHECK(fabs(met.log_loss - ll / 6) < 1e-6);
	CHECK(met.confusion[0] == 2 && met.confusion[1] == 1 && met.confusion[2] == 1 && met.confusion[3] == 2);
	CHECK(met.support[0] == 3 && met.support[1] == 3);
	train_metrics_free(&met);
	model_free(m);
}

/* ---- accuracy against scikit-learn on the same split and hyperparameters ---- */

static const char sk_script[] =
	"import csv, sys, warnings\n"
	"import numpy as np\n"
	"from sklearn.linear_model import LogisticRegression\n"
	"from sklearn.neural_network import MLPClassifier\n"
	"from sklearn.preprocessing import StandardScaler\n"
	"from sklearn.exceptions import ConvergenceWarning\n"
	"warnings.simplefilter('ignore', ConvergenceWarning)\n"
	"def load(path, vpath):\n"
	"    rows = list(csv.reader(open(path)))[1:]\n"
	"    x = np.array([[float(v) for v in r[:-1]] for r in rows], dtype=np.float64)\n"
	"    y = np.array([r[-1] for r in rows])\n"
	"    val = np.array([int(l) for l in open(vpath)])\n"
	"    m = np.ones(len(y), bool); m[val] = False\n"
	"    s = StandardScaler().fit(x[m])\n"
	"    return s.transform(x[m]), y[m], s.transform(x[val]), y[val]\n"
	"out = []\n"
	"for path, vpath, hidden, epochs, batch, lr in zip(*[iter(sys.argv[1:])] * 6):\n"
	"    xt, yt, xv, yv = load(path, vpath)\n"
	"    lg = LogisticRegression(C=1.0, max_iter=10000).fit(xt, yt)\n"
	"    mlp = MLPClassifier(hidden_layer_sizes=(int(hidden),), alpha=1e-4, batch_size=int(batch),\n"
	"        learning_rate_init=float(lr), max_iter=int(epochs), random_state=1, tol=0.0,\n"
	"        n_iter_no_change=10**9).fit(xt, yt)\n"
	"    out += [lg.score(xv, yv), mlp.score(xv, yv)]\n"
	"print(' '.join('%.6f' % v for v in out))\n";

struct sk_case {
	const char *file, *vsplit, *hidden, *epochs, *batch, *lr;
	double stored_logreg, stored_mlp; /* scikit-learn 1.2.1 figures on this split */
};

static void test_vs_sklearn(void)
{
	static const struct sk_case cases[] = {
		{"breast_cancer.csv", "0.3", "16", "100", "32", "0.001", 0.982456, 0.982456},
		{"iris.csv", "0.5", "16", "300", "16", "0.01", 0.973333, 0.960000},
	};
	enum { NC = sizeof cases / sizeof cases[0] };
	double ours[NC][2], sk[NC][2];
	char vpath[NC][64], cmd[4096], script[] = "/tmp/train_test_sk_XXXXXX";
	const char *root = getenv("APPLIANCE_ROOT");
	size_t off = 0;
	int have_sk = access("/usr/bin/python3", X_OK) == 0 &&
		      system("/usr/bin/python3 -c 'import sklearn' >/dev/null 2>&1") == 0;
	for (int i = 0; i < NC; i++) {
		const struct sk_case *c = &cases[i];
		struct dataset *ds = load(c->file);
		struct train_params p;
		struct train_err err = {0};
		size_t *tr = NULL, *va = NULL, ntr, nva;
		if (!ds)
			return;
		for (int k = 0; k < 2; k++) {
			struct model *m = NULL;
			struct train_metrics met = {0};
			train_params_default(&p);
			CHECK_OK(setp(&p, "validation_split", c->vsplit));
			if (k == 0) {
				/* LogisticRegression(C=1) == l2 = 1; converge with Adam */
				CHECK_OK(setp(&p, "l2", "1"));
				CHECK_OK(setp(&p, "epochs", "300"));
				CHECK_OK(setp(&p, "batch_size", "32"));
				CHECK_OK(setp(&p, "learning_rate", "0.01"));
			} else {
				CHECK_OK(setp(&p, "model", "mlp"));
				CHECK_OK(setp(&p, "hidden", c->hidden));
				CHECK_OK(setp(&p, "epochs", c->epochs));
				CHECK_OK(setp(&p, "batch_size", c->batch));
				CHECK_OK(setp(&p, "learning_rate", c->lr));
			}
			CHECK_OK(train_split(&tr, &ntr, &va, &nva, ds->rows, p.validation_split, p.seed));
			CHECK_OK(train_fit(&m, &met, ds, tr, ntr, va, nva, &p, NULL, NULL, &err));
			ours[i][k] = met.accuracy;
			train_metrics_free(&met);
			model_free(m);
			if (k == 0) {
				snprintf(vpath[i], sizeof vpath[i], "/tmp/train_test_val%d_%ld", i, (long)getpid());
				FILE *f = fopen(vpath[i], "w");
				for (size_t j = 0; f && j < nva; j++)
					fprintf(f, "%zu\n", va[j]);
				if (f)
					fclose(f);
			}
			free(tr);
			free(va);
		}
		dataset_free(ds);
		sk[i][0] = c->stored_logreg;
		sk[i][1] = c->stored_mlp;
	}
	if (have_sk) {
		int fd = mkstemp(script);
		if (fd >= 0) {
			CHECK(write(fd, sk_script, sizeof sk_script - 1) == (ssize_t)(sizeof sk_script - 1));
			close(fd);
		}
		off = (size_t)snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s", script);
		for (int i = 0; i < NC; i++)
			off += (size_t)snprintf(cmd + off, sizeof cmd - off, " %s/tests/data/%s %s %s %s %s %s",
						root ? root : ".", cases[i].file, vpath[i], cases[i].hidden,
						cases[i].epochs, cases[i].batch, cases[i].lr);
		FILE *pp = popen(cmd, "r");
		int got = 0;
		if (pp) {
			got = fscanf(pp, "%lf %lf %lf %lf", &sk[0][0], &sk[0][1], &sk[1][0], &sk[1][1]);
			pclose(pp);
		}
		CHECKM(got == 4, "scikit-learn run failed (%d figures)", got);
		unlink(script);
	}
	for (int i = 0; i < NC; i++) {
		unlink(vpath[i]);
		for (int k = 0; k < 2; k++) {
			printf("  %-18s %-6s ours %.4f scikit-learn %.4f (%s)\n", cases[i].file, k ? "mlp" : "logreg",
			       ours[i][k], sk[i][k], have_sk ? "computed now" : "stored");
			CHECKM(ours[i][k] >= sk[i][k] - 0.02, "%s %s: accuracy %.4f more than 2 points below %.4f",
			       cases[i].file, k ? "mlp" : "logreg", ours[i][k], sk[i][k]);
			CHECKM(fabs(ours[i][k] - sk[i][k]) <= 0.02 + 1e-9, "%s %s: accuracy %.4f vs scikit-learn %.4f",
			       cases[i].file, k ? "mlp" : "logreg", ours[i][k], sk[i][k]);
		}
	}
}

int main(void)
{
	RUN(test_params);
	RUN(test_gradients);
	RUN(test_metrics);
	RUN(test_determinism);
	RUN(test_save_load_evaluate);
	RUN(test_progress_and_early_stop);
	RUN(test_vs_sklearn);
	return test_summary();
}
