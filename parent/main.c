/*
 * appliance-parent: the operator's program on the (untrusted) EC2 host
 * (DESIGN §2). A dispatcher over subcommands; each lives in the parent
 * library: running and stopping the parent (parent/runcmd.h) and the
 * dev-mode tools, the development CA and the NSM emulator (parent/devcmd.h).
 */
#include <stdio.h>
#include <string.h>

#include "parent/devcmd.h"
#include "parent/runcmd.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{"run", parent_cmd_run, "run --dev|--nitro --config FILE: serve the channel, launch and supervise the enclave"},
	{"stop", parent_cmd_stop, "stop --config FILE: stop a running parent (the enclave flushes first)"},
	{"help-config", parent_cmd_help_config, "every configuration key with its default"},
	{"dev-ca", parent_cmd_dev_ca, "dev-ca create DIR: a development root CA for the NSM emulator"},
	{"nsm-emulator", parent_cmd_nsm_emulator, "serve the development NSM emulator on a unix socket"},
};

static int usage(FILE *f)
{
	fprintf(f, "usage: appliance-parent COMMAND [ARGS]\n"
		   "       appliance-parent --dev|--nitro --config FILE   (= run)\n\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %-13s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n`appliance-parent COMMAND --help` describes each command.\n"
		   "Exit status: 0 ok, 1 refused or failed, 2 usage or environment error.\n");
	return f == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage(stderr);
	const char *name = argv[1];
	if (!strcmp(name, "help") || !strcmp(name, "--help") || !strcmp(name, "-h"))
		return usage(stdout);
	/* `appliance-parent --dev --config FILE`: the run command's options given directly */
	if (!strcmp(name, "--dev") || !strcmp(name, "--nitro") || !strcmp(name, "--config")) {
		argv[0] = (char *)"run";
		return parent_cmd_run(argc, argv);
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(name, commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "appliance-parent: unknown command '%s'\n", name);
	return usage(stderr);
}
