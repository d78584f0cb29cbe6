/*
 * sjournal_test: the sealed journal (enclave/runtime/sjournal.h) over a local
 * directory store, with in-memory keystores that behave like
 * appliance-keystore (anti-rollback on epochs) and can be made silent,
 * refusing or amnesic. An adversarial parent is played by editing the
 * store's files: a flipped byte, a truncated record, a truncated journal, a
 * dropped record, reordered records, a journal from before the last
 * checkpoint, another instance's journal, a replaced record. Each must be
 * refused with its reason and leave the store and the keystores as they
 * were.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pthread.h>

#include "appliance/channel.h"
#include "appliance/hash.h"
#include "appliance/hex.h"
#include "appliance/ksrpc.h"
#include "appliance/log.h"
#include "appliance/sealed.h"
#include "enclave/runtime/journal.h"
#include "enclave/runtime/parentlink.h"
#include "enclave/runtime/sjournal.h"
#include "parent/blobstore.h"
#include "parent/control.h"
#include "tests/unit/test.h"

/* ---- fake keystores ---- */

enum ks_mode { KS_OK = 0, KS_SILENT, KS_REFUSE };

struct fake_ks {
	enum ks_mode mode;
	int silent_gets; /* answer nothing to this many gets, then behave */
	int has;
	uint8_t data[KSRPC_DATA_MAX];
	size_t len;
	uint64_t epoch;
	unsigned gets, sets;
};

struct fake_set {
	struct fake_ks ks[3];
	size_t n;
};

static int f_refresh(void *arg)
{
	(void)arg;
	return 0;
}

static size_t f_count(void *arg)
{
	return ((struct fake_set *)arg)->n;
}

static void f_name(void *arg, size_t i, char *out, size_t cap)
{
	(void)arg;
	snprintf(out, cap, "fake%zu", i);
}

static int f_get(void *arg, size_t i, enum ksclient_answer *ans, uint8_t *data, size_t *len, uint64_t *epoch,
		 char *why, size_t whycap)
{
	struct fake_ks *k = &((struct fake_set *)arg)->ks[i];
	k->gets++;
	*len = 0;
	*epoch = 0;
	if (k->mode == KS_SILENT || k->silent_gets > 0) {
		if (k->silent_gets > 0)
			k->silent_gets--;
		*ans = KSCLIENT_NO_ANSWER;
		snprintf(why, whycap, "timeout");
		return 0;
	}
	if (k->mode == KS_REFUSE) {
		*ans = KSCLIENT_REFUSED;
		snprintf(why, whycap, "attestation refused (freshness)");
		return 0;
	}
	if (!k->has) {
		*ans = KSCLIENT_NOT_FOUND;
		snprintf(why, whycap, "Not found");
		return 0;
	}
	memcpy(data, k->data, k->len);
	*len = k->len;
	*epoch = k->epoch;
	*ans = KSCLIENT_FOUND;
	snprintf(why, whycap, "exact");
	return 0;
}

static int f_set(void *arg, size_t i, enum ksclient_answer *ans, char *why, size_t whycap, const uint8_t *data,
		 size_t len, uint64_t epoch)
{
	struct fake_ks *k = &((struct fake_set *)arg)->ks[i];
	k->sets++;
	if (k->mode == KS_SILENT) {
		*ans = KSCLIENT_NO_ANSWER;
		return 0;
	}
	if (k->mode == KS_REFUSE) {
		*ans = KSCLIENT_REFUSED;
		snprintf(why, whycap, "refused");
		return 0;
	}
	if (k->has && epoch < k->epoch) {
		*ans = KSCLIENT_REFUSED;
		snprintf(why, whycap, "epoch %llu is lower than the stored epoch %llu (anti-rollback)",
			 (unsigned long long)epoch, (unsigned long long)k->epoch);
		return 0;
	}
	memcpy(k->data, data, len);
	k->len = len;
	k->epoch = epoch;
	k->has = 1;
	*ans = KSCLIENT_FOUND;
	return 0;
}

static const struct sj_keystores_ops fake_ops = {f_refresh, f_count, f_name, f_get, f_set};

/* ---- helpers ---- */

static char g_root[200];
static int g_dirs;

static void new_dir(char *out, size_t cap)
{
	snprintf(out, cap, "%s/store%d", g_root, ++g_dirs);
}

static int open_journal(struct sj_store *st, struct fake_set *ks, struct journal **j, struct sjournal_info *info,
			char *err, size_t errcap, unsigned timeout_s)
{
	struct sjournal_opts o;
	struct sjournal *sj = NULL;
	memset(&o, 0, sizeof o);
	o.store = st;
	o.ks = &fake_ops;
	o.ks_arg = ks;
	o.retry_min_ms = 10;
	o.retry_max_ms = 40;
	o.start_timeout_s = timeout_s;
	o.checkpoint_interval_s = 3600;
	int r = sjournal_open(&sj, info, err, errcap, &o);
	if (r)
		return r;
	r = journal_open(j, sjournal_backend(), sj);
	if (r)
		sjournal_free(sj);
	return r;
}

struct collect {
	char text[65536];
	size_t len;
};

static int collect_cb(void *arg, const char *rec, size_t len, uint64_t index)
{
	struct collect *c = arg;
	(void)index;
	if (c->len + len + 1 < sizeof c->text) {
		memcpy(c->text + c->len, rec, len);
		c->len += len;
		c->text[c->len++] = '\n';
		c->text[c->len] = 0;
	}
	return 0;
}

static void append_n(struct journal *j, int from, int to)
{
	char rec[160];
	for (int i = from; i <= to; i++) {
		int n = snprintf(rec, sizeof rec, i % 3 == 0 ? "L1 %d 1700000000 paid %064d 1000 1700000000" : "J1 %d 1700000000 note %d", i, i);
		CHECK_OK(journal_append(j, rec, (size_t)n));
	}
}

/* snapshot: a digest of every file (name and content) of dir. */
static void snapshot(const char *dir, uint8_t out[32])
{
	struct hash_sha256_ctx *h = hash_sha256_new();
	struct dirent **list = NULL;
	int n = scandir(dir, &list, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		char path[512];
		snprintf(path, sizeof path, "%s/%s", dir, list[i]->d_name);
		hash_sha256_update(h, list[i]->d_name, strlen(list[i]->d_name));
		FILE *f = fopen(path, "rb");
		if (f) {
			uint8_t buf[4096];
			size_t k;
			while ((k = fread(buf, 1, sizeof buf, f)) > 0)
				hash_sha256_update(h, buf, k);
			fclose(f);
		}
		free(list[i]);
	}
	free(list);
	hash_sha256_final(h, out);
	hash_sha256_free(h);
}

static void path_of(char *out, size_t cap, const char *dir, uint64_t seq)
{
	char name[SJ_NAME_LEN + 1];
	sj_record_name(name, seq);
	snprintf(out, cap, "%s/%s", dir, name);
}

static void copy_file(const char *from, const char *to)
{
	FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
	CHECK(a && b);
	if (a && b) {
		uint8_t buf[8192];
		size_t k;
		while ((k = fread(buf, 1, sizeof buf, a)) > 0)
			CHECK(fwrite(buf, 1, k, b) == k);
	}
	if (a)
		fclose(a);
	if (b)
		fclose(b);
}

static void rm_rf(const char *dir)
{
	struct dirent **list = NULL;
	int n = scandir(dir, &list, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		char path[512];
		snprintf(path, sizeof path, "%s/%s", dir, list[i]->d_name);
		if (strcmp(list[i]->d_name, ".") != 0 && strcmp(list[i]->d_name, "..") != 0)
			(void)unlink(path);
		free(list[i]);
	}
	free(list);
	(void)rmdir(dir);
}

/* A journal made of n records with a checkpoint at cp (0: the last), in a fresh store. */
struct world {
	char dir[256];
	struct sj_store *st;
	struct fake_set ks;
};

static void world_make(struct world *w, int n, int cp)
{
	struct journal *j = NULL;
	struct sjournal_info info;
	char err[SJ_ERR_MAX];
	memset(w, 0, sizeof *w);
	new_dir(w->dir, sizeof w->dir);
	CHECK_OK(sj_store_dir_open(&w->st, w->dir));
	w->ks.n = 2;
	CHECK_OK(open_journal(w->st, &w->ks, &j, &info, err, sizeof err, 5));
	CHECK(info.new_key == 1);
	append_n(j, 1, cp ? cp : n);
	journal_close(j); /* the checkpoint is taken below, with a fresh open (as a restart would) */
	CHECK_OK(open_journal(w->st, &w->ks, &j, &info, err, sizeof err, 5));
	CHECK(info.records == (uint64_t)(cp ? cp : n));
	if (cp && cp < n)
		append_n(j, cp + 1, n);
	journal_close(j);
	CHECKM(w->ks.ks[0].epoch == (uint64_t)(cp ? cp : n), "checkpoint epoch %llu", (unsigned long long)w->ks.ks[0].epoch);
}

static void world_free(struct world *w)
{
	sj_store_close(w->st);
	rm_rf(w->dir);
}

/* expect_refused: opening w fails with code and a reason containing `why`; nothing changed. */
static void expect_refused(struct world *w, int code, const char *why)
{
	uint8_t before[32], after[32];
	struct fake_set ks_before = w->ks;
	struct journal *j = NULL;
	char err[SJ_ERR_MAX] = "";
	snapshot(w->dir, before);
	int r = open_journal(w->st, &w->ks, &j, NULL, err, sizeof err, 5);
	CHECKM(r == code, "got %d (%s), expected %d", r, err, code);
	CHECKM(strstr(err, why) != NULL, "reason \"%s\" lacks \"%s\"", err, why);
	if (r == 0)
		journal_close(j);
	snapshot(w->dir, after);
	CHECK_MEM(before, after, 32);
	for (int i = 0; i < 2; i++) {
		CHECK(w->ks.ks[i].epoch == ks_before.ks[i].epoch && w->ks.ks[i].len == ks_before.ks[i].len &&
		      !memcmp(w->ks.ks[i].data, ks_before.ks[i].data, ks_before.ks[i].len) && w->ks.ks[i].sets == ks_before.ks[i].sets);
	}
}

/* ---- tests ---- */

static void test_record_format(void)
{
	uint8_t key[32], inst[SJ_INSTANCE_LEN], prev[32] = {0}, *blob = NULL;
	size_t bl = 0;
	struct sj_record rec;
	char *line = NULL;
	size_t ll = 0;
	CHECK_OK(sealed_key_generate(key));
	memset(inst, 7, sizeof inst);
	CHECK_OK(sj_record_seal(&blob, &bl, inst, 5, prev, key, "J1 hello", 8));
	CHECK_OK(sj_record_parse(&rec, blob, bl));
	CHECK(rec.seq == 5 && !memcmp(rec.instance, inst, sizeof inst));
	CHECK_OK(sj_record_open(&line, &ll, &rec, key));
	CHECK(ll == 8 && !strcmp(line, "J1 hello"));
	free(line);
	/* the header is bound: another seq, instance or prev does not open */
	rec.seq = 6;
	CHECK_ERR(sj_record_open(&line, &ll, &rec, key), APP_EBADMAC);
	rec.seq = 5;
	rec.instance[0] ^= 1;
	CHECK_ERR(sj_record_open(&line, &ll, &rec, key), APP_EBADMAC);
	rec.instance[0] ^= 1;
	rec.prev[3] = 1;
	CHECK_ERR(sj_record_open(&line, &ll, &rec, key), APP_EBADMAC);
	rec.prev[3] = 0;
	key[0] ^= 1;
	CHECK_ERR(sj_record_open(&line, &ll, &rec, key), APP_EBADMAC);
	key[0] ^= 1;
	CHECK_ERR(sj_record_parse(&rec, blob, 20), APP_EPARSE);
	blob[0] = 'X';
	CHECK_ERR(sj_record_parse(&rec, blob, bl), APP_EPARSE);
	free(blob);
	CHECK_ERR(sj_record_seal(&blob, &bl, inst, 0, prev, key, "x", 1), APP_EINVAL);
	CHECK_ERR(sj_record_seal(&blob, &bl, inst, 1, prev, key, "a\nb", 3), APP_EINVAL);
	char name[SJ_NAME_LEN + 1];
	sj_record_name(name, 42);
	CHECK_STR(name, "journal-00000000000000000042");
	/* the money classifier */
	CHECK(sjournal_money_record("L1 3 1700000042 paid ab 1 2", 27) == 1);
	CHECK(sjournal_money_record("L1 4 1700000043 debit ab", 24) == 1);
	CHECK(sjournal_money_record("L1 5 1700000043 credit ab", 25) == 1);
	CHECK(sjournal_money_record("L1 1 1700000000 quote ab", 24) == 0);
	CHECK(sjournal_money_record("J1 1 1700000000 paid ab", 23) == 0);
	CHECK(sjournal_money_record("L1 paid", 7) == 0);
}

static void test_first_start_and_restart(void)
{
	struct world w;
	struct journal *j = NULL;
	struct sjournal_info info;
	char err[SJ_ERR_MAX];
	world_make(&w, 7, 0);
	/* both keystores hold the same key and the checkpoint {7, head} */
	CHECK(w.ks.ks[0].has && w.ks.ks[1].has && w.ks.ks[0].len == w.ks.ks[1].len &&
	      !memcmp(w.ks.ks[0].data, w.ks.ks[1].data, w.ks.ks[0].len));
	CHECK(!memcmp(w.ks.ks[0].data, "ajk1 ", 5));
	/* a restart replays the same records */
	CHECK_OK(open_journal(w.st, &w.ks, &j, &info, err, sizeof err, 5));
	CHECK(info.records == 7 && info.checkpoint_epoch == 7 && info.new_key == 0 && info.found == 2);
	struct collect c = {.len = 0};
	uint64_t count = 0;
	CHECK_OK(journal_replay(j, collect_cb, &c, &count));
	CHECK(count == 7 && strstr(c.text, "J1 1 1700000000 note 1\n") == c.text && strstr(c.text, "L1 6 1700000000 paid"));
	append_n(j, 8, 8);
	journal_close(j);
	CHECK_OK(open_journal(w.st, &w.ks, &j, &info, err, sizeof err, 5));
	CHECK(info.records == 8 && info.checkpoint_epoch == 7);
	CHECK(w.ks.ks[0].epoch == 8); /* brought up to date at once */
	journal_close(j);
	world_free(&w);
}

static void test_checkpoint_thread(void)
{
	struct world w;
	struct sjournal_opts o;
	struct sjournal *sj = NULL;
	struct journal *j = NULL;
	char err[SJ_ERR_MAX];
	world_make(&w, 2, 0);
	memset(&o, 0, sizeof o);
	o.store = w.st;
	o.ks = &fake_ops;
	o.ks_arg = &w.ks;
	o.checkpoint_interval_s = 3600;
	CHECK_OK(sjournal_open(&sj, NULL, err, sizeof err, &o));
	CHECK_OK(journal_open(&j, sjournal_backend(), sj));
	uint64_t count = 0;
	struct collect c = {.len = 0};
	CHECK_OK(journal_replay(j, collect_cb, &c, &count));
	CHECK_OK(sjournal_start(sj));
	/* a record that does not move money: no checkpoint */
	CHECK_OK(journal_append(j, "J1 3 1700000000 note", 20));
	/* one that does: a checkpoint right after it */
	CHECK_OK(journal_append(j, "L1 4 1700000000 credit x", 24));
	for (int i = 0; i < 200 && w.ks.ks[1].epoch != 4; i++)
		usleep(10000);
	CHECK(w.ks.ks[0].epoch == 4 && w.ks.ks[1].epoch == 4);
	struct sjournal_stats st;
	sjournal_get_stats(sj, &st);
	CHECK(st.records == 4 && st.appends == 2 && st.checkpoints >= 1 && st.last_checkpoint_epoch == 4);
	journal_close(j);
	world_free(&w);
}

static void test_adversarial_parent(void)
{
	struct world w;
	char p1[512], p2[512], tmp[512];

	/* a flipped byte in a sealed record */
	world_make(&w, 5, 0);
	path_of(p1, sizeof p1, w.dir, 3);
	FILE *f = fopen(p1, "r+b");
	CHECK(f && fseek(f, 100, SEEK_SET) == 0);
	int ch = fgetc(f);
	CHECK(fseek(f, 100, SEEK_SET) == 0 && fputc(ch ^ 0x20, f) != EOF);
	fclose(f);
	expect_refused(&w, APP_EBADMAC, "record 3: bad tag");
	world_free(&w);

	/* a flipped byte in a record's clear header (its sequence number) */
	world_make(&w, 5, 0);
	path_of(p1, sizeof p1, w.dir, 2);
	f = fopen(p1, "r+b");
	CHECK(f && fseek(f, 27, SEEK_SET) == 0 && fputc(9, f) != EOF);
	fclose(f);
	expect_refused(&w, APP_EROLLBACK, "record 2 holds sequence number");
	world_free(&w);

	/* a truncated record: cut inside its last chunk, and cut inside its header */
	world_make(&w, 5, 0);
	path_of(p1, sizeof p1, w.dir, 4);
	CHECK(truncate(p1, 120) == 0);
	expect_refused(&w, APP_EBADMAC, "record 4: bad tag");
	world_free(&w);
	world_make(&w, 5, 0);
	path_of(p1, sizeof p1, w.dir, 4);
	CHECK(truncate(p1, 30) == 0);
	expect_refused(&w, APP_EPARSE, "record 4: malformed");
	world_free(&w);

	/* a truncated journal (the last records gone, below the checkpoint) */
	world_make(&w, 6, 0);
	path_of(p1, sizeof p1, w.dir, 6);
	CHECK(unlink(p1) == 0);
	path_of(p1, sizeof p1, w.dir, 5);
	CHECK(unlink(p1) == 0);
	expect_refused(&w, APP_EROLLBACK, "older than the checkpoint");
	world_free(&w);

	/* a dropped record */
	world_make(&w, 6, 0);
	path_of(p1, sizeof p1, w.dir, 3);
	CHECK(unlink(p1) == 0);
	expect_refused(&w, APP_EROLLBACK, "gap in the journal: record 3 is missing");
	world_free(&w);

	/* reordered records: 3 and 4 swapped */
	world_make(&w, 6, 0);
	path_of(p1, sizeof p1, w.dir, 3);
	path_of(p2, sizeof p2, w.dir, 4);
	snprintf(tmp, sizeof tmp, "%s/swap", w.dir);
	CHECK(rename(p1, tmp) == 0 && rename(p2, p1) == 0 && rename(tmp, p2) == 0);
	expect_refused(&w, APP_EROLLBACK, "record 3 holds sequence number 4 (reordered)");
	world_free(&w);

	/* a journal from before the last checkpoint: the parent kept a copy of 4 records, the checkpoint is at 7 */
	world_make(&w, 4, 0);
	char old[256];
	new_dir(old, sizeof old);
	CHECK(mkdir(old, 0700) == 0);
	for (int i = 1; i <= 4; i++) {
		path_of(p1, sizeof p1, w.dir, (uint64_t)i);
		path_of(p2, sizeof p2, old, (uint64_t)i);
		copy_file(p1, p2);
	}
	{
		struct journal *j = NULL;
		char err[SJ_ERR_MAX];
		CHECK_OK(open_journal(w.st, &w.ks, &j, NULL, err, sizeof err, 5));
		append_n(j, 5, 7);
		journal_close(j);
		CHECK_OK(open_journal(w.st, &w.ks, &j, NULL, err, sizeof err, 5)); /* checkpoint at 7 */
		journal_close(j);
		CHECK(w.ks.ks[0].epoch == 7);
	}
	for (int i = 5; i <= 7; i++) {
		path_of(p1, sizeof p1, w.dir, (uint64_t)i);
		CHECK(unlink(p1) == 0);
	}
	expect_refused(&w, APP_EROLLBACK, "the journal has 4 records but the checkpoint says 7");
	rm_rf(old);
	world_free(&w);

	/* another instance's journal (same dir layout, another key and instance) */
	world_make(&w, 3, 0);
	struct world other;
	world_make(&other, 3, 0);
	for (int i = 1; i <= 3; i++) {
		path_of(p1, sizeof p1, other.dir, (uint64_t)i);
		path_of(p2, sizeof p2, w.dir, (uint64_t)i);
		copy_file(p1, p2);
	}
	expect_refused(&w, APP_EROLLBACK, "belongs to another instance");
	world_free(&other);
	world_free(&w);

	/* a replaced record: a validly sealed record 2 with other content (made with the real key) */
	world_make(&w, 4, 0);
	{
		uint8_t key[32], inst[SJ_INSTANCE_LEN], prev[32], *b1 = NULL, *nb = NULL;
		size_t b1l = 0, nbl = 0;
		CHECK_OK(hex_decode(inst, SJ_INSTANCE_LEN, (const char *)w.ks.ks[0].data + 5, 32, 1));
		CHECK_OK(hex_decode(key, 32, (const char *)w.ks.ks[0].data + 38, 64, 1));
		path_of(p1, sizeof p1, w.dir, 1);
		FILE *rf = fopen(p1, "rb");
		uint8_t buf[SJ_BLOB_MAX];
		b1l = rf ? fread(buf, 1, sizeof buf, rf) : 0;
		if (rf)
			fclose(rf);
		b1 = buf;
		hash_sha256(prev, b1, b1l);
		CHECK_OK(sj_record_seal(&nb, &nbl, inst, 2, prev, key, "L1 2 1700000000 credit forged", 29));
		path_of(p2, sizeof p2, w.dir, 2);
		rf = fopen(p2, "wb");
		CHECK(rf && fwrite(nb, 1, nbl, rf) == nbl);
		if (rf)
			fclose(rf);
		free(nb);
		expect_refused(&w, APP_EROLLBACK, "record 3 does not follow record 2 (replaced or reordered)");
		/* and the record the checkpoint names, replaced at the end of the journal */
		path_of(p1, sizeof p1, w.dir, 4);
		path_of(p2, sizeof p2, w.dir, 3);
		CHECK(unlink(p1) == 0);
		CHECK(unlink(p2) == 0);
		/* now records 1, 2' and a checkpoint at 4: older than the checkpoint */
		expect_refused(&w, APP_EROLLBACK, "older than the checkpoint");
		sodium_memzero(key, sizeof key);
	}
	world_free(&w);

	/* a checkpointed record replaced as the last one: checkpoint at 2 of 2 */
	world_make(&w, 2, 0);
	{
		uint8_t key[32], inst[SJ_INSTANCE_LEN], prev[32], buf[SJ_BLOB_MAX], *nb = NULL;
		size_t nbl = 0, b1l;
		CHECK_OK(hex_decode(inst, SJ_INSTANCE_LEN, (const char *)w.ks.ks[0].data + 5, 32, 1));
		CHECK_OK(hex_decode(key, 32, (const char *)w.ks.ks[0].data + 38, 64, 1));
		path_of(p1, sizeof p1, w.dir, 1);
		FILE *rf = fopen(p1, "rb");
		b1l = rf ? fread(buf, 1, sizeof buf, rf) : 0;
		if (rf)
			fclose(rf);
		hash_sha256(prev, buf, b1l);
		CHECK_OK(sj_record_seal(&nb, &nbl, inst, 2, prev, key, "L1 2 1700000000 credit forged", 29));
		path_of(p2, sizeof p2, w.dir, 2);
		rf = fopen(p2, "wb");
		CHECK(rf && fwrite(nb, 1, nbl, rf) == nbl);
		if (rf)
			fclose(rf);
		free(nb);
		sodium_memzero(key, sizeof key);
	}
	expect_refused(&w, APP_EROLLBACK, "record 2 is not the one the checkpoint names (replaced)");
	world_free(&w);

	/* a malformed record name in the store */
	world_make(&w, 2, 0);
	snprintf(p1, sizeof p1, "%s/journal-12", w.dir);
	f = fopen(p1, "wb");
	if (f)
		fclose(f);
	expect_refused(&w, APP_EPARSE, "malformed record name");
	world_free(&w);
}

static void test_keystores_undecided(void)
{
	char dir[256], err[SJ_ERR_MAX];
	struct sj_store *st = NULL;
	struct journal *j = NULL;
	struct sjournal_info info;
	struct fake_set ks;
	new_dir(dir, sizeof dir);
	CHECK_OK(sj_store_dir_open(&st, dir));

	/* unreachable at start: waits, retries, gives up at the deadline, makes no key */
	memset(&ks, 0, sizeof ks);
	ks.n = 2;
	ks.ks[0].mode = KS_SILENT;
	ks.ks[1].mode = KS_SILENT;
	CHECK_ERR(open_journal(st, &ks, &j, &info, err, sizeof err, 1), APP_ETIMEOUT);
	CHECK(strstr(err, "not making a new key") != NULL);
	CHECK(ks.ks[0].gets >= 3 && ks.ks[0].sets == 0 && ks.ks[1].sets == 0 && !ks.ks[0].has);
	/* one says not found, the other is silent: still no new key */
	ks.ks[0].mode = KS_OK;
	ks.ks[0].gets = 0;
	CHECK_ERR(open_journal(st, &ks, &j, &info, err, sizeof err, 1), APP_ETIMEOUT);
	CHECK(ks.ks[0].sets == 0 && !ks.ks[0].has);
	/* a refusal (say, a stale attestation) is not a not found either */
	ks.ks[1].mode = KS_REFUSE;
	CHECK_ERR(open_journal(st, &ks, &j, &info, err, sizeof err, 1), APP_ETIMEOUT);
	CHECK(ks.ks[0].sets == 0 && ks.ks[1].sets == 0);
	/* the keystore comes back while we wait: then both say not found and a key is made */
	ks.ks[1].mode = KS_OK;
	ks.ks[1].silent_gets = 3;
	CHECK_OK(open_journal(st, &ks, &j, &info, err, sizeof err, 10));
	CHECK(info.new_key == 1 && info.rounds == 4 && ks.ks[0].has && ks.ks[1].has);
	append_n(j, 1, 3);
	journal_close(j);

	/* the journal exists but every keystore lost it: refused, nothing written */
	struct fake_set amnesic;
	memset(&amnesic, 0, sizeof amnesic);
	amnesic.n = 2;
	uint8_t before[32], after[32];
	snapshot(dir, before);
	CHECK_ERR(open_journal(st, &amnesic, &j, &info, err, sizeof err, 5), APP_EREFUSED);
	CHECK(strstr(err, "refusing to make a new key") != NULL);
	snapshot(dir, after);
	CHECK_MEM(before, after, 32);
	CHECK(amnesic.ks[0].sets == 0 && amnesic.ks[1].sets == 0);

	/* keystores that disagree on the key: refused */
	struct fake_set dis = ks;
	dis.ks[1].data[40] = dis.ks[1].data[40] == 'a' ? 'b' : 'a';
	CHECK_ERR(open_journal(st, &dis, &j, &info, err, sizeof err, 5), APP_EREFUSED);
	CHECK(strstr(err, "disagree") != NULL);

	/* one keystore has the key, the other restarted (RAM lost): the start succeeds and re-uploads */
	memset(&ks.ks[1], 0, sizeof ks.ks[1]);
	CHECK_OK(open_journal(st, &ks, &j, &info, err, sizeof err, 5));
	CHECK(info.found == 1 && info.not_found == 1 && ks.ks[1].has && ks.ks[1].epoch == 3 &&
	      !memcmp(ks.ks[0].data, ks.ks[1].data, ks.ks[0].len));
	/* and while running: the checkpoint round puts it back after another loss */
	memset(&ks.ks[0], 0, sizeof ks.ks[0]);
	journal_close(j);
	CHECK_OK(open_journal(st, &ks, &j, &info, err, sizeof err, 5));
	CHECK(ks.ks[0].has && ks.ks[0].epoch == 3);
	journal_close(j);

	/* a keystore with an older checkpoint (it missed the last one): the newest wins */
	struct fake_set stale = ks;
	CHECK_OK(open_journal(st, &ks, &j, &info, err, sizeof err, 5));
	append_n(j, 4, 4);
	journal_close(j);
	CHECK_OK(open_journal(st, &ks, &j, &info, err, sizeof err, 5)); /* checkpoint 4 everywhere */
	journal_close(j);
	ks.ks[1] = stale.ks[1]; /* keystore 1 forgot: it holds epoch 3 */
	CHECK_OK(open_journal(st, &ks, &j, &info, err, sizeof err, 5));
	CHECK(info.checkpoint_epoch == 4 && info.records == 4 && ks.ks[1].epoch == 4);
	journal_close(j);
	/* no keystore at all: never a new key */
	struct fake_set none;
	memset(&none, 0, sizeof none);
	CHECK_ERR(open_journal(st, &none, &j, &info, err, sizeof err, 1), APP_ETIMEOUT);
	sj_store_close(st);
	rm_rf(dir);
}

/* A store whose put loses its answer once after storing (a broken connection). */
struct lossy {
	struct sj_store *inner;
	int lose;
	unsigned puts;
};

static int lossy_put(void *arg, const char *name, const uint8_t *data, size_t len)
{
	struct lossy *l = arg;
	l->puts++;
	int r = l->inner->ops->put(l->inner->arg, name, data, len);
	if (r == 0 && l->lose) {
		l->lose = 0;
		return APP_ECONN;
	}
	return r;
}

static int lossy_get(void *arg, const char *name, uint8_t **data, size_t *len, size_t max)
{
	struct lossy *l = arg;
	return l->inner->ops->get(l->inner->arg, name, data, len, max);
}

static int lossy_list(void *arg, int (*fn)(void *a, const char *name, uint64_t size), void *a)
{
	struct lossy *l = arg;
	return l->inner->ops->list(l->inner->arg, fn, a);
}

static void test_put_retry(void)
{
	char dir[256], err[SJ_ERR_MAX];
	struct sj_store *inner = NULL;
	struct journal *j = NULL;
	struct fake_set ks;
	new_dir(dir, sizeof dir);
	CHECK_OK(sj_store_dir_open(&inner, dir));
	struct lossy l = {inner, 0, 0};
	static const struct sj_store_ops lops = {lossy_put, lossy_get, lossy_list, NULL};
	struct sj_store st = {&lops, &l};
	memset(&ks, 0, sizeof ks);
	ks.n = 1;
	CHECK_OK(open_journal(&st, &ks, &j, NULL, err, sizeof err, 5));
	append_n(j, 1, 1);
	l.lose = 1;
	append_n(j, 2, 2); /* stored, answer lost, retried: EEXIST with the same bytes is success */
	CHECK(l.puts == 3);
	append_n(j, 3, 3);
	journal_close(j);
	CHECK_OK(open_journal(&st, &ks, &j, NULL, err, sizeof err, 5));
	uint64_t count = 0;
	struct collect c = {.len = 0};
	CHECK_OK(journal_replay(j, collect_cb, &c, &count));
	CHECK(count == 3);
	/* a record already there with other bytes (a fork): the append fails and the journal stops */
	char p[512];
	path_of(p, sizeof p, dir, 4);
	FILE *f = fopen(p, "wb");
	CHECK(f && fputs("junk", f) >= 0);
	if (f)
		fclose(f);
	CHECK_ERR(journal_append(j, "J1 x", 4), APP_EEXIST);
	CHECK_ERR(journal_append(j, "J1 y", 4), APP_ESTATE);
	journal_close(j);
	sj_store_close(inner);
	rm_rf(dir);
}

struct control_thread {
	struct control *ctl;
	int lfd, stop[2];
};

static void *control_main(void *arg)
{
	struct control_thread *t = arg;
	if (control_serve(t->ctl, t->lfd, t->stop[0]) != 0)
		fprintf(stderr, "control_serve failed\n");
	return NULL;
}

/* The parent's real control service and blob store, in a thread; the journal over the channel. */
static void test_parent_store(void)
{
	char bdir[256], sock[300], addr[320], err[SJ_ERR_MAX];
	struct blobstore *bs = NULL;
	struct control_thread t;
	struct control_config cc;
	struct channel_addr ca;
	pthread_t th;
	snprintf(bdir, sizeof bdir, "%s/blobs", g_root);
	snprintf(sock, sizeof sock, "%s/control.sock", g_root);
	snprintf(addr, sizeof addr, "unix:%s", sock);
	struct blobstore_config bc = {bdir, 1 << 20, 1000, 8192};
	CHECK_OK(blobstore_open(&bs, &bc));
	control_config_default(&cc);
	memset(&t, 0, sizeof t);
	CHECK_OK(control_new(&t.ctl, &cc, bs));
	CHECK_OK(channel_addr_parse(&ca, addr));
	CHECK_OK(channel_listen(&ca, 4, &t.lfd));
	CHECK(pipe(t.stop) == 0);
	CHECK(pthread_create(&th, NULL, control_main, &t) == 0);

	struct parentlink *pl = NULL;
	struct parentlink_opts po;
	parentlink_opts_default(&po);
	po.control = addr;
	po.instance_id = "enclave";
	CHECK_OK(parentlink_start(&pl, &po));
	CHECK_OK(parentlink_wait_connected(pl, 5000));
	struct sj_store *st = NULL;
	CHECK_OK(sj_store_parent_open(&st, pl, 5000));
	struct fake_set ks;
	memset(&ks, 0, sizeof ks);
	ks.n = 1;
	struct journal *j = NULL;
	struct sjournal_info info;
	CHECK_OK(open_journal(st, &ks, &j, &info, err, sizeof err, 5));
	CHECK(info.new_key == 1);
	append_n(j, 1, 6);
	journal_close(j);
	CHECK_OK(open_journal(st, &ks, &j, &info, err, sizeof err, 5));
	CHECK(info.records == 6 && info.checkpoint_epoch == 0 && ks.ks[0].epoch == 6);
	struct collect c = {.len = 0};
	uint64_t count = 0;
	CHECK_OK(journal_replay(j, collect_cb, &c, &count));
	CHECK(count == 6 && strstr(c.text, "J1 5 1700000000 note 5\n"));
	journal_close(j);
	/* the parent's store never overwrites: a record already there is refused to a second writer */
	uint8_t *b = NULL;
	size_t bl = 0;
	CHECK_OK(parentlink_blob_get(pl, "journal-00000000000000000002", &b, &bl, SJ_BLOB_MAX, 5000));
	CHECK_ERR(parentlink_blob_put(pl, "journal-00000000000000000002", b, bl, 5000), APP_EEXIST);
	free(b);
	/* a parent that drops a record: refused */
	char path[512];
	snprintf(path, sizeof path, "%s/enclave/journal-00000000000000000003", bdir);
	CHECK(unlink(path) == 0);
	CHECK_ERR(open_journal(st, &ks, &j, &info, err, sizeof err, 5), APP_EROLLBACK);
	CHECK(strstr(err, "record 3 is missing") != NULL);
	sj_store_close(st);
	parentlink_stop(pl);
	CHECK(write(t.stop[1], "x", 1) == 1);
	pthread_join(th, NULL);
	close(t.stop[0]);
	close(t.stop[1]);
	close(t.lfd);
	control_free(t.ctl);
	blobstore_close(bs);
	snprintf(path, sizeof path, "%s/enclave", bdir);
	rm_rf(path);
	rm_rf(bdir);
	(void)unlink(sock);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	log_set_level(LOG_ERROR);
	const char *t = getenv("TMPDIR");
	snprintf(g_root, sizeof g_root, "%s/sjournal_test.XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(g_root)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_record_format);
	RUN(test_first_start_and_restart);
	RUN(test_checkpoint_thread);
	RUN(test_adversarial_parent);
	RUN(test_keystores_undecided);
	RUN(test_put_retry);
	RUN(test_parent_store);
	rm_rf(g_root);
	return test_summary();
}
