/* relaymsg.c: NIP-01 relay messages: a strict single-pass parser and the builders. */
#include "relaymsg.h"

#include <stdlib.h>
#include <string.h>

#include "appliance/filter.h"
#include "appliance/hex.h"
#include "appliance/jscan.h"
#include "appliance/json.h"

/* The largest raw JSON text of a subscription id worth decoding: every one
 * of its RELAYMSG_MAX_SUBID characters written as a 6-byte \u escape. */
#define SUBID_RAW_MAX (6 * RELAYMSG_MAX_SUBID)

static const char *const type_names[] = {"?", "EVENT", "OK", "EOSE", "CLOSED", "NOTICE", "AUTH", "COUNT"};

const char *relaymsg_type_name(enum relaymsg_type t)
{
	return (size_t)t < sizeof type_names / sizeof type_names[0] ? type_names[t] : "?";
}

static const char *const reject_names[RELAYMSG_R__COUNT] = {
	"none", "toobig", "notjson", "notarray", "type", "unknown", "arity", "field", "subid", "event", "text",
};

const char *relaymsg_reject_name(enum relaymsg_reject r)
{
	return (size_t)r < RELAYMSG_R__COUNT ? reject_names[r] : "?";
}

static const struct {
	const char *word;
	enum relaymsg_prefix p;
} prefixes[] = {
	{"duplicate", RELAYMSG_P_DUPLICATE},   {"pow", RELAYMSG_P_POW},
	{"blocked", RELAYMSG_P_BLOCKED},       {"rate-limited", RELAYMSG_P_RATE_LIMITED},
	{"invalid", RELAYMSG_P_INVALID},       {"restricted", RELAYMSG_P_RESTRICTED},
	{"auth-required", RELAYMSG_P_AUTH_REQUIRED}, {"mute", RELAYMSG_P_MUTE},
	{"error", RELAYMSG_P_ERROR},           {"unsupported", RELAYMSG_P_UNSUPPORTED},
};

enum relaymsg_prefix relaymsg_prefix_of(const char *text, size_t len)
{
	size_t i = 0;
	while (i < len && ((text[i] >= 'a' && text[i] <= 'z') || text[i] == '-'))
		i++;
	if (i == 0 || i >= len || text[i] != ':')
		return RELAYMSG_P_NONE;
	for (size_t k = 0; k < sizeof prefixes / sizeof prefixes[0]; k++)
		if (strlen(prefixes[k].word) == i && memcmp(prefixes[k].word, text, i) == 0)
			return prefixes[k].p;
	return RELAYMSG_P_OTHER;
}

const char *relaymsg_prefix_name(enum relaymsg_prefix p)
{
	if (p == RELAYMSG_P_NONE)
		return "";
	for (size_t k = 0; k < sizeof prefixes / sizeof prefixes[0]; k++)
		if (prefixes[k].p == p)
			return prefixes[k].word;
	return "other";
}

void relaymsg_clear(struct relaymsg *m)
{
	if (!m)
		return;
	event_free(m->event);
	free(m->text);
	memset(m, 0, sizeof *m);
}

/* ---- parsing ------------------------------------------------------------------------------ */

struct pstate {
	struct jscan s;
	enum relaymsg_reject why;
	const char *reason;
};

#define REFUSE(st, cls, text, code)        \
	do {                               \
		(st)->why = (cls);         \
		(st)->reason = (text);     \
		return (code);             \
	} while (0)

/* next_elem: consumes the ',' before the next array element; a ']' there is an arity error. */
static int next_elem(struct pstate *st, const char *what)
{
	int c = jscan_peek(&st->s);
	if (c == ',') {
		st->s.p++;
		return 0;
	}
	if (c == ']')
		REFUSE(st, RELAYMSG_R_ARITY, what, APP_EPARSE);
	REFUSE(st, RELAYMSG_R_NOTJSON, "not valid JSON", APP_EPARSE);
}

/* end_array: the closing ']' and nothing after it; another element is an arity error. */
static int end_array(struct pstate *st, const char *what)
{
	int c = jscan_peek(&st->s);
	if (c == ',')
		REFUSE(st, RELAYMSG_R_ARITY, what, APP_EPARSE);
	if (c != ']')
		REFUSE(st, RELAYMSG_R_NOTJSON, "not valid JSON", APP_EPARSE);
	st->s.p++;
	if (!jscan_at_end(&st->s))
		REFUSE(st, RELAYMSG_R_NOTJSON, "not valid JSON (data after the message)", APP_EPARSE);
	return 0;
}

/* string_len: the decoded length of the string at the scanner (not consumed). */
static int string_len(struct pstate *st, size_t *n, const char *what)
{
	if (jscan_peek(&st->s) != '"')
		REFUSE(st, RELAYMSG_R_FIELD, what, APP_EPARSE);
	struct jscan c = st->s;
	if (jscan_string(&c, NULL, n) != 0)
		REFUSE(st, RELAYMSG_R_NOTJSON, c.err, APP_EPARSE);
	return 0;
}

/*
 * small_string: decodes the string at the scanner into buf (cap bytes incl.
 * the NUL) when its decoded length is below cap; sets *fits = 0 and skips it
 * otherwise. A decoded length below cap needs at most 6*(cap-1)+2 raw bytes.
 */
static int small_string(struct pstate *st, char *buf, size_t cap, size_t *n, int *fits, const char *what)
{
	int r = string_len(st, n, what);
	if (r)
		return r;
	*fits = *n < cap;
	if (!*fits) {
		if (jscan_string(&st->s, NULL, NULL) != 0)
			REFUSE(st, RELAYMSG_R_NOTJSON, st->s.err, APP_EPARSE);
		return 0;
	}
	char raw[SUBID_RAW_MAX + 3];
	if (6 * (cap - 1) + 3 > sizeof raw)
		REFUSE(st, RELAYMSG_R_NONE, "internal: small_string cap", APP_EINTERNAL);
	/* the decoder writes at most raw-token-length bytes: decode into raw, then copy */
	struct jscan c = st->s;
	if (jscan_skip_value(&c) != 0 || (size_t)(c.p - st->s.p) > sizeof raw - 1)
		REFUSE(st, RELAYMSG_R_NOTJSON, "not valid JSON", APP_EPARSE);
	if (jscan_string(&st->s, raw, n) != 0)
		REFUSE(st, RELAYMSG_R_NOTJSON, st->s.err, APP_EPARSE);
	memcpy(buf, raw, *n + 1);
	return 0;
}

static int parse_subid(struct pstate *st, struct relaymsg *m)
{
	size_t n;
	int fits, r = small_string(st, m->subid, sizeof m->subid, &n, &fits, "subscription id is not a string");
	if (r)
		return r;
	if (!fits || n == 0)
		REFUSE(st, RELAYMSG_R_SUBID, "subscription id empty or longer than 64 characters", APP_EPARSE);
	m->subid_len = n;
	return 0;
}

/* parse_text: a string element into a new buffer, at most max bytes decoded (0 = no cap). */
static int parse_text(struct pstate *st, struct relaymsg *m, size_t max, const char *what)
{
	size_t n;
	int r = string_len(st, &n, what);
	if (r)
		return r;
	if (max && n > max)
		REFUSE(st, RELAYMSG_R_TEXT, "AUTH challenge over the size cap", APP_ETOOBIG);
	m->text = malloc(n + 1);
	if (!m->text)
		REFUSE(st, RELAYMSG_R_NONE, "out of memory", APP_ENOMEM);
	if (jscan_string(&st->s, m->text, &m->text_len) != 0)
		REFUSE(st, RELAYMSG_R_NOTJSON, st->s.err, APP_EPARSE);
	return 0;
}

static int parse_literal(struct jscan *s, const char *lit)
{
	size_t n = strlen(lit);
	if (jscan_remaining(s) < n || memcmp(s->p, lit, n) != 0)
		return APP_EPARSE;
	s->p += n;
	return 0;
}

static int parse_event(struct pstate *st, struct relaymsg *m)
{
	if (jscan_peek(&st->s) != '{')
		REFUSE(st, RELAYMSG_R_FIELD, "EVENT: event is not an object", APP_EPARSE);
	const char *why = NULL;
	struct jscan before = st->s;
	int r = event_parse_scan(&m->event, &why, &st->s);
	if (r == APP_ENOMEM)
		REFUSE(st, RELAYMSG_R_NONE, "out of memory", r);
	if (r == APP_EPARSE && jscan_remaining(&before) > EVENT_MAX_JSON) {
		/* event_parse_scan stops reading at its cap; a long but well-formed object is "too big" */
		struct jscan c = before;
		if (jscan_skip_value(&c) == 0 && (size_t)(c.p - before.p) > EVENT_MAX_JSON)
			REFUSE(st, RELAYMSG_R_EVENT, "EVENT: event over the size cap", APP_ETOOBIG);
	}
	if (r)
		REFUSE(st, RELAYMSG_R_EVENT, why ? why : "EVENT: malformed event", r == APP_ETOOBIG ? r : APP_EPARSE);
	return 0;
}

static int parse_ok(struct pstate *st, struct relaymsg *m)
{
	size_t n;
	int r;
	if ((r = string_len(st, &n, "OK: event id is not a string")) != 0)
		return r;
	char hex[65];
	if (n != 64)
		REFUSE(st, RELAYMSG_R_FIELD, "OK: event id is not 64 lowercase hex", APP_EPARSE);
	if (jscan_remaining(&st->s) < 66 || st->s.p[65] != '"')
		REFUSE(st, RELAYMSG_R_FIELD, "OK: event id is not 64 lowercase hex", APP_EPARSE);
	memcpy(hex, st->s.p + 1, 64);
	if (hex_decode(m->id, 32, hex, 64, 1) != 0)
		REFUSE(st, RELAYMSG_R_FIELD, "OK: event id is not 64 lowercase hex", APP_EPARSE);
	st->s.p += 66;
	if ((r = next_elem(st, "OK: wrong number of elements (want 4)")) != 0)
		return r;
	int c = jscan_peek(&st->s);
	if (c == 't' && parse_literal(&st->s, "true") == 0)
		m->accepted = 1;
	else if (c == 'f' && parse_literal(&st->s, "false") == 0)
		m->accepted = 0;
	else
		REFUSE(st, RELAYMSG_R_FIELD, "OK: accepted flag is not a boolean", APP_EPARSE);
	if ((r = next_elem(st, "OK: wrong number of elements (want 4)")) != 0)
		return r;
	if ((r = parse_text(st, m, 0, "OK: message is not a string")) != 0)
		return r;
	return end_array(st, "OK: wrong number of elements (want 4)");
}

static int parse_count_obj(struct pstate *st, struct relaymsg *m)
{
	if (jscan_expect(&st->s, '{') != 0)
		REFUSE(st, RELAYMSG_R_FIELD, "COUNT: result is not an object", APP_EPARSE);
	int have_count = 0, first = 1;
	for (;;) {
		int c = jscan_peek(&st->s);
		if (c == '}' && first) {
			st->s.p++;
			break;
		}
		if (!first) {
			if (c == '}') {
				st->s.p++;
				break;
			}
			if (c != ',')
				REFUSE(st, RELAYMSG_R_NOTJSON, "not valid JSON", APP_EPARSE);
			st->s.p++;
		}
		first = 0;
		char key[16];
		size_t kn;
		int fits;
		if (small_string(st, key, sizeof key, &kn, &fits, "COUNT: object key is not a string") != 0)
			return APP_EPARSE;
		if (!fits)
			key[0] = 0;
		if (jscan_expect(&st->s, ':') != 0)
			REFUSE(st, RELAYMSG_R_NOTJSON, "not valid JSON", APP_EPARSE);
		if (!strcmp(key, "count")) {
			if (have_count)
				REFUSE(st, RELAYMSG_R_FIELD, "COUNT: duplicate count", APP_EPARSE);
			if (jscan_u64(&st->s, UINT64_MAX, &m->count) != 0)
				REFUSE(st, RELAYMSG_R_FIELD, "COUNT: count is not a non-negative integer", APP_EPARSE);
			have_count = 1;
		} else if (!strcmp(key, "approximate")) {
			int b = jscan_peek(&st->s);
			if (b == 't' && parse_literal(&st->s, "true") == 0)
				m->approximate = 1;
			else if (b == 'f' && parse_literal(&st->s, "false") == 0)
				m->approximate = 0;
			else
				REFUSE(st, RELAYMSG_R_FIELD, "COUNT: approximate is not a boolean", APP_EPARSE);
		} else {
			int r = jscan_skip_value(&st->s);
			if (r)
				REFUSE(st, RELAYMSG_R_NOTJSON, "not valid JSON", r);
		}
	}
	if (!have_count)
		REFUSE(st, RELAYMSG_R_FIELD, "COUNT: no count", APP_EPARSE);
	return 0;
}

static const struct {
	const char *name;
	size_t len;
	enum relaymsg_type t;
} types[] = {
	{"EVENT", 5, RELAYMSG_EVENT}, {"OK", 2, RELAYMSG_OK},         {"EOSE", 4, RELAYMSG_EOSE},
	{"CLOSED", 6, RELAYMSG_CLOSED}, {"NOTICE", 6, RELAYMSG_NOTICE}, {"AUTH", 4, RELAYMSG_AUTH},
	{"COUNT", 5, RELAYMSG_COUNT},
};

static int parse_body(struct pstate *st, struct relaymsg *m)
{
	int r;
	if (jscan_peek(&st->s) != '[') {
		struct jscan c = st->s;
		if (jscan_skip_value(&c) == 0 && jscan_at_end(&c))
			REFUSE(st, RELAYMSG_R_NOTARRAY, "not a JSON array", APP_EPARSE);
		REFUSE(st, RELAYMSG_R_NOTJSON, "not valid JSON", APP_EPARSE);
	}
	st->s.p++;
	int c = jscan_peek(&st->s);
	if (c == ']')
		REFUSE(st, RELAYMSG_R_NOTARRAY, "empty array", APP_EPARSE);
	if (c != '"') {
		struct jscan k = st->s;
		if (jscan_skip_value(&k) != 0)
			REFUSE(st, RELAYMSG_R_NOTJSON, "not valid JSON", APP_EPARSE);
		REFUSE(st, RELAYMSG_R_TYPE, "message type is not a string", APP_EPARSE);
	}
	/* the type: a short ASCII word; anything else is unknown (after checking the syntax) */
	const char *tp = st->s.p + 1;
	size_t avail = jscan_remaining(&st->s) - 1, tl = 0;
	while (tl < avail && tl < 8 && tp[tl] >= 'A' && tp[tl] <= 'Z')
		tl++;
	m->type = RELAYMSG_NONE;
	if (tl < avail && tp[tl] == '"')
		for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
			if (types[i].len == tl && memcmp(types[i].name, tp, tl) == 0)
				m->type = types[i].t;
	if (m->type == RELAYMSG_NONE) {
		if (jscan_string(&st->s, NULL, NULL) != 0)
			REFUSE(st, RELAYMSG_R_NOTJSON, st->s.err, APP_EPARSE);
		REFUSE(st, RELAYMSG_R_UNKNOWN, "unknown message type", APP_EUNSUPPORTED);
	}
	st->s.p = tp + tl + 1;

	switch (m->type) {
	case RELAYMSG_EVENT:
		if ((r = next_elem(st, "EVENT: wrong number of elements (want 3)")) != 0 ||
		    (r = parse_subid(st, m)) != 0 ||
		    (r = next_elem(st, "EVENT: wrong number of elements (want 3)")) != 0 ||
		    (r = parse_event(st, m)) != 0)
			return r;
		return end_array(st, "EVENT: wrong number of elements (want 3)");
	case RELAYMSG_OK:
		if ((r = next_elem(st, "OK: wrong number of elements (want 4)")) != 0)
			return r;
		return parse_ok(st, m);
	case RELAYMSG_EOSE:
		if ((r = next_elem(st, "EOSE: wrong number of elements (want 2)")) != 0 ||
		    (r = parse_subid(st, m)) != 0)
			return r;
		return end_array(st, "EOSE: wrong number of elements (want 2)");
	case RELAYMSG_CLOSED:
		if ((r = next_elem(st, "CLOSED: wrong number of elements (want 3)")) != 0 ||
		    (r = parse_subid(st, m)) != 0 ||
		    (r = next_elem(st, "CLOSED: wrong number of elements (want 3)")) != 0 ||
		    (r = parse_text(st, m, 0, "CLOSED: message is not a string")) != 0)
			return r;
		return end_array(st, "CLOSED: wrong number of elements (want 3)");
	case RELAYMSG_NOTICE:
		if ((r = next_elem(st, "NOTICE: wrong number of elements (want 2)")) != 0 ||
		    (r = parse_text(st, m, 0, "NOTICE: message is not a string")) != 0)
			return r;
		return end_array(st, "NOTICE: wrong number of elements (want 2)");
	case RELAYMSG_AUTH:
		if ((r = next_elem(st, "AUTH: wrong number of elements (want 2)")) != 0 ||
		    (r = parse_text(st, m, RELAYMSG_MAX_CHALLENGE, "AUTH: challenge is not a string")) != 0)
			return r;
		return end_array(st, "AUTH: wrong number of elements (want 2)");
	case RELAYMSG_COUNT:
		if ((r = next_elem(st, "COUNT: wrong number of elements (want 3)")) != 0 ||
		    (r = parse_subid(st, m)) != 0 ||
		    (r = next_elem(st, "COUNT: wrong number of elements (want 3)")) != 0 ||
		    (r = parse_count_obj(st, m)) != 0)
			return r;
		return end_array(st, "COUNT: wrong number of elements (want 3)");
	default:
		REFUSE(st, RELAYMSG_R_UNKNOWN, "unknown message type", APP_EUNSUPPORTED);
	}
}

int relaymsg_parse(struct relaymsg *out, enum relaymsg_reject *why, const char **reason, const char *msg,
		   size_t len, size_t max_len)
{
	memset(out, 0, sizeof *out);
	struct pstate st = {.why = RELAYMSG_R_NONE, .reason = "ok"};
	int r;
	if (max_len == 0 || max_len > RELAYMSG_MAX_LEN)
		max_len = RELAYMSG_MAX_LEN;
	if (len > max_len) {
		st.why = RELAYMSG_R_TOOBIG;
		st.reason = "message over the size cap";
		r = APP_ETOOBIG;
		goto out;
	}
	jscan_init(&st.s, msg, len);
	r = parse_body(&st, out);
	if (r && r != APP_ENOMEM && st.why != RELAYMSG_R_NOTJSON && st.why != RELAYMSG_R_TOOBIG &&
	    st.why != RELAYMSG_R_NOTARRAY) {
		/* A field-level failure inside text that is not JSON at all is "not JSON". */
		struct jscan c;
		jscan_init(&c, msg, len);
		if (jscan_skip_value(&c) != 0 || !jscan_at_end(&c)) {
			st.why = RELAYMSG_R_NOTJSON;
			st.reason = "not valid JSON";
			r = APP_EPARSE;
		}
	}
out:
	if (r) {
		relaymsg_clear(out);
		if (st.why == RELAYMSG_R_NONE && r != APP_ENOMEM)
			st.why = RELAYMSG_R_NOTJSON;
	}
	if (why)
		*why = r ? st.why : RELAYMSG_R_NONE;
	if (reason)
		*reason = r ? st.reason : "ok";
	return r;
}

/* ---- building ----------------------------------------------------------------------------- */

static int subid_ok(const char *subid)
{
	size_t n = subid ? strnlen(subid, RELAYMSG_MAX_SUBID + 1) : 0;
	return n >= 1 && n <= RELAYMSG_MAX_SUBID;
}

static int wrap_event(char **out, size_t *outlen, const char *type, const struct event *ev)
{
	*out = NULL;
	*outlen = 0;
	char *ej = NULL;
	size_t ejl = 0;
	int r = event_to_json(&ej, &ejl, ev);
	if (r)
		return r;
	struct jw w;
	jw_init(&w, 0);
	jw_raw(&w, "[\"", 2);
	jw_raw(&w, type, strlen(type));
	jw_raw(&w, "\",", 2);
	jw_raw(&w, ej, ejl);
	jw_char(&w, ']');
	free(ej);
	return jw_finish(&w, out, outlen);
}

int relaymsg_event(char **out, size_t *outlen, const struct event *ev)
{
	return wrap_event(out, outlen, "EVENT", ev);
}

int relaymsg_auth(char **out, size_t *outlen, const struct event *ev)
{
	return wrap_event(out, outlen, "AUTH", ev);
}

static int build_filters(char **out, size_t *outlen, const char *type, const char *subid,
			 const struct filter *const *filters, size_t nfilters, uint64_t since_floor)
{
	*out = NULL;
	*outlen = 0;
	if (!subid_ok(subid) || !filters || nfilters == 0 || nfilters > RELAYMSG_MAX_FILTERS)
		return APP_EINVAL;
	for (size_t i = 0; i < nfilters; i++)
		if (!filters[i])
			return APP_EINVAL;
	struct jw w;
	jw_init(&w, 0);
	jw_raw(&w, "[\"", 2);
	jw_raw(&w, type, strlen(type));
	jw_raw(&w, "\",", 2);
	jw_cstr(&w, subid);
	int r = 0;
	for (size_t i = 0; i < nfilters && r == 0; i++) {
		const struct filter *f = filters[i];
		struct filter tmp;
		if (since_floor && (!f->has_since || f->since < since_floor)) {
			/* a shallow copy with another since; its lists stay owned by f */
			tmp = *f;
			tmp.since = since_floor;
			tmp.has_since = 1;
			f = &tmp;
		}
		char *fj = NULL;
		size_t fl = 0;
		r = filter_to_json(&fj, &fl, f);
		if (r == 0) {
			jw_char(&w, ',');
			jw_raw(&w, fj, fl);
		}
		free(fj);
	}
	jw_char(&w, ']');
	if (r) {
		jw_free(&w);
		return r;
	}
	return jw_finish(&w, out, outlen);
}

int relaymsg_req(char **out, size_t *outlen, const char *subid, const struct filter *const *filters,
		 size_t nfilters, uint64_t since_floor)
{
	return build_filters(out, outlen, "REQ", subid, filters, nfilters, since_floor);
}

int relaymsg_count(char **out, size_t *outlen, const char *subid, const struct filter *const *filters,
		   size_t nfilters)
{
	return build_filters(out, outlen, "COUNT", subid, filters, nfilters, 0);
}

int relaymsg_close(char **out, size_t *outlen, const char *subid)
{
	*out = NULL;
	*outlen = 0;
	if (!subid_ok(subid))
		return APP_EINVAL;
	struct jw w;
	jw_init(&w, 0);
	jw_raw(&w, "[\"CLOSE\",", 9);
	jw_cstr(&w, subid);
	jw_char(&w, ']');
	return jw_finish(&w, out, outlen);
}
