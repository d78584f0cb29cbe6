/*
 * relay_pool_test: the relay pool's API contract without a relay peer: option checks, relay
 * URLs, the caps (subscriptions, publishes, per-relay queue) and what happens at each,
 * publishes to an unreachable relay settling by their deadline, "EOSE from all" when the only
 * relay cannot be reached, and requests from another thread while the loop runs.
 * (Behaviour against the real relay: tests/integration/relay_*.sh.)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "appliance/event.h"
#include "appliance/filter.h"
#include "appliance/keys.h"
#include "appliance/log.h"
#include "relay-client/pool.h"
#include "tests/lib/testutil.h"
#include "tests/unit/test.h"

static struct keypair *g_kp;

/* closed_port: a TCP port on 127.0.0.1 nothing listens on (bound, then released). */
static int closed_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a;
	socklen_t al = sizeof a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
		if (fd >= 0)
			close(fd);
		return 1;
	}
	close(fd);
	return ntohs(a.sin_port);
}

static struct event *make_event(int n)
{
	struct event *ev = NULL;
	char content[32];
	snprintf(content, sizeof content, "event %d", n);
	if (event_new(&ev, 1, 1700000000 + (uint64_t)n, content, strlen(content)) != 0 || event_sign(ev, g_kp) != 0) {
		event_free(ev);
		return NULL;
	}
	return ev;
}

static void test_opts(void)
{
	struct relay_pool *p = NULL;
	struct relay_pool_opts o;
	relay_pool_opts_default(&o);
	CHECK(o.max_message == RELAYMSG_MAX_LEN && o.max_subs == 64 && o.publish_attempts == 3);
	o.max_message = RELAYMSG_MAX_LEN + 1;
	CHECK_ERR(relay_pool_new(&p, &o), APP_EINVAL);
	relay_pool_opts_default(&o);
	o.max_queue = o.max_subs;
	CHECK_ERR(relay_pool_new(&p, &o), APP_EINVAL);
	relay_pool_opts_default(&o);
	o.backoff_min_ms = o.backoff_max_ms + 1;
	CHECK_ERR(relay_pool_new(&p, &o), APP_EINVAL);
	relay_pool_opts_default(&o);
	o.dedupe_max = 0;
	CHECK_ERR(relay_pool_new(&p, &o), APP_EINVAL);
	relay_pool_opts_default(&o);
	o.publish_attempts = 0;
	CHECK_ERR(relay_pool_new(&p, &o), APP_EINVAL);
	relay_pool_opts_default(&o);
	o.ca_file = "/nonexistent/ca.pem";
	CHECK_ERR(relay_pool_new(&p, &o), APP_ENOENT);
	CHECK(p == NULL);
	CHECK_OK(relay_pool_new(&p, NULL));
	relay_pool_free(p);
	relay_pool_free(NULL);
}

static void test_relays(void)
{
	struct relay_pool *p = NULL;
	CHECK_OK(relay_pool_new(&p, NULL));
	size_t idx = 99;
	struct event *ev = make_event(0);
	uint64_t id;
	struct filter *f = NULL;
	CHECK_OK(filter_new(&f));
	const struct filter *fs[1] = {f};
	/* nothing to talk to yet */
	CHECK_ERR(relay_publish(p, &id, ev, NULL, 0, NULL, NULL), APP_EINVAL);
	CHECK_ERR(relay_sub_open(p, &id, fs, 1, NULL, 0, NULL, NULL), APP_EINVAL);
	CHECK_ERR(relay_pool_add_relay(p, &idx, "http://x", NULL), APP_EINVAL);
	CHECK_ERR(relay_pool_add_relay(p, &idx, "wss://relay.example.com", "127.0.0.1"), APP_EINVAL);
	CHECK_OK(relay_pool_add_relay(p, &idx, "wss://relay.example.com", "127.0.0.1:9"));
	CHECK(idx == 0);
	CHECK_ERR(relay_pool_add_relay(p, &idx, "wss://relay.example.com", NULL), APP_EEXIST);
	CHECK(idx == 0);
	char url[64];
	for (int i = 1; i < RELAY_POOL_MAX_RELAYS; i++) {
		snprintf(url, sizeof url, "ws://127.0.0.1:%d", 20000 + i);
		CHECK_OK(relay_pool_add_relay(p, &idx, url, NULL));
	}
	CHECK(relay_pool_relay_count(p) == RELAY_POOL_MAX_RELAYS);
	CHECK_ERR(relay_pool_add_relay(p, &idx, "ws://127.0.0.1:1", NULL), APP_ELIMIT);
	struct relay_status st;
	CHECK_OK(relay_pool_relay_status(p, 0, &st));
	CHECK_STR(st.url, "wss://relay.example.com");
	CHECK(st.state == RELAY_IDLE);
	CHECK_ERR(relay_pool_relay_status(p, RELAY_POOL_MAX_RELAYS, &st), APP_EINVAL);
	size_t bad[1] = {RELAY_POOL_MAX_RELAYS};
	CHECK_ERR(relay_publish(p, &id, ev, bad, 1, NULL, NULL), APP_EINVAL);
	CHECK_ERR(relay_sub_open(p, &id, fs, 1, bad, 1, NULL, NULL), APP_EINVAL);
	CHECK_ERR(relay_sub_open(p, &id, fs, 0, NULL, 0, NULL, NULL), APP_EINVAL);
	CHECK_STR(relay_state_name(RELAY_BACKOFF), "backoff");
	CHECK_STR(relay_pub_status_name(RELAY_PUB_TIMEOUT), "timeout");
	/* freed without ever servicing: queued requests are dropped */
	CHECK_OK(relay_publish(p, &id, ev, NULL, 0, NULL, NULL));
	CHECK_OK(relay_sub_open(p, &id, fs, 1, NULL, 0, NULL, NULL));
	relay_pool_free(p);
	filter_free(f);
	event_free(ev);
}

struct settled {
	int calls;
	int failed, queue_full, not_connected;
	char last_message[RELAY_ERROR_MAX];
};

static void on_settled(void *user, uint64_t publish_id, const uint8_t id[32], const struct relay_pub_result *res,
		       size_t n)
{
	(void)publish_id;
	(void)id;
	struct settled *s = user;
	s->calls++;
	for (size_t i = 0; i < n; i++) {
		if (res[i].status == RELAY_PUB_FAILED)
			s->failed++;
		if (!strcmp(res[i].message, "queue full"))
			s->queue_full++;
		if (!strncmp(res[i].message, "not connected", 13))
			s->not_connected++;
		snprintf(s->last_message, sizeof s->last_message, "%s", res[i].message);
	}
}

struct relay_events {
	int backoff;
	char detail[RELAY_ERROR_MAX];
};

static void on_relay(void *user, size_t relay, enum relay_state state, const char *detail)
{
	(void)relay;
	struct relay_events *e = user;
	if (state == RELAY_BACKOFF) {
		e->backoff++;
		snprintf(e->detail, sizeof e->detail, "%s", detail);
	}
}

struct subrec {
	int eose_all, eose, closed, events;
};

static void sub_event(void *user, uint64_t sub, size_t relay, struct event **ev)
{
	(void)sub;
	(void)relay;
	(void)ev;
	((struct subrec *)user)->events++;
}

static void sub_eose(void *user, uint64_t sub, size_t relay)
{
	(void)sub;
	struct subrec *r = user;
	if (relay == RELAY_ALL)
		r->eose_all++;
	else
		r->eose++;
}

static void sub_closed(void *user, uint64_t sub, size_t relay, enum relaymsg_prefix prefix, const char *msg)
{
	(void)sub;
	(void)relay;
	(void)prefix;
	(void)msg;
	((struct subrec *)user)->closed++;
}

static void test_caps_unreachable(void)
{
	struct relay_pool *p = NULL;
	struct relay_pool_opts o;
	struct relay_events re = {0};
	relay_pool_opts_default(&o);
	o.max_subs = 2;
	o.max_queue = o.max_subs + 8; /* 10 */
	o.max_publishes = 12;
	o.publish_deadline_ms = 400;
	o.backoff_min_ms = 50;
	o.backoff_max_ms = 100;
	o.on_relay = on_relay;
	o.user = &re;
	CHECK_OK(relay_pool_new(&p, &o));
	char url[64];
	snprintf(url, sizeof url, "ws://127.0.0.1:%d", closed_port());
	CHECK_OK(relay_pool_add_relay(p, NULL, url, NULL));

	/* subscriptions: the cap, then EOSE from all once the only relay failed */
	struct filter *f = NULL;
	CHECK_OK(filter_new(&f));
	const struct filter *fs[1] = {f};
	struct relay_sub_cbs cbs = {sub_event, sub_eose, sub_closed};
	struct subrec rec = {0};
	uint64_t s1, s2, s3;
	CHECK_OK(relay_sub_open(p, &s1, fs, 1, NULL, 0, &cbs, &rec));
	CHECK_OK(relay_sub_open(p, &s2, fs, 1, NULL, 0, &cbs, &rec));
	CHECK_ERR(relay_sub_open(p, &s3, fs, 1, NULL, 0, &cbs, &rec), APP_ELIMIT);
	CHECK_ERR(relay_sub_close(p, 12345), APP_ENOTFOUND);
	CHECK_OK(relay_sub_close(p, s2));
	CHECK_ERR(relay_sub_close(p, s2), APP_ENOTFOUND);
	CHECK_OK(relay_sub_open(p, &s3, fs, 1, NULL, 0, &cbs, &rec));
	struct relay_pool_stats ps;
	relay_pool_get_stats(p, &ps);
	CHECK(ps.subs_refused == 1);

	/* publishes: 12 allowed, the 13th refused; the relay's queue holds 10 */
	struct settled s = {0};
	struct event *evs[13];
	int n_ok = 0;
	for (int i = 0; i < 13; i++) {
		evs[i] = make_event(i + 1);
		if (relay_publish(p, NULL, evs[i], NULL, 0, on_settled, &s) == 0)
			n_ok++;
	}
	CHECK(n_ok == 12);
	relay_pool_get_stats(p, &ps);
	CHECK(ps.publishes_refused == 1 && ps.publishes_pending == 12);

	double t0 = tu_now_ms();
	while (s.calls < 12 && tu_now_ms() - t0 < 5000)
		CHECK_OK(relay_pool_service(p, 50));
	CHECK(s.calls == 12);
	CHECK(s.failed == 12);
	CHECK(s.queue_full == 2);
	CHECK(s.not_connected == 10);
	CHECK(strstr(s.last_message, "not connected") != NULL);
	CHECK(rec.eose_all == 2 && rec.eose == 0 && rec.events == 0); /* s1 and s3; s2 was closed */
	CHECK(re.backoff >= 1);
	CHECK_STR(re.detail, "cannot connect (refused or unreachable)");
	struct relay_status st;
	CHECK_OK(relay_pool_relay_status(p, 0, &st));
	CHECK(st.queue_full == 2);
	CHECK(st.connect_failures >= 2); /* kept retrying with a short backoff */
	CHECK(st.connects == 0);
	CHECK(st.state == RELAY_BACKOFF || st.state == RELAY_CONNECTING);
	CHECK_STR(st.last_error, "cannot connect (refused or unreachable)");
	relay_pool_get_stats(p, &ps);
	CHECK(ps.publishes_pending == 0 && ps.publishes_settled == 12 && ps.subs_open == 2);
	for (int i = 0; i < 13; i++)
		event_free(evs[i]);
	filter_free(f);
	relay_pool_free(p);
}

struct thread_arg {
	struct relay_pool *p;
	struct settled *s;
	struct event **evs; /* signed on the main thread (the signer's per-thread caches outlive threads) */
	int n;
	int errors;
};

static void *publisher(void *v)
{
	struct thread_arg *a = v;
	for (int i = 0; i < a->n; i++) {
		if (!a->evs[i] || relay_publish(a->p, NULL, a->evs[i], NULL, 0, on_settled, a->s) != 0)
			a->errors++;
		usleep(1000);
	}
	struct relay_pool_stats ps;
	relay_pool_get_stats(a->p, &ps); /* readers are thread-safe too */
	struct relay_status st;
	if (relay_pool_relay_status(a->p, 0, &st) != 0)
		a->errors++;
	return NULL;
}

static void *stopper(void *v)
{
	usleep(100 * 1000);
	relay_pool_stop(v);
	return NULL;
}

static void test_threads(void)
{
	struct relay_pool *p = NULL;
	struct relay_pool_opts o;
	relay_pool_opts_default(&o);
	o.publish_deadline_ms = 200;
	o.backoff_min_ms = 50;
	o.backoff_max_ms = 100;
	CHECK_OK(relay_pool_new(&p, &o));
	char url[64];
	snprintf(url, sizeof url, "ws://127.0.0.1:%d", closed_port());
	CHECK_OK(relay_pool_add_relay(p, NULL, url, NULL));
	struct settled s = {0};
	struct event *evs[40];
	for (int i = 0; i < 40; i++)
		evs[i] = make_event(1000 + i);
	struct thread_arg a = {p, &s, evs, 40, 0};
	pthread_t th;
	CHECK(pthread_create(&th, NULL, publisher, &a) == 0);
	double t0 = tu_now_ms();
	while (s.calls < 40 && tu_now_ms() - t0 < 5000)
		CHECK_OK(relay_pool_service(p, 100));
	pthread_join(th, NULL);
	CHECK(a.errors == 0);
	CHECK(s.calls == 40 && s.failed == 40);
	/* stop from another thread wakes a blocked service step */
	pthread_t st;
	CHECK(pthread_create(&st, NULL, stopper, p) == 0);
	int r = 0;
	t0 = tu_now_ms();
	while (r == 0 && tu_now_ms() - t0 < 5000)
		r = relay_pool_service(p, 10000);
	CHECK(r == APP_ECANCELED);
	CHECK(tu_now_ms() - t0 < 3000);
	pthread_join(st, NULL);
	CHECK_ERR(relay_pool_service(p, 0), APP_ECANCELED);
	relay_pool_free(p);
	for (int i = 0; i < 40; i++)
		event_free(evs[i]);
}

static void test_service_timeout(void)
{
	struct relay_pool *p = NULL;
	CHECK_OK(relay_pool_new(&p, NULL));
	double t0 = tu_now_ms();
	CHECK_OK(relay_pool_service(p, 0));
	CHECK(tu_now_ms() - t0 < 100);
	t0 = tu_now_ms();
	CHECK_OK(relay_pool_service(p, 150));
	double dt = tu_now_ms() - t0;
	CHECKM(dt >= 100 && dt < 1000, "service(150) took %.0f ms", dt);
	relay_pool_free(p);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	if (keys_generate(&g_kp) != 0)
		return 1;
	RUN(test_opts);
	RUN(test_relays);
	RUN(test_caps_unreachable);
	RUN(test_threads);
	RUN(test_service_timeout);
	keys_free(g_kp);
	return test_summary();
}
