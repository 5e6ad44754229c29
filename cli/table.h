/*
 * table.h: aligned, human-readable tables for vramctl's default output.
 *
 *	struct ctl_table *t = ctl_table_new(3, "NAME", "STATE", "TEMP");
 *	ctl_table_row(t, "0", "OPTIMAL", "51 C");
 *	ctl_table_print(t, stdout);
 *	ctl_table_free(t);
 *
 * Columns are separated by two spaces; a column whose every cell looks like a number
 * is right-aligned. Cells are copied.
 */
#ifndef VRAMCTL_TABLE_H
#define VRAMCTL_TABLE_H

#include <stddef.h>
#include <stdio.h>

struct ctl_table;

/* Creates a table with ncols columns; the ncols header strings follow. */
struct ctl_table *ctl_table_new(size_t ncols, ...);
void ctl_table_free(struct ctl_table *t);
/* Appends a row; exactly ncols strings follow (NULL prints as "-"). */
void ctl_table_row(struct ctl_table *t, ...);
/* Appends one cell, filling rows left to right; for rows built in a loop. */
void ctl_table_cell(struct ctl_table *t, const char *text);
void ctl_table_cellf(struct ctl_table *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
size_t ctl_table_nrows(const struct ctl_table *t);
void ctl_table_print(const struct ctl_table *t, FILE *out);

/* Prints "key: value" lines with the keys padded to one width. */
struct ctl_kv;
struct ctl_kv *ctl_kv_new(void);
void ctl_kv_add(struct ctl_kv *kv, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ctl_kv_print(const struct ctl_kv *kv, FILE *out);
void ctl_kv_free(struct ctl_kv *kv);

#endif
