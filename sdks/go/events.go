package syros

/*
#include "syros.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"time"
)

// Events is the event store (Client.Events).
type Events struct{ client *Client }

// Events returns the client's event-store operations.
func (c *Client) Events() *Events { return &Events{client: c} }

// EventData is an event to append.
type EventData struct {
	// Type is the event's type name.
	Type string
	// Data is the event's JSON document (nil = {}).
	Data json.RawMessage
	// Metadata is an optional JSON document.
	Metadata json.RawMessage
	// ID is a unique id ("" = the client makes one, the same for its retries).
	ID string
}

type newEventJSON struct {
	EventID      *string `json:"event_id,omitempty"`
	EventType    string  `json:"event_type"`
	DataJSON     string  `json:"data_json"`
	MetadataJSON *string `json:"metadata_json,omitempty"`
}

// RecordedEvent is a stored event.
type RecordedEvent struct {
	// Stream is its stream.
	Stream string `json:"stream"`
	// Version is its version within the stream (0, 1, 2, ... without gaps).
	Version uint64 `json:"version"`
	// GlobalPosition is its position among all events (from 1).
	GlobalPosition uint64 `json:"global_position"`
	// ID is the event id.
	ID string `json:"event_id"`
	// Type is the event's type name.
	Type string `json:"event_type"`
	// DataJSON is the JSON document, as text.
	DataJSON string `json:"data_json"`
	// MetadataJSON is the JSON metadata, nil when there is none.
	MetadataJSON *string `json:"metadata_json"`
	// CreatedAtMs is when it was appended (ms since the Unix epoch, server clock).
	CreatedAtMs int64 `json:"created_at_ms"`
}

// Decode unmarshals the event's data into v.
func (e RecordedEvent) Decode(v any) error { return json.Unmarshal([]byte(e.DataJSON), v) }

// ExpectedVersion is the version a stream must be at for an append to succeed: Any, NoStream,
// or Exact(v).
type ExpectedVersion struct{ value string }

var (
	// Any accepts any version, including no stream.
	Any = ExpectedVersion{`"any"`}
	// NoStream requires that the stream does not exist yet.
	NoStream = ExpectedVersion{`"no_stream"`}
)

// Exact requires that the stream's last event has version v.
func Exact(v uint64) ExpectedVersion { return ExpectedVersion{strconv.FormatUint(v, 10)} }

// AppendResult is what an append wrote.
type AppendResult struct {
	// LastVersion is the version of the last event appended.
	LastVersion uint64 `json:"last_version"`
	// FirstPosition is the global position of the first event appended.
	FirstPosition uint64 `json:"first_position"`
	// LastPosition is the global position of the last event appended.
	LastPosition uint64 `json:"last_position"`
}

// Append appends events to stream atomically if it is at expected; otherwise it fails with
// ErrVersionConflict and writes nothing.
func (e *Events) Append(ctx context.Context, stream string, events []EventData, expected ExpectedVersion) (AppendResult, error) {
	var result AppendResult
	records := make([]newEventJSON, 0, len(events))
	for _, event := range events {
		data := string(event.Data)
		if len(event.Data) == 0 {
			data = "{}"
		}
		record := newEventJSON{EventType: event.Type, DataJSON: data, EventID: optString(event.ID)}
		if len(event.Metadata) > 0 {
			metadata := string(event.Metadata)
			record.MetadataJSON = &metadata
		}
		records = append(records, record)
	}
	body, err := cjson(records)
	if err != nil {
		return result, err
	}
	if expected.value == "" {
		expected = Any
	}
	o, err := e.client.start(ctx, func(p *C.SyrosClient, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		s, sn := cstr(stream)
		b, bn := cbytes(body)
		x, xn := cstr(expected.value)
		return C.syros_client_append(p, s, sn, b, bn, x, xn, cancel, cb, ud)
	})
	if err != nil {
		return result, err
	}
	if err := o.decode(&result); err != nil {
		return result, err
	}
	return result, nil
}

// ReadOptions say which page to read.
type ReadOptions struct {
	// From is the first version (stream) or global position (all) to read, inclusive.
	From uint64
	// FromEnd starts at the newest event (for backwards reads), ignoring From.
	FromEnd bool
	// Backwards reads newest first.
	Backwards bool
	// Limit is the most events to read (0 = the server's default).
	Limit int
}

// ReadResult is a page of events.
type ReadResult struct {
	// Events are the events read.
	Events []RecordedEvent `json:"events"`
	// Last is the stream's last version (stream reads) or the store's last position (all).
	Last uint64 `json:"last"`
	// Exists tells whether the stream (or any event) exists.
	Exists bool `json:"exists"`
}

type readJSON struct {
	Stream    *string `json:"stream"`
	Start     *uint64 `json:"start"`
	Backwards bool    `json:"backwards"`
	Limit     uint32  `json:"limit"`
}

// Read reads a page of one stream.
func (e *Events) Read(ctx context.Context, stream string, opts ReadOptions) (ReadResult, error) {
	return e.read(ctx, &stream, opts)
}

// ReadAll reads a page of all streams, by global position.
func (e *Events) ReadAll(ctx context.Context, opts ReadOptions) (ReadResult, error) {
	return e.read(ctx, nil, opts)
}

func (e *Events) read(ctx context.Context, stream *string, opts ReadOptions) (ReadResult, error) {
	var result ReadResult
	request := readJSON{Stream: stream, Backwards: opts.Backwards, Limit: uint32(max(opts.Limit, 0))}
	if !opts.FromEnd {
		from := opts.From
		request.Start = &from
	}
	body, err := cjson(request)
	if err != nil {
		return result, err
	}
	o, err := e.client.start(ctx, func(p *C.SyrosClient, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		b, bn := cbytes(body)
		return C.syros_client_read(p, b, bn, cancel, cb, ud)
	})
	if err != nil {
		return result, err
	}
	if err := o.decode(&result); err != nil {
		return result, err
	}
	if result.Events == nil {
		result.Events = []RecordedEvent{}
	}
	return result, nil
}

// SubscribeFrom is where a subscription starts: FromStart, FromEnd, or From(position).
type SubscribeFrom struct{ value string }

var (
	// FromStart starts at the first event.
	FromStart = SubscribeFrom{`"start"`}
	// FromEnd delivers only events appended from now on.
	FromEnd = SubscribeFrom{`"end"`}
)

// From starts at this version (stream) or global position (all), inclusive.
func From(position uint64) SubscribeFrom { return SubscribeFrom{strconv.FormatUint(position, 10)} }

// Subscribe follows stream: catch-up from `from`, then live. It resumes after a reconnection
// with no gap and no duplicate. Close the subscription when done.
func (e *Events) Subscribe(ctx context.Context, stream string, from SubscribeFrom) (*Subscription, error) {
	return e.subscribe(ctx, &stream, from)
}

// SubscribeAll follows every stream, by global position.
func (e *Events) SubscribeAll(ctx context.Context, from SubscribeFrom) (*Subscription, error) {
	return e.subscribe(ctx, nil, from)
}

func (e *Events) subscribe(ctx context.Context, stream *string, from SubscribeFrom) (*Subscription, error) {
	if from.value == "" {
		from = FromStart
	}
	o, err := e.client.start(ctx, func(p *C.SyrosClient, cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
		s, sn := cOptStr(stream)
		f, fn := cstr(from.value)
		return C.syros_client_subscribe(p, s, sn, f, fn, cancel, cb, ud)
	})
	if err != nil {
		return nil, err
	}
	return newSubscription(e.client, o.subscription), nil
}

// Subscription delivers events on its channel (Events) until it ends; then the channel is
// closed and Err tells why (nil after Close).
type Subscription struct {
	client *Client
	events chan RecordedEvent
	stop   context.CancelFunc
	done   chan struct{}
	ptr    *C.SyrosSubscription

	errMu sync.Mutex
	err   error
	once  sync.Once
}

func newSubscription(c *Client, ptr *C.SyrosSubscription) *Subscription {
	ctx, stop := context.WithCancel(context.Background())
	s := &Subscription{client: c, events: make(chan RecordedEvent), stop: stop, done: make(chan struct{}), ptr: ptr}
	go s.pump(ctx)
	if !c.track(s) {
		s.Close()
	}
	return s
}

// pump pulls events from the core and hands them to the channel.
func (s *Subscription) pump(ctx context.Context) {
	defer close(s.done)
	defer close(s.events)
	for {
		o, err := call(ctx, func(cancel *C.SyrosCancel, cb C.SyrosCallback, ud C.uintptr_t) C.int32_t {
			return C.syros_subscription_next(s.ptr, -1, cancel, cb, ud)
		})
		if err != nil {
			if ctx.Err() == nil {
				s.setErr(err)
			}
			return
		}
		var item struct {
			Kind  string         `json:"kind"`
			Event *RecordedEvent `json:"event"`
		}
		if err := o.decode(&item); err != nil {
			s.setErr(err)
			return
		}
		switch item.Kind {
		case "event":
			select {
			case s.events <- *item.Event:
			case <-ctx.Done():
				return
			}
		case "timed_out":
		default:
			return
		}
	}
}

func (s *Subscription) setErr(err error) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	s.err = err
}

// Events is the channel events arrive on, in order; it is closed when the subscription ends.
func (s *Subscription) Events() <-chan RecordedEvent { return s.events }

// Err is the error that ended the subscription (nil while it runs, and after Close).
func (s *Subscription) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// Next waits for the next event until ctx ends; ok is false when the subscription ended (see
// Err).
func (s *Subscription) Next(ctx context.Context) (event RecordedEvent, ok bool, err error) {
	select {
	case event, ok = <-s.events:
		return event, ok, nil
	case <-ctx.Done():
		return event, false, ctx.Err()
	}
}

// Close stops following (idempotent) and waits until the channel is closed.
func (s *Subscription) Close() error {
	s.once.Do(func() {
		C.syros_subscription_close(s.ptr)
		s.stop()
		<-s.done
		C.syros_subscription_free(s.ptr)
		s.client.untrack(s)
	})
	return nil
}

func (s *Subscription) closeForClient() { _ = s.Close() }

// waitFor is how long to wait for ctx's deadline, or the default when it has none.
func waitFor(ctx context.Context, fallback time.Duration) time.Duration {
	if deadline, ok := ctx.Deadline(); ok {
		return max(time.Until(deadline), time.Millisecond)
	}
	return fallback
}
