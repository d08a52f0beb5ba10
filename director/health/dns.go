package health

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// DNSCheck passes when a DNS server answers a query over UDP with
// NOERROR and at least one answer record (keepalived's DNS_CHECK, which
// also sets Recursion Desired).
type DNSCheck struct {
	// Address is the server; port 0 means 53.
	Address netip.AddrPort
	// Name is the name to query; empty means "." (the root).
	Name string
	// Type is the record type: A, AAAA, CNAME, MX, NS, PTR, SOA, SRV or
	// TXT; empty means SOA, keepalived's default.
	Type string
	// Timeout bounds the query; zero means DefaultTimeout.
	Timeout time.Duration
}

// NewChecker implements Spec.
func (c DNSCheck) NewChecker(env Env) (Checker, error) { return NewDNSChecker(c, env) }

// DNSChecker runs a DNSCheck.
type DNSChecker struct {
	env     Env
	target  string
	name    dnsmessage.Name
	qtype   dnsmessage.Type
	timeout time.Duration
}

var dnsTypes = map[string]dnsmessage.Type{
	"A": dnsmessage.TypeA, "AAAA": dnsmessage.TypeAAAA, "CNAME": dnsmessage.TypeCNAME,
	"MX": dnsmessage.TypeMX, "NS": dnsmessage.TypeNS, "PTR": dnsmessage.TypePTR,
	"SOA": dnsmessage.TypeSOA, "SRV": dnsmessage.TypeSRV, "TXT": dnsmessage.TypeTXT,
}

// NewDNSChecker validates spec and returns its checker.
func NewDNSChecker(spec DNSCheck, env Env) (*DNSChecker, error) {
	addr := spec.Address
	if addr.IsValid() && addr.Port() == 0 {
		addr = netip.AddrPortFrom(addr.Addr(), 53)
	}
	c := &DNSChecker{env: env.withDefaults(), target: addr.String(), timeout: timeoutOrDefault(spec.Timeout)}
	if !addr.IsValid() {
		return nil, errors.New("dns check: need a server address")
	}
	typ := strings.ToUpper(spec.Type)
	if typ == "" {
		typ = "SOA"
	}
	var ok bool
	if c.qtype, ok = dnsTypes[typ]; !ok {
		return nil, fmt.Errorf("dns check of %s: type %q: want one of A, AAAA, CNAME, MX, NS, PTR, SOA, SRV, TXT", c.target, spec.Type)
	}
	name := spec.Name
	if name == "" {
		name = "."
	}
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	var err error
	if c.name, err = dnsmessage.NewName(name); err != nil {
		return nil, fmt.Errorf("dns check of %s: name %q: %w", c.target, spec.Name, err)
	}
	// Build a query once, to reject names the builder refuses (empty
	// labels, labels over 63 bytes) now rather than at every check.
	if _, err := c.query(0); err != nil {
		return nil, fmt.Errorf("dns check of %s: name %q: %w", c.target, spec.Name, err)
	}
	return c, nil
}

func (c *DNSChecker) query(id uint16) ([]byte, error) {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), dnsmessage.Header{ID: id, RecursionDesired: true})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(dnsmessage.Question{Name: c.name, Type: c.qtype, Class: dnsmessage.ClassINET}); err != nil {
		return nil, err
	}
	return b.Finish()
}

// Check sends the query and waits for the answer with the query's ID.
func (c *DNSChecker) Check(ctx context.Context) Result {
	a, cancel := begin(ctx, c.timeout, c.target)
	defer cancel()
	msg, err := c.ask(a)
	if err != nil {
		return failed(a.start, err)
	}
	return passed(a.start, "%s", msg)
}

func (c *DNSChecker) ask(a *attempt) (string, error) {
	id := uint16(rand.Uint32())
	q, err := c.query(id)
	if err != nil {
		return "", newError(nil, err, "building DNS query for %s: %v", c.name, err)
	}
	conn, err := c.env.Dialer.DialContext(a.ctx, "udp", c.target)
	if err != nil {
		return "", a.fail("connect", err)
	}
	defer conn.Close()
	stop := a.watch(conn)
	defer stop()
	if _, err := conn.Write(q); err != nil {
		return "", a.fail("sending DNS query to", err)
	}
	buf := make([]byte, 1232) // the EDNS-era safe UDP size; longer answers come truncated
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return "", a.fail("reading DNS answer from", err)
		}
		answers, hdr, ok, err := c.parse(buf[:n], id)
		if !ok {
			continue // a stray or late datagram: keep waiting for ours
		}
		if err != nil {
			return "", newError(ErrBadResponse, err, "malformed DNS answer from %s: %v", c.target, err)
		}
		q := fmt.Sprintf("%s %s", strings.TrimPrefix(c.qtype.String(), "Type"), c.name)
		switch {
		case hdr.RCode != dnsmessage.RCodeSuccess:
			return "", newError(ErrDNSAnswer, nil, "DNS %s from %s for %s", rcodeName(hdr.RCode), c.target, q)
		case answers == 0 && hdr.Truncated:
			return "", newError(ErrDNSAnswer, nil, "DNS answer from %s for %s truncated with no records", c.target, q)
		case answers == 0:
			return "", newError(ErrDNSAnswer, nil, "DNS NOERROR from %s for %s with no answer records", c.target, q)
		}
		return fmt.Sprintf("DNS NOERROR from %s for %s: %d answer %s", c.target, q, answers, plural(answers, "record", "records")), nil
	}
}

// parse reads an answer; ok is false when msg is not the answer to
// query id (too short, another ID, or not a response).
func (c *DNSChecker) parse(msg []byte, id uint16) (answers int, hdr dnsmessage.Header, ok bool, err error) {
	var p dnsmessage.Parser
	hdr, err = p.Start(msg)
	if err != nil || hdr.ID != id || !hdr.Response {
		return 0, hdr, false, nil
	}
	if err := p.SkipAllQuestions(); err != nil {
		return 0, hdr, true, err
	}
	for {
		_, err := p.AnswerHeader()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			return answers, hdr, true, nil
		}
		if err != nil {
			return answers, hdr, true, err
		}
		if err := p.SkipAnswer(); err != nil {
			return answers, hdr, true, err
		}
		answers++
	}
}

func rcodeName(r dnsmessage.RCode) string {
	switch r {
	case dnsmessage.RCodeFormatError:
		return "FORMERR"
	case dnsmessage.RCodeServerFailure:
		return "SERVFAIL"
	case dnsmessage.RCodeNameError:
		return "NXDOMAIN"
	case dnsmessage.RCodeNotImplemented:
		return "NOTIMP"
	case dnsmessage.RCodeRefused:
		return "REFUSED"
	}
	return fmt.Sprintf("RCODE %d", r)
}
