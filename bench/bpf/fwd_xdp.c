// Two tiny XDP programs for `bench forward` (built by bench/build.rs with
// clang -target bpf, loaded with `ip link set dev IF xdpdrv obj FILE sec S`):
//
// - section "xdp_drop": drops every frame (the router's ingress while the
//   generator's ceiling is measured);
// - section "xdp_sink": on the sink's veth, drops IPv6/UDP frames unless
//   their destination port is BENCH_LATENCY_PORT (the latency probes, which
//   go up to a socket); everything else (NDP, ...) goes to the kernel. The
//   veth counts every frame it received either way, which is what the
//   benchmark reads, and the sink stays cheap for every implementation.

#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))

#define BENCH_LATENCY_PORT 9999

SEC("xdp_drop")
int bench_xdp_drop(struct xdp_md *ctx)
{
	(void)ctx;
	return XDP_DROP;
}

SEC("xdp_sink")
int bench_xdp_sink(struct xdp_md *ctx)
{
	unsigned char *data = (unsigned char *)(long)ctx->data;
	unsigned char *end = (unsigned char *)(long)ctx->data_end;

	// Ethernet (14) + IPv6 (40) + UDP ports (4).
	if (data + 58 > end)
		return XDP_PASS;
	if (data[12] != 0x86 || data[13] != 0xdd)
		return XDP_PASS;
	if (data[14 + 6] != 17) // next header: UDP
		return XDP_PASS;
	unsigned int dport = ((unsigned int)data[56] << 8) | data[57];
	return dport == BENCH_LATENCY_PORT ? XDP_PASS : XDP_DROP;
}

char _license[] SEC("license") = "GPL";
