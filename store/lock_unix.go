//go:build unix

package store

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// dbLock is an flock(2) held on PATH-lock for as long as the store is open.
// flock rather than fcntl locks: they belong to the open file, so the kernel
// drops them when the process dies however it dies, and a second open in the
// same process conflicts too.
type dbLock struct {
	f *os.File
}

// lockDatabase takes the lock for the SQLite database at path without
// waiting, and records our pid in the lock file for the message the next
// process will show.
func lockDatabase(path string) (*dbLock, error) {
	name := path + "-lock"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store: unable to open lock file %s: %w", name, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &lockedError{path: path, pid: readPID(f)}
		}
		return nil, fmt.Errorf("store: unable to lock %s: %w", name, err)
	}
	// The file is never removed: unlinking a lock file lets a third process
	// lock a fresh inode while a second still waits on the old one.
	if err := writePID(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("store: unable to write lock file %s: %w", name, err)
	}
	return &dbLock{f: f}, nil
}

// Close clears the pid, so that a stale file does not name a dead process,
// and releases the lock by closing the file.
func (l *dbLock) Close() error {
	_ = l.f.Truncate(0)
	return l.f.Close()
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

func readPID(f *os.File) int {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		return 0
	}
	return pid
}

// lockedError is what a user sees when a second daemon starts on the same
// file, so it says what to do.
type lockedError struct {
	path string
	pid  int
}

func (e *lockedError) Error() string {
	who := "another followupd process"
	if e.pid > 0 {
		who = fmt.Sprintf("another followupd process (pid %d)", e.pid)
	}
	return fmt.Sprintf("store: database %s is in use by %s; stop it or point database.path at another file", e.path, who)
}

func (e *lockedError) Unwrap() error { return ErrLocked }
