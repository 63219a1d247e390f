package syros

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/syros/syros/sdks/go/syrostest"
)

// server is the `syros serve` most tests share (tests that kill their server start their own).
var server *syrostest.Server

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelperProcess())
	}
	var err error
	server, err = syrostest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot start syros serve:", err)
		os.Exit(1)
	}
	code := m.Run()
	server.Stop()
	os.Exit(code)
}

// connect returns a client of the shared server, closed at the end of the test.
func connect(t *testing.T) *Client {
	t.Helper()
	return connectTo(t, server.Address())
}

func connectTo(t *testing.T, address string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := Connect(ctx, Options{Addresses: []string{address}})
	if err != nil {
		t.Fatalf("connect %s: %v", address, err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// unique is a name no other test (or run) uses.
func unique(t *testing.T, prefix string) string {
	return fmt.Sprintf("%s-%s-%d", prefix, t.Name(), time.Now().UnixNano())
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
