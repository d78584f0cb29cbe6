/*
 * sjournal.c: the sealed journal, its stores and its checkpoints (sjournal.h).
 */
#include "enclave/runtime/sjournal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "appliance/hash.h"
#include "appliance/hex.h"
#include "appliance/keys.h"
#include "appliance/ksrpc.h"
#include "appliance/log.h"
#include "appliance/sealed.h"
#include "enclave/runtime/parentlink.h"

#define AD_LEN (sizeof SJ_AD_DOMAIN - 1 + SJ_HEADER_LEN - 4)
#define DATA_TEXT_MAX 256 /* "ajk1 " + 32 + 1 + 64 + 1 + 20 + 1 + 64 */
#define PUT_ATTEMPTS 5
#define DIR_PATH_MAX 4096

/* ---- record format ---- */

void sj_record_name(char out[SJ_NAME_LEN + 1], uint64_t seq)
{
	snprintf(out, SJ_NAME_LEN + 1, SJ_NAME_PREFIX "%020" PRIu64, seq);
}

/* name_seq: the sequence number of a record name, or 0 when it is not one. */
static uint64_t name_seq(const char *name)
{
	if (strlen(name) != SJ_NAME_LEN || strncmp(name, SJ_NAME_PREFIX, SJ_NAME_PREFIX_LEN) != 0)
		return 0;
	uint64_t v = 0;
	for (size_t i = SJ_NAME_PREFIX_LEN; i < SJ_NAME_LEN; i++) {
		if (name[i] < '0' || name[i] > '9')
			return 0;
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(name[i] - '0'), &v))
			return 0;
	}
	return v;
}

static int line_ok(const char *s, size_t len)
{
	if (len == 0 || len > JOURNAL_RECORD_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

static void put_u64be(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_u64be(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void make_ad(uint8_t ad[AD_LEN], const uint8_t *hdr /* SJ_HEADER_LEN */)
{
	memcpy(ad, SJ_AD_DOMAIN, sizeof SJ_AD_DOMAIN - 1);
	memcpy(ad + sizeof SJ_AD_DOMAIN - 1, hdr + 4, SJ_HEADER_LEN - 4);
}

int sj_record_parse(struct sj_record *out, const uint8_t *blob, size_t len)
{
	memset(out, 0, sizeof *out);
	if (len > SJ_BLOB_MAX)
		return APP_ETOOBIG;
	if (len < SJ_HEADER_LEN + SEALED_HEADER_LEN + SEALED_ABYTES || memcmp(blob, SJ_MAGIC, 4) != 0)
		return APP_EPARSE;
	memcpy(out->instance, blob + 4, SJ_INSTANCE_LEN);
	out->seq = get_u64be(blob + 20);
	memcpy(out->prev, blob + 28, 32);
	if (out->seq == 0)
		return APP_EPARSE;
	out->sealed = blob + SJ_HEADER_LEN;
	out->sealed_len = len - SJ_HEADER_LEN;
	return 0;
}

int sj_record_open(char **line, size_t *len, const struct sj_record *rec, const uint8_t key[32])
{
	uint8_t hdr[SJ_HEADER_LEN], ad[AD_LEN];
	uint8_t *pt = NULL;
	size_t ptl = 0;
	*line = NULL;
	*len = 0;
	memcpy(hdr, SJ_MAGIC, 4);
	memcpy(hdr + 4, rec->instance, SJ_INSTANCE_LEN);
	put_u64be(hdr + 20, rec->seq);
	memcpy(hdr + 28, rec->prev, 32);
	make_ad(ad, hdr);
	int r = sealed_open_mem(&pt, &ptl, rec->sealed, rec->sealed_len, key, ad, sizeof ad, JOURNAL_RECORD_MAX);
	if (r) /* modified, truncated, extended, another key or context: all the same to us */
		return r == APP_ENOMEM ? r : APP_EBADMAC;
	if (!line_ok((const char *)pt, ptl)) {
		sodium_memzero(pt, ptl);
		free(pt);
		return APP_EPARSE;
	}
	char *s = realloc(pt, ptl + 1);
	if (!s) {
		sodium_memzero(pt, ptl);
		free(pt);
		return APP_ENOMEM;
	}
	s[ptl] = 0;
	*line = s;
	*len = ptl;
	return 0;
}

int sj_record_seal(uint8_t **blob, size_t *blob_len, const uint8_t instance[SJ_INSTANCE_LEN], uint64_t seq,
		   const uint8_t prev[32], const uint8_t key[32], const char *line, size_t len)
{
	uint8_t hdr[SJ_HEADER_LEN], ad[AD_LEN];
	uint8_t *sealed = NULL;
	size_t sl = 0;
	*blob = NULL;
	*blob_len = 0;
	if (seq == 0 || !line_ok(line, len))
		return APP_EINVAL;
	memcpy(hdr, SJ_MAGIC, 4);
	memcpy(hdr + 4, instance, SJ_INSTANCE_LEN);
	put_u64be(hdr + 20, seq);
	memcpy(hdr + 28, prev, 32);
	make_ad(ad, hdr);
	int r = sealed_seal_mem(&sealed, &sl, (const uint8_t *)line, len, key, 0, ad, sizeof ad);
	if (r)
		return r;
	if (sl > SJ_BLOB_MAX - SJ_HEADER_LEN) {
		free(sealed);
		return APP_EINVAL;
	}
	uint8_t *b = malloc(SJ_HEADER_LEN + sl);
	if (!b) {
		free(sealed);
		return APP_ENOMEM;
	}
	memcpy(b, hdr, SJ_HEADER_LEN);
	memcpy(b + SJ_HEADER_LEN, sealed, sl);
	free(sealed);
	*blob = b;
	*blob_len = SJ_HEADER_LEN + sl;
	return 0;
}

int sjournal_money_record(const char *rec, size_t len)
{
	/* "L1 SEQ AT TYPE ..." */
	if (len < 3 || memcmp(rec, "L1 ", 3) != 0)
		return 0;
	size_t i = 3, field = 1;
	while (i < len && field < 3) {
		if (rec[i++] == ' ')
			field++;
	}
	if (field != 3)
		return 0;
	static const char *const types[] = {"paid ", "debit ", "credit "};
	for (size_t k = 0; k < 3; k++) {
		size_t tl = strlen(types[k]);
		if (len - i >= tl && memcmp(rec + i, types[k], tl) == 0)
			return 1;
	}
	return 0;
}

/* ---- directory store ---- */

struct dir_store {
	char path[DIR_PATH_MAX];
	int dfd;
};

static int dir_put(void *arg, const char *name, const uint8_t *data, size_t len)
{
	struct dir_store *d = arg;
	char tmp[64];
	snprintf(tmp, sizeof tmp, ".%s.%ld.tmp", name, (long)getpid());
	(void)unlinkat(d->dfd, tmp, 0);
	int fd = openat(d->dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return APP_EIO;
	size_t off = 0;
	int r = 0;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			r = APP_EIO;
			break;
		}
		off += (size_t)w;
	}
	if (r == 0 && fsync(fd) != 0)
		r = APP_EIO;
	if (close(fd) != 0 && r == 0)
		r = APP_EIO;
	if (r == 0 && linkat(d->dfd, tmp, d->dfd, name, 0) != 0)
		r = errno == EEXIST ? APP_EEXIST : APP_EIO;
	(void)unlinkat(d->dfd, tmp, 0);
	if (r == 0 && fsync(d->dfd) != 0)
		r = APP_EIO;
	return r;
}

static int dir_get(void *arg, const char *name, uint8_t **data, size_t *len, size_t max)
{
	struct dir_store *d = arg;
	struct stat st;
	*data = NULL;
	*len = 0;
	int fd = openat(d->dfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? APP_ENOTFOUND : APP_EIO;
	int r = APP_EIO;
	uint8_t *buf = NULL;
	if (fstat(fd, &st) != 0)
		goto out;
	if ((uint64_t)st.st_size > max) {
		r = APP_ETOOBIG;
		goto out;
	}
	size_t size = (size_t)st.st_size;
	if (!(buf = malloc(size ? size : 1))) {
		r = APP_ENOMEM;
		goto out;
	}
	size_t got = 0;
	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto out;
		got += (size_t)n;
	}
	*data = buf;
	*len = size;
	buf = NULL;
	r = 0;
out:
	free(buf);
	close(fd);
	return r;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int dir_list(void *arg, int (*fn)(void *a, const char *name, uint64_t size), void *a)
{
	struct dir_store *d = arg;
	int fd = dup(d->dfd);
	if (fd < 0)
		return APP_EIO;
	DIR *dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return APP_EIO;
	}
	rewinddir(dir);
	char **names = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	struct dirent *de;
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			char **nn = nc > SJ_RECORDS_MAX + 1024 ? NULL : realloc(names, nc * sizeof *names);
			if (!nn) {
				r = APP_ENOMEM;
				goto out;
			}
			names = nn;
			cap = nc;
		}
		if (!(names[n] = strdup(de->d_name))) {
			r = APP_ENOMEM;
			goto out;
		}
		n++;
	}
	if (n)
		qsort(names, n, sizeof *names, cmp_names);
	for (size_t i = 0; i < n && r == 0; i++) {
		struct stat st;
		uint64_t size = fstatat(d->dfd, names[i], &st, 0) == 0 ? (uint64_t)st.st_size : 0;
		r = fn(a, names[i], size);
	}
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(dir);
	return r;
}

static void dir_close(void *arg)
{
	struct dir_store *d = arg;
	if (d->dfd >= 0)
		close(d->dfd);
	free(d);
}

static const struct sj_store_ops dir_ops = {dir_put, dir_get, dir_list, dir_close};

int sj_store_dir_open(struct sj_store **out, const char *dir)
{
	*out = NULL;
	if (!dir || !dir[0] || strlen(dir) >= DIR_PATH_MAX)
		return APP_EINVAL;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return APP_EIO;
	struct dir_store *d = calloc(1, sizeof *d);
	struct sj_store *s = calloc(1, sizeof *s);
	if (!d || !s) {
		free(d);
		free(s);
		return APP_ENOMEM;
	}
	memcpy(d->path, dir, strlen(dir) + 1);
	d->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->dfd < 0) {
		free(d);
		free(s);
		return APP_EIO;
	}
	s->ops = &dir_ops;
	s->arg = d;
	*out = s;
	return 0;
}

/* ---- parent store ---- */

struct parent_store {
	struct parentlink *pl;
	int timeout_ms;
};

static int parent_put(void *arg, const char *name, const uint8_t *data, size_t len)
{
	struct parent_store *p = arg;
	return parentlink_blob_put(p->pl, name, data, len, p->timeout_ms);
}

static int parent_get(void *arg, const char *name, uint8_t **data, size_t *len, size_t max)
{
	struct parent_store *p = arg;
	return parentlink_blob_get(p->pl, name, data, len, max, p->timeout_ms);
}

static int parent_list(void *arg, int (*fn)(void *a, const char *name, uint64_t size), void *a)
{
	struct parent_store *p = arg;
	return parentlink_blob_list(p->pl, fn, a, p->timeout_ms);
}

static void parent_close(void *arg)
{
	free(arg);
}

static const struct sj_store_ops parent_ops = {parent_put, parent_get, parent_list, parent_close};

int sj_store_parent_open(struct sj_store **out, struct parentlink *pl, unsigned timeout_ms)
{
	*out = NULL;
	struct parent_store *p = calloc(1, sizeof *p);
	struct sj_store *s = calloc(1, sizeof *s);
	if (!p || !s) {
		free(p);
		free(s);
		return APP_ENOMEM;
	}
	p->pl = pl;
	p->timeout_ms = (int)(timeout_ms ? timeout_ms : 30000);
	s->ops = &parent_ops;
	s->arg = p;
	*out = s;
	return 0;
}

void sj_store_close(struct sj_store *s)
{
	if (!s)
		return;
	if (s->ops->close)
		s->ops->close(s->arg);
	free(s);
}

/* ---- the journal ---- */

struct sjournal {
	struct sj_store *store;
	const struct sj_keystores_ops *ks;
	void *ks_arg;
	unsigned checkpoint_interval_s;
	int (*is_cp)(const char *, size_t);
	uint8_t *key; /* sodium_malloc, SEALED_KEY_LEN */
	uint8_t instance[SJ_INSTANCE_LEN];
	char inst8[17];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t count;    /* records stored */
	uint8_t head[32];  /* hash of the last record */
	int failed;        /* an append failed: everything after is refused */
	char *text;        /* the replayed records, for load */
	size_t text_len;
	pthread_t th;
	int started, stop, urgent;
	int read_only;
	struct sjournal_stats st;
};

static void errf(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t cap, const char *fmt, ...)
{
	if (!err || !cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* data_format: the keystore data of (instance, key, epoch, head) into out (DATA_TEXT_MAX). */
static size_t data_format(char *out, const uint8_t instance[SJ_INSTANCE_LEN], const uint8_t key[32], uint64_t epoch,
			  const uint8_t head[32])
{
	char ih[2 * SJ_INSTANCE_LEN + 1], kh[65], hh[65];
	hex_encode(ih, instance, SJ_INSTANCE_LEN);
	hex_encode(kh, key, 32);
	hex_encode(hh, head, 32);
	int n = snprintf(out, DATA_TEXT_MAX, SJ_DATA_PREFIX " %s %s %" PRIu64 " %s", ih, kh, epoch, hh);
	sodium_memzero(kh, sizeof kh);
	return n > 0 ? (size_t)n : 0;
}

/* data_parse: the fields of keystore data d[0..len). Returns 0 or APP_EPARSE. */
static int data_parse(const uint8_t *d, size_t len, uint8_t instance[SJ_INSTANCE_LEN], uint8_t key[32],
		      uint64_t *epoch, uint8_t head[32])
{
	/* "ajk1 " 32 " " 64 " " digits " " 64 */
	const size_t fixed = 5 + 32 + 1 + 64 + 1 + 1 + 64;
	if (len < fixed + 1 || len > fixed + 20 || memcmp(d, SJ_DATA_PREFIX " ", 5) != 0 || d[37] != ' ' ||
	    d[102] != ' ' || d[len - 65] != ' ')
		return APP_EPARSE;
	if (hex_decode(instance, SJ_INSTANCE_LEN, (const char *)d + 5, 32, 1) != 0 ||
	    hex_decode(key, 32, (const char *)d + 38, 64, 1) != 0 ||
	    hex_decode(head, 32, (const char *)d + len - 64, 64, 1) != 0)
		return APP_EPARSE;
	uint64_t v = 0;
	size_t nd = len - 65 - 103;
	if (nd == 0 || nd > 20 || (nd > 1 && d[103] == '0'))
		return APP_EPARSE;
	for (size_t i = 0; i < nd; i++) {
		uint8_t c = d[103 + i];
		if (c < '0' || c > '9' || __builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(c - '0'), &v))
			return APP_EPARSE;
	}
	*epoch = v;
	return 0;
}

/* ---- replay ---- */

struct listing {
	uint64_t *seqs;
	size_t n, cap;
	int bad; /* a name that looks like a record name but is not canonical */
	int err;
};

static int list_cb(void *a, const char *name, uint64_t size)
{
	struct listing *l = a;
	(void)size;
	if (strncmp(name, SJ_NAME_PREFIX, SJ_NAME_PREFIX_LEN) != 0)
		return 0; /* another blob of the instance, not a journal record */
	uint64_t seq = name_seq(name);
	char canon[SJ_NAME_LEN + 1];
	if (seq)
		sj_record_name(canon, seq);
	if (!seq || strcmp(canon, name) != 0) {
		l->bad = 1;
		return 0;
	}
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 256;
		if (nc > SJ_RECORDS_MAX) {
			l->err = APP_ELIMIT;
			return APP_ELIMIT;
		}
		uint64_t *ns = realloc(l->seqs, nc * sizeof *ns);
		if (!ns) {
			l->err = APP_ENOMEM;
			return APP_ENOMEM;
		}
		l->seqs = ns;
		l->cap = nc;
	}
	l->seqs[l->n++] = seq;
	return 0;
}

static int list_records(struct sj_store *s, struct listing *l)
{
	memset(l, 0, sizeof *l);
	int r = s->ops->list(s->arg, list_cb, l);
	if (r)
		return l->err ? l->err : r;
	return 0;
}

/*
 * replay: fetches and checks every record (sjournal.h, step 3) with the
 * journal's key and instance; on success sj->count, head and text are set.
 */
static int replay(struct sjournal *sj, uint64_t cp_epoch, const uint8_t cp_head[32], char *err, size_t errcap)
{
	struct listing l;
	struct jw_like {
		char *p;
		size_t len, cap;
	} t = {NULL, 0, 0};
	uint8_t prev[32] = {0};
	uint8_t cp_hash[32] = {0};
	int r = list_records(sj->store, &l);
	if (r) {
		errf(err, errcap, "cannot list the journal: %s", app_strerror(r));
		goto out;
	}
	if (l.bad) {
		r = APP_EPARSE;
		errf(err, errcap, "the store holds a malformed record name");
		goto out;
	}
	for (size_t i = 0; i < l.n; i++) {
		uint64_t want = (uint64_t)i + 1;
		char name[SJ_NAME_LEN + 1];
		uint8_t *blob = NULL;
		size_t bl = 0;
		struct sj_record rec;
		char *line = NULL;
		size_t ll = 0;
		if (l.seqs[i] != want) {
			r = APP_EROLLBACK;
			errf(err, errcap, "gap in the journal: record %" PRIu64 " is missing (next is %" PRIu64 ")", want,
			     l.seqs[i]);
			goto out;
		}
		sj_record_name(name, want);
		if ((r = sj->store->ops->get(sj->store->arg, name, &blob, &bl, SJ_BLOB_MAX)) != 0) {
			if (r == APP_ENOTFOUND)
				r = APP_EROLLBACK;
			errf(err, errcap, "record %" PRIu64 ": cannot read it: %s", want, app_strerror(r));
			goto out;
		}
		r = sj_record_parse(&rec, blob, bl);
		if (r) {
			free(blob);
			r = APP_EPARSE;
			errf(err, errcap, "record %" PRIu64 ": malformed (truncated or not a journal record)", want);
			goto out;
		}
		if (sodium_memcmp(rec.instance, sj->instance, SJ_INSTANCE_LEN) != 0) {
			char other[17];
			hex_encode(other, rec.instance, 8);
			free(blob);
			r = APP_EROLLBACK;
			errf(err, errcap, "record %" PRIu64 " belongs to another instance (%s, ours %s)", want, other, sj->inst8);
			goto out;
		}
		if (rec.seq != want) {
			free(blob);
			r = APP_EROLLBACK;
			errf(err, errcap, "record %" PRIu64 " holds sequence number %" PRIu64 " (reordered)", want, rec.seq);
			goto out;
		}
		if (sodium_memcmp(rec.prev, prev, 32) != 0) {
			free(blob);
			r = APP_EROLLBACK;
			errf(err, errcap, "record %" PRIu64 " does not follow record %" PRIu64 " (replaced or reordered)", want,
			     want - 1);
			goto out;
		}
		r = sj_record_open(&line, &ll, &rec, sj->key);
		if (r) {
			free(blob);
			errf(err, errcap, "record %" PRIu64 ": %s", want,
			     r == APP_EBADMAC ? "bad tag (modified, truncated or sealed with another key)"
					      : "not a journal line");
			goto out;
		}
		hash_sha256(prev, blob, bl);
		free(blob);
		if (want == cp_epoch)
			memcpy(cp_hash, prev, 32);
		size_t need = t.len + ll + 2;
		if (need > JOURNAL_MAX) {
			sodium_memzero(line, ll);
			free(line);
			r = APP_ETOOBIG;
			errf(err, errcap, "the journal is larger than %u bytes", JOURNAL_MAX);
			goto out;
		}
		if (need > t.cap) {
			size_t nc = t.cap ? t.cap : 4096;
			while (nc < need)
				nc *= 2;
			char *np = malloc(nc);
			if (!np) {
				sodium_memzero(line, ll);
				free(line);
				r = APP_ENOMEM;
				goto out;
			}
			if (t.p) {
				memcpy(np, t.p, t.len);
				sodium_memzero(t.p, t.cap);
				free(t.p);
			}
			t.p = np;
			t.cap = nc;
		}
		memcpy(t.p + t.len, line, ll);
		t.len += ll;
		t.p[t.len++] = '\n';
		sodium_memzero(line, ll);
		free(line);
	}
	if ((uint64_t)l.n < cp_epoch) {
		r = APP_EROLLBACK;
		errf(err, errcap, "the journal has %zu records but the checkpoint says %" PRIu64 " (older than the checkpoint: rollback)",
		     l.n, cp_epoch);
		goto out;
	}
	if (cp_epoch && sodium_memcmp(cp_hash, cp_head, 32) != 0) {
		r = APP_EROLLBACK;
		errf(err, errcap, "record %" PRIu64 " is not the one the checkpoint names (replaced)", cp_epoch);
		goto out;
	}
	if (!t.p && !(t.p = malloc(1))) {
		r = APP_ENOMEM;
		goto out;
	}
	t.p[t.len] = 0; /* cap > len whenever a record was added; 1 byte otherwise */
	sj->text = t.p;
	sj->text_len = t.len;
	t.p = NULL;
	sj->count = l.n;
	memcpy(sj->head, prev, 32);
	r = 0;
out:
	if (t.p) {
		sodium_memzero(t.p, t.cap);
		free(t.p);
	}
	free(l.seqs);
	return r;
}

/* ---- keystore rounds ---- */

static void ks_name(struct sjournal *sj, size_t i, char *out, size_t cap)
{
	if (sj->ks->name)
		sj->ks->name(sj->ks_arg, i, out, cap);
	else
		snprintf(out, cap, "%zu", i);
}

/* checkpoint_round: stores {count, head} in every keystore. Returns how many stored it. */
static size_t checkpoint_round(struct sjournal *sj)
{
	char data[DATA_TEXT_MAX];
	uint64_t epoch;
	uint8_t head[32];
	size_t stored = 0;
	if (sj->ks->refresh) {
		int r = sj->ks->refresh(sj->ks_arg);
		if (r)
			log_warn("event=keystore_refresh_failed err=%s", app_errname(r));
	}
	pthread_mutex_lock(&sj->mu);
	epoch = sj->count;
	memcpy(head, sj->head, 32);
	pthread_mutex_unlock(&sj->mu);
	size_t dl = data_format(data, sj->instance, sj->key, epoch, head);
	size_t n = sj->ks->count(sj->ks_arg);
	for (size_t i = 0; i < n; i++) {
		enum ksclient_answer ans = KSCLIENT_NO_ANSWER;
		char why[KSRPC_REASON_MAX + 1] = "", nm[24];
		int r = sj->ks->set(sj->ks_arg, i, &ans, why, sizeof why, (const uint8_t *)data, dl, epoch);
		ks_name(sj, i, nm, sizeof nm);
		if (r == 0 && ans == KSCLIENT_FOUND) {
			stored++;
			log_debug("event=checkpoint_stored keystore=%s epoch=%" PRIu64, nm, epoch);
			continue;
		}
		pthread_mutex_lock(&sj->mu);
		sj->st.checkpoint_failures++;
		pthread_mutex_unlock(&sj->mu);
		if (r == 0 && ans == KSCLIENT_REFUSED && strstr(why, "anti-rollback"))
			log_error("event=checkpoint_refused keystore=%s epoch=%" PRIu64 " reason=\"%s\" note=a_newer_checkpoint_exists",
				  nm, epoch, why);
		else
			log_warn("event=checkpoint_failed keystore=%s epoch=%" PRIu64 " answer=%s reason=\"%s\"", nm, epoch,
				 r ? "local_error" : ksclient_answer_name(ans), why);
	}
	sodium_memzero(data, sizeof data);
	pthread_mutex_lock(&sj->mu);
	if (stored) {
		sj->st.checkpoints++;
		if (epoch > sj->st.last_checkpoint_epoch)
			sj->st.last_checkpoint_epoch = epoch;
	}
	pthread_mutex_unlock(&sj->mu);
	log_info("event=checkpoint instance=%s epoch=%" PRIu64 " stored=%zu keystores=%zu", sj->inst8, epoch, stored, n);
	return stored;
}

int sjournal_checkpoint(struct sjournal *sj)
{
	if (sj->started || sj->read_only)
		return APP_ESTATE;
	return checkpoint_round(sj) ? 0 : APP_EAGAIN;
}

static void *checkpoint_thread(void *arg)
{
	struct sjournal *sj = arg;
	pthread_mutex_lock(&sj->mu);
	while (!sj->stop) {
		if (!sj->urgent) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += (time_t)sj->checkpoint_interval_s;
			while (!sj->stop && !sj->urgent)
				if (pthread_cond_timedwait(&sj->cv, &sj->mu, &ts) != 0)
					break;
		}
		if (sj->stop)
			break;
		sj->urgent = 0;
		pthread_mutex_unlock(&sj->mu);
		(void)checkpoint_round(sj);
		pthread_mutex_lock(&sj->mu);
	}
	pthread_mutex_unlock(&sj->mu);
	return NULL;
}

int sjournal_start(struct sjournal *sj)
{
	if (sj->started || sj->read_only)
		return APP_ESTATE;
	if (pthread_create(&sj->th, NULL, checkpoint_thread, sj) != 0)
		return APP_EINTERNAL;
	sj->started = 1;
	return 0;
}

void sjournal_get_stats(struct sjournal *sj, struct sjournal_stats *out)
{
	pthread_mutex_lock(&sj->mu);
	*out = sj->st;
	out->records = sj->count;
	pthread_mutex_unlock(&sj->mu);
}

void sjournal_free(struct sjournal *sj)
{
	if (!sj)
		return;
	if (sj->started) {
		pthread_mutex_lock(&sj->mu);
		sj->stop = 1;
		pthread_cond_broadcast(&sj->cv);
		pthread_mutex_unlock(&sj->mu);
		pthread_join(sj->th, NULL);
		/* a clean stop: the last records get their checkpoint */
		if (!sj->failed && sj->count > sj->st.last_checkpoint_epoch)
			(void)checkpoint_round(sj);
	}
	pthread_mutex_destroy(&sj->mu);
	pthread_cond_destroy(&sj->cv);
	if (sj->key)
		sodium_free(sj->key);
	if (sj->text) {
		sodium_memzero(sj->text, sj->text_len);
		free(sj->text);
	}
	free(sj);
}

/* ---- backend ---- */

static int be_append(void *arg, const char *rec, size_t len)
{
	struct sjournal *sj = arg;
	uint8_t *blob = NULL, *back = NULL;
	size_t bl = 0, backl = 0;
	char name[SJ_NAME_LEN + 1];
	int r;
	if (sj->failed || sj->read_only)
		return APP_ESTATE;
	pthread_mutex_lock(&sj->mu);
	uint64_t seq = sj->count + 1;
	uint8_t prev[32];
	memcpy(prev, sj->head, 32);
	pthread_mutex_unlock(&sj->mu);
	if ((r = sj_record_seal(&blob, &bl, sj->instance, seq, prev, sj->key, rec, len)) != 0)
		goto out;
	sj_record_name(name, seq);
	for (int attempt = 0; attempt < PUT_ATTEMPTS; attempt++) {
		r = sj->store->ops->put(sj->store->arg, name, blob, bl);
		if (r == APP_EEXIST) {
			/* an earlier attempt may have been stored before its answer was lost */
			int g = sj->store->ops->get(sj->store->arg, name, &back, &backl, SJ_BLOB_MAX);
			r = g == 0 && backl == bl && memcmp(back, blob, bl) == 0 ? 0 : APP_EEXIST;
			free(back);
			back = NULL;
			break;
		}
		if (r != APP_ECONN && r != APP_ETIMEOUT)
			break;
		log_warn("event=journal_put_retry seq=%" PRIu64 " err=%s", seq, app_errname(r));
	}
	if (r) {
		log_error("event=journal_put_failed seq=%" PRIu64 " err=%s", seq, app_errname(r));
		sj->failed = 1;
		goto out;
	}
	pthread_mutex_lock(&sj->mu);
	sj->count = seq;
	hash_sha256(sj->head, blob, bl);
	sj->st.appends++;
	if (sj->is_cp(rec, len)) {
		sj->urgent = 1;
		pthread_cond_broadcast(&sj->cv);
	}
	pthread_mutex_unlock(&sj->mu);
	r = 0;
out:
	free(blob);
	return r;
}

static int be_load(void *arg, char **text, size_t *len)
{
	struct sjournal *sj = arg;
	*text = NULL;
	*len = 0;
	if (!sj->text) { /* loaded once; a second load gives an empty journal only if nothing was replayed */
		if (sj->count)
			return APP_ESTATE;
		if (!(*text = calloc(1, 1)))
			return APP_ENOMEM;
		return 0;
	}
	*text = sj->text;
	*len = sj->text_len;
	sj->text = NULL;
	sj->text_len = 0;
	return 0;
}

static void be_close(void *arg)
{
	sjournal_free(arg);
}

static const struct journal_backend sj_backend = {be_append, be_load, be_close};

const struct journal_backend *sjournal_backend(void)
{
	return &sj_backend;
}

/* ---- start-up ---- */

/* wait_ms: sleeps up to ms in small steps; 1 if should_stop said stop. */
static int wait_ms(const struct sjournal_opts *o, unsigned ms)
{
	uint64_t until = mono_ms() + ms;
	for (;;) {
		if (o->should_stop && o->should_stop(o->stop_arg))
			return 1;
		uint64_t now = mono_ms();
		if (now >= until)
			return 0;
		uint64_t left = until - now;
		struct timespec ts = {0, (long)((left < 100 ? left : 100) * 1000000u)};
		nanosleep(&ts, NULL);
	}
}

struct found {
	uint8_t instance[SJ_INSTANCE_LEN];
	uint8_t key[32];
	uint64_t epoch;
	uint8_t head[32];
	int release; /* through release signatures */
};

int sjournal_open(struct sjournal **out, struct sjournal_info *info, char *err, size_t errcap,
		  const struct sjournal_opts *o)
{
	struct sjournal *sj = NULL;
	struct sjournal_info inf;
	struct found *best = NULL, *cur = NULL;
	uint8_t *data = NULL;
	int r = APP_ENOMEM, stale = 0;
	*out = NULL;
	memset(&inf, 0, sizeof inf);
	if (err && errcap)
		err[0] = 0;
	if (!o || !o->store || !o->ks || !o->ks->count || !o->ks->get || !o->ks->set)
		return APP_EINVAL;
	if (sodium_init() < 0)
		return APP_EINTERNAL;
	if (!(sj = calloc(1, sizeof *sj)))
		return APP_ENOMEM;
	pthread_mutex_init(&sj->mu, NULL);
	pthread_cond_init(&sj->cv, NULL);
	sj->store = o->store;
	sj->read_only = o->read_only;
	sj->ks = o->ks;
	sj->ks_arg = o->ks_arg;
	sj->checkpoint_interval_s = o->checkpoint_interval_s ? o->checkpoint_interval_s : 60;
	sj->is_cp = o->is_checkpoint_record ? o->is_checkpoint_record : sjournal_money_record;
	sj->key = sodium_malloc(SEALED_KEY_LEN);
	best = sodium_malloc(sizeof *best);
	cur = sodium_malloc(sizeof *cur);
	data = sodium_malloc(KSRPC_DATA_MAX);
	if (!sj->key || !best || !cur || !data)
		goto out;
	unsigned delay = o->retry_min_ms ? o->retry_min_ms : 500;
	unsigned delay_max = o->retry_max_ms ? o->retry_max_ms : 10000;
	uint64_t deadline = o->start_timeout_s ? mono_ms() + (uint64_t)o->start_timeout_s * 1000u : 0;
	for (;;) {
		size_t n, nfound = 0, nnot = 0, nref = 0, nno = 0;
		int disagree = 0;
		uint64_t min_epoch = UINT64_MAX;
		if (o->should_stop && o->should_stop(o->stop_arg)) {
			r = APP_ECANCELED;
			errf(err, errcap, "stopped while waiting for the keystores");
			goto out;
		}
		inf.rounds++;
		if (o->ks->refresh && (r = o->ks->refresh(o->ks_arg)) != 0)
			log_warn("event=keystore_refresh_failed err=%s", app_errname(r));
		n = o->ks->count(o->ks_arg);
		for (size_t i = 0; i < n; i++) {
			enum ksclient_answer ans = KSCLIENT_NO_ANSWER;
			char why[KSRPC_REASON_MAX + 1] = "", nm[24];
			size_t dl = 0;
			uint64_t epoch = 0;
			if (o->ks->name)
				o->ks->name(o->ks_arg, i, nm, sizeof nm);
			else
				snprintf(nm, sizeof nm, "%zu", i);
			if ((r = o->ks->get(o->ks_arg, i, &ans, data, &dl, &epoch, why, sizeof why)) != 0) {
				errf(err, errcap, "keystore %s: %s", nm, app_strerror(r));
				goto out;
			}
			if (ans == KSCLIENT_FOUND &&
			    (data_parse(data, dl, cur->instance, cur->key, &cur->epoch, cur->head) != 0 || cur->epoch != epoch)) {
				ans = KSCLIENT_REFUSED;
				snprintf(why, sizeof why, "its data is not a journal checkpoint");
			}
			sodium_memzero(data, KSRPC_DATA_MAX);
			log_info("event=keystore_answer keystore=%s answer=%s epoch=%" PRIu64 " reason=\"%s\"", nm,
				 ksclient_answer_name(ans), ans == KSCLIENT_FOUND ? cur->epoch : 0, why);
			switch (ans) {
			case KSCLIENT_FOUND:
				cur->release = strcmp(why, "release") == 0;
				if (nfound &&
				    (sodium_memcmp(cur->key, best->key, 32) != 0 ||
				     sodium_memcmp(cur->instance, best->instance, SJ_INSTANCE_LEN) != 0))
					disagree = 1;
				if (!nfound || cur->epoch > best->epoch)
					memcpy(best, cur, sizeof *best);
				if (cur->epoch < min_epoch)
					min_epoch = cur->epoch;
				nfound++;
				break;
			case KSCLIENT_NOT_FOUND: nnot++; break;
			case KSCLIENT_REFUSED: nref++; break;
			case KSCLIENT_NO_ANSWER: nno++; break;
			}
		}
		inf.keystores = n;
		inf.found = nfound;
		inf.not_found = nnot;
		inf.refused = nref;
		inf.no_answer = nno;
		if (disagree) {
			r = APP_EREFUSED;
			errf(err, errcap, "keystores disagree on the disk key or the instance: refusing to run");
			goto out;
		}
		if (nfound) {
			memcpy(sj->key, best->key, 32);
			memcpy(sj->instance, best->instance, SJ_INSTANCE_LEN);
			hex_encode(sj->inst8, sj->instance, 8);
			inf.checkpoint_epoch = best->epoch;
			inf.upgraded = best->release;
			stale = min_epoch < best->epoch;
			if ((r = replay(sj, best->epoch, best->head, err, errcap)) != 0)
				goto out;
			break;
		}
		if (n > 0 && nnot == n && o->read_only) {
			r = APP_ENOTFOUND;
			errf(err, errcap, "every keystore says not found");
			goto out;
		}
		if (n > 0 && nnot == n) {
			struct listing l;
			if ((r = list_records(o->store, &l)) != 0) {
				errf(err, errcap, "cannot list the journal: %s", app_strerror(r));
				goto out;
			}
			free(l.seqs);
			if (l.n || l.bad) {
				r = APP_EREFUSED;
				errf(err, errcap,
				     "the store holds %zu journal records but every keystore says not found: "
				     "refusing to make a new key (the key is lost or hidden)",
				     l.n);
				goto out;
			}
			if ((r = sealed_key_generate(sj->key)) != 0)
				goto out;
			keys_random(sj->instance, SJ_INSTANCE_LEN);
			hex_encode(sj->inst8, sj->instance, 8);
			if (checkpoint_round(sj) > 0) {
				inf.new_key = 1;
				if (!(sj->text = calloc(1, 1))) {
					r = APP_ENOMEM;
					goto out;
				}
				log_info("event=journal_new_key instance=%s keystores=%zu", sj->inst8, n);
				break;
			}
			/* no keystore took it: forget it and start over */
			sodium_memzero(sj->key, SEALED_KEY_LEN);
			log_warn("event=journal_new_key_not_stored instance=%s action=retry", sj->inst8);
		}
		log_warn("event=keystores_undecided keystores=%zu found=0 not_found=%zu refused=%zu no_answer=%zu "
			 "action=wait_ms_%u",
			 n, nnot, nref, nno, delay);
		if (deadline && mono_ms() + delay > deadline) {
			r = APP_ETIMEOUT;
			errf(err, errcap,
			     "no decision from the keystores (%zu: %zu not found, %zu refused, %zu no answer): "
			     "not making a new key",
			     n, nnot, nref, nno);
			goto out;
		}
		if (wait_ms(o, delay)) {
			r = APP_ECANCELED;
			errf(err, errcap, "stopped while waiting for the keystores");
			goto out;
		}
		delay = delay * 2 > delay_max ? delay_max : delay * 2;
	}
	inf.records = sj->count;
	memcpy(inf.instance, sj->instance, SJ_INSTANCE_LEN);
	pthread_mutex_lock(&sj->mu);
	sj->st.records = sj->count;
	pthread_mutex_unlock(&sj->mu);
	log_info("event=journal_open instance=%s records=%" PRIu64 " checkpoint=%" PRIu64 " new_key=%d upgraded=%d rounds=%u",
		 sj->inst8, sj->count, inf.checkpoint_epoch, inf.new_key, inf.upgraded, inf.rounds);
	/* keystores that lack the newest checkpoint (or hold it under another build's PCRs) get it now */
	if (!inf.new_key && !sj->read_only && (inf.found < inf.keystores || inf.upgraded || stale || sj->count > inf.checkpoint_epoch))
		(void)checkpoint_round(sj);
	if (info)
		*info = inf;
	*out = sj;
	sj = NULL;
	r = 0;
out:
	if (best)
		sodium_free(best);
	if (cur)
		sodium_free(cur);
	if (data)
		sodium_free(data);
	sjournal_free(sj);
	return r;
}
