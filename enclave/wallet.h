/*
 * wallet.h: the wallet thread: the only user of the operator's NIP-47
 * connection (billing/nwc.h, a synchronous client with its own relay pool).
 * The main thread queues operations; results come back as mbox messages.
 *
 *   make_invoice  -> EMSG_INVOICE (bolt11 decoded and checked: amount and
 *                    payment_hash must match what the wallet said)
 *   watch         the invoice is watched until paid or expired:
 *                    payment_received notifications (23197/23196) for a
 *                    watched payment_hash are confirmed with lookup_invoice;
 *                    every watched invoice is also polled with lookup_invoice
 *                    (lookup_interval seconds, doubling up to 8x) in case a
 *                    notification is lost. A confirmed payment
 *                    (nwc_payment_check: settled, preimage hashes to the
 *                    payment_hash, amount at least the invoice's) ->
 *                    EMSG_PAID, once per payment_hash from this thread (the
 *                    ledger refuses any second one anyway). Past its expiry
 *                    (plus a 60 s grace for a last lookup) -> EMSG_EXPIRED.
 *
 * The URI (its client secret) never leaves this module and is never logged.
 * When the wallet's relays are unreachable the thread reconnects with
 * backoff (1, 2, 4 ... 30 s; each attempt at most 2 s, which also bounds how
 * long wallet_stop may wait); make_invoice meanwhile fails at once
 * (APP_ECONN) so a client is told to retry instead of waiting.
 */
#ifndef ENCLAVE_WALLET_H
#define ENCLAVE_WALLET_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"

struct econfig;
struct mbox;
struct nwc_uri;
struct wallet;

#define WALLET_QUEUE_MAX 4096   /* operations waiting */
#define WALLET_WATCH_MAX 100000 /* invoices watched */
#define WALLET_DESC_MAX 160     /* bytes of an invoice description */

/*
 * wallet_start: starts the thread with uri (ownership passes: freed by
 * wallet_stop). Returns 0 with *out; APP_ENOMEM; APP_EINTERNAL.
 */
int wallet_start(struct wallet **out, const struct econfig *cfg, struct nwc_uri *uri, struct mbox *mb) APP_WUR;

/* wallet_stop: stops and joins the thread, frees everything; NULL is a no-op. */
void wallet_stop(struct wallet *w);

/*
 * wallet_make_invoice: queues make_invoice(amount_msat, description,
 * expiry_s) for job. Returns 0; APP_ELIMIT (queue full); APP_ENOMEM.
 */
int wallet_make_invoice(struct wallet *w, const uint8_t job[32], uint64_t amount_msat, const char *description,
			uint32_t expiry_s) APP_WUR;

/* wallet_watch: queues watching an existing invoice (after a restart). Returns 0, APP_ELIMIT, APP_ENOMEM. */
int wallet_watch(struct wallet *w, const uint8_t payment_hash[32], uint64_t amount_msat, uint64_t expires_at) APP_WUR;

/* wallet_connected: 1 when the NIP-47 connection is up. Thread-safe. */
int wallet_connected(struct wallet *w);

#endif
