// Package syros is the Go SDK of Syros, the coordination service: fenced locks, sagas with Go
// step handlers, an event store and a tagged cache. It calls the one Rust client core through
// the C ABI (ffi/, linked statically with cgo): retries, failover, lease renewal and
// single-flight all run there; this package makes them idiomatic Go (context.Context on every
// call, channels for lease loss and subscriptions, handlers run on goroutines).
//
//	client, err := syros.Connect(ctx, syros.Options{Addresses: []string{"127.0.0.1:9090"}})
//	if err != nil { ... }
//	defer client.Close()
//	lease, err := client.Lock(ctx, "orders:42", syros.LockOptions{TTL: 10 * time.Second, Wait: 5 * time.Second})
//	if err != nil { ... }
//	defer lease.Release(ctx)
//	write(lease.FencingToken())
package syros

/*
#include "syros.h"
*/
import "C"

import (
	"context"
	"sync"
	"time"
)

// Options say how to reach Syros. Zero fields take the core's defaults.
type Options struct {
	// Addresses are host:port gRPC addresses; the client fails over between them.
	Addresses []string
	// AuthToken is the bearer token sent with every call ("" = none); see SetAuthToken.
	AuthToken string
	// Owner is the default lock owner ("" = syros-<pid>-<random>).
	Owner string
	// ConnectTimeout limits establishing a connection (default 5 s).
	ConnectTimeout time.Duration
	// CallTimeout limits one attempt of a unary call (default 10 s).
	CallTimeout time.Duration
	// KeepaliveInterval is the HTTP/2 keepalive interval (0 = the default, 20 s; negative = off).
	KeepaliveInterval time.Duration
	// Retry overrides how unary calls are retried (nil = the core's default).
	Retry *RetryPolicy
}

// RetryPolicy is a full-jitter exponential backoff for calls that failed in a retryable way.
type RetryPolicy struct {
	// InitialInterval bounds the first backoff.
	InitialInterval time.Duration
	// Multiplier grows the bound per retry (at least 1).
	Multiplier float64
	// MaxInterval is the largest bound.
	MaxInterval time.Duration
	// MaxAttempts counts attempts in total, the first included (1 = no retry).
	MaxAttempts uint32
	// Deadline bounds a whole call with its retries (0 = attempts only).
	Deadline time.Duration
}

type retryJSON struct {
	InitialIntervalMs uint64  `json:"initial_interval_ms"`
	Multiplier        float64 `json:"multiplier"`
	MaxIntervalMs     uint64  `json:"max_interval_ms"`
	MaxAttempts       uint32  `json:"max_attempts"`
	DeadlineMs        *uint64 `json:"deadline_ms,omitempty"`
}

type configJSON struct {
	Addresses           []string   `json:"addresses"`
	ConnectTimeoutMs    *uint64    `json:"connect_timeout_ms,omitempty"`
	CallTimeoutMs       *uint64    `json:"call_timeout_ms,omitempty"`
	Retry               *retryJSON `json:"retry,omitempty"`
	Owner               *string    `json:"owner,omitempty"`
	AuthToken           *string    `json:"auth_token,omitempty"`
	KeepaliveIntervalMs *uint64    `json:"keepalive_interval_ms,omitempty"`
}

func optMillis(d time.Duration) *uint64 {
	if d == 0 {
		return nil
	}
	ms := millis(d)
	return &ms
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (o Options) config() configJSON {
	config := configJSON{
		Addresses:        o.Addresses,
		ConnectTimeoutMs: optMillis(o.ConnectTimeout),
		CallTimeoutMs:    optMillis(o.CallTimeout),
		Owner:            optString(o.Owner),
		AuthToken:        optString(o.AuthToken),
	}
	if config.Addresses == nil {
		config.Addresses = []string{}
	}
	switch {
	case o.KeepaliveInterval < 0:
		off := uint64(0)
		config.KeepaliveIntervalMs = &off
	case o.KeepaliveInterval > 0:
		config.KeepaliveIntervalMs = optMillis(o.KeepaliveInterval)
	}
	if r := o.Retry; r != nil {
		config.Retry = &retryJSON{
			InitialIntervalMs: millis(r.InitialInterval),
			Multiplier:        r.Multiplier,
			MaxIntervalMs:     millis(r.MaxInterval),
			MaxAttempts:       r.MaxAttempts,
			DeadlineMs:        optMillis(r.Deadline),
		}
	}
	return config
}

// Client is a connection to Syros, safe for concurrent use. Close it when done: Close also
// stops its workers, closes its subscriptions and releases the leases it still holds.
type Client struct {
	mu  sync.RWMutex
	ptr *C.SyrosClient // nil once closed

	objectsMu sync.Mutex
	objects   map[closer]struct{}
}

// closer is an object a client handed out and must end when it is closed.
type closer interface {
	closeForClient()
}

// Connect creates a client and waits until it is connected (or ctx ends).
func Connect(ctx context.Context, opts Options) (*Client, error) {
	config, err := cjson(opts.config())
	if err != nil {
		return nil, err
	}
	var ptr *C.SyrosClient
	var buffer C.SyrosBuffer
	data, n := cbytes(config)
	if _, err := syncResult(C.syros_client_new(data, n, &ptr, &buffer), buffer); err != nil {
		return nil, err
	}
	client := &Client{ptr: ptr, objects: map[closer]struct{}{}}
	if _, err := client.start(ctx, func(p *C.SyrosClient, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		return C.syros_client_connect(p, cancel, cb, ud)
	}); err != nil {
		client.Close()
		return nil, err
	}
	return client, nil
}

// clientStarter starts a call on the client's handle.
type clientStarter func(p *C.SyrosClient, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t

// start runs an asynchronous call on the client's handle (refused once it is closed).
func (c *Client) start(ctx context.Context, fn clientStarter) (outcome, error) {
	return guardedCall(ctx, &c.mu, &c.ptr, fn)
}

// sync runs a synchronous call on the client's handle.
func (c *Client) sync(fn func(p *C.SyrosClient, out *C.SyrosBuffer) C.int32_t) ([]byte, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.ptr == nil {
		return nil, errClosed()
	}
	var buffer C.SyrosBuffer
	return syncResult(fn(c.ptr, &buffer), buffer)
}

func (c *Client) track(o closer) bool {
	c.objectsMu.Lock()
	defer c.objectsMu.Unlock()
	if c.objects == nil {
		return false
	}
	c.objects[o] = struct{}{}
	return true
}

func (c *Client) untrack(o closer) {
	c.objectsMu.Lock()
	defer c.objectsMu.Unlock()
	delete(c.objects, o)
}

// Close stops the client's workers (waiting for handlers in flight), closes its
// subscriptions, releases the leases it still holds, then refuses every later call and frees
// the connection. Closing again does nothing.
func (c *Client) Close() error {
	c.objectsMu.Lock()
	objects := c.objects
	c.objects = nil
	c.objectsMu.Unlock()
	for o := range objects {
		o.closeForClient()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ptr != nil {
		C.syros_client_close(c.ptr)
		C.syros_client_free(c.ptr)
		c.ptr = nil
	}
	return nil
}

// SetAuthToken replaces the bearer token sent with every later call ("" = send none).
func (c *Client) SetAuthToken(token string) error {
	_, err := c.sync(func(p *C.SyrosClient, out *C.SyrosBuffer) C.int32_t {
		if token == "" {
			return C.syros_client_set_auth_token(p, nil, 0, out)
		}
		data, n := cstr(token)
		return C.syros_client_set_auth_token(p, data, n, out)
	})
	return err
}

// Owner is the client's default lock owner.
func (c *Client) Owner() (string, error) {
	data, err := c.sync(func(p *C.SyrosClient, out *C.SyrosBuffer) C.int32_t {
		return C.syros_client_owner(p, out)
	})
	if err != nil {
		return "", err
	}
	var owner string
	if err := (outcome{json: data}).decode(&owner); err != nil {
		return owner, err
	}
	return owner, nil
}

// Stats are a client's counters.
type Stats struct {
	// Calls started.
	Calls uint64 `json:"calls"`
	// Attempts sent.
	Attempts uint64 `json:"attempts"`
	// Retries among the attempts.
	Retries uint64 `json:"retries"`
	// Failovers to another address.
	Failovers uint64 `json:"failovers"`
}

// Stats returns the calls, attempts, retries and failovers so far.
func (c *Client) Stats() (Stats, error) {
	var stats Stats
	data, err := c.sync(func(p *C.SyrosClient, out *C.SyrosBuffer) C.int32_t {
		return C.syros_client_stats(p, out)
	})
	if err != nil {
		return stats, err
	}
	if err := (outcome{json: data}).decode(&stats); err != nil {
		return stats, err
	}
	return stats, nil
}

// CheckHealth asks the server whether it is serving.
func (c *Client) CheckHealth(ctx context.Context) error {
	_, err := c.start(ctx, func(p *C.SyrosClient, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		return C.syros_client_check_health(p, cancel, cb, ud)
	})
	return err
}
