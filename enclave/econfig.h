/*
 * econfig.h: the configuration of appliance-enclave: an INI file read with
 * libinih (`appliance-enclave --config FILE`; `--check-config` validates and
 * prints the effective values). Every key, its default and its range are in
 * the table of econfig.c, printed by `appliance-enclave --help-config`, and
 * documented in PROTOCOL.md "Instance configuration".
 *
 *   [service]  name, version, repo, about, open, log_level, nsm, journal,
 *              announce_interval, keystore, release_file (repeatable)
 *   [relays]   relay (repeatable, at least one), inbox, ca_file
 *   [wallet]   nwc_uri_file, invoice_expiry, lookup_interval, timeout_ms
 *   [price]    base_msat, msat_per_unit, min_msat, max_msat
 *   [limits]   max_concurrent_jobs, max_queue, rate_requests, rate_window,
 *              max_dataset_bytes, max_datasets, job_timeout, max_result_bytes,
 *              max_train_threads, request_max_age, feedback_interval,
 *              max_request_bytes
 *   [fetch]    allowed_host (repeatable, at least one; "*" = any), allow_http,
 *              timeout, connect_timeout, max_redirects, walrus_aggregator,
 *              proxy
 *   [blobstore] put_url, get_url, inline_max
 *   [keystore] keystore, image, relay (repeatable), allow_dev, dev_root, store,
 *              repo, version, maintainer (repeatable), threshold, type,
 *              bind_host, checkpoint_interval, start_timeout, timeout_ms
 *              (enclave/sjboot.h: the sealed journal)
 *
 * The operator's NIP-47 URI is a secret: the configuration names only the
 * file that holds it (wallet.nwc_uri_file); the daemon reads that file once
 * at start and never logs or prints its content.
 *
 * Rules: unknown sections and keys are errors; a key other than the
 * repeatable ones given twice is an error; numbers are plain decimals (byte
 * sizes may end in k, M or G: powers of 1024); booleans are true/false,
 * yes/no, on/off or 1/0; lines are at most 200 bytes (libinih); comments
 * start with ';' or '#'. Errors name the file, the line, the section and the
 * key: "enclave.ini:12: [limits] max_queue: 0 is out of range 1..100000".
 */
#ifndef ENCLAVE_ECONFIG_H
#define ENCLAVE_ECONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "appliance/err.h"
#include "appliance/log.h"

#define ECONFIG_LIST_MAX 64       /* entries of a repeatable key */
#define ECONFIG_FILE_MAX (1 << 20) /* bytes of a configuration file */
#define ECONFIG_ERR_MAX 320       /* bytes of an error text */

struct econfig_list {
	char *v[ECONFIG_LIST_MAX];
	size_t n;
};

struct econfig {
	/* [service] */
	char *name, *version, *repo, *about;
	int open;               /* accept requests without a p tag */
	enum log_level log_level;
	char *nsm;              /* "/dev/nsm", "dev:PATH" or "unix:PATH" */
	char *journal;          /* path of the journal file */
	uint32_t announce_interval; /* seconds */
	char *keystore;         /* hex pubkey announced in ["keystore"], or NULL */
	struct econfig_list release_file; /* 63794 events (JSON files) embedded as ["release"] */
	/* [relays] */
	struct econfig_list relay;
	char *inbox;            /* the announcement's ["relay"]; default the first relay */
	char *ca_file;          /* extra CA (PEM) for wss:// and https:// (tests); NULL = system store */
	/* [wallet] */
	char *nwc_uri_file;
	uint32_t invoice_expiry;  /* seconds: quote and invoice lifetime */
	uint32_t lookup_interval; /* seconds between lookup_invoice polls of a pending invoice */
	uint32_t wallet_timeout_ms;
	/* [price] (msat) */
	uint64_t base_msat, msat_per_unit, min_msat, max_msat;
	/* [limits] */
	uint32_t max_concurrent_jobs, max_queue, rate_requests, rate_window;
	uint64_t max_dataset_bytes; /* sum over a job's datasets */
	uint32_t max_datasets, job_timeout;
	uint64_t max_result_bytes;  /* a result's model blob (sealed) */
	uint32_t max_train_threads, request_max_age, feedback_interval;
	uint64_t max_request_bytes; /* a request event's content */
	/* [fetch] */
	struct econfig_list allowed_host;
	int allow_http;
	uint32_t fetch_timeout, connect_timeout, max_redirects;
	char *walrus_aggregator; /* base URL; NULL = walrus: URLs refused */
	char *proxy;             /* libcurl proxy (socks5h://...), NULL = direct */
	/* [blobstore] */
	char *put_url, *get_url; /* templates with {sha256}; NULL = no blob store */
	uint64_t inline_max;     /* largest model carried inline (bytes) */
	/* [keystore]: the sealed journal (enclave/sjboot.h; validated by sjboot_validate) */
	struct econfig_list ks_keystore, ks_image, ks_relay, ks_maintainer;
	char *ks_store, *ks_dev_root, *ks_repo, *ks_version, *ks_type;
	int ks_allow_dev, ks_bind_host;
	uint32_t ks_threshold, ks_checkpoint_interval, ks_start_timeout, ks_timeout_ms;
};

/*
 * econfig_load: reads and validates the file at path (at most
 * ECONFIG_FILE_MAX bytes). Returns 0 with *out (econfig_free); APP_ENOENT /
 * APP_EIO (file), APP_ETOOBIG, APP_EINVAL (a value out of range, unknown
 * key, missing required key: err names it), APP_EPARSE (INI syntax),
 * APP_ENOMEM. err (may be NULL) receives one line.
 */
int econfig_load(struct econfig **out, char *err, size_t errcap, const char *path) APP_WUR;

/*
 * econfig_parse: as econfig_load for text[0..len) (need not be
 * NUL-terminated; a NUL byte ends it) named `name` in messages. Untrusted
 * input (fuzzed).
 */
int econfig_parse(struct econfig **out, char *err, size_t errcap, const char *name, const char *text,
		  size_t len) APP_WUR;

/* econfig_free: frees; NULL is a no-op. */
void econfig_free(struct econfig *c);

/* econfig_print: the effective configuration as INI text (every key; no secrets exist in it). */
void econfig_print(const struct econfig *c, FILE *f);

/* econfig_print_help: every key with its default, range and meaning. */
void econfig_print_help(FILE *f);

/*
 * econfig_host_allowed: 1 when host (lowercase name or IP literal) and port
 * are allowed by [fetch] allowed_host ("*", "host" = any port, "host:port"),
 * else 0.
 */
int econfig_host_allowed(const struct econfig *c, const char *host, unsigned port);

#endif
