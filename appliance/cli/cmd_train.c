/*
 * appliance train | evaluate: the training engine of the enclave
 * (enclave/train/, libtrain) on local CSV files, plain or sealed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appliance/cli/cli.h"
#include "appliance/err.h"
#include "appliance/hex.h"
#include "appliance/sealed.h"
#include "enclave/train/csv.h"
#include "enclave/train/model.h"
#include "enclave/train/train.h"

#define TRAIN_MAX_DATA 64        /* --data files per job */
#define TRAIN_READ_BUF (1u << 20)

/* From cmd_dataset.c: reads a 64-hex-digit key file; 0 or a CLI exit code. */
int cli_dataset_read_key(uint8_t key[SEALED_KEY_LEN], const char *path);

static const char train_usage[] =
	"usage: appliance train --data FILE [--data FILE ...] [options]\n"
	"\n"
	"Trains a model with the enclave's engine and prints its validation metrics.\n"
	"Several --data files are pooled (same columns). A sealed file (appliance dataset\n"
	"seal) is opened with --key-file.\n"
	"\n"
	"  --model logreg|mlp          default logreg\n"
	"  --hidden W[,W...]           mlp: 1..4 hidden layers of 1..4096 units (default 64)\n"
	"  --activation relu|tanh|sigmoid  mlp hidden activation (default relu)\n"
	"  --epochs N                  1..10000 (default 20)\n"
	"  --learning-rate X           (0, 10] (default 0.001 adam, 0.01 sgd)\n"
	"  --batch-size B              1..65536 (default 64)\n"
	"  --optimizer sgd|adam        default adam\n"
	"  --momentum X                sgd: [0, 0.999] (default 0.9)\n"
	"  --l2 X                      [0, 1000] (default 0.0001)\n"
	"  --seed S                    0..2^64-1 (default 1)\n"
	"  --validation-split F        [0, 0.9] (default 0.2; 0: metrics on training rows)\n"
	"  --patience N                early stopping after N epochs without improvement\n"
	"  --threads N                 OpenBLAS threads 1..64 (default 1)\n"
	"  --label-column last|N|NAME  label column: last, 0-based index or header name\n"
	"  --header auto|yes|no        header line detection (default auto)\n"
	"  --delimiter C               field delimiter (default ,)\n"
	"  --key-file KEYFILE          key of sealed --data files\n"
	"  --model-out FILE            write the model file (PROTOCOL.md \"Model file format\")\n"
	"  --json                      one JSON object: accuracy, log_loss, auc (binary),\n"
	"                              samples, features, classes, epochs_run, train_ms,\n"
	"                              model_sha256, ...\n";

static const char evaluate_usage[] =
	"usage: appliance evaluate --model FILE --data FILE [--data FILE ...] [options]\n"
	"\n"
	"Runs a saved model on a dataset and prints the metrics (same fields as train).\n"
	"Labels must be among the model's classes; with headers, column names must match.\n"
	"\n"
	"  --label-column last|N|NAME  --header auto|yes|no  --delimiter C\n"
	"  --key-file KEYFILE          key of sealed --data files\n"
	"  --threads N                 OpenBLAS threads (default 1)\n"
	"  --json                      one JSON object\n";

/* ---- data loading (plain or sealed, streamed into the CSV parser) ---- */

struct feed_ctx {
	struct csv_parser *p;
	struct train_err *err;
	int csv_failed;
};

static int feed_sink(void *arg, const uint8_t *data, size_t len)
{
	struct feed_ctx *c = arg;
	int r = csv_parser_feed(c->p, data, len, c->err);
	if (r)
		c->csv_failed = 1;
	return r;
}

/* Feeds one file; returns 0 or a CLI exit code (message printed). */
static int feed_file(const char *cmd, struct csv_parser *p, const char *path, const uint8_t *key, uint8_t *buf,
		     struct train_err *err)
{
	struct sealed_dec *dec = NULL;
	struct feed_ctx ctx = {p, err, 0};
	int rc = CLI_USAGE, r;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cli_error(CLI_USAGE, cmd, "cannot open %s: %s", path, strerror(errno));
	if ((r = csv_parser_begin(p, path, err)) != 0) {
		rc = cli_error(CLI_USAGE, cmd, "%s", err->msg);
		goto out;
	}
	int first = 1;
	for (;;) {
		ssize_t n = read(fd, buf, TRAIN_READ_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = cli_error(CLI_USAGE, cmd, "cannot read %s: %s", path, strerror(errno));
			goto out;
		}
		if (first) {
			first = 0;
			if (sealed_is_sealed(buf, (size_t)n)) {
				if (!key) {
					rc = cli_error(CLI_USAGE, cmd, "%s is sealed: give --key-file", path);
					goto out;
				}
				if ((r = sealed_dec_new(&dec, key, NULL, 0, feed_sink, &ctx)) != 0) {
					rc = cli_error(CLI_USAGE, cmd, "cannot open sealed data: %s", app_strerror(r));
					goto out;
				}
			}
		}
		if (n == 0)
			break;
		r = dec ? sealed_dec_update(dec, buf, (size_t)n) : csv_parser_feed(p, buf, (size_t)n, err);
		if (r)
			goto fail;
	}
	if (dec && (r = sealed_dec_final(dec)) != 0)
		goto fail;
	if ((r = csv_parser_end(p, err)) != 0) {
		ctx.csv_failed = 1;
		goto fail;
	}
	rc = 0;
	goto out;
fail:
	if (dec && !ctx.csv_failed)
		rc = cli_error(CLI_REFUSED, cmd, "%s: sealed data refused: %s (%s)", path,
			       r == APP_EBADMAC ? "wrong key or modified data" : app_strerror(r), app_errname(r));
	else
		rc = cli_error(CLI_REFUSED, cmd, "%s", err->msg);
out:
	sealed_dec_free(dec);
	close(fd);
	return rc;
}

static int load_data(const char *cmd, struct dataset **out, const char *const *paths, size_t n,
		     const struct csv_options *o, const char *key_file)
{
	struct csv_parser *p = NULL;
	struct train_err err = {0};
	uint8_t key[SEALED_KEY_LEN];
	uint8_t *buf = NULL;
	int rc = CLI_USAGE, have_key = 0;
	if (key_file) {
		if ((rc = cli_dataset_read_key(key, key_file)) != 0)
			return rc;
		have_key = 1;
	}
	if (csv_parser_new(&p, o, &err) != 0) {
		rc = cli_error(CLI_USAGE, cmd, "%s", err.msg);
		goto out;
	}
	if (!(buf = malloc(TRAIN_READ_BUF))) {
		rc = cli_error(CLI_USAGE, cmd, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if ((rc = feed_file(cmd, p, paths[i], have_key ? key : NULL, buf, &err)) != 0)
			goto out;
	if (csv_parser_finish(p, out, &err) != 0) {
		rc = cli_error(CLI_REFUSED, cmd, "%s", err.msg);
		goto out;
	}
	rc = 0;
out:
	sodium_memzero(key, sizeof key);
	free(buf);
	csv_parser_free(p);
	return rc;
}

/* ---- output ---- */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p == '\r')
			fputs("\\r", f);
		else if (*p == '\t')
			fputs("\\t", f);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void print_json(const struct train_metrics *m, const struct model *mod, const char *sha_hex, int train)
{
	printf("{\"accuracy\":%.10g,\"log_loss\":%.10g", m->accuracy, m->log_loss);
	if (m->has_auc)
		printf(",\"auc\":%.10g", m->auc);
	printf(",\"samples\":%llu,\"features\":%u,\"classes\":%u", (unsigned long long)m->samples, m->features,
	       m->classes);
	if (train)
		printf(",\"epochs_run\":%u,\"train_ms\":%.3f,\"train_samples\":%llu,\"validation_samples\":%llu,"
		       "\"metrics_on\":\"%s\",\"train_loss\":%.10g",
		       m->epochs_run, m->train_ms, (unsigned long long)m->train_samples,
		       (unsigned long long)m->validation_samples, m->metrics_on_train ? "train" : "validation",
		       m->train_loss);
	printf(",\"model_sha256\":\"%s\",\"model\":\"%s\"", sha_hex, model_kind_name(mod->kind));
	printf(",\"class_labels\":[");
	for (uint32_t c = 0; c < mod->classes; c++) {
		if (c)
			putchar(',');
		json_str(stdout, mod->labels[c]);
	}
	printf("],\"support\":[");
	for (uint32_t c = 0; c < m->classes; c++)
		printf("%s%llu", c ? "," : "", (unsigned long long)m->support[c]);
	printf("],\"confusion\":[");
	for (uint32_t t = 0; t < m->classes; t++) {
		printf("%s[", t ? "," : "");
		for (uint32_t p = 0; p < m->classes; p++)
			printf("%s%llu", p ? "," : "", (unsigned long long)m->confusion[(size_t)t * m->classes + p]);
		putchar(']');
	}
	printf("]}\n");
}

static void print_text(const struct train_metrics *m, const struct model *mod, const char *sha_hex,
		       const char *model_out, int train)
{
	if (train) {
		printf("model       %s", model_kind_name(mod->kind));
		if (mod->kind == MODEL_MLP) {
			printf(" (hidden");
			for (uint32_t i = 0; i < mod->nhidden; i++)
				printf("%s%u", i ? "," : " ", mod->width[i + 1]);
			printf(", %s)", model_act_name(mod->act));
		}
		printf(", %u epochs run, %.1f ms\n", m->epochs_run, m->train_ms);
		printf("data        %llu rows (%llu train, %llu validation), %u features, %u classes\n",
		       (unsigned long long)m->samples, (unsigned long long)m->train_samples,
		       (unsigned long long)m->validation_samples, m->features, m->classes);
		printf("metrics on  %s rows (%llu)\n", m->metrics_on_train ? "training" : "validation",
		       (unsigned long long)m->evaluated);
	} else {
		printf("data        %llu rows, %u features, %u classes\n", (unsigned long long)m->samples, m->features,
		       m->classes);
	}
	printf("accuracy    %.4f\nlog loss    %.4f\n", m->accuracy, m->log_loss);
	if (m->has_auc)
		printf("ROC AUC     %.4f\n", m->auc);
	printf("confusion   (rows: true class, columns: predicted)\n");
	for (uint32_t t = 0; t < m->classes && t < 20; t++) {
		printf("  %-12.12s", mod->labels[t]);
		for (uint32_t p = 0; p < m->classes && p < 20; p++)
			printf(" %7llu", (unsigned long long)m->confusion[(size_t)t * m->classes + p]);
		putchar('\n');
	}
	if (model_out)
		printf("model file  %s\n", model_out);
	printf("sha256      %s\n", sha_hex);
}

static int progress(void *arg, uint32_t epoch, uint32_t epochs, double loss, double vloss)
{
	(void)arg;
	char bar[31];
	int fill = (int)((uint64_t)epoch * 30 / epochs);
	for (int i = 0; i < 30; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[30] = 0;
	fprintf(stderr, "\r  epoch %5u/%u [%s] loss %.5f", epoch, epochs, bar, loss);
	if (vloss >= 0)
		fprintf(stderr, " val %.5f", vloss);
	if (epoch == epochs)
		fputc('\n', stderr);
	fflush(stderr);
	return 0;
}

/* Shared options of train and evaluate. */
enum {
	O_DATA = 256, O_MODEL, O_HIDDEN, O_ACT, O_EPOCHS, O_LR, O_BATCH, O_OPT, O_MOM, O_L2, O_SEED, O_VSPLIT,
	O_PATIENCE, O_THREADS, O_LABEL, O_HEADER, O_DELIM, O_KEY, O_MODEL_OUT, O_JSON, O_HELP
};

static const struct option train_opts[] = {
	{"data", required_argument, 0, O_DATA},
	{"model", required_argument, 0, O_MODEL},
	{"hidden", required_argument, 0, O_HIDDEN},
	{"activation", required_argument, 0, O_ACT},
	{"epochs", required_argument, 0, O_EPOCHS},
	{"learning-rate", required_argument, 0, O_LR},
	{"batch-size", required_argument, 0, O_BATCH},
	{"optimizer", required_argument, 0, O_OPT},
	{"momentum", required_argument, 0, O_MOM},
	{"l2", required_argument, 0, O_L2},
	{"seed", required_argument, 0, O_SEED},
	{"validation-split", required_argument, 0, O_VSPLIT},
	{"patience", required_argument, 0, O_PATIENCE},
	{"threads", required_argument, 0, O_THREADS},
	{"label-column", required_argument, 0, O_LABEL},
	{"header", required_argument, 0, O_HEADER},
	{"delimiter", required_argument, 0, O_DELIM},
	{"key-file", required_argument, 0, O_KEY},
	{"model-out", required_argument, 0, O_MODEL_OUT},
	{"json", no_argument, 0, O_JSON},
	{"help", no_argument, 0, O_HELP},
	{0},
};

static const char *param_name(int c)
{
	switch (c) {
	case O_MODEL: return "model";
	case O_HIDDEN: return "hidden";
	case O_ACT: return "activation";
	case O_EPOCHS: return "epochs";
	case O_LR: return "learning_rate";
	case O_BATCH: return "batch_size";
	case O_OPT: return "optimizer";
	case O_MOM: return "momentum";
	case O_L2: return "l2";
	case O_SEED: return "seed";
	case O_VSPLIT: return "validation_split";
	case O_PATIENCE: return "patience";
	case O_THREADS: return "threads";
	}
	return NULL;
}

struct common {
	const char *data[TRAIN_MAX_DATA];
	size_t ndata;
	struct csv_options copts;
	const char *key_file;
	const char *model_path; /* evaluate: --model; train: --model-out */
	int json;
};

static int common_opt(const char *cmd, struct common *c, int opt, const char *arg)
{
	switch (opt) {
	case O_DATA:
		if (c->ndata == TRAIN_MAX_DATA)
			return cli_error(CLI_USAGE, cmd, "at most %d --data files", TRAIN_MAX_DATA);
		c->data[c->ndata++] = arg;
		return 0;
	case O_LABEL:
		if (csv_options_label(&c->copts, arg) != 0)
			return cli_error(CLI_USAGE, cmd, "--label-column: last, a 0-based index or a header name");
		return 0;
	case O_HEADER:
		if (!strcmp(arg, "auto"))
			c->copts.header = CSV_HEADER_AUTO;
		else if (!strcmp(arg, "yes"))
			c->copts.header = CSV_HEADER_YES;
		else if (!strcmp(arg, "no"))
			c->copts.header = CSV_HEADER_NO;
		else
			return cli_error(CLI_USAGE, cmd, "--header: auto, yes or no");
		return 0;
	case O_DELIM:
		if (!strcmp(arg, "\\t") || !strcmp(arg, "tab"))
			c->copts.delimiter = '\t';
		else if (strlen(arg) == 1)
			c->copts.delimiter = arg[0];
		else
			return cli_error(CLI_USAGE, cmd, "--delimiter: one character");
		return 0;
	case O_KEY:
		c->key_file = arg;
		return 0;
	case O_JSON:
		c->json = 1;
		return 0;
	}
	return CLI_USAGE;
}

int cmd_train(int argc, char **argv)
{
	struct common c = {0};
	struct train_params p;
	struct train_err err = {0};
	struct dataset *ds = NULL;
	struct model *m = NULL;
	struct train_metrics met = {0};
	uint8_t *bytes = NULL, sha[32];
	size_t nbytes;
	char sha_hex[65];
	int opt, rc;
	csv_options_default(&c.copts);
	train_params_default(&p);
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", train_opts, NULL)) != -1) {
		const char *pn = param_name(opt);
		if (opt == 'h' || opt == O_HELP)
			return cli_print_usage(train_usage);
		if (pn) {
			int r = train_params_set(&p, pn, optarg, &err);
			if (r)
				return cli_error(CLI_USAGE, "train", "%s", err.msg);
			continue;
		}
		if (opt == O_MODEL_OUT) {
			c.model_path = optarg;
			continue;
		}
		if (opt == '?' || (rc = common_opt("train", &c, opt, optarg)) != 0)
			return CLI_USAGE;
	}
	if (optind != argc || !c.ndata) {
		fputs(train_usage, stderr);
		return CLI_USAGE;
	}
	if (train_params_check(&p, &err) != 0)
		return cli_error(CLI_USAGE, "train", "%s", err.msg);
	if ((rc = load_data("train", &ds, c.data, c.ndata, &c.copts, c.key_file)) != 0)
		goto out;
	int tty = !c.json && isatty(STDERR_FILENO);
	if (train_run(&m, &met, ds, &p, tty ? progress : NULL, NULL, &err) != 0) {
		rc = cli_error(err.code == APP_ENOMEM ? CLI_USAGE : CLI_REFUSED, "train", "%s", err.msg);
		goto out;
	}
	if (c.model_path) {
		if (model_save(m, c.model_path, sha, &err) != 0) {
			rc = cli_error(CLI_USAGE, "train", "%s", err.msg);
			goto out;
		}
	} else if (model_serialize(m, &bytes, &nbytes, sha) != 0) {
		rc = cli_error(CLI_USAGE, "train", "cannot serialize the model");
		goto out;
	}
	hex_encode(sha_hex, sha, 32);
	if (c.json)
		print_json(&met, m, sha_hex, 1);
	else
		print_text(&met, m, sha_hex, c.model_path, 1);
	rc = fflush(stdout) == 0 ? CLI_OK : CLI_USAGE;
out:
	free(bytes);
	train_metrics_free(&met);
	model_free(m);
	dataset_free(ds);
	return rc;
}

int cmd_evaluate(int argc, char **argv)
{
	static const struct option opts[] = {
		{"model", required_argument, 0, O_MODEL},    {"data", required_argument, 0, O_DATA},
		{"label-column", required_argument, 0, O_LABEL}, {"header", required_argument, 0, O_HEADER},
		{"delimiter", required_argument, 0, O_DELIM}, {"key-file", required_argument, 0, O_KEY},
		{"threads", required_argument, 0, O_THREADS}, {"json", no_argument, 0, O_JSON},
		{"help", no_argument, 0, O_HELP},            {0},
	};
	struct common c = {0};
	struct train_err err = {0};
	struct dataset *ds = NULL;
	struct model *m = NULL;
	struct train_metrics met = {0};
	uint8_t sha[32];
	char sha_hex[65];
	unsigned long long threads = 1;
	int opt, rc;
	csv_options_default(&c.copts);
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'h' || opt == O_HELP)
			return cli_print_usage(evaluate_usage);
		if (opt == O_MODEL) {
			c.model_path = optarg;
			continue;
		}
		if (opt == O_THREADS) {
			if (cli_parse_u64(&threads, optarg, TRAIN_THREADS_MAX) != 0 || threads < 1)
				return cli_error(CLI_USAGE, "evaluate", "threads: 1..%u", TRAIN_THREADS_MAX);
			continue;
		}
		if (opt == '?' || (rc = common_opt("evaluate", &c, opt, optarg)) != 0)
			return CLI_USAGE;
	}
	if (optind != argc || !c.ndata || !c.model_path) {
		fputs(evaluate_usage, stderr);
		return CLI_USAGE;
	}
	if (model_load(&m, c.model_path, sha, &err) != 0)
		return cli_error(err.code == APP_ENOENT || err.code == APP_EIO ? CLI_USAGE : CLI_REFUSED, "evaluate",
				 "%s", err.msg);
	train_set_threads((uint32_t)threads);
	c.copts.classes = (const char *const *)m->labels;
	c.copts.nclasses = m->classes;
	c.copts.min_classes = 1;
	if ((rc = load_data("evaluate", &ds, c.data, c.ndata, &c.copts, c.key_file)) != 0)
		goto out;
	if (ds->features != m->features) {
		rc = cli_error(CLI_REFUSED, "evaluate", "the data has %zu features, the model %u", ds->features,
			       m->features);
		goto out;
	}
	if (ds->names && m->names)
		for (uint32_t j = 0; j < m->features; j++)
			if (strcmp(ds->names[j], m->names[j])) {
				rc = cli_error(CLI_REFUSED, "evaluate", "feature %u is '%s' in the data, '%s' in the model",
					       j + 1, ds->names[j], m->names[j]);
				goto out;
			}
	if (train_evaluate(&met, m, ds, NULL, 0, &err) != 0) {
		rc = cli_error(CLI_REFUSED, "evaluate", "%s", err.msg);
		goto out;
	}
	met.samples = ds->rows;
	hex_encode(sha_hex, sha, 32);
	if (c.json)
		print_json(&met, m, sha_hex, 0);
	else
		print_text(&met, m, sha_hex, c.model_path, 0);
	rc = fflush(stdout) == 0 ? CLI_OK : CLI_USAGE;
out:
	train_metrics_free(&met);
	model_free(m);
	dataset_free(ds);
	return rc;
}
