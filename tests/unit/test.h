/*
 * test.h: the unit-test harness (header only).
 *
 * A test file defines `static void test_x(void)` functions and a main that
 * calls RUN(test_x) for each, then `return test_summary();`. Every CHECK
 * counts one passed or failed check; failures print file:line and the
 * expression. The binary ends with the line "N passed, N failed" and exits
 * 1 if anything failed. Checks survive NDEBUG (no assert()).
 */
#ifndef APPLIANCE_TEST_H
#define APPLIANCE_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_passed_, test_failed_;
static const char *test_current_ = "";

#define CHECK(cond) CHECKM((cond), "%s", #cond)

#define CHECKM(cond, ...)                                                          \
	do {                                                                       \
		if (cond) {                                                        \
			test_passed_++;                                            \
		} else {                                                           \
			test_failed_++;                                            \
			fprintf(stderr, "FAIL %s %s:%d: ", test_current_, __FILE__, \
				__LINE__);                                         \
			fprintf(stderr, __VA_ARGS__);                              \
			fputc('\n', stderr);                                       \
		}                                                                  \
	} while (0)

/* CHECK_OK: an APP_E* call that must return 0; prints the code otherwise. */
#define CHECK_OK(expr)                                                             \
	do {                                                                       \
		int r_ = (expr);                                                   \
		CHECKM(r_ == 0, "%s returned %d", #expr, r_);                      \
	} while (0)

/* CHECK_ERR: an APP_E* call that must fail with exactly `code`. */
#define CHECK_ERR(expr, code)                                                      \
	do {                                                                       \
		int r_ = (expr);                                                   \
		CHECKM(r_ == (code), "%s returned %d, expected %d", #expr, r_,     \
		       (int)(code));                                               \
	} while (0)

#define CHECK_MEM(a, b, n) CHECKM(memcmp((a), (b), (n)) == 0, "%s != %s", #a, #b)
#define CHECK_STR(a, b)                                                            \
	do {                                                                       \
		const char *a_ = (a), *b_ = (b);                                   \
		CHECKM(a_ && b_ && strcmp(a_, b_) == 0, "%s = \"%s\", expected \"%s\"", \
		       #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)");                \
	} while (0)

#define RUN(fn)                                                                    \
	do {                                                                       \
		int f0_ = test_failed_, p0_ = test_passed_;                         \
		test_current_ = #fn;                                               \
		fn();                                                              \
		printf("%s %s (%d checks)\n", test_failed_ == f0_ ? "ok  " : "FAIL", #fn, \
		       test_passed_ - p0_ + test_failed_ - f0_);                    \
		fflush(stdout);                                                    \
	} while (0)

/* RUN_ARG: RUN for a test function taking one argument. */
#define RUN_ARG(fn, arg)                                                           \
	do {                                                                       \
		int f0_ = test_failed_, p0_ = test_passed_;                         \
		test_current_ = #fn;                                               \
		fn(arg);                                                           \
		printf("%s %s (%d checks)\n", test_failed_ == f0_ ? "ok  " : "FAIL", #fn, \
		       test_passed_ - p0_ + test_failed_ - f0_);                    \
		fflush(stdout);                                                    \
	} while (0)

static inline int test_summary(void)
{
	printf("%d passed, %d failed\n", test_passed_, test_failed_);
	return test_failed_ ? 1 : 0;
}

/* test_vector_path: path of a file under tests/vectors (cwd = repo root). */
static inline const char *test_vector_path(char *buf, size_t n, const char *name)
{
	const char *root = getenv("APPLIANCE_ROOT");
	snprintf(buf, n, "%s/tests/vectors/%s", root ? root : ".", name);
	return buf;
}

#endif
