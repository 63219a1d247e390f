package syros

/*
#cgo CFLAGS: -I${SRCDIR}/../../ffi/include
#cgo LDFLAGS: -L${SRCDIR}/../../target/debug -l:libsyros_ffi.a -lpthread -ldl -lm
#include <stdlib.h>
#include "syros.h"

SyrosCallback syros_go_callback(void);
*/
import "C"

import (
	"context"
	"encoding/json"
	"os"
	"runtime/cgo"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// outcome is a completed C ABI call, copied out of its callback.
type outcome struct {
	ok           bool
	json         []byte
	lease        *C.SyrosLease
	subscription *C.SyrosSubscription
	worker       *C.SyrosWorker
	ticket       *C.SyrosComputeTicket
}

// syrosGoComplete receives an asynchronous result on a runtime thread, when the completion
// queue is not available (see completionCallback).
//
//export syrosGoComplete
func syrosGoComplete(userData C.uintptr_t, o *C.SyrosOutcome) {
	deliver(userData, o)
}

// deliver hands a C outcome to the goroutine waiting for it; the cgo.Handle in userData names
// that goroutine's channel (buffered: this never blocks).
func deliver(userData C.uintptr_t, o *C.SyrosOutcome) {
	handle := cgo.Handle(userData)
	done := handle.Value().(chan outcome)
	handle.Delete()
	done <- outcome{
		ok:           o.status == C.SYROS_OK,
		json:         C.GoBytes(unsafe.Pointer(o.json), C.int(o.json_len)),
		lease:        o.lease,
		subscription: o.subscription,
		worker:       o.worker,
		ticket:       o.ticket,
	}
}

var (
	completionsOnce sync.Once
	// callback is what every asynchronous call passes: the C ABI's completion queue, or the
	// exported Go callback when the queue cannot be used.
	callback C.SyrosCallback
	// completions is the queue's wake-up socket, kept referenced for the process's life (a
	// collected os.File would close it).
	completions *os.File
)

// completionCallback is the callback for asynchronous calls. The C ABI queues their outcomes
// and writes a byte to a socket, which one goroutine waits on through Go's netpoller and then
// drains (drainCompletions). A callback from a runtime thread instead would enter Go from a
// foreign thread once per call (a cgo callback that must get an M and a P, then wake the waiting
// goroutine's thread): a few context switches per call, where the queue costs one wake-up per
// batch and one ordinary cgo call.
func completionCallback() C.SyrosCallback {
	completionsOnce.Do(func() {
		callback = C.syros_go_callback()
		fd := int(C.syros_completions_fd())
		queued := C.syros_completions_callback()
		if fd < 0 || queued == nil || syscall.SetNonblock(fd, true) != nil {
			return
		}
		// Non-blocking, so os.File reads it through the netpoller (no thread blocked in read).
		completions = os.NewFile(uintptr(fd), "syros-completions")
		callback = queued
		go drainCompletions(completions)
	})
	return callback
}

// drainCompletions waits for the completion queue's wake-ups and delivers the queued outcomes.
func drainCompletions(pipe *os.File) {
	wakeups := make([]byte, 512)
	batch := make([]C.SyrosCompletion, 128)
	for {
		if _, err := pipe.Read(wakeups); err != nil {
			// Every pending call would wait forever: fail loudly (it cannot happen while the
			// library holds the write end).
			panic("syros: the completion queue's socket failed: " + err.Error())
		}
		for {
			n := int(C.syros_completions_drain(&batch[0], C.uintptr_t(len(batch))))
			for i := range n {
				deliver(C.uintptr_t(batch[i].user_data), &batch[i].outcome)
			}
			if n < len(batch) {
				break
			}
		}
	}
}

// starter starts one asynchronous C call with the given cancel switch, callback and user data.
type starter func(cancel *C.SyrosCancel, callback C.SyrosCallback, userData C.uintptr_t) C.int32_t

// call runs one asynchronous C call and waits for its outcome or for ctx to end. When ctx ends
// first the call is cancelled (its work aborted, as the binding API does for a dropped task),
// any object it produced anyway is freed, and ctx's error is returned.
func call(ctx context.Context, start starter) (outcome, error) {
	done := make(chan outcome, 1)
	handle := cgo.NewHandle(done)
	var cancel *C.SyrosCancel
	if ctx.Done() != nil {
		cancel = C.syros_cancel_new()
		defer C.syros_cancel_free(cancel)
	}
	switch start(cancel, completionCallback(), C.uintptr_t(handle)) {
	case C.SYROS_OK:
	case startClosed:
		handle.Delete()
		return outcome{}, errClosed()
	default:
		handle.Delete()
		return outcome{}, &Error{Code: "internal", Message: "the syros library refused the call"}
	}
	var o outcome
	select {
	case o = <-done:
	case <-ctx.Done():
		C.syros_cancel_cancel(cancel)
		o = <-done // the callback always comes, promptly after a cancel
	}
	if err := ctx.Err(); err != nil {
		o.free()
		return outcome{}, err
	}
	if !o.ok {
		return outcome{}, decodeError(o.json)
	}
	return o, nil
}

// guardedCall runs an asynchronous call on the handle *ptr, holding mu's read lock while it
// starts (the handle is freed under the write lock); refused once *ptr is nil.
// (P is the handle's pointer type: cgo's opaque struct types cannot be type arguments.)
func guardedCall[P comparable](ctx context.Context, mu *sync.RWMutex, ptr *P, fn func(p P, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t) (outcome, error) {
	return call(ctx, func(cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		mu.RLock()
		defer mu.RUnlock()
		var freed P
		if *ptr == freed {
			return startClosed
		}
		return fn(*ptr, cancel, cb, ud)
	})
}

// free releases the objects an outcome carries (a call whose result nobody takes).
func (o outcome) free() {
	if o.lease != nil {
		C.syros_lease_free(o.lease)
	}
	if o.subscription != nil {
		C.syros_subscription_free(o.subscription)
	}
	if o.worker != nil {
		C.syros_worker_free(o.worker)
	}
	if o.ticket != nil {
		C.syros_ticket_free(o.ticket)
	}
}

// decode unmarshals the outcome's JSON record into v.
func (o outcome) decode(v any) error {
	if err := json.Unmarshal(o.json, v); err != nil {
		return &Error{Code: "internal", Message: "cannot decode a record from the syros library: " + err.Error()}
	}
	return nil
}

// syncResult turns a synchronous C call's status and buffer into the JSON or an error.
func syncResult(status C.int32_t, buffer C.SyrosBuffer) ([]byte, error) {
	data := C.GoBytes(unsafe.Pointer(buffer.data), C.int(buffer.len))
	C.syros_buffer_free(buffer)
	if status != C.SYROS_OK {
		return nil, decodeError(data)
	}
	return data, nil
}

// cstr passes a Go string's bytes to C for the duration of a call (the library copies them).
func cstr(s string) (*C.uint8_t, C.uintptr_t) {
	return (*C.uint8_t)(unsafe.Pointer(unsafe.StringData(s))), C.uintptr_t(len(s))
}

// nonEmpty is a one-byte buffer whose address stands for an empty, present string.
var nonEmpty = [1]byte{0}

// cOptStr passes an optional string: nil for none.
func cOptStr(s *string) (*C.uint8_t, C.uintptr_t) {
	if s == nil {
		return nil, 0
	}
	if *s == "" {
		return (*C.uint8_t)(unsafe.Pointer(&nonEmpty[0])), 0
	}
	return cstr(*s)
}

// cbytes passes a byte slice to C for the duration of a call.
func cbytes(b []byte) (*C.uint8_t, C.uintptr_t) {
	if len(b) == 0 {
		return nil, 0
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0])), C.uintptr_t(len(b))
}

// cjson marshals v for a call.
func cjson(v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, &Error{Code: "invalid_argument", Message: "cannot encode the request: " + err.Error()}
	}
	return data, nil
}

// millis is d in whole milliseconds (at least 1 for a positive d).
func millis(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	ms := uint64(d / time.Millisecond)
	if ms == 0 {
		ms = 1
	}
	return ms
}

// limitMillis is the C ABI's optional limit: negative = none.
func limitMillis(d time.Duration, limited bool) C.int64_t {
	if !limited {
		return -1
	}
	return C.int64_t(millis(d))
}

// usesCompletionQueue reports whether calls complete through the C ABI's completion queue (for
// tests).
func usesCompletionQueue() bool { return completionCallback() == C.syros_completions_callback() }

// liveHandles counts the C ABI handles not freed yet (for leak tests).
func liveHandles() int64 { return int64(C.syros_live_handles()) }

// pendingCalls counts C ABI calls whose callback has not run yet (for leak tests).
func pendingCalls() int64 { return int64(C.syros_pending_calls()) }

// Shutdown stops the client core's runtime, waiting up to timeout for its tasks: background
// renewals, subscriptions and workers end and pending calls fail with a cancelled error. A Go
// program does not need it at exit; it is for programs that want every core thread idle.
func Shutdown(timeout time.Duration) {
	C.syros_shutdown(C.uint64_t(millis(timeout)))
}

// startClosed is what a starter returns without calling C: its object was closed or freed.
const startClosed C.int32_t = -100

// closedErr is the error of a call on a closed client or a finished object.
var closedErr = &Error{Code: "cancelled", Message: "the client (or the object) was closed"}

func errClosed() error { return closedErr }
