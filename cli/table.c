/*
 * table.c: the aligned tables and key/value blocks vramctl prints by default.
 *
 * A table is a header row plus cells stored row-major; widths are computed at print
 * time in display columns (UTF-8 continuation bytes do not count), so model names and
 * degree signs line up. Callers: every cmd-*.c file.
 */
#include "table.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct ctl_table {
	size_t ncols;
	char **cells; /* header row first, then data rows; ncells is a multiple of ncols */
	size_t ncells;
	size_t alloc;
};

struct ctl_kv {
	char **keys;
	char **values;
	size_t n;
};

static void
table_push(struct ctl_table *t, const char *text)
{
	if (t->ncells == t->alloc) {
		t->alloc = t->alloc ? t->alloc * 2 : 64;
		t->cells = xreallocarray(t->cells, t->alloc, sizeof(*t->cells));
	}
	t->cells[t->ncells++] = xstrdup(text != NULL ? text : "-");
}

struct ctl_table *
ctl_table_new(size_t ncols, ...)
{
	struct ctl_table *t = xcalloc(1, sizeof(*t));
	t->ncols = ncols;
	va_list ap;
	va_start(ap, ncols);
	for (size_t i = 0; i < ncols; i++)
		table_push(t, va_arg(ap, const char *));
	va_end(ap);
	return t;
}

void
ctl_table_free(struct ctl_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->ncells; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

void
ctl_table_row(struct ctl_table *t, ...)
{
	va_list ap;
	va_start(ap, t);
	for (size_t i = 0; i < t->ncols; i++)
		table_push(t, va_arg(ap, const char *));
	va_end(ap);
}

void
ctl_table_cell(struct ctl_table *t, const char *text)
{
	table_push(t, text);
}

void
ctl_table_cellf(struct ctl_table *t, const char *fmt, ...)
{
	va_list ap;
	char *text;
	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	table_push(t, text != NULL ? text : "?");
	free(text);
}

size_t
ctl_table_nrows(const struct ctl_table *t)
{
	return t->ncells / t->ncols - 1;
}

/* Display width of a UTF-8 string: bytes that are not continuation bytes. */
static size_t
table_width(const char *s)
{
	size_t w = 0;
	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			w++;
	return w;
}

/* A cell that reads as a number ("12", "-3.5", "1.50 GiB", "87%", "68 C", "-"). */
static bool
table_is_numeric(const char *s)
{
	if (strcmp(s, "-") == 0)
		return true;
	if (*s == '-' || *s == '+')
		s++;
	if (!isdigit((unsigned char)*s))
		return false;
	while (isdigit((unsigned char)*s) || *s == '.')
		s++;
	/* Allow a short unit suffix. */
	return strlen(s) <= 4;
}

void
ctl_table_print(const struct ctl_table *t, FILE *out)
{
	size_t nrows = t->ncells / t->ncols;
	size_t *width = xcalloc(t->ncols, sizeof(*width));
	bool *right = xcalloc(t->ncols, sizeof(*right));

	for (size_t c = 0; c < t->ncols; c++) {
		right[c] = nrows > 1;
		for (size_t r = 0; r < nrows; r++) {
			const char *cell = t->cells[r * t->ncols + c];
			size_t w = table_width(cell);
			if (w > width[c])
				width[c] = w;
			if (r > 0 && !table_is_numeric(cell))
				right[c] = false;
		}
	}
	for (size_t r = 0; r < nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];
			size_t pad = width[c] - table_width(cell);
			bool last = c + 1 == t->ncols;
			if (right[c])
				fprintf(out, "%*s%s", (int)pad, "", cell);
			else
				fprintf(out, "%s%*s", cell, last ? 0 : (int)pad, "");
			if (!last)
				fputs("  ", out);
		}
		fputc('\n', out);
	}
	free(width);
	free(right);
}

struct ctl_kv *
ctl_kv_new(void)
{
	return xcalloc(1, sizeof(struct ctl_kv));
}

void
ctl_kv_add(struct ctl_kv *kv, const char *key, const char *fmt, ...)
{
	va_list ap;
	char *value;
	va_start(ap, fmt);
	if (vasprintf(&value, fmt, ap) < 0)
		value = xstrdup("?");
	va_end(ap);
	kv->keys = xreallocarray(kv->keys, kv->n + 1, sizeof(*kv->keys));
	kv->values = xreallocarray(kv->values, kv->n + 1, sizeof(*kv->values));
	kv->keys[kv->n] = xstrdup(key);
	kv->values[kv->n] = value;
	kv->n++;
}

void
ctl_kv_print(const struct ctl_kv *kv, FILE *out)
{
	size_t width = 0;
	for (size_t i = 0; i < kv->n; i++)
		if (table_width(kv->keys[i]) > width)
			width = table_width(kv->keys[i]);
	for (size_t i = 0; i < kv->n; i++)
		fprintf(out, "%s:%*s %s\n", kv->keys[i], (int)(width - table_width(kv->keys[i])),
			"", kv->values[i]);
}

void
ctl_kv_free(struct ctl_kv *kv)
{
	if (kv == NULL)
		return;
	for (size_t i = 0; i < kv->n; i++) {
		free(kv->keys[i]);
		free(kv->values[i]);
	}
	free(kv->keys);
	free(kv->values);
	free(kv);
}
