package syros

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/syros/syros/sdks/go/syrostest"
)

func TestLockFencingStatusListRelease(t *testing.T) {
	client := connect(t)
	ctx := testCtx(t)
	key := unique(t, "lock")
	lease, err := client.Lock(ctx, key, LockOptions{TTL: 10 * time.Second, Wait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if lease.Key() != key || lease.FencingToken() == 0 || lease.LeaseID() == "" || lease.TTL() != 10*time.Second {
		t.Fatalf("lease %+v", lease.Info())
	}
	if !lease.Held() {
		t.Fatal("a fresh lease is not held")
	}
	owner, err := client.Owner()
	if err != nil || lease.Owner() != owner {
		t.Fatalf("owner %q vs %q (%v)", lease.Owner(), owner, err)
	}
	status, err := client.LockStatus(ctx, key)
	if err != nil || status == nil || status.LeaseID != lease.LeaseID() || status.FencingToken != lease.FencingToken() {
		t.Fatalf("status %+v, %v", status, err)
	}
	listed, err := client.ListLocks(ctx, key, 0)
	if err != nil || len(listed) != 1 || listed[0].Key != key {
		t.Fatalf("list %+v, %v", listed, err)
	}
	renewed, err := lease.Renew(ctx)
	if err != nil || !renewed.ExpiresAt.After(time.Now()) {
		t.Fatalf("renew %+v, %v", renewed, err)
	}
	other, err := client.TryLock(ctx, key, LockOptions{TTL: time.Second})
	if err != nil || other != nil {
		t.Fatalf("try_lock of a held key: %v, %v", other, err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatalf("a second release: %v", err)
	}
	if lease.Held() {
		t.Fatal("held after release")
	}
	select {
	case <-lease.Lost():
		t.Fatal("Lost closed by a normal release")
	default:
	}
	if status, err := client.LockStatus(ctx, key); err != nil || status != nil {
		t.Fatalf("status after release: %+v, %v", status, err)
	}
	next, err := client.TryLock(ctx, key, LockOptions{TTL: 10 * time.Second})
	if err != nil || next == nil {
		t.Fatalf("try_lock of a free key: %v, %v", next, err)
	}
	if next.FencingToken() <= lease.FencingToken() {
		t.Fatalf("fencing token went from %d to %d", lease.FencingToken(), next.FencingToken())
	}
	dropped, err := client.ForceRelease(ctx, key)
	if err != nil || dropped == nil || dropped.LeaseID != next.LeaseID() {
		t.Fatalf("force release: %+v, %v", dropped, err)
	}
	select {
	case <-next.Lost():
	case <-time.After(20 * time.Second):
		t.Fatal("a force-released lease was not reported lost")
	}
	if err := next.Release(ctx); !errors.Is(err, ErrLockNotHeld) {
		t.Fatalf("release of a lost lease: %v", err)
	}
}

func TestLockTimeoutIsTypedError(t *testing.T) {
	client := connect(t)
	ctx := testCtx(t)
	key := unique(t, "timeout")
	lease, err := client.Lock(ctx, key, LockOptions{TTL: 10 * time.Second, Owner: "holder-a"})
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Release(ctx)
	start := time.Now()
	_, err = client.Lock(ctx, key, LockOptions{TTL: time.Second, Wait: 200 * time.Millisecond})
	if !errors.Is(err, ErrLockTimeout) || errors.Is(err, ErrVersionConflict) {
		t.Fatalf("expected ErrLockTimeout, got %v", err)
	}
	var syrosErr *Error
	if !errors.As(err, &syrosErr) || syrosErr.Code != "lock_timeout" || syrosErr.Retryable || syrosErr.Details["holder_owner"] != "holder-a" {
		t.Fatalf("error record %#v", syrosErr)
	}
	if elapsed := time.Since(start); elapsed < 150*time.Millisecond {
		t.Fatalf("returned after %s, before the 200 ms wait", elapsed)
	}
	_, err = client.Lock(ctx, "", LockOptions{})
	if !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("empty key: %v", err)
	}
}

func TestCancelledLockReturnsPromptlyAndLeavesNoLease(t *testing.T) {
	client := connect(t)
	ctx := testCtx(t)
	key := unique(t, "cancel")
	holder, err := client.Lock(ctx, key, LockOptions{TTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithCancel(ctx)
	result := make(chan error, 1)
	go func() {
		lease, err := client.Lock(waitCtx, key, LockOptions{TTL: 10 * time.Second, Wait: 30 * time.Second})
		if lease != nil {
			err = errors.New("got a lease")
		}
		result <- err
	}()
	time.Sleep(300 * time.Millisecond)
	cancelled := time.Now()
	cancel()
	select {
	case err := <-result:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("expected context.Canceled, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Lock did not return within 5 s of its context being cancelled")
	}
	t.Logf("returned %s after cancel", time.Since(cancelled))
	// The cancelled waiter must not get the lock once the holder releases it.
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if status, err := client.LockStatus(ctx, key); err != nil || status != nil {
		t.Fatalf("a lease was left behind: %+v, %v", status, err)
	}
	// The context's deadline ends a wait too.
	holder, err = client.Lock(ctx, key, LockOptions{TTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Release(ctx)
	deadlineCtx, cancelDeadline := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelDeadline()
	start := time.Now()
	_, err = client.Lock(deadlineCtx, key, LockOptions{TTL: 10 * time.Second, Wait: 30 * time.Second})
	if !errors.Is(err, ErrLockTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait past the deadline: %v", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("the deadline did not end the wait (%s)", elapsed)
	}
}

// counterIncrement reads the counter file, waits a little, and writes it back plus one: exact
// only under mutual exclusion.
func counterIncrement(path string) error {
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	n := 0
	if len(data) > 0 {
		if n, err = strconv.Atoi(string(data)); err != nil {
			return err
		}
	}
	time.Sleep(time.Millisecond)
	return os.WriteFile(path, []byte(strconv.Itoa(n+1)), 0o644)
}

func lockedIncrements(ctx context.Context, client *Client, key, path string, times int) error {
	for range times {
		lease, err := client.Lock(ctx, key, LockOptions{TTL: 10 * time.Second, Wait: 30 * time.Second})
		if err != nil {
			return err
		}
		if err := counterIncrement(path); err != nil {
			return err
		}
		if err := lease.Release(ctx); err != nil {
			return err
		}
	}
	return nil
}

func readCounter(t *testing.T, path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(string(data))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEightGoroutinesKeepCounterExact(t *testing.T) {
	client := connect(t)
	ctx := testCtx(t)
	key := unique(t, "counter")
	path := filepath.Join(t.TempDir(), "counter")
	const goroutines, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- lockedIncrements(ctx, client, key, path, each)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := readCounter(t, path); n != goroutines*each {
		t.Fatalf("counter %d, expected %d", n, goroutines*each)
	}
}

const helperEnv = "SYROS_GO_TEST_HELPER"

// runHelperProcess is the child of TestThreeProcessesKeepCounterExact: it increments the
// counter under the lock and exits 0 on success.
func runHelperProcess() int {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	client, err := Connect(ctx, Options{Addresses: []string{os.Getenv("SYROS_GO_TEST_ADDRESS")}})
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 1
	}
	defer client.Close()
	times, _ := strconv.Atoi(os.Getenv("SYROS_GO_TEST_TIMES"))
	if err := lockedIncrements(ctx, client, os.Getenv("SYROS_GO_TEST_KEY"), os.Getenv("SYROS_GO_TEST_COUNTER"), times); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 1
	}
	return 0
}

func TestThreeProcessesKeepCounterExact(t *testing.T) {
	key := unique(t, "processes")
	path := filepath.Join(t.TempDir(), "counter")
	const processes, each = 3, 15
	var children []*exec.Cmd
	for range processes {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"=1", "SYROS_GO_TEST_ADDRESS="+server.Address(),
			"SYROS_GO_TEST_KEY="+key, "SYROS_GO_TEST_COUNTER="+path, "SYROS_GO_TEST_TIMES="+strconv.Itoa(each))
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		children = append(children, cmd)
	}
	for _, cmd := range children {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("a contending process failed: %v", err)
		}
	}
	if n := readCounter(t, path); n != processes*each {
		t.Fatalf("counter %d, expected %d", n, processes*each)
	}
}

func TestLostClosesWhenServerGonePastTTL(t *testing.T) {
	own, err := syrostest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer own.Stop()
	ctx := testCtx(t)
	client, err := Connect(ctx, Options{Addresses: []string{own.Address()}, CallTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	lease, err := client.Lock(ctx, unique(t, "lost"), LockOptions{TTL: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Renewals keep it past its TTL while the server is up.
	time.Sleep(2 * time.Second)
	select {
	case <-lease.Lost():
		t.Fatal("lost while the server was up")
	default:
	}
	own.Kill9()
	killed := time.Now()
	select {
	case <-lease.Lost():
		t.Logf("lost %s after the server was killed (TTL 1.5 s)", time.Since(killed))
	case <-time.After(15 * time.Second):
		t.Fatal("Lost was not closed 15 s after the server was killed (TTL 1.5 s)")
	}
	if lease.Held() {
		t.Fatal("a lost lease reports held")
	}
}

// TestConcurrentCallsReachTheirCallers: 32 goroutines lock and release their own keys at once;
// every result (delivered through the completion queue, in batches) reaches the goroutine that
// made the call: its lease names its key, and its fencing tokens only grow.
func TestConcurrentCallsReachTheirCallers(t *testing.T) {
	client := connect(t)
	ctx := testCtx(t)
	if !usesCompletionQueue() {
		t.Fatal("the SDK does not use the C ABI's completion queue")
	}
	prefix := unique(t, "route")
	const goroutines, cycles = 32, 40
	errs := make(chan error, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := prefix + "/" + strconv.Itoa(g)
			var last uint64
			for range cycles {
				lease, err := client.Lock(ctx, key, LockOptions{TTL: 10 * time.Second})
				if err != nil {
					errs <- err
					return
				}
				if lease.Key() != key || lease.FencingToken() <= last {
					errs <- fmt.Errorf("goroutine %d got a lease on %q with token %d (its key %q, last token %d)", g, lease.Key(), lease.FencingToken(), key, last)
					return
				}
				last = lease.FencingToken()
				if err := lease.Release(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if held, err := client.ListLocks(ctx, prefix, 0); err != nil || len(held) != 0 {
		t.Fatalf("locks left held: %+v, %v", held, err)
	}
}

// TestCancelWhileManyCallsInFlightLeaksNothing: 64 calls in flight, half waiting for a held key
// and half acquiring free keys, all cancelled at once: every call returns, no C handle or
// pending call is left, and no lease stays behind on any of the keys.
func TestCancelWhileManyCallsInFlightLeaksNothing(t *testing.T) {
	client := connect(t)
	ctx := testCtx(t)
	prefix := unique(t, "inflight")
	holder, err := client.Lock(ctx, prefix+"/held", LockOptions{TTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	handlesBefore := liveHandles()
	callCtx, cancel := context.WithCancel(ctx)
	const calls = 64
	var started, wg sync.WaitGroup
	leases := make(chan *Lease, calls)
	errs := make(chan error, calls)
	for i := range calls {
		key := prefix + "/held"
		if i%2 == 1 {
			key = prefix + "/free/" + strconv.Itoa(i)
		}
		started.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			// The free keys are acquired again and again until the cancel lands mid-call.
			for {
				lease, err := client.Lock(callCtx, key, LockOptions{TTL: 10 * time.Second, Wait: 30 * time.Second})
				if err != nil {
					errs <- err
					return
				}
				if callCtx.Err() != nil {
					leases <- lease // acquired just before the cancel: the caller owns it
					return
				}
				if err := lease.Release(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	started.Wait()
	time.Sleep(200 * time.Millisecond)
	cancel()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("calls did not return within 10 s of their context being cancelled")
	}
	close(errs)
	close(leases)
	for err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("a cancelled call returned %v, want context.Canceled", err)
		}
	}
	for lease := range leases {
		if err := lease.Release(ctx); err != nil {
			t.Error(err)
		}
	}
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if n := pendingCalls(); n != 0 {
		t.Fatalf("%d C calls pending after every call returned", n)
	}
	if n := liveHandles(); n != handlesBefore-1 {
		t.Fatalf("%d C handles live, want %d (those before, less the released holder)", n, handlesBefore-1)
	}
	// A cancelled waiter must not be granted the held key once it is free.
	time.Sleep(500 * time.Millisecond)
	if held, err := client.ListLocks(ctx, prefix, 0); err != nil || len(held) != 0 {
		t.Fatalf("leases left behind: %+v, %v", held, err)
	}
}
