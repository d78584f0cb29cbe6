/*
 * appliance-keystore: attestation-gated key storage in an enclave (DESIGN §7;
 * keystore/ksserver.h, keystore/kscore.h; PROTOCOL.md "Keystore RPC").
 *
 *   appliance-keystore --config FILE        run until SIGTERM/SIGINT
 *   appliance-keystore --config FILE --check-config
 *   appliance-keystore --help-config
 *   appliance-keystore --help
 *
 * Exit status: 0 stopped cleanly (or configuration valid), 1 failed while
 * running, 2 usage, configuration or startup error.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/err.h"
#include "appliance/log.h"
#include "enclave/runtime/egress.h"
#include "enclave/runtime/parentlink.h"
#include "keystore/ksconfig.h"
#include "keystore/ksserver.h"
#include "relay-client/pool.h"

static const char usage[] =
	"usage: appliance-keystore --config FILE [--check-config]\n"
	"       appliance-keystore --help-config\n"
	"\n"
	"Attestation-gated key storage: enclaves store a secret (<= 1024 bytes) under\n"
	"their PCRs and get it back with an attestation of the same PCRs, or of a newer\n"
	"build their maintainers signed (kind 63794). RPC over kind 29525 (NIP-44);\n"
	"announced as kind 13793 with [\"name\",\"keystore\"]. RAM only: a restart\n"
	"forgets everything and makes a new service key. See appliance/PROTOCOL.md\n"
	"\"Keystore RPC (kind 29525)\".\n"
	"\n"
	"  --config FILE     the INI configuration (--help-config lists every key)\n"
	"  --check-config    validate the configuration, print the effective values, exit\n"
	"  --help-config     print every configuration key with its default\n"
	"  --help            this text\n"
	"\n"
	"Exit status: 0 ok, 1 failed while running, 2 usage/configuration/startup error.\n";

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, 0, 'c'}, {"check-config", no_argument, 0, 'k'},
		{"help-config", no_argument, 0, 'H'},   {"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	const char *path = NULL;
	int check = 0, opt;
	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 'k': check = 1; break;
		case 'H': ksconfig_print_help(stdout); return 0;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (!path || optind != argc) {
		fputs(usage, stderr);
		return 2;
	}
	struct ksconfig *cfg = NULL;
	char err[KSCONFIG_ERR_MAX + 64];
	int r = ksconfig_load(&cfg, err, sizeof err, path);
	if (r) {
		fprintf(stderr, "appliance-keystore: %s\n", err);
		return 2;
	}
	log_set_level(cfg->log_level);
	if (check) {
		ksconfig_print(cfg, stdout);
		printf("\n; configuration valid\n");
		ksconfig_free(cfg);
		return 0;
	}
	/*
	 * Run by appliance-parent (dev mode, or on Nitro): lo up, log lines to the parent, every
	 * relay through the egress bridge, the NSM the launcher names (enclave/runtime/parentlink.h).
	 * Without a parent nothing changes.
	 */
	struct parentlink_boot boot;
	if ((r = parentlink_boot_start(&boot, "keystore")) != 0) {
		fprintf(stderr, "appliance-keystore: parent link: %s (%s)\n", app_strerror(r), app_errname(r));
		ksconfig_free(cfg);
		return 2;
	}
	if (boot.active) {
		if (boot.nsm[0]) {
			char *nsm = strdup(boot.nsm);
			if (!nsm) {
				parentlink_boot_stop(&boot);
				ksconfig_free(cfg);
				return 2;
			}
			free(cfg->nsm);
			cfg->nsm = nsm;
		}
		relay_pool_set_connect_resolver(egress_default_connect_to);
	}
	r = ksserver_run(cfg);
	parentlink_boot_stop(&boot);
	ksconfig_free(cfg);
	if (r)
		fprintf(stderr, "appliance-keystore: stopped: %s (%s)\n", app_strerror(r), app_errname(r));
	return r == 0 ? 0 : r == APP_EIO ? 1 : 2;
}
