/*
 * testutil.h: helpers shared by the unit tests (linked into every test
 * binary): reading vector files, hex conversion for expectations.
 */
#ifndef APPLIANCE_TESTUTIL_H
#define APPLIANCE_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;

/*
 * tu_read_file: the whole file at path (relative paths are taken from
 * $APPLIANCE_ROOT, else the current directory) as a new NUL-terminated
 * buffer; NULL (with a message on stderr) if it cannot be read.
 */
char *tu_read_file(const char *path, size_t *len);

/* tu_load_json: tu_read_file + cJSON parse; NULL on failure (message printed). */
struct cJSON *tu_load_json(const char *path);

/*
 * tu_unhex: decodes hex (any case) into a new buffer; NULL on malformed
 * input. *len receives the byte length.
 */
uint8_t *tu_unhex(const char *hex, size_t *len);

/* tu_unhex32: decodes exactly 64 hex characters into out; 0 ok, -1 otherwise. */
int tu_unhex32(uint8_t out[32], const char *hex);

/* tu_now_ms: monotonic milliseconds. */
double tu_now_ms(void);

#endif
