/*
 * ksident.c: service identity and announcement (ksident.h).
 */
#include "keystore/ksident.h"

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

struct ksident {
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

int ksident_new(struct ksident **out, const char *nsm_spec)
{
	struct ksident *id = calloc(1, sizeof *id);
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
	ksident_free(id);
	return r;
}

void ksident_free(struct ksident *id)
{
	if (!id)
		return;
	keys_free(id->kp);
	nsm_close(id->nsm);
	free(id);
}

const struct keypair *ksident_keypair(const struct ksident *id)
{
	return id->kp;
}

const uint8_t *ksident_pubkey(const struct ksident *id)
{
	return id->pub;
}

/* retag: a copy of ev without ["k", ...] tags plus ["k", "29525"], signed by kp. */
static int retag(struct event **out, const struct event *ev, const struct keypair *kp)
{
	struct event *n = NULL;
	int r = event_new(&n, ev->kind, ev->created_at, ev->content, ev->content_len);
	for (size_t i = 0; r == 0 && i < ev->ntags; i++) {
		const struct event_tag *t = &ev->tags[i];
		if (t->n >= 1 && strcmp(t->v[0], "k") == 0)
			continue;
		r = event_add_tag(n, t->n, (const char *const *)t->v);
	}
	if (r == 0)
		r = event_add_tagv(n, "k", "29525", NULL);
	if (r == 0)
		r = event_sign(n, kp);
	if (r) {
		event_free(n);
		return r;
	}
	*out = n;
	return 0;
}

int ksident_announcement(struct ksident *id, struct event **out, uint64_t *expires_at,
			 const struct ksident_announce *a, uint64_t now)
{
	uint8_t *doc = NULL;
	size_t dlen = 0;
	struct event *att = NULL, *ann = NULL;
	struct nec_announcement na;
	*out = NULL;
	int r = nsm_attestation(id->nsm, &doc, &dlen, NULL, 0, NULL, 0, id->pub, 32);
	if (r) {
		log_error("event=nsm_attestation err=%s", app_errname(r));
		goto out;
	}
	if ((r = nec_attestation_create(&att, id->kp, doc, dlen, now)) != 0) {
		log_error("event=attestation_event err=%s", app_errname(r));
		goto out;
	}
	memset(&na, 0, sizeof na);
	na.name = a->name;
	na.version = a->version;
	na.repo = a->repo;
	na.relay = a->inbox;
	na.open = 1;
	na.content = a->content;
	if ((r = nec_announcement_create(&ann, id->kp, att, &na, now)) != 0 || (r = retag(out, ann, id->kp)) != 0)
		goto out;
	if (expires_at && event_expiration(*out, expires_at) != 0)
		*expires_at = 0;
	r = 0;
out:
	free(doc);
	event_free(att);
	event_free(ann);
	return r;
}
