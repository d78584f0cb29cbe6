/*
 * parent_test: the parent's configuration, measurement and nitro-cli command
 * lines (parent/pconfig.h, parent/launch.h); the control service
 * (parent/control.h) with the enclave's client (enclave/runtime/parentlink.h):
 * HELLO, blobs, log sink and its rate cap, malformed frames, the shutdown
 * notice and BYE, reconnect after a parent restart; the enclave's egress
 * bridge (enclave/runtime/egress.h) against the real proxy and against a lying one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "appliance/channel.h"
#include "appliance/ctlmsg.h"
#include "appliance/hash.h"
#include "appliance/hex.h"
#include "appliance/log.h"
#include "appliance/socks5.h"
#include "enclave/runtime/egress.h"
#include "enclave/runtime/parentlink.h"
#include "parent/blobstore.h"
#include "parent/control.h"
#include "parent/launch.h"
#include "parent/nsm_emu.h"
#include "parent/pconfig.h"
#include "parent/proxy.h"
#include "test.h"

static char root[] = "/tmp/parent_test.XXXXXX";

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void test_config(void)
{
	struct pconfig *c = NULL;
	char err[PCONFIG_ERR_MAX];
	const char *ok1 = "[parent]\nstate_dir = /srv/p\n[enclave]\nbinary = /bin/enclave\nconfig = /etc/e.ini\n"
			  "arg = --x\narg = y\n[egress]\nallow = relay.example.com:443\nallow = *.walrus.space:*\n"
			  "max_connections = 9\nidle_timeout_s = 7\n[blobstore]\nmax_bytes = 2M\n";
	CHECK_OK(pconfig_parse(&c, err, sizeof err, "t.ini", ok1, strlen(ok1), 0));
	if (c) {
		CHECK(c->mode == PCONFIG_DEV);
		CHECK_STR(c->control, "unix:/srv/p/run/control.sock");
		CHECK_STR(c->egress, "unix:/srv/p/run/egress.sock");
		CHECK_STR(c->ca_dir, "/srv/p/dev-ca");
		CHECK_STR(c->blob_dir, "/srv/p/blobs");
		CHECK(c->nargs == 2 && !strcmp(c->args[1], "y"));
		CHECK(c->proxy.nrules == 2 && c->proxy.max_connections == 9 && c->proxy.idle_timeout_ms == 7000);
		CHECK(c->blob_max_bytes == 2u << 20);
		CHECK(c->cid == 16 && c->cpu_count == 2 && c->shutdown_grace_ms == 30000);
		CHECK(proxy_allowed(&c->proxy, "x.walrus.space", 443));
		CHECK(!proxy_allowed(&c->proxy, "example.com", 443));
		pconfig_free(c);
		c = NULL;
	}
	/* nitro: vsock defaults, eif required */
	const char *n1 = "[enclave]\neif = /opt/a.eif\ncid = 20\n";
	CHECK_OK(pconfig_parse(&c, err, sizeof err, "t.ini", n1, strlen(n1), PCONFIG_NITRO));
	if (c) {
		CHECK_STR(c->control, "vsock:any:2080");
		CHECK_STR(c->egress, "vsock:any:1080");
		CHECK(c->cid == 20);
		pconfig_free(c);
		c = NULL;
	}
	struct {
		const char *text, *needle;
	} bad[] = {
		{"[enclave]\nbinary=/b\nbogus = 1\n", "unknown key"},
		{"[nope]\nx=1\n", "unknown key"},
		{"[enclave]\nbinary=/b\n[egress]\nallow = nope\n", "allow"},
		{"[enclave]\nbinary=/b\ncid = 3\n", "cid"},
		{"[enclave]\nbinary=/b\nbinary=/c\n", "given twice"},
		{"[parent]\nmode = cloud\n", "mode"},
		{"[enclave]\nconfig=/x\n", "binary: required"},
		{"[enclave]\nbinary=/b\n[channel]\ncontrol = tcp:10.0.0.1:5\n", "control"},
		{"[enclave]\nbinary=/b\nrestart_min_ms = 5000\nrestart_max_ms = 100\n", "restart_min_ms"},
		{"[enclave]\nbinary=/b\n[egress]\nmax_bytes = 12X\n", "max_bytes"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		int r = pconfig_parse(&c, err, sizeof err, "t.ini", bad[i].text, strlen(bad[i].text), 0);
		CHECKM(r != 0 && strstr(err, bad[i].needle), "case %zu: r=%d err=%s", i, r, err);
		pconfig_free(c);
		c = NULL;
	}
	const char *n2 = "[parent]\nmode = nitro\n";
	CHECK(pconfig_parse(&c, err, sizeof err, "t.ini", n2, strlen(n2), 0) != 0 && strstr(err, "eif"));
}

static void test_measure(void)
{
	uint8_t pcr[3][48], d[48], ext[96], want[48], emu[NSM_PCR_LEN];
	static const uint8_t bin[] = "\x7f" "ELF pretend binary";
	static const char cfg[] = "[service]\nname = x\n";
	/* without a configuration: the nsm-emulator --image values */
	launch_measure(pcr, bin, sizeof bin, NULL, 0);
	nsm_emu_measure(emu, bin, sizeof bin);
	CHECK_MEM(pcr[0], emu, 48);
	CHECK_MEM(pcr[2], emu, 48);
	hash_sha384(d, "", 0);
	memset(ext, 0, 48);
	memcpy(ext + 48, d, 48);
	hash_sha384(want, ext, 96);
	CHECK_MEM(pcr[1], want, 48);
	/* with one: PCR1 = H(0 || H(config)), PCR2 = H(0 || H(binary)), PCR0 = H(0 || H(config || binary)) */
	launch_measure(pcr, bin, sizeof bin, (const uint8_t *)cfg, strlen(cfg));
	CHECK_MEM(pcr[2], emu, 48);
	hash_sha384(d, cfg, strlen(cfg));
	memcpy(ext + 48, d, 48);
	hash_sha384(want, ext, 96);
	CHECK_MEM(pcr[1], want, 48);
	uint8_t cat[sizeof cfg + sizeof bin];
	memcpy(cat, cfg, strlen(cfg));
	memcpy(cat + strlen(cfg), bin, sizeof bin);
	hash_sha384(d, cat, strlen(cfg) + sizeof bin);
	memcpy(ext + 48, d, 48);
	hash_sha384(want, ext, 96);
	CHECK_MEM(pcr[0], want, 48);
	/* the image loader measures the same bytes it will run */
	char bp[128], cp[128];
	snprintf(bp, sizeof bp, "%s/bin", root);
	snprintf(cp, sizeof cp, "%s/cfg", root);
	FILE *f = fopen(bp, "w");
	fwrite(bin, 1, sizeof bin, f);
	fclose(f);
	f = fopen(cp, "w");
	fputs(cfg, f);
	fclose(f);
	struct launch_image img;
	CHECK_OK(launch_image_load(&img, bp, cp));
	CHECK_MEM(img.pcr[0], pcr[0], 48);
	CHECK(img.bin_len == sizeof bin && img.cfg_len == strlen(cfg));
	/* sealed: the measured copy cannot change */
	CHECK(write(img.bin_fd, "x", 1) < 0);
	launch_image_clear(&img);
	CHECK_ERR(launch_image_load(&img, "/nonexistent/bin", NULL), APP_ENOENT);
}

static void test_nitro_args(void)
{
	const char *argv[LAUNCH_NITRO_ARGV_MAX];
	char bufs[3][24];
	int n = launch_nitro_run_argv(argv, LAUNCH_NITRO_ARGV_MAX, bufs, "/opt/appliance.eif", 2, 4096, 16, 0);
	CHECK(n == 10);
	const char *want[] = {"nitro-cli", "run-enclave", "--eif-path", "/opt/appliance.eif", "--cpu-count", "2",
			      "--memory", "4096", "--enclave-cid", "16"};
	for (int i = 0; i < 10 && n == 10; i++)
		CHECK_STR(argv[i], want[i]);
	CHECK(argv[10] == NULL);
	n = launch_nitro_run_argv(argv, LAUNCH_NITRO_ARGV_MAX, bufs, "/e.eif", 4, 8192, 99, 1);
	CHECK(n == 11);
	CHECK_STR(argv[10], "--debug-mode");
	CHECK_ERR(launch_nitro_run_argv(argv, LAUNCH_NITRO_ARGV_MAX, bufs, "", 2, 4096, 16, 0), APP_EINVAL);
	CHECK_ERR(launch_nitro_run_argv(argv, LAUNCH_NITRO_ARGV_MAX, bufs, "/e", 2, 4096, 3, 0), APP_EINVAL);
	CHECK_ERR(launch_nitro_run_argv(argv, LAUNCH_NITRO_ARGV_MAX, bufs, "/e", 0, 4096, 16, 0), APP_EINVAL);
	CHECK_ERR(launch_nitro_run_argv(argv, 5, bufs, "/e", 2, 4096, 16, 0), APP_EINVAL);
	CHECK(launch_nitro_terminate_argv(argv, 6, "i-0123456789abcdef0-enc0123456789abcdef") == 4);
	CHECK_STR(argv[3], "i-0123456789abcdef0-enc0123456789abcdef");
	CHECK_ERR(launch_nitro_terminate_argv(argv, 6, "i-1; rm -rf /"), APP_EINVAL);
	/* run-enclave's JSON answer (nitro-cli docs) */
	const char *out = "{\n  \"EnclaveName\": \"appliance\",\n  \"EnclaveID\": \"i-05f6ed443aEXAMPLE-enc173dfe3eEXAMPLE\",\n"
			  "  \"ProcessID\": 7077,\n  \"EnclaveCID\": 16,\n  \"NumberOfCPUs\": 2,\n  \"CPUIDs\": [1, 3],\n"
			  "  \"MemoryMiB\": 4096\n}\n";
	char id[80];
	CHECK_OK(launch_nitro_enclave_id(id, sizeof id, out, strlen(out)));
	CHECK_STR(id, "i-05f6ed443aEXAMPLE-enc173dfe3eEXAMPLE");
	CHECK_ERR(launch_nitro_enclave_id(id, 8, out, strlen(out)), APP_ETOOBIG);
	CHECK_ERR(launch_nitro_enclave_id(id, sizeof id, "{}", 2), APP_EPARSE);
	/* the enclave side: no environment = Nitro's vsock addresses (parent CID 3) */
	struct parentlink_env env;
	unsetenv(PARENTLINK_ENV_CONTROL);
	unsetenv(PARENTLINK_ENV_EGRESS);
	CHECK_OK(parentlink_env(&env));
	CHECK_STR(env.control, "vsock:3:2080");
	CHECK_STR(env.egress, "vsock:3:1080");
	CHECK(!env.from_env);
	setenv(PARENTLINK_ENV_CONTROL, "unix:/run/x.sock", 1);
	CHECK_OK(parentlink_env(&env));
	CHECK_STR(env.control, "unix:/run/x.sock");
	setenv(PARENTLINK_ENV_CONTROL, "tcp:8.8.8.8:1", 1);
	CHECK_ERR(parentlink_env(&env), APP_EINVAL);
	unsetenv(PARENTLINK_ENV_CONTROL);
}

/* A parent's control service on a thread. */
struct parent {
	char addr[160];
	struct blobstore *store;
	struct control *ctl;
	int lfd, stop[2];
	pthread_t t;
};

static void *serve_main(void *arg)
{
	struct parent *p = arg;
	if (control_serve(p->ctl, p->lfd, p->stop[0]) != 0)
		fprintf(stderr, "control_serve failed\n");
	return NULL;
}

static int parent_start(struct parent *p, const char *addr, unsigned log_rate)
{
	struct channel_addr a;
	struct control_config cc;
	char bdir[128];
	snprintf(bdir, sizeof bdir, "%s/blobs", root);
	struct blobstore_config bc = {.dir = bdir, .max_bytes = 1 << 20, .max_blobs = 1000, .max_blob = 65536};
	memset(p, 0, sizeof *p);
	snprintf(p->addr, sizeof p->addr, "%s", addr);
	control_config_default(&cc);
	cc.log_rate = log_rate;
	cc.log_burst = 5;
	cc.hello_timeout_ms = 500;
	if (blobstore_open(&p->store, &bc) != 0 || control_new(&p->ctl, &cc, p->store) != 0 ||
	    channel_addr_parse(&a, addr) != 0 || channel_listen(&a, 8, &p->lfd) != 0 || pipe(p->stop) != 0)
		return -1;
	return pthread_create(&p->t, NULL, serve_main, p) == 0 ? 0 : -1;
}

static void parent_stop(struct parent *p)
{
	if (write(p->stop[1], "x", 1) != 1)
		return;
	pthread_join(p->t, NULL);
	close(p->lfd);
	close(p->stop[0]);
	close(p->stop[1]);
	control_free(p->ctl);
	blobstore_close(p->store);
}

static atomic_int shutdowns;

static void on_shutdown(void *arg, uint32_t grace)
{
	(void)arg;
	if (grace == 1234)
		atomic_fetch_add(&shutdowns, 1);
}

static int count_cb(void *arg, const char *name, uint64_t size)
{
	int *n = arg;
	(void)name;
	(void)size;
	(*n)++;
	return 0;
}

static void test_control_link(void)
{
	char addr[160];
	struct parent p;
	struct parentlink *pl = NULL;
	struct parentlink_opts o;
	struct parentlink_stats ls;
	struct control_stats cs;
	snprintf(addr, sizeof addr, "unix:%s/control.sock", root);
	CHECK(parent_start(&p, addr, 1000) == 0);
	parentlink_opts_default(&o);
	o.control = addr;
	o.instance_id = "inst-a";
	o.on_shutdown = on_shutdown;
	o.backoff_min_ms = 20;
	o.backoff_max_ms = 200;
	CHECK_OK(parentlink_start(&pl, &o));
	CHECK_OK(parentlink_wait_connected(pl, 3000));
	CHECK(control_connected(p.ctl) == 1);
	/* blobs */
	CHECK_OK(parentlink_blob_put(pl, "j1", (const uint8_t *)"abc", 3, 3000));
	CHECK_ERR(parentlink_blob_put(pl, "j1", (const uint8_t *)"xyz", 3, 3000), APP_EEXIST);
	CHECK_OK(parentlink_blob_put(pl, "j2", NULL, 0, 3000));
	uint8_t *d = NULL;
	size_t n = 0;
	CHECK_OK(parentlink_blob_get(pl, "j1", &d, &n, 100, 3000));
	CHECK(n == 3 && d && !memcmp(d, "abc", 3));
	free(d);
	CHECK_ERR(parentlink_blob_get(pl, "j1", &d, &n, 2, 3000), APP_ETOOBIG);
	CHECK_ERR(parentlink_blob_get(pl, "zz", &d, &n, 100, 3000), APP_ENOTFOUND);
	uint8_t big[70000] = {0};
	CHECK_ERR(parentlink_blob_put(pl, "big", big, sizeof big, 3000), APP_ETOOBIG); /* the store's max_blob */
	CHECK_ERR(parentlink_blob_put(pl, "a/b", big, 1, 3000), APP_EINVAL);
	int cnt = 0;
	for (int i = 0; i < 30; i++) {
		char nm[16];
		snprintf(nm, sizeof nm, "k%03d", i);
		CHECK_OK(parentlink_blob_put(pl, nm, (const uint8_t *)nm, 4, 3000));
	}
	CHECK_OK(parentlink_blob_list(pl, count_cb, &cnt, 3000));
	CHECK(cnt == 32);
	/* log lines: forwarded, sanitized */
	parentlink_log_sink(pl, LOG_INFO, "event=test line=1", 17);
	parentlink_log_sink(pl, LOG_WARN, "event=test bad=\n\x01", 17);
	sleep_ms(200);
	control_get_stats(p.ctl, &cs);
	CHECK(cs.log_lines == 2);
	CHECK(cs.malformed == 0);
	/* shutdown notice -> callback; BYE -> the parent sees it */
	CHECK(control_shutdown_notice(p.ctl, 1234) == 1);
	for (int i = 0; i < 100 && atomic_load(&shutdowns) == 0; i++)
		sleep_ms(10);
	CHECK(atomic_load(&shutdowns) == 1);
	CHECK_OK(parentlink_bye(pl, 2000));
	CHECK_OK(control_wait_bye(p.ctl, 2000));
	/* the parent restarts: the link reconnects by itself, blobs persist */
	parent_stop(&p);
	CHECK_ERR(parentlink_blob_put(pl, "during", (const uint8_t *)"x", 1, 300), APP_ETIMEOUT);
	CHECK(parent_start(&p, addr, 1000) == 0);
	CHECK_OK(parentlink_wait_connected(pl, 3000));
	CHECK_OK(parentlink_blob_get(pl, "j1", &d, &n, 100, 3000));
	free(d);
	parentlink_get_stats(pl, &ls);
	CHECK(ls.connects >= 2 && ls.disconnects >= 1);
	parentlink_stop(pl);
	parent_stop(&p);
}

static void test_control_abuse(void)
{
	char addr[160];
	struct parent p;
	struct channel_addr a;
	struct control_stats cs;
	int fd = -1;
	uint8_t b;
	snprintf(addr, sizeof addr, "unix:%s/control2.sock", root);
	CHECK(parent_start(&p, addr, 2) == 0);
	CHECK_OK(channel_addr_parse(&a, addr));
	/* a request before HELLO */
	CHECK_OK(channel_connect(&a, 1000, &fd));
	CHECK_OK(channel_send(fd, CTLMSG_GET, "\0\0\0\1\1x", 6, 1000));
	CHECK_ERR(channel_read_full(fd, &b, 1, 2000), APP_ECONN);
	close(fd);
	/* a frame over CHANNEL_MAX_FRAME: dropped before allocating */
	CHECK_OK(channel_connect(&a, 1000, &fd));
	static const uint8_t huge[] = {CTLMSG_HELLO, 0x7f, 0xff, 0xff, 0xff};
	CHECK_OK(channel_write_full(fd, huge, sizeof huge, 1000));
	CHECK_ERR(channel_read_full(fd, &b, 1, 2000), APP_ECONN);
	close(fd);
	/* a type the enclave may not send */
	CHECK_OK(channel_connect(&a, 1000, &fd));
	CHECK_OK(channel_send(fd, CTLMSG_HELLO, "\1\1x", 3, 1000));
	uint8_t t = 0, *pl = NULL;
	size_t pn = 0;
	CHECK_OK(channel_recv(fd, &t, &pl, &pn, 64, 2000));
	CHECK(t == CTLMSG_WELCOME);
	free(pl);
	CHECK_OK(channel_send(fd, CTLMSG_SHUTDOWN, "\0\0\0\0", 4, 1000));
	CHECK_ERR(channel_read_full(fd, &b, 1, 2000), APP_ECONN);
	close(fd);
	/* no HELLO in time */
	CHECK_OK(channel_connect(&a, 1000, &fd));
	CHECK_ERR(channel_read_full(fd, &b, 1, 3000), APP_ECONN);
	close(fd);
	/* the log rate cap: burst 5 then 2 lines/s */
	CHECK_OK(channel_connect(&a, 1000, &fd));
	CHECK_OK(channel_send(fd, CTLMSG_HELLO, "\1\1y", 3, 1000));
	CHECK_OK(channel_recv(fd, &t, &pl, &pn, 64, 2000));
	free(pl);
	for (int i = 0; i < 50; i++)
		CHECK_OK(channel_send(fd, CTLMSG_LOG, "\2event=flood", 12, 1000));
	CHECK_OK(channel_send(fd, CTLMSG_BYE, NULL, 0, 1000));
	CHECK_OK(control_wait_bye(p.ctl, 2000));
	control_get_stats(p.ctl, &cs);
	CHECK(cs.log_lines >= 5 && cs.log_lines <= 8);
	CHECK(cs.log_dropped >= 42);
	CHECK(cs.malformed == 4);
	close(fd);
	parent_stop(&p);
}

/* The egress bridge against the real proxy. */
struct pxrun {
	struct proxy *px;
	int lfd, stop[2];
	pthread_t t;
};

static void *px_main(void *arg)
{
	struct pxrun *r = arg;
	if (proxy_serve(r->px, r->lfd, r->stop[0]) != 0)
		fprintf(stderr, "proxy_serve failed\n");
	return NULL;
}

static int tcp_to(uint16_t port)
{
	struct channel_addr a;
	char t[64];
	int fd = -1;
	snprintf(t, sizeof t, "tcp:127.0.0.1:%u", port);
	if (channel_addr_parse(&a, t) != 0 || channel_connect(&a, 2000, &fd) != 0)
		return -1;
	return fd;
}

static void test_bridge(void)
{
	char addr[160];
	struct pxrun r;
	struct proxy_config pc;
	struct channel_addr a, la;
	struct egress_opts eo;
	struct egress *eg = NULL;
	struct egress_stats es;
	uint16_t up = 0, denied = 0, sp = 0;
	uint32_t lport = 0;
	int lfd = -1;
	snprintf(addr, sizeof addr, "unix:%s/egress.sock", root);
	proxy_config_default(&pc);
	pc.allow_private = 1;
	CHECK_OK(channel_addr_parse(&la, "tcp:127.0.0.1:0"));
	CHECK_OK(channel_listen(&la, 8, &lfd));
	CHECK_OK(channel_bound_port(lfd, &lport));
	char rule[64];
	snprintf(rule, sizeof rule, "localhost:%u", lport);
	CHECK_OK(proxy_rule_parse(&pc.rules[pc.nrules++], rule));
	CHECK_OK(proxy_new(&r.px, &pc));
	CHECK_OK(channel_addr_parse(&a, addr));
	CHECK_OK(channel_listen(&a, 16, &r.lfd));
	CHECK(pipe(r.stop) == 0);
	pthread_create(&r.t, NULL, px_main, &r);
	egress_opts_default(&eo);
	eo.parent = addr;
	eo.handshake_timeout_ms = 2000;
	CHECK_OK(egress_new(&eg, &eo));
	CHECK_OK(egress_add_upstream(eg, "localhost", (uint16_t)lport, &up));
	uint16_t again = 0;
	CHECK_OK(egress_add_upstream(eg, "localhost", (uint16_t)lport, &again));
	CHECK(again == up);
	CHECK_OK(egress_add_upstream(eg, "example.com", 443, &denied));
	CHECK_OK(egress_add_socks(eg, &sp));
	char ct[64];
	CHECK_OK(egress_connect_to(eg, "wss://relay.example.com", ct, sizeof ct));
	CHECK(!strncmp(ct, "127.0.0.1:", 10));
	CHECK_ERR(egress_connect_to(eg, "http://x", ct, sizeof ct), APP_EINVAL);
	CHECK_OK(egress_start(eg));
	/* allowed: bytes both ways, EOF passed on */
	int c = tcp_to(up), s = -1;
	CHECK(c >= 0);
	CHECK_OK(channel_write_full(c, "hello", 5, 1000));
	CHECK_OK(channel_accept(lfd, &s));
	char b[8];
	CHECK_OK(channel_read_full(s, b, 5, 2000));
	CHECK(!memcmp(b, "hello", 5));
	CHECK_OK(channel_write_full(s, "world", 5, 1000));
	CHECK_OK(channel_read_full(c, b, 5, 2000));
	CHECK(!memcmp(b, "world", 5));
	shutdown(c, SHUT_WR);
	CHECK_ERR(channel_read_full(s, b, 1, 2000), APP_ECONN);
	close(s);
	close(c);
	/* denied upstream: the local connection is closed */
	c = tcp_to(denied);
	CHECK(c >= 0);
	CHECK_ERR(channel_read_full(c, b, 1, 3000), APP_ECONN);
	close(c);
	/* passthrough: the client sees the parent's real reply */
	c = tcp_to(sp);
	uint8_t req[SOCKS5_CONNECT_MAX], rep[12];
	size_t n = 0;
	CHECK_OK(socks5_encode_connect(req, sizeof req, &n, "example.com", 443));
	CHECK_OK(channel_write_full(c, req, n, 1000));
	CHECK_OK(channel_read_full(c, rep, 12, 2000));
	CHECK(rep[1] == 0 && rep[3] == SOCKS5_REP_NOT_ALLOWED);
	close(c);
	sleep_ms(100);
	egress_get_stats(eg, &es);
	CHECK(es.refused == 1 && es.accepted == 3 && es.bytes_up >= 5);
	egress_free(eg);
	eg = NULL;
	CHECK(write(r.stop[1], "x", 1) == 1);
	pthread_join(r.t, NULL);
	close(r.lfd);
	proxy_free(r.px);

	/* a lying parent: answers garbage instead of a SOCKS5 reply */
	char addr2[160];
	struct channel_addr a2;
	int plfd = -1;
	snprintf(addr2, sizeof addr2, "unix:%s/liar.sock", root);
	CHECK_OK(channel_addr_parse(&a2, addr2));
	CHECK_OK(channel_listen(&a2, 4, &plfd));
	eo.parent = addr2;
	CHECK_OK(egress_new(&eg, &eo));
	CHECK_OK(egress_add_upstream(eg, "relay.example.com", 443, &up));
	CHECK_OK(egress_start(eg));
	c = tcp_to(up);
	int pc_fd = -1;
	CHECK_OK(channel_accept(plfd, &pc_fd));
	uint8_t got[64];
	CHECK_OK(channel_read_full(pc_fd, got, 3, 2000)); /* the greeting */
	CHECK_OK(channel_write_full(pc_fd, "\5\0\4\1\0\1", 6, 1000)); /* VER=4 reply */
	CHECK_ERR(channel_read_full(c, b, 1, 3000), APP_ECONN);
	close(c);
	close(pc_fd);
	sleep_ms(50);
	egress_get_stats(eg, &es);
	CHECK(es.malformed == 1);
	/* a parent that never answers: handshake timeout */
	c = tcp_to(up);
	CHECK_OK(channel_accept(plfd, &pc_fd));
	CHECK_ERR(channel_read_full(c, b, 1, 4000), APP_ECONN);
	egress_get_stats(eg, &es);
	CHECK(es.timeouts == 1);
	close(c);
	close(pc_fd);
	egress_free(eg);
	close(plfd);
	close(lfd);
}

static void test_proxy_caps(void)
{
	char addr[160];
	struct pxrun r;
	struct proxy_config pc;
	struct proxy_stats st;
	struct channel_addr a, la;
	uint32_t lport = 0;
	int lfd = -1;
	snprintf(addr, sizeof addr, "unix:%s/caps.sock", root);
	proxy_config_default(&pc);
	pc.allow_private = 1;
	pc.max_connections = 1;
	pc.max_bytes = 1000;
	pc.buf_size = 4096;
	CHECK_OK(proxy_rule_parse(&pc.rules[pc.nrules++], "127.0.0.1:*"));
	CHECK_OK(channel_addr_parse(&la, "tcp:127.0.0.1:0"));
	CHECK_OK(channel_listen(&la, 8, &lfd));
	CHECK_OK(channel_bound_port(lfd, &lport));
	CHECK_OK(proxy_new(&r.px, &pc));
	CHECK_OK(channel_addr_parse(&a, addr));
	CHECK_OK(channel_listen(&a, 16, &r.lfd));
	CHECK(pipe(r.stop) == 0);
	pthread_create(&r.t, NULL, px_main, &r);
	int c1 = -1, c2 = -1, s1 = -1;
	uint8_t req[SOCKS5_CONNECT_MAX], rep[12], b;
	size_t n = 0;
	CHECK_OK(socks5_encode_connect(req, sizeof req, &n, "127.0.0.1", (uint16_t)lport));
	CHECK_OK(channel_connect(&a, 1000, &c1));
	CHECK_OK(channel_write_full(c1, req, n, 1000));
	CHECK_OK(channel_read_full(c1, rep, 12, 2000));
	CHECK(rep[3] == SOCKS5_REP_SUCCEEDED);
	CHECK_OK(channel_accept(lfd, &s1));
	/* a second connection while the first is open: closed at accept (max_connections = 1) */
	CHECK_OK(channel_connect(&a, 1000, &c2));
	CHECK_ERR(channel_read_full(c2, &b, 1, 2000), APP_ECONN);
	close(c2);
	/* more than max_bytes in one direction: the connection is closed */
	uint8_t junk[3000] = {0};
	int w = channel_write_full(c1, junk, sizeof junk, 2000);
	(void)w; /* may fail once the proxy closed */
	uint8_t sink[4096];
	size_t got = 0;
	while (got < sizeof sink && channel_read_full(s1, sink + got, 1, 2000) == 0)
		got++;
	CHECK(got <= 1000 + 4096); /* at most the cap plus what was in flight */
	CHECK_ERR(channel_read_full(c1, &b, 1, 2000), APP_ECONN);
	close(c1);
	close(s1);
	sleep_ms(50);
	proxy_get_stats(r.px, &st);
	CHECK(st.busy == 1 && st.capped == 1 && st.allowed == 1);
	CHECK(write(r.stop[1], "x", 1) == 1);
	pthread_join(r.t, NULL);
	close(r.lfd);
	close(r.stop[0]);
	close(r.stop[1]);
	proxy_free(r.px);
	close(lfd);
}

static void test_log_cap(void)
{
	char addr[160], bdir[128];
	struct channel_addr a;
	struct control *ctl = NULL;
	struct control_config cc;
	struct control_stats cs;
	int lfd = -1, stop[2], fd = -1;
	pthread_t t;
	snprintf(addr, sizeof addr, "unix:%s/logcap.sock", root);
	snprintf(bdir, sizeof bdir, "%s/b2", root);
	control_config_default(&cc);
	cc.log_line_max = 16;
	CHECK_OK(control_new(&ctl, &cc, NULL));
	CHECK_OK(channel_addr_parse(&a, addr));
	CHECK_OK(channel_listen(&a, 4, &lfd));
	CHECK(pipe(stop) == 0);
	struct parent p = {.ctl = ctl, .lfd = lfd, .stop = {stop[0], stop[1]}};
	pthread_create(&t, NULL, serve_main, &p);
	CHECK_OK(channel_connect(&a, 1000, &fd));
	CHECK_OK(channel_send(fd, CTLMSG_HELLO, "\1\1z", 3, 1000));
	uint8_t ty = 0, *pl = NULL;
	size_t pn = 0;
	CHECK_OK(channel_recv(fd, &ty, &pl, &pn, 64, 2000));
	free(pl);
	static const char longline[] = "\2event=a-very-long-line-that-is-cut";
	CHECK_OK(channel_send(fd, CTLMSG_LOG, longline, sizeof longline - 1, 1000));
	/* no blob store configured: requests are answered with status IO, never a crash */
	CHECK_OK(channel_send(fd, CTLMSG_GET, "\0\0\0\7\1x", 6, 1000));
	CHECK_OK(channel_recv(fd, &ty, &pl, &pn, 64, 2000));
	CHECK(ty == CTLMSG_RESULT && pn == 5 && pl[4] == CTLMSG_S_IO);
	free(pl);
	control_get_stats(ctl, &cs);
	CHECK(cs.log_lines == 1 && cs.log_truncated == 1);
	close(fd);
	CHECK(write(stop[1], "x", 1) == 1);
	pthread_join(t, NULL);
	close(lfd);
	close(stop[0]);
	close(stop[1]);
	control_free(ctl);
	(void)bdir;
}

int main(void)
{
	log_set_level(LOG_ERROR);
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_config);
	RUN(test_measure);
	RUN(test_nitro_args);
	RUN(test_control_link);
	RUN(test_control_abuse);
	RUN(test_bridge);
	RUN(test_proxy_caps);
	RUN(test_log_cap);
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup failed\n");
	return test_summary();
}
