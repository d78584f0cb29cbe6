/*
 * dataset.h: an in-memory labelled dataset (float32 row-major features,
 * one class index per row) and the error report shared by the training
 * engine (enclave/train/, libtrain).
 *
 * libtrain depends only on libc, OpenBLAS and appliance/hash.h + err.h.
 */
#ifndef TRAIN_DATASET_H
#define TRAIN_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"

/* Hard caps of the engine (checked before allocating). */
#define DATASET_MAX_FEATURES 100000u    /* feature columns */
#define DATASET_MAX_CLASSES 1000u       /* distinct labels */
#define DATASET_MAX_LABEL_LEN 256u      /* bytes of one label or column name */

/*
 * train_err: why an engine call failed, for people. `code` is the APP_E*
 * code also returned; `msg` is one line such as
 * "data.csv:12:3: non-numeric field 'abc'" (file, line, column where they
 * apply). file/line/column are 0/empty when they do not apply. Lines and
 * columns (fields) are 1-based.
 */
struct train_err {
	int code;
	uint64_t line;
	uint64_t column;
	char file[256];
	char msg[512];
};

/*
 * train_err_set: fills err (may be NULL) with code, location and a
 * printf-formatted message; file may be NULL. Returns code, so a caller can
 * write `return train_err_set(err, APP_EPARSE, ...)`.
 */
int train_err_set(struct train_err *err, int code, const char *file, uint64_t line,
		  uint64_t column, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/*
 * dataset: rows x features float32 matrix (row-major, finite values) and
 * a class index per row in 0..nclasses-1; classes[i] is the label text of
 * class i (labels in order of first appearance); names[j] the header name
 * of feature j, or names == NULL when no source had a header. Owned by the
 * dataset; free with dataset_free.
 */
struct dataset {
	size_t rows;
	size_t features;
	float *x;
	uint32_t *y;
	size_t nclasses;
	char **classes;
	char **names;
	char *label_name; /* header name of the label column, or NULL */
};

/* dataset_free: frees d and everything it owns; NULL is a no-op. */
void dataset_free(struct dataset *d);

/*
 * dataset_class_counts: counts[c] = rows of class c (counts has nclasses
 * entries).
 */
void dataset_class_counts(const struct dataset *d, uint64_t *counts);

#endif
