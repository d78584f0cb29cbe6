/*
 * nwc.h: a NIP-47 (Nostr Wallet Connect) client (reference
 * nostr-protocol.md §4; DESIGN §5.3, §6).
 *
 * Three layers:
 *  1. The connection URI: nostr+walletconnect://WALLET_PUBKEY?relay=URL[&relay=URL...]
 *     &secret=HEX[&lud16=ADDR] ("//" optional). The secret is the client's
 *     secret key: it lives only in a struct keypair (sodium_malloc, wiped),
 *     is never logged and never comes from argv.
 *  2. The message layer (pure functions, fuzzed): the info event (13194) and
 *     encryption negotiation (nip44_v2 when the wallet offers it, else
 *     nip04), request events (23194: ["p",wallet], ["encryption",...] for
 *     nip44_v2, ["expiration",t]), responses (23195: signed by the wallet,
 *     ["e",request id], ["p",client] (a p tag naming another key is refused;
 *     a missing one is tolerated: @getalby/sdk 7's NWCWalletService sends
 *     none); content decrypted with the request's scheme) and notifications
 *     (23197 nip44, 23196 nip04; ["p",client] required).
 *  3. A synchronous client over a relay pool (relay-client/pool.h): it
 *     subscribes to the wallet's info, responses and notifications before
 *     sending anything (responses are ephemeral events), sends a request,
 *     and services the pool until the matching response arrives or the
 *     timeout passes; retries a request that got no answer (except
 *     pay_invoice: see nwc_pay_invoice). Notifications are queued as they
 *     arrive and read with nwc_next_notification.
 *
 * Wallet errors are surfaced with their NIP-47 code (struct nwc_error);
 * library code logs request ids and payment_hash prefixes only.
 */
#ifndef BILLING_NWC_H
#define BILLING_NWC_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"

struct event;
struct keypair;

#define NWC_URI_MAX 4096          /* characters of a connection URI */
#define NWC_MAX_RELAYS 8          /* relays in one URI */
#define NWC_PAYLOAD_MAX 65535     /* bytes of a decrypted request/response/notification */
#define NWC_TEXT_MAX 4096         /* bytes kept of a string field (description, message, alias) */
#define NWC_INVOICE_MAX 8192      /* bytes of a bolt11 string in a result */
#define NWC_ENV_URI "APPLIANCE_NWC" /* environment variable holding a URI */
#define NWC_REQUEST_TTL 60        /* seconds: the request's NIP-40 expiration */

enum nwc_kind {
	NWC_KIND_INFO = 13194,
	NWC_KIND_REQUEST = 23194,
	NWC_KIND_RESPONSE = 23195,
	NWC_KIND_NOTIFICATION_NIP04 = 23196,
	NWC_KIND_NOTIFICATION = 23197,
};

enum nwc_encryption { NWC_NIP04 = 1, NWC_NIP44 = 2 };

/* NIP-47 error codes; NWC_E_UNKNOWN for any other text (kept in nwc_error.code_text). */
enum nwc_code {
	NWC_OK = 0,
	NWC_E_RATE_LIMITED,
	NWC_E_NOT_IMPLEMENTED,
	NWC_E_INSUFFICIENT_BALANCE,
	NWC_E_QUOTA_EXCEEDED,
	NWC_E_RESTRICTED,
	NWC_E_UNAUTHORIZED,
	NWC_E_INTERNAL,
	NWC_E_UNSUPPORTED_ENCRYPTION,
	NWC_E_OTHER,
	NWC_E_PAYMENT_FAILED,
	NWC_E_NOT_FOUND,
	NWC_E_UNKNOWN,
};

/* Methods (bit i = 1 << method). */
enum nwc_method {
	NWC_PAY_INVOICE = 0,
	NWC_MAKE_INVOICE,
	NWC_LOOKUP_INVOICE,
	NWC_GET_BALANCE,
	NWC_GET_INFO,
	NWC_LIST_TRANSACTIONS,
	NWC_PAY_KEYSEND,
	NWC_METHOD_COUNT
};

struct nwc_error {
	enum nwc_code code;
	char code_text[40];
	char message[256];
};

/* --- 1. connection URI --------------------------------------------------------------------------- */

struct nwc_uri; /* opaque: holds the client keypair */

/*
 * nwc_uri_parse: a connection URI from s[0..len) (surrounding whitespace
 * ignored). Query values are percent-decoded; relay URLs must be ws:// or
 * wss://; unknown parameters are ignored.
 * Returns 0 with *out (free with nwc_uri_free), or with *reason (static
 * text, never containing the secret): APP_ETOOBIG (over NWC_URI_MAX, more
 * than NWC_MAX_RELAYS relays); APP_EPARSE (not nostr+walletconnect:, no
 * or malformed wallet pubkey, no relay, no secret, duplicate secret, bad
 * percent-encoding, bad relay URL); APP_EBADKEY (secret not a valid key,
 * pubkey not on the curve); APP_ENOMEM. reason may be NULL.
 */
int nwc_uri_parse(struct nwc_uri **out, const char **reason, const char *s, size_t len) APP_WUR;

/*
 * nwc_uri_load: nwc_uri_parse of the file at `path` (first line), or, when
 * path is NULL, of the environment variable APPLIANCE_NWC. The text read is
 * wiped. Returns the errors of nwc_uri_parse, APP_ENOENT (no file, variable
 * unset), APP_EIO.
 */
int nwc_uri_load(struct nwc_uri **out, const char **reason, const char *path) APP_WUR;

/* nwc_uri_free: wipes and frees; NULL is a no-op. */
void nwc_uri_free(struct nwc_uri *u);

/* Accessors (valid while u lives). */
const uint8_t *nwc_uri_wallet_pubkey(const struct nwc_uri *u); /* 32 bytes */
const struct keypair *nwc_uri_keypair(const struct nwc_uri *u);
void nwc_uri_client_pubkey(const struct nwc_uri *u, uint8_t pub[32]);
size_t nwc_uri_relay_count(const struct nwc_uri *u);
const char *nwc_uri_relay(const struct nwc_uri *u, size_t i);
const char *nwc_uri_lud16(const struct nwc_uri *u); /* NULL when absent */

/* --- 2. messages ---------------------------------------------------------------------------------- */

/* What an info event (13194) says. */
struct nwc_info {
	uint32_t methods;     /* bit (1 << enum nwc_method) per method listed in content */
	int notifications;    /* "notifications" listed */
	int nip44;            /* encryption tag lists nip44_v2 */
	int nip04;            /* lists nip04, or there is no encryption tag (NIP-47: nip04 only) */
	uint64_t created_at;
};

/*
 * nwc_info_parse: an info event of `wallet` (kind 13194, author checked,
 * signature checked). Returns 0, APP_EPROTO (wrong kind or author),
 * APP_EBADSIG / APP_EBADID, APP_ENOMEM.
 */
int nwc_info_parse(struct nwc_info *out, const struct event *ev, const uint8_t wallet[32]) APP_WUR;

/* nwc_pick_encryption: nip44_v2 when offered, else nip04 (NIP-47 "Encryption negotiation"). */
enum nwc_encryption nwc_pick_encryption(const struct nwc_info *info);

/* nwc_method_name / nwc_code_name: NIP-47 names ("make_invoice", "NOT_FOUND", ...). */
const char *nwc_method_name(enum nwc_method m);
const char *nwc_code_name(enum nwc_code c);

/*
 * nwc_request_event: a signed request (kind 23194) from u's client key to
 * its wallet: content = encrypt(enc, {"method":M,"params":PARAMS}) where
 * params_json is a JSON object text (NULL = {}), tags p, encryption
 * (nip44_v2 only; its absence means nip04) and expiration = now + ttl_s.
 * Returns 0 with *out (event_free); APP_ETOOBIG (payload over
 * NWC_PAYLOAD_MAX); APP_ENOMEM; APP_EINTERNAL.
 */
int nwc_request_event(struct event **out, const struct nwc_uri *u, enum nwc_encryption enc, enum nwc_method m,
		      const char *params_json, uint64_t now, uint32_t ttl_s) APP_WUR;

/* A transaction object (make_invoice, lookup_invoice, notifications). Amounts in msat, times in unix seconds. */
struct nwc_tx {
	int outgoing;        /* type "outgoing" (else incoming) */
	char state[16];      /* "pending", "settled", "expired", "failed", "accepted", or "" when absent */
	char *invoice;       /* bolt11 or NULL */
	char *description;   /* or NULL */
	int has_description_hash;
	uint8_t description_hash[32];
	int has_preimage;
	uint8_t preimage[32];
	int has_payment_hash;
	uint8_t payment_hash[32];
	uint64_t amount_msat, fees_paid_msat, created_at, expires_at, settled_at;
};

/* get_info's result. */
struct nwc_wallet_info {
	char alias[64];
	char network[16];
	char pubkey[67]; /* node pubkey hex as given */
	uint64_t block_height;
	uint32_t methods;
};

struct nwc_response {
	enum nwc_method method; /* result_type */
	struct nwc_error error; /* code NWC_OK when error is null */
	struct nwc_tx tx;       /* make_invoice, lookup_invoice */
	uint64_t balance_msat;  /* get_balance */
	int has_preimage;       /* pay_invoice */
	uint8_t preimage[32];
	uint64_t fees_paid_msat;
	struct nwc_wallet_info info; /* get_info */
};

enum nwc_notification_type { NWC_PAYMENT_RECEIVED = 1, NWC_PAYMENT_SENT, NWC_HOLD_INVOICE_ACCEPTED, NWC_NOTIFY_OTHER };

struct nwc_notification {
	enum nwc_notification_type type;
	struct nwc_tx tx;
};

/*
 * nwc_response_parse_json: a decrypted response payload json[0..len):
 * {"result_type":M, "error":null|{"code","message"}, "result":{...}|null}
 * with result_type == `expect`. Strict types; unknown keys ignored;
 * strings over their caps, amounts over 2^53 and hex of wrong length are
 * refused. A response carrying an error parses (out->error.code set).
 * Returns 0 with *out filled (release with nwc_response_clear); APP_ETOOBIG
 * (over NWC_PAYLOAD_MAX); APP_EPARSE (with *reason); APP_EPROTO
 * (result_type differs); APP_ENOMEM. reason may be NULL.
 */
int nwc_response_parse_json(struct nwc_response *out, const char **reason, enum nwc_method expect, const char *json,
			    size_t len) APP_WUR;

/*
 * nwc_response_open: checks a response event for request `request_id`
 * (kind 23195, author = wallet, valid id and signature, ["e",request_id],
 * no p tag or ["p",client]), decrypts it (nip04 when the content is NIP-04 shaped,
 * else nip44) and parses it. Returns 0, APP_EPROTO (wrong kind, author,
 * tags), APP_EBADSIG/APP_EBADID, decryption errors (APP_EBADMAC,
 * APP_EBADPAD, APP_EVERSION, APP_EPARSE), and those of
 * nwc_response_parse_json.
 */
int nwc_response_open(struct nwc_response *out, const char **reason, const struct nwc_uri *u,
		      const struct event *ev, const uint8_t request_id[32], enum nwc_method expect) APP_WUR;

/*
 * nwc_notification_parse_json: {"notification_type":T,"notification":{tx}}.
 * Returns 0 (release with nwc_notification_clear), APP_EPARSE, APP_ETOOBIG,
 * APP_ENOMEM.
 */
int nwc_notification_parse_json(struct nwc_notification *out, const char **reason, const char *json,
				size_t len) APP_WUR;

/*
 * nwc_notification_open: checks (kind 23196 or 23197, author = wallet,
 * signature, ["p",client]), decrypts (nip04 for 23196, nip44 for 23197) and
 * parses a notification event. Errors as nwc_response_open.
 */
int nwc_notification_open(struct nwc_notification *out, const char **reason, const struct nwc_uri *u,
			  const struct event *ev) APP_WUR;

/* Release the strings of parsed values (the structs themselves are the caller's). */
void nwc_tx_clear(struct nwc_tx *tx);
void nwc_response_clear(struct nwc_response *r);
void nwc_notification_clear(struct nwc_notification *n);

/*
 * nwc_payment_check: a payment is confirmed when the transaction is for
 * payment_hash, its state is "settled" (or, from a wallet that sends no
 * state, it has settled_at), the preimage (when given) hashes to the
 * payment_hash, and the amount is at least min_msat.
 * Returns 0; APP_EAGAIN (not settled yet: pending/accepted); APP_EEXPIRED
 * (expired or failed); APP_EBADMAC (preimage does not hash to the
 * payment_hash); APP_ERANGE (amount below min_msat); APP_EPROTO (another
 * payment_hash). *reason names it (may be NULL).
 */
int nwc_payment_check(const struct nwc_tx *tx, const char **reason, const uint8_t payment_hash[32],
		      uint64_t min_msat) APP_WUR;

/* --- 3. the client ---------------------------------------------------------------------------- */

struct nwc_client;

struct nwc_client_opts {
	const char *ca_file;         /* extra CA file for wss:// (tests); NULL = system store */
	unsigned timeout_ms;         /* per request attempt (default 10000) */
	unsigned attempts;           /* request attempts when no answer comes (default 2; pay_invoice: 1) */
	unsigned connect_timeout_ms; /* for the first relay connection + subscriptions (default 10000) */
	enum nwc_encryption force;   /* 0 = negotiate from the info event; else use this scheme */
};

/* nwc_client_opts_default: fills o with the defaults above. */
void nwc_client_opts_default(struct nwc_client_opts *o);

/*
 * nwc_client_new: connects to the URI's relays, subscribes to the wallet's
 * info event, responses and notifications, waits for the stored events
 * (EOSE) and negotiates the encryption from the info event. The client
 * borrows u (u must outlive it).
 * Returns 0 with *out (free with nwc_client_free); APP_ECONN (no relay
 * reachable, with *reason); APP_ETIMEOUT; APP_ENOTFOUND (no info event:
 * the wallet service is unknown to these relays; unless opts->force);
 * APP_EUNSUPPORTED (the info event lists neither nip44_v2 nor nip04);
 * APP_ENOMEM; APP_EINTERNAL.
 */
int nwc_client_new(struct nwc_client **out, const char **reason, const struct nwc_uri *u,
		   const struct nwc_client_opts *opts) APP_WUR;

/* nwc_client_free: closes the connections; NULL is a no-op. */
void nwc_client_free(struct nwc_client *c);

/* nwc_client_encryption: the negotiated scheme. nwc_client_info: the wallet's info event. */
enum nwc_encryption nwc_client_encryption(const struct nwc_client *c);
const struct nwc_info *nwc_client_info(const struct nwc_client *c);

/*
 * nwc_call: one request (method m, params_json or NULL) and its response.
 * Returns 0 with *out (nwc_response_clear) when a response arrived; a
 * response that carries a wallet error is APP_EREFUSED with out->error set;
 * APP_ETIMEOUT when no response came after every attempt (*reason says so:
 * the wallet is offline or slow); APP_ECONN (no relay took the request);
 * APP_EPROTO (malformed response, with *reason); APP_ENOMEM.
 */
int nwc_call(struct nwc_client *c, struct nwc_response *out, const char **reason, enum nwc_method m,
	     const char *params_json) APP_WUR;

/* Methods (returns as nwc_call; err receives the wallet's error on APP_EREFUSED; may be NULL). */
int nwc_make_invoice(struct nwc_client *c, struct nwc_tx *out, struct nwc_error *err, const char **reason,
		     uint64_t amount_msat, const char *description, uint32_t expiry_s) APP_WUR;
int nwc_lookup_invoice(struct nwc_client *c, struct nwc_tx *out, struct nwc_error *err, const char **reason,
		       const uint8_t payment_hash[32]) APP_WUR;
/*
 * nwc_pay_invoice: pays bolt11 (one attempt only: a lost answer is resolved
 * by lookup_invoice, never by paying again). *preimage is checked against
 * the invoice's payment_hash by the caller (nwc_payment_check or sha256).
 */
int nwc_pay_invoice(struct nwc_client *c, uint8_t preimage[32], uint64_t *fees_paid_msat, struct nwc_error *err,
		    const char **reason, const char *bolt11) APP_WUR;
int nwc_get_balance(struct nwc_client *c, uint64_t *balance_msat, struct nwc_error *err, const char **reason) APP_WUR;
int nwc_get_info(struct nwc_client *c, struct nwc_wallet_info *out, struct nwc_error *err, const char **reason) APP_WUR;

/*
 * nwc_next_notification: the next queued notification, waiting up to
 * timeout_ms milliseconds for one. Returns 0 with *out
 * (nwc_notification_clear), APP_ETIMEOUT, APP_EINTERNAL.
 */
int nwc_next_notification(struct nwc_client *c, struct nwc_notification *out, int timeout_ms) APP_WUR;

#endif
