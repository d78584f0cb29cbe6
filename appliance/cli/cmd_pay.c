/* appliance pay: pays a BOLT #11 invoice over NIP-47 (billing/bolt11.h, billing/nwc.h). */
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/cli/cli.h"
#include "appliance/hash.h"
#include "appliance/hex.h"
#include "billing/bolt11.h"
#include "billing/nwc.h"

static const char pay_usage[] =
	"usage: appliance pay [--nwc-file FILE] [--max-msat N] [--json] BOLT11\n"
	"\n"
	"Decodes and checks the invoice first (billing/bolt11: checksum, signature, amount), refuses\n"
	"an invoice without an amount, above --max-msat or expired (exit 1), then pays it with the\n"
	"wallet of the NIP-47 connection (--nwc-file FILE holding the nostr+walletconnect:// URI, else\n"
	"the environment variable APPLIANCE_NWC; never on the command line) and prints the preimage,\n"
	"after checking that it hashes to the invoice's payment_hash. A payment whose answer is lost\n"
	"is never sent twice: the payment is looked up instead.\n"
	"Options: --timeout-ms N (per request, default 30000), --ca-file PEM (wss:// test relays).\n"
	"Exit: 0 paid; 1 refused (limit, expired, wallet error, bad preimage); 2 usage, no\n"
	"connection, or no answer from the wallet (try again: the lookup tells whether it was paid).\n";

int cli_nwc_open(struct nwc_uri **u, struct nwc_client **c, const char *cmd, const char *nwc_file,
		 const struct nwc_client_opts *o);

int cmd_pay(int argc, char **argv)
{
	static const struct option opts[] = {{"nwc-file", required_argument, 0, 'f'},
					     {"max-msat", required_argument, 0, 'm'},
					     {"timeout-ms", required_argument, 0, 't'},
					     {"ca-file", required_argument, 0, 'C'},
					     {"json", no_argument, 0, 'j'},
					     {"help", no_argument, 0, 'h'},
					     {0}};
	struct nwc_client_opts co;
	const char *nwc_file = NULL;
	unsigned long long max_msat = 0, v;
	int have_max = 0, json = 0, c;
	nwc_client_opts_default(&co);
	co.timeout_ms = 30000;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'f': nwc_file = optarg; break;
		case 'C': co.ca_file = optarg; break;
		case 'j': json = 1; break;
		case 'm':
			if (cli_parse_u64(&max_msat, optarg, UINT64_MAX))
				return cli_error(CLI_USAGE, "pay", "--max-msat: expected msat");
			have_max = 1;
			break;
		case 't':
			if (cli_parse_u64(&v, optarg, 600000) || v == 0)
				return cli_error(CLI_USAGE, "pay", "--timeout-ms: 1..600000");
			co.timeout_ms = (unsigned)v;
			break;
		case 'h': return cli_print_usage(pay_usage);
		default: return CLI_USAGE;
		}
	}
	if (optind + 1 != argc) {
		fputs(pay_usage, stderr);
		return CLI_USAGE;
	}
	const char *bolt11 = argv[optind];
	struct bolt11 *inv = NULL;
	const char *why = NULL;
	int r = bolt11_decode(&inv, &why, bolt11, strlen(bolt11));
	if (r)
		return cli_error(CLI_REFUSED, "pay", "invalid invoice: %s (%s)", why, app_errname(r));
	char ph_hex[65];
	hex_encode(ph_hex, inv->payment_hash, 32);
	uint64_t amount = inv->amount_msat, now = (uint64_t)time(NULL);
	uint8_t ph[32];
	memcpy(ph, inv->payment_hash, 32);
	int has_amount = inv->has_amount, expired = bolt11_expired(inv, now);
	uint64_t expires_at = bolt11_expires_at(inv);
	bolt11_free(inv);
	if (!has_amount)
		return cli_error(CLI_REFUSED, "pay", "invoice has no amount: refusing to pay an open amount");
	if (have_max && amount > max_msat)
		return cli_error(CLI_REFUSED, "pay", "invoice asks %llu msat, above --max-msat %llu: not paid",
				 (unsigned long long)amount, max_msat);
	if (expired)
		return cli_error(CLI_REFUSED, "pay", "invoice expired at %llu (now %llu): not paid",
				 (unsigned long long)expires_at, (unsigned long long)now);

	struct nwc_uri *u;
	struct nwc_client *cl;
	int rc = cli_nwc_open(&u, &cl, "pay", nwc_file, &co);
	if (rc)
		return rc;
	uint8_t preimage[32], h[32];
	uint64_t fees = 0;
	struct nwc_error err;
	r = nwc_pay_invoice(cl, preimage, &fees, &err, &why, bolt11);
	if (r == APP_ETIMEOUT) {
		/* the answer may be lost while the payment went through: look it up, never pay twice */
		struct nwc_tx tx;
		fprintf(stderr, "appliance pay: no answer to pay_invoice; looking the payment up (payment_hash %.16s)\n",
			ph_hex);
		r = nwc_lookup_invoice(cl, &tx, &err, &why, ph);
		if (r == 0) {
			r = nwc_payment_check(&tx, &why, ph, amount);
			if (r == 0 && tx.has_preimage)
				memcpy(preimage, tx.preimage, 32);
			else if (r == 0)
				r = APP_EPROTO, why = "payment settled but the wallet gives no preimage";
			fees = tx.fees_paid_msat;
			nwc_tx_clear(&tx);
		}
		if (r == APP_EAGAIN || r == APP_EREFUSED || r == APP_ETIMEOUT) {
			rc = cli_error(CLI_USAGE, "pay",
				       "the wallet did not confirm the payment (payment_hash %.16s): check again later "
				       "with `appliance wallet lookup`",
				       ph_hex);
			goto out;
		}
	}
	if (r == APP_EREFUSED) {
		rc = cli_error(CLI_REFUSED, "pay", "payment failed: the wallet answered %s: %s", err.code_text, err.message);
		goto out;
	}
	if (r) {
		rc = cli_error(r == APP_ECONN || r == APP_ETIMEOUT ? CLI_USAGE : CLI_REFUSED, "pay", "payment failed: %s (%s)",
			       why ? why : app_strerror(r), app_errname(r));
		goto out;
	}
	hash_sha256(h, preimage, 32);
	if (crypto_verify_32(h, ph) != 0) {
		rc = cli_error(CLI_REFUSED, "pay", "the wallet's preimage does not hash to the payment_hash");
		goto out;
	}
	char pre_hex[65];
	hex_encode(pre_hex, preimage, 32);
	if (json)
		printf("{\"preimage\":\"%s\",\"payment_hash\":\"%s\",\"amount_msat\":%llu,\"fees_paid_msat\":%llu}\n", pre_hex,
		       ph_hex, (unsigned long long)amount, (unsigned long long)fees);
	else
		printf("%s\n", pre_hex);
	rc = CLI_OK;
out:
	nwc_client_free(cl);
	nwc_uri_free(u);
	return rc;
}
