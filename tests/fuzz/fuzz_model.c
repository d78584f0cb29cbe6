/*
 * fuzz_model: the model-file parser (enclave/train/model.h) on arbitrary
 * bytes. A model that parses must serialize back to the same bytes, and a
 * prediction either succeeds without NaN or is refused with APP_ERANGE.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/train/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct model *m = NULL;
	struct train_err err;
	if (model_parse(&m, data, size, &err) != 0)
		return 0;
	uint8_t *out = NULL;
	size_t len = 0;
	if (model_serialize(m, &out, &len, NULL) != 0 || len != size || memcmp(out, data, size) != 0)
		abort();
	free(out);
	if (m->features <= 4096) {
		float *x = calloc(m->features, sizeof(float)), *p = calloc(m->classes, sizeof(float));
		if (x && p && model_predict(m, p, x, 1) == 0)
			for (uint32_t c = 0; c < m->classes; c++)
				if (isnan(p[c]))
					abort();
		free(x);
		free(p);
	}
	model_free(m);
	return 0;
}
