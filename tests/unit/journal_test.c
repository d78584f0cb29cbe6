/*
 * journal_test: the journal (enclave/runtime/journal.h) and the persistent state
 * rebuilt from it (enclave/state.h): append + replay, a torn last record,
 * malformed records, the J1 record grammar, replay of jobs and ledger
 * (balances, states, invoices), refusal of gaps, reordering, repeated or
 * forbidden changes, and a custom backend.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appliance/hex.h"
#include "billing/ledger.h"
#include "billing/quote.h"
#include "enclave/runtime/journal.h"
#include "enclave/state.h"
#include "tests/unit/test.h"

static char dir[] = "/tmp/journal_test.XXXXXX";

static void path(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

static void write_file(const char *p, const char *text)
{
	FILE *f = fopen(p, "wb");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static int collect(void *arg, const char *rec, size_t len, uint64_t index)
{
	char *buf = arg;
	size_t n = strlen(buf);
	snprintf(buf + n, 1024 - n, "%llu:%.*s|", (unsigned long long)index, (int)(len > 40 ? 40 : len), rec);
	return 0;
}

static void test_file(void)
{
	char p[256], got[1024] = "";
	struct journal *j = NULL;
	path(p, sizeof p, "a.journal");
	CHECK_OK(journal_open_file(&j, p));
	CHECK_OK(journal_append(j, "first record", 12));
	CHECK_OK(journal_append(j, "second", 6));
	CHECK_ERR(journal_append(j, "bad\nline", 8), APP_EINVAL);
	CHECK_ERR(journal_append(j, "", 0), APP_EINVAL);
	CHECK_ERR(journal_append(j, "caf\xc3\xa9", 5), APP_EINVAL);
	CHECK(journal_count(j) == 2);
	journal_close(j);
	CHECK_OK(journal_open_file(&j, p));
	uint64_t n = 0;
	CHECK_OK(journal_replay(j, collect, got, &n));
	CHECK(n == 2);
	CHECK_STR(got, "1:first record|2:second|");
	CHECK_OK(journal_append(j, "third", 5));
	journal_close(j);
	/* a torn tail (a crash in the middle of an append) is cut off */
	FILE *f = fopen(p, "ab");
	fputs("half a rec", f);
	fclose(f);
	CHECK_OK(journal_open_file(&j, p));
	got[0] = 0;
	CHECK_OK(journal_replay(j, collect, got, &n));
	CHECK(n == 3);
	CHECK_STR(got, "1:first record|2:second|3:third|");
	CHECK_OK(journal_append(j, "fourth", 6));
	journal_close(j);
	CHECK_OK(journal_open_file(&j, p));
	got[0] = 0;
	CHECK_OK(journal_replay(j, collect, got, &n));
	CHECK(n == 4);
	journal_close(j);
	/* a control byte or an empty line inside: refused */
	path(p, sizeof p, "b.journal");
	write_file(p, "ok\n\nnext\n");
	CHECK_OK(journal_open_file(&j, p));
	CHECK_ERR(journal_replay(j, collect, got, &n), APP_EPARSE);
	journal_close(j);
	write_file(p, "ok\nta\tb\n");
	CHECK_OK(journal_open_file(&j, p));
	CHECK_ERR(journal_replay(j, collect, got, &n), APP_EPARSE);
	journal_close(j);
}

static void test_records(void)
{
	static const char *const good[] = {
		("J1 1 1700000000 seen 1111111111111111111111111111111111111111111111111111111111111111 "
		 "2222222222222222222222222222222222222222222222222222222222222222 1699999990 1"),
		"J1 2 1700000001 state 1111111111111111111111111111111111111111111111111111111111111111 quoted",
		("J1 3 1700000002 state 1111111111111111111111111111111111111111111111111111111111111111 invoiced "
		 "3333333333333333333333333333333333333333333333333333333333333333"),
		"J1 4 1700000003 state 1111111111111111111111111111111111111111111111111111111111111111 failed expired",
	};
	static const char *const bad[] = {
		"J2 1 1 seen",
		"J1 0 1700000000 state 1111111111111111111111111111111111111111111111111111111111111111 quoted",
		"J1 01 1700000000 state 1111111111111111111111111111111111111111111111111111111111111111 quoted",
		"J1 1  1700000000 state 1111111111111111111111111111111111111111111111111111111111111111 quoted",
		"J1 1 1700000000 state 1111111111111111111111111111111111111111111111111111111111111111 quoted ",
		"J1 1 1700000000 state 1111111111111111111111111111111111111111111111111111111111111111 Quoted",
		"J1 1 1700000000 state 1111111111111111111111111111111111111111111111111111111111111111 quoted x",
		"J1 1 1700000000 state 1111111111111111111111111111111111111111111111111111111111111111 invoiced",
		"J1 1 1700000000 state 1111111111111111111111111111111111111111111111111111111111111111 failed Bad-Word",
		"J1 1 1700000000 state 11111111111111111111111111111111111111111111111111111111111111AA quoted",
		("J1 1 1700000000 seen 1111111111111111111111111111111111111111111111111111111111111111 "
		 "2222222222222222222222222222222222222222222222222222222222222222 1699999990 2"),
		"J1 1 1700000000 frob 1111111111111111111111111111111111111111111111111111111111111111 x",
	};
	struct estate_record r;
	const char *why;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		CHECKM(estate_parse_record(&r, &why, good[i], strlen(good[i])) == 0, "good %zu: %s", i, why);
		char buf[512];
		size_t n = estate_format_record(buf, sizeof buf, &r);
		CHECKM(n == strlen(good[i]) && !memcmp(buf, good[i], n), "good %zu does not round-trip", i);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECKM(estate_parse_record(&r, &why, bad[i], strlen(bad[i])) == APP_EPARSE, "bad %zu accepted", i);
}

/* Builds a state over the journal at p. */
static int open_state(struct journal **j, struct estate **st, const char *p, char *err)
{
	int r = journal_open_file(j, p);
	if (r)
		return r;
	r = estate_open(st, err, 256, *j, 1000);
	if (r) {
		journal_close(*j);
		*j = NULL;
	}
	return r;
}

static void test_state_replay(void)
{
	char p[256], err[256] = "";
	struct journal *j = NULL;
	struct estate *st = NULL;
	struct estate_job *a = NULL, *b = NULL, *c = NULL;
	uint8_t ja[32], jb[32], jc[32], client[32], other[32], ph[32], ph2[32], rid[32];
	memset(ja, 0xa1, 32);
	memset(jb, 0xb2, 32);
	memset(jc, 0xc3, 32);
	memset(client, 0x11, 32);
	memset(other, 0x22, 32);
	memset(ph, 0x33, 32);
	memset(ph2, 0x44, 32);
	memset(rid, 0x55, 32);
	path(p, sizeof p, "state.journal");
	unlink(p);
	CHECK_OK(open_state(&j, &st, p, err));
	if (!st)
		return;
	struct ledger *l = estate_ledger(st);
	/* job a: quoted, invoiced, paid, run, done */
	struct quote q;
	struct quote_config qc = {1000, 100, 0, 0, 600};
	CHECK_OK(estate_job_add(st, &a, ja, client, 1700000000, 1, 1700000001));
	CHECK_ERR(estate_job_add(st, &b, ja, client, 1700000000, 1, 1700000001), APP_EEXIST);
	CHECK_OK(quote_make(&q, &qc, ja, client, 1000, 5, 1700000001));
	CHECK_OK(ledger_add_quote(l, &q, 1700000001));
	CHECK_OK(estate_job_set(st, a, JOB_QUOTED, NULL, 1700000001));
	CHECK_OK(ledger_add_invoice(l, ph, q.id, q.amount_msat, 1700000600, 1700000002));
	CHECK_OK(estate_job_set(st, a, JOB_INVOICED, ph, 1700000002));
	CHECK_ERR(estate_job_set(st, a, JOB_FETCHING, NULL, 1700000003), APP_ESTATE);
	CHECK_OK(ledger_add_paid(l, ph, q.amount_msat, 1700000003, 1700000003));
	CHECK_ERR(ledger_add_paid(l, ph, q.amount_msat, 1700000003, 1700000003), APP_EEXIST); /* duplicate */
	CHECK_OK(ledger_add_debit(l, ja, client, q.amount_msat, 1700000003));
	CHECK_OK(estate_job_set(st, a, JOB_PAID, NULL, 1700000003));
	CHECK_OK(estate_job_set(st, a, JOB_FETCHING, NULL, 1700000003));
	CHECK_OK(estate_job_set(st, a, JOB_TRAINING, NULL, 1700000004));
	CHECK_OK(estate_job_set(st, a, JOB_PUBLISHING, NULL, 1700000004));
	CHECK_OK(estate_job_set(st, a, JOB_DONE, rid, 1700000005));
	/* job b: paid, fails, refunded */
	CHECK_OK(estate_job_add(st, &b, jb, other, 1700000010, 0, 1700000010));
	CHECK_OK(quote_make(&q, &qc, jb, other, 1, 1, 1700000010));
	CHECK_OK(ledger_add_quote(l, &q, 1700000010));
	CHECK_OK(estate_job_set(st, b, JOB_QUOTED, NULL, 1700000010));
	CHECK_OK(ledger_add_invoice(l, ph2, q.id, q.amount_msat, 1700000600, 1700000010));
	CHECK_ERR(estate_job_set(st, b, JOB_INVOICED, ph, 1700000010), APP_EEXIST); /* another job's invoice */
	CHECK_OK(estate_job_set(st, b, JOB_INVOICED, ph2, 1700000010));
	CHECK_OK(ledger_add_paid(l, ph2, q.amount_msat, 1700000011, 1700000011));
	CHECK_OK(ledger_add_debit(l, jb, other, q.amount_msat, 1700000011));
	CHECK_OK(estate_job_set(st, b, JOB_PAID, NULL, 1700000011));
	CHECK_OK(estate_job_set(st, b, JOB_FETCHING, NULL, 1700000011));
	CHECK_OK(ledger_refund_job(l, jb, 1700000012));
	CHECK_OK(estate_job_set(st, b, JOB_FAILED, "sha256", 1700000012));
	CHECK_ERR(estate_job_set(st, b, JOB_FAILED, "again", 1700000012), APP_ESTATE);
	CHECK_ERR(estate_job_set(st, a, JOB_FAILED, "Bad Word", 1700000012), APP_ESTATE);
	/* job c: unfinished (quoted), and an unpaid invoice */
	CHECK_OK(estate_job_add(st, &c, jc, client, 1700000020, 0, 1700000020));
	CHECK_OK(quote_make(&q, &qc, jc, client, 1, 1, 1700000020));
	CHECK_OK(ledger_add_quote(l, &q, 1700000020));
	uint8_t ph3[32];
	memset(ph3, 0x66, 32);
	CHECK_OK(ledger_add_invoice(l, ph3, q.id, q.amount_msat, 1700000700, 1700000020));
	CHECK_OK(estate_job_set(st, c, JOB_QUOTED, NULL, 1700000020));
	uint64_t bal_client = ledger_balance(l, client), bal_other = ledger_balance(l, other);
	CHECK(bal_client == 0 && bal_other == 1100);
	CHECK(estate_active_count(st) == 1 && estate_job_count(st) == 3);
	estate_free(st, NULL);
	journal_close(j);

	/* replay */
	CHECK_OK(open_state(&j, &st, p, err));
	if (!st)
		return;
	l = estate_ledger(st);
	CHECK(ledger_balance(l, client) == bal_client && ledger_balance(l, other) == bal_other);
	a = estate_job(st, ja);
	b = estate_job(st, jb);
	c = estate_job(st, jc);
	CHECK(a && a->state == JOB_DONE && a->has_result && !memcmp(a->result_id, rid, 32) && a->encrypted);
	CHECK(b && b->state == JOB_FAILED && !strcmp(b->reason, "sha256") && !b->encrypted);
	CHECK(c && c->state == JOB_QUOTED && c->created_at == 1700000020);
	CHECK(estate_job_by_invoice(st, ph) == a && estate_job_by_invoice(st, ph2) == b);
	CHECK(ledger_job_state(l, jb) == 2);
	struct estate_invoice *inv = NULL;
	size_t ninv = 0;
	CHECK_OK(estate_unpaid_invoices(st, &inv, &ninv));
	CHECK(ninv == 1 && inv && !memcmp(inv[0].payment_hash, ph3, 32) && inv[0].expires_at == 1700000700);
	free(inv);
	/* the replayed state goes on journaling */
	CHECK_OK(estate_job_set(st, c, JOB_FAILED, "restart", 1700000030));
	CHECK(estate_active_count(st) == 0);
	CHECK(estate_evict(st, 1700000015, NULL) == 2); /* a and b: terminal and old */
	CHECK(estate_job(st, ja) == NULL && estate_job(st, jc) != NULL);
	estate_free(st, NULL);
	journal_close(j);
	CHECK_OK(open_state(&j, &st, p, err));
	CHECK(st && estate_job(st, jc) && estate_job(st, jc)->state == JOB_FAILED);
	estate_free(st, NULL);
	journal_close(j);
}

static void replay_text(const char *name, const char *text, int want, const char *why_part)
{
	char p[256], err[256] = "";
	struct journal *j = NULL;
	struct estate *st = NULL;
	path(p, sizeof p, name);
	write_file(p, text);
	int r = open_state(&j, &st, p, err);
	CHECKM(r == want, "%s: %d, expected %d (%s)", name, r, want, err);
	CHECKM(!why_part || strstr(err, why_part), "%s: '%s' lacks '%s'", name, err, why_part);
	estate_free(st, NULL);
	journal_close(j);
}

#define JOB "1111111111111111111111111111111111111111111111111111111111111111"
#define CL "2222222222222222222222222222222222222222222222222222222222222222"

static void test_replay_refusals(void)
{
	replay_text("ok.j", "J1 1 5 seen " JOB " " CL " 4 0\nJ1 2 6 state " JOB " quoted\n", 0, NULL);
	replay_text("gap.j", "J1 1 5 seen " JOB " " CL " 4 0\nJ1 3 6 state " JOB " quoted\n", APP_EROLLBACK,
		    "record 2: J1 sequence number out of order");
	replay_text("repeat.j", "J1 1 5 seen " JOB " " CL " 4 0\nJ1 1 6 state " JOB " quoted\n", APP_EROLLBACK, NULL);
	replay_text("twice.j", "J1 1 5 seen " JOB " " CL " 4 0\nJ1 2 6 seen " JOB " " CL " 4 0\n", APP_EEXIST,
		    "job seen twice");
	replay_text("unknown.j", "J1 1 6 state " JOB " quoted\n", APP_ENOTFOUND, "unknown job");
	replay_text("forbidden.j", "J1 1 5 seen " JOB " " CL " 4 0\nJ1 2 6 state " JOB " done " JOB "\n", APP_ESTATE,
		    "forbids");
	replay_text("garbage.j", "J1 1 5 seen " JOB " " CL " 4 0\nhello world\n", APP_EPARSE, "record 2");
	replay_text("ledger.j", "L1 2 5 credit " CL " 10 grant " JOB "\n", APP_EROLLBACK, "ledger record 1");
	replay_text("ledgerbad.j", "L1 1 5 paid " JOB " 10 5\n", APP_ENOTFOUND, "ledger record 1");
	replay_text("mixed.j",
		    "L1 1 5 credit " CL " 10 grant " JOB "\nJ1 1 5 seen " JOB " " CL " 4 0\nL1 2 6 credit " CL
		    " 5 grant " CL "\n",
		    0, NULL);
}

/* A backend in memory (what the keystore work will provide, sealed). */
struct mem {
	char buf[4096];
	size_t len;
	int fail;
};

static int mem_append(void *arg, const char *rec, size_t len)
{
	struct mem *m = arg;
	if (m->fail || m->len + len + 1 > sizeof m->buf)
		return APP_EIO;
	memcpy(m->buf + m->len, rec, len);
	m->len += len;
	m->buf[m->len++] = '\n';
	return 0;
}

static int mem_load(void *arg, char **text, size_t *len)
{
	struct mem *m = arg;
	*text = malloc(m->len + 1);
	if (!*text)
		return APP_ENOMEM;
	memcpy(*text, m->buf, m->len);
	(*text)[m->len] = 0;
	*len = m->len;
	return 0;
}

static void test_custom_backend(void)
{
	static const struct journal_backend be = {mem_append, mem_load, NULL};
	struct mem m = {{0}, 0, 0};
	struct journal *j = NULL;
	struct estate *st = NULL;
	struct estate_job *job = NULL;
	char err[256];
	uint8_t id[32], cl[32];
	memset(id, 7, 32);
	memset(cl, 8, 32);
	CHECK_OK(journal_open(&j, &be, &m));
	CHECK_OK(estate_open(&st, err, sizeof err, j, 10));
	CHECK_OK(estate_job_add(st, &job, id, cl, 100, 0, 101));
	m.fail = 1; /* the store refuses: the change is not applied, and nothing after it */
	CHECK_ERR(estate_job_set(st, job, JOB_QUOTED, NULL, 102), APP_EIO);
	CHECK(job->state == JOB_RECEIVED);
	m.fail = 0;
	CHECK_ERR(estate_job_set(st, job, JOB_QUOTED, NULL, 102), APP_ESTATE);
	estate_free(st, NULL);
	journal_close(j);
	CHECK_OK(journal_open(&j, &be, &m));
	CHECK_OK(estate_open(&st, err, sizeof err, j, 10));
	CHECK(st && estate_job(st, id) && estate_job(st, id)->state == JOB_RECEIVED);
	estate_free(st, NULL);
	journal_close(j);
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	RUN(test_file);
	RUN(test_records);
	RUN(test_state_replay);
	RUN(test_replay_refusals);
	RUN(test_custom_backend);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return test_summary();
}
