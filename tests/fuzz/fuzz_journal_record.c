/*
 * fuzz_journal_record: the sealed journal's record parser and opener
 * (enclave/runtime/sjournal.h), what an adversarial parent controls: any bytes as
 * a stored record, parsed, then opened with a fixed key; a valid record
 * made with that key (the seed corpus has some) must round-trip. Also the
 * record-name and money-record classifiers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "enclave/runtime/sjournal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t key[32] = {0x6b, 0x65, 0x79}; /* "key" then zeros: the corpus's records use it */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sj_record rec;
	if (sj_record_parse(&rec, data, size) == 0) {
		char *line = NULL;
		size_t len = 0;
		if (rec.seq == 0 || rec.sealed_len + SJ_HEADER_LEN != size)
			abort();
		if (sj_record_open(&line, &len, &rec, key) == 0) {
			uint8_t *again = NULL;
			size_t al = 0;
			struct sj_record r2;
			char *l2 = NULL;
			size_t l2len = 0;
			if (len == 0 || len > JOURNAL_RECORD_MAX || line[len] != 0)
				abort();
			if (sj_record_seal(&again, &al, rec.instance, rec.seq, rec.prev, key, line, len) != 0 ||
			    sj_record_parse(&r2, again, al) != 0 || sj_record_open(&l2, &l2len, &r2, key) != 0 ||
			    l2len != len || memcmp(l2, line, len) != 0)
				abort();
			free(l2);
			free(again);
			free(line);
		}
	}
	(void)sjournal_money_record((const char *)data, size);
	return 0;
}
