/*
 * control.h: the parent's control service on the channel (PROTOCOL.md
 * "Parent ↔ enclave channel"; messages in appliance/ctlmsg.h): a fixed table
 * of requests of an expected shape, like OpenSSH's monitor.
 *
 *   HELLO  first frame within hello_timeout_ms; names the instance id the
 *          connection's blobs belong to. Answered with WELCOME.
 *   LOG    the enclave's log lines: untrusted. Printable ASCII only (the
 *          decoder refuses anything else), at most log_line_max bytes
 *          (longer lines are truncated, counted), and a token bucket of
 *          log_rate lines per second with log_burst in reserve per
 *          connection; lines over the rate are dropped and counted, and one
 *          "event=enclave_log_dropped" line says how many, at most once a
 *          second. Re-logged as: event=enclave_log instance=ID line=...
 *   PUT / GET / LIST  the sealed-blob store (parent/blobstore.h), answered
 *          with RESULT carrying the request's id.
 *   BYE    the enclave flushed and is exiting (control_wait_bye).
 *   SHUTDOWN (parent -> enclave) sent by control_shutdown_notice.
 * A malformed frame (bad header, over CHANNEL_MAX_FRAME, undecodable
 * payload, a type the enclave may not send, a request before HELLO) drops
 * the connection and is counted in `malformed`; other connections go on.
 *
 * Threads: control_serve accepts on the caller's thread, one thread per
 * connection (at most max_connections; more are closed at accept).
 */
#ifndef PARENT_CONTROL_H
#define PARENT_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"

struct blobstore;

#define CONTROL_MAX_CONNECTIONS 64

struct control_config {
	size_t max_connections;    /* 1..CONTROL_MAX_CONNECTIONS (default 4) */
	size_t log_line_max;       /* bytes re-logged per line, 16..CTLMSG_LOG_MAX (default 1024) */
	unsigned log_rate;         /* lines per second (default 50) */
	unsigned log_burst;        /* bucket size (default 200) */
	unsigned hello_timeout_ms; /* default 5000 */
	unsigned io_timeout_ms;    /* rest of a frame once its first byte came; writes (default 30000) */
};

struct control_stats {
	uint64_t accepted, active, busy;
	uint64_t hellos;             /* connections that said HELLO */
	uint64_t malformed;          /* connections dropped for a malformed frame */
	uint64_t log_lines, log_dropped, log_truncated;
	uint64_t puts, gets, lists;  /* requests answered (any status) */
	uint64_t byes;
	uint64_t shutdowns_sent;
};

struct control;

/* control_config_default: the defaults above. */
void control_config_default(struct control_config *c);

/*
 * control_new: a control service storing blobs in store (borrowed; may be
 * NULL: PUT/GET/LIST are then answered with status IO). Returns 0;
 * APP_EINVAL; APP_ENOMEM.
 */
int control_new(struct control **out, const struct control_config *cfg, struct blobstore *store) APP_WUR;

/*
 * control_serve: accepts on listen_fd until stop_fd is readable; closes and
 * joins every connection before returning. Returns 0 when stopped, APP_EIO.
 */
int control_serve(struct control *c, int listen_fd, int stop_fd) APP_WUR;

/*
 * control_shutdown_notice: sends SHUTDOWN{grace_ms} to every connection
 * past HELLO. Returns the number of connections told (0: none connected).
 */
int control_shutdown_notice(struct control *c, uint32_t grace_ms);

/*
 * control_wait_bye: waits until a BYE arrives (after the call's start or
 * earlier since the last notice) or timeout_ms passes. Returns 0 (BYE seen)
 * or APP_ETIMEOUT.
 */
int control_wait_bye(struct control *c, int timeout_ms) APP_WUR;

/* control_connected: connections past HELLO now. */
size_t control_connected(struct control *c);

/* control_get_stats: a snapshot. */
void control_get_stats(struct control *c, struct control_stats *out);

/* control_free: frees (after control_serve returned); NULL is a no-op. */
void control_free(struct control *c);

#endif
