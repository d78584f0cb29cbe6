#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/err.h"
#include "appliance/keys.h"

int cli_error(int code, const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "appliance %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

int cli_print_usage(const char *text)
{
	fputs(text, stdout);
	return CLI_OK;
}

int cli_read_input(char **out, size_t *len, const char *path, size_t max)
{
	*out = NULL;
	*len = 0;
	FILE *f = stdin;
	if (path && strcmp(path, "-") != 0) {
		f = fopen(path, "rb");
		if (!f)
			return cli_error(CLI_USAGE, "input", "cannot open %s: %s", path, strerror(errno));
	}
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	int rc = CLI_USAGE;
	if (!buf)
		goto out;
	for (;;) {
		if (n == cap) {
			if (cap > max) {
				rc = cli_error(CLI_REFUSED, "input", "input larger than %zu bytes", max);
				goto out;
			}
			char *nb = realloc(buf, cap * 2);
			if (!nb)
				goto out;
			buf = nb;
			cap *= 2;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		rc = cli_error(CLI_USAGE, "input", "read error: %s", strerror(errno));
		goto out;
	}
	if (n > max) {
		rc = cli_error(CLI_REFUSED, "input", "input larger than %zu bytes", max);
		goto out;
	}
	if (n == cap) {
		char *nb = realloc(buf, cap + 1);
		if (!nb)
			goto out;
		buf = nb;
	}
	buf[n] = 0;
	*out = buf;
	*len = n;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	if (f != stdin)
		fclose(f);
	return rc;
}

int cli_load_secret(struct keypair **out, const char *path)
{
	int r = keys_load(out, path);
	if (r == 0)
		return 0;
	if (r == APP_ENOENT && !path)
		return cli_error(CLI_USAGE, "key",
				 "no secret key: use --sec-file FILE or set " KEYS_ENV_SECRET " (hex or nsec)");
	if (r == APP_ENOENT || r == APP_EIO)
		return cli_error(CLI_USAGE, "key", "cannot read secret key file %s", path);
	return cli_error(CLI_REFUSED, "key", "invalid secret key in %s: %s", path ? path : KEYS_ENV_SECRET,
			 app_strerror(r));
}

int cli_parse_u64(unsigned long long *out, const char *text, unsigned long long max)
{
	if (!text || !*text || strlen(text) > 20)
		return -1;
	unsigned long long v = 0;
	for (const char *p = text; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (unsigned)(*p - '0'), &v))
			return -1;
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}
