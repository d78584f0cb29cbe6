/*
 * blobstore.c: the sealed-blob store (blobstore.h).
 */
#include "parent/blobstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appliance/log.h"

struct usage {
	char id[CTLMSG_ID_MAX + 1];
	uint64_t bytes, blobs;
	int dirfd;
};

struct blobstore {
	struct blobstore_config cfg;
	char *dir;
	int dirfd;
	pthread_mutex_t lock;
	struct usage inst[BLOBSTORE_INSTANCES_MAX];
	size_t ninst;
	struct blobstore_stats st;
};

int blobstore_open(struct blobstore **out, const struct blobstore_config *cfg)
{
	struct blobstore *s = NULL;
	int r = APP_EINVAL;
	*out = NULL;
	if (!cfg || !cfg->dir || !*cfg->dir || cfg->max_blob == 0 || cfg->max_blob > CTLMSG_BLOB_MAX ||
	    cfg->max_bytes == 0 || cfg->max_blobs == 0)
		return APP_EINVAL;
	s = calloc(1, sizeof *s);
	if (!s)
		return APP_ENOMEM;
	s->dirfd = -1;
	pthread_mutex_init(&s->lock, NULL);
	s->cfg = *cfg;
	if (!(s->dir = strdup(cfg->dir))) {
		r = APP_ENOMEM;
		goto out;
	}
	s->cfg.dir = s->dir;
	if (mkdir(s->dir, 0700) != 0 && errno != EEXIST) {
		r = APP_EIO;
		goto out;
	}
	s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		r = APP_EIO;
		goto out;
	}
	*out = s;
	s = NULL;
	r = 0;
out:
	blobstore_close(s);
	return r;
}

void blobstore_close(struct blobstore *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->ninst; i++)
		if (s->inst[i].dirfd >= 0)
			close(s->inst[i].dirfd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	pthread_mutex_destroy(&s->lock);
	free(s->dir);
	free(s);
}

static int do_fsync(struct blobstore *s, int fd)
{
	s->st.fsyncs++;
	return fsync(fd) == 0 ? 0 : APP_EIO;
}

/*
 * instance: the usage record of id (opening/creating its directory and
 * scanning it the first time; removes crash left-overs). Lock held.
 */
static int instance(struct blobstore *s, const char *id, int create, struct usage **out)
{
	int r = APP_EIO, fd = -1;
	DIR *d = NULL;
	*out = NULL;
	if (!ctlmsg_name_valid(id, strlen(id), CTLMSG_ID_MAX))
		return APP_EINVAL;
	for (size_t i = 0; i < s->ninst; i++)
		if (!strcmp(s->inst[i].id, id)) {
			*out = &s->inst[i];
			return 0;
		}
	if (s->ninst == BLOBSTORE_INSTANCES_MAX)
		return APP_ELIMIT;
	fd = openat(s->dirfd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT) {
		if (!create)
			return APP_ENOTFOUND;
		if (mkdirat(s->dirfd, id, 0700) != 0 && errno != EEXIST)
			return APP_EIO;
		if (do_fsync(s, s->dirfd) != 0)
			return APP_EIO;
		fd = openat(s->dirfd, id, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd < 0)
		return APP_EIO;
	struct usage *u = &s->inst[s->ninst];
	memset(u, 0, sizeof *u);
	memcpy(u->id, id, strlen(id) + 1);
	int dfd = dup(fd);
	if (dfd < 0 || !(d = fdopendir(dfd))) {
		if (dfd >= 0)
			close(dfd);
		goto out;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		struct stat st;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (e->d_name[0] == '.') {
			/* a temporary file of a put that never completed: never acknowledged */
			if (unlinkat(fd, e->d_name, 0) == 0)
				log_info("event=blobstore_cleanup instance=%s", id);
			continue;
		}
		if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
			continue;
		u->blobs++;
		u->bytes += (uint64_t)st.st_size;
	}
	u->dirfd = fd;
	fd = -1;
	s->ninst++;
	*out = u;
	r = 0;
out:
	if (d)
		closedir(d);
	if (fd >= 0)
		close(fd);
	return r;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t k = write(fd, p, len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return APP_EIO;
		p += k;
		len -= (size_t)k;
	}
	return 0;
}

int blobstore_put(struct blobstore *s, const char *instance_id, const char *name, const uint8_t *data, size_t len)
{
	struct usage *u = NULL;
	char tmp[CTLMSG_NAME_MAX + 32];
	int r, fd = -1, tmp_made = 0;
	uint64_t total;
	pthread_mutex_lock(&s->lock);
	if (!instance_id || !name || !ctlmsg_name_valid(name, strlen(name), CTLMSG_NAME_MAX) || (len && !data)) {
		r = APP_EINVAL;
		goto out;
	}
	if ((r = instance(s, instance_id, 1, &u)) != 0)
		goto out;
	if (len > s->cfg.max_blob) {
		r = APP_ETOOBIG;
		goto out;
	}
	if (faccessat(u->dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		r = APP_EEXIST;
		goto out;
	}
	if (__builtin_add_overflow(u->bytes, (uint64_t)len, &total) || total > s->cfg.max_bytes ||
	    u->blobs >= s->cfg.max_blobs) {
		r = APP_ELIMIT;
		goto out;
	}
	uint8_t rnd[8];
	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
		r = APP_EIO;
		goto out;
	}
	snprintf(tmp, sizeof tmp, ".tmp.%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
		 rnd[5], rnd[6], rnd[7]);
	r = APP_EIO;
	fd = openat(u->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		goto out;
	tmp_made = 1;
	if (write_all(fd, data, len) != 0 || do_fsync(s, fd) != 0)
		goto out;
	close(fd);
	fd = -1;
	if (linkat(u->dirfd, tmp, u->dirfd, name, 0) != 0) {
		r = errno == EEXIST ? APP_EEXIST : APP_EIO;
		goto out;
	}
	(void)unlinkat(u->dirfd, tmp, 0);
	tmp_made = 0;
	if (do_fsync(s, u->dirfd) != 0)
		goto out; /* the blob exists but is not known durable: not acknowledged */
	u->bytes = total;
	u->blobs++;
	s->st.puts++;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	if (tmp_made)
		(void)unlinkat(u->dirfd, tmp, 0);
	if (r == APP_EEXIST || r == APP_ELIMIT || r == APP_ETOOBIG || r == APP_EINVAL)
		s->st.refused++;
	pthread_mutex_unlock(&s->lock);
	return r;
}

int blobstore_get(struct blobstore *s, const char *instance_id, const char *name, uint8_t **data, size_t *len)
{
	struct usage *u = NULL;
	struct stat st;
	uint8_t *b = NULL;
	int r, fd = -1;
	*data = NULL;
	*len = 0;
	if (!instance_id || !name || !ctlmsg_name_valid(name, strlen(name), CTLMSG_NAME_MAX))
		return APP_EINVAL;
	pthread_mutex_lock(&s->lock);
	if ((r = instance(s, instance_id, 0, &u)) != 0)
		goto out;
	fd = openat(u->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		r = errno == ENOENT ? APP_ENOTFOUND : APP_EIO;
		goto out;
	}
	r = APP_EIO;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		goto out;
	if ((uint64_t)st.st_size > s->cfg.max_blob) {
		r = APP_ETOOBIG;
		goto out;
	}
	size_t n = (size_t)st.st_size, got = 0;
	if (!(b = malloc(n ? n : 1))) {
		r = APP_ENOMEM;
		goto out;
	}
	while (got < n) {
		ssize_t k = read(fd, b + got, n - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			goto out;
		got += (size_t)k;
	}
	*data = b;
	*len = n;
	b = NULL;
	s->st.gets++;
	r = 0;
out:
	free(b);
	if (fd >= 0)
		close(fd);
	pthread_mutex_unlock(&s->lock);
	return r;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct blobstore_entry *)a)->name, ((const struct blobstore_entry *)b)->name);
}

int blobstore_list(struct blobstore *s, const char *instance_id, const char *after, struct blobstore_entry *out,
		   size_t max, size_t *n, int *more)
{
	struct usage *u = NULL;
	struct blobstore_entry *all = NULL;
	size_t cap = 0, cnt = 0;
	DIR *d = NULL;
	int r;
	*n = 0;
	*more = 0;
	if (!instance_id || max == 0 || max > CTLMSG_LIST_MAX ||
	    (after && *after && !ctlmsg_name_valid(after, strlen(after), CTLMSG_NAME_MAX)))
		return APP_EINVAL;
	pthread_mutex_lock(&s->lock);
	r = instance(s, instance_id, 0, &u);
	if (r == APP_ENOTFOUND) {
		r = 0;
		goto out;
	}
	if (r != 0)
		goto out;
	r = APP_EIO;
	int dfd = dup(u->dirfd);
	if (dfd < 0 || !(d = fdopendir(dfd))) {
		if (dfd >= 0)
			close(dfd);
		goto out;
	}
	rewinddir(d);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		struct stat st;
		size_t nl = strlen(e->d_name);
		if (e->d_name[0] == '.' || !ctlmsg_name_valid(e->d_name, nl, CTLMSG_NAME_MAX))
			continue;
		if (after && *after && strcmp(e->d_name, after) <= 0)
			continue;
		if (fstatat(u->dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (cnt == cap) {
			size_t nc = cap ? cap * 2 : 64;
			struct blobstore_entry *na;
			if (nc > SIZE_MAX / sizeof *all || !(na = realloc(all, nc * sizeof *all))) {
				r = APP_ENOMEM;
				goto out;
			}
			all = na;
			cap = nc;
		}
		memcpy(all[cnt].name, e->d_name, nl + 1);
		all[cnt].size = (uint64_t)st.st_size;
		cnt++;
	}
	if (cnt > 1)
		qsort(all, cnt, sizeof *all, cmp_entry);
	*n = cnt < max ? cnt : max;
	*more = cnt > max;
	if (*n)
		memcpy(out, all, *n * sizeof *all);
	s->st.lists++;
	r = 0;
out:
	if (d)
		closedir(d);
	free(all);
	pthread_mutex_unlock(&s->lock);
	return r;
}

int blobstore_usage(struct blobstore *s, const char *instance_id, uint64_t *bytes, uint64_t *blobs)
{
	struct usage *u = NULL;
	int r;
	*bytes = *blobs = 0;
	pthread_mutex_lock(&s->lock);
	r = instance(s, instance_id, 0, &u);
	if (r == 0) {
		*bytes = u->bytes;
		*blobs = u->blobs;
	} else if (r == APP_ENOTFOUND) {
		r = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

void blobstore_get_stats(struct blobstore *s, struct blobstore_stats *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->st;
	pthread_mutex_unlock(&s->lock);
}
