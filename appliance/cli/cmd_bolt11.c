/* appliance bolt11 decode: BOLT #11 invoices (billing/bolt11.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/cli/cli.h"
#include "appliance/hex.h"
#include "billing/bolt11.h"

static const char bolt11_usage[] =
	"usage: appliance bolt11 decode INVOICE [--json] [--now UNIX_SECONDS]\n"
	"\n"
	"Decodes and checks a BOLT #11 invoice (lnbc, lntb, lntbs, lnbcrt; an optional lightning:\n"
	"prefix): checksum, amount, every tagged field, and the signature (the payee node pubkey is\n"
	"recovered from it, or checked against the n field when there is one). Prints network,\n"
	"amount in msat, timestamp, expiry, payment_hash, payment_secret, description or\n"
	"description_hash, payee and every other field present; with --json one JSON object.\n"
	"An expired invoice is still decoded (\"expired\": true); a malformed one is refused with\n"
	"the reason (exit 1).\n";

int cmd_bolt11(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, 0, 'j'}, {"now", required_argument, 0, 'n'}, {"help", no_argument, 0, 'h'}, {0}};
	int json = 0, c;
	unsigned long long now = (unsigned long long)time(NULL);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j': json = 1; break;
		case 'n':
			if (cli_parse_u64(&now, optarg, UINT64_MAX))
				return cli_error(CLI_USAGE, "bolt11", "--now: expected unix seconds");
			break;
		case 'h': return cli_print_usage(bolt11_usage);
		default: return CLI_USAGE;
		}
	}
	if (optind + 2 != argc || strcmp(argv[optind], "decode") != 0) {
		fputs(bolt11_usage, stderr);
		return CLI_USAGE;
	}
	const char *s = argv[optind + 1];
	struct bolt11 *inv = NULL;
	const char *why = NULL;
	int r = bolt11_decode(&inv, &why, s, strlen(s));
	if (r)
		return cli_error(CLI_REFUSED, "bolt11", "invalid invoice: %s (%s)", why ? why : "malformed",
				 app_errname(r));
	int expired = bolt11_expired(inv, now);
	int rc = CLI_OK;
	if (json) {
		char *out = NULL;
		size_t n;
		if (bolt11_to_json(&out, &n, inv) != 0) {
			rc = cli_error(CLI_USAGE, "bolt11", "out of memory");
		} else {
			out[n - 1] = 0; /* drop the closing brace to add "expired" */
			printf("%s,\"expired\":%s}\n", out, expired ? "true" : "false");
			free(out);
		}
	} else {
		char hex[131];
		printf("network          %s\n", bolt11_network_name(inv->network));
		if (inv->has_amount)
			printf("amount_msat      %llu\n", (unsigned long long)inv->amount_msat);
		else
			printf("amount_msat      (any amount)\n");
		printf("timestamp        %llu\n", (unsigned long long)inv->timestamp);
		printf("expiry           %llu s%s\n", (unsigned long long)inv->expiry, inv->has_expiry ? "" : " (default)");
		printf("expires_at       %llu%s\n", (unsigned long long)bolt11_expires_at(inv), expired ? " (expired)" : "");
		printf("min_final_cltv   %llu\n", (unsigned long long)inv->min_final_cltv_expiry);
		hex_encode(hex, inv->payment_hash, 32);
		printf("payment_hash     %s\n", hex);
		if (inv->has_payment_secret) {
			hex_encode(hex, inv->payment_secret, 32);
			printf("payment_secret   %s\n", hex);
		}
		if (inv->has_description) {
			printf("description      ");
			for (size_t i = 0; i < inv->description_len; i++) {
				unsigned char ch = (unsigned char)inv->description[i];
				if (ch < 0x20 || ch == 0x7f)
					printf("\\x%02x", ch);
				else
					putchar(ch);
			}
			putchar('\n');
		}
		if (inv->has_description_hash) {
			hex_encode(hex, inv->description_hash, 32);
			printf("description_hash %s\n", hex);
		}
		hex_encode(hex, inv->payee, 33);
		printf("payee            %s (%s)\n", hex, inv->has_payee_field ? "n field, signature verified" : "recovered from the signature");
		if (inv->has_metadata && inv->metadata_len <= 64) {
			hex_encode(hex, inv->metadata, inv->metadata_len);
			printf("metadata         %s\n", hex);
		}
		if (inv->has_features) {
			printf("features        ");
			for (unsigned b = 0; b < inv->nfeature_words * 5; b++)
				if (bolt11_feature(inv, b))
					printf(" %u", b);
			putchar('\n');
		}
		for (size_t i = 0; i < inv->nfallbacks; i++) {
			hex_encode(hex, inv->fallbacks[i].addr, inv->fallbacks[i].len);
			printf("fallback         version %u %s\n", inv->fallbacks[i].version, hex);
		}
		for (size_t i = 0; i < inv->nroutes; i++)
			for (size_t j = 0; j < inv->routes[i].nhops; j++) {
				const struct bolt11_hop *h = &inv->routes[i].hops[j];
				hex_encode(hex, h->pubkey, 33);
				printf("route %zu hop %zu    %s %llux%llux%llu fee %u+%u ppm cltv %u\n", i, j, hex,
				       (unsigned long long)(h->short_channel_id >> 40),
				       (unsigned long long)((h->short_channel_id >> 16) & 0xffffff),
				       (unsigned long long)(h->short_channel_id & 0xffff), h->fee_base_msat,
				       h->fee_proportional_millionths, h->cltv_expiry_delta);
			}
		for (size_t i = 0; i < inv->nskipped; i++)
			printf("skipped field    type %u, %u words\n", inv->skipped[i].type, inv->skipped[i].data_length);
	}
	bolt11_free(inv);
	return rc;
}
