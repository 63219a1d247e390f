// Command fenced is a fenced critical section: workers update one shared record under a Syros
// lock, and the store behind it refuses any write carrying an older fencing token than the
// newest it has seen, so even a worker whose lease was lost (a long GC pause, a partition)
// cannot overwrite newer data. It checks its own outcome and exits 1 when it is wrong.
//
//	go run ./fenced 127.0.0.1:9090
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"sync"
	"time"

	syros "github.com/syros/syros/sdks/go"
)

// fencedStore stands for a database that checks fencing tokens on every write.
type fencedStore struct {
	mu        sync.Mutex
	lastToken uint64
	balance   int
	writes    int
}

var errStaleToken = errors.New("write refused: a newer lease has written since")

// update applies fn to the balance if token is not older than the newest token seen.
func (s *fencedStore) update(token uint64, fn func(int) int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if token < s.lastToken {
		return errStaleToken
	}
	s.lastToken = token
	s.balance = fn(s.balance)
	s.writes++
	return nil
}

func main() {
	if len(os.Args) != 2 {
		log.Fatalf("usage: %s HOST:PORT", os.Args[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client, err := syros.Connect(ctx, syros.Options{Addresses: []string{os.Args[1]}})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	store := &fencedStore{}
	key := fmt.Sprintf("account:%d", os.Getpid())
	const workers, deposits = 4, 5
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range deposits {
				if err := deposit(ctx, client, store, key, 10); err != nil {
					log.Fatalf("worker %d: %v", w, err)
				}
			}
		}()
	}
	wg.Wait()

	// A stale writer: its lease is force-released (as if it had paused past its TTL) and a
	// newer holder writes; the stale write must be refused by the store.
	stale, err := client.Lock(ctx, key, syros.LockOptions{TTL: 10 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := client.ForceRelease(ctx, key); err != nil {
		log.Fatal(err)
	}
	if err := deposit(ctx, client, store, key, 10); err != nil {
		log.Fatal(err)
	}
	select {
	case <-stale.Lost():
		fmt.Println("the stale lease was reported lost")
	case <-time.After(15 * time.Second):
		log.Fatal("the force-released lease was never reported lost")
	}
	if err := store.update(stale.FencingToken(), func(b int) int { return 0 }); !errors.Is(err, errStaleToken) {
		log.Fatalf("the store accepted a stale write: %v", err)
	}
	_ = stale.Release(ctx)

	want := (workers*deposits + 1) * 10
	fmt.Printf("balance %d after %d fenced writes (last fencing token %d)\n", store.balance, store.writes, store.lastToken)
	if store.balance != want {
		log.Fatalf("balance %d, expected %d", store.balance, want)
	}
	fmt.Println("fenced critical section: OK")
}

// deposit adds amount under the lock, passing the lease's fencing token to the store.
func deposit(ctx context.Context, client *syros.Client, store *fencedStore, key string, amount int) error {
	lease, err := client.Lock(ctx, key, syros.LockOptions{TTL: 10 * time.Second, Wait: 20 * time.Second})
	if err != nil {
		return err
	}
	defer lease.Release(ctx)
	select {
	case <-lease.Lost():
		return errors.New("lease lost before the write")
	default:
	}
	return store.update(lease.FencingToken(), func(b int) int { return b + amount })
}
