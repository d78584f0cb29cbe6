/*
 * parentlink.c: the enclave's control-service client (parentlink.h).
 *
 * Locking: pl->lock guards the queues, the ring and the state. Nothing is
 * logged while it is held (the log sink takes it: a log call under it would
 * deadlock on the log mutex).
 */
#include "enclave/runtime/parentlink.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "enclave/runtime/egress.h"

struct req {
	struct req *next;
	uint32_t id;
	uint8_t type;
	uint8_t *payload;
	size_t plen;
	int done, err;
	uint8_t *body;
	size_t body_len, max;
};

struct logline {
	uint8_t level;
	uint16_t len;
	char text[CTLMSG_LOG_MAX];
};

struct parentlink {
	struct parentlink_opts o;
	struct channel_addr addr;
	char id[CTLMSG_ID_MAX + 1];
	pthread_t thr;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int wake[2];
	int stop;
	int connected;
	struct req *queue;    /* not sent yet, FIFO */
	struct req *inflight; /* sent, waiting for RESULT */
	uint32_t next_id;
	struct logline *ring;
	size_t head, count;
	int bye_pending, bye_done;
	struct parentlink_stats st;
	uint8_t *rbuf;
	size_t rlen;
};

int parentlink_env(struct parentlink_env *out)
{
	struct channel_addr a;
	const char *c = getenv(PARENTLINK_ENV_CONTROL), *e = getenv(PARENTLINK_ENV_EGRESS),
		   *n = getenv(PARENTLINK_ENV_NSM);
	memset(out, 0, sizeof *out);
	if (c && *c) {
		if (strlen(c) > CHANNEL_ADDR_MAX || channel_addr_parse(&a, c) != 0)
			return APP_EINVAL;
		memcpy(out->control, c, strlen(c) + 1);
		out->from_env = 1;
	} else {
		snprintf(out->control, sizeof out->control, "vsock:%u:%u", CHANNEL_CID_PARENT, PARENTLINK_PORT_CONTROL);
	}
	if (e && *e) {
		if (strlen(e) > CHANNEL_ADDR_MAX || channel_addr_parse(&a, e) != 0)
			return APP_EINVAL;
		memcpy(out->egress, e, strlen(e) + 1);
		out->from_env = 1;
	} else {
		snprintf(out->egress, sizeof out->egress, "vsock:%u:%u", CHANNEL_CID_PARENT, PARENTLINK_PORT_EGRESS);
	}
	if (n && *n) {
		if (strlen(n) > CHANNEL_ADDR_MAX)
			return APP_EINVAL;
		memcpy(out->nsm, n, strlen(n) + 1);
	}
	return 0;
}

void parentlink_opts_default(struct parentlink_opts *o)
{
	memset(o, 0, sizeof *o);
	o->backoff_min_ms = 100;
	o->backoff_max_ms = 5000;
	o->io_timeout_ms = 10000;
	o->log_queue_max = 1024;
}

static void deadline_ts(struct timespec *ts, int timeout_ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += timeout_ms / 1000;
	ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void wake(struct parentlink *pl)
{
	if (write(pl->wake[1], "w", 1) < 0) {
		/* pipe full: a wake-up is pending */
	}
}

static void drain(int fd)
{
	char b[64];
	while (read(fd, b, sizeof b) > 0) {
	}
}

/* fail_list: completes every request of *list with err. Lock held. */
static void fail_list(struct req **list, int err)
{
	for (struct req *r = *list; r; r = r->next) {
		r->done = 1;
		r->err = err;
	}
	*list = NULL;
}

static void unlink_req(struct req **list, struct req *q)
{
	for (struct req **pp = list; *pp; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			return;
		}
}

/* sleep_wake: waits up to ms or until woken/stopped. */
static void sleep_wake(struct parentlink *pl, unsigned ms)
{
	struct pollfd p = {.fd = pl->wake[0], .events = POLLIN};
	if (poll(&p, 1, (int)ms) > 0)
		drain(pl->wake[0]);
}

/* handle_frame: one frame from the parent. 0 ok, -1 malformed. */
static int handle_frame(struct parentlink *pl, uint8_t type, const uint8_t *p, size_t len)
{
	struct ctlmsg m;
	if (ctlmsg_decode(&m, type, p, len) != 0 || type < 0x80 || type == CTLMSG_WELCOME)
		return -1;
	if (type == CTLMSG_SHUTDOWN) {
		pthread_mutex_lock(&pl->lock);
		pl->st.shutdowns++;
		pthread_mutex_unlock(&pl->lock);
		log_info("event=parent_shutdown_notice grace_ms=%u", m.grace_ms);
		if (pl->o.on_shutdown)
			pl->o.on_shutdown(pl->o.arg, m.grace_ms);
		else
			kill(getpid(), SIGTERM);
		return 0;
	}
	/* RESULT */
	pthread_mutex_lock(&pl->lock);
	struct req *q = pl->inflight;
	while (q && q->id != m.req)
		q = q->next;
	if (q) {
		unlink_req(&pl->inflight, q);
		q->done = 1;
		q->err = ctlmsg_status_to_err(m.status);
		if (q->err == 0 && q->type == CTLMSG_PUT && m.data_len != 0)
			q->err = APP_EPROTO;
		if (q->err == 0 && m.data_len) {
			if (m.data_len > q->max) {
				q->err = APP_ETOOBIG;
			} else if (!(q->body = malloc(m.data_len))) {
				q->err = APP_ENOMEM;
			} else {
				memcpy(q->body, m.data, m.data_len);
				q->body_len = m.data_len;
			}
		}
		pthread_cond_broadcast(&pl->cond);
	}
	/* a RESULT for a request that timed out meanwhile is ignored */
	pthread_mutex_unlock(&pl->lock);
	return 0;
}

/* session: serves one connection until it breaks or stop. Returns 1 when malformed. */
static int session(struct parentlink *pl, int fd)
{
	int malformed = 0;
	pl->rlen = 0;
	(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	for (;;) {
		struct logline *lines = NULL;
		size_t nlines = 0;
		struct req *send_list = NULL;
		int send_bye = 0;
		pthread_mutex_lock(&pl->lock);
		if (pl->stop) {
			pthread_mutex_unlock(&pl->lock);
			return 0;
		}
		/* log lines: copy a batch out of the ring */
		if (pl->count) {
			size_t batch = pl->count < 64 ? pl->count : 64;
			lines = malloc(batch * sizeof *lines);
			if (lines) {
				for (size_t i = 0; i < batch; i++)
					lines[i] = pl->ring[(pl->head + i) % pl->o.log_queue_max];
				pl->head = (pl->head + batch) % pl->o.log_queue_max;
				pl->count -= batch;
				nlines = batch;
			}
		}
		send_list = pl->queue;
		pl->queue = NULL;
		/* requests move to in-flight before they are written: a RESULT may come back at once */
		for (struct req *q = send_list, *nx; q; q = nx) {
			nx = q->next;
			q->next = pl->inflight;
			pl->inflight = q;
		}
		int had_reqs = send_list != NULL;
		if (pl->bye_pending && !pl->count) {
			send_bye = 1;
			pl->bye_pending = 0;
		}
		/* snapshot what to send (payload pointers stay valid: their callers wait for done) */
		struct {
			uint8_t type;
			uint8_t *p;
			size_t n;
		} out[64];
		size_t nout = 0;
		int more = 0;
		for (struct req *q = pl->inflight; q && had_reqs; q = q->next) {
			if (!q->payload)
				continue;
			if (nout == 64) {
				more = 1;
				break;
			}
			out[nout].type = q->type;
			out[nout].p = q->payload;
			out[nout].n = q->plen;
			q->payload = NULL; /* sent once; the caller frees via its own copy */
			nout++;
		}
		pthread_mutex_unlock(&pl->lock);
		int err = 0;
		for (size_t i = 0; i < nlines && !err; i++) {
			struct ctlmsg m = {.type = CTLMSG_LOG, .level = lines[i].level, .line = lines[i].text,
					   .line_len = lines[i].len};
			uint8_t *b = NULL;
			size_t bl = 0;
			if (ctlmsg_encode(&b, &bl, &m) == 0) {
				err = channel_send(fd, CTLMSG_LOG, b, bl, (int)pl->o.io_timeout_ms);
				free(b);
			}
		}
		if (!err) {
			pthread_mutex_lock(&pl->lock);
			pl->st.logs_sent += nlines;
			pthread_mutex_unlock(&pl->lock);
		}
		free(lines);
		for (size_t i = 0; i < nout; i++) {
			if (!err)
				err = channel_send(fd, out[i].type, out[i].p, out[i].n, (int)pl->o.io_timeout_ms);
			free(out[i].p);
		}
		if (!err && send_bye) {
			err = channel_send(fd, CTLMSG_BYE, NULL, 0, (int)pl->o.io_timeout_ms);
			if (!err) {
				pthread_mutex_lock(&pl->lock);
				pl->bye_done = 1;
				pthread_cond_broadcast(&pl->cond);
				pthread_mutex_unlock(&pl->lock);
			}
		}
		if (err)
			return 0;
		if (more || nlines == 64) {
			wake(pl);
		}
		struct pollfd pf[2] = {{.fd = fd, .events = POLLIN}, {.fd = pl->wake[0], .events = POLLIN}};
		int k = poll(pf, 2, -1);
		if (k < 0 && errno != EINTR)
			return 0;
		if (k <= 0)
			continue;
		if (pf[1].revents)
			drain(pl->wake[0]);
		if (pf[0].revents) {
			size_t cap = CHANNEL_HEADER_LEN + CHANNEL_MAX_FRAME;
			ssize_t n = recv(fd, pl->rbuf + pl->rlen, cap - pl->rlen, MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				return 0;
			if (n < 0)
				continue;
			pl->rlen += (size_t)n;
			for (;;) {
				uint8_t type;
				const uint8_t *payload;
				uint32_t plen;
				size_t used;
				int r = channel_frame_parse(&type, &payload, &plen, &used, pl->rbuf, pl->rlen, CHANNEL_MAX_FRAME);
				if (r == APP_EAGAIN)
					break;
				if (r != 0 || handle_frame(pl, type, payload, plen) != 0) {
					malformed = 1;
					log_warn("event=parent_malformed type=0x%02x", r == 0 ? type : 0);
					return malformed;
				}
				memmove(pl->rbuf, pl->rbuf + used, pl->rlen - used);
				pl->rlen -= used;
			}
		}
	}
}

/* hello: HELLO then WELCOME. 0 or an APP_E* code. */
static int hello(struct parentlink *pl, int fd)
{
	struct ctlmsg m = {.type = CTLMSG_HELLO, .id = pl->id, .id_len = strlen(pl->id)}, w;
	uint8_t *b = NULL, type = 0;
	size_t bl = 0;
	int r;
	if ((r = ctlmsg_encode(&b, &bl, &m)) != 0)
		return r;
	r = channel_send(fd, CTLMSG_HELLO, b, bl, (int)pl->o.io_timeout_ms);
	free(b);
	b = NULL;
	if (r != 0)
		return r;
	if ((r = channel_recv(fd, &type, &b, &bl, 64, (int)pl->o.io_timeout_ms)) != 0)
		return r;
	if (type != CTLMSG_WELCOME || ctlmsg_decode(&w, type, b, bl) != 0)
		r = APP_EPROTO;
	free(b);
	return r;
}

static void *link_main(void *arg)
{
	struct parentlink *pl = arg;
	unsigned backoff = pl->o.backoff_min_ms;
	for (;;) {
		int fd = -1, r;
		pthread_mutex_lock(&pl->lock);
		int stop = pl->stop;
		pthread_mutex_unlock(&pl->lock);
		if (stop)
			break;
		r = channel_connect(&pl->addr, (int)pl->o.io_timeout_ms, &fd);
		if (r == 0 && (r = hello(pl, fd)) != 0) {
			close(fd);
			fd = -1;
		}
		if (r != 0) {
			pthread_mutex_lock(&pl->lock);
			pl->st.connect_failures++;
			pthread_mutex_unlock(&pl->lock);
			sleep_wake(pl, backoff);
			backoff = backoff * 2 > pl->o.backoff_max_ms ? pl->o.backoff_max_ms : backoff * 2;
			continue;
		}
		backoff = pl->o.backoff_min_ms;
		pthread_mutex_lock(&pl->lock);
		pl->connected = 1;
		pl->st.connects++;
		pthread_cond_broadcast(&pl->cond);
		pthread_mutex_unlock(&pl->lock);
		log_info("event=parent_connected instance=%s", pl->id);
		int malformed = session(pl, fd);
		close(fd);
		pthread_mutex_lock(&pl->lock);
		pl->connected = 0;
		pl->st.disconnects++;
		if (malformed)
			pl->st.malformed++;
		for (struct req *q = pl->inflight; q; q = q->next)
			free(q->payload), q->payload = NULL;
		fail_list(&pl->inflight, APP_ECONN);
		stop = pl->stop;
		pthread_cond_broadcast(&pl->cond);
		pthread_mutex_unlock(&pl->lock);
		if (!stop) {
			log_warn("event=parent_disconnected instance=%s malformed=%d", pl->id, malformed);
			sleep_wake(pl, backoff);
		}
	}
	return NULL;
}

int parentlink_start(struct parentlink **out, const struct parentlink_opts *o)
{
	struct parentlink *pl = NULL;
	int r = APP_EINVAL;
	*out = NULL;
	if (!o || !o->control || !o->instance_id ||
	    !ctlmsg_name_valid(o->instance_id, strlen(o->instance_id), CTLMSG_ID_MAX) || o->backoff_min_ms == 0 ||
	    o->backoff_min_ms > o->backoff_max_ms || o->io_timeout_ms == 0 || o->log_queue_max == 0 ||
	    o->log_queue_max > 65536)
		return APP_EINVAL;
	if (!(pl = calloc(1, sizeof *pl)))
		return APP_ENOMEM;
	pl->wake[0] = pl->wake[1] = -1;
	pl->o = *o;
	pl->o.control = NULL;
	pl->o.instance_id = NULL;
	memcpy(pl->id, o->instance_id, strlen(o->instance_id) + 1);
	pthread_mutex_init(&pl->lock, NULL);
	pthread_cond_init(&pl->cond, NULL);
	if (channel_addr_parse(&pl->addr, o->control) != 0)
		goto fail;
	r = APP_ENOMEM;
	if (!(pl->ring = calloc(o->log_queue_max, sizeof *pl->ring)) ||
	    !(pl->rbuf = malloc(CHANNEL_HEADER_LEN + CHANNEL_MAX_FRAME)))
		goto fail;
	r = APP_EINTERNAL;
	if (pipe2(pl->wake, O_CLOEXEC | O_NONBLOCK) != 0)
		goto fail;
	if (pthread_create(&pl->thr, NULL, link_main, pl) != 0)
		goto fail;
	*out = pl;
	return 0;
fail:
	if (pl->wake[0] >= 0) {
		close(pl->wake[0]);
		close(pl->wake[1]);
	}
	pthread_mutex_destroy(&pl->lock);
	pthread_cond_destroy(&pl->cond);
	free(pl->ring);
	free(pl->rbuf);
	free(pl);
	return r;
}

void parentlink_stop(struct parentlink *pl)
{
	if (!pl)
		return;
	pthread_mutex_lock(&pl->lock);
	pl->stop = 1;
	pthread_mutex_unlock(&pl->lock);
	wake(pl);
	pthread_join(pl->thr, NULL);
	pthread_mutex_lock(&pl->lock);
	for (struct req *q = pl->queue; q; q = q->next)
		free(q->payload), q->payload = NULL;
	fail_list(&pl->queue, APP_ECANCELED);
	fail_list(&pl->inflight, APP_ECANCELED);
	pthread_cond_broadcast(&pl->cond);
	pthread_mutex_unlock(&pl->lock);
	close(pl->wake[0]);
	close(pl->wake[1]);
	pthread_mutex_destroy(&pl->lock);
	pthread_cond_destroy(&pl->cond);
	free(pl->ring);
	free(pl->rbuf);
	free(pl);
}

int parentlink_wait_connected(struct parentlink *pl, int timeout_ms)
{
	struct timespec dl;
	int r = 0;
	deadline_ts(&dl, timeout_ms);
	pthread_mutex_lock(&pl->lock);
	while (!pl->connected)
		if (pthread_cond_timedwait(&pl->cond, &pl->lock, &dl) == ETIMEDOUT) {
			r = pl->connected ? 0 : APP_ETIMEOUT;
			break;
		}
	pthread_mutex_unlock(&pl->lock);
	return r;
}

/*
 * call: queues the request m and waits for its RESULT. On success *body
 * (may be NULL when empty) is the caller's. Returns the request's error.
 */
static int call(struct parentlink *pl, struct ctlmsg *m, size_t max, uint8_t **body, size_t *body_len, int timeout_ms)
{
	struct req q;
	struct timespec dl;
	int r;
	memset(&q, 0, sizeof q);
	*body = NULL;
	*body_len = 0;
	pthread_mutex_lock(&pl->lock);
	q.id = ++pl->next_id;
	pl->st.requests++;
	pthread_mutex_unlock(&pl->lock);
	m->req = q.id;
	if ((r = ctlmsg_encode(&q.payload, &q.plen, m)) != 0)
		return r;
	q.type = m->type;
	q.max = max;
	deadline_ts(&dl, timeout_ms);
	pthread_mutex_lock(&pl->lock);
	if (pl->stop) {
		pthread_mutex_unlock(&pl->lock);
		free(q.payload);
		return APP_ECANCELED;
	}
	/* FIFO: append */
	struct req **tail = &pl->queue;
	while (*tail)
		tail = &(*tail)->next;
	*tail = &q;
	pthread_mutex_unlock(&pl->lock);
	wake(pl);
	pthread_mutex_lock(&pl->lock);
	while (!q.done)
		if (pthread_cond_timedwait(&pl->cond, &pl->lock, &dl) == ETIMEDOUT && !q.done) {
			unlink_req(&pl->queue, &q);
			unlink_req(&pl->inflight, &q);
			q.done = 1;
			q.err = APP_ETIMEOUT;
		}
	if (q.err)
		pl->st.request_failures++;
	pthread_mutex_unlock(&pl->lock);
	free(q.payload); /* NULL once the link thread took it */
	if (q.err) {
		free(q.body);
		return q.err;
	}
	*body = q.body;
	*body_len = q.body_len;
	return 0;
}

int parentlink_blob_put(struct parentlink *pl, const char *name, const uint8_t *data, size_t len, int timeout_ms)
{
	struct ctlmsg m = {.type = CTLMSG_PUT, .name = name, .name_len = name ? strlen(name) : 0, .data = data,
			   .data_len = len};
	uint8_t *b = NULL;
	size_t bl = 0;
	int r;
	if (!name || !ctlmsg_name_valid(name, m.name_len, CTLMSG_NAME_MAX))
		return APP_EINVAL;
	if (len > CTLMSG_BLOB_MAX)
		return APP_ETOOBIG;
	r = call(pl, &m, 0, &b, &bl, timeout_ms);
	free(b);
	return r;
}

int parentlink_blob_get(struct parentlink *pl, const char *name, uint8_t **data, size_t *len, size_t max,
			int timeout_ms)
{
	struct ctlmsg m = {.type = CTLMSG_GET, .name = name, .name_len = name ? strlen(name) : 0};
	int r;
	*data = NULL;
	*len = 0;
	if (!name || !ctlmsg_name_valid(name, m.name_len, CTLMSG_NAME_MAX))
		return APP_EINVAL;
	r = call(pl, &m, max, data, len, timeout_ms);
	if (r == 0 && !*data && !(*data = malloc(1)))
		return APP_ENOMEM;
	return r;
}

int parentlink_blob_list(struct parentlink *pl, parentlink_list_fn fn, void *arg, int timeout_ms)
{
	char after[CTLMSG_NAME_MAX + 1] = "";
	int r = 0;
	for (;;) {
		struct ctlmsg m = {.type = CTLMSG_LIST, .name = after, .name_len = strlen(after)};
		uint8_t *b = NULL;
		size_t bl = 0;
		if ((r = call(pl, &m, CHANNEL_MAX_FRAME, &b, &bl, timeout_ms)) != 0)
			return r;
		if (bl < 1 || b[0] > 1) {
			free(b);
			return APP_EPROTO;
		}
		int more = b[0];
		const uint8_t *p = b + 1, *end = b + bl;
		size_t n = 0;
		for (;;) {
			const char *name;
			size_t nl;
			uint64_t size;
			int e = ctlmsg_list_next(&p, end, &name, &nl, &size);
			if (e == APP_ENOTFOUND)
				break;
			char cur[CTLMSG_NAME_MAX + 1];
			if (e == 0) {
				memcpy(cur, name, nl);
				cur[nl] = 0;
			}
			/* strictly ascending and after the cursor, or the parent is lying */
			if (e != 0 || (after[0] && strcmp(cur, after) <= 0)) {
				free(b);
				return APP_EPROTO;
			}
			memcpy(after, cur, nl + 1);
			n++;
			if ((r = fn(arg, cur, size)) != 0) {
				free(b);
				return r;
			}
		}
		free(b);
		if (!more)
			return 0;
		if (n == 0)
			return APP_EPROTO; /* "more" without progress */
	}
}

int parentlink_bye(struct parentlink *pl, int timeout_ms)
{
	struct timespec dl;
	int r = 0;
	deadline_ts(&dl, timeout_ms);
	pthread_mutex_lock(&pl->lock);
	if (!pl->connected) {
		pthread_mutex_unlock(&pl->lock);
		return APP_ECONN;
	}
	pl->bye_done = 0;
	pl->bye_pending = 1;
	pthread_mutex_unlock(&pl->lock);
	wake(pl);
	pthread_mutex_lock(&pl->lock);
	while (!pl->bye_done)
		if (pthread_cond_timedwait(&pl->cond, &pl->lock, &dl) == ETIMEDOUT) {
			r = pl->bye_done ? 0 : APP_ETIMEOUT;
			break;
		}
	pthread_mutex_unlock(&pl->lock);
	return r;
}

void parentlink_log_sink(void *arg, enum log_level level, const char *line, size_t len)
{
	struct parentlink *pl = arg;
	if (!pl || !line || len == 0)
		return;
	if (len > CTLMSG_LOG_MAX)
		len = CTLMSG_LOG_MAX;
	pthread_mutex_lock(&pl->lock);
	if (pl->count == pl->o.log_queue_max) {
		pl->st.logs_dropped++;
		pthread_mutex_unlock(&pl->lock);
		return;
	}
	struct logline *l = &pl->ring[(pl->head + pl->count) % pl->o.log_queue_max];
	l->level = (uint8_t)(level > LOG_DEBUG ? LOG_DEBUG : level);
	l->len = (uint16_t)len;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		l->text[i] = (c < 0x20 || c > 0x7e) ? '?' : (char)c;
	}
	pl->count++;
	pthread_mutex_unlock(&pl->lock);
	wake(pl);
}

void parentlink_get_stats(struct parentlink *pl, struct parentlink_stats *out)
{
	pthread_mutex_lock(&pl->lock);
	*out = pl->st;
	out->connected = pl->connected;
	pthread_mutex_unlock(&pl->lock);
}


int parentlink_boot_start(struct parentlink_boot *b, const char *instance_id)
{
	struct parentlink_env env;
	struct parentlink_opts po;
	struct egress_opts eo;
	uint16_t port = 0;
	int r;
	memset(b, 0, sizeof *b);
	if ((r = parentlink_env(&env)) != 0)
		return r;
	if (!env.from_env && access("/dev/nsm", F_OK) != 0)
		return 0; /* no parent: a tool or a test run outside any enclave */
	if (egress_lo_up() != 0)
		return APP_EIO;
	parentlink_opts_default(&po);
	po.control = env.control;
	po.instance_id = instance_id;
	if ((r = parentlink_start(&b->link, &po)) != 0)
		return r;
	log_set_sink(parentlink_log_sink, b->link);
	egress_opts_default(&eo);
	eo.parent = env.egress;
	if ((r = egress_new(&b->egress, &eo)) != 0 || (r = egress_add_socks(b->egress, &port)) != 0 ||
	    (r = egress_start(b->egress)) != 0) {
		parentlink_boot_stop(b);
		return r;
	}
	egress_set_default(b->egress);
	snprintf(b->proxy, sizeof b->proxy, "socks5h://127.0.0.1:%u", port);
	memcpy(b->nsm, env.nsm, sizeof b->nsm);
	b->active = 1;
	log_info("event=parent_link control=%s egress=%s socks_port=%u", env.control, env.egress, port);
	return 0;
}

void parentlink_boot_stop(struct parentlink_boot *b)
{
	if (b->link && parentlink_bye(b->link, 2000) != 0) {
		/* not connected: nothing to tell */
	}
	if (b->link)
		log_set_sink(NULL, NULL);
	egress_set_default(NULL);
	parentlink_stop(b->link);
	egress_free(b->egress);
	memset(b, 0, sizeof *b);
}
