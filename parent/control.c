/*
 * control.c: the parent's control service (control.h).
 */
#include "parent/control.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "appliance/channel.h"
#include "appliance/ctlmsg.h"
#include "appliance/log.h"
#include "parent/blobstore.h"

struct slot {
	int used;
	int fd;
	int hello;
	pthread_mutex_t wlock;
	char id[CTLMSG_ID_MAX + 1];
};

struct control {
	struct control_config cfg;
	struct blobstore *store;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct slot slots[CONTROL_MAX_CONNECTIONS];
	struct control_stats st;
	uint64_t bye_seq;
	int stop_fd;
};

struct conn_arg {
	struct control *c;
	size_t slot;
};

void control_config_default(struct control_config *c)
{
	memset(c, 0, sizeof *c);
	c->max_connections = 4;
	c->log_line_max = CTLMSG_LOG_MAX;
	c->log_rate = 50;
	c->log_burst = 200;
	c->hello_timeout_ms = 5000;
	c->io_timeout_ms = 30000;
}

int control_new(struct control **out, const struct control_config *cfg, struct blobstore *store)
{
	struct control *c;
	*out = NULL;
	if (!cfg || cfg->max_connections == 0 || cfg->max_connections > CONTROL_MAX_CONNECTIONS ||
	    cfg->log_line_max < 16 || cfg->log_line_max > CTLMSG_LOG_MAX || cfg->log_rate == 0 ||
	    cfg->log_burst == 0 || cfg->hello_timeout_ms == 0 || cfg->io_timeout_ms == 0)
		return APP_EINVAL;
	if (!(c = calloc(1, sizeof *c)))
		return APP_ENOMEM;
	c->cfg = *cfg;
	c->store = store;
	c->stop_fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	for (size_t i = 0; i < CONTROL_MAX_CONNECTIONS; i++) {
		c->slots[i].fd = -1;
		pthread_mutex_init(&c->slots[i].wlock, NULL);
	}
	*out = c;
	return 0;
}

void control_free(struct control *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < CONTROL_MAX_CONNECTIONS; i++)
		pthread_mutex_destroy(&c->slots[i].wlock);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

void control_get_stats(struct control *c, struct control_stats *out)
{
	pthread_mutex_lock(&c->lock);
	*out = c->st;
	pthread_mutex_unlock(&c->lock);
}

size_t control_connected(struct control *c)
{
	size_t n = 0;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < CONTROL_MAX_CONNECTIONS; i++)
		n += c->slots[i].used && c->slots[i].hello;
	pthread_mutex_unlock(&c->lock);
	return n;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int send_msg(struct control *c, struct slot *s, const struct ctlmsg *m)
{
	uint8_t *b = NULL;
	size_t n = 0;
	int r = ctlmsg_encode(&b, &n, m);
	if (r != 0)
		return r;
	pthread_mutex_lock(&s->wlock);
	r = channel_send(s->fd, m->type, b, n, (int)c->cfg.io_timeout_ms);
	pthread_mutex_unlock(&s->wlock);
	free(b);
	return r;
}

static int send_result(struct control *c, struct slot *s, uint32_t req, int err, const uint8_t *body, size_t len)
{
	struct ctlmsg m = {.type = CTLMSG_RESULT, .req = req, .status = ctlmsg_err_to_status(err)};
	if (err == 0) {
		m.data = body;
		m.data_len = len;
	}
	return send_msg(c, s, &m);
}

/* copy_name: a wire name into a NUL-terminated buffer of CTLMSG_NAME_MAX + 1. */
static void copy_name(char *dst, const char *src, size_t len)
{
	memcpy(dst, src, len);
	dst[len] = 0;
}

static int do_list(struct control *c, struct slot *s, const struct ctlmsg *m)
{
	char after[CTLMSG_NAME_MAX + 1];
	struct blobstore_entry *e = NULL;
	size_t n = 0, off = 0;
	int more = 0, r;
	uint8_t *body = NULL;
	copy_name(after, m->name, m->name_len);
	if (!c->store)
		return send_result(c, s, m->req, APP_EIO, NULL, 0);
	if (!(e = calloc(CTLMSG_LIST_MAX, sizeof *e)))
		return APP_ENOMEM;
	r = blobstore_list(c->store, s->id, after, e, CTLMSG_LIST_MAX, &n, &more);
	if (r != 0) {
		r = send_result(c, s, m->req, r, NULL, 0);
		goto out;
	}
	/* 1 + n * (1 + 128 + 8) <= 140 KiB: within a frame */
	body = malloc(1 + n * (1 + CTLMSG_NAME_MAX + 8));
	if (!body) {
		r = APP_ENOMEM;
		goto out;
	}
	body[off++] = (uint8_t)more;
	for (size_t i = 0; i < n; i++) {
		size_t nl = strlen(e[i].name);
		body[off++] = (uint8_t)nl;
		memcpy(body + off, e[i].name, nl);
		off += nl;
		for (int k = 7; k >= 0; k--)
			body[off++] = (uint8_t)(e[i].size >> (8 * k));
	}
	r = send_result(c, s, m->req, 0, body, off);
out:
	free(body);
	free(e);
	return r;
}

/* Token bucket of one connection's log lines. */
struct bucket {
	double tokens;
	int64_t last_ms;
	uint64_t dropped;
	int64_t last_report;
};

static void do_log(struct control *c, struct slot *s, struct bucket *b, const struct ctlmsg *m)
{
	int64_t now = now_ms();
	b->tokens += (double)(now - b->last_ms) * c->cfg.log_rate / 1000.0;
	if (b->tokens > c->cfg.log_burst)
		b->tokens = c->cfg.log_burst;
	b->last_ms = now;
	if (b->tokens < 1.0) {
		b->dropped++;
		pthread_mutex_lock(&c->lock);
		c->st.log_dropped++;
		pthread_mutex_unlock(&c->lock);
	} else {
		size_t n = m->line_len;
		b->tokens -= 1.0;
		if (n > c->cfg.log_line_max) {
			n = c->cfg.log_line_max;
			pthread_mutex_lock(&c->lock);
			c->st.log_truncated++;
			pthread_mutex_unlock(&c->lock);
		}
		log_write((enum log_level)m->level, "event=enclave_log instance=%s line=%.*s", s->id, (int)n, m->line);
		pthread_mutex_lock(&c->lock);
		c->st.log_lines++;
		pthread_mutex_unlock(&c->lock);
	}
	if (b->dropped && now - b->last_report >= 1000) {
		log_warn("event=enclave_log_dropped instance=%s count=%llu", s->id, (unsigned long long)b->dropped);
		b->dropped = 0;
		b->last_report = now;
	}
}

/* wait_readable: fd readable (0), stop (APP_ECANCELED), timeout (APP_ETIMEOUT; timeout_ms < 0 = none). */
static int wait_readable(int fd, int stop_fd, int timeout_ms)
{
	for (;;) {
		struct pollfd pf[2] = {{.fd = fd, .events = POLLIN}, {.fd = stop_fd, .events = POLLIN}};
		int k = poll(pf, stop_fd >= 0 ? 2 : 1, timeout_ms);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return APP_EIO;
		if (k == 0)
			return APP_ETIMEOUT;
		if (stop_fd >= 0 && pf[1].revents)
			return APP_ECANCELED;
		return 0;
	}
}

static void *conn_main(void *arg)
{
	struct conn_arg *a = arg;
	struct control *c = a->c;
	struct slot *s = &c->slots[a->slot];
	struct bucket bk = {.tokens = c->cfg.log_burst, .last_ms = now_ms()};
	const char *why = "closed";
	int malformed = 0;
	free(a);
	for (;;) {
		uint8_t type = 0, *p = NULL;
		size_t len = 0;
		struct ctlmsg m;
		int r = wait_readable(s->fd, c->stop_fd, s->hello ? -1 : (int)c->cfg.hello_timeout_ms);
		if (r != 0) {
			why = r == APP_ECANCELED ? "parent stopping" : r == APP_ETIMEOUT ? "no HELLO in time" : "poll failed";
			malformed = r == APP_ETIMEOUT;
			break;
		}
		r = channel_recv(s->fd, &type, &p, &len, CHANNEL_MAX_FRAME, (int)c->cfg.io_timeout_ms);
		if (r != 0) {
			malformed = r == APP_ETOOBIG || r == APP_EPROTO || r == APP_ETIMEOUT;
			why = r == APP_ECONN ? "closed" : app_errname(r);
			if (malformed)
				log_warn("event=control_malformed reason=%s (frame header or truncated frame)", app_errname(r));
			break;
		}
		r = ctlmsg_decode(&m, type, p, len);
		if (r != 0 || type >= 0x80 || (!s->hello && type != CTLMSG_HELLO) || (s->hello && type == CTLMSG_HELLO)) {
			log_warn("event=control_malformed type=0x%02x len=%zu reason=%s", type, len,
				 r != 0 ? app_errname(r) : "unexpected type");
			free(p);
			malformed = 1;
			why = "malformed frame";
			break;
		}
		switch (type) {
		case CTLMSG_HELLO: {
			struct ctlmsg w = {.type = CTLMSG_WELCOME};
			pthread_mutex_lock(&c->lock);
			memcpy(s->id, m.id, m.id_len);
			s->id[m.id_len] = 0;
			s->hello = 1;
			c->st.hellos++;
			pthread_mutex_unlock(&c->lock);
			log_info("event=control_hello instance=%s", s->id);
			r = send_msg(c, s, &w);
			break;
		}
		case CTLMSG_LOG:
			do_log(c, s, &bk, &m);
			break;
		case CTLMSG_PUT: {
			char name[CTLMSG_NAME_MAX + 1];
			copy_name(name, m.name, m.name_len);
			int e = c->store ? blobstore_put(c->store, s->id, name, m.data, m.data_len) : APP_EIO;
			log_info("event=blob_put instance=%s name=%s bytes=%zu result=%s", s->id, name, m.data_len,
				 e ? app_errname(e) : "ok");
			pthread_mutex_lock(&c->lock);
			c->st.puts++;
			pthread_mutex_unlock(&c->lock);
			r = send_result(c, s, m.req, e, NULL, 0);
			break;
		}
		case CTLMSG_GET: {
			char name[CTLMSG_NAME_MAX + 1];
			uint8_t *d = NULL;
			size_t dl = 0;
			copy_name(name, m.name, m.name_len);
			int e = c->store ? blobstore_get(c->store, s->id, name, &d, &dl) : APP_EIO;
			pthread_mutex_lock(&c->lock);
			c->st.gets++;
			pthread_mutex_unlock(&c->lock);
			r = send_result(c, s, m.req, e, d, dl);
			free(d);
			break;
		}
		case CTLMSG_LIST:
			pthread_mutex_lock(&c->lock);
			c->st.lists++;
			pthread_mutex_unlock(&c->lock);
			r = do_list(c, s, &m);
			break;
		case CTLMSG_BYE:
			pthread_mutex_lock(&c->lock);
			c->st.byes++;
			c->bye_seq++;
			pthread_cond_broadcast(&c->cond);
			pthread_mutex_unlock(&c->lock);
			log_info("event=control_bye instance=%s", s->id);
			r = 0;
			break;
		default:
			r = APP_EPROTO;
			break;
		}
		free(p);
		if (r != 0) {
			why = app_errname(r);
			break;
		}
	}
	log_info("event=control_disconnect instance=%s reason=\"%s\"", s->hello ? s->id : "-", why);
	pthread_mutex_lock(&c->lock);
	if (malformed)
		c->st.malformed++;
	pthread_mutex_lock(&s->wlock);
	close(s->fd);
	s->fd = -1;
	pthread_mutex_unlock(&s->wlock);
	s->used = 0;
	s->hello = 0;
	c->st.active--;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int control_serve(struct control *c, int listen_fd, int stop_fd)
{
	int r = 0;
	pthread_attr_t attr;
	c->stop_fd = stop_fd;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		struct pollfd pf[2] = {{.fd = listen_fd, .events = POLLIN}, {.fd = stop_fd, .events = POLLIN}};
		int k = poll(pf, 2, -1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = APP_EIO;
			break;
		}
		if (pf[1].revents)
			break;
		if (!(pf[0].revents & POLLIN))
			continue;
		int fd = -1, a = channel_accept(listen_fd, &fd);
		if (a == APP_EAGAIN || a == APP_ELIMIT)
			continue;
		if (a != 0) {
			r = APP_EIO;
			break;
		}
		size_t i;
		pthread_mutex_lock(&c->lock);
		c->st.accepted++;
		for (i = 0; i < c->cfg.max_connections && c->slots[i].used; i++)
			;
		if (i == c->cfg.max_connections) {
			c->st.busy++;
			pthread_mutex_unlock(&c->lock);
			log_warn("event=control_busy max=%zu", c->cfg.max_connections);
			close(fd);
			continue;
		}
		c->slots[i].used = 1;
		c->slots[i].hello = 0;
		c->slots[i].fd = fd;
		c->slots[i].id[0] = 0;
		c->st.active++;
		pthread_mutex_unlock(&c->lock);
		struct conn_arg *ca = malloc(sizeof *ca);
		pthread_t t;
		if (ca) {
			*ca = (struct conn_arg){.c = c, .slot = i};
			if (pthread_create(&t, &attr, conn_main, ca) == 0)
				continue;
			free(ca);
		}
		pthread_mutex_lock(&c->lock);
		close(fd);
		c->slots[i].used = 0;
		c->slots[i].fd = -1;
		c->st.active--;
		pthread_mutex_unlock(&c->lock);
	}
	pthread_attr_destroy(&attr);
	pthread_mutex_lock(&c->lock);
	while (c->st.active > 0)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
	return r;
}

int control_shutdown_notice(struct control *c, uint32_t grace_ms)
{
	struct ctlmsg m = {.type = CTLMSG_SHUTDOWN, .grace_ms = grace_ms};
	int told = 0;
	for (size_t i = 0; i < CONTROL_MAX_CONNECTIONS; i++) {
		struct slot *s = &c->slots[i];
		pthread_mutex_lock(&c->lock);
		int ok = s->used && s->hello && s->fd >= 0;
		pthread_mutex_unlock(&c->lock);
		if (!ok)
			continue;
		/* send_msg takes wlock; the slot's fd is closed only under wlock */
		uint8_t *b = NULL;
		size_t n = 0;
		if (ctlmsg_encode(&b, &n, &m) != 0)
			continue;
		pthread_mutex_lock(&s->wlock);
		int r = s->fd >= 0 ? channel_send(s->fd, m.type, b, n, 2000) : APP_ECONN;
		pthread_mutex_unlock(&s->wlock);
		free(b);
		if (r == 0) {
			told++;
			pthread_mutex_lock(&c->lock);
			c->st.shutdowns_sent++;
			pthread_mutex_unlock(&c->lock);
		}
	}
	return told;
}

int control_wait_bye(struct control *c, int timeout_ms)
{
	struct timespec dl;
	int r = 0;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&c->lock);
	while (c->bye_seq == 0) {
		if (pthread_cond_timedwait(&c->cond, &c->lock, &dl) == ETIMEDOUT) {
			r = c->bye_seq ? 0 : APP_ETIMEOUT;
			break;
		}
	}
	c->bye_seq = 0;
	pthread_mutex_unlock(&c->lock);
	return r;
}
