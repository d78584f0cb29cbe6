/*
 * fuzz_csv: the streaming CSV reader (enclave/train/csv.h) on arbitrary
 * bytes. The first byte picks options (header mode, label column,
 * delimiter, fixed classes) and where the input is split into two feeds,
 * so carried partial lines are exercised. Any dataset it returns must be
 * consistent (finite values, class indices in range).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/train/csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct csv_options o;
	struct csv_parser *p = NULL;
	struct dataset *ds = NULL;
	struct train_err err;
	static const char *fixed[] = {"0", "1", "a"};
	if (size < 2)
		return 0;
	uint8_t c = data[0], split = data[1];
	data += 2;
	size -= 2;
	csv_options_default(&o);
	o.header = (enum csv_header)(c % 3);
	o.delimiter = (c & 4) ? ';' : ',';
	o.max_line = 4096;
	o.max_rows = 10000;
	o.max_classes = (c & 8) ? 3 : DATASET_MAX_CLASSES;
	if (c & 16)
		o.label_index = 0;
	if (c & 32) {
		o.classes = fixed;
		o.nclasses = 3;
		o.min_classes = 1;
	}
	if ((c & 64) && csv_options_label(&o, "y") != 0)
		return 0;
	size_t cut = size ? (size_t)split * size / 256 : 0;
	if (csv_parser_new(&p, &o, &err) != 0)
		return 0;
	if (csv_parser_begin(p, "fuzz.csv", &err) == 0 && csv_parser_feed(p, data, cut, &err) == 0 &&
	    csv_parser_feed(p, data + cut, size - cut, &err) == 0 && csv_parser_end(p, &err) == 0 &&
	    csv_parser_finish(p, &ds, &err) == 0) {
		for (size_t i = 0; i < ds->rows * ds->features; i++)
			if (!isfinite(ds->x[i]))
				abort();
		for (size_t i = 0; i < ds->rows; i++)
			if (ds->y[i] >= ds->nclasses)
				abort();
		dataset_free(ds);
	}
	/* the number parser alone, on the same bytes */
	float f;
	if (size <= 64 && csv_parse_float(&f, (const char *)data, size) == 0 && !isfinite(f))
		abort();
	csv_parser_free(p);
	return 0;
}
