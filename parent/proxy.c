/*
 * proxy.c: the parent's egress SOCKS5 proxy (proxy.h).
 */
#include "parent/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "appliance/channel.h"
#include "appliance/log.h"

struct proxy {
	struct proxy_config cfg;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	struct proxy_stats st;
	uint64_t next_id;
};

struct conn_arg {
	struct proxy *p;
	int fd;
	int stop_fd;
};

void proxy_config_default(struct proxy_config *c)
{
	memset(c, 0, sizeof *c);
	c->max_connections = 64;
	c->max_bytes = 1ull << 30;
	c->handshake_timeout_ms = 10000;
	c->connect_timeout_ms = 10000;
	c->idle_timeout_ms = 300000;
	c->buf_size = 256 * 1024;
}

int proxy_rule_parse(struct proxy_rule *out, const char *text)
{
	char host[SOCKS5_HOST_MAX + 1];
	const char *colon, *h;
	size_t n, hl;
	memset(out, 0, sizeof *out);
	if (!text || (n = strlen(text)) == 0 || n > PROXY_RULE_TEXT_MAX)
		return APP_EINVAL;
	colon = strrchr(text, ':');
	if (!colon || colon == text)
		return APP_EINVAL;
	/* port */
	if (!strcmp(colon + 1, "*")) {
		out->any_port = 1;
	} else {
		const char *q = colon + 1;
		unsigned long v = 0;
		if (!*q || strlen(q) > 5 || q[0] == '0')
			return APP_EINVAL;
		for (; *q; q++) {
			if (*q < '0' || *q > '9')
				return APP_EINVAL;
			v = v * 10 + (unsigned long)(*q - '0');
		}
		if (v == 0 || v > 65535)
			return APP_EINVAL;
		out->port = (uint16_t)v;
	}
	/* host */
	h = text;
	hl = (size_t)(colon - text);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		struct in6_addr a6;
		if (hl - 2 >= sizeof host)
			return APP_EINVAL;
		memcpy(host, h + 1, hl - 2);
		host[hl - 2] = 0;
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return APP_EINVAL;
		/* canonical text, as socks5_parse_request prints it */
		if (!inet_ntop(AF_INET6, &a6, out->host, sizeof out->host))
			return APP_EINVAL;
		return 0;
	}
	if (hl == 1 && h[0] == '*') {
		out->any_host = 1;
		return 0;
	}
	if (hl > 2 && h[0] == '*' && h[1] == '.') {
		out->suffix = 1;
		h += 2;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof host || !socks5_host_valid(h, hl))
		return APP_EINVAL;
	for (size_t i = 0; i < hl; i++)
		out->host[i] = (h[i] >= 'A' && h[i] <= 'Z') ? (char)(h[i] - 'A' + 'a') : h[i];
	out->host[hl] = 0;
	return 0;
}

static int rule_match(const struct proxy_rule *r, const char *host, uint16_t port)
{
	if (!r->any_port && r->port != port)
		return 0;
	if (r->any_host)
		return 1;
	if (r->suffix) {
		size_t hl = strlen(host), sl = strlen(r->host);
		return hl > sl + 1 && host[hl - sl - 1] == '.' && !strcasecmp(host + hl - sl, r->host);
	}
	return !strcasecmp(host, r->host);
}

int proxy_allowed(const struct proxy_config *c, const char *host, uint16_t port)
{
	for (size_t i = 0; i < c->nrules; i++)
		if (rule_match(&c->rules[i], host, port))
			return 1;
	return 0;
}

static int v4_private(uint32_t a)
{
	return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 || (a >> 22) == (100u << 2 | 1) /* 100.64/10 */
	       || (a >> 16) == (169u << 8 | 254) || (a >> 20) == (172u << 4 | 1) || (a >> 16) == (192u << 8 | 168) ||
	       (a >> 28) >= 14 /* 224/4 multicast, 240/4 reserved, broadcast */ || (a >> 8) == (192u << 16) /* 192.0.0/24 */;
}

int proxy_addr_private(const void *sockaddr)
{
	const struct sockaddr *sa = sockaddr;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = sockaddr;
		return v4_private(ntohl(in->sin_addr.s_addr));
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = sockaddr;
		const uint8_t *b = in6->sin6_addr.s6_addr;
		static const uint8_t zero[16];
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) || IN6_IS_ADDR_V4COMPAT(&in6->sin6_addr))
			return v4_private((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15]);
		if (!memcmp(b, zero, 16) || IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			return 1;
		if ((b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) || b[0] == 0xff)
			return 1; /* fc00::/7 unique local, fe80::/10 link local, ff00::/8 multicast */
		if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
			return 1; /* 2001:db8::/32 documentation */
		if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b)
			return 1; /* 64:ff9b::/96 NAT64 can reach private IPv4 */
		return 0;
	}
	return 1;
}

int proxy_new(struct proxy **out, const struct proxy_config *cfg)
{
	struct proxy *p;
	*out = NULL;
	if (!cfg || cfg->max_connections == 0 || cfg->max_connections > PROXY_MAX_CONNECTIONS || cfg->max_bytes == 0 ||
	    cfg->buf_size < PROXY_BUF_MIN || cfg->buf_size > PROXY_BUF_MAX || cfg->nrules > PROXY_RULES_MAX ||
	    cfg->handshake_timeout_ms == 0 || cfg->connect_timeout_ms == 0 || cfg->idle_timeout_ms == 0)
		return APP_EINVAL;
	p = calloc(1, sizeof *p);
	if (!p)
		return APP_ENOMEM;
	p->cfg = *cfg;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->idle, NULL);
	*out = p;
	return 0;
}

void proxy_free(struct proxy *p)
{
	if (!p)
		return;
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->idle);
	free(p);
}

void proxy_get_stats(struct proxy *p, struct proxy_stats *out)
{
	pthread_mutex_lock(&p->lock);
	*out = p->st;
	pthread_mutex_unlock(&p->lock);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int clamp_ms(int64_t ms)
{
	return ms < 0 ? 0 : ms > INT_MAX ? INT_MAX : (int)ms;
}

/*
 * read_some: waits (poll on fd and stop_fd) until fd is readable or the
 * deadline passes, then reads up to cap bytes. Returns bytes (> 0), 0 on EOF,
 * APP_ETIMEOUT, APP_ECANCELED (stop), APP_ECONN/APP_EIO.
 */
static ssize_t read_some(int fd, int stop_fd, uint8_t *buf, size_t cap, int64_t deadline)
{
	for (;;) {
		struct pollfd pf[2] = {{.fd = fd, .events = POLLIN}, {.fd = stop_fd, .events = POLLIN}};
		int k = poll(pf, stop_fd >= 0 ? 2 : 1, clamp_ms(deadline - now_ms()));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return APP_EIO;
		if (k == 0)
			return APP_ETIMEOUT;
		if (stop_fd >= 0 && pf[1].revents)
			return APP_ECANCELED;
		ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);
		if (n >= 0)
			return n;
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			continue;
		return APP_ECONN;
	}
}

/* A connection's record for its log line. */
struct rec {
	uint64_t id;
	char dest[SOCKS5_HOST_MAX + 10];
	const char *verdict;
	const char *reason;
	uint64_t up, down;
	int64_t start;
};

static void finish(struct proxy *p, struct rec *rc)
{
	pthread_mutex_lock(&p->lock);
	if (!strcmp(rc->verdict, "allowed"))
		p->st.allowed++;
	else if (!strcmp(rc->verdict, "denied"))
		p->st.denied++;
	else if (!strcmp(rc->verdict, "malformed"))
		p->st.malformed++;
	else
		p->st.failed++;
	p->st.bytes_up += rc->up;
	p->st.bytes_down += rc->down;
	pthread_mutex_unlock(&p->lock);
	log_info("event=egress conn=%llu dest=%s verdict=%s reason=\"%s\" bytes_up=%llu bytes_down=%llu duration_ms=%lld",
		 (unsigned long long)rc->id, rc->dest[0] ? rc->dest : "-", rc->verdict, rc->reason,
		 (unsigned long long)rc->up, (unsigned long long)rc->down, (long long)(now_ms() - rc->start));
}

static void send_reply(int fd, uint8_t rep)
{
	uint8_t b[10];
	size_t n = socks5_encode_reply(b, rep);
	if (channel_write_full(fd, b, n, 2000) != 0) {
		/* the client is gone: nothing more to tell it */
	}
}

/*
 * dial: resolves and connects to the request's destination. Returns the
 * connected socket, or -1 with *rep (the SOCKS5 reply code) and *why.
 */
static int dial(struct proxy *p, const struct socks5_request *rq, int stop_fd, uint8_t *rep, const char **why)
{
	struct addrinfo hints, *res = NULL;
	char port[8];
	int fd = -1, skipped = 0, tried = 0, last = 0;
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	if (rq->atyp != SOCKS5_ATYP_DOMAIN)
		hints.ai_flags = AI_NUMERICHOST;
	snprintf(port, sizeof port, "%u", rq->port);
	int g = getaddrinfo(rq->host, port, &hints, &res);
	if (g != 0 || !res) {
		*rep = SOCKS5_REP_HOST_UNREACHABLE;
		*why = "name resolution failed";
		return -1;
	}
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		if (!p->cfg.allow_private && proxy_addr_private(ai->ai_addr)) {
			skipped++;
			continue;
		}
		tried++;
		int s = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (s < 0) {
			last = errno;
			continue;
		}
		if (connect(s, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
			last = errno;
			close(s);
			continue;
		}
		int64_t deadline = now_ms() + p->cfg.connect_timeout_ms;
		int done = 0;
		while (!done) {
			struct pollfd pf[2] = {{.fd = s, .events = POLLOUT}, {.fd = stop_fd, .events = POLLIN}};
			int k = poll(pf, stop_fd >= 0 ? 2 : 1, clamp_ms(deadline - now_ms()));
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0 || (stop_fd >= 0 && pf[1].revents)) {
				last = k == 0 ? ETIMEDOUT : ECANCELED;
				done = -1;
				break;
			}
			int err = 0;
			socklen_t l = sizeof err;
			if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &l) != 0)
				err = EIO;
			last = err;
			done = err == 0 ? 1 : -1;
		}
		if (done == 1)
			fd = s;
		else
			close(s);
	}
	freeaddrinfo(res);
	if (fd >= 0)
		return fd;
	if (tried == 0 && skipped > 0) {
		*rep = SOCKS5_REP_NOT_ALLOWED;
		*why = "resolves to a private address";
	} else if (last == ECONNREFUSED) {
		*rep = SOCKS5_REP_CONN_REFUSED;
		*why = "connection refused";
	} else if (last == ENETUNREACH) {
		*rep = SOCKS5_REP_NET_UNREACHABLE;
		*why = "network unreachable";
	} else if (last == ETIMEDOUT) {
		*rep = SOCKS5_REP_HOST_UNREACHABLE;
		*why = "connect timed out";
	} else {
		*rep = SOCKS5_REP_HOST_UNREACHABLE;
		*why = "host unreachable";
	}
	return -1;
}

/*
 * relay_loop: copies a <-> b (channel_pump: splice when possible) until both
 * directions ended, an error, the idle timeout, the byte cap or stop.
 * Returns a reason text.
 */
static const char *relay_loop(struct proxy *p, int a, int b, int stop_fd, struct channel_pump *ab,
			      struct channel_pump *ba, int *capped)
{
	int64_t last = now_ms();
	(void)fcntl(a, F_SETFL, fcntl(a, F_GETFL) | O_NONBLOCK);
	(void)fcntl(b, F_SETFL, fcntl(b, F_GETFL) | O_NONBLOCK);
	for (;;) {
		if (ab->shut && ba->shut)
			return "closed";
		struct pollfd pf[3];
		pf[0] = (struct pollfd){.fd = a};
		pf[1] = (struct pollfd){.fd = b};
		pf[2] = (struct pollfd){.fd = stop_fd, .events = POLLIN};
		if (channel_pump_want_read(ab))
			pf[0].events |= POLLIN;
		if (channel_pump_want_write(ab))
			pf[1].events |= POLLOUT;
		if (channel_pump_want_read(ba))
			pf[1].events |= POLLIN;
		if (channel_pump_want_write(ba))
			pf[0].events |= POLLOUT;
		int k = poll(pf, stop_fd >= 0 ? 3 : 2, clamp_ms(last + p->cfg.idle_timeout_ms - now_ms()));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return "poll failed";
		if (k == 0)
			return "idle timeout";
		if (stop_fd >= 0 && pf[2].revents)
			return "parent stopping";
		uint64_t before = ab->total + ba->total;
		int r1 = channel_pump_run(ab, a, b), r2 = r1 ? 0 : channel_pump_run(ba, b, a);
		if (r1 || r2)
			return (r1 ? r1 : r2) == APP_ECONN ? "reset" : "i/o error";
		if (ab->total + ba->total != before || (pf[0].revents | pf[1].revents) & POLLOUT)
			last = now_ms();
		if (ab->total > p->cfg.max_bytes || ba->total > p->cfg.max_bytes) {
			*capped = 1;
			return "byte cap";
		}
		if ((pf[0].revents | pf[1].revents) & (POLLERR | POLLNVAL))
			if (!channel_pump_want_read(ab) && !channel_pump_want_read(ba))
				return "socket error";
	}
}

void proxy_handle(struct proxy *p, int fd, int stop_fd)
{
	struct rec rc = {.verdict = "malformed", .reason = "", .start = now_ms()};
	uint8_t hs[SOCKS5_GREETING_MAX + SOCKS5_REQUEST_MAX];
	size_t have = 0, used = 0;
	struct socks5_request rq;
	int noauth = 0, r, up = -1, capped = 0;
	struct channel_pump ab, ba;
	memset(&ab, 0, sizeof ab);
	memset(&ba, 0, sizeof ba);
	ab.pipe[0] = ab.pipe[1] = ba.pipe[0] = ba.pipe[1] = -1;
	int64_t deadline = rc.start + p->cfg.handshake_timeout_ms;

	pthread_mutex_lock(&p->lock);
	rc.id = ++p->next_id;
	pthread_mutex_unlock(&p->lock);

	/* greeting */
	for (;;) {
		r = socks5_parse_greeting(hs, have, &used, &noauth);
		if (r != APP_EAGAIN)
			break;
		ssize_t n = read_some(fd, stop_fd, hs + have, sizeof hs - have, deadline);
		if (n <= 0) {
			rc.reason = n == 0 ? "closed during greeting" : n == APP_ETIMEOUT ? "handshake timeout" : "greeting read failed";
			goto out;
		}
		have += (size_t)n;
	}
	if (r != 0) {
		rc.reason = r == APP_EVERSION ? "not SOCKS5" : "malformed greeting";
		goto out;
	}
	if (!noauth) {
		static const uint8_t none[2] = {SOCKS5_VER, SOCKS5_METHOD_NONE};
		rc.verdict = "denied";
		rc.reason = "no acceptable method";
		if (channel_write_full(fd, none, 2, 2000) != 0) {
			/* gone */
		}
		goto out;
	}
	{
		static const uint8_t ok[2] = {SOCKS5_VER, SOCKS5_METHOD_NOAUTH};
		if (channel_write_full(fd, ok, 2, 2000) != 0) {
			rc.reason = "write failed";
			goto out;
		}
	}
	memmove(hs, hs + used, have - used);
	have -= used;
	/* request */
	for (;;) {
		r = socks5_parse_request(&rq, hs, have, &used);
		if (r != APP_EAGAIN)
			break;
		if (have == sizeof hs) {
			r = APP_EPARSE;
			break;
		}
		ssize_t n = read_some(fd, stop_fd, hs + have, sizeof hs - have, deadline);
		if (n <= 0) {
			rc.reason = n == 0 ? "closed during request" : n == APP_ETIMEOUT ? "handshake timeout" : "request read failed";
			goto out;
		}
		have += (size_t)n;
	}
	if (r == APP_EUNSUPPORTED) {
		int cmd_bad = rq.cmd != SOCKS5_CMD_CONNECT && rq.atyp != 0 &&
			      (rq.atyp == SOCKS5_ATYP_IPV4 || rq.atyp == SOCKS5_ATYP_IPV6 || rq.atyp == SOCKS5_ATYP_DOMAIN);
		send_reply(fd, cmd_bad ? SOCKS5_REP_CMD_UNSUPPORTED : SOCKS5_REP_ATYP_UNSUPPORTED);
		/* a well-formed BIND or UDP ASSOCIATE is refused by policy; an unknown ATYP is malformed */
		if (cmd_bad)
			rc.verdict = "denied";
		rc.reason = cmd_bad ? "command not supported" : "address type not supported";
		goto out;
	}
	if (r != 0) {
		if (r == APP_EPARSE)
			send_reply(fd, SOCKS5_REP_GENERAL_FAILURE);
		rc.reason = r == APP_EVERSION ? "not SOCKS5" : "malformed request";
		goto out;
	}
	if (rq.atyp == SOCKS5_ATYP_IPV6)
		snprintf(rc.dest, sizeof rc.dest, "[%s]:%u", rq.host, rq.port);
	else
		snprintf(rc.dest, sizeof rc.dest, "%s:%u", rq.host, rq.port);
	if (!proxy_allowed(&p->cfg, rq.host, rq.port)) {
		rc.verdict = "denied";
		rc.reason = "not on the allowlist";
		send_reply(fd, SOCKS5_REP_NOT_ALLOWED);
		goto out;
	}
	{
		uint8_t rep = SOCKS5_REP_GENERAL_FAILURE;
		const char *why = "failed";
		up = dial(p, &rq, stop_fd, &rep, &why);
		if (up < 0) {
			rc.verdict = rep == SOCKS5_REP_NOT_ALLOWED ? "denied" : "failed";
			rc.reason = why;
			send_reply(fd, rep);
			goto out;
		}
	}
	{
		int one = 1;
		(void)setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	send_reply(fd, SOCKS5_REP_SUCCEEDED);
	rc.verdict = "allowed";
	if (channel_pump_init(&ab, p->cfg.buf_size) != 0 || channel_pump_init(&ba, p->cfg.buf_size) != 0) {
		rc.reason = "out of memory";
		goto out;
	}
	/* bytes the client sent after its request go first */
	if (have > used) {
		if (channel_write_full(up, hs + used, have - used, (int)p->cfg.connect_timeout_ms) != 0) {
			rc.reason = "write failed";
			goto out;
		}
		ab.total = have - used;
	}
	rc.reason = relay_loop(p, fd, up, stop_fd, &ab, &ba, &capped);
	rc.up = ab.total;
	rc.down = ba.total;
	if (capped) {
		pthread_mutex_lock(&p->lock);
		p->st.capped++;
		pthread_mutex_unlock(&p->lock);
	}
out:
	channel_pump_free(&ab);
	channel_pump_free(&ba);
	if (up >= 0)
		close(up);
	close(fd);
	finish(p, &rc);
}

static void *conn_main(void *arg)
{
	struct conn_arg *a = arg;
	struct proxy *p = a->p;
	proxy_handle(p, a->fd, a->stop_fd);
	free(a);
	pthread_mutex_lock(&p->lock);
	p->st.active--;
	if (p->st.active == 0)
		pthread_cond_broadcast(&p->idle);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int proxy_serve(struct proxy *p, int listen_fd, int stop_fd)
{
	int r = 0;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 512 * 1024); /* plus static TLS */
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
		int fd = -1;
		int a = channel_accept(listen_fd, &fd);
		if (a == APP_EAGAIN)
			continue;
		if (a == APP_ELIMIT) {
			log_warn("event=egress_accept_failed reason=fd_limit");
			struct timespec ts = {0, 100 * 1000 * 1000};
			nanosleep(&ts, NULL);
			continue;
		}
		if (a != 0) {
			r = APP_EIO;
			break;
		}
		pthread_mutex_lock(&p->lock);
		p->st.accepted++;
		int busy = p->st.active >= p->cfg.max_connections;
		if (busy)
			p->st.busy++;
		else
			p->st.active++;
		pthread_mutex_unlock(&p->lock);
		if (busy) {
			log_warn("event=egress verdict=busy reason=\"max_connections\" max=%zu", p->cfg.max_connections);
			close(fd);
			continue;
		}
		struct conn_arg *ca = malloc(sizeof *ca);
		pthread_t t;
		if (ca) {
			*ca = (struct conn_arg){.p = p, .fd = fd, .stop_fd = stop_fd};
			if (pthread_create(&t, &attr, conn_main, ca) == 0)
				continue;
			free(ca);
		}
		log_warn("event=egress verdict=failed reason=\"no thread\"");
		close(fd);
		pthread_mutex_lock(&p->lock);
		p->st.active--;
		pthread_mutex_unlock(&p->lock);
	}
	pthread_attr_destroy(&attr);
	/* Connections see stop_fd (or were told by the caller) and end; wait for them. */
	pthread_mutex_lock(&p->lock);
	while (p->st.active > 0)
		pthread_cond_wait(&p->idle, &p->lock);
	pthread_mutex_unlock(&p->lock);
	return r;
}
