/*
 * queue.c: the job queue (see queue.h). Called by the API (push on submit, remove on
 * cancel, position for replies), the scheduler wiring (summaries, pop per model) and
 * the engine (push_front when a dispatch could not start).
 *
 * Layout: a chained hash table maps a model name to its struct queue_model, which holds
 * one intrusive FIFO per priority (job->queue_prev/next). Models with no waiting job are
 * freed, and live models are also kept in a dense array (each knows its index) so
 * summaries cost O(models with jobs), never O(models ever seen).
 *
 * Positions: per priority, an order-statistics treap keyed by (seq, job address) counts
 * the waiting jobs older than a given one in O(log n), whichever model they wait for.
 * A job's position is the number of waiting jobs of higher priorities plus the jobs of
 * its priority with a smaller seq. seq is the submission order, so a job put back with
 * push_front keeps its place.
 *
 * Invariants: q->length == sum of every model's counts == sum of the treap sizes; a job
 * is in the queue iff job->status == JOB_QUEUED and it is linked in its model's FIFO
 * (queue_remove checks membership through the model's list, never trusts the status).
 * q->bytes == the request_bytes of every job with queue_holds_bytes set: set by the first
 * push, cleared by queue_release_bytes when the job is final, so a job that left the
 * queue to run still counts.
 *
 * Fair share between API keys: each FIFO is also split into flows, one per key with jobs
 * in it (job->queue_flow_prev/next, oldest first), listed on the FIFO. A pop takes the
 * head of the flow whose key has the smallest virtual time (tokens charged / weight;
 * ties: the older head), so the cost is O(keys with jobs in that FIFO), and O(1) without
 * keys, where every job belongs to the one flow of the NULL key and the order is FIFO.
 * Start-time fair queuing keeps an idle key from banking credit: q->vclock, the largest
 * minimum virtual time of the active keys (those with queued jobs) seen so far, is
 * updated when a key becomes active or idle (O(active keys), a few per burst, not per
 * job), and a key that becomes active starts at max(its own, q->vclock). Key records
 * (weights, counters) live as long as the queue: there are only as many as API keys.
 * Invariants: a job is in a flow iff it is in the FIFO; flows are never empty;
 * key->queued == the key's jobs in all flows, and key is in q->active iff queued > 0.
 *
 * Deadlines: the jobs of a FIFO that have one (job->deadline_mono_ms) are also kept in a
 * second list, earliest deadline first (then seq), and a FIFO serves that list before its
 * flows: within a class, the job with the least slack goes first (one model's jobs share
 * one expected run time, so least slack is earliest deadline), and jobs without one follow
 * in fair-share order. A deadline job thus passes the fair share of keys; its insertion
 * walks the list from the latest deadline, O(deadline jobs in that FIFO) at worst.
 * Invariant: a job is in its FIFO's deadline list iff it is queued and has a deadline, so
 * a FIFO whose deadline list is empty holds only jobs without one.
 */
#include "queue.h"

#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* An API key as the queue sees it (name "" stands for jobs without a key). */
struct queue_key {
	char *name;
	uint64_t hash;
	struct queue_key *hnext; /* bucket chain */
	unsigned weight;
	double vtime;	     /* tokens charged / weight, lifted when it becomes active */
	uint64_t tokens;     /* tokens charged (served) */
	size_t queued;	     /* its jobs in the queue, every model and priority */
	size_t active_index; /* in q->active while queued > 0 */
};

/* One key's jobs in one model's FIFO of one priority. */
struct queue_flow {
	struct queue_key *key;
	struct job *head, *tail;	/* by job->queue_flow_prev/next, oldest first */
	struct queue_flow *prev, *next; /* the other flows of the FIFO */
};

struct queue_model {
	char *name;
	uint64_t hash;
	struct queue_model *hnext; /* bucket chain */
	size_t dense_index;	   /* index in q->models */
	struct job *head[JOB_NPRIORITIES], *tail[JOB_NPRIORITIES];
	struct queue_flow *flows[JOB_NPRIORITIES];
	struct job *dhead[JOB_NPRIORITIES], *dtail[JOB_NPRIORITIES]; /* deadline lists */
	int count[JOB_NPRIORITIES];
	int total;
	int placed[JOB_NPLACEMENTS]; /* its jobs by placement (issue 11) */
};

struct queue_node { /* treap node */
	int64_t seq;
	uintptr_t addr;
	uint64_t prio;
	size_t size;
	struct queue_node *left, *right;
};

struct queue {
	size_t max_size;
	size_t length;
	size_t max_bytes; /* QUEUE_MAX_BYTES */
	size_t bytes;	  /* request bytes of the jobs with queue_holds_bytes */
	size_t length_prio[JOB_NPRIORITIES];
	struct queue_model **buckets;
	size_t nbuckets;	     /* power of two */
	struct queue_model **models; /* dense array of models with jobs */
	size_t nmodels, models_alloc;
	struct queue_node *order[JOB_NPRIORITIES]; /* treap roots */
	struct queue_node *free_nodes;		   /* recycled nodes (linked by right) */
	uint64_t rng;
	/* Fair share between keys. */
	struct queue_key **key_buckets; /* chained, every key ever seen */
	size_t nkey_buckets, nkeys;	/* power of two */
	struct queue_key *no_key;	/* jobs without a key (job->key NULL) */
	struct queue_key **active;	/* keys with queued jobs */
	size_t nactive, active_alloc;
	double vclock;		       /* see the top of this file */
	struct queue_flow *free_flows; /* recycled flows (linked by next) */
	size_t lookups;		       /* models looked up by name (queue_lookup_count) */
};

/* --- order statistics treap ------------------------------------------------------ */

static size_t
queue_node_size(const struct queue_node *n)
{
	return n != NULL ? n->size : 0;
}

static void
queue_node_fix(struct queue_node *n)
{
	n->size = 1 + queue_node_size(n->left) + queue_node_size(n->right);
}

static int
queue_key_cmp(int64_t seq, uintptr_t addr, const struct queue_node *n)
{
	if (seq != n->seq)
		return seq < n->seq ? -1 : 1;
	if (addr != n->addr)
		return addr < n->addr ? -1 : 1;
	return 0;
}

/* Splits t into keys < (seq, addr) and keys >= (seq, addr). */
static void
queue_treap_split(struct queue_node *t, int64_t seq, uintptr_t addr, struct queue_node **l,
		  struct queue_node **r)
{
	if (t == NULL) {
		*l = *r = NULL;
		return;
	}
	if (queue_key_cmp(seq, addr, t) > 0) {
		queue_treap_split(t->right, seq, addr, &t->right, r);
		*l = t;
	} else {
		queue_treap_split(t->left, seq, addr, l, &t->left);
		*r = t;
	}
	queue_node_fix(t);
}

static struct queue_node *
queue_treap_merge(struct queue_node *l, struct queue_node *r)
{
	if (l == NULL)
		return r;
	if (r == NULL)
		return l;
	if (l->prio > r->prio) {
		l->right = queue_treap_merge(l->right, r);
		queue_node_fix(l);
		return l;
	}
	r->left = queue_treap_merge(l, r->left);
	queue_node_fix(r);
	return r;
}

static void
queue_order_insert(struct queue *q, const struct job *job)
{
	struct queue_node *n = q->free_nodes;
	if (n != NULL)
		q->free_nodes = n->right;
	else
		n = xmalloc(sizeof(*n));
	n->seq = job->seq;
	n->addr = (uintptr_t)job;
	n->prio = vd_rand64(&q->rng);
	n->size = 1;
	n->left = n->right = NULL;

	struct queue_node *l, *r;
	queue_treap_split(q->order[job->priority], n->seq, n->addr, &l, &r);
	q->order[job->priority] = queue_treap_merge(queue_treap_merge(l, n), r);
}

/* Removes the node of job from t; returns the new root. */
static struct queue_node *
queue_treap_erase(struct queue *q, struct queue_node *t, int64_t seq, uintptr_t addr)
{
	if (t == NULL)
		return NULL;
	int c = queue_key_cmp(seq, addr, t);
	if (c == 0) {
		struct queue_node *m = queue_treap_merge(t->left, t->right);
		t->right = q->free_nodes;
		q->free_nodes = t;
		return m;
	}
	if (c < 0)
		t->left = queue_treap_erase(q, t->left, seq, addr);
	else
		t->right = queue_treap_erase(q, t->right, seq, addr);
	queue_node_fix(t);
	return t;
}

static void
queue_order_erase(struct queue *q, const struct job *job)
{
	q->order[job->priority] =
	    queue_treap_erase(q, q->order[job->priority], job->seq, (uintptr_t)job);
}

/* Number of keys in t smaller than (seq, addr). */
static size_t
queue_treap_rank(const struct queue_node *t, int64_t seq, uintptr_t addr)
{
	size_t rank = 0;
	while (t != NULL) {
		int c = queue_key_cmp(seq, addr, t);
		if (c <= 0) {
			t = t->left;
		} else {
			rank += queue_node_size(t->left) + 1;
			t = t->right;
		}
	}
	return rank;
}

static void
queue_treap_free(struct queue_node *t)
{
	/* Iterative: a degenerate treap must not overflow the stack. */
	while (t != NULL) {
		if (t->left != NULL) {
			struct queue_node *l = t->left;
			t->left = l->right;
			l->right = t;
			t = l;
		} else {
			struct queue_node *r = t->right;
			free(t);
			t = r;
		}
	}
}

/* --- model table ------------------------------------------------------------------ */

static uint64_t
queue_hash(const char *name)
{
	return vd_hash64(name, strlen(name), 0);
}

static struct queue_model *
queue_model_lookup(const struct queue *q, const char *name)
{
	((struct queue *)q)->lookups++; /* a statistic, not the queue's state */
	uint64_t h = queue_hash(name);
	for (struct queue_model *m = q->buckets[h & (q->nbuckets - 1)]; m != NULL; m = m->hnext)
		if (m->hash == h && strcmp(m->name, name) == 0)
			return m;
	return NULL;
}

static void
queue_rehash(struct queue *q, size_t nbuckets)
{
	struct queue_model **buckets = xcalloc(nbuckets, sizeof(*buckets));
	for (size_t i = 0; i < q->nmodels; i++) {
		struct queue_model *m = q->models[i];
		size_t b = m->hash & (nbuckets - 1);
		m->hnext = buckets[b];
		buckets[b] = m;
	}
	free(q->buckets);
	q->buckets = buckets;
	q->nbuckets = nbuckets;
}

static struct queue_model *
queue_model_get(struct queue *q, const char *name)
{
	struct queue_model *m = queue_model_lookup(q, name);
	if (m != NULL)
		return m;
	m = xcalloc(1, sizeof(*m));
	m->name = xstrdup(name);
	m->hash = queue_hash(name);
	if (q->nmodels == q->models_alloc) {
		q->models_alloc = q->models_alloc != 0 ? q->models_alloc * 2 : 16;
		q->models = xreallocarray(q->models, q->models_alloc, sizeof(*q->models));
	}
	m->dense_index = q->nmodels;
	q->models[q->nmodels++] = m;
	if (q->nmodels > q->nbuckets)
		queue_rehash(q, q->nbuckets * 2);
	else {
		size_t b = m->hash & (q->nbuckets - 1);
		m->hnext = q->buckets[b];
		q->buckets[b] = m;
	}
	return m;
}

static void
queue_model_drop(struct queue *q, struct queue_model *m)
{
	struct queue_model **pp = &q->buckets[m->hash & (q->nbuckets - 1)];
	while (*pp != m)
		pp = &(*pp)->hnext;
	*pp = m->hnext;
	struct queue_model *last = q->models[--q->nmodels];
	q->models[m->dense_index] = last;
	last->dense_index = m->dense_index;
	free(m->name);
	free(m);
}

/* --- keys and flows (fair share) ----------------------------------------------------- */

static struct queue_key *
queue_key_lookup(const struct queue *q, const char *name)
{
	if (name == NULL)
		return q->no_key;
	uint64_t h = queue_hash(name);
	for (struct queue_key *k = q->key_buckets[h & (q->nkey_buckets - 1)]; k != NULL;
	     k = k->hnext)
		if (k->hash == h && strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

static void
queue_key_insert(struct queue *q, struct queue_key *k)
{
	size_t b = k->hash & (q->nkey_buckets - 1);
	k->hnext = q->key_buckets[b];
	q->key_buckets[b] = k;
}

static struct queue_key *
queue_key_new(struct queue *q, const char *name)
{
	struct queue_key *k = xcalloc(1, sizeof(*k));
	k->name = xstrdup(name);
	k->hash = queue_hash(name);
	k->weight = 1;
	if (++q->nkeys > q->nkey_buckets) {
		struct queue_key **old = q->key_buckets;
		size_t oldn = q->nkey_buckets;
		q->nkey_buckets *= 2;
		q->key_buckets = xcalloc(q->nkey_buckets, sizeof(*q->key_buckets));
		for (size_t i = 0; i < oldn; i++)
			for (struct queue_key *o = old[i], *next; o != NULL; o = next) {
				next = o->hnext;
				queue_key_insert(q, o);
			}
		free(old);
	}
	queue_key_insert(q, k);
	return k;
}

static struct queue_key *
queue_key_get(struct queue *q, const char *name)
{
	struct queue_key *k = queue_key_lookup(q, name);
	return k != NULL ? k : queue_key_new(q, name);
}

/* Moves q->vclock up to the smallest virtual time of the active keys. */
static void
queue_vclock_advance(struct queue *q)
{
	if (q->nactive == 0)
		return;
	double least = q->active[0]->vtime;
	for (size_t i = 1; i < q->nactive; i++)
		if (q->active[i]->vtime < least)
			least = q->active[i]->vtime;
	if (least > q->vclock)
		q->vclock = least;
}

/* k got its first queued job: it competes from the current virtual time on, so time it
 * spent idle is no credit against the keys that kept the queue busy. */
static void
queue_key_activate(struct queue *q, struct queue_key *k)
{
	queue_vclock_advance(q);
	if (k->vtime < q->vclock)
		k->vtime = q->vclock;
	if (q->nactive == q->active_alloc) {
		q->active_alloc = q->active_alloc != 0 ? q->active_alloc * 2 : 8;
		q->active = xreallocarray(q->active, q->active_alloc, sizeof(*q->active));
	}
	k->active_index = q->nactive;
	q->active[q->nactive++] = k;
}

/* k has no queued job left. The virtual time is taken first, with k still counted, so
 * a key that arrives after the queue emptied starts where the last busy key was. */
static void
queue_key_deactivate(struct queue *q, struct queue_key *k)
{
	queue_vclock_advance(q);
	struct queue_key *last = q->active[--q->nactive];
	q->active[k->active_index] = last;
	last->active_index = k->active_index;
}

/* The flow of key k in model m's FIFO p, created at the end of the FIFO's flows. */
static struct queue_flow *
queue_flow_get(struct queue *q, struct queue_model *m, int p, struct queue_key *k)
{
	struct queue_flow *f = m->flows[p];
	for (; f != NULL; f = f->next)
		if (f->key == k)
			return f;
	f = q->free_flows;
	if (f != NULL)
		q->free_flows = f->next;
	else
		f = xmalloc(sizeof(*f));
	*f = (struct queue_flow){.key = k, .next = m->flows[p]};
	if (m->flows[p] != NULL)
		m->flows[p]->prev = f;
	m->flows[p] = f;
	return f;
}

static void
queue_flow_link(struct queue *q, struct queue_model *m, struct job *job, bool front)
{
	struct queue_key *k = queue_key_get(q, job->key);
	struct queue_flow *f = queue_flow_get(q, m, job->priority, k);
	if (front) {
		job->queue_flow_prev = NULL;
		job->queue_flow_next = f->head;
		if (f->head != NULL)
			f->head->queue_flow_prev = job;
		else
			f->tail = job;
		f->head = job;
	} else {
		job->queue_flow_next = NULL;
		job->queue_flow_prev = f->tail;
		if (f->tail != NULL)
			f->tail->queue_flow_next = job;
		else
			f->head = job;
		f->tail = job;
	}
	job->queue_flow = f;
	if (k->queued++ == 0)
		queue_key_activate(q, k);
}

static void
queue_flow_unlink(struct queue *q, struct queue_model *m, struct job *job)
{
	struct queue_flow *f = job->queue_flow;
	if (job->queue_flow_prev != NULL)
		job->queue_flow_prev->queue_flow_next = job->queue_flow_next;
	else
		f->head = job->queue_flow_next;
	if (job->queue_flow_next != NULL)
		job->queue_flow_next->queue_flow_prev = job->queue_flow_prev;
	else
		f->tail = job->queue_flow_prev;
	job->queue_flow_prev = job->queue_flow_next = NULL;
	job->queue_flow = NULL;
	struct queue_key *k = f->key;
	if (f->head == NULL) {
		if (f->prev != NULL)
			f->prev->next = f->next;
		else
			m->flows[job->priority] = f->next;
		if (f->next != NULL)
			f->next->prev = f->prev;
		f->next = q->free_flows;
		q->free_flows = f;
	}
	if (--k->queued == 0)
		queue_key_deactivate(q, k);
}

/* --- deadlines --------------------------------------------------------------------- */

/* Whether a (with a deadline) goes before b (with one) in a deadline list. */
static bool
queue_deadline_before(const struct job *a, const struct job *b)
{
	if (a->deadline_mono_ms != b->deadline_mono_ms)
		return a->deadline_mono_ms < b->deadline_mono_ms;
	return a->seq < b->seq;
}

static void
queue_deadline_link(struct queue_model *m, struct job *job)
{
	int p = job->priority;
	struct job *after = m->dtail[p];
	while (after != NULL && queue_deadline_before(job, after))
		after = after->queue_deadline_prev;
	job->queue_deadline_prev = after;
	job->queue_deadline_next = after != NULL ? after->queue_deadline_next : m->dhead[p];
	if (job->queue_deadline_next != NULL)
		job->queue_deadline_next->queue_deadline_prev = job;
	else
		m->dtail[p] = job;
	if (after != NULL)
		after->queue_deadline_next = job;
	else
		m->dhead[p] = job;
}

static void
queue_deadline_unlink(struct queue_model *m, struct job *job)
{
	int p = job->priority;
	if (job->queue_deadline_prev != NULL)
		job->queue_deadline_prev->queue_deadline_next = job->queue_deadline_next;
	else
		m->dhead[p] = job->queue_deadline_next;
	if (job->queue_deadline_next != NULL)
		job->queue_deadline_next->queue_deadline_prev = job->queue_deadline_prev;
	else
		m->dtail[p] = job->queue_deadline_prev;
	job->queue_deadline_prev = job->queue_deadline_next = NULL;
}

/* The next job of model m's FIFO p: its earliest deadline; without one, the head of the
 * flow whose key has the least virtual time, the older head on a tie. */
static struct job *
queue_fifo_next(const struct queue_model *m, int p)
{
	if (m->dhead[p] != NULL)
		return m->dhead[p];
	const struct queue_flow *best = m->flows[p];
	if (best == NULL)
		return NULL;
	for (const struct queue_flow *f = best->next; f != NULL; f = f->next)
		if (f->key->vtime < best->key->vtime ||
		    (f->key->vtime == best->key->vtime && f->head->seq < best->head->seq))
			best = f;
	return best->head;
}

/* --- queue ------------------------------------------------------------------------ */

struct queue *
queue_new(size_t max_size)
{
	struct queue *q = xcalloc(1, sizeof(*q));
	q->max_size = max_size;
	q->max_bytes = SIZE_MAX;
	q->nbuckets = 16;
	q->buckets = xcalloc(q->nbuckets, sizeof(*q->buckets));
	q->rng = 0x9e3779b97f4a7c15ULL;
	q->nkey_buckets = 16;
	q->key_buckets = xcalloc(q->nkey_buckets, sizeof(*q->key_buckets));
	q->no_key = queue_key_new(q, "");
	return q;
}

void
queue_free(struct queue *q)
{
	if (q == NULL)
		return;
	while (q->nmodels > 0) {
		struct queue_model *m = q->models[q->nmodels - 1];
		for (int p = 0; p < JOB_NPRIORITIES; p++) {
			struct job *job = m->head[p];
			while (job != NULL) {
				struct job *next = job->queue_next;
				job->queue_prev = job->queue_next = NULL;
				job->queue_flow_prev = job->queue_flow_next = NULL;
				job->queue_flow = NULL;
				job->queue_deadline_prev = job->queue_deadline_next = NULL;
				job_unref(job);
				job = next;
			}
			while (m->flows[p] != NULL) {
				struct queue_flow *f = m->flows[p];
				m->flows[p] = f->next;
				free(f);
			}
		}
		queue_model_drop(q, m);
	}
	for (int p = 0; p < JOB_NPRIORITIES; p++)
		queue_treap_free(q->order[p]);
	while (q->free_nodes != NULL) {
		struct queue_node *n = q->free_nodes;
		q->free_nodes = n->right;
		free(n);
	}
	while (q->free_flows != NULL) {
		struct queue_flow *f = q->free_flows;
		q->free_flows = f->next;
		free(f);
	}
	for (size_t i = 0; i < q->nkey_buckets; i++)
		for (struct queue_key *k = q->key_buckets[i], *next; k != NULL; k = next) {
			next = k->hnext;
			free(k->name);
			free(k);
		}
	free(q->key_buckets);
	free(q->active);
	free(q->buckets);
	free(q->models);
	free(q);
}

/* The placement a job is counted under; a job's placement does not change while it is
 * queued. */
static int
queue_placement_of(const struct job *job)
{
	return job->placement < JOB_NPLACEMENTS ? (int)job->placement : JOB_PLACE_ANY;
}

static void
queue_link(struct queue *q, struct job *job, bool front)
{
	struct queue_model *m = queue_model_get(q, job->model);
	int p = job->priority;
	if (front) {
		job->queue_prev = NULL;
		job->queue_next = m->head[p];
		if (m->head[p] != NULL)
			m->head[p]->queue_prev = job;
		else
			m->tail[p] = job;
		m->head[p] = job;
	} else {
		job->queue_next = NULL;
		job->queue_prev = m->tail[p];
		if (m->tail[p] != NULL)
			m->tail[p]->queue_next = job;
		else
			m->head[p] = job;
		m->tail[p] = job;
	}
	queue_flow_link(q, m, job, front);
	if (job->deadline_mono_ms > 0)
		queue_deadline_link(m, job);
	m->count[p]++;
	m->total++;
	m->placed[queue_placement_of(job)]++;
	q->length++;
	q->length_prio[p]++;
	queue_order_insert(q, job);
	job->status = JOB_QUEUED;
	if (!job->queue_holds_bytes) {
		q->bytes += job->request_bytes;
		job->queue_holds_bytes = true;
	}
	if (job->enqueued_mono_ms == 0)
		job->enqueued_mono_ms = vd_now_mono_ms();
	job_ref(job);
}

static void
queue_unlink(struct queue *q, struct queue_model *m, struct job *job)
{
	int p = job->priority;
	if (job->queue_prev != NULL)
		job->queue_prev->queue_next = job->queue_next;
	else
		m->head[p] = job->queue_next;
	if (job->queue_next != NULL)
		job->queue_next->queue_prev = job->queue_prev;
	else
		m->tail[p] = job->queue_prev;
	job->queue_prev = job->queue_next = NULL;
	queue_flow_unlink(q, m, job);
	if (job->deadline_mono_ms > 0)
		queue_deadline_unlink(m, job);
	m->count[p]--;
	m->total--;
	m->placed[queue_placement_of(job)]--;
	q->length--;
	q->length_prio[p]--;
	queue_order_erase(q, job);
	if (m->total == 0)
		queue_model_drop(q, m);
}

int
queue_push(struct queue *q, struct job *job)
{
	if (q->length >= q->max_size)
		return -ENOSPC;
	if (!job->queue_holds_bytes && !queue_has_room_bytes(q, job->request_bytes))
		return -ENOBUFS;
	queue_link(q, job, false);
	return 0;
}

void
queue_push_front(struct queue *q, struct job *job)
{
	queue_link(q, job, true);
}

void
queue_push_recovered(struct queue *q, struct job *job)
{
	queue_link(q, job, false);
}

/* Whether FIFO head a goes before head b of the same effective class: the one with a
 * deadline, the earlier deadline, else the older. */
static bool
queue_head_before(const struct job *a, const struct job *b)
{
	if ((a->deadline_mono_ms > 0) != (b->deadline_mono_ms > 0))
		return a->deadline_mono_ms > 0;
	if (a->deadline_mono_ms != b->deadline_mono_ms)
		return a->deadline_mono_ms < b->deadline_mono_ms;
	return a->enqueued_mono_ms < b->enqueued_mono_ms;
}

/* The next job of model m: the FIFO heads compared by effective priority (aging, see
 * job_effective_priority), then by deadline and age (queue_head_before); plain priority
 * order when aging_ms is 0. */
static struct job *
queue_model_next(const struct queue_model *m, int64_t now_ms, int64_t aging_ms)
{
	struct job *best = NULL;
	int best_eff = JOB_NPRIORITIES;

	for (int p = 0; p < JOB_NPRIORITIES; p++) {
		struct job *job = queue_fifo_next(m, p);
		if (job == NULL)
			continue;
		/* A FIFO's class is what its oldest job has aged into, as the scheduler sees
		 * it (oldest_enqueued_ms); the job it serves may be another (a deadline, a
		 * key's turn). */
		int eff = job_effective_priority(p, m->head[p]->enqueued_mono_ms, now_ms, aging_ms);
		if (best == NULL || eff < best_eff ||
		    (eff == best_eff && queue_head_before(job, best))) {
			best = job;
			best_eff = eff;
		}
	}
	return best;
}

struct job *
queue_pop_model(struct queue *q, const char *model)
{
	return queue_pop_model_aged(q, model, 0, 0);
}

struct job *
queue_pop_model_aged(struct queue *q, const char *model, int64_t now_ms, int64_t aging_ms)
{
	struct queue_model *m = queue_model_lookup(q, model);
	if (m == NULL)
		return NULL;
	struct job *job = queue_model_next(m, now_ms, aging_ms);
	if (job != NULL)
		queue_unlink(q, m, job);
	return job; /* the queue's reference passes to the caller */
}

/* Whether job is linked in m's FIFO for its priority: O(1) through its neighbours. */
static bool
queue_model_holds(const struct queue_model *m, const struct job *job)
{
	if ((unsigned)job->priority >= JOB_NPRIORITIES)
		return false;
	if (job->queue_prev != NULL)
		return job->queue_prev->queue_next == job;
	return m->head[job->priority] == job;
}

bool
queue_remove(struct queue *q, struct job *job)
{
	struct queue_model *m = queue_model_lookup(q, job->model);
	if (m == NULL || !queue_model_holds(m, job))
		return false;
	queue_unlink(q, m, job);
	job_unref(job);
	return true;
}

size_t
queue_length(const struct queue *q)
{
	return q->length;
}

size_t
queue_capacity(const struct queue *q)
{
	return q->max_size;
}

void
queue_set_capacity(struct queue *q, size_t max_size)
{
	q->max_size = max_size;
}

void
queue_set_capacity_bytes(struct queue *q, size_t max_bytes)
{
	q->max_bytes = max_bytes;
}

size_t
queue_capacity_bytes(const struct queue *q)
{
	return q->max_bytes;
}

size_t
queue_bytes(const struct queue *q)
{
	return q->bytes;
}

bool
queue_has_room_bytes(const struct queue *q, size_t bytes)
{
	return bytes <= q->max_bytes && q->bytes <= q->max_bytes - bytes;
}

void
queue_release_bytes(struct queue *q, struct job *job)
{
	if (!job->queue_holds_bytes)
		return;
	job->queue_holds_bytes = false;
	q->bytes -= job->request_bytes;
}

size_t
queue_length_priority(const struct queue *q, enum job_priority priority)
{
	return (unsigned)priority < JOB_NPRIORITIES ? q->length_prio[priority] : 0;
}

size_t
queue_position(const struct queue *q, const struct job *job)
{
	size_t pos = 0;
	if ((unsigned)job->priority >= JOB_NPRIORITIES)
		return 0;
	for (int p = 0; p < (int)job->priority; p++)
		pos += q->length_prio[p];
	return pos + queue_treap_rank(q->order[job->priority], job->seq, (uintptr_t)job);
}

size_t
queue_deadline_ahead(const struct queue *q, const struct job *job)
{
	const struct queue_model *m = queue_model_lookup(q, job->model);
	size_t n = 0;
	if (m == NULL || (unsigned)job->priority >= JOB_NPRIORITIES)
		return 0;
	for (const struct job *d = m->dhead[job->priority]; d != NULL && d != job;
	     d = d->queue_deadline_next) {
		if (job->deadline_mono_ms > 0 && !queue_deadline_before(d, job))
			break;
		n++;
	}
	return n;
}

size_t
queue_model_count(const struct queue *q)
{
	return q->nmodels;
}

static void
queue_fill_summary(const struct queue_model *m, struct queue_model_summary *out)
{
	out->model = m->name;
	for (int p = 0; p < JOB_NPRIORITIES; p++) {
		out->count[p] = m->count[p];
		out->oldest_enqueued_ms[p] = m->head[p] != NULL ? m->head[p]->enqueued_mono_ms : 0;
		out->earliest_deadline_ms[p] =
		    m->dhead[p] != NULL ? m->dhead[p]->deadline_mono_ms : 0;
	}
	for (int i = 0; i < JOB_NPLACEMENTS; i++)
		out->placed[i] = m->placed[i];
	out->head = queue_model_next(m, 0, 0);
}

void
queue_each_model_job(const struct queue *q, const char *model,
		     void (*fn)(struct job *job, void *arg), void *arg)
{
	const struct queue_model *m = queue_model_lookup(q, model);
	for (int p = 0; m != NULL && p < JOB_NPRIORITIES; p++)
		for (struct job *job = m->head[p]; job != NULL; job = job->queue_next)
			fn(job, arg);
}

size_t
queue_lookup_count(const struct queue *q)
{
	return q->lookups;
}

size_t
queue_summaries(const struct queue *q, struct queue_model_summary *summaries, size_t max)
{
	size_t n = q->nmodels < max ? q->nmodels : max;
	for (size_t i = 0; i < n; i++)
		queue_fill_summary(q->models[i], &summaries[i]);
	return n;
}

void
queue_summary(const struct queue *q, const char *model, struct queue_model_summary *out)
{
	const struct queue_model *m = queue_model_lookup(q, model);
	if (m != NULL) {
		queue_fill_summary(m, out);
		return;
	}
	memset(out, 0, sizeof(*out));
	out->model = NULL;
}

struct job *
queue_peek_model(const struct queue *q, const char *model)
{
	return queue_peek_model_aged(q, model, 0, 0);
}

struct job *
queue_peek_model_aged(const struct queue *q, const char *model, int64_t now_ms, int64_t aging_ms)
{
	const struct queue_model *m = queue_model_lookup(q, model);
	return m != NULL ? queue_model_next(m, now_ms, aging_ms) : NULL;
}

void
queue_set_key_weight(struct queue *q, const char *key, unsigned weight)
{
	queue_key_get(q, key)->weight = weight > 0 ? weight : 1;
}

void
queue_charge(struct queue *q, const char *key, uint64_t tokens)
{
	struct queue_key *k = queue_key_get(q, key);
	k->tokens += tokens;
	/* A job costs at least one token, so jobs whose server reports no counts (or that
	 * failed) still take turns by number. */
	k->vtime += (double)(tokens > 0 ? tokens : 1) / k->weight;
}

void
queue_key_stats(const struct queue *q, const char *key, struct queue_key_stats *out)
{
	const struct queue_key *k = queue_key_lookup(q, key);
	*out = (struct queue_key_stats){.weight = 1};
	if (k == NULL)
		return;
	out->queued = k->queued;
	out->tokens = k->tokens;
	out->vtime = k->vtime;
	out->weight = k->weight;
}
