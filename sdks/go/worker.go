package syros

/*
#include "syros.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// WorkerOptions configure a saga step runner.
type WorkerOptions struct {
	// MaxConcurrent is the most tasks held (and handlers running) at once (0 = 16).
	MaxConcurrent int
}

// Handler runs one saga step (an action or a compensation). Its result is marshalled to JSON
// as the step's output (a json.RawMessage is used as it is; nil = {}). Return a *TaskError to
// choose the error type matched against the retry policy, or to make it non-retryable. ctx
// ends at the task's timeout. A panic fails the task.
type Handler func(ctx context.Context, task *Task) (any, error)

// TaskError is a handler failure with a type (matched against a retry policy's
// non-retryable error types) and a non-retryable flag.
type TaskError struct {
	// Type names the failure ("" = "TaskFailure").
	Type string
	// Message explains it.
	Message string
	// NonRetryable fails the step for good (no retry).
	NonRetryable bool
}

// Error implements error.
func (e *TaskError) Error() string { return e.Type + ": " + e.Message }

// Task is a saga step to run, handed to a Handler.
type Task struct {
	// ID names the task.
	ID string `json:"task_id"`
	// SagaID is the saga it belongs to.
	SagaID string `json:"saga_id"`
	// StepName is the step it runs.
	StepName string `json:"step_name"`
	// Handler is the action or compensation handler name.
	Handler string `json:"handler"`
	// IsCompensation is true for a compensation.
	IsCompensation bool `json:"is_compensation"`
	// Attempt is 1 for the first attempt.
	Attempt uint32 `json:"attempt"`
	// IdempotencyKey is the same for every redelivery and retry of this step's action (or
	// compensation): use it to make a redelivery safe.
	IdempotencyKey string `json:"idempotency_key"`
	// InputJSON is the saga's input.
	InputJSON string `json:"input_json"`
	// PreviousOutputsJSON holds the outputs of completed steps by step name (a JSON object).
	PreviousOutputsJSON string `json:"previous_outputs_json"`
	// TimeoutMs is the attempt's timeout in ms.
	TimeoutMs uint64 `json:"timeout_ms"`

	worker *Worker
}

// Decode unmarshals the saga's input into v.
func (t *Task) Decode(v any) error { return json.Unmarshal([]byte(t.InputJSON), v) }

// Output unmarshals the output of the completed step named step into v; false when that step
// has no output.
func (t *Task) Output(step string, v any) (bool, error) {
	var outputs map[string]json.RawMessage
	if err := json.Unmarshal([]byte(t.PreviousOutputsJSON), &outputs); err != nil {
		return false, err
	}
	raw, ok := outputs[step]
	if !ok {
		return false, nil
	}
	return true, json.Unmarshal(raw, v)
}

// Heartbeat tells the server the task is alive and reports whether it is still assigned to
// this worker (a long handler can stop early when it is not).
func (t *Task) Heartbeat(ctx context.Context) (bool, error) {
	o, err := t.worker.start(ctx, func(p *C.SyrosWorker, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		id, n := cstr(t.ID)
		return C.syros_worker_heartbeat(p, id, n, cancel, cb, ud)
	})
	if err != nil {
		return false, err
	}
	var assigned bool
	if err := o.decode(&assigned); err != nil {
		return assigned, err
	}
	return assigned, nil
}

// Worker runs the handlers of one service's saga steps: it pulls tasks from the core and runs
// each handler on its own goroutine. Register handlers, then Run.
type Worker struct {
	client  *Client
	service string
	max     int

	mu       sync.RWMutex
	handlers map[string]Handler
	ptr      *C.SyrosWorker
	stopRun  context.CancelFunc
	running  chan struct{}
}

// Worker makes a step runner for service (start it with Run).
func (c *Client) Worker(service string, opts WorkerOptions) *Worker {
	limit := opts.MaxConcurrent
	if limit <= 0 {
		limit = 16
	}
	return &Worker{client: c, service: service, max: limit, handlers: map[string]Handler{}}
}

// Action registers the handler of the action named name.
func (w *Worker) Action(name string, handler Handler) *Worker {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.handlers[name] = handler
	return w
}

// Compensation registers the handler of the compensation named name.
func (w *Worker) Compensation(name string, handler Handler) *Worker {
	return w.Action(name, handler)
}

func (w *Worker) start(ctx context.Context, fn func(p *C.SyrosWorker, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t) (outcome, error) {
	return guardedCall(ctx, &w.mu, &w.ptr, fn)
}

// Run registers the worker with the server and runs tasks until ctx ends (or the client is
// closed); then it stops taking tasks, waits for the handlers in flight to finish and report,
// and returns nil. It returns an error when the worker cannot start or its task feed fails.
func (w *Worker) Run(ctx context.Context) error {
	o, err := w.client.start(ctx, func(p *C.SyrosClient, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		s, n := cstr(w.service)
		return C.syros_client_worker(p, s, n, C.uint32_t(w.max), cancel, cb, ud)
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	w.mu.Lock()
	if w.ptr != nil {
		w.mu.Unlock()
		o.free()
		return errors.New("syros: this worker is already running")
	}
	w.ptr, w.stopRun, w.running = o.worker, stopRun, make(chan struct{})
	w.mu.Unlock()
	defer close(w.running)
	if !w.client.track(w) {
		stopRun()
	}
	defer w.client.untrack(w)

	var handlers sync.WaitGroup
	var feedErr error
	for runCtx.Err() == nil {
		o, err := w.start(runCtx, func(p *C.SyrosWorker, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
			return C.syros_worker_poll_task(p, -1, cancel, cb, ud)
		})
		if err != nil {
			if runCtx.Err() == nil {
				feedErr = err
			}
			break
		}
		var task *Task
		if err := o.decode(&task); err != nil {
			feedErr = err
			break
		}
		if task == nil {
			break // the worker was stopped
		}
		task.worker = w
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			w.runTask(task)
		}()
	}
	w.mu.RLock()
	C.syros_worker_stop(w.ptr)
	w.mu.RUnlock()
	handlers.Wait()
	// Every task handed out was reported above; drain what the core still buffers.
	_, _ = w.start(context.Background(), func(p *C.SyrosWorker, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		return C.syros_worker_stop_and_drain(p, cancel, cb, ud)
	})
	w.mu.Lock()
	C.syros_worker_free(w.ptr)
	w.ptr = nil
	w.mu.Unlock()
	return feedErr
}

type taskOutcomeJSON struct {
	Outcome      string `json:"outcome"`
	OutputJSON   string `json:"output_json,omitempty"`
	ErrorType    string `json:"error_type,omitempty"`
	Message      string `json:"message,omitempty"`
	NonRetryable bool   `json:"non_retryable,omitempty"`
}

// runTask runs the task's handler and reports its outcome.
func (w *Worker) runTask(task *Task) {
	w.mu.RLock()
	handler := w.handlers[task.Handler]
	w.mu.RUnlock()
	var result taskOutcomeJSON
	if handler == nil {
		result = taskOutcomeJSON{Outcome: "failed", ErrorType: "unknown_handler", NonRetryable: true,
			Message: fmt.Sprintf("no handler %q registered on the Go worker of service %q", task.Handler, w.service)}
	} else {
		timeout := time.Duration(task.TimeoutMs) * time.Millisecond
		if timeout <= 0 {
			timeout = time.Hour
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		output, err := runHandler(ctx, handler, task)
		cancel()
		result = handlerOutcome(output, err)
	}
	body, err := cjson(result)
	if err != nil {
		body, _ = cjson(taskOutcomeJSON{Outcome: "failed", ErrorType: "TaskFailure", Message: err.Error()})
	}
	_, _ = w.start(context.Background(), func(p *C.SyrosWorker, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		id, n := cstr(task.ID)
		b, bn := cbytes(body)
		return C.syros_worker_complete(p, id, n, b, bn, cancel, cb, ud)
	})
}

func runHandler(ctx context.Context, handler Handler, task *Task) (output any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &TaskError{Type: "panic", Message: fmt.Sprint(r)}
		}
	}()
	return handler(ctx, task)
}

func handlerOutcome(output any, err error) taskOutcomeJSON {
	if err != nil {
		var taskErr *TaskError
		if errors.As(err, &taskErr) {
			kind := taskErr.Type
			if kind == "" {
				kind = "TaskFailure"
			}
			return taskOutcomeJSON{Outcome: "failed", ErrorType: kind, Message: taskErr.Message, NonRetryable: taskErr.NonRetryable}
		}
		return taskOutcomeJSON{Outcome: "failed", ErrorType: "TaskFailure", Message: err.Error()}
	}
	var text string
	switch v := output.(type) {
	case nil:
		text = "{}"
	case json.RawMessage:
		text = string(v)
	default:
		data, err := json.Marshal(output)
		if err != nil {
			return taskOutcomeJSON{Outcome: "failed", ErrorType: "TaskFailure", Message: "cannot encode the output: " + err.Error()}
		}
		text = string(data)
	}
	return taskOutcomeJSON{Outcome: "completed", OutputJSON: text}
}

// closeForClient stops Run and waits for it to return.
func (w *Worker) closeForClient() {
	w.mu.RLock()
	stop, running := w.stopRun, w.running
	w.mu.RUnlock()
	if stop != nil {
		stop()
		<-running
	}
}
