package syros

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestClientBasics(t *testing.T) {
	client := connect(t)
	ctx := testCtx(t)
	if err := client.CheckHealth(ctx); err != nil {
		t.Fatal(err)
	}
	if err := client.SetAuthToken("some-token"); err != nil {
		t.Fatal(err)
	}
	if err := client.SetAuthToken(""); err != nil {
		t.Fatal(err)
	}
	stats, err := client.Stats()
	if err != nil || stats.Calls == 0 {
		t.Fatalf("stats %+v, %v", stats, err)
	}
	if _, err := Connect(ctx, Options{Addresses: []string{"not an address"}}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad address: %v", err)
	}
	client.Close()
	client.Close()
	if _, _, err := client.Cache().Get(ctx, "k"); !errors.Is(err, ErrCancelled) {
		t.Fatalf("a call on a closed client: %v", err)
	}
}

func TestCache(t *testing.T) {
	client := connect(t)
	ctx := testCtx(t)
	cache := client.Cache()
	key, tag := unique(t, "cache"), unique(t, "tag")
	if _, ok, err := cache.Get(ctx, key); err != nil || ok {
		t.Fatalf("missing key: %v %v", ok, err)
	}
	if err := cache.Set(ctx, key, []byte("a\x00b"), SetOptions{TTL: time.Minute, Tags: []string{tag}}); err != nil {
		t.Fatal(err)
	}
	entry, err := cache.GetEntry(ctx, key)
	if err != nil || entry == nil || string(entry.Value) != "a\x00b" || entry.ExpiresAtMs == nil || !slices.Equal(entry.Tags, []string{tag}) {
		t.Fatalf("entry %+v, %v", entry, err)
	}
	if err := cache.Set(ctx, key+"-2", []byte("b"), SetOptions{Tags: []string{tag}}); err != nil {
		t.Fatal(err)
	}
	if removed, err := cache.InvalidateTag(ctx, tag); err != nil || removed != 2 {
		t.Fatalf("invalidate: %d, %v", removed, err)
	}
	if _, ok, _ := cache.Get(ctx, key); ok {
		t.Fatal("an invalidated key is still there")
	}
	if err := cache.Set(ctx, key, []byte("x"), SetOptions{}); err != nil {
		t.Fatal(err)
	}
	if existed, err := cache.Delete(ctx, key); err != nil || !existed {
		t.Fatalf("delete: %v %v", existed, err)
	}
	if existed, err := cache.Delete(ctx, key); err != nil || existed {
		t.Fatalf("delete again: %v %v", existed, err)
	}
}

func TestGetOrComputeSingleFlight(t *testing.T) {
	client := connect(t)
	ctx := testCtx(t)
	key := unique(t, "compute")
	var computed atomic.Int32
	var wg sync.WaitGroup
	values := make(chan string, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			value, err := client.Cache().GetOrCompute(ctx, key, SetOptions{TTL: time.Minute}, func(context.Context) ([]byte, error) {
				computed.Add(1)
				time.Sleep(200 * time.Millisecond)
				return []byte("computed"), nil
			})
			if err != nil {
				t.Error(err)
			}
			values <- string(value)
		}()
	}
	wg.Wait()
	close(values)
	for value := range values {
		if value != "computed" {
			t.Fatalf("value %q", value)
		}
	}
	if n := computed.Load(); n != 1 {
		t.Fatalf("computed %d times, expected once", n)
	}
	if value, ok, err := client.Cache().Get(ctx, key); err != nil || !ok || string(value) != "computed" {
		t.Fatalf("stored %q %v %v", value, ok, err)
	}
	failing := errors.New("no source")
	_, err := client.Cache().GetOrCompute(ctx, key+"-fail", SetOptions{}, func(context.Context) ([]byte, error) {
		return nil, failing
	})
	if !errors.Is(err, ErrCallbackFailed) || !errors.Is(err, failing) {
		t.Fatalf("a failed compute: %v", err)
	}
	if _, ok, _ := client.Cache().Get(ctx, key+"-fail"); ok {
		t.Fatal("a failed compute stored a value")
	}
}

func TestEvents(t *testing.T) {
	client := connect(t)
	ctx := testCtx(t)
	events := client.Events()
	stream := unique(t, "stream")
	sub, err := events.Subscribe(ctx, stream, FromStart)
	if err != nil {
		t.Fatal(err)
	}
	result, err := events.Append(ctx, stream, []EventData{
		{Type: "created", Data: json.RawMessage(`{"n":1}`)},
		{Type: "paid", Data: json.RawMessage(`{"n":2}`), Metadata: json.RawMessage(`{"by":"go"}`)},
	}, NoStream)
	if err != nil || result.LastVersion != 1 || result.LastPosition != result.FirstPosition+1 {
		t.Fatalf("append %+v, %v", result, err)
	}
	_, err = events.Append(ctx, stream, []EventData{{Type: "late"}}, Exact(0))
	if !errors.Is(err, ErrVersionConflict) {
		t.Fatalf("expected ErrVersionConflict, got %v", err)
	}
	if _, err := events.Append(ctx, stream, []EventData{{Type: "shipped"}}, Exact(1)); err != nil {
		t.Fatal(err)
	}
	page, err := events.Read(ctx, stream, ReadOptions{})
	if err != nil || len(page.Events) != 3 || !page.Exists || page.Last != 2 {
		t.Fatalf("read %+v, %v", page, err)
	}
	var data struct{ N int }
	if err := page.Events[1].Decode(&data); err != nil || data.N != 2 || page.Events[1].MetadataJSON == nil {
		t.Fatalf("event %+v", page.Events[1])
	}
	backwards, err := events.Read(ctx, stream, ReadOptions{FromEnd: true, Backwards: true, Limit: 1})
	if err != nil || len(backwards.Events) != 1 || backwards.Events[0].Type != "shipped" {
		t.Fatalf("backwards %+v, %v", backwards, err)
	}
	all, err := events.ReadAll(ctx, ReadOptions{From: page.Events[0].GlobalPosition, Limit: 3})
	if err != nil || len(all.Events) == 0 || all.Events[0].ID != page.Events[0].ID {
		t.Fatalf("read all %+v, %v", all, err)
	}
	for want := range uint64(3) {
		select {
		case event, ok := <-sub.Events():
			if !ok || event.Version != want || event.Stream != stream {
				t.Fatalf("subscription got %+v (ok %v), want version %d", event, ok, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no event %d on the subscription", want)
		}
	}
	if _, err := events.Append(ctx, stream, []EventData{{Type: "live"}}, Any); err != nil {
		t.Fatal(err)
	}
	event, ok, err := sub.Next(ctx)
	if err != nil || !ok || event.Type != "live" || event.Version != 3 {
		t.Fatalf("live event %+v %v %v", event, ok, err)
	}
	followAll, err := events.SubscribeAll(ctx, FromEnd)
	if err != nil {
		t.Fatal(err)
	}
	defer followAll.Close()
	appended, err := events.Append(ctx, stream, []EventData{{Type: "seen-by-all"}}, Exact(3))
	if err != nil {
		t.Fatal(err)
	}
	for {
		event, ok, err := followAll.Next(ctx)
		if err != nil || !ok {
			t.Fatalf("subscribe all: %v %v (%v)", ok, err, followAll.Err())
		}
		if event.GlobalPosition == appended.LastPosition {
			if event.Type != "seen-by-all" || event.Stream != stream {
				t.Fatalf("subscribe all got %+v", event)
			}
			break
		}
	}
	sub.Close()
	if _, ok := <-sub.Events(); ok {
		t.Fatal("the channel is open after Close")
	}
	if sub.Err() != nil {
		t.Fatalf("Err after Close: %v", sub.Err())
	}
}

func TestSagaWithGoHandlersCompensates(t *testing.T) {
	client := connect(t)
	ctx := testCtx(t)
	service := unique(t, "svc")
	var mu sync.Mutex
	var calls []string
	record := func(name string) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, name)
	}
	worker := client.Worker(service, WorkerOptions{MaxConcurrent: 4})
	worker.Action("reserve", func(ctx context.Context, task *Task) (any, error) {
		record("reserve")
		var input struct{ Order string }
		if err := task.Decode(&input); err != nil {
			return nil, err
		}
		return map[string]string{"reservation": "r-" + input.Order}, nil
	})
	worker.Compensation("release", func(ctx context.Context, task *Task) (any, error) {
		record("release")
		var reserved struct{ Reservation string }
		if ok, err := task.Output("reserve", &reserved); !ok || err != nil || reserved.Reservation != "r-42" {
			return nil, &TaskError{Type: "bad_output", Message: "reserve's output is missing", NonRetryable: true}
		}
		if !task.IsCompensation || task.IdempotencyKey == "" {
			return nil, errors.New("not a compensation")
		}
		return nil, nil
	})
	worker.Action("charge", func(ctx context.Context, task *Task) (any, error) {
		record("charge")
		return nil, &TaskError{Type: "card_declined", Message: "declined", NonRetryable: true}
	})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- worker.Run(runCtx) }()

	saga, err := client.Sagas().Start(ctx, StartSaga{
		Name:  "order",
		Input: map[string]string{"order": "42"},
		Steps: []Step{
			{Name: "reserve", Service: service, Action: "reserve", Compensation: "release"},
			{Name: "charge", Service: service, Action: "charge"},
		},
		IdempotencyKey: unique(t, "order"),
	})
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, cancelWait := context.WithTimeout(ctx, 30*time.Second)
	defer cancelWait()
	final, err := client.Sagas().Wait(waitCtx, saga.ID)
	if err != nil {
		t.Fatal(err)
	}
	if final.State != SagaCompensated || !final.State.Final() {
		t.Fatalf("state %s (%v)", final.State, final.Error)
	}
	mu.Lock()
	got := slices.Clone(calls)
	mu.Unlock()
	if !slices.Equal(got, []string{"reserve", "charge", "release"}) {
		t.Fatalf("handler calls %v", got)
	}
	got2, err := client.Sagas().Get(ctx, saga.ID)
	if err != nil || got2.ID != saga.ID || len(got2.Steps) != 2 {
		t.Fatalf("get %+v, %v", got2, err)
	}
	listed, err := client.Sagas().List(ctx, ListOptions{State: SagaCompensated, Name: "order"})
	if err != nil || !slices.ContainsFunc(listed, func(s SagaInfo) bool { return s.ID == saga.ID }) {
		t.Fatalf("list: %d sagas, %v", len(listed), err)
	}
	again, err := client.Sagas().Start(ctx, StartSaga{Name: "order", Steps: []Step{{Name: "reserve", Service: service, Action: "reserve"}}, IdempotencyKey: *saga.IdempotencyKey})
	if err != nil || again.ID != saga.ID {
		t.Fatalf("idempotent start: %v, %v", again.ID, err)
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
}

func TestSagaCancel(t *testing.T) {
	client := connect(t)
	ctx := testCtx(t)
	saga, err := client.Sagas().Start(ctx, StartSaga{Name: "nobody-runs-it", Steps: []Step{{Name: "a", Service: unique(t, "idle"), Action: "a"}}})
	if err != nil {
		t.Fatal(err)
	}
	cancelled, err := client.Sagas().Cancel(ctx, saga.ID)
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if cancelled.State != SagaCancelled {
		if cancelled, err = client.Sagas().Wait(waitCtx, saga.ID); err != nil || cancelled.State != SagaCancelled {
			t.Fatalf("cancel: %s, %v", cancelled.State, err)
		}
	}
	if _, err := client.Sagas().Get(ctx, "no-such-saga"); !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("unknown saga: %v", err)
	}
}

// sdkGoroutines lists the stacks of goroutines (other than the caller) running code of this
// package, outside the test runner. Goroutines that the Go runtime keeps for C threads that have called back into Go
// (one per core runtime thread, "locked to thread") hold no SDK frame and are not counted, nor is
// the process's one completion-queue drainer (drainCompletions), which lives as long as the process.
func sdkGoroutines() []string {
	buf := make([]byte, 1<<20)
	stacks := strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n")
	var found []string
	for _, stack := range stacks[1:] {
		// The test runner's own goroutines (TestMain, other tests' runners) hold testing frames.
		if strings.Contains(stack, "github.com/syros/syros/sdks/go.") && !strings.Contains(stack, "\ntesting.") &&
			!strings.Contains(stack, "github.com/syros/syros/sdks/go.drainCompletions(") {
			found = append(found, stack)
		}
	}
	return found
}

// TestCloseLeaksNothing: after Close, no C ABI handle is live, no call pending and no goroutine
// of the SDK running, although a lease (watched), a subscription and a worker were still open.
func TestCloseLeaksNothing(t *testing.T) {
	waitSDKGoroutines := func() []string {
		deadline := time.Now().Add(10 * time.Second)
		for {
			found := sdkGoroutines()
			if len(found) == 0 || time.Now().After(deadline) {
				return found
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if found := waitSDKGoroutines(); len(found) > 0 {
		t.Fatalf("SDK goroutines left by earlier tests:\n%s", strings.Join(found, "\n\n"))
	}
	handlesBefore := liveHandles()
	ctx := testCtx(t)
	client, err := Connect(ctx, Options{Addresses: []string{server.Address()}})
	if err != nil {
		t.Fatal(err)
	}
	key := unique(t, "leak")
	lease, err := client.Lock(ctx, key, LockOptions{TTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Events().Subscribe(ctx, unique(t, "s"), FromStart); err != nil {
		t.Fatal(err)
	}
	worker := client.Worker(unique(t, "w"), WorkerOptions{})
	go worker.Run(context.Background())
	if _, err := client.Cache().GetOrCompute(ctx, key, SetOptions{}, func(context.Context) ([]byte, error) { return []byte("v"), nil }); err != nil {
		t.Fatal(err)
	}
	_ = lease.Lost()                   // starts the lease's watch goroutine
	time.Sleep(300 * time.Millisecond) // the worker registers
	if open := len(sdkGoroutines()); open < 3 {
		t.Fatalf("%d SDK goroutines with a watched lease, a subscription and a worker open", open)
	}
	if liveHandles() <= handlesBefore {
		t.Fatalf("no handle counted while objects are open (%d)", liveHandles())
	}
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	if n := liveHandles(); n != handlesBefore {
		t.Fatalf("%d C handles live after Close (before: %d)", n, handlesBefore)
	}
	if n := pendingCalls(); n != 0 {
		t.Fatalf("%d C calls pending after Close", n)
	}
	if found := waitSDKGoroutines(); len(found) > 0 {
		t.Fatalf("%d SDK goroutines after Close:\n%s", len(found), strings.Join(found, "\n\n"))
	}
	if lease.Held() {
		t.Fatal("Close left the lease held")
	}
	other := connect(t)
	if status, err := other.LockStatus(ctx, key); err != nil || status != nil {
		t.Fatalf("Close did not release the lease: %+v, %v", status, err)
	}
}
