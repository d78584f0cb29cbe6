/* appliance nip19 encode | decode */
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/cli/cli.h"
#include "appliance/hex.h"
#include "appliance/json.h"
#include "appliance/keys.h"
#include "appliance/nip19.h"

static const char nip19_usage[] =
	"usage: appliance nip19 decode STRING\n"
	"       appliance nip19 encode npub|note HEX\n"
	"       appliance nip19 encode nsec [--sec-file FILE]      (secret from the file or APPLIANCE_SEC)\n"
	"       appliance nip19 encode nprofile HEX [--relay URL]...\n"
	"       appliance nip19 encode nevent HEX [--relay URL]... [--author HEX] [--kind N]\n"
	"       appliance nip19 encode naddr --identifier D --author HEX --kind N [--relay URL]...\n"
	"\n"
	"decode prints JSON: {\"type\":…, \"hex\":…} for npub/nsec/note; nprofile gives pubkey and\n"
	"relays; nevent id, relays, author, kind; naddr identifier, author, kind, relays.\n";

static int decode(const char *s)
{
	struct nip19 *v;
	int r = nip19_decode(&v, s, strlen(s));
	if (r)
		return cli_error(CLI_REFUSED, "nip19 decode", "%s", r == APP_ECHECKSUM ? "bad checksum"
								 : r == APP_ETOOBIG  ? "string too long"
										     : "malformed NIP-19 string");
	struct jw w;
	jw_init(&w, 0);
	jw_raw(&w, "{\"type\":", 8);
	jw_cstr(&w, nip19_type_name(v->type));
	switch (v->type) {
	case NIP19_NPUB:
	case NIP19_NSEC:
	case NIP19_NOTE:
		jw_key(&w, 1, "hex");
		jw_hex(&w, v->key, 32);
		break;
	case NIP19_NPROFILE:
	case NIP19_NEVENT:
		jw_key(&w, 1, v->type == NIP19_NPROFILE ? "pubkey" : "id");
		jw_hex(&w, v->key, 32);
		break;
	case NIP19_NADDR:
		jw_key(&w, 1, "identifier");
		jw_str(&w, v->identifier, v->identifier_len);
		break;
	}
	if (v->type >= NIP19_NPROFILE) {
		jw_key(&w, 1, "relays");
		jw_char(&w, '[');
		for (size_t i = 0; i < v->nrelays; i++) {
			if (i)
				jw_char(&w, ',');
			jw_cstr(&w, v->relays[i]);
		}
		jw_char(&w, ']');
	}
	if (v->has_author) {
		jw_key(&w, 1, "author");
		jw_hex(&w, v->author, 32);
	}
	if (v->has_kind) {
		jw_key(&w, 1, "kind");
		jw_u64(&w, v->kind);
	}
	jw_char(&w, '}');
	char *out;
	size_t n;
	r = jw_finish(&w, &out, &n);
	nip19_free(v);
	if (r)
		return cli_error(CLI_USAGE, "nip19", "out of memory");
	printf("%s\n", out);
	sodium_memzero(out, n);
	free(out);
	return CLI_OK;
}

int cmd_nip19(int argc, char **argv)
{
	static const struct option opts[] = {{"relay", required_argument, 0, 'r'},
					     {"author", required_argument, 0, 'a'},
					     {"kind", required_argument, 0, 'k'},
					     {"identifier", required_argument, 0, 'd'},
					     {"sec-file", required_argument, 0, 's'},
					     {"help", no_argument, 0, 'h'},
					     {0}};
	struct nip19 v;
	memset(&v, 0, sizeof v);
	const char *sec_file = NULL, *author = NULL;
	unsigned long long kind;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			if (v.nrelays == NIP19_MAX_RELAYS)
				return cli_error(CLI_USAGE, "nip19", "too many --relay");
			v.relays[v.nrelays++] = optarg;
			break;
		case 'a': author = optarg; break;
		case 'k':
			if (cli_parse_u64(&kind, optarg, UINT32_MAX))
				return cli_error(CLI_USAGE, "nip19", "--kind: expected an integer");
			v.kind = (uint32_t)kind;
			v.has_kind = 1;
			break;
		case 'd':
			v.identifier = optarg;
			v.identifier_len = strlen(optarg);
			break;
		case 's': sec_file = optarg; break;
		case 'h': return cli_print_usage(nip19_usage);
		default: return CLI_USAGE;
		}
	}
	if (optind < argc && !strcmp(argv[optind], "decode") && optind + 2 == argc)
		return decode(argv[optind + 1]);
	if (optind + 2 > argc || strcmp(argv[optind], "encode") != 0) {
		fputs(nip19_usage, stderr);
		return CLI_USAGE;
	}
	const char *type = argv[optind + 1];
	const char *hexarg = optind + 2 < argc ? argv[optind + 2] : NULL;
	if (optind + 3 < argc)
		return cli_error(CLI_USAGE, "nip19", "unexpected argument '%s'", argv[optind + 3]);
	int found = 0;
	for (int t = NIP19_NPUB; t <= NIP19_NADDR; t++)
		if (!strcmp(type, nip19_type_name((enum nip19_type)t))) {
			v.type = (enum nip19_type)t;
			found = 1;
		}
	if (!found)
		return cli_error(CLI_USAGE, "nip19", "unknown type '%s'", type);
	if (v.type == NIP19_NSEC) {
		if (hexarg)
			return cli_error(CLI_USAGE, "nip19", "secrets are not taken from argv: use --sec-file or APPLIANCE_SEC");
		struct keypair *kp;
		int rc = cli_load_secret(&kp, sec_file);
		if (rc)
			return rc;
		keys_secret(kp, v.key);
		keys_free(kp);
	} else if (v.type == NIP19_NADDR) {
		if (hexarg || !author || !v.has_kind || !v.identifier)
			return cli_error(CLI_USAGE, "nip19", "naddr needs --identifier, --author and --kind");
	} else if (!hexarg || hex_decode(v.key, 32, hexarg, strlen(hexarg), 0) != 0) {
		return cli_error(CLI_USAGE, "nip19", "expected 64 hex characters after the type");
	}
	if (author) {
		if (hex_decode(v.author, 32, author, strlen(author), 0) != 0)
			return cli_error(CLI_USAGE, "nip19", "--author: expected 64 hex characters");
		v.has_author = 1;
	}
	if ((v.type <= NIP19_NOTE || v.type == NIP19_NPROFILE) && (v.has_author || v.has_kind || v.identifier))
		return cli_error(CLI_USAGE, "nip19", "--author/--kind/--identifier do not apply to %s", type);
	char *out;
	int r = nip19_encode(&out, &v);
	sodium_memzero(v.key, sizeof v.key);
	if (r)
		return cli_error(CLI_REFUSED, "nip19 encode", "%s (relay URLs and identifiers are at most 255 bytes)",
				 app_strerror(r));
	printf("%s\n", out);
	sodium_memzero(out, strlen(out));
	free(out);
	return CLI_OK;
}
