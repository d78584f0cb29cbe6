/*
 * socks5_test: RFC 1928 codecs (appliance/socks5.h) and the parent's egress
 * proxy (parent/proxy.h): allowlist rules, private-address refusal, strict
 * request handling over socket pairs (malformed input dropped and counted,
 * denied hosts answered with REP 0x02, allowed ones piped both ways).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "appliance/channel.h"
#include "appliance/log.h"
#include "appliance/socks5.h"
#include "parent/proxy.h"
#include "test.h"

static void test_greeting(void)
{
	size_t used = 0;
	int noauth = -1;
	static const uint8_t g1[] = {5, 2, 2, 0};
	CHECK_OK(socks5_parse_greeting(g1, sizeof g1, &used, &noauth));
	CHECK(used == 4 && noauth == 1);
	static const uint8_t g2[] = {5, 1, 2};
	CHECK_OK(socks5_parse_greeting(g2, sizeof g2, &used, &noauth));
	CHECK(noauth == 0);
	for (size_t n = 0; n < sizeof g1; n++)
		CHECK_ERR(socks5_parse_greeting(g1, n, &used, &noauth), APP_EAGAIN);
	static const uint8_t v4[] = {4, 1, 0};
	CHECK_ERR(socks5_parse_greeting(v4, sizeof v4, &used, &noauth), APP_EVERSION);
	static const uint8_t zero[] = {5, 0};
	CHECK_ERR(socks5_parse_greeting(zero, sizeof zero, &used, &noauth), APP_EPARSE);
}

static void test_request(void)
{
	struct socks5_request rq;
	size_t used = 0;
	static const uint8_t r4[] = {5, 1, 0, 1, 10, 0, 0, 1, 0x01, 0xbb};
	CHECK_OK(socks5_parse_request(&rq, r4, sizeof r4, &used));
	CHECK(used == sizeof r4 && rq.port == 443 && rq.atyp == SOCKS5_ATYP_IPV4);
	CHECK_STR(rq.host, "10.0.0.1");
	for (size_t n = 0; n < sizeof r4; n++)
		CHECK_ERR(socks5_parse_request(&rq, r4, n, &used), APP_EAGAIN);
	uint8_t r6[22] = {5, 1, 0, 4};
	r6[19] = 1; /* ::1 */
	r6[20] = 0x1f;
	r6[21] = 0x90;
	CHECK_OK(socks5_parse_request(&rq, r6, sizeof r6, &used));
	CHECK_STR(rq.host, "::1");
	CHECK(rq.port == 8080);
	static const uint8_t rd[] = {5, 1, 0, 3, 11, 'R', 'e', 'l', 'a', 'y', '.', 'T', 'e', 's', 't', 's', 0, 80};
	CHECK_OK(socks5_parse_request(&rq, rd, sizeof rd, &used));
	CHECK_STR(rq.host, "relay.tests");
	/* strictness */
	uint8_t bad[sizeof rd];
	memcpy(bad, rd, sizeof rd);
	bad[2] = 1; /* RSV */
	CHECK_ERR(socks5_parse_request(&rq, bad, sizeof bad, &used), APP_EPARSE);
	memcpy(bad, rd, sizeof rd);
	bad[7] = 0; /* NUL inside the name */
	CHECK_ERR(socks5_parse_request(&rq, bad, sizeof bad, &used), APP_EPARSE);
	memcpy(bad, rd, sizeof rd);
	bad[5] = '.'; /* empty first label */
	CHECK_ERR(socks5_parse_request(&rq, bad, sizeof bad, &used), APP_EPARSE);
	static const uint8_t empty[] = {5, 1, 0, 3, 0, 0, 80};
	CHECK_ERR(socks5_parse_request(&rq, empty, sizeof empty, &used), APP_EPARSE);
	memcpy(bad, rd, sizeof rd);
	bad[1] = 2; /* BIND */
	CHECK_ERR(socks5_parse_request(&rq, bad, sizeof bad, &used), APP_EUNSUPPORTED);
	CHECK(rq.cmd == 2 && used == sizeof bad);
	static const uint8_t at[] = {5, 1, 0, 9, 1, 2, 3, 4};
	CHECK_ERR(socks5_parse_request(&rq, at, sizeof at, &used), APP_EUNSUPPORTED);
	CHECK(rq.atyp == 9);
	static const uint8_t v[] = {4, 1, 0, 1};
	CHECK_ERR(socks5_parse_request(&rq, v, sizeof v, &used), APP_EVERSION);
	CHECK(socks5_host_valid("a.b-c_d.e", 9));
	CHECK(!socks5_host_valid("a..b", 4));
	CHECK(!socks5_host_valid("a.", 2));
	CHECK(!socks5_host_valid("a b", 3));
	char longl[70];
	memset(longl, 'a', 64);
	CHECK(!socks5_host_valid(longl, 64));
	CHECK(socks5_host_valid(longl, 63));
}

static void test_client_side(void)
{
	uint8_t b[SOCKS5_CONNECT_MAX];
	size_t n = 0, used = 0;
	struct socks5_request rq;
	int noauth = 0;
	CHECK_OK(socks5_encode_connect(b, sizeof b, &n, "relay.example.com", 443));
	CHECK_OK(socks5_parse_greeting(b, n, &used, &noauth));
	CHECK(used == 3 && noauth);
	CHECK_OK(socks5_parse_request(&rq, b + 3, n - 3, &used));
	CHECK_STR(rq.host, "relay.example.com");
	CHECK(rq.atyp == SOCKS5_ATYP_DOMAIN && rq.port == 443);
	CHECK_OK(socks5_encode_connect(b, sizeof b, &n, "[2001:db8::1]", 80));
	CHECK_OK(socks5_parse_request(&rq, b + 3, n - 3, &used));
	CHECK(rq.atyp == SOCKS5_ATYP_IPV6);
	CHECK_STR(rq.host, "2001:db8::1");
	CHECK_OK(socks5_encode_connect(b, sizeof b, &n, "127.0.0.1", 7));
	CHECK(n == 3 + 10 && b[6] == SOCKS5_ATYP_IPV4);
	CHECK_ERR(socks5_encode_connect(b, sizeof b, &n, "bad host", 7), APP_EINVAL);
	CHECK_ERR(socks5_encode_connect(b, sizeof b, &n, "h", 0), APP_EINVAL);
	CHECK_ERR(socks5_encode_connect(b, 5, &n, "h", 1), APP_ETOOBIG);
	/* replies */
	uint8_t rep = 0xff, r[10];
	socks5_encode_reply(r, SOCKS5_REP_NOT_ALLOWED);
	CHECK_OK(socks5_parse_reply(&rep, r, 10, &used));
	CHECK(rep == SOCKS5_REP_NOT_ALLOWED && used == 10);
	CHECK_ERR(socks5_parse_reply(&rep, r, 9, &used), APP_EAGAIN);
	r[2] = 1;
	CHECK_ERR(socks5_parse_reply(&rep, r, 10, &used), APP_EPROTO);
	static const uint8_t rdom[] = {5, 0, 0, 3, 1, 'x', 0, 1};
	CHECK_OK(socks5_parse_reply(&rep, rdom, sizeof rdom, &used));
	static const uint8_t rbad[] = {5, 0, 0, 7};
	CHECK_ERR(socks5_parse_reply(&rep, rbad, sizeof rbad, &used), APP_EPROTO);
	static const uint8_t c0[] = {5, 0}, cff[] = {5, 0xff}, c2[] = {5, 2}, cv[] = {4};
	CHECK_OK(socks5_parse_choice(c0, 2, &used));
	CHECK_ERR(socks5_parse_choice(cff, 2, &used), APP_EREFUSED);
	CHECK_ERR(socks5_parse_choice(c2, 2, &used), APP_EPROTO);
	CHECK_ERR(socks5_parse_choice(cv, 1, &used), APP_EPROTO);
	CHECK_STR(socks5_rep_text(2), "connection not allowed by ruleset");
}

static void test_rules(void)
{
	struct proxy_config c;
	proxy_config_default(&c);
	CHECK(!proxy_allowed(&c, "example.com", 443)); /* deny by default */
	CHECK_OK(proxy_rule_parse(&c.rules[c.nrules++], "Relay.Example.com:443"));
	CHECK_OK(proxy_rule_parse(&c.rules[c.nrules++], "*.walrus.space:*"));
	CHECK_OK(proxy_rule_parse(&c.rules[c.nrules++], "[::1]:8080"));
	CHECK_OK(proxy_rule_parse(&c.rules[c.nrules++], "10.1.2.3:80"));
	CHECK(proxy_allowed(&c, "relay.example.com", 443));
	CHECK(!proxy_allowed(&c, "relay.example.com", 444));
	CHECK(!proxy_allowed(&c, "evil-relay.example.com", 443));
	CHECK(proxy_allowed(&c, "agg.walrus.space", 1));
	CHECK(proxy_allowed(&c, "a.b.walrus.space", 65535));
	CHECK(!proxy_allowed(&c, "walrus.space", 443));
	CHECK(!proxy_allowed(&c, "xwalrus.space", 443));
	CHECK(proxy_allowed(&c, "::1", 8080));
	CHECK(proxy_allowed(&c, "10.1.2.3", 80));
	struct proxy_rule r;
	CHECK_OK(proxy_rule_parse(&r, "*:443"));
	CHECK(r.any_host && r.port == 443);
	const char *bad[] = {"", "host", ":443", "host:", "host:0", "host:65536", "host:08", "ho st:1", "*.:1",
			     "[::1:1", "[zz]:1", "host:-1", "a..b:1"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECKM(proxy_rule_parse(&r, bad[i]) == APP_EINVAL, "rule '%s' accepted", bad[i]);
}

static void test_private(void)
{
	const char *priv4[] = {"127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "0.0.0.0",
			       "100.64.0.1", "224.0.0.1", "255.255.255.255"};
	const char *pub4[] = {"1.1.1.1", "172.32.0.1", "100.128.0.1", "8.8.8.8"};
	struct sockaddr_in a = {.sin_family = AF_INET};
	for (size_t i = 0; i < sizeof priv4 / sizeof *priv4; i++) {
		inet_pton(AF_INET, priv4[i], &a.sin_addr);
		CHECKM(proxy_addr_private(&a), "%s not private", priv4[i]);
	}
	for (size_t i = 0; i < sizeof pub4 / sizeof *pub4; i++) {
		inet_pton(AF_INET, pub4[i], &a.sin_addr);
		CHECKM(!proxy_addr_private(&a), "%s private", pub4[i]);
	}
	const char *priv6[] = {"::1", "::", "fe80::1", "fd00::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254"};
	struct sockaddr_in6 b = {.sin6_family = AF_INET6};
	for (size_t i = 0; i < sizeof priv6 / sizeof *priv6; i++) {
		inet_pton(AF_INET6, priv6[i], &b.sin6_addr);
		CHECKM(proxy_addr_private(&b), "%s not private", priv6[i]);
	}
	inet_pton(AF_INET6, "2606:4700::1111", &b.sin6_addr);
	CHECK(!proxy_addr_private(&b));
}

/* A proxy connection served on a thread over a socket pair. */
struct run {
	struct proxy *p;
	int fd;
};

static void *handle_main(void *arg)
{
	struct run *r = arg;
	proxy_handle(r->p, r->fd, -1);
	return NULL;
}

static int start(struct proxy *p, pthread_t *t, struct run *r)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return -1;
	r->p = p;
	r->fd = sv[1];
	pthread_create(t, NULL, handle_main, r);
	return sv[0];
}

/* exchange: sends req, reads until EOF or n bytes; returns bytes read. */
static size_t exchange(int fd, const uint8_t *req, size_t len, uint8_t *out, size_t cap)
{
	size_t got = 0;
	if (len && channel_write_full(fd, req, len, 2000) != 0)
		return 0;
	while (got < cap) {
		uint8_t b;
		if (channel_read_full(fd, &b, 1, 3000) != 0)
			break;
		out[got++] = b;
	}
	return got;
}

static void test_proxy_handle(void)
{
	struct proxy_config c;
	struct proxy *p = NULL;
	struct proxy_stats st;
	pthread_t t;
	struct run r;
	uint8_t out[64];
	proxy_config_default(&c);
	c.handshake_timeout_ms = 1000;
	c.allow_private = 0;
	CHECK_OK(proxy_rule_parse(&c.rules[c.nrules++], "127.0.0.1:*"));
	CHECK_OK(proxy_rule_parse(&c.rules[c.nrules++], "localhost:*"));
	CHECK_OK(proxy_new(&p, &c));

	/* not SOCKS5: dropped without an answer */
	int fd = start(p, &t, &r);
	static const uint8_t http[] = "GET / HTTP/1.1\r\n\r\n";
	CHECK(exchange(fd, http, sizeof http - 1, out, sizeof out) == 0);
	close(fd);
	pthread_join(t, NULL);
	/* no acceptable method */
	fd = start(p, &t, &r);
	static const uint8_t gss[] = {5, 1, 2};
	CHECK(exchange(fd, gss, sizeof gss, out, sizeof out) == 2 && out[1] == 0xff);
	close(fd);
	pthread_join(t, NULL);
	/* BIND: command not supported */
	fd = start(p, &t, &r);
	static const uint8_t bind[] = {5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80};
	CHECK(exchange(fd, bind, sizeof bind, out, sizeof out) == 12 && out[3] == SOCKS5_REP_CMD_UNSUPPORTED);
	close(fd);
	pthread_join(t, NULL);
	/* not on the allowlist */
	fd = start(p, &t, &r);
	uint8_t req[SOCKS5_CONNECT_MAX];
	size_t n = 0;
	CHECK_OK(socks5_encode_connect(req, sizeof req, &n, "example.com", 443));
	CHECK(exchange(fd, req, n, out, sizeof out) == 12 && out[3] == SOCKS5_REP_NOT_ALLOWED);
	close(fd);
	pthread_join(t, NULL);
	/* allowed by name, but a private address without allow_private */
	fd = start(p, &t, &r);
	CHECK_OK(socks5_encode_connect(req, sizeof req, &n, "127.0.0.1", 9));
	CHECK(exchange(fd, req, n, out, sizeof out) == 12 && out[3] == SOCKS5_REP_NOT_ALLOWED);
	close(fd);
	pthread_join(t, NULL);
	/* a handshake that never completes: timeout, counted malformed */
	fd = start(p, &t, &r);
	static const uint8_t half[] = {5, 1};
	CHECK(exchange(fd, half, sizeof half, out, sizeof out) == 0);
	close(fd);
	pthread_join(t, NULL);
	proxy_get_stats(p, &st);
	CHECK(st.malformed == 2);
	CHECK(st.denied == 4);
	proxy_free(p);

	/* allowed: a real listener on 127.0.0.1, bytes both ways */
	c.allow_private = 1;
	CHECK_OK(proxy_new(&p, &c));
	struct channel_addr la;
	int lfd = -1, afd = -1;
	uint32_t port = 0;
	CHECK_OK(channel_addr_parse(&la, "tcp:127.0.0.1:0"));
	CHECK_OK(channel_listen(&la, 4, &lfd));
	CHECK_OK(channel_bound_port(lfd, &port));
	fd = start(p, &t, &r);
	CHECK_OK(socks5_encode_connect(req, sizeof req, &n, "localhost", (uint16_t)port));
	/* the request and the first data bytes in one write: the proxy must keep the data */
	memcpy(req + n, "ping", 4);
	CHECK_OK(channel_write_full(fd, req, n + 4, 2000));
	uint8_t rep[12];
	CHECK_OK(channel_read_full(fd, rep, 12, 3000));
	CHECK(rep[1] == 0 && rep[3] == SOCKS5_REP_SUCCEEDED);
	CHECK_OK(channel_accept(lfd, &afd));
	uint8_t b4[4];
	CHECK_OK(channel_read_full(afd, b4, 4, 3000));
	CHECK(!memcmp(b4, "ping", 4));
	CHECK_OK(channel_write_full(afd, "pong", 4, 2000));
	CHECK_OK(channel_read_full(fd, b4, 4, 3000));
	CHECK(!memcmp(b4, "pong", 4));
	close(afd);
	close(fd);
	pthread_join(t, NULL);
	close(lfd);
	proxy_get_stats(p, &st);
	CHECK(st.allowed == 1 && st.bytes_up == 4 && st.bytes_down == 4);
	proxy_free(p);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	RUN(test_greeting);
	RUN(test_request);
	RUN(test_client_side);
	RUN(test_rules);
	RUN(test_private);
	RUN(test_proxy_handle);
	return test_summary();
}
