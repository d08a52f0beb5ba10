package probes

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// DropReasons reads the kernel's enum skb_drop_reason from its BTF and
// names each value without the SKB_DROP_REASON_ prefix ("NO_SOCKET",
// "NETFILTER_DROP"). The numbers differ between kernels (NETFILTER_DROP
// is 7 on 6.1 and 11 on 6.12), so a trace names reasons from the BTF of
// the kernel it runs on.
func DropReasons(spec *btf.Spec) (map[uint32]string, error) {
	var e *btf.Enum
	if err := spec.TypeByName("skb_drop_reason", &e); err != nil {
		return nil, fmt.Errorf("finding enum skb_drop_reason in the kernel's BTF: %w", err)
	}
	if len(e.Values) == 0 {
		return nil, errors.New("finding enum skb_drop_reason in the kernel's BTF: the enum is empty")
	}
	names := make(map[uint32]string, len(e.Values))
	for _, v := range e.Values {
		n := strings.TrimPrefix(v.Name, "SKB_DROP_REASON_")
		if n == "MAX" || strings.HasPrefix(n, "SUBSYS_") {
			continue
		}
		if _, dup := names[uint32(v.Value)]; !dup {
			names[uint32(v.Value)] = n
		}
	}
	return names, nil
}
