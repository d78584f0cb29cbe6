/*
 * pconfig.c: appliance-parent's INI configuration (pconfig.h).
 */
#include "parent/pconfig.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "appliance/channel.h"
#include "appliance/ctlmsg.h"

enum ktype { K_STR, K_U32, K_U64, K_BYTES, K_BOOL, K_MODE, K_LEVEL, K_ARGS, K_ALLOW, K_NS };

struct key {
	const char *section, *name;
	enum ktype t;
	size_t off;
	uint64_t min, max;
	const char *def;
	const char *doc;
};

#define O(f) offsetof(struct pconfig, f)
#define OP(f) (offsetof(struct pconfig, proxy) + offsetof(struct proxy_config, f))

static const struct key keys[] = {
	{"parent", "mode", K_MODE, O(mode), 0, 0, "dev", "dev (namespaces + NSM emulator) or nitro (nitro-cli)"},
	{"parent", "state_dir", K_STR, O(state_dir), 1, PCONFIG_STR_MAX, "/var/lib/appliance-parent",
	 "sockets (run/), pid file, dev CA, blobs"},
	{"parent", "log_level", K_LEVEL, O(log_level), 0, 3, "info", "error, warn, info or debug"},
	{"enclave", "binary", K_STR, O(binary), 1, PCONFIG_STR_MAX, NULL, "dev: the enclave program (measured, run in the namespaces)"},
	{"enclave", "config", K_STR, O(config), 1, PCONFIG_STR_MAX, NULL,
	 "dev: its configuration file (measured into PCR0/PCR1, passed as --config)"},
	{"enclave", "arg", K_ARGS, O(args), 1, PCONFIG_STR_MAX, NULL, "dev: an extra argument (repeatable, in order)"},
	{"enclave", "eif", K_STR, O(eif), 1, PCONFIG_STR_MAX, NULL, "nitro: the enclave image file"},
	{"enclave", "cpu_count", K_U32, O(cpu_count), 1, 256, "2", "nitro: vCPUs"},
	{"enclave", "memory_mib", K_U32, O(memory_mib), 64, 1u << 22, "4096", "nitro: memory (MiB)"},
	{"enclave", "cid", K_U32, O(cid), 4, 0xFFFFFFFEu, "16", "nitro: the enclave's vsock CID"},
	{"enclave", "debug_mode", K_BOOL, O(debug_mode), 0, 1, "false",
	 "nitro: --debug-mode (console; PCRs read as zero and every verifier refuses it)"},
	{"enclave", "restart_min_ms", K_U32, O(restart_min_ms), 10, 3600000, "1000", "first restart delay"},
	{"enclave", "restart_max_ms", K_U32, O(restart_max_ms), 10, 3600000, "60000", "largest restart delay (doubling)"},
	{"enclave", "restart_reset_s", K_U32, O(restart_reset_s), 1, 86400, "60", "uptime that resets the delay"},
	{"enclave", "shutdown_grace_ms", K_U32, O(shutdown_grace_ms), 100, 600000, "30000",
	 "wait for the enclave to flush and exit after the shutdown notice"},
	{"dev", "ca_dir", K_STR, O(ca_dir), 1, PCONFIG_STR_MAX, NULL, "the dev CA (created if missing)"},
	{"dev", "instance_id", K_STR, O(instance_id), 3, 31, NULL, "emulated EC2 instance id i-HEX (default random)"},
	{"dev", "namespaces", K_NS, O(full_namespaces), 0, 1, "full", "full (net+mount+pid, else net, logged) or net"},
	{"channel", "control", K_STR, O(control), 1, CHANNEL_ADDR_MAX, NULL, "control service address"},
	{"channel", "egress", K_STR, O(egress), 1, CHANNEL_ADDR_MAX, NULL, "egress (SOCKS5) service address"},
	{"egress", "allow", K_ALLOW, 0, 0, 0, NULL, "allowed destination HOST:PORT, HOST:*, *.SUFFIX:PORT, *:PORT (repeatable)"},
	{"egress", "allow_private", K_BOOL, OP(allow_private), 0, 1, "false",
	 "allow loopback/private/link-local destinations (tests only)"},
	{"egress", "max_connections", K_U32, 0, 1, PROXY_MAX_CONNECTIONS, "64", "concurrent connections"},
	{"egress", "max_bytes", K_BYTES, OP(max_bytes), 1, 1ull << 40, "1G", "bytes per connection and direction"},
	{"egress", "idle_timeout_s", K_U32, 0, 1, 86400, "300", "close a connection idle that long"},
	{"egress", "connect_timeout_ms", K_U32, OP(connect_timeout_ms), 100, 120000, "10000", "per resolved address"},
	{"blobstore", "dir", K_STR, O(blob_dir), 1, PCONFIG_STR_MAX, NULL, "blob directory"},
	{"blobstore", "max_bytes", K_BYTES, O(blob_max_bytes), 1, 1ull << 44, "1G", "bytes per instance"},
	{"blobstore", "max_blobs", K_U64, O(blob_max_blobs), 1, 100000000, "100000", "blobs per instance"},
	{"blobstore", "max_blob", K_BYTES, O(blob_max_blob), 1, CTLMSG_BLOB_MAX, "1047552", "bytes of one blob"},
	{"log", "line_max", K_U32, O(log_line_max), 16, CTLMSG_LOG_MAX, "1024", "bytes of an enclave log line"},
	{"log", "rate", K_U32, O(log_rate), 1, 100000, "50", "enclave log lines per second"},
	{"log", "burst", K_U32, O(log_burst), 1, 1000000, "200", "log lines in reserve"},
};
#define NKEYS (sizeof keys / sizeof keys[0])

struct pstate {
	struct pconfig *c;
	char *err;
	size_t errcap;
	const char *name;
	int bad;
	int rc;
	unsigned char seen[NKEYS];
	uint32_t idle_s, maxconn;
};

static void seterr(struct pstate *s, int line, const char *sec, const char *key, const char *fmt, ...)
{
	if (s->bad)
		return;
	s->bad = 1;
	s->rc = APP_EINVAL;
	if (!s->err || !s->errcap)
		return;
	char m[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof m, fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(s->err, s->errcap, "%s:%d: [%s] %s: %s", s->name, line, sec, key, m);
	else
		snprintf(s->err, s->errcap, "%s: [%s] %s: %s", s->name, sec, key, m);
}

static int parse_u64(uint64_t *out, const char *v, int bytes)
{
	char *end = NULL;
	if (!*v || *v == '-' || *v == '+' || *v == ' ')
		return -1;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (errno || end == v)
		return -1;
	if (bytes && *end) {
		unsigned sh = *end == 'k' || *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
		if (!sh || end[1] || x > (UINT64_MAX >> sh))
			return -1;
		x <<= sh;
		end++;
	}
	if (*end)
		return -1;
	*out = x;
	return 0;
}

static int handler_line(void *user, const char *section, const char *name, const char *value, int line)
{
	struct pstate *s = user;
	struct pconfig *c = s->c;
	size_t i;
	if (s->bad)
		return 0;
	if (!name) {
		/* a section header alone: must be known */
		for (i = 0; i < NKEYS; i++)
			if (!strcmp(keys[i].section, section))
				return 1;
		seterr(s, line, section, "-", "unknown section");
		return 0;
	}
	for (i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i].section, section) && !strcmp(keys[i].name, name))
			break;
	if (i == NKEYS) {
		seterr(s, line, section, name, "unknown key");
		return 0;
	}
	const struct key *k = &keys[i];
	if (s->seen[i] && k->t != K_ARGS && k->t != K_ALLOW) {
		seterr(s, line, section, name, "given twice");
		return 0;
	}
	s->seen[i] = 1;
	uint8_t *base = (uint8_t *)c;
	uint64_t v = 0;
	switch (k->t) {
	case K_STR: {
		size_t n = strlen(value);
		if (n < k->min || n > k->max) {
			seterr(s, line, section, name, "length %zu out of range %llu..%llu", n, (unsigned long long)k->min,
			       (unsigned long long)k->max);
			return 0;
		}
		memcpy(base + k->off, value, n + 1);
		return 1;
	}
	case K_U32:
	case K_U64:
	case K_BYTES:
		if (parse_u64(&v, value, k->t == K_BYTES) != 0 || v < k->min || v > k->max) {
			seterr(s, line, section, name, "'%s' is not a number in %llu..%llu", value,
			       (unsigned long long)k->min, (unsigned long long)k->max);
			return 0;
		}
		if (!strcmp(name, "idle_timeout_s"))
			s->idle_s = (uint32_t)v;
		else if (!strcmp(section, "egress") && !strcmp(name, "max_connections"))
			s->maxconn = (uint32_t)v;
		else if (k->t == K_U32)
			*(uint32_t *)(void *)(base + k->off) = (uint32_t)v;
		else
			*(uint64_t *)(void *)(base + k->off) = v;
		return 1;
	case K_BOOL:
		if (!strcasecmp(value, "true") || !strcasecmp(value, "yes") || !strcasecmp(value, "on") || !strcmp(value, "1"))
			*(int *)(void *)(base + k->off) = 1;
		else if (!strcasecmp(value, "false") || !strcasecmp(value, "no") || !strcasecmp(value, "off") ||
			 !strcmp(value, "0"))
			*(int *)(void *)(base + k->off) = 0;
		else {
			seterr(s, line, section, name, "'%s' is not a boolean", value);
			return 0;
		}
		return 1;
	case K_MODE:
		if (!strcmp(value, "dev"))
			c->mode = PCONFIG_DEV;
		else if (!strcmp(value, "nitro"))
			c->mode = PCONFIG_NITRO;
		else {
			seterr(s, line, section, name, "'%s' is not dev or nitro", value);
			return 0;
		}
		return 1;
	case K_NS:
		if (!strcmp(value, "full"))
			c->full_namespaces = 1;
		else if (!strcmp(value, "net"))
			c->full_namespaces = 0;
		else {
			seterr(s, line, section, name, "'%s' is not full or net", value);
			return 0;
		}
		return 1;
	case K_LEVEL:
		if (log_parse_level(&c->log_level, value) != 0) {
			seterr(s, line, section, name, "'%s' is not error, warn, info or debug", value);
			return 0;
		}
		return 1;
	case K_ARGS:
		if (c->nargs == PCONFIG_LIST_MAX || strlen(value) > PCONFIG_STR_MAX) {
			seterr(s, line, section, name, "too many or too long");
			return 0;
		}
		if (!(c->args[c->nargs] = strdup(value))) {
			s->bad = 1;
			s->rc = APP_ENOMEM;
			return 0;
		}
		c->nargs++;
		return 1;
	case K_ALLOW:
		if (c->proxy.nrules == PROXY_RULES_MAX) {
			seterr(s, line, section, name, "more than %d rules", PROXY_RULES_MAX);
			return 0;
		}
		if (proxy_rule_parse(&c->proxy.rules[c->proxy.nrules], value) != 0) {
			seterr(s, line, section, name, "'%s' is not HOST:PORT, HOST:*, *.SUFFIX:PORT or *:PORT", value);
			return 0;
		}
		c->proxy.nrules++;
		return 1;
	}
	return 0;
}

/* libinih here is built without INI_HANDLER_LINENO: errors name the section and key, not the line */
static int handler(void *user, const char *section, const char *name, const char *value)
{
	return handler_line(user, section, name, value, 0);
}

static void set_defaults(struct pstate *s)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		if (!k->def || s->seen[i])
			continue;
		/* the handler writes the default as if it were in the file (line 0) */
		handler_line(s, k->section, k->name, k->def, 0);
		s->seen[i] = 0;
	}
}

static void msg(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void msg(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;
	if (!err || !cap)
		return;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
}

static int join(char *out, size_t cap, const char *a, const char *b)
{
	int k = snprintf(out, cap, "%s%s", a, b);
	return k < 0 || (size_t)k >= cap ? -1 : 0;
}

int pconfig_parse(struct pconfig **out, char *err, size_t errcap, const char *name, const char *text, size_t len,
		  int mode_override)
{
	struct pstate s;
	struct pconfig *c;
	char *buf = NULL;
	int r;
	*out = NULL;
	if (err && errcap)
		err[0] = 0;
	if (len > PCONFIG_FILE_MAX)
		return APP_ETOOBIG;
	if (!(c = calloc(1, sizeof *c)))
		return APP_ENOMEM;
	proxy_config_default(&c->proxy);
	memset(&s, 0, sizeof s);
	s.c = c;
	s.err = err;
	s.errcap = errcap;
	s.name = name;
	s.idle_s = 300;
	s.maxconn = 64;
	if (!(buf = malloc(len + 1))) {
		pconfig_free(c);
		return APP_ENOMEM;
	}
	memcpy(buf, text, len);
	buf[len] = 0;
	int ir = ini_parse_string(buf, handler, &s);
	free(buf);
	if (!s.bad && ir != 0) {
		s.bad = 1;
		s.rc = APP_EPARSE;
		if (err && errcap)
			snprintf(err, errcap, "%s:%d: syntax error", name, ir);
	}
	if (!s.bad)
		set_defaults(&s);
	r = s.bad ? s.rc : 0;
	if (r)
		goto fail;
	c->proxy.idle_timeout_ms = s.idle_s * 1000u;
	c->proxy.max_connections = s.maxconn;
	if (mode_override)
		c->mode = (enum pconfig_mode)mode_override;
	/* derived defaults */
	char tmp[PCONFIG_STR_MAX + 64];
	r = APP_EINVAL;
	if (!c->ca_dir[0] && join(c->ca_dir, sizeof c->ca_dir, c->state_dir, "/dev-ca") != 0)
		goto toolong;
	if (!c->blob_dir[0] && join(c->blob_dir, sizeof c->blob_dir, c->state_dir, "/blobs") != 0)
		goto toolong;
	if (!c->control[0]) {
		if (c->mode == PCONFIG_DEV)
			snprintf(tmp, sizeof tmp, "unix:%s/run/control.sock", c->state_dir);
		else
			snprintf(tmp, sizeof tmp, "vsock:any:2080");
		if (strlen(tmp) > CHANNEL_ADDR_MAX)
			goto toolong;
		memcpy(c->control, tmp, strlen(tmp) + 1);
	}
	if (!c->egress[0]) {
		if (c->mode == PCONFIG_DEV)
			snprintf(tmp, sizeof tmp, "unix:%s/run/egress.sock", c->state_dir);
		else
			snprintf(tmp, sizeof tmp, "vsock:any:1080");
		if (strlen(tmp) > CHANNEL_ADDR_MAX)
			goto toolong;
		memcpy(c->egress, tmp, strlen(tmp) + 1);
	}
	struct channel_addr a;
	if (channel_addr_parse(&a, c->control) != 0) {
		msg(err, errcap, "%s: [channel] control: '%s' is not a channel address", name, c->control);
		goto fail;
	}
	if (channel_addr_parse(&a, c->egress) != 0) {
		msg(err, errcap, "%s: [channel] egress: '%s' is not a channel address", name, c->egress);
		goto fail;
	}
	if (c->mode == PCONFIG_DEV && !c->binary[0]) {
		msg(err, errcap, "%s: [enclave] binary: required in dev mode", name);
		goto fail;
	}
	if (c->mode == PCONFIG_NITRO && !c->eif[0]) {
		msg(err, errcap, "%s: [enclave] eif: required in nitro mode", name);
		goto fail;
	}
	if (c->restart_min_ms > c->restart_max_ms) {
		msg(err, errcap, "%s: [enclave] restart_min_ms is above restart_max_ms", name);
		goto fail;
	}
	*out = c;
	return 0;
toolong:
	if (err && errcap)
		snprintf(err, errcap, "%s: [parent] state_dir: too long for the derived paths", name);
fail:
	pconfig_free(c);
	return r;
}

int pconfig_load(struct pconfig **out, char *err, size_t errcap, const char *path, int mode_override)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t n = 0;
	int r;
	*out = NULL;
	if (!f) {
		if (err && errcap)
			snprintf(err, errcap, "%s: %s", path, strerror(errno));
		return errno == ENOENT ? APP_ENOENT : APP_EIO;
	}
	if (!(buf = malloc(PCONFIG_FILE_MAX + 1))) {
		fclose(f);
		return APP_ENOMEM;
	}
	n = fread(buf, 1, PCONFIG_FILE_MAX + 1, f);
	r = ferror(f) ? APP_EIO : n > PCONFIG_FILE_MAX ? APP_ETOOBIG : 0;
	fclose(f);
	if (r == 0)
		r = pconfig_parse(out, err, errcap, path, buf, n, mode_override);
	else if (err && errcap)
		snprintf(err, errcap, "%s: %s", path, r == APP_ETOOBIG ? "larger than 256 KiB" : "read error");
	free(buf);
	return r;
}

void pconfig_free(struct pconfig *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nargs; i++)
		free(c->args[i]);
	free(c);
}

void pconfig_print_help(FILE *f)
{
	const char *sec = "";
	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(sec, keys[i].section)) {
			sec = keys[i].section;
			fprintf(f, "%s[%s]\n", i ? "\n" : "", sec);
		}
		fprintf(f, "%-20s default %-28s %s\n", keys[i].name, keys[i].def ? keys[i].def : "-", keys[i].doc);
	}
}
