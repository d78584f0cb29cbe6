/*
 * bench_train: the training engine's benchmarks (driven by bench_train.sh,
 * which runs the scikit-learn / PyTorch / numpy baselines in the same run).
 *
 *   bench_train gen-task ROWS FEATURES SEED OUT.csv   synthetic binary task
 *   bench_train gen-csv MBYTES SEED OUT.csv           numeric CSV of ~MBYTES MB
 *   bench_train mlp FILE.csv HIDDEN EPOCHS BATCH VAL_OUT  train (adam, 1 thread);
 *                                                     writes the validation row indices
 *   bench_train gemm ROWS FEATURES HIDDEN BATCH EPOCHS training FLOP/s vs bare sgemm
 *   bench_train csv FILE.csv                           parse speed and peak RSS
 *
 * Every mode prints `key=value` figures on one line.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "enclave/train/csv.h"
#include "enclave/train/model.h"
#include "enclave/train/train.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rs = 0x9e3779b97f4a7c15ULL;
static uint64_t rnext(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return rs;
}
static double runi(void)
{
	return (double)(rnext() >> 11) * (1.0 / 9007199254740992.0);
}
static double rnorm(void)
{
	double u = runi(), v = runi();
	if (u < 1e-300)
		u = 1e-300;
	return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

static unsigned long parse_ul(const char *s)
{
	char *e;
	unsigned long v = strtoul(s, &e, 10);
	if (*e || e == s) {
		fprintf(stderr, "bench_train: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

/* A teacher network: y = [v . tanh(U x) + noise > 0]. */
static int gen_task(size_t rows, size_t d, uint64_t seed, const char *path)
{
	enum { K = 8 };
	rs ^= seed * 0x2545F4914F6CDD1DULL;
	double *U = malloc(K * d * sizeof *U), v[K], *x = malloc(d * sizeof *x);
	FILE *f = fopen(path, "w");
	if (!U || !x || !f)
		return 2;
	for (size_t i = 0; i < K * d; i++)
		U[i] = rnorm() / sqrt((double)d) * 2.0;
	for (int k = 0; k < K; k++)
		v[k] = rnorm();
	for (size_t j = 0; j < d; j++)
		fprintf(f, "x%zu,", j);
	fprintf(f, "y\n");
	for (size_t i = 0; i < rows; i++) {
		double s = 0;
		for (size_t j = 0; j < d; j++)
			x[j] = rnorm();
		for (int k = 0; k < K; k++) {
			double h = 0;
			for (size_t j = 0; j < d; j++)
				h += U[k * d + j] * x[j];
			s += v[k] * tanh(h);
		}
		s += 0.3 * rnorm();
		for (size_t j = 0; j < d; j++)
			fprintf(f, "%.6g,", x[j]);
		fprintf(f, "%d\n", s > 0);
	}
	free(U);
	free(x);
	return fclose(f) ? 2 : 0;
}

/* Numeric CSV of about mb MB: 32 features in %.6g, label 0/1. */
static int gen_csv(size_t mb, uint64_t seed, const char *path)
{
	rs ^= seed * 0x2545F4914F6CDD1DULL;
	FILE *f = fopen(path, "w");
	if (!f)
		return 2;
	size_t target = mb * 1000000, written = 0;
	char line[1024];
	while (written < target) {
		int n = 0;
		for (int j = 0; j < 32; j++)
			n += snprintf(line + n, sizeof line - (size_t)n, "%.6g,", rnorm() * 10.0);
		n += snprintf(line + n, sizeof line - (size_t)n, "%d\n", (int)(rnext() & 1));
		fwrite(line, 1, (size_t)n, f);
		written += (size_t)n;
	}
	return fclose(f) ? 2 : 0;
}

static int load(const char *path, struct dataset **ds)
{
	struct csv_options o;
	struct train_err err = {0};
	csv_options_default(&o);
	if (csv_read_files(ds, &path, 1, &o, &err) != 0) {
		fprintf(stderr, "bench_train: %s\n", err.msg);
		return 1;
	}
	return 0;
}

static int bench_mlp(const char *path, uint32_t hidden, uint32_t epochs, uint32_t batch, const char *val_out)
{
	size_t *tr = NULL, *va = NULL, ntr, nva;
	struct dataset *ds = NULL;
	struct model *m = NULL;
	struct train_metrics met = {0};
	struct train_params p;
	struct train_err err = {0};
	char buf[32];
	if (load(path, &ds))
		return 1;
	train_params_default(&p);
	int bad = 0;
	bad |= train_params_set(&p, "model", "mlp", &err);
	snprintf(buf, sizeof buf, "%u", hidden);
	bad |= train_params_set(&p, "hidden", buf, &err);
	snprintf(buf, sizeof buf, "%u", epochs);
	bad |= train_params_set(&p, "epochs", buf, &err);
	snprintf(buf, sizeof buf, "%u", batch);
	bad |= train_params_set(&p, "batch_size", buf, &err);
	bad |= train_params_set(&p, "l2", "0.0001", &err);
	bad |= train_params_set(&p, "learning_rate", "0.001", &err);
	if (bad || train_split(&tr, &ntr, &va, &nva, ds->rows, p.validation_split, p.seed) != 0 ||
	    train_fit(&m, &met, ds, tr, ntr, va, nva, &p, NULL, NULL, &err) != 0) {
		fprintf(stderr, "bench_train: %s\n", err.msg);
		return 1;
	}
	FILE *f = fopen(val_out, "w");
	if (!f)
		return 2;
	for (size_t i = 0; i < nva; i++)
		fprintf(f, "%zu\n", va[i]);
	if (fclose(f))
		return 2;
	free(tr);
	free(va);
	double thr = (double)met.train_samples * met.epochs_run / (met.train_ms / 1e3);
	printf("engine=appliance train_rows=%llu epochs=%u train_s=%.3f samples_per_s=%.0f val_accuracy=%.4f\n",
	       (unsigned long long)met.train_samples, met.epochs_run, met.train_ms / 1e3, thr, met.accuracy);
	train_metrics_free(&met);
	model_free(m);
	dataset_free(ds);
	return 0;
}

/*
 * GEMM efficiency: train an MLP (rows x d, one hidden layer, binary) and
 * count the FLOPs of its GEMMs; then time the same GEMM calls on bare
 * cblas_sgemm (same shapes, same count) and compare FLOP/s.
 */
static int bench_gemm(size_t rows, size_t d, uint32_t hidden, uint32_t batch, uint32_t epochs)
{
	struct dataset ds = {0};
	struct model *m = NULL;
	struct train_metrics met = {0};
	struct train_params p;
	struct train_err err = {0};
	char buf[32];
	const char *cls[2] = {"0", "1"};
	ds.rows = rows;
	ds.features = d;
	ds.nclasses = 2;
	ds.classes = (char **)cls;
	ds.x = malloc(rows * d * sizeof(float));
	ds.y = malloc(rows * sizeof(uint32_t));
	if (!ds.x || !ds.y)
		return 2;
	for (size_t i = 0; i < rows; i++) {
		double s = 0;
		for (size_t j = 0; j < d; j++) {
			float v = (float)rnorm();
			ds.x[i * d + j] = v;
			if (j < 16)
				s += v * ((j & 1) ? 1 : -1);
		}
		ds.y[i] = s > 0;
	}
	train_params_default(&p);
	int bad = train_params_set(&p, "model", "mlp", &err);
	snprintf(buf, sizeof buf, "%u", hidden);
	bad |= train_params_set(&p, "hidden", buf, &err);
	snprintf(buf, sizeof buf, "%u", epochs);
	bad |= train_params_set(&p, "epochs", buf, &err);
	snprintf(buf, sizeof buf, "%u", batch);
	bad |= train_params_set(&p, "batch_size", buf, &err);
	bad |= train_params_set(&p, "validation_split", "0", &err);
	size_t *idx = malloc(rows * sizeof *idx);
	for (size_t i = 0; i < rows; i++)
		idx[i] = i;
	double t0 = now_s();
	if (bad || !idx || train_fit(&m, &met, &ds, idx, rows, NULL, 0, &p, NULL, NULL, &err) != 0) {
		fprintf(stderr, "bench_train: %s\n", err.msg);
		return 1;
	}
	(void)t0;
	double train_s = met.train_ms / 1e3;
	/* GEMMs per full batch: forward X.W1 (B x d x h), forward H.W2 (B x h x 1),
	 * backward dW2 = H^T.d (h x 1 x B), dH = d.W2^T (B x h x 1), dW1 = X^T.dH (d x h x B). */
	size_t nb_full = rows / batch, rem = rows % batch;
	double flops_per_row = 2.0 * ((double)d * hidden * 2 + (double)hidden * 3);
	double total_flops = flops_per_row * (double)rows * epochs;
	double eng = total_flops / train_s;
	/* Bare sgemm, the same calls. */
	size_t B = batch;
	float *X = calloc(B * d, sizeof(float)), *W1 = calloc(d * hidden, sizeof(float)),
	      *H = calloc(B * hidden, sizeof(float)), *W2 = calloc(hidden, sizeof(float)), *o = calloc(B, sizeof(float)),
	      *gW1 = calloc(d * hidden, sizeof(float)), *gW2 = calloc(hidden, sizeof(float)),
	      *dH = calloc(B * hidden, sizeof(float));
	for (size_t i = 0; i < B * d; i++)
		X[i] = (float)rnorm();
	for (size_t i = 0; i < d * hidden; i++)
		W1[i] = (float)rnorm() * 0.05f;
	for (size_t i = 0; i < hidden; i++)
		W2[i] = (float)rnorm() * 0.05f;
	const int h = (int)hidden, D = (int)d;
	double b0 = now_s();
	for (uint32_t e = 0; e < epochs; e++) {
		for (size_t bi = 0; bi <= nb_full; bi++) {
			int n = (int)(bi < nb_full ? B : rem);
			if (n == 0)
				continue;
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, h, D, 1.0f, X, D, W1, h, 0.0f, H, h);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, 1, h, 1.0f, H, h, W2, 1, 0.0f, o, 1);
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, h, 1, n, 1.0f, H, h, o, 1, 0.0f, gW2, 1);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, h, 1, 1.0f, o, 1, W2, 1, 0.0f, dH, h);
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, D, h, n, 1.0f, X, D, dH, h, 0.0f, gW1, h);
		}
	}
	double bare_s = now_s() - b0;
	double bare = total_flops / bare_s;
	printf("rows=%zu features=%zu hidden=%u batch=%u epochs=%u gflop=%.1f engine_s=%.3f engine_gflops=%.2f "
	       "bare_s=%.3f bare_gflops=%.2f efficiency=%.3f\n",
	       rows, d, hidden, batch, epochs, total_flops / 1e9, train_s, eng / 1e9, bare_s, bare / 1e9, eng / bare);
	free(X);
	free(W1);
	free(H);
	free(W2);
	free(o);
	free(gW1);
	free(gW2);
	free(dH);
	free(idx);
	free(ds.x);
	free(ds.y);
	train_metrics_free(&met);
	model_free(m);
	return 0;
}

static int bench_csv(const char *path)
{
	struct dataset *ds = NULL;
	struct stat st;
	if (stat(path, &st) != 0)
		return 2;
	double t0 = now_s();
	if (load(path, &ds))
		return 1;
	double dt = now_s() - t0;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double mat = (double)ds->rows * (double)ds->features * 4.0;
	double rss = (double)ru.ru_maxrss * 1024.0;
	double limit = 1.5 * mat + 32.0 * 1048576.0;
	printf("bytes=%lld rows=%zu features=%zu parse_s=%.3f mb_per_s=%.1f matrix_mib=%.1f peak_rss_mib=%.1f "
	       "rss_limit_mib=%.1f rss_ok=%d\n",
	       (long long)st.st_size, ds->rows, ds->features, dt, (double)st.st_size / 1e6 / dt, mat / 1048576.0,
	       rss / 1048576.0, limit / 1048576.0, rss <= limit);
	dataset_free(ds);
	return 0;
}

int main(int argc, char **argv)
{
	openblas_set_num_threads(1);
	if (argc == 6 && !strcmp(argv[1], "gen-task"))
		return gen_task(parse_ul(argv[2]), parse_ul(argv[3]), parse_ul(argv[4]), argv[5]);
	if (argc == 5 && !strcmp(argv[1], "gen-csv"))
		return gen_csv(parse_ul(argv[2]), parse_ul(argv[3]), argv[4]);
	if (argc == 7 && !strcmp(argv[1], "mlp"))
		return bench_mlp(argv[2], (uint32_t)parse_ul(argv[3]), (uint32_t)parse_ul(argv[4]),
				 (uint32_t)parse_ul(argv[5]), argv[6]);
	if (argc == 7 && !strcmp(argv[1], "gemm"))
		return bench_gemm(parse_ul(argv[2]), parse_ul(argv[3]), (uint32_t)parse_ul(argv[4]),
				  (uint32_t)parse_ul(argv[5]), (uint32_t)parse_ul(argv[6]));
	if (argc == 3 && !strcmp(argv[1], "csv"))
		return bench_csv(argv[2]);
	fprintf(stderr, "usage: see tests/bench/bench_train.c\n");
	return 2;
}
