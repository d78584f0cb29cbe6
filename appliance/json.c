#include "json.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int jw_reserve(struct jw *w, size_t extra)
{
	if (w->err)
		return -1;
	size_t need;
	if (__builtin_add_overflow(w->len, extra, &need) || __builtin_add_overflow(need, 1, &need)) {
		w->err = APP_ETOOBIG;
		return -1;
	}
	if (w->max && need > w->max + 1) {
		w->err = APP_ETOOBIG;
		return -1;
	}
	if (need <= w->cap)
		return 0;
	size_t cap = w->cap ? w->cap : 256;
	while (cap < need) {
		if (cap > SIZE_MAX / 2) {
			cap = need;
			break;
		}
		cap *= 2;
	}
	char *p = realloc(w->p, cap);
	if (!p) {
		w->err = APP_ENOMEM;
		return -1;
	}
	w->p = p;
	w->cap = cap;
	return 0;
}

void jw_init(struct jw *w, size_t max)
{
	memset(w, 0, sizeof *w);
	w->max = max;
}

void jw_raw(struct jw *w, const char *s, size_t len)
{
	if (jw_reserve(w, len))
		return;
	memcpy(w->p + w->len, s, len);
	w->len += len;
}

void jw_char(struct jw *w, char c)
{
	if (jw_reserve(w, 1))
		return;
	w->p[w->len++] = c;
}

/* Escape table: 0 = copy verbatim; otherwise the short escape letter, or 'u'. */
static const char esc_table[256] = {
	['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f', ['\r'] = 'r', ['"'] = '"', ['\\'] = '\\',
	[0x00] = 'u', [0x01] = 'u', [0x02] = 'u', [0x03] = 'u', [0x04] = 'u', [0x05] = 'u',
	[0x06] = 'u', [0x07] = 'u', [0x0b] = 'u', [0x0e] = 'u', [0x0f] = 'u', [0x10] = 'u',
	[0x11] = 'u', [0x12] = 'u', [0x13] = 'u', [0x14] = 'u', [0x15] = 'u', [0x16] = 'u',
	[0x17] = 'u', [0x18] = 'u', [0x19] = 'u', [0x1a] = 'u', [0x1b] = 'u', [0x1c] = 'u',
	[0x1d] = 'u', [0x1e] = 'u', [0x1f] = 'u',
};

void jw_str(struct jw *w, const char *s, size_t len)
{
	/* Worst case every byte becomes \u00xx (6 bytes), plus the quotes. */
	size_t worst;
	if (__builtin_mul_overflow(len, 6, &worst) || __builtin_add_overflow(worst, 2, &worst)) {
		w->err = APP_ETOOBIG;
		return;
	}
	size_t escaped = 0;
	for (size_t i = 0; i < len; i++)
		escaped += esc_table[(unsigned char)s[i]] != 0;
	if (jw_reserve(w, len + 2 + escaped * 5))
		return;
	char *o = w->p + w->len;
	*o++ = '"';
	size_t run = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char e = esc_table[c];
		if (!e)
			continue;
		memcpy(o, s + run, i - run);
		o += i - run;
		run = i + 1;
		*o++ = '\\';
		if (e == 'u') {
			static const char hx[] = "0123456789abcdef";
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hx[c >> 4];
			*o++ = hx[c & 15];
		} else {
			*o++ = e;
		}
	}
	memcpy(o, s + run, len - run);
	o += len - run;
	*o++ = '"';
	w->len = (size_t)(o - w->p);
}

void jw_cstr(struct jw *w, const char *s)
{
	jw_str(w, s, strlen(s));
}

void jw_u64(struct jw *w, uint64_t v)
{
	char tmp[24];
	size_t n = 0;
	do {
		tmp[sizeof tmp - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	jw_raw(w, tmp + sizeof tmp - n, n);
}

void jw_i64(struct jw *w, int64_t v)
{
	if (v < 0) {
		jw_char(w, '-');
		jw_u64(w, (uint64_t)0 - (uint64_t)v);
	} else {
		jw_u64(w, (uint64_t)v);
	}
}

/*
 * ECMAScript Number::toString(10) (ECMA-262 §6.1.6.1.20): the shortest
 * decimal digits that read back as v (the closest such when several), then
 * plain notation for exponents -7 < n <= 21, else d[.ddd]e(+|-)n.
 */
void jw_f64(struct jw *w, double v)
{
	if (!isfinite(v)) {
		jw_raw(w, "null", 4);
		return;
	}
	if (v == 0) {
		jw_char(w, '0');
		return;
	}
	char buf[40], digits[24];
	int prec;
	for (prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof buf, "%.*e", prec - 1, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	/* buf: [-]d[.ddd]e(+|-)XX */
	const char *p = buf;
	int neg = 0;
	if (*p == '-') {
		neg = 1;
		p++;
	}
	size_t k = 0;
	for (; *p && *p != 'e'; p++)
		if (*p >= '0' && *p <= '9' && k < sizeof digits - 1)
			digits[k++] = *p;
	long e = *p == 'e' ? strtol(p + 1, NULL, 10) : 0;
	while (k > 1 && digits[k - 1] == '0')
		k--;
	digits[k] = 0;
	long n = e + 1; /* position of the decimal point relative to the digits */
	long kk = (long)k;
	if (neg)
		jw_char(w, '-');
	if (kk <= n && n <= 21) {
		jw_raw(w, digits, k);
		for (long i = 0; i < n - kk; i++)
			jw_char(w, '0');
	} else if (0 < n && n <= 21) {
		jw_raw(w, digits, (size_t)n);
		jw_char(w, '.');
		jw_raw(w, digits + n, (size_t)(kk - n));
	} else if (-6 < n && n <= 0) {
		jw_raw(w, "0.", 2);
		for (long i = 0; i < -n; i++)
			jw_char(w, '0');
		jw_raw(w, digits, k);
	} else {
		jw_char(w, digits[0]);
		if (k > 1) {
			jw_char(w, '.');
			jw_raw(w, digits + 1, k - 1);
		}
		jw_char(w, 'e');
		jw_char(w, n - 1 >= 0 ? '+' : '-');
		jw_u64(w, (uint64_t)(n - 1 >= 0 ? n - 1 : 1 - n));
	}
}

void jw_hex(struct jw *w, const uint8_t *b, size_t len)
{
	static const char hx[] = "0123456789abcdef";
	if (len > SIZE_MAX / 2 - 2 || jw_reserve(w, 2 * len + 2))
		return;
	char *o = w->p + w->len;
	*o++ = '"';
	for (size_t i = 0; i < len; i++) {
		*o++ = hx[b[i] >> 4];
		*o++ = hx[b[i] & 15];
	}
	*o++ = '"';
	w->len = (size_t)(o - w->p);
}

void jw_key(struct jw *w, int comma, const char *key)
{
	if (comma)
		jw_char(w, ',');
	jw_cstr(w, key);
	jw_char(w, ':');
}

int jw_finish(struct jw *w, char **out, size_t *outlen)
{
	*out = NULL;
	if (outlen)
		*outlen = 0;
	if (!w->err)
		jw_reserve(w, 0);
	if (w->err) {
		int e = w->err;
		jw_free(w);
		return e;
	}
	w->p[w->len] = 0;
	*out = w->p;
	if (outlen)
		*outlen = w->len;
	w->p = NULL;
	w->len = w->cap = 0;
	return 0;
}

void jw_free(struct jw *w)
{
	free(w->p);
	w->p = NULL;
	w->len = w->cap = 0;
}

int json_has_nul_escape(const char *s, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (s[i] != '\\')
			continue;
		if (s[i + 1] == 'u' && len - i >= 6 && memcmp(s + i + 2, "0000", 4) == 0)
			return 1;
		i++; /* skip the escaped character */
	}
	return 0;
}

/*
 * One pass over the text: strings may not hold raw control bytes or decode
 * to NUL; nesting depth is bounded (cJSON's own limit is 1000).
 */
static int json_precheck(const char *s, size_t len, int max_depth)
{
	int depth = 0, in_str = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (in_str) {
			if (c == '"') {
				in_str = 0;
			} else if (c == '\\') {
				if (i + 1 < len && s[i + 1] == 'u' && len - i >= 6 &&
				    memcmp(s + i + 2, "0000", 4) == 0)
					return APP_EPARSE;
				i++;
			} else if (c < 0x20) {
				return APP_EPARSE;
			}
		} else if (c == '"') {
			in_str = 1;
		} else if (c == '[' || c == '{') {
			if (++depth > max_depth)
				return APP_ETOOBIG;
		} else if (c == ']' || c == '}') {
			depth--;
		} else if (c == 0) {
			return APP_EPARSE;
		}
	}
	return 0;
}

int json_parse(struct cJSON **out, const char *s, size_t len, size_t max, int max_depth)
{
	*out = NULL;
	if (len > max)
		return APP_ETOOBIG;
	int r = json_precheck(s, len, max_depth);
	if (r)
		return r;
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts(s, len, &end, 0);
	if (!j)
		return APP_EPARSE;
	/* Nothing but whitespace may follow the value. */
	size_t pos = (size_t)(end - s);
	for (; pos < len; pos++) {
		char c = s[pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			cJSON_Delete(j);
			return APP_EPARSE;
		}
	}
	*out = j;
	return 0;
}

int json_get_u64(const struct cJSON *item, uint64_t max, uint64_t *out)
{
	if (!cJSON_IsNumber(item))
		return APP_EPARSE;
	double d = item->valuedouble;
	if (!isfinite(d) || d != floor(d))
		return APP_EPARSE;
	if (d < 0 || d > 9007199254740992.0 || (uint64_t)d > max)
		return APP_ERANGE;
	*out = (uint64_t)d;
	return 0;
}
