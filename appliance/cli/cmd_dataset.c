/* appliance dataset seal | open: the sealed-data format (PROTOCOL.md "Sealed data format"). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appliance/cli/cli.h"
#include "appliance/err.h"
#include "appliance/hex.h"
#include "appliance/sealed.h"

#define KEYFILE_MAX 256 /* bytes of a key file: 64 hex digits and whitespace */

static const char dataset_usage[] =
	"usage: appliance dataset seal (--key-out KEYFILE | --key-file KEYFILE) [--chunk-size N] IN OUT\n"
	"       appliance dataset open --key-file KEYFILE IN OUT\n"
	"\n"
	"Seals a file (a dataset, or anything) in the sealed-data format: a 40-byte header and\n"
	"libsodium secretstream XChaCha20-Poly1305 chunks (PROTOCOL.md \"Sealed data format\").\n"
	"IN and OUT may be '-' for stdin / stdout.\n"
	"\n"
	"seal  --key-out KEYFILE  makes a new random 32-byte key and writes it as 64 hex\n"
	"                         digits (mode 0600; an existing file is never overwritten)\n"
	"      --key-file KEYFILE reuses an existing key instead\n"
	"      --chunk-size N     plaintext bytes per chunk (64..16777216, default 65536)\n"
	"open  --key-file KEYFILE the key; a wrong key, a modified, truncated, reordered or\n"
	"                         extended input is refused (exit 1). OUT is written through a\n"
	"                         temporary file and appears only when the whole input\n"
	"                         authenticated; with OUT '-' the plaintext streams out and\n"
	"                         only the exit status says it was complete.\n"
	"The key file is what the job parameter dataset_key carries (hex).\n";

/* Reads a key file: 64 hex digits, surrounding whitespace allowed. */
int cli_dataset_read_key(uint8_t key[SEALED_KEY_LEN], const char *path);

int cli_dataset_read_key(uint8_t key[SEALED_KEY_LEN], const char *path)
{
	char buf[KEYFILE_MAX + 1];
	int rc = CLI_USAGE;
	FILE *f = fopen(path, "rb");
	if (!f)
		return cli_error(CLI_USAGE, "dataset", "cannot open key file %s: %s", path, strerror(errno));
	size_t n = fread(buf, 1, sizeof buf, f);
	int rerr = ferror(f);
	fclose(f);
	if (rerr) {
		rc = cli_error(CLI_USAGE, "dataset", "cannot read key file %s", path);
		goto out;
	}
	if (n > KEYFILE_MAX) {
		rc = cli_error(CLI_REFUSED, "dataset", "key file %s: too long", path);
		goto out;
	}
	size_t s = 0, e = n;
	while (s < e && strchr(" \t\r\n", buf[s]))
		s++;
	while (e > s && strchr(" \t\r\n", buf[e - 1]))
		e--;
	if (hex_decode(key, SEALED_KEY_LEN, buf + s, e - s, 0) != 0) {
		rc = cli_error(CLI_REFUSED, "dataset", "key file %s: expected 64 hex digits", path);
		goto out;
	}
	rc = 0;
out:
	sodium_memzero(buf, sizeof buf);
	return rc;
}

static int write_key(const uint8_t key[SEALED_KEY_LEN], const char *path)
{
	char hex[2 * SEALED_KEY_LEN + 2];
	int rc = CLI_USAGE;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return cli_error(CLI_USAGE, "dataset seal", "cannot create key file %s: %s", path, strerror(errno));
	hex_encode(hex, key, SEALED_KEY_LEN);
	hex[2 * SEALED_KEY_LEN] = '\n';
	ssize_t w = write(fd, hex, 2 * SEALED_KEY_LEN + 1);
	if (w != 2 * SEALED_KEY_LEN + 1 || fsync(fd) != 0) {
		rc = cli_error(CLI_USAGE, "dataset seal", "cannot write key file %s", path);
		close(fd);
		unlink(path);
		goto out;
	}
	if (close(fd) != 0) {
		rc = cli_error(CLI_USAGE, "dataset seal", "cannot write key file %s", path);
		unlink(path);
		goto out;
	}
	rc = 0;
out:
	sodium_memzero(hex, sizeof hex);
	return rc;
}

int cmd_dataset(int argc, char **argv)
{
	static const struct option opts[] = {{"key-out", required_argument, 0, 'o'},
					     {"key-file", required_argument, 0, 'k'},
					     {"chunk-size", required_argument, 0, 'c'},
					     {"help", no_argument, 0, 'h'},
					     {0}};
	const char *key_out = NULL, *key_file = NULL;
	unsigned long long chunk = SEALED_CHUNK_DEFAULT;
	uint8_t key[SEALED_KEY_LEN];
	char tmp[4096] = "";
	FILE *in = NULL, *out = NULL;
	int c, rc = CLI_USAGE, r;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': key_out = optarg; break;
		case 'k': key_file = optarg; break;
		case 'c':
			if (cli_parse_u64(&chunk, optarg, SEALED_CHUNK_MAX) != 0 || chunk < SEALED_CHUNK_MIN)
				return cli_error(CLI_USAGE, "dataset", "--chunk-size: 64..16777216");
			break;
		case 'h': return cli_print_usage(dataset_usage);
		default: return CLI_USAGE;
		}
	}
	if (optind + 3 != argc) {
		fputs(dataset_usage, stderr);
		return CLI_USAGE;
	}
	const char *sub = argv[optind], *inpath = argv[optind + 1], *outpath = argv[optind + 2];
	int seal = !strcmp(sub, "seal");
	if (!seal && strcmp(sub, "open") != 0) {
		fputs(dataset_usage, stderr);
		return CLI_USAGE;
	}
	if (seal ? (!key_out == !key_file) : (!key_file || key_out))
		return cli_error(CLI_USAGE, "dataset", seal ? "seal needs exactly one of --key-out, --key-file"
							    : "open needs --key-file");
	if (sodium_init() < 0)
		return cli_error(CLI_USAGE, "dataset", "libsodium initialization failed");
	if (key_file) {
		if ((rc = cli_dataset_read_key(key, key_file)) != 0)
			return rc;
	} else if (sealed_key_generate(key) != 0) {
		return cli_error(CLI_USAGE, "dataset", "cannot generate a key");
	}
	int to_stdout = !strcmp(outpath, "-");
	in = strcmp(inpath, "-") ? fopen(inpath, "rb") : stdin;
	if (!in) {
		rc = cli_error(CLI_USAGE, "dataset", "cannot open %s: %s", inpath, strerror(errno));
		goto out;
	}
	if (to_stdout) {
		out = stdout;
	} else {
		if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", outpath, (long)getpid()) >= sizeof tmp) {
			tmp[0] = 0;
			rc = cli_error(CLI_USAGE, "dataset", "output path too long");
			goto out;
		}
		int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, seal ? 0644 : 0600);
		if (fd < 0 || !(out = fdopen(fd, "wb"))) {
			if (fd >= 0)
				close(fd);
			rc = cli_error(CLI_USAGE, "dataset", "cannot create %s: %s", tmp, strerror(errno));
			tmp[0] = 0;
			goto out;
		}
	}
	/* The key file comes first so that a failure cannot lose the key of
	 * a written output. */
	if (key_out && (rc = write_key(key, key_out)) != 0)
		goto out;
	r = seal ? sealed_seal_file(out, in, key, (size_t)chunk, NULL, 0) : sealed_open_file(out, in, key, NULL, 0);
	if (r == APP_EIO) {
		rc = cli_error(CLI_USAGE, "dataset", "I/O error");
		goto out;
	}
	if (r) {
		const char *why = r == APP_EBADMAC ? "authentication failed (wrong key, or modified/reordered data)"
			        : r == APP_EPARSE  ? "malformed or truncated sealed data"
			        : r == APP_EVERSION ? "unsupported sealed-data version"
						    : app_strerror(r);
		rc = cli_error(CLI_REFUSED, "dataset", "%s: %s (%s)", inpath, why, app_errname(r));
		goto out;
	}
	if (fflush(out) != 0 || (!to_stdout && fsync(fileno(out)) != 0)) {
		rc = cli_error(CLI_USAGE, "dataset", "cannot write %s: %s", outpath, strerror(errno));
		goto out;
	}
	if (!to_stdout) {
		FILE *o = out;
		out = NULL;
		if (fclose(o) != 0 || rename(tmp, outpath) != 0) {
			rc = cli_error(CLI_USAGE, "dataset", "cannot write %s: %s", outpath, strerror(errno));
			goto out;
		}
		tmp[0] = 0;
	}
	rc = CLI_OK;
out:
	sodium_memzero(key, sizeof key);
	if (in && in != stdin)
		fclose(in);
	if (out && out != stdout)
		fclose(out);
	if (tmp[0])
		unlink(tmp);
	return rc;
}
