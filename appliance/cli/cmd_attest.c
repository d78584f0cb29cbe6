/* appliance attest verify | show: AWS Nitro attestation documents and NEC attestation events */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/attest.h"
#include "appliance/b64.h"
#include "appliance/cli/cli.h"
#include "appliance/event.h"
#include "appliance/hex.h"
#include "appliance/json.h"
#include "appliance/nec.h"
#include "appliance/nip19.h"

#define ATTEST_INPUT_MAX EVENT_MAX_JSON /* a document in any encoding, or an event */
#define TRUST_MAX 64                    /* --trust keys */
#define ROOTS_MAX 7                     /* --root files (ATTEST_ROOTS_MAX minus AWS's) */

static const char attest_usage[] =
	"usage: appliance attest verify DOC|EVENT_JSON [--at doc|UNIX_SECONDS] [--root PEM]... [--allow-dev]\n"
	"                               [--expect-pcr N=HEX]... [--trust NPUB... --threshold K] [--json]\n"
	"       appliance attest show DOC|EVENT_JSON [--json]\n"
	"\n"
	"DOC is a file (or - for stdin) holding an AWS Nitro attestation document as raw\n"
	"CBOR (COSE_Sign1), base64 or hex, detected automatically. EVENT_JSON is an\n"
	"attestation event (kind 23793) or an instance announcement (kind 13793) whose\n"
	"tee_root carries one; the event itself is checked too (signature, public_key =\n"
	"pubkey, t, expiration, x tags = PCRs).\n"
	"\n"
	"verify  checks the document against AWS Nitro Enclaves Root G1 (pinned by the\n"
	"        SHA-256 of its DER): COSE_Sign1 structure, ES384 signature, certificate\n"
	"        chain and profile, freshness of `timestamp`, debug mode (always refused).\n"
	"        Exit 0 verified, 1 refused (the failed check and why on stderr).\n"
	"  --at doc          evaluate as of the document's own timestamp (test vectors\n"
	"                    only: an old document then verifies forever)\n"
	"  --at SECONDS      evaluate at this unix time instead of now\n"
	"                    Freshness: a bare document must be at most 300 s old; an\n"
	"                    event's document as old as its ~3 h leaf certificate.\n"
	"  --root PEM        also pin this development root (PEM or DER file)\n"
	"  --allow-dev       accept documents chaining to a --root (marked dev)\n"
	"  --expect-pcr N=HEX  PCR N must equal HEX (96 hex digits); repeatable\n"
	"  --trust NPUB      a maintainer key (npub or hex); repeatable. Requires an\n"
	"                    announcement: at least K of its release signatures (63794)\n"
	"                    must come from these keys, name the attested PCR0/1/2, and\n"
	"                    carry the announcement's r and t\n"
	"  --threshold K     how many trusted release signatures (default 1)\n"
	"  --json            print a JSON object (fields and verdict) on stdout\n"
	"show    prints the document's fields without verifying anything.\n";

struct input {
	char *text;
	size_t text_len;
	uint8_t *doc;
	size_t doc_len;
	struct event *ev; /* the event given, if any */
};

static void input_free(struct input *in)
{
	free(in->text);
	free(in->doc);
	event_free(in->ev);
	memset(in, 0, sizeof *in);
}

/* read_input: the file as an event (23793/13793) or a document; fills in->doc either way. */
static int read_input(const char *cmd, const char *path, struct input *in)
{
	memset(in, 0, sizeof *in);
	int rc = cli_read_input(&in->text, &in->text_len, path, ATTEST_INPUT_MAX);
	if (rc)
		return rc;
	size_t i = 0;
	while (i < in->text_len && (in->text[i] == ' ' || in->text[i] == '\n' || in->text[i] == '\r' || in->text[i] == '\t'))
		i++;
	if (i < in->text_len && in->text[i] == '{') {
		const char *why = NULL;
		int r = event_parse(&in->ev, &why, in->text, in->text_len);
		if (r != 0)
			return cli_error(CLI_REFUSED, cmd, "not an event: %s", why ? why : app_strerror(r));
		const char *content = in->ev->content;
		size_t clen = in->ev->content_len;
		struct event *inner = NULL;
		if (in->ev->kind == NEC_KIND_ANNOUNCEMENT) {
			const char *root = event_tag_value(in->ev, "tee_root");
			if (!root || event_parse(&inner, &why, root, strlen(root)) != 0)
				return cli_error(CLI_REFUSED, cmd, "announcement without a tee_root event");
			if (inner->kind != NEC_KIND_ATTESTATION) {
				event_free(inner);
				return cli_error(CLI_REFUSED, cmd, "tee_root is not an attestation event");
			}
			content = inner->content;
			clen = inner->content_len;
		} else if (in->ev->kind != NEC_KIND_ATTESTATION) {
			return cli_error(CLI_REFUSED, cmd, "kind %u is not an attestation (23793) or announcement (13793)",
					 (unsigned)in->ev->kind);
		}
		r = b64_decode_alloc(&in->doc, &in->doc_len, content, clen, ATTEST_DOC_MAX);
		event_free(inner);
		if (r != 0)
			return cli_error(CLI_REFUSED, cmd, "event content is not a base64 document: %s", app_strerror(r));
		return 0;
	}
	int r = attest_decode_text(&in->doc, &in->doc_len, (const uint8_t *)in->text, in->text_len);
	if (r != 0)
		return cli_error(CLI_REFUSED, cmd, "not an attestation document (raw CBOR, base64 or hex): %s",
				 app_strerror(r));
	return 0;
}

static void iso_time(char out[32], uint64_t t)
{
	time_t s = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&s, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, 32, "%llu", (unsigned long long)t);
}

static void jw_opt_hex(struct jw *w, int comma, const char *key, const uint8_t *p, size_t len)
{
	jw_key(w, comma, key);
	if (p)
		jw_hex(w, p, len);
	else
		jw_raw(w, "null", 4);
}

/* json_fields: the document's fields (after an opening brace and at least one member). */
static void json_fields(struct jw *w, const struct attest_doc *d)
{
	jw_key(w, 1, "module_id");
	jw_cstr(w, d->module_id);
	jw_key(w, 1, "timestamp");
	jw_u64(w, d->timestamp_ms);
	jw_key(w, 1, "digest");
	jw_cstr(w, "SHA384");
	jw_key(w, 1, "pcrs");
	jw_char(w, '{');
	int first = 1;
	for (int i = 0; i < ATTEST_PCR_COUNT; i++) {
		if (!((d->pcr_mask >> i) & 1u))
			continue;
		char k[4];
		snprintf(k, sizeof k, "%d", i);
		jw_key(w, !first, k);
		jw_hex(w, d->pcrs[i], ATTEST_PCR_LEN);
		first = 0;
	}
	jw_char(w, '}');
	jw_opt_hex(w, 1, "public_key", d->public_key, d->public_key_len);
	jw_opt_hex(w, 1, "user_data", d->user_data, d->user_data_len);
	jw_opt_hex(w, 1, "nonce", d->nonce, d->nonce_len);
	jw_key(w, 1, "root");
	jw_cstr(w, attest_doc_root_is_aws(d) ? "aws" : "other");
	jw_key(w, 1, "tagged");
	jw_raw(w, d->tagged ? "true" : "false", d->tagged ? 4 : 5);
	jw_key(w, 1, "debug");
	jw_raw(w, attest_doc_is_debug(d) ? "true" : "false", attest_doc_is_debug(d) ? 4 : 5);
	struct attest_chain_info ci;
	jw_key(w, 1, "chain");
	if (attest_doc_chain_info(d, &ci) != 0) {
		jw_raw(w, "null", 4);
		return;
	}
	jw_char(w, '[');
	for (size_t i = 0; i < ci.n; i++) {
		if (i)
			jw_char(w, ',');
		jw_char(w, '{');
		jw_key(w, 0, "subject");
		jw_cstr(w, ci.cert[i].subject);
		jw_key(w, 1, "not_before");
		jw_u64(w, ci.cert[i].not_before);
		jw_key(w, 1, "not_after");
		jw_u64(w, ci.cert[i].not_after);
		jw_char(w, '}');
	}
	jw_char(w, ']');
}

static int print_json(struct jw *w)
{
	char *out = NULL;
	size_t n = 0;
	if (jw_finish(w, &out, &n) != 0)
		return cli_error(CLI_USAGE, "attest", "out of memory");
	fwrite(out, 1, n, stdout);
	fputc('\n', stdout);
	free(out);
	return 0;
}

static void print_text(const struct attest_doc *d)
{
	char ts[32];
	iso_time(ts, d->timestamp_ms / 1000);
	printf("module_id: %s\ntimestamp: %llu (%s)\ndigest: SHA384\n", d->module_id,
	       (unsigned long long)d->timestamp_ms, ts);
	for (int i = 0; i < ATTEST_PCR_COUNT; i++) {
		if (!((d->pcr_mask >> i) & 1u))
			continue;
		char hx[2 * ATTEST_PCR_LEN + 1];
		hex_encode(hx, d->pcrs[i], ATTEST_PCR_LEN);
		printf("pcr%d: %s\n", i, hx);
	}
	const char *names[3] = {"public_key", "user_data", "nonce"};
	const uint8_t *p[3] = {d->public_key, d->user_data, d->nonce};
	size_t l[3] = {d->public_key_len, d->user_data_len, d->nonce_len};
	for (int i = 0; i < 3; i++) {
		if (!p[i]) {
			printf("%s: null\n", names[i]);
			continue;
		}
		char *hx = malloc(2 * l[i] + 1);
		if (!hx)
			continue;
		hex_encode(hx, p[i], l[i]);
		printf("%s: %s\n", names[i], hx);
		free(hx);
	}
	printf("root: %s\n", attest_doc_root_is_aws(d) ? "AWS Nitro Enclaves Root G1" : "not AWS (development?)");
	struct attest_chain_info ci;
	if (attest_doc_chain_info(d, &ci) == 0)
		for (size_t i = 0; i < ci.n; i++) {
			char a[32], b[32];
			iso_time(a, ci.cert[i].not_before);
			iso_time(b, ci.cert[i].not_after);
			printf("chain[%zu]: %s (%s .. %s)\n", i, ci.cert[i].subject, a, b);
		}
}

static int cmd_show(int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {0}};
	int json = 0, c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'j')
			json = 1;
		else if (c == 'h')
			return cli_print_usage(attest_usage);
		else
			return cli_error(CLI_USAGE, "attest show", "unknown option (see --help)");
	}
	if (optind != argc - 1)
		return cli_error(CLI_USAGE, "attest show", "expected one DOC (see --help)");
	struct input in;
	int rc = read_input("attest show", argv[optind], &in);
	if (rc) {
		input_free(&in);
		return rc;
	}
	struct attest_doc *d = NULL;
	struct attest_result res;
	if (attest_doc_parse(&d, &res, in.doc, in.doc_len) != 0) {
		rc = cli_error(CLI_REFUSED, "attest show", "malformed document (%s): %s", attest_check_name(res.check),
			       res.reason);
	} else if (json) {
		struct jw w;
		jw_init(&w, 0);
		jw_char(&w, '{');
		jw_key(&w, 0, "kind");
		if (in.ev)
			jw_u64(&w, in.ev->kind);
		else
			jw_raw(&w, "null", 4);
		json_fields(&w, d);
		jw_char(&w, '}');
		rc = print_json(&w);
	} else {
		print_text(d);
		rc = CLI_OK;
	}
	attest_doc_free(d);
	input_free(&in);
	return rc;
}

static int parse_pcr_arg(struct attest_pcr_policy *pol, const char *arg)
{
	const char *eq = strchr(arg, '=');
	unsigned long long n = 0;
	char idx[4];
	if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof idx)
		return -1;
	memcpy(idx, arg, (size_t)(eq - arg));
	idx[eq - arg] = 0;
	if (cli_parse_u64(&n, idx, ATTEST_PCR_COUNT - 1) != 0 || ((pol->mask >> n) & 1u))
		return -1;
	if (hex_decode(pol->pcrs[n], ATTEST_PCR_LEN, eq + 1, strlen(eq + 1), 0) != 0)
		return -1;
	pol->mask |= 1u << n;
	return 0;
}

static int parse_trust(uint8_t out[32], const char *s)
{
	size_t n = strlen(s);
	if (n == 64)
		return hex_decode(out, 32, s, n, 0) == 0 ? 0 : -1;
	return nip19_decode_bare(out, "npub", s, n) == 0 ? 0 : -1;
}

static int cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{"at", required_argument, NULL, 'a'},	     {"root", required_argument, NULL, 'r'},
		{"allow-dev", no_argument, NULL, 'd'},	     {"expect-pcr", required_argument, NULL, 'p'},
		{"trust", required_argument, NULL, 't'},     {"threshold", required_argument, NULL, 'k'},
		{"json", no_argument, NULL, 'j'},	     {"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *cmd = "attest verify";
	const char *roots[ROOTS_MAX];
	size_t nroots = 0, ntrust = 0;
	uint8_t trust[TRUST_MAX][32];
	unsigned long long threshold = 0, at = 0;
	struct attest_pcr_policy pol;
	struct attest_verify_opts o = {0};
	int json = 0, c, rc = CLI_USAGE;
	memset(&pol, 0, sizeof pol);
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			if (!strcmp(optarg, "doc")) {
				o.time_mode = ATTEST_TIME_AS_OF_DOCUMENT;
			} else if (cli_parse_u64(&at, optarg, 1ull << 40) == 0) {
				o.time_mode = ATTEST_TIME_AT;
				o.at = at;
			} else {
				return cli_error(CLI_USAGE, cmd, "--at takes \"doc\" or unix seconds");
			}
			break;
		case 'r':
			if (nroots == ROOTS_MAX)
				return cli_error(CLI_USAGE, cmd, "at most %d --root", ROOTS_MAX);
			roots[nroots++] = optarg;
			break;
		case 'd':
			o.allow_dev = 1;
			break;
		case 'p':
			if (parse_pcr_arg(&pol, optarg) != 0)
				return cli_error(CLI_USAGE, cmd, "--expect-pcr takes N=HEX (N 0..31 once, 96 hex digits)");
			break;
		case 't':
			if (ntrust == TRUST_MAX || parse_trust(trust[ntrust], optarg) != 0)
				return cli_error(CLI_USAGE, cmd, "--trust takes an npub or 64 hex digits (at most %d)", TRUST_MAX);
			ntrust++;
			break;
		case 'k':
			if (cli_parse_u64(&threshold, optarg, TRUST_MAX) != 0 || threshold == 0)
				return cli_error(CLI_USAGE, cmd, "--threshold takes 1..%d", TRUST_MAX);
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			return cli_print_usage(attest_usage);
		default:
			return cli_error(CLI_USAGE, cmd, "unknown option (see --help)");
		}
	}
	if (optind != argc - 1)
		return cli_error(CLI_USAGE, cmd, "expected one DOC or EVENT_JSON (see --help)");
	if (threshold && !ntrust)
		return cli_error(CLI_USAGE, cmd, "--threshold needs --trust");
	if (!threshold)
		threshold = 1;
	if (ntrust && threshold > ntrust)
		return cli_error(CLI_USAGE, cmd, "--threshold %llu exceeds the %zu --trust keys", threshold, ntrust);
	if (pol.mask)
		o.policy = &pol;

	struct attest_verifier *v = NULL;
	struct input in = {0};
	struct attest_doc *shown = NULL;
	struct event *rels[NEC_RELEASES_MAX];
	size_t nrels = 0, valid = 0;
	int r = attest_verifier_new(&v);
	if (r != 0) {
		rc = cli_error(CLI_USAGE, cmd, "cannot set up the verifier: %s", app_strerror(r));
		goto out;
	}
	for (size_t i = 0; i < nroots; i++)
		if ((r = attest_verifier_add_dev_root_file(v, roots[i])) != 0 && r != APP_EEXIST) {
			rc = cli_error(CLI_USAGE, cmd, "--root %s: %s", roots[i], app_strerror(r));
			goto out;
		}
	if ((rc = read_input(cmd, argv[optind], &in)) != 0)
		goto out;
	if (ntrust && (!in.ev || in.ev->kind != NEC_KIND_ANNOUNCEMENT)) {
		rc = cli_error(CLI_USAGE, cmd, "--trust needs an announcement (13793) carrying release tags");
		goto out;
	}

	struct attest_result ares;
	const char *why = NULL, *check = NULL, *reason = NULL;
	memset(&ares, 0, sizeof ares);
	if (!in.ev)
		r = attest_verify_bytes(v, &ares, NULL, in.doc, in.doc_len, &o);
	else if (in.ev->kind == NEC_KIND_ATTESTATION)
		r = nec_attestation_verify(v, &why, &ares, NULL, in.ev, &o);
	else
		r = nec_announcement_verify(v, &why, &ares, NULL, in.ev, &o);
	if (r != 0) {
		check = ares.err ? attest_check_name(ares.check) : "event";
		reason = ares.err ? ares.reason : why;
	}
	/* The fields for the report, verified or not (NULL when the document does not parse). */
	if (attest_doc_parse(&shown, NULL, in.doc, in.doc_len) != 0)
		shown = NULL;
	if (r == 0 && ntrust) {
		const char *repo = event_tag_value(in.ev, "r");
		struct nec_release_policy rp = {.trusted = (const uint8_t(*)[32])trust,
						.ntrusted = ntrust,
						.threshold = threshold,
						.repo = repo,
						.dev = ares.dev};
		r = nec_announcement_releases(rels, NEC_RELEASES_MAX, &nrels, in.ev);
		if (r != 0) {
			check = "release";
			reason = "release tags are not events";
		} else if (!repo) {
			r = APP_EREFUSED;
			check = "release";
			reason = "announcement without an r tag";
		} else if ((r = nec_release_policy_check(&rp, shown, (const struct event *const *)rels, nrels, &valid,
							 &why)) != 0) {
			check = "release";
			reason = why;
		}
	}
	if (json) {
		struct jw w;
		jw_init(&w, 0);
		jw_char(&w, '{');
		jw_key(&w, 0, "verdict");
		jw_cstr(&w, r == 0 ? "verified" : "refused");
		jw_key(&w, 1, "check");
		jw_cstr(&w, r == 0 ? "ok" : check ? check : "?");
		jw_key(&w, 1, "error");
		jw_cstr(&w, r == 0 ? "OK" : app_errname(r));
		jw_key(&w, 1, "reason");
		jw_cstr(&w, r == 0 ? "verified" : reason ? reason : app_strerror(r));
		jw_key(&w, 1, "kind");
		if (in.ev)
			jw_u64(&w, in.ev->kind);
		else
			jw_raw(&w, "null", 4);
		jw_key(&w, 1, "dev");
		jw_raw(&w, ares.dev ? "true" : "false", ares.dev ? 4 : 5);
		jw_key(&w, 1, "time");
		jw_u64(&w, ares.time);
		if (ntrust) {
			jw_key(&w, 1, "releases");
			jw_char(&w, '{');
			jw_key(&w, 0, "valid");
			jw_u64(&w, valid);
			jw_key(&w, 1, "threshold");
			jw_u64(&w, threshold);
			jw_char(&w, '}');
		}
		if (shown)
			json_fields(&w, shown);
		jw_char(&w, '}');
		if (print_json(&w) != 0) {
			rc = CLI_USAGE;
			goto out;
		}
	}
	if (r == 0) {
		if (!json) {
			char hx[2 * ATTEST_PCR_LEN + 1], ts[32];
			hex_encode(hx, shown ? shown->pcrs[0] : (const uint8_t[ATTEST_PCR_LEN]){0}, ATTEST_PCR_LEN);
			iso_time(ts, shown ? shown->timestamp_ms / 1000 : 0);
			printf("verified module_id=%s timestamp=%s root=%s pcr0=%s", shown ? shown->module_id : "?", ts,
			       ares.dev ? "dev" : "aws", hx);
			if (ntrust)
				printf(" releases=%zu/%llu", valid, threshold);
			printf("\n");
		}
		rc = CLI_OK;
	} else {
		rc = cli_error(CLI_REFUSED, cmd, "refused (%s): %s", check ? check : "?", reason ? reason : app_strerror(r));
	}
out:
	for (size_t i = 0; i < nrels; i++)
		event_free(rels[i]);
	attest_doc_free(shown);
	input_free(&in);
	attest_verifier_free(v);
	return rc;
}

int cmd_attest(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))
		return argc < 2 ? cli_error(CLI_USAGE, "attest", "expected verify or show (see --help)")
				: cli_print_usage(attest_usage);
	if (!strcmp(argv[1], "verify"))
		return cmd_verify(argc - 1, argv + 1);
	if (!strcmp(argv[1], "show"))
		return cmd_show(argc - 1, argv + 1);
	return cli_error(CLI_USAGE, "attest", "unknown subcommand '%s' (verify, show)", argv[1]);
}
