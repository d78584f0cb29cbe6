/*
 * channel_test: the channel transport (appliance/channel.h): addresses,
 * vsock addressing, frames (lengths checked before allocating), unix and
 * tcp listen/connect, the byte pump; control messages (appliance/ctlmsg.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appliance/channel.h"
#include "appliance/ctlmsg.h"
#include "test.h"

static void test_addr(void)
{
	struct channel_addr a;
	char t[CHANNEL_ADDR_MAX + 1];
	CHECK_OK(channel_addr_parse(&a, "vsock:3:2080"));
	CHECK(a.kind == CHANNEL_VSOCK && a.cid == 3 && a.port == 2080);
	CHECK_OK(channel_addr_format(t, sizeof t, &a));
	CHECK_STR(t, "vsock:3:2080");
	CHECK_OK(channel_addr_parse(&a, "vsock:any:1080"));
	CHECK(a.cid == CHANNEL_CID_ANY);
	CHECK_OK(channel_addr_format(t, sizeof t, &a));
	CHECK_STR(t, "vsock:any:1080");
	CHECK_OK(channel_addr_parse(&a, "vsock:16:4294967294"));
	CHECK_OK(channel_addr_parse(&a, "unix:/run/appliance/control.sock"));
	CHECK(a.kind == CHANNEL_UNIX);
	CHECK_STR(a.path, "/run/appliance/control.sock");
	CHECK_OK(channel_addr_parse(&a, "tcp:127.0.0.1:0"));
	CHECK_OK(channel_addr_parse(&a, "tcp:127.1.2.3:65535"));
	CHECK_OK(channel_addr_format(t, sizeof t, &a));
	CHECK_STR(t, "tcp:127.1.2.3:65535");
	CHECK_ERR(channel_addr_format(t, 8, &a), APP_ETOOBIG);
	const char *bad[] = {"", "vsock:3", "vsock:3:0", "vsock:3:4294967295", "vsock:-1:5", "vsock:03:5",
			     "vsock:x:5", "vsock:3:5x", "unix:", "unix:@abstract", "tcp:10.0.0.1:80",
			     "tcp:localhost:80", "tcp:127.0.0.1:65536", "tcp:127.0.0.1:", "http://x", "unix:a\nb"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		CHECKM(channel_addr_parse(&a, bad[i]) == APP_EINVAL, "'%s' accepted", bad[i]);
	char longp[200] = "unix:/";
	memset(longp + 6, 'a', 150);
	longp[156] = 0;
	CHECK_ERR(channel_addr_parse(&a, longp), APP_EINVAL);
	/* Nitro addressing: the enclave reaches the parent at CID 3 */
	CHECK_OK(channel_vsock(&a, CHANNEL_CID_PARENT, CHANNEL_PORT_CONTROL));
	CHECK_OK(channel_addr_format(t, sizeof t, &a));
	CHECK_STR(t, "vsock:3:2080");
	CHECK_ERR(channel_vsock(&a, 3, 0), APP_EINVAL);
}

static void test_frames(void)
{
	uint8_t h[CHANNEL_HEADER_LEN], type = 0;
	uint32_t len = 0;
	channel_header_encode(h, 7, 0x01020304);
	CHECK(h[0] == 7 && h[1] == 1 && h[4] == 4);
	CHECK_ERR(channel_header_decode(&type, &len, h, CHANNEL_MAX_FRAME), APP_ETOOBIG);
	channel_header_encode(h, 7, CHANNEL_MAX_FRAME);
	CHECK_OK(channel_header_decode(&type, &len, h, CHANNEL_MAX_FRAME));
	CHECK_ERR(channel_header_decode(&type, &len, h, 100), APP_ETOOBIG);
	channel_header_encode(h, 0, 1);
	CHECK_ERR(channel_header_decode(&type, &len, h, 100), APP_EPROTO);
	uint8_t buf[16] = {9, 0, 0, 0, 3, 'a', 'b', 'c', 1, 0, 0};
	const uint8_t *p = NULL;
	size_t used = 0;
	for (size_t n = 0; n < 8; n++)
		CHECK_ERR(channel_frame_parse(&type, &p, &len, &used, buf, n, 100), APP_EAGAIN);
	CHECK_OK(channel_frame_parse(&type, &p, &len, &used, buf, 11, 100));
	CHECK(type == 9 && len == 3 && used == 8 && p == buf + 5);
	/* send/recv over a socket pair */
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	uint8_t *big = calloc(1, 10000), *got = NULL;
	size_t gl = 0;
	CHECK_OK(channel_send(sv[0], 5, big, 10000, 1000));
	CHECK_OK(channel_recv(sv[1], &type, &got, &gl, CHANNEL_MAX_FRAME, 1000));
	CHECK(type == 5 && gl == 10000);
	free(got);
	CHECK_OK(channel_send(sv[0], 6, NULL, 0, 1000));
	CHECK_OK(channel_recv(sv[1], &type, &got, &gl, 10, 1000));
	CHECK(type == 6 && gl == 0 && got != NULL);
	free(got);
	CHECK_ERR(channel_send(sv[0], 0, NULL, 0, 1000), APP_EINVAL);
	CHECK_ERR(channel_send(sv[0], 1, big, (size_t)CHANNEL_MAX_FRAME + 1, 1000), APP_ETOOBIG);
	/* a header announcing 4 GiB: refused before any allocation */
	static const uint8_t huge[] = {1, 0xff, 0xff, 0xff, 0xff};
	CHECK(write(sv[0], huge, sizeof huge) == (ssize_t)sizeof huge);
	CHECK_ERR(channel_recv(sv[1], &type, &got, &gl, CHANNEL_MAX_FRAME, 1000), APP_ETOOBIG);
	CHECK(got == NULL);
	/* a smaller per-call maximum */
	CHECK_OK(channel_send(sv[0], 2, big, 100, 1000));
	CHECK_ERR(channel_recv(sv[1], &type, &got, &gl, 99, 1000), APP_ETOOBIG);
	/* truncated frame: the peer closes */
	CHECK(write(sv[0], "\x01\x00\x00\x00\x09xy", 7) == 7);
	close(sv[0]);
	uint8_t drain[100];
	int dr = channel_read_full(sv[1], drain, 100, 100); /* the refused frame's payload */
	CHECK(dr == 0);
	CHECK_ERR(channel_recv(sv[1], &type, &got, &gl, 100, 500), APP_ECONN);
	close(sv[1]);
	/* timeout */
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	CHECK_ERR(channel_recv(sv[1], &type, &got, &gl, 100, 50), APP_ETIMEOUT);
	close(sv[0]);
	close(sv[1]);
	free(big);
}

static void test_listen_connect(void)
{
	char dir[] = "/tmp/channel_test.XXXXXX", path[128], text[160];
	struct channel_addr a;
	struct stat st;
	int lfd = -1, c = -1, s = -1;
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/c.sock", dir);
	snprintf(text, sizeof text, "unix:%s", path);
	CHECK_OK(channel_addr_parse(&a, text));
	CHECK_ERR(channel_connect(&a, 200, &c), APP_ECONN); /* no socket yet */
	CHECK_OK(channel_listen(&a, 4, &lfd));
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	CHECK_OK(channel_connect(&a, 1000, &c));
	CHECK_OK(channel_accept(lfd, &s));
	CHECK_OK(channel_write_full(c, "hello", 5, 1000));
	char b[5];
	CHECK_OK(channel_read_full(s, b, 5, 1000));
	CHECK(!memcmp(b, "hello", 5));
	close(c);
	close(s);
	close(lfd);
	/* a stale socket file is replaced; a regular file is not */
	CHECK_OK(channel_listen(&a, 4, &lfd));
	close(lfd);
	unlink(path);
	int f = open(path, O_CREAT | O_WRONLY, 0600);
	close(f);
	CHECK_ERR(channel_listen(&a, 4, &lfd), APP_EEXIST);
	unlink(path);
	rmdir(dir);
	/* tcp on loopback, port 0 */
	uint32_t port = 0;
	CHECK_OK(channel_addr_parse(&a, "tcp:127.0.0.1:0"));
	CHECK_OK(channel_listen(&a, 4, &lfd));
	CHECK_OK(channel_bound_port(lfd, &port));
	CHECK(port > 0);
	a.port = port;
	CHECK_OK(channel_connect(&a, 1000, &c));
	CHECK_OK(channel_accept(lfd, &s));
	close(c);
	close(s);
	close(lfd);
	/* vsock: this machine has no loopback transport; the call must fail cleanly, never hang */
	CHECK_OK(channel_addr_parse(&a, "vsock:1:5005"));
	int r = channel_connect(&a, 300, &c);
	CHECK(r != 0);
	if (r == 0)
		close(c);
}

static void test_pump(void)
{
	int a[2], b[2];
	struct channel_pump p;
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a) == 0);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b) == 0);
	CHECK_OK(channel_pump_init(&p, 65536));
	CHECK(channel_pump_want_read(&p) && !channel_pump_want_write(&p));
	CHECK(write(a[0], "0123456789", 10) == 10);
	CHECK_OK(channel_pump_run(&p, a[1], b[0]));
	char got[16];
	CHECK(read(b[1], got, sizeof got) == 10 && !memcmp(got, "0123456789", 10));
	CHECK(p.total == 10);
	shutdown(a[0], SHUT_WR);
	CHECK_OK(channel_pump_run(&p, a[1], b[0]));
	CHECK(p.eof && p.shut);
	CHECK(read(b[1], got, sizeof got) == 0); /* EOF passed on */
	channel_pump_free(&p);
	CHECK_ERR(channel_pump_init(&p, 10), APP_EINVAL);
	for (int i = 0; i < 2; i++) {
		close(a[i]);
		close(b[i]);
	}
}

static void test_ctlmsg(void)
{
	struct ctlmsg m, d;
	uint8_t *b = NULL;
	size_t n = 0;
	memset(&m, 0, sizeof m);
	m.type = CTLMSG_HELLO;
	m.id = "inst-1";
	m.id_len = 6;
	CHECK_OK(ctlmsg_encode(&b, &n, &m));
	CHECK_OK(ctlmsg_decode(&d, CTLMSG_HELLO, b, n));
	CHECK(d.id_len == 6 && !memcmp(d.id, "inst-1", 6));
	b[0] = 2;
	CHECK_ERR(ctlmsg_decode(&d, CTLMSG_HELLO, b, n), APP_EVERSION);
	b[0] = 1;
	CHECK_ERR(ctlmsg_decode(&d, CTLMSG_HELLO, b, n - 1), APP_EPARSE);
	free(b);
	m.id = ".hidden";
	m.id_len = 7;
	CHECK_ERR(ctlmsg_encode(&b, &n, &m), APP_EINVAL);
	/* PUT */
	memset(&m, 0, sizeof m);
	m.type = CTLMSG_PUT;
	m.req = 0x01020304;
	m.name = "j000001";
	m.name_len = 7;
	m.data = (const uint8_t *)"sealed";
	m.data_len = 6;
	CHECK_OK(ctlmsg_encode(&b, &n, &m));
	CHECK_OK(ctlmsg_decode(&d, CTLMSG_PUT, b, n));
	CHECK(d.req == 0x01020304 && d.name_len == 7 && d.data_len == 6 && !memcmp(d.data, "sealed", 6));
	b[4] = 200; /* name length past the payload */
	CHECK_ERR(ctlmsg_decode(&d, CTLMSG_PUT, b, n), APP_EPARSE);
	b[4] = 7;
	b[5] = '/'; /* a path separator in a name */
	CHECK_ERR(ctlmsg_decode(&d, CTLMSG_PUT, b, n), APP_EPARSE);
	free(b);
	/* GET: no trailing bytes */
	m.type = CTLMSG_GET;
	CHECK_OK(ctlmsg_encode(&b, &n, &m));
	CHECK_OK(ctlmsg_decode(&d, CTLMSG_GET, b, n));
	uint8_t *b2 = malloc(n + 1);
	memcpy(b2, b, n);
	b2[n] = 0;
	CHECK_ERR(ctlmsg_decode(&d, CTLMSG_GET, b2, n + 1), APP_EPARSE);
	free(b2);
	free(b);
	/* LIST with an empty cursor */
	m.type = CTLMSG_LIST;
	m.name = "";
	m.name_len = 0;
	CHECK_OK(ctlmsg_encode(&b, &n, &m));
	CHECK_OK(ctlmsg_decode(&d, CTLMSG_LIST, b, n));
	free(b);
	/* LOG: printable only */
	memset(&m, 0, sizeof m);
	m.type = CTLMSG_LOG;
	m.level = 2;
	m.line = "level=info event=x";
	m.line_len = strlen(m.line);
	CHECK_OK(ctlmsg_encode(&b, &n, &m));
	CHECK_OK(ctlmsg_decode(&d, CTLMSG_LOG, b, n));
	b[3] = '\n';
	CHECK_ERR(ctlmsg_decode(&d, CTLMSG_LOG, b, n), APP_EPARSE);
	b[0] = 9;
	CHECK_ERR(ctlmsg_decode(&d, CTLMSG_LOG, b, n), APP_EPARSE);
	free(b);
	/* RESULT, SHUTDOWN, BYE, unknown */
	memset(&m, 0, sizeof m);
	m.type = CTLMSG_RESULT;
	m.req = 5;
	m.status = CTLMSG_S_EXISTS;
	CHECK_OK(ctlmsg_encode(&b, &n, &m));
	CHECK_OK(ctlmsg_decode(&d, CTLMSG_RESULT, b, n));
	CHECK(ctlmsg_status_to_err(d.status) == APP_EEXIST);
	b[4] = 99;
	CHECK_ERR(ctlmsg_decode(&d, CTLMSG_RESULT, b, n), APP_EPARSE);
	free(b);
	static const uint8_t sd[] = {0, 0, 0x75, 0x30};
	CHECK_OK(ctlmsg_decode(&d, CTLMSG_SHUTDOWN, sd, 4));
	CHECK(d.grace_ms == 30000);
	CHECK_ERR(ctlmsg_decode(&d, CTLMSG_SHUTDOWN, sd, 3), APP_EPARSE);
	CHECK_OK(ctlmsg_decode(&d, CTLMSG_BYE, NULL, 0));
	CHECK_ERR(ctlmsg_decode(&d, CTLMSG_BYE, sd, 1), APP_EPARSE);
	CHECK_ERR(ctlmsg_decode(&d, 0x42, sd, 1), APP_EUNSUPPORTED);
	/* list body iteration */
	static const uint8_t lb[] = {2, 'a', 'b', 0, 0, 0, 0, 0, 0, 0, 7, 1, 'c', 0, 0, 0, 0, 0, 0, 1, 0};
	const uint8_t *p = lb;
	const char *nm;
	size_t nl;
	uint64_t sz;
	CHECK_OK(ctlmsg_list_next(&p, lb + sizeof lb, &nm, &nl, &sz));
	CHECK(nl == 2 && sz == 7);
	CHECK_OK(ctlmsg_list_next(&p, lb + sizeof lb, &nm, &nl, &sz));
	CHECK(nl == 1 && sz == 256);
	CHECK_ERR(ctlmsg_list_next(&p, lb + sizeof lb, &nm, &nl, &sz), APP_ENOTFOUND);
	p = lb;
	CHECK_ERR(ctlmsg_list_next(&p, lb + 5, &nm, &nl, &sz), APP_EPARSE);
}

int main(void)
{
	RUN(test_addr);
	RUN(test_frames);
	RUN(test_listen_connect);
	RUN(test_pump);
	RUN(test_ctlmsg);
	return test_summary();
}
