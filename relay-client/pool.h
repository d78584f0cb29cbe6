/*
 * pool.h: a pool of Nostr relay connections over one libwebsockets event loop.
 *
 * What it does (NIP-01, NIP-42; reference nostr-protocol.md §1.4-1.5, §2.2):
 * - ws:// and wss:// relays. TLS uses the system CA store plus an optional
 *   extra CA file (opts.ca_file), sends SNI and checks the certificate and the
 *   host name against the relay URL's host. A relay can be reached at another
 *   address than its URL names (connect_to, "127.0.0.1:PORT": the enclave's
 *   egress bridge, DESIGN §2) while Host, SNI and the certificate check still
 *   use the URL's host. ALPN is pinned to http/1.1.
 * - Publish: ["EVENT",ev] to every relay (or a chosen subset), per-relay OK
 *   tracking with the machine-readable prefix, a timeout per attempt, retry
 *   with exponential backoff on "rate-limited:" and on timeouts (up to
 *   opts.publish_attempts sends), and one callback when every relay of the
 *   publish has settled (accepted / rejected / timeout / failed).
 * - Subscriptions: REQ with up to RELAYMSG_MAX_FILTERS filters; EOSE per relay
 *   and once "EOSE from all" (every relay of the subscription sent EOSE or
 *   CLOSED, or failed to connect before sending it); CLOSED with its prefix
 *   and message; NOTICE is logged (sanitized, truncated) and counted.
 * - NIP-42: a challenge is remembered per connection; with opts.auth_key the
 *   pool answers with a kind-22242 event (tags relay = the relay URL,
 *   challenge) when a publish or REQ is refused with "auth-required:" (or at
 *   once with opts.auth_eager, or once a relay has asked before), then redoes
 *   what was refused. Without a key, "auth-required:" is final.
 * - Incoming events: every one is checked against its subscription (filter
 *   match, relays may ignore parts of a filter), deduplicated per
 *   subscription across relays and reconnects by a bounded LRU of ids, then
 *   fully verified (id recomputed, BIP-340 signature) before the application
 *   sees it. Invalid, unmatched and duplicate events are dropped and counted.
 * - Reconnect: after a failed or lost connection the relay waits
 *   backoff_min_ms * 2^n (capped at backoff_max_ms) with "equal jitter"
 *   (a random time between half and all of it); n resets once a connection
 *   has stayed up for 10 s. On reconnect every open subscription is sent
 *   again with since = the later of the newest created_at seen from that
 *   relay and the time up to which it had sent everything (its last EOSE, or
 *   the moment a live connection was lost), minus opts.resub_margin_s; the
 *   dedupe set keeps the overlap from being delivered twice. A subscription
 *   that never reached EOSE on that relay is sent unchanged. Unanswered
 *   publishes are resent.
 *   Idle connections are pinged (opts.ping_interval_s) and dropped when the
 *   peer stops answering.
 *
 * Caps and what happens at each (all counted, see struct relay_status and
 * struct relay_pool_stats):
 * - max_message: a relay message longer than this is discarded while it
 *   arrives (never buffered past the cap); counted in oversize and
 *   malformed_by[RELAYMSG_R_TOOBIG]. Binary frames are discarded (binary).
 * - max_queue: messages waiting to be written to one relay plus publishes
 *   waiting for its connection. A publish over the cap settles at once for
 *   that relay as RELAY_PUB_FAILED "queue full"; a REQ or CLOSE over the cap
 *   is not sent (the REQ's subscription is closed for that relay with
 *   "error: queue full"). Counted in queue_full.
 * - max_subs: relay_sub_open beyond it returns APP_ELIMIT (subs_refused).
 * - max_publishes: relay_publish beyond it returns APP_ELIMIT
 *   (publishes_refused).
 * - dedupe_max: the least recently used id is forgotten (dedupe_evictions);
 *   a copy of a forgotten event arriving later would be delivered again.
 * - RELAY_POOL_MAX_RELAYS relays per pool (relay_pool_add_relay: APP_ELIMIT).
 *
 * Threads: one thread (the owner's) drives the loop with relay_pool_service;
 * every callback runs on it. relay_publish, relay_sub_open, relay_sub_close,
 * relay_pool_add_relay, relay_pool_stop and the status readers may be called
 * from any thread: requests go through a locked queue and wake the loop with
 * lws_cancel_service; they take effect on the next service step.
 * relay_pool_free must not run concurrently with anything else.
 *
 * Logging: identifiers only (relay URL, subscription id, event id prefix);
 * never event content, never keys. libwebsockets' own error and warning
 * lines are routed to log_debug (process-wide, set by the first pool).
 * Creating a pool makes the process ignore SIGPIPE (libwebsockets does):
 * writes to closed sockets and pipes fail with EPIPE instead.
 * Host names are resolved with a blocking lookup when a connection starts
 * (libwebsockets 4.1 without async DNS); the enclave connects to 127.0.0.1.
 */
#ifndef RELAY_CLIENT_POOL_H
#define RELAY_CLIENT_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"
#include "relay-client/relaymsg.h"
#include "relay-client/relayurl.h"

struct event;
struct filter;
struct keypair;
struct lws_context;
struct relay_pool;

#define RELAY_POOL_MAX_RELAYS 64  /* relays in one pool */
#define RELAY_ALL SIZE_MAX        /* "every relay" in callbacks (EOSE from all) */
#define RELAY_ERROR_MAX 160       /* bytes of a relay's last error text */

enum relay_state {
	RELAY_IDLE = 0,   /* added, not yet connecting */
	RELAY_CONNECTING, /* TCP/TLS/websocket handshake under way */
	RELAY_CONNECTED,  /* websocket open */
	RELAY_BACKOFF,    /* connection failed or lost; waiting to reconnect */
	RELAY_STOPPED     /* the pool is shutting down */
};

/* relay_state_name: "idle", "connecting", "connected", "backoff", "stopped". */
const char *relay_state_name(enum relay_state s);

/* relay_pool_opts: see relay_pool_opts_default for the defaults. */
struct relay_pool_opts {
	const struct keypair *auth_key; /* NIP-42 key (borrowed; must outlive the pool); NULL = never AUTH */
	int auth_eager;                 /* answer every challenge at once, not only after auth-required */
	const char *ca_file;            /* PEM file of extra trusted CAs (a test CA); NULL = system store only */
	size_t max_message;             /* bytes of one incoming message; default and max RELAYMSG_MAX_LEN */
	size_t max_queue;               /* outbound messages per relay; default 1024 */
	size_t max_subs;                /* open subscriptions; default 64 */
	size_t max_publishes;           /* unsettled publishes; default 1024 */
	size_t dedupe_max;              /* ids in the dedupe set; default 65536 */
	unsigned connect_timeout_ms;    /* TCP+TLS+websocket handshake; default 10000 */
	unsigned publish_timeout_ms;    /* wait for OK after each send; default 10000 */
	unsigned publish_attempts;      /* sends per relay (first + retries); default 3 */
	unsigned publish_deadline_ms;   /* a publish settles by then at the latest; default 30000 */
	unsigned backoff_min_ms;        /* first reconnect delay (and publish retry delay); default 500 */
	unsigned backoff_max_ms;        /* largest reconnect delay; default 30000 */
	unsigned resub_margin_s;        /* since = newest seen - margin on resubscribe; default 60 */
	unsigned ping_interval_s;       /* ping an idle connection after; 0 = never; default 30 */
	/* on_relay: state changes of relay `relay` (connected, backoff after a failure or loss with the
	 * reason in detail); on the service thread; may be NULL. */
	void (*on_relay)(void *user, size_t relay, enum relay_state state, const char *detail);
	void *user;
};

/* relay_status: a snapshot of one relay (relay_pool_relay_status). Counters only grow. */
struct relay_status {
	char url[RELAYURL_MAX + 1];
	enum relay_state state;
	int authed;                        /* NIP-42 AUTH accepted on the current connection */
	char last_error[RELAY_ERROR_MAX];  /* why the last connection failed or ended ("" if none) */
	uint64_t connects;                 /* websocket connections established */
	uint64_t reconnects;               /* of which after a previous connection or failure */
	uint64_t connect_failures;         /* attempts that never opened */
	uint64_t disconnects;              /* open connections that were lost */
	uint64_t msgs_in, bytes_in;        /* messages (and their bytes) received, all kinds */
	uint64_t msgs_out, bytes_out;      /* messages written */
	uint64_t events_out;               /* EVENT messages queued for sending (publishes and retries) */
	uint64_t events_in;                /* EVENT messages well-formed */
	uint64_t events_delivered;         /* handed to the application */
	uint64_t events_duplicate;         /* already delivered on this subscription */
	uint64_t events_invalid;           /* failed id or signature verification */
	uint64_t events_unmatched;         /* valid JSON but outside the subscription's filters */
	uint64_t events_unknown_sub;       /* for a subscription that is not open */
	uint64_t malformed;                /* messages refused by the parser (any class) */
	uint64_t malformed_by[RELAYMSG_R__COUNT];
	uint64_t oversize;                 /* messages over max_message (discarded while arriving) */
	uint64_t binary;                   /* binary frames discarded */
	uint64_t queue_full;               /* outbound messages refused at max_queue */
	uint64_t ok_accepted, ok_rejected; /* OK true / false for our publishes */
	uint64_t ok_unknown;               /* OK for an id we are not waiting for */
	uint64_t publish_retries;          /* resends after rate-limited or timeout */
	uint64_t eose, closed, notices, counts;
	uint64_t unknown_sub_msgs;         /* EOSE/CLOSED for a subscription that is not open */
	uint64_t auth_challenges, auth_sent, auth_accepted, auth_rejected;
	uint64_t queued;                   /* outbound messages waiting now */
	uint64_t dropped;                  /* sum: malformed + binary + events invalid, unmatched,
					      duplicate and for unknown subscriptions */
};

/* relay_pool_stats: pool-wide figures. */
struct relay_pool_stats {
	uint64_t relays;
	uint64_t subs_open, subs_refused;
	uint64_t publishes_pending, publishes_refused, publishes_settled;
	uint64_t dedupe_size, dedupe_capacity, dedupe_evictions;
};

/* One relay's outcome of a publish. */
enum relay_pub_status {
	RELAY_PUB_PENDING = 0,
	RELAY_PUB_ACCEPTED, /* OK true (including "duplicate:") */
	RELAY_PUB_REJECTED, /* OK false: see prefix and message */
	RELAY_PUB_TIMEOUT,  /* sent, no OK in time after every attempt */
	RELAY_PUB_FAILED    /* never sent/answered: connection failed, queue full, pool stopped */
};

/* relay_pub_status_name: "pending", "accepted", "rejected", "timeout", "failed". */
const char *relay_pub_status_name(enum relay_pub_status s);

struct relay_pub_result {
	size_t relay;                /* index in the pool */
	const char *url;             /* the relay's URL */
	enum relay_pub_status status;
	enum relaymsg_prefix prefix; /* of the relay's OK message */
	const char *message;         /* the relay's OK message, or our reason; never NULL */
	unsigned attempts;           /* EVENT messages sent to this relay */
};

/*
 * relay_publish_cb: every relay of publish `publish_id` (the event `id`) has
 * settled. results[0..n) are valid during the call only. Service thread.
 */
typedef void (*relay_publish_cb)(void *user, uint64_t publish_id, const uint8_t id[32],
				 const struct relay_pub_result *results, size_t n);

/*
 * Subscription callbacks (service thread; any may be NULL).
 * on_event: a verified event matching the subscription, first time seen on
 *   it. *ev is owned by the pool; the callback may take it by setting *ev to
 *   NULL (then it frees it with event_free).
 * on_eose: EOSE from `relay`; then once with relay == RELAY_ALL when every
 *   relay of the subscription is done with stored events.
 * on_closed: the relay closed the subscription (CLOSED, or we could not
 *   send the REQ); message is the relay's text.
 */
struct relay_sub_cbs {
	void (*on_event)(void *user, uint64_t sub, size_t relay, struct event **ev);
	void (*on_eose)(void *user, uint64_t sub, size_t relay);
	void (*on_closed)(void *user, uint64_t sub, size_t relay, enum relaymsg_prefix prefix,
			  const char *message);
};

/* relay_pool_opts_default: fills o with the documented defaults (no key, no CA file, no callback). */
void relay_pool_opts_default(struct relay_pool_opts *o);

/*
 * relay_pool_new: a pool with its own libwebsockets context (no listening
 * socket, client TLS with the system CA store and opts->ca_file).
 * Returns 0 with *out (free with relay_pool_free); APP_EINVAL (an option out
 * of range: zero caps or timeouts, max_message > RELAYMSG_MAX_LEN,
 * max_queue < max_subs + 8, backoff_min_ms > backoff_max_ms); APP_ENOENT
 * (ca_file unreadable); APP_ENOMEM; APP_EINTERNAL (libwebsockets failed).
 */
int relay_pool_new(struct relay_pool **out, const struct relay_pool_opts *opts) APP_WUR;

/*
 * relay_pool_free: closes every connection, drops unsettled publishes and
 * open subscriptions without calling their callbacks, frees everything.
 * NULL is a no-op. Must not run concurrently with any other call.
 */
void relay_pool_free(struct relay_pool *p);

/*
 * relay_pool_add_relay: adds the relay at `url` (ws:// or wss://,
 * relayurl_parse) and starts connecting on the next service step.
 * connect_to: "host:port" to connect to instead of the URL's host and port
 * (Host, SNI and the certificate check keep the URL's host), or NULL.
 * Thread-safe. Returns 0 with *index (may be NULL); APP_EINVAL (bad URL or
 * address); APP_EEXIST (the URL is already in the pool; *index is set to
 * it); APP_ELIMIT (RELAY_POOL_MAX_RELAYS); APP_ENOMEM.
 */
int relay_pool_add_relay(struct relay_pool *p, size_t *index, const char *url, const char *connect_to) APP_WUR;

/*
 * relay_connect_resolver_fn: gives the connect address ("host:port") for a
 * relay URL, written into buf[0..cap), or NULL for a direct connection.
 */
typedef const char *(*relay_connect_resolver_fn)(const char *url, char *buf, size_t cap);

/*
 * relay_pool_set_connect_resolver: a process-wide resolver consulted by
 * relay_pool_add_relay when it is given no connect_to (NULL clears it). Inside
 * the enclave every pool (job relays, the wallet's relays) must reach its
 * relays through the egress bridge (enclave/runtime/egress.h:
 * egress_default_connect_to); setting this once at start covers pools made
 * anywhere in the process. Set it before any pool adds relays.
 */
void relay_pool_set_connect_resolver(relay_connect_resolver_fn fn);

/*
 * relay_pool_service: one step of the event loop: applies queued requests,
 * runs due timers, waits for network events for at most timeout_ms
 * milliseconds (0: do not wait; negative: until something happens) and
 * handles them, calling the application's callbacks.
 * Returns 0, APP_ECANCELED once relay_pool_stop was called, APP_EINTERNAL.
 */
int relay_pool_service(struct relay_pool *p, int timeout_ms) APP_WUR;

/*
 * relay_pool_stop: makes relay_pool_service return APP_ECANCELED from now on
 * (and wakes it). Thread-safe; not async-signal-safe.
 */
void relay_pool_stop(struct relay_pool *p);

/* relay_pool_lws_context: the pool's libwebsockets context (for owners that add their own vhosts). */
struct lws_context *relay_pool_lws_context(struct relay_pool *p);

/*
 * relay_publish: sends the signed event ev to the relays listed in
 * relays[0..nrelays) (indexes from relay_pool_add_relay), or to every relay
 * of the pool when nrelays is 0. The event is serialized before returning
 * (the caller keeps ev). cb (may be NULL) runs once when every relay settled.
 * Thread-safe. Returns 0 with *publish_id (may be NULL); APP_EINVAL (an index
 * out of range, no relays in the pool); APP_ELIMIT (max_publishes unsettled);
 * APP_ENOMEM. The event is not verified here: sign it first.
 */
int relay_publish(struct relay_pool *p, uint64_t *publish_id, const struct event *ev, const size_t *relays,
		  size_t nrelays, relay_publish_cb cb, void *user) APP_WUR;

/*
 * relay_sub_open: opens a subscription of filters[0..nfilters) (1..
 * RELAYMSG_MAX_FILTERS; copied) on relays[0..nrelays), or on every relay of
 * the pool (also those added later) when nrelays is 0. Its subscription id
 * on the wire is "s" + hex(*sub_id). Thread-safe.
 * Returns 0 with *sub_id; APP_EINVAL (no or too many filters, a NULL filter,
 * an index out of range); APP_ELIMIT (max_subs open); APP_ENOMEM.
 */
int relay_sub_open(struct relay_pool *p, uint64_t *sub_id, const struct filter *const *filters, size_t nfilters,
		   const size_t *relays, size_t nrelays, const struct relay_sub_cbs *cbs, void *user) APP_WUR;

/*
 * relay_sub_close: sends CLOSE to the relays and forgets the subscription;
 * no callback runs for it after the request is applied (on the service
 * thread, at the next step). Thread-safe. Returns 0 or APP_ENOTFOUND (no
 * such open subscription; checked when called), APP_ENOMEM.
 */
int relay_sub_close(struct relay_pool *p, uint64_t sub_id) APP_WUR;

/* relay_pool_relay_count: relays in the pool. Thread-safe. */
size_t relay_pool_relay_count(struct relay_pool *p);

/*
 * relay_pool_relay_status: a snapshot of relay `index`. Thread-safe.
 * Returns 0 or APP_EINVAL (index out of range).
 */
int relay_pool_relay_status(struct relay_pool *p, size_t index, struct relay_status *out) APP_WUR;

/* relay_pool_get_stats: pool-wide figures. Thread-safe. */
void relay_pool_get_stats(struct relay_pool *p, struct relay_pool_stats *out);

#endif
