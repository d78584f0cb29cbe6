/*
 * channel.c: the parent <-> enclave channel transport (channel.h).
 */
#include "appliance/channel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* parse_u32: a decimal number without sign, leading '+' or spaces, up to `max`. */
static int parse_u32(uint32_t *out, const char *s, size_t n, uint32_t max)
{
	uint64_t v = 0;
	if (n == 0 || n > 10)
		return APP_EINVAL;
	if (n > 1 && s[0] == '0')
		return APP_EINVAL; /* no leading zeros: one spelling per number */
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return APP_EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > max)
		return APP_EINVAL;
	*out = (uint32_t)v;
	return 0;
}

int channel_vsock(struct channel_addr *out, uint32_t cid, uint32_t port)
{
	if (port == 0 || port == 0xFFFFFFFFu)
		return APP_EINVAL;
	memset(out, 0, sizeof *out);
	out->kind = CHANNEL_VSOCK;
	out->cid = cid;
	out->port = port;
	return 0;
}

int channel_addr_parse(struct channel_addr *out, const char *text)
{
	size_t n;
	if (!out || !text)
		return APP_EINVAL;
	memset(out, 0, sizeof *out);
	n = strlen(text);
	if (n > CHANNEL_ADDR_MAX)
		return APP_EINVAL;
	if (!strncmp(text, "unix:", 5)) {
		const char *p = text + 5;
		size_t pl = n - 5;
		if (pl == 0 || pl > CHANNEL_UNIX_PATH_MAX || p[0] == '@')
			return APP_EINVAL;
		for (size_t i = 0; i < pl; i++)
			if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
				return APP_EINVAL;
		out->kind = CHANNEL_UNIX;
		memcpy(out->path, p, pl + 1);
		return 0;
	}
	if (!strncmp(text, "vsock:", 6)) {
		const char *p = text + 6, *colon = strchr(p, ':');
		uint32_t cid, port;
		if (!colon)
			return APP_EINVAL;
		if ((size_t)(colon - p) == 3 && !strncmp(p, "any", 3))
			cid = CHANNEL_CID_ANY;
		else if (parse_u32(&cid, p, (size_t)(colon - p), 0xFFFFFFFEu) != 0)
			return APP_EINVAL;
		if (parse_u32(&port, colon + 1, strlen(colon + 1), 0xFFFFFFFEu) != 0)
			return APP_EINVAL;
		return channel_vsock(out, cid, port);
	}
	if (!strncmp(text, "tcp:", 4)) {
		const char *p = text + 4, *colon = strrchr(p, ':');
		char host[16];
		struct in_addr ia;
		uint32_t port;
		if (!colon || (size_t)(colon - p) >= sizeof host || colon == p)
			return APP_EINVAL;
		memcpy(host, p, (size_t)(colon - p));
		host[colon - p] = 0;
		if (inet_pton(AF_INET, host, &ia) != 1 || (ntohl(ia.s_addr) >> 24) != 127)
			return APP_EINVAL;
		if (parse_u32(&port, colon + 1, strlen(colon + 1), 65535) != 0)
			return APP_EINVAL;
		out->kind = CHANNEL_TCP;
		out->ip4 = ntohl(ia.s_addr);
		out->port = port;
		return 0;
	}
	return APP_EINVAL;
}

int channel_addr_format(char *out, size_t cap, const struct channel_addr *a)
{
	int k;
	switch (a->kind) {
	case CHANNEL_UNIX:
		k = snprintf(out, cap, "unix:%s", a->path);
		break;
	case CHANNEL_VSOCK:
		if (a->cid == CHANNEL_CID_ANY)
			k = snprintf(out, cap, "vsock:any:%u", a->port);
		else
			k = snprintf(out, cap, "vsock:%u:%u", a->cid, a->port);
		break;
	case CHANNEL_TCP:
		k = snprintf(out, cap, "tcp:%u.%u.%u.%u:%u", a->ip4 >> 24, (a->ip4 >> 16) & 255, (a->ip4 >> 8) & 255,
			     a->ip4 & 255, a->port);
		break;
	default:
		return APP_EINVAL;
	}
	if (k < 0 || (size_t)k >= cap)
		return APP_ETOOBIG;
	return 0;
}

/* sockaddr_of: the socket address of a; returns its length, 0 for a bad kind. */
static socklen_t sockaddr_of(const struct channel_addr *a, struct sockaddr_storage *ss, int *family)
{
	memset(ss, 0, sizeof *ss);
	switch (a->kind) {
	case CHANNEL_UNIX: {
		struct sockaddr_un *u = (struct sockaddr_un *)ss;
		size_t n = strlen(a->path);
		if (n == 0 || n >= sizeof u->sun_path)
			return 0;
		u->sun_family = AF_UNIX;
		memcpy(u->sun_path, a->path, n + 1);
		*family = AF_UNIX;
		return (socklen_t)sizeof *u;
	}
	case CHANNEL_VSOCK: {
		struct sockaddr_vm *v = (struct sockaddr_vm *)ss;
		v->svm_family = AF_VSOCK;
		v->svm_cid = a->cid;
		v->svm_port = a->port;
		*family = AF_VSOCK;
		return (socklen_t)sizeof *v;
	}
	case CHANNEL_TCP: {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		if (a->port > 65535)
			return 0;
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(a->ip4);
		in->sin_port = htons((uint16_t)a->port);
		*family = AF_INET;
		return (socklen_t)sizeof *in;
	}
	}
	return 0;
}

static int new_socket(int family, int flags, int *fd)
{
	int s = socket(family, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
	if (s < 0)
		return (errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT) ? APP_EUNSUPPORTED : APP_EIO;
	*fd = s;
	return 0;
}

int channel_listen(const struct channel_addr *a, int backlog, int *fd)
{
	struct sockaddr_storage ss;
	int family = 0, s = -1, r = APP_EINVAL, one = 1;
	socklen_t sl;
	*fd = -1;
	if (!a || (sl = sockaddr_of(a, &ss, &family)) == 0)
		return APP_EINVAL;
	if (a->kind == CHANNEL_UNIX) {
		struct stat st;
		if (lstat(a->path, &st) == 0) {
			if (!S_ISSOCK(st.st_mode))
				return APP_EEXIST;
			if (unlink(a->path) != 0)
				return APP_EIO;
		}
	}
	if ((r = new_socket(family, 0, &s)) != 0)
		return r;
	r = APP_EIO;
	if (a->kind == CHANNEL_TCP && setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
		goto out;
	if (a->kind == CHANNEL_UNIX) {
		/* Nobody can connect between bind and chmod: listen() comes last. */
		mode_t old = umask(0177);
		int b = bind(s, (const struct sockaddr *)&ss, sl);
		umask(old);
		if (b != 0 || chmod(a->path, 0600) != 0)
			goto out;
	} else if (bind(s, (const struct sockaddr *)&ss, sl) != 0) {
		goto out;
	}
	if (listen(s, backlog > 0 ? backlog : 16) != 0)
		goto out;
	*fd = s;
	s = -1;
	r = 0;
out:
	if (s >= 0) {
		int e = errno;
		close(s);
		errno = e;
	}
	return r;
}

int channel_bound_port(int fd, uint32_t *port)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
		return APP_EIO;
	if (ss.ss_family == AF_INET) {
		*port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		return 0;
	}
	if (ss.ss_family == AF_VSOCK) {
		*port = ((struct sockaddr_vm *)&ss)->svm_port;
		return 0;
	}
	return APP_EIO;
}

int channel_accept(int lfd, int *fd)
{
	int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	*fd = -1;
	if (c < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
			return APP_EAGAIN;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
			return APP_ELIMIT;
		return APP_EIO;
	}
	/* accept4 does not inherit O_NONBLOCK: the socket is blocking. */
	*fd = c;
	return 0;
}

static int set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return APP_EIO;
	fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	return fcntl(fd, F_SETFL, fl) == 0 ? 0 : APP_EIO;
}

static int connect_errno(int e)
{
	switch (e) {
	case ECONNREFUSED:
	case ENOENT:
	case ENETUNREACH:
	case EHOSTUNREACH:
	case ECONNRESET:
	case ENOTDIR:
	case EACCES:
	case EADDRNOTAVAIL:
	case ENODEV:
	case EAGAIN: /* a unix listener's backlog is full */
		return APP_ECONN;
	case ETIMEDOUT:
		return APP_ETIMEOUT;
	default:
		return APP_EIO;
	}
}

int channel_connect_start(const struct channel_addr *a, int *fd, int *pending)
{
	struct sockaddr_storage ss;
	int family = 0, s = -1, r;
	socklen_t sl;
	*fd = -1;
	*pending = 0;
	if (!a || (sl = sockaddr_of(a, &ss, &family)) == 0)
		return APP_EINVAL;
	if ((r = new_socket(family, SOCK_NONBLOCK, &s)) != 0)
		return r;
	if (a->kind == CHANNEL_TCP) {
		int one = 1;
		(void)setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	if (connect(s, (const struct sockaddr *)&ss, sl) != 0) {
		if (errno != EINPROGRESS) {
			r = connect_errno(errno);
			close(s);
			return r;
		}
		*pending = 1;
	}
	*fd = s;
	return 0;
}

int channel_connect_finish(int fd)
{
	int err = 0;
	socklen_t l = sizeof err;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0)
		return APP_ECONN;
	return err == 0 ? 0 : APP_ECONN;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* wait_fd: poll for events until deadline (-1 = none). 0, APP_ETIMEOUT, APP_EIO. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int t = -1;
		if (deadline >= 0) {
			int64_t left = deadline - now_ms();
			if (left <= 0)
				return APP_ETIMEOUT;
			t = left > INT_MAX ? INT_MAX : (int)left;
		}
		struct pollfd p = {.fd = fd, .events = events};
		int k = poll(&p, 1, t);
		if (k > 0)
			return 0;
		if (k == 0)
			return APP_ETIMEOUT;
		if (errno != EINTR)
			return APP_EIO;
	}
}

int channel_connect(const struct channel_addr *a, int timeout_ms, int *fd)
{
	int s = -1, pending = 0, r;
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	*fd = -1;
	if ((r = channel_connect_start(a, &s, &pending)) != 0)
		return r;
	if (pending) {
		if ((r = wait_fd(s, POLLOUT, deadline)) != 0 || (r = channel_connect_finish(s)) != 0)
			goto out;
	}
	if ((r = set_nonblock(s, 0)) != 0)
		goto out;
	*fd = s;
	s = -1;
	r = 0;
out:
	if (s >= 0)
		close(s);
	return r;
}

int channel_write_full(int fd, const void *buf, size_t len, int timeout_ms)
{
	const uint8_t *p = buf;
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	while (len > 0) {
		ssize_t k = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k > 0) {
			p += k;
			len -= (size_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int r = wait_fd(fd, POLLOUT, deadline);
			if (r != 0)
				return r;
			continue;
		}
		if (k < 0 && errno == ENOTSOCK) { /* pipes in tests */
			k = write(fd, p, len);
			if (k > 0) {
				p += k;
				len -= (size_t)k;
				continue;
			}
		}
		return (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN) ? APP_ECONN : APP_EIO;
	}
	return 0;
}

int channel_read_full(int fd, void *buf, size_t len, int timeout_ms)
{
	uint8_t *p = buf;
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	while (len > 0) {
		ssize_t k = recv(fd, p, len, MSG_DONTWAIT);
		if (k < 0 && errno == ENOTSOCK) {
			int r = wait_fd(fd, POLLIN, deadline);
			if (r != 0)
				return r;
			k = read(fd, p, len);
		}
		if (k > 0) {
			p += k;
			len -= (size_t)k;
			continue;
		}
		if (k == 0)
			return APP_ECONN;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			int r = wait_fd(fd, POLLIN, deadline);
			if (r != 0)
				return r;
			continue;
		}
		return errno == ECONNRESET ? APP_ECONN : APP_EIO;
	}
	return 0;
}

void channel_header_encode(uint8_t hdr[CHANNEL_HEADER_LEN], uint8_t type, uint32_t len)
{
	hdr[0] = type;
	hdr[1] = (uint8_t)(len >> 24);
	hdr[2] = (uint8_t)(len >> 16);
	hdr[3] = (uint8_t)(len >> 8);
	hdr[4] = (uint8_t)len;
}

int channel_header_decode(uint8_t *type, uint32_t *len, const uint8_t hdr[CHANNEL_HEADER_LEN], uint32_t max)
{
	uint32_t n = (uint32_t)hdr[1] << 24 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 8 | hdr[4];
	if (hdr[0] == 0)
		return APP_EPROTO;
	if (n > max || n > CHANNEL_MAX_FRAME)
		return APP_ETOOBIG;
	*type = hdr[0];
	*len = n;
	return 0;
}

int channel_frame_parse(uint8_t *type, const uint8_t **payload, uint32_t *len, size_t *consumed, const uint8_t *buf,
			size_t buflen, uint32_t max)
{
	uint8_t t;
	uint32_t n;
	int r;
	if (buflen < CHANNEL_HEADER_LEN)
		return APP_EAGAIN;
	if ((r = channel_header_decode(&t, &n, buf, max)) != 0)
		return r;
	if (n > buflen - CHANNEL_HEADER_LEN)
		return APP_EAGAIN;
	*type = t;
	*len = n;
	*payload = buf + CHANNEL_HEADER_LEN;
	*consumed = CHANNEL_HEADER_LEN + (size_t)n;
	return 0;
}

int channel_send(int fd, uint8_t type, const void *payload, size_t len, int timeout_ms)
{
	uint8_t hdr[CHANNEL_HEADER_LEN];
	int r;
	if (type == 0 || (len > 0 && !payload))
		return APP_EINVAL;
	if (len > CHANNEL_MAX_FRAME)
		return APP_ETOOBIG;
	channel_header_encode(hdr, type, (uint32_t)len);
	if (len == 0)
		return channel_write_full(fd, hdr, sizeof hdr, timeout_ms);
	/* Small frames in one write: header and payload in a single segment. */
	if (len <= 4096) {
		uint8_t b[CHANNEL_HEADER_LEN + 4096];
		memcpy(b, hdr, sizeof hdr);
		memcpy(b + sizeof hdr, payload, len);
		return channel_write_full(fd, b, sizeof hdr + len, timeout_ms);
	}
	if ((r = channel_write_full(fd, hdr, sizeof hdr, timeout_ms)) != 0)
		return r;
	return channel_write_full(fd, payload, len, timeout_ms);
}

int channel_recv(int fd, uint8_t *type, uint8_t **payload, size_t *len, uint32_t max, int timeout_ms)
{
	uint8_t hdr[CHANNEL_HEADER_LEN], t;
	uint32_t n;
	uint8_t *b = NULL;
	int r;
	*payload = NULL;
	*len = 0;
	if ((r = channel_read_full(fd, hdr, sizeof hdr, timeout_ms)) != 0)
		return r;
	if ((r = channel_header_decode(&t, &n, hdr, max)) != 0)
		return r;
	b = malloc(n ? n : 1);
	if (!b)
		return APP_ENOMEM;
	if (n > 0 && (r = channel_read_full(fd, b, n, timeout_ms)) != 0) {
		free(b);
		return r;
	}
	*type = t;
	*payload = b;
	*len = n;
	return 0;
}

int channel_pump_init(struct channel_pump *p, size_t cap)
{
	memset(p, 0, sizeof *p);
	p->pipe[0] = p->pipe[1] = -1;
	if (cap < 4096 || cap > (4u << 20))
		return APP_EINVAL;
	p->cap = cap;
	if (pipe2(p->pipe, O_CLOEXEC | O_NONBLOCK) == 0) {
		int got = fcntl(p->pipe[1], F_SETPIPE_SZ, (int)cap);
		if (got > 0) {
			if ((size_t)got < cap)
				p->cap = (size_t)got;
			return 0;
		}
		/* keep the default pipe size (64 KiB) */
		got = fcntl(p->pipe[1], F_GETPIPE_SZ);
		if (got > 0) {
			p->cap = (size_t)got < cap ? (size_t)got : cap;
			return 0;
		}
		close(p->pipe[0]);
		close(p->pipe[1]);
		p->pipe[0] = p->pipe[1] = -1;
	}
	p->cap = cap;
	if (!(p->buf = malloc(cap)))
		return APP_ENOMEM;
	return 0;
}

void channel_pump_free(struct channel_pump *p)
{
	if (p->pipe[0] >= 0) {
		close(p->pipe[0]);
		close(p->pipe[1]);
	}
	p->pipe[0] = p->pipe[1] = -1;
	free(p->buf);
	p->buf = NULL;
}

int channel_pump_want_read(const struct channel_pump *p)
{
	return !p->eof && p->len < p->cap;
}

int channel_pump_want_write(const struct channel_pump *p)
{
	return p->len > 0;
}

static int pump_errno(void)
{
	return (errno == ECONNRESET || errno == EPIPE || errno == ENOTCONN) ? APP_ECONN : APP_EIO;
}

/* to_buffer_mode: splice is not supported for these sockets (the pipe is empty then). */
static int to_buffer_mode(struct channel_pump *p)
{
	close(p->pipe[0]);
	close(p->pipe[1]);
	p->pipe[0] = p->pipe[1] = -1;
	if (!(p->buf = malloc(p->cap)))
		return APP_ENOMEM;
	return 0;
}

int channel_pump_run(struct channel_pump *p, int src, int dst)
{
	int r;
	/* read */
	if (channel_pump_want_read(p)) {
		ssize_t n;
		if (p->pipe[0] >= 0) {
			n = splice(src, NULL, p->pipe[1], NULL, p->cap - p->len, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
			if (n < 0 && errno == EINVAL && p->len == 0 && p->total == 0) {
				if ((r = to_buffer_mode(p)) != 0)
					return r;
				n = recv(src, p->buf, p->cap, MSG_DONTWAIT);
			}
		} else {
			if (p->off && p->len)
				memmove(p->buf, p->buf + p->off, p->len);
			p->off = 0;
			n = recv(src, p->buf + p->len, p->cap - p->len, MSG_DONTWAIT);
		}
		if (n > 0) {
			p->len += (size_t)n;
			p->total += (uint64_t)n;
		} else if (n == 0) {
			p->eof = 1;
		} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			return pump_errno();
		}
	}
	/* write */
	while (p->len > 0) {
		ssize_t n;
		if (p->pipe[0] >= 0)
			n = splice(p->pipe[0], NULL, dst, NULL, p->len, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
		else
			n = send(dst, p->buf + p->off, p->len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			p->len -= (size_t)n;
			p->off = p->len ? p->off + (size_t)n : 0;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			break;
		if (n < 0 && errno == EINVAL && p->pipe[0] >= 0) {
			/* the destination cannot take spliced data: drain the pipe by hand */
			uint8_t tmp[4096];
			ssize_t k = read(p->pipe[0], tmp, sizeof tmp < p->len ? sizeof tmp : p->len);
			if (k <= 0 || channel_write_full(dst, tmp, (size_t)k, 5000) != 0)
				return APP_EIO;
			p->len -= (size_t)k;
			continue;
		}
		return n == 0 ? APP_ECONN : pump_errno();
	}
	if (p->eof && p->len == 0 && !p->shut) {
		shutdown(dst, SHUT_WR);
		p->shut = 1;
	}
	return 0;
}
