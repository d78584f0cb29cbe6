/*
 * appliance publish | req: talk to Nostr relays through the relay pool
 * (relay-client/pool.h).
 */
#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/cli/cli.h"
#include "appliance/event.h"
#include "appliance/filter.h"
#include "appliance/hex.h"
#include "appliance/json.h"
#include "appliance/keys.h"
#include "appliance/log.h"
#include "relay-client/pool.h"

#define MAX_CONNECT_TO 64

static const char common_help[] =
	"  --relay URL          a relay (ws:// or wss://); repeat for several (at least one)\n"
	"  --connect-to H1:P1:H2:P2\n"
	"                       connect to H2:P2 for relays named H1:P1 (Host, SNI and the\n"
	"                       certificate check keep H1); repeatable\n"
	"  --ca-file FILE       also trust the CA certificates in FILE (PEM) for wss://\n"
	"  --auth               answer NIP-42 AUTH challenges with the key from --sec-file\n"
	"                       or APPLIANCE_SEC\n"
	"  --sec-file FILE      the secret key for --auth\n"
	"  --pool-opt KEY=N     tune the relay pool: connect_timeout_ms, publish_timeout_ms,\n"
	"                       publish_attempts, publish_deadline_ms, backoff_min_ms,\n"
	"                       backoff_max_ms, resub_margin_s, ping_interval_s, max_message,\n"
	"                       max_queue, max_subs, max_publishes, dedupe_max, auth_eager\n"
	"  --stats              print each relay's counters as JSON lines on stderr at the end\n"
	"  -v, --verbose        log connection events (twice: debug)\n";

static const char publish_usage_head[] =
	"usage: appliance publish --relay URL [--relay URL ...] [options] [FILE|-]\n"
	"\n"
	"Publishes one signed event (JSON, from FILE or stdin) to every relay (NIP-01 EVENT)\n"
	"and prints each relay's OK result, one line per relay:\n"
	"  URL accepted [MESSAGE] | URL rejected PREFIX: MESSAGE | URL timeout | URL failed REASON\n"
	"The event is verified first (id and signature) and refused when invalid, unless\n"
	"--no-verify. Rate-limited and unanswered sends are retried with backoff.\n"
	"Exit status: 0 if at least one relay accepted the event; 1 if none did and some\n"
	"relay rejected it (or it is invalid); 2 if no relay answered, or usage errors.\n"
	"\n"
	"options:\n"
	"  --timeout SECONDS    settle every relay within this time (default 15)\n"
	"  --json               one JSON object per relay instead of text\n"
	"  --no-verify          send the event even if its id or signature is wrong\n";

static const char req_usage_head[] =
	"usage: appliance req --relay URL [--relay URL ...] [--timeout SECONDS] [--stream]\n"
	"                     [options] FILTER_JSON|-\n"
	"\n"
	"Subscribes with one filter (a JSON object) or several (a JSON array of objects) and\n"
	"prints the matching events as JSON lines, each verified and printed once even when\n"
	"several relays have it, until every relay sent EOSE (or closed the subscription or\n"
	"cannot be reached), or forever with --stream (reconnecting to relays that go away).\n"
	"Exit status: 0 when at least one relay answered completely; 1 when every relay\n"
	"refused the subscription (CLOSED); 2 on timeout, when no relay could be reached,\n"
	"or usage errors. With --stream: 0 at the timeout or on SIGINT/SIGTERM.\n"
	"\n"
	"options:\n"
	"  --timeout SECONDS    give up after this time (default 10; with --stream: run this\n"
	"                       long, default forever)\n"
	"  --stream             keep the subscription open and print new events as they come\n";

struct common {
	const char *urls[RELAY_POOL_MAX_RELAYS];
	size_t nurls;
	const char *connect_to[MAX_CONNECT_TO];
	size_t nconnect_to;
	const char *ca_file;
	const char *sec_file;
	int auth, stats, verbose, json;
	unsigned long long timeout_s;
	int timeout_set;
	struct relay_pool_opts o;
	struct keypair *key;
	struct relay_pool *pool;
	char last_msg[RELAY_POOL_MAX_RELAYS][RELAY_ERROR_MAX];
	uint64_t last_disconnects[RELAY_POOL_MAX_RELAYS];
	const char *cmd;
};

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static void install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* set_pool_opt: KEY=N into o. Returns 0 or -1. */
static int set_pool_opt(struct relay_pool_opts *o, const char *kv)
{
	static const struct {
		const char *key;
		size_t off;
		int is_size;
	} keys[] = {
		{"connect_timeout_ms", offsetof(struct relay_pool_opts, connect_timeout_ms), 0},
		{"publish_timeout_ms", offsetof(struct relay_pool_opts, publish_timeout_ms), 0},
		{"publish_attempts", offsetof(struct relay_pool_opts, publish_attempts), 0},
		{"publish_deadline_ms", offsetof(struct relay_pool_opts, publish_deadline_ms), 0},
		{"backoff_min_ms", offsetof(struct relay_pool_opts, backoff_min_ms), 0},
		{"backoff_max_ms", offsetof(struct relay_pool_opts, backoff_max_ms), 0},
		{"resub_margin_s", offsetof(struct relay_pool_opts, resub_margin_s), 0},
		{"ping_interval_s", offsetof(struct relay_pool_opts, ping_interval_s), 0},
		{"auth_eager", offsetof(struct relay_pool_opts, auth_eager), 2},
		{"max_message", offsetof(struct relay_pool_opts, max_message), 1},
		{"max_queue", offsetof(struct relay_pool_opts, max_queue), 1},
		{"max_subs", offsetof(struct relay_pool_opts, max_subs), 1},
		{"max_publishes", offsetof(struct relay_pool_opts, max_publishes), 1},
		{"dedupe_max", offsetof(struct relay_pool_opts, dedupe_max), 1},
	};
	const char *eq = strchr(kv, '=');
	if (!eq)
		return -1;
	unsigned long long v;
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		if (strlen(keys[i].key) != (size_t)(eq - kv) || strncmp(keys[i].key, kv, (size_t)(eq - kv)) != 0)
			continue;
		if (cli_parse_u64(&v, eq + 1, keys[i].is_size == 1 ? SIZE_MAX : 0xffffffffULL) != 0)
			return -1;
		char *base = (char *)o + keys[i].off;
		if (keys[i].is_size == 1) {
			size_t sv = (size_t)v;
			memcpy(base, &sv, sizeof sv);
		} else if (keys[i].is_size == 2) {
			int iv = v != 0;
			memcpy(base, &iv, sizeof iv);
		} else {
			unsigned uv = (unsigned)v;
			memcpy(base, &uv, sizeof uv);
		}
		return 0;
	}
	return -1;
}

/* connect_to_for: the "H2:P2" for url from the --connect-to list, written into buf; NULL if none. */
static const char *connect_to_for(const struct common *c, const char *url, char *buf, size_t cap)
{
	struct relayurl u;
	if (relayurl_parse(&u, NULL, url) != 0)
		return NULL;
	for (size_t i = 0; i < c->nconnect_to; i++) {
		const char *s = c->connect_to[i], *p;
		char h1[RELAYURL_HOST_MAX + 1];
		size_t hl;
		if (*s == '[') {
			p = strchr(s, ']');
			if (!p || p[1] != ':')
				continue;
			hl = (size_t)(p - s - 1);
			if (hl >= sizeof h1)
				continue;
			memcpy(h1, s + 1, hl);
			p += 2;
		} else {
			p = strchr(s, ':');
			if (!p)
				continue;
			hl = (size_t)(p - s);
			if (hl >= sizeof h1)
				continue;
			memcpy(h1, s, hl);
			p += 1;
		}
		h1[hl] = 0;
		for (size_t k = 0; k < hl; k++)
			if (h1[k] >= 'A' && h1[k] <= 'Z')
				h1[k] = (char)(h1[k] - 'A' + 'a');
		char *end;
		errno = 0;
		unsigned long port = strtoul(p, &end, 10);
		if (end == p || *end != ':' || errno || port != u.port || strcmp(h1, u.host) != 0)
			continue;
		snprintf(buf, cap, "%s", end + 1);
		return buf;
	}
	return NULL;
}

static void on_relay_state(void *user, size_t relay, enum relay_state state, const char *detail)
{
	struct common *c = user;
	struct relay_status st;
	if (relay_pool_relay_status(c->pool, relay, &st) != 0)
		return;
	if (relay >= RELAY_POOL_MAX_RELAYS)
		return;
	/* say each distinct failure once, not at every reconnect attempt */
	int lost = st.disconnects > c->last_disconnects[relay];
	c->last_disconnects[relay] = st.disconnects;
	if (state == RELAY_BACKOFF && (lost || strcmp(c->last_msg[relay], detail) != 0)) {
		fprintf(stderr, "appliance %s: %s: %s: %s\n", c->cmd, st.url,
			lost ? "connection lost" : "connection failed", detail);
		snprintf(c->last_msg[relay], sizeof c->last_msg[relay], "%s", detail);
	} else if (state == RELAY_CONNECTED) {
		if (c->verbose || c->last_msg[relay][0])
			fprintf(stderr, "appliance %s: %s: connected\n", c->cmd, st.url);
		c->last_msg[relay][0] = 0;
	}
}

/* parse_common: one option shared by publish and req. Returns 1 if handled, 0 if not, -1 on error. */
enum {
	OPT_RELAY = 256,
	OPT_CONNECT_TO,
	OPT_CA_FILE,
	OPT_AUTH,
	OPT_SEC_FILE,
	OPT_POOL_OPT,
	OPT_STATS,
	OPT_TIMEOUT,
	OPT_JSON,
	OPT_NO_VERIFY,
	OPT_STREAM,
};

static int parse_common(struct common *c, int opt, const char *arg)
{
	switch (opt) {
	case OPT_RELAY:
		if (c->nurls >= RELAY_POOL_MAX_RELAYS)
			return cli_error(-1, c->cmd, "at most %d relays", RELAY_POOL_MAX_RELAYS);
		c->urls[c->nurls++] = arg;
		return 1;
	case OPT_CONNECT_TO:
		if (c->nconnect_to >= MAX_CONNECT_TO)
			return cli_error(-1, c->cmd, "at most %d --connect-to", MAX_CONNECT_TO);
		c->connect_to[c->nconnect_to++] = arg;
		return 1;
	case OPT_CA_FILE:
		c->ca_file = arg;
		return 1;
	case OPT_AUTH:
		c->auth = 1;
		return 1;
	case OPT_SEC_FILE:
		c->sec_file = arg;
		return 1;
	case OPT_POOL_OPT:
		if (set_pool_opt(&c->o, arg) != 0)
			return cli_error(-1, c->cmd, "bad --pool-opt '%s' (see --help)", arg);
		return 1;
	case OPT_STATS:
		c->stats = 1;
		return 1;
	case 'v':
		c->verbose++;
		return 1;
	case OPT_JSON:
		c->json = 1;
		return 1;
	case OPT_TIMEOUT:
		if (cli_parse_u64(&c->timeout_s, arg, 86400ULL * 365) != 0)
			return cli_error(-1, c->cmd, "bad --timeout '%s' (whole seconds)", arg);
		c->timeout_set = 1;
		return 1;
	default:
		return 0;
	}
}

#define COMMON_LONGOPTS                                                                                  \
	{"relay", required_argument, 0, OPT_RELAY}, {"connect-to", required_argument, 0, OPT_CONNECT_TO},  \
		{"ca-file", required_argument, 0, OPT_CA_FILE}, {"auth", no_argument, 0, OPT_AUTH},         \
		{"sec-file", required_argument, 0, OPT_SEC_FILE},                                           \
		{"pool-opt", required_argument, 0, OPT_POOL_OPT}, {"stats", no_argument, 0, OPT_STATS},     \
		{"timeout", required_argument, 0, OPT_TIMEOUT}, {"verbose", no_argument, 0, 'v'},           \
		{"help", no_argument, 0, 'h'}

/* start_pool: key, pool, relays. Returns 0 or an exit code (message printed). */
static int start_pool(struct common *c)
{
	if (c->nurls == 0)
		return cli_error(CLI_USAGE, c->cmd, "at least one --relay URL is needed");
	log_set_level(c->verbose >= 2 ? LOG_DEBUG : c->verbose ? LOG_INFO : LOG_ERROR);
	if (c->auth) {
		int rc = cli_load_secret(&c->key, c->sec_file);
		if (rc)
			return rc;
		c->o.auth_key = c->key;
	}
	c->o.ca_file = c->ca_file;
	c->o.on_relay = on_relay_state;
	c->o.user = c;
	int r = relay_pool_new(&c->pool, &c->o);
	if (r == APP_ENOENT)
		return cli_error(CLI_USAGE, c->cmd, "cannot read --ca-file %s", c->ca_file);
	if (r == APP_EINVAL)
		return cli_error(CLI_USAGE, c->cmd, "invalid --pool-opt combination");
	if (r)
		return cli_error(CLI_USAGE, c->cmd, "cannot start the relay pool: %s", app_strerror(r));
	for (size_t i = 0; i < c->nurls; i++) {
		char buf[RELAYURL_HOST_MAX + 16];
		const char *via = connect_to_for(c, c->urls[i], buf, sizeof buf);
		r = relay_pool_add_relay(c->pool, NULL, c->urls[i], via);
		if (r == APP_EEXIST)
			continue;
		if (r)
			return cli_error(CLI_USAGE, c->cmd, "bad relay URL or --connect-to address: %s", c->urls[i]);
	}
	return 0;
}

static void print_stats(struct common *c)
{
	static const struct {
		const char *name;
		size_t off;
	} fields[] = {
#define F(n) {#n, offsetof(struct relay_status, n)}
		F(connects), F(reconnects), F(connect_failures), F(disconnects), F(msgs_in), F(bytes_in),
		F(msgs_out), F(bytes_out), F(events_out), F(events_in), F(events_delivered), F(events_duplicate),
		F(events_invalid), F(events_unmatched), F(events_unknown_sub), F(malformed), F(oversize),
		F(binary), F(queue_full), F(ok_accepted), F(ok_rejected), F(ok_unknown), F(publish_retries),
		F(eose), F(closed), F(notices), F(counts), F(unknown_sub_msgs), F(auth_challenges),
		F(auth_sent), F(auth_accepted), F(auth_rejected), F(queued), F(dropped),
#undef F
	};
	size_t n = relay_pool_relay_count(c->pool);
	for (size_t i = 0; i < n; i++) {
		struct relay_status st;
		if (relay_pool_relay_status(c->pool, i, &st) != 0)
			continue;
		struct jw w;
		jw_init(&w, 0);
		jw_raw(&w, "{", 1);
		jw_key(&w, 0, "relay");
		jw_cstr(&w, st.url);
		jw_key(&w, 1, "state");
		jw_cstr(&w, relay_state_name(st.state));
		jw_key(&w, 1, "last_error");
		jw_cstr(&w, st.last_error);
		for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
			uint64_t v;
			memcpy(&v, (const char *)&st + fields[k].off, sizeof v);
			jw_key(&w, 1, fields[k].name);
			jw_u64(&w, v);
		}
		jw_key(&w, 1, "malformed_by");
		jw_char(&w, '{');
		for (size_t k = 1; k < RELAYMSG_R__COUNT; k++) {
			jw_key(&w, k > 1, relaymsg_reject_name((enum relaymsg_reject)k));
			jw_u64(&w, st.malformed_by[k]);
		}
		jw_raw(&w, "}}", 2);
		char *out;
		size_t len;
		if (jw_finish(&w, &out, &len) == 0) {
			fprintf(stderr, "%s\n", out);
			free(out);
		}
	}
	struct relay_pool_stats ps;
	relay_pool_get_stats(c->pool, &ps);
	fprintf(stderr,
		"{\"pool\":{\"relays\":%llu,\"subs_open\":%llu,\"subs_refused\":%llu,\"publishes_pending\":%llu,"
		"\"publishes_settled\":%llu,\"publishes_refused\":%llu,\"dedupe_size\":%llu,\"dedupe_capacity\":%llu,"
		"\"dedupe_evictions\":%llu}}\n",
		(unsigned long long)ps.relays, (unsigned long long)ps.subs_open,
		(unsigned long long)ps.subs_refused, (unsigned long long)ps.publishes_pending,
		(unsigned long long)ps.publishes_settled, (unsigned long long)ps.publishes_refused,
		(unsigned long long)ps.dedupe_size, (unsigned long long)ps.dedupe_capacity,
		(unsigned long long)ps.dedupe_evictions);
}

static void finish_common(struct common *c)
{
	if (c->pool && c->stats)
		print_stats(c);
	relay_pool_free(c->pool);
	c->pool = NULL;
	keys_free(c->key);
	c->key = NULL;
}

static void common_init(struct common *c, const char *cmd)
{
	memset(c, 0, sizeof *c);
	c->cmd = cmd;
	relay_pool_opts_default(&c->o);
	/* A command line wants answers sooner than a daemon. */
	c->o.connect_timeout_ms = 5000;
	c->o.backoff_max_ms = 5000;
}

/* ---- publish --------------------------------------------------------------------------------- */

struct pub_state {
	struct common *c;
	int done;
	int accepted, rejected;
};

static void on_published(void *user, uint64_t publish_id, const uint8_t id[32], const struct relay_pub_result *res,
			 size_t n)
{
	(void)publish_id;
	(void)id;
	struct pub_state *ps = user;
	for (size_t i = 0; i < n; i++) {
		const struct relay_pub_result *x = &res[i];
		if (x->status == RELAY_PUB_ACCEPTED)
			ps->accepted++;
		else if (x->status == RELAY_PUB_REJECTED)
			ps->rejected++;
		if (ps->c->json) {
			struct jw w;
			jw_init(&w, 0);
			jw_char(&w, '{');
			jw_key(&w, 0, "relay");
			jw_cstr(&w, x->url);
			jw_key(&w, 1, "status");
			jw_cstr(&w, relay_pub_status_name(x->status));
			jw_key(&w, 1, "accepted");
			jw_raw(&w, x->status == RELAY_PUB_ACCEPTED ? "true" : "false",
			       x->status == RELAY_PUB_ACCEPTED ? 4 : 5);
			jw_key(&w, 1, "prefix");
			jw_cstr(&w, relaymsg_prefix_name(x->prefix));
			jw_key(&w, 1, "message");
			jw_cstr(&w, x->message);
			jw_key(&w, 1, "attempts");
			jw_u64(&w, x->attempts);
			jw_char(&w, '}');
			char *out;
			size_t len;
			if (jw_finish(&w, &out, &len) == 0) {
				printf("%s\n", out);
				free(out);
			}
		} else {
			printf("%s %s%s%s\n", x->url, relay_pub_status_name(x->status), x->message[0] ? " " : "",
			       x->message);
		}
	}
	fflush(stdout);
	ps->done = 1;
}

int cmd_publish(int argc, char **argv)
{
	static const struct option opts[] = {COMMON_LONGOPTS,
					     {"json", no_argument, 0, OPT_JSON},
					     {"no-verify", no_argument, 0, OPT_NO_VERIFY},
					     {0}};
	struct common c;
	struct event *ev = NULL;
	char *buf = NULL;
	size_t len;
	int no_verify = 0, opt, rc = CLI_USAGE;
	common_init(&c, "publish");
	optind = 1;
	while ((opt = getopt_long(argc, argv, "hv", opts, NULL)) != -1) {
		if (opt == 'h') {
			fputs(publish_usage_head, stdout);
			fputs(common_help, stdout);
			return CLI_OK;
		}
		if (opt == OPT_NO_VERIFY) {
			no_verify = 1;
			continue;
		}
		int h = parse_common(&c, opt, optarg);
		if (h < 0)
			return CLI_USAGE;
		if (h == 0) {
			fprintf(stderr, "%s", publish_usage_head);
			return CLI_USAGE;
		}
	}
	if (optind + 1 < argc)
		return cli_error(CLI_USAGE, "publish", "one event FILE at most");
	if (c.nurls == 0)
		return cli_error(CLI_USAGE, "publish", "at least one --relay URL is needed");
	if ((rc = cli_read_input(&buf, &len, optind < argc ? argv[optind] : NULL, EVENT_MAX_JSON)) != 0)
		goto out;
	const char *why = NULL;
	int r = event_parse(&ev, &why, buf, len);
	if (r) {
		rc = cli_error(CLI_REFUSED, "publish", "invalid event: %s", why ? why : app_strerror(r));
		goto out;
	}
	if (!no_verify && (r = event_verify(ev)) != 0) {
		rc = cli_error(CLI_REFUSED, "publish", "invalid event: %s (use --no-verify to send it anyway)",
			       app_strerror(r));
		goto out;
	}
	unsigned long long timeout = c.timeout_set ? c.timeout_s : 15;
	if (timeout == 0)
		timeout = 15;
	if (timeout * 1000 < c.o.publish_deadline_ms)
		c.o.publish_deadline_ms = (unsigned)(timeout * 1000);
	if ((rc = start_pool(&c)) != 0)
		goto out;
	struct pub_state ps = {.c = &c};
	if ((r = relay_publish(c.pool, NULL, ev, NULL, 0, on_published, &ps)) != 0) {
		rc = cli_error(CLI_USAGE, "publish", "cannot publish: %s", app_strerror(r));
		goto out;
	}
	install_signals();
	double deadline = mono_s() + (double)timeout + 2.0;
	while (!ps.done && !g_stop && mono_s() < deadline)
		if (relay_pool_service(c.pool, 200) != 0)
			break;
	if (!ps.done) {
		rc = cli_error(CLI_USAGE, "publish", "%s", g_stop ? "interrupted" : "timeout");
		goto out;
	}
	rc = ps.accepted ? CLI_OK : ps.rejected ? CLI_REFUSED : CLI_USAGE;
out:
	finish_common(&c);
	event_free(ev);
	free(buf);
	return rc;
}

/* ---- req ------------------------------------------------------------------------------------- */

struct req_state {
	struct common *c;
	int stream;
	int eose_all;
	size_t eose_relays, closed_relays;
	unsigned char eosed[RELAY_POOL_MAX_RELAYS];
	int write_error;
	int write_errno;
	unsigned long long printed;
};

static void req_on_event(void *user, uint64_t sub, size_t relay, struct event **ev)
{
	(void)sub;
	(void)relay;
	struct req_state *rs = user;
	char *out;
	size_t len;
	if (event_to_json(&out, &len, *ev) != 0) {
		rs->write_error = 1;
		return;
	}
	out[len] = '\n';
	if (fwrite(out, 1, len + 1, stdout) != len + 1 || (rs->stream && fflush(stdout) != 0)) {
		rs->write_error = 1;
		rs->write_errno = errno;
	}
	free(out);
	rs->printed++;
}

static void req_on_eose(void *user, uint64_t sub, size_t relay)
{
	(void)sub;
	struct req_state *rs = user;
	if (relay == RELAY_ALL) {
		rs->eose_all = 1;
		if (rs->stream)
			fflush(stdout);
		return;
	}
	if (relay < RELAY_POOL_MAX_RELAYS && !rs->eosed[relay]) {
		rs->eosed[relay] = 1;
		rs->eose_relays++;
	}
}

static void req_on_closed(void *user, uint64_t sub, size_t relay, enum relaymsg_prefix prefix, const char *message)
{
	(void)sub;
	(void)prefix;
	struct req_state *rs = user;
	struct relay_status st;
	if (relay_pool_relay_status(rs->c->pool, relay, &st) == 0)
		fprintf(stderr, "appliance req: %s: subscription closed: %s\n", st.url, message);
	rs->closed_relays++;
}

/* load_filters: one object or an array of objects. Returns 0 or an exit code. */
static int load_filters(struct filter **f, size_t *n, const char *text, size_t len)
{
	cJSON *j = NULL;
	*n = 0;
	int r = json_parse(&j, text, len, FILTER_MAX_JSON * RELAYMSG_MAX_FILTERS, 16);
	if (r)
		return cli_error(CLI_REFUSED, "req", "FILTER_JSON is not valid JSON");
	int rc = CLI_REFUSED;
	const char *why = NULL;
	if (cJSON_IsObject(j)) {
		if ((r = filter_from_cjson(&f[0], &why, j)) != 0) {
			rc = cli_error(CLI_REFUSED, "req", "bad filter: %s", why ? why : app_strerror(r));
			goto out;
		}
		*n = 1;
	} else if (cJSON_IsArray(j)) {
		const cJSON *e;
		cJSON_ArrayForEach(e, j)
		{
			if (*n >= RELAYMSG_MAX_FILTERS) {
				rc = cli_error(CLI_REFUSED, "req", "at most %d filters", RELAYMSG_MAX_FILTERS);
				goto out;
			}
			if ((r = filter_from_cjson(&f[*n], &why, e)) != 0) {
				rc = cli_error(CLI_REFUSED, "req", "bad filter %zu: %s", *n + 1,
					       why ? why : app_strerror(r));
				goto out;
			}
			(*n)++;
		}
		if (*n == 0) {
			rc = cli_error(CLI_REFUSED, "req", "no filters in the array");
			goto out;
		}
	} else {
		rc = cli_error(CLI_REFUSED, "req", "FILTER_JSON must be an object or an array of objects");
		goto out;
	}
	rc = 0;
out:
	cJSON_Delete(j);
	return rc;
}

int cmd_req(int argc, char **argv)
{
	static const struct option opts[] = {COMMON_LONGOPTS, {"stream", no_argument, 0, OPT_STREAM}, {0}};
	struct common c;
	struct filter *filters[RELAYMSG_MAX_FILTERS] = {0};
	size_t nfilters = 0;
	char *buf = NULL;
	int stream = 0, opt, rc = CLI_USAGE;
	static char outbuf[1 << 16];
	common_init(&c, "req");
	optind = 1;
	while ((opt = getopt_long(argc, argv, "hv", opts, NULL)) != -1) {
		if (opt == 'h') {
			fputs(req_usage_head, stdout);
			fputs(common_help, stdout);
			return CLI_OK;
		}
		if (opt == OPT_STREAM) {
			stream = 1;
			continue;
		}
		int h = parse_common(&c, opt, optarg);
		if (h < 0)
			return CLI_USAGE;
		if (h == 0) {
			fprintf(stderr, "%s", req_usage_head);
			return CLI_USAGE;
		}
	}
	if (optind + 1 != argc)
		return cli_error(CLI_USAGE, "req", "exactly one FILTER_JSON (or -) is needed");
	if (c.nurls == 0)
		return cli_error(CLI_USAGE, "req", "at least one --relay URL is needed");
	const char *ftext = argv[optind];
	size_t flen = strlen(ftext);
	if (!strcmp(ftext, "-")) {
		if ((rc = cli_read_input(&buf, &flen, NULL, FILTER_MAX_JSON * RELAYMSG_MAX_FILTERS)) != 0)
			goto out;
		ftext = buf;
	}
	if ((rc = load_filters(filters, &nfilters, ftext, flen)) != 0)
		goto out;
	if ((rc = start_pool(&c)) != 0)
		goto out;
	setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
	struct req_state rs = {.c = &c, .stream = stream};
	struct relay_sub_cbs cbs = {req_on_event, req_on_eose, req_on_closed};
	uint64_t sub;
	int r = relay_sub_open(c.pool, &sub, (const struct filter *const *)filters, nfilters, NULL, 0, &cbs, &rs);
	if (r) {
		rc = cli_error(CLI_USAGE, "req", "cannot subscribe: %s", app_strerror(r));
		goto out;
	}
	install_signals();
	unsigned long long timeout = c.timeout_set ? c.timeout_s : stream ? 0 : 10;
	double deadline = timeout ? mono_s() + (double)timeout : 0;
	int timed_out = 0;
	while (!g_stop && !rs.write_error && (stream || !rs.eose_all)) {
		int wait = 250;
		if (deadline) {
			double left = deadline - mono_s();
			if (left <= 0) {
				timed_out = 1;
				break;
			}
			if (left * 1000 < wait)
				wait = (int)(left * 1000) + 1;
		}
		if (relay_pool_service(c.pool, wait) != 0)
			break;
	}
	if (!rs.write_error && fflush(stdout) != 0) {
		rs.write_error = 1;
		rs.write_errno = errno;
	}
	if (rs.write_error && rs.write_errno == EPIPE) {
		rc = CLI_OK; /* the reader went away (`| head`): stop quietly */
	} else if (rs.write_error) {
		rc = cli_error(CLI_USAGE, "req", "cannot write the output: %s", strerror(rs.write_errno));
	} else if (stream) {
		rc = rs.eose_relays ? CLI_OK : rs.closed_relays ? CLI_REFUSED : g_stop || timed_out ? CLI_USAGE : CLI_OK;
		if (!rs.eose_relays && !rs.closed_relays)
			fprintf(stderr, "appliance req: no relay answered\n");
	} else if (timed_out || !rs.eose_all) {
		rc = cli_error(CLI_USAGE, "req", "%s before EOSE from every relay (%zu of %zu answered)",
			       g_stop ? "interrupted" : "timeout", rs.eose_relays, c.nurls);
	} else {
		rc = rs.eose_relays ? CLI_OK : rs.closed_relays ? CLI_REFUSED : CLI_USAGE;
		if (rc == CLI_USAGE)
			fprintf(stderr, "appliance req: no relay could be reached\n");
	}
out:
	finish_common(&c);
	for (size_t i = 0; i < nfilters; i++)
		filter_free(filters[i]);
	free(buf);
	return rc;
}
