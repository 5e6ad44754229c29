/*
 * gpu-policy.c: GPU states, throttling and reservations (see gpu-policy.h).
 *
 * This first version applies no policy: every GPU runs at full speed, accepts work and
 * has nothing reserved. The thermal state machine and reservations replace it.
 */
#include "gpu-policy.h"

#include "util.h"

#include <stdlib.h>

struct gpu_policy {
	struct daemon *d;
};

struct gpu_policy *
gpu_policy_new(struct daemon *d)
{
	struct gpu_policy *p = xcalloc(1, sizeof(*p));
	p->d = d;
	return p;
}

void
gpu_policy_free(struct gpu_policy *p)
{
	free(p);
}

void
gpu_policy_on_sample(struct gpu_policy *p)
{
	(void)p;
}

double
gpu_policy_speed(const struct gpu_policy *p, int gpu)
{
	(void)p;
	(void)gpu;
	return 1.0;
}

bool
gpu_policy_accepts_work(const struct gpu_policy *p, int gpu)
{
	(void)p;
	(void)gpu;
	return true;
}

const char *
gpu_policy_state_name(const struct gpu_policy *p, int gpu)
{
	(void)p;
	(void)gpu;
	return "OPTIMAL";
}

uint64_t
gpu_policy_reserved_bytes(const struct gpu_policy *p, int gpu)
{
	(void)p;
	(void)gpu;
	return 0;
}
