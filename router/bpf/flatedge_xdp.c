// The XDP program of every flatedge port (issue 4).
//
// It splits what a port receives between the Linux kernel and flatedge's
// AF_XDP sockets:
//
// - to the kernel (XDP_PASS): everything that is not IPv6, IPv6 multicast
//   (ff00::/8) and link-local (fe80::/10) destinations, ICMPv6 neighbour
//   discovery (types 133-137), and packets to one of the router's own
//   addresses (the `flatedge_own` hash map, kept in sync by userspace);
// - everything else (transit IPv6) is redirected into the AF_XDP socket of
//   its (port, queue): `flatedge_xsks` is keyed by
//   port_slot * FLATEDGE_MAX_QUEUES + rx_queue_index, the port slot coming
//   from `flatedge_ports` (ifindex -> slot). With no socket at that key the
//   redirect falls back to XDP_PASS, so a port whose sockets are not open yet
//   behaves like a plain Linux interface; such packets (and those of a queue
//   beyond FLATEDGE_MAX_QUEUES, or of an interface with no slot) are counted
//   in `flatedge_no_socket` (per CPU), which `show drops` reports: transit
//   the kernel gets instead of flatedge (a queue added after start).
//
// The constants and map names are mirrored in router/src/xdp/bpf.rs.
//
// Built by router/build.rs: clang -target bpf -O2 -g (the BTF from -g
// describes the maps to libbpf).

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define FLATEDGE_MAX_PORTS 64
#define FLATEDGE_MAX_QUEUES 64
#define FLATEDGE_MAX_OWN_ADDRS 1024

#define ETH_P_IPV6_ 0x86DD
#define IPPROTO_ICMPV6_ 58
#define ND_ROUTER_SOLICIT_ 133
#define ND_REDIRECT_ 137

struct eth_hdr {
	__u8 dst[6];
	__u8 src[6];
	__be16 proto;
};

struct ip6_hdr {
	__u8 vtc_flow[4];
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct ip6_addr {
	__u8 bytes[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, FLATEDGE_MAX_PORTS * FLATEDGE_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} flatedge_xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FLATEDGE_MAX_PORTS);
	__type(key, __u32);   /* ifindex */
	__type(value, __u32); /* port slot */
} flatedge_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FLATEDGE_MAX_OWN_ADDRS);
	__type(key, struct ip6_addr);
	__type(value, __u8);
} flatedge_own SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} flatedge_no_socket SEC(".maps");

static __always_inline int no_socket(void)
{
	__u32 key = 0;
	__u64 *n = bpf_map_lookup_elem(&flatedge_no_socket, &key);
	if (n)
		*n += 1;
	return XDP_PASS;
}

SEC("xdp")
int flatedge_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	struct eth_hdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->proto != bpf_htons(ETH_P_IPV6_))
		return XDP_PASS;

	struct ip6_hdr *ip6 = (void *)(eth + 1);
	if ((void *)(ip6 + 1) > data_end)
		return XDP_PASS;
	if (ip6->daddr[0] == 0xff)
		return XDP_PASS; /* multicast */
	if (ip6->daddr[0] == 0xfe && (ip6->daddr[1] & 0xc0) == 0x80)
		return XDP_PASS; /* link-local */

	if (ip6->nexthdr == IPPROTO_ICMPV6_) {
		__u8 *icmp_type = (__u8 *)(ip6 + 1);
		if ((void *)(icmp_type + 1) > data_end)
			return XDP_PASS; /* truncated: let the kernel count it */
		if (*icmp_type >= ND_ROUTER_SOLICIT_ && *icmp_type <= ND_REDIRECT_)
			return XDP_PASS; /* NDP */
	}

	struct ip6_addr dst;
	__builtin_memcpy(&dst, ip6->daddr, sizeof(dst));
	if (bpf_map_lookup_elem(&flatedge_own, &dst))
		return XDP_PASS; /* for the router itself */

	__u32 ifindex = ctx->ingress_ifindex;
	__u32 *slot = bpf_map_lookup_elem(&flatedge_ports, &ifindex);
	if (!slot || *slot >= FLATEDGE_MAX_PORTS)
		return no_socket();
	__u32 queue = ctx->rx_queue_index;
	if (queue >= FLATEDGE_MAX_QUEUES)
		return no_socket();

	/* The low bits of the flags are the action when the key has no socket. */
	long action = bpf_redirect_map(&flatedge_xsks, *slot * FLATEDGE_MAX_QUEUES + queue, XDP_PASS);
	if (action == XDP_PASS)
		return no_socket();
	return action;
}

/* No GPL-only helper is used, so the workspace's license applies. */
char LICENSE[] SEC("license") = "Apache-2.0";
