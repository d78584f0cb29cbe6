#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <secp256k1_ecdh.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hex.h"
#include "log.h"
#include "nip19.h"

struct keypair {
	secp256k1_keypair kp;
	uint8_t sec[32];
	uint8_t pub[32];
};

static secp256k1_context *g_ctx;
static pthread_once_t g_ctx_once = PTHREAD_ONCE_INIT;

static void ctx_init(void)
{
	if (sodium_init() < 0)
		fatal("event=keys_init error=sodium_init_failed");
	g_ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
	if (!g_ctx)
		fatal("event=keys_init error=secp256k1_context_create_failed");
	uint8_t seed[32];
	randombytes_buf(seed, sizeof seed);
	if (!secp256k1_context_randomize(g_ctx, seed))
		fatal("event=keys_init error=secp256k1_context_randomize_failed");
	sodium_memzero(seed, sizeof seed);
}

const secp256k1_context *keys_ctx(void)
{
	pthread_once(&g_ctx_once, ctx_init);
	return g_ctx;
}

void keys_random(void *buf, size_t len)
{
	keys_ctx(); /* ensures sodium_init */
	randombytes_buf(buf, len);
}

int keys_from_secret(struct keypair **out, const uint8_t sec[32])
{
	const secp256k1_context *ctx = keys_ctx();
	*out = NULL;
	if (!secp256k1_ec_seckey_verify(ctx, sec))
		return APP_EBADKEY;
	struct keypair *kp = sodium_malloc(sizeof *kp);
	if (!kp)
		return APP_ENOMEM;
	secp256k1_xonly_pubkey xpub;
	if (!secp256k1_keypair_create(ctx, &kp->kp, sec) ||
	    !secp256k1_keypair_xonly_pub(ctx, &xpub, NULL, &kp->kp) ||
	    !secp256k1_xonly_pubkey_serialize(ctx, kp->pub, &xpub)) {
		sodium_free(kp);
		return APP_EBADKEY;
	}
	memcpy(kp->sec, sec, 32);
	*out = kp;
	return 0;
}

int keys_generate(struct keypair **out)
{
	uint8_t sec[32];
	int r;
	do {
		keys_random(sec, sizeof sec);
		r = keys_from_secret(out, sec);
	} while (r == APP_EBADKEY);
	sodium_memzero(sec, sizeof sec);
	return r;
}

int keys_parse_secret(struct keypair **out, const char *text, size_t len)
{
	*out = NULL;
	while (len > 0 && (text[0] == ' ' || text[0] == '\t' || text[0] == '\n' || text[0] == '\r')) {
		text++;
		len--;
	}
	while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\n' ||
			   text[len - 1] == '\r'))
		len--;
	uint8_t sec[32];
	int r;
	if (len == 64) {
		r = hex_decode(sec, sizeof sec, text, len, 0);
	} else if (len > 5 && memcmp(text, "nsec1", 5) == 0) {
		r = nip19_decode_bare(sec, "nsec", text, len);
	} else {
		r = APP_EPARSE;
	}
	if (r == 0)
		r = keys_from_secret(out, sec);
	sodium_memzero(sec, sizeof sec);
	return r;
}

int keys_load(struct keypair **out, const char *path)
{
	*out = NULL;
	if (!path) {
		const char *env = getenv(KEYS_ENV_SECRET);
		if (!env || !*env)
			return APP_ENOENT;
		return keys_parse_secret(out, env, strlen(env));
	}
	(void)keys_ctx(); /* initializes libsodium: sodium_malloc aborts before sodium_init */
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? APP_ENOENT : APP_EIO;
	char *buf = sodium_malloc(KEYS_FILE_MAX + 1);
	if (!buf) {
		close(fd);
		return APP_ENOMEM;
	}
	size_t len = 0;
	int r = 0;
	for (;;) {
		ssize_t n = read(fd, buf + len, KEYS_FILE_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = APP_EIO;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > KEYS_FILE_MAX) {
			r = APP_ETOOBIG;
			break;
		}
	}
	close(fd);
	if (r == 0)
		r = keys_parse_secret(out, buf, len);
	sodium_free(buf); /* wipes */
	return r;
}

void keys_pubkey(const struct keypair *kp, uint8_t pub[32])
{
	memcpy(pub, kp->pub, 32);
}

void keys_secret(const struct keypair *kp, uint8_t sec[32])
{
	memcpy(sec, kp->sec, 32);
}

void keys_free(struct keypair *kp)
{
	if (kp)
		sodium_free(kp); /* sodium_free wipes before unmapping */
}

int keys_sign_aux(const struct keypair *kp, uint8_t sig[64], const uint8_t *msg, size_t msglen,
		  const uint8_t aux32[32])
{
	const secp256k1_context *ctx = keys_ctx();
	secp256k1_schnorrsig_extraparams extra = SECP256K1_SCHNORRSIG_EXTRAPARAMS_INIT;
	extra.ndata = (unsigned char *)aux32;
	if (!secp256k1_schnorrsig_sign_custom(ctx, sig, msg, msglen, &kp->kp, &extra))
		return APP_EINTERNAL;
	/* Verify after signing: a fault must not leak a bad signature. */
	return keys_verify(kp->pub, sig, msg, msglen) == 0 ? 0 : APP_EINTERNAL;
}

int keys_sign(const struct keypair *kp, uint8_t sig[64], const uint8_t msg32[32])
{
	uint8_t aux[32];
	keys_random(aux, sizeof aux);
	int r = keys_sign_aux(kp, sig, msg32, 32, aux);
	sodium_memzero(aux, sizeof aux);
	return r;
}

/*
 * Parsing an x-only key costs a field square root (~10% of a verification).
 * Authors repeat in real traffic, so each thread keeps a small direct-mapped
 * cache of parsed keys. Public keys only: nothing secret is cached.
 */
#define PUBKEY_CACHE_SLOTS 4096
struct pubkey_cache_slot {
	uint8_t pub[32];
	secp256k1_xonly_pubkey parsed;
	int used;
};
static _Thread_local struct pubkey_cache_slot *t_pubkey_cache;
static pthread_key_t g_cache_key; /* its destructor frees a thread's cache when the thread exits */
static pthread_once_t g_cache_key_once = PTHREAD_ONCE_INIT;

static void cache_key_init(void)
{
	if (pthread_key_create(&g_cache_key, free) != 0)
		fatal("event=keys_init error=pthread_key_create_failed");
}

static int xonly_parse_cached(const secp256k1_context *ctx, secp256k1_xonly_pubkey *out, const uint8_t pub[32])
{
	if (!t_pubkey_cache) {
		pthread_once(&g_cache_key_once, cache_key_init);
		t_pubkey_cache = calloc(PUBKEY_CACHE_SLOTS, sizeof *t_pubkey_cache);
		if (t_pubkey_cache && pthread_setspecific(g_cache_key, t_pubkey_cache) != 0) {
			free(t_pubkey_cache);
			t_pubkey_cache = NULL;
		}
	}
	struct pubkey_cache_slot *slot = NULL;
	if (t_pubkey_cache) {
		unsigned h = ((unsigned)pub[0] | (unsigned)pub[1] << 8 | (unsigned)pub[31] << 16) % PUBKEY_CACHE_SLOTS;
		slot = &t_pubkey_cache[h];
		if (slot->used && memcmp(slot->pub, pub, 32) == 0) {
			*out = slot->parsed;
			return 1;
		}
	}
	if (!secp256k1_xonly_pubkey_parse(ctx, out, pub))
		return 0;
	if (slot) {
		memcpy(slot->pub, pub, 32);
		slot->parsed = *out;
		slot->used = 1;
	}
	return 1;
}

int keys_verify(const uint8_t pub[32], const uint8_t sig[64], const uint8_t *msg, size_t msglen)
{
	const secp256k1_context *ctx = keys_ctx();
	secp256k1_xonly_pubkey xpub;
	if (!xonly_parse_cached(ctx, &xpub, pub))
		return APP_EBADKEY;
	return secp256k1_schnorrsig_verify(ctx, sig, msg, msglen, &xpub) ? 0 : APP_EBADSIG;
}

int keys_pubkey_valid(const uint8_t pub[32])
{
	secp256k1_xonly_pubkey xpub;
	return secp256k1_xonly_pubkey_parse(keys_ctx(), &xpub, pub) ? 0 : APP_EBADKEY;
}

static int copy_x(unsigned char *output, const unsigned char *x32, const unsigned char *y32, void *data)
{
	(void)y32;
	(void)data;
	memcpy(output, x32, 32);
	return 1;
}

int keys_ecdh_x(const struct keypair *kp, uint8_t shared_x[32], const uint8_t pub[32])
{
	const secp256k1_context *ctx = keys_ctx();
	uint8_t compressed[33];
	secp256k1_pubkey point;
	compressed[0] = 0x02;
	memcpy(compressed + 1, pub, 32);
	if (!secp256k1_ec_pubkey_parse(ctx, &point, compressed, sizeof compressed))
		return APP_EBADKEY;
	if (!secp256k1_ecdh(ctx, shared_x, &point, kp->sec, copy_x, NULL))
		return APP_EBADKEY;
	return 0;
}
