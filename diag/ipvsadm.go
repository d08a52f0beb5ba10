package diag

import (
	"net/netip"
	"strconv"

	"github.com/lvskit/lvskit/director/ipvs"
)

// ipvsadmService turns a service key ("TCP 10.0.0.1:80", as the kernel's
// and lvsd's tables name it) into ipvsadm's service arguments ("-t
// 10.0.0.1:80"), for commands in a fix. The key is parsed by
// ipvs.ParseServiceKey, the one parser of keys; one it cannot parse is
// passed on as it is after -t.
func ipvsadmService(key string) string {
	k, err := ipvs.ParseServiceKey(key)
	if err != nil {
		return "-t " + key
	}
	if k.IsFWMark() {
		return "-f " + strconv.FormatUint(uint64(k.FWMark), 10)
	}
	flag := "-t"
	switch k.Protocol {
	case ipvs.UDP:
		flag = "-u"
	case ipvs.SCTP:
		flag = "--sctp-service"
	}
	return flag + " " + netip.AddrPortFrom(k.Address, k.Port).String()
}
