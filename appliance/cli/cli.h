/*
 * cli.h: shared plumbing of the `appliance` command.
 *
 * Exit codes (DESIGN §9): 0 ok; 1 invalid input or refused (reason on
 * stderr); 2 usage or environment error. Secrets come from --sec-file FILE
 * or the environment (APPLIANCE_SEC), never from argv.
 *
 * Each subcommand is `int cmd_NAME(int argc, char **argv)` where argv[0] is
 * the subcommand's name; it parses its options with getopt_long, answers
 * --help on stdout with exit 0, and returns an exit code.
 */
#ifndef APPLIANCE_CLI_H
#define APPLIANCE_CLI_H

#include <stddef.h>
#include <stdio.h>

struct keypair;

enum { CLI_OK = 0, CLI_REFUSED = 1, CLI_USAGE = 2 };

/* Subcommands (one file each: cmd_NAME.c). */
int cmd_keygen(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_event(int argc, char **argv);
int cmd_nip44(int argc, char **argv);
int cmd_nip19(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_evaluate(int argc, char **argv);
int cmd_dataset(int argc, char **argv);
int cmd_publish(int argc, char **argv);
int cmd_req(int argc, char **argv);
int cmd_attest(int argc, char **argv);
int cmd_release(int argc, char **argv);
int cmd_keystore(int argc, char **argv);
int cmd_bolt11(int argc, char **argv);
int cmd_pay(int argc, char **argv);
int cmd_wallet(int argc, char **argv);
int cmd_discover(int argc, char **argv);
int cmd_submit(int argc, char **argv);
int cmd_job(int argc, char **argv);

/*
 * cli_read_input: all of FILE (or stdin for NULL or "-") into a new
 * NUL-terminated buffer (*out, *len; free with free()). More than `max`
 * bytes is an error. Returns 0 or prints the reason and returns an exit code.
 */
int cli_read_input(char **out, size_t *len, const char *path, size_t max);

/*
 * cli_load_secret: the secret key from --sec-file (path) or APPLIANCE_SEC.
 * Returns 0 or prints the reason and returns CLI_USAGE (nothing given,
 * unreadable) or CLI_REFUSED (malformed or invalid key).
 */
int cli_load_secret(struct keypair **out, const char *path);

/* cli_error: prints "appliance CMD: message" to stderr; returns `code`. */
int cli_error(int code, const char *cmd, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * cli_parse_u64: decimal text into *out (no sign, no spaces, <= max).
 * Returns 0, or -1 when the text is not such a number.
 */
int cli_parse_u64(unsigned long long *out, const char *text, unsigned long long max);

/* cli_print_usage: prints text to stdout (for --help) and returns CLI_OK. */
int cli_print_usage(const char *text);

#endif
