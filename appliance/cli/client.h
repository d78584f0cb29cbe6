/*
 * client.h: what `appliance discover`, `appliance submit` and `appliance job`
 * share (implemented in cmd_discover.c and cmd_job.c): the relay pool and
 * the trust policy a client applies to instances (PROTOCOL.md "Instance
 * announcement (kind 13793, NEC-02)", "Release signature (kind 63794,
 * NEC-05)", "Result (kind 6720)").
 *
 * Trust policy, the same for every command:
 *   - the announcement (or a result's tee_root) is a valid NEC event whose
 *     attestation document chains to AWS Nitro Enclaves Root G1, or to a
 *     development root given with --root when --allow-dev is set; debug-mode
 *     documents (PCR0 all zero) are always refused (attest.h, nec.h);
 *   - with --trust NPUB... [--threshold K]: at least K distinct trusted
 *     maintainers signed a release (63794; embedded in the announcement or
 *     published on the relays) naming the attested PCR0/1/2 with the
 *     announcement's r and t; and no trusted maintainer revoked (63798) the
 *     build.
 */
#ifndef APPLIANCE_CLI_CLIENT_H
#define APPLIANCE_CLI_CLIENT_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>

#include "appliance/attest.h"
#include "appliance/err.h"
#include "relay-client/pool.h"

struct event;
struct filter;
struct keypair;

#define CLI_TRUST_MAX 64     /* --trust keys */
#define CLI_ROOTS_MAX 7      /* --root files (ATTEST_ROOTS_MAX minus AWS's) */
#define CLI_RELEASES_MAX 256 /* release signatures and revocations kept from the relays */
#define CLI_REASON_MAX 320   /* bytes of a refusal reason */
#define CLI_SIGNERS_MAX 16   /* signers listed per instance */

/* Long options shared by discover, submit and job (values for getopt_long). */
enum {
	CLI_O_RELAY = 1000,
	CLI_O_CA_FILE,
	CLI_O_TRUST,
	CLI_O_THRESHOLD,
	CLI_O_ALLOW_DEV,
	CLI_O_ROOT,
	CLI_O_TIMEOUT,
	CLI_O_JSON,
	CLI_O_VERBOSE,
};

#define CLI_CLIENT_LONGOPTS                                                                              \
	{"relay", required_argument, 0, CLI_O_RELAY}, {"ca-file", required_argument, 0, CLI_O_CA_FILE},     \
		{"trust", required_argument, 0, CLI_O_TRUST},                                               \
		{"threshold", required_argument, 0, CLI_O_THRESHOLD},                                       \
		{"allow-dev", no_argument, 0, CLI_O_ALLOW_DEV}, {"root", required_argument, 0, CLI_O_ROOT}, \
		{"timeout", required_argument, 0, CLI_O_TIMEOUT}, {"json", no_argument, 0, CLI_O_JSON},     \
		{"verbose", no_argument, 0, CLI_O_VERBOSE}

/* Help text of the shared options. */
extern const char cli_client_help[];

/* A client session: options, the verifier, the relay pool, fetched releases. */
struct cli_client {
	const char *cmd; /* "discover", "submit", "job status", ... (for messages) */
	const char *urls[RELAY_POOL_MAX_RELAYS];
	size_t nurls;
	const char *ca_file;
	uint8_t trusted[CLI_TRUST_MAX][32];
	size_t ntrusted;
	unsigned long long threshold; /* 0: not given (1 with --trust) */
	const char *roots[CLI_ROOTS_MAX];
	size_t nroots;
	int allow_dev, json, verbose;
	unsigned long long timeout_s; /* --timeout; 0 = the command's default */
	struct attest_verifier *v;
	struct relay_pool *pool;
	struct event *releases[CLI_RELEASES_MAX]; /* 63794 by trusted maintainers (owned) */
	size_t nreleases;
	struct event *revocations[CLI_RELEASES_MAX]; /* 63798 by trusted maintainers (owned) */
	size_t nrevocations;
};

/* cli_client_init: an empty session for command `cmd` (a static string). */
void cli_client_init(struct cli_client *c, const char *cmd);

/*
 * cli_client_opt: one shared option (opt = a CLI_O_* value, arg its
 * argument). Returns 0 when handled, -1 when opt is not a shared option,
 * CLI_USAGE (message printed) for a bad value.
 */
int cli_client_opt(struct cli_client *c, int opt, const char *arg);

/*
 * cli_client_start: checks the options (at least one relay, threshold <=
 * trusted keys), makes the attestation verifier with the --root files and
 * the relay pool with every relay. Returns 0 or an exit code (message
 * printed).
 */
int cli_client_start(struct cli_client *c);

/* cli_client_free: closes the pool, frees everything; the struct may be reused after cli_client_init. */
void cli_client_free(struct cli_client *c);

/*
 * cli_fetch: subscribes with filters[0..n) on every relay and hands each
 * verified, deduplicated event to on_event (which may take it by setting
 * *ev = NULL) until every relay sent EOSE (or closed or failed), or
 * timeout_ms passed, or SIGINT/SIGTERM. Returns 0 (every relay done and at
 * least one answered); APP_ETIMEOUT (some relay still owed EOSE: what
 * arrived was delivered); APP_ECONN (no relay answered); APP_ECANCELED
 * (interrupted); APP_ELIMIT, APP_ENOMEM.
 */
int cli_fetch(struct cli_client *c, const struct filter *const *filters, size_t n, unsigned timeout_ms,
	      void (*on_event)(void *arg, struct event **ev), void *arg) APP_WUR;

/*
 * cli_client_load_releases: with --trust, fetches the trusted maintainers'
 * release signatures (63794) and revocations (63798) from the relays into
 * c->releases / c->revocations (at most CLI_RELEASES_MAX each; invalid ones
 * are kept out). Without --trust, does nothing. Returns 0 or the errors of
 * cli_fetch (APP_ETIMEOUT is not an error here: what arrived is used).
 */
int cli_client_load_releases(struct cli_client *c) APP_WUR;

/* The outcome of checking an instance (or a result's attestation) against the policy. */
struct cli_verdict {
	int ok;                     /* accepted */
	int dev;                    /* the attestation chains to a development root */
	char check[24];             /* "ok", or which check refused: "attestation", "release", ... */
	char reason[CLI_REASON_MAX]; /* why it was refused; "" when accepted */
	size_t nvalid;              /* distinct trusted maintainers whose release names this build */
	uint8_t signers[CLI_SIGNERS_MAX][32]; /* distinct signers of valid releases of this build */
	uint8_t signer_trusted[CLI_SIGNERS_MAX];
	size_t nsigners;
	struct attest_doc *doc;     /* the verified document (NULL when refused before it) */
};

/* cli_verdict_clear: frees doc and zeroes the verdict. */
void cli_verdict_clear(struct cli_verdict *v);

/*
 * cli_check_announcement: applies the trust policy to an instance
 * announcement: nec_announcement_verify at the current time (dev only with
 * --allow-dev), kind-5720 support (["k","5720"]), then cli_check_build with
 * its r tag and embedded releases. Fills *out (clear it with
 * cli_verdict_clear). Returns 0 when accepted; APP_EREFUSED (out->reason
 * says why); APP_ENOMEM.
 */
int cli_check_announcement(struct cli_client *c, const struct event *ann, struct cli_verdict *out) APP_WUR;

/*
 * cli_check_build: the release part of the policy for a verified document:
 * lists the signers of valid releases naming doc's PCR0/1/2 with `repo` and
 * t = dev (ann's embedded releases, when ann is not NULL, and the fetched
 * ones); with --trust requires --threshold trusted ones and no trusted
 * revocation. Returns 0 (out->ok set), APP_EREFUSED (out->reason),
 * APP_ENOMEM. out->doc is not touched.
 */
int cli_check_build(struct cli_client *c, const struct attest_doc *doc, int dev, const char *repo,
		    const struct event *ann, struct cli_verdict *out) APP_WUR;

/*
 * cli_check_attestation: applies the trust policy's attestation part to an
 * attestation event (23793, e.g. a result's tee_root): nec_attestation_verify
 * at unix time `at` (0: now), dev only with --allow-dev. Fills out->doc,
 * out->dev (clear with cli_verdict_clear). Returns 0; APP_EREFUSED
 * (out->reason); APP_ENOMEM. The release part is cli_check_build.
 */
int cli_check_attestation(struct cli_client *c, const struct event *att, uint64_t at, struct cli_verdict *out) APP_WUR;

/* cli_parse_pubkey: an npub or 64 hex digits into out. Returns 0 or -1. */
int cli_parse_pubkey(uint8_t out[32], const char *s);

/* cli_npub_short: "npub1abcdef…wxyz" of pub into buf (at least 24 bytes). */
void cli_npub_short(char *buf, size_t cap, const uint8_t pub[32]);

/* cli_install_signals: SIGINT/SIGTERM set a flag read by cli_interrupted() (instead of killing). */
void cli_install_signals(void);

/* cli_interrupted: 1 after SIGINT/SIGTERM, else 0. */
int cli_interrupted(void);

/* cli_mono_ms: a monotonic clock in milliseconds. */
uint64_t cli_mono_ms(void);

/* ---- results (cmd_job.c) ---- */

#define CLI_RESULT_MAX_DATASETS 64

/* The figures of a result's metrics that the summary shows. */
struct cli_metrics {
	double accuracy, log_loss, auc, train_ms;
	int has_auc, on_train;
	uint64_t samples, train_samples, validation_samples, features, classes, epochs_run;
};

/* A verified job result (cli_result_verify). */
struct cli_result {
	struct cli_metrics m;
	char *content;          /* the result JSON (decrypted), NUL-terminated */
	size_t content_len;
	char *metrics;          /* JSON.stringify of the metrics object, NUL-terminated */
	size_t metrics_len;
	uint8_t *model;         /* the model file bytes */
	size_t model_len;
	uint8_t model_sha256[32];
	uint8_t digest[32];
	uint8_t ds_sha256[CLI_RESULT_MAX_DATASETS][32];
	uint64_t ds_bytes[CLI_RESULT_MAX_DATASETS];
	size_t nds;
	uint64_t amount_msat;   /* the amount tag (0 when absent: a free job or credit) */
	int model_inline;       /* carried inline (else fetched from the blob store) */
	char *tee_root;         /* JSON of the 23793 event */
	struct cli_verdict att; /* the tee_root attestation and the build check */
};

/* cli_result_free: frees and wipes; the struct may be reused. NULL is a no-op. */
void cli_result_free(struct cli_result *r);

/* What a result must match (cli_result_verify). */
struct cli_result_expect {
	const uint8_t *request_id;       /* 32 bytes: the job request id */
	const uint8_t *instance;         /* 32 bytes: the instance pubkey (NULL: whoever signed, checked by tee_root) */
	const struct keypair *client;    /* our key (decrypts a private result; checks ["p", us]); may be NULL */
	const struct attest_doc *pcrs;   /* PCR0/1/2 the attestation must carry (the announcement's); may be NULL */
	const char *repo;                /* r of the releases for --trust (the announcement's); may be NULL */
	const struct event *ann;         /* the announcement (embedded releases); may be NULL */
	size_t ndatasets;                /* expected number of datasets (0: not checked) */
	const uint8_t (*ds_sha256)[32];  /* known dataset hashes (local files), or NULL; ds_known[i] says which */
	const uint8_t *ds_known;
	uint64_t at;                     /* evaluate the attestation at this unix time (0: now) */
};

/*
 * cli_result_verify: checks a job result (kind 6720) as PROTOCOL.md
 * "Verifying a result" says: id and signature, author, ["e", request],
 * ["p", us], decryption of a private result, the content's shape, the model
 * bytes (inline, or fetched from the blob store and opened) against their
 * sha256, the datasets, the result digest recomputed from JSON.stringify of
 * the metrics, and the tee_root attestation: valid under the trust policy,
 * public_key = the author, user_data = the digest, PCRs = ex->pcrs, and the
 * release policy (--trust) for ex->repo. Fills *out (cli_result_free).
 * Returns 0; APP_EREFUSED with why[0..cap) naming the failed check;
 * APP_ENOMEM; APP_ECONN (the model blob could not be fetched: why says so).
 */
int cli_result_verify(struct cli_client *c, struct cli_result *out, char *why, size_t cap, const struct event *res,
		      const struct cli_result_expect *ex) APP_WUR;

/*
 * cli_result_save: writes DIR/model.bin, DIR/result.json, DIR/metrics.json,
 * DIR/tee_root.json and DIR/result-event.json (DIR is created, mode 0700).
 * Returns 0 or an exit code (message printed).
 */
int cli_result_save(const char *cmd, const char *dir, const struct cli_result *r, const struct event *res);

/*
 * cli_result_print: the human summary of a verified result on stdout
 * (accuracy, log loss, AUC, samples, model sha256, attested PCR0, paid).
 */
void cli_result_print(const struct cli_result *r, const struct event *res, const char *dir);

/*
 * cli_result_json: the same as one JSON object (a new string, free with
 * free()); NULL on ENOMEM.
 */
char *cli_result_json(const struct cli_result *r, const struct event *res, const char *dir);

#endif
