// Command ordersaga runs the order saga with Go handlers: reserve stock, charge the card, ship.
// One order pays, one is declined: the declined order's reservation is released by its
// compensation, in reverse order. It checks both outcomes and exits 1 when they are wrong.
//
//	go run ./ordersaga 127.0.0.1:9090
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"slices"
	"sync"
	"time"

	syros "github.com/syros/syros/sdks/go"
)

type order struct {
	ID     string `json:"id"`
	Amount int    `json:"amount"`
}

// inventory is the service's own state, updated idempotently by task idempotency key.
type inventory struct {
	mu       sync.Mutex
	reserved map[string]bool
	seen     map[string]bool
	journal  []string
}

func (inv *inventory) once(key string, fn func()) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.seen[key] {
		return // a redelivery: already done
	}
	inv.seen[key] = true
	fn()
}

func main() {
	if len(os.Args) != 2 {
		log.Fatalf("usage: %s HOST:PORT", os.Args[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	client, err := syros.Connect(ctx, syros.Options{Addresses: []string{os.Args[1]}})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	service := fmt.Sprintf("orders-%d", os.Getpid())
	inv := &inventory{reserved: map[string]bool{}, seen: map[string]bool{}}
	worker := client.Worker(service, syros.WorkerOptions{MaxConcurrent: 16})
	worker.Action("reserve", func(ctx context.Context, t *syros.Task) (any, error) {
		var o order
		if err := t.Decode(&o); err != nil {
			return nil, &syros.TaskError{Type: "bad_input", Message: err.Error(), NonRetryable: true}
		}
		inv.once(t.IdempotencyKey, func() {
			inv.reserved[o.ID] = true
			inv.journal = append(inv.journal, "reserve "+o.ID)
		})
		return map[string]string{"reservation": "res-" + o.ID}, nil
	})
	worker.Compensation("release", func(ctx context.Context, t *syros.Task) (any, error) {
		var o order
		if err := t.Decode(&o); err != nil {
			return nil, err
		}
		inv.once(t.IdempotencyKey, func() {
			delete(inv.reserved, o.ID)
			inv.journal = append(inv.journal, "release "+o.ID)
		})
		return nil, nil
	})
	worker.Action("charge", func(ctx context.Context, t *syros.Task) (any, error) {
		var o order
		if err := t.Decode(&o); err != nil {
			return nil, err
		}
		if o.Amount > 1000 {
			return nil, &syros.TaskError{Type: "card_declined", Message: fmt.Sprintf("%d is over the limit", o.Amount), NonRetryable: true}
		}
		var reserved struct{ Reservation string }
		if ok, err := t.Output("reserve", &reserved); !ok || err != nil {
			return nil, fmt.Errorf("no reservation before charging: %v", err)
		}
		return map[string]string{"payment": "pay-" + o.ID, "for": reserved.Reservation}, nil
	})
	worker.Action("ship", func(ctx context.Context, t *syros.Task) (any, error) {
		var o order
		_ = t.Decode(&o)
		inv.once(t.IdempotencyKey, func() { inv.journal = append(inv.journal, "ship "+o.ID) })
		return map[string]bool{"shipped": true}, nil
	})
	runCtx, stop := context.WithCancel(ctx)
	running := make(chan error, 1)
	go func() { running <- worker.Run(runCtx) }()

	steps := []syros.Step{
		{Name: "reserve", Service: service, Action: "reserve", Compensation: "release"},
		{Name: "charge", Service: service, Action: "charge"},
		{Name: "ship", Service: service, Action: "ship"},
	}
	results := map[string]syros.SagaState{}
	for _, o := range []order{{ID: "A-1", Amount: 120}, {ID: "B-2", Amount: 5000}} {
		saga, err := client.Sagas().Start(ctx, syros.StartSaga{Name: "order", Steps: steps, Input: o, IdempotencyKey: service + "-" + o.ID})
		if err != nil {
			log.Fatal(err)
		}
		waitCtx, cancelWait := context.WithTimeout(ctx, 30*time.Second)
		final, err := client.Sagas().Wait(waitCtx, saga.ID)
		cancelWait()
		if err != nil {
			log.Fatalf("order %s: %v", o.ID, err)
		}
		fmt.Printf("order %s: saga %s ended %s\n", o.ID, final.ID, final.State)
		results[o.ID] = final.State
	}
	stop()
	if err := <-running; err != nil {
		log.Fatal(err)
	}

	inv.mu.Lock()
	defer inv.mu.Unlock()
	fmt.Printf("inventory journal: %v\n", inv.journal)
	wantJournal := []string{"reserve A-1", "ship A-1", "reserve B-2", "release B-2"}
	switch {
	case results["A-1"] != syros.SagaCompleted:
		log.Fatalf("order A-1 ended %s, expected completed", results["A-1"])
	case results["B-2"] != syros.SagaCompensated:
		log.Fatalf("order B-2 ended %s, expected compensated", results["B-2"])
	case !slices.Equal(inv.journal, wantJournal):
		log.Fatalf("journal %v, expected %v", inv.journal, wantJournal)
	case inv.reserved["B-2"] || !inv.reserved["A-1"]:
		log.Fatalf("reservations %v", inv.reserved)
	}
	fmt.Println("order saga: OK")
}
