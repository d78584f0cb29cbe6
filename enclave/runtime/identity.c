/*
 * identity.c: service key and attestations (identity.h).
 */
#include "enclave/runtime/identity.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "appliance/event.h"
#include "appliance/hash.h"
#include "appliance/keys.h"
#include "appliance/log.h"
#include "appliance/nec.h"
#include "appliance/nsm.h"

struct identity {
	struct nsm *nsm;
	struct keypair *kp;
	uint8_t pub[32];
};

static int os_random(uint8_t *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = getrandom(buf + got, len - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return APP_EIO;
		got += (size_t)n;
	}
	return 0;
}

int identity_new(struct identity **out, const char *nsm_spec)
{
	struct identity *id = calloc(1, sizeof *id);
	uint8_t seed[64], sec[32];
	int r = APP_ENOMEM;
	*out = NULL;
	if (!id)
		return APP_ENOMEM;
	if ((r = nsm_open_spec(&id->nsm, nsm_spec)) != 0) {
		log_error("event=nsm_open err=%s", app_errname(r));
		goto out;
	}
	for (int attempt = 0; attempt < 8; attempt++) {
		if ((r = nsm_get_random(id->nsm, seed, 32)) != 0) {
			log_error("event=nsm_get_random err=%s", app_errname(r));
			goto out;
		}
		if ((r = os_random(seed + 32, 32)) != 0)
			goto out;
		hash_sha256(sec, seed, sizeof seed);
		r = keys_from_secret(&id->kp, sec);
		if (r != APP_EBADKEY)
			break;
	}
	if (r)
		goto out;
	keys_pubkey(id->kp, id->pub);
	*out = id;
	id = NULL;
out:
	sodium_memzero(seed, sizeof seed);
	sodium_memzero(sec, sizeof sec);
	identity_free(id);
	return r;
}

void identity_free(struct identity *id)
{
	if (!id)
		return;
	keys_free(id->kp);
	nsm_close(id->nsm);
	free(id);
}

const struct keypair *identity_keypair(const struct identity *id)
{
	return id->kp;
}

const uint8_t *identity_pubkey(const struct identity *id)
{
	return id->pub;
}

int identity_attest(struct identity *id, struct event **out, uint64_t *expires_at, const uint8_t *user_data,
		    size_t len, uint64_t now)
{
	uint8_t *doc = NULL;
	size_t dlen = 0;
	*out = NULL;
	int r = nsm_attestation(id->nsm, &doc, &dlen, user_data, len, NULL, 0, id->pub, 32);
	if (r) {
		log_error("event=nsm_attestation err=%s", app_errname(r));
		return r;
	}
	r = nec_attestation_create(out, id->kp, doc, dlen, now);
	free(doc);
	if (r) {
		log_error("event=attestation_event err=%s", app_errname(r));
		return r;
	}
	if (expires_at && event_expiration(*out, expires_at) != 0)
		*expires_at = 0;
	return 0;
}
