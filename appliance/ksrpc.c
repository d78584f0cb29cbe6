/*
 * ksrpc.c: the keystore RPC wire format (ksrpc.h).
 */
#include "ksrpc.h"

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest.h"
#include "b64.h"
#include "event.h"
#include "hex.h"
#include "json.h"
#include "keys.h"

static void set_reason(const char **reason, const char *why)
{
	if (reason)
		*reason = why;
}

const char *ksrpc_method_name(enum ksrpc_method m)
{
	switch (m) {
	case KSRPC_PING: return "ping";
	case KSRPC_STATUS: return "status";
	case KSRPC_HAS: return "has";
	case KSRPC_SET: return "set";
	case KSRPC_GET: return "get";
	case KSRPC_REVOKE: return "revoke";
	}
	return "?";
}

static int method_parse(const char *s, enum ksrpc_method *out)
{
	static const enum ksrpc_method all[] = {KSRPC_PING, KSRPC_STATUS, KSRPC_HAS, KSRPC_SET, KSRPC_GET, KSRPC_REVOKE};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		if (strcmp(s, ksrpc_method_name(all[i])) == 0) {
			*out = all[i];
			return 0;
		}
	return APP_EUNSUPPORTED;
}

int ksrpc_err_from_name(const char *name)
{
	for (int e = -1; e > APP_E_MIN_; e--)
		if (strcmp(app_errname(e), name) == 0)
			return e;
	return 0;
}

static int printable(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

int ksrpc_request_new(struct ksrpc_request **out)
{
	*out = NULL;
	if (sodium_init() < 0)
		return APP_EINTERNAL;
	struct ksrpc_request *r = sodium_malloc(sizeof *r);
	if (!r)
		return APP_ENOMEM;
	memset(r, 0, sizeof *r);
	r->policy.t = KSRPC_T_DEFAULT;
	*out = r;
	return 0;
}

void ksrpc_request_free(struct ksrpc_request *req)
{
	if (!req)
		return;
	free(req->attestation);
	for (size_t i = 0; i < req->nsigs; i++)
		event_free(req->sigs[i]);
	for (size_t i = 0; i < req->nrevocations; i++)
		event_free(req->revocations[i]);
	sodium_free(req); /* wipes */
}

void ksrpc_text_free(char *text, size_t len)
{
	if (!text)
		return;
	sodium_memzero(text, len);
	free(text);
}

/*
 * keys_of: checks that every member of obj is named in names[0..n) and
 * appears once; vals[i] gets the member named names[i] (NULL if absent).
 * Returns 0 or APP_EPARSE (reason set).
 */
static int keys_of(const cJSON *obj, const char *const *names, size_t n, const cJSON **vals, const char **reason,
		   const char *unknown_reason)
{
	for (size_t i = 0; i < n; i++)
		vals[i] = NULL;
	for (const cJSON *c = obj->child; c; c = c->next) {
		size_t i = 0;
		while (i < n && (!c->string || strcmp(c->string, names[i]) != 0))
			i++;
		if (i == n) {
			set_reason(reason, unknown_reason);
			return APP_EPARSE;
		}
		if (vals[i]) {
			set_reason(reason, "duplicate key");
			return APP_EPARSE;
		}
		vals[i] = c;
	}
	return 0;
}

/* str_field: a JSON string of 1..max bytes (printable ASCII when `ascii`) into out (max + 1 bytes). */
static int str_field(char *out, size_t max, const cJSON *v, int ascii, const char **reason, const char *why)
{
	if (!cJSON_IsString(v) || !v->valuestring) {
		set_reason(reason, why);
		return APP_EPARSE;
	}
	size_t l = strlen(v->valuestring);
	if (l == 0 || l > max) {
		set_reason(reason, why);
		return l ? APP_ETOOBIG : APP_EPARSE;
	}
	if (ascii && !printable(v->valuestring, l)) {
		set_reason(reason, why);
		return APP_EPARSE;
	}
	memcpy(out, v->valuestring, l + 1);
	return 0;
}

static int hex_field(uint8_t *out, size_t outlen, const cJSON *v, const char **reason, const char *why)
{
	if (!cJSON_IsString(v) || !v->valuestring ||
	    hex_decode(out, outlen, v->valuestring, strlen(v->valuestring), 1) != 0) {
		set_reason(reason, why);
		return APP_EPARSE;
	}
	return 0;
}

static int events_field(struct event **out, size_t max, size_t *n, const cJSON *arr, const char **reason,
			const char *why)
{
	if (!cJSON_IsArray(arr)) {
		set_reason(reason, why);
		return APP_EPARSE;
	}
	int count = cJSON_GetArraySize(arr);
	if (count < 0 || (size_t)count > max) {
		set_reason(reason, why);
		return APP_ERANGE;
	}
	for (const cJSON *c = arr->child; c; c = c->next) {
		const char *evwhy = NULL;
		if (!cJSON_IsObject(c)) {
			set_reason(reason, why);
			return APP_EPARSE;
		}
		int r = event_from_cjson(&out[*n], &evwhy, c);
		if (r) {
			set_reason(reason, why);
			return r == APP_ENOMEM ? r : APP_EPARSE;
		}
		(*n)++;
	}
	return 0;
}

static int attestation_field(struct ksrpc_request *req, const cJSON *v, const char **reason)
{
	if (!cJSON_IsString(v) || !v->valuestring) {
		set_reason(reason, "params.attestation must be a base64 string");
		return APP_EPARSE;
	}
	size_t l = strlen(v->valuestring);
	if (l > KSRPC_ATTEST_B64_MAX) {
		set_reason(reason, "params.attestation is too large");
		return APP_ETOOBIG;
	}
	int r = b64_decode_alloc(&req->attestation, &req->attestation_len, v->valuestring, l, ATTEST_DOC_MAX);
	if (r || req->attestation_len == 0) {
		set_reason(reason, "params.attestation must be a base64 string");
		return r == APP_ENOMEM ? r : r == APP_ETOOBIG ? r : APP_EPARSE;
	}
	return 0;
}

static int policy_field(struct ksrpc_policy *p, const cJSON *obj, const char **reason)
{
	static const char *const names[] = {"repo", "ref", "release_pubkeys", "threshold", "version", "t", "bind_host"};
	const cJSON *v[7];
	int r;
	int cmp;
	if (!cJSON_IsObject(obj)) {
		set_reason(reason, "params.policy must be an object");
		return APP_EPARSE;
	}
	if ((r = keys_of(obj, names, 7, v, reason, "params.policy: unknown key")) != 0)
		return r;
	p->present = 1;
	if (v[0] && v[1]) {
		set_reason(reason, "params.policy: repo and ref given both");
		return APP_EPARSE;
	}
	const cJSON *repo = v[0] ? v[0] : v[1];
	if (repo && (r = str_field(p->repo, NEC_REPO_MAX, repo, 1, reason, "params.policy.repo: 1..256 printable bytes")) != 0)
		return r;
	if (v[2]) {
		if (!cJSON_IsArray(v[2])) {
			set_reason(reason, "params.policy.release_pubkeys must be an array of hex pubkeys");
			return APP_EPARSE;
		}
		int count = cJSON_GetArraySize(v[2]);
		if (count < 0 || count > KSRPC_MAINTAINERS_MAX) {
			set_reason(reason, "params.policy.release_pubkeys: at most 16");
			return APP_ERANGE;
		}
		for (const cJSON *c = v[2]->child; c; c = c->next) {
			uint8_t *pk = p->maintainers[p->nmaintainers];
			if ((r = hex_field(pk, 32, c, reason, "params.policy.release_pubkeys: 64 lowercase hex each")) != 0)
				return r;
			if (keys_pubkey_valid(pk) != 0) {
				set_reason(reason, "params.policy.release_pubkeys: not a valid pubkey");
				return APP_EPARSE;
			}
			for (size_t k = 0; k < p->nmaintainers; k++)
				if (memcmp(p->maintainers[k], pk, 32) == 0) {
					set_reason(reason, "params.policy.release_pubkeys: duplicate pubkey");
					return APP_EPARSE;
				}
			p->nmaintainers++;
		}
	}
	p->threshold = p->nmaintainers;
	if (v[3]) {
		uint64_t t;
		if ((r = json_get_u64(v[3], KSRPC_MAINTAINERS_MAX, &t)) != 0 || t == 0 || t > p->nmaintainers) {
			set_reason(reason, "params.policy.threshold: 1..number of release_pubkeys");
			return r == APP_EPARSE ? r : APP_ERANGE;
		}
		p->threshold = (size_t)t;
	}
	if (v[4]) {
		if ((r = str_field(p->version, NEC_VERSION_MAX, v[4], 1, reason, "params.policy.version: like 1.2.3")) != 0)
			return r;
		if (nec_version_cmp(p->version, p->version, &cmp) != 0) {
			set_reason(reason, "params.policy.version: like 1.2.3");
			return APP_EPARSE;
		}
	}
	if (v[5]) {
		if (!cJSON_IsString(v[5]) || !v[5]->valuestring ||
		    (strcmp(v[5]->valuestring, "prod") != 0 && strcmp(v[5]->valuestring, "dev") != 0)) {
			set_reason(reason, "params.policy.t: \"prod\" or \"dev\"");
			return APP_EPARSE;
		}
		p->t = strcmp(v[5]->valuestring, "dev") == 0 ? KSRPC_T_DEV : KSRPC_T_PROD;
	}
	if (v[6]) {
		if (!cJSON_IsBool(v[6])) {
			set_reason(reason, "params.policy.bind_host must be true or false");
			return APP_EPARSE;
		}
		p->bind_host = cJSON_IsTrue(v[6]);
	}
	if (p->nmaintainers && (!p->repo[0] || !p->version[0])) {
		set_reason(reason, "params.policy: release_pubkeys need repo and version");
		return APP_EPARSE;
	}
	return 0;
}

static int pcrs_field(struct ksrpc_request *req, const cJSON *obj, const char **reason)
{
	static const char *const names[] = {"PCR0", "PCR1", "PCR2", "PCR4"};
	const cJSON *v[4];
	int r;
	if (!cJSON_IsObject(obj)) {
		set_reason(reason, "params.pcrs must be an object");
		return APP_EPARSE;
	}
	if ((r = keys_of(obj, names, 4, v, reason, "params.pcrs: only PCR0, PCR1, PCR2, PCR4")) != 0)
		return r;
	for (int i = 0; i < 3; i++) {
		if (!v[i]) {
			set_reason(reason, "params.pcrs needs PCR0, PCR1 and PCR2");
			return APP_EPARSE;
		}
		if ((r = hex_field(req->pcrs[i], 48, v[i], reason, "params.pcrs: 96 lowercase hex each")) != 0)
			return r;
	}
	if (v[3]) {
		if ((r = hex_field(req->pcr4, 48, v[3], reason, "params.pcrs: 96 lowercase hex each")) != 0)
			return r;
		req->has_pcr4 = 1;
	}
	req->has_pcrs = 1;
	return 0;
}

/* params of each method: the allowed keys. */
enum { P_ATT, P_DATA, P_EPOCH, P_POLICY, P_INPUT, P_SIGS, P_REVOC, P_PCRS, P_PCR4, P__N };
static const char *const param_names[P__N] = {"attestation", "data", "epoch", "policy", "input",
					      "release_signatures", "revocations", "pcrs", "PCR4"};

static unsigned allowed_params(enum ksrpc_method m)
{
	switch (m) {
	case KSRPC_PING:
	case KSRPC_STATUS: return 0;
	case KSRPC_HAS: return 1u << P_ATT | 1u << P_PCRS | 1u << P_PCR4;
	case KSRPC_SET: return 1u << P_ATT | 1u << P_DATA | 1u << P_EPOCH | 1u << P_POLICY | 1u << P_INPUT | 1u << P_REVOC;
	case KSRPC_GET: return 1u << P_ATT | 1u << P_INPUT | 1u << P_SIGS | 1u << P_REVOC;
	case KSRPC_REVOKE: return 1u << P_REVOC;
	}
	return 0;
}

static int input_field(struct ksrpc_request *req, const cJSON *obj, int sigs_allowed, const char **reason)
{
	static const char *const names[] = {"ref", "release_signatures"};
	const cJSON *v[2];
	int r;
	if (!cJSON_IsObject(obj)) {
		set_reason(reason, "params.input must be an object");
		return APP_EPARSE;
	}
	if ((r = keys_of(obj, names, 2, v, reason, "params.input: only ref and release_signatures")) != 0)
		return r;
	if (v[0] && (r = str_field(req->input_ref, NEC_REPO_MAX, v[0], 1, reason, "params.input.ref: 1..256 printable bytes")) != 0)
		return r;
	if (v[1]) {
		if (!sigs_allowed) {
			/* keycrux's set carries the setter's own release signatures: checked for shape only */
			struct event *tmp[KSRPC_SIGS_MAX];
			size_t n = 0;
			r = events_field(tmp, KSRPC_SIGS_MAX, &n, v[1], reason, "params.input.release_signatures: up to 16 events");
			for (size_t i = 0; i < n; i++)
				event_free(tmp[i]);
			return r;
		}
		if (req->nsigs) {
			set_reason(reason, "release_signatures given twice (params and params.input)");
			return APP_EPARSE;
		}
		return events_field(req->sigs, KSRPC_SIGS_MAX, &req->nsigs, v[1], reason,
				    "params.input.release_signatures: up to 16 events");
	}
	return 0;
}

static int parse_params(struct ksrpc_request *req, cJSON *params, const char **reason)
{
	const cJSON *v[P__N];
	int r;
	if (!params) {
		for (int i = 0; i < P__N; i++)
			v[i] = NULL;
	} else {
		if (!cJSON_IsObject(params)) {
			set_reason(reason, "params must be an object");
			return APP_EPARSE;
		}
		if ((r = keys_of(params, param_names, P__N, v, reason, "params: unknown key")) != 0)
			return r;
	}
	unsigned allowed = allowed_params(req->method);
	for (int i = 0; i < P__N; i++)
		if (v[i] && !(allowed >> i & 1u)) {
			set_reason(reason, "params: a key this method does not take");
			return APP_EPARSE;
		}
	if (v[P_ATT] && (r = attestation_field(req, v[P_ATT], reason)) != 0)
		return r;
	if (v[P_DATA]) {
		if (!cJSON_IsString(v[P_DATA]) || !v[P_DATA]->valuestring) {
			set_reason(reason, "params.data must be a string");
			return APP_EPARSE;
		}
		size_t l = strlen(v[P_DATA]->valuestring);
		if (l == 0 || l > KSRPC_DATA_MAX) {
			set_reason(reason, "params.data: 1..1024 bytes");
			return l ? APP_ETOOBIG : APP_EPARSE;
		}
		memcpy(req->data, v[P_DATA]->valuestring, l);
		req->data_len = l;
	}
	if (v[P_EPOCH] && (r = json_get_u64(v[P_EPOCH], 1ull << 53, &req->epoch)) != 0) {
		set_reason(reason, "params.epoch: an integer 0..2^53");
		return r;
	}
	if (v[P_POLICY] && (r = policy_field(&req->policy, v[P_POLICY], reason)) != 0)
		return r;
	if (v[P_SIGS] && (r = events_field(req->sigs, KSRPC_SIGS_MAX, &req->nsigs, v[P_SIGS], reason,
					   "params.release_signatures: up to 16 events")) != 0)
		return r;
	if (v[P_INPUT] && (r = input_field(req, v[P_INPUT], req->method == KSRPC_GET, reason)) != 0)
		return r;
	if (v[P_REVOC] && (r = events_field(req->revocations, KSRPC_REVOCATIONS_MAX, &req->nrevocations, v[P_REVOC],
					    reason, "params.revocations: up to 16 events")) != 0)
		return r;
	if (v[P_PCRS] && (r = pcrs_field(req, v[P_PCRS], reason)) != 0)
		return r;
	if (v[P_PCR4]) {
		if ((r = hex_field(req->pcr4, 48, v[P_PCR4], reason, "params.PCR4: 96 lowercase hex")) != 0)
			return r;
		req->has_pcr4 = 1;
	}
	switch (req->method) {
	case KSRPC_SET:
		if (!req->attestation || !req->data_len) {
			set_reason(reason, "set needs attestation and data");
			return APP_EPARSE;
		}
		break;
	case KSRPC_GET:
		if (!req->attestation) {
			set_reason(reason, "get needs an attestation");
			return APP_EPARSE;
		}
		break;
	case KSRPC_HAS:
		if ((req->attestation != NULL) + (v[P_PCRS] != NULL) + (v[P_PCR4] != NULL) != 1) {
			set_reason(reason, "has needs one of attestation, pcrs, PCR4");
			return APP_EPARSE;
		}
		break;
	case KSRPC_REVOKE:
		if (!req->nrevocations) {
			set_reason(reason, "revoke needs revocations");
			return APP_EPARSE;
		}
		break;
	default:
		break;
	}
	return 0;
}

/* wipe_data: zero the data string inside the tree (it is a secret). */
static void wipe_data(cJSON *root)
{
	cJSON *params = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "params") : NULL;
	if (!cJSON_IsObject(params))
		return;
	for (cJSON *c = params->child; c; c = c->next)
		if (c->string && strcmp(c->string, "data") == 0 && cJSON_IsString(c) && c->valuestring)
			sodium_memzero(c->valuestring, strlen(c->valuestring));
}

int ksrpc_request_parse(struct ksrpc_request **out, const char **reason, char *id_out, const char *json,
			size_t len)
{
	static const char *const names[] = {"id", "method", "params"};
	const cJSON *v[3];
	cJSON *root = NULL;
	struct ksrpc_request *req = NULL;
	int r;
	*out = NULL;
	if (id_out)
		id_out[0] = 0;
	set_reason(reason, "malformed request");
	if (len > KSRPC_PLAIN_MAX) {
		set_reason(reason, "request too large");
		return APP_ETOOBIG;
	}
	if ((r = json_parse(&root, json, len, KSRPC_PLAIN_MAX, KSRPC_DEPTH)) != 0) {
		set_reason(reason, r == APP_ETOOBIG ? "request nested too deeply" : "request is not JSON");
		return r == APP_ENOMEM ? r : r == APP_ETOOBIG ? r : APP_EPARSE;
	}
	if (!cJSON_IsObject(root)) {
		set_reason(reason, "request is not a JSON object");
		r = APP_EPARSE;
		goto out;
	}
	if ((r = ksrpc_request_new(&req)) != 0)
		goto out;
	if ((r = keys_of(root, names, 3, v, reason, "request: unknown key (id, method, params)")) != 0)
		goto out;
	if (!v[0] || (r = str_field(req->id, KSRPC_ID_MAX, v[0], 1, reason, "id: 1..64 printable bytes")) != 0) {
		set_reason(reason, "id: 1..64 printable bytes");
		r = r ? r : APP_EPARSE;
		goto out;
	}
	if (id_out)
		memcpy(id_out, req->id, strlen(req->id) + 1);
	if (!v[1] || !cJSON_IsString(v[1]) || !v[1]->valuestring) {
		set_reason(reason, "method must be a string");
		r = APP_EPARSE;
		goto out;
	}
	if ((r = method_parse(v[1]->valuestring, &req->method)) != 0) {
		set_reason(reason, "unknown method");
		goto out;
	}
	if ((r = parse_params(req, (cJSON *)v[2], reason)) != 0)
		goto out;
	*out = req;
	req = NULL;
	set_reason(reason, "ok");
	r = 0;
out:
	if (root)
		wipe_data(root);
	cJSON_Delete(root);
	ksrpc_request_free(req);
	return r;
}

/*
 * jw_secret_init: a writer whose buffer is allocated at its final size at
 * once, so that no realloc leaves a copy of a secret in freed memory.
 */
static void jw_secret_init(struct jw *w)
{
	jw_init(w, KSRPC_PLAIN_MAX);
	w->p = malloc(KSRPC_PLAIN_MAX + 1);
	if (w->p)
		w->cap = KSRPC_PLAIN_MAX + 1;
	else
		w->err = APP_ENOMEM;
}

/* jw_secret_fail: wipes and frees after an error; returns the error. */
static int jw_secret_fail(struct jw *w)
{
	int r = w->err;
	if (w->p)
		sodium_memzero(w->p, w->cap);
	jw_free(w);
	return r;
}

static void jw_events(struct jw *w, struct event *const *evs, size_t n)
{
	jw_char(w, '[');
	for (size_t i = 0; i < n; i++) {
		char *j = NULL;
		size_t jl = 0;
		if (event_to_json(&j, &jl, evs[i]) != 0) {
			if (!w->err)
				w->err = APP_ENOMEM;
			return;
		}
		if (i)
			jw_char(w, ',');
		jw_raw(w, j, jl);
		free(j);
	}
	jw_char(w, ']');
}

static void jw_pcr(struct jw *w, int comma, const char *name, const uint8_t pcr[48])
{
	jw_key(w, comma, name);
	jw_hex(w, pcr, 48);
}

int ksrpc_request_build(char **out, size_t *len, const struct ksrpc_request *req)
{
	struct jw w;
	char *att = NULL;
	int r = APP_EINVAL;
	*out = NULL;
	*len = 0;
	size_t idl = strnlen(req->id, KSRPC_ID_MAX + 1);
	if (idl == 0 || idl > KSRPC_ID_MAX || !printable(req->id, idl))
		return APP_EINVAL;
	if ((req->method == KSRPC_SET && (!req->attestation || !req->data_len || req->data_len > KSRPC_DATA_MAX)) ||
	    (req->method == KSRPC_GET && !req->attestation) || (req->method == KSRPC_REVOKE && !req->nrevocations) ||
	    req->nsigs > KSRPC_SIGS_MAX || req->nrevocations > KSRPC_REVOCATIONS_MAX ||
	    req->policy.nmaintainers > KSRPC_MAINTAINERS_MAX || req->epoch > (1ull << 53))
		return APP_EINVAL;
	if (req->method == KSRPC_HAS && !req->attestation && !req->has_pcrs && !req->has_pcr4)
		return APP_EINVAL;
	if (req->attestation) {
		if (req->attestation_len == 0 || req->attestation_len > ATTEST_DOC_MAX)
			return APP_EINVAL;
		if (!(att = b64_encode_alloc(req->attestation, req->attestation_len)))
			return APP_ENOMEM;
	}
	jw_secret_init(&w);
	jw_raw(&w, "{\"id\":", 6);
	jw_str(&w, req->id, idl);
	jw_raw(&w, ",\"method\":", 10);
	jw_cstr(&w, ksrpc_method_name(req->method));
	jw_raw(&w, ",\"params\":{", 11);
	int comma = 0;
	switch (req->method) {
	case KSRPC_HAS:
		if (att) {
			jw_key(&w, comma, "attestation");
			jw_cstr(&w, att);
		} else if (req->has_pcrs) {
			jw_key(&w, comma, "pcrs");
			jw_char(&w, '{');
			jw_pcr(&w, 0, "PCR0", req->pcrs[0]);
			jw_pcr(&w, 1, "PCR1", req->pcrs[1]);
			jw_pcr(&w, 1, "PCR2", req->pcrs[2]);
			if (req->has_pcr4)
				jw_pcr(&w, 1, "PCR4", req->pcr4);
			jw_char(&w, '}');
		} else {
			jw_pcr(&w, comma, "PCR4", req->pcr4);
		}
		break;
	case KSRPC_SET:
	case KSRPC_GET:
		jw_key(&w, comma, "attestation");
		jw_cstr(&w, att);
		comma = 1;
		if (req->method == KSRPC_SET) {
			jw_key(&w, 1, "data");
			jw_str(&w, (const char *)req->data, req->data_len);
			jw_key(&w, 1, "epoch");
			jw_u64(&w, req->epoch);
			if (req->policy.present) {
				const struct ksrpc_policy *p = &req->policy;
				jw_key(&w, 1, "policy");
				jw_char(&w, '{');
				int pc = 0;
				if (p->repo[0]) {
					jw_key(&w, pc, "repo");
					jw_cstr(&w, p->repo);
					pc = 1;
				}
				if (p->nmaintainers) {
					jw_key(&w, pc, "release_pubkeys");
					jw_char(&w, '[');
					for (size_t i = 0; i < p->nmaintainers; i++) {
						if (i)
							jw_char(&w, ',');
						jw_hex(&w, p->maintainers[i], 32);
					}
					jw_char(&w, ']');
					jw_key(&w, 1, "threshold");
					jw_u64(&w, p->threshold ? p->threshold : p->nmaintainers);
					pc = 1;
				}
				if (p->version[0]) {
					jw_key(&w, pc, "version");
					jw_cstr(&w, p->version);
					pc = 1;
				}
				if (p->t != KSRPC_T_DEFAULT) {
					jw_key(&w, pc, "t");
					jw_cstr(&w, p->t == KSRPC_T_DEV ? "dev" : "prod");
					pc = 1;
				}
				jw_key(&w, pc, "bind_host");
				jw_raw(&w, p->bind_host ? "true" : "false", p->bind_host ? 4 : 5);
				jw_char(&w, '}');
			}
		} else if (req->nsigs) {
			jw_key(&w, 1, "release_signatures");
			jw_events(&w, req->sigs, req->nsigs);
		}
		if (req->nrevocations) {
			jw_key(&w, 1, "revocations");
			jw_events(&w, req->revocations, req->nrevocations);
		}
		break;
	case KSRPC_REVOKE:
		jw_key(&w, comma, "revocations");
		jw_events(&w, req->revocations, req->nrevocations);
		break;
	default:
		break;
	}
	jw_raw(&w, "}}", 2);
	if (w.err) {
		r = jw_secret_fail(&w);
		goto out;
	}
	r = jw_finish(&w, out, len);
out:
	free(att);
	return r;
}

static int reply_build(char **out, size_t *len, const char *id, const char *body, size_t body_len, int is_result,
		       int err)
{
	struct jw w;
	*out = NULL;
	*len = 0;
	size_t idl = id ? strnlen(id, KSRPC_ID_MAX + 1) : 0;
	if (idl > KSRPC_ID_MAX)
		return APP_EINVAL;
	jw_secret_init(&w);
	jw_raw(&w, "{\"id\":", 6);
	jw_str(&w, id ? id : "", idl);
	if (is_result) {
		jw_raw(&w, ",\"result\":", 10);
		jw_raw(&w, body, body_len);
	} else {
		jw_raw(&w, ",\"error\":", 9);
		jw_str(&w, body, body_len);
		jw_raw(&w, ",\"code\":", 8);
		jw_cstr(&w, app_errname(err));
	}
	jw_char(&w, '}');
	if (w.err)
		return jw_secret_fail(&w);
	return jw_finish(&w, out, len);
}

int ksrpc_reply_ok(char **out, size_t *len, const char *id, const char *result_json, size_t result_len)
{
	if (!result_json || !result_len)
		return APP_EINVAL;
	return reply_build(out, len, id, result_json, result_len, 1, 0);
}

int ksrpc_reply_error(char **out, size_t *len, const char *id, int err, const char *text)
{
	if (err >= 0 || !text)
		return APP_EINVAL;
	return reply_build(out, len, id, text, strnlen(text, KSRPC_REASON_MAX), 0, err);
}

void ksrpc_reply_free(struct ksrpc_reply *rep)
{
	if (!rep)
		return;
	if (rep->result) {
		sodium_memzero(rep->result, rep->result_len);
		free(rep->result);
	}
	sodium_free(rep);
}

static void copy_sanitized(char *out, size_t cap, const char *s)
{
	size_t i = 0;
	for (; s[i] && i + 1 < cap; i++)
		out[i] = ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) ? '?' : s[i];
	out[i] = 0;
}

static int reply_result(struct ksrpc_reply *rep, enum ksrpc_method method, const cJSON *res, const char **reason)
{
	int r;
	char *text = cJSON_PrintUnformatted(res);
	if (!text)
		return APP_ENOMEM;
	rep->result = text;
	rep->result_len = strlen(text);
	if (method == KSRPC_GET) {
		const cJSON *data = res, *epoch = NULL;
		if (cJSON_IsObject(res)) { /* ours: {data, epoch, ...}; keycrux: the data string itself */
			data = cJSON_GetObjectItemCaseSensitive(res, "data");
			epoch = cJSON_GetObjectItemCaseSensitive(res, "epoch");
		}
		if (!cJSON_IsString(data) || !data->valuestring) {
			set_reason(reason, "get result without a data string");
			return APP_EPARSE;
		}
		size_t l = strlen(data->valuestring);
		if (l == 0 || l > KSRPC_DATA_MAX) {
			set_reason(reason, "get result: data of 1..1024 bytes");
			return APP_EPARSE;
		}
		memcpy(rep->data, data->valuestring, l);
		rep->data_len = l;
		rep->has_data = 1;
		if (epoch && (r = json_get_u64(epoch, 1ull << 53, &rep->epoch)) != 0) {
			set_reason(reason, "get result: bad epoch");
			return APP_EPARSE;
		}
	} else if (method == KSRPC_HAS) {
		const cJSON *found = cJSON_IsObject(res) ? cJSON_GetObjectItemCaseSensitive(res, "found") : NULL;
		const cJSON *count = cJSON_IsObject(res) ? cJSON_GetObjectItemCaseSensitive(res, "count") : NULL;
		const cJSON *epoch = cJSON_IsObject(res) ? cJSON_GetObjectItemCaseSensitive(res, "epoch") : NULL;
		uint64_t c = 0;
		if (cJSON_IsBool(found)) {
			rep->found = cJSON_IsTrue(found);
		} else if (count && json_get_u64(count, 1ull << 53, &c) == 0) {
			rep->found = c > 0;
		} else {
			set_reason(reason, "has result without found or count");
			return APP_EPARSE;
		}
		if (epoch && json_get_u64(epoch, 1ull << 53, &rep->epoch) != 0) {
			set_reason(reason, "has result: bad epoch");
			return APP_EPARSE;
		}
	}
	return 0;
}

int ksrpc_reply_parse(struct ksrpc_reply **out, const char **reason, enum ksrpc_method method, const char *json,
		      size_t len)
{
	cJSON *root = NULL;
	struct ksrpc_reply *rep = NULL;
	int r;
	*out = NULL;
	set_reason(reason, "malformed reply");
	if (len > KSRPC_PLAIN_MAX) {
		set_reason(reason, "reply too large");
		return APP_ETOOBIG;
	}
	if ((r = json_parse(&root, json, len, KSRPC_PLAIN_MAX, KSRPC_DEPTH)) != 0)
		return r == APP_ENOMEM ? r : r == APP_ETOOBIG ? r : APP_EPARSE;
	if (sodium_init() < 0) {
		r = APP_EINTERNAL;
		goto out;
	}
	if (!(rep = sodium_malloc(sizeof *rep))) {
		r = APP_ENOMEM;
		goto out;
	}
	memset(rep, 0, sizeof *rep);
	r = APP_EPARSE;
	if (!cJSON_IsObject(root))
		goto out;
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(root, "result");
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(root, "code");
	if (!cJSON_IsString(id) || !id->valuestring || strlen(id->valuestring) > KSRPC_ID_MAX) {
		set_reason(reason, "reply id must be a string of at most 64 bytes");
		goto out;
	}
	memcpy(rep->id, id->valuestring, strlen(id->valuestring) + 1);
	if (error && !cJSON_IsNull(error)) {
		if (!cJSON_IsString(error) || !error->valuestring) {
			set_reason(reason, "reply error must be a string");
			goto out;
		}
		copy_sanitized(rep->error, sizeof rep->error, error->valuestring);
		if (code && !cJSON_IsNull(code)) {
			int e = cJSON_IsString(code) && code->valuestring ? ksrpc_err_from_name(code->valuestring) : 0;
			rep->err = e ? e : APP_EPROTO;
		} else {
			rep->err = strcmp(error->valuestring, KSRPC_NOT_FOUND) == 0 ? APP_ENOTFOUND : APP_EREFUSED;
		}
		if (!rep->error[0])
			snprintf(rep->error, sizeof rep->error, "%s", app_strerror(rep->err));
	} else {
		if (!res || cJSON_IsNull(res)) {
			set_reason(reason, "reply without result or error");
			goto out;
		}
		if ((r = reply_result(rep, method, res, reason)) != 0)
			goto out;
	}
	*out = rep;
	rep = NULL;
	set_reason(reason, "ok");
	r = 0;
out:
	if (root && method == KSRPC_GET) { /* the data string is a secret */
		cJSON *rres = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "result") : NULL;
		cJSON *d = cJSON_IsObject(rres) ? cJSON_GetObjectItemCaseSensitive(rres, "data") : rres;
		if (cJSON_IsString(d) && d->valuestring)
			sodium_memzero(d->valuestring, strlen(d->valuestring));
	}
	cJSON_Delete(root);
	ksrpc_reply_free(rep);
	return r;
}

/* ---- revocations ---- */

static const char *one_tag(const struct event *ev, const char *name, size_t *count)
{
	size_t pos = 0, n = 0;
	const struct event_tag *t, *first = NULL;
	while ((t = event_tag_find(ev, &pos, name, 1)) != NULL) {
		if (!first)
			first = t;
		n++;
	}
	*count = n;
	return n == 1 && first->n >= 2 ? first->v[1] : NULL;
}

int ksrpc_revocation_verify(struct ksrpc_revocation *out, const char **reason, const struct event *ev)
{
	size_t n = 0;
	int r;
	memset(out, 0, sizeof *out);
	if (ev->kind != KSRPC_KIND_REVOCATION) {
		set_reason(reason, "not a revocation (kind 63798)");
		return APP_EINVAL;
	}
	if (ev->content_len > KSRPC_REVOKE_REASON_MAX) {
		set_reason(reason, "revocation reason too long");
		return APP_ETOOBIG;
	}
	if ((r = event_verify(ev)) != 0) {
		set_reason(reason, "revocation: bad id or signature");
		return r;
	}
	const char *repo = one_tag(ev, "r", &n);
	if (n != 1 || !repo || !repo[0] || strlen(repo) > NEC_REPO_MAX || !printable(repo, strlen(repo))) {
		set_reason(reason, "revocation needs one r tag (the repository)");
		return APP_EPARSE;
	}
	unsigned seen = 0;
	size_t pos = 0;
	const struct event_tag *x;
	while ((x = event_tag_find(ev, &pos, "x", 1)) != NULL) {
		int k = -1;
		if (x->n == 3 && x->len[2] == 4 && strncmp(x->v[2], "PCR", 3) == 0 && x->v[2][3] >= '0' && x->v[2][3] <= '2')
			k = x->v[2][3] - '0';
		if (k < 0 || (seen >> k & 1u) || hex_decode(out->pcr[k], 48, x->v[1], x->len[1], 1) != 0) {
			set_reason(reason, "revocation x tags must be PCR0, PCR1, PCR2 once each, 96 lowercase hex");
			return APP_EPARSE;
		}
		seen |= 1u << k;
	}
	if (seen != 7u) {
		set_reason(reason, "revocation lacks an x tag for PCR0, PCR1 or PCR2");
		return APP_EPARSE;
	}
	memcpy(out->repo, repo, strlen(repo) + 1);
	memcpy(out->pubkey, ev->pubkey, 32);
	out->created_at = ev->created_at;
	set_reason(reason, "verified");
	return 0;
}

int ksrpc_revocation_create(struct event **out, const struct keypair *kp, const struct nec_release *rel,
			    const char *reason, uint64_t created_at)
{
	struct event *ev = NULL;
	char hx[3][2 * 48 + 1];
	int r;
	*out = NULL;
	size_t rl = reason ? strlen(reason) : 0;
	size_t repol = strnlen(rel->repo, NEC_REPO_MAX + 1);
	if (rl > KSRPC_REVOKE_REASON_MAX)
		return APP_ETOOBIG;
	if (repol == 0 || repol > NEC_REPO_MAX || !printable(rel->repo, repol))
		return APP_EINVAL;
	if ((r = event_new(&ev, KSRPC_KIND_REVOCATION, created_at, reason ? reason : "", rl)) != 0)
		goto out;
	if ((r = event_add_tagv(ev, "r", rel->repo, NULL)) != 0)
		goto out;
	if (rel->version[0] && (r = event_add_tagv(ev, "v", rel->version, NULL)) != 0)
		goto out;
	for (int i = 0; i < 3; i++) {
		char label[5] = {'P', 'C', 'R', (char)('0' + i), 0};
		hex_encode(hx[i], rel->pcr[i], 48);
		if ((r = event_add_tagv(ev, "x", hx[i], label, NULL)) != 0)
			goto out;
	}
	if ((r = event_add_tagv(ev, "alt", "release revocation", NULL)) != 0 || (r = event_sign(ev, kp)) != 0)
		goto out;
	*out = ev;
	ev = NULL;
	r = 0;
out:
	event_free(ev);
	return r;
}
