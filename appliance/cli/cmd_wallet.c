/*
 * appliance wallet: a NIP-47 wallet connection (billing/nwc.h) and the billing ledger
 * (billing/ledger.h) from the command line.
 */
#include <errno.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "appliance/cli/cli.h"
#include "appliance/hex.h"
#include "appliance/json.h"
#include "billing/bolt11.h"
#include "billing/ledger.h"
#include "billing/nwc.h"
#include "billing/quote.h"

static const char wallet_usage[] =
	"usage: appliance wallet balance|info [CONNECTION] [--json]\n"
	"       appliance wallet invoice --amount-msat N [--description TEXT] [--expiry S] [CONNECTION]\n"
	"       appliance wallet lookup PAYMENT_HASH [CONNECTION]\n"
	"       appliance wallet receive --ledger FILE --client HEX --job HEX [--dataset-bytes N]\n"
	"                 [--epochs N] [--base-msat N] [--unit-msat N] [--min-msat N] [--max-msat N]\n"
	"                 [--expiry S] [--wait S] [--linger S] [--debit] [CONNECTION]\n"
	"       appliance wallet ledger FILE\n"
	"\n"
	"CONNECTION: --nwc-file FILE (a file holding the nostr+walletconnect:// URI), else the\n"
	"environment variable APPLIANCE_NWC. The URI holds a secret: never give it on the command\n"
	"line. Options: --timeout-ms N per request (default 10000), --attempts N (default 2),\n"
	"--ca-file PEM for wss:// relays with a test CA.\n"
	"\n"
	"balance  the wallet's balance in msat (get_balance)\n"
	"info     the wallet's get_info and the negotiated encryption (nip44_v2 or nip04)\n"
	"invoice  make_invoice; prints {invoice, payment_hash, amount_msat, expires_at}\n"
	"lookup   lookup_invoice; prints the transaction\n"
	"receive  the operator's side of a paid job: quote (price = base + units x unit, units =\n"
	"         MiB(dataset) x epochs), make_invoice, and the quote and invoice recorded in the\n"
	"         ledger FILE (created when missing; replayed when present); prints the invoice as one\n"
	"         JSON line, then waits (--wait, default 60 s) for payment_received notifications and\n"
	"         polls lookup_invoice; a payment is credited once when settled, its preimage hashes\n"
	"         to the payment_hash and its amount covers the quote. Keeps listening --linger S more\n"
	"         (default 0) and counts duplicates; --debit then debits the job. Prints a summary\n"
	"         line; exit 1 when the invoice expired or the payment was refused.\n"
	"ledger   replays FILE and prints each account's balance (JSON lines) and the record count.\n";

/* Shared with cmd_pay.c: loads the connection and connects. Returns 0 or prints and returns an exit code. */
int cli_nwc_open(struct nwc_uri **u, struct nwc_client **c, const char *cmd, const char *nwc_file,
		 const struct nwc_client_opts *o);

int cli_nwc_open(struct nwc_uri **u, struct nwc_client **c, const char *cmd, const char *nwc_file,
		 const struct nwc_client_opts *o)
{
	const char *why = NULL;
	*u = NULL;
	*c = NULL;
	int r = nwc_uri_load(u, &why, nwc_file);
	if (r == APP_ENOENT || r == APP_EIO)
		return cli_error(CLI_USAGE, cmd, "%s", why ? why : "cannot read the connection URI");
	if (r)
		return cli_error(CLI_REFUSED, cmd, "invalid connection URI: %s", why ? why : app_strerror(r));
	r = nwc_client_new(c, &why, *u, o);
	if (r) {
		nwc_uri_free(*u);
		*u = NULL;
		return cli_error(r == APP_EUNSUPPORTED ? CLI_REFUSED : CLI_USAGE, cmd, "cannot reach the wallet: %s (%s)",
				 why ? why : app_strerror(r), app_errname(r));
	}
	return 0;
}

/* Prints why a call failed and returns the exit code: wallet errors 1, no answer 2. */
static int call_failed(const char *cmd, const char *what, int r, const char *why, const struct nwc_error *err)
{
	if (r == APP_EREFUSED)
		return cli_error(CLI_REFUSED, cmd, "%s: the wallet answered %s: %s", what, err->code_text, err->message);
	if (r == APP_ETIMEOUT)
		return cli_error(CLI_USAGE, cmd, "%s: %s; try again later", what, why ? why : "no answer");
	return cli_error(r == APP_ECONN ? CLI_USAGE : CLI_REFUSED, cmd, "%s: %s (%s)", what, why ? why : app_strerror(r),
			 app_errname(r));
}

static void print_tx(const struct nwc_tx *tx)
{
	struct jw w;
	char *s;
	size_t n;
	jw_init(&w, 0);
	jw_raw(&w, "{\"type\":", 8);
	jw_cstr(&w, tx->outgoing ? "outgoing" : "incoming");
	jw_key(&w, 1, "state");
	jw_cstr(&w, tx->state);
	if (tx->invoice) {
		jw_key(&w, 1, "invoice");
		jw_cstr(&w, tx->invoice);
	}
	if (tx->has_payment_hash) {
		jw_key(&w, 1, "payment_hash");
		jw_hex(&w, tx->payment_hash, 32);
	}
	if (tx->has_preimage) {
		jw_key(&w, 1, "preimage");
		jw_hex(&w, tx->preimage, 32);
	}
	jw_key(&w, 1, "amount_msat");
	jw_u64(&w, tx->amount_msat);
	jw_key(&w, 1, "fees_paid_msat");
	jw_u64(&w, tx->fees_paid_msat);
	jw_key(&w, 1, "created_at");
	jw_u64(&w, tx->created_at);
	jw_key(&w, 1, "expires_at");
	jw_u64(&w, tx->expires_at);
	jw_key(&w, 1, "settled_at");
	jw_u64(&w, tx->settled_at);
	jw_char(&w, '}');
	if (jw_finish(&w, &s, &n) == 0) {
		printf("%s\n", s);
		free(s);
	}
	fflush(stdout);
}

/* --- ledger file ------------------------------------------------------------------------------- */

static int ledger_load(struct ledger **l, const char *path)
{
	char *text = NULL;
	size_t len = 0;
	const char *why = NULL;
	size_t line = 0;
	FILE *f = fopen(path, "rb");
	if (!f) {
		if (errno != ENOENT)
			return cli_error(CLI_USAGE, "wallet", "cannot open ledger %s: %s", path, strerror(errno));
		return ledger_new(l) ? cli_error(CLI_USAGE, "wallet", "out of memory") : 0;
	}
	fclose(f);
	int rc = cli_read_input(&text, &len, path, LEDGER_JOURNAL_MAX);
	if (rc)
		return rc;
	int r = ledger_replay(l, &why, &line, text, len);
	free(text);
	if (r)
		return cli_error(CLI_REFUSED, "wallet", "ledger %s refused at line %zu: %s (%s)", path, line, why,
				 app_errname(r));
	return 0;
}

static int ledger_save(const struct ledger *l, const char *path)
{
	char tmp[4096];
	size_t len;
	const char *j = ledger_journal(l, &len);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "wb");
	if (!f)
		return cli_error(CLI_USAGE, "wallet", "cannot write %s: %s", tmp, strerror(errno));
	int bad = fwrite(j, 1, len, f) != len;
	bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
	bad |= fclose(f) != 0;
	if (bad || rename(tmp, path) != 0)
		return cli_error(CLI_USAGE, "wallet", "cannot write ledger %s", path);
	return 0;
}

static int cmd_ledger(const char *path)
{
	struct ledger *l = NULL;
	struct ledger_account *v = NULL;
	size_t n = 0;
	int rc = ledger_load(&l, path);
	if (rc)
		return rc;
	if (ledger_accounts(l, &v, &n) != 0) {
		ledger_free(l);
		return cli_error(CLI_USAGE, "wallet", "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		char hex[65];
		hex_encode(hex, v[i].client, 32);
		printf("{\"client\":\"%s\",\"balance_msat\":%llu,\"paid_msat\":%llu,\"debited_msat\":%llu,"
		       "\"credited_msat\":%llu}\n",
		       hex, (unsigned long long)v[i].balance_msat, (unsigned long long)v[i].paid_msat,
		       (unsigned long long)v[i].debited_msat, (unsigned long long)v[i].credited_msat);
	}
	printf("{\"records\":%llu,\"accounts\":%zu}\n", (unsigned long long)ledger_count(l), n);
	free(v);
	ledger_free(l);
	return CLI_OK;
}

/* --- receive ------------------------------------------------------------------------------------- */

struct receive_opts {
	const char *ledger_path, *client_hex, *job_hex;
	unsigned long long dataset_bytes, epochs, base, unit, min, max, expiry, wait_s, linger_s;
	int debit;
};

/* Confirms with lookup_invoice and records the payment. Returns 1 credited, 0 not (yet), -1 refused for good. */
static int confirm(struct nwc_client *c, struct ledger *l, const uint8_t ph[32], uint64_t min_msat, int *duplicates,
		   const char **final_why)
{
	struct nwc_tx tx;
	struct nwc_error err;
	const char *why = NULL;
	int r = nwc_lookup_invoice(c, &tx, &err, &why, ph);
	if (r) {
		fprintf(stderr, "appliance wallet: lookup_invoice: %s\n", r == APP_EREFUSED ? err.message : why);
		return 0;
	}
	r = nwc_payment_check(&tx, &why, ph, min_msat);
	int out = 0;
	if (r == 0) {
		uint64_t now = (uint64_t)time(NULL);
		uint64_t settled = tx.settled_at ? tx.settled_at : now;
		r = ledger_add_paid(l, ph, tx.amount_msat, settled, now);
		if (r == 0) {
			out = 1;
		} else if (r == APP_EEXIST) {
			(*duplicates)++;
			out = 0;
		} else {
			*final_why = r == APP_EEXPIRED ? "settled after the invoice expired: not credited"
				     : r == APP_ERANGE ? "amount below the invoice: not credited"
						       : "refused by the ledger";
			out = -1;
		}
	} else if (r != APP_EAGAIN) {
		*final_why = why;
		out = -1;
	}
	nwc_tx_clear(&tx);
	return out;
}

static int cmd_receive(const struct receive_opts *ro, const char *nwc_file, const struct nwc_client_opts *co)
{
	struct ledger *l = NULL;
	struct nwc_uri *u = NULL;
	struct nwc_client *c = NULL;
	struct nwc_tx tx;
	struct nwc_error err;
	struct quote q;
	uint8_t client[32], job[32];
	const char *why = NULL;
	int rc = CLI_USAGE, r, duplicates = 0, credited = 0, notifications = 0;
	memset(&tx, 0, sizeof tx);

	if (!ro->ledger_path || !ro->client_hex || !ro->job_hex)
		return cli_error(CLI_USAGE, "wallet", "receive needs --ledger, --client and --job");
	if (hex_decode(client, 32, ro->client_hex, strlen(ro->client_hex), 1) ||
	    hex_decode(job, 32, ro->job_hex, strlen(ro->job_hex), 1))
		return cli_error(CLI_USAGE, "wallet", "--client and --job are 64 lowercase hex digits");
	struct quote_config cfg = {ro->base, ro->unit, ro->min, ro->max, (uint32_t)ro->expiry};
	uint64_t now = (uint64_t)time(NULL);
	if ((r = quote_make(&q, &cfg, job, client, ro->dataset_bytes, (uint32_t)ro->epochs, now)) != 0)
		return cli_error(CLI_REFUSED, "wallet", "cannot quote this job: %s", app_strerror(r));
	if ((rc = ledger_load(&l, ro->ledger_path)) != 0)
		return rc;
	if ((rc = cli_nwc_open(&u, &c, "wallet", nwc_file, co)) != 0)
		goto out;
	char desc[96], jh[17];
	hex_encode(jh, job, 8);
	snprintf(desc, sizeof desc, "appliance job %s", jh);
	r = nwc_make_invoice(c, &tx, &err, &why, q.amount_msat, desc, (uint32_t)ro->expiry);
	if (r) {
		rc = call_failed("wallet", "make_invoice", r, why, &err);
		goto out;
	}
	/* the wallet's invoice must be what we asked for */
	struct bolt11 *inv = NULL;
	if (bolt11_decode(&inv, &why, tx.invoice, strlen(tx.invoice)) != 0 || !inv->has_amount ||
	    inv->amount_msat != q.amount_msat || sodium_memcmp(inv->payment_hash, tx.payment_hash, 32) != 0) {
		bolt11_free(inv);
		rc = cli_error(CLI_REFUSED, "wallet", "the wallet's invoice does not match the request");
		goto out;
	}
	uint64_t expires_at = bolt11_expires_at(inv);
	bolt11_free(inv);
	if ((r = ledger_add_quote(l, &q, now)) != 0 && r != APP_EEXIST) {
		rc = cli_error(CLI_REFUSED, "wallet", "ledger refused the quote: %s", app_strerror(r));
		goto out;
	}
	if ((r = ledger_add_invoice(l, tx.payment_hash, q.id, q.amount_msat, expires_at, now)) != 0) {
		rc = cli_error(CLI_REFUSED, "wallet", "ledger refused the invoice: %s", app_strerror(r));
		goto out;
	}
	if ((rc = ledger_save(l, ro->ledger_path)) != 0)
		goto out;
	char ph_hex[65];
	hex_encode(ph_hex, tx.payment_hash, 32);
	printf("{\"invoice\":\"%s\",\"payment_hash\":\"%s\",\"amount_msat\":%llu,\"expires_at\":%llu}\n", tx.invoice,
	       ph_hex, (unsigned long long)q.amount_msat, (unsigned long long)expires_at);
	fflush(stdout);

	const char *final_why = NULL;
	uint64_t deadline = now + ro->wait_s, last_lookup = 0;
	int state = 0; /* 0 waiting, 1 credited, -1 refused */
	while (state == 0) {
		uint64_t t = (uint64_t)time(NULL);
		if (t >= deadline) {
			final_why = "no payment within --wait";
			break;
		}
		struct nwc_notification n;
		r = nwc_next_notification(c, &n, 1000);
		int check = 0;
		if (r == 0) {
			if (n.type == NWC_PAYMENT_RECEIVED && n.tx.has_payment_hash &&
			    memcmp(n.tx.payment_hash, tx.payment_hash, 32) == 0) {
				notifications++;
				check = 1;
			}
			nwc_notification_clear(&n);
		}
		t = (uint64_t)time(NULL);
		if (check || t >= last_lookup + 3) {
			last_lookup = t;
			int k = confirm(c, l, tx.payment_hash, q.amount_msat, &duplicates, &final_why);
			if (k == 1) {
				credited++;
				state = 1;
			} else if (k < 0) {
				state = -1;
			}
		}
		if (state == 0 && t > expires_at + 2) {
			/* one last look after expiry: a payment settled in time still counts */
			int k = confirm(c, l, tx.payment_hash, q.amount_msat, &duplicates, &final_why);
			if (k == 1) {
				credited++;
				state = 1;
			} else {
				state = -1;
				if (!final_why)
					final_why = "invoice expired unpaid: not credited";
			}
		}
	}
	if (state == 1) {
		/* stay: duplicate notifications and lookups must not credit again */
		uint64_t until = (uint64_t)time(NULL) + ro->linger_s;
		while ((uint64_t)time(NULL) < until) {
			struct nwc_notification n;
			if (nwc_next_notification(c, &n, 500) != 0)
				continue;
			if (n.type == NWC_PAYMENT_RECEIVED && n.tx.has_payment_hash &&
			    memcmp(n.tx.payment_hash, tx.payment_hash, 32) == 0) {
				notifications++;
				if (confirm(c, l, tx.payment_hash, q.amount_msat, &duplicates, &final_why) == 1)
					credited++;
			}
			nwc_notification_clear(&n);
		}
		if (ro->debit) {
			r = ledger_add_debit(l, job, client, q.amount_msat, (uint64_t)time(NULL));
			if (r && r != APP_EEXIST) {
				state = -1;
				final_why = "debit refused";
			}
		}
	}
	int saved = ledger_save(l, ro->ledger_path);
	printf("{\"paid\":%s,\"credited\":%d,\"duplicates\":%d,\"notifications\":%d,\"balance_msat\":%llu,"
	       "\"job_state\":%d,\"records\":%llu%s%s%s}\n",
	       state == 1 ? "true" : "false", credited, duplicates, notifications,
	       (unsigned long long)ledger_balance(l, client), ledger_job_state(l, job),
	       (unsigned long long)ledger_count(l), final_why && state != 1 ? ",\"reason\":\"" : "",
	       final_why && state != 1 ? final_why : "", final_why && state != 1 ? "\"" : "");
	fflush(stdout);
	rc = saved ? saved : state == 1 ? CLI_OK : CLI_REFUSED;
	if (state != 1)
		cli_error(CLI_REFUSED, "wallet", "not credited: %s", final_why ? final_why : "refused");
out:
	nwc_tx_clear(&tx);
	nwc_client_free(c);
	nwc_uri_free(u);
	ledger_free(l);
	return rc;
}

int cmd_wallet(int argc, char **argv)
{
	static const struct option opts[] = {
		{"nwc-file", required_argument, 0, 'f'},   {"json", no_argument, 0, 'j'},
		{"timeout-ms", required_argument, 0, 't'}, {"attempts", required_argument, 0, 'a'},
		{"ca-file", required_argument, 0, 'C'},	   {"amount-msat", required_argument, 0, 'm'},
		{"description", required_argument, 0, 'd'}, {"expiry", required_argument, 0, 'x'},
		{"ledger", required_argument, 0, 'L'},	   {"client", required_argument, 0, 'c'},
		{"job", required_argument, 0, 'J'},	   {"dataset-bytes", required_argument, 0, 'B'},
		{"epochs", required_argument, 0, 'E'},	   {"base-msat", required_argument, 0, 'b'},
		{"unit-msat", required_argument, 0, 'u'},  {"min-msat", required_argument, 0, 'n'},
		{"max-msat", required_argument, 0, 'M'},   {"wait", required_argument, 0, 'w'},
		{"linger", required_argument, 0, 'l'},	   {"debit", no_argument, 0, 'D'},
		{"help", no_argument, 0, 'h'},		   {0}};
	struct nwc_client_opts co;
	struct receive_opts ro = {.epochs = 1, .base = 1000, .unit = 100, .expiry = 600, .wait_s = 60};
	const char *nwc_file = NULL, *description = NULL;
	unsigned long long amount = 0, v;
	int json = 0, c;
	nwc_client_opts_default(&co);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		unsigned long long *dst = NULL;
		switch (c) {
		case 'f': nwc_file = optarg; break;
		case 'j': json = 1; break;
		case 'C': co.ca_file = optarg; break;
		case 'd': description = optarg; break;
		case 'L': ro.ledger_path = optarg; break;
		case 'c': ro.client_hex = optarg; break;
		case 'J': ro.job_hex = optarg; break;
		case 'D': ro.debit = 1; break;
		case 'h': return cli_print_usage(wallet_usage);
		case 't':
		case 'a':
			if (cli_parse_u64(&v, optarg, c == 't' ? 600000 : 8) || v == 0)
				return cli_error(CLI_USAGE, "wallet", "--%s: out of range", c == 't' ? "timeout-ms" : "attempts");
			if (c == 't')
				co.timeout_ms = (unsigned)v;
			else
				co.attempts = (unsigned)v;
			break;
		case 'm': dst = &amount; break;
		case 'x': dst = &ro.expiry; break;
		case 'B': dst = &ro.dataset_bytes; break;
		case 'E': dst = &ro.epochs; break;
		case 'b': dst = &ro.base; break;
		case 'u': dst = &ro.unit; break;
		case 'n': dst = &ro.min; break;
		case 'M': dst = &ro.max; break;
		case 'w': dst = &ro.wait_s; break;
		case 'l': dst = &ro.linger_s; break;
		default: return CLI_USAGE;
		}
		if (dst && cli_parse_u64(dst, optarg, UINT64_MAX))
			return cli_error(CLI_USAGE, "wallet", "expected a number, got '%s'", optarg);
	}
	if (optind >= argc) {
		fputs(wallet_usage, stderr);
		return CLI_USAGE;
	}
	const char *sub = argv[optind];
	if (ro.expiry == 0 || ro.expiry > QUOTE_MAX_TTL || ro.epochs == 0 || ro.epochs > UINT32_MAX ||
	    ro.wait_s > 86400 || ro.linger_s > 3600)
		return cli_error(CLI_USAGE, "wallet", "--expiry, --epochs, --wait or --linger out of range");
	if (!strcmp(sub, "ledger")) {
		if (optind + 2 != argc)
			return cli_error(CLI_USAGE, "wallet", "usage: appliance wallet ledger FILE");
		return cmd_ledger(argv[optind + 1]);
	}
	if (!strcmp(sub, "receive")) {
		if (optind + 1 != argc)
			return cli_error(CLI_USAGE, "wallet", "receive takes no arguments");
		return cmd_receive(&ro, nwc_file, &co);
	}
	int nargs = !strcmp(sub, "lookup") ? 1 : 0;
	if (strcmp(sub, "balance") && strcmp(sub, "info") && strcmp(sub, "invoice") && strcmp(sub, "lookup")) {
		fputs(wallet_usage, stderr);
		return CLI_USAGE;
	}
	if (optind + 1 + nargs != argc)
		return cli_error(CLI_USAGE, "wallet", "wrong number of arguments (see --help)");
	uint8_t ph[32];
	if (nargs && hex_decode(ph, 32, argv[optind + 1], strlen(argv[optind + 1]), 0))
		return cli_error(CLI_USAGE, "wallet", "PAYMENT_HASH: 64 hex digits");
	if (!strcmp(sub, "invoice") && amount == 0)
		return cli_error(CLI_USAGE, "wallet", "invoice needs --amount-msat N (N >= 1)");

	struct nwc_uri *u;
	struct nwc_client *cl;
	int rc = cli_nwc_open(&u, &cl, "wallet", nwc_file, &co);
	if (rc)
		return rc;
	struct nwc_error err;
	const char *why = NULL;
	int r;
	if (!strcmp(sub, "balance")) {
		uint64_t bal;
		r = nwc_get_balance(cl, &bal, &err, &why);
		if (r)
			rc = call_failed("wallet", "get_balance", r, why, &err);
		else if (json)
			printf("{\"balance_msat\":%llu}\n", (unsigned long long)bal);
		else
			printf("%llu msat\n", (unsigned long long)bal);
	} else if (!strcmp(sub, "info")) {
		struct nwc_wallet_info in;
		r = nwc_get_info(cl, &in, &err, &why);
		const char *enc = nwc_client_encryption(cl) == NWC_NIP44 ? "nip44_v2" : "nip04";
		if (r) {
			rc = call_failed("wallet", "get_info", r, why, &err);
		} else {
			struct jw w;
			char *s;
			size_t n;
			jw_init(&w, 0);
			jw_raw(&w, "{\"alias\":", 9);
			jw_cstr(&w, in.alias);
			jw_key(&w, 1, "network");
			jw_cstr(&w, in.network);
			jw_key(&w, 1, "pubkey");
			jw_cstr(&w, in.pubkey);
			jw_key(&w, 1, "block_height");
			jw_u64(&w, in.block_height);
			jw_key(&w, 1, "methods");
			jw_char(&w, '[');
			for (int i = 0, first = 1; i < NWC_METHOD_COUNT; i++)
				if (in.methods & (1u << i)) {
					if (!first)
						jw_char(&w, ',');
					first = 0;
					jw_cstr(&w, nwc_method_name((enum nwc_method)i));
				}
			jw_char(&w, ']');
			jw_key(&w, 1, "encryption");
			jw_cstr(&w, enc);
			jw_char(&w, '}');
			if (jw_finish(&w, &s, &n) == 0) {
				printf("%s\n", s);
				free(s);
			}
		}
	} else if (!strcmp(sub, "invoice")) {
		struct nwc_tx tx;
		r = nwc_make_invoice(cl, &tx, &err, &why, amount, description, (uint32_t)ro.expiry);
		if (r) {
			rc = call_failed("wallet", "make_invoice", r, why, &err);
		} else {
			char hex[65];
			hex_encode(hex, tx.payment_hash, 32);
			printf("{\"invoice\":\"%s\",\"payment_hash\":\"%s\",\"amount_msat\":%llu,\"expires_at\":%llu}\n",
			       tx.invoice, hex, (unsigned long long)tx.amount_msat, (unsigned long long)tx.expires_at);
			nwc_tx_clear(&tx);
		}
	} else {
		struct nwc_tx tx;
		r = nwc_lookup_invoice(cl, &tx, &err, &why, ph);
		if (r) {
			rc = call_failed("wallet", "lookup_invoice", r, why, &err);
		} else {
			print_tx(&tx);
			nwc_tx_clear(&tx);
		}
	}
	nwc_client_free(cl);
	nwc_uri_free(u);
	return rc;
}
