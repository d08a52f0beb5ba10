package health

import (
	"errors"
	"fmt"
	"time"
)

// State is a real server's health as its rise/fall Machine sees it.
type State uint8

const (
	// StateUnknown is the state of a target that has not been checked
	// yet, when its Policy starts it neither up nor down.
	StateUnknown State = iota
	// StateUp means the real server should receive traffic.
	StateUp
	// StateDown means the real server should be quiesced or removed.
	StateDown
)

// String returns "unknown", "up" or "down".
func (s State) String() string {
	switch s {
	case StateUnknown:
		return "unknown"
	case StateUp:
		return "up"
	case StateDown:
		return "down"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Result is the outcome of one check of one target.
type Result struct {
	// Up is true when the check passed.
	Up bool
	// Reason says what happened, for people: "HTTP 200 from
	// 10.0.0.2:80", "connect 10.0.0.2:80: connection refused",
	// "timeout after 1s reading body from 10.0.0.2:80".
	Reason string
	// Err is why the check failed (nil when Up). Callers may branch on
	// ErrTimeout, ErrCanceled, ErrUnexpectedStatus, ErrDigestMismatch,
	// ErrBodyTooLarge, ErrScriptFailed, ErrDNSAnswer, or on the
	// underlying syscall error (errors.Is(err, syscall.ECONNREFUSED)).
	Err error
	// Time is when the check started.
	Time time.Time
	// Duration is how long the check took.
	Duration time.Duration
}

// Sentinel errors that a Result's Err may match with errors.Is.
var (
	// ErrTimeout: the check did not finish within its timeout (or the
	// context's deadline).
	ErrTimeout = errors.New("check timed out")
	// ErrCanceled: the check's context was canceled (the target was
	// removed or the scheduler stopped).
	ErrCanceled = errors.New("check canceled")
	// ErrUnexpectedStatus: an HTTP status code outside the expected ones.
	ErrUnexpectedStatus = errors.New("unexpected HTTP status")
	// ErrDigestMismatch: the body's MD5 digest is not the expected one.
	ErrDigestMismatch = errors.New("body digest mismatch")
	// ErrBodyTooLarge: the body is larger than the check's cap, so its
	// digest cannot be computed.
	ErrBodyTooLarge = errors.New("body larger than the cap")
	// ErrBadResponse: the server's answer does not parse (HTTP or DNS).
	ErrBadResponse = errors.New("malformed response")
	// ErrScriptFailed: the script exited with a status other than 0.
	ErrScriptFailed = errors.New("script failed")
	// ErrDNSAnswer: the DNS answer is not NOERROR with at least one
	// answer record.
	ErrDNSAnswer = errors.New("unusable DNS answer")
)

// checkError is a failure with a message fit for Result.Reason, a
// sentinel kind for errors.Is, and the underlying cause for errors.As.
type checkError struct {
	msg   string
	kind  error
	cause error
}

func (e *checkError) Error() string        { return e.msg }
func (e *checkError) Is(target error) bool { return e.kind != nil && target == e.kind }
func (e *checkError) Unwrap() error        { return e.cause }
func newError(kind, cause error, format string, args ...any) *checkError {
	return &checkError{msg: fmt.Sprintf(format, args...), kind: kind, cause: cause}
}

// passed returns an up Result that started at start.
func passed(start time.Time, format string, args ...any) Result {
	return Result{Up: true, Reason: fmt.Sprintf(format, args...), Time: start, Duration: time.Since(start)}
}

// failed returns a down Result for err that started at start.
func failed(start time.Time, err error) Result {
	return Result{Reason: err.Error(), Err: err, Time: start, Duration: time.Since(start)}
}
