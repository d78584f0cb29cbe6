/* csv_test: the streaming CSV reader and its float parser (enclave/train/csv.h). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/err.h"
#include "enclave/train/csv.h"
#include "tests/unit/test.h"

static int parse(struct dataset **ds, const char *text, const struct csv_options *o, struct train_err *err)
{
	struct csv_options d;
	if (!o) {
		csv_options_default(&d);
		o = &d;
	}
	memset(err, 0, sizeof *err);
	return csv_read_mem(ds, "t.csv", (const uint8_t *)text, strlen(text), o, err);
}

static uint64_t rs = 88172645463325252ULL;
static uint64_t rnd(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return rs;
}

static int same_float(float a, float b)
{
	return memcmp(&a, &b, sizeof a) == 0;
}

/* Every accepted number converts exactly as strtof does. */
static void test_float_matches_strtof(void)
{
	static const char *fmts[] = {"%.9g", "%.8g", "%.6g", "%.3g", "%.12g", "%.17g", "%.7e", "%.1f", "%.10f", "%.20g"};
	char buf[128];
	long bad = 0, n = 0;
	for (int i = 0; i < 300000; i++) {
		float f;
		uint32_t u = (uint32_t)rnd();
		double v;
		switch (i % 4) {
		case 0: /* random bit patterns, finite */
			memcpy(&f, &u, 4);
			if (!isfinite(f))
				continue;
			v = f;
			break;
		case 1: /* exact float midpoints and neighbours */
			memcpy(&f, &u, 4);
			if (!isfinite(f) || f == 0)
				continue;
			v = ((double)f + (double)nextafterf(f, INFINITY)) / 2;
			v = nextafter(v, (u & 1) ? INFINITY : -INFINITY);
			if (u & 2)
				v = ((double)f + (double)nextafterf(f, INFINITY)) / 2;
			break;
		case 2: /* typical data */
			v = ((double)(rnd() % 2000001) - 1000000.0) / pow(10.0, (double)(rnd() % 12));
			break;
		default: /* small and large magnitudes */
			v = ldexp((double)(rnd() % 1000000) + 1, (int)(rnd() % 280) - 150);
			break;
		}
		snprintf(buf, sizeof buf, fmts[rnd() % (sizeof fmts / sizeof fmts[0])], v);
		float want = strtof(buf, NULL), got = 0;
		int r = csv_parse_float(&got, buf, strlen(buf));
		n++;
		if (!isfinite(want)) {
			if (r != APP_ERANGE) {
				bad++;
				fprintf(stderr, "'%s': overflow not refused\n", buf);
			}
			continue;
		}
		if (r != 0 || !same_float(got, want)) {
			if (bad < 10)
				fprintf(stderr, "'%s': got %.9g (r=%d), strtof %.9g\n", buf, got, r, want);
			bad++;
		}
	}
	CHECKM(bad == 0, "%ld of %ld numbers differ from strtof", bad, n);
	/* hand-picked cases */
	static const char *ok[] = {"0", "-0", "+1", "1.", ".5", "-.5e-3", "1e0", "1E+2", "007", "3.4028235e38",
				   "1e-45", "1.4e-45", "7e-46", "1.17549435e-38", "123456789012345678901234567890",
				   "0.000000000000000000000000000000000000000000001", "16777217", "16777219",
				   "0.1", "2.5e-8", "9999999999999999999", "1e22", "1e23", "4.9406564584124654e-324",
				   /* the SIMD paths' shapes and their edges */
				   "-0.0", "+0", "000.000", "-.5", "-5.", "+.5", "5.000000000000", "0.000000000000001",
				   "123456789012345", "1234567890123456", "12345678901234567", "-12345678901234.5",
				   "9007199254740993", "0.9999999999999999", "99999999999999.9",
				   /* rounding midpoints and their neighbours, short and long */
				   "1.00000005960464477539", "1.0000000596046448", "1.0000000596046447",
				   "0.500000029802322387695", "33554434", "33554438", "16777216.5", "8388608.5",
				   "8388609.5", "0.1000000015", "3.00000011920929",
				   "3.4028234663852886e38", "3.4028235677973366e38", "1.1754942e-38", "1.17549421e-38",
				   "7.1e-46", "1e-50", "-1e-50", "2.8e-45", "1.401298464324817e-45"};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		float got = 0, want = strtof(ok[i], NULL);
		int r = csv_parse_float(&got, ok[i], strlen(ok[i]));
		CHECKM(r == 0 && same_float(got, want), "'%s': r=%d got %.9g want %.9g", ok[i], r, got, want);
	}
	static const char *bad_syntax[] = {"", "-", "+", ".", "e5", "1e", "1e+", "0x10", "1,5", "1.2.3", " 1", "1 ",
					   "--1", "1-", "abc", "1f", "١"};
	for (size_t i = 0; i < sizeof bad_syntax / sizeof bad_syntax[0]; i++) {
		float got;
		CHECKM(csv_parse_float(&got, bad_syntax[i], strlen(bad_syntax[i])) == APP_EPARSE, "'%s' accepted",
		       bad_syntax[i]);
	}
	static const char *range[] = {"nan", "NaN", "-inf", "Infinity", "+INF", "1e39", "-3.5e38", "1e999999999"};
	for (size_t i = 0; i < sizeof range / sizeof range[0]; i++) {
		float got;
		CHECKM(csv_parse_float(&got, range[i], strlen(range[i])) == APP_ERANGE, "'%s' not refused", range[i]);
	}
}

/* A number's text: the classes the row tests use (finite or not; callers check). */
static int gen_number(char *buf, size_t cap)
{
	float f;
	uint32_t u = (uint32_t)rnd();
	switch (rnd() % 8) {
	case 0: /* random floats, 1..9 significant digits */
		memcpy(&f, &u, 4);
		return snprintf(buf, cap, "%.*g", (int)(rnd() % 9) + 1, isfinite(f) ? f : 1.5f);
	case 1: { /* float rounding midpoints and their neighbours, 6..17 digits */
		memcpy(&f, &u, 4);
		if (!isfinite(f) || f == 0)
			f = 3.0f;
		double mid = ((double)f + (double)nextafterf(f, INFINITY)) / 2;
		if (u & 1)
			mid = nextafter(mid, (u & 2) ? INFINITY : -INFINITY);
		return snprintf(buf, cap, "%.*g", (int)(rnd() % 12) + 6, mid);
	}
	case 2: { /* midpoints of moderate floats in plain notation (the SIMD shapes) */
		f = (float)ldexp((double)(rnd() % (1u << 24)), (int)(rnd() % 40) - 30);
		double mid = ((double)f + (double)nextafterf(f, INFINITY)) / 2;
		return snprintf(buf, cap, "%.*f", (int)(rnd() % 16), mid);
	}
	case 3: /* typical data */
		return snprintf(buf, cap, "%.*g", (int)(rnd() % 10) + 1,
				((double)(rnd() % 2000001) - 1000000.0) / pow(10.0, (double)(rnd() % 12)));
	case 4: { /* [+-]digits with a dot anywhere (or none), up to 17 digits */
		int nd = (int)(rnd() % 17) + 1, dp = (int)(rnd() % (unsigned)(nd + 1)), n = 0;
		unsigned sg = (unsigned)(rnd() % 4);
		if (sg)
			buf[n++] = sg == 1 ? '+' : '-';
		for (int i = 0; i < nd; i++) {
			if (i == dp)
				buf[n++] = '.';
			buf[n++] = (char)('0' + rnd() % ((rnd() & 3) ? 10 : 2));
		}
		if (dp == nd && (rnd() & 1))
			buf[n++] = '.';
		buf[n] = 0;
		return n;
	}
	case 5: { /* 9..15 significant digits */
		char d[32];
		int nd = (int)(rnd() % 7) + 9, dp = (int)(rnd() % (unsigned)nd);
		uint64_t m = 0;
		for (int i = 0; i < nd; i++)
			m = m * 10 + rnd() % 10;
		snprintf(d, sizeof d, "%0*llu", nd, (unsigned long long)m);
		return snprintf(buf, cap, "%s%.*s.%s", (rnd() & 1) ? "-" : "", dp + 1, d, d + dp + 1);
	}
	case 6: /* exponents near the float limits, subnormals */
		return snprintf(buf, cap, "%.*fe%d", (int)(rnd() % 9), (double)(rnd() % 100000) / 10000.0,
				(int)(rnd() % 100) - 50 + ((rnd() & 1) ? 38 : -38));
	default: /* small values like a bench file's: -0.0ddd */
		return snprintf(buf, cap, "%s0.%0*llu", (rnd() & 1) ? "-" : "", (int)(rnd() % 9) + 1,
				(unsigned long long)(rnd() % 1000000000));
	}
}

/*
 * Rows of numbers of every class, in several layouts (label first, inside,
 * last; ',', ';', tab; CRLF; pieces of random sizes): every value equals
 * strtof's, whichever path (SIMD line loop, row split, one field at a
 * time, the general parser) took it.
 */
static void test_rows_match_strtof(void)
{
	enum { ROWS = 4000, MAXCOLS = 14 };
	char *text = malloc((size_t)ROWS * MAXCOLS * 64);
	float *want = malloc((size_t)ROWS * MAXCOLS * sizeof *want);
	long bad = 0, n_values = 0;
	if (!text || !want) {
		CHECK(0);
		return;
	}
	for (int layout = 0; layout < 16; layout++) {
		const size_t cols = 2 + (size_t)layout % 13;
		const size_t label = layout % 3 == 0 ? 0 : layout % 3 == 1 ? cols / 2 : cols - 1;
		const char delim = layout % 4 == 3 ? ';' : layout % 5 == 4 ? '\t' : ',';
		const int plain = layout & 1; /* only the SIMD shapes, or anything */
		size_t n = 0, nv = 0;
		for (size_t r = 0; r < ROWS; r++) {
			for (size_t c = 0; c < cols; c++) {
				if (c == label) {
					text[n++] = (r % 3) ? 'a' : 'b';
				} else {
					char buf[128];
					int k;
					float w;
					do {
						k = gen_number(buf, sizeof buf);
						w = strtof(buf, NULL);
					} while (!isfinite(w) || k > 100 || (plain && (k > 15 || strpbrk(buf, "eE+"))));
					memcpy(text + n, buf, (size_t)k);
					n += (size_t)k;
					want[nv++] = w;
				}
				text[n++] = c + 1 < cols ? delim : '\n';
			}
			if (r % 7 == 3) {
				text[n - 1] = '\r';
				text[n++] = '\n';
			}
		}
		struct csv_options o;
		struct csv_parser *p = NULL;
		struct dataset *ds = NULL;
		struct train_err err;
		csv_options_default(&o);
		o.delimiter = delim;
		o.label_index = (long)label;
		o.header = CSV_HEADER_NO;
		int r = csv_parser_new(&p, &o, &err);
		if (!r)
			r = csv_parser_begin(p, "rows.csv", &err);
		for (size_t at = 0; !r && at < n;) {
			size_t k = 1 + rnd() % ((layout & 2) ? 200000 : 300);
			k = k < n - at ? k : n - at;
			r = csv_parser_feed(p, (const uint8_t *)text + at, k, &err);
			at += k;
		}
		if (!r && !(r = csv_parser_end(p, &err)))
			r = csv_parser_finish(p, &ds, &err);
		csv_parser_free(p);
		CHECKM(r == 0, "layout %d: %s", layout, err.msg);
		if (r == 0 && ds) {
			CHECK(ds->rows == ROWS && ds->rows * ds->features == nv);
			for (size_t i = 0; i < nv && ds->rows * ds->features == nv; i++) {
				if (!same_float(ds->x[i], want[i])) {
					if (bad < 10)
						fprintf(stderr, "layout %d row %zu col %zu: %.9g, strtof %.9g\n", layout,
							i / ds->features, i % ds->features, ds->x[i], want[i]);
					bad++;
				}
			}
			n_values += (long)nv;
		}
		dataset_free(ds);
	}
	CHECKM(bad == 0, "%ld of %ld values differ from strtof", bad, n_values);
	free(text);
	free(want);
}

static void test_basic(void)
{
	struct dataset *ds = NULL;
	struct train_err err;
	CHECK_OK(parse(&ds, "# comment\na,b,label\n1,2,x\n\n3.5, -4 ,y\r\n  # another\n5,6e1,x", NULL, &err));
	if (!ds)
		return;
	CHECK(ds->rows == 3 && ds->features == 2 && ds->nclasses == 2);
	CHECK(ds->x[0] == 1 && ds->x[1] == 2 && ds->x[2] == 3.5f && ds->x[3] == -4 && ds->x[5] == 60);
	CHECK(ds->y[0] == 0 && ds->y[1] == 1 && ds->y[2] == 0);
	CHECK_STR(ds->classes[0], "x");
	CHECK_STR(ds->classes[1], "y");
	CHECK(ds->names && !strcmp(ds->names[0], "a") && !strcmp(ds->names[1], "b"));
	CHECK_STR(ds->label_name, "label");
	dataset_free(ds);
}

static void test_label_column(void)
{
	struct dataset *ds = NULL;
	struct train_err err;
	struct csv_options o;
	csv_options_default(&o);
	CHECK_OK(csv_options_label(&o, "0"));
	CHECK_OK(parse(&ds, "1,2,3\n0,4,5\n1,6,7\n", &o, &err));
	CHECK(ds && ds->features == 2 && ds->x[0] == 2 && ds->x[1] == 3 && ds->nclasses == 2 && ds->y[1] == 1);
	dataset_free(ds);
	CHECK_OK(csv_options_label(&o, "cls"));
	CHECK_OK(parse(&ds, "a,cls,b\n1,\"q, r\",3\n4,s,6\n", &o, &err));
	CHECK(ds && ds->x[0] == 1 && ds->x[1] == 3 && !strcmp(ds->classes[0], "q, r"));
	CHECK(ds && ds->names && !strcmp(ds->names[1], "b"));
	dataset_free(ds);
	CHECK_OK(csv_options_label(&o, "nope"));
	CHECK_ERR(parse(&ds, "a,cls,b\n1,x,3\n4,s,6\n", &o, &err), APP_EINVAL);
	CHECK(strstr(err.msg, "no column named 'nope'") != NULL);
	CHECK_OK(csv_options_label(&o, "7"));
	CHECK_ERR(parse(&ds, "1,2,3\n0,4,5\n", &o, &err), APP_EINVAL);
	CHECK(strstr(err.msg, "label column 7 out of range") != NULL);
	CHECK_ERR(csv_options_label(&o, ""), APP_EINVAL);
	/* integer labels keep their text, in order of first appearance */
	csv_options_default(&o);
	CHECK_OK(parse(&ds, "1,5\n2,3\n3,5\n4,10\n", &o, &err));
	CHECK(ds && ds->nclasses == 3 && !strcmp(ds->classes[0], "5") && !strcmp(ds->classes[2], "10"));
	dataset_free(ds);
	/* forced header / no header, tab delimiter */
	o.header = CSV_HEADER_YES;
	o.delimiter = '\t';
	CHECK_OK(parse(&ds, "1\t2\n3\t4\n5\t6\n", &o, &err));
	CHECK(ds && ds->rows == 2 && ds->names && !strcmp(ds->names[0], "1"));
	dataset_free(ds);
	o.header = CSV_HEADER_NO;
	o.delimiter = ';';
	CHECK_ERR(parse(&ds, "a;b\n3;4\n5;6\n", &o, &err), APP_EPARSE);
	CHECK(err.line == 1 && err.column == 1);
}

struct bad_case {
	const char *text;
	int code;
	uint64_t line, column;
	const char *what;
};

/* The malformed-CSV table: every case names file, line, column and what. */
static void test_malformed(void)
{
	static const struct bad_case cases[] = {
		{"", APP_EPARSE, 0, 0, "empty file"},
		{"# only a comment\n\n", APP_EPARSE, 0, 0, "empty file"},
		{"a,b,c\n", APP_EPARSE, 0, 0, "no data rows"},
		{"1,2,0\n3,4\n", APP_EPARSE, 2, 3, "row has 2 fields, expected 3"},
		{"1,2,0\n3,4,1,5\n", APP_EPARSE, 2, 4, "row has 4 fields, expected 3"},
		{"1,2,0\n3,x,1\n", APP_EPARSE, 2, 2, "non-numeric field 'x'"},
		{"1,2,0\n3,1.5.2,1\n", APP_EPARSE, 2, 2, "non-numeric field '1.5.2'"},
		{"1,2,0\n3,nan,1\n", APP_EPARSE, 2, 2, "NaN or infinite value 'nan'"},
		{"1,2,0\n-inf,4,1\n", APP_EPARSE, 2, 1, "NaN or infinite value '-inf'"},
		{"1,2,0\n1e39,4,1\n", APP_EPARSE, 2, 1, "out of float32 range"},
		{"1,2,0\n3,,1\n", APP_EPARSE, 2, 2, "empty field"},
		{"1,2,0\n3,4,\n", APP_EPARSE, 2, 3, "empty label"},
		{"1,2,0\n3,4,0\n", APP_EPARSE, 0, 0, "a single class ('0')"},
		{"a,b,a\n1,2,0\n3,4,1\n", APP_EPARSE, 1, 3, "duplicate header name 'a' (also column 1)"},
		{"a,,c\n1,2,0\n3,4,1\n", APP_EPARSE, 1, 2, "empty header name"},
		{"1,2,0\n3,\"4,1\n", APP_EPARSE, 2, 2, "unterminated quoted field"},
		{"1,2,0\n3,\"4\"x,1\n", APP_EPARSE, 2, 2, "text after a closing quote"},
		{"1,2,0\n3,4 5,1\n", APP_EPARSE, 2, 2, "non-numeric field '4 5'"},
		{"5\n6\n", APP_EPARSE, 1, 0, "need at least 2 columns"},
		{"1,0\n2,1\n3,2\n4,3\n", APP_ELIMIT, 4, 2, "too many classes"},
		{"1,0\n22222222222222222222222,1\n", APP_ETOOBIG, 2, 0, "line longer than 20 bytes"},
		{"1,0\n2,1\n3,0\n4,1\n5,0\n", APP_ETOOBIG, 5, 0, "more than 4 rows"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct bad_case *c = &cases[i];
		struct csv_options o;
		struct dataset *ds = NULL;
		struct train_err err;
		csv_options_default(&o);
		if (strstr(c->what, "too many classes"))
			o.max_classes = 3;
		if (strstr(c->what, "line longer"))
			o.max_line = 20;
		if (strstr(c->what, "more than 4 rows"))
			o.max_rows = 4;
		int r = parse(&ds, c->text, &o, &err);
		CHECKM(r == c->code, "case %zu: code %d, expected %d (%s)", i, r, c->code, err.msg);
		CHECKM(err.line == c->line && err.column == c->column, "case %zu: at %llu:%llu, expected %llu:%llu (%s)",
		       i, (unsigned long long)err.line, (unsigned long long)err.column, (unsigned long long)c->line,
		       (unsigned long long)c->column, err.msg);
		CHECKM(strstr(err.msg, c->what) != NULL, "case %zu: message '%s' lacks '%s'", i, err.msg, c->what);
		CHECKM(strncmp(err.msg, "t.csv", 5) == 0, "case %zu: message '%s' does not name the file", i, err.msg);
		CHECK(ds == NULL);
	}
	/* a huge line hits the default cap without buffering it all */
	size_t n = CSV_MAX_LINE_DEFAULT + 100;
	char *big = malloc(n + 1);
	memset(big, '1', n);
	big[n] = 0;
	struct dataset *ds = NULL;
	struct train_err err;
	CHECK_ERR(parse(&ds, big, NULL, &err), APP_ETOOBIG);
	CHECK(strstr(err.msg, "line longer than") != NULL);
	free(big);
}

/*
 * Plain rows (the SIMD line loop's) and then one odd line: it is accepted
 * or refused exactly as on its own, at the right line and column.
 */
static void test_after_plain_rows(void)
{
	static const struct {
		const char *field; /* put in column 5 of line 61 (or the whole line, if it starts with '!') */
		int code;
		uint64_t column;
		const char *what; /* error text, or the value's text when accepted */
	} cases[] = {
		{"1.2.3", APP_EPARSE, 5, "non-numeric field '1.2.3'"},
		{"--1", APP_EPARSE, 5, "non-numeric field '--1'"},
		{"1-2", APP_EPARSE, 5, "non-numeric field '1-2'"},
		{"-", APP_EPARSE, 5, "non-numeric field '-'"},
		{".", APP_EPARSE, 5, "non-numeric field '.'"},
		{"1e", APP_EPARSE, 5, "non-numeric field '1e'"},
		{"1\r2", APP_EPARSE, 5, "non-numeric field '1?2'"},
		{"1 2", APP_EPARSE, 5, "non-numeric field '1 2'"},
		{"nan", APP_EPARSE, 5, "NaN or infinite value 'nan'"},
		{"-Infinity", APP_EPARSE, 5, "NaN or infinite value '-Infinity'"},
		{"3.5e38", APP_EPARSE, 5, "value '3.5e38' out of float32 range"},
		{"", APP_EPARSE, 5, "empty field"},
		{"1\"2", APP_EPARSE, 5, "quote inside an unquoted field"},
		{"\"1", APP_EPARSE, 5, "unterminated quoted field"},
		{"!1,2,3,4,5,6,7,8,9,10,11,12,a,4", APP_EPARSE, 14, "row has 14 fields, expected 13"},
		{"!1,2,3", APP_EPARSE, 4, "row has 3 fields, expected 13"},
		{"!1,2,3,4,5,6,7,8,9,10,11,12,", APP_EPARSE, 13, "empty label"},
		{"!1,2,3,4,5,6,7,8,9,10,11,12,zzz", APP_EPARSE, 13, "label 'zzz' is not one of the model's 2 classes"},
		{"12345678901234567890", 0, 0, "12345678901234567890"},
		{"0.000000000000000000001", 0, 0, "0.000000000000000000001"},
		{"+4.5", 0, 0, "+4.5"},
		{".25", 0, 0, ".25"},
		{"-7.", 0, 0, "-7."},
		{"1e2", 0, 0, "1e2"},
		{" 6.5 ", 0, 0, "6.5"},
		{"\"2.5\"", 0, 0, "2.5"},
		{"-0", 0, 0, "-0"},
		{"!# a,b,c", 0, 0, NULL},
		{"!  # indented", 0, 0, NULL},
		{"!", 0, 0, NULL},
		{"!\r", 0, 0, NULL},
	};
	static const char *const cls[] = {"a", "b"};
	char *text = malloc(64 * 1024), line[256];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0] && text; i++) {
		size_t n = 0;
		for (int r = 1; r <= 64; r++) {
			if (r == 61 && cases[i].field[0] == '!') {
				n += (size_t)snprintf(text + n, 1024, "%s\n", cases[i].field + 1);
				continue;
			}
			int k = 0;
			for (int c = 1; c <= 12; c++)
				k += snprintf(line + k, sizeof line - (size_t)k, "%s,",
					      r == 61 && c == 5 ? cases[i].field : (c & 1) ? "-12.375" : "0.5");
			k += snprintf(line + k, sizeof line - (size_t)k, "%s%s\n", (r & 1) ? "a" : "b",
				      r % 5 ? "" : "\r");
			memcpy(text + n, line, (size_t)k);
			n += (size_t)k;
		}
		struct csv_options o;
		struct dataset *ds = NULL;
		struct train_err err;
		csv_options_default(&o);
		o.classes = cls;
		o.nclasses = 2;
		memset(&err, 0, sizeof err);
		int r = csv_read_mem(&ds, "t.csv", (const uint8_t *)text, n, &o, &err);
		if (cases[i].code) {
			CHECKM(r == cases[i].code, "case %zu: code %d, expected %d (%s)", i, r, cases[i].code, err.msg);
			CHECKM(err.line == 61 && err.column == cases[i].column, "case %zu: at %llu:%llu (%s)", i,
			       (unsigned long long)err.line, (unsigned long long)err.column, err.msg);
			CHECKM(strstr(err.msg, cases[i].what) != NULL, "case %zu: '%s' lacks '%s'", i, err.msg,
			       cases[i].what);
		} else {
			CHECKM(r == 0, "case %zu: %s", i, err.msg);
			if (r == 0 && ds) {
				int skipped = cases[i].what == NULL;
				CHECK(ds->rows == (skipped ? 63u : 64u) && ds->features == 12);
				if (!skipped && ds->rows == 64) {
					float want = strtof(cases[i].what, NULL);
					CHECKM(same_float(ds->x[60 * 12 + 4], want), "case %zu: %.9g, expected %.9g", i,
					       ds->x[60 * 12 + 4], want);
				}
				CHECK(ds->x[(ds->rows - 1) * 12] == -12.375f && ds->y[ds->rows - 1] == 1);
			}
		}
		dataset_free(ds);
	}
	/* a new label late in the file, a long line, too many rows */
	struct csv_options o;
	struct dataset *ds = NULL;
	struct train_err err;
	size_t n = 0;
	for (int r = 1; r <= 100 && text; r++)
		n += (size_t)snprintf(text + n, 1024, "1.5,2.5,3.5,4.5,5.5,%s\n",
				      r < 90 ? ((r & 1) ? "x" : "y") : "late");
	csv_options_default(&o);
	CHECK_OK(csv_read_mem(&ds, "t.csv", (const uint8_t *)text, n, &o, &err));
	CHECK(ds && ds->nclasses == 3 && ds->y[89] == 2 && ds->y[90] == 2 && !strcmp(ds->classes[2], "late"));
	dataset_free(ds);
	o.max_rows = 50;
	CHECK_ERR(csv_read_mem(&ds, "t.csv", (const uint8_t *)text, n, &o, &err), APP_ETOOBIG);
	CHECK(err.line == 51 && strstr(err.msg, "more than 50 rows") != NULL);
	csv_options_default(&o);
	o.max_line = 300;
	if (text)
		memset(text + 20 * 22, '7', 400); /* line 21 runs into the following ones */
	CHECK_ERR(csv_read_mem(&ds, "t.csv", (const uint8_t *)text, n, &o, &err), APP_ETOOBIG);
	CHECK(err.line == 21 && strstr(err.msg, "line longer than 300 bytes") != NULL);
	free(text);
}

/* Feeding one byte at a time gives the same dataset as one piece. */
static void test_streaming(void)
{
	const char *text = "f1,f2,f3,y\n0.5,1e-3,-2,a\n\"3\",4.25,5,b\n# c\n6, 7 ,8.125,a\r\n9,10,11,c";
	struct csv_options o;
	struct csv_parser *p = NULL;
	struct dataset *a = NULL, *b = NULL;
	struct train_err err;
	csv_options_default(&o);
	CHECK_OK(parse(&a, text, &o, &err));
	CHECK_OK(csv_parser_new(&p, &o, &err));
	CHECK_OK(csv_parser_begin(p, "t.csv", &err));
	for (size_t i = 0; text[i]; i++)
		CHECK_OK(csv_parser_feed(p, (const uint8_t *)text + i, 1, &err));
	CHECK_OK(csv_parser_end(p, &err));
	CHECK_OK(csv_parser_finish(p, &b, &err));
	csv_parser_free(p);
	CHECK(a && b && a->rows == 4 && b->rows == 4 && a->features == 3);
	if (a && b) {
		CHECK(memcmp(a->x, b->x, a->rows * a->features * sizeof(float)) == 0);
		CHECK(memcmp(a->y, b->y, a->rows * sizeof(uint32_t)) == 0);
		CHECK(a->x[3] == 3.0f && a->x[7] == 7.0f && a->nclasses == 3);
	}
	dataset_free(a);
	dataset_free(b);
}

static void test_pooling(void)
{
	struct csv_options o;
	struct csv_parser *p = NULL;
	struct dataset *ds = NULL;
	struct train_err err;
	csv_options_default(&o);
	const char *s1 = "a,b,y\n1,2,x\n3,4,y\n", *s2 = "a,b,y\n5,6,z\n7,8,x\n", *s3 = "9,10,y\n";
	CHECK_OK(csv_parser_new(&p, &o, &err));
	CHECK_OK(csv_parser_begin(p, "one.csv", &err));
	CHECK_OK(csv_parser_feed(p, (const uint8_t *)s1, strlen(s1), &err));
	CHECK_OK(csv_parser_end(p, &err));
	CHECK_OK(csv_parser_begin(p, "two.csv", &err));
	CHECK_OK(csv_parser_feed(p, (const uint8_t *)s2, strlen(s2), &err));
	CHECK_OK(csv_parser_end(p, &err));
	CHECK_OK(csv_parser_begin(p, "three.csv", &err));
	CHECK_OK(csv_parser_feed(p, (const uint8_t *)s3, strlen(s3), &err));
	CHECK_OK(csv_parser_end(p, &err));
	CHECK_OK(csv_parser_finish(p, &ds, &err));
	csv_parser_free(p);
	CHECK(ds && ds->rows == 5 && ds->nclasses == 3 && ds->y[2] == 2 && ds->y[3] == 0 && ds->x[8] == 9);
	dataset_free(ds);
	/* a different header */
	const char *s4 = "a,c,y\n1,2,x\n";
	CHECK_OK(csv_parser_new(&p, &o, &err));
	CHECK_OK(csv_parser_begin(p, "one.csv", &err));
	CHECK_OK(csv_parser_feed(p, (const uint8_t *)s1, strlen(s1), &err));
	CHECK_OK(csv_parser_end(p, &err));
	CHECK_OK(csv_parser_begin(p, "four.csv", &err));
	CHECK_ERR(csv_parser_feed(p, (const uint8_t *)s4, strlen(s4), &err), APP_EPARSE);
	CHECK(strstr(err.msg, "four.csv:1:2: header 'c' differs from 'b' in one.csv") != NULL);
	CHECK_ERR(csv_parser_feed(p, (const uint8_t *)s4, strlen(s4), &err), APP_ESTATE);
	csv_parser_free(p);
	/* a different number of columns */
	const char *s5 = "1,2,3,x\n";
	CHECK_OK(csv_parser_new(&p, &o, &err));
	CHECK_OK(csv_parser_begin(p, "one.csv", &err));
	CHECK_OK(csv_parser_feed(p, (const uint8_t *)s1, strlen(s1), &err));
	CHECK_OK(csv_parser_end(p, &err));
	CHECK_OK(csv_parser_begin(p, "five.csv", &err));
	CHECK_ERR(csv_parser_feed(p, (const uint8_t *)s5, strlen(s5), &err), APP_EPARSE);
	CHECK(strstr(err.msg, "five.csv:1: 4 columns, expected 3 as in one.csv") != NULL);
	csv_parser_free(p);
}

static void test_fixed_classes(void)
{
	struct csv_options o;
	struct dataset *ds = NULL;
	struct train_err err;
	const char *cls[] = {"no", "yes"};
	csv_options_default(&o);
	o.classes = cls;
	o.nclasses = 2;
	o.min_classes = 1;
	CHECK_OK(parse(&ds, "1,yes\n2,yes\n", &o, &err));
	CHECK(ds && ds->nclasses == 2 && ds->y[0] == 1);
	dataset_free(ds);
	CHECK_ERR(parse(&ds, "1,yes\n2,maybe\n", &o, &err), APP_EPARSE);
	CHECK(strstr(err.msg, "t.csv:2:2: label 'maybe' is not one of the model's 2 classes") != NULL);
}

static void test_real_files(void)
{
	char path[512];
	const char *root = getenv("APPLIANCE_ROOT");
	struct csv_options o;
	struct dataset *ds = NULL;
	struct train_err err = {0};
	csv_options_default(&o);
	snprintf(path, sizeof path, "%s/tests/data/breast_cancer.csv", root ? root : ".");
	const char *paths[] = {path};
	CHECK_OK(csv_read_files(&ds, paths, 1, &o, &err));
	CHECK(ds && ds->rows == 569 && ds->features == 30 && ds->nclasses == 2);
	CHECK(ds && ds->x[0] == 17.99f && !strcmp(ds->names[0], "mean radius"));
	dataset_free(ds);
	snprintf(path, sizeof path, "%s/tests/data/iris.csv", root ? root : ".");
	CHECK_OK(csv_read_files(&ds, paths, 1, &o, &err));
	CHECK(ds && ds->rows == 150 && ds->features == 4 && ds->nclasses == 3 && !strcmp(ds->classes[2], "virginica"));
	dataset_free(ds);
	const char *missing[] = {"/nonexistent/x.csv"};
	CHECK_ERR(csv_read_files(&ds, missing, 1, &o, &err), APP_ENOENT);
	CHECK(strstr(err.msg, "/nonexistent/x.csv") != NULL);
}

int main(void)
{
	RUN(test_float_matches_strtof);
	RUN(test_rows_match_strtof);
	RUN(test_basic);
	RUN(test_label_column);
	RUN(test_malformed);
	RUN(test_after_plain_rows);
	RUN(test_streaming);
	RUN(test_pooling);
	RUN(test_fixed_classes);
	RUN(test_real_files);
	/* The same parsing checks on the baseline (non-AVX-512) paths. */
	setenv("APPLIANCE_CSV_SIMD", "base", 1);
	RUN(test_rows_match_strtof);
	RUN(test_basic);
	RUN(test_malformed);
	RUN(test_after_plain_rows);
	RUN(test_streaming);
	RUN(test_real_files);
	unsetenv("APPLIANCE_CSV_SIMD");
	return test_summary();
}
