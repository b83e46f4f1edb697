/* SPDX-License-Identifier: Apache-2.0
 *
 * Thin wrapper over DPDK 22.11's rte_lpm6 for the flatedge benchmark; see
 * lpm6_shim.h. Built by bench/build.rs with the flags of
 * `pkg-config --cflags libdpdk` when the `dpdk` cargo feature is on.
 */
#define _GNU_SOURCE
#include "lpm6_shim.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_lpm6.h>
#include <rte_malloc.h>

#define FE_BURST 64

static int eal_done;

int fe_eal_init(uint32_t mem_mb)
{
	/* rte_eal_init may permute argv and keeps pointers into it: static. */
	static char cpu_arg[16], mem_arg[16];
	static char *argv[] = {
		"flatedge-bench",
		"--no-huge",     /* anonymous 4 KiB pages, sized by -m */
		"--no-pci",
		"--no-shconf",   /* no /var/run config file, no IPC socket */
		"--no-telemetry",
		"--log-level=4", /* RTE_LOG_ERR: errors only */
		"-l", cpu_arg,
		"-m", mem_arg,
		NULL,
	};
	int argc = (int)(sizeof(argv) / sizeof(argv[0])) - 1;
	cpu_set_t saved;
	int have_saved, cpu = 0, ret;

	if (eal_done)
		return -EALREADY;
	eal_done = 1;

	/* EAL pins the calling thread to the main lcore: remember the
	 * affinity to restore it, and use a CPU this process may run on. */
	CPU_ZERO(&saved);
	have_saved = pthread_getaffinity_np(pthread_self(), sizeof(saved),
					    &saved) == 0;
	if (have_saved) {
		for (cpu = 0; cpu < CPU_SETSIZE; cpu++)
			if (CPU_ISSET(cpu, &saved))
				break;
		if (cpu == CPU_SETSIZE)
			cpu = 0;
	}
	snprintf(cpu_arg, sizeof(cpu_arg), "%d", cpu);
	snprintf(mem_arg, sizeof(mem_arg), "%u", mem_mb);

	ret = rte_eal_init(argc, argv);
	if (have_saved)
		pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved);
	if (ret < 0)
		return rte_errno > 0 ? -rte_errno : -EINVAL;
	return 0;
}

const char *fe_strerror(int err)
{
	return rte_strerror(err);
}

void *fe_lpm6_create(const char *name, uint32_t max_rules,
		     uint32_t number_tbl8s, int *err)
{
	struct rte_lpm6_config config = {
		.max_rules = max_rules,
		.number_tbl8s = number_tbl8s,
		.flags = 0,
	};
	struct rte_lpm6 *lpm;

	lpm = rte_lpm6_create(name, SOCKET_ID_ANY, &config);
	if (lpm == NULL && err != NULL)
		*err = rte_errno > 0 ? rte_errno : ENOMEM;
	return lpm;
}

void fe_lpm6_free(void *lpm)
{
	rte_lpm6_free(lpm);
}

int fe_lpm6_add(void *lpm, const uint8_t ip[16], uint8_t depth,
		uint32_t next_hop)
{
	int ret = rte_lpm6_add(lpm, ip, depth, next_hop);

	/* 22.11 returns 1 for "rule updated/added at the last level". */
	return ret < 0 ? ret : 0;
}

int fe_lpm6_delete(void *lpm, const uint8_t ip[16], uint8_t depth)
{
	int ret = rte_lpm6_delete(lpm, ip, depth);

	return ret < 0 ? ret : 0;
}

int fe_lpm6_lookup(const void *lpm, const uint8_t ip[16], uint32_t *next_hop)
{
	int ret = rte_lpm6_lookup(lpm, ip, next_hop);

	return ret < 0 ? ret : 0;
}

void fe_lpm6_lookup_bulk(const void *lpm, const uint8_t (*ips)[16],
			 uint32_t *out, size_t n, uint32_t miss)
{
	size_t i, j, burst;

	for (i = 0; i < n; i += burst) {
		burst = n - i < FE_BURST ? n - i : FE_BURST;
		/* The 22.11 prototype takes non-const addresses but only reads
		 * them; next hops are int32_t with -1 for a miss, written
		 * straight into `out` and mapped afterwards. */
		rte_lpm6_lookup_bulk_func(lpm, (uint8_t (*)[16])ips + i,
					  (int32_t *)(out + i), (unsigned)burst);
		for (j = i; j < i + burst; j++)
			if ((int32_t)out[j] < 0)
				out[j] = miss;
	}
}

uint64_t fe_heap_allocated_bytes(void)
{
	struct rte_malloc_socket_stats stats;
	unsigned int i, sockets = rte_socket_count();
	uint64_t total = 0;

	for (i = 0; i < sockets; i++) {
		if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(i),
						&stats) == 0)
			total += stats.heap_allocsz_bytes;
	}
	return total;
}
