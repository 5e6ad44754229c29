/*
 * nvidia-smi-sim.c: a simulated nvidia-smi (installed as build/sim-bin/nvidia-smi). It
 * answers the two query modes a monitor uses, through the simulated NVML it links, with
 * nvidia-smi's output format and exit codes:
 *
 *   nvidia-smi --query-gpu=FIELDS --format=csv[,noheader][,nounits]
 *   nvidia-smi --query-compute-apps=FIELDS --format=csv[,noheader][,nounits]
 *
 * Fields are separated by ", "; an unsupported value prints "[N/A]" (and a process list
 * the card cannot give prints "[Not Supported]"); memory is in MiB, power in W with two
 * decimals. Exit codes mirror NVML's: 9 when the driver is not loaded (no
 * OLLAMA_SIM_STATE), 15 when a GPU is lost, 2 for a bad argument. Memory follows
 * nvidia-smi >= R510: used excludes the reserved memory.
 */
#include "nvml-sim.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SMI_MAX_FIELDS 64
#define SMI_MIB	       (1024.0 * 1024.0)

enum smi_mode { SMI_GPUS, SMI_APPS };

struct smi_format {
	bool header;
	bool units;
};

/* A field value as text, or a bracketed "unknown". */
struct smi_value {
	char text[160];
};

static void
smi_set(struct smi_value *v, const char *text)
{
	snprintf(v->text, sizeof(v->text), "%s", text);
}

static void
smi_set_rc(struct smi_value *v, nvmlReturn_t rc)
{
	smi_set(v, rc == NVML_ERROR_NOT_SUPPORTED ? "[N/A]" : "[Unknown Error]");
}

static void
smi_set_uint(struct smi_value *v, nvmlReturn_t rc, unsigned long long value, const char *unit,
	     const struct smi_format *fmt)
{
	if (rc != NVML_SUCCESS) {
		smi_set_rc(v, rc);
		return;
	}
	snprintf(v->text, sizeof(v->text), "%llu%s", value, fmt->units ? unit : "");
}

static void
smi_set_mib(struct smi_value *v, nvmlReturn_t rc, unsigned long long bytes,
	    const struct smi_format *fmt)
{
	smi_set_uint(v, rc, (unsigned long long)(bytes / (1024ull * 1024ull)), " MiB", fmt);
}

static void
smi_set_watts(struct smi_value *v, nvmlReturn_t rc, unsigned int mw, const struct smi_format *fmt)
{
	if (rc != NVML_SUCCESS) {
		smi_set_rc(v, rc);
		return;
	}
	snprintf(v->text, sizeof(v->text), "%.2f%s", mw / 1000.0, fmt->units ? " W" : "");
}

/* The unit suffix nvidia-smi puts in the header for a field. */
static const char *
smi_header_unit(const char *field)
{
	if (strncmp(field, "memory.", 7) == 0 || strcmp(field, "used_memory") == 0 ||
	    strcmp(field, "used_gpu_memory") == 0)
		return " [MiB]";
	if (strncmp(field, "utilization.", 12) == 0 || strcmp(field, "fan.speed") == 0)
		return " [%]";
	if (strncmp(field, "power.", 6) == 0 || strcmp(field, "enforced.power.limit") == 0)
		return " [W]";
	if (strncmp(field, "clocks.", 7) == 0)
		return " [MHz]";
	return "";
}

/* Fills v with field of device; returns false for a field nvidia-smi does not know. */
static bool
smi_gpu_field(nvmlDevice_t dev, unsigned int index, const char *field, struct smi_value *v,
	      const struct smi_format *fmt)
{
	char buf[128];
	unsigned int u = 0;
	nvmlReturn_t rc;

	if (strcmp(field, "index") == 0) {
		snprintf(v->text, sizeof(v->text), "%u", index);
	} else if (strcmp(field, "count") == 0) {
		unsigned int n = 0;
		nvmlDeviceGetCount_v2(&n);
		snprintf(v->text, sizeof(v->text), "%u", n);
	} else if (strcmp(field, "name") == 0 || strcmp(field, "gpu_name") == 0) {
		rc = nvmlDeviceGetName(dev, buf, sizeof(buf));
		rc == NVML_SUCCESS ? smi_set(v, buf) : smi_set_rc(v, rc);
	} else if (strcmp(field, "uuid") == 0 || strcmp(field, "gpu_uuid") == 0) {
		rc = nvmlDeviceGetUUID(dev, buf, sizeof(buf));
		rc == NVML_SUCCESS ? smi_set(v, buf) : smi_set_rc(v, rc);
	} else if (strcmp(field, "pci.bus_id") == 0 || strcmp(field, "gpu_bus_id") == 0) {
		nvmlPciInfo_t pci;
		rc = nvmlDeviceGetPciInfo_v3(dev, &pci);
		rc == NVML_SUCCESS ? smi_set(v, pci.busId) : smi_set_rc(v, rc);
	} else if (strcmp(field, "driver_version") == 0) {
		rc = nvmlSystemGetDriverVersion(buf, sizeof(buf));
		rc == NVML_SUCCESS ? smi_set(v, buf) : smi_set_rc(v, rc);
	} else if (strncmp(field, "memory.", 7) == 0) {
		nvmlMemory_v2_t m = {.version = NVML_MEMORY_V2_VERSION};
		rc = nvmlDeviceGetMemoryInfo_v2(dev, &m);
		if (rc == NVML_ERROR_NOT_SUPPORTED && strcmp(field, "memory.reserved") != 0) {
			/* Older behaviour: v1 numbers (used includes reserved). */
			nvmlMemory_t m1;
			rc = nvmlDeviceGetMemoryInfo(dev, &m1);
			m.total = m1.total, m.free = m1.free, m.used = m1.used;
		}
		if (strcmp(field, "memory.total") == 0)
			smi_set_mib(v, rc, m.total, fmt);
		else if (strcmp(field, "memory.used") == 0)
			smi_set_mib(v, rc, m.used, fmt);
		else if (strcmp(field, "memory.free") == 0)
			smi_set_mib(v, rc, m.free, fmt);
		else if (strcmp(field, "memory.reserved") == 0)
			smi_set_mib(v, rc, m.reserved, fmt);
		else
			return false;
	} else if (strcmp(field, "utilization.gpu") == 0 ||
		   strcmp(field, "utilization.memory") == 0) {
		nvmlUtilization_t ut;
		rc = nvmlDeviceGetUtilizationRates(dev, &ut);
		smi_set_uint(v, rc, field[12] == 'g' ? ut.gpu : ut.memory, " %", fmt);
	} else if (strcmp(field, "temperature.gpu") == 0) {
		rc = nvmlDeviceGetTemperature(dev, 0, &u);
		smi_set_uint(v, rc, u, "", fmt);
	} else if (strcmp(field, "temperature.gpu.tlimit") == 0) {
		nvmlMarginTemperature_v1_t mt = {.version = NVML_MARGIN_V1_VERSION};
		rc = nvmlDeviceGetMarginTemperature(dev, &mt);
		if (rc == NVML_SUCCESS)
			snprintf(v->text, sizeof(v->text), "%d", mt.marginTemperature);
		else
			smi_set_rc(v, rc);
	} else if (strcmp(field, "power.draw") == 0 || strcmp(field, "power.draw.average") == 0 ||
		   strcmp(field, "power.draw.instant") == 0) {
		rc = nvmlDeviceGetPowerUsage(dev, &u);
		smi_set_watts(v, rc, u, fmt);
	} else if (strcmp(field, "power.limit") == 0 ||
		   strcmp(field, "enforced.power.limit") == 0) {
		rc = nvmlDeviceGetEnforcedPowerLimit(dev, &u);
		smi_set_watts(v, rc, u, fmt);
	} else if (strcmp(field, "fan.speed") == 0) {
		rc = nvmlDeviceGetFanSpeed(dev, &u);
		smi_set_uint(v, rc, u, " %", fmt);
	} else if (strcmp(field, "clocks.sm") == 0 || strcmp(field, "clocks.current.sm") == 0 ||
		   strcmp(field, "clocks.gr") == 0) {
		rc = nvmlDeviceGetClockInfo(dev, 1, &u);
		smi_set_uint(v, rc, u, " MHz", fmt);
	} else if (strcmp(field, "clocks.max.sm") == 0) {
		rc = nvmlDeviceGetMaxClockInfo(dev, 1, &u);
		smi_set_uint(v, rc, u, " MHz", fmt);
	} else if (strcmp(field, "clocks_event_reasons.active") == 0 ||
		   strcmp(field, "clocks_throttle_reasons.active") == 0) {
		unsigned long long reasons = 0;
		rc = nvmlDeviceGetCurrentClocksEventReasons(dev, &reasons);
		if (rc == NVML_SUCCESS)
			snprintf(v->text, sizeof(v->text), "0x%016llX", reasons);
		else
			smi_set_rc(v, rc);
	} else if (strcmp(field, "pstate") == 0) {
		int p = 0;
		rc = nvmlDeviceGetPerformanceState(dev, &p);
		if (rc == NVML_SUCCESS)
			snprintf(v->text, sizeof(v->text), "P%d", p);
		else
			smi_set_rc(v, rc);
	} else {
		return false;
	}
	return true;
}

static bool
smi_gpu_field_known(const char *field)
{
	static const char *const known[] = {"index",
					    "count",
					    "name",
					    "gpu_name",
					    "uuid",
					    "gpu_uuid",
					    "pci.bus_id",
					    "gpu_bus_id",
					    "driver_version",
					    "memory.total",
					    "memory.used",
					    "memory.free",
					    "memory.reserved",
					    "utilization.gpu",
					    "utilization.memory",
					    "temperature.gpu",
					    "temperature.gpu.tlimit",
					    "power.draw",
					    "power.draw.average",
					    "power.draw.instant",
					    "power.limit",
					    "enforced.power.limit",
					    "fan.speed",
					    "clocks.sm",
					    "clocks.current.sm",
					    "clocks.gr",
					    "clocks.max.sm",
					    "clocks_event_reasons.active",
					    "clocks_throttle_reasons.active",
					    "pstate"};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(field, known[i]) == 0)
			return true;
	return false;
}

static bool
smi_app_field_known(const char *field)
{
	static const char *const known[] = {"gpu_uuid",	    "gpu_bus_id",  "gpu_name",
					    "pid",	    "used_memory", "used_gpu_memory",
					    "process_name", "name"};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(field, known[i]) == 0)
			return true;
	return false;
}

static void
smi_print_line(struct smi_value *values, int n)
{
	for (int i = 0; i < n; i++)
		printf("%s%s", i ? ", " : "", values[i].text);
	printf("\n");
}

static void
smi_print_header(char **fields, int n, const struct smi_format *fmt)
{
	for (int i = 0; i < n; i++)
		printf("%s%s%s", i ? ", " : "", fields[i],
		       fmt->units ? smi_header_unit(fields[i]) : "");
	printf("\n");
}

static int
smi_usage(const char *msg)
{
	fprintf(stderr,
		"%s\nUsage: nvidia-smi --query-gpu=FIELDS|--query-compute-apps=FIELDS "
		"--format=csv[,noheader][,nounits]\n",
		msg);
	return 2;
}

/* Reports a per-device failure nvidia-smi's way and returns its exit code. */
static int
smi_device_error(unsigned int index, nvmlReturn_t rc)
{
	if (rc == NVML_ERROR_GPU_IS_LOST) {
		printf("Unable to determine the device handle for GPU%u: GPU is lost.  Reboot the "
		       "system to recover this GPU\n",
		       index);
		return 15;
	}
	printf("Unable to determine the device handle for GPU%u: %s\n", index, nvmlErrorString(rc));
	return rc > 0 && rc < 255 ? rc : 255;
}

int
main(int argc, char **argv)
{
	enum smi_mode mode = SMI_GPUS;
	char *query = NULL;
	struct smi_format fmt = {.header = true, .units = true};
	bool have_format = false;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--query-gpu=", 12) == 0) {
			mode = SMI_GPUS, query = argv[i] + 12;
		} else if (strncmp(a, "--query-compute-apps=", 21) == 0) {
			mode = SMI_APPS, query = argv[i] + 21;
		} else if (strncmp(a, "--format=", 9) == 0) {
			have_format = true;
			if (strncmp(a + 9, "csv", 3) != 0)
				return smi_usage("Only csv format is supported.");
			fmt.header = strstr(a + 9, "noheader") == NULL;
			fmt.units = strstr(a + 9, "nounits") == NULL;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			smi_usage("nvidia-smi (simulated, reads OLLAMA_SIM_STATE)");
			return 0;
		} else {
			return smi_usage("Invalid combination of input arguments.");
		}
	}
	if (query == NULL || !have_format)
		return smi_usage("A query and --format=csv are required.");

	char *fields[SMI_MAX_FIELDS];
	int nfields = 0;
	char *save = NULL;
	for (char *f = strtok_r(query, ",", &save); f != NULL; f = strtok_r(NULL, ",", &save)) {
		while (*f == ' ')
			f++;
		if (nfields == SMI_MAX_FIELDS)
			return smi_usage("Too many fields.");
		fields[nfields++] = f;
	}
	if (nfields == 0)
		return smi_usage("No fields to query.");
	for (int i = 0; i < nfields; i++) {
		bool ok = mode == SMI_APPS ? smi_app_field_known(fields[i])
					   : smi_gpu_field_known(fields[i]);
		if (!ok) {
			printf("Field \"%s\" is not a valid field to query.\n\n", fields[i]);
			return 2;
		}
	}

	nvmlReturn_t rc = nvmlInit_v2();
	if (rc != NVML_SUCCESS) {
		printf("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA "
		       "driver. Make sure that the latest NVIDIA driver is installed and "
		       "running.\n\n");
		return rc == NVML_ERROR_DRIVER_NOT_LOADED ? 9 : 255;
	}
	unsigned int count = 0;
	nvmlDeviceGetCount_v2(&count);
	int exit_code = 0;
	struct smi_value values[SMI_MAX_FIELDS];
	if (fmt.header)
		smi_print_header(fields, nfields, &fmt);

	for (unsigned int g = 0; g < count; g++) {
		nvmlDevice_t dev;
		rc = nvmlDeviceGetHandleByIndex_v2(g, &dev);
		if (rc != NVML_SUCCESS) {
			/* Report it and go on with the other GPUs; the exit code says it. */
			exit_code = smi_device_error(g, rc);
			continue;
		}
		if (mode == SMI_GPUS) {
			bool lost = false;
			for (int i = 0; i < nfields; i++) {
				if (!smi_gpu_field(dev, g, fields[i], &values[i], &fmt)) {
					printf("Field \"%s\" is not a valid field to query.\n\n",
					       fields[i]);
					exit_code = 2;
					goto out;
				}
			}
			/* A GPU lost between the handle and the queries. */
			unsigned int idx;
			if (nvmlDeviceGetIndex(dev, &idx) == NVML_ERROR_GPU_IS_LOST)
				lost = true;
			if (lost) {
				exit_code = smi_device_error(g, NVML_ERROR_GPU_IS_LOST);
				continue;
			}
			smi_print_line(values, nfields);
			continue;
		}

		/* --query-compute-apps: one line per process. */
		char uuid[96] = "", name[96] = "", bus[32] = "";
		nvmlDeviceGetUUID(dev, uuid, sizeof(uuid));
		nvmlDeviceGetName(dev, name, sizeof(name));
		nvmlPciInfo_t pci;
		if (nvmlDeviceGetPciInfo_v3(dev, &pci) == NVML_SUCCESS)
			snprintf(bus, sizeof(bus), "%s", pci.busId);
		nvmlProcessInfo_v2_t procs[64];
		unsigned int n = 64;
		rc = nvmlDeviceGetComputeRunningProcesses_v3(dev, &n, procs);
		if (rc == NVML_ERROR_GPU_IS_LOST) {
			exit_code = smi_device_error(g, rc);
			continue;
		}
		if (rc == NVML_ERROR_NOT_SUPPORTED) {
			for (int i = 0; i < nfields; i++) {
				if (strcmp(fields[i], "gpu_uuid") == 0)
					smi_set(&values[i], uuid);
				else if (strcmp(fields[i], "gpu_bus_id") == 0)
					smi_set(&values[i], bus);
				else if (strcmp(fields[i], "gpu_name") == 0)
					smi_set(&values[i], name);
				else
					smi_set(&values[i], "[Not Supported]");
			}
			smi_print_line(values, nfields);
			continue;
		}
		if (rc != NVML_SUCCESS)
			continue;
		for (unsigned int p = 0; p < n; p++) {
			for (int i = 0; i < nfields; i++) {
				const char *f = fields[i];
				if (strcmp(f, "gpu_uuid") == 0) {
					smi_set(&values[i], uuid);
				} else if (strcmp(f, "gpu_bus_id") == 0) {
					smi_set(&values[i], bus);
				} else if (strcmp(f, "gpu_name") == 0) {
					smi_set(&values[i], name);
				} else if (strcmp(f, "pid") == 0) {
					snprintf(values[i].text, sizeof(values[i].text), "%u",
						 procs[p].pid);
				} else if (strcmp(f, "used_memory") == 0 ||
					   strcmp(f, "used_gpu_memory") == 0) {
					if (procs[p].usedGpuMemory == NVML_VALUE_NOT_AVAILABLE_ULL)
						smi_set(&values[i], "[N/A]");
					else
						smi_set_mib(&values[i], NVML_SUCCESS,
							    procs[p].usedGpuMemory, &fmt);
				} else {
					char pname[96];
					if (nvmlSystemGetProcessName(procs[p].pid, pname,
								     sizeof(pname)) == NVML_SUCCESS)
						smi_set(&values[i], pname);
					else
						smi_set(&values[i], "[N/A]");
				}
			}
			smi_print_line(values, nfields);
		}
	}
out:
	nvmlShutdown();
	fflush(stdout);
	return exit_code;
}
