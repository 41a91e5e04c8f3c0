// Package testlog holds what the tests of several packages share to read
// the daemon's logs.
package testlog

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer that a logger's goroutines and a test may use at
// the same time.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (w *Buffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// String returns everything written so far.
func (w *Buffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
