/*
 * ksident.c: the keystore's announcement (ksident.h).
 */
#include "keystore/ksident.h"

#include <string.h>

#include "appliance/event.h"
#include "appliance/nec.h"
#include "enclave/runtime/identity.h"

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

int ksident_announcement(struct identity *id, struct event **out, uint64_t *expires_at,
			 const struct ksident_announce *a, uint64_t now)
{
	struct event *att = NULL, *ann = NULL;
	struct nec_announcement na;
	const struct keypair *kp = identity_keypair(id);
	*out = NULL;
	int r = identity_attest(id, &att, NULL, NULL, 0, now);
	if (r)
		goto out;
	memset(&na, 0, sizeof na);
	na.name = a->name;
	na.version = a->version;
	na.repo = a->repo;
	na.relay = a->inbox;
	na.open = 1;
	na.content = a->content;
	if ((r = nec_announcement_create(&ann, kp, att, &na, now)) != 0 || (r = retag(out, ann, kp)) != 0)
		goto out;
	if (expires_at && event_expiration(*out, expires_at) != 0)
		*expires_at = 0;
	r = 0;
out:
	event_free(att);
	event_free(ann);
	return r;
}
