/*
 * supervisor.h: starts and keeps alive the Ollama servers vramd was told to run itself
 * (SUPERVISE=per-gpu: one `OLLAMA_BIN serve` per GPU). Each child gets its own
 * environment (CUDA_VISIBLE_DEVICES, OLLAMA_HOST on its own loopback port; the rest is
 * inherited, OLLAMA_MODELS included), its output goes to vramd's log under [NODE], a
 * child that exits is started again after a backoff (1 s doubling to 30 s, back to 1 s
 * once a child has run for a minute), and every child is stopped (SIGTERM, then SIGKILL
 * after 5 s) when the supervisor is freed.
 *
 * Everything runs on the loop: a child's exit is seen through its pidfd, its output
 * through a pipe; nothing here waits.
 */
#ifndef VRAMD_SUPERVISOR_H
#define VRAMD_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct event_base;
struct supervisor;

/* argv[0] is looked up in PATH when it has no '/'; argv is copied. */
struct supervisor *supervisor_new(struct event_base *base, const char *const *argv);

/*
 * Adds a child named name (the log prefix) with these extra environment entries
 * ("NAME=VALUE", replacing inherited ones of the same name); copied. Starts it at once.
 * Returns its index.
 */
size_t supervisor_add(struct supervisor *s, const char *name, const char *const *env);

struct supervisor_child_info {
	const char *name; /* borrowed until the supervisor is freed */
	pid_t pid;	  /* 0 while not running */
	bool running;
	uint64_t starts; /* times started */
	int last_status; /* the wait status of the last exit, -1 if none */
};
size_t supervisor_count(const struct supervisor *s);
void supervisor_child(const struct supervisor *s, size_t i, struct supervisor_child_info *out);

/* Stops every child (SIGTERM, SIGKILL after 5 s, waiting at most that long) and frees. */
void supervisor_free(struct supervisor *s);

#endif
