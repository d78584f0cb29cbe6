/*
 * runcmd.h: the operating subcommands of appliance-parent (parent/main.c
 * dispatches to them; README.md "Operating the parent"):
 *
 *   appliance-parent run --dev|--nitro --config FILE
 *       (also: appliance-parent --dev|--nitro --config FILE)
 *       serves the channel (control + egress), and in dev mode the NSM
 *       emulator; launches the enclave and supervises it (restart with
 *       exponential backoff; a dev enclave still running from an earlier
 *       parent process is adopted, not started twice) until SIGTERM/SIGINT,
 *       then sends the shutdown notice, waits for the enclave to flush and
 *       exit (shutdown_grace_ms), and stops.
 *   appliance-parent stop --config FILE [--timeout S]
 *       SIGTERM to the running parent (pid file), waits for it to finish.
 *   appliance-parent help-config
 *
 * Each returns 0 ok, 1 refused/failed, 2 usage or environment error.
 */
#ifndef PARENT_RUNCMD_H
#define PARENT_RUNCMD_H

/* parent_cmd_run / _stop / _help_config: the subcommands above; argv[0] is the subcommand's name. */
int parent_cmd_run(int argc, char **argv);
int parent_cmd_stop(int argc, char **argv);
int parent_cmd_help_config(int argc, char **argv);

#endif
