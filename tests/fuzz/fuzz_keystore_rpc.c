/*
 * fuzz_keystore_rpc: the keystore RPC parsers (appliance/ksrpc.h): request
 * JSON (what a keystore decrypts from any sender), reply JSON (what a
 * client decrypts from a keystore) for each method, and revocation events.
 * The first byte picks the reply method. A parsed request is rebuilt and
 * parsed again: the result must parse.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/event.h"
#include "appliance/ksrpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum ksrpc_method m = (enum ksrpc_method)(1 + data[0] % 6);
	const char *s = (const char *)data + 1;
	size_t n = size - 1;
	const char *why = NULL;
	char id[KSRPC_ID_MAX + 1];
	struct ksrpc_request *req = NULL;
	if (ksrpc_request_parse(&req, &why, id, s, n) == 0) {
		char *j = NULL;
		size_t jl = 0;
		if (!req || strcmp(req->id, id) != 0)
			abort();
		if (ksrpc_request_build(&j, &jl, req) == 0) {
			struct ksrpc_request *again = NULL;
			if (ksrpc_request_parse(&again, &why, NULL, j, jl) != 0 || again->method != req->method ||
			    again->data_len != req->data_len || memcmp(again->data, req->data, req->data_len) != 0 ||
			    again->nsigs != req->nsigs || again->epoch != req->epoch)
				abort();
			ksrpc_request_free(again);
			ksrpc_text_free(j, jl);
		}
		for (size_t i = 0; i < req->nrevocations; i++) {
			struct ksrpc_revocation rv;
			(void)ksrpc_revocation_verify(&rv, &why, req->revocations[i]);
		}
		ksrpc_request_free(req);
	} else if (!why) {
		abort();
	}
	struct ksrpc_reply *rep = NULL;
	if (ksrpc_reply_parse(&rep, &why, m, s, n) == 0) {
		if (!rep || (rep->err == 0 && !rep->result) || rep->data_len > KSRPC_DATA_MAX)
			abort();
		ksrpc_reply_free(rep);
	}
	struct event *ev = NULL;
	if (event_parse(&ev, &why, s, n) == 0) {
		struct ksrpc_revocation rv;
		(void)ksrpc_revocation_verify(&rv, &why, ev);
		event_free(ev);
	}
	return 0;
}
