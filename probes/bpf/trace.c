//go:build ignore

/* The tracer's programs. Every hop goes through hop(): it decides whether
 * the packet is traced (the filter constants below, or "this skb matched
 * at an earlier hop"), then writes one struct event to the ring buffer.
 * Each kernel function has a kprobe and an fentry flavour (and a
 * kretprobe/fexit one where its return value matters); the loader picks
 * one per function by probing. */

#include "common.h"

char __license[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define PKT_MAX 128
#define MAX_DEPTH 8
#define NO_HOOK 0xff
#define NET_HEADER_UNSET 0xffff
/* How many bytes of events wake the reader: some 650 events, of a ring
 * of 16 MiB. */
#define WAKEUP_BYTES (256 << 10)

/* Which function or tracepoint an event comes from. The Go side names
 * them from this enum (bpf2go -type fn_id). */
enum fn_id {
	FN_NONE,
	FN_NETIF_RECEIVE_SKB,
	FN_NET_DEV_QUEUE,
	FN_KFREE_SKB,
	FN_IP_FORWARD,
	FN_IP_LOCAL_DELIVER,
	FN_IP_OUTPUT,
	FN_IP_LOCAL_OUT,
	FN_IP6_FORWARD,
	FN_IP6_INPUT,
	FN_IP6_OUTPUT,
	FN_IP6_LOCAL_OUT,
	FN_IP_VS_IN_HOOK,
	FN_IP_VS_OUT_HOOK,
	FN_IP_VS_FORWARD_ICMP,
	FN_IP_VS_CONN_IN_GET,
	FN_IP_VS_CONN_OUT_GET,
	FN_TCP_CONN_SCHEDULE,
	FN_UDP_CONN_SCHEDULE,
	FN_SCTP_CONN_SCHEDULE,
	FN_IP_VS_SCHEDULE,
	FN_IP_VS_CONN_NEW,
	FN_IP_VS_SCHEDULER_ERR,
	FN_IP_VS_LEAVE,
	FN_IP_VS_NAT_XMIT,
	FN_IP_VS_DR_XMIT,
	FN_IP_VS_TUNNEL_XMIT,
	FN_IP_VS_BYPASS_XMIT,
	FN_IP_VS_NULL_XMIT,
	FN_IP_VS_NAT_XMIT_V6,
	FN_IP_VS_DR_XMIT_V6,
	FN_IP_VS_TUNNEL_XMIT_V6,
	FN_IP_VS_BYPASS_XMIT_V6,
	FN_MAX,
};

/* event.flags */
enum event_flag {
	EV_EXIT = 1,     /* a return probe: ret is the return value */
	EV_CONN = 2,     /* conn is set */
	EV_DEST = 4,     /* dest is set */
	EV_SVC = 8,      /* svc is set */
	EV_PKT = 16,     /* pkt holds pkt_len bytes from the network header */
	EV_DROP = 32,    /* reason and location are set */
	EV_NOCONN = 64,  /* a lookup returned no connection */
	EV_HOOK = 128,   /* hook is set */
	/* The event carries the entry of the netfilter hook it ran inside
	 * (entry_fn at hook, entry_ago before ts), which sent no event of
	 * its own. When entry_fn is fn, the event is that hook's exit, and
	 * nothing inside it was traced: one event for the whole visit. */
	EV_ENTRY = 256,
};

struct conn_info {
	__u8 caddr[16];
	__u8 vaddr[16];
	__u8 daddr[16];
	__u16 cport, vport, dport;
	__u16 af, daf, protocol, state;
	__u16 _pad;
	__u32 flags;
};

struct dest_info {
	__u8 addr[16];
	__u16 port;
	__u16 af;
	__s32 weight;
	__u32 conn_flags;
};

struct svc_info {
	__u8 addr[16];
	__u16 port;
	__u16 af;
	__u16 protocol;
	__u16 _pad;
	__u32 fwmark;
	char sched[16];
};

struct event {
	__u64 ts;
	__u64 skb;
	__u64 prev_skb;
	__u64 location;
	__s64 ret;
	__u32 netns;
	__u32 ifindex;
	__u32 cpu;
	__u32 reason;
	__u16 fn;
	__u16 flags;
	__u8 hook;     /* EV_HOOK, or EV_ENTRY's hook */
	__u8 entry_fn; /* EV_ENTRY: enum fn_id of the hook */
	__u16 pkt_len;
	char ifname[16];
	char msg[32];
	struct conn_info conn;
	struct dest_info dest;
	struct svc_info svc;
	__u8 pkt[PKT_MAX];
	__u32 entry_ago; /* EV_ENTRY: ns from the hook's entry to ts */
};

/* Filter constants, set by the loader (CollectionSpec.Variables).
 * Addresses are 16 bytes, IPv4 in the first four (as nf_inet_addr). */
volatile const __u8 f_all = 1;      /* no filter: trace everything */
volatile const __u16 f_vip_af = 0;  /* 0: any VIP */
volatile const __u32 f_vip[4] = {};
volatile const __u16 f_port = 0;    /* host order; 0: any */
volatile const __u16 f_client_af = 0;
volatile const __u32 f_client_net[4] = {};
volatile const __u32 f_client_mask[4] = {};
volatile const __u16 f_rs_af = 0;
volatile const __u32 f_rs[4] = {};
volatile const __u8 f_proto = 0;    /* IPPROTO_*; 0: any */
volatile const __u32 f_netns = 0;   /* netns inode; 0: any */
volatile const __u32 f_ifindex = 0; /* 0: any */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

/* Events the ring buffer had no room for, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* skbs that matched the filter at an earlier hop, and how (enum
 * traced_how). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u8);
} traced SEC(".maps");

/* How a traced skb matched. By its headers alone: an entry that may be
 * stale (TCP frees what it consumed with __kfree_skb, which no
 * tracepoint sees, and the address comes back as another packet), so
 * every hop before IPVS has the packet judges it by its headers again.
 * Through IPVS (a connection, or the skb a tunnel transmitter replaced):
 * IPVS may rewrite the headers so that they no longer match (NAT's
 * destination, a tunnel's outer header), and the entry is followed. */
enum traced_how {
	TRACED_HEADERS = 1,
	TRACED_IPVS = 2,
};

/* How many skbs traced may hold: counted up before an insert and down
 * after a delete that removed one, so it is never lower than the map's
 * size (an LRU eviction leaves it higher). While it is 0, which is all
 * the time for a filter that matches nothing, no hop looks in traced:
 * a packet the filter leaves out costs the match alone. */
__u64 n_traced = 0;

static __always_inline int any_traced(void)
{
	return *(volatile __u64 *)&n_traced != 0;
}

static __always_inline void *traced_lookup(__u64 *key)
{
	if (!any_traced())
		return NULL;
	return bpf_map_lookup_elem(&traced, key);
}

/* traced_how_of: how the skb *key matched (enum traced_how), 0 if it
 * is not traced. A global function for the reason match_headers is one:
 * with the entry's pointer kept across the match, or 0 where there was
 * none, 6.1's verifier walked the rest of the hop once for each. DR auto
 * with a VIP and port filter, 6.1: 21,029 verified instructions with the
 * pointer kept, 19,247 so (fentry_ip_vs_in_hook 1,424 and 1,144); 6.12
 * 21,147, against 29,976 before match_headers. Not behind an inline look
 * at n_traced, which would spare a packet the filter leaves out the
 * call: the 0 of that way kept the states apart again (9% more on 6.1). */
__attribute__((noinline)) int traced_how_of(__u64 *key)
{
	if (f_all || !key)
		return 0;
	/* A copy on this function's stack: 6.1 takes no map key from an
	 * argument's memory. */
	__u64 k = *key;
	__u8 *v = traced_lookup(&k);
	return v ? *v : 0;
}

/* traced_set changes a traced skb's entry: looked up again, not kept
 * from traced_how_of. */
static __always_inline void traced_set(__u64 *key, __u8 how)
{
	__u8 *v = bpf_map_lookup_elem(&traced, key);
	if (v)
		*v = how;
}

static __always_inline void traced_insert(__u64 *key, __u8 how)
{
	__sync_fetch_and_add(&n_traced, 1);
	bpf_map_update_elem(&traced, key, &how, BPF_ANY);
}

static __always_inline void traced_delete(__u64 *key)
{
	if (bpf_map_delete_elem(&traced, key) == 0)
		__sync_fetch_and_add(&n_traced, -1);
}

/* The skbs this CPU is inside: IPVS's hooks and transmitters run with
 * bottom halves off on one CPU, so functions without an skb argument
 * (ip_vs_conn_new, ip_vs_scheduler_err) belong to the top one. */
struct frame {
	__u64 skb;
	__u16 fn;
	__u8 hook;
	__u8 replaced; /* a tunnel transmitter replaced skb */
	__u8 traced;   /* skb was traced when a transmitter replaced it */
	/* Nothing inside this frame can match the filter: the skb is in a
	 * netns it leaves out, or (ip_vs_in_hook) its headers do not match
	 * and nothing IPVS finds for them can (skip_rest_of_hook). */
	__u8 elsewhere;
	/* A hook whose packet is traced, whose entry no event has carried
	 * yet: the first traced event about skb inside it carries it, or
	 * its exit does (one event for a hook that did nothing else). */
	__u8 pending;
	__u8 _pad;
	__u32 netns; /* the skb's netns inode, when f_netns is set */
	__u64 entered; /* when pending: the hook's entry time */
	/* when pending: the skb a tunnel transmitter replaced with skb (the
	 * entry's prev_skb), which the event carrying the entry reports */
	__u64 prev_skb;
};

struct cpu_frames {
	struct frame f[MAX_DEPTH];
	__u32 depth;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_frames);
} frames SEC(".maps");

/* Referenced so that bpf2go generates Go types for them. */
const struct event *unused_event __attribute__((unused));
const enum fn_id *unused_fn_id __attribute__((unused));
const enum event_flag *unused_event_flag __attribute__((unused));

static __always_inline struct cpu_frames *cpu_frames(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&frames, &zero);
}

/* push adds a frame on fs (the CPU's frames) and returns it. Frames
 * whose exit the kernel skipped stay (own_frame); no visit nests
 * MAX_DEPTH deep, so a full stack holds such frames, and they all go: an
 * exit whose frame went with them reports nothing. */
static __always_inline struct frame *push(struct cpu_frames *fs, __u64 skb, __u16 fn, __u8 hook, __u8 elsewhere,
					  __u32 netns)
{
	if (!fs)
		return NULL;
	/* A full stack (depth MAX_DEPTH) starts again at 0; the mask also
	 * keeps 6.1's verifier sure of the bound. */
	__u32 d = fs->depth & (MAX_DEPTH - 1);
	struct frame *f = &fs->f[d];
	f->skb = skb;
	f->fn = fn;
	f->hook = hook;
	f->replaced = 0;
	f->traced = 0;
	f->elsewhere = elsewhere;
	f->pending = 0;
	f->netns = netns;
	f->entered = 0;
	f->prev_skb = 0;
	fs->depth = d + 1;
	return f;
}

/* pop removes the top frame and returns it in out; 0 if there was none. */
static __always_inline int pop(struct frame *out)
{
	struct cpu_frames *fs = cpu_frames();
	if (!fs)
		return 0;
	__u32 d = fs->depth;
	if (d == 0 || d > MAX_DEPTH)
		return 0;
	d--;
	*out = fs->f[d & (MAX_DEPTH - 1)];
	fs->depth = d;
	return 1;
}

static __always_inline struct frame *top_of(struct cpu_frames *fs)
{
	if (!fs)
		return NULL;
	__u32 d = fs->depth;
	if (d == 0 || d > MAX_DEPTH)
		return NULL;
	return &fs->f[(d - 1) & (MAX_DEPTH - 1)];
}

static __always_inline struct frame *top_frame(void)
{
	return top_of(cpu_frames());
}

static __always_inline int top(struct frame *out)
{
	struct frame *f = top_frame();
	if (!f)
		return 0;
	*out = *f;
	return 1;
}

static __always_inline int is_tunnel_xmit(__u16 fn)
{
	return fn == FN_IP_VS_TUNNEL_XMIT || fn == FN_IP_VS_TUNNEL_XMIT_V6;
}

static __always_inline int is_xmit(__u16 fn)
{
	return fn >= FN_IP_VS_NAT_XMIT && fn <= FN_IP_VS_BYPASS_XMIT_V6;
}

/* A packet's addresses, as the filter sees them. */
struct tuple {
	__u32 src[4], dst[4];
	__u16 sport, dport;
	__u16 af;
	__u8 proto;
	__u8 ports; /* sport and dport were read */
};

static __always_inline int addr_eq(const __u32 *a, const volatile __u32 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

static __always_inline int in_client(const __u32 *a)
{
	return (a[0] & f_client_mask[0]) == f_client_net[0] &&
	       (a[1] & f_client_mask[1]) == f_client_net[1] &&
	       (a[2] & f_client_mask[2]) == f_client_net[2] &&
	       (a[3] & f_client_mask[3]) == f_client_net[3];
}

/* one_way: does src -> dst look like client -> VIP? */
static __always_inline int one_way(__u16 af, const __u32 *src, __u16 sport, const __u32 *dst, __u16 dport)
{
	if (f_vip_af && (af != f_vip_af || !addr_eq(dst, f_vip)))
		return 0;
	if (f_port && dport != f_port)
		return 0;
	if (f_client_af && (af != f_client_af || !in_client(src)))
		return 0;
	return 1;
}

static __always_inline int match_tuple(const struct tuple *t)
{
	if (f_proto && t->proto != f_proto)
		return 0;
	if (f_rs_af && !(t->af == f_rs_af && (addr_eq(t->src, f_rs) || addr_eq(t->dst, f_rs))))
		return 0;
	return one_way(t->af, t->src, t->sport, t->dst, t->dport) ||
	       one_way(t->af, t->dst, t->dport, t->src, t->sport);
}

/* pkt_start is where the IP header begins: skb->data at receive, the
 * network header elsewhere (when set). */
static __always_inline unsigned char *pkt_start(struct sk_buff *skb, int at_receive, unsigned int *avail, const int direct)
{
	unsigned char *head = NULL, *data = NULL;
	__u16 nh = NET_HEADER_UNSET;
	unsigned int len = 0;
	LOAD(direct, head, skb->head);
	LOAD(direct, data, skb->data);
	LOAD(direct, len, skb->len);
	LOAD(direct, nh, skb->network_header);
	if (at_receive || nh == NET_HEADER_UNSET) {
		*avail = len;
		return data;
	}
	unsigned char *p = head + nh;
	/* bytes of skb->len before the IP header; negative once the stack
	 * has pulled the headers (the bytes are still there) */
	long before = p - data;
	if (before > (long)len || before < -0xffff) {
		*avail = 0;
		return p;
	}
	*avail = len - before;
	return p;
}

/* parse reads the IP header and ports; 0 if it is not IPv4/IPv6. */
static __always_inline int parse(unsigned char *p, struct tuple *t)
{
	/* 48 bytes hold an IPv4 header without options or an IPv6 header,
	 * and the ports after it: one read for nearly every packet.
	 * Aligned, so that an address is copied with 4-byte loads: byte by
	 * byte, match_headers was 358 instructions against 235, and every
	 * program verified 150 more of them (DR auto, 6.1: 19,247 in all
	 * against 17,447). */
	__u8 b[48] __attribute__((aligned(8)));
	if (bpf_probe_read_kernel(b, sizeof(b), p))
		return 0;
	__u8 ver = b[0] >> 4;
	unsigned int l4;
	if (ver == 4) {
		t->af = AF_INET;
		t->proto = b[9];
		__builtin_memcpy(&t->src[0], &b[12], 4);
		__builtin_memcpy(&t->dst[0], &b[16], 4);
		l4 = (b[0] & 0xf) * 4;
		/* a fragment after the first has no ports */
		if ((b[6] & 0x1f) || b[7])
			return 1;
	} else if (ver == 6) {
		t->af = AF_INET6;
		t->proto = b[6];
		__builtin_memcpy(t->src, &b[8], 16);
		__builtin_memcpy(t->dst, &b[24], 16);
		l4 = 40;
	} else {
		return 0;
	}
	if (t->proto == 6 || t->proto == 17 || t->proto == 132) {
		__u16 ports[2];
		if (l4 == 20) {
			__builtin_memcpy(ports, &b[20], 4);
		} else if (l4 == 40) {
			__builtin_memcpy(ports, &b[40], 4);
		} else if (bpf_probe_read_kernel(ports, sizeof(ports), p + (l4 & 0x3f))) {
			return 1;
		}
		t->sport = __builtin_bswap16(ports[0]);
		t->dport = __builtin_bswap16(ports[1]);
		t->ports = 1;
	}
	return 1;
}

/* What match_headers found in a packet's headers, as one scalar. */
#define HDR_MATCH 1 /* the filter matches them */
#define HDR_PORTS 2 /* a TCP, UDP or SCTP header with both ports */

/* match_headers parses the headers at p (a kernel address, read with
 * bpf_probe_read_kernel) and matches them against the filter. A global
 * function, which the verifier checks once per program apart from its
 * callers' states, and after which they go on with one unknown scalar:
 * inlined, the ways through the parse (IPv4 or IPv6, the protocol, where
 * the ports are, a read that failed) left stack slots zeroed on some and
 * written on others, which 6.1's verifier does not take for the same
 * state, and the rest of the hop was walked once per way. DR auto with
 * a VIP and port filter, 6.1: fentry_ip_vs_in_hook verified 3,134
 * instructions inlined, 1,424 so; all the programs 30,745 and 21,029.
 * The filter constants are
 * known to the verifier here too: without a filter the function is one
 * return, for the programs that can never call it. */
__attribute__((noinline)) int match_headers(__u64 p)
{
	struct tuple t = {};
	if (f_all)
		return HDR_MATCH;
	if (!parse((unsigned char *)p, &t))
		return 0;
	int h = t.ports ? HDR_PORTS : 0;
	if (match_tuple(&t))
		h |= HDR_MATCH;
	return h;
}

/* LOAD_ADDR reads an nf_inet_addr into a __u32[4]. */
#define LOAD_ADDR(direct, dst, src)                                            \
	do {                                                                   \
		if (direct) {                                                  \
			(dst)[0] = (src).all[0];                               \
			(dst)[1] = (src).all[1];                               \
			(dst)[2] = (src).all[2];                               \
			(dst)[3] = (src).all[3];                               \
		} else {                                                       \
			READ(dst, src);                                        \
		}                                                              \
	} while (0)

/* LOAD_ADDR16 reads an nf_inet_addr into a __u8[16]. */
#define LOAD_ADDR16(direct, dst, src)                                          \
	do {                                                                   \
		if (direct) {                                                  \
			__u32 *d_ = (__u32 *)(dst);                            \
			d_[0] = (src).all[0];                                  \
			d_[1] = (src).all[1];                                  \
			d_[2] = (src).all[2];                                  \
			d_[3] = (src).all[3];                                  \
		} else {                                                       \
			READ(dst, src);                                        \
		}                                                              \
	} while (0)

static __always_inline int match_conn(struct ip_vs_conn *cp, const int direct)
{
	__u16 af = 0, daf = 0, proto = 0, vport = 0;
	__u32 vaddr[4] = {}, caddr[4] = {}, daddr[4] = {};
	LOAD(direct, af, cp->af);
	LOAD(direct, daf, cp->daf);
	LOAD(direct, proto, cp->protocol);
	if (f_proto && proto != f_proto)
		return 0;
	if (f_vip_af) {
		LOAD_ADDR(direct, vaddr, cp->vaddr);
		if (af != f_vip_af || !addr_eq(vaddr, f_vip))
			return 0;
	}
	if (f_port) {
		LOAD(direct, vport, cp->vport);
		if (__builtin_bswap16(vport) != f_port)
			return 0;
	}
	if (f_client_af) {
		LOAD_ADDR(direct, caddr, cp->caddr);
		if (af != f_client_af || !in_client(caddr))
			return 0;
	}
	if (f_rs_af) {
		LOAD_ADDR(direct, daddr, cp->daddr);
		if (daf != f_rs_af || !addr_eq(daddr, f_rs))
			return 0;
	}
	return 1;
}

static __always_inline int match_svc(struct ip_vs_service *svc, const int direct)
{
	__u16 af = 0, proto = 0, port = 0;
	__u32 addr[4] = {};
	if (f_rs_af || f_client_af)
		return 0; /* no real server chosen, no client known here */
	LOAD(direct, af, svc->af);
	LOAD(direct, proto, svc->protocol);
	if (f_proto && proto != f_proto)
		return 0;
	if (f_vip_af) {
		LOAD_ADDR(direct, addr, svc->addr);
		if (af != f_vip_af || !addr_eq(addr, f_vip))
			return 0;
	}
	if (f_port) {
		LOAD(direct, port, svc->port);
		if (__builtin_bswap16(port) != f_port)
			return 0;
	}
	return 1;
}

/* skb_where finds the device an skb is on (skb->dev, else its route's)
 * and, when want_ns, the inode of its network namespace (the device's,
 * else its socket's). Direct loads on the common path: an skb with a
 * device. The device it returns is only ever READ. */
static __always_inline struct net_device *skb_where(struct sk_buff *skb, const int direct, const int want_ns, __u32 *inum)
{
	struct net_device *dev = NULL;
	struct net *net = NULL;
	LOAD(direct, dev, skb->dev);
	if (dev) {
		if (want_ns) {
			LOAD(direct, net, dev->nd_net.net);
			if (net)
				LOAD(direct, *inum, net->ns.inum);
		}
		return dev;
	}
	unsigned long refdst = 0;
	READ(refdst, skb->_skb_refdst);
	struct dst_entry *dst = (struct dst_entry *)(refdst & ~1UL);
	if (dst)
		READ(dev, dst->dev);
	if (!want_ns)
		return dev;
	if (dev) {
		READ(net, dev->nd_net.net);
	} else {
		struct sock *sk = NULL;
		READ(sk, skb->sk);
		if (sk)
			READ(net, sk->__sk_common.skc_net.net);
	}
	if (net)
		READ(*inum, net->ns.inum);
	return dev;
}

/* skb_dev is skb_where with reads for the skb *skb, as a global
 * function (see hop_body): the device, and the netns inode in *inum when
 * want_ns. */
__attribute__((noinline)) __u64 skb_dev(__u64 *skb, __u32 *inum, int want_ns)
{
	if (!skb || !inum)
		return 0;
	struct sk_buff *s = (struct sk_buff *)*skb;
	__u32 n = *inum;
	struct net_device *dev = want_ns ? skb_where(s, 0, 1, &n) : skb_where(s, 0, 0, &n);
	*inum = n;
	return (__u64)dev;
}

/* read_conn, read_svc and read_dest copy what the event shows of a
 * connection, a service and a real server: with plain loads where the
 * pointer is typed (direct: fentry/fexit), else one read per field. */
static __always_inline void read_conn(struct event *e, struct ip_vs_conn *cp, const int direct)
{
	struct conn_info *c = &e->conn;
	LOAD_ADDR16(direct, c->caddr, cp->caddr);
	LOAD_ADDR16(direct, c->vaddr, cp->vaddr);
	LOAD_ADDR16(direct, c->daddr, cp->daddr);
	LOAD(direct, c->cport, cp->cport);
	LOAD(direct, c->vport, cp->vport);
	LOAD(direct, c->dport, cp->dport);
	c->cport = __builtin_bswap16(c->cport);
	c->vport = __builtin_bswap16(c->vport);
	c->dport = __builtin_bswap16(c->dport);
	LOAD(direct, c->af, cp->af);
	LOAD(direct, c->daf, cp->daf);
	LOAD(direct, c->protocol, cp->protocol);
	LOAD(direct, c->state, cp->state);
	LOAD(direct, c->flags, cp->flags);
	e->flags |= EV_CONN;
}

static __always_inline void read_svc(struct event *e, struct ip_vs_service *svc, const int direct)
{
	struct svc_info *s = &e->svc;
	struct ip_vs_scheduler *sched = NULL;
	char *name = NULL;
	LOAD_ADDR16(direct, s->addr, svc->addr);
	LOAD(direct, s->port, svc->port);
	s->port = __builtin_bswap16(s->port);
	LOAD(direct, s->af, svc->af);
	LOAD(direct, s->protocol, svc->protocol);
	LOAD(direct, s->fwmark, svc->fwmark);
	LOAD(direct, sched, svc->scheduler);
	if (sched) {
		LOAD(direct, name, sched->name);
		if (name)
			bpf_probe_read_kernel_str(s->sched, sizeof(s->sched), name);
	}
	e->flags |= EV_SVC;
}

static __always_inline void read_dest(struct event *e, struct ip_vs_dest *dest, const int direct)
{
	struct dest_info *d = &e->dest;
	struct ip_vs_service *svc = NULL;
	LOAD_ADDR16(direct, d->addr, dest->addr);
	LOAD(direct, d->port, dest->port);
	d->port = __builtin_bswap16(d->port);
	LOAD(direct, d->af, dest->af);
	LOAD(direct, d->weight, dest->weight.counter);
	LOAD(direct, d->conn_flags, dest->conn_flags.counter);
	e->flags |= EV_DEST;
	LOAD(direct, svc, dest->svc);
	if (svc)
		read_svc(e, svc, direct);
}

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&lost, &zero);
	if (n)
		*n += 1;
}

/* What one probe knows about its hop. */
struct hop_args {
	struct sk_buff *skb;
	struct ip_vs_conn *cp;
	struct ip_vs_service *svc;
	__u64 prev_skb;
	__u64 location;
	__s64 ret;
	const char *msg;
	__u32 reason;
	__u32 netns;    /* when ns_known */
	__u16 fn;
	__u16 flags;
	__u8 hook;
	__u8 at_receive;
	__u8 known;    /* traced already: no need to match */
	__u8 ns_known; /* netns is set and passed the filter */
	/* Decide whether the packet is traced, and send no event: a hook's
	 * entry, which the frame keeps pending (hop returns 2). */
	__u8 decide_only;
	__u64 entry_ts; /* EV_ENTRY (a hook's exit): the hook's entry time */
	/* Set by hop: it left the packet out by a TCP, UDP or SCTP header
	 * with both ports (what IPVS looks connections up by). */
	__u8 out_by_ports;
};

/* What hop found on the way to a traced packet's event, for emit: the
 * device (READ only), and the netns inode when known. */
struct found {
	__u64 dev;
	__u32 netns;
};

/* pending_of returns the hook frame whose entry an event about skb
 * carries: the top frame, or the hook under a transmitter's, when it is
 * pending on that skb; else NULL. */
static __always_inline struct frame *pending_of(struct cpu_frames *fs, __u64 skb)
{
	struct frame *f = top_of(fs);
	if (f && is_xmit(f->fn)) {
		__u32 d = fs->depth;
		if (d < 2 || d > MAX_DEPTH)
			return NULL;
		f = &fs->f[(d - 2) & (MAX_DEPTH - 1)];
	}
	if (!f || !f->pending || f->skb != skb)
		return NULL;
	return f;
}

/* Direct loads: DIRECT where a probe's pointers are typed from BTF
 * (fentry, fexit, tp_btf), INDIRECT where they are plain numbers
 * (kprobe, kretprobe, raw_tp, and skbs kept in a frame). */
#define DIRECT 1
#define INDIRECT 0

/* hop_body's answer for a traced packet whose event emit writes. */
#define HOP_EMIT 3

/* Which of hop_body's parts a copy of it has (a constant at every call). */
#define BODY_ALL 0
#define BODY_DECIDE 1 /* decide_only: no event */
#define BODY_KNOWN 2  /* a.known, or no filter: no match */

/* send_event writes the event of a traced hop, with the device and netns
 * inode hop_body found (dev NULL: none; netns: when known). */
static __always_inline int send_event(struct hop_args *a, struct sk_buff *skb, struct ip_vs_conn *cp,
				      struct ip_vs_service *svc, const int with_msg, struct net_device *dev, __u32 netns,
				      const int direct_skb, const int direct_obj)
{
	__u64 key = (__u64)skb;
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 1;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts = bpf_ktime_get_ns();
	e->skb = key;
	e->prev_skb = a->prev_skb;
	e->cpu = bpf_get_smp_processor_id();
	e->fn = a->fn;
	e->flags = a->flags;
	e->hook = a->hook;
	e->ret = a->ret;
	e->location = a->location;
	e->reason = a->reason;
	if (!direct_obj && !f_netns && !a->ns_known)
		skb_where(skb, INDIRECT, 1, &netns);
	e->netns = netns;
	if (dev) {
		READ(e->ifindex, dev->ifindex);
		READ(e->ifname, dev->name);
	}
	if (with_msg && a->msg)
		bpf_probe_read_kernel_str(e->msg, sizeof(e->msg), a->msg);
	/* Found again, not kept from the match: on 6.1 a pointer NULL on
	 * some ways here and not on others kept the verifier's states
	 * apart, and all that follows was walked once per way. With a VIP
	 * and port filter, kretprobe_conn verified 17,978 instructions when
	 * it was kept, 6,560 found again; fentry_ip_vs_dr_xmit 5,492 and
	 * 3,121. Direct loads where skb is typed, which cost less than the
	 * reads they replace. */
	unsigned int avail = 0;
	unsigned char *p = pkt_start(skb, a->at_receive, &avail, direct_skb);
	/* A constant size, which every verifier accepts: the head buffer
	 * ends with skb_shared_info, so PKT_MAX bytes from a header inside
	 * it are readable; pkt_len says how many are the packet's. */
	if (avail > PKT_MAX)
		avail = PKT_MAX;
	if (avail > 0 && bpf_probe_read_kernel(e->pkt, PKT_MAX, p) == 0) {
		e->pkt_len = avail;
		e->flags |= EV_PKT;
	}
	if (cp) {
		struct ip_vs_dest *dest = NULL;
		read_conn(e, cp, direct_obj);
		LOAD(direct_obj, dest, cp->dest);
		if (dest)
			read_dest(e, dest, direct_obj);
	} else if (svc) {
		read_svc(e, svc, direct_obj);
	}
	/* An event from inside a hook whose entry is pending carries it.
	 * Looked for here, last: each way through it is one more way the
	 * verifier walks what follows (6.1 keeps them apart by the ring
	 * reservation), so as little as possible follows. Not a hook's own
	 * event: its hook field is its own (a hook's exit sets EV_ENTRY for
	 * its own entry). */
	__u64 entered = a->entry_ts;
	if (!(a->flags & (EV_HOOK | EV_ENTRY))) {
		struct frame *pf = pending_of(cpu_frames(), key);
		if (pf) {
			e->flags |= EV_ENTRY;
			e->entry_fn = pf->fn;
			e->hook = pf->hook;
			entered = pf->entered;
			if (!e->prev_skb)
				e->prev_skb = pf->prev_skb;
			pf->pending = 0;
		}
	}
	if (e->flags & EV_ENTRY) {
		__u64 ago = e->ts - entered;
		e->entry_ago = ago > 0xffffffff ? 0xffffffff : ago;
		if (!e->entry_fn)
			e->entry_fn = a->fn; /* a hook's exit: its own entry */
	}
	/* The reader is woken once a batch has gathered, not for every
	 * event: a wake-up is an interrupt and a context switch per hop,
	 * which cost more than the rest of lvsdiag's reading together. Fewer
	 * events are picked up by the reader's own poll (every 100 ms). */
	__u64 wake = BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= WAKEUP_BYTES)
		wake = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, wake);
	return 1;
}

/* emit_obj and emit_pkt are send_event for untyped pointers as global
 * functions, which the verifier checks once per program, apart from its
 * callers' states (a global function's arguments can only be scalars
 * and memory, so not for typed pointers). Inlined after the filter, the
 * event is walked once per state the filter's ways leave distinct at
 * the ring buffer reservation: on 6.1 with a VIP and port filter,
 * kretprobe_conn verifies 6,560 instructions so and 3,629 with
 * emit_obj. On 6.12, whose states meet before the reservation, a
 * program verifies some 75 more with emit than inlined. emit_pkt is for
 * the hops without a connection, service or message (a hook's exit, a
 * scheduling entry), whose programs need not verify what reads them. */
__attribute__((noinline)) int emit_obj(struct hop_args *a, struct found *f)
{
	if (!a || !f)
		return 0;
	return send_event(a, a->skb, a->cp, a->svc, 1, (struct net_device *)f->dev, f->netns, INDIRECT, INDIRECT);
}

__attribute__((noinline)) int emit_pkt(struct hop_args *a, struct found *f)
{
	if (!a || !f)
		return 0;
	return send_event(a, a->skb, NULL, NULL, 0, (struct net_device *)f->dev, f->netns, INDIRECT, INDIRECT);
}

/* hop decides whether the packet is traced and writes its event.
 * direct_skb says whether a->skb is typed, direct_obj whether a->cp and
 * a->svc are; both are constants at every call. A packet that does not
 * match costs, in order: its netns (three loads), a lookup in traced
 * only while some skb is traced (n_traced), and the match itself (a few
 * loads, or one read of its headers). The device is found only when a
 * packet is traced, or the filter names an interface. It returns 1 if
 * the packet is traced, 0 if the filter leaves it out, 2 for decide_only,
 * and HOP_EMIT for an untyped hop's traced packet, whose event emit
 * writes with what hop_body found in out. */
static __always_inline int hop_body(struct hop_args *a, struct sk_buff *skb, struct ip_vs_conn *cp,
				    struct ip_vs_service *svc, struct found *out, const int direct_skb,
				    const int direct_obj, const int body)
{
	__u64 key = (__u64)skb;
	if (!skb)
		return 0;
	__u32 netns = a->netns;
	struct net_device *dev = NULL;
	int have_dev = 0;
	if (f_netns && !a->ns_known) {
		dev = skb_where(skb, direct_skb, 1, &netns);
		have_dev = 1;
		if (netns != f_netns)
			return 0;
	}

	if (!f_all && !a->known && body != BODY_KNOWN) {
		/* A packet just received is judged by its own headers even if
		 * its address is in traced, and so is one whose entry says it
		 * matched by its headers alone wherever IPVS has not taken it
		 * (enum traced_how): such an entry may be left from a freed
		 * skb, and would make an unrelated packet look traced. */
		int was = traced_how_of(&key);
		if (!was || a->at_receive || (!(was & TRACED_IPVS) && !cp && !svc)) {
			int ok = 0;
			__u8 how = TRACED_HEADERS;
			if (a->prev_skb && traced_how_of(&a->prev_skb))
				ok = 1;
			if (!ok && cp)
				ok = match_conn(cp, direct_obj);
			if (ok)
				how = TRACED_IPVS;
			if (!ok && svc)
				ok = match_svc(svc, direct_obj);
			if (!ok && !cp && !svc) {
				unsigned int avail;
				unsigned char *p = pkt_start(skb, a->at_receive, &avail, direct_skb);
				int h = match_headers((__u64)p);
				ok = (h & HDR_MATCH) != 0;
				a->out_by_ports = !ok && (h & HDR_PORTS);
			}
			/* The interface is where the packet entered the trace:
			 * it leaves on another. */
			if (ok && f_ifindex && (!was || a->at_receive)) {
				int ifindex = 0;
				if (!have_dev) {
					dev = skb_where(skb, direct_skb, 0, &netns);
					have_dev = 1;
				}
				if (dev)
					READ(ifindex, dev->ifindex);
				ok = ifindex == f_ifindex;
			}
			if (!ok) {
				if (was)
					traced_delete(&key);
				return 0;
			}
			if (!was)
				traced_insert(&key, how);
			else if (a->at_receive && was != how)
				traced_set(&key, how);
		} else if (cp && !(was & TRACED_IPVS)) {
			traced_set(&key, was | TRACED_IPVS);
		}
	} else if (f_ifindex) {
		int ifindex = 0;
		if (!have_dev) {
			dev = skb_where(skb, direct_skb, 0, &netns);
			have_dev = 1;
		}
		if (dev)
			READ(ifindex, dev->ifindex);
		if (ifindex != f_ifindex)
			return 0;
	}
	if (a->decide_only || body == BODY_DECIDE)
		return 2;
	/* A typed program finds the event's device, and its netns inode
	 * where the filter did not need it, with a global function: found
	 * inline (a typed device from skb->dev or a number from its route's,
	 * an inode or none), they kept the verifier's states apart, and each
	 * program walked the event once per way. On 6.1, every IPVS hop
	 * without a filter verified 28,493 instructions so and 19,311 now;
	 * DR auto with a VIP and port filter 17,447 and 15,341. An untyped
	 * program, whose reads leave one state, verifies fewer inline
	 * (kretprobe_conn 2,149 against 2,369). */
	if (direct_obj)
		dev = (struct net_device *)skb_dev(&key, &netns, !f_netns && !a->ns_known);
	else if (!have_dev)
		dev = skb_where(skb, direct_skb, 0, &netns);

	if (direct_obj)
		return send_event(a, skb, cp, svc, 1, dev, netns, direct_skb, direct_obj);
	/* hop calls emit from the program, not from here: this function's
	 * stack and emit's together, under a hook exit's, are more than
	 * the verifier's 512 bytes. */
	out->dev = (__u64)dev;
	out->netns = netns;
	return HOP_EMIT;
}

/* hop's body is compiled once per kind of pointers as a BPF function
 * that every program calls, not inlined into each of the 70-odd
 * programs: the object, and its parsing at every start, shrink several
 * times. skb, cp and svc are passed in registers, which keep the types
 * the verifier gave them. */
static __attribute__((noinline)) int hop_typed(struct hop_args *a, struct sk_buff *skb, struct ip_vs_conn *cp,
					       struct ip_vs_service *svc)
{
	return hop_body(a, skb, cp, svc, NULL, DIRECT, DIRECT, BODY_ALL);
}

static __attribute__((noinline)) int hop_typed_obj(struct hop_args *a, struct sk_buff *skb, struct ip_vs_conn *cp,
						   struct ip_vs_service *svc)
{
	return hop_body(a, skb, cp, svc, NULL, INDIRECT, DIRECT, BODY_ALL);
}

static __attribute__((noinline)) int hop_untyped(struct hop_args *a, struct sk_buff *skb, struct ip_vs_conn *cp,
						 struct ip_vs_service *svc, struct found *out)
{
	return hop_body(a, skb, cp, svc, out, INDIRECT, INDIRECT, BODY_ALL);
}

/* Two bodies with a part left out, for the programs that can never run
 * it, which the verifier would check all the same (the global functions
 * it calls are checked whether or not a call is reached): a hook's entry
 * sends no event (no skb_dev), a hook's exit decides nothing (no
 * match_headers, no traced_how_of). DR auto with a VIP and port filter
 * verifies 13,896 instructions so on 6.1 against 15,341 (fexit_ip_vs_in_hook
 * 1,448 -> 834), 16,513 against 17,452 on 6.12; every IPVS hop without a
 * filter 18,809 against 19,311 on 6.1. The object grows by 4.6% (14 KB). */
static __attribute__((noinline)) int hop_typed_decide(struct hop_args *a, struct sk_buff *skb)
{
	return hop_body(a, skb, NULL, NULL, NULL, DIRECT, DIRECT, BODY_DECIDE);
}

static __attribute__((noinline)) int hop_untyped_known(struct hop_args *a, struct sk_buff *skb, struct found *out)
{
	return hop_body(a, skb, NULL, NULL, out, INDIRECT, INDIRECT, BODY_KNOWN);
}

/* What a hop's event may carry besides the packet, which says which
 * emit function its program needs (a constant at every call). */
enum sends {
	SENDS_NOTHING, /* decide_only: no event */
	SENDS_PKT,     /* no connection, service or message */
	SENDS_OBJ,
};

/* hop picks the body for the pointers' kinds (constants at every call). */
static __always_inline int hop(struct hop_args *a, const int direct_skb, const int direct_obj, const int sends)
{
	if (direct_skb && direct_obj && sends == SENDS_NOTHING)
		return hop_typed_decide(a, a->skb);
	if (direct_skb && direct_obj)
		return hop_typed(a, a->skb, a->cp, a->svc);
	if (direct_obj)
		return hop_typed_obj(a, a->skb, a->cp, a->svc);
	struct found f = {};
	int r = hop_untyped(a, a->skb, a->cp, a->svc, &f);
	if (r != HOP_EMIT || sends == SENDS_NOTHING)
		return r;
	if (sends == SENDS_PKT)
		emit_pkt(a, &f);
	else
		emit_obj(a, &f);
	return 1;
}

/* hop_known is hop for a hook's exit: an untyped packet event of a skb
 * already traced (a.known), or of any with no filter. */
static __always_inline int hop_known(struct hop_args *a)
{
	struct found f = {};
	if (hop_untyped_known(a, a->skb, &f) == HOP_EMIT)
		emit_pkt(a, &f);
	return 0;
}

/* encapsulated: is the IP packet at p one that carries another (IPIP,
 * IPv6-in-IP, GRE, or UDP, as GUE and FOU do)? Only the version and the
 * protocol are read, not parsed as the filter does: with match_headers
 * here, every program verified the parse even without a filter, and the
 * sum over every IPVS hop (auto, 6.1) grew from 29,046 instructions to
 * 37,724; with this, 28,256. */
static __always_inline int encapsulated(unsigned char *p)
{
	__u8 b[10];
	if (bpf_probe_read_kernel(b, sizeof(b), p))
		return 0;
	__u8 proto;
	if (b[0] >> 4 == 4)
		proto = b[9];
	else if (b[0] >> 4 == 6)
		proto = b[6];
	else
		return 0;
	return proto == 4 || proto == 41 || proto == 47 || proto == 17;
}

/* prev_of: when the CPU is inside an IPVS transmitter and meets another
 * skb, the transmitter replaced it (tunnel mode's headroom realloc):
 * report the one it came from. */
static __always_inline __u64 prev_of(struct frame *f, struct sk_buff *skb, const int direct)
{
	if (!f || !is_tunnel_xmit(f->fn) || f->skb == (__u64)skb)
		return 0;
	/* Only an encapsulated packet replaces the one being sent: not, say,
	 * the ARP request for the real server sent meanwhile. */
	unsigned int avail;
	if (!encapsulated(pkt_start(skb, 0, &avail, direct)))
		return 0;
	f->replaced = 1;
	return f->skb;
}

/* The netns comes first: the tracepoints fire for every packet of every
 * namespace, and most of them are in one the filter leaves out. */
static __always_inline int on_skb(__u16 fn, struct sk_buff *skb, __u8 at_receive, const int direct)
{
	struct hop_args a = {.fn = fn, .skb = skb, .hook = NO_HOOK, .at_receive = at_receive};
	if (!skb)
		return 0;
	if (f_netns) {
		skb_where(skb, direct, 1, &a.netns);
		if (a.netns != f_netns)
			return 0;
		a.ns_known = 1;
	}
	struct cpu_frames *fs = cpu_frames();
	a.prev_skb = prev_of(top_of(fs), skb, direct);
	hop(&a, direct, direct, SENDS_PKT);
	return 0;
}

/* skip_rest_of_hook: a packet ip_vs_in_hook takes in, left out by its
 * TCP, UDP or SCTP header, cannot match at any hop inside the hook:
 * the connection IPVS finds or creates for it, and the service, have
 * the header's client, VIP and port (or none, for a fwmark service or a
 * template). So the hops inside it return at once, as for another
 * netns. Not with a real server filter (the connection names the real
 * server, the header does not), not for ICMP (an error's connection is
 * the packet it quotes), and not for ip_vs_out_hook (a NAT reply's
 * header has the real server where the connection has the VIP). */
static __always_inline int skip_rest_of_hook(__u16 fn, const struct hop_args *a)
{
	return fn == FN_IP_VS_IN_HOOK && a->out_by_ports && !f_rs_af && !f_all;
}

/* A hook's entry decides the netns once for everything IPVS does with
 * the packet inside it: the frame remembers a packet the filter leaves
 * out, and the functions without an skb return at once for it. It sends
 * no event: the frame keeps a traced packet's entry pending, for the
 * first event from inside the hook to carry, or for the hook's exit (a
 * hook that did nothing else is one event, not two). */
static __always_inline int on_hook_entry(__u16 fn, struct sk_buff *skb, struct nf_hook_state *state, const int direct)
{
	struct hop_args a = {.fn = fn, .skb = skb, .hook = NO_HOOK};
	__u8 elsewhere = 0;
	if (f_netns && skb) {
		skb_where(skb, direct, 1, &a.netns);
		elsewhere = a.netns != f_netns;
		a.ns_known = 1;
	}
	LOAD(direct, a.hook, state->hook);
	struct cpu_frames *fs = cpu_frames();
	struct frame *caller = top_of(fs);
	/* A packet a transmitter sends on (a direct-routed one meets
	 * ip_vs_in_hook again at LOCAL_OUT) was judged in the hook that took
	 * it in, with the same headers: not so after NAT's rewrite. */
	if (caller && caller->elsewhere && caller->skb == (__u64)skb && caller->fn != FN_IP_VS_NAT_XMIT &&
	    caller->fn != FN_IP_VS_NAT_XMIT_V6)
		elsewhere = 1;
	/* Before the push: prev_of looks at the frame this hook runs in. */
	if (!elsewhere)
		a.prev_skb = prev_of(caller, skb, direct);
	struct frame *f = push(fs, (__u64)skb, fn, a.hook, elsewhere, a.netns);
	if (elsewhere)
		return 0;
	a.flags = EV_HOOK;
	a.decide_only = 1;
	int traced = hop(&a, direct, direct, SENDS_NOTHING);
	if (!f)
		return 0;
	if (traced) {
		/* A hook inside a hook on the same packet whose entry is still
		 * pending (no event from the outer one yet) keeps both: the
		 * outer's goes with the next event from inside it, and the
		 * paths put each entry at its time. */
		f->pending = 1;
		f->entered = bpf_ktime_get_ns();
		f->prev_skb = a.prev_skb;
	} else if (skip_rest_of_hook(fn, &a)) {
		f->elsewhere = 1;
	}
	return 0;
}

/* xmit_done ends a transmitter's frame x, popped by the exit of the hook
 * that called it. A tunnel transmitter's replaced skb is freed: it is
 * forgotten, and 1 says it was traced (the hook reports its verdict on
 * that skb). */
static __always_inline int xmit_done(const struct frame *x)
{
	__u64 key = x->skb;
	if (!x->replaced || f_all || !traced_lookup(&key))
		return 0;
	traced_delete(&key);
	return 1;
}

/* own_frame reports whether the top frame (or the one under the frame
 * of the transmitter the hook called) is hook fn's visit on skb, the
 * argument its fexit sees. Not so when the hook's entry was skipped (it
 * ran nested in a program this CPU was running), or a frame above it is
 * one whose exit the kernel skipped: its exit then reports nothing and
 * pops nothing, rather than another packet's verdict on that packet. */
static __always_inline int own_frame(__u16 fn, __u64 skb)
{
	struct cpu_frames *fs = cpu_frames();
	struct frame *f = top_of(fs);
	if (!f || !fs)
		return 0;
	if (is_xmit(f->fn)) {
		__u32 d = fs->depth;
		if (d < 2 || d > MAX_DEPTH)
			return 0;
		f = &fs->f[(d - 2) & (MAX_DEPTH - 1)];
	}
	return f->fn == fn && f->skb == skb;
}

/* on_hook_exit ends hook fn's visit; skb is its argument, 0 where the
 * probe cannot see it (a kretprobe). */
static __always_inline int on_hook_exit(__u16 fn, __s64 ret, __u64 skb)
{
	if (skb && !own_frame(fn, skb))
		return 0;
	struct frame f;
	if (!pop(&f))
		return 0;
	/* The transmitter the hook called has no exit probe of its own (a
	 * program and a link fewer per transmitter, to load, attach and run):
	 * its frame, above the hook's, ends here. */
	if (is_xmit(f.fn)) {
		__u64 sent = f.skb;
		int replaced = xmit_done(&f);
		if (!pop(&f))
			return 0;
		if (replaced && f.skb == sent)
			f.traced = 1;
	}
	if (f.fn != fn || f.elsewhere)
		return 0;
	/* A packet is traced at the exit only if it matched on the way in or
	 * inside the hook (a NAT reply matches at ip_vs_conn_out_get, a real
	 * server filter at ip_vs_schedule): one lookup, no second parse, for
	 * every packet that does not. */
	if (!f_all && !f.traced && !f.pending && !traced_lookup(&f.skb))
		return 0;
	struct hop_args a = {.fn = fn, .skb = (struct sk_buff *)f.skb, .hook = f.hook,
			     .flags = EV_EXIT | EV_HOOK, .ret = ret, .known = !f_all,
			     .netns = f.netns, .ns_known = f_netns != 0};
	/* Nothing inside the hook was traced: its entry and its verdict in
	 * one event. Without a branch (push zeroes entered and prev_skb):
	 * one way into hop for the verifier. */
	_Static_assert(EV_ENTRY == 1 << 8, "EV_ENTRY is pending << 8");
	a.flags |= (__u16)f.pending << 8;
	a.entry_ts = f.entered;
	a.prev_skb = f.prev_skb;
	hop_known(&a);
	return 0;
}

/* Functions without an skb argument belong to the skb this CPU is in:
 * current sets a's skb, and its netns as the hook found it; 0 when there
 * is none, or nothing inside the frame can match the filter. */
static __always_inline int current(struct hop_args *a)
{
	struct frame f;
	if (!top(&f) || f.elsewhere)
		return 0;
	a->skb = (struct sk_buff *)f.skb;
	if (f_netns) {
		a->netns = f.netns;
		a->ns_known = 1;
	}
	return 1;
}

/* hop_current is hop for a function without an skb argument: the hop
 * of the skb the CPU is in, carrying its hook's pending entry. */
static __always_inline int hop_current(struct hop_args *a, const int direct_obj, const int sends)
{
	if (!current(a))
		return 0;
	hop(a, INDIRECT, direct_obj, sends);
	return 0;
}

static __always_inline int on_conn_exit(__u16 fn, struct ip_vs_conn *cp, const int direct)
{
	/* ip_vs_out_hook asks for every packet whether it is a reply: a "no"
	 * says nothing. */
	if (!cp && fn == FN_IP_VS_CONN_OUT_GET)
		return 0;
	struct hop_args a = {.fn = fn, .hook = NO_HOOK, .flags = EV_EXIT, .cp = cp, .ret = cp != NULL};
	if (!cp)
		a.flags |= EV_NOCONN;
	return hop_current(&a, direct, SENDS_OBJ);
}

static __always_inline int on_current(__u16 fn)
{
	struct hop_args a = {.fn = fn, .hook = NO_HOOK};
	return hop_current(&a, INDIRECT, SENDS_PKT);
}

/* ip_vs_scheduler_err: no skb argument. */
static __always_inline int on_svc_current(__u16 fn, struct ip_vs_service *svc, const char *msg, const int direct_svc)
{
	struct hop_args a = {.fn = fn, .svc = svc, .msg = msg, .hook = NO_HOOK};
	return hop_current(&a, direct_svc, SENDS_OBJ);
}

/* ip_vs_leave(svc, skb, ...) runs inside ip_vs_in_hook, whose frame may
 * say the packet cannot match. */
static __always_inline int on_svc(__u16 fn, struct sk_buff *skb, const int direct_skb,
				  struct ip_vs_service *svc, const char *msg, const int direct_svc)
{
	struct hop_args a = {.fn = fn, .skb = skb, .svc = svc, .msg = msg, .hook = NO_HOOK};
	struct cpu_frames *fs = cpu_frames();
	struct frame *f = top_of(fs);
	if (f && f->skb == (__u64)skb && f->elsewhere)
		return 0;
	hop(&a, direct_skb, direct_svc, SENDS_OBJ);
	return 0;
}

static __always_inline int on_xmit_entry(__u16 fn, struct sk_buff *skb, struct ip_vs_conn *cp, const int direct)
{
	struct hop_args a = {.fn = fn, .skb = skb, .cp = cp, .hook = NO_HOOK};
	/* A transmitter runs inside a hook, which decided the netns, and
	 * whether anything inside it can match. */
	struct cpu_frames *fs = cpu_frames();
	struct frame *caller = top_of(fs);
	/* A transmitter's frame on top is one no hook exit popped (its hook
	 * is not traced): it is over, and this one takes its place. */
	if (caller && is_xmit(caller->fn)) {
		fs->depth--;
		caller = top_of(fs);
	}
	__u8 elsewhere = caller && caller->elsewhere;
	if (caller && f_netns) {
		a.netns = caller->netns;
		a.ns_known = 1;
	}
	push(fs, (__u64)skb, fn, NO_HOOK, elsewhere, a.netns);
	if (elsewhere)
		return 0;
	hop(&a, direct, direct, SENDS_OBJ);
	return 0;
}

/* ---- The probes. ---- */

/* fentry/fexit programs are verified against their function's BTF, so
 * each function has its own. kprobe programs are not bound to a
 * function: one program serves every function of a shape (where its
 * skb, connection or verdict is), and the link's cookie says which
 * function fired (enum fn_id, set by the loader per attached symbol).
 * Fewer programs to load is most of a kprobe trace's start. */

#define KARG0(ctx) ((ctx)->di)
#define KARG1(ctx) ((ctx)->si)
#define KARG2(ctx) ((ctx)->dx)
#define KARG3(ctx) ((ctx)->cx)

static __always_inline __u16 cookie_fn(struct pt_regs *ctx)
{
	return (__u16)bpf_get_attach_cookie(ctx);
}

/* Functions with an skb at argument N. */
#define SKB_HOP(func, FN, n)                                                   \
	SEC("fentry/" #func) int fentry_##func(__u64 *ctx)                     \
	{ return on_skb(FN, (struct sk_buff *)ctx[n], 0, DIRECT); }

SEC("kprobe") int kprobe_skb_arg0(struct pt_regs *ctx)
{ return on_skb(cookie_fn(ctx), (struct sk_buff *)KARG0(ctx), 0, INDIRECT); }
SEC("kprobe") int kprobe_skb_arg2(struct pt_regs *ctx)
{ return on_skb(cookie_fn(ctx), (struct sk_buff *)KARG2(ctx), 0, INDIRECT); }

SKB_HOP(ip_forward, FN_IP_FORWARD, 0)
SKB_HOP(ip_local_deliver, FN_IP_LOCAL_DELIVER, 0)
SKB_HOP(ip_output, FN_IP_OUTPUT, 2)
SKB_HOP(ip_local_out, FN_IP_LOCAL_OUT, 2)
SKB_HOP(ip6_forward, FN_IP6_FORWARD, 0)
SKB_HOP(ip6_input, FN_IP6_INPUT, 0)
SKB_HOP(ip6_output, FN_IP6_OUTPUT, 2)
SKB_HOP(ip6_local_out, FN_IP6_LOCAL_OUT, 2)

/* Netfilter hook functions (priv, skb, state), with their verdicts. */
#define HOOK(func, FN)                                                         \
	SEC("fentry/" #func) int fentry_##func(__u64 *ctx)                     \
	{ return on_hook_entry(FN, (struct sk_buff *)ctx[1], (struct nf_hook_state *)ctx[2], DIRECT); } \
	SEC("fexit/" #func) int fexit_##func(__u64 *ctx)                       \
	{ return on_hook_exit(FN, (int)ctx[3], ctx[1]); }

SEC("kprobe") int kprobe_hook(struct pt_regs *ctx)
{ return on_hook_entry(cookie_fn(ctx), (struct sk_buff *)KARG1(ctx), (struct nf_hook_state *)KARG2(ctx), INDIRECT); }
SEC("kretprobe") int kretprobe_hook(struct pt_regs *ctx)
{ return on_hook_exit(cookie_fn(ctx), (int)ctx->ax, 0); }

HOOK(ip_vs_in_hook, FN_IP_VS_IN_HOOK)
HOOK(ip_vs_out_hook, FN_IP_VS_OUT_HOOK)
HOOK(ip_vs_forward_icmp, FN_IP_VS_FORWARD_ICMP)

/* Functions returning a connection; nargs is where fexit finds it. */
#define CONN_EXIT(func, FN, nargs)                                             \
	SEC("fexit/" #func) int fexit_##func(__u64 *ctx)                       \
	{ return on_conn_exit(FN, (struct ip_vs_conn *)ctx[nargs], DIRECT); }

SEC("kretprobe") int kretprobe_conn(struct pt_regs *ctx)
{ return on_conn_exit(cookie_fn(ctx), (struct ip_vs_conn *)ctx->ax, INDIRECT); }

CONN_EXIT(ip_vs_conn_in_get, FN_IP_VS_CONN_IN_GET, 1)
CONN_EXIT(ip_vs_conn_out_get, FN_IP_VS_CONN_OUT_GET, 1)
CONN_EXIT(ip_vs_schedule, FN_IP_VS_SCHEDULE, 5)
CONN_EXIT(ip_vs_conn_new, FN_IP_VS_CONN_NEW, 7)

/* The protocol's scheduling entry: "no connection, scheduling". */
#define CURRENT(func, FN)                                                      \
	SEC("fentry/" #func) int fentry_##func(__u64 *ctx)                     \
	{ return on_current(FN); }

SEC("kprobe") int kprobe_current(struct pt_regs *ctx)
{ return on_current(cookie_fn(ctx)); }

CURRENT(tcp_conn_schedule, FN_TCP_CONN_SCHEDULE)
CURRENT(udp_conn_schedule, FN_UDP_CONN_SCHEDULE)
CURRENT(sctp_conn_schedule, FN_SCTP_CONN_SCHEDULE)

/* ip_vs_scheduler_err(svc, msg): no destination. */
SEC("kprobe/ip_vs_scheduler_err") int kprobe_ip_vs_scheduler_err(struct pt_regs *ctx)
{ return on_svc_current(FN_IP_VS_SCHEDULER_ERR, (struct ip_vs_service *)KARG0(ctx), (const char *)KARG1(ctx), INDIRECT); }
SEC("fentry/ip_vs_scheduler_err") int fentry_ip_vs_scheduler_err(__u64 *ctx)
{ return on_svc_current(FN_IP_VS_SCHEDULER_ERR, (struct ip_vs_service *)ctx[0], (const char *)ctx[1], DIRECT); }

/* ip_vs_leave(svc, skb, pd, iph): IPVS gives the packet up. */
SEC("kprobe/ip_vs_leave") int kprobe_ip_vs_leave(struct pt_regs *ctx)
{ return on_svc(FN_IP_VS_LEAVE, (struct sk_buff *)KARG1(ctx), INDIRECT, (struct ip_vs_service *)KARG0(ctx), NULL, INDIRECT); }
SEC("fentry/ip_vs_leave") int fentry_ip_vs_leave(__u64 *ctx)
{ return on_svc(FN_IP_VS_LEAVE, (struct sk_buff *)ctx[1], DIRECT, (struct ip_vs_service *)ctx[0], NULL, DIRECT); }

/* Transmitters (skb, cp, pp, ipvsh): their frames end at the exit of
 * the hook that called them (on_hook_exit). */
#define XMIT(func, FN)                                                         \
	SEC("fentry/" #func) int fentry_##func(__u64 *ctx)                     \
	{ return on_xmit_entry(FN, (struct sk_buff *)ctx[0], (struct ip_vs_conn *)ctx[1], DIRECT); }

SEC("kprobe") int kprobe_xmit(struct pt_regs *ctx)
{ return on_xmit_entry(cookie_fn(ctx), (struct sk_buff *)KARG0(ctx), (struct ip_vs_conn *)KARG1(ctx), INDIRECT); }

/* The transmitters and the protocols' scheduling entries in one
 * program, for kprobe-multi's one link to them all (multiFirst in
 * attach_linux.go): the kernel looks a link's symbols up through all of
 * its own, a link at a time. */
SEC("kprobe") int kprobe_ipvs_entry(struct pt_regs *ctx)
{
	__u16 fn = cookie_fn(ctx);
	if (is_xmit(fn))
		return on_xmit_entry(fn, (struct sk_buff *)KARG0(ctx), (struct ip_vs_conn *)KARG1(ctx), INDIRECT);
	return on_current(fn);
}

XMIT(ip_vs_nat_xmit, FN_IP_VS_NAT_XMIT)
XMIT(ip_vs_dr_xmit, FN_IP_VS_DR_XMIT)
XMIT(ip_vs_tunnel_xmit, FN_IP_VS_TUNNEL_XMIT)
XMIT(ip_vs_bypass_xmit, FN_IP_VS_BYPASS_XMIT)
XMIT(ip_vs_null_xmit, FN_IP_VS_NULL_XMIT)
XMIT(ip_vs_nat_xmit_v6, FN_IP_VS_NAT_XMIT_V6)
XMIT(ip_vs_dr_xmit_v6, FN_IP_VS_DR_XMIT_V6)
XMIT(ip_vs_tunnel_xmit_v6, FN_IP_VS_TUNNEL_XMIT_V6)
XMIT(ip_vs_bypass_xmit_v6, FN_IP_VS_BYPASS_XMIT_V6)

/* ---- Tracepoints: tp_btf, or raw_tp where BTF tracing is refused. ---- */

/* TP defines both flavours of a tracepoint's program around fn(ctx,
 * direct): tp_btf's arguments are typed, raw_tp's are not. */
#define TP(tp, fn)                                                             \
	SEC("tp_btf/" #tp) int tp_btf_##tp(__u64 *ctx)                         \
	{ return fn(ctx, DIRECT); }                                            \
	SEC("raw_tp/" #tp) int raw_tp_##tp(__u64 *ctx)                         \
	{ return fn(ctx, INDIRECT); }

static __always_inline int on_receive(__u64 *ctx, const int direct)
{
	return on_skb(FN_NETIF_RECEIVE_SKB, (struct sk_buff *)ctx[0], 1, direct);
}

static __always_inline int on_queue(__u64 *ctx, const int direct)
{
	return on_skb(FN_NET_DEV_QUEUE, (struct sk_buff *)ctx[0], 0, direct);
}

TP(netif_receive_skb, on_receive)
TP(net_dev_queue, on_queue)

/* kfree_skb(skb, location, reason): a drop. The skb is gone: forget it. */
static __always_inline int on_drop(__u64 *ctx, const int direct)
{
	struct sk_buff *skb = (struct sk_buff *)ctx[0];
	__u64 key = (__u64)skb;
	struct hop_args a = {.fn = FN_KFREE_SKB, .skb = skb, .hook = NO_HOOK, .flags = EV_DROP,
			     .location = ctx[1], .reason = (__u32)ctx[2]};
	hop(&a, direct, direct, SENDS_PKT);
	/* A lookup first: deleting takes the bucket's lock even for a key
	 * that is not there, and this fires for every freed packet. */
	if (!f_all && traced_lookup(&key))
		traced_delete(&key);
	return 0;
}

TP(kfree_skb, on_drop)

/* consume_skb(skb): freed after use; its address may come back as
 * another packet. */
static __always_inline int on_consume(__u64 *ctx, const int direct)
{
	__u64 key = ctx[0];
	/* Nothing to forget while nothing is traced; a tunnel transmitter's
	 * replaced skb was not traced either. */
	if (f_all || !any_traced())
		return 0;
	/* A tunnel transmitter frees the skb it replaced before the new one
	 * is seen: keep it until the hook that called the transmitter returns. */
	struct frame *f = top_frame();
	if (f && is_tunnel_xmit(f->fn) && f->skb == key) {
		f->replaced = 1;
		return 0;
	}
	if (traced_lookup(&key))
		traced_delete(&key);
	return 0;
}

TP(consume_skb, on_consume)
