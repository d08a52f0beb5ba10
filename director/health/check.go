package health

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// DefaultTimeout is a check's timeout when its spec leaves it zero.
const DefaultTimeout = 3 * time.Second

// Checker probes one target once.
type Checker interface {
	// Check runs the probe and reports the outcome. It returns when the
	// probe ends, when the check's own timeout expires or when ctx is
	// done, whichever is first; it never blocks past ctx's deadline.
	// Check is safe for concurrent use.
	Check(ctx context.Context) Result
}

// Spec describes a check: TCPCheck, HTTPCheck, ScriptCheck or DNSCheck,
// or a caller's own type. Specs are compared with reflect.DeepEqual to
// decide whether a target's check changed on Update, so they should be
// plain values.
type Spec interface {
	// NewChecker validates the spec and builds its Checker, which talks
	// to the network through env.
	NewChecker(env Env) (Checker, error)
}

// Dialer opens connections for checks. *net.Dialer implements it; tests
// pass one that dials from another network namespace.
type Dialer interface {
	// DialContext connects to address ("10.0.0.2:80") on network
	// ("tcp", "udp") until ctx is done.
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Env holds what checkers talk to.
type Env struct {
	// Dialer opens the checks' connections; nil means a *net.Dialer
	// without TCP keep-alives (a check's connection lives for one
	// request; enabling them costs four setsockopt calls per check).
	Dialer Dialer
	// Logger is for checkers that log (a Spec of the caller's own);
	// the built-in ones report through their Results only. Nil discards.
	Logger *slog.Logger

	// defaultDialer is set when Dialer was nil: the Scheduler's event
	// loop may then make the connections itself.
	defaultDialer bool
}

func (env Env) withDefaults() Env {
	if env.Dialer == nil {
		env.Dialer = &net.Dialer{KeepAlive: -1}
		env.defaultDialer = true
	}
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	return env
}

// NewChecker builds the checker for spec with env; it is spec.NewChecker
// with a nil check.
func NewChecker(spec Spec, env Env) (Checker, error) {
	if spec == nil {
		return nil, errors.New("no check given")
	}
	return spec.NewChecker(env)
}

func timeoutOrDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultTimeout
	}
	return d
}

// attempt is one run of a check: its start, its deadline-bound context
// and the name of its target for messages.
type attempt struct {
	parent context.Context
	ctx    context.Context
	start  time.Time
	budget time.Duration // how long the check may take, for messages
	target string
}

// begin starts an attempt that ends after timeout or at parent's
// deadline, whichever is first.
func begin(parent context.Context, timeout time.Duration, target string) (*attempt, context.CancelFunc) {
	start := time.Now()
	budget := timeout
	if d, ok := parent.Deadline(); ok && d.Sub(start) < budget {
		budget = max(d.Sub(start), 0)
	}
	ctx, cancel := context.WithTimeout(parent, budget)
	return &attempt{parent: parent, ctx: ctx, start: start, budget: budget, target: target}, cancel
}

// deadline is when the attempt must end.
func (a *attempt) deadline() time.Time {
	d, _ := a.ctx.Deadline()
	return d
}

// watch applies the attempt's deadline to conn and makes a cancellation
// of the context interrupt blocked reads and writes at once. Call the
// returned function when done with conn.
func (a *attempt) watch(conn net.Conn) (stop func() bool) {
	_ = conn.SetDeadline(a.deadline())
	return context.AfterFunc(a.ctx, func() {
		_ = conn.SetDeadline(time.Unix(1, 0))
	})
}

// fail turns err, from the step op ("connect", "reading body from"), into
// a check error. Timeouts and cancellations become "timeout after 1s
// reading body from 10.0.0.2:80" and "canceled ..."; other errors keep
// their root cause: "connect 10.0.0.2:80: connection refused".
func (a *attempt) fail(op string, err error) error {
	if a.parent.Err() != nil && !errors.Is(a.parent.Err(), context.DeadlineExceeded) {
		return newError(ErrCanceled, err, "canceled while %s %s", progressive(op), a.target)
	}
	if isTimeout(err) || a.ctx.Err() != nil {
		return newError(ErrTimeout, err, "timeout after %s %s %s", a.budget, progressive(op), a.target)
	}
	return newError(nil, err, "%s %s: %s", op, a.target, rootCause(err))
}

// progressive turns a step name into the form used after "timeout
// after 1s": "connect" -> "connecting to".
func progressive(op string) string {
	switch op {
	case "connect":
		return "connecting to"
	case "TLS handshake with":
		return "in TLS handshake with"
	}
	return op
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// rootCause describes err without the layers that repeat what the
// message already says ("dial tcp 10.0.0.2:80: connect: ").
func rootCause(err error) string {
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		return errno.Error()
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the server"
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		return opErr.Err.Error()
	}
	return err.Error()
}

// validHeaderValue reports whether s may go into a request line or a
// header without breaking the request.
func validHeaderValue(s string) bool {
	return !strings.ContainsAny(s, "\r\n\x00")
}
