/*
 * nsm_emu.h: the development NSM emulator: the Nitro hypervisor's Secure
 * Module as seen by an enclave, for dev mode (DESIGN §2 "Dev mode").
 *
 * It speaks the real NSM CBOR protocol (appliance/nsm.h: same requests,
 * responses, size limits and error strings) and follows AWS's on-hardware
 * check list (nsm-api nsm-test/src/bin/nsm-check.rs; reference
 * nitro-enclaves.md §1.3):
 *   - 32 PCRs of SHA-384; PCRs 0..15 locked from the start, 16..31 unlocked
 *     and zero. DescribeNSM: version 1.0.0, max_pcrs 32, locked_pcrs sorted,
 *     digest "SHA384".
 *   - ExtendPCR: new = SHA384(old || data); index >= 32 -> InvalidIndex; a
 *     locked PCR -> ReadOnlyIndex.
 *   - LockPCR: 0..15 -> ReadOnlyIndex (they are the launcher's);
 *     16..31 -> LockPCR (again: still LockPCR); >= 32 -> InvalidIndex.
 *   - LockPCRs{range}: range <= 32 locks [0, range); more -> InvalidIndex.
 *   - DescribePCR: always 48 bytes; >= 32 -> InvalidIndex.
 *   - Attestation: user_data, nonce, public_key each <= 1024 bytes or null
 *     (more -> InputTooLarge); the document: untagged COSE_Sign1, ES384, all
 *     nine payload keys (null when absent), pcrs 0..15 plus every locked PCR
 *     >= 16, signed by a fresh ~3 h leaf of the dev CA (parent/devca.h).
 *   - GetRandom: 256 fresh random bytes.
 *   - A request over 4096 bytes -> InputTooLarge; undecodable or mistyped
 *     -> InvalidArgument; a well-formed unknown request -> InvalidOperation.
 * PCR0/1/2 are set by the launcher from the measured image and PCR3/4/8 as
 * configured (PCR4 defaults to SHA384(0^48 || instance id), as on EC2): the
 * enclave cannot choose any of them.
 *
 * Socket transport framing: see appliance/nsm.h (4-byte big-endian length,
 * then the CBOR message).
 */
#ifndef PARENT_NSM_EMU_H
#define PARENT_NSM_EMU_H

#include <stddef.h>
#include <stdint.h>

#include "appliance/err.h"
#include "appliance/nsm.h"

struct devca;

#define NSM_EMU_LOCKED_AT_START 16 /* PCRs [0, 16) */
#define NSM_EMU_RANDOM_LEN 256     /* bytes per GetRandom answer */
#define NSM_EMU_MAX_CLIENTS 8      /* simultaneous socket connections */
#define NSM_EMU_IMAGE_MAX (1ull << 32) /* largest measured image, bytes */

/* Launcher configuration. */
struct nsm_emu_config {
	uint8_t pcr[NSM_EMU_LOCKED_AT_START][NSM_PCR_LEN]; /* initial values of PCRs 0..15 */
	uint32_t pcr_set;          /* bit i: pcr[i] is configured; unset ones start as zero */
	char instance_id[32];      /* "i-" + 17 hex; empty = random */
	int indefinite_map;        /* encode payload maps indefinite-length, as AWS did in 2026 */
	/* clock (unix ms) for timestamps and certificates; NULL = the real clock */
	uint64_t (*clock_ms)(void *arg);
	void *clock_arg;
};

struct nsm_emu;

/*
 * nsm_emu_measure: the EIF-style measurement SHA384(0^48 || SHA384(bytes))
 * of an image (reference §4.1), i.e. one extend of a zero PCR with the
 * image's digest.
 */
void nsm_emu_measure(uint8_t out[NSM_PCR_LEN], const uint8_t *bytes, size_t len);

/*
 * nsm_emu_measure_file: sets PCR0/1/2 of cfg from the enclave binary at path,
 * with the EIF formulas for an image whose kernel, cmdline and first ramdisk
 * are empty and whose application ramdisk is the binary:
 *   PCR0 = SHA384(0^48 || SHA384(binary))   (whole image)
 *   PCR1 = SHA384(0^48 || SHA384(""))       (no kernel/bootstrap in dev mode)
 *   PCR2 = SHA384(0^48 || SHA384(binary))   (application)
 * Streams the file (any size up to NSM_EMU_IMAGE_MAX). Returns 0; APP_ENOENT;
 * APP_EIO; APP_ETOOBIG.
 */
int nsm_emu_measure_file(struct nsm_emu_config *cfg, const char *path) APP_WUR;

/* nsm_emu_measure_bytes: as nsm_emu_measure_file for an image in memory. */
void nsm_emu_measure_bytes(struct nsm_emu_config *cfg, const uint8_t *bytes, size_t len);

/*
 * nsm_emu_new: an emulator signing with ca (borrowed: must outlive it).
 * cfg is copied. PCR0/1/2 must be configured (APP_EINVAL otherwise: an
 * unmeasured enclave); PCR4 defaults to SHA384(0^48 || instance id).
 * Returns 0, APP_EINVAL, APP_ENOMEM.
 */
int nsm_emu_new(struct nsm_emu **out, struct devca *ca, const struct nsm_emu_config *cfg) APP_WUR;

/* nsm_emu_free: frees; NULL is a no-op. */
void nsm_emu_free(struct nsm_emu *e);

/* nsm_emu_module_id: "i-<17hex>-enc<16hex>" of this emulated enclave. */
const char *nsm_emu_module_id(const struct nsm_emu *e);

/*
 * nsm_emu_process: answers one request: req[0..req_len) in, the response
 * CBOR into resp[0..*resp_len) (capacity in, length out; at least
 * NSM_RESPONSE_MAX). Protocol errors are answered as {"Error": code}.
 * Thread-safe. Returns 0, or APP_EINVAL (capacity below NSM_RESPONSE_MAX).
 * Its signature is an nsm_transport_fn (arg = the emulator) so that
 * nsm_open_custom(&n, nsm_emu_transport, emu) works in-process.
 */
int nsm_emu_process(struct nsm_emu *e, uint8_t *resp, size_t *resp_len, const uint8_t *req, size_t req_len) APP_WUR;
int nsm_emu_transport(void *emu, uint8_t *resp, size_t *resp_len, const uint8_t *req, size_t req_len) APP_WUR;

/*
 * nsm_emu_listen: a listening unix socket at path (mode 0600; an existing
 * socket file is replaced, any other file refused). Returns 0 with *fd;
 * APP_EINVAL (path too long); APP_EEXIST (path is not a socket); APP_EIO.
 */
int nsm_emu_listen(const char *path, int *fd) APP_WUR;

/*
 * nsm_emu_serve: serves framed requests on listen_fd until stop_fd becomes
 * readable (or fails). Up to NSM_EMU_MAX_CLIENTS connections; each frame is
 * read with a NSM_IO_TIMEOUT_MS timeout; a client that breaks the framing is
 * answered (InputTooLarge / InvalidArgument) when possible and
 * disconnected. Logs one line per connection event. Returns 0 when stopped,
 * APP_EIO on a poll/accept failure.
 */
int nsm_emu_serve(struct nsm_emu *e, int listen_fd, int stop_fd) APP_WUR;

#endif
