/*
 * csv.c: streaming CSV reader into a float32 matrix (see csv.h).
 *
 * Speed: lines are parsed in place (only a line cut by the end of a piece,
 * or too close to it, is copied); a row's delimiters are found 64 bytes at
 * a time, then its fields are converted independently. Numbers are read
 * with SIMD where the CPU has it ("fast paths": 1 field at a time with
 * SSE2, 4 to 8 with AVX-512, whose line loop also takes plain rows whole)
 * or SWAR (parse_number, 8 digits per step), and converted with Clinger's
 * exact fast path (mantissa < 2^53, |exponent| <= 22, correctly rounded
 * double, then to float unless the double lies near a float rounding
 * midpoint); anything else (long mantissas, big exponents, subnormals,
 * midpoints) goes through strtof, so results always equal strtof's. The
 * fast paths only ever decline: what they refuse, the general parser
 * takes, and all errors come from it. The matrix is made resident a MiB
 * at a time ahead of the rows (prefault).
 */
#include "enclave/train/csv.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
/* x86-64: SSE2 always; AVX-512 when the CPU has it (CSV_NO_AVX512 leaves it out) */
#if defined(__x86_64__)
#include <immintrin.h>
#define CSV_SSE2 1
#if defined(__GNUC__) && !defined(CSV_NO_AVX512)
#define CSV_AVX512 1
#endif
#endif

#define CSV_HT_SIZE 2048u         /* > 2 * DATASET_MAX_CLASSES, power of two */
#define CSV_NUM_MAX 400u          /* characters of a number for the slow path */
#define CSV_READ_BUF (128u << 10)  /* read() size: fits L2, parsed while it is hot */
#define CSV_PREFAULT (1u << 20)   /* bytes of the matrix made resident at a time */
#define CSV_SHOW_MAX 40u          /* characters of a field quoted in a message */

_Static_assert(CSV_HT_SIZE >= 2 * DATASET_MAX_CLASSES, "class table too small");
_Static_assert(DATASET_MAX_CLASSES < UINT16_MAX, "byte_class holds class index + 1");

enum csv_simd { CSV_SIMD_BASE = 0, CSV_SIMD_AVX512 = 1 };

struct csv_parser {
	struct csv_options o;
	char *label_name;       /* copy of o.label_name */
	/* schema (fixed by the first source's first line) */
	int have_schema;
	size_t ncols, label_col, features;
	uint32_t *bounds;       /* the current row's split (see data_row), ncols + 1 + CSV_BOUNDS_SLACK */
	int simd;               /* enum csv_simd */
	char **names;           /* features names, or NULL */
	char *label_hdr;        /* header name of the label column */
	char first_source[256];
	/* matrix */
	float *x;
	uint32_t *y;
	size_t rows, cap;
	size_t resident;        /* bytes of x made resident ahead (see prefault) */
	/* classes */
	char **classes;
	size_t *class_len;
	size_t nclasses;
	int fixed;
	uint32_t ht[CSV_HT_SIZE]; /* class index + 1, 0 = empty */
	size_t last_class;        /* cache of the previous row's class */
	uint16_t byte_class[256]; /* class index + 1 of one-byte labels, 0 = none */
	/* current source */
	char name[256];
	int in_source;
	int first_line_done;
	uint64_t line;
	uint64_t src_rows;
	/* partial line */
	char *carry;
	size_t carry_len, carry_cap;
	uint64_t bytes;
	int err; /* sticky */
	int finished;
};

int train_err_set(struct train_err *err, int code, const char *file, uint64_t line, uint64_t column,
		  const char *fmt, ...)
{
	if (!err)
		return code;
	char what[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	err->code = code;
	err->line = line;
	err->column = column;
	snprintf(err->file, sizeof err->file, "%s", file ? file : "");
	if (file && line && column)
		snprintf(err->msg, sizeof err->msg, "%s:%llu:%llu: %s", file, (unsigned long long)line,
			 (unsigned long long)column, what);
	else if (file && line)
		snprintf(err->msg, sizeof err->msg, "%s:%llu: %s", file, (unsigned long long)line, what);
	else if (file)
		snprintf(err->msg, sizeof err->msg, "%s: %s", file, what);
	else
		snprintf(err->msg, sizeof err->msg, "%s", what);
	return code;
}

void csv_options_default(struct csv_options *o)
{
	memset(o, 0, sizeof *o);
	o->delimiter = ',';
	o->header = CSV_HEADER_AUTO;
	o->label_index = CSV_LABEL_LAST;
	o->min_classes = 2;
	o->max_line = CSV_MAX_LINE_DEFAULT;
	o->max_rows = CSV_MAX_ROWS_DEFAULT;
	o->max_bytes = CSV_MAX_BYTES_DEFAULT;
	o->max_matrix = CSV_MAX_MATRIX_DEFAULT;
	o->max_classes = DATASET_MAX_CLASSES;
	o->max_features = DATASET_MAX_FEATURES;
}

int csv_options_label(struct csv_options *o, const char *text)
{
	if (!o || !text || !*text || strlen(text) > DATASET_MAX_LABEL_LEN)
		return APP_EINVAL;
	if (!strcmp(text, "last")) {
		o->label_index = CSV_LABEL_LAST;
		o->label_name = NULL;
		return 0;
	}
	size_t n = strlen(text);
	int digits = n <= 9;
	for (size_t i = 0; i < n && digits; i++)
		digits = text[i] >= '0' && text[i] <= '9';
	if (digits) {
		long v = 0;
		for (size_t i = 0; i < n; i++)
			v = v * 10 + (text[i] - '0');
		o->label_index = v;
		o->label_name = NULL;
		return 0;
	}
	o->label_name = text;
	return 0;
}

void dataset_free(struct dataset *d)
{
	if (!d)
		return;
	free(d->x);
	free(d->y);
	if (d->classes)
		for (size_t i = 0; i < d->nclasses; i++)
			free(d->classes[i]);
	free(d->classes);
	if (d->names)
		for (size_t i = 0; i < d->features; i++)
			free(d->names[i]);
	free(d->names);
	free(d->label_name);
	free(d);
}

void dataset_class_counts(const struct dataset *d, uint64_t *counts)
{
	memset(counts, 0, d->nclasses * sizeof *counts);
	for (size_t i = 0; i < d->rows; i++)
		counts[d->y[i]]++;
}

/* ---- numbers ---- */

/* 10^-22 .. 10^22 as the nearest doubles (exact for 10^0 .. 10^22). */
static const double p10d[45] = {1e-22, 1e-21, 1e-20, 1e-19, 1e-18, 1e-17, 1e-16, 1e-15, 1e-14,
				1e-13, 1e-12, 1e-11, 1e-10, 1e-9,  1e-8,  1e-7,  1e-6,  1e-5,
				1e-4,  1e-3,  1e-2,  1e-1,  1e0,   1e1,   1e2,   1e3,   1e4,
				1e5,   1e6,   1e7,   1e8,   1e9,   1e10,  1e11,  1e12,  1e13,
				1e14,  1e15,  1e16,  1e17,  1e18,  1e19,  1e20,  1e21,  1e22};
static const uint64_t p10u[9] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000};

/* High bit of each byte set where x (= bytes ^ '0') is not a digit 0..9. */
static inline uint64_t swar_nondigit(uint64_t x)
{
	return (((x & 0x7f7f7f7f7f7f7f7fULL) + 0x7676767676767676ULL) | x) & 0x8080808080808080ULL;
}

/* Value of 8 digit values (first in the low byte). */
static inline uint32_t swar_parse8(uint64_t x)
{
	x = (x * 10) + (x >> 8);
	x = (((x & 0x000000FF000000FFULL) * (100 + (1000000ULL << 32))) +
	     (((x >> 16) & 0x000000FF000000FFULL) * (1 + (10000ULL << 32)))) >>
	    32;
	return (uint32_t)x;
}

static inline int is_digit(char c)
{
	return (unsigned char)(c - '0') < 10;
}

/* Reads a run of digits at p (memory readable up to lim) into *m. */
static inline const char *read_digits(const char *p, const char *lim, uint64_t *m, int *nd)
{
	while (lim - p >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		uint64_t x = v ^ 0x3030303030303030ULL;
		uint64_t nm = swar_nondigit(x);
		if (nm == 0) {
			*m = *m * 100000000u + swar_parse8(x);
			*nd += 8;
			p += 8;
			continue;
		}
		int k = __builtin_ctzll(nm) >> 3;
		if (k) {
			x <<= 8 * (8 - k);
			*m = *m * p10u[k] + swar_parse8(x);
			*nd += k;
			p += k;
		}
		return p;
	}
	while (p < lim && is_digit(*p)) {
		*m = *m * 10 + (uint64_t)(*p - '0');
		(*nd)++;
		p++;
	}
	return p;
}

/* Exact conversion through strtof for the hard cases. */
static int slow_float(float *out, const char *s, size_t len)
{
	char buf[CSV_NUM_MAX + 1];
	if (len > CSV_NUM_MAX)
		return APP_EPARSE;
	memcpy(buf, s, len);
	buf[len] = 0;
	char *end = NULL;
	errno = 0;
	float f = strtof(buf, &end);
	if (end != buf + len)
		return APP_EPARSE;
	if (!(f <= FLT_MAX && f >= -FLT_MAX))
		return APP_ERANGE;
	*out = f;
	return 0;
}

/*
 * Parses a number at p; returns the end, or NULL if there is no number
 * syntax at p. *rc: 0 ok, APP_ERANGE (overflow), APP_EPARSE (too long).
 */
static inline const char *parse_number(const char *p, const char *lim, float *out, int *rc)
{
	const char *start = p;
	int neg = 0;
	*rc = 0;
	if (p < lim) {
		neg = *p == '-';
		p += neg | (*p == '+');
	}
	uint64_t m = 0;
	int nd = 0;
	const char *q = read_digits(p, lim, &m, &nd);
	int64_t exp = 0;
	if (q < lim && *q == '.') {
		int before = nd;
		q = read_digits(q + 1, lim, &m, &nd);
		exp = -(int64_t)(nd - before);
	}
	if (nd == 0)
		return NULL;
	if (q < lim && (*q | 0x20) == 'e') {
		const char *r = q + 1;
		int eneg = 0;
		if (r < lim && (*r == '-' || *r == '+')) {
			eneg = *r == '-';
			r++;
		}
		if (!(r < lim && is_digit(*r)))
			return NULL;
		int64_t ev = 0;
		while (r < lim && is_digit(*r)) {
			if (ev < 1000000)
				ev = ev * 10 + (*r - '0');
			r++;
		}
		exp += eneg ? -ev : ev;
		q = r;
	}
	if (nd <= 19) {
		if (m == 0) {
			*out = neg ? -0.0f : 0.0f;
			return q;
		}
		if (m < (1ULL << 53) && exp >= -22 && exp <= 22) {
			/*
			 * m is exact; 10^exp is exact for exp >= 0 and within
			 * 0.5 ulp otherwise, so d is within 1.5 ulp (double) of
			 * the true value. Rounding d to float is then correct
			 * unless a float rounding midpoint (low 29 mantissa bits
			 * 0x10000000) lies within 4 ulp of d: those rare cases,
			 * subnormals and overflow go to strtof.
			 */
			double d = (double)m * p10d[exp + 22];
			if (d >= (double)FLT_MIN && d <= (double)FLT_MAX) {
				uint64_t bits;
				memcpy(&bits, &d, 8);
				uint64_t low = bits & 0x1FFFFFFFULL;
				if (low - (0x10000000ULL - 4) > 8) {
					float f = (float)d;
					*out = neg ? -f : f;
					return q;
				}
			}
		}
	}
	*rc = slow_float(out, start, (size_t)(q - start));
	return q;
}

static int is_nan_inf(const char *s, size_t n)
{
	if (n && (*s == '-' || *s == '+')) {
		s++;
		n--;
	}
	return (n == 3 && !strncasecmp(s, "nan", 3)) || (n == 3 && !strncasecmp(s, "inf", 3)) ||
	       (n == 8 && !strncasecmp(s, "infinity", 8));
}

#if defined(CSV_SSE2)
static inline int fast_field(const char *s, size_t len, float *out);
#endif

int csv_parse_float(float *out, const char *s, size_t len)
{
	if (!out || (!s && len))
		return APP_EINVAL;
	if (len == 0)
		return APP_EPARSE;
#if defined(CSV_SSE2)
	/* the same paths as fields: the SIMD one on a padded copy first */
	char pad[32] = {0};
	if (len < 16) {
		memcpy(pad, s, len);
		if (fast_field(pad, len, out))
			return 0;
	}
#endif
	if (is_nan_inf(s, len))
		return APP_ERANGE;
	int rc;
	float f;
	const char *q = parse_number(s, s + len, &f, &rc);
	if (!q || q != s + len)
		return APP_EPARSE;
	if (rc)
		return rc;
	*out = f;
	return 0;
}

/* ---- fields ---- */

/* Blanks around fields: spaces, and tabs unless tab is the delimiter. */
static inline int is_blank(char c, char delim)
{
	return c == ' ' || (c == '\t' && delim != '\t');
}

static inline const char *skip_sp(const char *p, const char *e, char delim)
{
	while (p < e && is_blank(*p, delim))
		p++;
	return p;
}

/*
 * Generic field scanner (slow path): from p (a field start) to the
 * delimiter or e. Writes the unquoted, trimmed text to buf (at most cap
 * bytes; *len may exceed cap, meaning truncated) and *next to the
 * delimiter or e. Returns 0 or APP_EPARSE (bad quoting, message in why).
 */
static int field_scan(const char *p, const char *e, char delim, char *buf, size_t cap, size_t *len,
		      const char **next, const char **why)
{
	size_t n = 0;
	p = skip_sp(p, e, delim);
	if (p < e && *p == '"') {
		p++;
		for (;;) {
			if (p >= e) {
				*why = "unterminated quoted field";
				return APP_EPARSE;
			}
			if (*p == '"') {
				if (p + 1 < e && p[1] == '"') {
					if (n < cap)
						buf[n] = '"';
					n++;
					p += 2;
					continue;
				}
				p++;
				break;
			}
			if (n < cap)
				buf[n] = *p;
			n++;
			p++;
		}
		p = skip_sp(p, e, delim);
		if (p < e && *p != delim) {
			*why = "text after a closing quote";
			return APP_EPARSE;
		}
	} else {
		const char *s = p;
		while (p < e && *p != delim) {
			if (*p == '"') {
				*why = "quote inside an unquoted field";
				return APP_EPARSE;
			}
			p++;
		}
		const char *t = p;
		while (t > s && is_blank(t[-1], delim))
			t--;
		n = (size_t)(t - s);
		memcpy(buf, s, n < cap ? n : cap);
	}
	*len = n;
	*next = p;
	return 0;
}

/* Printable excerpt of a field for messages. */
static void show(char *out, size_t outcap, const char *s, size_t n)
{
	size_t j = 0;
	for (size_t i = 0; i < n && j + 4 < outcap; i++) {
		if (i == CSV_SHOW_MAX) {
			out[j++] = '.';
			out[j++] = '.';
			out[j++] = '.';
			break;
		}
		unsigned char c = (unsigned char)s[i];
		out[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	out[j] = 0;
}

/* Counts the fields of a line (quote-aware, tolerant). */
static size_t count_fields(const char *s, const char *e, char delim)
{
	size_t n = 1;
	int inq = 0;
	for (const char *p = s; p < e; p++) {
		if (*p == '"')
			inq = !inq;
		else if (*p == delim && !inq)
			n++;
	}
	return n;
}

static int perr(struct csv_parser *p, struct train_err *err, int code, uint64_t col, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int perr(struct csv_parser *p, struct train_err *err, int code, uint64_t col, const char *fmt, ...)
{
	char what[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	p->err = code;
	return train_err_set(err, code, p->name, p->line, col, "%s", what);
}

/* ---- classes ---- */

static uint32_t label_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 16777619u;
	return h;
}

static int class_add(struct csv_parser *p, const char *s, size_t n, size_t *idx)
{
	size_t cap = p->o.max_classes;
	if (p->nclasses >= cap)
		return APP_ELIMIT;
	if (!p->classes) {
		if (!(p->classes = calloc(cap, sizeof *p->classes)) ||
		    !(p->class_len = calloc(cap, sizeof *p->class_len)))
			return APP_ENOMEM;
	}
	char *c = malloc(n + 1);
	if (!c)
		return APP_ENOMEM;
	memcpy(c, s, n);
	c[n] = 0;
	uint32_t h = label_hash(s, n) & (CSV_HT_SIZE - 1);
	while (p->ht[h])
		h = (h + 1) & (CSV_HT_SIZE - 1);
	p->ht[h] = (uint32_t)(p->nclasses + 1);
	p->classes[p->nclasses] = c;
	p->class_len[p->nclasses] = n;
	if (n == 1 && !is_blank(s[0], p->o.delimiter) && s[0] != '"')
		p->byte_class[(uint8_t)s[0]] = (uint16_t)(p->nclasses + 1);
	*idx = p->nclasses++;
	return 0;
}

/* Class index of label s[0..n); -1 when unknown. */
static long class_find(const struct csv_parser *p, const char *s, size_t n)
{
	uint32_t h = label_hash(s, n) & (CSV_HT_SIZE - 1);
	while (p->ht[h]) {
		size_t i = p->ht[h] - 1;
		if (p->class_len[i] == n && !memcmp(p->classes[i], s, n))
			return (long)i;
		h = (h + 1) & (CSV_HT_SIZE - 1);
	}
	return -1;
}

/* Label at q: sets *cls and returns the end of the field (at delim or e). */
static const char *parse_label(struct csv_parser *p, const char *q, const char *e, size_t col, uint32_t *cls,
			       struct train_err *err)
{
	char buf[DATASET_MAX_LABEL_LEN];
	const char *s, *next;
	const char delim = p->o.delimiter;
	size_t n;
	q = skip_sp(q, e, delim);
	if (q < e && *q == '"') {
		const char *why = "";
		if (field_scan(q, e, p->o.delimiter, buf, sizeof buf, &n, &next, &why) != 0) {
			perr(p, err, APP_EPARSE, col + 1, "%s", why);
			return NULL;
		}
		s = buf;
	} else {
		next = memchr(q, p->o.delimiter, (size_t)(e - q));
		if (!next)
			next = e;
		const char *t = next;
		while (t > q && is_blank(t[-1], delim))
			t--;
		s = q;
		n = (size_t)(t - q);
		if (memchr(q, '"', n)) {
			perr(p, err, APP_EPARSE, col + 1, "quote inside an unquoted field");
			return NULL;
		}
	}
	if (n == 0) {
		perr(p, err, APP_EPARSE, col + 1, "empty label");
		return NULL;
	}
	if (n > DATASET_MAX_LABEL_LEN) {
		perr(p, err, APP_ETOOBIG, col + 1, "label longer than %u bytes", DATASET_MAX_LABEL_LEN);
		return NULL;
	}
	size_t lc = p->last_class;
	if (lc < p->nclasses && p->class_len[lc] == n && !memcmp(p->classes[lc], s, n)) {
		*cls = (uint32_t)lc;
		return next;
	}
	long f = class_find(p, s, n);
	if (f < 0) {
		char sh[64];
		show(sh, sizeof sh, s, n);
		if (p->fixed) {
			perr(p, err, APP_EPARSE, col + 1, "label '%s' is not one of the model's %zu classes", sh,
			     p->nclasses);
			return NULL;
		}
		size_t idx;
		int r = class_add(p, s, n, &idx);
		if (r == APP_ELIMIT) {
			perr(p, err, APP_ELIMIT, col + 1, "too many classes: label '%s' would be class %zu (max %zu)",
			     sh, p->nclasses + 1, p->o.max_classes);
			return NULL;
		}
		if (r) {
			perr(p, err, r, col + 1, "out of memory");
			return NULL;
		}
		f = (long)idx;
	}
	p->last_class = (size_t)f;
	*cls = (uint32_t)f;
	return next;
}

/* ---- rows ---- */

static int grow(struct csv_parser *p, struct train_err *err)
{
	uint64_t row_bytes = (uint64_t)p->features * sizeof(float);
	uint64_t lim = p->o.max_rows;
	if (row_bytes && p->o.max_matrix / row_bytes < lim)
		lim = p->o.max_matrix / row_bytes;
	if (p->rows >= lim) {
		if (p->rows >= p->o.max_rows)
			return perr(p, err, APP_ETOOBIG, 0, "more than %llu rows", (unsigned long long)p->o.max_rows);
		return perr(p, err, APP_ETOOBIG, 0, "feature matrix over %llu bytes",
			    (unsigned long long)p->o.max_matrix);
	}
	uint64_t nc = p->cap ? (uint64_t)p->cap * 2 : 1024;
	if (nc > lim)
		nc = lim;
	if (nc > SIZE_MAX / (row_bytes ? row_bytes : 1) || nc > SIZE_MAX / sizeof(uint32_t))
		return perr(p, err, APP_ETOOBIG, 0, "matrix size overflow");
	float *x = realloc(p->x, (size_t)(nc * row_bytes) + 1);
	if (!x)
		return perr(p, err, APP_ENOMEM, 0, "out of memory for %llu rows", (unsigned long long)nc);
	p->x = x;
	uint32_t *y = realloc(p->y, (size_t)nc * sizeof(uint32_t));
	if (!y)
		return perr(p, err, APP_ENOMEM, 0, "out of memory for %llu rows", (unsigned long long)nc);
	p->y = y;
	p->cap = (size_t)nc;
	return 0;
}

/*
 * Makes the matrix resident ahead of the rows being written, CSV_PREFAULT
 * bytes at a time: one madvise(MADV_POPULATE_WRITE) call instead of a
 * page fault per page. Only a speed-up (failures are ignored), and never
 * further than CSV_PREFAULT ahead, so the peak RSS stays that of the rows.
 */
static void prefault(struct csv_parser *p)
{
	const size_t row_bytes = p->features * sizeof(float), cap = p->cap * row_bytes;
	size_t want = (p->rows + 1) * row_bytes;
	if (p->resident > want)
		return;
	size_t upto = (want > p->resident ? want : p->resident) + CSV_PREFAULT;
	if (upto > cap)
		upto = cap;
#if defined(MADV_POPULATE_WRITE)
	const uintptr_t page = 4096, x = (uintptr_t)p->x;
	const uintptr_t from = (x + p->resident) & ~(page - 1), to = (x + upto) & ~(page - 1);
	if (to > from && madvise((void *)from, to - from, MADV_POPULATE_WRITE) != 0 && errno == EINVAL)
		upto = SIZE_MAX; /* not supported: stop trying */
#endif
	p->resident = upto;
}

/*
 * A field that failed the fast path: quoted numbers, spaces, or an error
 * naming what is wrong. On success *v is set and *next is at the
 * delimiter or e.
 */
static int slow_field(struct csv_parser *p, const char *q, const char *e, size_t col, float *v,
		      const char **next, struct train_err *err)
{
	char buf[CSV_NUM_MAX + 1], sh[64];
	size_t n;
	const char *why = "";
	if (field_scan(q, e, p->o.delimiter, buf, CSV_NUM_MAX, &n, next, &why) != 0)
		return perr(p, err, APP_EPARSE, col + 1, "%s", why);
	if (n == 0)
		return perr(p, err, APP_EPARSE, col + 1, "empty field");
	show(sh, sizeof sh, buf, n < CSV_NUM_MAX ? n : CSV_NUM_MAX);
	if (n > CSV_NUM_MAX)
		return perr(p, err, APP_EPARSE, col + 1, "field '%s' longer than %u characters", sh, CSV_NUM_MAX);
	int rc = csv_parse_float(v, buf, n);
	if (rc == 0)
		return 0;
	if (is_nan_inf(buf, n))
		return perr(p, err, APP_EPARSE, col + 1, "NaN or infinite value '%s'", sh);
	if (rc == APP_ERANGE)
		return perr(p, err, APP_EPARSE, col + 1, "value '%s' out of float32 range", sh);
	return perr(p, err, APP_EPARSE, col + 1, "non-numeric field '%s'", sh);
}

static int ragged(struct csv_parser *p, const char *s, const char *e, size_t col, struct train_err *err)
{
	size_t n = count_fields(s, e, p->o.delimiter);
	if (p->first_source[0] && strcmp(p->first_source, p->name))
		return perr(p, err, APP_EPARSE, col + 1, "row has %zu fields, expected %zu (as in %s)", n, p->ncols,
			    p->first_source);
	return perr(p, err, APP_EPARSE, col + 1, "row has %zu fields, expected %zu", n, p->ncols);
}

/*
 * Parses one data row s..e (no line end), field by field (any quoting,
 * exact error positions); memory is readable up to lim (lim >= e; the
 * byte at e is not a digit).
 */
static int data_row_slow(struct csv_parser *p, const char *s, const char *e, const char *lim,
			 struct train_err *err)
{
	int r;
	float *row = p->x + p->rows * p->features;
	const char delim = p->o.delimiter;
	const size_t ncols = p->ncols, lc = p->label_col;
	uint32_t cls = 0;
	const char *q = s;
	for (size_t col = 0; col < ncols; col++) {
		if (col == lc) {
			q = parse_label(p, q, e, col, &cls, err);
			if (!q)
				return p->err;
		} else {
			q = skip_sp(q, e, delim);
			int rc;
			const char *n = parse_number(q, lim, row, &rc);
			if (n && !rc && (n == e || *n == delim)) {
				q = n;
			} else if ((r = slow_field(p, q, e, col, row, &q, err)) != 0) {
				return r;
			}
			row++;
		}
		if (col + 1 < ncols) {
			if (q >= e)
				return ragged(p, s, e, col + 1, err);
			q++; /* the delimiter */
		} else if (q < e) {
			return ragged(p, s, e, ncols, err);
		}
	}
	p->y[p->rows++] = cls;
	p->src_rows++;
	return 0;
}

/*
 * ---- fast paths ----
 *
 * A data row is first split: the offsets of its delimiters go to
 * p->bounds (bounds[0] = -1, bounds[c + 1] = end of column c, so column c
 * is s[bounds[c] + 1 .. bounds[c + 1])). Every field's bounds are then
 * known before it is parsed, and the conversions do not wait on each
 * other. Numeric fields of the common shape [+-]digits[.digits] (at most
 * 16 bytes with the sign, fewer than 16 digits, no exponent, no blanks)
 * are converted with SIMD: the digits are compacted (the dot squeezed out)
 * into a left-aligned 16-digit integer V (a sign counts as a leading
 * zero), so the value is V * 10^-(16 - n) where n is the number of bytes
 * before the dot. V is exact as a double: with at most 15 digits it is
 * W * 10^k, k >= 1, W < 10^(16 - k), so W * 5^k < 2^15 * 5^16 < 2^53 (or it
 * has a leading zero and V < 10^15). d = V * 10^-(16 - n) then gets the
 * Clinger test of parse_number (near_midpoint). Anything else goes to
 * parse_number (same results) and slow_field (the error messages), so the
 * fast paths change nothing but the speed.
 *
 * Levels: SSE2 (every x86-64): one field at a time. AVX-512 (F, BW, VL,
 * DQ, CD, VBMI2, with BMI1/2 and POPCNT; checked at run time): the
 * row split, four fields at a time, and a line loop for plain data rows
 * (lines_avx512). Other machines: parse_number for every field.
 */

/* Bytes the SIMD paths may read past the end of a row (see feed). */
#define CSV_ROW_SLACK 64u
/* Entries the row split may write past the last delimiter. */
#define CSV_BOUNDS_SLACK 8u

/*
 * The rounding test of parse_number on d = V * 10^-k (V exact, so d is
 * within 2 ulp of the true value): nonzero when a float rounding midpoint
 * may lie between them.
 */
static inline int near_midpoint(double d)
{
	uint64_t bits;
	memcpy(&bits, &d, 8);
	return (bits & 0x1FFFFFFFULL) - (0x10000000ULL - 4) <= 8;
}

#if defined(CSV_SSE2)
static inline unsigned popcount64(uint64_t x)
{
	x -= (x >> 1) & 0x5555555555555555ULL;
	x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
	x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
	return (unsigned)((x * 0x0101010101010101ULL) >> 56);
}

/* 10^-k as the nearest doubles, k = 0..16. */
static const double p10neg[17] = {1e0,  1e-1,  1e-2,  1e-3,  1e-4,  1e-5,  1e-6,  1e-7, 1e-8,
				  1e-9, 1e-10, 1e-11, 1e-12, 1e-13, 1e-14, 1e-15, 1e-16};

static const uint8_t lead_ff[32] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
				    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

/* Bytes 0..n-1 all ones, the others zero (n <= 16). */
static inline __m128i first_bytes(unsigned n)
{
	return _mm_loadu_si128((const __m128i *)(const void *)(lead_ff + 16 - n));
}

/* 16 digit values (most significant first) as an integer. */
static inline uint64_t digits16(__m128i t)
{
	const __m128i z = _mm_setzero_si128();
	const __m128i m10 = _mm_set_epi16(1, 10, 1, 10, 1, 10, 1, 10);
	const __m128i m100 = _mm_set_epi16(1, 100, 1, 100, 1, 100, 1, 100);
	const __m128i m10k = _mm_set_epi16(1, 10000, 1, 10000, 1, 10000, 1, 10000);
	__m128i d2 = _mm_packs_epi32(_mm_madd_epi16(_mm_unpacklo_epi8(t, z), m10),
				     _mm_madd_epi16(_mm_unpackhi_epi8(t, z), m10));
	__m128i d4 = _mm_madd_epi16(d2, m100);
	__m128i d8 = _mm_madd_epi16(_mm_packs_epi32(d4, d4), m10k);
	uint64_t two = (uint64_t)_mm_cvtsi128_si64(d8);
	return (two & 0xffffffffu) * 100000000u + (two >> 32);
}

/*
 * One field s[0..len) of the common shape, 16 bytes readable at s.
 * Returns 1 with *out set, or 0 when parse_number must decide.
 */
static inline int fast_field(const char *s, size_t len, float *out)
{
	if (len - 1 >= 16)
		return 0;
	const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);
	const __m128i t = _mm_sub_epi8(v, _mm_set1_epi8('0'));
	const __m128i isdig = _mm_cmpeq_epi8(_mm_min_epu8(t, _mm_set1_epi8(9)), t);
	const unsigned dig = (unsigned)_mm_movemask_epi8(isdig);
	const unsigned dot = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('.')));
	const unsigned neg = s[0] == '-', sign = neg | (s[0] == '+');
	const unsigned body = (1u << len) - 1, dots = body & dot;
	/* only digits, one dot not first, a sign first; a digit; not 16 digits */
	if ((body & ~(dig | dot | sign)) != 0 || (dots & (dots - 1)) != 0 || (dots & 1) != 0 ||
	    (body & dig) == 0 || (body & dig) == 0xffff)
		return 0;
	const unsigned n = (unsigned)__builtin_ctz(dots | (1u << len)); /* bytes before the dot */
	/* the digits (others zeroed), the dot squeezed out: from it on, every byte takes the next one */
	const __m128i u = _mm_and_si128(t, _mm_and_si128(isdig, first_bytes((unsigned)len))), before = first_bytes(n);
	const __m128i c = _mm_or_si128(_mm_and_si128(before, u), _mm_andnot_si128(before, _mm_srli_si128(u, 1)));
	const uint64_t m = digits16(c);
	double d = (double)(int64_t)m * p10neg[16 - n]; /* m exact: see "fast paths" */
	if (near_midpoint(d))
		return 0;
	float f = (float)d;
	uint32_t w;
	memcpy(&w, &f, 4);
	w |= neg << 31;
	memcpy(out, &w, 4);
	return 1;
}
#endif

#if defined(CSV_AVX512)
#define AVX512_TARGET __attribute__((target("popcnt,bmi,bmi2,avx512f,avx512bw,avx512vl,avx512dq,avx512cd,avx512vbmi2")))
#define ALWAYS_INLINE inline __attribute__((always_inline))

/*
 * Four fields of the common shape at once (quad_front), converted and
 * stored eight at a time (quads_finish). Lane j of a 512-bit vector holds
 * the 16 bytes from the start of field j (b[j] + 1), and the field ends at
 * the first delimiter in the lane (so fields of 16 bytes or more, and a
 * row's last column, go the other way). The lanes' byte masks are 16-bit
 * words of 64-bit integers; the word arithmetic below cannot borrow across
 * lanes because every word it subtracts from is nonzero (checked first,
 * or made so).
 */
struct quad {
	__m512i m;     /* lane j, low quadword: field j's digits as V (see "fast paths") */
	__m128i first; /* word j: the bit of field j's dot, or of its end: 2^n */
	unsigned neg;  /* bit j: field j is negative */
};

/* Fields not of the common shape make *bad nonzero. */
AVX512_TARGET static ALWAYS_INLINE struct quad quad_front(const char *s, const uint32_t *b, __m512i delim,
							  uint64_t *bad)
{
	const uint64_t L = 0x0001000100010001ULL, H = L << 15; /* low and high bit of each word */
	struct quad q;
	__m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(const void *)(s + (uint32_t)(b[0] + 1))));
	v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(s + b[1] + 1)), 1);
	v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(s + b[2] + 1)), 2);
	v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(s + b[3] + 1)), 3);
	const __m512i t = _mm512_sub_epi8(v, _mm512_set1_epi8('0'));
	const uint64_t dig = _mm512_cmple_epu8_mask(t, _mm512_set1_epi8(9));
	const uint64_t dot = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('.'));
	const uint64_t del = _mm512_cmpeq_epi8_mask(v, delim);
	const uint64_t neg = _mm512_mask_cmpeq_epi8_mask(L, v, _mm512_set1_epi8('-'));
	const uint64_t end = del & ~(del - L);         /* the first delimiter */
	const uint64_t body = end - L;                 /* the bytes before it */
	const uint64_t digs = dig & body;
	const uint64_t stop = (dot & body) | end;      /* nonzero in every lane */
	const uint64_t first = stop & ~(stop - L);     /* the first dot, or the end */
	*bad |= (((del - L) & ~del) |                  /* a lane without a delimiter */
		 ((digs - L) & ~digs)) & H;            /* or without a digit */
	*bad |= body & ~(dig | dot | neg);             /* only digits, dots, a leading '-' */
	*bad |= stop & (stop - L) & ~end;              /* a second dot */
	*bad |= first & L;                             /* empty, or a dot first */
	/* done now: a compiler sinking this past the vector code keeps its masks in (spilled) registers */
	__asm__("" : "+r"(*bad));
	q.first = _mm_cvtsi64_si128((long long)first);
	q.neg = (unsigned)_pext_u64(neg, L);
	/* squeeze the dot out: from it on, every byte takes the next one */
	const __m512i u = _mm512_maskz_mov_epi8(digs, t);
	const __m512i c = _mm512_mask_mov_epi8(u, body & ~(first - L), _mm512_bsrli_epi128(u, 1));
	/* 16 digits per lane to an integer, in the low quadword of the lane */
	const __m512i d2 = _mm512_maddubs_epi16(c, _mm512_set1_epi16(0x010a));
	const __m512i d4 = _mm512_madd_epi16(d2, _mm512_set1_epi32(0x00010064));
	const __m512i d8 = _mm512_madd_epi16(_mm512_packus_epi32(d4, d4), _mm512_set1_epi32(0x00012710));
	q.m = _mm512_add_epi64(_mm512_mul_epu32(d8, _mm512_set1_epi64(100000000)), _mm512_srli_epi64(d8, 32));
	return q;
}

/*
 * Converts the fields of two quads (the same one twice for four), stores
 * the floats selected by keep (garbage when it fails) and returns 1 when
 * none is near a float rounding midpoint (the test of near_midpoint,
 * eight at once).
 */
AVX512_TARGET static ALWAYS_INLINE int quads_finish(const struct quad *a, const struct quad *b, __mmask8 keep,
						    float *out)
{
	const __m512i m = _mm512_permutex2var_epi64(a->m, _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0), b->m);
	/* times 10^-(16 - n), n = bytes before the dot = 63 - lzcnt(first word) */
	const __m512i n = _mm512_cvtepu16_epi64(_mm_unpacklo_epi64(a->first, b->first));
	const __m512i k = _mm512_sub_epi64(_mm512_lzcnt_epi64(n), _mm512_set1_epi64(47));
	const __m512d pw = _mm512_permutex2var_pd(_mm512_loadu_pd(p10neg), k, _mm512_loadu_pd(p10neg + 8));
	const __m512d d = _mm512_mul_pd(_mm512_cvtepu64_pd(m), pw);
	const __m512i low = _mm512_and_si512(_mm512_castpd_si512(d), _mm512_set1_epi64(0x1FFFFFFF));
	const __mmask8 mid = _mm512_cmple_epu64_mask(_mm512_sub_epi64(low, _mm512_set1_epi64(0x10000000 - 4)),
						     _mm512_set1_epi64(8));
	const __m256 f = _mm512_cvtpd_ps(d);
	const __mmask8 neg = (__mmask8)(a->neg | b->neg << 4);
	_mm256_mask_storeu_ps(out, keep, _mm256_mask_xor_ps(f, neg, f, _mm256_set1_ps(-0.0f)));
	return (mid & keep) == 0;
}

/*
 * Numeric columns [c, end) (end <= the row's last column) of the row at s
 * into out[0..end - c), eight and four at a time while they take the fast
 * path. Returns the columns done (0 mod 4).
 */
AVX512_TARGET static ALWAYS_INLINE size_t quads(const char *s, const uint32_t *b, size_t c, size_t end, __m512i vd,
					       float *out)
{
	const size_t c0 = c;
	for (; c + 8 <= end; c += 8) {
		uint64_t bad = 0;
		const struct quad qa = quad_front(s, b + c, vd, &bad), qb = quad_front(s, b + c + 4, vd, &bad);
		if (!quads_finish(&qa, &qb, 0xff, out + (c - c0)) || bad)
			return c - c0;
	}
	for (; c + 4 <= end; c += 4) {
		uint64_t bad = 0;
		const struct quad qa = quad_front(s, b + c, vd, &bad);
		if (!quads_finish(&qa, &qa, 0x0f, out + (c - c0)) || bad)
			break;
	}
	return c - c0;
}

/*
 * Numeric columns [c, end) of the row at s into out[0..end - c), four at
 * a time while they take the fast path. Returns the columns done.
 */
AVX512_TARGET static size_t fields_avx512(const char *s, const uint32_t *b, size_t c, size_t end, char delim,
					  float *out)
{
	return quads(s, b, c, end, _mm512_set1_epi8(delim), out);
}


static const uint8_t iota64[64] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
				    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
				    32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47,
				    48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63};

/*
 * Writes off + the positions of the bits of m to w[0..count) (room for
 * 8 more) and returns the count.
 */
AVX512_TARGET static ALWAYS_INLINE size_t put_offsets(uint32_t *w, uint64_t m, size_t off)
{
	const size_t cnt = (size_t)_mm_popcnt_u64(m);
	const __m256i base = _mm256_set1_epi32((int)off);
	__m512i at = _mm512_maskz_compress_epi8(m, _mm512_loadu_si512((const void *)iota64)); /* packed positions */
	size_t i = 0;
	do { /* 8 at a time, the first 8 unconditionally */
		_mm256_storeu_si256((__m256i *)(void *)(w + i),
				    _mm256_add_epi32(base, _mm256_cvtepu8_epi32(_mm512_castsi512_si128(at))));
		at = _mm512_alignr_epi32(_mm512_setzero_si512(), at, 2);
		i += 8;
	} while (i < cnt);
	return cnt;
}

/* scan_row with AVX-512. */
AVX512_TARGET static size_t scan_row_avx512(uint32_t *dpos, size_t need, const char *s, size_t len, char delim)
{
	const __m512i vd = _mm512_set1_epi8(delim), vq = _mm512_set1_epi8('"');
	size_t k = 0;
	for (size_t off = 0; off < len; off += 64) {
		const __m512i v = _mm512_loadu_si512((const void *)(s + off));
		const uint64_t keep = len - off < 64 ? _bzhi_u64(~0ULL, (unsigned)(len - off)) : ~0ULL;
		const uint64_t m = _mm512_mask_cmpeq_epi8_mask(keep, v, vd);
		if (_mm512_mask_cmpeq_epi8_mask(keep, v, vq) || (size_t)_mm_popcnt_u64(m) > need - k)
			return need + 1;
		k += put_offsets(dpos + k, m, off);
	}
	return k;
}

/*
 * Numeric columns [c, end) of the split row at s into out, all on the
 * fast paths (quads, fast_field). Returns 1, or 0 if one is not.
 */
AVX512_TARGET static ALWAYS_INLINE int numbers_avx512(const char *s, const uint32_t *b, size_t c, size_t end,
						     size_t last, __m512i vd, float *out)
{
	const size_t done = quads(s, b, c, end < last ? end : last, vd, out);
	for (c += done, out += done; c < end; c++, out++) {
		const char *fs = s + (uint32_t)(b[c] + 1);
		if (!fast_field(fs, (size_t)(s + b[c + 1] - fs), out))
			return 0;
	}
	return 1;
}

/*
 * The AVX-512 line loop: parses the lines at s (data rows after the
 * first line of a source) while they are plain: no quotes, comments or
 * blank lines, the schema's field count, every number on a fast path, a
 * label already known. Returns the bytes done (whole lines); the caller
 * does the next line the general way (new labels, errors, ...), and the
 * lines near end: a line's last 64-byte block may end 63 bytes past its
 * newline, and a field's 16 bytes 15 bytes past it.
 */
AVX512_TARGET static size_t lines_avx512(struct csv_parser *p, const char *s0, const char *end)
{
	const __m512i vd = _mm512_set1_epi8(p->o.delimiter), vn = _mm512_set1_epi8('\n'), vq = _mm512_set1_epi8('"');
	const size_t need = p->ncols - 1, lc = p->label_col, row_bytes = p->features * sizeof(float);
	uint32_t *b = p->bounds;
	const char *s = s0;
	for (;;) {
		/* split the line: the delimiters to b[1..], up to the newline */
		size_t k = 0, off = 0, len;
		for (;;) {
			if (64 + 16 > (size_t)(end - (s + off)) || off > p->o.max_line)
				return (size_t)(s - s0);
			const __m512i v = _mm512_loadu_si512((const void *)(s + off));
			const uint64_t nl = _mm512_cmpeq_epi8_mask(v, vn);
			const uint64_t keep = _blsi_u64(nl) - 1; /* before the newline, or all */
			const uint64_t m = _mm512_mask_cmpeq_epi8_mask(keep, v, vd);
			if (_mm512_mask_cmpeq_epi8_mask(keep, v, vq) || (size_t)_mm_popcnt_u64(m) > need - k)
				return (size_t)(s - s0);
			k += put_offsets(b + 1 + k, m, off);
			if (nl) {
				len = off + _tzcnt_u64(nl);
				break;
			}
			off += 64;
		}
		const char *e = s + len;
		if (len > 0 && e[-1] == '\r')
			e--;
		if (k != need || len > p->o.max_line || p->rows == p->cap || e == s || is_blank(*s, p->o.delimiter) ||
		    *s == '#')
			return (size_t)(s - s0);
		b[need + 1] = (uint32_t)(e - s);
		/* the label: known, no blanks around it */
		const char *ls = s + (uint32_t)(b[lc] + 1), *le = s + b[lc + 1];
		size_t cls = p->byte_class[(uint8_t)*ls];
		if (le - ls == 1 && cls != 0) {
			cls--;
		} else {
			long f;
			if (le == ls || is_blank(ls[0], p->o.delimiter) || is_blank(le[-1], p->o.delimiter) ||
			    (f = class_find(p, ls, (size_t)(le - ls))) < 0)
				return (size_t)(s - s0);
			cls = (size_t)f;
		}
		if ((p->rows + 1) * row_bytes > p->resident)
			prefault(p);
		float *row = p->x + p->rows * p->features;
		if (!numbers_avx512(s, b, 0, lc, need, vd, row) ||
		    !numbers_avx512(s, b, lc + 1, need + 1, need, vd, row + lc))
			return (size_t)(s - s0);
		p->y[p->rows++] = (uint32_t)cls;
		p->src_rows++;
		p->line++;
		s += len + 1;
	}
}
#endif

/*
 * The row split: offsets of the delimiters in s[0..len) into dpos (room
 * for need + CSV_BOUNDS_SLACK), CSV_ROW_SLACK bytes readable past len.
 * Returns the count, or need + 1 as soon as there are more than need or a
 * quote is seen.
 */
static size_t scan_row(uint32_t *dpos, size_t need, const char *s, size_t len, char delim)
{
	size_t k = 0;
#if defined(CSV_SSE2)
	const __m128i vd = _mm_set1_epi8(delim), vq = _mm_set1_epi8('"');
	for (size_t off = 0; off < len; off += 64) {
		uint64_t m = 0, q = 0;
		for (unsigned i = 0; i < 4; i++) {
			__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + off + 16 * i));
			m |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, vd)) << (16 * i);
			q |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, vq)) << (16 * i);
		}
		if (len - off < 64) {
			m &= (1ULL << (len - off)) - 1;
			q &= (1ULL << (len - off)) - 1;
		}
		const size_t cnt = popcount64(m);
		if (q || cnt > need - k)
			return need + 1;
		/* eight offsets unconditionally (most blocks have fewer), then the rest */
		uint32_t *w = dpos + k;
		for (size_t i = 0; i < 8; i++) {
			w[i] = (uint32_t)(off + (size_t)__builtin_ctzll(m | (1ULL << 63)));
			m &= m - 1;
		}
		for (size_t i = 8; i < cnt; i++) {
			w[i] = (uint32_t)(off + (size_t)__builtin_ctzll(m));
			m &= m - 1;
		}
		k += cnt;
	}
#else
	for (size_t i = 0; i < len; i++) {
		if (s[i] == delim) {
			if (k == need)
				return need + 1;
			dpos[k++] = (uint32_t)i;
		} else if (s[i] == '"') {
			return need + 1;
		}
	}
#endif
	return k;
}

/*
 * Numeric columns [c, end) of the split row at s (bounds b) into
 * out[0..end - c). Returns 0 or the error of the first bad field.
 */
static int fields(struct csv_parser *p, const char *s, const uint32_t *b, size_t c, size_t end, float *out,
		  struct train_err *err)
{
	int r;
	while (c < end) {
#if defined(CSV_AVX512)
		const size_t last = p->ncols - 1; /* ends at the row's end, not a delimiter */
		if (p->simd == CSV_SIMD_AVX512 && c < last) {
			size_t done = fields_avx512(s, b, c, end < last ? end : last, p->o.delimiter, out);
			c += done;
			out += done;
			if (c == end)
				break;
		}
#endif
		const char *fs = s + (uint32_t)(b[c] + 1), *fe = s + b[c + 1];
#if defined(CSV_SSE2)
		if (!fast_field(fs, (size_t)(fe - fs), out))
#endif
		{
			int rc;
			const char *n = parse_number(fs, fe + CSV_ROW_SLACK, out, &rc);
			if (n != fe || rc) {
				const char *next;
				if ((r = slow_field(p, fs, fe, c, out, &next, err)) != 0)
					return r;
			}
		}
		c++;
		out++;
	}
	return 0;
}

/*
 * A data row s..e (no line end; CSV_ROW_SLACK bytes readable past e).
 * Rows with quotes, a wrong field count or any field the fast paths
 * cannot take go field by field through data_row_slow, which also
 * produces the error messages.
 */
static int data_row(struct csv_parser *p, const char *s, const char *e, struct train_err *err)
{
	int r;
	if (p->rows == p->cap && (r = grow(p, err)) != 0)
		return r;
	if ((p->rows + 1) * p->features * sizeof(float) > p->resident)
		prefault(p);
	const size_t need = p->ncols - 1, lc = p->label_col, len = (size_t)(e - s);
	uint32_t *b = p->bounds;
	if (!b || len >= UINT32_MAX)
		return data_row_slow(p, s, e, e + CSV_ROW_SLACK, err);
	size_t k;
#if defined(CSV_AVX512)
	if (p->simd == CSV_SIMD_AVX512)
		k = scan_row_avx512(b + 1, need, s, len, p->o.delimiter);
	else
#endif
		k = scan_row(b + 1, need, s, len, p->o.delimiter);
	if (k != need)
		return data_row_slow(p, s, e, e + CSV_ROW_SLACK, err);
	b[need + 1] = (uint32_t)len;
	float *row = p->x + p->rows * p->features;
	uint32_t cls;
	const char *ls = s + (uint32_t)(b[lc] + 1), *le = s + b[lc + 1];
	uint16_t one = p->byte_class[(uint8_t)*ls];
	if ((r = fields(p, s, b, 0, lc, row, err)) != 0)
		return r;
	if (le - ls == 1 && one != 0)
		cls = one - 1u;
	else if (!parse_label(p, ls, le, lc, &cls, err))
		return p->err;
	if ((r = fields(p, s, b, lc + 1, need + 1, row + lc, err)) != 0)
		return r;
	p->y[p->rows++] = cls;
	p->src_rows++;
	return 0;
}

/* Splits a line into trimmed, unquoted fields (header handling). */
static int split_fields(struct csv_parser *p, const char *s, const char *e, char ***out, size_t *nout,
			struct train_err *err)
{
	size_t n = count_fields(s, e, p->o.delimiter);
	char **f = NULL;
	int r;
	*out = NULL;
	*nout = 0;
	if (n > p->o.max_features + 1)
		return perr(p, err, APP_ETOOBIG, 0, "%zu columns, more than the cap of %zu", n, p->o.max_features + 1);
	if (!(f = calloc(n, sizeof *f)))
		return perr(p, err, APP_ENOMEM, 0, "out of memory");
	const char *q = s;
	for (size_t i = 0; i < n; i++) {
		char buf[DATASET_MAX_LABEL_LEN];
		size_t len;
		const char *next, *why = "";
		if (field_scan(q, e, p->o.delimiter, buf, sizeof buf, &len, &next, &why) != 0) {
			r = perr(p, err, APP_EPARSE, i + 1, "%s", why);
			goto fail;
		}
		if (len > DATASET_MAX_LABEL_LEN) {
			r = perr(p, err, APP_ETOOBIG, i + 1, "field longer than %u bytes in the first line",
				 DATASET_MAX_LABEL_LEN);
			goto fail;
		}
		if (!(f[i] = malloc(len + 1))) {
			r = perr(p, err, APP_ENOMEM, 0, "out of memory");
			goto fail;
		}
		memcpy(f[i], buf, len);
		f[i][len] = 0;
		q = next < e ? next + 1 : e;
		if (next >= e && i + 1 < n) {
			/* quote-aware count disagreed with the scanner */
			r = perr(p, err, APP_EPARSE, i + 1, "unbalanced quotes");
			goto fail;
		}
	}
	*out = f;
	*nout = n;
	return 0;
fail:
	for (size_t i = 0; i < n; i++)
		free(f[i]);
	free(f);
	return r;
}

static void free_fields(char **f, size_t n)
{
	if (!f)
		return;
	for (size_t i = 0; i < n; i++)
		free(f[i]);
	free(f);
}

static int cmp_str_idx(const void *a, const void *b, void *arg)
{
	char **f = arg;
	return strcmp(f[*(const size_t *)a], f[*(const size_t *)b]);
}

/* Checks for duplicate names; returns 0 or the error. */
static int check_dups(struct csv_parser *p, char **f, size_t n, struct train_err *err)
{
	size_t *ix = malloc(n * sizeof *ix);
	if (!ix)
		return perr(p, err, APP_ENOMEM, 0, "out of memory");
	for (size_t i = 0; i < n; i++)
		ix[i] = i;
	qsort_r(ix, n, sizeof *ix, cmp_str_idx, f);
	int r = 0;
	for (size_t i = 1; i < n; i++) {
		if (!strcmp(f[ix[i]], f[ix[i - 1]])) {
			size_t a = ix[i] < ix[i - 1] ? ix[i] : ix[i - 1];
			size_t b = ix[i] < ix[i - 1] ? ix[i - 1] : ix[i];
			char sh[64];
			show(sh, sizeof sh, f[a], strlen(f[a]));
			r = perr(p, err, APP_EPARSE, b + 1, "duplicate header name '%s' (also column %zu)", sh, a + 1);
			break;
		}
		if (!f[ix[i]][0] || !f[ix[i - 1]][0]) {
			r = perr(p, err, APP_EPARSE, (!f[ix[i]][0] ? ix[i] : ix[i - 1]) + 1, "empty header name");
			break;
		}
	}
	if (!r && n == 1 && !f[0][0])
		r = perr(p, err, APP_EPARSE, 1, "empty header name");
	free(ix);
	return r;
}

/* The first content line of a source: schema, header detection. */
static int first_line(struct csv_parser *p, const char *s, const char *e, struct train_err *err)
{
	char **f = NULL;
	size_t n = 0;
	int r;
	if ((r = split_fields(p, s, e, &f, &n, err)) != 0)
		return r;
	if (!p->have_schema) {
		if (n < 2) {
			r = perr(p, err, APP_EPARSE, 0, "need at least 2 columns (features and a label), found %zu", n);
			goto out;
		}
		if (n - 1 > p->o.max_features) {
			r = perr(p, err, APP_ETOOBIG, 0, "%zu features, more than the cap of %zu", n - 1,
				 p->o.max_features);
			goto out;
		}
		p->ncols = n;
		p->features = n - 1;
		if (p->label_name) {
			if (p->o.header == CSV_HEADER_NO) {
				r = perr(p, err, APP_EINVAL, 0, "label column '%s' given by name but header=no",
					 p->label_name);
				goto out;
			}
			size_t i;
			for (i = 0; i < n && strcmp(f[i], p->label_name); i++)
				;
			if (i == n) {
				char sh[64];
				show(sh, sizeof sh, p->label_name, strlen(p->label_name));
				r = perr(p, err, APP_EINVAL, 0, "no column named '%s' in the header", sh);
				goto out;
			}
			p->label_col = i;
		} else if (p->o.label_index == CSV_LABEL_LAST) {
			p->label_col = n - 1;
		} else if (p->o.label_index < 0 || (size_t)p->o.label_index >= n) {
			r = perr(p, err, APP_EINVAL, 0, "label column %ld out of range (%zu columns, 0-based)",
				 p->o.label_index, n);
			goto out;
		} else {
			p->label_col = (size_t)p->o.label_index;
		}
		if (!(p->bounds = malloc((n + 1 + CSV_BOUNDS_SLACK) * sizeof *p->bounds))) {
			r = perr(p, err, APP_ENOMEM, 0, "out of memory");
			goto out;
		}
		p->bounds[0] = UINT32_MAX; /* column 0 starts at offset 0 */
		p->have_schema = 1;
		snprintf(p->first_source, sizeof p->first_source, "%s", p->name);
	} else if (n != p->ncols) {
		r = perr(p, err, APP_EPARSE, 0, "%zu columns, expected %zu as in %s", n, p->ncols, p->first_source);
		goto out;
	}
	int header;
	if (p->o.header == CSV_HEADER_YES || p->label_name)
		header = 1;
	else if (p->o.header == CSV_HEADER_NO)
		header = 0;
	else {
		header = 0;
		for (size_t i = 0; i < n && !header; i++) {
			float v;
			if (i != p->label_col && csv_parse_float(&v, f[i], strlen(f[i])) == APP_EPARSE &&
			    !is_nan_inf(f[i], strlen(f[i])))
				header = 1;
		}
	}
	if (header) {
		if ((r = check_dups(p, f, n, err)) != 0)
			goto out;
		if (!p->names) {
			if (!(p->names = calloc(p->features, sizeof *p->names))) {
				r = perr(p, err, APP_ENOMEM, 0, "out of memory");
				goto out;
			}
			for (size_t i = 0, j = 0; i < n; i++) {
				if (i == p->label_col) {
					p->label_hdr = f[i];
				} else {
					p->names[j++] = f[i];
				}
				f[i] = NULL;
			}
		} else {
			for (size_t i = 0, j = 0; i < n; i++) {
				const char *want = i == p->label_col ? p->label_hdr : p->names[j++];
				if (strcmp(f[i], want)) {
					char a[64], b[64];
					show(a, sizeof a, f[i], strlen(f[i]));
					show(b, sizeof b, want, strlen(want));
					r = perr(p, err, APP_EPARSE, i + 1, "header '%s' differs from '%s' in %s", a, b,
						 p->first_source);
					goto out;
				}
			}
		}
		r = 0;
	} else {
		r = data_row(p, s, e, err);
	}
out:
	free_fields(f, n);
	return r;
}

/* One line s..e (without the '\n'; CSV_ROW_SLACK bytes readable past e). */
static int do_line(struct csv_parser *p, const char *s, const char *e, struct train_err *err)
{
	const char delim = p->o.delimiter;
	if (e > s && e[-1] == '\r')
		e--;
	const char *t = skip_sp(s, e, delim);
	if (t == e || *t == '#')
		return 0;
	if (!p->first_line_done) {
		p->first_line_done = 1;
		return first_line(p, s, e, err);
	}
	return data_row(p, s, e, err);
}

/*
 * The fast paths this CPU can run (see "fast paths"). The environment
 * variable APPLIANCE_CSV_SIMD=base forces the baseline paths (tests run both
 * on any CPU; also a way to rule the wide paths out when diagnosing).
 */
static int simd_level(void)
{
	const char *force = getenv("APPLIANCE_CSV_SIMD");
	if (force && strcmp(force, "base") == 0)
		return CSV_SIMD_BASE;
#if defined(CSV_AVX512)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("popcnt") && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") &&
	    __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
	    __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512vbmi2"))
		return CSV_SIMD_AVX512;
#endif
	return CSV_SIMD_BASE;
}

int csv_parser_new(struct csv_parser **out, const struct csv_options *o, struct train_err *err)
{
	int r = APP_EINVAL;
	struct csv_parser *p = NULL;
	if (!out || !o)
		return train_err_set(err, APP_EINVAL, NULL, 0, 0, "no options");
	*out = NULL;
	char d = o->delimiter;
	if (d == 0 || d == '"' || d == '#' || d == ' ' || d == '\r' || d == '\n' || d == '.' ||
	    d == '+' || d == '-' || is_digit(d) || d == 'e' || d == 'E')
		return train_err_set(err, r, NULL, 0, 0, "delimiter not allowed");
	if (o->max_line == 0 || o->max_line > CSV_MAX_LINE_LIMIT || o->max_classes == 0 ||
	    o->max_classes > DATASET_MAX_CLASSES || o->max_features == 0 ||
	    o->max_features > DATASET_MAX_FEATURES || o->max_rows == 0 || o->min_classes == 0)
		return train_err_set(err, r, NULL, 0, 0, "csv caps out of range");
	if (o->label_name && strlen(o->label_name) > DATASET_MAX_LABEL_LEN)
		return train_err_set(err, r, NULL, 0, 0, "label column name too long");
	if (o->classes && (o->nclasses == 0 || o->nclasses > o->max_classes))
		return train_err_set(err, r, NULL, 0, 0, "class list size out of range");
	r = APP_ENOMEM;
	if (!(p = calloc(1, sizeof *p)))
		goto nomem;
	p->o = *o;
	p->o.label_name = NULL;
	p->simd = simd_level();
	p->o.classes = NULL;
	if (o->label_name && !(p->label_name = strdup(o->label_name)))
		goto nomem;
	p->carry_cap = o->max_line + 1 + CSV_ROW_SLACK;
	if (!(p->carry = calloc(1, p->carry_cap)))
		goto nomem;
	if (o->classes) {
		for (size_t i = 0; i < o->nclasses; i++) {
			size_t len = o->classes[i] ? strlen(o->classes[i]) : 0, idx;
			if (len == 0 || len > DATASET_MAX_LABEL_LEN || class_find(p, o->classes[i], len) >= 0) {
				r = train_err_set(err, APP_EINVAL, NULL, 0, 0, "bad class list");
				goto fail;
			}
			if (class_add(p, o->classes[i], len, &idx) != 0)
				goto nomem;
		}
		p->fixed = 1;
	}
	*out = p;
	return 0;
nomem:
	r = train_err_set(err, APP_ENOMEM, NULL, 0, 0, "out of memory");
fail:
	csv_parser_free(p);
	return r;
}

void csv_parser_free(struct csv_parser *p)
{
	if (!p)
		return;
	free(p->label_name);
	if (p->names)
		for (size_t i = 0; i < p->features; i++)
			free(p->names[i]);
	free(p->names);
	free(p->label_hdr);
	free(p->x);
	free(p->y);
	if (p->classes)
		for (size_t i = 0; i < p->nclasses; i++)
			free(p->classes[i]);
	free(p->classes);
	free(p->class_len);
	free(p->carry);
	free(p->bounds);
	free(p);
}

int csv_parser_begin(struct csv_parser *p, const char *name, struct train_err *err)
{
	if (!p)
		return APP_EINVAL;
	if (p->err)
		return APP_ESTATE;
	if (p->in_source || p->finished)
		return train_err_set(err, APP_ESTATE, name, 0, 0, "previous source not ended");
	snprintf(p->name, sizeof p->name, "%s", name ? name : "(input)");
	p->in_source = 1;
	p->first_line_done = 0;
	p->line = 1;
	p->src_rows = 0;
	p->carry_len = 0;
	return 0;
}

/* Parses the carried line (its '\n' is added; the slack after it stays readable). */
static int carried_line(struct csv_parser *p, struct train_err *err)
{
	p->carry[p->carry_len] = '\n';
	int r = do_line(p, p->carry, p->carry + p->carry_len, err);
	p->carry_len = 0;
	return r;
}

int csv_parser_feed(struct csv_parser *p, const uint8_t *data, size_t len, struct train_err *err)
{
	int r;
	if (!p || (len && !data))
		return APP_EINVAL;
	if (p->err)
		return APP_ESTATE;
	if (!p->in_source)
		return train_err_set(err, APP_ESTATE, NULL, 0, 0, "feed outside a source");
	if (len > p->o.max_bytes - p->bytes || p->bytes > p->o.max_bytes)
		return perr(p, err, APP_ETOOBIG, 0, "input over %llu bytes", (unsigned long long)p->o.max_bytes);
	p->bytes += len;
	const char *s = (const char *)data, *end = s + len;
	if (p->carry_len) {
		const char *nl = memchr(s, '\n', len);
		size_t take = nl ? (size_t)(nl - s) : len;
		if (take > p->o.max_line - p->carry_len)
			return perr(p, err, APP_ETOOBIG, 0, "line longer than %zu bytes", p->o.max_line);
		memcpy(p->carry + p->carry_len, s, take);
		p->carry_len += take;
		if (!nl)
			return 0;
		if ((r = carried_line(p, err)) != 0)
			return r;
		p->line++;
		s = nl + 1;
	}
	while (s < end) {
#if defined(CSV_AVX512)
		if (p->simd == CSV_SIMD_AVX512 && p->first_line_done) {
			s += lines_avx512(p, s, end);
			if (s == end)
				break;
		}
#endif
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
		if (n > p->o.max_line)
			return perr(p, err, APP_ETOOBIG, 0, "line longer than %zu bytes", p->o.max_line);
		if (!nl) {
			memcpy(p->carry, s, n);
			p->carry_len = n;
			break;
		}
		/* the fast paths read up to CSV_ROW_SLACK bytes past a line: near the end, copy it */
		if (CSV_ROW_SLACK >= (size_t)(end - nl)) {
			memcpy(p->carry, s, n);
			p->carry_len = n;
			r = carried_line(p, err);
		} else {
			r = do_line(p, s, nl, err);
		}
		if (r != 0)
			return r;
		p->line++;
		s = nl + 1;
	}
	return 0;
}

int csv_parser_end(struct csv_parser *p, struct train_err *err)
{
	int r;
	if (!p)
		return APP_EINVAL;
	if (p->err)
		return APP_ESTATE;
	if (!p->in_source)
		return train_err_set(err, APP_ESTATE, NULL, 0, 0, "no source to end");
	if (p->carry_len && (r = carried_line(p, err)) != 0)
		return r;
	p->in_source = 0;
	if (p->src_rows == 0) {
		p->line = 0;
		return perr(p, err, APP_EPARSE, 0, p->first_line_done ? "no data rows" : "empty file");
	}
	return 0;
}

int csv_parser_finish(struct csv_parser *p, struct dataset **out, struct train_err *err)
{
	struct dataset *d = NULL;
	if (!p || !out)
		return APP_EINVAL;
	*out = NULL;
	if (p->err)
		return APP_ESTATE;
	if (p->in_source || p->finished || !p->rows)
		return train_err_set(err, APP_ESTATE, NULL, 0, 0, "no complete source");
	p->line = 0;
	if (p->nclasses < p->o.min_classes) {
		char sh[64];
		show(sh, sizeof sh, p->classes[0], p->class_len[0]);
		if (p->nclasses == 1)
			return perr(p, err, APP_EPARSE, 0, "a single class ('%s'): need at least %zu", sh,
				    p->o.min_classes);
		return perr(p, err, APP_EPARSE, 0, "%zu classes: need at least %zu", p->nclasses, p->o.min_classes);
	}
	if (!(d = calloc(1, sizeof *d)))
		return perr(p, err, APP_ENOMEM, 0, "out of memory");
	/* Shrink to size (mremap for large blocks: no copy, no RSS peak). */
	float *x = realloc(p->x, p->rows * p->features * sizeof(float) + 1);
	if (x)
		p->x = x;
	uint32_t *y = realloc(p->y, p->rows * sizeof(uint32_t));
	if (y)
		p->y = y;
	d->rows = p->rows;
	d->features = p->features;
	d->x = p->x;
	d->y = p->y;
	d->nclasses = p->nclasses;
	d->classes = p->classes;
	d->names = p->names;
	d->label_name = p->label_hdr;
	p->x = NULL;
	p->y = NULL;
	p->classes = NULL;
	p->names = NULL;
	p->label_hdr = NULL;
	p->finished = 1;
	*out = d;
	return 0;
}

static int feed_fd(struct csv_parser *p, int fd, const char *path, uint8_t *buf, struct train_err *err)
{
	int r;
	for (;;) {
		ssize_t n = read(fd, buf, CSV_READ_BUF);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return train_err_set(err, APP_EIO, path, 0, 0, "read failed: %s", strerror(errno));
		}
		if (n == 0)
			return 0;
		if ((r = csv_parser_feed(p, buf, (size_t)n, err)) != 0)
			return r;
	}
}

int csv_read_files(struct dataset **out, const char *const *paths, size_t npaths, const struct csv_options *o,
		   struct train_err *err)
{
	int r, fd = -1;
	struct csv_parser *p = NULL;
	uint8_t *buf = NULL;
	if (!out || !paths || !npaths)
		return train_err_set(err, APP_EINVAL, NULL, 0, 0, "no input files");
	*out = NULL;
	if ((r = csv_parser_new(&p, o, err)) != 0)
		goto out;
	r = train_err_set(err, APP_ENOMEM, NULL, 0, 0, "out of memory");
	if (!(buf = malloc(CSV_READ_BUF)))
		goto out;
	for (size_t i = 0; i < npaths; i++) {
		fd = open(paths[i], O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			r = train_err_set(err, errno == ENOENT ? APP_ENOENT : APP_EIO, paths[i], 0, 0,
					  "cannot open: %s", strerror(errno));
			goto out;
		}
		if ((r = csv_parser_begin(p, paths[i], err)) != 0 || (r = feed_fd(p, fd, paths[i], buf, err)) != 0 ||
		    (r = csv_parser_end(p, err)) != 0)
			goto out;
		close(fd);
		fd = -1;
	}
	r = csv_parser_finish(p, out, err);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	csv_parser_free(p);
	return r;
}

int csv_read_mem(struct dataset **out, const char *name, const uint8_t *data, size_t len,
		 const struct csv_options *o, struct train_err *err)
{
	int r;
	struct csv_parser *p = NULL;
	if (!out)
		return APP_EINVAL;
	*out = NULL;
	if ((r = csv_parser_new(&p, o, err)) != 0 || (r = csv_parser_begin(p, name, err)) != 0 ||
	    (r = csv_parser_feed(p, data, len, err)) != 0 || (r = csv_parser_end(p, err)) != 0 ||
	    (r = csv_parser_finish(p, out, err)) != 0)
		goto out;
	r = 0;
out:
	csv_parser_free(p);
	return r;
}
