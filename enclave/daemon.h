/*
 * daemon.h: appliance-enclave's main loop (DESIGN §5.3): the job state
 * machine driven by relay events, wallet results and worker results.
 *
 * Threads:
 *   main    owns the relay pool (job relays: subscriptions, publishes), the
 *           persistent state (journal, ledger, jobs), the rate limiter and
 *           the timers (announcement refresh, wall-time limits, eviction,
 *           statistics); it sleeps in relay_pool_service and is woken by the
 *           completion queue (enclave/mbox.h) through lws_cancel_service.
 *   wallet  the NIP-47 connection (enclave/wallet.h).
 *   probe   2 threads: dataset sizes before the quote (enclave/runner.h).
 *   worker  [limits] max_concurrent_jobs threads: fetch, train, attest,
 *           build the result.
 * SIGINT/SIGTERM/SIGHUP set a flag the main loop checks between service
 * steps (at most 250 ms apart).
 *
 * Shutdown: running jobs are canceled, failed and credited (with an error
 * feedback), pending publishes get up to 3 s, then everything is freed.
 */
#ifndef ENCLAVE_DAEMON_H
#define ENCLAVE_DAEMON_H

#include "appliance/err.h"

struct econfig;
struct nwc_uri;

/*
 * daemon_run: runs the instance until a stop signal. Takes ownership of uri
 * (the operator's wallet connection). Returns 0 after a clean stop, or an
 * APP_E* code for a startup failure (NSM, journal replay, relay pool, ...)
 * or a broken journal while running.
 */
int daemon_run(const struct econfig *cfg, struct nwc_uri *uri) APP_WUR;

#endif
