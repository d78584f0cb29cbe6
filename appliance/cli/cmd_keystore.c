/*
 * appliance keystore status|has|get|set|revoke|discover: talk to an
 * appliance-keystore over Nostr (kind 29525; enclave/runtime/ksclient.h,
 * PROTOCOL.md "Keystore RPC (kind 29525)").
 */
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/attest.h"
#include "appliance/cli/cli.h"
#include "appliance/event.h"
#include "appliance/hash.h"
#include "appliance/hex.h"
#include "appliance/keys.h"
#include "appliance/ksrpc.h"
#include "appliance/log.h"
#include "appliance/nec.h"
#include "appliance/nip19.h"
#include "appliance/nsm.h"
#include "enclave/runtime/journal.h"
#include "enclave/runtime/ksclient.h"
#include "enclave/runtime/ksset.h"
#include "enclave/runtime/sjournal.h"

#define EVENT_FILE_MAX (64 * 1024)

static const char keystore_usage[] =
	"usage: appliance keystore status   --relay URL --keystore NPUB [options]\n"
	"       appliance keystore has      --relay URL --keystore NPUB (--pcr0 HEX --pcr1 HEX --pcr2 HEX\n"
	"                                   [--pcr4 HEX] | --nsm SPEC) [options]\n"
	"       appliance keystore get      --relay URL --keystore NPUB --nsm SPEC [--release-sig FILE]...\n"
	"                                   [--show-data] [options]\n"
	"       appliance keystore set      --relay URL --keystore NPUB --nsm SPEC --data-file FILE\n"
	"                                   [--epoch N] [--repo R --version V --maintainer HEX...\n"
	"                                   [--threshold K]] [--type prod|dev] [--bind-host] [options]\n"
	"       appliance keystore revoke   --relay URL --keystore NPUB --revocation FILE... [options]\n"
	"       appliance keystore discover --relay URL --image PCR0HEX... [--repo R] [--allow-dev\n"
	"                                   --dev-root PEM] [options]\n"
	"       appliance keystore journal  --relay URL --keystore NPUB... --nsm SPEC --store DIR\n"
	"                                   [--release-sig FILE]... [options]\n"
	"\n"
	"status    the keystore's counters (no attestation needed).\n"
	"has       whether the keystore holds an entry for these PCRs (by value, or by an\n"
	"          attestation made with --nsm). Exit 0 found, 1 not found.\n"
	"get, set  what an enclave does at start and at each checkpoint, with a fresh session\n"
	"          key and an attestation from the NSM at --nsm (/dev/nsm inside a Nitro\n"
	"          enclave; unix:PATH for the development emulator). get prints\n"
	"          \"found epoch=N bytes=M match=exact|release\" (the data itself only with\n"
	"          --show-data), or \"not found\" (exit 1), or the refusal (exit 1).\n"
	"          set's policy: the maintainers (npub or hex) of whom --threshold must sign a\n"
	"          newer build's release (63794) for it to get this entry; --type: the\n"
	"          release type they must sign (default: prod for an AWS attestation, dev for\n"
	"          a development one); --bind-host: only this host (PCR4) may read it.\n"
	"revoke    hands maintainer-signed revocations (kind 63798, `appliance release\n"
	"          revoke`) to the keystore.\n"
	"discover  lists keystores announced (kind 13793, name keystore) whose verified\n"
	"          attestation has one of the --image PCR0 values: \"PUBKEY_HEX NPUB expires=T\".\n"
	"journal   opens a sealed journal (enclave/runtime/sjournal.h) as the enclave would, read-only:\n"
	"          the key and checkpoint from the keystores (with an attestation of the\n"
	"          enclave's PCRs: only its NSM, or the dev emulator, can make one), every record\n"
	"          of the store directory DIR checked (sequence, chain, tag, checkpoint), and\n"
	"          prints the records; or the reason it refuses them (exit 1). For development\n"
	"          and tests: never writes anything, never makes a key.\n"
	"\n"
	"options:\n"
	"  --relay URL        relay (repeatable)\n"
	"  --keystore NPUB    the keystore's service key (npub or 64 hex digits)\n"
	"  --ca-file FILE     extra trusted CA (PEM) for wss://\n"
	"  --timeout SECONDS  wait for the answer (default 15)\n"
	"  --json             print the keystore's result JSON as is\n"
	"  --save-attestation FILE  write the attestation document sent (get, set, has)\n"
	"  --attestation FILE send this attestation document instead of a fresh one\n"
	"  --session-key-file FILE  use this secret key as the session key instead of a\n"
	"                     fresh one (with --attestation: replay a saved request's\n"
	"                     attestation; for tests and debugging, never in an enclave)\n"
	"Exit status: 0 ok/found, 1 refused or not found, 2 usage error or no answer.\n";

struct kopts {
	const char *relays[KSCLIENT_RELAYS_MAX];
	size_t nrelays;
	const char *keystore, *ca_file, *nsm, *data_file, *repo, *version, *dev_root, *filter_repo;
	const char *save_att, *att_file, *session_file, *store;
	const char *keystores[KSSET_MAX];
	size_t nkeystores;
	const char *sigs[KSRPC_SIGS_MAX];
	size_t nsigs;
	const char *revs[KSRPC_REVOCATIONS_MAX];
	size_t nrevs;
	const char *maint[KSRPC_MAINTAINERS_MAX];
	size_t nmaint;
	const char *images[16];
	size_t nimages;
	uint8_t pcr[5][48];
	unsigned have_pcr;
	unsigned long long epoch, threshold, timeout_s;
	int json, show_data, dev /* 0 default, 1 prod, 2 dev */, bind_host, allow_dev;
};

enum {
	O_RELAY = 256, O_KEYSTORE, O_CA, O_TIMEOUT, O_JSON, O_NSM, O_PCR0, O_PCR1, O_PCR2, O_PCR4, O_SIG, O_SHOW,
	O_DATA, O_EPOCH, O_REPO, O_VERSION, O_MAINT, O_THRESHOLD, O_DEV, O_BIND, O_REV, O_IMAGE, O_ALLOW_DEV, O_DEV_ROOT,
	O_SAVE_ATT, O_ATT, O_SESSION, O_STORE,
};

static int parse_opts(struct kopts *k, const char *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{"relay", required_argument, 0, O_RELAY},	  {"keystore", required_argument, 0, O_KEYSTORE},
		{"ca-file", required_argument, 0, O_CA},	  {"timeout", required_argument, 0, O_TIMEOUT},
		{"json", no_argument, 0, O_JSON},		  {"nsm", required_argument, 0, O_NSM},
		{"pcr0", required_argument, 0, O_PCR0},		  {"pcr1", required_argument, 0, O_PCR1},
		{"pcr2", required_argument, 0, O_PCR2},		  {"pcr4", required_argument, 0, O_PCR4},
		{"release-sig", required_argument, 0, O_SIG},	  {"show-data", no_argument, 0, O_SHOW},
		{"data-file", required_argument, 0, O_DATA},	  {"epoch", required_argument, 0, O_EPOCH},
		{"repo", required_argument, 0, O_REPO},		  {"version", required_argument, 0, O_VERSION},
		{"maintainer", required_argument, 0, O_MAINT},	  {"threshold", required_argument, 0, O_THRESHOLD},
		{"type", required_argument, 0, O_DEV},			  {"bind-host", no_argument, 0, O_BIND},
		{"revocation", required_argument, 0, O_REV},	  {"image", required_argument, 0, O_IMAGE},
		{"allow-dev", no_argument, 0, O_ALLOW_DEV},	  {"dev-root", required_argument, 0, O_DEV_ROOT},
		{"save-attestation", required_argument, 0, O_SAVE_ATT},
		{"attestation", required_argument, 0, O_ATT},
		{"session-key-file", required_argument, 0, O_SESSION},
		{"store", required_argument, 0, O_STORE},
		{"help", no_argument, 0, 'h'},			  {0, 0, 0, 0},
	};
	int c;
	k->timeout_s = 15;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_RELAY:
			if (k->nrelays == KSCLIENT_RELAYS_MAX)
				return cli_error(CLI_USAGE, cmd, "at most %d --relay", KSCLIENT_RELAYS_MAX);
			k->relays[k->nrelays++] = optarg;
			break;
		case O_KEYSTORE:
			if (k->nkeystores == KSSET_MAX)
				return cli_error(CLI_USAGE, cmd, "at most %d --keystore", KSSET_MAX);
			k->keystore = optarg;
			k->keystores[k->nkeystores++] = optarg;
			break;
		case O_STORE: k->store = optarg; break;
		case O_CA: k->ca_file = optarg; break;
		case O_TIMEOUT:
			if (cli_parse_u64(&k->timeout_s, optarg, 3600) != 0 || k->timeout_s == 0)
				return cli_error(CLI_USAGE, cmd, "--timeout: 1..3600 seconds");
			break;
		case O_JSON: k->json = 1; break;
		case O_NSM: k->nsm = optarg; break;
		case O_PCR0:
		case O_PCR1:
		case O_PCR2:
		case O_PCR4: {
			int i = c == O_PCR4 ? 4 : c - O_PCR0;
			if (hex_decode(k->pcr[i], 48, optarg, strlen(optarg), 0) != 0)
				return cli_error(CLI_USAGE, cmd, "--pcr%d takes 96 hex digits", i);
			k->have_pcr |= 1u << i;
			break;
		}
		case O_SIG:
			if (k->nsigs == KSRPC_SIGS_MAX)
				return cli_error(CLI_USAGE, cmd, "at most %d --release-sig", KSRPC_SIGS_MAX);
			k->sigs[k->nsigs++] = optarg;
			break;
		case O_SHOW: k->show_data = 1; break;
		case O_DATA: k->data_file = optarg; break;
		case O_EPOCH:
			if (cli_parse_u64(&k->epoch, optarg, 1ull << 53) != 0)
				return cli_error(CLI_USAGE, cmd, "--epoch: 0..2^53");
			break;
		case O_REPO: k->repo = optarg; break;
		case O_VERSION: k->version = optarg; break;
		case O_MAINT:
			if (k->nmaint == KSRPC_MAINTAINERS_MAX)
				return cli_error(CLI_USAGE, cmd, "at most %d --maintainer", KSRPC_MAINTAINERS_MAX);
			k->maint[k->nmaint++] = optarg;
			break;
		case O_THRESHOLD:
			if (cli_parse_u64(&k->threshold, optarg, KSRPC_MAINTAINERS_MAX) != 0 || k->threshold == 0)
				return cli_error(CLI_USAGE, cmd, "--threshold: 1..16");
			break;
		case O_DEV:
			if (strcmp(optarg, "prod") && strcmp(optarg, "dev"))
				return cli_error(CLI_USAGE, cmd, "--type: prod or dev");
			k->dev = strcmp(optarg, "dev") == 0 ? 2 : 1;
			break;
		case O_BIND: k->bind_host = 1; break;
		case O_REV:
			if (k->nrevs == KSRPC_REVOCATIONS_MAX)
				return cli_error(CLI_USAGE, cmd, "at most %d --revocation", KSRPC_REVOCATIONS_MAX);
			k->revs[k->nrevs++] = optarg;
			break;
		case O_IMAGE:
			if (k->nimages == 16)
				return cli_error(CLI_USAGE, cmd, "at most 16 --image");
			k->images[k->nimages++] = optarg;
			break;
		case O_ALLOW_DEV: k->allow_dev = 1; break;
		case O_DEV_ROOT: k->dev_root = optarg; break;
		case O_SAVE_ATT: k->save_att = optarg; break;
		case O_ATT: k->att_file = optarg; break;
		case O_SESSION: k->session_file = optarg; break;
		case 'h': return -1;
		default: return cli_error(CLI_USAGE, cmd, "unknown option (see --help)");
		}
	}
	if (optind != argc)
		return cli_error(CLI_USAGE, cmd, "unexpected argument '%s'", argv[optind]);
	if (!k->nrelays)
		return cli_error(CLI_USAGE, cmd, "at least one --relay URL is needed");
	return 0;
}

/* keystore_key: --keystore as npub or hex. */
static int keystore_key(uint8_t out[32], const char *cmd, const char *text)
{
	if (!text)
		return cli_error(CLI_USAGE, cmd, "--keystore NPUB is required");
	size_t l = strlen(text);
	if (hex_decode(out, 32, text, l, 1) == 0 || nip19_decode_bare(out, "npub", text, l) == 0)
		return 0;
	return cli_error(CLI_USAGE, cmd, "--keystore: an npub or 64 lowercase hex digits");
}

static int read_event(struct event **out, const char *cmd, const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	const char *why = NULL;
	int rc = cli_read_input(&buf, &len, path, EVENT_FILE_MAX);
	if (rc)
		return rc;
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
		len--;
	int r = event_parse(out, &why, buf, len);
	free(buf);
	if (r)
		return cli_error(CLI_REFUSED, cmd, "%s: not an event: %s", path, why ? why : app_strerror(r));
	return 0;
}

static int print_reply(const struct kopts *k, const char *cmd, const struct ksrpc_reply *rep)
{
	if (rep->err == APP_ENOTFOUND) {
		printf("not found\n");
		return CLI_REFUSED;
	}
	if (rep->err) {
		if (k->json)
			printf("{\"error\":\"%s\",\"code\":\"%s\"}\n", rep->error, app_errname(rep->err));
		return cli_error(CLI_REFUSED, cmd, "refused (%s): %s", app_errname(rep->err), rep->error);
	}
	return CLI_OK;
}

static int run(struct kopts *k, const char *cmd, enum ksrpc_method m)
{
	struct ksclient *c = NULL;
	struct nsm *nsm = NULL;
	struct ksrpc_request *req = NULL;
	struct ksrpc_reply *rep = NULL;
	struct keypair *session = NULL;
	uint8_t ks[32];
	int rc = CLI_USAGE, r;
	if (m != 0 && (rc = keystore_key(ks, cmd, k->keystore)) != 0)
		return rc;
	rc = CLI_USAGE;
	log_set_level(LOG_ERROR);
	if (k->nsm && (r = nsm_open_spec(&nsm, k->nsm)) != 0) {
		rc = cli_error(CLI_USAGE, cmd, "--nsm %s: %s", k->nsm, app_strerror(r));
		goto out;
	}
	if (k->session_file && (r = keys_load(&session, k->session_file)) != 0) {
		rc = cli_error(CLI_USAGE, cmd, "--session-key-file: %s", app_strerror(r));
		goto out;
	}
	struct ksclient_opts o = {k->relays, k->nrelays, k->ca_file, nsm, (unsigned)(k->timeout_s * 1000), session};
	if ((r = ksclient_new(&c, &o)) != 0) {
		rc = cli_error(CLI_USAGE, cmd, "cannot start: %s", app_strerror(r));
		goto out;
	}
	if ((r = ksrpc_request_new(&req)) != 0)
		goto out;
	req->method = m;
	if (k->att_file) {
		char *text = NULL;
		size_t tl = 0;
		if ((rc = cli_read_input(&text, &tl, k->att_file, 4 * ATTEST_DOC_MAX)) != 0)
			goto out;
		r = attest_decode_text(&req->attestation, &req->attestation_len, (const uint8_t *)text, tl);
		free(text);
		if (r) {
			rc = cli_error(CLI_USAGE, cmd, "--attestation: not an attestation document (%s)", app_strerror(r));
			goto out;
		}
	}
	switch (m) {
	case KSRPC_HAS:
		if ((k->have_pcr & 7u) == 7u) {
			memcpy(req->pcrs, k->pcr, sizeof req->pcrs);
			req->has_pcrs = 1;
			if (k->have_pcr & 16u) {
				memcpy(req->pcr4, k->pcr[4], 48);
				req->has_pcr4 = 1;
			}
		} else if ((!nsm && !req->attestation) || k->have_pcr) {
			rc = cli_error(CLI_USAGE, cmd, "--pcr0, --pcr1 and --pcr2, or --nsm, are required");
			goto out;
		}
		break;
	case KSRPC_GET:
		for (size_t i = 0; i < k->nsigs; i++) {
			if ((rc = read_event(&req->sigs[i], cmd, k->sigs[i])) != 0)
				goto out;
			req->nsigs++;
		}
		__attribute__((fallthrough));
	case KSRPC_SET:
		if (!nsm && !req->attestation) {
			rc = cli_error(CLI_USAGE, cmd, "--nsm SPEC is required (the attestation)");
			goto out;
		}
		if (m == KSRPC_SET) {
			char *data = NULL;
			size_t len = 0;
			if (!k->data_file) {
				rc = cli_error(CLI_USAGE, cmd, "--data-file FILE is required");
				goto out;
			}
			if ((rc = cli_read_input(&data, &len, k->data_file, KSRPC_DATA_MAX)) != 0)
				goto out;
			if (len == 0) {
				free(data);
				rc = cli_error(CLI_USAGE, cmd, "--data-file is empty");
				goto out;
			}
			memcpy(req->data, data, len);
			req->data_len = len;
			sodium_memzero(data, len);
			free(data);
			req->epoch = k->epoch;
			struct ksrpc_policy *p = &req->policy;
			p->present = 1;
			p->t = k->dev == 2 ? KSRPC_T_DEV : k->dev == 1 ? KSRPC_T_PROD : KSRPC_T_DEFAULT;
			p->bind_host = k->bind_host;
			if (k->repo)
				snprintf(p->repo, sizeof p->repo, "%s", k->repo);
			if (k->version)
				snprintf(p->version, sizeof p->version, "%s", k->version);
			for (size_t i = 0; i < k->nmaint; i++)
				if (hex_decode(p->maintainers[i], 32, k->maint[i], strlen(k->maint[i]), 1) != 0 &&
				    nip19_decode_bare(p->maintainers[i], "npub", k->maint[i], strlen(k->maint[i])) != 0) {
					rc = cli_error(CLI_USAGE, cmd, "--maintainer: npub or 64 hex digits");
					goto out;
				}
			p->nmaintainers = k->nmaint;
			p->threshold = k->threshold ? k->threshold : k->nmaint;
			if (k->nmaint && (!k->repo || !k->version || p->threshold > k->nmaint)) {
				rc = cli_error(CLI_USAGE, cmd, "--maintainer needs --repo, --version and --threshold <= maintainers");
				goto out;
			}
		}
		break;
	case KSRPC_REVOKE:
		if (!k->nrevs) {
			rc = cli_error(CLI_USAGE, cmd, "--revocation FILE is required");
			goto out;
		}
		for (size_t i = 0; i < k->nrevs; i++) {
			if ((rc = read_event(&req->revocations[i], cmd, k->revs[i])) != 0)
				goto out;
			req->nrevocations++;
		}
		break;
	default:
		break;
	}
	r = ksclient_call(c, &rep, ks, req, (unsigned)(k->timeout_s * 1000));
	if (k->save_att && req->attestation) {
		FILE *f = fopen(k->save_att, "wb");
		if (!f || fwrite(req->attestation, 1, req->attestation_len, f) != req->attestation_len) {
			if (f)
				fclose(f);
			rc = cli_error(CLI_USAGE, cmd, "--save-attestation: cannot write %s", k->save_att);
			goto out;
		}
		fclose(f);
	}
	if (r) {
		rc = cli_error(CLI_USAGE, cmd, "no answer from the keystore: %s", app_strerror(r));
		goto out;
	}
	if ((rc = print_reply(k, cmd, rep)) != CLI_OK)
		goto out;
	if (k->json) {
		printf("%s\n", rep->result);
		if (m == KSRPC_HAS && !rep->found) {
			rc = CLI_REFUSED;
			goto out;
		}
	} else if (m == KSRPC_HAS) {
		if (!rep->found) {
			printf("not found\n");
			rc = CLI_REFUSED;
			goto out;
		}
		printf("found epoch=%llu\n", (unsigned long long)rep->epoch);
	} else if (m == KSRPC_GET) {
		uint8_t h[32];
		char hx[17];
		hash_sha256(h, rep->data, rep->data_len);
		hex_encode(hx, h, 8);
		printf("found epoch=%llu bytes=%zu match=%s sha256=%s\n", (unsigned long long)rep->epoch, rep->data_len,
		       strstr(rep->result, "\"match\":\"release\"") ? "release" : "exact", hx);
		if (k->show_data) {
			fwrite(rep->data, 1, rep->data_len, stdout);
			fputc('\n', stdout);
		}
	} else {
		printf("%s\n", rep->result);
	}
	rc = CLI_OK;
out:
	ksrpc_reply_free(rep);
	ksrpc_request_free(req);
	ksclient_free(c);
	keys_free(session);
	nsm_close(nsm);
	return rc;
}

static int discover(struct kopts *k, const char *cmd)
{
	struct ksclient *c = NULL;
	struct attest_verifier *v = NULL;
	uint8_t images[16][48];
	struct ksclient_keystore found[KSCLIENT_DISCOVER_MAX];
	size_t n = 0;
	int rc = CLI_USAGE, r;
	if (!k->nimages)
		return cli_error(CLI_USAGE, cmd, "at least one --image PCR0HEX is needed");
	for (size_t i = 0; i < k->nimages; i++)
		if (hex_decode(images[i], 48, k->images[i], strlen(k->images[i]), 0) != 0)
			return cli_error(CLI_USAGE, cmd, "--image takes 96 hex digits (a PCR0)");
	if (k->allow_dev != (k->dev_root != NULL))
		return cli_error(CLI_USAGE, cmd, "--allow-dev and --dev-root go together");
	log_set_level(LOG_ERROR);
	if ((r = attest_verifier_new(&v)) != 0 ||
	    (k->dev_root && (r = attest_verifier_add_dev_root_file(v, k->dev_root)) != 0)) {
		rc = cli_error(CLI_USAGE, cmd, "verifier: %s", app_strerror(r));
		goto out;
	}
	struct ksclient_opts o = {k->relays, k->nrelays, k->ca_file, NULL, (unsigned)(k->timeout_s * 1000), NULL};
	if ((r = ksclient_new(&c, &o)) != 0) {
		rc = cli_error(CLI_USAGE, cmd, "cannot start: %s", app_strerror(r));
		goto out;
	}
	r = ksclient_discover(c, found, KSCLIENT_DISCOVER_MAX, &n, v, k->allow_dev, (const uint8_t(*)[48])images,
			      k->nimages, k->filter_repo, (unsigned)(k->timeout_s * 1000));
	if (r) {
		rc = cli_error(CLI_USAGE, cmd, "no relay answered: %s", app_strerror(r));
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char hx[65], *npub = NULL;
		hex_encode(hx, found[i].pubkey, 32);
		if (nip19_encode_bare(&npub, "npub", found[i].pubkey) != 0)
			goto out;
		printf("%s %s expires=%llu\n", hx, npub, (unsigned long long)found[i].expires_at);
		free(npub);
	}
	rc = n ? CLI_OK : CLI_REFUSED;
	if (!n)
		fprintf(stderr, "appliance %s: no keystore found\n", cmd);
out:
	ksclient_free(c);
	attest_verifier_free(v);
	return rc;
}

static int journal_cb(void *arg, const char *rec, size_t len, uint64_t index)
{
	(void)arg;
	(void)index;
	fwrite(rec, 1, len, stdout);
	fputc('\n', stdout);
	return 0;
}

static int journal_dump(struct kopts *k, const char *cmd)
{
	uint8_t pks[KSSET_MAX][32];
	struct event *sigs[KSRPC_SIGS_MAX] = {0};
	struct ksset *ks = NULL;
	struct sj_store *st = NULL;
	struct sjournal *sj = NULL;
	struct journal *j = NULL;
	struct sjournal_info info;
	char err[SJ_ERR_MAX] = "";
	int rc = CLI_USAGE, r;
	if (!k->nkeystores || !k->nsm || !k->store)
		return cli_error(CLI_USAGE, cmd, "--keystore, --nsm and --store are required");
	for (size_t i = 0; i < k->nkeystores; i++)
		if ((rc = keystore_key(pks[i], cmd, k->keystores[i])) != 0)
			return rc;
	for (size_t i = 0; i < k->nsigs; i++)
		if ((rc = read_event(&sigs[i], cmd, k->sigs[i])) != 0)
			goto out;
	rc = CLI_USAGE;
	log_set_level(LOG_ERROR);
	struct ksset_opts ko;
	memset(&ko, 0, sizeof ko);
	ko.relays = k->relays;
	ko.nrelays = k->nrelays;
	ko.ca_file = k->ca_file;
	ko.nsm = k->nsm;
	ko.pubkeys = (const uint8_t(*)[32])pks;
	ko.npubkeys = k->nkeystores;
	ko.sigs = sigs;
	ko.nsigs = k->nsigs;
	ko.timeout_ms = (unsigned)(k->timeout_s * 1000);
	if ((r = ksset_new(&ks, &ko)) != 0) {
		rc = cli_error(CLI_USAGE, cmd, "cannot start: %s", app_strerror(r));
		goto out;
	}
	if ((r = sj_store_dir_open(&st, k->store)) != 0) {
		rc = cli_error(CLI_USAGE, cmd, "--store %s: %s", k->store, app_strerror(r));
		goto out;
	}
	struct sjournal_opts so;
	memset(&so, 0, sizeof so);
	so.store = st;
	so.ks = ksset_ops();
	so.ks_arg = ks;
	so.read_only = 1;
	so.retry_min_ms = 200;
	so.retry_max_ms = 1000;
	so.start_timeout_s = (unsigned)k->timeout_s;
	if ((r = sjournal_open(&sj, &info, err, sizeof err, &so)) != 0) {
		rc = cli_error(r == APP_ETIMEOUT ? CLI_USAGE : CLI_REFUSED, cmd, "refused (%s): %s", app_errname(r), err);
		goto out;
	}
	if ((r = journal_open(&j, sjournal_backend(), sj)) != 0) {
		sjournal_free(sj);
		goto out;
	}
	uint64_t n = 0;
	if ((r = journal_replay(j, journal_cb, NULL, &n)) != 0) {
		rc = cli_error(CLI_REFUSED, cmd, "replay: %s", app_strerror(r));
		goto out;
	}
	char ih[17];
	hex_encode(ih, info.instance, 8);
	fprintf(stderr, "appliance %s: %llu records, checkpoint %llu, instance %s\n", cmd, (unsigned long long)n,
		(unsigned long long)info.checkpoint_epoch, ih);
	rc = CLI_OK;
out:
	journal_close(j);
	sj_store_close(st);
	ksset_free(ks);
	for (size_t i = 0; i < k->nsigs; i++)
		event_free(sigs[i]);
	return rc;
}

int cmd_keystore(int argc, char **argv)
{
	static const struct {
		const char *name;
		enum ksrpc_method m;
	} subs[] = {{"status", KSRPC_STATUS}, {"has", KSRPC_HAS},	  {"get", KSRPC_GET},
		    {"set", KSRPC_SET},	      {"revoke", KSRPC_REVOKE}, {"discover", 0}, {"journal", 0}};
	if (argc < 2)
		return cli_error(CLI_USAGE, "keystore", "expected status, has, get, set, revoke, discover or journal (see --help)");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))
		return cli_print_usage(keystore_usage);
	for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
		if (strcmp(argv[1], subs[i].name) != 0)
			continue;
		char cmd[32];
		struct kopts k;
		memset(&k, 0, sizeof k);
		snprintf(cmd, sizeof cmd, "keystore %s", subs[i].name);
		int rc = parse_opts(&k, cmd, argc - 1, argv + 1);
		if (rc < 0)
			return cli_print_usage(keystore_usage);
		if (rc)
			return rc;
		k.filter_repo = k.repo;
		if (!strcmp(subs[i].name, "journal"))
			return journal_dump(&k, cmd);
		return subs[i].m ? run(&k, cmd, subs[i].m) : discover(&k, cmd);
	}
	return cli_error(CLI_USAGE, "keystore", "unknown subcommand '%s'", argv[1]);
}
