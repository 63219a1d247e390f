// Command locks is the Go lock benchmark (not a test): the Syros Go SDK against redsync 4
// (go-redis 9) on the same Redis, in the same run, printed as ratios.
//
//   - distinct keys: 32 goroutines, each acquiring (TTL 10 s) and releasing its own key;
//     cycles/s of both and the ratio syros/redsync (goal >= 1.0x);
//   - hot key: 32 goroutines on ONE key, each holding it 1 ms; cycles/s and the fewest/most
//     turns of one goroutine (fairness), and failed acquisitions.
//
// Each row also prints this process's CPU time (user + system, getrusage) per cycle.
//
// Usage: go run . <syros grpc address> <redis url> [seconds per measurement]
// (bench/go/run.sh starts Redis, PostgreSQL and a syros serve on them.)
//
// Environment: BENCH_ONLY=syros measures only the Syros distinct-key row (for profiling);
// BENCH_CPUPROFILE=<file> writes a pprof CPU profile of the Syros distinct-key window.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	goredislib "github.com/redis/go-redis/v9"
	syros "github.com/syros/syros/sdks/go"
)

const (
	goroutines = 32
	ttl        = 10 * time.Second
	hold       = time.Millisecond
)

type result struct {
	rate     float64
	min, max int64
	failed   int64
}

// cpuTime is this process's user + system CPU time so far.
func cpuTime() time.Duration {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		log.Fatal(err)
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
}

// measure runs cycle on every goroutine: a warm-up second, then a fixed window (profiled into
// profile when it is not empty).
func measure(name string, window time.Duration, profile string, cycle func(ctx context.Context, g int) error) result {
	ctx := context.Background()
	run := func(until time.Time, turns []int64, failed *atomic.Int64) {
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(until) {
					if err := cycle(ctx, g); err != nil {
						failed.Add(1)
						continue
					}
					if turns != nil {
						turns[g]++
					}
				}
			}()
		}
		wg.Wait()
	}
	var ignored atomic.Int64
	run(time.Now().Add(time.Second), nil, &ignored)
	turns := make([]int64, goroutines)
	var failed atomic.Int64
	if profile != "" {
		file, err := os.Create(profile)
		if err != nil {
			log.Fatal(err)
		}
		defer file.Close()
		if err := pprof.StartCPUProfile(file); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	cpuBefore := cpuTime()
	started := time.Now()
	run(started.Add(window), turns, &failed)
	elapsed := time.Since(started).Seconds()
	cpu := cpuTime() - cpuBefore
	var total int64
	for _, t := range turns {
		total += t
	}
	r := result{rate: float64(total) / elapsed, min: slices.Min(turns), max: slices.Max(turns), failed: failed.Load()}
	fmt.Printf("%-34s %8.0f cycles/s  (%d cycles in %.1f s, turns per goroutine min %d / max %d, %d failed; process CPU %.1f µs/cycle)\n",
		name, r.rate, total, elapsed, r.min, r.max, r.failed, float64(cpu.Microseconds())/float64(max(total, 1)))
	return r
}

func main() {
	if len(os.Args) < 3 {
		log.Fatalf("usage: %s SYROS_ADDRESS REDIS_URL [seconds]", os.Args[0])
	}
	window := 5 * time.Second
	if len(os.Args) > 3 {
		seconds, err := strconv.Atoi(os.Args[3])
		if err != nil {
			log.Fatal(err)
		}
		window = time.Duration(seconds) * time.Second
	}
	run := strconv.Itoa(os.Getpid())

	options, err := goredislib.ParseURL(os.Args[2])
	if err != nil {
		log.Fatal(err)
	}
	options.PoolSize = goroutines * 2
	redis := goredislib.NewClient(options)
	defer redis.Close()
	rs := redsync.New(goredis.NewPool(redis))

	ctx := context.Background()
	client, err := syros.Connect(ctx, syros.Options{Addresses: []string{os.Args[1]}})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	build := os.Getenv("BENCH_BUILD")
	if build == "" {
		build = "debug build"
	}
	fmt.Printf("Go lock benchmark: %d goroutines, TTL %s, %s windows (%s)\n", goroutines, ttl, window, build)
	ours := func() result {
		return measure("syros Go SDK, distinct keys", window, os.Getenv("BENCH_CPUPROFILE"), func(ctx context.Context, g int) error {
			lease, err := client.Lock(ctx, fmt.Sprintf("bench:syros:%s:%d", run, g), syros.LockOptions{TTL: ttl, Wait: 5 * time.Second})
			if err != nil {
				return err
			}
			return lease.Release(ctx)
		})
	}
	if os.Getenv("BENCH_ONLY") == "syros" {
		ours()
		return
	}
	peer := measure("redsync 4, distinct keys", window, "", func(ctx context.Context, g int) error {
		mutex := rs.NewMutex(fmt.Sprintf("bench:redsync:%s:%d", run, g), redsync.WithExpiry(ttl), redsync.WithTries(1))
		if err := mutex.LockContext(ctx); err != nil {
			return err
		}
		_, err := mutex.UnlockContext(ctx)
		return err
	})
	oursRate := ours()
	fmt.Printf("ratio syros/redsync, distinct keys: %.2fx (goal >= 1.0x)\n", oursRate.rate/peer.rate)

	hotPeer := measure("redsync 4, hot key (1 ms hold)", window, "", func(ctx context.Context, g int) error {
		// redsync's waiting: retries with a random 50-250 ms sleep, 32 tries by default.
		mutex := rs.NewMutex("bench:redsync:hot:"+run, redsync.WithExpiry(ttl))
		if err := mutex.LockContext(ctx); err != nil {
			return err
		}
		time.Sleep(hold)
		_, err := mutex.UnlockContext(ctx)
		return err
	})
	hotOurs := measure("syros Go SDK, hot key (1 ms hold)", window, "", func(ctx context.Context, g int) error {
		lease, err := client.Lock(ctx, "bench:syros:hot:"+run, syros.LockOptions{TTL: ttl, Wait: 30 * time.Second})
		if err != nil {
			return err
		}
		time.Sleep(hold)
		return lease.Release(ctx)
	})
	fmt.Printf("ratio syros/redsync, hot key: %.2fx; fairness min/max: syros %d/%d, redsync %d/%d\n",
		hotOurs.rate/hotPeer.rate, hotOurs.min, hotOurs.max, hotPeer.min, hotPeer.max)
}
