//go:build 386 || amd64

package probes

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// The hand-written rawEvent must read exactly what bpf2go's traceEvent
// (generated from struct event in bpf/trace.c) lays out.
func TestRawEventMatchesTheBPFStruct(t *testing.T) {
	if got, want := binary.Size(rawEvent{}), binary.Size(traceEvent{}); got != want {
		t.Fatalf("rawEvent is %d bytes, struct event %d", got, want)
	}
	var te traceEvent
	te.Ts, te.Skb, te.PrevSkb, te.Location, te.Ret = 1, 2, 3, 4, -5
	te.Netns, te.Ifindex, te.Cpu, te.Reason = 6, 7, 8, 9
	te.Fn, te.Flags, te.Hook, te.EntryFn, te.PktLen = 10, 11, 12, 29, 13
	te.Ifname[0], te.Msg[31] = 'e', 'm'
	te.Conn.Caddr[0], te.Conn.Daddr[15], te.Conn.Cport, te.Conn.Dport, te.Conn.State, te.Conn.Flags = 14, 15, 16, 17, 18, 19
	te.Dest.Addr[3], te.Dest.Port, te.Dest.Weight, te.Dest.ConnFlags = 20, 21, -22, 23
	te.Svc.Addr[1], te.Svc.Port, te.Svc.Fwmark, te.Svc.Sched[15] = 24, 25, 26, 'z'
	te.Pkt[0], te.Pkt[127], te.EntryAgo = 27, 28, 30
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, &te); err != nil {
		t.Fatal(err)
	}
	var r rawEvent
	if _, err := binary.Decode(buf.Bytes(), binary.LittleEndian, &r); err != nil {
		t.Fatal(err)
	}
	if r.TS != 1 || r.SKB != 2 || r.PrevSKB != 3 || r.Location != 4 || r.Ret != -5 || r.NetNS != 6 || r.Ifindex != 7 ||
		r.CPU != 8 || r.Reason != 9 || r.Fn != 10 || r.Flags != 11 || r.Hook != 12 || r.EntryFn != 29 || r.PktLen != 13 ||
		r.Ifname[0] != 'e' || r.Msg[31] != 'm' ||
		r.Conn.Caddr[0] != 14 || r.Conn.Daddr[15] != 15 || r.Conn.Cport != 16 || r.Conn.Dport != 17 || r.Conn.State != 18 || r.Conn.Flags != 19 ||
		r.Dest.Addr[3] != 20 || r.Dest.Port != 21 || r.Dest.Weight != -22 || r.Dest.ConnFlags != 23 ||
		r.Svc.Addr[1] != 24 || r.Svc.Port != 25 || r.Svc.FWMark != 26 || r.Svc.Sched[15] != 'z' || r.Pkt[0] != 27 || r.Pkt[127] != 28 || r.EntryAgo != 30 {
		t.Errorf("rawEvent read %+v", r)
	}
}

// fnID and the event flags mirror the C enums.
func TestEnumsMatchTheBPFObject(t *testing.T) {
	pairs := []struct {
		c   traceFnId
		go_ fnID
	}{
		{traceFnIdFN_NETIF_RECEIVE_SKB, fnNetifReceiveSKB}, {traceFnIdFN_KFREE_SKB, fnKfreeSKB},
		{traceFnIdFN_IP6LOCAL_OUT, fnIP6LocalOut}, {traceFnIdFN_IP_VS_IN_HOOK, fnIPVSInHook},
		{traceFnIdFN_IP_VS_CONN_OUT_GET, fnIPVSConnOutGet}, {traceFnIdFN_IP_VS_SCHEDULER_ERR, fnIPVSSchedulerErr},
		{traceFnIdFN_IP_VS_NAT_XMIT, fnIPVSNATXmit}, {traceFnIdFN_IP_VS_BYPASS_XMIT_V6, fnIPVSBypassXmitV6},
		{traceFnIdFN_MAX, fnMax},
	}
	for _, p := range pairs {
		if uint16(p.c) != uint16(p.go_) {
			t.Errorf("%v is %d in C, %d in Go", p.go_, p.c, p.go_)
		}
	}
	if len(targets) != int(fnMax)-1 {
		t.Errorf("%d targets, want one per fn_id (%d)", len(targets), fnMax-1)
	}
	flags := map[traceEventFlag]int{
		traceEventFlagEV_EXIT: evExit, traceEventFlagEV_CONN: evConn, traceEventFlagEV_DEST: evDest, traceEventFlagEV_SVC: evSvc,
		traceEventFlagEV_PKT: evPkt, traceEventFlagEV_DROP: evDrop, traceEventFlagEV_NOCONN: evNoConn, traceEventFlagEV_HOOK: evHook,
		traceEventFlagEV_ENTRY: evEntry,
	}
	for c, g := range flags {
		if int(c) != g {
			t.Errorf("event flag %d in C is %d in Go", c, g)
		}
	}
}

// Every target has the programs its kind needs, for every backend.
func TestEveryTargetHasItsPrograms(t *testing.T) {
	spec, err := loadTrace()
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		var want []string
		switch tg.kind {
		case kindTracepoint:
			want = []string{"tp_btf_" + tg.name, "raw_tp_" + tg.name}
		case kindEntry, kindExit, kindEntryExit:
			for _, b := range []Backend{BackendFentry, BackendKprobe, BackendKprobeMulti} {
				names := programNames(tg, b)
				if n := map[targetKind]int{kindEntry: 1, kindExit: 1, kindEntryExit: 2}[tg.kind]; len(names) != n {
					t.Errorf("%s, %s: programs %v, want %d", tg.name, b, names, n)
				}
				want = append(want, names...)
			}
		}
		for _, name := range want {
			if _, ok := spec.Programs[name]; !ok {
				t.Errorf("%s: no program %s", tg.name, name)
			}
		}
	}
	for _, v := range []string{"f_all", "f_vip_af", "f_vip", "f_port", "f_client_af", "f_client_net", "f_client_mask", "f_rs_af", "f_rs", "f_proto", "f_netns", "f_ifindex"} {
		if _, ok := spec.Variables[v]; !ok {
			t.Errorf("no filter constant %s", v)
		}
	}
}
