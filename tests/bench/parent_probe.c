/*
 * parent_probe: a stand-in enclave and bench driver for the parent's tests
 * (tests/integration/parent_*.sh, tests/bench/bench_parent.sh). Built with
 * the other helpers of tests/bench/ (it links every library).
 *
 *   parent_probe enclave [checks...]    run by `appliance-parent run --dev`
 *                                       (config: [enclave] binary = this, arg = ...)
 *       --direct HOST:PORT       a direct TCP connect must fail (isolation)
 *       --http HOST:PORT         GET / through an upstream bridge listener: expect "HTTP/1.1 200"
 *       --denied HOST:PORT       SOCKS5 passthrough: expect REP 0x02 (not allowed by ruleset)
 *       --relay URL              publish one event through the relay pool with connect_to
 *       --blobs                  put/get/list/overwrite on the parent's blob store
 *       --garbage                send a malformed control frame: the parent drops the connection,
 *                                the link reconnects by itself
 *       --puts                   after the checks: one put every 100 ms, "probe put n=N connects=C"
 *       --stay                   after the checks: wait for the shutdown notice, then BYE and exit 0
 *     Prints "ok - NAME" / "FAIL - NAME: why" lines and "probe done".
 *   parent_probe bench [MIB] [CONNS]  bulk throughput and connection set-up time, direct loopback
 *                                     vs bridge + proxy, in one process (see bench_parent.sh)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "appliance/channel.h"
#include "appliance/event.h"
#include "appliance/keys.h"
#include "appliance/log.h"
#include "appliance/socks5.h"
#include "enclave/runtime/egress.h"
#include "enclave/runtime/parentlink.h"
#include "parent/proxy.h"
#include "relay-client/pool.h"

static int fails;
static atomic_int shutdown_seen;

static void ok(const char *name)
{
	printf("ok - %s\n", name);
	fflush(stdout);
}

static void fail(const char *name, const char *why)
{
	fails++;
	printf("FAIL - %s: %s\n", name, why);
	fflush(stdout);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int split_hostport(const char *text, char *host, size_t cap, uint16_t *port)
{
	const char *c = strrchr(text, ':');
	if (!c || (size_t)(c - text) >= cap)
		return -1;
	memcpy(host, text, (size_t)(c - text));
	host[c - text] = 0;
	long p = strtol(c + 1, NULL, 10);
	if (p <= 0 || p > 65535)
		return -1;
	*port = (uint16_t)p;
	return 0;
}

static int tcp_connect(const char *ip, uint16_t port, int timeout_ms, int *err)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	*err = 0;
	if (s < 0 || inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
		*err = errno;
		if (s >= 0)
			close(s);
		return -1;
	}
	if (connect(s, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
		*err = errno;
		close(s);
		return -1;
	}
	struct pollfd p = {.fd = s, .events = POLLOUT};
	if (poll(&p, 1, timeout_ms) <= 0) {
		*err = ETIMEDOUT;
		close(s);
		return -1;
	}
	int e = 0;
	socklen_t l = sizeof e;
	getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &l);
	if (e) {
		*err = e;
		close(s);
		return -1;
	}
	fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK);
	int one = 1;
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return s;
}

static void check_direct(const char *target)
{
	char host[64], why[160];
	uint16_t port;
	int err = 0;
	if (split_hostport(target, host, sizeof host, &port) != 0) {
		fail("direct connection refused", "bad HOST:PORT");
		return;
	}
	int s = tcp_connect(host, port, 2000, &err);
	if (s >= 0) {
		close(s);
		snprintf(why, sizeof why, "connected to %s from inside the enclave", target);
		fail("direct connection refused", why);
		return;
	}
	printf("probe direct target=%s errno=%s\n", target, strerror(err));
	ok("direct connection refused");
}

static void check_http(struct egress *eg, const char *target)
{
	char host[256], buf[512];
	uint16_t port, lp = 0;
	int err = 0;
	if (split_hostport(target, host, sizeof host, &port) != 0 || egress_add_upstream(eg, host, port, &lp) != 0) {
		fail("http through the bridge", "cannot add the upstream listener");
		return;
	}
	int s = tcp_connect("127.0.0.1", lp, 5000, &err);
	if (s < 0) {
		fail("http through the bridge", strerror(err));
		return;
	}
	int k = snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: %s\r\nAccept: application/nostr+json\r\nConnection: close\r\n\r\n", host);
	if (channel_write_full(s, buf, (size_t)k, 5000) != 0) {
		close(s);
		fail("http through the bridge", "write failed");
		return;
	}
	size_t got = 0;
	while (got < 12) {
		struct pollfd p = {.fd = s, .events = POLLIN};
		if (poll(&p, 1, 5000) <= 0)
			break;
		ssize_t n = read(s, buf + got, sizeof buf - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = 0;
	close(s);
	if (strncmp(buf, "HTTP/1.1 200", 12) != 0) {
		fail("http through the bridge", got ? "unexpected answer" : "connection closed without an answer");
		return;
	}
	ok("http through the bridge");
}

static void check_denied(struct egress *eg, const char *target)
{
	char host[256];
	uint8_t b[SOCKS5_CONNECT_MAX], r[64];
	size_t n = 0, used = 0, have = 0;
	uint16_t port, lp = 0;
	uint8_t rep = 0;
	int err = 0, s = -1;
	if (split_hostport(target, host, sizeof host, &port) != 0 || egress_add_socks(eg, &lp) != 0 ||
	    socks5_encode_connect(b, sizeof b, &n, host, port) != 0) {
		fail("denied host refused", "setup");
		return;
	}
	s = tcp_connect("127.0.0.1", lp, 5000, &err);
	if (s < 0 || channel_write_full(s, b, n, 5000) != 0) {
		fail("denied host refused", "cannot reach the passthrough listener");
		goto out;
	}
	for (;;) {
		if (channel_read_full(s, r + have, 1, 5000) != 0) {
			fail("denied host refused", "no SOCKS5 answer");
			goto out;
		}
		have++;
		if (have >= 2 && socks5_parse_choice(r, have, &used) == 0)
			break;
	}
	have = 0;
	for (;;) {
		if (channel_read_full(s, r + have, 1, 5000) != 0) {
			fail("denied host refused", "no SOCKS5 reply");
			goto out;
		}
		have++;
		int pr = socks5_parse_reply(&rep, r, have, &used);
		if (pr == 0)
			break;
		if (pr != APP_EAGAIN || have == sizeof r) {
			fail("denied host refused", "malformed reply");
			goto out;
		}
	}
	printf("probe denied target=%s rep=%u reason=\"%s\"\n", target, rep, socks5_rep_text(rep));
	if (rep == SOCKS5_REP_NOT_ALLOWED)
		ok("denied host refused");
	else
		fail("denied host refused", socks5_rep_text(rep));
out:
	if (s >= 0)
		close(s);
}

struct pubwait {
	int done;
	enum relay_pub_status st;
};

static void on_pub(void *user, uint64_t pid, const uint8_t id[32], const struct relay_pub_result *res, size_t n)
{
	struct pubwait *w = user;
	(void)pid;
	(void)id;
	w->done = 1;
	w->st = n ? res[0].status : RELAY_PUB_FAILED;
}

static void check_relay(struct egress *eg, const char *url)
{
	struct relay_pool_opts o;
	struct relay_pool *pool = NULL;
	struct keypair *kp = NULL;
	struct event *ev = NULL;
	struct pubwait w = {0};
	char ct[64];
	relay_pool_opts_default(&o);
	o.ca_file = getenv("APPLIANCE_PROBE_RELAY_CA");
	o.backoff_min_ms = 100;
	o.backoff_max_ms = 1000;
	if (egress_connect_to(eg, url, ct, sizeof ct) != 0 || relay_pool_new(&pool, &o) != 0 ||
	    relay_pool_add_relay(pool, NULL, url, ct) != 0 || keys_generate(&kp) != 0 ||
	    event_new(&ev, 1, (uint64_t)time(NULL), "parent probe", 12) != 0 || event_sign(ev, kp) != 0 ||
	    relay_publish(pool, NULL, ev, NULL, 0, on_pub, &w) != 0) {
		fail("relay publish through the bridge", "setup");
		goto out;
	}
	double end = now_s() + 20;
	while (!w.done && now_s() < end)
		if (relay_pool_service(pool, 100) != 0)
			break;
	printf("probe relay url=%s connect_to=%s status=%s\n", url, ct, relay_pub_status_name(w.st));
	if (w.done && w.st == RELAY_PUB_ACCEPTED)
		ok("relay publish through the bridge");
	else
		fail("relay publish through the bridge", w.done ? relay_pub_status_name(w.st) : "no answer in 20 s");
out:
	event_free(ev);
	keys_free(kp);
	relay_pool_free(pool);
}

static int list_cb(void *arg, const char *name, uint64_t size)
{
	int *n = arg;
	(void)size;
	if (!strncmp(name, "probe-", 6))
		(*n)++;
	return 0;
}

static void check_blobs(struct parentlink *pl)
{
	char name[64];
	uint8_t data[3000], *got = NULL;
	size_t gl = 0;
	int n = 0;
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)(i * 7);
	snprintf(name, sizeof name, "probe-%ld", (long)time(NULL));
	int r = parentlink_blob_put(pl, name, data, sizeof data, 5000);
	r == 0 ? ok("blob put") : fail("blob put", app_errname(r));
	r = parentlink_blob_put(pl, name, data, 10, 5000);
	r == APP_EEXIST ? ok("blob overwrite refused") : fail("blob overwrite refused", app_errname(r));
	r = parentlink_blob_get(pl, name, &got, &gl, 1 << 20, 5000);
	(r == 0 && gl == sizeof data && !memcmp(got, data, gl)) ? ok("blob get") : fail("blob get", app_errname(r));
	free(got);
	r = parentlink_blob_get(pl, "probe-missing", &got, &gl, 1 << 20, 5000);
	r == APP_ENOTFOUND ? ok("blob get missing") : fail("blob get missing", app_errname(r));
	free(got);
	r = parentlink_blob_list(pl, list_cb, &n, 5000);
	(r == 0 && n >= 1) ? ok("blob list") : fail("blob list", app_errname(r));
}

static void check_garbage(struct parentlink *pl, const char *control)
{
	struct channel_addr a;
	struct parentlink_stats st;
	int fd = -1;
	/* a second connection that breaks the protocol: its own drop must not disturb the link */
	if (channel_addr_parse(&a, control) != 0 || channel_connect(&a, 2000, &fd) != 0) {
		fail("malformed frame dropped", "cannot connect");
		return;
	}
	static const uint8_t junk[] = {0x00, 0xff, 0xff, 0xff, 0xff, 'x'};
	if (channel_write_full(fd, junk, sizeof junk, 2000) != 0) {
		close(fd);
		fail("malformed frame dropped", "write");
		return;
	}
	uint8_t b;
	int r = channel_read_full(fd, &b, 1, 3000);
	close(fd);
	r == APP_ECONN ? ok("malformed frame dropped") : fail("malformed frame dropped", app_errname(r));
	uint8_t d = 1;
	r = parentlink_blob_put(pl, "probe-after-garbage", &d, 1, 5000);
	(r == 0 || r == APP_EEXIST) ? ok("link unaffected by another connection's garbage")
				    : fail("link unaffected by another connection's garbage", app_errname(r));
	parentlink_get_stats(pl, &st);
}

static void on_shutdown(void *arg, uint32_t grace_ms)
{
	(void)arg;
	(void)grace_ms;
	atomic_store(&shutdown_seen, 1);
}

static int cmd_enclave(int argc, char **argv)
{
	struct parentlink_env env;
	struct parentlink_opts po;
	struct egress_opts eo;
	struct parentlink *pl = NULL;
	struct egress *eg = NULL;
	int stay = 0, puts_loop = 0;
	signal(SIGPIPE, SIG_IGN);
	if (parentlink_env(&env) != 0) {
		fail("environment", "bad channel addresses");
		return 1;
	}
	printf("probe start pid=%d control=%s egress=%s nsm=%s\n", (int)getpid(), env.control, env.egress, env.nsm);
	fflush(stdout);
	int lr = egress_lo_up();
	lr == 0 ? ok("lo up") : fail("lo up", strerror(errno));
	parentlink_opts_default(&po);
	po.control = env.control;
	po.instance_id = "probe";
	po.on_shutdown = on_shutdown;
	egress_opts_default(&eo);
	eo.parent = env.egress;
	if (parentlink_start(&pl, &po) != 0 || egress_new(&eg, &eo) != 0 || egress_start(eg) != 0) {
		fail("start", "parentlink/egress");
		goto out;
	}
	log_set_sink(parentlink_log_sink, pl);
	parentlink_wait_connected(pl, 10000) == 0 ? ok("control connected") : fail("control connected", "timeout");
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--direct") && v) {
			check_direct(v);
			i++;
		} else if (!strcmp(a, "--http") && v) {
			check_http(eg, v);
			i++;
		} else if (!strcmp(a, "--denied") && v) {
			check_denied(eg, v);
			i++;
		} else if (!strcmp(a, "--relay") && v) {
			check_relay(eg, v);
			i++;
		} else if (!strcmp(a, "--blobs")) {
			check_blobs(pl);
		} else if (!strcmp(a, "--garbage")) {
			check_garbage(pl, env.control);
		} else if (!strcmp(a, "--stay")) {
			stay = 1;
		} else if (!strcmp(a, "--puts")) {
			puts_loop = 1;
		} else if (!strcmp(a, "--config") && v) {
			printf("probe config=%s\n", v);
			i++;
		} else {
			fail("arguments", a);
		}
	}
	log_info("event=probe_checks_done fails=%d", fails);
	printf("probe done fails=%d\n", fails);
	fflush(stdout);
	uint64_t n = 0;
	while ((stay || puts_loop) && !atomic_load(&shutdown_seen)) {
		if (puts_loop) {
			char name[64];
			struct parentlink_stats st;
			snprintf(name, sizeof name, "loop-%d-%llu", (int)getpid(), (unsigned long long)n);
			int r = parentlink_blob_put(pl, name, (const uint8_t *)"x", 1, 1000);
			parentlink_get_stats(pl, &st);
			if (r == 0) {
				n++;
				printf("probe put n=%llu connects=%llu\n", (unsigned long long)n, (unsigned long long)st.connects);
				fflush(stdout);
			}
		}
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	if (atomic_load(&shutdown_seen)) {
		/* a real enclave flushes its journal here */
		int r = parentlink_bye(pl, 3000);
		printf("probe bye=%s\n", r == 0 ? "sent" : app_errname(r));
		fflush(stdout);
	}
out:
	log_set_sink(NULL, NULL);
	parentlink_stop(pl);
	egress_free(eg);
	return fails ? 1 : 0;
}

/* ---- bench ---------------------------------------------------------------------------------- */

struct sink {
	int lfd;
	uint16_t port;
	int echo;
};

static void *sink_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	const size_t cap = 256 * 1024;
	uint8_t *buf = malloc(cap);
	uint64_t total = 0;
	for (;;) {
		ssize_t n = buf ? read(fd, buf, cap) : -1;
		if (n <= 0)
			break;
		total += (uint64_t)n;
		if (n == 1 && buf[0] == 'p') { /* ping */
			if (write(fd, "P", 1) != 1)
				break;
			total = 0;
		}
	}
	uint8_t t[8];
	for (int i = 0; i < 8; i++)
		t[i] = (uint8_t)(total >> (56 - 8 * i));
	if (write(fd, t, 8) != 8) {
		/* the client gave up */
	}
	free(buf);
	close(fd);
	return NULL;
}

static void *sink_main(void *arg)
{
	struct sink *s = arg;
	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		pthread_t t;
		if (pthread_create(&t, NULL, sink_conn, (void *)(intptr_t)fd) == 0)
			pthread_detach(t);
		else
			close(fd);
	}
	return NULL;
}

/* bulk: sends mib MiB to 127.0.0.1:port and waits for the sink's count. Returns seconds or -1. */
static double bulk(uint16_t port, size_t mib)
{
	static uint8_t buf[256 * 1024];
	int err = 0, s = tcp_connect("127.0.0.1", port, 5000, &err);
	if (s < 0)
		return -1;
	double t0 = now_s();
	uint64_t want = (uint64_t)mib << 20, sent = 0;
	while (sent < want) {
		size_t n = want - sent < sizeof buf ? (size_t)(want - sent) : sizeof buf;
		if (channel_write_full(s, buf, n, 30000) != 0) {
			close(s);
			return -1;
		}
		sent += n;
	}
	shutdown(s, SHUT_WR);
	uint8_t t[8];
	if (channel_read_full(s, t, 8, 30000) != 0) {
		close(s);
		return -1;
	}
	double dt = now_s() - t0;
	close(s);
	uint64_t got = 0;
	for (int i = 0; i < 8; i++)
		got = got << 8 | t[i];
	return got == want ? dt : -1;
}

/* setup: average µs of connect + one ping round trip over n connections. */
static double setup_us(uint16_t port, int n)
{
	double total = 0;
	for (int i = 0; i < n; i++) {
		int err = 0;
		double t0 = now_s();
		int s = tcp_connect("127.0.0.1", port, 5000, &err);
		uint8_t b;
		if (s < 0 || channel_write_full(s, "p", 1, 5000) != 0 || channel_read_full(s, &b, 1, 5000) != 0) {
			if (s >= 0)
				close(s);
			return -1;
		}
		total += now_s() - t0;
		close(s);
	}
	return total / n * 1e6;
}

static void *proxy_thread(void *arg)
{
	void **a = arg;
	if (proxy_serve(a[0], (int)(intptr_t)a[1], (int)(intptr_t)a[2]) != 0)
		fprintf(stderr, "proxy_serve failed\n");
	return NULL;
}

static int cmd_bench(int argc, char **argv)
{
	size_t mib = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 256;
	int conns = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 200;
	struct channel_addr la, pa;
	struct sink sk = {0};
	struct proxy_config pc;
	struct proxy *px = NULL;
	struct egress_opts eo;
	struct egress *eg = NULL;
	char dir[] = "/tmp/parent-bench.XXXXXX", paddr[128];
	int pfd = -1, stop[2] = {-1, -1}, rc = 1;
	uint32_t p32 = 0;
	uint16_t bport = 0;
	pthread_t st, pt;
	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_WARN);
	if (mib == 0 || conns <= 0 || !mkdtemp(dir))
		return 2;
	snprintf(paddr, sizeof paddr, "unix:%s/egress.sock", dir);
	if (channel_addr_parse(&la, "tcp:127.0.0.1:0") != 0 || channel_listen(&la, 128, &sk.lfd) != 0 ||
	    channel_bound_port(sk.lfd, &p32) != 0)
		goto out;
	sk.port = (uint16_t)p32;
	pthread_create(&st, NULL, sink_main, &sk);
	proxy_config_default(&pc);
	pc.allow_private = 1;
	if (getenv("PROBE_BUF"))
		pc.buf_size = (size_t)strtoul(getenv("PROBE_BUF"), NULL, 10);
	if (proxy_rule_parse(&pc.rules[0], "127.0.0.1:*") != 0)
		goto out;
	pc.nrules = 1;
	if (proxy_new(&px, &pc) != 0 || channel_addr_parse(&pa, paddr) != 0 || channel_listen(&pa, 128, &pfd) != 0 ||
	    pipe(stop) != 0)
		goto out;
	void *pargs[3] = {px, (void *)(intptr_t)pfd, (void *)(intptr_t)stop[0]};
	pthread_create(&pt, NULL, proxy_thread, pargs);
	egress_opts_default(&eo);
	eo.parent = paddr;
	eo.buf_size = pc.buf_size;
	if (egress_new(&eg, &eo) != 0 || egress_add_upstream(eg, "127.0.0.1", sk.port, &bport) != 0 || egress_start(eg) != 0)
		goto out;
	/* warm-up, then alternate to share any CPU noise */
	(void)bulk(sk.port, 16);
	(void)bulk(bport, 16);
	/* ROUNDS alternating runs; the best of each (the machine is shared: noise only slows down) */
	double dmin = 1e9, bmin = 1e9, su_d = 1e9, su_b = 1e9;
	for (int round = 0; round < 5; round++) {
		double d = bulk(sk.port, mib), b = bulk(bport, mib);
		double sd = setup_us(sk.port, conns / 5 + 1), sb = setup_us(bport, conns / 5 + 1);
		if (d < 0 || b < 0 || sd < 0 || sb < 0) {
			fprintf(stderr, "bench: a transfer failed\n");
			goto out;
		}
		dmin = d < dmin ? d : dmin;
		bmin = b < bmin ? b : bmin;
		su_d = sd < su_d ? sd : su_d;
		su_b = sb < su_b ? sb : su_b;
	}
	double dr = (double)mib / dmin, br = (double)mib / bmin;
	printf("bulk %zu MiB: direct %.0f MiB/s, bridge+proxy %.0f MiB/s, ratio %.2f (target >= 0.50)\n", mib, dr, br,
	       br / dr);
	printf("setup (connect + 1-byte round trip, best mean of 5 x %d): direct %.0f us, bridge+proxy %.0f us, overhead %.0f us\n",
	       conns / 5 + 1, su_d, su_b, su_b - su_d);
	printf("RESULT ratio=%.3f direct_mibs=%.0f bridge_mibs=%.0f setup_overhead_us=%.0f\n", br / dr, dr, br, su_b - su_d);
	rc = br / dr >= 0.5 ? 0 : 3;
out:
	egress_free(eg);
	if (stop[1] >= 0) {
		if (write(stop[1], "x", 1) == 1)
			pthread_join(pt, NULL);
	}
	proxy_free(px);
	if (pfd >= 0)
		close(pfd);
	char sp[160];
	snprintf(sp, sizeof sp, "%s/egress.sock", dir);
	unlink(sp);
	rmdir(dir);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "enclave"))
		return cmd_enclave(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "bench"))
		return cmd_bench(argc - 1, argv + 1);
	/* launched as the enclave binary: argv[0] is "appliance-enclave" */
	if (argc >= 1 && !strcmp(argv[0], "appliance-enclave"))
		return cmd_enclave(argc, argv);
	fprintf(stderr, "usage: parent_probe enclave [--direct H:P] [--http H:P] [--denied H:P] [--relay URL] "
			"[--blobs] [--garbage] [--puts] [--stay]\n       parent_probe bench [MIB] [CONNS]\n");
	return 2;
}
