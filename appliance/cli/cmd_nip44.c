/* appliance nip44 encrypt | decrypt */
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/cli/cli.h"
#include "appliance/hex.h"
#include "appliance/keys.h"
#include "appliance/nip44.h"

static const char nip44_usage[] =
	"usage: appliance nip44 encrypt --pub HEX [--nonce HEX] [--sec-file FILE]\n"
	"       appliance nip44 decrypt --pub HEX [--sec-file FILE]\n"
	"\n"
	"NIP-44 v2 between the secret key (from --sec-file or APPLIANCE_SEC) and the\n"
	"peer's x-only public key --pub.\n"
	"encrypt  reads the plaintext (1..65535 bytes, taken exactly) on stdin and prints the\n"
	"         base64 payload. --nonce fixes the 32-byte nonce (test vectors only).\n"
	"decrypt  reads a payload on stdin and writes the plaintext to stdout; exits 1 on\n"
	"         any version, length, MAC or padding failure.\n";

int cmd_nip44(int argc, char **argv)
{
	static const struct option opts[] = {{"pub", required_argument, 0, 'p'},
					     {"nonce", required_argument, 0, 'n'},
					     {"sec-file", required_argument, 0, 's'},
					     {"help", no_argument, 0, 'h'},
					     {0}};
	const char *pubhex = NULL, *noncehex = NULL, *sec_file = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': pubhex = optarg; break;
		case 'n': noncehex = optarg; break;
		case 's': sec_file = optarg; break;
		case 'h': return cli_print_usage(nip44_usage);
		default: return CLI_USAGE;
		}
	}
	if (optind + 1 != argc || !pubhex) {
		fputs(nip44_usage, stderr);
		return CLI_USAGE;
	}
	const char *sub = argv[optind];
	int enc = !strcmp(sub, "encrypt");
	if (!enc && strcmp(sub, "decrypt") != 0) {
		fputs(nip44_usage, stderr);
		return CLI_USAGE;
	}
	uint8_t pub[32], nonce[32], ck[32];
	if (hex_decode(pub, 32, pubhex, strlen(pubhex), 0) != 0)
		return cli_error(CLI_USAGE, "nip44", "--pub: expected 64 hex characters");
	if (noncehex && (!enc || hex_decode(nonce, 32, noncehex, strlen(noncehex), 0) != 0))
		return cli_error(CLI_USAGE, "nip44", "--nonce: expected 64 hex characters (encrypt only)");
	struct keypair *kp;
	int rc = cli_load_secret(&kp, sec_file);
	if (rc)
		return rc;
	char *in = NULL;
	size_t inlen = 0;
	int r = nip44_conversation_key(ck, kp, pub);
	keys_free(kp);
	if (r) {
		rc = cli_error(CLI_REFUSED, "nip44", "--pub is not a valid public key");
		goto out;
	}
	if ((rc = cli_read_input(&in, &inlen, NULL, enc ? NIP44_MAX_PLAINTEXT + 1 : NIP44_MAX_PAYLOAD + 2)) != 0)
		goto out;
	if (enc) {
		char *payload;
		if ((r = nip44_encrypt(&payload, NULL, ck, (const uint8_t *)in, inlen, noncehex ? nonce : NULL)) != 0) {
			rc = cli_error(CLI_REFUSED, "nip44 encrypt", "%s (plaintext must be 1..65535 bytes)",
				       app_strerror(r));
			goto out;
		}
		printf("%s\n", payload);
		free(payload);
	} else {
		while (inlen && (in[inlen - 1] == '\n' || in[inlen - 1] == '\r' || in[inlen - 1] == ' '))
			inlen--;
		uint8_t *pt;
		size_t ptlen;
		if ((r = nip44_decrypt(&pt, &ptlen, ck, in, inlen)) != 0) {
			rc = cli_error(CLI_REFUSED, "nip44 decrypt", "%s", app_strerror(r));
			goto out;
		}
		fwrite(pt, 1, ptlen, stdout);
		sodium_memzero(pt, ptlen);
		free(pt);
	}
	rc = fflush(stdout) == 0 ? CLI_OK : CLI_USAGE;
out:
	sodium_memzero(ck, sizeof ck);
	if (in) {
		sodium_memzero(in, inlen);
		free(in);
	}
	return rc;
}
