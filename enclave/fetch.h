/*
 * fetch.h: dataset downloads and blob uploads with libcurl (DESIGN §5.3
 * step 5, §5.4; PROTOCOL.md "Datasets of a job").
 *
 * URLs: https:// always; http:// only with [fetch] allow_http (development);
 * walrus:BLOBID (BLOBID = [A-Za-z0-9_-]{1,128}) becomes
 * <walrus_aggregator>/v1/blobs/BLOBID. The host (and port) must be in
 * [fetch] allowed_host, or be the configured aggregator or blob store; every
 * redirect is followed by hand (at most max_redirects) and checked the same
 * way, so a server cannot send us elsewhere. libcurl is told the allowed
 * protocols, never uses proxies from the environment (only [fetch] proxy),
 * checks TLS certificates and host names, and runs without signals.
 *
 * Size: the quote needs a dataset's size before payment: fetch_probe sends a
 * HEAD request and requires a Content-Length (a server that sends none is
 * refused: "size unknown"). fetch_get then refuses a body longer than the
 * size the quote was made for. Bodies stream to a sink callback (the CSV
 * parser, through sealed_dec for sealed datasets): nothing is buffered whole.
 *
 * Reasons (why[]) are short texts for the client's error feedback; they never
 * contain the URL (which may hold a token), only what went wrong:
 * "unreachable (Couldn't connect to server)", "HTTP status 404", "timed out
 * after 120 s", ... Every function is thread-safe (one easy handle per call)
 * once fetch_global_init ran.
 */
#ifndef ENCLAVE_FETCH_H
#define ENCLAVE_FETCH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"

struct econfig;

#define FETCH_WHY_MAX 200

/* fetch_global_init: curl_global_init; call once before any thread starts. Returns 0 or APP_EINTERNAL. */
int fetch_global_init(void) APP_WUR;

/* fetch_global_cleanup: curl_global_cleanup, after every thread stopped. */
void fetch_global_cleanup(void);

/*
 * fetch_url_check: 0 when url may be fetched under cfg (scheme, walrus
 * form, host allowlist, length); APP_EREFUSED with why otherwise; APP_ENOMEM.
 */
int fetch_url_check(const struct econfig *cfg, const char *url, char *why, size_t whycap) APP_WUR;

/*
 * fetch_probe: the size in bytes of the resource at url (HEAD, redirects
 * followed and checked). Returns 0 with *size; APP_EREFUSED (URL or a
 * redirect not allowed); APP_ECONN (unreachable); APP_EPROTO (HTTP status
 * other than 2xx, too many redirects); APP_ENOTFOUND (no Content-Length);
 * APP_ETOOBIG (larger than max_bytes); APP_ETIMEOUT; APP_ECANCELED (*cancel
 * set); APP_ENOMEM. cancel may be NULL.
 */
int fetch_probe(const struct econfig *cfg, const char *url, uint64_t max_bytes, uint64_t *size, char *why,
		size_t whycap, const atomic_int *cancel) APP_WUR;

/* fetch_sink_fn: receives body bytes in order; returns 0 or an APP_E* code that aborts the transfer. */
typedef int (*fetch_sink_fn)(void *arg, const uint8_t *data, size_t len);

/*
 * fetch_get: GETs url (redirects followed and checked), streaming the 2xx
 * body to sink. Returns 0 with *got bytes; the codes of fetch_probe
 * (APP_ETOOBIG when the body passes max_bytes); the sink's error (why is
 * then left for the caller).
 */
int fetch_get(const struct econfig *cfg, const char *url, uint64_t max_bytes, fetch_sink_fn sink, void *arg,
	      uint64_t *got, char *why, size_t whycap, const atomic_int *cancel) APP_WUR;

/*
 * fetch_put: HTTP PUT of buf[0..len) to url (no redirects followed), with
 * Content-Type application/octet-stream. Returns 0 on a 2xx answer; the
 * codes of fetch_probe otherwise.
 */
int fetch_put(const struct econfig *cfg, const char *url, const uint8_t *buf, size_t len, char *why, size_t whycap,
	      const atomic_int *cancel) APP_WUR;

#endif
