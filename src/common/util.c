/*
 * util.c: allocation wrappers that abort on failure (so call sites stay short),
 * string helpers, clocks, and the size and Go-duration parsers.
 *
 * The Go-duration parser follows time.ParseDuration closely because ollama-sim must
 * answer bad keep_alive strings with Go's exact error text.
 */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void
vd_oom(size_t size)
{
	fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", size);
	abort();
}

void *
xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);
	if (p == NULL)
		vd_oom(size);
	return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
	if (p == NULL)
		vd_oom(nmemb * size);
	return p;
}

void *
xrealloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);
	if (p == NULL)
		vd_oom(size);
	return p;
}

void *
xreallocarray(void *ptr, size_t nmemb, size_t size)
{
	if (size != 0 && nmemb > SIZE_MAX / size)
		vd_oom(SIZE_MAX);
	return xrealloc(ptr, nmemb * size);
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static char *
vd_vasprintf(const char *fmt, va_list ap)
{
	va_list copy;
	va_copy(copy, ap);
	int len = vsnprintf(NULL, 0, fmt, copy);
	va_end(copy);
	if (len < 0)
		return xstrdup("(format error)");
	char *p = xmalloc((size_t)len + 1);
	vsnprintf(p, (size_t)len + 1, fmt, ap);
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *p = vd_vasprintf(fmt, ap);
	va_end(ap);
	return p;
}

int
vd_fail(char **cause, int rc, const char *fmt, ...)
{
	if (cause != NULL) {
		va_list ap;
		va_start(ap, fmt);
		*cause = vd_vasprintf(fmt, ap);
		va_end(ap);
	}
	return rc;
}

size_t
vd_strlcpy(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);
	if (size > 0) {
		size_t n = len < size - 1 ? len : size - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

bool
vd_str_has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

char *
vd_url_redact(const char *url)
{
	const char *scheme_end = strstr(url, "://");
	if (scheme_end == NULL)
		return xstrdup(url);
	const char *authority = scheme_end + 3;
	size_t authority_len = strcspn(authority, "/?#");
	const char *host = authority;
	for (size_t i = 0; i < authority_len; i++)
		if (authority[i] == '@')
			host = authority + i + 1;
	const char *rest = authority + authority_len;
	size_t path_len = strcspn(rest, "?#");
	return xasprintf("%.*s%s%.*s%s", (int)(authority - url), url,
			 host != authority ? "***@" : "", (int)(rest + path_len - host), host,
			 rest[path_len] == '?' ? "?***" : "");
}

bool
vd_str_has_suffix(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);
	return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

static int64_t
vd_clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * VD_NS_PER_S + ts.tv_nsec;
}

int64_t
vd_now_mono_ns(void)
{
	return vd_clock_ns(CLOCK_MONOTONIC);
}

int64_t
vd_now_mono_ms(void)
{
	return vd_now_mono_ns() / VD_NS_PER_MS;
}

int64_t
vd_now_wall_ns(void)
{
	return vd_clock_ns(CLOCK_REALTIME);
}

int64_t
vd_now_wall_ms(void)
{
	return vd_now_wall_ns() / VD_NS_PER_MS;
}

/* Appends ".nnnnnnnnn" with trailing zeros trimmed (nothing when ns is 0), as Go does. */
static size_t
vd_format_fraction(long ns, char *buf, size_t size)
{
	if (ns == 0 || size < 12)
		return 0;
	char frac[16];
	snprintf(frac, sizeof(frac), ".%09ld", ns);
	size_t n = strlen(frac);
	while (n > 1 && frac[n - 1] == '0')
		frac[--n] = '\0';
	vd_strlcpy(buf, frac, size);
	return n;
}

void
vd_format_rfc3339_utc(int64_t wall_ns, char *buf, size_t size)
{
	time_t secs = (time_t)(wall_ns / VD_NS_PER_S);
	struct tm tm;
	gmtime_r(&secs, &tm);
	size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	n += vd_format_fraction((long)(wall_ns % VD_NS_PER_S), buf + n, size - n);
	vd_strlcpy(buf + n, "Z", size - n);
}

void
vd_format_rfc3339_ms(int64_t wall_ms, char *buf, size_t size)
{
	int64_t ms = wall_ms % 1000;
	if (ms < 0)
		ms += 1000;
	time_t secs = (time_t)((wall_ms - ms) / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, size - n, ".%03dZ", (int)ms);
}

void
vd_format_rfc3339_local(int64_t wall_ns, char *buf, size_t size)
{
	time_t secs = (time_t)(wall_ns / VD_NS_PER_S);
	struct tm tm;
	localtime_r(&secs, &tm);
	size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	n += vd_format_fraction((long)(wall_ns % VD_NS_PER_S), buf + n, size - n);
	long off = tm.tm_gmtoff / 60;
	if (off == 0) {
		vd_strlcpy(buf + n, "Z", size - n);
		return;
	}
	char sign = off < 0 ? '-' : '+';
	if (off < 0)
		off = -off;
	snprintf(buf + n, size - n, "%c%02ld:%02ld", sign, off / 60, off % 60);
}

struct vd_size_unit {
	const char *name;
	uint64_t factor;
};

static const struct vd_size_unit vd_size_units[] = {
    {"", 1},
    {"b", 1},
    {"k", 1000},
    {"kb", 1000},
    {"m", 1000 * 1000},
    {"mb", 1000 * 1000},
    {"g", UINT64_C(1000) * 1000 * 1000},
    {"gb", UINT64_C(1000) * 1000 * 1000},
    {"t", UINT64_C(1000) * 1000 * 1000 * 1000},
    {"tb", UINT64_C(1000) * 1000 * 1000 * 1000},
    {"kib", VD_KIB},
    {"mib", VD_MIB},
    {"gib", VD_GIB},
    {"tib", VD_GIB * 1024},
};

int
vd_parse_size(const char *text, uint64_t *bytes, char **cause)
{
	if (text == NULL || *text == '\0')
		return vd_fail(cause, -EINVAL, "empty size");
	char *end;
	errno = 0;
	double value = strtod(text, &end);
	if (end == text || errno != 0 || !isfinite(value) || value < 0)
		return vd_fail(cause, -EINVAL, "invalid size \"%s\": expected e.g. 24GiB or 512MB",
			       text);
	while (*end == ' ')
		end++;
	char unit[8];
	size_t n = strlen(end);
	if (n >= sizeof(unit))
		return vd_fail(cause, -EINVAL, "invalid size unit in \"%s\"", text);
	for (size_t i = 0; i < sizeof(unit); i++) {
		unit[i] = (char)tolower((unsigned char)end[i]);
		if (end[i] == '\0')
			break;
	}
	for (size_t i = 0; i < VD_ARRAY_LEN(vd_size_units); i++) {
		if (strcmp(unit, vd_size_units[i].name) == 0) {
			double b = value * (double)vd_size_units[i].factor;
			if (b >= 1.8e19)
				return vd_fail(cause, -ERANGE, "size \"%s\" is too large", text);
			*bytes = (uint64_t)llround(b);
			return 0;
		}
	}
	return vd_fail(cause, -EINVAL,
		       "invalid size unit in \"%s\": use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB",
		       text);
}

void
vd_format_size(uint64_t bytes, char *buf, size_t size)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)bytes;
	size_t u = 0;
	while (v >= 1024 && u + 1 < VD_ARRAY_LEN(units)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, size, "%.2f %s", v, units[u]);
}

struct vd_duration_unit {
	const char *name;
	int64_t ns;
};

static const struct vd_duration_unit vd_duration_units[] = {
    {"ns", 1},
    {"us", 1000},
    {"\xc2\xb5s", 1000}, /* U+00B5 micro sign */
    {"\xce\xbcs", 1000}, /* U+03BC Greek mu */
    {"ms", VD_NS_PER_MS},
    {"s", VD_NS_PER_S},
    {"m", 60 * VD_NS_PER_S},
    {"h", 3600 * VD_NS_PER_S},
};

int
vd_parse_go_duration(const char *text, int64_t *ns, char **cause)
{
	const char *s = text;
	bool negative = false;
	if (*s == '-' || *s == '+') {
		negative = *s == '-';
		s++;
	}
	if (strcmp(s, "0") == 0) {
		*ns = 0;
		return 0;
	}
	if (*s == '\0')
		return vd_fail(cause, -EINVAL, "time: invalid duration \"%s\"", text);
	/* Accumulate in long double: Go's exact integer overflow rules matter less
	 * here than its messages, and saturation covers the rest. */
	long double total = 0;
	while (*s != '\0') {
		if (!(*s == '.' || isdigit((unsigned char)*s)))
			return vd_fail(cause, -EINVAL, "time: invalid duration \"%s\"", text);
		const char *num = s;
		while (isdigit((unsigned char)*s))
			s++;
		bool had_int = s > num;
		bool had_frac = false;
		if (*s == '.') {
			s++;
			const char *frac = s;
			while (isdigit((unsigned char)*s))
				s++;
			had_frac = s > frac;
		}
		if (!had_int && !had_frac)
			return vd_fail(cause, -EINVAL, "time: invalid duration \"%s\"", text);
		long double value = strtold(num, NULL);
		const char *unit = s;
		while (*s != '\0' && *s != '.' && !isdigit((unsigned char)*s))
			s++;
		size_t ulen = (size_t)(s - unit);
		if (ulen == 0)
			return vd_fail(cause, -EINVAL, "time: missing unit in duration \"%s\"",
				       text);
		int64_t factor = 0;
		for (size_t i = 0; i < VD_ARRAY_LEN(vd_duration_units); i++) {
			const char *name = vd_duration_units[i].name;
			if (strlen(name) == ulen && strncmp(unit, name, ulen) == 0)
				factor = vd_duration_units[i].ns;
		}
		if (factor == 0)
			return vd_fail(cause, -EINVAL,
				       "time: unknown unit \"%.*s\" in duration \"%s\"", (int)ulen,
				       unit, text);
		total += value * (long double)factor;
	}
	if (total > (long double)INT64_MAX)
		return vd_fail(cause, -EINVAL, "time: invalid duration \"%s\"", text);
	*ns = negative ? -(int64_t)total : (int64_t)total;
	return 0;
}

int
vd_parse_int64(const char *text, int64_t min, int64_t max, int64_t *out, const char *label,
	       char **cause)
{
	if (text == NULL || *text == '\0')
		return vd_fail(cause, -EINVAL, "%s: empty value, expected an integer", label);
	char *end;
	errno = 0;
	long long v = strtoll(text, &end, 10);
	if (*end != '\0' || end == text)
		return vd_fail(cause, -EINVAL, "%s: \"%s\" is not an integer", label, text);
	if (errno == ERANGE || v < min || v > max)
		return vd_fail(cause, -ERANGE, "%s: %s is out of range [%lld, %lld]", label, text,
			       (long long)min, (long long)max);
	*out = v;
	return 0;
}

int
vd_parse_double(const char *text, double min, double max, double *out, const char *label,
		char **cause)
{
	if (text == NULL || *text == '\0')
		return vd_fail(cause, -EINVAL, "%s: empty value, expected a number", label);
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	if (*end != '\0' || end == text || !isfinite(v))
		return vd_fail(cause, -EINVAL, "%s: \"%s\" is not a number", label, text);
	if (v < min || v > max)
		return vd_fail(cause, -ERANGE, "%s: %s is out of range [%g, %g]", label, text, min,
			       max);
	*out = v;
	return 0;
}

uint64_t
vd_hash64(const void *data, size_t len, uint64_t seed)
{
	const unsigned char *p = data;
	uint64_t h = UINT64_C(1469598103934665603) ^ seed;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= UINT64_C(1099511628211);
	}
	return h;
}

uint64_t
vd_rand64(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}
