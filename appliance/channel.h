/*
 * channel.h: the parent <-> enclave channel transport (DESIGN §2; PROTOCOL.md
 * "Parent ↔ enclave channel"), used by both sides.
 *
 * Addresses (text form, channel_addr_parse):
 *   vsock:CID:PORT      AF_VSOCK (Nitro: the parent is CID 3, the enclave's
 *                       CID comes from the launch; CID "any" = VMADDR_CID_ANY
 *                       for listening). CID and PORT are decimal u32, PORT
 *                       1..4294967294.
 *   unix:PATH           AF_UNIX stream socket at a filesystem PATH (1..107
 *                       bytes, no '@' abstract names: those do not cross
 *                       network namespaces). Dev mode uses these: a unix
 *                       socket file is reachable from the enclave's network
 *                       namespace, TCP on the host is not.
 *   tcp:127.0.0.1:PORT  TCP on an IPv4 loopback address only (tests); PORT
 *                       0..65535 (0 = any free port when listening).
 *
 * Every connection is a byte stream. Two uses ride on it:
 *   - the egress service: raw SOCKS5 (RFC 1928) then the proxied bytes; no
 *     framing (appliance/socks5.h);
 *   - the control service: frames (below; messages in appliance/ctlmsg.h).
 *
 * Frame: | type u8 | length u32 big-endian | payload[length] |
 * type 0 is invalid; length <= CHANNEL_MAX_FRAME, checked before anything
 * is allocated (a receiver also passes its own, smaller, maximum).
 *
 * Sockets are created close-on-exec. Functions with a timeout take
 * milliseconds (negative = wait forever) and report APP_ETIMEOUT.
 */
#ifndef APPLIANCE_CHANNEL_H
#define APPLIANCE_CHANNEL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define CHANNEL_MAX_FRAME (1u << 20) /* payload bytes of one frame (1 MiB) */
#define CHANNEL_HEADER_LEN 5         /* type + length */
#define CHANNEL_ADDR_MAX 128         /* bytes of an address's text form, without NUL */
#define CHANNEL_UNIX_PATH_MAX 107    /* sun_path minus its NUL */
#define CHANNEL_CID_ANY 0xFFFFFFFFu  /* VMADDR_CID_ANY */
#define CHANNEL_CID_PARENT 3u        /* the parent instance on Nitro */
#define CHANNEL_PORT_CONTROL 2080u   /* vsock port of the control service (Nitro) */
#define CHANNEL_PORT_EGRESS 1080u    /* vsock port of the egress service (Nitro) */

/*
 * Environment of the enclave process set by the dev-mode launcher
 * (appliance-parent run --dev); on Nitro they are unset and the enclave uses
 * vsock:3:CHANNEL_PORT_CONTROL / vsock:3:CHANNEL_PORT_EGRESS and /dev/nsm.
 */
#define CHANNEL_ENV_CONTROL "APPLIANCE_PARENT_CONTROL"
#define CHANNEL_ENV_EGRESS "APPLIANCE_PARENT_EGRESS"
#define CHANNEL_ENV_NSM "APPLIANCE_NSM"

enum channel_kind { CHANNEL_VSOCK = 1, CHANNEL_UNIX = 2, CHANNEL_TCP = 3 };

struct channel_addr {
	enum channel_kind kind;
	uint32_t cid;  /* vsock */
	uint32_t port; /* vsock (u32) and tcp (u16 range) */
	uint32_t ip4;  /* tcp: host-order 127.x.y.z */
	char path[CHANNEL_UNIX_PATH_MAX + 1]; /* unix */
};

/*
 * channel_addr_parse: the text form into *out. Returns 0 or APP_EINVAL
 * (unknown scheme, malformed or out-of-range number, a tcp host that is not
 * an IPv4 loopback literal, an empty/too long/abstract unix path, text over
 * CHANNEL_ADDR_MAX bytes).
 */
int channel_addr_parse(struct channel_addr *out, const char *text) APP_WUR;

/*
 * channel_addr_format: the text form of a into out[0..cap) (NUL-terminated).
 * Returns 0, APP_ETOOBIG (cap too small), APP_EINVAL (bad kind).
 */
int channel_addr_format(char *out, size_t cap, const struct channel_addr *a) APP_WUR;

/*
 * channel_vsock: fills *out with vsock:cid:port. Returns 0 or APP_EINVAL
 * (port 0 or 0xFFFFFFFF).
 */
int channel_vsock(struct channel_addr *out, uint32_t cid, uint32_t port) APP_WUR;

/*
 * channel_listen: a listening socket at a (backlog connections). unix: an
 * existing socket file is replaced, any other file refused (APP_EEXIST); the
 * socket is mode 0600 before listen(). tcp: SO_REUSEADDR. Returns 0 with *fd;
 * APP_EINVAL; APP_EEXIST; APP_EUNSUPPORTED (no AF_VSOCK in this kernel);
 * APP_EIO (socket/bind/listen failed: errno is kept).
 */
int channel_listen(const struct channel_addr *a, int backlog, int *fd) APP_WUR;

/*
 * channel_bound_port: the local port of a tcp or vsock socket (after
 * listening on port 0). Returns 0 or APP_EIO.
 */
int channel_bound_port(int fd, uint32_t *port) APP_WUR;

/*
 * channel_accept: accepts one connection (close-on-exec, blocking).
 * Returns 0 with *fd; APP_EAGAIN (nothing pending on a non-blocking
 * listener, EINTR, or a connection aborted before accept); APP_ELIMIT (out
 * of file descriptors); APP_EIO.
 */
int channel_accept(int lfd, int *fd) APP_WUR;

/*
 * channel_connect: a connected stream socket to a, within timeout_ms.
 * The socket is returned in blocking mode. Returns 0 with *fd; APP_ECONN
 * (refused, no such socket file, unreachable); APP_ETIMEOUT;
 * APP_EUNSUPPORTED (no AF_VSOCK); APP_EIO.
 */
int channel_connect(const struct channel_addr *a, int timeout_ms, int *fd) APP_WUR;

/*
 * channel_connect_start: starts a non-blocking connect (for event loops).
 * Returns 0 with *fd and *pending = 1 when the caller must wait for POLLOUT
 * and then call channel_connect_finish, *pending = 0 when connected already;
 * the errors of channel_connect. The socket stays non-blocking.
 */
int channel_connect_start(const struct channel_addr *a, int *fd, int *pending) APP_WUR;

/* channel_connect_finish: the result of a pending connect (SO_ERROR): 0 or APP_ECONN. */
int channel_connect_finish(int fd) APP_WUR;

/*
 * channel_write_full / channel_read_full: exactly len bytes, retrying short
 * transfers and EINTR, within timeout_ms overall. Work on blocking and
 * non-blocking sockets. Returns 0; APP_ETIMEOUT; APP_ECONN (peer closed:
 * EOF before len bytes, EPIPE, ECONNRESET); APP_EIO.
 */
int channel_write_full(int fd, const void *buf, size_t len, int timeout_ms) APP_WUR;
int channel_read_full(int fd, void *buf, size_t len, int timeout_ms) APP_WUR;

/* channel_header_encode: the 5 header bytes of a frame (type, len). */
void channel_header_encode(uint8_t hdr[CHANNEL_HEADER_LEN], uint8_t type, uint32_t len);

/*
 * channel_header_decode: parses a header. Returns 0 with *type and *len;
 * APP_EPROTO (type 0); APP_ETOOBIG (len > max or > CHANNEL_MAX_FRAME).
 */
int channel_header_decode(uint8_t *type, uint32_t *len, const uint8_t hdr[CHANNEL_HEADER_LEN], uint32_t max) APP_WUR;

/*
 * channel_frame_parse: the first frame of buf[0..buflen) (an incremental
 * reader's buffer). Returns 0 with *type, *payload (pointing into buf),
 * *len and *consumed (header + payload); APP_EAGAIN (incomplete: read
 * more); the errors of channel_header_decode.
 */
int channel_frame_parse(uint8_t *type, const uint8_t **payload, uint32_t *len, size_t *consumed, const uint8_t *buf,
			size_t buflen, uint32_t max) APP_WUR;

/*
 * channel_send: writes one frame (header + payload[0..len)) within
 * timeout_ms. payload may be NULL when len is 0. Returns 0; APP_EINVAL
 * (type 0); APP_ETOOBIG (len > CHANNEL_MAX_FRAME); the errors of
 * channel_write_full. Not thread-safe per fd: serialize writers.
 */
int channel_send(int fd, uint8_t type, const void *payload, size_t len, int timeout_ms) APP_WUR;

/*
 * channel_recv: reads one frame within timeout_ms. The length is checked
 * against max (<= CHANNEL_MAX_FRAME) before the payload is allocated.
 * *payload is a new buffer (free with free(); non-NULL even for length 0).
 * Returns 0; the errors of channel_header_decode and channel_read_full;
 * APP_ENOMEM.
 */
int channel_recv(int fd, uint8_t *type, uint8_t **payload, size_t *len, uint32_t max, int timeout_ms) APP_WUR;

/*
 * A one-way byte pump between two non-blocking stream sockets (the egress
 * proxy and the enclave's bridge). It moves bytes with splice(2) through a
 * pipe when both sockets support it (no copy through user space: TCP, unix
 * sockets), else through a user-space buffer of `cap` bytes. At most cap
 * bytes are in flight per direction.
 */
struct channel_pump {
	int pipe[2];     /* splice mode: the pipe; -1 in buffer mode */
	uint8_t *buf;    /* buffer mode */
	size_t cap;      /* bytes in flight at most */
	size_t off, len; /* len: bytes held (in the pipe or buf[off..off+len)) */
	int eof;         /* the source reached EOF */
	int shut;        /* EOF passed on: shutdown(dst, SHUT_WR) done */
	uint64_t total;  /* bytes read from the source */
};

/*
 * channel_pump_init: an empty pump of cap bytes (4 KiB..4 MiB). Returns 0,
 * APP_EINVAL, APP_ENOMEM, APP_EIO.
 */
int channel_pump_init(struct channel_pump *p, size_t cap) APP_WUR;

/* channel_pump_free: releases the pipe or buffer; safe on a zeroed or freed pump. */
void channel_pump_free(struct channel_pump *p);

/* channel_pump_want_read / want_write: whether to poll src for POLLIN / dst for POLLOUT. */
int channel_pump_want_read(const struct channel_pump *p);
int channel_pump_want_write(const struct channel_pump *p);

/*
 * channel_pump_run: reads what src has (up to the free space), writes what
 * dst takes, never blocking, and passes EOF on (shutdown(dst, SHUT_WR)) once
 * everything read was written. Returns 0; APP_ECONN (a socket was reset or
 * closed with an error); APP_EIO. p->total grows by the bytes read.
 */
int channel_pump_run(struct channel_pump *p, int src, int dst) APP_WUR;

#endif
