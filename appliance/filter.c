#include "filter.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "hex.h"
#include "json.h"

#define REASON(text)                      \
	do {                              \
		if (reason)               \
			*reason = (text); \
	} while (0)

void filter_free(struct filter *f)
{
	if (!f)
		return;
	free(f->ids);
	free(f->authors);
	free(f->kinds);
	for (size_t i = 0; i < f->ntags; i++) {
		for (size_t k = 0; k < f->tags[i].nvalues; k++)
			free(f->tags[i].values[k]);
		free(f->tags[i].values);
	}
	free(f);
}

int filter_new(struct filter **out)
{
	*out = calloc(1, sizeof **out);
	return *out ? 0 : APP_ENOMEM;
}

static int grow(void **arr, size_t n, size_t elem)
{
	if (n >= FILTER_MAX_VALUES)
		return APP_ETOOBIG;
	void *p = realloc(*arr, (n + 1) * elem);
	if (!p)
		return APP_ENOMEM;
	*arr = p;
	return 0;
}

int filter_add_id(struct filter *f, const uint8_t id[32])
{
	int r = grow((void **)&f->ids, f->nids, 32);
	if (r == 0)
		memcpy(f->ids[f->nids++], id, 32);
	return r;
}

int filter_add_author(struct filter *f, const uint8_t pubkey[32])
{
	int r = grow((void **)&f->authors, f->nauthors, 32);
	if (r == 0)
		memcpy(f->authors[f->nauthors++], pubkey, 32);
	return r;
}

int filter_add_kind(struct filter *f, uint32_t kind)
{
	if (kind > EVENT_MAX_KIND)
		return APP_ERANGE;
	int r = grow((void **)&f->kinds, f->nkinds, sizeof(uint32_t));
	if (r == 0)
		f->kinds[f->nkinds++] = kind;
	return r;
}

static int is_letter(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static struct filter_tag *tag_slot(struct filter *f, char letter)
{
	for (size_t i = 0; i < f->ntags; i++)
		if (f->tags[i].letter == letter)
			return &f->tags[i];
	if (f->ntags == FILTER_MAX_TAGS)
		return NULL;
	struct filter_tag *t = &f->tags[f->ntags++];
	memset(t, 0, sizeof *t);
	t->letter = letter;
	return t;
}

int filter_add_tag_value(struct filter *f, char letter, const char *value)
{
	if (!is_letter(letter))
		return APP_EINVAL;
	struct filter_tag *t = tag_slot(f, letter);
	if (!t)
		return APP_ETOOBIG;
	int r = grow((void **)&t->values, t->nvalues, sizeof(char *));
	if (r)
		return r;
	char *v = strdup(value);
	if (!v)
		return APP_ENOMEM;
	t->values[t->nvalues++] = v;
	return 0;
}

int filter_copy(struct filter **out, const struct filter *f)
{
	struct filter *c;
	int r = filter_new(&c);
	for (size_t i = 0; r == 0 && i < f->nids; i++)
		r = filter_add_id(c, f->ids[i]);
	for (size_t i = 0; r == 0 && i < f->nauthors; i++)
		r = filter_add_author(c, f->authors[i]);
	for (size_t i = 0; r == 0 && i < f->nkinds; i++)
		r = filter_add_kind(c, f->kinds[i]);
	for (size_t i = 0; r == 0 && i < f->ntags; i++)
		for (size_t k = 0; r == 0 && k < f->tags[i].nvalues; k++)
			r = filter_add_tag_value(c, f->tags[i].letter, f->tags[i].values[k]);
	if (r) {
		filter_free(c);
		*out = NULL;
		return r;
	}
	c->since = f->since;
	c->until = f->until;
	c->limit = f->limit;
	c->has_since = f->has_since;
	c->has_until = f->has_until;
	c->has_limit = f->has_limit;
	*out = c;
	return 0;
}

static int hex_list(struct filter *f, const cJSON *arr, int authors, const char **reason)
{
	if (!cJSON_IsArray(arr) || !arr->child) {
		REASON(authors ? "authors: not a non-empty array" : "ids: not a non-empty array");
		return APP_EPARSE;
	}
	const cJSON *v;
	cJSON_ArrayForEach(v, arr)
	{
		uint8_t b[32];
		if (!cJSON_IsString(v) || hex_decode(b, 32, v->valuestring, strlen(v->valuestring), 1) != 0) {
			REASON(authors ? "authors: not 64 lowercase hex characters"
				       : "ids: not 64 lowercase hex characters");
			return APP_EPARSE;
		}
		int r = authors ? filter_add_author(f, b) : filter_add_id(f, b);
		if (r) {
			REASON("filter: list too long");
			return r;
		}
	}
	return 0;
}

int filter_from_cjson(struct filter **out, const char **reason, const cJSON *obj)
{
	*out = NULL;
	if (!cJSON_IsObject(obj)) {
		REASON("filter: not a JSON object");
		return APP_EPARSE;
	}
	struct filter *f;
	int r = filter_new(&f);
	if (r)
		return r;
	for (const cJSON *c = obj->child; c; c = c->next) {
		const char *k = c->string;
		if (!strcmp(k, "ids") || !strcmp(k, "authors")) {
			if ((r = hex_list(f, c, k[0] == 'a', reason)) != 0)
				goto fail;
		} else if (!strcmp(k, "kinds")) {
			if (!cJSON_IsArray(c) || !c->child) {
				REASON("kinds: not a non-empty array");
				r = APP_EPARSE;
				goto fail;
			}
			const cJSON *v;
			cJSON_ArrayForEach(v, c)
			{
				uint64_t kind;
				if (json_get_u64(v, EVENT_MAX_KIND, &kind) != 0) {
					REASON("kinds: not an integer in 0..65535");
					r = APP_EPARSE;
					goto fail;
				}
				if ((r = filter_add_kind(f, (uint32_t)kind)) != 0) {
					REASON("kinds: list too long");
					goto fail;
				}
			}
		} else if (k[0] == '#' && is_letter(k[1]) && k[2] == 0) {
			if (!cJSON_IsArray(c) || !c->child) {
				REASON("#tag: not a non-empty array");
				r = APP_EPARSE;
				goto fail;
			}
			const cJSON *v;
			cJSON_ArrayForEach(v, c)
			{
				if (!cJSON_IsString(v)) {
					REASON("#tag: a value is not a string");
					r = APP_EPARSE;
					goto fail;
				}
				if ((k[1] == 'e' || k[1] == 'p') && !(strlen(v->valuestring) == 64 &&
								   hex_is_lower(v->valuestring, 64))) {
					REASON("#e/#p: not 64 lowercase hex characters");
					r = APP_EPARSE;
					goto fail;
				}
				if ((r = filter_add_tag_value(f, k[1], v->valuestring)) != 0) {
					REASON("#tag: list too long");
					goto fail;
				}
			}
		} else if (!strcmp(k, "since") || !strcmp(k, "until") || !strcmp(k, "limit")) {
			uint64_t v;
			if (json_get_u64(c, 9007199254740991ULL, &v) != 0) {
				REASON("since/until/limit: not a non-negative integer");
				r = APP_EPARSE;
				goto fail;
			}
			if (k[0] == 's') {
				f->since = v;
				f->has_since = 1;
			} else if (k[0] == 'u') {
				f->until = v;
				f->has_until = 1;
			} else {
				f->limit = v;
				f->has_limit = 1;
			}
		} else if (!strcmp(k, "search")) {
			if (!cJSON_IsString(c)) {
				REASON("search: not a string");
				r = APP_EPARSE;
				goto fail;
			}
		} else {
			REASON("filter: unknown key");
			r = APP_EPARSE;
			goto fail;
		}
	}
	*out = f;
	return 0;
fail:
	filter_free(f);
	return r;
}

int filter_parse(struct filter **out, const char **reason, const char *json, size_t len)
{
	*out = NULL;
	cJSON *j;
	int r = json_parse(&j, json, len, FILTER_MAX_JSON, 8);
	if (r) {
		REASON(r == APP_ETOOBIG ? "filter: too large" : "filter: not valid JSON");
		return r;
	}
	r = filter_from_cjson(out, reason, j);
	cJSON_Delete(j);
	return r;
}

static int has_id(uint8_t (*list)[32], size_t n, const uint8_t *x)
{
	for (size_t i = 0; i < n; i++)
		if (memcmp(list[i], x, 32) == 0)
			return 1;
	return 0;
}

int filter_match(const struct filter *f, const struct event *ev)
{
	if (f->nids && !has_id(f->ids, f->nids, ev->id))
		return 0;
	if (f->nauthors && !has_id(f->authors, f->nauthors, ev->pubkey))
		return 0;
	if (f->nkinds) {
		size_t i;
		for (i = 0; i < f->nkinds && f->kinds[i] != ev->kind; i++)
			;
		if (i == f->nkinds)
			return 0;
	}
	if (f->has_since && ev->created_at < f->since)
		return 0;
	if (f->has_until && ev->created_at > f->until)
		return 0;
	for (size_t t = 0; t < f->ntags; t++) {
		const struct filter_tag *ft = &f->tags[t];
		int hit = 0;
		for (size_t i = 0; i < ev->ntags && !hit; i++) {
			const struct event_tag *et = &ev->tags[i];
			if (et->n < 2 || et->len[0] != 1 || et->v[0][0] != ft->letter)
				continue;
			for (size_t k = 0; k < ft->nvalues && !hit; k++)
				hit = strcmp(et->v[1], ft->values[k]) == 0;
		}
		if (!hit)
			return 0;
	}
	return 1;
}

static void hex_array(struct jw *w, uint8_t (*list)[32], size_t n)
{
	jw_char(w, '[');
	for (size_t i = 0; i < n; i++) {
		if (i)
			jw_char(w, ',');
		jw_hex(w, list[i], 32);
	}
	jw_char(w, ']');
}

int filter_to_json(char **out, size_t *outlen, const struct filter *f)
{
	struct jw w;
	int comma = 0;
	jw_init(&w, 0);
	jw_char(&w, '{');
	if (f->nids) {
		jw_key(&w, comma, "ids");
		hex_array(&w, f->ids, f->nids);
		comma = 1;
	}
	if (f->nauthors) {
		jw_key(&w, comma, "authors");
		hex_array(&w, f->authors, f->nauthors);
		comma = 1;
	}
	if (f->nkinds) {
		jw_key(&w, comma, "kinds");
		jw_char(&w, '[');
		for (size_t i = 0; i < f->nkinds; i++) {
			if (i)
				jw_char(&w, ',');
			jw_u64(&w, f->kinds[i]);
		}
		jw_char(&w, ']');
		comma = 1;
	}
	for (size_t t = 0; t < f->ntags; t++) {
		char key[3] = {'#', f->tags[t].letter, 0};
		jw_key(&w, comma, key);
		jw_char(&w, '[');
		for (size_t i = 0; i < f->tags[t].nvalues; i++) {
			if (i)
				jw_char(&w, ',');
			jw_cstr(&w, f->tags[t].values[i]);
		}
		jw_char(&w, ']');
		comma = 1;
	}
	if (f->has_since) {
		jw_key(&w, comma, "since");
		jw_u64(&w, f->since);
		comma = 1;
	}
	if (f->has_until) {
		jw_key(&w, comma, "until");
		jw_u64(&w, f->until);
		comma = 1;
	}
	if (f->has_limit) {
		jw_key(&w, comma, "limit");
		jw_u64(&w, f->limit);
	}
	jw_char(&w, '}');
	return jw_finish(&w, out, outlen);
}
