/*
 * pconfig.h: the configuration of appliance-parent (INI, libinih):
 * `appliance-parent run --dev|--nitro --config FILE`. Every key with its
 * default and range is printed by `appliance-parent help-config` and listed
 * in README.md "Operating the parent". Unknown sections or keys, values out
 * of range and repeated non-list keys are errors naming file:line.
 *
 *   [parent]    mode (dev|nitro), state_dir, log_level
 *   [enclave]   binary, config, arg (list)         dev mode
 *               eif, cpu_count, memory_mib, cid, debug_mode   nitro mode
 *               restart_min_ms, restart_max_ms, restart_reset_s, shutdown_grace_ms
 *   [dev]       ca_dir, instance_id, namespaces (full|net)
 *   [channel]   control, egress (channel.h addresses the parent listens on)
 *   [egress]    allow (list: HOST:PORT rules, proxy.h), allow_private,
 *               max_connections, max_bytes, idle_timeout_s, connect_timeout_ms
 *   [blobstore] dir, max_bytes, max_blobs, max_blob
 *   [log]       line_max, rate, burst   (the enclave's log lines)
 *
 * Derived defaults (filled by pconfig_finish): state_dir
 * /var/lib/appliance-parent; dev: ca_dir STATE/dev-ca, control
 * unix:STATE/run/control.sock, egress unix:STATE/run/egress.sock; nitro:
 * control vsock:any:2080, egress vsock:any:1080; blobstore dir STATE/blobs.
 */
#ifndef PARENT_PCONFIG_H
#define PARENT_PCONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "appliance/err.h"
#include "appliance/log.h"
#include "parent/proxy.h"

#define PCONFIG_LIST_MAX 64
#define PCONFIG_STR_MAX 200
#define PCONFIG_FILE_MAX (256 * 1024)
#define PCONFIG_ERR_MAX 320

enum pconfig_mode { PCONFIG_DEV = 1, PCONFIG_NITRO = 2 };

struct pconfig {
	enum pconfig_mode mode;
	char state_dir[PCONFIG_STR_MAX + 1];
	enum log_level log_level;
	/* [enclave] */
	char binary[PCONFIG_STR_MAX + 1];
	char config[PCONFIG_STR_MAX + 1];  /* "" = none */
	char *args[PCONFIG_LIST_MAX];
	size_t nargs;
	char eif[PCONFIG_STR_MAX + 1];
	uint32_t cpu_count, memory_mib, cid;
	int debug_mode;
	uint32_t restart_min_ms, restart_max_ms, restart_reset_s, shutdown_grace_ms;
	/* [dev] */
	char ca_dir[PCONFIG_STR_MAX + 1];
	char instance_id[32];
	int full_namespaces; /* net+mount+pid (fallback to net only, logged) vs net only */
	/* [channel] */
	char control[PCONFIG_STR_MAX + 1];
	char egress[PCONFIG_STR_MAX + 1];
	/* [egress] */
	struct proxy_config proxy;
	/* [blobstore] */
	char blob_dir[PCONFIG_STR_MAX + 1];
	uint64_t blob_max_bytes, blob_max_blobs, blob_max_blob;
	/* [log] */
	uint32_t log_line_max, log_rate, log_burst;
};

/*
 * pconfig_load: reads and checks path (at most PCONFIG_FILE_MAX bytes);
 * mode_override (0 = the file's [parent] mode) is applied before derived
 * defaults. Returns 0 with *out (pconfig_free); APP_ENOENT / APP_EIO;
 * APP_ETOOBIG; APP_EINVAL (err names file:line, section and key);
 * APP_ENOMEM.
 */
int pconfig_load(struct pconfig **out, char *err, size_t errcap, const char *path, int mode_override) APP_WUR;

/* pconfig_parse: as pconfig_load for text[0..len) named `name`. */
int pconfig_parse(struct pconfig **out, char *err, size_t errcap, const char *name, const char *text, size_t len,
		  int mode_override) APP_WUR;

/* pconfig_free: frees; NULL is a no-op. */
void pconfig_free(struct pconfig *c);

/* pconfig_print_help: every key, default, range and meaning. */
void pconfig_print_help(FILE *f);

#endif
