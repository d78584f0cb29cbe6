/*
 * err.h: the project's error codes.
 *
 * Every fallible function returns int: 0 on success, a negative APP_E* code
 * otherwise. Foreign conventions (libsecp256k1's 1 = ok, libsodium's -1,
 * OpenSSL's 1 = ok, libwebsockets' non-zero) are adapted at the call site.
 * Codes are stable: they appear in logs and in `--json` output as names.
 */
#ifndef APPLIANCE_ERR_H
#define APPLIANCE_ERR_H

#define APP_WUR __attribute__((warn_unused_result))

enum app_err {
	APP_OK = 0,
	APP_EINTERNAL = -1,  /* broken invariant or unexpected library failure */
	APP_ENOMEM = -2,     /* allocation failed */
	APP_EINVAL = -3,     /* invalid argument from the caller */
	APP_EPARSE = -4,     /* malformed input (syntax) */
	APP_ETOOBIG = -5,    /* input over a hard size cap */
	APP_ERANGE = -6,     /* a value outside its documented range */
	APP_EBADID = -7,     /* event id does not match its recomputed value */
	APP_EBADSIG = -8,    /* signature verification failed */
	APP_EBADKEY = -9,    /* secret or public key invalid (not on curve, 0, >= n) */
	APP_EBADMAC = -10,   /* MAC/AEAD authentication failed */
	APP_EBADPAD = -11,   /* padding invalid */
	APP_EVERSION = -12,  /* unknown or unsupported version */
	APP_ECHECKSUM = -13, /* checksum mismatch (bech32, hashes) */
	APP_EIO = -14,       /* I/O error (file, socket) */
	APP_ETIMEOUT = -15,  /* an operation timed out */
	APP_ENOTFOUND = -16, /* the thing asked for does not exist */
	APP_EEXIST = -17,    /* the thing already exists (duplicate) */
	APP_EREFUSED = -18,  /* refused by policy (trust, limits, permissions) */
	APP_EEXPIRED = -19,  /* past its validity window */
	APP_ELIMIT = -20,    /* a resource limit was hit (queue, rate, count) */
	APP_ESTATE = -21,    /* operation not valid in the current state */
	APP_ECHAIN = -22,    /* certificate chain verification failed */
	APP_EPROTO = -23,    /* peer violated the protocol */
	APP_ECONN = -24,     /* connection failed or was lost */
	APP_EUNSUPPORTED = -25, /* a valid but unsupported feature or option */
	APP_EAGAIN = -26,    /* try again later (transient) */
	APP_ECANCELED = -27, /* operation canceled */
	APP_ENOENT = -28,    /* a file or path does not exist */
	APP_EDEBUG = -29,    /* attestation document is from a debug-mode enclave */
	APP_EROLLBACK = -30, /* state older than a checkpoint or out of order */
	APP_E_MIN_ = -31
};

/*
 * app_strerror: a short human-readable text for an APP_E* code.
 * Returns a static string; unknown codes give "unknown error".
 */
const char *app_strerror(int err);

/*
 * app_errname: the stable symbolic name of a code ("EPARSE", "EBADSIG", ...)
 * for machine-readable output. Returns a static string.
 */
const char *app_errname(int err);

#endif
