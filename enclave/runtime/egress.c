/*
 * egress.c: the enclave's egress bridge (egress.h).
 */
#include "enclave/runtime/egress.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "appliance/channel.h"
#include "appliance/log.h"
#include "appliance/socks5.h"
#include "relay-client/relayurl.h"

struct listener {
	int fd;
	uint16_t port;     /* local */
	int socks;         /* passthrough */
	char host[SOCKS5_HOST_MAX + 1];
	uint16_t up_port;
};

enum cstate { C_CONNECTING, C_HANDSHAKE, C_PIPE };

struct conn {
	int cfd, pfd;
	enum cstate st;
	size_t li; /* listener index */
	uint8_t hs[SOCKS5_REPLY_MAX + 2];
	size_t hslen;
	int choice_done;
	int64_t deadline;
	struct channel_pump up, down; /* up: client -> parent */
	uint64_t nup, ndown;         /* bytes, for the stats */
};

struct egress {
	struct egress_opts o;
	struct channel_addr parent;
	pthread_mutex_t lock;
	struct listener ls[EGRESS_MAX_LISTENERS];
	size_t nls;
	int wake[2];
	int stop;
	int started;
	pthread_t thr;
	struct egress_stats st;
	struct conn **conns;
	size_t nconns;
};

void egress_opts_default(struct egress_opts *o)
{
	memset(o, 0, sizeof *o);
	o->max_conns = 128;
	o->buf_size = 256 * 1024;
	o->handshake_timeout_ms = 15000;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int egress_new(struct egress **out, const struct egress_opts *o)
{
	struct egress *e;
	*out = NULL;
	if (!o || !o->parent || o->max_conns == 0 || o->max_conns > EGRESS_MAX_CONNS || o->buf_size < 4096 ||
	    o->buf_size > (4u << 20) || o->handshake_timeout_ms == 0)
		return APP_EINVAL;
	if (!(e = calloc(1, sizeof *e)))
		return APP_ENOMEM;
	e->o = *o;
	e->o.parent = NULL;
	e->wake[0] = e->wake[1] = -1;
	if (channel_addr_parse(&e->parent, o->parent) != 0) {
		free(e);
		return APP_EINVAL;
	}
	if (!(e->conns = calloc(o->max_conns, sizeof *e->conns))) {
		free(e);
		return APP_ENOMEM;
	}
	if (pipe2(e->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
		free(e->conns);
		free(e);
		return APP_EIO;
	}
	pthread_mutex_init(&e->lock, NULL);
	*out = e;
	return 0;
}

static void wake(struct egress *e)
{
	if (write(e->wake[1], "w", 1) < 0) {
		/* full: a wake-up is pending anyway */
	}
}

/* add_listener: lock held. */
static int add_listener(struct egress *e, int socks, const char *host, uint16_t port, uint16_t *local_port)
{
	struct channel_addr a;
	int fd = -1, r;
	uint32_t p = 0;
	for (size_t i = 0; i < e->nls; i++) {
		struct listener *l = &e->ls[i];
		if ((socks && l->socks) || (!socks && !l->socks && l->up_port == port && !strcmp(l->host, host))) {
			*local_port = l->port;
			return 0;
		}
	}
	if (e->nls == EGRESS_MAX_LISTENERS)
		return APP_ELIMIT;
	if ((r = channel_addr_parse(&a, "tcp:127.0.0.1:0")) != 0)
		return r;
	if ((r = channel_listen(&a, 64, &fd)) != 0)
		return r;
	if ((r = channel_bound_port(fd, &p)) != 0 || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
		close(fd);
		return r ? r : APP_EIO;
	}
	struct listener *l = &e->ls[e->nls++];
	memset(l, 0, sizeof *l);
	l->fd = fd;
	l->port = (uint16_t)p;
	l->socks = socks;
	if (!socks) {
		memcpy(l->host, host, strlen(host) + 1);
		l->up_port = port;
	}
	*local_port = l->port;
	if (socks)
		log_info("event=egress_listen port=%u mode=socks5", l->port);
	else
		log_info("event=egress_listen port=%u upstream=%s:%u", l->port, l->host, port);
	wake(e);
	return 0;
}

int egress_add_upstream(struct egress *e, const char *host, uint16_t port, uint16_t *local_port)
{
	uint8_t tmp[SOCKS5_CONNECT_MAX];
	size_t n;
	int r;
	if (!host || strlen(host) > SOCKS5_HOST_MAX || port == 0 ||
	    socks5_encode_connect(tmp, sizeof tmp, &n, host, port) != 0)
		return APP_EINVAL;
	pthread_mutex_lock(&e->lock);
	r = add_listener(e, 0, host, port, local_port);
	pthread_mutex_unlock(&e->lock);
	return r;
}

int egress_add_socks(struct egress *e, uint16_t *local_port)
{
	int r;
	pthread_mutex_lock(&e->lock);
	r = add_listener(e, 1, "", 0, local_port);
	pthread_mutex_unlock(&e->lock);
	return r;
}

int egress_connect_to(struct egress *e, const char *url, char *out, size_t cap)
{
	struct relayurl u;
	uint16_t lp = 0;
	int r;
	if (relayurl_parse(&u, NULL, url) != 0)
		return APP_EINVAL;
	if ((r = egress_add_upstream(e, u.host, u.port, &lp)) != 0)
		return r;
	int k = snprintf(out, cap, "127.0.0.1:%u", lp);
	return (k < 0 || (size_t)k >= cap) ? APP_ETOOBIG : 0;
}

void egress_get_stats(struct egress *e, struct egress_stats *out)
{
	pthread_mutex_lock(&e->lock);
	*out = e->st;
	pthread_mutex_unlock(&e->lock);
}

static void conn_free(struct conn *c)
{
	if (!c)
		return;
	if (c->cfd >= 0)
		close(c->cfd);
	if (c->pfd >= 0)
		close(c->pfd);
	channel_pump_free(&c->up);
	channel_pump_free(&c->down);
	free(c);
}

/* conn_end: closes c, accounts for it. Loop thread. */
static void conn_end(struct egress *e, size_t i)
{
	struct conn *c = e->conns[i];
	pthread_mutex_lock(&e->lock);
	e->st.active--;
	e->st.bytes_up += c->nup + c->up.total;
	e->st.bytes_down += c->ndown + c->down.total;
	pthread_mutex_unlock(&e->lock);
	conn_free(c);
	e->conns[i] = e->conns[--e->nconns];
	e->conns[e->nconns] = NULL;
}

static void count(struct egress *e, uint64_t *field)
{
	pthread_mutex_lock(&e->lock);
	(*field)++;
	pthread_mutex_unlock(&e->lock);
}

static void accept_one(struct egress *e, size_t li, int lfd)
{
	int fd = -1, r = channel_accept(lfd, &fd);
	if (r != 0)
		return;
	pthread_mutex_lock(&e->lock);
	e->st.accepted++;
	int busy = e->nconns >= e->o.max_conns;
	if (busy)
		e->st.busy++;
	pthread_mutex_unlock(&e->lock);
	if (busy) {
		log_warn("event=egress_busy max=%zu", e->o.max_conns);
		close(fd);
		return;
	}
	struct conn *c = calloc(1, sizeof *c);
	if (!c) {
		close(fd);
		return;
	}
	c->up.pipe[0] = c->up.pipe[1] = c->down.pipe[0] = c->down.pipe[1] = -1;
	if (channel_pump_init(&c->up, e->o.buf_size) != 0 || channel_pump_init(&c->down, e->o.buf_size) != 0) {
		c->cfd = fd;
		c->pfd = -1;
		conn_free(c);
		return;
	}
	c->cfd = fd;
	c->pfd = -1;
	c->li = li;
	c->deadline = now_ms() + e->o.handshake_timeout_ms;
	(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	int pending = 0;
	r = channel_connect_start(&e->parent, &c->pfd, &pending);
	pthread_mutex_lock(&e->lock);
	e->st.active++;
	pthread_mutex_unlock(&e->lock);
	e->conns[e->nconns++] = c;
	if (r != 0) {
		log_warn("event=egress_parent_unreachable reason=%s", app_errname(r));
		count(e, &e->st.parent_failures);
		conn_end(e, e->nconns - 1);
		return;
	}
	/* connected at once or not: the first POLLOUT continues in start_handshake */
	c->st = C_CONNECTING;
}

/* start_handshake: the parent connection is up. Returns 0 or -1 (end the connection). */
static int start_handshake(struct egress *e, struct conn *c, const struct listener *l)
{
	if (channel_connect_finish(c->pfd) != 0) {
		log_warn("event=egress_parent_unreachable reason=ECONN");
		count(e, &e->st.parent_failures);
		return -1;
	}
	if (l->socks) {
		c->st = C_PIPE;
		return 0;
	}
	uint8_t b[SOCKS5_CONNECT_MAX];
	size_t n = 0;
	if (socks5_encode_connect(b, sizeof b, &n, l->host, l->up_port) != 0)
		return -1;
	/* a fresh socket's send buffer takes these few bytes at once */
	if (send(c->pfd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)n) {
		count(e, &e->st.parent_failures);
		return -1;
	}
	c->st = C_HANDSHAKE;
	return 0;
}

/* handshake_read: reads the parent's answer. 0 = go on, 1 = piping, -1 = end. */
static int handshake_read(struct egress *e, struct conn *c, const struct listener *l)
{
	ssize_t n = recv(c->pfd, c->hs + c->hslen, sizeof c->hs - c->hslen, MSG_DONTWAIT);
	size_t used = 0;
	uint8_t rep = 0;
	int r;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		log_warn("event=egress_refused upstream=%s:%u reason=\"parent closed the connection\"", l->host,
			 l->up_port);
		count(e, &e->st.refused);
		return -1;
	}
	c->hslen += (size_t)n;
	if (!c->choice_done) {
		r = socks5_parse_choice(c->hs, c->hslen, &used);
		if (r == APP_EAGAIN)
			return 0;
		if (r != 0) {
			log_warn("event=egress_malformed upstream=%s:%u what=method_choice", l->host, l->up_port);
			count(e, &e->st.malformed);
			return -1;
		}
		memmove(c->hs, c->hs + used, c->hslen - used);
		c->hslen -= used;
		c->choice_done = 1;
	}
	r = socks5_parse_reply(&rep, c->hs, c->hslen, &used);
	if (r == APP_EAGAIN) {
		if (c->hslen == sizeof c->hs) {
			count(e, &e->st.malformed);
			return -1;
		}
		return 0;
	}
	if (r != 0) {
		log_warn("event=egress_malformed upstream=%s:%u what=reply", l->host, l->up_port);
		count(e, &e->st.malformed);
		return -1;
	}
	if (rep != SOCKS5_REP_SUCCEEDED) {
		log_warn("event=egress_refused upstream=%s:%u rep=%u reason=\"%s\"", l->host, l->up_port, rep,
			 socks5_rep_text(rep));
		count(e, &e->st.refused);
		return -1;
	}
	/* bytes after the reply belong to the client (the first bytes of the server: few) */
	if (c->hslen > used) {
		if (channel_write_full(c->cfd, c->hs + used, c->hslen - used, 2000) != 0)
			return -1;
		c->ndown += c->hslen - used;
	}
	c->hslen = 0;
	c->st = C_PIPE;
	return 1;
}

static void *loop_main(void *arg)
{
	struct egress *e = arg;
	struct pollfd *pf = calloc(1 + EGRESS_MAX_LISTENERS + 2 * e->o.max_conns, sizeof *pf);
	size_t *lmap = calloc(EGRESS_MAX_LISTENERS, sizeof *lmap);
	if (!pf || !lmap) {
		free(pf);
		free(lmap);
		log_error("event=egress_stopped reason=ENOMEM");
		return NULL;
	}
	for (;;) {
		size_t n = 0, nl;
		int64_t now = now_ms(), next = now + 1000;
		pthread_mutex_lock(&e->lock);
		int stop = e->stop;
		nl = e->nls;
		for (size_t i = 0; i < nl; i++)
			lmap[i] = (size_t)e->ls[i].fd;
		pthread_mutex_unlock(&e->lock);
		if (stop)
			break;
		pf[n++] = (struct pollfd){.fd = e->wake[0], .events = POLLIN};
		for (size_t i = 0; i < nl; i++)
			pf[n++] = (struct pollfd){.fd = (int)lmap[i], .events = e->nconns < e->o.max_conns ? POLLIN : 0};
		for (size_t i = 0; i < e->nconns; i++) {
			struct conn *c = e->conns[i];
			short ce = 0, pe = 0;
			if (c->st == C_CONNECTING) {
				pe = POLLOUT;
			} else if (c->st == C_HANDSHAKE) {
				pe = POLLIN;
			} else {
				if (channel_pump_want_read(&c->up))
					ce |= POLLIN;
				if (channel_pump_want_read(&c->down))
					pe |= POLLIN;
				if (channel_pump_want_write(&c->up))
					pe |= POLLOUT;
				if (channel_pump_want_write(&c->down))
					ce |= POLLOUT;
			}
			if (c->st != C_PIPE && c->deadline < next)
				next = c->deadline;
			pf[n++] = (struct pollfd){.fd = c->cfd, .events = ce};
			pf[n++] = (struct pollfd){.fd = c->pfd, .events = pe};
		}
		int64_t wait = next - now;
		int k = poll(pf, n, wait < 0 ? 0 : wait > INT_MAX ? INT_MAX : (int)wait);
		if (k < 0 && errno != EINTR) {
			log_error("event=egress_stopped reason=poll");
			break;
		}
		if (k < 0)
			continue;
		if (pf[0].revents) {
			char b[64];
			while (read(e->wake[0], b, sizeof b) > 0) {
			}
		}
		/* connections (walk backwards: conn_end moves the last one into the hole) */
		size_t base = 1 + nl;
		size_t cnt = e->nconns;
		now = now_ms();
		for (size_t j = cnt; j-- > 0;) {
			struct conn *c = e->conns[j];
			short cr = pf[base + 2 * j].revents, pr = pf[base + 2 * j + 1].revents;
			pthread_mutex_lock(&e->lock);
			struct listener l = e->ls[c->li];
			pthread_mutex_unlock(&e->lock);
			int end = 0;
			if (c->st != C_PIPE && now >= c->deadline) {
				log_warn("event=egress_timeout upstream=%s:%u", l.socks ? "socks5" : l.host, l.up_port);
				count(e, &e->st.timeouts);
				end = 1;
			} else if (c->st == C_CONNECTING && pr) {
				end = start_handshake(e, c, &l) != 0;
			} else if (c->st == C_HANDSHAKE && pr) {
				int h = handshake_read(e, c, &l);
				end = h < 0;
				pr = cr = 0;
			}
			if (!end && c->st == C_PIPE && (cr || pr)) {
				if (channel_pump_run(&c->up, c->cfd, c->pfd) != 0 ||
				    channel_pump_run(&c->down, c->pfd, c->cfd) != 0)
					end = 1;
				else if (c->up.shut && c->down.shut)
					end = 1;
			}
			if (end)
				conn_end(e, j);
		}
		/* listeners */
		for (size_t i = 0; i < nl; i++)
			if (pf[1 + i].revents & POLLIN)
				accept_one(e, i, (int)lmap[i]);
	}
	while (e->nconns)
		conn_end(e, e->nconns - 1);
	free(pf);
	free(lmap);
	return NULL;
}

int egress_start(struct egress *e)
{
	pthread_mutex_lock(&e->lock);
	if (e->started) {
		pthread_mutex_unlock(&e->lock);
		return APP_ESTATE;
	}
	e->started = 1;
	pthread_mutex_unlock(&e->lock);
	if (pthread_create(&e->thr, NULL, loop_main, e) != 0) {
		e->started = 0;
		return APP_EINTERNAL;
	}
	return 0;
}

void egress_free(struct egress *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	e->stop = 1;
	int started = e->started;
	pthread_mutex_unlock(&e->lock);
	wake(e);
	if (started)
		pthread_join(e->thr, NULL);
	for (size_t i = 0; i < e->nconns; i++)
		conn_free(e->conns[i]);
	for (size_t i = 0; i < e->nls; i++)
		close(e->ls[i].fd);
	close(e->wake[0]);
	close(e->wake[1]);
	pthread_mutex_destroy(&e->lock);
	free(e->conns);
	free(e);
}

int egress_lo_up(void)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = APP_EIO;
	if (s < 0)
		return APP_EIO;
	memset(&ifr, 0, sizeof ifr);
	memcpy(ifr.ifr_name, "lo", 3);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
		goto out;
	if (!(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags = (short)(ifr.ifr_flags | IFF_UP);
		if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
			goto out;
		log_info("event=lo_up");
	}
	r = 0;
out:
	if (r) {
		int en = errno;
		close(s);
		errno = en;
	} else {
		close(s);
	}
	return r;
}

static struct egress *default_bridge;

void egress_set_default(struct egress *e)
{
	default_bridge = e;
}

const char *egress_default_connect_to(const char *url, char *buf, size_t cap)
{
	if (!default_bridge || !url || !buf)
		return NULL;
	return egress_connect_to(default_bridge, url, buf, cap) == 0 ? buf : NULL;
}
