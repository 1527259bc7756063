package ingest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestEarlyRefusalReachesClientsThatWriteFirst: a client that writes its
// whole body before it reads must still read why it was refused (and when
// to retry), not a reset connection, when ingest answers before reading
// the body.
func TestEarlyRefusalReachesClientsThatWriteFirst(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBodyBytes = 1 << 20
	cfg.MaxInflightRequests = 1
	p := &fakeProducer{block: make(chan struct{})}
	s := newTestServer(t, cfg, p)
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Small socket buffers on both ends, as over a real network: on
	// loopback the kernel would otherwise buffer megabytes that nobody read.
	ln := smallBuffers{tcp}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	addr := ln.Addr().String()

	// big is a valid NDJSON body of about n bytes.
	big := func(n int) []byte {
		var b bytes.Buffer
		for i := 0; b.Len() < n; i++ {
			b.WriteString(event(fmt.Sprintf("e%d", i), `"labels":{"pad":"`+strings.Repeat("x", 3000)+`"}`))
			b.WriteByte('\n')
		}
		return b.Bytes()
	}
	// send writes the request, headers and body, to the end before it
	// reads the answer; chunked sends the body without a Content-Length.
	send := func(t *testing.T, token string, body []byte, chunked bool) *http.Response {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		_ = conn.(*net.TCPConn).SetWriteBuffer(32 << 10)
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		var req bytes.Buffer
		fmt.Fprintf(&req, "POST %s HTTP/1.1\r\nHost: aivis\r\nAuthorization: Bearer %s\r\nContent-Type: application/x-ndjson\r\n", Path, token)
		if chunked {
			req.WriteString("Transfer-Encoding: chunked\r\n\r\n")
			for b := body; len(b) > 0; {
				n := min(len(b), 64<<10)
				fmt.Fprintf(&req, "%x\r\n%s\r\n", n, b[:n])
				b = b[n:]
			}
			req.WriteString("0\r\n\r\n")
		} else {
			fmt.Fprintf(&req, "Content-Length: %d\r\n\r\n", len(body))
			req.Write(body)
		}
		if _, err := conn.Write(req.Bytes()); err != nil {
			t.Fatalf("writing a %d-byte request: %v", req.Len(), err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		msg, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("reading the answer's body: %v", err)
		}
		resp.Body = io.NopCloser(bytes.NewReader(msg))
		return resp
	}

	t.Run("401", func(t *testing.T) {
		resp := send(t, "wrong-token", big(3<<20), false)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("status %d, headers %v", resp.StatusCode, resp.Header)
		}
	})
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("413/chunked=%t", chunked), func(t *testing.T) {
			resp := send(t, testToken, big(3<<20+1000), chunked)
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	t.Run("503", func(t *testing.T) {
		// One request holds the only slot while its events are produced.
		done := make(chan struct{})
		go func() {
			defer close(done)
			req, _ := http.NewRequest(http.MethodPost, "http://"+addr+Path, strings.NewReader(event("held")))
			req.Header.Set("Authorization", "Bearer "+testToken)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		for len(s.slots) < 1 {
			time.Sleep(time.Millisecond)
		}
		resp := send(t, testToken, big(3<<20), false)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("status %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		close(p.block)
		<-done
	})
}

// smallBuffers is a listener whose connections have a small receive buffer.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(32 << 10)
	}
	return c, err
}
