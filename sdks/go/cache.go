package syros

/*
#include "syros.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Cache is the tagged cache (Client.Cache).
type Cache struct{ client *Client }

// Cache returns the client's cache operations.
func (c *Client) Cache() *Cache { return &Cache{client: c} }

// SetOptions say how to store a cache value.
type SetOptions struct {
	// TTL is the time to live (0 = no expiry).
	TTL time.Duration
	// Tags name groups for InvalidateTag.
	Tags []string
}

type setJSON struct {
	TTLMs *uint64  `json:"ttl_ms,omitempty"`
	Tags  []string `json:"tags"`
}

func (o SetOptions) json() ([]byte, error) {
	tags := o.Tags
	if tags == nil {
		tags = []string{}
	}
	return cjson(setJSON{TTLMs: optMillis(o.TTL), Tags: tags})
}

// CacheEntry is a cached value with its expiry and tags.
type CacheEntry struct {
	// Value is the stored bytes.
	Value []byte `json:"value"`
	// ExpiresAtMs is the expiry in ms since the Unix epoch (server clock); nil = never.
	ExpiresAtMs *int64 `json:"expires_at_ms"`
	// Tags are the tags it was stored with.
	Tags []string `json:"tags"`
}

// Get returns the value under key; ok is false when it is missing.
func (c *Cache) Get(ctx context.Context, key string) (value []byte, ok bool, err error) {
	entry, err := c.GetEntry(ctx, key)
	if err != nil || entry == nil {
		return nil, false, err
	}
	return entry.Value, true, nil
}

// GetEntry returns the entry under key (nil when missing).
func (c *Cache) GetEntry(ctx context.Context, key string) (*CacheEntry, error) {
	o, err := c.client.start(ctx, func(p *C.SyrosClient, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		k, kn := cstr(key)
		return C.syros_client_cache_get(p, k, kn, cancel, cb, ud)
	})
	if err != nil {
		return nil, err
	}
	var entry *CacheEntry
	if err := o.decode(&entry); err != nil {
		return nil, err
	}
	if entry != nil && entry.Value == nil {
		entry.Value = []byte{}
	}
	return entry, nil
}

// Set stores value under key.
func (c *Cache) Set(ctx context.Context, key string, value []byte, opts SetOptions) error {
	set, err := opts.json()
	if err != nil {
		return err
	}
	_, err = c.client.start(ctx, func(p *C.SyrosClient, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		k, kn := cstr(key)
		v, vn := cbytes(value)
		s, sn := cbytes(set)
		return C.syros_client_cache_set(p, k, kn, v, vn, s, sn, cancel, cb, ud)
	})
	return err
}

// Delete removes key and reports whether it existed.
func (c *Cache) Delete(ctx context.Context, key string) (bool, error) {
	o, err := c.client.start(ctx, func(p *C.SyrosClient, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		k, kn := cstr(key)
		return C.syros_client_cache_delete(p, k, kn, cancel, cb, ud)
	})
	if err != nil {
		return false, err
	}
	var existed bool
	if err := o.decode(&existed); err != nil {
		return existed, err
	}
	return existed, nil
}

// InvalidateTag removes every key tagged tag, atomically, and returns how many.
func (c *Cache) InvalidateTag(ctx context.Context, tag string) (uint64, error) {
	o, err := c.client.start(ctx, func(p *C.SyrosClient, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		t, tn := cstr(tag)
		return C.syros_client_cache_invalidate_tag(p, t, tn, cancel, cb, ud)
	})
	if err != nil {
		return 0, err
	}
	var removed uint64
	if err := o.decode(&removed); err != nil {
		return removed, err
	}
	return removed, nil
}

// GetOrCompute returns the value under key, or computes it with compute, stores it with opts
// and returns it. Concurrent callers for the same key in this process share one lookup and
// one computation (single-flight): one runs compute, the others get its value. When compute
// fails, every caller of that flight gets an error matching ErrCallbackFailed and nothing is
// stored; the computing caller's error also wraps compute's error.
func (c *Cache) GetOrCompute(ctx context.Context, key string, opts SetOptions, compute func(ctx context.Context) ([]byte, error)) ([]byte, error) {
	set, err := opts.json()
	if err != nil {
		return nil, err
	}
	o, err := c.client.start(ctx, func(p *C.SyrosClient, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		k, kn := cstr(key)
		s, sn := cbytes(set)
		return C.syros_client_cache_begin(p, k, kn, s, sn, cancel, cb, ud)
	})
	if err != nil {
		return nil, err
	}
	if o.ticket == nil {
		var lookup struct {
			Hit []byte `json:"hit"`
		}
		if err := o.decode(&lookup); err != nil {
			return nil, err
		}
		if lookup.Hit == nil {
			lookup.Hit = []byte{}
		}
		return lookup.Hit, nil
	}
	ticket := o.ticket
	defer C.syros_ticket_free(ticket)
	value, computeErr := runCompute(ctx, compute)
	if computeErr != nil {
		message := computeErr.Error()
		_, _ = call(context.Background(), func(cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
			m, mn := cstr(message)
			return C.syros_ticket_fail(ticket, m, mn, cancel, cb, ud)
		})
		return nil, errors.Join(&Error{Code: "callback_failed", Message: "the compute function failed: " + message}, computeErr)
	}
	// Completing is not tied to ctx: the waiting callers of this flight need the value.
	done, err := call(context.Background(), func(cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		v, vn := cbytes(value)
		return C.syros_ticket_complete(ticket, v, vn, cancel, cb, ud)
	})
	if err != nil {
		return nil, err
	}
	var stored []byte
	if err := done.decode(&stored); err != nil {
		return nil, err
	}
	if stored == nil {
		stored = []byte{}
	}
	return stored, nil
}

// runCompute runs compute, turning a panic into an error (the flight's other callers must
// still be answered).
func runCompute(ctx context.Context, compute func(ctx context.Context) ([]byte, error)) (value []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("compute panicked: %v", r)
		}
	}()
	return compute(ctx)
}
