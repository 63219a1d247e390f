// Package syrostest starts a real `syros serve` for tests, the one way every Syros test
// starts a server: ephemeral ports (GRPC_PORT=0 ...) reported in SYROS_READY_FILE, the binary
// from $SYROS_BIN, the embedded store or Redis + PostgreSQL (SYROS_TEST_BACKEND=redis-postgres
// with SYROS_TEST_REDIS_URL and SYROS_TEST_DATABASE_URL). A server that cannot start is an
// error, never a skip.
package syrostest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ReadyTimeout bounds how long Start waits for the server's ready file.
const ReadyTimeout = 60 * time.Second

// Ready is the content of the ready file: the bound addresses and the process id.
type Ready struct {
	GRPC      string `json:"grpc"`
	REST      string `json:"rest"`
	WebSocket string `json:"websocket"`
	PID       int    `json:"pid"`
}

// Server is a running `syros serve` child process.
type Server struct {
	dir    string
	env    []string
	ports  *Ready
	ready  *Ready
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
}

// Backend is the store the test servers use: "embedded" (default) or "redis-postgres".
func Backend() string {
	if backend := os.Getenv("SYROS_TEST_BACKEND"); backend != "" {
		return backend
	}
	return "embedded"
}

// Bin is the syros binary ($SYROS_BIN).
func Bin() (string, error) {
	bin := os.Getenv("SYROS_BIN")
	if bin == "" {
		return "", errors.New("SYROS_BIN is not set: build the server (cargo build -p syros-server) and export SYROS_BIN=<target dir>/debug/syros (scripts/go-sdk.sh does this)")
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("SYROS_BIN=%s: %w", bin, err)
	}
	return bin, nil
}

func backendEnv() ([]string, error) {
	switch backend := Backend(); backend {
	case "embedded":
		return nil, nil
	case "redis-postgres":
		redis, database := os.Getenv("SYROS_TEST_REDIS_URL"), os.Getenv("SYROS_TEST_DATABASE_URL")
		if redis == "" || database == "" {
			return nil, errors.New("SYROS_TEST_BACKEND=redis-postgres needs SYROS_TEST_REDIS_URL and SYROS_TEST_DATABASE_URL")
		}
		namespace := fmt.Sprintf("g%d%d%d", os.Getpid(), time.Now().UnixNano()%1e9, rand.IntN(1e6))
		return []string{"REDIS_URL=" + redis, "DATABASE_URL=" + database, "SYROS_NAMESPACE=" + namespace}, nil
	default:
		return nil, fmt.Errorf("SYROS_TEST_BACKEND=%s: expected \"embedded\" or \"redis-postgres\"", backend)
	}
}

// Start starts a server with extra environment variables (NAME=value) and waits until it is
// ready.
func Start(extraEnv ...string) (*Server, error) {
	if _, err := Bin(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "syros-go-test-")
	if err != nil {
		return nil, err
	}
	backend, err := backendEnv()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	env := append(os.Environ(), "SYROS_DATA_DIR="+filepath.Join(dir, "data"), "LOG_LEVEL=info")
	env = append(append(env, backend...), extraEnv...)
	s := &Server{dir: dir, env: env}
	if err := s.spawn(); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func port(address string) string {
	if address == "" {
		return "0"
	}
	return address[strings.LastIndex(address, ":")+1:]
}

func (s *Server) spawn() error {
	bin, err := Bin()
	if err != nil {
		return err
	}
	readyFile := filepath.Join(s.dir, "ready.json")
	os.Remove(readyFile)
	s.starts++
	log, err := os.Create(s.logPath(s.starts))
	if err != nil {
		return err
	}
	defer log.Close()
	var ports Ready
	if s.ports != nil {
		ports = *s.ports
	}
	cmd := exec.Command(bin, "serve")
	cmd.Dir = s.dir
	cmd.Env = append(append([]string{}, s.env...),
		"GRPC_PORT="+port(ports.GRPC), "REST_PORT="+port(ports.REST), "WS_PORT="+port(ports.WebSocket),
		"SYROS_READY_FILE="+readyFile)
	cmd.Stdout, cmd.Stderr = log, log
	// The server dies with the test process, even when the test never reaches Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s serve: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	deadline := time.Now().Add(ReadyTimeout)
	for {
		if data, err := os.ReadFile(readyFile); err == nil {
			var ready Ready
			if json.Unmarshal(data, &ready) == nil && ready.GRPC != "" && ready.REST != "" && ready.WebSocket != "" {
				s.ready = &ready
				if s.ports == nil {
					s.ports = &ready
				}
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("syros serve exited before it was ready:\n%s", s.Log())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("syros serve was not ready within %s:\n%s", ReadyTimeout, s.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *Server) logPath(start int) string {
	return filepath.Join(s.dir, fmt.Sprintf("syros-%d.log", start))
}

// Address is the gRPC address, 127.0.0.1:<port> (the same across restarts).
func (s *Server) Address() string {
	if s.ports == nil {
		return ""
	}
	return s.ports.GRPC
}

// PID is the server's process id (0 when stopped).
func (s *Server) PID() int {
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Kill9 kills the server as a crash would (SIGKILL) and waits until it is gone.
func (s *Server) Kill9() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd, s.ready = nil, nil
}

// Restart kills the server (if running) and starts it again: same data, same ports.
func (s *Server) Restart() error {
	s.Kill9()
	return s.spawn()
}

// StartAgain starts a killed server again on its ports.
func (s *Server) StartAgain() error {
	if s.cmd != nil {
		return errors.New("the server is running")
	}
	return s.spawn()
}

// Log is everything the server logged over all its starts.
func (s *Server) Log() string {
	var parts []string
	for start := 1; start <= s.starts; start++ {
		if data, err := os.ReadFile(s.logPath(start)); err == nil {
			parts = append(parts, string(data))
		}
	}
	return strings.Join(parts, "\n--- restart ---\n")
}

// Stop kills the server and removes its files.
func (s *Server) Stop() {
	s.Kill9()
	os.RemoveAll(s.dir)
}
