/* eta.c: see eta.h. */
#include "eta.h"

double
eta_estimate(const struct eta_input *in)
{
	if (in->run_s < 0)
		return -1;
	int slots = in->slots > 0 ? in->slots : 1;
	double start;
	if (in->resident)
		start = in->loading_s;
	else if (in->fits_now)
		start = in->load_s;
	else {
		double room = in->evict_s < in->bound_s ? in->evict_s : in->bound_s;
		start = (room > in->others_s ? room : in->others_s) + in->load_s;
	}
	/* It starts once k of the jobs before it on the model's slots have ended; those
	 * already running are half done on average. */
	int running = in->resident ? in->running : 0;
	int k = in->ahead + running + 1 - slots;
	if (k > 0)
		start += ((double)k - (running > 0 ? 0.5 : 0.0)) * in->run_s / slots;
	return start;
}
