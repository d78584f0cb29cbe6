/*
 * appliance submit: one training job end to end, from the client's side
 * (PROTOCOL.md "Job protocol (kinds 5720/6720/7000)"): check the instance
 * against the trust policy, seal and upload local datasets, send the
 * request encrypted to the instance, check and pay the invoice (NIP-47) or
 * show it as a QR code, follow the progress, and verify, save and print the
 * result.
 */
#include <cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <qrencode.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "appliance/cli/cli.h"
#include "appliance/cli/client.h"
#include "appliance/event.h"
#include "appliance/filter.h"
#include "appliance/hash.h"
#include "appliance/hex.h"
#include "appliance/json.h"
#include "appliance/keys.h"
#include "appliance/nec.h"
#include "appliance/nip19.h"
#include "appliance/nip44.h"
#include "appliance/sealed.h"
#include "billing/bolt11.h"
#include "billing/nwc.h"
#include "enclave/train/train.h"

#define SUBMIT_MAX_DATA 8                 /* --data per job (the instance default max_datasets) */
#define SUBMIT_MAX_PARAMS 32              /* model parameters */
#define SUBMIT_URL_MAX 2048               /* bytes of a dataset URL (PROTOCOL.md) */
#define SUBMIT_FILE_MAX (16ULL << 30)     /* bytes of a local dataset (the CSV parser's cap) */
#define SUBMIT_TIMEOUT_DEFAULT 1800       /* seconds for the whole job */
#define SUBMIT_FIND_TIMEOUT 10            /* seconds to find the instance's announcement */
#define SUBMIT_FEEDBACK_WAIT 60           /* seconds for the instance's first answer */
#define SUBMIT_PUBLISH_WAIT 15            /* seconds for the relays to accept the request */
#define SUBMIT_QUEUE 64                   /* events waiting to be handled */
#define SUBMIT_UPLOAD_TIMEOUT 300         /* seconds for one upload */
#define BLOB_ENV "APPLIANCE_BLOB_STORE"
#define BAR_WIDTH 30

int cli_nwc_open(struct nwc_uri **u, struct nwc_client **c, const char *cmd, const char *nwc_file,
		 const struct nwc_client_opts *o);
int cli_dataset_read_key(uint8_t key[SEALED_KEY_LEN], const char *path);

static const char submit_usage[] =
	"usage: appliance submit --instance NPUB --data URL|FILE [--data ...] --max-price MSAT\n"
	"                        --relay URL [--relay URL ...] [model options] [options]\n"
	"\n"
	"Runs one training job on an instance and verifies what comes back:\n"
	"  1. finds the instance's announcement on the relays and applies the trust policy\n"
	"     (attestation, PCRs, expiration; --trust: maintainers' release signatures; dev\n"
	"     instances only with --allow-dev --root; debug enclaves never);\n"
	"  2. a local FILE is sealed with a fresh key (PROTOCOL.md \"Sealed data format\") and\n"
	"     uploaded with HTTP PUT to the blob store (--blob-store); only the instance gets the\n"
	"     key, inside the encrypted request (dataset_key), with the blob's sha256 as a pin;\n"
	"     URL datasets (https://, http:// for development instances, walrus:BLOBID) are\n"
	"     passed as they are;\n"
	"  3. sends the job request (kind 5720) NIP-44-encrypted to the instance, with --max-price\n"
	"     as the bid;\n"
	"  4. on payment-required checks the invoice (amount = the quoted amount <= --max-price,\n"
	"     not expired, its description names this request) and pays it with the NIP-47 wallet\n"
	"     (--nwc-file FILE or APPLIANCE_NWC, never on the command line), or, without a wallet,\n"
	"     prints the bolt11 and a QR code and waits for the payment;\n"
	"  5. shows the progress; verifies the result (kind 6720): signature, decryption, model\n"
	"     bytes against their sha256, the result digest, the tee_root attestation bound to\n"
	"     this digest with the announced PCRs and the same trust policy; writes model.bin,\n"
	"     result.json, metrics.json, tee_root.json to --out DIR and prints the metrics.\n"
	"Exit status: 0 verified result; 1 refused (trust, invoice, the instance's error, a\n"
	"result that does not verify); 2 usage errors, no relay, wallet or blob store, timeouts.\n"
	"\n"
	"model options (as `appliance train`; checked here before anything is sent):\n"
	"  --model logreg|mlp  --hidden W[,W...]  --activation relu|tanh|sigmoid  --epochs N\n"
	"  --learning-rate X  --batch-size B  --optimizer sgd|adam  --momentum X  --l2 X  --seed S\n"
	"  --validation-split F  --patience N  --threads N  --label-column last|N|NAME\n"
	"\n"
	"options:\n"
	"  --instance NPUB      the instance (npub or hex), e.g. from `appliance discover`\n"
	"  --data URL|FILE      a dataset (CSV, plain or sealed); repeat to pool several (at most 8)\n"
	"  --max-price MSAT     the most you pay; also sent as the bid (a dearer quote is refused)\n"
	"  --nwc-file FILE      a file holding your nostr+walletconnect:// URI (else APPLIANCE_NWC)\n"
	"  --no-wallet          do not pay from a wallet: show the invoice and its QR code\n"
	"  --blob-store URL     HTTP PUT store for local files: the blob goes to URL/<sha256> (or to\n"
	"                       URL with {sha256} replaced) and the instance fetches it from there\n"
	"                       (else APPLIANCE_BLOB_STORE)\n"
	"  --key-file KEYFILE   the key of sealed URL datasets (64 hex digits); local files are then\n"
	"                       sealed with it too (default: a fresh key per job)\n"
	"  --out DIR            where the result goes (default job-<request id prefix>)\n"
	"  --sec-file FILE      your Nostr key (else APPLIANCE_SEC; else a fresh key, saved as\n"
	"                       DIR/client.key so `appliance job` can read the job later)\n";

enum {
	O_INSTANCE = 300, O_DATA, O_MAX_PRICE, O_NWC_FILE, O_NO_WALLET, O_BLOB, O_KEY_FILE, O_OUT, O_SEC_FILE, O_HELP,
	O_P_MODEL, O_P_HIDDEN, O_P_ACT, O_P_EPOCHS, O_P_LR, O_P_BATCH, O_P_OPT, O_P_MOM, O_P_L2, O_P_SEED, O_P_VSPLIT,
	O_P_PATIENCE, O_P_THREADS, O_P_LABEL,
};

static const struct {
	int opt;
	const char *name; /* the job parameter */
} param_opts[] = {
	{O_P_MODEL, "model"},	      {O_P_HIDDEN, "hidden"},	   {O_P_ACT, "activation"},
	{O_P_EPOCHS, "epochs"},	      {O_P_LR, "learning_rate"},   {O_P_BATCH, "batch_size"},
	{O_P_OPT, "optimizer"},	      {O_P_MOM, "momentum"},	   {O_P_L2, "l2"},
	{O_P_SEED, "seed"},	      {O_P_VSPLIT, "validation_split"}, {O_P_PATIENCE, "patience"},
	{O_P_THREADS, "threads"},     {O_P_LABEL, "label_column"},
};

struct dataset_in {
	const char *arg;   /* as given */
	char url[SUBMIT_URL_MAX + 1];
	int local;         /* a local file, uploaded by us */
	uint8_t sha256[32]; /* of the bytes uploaded (local files) */
	uint64_t bytes;
};

struct submit {
	struct cli_client c;
	uint8_t instance[32];
	struct dataset_in data[SUBMIT_MAX_DATA];
	size_t ndata;
	const char *pname[SUBMIT_MAX_PARAMS], *pval[SUBMIT_MAX_PARAMS];
	size_t nparams;
	unsigned long long max_price;
	int have_max_price, no_wallet;
	const char *nwc_file, *blob, *key_file, *outdir, *sec_file;
	char defdir[32];
	int fresh_key;
	struct keypair *kp;
	uint8_t *dskey; /* SEALED_KEY_LEN bytes in sodium_malloc memory */
	int have_dskey;
	struct event *ann;
	struct cli_verdict annv;
	struct nwc_uri *nwc_u;
	struct nwc_client *nwc;
	struct event *req;
	char idhex[65];
	/* the job's progress */
	struct event *queue[SUBMIT_QUEUE];
	size_t nqueue;
	int published, pub_accepted, pub_done;
	char pub_msg[200];
	int invoice_seen, paid, processing, bar_drawn, tty;
	unsigned epoch, epochs;
	char bolt11_seen[96];
	uint64_t invoice_expires_at;
	struct cli_result res;
};

/* ---- output ---- */

/* say: one step line on stderr (human mode only). */
static void say(struct submit *s, const char *step, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(struct submit *s, const char *step, const char *fmt, ...)
{
	va_list ap;
	if (s->c.json)
		return;
	if (s->bar_drawn) {
		fputc('\n', stderr);
		s->bar_drawn = 0;
	}
	fprintf(stderr, "%-11s", step);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* jline: one JSON line on stdout (--json only); w is consumed. */
static void jline(struct submit *s, struct jw *w)
{
	char *out = NULL;
	size_t n = 0;
	if (!s->c.json) {
		jw_free(w);
		return;
	}
	jw_char(w, '}');
	if (jw_finish(w, &out, &n) == 0) {
		printf("%s\n", out);
		fflush(stdout);
	}
	free(out);
}

static void jstart(struct jw *w, const char *step)
{
	jw_init(w, 0);
	jw_char(w, '{');
	jw_key(w, 0, "step");
	jw_cstr(w, step);
}

/* fail: prints the reason (stderr; and the done line with --json) and returns code. */
static int fail(struct submit *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct submit *s, int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (s->bar_drawn) {
		fputc('\n', stderr);
		s->bar_drawn = 0;
	}
	fprintf(stderr, "appliance submit: %s\n", msg);
	if (s->c.json) {
		struct jw w;
		jstart(&w, "done");
		jw_key(&w, 1, "ok");
		jw_raw(&w, "false", 5);
		jw_key(&w, 1, "error");
		jw_cstr(&w, msg);
		jw_key(&w, 1, "request");
		if (s->req)
			jw_cstr(&w, s->idhex);
		else
			jw_raw(&w, "null", 4);
		jline(s, &w);
	}
	return code;
}

static void draw_bar(struct submit *s)
{
	if (s->c.json || !s->tty || !s->epochs)
		return;
	unsigned fill = (unsigned)((uint64_t)s->epoch * BAR_WIDTH / s->epochs);
	fprintf(stderr, "\r%-11s", "training");
	for (unsigned i = 0; i < BAR_WIDTH; i++)
		fputs(i < fill ? "\u2588" : "\u2591", stderr);
	fprintf(stderr, " epoch %u/%u", s->epoch, s->epochs);
	fflush(stderr);
	s->bar_drawn = 1;
}

/*
 * print_qr: the text as a QR code in UTF-8 half blocks (two modules per
 * character cell; light modules drawn, as `qrencode -t UTF8` does, for
 * terminals with a dark background), with a 2-module quiet zone.
 */
static void print_qr(FILE *f, const char *text)
{
	QRcode *q = QRcode_encodeString(text, 0, QR_ECLEVEL_L, QR_MODE_8, 1);
	if (!q) {
		fprintf(f, "(no QR code: %s)\n", strerror(errno));
		return;
	}
	const int m = 2, w = q->width;
	for (int y = -m; y < w + m; y += 2) {
		for (int x = -m; x < w + m; x++) {
			int top = y >= 0 && y < w && x >= 0 && x < w && (q->data[y * w + x] & 1);
			int bot = y + 1 >= 0 && y + 1 < w && x >= 0 && x < w && (q->data[(y + 1) * w + x] & 1);
			fputs(!top && !bot ? "\u2588" : !top ? "\u2580" : !bot ? "\u2584" : " ", f);
		}
		fputc('\n', f);
	}
	QRcode_free(q);
}

/* ---- datasets ---- */

static int is_url(const char *s)
{
	return !strncmp(s, "https://", 8) || !strncmp(s, "http://", 7) || !strncmp(s, "walrus:", 7);
}

/* blob_url: the store URL for a blob of this sha256 (template {sha256} or URL/<sha256>). Returns 0 or -1. */
static int blob_url(char *out, size_t cap, const char *base, const char *shahex)
{
	const char *t = strstr(base, "{sha256}");
	int n;
	if (t)
		n = snprintf(out, cap, "%.*s%s%s", (int)(t - base), base, shahex, t + 8);
	else
		n = snprintf(out, cap, "%s%s%s", base, base[0] && base[strlen(base) - 1] == '/' ? "" : "/", shahex);
	return n > 0 && (size_t)n < cap ? 0 : -1;
}

struct seal_sink {
	FILE *out;
	int err;
};

static int seal_sink_fn(void *arg, const uint8_t *data, size_t len)
{
	struct seal_sink *k = arg;
	if (fwrite(data, 1, len, k->out) != len) {
		k->err = errno;
		return APP_EIO;
	}
	return 0;
}

static size_t put_read(char *buf, size_t size, size_t n, void *arg)
{
	return fread(buf, 1, size * n, (FILE *)arg);
}

static size_t discard(char *d, size_t size, size_t n, void *arg)
{
	(void)d;
	(void)arg;
	return size * n;
}

/* upload: HTTP PUT of f (len bytes) to url. Returns 0 or an exit code (message printed). */
static int upload(struct submit *s, FILE *f, uint64_t len, const char *url)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	long status = 0;
	CURL *h = curl_easy_init();
	if (!h)
		return fail(s, CLI_USAGE, "out of memory");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, put_read);
	curl_easy_setopt(h, CURLOPT_READDATA, f);
	curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)SUBMIT_UPLOAD_TIMEOUT);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "appliance");
	if (s->c.ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, s->c.ca_file);
	CURLcode cr = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	if (cr != CURLE_OK)
		return fail(s, CLI_USAGE, "the blob store %s cannot be reached: %s", url,
			    errbuf[0] ? errbuf : curl_easy_strerror(cr));
	if (status < 200 || status > 299)
		return fail(s, CLI_USAGE, "the blob store refused the upload to %s: HTTP status %ld", url, status);
	return 0;
}

/*
 * prepare_local: seals the file (unless it is sealed already), hashes and
 * uploads the blob; d->url becomes its store URL. Returns 0 or an exit code.
 */
static int prepare_local(struct submit *s, struct dataset_in *d)
{
	FILE *in = NULL, *tmp = NULL, *src;
	uint8_t head[SEALED_MAGIC_LEN], buf[65536];
	struct hash_sha256_ctx *hc = NULL;
	struct stat st;
	int rc = CLI_USAGE, r;
	char shahex[65];
	if (!s->blob) {
		return fail(s, CLI_USAGE,
			    "--data %s is a local file: it needs a blob store the instance can reach (--blob-store URL "
			    "or " BLOB_ENV ")",
			    d->arg);
	}
	if (!(in = fopen(d->arg, "rb")))
		return fail(s, CLI_USAGE, "cannot open %s: %s", d->arg, strerror(errno));
	if (fstat(fileno(in), &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = fail(s, CLI_USAGE, "%s is not a regular file", d->arg);
		goto out;
	}
	if ((uint64_t)st.st_size > SUBMIT_FILE_MAX) {
		rc = fail(s, CLI_USAGE, "%s: %lld bytes, over the %llu-byte limit", d->arg, (long long)st.st_size,
			  SUBMIT_FILE_MAX);
		goto out;
	}
	size_t hn = fread(head, 1, sizeof head, in);
	rewind(in);
	if (sealed_is_sealed(head, hn)) {
		if (!s->key_file) {
			rc = fail(s, CLI_USAGE, "%s is sealed already: give its key with --key-file", d->arg);
			goto out;
		}
		src = in; /* uploaded as it is */
	} else {
		struct seal_sink k = {0, 0};
		if (!(tmp = tmpfile())) {
			rc = fail(s, CLI_USAGE, "cannot create a temporary file: %s", strerror(errno));
			goto out;
		}
		k.out = tmp;
		struct sealed_enc *e = NULL;
		r = sealed_enc_new(&e, s->dskey, 0, NULL, 0, seal_sink_fn, &k);
		while (r == 0) {
			size_t n = fread(buf, 1, sizeof buf, in);
			if (n == 0)
				break;
			r = sealed_enc_update(e, buf, n);
		}
		if (r == 0 && ferror(in))
			r = APP_EIO;
		if (r == 0)
			r = sealed_enc_final(e);
		sealed_enc_free(e);
		if (r == 0 && fflush(tmp) != 0)
			r = APP_EIO;
		if (r) {
			rc = fail(s, CLI_USAGE, "cannot seal %s: %s", d->arg, k.err ? strerror(k.err) : app_strerror(r));
			goto out;
		}
		rewind(tmp);
		src = tmp;
	}
	/* the hash of the bytes as the instance will fetch them */
	if (!(hc = hash_sha256_new())) {
		rc = fail(s, CLI_USAGE, "out of memory");
		goto out;
	}
	d->bytes = 0;
	for (;;) {
		size_t n = fread(buf, 1, sizeof buf, src);
		if (n == 0)
			break;
		hash_sha256_update(hc, buf, n);
		d->bytes += n;
	}
	if (ferror(src)) {
		rc = fail(s, CLI_USAGE, "cannot read %s", d->arg);
		goto out;
	}
	hash_sha256_final(hc, d->sha256);
	hex_encode(shahex, d->sha256, 32);
	if (blob_url(d->url, sizeof d->url, s->blob, shahex) != 0) {
		rc = fail(s, CLI_USAGE, "--blob-store URL too long");
		goto out;
	}
	rewind(src);
	if ((rc = upload(s, src, d->bytes, d->url)) != 0)
		goto out;
	d->local = 1;
	say(s, "dataset", "%s: sealed (%llu bytes, sha256 %.16s..) and uploaded to %s", d->arg,
	    (unsigned long long)d->bytes, shahex, d->url);
	struct jw w;
	jstart(&w, "upload");
	jw_key(&w, 1, "file");
	jw_cstr(&w, d->arg);
	jw_key(&w, 1, "url");
	jw_cstr(&w, d->url);
	jw_key(&w, 1, "sha256");
	jw_cstr(&w, shahex);
	jw_key(&w, 1, "bytes");
	jw_u64(&w, d->bytes);
	jline(s, &w);
	rc = 0;
out:
	sodium_memzero(buf, sizeof buf);
	hash_sha256_free(hc);
	if (tmp)
		fclose(tmp);
	if (in)
		fclose(in);
	return rc;
}

/* ---- the relays ---- */

static void ann_on_event(void *arg, struct event **ev)
{
	struct submit *s = arg;
	if (!s->ann || (*ev)->created_at > s->ann->created_at) {
		event_free(s->ann);
		s->ann = *ev;
		*ev = NULL;
	}
}

static void job_on_event(void *user, uint64_t sub, size_t relay, struct event **ev)
{
	(void)sub;
	(void)relay;
	struct submit *s = user;
	if (s->nqueue == SUBMIT_QUEUE)
		return; /* a flood: dropped (the pool keeps deduplicating) */
	s->queue[s->nqueue++] = *ev;
	*ev = NULL;
}

static void on_published(void *user, uint64_t publish_id, const uint8_t id[32], const struct relay_pub_result *res,
			 size_t n)
{
	(void)publish_id;
	(void)id;
	struct submit *s = user;
	for (size_t i = 0; i < n; i++) {
		if (res[i].status == RELAY_PUB_ACCEPTED)
			s->pub_accepted++;
		else
			snprintf(s->pub_msg, sizeof s->pub_msg, "%s: %s %s", res[i].url, relay_pub_status_name(res[i].status),
				 res[i].message);
	}
	s->pub_done = 1;
}

/* ---- the request ---- */

static void tag2(struct jw *w, int *first, const char *a, const char *b)
{
	jw_raw(w, *first ? "[" : ",[", *first ? 1 : 2);
	*first = 0;
	jw_cstr(w, a);
	jw_char(w, ',');
	jw_cstr(w, b);
	jw_char(w, ']');
}

static void tag3(struct jw *w, int *first, const char *a, const char *b, const char *c)
{
	jw_raw(w, *first ? "[" : ",[", *first ? 1 : 2);
	*first = 0;
	jw_cstr(w, a);
	jw_char(w, ',');
	jw_cstr(w, b);
	jw_char(w, ',');
	jw_cstr(w, c);
	jw_char(w, ']');
}

/* build_request: the signed, private-form 5720 in s->req. Returns 0 or an exit code. */
static int build_request(struct submit *s)
{
	struct jw w;
	char *inner = NULL, *payload = NULL, keyhex[2 * SEALED_KEY_LEN + 1], sha[65], bid[24], inst[65];
	size_t ilen = 0, plen = 0;
	uint8_t ck[32];
	int first = 1, rc = CLI_USAGE, r, all_local = 1, any_local = 0;
	jw_init(&w, NIP44_MAX_PLAINTEXT);
	jw_char(&w, '[');
	for (size_t i = 0; i < s->ndata; i++) {
		tag3(&w, &first, "i", s->data[i].url, "url");
		all_local &= s->data[i].local;
		any_local |= s->data[i].local;
	}
	for (size_t i = 0; i < s->nparams; i++)
		tag3(&w, &first, "param", s->pname[i], s->pval[i]);
	if (s->have_dskey && (any_local || s->key_file)) {
		hex_encode(keyhex, s->dskey, SEALED_KEY_LEN);
		tag3(&w, &first, "param", "dataset_key", keyhex);
	}
	if (all_local)
		for (size_t i = 0; i < s->ndata; i++) {
			hex_encode(sha, s->data[i].sha256, 32);
			tag3(&w, &first, "param", "sha256", sha);
		}
	snprintf(bid, sizeof bid, "%llu", s->max_price);
	tag2(&w, &first, "bid", bid);
	tag2(&w, &first, "output", "application/json");
	jw_char(&w, ']');
	if (jw_finish(&w, &inner, &ilen) != 0) {
		rc = fail(s, CLI_USAGE, "the request is too large (more than %d bytes before encryption)", NIP44_MAX_PLAINTEXT);
		goto out;
	}
	if ((r = nip44_conversation_key(ck, s->kp, s->instance)) != 0 ||
	    (r = nip44_encrypt(&payload, &plen, ck, (const uint8_t *)inner, ilen, NULL)) != 0) {
		rc = fail(s, CLI_USAGE, "cannot encrypt the request: %s", app_strerror(r));
		goto out;
	}
	hex_encode(inst, s->instance, 32);
	if ((r = event_new(&s->req, NEC_KIND_JOB, (uint64_t)time(NULL), payload, plen)) != 0 ||
	    (r = event_add_tagv(s->req, "p", inst, NULL)) != 0 || (r = event_add_tagv(s->req, "encrypted", NULL)) != 0 ||
	    (r = event_sign(s->req, s->kp)) != 0) {
		rc = fail(s, CLI_USAGE, "cannot make the request: %s", app_strerror(r));
		goto out;
	}
	hex_encode(s->idhex, s->req->id, 32);
	rc = 0;
out:
	sodium_memzero(keyhex, sizeof keyhex);
	sodium_memzero(ck, sizeof ck);
	if (inner) {
		sodium_memzero(inner, ilen);
		free(inner);
	}
	free(payload);
	return rc;
}

/* ---- payment ---- */

/* pay: checks the payment-required feedback and pays it (or shows it). Returns 0, or an exit code. */
static int on_payment_required(struct submit *s, const struct event *ev)
{
	size_t pos = 0;
	const struct event_tag *am = event_tag_find(ev, &pos, "amount", 3);
	struct bolt11 *inv = NULL;
	const char *why = NULL;
	char desc[96], ph[65];
	unsigned long long amount;
	uint64_t now = (uint64_t)time(NULL);
	int rc = CLI_REFUSED, r;
	if (!am || cli_parse_u64(&amount, am->v[1], UINT64_MAX) != 0)
		return fail(s, CLI_REFUSED, "payment-required without an [\"amount\", msat, bolt11] tag: not paid");
	if (s->invoice_seen) {
		if (strncmp(s->bolt11_seen, am->v[2], sizeof s->bolt11_seen - 1) == 0)
			return 0; /* the same invoice again (another relay, a replay) */
		return fail(s, CLI_REFUSED, "the instance sent a second, different invoice for this job: not paid");
	}
	s->invoice_seen = 1;
	snprintf(s->bolt11_seen, sizeof s->bolt11_seen, "%s", am->v[2]);
	if ((r = bolt11_decode(&inv, &why, am->v[2], am->len[2])) != 0)
		return fail(s, CLI_REFUSED, "the invoice is invalid: %s (%s): not paid", why ? why : "?", app_errname(r));
	hex_encode(ph, inv->payment_hash, 32);
	snprintf(desc, sizeof desc, "appliance job %s", s->idhex);
	if (!inv->has_amount) {
		rc = fail(s, CLI_REFUSED, "the invoice has no amount: not paid");
	} else if (inv->amount_msat != amount) {
		rc = fail(s, CLI_REFUSED, "the invoice asks %llu msat but the quote says %llu msat: not paid",
			  (unsigned long long)inv->amount_msat, amount);
	} else if (amount > s->max_price) {
		rc = fail(s, CLI_REFUSED, "the quote of %llu msat is above --max-price %llu msat: not paid", amount,
			  s->max_price);
	} else if (bolt11_expired(inv, now)) {
		rc = fail(s, CLI_REFUSED, "the invoice expired at %llu (now %llu): not paid",
			  (unsigned long long)bolt11_expires_at(inv), (unsigned long long)now);
	} else if (bolt11_check_description(inv, desc, strlen(desc)) != 0) {
		rc = fail(s, CLI_REFUSED, "the invoice's description does not name this request (%.16s..): not paid",
			  s->idhex);
	} else {
		rc = 0;
	}
	s->invoice_expires_at = inv ? bolt11_expires_at(inv) : 0;
	uint8_t hash[32];
	memcpy(hash, inv->payment_hash, 32);
	bolt11_free(inv);
	if (rc)
		return rc;
	say(s, "invoice", "%llu msat (--max-price %llu), expires in %llu s; names this request: ok", amount, s->max_price,
	    (unsigned long long)(s->invoice_expires_at > now ? s->invoice_expires_at - now : 0));
	struct jw w;
	jstart(&w, "payment-required");
	jw_key(&w, 1, "amount_msat");
	jw_u64(&w, amount);
	jw_key(&w, 1, "bolt11");
	jw_cstr(&w, am->v[2]);
	jw_key(&w, 1, "payment_hash");
	jw_cstr(&w, ph);
	jw_key(&w, 1, "expires_at");
	jw_u64(&w, s->invoice_expires_at);
	jline(s, &w);
	if (!s->nwc) {
		if (!s->c.json) {
			char *up = malloc(am->len[2] + 11);
			if (up) {
				memcpy(up, "LIGHTNING:", 10);
				for (size_t i = 0; i <= am->len[2]; i++)
					up[10 + i] = (char)(am->v[2][i] >= 'a' && am->v[2][i] <= 'z' ? am->v[2][i] - 32 : am->v[2][i]);
				fprintf(stderr, "\nPay this invoice with any Lightning wallet (%llu msat):\n\n%s\n\n", amount, am->v[2]);
				print_qr(stderr, up);
				fprintf(stderr, "\nwaiting for the payment (the instance starts when it sees it)...\n");
				free(up);
			}
		}
		return 0;
	}
	uint8_t pre[32], h[32];
	uint64_t fees = 0;
	struct nwc_error err;
	memset(&err, 0, sizeof err);
	say(s, "paying", "with your NIP-47 wallet...");
	r = nwc_pay_invoice(s->nwc, pre, &fees, &err, &why, am->v[2]);
	if (r == APP_ETIMEOUT) {
		struct nwc_tx tx;
		say(s, "paying", "no answer from the wallet; looking the payment up (never paying twice)");
		r = nwc_lookup_invoice(s->nwc, &tx, &err, &why, hash);
		if (r == 0) {
			r = nwc_payment_check(&tx, &why, hash, amount);
			if (r == 0 && tx.has_preimage)
				memcpy(pre, tx.preimage, 32);
			else if (r == 0)
				r = APP_EPROTO, why = "settled but the wallet gives no preimage";
			nwc_tx_clear(&tx);
		}
	}
	if (r == APP_EREFUSED)
		return fail(s, CLI_REFUSED, "payment failed: the wallet answered %s: %s", err.code_text, err.message);
	if (r)
		return fail(s, r == APP_ETIMEOUT || r == APP_ECONN ? CLI_USAGE : CLI_REFUSED,
			    "payment failed: %s (%s); check with `appliance wallet lookup` before paying again",
			    why ? why : app_strerror(r), app_errname(r));
	hash_sha256(h, pre, 32);
	if (crypto_verify_32(h, hash) != 0)
		return fail(s, CLI_REFUSED, "the wallet's preimage does not hash to the invoice's payment_hash");
	s->paid = 1;
	say(s, "paid", "%llu msat (fees %llu msat); the preimage hashes to the payment_hash %.16s..", amount,
	    (unsigned long long)fees, ph);
	jstart(&w, "paid");
	jw_key(&w, 1, "amount_msat");
	jw_u64(&w, amount);
	jw_key(&w, 1, "fees_paid_msat");
	jw_u64(&w, fees);
	jw_key(&w, 1, "payment_hash");
	jw_cstr(&w, ph);
	jline(s, &w);
	return 0;
}

/* feedback_text: the status and text of a 7000 (decrypting the private form) into st/text. */
static void feedback_text(struct submit *s, const struct event *ev, char *st, size_t stcap, char *text, size_t cap)
{
	size_t pos = 0;
	const struct event_tag *t = event_tag_find(ev, &pos, "status", 2);
	uint8_t ck[32], *pt = NULL;
	size_t ptl = 0;
	cJSON *j = NULL;
	snprintf(st, stcap, "%s", t ? t->v[1] : "?");
	text[0] = 0;
	const char *src = t && t->n >= 3 ? t->v[2] : NULL;
	pos = 0;
	if (event_tag_find(ev, &pos, "encrypted", 1) && nip44_conversation_key(ck, s->kp, ev->pubkey) == 0 &&
	    nip44_decrypt(&pt, &ptl, ck, ev->content, ev->content_len) == 0 &&
	    json_parse(&j, (const char *)pt, ptl, NIP44_MAX_PLAINTEXT, 4) == 0 && cJSON_IsArray(j)) {
		const cJSON *x;
		cJSON_ArrayForEach(x, j)
		{
			const cJSON *a = cJSON_GetArrayItem(x, 0), *c = cJSON_GetArrayItem(x, 2);
			if (cJSON_IsString(a) && !strcmp(a->valuestring, "status") && cJSON_IsString(c))
				src = c->valuestring;
		}
	}
	if (src) {
		size_t k = 0;
		for (const unsigned char *p = (const unsigned char *)src; *p && k + 1 < cap; p++)
			text[k++] = (char)(*p >= 0x20 && *p != 0x7f ? *p : '?');
		text[k] = 0;
	}
	for (char *p = st; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
	cJSON_Delete(j);
	if (pt) {
		sodium_memzero(pt, ptl);
		free(pt);
	}
	sodium_memzero(ck, sizeof ck);
}

/* parse_epoch: "training: epoch K/N" (the instance's progress text) into k, n. Returns 0 or -1. */
static int parse_epoch(const char *text, unsigned *k, unsigned *n)
{
	static const char pre[] = "training: epoch ";
	char a[16], b[16];
	unsigned long long x, y;
	if (strncmp(text, pre, sizeof pre - 1) != 0)
		return -1;
	const char *p = text + sizeof pre - 1, *slash = strchr(p, '/');
	if (!slash || (size_t)(slash - p) >= sizeof a || strlen(slash + 1) >= sizeof b)
		return -1;
	memcpy(a, p, (size_t)(slash - p));
	a[slash - p] = 0;
	snprintf(b, sizeof b, "%s", slash + 1);
	if (cli_parse_u64(&x, a, TRAIN_EPOCHS_MAX) != 0 || cli_parse_u64(&y, b, TRAIN_EPOCHS_MAX) != 0 || y == 0 || x > y)
		return -1;
	*k = (unsigned)x;
	*n = (unsigned)y;
	return 0;
}

/* ---- the result ---- */

static int on_result(struct submit *s, const struct event *ev)
{
	char why[CLI_REASON_MAX + 128];
	const uint8_t(*sha)[32] = NULL;
	uint8_t known[SUBMIT_MAX_DATA], shas[SUBMIT_MAX_DATA][32];
	for (size_t i = 0; i < s->ndata; i++) {
		known[i] = (uint8_t)s->data[i].local;
		memcpy(shas[i], s->data[i].sha256, 32);
	}
	sha = (const uint8_t(*)[32])shas;
	struct cli_result_expect ex = {.request_id = s->req->id,
				       .instance = s->instance,
				       .client = s->kp,
				       .pcrs = s->annv.doc,
				       .repo = event_tag_value(s->ann, "r"),
				       .ann = s->ann,
				       .ndatasets = s->ndata,
				       .ds_sha256 = sha,
				       .ds_known = known,
				       .at = 0};
	if (s->bar_drawn && s->epochs) {
		s->epoch = s->epochs; /* the last epochs may not have been reported */
		draw_bar(s);
	}
	int r = cli_result_verify(&s->c, &s->res, why, sizeof why, ev, &ex);
	if (r == APP_ENOMEM)
		return fail(s, CLI_USAGE, "out of memory");
	if (r)
		return fail(s, r == APP_ECONN ? CLI_USAGE : CLI_REFUSED, "the result does not verify: %s", why);
	char rid[65];
	hex_encode(rid, ev->id, 32);
	say(s, "result", "%.16s..: signature, decryption, model sha256, result digest, attestation: ok", rid);
	return cli_result_save("submit", s->outdir, &s->res, ev);
}

/* write_file: data[0..len) into a new or truncated file of this mode. Returns 0, or -1 with errno. */
static int write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode), e = 0;
	if (fd < 0)
		return -1;
	const char *p = data;
	while (len && !e) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			e = n < 0 ? errno : EIO;
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	if (close(fd) != 0 && !e)
		e = errno;
	errno = e;
	return e ? -1 : 0;
}

/*
 * save_request: what `appliance job` needs later, in the --out directory:
 * request.json and, when submit made the key, client.key (0600, hex).
 * Returns 0 or an exit code.
 */
static int save_request(struct submit *s)
{
	char *rj = NULL, path[4096], hx[65];
	size_t rl = 0;
	uint8_t sec[32];
	int rc = CLI_USAGE;
	if (event_to_json(&rj, &rl, s->req) != 0) {
		rc = fail(s, CLI_USAGE, "out of memory");
		goto out;
	}
	rj[rl] = '\n';
	if ((size_t)snprintf(path, sizeof path, "%s/request.json", s->outdir) >= sizeof path ||
	    write_file(path, rj, rl + 1, 0644) != 0) {
		rc = fail(s, CLI_USAGE, "cannot write %s/request.json: %s", s->outdir, strerror(errno));
		goto out;
	}
	if (s->fresh_key) {
		keys_secret(s->kp, sec);
		hex_encode(hx, sec, 32);
		hx[64] = '\n';
		if ((size_t)snprintf(path, sizeof path, "%s/client.key", s->outdir) >= sizeof path ||
		    write_file(path, hx, 65, 0600) != 0) {
			rc = fail(s, CLI_USAGE, "cannot write %s/client.key (needed to read the job later): %s", s->outdir,
				  strerror(errno));
			goto out;
		}
	}
	rc = 0;
out:
	sodium_memzero(sec, sizeof sec);
	sodium_memzero(hx, sizeof hx);
	free(rj);
	return rc;
}

/* ---- main ---- */

static int parse_args(struct submit *s, int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_CLIENT_LONGOPTS,
		{"instance", required_argument, 0, O_INSTANCE},
		{"data", required_argument, 0, O_DATA},
		{"max-price", required_argument, 0, O_MAX_PRICE},
		{"nwc-file", required_argument, 0, O_NWC_FILE},
		{"no-wallet", no_argument, 0, O_NO_WALLET},
		{"blob-store", required_argument, 0, O_BLOB},
		{"key-file", required_argument, 0, O_KEY_FILE},
		{"out", required_argument, 0, O_OUT},
		{"sec-file", required_argument, 0, O_SEC_FILE},
		{"model", required_argument, 0, O_P_MODEL},
		{"hidden", required_argument, 0, O_P_HIDDEN},
		{"activation", required_argument, 0, O_P_ACT},
		{"epochs", required_argument, 0, O_P_EPOCHS},
		{"learning-rate", required_argument, 0, O_P_LR},
		{"batch-size", required_argument, 0, O_P_BATCH},
		{"optimizer", required_argument, 0, O_P_OPT},
		{"momentum", required_argument, 0, O_P_MOM},
		{"l2", required_argument, 0, O_P_L2},
		{"seed", required_argument, 0, O_P_SEED},
		{"validation-split", required_argument, 0, O_P_VSPLIT},
		{"patience", required_argument, 0, O_P_PATIENCE},
		{"threads", required_argument, 0, O_P_THREADS},
		{"label-column", required_argument, 0, O_P_LABEL},
		{"help", no_argument, 0, O_HELP},
		{0},
	};
	struct train_params tp;
	struct train_err te;
	int have_inst = 0, opt;
	train_params_default(&tp);
	memset(&te, 0, sizeof te);
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		const char *pn = NULL;
		for (size_t i = 0; i < sizeof param_opts / sizeof param_opts[0]; i++)
			if (param_opts[i].opt == opt)
				pn = param_opts[i].name;
		if (pn) {
			for (size_t i = 0; i < s->nparams; i++)
				if (!strcmp(s->pname[i], pn))
					return cli_error(CLI_USAGE, "submit", "%s: given twice", pn);
			if (s->nparams == SUBMIT_MAX_PARAMS)
				return cli_error(CLI_USAGE, "submit", "too many parameters");
			if (strcmp(pn, "label_column") != 0) {
				if (train_params_set(&tp, pn, optarg, &te) != 0)
					return cli_error(CLI_USAGE, "submit", "%s", te.msg);
			} else if (!optarg[0] || strlen(optarg) > 256) {
				return cli_error(CLI_USAGE, "submit",
						 "label_column: 'last', a 0-based column index or a header name of 1..256 bytes");
			}
			s->pname[s->nparams] = pn;
			s->pval[s->nparams++] = optarg;
			continue;
		}
		switch (opt) {
		case 'h':
		case O_HELP:
			fputs(submit_usage, stdout);
			fputs(cli_client_help, stdout);
			return -1;
		case O_INSTANCE:
			if (cli_parse_pubkey(s->instance, optarg) != 0)
				return cli_error(CLI_USAGE, "submit", "--instance takes an npub or 64 hex digits");
			have_inst = 1;
			continue;
		case O_DATA:
			if (s->ndata == SUBMIT_MAX_DATA)
				return cli_error(CLI_USAGE, "submit", "at most %d --data", SUBMIT_MAX_DATA);
			if (is_url(optarg) && strlen(optarg) > SUBMIT_URL_MAX)
				return cli_error(CLI_USAGE, "submit", "--data URL longer than %d bytes", SUBMIT_URL_MAX);
			s->data[s->ndata].arg = optarg;
			if (is_url(optarg))
				snprintf(s->data[s->ndata].url, sizeof s->data[s->ndata].url, "%s", optarg);
			s->ndata++;
			continue;
		case O_MAX_PRICE:
			if (cli_parse_u64(&s->max_price, optarg, UINT64_MAX) != 0)
				return cli_error(CLI_USAGE, "submit", "--max-price takes msat (a decimal integer)");
			s->have_max_price = 1;
			continue;
		case O_NWC_FILE: s->nwc_file = optarg; continue;
		case O_NO_WALLET: s->no_wallet = 1; continue;
		case O_BLOB: s->blob = optarg; continue;
		case O_KEY_FILE: s->key_file = optarg; continue;
		case O_OUT: s->outdir = optarg; continue;
		case O_SEC_FILE: s->sec_file = optarg; continue;
		}
		int h = cli_client_opt(&s->c, opt, optarg);
		if (h == -1) {
			fputs(submit_usage, stderr);
			return CLI_USAGE;
		}
		if (h)
			return h;
	}
	if (optind != argc)
		return cli_error(CLI_USAGE, "submit", "unexpected argument '%s' (see --help)", argv[optind]);
	if (!have_inst || !s->ndata || !s->have_max_price)
		return cli_error(CLI_USAGE, "submit", "--instance, --data and --max-price are required (see --help)");
	if (train_params_check(&tp, &te) != 0)
		return cli_error(CLI_USAGE, "submit", "%s", te.msg);
	if (s->nwc_file && s->no_wallet)
		return cli_error(CLI_USAGE, "submit", "--nwc-file and --no-wallet exclude each other");
	if (!s->blob)
		s->blob = getenv(BLOB_ENV);
	s->epochs = tp.epochs;
	return 0;
}

/* find_instance: the announcement, checked against the policy. Returns 0 or an exit code. */
static int find_instance(struct submit *s)
{
	struct filter *f = NULL;
	char npub[32], p0[2 * ATTEST_PCR_LEN + 1];
	int r;
	if ((r = filter_new(&f)) != 0 || (r = filter_add_kind(f, NEC_KIND_ANNOUNCEMENT)) != 0 ||
	    (r = filter_add_author(f, s->instance)) != 0) {
		filter_free(f);
		return fail(s, CLI_USAGE, "%s", app_strerror(r));
	}
	const struct filter *fs[1] = {f};
	r = cli_fetch(&s->c, fs, 1, SUBMIT_FIND_TIMEOUT * 1000u, ann_on_event, s);
	filter_free(f);
	cli_npub_short(npub, sizeof npub, s->instance);
	if (r == APP_ECONN)
		return fail(s, CLI_USAGE, "no relay could be reached");
	if (r == APP_ECANCELED)
		return fail(s, CLI_USAGE, "interrupted");
	if (!s->ann)
		return fail(s, CLI_USAGE, "no announcement of instance %s on these relays (offline, or on other relays?)",
			    npub);
	if ((r = cli_client_load_releases(&s->c)) != 0 && r != APP_ECONN && r != APP_ECANCELED)
		return fail(s, CLI_USAGE, "%s", app_strerror(r));
	r = cli_check_announcement(&s->c, s->ann, &s->annv);
	if (r == APP_ENOMEM)
		return fail(s, CLI_USAGE, "out of memory");
	if (r)
		return fail(s, CLI_REFUSED, "instance %s refused: %s", npub, s->annv.reason);
	hex_encode(p0, s->annv.doc->pcrs[0], ATTEST_PCR_LEN);
	const char *name = event_tag_value(s->ann, "name"), *v = event_tag_value(s->ann, "v");
	char sname[40], sv[20];
	snprintf(sname, sizeof sname, "%s", name ? name : "?");
	snprintf(sv, sizeof sv, "%s", v ? v : "?");
	for (char *p = sname; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
	for (char *p = sv; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			*p = '?';
	say(s, "instance", "%s \"%s\" v%s: attestation ok (%s root), PCR0 %.16s..%s", npub, sname, sv,
	    s->annv.dev ? "development" : "AWS Nitro", p0,
	    s->c.ntrusted ? ", release signed by trusted maintainers" : " (no --trust: build not pinned)");
	struct jw w;
	jstart(&w, "instance");
	jw_key(&w, 1, "pubkey");
	jw_hex(&w, s->instance, 32);
	jw_key(&w, 1, "name");
	jw_cstr(&w, sname);
	jw_key(&w, 1, "pcr0");
	jw_cstr(&w, p0);
	jw_key(&w, 1, "dev");
	jw_raw(&w, s->annv.dev ? "true" : "false", s->annv.dev ? 4 : 5);
	jw_key(&w, 1, "trusted_releases");
	jw_u64(&w, s->annv.nvalid);
	jline(s, &w);
	return 0;
}

/* run_job: publish, then follow the job to its result. Returns 0 or an exit code. */
static int run_job(struct submit *s)
{
	struct filter *f = NULL;
	uint64_t sub = 0;
	int r, rc = CLI_USAGE, subbed = 0;
	unsigned long long total = s->c.timeout_s ? s->c.timeout_s : SUBMIT_TIMEOUT_DEFAULT;
	if ((r = filter_new(&f)) != 0 || (r = filter_add_kind(f, 7000)) != 0 || (r = filter_add_kind(f, 6720)) != 0 ||
	    (r = filter_add_tag_value(f, 'e', s->idhex)) != 0 || (r = filter_add_author(f, s->instance)) != 0) {
		rc = fail(s, CLI_USAGE, "%s", app_strerror(r));
		goto out;
	}
	const struct filter *fs[1] = {f};
	struct relay_sub_cbs cbs = {job_on_event, NULL, NULL};
	if ((r = relay_sub_open(s->c.pool, &sub, fs, 1, NULL, 0, &cbs, s)) != 0) {
		rc = fail(s, CLI_USAGE, "cannot subscribe: %s", app_strerror(r));
		goto out;
	}
	subbed = 1;
	if ((r = relay_publish(s->c.pool, NULL, s->req, NULL, 0, on_published, s)) != 0) {
		rc = fail(s, CLI_USAGE, "cannot publish: %s", app_strerror(r));
		goto out;
	}
	uint64_t start = cli_mono_ms(), deadline = start + total * 1000u;
	uint64_t publish_deadline = start + SUBMIT_PUBLISH_WAIT * 1000u;
	uint64_t feedback_deadline = start + SUBMIT_FEEDBACK_WAIT * 1000u;
	int any_feedback = 0;
	for (;;) {
		if (cli_interrupted()) {
			rc = fail(s, CLI_USAGE, "interrupted; the job may go on: appliance job status %s --relay ...", s->idhex);
			goto out;
		}
		if ((r = relay_pool_service(s->c.pool, 200)) != 0) {
			rc = fail(s, CLI_USAGE, "relay pool: %s", app_strerror(r));
			goto out;
		}
		uint64_t now = cli_mono_ms();
		if (!s->published && s->pub_done) {
			s->published = 1;
			if (!s->pub_accepted) {
				rc = fail(s, CLI_USAGE, "no relay accepted the request (%s)", s->pub_msg[0] ? s->pub_msg : "?");
				goto out;
			}
			say(s, "request", "%s sent to %d relay%s, encrypted to the instance (NIP-44)", s->idhex,
			    s->pub_accepted, s->pub_accepted == 1 ? "" : "s");
			struct jw w;
			jstart(&w, "request");
			jw_key(&w, 1, "id");
			jw_cstr(&w, s->idhex);
			jw_key(&w, 1, "relays");
			jw_u64(&w, (uint64_t)s->pub_accepted);
			jline(s, &w);
		}
		if (!s->published && now > publish_deadline) {
			rc = fail(s, CLI_USAGE, "no relay answered the publication of the request within %d s",
				  SUBMIT_PUBLISH_WAIT);
			goto out;
		}
		for (size_t qi = 0; qi < s->nqueue; qi++) {
			struct event *ev = s->queue[qi];
			s->queue[qi] = NULL;
			any_feedback = 1;
			if (ev->kind == 6720) {
				rc = on_result(s, ev);
				if (rc == 0) {
					char *j = NULL;
					if (s->c.json) {
						j = cli_result_json(&s->res, ev, s->outdir);
						if (j)
							printf("%s\n{\"step\":\"done\",\"ok\":true,\"request\":\"%s\"}\n", j, s->idhex);
						free(j);
					} else {
						fputc('\n', stderr);
						cli_result_print(&s->res, ev, s->outdir);
					}
				}
				event_free(ev);
				for (size_t k = qi + 1; k < s->nqueue; k++)
					event_free(s->queue[k]);
				s->nqueue = 0;
				goto out;
			}
			char st[32], text[600];
			feedback_text(s, ev, st, sizeof st, text, sizeof text);
			if (!strcmp(st, "payment-required")) {
				rc = on_payment_required(s, ev);
			} else if (!strcmp(st, "error")) {
				rc = fail(s, CLI_REFUSED, "the instance refused the job: %s", text[0] ? text : "(no text)");
			} else if (!strcmp(st, "processing")) {
				unsigned k, n;
				struct jw w;
				if (parse_epoch(text, &k, &n) == 0) {
					s->epoch = k;
					s->epochs = n;
					if (s->tty && !s->c.json)
						draw_bar(s);
					else
						say(s, "processing", "%s", text);
				} else {
					if (!s->processing && s->invoice_seen && !s->paid)
						say(s, "paid", "the instance saw the payment");
					say(s, "processing", "%s", text);
				}
				s->processing = 1;
				jstart(&w, "processing");
				jw_key(&w, 1, "text");
				jw_cstr(&w, text);
				jline(s, &w);
				rc = 0;
			} else if (!strcmp(st, "success")) {
				say(s, "success", "%s", text);
				rc = 0;
			} else {
				rc = 0; /* an unknown status: not ours to act on */
			}
			event_free(ev);
			if (rc) {
				for (size_t k = qi + 1; k < s->nqueue; k++)
					event_free(s->queue[k]);
				s->nqueue = 0;
				goto out;
			}
		}
		s->nqueue = 0;
		now = cli_mono_ms();
		if (s->published && !any_feedback && now > feedback_deadline) {
			rc = fail(s, CLI_USAGE,
				  "the instance did not answer within %d s (offline, or not reading these relays?); "
				  "request %s",
				  SUBMIT_FEEDBACK_WAIT, s->idhex);
			goto out;
		}
		if (s->invoice_seen && !s->processing && s->invoice_expires_at &&
		    (uint64_t)time(NULL) > s->invoice_expires_at + 30) {
			rc = fail(s, CLI_REFUSED, "the invoice expired before the instance saw a payment");
			goto out;
		}
		if (now > deadline) {
			rc = fail(s, CLI_USAGE,
				  "no result within %llu s; the job may still finish: appliance job status %s --relay ...",
				  total, s->idhex);
			goto out;
		}
	}
out:
	if (subbed && relay_sub_close(s->c.pool, sub) != 0) {
		/* gone already */
	}
	filter_free(f);
	return rc;
}

int cmd_submit(int argc, char **argv)
{
	struct submit *s = calloc(1, sizeof *s);
	int rc = CLI_USAGE;
	if (!s)
		return cli_error(CLI_USAGE, "submit", "out of memory");
	cli_client_init(&s->c, "submit");
	if (sodium_init() < 0 || !(s->dskey = sodium_malloc(SEALED_KEY_LEN))) {
		free(s);
		return cli_error(CLI_USAGE, "submit", "cannot initialise libsodium");
	}
	if ((rc = parse_args(s, argc, argv)) != 0) {
		if (rc < 0)
			rc = CLI_OK; /* --help */
		goto out;
	}
	s->tty = isatty(STDERR_FILENO);
	/* the client key: --sec-file, APPLIANCE_SEC, or a fresh one */
	if (s->sec_file || getenv(KEYS_ENV_SECRET)) {
		if ((rc = cli_load_secret(&s->kp, s->sec_file)) != 0)
			goto out;
	} else {
		if (keys_generate(&s->kp) != 0) {
			rc = cli_error(CLI_USAGE, "submit", "cannot make a key");
			goto out;
		}
		s->fresh_key = 1;
	}
	/* the dataset key: --key-file, or fresh when a local file is to be sealed */
	if (s->key_file) {
		if ((rc = cli_dataset_read_key(s->dskey, s->key_file)) != 0)
			goto out;
		s->have_dskey = 1;
	} else {
		for (size_t i = 0; i < s->ndata; i++)
			if (!is_url(s->data[i].arg) && !s->have_dskey) {
				if (sealed_key_generate(s->dskey) != 0) {
					rc = cli_error(CLI_USAGE, "submit", "cannot make a dataset key");
					goto out;
				}
				s->have_dskey = 1;
			}
	}
	if ((rc = cli_client_start(&s->c)) != 0)
		goto out;
	if ((rc = find_instance(s)) != 0)
		goto out;
	/* the wallet, before anything is sent: a job we cannot pay is not requested */
	if (!s->no_wallet && (s->nwc_file || getenv(NWC_ENV_URI))) {
		struct nwc_client_opts co;
		nwc_client_opts_default(&co);
		co.ca_file = s->c.ca_file;
		co.timeout_ms = 30000;
		if ((rc = cli_nwc_open(&s->nwc_u, &s->nwc, "submit", s->nwc_file, &co)) != 0)
			goto out;
		say(s, "wallet", "connected (NIP-47, %s)", nwc_client_encryption(s->nwc) == NWC_NIP44 ? "nip44_v2" : "nip04");
	} else {
		say(s, "wallet", "none: the invoice will be shown as text and QR code");
	}
	for (size_t i = 0; i < s->ndata; i++)
		if (!is_url(s->data[i].arg) && (rc = prepare_local(s, &s->data[i])) != 0)
			goto out;
	if ((rc = build_request(s)) != 0)
		goto out;
	if (!s->outdir) {
		snprintf(s->defdir, sizeof s->defdir, "job-%.12s", s->idhex);
		s->outdir = s->defdir;
	}
	if (mkdir(s->outdir, 0700) != 0 && errno != EEXIST) {
		rc = fail(s, CLI_USAGE, "cannot create %s: %s", s->outdir, strerror(errno));
		goto out;
	}
	if ((rc = save_request(s)) != 0)
		goto out;
	rc = run_job(s);
out:
	for (size_t i = 0; i < s->nqueue; i++)
		event_free(s->queue[i]);
	cli_result_free(&s->res);
	cli_verdict_clear(&s->annv);
	event_free(s->ann);
	event_free(s->req);
	nwc_client_free(s->nwc);
	nwc_uri_free(s->nwc_u);
	keys_free(s->kp);
	sodium_free(s->dskey); /* wipes */
	cli_client_free(&s->c);
	free(s);
	return rc;
}
