package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// TestMain lets BenchmarkIdleConnections run a node in a child process (this
// test binary again, with HERALD_BENCH_SERVE set), so that the memory it
// measures is the server's alone.
func TestMain(m *testing.M) {
	if os.Getenv("HERALD_BENCH_SERVE") != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		if err := run(ctx, []string{"serve"}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// BenchmarkIdleConnections opens b.N idle connections, each subscribed to a
// channel of its own, by WebSocket, by SSE and by xhr_streaming, and
// reports the server's resident memory per connection (KiB/conn).
func BenchmarkIdleConnections(b *testing.B) {
	for _, kind := range []string{"websocket", "sse", "xhr_streaming"} {
		b.Run(kind, func(b *testing.B) {
			addr, pid := benchServer(b)
			before := rssKiB(b, pid)
			conns := make([]net.Conn, 0, b.N)
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for i := range b.N {
				conns = append(conns, openIdle(b, kind, addr, i))
			}
			time.Sleep(time.Second) // let the server settle
			after := rssKiB(b, pid)
			b.ReportMetric(float64(after-before)/float64(b.N), "KiB/conn")
		})
	}
}

// benchServer starts a node in a child process and returns its address and
// pid; it is stopped when the benchmark ends.
func benchServer(b *testing.B) (string, int) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "HERALD_BENCH_SERVE=1", "HERALD_ADDR="+addr, "HERALD_LOG_LEVEL=error",
		"HERALD_IP_CONNECTIONS_PER_MINUTE=100000000", "HERALD_DATABASE_URL=", "HERALD_REDIS_URL=",
		`HERALD_APPS=[{"id":"1","key":"key","secret":"secret","settings":{"limits":{"new_connections_per_second":1000000,"max_connections":1000000},"durable":[{"pattern":"d-*"}]}}]`)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the benchmark's server did not start")
		}
	}
	return addr, cmd.Process.Pid
}

// openIdle opens connection i of kind, subscribed to durable channel d-<i>,
// and returns once the server confirmed the subscription.
func openIdle(b *testing.B, kind, addr string, i int) net.Conn {
	b.Helper()
	channel := "d-" + strconv.Itoa(i)
	switch kind {
	case "websocket":
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/app/key?protocol=7", nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"event":"pusher:subscribe","data":{"channel":"`+channel+`"}}`)); err != nil {
			b.Fatal(err)
		}
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				b.Fatal(err)
			}
			if strings.Contains(string(msg), "subscription_succeeded") {
				return ws.NetConn()
			}
		}
	case "sse":
		return rawStream(b, addr, "GET /app/key/sse?channels="+channel, "subscription_succeeded")
	default:
		c := rawStream(b, addr, "POST /pusher/app/key/1/s"+strconv.Itoa(i)+"/xhr_streaming?protocol=7", "connection_established")
		send := fmt.Sprintf(`["{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"%s\"}}"]`, channel)
		r, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		fmt.Fprintf(r, "POST /pusher/app/key/1/s%d/xhr_send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", i, len(send), send)
		_, _ = bufio.NewReader(r).ReadString('\n')
		return c
	}
}

// rawStream sends a request line and reads the streamed answer until a line
// containing marker.
func rawStream(b *testing.B, addr, requestLine, marker string) net.Conn {
	b.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(c, "%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n", requestLine)
	r := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			b.Fatalf("%s: %v", requestLine, err)
		}
		if strings.Contains(line, marker) {
			_ = c.SetReadDeadline(time.Time{})
			return c
		}
	}
}

// rssKiB reads a process's resident set size.
func rssKiB(b *testing.B, pid int) int {
	b.Helper()
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				b.Fatal(err)
			}
			return kib
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
