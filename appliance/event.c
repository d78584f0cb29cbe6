#include "event.h"

#include <cJSON.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "hex.h"
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

void event_free(struct event *ev)
{
	if (!ev)
		return;
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
	int err;
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

int event_parse(struct event **out, const char **reason, const char *json, size_t len)
{
	*out = NULL;
	if (len > EVENT_MAX_JSON) {
		REASON("event: JSON text over the size cap");
		return APP_ETOOBIG;
	}
	cJSON *j = NULL;
	int r = json_parse(&j, json, len, EVENT_MAX_JSON, 16);
	if (r) {
		if (json_has_nul_escape(json, len))
			REASON("event: a string decodes to NUL");
		else if (r == APP_ETOOBIG)
			REASON("event: JSON nested too deeply");
		else
			REASON("event: not valid JSON");
		return r == APP_ENOMEM ? r : (r == APP_ETOOBIG ? APP_ETOOBIG : APP_EPARSE);
	}
	r = event_from_cjson(out, reason, j);
	cJSON_Delete(j);
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

int event_compute_id(const struct event *ev, uint8_t id[32])
{
	struct jw w;
	jw_init(&w, 0);
	write_commitment(&w, ev);
	if (w.err) {
		int e = w.err;
		jw_free(&w);
		return e;
	}
	hash_sha256(id, w.p, w.len);
	jw_free(&w);
	return 0;
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
