/*
 * ctlmsg.c: control-service messages (ctlmsg.h).
 */
#include "appliance/ctlmsg.h"

#include <stdlib.h>
#include <string.h>

const char *ctlmsg_type_name(uint8_t type)
{
	switch (type) {
	case CTLMSG_HELLO:
		return "HELLO";
	case CTLMSG_LOG:
		return "LOG";
	case CTLMSG_PUT:
		return "PUT";
	case CTLMSG_GET:
		return "GET";
	case CTLMSG_LIST:
		return "LIST";
	case CTLMSG_BYE:
		return "BYE";
	case CTLMSG_WELCOME:
		return "WELCOME";
	case CTLMSG_RESULT:
		return "RESULT";
	case CTLMSG_SHUTDOWN:
		return "SHUTDOWN";
	default:
		return "?";
	}
}

int ctlmsg_name_valid(const char *s, size_t len, size_t max)
{
	if (!s || len == 0 || len > max || s[0] == '.')
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

static int printable(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* req_name: "req u32 | nlen u8 | name" at p; *off is set after it. allow_empty for LIST. */
static int req_name(struct ctlmsg *m, const uint8_t *p, size_t len, size_t *off, int allow_empty)
{
	if (len < 5)
		return APP_EPARSE;
	m->req = get_u32(p);
	size_t n = p[4];
	if (n > len - 5)
		return APP_EPARSE;
	m->name = (const char *)p + 5;
	m->name_len = n;
	if (!(allow_empty && n == 0) && !ctlmsg_name_valid(m->name, n, CTLMSG_NAME_MAX))
		return APP_EPARSE;
	*off = 5 + n;
	return 0;
}

int ctlmsg_decode(struct ctlmsg *out, uint8_t type, const uint8_t *p, size_t len)
{
	size_t off = 0;
	int r;
	memset(out, 0, sizeof *out);
	out->type = type;
	if (len > CHANNEL_MAX_FRAME || (len > 0 && !p))
		return APP_EPARSE;
	switch (type) {
	case CTLMSG_HELLO:
		if (len < 2)
			return APP_EPARSE;
		if (p[0] != CTLMSG_VERSION)
			return APP_EVERSION;
		if ((size_t)p[1] != len - 2 || !ctlmsg_name_valid((const char *)p + 2, p[1], CTLMSG_ID_MAX))
			return APP_EPARSE;
		out->version = p[0];
		out->id = (const char *)p + 2;
		out->id_len = p[1];
		return 0;
	case CTLMSG_LOG:
		if (len < 2 || len - 1 > CTLMSG_LOG_MAX || p[0] > 3 || !printable((const char *)p + 1, len - 1))
			return APP_EPARSE;
		out->level = p[0];
		out->line = (const char *)p + 1;
		out->line_len = len - 1;
		return 0;
	case CTLMSG_PUT:
		if ((r = req_name(out, p, len, &off, 0)) != 0)
			return r;
		if (len - off > CTLMSG_BLOB_MAX)
			return APP_EPARSE;
		out->data = p + off;
		out->data_len = len - off;
		return 0;
	case CTLMSG_GET:
	case CTLMSG_LIST:
		if ((r = req_name(out, p, len, &off, type == CTLMSG_LIST)) != 0)
			return r;
		return off == len ? 0 : APP_EPARSE;
	case CTLMSG_BYE:
		return len == 0 ? 0 : APP_EPARSE;
	case CTLMSG_WELCOME:
		if (len != 1)
			return APP_EPARSE;
		if (p[0] != CTLMSG_VERSION)
			return APP_EVERSION;
		out->version = p[0];
		return 0;
	case CTLMSG_RESULT:
		if (len < 5 || p[4] >= CTLMSG_S__COUNT)
			return APP_EPARSE;
		out->req = get_u32(p);
		out->status = p[4];
		out->data = p + 5;
		out->data_len = len - 5;
		if (out->status != CTLMSG_OK && out->data_len != 0)
			return APP_EPARSE;
		return 0;
	case CTLMSG_SHUTDOWN:
		if (len != 4)
			return APP_EPARSE;
		out->grace_ms = get_u32(p);
		return 0;
	default:
		return APP_EUNSUPPORTED;
	}
}

int ctlmsg_encode(uint8_t **out, size_t *len, const struct ctlmsg *m)
{
	size_t n = 0, need;
	uint8_t *b;
	*out = NULL;
	*len = 0;
	switch (m->type) {
	case CTLMSG_HELLO:
		if (!ctlmsg_name_valid(m->id, m->id_len, CTLMSG_ID_MAX))
			return APP_EINVAL;
		need = 2 + m->id_len;
		break;
	case CTLMSG_LOG:
		if (m->line_len == 0 || !m->line || m->level > 3 || !printable(m->line, m->line_len))
			return APP_EINVAL;
		if (m->line_len > CTLMSG_LOG_MAX)
			return APP_ETOOBIG;
		need = 1 + m->line_len;
		break;
	case CTLMSG_PUT:
	case CTLMSG_GET:
	case CTLMSG_LIST:
		if (!(m->type == CTLMSG_LIST && m->name_len == 0) &&
		    !ctlmsg_name_valid(m->name, m->name_len, CTLMSG_NAME_MAX))
			return APP_EINVAL;
		need = 5 + m->name_len;
		if (m->type == CTLMSG_PUT) {
			if (m->data_len > CTLMSG_BLOB_MAX)
				return APP_ETOOBIG;
			if (m->data_len > 0 && !m->data)
				return APP_EINVAL;
			need += m->data_len;
		}
		break;
	case CTLMSG_BYE:
		need = 0;
		break;
	case CTLMSG_WELCOME:
		need = 1;
		break;
	case CTLMSG_RESULT:
		if (m->status >= CTLMSG_S__COUNT || (m->status != CTLMSG_OK && m->data_len) || (m->data_len && !m->data))
			return APP_EINVAL;
		if (m->data_len > CHANNEL_MAX_FRAME - 5)
			return APP_ETOOBIG;
		need = 5 + m->data_len;
		break;
	case CTLMSG_SHUTDOWN:
		need = 4;
		break;
	default:
		return APP_EINVAL;
	}
	if (need > CHANNEL_MAX_FRAME)
		return APP_ETOOBIG;
	b = malloc(need ? need : 1);
	if (!b)
		return APP_ENOMEM;
	switch (m->type) {
	case CTLMSG_HELLO:
		b[n++] = CTLMSG_VERSION;
		b[n++] = (uint8_t)m->id_len;
		memcpy(b + n, m->id, m->id_len);
		n += m->id_len;
		break;
	case CTLMSG_LOG:
		b[n++] = m->level;
		memcpy(b + n, m->line, m->line_len);
		n += m->line_len;
		break;
	case CTLMSG_PUT:
	case CTLMSG_GET:
	case CTLMSG_LIST:
		put_u32(b, m->req);
		b[4] = (uint8_t)m->name_len;
		n = 5;
		if (m->name_len)
			memcpy(b + n, m->name, m->name_len);
		n += m->name_len;
		if (m->type == CTLMSG_PUT && m->data_len) {
			memcpy(b + n, m->data, m->data_len);
			n += m->data_len;
		}
		break;
	case CTLMSG_WELCOME:
		b[n++] = CTLMSG_VERSION;
		break;
	case CTLMSG_RESULT:
		put_u32(b, m->req);
		b[4] = m->status;
		n = 5;
		if (m->data_len)
			memcpy(b + n, m->data, m->data_len);
		n += m->data_len;
		break;
	case CTLMSG_SHUTDOWN:
		put_u32(b, m->grace_ms);
		n = 4;
		break;
	default:
		break;
	}
	*out = b;
	*len = n;
	return 0;
}

int ctlmsg_list_next(const uint8_t **p, const uint8_t *end, const char **name, size_t *name_len, uint64_t *size)
{
	const uint8_t *q = *p;
	if (q == end)
		return APP_ENOTFOUND;
	size_t n = q[0];
	if (n > (size_t)(end - q) - 1 || 8 > (size_t)(end - q) - 1 - n)
		return APP_EPARSE;
	if (!ctlmsg_name_valid((const char *)q + 1, n, CTLMSG_NAME_MAX))
		return APP_EPARSE;
	*name = (const char *)q + 1;
	*name_len = n;
	uint64_t v = 0;
	for (size_t i = 0; i < 8; i++)
		v = v << 8 | q[1 + n + i];
	*size = v;
	*p = q + 1 + n + 8;
	return 0;
}

int ctlmsg_status_to_err(uint8_t status)
{
	switch (status) {
	case CTLMSG_OK:
		return 0;
	case CTLMSG_S_EXISTS:
		return APP_EEXIST;
	case CTLMSG_S_NOTFOUND:
		return APP_ENOTFOUND;
	case CTLMSG_S_QUOTA:
		return APP_ELIMIT;
	case CTLMSG_S_INVALID:
		return APP_EINVAL;
	case CTLMSG_S_TOOBIG:
		return APP_ETOOBIG;
	case CTLMSG_S_IO:
		return APP_EIO;
	default:
		return APP_EPROTO;
	}
}

uint8_t ctlmsg_err_to_status(int err)
{
	switch (err) {
	case 0:
		return CTLMSG_OK;
	case APP_EEXIST:
		return CTLMSG_S_EXISTS;
	case APP_ENOTFOUND:
		return CTLMSG_S_NOTFOUND;
	case APP_ELIMIT:
		return CTLMSG_S_QUOTA;
	case APP_EINVAL:
		return CTLMSG_S_INVALID;
	case APP_ETOOBIG:
		return CTLMSG_S_TOOBIG;
	default:
		return CTLMSG_S_IO;
	}
}
