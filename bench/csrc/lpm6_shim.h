/* SPDX-License-Identifier: Apache-2.0
 *
 * A small C interface over DPDK 22.11's rte_lpm6 for the flatedge FIB
 * benchmark (bench/src/dpdk.rs). No DPDK type crosses this interface:
 * an lpm is an opaque pointer, addresses are 16 network-order bytes,
 * errors are negative errno values.
 */
#ifndef FLATEDGE_LPM6_SHIM_H
#define FLATEDGE_LPM6_SHIM_H

#include <stddef.h>
#include <stdint.h>

/* Initialises the DPDK EAL (no hugepages, no PCI, no shared config, no
 * telemetry, one lcore, `mem_mb` MiB of anonymous memory, logs at error
 * level only). Call once per process; a second call returns -EALREADY.
 * The calling thread's CPU affinity is restored afterwards (EAL pins its
 * main lcore). Returns 0 or a negative errno. */
int fe_eal_init(uint32_t mem_mb);

/* Text for a (positive) errno or rte_errno value. */
const char *fe_strerror(int err);

/* Creates an lpm6 named `name` (unique per process, < 32 bytes). On
 * failure returns NULL and stores a positive error code in *err. */
void *fe_lpm6_create(const char *name, uint32_t max_rules,
		     uint32_t number_tbl8s, int *err);

void fe_lpm6_free(void *lpm);

/* 0 on success (also when an existing rule's next hop is replaced),
 * a negative errno on failure (-ENOSPC: no rule slot or tbl8 group left,
 * -EINVAL: bad depth). depth must be 1..=128. */
int fe_lpm6_add(void *lpm, const uint8_t ip[16], uint8_t depth,
		uint32_t next_hop);

/* 0 on success, a negative errno (-ENOENT: no such rule). */
int fe_lpm6_delete(void *lpm, const uint8_t ip[16], uint8_t depth);

/* Returns 0 and sets *next_hop on a hit, -ENOENT on a miss. */
int fe_lpm6_lookup(const void *lpm, const uint8_t ip[16], uint32_t *next_hop);

/* Looks up n addresses in bursts of 64 with rte_lpm6_lookup_bulk_func and
 * writes each next hop to out[i], or `miss` where no rule matched. */
void fe_lpm6_lookup_bulk(const void *lpm, const uint8_t (*ips)[16],
			 uint32_t *out, size_t n, uint32_t miss);

/* Bytes currently allocated from all DPDK malloc heaps (sum over sockets
 * of rte_malloc_socket_stats.heap_allocsz_bytes). */
uint64_t fe_heap_allocated_bytes(void);

#endif
