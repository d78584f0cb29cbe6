/*
 * pool.c: the relay pool (see pool.h for the behaviour and its caps).
 *
 * Structure: everything network-side lives on the service thread (the one
 * calling relay_pool_service): relays, subscriptions, publishes, the dedupe
 * set. Other threads talk to it through a locked command queue plus
 * lws_cancel_service; counters are atomics so status snapshots need no lock.
 */
#include "pool.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/event.h"
#include "appliance/filter.h"
#include "appliance/hex.h"
#include "appliance/keys.h"
#include "appliance/log.h"
#include "relay-client/lru.h"

#define PROTO_NAME "appliance-relay-pool"
#define RX_CHUNK 65536           /* libwebsockets receive chunk (messages are reassembled) */
#define RX_KEEP (256 * 1024)     /* receive buffer kept between messages; larger ones are freed */
#define STABLE_MS 10000          /* a connection up this long resets the reconnect backoff */
#define NOTICE_LOG_MAX 160       /* bytes of a NOTICE text that reach the log */
#define AUTH_KIND 22242          /* NIP-42 */
#define BACKOFF_SHIFT_MAX 16

/* ---- counters -------------------------------------------------------------------------------- */

#define COUNTERS(X)                                                                                  \
	X(connects) X(reconnects) X(connect_failures) X(disconnects) X(msgs_in) X(bytes_in) X(msgs_out) \
	X(bytes_out) X(events_out) X(events_in) X(events_delivered) X(events_duplicate) X(events_invalid)            \
	X(events_unmatched) X(events_unknown_sub) X(malformed) X(oversize) X(binary) X(queue_full)     \
	X(ok_accepted) X(ok_rejected) X(ok_unknown) X(publish_retries) X(eose) X(closed) X(notices)    \
	X(counts) X(unknown_sub_msgs) X(auth_challenges) X(auth_sent) X(auth_accepted) X(auth_rejected)

struct counters {
#define X(n) _Atomic uint64_t n;
	COUNTERS(X)
#undef X
	_Atomic uint64_t malformed_by[RELAYMSG_R__COUNT];
	_Atomic uint64_t queued;
};

#define CADD(r, field, v) atomic_fetch_add_explicit(&(r)->c.field, (uint64_t)(v), memory_order_relaxed)
#define CINC(r, field) CADD(r, field, 1)

/* ---- state ----------------------------------------------------------------------------------- */

struct outmsg {
	struct outmsg *next;
	size_t len;
	unsigned char buf[]; /* LWS_PRE bytes of headroom, then the message */
};

struct relay {
	struct relay_pool *pool;
	size_t index;
	char url[RELAYURL_MAX + 1];
	struct relayurl u;
	char connect_host[RELAYURL_HOST_MAX + 1];
	uint16_t connect_port;
	_Atomic int state;
	int started;
	struct lws *wsi;      /* the current connection, NULL when none */
	int connecting_sync;  /* inside lws_client_connect_via_info */
	int kill_sent;
	int ever;             /* a connection was attempted before */
	uint64_t connect_deadline, retry_at, connected_at;
	unsigned backoff_n;
	/* outbound */
	struct outmsg *qhead, *qtail;
	size_t nqueued, nwait;
	/* inbound */
	char *rx;
	size_t rxlen, rxcap;
	int rx_in_msg, rx_discard;
	/* NIP-42 */
	char *challenge;
	_Atomic int authed; /* read by status snapshots on other threads */
	int auth_pending, auth_wanted;
	uint8_t auth_id[32];
	char last_error[RELAY_ERROR_MAX]; /* under pool->lock */
	struct counters c;
};

enum target_state { T_NONE = 0, T_WAIT, T_SENT, T_RETRY, T_AUTH, T_DONE };

struct pub_target {
	enum target_state state;
	enum relay_pub_status status;
	enum relaymsg_prefix prefix;
	unsigned attempts;
	uint64_t due;
	char *message;
};

struct pub {
	struct pub *next;
	uint64_t handle;
	uint8_t id[32];
	char *msg;
	size_t msglen;
	uint64_t mask;
	int all;
	uint64_t deadline;
	relay_publish_cb cb;
	void *user;
	struct pub_target t[RELAY_POOL_MAX_RELAYS];
};

enum sr_state { SR_NONE = 0, SR_WAIT, SR_SENT, SR_LIVE, SR_AUTH, SR_CLOSED };

struct sub_relay {
	enum sr_state state;
	int done;           /* counts toward "EOSE from all" */
	uint64_t newest;    /* newest created_at delivered from this relay (clamped to now) */
	uint64_t caught_up; /* wall clock up to which this relay sent everything (EOSE, or live until lost) */
	uint64_t auth_due;
	char *auth_msg;     /* the auth-required text while waiting for AUTH */
};

struct sub {
	uint64_t handle;
	char subid[20];
	struct filter **filters;
	size_t nfilters;
	uint64_t mask;
	int all;
	struct relay_sub_cbs cbs;
	void *user;
	int eose_all_sent;
	struct sub_relay r[RELAY_POOL_MAX_RELAYS];
};

enum cmd_kind { CMD_ADD_RELAY, CMD_PUBLISH, CMD_SUB_OPEN, CMD_SUB_CLOSE };

struct cmd {
	struct cmd *next;
	enum cmd_kind kind;
	struct relay *relay;
	struct pub *pub;
	struct sub *sub;
	uint64_t handle;
};

struct relay_pool {
	struct relay_pool_opts o;
	char *ca_file;
	struct lws_context *ctx;
	struct lws_protocols protocols[2];
	lws_retry_bo_t retry;
	lws_sorted_usec_list_t wake_sul;
	pthread_mutex_t lock;
	/* under lock */
	struct cmd *cmd_head, *cmd_tail;
	uint64_t next_handle;
	uint64_t *open_subs; /* handles of subscriptions opened and not closed */
	size_t nopen_subs;
	size_t npubs_reserved;
	struct relay *relay[RELAY_POOL_MAX_RELAYS];
	_Atomic size_t nrelays;
	/* service thread */
	struct sub **subs;
	size_t nsubs;
	struct pub *pubs;
	struct lru *dedupe;
	int destroying;
	_Atomic int stopping;
	_Atomic uint64_t subs_refused, publishes_refused, publishes_settled, dedupe_evictions;
	_Atomic uint64_t dedupe_size, subs_open, publishes_pending;
};

static const char *const state_names[] = {"idle", "connecting", "connected", "backoff", "stopped"};

const char *relay_state_name(enum relay_state s)
{
	return (size_t)s < sizeof state_names / sizeof state_names[0] ? state_names[s] : "?";
}

static const char *const pub_status_names[] = {"pending", "accepted", "rejected", "timeout", "failed"};

const char *relay_pub_status_name(enum relay_pub_status s)
{
	return (size_t)s < sizeof pub_status_names / sizeof pub_status_names[0] ? pub_status_names[s] : "?";
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t wall_s(void)
{
	time_t t = time(NULL);
	return t > 0 ? (uint64_t)t : 0;
}

/* jittered: a random delay in [d/2, d] ("equal jitter"). */
static uint64_t jittered(uint64_t d)
{
	uint32_t x;
	keys_random(&x, sizeof x);
	uint64_t half = d / 2;
	return half + (half ? (uint64_t)x % (half + 1) : 0);
}

/* backoff_delay: base * 2^n capped at max, jittered. */
static uint64_t backoff_delay(const struct relay_pool *p, unsigned n)
{
	uint64_t d = p->o.backoff_min_ms;
	for (unsigned i = 0; i < n && i < BACKOFF_SHIFT_MAX && d < p->o.backoff_max_ms; i++)
		d *= 2;
	if (d > p->o.backoff_max_ms)
		d = p->o.backoff_max_ms;
	return jittered(d);
}

static void set_error(struct relay *r, const char *text)
{
	pthread_mutex_lock(&r->pool->lock);
	snprintf(r->last_error, sizeof r->last_error, "%s", text ? text : "");
	pthread_mutex_unlock(&r->pool->lock);
}

static void set_state(struct relay *r, enum relay_state s)
{
	atomic_store(&r->state, (int)s);
}

static enum relay_state get_state(const struct relay *r)
{
	return (enum relay_state)atomic_load(&((struct relay *)r)->state);
}

static void idhex8(char out[17], const uint8_t id[32])
{
	hex_encode(out, id, 8);
}

/* The last error line libwebsockets logged on this thread (a TLS verify reason, say). */
static _Thread_local char t_lws_err[RELAY_ERROR_MAX];

static void lws_log_emit(int level, const char *line)
{
	char buf[RELAY_ERROR_MAX];
	size_t n = strnlen(line, sizeof buf - 1);
	/* drop the "[time] E: " style prefix lws may add and the newline */
	memcpy(buf, line, n);
	buf[n] = 0;
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = 0;
	if (level & LLL_ERR)
		snprintf(t_lws_err, sizeof t_lws_err, "%s", buf);
	log_debug("lws level=%d %s", level, buf);
}

static pthread_once_t lws_log_once = PTHREAD_ONCE_INIT;

static void lws_log_init(void)
{
	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
}

/* ---- outbound queue -------------------------------------------------------------------------- */

static void queue_clear(struct relay *r)
{
	struct outmsg *m = r->qhead;
	while (m) {
		struct outmsg *n = m->next;
		free(m);
		m = n;
	}
	r->qhead = r->qtail = NULL;
	r->nqueued = 0;
	atomic_store(&r->c.queued, (uint64_t)r->nwait);
}

static int queue_room(const struct relay *r)
{
	return r->nqueued + r->nwait < r->pool->o.max_queue;
}

/* enqueue: copies msg for writing to r (connected). Returns 0, APP_ELIMIT, APP_ENOMEM. */
static int enqueue(struct relay *r, const char *msg, size_t len)
{
	if (!queue_room(r)) {
		CINC(r, queue_full);
		return APP_ELIMIT;
	}
	size_t sz;
	if (__builtin_add_overflow(sizeof(struct outmsg) + LWS_PRE, len, &sz))
		return APP_ENOMEM;
	struct outmsg *m = malloc(sz);
	if (!m)
		return APP_ENOMEM;
	m->next = NULL;
	m->len = len;
	memcpy(m->buf + LWS_PRE, msg, len);
	if (r->qtail)
		r->qtail->next = m;
	else
		r->qhead = m;
	r->qtail = m;
	r->nqueued++;
	atomic_store(&r->c.queued, (uint64_t)(r->nqueued + r->nwait));
	if (r->wsi)
		lws_callback_on_writable(r->wsi);
	return 0;
}

/* ---- subscriptions --------------------------------------------------------------------------- */

static struct sub *sub_find(struct relay_pool *p, uint64_t handle)
{
	for (size_t i = 0; i < p->nsubs; i++)
		if (p->subs[i]->handle == handle)
			return p->subs[i];
	return NULL;
}

/* sub_by_subid: the open subscription named subid ("s" + lowercase hex handle), or NULL. */
static struct sub *sub_by_subid(struct relay_pool *p, const char *subid, size_t len)
{
	if (len < 2 || len > 17 || subid[0] != 's')
		return NULL;
	uint64_t h = 0;
	for (size_t i = 1; i < len; i++) {
		char c = subid[i];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return NULL;
		h = h << 4 | d;
	}
	return sub_find(p, h);
}

static void sub_free(struct sub *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nfilters; i++)
		filter_free(s->filters[i]);
	free(s->filters);
	for (size_t i = 0; i < RELAY_POOL_MAX_RELAYS; i++)
		free(s->r[i].auth_msg);
	free(s);
}

static void check_eose_all(struct relay_pool *p, struct sub *s)
{
	if (s->eose_all_sent)
		return;
	size_t n = atomic_load(&p->nrelays);
	for (size_t i = 0; i < n; i++) {
		if (!(s->mask & (1ULL << i)) || !p->relay[i]->started)
			continue;
		if (!s->r[i].done)
			return;
	}
	s->eose_all_sent = 1;
	log_debug("event=eose_all sub=%s", s->subid);
	if (s->cbs.on_eose)
		s->cbs.on_eose(s->user, s->handle, RELAY_ALL);
}

/* sub_closed_by: the subscription ended on relay i (CLOSED, or could not be sent). */
static void sub_closed_by(struct relay_pool *p, struct sub *s, size_t i, const char *msg)
{
	struct sub_relay *sr = &s->r[i];
	sr->state = SR_CLOSED;
	sr->done = 1;
	free(sr->auth_msg);
	sr->auth_msg = NULL;
	if (s->cbs.on_closed)
		s->cbs.on_closed(s->user, s->handle, i, relaymsg_prefix_of(msg, strlen(msg)), msg);
	check_eose_all(p, s);
}

static void send_req(struct relay *r, struct sub *s)
{
	struct relay_pool *p = r->pool;
	struct sub_relay *sr = &s->r[r->index];
	uint64_t floor = 0, margin = p->o.resub_margin_s;
	uint64_t seen = sr->newest > sr->caught_up ? sr->newest : sr->caught_up;
	if (seen)
		floor = seen > margin ? seen - margin : 1;
	char *msg = NULL;
	size_t len = 0;
	int rc = relaymsg_req(&msg, &len, s->subid, (const struct filter *const *)s->filters, s->nfilters, floor);
	if (rc == 0)
		rc = enqueue(r, msg, len);
	free(msg);
	if (rc) {
		log_warn("event=req_failed relay=%s sub=%s err=%s", r->url, s->subid, app_errname(rc));
		sub_closed_by(p, s, r->index, rc == APP_ELIMIT ? "error: queue full" : "error: cannot send REQ");
		return;
	}
	sr->state = SR_SENT;
	log_debug("event=req relay=%s sub=%s since=%llu", r->url, s->subid, (unsigned long long)floor);
}

static void send_close(struct relay *r, struct sub *s)
{
	char *msg = NULL;
	size_t len = 0;
	if (relaymsg_close(&msg, &len, s->subid) == 0 && enqueue(r, msg, len) != 0)
		log_debug("event=close_dropped relay=%s sub=%s", r->url, s->subid);
	free(msg);
}

/* ---- publishes ------------------------------------------------------------------------------- */

static void pub_free(struct pub *pb)
{
	if (!pb)
		return;
	for (size_t i = 0; i < RELAY_POOL_MAX_RELAYS; i++)
		free(pb->t[i].message);
	free(pb->msg);
	free(pb);
}

static void target_done(struct relay_pool *p, struct pub *pb, size_t i, enum relay_pub_status st,
			enum relaymsg_prefix prefix, const char *message)
{
	struct pub_target *t = &pb->t[i];
	struct relay *r = p->relay[i];
	if (t->state == T_WAIT && r->nwait)
		r->nwait--;
	atomic_store(&r->c.queued, (uint64_t)(r->nqueued + r->nwait));
	t->state = T_DONE;
	t->status = st;
	t->prefix = prefix;
	if (message) {
		char *m = strdup(message);
		if (m) {
			free(t->message);
			t->message = m;
		}
	}
	char idh[17];
	idhex8(idh, pb->id);
	log_debug("event=publish_result relay=%s id=%s status=%s", r->url, idh, relay_pub_status_name(st));
}

/* check_settled: calls back and frees pb when every relay settled. Returns 1 if freed. */
static int check_settled(struct relay_pool *p, struct pub *pb)
{
	size_t n = atomic_load(&p->nrelays);
	size_t count = 0;
	for (size_t i = 0; i < n; i++) {
		if (!(pb->mask & (1ULL << i)))
			continue;
		if (pb->t[i].state != T_DONE)
			return 0;
		count++;
	}
	struct relay_pub_result res[RELAY_POOL_MAX_RELAYS];
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (!(pb->mask & (1ULL << i)))
			continue;
		res[k].relay = i;
		res[k].url = p->relay[i]->url;
		res[k].status = pb->t[i].status;
		res[k].prefix = pb->t[i].prefix;
		res[k].message = pb->t[i].message ? pb->t[i].message : "";
		res[k].attempts = pb->t[i].attempts;
		k++;
	}
	/* unlink before the callback (it may publish again) */
	struct pub **pp = &p->pubs;
	while (*pp && *pp != pb)
		pp = &(*pp)->next;
	if (*pp)
		*pp = pb->next;
	pthread_mutex_lock(&p->lock);
	p->npubs_reserved--;
	pthread_mutex_unlock(&p->lock);
	atomic_fetch_sub(&p->publishes_pending, 1);
	atomic_fetch_add(&p->publishes_settled, 1);
	if (pb->cb)
		pb->cb(pb->user, pb->handle, pb->id, res, count);
	pub_free(pb);
	return 1;
}

static void send_event(struct relay *r, struct pub *pb)
{
	struct relay_pool *p = r->pool;
	struct pub_target *t = &pb->t[r->index];
	if (t->state == T_WAIT && r->nwait)
		r->nwait--;
	int rc = enqueue(r, pb->msg, pb->msglen);
	if (rc) {
		target_done(p, pb, r->index, RELAY_PUB_FAILED, RELAYMSG_P_NONE,
			    rc == APP_ELIMIT ? "queue full" : "out of memory");
		return;
	}
	CINC(r, events_out);
	if (t->attempts)
		CINC(r, publish_retries);
	t->attempts++;
	t->state = T_SENT;
	t->due = now_ms() + p->o.publish_timeout_ms;
}

/* target_wait: the relay is not connected; wait for it (within the queue cap). */
static void target_wait(struct relay_pool *p, struct pub *pb, struct relay *r)
{
	struct pub_target *t = &pb->t[r->index];
	if (t->state == T_WAIT)
		return;
	if (!queue_room(r)) {
		CINC(r, queue_full);
		target_done(p, pb, r->index, RELAY_PUB_FAILED, RELAYMSG_P_NONE, "queue full");
		return;
	}
	t->state = T_WAIT;
	r->nwait++;
	atomic_store(&r->c.queued, (uint64_t)(r->nqueued + r->nwait));
}

/* ---- NIP-42 ---------------------------------------------------------------------------------- */

static void send_auth(struct relay *r)
{
	struct relay_pool *p = r->pool;
	if (!p->o.auth_key || !r->challenge || r->auth_pending || r->authed || !r->wsi)
		return;
	struct event *ev = NULL;
	char *msg = NULL;
	size_t len = 0;
	int rc = event_new(&ev, AUTH_KIND, wall_s(), "", 0);
	if (rc == 0)
		rc = event_add_tagv(ev, "relay", r->url, NULL);
	if (rc == 0)
		rc = event_add_tagv(ev, "challenge", r->challenge, NULL);
	if (rc == 0)
		rc = event_sign(ev, p->o.auth_key);
	if (rc == 0)
		rc = relaymsg_auth(&msg, &len, ev);
	if (rc == 0)
		rc = enqueue(r, msg, len);
	if (rc == 0) {
		memcpy(r->auth_id, ev->id, 32);
		r->auth_pending = 1;
		CINC(r, auth_sent);
		char idh[17];
		idhex8(idh, ev->id);
		log_info("event=auth relay=%s id=%s", r->url, idh);
	} else {
		log_warn("event=auth_failed relay=%s err=%s", r->url, app_errname(rc));
	}
	free(msg);
	event_free(ev);
}

/* auth_done: the relay answered our AUTH; redo (or fail) what waited for it. */
static void auth_done(struct relay *r, int accepted, const char *message)
{
	struct relay_pool *p = r->pool;
	r->auth_pending = 0;
	r->authed = accepted;
	if (accepted) {
		CINC(r, auth_accepted);
		log_info("event=auth_ok relay=%s", r->url);
	} else {
		CINC(r, auth_rejected);
		log_warn("event=auth_refused relay=%s", r->url);
	}
	for (struct pub *pb = p->pubs, *next; pb; pb = next) {
		next = pb->next;
		if (!(pb->mask & (1ULL << r->index)) || pb->t[r->index].state != T_AUTH)
			continue;
		if (accepted) {
			send_event(r, pb);
		} else {
			char m[RELAY_ERROR_MAX];
			snprintf(m, sizeof m, "auth-required: AUTH refused: %s", message);
			target_done(p, pb, r->index, RELAY_PUB_REJECTED, RELAYMSG_P_AUTH_REQUIRED, m);
		}
		check_settled(p, pb);
	}
	for (size_t k = 0; k < p->nsubs; k++) {
		struct sub *s = p->subs[k];
		if (!(s->mask & (1ULL << r->index)) || s->r[r->index].state != SR_AUTH)
			continue;
		if (accepted) {
			free(s->r[r->index].auth_msg);
			s->r[r->index].auth_msg = NULL;
			send_req(r, s);
		} else {
			char m[RELAY_ERROR_MAX];
			snprintf(m, sizeof m, "auth-required: AUTH refused: %s", message);
			sub_closed_by(p, s, r->index, m);
		}
	}
}

/* ---- connections ----------------------------------------------------------------------------- */

static void notify_relay(struct relay *r, enum relay_state s, const char *detail)
{
	struct relay_pool *p = r->pool;
	if (p->o.on_relay && !p->destroying)
		p->o.on_relay(p->o.user, r->index, s, detail);
}

static void conn_lost(struct relay *r, const char *why, int was_connected)
{
	struct relay_pool *p = r->pool;
	enum relay_state st = get_state(r);
	if (st != RELAY_CONNECTING && st != RELAY_CONNECTED)
		return;
	uint64_t now = now_ms();
	r->wsi = NULL;
	queue_clear(r);
	r->rxlen = 0;
	r->rx_in_msg = r->rx_discard = 0;
	if (r->rxcap > RX_KEEP) {
		free(r->rx);
		r->rx = NULL;
		r->rxcap = 0;
	}
	free(r->challenge);
	r->challenge = NULL;
	r->authed = 0;
	r->auth_pending = 0;
	if (was_connected)
		CINC(r, disconnects);
	else
		CINC(r, connect_failures);
	set_error(r, why);
	if (p->destroying) {
		set_state(r, RELAY_STOPPED);
		return;
	}
	if (was_connected && now - r->connected_at >= STABLE_MS)
		r->backoff_n = 0;
	uint64_t delay = backoff_delay(p, r->backoff_n);
	if (r->backoff_n < BACKOFF_SHIFT_MAX)
		r->backoff_n++;
	r->retry_at = now + delay;
	set_state(r, RELAY_BACKOFF);
	log_warn("event=%s relay=%s reason=\"%s\" retry_ms=%llu", was_connected ? "disconnected" : "connect_failed",
		 r->url, why, (unsigned long long)delay);

	/* subscriptions: resend on reconnect; a relay that failed before EOSE counts as done */
	for (size_t k = 0; k < p->nsubs; k++) {
		struct sub *s = p->subs[k];
		struct sub_relay *sr = &s->r[r->index];
		if (!(s->mask & (1ULL << r->index)) || sr->state == SR_CLOSED || sr->state == SR_NONE)
			continue;
		if (sr->state == SR_LIVE)
			sr->caught_up = wall_s(); /* live until now: everything before was received */
		sr->state = SR_WAIT;
		free(sr->auth_msg);
		sr->auth_msg = NULL;
		if (!sr->done) {
			sr->done = 1;
			check_eose_all(p, s);
		}
	}
	/* publishes: unanswered ones are sent again after reconnecting */
	for (struct pub *pb = p->pubs; pb; pb = pb->next) {
		struct pub_target *t = &pb->t[r->index];
		if ((pb->mask & (1ULL << r->index)) && (t->state == T_SENT || t->state == T_AUTH)) {
			t->state = T_NONE;
			target_wait(p, pb, r);
		}
	}
	for (struct pub *pb = p->pubs, *next; pb; pb = next) {
		next = pb->next;
		check_settled(p, pb);
	}
	notify_relay(r, RELAY_BACKOFF, why);
}

static void relay_connect(struct relay *r)
{
	struct relay_pool *p = r->pool;
	struct lws_client_connect_info i;
	memset(&i, 0, sizeof i);
	i.context = p->ctx;
	i.address = r->connect_host;
	i.port = r->connect_port;
	i.ssl_connection = r->u.tls ? LCCSCF_USE_SSL : 0;
	i.path = r->u.path;
	i.host = r->u.hostport;
	i.origin = NULL;
	i.protocol = NULL;
	i.ietf_version_or_minus_one = -1;
	i.local_protocol_name = PROTO_NAME;
	i.opaque_user_data = r;
	i.alpn = "http/1.1";
	if (p->o.ping_interval_s)
		i.retry_and_idle_policy = &p->retry;
	if (r->ever)
		log_info("event=reconnect relay=%s", r->url);
	r->ever = 1;
	set_state(r, RELAY_CONNECTING);
	r->wsi = NULL;
	r->kill_sent = 0;
	r->connect_deadline = now_ms() + p->o.connect_timeout_ms;
	t_lws_err[0] = 0;
	r->connecting_sync = 1;
	struct lws *w = lws_client_connect_via_info(&i);
	r->connecting_sync = 0;
	if (get_state(r) != RELAY_CONNECTING)
		return; /* failed synchronously, already handled */
	if (!w) {
		conn_lost(r, t_lws_err[0] ? t_lws_err : "cannot connect (host name lookup or socket failed)", 0);
		return;
	}
	r->wsi = w;
}

/* rx_message: one complete text message from r. */
static void handle_message(struct relay *r, const char *msg, size_t len);

static int rx_append(struct relay *r, const char *in, size_t len)
{
	struct relay_pool *p = r->pool;
	if (r->rx_discard)
		return 0;
	size_t need;
	if (__builtin_add_overflow(r->rxlen, len, &need) || need > p->o.max_message) {
		r->rx_discard = 1;
		r->rxlen = 0;
		CINC(r, msgs_in);
		CINC(r, oversize);
		CINC(r, malformed);
		CINC(r, malformed_by[RELAYMSG_R_TOOBIG]);
		log_debug("event=drop relay=%s reason=toobig max=%zu", r->url, p->o.max_message);
		return 0;
	}
	if (need > r->rxcap) {
		size_t cap = r->rxcap ? r->rxcap : 4096;
		while (cap < need)
			cap = cap > p->o.max_message / 2 ? p->o.max_message : cap * 2;
		char *nb = realloc(r->rx, cap);
		if (!nb)
			return APP_ENOMEM;
		r->rx = nb;
		r->rxcap = cap;
	}
	memcpy(r->rx + r->rxlen, in, len);
	r->rxlen = need;
	return 0;
}

static void on_receive(struct relay *r, struct lws *wsi, const char *in, size_t len)
{
	int final = lws_is_final_fragment(wsi);
	if (!r->rx_in_msg) {
		r->rx_in_msg = 1;
		r->rxlen = 0;
		r->rx_discard = 0;
		if (lws_frame_is_binary(wsi)) {
			r->rx_discard = 1;
			CINC(r, msgs_in);
			CINC(r, binary);
			log_debug("event=drop relay=%s reason=binary", r->url);
		} else if (final) {
			/* the whole message in one piece: no copy */
			r->rx_in_msg = 0;
			CADD(r, bytes_in, len);
			if (len > r->pool->o.max_message) {
				CINC(r, msgs_in);
				CINC(r, oversize);
				CINC(r, malformed);
				CINC(r, malformed_by[RELAYMSG_R_TOOBIG]);
				return;
			}
			handle_message(r, in, len);
			return;
		}
	}
	CADD(r, bytes_in, len);
	if (rx_append(r, in, len) != 0) {
		r->rx_discard = 1;
		r->rxlen = 0;
		log_warn("event=drop relay=%s reason=nomem", r->url);
	}
	if (!final)
		return;
	r->rx_in_msg = 0;
	if (!r->rx_discard)
		handle_message(r, r->rx, r->rxlen);
	r->rxlen = 0;
	r->rx_discard = 0;
	if (r->rxcap > RX_KEEP) {
		free(r->rx);
		r->rx = NULL;
		r->rxcap = 0;
	}
}

static int on_writeable(struct relay *r, struct lws *wsi)
{
	struct outmsg *m = r->qhead;
	if (!m)
		return 0;
	r->qhead = m->next;
	if (!r->qhead)
		r->qtail = NULL;
	r->nqueued--;
	atomic_store(&r->c.queued, (uint64_t)(r->nqueued + r->nwait));
	int n = lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
	size_t len = m->len;
	free(m);
	if (n < 0 || (size_t)n < len) {
		log_warn("event=write_failed relay=%s", r->url);
		return -1;
	}
	CINC(r, msgs_out);
	CADD(r, bytes_out, len);
	if (r->qhead)
		lws_callback_on_writable(wsi);
	return 0;
}

static void on_established(struct relay *r)
{
	struct relay_pool *p = r->pool;
	set_state(r, RELAY_CONNECTED);
	r->connected_at = now_ms();
	CINC(r, connects);
	if (atomic_load(&r->c.connects) > 1 || atomic_load(&r->c.connect_failures) > 0)
		CINC(r, reconnects);
	set_error(r, "");
	log_info("event=connected relay=%s", r->url);
	notify_relay(r, RELAY_CONNECTED, "");
	for (size_t k = 0; k < p->nsubs; k++) {
		struct sub *s = p->subs[k];
		enum sr_state st = s->r[r->index].state;
		if ((s->mask & (1ULL << r->index)) && (st == SR_WAIT || st == SR_SENT || st == SR_LIVE))
			send_req(r, s);
	}
	for (struct pub *pb = p->pubs, *next; pb; pb = next) {
		next = pb->next;
		if ((pb->mask & (1ULL << r->index)) && pb->t[r->index].state == T_WAIT) {
			send_event(r, pb);
			check_settled(p, pb);
		}
	}
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	(void)user;
	struct relay *r;
	switch (reason) {
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		return 0; /* the service step drains the command queue after lws_service returns */
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
	case LWS_CALLBACK_CLIENT_RECEIVE:
	case LWS_CALLBACK_CLIENT_WRITEABLE:
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
	case LWS_CALLBACK_CLIENT_CLOSED:
	case LWS_CALLBACK_WSI_DESTROY:
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		break;
	default:
		return 0;
	}
	r = wsi ? lws_get_opaque_user_data(wsi) : NULL;
	if (!r)
		return 0;
	/* ignore a previous connection's late callbacks */
	if (r->wsi ? r->wsi != wsi : !r->connecting_sync && get_state(r) != RELAY_CONNECTING)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		if (!r->wsi)
			r->wsi = wsi;
		on_established(r);
		return 0;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (get_state(r) == RELAY_CONNECTED)
			on_receive(r, wsi, in, len);
		return 0;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return get_state(r) == RELAY_CONNECTED ? on_writeable(r, wsi) : 0;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (len >= 2) {
			const unsigned char *b = in;
			char why[64];
			snprintf(why, sizeof why, "closed by relay (code %u)", (unsigned)(b[0] << 8 | b[1]));
			set_error(r, why);
		}
		return 0;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
		char why[2 * RELAY_ERROR_MAX + 8];
		int n = in ? (int)(len ? (len < RELAY_ERROR_MAX ? len : RELAY_ERROR_MAX - 1)
				       : strnlen(in, RELAY_ERROR_MAX - 1))
			   : 0;
		/* lws's own error line names the TLS verification failure; prefer it */
		const char *tls = strstr(t_lws_err, "SSL error: ");
		if (tls) {
			tls += strlen("SSL error: ");
			const char *end = strstr(tls, " (preverify");
			int tn = end ? (int)(end - tls) : (int)strlen(tls);
			snprintf(why, sizeof why, "TLS certificate check failed: %.*s", tn, tls);
		} else {
			const char *txt = n ? (const char *)in : "connection failed";
			if (n == 17 && !memcmp(txt, "Unable to connect", 17))
				txt = "cannot connect (refused or unreachable)", n = 0;
			snprintf(why, sizeof why, "%.*s", n ? n : (int)strlen(txt), txt);
		}
		t_lws_err[0] = 0;
		conn_lost(r, why, 0);
		return 0;
	}
	case LWS_CALLBACK_CLIENT_CLOSED:
	case LWS_CALLBACK_WSI_DESTROY: {
		char why[RELAY_ERROR_MAX];
		pthread_mutex_lock(&r->pool->lock);
		snprintf(why, sizeof why, "%s", r->last_error[0] ? r->last_error : "connection closed");
		pthread_mutex_unlock(&r->pool->lock);
		conn_lost(r, why, get_state(r) == RELAY_CONNECTED);
		return 0;
	}
	default:
		return 0;
	}
}

/* ---- incoming messages ----------------------------------------------------------------------- */

static int event_matches(const struct sub *s, const struct event *ev)
{
	for (size_t i = 0; i < s->nfilters; i++)
		if (filter_match(s->filters[i], ev))
			return 1;
	return 0;
}

static void handle_event(struct relay *r, struct relaymsg *m)
{
	struct relay_pool *p = r->pool;
	CINC(r, events_in);
	struct sub *s = sub_by_subid(p, m->subid, m->subid_len);
	size_t i = r->index;
	if (!s || !(s->mask & (1ULL << i)) || s->r[i].state == SR_CLOSED || s->r[i].state == SR_NONE) {
		CINC(r, events_unknown_sub);
		return;
	}
	struct event *ev = m->event;
	char idh[17];
	if (!event_matches(s, ev)) {
		CINC(r, events_unmatched);
		idhex8(idh, ev->id);
		log_debug("event=drop relay=%s sub=%s id=%s reason=unmatched", r->url, s->subid, idh);
		return;
	}
	uint32_t tag = (uint32_t)s->handle;
	uint64_t now = wall_s();
	uint64_t ts = ev->created_at < now ? ev->created_at : now;
	if (lru_contains(p->dedupe, ev->id, tag)) {
		CINC(r, events_duplicate);
		if (ts > s->r[i].newest)
			s->r[i].newest = ts;
		return;
	}
	int rc = event_verify(ev);
	if (rc) {
		CINC(r, events_invalid);
		idhex8(idh, ev->id);
		log_debug("event=drop relay=%s sub=%s id=%s reason=%s", r->url, s->subid, idh, app_errname(rc));
		return;
	}
	if (lru_insert(p->dedupe, ev->id, tag))
		atomic_fetch_add_explicit(&p->dedupe_evictions, 1, memory_order_relaxed);
	atomic_store_explicit(&p->dedupe_size, lru_size(p->dedupe), memory_order_relaxed);
	if (ts > s->r[i].newest)
		s->r[i].newest = ts;
	CINC(r, events_delivered);
	if (s->cbs.on_event) {
		s->cbs.on_event(s->user, s->handle, i, &m->event);
		/* the callback may have taken the event (m->event == NULL now) */
	}
}

static void handle_ok(struct relay *r, struct relaymsg *m)
{
	struct relay_pool *p = r->pool;
	size_t i = r->index;
	if (r->auth_pending && memcmp(m->id, r->auth_id, 32) == 0) {
		auth_done(r, m->accepted, m->text);
		return;
	}
	struct pub *pb = p->pubs;
	/* a late OK (after the attempt timed out, before the resend) still counts */
	while (pb && (memcmp(pb->id, m->id, 32) != 0 || !(pb->mask & (1ULL << i)) ||
		      (pb->t[i].state != T_SENT && pb->t[i].state != T_RETRY)))
		pb = pb->next;
	if (!pb) {
		CINC(r, ok_unknown);
		return;
	}
	enum relaymsg_prefix pre = relaymsg_prefix_of(m->text, m->text_len);
	char idh[17];
	idhex8(idh, m->id);
	if (m->accepted) {
		CINC(r, ok_accepted);
		log_info("event=ok relay=%s id=%s accepted=1", r->url, idh);
		target_done(p, pb, i, RELAY_PUB_ACCEPTED, pre, m->text);
	} else {
		CINC(r, ok_rejected);
		log_info("event=ok relay=%s id=%s accepted=0 prefix=%s", r->url, idh, relaymsg_prefix_name(pre));
		struct pub_target *t = &pb->t[i];
		if (pre == RELAYMSG_P_AUTH_REQUIRED && p->o.auth_key && !r->authed) {
			t->state = T_AUTH;
			free(t->message);
			t->message = strdup(m->text);
			r->auth_wanted = 1;
			send_auth(r);
		} else if (pre == RELAYMSG_P_RATE_LIMITED && t->attempts < p->o.publish_attempts) {
			t->state = T_RETRY;
			t->due = now_ms() + backoff_delay(p, t->attempts - 1);
			free(t->message);
			t->message = strdup(m->text);
		} else {
			target_done(p, pb, i, RELAY_PUB_REJECTED, pre, m->text);
		}
	}
	check_settled(p, pb);
}

static void handle_closed(struct relay *r, struct relaymsg *m)
{
	struct relay_pool *p = r->pool;
	size_t i = r->index;
	struct sub *s = sub_by_subid(p, m->subid, m->subid_len);
	if (!s || !(s->mask & (1ULL << i)) || s->r[i].state == SR_CLOSED || s->r[i].state == SR_NONE) {
		CINC(r, unknown_sub_msgs);
		return;
	}
	CINC(r, closed);
	enum relaymsg_prefix pre = relaymsg_prefix_of(m->text, m->text_len);
	log_info("event=closed relay=%s sub=%s prefix=%s", r->url, s->subid, relaymsg_prefix_name(pre));
	if (pre == RELAYMSG_P_AUTH_REQUIRED && p->o.auth_key && !r->authed) {
		struct sub_relay *sr = &s->r[i];
		sr->state = SR_AUTH;
		sr->auth_due = now_ms() + p->o.publish_timeout_ms;
		free(sr->auth_msg);
		sr->auth_msg = strdup(m->text);
		r->auth_wanted = 1;
		send_auth(r);
		return;
	}
	sub_closed_by(p, s, i, m->text);
}

static void handle_eose(struct relay *r, struct relaymsg *m)
{
	struct relay_pool *p = r->pool;
	size_t i = r->index;
	struct sub *s = sub_by_subid(p, m->subid, m->subid_len);
	if (!s || !(s->mask & (1ULL << i)) || s->r[i].state != SR_SENT) {
		CINC(r, unknown_sub_msgs);
		return;
	}
	CINC(r, eose);
	struct sub_relay *sr = &s->r[i];
	sr->state = SR_LIVE;
	sr->caught_up = wall_s();
	log_debug("event=eose relay=%s sub=%s", r->url, s->subid);
	if (s->cbs.on_eose)
		s->cbs.on_eose(s->user, s->handle, i);
	/* the callback may not close it synchronously (closing goes through the queue) */
	if (!sr->done) {
		sr->done = 1;
		check_eose_all(p, s);
	}
}

static void log_notice(struct relay *r, const char *text, size_t len)
{
	char clean[NOTICE_LOG_MAX + 1];
	size_t n = len < NOTICE_LOG_MAX ? len : NOTICE_LOG_MAX;
	for (size_t k = 0; k < n; k++) {
		unsigned char c = (unsigned char)text[k];
		clean[k] = (c < 0x20 || c == 0x7f || c == '"' || c == '\\' || c >= 0x80) ? '?' : (char)c;
	}
	clean[n] = 0;
	log_info("event=notice relay=%s text=\"%s%s\"", r->url, clean, len > n ? "..." : "");
}

static void handle_message(struct relay *r, const char *msg, size_t len)
{
	struct relay_pool *p = r->pool;
	struct relaymsg m;
	enum relaymsg_reject why;
	const char *reason;
	CINC(r, msgs_in);
	int rc = relaymsg_parse(&m, &why, &reason, msg, len, p->o.max_message);
	if (rc) {
		CINC(r, malformed);
		if ((size_t)why < RELAYMSG_R__COUNT)
			CINC(r, malformed_by[why]);
		log_debug("event=drop relay=%s reason=%s detail=\"%s\"", r->url, relaymsg_reject_name(why), reason);
		return;
	}
	switch (m.type) {
	case RELAYMSG_EVENT:
		handle_event(r, &m);
		break;
	case RELAYMSG_OK:
		handle_ok(r, &m);
		break;
	case RELAYMSG_EOSE:
		handle_eose(r, &m);
		break;
	case RELAYMSG_CLOSED:
		handle_closed(r, &m);
		break;
	case RELAYMSG_NOTICE:
		CINC(r, notices);
		log_notice(r, m.text, m.text_len);
		break;
	case RELAYMSG_AUTH:
		CINC(r, auth_challenges);
		if (r->challenge && !strcmp(r->challenge, m.text))
			break; /* the same challenge again: keep what was sent or accepted for it */
		free(r->challenge);
		r->challenge = m.text;
		m.text = NULL;
		r->authed = 0;
		r->auth_pending = 0;
		if (p->o.auth_key && (p->o.auth_eager || r->auth_wanted))
			send_auth(r);
		break;
	case RELAYMSG_COUNT:
		CINC(r, counts);
		break;
	default:
		break;
	}
	relaymsg_clear(&m);
}

/* ---- commands and timers --------------------------------------------------------------------- */

/* started_mask: every relay the service thread has started (the "all relays" of a request). */
static uint64_t started_mask(struct relay_pool *p)
{
	uint64_t m = 0;
	size_t n = atomic_load(&p->nrelays);
	for (size_t i = 0; i < n; i++)
		if (p->relay[i]->started)
			m |= 1ULL << i;
	return m;
}

static void apply_add_relay(struct relay_pool *p, struct relay *r)
{
	r->started = 1;
	for (size_t k = 0; k < p->nsubs; k++) {
		struct sub *s = p->subs[k];
		if (s->all) {
			s->mask |= 1ULL << r->index;
			s->r[r->index].state = SR_WAIT;
		}
	}
	relay_connect(r);
}

static void apply_publish(struct relay_pool *p, struct pub *pb)
{
	pb->next = p->pubs;
	p->pubs = pb;
	pb->deadline = now_ms() + p->o.publish_deadline_ms;
	size_t n = atomic_load(&p->nrelays);
	if (pb->all)
		pb->mask = started_mask(p);
	for (size_t i = 0; i < n; i++) {
		if (!(pb->mask & (1ULL << i)))
			continue;
		struct relay *r = p->relay[i];
		if (get_state(r) == RELAY_CONNECTED)
			send_event(r, pb);
		else
			target_wait(p, pb, r);
	}
	check_settled(p, pb);
}

static void apply_sub_open(struct relay_pool *p, struct sub *s)
{
	p->subs[p->nsubs++] = s;
	atomic_store(&p->subs_open, p->nsubs);
	size_t n = atomic_load(&p->nrelays);
	if (s->all)
		s->mask = started_mask(p);
	for (size_t i = 0; i < n; i++) {
		if (!(s->mask & (1ULL << i)))
			continue;
		struct relay *r = p->relay[i];
		s->r[i].state = SR_WAIT;
		enum relay_state st = get_state(r);
		if (st == RELAY_CONNECTED)
			send_req(r, s);
		else if (st == RELAY_BACKOFF)
			s->r[i].done = 1; /* down now: do not hold "EOSE from all" for it */
	}
	check_eose_all(p, s);
}

static void apply_sub_close(struct relay_pool *p, uint64_t handle)
{
	for (size_t k = 0; k < p->nsubs; k++) {
		struct sub *s = p->subs[k];
		if (s->handle != handle)
			continue;
		size_t n = atomic_load(&p->nrelays);
		for (size_t i = 0; i < n; i++) {
			enum sr_state st = s->r[i].state;
			if ((s->mask & (1ULL << i)) && get_state(p->relay[i]) == RELAY_CONNECTED &&
			    (st == SR_SENT || st == SR_LIVE || st == SR_AUTH))
				send_close(p->relay[i], s);
		}
		p->subs[k] = p->subs[--p->nsubs];
		atomic_store(&p->subs_open, p->nsubs);
		log_debug("event=sub_closed sub=%s", s->subid);
		sub_free(s);
		return;
	}
}

static void drain(struct relay_pool *p)
{
	pthread_mutex_lock(&p->lock);
	struct cmd *c = p->cmd_head;
	p->cmd_head = p->cmd_tail = NULL;
	pthread_mutex_unlock(&p->lock);
	while (c) {
		struct cmd *next = c->next;
		switch (c->kind) {
		case CMD_ADD_RELAY:
			apply_add_relay(p, c->relay);
			break;
		case CMD_PUBLISH:
			apply_publish(p, c->pub);
			break;
		case CMD_SUB_OPEN:
			apply_sub_open(p, c->sub);
			break;
		case CMD_SUB_CLOSE:
			apply_sub_close(p, c->handle);
			break;
		}
		free(c);
		c = next;
	}
}

static void tick(struct relay_pool *p)
{
	uint64_t now = now_ms();
	size_t n = atomic_load(&p->nrelays);
	for (size_t i = 0; i < n; i++) {
		struct relay *r = p->relay[i];
		if (!r->started)
			continue;
		enum relay_state st = get_state(r);
		if (st == RELAY_BACKOFF && now >= r->retry_at) {
			relay_connect(r);
		} else if (st == RELAY_CONNECTING && now >= r->connect_deadline) {
			char why[64];
			snprintf(why, sizeof why, "connect timeout (%u ms)", p->o.connect_timeout_ms);
			struct lws *w = r->wsi;
			conn_lost(r, why, 0);
			if (w)
				lws_set_timeout(w, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
		}
	}
	for (struct pub *pb = p->pubs, *next; pb; pb = next) {
		next = pb->next;
		for (size_t i = 0; i < n; i++) {
			if (!(pb->mask & (1ULL << i)))
				continue;
			struct pub_target *t = &pb->t[i];
			struct relay *r = p->relay[i];
			if (t->state == T_DONE)
				continue;
			if (now >= pb->deadline) {
				char m[RELAY_ERROR_MAX + 32];
				if (t->state == T_SENT || t->state == T_RETRY || t->state == T_AUTH) {
					target_done(p, pb, i, RELAY_PUB_TIMEOUT, t->prefix,
						    t->message ? t->message : "no OK from the relay in time");
				} else {
					pthread_mutex_lock(&p->lock);
					snprintf(m, sizeof m, "not connected%s%s", r->last_error[0] ? ": " : "",
						 r->last_error);
					pthread_mutex_unlock(&p->lock);
					target_done(p, pb, i, RELAY_PUB_FAILED, RELAYMSG_P_NONE, m);
				}
				continue;
			}
			if (t->state == T_SENT && now >= t->due) {
				if (t->attempts < p->o.publish_attempts) {
					t->state = T_RETRY;
					t->due = now + backoff_delay(p, t->attempts - 1);
				} else {
					target_done(p, pb, i, RELAY_PUB_TIMEOUT, RELAYMSG_P_NONE,
						    "no OK from the relay in time");
				}
			} else if (t->state == T_RETRY && now >= t->due) {
				if (get_state(r) == RELAY_CONNECTED) {
					send_event(r, pb);
				} else {
					t->state = T_NONE;
					target_wait(p, pb, r);
				}
			}
		}
		check_settled(p, pb);
	}
	for (size_t k = 0; k < p->nsubs; k++) {
		struct sub *s = p->subs[k];
		for (size_t i = 0; i < n; i++) {
			struct sub_relay *sr = &s->r[i];
			if ((s->mask & (1ULL << i)) && sr->state == SR_AUTH && now >= sr->auth_due) {
				char m[RELAY_ERROR_MAX];
				snprintf(m, sizeof m, "%s", sr->auth_msg ? sr->auth_msg : "auth-required: no AUTH");
				sub_closed_by(p, s, i, m);
			}
		}
	}
}

/* next_deadline: the earliest time (ms) a timer is due, or UINT64_MAX. */
static uint64_t next_deadline(struct relay_pool *p)
{
	uint64_t d = UINT64_MAX;
	size_t n = atomic_load(&p->nrelays);
	for (size_t i = 0; i < n; i++) {
		struct relay *r = p->relay[i];
		enum relay_state st = get_state(r);
		if (!r->started)
			continue;
		if (st == RELAY_BACKOFF && r->retry_at < d)
			d = r->retry_at;
		if (st == RELAY_CONNECTING && r->connect_deadline < d)
			d = r->connect_deadline;
	}
	for (struct pub *pb = p->pubs; pb; pb = pb->next) {
		if (pb->deadline < d)
			d = pb->deadline;
		for (size_t i = 0; i < n; i++) {
			const struct pub_target *t = &pb->t[i];
			if ((pb->mask & (1ULL << i)) && (t->state == T_SENT || t->state == T_RETRY) && t->due < d)
				d = t->due;
		}
	}
	for (size_t k = 0; k < p->nsubs; k++)
		for (size_t i = 0; i < n; i++)
			if ((p->subs[k]->mask & (1ULL << i)) && p->subs[k]->r[i].state == SR_AUTH &&
			    p->subs[k]->r[i].auth_due < d)
				d = p->subs[k]->r[i].auth_due;
	return d;
}

static void wake_cb(lws_sorted_usec_list_t *sul)
{
	(void)sul; /* only ends the wait in lws_service */
}

/* ---- public API ------------------------------------------------------------------------------ */

void relay_pool_opts_default(struct relay_pool_opts *o)
{
	memset(o, 0, sizeof *o);
	o->max_message = RELAYMSG_MAX_LEN;
	o->max_queue = 1024;
	o->max_subs = 64;
	o->max_publishes = 1024;
	o->dedupe_max = 65536;
	o->connect_timeout_ms = 10000;
	o->publish_timeout_ms = 10000;
	o->publish_attempts = 3;
	o->publish_deadline_ms = 30000;
	o->backoff_min_ms = 500;
	o->backoff_max_ms = 30000;
	o->resub_margin_s = 60;
	o->ping_interval_s = 30;
}

static void enqueue_cmd(struct relay_pool *p, struct cmd *c)
{
	c->next = NULL;
	if (p->cmd_tail)
		p->cmd_tail->next = c;
	else
		p->cmd_head = c;
	p->cmd_tail = c;
}

int relay_pool_new(struct relay_pool **out, const struct relay_pool_opts *opts)
{
	*out = NULL;
	struct relay_pool_opts d;
	if (!opts) {
		relay_pool_opts_default(&d);
		opts = &d;
	}
	const struct relay_pool_opts *o = opts;
	if (!o->max_message || o->max_message > RELAYMSG_MAX_LEN || !o->max_subs || !o->max_publishes ||
	    !o->dedupe_max || o->dedupe_max > LRU_MAX_ENTRIES || o->max_queue < o->max_subs + 8 ||
	    !o->connect_timeout_ms || !o->publish_timeout_ms || !o->publish_attempts || !o->publish_deadline_ms ||
	    !o->backoff_min_ms || o->backoff_min_ms > o->backoff_max_ms || o->max_subs > 1u << 20)
		return APP_EINVAL;
	int r = APP_ENOMEM;
	struct relay_pool *p = calloc(1, sizeof *p);
	if (!p)
		return APP_ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	p->o = *o;
	p->next_handle = 1;
	if (o->ca_file) {
		FILE *f = fopen(o->ca_file, "rb");
		if (!f) {
			log_error("event=pool_new ca_file=%s err=unreadable", o->ca_file);
			r = APP_ENOENT;
			goto fail;
		}
		fclose(f);
		if (!(p->ca_file = strdup(o->ca_file)))
			goto fail;
	}
	p->o.ca_file = p->ca_file;
	if (!(p->subs = calloc(o->max_subs, sizeof *p->subs)) ||
	    !(p->open_subs = calloc(o->max_subs, sizeof *p->open_subs)))
		goto fail;
	if ((r = lru_new(&p->dedupe, o->dedupe_max)) != 0)
		goto fail;
	r = APP_EINTERNAL;
	pthread_once(&lws_log_once, lws_log_init);
	p->protocols[0].name = PROTO_NAME;
	p->protocols[0].callback = callback;
	p->protocols[0].rx_buffer_size = RX_CHUNK;
	p->retry.secs_since_valid_ping = (uint16_t)(o->ping_interval_s > 3000 ? 3000 : o->ping_interval_s);
	p->retry.secs_since_valid_hangup = (uint16_t)(p->retry.secs_since_valid_ping * 2 + 10);
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof info);
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = p->protocols;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.gid = -1;
	info.uid = -1;
	info.user = p;
	info.client_ssl_ca_filepath = p->ca_file;
	info.timeout_secs = (o->connect_timeout_ms + 999) / 1000;
	info.connect_timeout_secs = info.timeout_secs;
	info.fd_limit_per_thread = 4 * RELAY_POOL_MAX_RELAYS + 16;
	p->ctx = lws_create_context(&info);
	if (!p->ctx) {
		log_error("event=pool_new err=lws_create_context");
		goto fail;
	}
	*out = p;
	return 0;
fail:
	relay_pool_free(p);
	return r;
}

void relay_pool_free(struct relay_pool *p)
{
	if (!p)
		return;
	p->destroying = 1;
	if (p->ctx)
		lws_context_destroy(p->ctx);
	struct cmd *c = p->cmd_head;
	while (c) {
		struct cmd *n = c->next;
		if (c->kind == CMD_PUBLISH)
			pub_free(c->pub);
		else if (c->kind == CMD_SUB_OPEN)
			sub_free(c->sub);
		free(c);
		c = n;
	}
	for (struct pub *pb = p->pubs, *n; pb; pb = n) {
		n = pb->next;
		pub_free(pb);
	}
	for (size_t k = 0; k < p->nsubs; k++)
		sub_free(p->subs[k]);
	free(p->subs);
	free(p->open_subs);
	size_t nr = atomic_load(&p->nrelays);
	for (size_t i = 0; i < nr; i++) {
		struct relay *r = p->relay[i];
		queue_clear(r);
		free(r->rx);
		free(r->challenge);
		free(r);
	}
	lru_free(p->dedupe);
	free(p->ca_file);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

struct lws_context *relay_pool_lws_context(struct relay_pool *p)
{
	return p->ctx;
}

void relay_pool_stop(struct relay_pool *p)
{
	atomic_store(&p->stopping, 1);
	lws_cancel_service(p->ctx);
}

int relay_pool_service(struct relay_pool *p, int timeout_ms)
{
	if (atomic_load(&p->stopping))
		return APP_ECANCELED;
	drain(p);
	tick(p);
	uint64_t now = now_ms(), next = next_deadline(p);
	int64_t wait;
	if (next == UINT64_MAX)
		wait = timeout_ms;
	else {
		wait = next > now ? (int64_t)(next - now) : 0;
		if (timeout_ms >= 0 && timeout_ms < wait)
			wait = timeout_ms;
	}
	if (wait == 0) {
		lws_service(p->ctx, -1);
	} else {
		if (wait > 0)
			lws_sul_schedule(p->ctx, 0, &p->wake_sul, wake_cb, (lws_usec_t)wait * LWS_US_PER_MS);
		lws_service(p->ctx, 0);
		lws_sul_cancel(&p->wake_sul);
	}
	drain(p);
	tick(p);
	return atomic_load(&p->stopping) ? APP_ECANCELED : 0;
}

static _Atomic(relay_connect_resolver_fn) connect_resolver;

void relay_pool_set_connect_resolver(relay_connect_resolver_fn fn)
{
	atomic_store(&connect_resolver, fn);
}

int relay_pool_add_relay(struct relay_pool *p, size_t *index, const char *url, const char *connect_to)
{
	char resolved[RELAYURL_HOST_MAX + 16];
	relay_connect_resolver_fn resolver = atomic_load(&connect_resolver);
	if (!connect_to && resolver && url)
		connect_to = resolver(url, resolved, sizeof resolved);
	struct relay *r = calloc(1, sizeof *r);
	struct cmd *c = calloc(1, sizeof *c);
	const char *why = NULL;
	int rc = APP_ENOMEM;
	if (!r || !c)
		goto out;
	rc = APP_EINVAL;
	if (relayurl_parse(&r->u, &why, url) != 0) {
		log_warn("event=add_relay err=bad_url reason=\"%s\"", why ? why : "?");
		goto out;
	}
	snprintf(r->url, sizeof r->url, "%s", url);
	if (connect_to) {
		if (relayurl_parse_hostport(r->connect_host, sizeof r->connect_host, &r->connect_port, connect_to) != 0) {
			log_warn("event=add_relay err=bad_connect_address");
			goto out;
		}
	} else {
		snprintf(r->connect_host, sizeof r->connect_host, "%s", r->u.host);
		r->connect_port = r->u.port;
	}
	r->pool = p;
	pthread_mutex_lock(&p->lock);
	size_t n = atomic_load(&p->nrelays);
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(p->relay[i]->url, r->url)) {
			pthread_mutex_unlock(&p->lock);
			if (index)
				*index = i;
			rc = APP_EEXIST;
			goto out;
		}
	}
	if (n >= RELAY_POOL_MAX_RELAYS) {
		pthread_mutex_unlock(&p->lock);
		rc = APP_ELIMIT;
		goto out;
	}
	r->index = n;
	p->relay[n] = r;
	atomic_store(&p->nrelays, n + 1);
	c->kind = CMD_ADD_RELAY;
	c->relay = r;
	enqueue_cmd(p, c);
	pthread_mutex_unlock(&p->lock);
	lws_cancel_service(p->ctx);
	if (index)
		*index = n;
	return 0;
out:
	free(r);
	free(c);
	return rc;
}

/* relay_mask: the relays[0..n) as a bit mask (every relay when n == 0). */
static int relay_mask(struct relay_pool *p, uint64_t *mask, const size_t *relays, size_t n)
{
	size_t nr = atomic_load(&p->nrelays);
	*mask = 0;
	if (nr == 0)
		return APP_EINVAL;
	if (n == 0) {
		*mask = nr >= 64 ? UINT64_MAX : (1ULL << nr) - 1;
		return 0;
	}
	if (!relays)
		return APP_EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (relays[i] >= nr)
			return APP_EINVAL;
		*mask |= 1ULL << relays[i];
	}
	return 0;
}

int relay_publish(struct relay_pool *p, uint64_t *publish_id, const struct event *ev, const size_t *relays,
		  size_t nrelays, relay_publish_cb cb, void *user)
{
	struct pub *pb = calloc(1, sizeof *pb);
	struct cmd *c = calloc(1, sizeof *c);
	int rc = APP_ENOMEM;
	if (!pb || !c)
		goto fail;
	if ((rc = relay_mask(p, &pb->mask, relays, nrelays)) != 0)
		goto fail;
	if ((rc = relaymsg_event(&pb->msg, &pb->msglen, ev)) != 0)
		goto fail;
	memcpy(pb->id, ev->id, 32);
	pb->all = nrelays == 0;
	pb->cb = cb;
	pb->user = user;
	pthread_mutex_lock(&p->lock);
	if (p->npubs_reserved >= p->o.max_publishes) {
		pthread_mutex_unlock(&p->lock);
		atomic_fetch_add(&p->publishes_refused, 1);
		rc = APP_ELIMIT;
		goto fail;
	}
	p->npubs_reserved++;
	pb->handle = p->next_handle++;
	c->kind = CMD_PUBLISH;
	c->pub = pb;
	enqueue_cmd(p, c);
	pthread_mutex_unlock(&p->lock);
	atomic_fetch_add(&p->publishes_pending, 1);
	if (publish_id)
		*publish_id = pb->handle;
	char idh[17];
	idhex8(idh, ev->id);
	log_debug("event=publish id=%s", idh);
	lws_cancel_service(p->ctx);
	return 0;
fail:
	pub_free(pb);
	free(c);
	return rc;
}

int relay_sub_open(struct relay_pool *p, uint64_t *sub_id, const struct filter *const *filters, size_t nfilters,
		   const size_t *relays, size_t nrelays, const struct relay_sub_cbs *cbs, void *user)
{
	if (!filters || nfilters == 0 || nfilters > RELAYMSG_MAX_FILTERS)
		return APP_EINVAL;
	struct sub *s = calloc(1, sizeof *s);
	struct cmd *c = calloc(1, sizeof *c);
	int rc = APP_ENOMEM;
	if (!s || !c)
		goto fail;
	if ((rc = relay_mask(p, &s->mask, relays, nrelays)) != 0)
		goto fail;
	s->all = nrelays == 0;
	rc = APP_ENOMEM;
	if (!(s->filters = calloc(nfilters, sizeof *s->filters)))
		goto fail;
	for (size_t i = 0; i < nfilters; i++) {
		if (!filters[i]) {
			rc = APP_EINVAL;
			goto fail;
		}
		if ((rc = filter_copy(&s->filters[i], filters[i])) != 0)
			goto fail;
		s->nfilters++;
	}
	if (cbs)
		s->cbs = *cbs;
	s->user = user;
	pthread_mutex_lock(&p->lock);
	if (p->nopen_subs >= p->o.max_subs) {
		pthread_mutex_unlock(&p->lock);
		atomic_fetch_add(&p->subs_refused, 1);
		rc = APP_ELIMIT;
		goto fail;
	}
	s->handle = p->next_handle++;
	snprintf(s->subid, sizeof s->subid, "s%llx", (unsigned long long)s->handle);
	p->open_subs[p->nopen_subs++] = s->handle;
	c->kind = CMD_SUB_OPEN;
	c->sub = s;
	enqueue_cmd(p, c);
	pthread_mutex_unlock(&p->lock);
	*sub_id = s->handle;
	log_debug("event=sub_open sub=%s filters=%zu", s->subid, nfilters);
	lws_cancel_service(p->ctx);
	return 0;
fail:
	sub_free(s);
	free(c);
	return rc;
}

int relay_sub_close(struct relay_pool *p, uint64_t sub_id)
{
	struct cmd *c = calloc(1, sizeof *c);
	if (!c)
		return APP_ENOMEM;
	pthread_mutex_lock(&p->lock);
	size_t k = 0;
	while (k < p->nopen_subs && p->open_subs[k] != sub_id)
		k++;
	if (k == p->nopen_subs) {
		pthread_mutex_unlock(&p->lock);
		free(c);
		return APP_ENOTFOUND;
	}
	p->open_subs[k] = p->open_subs[--p->nopen_subs];
	c->kind = CMD_SUB_CLOSE;
	c->handle = sub_id;
	enqueue_cmd(p, c);
	pthread_mutex_unlock(&p->lock);
	lws_cancel_service(p->ctx);
	return 0;
}

size_t relay_pool_relay_count(struct relay_pool *p)
{
	return atomic_load(&p->nrelays);
}

int relay_pool_relay_status(struct relay_pool *p, size_t index, struct relay_status *out)
{
	memset(out, 0, sizeof *out);
	if (index >= atomic_load(&p->nrelays))
		return APP_EINVAL;
	struct relay *r = p->relay[index];
	snprintf(out->url, sizeof out->url, "%s", r->url);
	out->state = get_state(r);
	out->authed = r->authed;
	pthread_mutex_lock(&p->lock);
	snprintf(out->last_error, sizeof out->last_error, "%s", r->last_error);
	pthread_mutex_unlock(&p->lock);
#define X(n) out->n = atomic_load_explicit(&r->c.n, memory_order_relaxed);
	COUNTERS(X)
#undef X
	for (size_t i = 0; i < RELAYMSG_R__COUNT; i++)
		out->malformed_by[i] = atomic_load_explicit(&r->c.malformed_by[i], memory_order_relaxed);
	out->queued = atomic_load(&r->c.queued);
	out->dropped = out->malformed + out->binary + out->events_invalid + out->events_unmatched +
		       out->events_duplicate + out->events_unknown_sub;
	return 0;
}

void relay_pool_get_stats(struct relay_pool *p, struct relay_pool_stats *out)
{
	memset(out, 0, sizeof *out);
	out->relays = atomic_load(&p->nrelays);
	out->subs_open = atomic_load(&p->subs_open);
	out->subs_refused = atomic_load(&p->subs_refused);
	out->publishes_pending = atomic_load(&p->publishes_pending);
	out->publishes_refused = atomic_load(&p->publishes_refused);
	out->publishes_settled = atomic_load(&p->publishes_settled);
	out->dedupe_size = atomic_load(&p->dedupe_size);
	out->dedupe_capacity = p->o.dedupe_max;
	out->dedupe_evictions = atomic_load(&p->dedupe_evictions);
}
