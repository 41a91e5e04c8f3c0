package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestDemoEndToEnd builds the binary, runs `followupd demo` on a free port,
// reads the API token it prints, and watches the pipeline move through the
// API as the prospects' scripts say; then stops it with SIGINT.
func TestDemoEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "followupd")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	cmd := exec.Command(bin, "demo", "--for", "60s", "--speed", "1s", "--listen", addr)
	cmd.Dir = t.TempDir()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var out lockedBuilder
	tokens := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			out.WriteString(line + "\n")
			if tok, ok := strings.CutPrefix(line, "token: "); ok {
				select {
				case tokens <- strings.TrimSpace(tok):
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	defer func() { _ = cmd.Process.Kill() }() // a no-op once it exited

	var token string
	select {
	case token = <-tokens:
	case err := <-exited:
		t.Fatalf("demo exited before printing its token: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("no token line\nstdout:\n%s", out.String())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	type stage struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	}
	get := func(path string, v any) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, fmt.Errorf("%s: %s", resp.Status, b)
		}
		return resp.StatusCode, json.NewDecoder(resp.Body).Decode(v)
	}
	// The example imports Klaus as a prospect; Lotte's "ja, graag" makes
	// two, Eva (named by Mark) three. Pierre bounces, Claire unsubscribes.
	want := map[string]int{"prospect": 3, "bounced": 1, "unsubscribed": 1}
	var last map[string]int
	for {
		var p struct {
			Stages []stage `json:"stages"`
			Total  int     `json:"total"`
		}
		if _, err := get("/api/v1/pipeline", &p); err == nil {
			last = map[string]int{}
			for _, s := range p.Stages {
				last[s.Name] = s.Count
			}
			ok := true
			for k, n := range want {
				if last[k] < n {
					ok = false
				}
			}
			if ok {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("the pipeline did not move as scripted: got %v, want at least %v\nstdout:\n%s\nstderr:\n%s", last, want, out.String(), stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The referred colleague is a contact; Tom's intro is snoozed.
	var eva struct {
		Email string `json:"email"`
	}
	if _, err := get("/api/v1/contacts/eva.smit@jansen-installatie.example", &eva); err != nil {
		t.Errorf("the referred colleague: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("demo exited with %v after SIGINT\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not exit after SIGINT")
	}
	got := out.String()
	for _, s := range []string{"/login", "curl -H 'Authorization: Bearer " + token, "sent ", "replied ", "Demo over (interrupted)"} {
		if !strings.Contains(got, s) {
			t.Errorf("stdout lacks %q:\n%s", s, got)
		}
	}
}

// TestDemoFor ends by itself after --for, with status 0.
func TestDemoFor(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var out, errb strings.Builder
	start := time.Now()
	code := run(context.Background(), []string{"demo", "--for", "3s", "--listen", addr}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	if el := time.Since(start); el < 3*time.Second || el > 30*time.Second {
		t.Errorf("--for 3s took %s", el)
	}
	if !strings.Contains(out.String(), "Demo over (time is up)") {
		t.Errorf("stdout:\n%s", out.String())
	}
}

type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) WriteString(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
