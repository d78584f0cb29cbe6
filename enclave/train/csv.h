/*
 * csv.h: streaming CSV reader for numeric datasets (PROTOCOL.md
 * "Datasets (CSV)").
 *
 * Input: lines of fields separated by a one-byte delimiter (',' default);
 * '\n' or "\r\n" line ends; lines starting with '#' and blank lines are
 * skipped; spaces and tabs around fields are ignored; a field may be
 * double-quoted ("" inside quotes is a quote; a quoted field cannot span
 * lines). The first non-comment line of each source is a header when
 * forced, or (auto) when any non-label field of it is not a number. One
 * column is the label (last by default, or a 0-based index, or a header
 * name); labels are arbitrary text, mapped to classes in order of first
 * appearance. Every other field must be a finite decimal number that fits
 * float32 ([+-]digits[.digits][(e|E)[+-]digits]); it is converted exactly
 * as strtof() would (round to nearest even).
 *
 * The parser is push-based: feed it any pieces of bytes (a file read
 * loop, a decrypting stream, an HTTP body) and it fills a float32
 * row-major matrix directly; only one partial line is ever buffered.
 * Several sources can be pooled into one dataset: they must have the same
 * number of columns and, when both have headers, the same header.
 *
 * Errors name the source, line and column (field number) and what was
 * wrong (struct train_err). Codes: APP_EPARSE (malformed: ragged row,
 * non-numeric field, NaN/inf, empty field, bad quoting, no data rows,
 * duplicate header names, a single class, unknown label for a fixed class
 * list, schema mismatch between pooled sources); APP_ETOOBIG (a line, the
 * rows, the columns, the bytes or the matrix over its cap); APP_ELIMIT (too
 * many classes); APP_EINVAL (bad options, label column not found);
 * APP_ENOMEM; APP_EIO (csv_read_file); APP_ENOENT (no such file).
 */
#ifndef TRAIN_CSV_H
#define TRAIN_CSV_H

#include <stddef.h>
#include <stdint.h>

#include "enclave/train/dataset.h"

#define CSV_MAX_LINE_DEFAULT (1u << 20)       /* bytes per line */
#define CSV_MAX_LINE_LIMIT (64u << 20)
#define CSV_MAX_ROWS_DEFAULT 50000000ull
#define CSV_MAX_BYTES_DEFAULT (16ull << 30)    /* input bytes over all sources */
#define CSV_MAX_MATRIX_DEFAULT (4ull << 30)    /* bytes of the float32 matrix */
#define CSV_LABEL_LAST (-1L)

enum csv_header { CSV_HEADER_AUTO = 0, CSV_HEADER_YES = 1, CSV_HEADER_NO = 2 };

/*
 * csv_options: how to read. Start from csv_options_default().
 * - delimiter: any byte except '"', '#', ' ', '\t', '\r', '\n', '.', '+',
 *   '-', digits and letters e/E.
 * - label_index: 0-based column of the label, or CSV_LABEL_LAST; ignored
 *   when label_name is set (it then needs a header).
 * - classes/nclasses: when non-NULL, the class list is fixed (evaluation
 *   of a saved model): labels must be among these, mapped to their index.
 * - min_classes: fewer distinct labels is an error (2 for training, 1 for
 *   evaluation).
 * - caps: max_line (bytes, <= CSV_MAX_LINE_LIMIT), max_rows, max_bytes,
 *   max_matrix (bytes of the feature matrix), max_classes
 *   (<= DATASET_MAX_CLASSES), max_features (<= DATASET_MAX_FEATURES).
 */
struct csv_options {
	char delimiter;
	enum csv_header header;
	long label_index;
	const char *label_name;
	const char *const *classes;
	size_t nclasses;
	size_t min_classes;
	size_t max_line;
	uint64_t max_rows;
	uint64_t max_bytes;
	uint64_t max_matrix;
	size_t max_classes;
	size_t max_features;
};

/* csv_options_default: ',' / auto header / label last / 2 classes / default caps. */
void csv_options_default(struct csv_options *o);

/*
 * csv_options_label: sets the label column from text: "last", a 0-based
 * decimal index, or a header name (<= DATASET_MAX_LABEL_LEN bytes; the
 * text is referenced, not copied). Returns 0 or APP_EINVAL (empty, too long).
 */
int csv_options_label(struct csv_options *o, const char *text) APP_WUR;

struct csv_parser;

/*
 * csv_parser_new: a parser with a copy of the options (label_name and
 * classes are copied too). Returns 0, APP_EINVAL (bad options, message in
 * err), APP_ENOMEM.
 */
int csv_parser_new(struct csv_parser **out, const struct csv_options *o, struct train_err *err) APP_WUR;

/*
 * csv_parser_begin: starts a new source named `name` (a file name for
 * messages, <= 255 bytes kept). Must be followed by feeds and
 * csv_parser_end. Returns 0 or APP_ESTATE (previous source not ended).
 */
int csv_parser_begin(struct csv_parser *p, const char *name, struct train_err *err) APP_WUR;

/*
 * csv_parser_feed: parses data[0..len) of the current source. Errors are
 * sticky (later calls return APP_ESTATE). Returns 0 or an error above.
 */
int csv_parser_feed(struct csv_parser *p, const uint8_t *data, size_t len, struct train_err *err) APP_WUR;

/*
 * csv_parser_end: ends the current source (its last line needs no
 * newline). A source with no data row is an error ("empty file").
 */
int csv_parser_end(struct csv_parser *p, struct train_err *err) APP_WUR;

/*
 * csv_parser_finish: hands over the dataset (*out, free with
 * dataset_free) after the last source ended; checks min_classes. The
 * parser may then only be freed.
 */
int csv_parser_finish(struct csv_parser *p, struct dataset **out, struct train_err *err) APP_WUR;

/* csv_parser_free: frees p and any unfinished dataset; NULL is a no-op. */
void csv_parser_free(struct csv_parser *p);

/*
 * csv_read_files: reads and pools paths[0..npaths) (streamed through a
 * fixed buffer: the text is never held whole). Returns 0 or the errors
 * above, APP_ENOENT / APP_EIO for files that cannot be opened or read.
 */
int csv_read_files(struct dataset **out, const char *const *paths, size_t npaths,
		   const struct csv_options *o, struct train_err *err) APP_WUR;

/* csv_read_mem: parses one in-memory source named `name`. */
int csv_read_mem(struct dataset **out, const char *name, const uint8_t *data, size_t len,
		 const struct csv_options *o, struct train_err *err) APP_WUR;

/*
 * csv_parse_float: the number parser used for fields, exposed for tests
 * and benches. Parses all of s[0..len) (no surrounding spaces). Returns 0
 * with *out set; APP_EPARSE if the text is not a decimal number;
 * APP_ERANGE for NaN, inf or a value beyond float32 range.
 */
int csv_parse_float(float *out, const char *s, size_t len) APP_WUR;

#endif
