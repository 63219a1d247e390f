// Command conformance is the Go runner of the conformance scenarios (tests/conformance/scenarios)
// over the Go SDK (sdks/go), mirroring the Rust and Node runners: a fresh `syros serve` per
// scenario (the one launcher mechanism, sdks/go/syrostest), one line per scenario (`PASS name` /
// `FAIL name: reason`) and `N passed, N failed`; exits 1 when any failed or none ran.
//
// Usage: go run . [SCENARIO_DIR] [NAME_FILTER]
// (SYROS_BIN names the server; SYROS_TEST_BACKEND=redis-postgres picks the backend.)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	syros "github.com/syros/syros/sdks/go"
	"github.com/syros/syros/sdks/go/syrostest"
)

type step map[string]any

type stepError struct{ msg string }

func (e stepError) Error() string { return e.msg }

func fail(format string, args ...any) { panic(stepError{fmt.Sprintf(format, args...)}) }

func ensure(cond bool, format string, args ...any) {
	if !cond {
		fail(format, args...)
	}
}

func (s step) text(name string) string {
	v, ok := s[name].(string)
	ensure(ok, "step needs a string %q", name)
	return v
}

func (s step) num(name string, fallback float64) float64 {
	if v, ok := s[name].(float64); ok {
		return v
	}
	return fallback
}

func (s step) ms(name string, fallback float64) time.Duration {
	return time.Duration(s.num(name, fallback)) * time.Millisecond
}

func (s step) expect() map[string]any {
	if e, ok := s["expect"].(map[string]any); ok {
		return e
	}
	return map[string]any{}
}

type pendingLock struct {
	cancel context.CancelFunc
	done   chan struct{}
	lease  *syros.Lease
	err    error
}

type run struct {
	ctx           context.Context
	server        *syrostest.Server
	id            string
	client        *syros.Client
	leases        map[string]*syros.Lease
	pending       map[string]*pendingLock
	subscriptions map[string]*syros.Subscription
	saved         map[string]map[string]any
}

func (r *run) getClient() *syros.Client {
	if r.client == nil {
		client, err := syros.Connect(r.ctx, syros.Options{Addresses: []string{r.server.Address()}, ConnectTimeout: 2 * time.Second, CallTimeout: 10 * time.Second})
		ensure(err == nil, "connect: %v", err)
		r.client = client
	}
	return r.client
}

func (r *run) resolve(value any) any {
	switch v := value.(type) {
	case string:
		if strings.HasPrefix(v, "$") {
			name, field, ok := strings.Cut(v[1:], ".")
			ensure(ok, "reference %s needs a field", v)
			saved, ok := r.saved[name]
			ensure(ok, "nothing saved as %s", name)
			got, ok := saved[field]
			ensure(ok, "%s has no field %s", name, field)
			return got
		}
		return strings.ReplaceAll(v, "{id}", r.id)
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			out[i] = r.resolve(item)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, item := range v {
			out[k] = r.resolve(item)
		}
		return out
	}
	return value
}

// checkError runs fn and checks its error against expect.error (success when absent); true
// when the call succeeded.
func checkError(s step, err error) bool {
	wanted, _ := s.expect()["error"].(string)
	if err == nil {
		ensure(wanted == "", "expected error %s, the call succeeded", wanted)
		return true
	}
	var syrosErr *syros.Error
	ensure(errors.As(err, &syrosErr), "unexpected error %v", err)
	ensure(wanted != "", "unexpected error %s: %s", syrosErr.Code, syrosErr.Message)
	ensure(syrosErr.Code == wanted, "expected error %s, got %s: %s", wanted, syrosErr.Code, syrosErr.Message)
	return false
}

func (r *run) keepLease(name any, lease *syros.Lease) {
	n, ok := name.(string)
	if !ok || n == "" {
		return
	}
	r.saved[n] = map[string]any{"lease_id": lease.LeaseID(), "fencing_token": float64(lease.FencingToken()), "key": lease.Key()}
	r.leases[n] = lease
}

func (r *run) lease(s step) *syros.Lease {
	name := s.text("lease")
	lease, ok := r.leases[name]
	ensure(ok, "no lease saved as %s", name)
	return lease
}

func (r *run) subscription(s step) *syros.Subscription {
	name := s.text("subscription")
	sub, ok := r.subscriptions[name]
	ensure(ok, "no subscription saved as %s", name)
	return sub
}

// lockOptions maps the scenario's milliseconds onto the Go API: wait_ms 0 = do not wait
// (negative Wait), ttl_ms 0 = send a zero TTL for the server to refuse (negative TTL).
func lockOptions(s step) syros.LockOptions {
	opts := syros.LockOptions{TTL: s.ms("ttl_ms", 5000), Wait: s.ms("wait_ms", 0)}
	if opts.TTL == 0 {
		opts.TTL = -1
	}
	if opts.Wait == 0 {
		opts.Wait = -1
	}
	return opts
}

func versionsOf(events []syros.RecordedEvent) []any {
	out := []any{}
	for _, e := range events {
		out = append(out, float64(e.Version))
	}
	return out
}

func (r *run) step(s step) {
	client := r.getClient()
	ctx := r.ctx
	expect := s.expect()
	switch op := s.text("op"); op {
	case "lock":
		lease, err := client.Lock(ctx, s.text("key"), lockOptions(s))
		if checkError(s, err) {
			r.keepLease(s["save"], lease)
		}
	case "try_lock":
		lease, err := client.TryLock(ctx, s.text("key"), lockOptions(s))
		ensure(err == nil, "try_lock: %v", err)
		if acquired, ok := expect["acquired"].(bool); ok {
			ensure((lease != nil) == acquired, "expected acquired=%v", acquired)
		}
		if lease != nil {
			r.keepLease(s["save"], lease)
		}
	case "lock_async":
		lockCtx, cancel := context.WithCancel(ctx)
		p := &pendingLock{cancel: cancel, done: make(chan struct{})}
		opts := lockOptions(s)
		key := s.text("key")
		go func() {
			defer close(p.done)
			p.lease, p.err = client.Lock(lockCtx, key, opts)
		}()
		r.pending[s.text("save")] = p
	case "await_lease":
		name := s.text("name")
		p, ok := r.pending[name]
		ensure(ok, "nothing pending as %s", name)
		delete(r.pending, name)
		select {
		case <-p.done:
			ensure(p.err == nil, "%s failed: %v", name, p.err)
			r.keepLease(name, p.lease)
		case <-time.After(s.ms("within_ms", 5000)):
			p.cancel()
			fail("%s was not granted within %v", name, s.ms("within_ms", 5000))
		}
	case "expect_pending":
		name := s.text("name")
		time.Sleep(s.ms("for_ms", 0))
		p, ok := r.pending[name]
		ensure(ok, "nothing pending as %s", name)
		select {
		case <-p.done:
			fail("%s was already granted (out of order): %v", name, p.err)
		default:
		}
	case "release":
		ensure(r.lease(s).Release(ctx) == nil, "release failed")
	case "renew":
		_, err := r.lease(s).Renew(ctx)
		checkError(s, err)
	case "lease_state":
		lease := r.lease(s)
		if held, ok := expect["held"].(bool); ok {
			ensure(lease.Held() == held, "expected held=%v", held)
		}
		if lost, ok := expect["lost"].(bool); ok {
			isLost := false
			select {
			case <-lease.Lost():
				isLost = true
			default:
			}
			ensure(isLost == lost, "expected lost=%v", lost)
		}
	case "wait_end":
		lease := r.lease(s)
		end := "released"
		select {
		case <-lease.Lost():
			end = "lost"
		case <-time.After(s.ms("timeout_ms", 1000)):
			if lease.Held() {
				end = "timed_out"
			}
		}
		ensure(end == expect["end"], "expected %v, the wait ended %s", expect["end"], end)
	case "lock_status":
		holder, err := client.LockStatus(ctx, s.text("key"))
		ensure(err == nil, "lock_status: %v", err)
		if expect["free"] == true {
			ensure(holder == nil, "expected free, held by %+v", holder)
		}
		if id, ok := expect["lease_id"].(string); ok {
			ensure(holder != nil && holder.LeaseID == id, "expected lease %s, holder %+v", id, holder)
		}
	case "force_release":
		_, err := client.ForceRelease(ctx, s.text("key"))
		ensure(err == nil, "force_release: %v", err)
	case "cache_set":
		var value string
		switch v := s["value"].(type) {
		case string:
			value = v
		case map[string]any:
			repeat, _ := v["repeat"].(string)
			if repeat == "" {
				repeat = "x"
			}
			times, _ := v["times"].(float64)
			value = strings.Repeat(repeat, max(int(times), 1))
		default:
			fail("bad cache value %v", s["value"])
		}
		var tags []string
		if list, ok := s["tags"].([]any); ok {
			for _, tag := range list {
				tags = append(tags, fmt.Sprint(tag))
			}
		}
		checkError(s, client.Cache().Set(ctx, s.text("key"), []byte(value), syros.SetOptions{TTL: s.ms("ttl_ms", 0), Tags: tags}))
	case "cache_get":
		value, ok, err := client.Cache().Get(ctx, s.text("key"))
		ensure(err == nil, "cache_get: %v", err)
		if expect["missing"] == true {
			ensure(!ok, "expected no value")
		}
		if want, isText := expect["value"].(string); isText {
			ensure(ok && string(value) == want, "expected %q, got %q", want, value)
		}
	case "cache_invalidate_tag":
		removed, err := client.Cache().InvalidateTag(ctx, s.text("tag"))
		ensure(err == nil, "invalidate: %v", err)
		if want, ok := expect["removed"].(float64); ok {
			ensure(float64(removed) == want, "removed %d, expected %v", removed, want)
		}
	case "append":
		list, ok := s["events"].([]any)
		ensure(ok, "append needs events")
		events := []syros.EventData{}
		for _, raw := range list {
			e, _ := raw.(map[string]any)
			kind, _ := e["type"].(string)
			if kind == "" {
				kind = "Event"
			}
			data, _ := json.Marshal(e["data"])
			events = append(events, syros.EventData{Type: kind, Data: data})
		}
		expected := syros.Any
		switch v := s["expected"].(type) {
		case float64:
			expected = syros.Exact(uint64(v))
		case string:
			if v == "no_stream" {
				expected = syros.NoStream
			}
		}
		result, err := client.Events().Append(ctx, s.text("stream"), events, expected)
		if checkError(s, err) {
			if want, ok := expect["last_version"].(float64); ok {
				ensure(float64(result.LastVersion) == want, "last version %d, expected %v", result.LastVersion, want)
			}
		}
	case "read":
		page, err := client.Events().Read(ctx, s.text("stream"), syros.ReadOptions{From: 0})
		ensure(err == nil, "read: %v", err)
		if want, ok := expect["versions"]; ok {
			got := versionsOf(page.Events)
			ensure(reflect.DeepEqual(got, want), "versions %v, expected %v", got, want)
		}
		if want, ok := expect["types"]; ok {
			got := []any{}
			for _, e := range page.Events {
				got = append(got, e.Type)
			}
			ensure(reflect.DeepEqual(got, want), "types %v, expected %v", got, want)
		}
	case "subscribe":
		from := syros.FromStart
		switch v := s["from"].(type) {
		case float64:
			from = syros.From(uint64(v))
		case string:
			if v == "end" {
				from = syros.FromEnd
			}
		}
		sub, err := client.Events().Subscribe(ctx, s.text("stream"), from)
		ensure(err == nil, "subscribe: %v", err)
		r.subscriptions[s.text("save")] = sub
	case "next_events":
		sub := r.subscription(s)
		deadline := time.After(s.ms("timeout_ms", 5000))
		got := []any{}
		for len(got) < int(s.num("count", 1)) {
			select {
			case event, ok := <-sub.Events():
				ensure(ok, "the subscription ended: %v", sub.Err())
				got = append(got, float64(event.Version))
			case <-deadline:
				fail("only got versions %v in time", got)
			}
		}
		if want, ok := expect["versions"]; ok {
			ensure(reflect.DeepEqual(got, want), "versions %v, expected %v", got, want)
		}
	case "expect_no_event":
		select {
		case event, ok := <-r.subscription(s).Events():
			fail("expected no event, got %+v (open %v)", event, ok)
		case <-time.After(s.ms("within_ms", 500)):
		}
	case "close":
		r.subscription(s).Close()
	case "start_saga":
		list, ok := s["steps"].([]any)
		ensure(ok, "start_saga needs steps")
		saga := syros.StartSaga{Name: s.text("name"), Input: s["input"]}
		if saga.Input == nil {
			saga.Input = map[string]any{}
		}
		for _, raw := range list {
			st := step(raw.(map[string]any))
			compensation, _ := st["compensation"].(string)
			saga.Steps = append(saga.Steps, syros.Step{Name: st.text("name"), Service: st.text("service"), Action: st.text("action"), Compensation: compensation, Timeout: st.ms("timeout_ms", 0)})
		}
		info, err := client.Sagas().Start(ctx, saga)
		ensure(err == nil, "start_saga: %v", err)
		if name, ok := s["save"].(string); ok {
			r.saved[name] = map[string]any{"saga_id": info.ID}
		}
	case "run_worker":
		r.runWorker(client, s)
	case "compare":
		left, lok := s["left"].(float64)
		right, rok := s["right"].(float64)
		ensure(lok && rok, "compare needs numbers")
		cmp, _ := s["cmp"].(string)
		holds := map[string]bool{">": left > right, ">=": left >= right, "==": left == right, "!=": left != right, "": left == right}
		result, known := holds[cmp]
		ensure(known, "unknown comparison %s", cmp)
		ensure(result, "expected %v %s %v", left, cmp, right)
	case "sleep":
		time.Sleep(s.ms("ms", 0))
	case "restart_server", "start_server":
		ensure(r.server.Restart() == nil, "restart failed")
	case "stop_server":
		r.server.Kill9()
	default:
		fail("unknown operation %q", op)
	}
}

// runWorker runs a worker with the scripted handlers until the saga is final.
func (r *run) runWorker(client *syros.Client, s step) {
	sagaID := s.text("saga")
	var mu sync.Mutex
	calls := []any{}
	worker := client.Worker(s.text("service"), syros.WorkerOptions{MaxConcurrent: 4})
	script, _ := s["script"].(map[string]any)
	for handler, raw := range script {
		behaviour, _ := raw.(map[string]any)
		worker.Action(handler, func(context.Context, *syros.Task) (any, error) {
			mu.Lock()
			calls = append(calls, handler)
			mu.Unlock()
			if output, ok := behaviour["complete"]; ok {
				return output, nil
			}
			failure, _ := behaviour["fail"].(map[string]any)
			kind, _ := failure["error_type"].(string)
			message, _ := failure["message"].(string)
			nonRetryable, _ := failure["non_retryable"].(bool)
			if kind == "" {
				kind = "failed"
			}
			return nil, &syros.TaskError{Type: kind, Message: message, NonRetryable: nonRetryable}
		})
	}
	runCtx, stop := context.WithCancel(r.ctx)
	done := make(chan error, 1)
	go func() { done <- worker.Run(runCtx) }()
	waitCtx, cancel := context.WithTimeout(r.ctx, s.ms("timeout_ms", 20000))
	saga, err := client.Sagas().Wait(waitCtx, sagaID)
	cancel()
	stop()
	<-done
	mu.Lock()
	defer mu.Unlock()
	ensure(err == nil, "the saga did not finish in time (%v); calls so far %v", err, calls)
	expect := s.expect()
	if want, ok := expect["calls"]; ok {
		ensure(reflect.DeepEqual(calls, want), "handlers ran %v, expected %v", calls, want)
	}
	if want, ok := expect["state"].(string); ok {
		ensure(string(saga.State) == want, "saga ended %s, expected %s", saga.State, want)
	}
}

func (r *run) scenario(steps []any) {
	for index, raw := range steps {
		s := step(r.resolve(raw).(map[string]any))
		func() {
			defer func() {
				if p := recover(); p != nil {
					if e, ok := p.(stepError); ok {
						panic(stepError{fmt.Sprintf("step %d (%v): %s", index+1, s["op"], e.msg)})
					}
					panic(p)
				}
			}()
			r.step(s)
		}()
	}
}

func (r *run) finish() {
	for _, p := range r.pending {
		p.cancel()
		<-p.done
	}
	if r.client != nil {
		r.client.Close()
	}
}

func runScenario(name string, steps []any) (err error) {
	server, err := syrostest.Start()
	if err != nil {
		return err
	}
	defer server.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	r := &run{ctx: ctx, server: server, id: fmt.Sprintf("%s-%d", name, os.Getpid()),
		leases: map[string]*syros.Lease{}, pending: map[string]*pendingLock{},
		subscriptions: map[string]*syros.Subscription{}, saved: map[string]map[string]any{}}
	defer r.finish()
	defer func() {
		if p := recover(); p != nil {
			e, ok := p.(stepError)
			if !ok {
				panic(p)
			}
			err = e
		}
	}()
	r.scenario(steps)
	return nil
}

func main() {
	dir := filepath.Join("..", "scenarios")
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	filter := ""
	if len(os.Args) > 2 {
		filter = os.Args[2]
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		fmt.Printf("FAIL runner: %v\n0 passed, 1 failed\n", err)
		os.Exit(1)
	}
	var files []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") {
			files = append(files, e.Name())
		}
	}
	sort.Strings(files)
	backend := syrostest.Backend()
	passed, failed := 0, 0
	for _, file := range files {
		data, err := os.ReadFile(filepath.Join(dir, file))
		var scenario struct {
			Name  string `json:"name"`
			Steps []any  `json:"steps"`
		}
		if err == nil {
			err = json.Unmarshal(data, &scenario)
		}
		if err != nil {
			fmt.Printf("FAIL %s: not valid JSON: %v\n", file, err)
			failed++
			continue
		}
		if filter != "" && !strings.Contains(scenario.Name, filter) {
			continue
		}
		started := time.Now()
		if err := runScenario(scenario.Name, scenario.Steps); err != nil {
			failed++
			fmt.Printf("FAIL %s (%s): %v\n", scenario.Name, backend, err)
		} else {
			passed++
			fmt.Printf("PASS %s (%.1fs, %s)\n", scenario.Name, time.Since(started).Seconds(), backend)
		}
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 || passed == 0 {
		os.Exit(1)
	}
}
