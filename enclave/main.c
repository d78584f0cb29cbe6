/*
 * appliance-enclave: the enclave daemon (DESIGN §2, §5; enclave/daemon.h).
 *
 *   appliance-enclave --config FILE        run until SIGTERM/SIGINT
 *   appliance-enclave --config FILE --check-config
 *                                          validate, print the effective configuration
 *   appliance-enclave --help-config        every configuration key
 *   appliance-enclave --help
 *
 * Exit status: 0 stopped cleanly (or configuration valid), 1 refused or
 * failed at run time, 2 usage, configuration or startup error.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/err.h"
#include "appliance/log.h"
#include "billing/nwc.h"
#include "enclave/daemon.h"
#include "enclave/econfig.h"
#include "enclave/runtime/egress.h"
#include "enclave/runtime/parentlink.h"
#include "enclave/sjboot.h"
#include "relay-client/pool.h"

static const char usage[] =
	"usage: appliance-enclave --config FILE [--check-config]\n"
	"       appliance-enclave --help-config\n"
	"\n"
	"The pay-per-job training instance: announces itself (NEC 13793 with its\n"
	"attestation, NIP-89 31990, profile, relay list), takes job requests (kind\n"
	"5720), quotes, invoices through the operator's NIP-47 wallet, trains, and\n"
	"publishes attested results (kind 6720). See appliance/PROTOCOL.md.\n"
	"\n"
	"  --config FILE     the INI configuration (--help-config lists every key)\n"
	"  --check-config    validate the configuration and the wallet URI file,\n"
	"                    print the effective configuration, exit\n"
	"  --help-config     print every configuration key with its default\n"
	"  --help            this text\n"
	"\n"
	"Exit status: 0 ok, 1 failed while running, 2 usage/configuration/startup error.\n";

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, 0, 'c'},	  {"check-config", no_argument, 0, 'k'},
		{"help-config", no_argument, 0, 'H'},	  {"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	const char *path = NULL;
	int check = 0, opt;
	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 'k': check = 1; break;
		case 'H': econfig_print_help(stdout); return 0;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (!path || optind != argc) {
		fputs(usage, stderr);
		return 2;
	}
	struct econfig *cfg = NULL;
	struct nwc_uri *uri = NULL;
	char err[ECONFIG_ERR_MAX + 64];
	const char *why = NULL;
	int r = econfig_load(&cfg, err, sizeof err, path);
	if (r) {
		fprintf(stderr, "appliance-enclave: %s\n", err);
		return 2;
	}
	log_set_level(cfg->log_level);
	/* the operator's wallet connection: read once, here; never logged */
	r = nwc_uri_load(&uri, &why, cfg->nwc_uri_file);
	if (r) {
		fprintf(stderr, "appliance-enclave: [wallet] nwc_uri_file: %s (%s)\n", why ? why : app_strerror(r),
			app_errname(r));
		econfig_free(cfg);
		return 2;
	}
	if (check) {
		econfig_print(cfg, stdout);
		printf("\n; configuration valid; wallet URI: %zu relay(s)\n", nwc_uri_relay_count(uri));
		nwc_uri_free(uri);
		econfig_free(cfg);
		return 0;
	}
	/*
	 * The parent link (enclave/runtime/parentlink.h; parent's issue): inside an enclave, or launched by
	 * `appliance-parent --dev`, bring lo up, send log lines to the parent, and reach every relay
	 * (job relays and the wallet's) and every URL (libcurl, socks5h) through the egress bridge;
	 * the NSM is the one the launcher names. Without a parent nothing changes.
	 */
	struct parentlink_boot boot;
	r = parentlink_boot_start(&boot, "enclave");
	if (r) {
		fprintf(stderr, "appliance-enclave: parent link: %s (%s)\n", app_strerror(r), app_errname(r));
		nwc_uri_free(uri);
		econfig_free(cfg);
		return 2;
	}
	if (boot.active) {
		char *proxy = strdup(boot.proxy), *nsm = boot.nsm[0] ? strdup(boot.nsm) : NULL;
		if (!proxy || (boot.nsm[0] && !nsm)) {
			free(proxy);
			free(nsm);
			parentlink_boot_stop(&boot);
			nwc_uri_free(uri);
			econfig_free(cfg);
			return 2;
		}
		free(cfg->proxy);
		cfg->proxy = proxy;
		if (nsm) {
			free(cfg->nsm);
			cfg->nsm = nsm;
		}
		relay_pool_set_connect_resolver(egress_default_connect_to);
		sjboot_set_parent_link(boot.link); /* [keystore] store = parent: the sealed journal's records */
	}
	r = daemon_run(cfg, uri);
	parentlink_boot_stop(&boot);
	econfig_free(cfg);
	if (r)
		fprintf(stderr, "appliance-enclave: stopped: %s (%s)\n", app_strerror(r), app_errname(r));
	return r == 0 ? 0 : r == APP_EIO ? 1 : 2;
}
