/*
 * filter.h: NIP-01 subscription filters: parse, serialize, match.
 *
 * A filter has optional ids, authors, kinds, #<letter> tag lists, since,
 * until and limit. Inside one filter every present condition must hold
 * (AND); inside a list any value may match (OR); since <= created_at <=
 * until, both inclusive; a tag condition holds when some tag named <letter>
 * has its first value (tag[1]) in the list. ids, authors, #e and #p are
 * exact 64-character lowercase hex (prefix matching was removed from
 * NIP-01). limit only bounds a relay's initial answer and is not a match
 * condition.
 */
#ifndef APPLIANCE_FILTER_H
#define APPLIANCE_FILTER_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct cJSON;
struct event;

#define FILTER_MAX_JSON (64 * 1024) /* bytes of one filter's JSON */
#define FILTER_MAX_VALUES 1000      /* entries of one list */
#define FILTER_MAX_TAGS 52          /* distinct #<letter> conditions */

struct filter_tag {
	char letter;   /* a-z or A-Z */
	char **values; /* NUL-terminated */
	size_t nvalues;
};

struct filter {
	uint8_t (*ids)[32];
	size_t nids;
	uint8_t (*authors)[32];
	size_t nauthors;
	uint32_t *kinds;
	size_t nkinds;
	struct filter_tag tags[FILTER_MAX_TAGS];
	size_t ntags;
	uint64_t since, until, limit;
	int has_since, has_until, has_limit;
};

/*
 * filter_parse: one filter object from JSON text. Refused with *reason (a
 * static text naming the field): not an object, unknown keys (other than
 * ids, authors, kinds, #x, since, until, limit, search), wrong types, empty
 * lists, hex of the wrong form, kinds outside 0..65535, lists longer than
 * FILTER_MAX_VALUES, text over FILTER_MAX_JSON.
 * Returns 0 with *out (free with filter_free), APP_EPARSE, APP_ETOOBIG,
 * APP_ERANGE, APP_ENOMEM. reason may be NULL.
 */
int filter_parse(struct filter **out, const char **reason, const char *json, size_t len) APP_WUR;

/* filter_from_cjson: as filter_parse for a parsed cJSON object. */
int filter_from_cjson(struct filter **out, const char **reason, const struct cJSON *obj) APP_WUR;

/* filter_new: an empty filter (matches every event). Returns 0 or APP_ENOMEM. */
int filter_new(struct filter **out) APP_WUR;

/*
 * filter_add_id, filter_add_author, filter_add_kind, filter_add_tag_value:
 * append one value to a list. Return 0, APP_ETOOBIG (list full), APP_EINVAL
 * (letter not a-zA-Z), APP_ENOMEM.
 */
int filter_add_id(struct filter *f, const uint8_t id[32]) APP_WUR;
int filter_add_author(struct filter *f, const uint8_t pubkey[32]) APP_WUR;
int filter_add_kind(struct filter *f, uint32_t kind) APP_WUR;
int filter_add_tag_value(struct filter *f, char letter, const char *value) APP_WUR;

/* filter_copy: a deep copy. Returns 0 or APP_ENOMEM. */
int filter_copy(struct filter **out, const struct filter *f) APP_WUR;

/* filter_match: 1 if ev satisfies every condition of f, else 0. */
int filter_match(const struct filter *f, const struct event *ev);

/*
 * filter_to_json: compact JSON of f (keys: ids, authors, kinds, #x..., since,
 * until, limit) as a new string (free with free()). Returns 0 or APP_ENOMEM.
 */
int filter_to_json(char **out, size_t *outlen, const struct filter *f) APP_WUR;

/* filter_free: frees; NULL is a no-op. */
void filter_free(struct filter *f);

#endif
