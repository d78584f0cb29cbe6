/*
 * appliance: the client and maintainer command (DESIGN §9).
 * Git-style subcommands; `appliance help` lists them.
 */
#include <stdio.h>
#include <string.h>

#include "appliance/cli/cli.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{"keygen", cmd_keygen, "generate a new secret key"},
	{"key", cmd_key, "key pub: show the public key of a secret key"},
	{"event", cmd_event, "event sign|verify: sign or verify NIP-01 events"},
	{"nip44", cmd_nip44, "nip44 encrypt|decrypt: NIP-44 v2 payloads"},
	{"nip19", cmd_nip19, "nip19 encode|decode: npub, nsec, note, nprofile, nevent, naddr"},
	{"train", cmd_train, "train a model on CSV datasets (the enclave's engine)"},
	{"evaluate", cmd_evaluate, "evaluate a saved model on a CSV dataset"},
	{"dataset", cmd_dataset, "dataset seal|open: the sealed-data format"},
	{"publish", cmd_publish, "publish a signed event to relays, print each OK"},
	{"req", cmd_req, "query relays with filters, print matching events (or --stream)"},
	{"attest", cmd_attest, "attest verify|show: AWS Nitro attestation documents and events"},
	{"release", cmd_release, "release sign|verify|publish|revoke: maintainer release signatures (63794)"},
	{"keystore", cmd_keystore, "keystore status|has|get|set|revoke|discover: talk to an appliance-keystore"},
	{"bolt11", cmd_bolt11, "bolt11 decode: decode and check a Lightning invoice"},
	{"pay", cmd_pay, "pay a bolt11 invoice over NIP-47 (Nostr Wallet Connect)"},
	{"wallet", cmd_wallet, "wallet balance|info|invoice|lookup|receive|ledger: NIP-47 wallet and ledger"},
	{"discover", cmd_discover, "find training instances on relays and check their attestations"},
	{"submit", cmd_submit, "submit a training job to an instance, pay it, verify and save the result"},
	{"job", cmd_job, "job status|result: follow a job request, fetch and verify its result"},
};

static int usage(FILE *f)
{
	fprintf(f, "usage: appliance COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n`appliance COMMAND --help` describes each command.\n"
		   "Exit status: 0 ok, 1 invalid or refused, 2 usage or environment error.\n");
	return f == stdout ? CLI_OK : CLI_USAGE;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage(stderr);
	const char *name = argv[1];
	if (!strcmp(name, "help") || !strcmp(name, "--help") || !strcmp(name, "-h"))
		return usage(stdout);
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(name, commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "appliance: unknown command '%s'\n", name);
	return usage(stderr);
}
