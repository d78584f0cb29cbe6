/*
 * parentlink.h: the enclave's side of the control service (PROTOCOL.md
 * "Parent ↔ enclave channel"; messages in appliance/ctlmsg.h): one
 * connection to the parent, kept up by a thread that reconnects by itself
 * (exponential backoff, backoff_min_ms doubling to backoff_max_ms, reset
 * once connected) whenever the parent restarts or the connection breaks.
 *
 * What it carries:
 *   - log lines (parentlink_log_sink, for log_set_sink): sanitized (bytes
 *     outside 0x20..0x7e become '?'), cut at CTLMSG_LOG_MAX, queued (at most
 *     log_queue_max lines; more are dropped and counted, never blocking the
 *     caller) and sent while connected;
 *   - the sealed-blob store: put / get / list. The parent is untrusted:
 *     callers store only what they sealed themselves (appliance/sealed.h)
 *     and check what comes back. Requests made while disconnected wait for
 *     the connection up to their timeout. A request in flight when the
 *     connection breaks fails with APP_ECONN: a put may then have been stored
 *     or not (a retry answers APP_EEXIST if it was: compare with a get);
 *   - the shutdown notice: on SHUTDOWN the on_shutdown callback runs on the
 *     link's thread (default: raise SIGTERM in this process, which the
 *     daemon already handles by flushing and exiting); parentlink_bye then
 *     tells the parent the journal is flushed.
 * Everything the parent sends is decoded strictly; a malformed frame drops
 * the connection (counted) and the link reconnects.
 *
 * Addresses, from the launcher (parentlink_env):
 *   APPLIANCE_PARENT_CONTROL  default vsock:3:2080 (Nitro: the parent is CID 3)
 *   APPLIANCE_PARENT_EGRESS   default vsock:3:1080
 * In dev mode appliance-parent sets both to unix: sockets (and APPLIANCE_NSM
 * to its emulator, unix:PATH).
 *
 * How appliance-enclave uses it (see also enclave/runtime/egress.h):
 *   parentlink_env(&env);
 *   egress_lo_up();                                        // lo is down at start
 *   parentlink_opts_default(&o); o.control = env.control; o.instance_id = ID;
 *   parentlink_start(&pl, &o);  log_set_sink(parentlink_log_sink, pl);
 *   egress_opts_default(&eo); eo.parent = env.egress; egress_new(&eg, &eo);
 *   for each relay URL: egress_connect_to(eg, url, ct, sizeof ct);
 *                       relay_pool_add_relay(pool, NULL, url, ct);
 *   egress_add_socks(eg, &port); curl proxy = "socks5h://127.0.0.1:PORT";
 *   egress_start(eg);
 *   ... at exit: flush the journal; parentlink_bye(pl, 2000);
 *   log_set_sink(NULL, NULL); parentlink_stop(pl); egress_free(eg);
 */
#ifndef ENCLAVE_PARENTLINK_H
#define ENCLAVE_PARENTLINK_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/channel.h"
#include "appliance/ctlmsg.h"
#include "appliance/err.h"
#include "appliance/log.h"

#define PARENTLINK_PORT_CONTROL CHANNEL_PORT_CONTROL
#define PARENTLINK_PORT_EGRESS CHANNEL_PORT_EGRESS
#define PARENTLINK_ENV_CONTROL CHANNEL_ENV_CONTROL
#define PARENTLINK_ENV_EGRESS CHANNEL_ENV_EGRESS
#define PARENTLINK_ENV_NSM CHANNEL_ENV_NSM

/* The channel addresses given by the launcher (text, channel.h). */
struct parentlink_env {
	char control[CHANNEL_ADDR_MAX + 1];
	char egress[CHANNEL_ADDR_MAX + 1];
	char nsm[CHANNEL_ADDR_MAX + 1]; /* "" when APPLIANCE_NSM is unset (use the configured NSM) */
	int from_env;                   /* 1 when control/egress came from the environment */
};

/*
 * parentlink_env: the addresses from the environment, else the Nitro
 * defaults. Returns 0; APP_EINVAL (a variable set to an invalid address).
 */
int parentlink_env(struct parentlink_env *out) APP_WUR;

struct parentlink_opts {
	const char *control;     /* channel address text */
	const char *instance_id; /* names this instance's blobs at the parent (ctlmsg name rules) */
	void (*on_shutdown)(void *arg, uint32_t grace_ms); /* NULL: raise(SIGTERM) */
	void *arg;
	unsigned backoff_min_ms; /* default 100 */
	unsigned backoff_max_ms; /* default 5000 */
	unsigned io_timeout_ms;  /* one frame's write; WELCOME wait (default 10000) */
	size_t log_queue_max;    /* lines (default 1024) */
};

struct parentlink_stats {
	uint64_t connects;      /* WELCOME received */
	uint64_t disconnects;   /* connections lost after WELCOME */
	uint64_t connect_failures;
	uint64_t malformed;     /* connections dropped for a malformed frame from the parent */
	uint64_t logs_sent, logs_dropped;
	uint64_t requests, request_failures;
	uint64_t shutdowns;     /* SHUTDOWN notices received */
	int connected;
};

struct parentlink;

/* parentlink_opts_default: NULL addresses and the defaults above. */
void parentlink_opts_default(struct parentlink_opts *o);

/*
 * parentlink_start: starts the link thread (it connects in the background).
 * Returns 0; APP_EINVAL (bad address or instance id); APP_ENOMEM;
 * APP_EINTERNAL.
 */
int parentlink_start(struct parentlink **out, const struct parentlink_opts *o) APP_WUR;

/* parentlink_stop: closes the connection, stops the thread, fails waiting requests (APP_ECANCELED), frees. NULL ok. */
void parentlink_stop(struct parentlink *pl);

/* parentlink_wait_connected: 0 once connected (WELCOME), APP_ETIMEOUT after timeout_ms. */
int parentlink_wait_connected(struct parentlink *pl, int timeout_ms) APP_WUR;

/*
 * parentlink_blob_put: stores data[0..len) (<= CTLMSG_BLOB_MAX) as `name`,
 * returning once the parent acknowledged it durable. Returns 0; APP_EEXIST;
 * APP_ELIMIT (quota); APP_ETOOBIG; APP_EINVAL (name); APP_EIO (the parent's
 * storage); APP_ECONN (connection lost with the request in flight);
 * APP_ETIMEOUT; APP_ECANCELED (stopping); APP_ENOMEM.
 */
int parentlink_blob_put(struct parentlink *pl, const char *name, const uint8_t *data, size_t len,
			int timeout_ms) APP_WUR;

/*
 * parentlink_blob_get: the blob `name` into a new buffer (*data, free with
 * free(); *len). Returns 0; APP_ENOTFOUND; APP_ETOOBIG (over max bytes); the
 * transport errors of parentlink_blob_put.
 */
int parentlink_blob_get(struct parentlink *pl, const char *name, uint8_t **data, size_t *len, size_t max,
			int timeout_ms) APP_WUR;

/* parentlink_list_fn: one entry of a listing; return 0 to go on, anything else stops (and is returned). */
typedef int (*parentlink_list_fn)(void *arg, const char *name, uint64_t size);

/*
 * parentlink_blob_list: every stored name in byte order (as many LIST
 * requests as needed), calling fn for each. Returns 0; fn's result; the
 * transport errors; APP_EPROTO (names not ascending: a lying parent).
 */
int parentlink_blob_list(struct parentlink *pl, parentlink_list_fn fn, void *arg, int timeout_ms) APP_WUR;

/*
 * parentlink_bye: sends the queued log lines, then BYE ("flushed, exiting"),
 * waiting up to timeout_ms for it to be written. Returns 0, APP_ECONN
 * (not connected), APP_ETIMEOUT.
 */
int parentlink_bye(struct parentlink *pl, int timeout_ms) APP_WUR;

/* parentlink_log_sink: a log_sink_fn (arg = the link). Never blocks, never logs. */
void parentlink_log_sink(void *arg, enum log_level level, const char *line, size_t len);

/* parentlink_get_stats: a snapshot. */
void parentlink_get_stats(struct parentlink *pl, struct parentlink_stats *out);

struct egress;

/* Everything appliance-enclave needs from its parent, started in one call. */
struct parentlink_boot {
	int active;                     /* 0: no parent (run outside an enclave): nothing started */
	struct parentlink *link;        /* control: log sink, blobs, shutdown notice */
	struct egress *egress;          /* the bridge, also the process default (egress_set_default) */
	char proxy[40];                 /* "socks5h://127.0.0.1:PORT" for libcurl */
	char nsm[CHANNEL_ADDR_MAX + 1]; /* NSM transport from the launcher ("unix:PATH"), "" = keep the configured one */
};

/*
 * parentlink_boot_start: when there is a parent (the launcher set
 * APPLIANCE_PARENT_CONTROL/EGRESS, or /dev/nsm exists: a Nitro enclave with
 * the vsock defaults): brings `lo` up, starts the control link with
 * instance_id (ctlmsg name rules) and the log sink, starts the egress bridge
 * with its SOCKS5 passthrough listener and makes it the process default.
 * Without a parent, *b->active = 0 and nothing happens (returns 0).
 * Returns 0; APP_EINVAL (bad environment or instance id); APP_EIO (lo);
 * the errors of parentlink_start / egress_new / egress_start.
 *
 * appliance-enclave, in main():
 *   parentlink_boot_start(&boot, "enclave");
 *   if (boot.active) { cfg->proxy = boot.proxy; if (boot.nsm[0]) cfg->nsm = boot.nsm; }
 * wherever it adds a relay (job relays, the wallet's relays):
 *   relay_pool_add_relay(pool, NULL, url, egress_default_connect_to(url, ct, sizeof ct));
 * and at exit, after the journal is flushed: parentlink_boot_stop(&boot).
 */
int parentlink_boot_start(struct parentlink_boot *b, const char *instance_id) APP_WUR;

/* parentlink_boot_stop: BYE (2 s), log sink back to stderr, stops and frees; safe when inactive. */
void parentlink_boot_stop(struct parentlink_boot *b);

#endif
