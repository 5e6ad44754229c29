/*
 * buf.c: the capped byte buffer. Growth doubles; the cap is checked before any
 * allocation so an oversized input fails without allocating for it.
 */
#include "buf.h"

#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
vd_buf_init(struct vd_buf *b, size_t cap)
{
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	b->cap = cap;
}

void
vd_buf_cleanup(struct vd_buf *b)
{
	vd_free(b->data);
	b->len = 0;
	b->alloc = 0;
}

void
vd_buf_reset(struct vd_buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

int
vd_buf_append(struct vd_buf *b, const void *data, size_t len)
{
	if (len > b->cap || b->len > b->cap - len)
		return -E2BIG;
	if (b->len + len + 1 > b->alloc) {
		size_t want = b->alloc ? b->alloc : 256;
		while (want < b->len + len + 1)
			want *= 2;
		b->data = xrealloc(b->data, want);
		b->alloc = want;
	}
	if (len > 0)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int
vd_buf_append_str(struct vd_buf *b, const char *s)
{
	return vd_buf_append(b, s, strlen(s));
}

int
vd_buf_printf(struct vd_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char small[512];
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n < sizeof(small))
		return vd_buf_append(b, small, (size_t)n);
	char *big = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	int rc = vd_buf_append(b, big, (size_t)n);
	free(big);
	return rc;
}

char *
vd_buf_take(struct vd_buf *b)
{
	char *p = b->data != NULL ? b->data : xstrdup("");
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	return p;
}

const char *
vd_buf_str(const struct vd_buf *b)
{
	return b->data != NULL ? b->data : "";
}
