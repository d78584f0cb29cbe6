/*
 * fuzz_event: NIP-01 event parse + verify; for accepted events (1) the
 * cJSON-based path (event_from_cjson) must accept the same text and give
 * the same event (differential check of the fast scanner), (2) our own
 * serialization must parse back to the same id. Also the filter parser.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/event.h"
#include "appliance/filter.h"
#include "appliance/json.h"
#include <cJSON.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct event *ev = NULL;
	const char *why = NULL;
	if (event_parse(&ev, &why, (const char *)data, size) == 0) {
		(void)event_verify(ev);
		cJSON *j = NULL;
		struct event *ref = NULL;
		if (json_parse(&j, (const char *)data, size, EVENT_MAX_JSON, 64) != 0 ||
		    event_from_cjson(&ref, &why, j) != 0)
			abort(); /* the fast scanner accepted what cJSON refuses */
		uint8_t x[32], y[32];
		if (memcmp(ref->id, ev->id, 32) || memcmp(ref->pubkey, ev->pubkey, 32) || memcmp(ref->sig, ev->sig, 64) ||
		    ref->kind != ev->kind || ref->created_at != ev->created_at || ref->ntags != ev->ntags ||
		    event_compute_id(ref, x) != 0 || event_compute_id(ev, y) != 0 || memcmp(x, y, 32) != 0)
			abort(); /* the two parsers disagree */
		event_free(ref);
		cJSON_Delete(j);
		char *json;
		size_t len;
		if (event_to_json(&json, &len, ev) == 0) {
			struct event *ev2 = NULL;
			if (event_parse(&ev2, &why, json, len) != 0 || memcmp(ev2->id, ev->id, 32) != 0 ||
			    ev2->content_len != ev->content_len || ev2->ntags != ev->ntags)
				abort(); /* our own output must parse back to the same event */
			uint8_t a[32], b[32];
			if (event_compute_id(ev, a) != 0 || event_compute_id(ev2, b) != 0 || memcmp(a, b, 32) != 0)
				abort();
			event_free(ev2);
			free(json);
		}
		event_free(ev);
	}
	/* The same bytes as a filter. */
	struct filter *f = NULL;
	if (filter_parse(&f, &why, (const char *)data, size) == 0) {
		char *json;
		size_t len;
		if (filter_to_json(&json, &len, f) == 0)
			free(json);
		filter_free(f);
	}
	return 0;
}
