/*
 * blobstore_test: the parent's sealed-blob store (parent/blobstore.h):
 * append-only (overwrite refused), durable before acknowledged (fsync of the
 * file and the directory counted), quotas, names, list order and paging,
 * crash left-overs, persistence across reopen.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appliance/log.h"
#include "parent/blobstore.h"
#include "test.h"

static char root[] = "/tmp/blobstore_test.XXXXXX";

static void rmtree(const char *dir)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", dir);
}

static void test_put_get(void)
{
	char dir[128];
	struct blobstore *s = NULL;
	struct blobstore_stats st;
	uint8_t *d = NULL;
	size_t n = 0;
	snprintf(dir, sizeof dir, "%s/a", root);
	struct blobstore_config c = {.dir = dir, .max_bytes = 1000, .max_blobs = 3, .max_blob = 600};
	CHECK_OK(blobstore_open(&s, &c));
	CHECK_OK(blobstore_put(s, "inst", "j0001", (const uint8_t *)"one", 3));
	blobstore_get_stats(s, &st);
	CHECK(st.fsyncs >= 2); /* file + directory before the acknowledgement */
	CHECK_OK(blobstore_get(s, "inst", "j0001", &d, &n));
	CHECK(n == 3 && !memcmp(d, "one", 3));
	free(d);
	/* on disk under DIR/inst/j0001, mode 0600 */
	char p[200];
	struct stat sb;
	snprintf(p, sizeof p, "%s/inst/j0001", dir);
	CHECK(stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0600 && sb.st_size == 3);
	/* append-only */
	CHECK_ERR(blobstore_put(s, "inst", "j0001", (const uint8_t *)"two", 3), APP_EEXIST);
	CHECK_OK(blobstore_get(s, "inst", "j0001", &d, &n));
	CHECK(n == 3 && !memcmp(d, "one", 3));
	free(d);
	/* empty blob */
	CHECK_OK(blobstore_put(s, "inst", "empty", NULL, 0));
	CHECK_OK(blobstore_get(s, "inst", "empty", &d, &n));
	CHECK(n == 0 && d != NULL);
	free(d);
	/* not found, bad names */
	CHECK_ERR(blobstore_get(s, "inst", "nope", &d, &n), APP_ENOTFOUND);
	CHECK_ERR(blobstore_get(s, "other", "j0001", &d, &n), APP_ENOTFOUND);
	CHECK_ERR(blobstore_put(s, "inst", "../x", (const uint8_t *)"x", 1), APP_EINVAL);
	CHECK_ERR(blobstore_put(s, "inst", ".tmp.x", (const uint8_t *)"x", 1), APP_EINVAL);
	CHECK_ERR(blobstore_put(s, "../inst", "x", (const uint8_t *)"x", 1), APP_EINVAL);
	CHECK_ERR(blobstore_put(s, "inst", "", (const uint8_t *)"x", 1), APP_EINVAL);
	/* too big, quotas */
	uint8_t big[700] = {0};
	CHECK_ERR(blobstore_put(s, "inst", "big", big, 601), APP_ETOOBIG);
	CHECK_OK(blobstore_put(s, "inst", "b3", big, 600));
	CHECK_ERR(blobstore_put(s, "inst", "b4", big, 1), APP_ELIMIT); /* 3 blobs */
	CHECK_OK(blobstore_put(s, "inst2", "b1", big, 600));
	CHECK_ERR(blobstore_put(s, "inst2", "b2", big, 401), APP_ELIMIT); /* 1000 bytes */
	CHECK_OK(blobstore_put(s, "inst2", "b2", big, 400));
	uint64_t bytes = 0, blobs = 0;
	CHECK_OK(blobstore_usage(s, "inst2", &bytes, &blobs));
	CHECK(bytes == 1000 && blobs == 2);
	blobstore_get_stats(s, &st);
	CHECK(st.refused >= 8 && st.puts == 5);
	blobstore_close(s);
	/* reopen: usage recomputed from disk, quotas still hold, blobs still there */
	CHECK_OK(blobstore_open(&s, &c));
	CHECK_ERR(blobstore_put(s, "inst", "b5", big, 1), APP_ELIMIT);
	CHECK_OK(blobstore_get(s, "inst", "b3", &d, &n));
	CHECK(n == 600);
	free(d);
	blobstore_close(s);
}

static void test_list(void)
{
	char dir[128], name[32];
	struct blobstore *s = NULL;
	struct blobstore_entry e[5];
	size_t n = 0;
	int more = 0;
	snprintf(dir, sizeof dir, "%s/b", root);
	struct blobstore_config c = {.dir = dir, .max_bytes = 1 << 20, .max_blobs = 100, .max_blob = 1024};
	CHECK_OK(blobstore_open(&s, &c));
	CHECK_OK(blobstore_list(s, "none", NULL, e, 5, &n, &more));
	CHECK(n == 0 && !more);
	for (int i = 11; i >= 0; i--) {
		snprintf(name, sizeof name, "j%04d", i);
		CHECK_OK(blobstore_put(s, "x", name, (const uint8_t *)name, (size_t)(i + 1)));
	}
	/* a crash left-over in the directory: not listed, removed on the next open */
	char tmp[200];
	snprintf(tmp, sizeof tmp, "%s/x/.tmp.deadbeef", dir);
	int fd = open(tmp, O_CREAT | O_WRONLY, 0600);
	close(fd);
	CHECK_OK(blobstore_list(s, "x", NULL, e, 5, &n, &more));
	CHECK(n == 5 && more == 1);
	CHECK_STR(e[0].name, "j0000");
	CHECK_STR(e[4].name, "j0004");
	CHECK(e[4].size == 5);
	CHECK_OK(blobstore_list(s, "x", "j0004", e, 5, &n, &more));
	CHECK(n == 5 && more == 1);
	CHECK_STR(e[0].name, "j0005");
	CHECK_OK(blobstore_list(s, "x", "j0009", e, 5, &n, &more));
	CHECK(n == 2 && more == 0);
	CHECK_STR(e[1].name, "j0011");
	CHECK_ERR(blobstore_list(s, "x", "../", e, 5, &n, &more), APP_EINVAL);
	CHECK_ERR(blobstore_list(s, "x", NULL, e, 0, &n, &more), APP_EINVAL);
	blobstore_close(s);
	CHECK_OK(blobstore_open(&s, &c));
	CHECK_OK(blobstore_list(s, "x", NULL, e, 5, &n, &more));
	CHECK(access(tmp, F_OK) != 0);
	blobstore_close(s);
}

static void test_config(void)
{
	struct blobstore *s = NULL;
	struct blobstore_config c = {.dir = NULL, .max_bytes = 1, .max_blobs = 1, .max_blob = 1};
	CHECK_ERR(blobstore_open(&s, &c), APP_EINVAL);
	c.dir = root;
	c.max_blob = CTLMSG_BLOB_MAX + 1;
	CHECK_ERR(blobstore_open(&s, &c), APP_EINVAL);
	c.dir = "/proc/nonexistent/x";
	c.max_blob = 1;
	CHECK_ERR(blobstore_open(&s, &c), APP_EIO);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_put_get);
	RUN(test_list);
	RUN(test_config);
	rmtree(root);
	return test_summary();
}
