package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/pflag"

	chsink "github.com/aivis-dev/aivis/sinks/clickhouse"
	"github.com/aivis-dev/aivis/web"
)

func serveFlags(fs *pflag.FlagSet) {
	fs.String("addr", "127.0.0.1:8088", "address of the web view and the read API (host:port; :0 picks a free port)")
}

// runServe serves the web view and the read API from ClickHouse until a
// signal; in-flight requests get five seconds to finish.
func runServe(ctx context.Context, e *env) error {
	addr, _ := e.fs.GetString("addr")
	store, err := chsink.Open(ctx, e.cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer store.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s for the web view: %w (choose another address with --addr)", addr, err)
	}
	srv := &http.Server{Handler: web.NewServer(store, e.log), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(e.out, "aivis web view: http://%s/ (ClickHouse %s, database %s)\n  read API: http://%s/api/openapi.json\n",
		ln.Addr(), e.cfg.ClickHouse.Addr, e.cfg.ClickHouse.Database, ln.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serving the web view: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
