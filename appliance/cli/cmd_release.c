/* appliance release sign | verify: maintainer release signatures (kind 63794, NEC-05) */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/cli/cli.h"
#include "appliance/event.h"
#include "appliance/hex.h"
#include "appliance/keys.h"
#include "appliance/nec.h"
#include "appliance/nip19.h"

static const char release_usage[] =
	"usage: appliance release sign --repo R --version V --pcr0 HEX --pcr1 HEX --pcr2 HEX [--dev]\n"
	"                              [--sec-file FILE]\n"
	"       appliance release verify [EVENT_JSON|-]\n"
	"\n"
	"sign    prints a release signature (kind 63794): the maintainer key (from\n"
	"        --sec-file or APPLIANCE_SEC) vouches that the build of repository R at\n"
	"        version V (1..4 dot-separated numbers, optional leading v) has these\n"
	"        PCR0/1/2 (96 hex digits each). Tags: t (prod, or dev with --dev), r, v,\n"
	"        [\"x\",HEX,\"PCRn\"] for n = 0, 1, 2. Keystores release a disk key to a new\n"
	"        image when enough trusted maintainers signed its release.\n"
	"verify  checks one release signature (kind, id, signature, t/r/v/x tags) and\n"
	"        prints \"ok <id> t=... r=... v=... pubkey=<npub>\" (exit 0), or the reason\n"
	"        (exit 1).\n";

static int cmd_sign(int argc, char **argv)
{
	static const struct option opts[] = {
		{"repo", required_argument, NULL, 'r'},	   {"version", required_argument, NULL, 'v'},
		{"pcr0", required_argument, NULL, '0'},	   {"pcr1", required_argument, NULL, '1'},
		{"pcr2", required_argument, NULL, '2'},	   {"dev", no_argument, NULL, 'd'},
		{"sec-file", required_argument, NULL, 's'}, {"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *cmd = "release sign";
	struct nec_release rel;
	const char *repo = NULL, *version = NULL, *sec = NULL;
	unsigned have = 0;
	int c;
	memset(&rel, 0, sizeof rel);
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			repo = optarg;
			break;
		case 'v':
			version = optarg;
			break;
		case '0':
		case '1':
		case '2': {
			int k = c - '0';
			if (hex_decode(rel.pcr[k], sizeof rel.pcr[k], optarg, strlen(optarg), 0) != 0)
				return cli_error(CLI_USAGE, cmd, "--pcr%d takes 96 hex digits", k);
			have |= 1u << k;
			break;
		}
		case 'd':
			rel.dev = 1;
			break;
		case 's':
			sec = optarg;
			break;
		case 'h':
			return cli_print_usage(release_usage);
		default:
			return cli_error(CLI_USAGE, cmd, "unknown option (see --help)");
		}
	}
	if (optind != argc || !repo || !version || have != 7)
		return cli_error(CLI_USAGE, cmd, "--repo, --version, --pcr0, --pcr1 and --pcr2 are required");
	if (strlen(repo) > NEC_REPO_MAX || strlen(version) > NEC_VERSION_MAX)
		return cli_error(CLI_USAGE, cmd, "--repo or --version too long");
	int cmp;
	if (nec_version_cmp(version, version, &cmp) != 0)
		return cli_error(CLI_USAGE, cmd, "--version must be like 1.2.3 (1..4 numbers, optional leading v)");
	memcpy(rel.repo, repo, strlen(repo) + 1);
	memcpy(rel.version, version, strlen(version) + 1);
	struct keypair *kp = NULL;
	int rc = cli_load_secret(&kp, sec);
	if (rc)
		return rc;
	struct event *ev = NULL;
	char *json = NULL;
	size_t jl = 0;
	int r = nec_release_create(&ev, kp, &rel, (uint64_t)time(NULL));
	if (r == 0)
		r = event_to_json(&json, &jl, ev);
	if (r != 0) {
		rc = cli_error(r == APP_EINVAL ? CLI_USAGE : CLI_REFUSED, cmd, "%s", app_strerror(r));
	} else {
		fwrite(json, 1, jl, stdout);
		fputc('\n', stdout);
		rc = CLI_OK;
	}
	free(json);
	event_free(ev);
	keys_free(kp);
	return rc;
}

static int cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
	const char *cmd = "release verify";
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'h')
			return cli_print_usage(release_usage);
		return cli_error(CLI_USAGE, cmd, "unknown option (see --help)");
	}
	if (optind < argc - 1)
		return cli_error(CLI_USAGE, cmd, "expected one EVENT_JSON (see --help)");
	char *buf = NULL;
	size_t len = 0;
	int rc = cli_read_input(&buf, &len, optind < argc ? argv[optind] : NULL, EVENT_MAX_JSON);
	if (rc)
		return rc;
	struct event *ev = NULL;
	const char *why = NULL;
	struct nec_release rel;
	int r = event_parse(&ev, &why, buf, len);
	if (r != 0) {
		rc = cli_error(CLI_REFUSED, cmd, "invalid: not an event: %s", why ? why : app_strerror(r));
	} else if ((r = nec_release_verify(&rel, &why, ev)) != 0) {
		rc = cli_error(CLI_REFUSED, cmd, "invalid: %s", why ? why : app_strerror(r));
	} else {
		char id[65], *npub = NULL;
		hex_encode(id, ev->id, 32);
		if (nip19_encode_bare(&npub, "npub", rel.pubkey) != 0) {
			rc = cli_error(CLI_USAGE, cmd, "out of memory");
		} else {
			printf("ok %s t=%s r=%s v=%s pubkey=%s\n", id, rel.dev ? "dev" : "prod", rel.repo, rel.version, npub);
			for (int i = 0; i < 3; i++) {
				char hx[2 * ATTEST_PCR_LEN + 1];
				hex_encode(hx, rel.pcr[i], ATTEST_PCR_LEN);
				printf("pcr%d=%s\n", i, hx);
			}
			rc = CLI_OK;
		}
		free(npub);
	}
	event_free(ev);
	free(buf);
	return rc;
}

int cmd_release(int argc, char **argv)
{
	if (argc < 2)
		return cli_error(CLI_USAGE, "release", "expected sign or verify (see --help)");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))
		return cli_print_usage(release_usage);
	if (!strcmp(argv[1], "sign"))
		return cmd_sign(argc - 1, argv + 1);
	if (!strcmp(argv[1], "verify"))
		return cmd_verify(argc - 1, argv + 1);
	return cli_error(CLI_USAGE, "release", "unknown subcommand '%s' (sign, verify)", argv[1]);
}
