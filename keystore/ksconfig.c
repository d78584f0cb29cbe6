/*
 * ksconfig.c: the INI configuration of appliance-keystore (ksconfig.h).
 */
#include "keystore/ksconfig.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "appliance/hex.h"
#include "appliance/nec.h"
#include "keystore/kscore.h"
#include "relay-client/relayurl.h"

enum ktype { K_STR, K_U32, K_BOOL, K_LEVEL, K_LIST };

struct key {
	const char *section, *name;
	enum ktype t;
	size_t off;
	uint64_t min, max;
	const char *def; /* NULL: no default (optional, or required when `required`) */
	int required;
	const char *doc;
};

#define O(f) offsetof(struct ksconfig, f)

static const struct key keys[] = {
	{"keystore", "name", K_STR, O(name), 1, 64, "keystore", 0, "the announcement's name tag and status name"},
	{"keystore", "version", K_STR, O(version), 1, NEC_VERSION_MAX, "0.1.0", 0, "the announcement's v tag (dotted numbers)"},
	{"keystore", "repo", K_STR, O(repo), 1, NEC_REPO_MAX, "https://github.com/appliance/appliance", 0,
	 "the announcement's r tag"},
	{"keystore", "about", K_STR, O(about), 0, 190, "Attestation-gated key storage in an AWS Nitro enclave", 0,
	 "free text of the announcement"},
	{"keystore", "nsm", K_STR, O(nsm), 1, 190, "/dev/nsm", 0, "NSM transport: /dev/nsm, dev:PATH or unix:PATH (the dev emulator)"},
	{"keystore", "log_level", K_LEVEL, O(log_level), 0, 3, "info", 0, "error, warn, info or debug"},
	{"keystore", "allow_dev", K_BOOL, O(allow_dev), 0, 1, "false", 0,
	 "accept attestations chaining to the development root (dev mode only)"},
	{"keystore", "dev_root", K_STR, O(dev_root), 1, 190, NULL, 0, "the development root certificate (PEM), with allow_dev"},
	{"keystore", "attestation_max_age", K_U32, O(attestation_max_age), 1, 86400, "300", 0,
	 "seconds an attestation's timestamp may lie in the past"},
	{"keystore", "request_max_age", K_U32, O(request_max_age), 5, 86400, "120", 0,
	 "seconds a request's created_at may differ from now (older or newer: ignored)"},
	{"keystore", "ttl", K_U32, O(ttl), 60, 365u * 86400, "259200", 0, "seconds an entry lives after its last set"},
	{"keystore", "max_entries", K_U32, O(max_entries), 1, KSCORE_ENTRIES_MAX, "4096", 0, "entries held in all"},
	{"keystore", "max_per_pcrs", K_U32, O(max_per_pcrs), 1, 4096, "16", 0, "entries sharing PCR0/1/2"},
	{"keystore", "max_per_pubkey", K_U32, O(max_per_pubkey), 1, 4096, "4", 0, "entries created by one request pubkey"},
	{"keystore", "max_revocations", K_U32, O(max_revocations), 0, KSCORE_REVOCATIONS_MAX, "4096", 0,
	 "revocations held"},
	{"keystore", "trusted_maintainer", K_LIST, O(trusted_maintainer), 64, 64, NULL, 0,
	 "hex pubkey whose revocations are accepted even before it is in any policy; repeatable"},
	{"keystore", "revocation_file", K_LIST, O(revocation_file), 1, 190, NULL, 0,
	 "a kind-63798 revocation (JSON file) loaded at start; repeatable"},
	{"keystore", "announce_interval", K_U32, O(announce_interval), 10, 86400, "600", 0,
	 "seconds between announcements (always before the attestation expires)"},
	{"keystore", "rate_requests", K_U32, O(rate_requests), 1, 100000, "30", 0, "requests per pubkey per rate_window"},
	{"keystore", "rate_window", K_U32, O(rate_window), 1, 86400, "60", 0, "seconds"},
	{"keystore", "rate_global", K_U32, O(rate_global), 1, 100000, "50", 0, "requests per second from all pubkeys"},
	{"relays", "relay", K_LIST, O(relay), 1, 190, NULL, 1, "relay URL (ws:// or wss://); repeatable, at least one"},
	{"relays", "inbox", K_STR, O(inbox), 1, 190, NULL, 0, "the announcement's relay tag (default: the first relay)"},
	{"relays", "ca_file", K_STR, O(ca_file), 1, 190, NULL, 0, "extra trusted CA (PEM) for wss:// (tests)"},
};
#define NKEYS (sizeof keys / sizeof keys[0])

struct pstate {
	struct ksconfig *c;
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

static int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	size_t n = strlen(s);
	if (n == 0 || n > 20)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
			return -1;
	}
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
			known |= !strcmp(keys[k].section, section);
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
			struct ksconfig_list *l = (struct ksconfig_list *)(base + k->off);
			if (l->n == KSCONFIG_LIST_MAX) {
				free(dup);
				perr(p, APP_EINVAL, "[%s] %s: at most %d entries", k->section, k->name, KSCONFIG_LIST_MAX);
				return 0;
			}
			l->v[l->n++] = dup;
		}
		return 1;
	}
	case K_U32: {
		uint64_t v;
		if (parse_u64(value, &v) != 0) {
			perr(p, APP_EINVAL, "[%s] %s: '%.40s' is not a decimal integer", k->section, k->name, value);
			return 0;
		}
		if (v < k->min || v > k->max) {
			perr(p, APP_EINVAL, "[%s] %s: %llu is out of range %llu..%llu", k->section, k->name,
			     (unsigned long long)v, (unsigned long long)k->min, (unsigned long long)k->max);
			return 0;
		}
		*(uint32_t *)(base + k->off) = (uint32_t)v;
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

void ksconfig_free(struct ksconfig *c)
{
	if (!c)
		return;
	char *base = (char *)c;
	for (size_t i = 0; i < NKEYS; i++) {
		if (keys[i].t == K_STR) {
			free(*(char **)(base + keys[i].off));
		} else if (keys[i].t == K_LIST) {
			struct ksconfig_list *l = (struct ksconfig_list *)(base + keys[i].off);
			for (size_t j = 0; j < l->n; j++)
				free(l->v[j]);
		}
	}
	free(c);
}

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
	struct ksconfig *c = p->c;
	int cmp;
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
	if (nec_version_cmp(c->version, c->version, &cmp) != 0) {
		perr(p, APP_EINVAL, "[keystore] version: dotted numbers like 1.2.3");
		return APP_EINVAL;
	}
	for (size_t i = 0; i < c->trusted_maintainer.n; i++) {
		const char *h = c->trusted_maintainer.v[i];
		if (!hex_is_lower(h, strlen(h))) {
			perr(p, APP_EINVAL, "[keystore] trusted_maintainer: not 64 lowercase hex digits");
			return APP_EINVAL;
		}
	}
	if (c->trusted_maintainer.n > KSCORE_TRUSTED_MAX) {
		perr(p, APP_EINVAL, "[keystore] trusted_maintainer: at most %d", KSCORE_TRUSTED_MAX);
		return APP_EINVAL;
	}
	if (c->allow_dev && !c->dev_root) {
		perr(p, APP_EINVAL, "[keystore] dev_root: required with allow_dev");
		return APP_EINVAL;
	}
	if (!c->allow_dev && c->dev_root) {
		perr(p, APP_EINVAL, "[keystore] dev_root: only with allow_dev = true");
		return APP_EINVAL;
	}
	if (strncmp(c->nsm, "unix:", 5) && strncmp(c->nsm, "dev:", 4) && strcmp(c->nsm, "/dev/nsm") &&
	    strcmp(c->nsm, "dev") && strcmp(c->nsm, "device")) {
		perr(p, APP_EINVAL, "[keystore] nsm: expected /dev/nsm, dev:PATH or unix:PATH");
		return APP_EINVAL;
	}
	if (c->attestation_max_age > c->ttl) {
		perr(p, APP_EINVAL, "[keystore] attestation_max_age: above ttl");
		return APP_EINVAL;
	}
	return 0;
}

int ksconfig_parse(struct ksconfig **out, char *err, size_t errcap, const char *name, const char *text, size_t len)
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
	if (len > KSCONFIG_FILE_MAX) {
		if (err)
			snprintf(err, errcap, "%s: larger than %d bytes", name, KSCONFIG_FILE_MAX);
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
		char msg[KSCONFIG_ERR_MAX];
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
			char msg[KSCONFIG_ERR_MAX];
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
	ksconfig_free(p.c);
	return r;
}

int ksconfig_load(struct ksconfig **out, char *err, size_t errcap, const char *path)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f) {
		int e = errno;
		if (err)
			snprintf(err, errcap, "%s: %s", path, strerror(e));
		return e == ENOENT ? APP_ENOENT : APP_EIO;
	}
	char *buf = malloc(KSCONFIG_FILE_MAX + 1);
	if (!buf) {
		fclose(f);
		return APP_ENOMEM;
	}
	size_t n = fread(buf, 1, KSCONFIG_FILE_MAX + 1, f);
	int rerr = ferror(f);
	fclose(f);
	int r;
	if (rerr) {
		if (err)
			snprintf(err, errcap, "%s: read error", path);
		r = APP_EIO;
	} else if (n > KSCONFIG_FILE_MAX) {
		if (err)
			snprintf(err, errcap, "%s: larger than %d bytes", path, KSCONFIG_FILE_MAX);
		r = APP_ETOOBIG;
	} else {
		r = ksconfig_parse(out, err, errcap, path, buf, n);
	}
	free(buf);
	return r;
}

static void print_value(const struct ksconfig *c, const struct key *k, FILE *f)
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
		const struct ksconfig_list *l = (const struct ksconfig_list *)(base + k->off);
		if (!l->n)
			fprintf(f, "; %s (none)\n", k->name);
		for (size_t i = 0; i < l->n; i++)
			fprintf(f, "%s = %s\n", k->name, l->v[i]);
		break;
	}
	case K_U32: fprintf(f, "%s = %u\n", k->name, *(const uint32_t *)(base + k->off)); break;
	case K_BOOL: fprintf(f, "%s = %s\n", k->name, *(const int *)(base + k->off) ? "true" : "false"); break;
	case K_LEVEL: {
		static const char *const lv[] = {"error", "warn", "info", "debug"};
		enum log_level l = *(const enum log_level *)(base + k->off);
		fprintf(f, "%s = %s\n", k->name, (unsigned)l < 4 ? lv[l] : "?");
		break;
	}
	}
}

void ksconfig_print(const struct ksconfig *c, FILE *f)
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

void ksconfig_print_help(FILE *f)
{
	const char *sec = "";
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		if (strcmp(sec, k->section)) {
			sec = k->section;
			fprintf(f, "%s[%s]\n", i ? "\n" : "", sec);
		}
		char range[64] = "";
		if (k->t == K_U32)
			snprintf(range, sizeof range, " (%llu..%llu)", (unsigned long long)k->min, (unsigned long long)k->max);
		fprintf(f, "  %-20s %s%s%s%s%s\n", k->name, k->doc, range, k->def ? "; default " : "", k->def ? k->def : "",
			k->required ? "; required" : "");
	}
}
