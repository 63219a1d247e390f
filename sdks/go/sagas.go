package syros

/*
#include "syros.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"time"
)

// Sagas are the saga operations (Client.Sagas).
type Sagas struct{ client *Client }

// Sagas returns the client's saga operations.
func (c *Client) Sagas() *Sagas { return &Sagas{client: c} }

// StepRetry is a server-side retry policy of a saga or a step.
type StepRetry struct {
	// InitialInterval is the delay before the first retry.
	InitialInterval time.Duration
	// BackoffCoefficient grows the delay per retry.
	BackoffCoefficient float64
	// MaximumInterval is the largest delay.
	MaximumInterval time.Duration
	// MaximumAttempts counts attempts in total.
	MaximumAttempts uint32
	// NonRetryableErrors are error types never retried.
	NonRetryableErrors []string
}

type stepRetryJSON struct {
	InitialIntervalMs  uint64   `json:"initial_interval_ms"`
	BackoffCoefficient float64  `json:"backoff_coefficient"`
	MaximumIntervalMs  uint64   `json:"maximum_interval_ms"`
	MaximumAttempts    uint32   `json:"maximum_attempts"`
	NonRetryableErrors []string `json:"non_retryable_errors"`
}

func (r *StepRetry) json() *stepRetryJSON {
	if r == nil {
		return nil
	}
	errs := r.NonRetryableErrors
	if errs == nil {
		errs = []string{}
	}
	return &stepRetryJSON{millis(r.InitialInterval), r.BackoffCoefficient, millis(r.MaximumInterval), r.MaximumAttempts, errs}
}

// Step is one step of a saga to start.
type Step struct {
	// Name is unique among the saga's steps.
	Name string
	// Service is the worker service that runs it.
	Service string
	// Action is the action handler's name.
	Action string
	// Compensation is the compensation handler's name ("" = the step cannot be undone).
	Compensation string
	// Timeout is one attempt's start-to-close timeout (0 = the server's default).
	Timeout time.Duration
	// Retry overrides the saga's retry policy for this step.
	Retry *StepRetry
}

// StartSaga is a saga to start.
type StartSaga struct {
	// Name labels it for listing.
	Name string
	// Steps run in order.
	Steps []Step
	// Input is handed to every step: marshalled to JSON (a json.RawMessage is used as it is;
	// nil = {}).
	Input any
	// IdempotencyKey: starting again with the same key returns the existing saga.
	IdempotencyKey string
	// Retry is the saga-wide retry policy (nil = the server's default).
	Retry *StepRetry
}

type stepJSON struct {
	Name         string         `json:"name"`
	Service      string         `json:"service"`
	Action       string         `json:"action"`
	Compensation *string        `json:"compensation,omitempty"`
	TimeoutMs    uint64         `json:"timeout_ms"`
	Retry        *stepRetryJSON `json:"retry,omitempty"`
}

type startSagaJSON struct {
	Name           string         `json:"name"`
	Steps          []stepJSON     `json:"steps"`
	InputJSON      string         `json:"input_json"`
	IdempotencyKey *string        `json:"idempotency_key,omitempty"`
	Retry          *stepRetryJSON `json:"retry,omitempty"`
}

// SagaState is where a saga is in its life.
type SagaState string

// The saga states.
const (
	SagaPending            SagaState = "pending"
	SagaRunning            SagaState = "running"
	SagaCompensating       SagaState = "compensating"
	SagaCompleted          SagaState = "completed"
	SagaCompensated        SagaState = "compensated"
	SagaCompensationFailed SagaState = "compensation_failed"
	SagaCancelled          SagaState = "cancelled"
)

// Final reports whether nothing more will happen to a saga in this state.
func (s SagaState) Final() bool {
	switch s {
	case SagaCompleted, SagaCompensated, SagaCompensationFailed, SagaCancelled:
		return true
	}
	return false
}

// AttemptInfo is one attempt at a step's action or compensation.
type AttemptInfo struct {
	// Attempt is 1 for the first.
	Attempt uint32 `json:"attempt"`
	// Kind is "action" or "compensation".
	Kind string `json:"kind"`
	// StartedAtMs and FinishedAtMs are ms since the Unix epoch.
	StartedAtMs int64 `json:"started_at_ms"`
	// FinishedAtMs is when it finished.
	FinishedAtMs int64 `json:"finished_at_ms"`
	// ErrorType is the failure's type, if it failed.
	ErrorType *string `json:"error_type"`
	// ErrorMessage is the failure's message, if it failed.
	ErrorMessage *string `json:"error_message"`
}

// StepInfo is a step as the server reports it.
type StepInfo struct {
	// Name is the step's name.
	Name string `json:"name"`
	// Service is the worker service that runs it.
	Service string `json:"service"`
	// Action is the action handler name.
	Action string `json:"action"`
	// Compensation is the compensation handler, if any.
	Compensation *string `json:"compensation"`
	// State is pending, running, completed, failed, compensating, compensated or
	// compensation_failed.
	State string `json:"state"`
	// OutputJSON is the action's output, once completed.
	OutputJSON *string `json:"output_json"`
	// Attempts are every attempt so far.
	Attempts []AttemptInfo `json:"attempts"`
}

// SagaInfo is a saga as the server reports it.
type SagaInfo struct {
	// ID is the saga's id.
	ID string `json:"saga_id"`
	// Name is the saga's name.
	Name string `json:"name"`
	// State is where it is.
	State SagaState `json:"state"`
	// InputJSON is the input handed to every step.
	InputJSON string `json:"input_json"`
	// IdempotencyKey is the key it was started with.
	IdempotencyKey *string `json:"idempotency_key"`
	// Steps run in order.
	Steps []StepInfo `json:"steps"`
	// CreatedAtMs is when it was started (ms since the Unix epoch).
	CreatedAtMs int64 `json:"created_at_ms"`
	// UpdatedAtMs is when it last changed.
	UpdatedAtMs int64 `json:"updated_at_ms"`
	// Error says why it did not complete, if it did not.
	Error *string `json:"error"`
}

func inputJSON(input any) (string, error) {
	switch v := input.(type) {
	case nil:
		return "{}", nil
	case json.RawMessage:
		return string(v), nil
	}
	data, err := cjson(input)
	return string(data), err
}

// Start starts a saga (or returns the one started with the same idempotency key).
func (s *Sagas) Start(ctx context.Context, saga StartSaga) (SagaInfo, error) {
	input, err := inputJSON(saga.Input)
	if err != nil {
		return SagaInfo{}, err
	}
	request := startSagaJSON{Name: saga.Name, InputJSON: input, IdempotencyKey: optString(saga.IdempotencyKey), Retry: saga.Retry.json(), Steps: []stepJSON{}}
	for _, step := range saga.Steps {
		request.Steps = append(request.Steps, stepJSON{step.Name, step.Service, step.Action, optString(step.Compensation), millis(step.Timeout), step.Retry.json()})
	}
	body, err := cjson(request)
	if err != nil {
		return SagaInfo{}, err
	}
	return s.sagaCall(ctx, func(p *C.SyrosClient, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		b, bn := cbytes(body)
		return C.syros_client_start_saga(p, b, bn, cancel, cb, ud)
	})
}

func (s *Sagas) sagaCall(ctx context.Context, fn clientStarter) (SagaInfo, error) {
	var info SagaInfo
	o, err := s.client.start(ctx, fn)
	if err != nil {
		return info, err
	}
	if err := o.decode(&info); err != nil {
		return info, err
	}
	return info, nil
}

// Get returns one saga.
func (s *Sagas) Get(ctx context.Context, sagaID string) (SagaInfo, error) {
	return s.sagaCall(ctx, func(p *C.SyrosClient, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		id, n := cstr(sagaID)
		return C.syros_client_get_saga(p, id, n, cancel, cb, ud)
	})
}

// Cancel cancels a saga: what completed is compensated.
func (s *Sagas) Cancel(ctx context.Context, sagaID string) (SagaInfo, error) {
	return s.sagaCall(ctx, func(p *C.SyrosClient, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		id, n := cstr(sagaID)
		return C.syros_client_cancel_saga(p, id, n, cancel, cb, ud)
	})
}

// DefaultSagaWait bounds Wait when ctx has no deadline.
const DefaultSagaWait = 5 * time.Minute

// Wait waits until the saga is final, until ctx's deadline (or DefaultSagaWait); then it fails
// with ErrDeadlineExceeded.
func (s *Sagas) Wait(ctx context.Context, sagaID string) (SagaInfo, error) {
	limit := millis(waitFor(ctx, DefaultSagaWait))
	return s.sagaCall(ctx, func(p *C.SyrosClient, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		id, n := cstr(sagaID)
		return C.syros_client_wait_saga(p, id, n, C.uint64_t(limit), cancel, cb, ud)
	})
}

// ListOptions filter List.
type ListOptions struct {
	// State keeps sagas in this state ("" = any).
	State SagaState
	// Name keeps sagas with this name ("" = any).
	Name string
	// Limit is the most to return (0 = the server's default).
	Limit int
}

// List returns sagas, newest first.
func (s *Sagas) List(ctx context.Context, opts ListOptions) ([]SagaInfo, error) {
	filter := struct {
		State *string `json:"state,omitempty"`
		Name  *string `json:"name,omitempty"`
		Limit uint32  `json:"limit"`
	}{optString(string(opts.State)), optString(opts.Name), uint32(max(opts.Limit, 0))}
	body, err := cjson(filter)
	if err != nil {
		return nil, err
	}
	o, err := s.client.start(ctx, func(p *C.SyrosClient, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		b, bn := cbytes(body)
		return C.syros_client_list_sagas(p, b, bn, cancel, cb, ud)
	})
	if err != nil {
		return nil, err
	}
	var sagas []SagaInfo
	if err := o.decode(&sagas); err != nil {
		return nil, err
	}
	if sagas == nil {
		sagas = []SagaInfo{}
	}
	return sagas, nil
}
