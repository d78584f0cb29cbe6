/*
 * fuzz_relaymsg: the relay->client message parser (relay-client/relaymsg.h), the OK/CLOSED
 * prefix reader and the relay URL parser. For accepted messages: cJSON must accept the same
 * text as JSON (the strict scanner never accepts what a JSON parser refuses), the type must be
 * the first element, an embedded event must serialize and parse back to the same id, and a
 * refusal must always come with a reason class and text.
 */
#include <cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/event.h"
#include "appliance/json.h"
#include "relay-client/relaymsg.h"
#include "relay-client/relayurl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct relaymsg m;
	enum relaymsg_reject why = RELAYMSG_R__COUNT;
	const char *reason = NULL;
	int r = relaymsg_parse(&m, &why, &reason, text, size, 0);
	if (!reason || !reason[0])
		abort();
	if (r != 0) {
		if (why == RELAYMSG_R_NONE && r != APP_ENOMEM)
			abort(); /* every refusal has a class */
		if (m.type != RELAYMSG_NONE || m.event || m.text)
			abort(); /* and leaves nothing behind */
		return 0;
	}
	if (why != RELAYMSG_R_NONE)
		abort();
	cJSON *j = NULL;
	if (json_parse(&j, text, size, RELAYMSG_MAX_LEN, 64) != 0 || !cJSON_IsArray(j))
		abort(); /* accepted something that is not a JSON array */
	const cJSON *t = cJSON_GetArrayItem(j, 0);
	if (!cJSON_IsString(t) || strcmp(t->valuestring, relaymsg_type_name(m.type)) != 0)
		abort();
	cJSON_Delete(j);
	if (m.subid_len != strlen(m.subid) || m.subid_len > RELAYMSG_MAX_SUBID)
		abort();
	if (m.text) {
		if (strlen(m.text) != m.text_len)
			abort(); /* no NUL inside */
		(void)relaymsg_prefix_of(m.text, m.text_len);
	}
	if (m.type == RELAYMSG_EVENT) {
		char *out = NULL;
		size_t len;
		if (!m.event || relaymsg_event(&out, &len, m.event) != 0)
			abort();
		struct event *ev2 = NULL;
		const char *w;
		/* out is ["EVENT",{...}]: the event starts after the 9-byte prefix */
		if (len < 10 || event_parse(&ev2, &w, out + 9, len - 10) != 0 || memcmp(ev2->id, m.event->id, 32) != 0)
			abort();
		event_free(ev2);
		free(out);
	}
	relaymsg_clear(&m);

	/* The same bytes as a relay URL (NUL-terminated copy, bounded). */
	char url[RELAYURL_MAX + 2];
	size_t n = size < sizeof url - 1 ? size : sizeof url - 1;
	memcpy(url, data, n);
	url[n] = 0;
	struct relayurl u;
	if (relayurl_parse(&u, NULL, url) == 0 && (u.port == 0 || u.path[0] != '/' || !u.host[0]))
		abort();
	return 0;
}
