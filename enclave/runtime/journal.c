/*
 * journal.c: the append-only journal and its file backend (journal.h).
 */
#include "enclave/runtime/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appliance/log.h"

struct journal {
	const struct journal_backend *be;
	void *arg;
	uint64_t count;
	int failed;
};

/* ---- file backend ---- */

struct file_backend {
	int fd;
};

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return APP_EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int file_append(void *arg, const char *rec, size_t len)
{
	struct file_backend *fb = arg;
	char stackbuf[JOURNAL_RECORD_MAX + 1];
	memcpy(stackbuf, rec, len);
	stackbuf[len] = '\n';
	int r = write_all(fb->fd, stackbuf, len + 1);
	if (r == 0 && fdatasync(fb->fd) != 0)
		r = APP_EIO;
	return r;
}

static int file_load(void *arg, char **text, size_t *len)
{
	struct file_backend *fb = arg;
	struct stat st;
	*text = NULL;
	*len = 0;
	if (fstat(fb->fd, &st) != 0)
		return APP_EIO;
	if ((uint64_t)st.st_size > JOURNAL_MAX)
		return APP_ETOOBIG;
	size_t size = (size_t)st.st_size;
	char *buf = malloc(size + 1);
	if (!buf)
		return APP_ENOMEM;
	size_t got = 0;
	while (got < size) {
		ssize_t n = pread(fb->fd, buf + got, size - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			return APP_EIO;
		}
		got += (size_t)n;
	}
	size_t keep = size;
	while (keep > 0 && buf[keep - 1] != '\n')
		keep--;
	if (keep != size) {
		log_warn("event=journal_torn_tail bytes=%zu action=truncate", size - keep);
		if (ftruncate(fb->fd, (off_t)keep) != 0 || fdatasync(fb->fd) != 0) {
			free(buf);
			return APP_EIO;
		}
	}
	buf[keep] = 0;
	*text = buf;
	*len = keep;
	return 0;
}

static void file_close(void *arg)
{
	struct file_backend *fb = arg;
	if (fb->fd >= 0)
		close(fb->fd);
	free(fb);
}

static const struct journal_backend file_be = {file_append, file_load, file_close};

int journal_open_file(struct journal **out, const char *path)
{
	*out = NULL;
	struct file_backend *fb = calloc(1, sizeof *fb);
	if (!fb)
		return APP_ENOMEM;
	int existed = access(path, F_OK) == 0;
	fb->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fb->fd < 0) {
		log_error("event=journal_open err=%s", strerror(errno));
		free(fb);
		return APP_EIO;
	}
	if (!existed) { /* make the new file's directory entry durable too */
		char *dup = strdup(path);
		if (dup) {
			int dfd = open(dirname(dup), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (dfd >= 0) {
				(void)fsync(dfd);
				close(dfd);
			}
			free(dup);
		}
	}
	int r = journal_open(out, &file_be, fb);
	if (r)
		file_close(fb);
	return r;
}

int journal_open(struct journal **out, const struct journal_backend *be, void *arg)
{
	*out = calloc(1, sizeof **out);
	if (!*out)
		return APP_ENOMEM;
	(*out)->be = be;
	(*out)->arg = arg;
	return 0;
}

static int record_ok(const char *rec, size_t len)
{
	if (len == 0 || len > JOURNAL_RECORD_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)rec[i] < 0x20 || (unsigned char)rec[i] > 0x7e)
			return 0;
	return 1;
}

int journal_append(struct journal *j, const char *rec, size_t len)
{
	if (j->failed)
		return APP_ESTATE;
	if (!record_ok(rec, len))
		return APP_EINVAL;
	int r = j->be->append(j->arg, rec, len);
	if (r) {
		j->failed = 1;
		log_error("event=journal_append_failed err=%s", app_errname(r));
		return r;
	}
	j->count++;
	return 0;
}

int journal_replay(struct journal *j, journal_record_fn fn, void *arg, uint64_t *count)
{
	char *text = NULL;
	size_t len = 0;
	uint64_t n = 0;
	int r = j->be->load(j->arg, &text, &len);
	if (r)
		return r;
	size_t pos = 0;
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - (text + pos)) : len - pos;
		if (!record_ok(text + pos, l)) {
			log_error("event=journal_bad_record index=%llu", (unsigned long long)(n + 1));
			r = APP_EPARSE;
			goto out;
		}
		n++;
		if ((r = fn(arg, text + pos, l, n)) != 0)
			goto out;
		pos += l + 1;
	}
	j->count += n;
	if (count)
		*count = n;
	r = 0;
out:
	free(text);
	return r;
}

uint64_t journal_count(const struct journal *j)
{
	return j->count;
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	if (j->be->close)
		j->be->close(j->arg);
	free(j);
}
