package surgewall

/*
#include "surgewall.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors, for errors.Is. Errors returned by this package wrap or match one of them.
var (
	// ErrOpen matches every breaker rejection, whatever the state that refused: OPEN,
	// HALF_OPEN with every probe slot taken (ErrHalfOpenFull as well) and FORCED_OPEN
	// (ErrForcedOpen as well), of a Breaker or of a KeyedBreaker's key. It is the check for
	// "was the call refused by a breaker?" (as failsafe-go's circuitbreaker.ErrOpen);
	// RejectedError.State says which state it was.
	ErrOpen = errors.New("surgewall: circuit breaker is open")
	// ErrHalfOpenFull: the breaker is HALF_OPEN and all its probe slots are taken (the
	// rejection matches ErrOpen too).
	ErrHalfOpenFull = errors.New("surgewall: circuit breaker is half-open and all probe slots are taken")
	// ErrForcedOpen: the breaker was opened by hand (the rejection matches ErrOpen too).
	ErrForcedOpen = errors.New("surgewall: circuit breaker was forced open")
	// ErrBulkheadFull matches every bulkhead refusal (a *BulkheadFullError): no free slot at
	// once, none within its max wait (ErrTimeout as well), or none before the caller's context
	// ended (its error, context.DeadlineExceeded or context.Canceled, as well). It is the
	// check for "was the call shed by a bulkhead?".
	ErrBulkheadFull = errors.New("surgewall: bulkhead is full")
	// ErrTimeout: a bulkhead's max wait (WithMaxWait) ran out (the refusal matches
	// ErrBulkheadFull too).
	ErrTimeout = errors.New("surgewall: wait timed out")
	// ErrRetriesExhausted: a retry gave up; the *RetryError carries the last attempt's error.
	ErrRetriesExhausted = errors.New("surgewall: retries exhausted")
	// ErrRetryBudgetExhausted: a retry budget refused a retry.
	ErrRetryBudgetExhausted = errors.New("surgewall: retry budget exhausted")
	// ErrRegistryFull: a keyed registry (KeyedBreaker, KeyedBulkhead, BreakerRegistry) is at
	// its key cap and refuses a new key (a *RegistryFullError for the keyed ones).
	ErrRegistryFull = errors.New("surgewall: registry is full")
	// ErrNotFound: a keyed registry does not hold the key (never used, or evicted). The
	// KeyedBreaker's Get and State report it as ok == false instead.
	ErrNotFound = errors.New("surgewall: key not found")
	// ErrClosed: the object was closed: its calls, permits and changes return it (its
	// observers keep reading, see the package documentation).
	ErrClosed = errors.New("surgewall: object is closed")
	// ErrInvalidConfig: a configuration was rejected; a *ConfigError names the field.
	ErrInvalidConfig = errors.New("surgewall: invalid configuration")
	// ErrInvalidArgument: an argument is out of range (negative duration, NaN, ...).
	ErrInvalidArgument = errors.New("surgewall: invalid argument")
	// ErrInvalidTransition: a manual transition that is not allowed (CLOSED -> HALF_OPEN).
	ErrInvalidTransition = errors.New("surgewall: invalid transition")
	// ErrLateResult: the permit is from an older generation; the result was dropped and
	// counted in Metrics().LateResults.
	ErrLateResult = errors.New("surgewall: late result dropped")
	// ErrUnexpectedResult: no outstanding permit explains the result (a probe recorded twice).
	ErrUnexpectedResult = errors.New("surgewall: unexpected result")
	// ErrInvalidPermit: a permit this breaker did not issue (zero value, or another breaker's).
	ErrInvalidPermit = errors.New("surgewall: invalid permit")
	// ErrPermitUsed: a permit's outcome was already reported (two-step done called twice).
	ErrPermitUsed = errors.New("surgewall: permit already used")
	// ErrLimitExceeded: too many live handles of one kind.
	ErrLimitExceeded = errors.New("surgewall: limit exceeded")
	// ErrInternal: the library caught a panic or returned a status this binding does not
	// know; please report it.
	ErrInternal = errors.New("surgewall: internal error")
	// ErrAlreadyRunning: an agent already runs in this process (one per process).
	ErrAlreadyRunning = errors.New("surgewall: the agent is already running")
	// ErrUnsupported: the linked library was built without the feature (the agent).
	ErrUnsupported = errors.New("surgewall: not supported by this build of the library")
	// ErrIO: an operating-system call failed (an address that cannot be bound).
	ErrIO = errors.New("surgewall: I/O error")
	// ErrVersionMismatch: the linked library is not the version of the header it was
	// compiled against (rebuild with `make -C bindings/go lib`).
	ErrVersionMismatch = errors.New("surgewall: header and library versions differ")
)

// RejectedError is returned when a breaker refuses a call. It matches ErrOpen, whatever the
// state, and the reason: ErrHalfOpenFull or ErrForcedOpen. A KeyedBreaker's rejections are
// RejectedErrors too, naming the key.
type RejectedError struct {
	// Breaker is the breaker's name ("" for a KeyedBreaker).
	Breaker string
	// State is the breaker state that refused the call.
	State State
	// RetryAfter is how long until the breaker may admit again; Forever for an indefinite
	// forced open.
	RetryAfter time.Duration
	// Keyed is true for a KeyedBreaker's rejection. Key is then the string key of the call
	// ("" when it was made with a uint64 key) and KeyID its 64-bit key (the uint64 key, or
	// KeyedBreaker.KeyOf(Key)): the Key of the key's events.
	Keyed  bool
	Key    string
	KeyID  uint64
	reason error
}

func (e *RejectedError) Error() string {
	who := fmt.Sprintf("breaker %q", e.Breaker)
	if e.Keyed {
		who = keyName(e.Key, e.KeyID)
	}
	if e.RetryAfter == Forever {
		return fmt.Sprintf("%v (%s)", e.reason, who)
	}
	return fmt.Sprintf("%v (%s, retry after %v)", e.reason, who, e.RetryAfter)
}

// keyName describes a keyed breaker's key for messages.
func keyName(key string, id uint64) string {
	if key != "" {
		return fmt.Sprintf("key %q", key)
	}
	return fmt.Sprintf("key %#x", id)
}

// Unwrap returns the reason sentinel.
func (e *RejectedError) Unwrap() error { return e.reason }

// Is reports whether target is ErrOpen (every rejection) or the reason.
func (e *RejectedError) Is(target error) bool {
	return target == ErrOpen || target == e.reason
}

// RegistryFullError is returned when a KeyedBreaker or a KeyedBulkhead at its key cap
// (WithMaxKeys, without WithSharedOverflow) refuses a key it does not hold. It matches
// ErrRegistryFull, neither ErrOpen nor ErrBulkheadFull: no breaker state and no slot limit
// refused the call, the cap did (and a WithFallback fallback does not run).
type RegistryFullError struct {
	// Key is the string key of the call ("" for a uint64 key); KeyID its 64-bit key.
	Key   string
	KeyID uint64
}

func (e *RegistryFullError) Error() string {
	return fmt.Sprintf("%v (%s is new)", ErrRegistryFull, keyName(e.Key, e.KeyID))
}

// Unwrap returns ErrRegistryFull.
func (e *RegistryFullError) Unwrap() error { return ErrRegistryFull }

// ConfigError is a rejected configuration: which field and why. It matches ErrInvalidConfig.
type ConfigError struct {
	// Field is the configuration field ("failure_rate", "minimum_calls", ...), or "".
	Field string
	// Message says what is wrong.
	Message string
}

func (e *ConfigError) Error() string {
	if e.Field == "" {
		return "surgewall: invalid configuration: " + e.Message
	}
	return "surgewall: invalid configuration: " + e.Field + ": " + e.Message
}

// Unwrap returns ErrInvalidConfig.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// StatusError is a status the C library returned, with the operation that returned it. It
// unwraps to the matching sentinel (ErrClosed, ErrInvalidArgument, ...).
type StatusError struct {
	Op   string
	Code int32
}

func (e *StatusError) Error() string {
	return "surgewall: " + e.Op + ": " + C.GoString(C.surgewall_status_str(C.int32_t(e.Code)))
}

// Unwrap returns the sentinel for the status code.
func (e *StatusError) Unwrap() error { return sentinel(e.Code) }

func sentinel(code int32) error {
	switch code {
	case C.SURGEWALL_NULL_ARG, C.SURGEWALL_INVALID_ARG, C.SURGEWALL_INVALID_UTF8:
		return ErrInvalidArgument
	case C.SURGEWALL_INVALID_HANDLE:
		return ErrClosed
	case C.SURGEWALL_INVALID_CONFIG:
		return ErrInvalidConfig
	case C.SURGEWALL_INVALID_TRANSITION:
		return ErrInvalidTransition
	case C.SURGEWALL_INVALID_PERMIT:
		return ErrInvalidPermit
	case C.SURGEWALL_UNEXPECTED_RESULT:
		return ErrUnexpectedResult
	case C.SURGEWALL_LIMIT_EXCEEDED:
		return ErrLimitExceeded
	case C.SURGEWALL_REJECTED_OPEN:
		return ErrOpen
	case C.SURGEWALL_REJECTED_HALF_OPEN:
		return ErrHalfOpenFull
	case C.SURGEWALL_REJECTED_FORCED_OPEN:
		return ErrForcedOpen
	case C.SURGEWALL_BULKHEAD_FULL:
		return ErrBulkheadFull
	case C.SURGEWALL_TIMEOUT:
		return ErrTimeout
	case C.SURGEWALL_RETRIES_EXHAUSTED:
		return ErrRetriesExhausted
	case C.SURGEWALL_RETRY_BUDGET_EXHAUSTED:
		return ErrRetryBudgetExhausted
	case C.SURGEWALL_LATE_RESULT:
		return ErrLateResult
	case C.SURGEWALL_REGISTRY_FULL:
		return ErrRegistryFull
	case C.SURGEWALL_NOT_FOUND:
		return ErrNotFound
	case C.SURGEWALL_ALREADY_RUNNING:
		return ErrAlreadyRunning
	case C.SURGEWALL_UNSUPPORTED:
		return ErrUnsupported
	case C.SURGEWALL_IO_ERROR:
		return ErrIO
	default:
		return ErrInternal
	}
}

// statusErr maps a status to nil (OK) or a *StatusError.
func statusErr(op string, st C.surgewall_status) error {
	if st == C.SURGEWALL_OK {
		return nil
	}
	return &StatusError{Op: op, Code: int32(st)}
}

// mustRead checks the status of an observer's library call (State, Metrics, KeyOf, ...).
// Observers read a handle that lives as long as its object, closed or not, so the call
// cannot fail but through a bug in the library (a caught panic) or an object not made by
// its constructor (a zero value): then it panics with the *StatusError, since an observer
// has no error to return and must not make a value up.
func mustRead(op string, st C.surgewall_status) {
	if err := statusErr(op, st); err != nil {
		panic(err)
	}
}

// constructorErr turns a constructor's status and optional error object into a Go error
// (a *ConfigError for SURGEWALL_INVALID_CONFIG), freeing the error object.
func constructorErr(op string, st C.surgewall_status, cerr *C.surgewall_error) error {
	if cerr == nil {
		return statusErr(op, st)
	}
	defer C.surgewall_error_free(cerr)
	field := C.GoString(C.surgewall_error_field(cerr))
	msg := C.GoString(C.surgewall_error_message(cerr))
	if st == C.SURGEWALL_INVALID_CONFIG {
		return &ConfigError{Field: field, Message: msg}
	}
	return fmt.Errorf("%w: %s: %s", &StatusError{Op: op, Code: int32(st)}, field, msg)
}
