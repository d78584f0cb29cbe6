/*
 * econfig.c: the INI configuration of appliance-enclave (econfig.h).
 */
#include "enclave/econfig.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "appliance/hex.h"
#include "billing/quote.h"
#include "enclave/job.h"
#include "enclave/sjboot.h"
#include "enclave/train/train.h"
#include "relay-client/relayurl.h"

enum ktype { K_STR, K_U32, K_U64, K_BYTES, K_BOOL, K_LEVEL, K_LIST };

struct key {
	const char *section, *name;
	enum ktype t;
	size_t off;
	uint64_t min, max;
	const char *def; /* NULL: no default (optional, or required when `required`) */
	int required;
	const char *doc;
};

#define O(f) offsetof(struct econfig, f)
#define U32MAX 4294967295ull
#define MSAT_MAX 2100000000000000000ull /* 21e6 BTC in msat */

static const struct key keys[] = {
	{"service", "name", K_STR, O(name), 1, 64, "appliance", 0, "the announcement's name tag"},
	{"service", "version", K_STR, O(version), 1, 32, "0.1.0", 0, "the announcement's v tag (dotted numbers)"},
	{"service", "repo", K_STR, O(repo), 1, 256, "https://github.com/appliance/appliance", 0, "the announcement's r tag"},
	{"service", "about", K_STR, O(about), 0, 190, "Pay-per-job ML training (logreg, mlp) in an AWS Nitro enclave", 0,
	 "free text of the announcement, the profile and the NIP-89 handler"},
	{"service", "open", K_BOOL, O(open), 0, 1, "false", 0, "also take requests without a p tag (NIP-90 open requests)"},
	{"service", "log_level", K_LEVEL, O(log_level), 0, 3, "info", 0, "error, warn, info or debug"},
	{"service", "nsm", K_STR, O(nsm), 1, 190, "/dev/nsm", 0, "NSM transport: /dev/nsm, dev:PATH or unix:PATH (the dev emulator)"},
	{"service", "journal", K_STR, O(journal), 1, 190, NULL, 1, "journal file (created if missing; replayed at start)"},
	{"service", "announce_interval", K_U32, O(announce_interval), 60, 86400, "3600", 0,
	 "seconds between announcements (always before the attestation expires)"},
	{"service", "keystore", K_STR, O(keystore), 64, 64, NULL, 0, "hex pubkey announced as [\"keystore\", pubkey]"},
	{"service", "release_file", K_LIST, O(release_file), 1, 190, NULL, 0,
	 "a 63794 release signature (JSON file) to embed; repeatable"},
	{"relays", "relay", K_LIST, O(relay), 1, 190, NULL, 1, "relay URL (ws:// or wss://); repeatable, at least one"},
	{"relays", "inbox", K_STR, O(inbox), 1, 190, NULL, 0, "the announcement's relay tag (default: the first relay)"},
	{"relays", "ca_file", K_STR, O(ca_file), 1, 190, NULL, 0, "extra trusted CA (PEM) for wss:// and https:// (tests)"},
	{"wallet", "nwc_uri_file", K_STR, O(nwc_uri_file), 1, 190, NULL, 1,
	 "file holding the operator's NIP-47 URI (read once at start, never logged)"},
	{"wallet", "invoice_expiry", K_U32, O(invoice_expiry), 60, QUOTE_MAX_TTL, "600", 0, "seconds a quote and its invoice stay valid"},
	{"wallet", "lookup_interval", K_U32, O(lookup_interval), 1, 3600, "10", 0,
	 "seconds between lookup_invoice polls of a pending invoice (doubling, at most 8x)"},
	{"wallet", "timeout_ms", K_U32, O(wallet_timeout_ms), 100, 120000, "10000", 0, "wait for one NIP-47 answer"},
	{"price", "base_msat", K_U64, O(base_msat), 0, MSAT_MAX, "1000", 0, "price of every job (msat)"},
	{"price", "msat_per_unit", K_U64, O(msat_per_unit), 0, MSAT_MAX, "1000", 0, "price per MiB-epoch (msat)"},
	{"price", "min_msat", K_U64, O(min_msat), 0, MSAT_MAX, "0", 0, "floor of a price (msat)"},
	{"price", "max_msat", K_U64, O(max_msat), 0, MSAT_MAX, "0", 0, "dearer jobs are refused (msat; 0 = no ceiling)"},
	{"limits", "max_concurrent_jobs", K_U32, O(max_concurrent_jobs), 1, 64, "2", 0, "jobs fetching/training at once (worker threads)"},
	{"limits", "max_queue", K_U32, O(max_queue), 1, 100000, "64", 0, "unfinished jobs (waiting, paying or running); more: busy"},
	{"limits", "rate_requests", K_U32, O(rate_requests), 1, 100000, "20", 0, "requests per pubkey per rate_window"},
	{"limits", "rate_window", K_U32, O(rate_window), 1, 86400, "60", 0, "seconds"},
	{"limits", "max_dataset_bytes", K_BYTES, O(max_dataset_bytes), 1, 1ull << 40, "64M", 0, "bytes of a job's datasets together"},
	{"limits", "max_datasets", K_U32, O(max_datasets), 1, JOB_MAX_DATASETS, "8", 0, "i tags per request"},
	{"limits", "job_timeout", K_U32, O(job_timeout), 1, 86400, "600", 0, "wall time of fetching + training (seconds)"},
	{"limits", "max_result_bytes", K_BYTES, O(max_result_bytes), 1024, 1ull << 32, "64M", 0, "bytes of a sealed model blob"},
	{"limits", "max_train_threads", K_U32, O(max_train_threads), 1, TRAIN_THREADS_MAX, "1", 0, "highest threads parameter"},
	{"limits", "request_max_age", K_U32, O(request_max_age), 10, 86400, "600", 0,
	 "requests older than this (created_at, seconds) are ignored; also the replay window"},
	{"limits", "feedback_interval", K_U32, O(feedback_interval), 1, 3600, "3", 0, "seconds between two processing feedbacks"},
	{"limits", "max_request_bytes", K_BYTES, O(max_request_bytes), 1024, JOB_CONTENT_MAX, "87472", 0,
	 "bytes of a request's content"},
	{"fetch", "allowed_host", K_LIST, O(allowed_host), 1, 190, NULL, 1,
	 "dataset host: NAME (any port), NAME:PORT, or * (any); repeatable"},
	{"fetch", "allow_http", K_BOOL, O(allow_http), 0, 1, "false", 0, "accept http:// dataset URLs (development only)"},
	{"fetch", "timeout", K_U32, O(fetch_timeout), 1, 86400, "120", 0, "seconds for one download"},
	{"fetch", "connect_timeout", K_U32, O(connect_timeout), 1, 600, "10", 0, "seconds to connect"},
	{"fetch", "max_redirects", K_U32, O(max_redirects), 0, 20, "3", 0, "HTTP redirects followed (each checked against allowed_host)"},
	{"fetch", "walrus_aggregator", K_STR, O(walrus_aggregator), 1, 190, NULL, 0,
	 "base URL for walrus:BLOBID datasets (BASE/v1/blobs/BLOBID)"},
	{"fetch", "proxy", K_STR, O(proxy), 1, 190, NULL, 0, "proxy for dataset and blob traffic (socks5h://HOST:PORT)"},
	{"blobstore", "put_url", K_STR, O(put_url), 1, 190, NULL, 0, "HTTP PUT URL of a sealed model; {sha256} = its hex SHA-256"},
	{"blobstore", "get_url", K_STR, O(get_url), 1, 190, NULL, 0, "URL given to the client (default: put_url)"},
	{"blobstore", "inline_max", K_BYTES, O(inline_max), 0, 40000, "32k", 0, "largest model carried inline in the result"},
	/* [keystore]: the sealed journal (enclave/sjboot.h) */
	{"keystore", "keystore", K_LIST, O(ks_keystore), 1, 100, NULL, 0,
	 "a keystore's pubkey (hex or npub); repeatable; with keystore or image the journal is sealed"},
	{"keystore", "image", K_LIST, O(ks_image), 96, 96, NULL, 0, "PCR0 of keystore builds to discover (13793); repeatable"},
	{"keystore", "relay", K_LIST, O(ks_relay), 1, 190, NULL, 0, "relay for keystore requests (default: [relays] relay)"},
	{"keystore", "allow_dev", K_BOOL, O(ks_allow_dev), 0, 1, "false", 0, "accept keystores attested by the development root"},
	{"keystore", "dev_root", K_STR, O(ks_dev_root), 1, 190, NULL, 0, "the development root (PEM), with allow_dev"},
	{"keystore", "store", K_STR, O(ks_store), 1, 190, NULL, 0,
	 "where sealed records go: parent (the parent's blob store; default) or dir:PATH"},
	{"keystore", "repo", K_STR, O(ks_repo), 1, 256, NULL, 0, "policy: the repository releases must name (default [service] repo)"},
	{"keystore", "version", K_STR, O(ks_version), 1, 32, NULL, 0, "policy: this build's version (default [service] version)"},
	{"keystore", "maintainer", K_LIST, O(ks_maintainer), 1, 100, NULL, 0,
	 "policy: a maintainer whose release signature (63794) counts; repeatable"},
	{"keystore", "threshold", K_U32, O(ks_threshold), 0, 16, "0", 0, "policy: signatures needed (0 = all maintainers)"},
	{"keystore", "type", K_STR, O(ks_type), 3, 4, NULL, 0, "policy: release type prod or dev (default: by the attestation's root)"},
	{"keystore", "bind_host", K_BOOL, O(ks_bind_host), 0, 1, "false", 0, "policy: only this host (PCR4) may read the key"},
	{"keystore", "checkpoint_interval", K_U32, O(ks_checkpoint_interval), 1, 86400, "60", 0,
	 "seconds between checkpoints (also right after each record that moves money)"},
	{"keystore", "start_timeout", K_U32, O(ks_start_timeout), 0, 86400 * 30, "0", 0,
	 "seconds to wait for the keystores at start (0 = forever; never a new key on silence)"},
	{"keystore", "timeout_ms", K_U32, O(ks_timeout_ms), 100, 120000, "10000", 0, "one keystore request"},
};
#define NKEYS (sizeof keys / sizeof keys[0])

struct pstate {
	struct econfig *c;
	unsigned char set[NKEYS];
	char *err;
	size_t errcap;
	int code;
	int have_err;
};

static void perr(struct pstate *p, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void perr(struct pstate *p, int code, const char *fmt, ...)
{
	if (p->have_err)
		return;
	p->have_err = 1;
	p->code = code;
	if (p->err && p->errcap) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(p->err, p->errcap, fmt, ap);
		va_end(ap);
	}
}

static int parse_u64(const char *s, uint64_t *out, int bytes)
{
	uint64_t v = 0, mul = 1;
	size_t n = strlen(s);
	if (bytes && n > 1) {
		char c = s[n - 1];
		if (c == 'k' || c == 'K')
			mul = 1024;
		else if (c == 'm' || c == 'M')
			mul = 1024 * 1024;
		else if (c == 'g' || c == 'G')
			mul = 1024ull * 1024 * 1024;
		if (mul > 1)
			n--;
	}
	if (n == 0 || n > 20)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
			return -1;
	}
	if (__builtin_mul_overflow(v, mul, &v))
		return -1;
	*out = v;
	return 0;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct pstate *p = user;
	size_t i;
	if (p->have_err)
		return 0;
	for (i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i].section, section) && !strcmp(keys[i].name, name))
			break;
	if (i == NKEYS) {
		int known = 0;
		for (size_t k = 0; k < NKEYS; k++)
			if (!strcmp(keys[k].section, section))
				known = 1;
		if (known)
			perr(p, APP_EINVAL, "[%.40s] %.40s: unknown key", section, name);
		else
			perr(p, APP_EINVAL, "[%.40s]: unknown section (key %.40s)", section, name);
		return 0;
	}
	const struct key *k = &keys[i];
	char *base = (char *)p->c;
	if (k->t != K_LIST && p->set[i]) {
		perr(p, APP_EINVAL, "[%s] %s: given twice", k->section, k->name);
		return 0;
	}
	p->set[i] = 1;
	size_t len = strlen(value);
	switch (k->t) {
	case K_STR:
	case K_LIST: {
		if (len < k->min || len > k->max) {
			perr(p, APP_EINVAL, "[%s] %s: length %zu is out of range %llu..%llu bytes", k->section, k->name, len,
			     (unsigned long long)k->min, (unsigned long long)k->max);
			return 0;
		}
		for (size_t j = 0; j < len; j++)
			if ((unsigned char)value[j] < 0x20 || value[j] == 0x7f) {
				perr(p, APP_EINVAL, "[%s] %s: control character in the value", k->section, k->name);
				return 0;
			}
		char *dup = strdup(value);
		if (!dup) {
			perr(p, APP_ENOMEM, "out of memory");
			return 0;
		}
		if (k->t == K_STR) {
			char **dst = (char **)(base + k->off);
			free(*dst);
			*dst = dup;
		} else {
			struct econfig_list *l = (struct econfig_list *)(base + k->off);
			if (l->n == ECONFIG_LIST_MAX) {
				free(dup);
				perr(p, APP_EINVAL, "[%s] %s: at most %d entries", k->section, k->name, ECONFIG_LIST_MAX);
				return 0;
			}
			l->v[l->n++] = dup;
		}
		return 1;
	}
	case K_U32:
	case K_U64:
	case K_BYTES: {
		uint64_t v;
		if (parse_u64(value, &v, k->t == K_BYTES) != 0) {
			perr(p, APP_EINVAL, "[%s] %s: '%.40s' is not %s", k->section, k->name, value,
			     k->t == K_BYTES ? "a byte size (digits, optional k/M/G)" : "a decimal integer");
			return 0;
		}
		if (v < k->min || v > k->max) {
			perr(p, APP_EINVAL, "[%s] %s: %llu is out of range %llu..%llu", k->section, k->name,
			     (unsigned long long)v, (unsigned long long)k->min, (unsigned long long)k->max);
			return 0;
		}
		if (k->t == K_U32)
			*(uint32_t *)(base + k->off) = (uint32_t)v;
		else
			*(uint64_t *)(base + k->off) = v;
		return 1;
	}
	case K_BOOL: {
		int v;
		if (!strcasecmp(value, "true") || !strcasecmp(value, "yes") || !strcasecmp(value, "on") || !strcmp(value, "1"))
			v = 1;
		else if (!strcasecmp(value, "false") || !strcasecmp(value, "no") || !strcasecmp(value, "off") ||
			 !strcmp(value, "0"))
			v = 0;
		else {
			perr(p, APP_EINVAL, "[%s] %s: '%.40s' is not a boolean (true/false)", k->section, k->name, value);
			return 0;
		}
		*(int *)(base + k->off) = v;
		return 1;
	}
	case K_LEVEL: {
		enum log_level lv;
		if (log_parse_level(&lv, value) != 0) {
			perr(p, APP_EINVAL, "[%s] %s: '%.40s' is not error, warn, info or debug", k->section, k->name, value);
			return 0;
		}
		*(enum log_level *)(base + k->off) = lv;
		return 1;
	}
	}
	return 0;
}

void econfig_free(struct econfig *c)
{
	if (!c)
		return;
	char *base = (char *)c;
	for (size_t i = 0; i < NKEYS; i++) {
		if (keys[i].t == K_STR) {
			free(*(char **)(base + keys[i].off));
		} else if (keys[i].t == K_LIST) {
			struct econfig_list *l = (struct econfig_list *)(base + keys[i].off);
			for (size_t j = 0; j < l->n; j++)
				free(l->v[j]);
		}
	}
	free(c);
}

/* Applies the default of every key not given. Returns 0 or APP_ENOMEM. */
static int apply_defaults(struct pstate *p)
{
	struct pstate d = {.c = p->c, .err = p->err, .errcap = p->errcap};
	for (size_t i = 0; i < NKEYS; i++) {
		if (p->set[i] || !keys[i].def)
			continue;
		if (!handler(&d, keys[i].section, keys[i].name, keys[i].def)) {
			p->have_err = 1;
			p->code = d.code ? d.code : APP_EINTERNAL;
			return p->code;
		}
	}
	return 0;
}

static int validate(struct pstate *p)
{
	struct econfig *c = p->c;
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].required && !p->set[i]) {
			perr(p, APP_EINVAL, "[%s] %s: required", keys[i].section, keys[i].name);
			return APP_EINVAL;
		}
	for (size_t i = 0; i < c->relay.n; i++) {
		struct relayurl u;
		const char *why = NULL;
		if (relayurl_parse(&u, &why, c->relay.v[i]) != 0) {
			perr(p, APP_EINVAL, "[relays] relay: '%.80s': %s", c->relay.v[i], why ? why : "not a ws:// or wss:// URL");
			return APP_EINVAL;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(c->relay.v[i], c->relay.v[j])) {
				perr(p, APP_EINVAL, "[relays] relay: '%.80s' given twice", c->relay.v[i]);
				return APP_EINVAL;
			}
	}
	if (c->inbox) {
		struct relayurl u;
		const char *why = NULL;
		if (relayurl_parse(&u, &why, c->inbox) != 0) {
			perr(p, APP_EINVAL, "[relays] inbox: %s", why ? why : "not a ws:// or wss:// URL");
			return APP_EINVAL;
		}
	} else if (!(c->inbox = strdup(c->relay.v[0]))) {
		perr(p, APP_ENOMEM, "out of memory");
		return APP_ENOMEM;
	}
	if (c->keystore && !hex_is_lower(c->keystore, strlen(c->keystore))) {
		perr(p, APP_EINVAL, "[service] keystore: not 64 lowercase hex digits");
		return APP_EINVAL;
	}
	if (strncmp(c->nsm, "unix:", 5) && strncmp(c->nsm, "dev:", 4) && strcmp(c->nsm, "/dev/nsm") &&
	    strcmp(c->nsm, "dev") && strcmp(c->nsm, "device")) {
		perr(p, APP_EINVAL, "[service] nsm: expected /dev/nsm, dev:PATH or unix:PATH");
		return APP_EINVAL;
	}
	if (c->release_file.n > 16) {
		perr(p, APP_EINVAL, "[service] release_file: at most 16");
		return APP_EINVAL;
	}
	if (c->max_msat && c->min_msat > c->max_msat) {
		perr(p, APP_EINVAL, "[price] min_msat: %llu is above max_msat %llu", (unsigned long long)c->min_msat,
		     (unsigned long long)c->max_msat);
		return APP_EINVAL;
	}
	for (size_t i = 0; i < c->allowed_host.n; i++) {
		const char *h = c->allowed_host.v[i];
		for (const char *q = h; *q; q++)
			if (!((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '.' || *q == '-' || *q == ':' ||
			      *q == '*' || *q == '[' || *q == ']')) {
				perr(p, APP_EINVAL, "[fetch] allowed_host: '%.80s': lowercase host names, NAME:PORT or *", h);
				return APP_EINVAL;
			}
		if (strchr(h, '*') && strcmp(h, "*")) {
			perr(p, APP_EINVAL, "[fetch] allowed_host: '%.80s': * only alone (any host)", h);
			return APP_EINVAL;
		}
	}
	const char *urls[3] = {c->walrus_aggregator, c->put_url, c->get_url};
	const char *names[3] = {"[fetch] walrus_aggregator", "[blobstore] put_url", "[blobstore] get_url"};
	for (int i = 0; i < 3; i++)
		if (urls[i] && strncmp(urls[i], "https://", 8) && !(c->allow_http && !strncmp(urls[i], "http://", 7))) {
			perr(p, APP_EINVAL, "%s: must be an https:// URL (http:// only with allow_http)", names[i]);
			return APP_EINVAL;
		}
	if (c->get_url && !c->put_url) {
		perr(p, APP_EINVAL, "[blobstore] get_url: needs put_url");
		return APP_EINVAL;
	}
	if (c->put_url && !c->get_url && !(c->get_url = strdup(c->put_url))) {
		perr(p, APP_ENOMEM, "out of memory");
		return APP_ENOMEM;
	}
	if (sjboot_validate(c, p->err, p->errcap) != 0) {
		p->have_err = 1;
		p->code = APP_EINVAL;
		return APP_EINVAL;
	}
	if (c->inline_max > c->max_result_bytes) {
		perr(p, APP_EINVAL, "[blobstore] inline_max: above [limits] max_result_bytes");
		return APP_EINVAL;
	}
	return 0;
}

int econfig_parse(struct econfig **out, char *err, size_t errcap, const char *name, const char *text, size_t len)
{
	struct pstate p;
	char *buf = NULL;
	int r = APP_ENOMEM;
	*out = NULL;
	if (err && errcap)
		err[0] = 0;
	memset(&p, 0, sizeof p);
	p.err = err;
	p.errcap = errcap;
	if (len > ECONFIG_FILE_MAX) {
		if (err)
			snprintf(err, errcap, "%s: larger than %d bytes", name, ECONFIG_FILE_MAX);
		return APP_ETOOBIG;
	}
	if (!(p.c = calloc(1, sizeof *p.c)) || !(buf = malloc(len + 1))) {
		if (err)
			snprintf(err, errcap, "out of memory");
		goto out;
	}
	memcpy(buf, text, len);
	buf[len] = 0;
	int line = ini_parse_string(buf, handler, &p);
	if (line != 0 || p.have_err) {
		char msg[ECONFIG_ERR_MAX];
		snprintf(msg, sizeof msg, "%s", p.have_err && err ? err : "");
		if (err) {
			if (p.have_err)
				snprintf(err, errcap, "%s:%d: %s", name, line, msg);
			else
				snprintf(err, errcap, "%s:%d: syntax error (expected [section], key = value, or a comment)", name,
					 line);
		}
		r = p.have_err ? (p.code ? p.code : APP_EINVAL) : APP_EPARSE;
		goto out;
	}
	if ((r = apply_defaults(&p)) != 0)
		goto out;
	if ((r = validate(&p)) != 0) {
		if (err) {
			char msg[ECONFIG_ERR_MAX];
			snprintf(msg, sizeof msg, "%s", err);
			snprintf(err, errcap, "%s: %s", name, msg);
		}
		goto out;
	}
	*out = p.c;
	p.c = NULL;
	r = 0;
out:
	free(buf);
	econfig_free(p.c);
	return r;
}

int econfig_load(struct econfig **out, char *err, size_t errcap, const char *path)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f) {
		int e = errno;
		if (err)
			snprintf(err, errcap, "%s: %s", path, strerror(e));
		return e == ENOENT ? APP_ENOENT : APP_EIO;
	}
	char *buf = malloc(ECONFIG_FILE_MAX + 1);
	if (!buf) {
		fclose(f);
		return APP_ENOMEM;
	}
	size_t n = fread(buf, 1, ECONFIG_FILE_MAX + 1, f);
	int rerr = ferror(f);
	fclose(f);
	int r;
	if (rerr) {
		if (err)
			snprintf(err, errcap, "%s: read error", path);
		r = APP_EIO;
	} else if (n > ECONFIG_FILE_MAX) {
		if (err)
			snprintf(err, errcap, "%s: larger than %d bytes", path, ECONFIG_FILE_MAX);
		r = APP_ETOOBIG;
	} else {
		r = econfig_parse(out, err, errcap, path, buf, n);
	}
	free(buf);
	return r;
}

static void print_value(const struct econfig *c, const struct key *k, FILE *f)
{
	const char *base = (const char *)c;
	switch (k->t) {
	case K_STR: {
		const char *s = *(char *const *)(base + k->off);
		if (s)
			fprintf(f, "%s = %s\n", k->name, s);
		else
			fprintf(f, "; %s (unset)\n", k->name);
		break;
	}
	case K_LIST: {
		const struct econfig_list *l = (const struct econfig_list *)(base + k->off);
		if (!l->n)
			fprintf(f, "; %s (none)\n", k->name);
		for (size_t i = 0; i < l->n; i++)
			fprintf(f, "%s = %s\n", k->name, l->v[i]);
		break;
	}
	case K_U32: fprintf(f, "%s = %u\n", k->name, *(const uint32_t *)(base + k->off)); break;
	case K_U64:
	case K_BYTES: fprintf(f, "%s = %llu\n", k->name, (unsigned long long)*(const uint64_t *)(base + k->off)); break;
	case K_BOOL: fprintf(f, "%s = %s\n", k->name, *(const int *)(base + k->off) ? "true" : "false"); break;
	case K_LEVEL: {
		static const char *const lv[] = {"error", "warn", "info", "debug"};
		enum log_level l = *(const enum log_level *)(base + k->off);
		fprintf(f, "%s = %s\n", k->name, (unsigned)l < 4 ? lv[l] : "?");
		break;
	}
	}
}

void econfig_print(const struct econfig *c, FILE *f)
{
	const char *sec = "";
	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(sec, keys[i].section)) {
			sec = keys[i].section;
			fprintf(f, "%s[%s]\n", i ? "\n" : "", sec);
		}
		print_value(c, &keys[i], f);
	}
}

void econfig_print_help(FILE *f)
{
	const char *sec = "";
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		if (strcmp(sec, k->section)) {
			sec = k->section;
			fprintf(f, "%s[%s]\n", i ? "\n" : "", sec);
		}
		char range[64] = "";
		if (k->t == K_U32 || k->t == K_U64 || k->t == K_BYTES)
			snprintf(range, sizeof range, " (%llu..%llu)", (unsigned long long)k->min, (unsigned long long)k->max);
		fprintf(f, "  %-20s %s%s%s%s%s\n", k->name, k->doc, range, k->def ? "; default " : "", k->def ? k->def : "",
			k->required ? "; required" : "");
	}
}

int econfig_host_allowed(const struct econfig *c, const char *host, unsigned port)
{
	for (size_t i = 0; i < c->allowed_host.n; i++) {
		const char *a = c->allowed_host.v[i];
		if (!strcmp(a, "*"))
			return 1;
		const char *colon = strrchr(a, ':');
		if (a[0] == '[') { /* [v6] or [v6]:port */
			const char *rb = strchr(a, ']');
			colon = rb && rb[1] == ':' ? rb + 1 : NULL;
			size_t hl = rb ? (size_t)(rb - a - 1) : 0;
			if (rb && strlen(host) == hl && !strncasecmp(a + 1, host, hl) &&
			    (!colon || strtoul(colon + 1, NULL, 10) == port))
				return 1;
			continue;
		}
		if (colon) {
			size_t hl = (size_t)(colon - a);
			if (strlen(host) == hl && !strncasecmp(a, host, hl) && strtoul(colon + 1, NULL, 10) == port)
				return 1;
		} else if (!strcasecmp(a, host)) {
			return 1;
		}
	}
	return 0;
}
