#include "nsm_emu.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "appliance/hash.h"
#include "appliance/hex.h"
#include "appliance/keys.h"
#include "appliance/log.h"
#include "devca.h"

struct nsm_emu {
	pthread_mutex_t lock;
	struct devca *ca;
	uint8_t pcr[NSM_PCR_COUNT][NSM_PCR_LEN];
	uint32_t locked;
	char instance_id[32];
	char module_id[64];
	int indefinite_map;
	uint64_t (*clock_ms)(void *arg);
	void *clock_arg;
};

void nsm_emu_measure(uint8_t out[NSM_PCR_LEN], const uint8_t *bytes, size_t len)
{
	uint8_t buf[2 * NSM_PCR_LEN] = {0};
	hash_sha384(buf + NSM_PCR_LEN, bytes, len);
	hash_sha384(out, buf, sizeof buf);
}

/* extend_digest: SHA384(0^48 || digest): the final "tpm extend" of an EIF measurement. */
static void extend_digest(uint8_t out[NSM_PCR_LEN], const uint8_t digest[NSM_PCR_LEN])
{
	uint8_t buf[2 * NSM_PCR_LEN] = {0};
	memcpy(buf + NSM_PCR_LEN, digest, NSM_PCR_LEN);
	hash_sha384(out, buf, sizeof buf);
}

static void set_image_pcrs(struct nsm_emu_config *cfg, const uint8_t image_digest[NSM_PCR_LEN])
{
	extend_digest(cfg->pcr[0], image_digest);
	nsm_emu_measure(cfg->pcr[1], NULL, 0);
	extend_digest(cfg->pcr[2], image_digest);
	cfg->pcr_set |= 0x7u;
}

void nsm_emu_measure_bytes(struct nsm_emu_config *cfg, const uint8_t *bytes, size_t len)
{
	uint8_t d[NSM_PCR_LEN];
	hash_sha384(d, bytes, len);
	set_image_pcrs(cfg, d);
}

int nsm_emu_measure_file(struct nsm_emu_config *cfg, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? APP_ENOENT : APP_EIO;
	int r = APP_EIO;
	EVP_MD_CTX *md = NULL;
	uint8_t *chunk = NULL;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		goto out;
	if ((uint64_t)st.st_size > NSM_EMU_IMAGE_MAX) {
		r = APP_ETOOBIG;
		goto out;
	}
	r = APP_ENOMEM;
	if (!(chunk = malloc(1 << 16)) || !(md = EVP_MD_CTX_new()))
		goto out;
	r = APP_EINTERNAL;
	if (EVP_DigestInit_ex(md, EVP_sha384(), NULL) != 1)
		goto out;
	for (;;) {
		ssize_t n = read(fd, chunk, 1 << 16);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = APP_EIO;
			goto out;
		}
		if (n == 0)
			break;
		if (EVP_DigestUpdate(md, chunk, (size_t)n) != 1)
			goto out;
	}
	uint8_t d[NSM_PCR_LEN];
	unsigned dl = 0;
	if (EVP_DigestFinal_ex(md, d, &dl) != 1 || dl != NSM_PCR_LEN)
		goto out;
	set_image_pcrs(cfg, d);
	r = 0;
out:
	EVP_MD_CTX_free(md);
	free(chunk);
	close(fd);
	return r;
}

static uint64_t now_ms(const struct nsm_emu *e)
{
	if (e->clock_ms)
		return e->clock_ms(e->clock_arg);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int nsm_emu_new(struct nsm_emu **out, struct devca *ca, const struct nsm_emu_config *cfg)
{
	*out = NULL;
	if (!ca || !cfg || (cfg->pcr_set & 0x7u) != 0x7u)
		return APP_EINVAL;
	struct nsm_emu *e = calloc(1, sizeof *e);
	if (!e)
		return APP_ENOMEM;
	pthread_mutex_init(&e->lock, NULL);
	e->ca = ca;
	e->indefinite_map = cfg->indefinite_map;
	e->clock_ms = cfg->clock_ms;
	e->clock_arg = cfg->clock_arg;
	if (cfg->instance_id[0]) {
		size_t n = strnlen(cfg->instance_id, sizeof cfg->instance_id);
		int ok = n >= 3 && n < sizeof cfg->instance_id && strncmp(cfg->instance_id, "i-", 2) == 0;
		for (size_t i = 2; ok && i < n; i++) {
			char c = cfg->instance_id[i];
			ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
		}
		if (!ok) {
			nsm_emu_free(e);
			return APP_EINVAL;
		}
		memcpy(e->instance_id, cfg->instance_id, n + 1);
	} else {
		uint8_t r[9];
		char h[19];
		keys_random(r, sizeof r);
		hex_encode(h, r, sizeof r);
		snprintf(e->instance_id, sizeof e->instance_id, "i-%.17s", h);
	}
	/* enclave id: 6 bytes of creation time in ms, 2 random bytes (as AWS's "enc" ids). */
	uint64_t t = now_ms(e);
	uint8_t enc[8] = {(uint8_t)(t >> 40), (uint8_t)(t >> 32), (uint8_t)(t >> 24), (uint8_t)(t >> 16),
			  (uint8_t)(t >> 8), (uint8_t)t};
	keys_random(enc + 6, 2);
	char ench[17];
	hex_encode(ench, enc, sizeof enc);
	snprintf(e->module_id, sizeof e->module_id, "%s-enc%s", e->instance_id, ench);
	for (int i = 0; i < NSM_EMU_LOCKED_AT_START; i++)
		if ((cfg->pcr_set >> i) & 1u)
			memcpy(e->pcr[i], cfg->pcr[i], NSM_PCR_LEN);
	if (!((cfg->pcr_set >> 4) & 1u)) {
		/* As on EC2: one extend of a zero PCR with the ASCII instance id itself (not its digest). */
		uint8_t buf[NSM_PCR_LEN + sizeof e->instance_id] = {0};
		size_t n = strlen(e->instance_id);
		memcpy(buf + NSM_PCR_LEN, e->instance_id, n);
		hash_sha384(e->pcr[4], buf, NSM_PCR_LEN + n);
	}
	e->locked = (1u << NSM_EMU_LOCKED_AT_START) - 1;
	*out = e;
	return 0;
}

void nsm_emu_free(struct nsm_emu *e)
{
	if (!e)
		return;
	pthread_mutex_destroy(&e->lock);
	free(e);
}

const char *nsm_emu_module_id(const struct nsm_emu *e)
{
	return e->module_id;
}

/* attest: the Attestation answer (lock held). */
static enum nsm_status attest(struct nsm_emu *e, struct nsm_response *resp, const struct nsm_request *req)
{
	if (req->user_data_len > NSM_FIELD_MAX || req->nonce_len > NSM_FIELD_MAX ||
	    req->public_key_len > NSM_FIELD_MAX)
		return NSM_INPUT_TOO_LARGE;
	if (req->public_key && req->public_key_len == 0)
		return NSM_INVALID_ARGUMENT; /* public_key is 1..1024 bytes when present */
	uint64_t ms = now_ms(e);
	struct devca_leaf *leaf = NULL;
	if (devca_issue_leaf(e->ca, &leaf, e->instance_id, e->module_id, ms / 1000) != 0)
		return NSM_INTERNAL_ERROR;
	struct devca_doc doc = {
		.module_id = e->module_id,
		.digest = "SHA384",
		.timestamp_ms = ms,
		.pcr_mask = 0xffffu | (e->locked & 0xffff0000u),
		.pcrs = (const uint8_t(*)[48])e->pcr,
		.public_key = req->public_key,
		.public_key_len = req->public_key_len,
		.user_data = req->user_data,
		.user_data_len = req->user_data_len,
		.nonce = req->nonce,
		.nonce_len = req->nonce_len,
		.indefinite_map = e->indefinite_map,
	};
	int r = devca_attest(leaf, &resp->document, &resp->document_len, &doc);
	devca_leaf_free(leaf);
	return r == 0 ? NSM_SUCCESS : NSM_INTERNAL_ERROR;
}

/* handle: the answer to a decoded request (lock held). */
static enum nsm_status handle(struct nsm_emu *e, struct nsm_response *resp, const struct nsm_request *req)
{
	resp->type = req->type;
	switch (req->type) {
	case NSM_REQ_DESCRIBE_PCR:
		if (req->index >= NSM_PCR_COUNT)
			return NSM_INVALID_INDEX;
		resp->lock = (e->locked >> req->index) & 1u;
		memcpy(resp->pcr, e->pcr[req->index], NSM_PCR_LEN);
		resp->pcr_len = NSM_PCR_LEN;
		return NSM_SUCCESS;
	case NSM_REQ_EXTEND_PCR: {
		if (req->index >= NSM_PCR_COUNT)
			return NSM_INVALID_INDEX;
		if ((e->locked >> req->index) & 1u)
			return NSM_READ_ONLY_INDEX;
		size_t n = NSM_PCR_LEN + req->data_len;
		uint8_t *buf = malloc(n);
		if (!buf)
			return NSM_INTERNAL_ERROR;
		memcpy(buf, e->pcr[req->index], NSM_PCR_LEN);
		if (req->data_len)
			memcpy(buf + NSM_PCR_LEN, req->data, req->data_len);
		hash_sha384(e->pcr[req->index], buf, n);
		free(buf);
		memcpy(resp->pcr, e->pcr[req->index], NSM_PCR_LEN);
		resp->pcr_len = NSM_PCR_LEN;
		return NSM_SUCCESS;
	}
	case NSM_REQ_LOCK_PCR:
		if (req->index >= NSM_PCR_COUNT)
			return NSM_INVALID_INDEX;
		if (req->index < NSM_EMU_LOCKED_AT_START)
			return NSM_READ_ONLY_INDEX;
		e->locked |= 1u << req->index;
		return NSM_SUCCESS;
	case NSM_REQ_LOCK_PCRS:
		if (req->range > NSM_PCR_COUNT)
			return NSM_INVALID_INDEX;
		e->locked |= req->range == NSM_PCR_COUNT ? 0xffffffffu : (1u << req->range) - 1;
		return NSM_SUCCESS;
	case NSM_REQ_DESCRIBE_NSM:
		resp->version_major = 1;
		resp->version_minor = 0;
		resp->version_patch = 0;
		snprintf(resp->module_id, sizeof resp->module_id, "%s", e->module_id);
		resp->max_pcrs = NSM_PCR_COUNT;
		resp->locked_pcrs = e->locked;
		resp->digest = NSM_DIGEST_SHA384;
		return NSM_SUCCESS;
	case NSM_REQ_ATTESTATION:
		return attest(e, resp, req);
	case NSM_REQ_GET_RANDOM:
		if (!(resp->random = malloc(NSM_EMU_RANDOM_LEN)))
			return NSM_INTERNAL_ERROR;
		keys_random(resp->random, NSM_EMU_RANDOM_LEN);
		resp->random_len = NSM_EMU_RANDOM_LEN;
		return NSM_SUCCESS;
	default:
		return NSM_INVALID_OPERATION;
	}
}

static int answer_error(uint8_t *out, size_t *len, enum nsm_status st)
{
	struct nsm_response er = {.type = NSM_REQ_NONE, .status = st};
	size_t cap = *len;
	return nsm_response_encode(out, cap, len, &er);
}

int nsm_emu_process(struct nsm_emu *e, uint8_t *resp, size_t *resp_len, const uint8_t *req, size_t req_len)
{
	struct nsm_request rq;
	struct nsm_response rs;
	enum nsm_status st;
	size_t cap = *resp_len;
	memset(&rs, 0, sizeof rs);
	if (cap < NSM_RESPONSE_MAX)
		return APP_EINVAL;
	if (req_len > NSM_REQUEST_MAX)
		return answer_error(resp, resp_len, NSM_INPUT_TOO_LARGE);
	int r = nsm_request_decode(&rq, req, req_len);
	if (r != 0) {
		st = r == APP_EUNSUPPORTED ? NSM_INVALID_OPERATION
		     : r == APP_ENOMEM     ? NSM_INTERNAL_ERROR
					   : NSM_INVALID_ARGUMENT;
		return answer_error(resp, resp_len, st);
	}
	pthread_mutex_lock(&e->lock);
	st = handle(e, &rs, &rq);
	pthread_mutex_unlock(&e->lock);
	log_debug("event=nsm_request request=%s status=%s", nsm_request_name(rq.type), nsm_status_name(st));
	nsm_request_clear(&rq);
	if (st == NSM_SUCCESS) {
		r = nsm_response_encode(resp, cap, resp_len, &rs);
		if (r != 0) {
			*resp_len = cap;
			r = answer_error(resp, resp_len, NSM_INTERNAL_ERROR);
		}
	} else {
		r = answer_error(resp, resp_len, st);
	}
	nsm_response_clear(&rs);
	return r;
}

int nsm_emu_transport(void *emu, uint8_t *resp, size_t *resp_len, const uint8_t *req, size_t req_len)
{
	return nsm_emu_process(emu, resp, resp_len, req, req_len);
}

int nsm_emu_listen(const char *path, int *fd)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct stat st;
	*fd = -1;
	if (!path || !*path || strlen(path) >= sizeof a.sun_path)
		return APP_EINVAL;
	memcpy(a.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return APP_EEXIST;
		if (unlink(path) != 0)
			return APP_EIO;
	}
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return APP_EIO;
	/* chmod before listen(): nobody can connect in between. */
	if (bind(s, (const struct sockaddr *)&a, sizeof a) != 0 || chmod(path, 0600) != 0 || listen(s, 16) != 0) {
		close(s);
		return APP_EIO;
	}
	*fd = s;
	return 0;
}

/* serve_one: reads and answers one frame; 0 to keep the connection, -1 to drop it. */
static int serve_one(struct nsm_emu *e, int fd, uint8_t *req, uint8_t *resp)
{
	size_t len = 0, rlen = NSM_RESPONSE_MAX;
	int r = nsm_frame_read(fd, req, NSM_REQUEST_MAX, &len);
	if (r == APP_ETOOBIG || r == APP_EPROTO) {
		enum nsm_status st = r == APP_ETOOBIG ? NSM_INPUT_TOO_LARGE : NSM_INVALID_ARGUMENT;
		log_info("event=nsm_emu_bad_frame fd=%d status=%s", fd, nsm_status_name(st));
		if (answer_error(resp, &rlen, st) == 0 && nsm_frame_write(fd, resp, rlen) == 0 && r == APP_EPROTO)
			return 0; /* a zero-length frame leaves the stream aligned */
		return -1;
	}
	if (r != 0)
		return -1;
	if (nsm_emu_process(e, resp, &rlen, req, len) != 0 || nsm_frame_write(fd, resp, rlen) != 0)
		return -1;
	return 0;
}

int nsm_emu_serve(struct nsm_emu *e, int listen_fd, int stop_fd)
{
	int clients[NSM_EMU_MAX_CLIENTS];
	size_t n = 0;
	int r = APP_ENOMEM;
	uint8_t *req = malloc(NSM_REQUEST_MAX), *resp = malloc(NSM_RESPONSE_MAX);
	if (!req || !resp)
		goto out;
	for (;;) {
		struct pollfd pfd[2 + NSM_EMU_MAX_CLIENTS];
		pfd[0] = (struct pollfd){.fd = stop_fd, .events = POLLIN};
		pfd[1] = (struct pollfd){.fd = n < NSM_EMU_MAX_CLIENTS ? listen_fd : -1, .events = POLLIN};
		for (size_t i = 0; i < n; i++)
			pfd[2 + i] = (struct pollfd){.fd = clients[i], .events = POLLIN};
		int k = poll(pfd, 2 + n, -1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = APP_EIO;
			goto out;
		}
		if (pfd[0].revents) {
			r = 0;
			goto out;
		}
		/* Clients first (their indices are stable until compaction below). */
		for (size_t i = 0; i < n; i++) {
			if (!pfd[2 + i].revents)
				continue;
			if (serve_one(e, clients[i], req, resp) != 0) {
				log_debug("event=nsm_emu_disconnect fd=%d", clients[i]);
				close(clients[i]);
				clients[i] = -1;
			}
		}
		size_t m = 0;
		for (size_t i = 0; i < n; i++)
			if (clients[i] >= 0)
				clients[m++] = clients[i];
		n = m;
		if (pfd[1].fd >= 0 && (pfd[1].revents & POLLIN)) {
			int c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
			if (c < 0) {
				if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
					continue;
				r = APP_EIO;
				goto out;
			}
			struct timeval tv = {.tv_sec = NSM_IO_TIMEOUT_MS / 1000};
			if (setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
			    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
				close(c);
				continue;
			}
			log_debug("event=nsm_emu_connect fd=%d", c);
			clients[n++] = c;
		}
	}
out:
	for (size_t i = 0; i < n; i++)
		close(clients[i]);
	free(req);
	free(resp);
	return r;
}
