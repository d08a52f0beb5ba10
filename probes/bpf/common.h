/* Self-contained declarations for the tracer's BPF programs: the few
 * helpers, map macros and kernel structs they use. Kernel structs are
 * declared locally with preserve_access_index, so only the fields read
 * here need to exist and the loader relocates their offsets (CO-RE)
 * against the running kernel's BTF, and the ip_vs module's BTF for the
 * IPVS structs. No vmlinux.h and no libbpf headers: go generate needs
 * only clang. */
#ifndef LVSKIT_COMMON_H
#define LVSKIT_COMMON_H

typedef unsigned char __u8;
typedef signed char __s8;
typedef unsigned short __u16;
typedef short __s16;
typedef unsigned int __u32;
typedef int __s32;
typedef unsigned long long __u64;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;

#define SEC(name) __attribute__((section(name), used))
#define __always_inline inline __attribute__((always_inline))
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name
#define NULL ((void *)0)

enum {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_RINGBUF = 27,
};

enum { BPF_ANY = 0 };

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)5;
static __u32 (*bpf_get_smp_processor_id)(void) = (void *)8;
static long (*bpf_probe_read_kernel)(void *dst, __u32 size, const void *unsafe_ptr) = (void *)113;
static long (*bpf_probe_read_kernel_str)(void *dst, __u32 size, const void *unsafe_ptr) = (void *)115;
static void *(*bpf_ringbuf_reserve)(void *ringbuf, __u64 size, __u64 flags) = (void *)131;
static void (*bpf_ringbuf_submit)(void *data, __u64 flags) = (void *)132;
static __u64 (*bpf_ringbuf_query)(void *ringbuf, __u64 flags) = (void *)134;
static __u64 (*bpf_get_attach_cookie)(void *ctx) = (void *)174;

enum {
	BPF_RB_NO_WAKEUP = 1,
	BPF_RB_FORCE_WAKEUP = 2,
	BPF_RB_AVAIL_DATA = 0,
};

/* READ copies one field reached through a CO-RE-relocated expression:
 * READ(v, skb->dev). */
#define READ(dst, src) bpf_probe_read_kernel(&(dst), sizeof(dst), __builtin_preserve_access_index(&(src)))

/* LOAD reads one scalar or pointer field: a plain (CO-RE-relocated)
 * load when direct, which the verifier allows where the pointer is
 * typed from BTF (an fentry/fexit or tp_btf argument, or a pointer
 * loaded from one), else READ. direct must be a constant at every call
 * site, so that the branch not taken is compiled away: the verifier
 * refuses a plain load through a kprobe's or raw_tp's untyped pointer
 * even on a path that never runs. */
#define LOAD(direct, dst, src)                                                 \
	do {                                                                   \
		if (direct)                                                    \
			(dst) = (src);                                         \
		else                                                           \
			READ(dst, src);                                        \
	} while (0)

/* Kernel structs: only the fields read. */
struct pt_regs {
	unsigned long di, si, dx, cx, r8, r9, ax;
} __attribute__((preserve_access_index));

struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} possible_net_t;

struct net_device {
	char name[16];
	int ifindex;
	possible_net_t nd_net;
} __attribute__((preserve_access_index));

struct sock_common {
	possible_net_t skc_net;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

struct dst_entry {
	struct net_device *dev;
} __attribute__((preserve_access_index));

struct sk_buff {
	struct net_device *dev;
	struct sock *sk;
	unsigned long _skb_refdst;
	unsigned int len;
	__u16 network_header;
	unsigned char *head;
	unsigned char *data;
} __attribute__((preserve_access_index));

struct nf_hook_state {
	__u8 hook;
	__u8 pf;
} __attribute__((preserve_access_index));

/* IPVS (net/netfilter/ipvs, include/net/ip_vs.h): relocated against the
 * ip_vs module's BTF. ip_vs_dest's layout differs between 6.1 and 6.12. */
union nf_inet_addr {
	__u32 all[4];
};

typedef struct {
	int counter;
} atomic_t;

struct ip_vs_scheduler {
	char *name;
} __attribute__((preserve_access_index));

struct ip_vs_service {
	__u16 af;
	__u16 protocol;
	union nf_inet_addr addr;
	__be16 port;
	__u32 fwmark;
	struct ip_vs_scheduler *scheduler;
} __attribute__((preserve_access_index));

struct ip_vs_dest {
	__u16 af;
	__be16 port;
	union nf_inet_addr addr;
	atomic_t conn_flags;
	atomic_t weight;
	struct ip_vs_service *svc;
} __attribute__((preserve_access_index));

struct ip_vs_conn {
	__be16 cport;
	__be16 dport;
	__be16 vport;
	__u16 af;
	union nf_inet_addr caddr;
	union nf_inet_addr vaddr;
	union nf_inet_addr daddr;
	__u32 flags;
	__u16 protocol;
	__u16 daf;
	__u16 state;
	struct ip_vs_dest *dest;
} __attribute__((preserve_access_index));

#endif
