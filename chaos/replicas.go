package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// replica is one `followupd run` process, restarted after every kill. Its
// output goes to replica-N.log in the run's folder, across restarts.
type replica struct {
	n        int
	bin, cfg string
	logPath  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
}

func newReplica(n int, bin, cfg, dir string) *replica {
	return &replica{n: n, bin: bin, cfg: cfg, logPath: filepath.Join(dir, fmt.Sprintf("replica-%d.log", n))}
}

func (r *replica) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return fmt.Errorf("replica %d is already running", r.n)
	}
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	r.starts++
	fmt.Fprintf(logf, "==== chaos: start %d of replica %d at %s\n", r.starts, r.n, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(r.bin, "-config", r.cfg, "run")
	cmd.Stdout, cmd.Stderr = logf, logf
	// Dies with the harness, even when the harness is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start replica %d: %w", r.n, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	r.cmd, r.exited = cmd, exited
	return nil
}

// running reports whether the process is alive (it may have exited by
// itself: that is a failure the harness reports).
func (r *replica) running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return false
	}
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// exitedByItself returns the exit state of a replica that stopped without
// being told to, or "".
func (r *replica) exitedByItself() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return ""
	}
	select {
	case <-r.exited:
		return r.cmd.ProcessState.String()
	default:
		return ""
	}
}

// signal sends sig and waits up to wait for the process to end, then
// kills it.
func (r *replica) stop(sig syscall.Signal, wait time.Duration) {
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func (r *replica) kill() { r.stop(syscall.SIGKILL, 10*time.Second) }

func (r *replica) logTail(n int) string { return tail(r.logPath, n) }
