/*
 * util.h: allocation that aborts on failure, string helpers, clocks, and the
 * parsers for sizes ("24GiB") and Go-style durations ("1h30m") that the daemon,
 * ollama-sim and vramctl all need.
 */
#ifndef VRAMD_UTIL_H
#define VRAMD_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VD_KIB	     (UINT64_C(1) << 10)
#define VD_MIB	     (UINT64_C(1) << 20)
#define VD_GIB	     (UINT64_C(1) << 30)
#define VD_NS_PER_MS INT64_C(1000000)
#define VD_NS_PER_S  INT64_C(1000000000)

#define VD_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define vd_free(p)                                                                                 \
	do {                                                                                       \
		free(p);                                                                           \
		(p) = NULL;                                                                        \
	} while (0)

/* Allocation: these abort the process on failure, so callers never check for NULL.
 * Input sizes are bounded at the edges (every network buffer has a cap) instead. */
void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a newly allocated formatted string; the caller frees it. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Sets *cause to a newly allocated message (freeing nothing) and returns rc, so an
 * error path reads: return vd_fail(cause, -EINVAL, "bad %s", key); cause may be NULL. */
int vd_fail(char **cause, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Copies at most size-1 bytes and always terminates (when size > 0). Returns strlen(src). */
size_t vd_strlcpy(char *dst, const char *src, size_t size);
bool vd_str_has_prefix(const char *s, const char *prefix);
bool vd_str_has_suffix(const char *s, const char *suffix);
/* A URL safe to show: its userinfo (credentials) and its query (often a token) become
 * "***" and its fragment is dropped, so "http://u:pw@host/p?k=1#f" is shown with "***"
 * in place of "u:pw" and of "k=1". Text without "://" is returned as is. The caller frees
 * the result. */
char *vd_url_redact(const char *url);

/* Clocks. Monotonic for intervals and timers; wall clock (Unix epoch) for timestamps. */
int64_t vd_now_mono_ns(void);
int64_t vd_now_mono_ms(void);
int64_t vd_now_wall_ns(void);
int64_t vd_now_wall_ms(void);
/* Formats a Unix time in ns as RFC 3339 UTC with nanoseconds, trailing zeros trimmed, as Go
 * prints time.Time ("2024-09-12T21:17:29.110811Z"). buf needs 40 bytes. */
void vd_format_rfc3339_utc(int64_t wall_ns, char *buf, size_t size);
/* vramd's own timestamps: UTC with exactly three fraction digits, as docs/api.md shows
 * them ("2025-01-14T09:30:14.400Z"). buf needs 32 bytes. */
void vd_format_rfc3339_ms(int64_t wall_ms, char *buf, size_t size);
/* The same in local time with a numeric offset ("2024-06-04T14:38:31.83753-07:00"). */
void vd_format_rfc3339_local(int64_t wall_ns, char *buf, size_t size);

/*
 * Parses a byte size: a number with an optional unit B, KB, MB, GB, TB (powers of 1000),
 * KiB, MiB, GiB, TiB (powers of 1024), case-insensitive, fractions allowed ("1.5GiB").
 * A bare number is bytes. Returns 0, or -EINVAL with *cause naming the problem.
 */
int vd_parse_size(const char *text, uint64_t *bytes, char **cause);
/* Formats bytes for people: "1.50 GiB", "512 MiB". buf needs 32 bytes. */
void vd_format_size(uint64_t bytes, char *buf, size_t size);

/*
 * Parses a Go time.ParseDuration string ("300ms", "1h30m", "-1m", "0", "1.5s", "2h45m30.5s")
 * into nanoseconds. Units: ns, us, µs, ms, s, m, h. "0" alone needs no unit; any other
 * number without a unit fails with Go's message: time: missing unit in duration "300".
 * Overflow saturates to INT64_MAX/INT64_MIN. Returns 0 or -EINVAL with *cause set to Go's
 * error text.
 */
int vd_parse_go_duration(const char *text, int64_t *ns, char **cause);

/* Parses a whole string as a signed/unsigned decimal integer within [min, max].
 * Returns 0 or -EINVAL / -ERANGE with *cause naming what (the given label) was wrong. */
int vd_parse_int64(const char *text, int64_t min, int64_t max, int64_t *out, const char *label,
		   char **cause);
int vd_parse_double(const char *text, double min, double max, double *out, const char *label,
		    char **cause);

/* FNV-1a 64-bit hash, for deterministic simulated data and hash tables. */
uint64_t vd_hash64(const void *data, size_t len, uint64_t seed);
/* splitmix64: a small deterministic PRNG step; *state advances. */
uint64_t vd_rand64(uint64_t *state);

#endif
