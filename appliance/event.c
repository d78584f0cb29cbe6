#include "event.h"

#include <cJSON.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "hex.h"
#include "jscan.h"
#include "json.h"
#include "keys.h"

#define REASON(text)                      \
	do {                              \
		if (reason)               \
			*reason = (text); \
	} while (0)

/* A tag is one allocation: v[n], len[n], then the strings. */
static struct event_tag tag_alloc(size_t n, const char *const *fields, const size_t *lens, int *err)
{
	struct event_tag t = {0};
	size_t bytes = n * (sizeof(char *) + sizeof(size_t));
	for (size_t i = 0; i < n; i++) {
		if (__builtin_add_overflow(bytes, lens[i] + 1, &bytes)) {
			*err = APP_ETOOBIG;
			return t;
		}
	}
	char *block = malloc(bytes);
	if (!block) {
		*err = APP_ENOMEM;
		return t;
	}
	t.n = n;
	t.v = (char **)block;
	t.len = (size_t *)(block + n * sizeof(char *));
	char *s = block + n * (sizeof(char *) + sizeof(size_t));
	for (size_t i = 0; i < n; i++) {
		memcpy(s, fields[i], lens[i]);
		s[lens[i]] = 0;
		t.v[i] = s;
		t.len[i] = lens[i];
		s += lens[i] + 1;
	}
	*err = 0;
	return t;
}

/*
 * unpack: gives a parsed (packed) event separately allocated tags and
 * content so it can be modified; the event struct keeps its block.
 */
static int unpack(struct event *ev)
{
	if (!ev->packed_)
		return 0;
	struct event_tag *tags = NULL;
	char *content = malloc(ev->content_len + 1);
	if (!content)
		return APP_ENOMEM;
	memcpy(content, ev->content, ev->content_len + 1);
	if (ev->ntags && !(tags = calloc(ev->ntags, sizeof *tags))) {
		free(content);
		return APP_ENOMEM;
	}
	for (size_t i = 0; i < ev->ntags; i++) {
		int err;
		tags[i] = tag_alloc(ev->tags[i].n, (const char *const *)ev->tags[i].v, ev->tags[i].len, &err);
		if (err) {
			for (size_t k = 0; k < i; k++)
				free(tags[k].v);
			free(tags);
			free(content);
			return err;
		}
	}
	ev->tags = tags;
	ev->content = content;
	ev->packed_ = 0;
	return 0;
}

void event_free(struct event *ev)
{
	if (!ev)
		return;
	if (ev->packed_) {
		free(ev);
		return;
	}
	for (size_t i = 0; i < ev->ntags; i++)
		free(ev->tags[i].v);
	free(ev->tags);
	free(ev->content);
	free(ev);
}

int event_set_content(struct event *ev, const char *content, size_t len)
{
	if (len > EVENT_MAX_JSON)
		return APP_ETOOBIG;
	if (content && memchr(content, 0, len))
		return APP_EPARSE;
	int r = unpack(ev);
	if (r)
		return r;
	char *c = malloc(len + 1);
	if (!c)
		return APP_ENOMEM;
	if (len)
		memcpy(c, content, len);
	c[len] = 0;
	free(ev->content);
	ev->content = c;
	ev->content_len = len;
	return 0;
}

int event_new(struct event **out, uint32_t kind, uint64_t created_at, const char *content, size_t content_len)
{
	*out = NULL;
	if (kind > EVENT_MAX_KIND)
		return APP_ERANGE;
	struct event *ev = calloc(1, sizeof *ev);
	if (!ev)
		return APP_ENOMEM;
	ev->kind = kind;
	ev->created_at = created_at;
	int r = event_set_content(ev, content ? content : "", content ? content_len : 0);
	if (r) {
		event_free(ev);
		return r;
	}
	*out = ev;
	return 0;
}

static int tags_push(struct event *ev, struct event_tag t)
{
	if (ev->ntags >= EVENT_MAX_TAGS)
		return APP_ETOOBIG;
	struct event_tag *nt = realloc(ev->tags, (ev->ntags + 1) * sizeof *nt);
	if (!nt)
		return APP_ENOMEM;
	ev->tags = nt;
	ev->tags[ev->ntags++] = t;
	return 0;
}

int event_add_tag(struct event *ev, size_t n, const char *const *fields)
{
	if (n == 0)
		return APP_EINVAL;
	if (n > EVENT_MAX_TAG_FIELDS || ev->ntags >= EVENT_MAX_TAGS)
		return APP_ETOOBIG;
	size_t lens[EVENT_MAX_TAG_FIELDS];
	for (size_t i = 0; i < n; i++) {
		if (!fields[i])
			return APP_EINVAL;
		lens[i] = strlen(fields[i]);
	}
	int err = unpack(ev);
	if (err)
		return err;
	struct event_tag t = tag_alloc(n, fields, lens, &err);
	if (err)
		return err;
	if ((err = tags_push(ev, t)) != 0)
		free(t.v);
	return err;
}

int event_add_tagv(struct event *ev, const char *first, ...)
{
	const char *fields[EVENT_MAX_TAG_FIELDS];
	size_t n = 0;
	va_list ap;
	va_start(ap, first);
	for (const char *s = first; s; s = va_arg(ap, const char *)) {
		if (n == EVENT_MAX_TAG_FIELDS) {
			va_end(ap);
			return APP_ETOOBIG;
		}
		fields[n++] = s;
	}
	va_end(ap);
	return event_add_tag(ev, n, fields);
}

static int parse_hex_field(uint8_t *out, size_t n, const cJSON *item)
{
	if (!cJSON_IsString(item))
		return APP_EPARSE;
	const char *s = item->valuestring;
	size_t len = strlen(s);
	if (len != 2 * n)
		return APP_EPARSE;
	return hex_decode(out, n, s, len, 1);
}

static int parse_tags(struct event *ev, const char **reason, const cJSON *tags)
{
	if (!cJSON_IsArray(tags)) {
		REASON("tags: not an array");
		return APP_EPARSE;
	}
	size_t ntags = 0;
	for (const cJSON *t = tags->child; t; t = t->next)
		if (++ntags > EVENT_MAX_TAGS) {
			REASON("tags: too many tags");
			return APP_ETOOBIG;
		}
	if (ntags == 0)
		return 0;
	ev->tags = calloc(ntags, sizeof *ev->tags);
	if (!ev->tags)
		return APP_ENOMEM;
	const char *fields[EVENT_MAX_TAG_FIELDS];
	size_t lens[EVENT_MAX_TAG_FIELDS];
	for (const cJSON *t = tags->child; t; t = t->next) {
		if (!cJSON_IsArray(t)) {
			REASON("tags: a tag is not an array");
			return APP_EPARSE;
		}
		size_t n = 0;
		for (const cJSON *f = t->child; f; f = f->next) {
			if (!cJSON_IsString(f)) {
				REASON("tags: a tag element is not a string");
				return APP_EPARSE;
			}
			if (n == EVENT_MAX_TAG_FIELDS) {
				REASON("tags: a tag has too many elements");
				return APP_ETOOBIG;
			}
			fields[n] = f->valuestring;
			lens[n] = strlen(f->valuestring);
			n++;
		}
		if (n == 0) {
			REASON("tags: a tag is empty");
			return APP_EPARSE;
		}
		int err;
		struct event_tag tag = tag_alloc(n, fields, lens, &err);
		if (err)
			return err;
		ev->tags[ev->ntags++] = tag;
	}
	return 0;
}

int event_from_cjson(struct event **out, const char **reason, const cJSON *obj)
{
	*out = NULL;
	REASON("ok");
	if (!cJSON_IsObject(obj)) {
		REASON("event: not a JSON object");
		return APP_EPARSE;
	}
	enum { F_ID, F_PUBKEY, F_CREATED, F_KIND, F_TAGS, F_CONTENT, F_SIG, F_N };
	static const char *const names[F_N] = {"id", "pubkey", "created_at", "kind", "tags", "content", "sig"};
	static const char *const missing[F_N] = {"id: missing", "pubkey: missing", "created_at: missing",
						 "kind: missing", "tags: missing", "content: missing",
						 "sig: missing"};
	const cJSON *f[F_N] = {0};
	for (const cJSON *c = obj->child; c; c = c->next) {
		if (!c->string)
			continue;
		for (int i = 0; i < F_N; i++) {
			if (strcmp(c->string, names[i]) != 0)
				continue;
			if (f[i]) {
				REASON("event: duplicate field");
				return APP_EPARSE;
			}
			f[i] = c;
		}
	}
	for (int i = 0; i < F_N; i++)
		if (!f[i]) {
			REASON(missing[i]);
			return APP_EPARSE;
		}
	struct event *ev = calloc(1, sizeof *ev);
	if (!ev)
		return APP_ENOMEM;
	int r = APP_EPARSE;
	uint64_t v;
	if (parse_hex_field(ev->id, 32, f[F_ID])) {
		REASON("id: not 64 lowercase hex characters");
		goto out;
	}
	if (parse_hex_field(ev->pubkey, 32, f[F_PUBKEY])) {
		REASON("pubkey: not 64 lowercase hex characters");
		goto out;
	}
	if (parse_hex_field(ev->sig, 64, f[F_SIG])) {
		REASON("sig: not 128 lowercase hex characters");
		goto out;
	}
	if ((r = json_get_u64(f[F_KIND], EVENT_MAX_KIND, &v)) != 0) {
		REASON("kind: not an integer in 0..65535");
		goto out;
	}
	ev->kind = (uint32_t)v;
	if ((r = json_get_u64(f[F_CREATED], 9007199254740991ULL, &v)) != 0) {
		REASON("created_at: not a non-negative integer below 2^53");
		goto out;
	}
	ev->created_at = v;
	if (!cJSON_IsString(f[F_CONTENT])) {
		REASON("content: not a string");
		r = APP_EPARSE;
		goto out;
	}
	if ((r = event_set_content(ev, f[F_CONTENT]->valuestring, strlen(f[F_CONTENT]->valuestring))) != 0)
		goto out;
	if ((r = parse_tags(ev, reason, f[F_TAGS])) != 0)
		goto out;
	*out = ev;
	ev = NULL;
	REASON("ok");
	r = 0;
out:
	event_free(ev);
	return r;
}

/*
 * The single-pass parser. Strings are decoded into a per-thread scratch area
 * (a decoded string is never longer than its JSON text, so scratch of the
 * input's size suffices), then the event, its tags and strings are copied
 * into one allocation.
 */
struct field_desc {
	size_t off, len;
};
static _Thread_local struct jw t_id_buf; /* defined with event_compute_id below */
static void tls_register(void);

static _Thread_local struct {
	char *str;
	size_t strcap;
	struct field_desc *f;
	size_t fcap;
	size_t *tagn;
	size_t tcap;
} t_scratch;

static void tls_release(void *unused)
{
	(void)unused;
	jw_free(&t_id_buf);
	free(t_scratch.str);
	free(t_scratch.f);
	free(t_scratch.tagn);
	memset(&t_scratch, 0, sizeof t_scratch);
}

static int scratch_grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	if (!*cap)
		tls_register();
	size_t c = *cap ? *cap : 64;
	while (c < need)
		c *= 2;
	void *np = realloc(*p, c * elem);
	if (!np)
		return APP_ENOMEM;
	*p = np;
	*cap = c;
	return 0;
}

static int scan_hex(struct jscan *s, uint8_t *out, size_t n, char *tmp)
{
	size_t len;
	if (jscan_peek(s) != '"' || jscan_string(s, tmp, &len) != 0 || len != 2 * n)
		return APP_EPARSE;
	return hex_decode(out, n, tmp, len, 1);
}

/* A per-thread buffer for reasons that name a field and a cause. */
static _Thread_local char t_reason[96];

static const char *field_reason(const char *field, const struct jscan *s)
{
	snprintf(t_reason, sizeof t_reason, "%s: %s", field, s->err);
	return t_reason;
}

enum { F_ID = 1, F_PUBKEY = 2, F_CREATED = 4, F_KIND = 8, F_TAGS = 16, F_CONTENT = 32, F_SIG = 64 };

static int scan_tags(struct jscan *s, const char **reason, size_t *strn, size_t *nf, size_t *nt)
{
	if (jscan_peek(s) != '[') {
		REASON("tags: not an array");
		return APP_EPARSE;
	}
	s->p++;
	if (jscan_peek(s) == ']') {
		s->p++;
		return 0;
	}
	for (;;) {
		if (jscan_peek(s) != '[') {
			REASON("tags: a tag is not an array");
			return APP_EPARSE;
		}
		s->p++;
		if (jscan_peek(s) == ']') {
			REASON("tags: a tag is empty");
			return APP_EPARSE;
		}
		if (*nt == EVENT_MAX_TAGS) {
			REASON("tags: too many tags");
			return APP_ETOOBIG;
		}
		if (scratch_grow((void **)&t_scratch.tagn, &t_scratch.tcap, *nt + 1, sizeof(size_t)))
			return APP_ENOMEM;
		size_t fields = 0;
		for (;;) {
			if (jscan_peek(s) != '"') {
				REASON("tags: a tag element is not a string");
				return APP_EPARSE;
			}
			if (fields == EVENT_MAX_TAG_FIELDS) {
				REASON("tags: a tag has too many elements");
				return APP_ETOOBIG;
			}
			if (scratch_grow((void **)&t_scratch.f, &t_scratch.fcap, *nf + 1, sizeof(struct field_desc)))
				return APP_ENOMEM;
			size_t len;
			if (jscan_string(s, t_scratch.str + *strn, &len) != 0) {
				REASON(field_reason("tags", s));
				return APP_EPARSE;
			}
			t_scratch.f[*nf].off = *strn;
			t_scratch.f[*nf].len = len;
			*strn += len + 1;
			(*nf)++;
			fields++;
			int c = jscan_peek(s);
			if (c == ',') {
				s->p++;
				continue;
			}
			if (c == ']') {
				s->p++;
				break;
			}
			REASON("tags: malformed tag array");
			return APP_EPARSE;
		}
		t_scratch.tagn[(*nt)++] = fields;
		int c = jscan_peek(s);
		if (c == ',') {
			s->p++;
			continue;
		}
		if (c == ']') {
			s->p++;
			return 0;
		}
		REASON("tags: malformed array");
		return APP_EPARSE;
	}
}

static int scan_event(struct event **out, const char **reason, struct jscan *s)
{
	uint8_t id[32], pubkey[32], sig[64];
	uint64_t kind = 0, created = 0;
	size_t content_off = 0, content_len = 0, strn = 0, nf = 0, nt = 0;
	unsigned seen = 0;
	char *str = t_scratch.str;
	int r;
	if (jscan_expect(s, '{') != 0) {
		REASON("event: not a JSON object");
		return APP_EPARSE;
	}
	if (jscan_peek(s) == '}') {
		s->p++;
		REASON("id: missing");
		return APP_EPARSE;
	}
	for (;;) {
		size_t klen;
		if (jscan_peek(s) != '"' || jscan_string(s, str + strn, &klen) != 0 || jscan_expect(s, ':') != 0) {
			REASON("event: not valid JSON");
			return APP_EPARSE;
		}
		const char *key = str + strn;
		unsigned bit = 0;
		if (!strcmp(key, "id"))
			bit = F_ID;
		else if (!strcmp(key, "pubkey"))
			bit = F_PUBKEY;
		else if (!strcmp(key, "created_at"))
			bit = F_CREATED;
		else if (!strcmp(key, "kind"))
			bit = F_KIND;
		else if (!strcmp(key, "tags"))
			bit = F_TAGS;
		else if (!strcmp(key, "content"))
			bit = F_CONTENT;
		else if (!strcmp(key, "sig"))
			bit = F_SIG;
		if (bit & seen) {
			REASON("event: duplicate field");
			return APP_EPARSE;
		}
		seen |= bit;
		switch (bit) {
		case F_ID:
			if (scan_hex(s, id, 32, str + strn)) {
				REASON("id: not 64 lowercase hex characters");
				return APP_EPARSE;
			}
			break;
		case F_PUBKEY:
			if (scan_hex(s, pubkey, 32, str + strn)) {
				REASON("pubkey: not 64 lowercase hex characters");
				return APP_EPARSE;
			}
			break;
		case F_SIG:
			if (scan_hex(s, sig, 64, str + strn)) {
				REASON("sig: not 128 lowercase hex characters");
				return APP_EPARSE;
			}
			break;
		case F_KIND:
			if ((r = jscan_u64(s, EVENT_MAX_KIND, &kind)) != 0) {
				REASON("kind: not an integer in 0..65535");
				return r;
			}
			break;
		case F_CREATED:
			if ((r = jscan_u64(s, 9007199254740991ULL, &created)) != 0) {
				REASON("created_at: not a non-negative integer below 2^53");
				return r;
			}
			break;
		case F_CONTENT:
			if (jscan_peek(s) != '"') {
				REASON("content: not a string");
				return APP_EPARSE;
			}
			if (jscan_string(s, str + strn, &content_len) != 0) {
				REASON(field_reason("content", s));
				return APP_EPARSE;
			}
			content_off = strn;
			strn += content_len + 1;
			break;
		case F_TAGS:
			if ((r = scan_tags(s, reason, &strn, &nf, &nt)) != 0)
				return r;
			break;
		default:
			if ((r = jscan_skip_value(s)) != 0) {
				REASON("event: not valid JSON");
				return r == APP_ETOOBIG ? r : APP_EPARSE;
			}
		}
		int c = jscan_peek(s);
		if (c == ',') {
			s->p++;
			continue;
		}
		if (c == '}') {
			s->p++;
			break;
		}
		REASON("event: not valid JSON");
		return APP_EPARSE;
	}
	static const struct {
		unsigned bit;
		const char *reason;
	} required[] = {{F_ID, "id: missing"},     {F_PUBKEY, "pubkey: missing"}, {F_CREATED, "created_at: missing"},
			{F_KIND, "kind: missing"}, {F_TAGS, "tags: missing"},     {F_CONTENT, "content: missing"},
			{F_SIG, "sig: missing"}};
	for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
		if (!(seen & required[i].bit)) {
			REASON(required[i].reason);
			return APP_EPARSE;
		}
	/* One allocation: event | tags | v[] per tag | len[] per tag | strings. */
	size_t head = sizeof(struct event) + nt * sizeof(struct event_tag) + nf * (sizeof(char *) + sizeof(size_t));
	struct event *ev = malloc(head + strn + 1);
	if (!ev)
		return APP_ENOMEM;
	memset(ev, 0, sizeof *ev);
	char *block = (char *)ev;
	char *strings = block + head;
	memcpy(strings, str, strn);
	strings[strn] = 0;
	memcpy(ev->id, id, 32);
	memcpy(ev->pubkey, pubkey, 32);
	memcpy(ev->sig, sig, 64);
	ev->kind = (uint32_t)kind;
	ev->created_at = created;
	ev->packed_ = 1;
	ev->content = strings + content_off;
	ev->content_len = content_len;
	ev->tags = nt ? (struct event_tag *)(block + sizeof(struct event)) : NULL;
	ev->ntags = nt;
	char **vp = (char **)(block + sizeof(struct event) + nt * sizeof(struct event_tag));
	size_t *lp = (size_t *)(vp + nf);
	size_t fi = 0;
	for (size_t t = 0; t < nt; t++) {
		struct event_tag *tag = &ev->tags[t];
		tag->n = t_scratch.tagn[t];
		tag->v = vp + fi;
		tag->len = lp + fi;
		for (size_t k = 0; k < tag->n; k++, fi++) {
			tag->v[k] = strings + t_scratch.f[fi].off;
			tag->len[k] = t_scratch.f[fi].len;
		}
	}
	*out = ev;
	REASON("ok");
	return 0;
}

int event_parse_scan(struct event **out, const char **reason, struct jscan *outer)
{
	*out = NULL;
	size_t avail = jscan_remaining(outer);
	size_t bound = avail < EVENT_MAX_JSON ? avail : EVENT_MAX_JSON;
	if (scratch_grow((void **)&t_scratch.str, &t_scratch.strcap, bound + 1, 1))
		return APP_ENOMEM;
	struct jscan s;
	jscan_init(&s, outer->p, bound);
	int r = scan_event(out, reason, &s);
	if (r == 0) {
		outer->p = s.p;
	} else if (r == APP_EPARSE && avail > EVENT_MAX_JSON && s.p >= s.end) {
		REASON("event: JSON text over the size cap");
		r = APP_ETOOBIG;
	}
	/* Do not keep a huge scratch area after a huge event. */
	if (t_scratch.strcap > (1u << 20)) {
		free(t_scratch.str);
		t_scratch.str = NULL;
		t_scratch.strcap = 0;
	}
	return r;
}

int event_parse(struct event **out, const char **reason, const char *json, size_t len)
{
	*out = NULL;
	if (len > EVENT_MAX_JSON) {
		REASON("event: JSON text over the size cap");
		return APP_ETOOBIG;
	}
	struct jscan s;
	jscan_init(&s, json, len);
	int r = event_parse_scan(out, reason, &s);
	if (r == 0 && !jscan_at_end(&s)) {
		event_free(*out);
		*out = NULL;
		REASON("event: not valid JSON (trailing data)");
		return APP_EPARSE;
	}
	return r;
}

static void write_tags(struct jw *w, const struct event *ev)
{
	jw_char(w, '[');
	for (size_t i = 0; i < ev->ntags; i++) {
		if (i)
			jw_char(w, ',');
		jw_char(w, '[');
		for (size_t k = 0; k < ev->tags[i].n; k++) {
			if (k)
				jw_char(w, ',');
			jw_str(w, ev->tags[i].v[k], ev->tags[i].len[k]);
		}
		jw_char(w, ']');
	}
	jw_char(w, ']');
}

static void write_commitment(struct jw *w, const struct event *ev)
{
	jw_raw(w, "[0,", 3);
	jw_hex(w, ev->pubkey, 32);
	jw_char(w, ',');
	jw_u64(w, ev->created_at);
	jw_char(w, ',');
	jw_u64(w, ev->kind);
	jw_char(w, ',');
	write_tags(w, ev);
	jw_char(w, ',');
	jw_str(w, ev->content, ev->content_len);
	jw_char(w, ']');
}

int event_serialize_commitment(char **out, size_t *outlen, const struct event *ev)
{
	struct jw w;
	jw_init(&w, 0);
	write_commitment(&w, ev);
	return jw_finish(&w, out, outlen);
}

/*
 * Each thread reuses one serialization buffer for ids (verification is the
 * hot path); it is released when it grew past 1 MiB.
 */
/*
 * Per-thread buffers (t_id_buf above, t_scratch below) are released when a
 * thread exits: the first use registers the thread with a pthread key whose
 * destructor frees them.
 */
static pthread_key_t g_tls_key;
static pthread_once_t g_tls_key_once = PTHREAD_ONCE_INIT;
static void tls_release(void *unused);

static void tls_key_init(void)
{
	if (pthread_key_create(&g_tls_key, tls_release) != 0)
		abort();
}

static void tls_register(void)
{
	pthread_once(&g_tls_key_once, tls_key_init);
	if (!pthread_getspecific(g_tls_key))
		(void)pthread_setspecific(g_tls_key, &t_id_buf); /* any non-NULL value */
}

int event_compute_id(const struct event *ev, uint8_t id[32])
{
	struct jw *w = &t_id_buf;
	if (!w->p)
		tls_register();
	w->len = 0;
	w->err = 0;
	write_commitment(w, ev);
	int e = w->err;
	if (!e)
		hash_sha256(id, w->p, w->len);
	if (e || w->cap > (1u << 20))
		jw_free(w);
	return e;
}

int event_sign(struct event *ev, const struct keypair *kp)
{
	keys_pubkey(kp, ev->pubkey);
	int r = event_compute_id(ev, ev->id);
	if (r)
		return r;
	return keys_sign(kp, ev->sig, ev->id);
}

int event_verify(const struct event *ev)
{
	uint8_t id[32];
	int r = event_compute_id(ev, id);
	if (r)
		return r;
	if (memcmp(id, ev->id, 32) != 0)
		return APP_EBADID;
	return keys_verify(ev->pubkey, ev->sig, ev->id, 32);
}

int event_to_json(char **out, size_t *outlen, const struct event *ev)
{
	struct jw w;
	jw_init(&w, 0);
	jw_raw(&w, "{\"id\":", 6);
	jw_hex(&w, ev->id, 32);
	jw_raw(&w, ",\"pubkey\":", 10);
	jw_hex(&w, ev->pubkey, 32);
	jw_raw(&w, ",\"created_at\":", 14);
	jw_u64(&w, ev->created_at);
	jw_raw(&w, ",\"kind\":", 8);
	jw_u64(&w, ev->kind);
	jw_raw(&w, ",\"tags\":", 8);
	write_tags(&w, ev);
	jw_raw(&w, ",\"content\":", 11);
	jw_str(&w, ev->content, ev->content_len);
	jw_raw(&w, ",\"sig\":", 7);
	jw_hex(&w, ev->sig, 64);
	jw_char(&w, '}');
	return jw_finish(&w, out, outlen);
}

const struct event_tag *event_tag_find(const struct event *ev, size_t *pos, const char *name, size_t min_fields)
{
	for (size_t i = *pos; i < ev->ntags; i++) {
		const struct event_tag *t = &ev->tags[i];
		if (t->n >= min_fields && t->n >= 1 && strcmp(t->v[0], name) == 0) {
			*pos = i + 1;
			return t;
		}
	}
	*pos = ev->ntags;
	return NULL;
}

const char *event_tag_value(const struct event *ev, const char *name)
{
	size_t pos = 0;
	const struct event_tag *t = event_tag_find(ev, &pos, name, 2);
	return t ? t->v[1] : NULL;
}

int event_expiration(const struct event *ev, uint64_t *out)
{
	const char *v = event_tag_value(ev, "expiration");
	if (!v)
		return APP_ENOTFOUND;
	if (!*v || strlen(v) > 19)
		return APP_EPARSE;
	uint64_t x = 0;
	for (const char *p = v; *p; p++) {
		if (*p < '0' || *p > '9')
			return APP_EPARSE;
		x = x * 10 + (uint64_t)(*p - '0');
	}
	*out = x;
	return 0;
}

int event_kind_is_replaceable(uint32_t kind)
{
	return (kind >= 10000 && kind < 20000) || kind == 0 || kind == 3;
}

int event_kind_is_ephemeral(uint32_t kind)
{
	return kind >= 20000 && kind < 30000;
}

int event_kind_is_addressable(uint32_t kind)
{
	return kind >= 30000 && kind < 40000;
}
