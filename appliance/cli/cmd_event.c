/* appliance event sign | verify [--jsonl] */
#include <cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/cli/cli.h"
#include "appliance/event.h"
#include "appliance/hex.h"
#include "appliance/json.h"
#include "appliance/keys.h"

static const char event_usage[] =
	"usage: appliance event sign [--sec-file FILE]\n"
	"       appliance event verify [--jsonl] [FILE|-]\n"
	"\n"
	"sign    reads {\"kind\":N,\"content\":STR,\"tags\":[[STR,...],...],\"created_at\":N}\n"
	"        on stdin (created_at defaults to now, tags to []), signs it with the key from\n"
	"        --sec-file or APPLIANCE_SEC and prints the complete event as JSON.\n"
	"verify  checks one event (NIP-01: shape, recomputed id, BIP-340 signature).\n"
	"        Prints \"ok <id>\" and exits 0, or the reason and exits 1.\n"
	"        --jsonl: one event per line; prints \"ok <id>\" or\n"
	"        \"invalid <line> <reason>\" per line, in constant memory; exits 0 iff all\n"
	"        lines are valid events.\n";

/* verify_reason: the text for a failed parse or verification. */
static const char *verify_reason(int r, const char *parse_reason)
{
	switch (r) {
	case APP_EBADID:
		return "id does not match the event's contents";
	case APP_EBADSIG:
		return "signature verification failed";
	case APP_EBADKEY:
		return "pubkey is not a valid secp256k1 x coordinate";
	case APP_ENOMEM:
		return "out of memory";
	default:
		return parse_reason ? parse_reason : app_strerror(r);
	}
}

/* check_one: parse + verify; fills id on success. */
static int check_one(const char *line, size_t len, char idhex[65], const char **why)
{
	struct event *ev = NULL;
	const char *reason = NULL;
	int r = event_parse(&ev, &reason, line, len);
	if (r == 0)
		r = event_verify(ev);
	if (r == 0)
		hex_encode(idhex, ev->id, 32);
	*why = verify_reason(r, reason);
	event_free(ev);
	return r;
}

static int verify_jsonl(const char *path)
{
	FILE *f = stdin;
	if (path && strcmp(path, "-") != 0 && !(f = fopen(path, "rb")))
		return cli_error(CLI_USAGE, "event verify", "cannot open %s", path);
	static char outbuf[1 << 16];
	setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
	/* One line at a time in a fixed buffer: constant memory. */
	size_t cap = EVENT_MAX_JSON + 2;
	char *line = malloc(cap);
	if (!line)
		return cli_error(CLI_USAGE, "event verify", "out of memory");
	unsigned long long lineno = 0, bad = 0;
	char idhex[65];
	for (;;) {
		if (!fgets(line, (int)cap, f))
			break;
		lineno++;
		size_t len = strlen(line);
		int overlong = 0;
		if (len == cap - 1 && line[len - 1] != '\n') {
			overlong = 1; /* skip the rest of this line */
			int ch;
			while ((ch = fgetc(f)) != EOF && ch != '\n')
				;
		}
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			len--;
		const char *why;
		if (overlong) {
			printf("invalid %llu event: JSON text over the size cap\n", lineno);
			bad++;
		} else if (memchr(line, 0, len)) {
			printf("invalid %llu event: NUL byte in line\n", lineno);
			bad++;
		} else if (len == 0) {
			printf("invalid %llu empty line\n", lineno);
			bad++;
		} else if (check_one(line, len, idhex, &why) == 0) {
			printf("ok %s\n", idhex);
		} else {
			printf("invalid %llu %s\n", lineno, why);
			bad++;
		}
	}
	int err = ferror(f);
	free(line);
	if (f != stdin)
		fclose(f);
	fflush(stdout);
	if (err)
		return cli_error(CLI_USAGE, "event verify", "read error");
	return bad ? CLI_REFUSED : CLI_OK;
}

static int verify_one(const char *path)
{
	char *buf;
	size_t len;
	int rc = cli_read_input(&buf, &len, path, EVENT_MAX_JSON);
	if (rc)
		return rc;
	char idhex[65];
	const char *why;
	if (check_one(buf, len, idhex, &why) == 0) {
		printf("ok %s\n", idhex);
		rc = CLI_OK;
	} else {
		rc = cli_error(CLI_REFUSED, "event verify", "invalid: %s", why);
	}
	free(buf);
	return rc;
}

/* sign_template: builds an unsigned event from the template object. */
static int sign_template(struct event **out, const cJSON *t, const char **why)
{
	*out = NULL;
	if (!cJSON_IsObject(t)) {
		*why = "input is not a JSON object";
		return APP_EPARSE;
	}
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(t, "kind");
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(t, "content");
	const cJSON *tags = cJSON_GetObjectItemCaseSensitive(t, "tags");
	const cJSON *created = cJSON_GetObjectItemCaseSensitive(t, "created_at");
	uint64_t k, ts = (uint64_t)time(NULL);
	if (json_get_u64(kind, EVENT_MAX_KIND, &k) != 0) {
		*why = "kind: missing or not an integer in 0..65535";
		return APP_EPARSE;
	}
	if (content && !cJSON_IsString(content)) {
		*why = "content: not a string";
		return APP_EPARSE;
	}
	if (created && json_get_u64(created, 9007199254740991ULL, &ts) != 0) {
		*why = "created_at: not a non-negative integer";
		return APP_EPARSE;
	}
	const char *c = content ? content->valuestring : "";
	struct event *ev;
	int r = event_new(&ev, (uint32_t)k, ts, c, strlen(c));
	if (r) {
		*why = app_strerror(r);
		return r;
	}
	if (tags && !cJSON_IsArray(tags)) {
		*why = "tags: not an array";
		event_free(ev);
		return APP_EPARSE;
	}
	const cJSON *tag;
	cJSON_ArrayForEach(tag, tags)
	{
		const char *fields[EVENT_MAX_TAG_FIELDS];
		size_t n = 0;
		const cJSON *fld;
		r = cJSON_IsArray(tag) ? 0 : APP_EPARSE;
		cJSON_ArrayForEach(fld, tag)
		{
			if (!cJSON_IsString(fld) || n == EVENT_MAX_TAG_FIELDS) {
				r = APP_EPARSE;
				break;
			}
			fields[n++] = fld->valuestring;
		}
		if (r == 0)
			r = event_add_tag(ev, n, fields);
		if (r) {
			*why = "tags: each tag must be a non-empty array of strings";
			event_free(ev);
			return r;
		}
	}
	*out = ev;
	return 0;
}

static int sign_stdin(const char *sec_file)
{
	struct keypair *kp = NULL;
	char *buf = NULL, *json = NULL;
	size_t len;
	cJSON *t = NULL;
	struct event *ev = NULL;
	int rc = cli_load_secret(&kp, sec_file);
	if (rc)
		return rc;
	if ((rc = cli_read_input(&buf, &len, NULL, EVENT_MAX_JSON)) != 0)
		goto out;
	const char *why = "not valid JSON";
	int r = json_parse(&t, buf, len, EVENT_MAX_JSON, 16);
	if (r == 0)
		r = sign_template(&ev, t, &why);
	if (r) {
		rc = cli_error(CLI_REFUSED, "event sign", "%s", why);
		goto out;
	}
	if ((r = event_sign(ev, kp)) != 0 || (r = event_to_json(&json, &len, ev)) != 0) {
		rc = cli_error(CLI_USAGE, "event sign", "%s", app_strerror(r));
		goto out;
	}
	printf("%s\n", json);
	rc = CLI_OK;
out:
	free(json);
	event_free(ev);
	cJSON_Delete(t);
	free(buf);
	keys_free(kp);
	return rc;
}

int cmd_event(int argc, char **argv)
{
	static const struct option opts[] = {{"jsonl", no_argument, 0, 'l'},
					     {"sec-file", required_argument, 0, 's'},
					     {"help", no_argument, 0, 'h'},
					     {0}};
	int jsonl = 0, c;
	const char *sec_file = NULL;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'l')
			jsonl = 1;
		else if (c == 's')
			sec_file = optarg;
		else if (c == 'h')
			return cli_print_usage(event_usage);
		else
			return CLI_USAGE;
	}
	if (optind >= argc) {
		fputs(event_usage, stderr);
		return CLI_USAGE;
	}
	const char *sub = argv[optind++];
	if (!strcmp(sub, "sign") && optind == argc && !jsonl)
		return sign_stdin(sec_file);
	if (!strcmp(sub, "verify") && argc - optind <= 1) {
		const char *path = optind < argc ? argv[optind] : NULL;
		return jsonl ? verify_jsonl(path) : verify_one(path);
	}
	fputs(event_usage, stderr);
	return CLI_USAGE;
}
