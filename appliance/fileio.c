#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

int file_read_all(char **out, size_t *len, const char *path, size_t max)
{
	*out = NULL;
	*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? APP_ENOENT : APP_EIO;
	int r = APP_ENOMEM;
	size_t n = 0;
	/* One byte more than the cap tells an over-long file from one of exactly max bytes. */
	char *buf = max < SIZE_MAX - 1 ? malloc(max + 2) : NULL;
	if (!buf)
		goto out;
	for (;;) {
		ssize_t k = read(fd, buf + n, max + 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = APP_EIO;
			goto out;
		}
		if (k == 0)
			break;
		n += (size_t)k;
		if (n > max) {
			r = APP_ETOOBIG;
			goto out;
		}
	}
	buf[n] = 0;
	*out = buf;
	*len = n;
	buf = NULL;
	r = 0;
out:
	free(buf);
	close(fd);
	return r;
}
