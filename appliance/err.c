#include "err.h"

struct err_entry {
	int code;
	const char *name;
	const char *text;
};

static const struct err_entry err_table[] = {
	{APP_OK, "OK", "success"},
	{APP_EINTERNAL, "EINTERNAL", "internal error"},
	{APP_ENOMEM, "ENOMEM", "out of memory"},
	{APP_EINVAL, "EINVAL", "invalid argument"},
	{APP_EPARSE, "EPARSE", "malformed input"},
	{APP_ETOOBIG, "ETOOBIG", "input too large"},
	{APP_ERANGE, "ERANGE", "value out of range"},
	{APP_EBADID, "EBADID", "event id does not match its contents"},
	{APP_EBADSIG, "EBADSIG", "signature verification failed"},
	{APP_EBADKEY, "EBADKEY", "invalid key"},
	{APP_EBADMAC, "EBADMAC", "authentication failed (bad MAC)"},
	{APP_EBADPAD, "EBADPAD", "invalid padding"},
	{APP_EVERSION, "EVERSION", "unsupported version"},
	{APP_ECHECKSUM, "ECHECKSUM", "checksum mismatch"},
	{APP_EIO, "EIO", "input/output error"},
	{APP_ETIMEOUT, "ETIMEOUT", "timed out"},
	{APP_ENOTFOUND, "ENOTFOUND", "not found"},
	{APP_EEXIST, "EEXIST", "already exists"},
	{APP_EREFUSED, "EREFUSED", "refused by policy"},
	{APP_EEXPIRED, "EEXPIRED", "expired"},
	{APP_ELIMIT, "ELIMIT", "limit reached"},
	{APP_ESTATE, "ESTATE", "invalid state for this operation"},
	{APP_ECHAIN, "ECHAIN", "certificate chain verification failed"},
	{APP_EPROTO, "EPROTO", "protocol violation by peer"},
	{APP_ECONN, "ECONN", "connection failed"},
	{APP_EUNSUPPORTED, "EUNSUPPORTED", "unsupported"},
	{APP_EAGAIN, "EAGAIN", "temporarily unavailable, try again"},
	{APP_ECANCELED, "ECANCELED", "canceled"},
	{APP_ENOENT, "ENOENT", "no such file"},
	{APP_EDEBUG, "EDEBUG", "debug-mode attestation refused"},
	{APP_EROLLBACK, "EROLLBACK", "rollback or reordering detected"},
};

static const struct err_entry *err_find(int err)
{
	for (unsigned i = 0; i < sizeof(err_table) / sizeof(err_table[0]); i++)
		if (err_table[i].code == err)
			return &err_table[i];
	return 0;
}

const char *app_strerror(int err)
{
	const struct err_entry *e = err_find(err);
	return e ? e->text : "unknown error";
}

const char *app_errname(int err)
{
	const struct err_entry *e = err_find(err);
	return e ? e->name : "EUNKNOWN";
}
