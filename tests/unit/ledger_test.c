/*
 * ledger_test: the billing ledger: exactly-once rules, replay equality,
 * overflow refusal, journal hook, and a table of malformed records.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/hash.h"
#include "billing/ledger.h"
#include "billing/quote.h"
#include "tests/unit/test.h"

static void id32(uint8_t out[32], const char *label)
{
	hash_sha256(out, label, strlen(label));
}

static const struct quote_config CFG = {.base_msat = 1000, .msat_per_unit = 10, .min_msat = 2000, .max_msat = 0, .ttl_s = 600};

static int same_accounts(const struct ledger *a, const struct ledger *b)
{
	struct ledger_account *va, *vb;
	size_t na, nb;
	int same = 0;
	if (ledger_accounts(a, &va, &na) || ledger_accounts(b, &vb, &nb))
		return 0;
	same = na == nb && (na == 0 || memcmp(va, vb, na * sizeof *va) == 0);
	free(va);
	free(vb);
	return same;
}

static void test_lifecycle(void)
{
	struct ledger *l;
	struct quote q;
	uint8_t job[32], client[32], ph[32];
	id32(job, "job1");
	id32(client, "client1");
	id32(ph, "hash1");
	CHECK_OK(ledger_new(&l));
	struct quote_config cfg = CFG;
	cfg.min_msat = 0;
	CHECK_OK(quote_make(&q, &cfg, job, client, 3 * 1024 * 1024 + 1, 10, 1000)); /* 4 MiB x 10 */
	CHECK(q.units == 40 && q.amount_msat == 1400);
	CHECK_OK(ledger_add_quote(l, &q, 1000));
	CHECK_ERR(ledger_add_quote(l, &q, 1000), APP_EEXIST);
	CHECK_OK(ledger_add_invoice(l, ph, q.id, q.amount_msat, q.expires_at, 1001));
	CHECK_ERR(ledger_add_invoice(l, ph, q.id, q.amount_msat, q.expires_at, 1001), APP_EEXIST);
	CHECK(ledger_balance(l, client) == 0);
	/* a debit before payment: no balance */
	CHECK_ERR(ledger_add_debit(l, job, client, q.amount_msat, 1002), APP_ELIMIT);
	/* a short payment is never credited */
	CHECK_ERR(ledger_add_paid(l, ph, q.amount_msat - 1, 1100, 1100), APP_ERANGE);
	CHECK_OK(ledger_add_paid(l, ph, q.amount_msat, 1100, 1100));
	CHECK(ledger_balance(l, client) == 1400);
	/* the same payment again (duplicate notification, lookup, replayed event): credited once */
	for (int i = 0; i < 5; i++)
		CHECK_ERR(ledger_add_paid(l, ph, q.amount_msat, 1100, 1101 + (uint64_t)i), APP_EEXIST);
	CHECK(ledger_balance(l, client) == 1400);
	struct ledger_invoice_info ii;
	CHECK_OK(ledger_invoice_get(l, ph, &ii));
	CHECK(ii.paid && ii.paid_msat == 1400 && memcmp(ii.client, client, 32) == 0 && !ii.is_topup);
	CHECK_OK(ledger_add_debit(l, job, client, q.amount_msat, 1200));
	CHECK_ERR(ledger_add_debit(l, job, client, q.amount_msat, 1201), APP_EEXIST);
	CHECK(ledger_balance(l, client) == 0);
	CHECK(ledger_job_state(l, job) == 1);
	/* the job fails: its amount becomes the client's credit, once */
	CHECK_OK(ledger_refund_job(l, job, 1300));
	CHECK_ERR(ledger_refund_job(l, job, 1301), APP_EEXIST);
	CHECK(ledger_balance(l, client) == 1400);
	CHECK(ledger_job_state(l, job) == 2);
	/* prepaid credit pays the next job without an invoice */
	uint8_t job2[32];
	id32(job2, "job2");
	CHECK_OK(ledger_add_debit(l, job2, client, 1000, 1400));
	CHECK(ledger_balance(l, client) == 400);
	CHECK_ERR(ledger_add_debit(l, job2, client, 1, 1401), APP_EEXIST);
	struct ledger_account a;
	CHECK_OK(ledger_account_get(l, client, &a));
	CHECK(a.paid_msat == 1400 && a.debited_msat == 2400 && a.credited_msat == 1400 && a.balance_msat == 400);
	CHECK(ledger_count(l) == 6); /* quote, invoice, paid, debit, refund, debit */
	ledger_free(l);
}

static void test_expired_and_unknown(void)
{
	struct ledger *l;
	uint8_t client[32], ph[32], ph2[32], other[32];
	id32(client, "c");
	id32(ph, "topup");
	id32(ph2, "never-issued");
	id32(other, "other");
	CHECK_OK(ledger_new(&l));
	CHECK_OK(ledger_add_topup(l, ph, client, 5000, 2000, 1000));
	/* settled after expiry: never credited, and still not paid */
	CHECK_ERR(ledger_add_paid(l, ph, 5000, 2001, 2001), APP_EEXPIRED);
	CHECK(ledger_balance(l, client) == 0);
	/* an unknown payment_hash is never credited */
	CHECK_ERR(ledger_add_paid(l, ph2, 5000, 1500, 1500), APP_ENOTFOUND);
	/* an invoice for an unknown quote */
	uint8_t qid[QUOTE_ID_LEN] = {1};
	CHECK_ERR(ledger_add_invoice(l, ph2, qid, 100, 2000, 1000), APP_ENOTFOUND);
	/* overpayment is kept as credit */
	CHECK_OK(ledger_add_paid(l, ph, 6000, 2000, 2000));
	CHECK(ledger_balance(l, client) == 6000);
	/* refunds: only a debited job, only to its client, only its amount */
	uint8_t job[32];
	id32(job, "j");
	CHECK_ERR(ledger_refund_job(l, job, 2100), APP_ENOTFOUND);
	CHECK_OK(ledger_add_debit(l, job, client, 2500, 2100));
	CHECK_ERR(ledger_add_credit(l, other, 2500, LEDGER_REASON_REFUND, job, 2101), APP_EREFUSED);
	CHECK_ERR(ledger_add_credit(l, client, 2501, LEDGER_REASON_REFUND, job, 2101), APP_ERANGE);
	CHECK_OK(ledger_add_credit(l, client, 2500, LEDGER_REASON_REFUND, job, 2101));
	/* operator credits: unique per (reason, ref) */
	uint8_t ref[32];
	id32(ref, "grant-1");
	CHECK_OK(ledger_add_credit(l, other, 77, "grant", ref, 2200));
	CHECK_ERR(ledger_add_credit(l, other, 77, "grant", ref, 2201), APP_EEXIST);
	CHECK_OK(ledger_add_credit(l, other, 77, "goodwill", ref, 2202));
	CHECK(ledger_balance(l, other) == 154);
	CHECK_ERR(ledger_add_credit(l, other, 1, "Bad Reason", ref, 2203), APP_EINVAL);
	CHECK_ERR(ledger_add_credit(l, other, 0, "grant", job, 2203), APP_EINVAL);
	CHECK_ERR(ledger_add_credit(l, other, 1, "", job, 2203), APP_EINVAL);
	ledger_free(l);
}

static void test_overflow(void)
{
	struct ledger *l;
	uint8_t client[32], ph1[32], ph2[32], ref[32];
	id32(client, "rich");
	id32(ph1, "p1");
	id32(ph2, "p2");
	id32(ref, "r");
	CHECK_OK(ledger_new(&l));
	CHECK_OK(ledger_add_topup(l, ph1, client, UINT64_MAX - 10, 100, 1));
	CHECK_OK(ledger_add_topup(l, ph2, client, 20, 100, 1));
	CHECK_OK(ledger_add_paid(l, ph1, UINT64_MAX - 10, 50, 50));
	CHECK_ERR(ledger_add_paid(l, ph2, 20, 50, 50), APP_ERANGE);
	CHECK_ERR(ledger_add_credit(l, client, 11, "grant", ref, 51), APP_ERANGE);
	CHECK(ledger_balance(l, client) == UINT64_MAX - 10);
	/* the refused records left no trace: the invoice can still be paid later (within range) */
	struct ledger_invoice_info ii;
	CHECK_OK(ledger_invoice_get(l, ph2, &ii));
	CHECK(!ii.paid);
	CHECK(ledger_count(l) == 3);

	/* quote arithmetic */
	uint64_t v;
	struct quote_config c = {.base_msat = UINT64_MAX, .msat_per_unit = 1, .ttl_s = 60};
	CHECK_ERR(quote_price(&v, &c, 1), APP_ERANGE);
	c.base_msat = 0;
	c.msat_per_unit = UINT64_MAX / 2;
	CHECK_ERR(quote_price(&v, &c, 3), APP_ERANGE);
	CHECK_ERR(quote_units(&v, UINT64_MAX, UINT32_MAX), APP_ELIMIT);
	ledger_free(l);
}

static int journal_lines;
static int journal_fail;
static char journal_copy[1 << 16];
static size_t journal_len;

static int on_journal(void *arg, const char *line, size_t len)
{
	(void)arg;
	if (journal_fail)
		return -1;
	journal_lines++;
	if (len < sizeof journal_copy - journal_len) {
		memcpy(journal_copy + journal_len, line, len);
		journal_len += len;
	}
	return 0;
}

/* A random mix of valid and invalid operations; replaying the journal gives the same ledger. */
static void test_replay_equality(void)
{
	struct ledger *l, *r = NULL;
	uint8_t clients[4][32], jobs[16][32], hashes[24][32];
	struct quote quotes[16];
	char label[32];
	uint64_t seed = 12345;
	for (int i = 0; i < 4; i++) {
		snprintf(label, sizeof label, "client%d", i);
		id32(clients[i], label);
	}
	for (int i = 0; i < 16; i++) {
		snprintf(label, sizeof label, "job%d", i);
		id32(jobs[i], label);
	}
	for (int i = 0; i < 24; i++) {
		snprintf(label, sizeof label, "hash%d", i);
		id32(hashes[i], label);
	}
	CHECK_OK(ledger_new(&l));
	journal_lines = 0;
	journal_len = 0;
	ledger_set_journal(l, on_journal, NULL);
	int ok = 0, refused = 0;
	for (int step = 0; step < 400; step++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		unsigned x = (unsigned)(seed >> 33);
		int c = x % 4, j = (x >> 2) % 16, h = (x >> 6) % 24;
		uint64_t t = 1000 + (uint64_t)step;
		int rc;
		switch ((x >> 11) % 7) {
		case 0:
			if (quote_make(&quotes[j], &CFG, jobs[j], clients[c], (x >> 14) % 10000000, 1 + (x >> 20) % 5, t))
				continue;
			rc = ledger_add_quote(l, &quotes[j], t);
			break;
		case 1:
			rc = ledger_add_invoice(l, hashes[h], quotes[j].id, quotes[j].amount_msat ? quotes[j].amount_msat : 1,
						t + 100, t);
			break;
		case 2:
			rc = ledger_add_topup(l, hashes[h], clients[c], 1 + (x >> 14) % 5000, t + 50, t);
			break;
		case 3:
			rc = ledger_add_paid(l, hashes[h], 1 + (x >> 14) % 20000, t, t);
			break;
		case 4:
			rc = ledger_add_debit(l, jobs[j], clients[c], 1 + (x >> 14) % 3000, t);
			break;
		case 5:
			rc = ledger_refund_job(l, jobs[j], t);
			break;
		default:
			rc = ledger_add_credit(l, clients[c], 1 + (x >> 14) % 100, "grant", hashes[h], t);
			break;
		}
		if (rc == 0)
			ok++;
		else
			refused++;
	}
	CHECKM(ok > 50 && refused > 50, "ok %d refused %d", ok, refused);
	CHECK((uint64_t)journal_lines == ledger_count(l));
	size_t jl;
	const char *j = ledger_journal(l, &jl);
	CHECK(jl == journal_len && memcmp(j, journal_copy, jl) == 0);
	const char *why;
	size_t line;
	CHECK_OK(ledger_replay(&r, &why, &line, j, jl));
	if (r) {
		CHECK(same_accounts(l, r));
		CHECK(ledger_count(r) == ledger_count(l));
		size_t jl2;
		const char *j2 = ledger_journal(r, &jl2);
		CHECK(jl2 == jl && memcmp(j, j2, jl) == 0);
		for (int i = 0; i < 4; i++)
			CHECK(ledger_balance(l, clients[i]) == ledger_balance(r, clients[i]));
		/* replaying a record again on top is refused, state unchanged */
		struct ledger_record rec;
		const char *first_nl = memchr(j, '\n', jl);
		CHECK_OK(ledger_record_parse(&rec, NULL, j, (size_t)(first_nl - j) + 1));
		CHECK(ledger_append(r, &rec) != 0 || rec.type == LEDGER_CREDIT);
		ledger_free(r);
	}
	/* a journal hook that fails: nothing applied */
	uint8_t ph[32], cl[32];
	id32(ph, "hook");
	id32(cl, "hookclient");
	journal_fail = 1;
	uint64_t before = ledger_count(l);
	CHECK_ERR(ledger_add_topup(l, ph, cl, 10, 100, 1), APP_EIO);
	CHECK(ledger_count(l) == before);
	struct ledger_invoice_info ii;
	CHECK_ERR(ledger_invoice_get(l, ph, &ii), APP_ENOTFOUND);
	journal_fail = 0;
	CHECK_OK(ledger_add_topup(l, ph, cl, 10, 100, 1));
	ledger_free(l);
}

static void test_replay_refusals(void)
{
	struct ledger *l, *r;
	uint8_t client[32], ph[32];
	id32(client, "c");
	id32(ph, "h");
	CHECK_OK(ledger_new(&l));
	CHECK_OK(ledger_add_topup(l, ph, client, 100, 500, 10));
	CHECK_OK(ledger_add_paid(l, ph, 100, 20, 20));
	size_t jl;
	const char *j = ledger_journal(l, &jl);
	char buf[2048];
	const char *why;
	size_t line;
	/* a duplicated paid record (seq changed so only the rule refuses it) */
	const char *second = (const char *)memchr(j, '\n', jl) + 1;
	size_t n2 = jl - (size_t)(second - j);
	int n = snprintf(buf, sizeof buf, "%.*sL1 3%.*s", (int)jl, j, (int)(n2 - 4), second + 4);
	CHECK_ERR(ledger_replay(&r, &why, &line, buf, (size_t)n), APP_EEXIST);
	CHECK(line == 3);
	/* a gap in seq */
	n = snprintf(buf, sizeof buf, "%.*sL1 4%.*s", (int)jl, j, (int)(n2 - 4), second + 4);
	CHECK_ERR(ledger_replay(&r, &why, &line, buf, (size_t)n), APP_EROLLBACK);
	/* reordered: paid before its topup */
	n = snprintf(buf, sizeof buf, "%.*s%.*s", (int)n2, second, (int)(jl - n2), j);
	CHECK_ERR(ledger_replay(&r, &why, &line, buf, (size_t)n), APP_EROLLBACK);
	/* truncated last line */
	CHECK_ERR(ledger_replay(&r, &why, &line, j, jl - 1), APP_EPARSE);
	/* empty journal: an empty ledger */
	CHECK_OK(ledger_replay(&r, &why, &line, "", 0));
	if (r) {
		CHECK(ledger_count(r) == 0);
		ledger_free(r);
	}
	CHECK_OK(ledger_replay(&r, &why, &line, j, jl));
	if (r) {
		CHECK(ledger_balance(r, client) == 100);
		ledger_free(r);
	}
	ledger_free(l);
}

static void test_malformed_records(void)
{
	static const char H64[] = "0000000000000000000000000000000000000000000000000000000000000001";
	static const char H32[] = "00000000000000000000000000000002";
	char ok_line[512];
	snprintf(ok_line, sizeof ok_line, "L1 1 100 topup %s %s 5 200", H64, H64);
	struct ledger_record rec;
	CHECK_OK(ledger_record_parse(&rec, NULL, ok_line, strlen(ok_line)));
	CHECK(rec.type == LEDGER_TOPUP && rec.seq == 1 && rec.at == 100 && rec.amount_msat == 5 && rec.expires_at == 200);
	char fmt[LEDGER_RECORD_MAX];
	size_t n = ledger_record_format(fmt, sizeof fmt, &rec);
	CHECK(n == strlen(ok_line) + 1 && memcmp(fmt, ok_line, n - 1) == 0 && fmt[n - 1] == '\n');

	struct {
		const char *fmt;
		int err;
	} bad[] = {
		{"", APP_EVERSION},
		{"L2 1 100 topup %1$s %1$s 5 200", APP_EVERSION},
		{"L1 0 100 topup %1$s %1$s 5 200", APP_EPARSE},           /* seq 0 */
		{"L1 01 100 topup %1$s %1$s 5 200", APP_EPARSE},          /* leading zero */
		{"L1 1 100 topup %1$s %1$s 5 200 ", APP_EPARSE},          /* trailing space */
		{"L1 1 100  topup %1$s %1$s 5 200", APP_EPARSE},          /* double space */
		{"L1 1 100 topup %1$s %1$s 5", APP_EPARSE},               /* field missing */
		{"L1 1 100 topup %1$s %1$s 5 200 7", APP_EPARSE},         /* extra field */
		{"L1 1 100 topup %1$s %1$s 0 200", APP_EINVAL},           /* zero amount */
		{"L1 1 100 topup %1$s %1$s -5 200", APP_EPARSE},          /* sign */
		{"L1 1 100 topup %1$s %1$s 18446744073709551616 200", APP_EPARSE}, /* 2^64 */
		{"L1 1 100 topup %1$.62s %1$s 5 200", APP_EPARSE},        /* short hex */
		{"L1 1 100 topup %1$sAB %1$s 5 200", APP_EPARSE},         /* long hex */
		{"L1 1 100 topup 00000000000000000000000000000000000000000000000000000000000000AB %1$s 5 200", APP_EPARSE},
		{"L1 1 100 topdown %1$s %1$s 5 200", APP_EPARSE},         /* unknown type */
		{"L1 1 100 paid %1$s 5", APP_EPARSE},
		{"L1 1 100 credit %1$s 5 Grant %1$s", APP_EINVAL},       /* reason charset */
		{"L1 1 100 credit %1$s 5 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa %1$s", APP_EPARSE}, /* reason too long */
		{"L1 1 100 quote %2$s %1$s %1$s 5", APP_EPARSE},
		{"L1 1 100 quote %1$s %1$s %1$s 5 9", APP_EPARSE},        /* quote id must be 32 hex */
		{"L1 1 100 debit %1$s %1$s 5\n\n", APP_EPARSE},           /* two newlines */
		{"L1 1 1x0 debit %1$s %1$s 5", APP_EPARSE},
		{"l1 1 100 debit %1$s %1$s 5", APP_EVERSION},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char line[1024];
		const char *why = NULL;
		int len = snprintf(line, sizeof line, bad[i].fmt, H64, H32);
		int r = ledger_record_parse(&rec, &why, line, (size_t)len);
		CHECKM(r == bad[i].err && why, "case %zu \"%s\": %d (%s), expected %d", i, bad[i].fmt, r, why ? why : "-",
		       bad[i].err);
	}
	/* a NUL inside, and over the size cap */
	char line[LEDGER_RECORD_MAX + 8];
	snprintf(line, sizeof line, "L1 1 100 debit %s %s 5", H64, H64);
	line[20] = 0;
	CHECK_ERR(ledger_record_parse(&rec, NULL, line, strlen(line + 21) + 21), APP_EPARSE);
	memset(line, 'a', sizeof line);
	CHECK_ERR(ledger_record_parse(&rec, NULL, line, LEDGER_RECORD_MAX + 1), APP_ETOOBIG);
	/* every type round-trips */
	snprintf(line, sizeof line, "L1 9 100 quote %s %s %s 5 9", H32, H64, H64);
	CHECK_OK(ledger_record_parse(&rec, NULL, line, strlen(line)));
	n = ledger_record_format(fmt, sizeof fmt, &rec);
	CHECK(n && memcmp(fmt, line, n - 1) == 0);
	snprintf(line, sizeof line, "L1 9 100 credit %s 18446744073709551615 refund %s", H64, H64);
	CHECK_OK(ledger_record_parse(&rec, NULL, line, strlen(line)));
	CHECK(rec.amount_msat == UINT64_MAX && strcmp(rec.reason, "refund") == 0);
	n = ledger_record_format(fmt, sizeof fmt, &rec);
	CHECK(n && memcmp(fmt, line, n - 1) == 0);
}

static void test_quote(void)
{
	struct quote q, q2;
	uint8_t job[32], client[32];
	id32(job, "j");
	id32(client, "c");
	struct quote_config c = CFG;
	CHECK_OK(quote_make(&q, &c, job, client, 0, 1, 100));
	CHECK(q.units == 1 && q.amount_msat == 2000); /* floored at min */
	CHECK(q.expires_at == 700 && !quote_expired(&q, 700) && quote_expired(&q, 701));
	CHECK_OK(quote_make(&q2, &c, job, client, 0, 1, 100));
	CHECK(memcmp(q.id, q2.id, QUOTE_ID_LEN) == 0); /* deterministic */
	CHECK_OK(quote_make(&q2, &c, job, client, 0, 1, 101));
	CHECK(memcmp(q.id, q2.id, QUOTE_ID_LEN) != 0);
	CHECK_OK(quote_check_bid(&q, 2000));
	CHECK_ERR(quote_check_bid(&q, 1999), APP_ERANGE);
	c.max_msat = 5000;
	CHECK_ERR(quote_make(&q, &c, job, client, 500ULL * 1024 * 1024, 1, 100), APP_ELIMIT); /* 1000+5000 > max */
	CHECK_ERR(quote_make(&q, &c, job, client, 1, 0, 100), APP_EINVAL);
	c.ttl_s = 0;
	CHECK_ERR(quote_make(&q, &c, job, client, 1, 1, 100), APP_EINVAL);
	c.ttl_s = 60;
	c.min_msat = 6000;
	CHECK_ERR(quote_config_check(&c), APP_EINVAL);
	uint64_t u;
	CHECK_OK(quote_units(&u, 1024 * 1024, 3));
	CHECK(u == 3);
	CHECK_OK(quote_units(&u, 1024 * 1024 + 1, 3));
	CHECK(u == 6);
}

int main(void)
{
	RUN(test_lifecycle);
	RUN(test_expired_and_unknown);
	RUN(test_overflow);
	RUN(test_replay_equality);
	RUN(test_replay_refusals);
	RUN(test_malformed_records);
	RUN(test_quote);
	return test_summary();
}
