/*
 * fuzz_ledger: ledger record parsing and journal replay (billing/ledger.h).
 * A record that parses formats back to the same line; a journal that
 * replays serializes back to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "billing/ledger.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ledger_record rec;
	const char *why = NULL;
	const char *s = (const char *)data;
	if (ledger_record_parse(&rec, &why, s, size) == 0) {
		char line[LEDGER_RECORD_MAX];
		size_t n = ledger_record_format(line, sizeof line, &rec);
		size_t want = size && s[size - 1] == '\n' ? size - 1 : size;
		if (n == 0 || n - 1 != want || memcmp(line, s, want) != 0)
			abort();
	} else if (!why) {
		abort();
	}
	struct ledger *l = NULL;
	size_t ln;
	if (ledger_replay(&l, &why, &ln, s, size) == 0) {
		size_t jl;
		const char *j = ledger_journal(l, &jl);
		if (jl != size || memcmp(j, s, size) != 0)
			abort();
		struct ledger_account *v;
		size_t na;
		if (ledger_accounts(l, &v, &na) == 0)
			free(v);
		ledger_free(l);
	} else if (l) {
		abort();
	}
	return 0;
}
