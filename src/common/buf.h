/*
 * buf.h: a growable byte buffer with a hard cap (after curl's dynbuf). Every buffer
 * fed from the network is one of these, so no peer can make us allocate without bound.
 */
#ifndef VRAMD_BUF_H
#define VRAMD_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct vd_buf {
	char *data; /* NUL-terminated when non-NULL; owned by the buffer */
	size_t len;
	size_t alloc;
	size_t cap; /* the most bytes len may reach */
};

void vd_buf_init(struct vd_buf *b, size_t cap);
void vd_buf_cleanup(struct vd_buf *b);
void vd_buf_reset(struct vd_buf *b);
/* Appends; returns 0, or -E2BIG (and appends nothing) if len would pass the cap. */
int vd_buf_append(struct vd_buf *b, const void *data, size_t len);
int vd_buf_append_str(struct vd_buf *b, const char *s);
int vd_buf_printf(struct vd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the data to the caller (who frees it) and resets the buffer; never NULL. */
char *vd_buf_take(struct vd_buf *b);
/* Returns the contents as a borrowed string valid until the next change ("" when empty). */
const char *vd_buf_str(const struct vd_buf *b);

#endif
