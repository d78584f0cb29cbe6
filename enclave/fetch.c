/*
 * fetch.c: libcurl downloads and uploads under the instance's policy (fetch.h).
 */
#include "enclave/fetch.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "enclave/econfig.h"
#include "enclave/job.h"

#define DISCARD_MAX (1u << 20) /* bytes of an error or redirect body we read and drop */
#define WALRUS_ID_MAX 128

int fetch_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : APP_EINTERNAL;
}

void fetch_global_cleanup(void)
{
	curl_global_cleanup();
}

static int whyf(char *why, size_t cap, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int whyf(char *why, size_t cap, int code, const char *fmt, ...)
{
	if (why && cap) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, cap, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* host and port of an absolute http(s) URL; host lowercase, IPv6 without brackets. */
static int url_host(const char *url, char *scheme, size_t scap, char *host, size_t hcap, unsigned *port)
{
	CURLU *u = curl_url();
	char *s = NULL, *h = NULL, *p = NULL;
	int r = -1;
	if (!u)
		return -1;
	if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_SCHEME, &s, 0) != CURLUE_OK || curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) != CURLUE_OK)
		goto out;
	size_t hl = strlen(h);
	const char *hs = h;
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		hs = h + 1;
		hl -= 2;
	}
	if (strlen(s) >= scap || hl >= hcap || hl == 0)
		goto out;
	snprintf(scheme, scap, "%s", s);
	for (size_t i = 0; i < hl; i++)
		host[i] = (char)((hs[i] >= 'A' && hs[i] <= 'Z') ? hs[i] + 32 : hs[i]);
	host[hl] = 0;
	char *end;
	unsigned long pv = strtoul(p, &end, 10);
	if (*end || pv == 0 || pv > 65535)
		goto out;
	*port = (unsigned)pv;
	r = 0;
out:
	curl_free(s);
	curl_free(h);
	curl_free(p);
	curl_url_cleanup(u);
	return r;
}

/* The operator's own endpoints (aggregator, blob store) are allowed implicitly. */
static int same_host(const char *base, const char *host, unsigned port)
{
	char s[16], h[256];
	unsigned p;
	return base && url_host(base, s, sizeof s, h, sizeof h, &p) == 0 && !strcmp(h, host) && p == port;
}

static int host_allowed(const struct econfig *cfg, const char *host, unsigned port)
{
	return econfig_host_allowed(cfg, host, port) || same_host(cfg->walrus_aggregator, host, port) ||
	       same_host(cfg->put_url, host, port);
}

int fetch_url_check(const struct econfig *cfg, const char *url, char *why, size_t whycap)
{
	char scheme[16], host[256];
	unsigned port;
	size_t len = strlen(url);
	if (len > JOB_URL_MAX)
		return whyf(why, whycap, APP_EREFUSED, "URL longer than %d bytes", JOB_URL_MAX);
	if (!strncmp(url, "walrus:", 7)) {
		const char *id = url + 7;
		size_t n = strlen(id);
		if (!cfg->walrus_aggregator)
			return whyf(why, whycap, APP_EREFUSED, "walrus: URLs are not supported by this instance");
		if (n == 0 || n > WALRUS_ID_MAX)
			return whyf(why, whycap, APP_EREFUSED, "walrus: blob id of 1..%d characters expected", WALRUS_ID_MAX);
		for (size_t i = 0; i < n; i++)
			if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') ||
			      (id[i] >= '0' && id[i] <= '9') || id[i] == '-' || id[i] == '_'))
				return whyf(why, whycap, APP_EREFUSED, "walrus: the blob id must be base64url ([A-Za-z0-9_-])");
		return 0;
	}
	if (strncasecmp(url, "https://", 8) && strncasecmp(url, "http://", 7))
		return whyf(why, whycap, APP_EREFUSED, "URL scheme not supported (https://%s or walrus:BLOBID)",
			    cfg->allow_http ? ", http://" : "");
	if (url_host(url, scheme, sizeof scheme, host, sizeof host, &port) != 0)
		return whyf(why, whycap, APP_EREFUSED, "malformed URL");
	if (!strcmp(scheme, "http") && !cfg->allow_http)
		return whyf(why, whycap, APP_EREFUSED, "http:// is not allowed by this instance (use https://)");
	if (strcmp(scheme, "http") && strcmp(scheme, "https"))
		return whyf(why, whycap, APP_EREFUSED, "URL scheme not supported");
	if (!host_allowed(cfg, host, port)) {
		char h[48];
		size_t j = 0;
		for (size_t i = 0; host[i] && j < 40; i++)
			h[j++] = host[i] >= 0x20 && host[i] < 0x7f && host[i] != '\'' ? host[i] : '?';
		h[j] = 0;
		return whyf(why, whycap, APP_EREFUSED, "host '%s' port %u is not allowed by this instance", h, port);
	}
	return 0;
}

/* walrus:ID -> aggregator URL; others copied. */
static char *resolve(const struct econfig *cfg, const char *url)
{
	if (strncmp(url, "walrus:", 7)) {
		return strdup(url);
	}
	const char *base = cfg->walrus_aggregator;
	size_t bl = strlen(base);
	while (bl && base[bl - 1] == '/')
		bl--;
	size_t n = bl + strlen("/v1/blobs/") + strlen(url + 7) + 1;
	char *out = malloc(n);
	if (out)
		snprintf(out, n, "%.*s/v1/blobs/%s", (int)bl, base, url + 7);
	return out;
}

struct xfer {
	CURL *h;
	fetch_sink_fn sink;
	void *arg;
	uint64_t max, got, discarded;
	int too_big, sink_err, discard_over;
	const atomic_int *cancel;
};

static size_t write_cb(char *p, size_t sz, size_t nm, void *ud)
{
	struct xfer *x = ud;
	size_t n = sz * nm;
	long code = 0;
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
	if (code < 200 || code >= 300) {
		if (n > DISCARD_MAX - x->discarded) {
			x->discard_over = 1;
			return 0;
		}
		x->discarded += n;
		return n;
	}
	if (n > x->max - x->got) {
		x->too_big = 1;
		return 0;
	}
	x->got += n;
	if (x->sink) {
		int r = x->sink(x->arg, (const uint8_t *)p, n);
		if (r) {
			x->sink_err = r;
			return 0;
		}
	}
	return n;
}

static int progress_cb(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct xfer *x = ud;
	(void)dt, (void)dn, (void)ut, (void)un;
	return x->cancel && atomic_load(x->cancel) ? 1 : 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

enum method { M_HEAD, M_GET, M_PUT };

struct put_src {
	const uint8_t *p;
	size_t left;
};

static size_t read_cb(char *buf, size_t sz, size_t nm, void *ud)
{
	struct put_src *s = ud;
	size_t n = sz * nm;
	if (n > s->left)
		n = s->left;
	memcpy(buf, s->p, n);
	s->p += n;
	s->left -= n;
	return n;
}

static int map_curl(CURLcode c, const struct xfer *x, const char *errbuf, unsigned timeout_s, char *why, size_t cap)
{
	if (x->too_big || c == CURLE_FILESIZE_EXCEEDED)
		return whyf(why, cap, APP_ETOOBIG, "larger than %llu bytes", (unsigned long long)x->max);
	if (x->sink_err)
		return x->sink_err;
	switch (c) {
	case CURLE_OPERATION_TIMEDOUT: return whyf(why, cap, APP_ETIMEOUT, "timed out after %u s", timeout_s);
	case CURLE_ABORTED_BY_CALLBACK: return whyf(why, cap, APP_ECANCELED, "canceled");
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		return whyf(why, cap, APP_ECONN, "unreachable (%s)", curl_easy_strerror(c));
	case CURLE_UNSUPPORTED_PROTOCOL: return whyf(why, cap, APP_EREFUSED, "URL scheme not allowed");
	case CURLE_PROXY: {
		/* the parent's egress proxy answered (SOCKS5 REP, RFC 1928): say which refusal it was */
		long pe = 0;
		if (curl_easy_getinfo(x->h, CURLINFO_PROXY_ERROR, &pe) == CURLE_OK && pe == CURLPX_REPLY_NOT_ALLOWED)
			return whyf(why, cap, APP_EREFUSED, "refused by the parent's egress allowlist");
		return whyf(why, cap, APP_ECONN, "unreachable through the egress proxy (%s)", curl_easy_strerror(c));
	}
	case CURLE_OUT_OF_MEMORY: return whyf(why, cap, APP_ENOMEM, "out of memory");
	default: break;
	}
	if (x->discard_over)
		return whyf(why, cap, APP_EPROTO, "error body too long");
	(void)errbuf; /* may name the host or URL: not passed on */
	return whyf(why, cap, APP_ECONN, "transfer failed (%s)", curl_easy_strerror(c));
}

static int transfer(const struct econfig *cfg, enum method m, const char *url0, uint64_t max_bytes, fetch_sink_fn sink,
		    void *arg, uint64_t *size, const uint8_t *body, size_t body_len, char *why, size_t cap,
		    const atomic_int *cancel)
{
	struct xfer x;
	char errbuf[CURL_ERROR_SIZE];
	char *url = NULL;
	int r = APP_ENOMEM;
	unsigned timeout_s = cfg->fetch_timeout;
	uint64_t deadline = now_ms() + (uint64_t)timeout_s * 1000;
	unsigned hops = m == M_PUT ? 0 : cfg->max_redirects;
	memset(&x, 0, sizeof x);
	if ((r = fetch_url_check(cfg, url0, why, cap)) != 0)
		return r;
	if (!(url = resolve(cfg, url0)))
		return whyf(why, cap, APP_ENOMEM, "out of memory");
	for (unsigned hop = 0;; hop++) {
		struct put_src src = {body, body_len};
		uint64_t t = now_ms();
		if (t >= deadline) {
			r = whyf(why, cap, APP_ETIMEOUT, "timed out after %u s", timeout_s);
			goto out;
		}
		memset(&x, 0, sizeof x);
		x.sink = sink;
		x.arg = arg;
		x.max = max_bytes;
		x.cancel = cancel;
		if (!(x.h = curl_easy_init())) {
			r = whyf(why, cap, APP_ENOMEM, "out of memory");
			goto out;
		}
		errbuf[0] = 0;
		curl_easy_setopt(x.h, CURLOPT_URL, url);
		curl_easy_setopt(x.h, CURLOPT_PROTOCOLS_STR, cfg->allow_http ? "http,https" : "https");
		curl_easy_setopt(x.h, CURLOPT_FOLLOWLOCATION, 0L);
		curl_easy_setopt(x.h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(x.h, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->connect_timeout * 1000);
		curl_easy_setopt(x.h, CURLOPT_TIMEOUT_MS, (long)(deadline - t));
		curl_easy_setopt(x.h, CURLOPT_PROXY, cfg->proxy ? cfg->proxy : "");
		if (cfg->ca_file)
			curl_easy_setopt(x.h, CURLOPT_CAINFO, cfg->ca_file);
		curl_easy_setopt(x.h, CURLOPT_USERAGENT, "appliance-enclave");
		curl_easy_setopt(x.h, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(x.h, CURLOPT_WRITEFUNCTION, write_cb);
		curl_easy_setopt(x.h, CURLOPT_WRITEDATA, &x);
		curl_easy_setopt(x.h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(x.h, CURLOPT_XFERINFOFUNCTION, progress_cb);
		curl_easy_setopt(x.h, CURLOPT_XFERINFODATA, &x);
		if (m == M_HEAD) {
			curl_easy_setopt(x.h, CURLOPT_NOBODY, 1L);
		} else if (m == M_GET) {
			curl_easy_setopt(x.h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)(max_bytes > INT64_MAX ? INT64_MAX : max_bytes));
		} else {
			curl_easy_setopt(x.h, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(x.h, CURLOPT_READFUNCTION, read_cb);
			curl_easy_setopt(x.h, CURLOPT_READDATA, &src);
			curl_easy_setopt(x.h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)body_len);
		}
		struct curl_slist *hdr = NULL;
		if (m == M_PUT) {
			hdr = curl_slist_append(NULL, "Content-Type: application/octet-stream");
			struct curl_slist *h2 = hdr ? curl_slist_append(hdr, "Expect:") : NULL;
			if (h2)
				hdr = h2;
			curl_easy_setopt(x.h, CURLOPT_HTTPHEADER, hdr);
		}
		CURLcode c = curl_easy_perform(x.h);
		curl_slist_free_all(hdr);
		if (c != CURLE_OK) {
			r = map_curl(c, &x, errbuf, timeout_s, why, cap);
			goto out;
		}
		long code = 0;
		curl_easy_getinfo(x.h, CURLINFO_RESPONSE_CODE, &code);
		if (code >= 300 && code < 400 && m != M_PUT) {
			char *loc = NULL;
			curl_easy_getinfo(x.h, CURLINFO_REDIRECT_URL, &loc);
			if (!loc) {
				r = whyf(why, cap, APP_EPROTO, "HTTP status %ld without a Location", code);
				goto out;
			}
			if (hop >= hops) {
				r = whyf(why, cap, APP_EPROTO, "too many redirects (more than %u)", hops);
				goto out;
			}
			char rwhy[FETCH_WHY_MAX];
			if (fetch_url_check(cfg, loc, rwhy, sizeof rwhy) != 0 || !strncmp(loc, "walrus:", 7)) {
				r = whyf(why, cap, APP_EREFUSED, "redirected to a URL this instance does not allow (%s)", rwhy);
				goto out;
			}
			char *next = strdup(loc);
			if (!next) {
				r = whyf(why, cap, APP_ENOMEM, "out of memory");
				goto out;
			}
			free(url);
			url = next;
			curl_easy_cleanup(x.h);
			x.h = NULL;
			continue;
		}
		if (code < 200 || code >= 300) {
			r = whyf(why, cap, APP_EPROTO, "HTTP status %ld", code);
			goto out;
		}
		if (m == M_HEAD) {
			curl_off_t cl = -1;
			curl_easy_getinfo(x.h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
			if (cl < 0) {
				r = whyf(why, cap, APP_ENOTFOUND, "size unknown (the server sends no Content-Length)");
				goto out;
			}
			if ((uint64_t)cl > max_bytes) {
				r = whyf(why, cap, APP_ETOOBIG, "%llu bytes, over the limit of %llu bytes", (unsigned long long)cl,
					 (unsigned long long)max_bytes);
				goto out;
			}
			*size = (uint64_t)cl;
		} else if (size) {
			*size = x.got;
		}
		r = 0;
		goto out;
	}
out:
	if (x.h)
		curl_easy_cleanup(x.h);
	free(url);
	return r;
}

int fetch_probe(const struct econfig *cfg, const char *url, uint64_t max_bytes, uint64_t *size, char *why,
		size_t whycap, const atomic_int *cancel)
{
	return transfer(cfg, M_HEAD, url, max_bytes, NULL, NULL, size, NULL, 0, why, whycap, cancel);
}

int fetch_get(const struct econfig *cfg, const char *url, uint64_t max_bytes, fetch_sink_fn sink, void *arg,
	      uint64_t *got, char *why, size_t whycap, const atomic_int *cancel)
{
	uint64_t n = 0;
	int r = transfer(cfg, M_GET, url, max_bytes, sink, arg, &n, NULL, 0, why, whycap, cancel);
	if (got)
		*got = n;
	return r;
}

int fetch_put(const struct econfig *cfg, const char *url, const uint8_t *buf, size_t len, char *why, size_t whycap,
	      const atomic_int *cancel)
{
	return transfer(cfg, M_PUT, url, UINT64_MAX, NULL, NULL, NULL, buf, len, why, whycap, cancel);
}
