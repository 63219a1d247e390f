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

// DefaultLockWait is how long Lock waits for a held key when LockOptions.Wait is 0.
const DefaultLockWait = 30 * time.Second

// DefaultLockTTL is the lease time to live when LockOptions.TTL is 0.
const DefaultLockTTL = 30 * time.Second

// LockOptions say how to acquire a lock.
type LockOptions struct {
	// TTL is the lease's time to live (0 = DefaultLockTTL). The core renews it at about a
	// third of the TTL until it is released.
	TTL time.Duration
	// Wait is how long Lock waits while someone else holds the key (0 = DefaultLockWait,
	// negative = do not wait). The context's deadline and cancellation end the wait sooner.
	Wait time.Duration
	// Owner names the holder ("" = the client's owner).
	Owner string
	// NoAutoRenew turns the background renewal off: the lease then ends after TTL.
	NoAutoRenew bool
}

type lockRequestJSON struct {
	TTLMs     uint64  `json:"ttl_ms"`
	WaitMs    uint64  `json:"wait_ms"`
	Owner     *string `json:"owner,omitempty"`
	AutoRenew bool    `json:"auto_renew"`
}

func (o LockOptions) request(ctx context.Context, wait bool) lockRequestJSON {
	ttl := o.TTL
	if ttl == 0 {
		ttl = DefaultLockTTL
	}
	var waitFor time.Duration
	if wait {
		switch {
		case o.Wait == 0:
			waitFor = DefaultLockWait
		case o.Wait > 0:
			waitFor = o.Wait
		}
		if deadline, ok := ctx.Deadline(); ok && waitFor > 0 {
			if left := time.Until(deadline); left < waitFor {
				waitFor = max(left, time.Millisecond)
			}
		}
	}
	return lockRequestJSON{TTLMs: millis(ttl), WaitMs: millis(waitFor), Owner: optString(o.Owner), AutoRenew: !o.NoAutoRenew}
}

// LeaseInfo is a lease as the server granted it.
type LeaseInfo struct {
	// LeaseID names the lease in renewals and releases.
	LeaseID string
	// Key is the locked key.
	Key string
	// Owner is who holds it.
	Owner string
	// FencingToken is strictly increasing for every lease ever granted on any key: pass it to
	// the protected resource, which refuses writes with a smaller one.
	FencingToken uint64
	// AcquiredAt is when it was granted (server clock).
	AcquiredAt time.Time
	// ExpiresAt is when it expires unless renewed (server clock).
	ExpiresAt time.Time
}

type leaseJSON struct {
	LeaseID      string `json:"lease_id"`
	Key          string `json:"key"`
	Owner        string `json:"owner"`
	FencingToken uint64 `json:"fencing_token"`
	AcquiredAtMs int64  `json:"acquired_at_ms"`
	ExpiresAtMs  int64  `json:"expires_at_ms"`
	TTLMs        uint64 `json:"ttl_ms"`
}

func (l leaseJSON) info() LeaseInfo {
	return LeaseInfo{
		LeaseID:      l.LeaseID,
		Key:          l.Key,
		Owner:        l.Owner,
		FencingToken: l.FencingToken,
		AcquiredAt:   time.UnixMilli(l.AcquiredAtMs),
		ExpiresAt:    time.UnixMilli(l.ExpiresAtMs),
	}
}

func leaseInfos(records []leaseJSON) []LeaseInfo {
	infos := make([]LeaseInfo, 0, len(records))
	for _, r := range records {
		infos = append(infos, r.info())
	}
	return infos
}

// Lock acquires key, waiting while someone else holds it (see LockOptions.Wait). It fails with
// ErrLockTimeout when the wait ends first (the error's Details name the holder), and with
// ctx's error when ctx ends first, leaving no lease behind. Release the lease when done.
func (c *Client) Lock(ctx context.Context, key string, opts LockOptions) (*Lease, error) {
	return c.lock(ctx, key, opts.request(ctx, true), false)
}

// TryLock acquires key only if it is free now: (nil, nil) when someone else holds it.
func (c *Client) TryLock(ctx context.Context, key string, opts LockOptions) (*Lease, error) {
	return c.lock(ctx, key, opts.request(ctx, false), true)
}

func (c *Client) lock(ctx context.Context, key string, request lockRequestJSON, try bool) (*Lease, error) {
	body, err := cjson(request)
	if err != nil {
		return nil, err
	}
	o, err := c.start(ctx, func(p *C.SyrosClient, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		k, kn := cstr(key)
		b, bn := cbytes(body)
		if try {
			return C.syros_client_try_lock(p, k, kn, b, bn, cancel, cb, ud)
		}
		return C.syros_client_lock(p, k, kn, b, bn, cancel, cb, ud)
	})
	if err != nil {
		return nil, err
	}
	if o.lease == nil {
		return nil, nil // try_lock: held by someone else
	}
	var record leaseJSON
	if err := o.decode(&record); err != nil {
		o.free()
		return nil, err
	}
	return newLease(c, o.lease, record), nil
}

// LockStatus returns the current holder of key, or nil when it is free.
func (c *Client) LockStatus(ctx context.Context, key string) (*LeaseInfo, error) {
	return c.leaseCall(ctx, key, func(p *C.SyrosClient, k *C.uint8_t, kn C.uintptr_t, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		return C.syros_client_lock_status(p, k, kn, cancel, cb, ud)
	})
}

// ForceRelease (administrative) drops whatever lease holds key and returns it (nil: none).
func (c *Client) ForceRelease(ctx context.Context, key string) (*LeaseInfo, error) {
	return c.leaseCall(ctx, key, func(p *C.SyrosClient, k *C.uint8_t, kn C.uintptr_t, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		return C.syros_client_force_release(p, k, kn, cancel, cb, ud)
	})
}

func (c *Client) leaseCall(ctx context.Context, key string, fn func(p *C.SyrosClient, k *C.uint8_t, kn C.uintptr_t, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t) (*LeaseInfo, error) {
	o, err := c.start(ctx, func(p *C.SyrosClient, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		k, kn := cstr(key)
		return fn(p, k, kn, cancel, cb, ud)
	})
	if err != nil {
		return nil, err
	}
	var record *leaseJSON
	if err := o.decode(&record); err != nil || record == nil {
		return nil, err
	}
	info := record.info()
	return &info, nil
}

// ListLocks returns the held locks whose key starts with prefix (limit 0 = the server's
// default page).
func (c *Client) ListLocks(ctx context.Context, prefix string, limit int) ([]LeaseInfo, error) {
	o, err := c.start(ctx, func(p *C.SyrosClient, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		k, kn := cstr(prefix)
		return C.syros_client_list_locks(p, k, kn, C.uint32_t(max(limit, 0)), cancel, cb, ud)
	})
	if err != nil {
		return nil, err
	}
	var records []leaseJSON
	if err := o.decode(&records); err != nil {
		return nil, err
	}
	return leaseInfos(records), nil
}

// Lease is a held lock. The core renews it in the background at about a third of its TTL;
// Lost is closed the moment it can no longer be guaranteed. Release it when done (releasing
// again does nothing); Client.Close releases the leases still held.
type Lease struct {
	client *Client
	info   LeaseInfo
	ttl    time.Duration
	lost   chan struct{}

	mu       sync.RWMutex
	ptr      *C.SyrosLease      // nil once released
	stopWait context.CancelFunc // set once Lost was first called
	waitDone chan struct{}
	once     sync.Once
}

func newLease(c *Client, ptr *C.SyrosLease, record leaseJSON) *Lease {
	l := &Lease{
		client: c,
		info:   record.info(),
		ttl:    time.Duration(record.TTLMs) * time.Millisecond,
		lost:   make(chan struct{}),
		ptr:    ptr,
	}
	if !c.track(l) {
		l.finish() // the client was closed meanwhile
	}
	return l
}

// watch waits for the lease's end and closes lost when it was lost.
func (l *Lease) watch(ctx context.Context, done chan struct{}) {
	defer close(done)
	o, err := l.start(ctx, func(p *C.SyrosLease, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		return C.syros_lease_wait_end(p, -1, cancel, cb, ud)
	})
	if err != nil {
		return
	}
	var end string
	if o.decode(&end) == nil && end == "lost" {
		close(l.lost)
	}
}

func (l *Lease) start(ctx context.Context, fn func(p *C.SyrosLease, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t) (outcome, error) {
	return guardedCall(ctx, &l.mu, &l.ptr, fn)
}

// Key is the locked key.
func (l *Lease) Key() string { return l.info.Key }

// LeaseID names the lease.
func (l *Lease) LeaseID() string { return l.info.LeaseID }

// Owner is who holds it.
func (l *Lease) Owner() string { return l.info.Owner }

// FencingToken is the lease's fencing token: strictly increasing for every lease granted.
// Pass it along with every write the lock protects.
func (l *Lease) FencingToken() uint64 { return l.info.FencingToken }

// TTL is the time to live it was acquired with.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Lost is closed when the lease is lost (the server said so, or renewals failed past its
// expiry): stop the protected work. It is never closed for a lease released normally.
//
// The watch behind it starts on the first call (a lease nobody watches costs no extra call).
func (l *Lease) Lost() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopWait == nil && l.ptr != nil {
		ctx, stop := context.WithCancel(context.Background())
		l.stopWait, l.waitDone = stop, make(chan struct{})
		go l.watch(ctx, l.waitDone)
	}
	return l.lost
}

// Info is the lease as last granted or renewed.
func (l *Lease) Info() LeaseInfo {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.ptr == nil {
		return l.info
	}
	var buffer C.SyrosBuffer
	data, err := syncResult(C.syros_lease_info(l.ptr, &buffer), buffer)
	var record leaseJSON
	if err != nil || (outcome{json: data}).decode(&record) != nil {
		return l.info
	}
	return record.info()
}

// Held reports whether the lease is still ours: neither released nor lost.
func (l *Lease) Held() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.ptr != nil && bool(C.syros_lease_is_held(l.ptr))
}

// Renew extends the lease now (the core renews it by itself anyway).
func (l *Lease) Renew(ctx context.Context) (LeaseInfo, error) {
	o, err := l.start(ctx, func(p *C.SyrosLease, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		return C.syros_lease_renew(p, cancel, cb, ud)
	})
	if err != nil {
		if o.json == nil && l.released() {
			return LeaseInfo{}, &Error{Code: "lock_not_held", Message: "the lease was already released"}
		}
		return LeaseInfo{}, err
	}
	var record leaseJSON
	if err := o.decode(&record); err != nil {
		return LeaseInfo{}, err
	}
	return record.info(), nil
}

func (l *Lease) released() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.ptr == nil
}

// Release gives the lock up (releasing again does nothing and returns nil). A lost lease
// reports ErrLockNotHeld.
func (l *Lease) Release(ctx context.Context) error {
	if l.released() {
		return nil
	}
	_, err := l.start(ctx, func(p *C.SyrosLease, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		return C.syros_lease_release(p, cancel, cb, ud)
	})
	l.finish()
	if err == closedErr {
		return nil // released concurrently
	}
	return err
}

// finish stops the watcher and frees the handle (a lease still held is released in the
// background by the core).
func (l *Lease) finish() {
	l.once.Do(func() {
		l.mu.Lock()
		stop, done := l.stopWait, l.waitDone
		l.stopWait = func() {} // no watch starts from now on
		l.mu.Unlock()
		if stop != nil {
			stop()
			<-done
		}
		l.mu.Lock()
		C.syros_lease_free(l.ptr)
		l.ptr = nil
		l.mu.Unlock()
		l.client.untrack(l)
	})
}

func (l *Lease) closeForClient() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.Release(ctx)
}
