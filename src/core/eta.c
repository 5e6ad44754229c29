/* eta.c: see eta.h. */
#include "eta.h"

#include <stdbool.h>

double
eta_estimate(const struct eta_input *in)
{
	if (in->run_s < 0)
		return -1;
	int slots = in->slots > 0 ? in->slots : 1;
	/* Free memory is not room at the resident cap: the server would evict on its own,
	 * so the scheduler unloads first (poisson seed 1: jobs of models that "fit now"
	 * started 5x later than predicted, most at the cap). */
	bool room_now =
	    in->fits_now && (in->resident_max <= 0 || in->resident_n < in->resident_max);
	double start;
	if (in->resident)
		start = in->loading_s;
	else if (room_now)
		start = in->load_s;
	else {
		double room = in->evict_s < in->bound_s ? in->evict_s : in->bound_s;
		/* Back-to-back swaps set the pace: each model served first takes at least
		 * one, and so does this load (a drain and an unload before it). */
		double others = in->others_s, load = in->load_s;
		if (in->swap_s > 0) {
			if (others < in->others_n * in->swap_s)
				others = in->others_n * in->swap_s;
			if (load < in->swap_s)
				load = in->swap_s;
		}
		start = (room > others ? room : others) + load;
	}
	/* It starts once k of the jobs before it on the model's slots have ended; those
	 * already running are half done on average. */
	int running = in->resident ? in->running : 0;
	int k = in->ahead + running + 1 - slots;
	if (k > 0)
		start += ((double)k - (running > 0 ? 0.5 : 0.0)) * in->run_s / slots;
	return start;
}
