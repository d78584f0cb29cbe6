/*
 * ksclient_test: the keystore client's contract without a keystore
 * (enclave/runtime/ksclient.h, enclave/runtime/ksset.h): argument checks, and that an
 * unreachable relay or keystore is never taken for a "not found": calls
 * end with APP_ECONN / APP_ETIMEOUT within their timeout, get answers
 * KSCLIENT_NO_ANSWER, and the sealed journal over the real client waits,
 * retries and gives up without making a key. The NSM is the emulator on a
 * unix socket served by a thread. (Against the real relay and keystore:
 * tests/integration/keystore_*.sh.)
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "appliance/keys.h"
#include "appliance/ksrpc.h"
#include "appliance/log.h"
#include "appliance/nsm.h"
#include "enclave/runtime/ksclient.h"
#include "enclave/runtime/ksset.h"
#include "enclave/runtime/sjournal.h"
#include "parent/devca.h"
#include "parent/nsm_emu.h"
#include "tests/unit/test.h"

static char g_url[64];
static char g_dir[200];
static char g_sock[260];

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
	int port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct emu_thread {
	struct nsm_emu *emu;
	struct devca *ca;
	int lfd, stop[2];
	pthread_t th;
};

static void *serve(void *arg)
{
	struct emu_thread *t = arg;
	if (nsm_emu_serve(t->emu, t->lfd, t->stop[0]) != 0)
		fprintf(stderr, "nsm_emu_serve failed\n");
	return NULL;
}

static void emu_start(struct emu_thread *t)
{
	struct nsm_emu_config cfg;
	memset(t, 0, sizeof *t);
	memset(&cfg, 0, sizeof cfg);
	nsm_emu_measure_bytes(&cfg, (const uint8_t *)"enclave", 7);
	CHECK_OK(devca_new_ephemeral(&t->ca, 0));
	CHECK_OK(nsm_emu_new(&t->emu, t->ca, &cfg));
	CHECK_OK(nsm_emu_listen(g_sock, &t->lfd));
	CHECK(pipe(t->stop) == 0);
	CHECK(pthread_create(&t->th, NULL, serve, t) == 0);
}

static void emu_stop(struct emu_thread *t)
{
	CHECK(write(t->stop[1], "x", 1) == 1);
	pthread_join(t->th, NULL);
	close(t->stop[0]);
	close(t->stop[1]);
	close(t->lfd);
	nsm_emu_free(t->emu);
	devca_free(t->ca);
}

static void test_args(void)
{
	struct ksclient *c = NULL;
	const char *bad[] = {"http://127.0.0.1:1"};
	struct ksclient_opts o = {NULL, 0, NULL, NULL, 0, NULL};
	CHECK_ERR(ksclient_new(&c, &o), APP_EINVAL);
	o.relays = bad;
	o.nrelays = 1;
	CHECK_ERR(ksclient_new(&c, &o), APP_EINVAL);
	CHECK(c == NULL);
	const char *many[KSCLIENT_RELAYS_MAX + 1];
	for (size_t i = 0; i <= KSCLIENT_RELAYS_MAX; i++)
		many[i] = g_url;
	o.relays = many;
	o.nrelays = KSCLIENT_RELAYS_MAX + 1;
	CHECK_ERR(ksclient_new(&c, &o), APP_EINVAL);
	struct ksset *k = NULL;
	struct ksset_opts ko;
	memset(&ko, 0, sizeof ko);
	CHECK_ERR(ksset_new(&k, &ko), APP_EINVAL); /* no keystore, no NSM */
}

static void test_unreachable(void)
{
	struct ksclient *c = NULL;
	const char *relays[] = {g_url};
	struct ksclient_opts o = {relays, 1, NULL, NULL, 1500, NULL};
	uint8_t ks[32];
	struct keypair *kp = NULL;
	CHECK_OK(keys_generate(&kp));
	keys_pubkey(kp, ks);
	keys_free(kp);
	CHECK_OK(ksclient_new(&c, &o));
	if (!c)
		return;
	struct ksrpc_request *req = NULL;
	struct ksrpc_reply *rep = NULL;
	CHECK_OK(ksrpc_request_new(&req));
	req->method = KSRPC_STATUS;
	double t0 = now_s();
	int r = ksclient_call(c, &rep, ks, req, 1500);
	double dt = now_s() - t0;
	CHECKM(r == APP_ECONN || r == APP_ETIMEOUT, "status on a dead relay: %d", r);
	CHECKM(dt < 4.0, "took %.1f s", dt);
	CHECK(rep == NULL);
	/* get without an NSM cannot attest */
	req->method = KSRPC_GET;
	CHECK_ERR(ksclient_call(c, &rep, ks, req, 100), APP_EINVAL);
	ksrpc_request_free(req);
	ksclient_free(c);
}

static void test_get_is_no_answer(void)
{
	struct emu_thread emu;
	struct nsm *nsm = NULL;
	struct ksclient *c = NULL;
	const char *relays[] = {g_url};
	uint8_t ks[32], data[KSRPC_DATA_MAX];
	size_t len = 0;
	uint64_t epoch = 0;
	char why[KSRPC_REASON_MAX + 1];
	enum ksclient_answer ans = KSCLIENT_FOUND;
	emu_start(&emu);
	char spec[300];
	snprintf(spec, sizeof spec, "unix:%s", g_sock);
	CHECK_OK(nsm_open_spec(&nsm, spec));
	struct ksclient_opts o = {relays, 1, NULL, nsm, 1000, NULL};
	CHECK_OK(ksclient_new(&c, &o));
	struct keypair *kp = NULL;
	CHECK_OK(keys_generate(&kp));
	keys_pubkey(kp, ks);
	keys_free(kp);
	CHECK_OK(ksclient_get(c, &ans, data, &len, &epoch, why, sizeof why, ks, NULL, 0, 1000));
	CHECK(ans == KSCLIENT_NO_ANSWER && len == 0);
	CHECK_OK(ksclient_set(c, &ans, why, sizeof why, ks, (const uint8_t *)"x", 1, 0, NULL, 1000));
	CHECK(ans == KSCLIENT_NO_ANSWER);
	ksclient_free(c);
	nsm_close(nsm);

	/* the sealed journal over the real client: waits, retries, then gives up; no key, nothing stored */
	struct ksset *k = NULL;
	struct ksset_opts ko;
	memset(&ko, 0, sizeof ko);
	ko.relays = relays;
	ko.nrelays = 1;
	ko.nsm = spec;
	ko.pubkeys = (const uint8_t(*)[32])ks;
	ko.npubkeys = 1;
	ko.timeout_ms = 500;
	CHECK_OK(ksset_new(&k, &ko));
	struct sj_store *st = NULL;
	char dir[260];
	snprintf(dir, sizeof dir, "%s/store", g_dir);
	CHECK_OK(sj_store_dir_open(&st, dir));
	struct sjournal_opts so;
	memset(&so, 0, sizeof so);
	so.store = st;
	so.ks = ksset_ops();
	so.ks_arg = k;
	so.retry_min_ms = 100;
	so.retry_max_ms = 200;
	so.start_timeout_s = 2;
	struct sjournal *sj = NULL;
	struct sjournal_info info;
	char err[SJ_ERR_MAX];
	memset(&info, 0, sizeof info);
	CHECK_ERR(sjournal_open(&sj, &info, err, sizeof err, &so), APP_ETIMEOUT);
	CHECK(strstr(err, "not making a new key") != NULL);
	CHECK(info.rounds == 0); /* info is only filled on success */
	CHECK(rmdir(dir) == 0); /* still empty: nothing was written */
	sj_store_close(st);
	ksset_free(k);
	emu_stop(&emu);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	snprintf(g_url, sizeof g_url, "ws://127.0.0.1:%d", closed_port());
	const char *t = getenv("TMPDIR");
	snprintf(g_dir, sizeof g_dir, "%s/ksclient_test.XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(g_dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(g_sock, sizeof g_sock, "%s/nsm.sock", g_dir);
	RUN(test_args);
	RUN(test_unreachable);
	RUN(test_get_is_no_answer);
	(void)unlink(g_sock);
	(void)rmdir(g_dir);
	return test_summary();
}
