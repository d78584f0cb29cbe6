/* appliance keygen, appliance key pub */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "appliance/cli/cli.h"
#include "appliance/hex.h"
#include "appliance/keys.h"
#include "appliance/nip19.h"

static const char keygen_usage[] =
	"usage: appliance keygen [--json]\n"
	"Generates a new secp256k1 secret key from the system CSPRNG.\n"
	"Prints the secret key as hex (or, with --json, {\"sec\",\"pub\",\"nsec\",\"npub\"}).\n"
	"Store it in a file readable only by you and pass it with --sec-file.\n";

static int print_key(const struct keypair *kp, int json, int with_secret)
{
	uint8_t pub[32], sec[32];
	char pubhex[65], sechex[65];
	char *npub = NULL, *nsec = NULL;
	int rc = CLI_USAGE;
	keys_pubkey(kp, pub);
	hex_encode(pubhex, pub, 32);
	if (nip19_encode_bare(&npub, "npub", pub) != 0)
		goto out;
	if (with_secret) {
		keys_secret(kp, sec);
		hex_encode(sechex, sec, 32);
		if (nip19_encode_bare(&nsec, "nsec", sec) != 0)
			goto out;
	}
	if (json && with_secret)
		printf("{\"sec\":\"%s\",\"pub\":\"%s\",\"nsec\":\"%s\",\"npub\":\"%s\"}\n", sechex, pubhex, nsec, npub);
	else if (json)
		printf("{\"pub\":\"%s\",\"npub\":\"%s\"}\n", pubhex, npub);
	else
		printf("%s\n", with_secret ? sechex : pubhex);
	rc = CLI_OK;
out:
	sodium_memzero(sec, sizeof sec);
	sodium_memzero(sechex, sizeof sechex);
	if (nsec) {
		sodium_memzero(nsec, strlen(nsec));
		free(nsec);
	}
	free(npub);
	return rc;
}

int cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0}};
	int json = 0, c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'j')
			json = 1;
		else if (c == 'h')
			return cli_print_usage(keygen_usage);
		else
			return CLI_USAGE;
	}
	if (optind != argc)
		return cli_error(CLI_USAGE, "keygen", "unexpected argument '%s'", argv[optind]);
	struct keypair *kp;
	if (keys_generate(&kp) != 0)
		return cli_error(CLI_USAGE, "keygen", "out of memory");
	int rc = print_key(kp, json, 1);
	keys_free(kp);
	return rc;
}

static const char key_usage[] =
	"usage: appliance key pub [--sec-file FILE] [--json]\n"
	"Prints the x-only public key (hex; with --json also the npub) of the secret key\n"
	"read from --sec-file FILE or the environment variable APPLIANCE_SEC (hex or nsec).\n";

int cmd_key(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, 0, 'j'},
					     {"sec-file", required_argument, 0, 's'},
					     {"help", no_argument, 0, 'h'},
					     {0}};
	int json = 0, c;
	const char *sec_file = NULL;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'j')
			json = 1;
		else if (c == 's')
			sec_file = optarg;
		else if (c == 'h')
			return cli_print_usage(key_usage);
		else
			return CLI_USAGE;
	}
	if (optind >= argc || strcmp(argv[optind], "pub") != 0 || optind + 1 != argc) {
		fputs(key_usage, stderr);
		return CLI_USAGE;
	}
	struct keypair *kp;
	int rc = cli_load_secret(&kp, sec_file);
	if (rc)
		return rc;
	rc = print_key(kp, json, 0);
	keys_free(kp);
	return rc;
}
