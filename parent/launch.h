/*
 * launch.h: starting the enclave (DESIGN §2 "Dev mode"; README "Operating
 * the parent").
 *
 * Dev mode plays the Nitro hypervisor:
 *   - the image: the enclave binary and its configuration file are copied
 *     into sealed memfds (F_SEAL_WRITE|SHRINK|GROW|SEAL), measured from those
 *     copies, and the binary is executed from its memfd (execveat
 *     AT_EMPTY_PATH) with the configuration passed as /proc/self/fd/N: the
 *     bytes measured are exactly the bytes that run, whatever happens to the
 *     files afterwards.
 *   - the measurement, EIF formulas (reference nitro-enclaves.md §4.1) for
 *     an image whose kernel and first ramdisk are empty, whose boot command
 *     line is the configuration file and whose application ramdisk is the
 *     binary:
 *       PCR0 = SHA384(0^48 || SHA384(config || binary))   whole image
 *       PCR1 = SHA384(0^48 || SHA384(config))             "kernel + cmdline + bootstrap"
 *       PCR2 = SHA384(0^48 || SHA384(binary))             application
 *     Without a configuration file (config = ""), PCR0 = PCR2 and PCR1 =
 *     SHA384(0^48 || SHA384("")): the same values `appliance-parent
 *     nsm-emulator --image BINARY` gives. PCR1 and PCR2 each pin one part,
 *     so the concatenation in PCR0 cannot be re-split unnoticed.
 *   - isolation: clone(2) with CLONE_NEWNET (required: a fresh network
 *     namespace whose only interface is `lo`, down until the enclave brings
 *     it up) and, when permitted, CLONE_NEWNS|CLONE_NEWPID (the enclave is
 *     PID 1 of its own PID namespace and gets its own /proc); if those are
 *     refused the launch falls back to CLONE_NEWNET alone and says why.
 *     Unix sockets named by path are the only way out: the channel.
 *
 * Nitro mode builds the nitro-cli command lines (the parent cannot run them
 * here: there is no Nitro hardware; they are unit-tested instead).
 */
#ifndef PARENT_LAUNCH_H
#define PARENT_LAUNCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "appliance/err.h"

#define LAUNCH_IMAGE_MAX (1ull << 30)  /* bytes of an enclave binary */
#define LAUNCH_CONFIG_MAX (1u << 20)   /* bytes of its configuration file */
#define LAUNCH_ARGS_MAX 80             /* argv entries */
#define LAUNCH_ENV_MAX 16              /* environment entries */
#define LAUNCH_NITRO_ARGV_MAX 16

/* A measured image, ready to run. */
struct launch_image {
	int bin_fd;   /* sealed memfd of the binary */
	int cfg_fd;   /* sealed memfd of the configuration, or -1 */
	uint64_t bin_len, cfg_len;
	uint8_t pcr[3][48]; /* PCR0, PCR1, PCR2 */
};

/*
 * launch_measure: PCR0/1/2 of (binary, config) by the formulas above
 * (config may be NULL with cfg_len 0).
 */
void launch_measure(uint8_t pcr[3][48], const uint8_t *bin, size_t bin_len, const uint8_t *cfg, size_t cfg_len);

/*
 * launch_image_load: copies binary (and config, NULL = none) into sealed
 * memfds and measures them. Returns 0 with *img (launch_image_clear);
 * APP_ENOENT; APP_EIO; APP_ETOOBIG (over LAUNCH_IMAGE_MAX /
 * LAUNCH_CONFIG_MAX); APP_ENOMEM.
 */
int launch_image_load(struct launch_image *img, const char *binary, const char *config) APP_WUR;

/* launch_image_clear: closes the memfds; safe on a zeroed image. */
void launch_image_clear(struct launch_image *img);

/* Namespaces actually used by a launch. */
#define LAUNCH_NS_NET 1
#define LAUNCH_NS_MOUNT 2
#define LAUNCH_NS_PID 4

struct launch_spec {
	const struct launch_image *img;
	const char *argv0;                 /* argv[0] of the enclave */
	char *const *args;                 /* extra arguments, before --config */
	size_t nargs;
	char *const *env;                  /* "NAME=VALUE" entries, the whole environment */
	size_t nenv;
	int full;                          /* try NET|NS|PID first */
};

/*
 * launch_dev: starts the image in fresh namespaces (above); argv is argv0,
 * args..., then "--config /proc/self/fd/N" when the image has a
 * configuration. stdin is /dev/null; stdout and stderr are inherited.
 * Returns 0 with *pid (a child of the caller: waitpid it) and *ns (the
 * LAUNCH_NS_* set used; *why says why the full set was refused, static
 * text, or ""); APP_EREFUSED (no new network namespace: unshare not
 * permitted, errno kept: the enclave is never started without one);
 * APP_EINVAL (too many arguments); APP_EIO.
 */
int launch_dev(pid_t *pid, int *ns, const char **why, const struct launch_spec *spec) APP_WUR;

/*
 * launch_nitro_run_argv: the argv of
 *   nitro-cli run-enclave --eif-path EIF --cpu-count N --memory MIB
 *             --enclave-cid CID [--debug-mode]
 * into argv[0..cap) (NULL-terminated; strings point into bufs[], which
 * holds the formatted numbers: char bufs[3][24]). Returns the argument
 * count, or APP_EINVAL (empty eif, cid < 4 or 0xFFFFFFFF, zero cpu/memory,
 * cap too small).
 */
int launch_nitro_run_argv(const char **argv, size_t cap, char bufs[3][24], const char *eif, uint32_t cpu_count,
			  uint32_t memory_mib, uint32_t cid, int debug_mode) APP_WUR;

/*
 * launch_nitro_terminate_argv: "nitro-cli terminate-enclave --enclave-id ID"
 * (ID: "i-...-enc..." as printed by run-enclave; checked: [A-Za-z0-9-], 1..64).
 * Returns the argument count or APP_EINVAL.
 */
int launch_nitro_terminate_argv(const char **argv, size_t cap, const char *enclave_id) APP_WUR;

/*
 * launch_nitro_enclave_id: the "EnclaveID" value in nitro-cli's JSON output
 * json[0..len) into out[0..cap). Returns 0, APP_EPARSE, APP_ETOOBIG.
 */
int launch_nitro_enclave_id(char *out, size_t cap, const char *json, size_t len) APP_WUR;

#endif
