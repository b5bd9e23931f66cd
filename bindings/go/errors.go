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
	// ErrRejected matches every breaker rejection: ErrOpen, ErrHalfOpenFull, ErrForcedOpen.
	ErrRejected = errors.New("surgewall: call rejected by the circuit breaker")
	// ErrOpen: the breaker is OPEN (also matched by a forced open, see ErrForcedOpen).
	ErrOpen = errors.New("surgewall: circuit breaker is open")
	// ErrHalfOpenFull: the breaker is HALF_OPEN and all its probe slots are taken. It does
	// not match ErrOpen (the breaker is probing, not refusing), but it matches ErrRejected.
	ErrHalfOpenFull = errors.New("surgewall: circuit breaker is half-open and all probe slots are taken")
	// ErrForcedOpen: the breaker was opened by hand. errors.Is(err, ErrOpen) is true as well.
	ErrForcedOpen = errors.New("surgewall: circuit breaker was forced open")
	// ErrBulkheadFull: the bulkhead has no free slot (and no wait was allowed or it ran out).
	ErrBulkheadFull = errors.New("surgewall: bulkhead is full")
	// ErrTimeout: a bounded wait ran out of time.
	ErrTimeout = errors.New("surgewall: wait timed out")
	// ErrRetriesExhausted: a retry gave up; the *RetryError carries the last attempt's error.
	ErrRetriesExhausted = errors.New("surgewall: retries exhausted")
	// ErrRetryBudgetExhausted: a retry budget refused a retry.
	ErrRetryBudgetExhausted = errors.New("surgewall: retry budget exhausted")
	// ErrRegistryFull: a keyed registry is at its key cap and rejects new keys.
	ErrRegistryFull = errors.New("surgewall: registry is full")
	// ErrClosed: the object was closed (or its handle is no longer valid).
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
	// ErrVersionMismatch: the linked library is not the version of the header it was
	// compiled against (rebuild with `make -C bindings/go lib`).
	ErrVersionMismatch = errors.New("surgewall: header and library versions differ")
)

// RejectedError is returned when a breaker refuses a call. It matches ErrRejected and the
// reason (ErrOpen, ErrHalfOpenFull or ErrForcedOpen; a forced open matches ErrOpen too).
type RejectedError struct {
	// Breaker is the breaker's name.
	Breaker string
	// State is the breaker state that refused the call.
	State State
	// RetryAfter is how long until the breaker may admit again; Forever for an indefinite
	// forced open.
	RetryAfter time.Duration
	reason     error
}

func (e *RejectedError) Error() string {
	if e.RetryAfter == Forever {
		return fmt.Sprintf("%v (breaker %q)", e.reason, e.Breaker)
	}
	return fmt.Sprintf("%v (breaker %q, retry after %v)", e.reason, e.Breaker, e.RetryAfter)
}

// Unwrap returns the reason sentinel.
func (e *RejectedError) Unwrap() error { return e.reason }

// Is reports whether target is ErrRejected, the reason, or ErrOpen for a forced open.
func (e *RejectedError) Is(target error) bool {
	return target == ErrRejected || target == e.reason || (target == ErrOpen && e.reason == ErrForcedOpen)
}

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
