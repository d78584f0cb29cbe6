/*
 * fileio.h: reading a whole file with a size cap (configuration-named files:
 * release signatures, revocations, dev CA keys and certificates).
 */
#ifndef APPLIANCE_FILEIO_H
#define APPLIANCE_FILEIO_H

#include <stddef.h>

#include "err.h"

/*
 * file_read_all: the whole file at path into a new buffer (*out, with a
 * trailing NUL not counted in *len; free with free(), wiping first if it
 * held a secret). Refuses a file of more than max bytes before keeping it.
 * Returns 0; APP_ENOENT (no such file); APP_EIO (open or read error);
 * APP_ETOOBIG (over max); APP_ENOMEM.
 */
int file_read_all(char **out, size_t *len, const char *path, size_t max) APP_WUR;

#endif
