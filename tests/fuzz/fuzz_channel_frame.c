/*
 * fuzz_channel_frame: the channel's frame reader and the control-message
 * decoders (appliance/channel.h, appliance/ctlmsg.h) on a stream of bytes as
 * either side receives it: frames are cut from the input with the
 * incremental parser (lengths checked against CHANNEL_MAX_FRAME before
 * anything is allocated) and each payload is decoded as its type, and as
 * every other type too. A decoded message must re-encode to the same
 * payload (one spelling per message); LIST bodies are walked.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/channel.h"
#include "appliance/ctlmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t types[] = {CTLMSG_HELLO, CTLMSG_LOG, CTLMSG_PUT, CTLMSG_GET, CTLMSG_LIST, CTLMSG_BYE,
				CTLMSG_WELCOME, CTLMSG_RESULT, CTLMSG_SHUTDOWN};

static void decode_all(uint8_t type, const uint8_t *p, size_t len)
{
	struct ctlmsg m;
	for (size_t i = 0; i < sizeof types; i++) {
		uint8_t t = i == 0 ? type : types[i];
		if (ctlmsg_decode(&m, t, p, len) != 0)
			continue;
		uint8_t *b = NULL;
		size_t n = 0;
		if (ctlmsg_encode(&b, &n, &m) != 0)
			abort();
		if (n != len || (n && memcmp(b, p, n) != 0))
			abort();
		free(b);
		if (t == CTLMSG_RESULT && m.status == CTLMSG_OK && m.data_len >= 1) {
			const uint8_t *q = m.data + 1, *end = m.data + m.data_len;
			const char *name;
			size_t nl;
			uint64_t sz;
			while (ctlmsg_list_next(&q, end, &name, &nl, &sz) == 0)
				if (q > end || nl == 0 || nl > CTLMSG_NAME_MAX)
					abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	while (off < size) {
		uint8_t type = 0;
		const uint8_t *payload = NULL;
		uint32_t len = 0;
		size_t used = 0;
		int r = channel_frame_parse(&type, &payload, &len, &used, data + off, size - off, CHANNEL_MAX_FRAME);
		if (r != 0)
			break; /* incomplete, or a header a receiver drops the connection for */
		if (used != CHANNEL_HEADER_LEN + (size_t)len || used > size - off || type == 0)
			abort();
		decode_all(type, payload, len);
		off += used;
	}
	/* the whole input as one payload of each type, too */
	if (size > 0)
		decode_all(data[0], data + 1, size - 1);
	return 0;
}
