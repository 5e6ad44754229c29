/*
 * driver.c: runs a libFuzzer target without libFuzzer. It feeds every file of the
 * corpus folder given as argv[1] to LLVMFuzzerTestOneInput, then deterministic
 * mutations of each (bit flips, truncations, splices, byte insertions), so every CTest
 * run exercises the parser on malformed input under the sanitizers. FUZZ_SECONDS=N in
 * the environment repeats the pass with fresh mutations for N seconds (bench/fuzz-long.sh).
 * Build the same target with clang -fsanitize=fuzzer for open-ended fuzzing.
 */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MUTATIONS_PER_INPUT 2000
#define FUZZ_MAX_INPUT		 (1 << 20)

static uint64_t fuzz_state = 0x9e3779b97f4a7c15u;

static uint64_t
fuzz_rand(void)
{
	uint64_t z = (fuzz_state += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static void
fuzz_mutate_and_run(const uint8_t *seed, size_t len)
{
	static const char interesting[] = "{}[]\",:\\\n\r -0123456789.eE[N/A]nulltruefalse";
	uint8_t *buf = malloc(len * 2 + 64);
	for (int i = 0; i < FUZZ_MUTATIONS_PER_INPUT; i++) {
		size_t n = len;
		memcpy(buf, seed, len);
		int edits = 1 + (int)(fuzz_rand() % 4);
		for (int e = 0; e < edits; e++) {
			size_t pos = n ? fuzz_rand() % n : 0;
			switch (fuzz_rand() % 5) {
			case 0: /* flip a bit */
				if (n)
					buf[pos] ^= (uint8_t)(1u << (fuzz_rand() % 8));
				break;
			case 1: /* truncate */
				n = pos;
				break;
			case 2: /* replace with an interesting byte */
				if (n)
					buf[pos] = (uint8_t)
					    interesting[fuzz_rand() % (sizeof(interesting) - 1)];
				break;
			case 3: /* insert a byte */
				if (n < len * 2 + 32) {
					memmove(buf + pos + 1, buf + pos, n - pos);
					buf[pos] = (uint8_t)
					    interesting[fuzz_rand() % (sizeof(interesting) - 1)];
					n++;
				}
				break;
			default: /* duplicate a span */
				if (n && n < len * 2) {
					size_t span = 1 + fuzz_rand() % (n - pos);
					if (n + span <= len * 2 + 64) {
						memmove(buf + pos + span, buf + pos, n - pos);
						n += span;
					}
				}
				break;
			}
		}
		LLVMFuzzerTestOneInput(buf, n);
	}
	free(buf);
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	DIR *dir = opendir(argv[1]);
	if (dir == NULL) {
		fprintf(stderr, "%s: cannot open corpus %s\n", argv[0], argv[1]);
		return 2;
	}
	const char *secs = getenv("FUZZ_SECONDS");
	double budget = secs != NULL ? strtod(secs, NULL) : 0;
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int inputs = 0, rounds = 0;
	struct dirent *de;
	uint8_t *data = malloc(FUZZ_MAX_INPUT);
	do {
		inputs = 0;
		rewinddir(dir);
		while ((de = readdir(dir)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			char path[4096];
			snprintf(path, sizeof(path), "%s/%s", argv[1], de->d_name);
			FILE *f = fopen(path, "rb");
			if (f == NULL)
				continue;
			size_t n = fread(data, 1, FUZZ_MAX_INPUT, f);
			fclose(f);
			LLVMFuzzerTestOneInput(data, n);
			fuzz_mutate_and_run(data, n);
			inputs++;
		}
		rounds++;
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (inputs > 0 &&
		 (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9 <
		     budget);
	closedir(dir);
	free(data);
	LLVMFuzzerTestOneInput((const uint8_t *)"", 0);
	printf("%d passed, 0 failed: %d corpus inputs, %d mutations each, %d rounds\n", inputs,
	       inputs, FUZZ_MUTATIONS_PER_INPUT, rounds);
	return inputs > 0 ? 0 : 1;
}
