/*
 * sim-machine.c: the machine file shared by several ollama-sim processes (see
 * sim-machine.h for the layout and the locking). Callers: ollama-sim.c opens and
 * joins the machine; sim-hw.c publishes through it and refreshes the peers' memory
 * before the scheduler reads free memory.
 */
#include "sim-machine.h"

#include "sim-hw.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SIM_MACHINE_FIRST_PID 51000u

struct sim_machine {
	int fd;
	struct sim_machine_file *map;
	char *path;
	int slot; /* -1 until joined */
	uint32_t pid;
};

static void
machine_lock(const struct sim_machine *m, int how)
{
	while (flock(m->fd, how) < 0 && errno == EINTR)
		;
}

static void
machine_unlock(const struct sim_machine *m)
{
	flock(m->fd, LOCK_UN);
}

static bool
machine_pid_is_alive(uint32_t pid)
{
	return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

static bool
machine_is_valid(const struct sim_machine_record *rec)
{
	return rec->magic == SIM_MACHINE_MAGIC && rec->version == SIM_MACHINE_VERSION &&
	       rec->ngpus <= SIM_SHM_MAX_GPUS;
}

static void
machine_desc_from(const struct sim_machine_record *rec, struct sim_machine_desc *d)
{
	memset(d, 0, sizeof(*d));
	d->ngpus = rec->ngpus;
	memcpy(d->gpu_bytes, rec->gpu_bytes, sizeof(d->gpu_bytes));
	d->ram_bytes = rec->ram_bytes;
	d->seed = rec->seed;
	d->time_scale = rec->time_scale;
}

/* Writes a new machine into an empty mapping: its record and the GPUs' NVML view. */
static void
machine_format(struct sim_machine_file *f, const struct sim_machine_desc *d)
{
	struct sim_machine_record *rec = &f->machine;
	memset(rec, 0, sizeof(*rec));
	rec->ngpus = d->ngpus;
	memcpy(rec->gpu_bytes, d->gpu_bytes, sizeof(rec->gpu_bytes));
	rec->ram_bytes = d->ram_bytes;
	rec->seed = d->seed;
	rec->time_scale = d->time_scale;
	rec->next_runner_pid = SIM_MACHINE_FIRST_PID;
	struct sim_hw *all = xcalloc(1, sizeof(*all));
	sim_hw_init(all, d->gpu_bytes, d->ngpus, d->ram_bytes, d->seed);
	struct sim_shm *shm = &f->shm;
	sim_shm_write_begin(shm);
	shm->magic = SIM_SHM_MAGIC;
	shm->version = SIM_SHM_VERSION;
	shm->ngpus = d->ngpus;
	shm->writer_pid = (uint32_t)getpid();
	vd_strlcpy(shm->driver_version, "555.42.06-sim", sizeof(shm->driver_version));
	shm->cuda_driver_version = 12050;
	for (unsigned i = 0; i < d->ngpus; i++) {
		sim_hw_write_gpu_record(&all->gpus[i], &shm->gpus[i]);
		shm->gpus[i].used_by_models_bytes = 0;
		shm->gpus[i].used_by_others_bytes = 0;
		shm->gpus[i].nprocs = 0;
	}
	sim_shm_write_end(shm);
	free(all);
	/* Last, so that a reader of the record never sees half a machine. */
	__atomic_store_n(&rec->version, SIM_MACHINE_VERSION, __ATOMIC_RELEASE);
	__atomic_store_n(&rec->magic, SIM_MACHINE_MAGIC, __ATOMIC_RELEASE);
}

static int
machine_map(struct sim_machine *m, char **cause)
{
	void *map = mmap(NULL, sizeof(struct sim_machine_file), PROT_READ | PROT_WRITE, MAP_SHARED,
			 m->fd, 0);
	if (map == MAP_FAILED)
		return vd_fail(cause, -errno, "%s: mmap: %s", m->path, strerror(errno));
	m->map = map;
	return 0;
}

/* Waits (up to 2 s) for a creator that has not taken its lock yet to size the file.
 * Called with the lock, which it drops while it sleeps. */
static int
machine_wait_sized(struct sim_machine *m, char **cause)
{
	for (int tries = 0; tries < 200; tries++) {
		struct stat st;
		if (fstat(m->fd, &st) < 0)
			return vd_fail(cause, -errno, "%s: %s", m->path, strerror(errno));
		if (st.st_size >= (off_t)sizeof(struct sim_machine_file))
			return 0;
		if (st.st_size != 0)
			return vd_fail(cause, -EINVAL,
				       "%s: not a machine file (%lld bytes; --state files are "
				       "not machines)",
				       m->path, (long long)st.st_size);
		/* A creator that opened the file has yet to lock it: let it. */
		machine_unlock(m);
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
		machine_lock(m, LOCK_EX);
	}
	return vd_fail(cause, -EINVAL, "%s: empty file, not a machine", m->path);
}

static int
machine_check_desc(const struct sim_machine *m, const struct sim_machine_desc *want,
		   const struct sim_machine_desc *got, char **cause)
{
	bool same = want->ngpus == got->ngpus;
	for (unsigned i = 0; same && i < want->ngpus; i++)
		same = want->gpu_bytes[i] == got->gpu_bytes[i];
	if (same)
		return 0;
	char have[256] = "";
	for (unsigned i = 0; i < got->ngpus; i++) {
		char sz[32];
		vd_format_size(got->gpu_bytes[i], sz, sizeof(sz));
		size_t len = strlen(have);
		snprintf(have + len, sizeof(have) - len, "%s%s", i ? ", " : "", sz);
	}
	return vd_fail(cause, -EEXIST,
		       "%s: the machine exists with GPUs %s; leave out --gpus to attach to it",
		       m->path, got->ngpus ? have : "none");
}

int
sim_machine_open(const char *path, enum sim_machine_mode mode, const struct sim_machine_desc *want,
		 struct sim_machine **out, struct sim_machine_desc *got, char **cause)
{
	struct sim_machine *m = xcalloc(1, sizeof(*m));
	m->fd = -1;
	m->slot = -1;
	m->pid = (uint32_t)getpid();
	m->path = xstrdup(path);
	int rc;
	bool create = false;
	if (mode == SIM_MACHINE_REPLACE) {
		m->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		create = true;
	} else if (mode == SIM_MACHINE_CREATE || want != NULL) {
		m->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		create = m->fd >= 0;
		if (m->fd < 0 && errno == EEXIST && mode == SIM_MACHINE_CREATE) {
			rc = vd_fail(cause, -EEXIST, "%s: a machine file exists already", path);
			goto out_free;
		}
	}
	if (m->fd < 0 && !create)
		m->fd = open(path, O_RDWR | O_CLOEXEC);
	if (m->fd < 0) {
		rc = -errno;
		if (errno == ENOENT && want == NULL)
			rc = vd_fail(cause, rc, "%s: no machine there (create it with --gpus)",
				     path);
		else
			rc = vd_fail(cause, rc, "%s: %s", path, strerror(errno));
		goto out_free;
	}
	machine_lock(m, LOCK_EX);
	if (create) {
		if (ftruncate(m->fd, (off_t)sizeof(struct sim_machine_file)) < 0) {
			rc = vd_fail(cause, -errno, "%s: %s", path, strerror(errno));
			goto out_unlock;
		}
		if ((rc = machine_map(m, cause)) < 0)
			goto out_unlock;
		machine_format(m->map, want);
	} else {
		if ((rc = machine_wait_sized(m, cause)) < 0 || (rc = machine_map(m, cause)) < 0)
			goto out_unlock;
		if (!machine_is_valid(&m->map->machine)) {
			rc =
			    vd_fail(cause, -EINVAL, "%s: not a machine file of this version", path);
			goto out_unlock;
		}
	}
	machine_desc_from(&m->map->machine, got);
	if (!create && want != NULL && (rc = machine_check_desc(m, want, got, cause)) < 0)
		goto out_unlock;
	machine_unlock(m);
	*out = m;
	return 0;

out_unlock:
	machine_unlock(m);
out_free:
	sim_machine_close(m);
	return rc;
}

/* Clears the slots of servers that exited without leaving. Called with the lock. */
static void
machine_reap(struct sim_machine *m)
{
	for (unsigned i = 0; i < SIM_MACHINE_MAX_SERVERS; i++) {
		struct sim_machine_server *sv = &m->map->machine.servers[i];
		if (sv->pid != 0 && sv->pid != m->pid && !machine_pid_is_alive(sv->pid))
			memset(sv, 0, sizeof(*sv));
	}
}

int
sim_machine_join(struct sim_machine *m, struct sim_hw *hw, char **cause)
{
	machine_lock(m, LOCK_EX);
	machine_reap(m);
	struct sim_machine_record *rec = &m->map->machine;
	for (unsigned i = 0; i < SIM_MACHINE_MAX_SERVERS && m->slot < 0; i++)
		if (rec->servers[i].pid == 0 || rec->servers[i].pid == m->pid)
			m->slot = (int)i;
	if (m->slot >= 0) {
		memset(&rec->servers[m->slot], 0, sizeof(rec->servers[m->slot]));
		rec->servers[m->slot].pid = m->pid;
	}
	machine_unlock(m);
	if (m->slot < 0)
		return vd_fail(cause, -ENOSPC, "%s: the machine has %d servers already", m->path,
			       SIM_MACHINE_MAX_SERVERS);
	hw->machine = m;
	hw->shm = &m->map->shm;
	vd_free(hw->state_path);
	hw->state_path = xstrdup(m->path);
	hw->other_pid_base = 40000u + (uint32_t)m->slot * SIM_SHM_MAX_GPUS;
	for (unsigned i = 0; i < hw->ngpus; i++)
		hw->gpus[i].other_pid = hw->other_pid_base + hw->gpus[i].machine_index;
	return 0;
}

/* Sums the other servers' memory on hw's GPUs. Called with the lock (shared or not). */
static void
machine_fill_peers(const struct sim_machine *m, struct sim_hw *hw)
{
	const struct sim_machine_record *rec = &m->map->machine;
	hw->peer_ram_bytes = 0;
	for (unsigned i = 0; i < hw->ngpus; i++)
		hw->gpus[i].peer_bytes = 0;
	for (unsigned s = 0; s < SIM_MACHINE_MAX_SERVERS; s++) {
		const struct sim_machine_server *sv = &rec->servers[s];
		if (sv->pid == 0 || (int)s == m->slot || !machine_pid_is_alive(sv->pid))
			continue;
		hw->peer_ram_bytes += sv->ram_used_bytes;
		uint32_t np =
		    sv->nprocs < SIM_MACHINE_MAX_PROCS ? sv->nprocs : SIM_MACHINE_MAX_PROCS;
		for (uint32_t p = 0; p < np; p++)
			for (unsigned i = 0; i < hw->ngpus; i++)
				if (hw->gpus[i].machine_index == sv->procs[p].gpu)
					hw->gpus[i].peer_bytes += sv->procs[p].bytes;
	}
}

void
sim_machine_refresh(struct sim_machine *m, struct sim_hw *hw)
{
	if (m->slot < 0)
		return;
	machine_lock(m, LOCK_SH);
	machine_fill_peers(m, hw);
	machine_unlock(m);
}

static void
machine_slot_add(struct sim_machine_server *sv, uint32_t gpu, uint32_t pid, bool runner,
		 uint64_t bytes, const char *name)
{
	if (sv->nprocs >= SIM_MACHINE_MAX_PROCS)
		return;
	struct sim_machine_proc *p = &sv->procs[sv->nprocs++];
	memset(p, 0, sizeof(*p));
	p->gpu = gpu;
	p->pid = pid;
	p->is_model_runner = runner;
	p->bytes = bytes;
	vd_strlcpy(p->name, name, sizeof(p->name));
}

/* Rebuilds the NVML view's process lists and memory sums from every slot. */
static void
machine_merge(struct sim_machine *m, struct sim_hw *hw)
{
	struct sim_machine_record *rec = &m->map->machine;
	struct sim_shm *shm = &m->map->shm;
	sim_shm_write_begin(shm);
	shm->writer_pid = m->pid;
	for (unsigned i = 0; i < hw->ngpus; i++) {
		unsigned g = hw->gpus[i].machine_index;
		if (g < rec->ngpus)
			sim_hw_write_gpu_record(&hw->gpus[i], &shm->gpus[g]);
	}
	for (unsigned g = 0; g < rec->ngpus; g++) {
		struct sim_shm_gpu *s = &shm->gpus[g];
		s->used_by_models_bytes = 0;
		s->used_by_others_bytes = 0;
		s->nprocs = 0;
		for (unsigned k = 0; k < SIM_MACHINE_MAX_SERVERS; k++) {
			const struct sim_machine_server *sv = &rec->servers[k];
			if (sv->pid == 0)
				continue;
			uint32_t np =
			    sv->nprocs < SIM_MACHINE_MAX_PROCS ? sv->nprocs : SIM_MACHINE_MAX_PROCS;
			for (uint32_t p = 0; p < np; p++) {
				const struct sim_machine_proc *mp = &sv->procs[p];
				if (mp->gpu != g)
					continue;
				if (mp->is_model_runner)
					s->used_by_models_bytes += mp->bytes;
				else
					s->used_by_others_bytes += mp->bytes;
				if (s->nprocs >= SIM_SHM_MAX_PROCS)
					continue;
				struct sim_shm_proc *sp = &s->procs[s->nprocs++];
				memset(sp, 0, sizeof(*sp));
				sp->pid = mp->pid;
				sp->is_model_runner = mp->is_model_runner;
				sp->used_bytes = mp->bytes;
				memcpy(sp->name, mp->name, sizeof(sp->name));
				sp->name[sizeof(sp->name) - 1] = '\0';
			}
		}
	}
	sim_shm_write_end(shm);
}

void
sim_machine_publish(struct sim_machine *m, struct sim_hw *hw, const struct sim_hw_proc *procs,
		    size_t nprocs)
{
	if (m->slot < 0)
		return;
	machine_lock(m, LOCK_EX);
	machine_reap(m);
	struct sim_machine_server *sv = &m->map->machine.servers[m->slot];
	sv->pid = m->pid;
	sv->nprocs = 0;
	sv->ram_used_bytes = hw->ram_used_bytes;
	for (size_t p = 0; p < nprocs; p++)
		if (procs[p].gpu < hw->ngpus)
			machine_slot_add(sv, hw->gpus[procs[p].gpu].machine_index, procs[p].pid,
					 true, procs[p].bytes, "llama-server");
	for (unsigned i = 0; i < hw->ngpus; i++) {
		const struct sim_gpu *g = &hw->gpus[i];
		if (g->other_bytes > 0)
			machine_slot_add(sv, g->machine_index, g->other_pid, false, g->other_bytes,
					 g->other_name);
	}
	machine_merge(m, hw);
	machine_fill_peers(m, hw);
	machine_unlock(m);
}

uint32_t
sim_machine_next_pid(struct sim_machine *m)
{
	machine_lock(m, LOCK_EX);
	uint32_t pid = m->map->machine.next_runner_pid++;
	machine_unlock(m);
	return pid;
}

const char *
sim_machine_path(const struct sim_machine *m)
{
	return m->path;
}

void
sim_machine_close(struct sim_machine *m)
{
	if (m == NULL)
		return;
	if (m->map != NULL && m->slot >= 0) {
		machine_lock(m, LOCK_EX);
		memset(&m->map->machine.servers[m->slot], 0, sizeof(m->map->machine.servers[0]));
		/* Rebuild the process lists without ours; no GPU record is rewritten. */
		struct sim_hw none;
		memset(&none, 0, sizeof(none));
		machine_merge(m, &none);
		machine_unlock(m);
	}
	if (m->map != NULL)
		munmap(m->map, sizeof(*m->map));
	if (m->fd >= 0)
		close(m->fd);
	free(m->path);
	free(m);
}

static bool
machine_token_is_index(const char *tok)
{
	if (*tok == '\0')
		return false;
	for (const char *c = tok; *c; c++)
		if (*c < '0' || *c > '9')
			return false;
	return true;
}

void
sim_visible_devices_parse(const char *text, const char *const *uuids, unsigned ngpus, unsigned *sel,
			  unsigned *n)
{
	*n = 0;
	char *copy = xstrdup(text);
	char *save = NULL;
	for (char *tok = strtok_r(copy, ",", &save); tok != NULL && *n < ngpus;
	     tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ')
			tok++;
		size_t len = strlen(tok);
		while (len > 0 && tok[len - 1] == ' ')
			tok[--len] = '\0';
		int found = -1;
		if (machine_token_is_index(tok)) {
			if (len <= 4 && (unsigned)strtoul(tok, NULL, 10) < ngpus)
				found = (int)strtoul(tok, NULL, 10);
		} else if (strncasecmp(tok, "GPU-", 4) == 0 && len > 4) {
			for (unsigned i = 0; i < ngpus; i++) {
				if (strncasecmp(uuids[i], tok, len) != 0)
					continue;
				if (found >= 0) { /* ambiguous prefix */
					found = -1;
					break;
				}
				found = (int)i;
			}
		}
		for (unsigned i = 0; found >= 0 && i < *n; i++)
			if (sel[i] == (unsigned)found)
				found = -1;
		if (found < 0)
			break;
		sel[(*n)++] = (unsigned)found;
	}
	free(copy);
}
