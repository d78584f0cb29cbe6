/*
 * ksconfig.h: the configuration of appliance-keystore: an INI file read
 * with libinih (`appliance-keystore --config FILE`; `--check-config`
 * validates and prints; `--help-config` lists every key with its default,
 * range and meaning; PROTOCOL.md "Keystore RPC" documents them too).
 *
 *   [keystore] name, version, repo, about, nsm, log_level, allow_dev,
 *              dev_root, attestation_max_age, request_max_age, ttl,
 *              max_entries, max_per_pcrs, max_per_pubkey, max_revocations,
 *              trusted_maintainer (repeatable), revocation_file (repeatable),
 *              announce_interval, rate_requests, rate_window, rate_global
 *   [relays]   relay (repeatable, at least one), inbox, ca_file
 *
 * Rules (as the enclave's configuration): unknown sections and keys are
 * errors; a key other than the repeatable ones given twice is an error;
 * numbers are plain decimals; booleans true/false, yes/no, on/off, 1/0;
 * errors name the file, the line, the section and the key.
 */
#ifndef KEYSTORE_KSCONFIG_H
#define KEYSTORE_KSCONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "appliance/err.h"
#include "appliance/log.h"

#define KSCONFIG_LIST_MAX 64        /* entries of a repeatable key */
#define KSCONFIG_FILE_MAX (1 << 20) /* bytes of a configuration file */
#define KSCONFIG_ERR_MAX 320        /* bytes of an error text */

struct ksconfig_list {
	char *v[KSCONFIG_LIST_MAX];
	size_t n;
};

struct ksconfig {
	/* [keystore] */
	char *name, *version, *repo, *about;
	char *nsm;               /* "/dev/nsm", "dev:PATH" or "unix:PATH" */
	enum log_level log_level;
	int allow_dev;           /* accept attestations from the development root */
	char *dev_root;          /* PEM/DER file of the development root (required with allow_dev) */
	uint32_t attestation_max_age; /* seconds: freshness window of an attestation's timestamp */
	uint32_t request_max_age;     /* seconds: a request's created_at may be this far from now */
	uint32_t ttl;                 /* seconds an entry lives after its last set */
	uint32_t max_entries, max_per_pcrs, max_per_pubkey, max_revocations;
	struct ksconfig_list trusted_maintainer; /* hex pubkeys whose revocations are always accepted */
	struct ksconfig_list revocation_file;    /* kind-63798 events (JSON files) loaded at start */
	uint32_t announce_interval;   /* seconds between announcements */
	uint32_t rate_requests;       /* requests per pubkey per rate_window */
	uint32_t rate_window;         /* seconds */
	uint32_t rate_global;         /* requests per second, all pubkeys together */
	/* [relays] */
	struct ksconfig_list relay;
	char *inbox;   /* the announcement's relay tag; default the first relay */
	char *ca_file; /* extra CA (PEM) for wss:// (tests) */
};

/*
 * ksconfig_load: reads and validates the file at path. Returns 0 with *out
 * (ksconfig_free); APP_ENOENT / APP_EIO (file); APP_ETOOBIG; APP_EINVAL (a
 * value out of range, unknown or missing key: err names it); APP_EPARSE
 * (INI syntax); APP_ENOMEM. err (may be NULL) receives one line.
 */
int ksconfig_load(struct ksconfig **out, char *err, size_t errcap, const char *path) APP_WUR;

/* ksconfig_parse: as ksconfig_load for text[0..len) named `name` in messages. */
int ksconfig_parse(struct ksconfig **out, char *err, size_t errcap, const char *name, const char *text,
		   size_t len) APP_WUR;

/* ksconfig_free: frees; NULL is a no-op. */
void ksconfig_free(struct ksconfig *c);

/* ksconfig_print: the effective configuration as INI text. */
void ksconfig_print(const struct ksconfig *c, FILE *f);

/* ksconfig_print_help: every key with its default, range and meaning. */
void ksconfig_print_help(FILE *f);

#endif
