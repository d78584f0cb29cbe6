/*
 * appliance release sign | verify | publish | revoke: maintainer release
 * signatures (kind 63794, NEC-05) and revocations (kind 63798, PROTOCOL.md
 * "Keystore RPC (kind 29525)").
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/cli/cli.h"
#include "appliance/event.h"
#include "appliance/hex.h"
#include "appliance/keys.h"
#include "appliance/ksrpc.h"
#include "appliance/log.h"
#include "appliance/nec.h"
#include "appliance/nip19.h"
#include "relay-client/pool.h"

static const char release_usage[] =
	"usage: appliance release sign --repo R --version V --pcr0 HEX --pcr1 HEX --pcr2 HEX [--dev]\n"
	"                              [--sec-file FILE]\n"
	"       appliance release verify [EVENT_JSON|-]\n"
	"       appliance release publish --relay URL [--relay URL ...] [--ca-file FILE]\n"
	"                                 [--timeout SECONDS] [EVENT_JSON|-]\n"
	"       appliance release revoke --repo R --pcr0 HEX --pcr1 HEX --pcr2 HEX [--version V]\n"
	"                                [--reason TEXT] [--sec-file FILE]\n"
	"\n"
	"sign    prints a release signature (kind 63794): the maintainer key (from\n"
	"        --sec-file or APPLIANCE_SEC) vouches that the build of repository R at\n"
	"        version V (1..4 dot-separated numbers, optional leading v) has these\n"
	"        PCR0/1/2 (96 hex digits each). Tags: t (prod, or dev with --dev), r, v,\n"
	"        [\"x\",HEX,\"PCRn\"] for n = 0, 1, 2. Keystores release a disk key to a new\n"
	"        image when enough trusted maintainers signed its release.\n"
	"verify  checks one release signature (kind, id, signature, t/r/v/x tags) and\n"
	"        prints \"ok <id> t=... r=... v=... pubkey=<npub>\" (exit 0), or the reason\n"
	"        (exit 1).\n"
	"publish checks a release signature (63794) or a revocation (63798) and\n"
	"        publishes it to the relays, one line per relay: \"URL accepted|rejected\n"
	"        MESSAGE|timeout|failed REASON\". Exit 0 when a relay accepted it.\n"
	"revoke  prints a revocation (kind 63798) of the build with these PCR0/1/2 in\n"
	"        repository R, signed by the maintainer key. A keystore whose entry's\n"
	"        policy lists this maintainer (same repository) then refuses that build,\n"
	"        for upgrades and for its own entries (`appliance keystore revoke` hands it\n"
	"        to a keystore; `release publish` puts it on relays).\n";

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

struct pubstate {
	int done, accepted;
};

static void on_published(void *user, uint64_t publish_id, const uint8_t id[32], const struct relay_pub_result *res,
			 size_t n)
{
	struct pubstate *st = user;
	(void)publish_id;
	(void)id;
	for (size_t i = 0; i < n; i++) {
		const char *s = relay_pub_status_name(res[i].status);
		printf("%s %s%s%s\n", res[i].url, s, res[i].message[0] ? " " : "", res[i].message);
		st->accepted |= res[i].status == RELAY_PUB_ACCEPTED;
	}
	st->done = 1;
}

static int cmd_publish_release(int argc, char **argv)
{
	static const struct option opts[] = {
		{"relay", required_argument, NULL, 'r'}, {"ca-file", required_argument, NULL, 'c'},
		{"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *cmd = "release publish";
	const char *relays[RELAY_POOL_MAX_RELAYS], *ca = NULL;
	size_t nrelays = 0;
	unsigned long long timeout = 15;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			if (nrelays == RELAY_POOL_MAX_RELAYS)
				return cli_error(CLI_USAGE, cmd, "too many --relay");
			relays[nrelays++] = optarg;
			break;
		case 'c':
			ca = optarg;
			break;
		case 't':
			if (cli_parse_u64(&timeout, optarg, 3600) != 0 || timeout == 0)
				return cli_error(CLI_USAGE, cmd, "--timeout: 1..3600 seconds");
			break;
		case 'h':
			return cli_print_usage(release_usage);
		default:
			return cli_error(CLI_USAGE, cmd, "unknown option (see --help)");
		}
	}
	if (!nrelays || optind < argc - 1)
		return cli_error(CLI_USAGE, cmd, "expected --relay URL and one EVENT_JSON (see --help)");
	char *buf = NULL;
	size_t len = 0;
	int rc = cli_read_input(&buf, &len, optind < argc ? argv[optind] : NULL, EVENT_MAX_JSON);
	if (rc)
		return rc;
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
		len--;
	struct event *ev = NULL;
	struct relay_pool *pool = NULL;
	const char *why = NULL;
	struct nec_release rel;
	struct ksrpc_revocation rv;
	int r = event_parse(&ev, &why, buf, len);
	free(buf);
	if (r) {
		rc = cli_error(CLI_REFUSED, cmd, "invalid: not an event: %s", why ? why : app_strerror(r));
		goto out;
	}
	r = ev->kind == KSRPC_KIND_REVOCATION ? ksrpc_revocation_verify(&rv, &why, ev) : nec_release_verify(&rel, &why, ev);
	if (r) {
		rc = cli_error(CLI_REFUSED, cmd, "invalid: %s", why ? why : app_strerror(r));
		goto out;
	}
	log_set_level(LOG_ERROR);
	struct relay_pool_opts po;
	relay_pool_opts_default(&po);
	po.ca_file = ca;
	po.publish_deadline_ms = (unsigned)(timeout * 1000);
	if ((r = relay_pool_new(&pool, &po)) != 0) {
		rc = cli_error(CLI_USAGE, cmd, "cannot start the relay pool: %s", app_strerror(r));
		goto out;
	}
	for (size_t i = 0; i < nrelays; i++)
		if ((r = relay_pool_add_relay(pool, NULL, relays[i], NULL)) != 0 && r != APP_EEXIST) {
			rc = cli_error(CLI_USAGE, cmd, "bad relay URL: %s", relays[i]);
			goto out;
		}
	struct pubstate st = {0, 0};
	if ((r = relay_publish(pool, NULL, ev, NULL, 0, on_published, &st)) != 0) {
		rc = cli_error(CLI_USAGE, cmd, "publish: %s", app_strerror(r));
		goto out;
	}
	time_t until = time(NULL) + (time_t)timeout + 2;
	while (!st.done && time(NULL) < until)
		if (relay_pool_service(pool, 100) != 0)
			break;
	rc = st.accepted ? CLI_OK : st.done ? CLI_REFUSED : CLI_USAGE;
	if (!st.done)
		fprintf(stderr, "appliance %s: no relay answered in time\n", cmd);
out:
	relay_pool_free(pool);
	event_free(ev);
	return rc;
}

static int cmd_revoke(int argc, char **argv)
{
	static const struct option opts[] = {
		{"repo", required_argument, NULL, 'r'},	   {"version", required_argument, NULL, 'v'},
		{"pcr0", required_argument, NULL, '0'},	   {"pcr1", required_argument, NULL, '1'},
		{"pcr2", required_argument, NULL, '2'},	   {"reason", required_argument, NULL, 'R'},
		{"sec-file", required_argument, NULL, 's'}, {"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *cmd = "release revoke";
	struct nec_release rel;
	const char *sec = NULL, *reason = NULL;
	unsigned have = 0;
	int c, cmp;
	memset(&rel, 0, sizeof rel);
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			if (strlen(optarg) > NEC_REPO_MAX)
				return cli_error(CLI_USAGE, cmd, "--repo too long");
			snprintf(rel.repo, sizeof rel.repo, "%s", optarg);
			break;
		case 'v':
			if (strlen(optarg) > NEC_VERSION_MAX || nec_version_cmp(optarg, optarg, &cmp) != 0)
				return cli_error(CLI_USAGE, cmd, "--version must be like 1.2.3");
			snprintf(rel.version, sizeof rel.version, "%s", optarg);
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
		case 'R':
			reason = optarg;
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
	if (optind != argc || !rel.repo[0] || have != 7)
		return cli_error(CLI_USAGE, cmd, "--repo, --pcr0, --pcr1 and --pcr2 are required");
	if (reason && strlen(reason) > KSRPC_REVOKE_REASON_MAX)
		return cli_error(CLI_USAGE, cmd, "--reason: at most %d bytes", KSRPC_REVOKE_REASON_MAX);
	struct keypair *kp = NULL;
	int rc = cli_load_secret(&kp, sec);
	if (rc)
		return rc;
	struct event *ev = NULL;
	char *json = NULL;
	size_t jl = 0;
	int r = ksrpc_revocation_create(&ev, kp, &rel, reason, (uint64_t)time(NULL));
	if (r == 0)
		r = event_to_json(&json, &jl, ev);
	if (r) {
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

int cmd_release(int argc, char **argv)
{
	if (argc < 2)
		return cli_error(CLI_USAGE, "release", "expected sign, verify, publish or revoke (see --help)");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))
		return cli_print_usage(release_usage);
	if (!strcmp(argv[1], "sign"))
		return cmd_sign(argc - 1, argv + 1);
	if (!strcmp(argv[1], "verify"))
		return cmd_verify(argc - 1, argv + 1);
	if (!strcmp(argv[1], "publish"))
		return cmd_publish_release(argc - 1, argv + 1);
	if (!strcmp(argv[1], "revoke"))
		return cmd_revoke(argc - 1, argv + 1);
	return cli_error(CLI_USAGE, "release", "unknown subcommand '%s' (sign, verify, publish, revoke)", argv[1]);
}
