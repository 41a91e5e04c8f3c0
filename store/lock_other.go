//go:build !unix

package store

import (
	"errors"
	"io"
)

// lockDatabase has no flock to use here; refusing is safer than pretending
// two daemons cannot share the file.
func lockDatabase(path string) (io.Closer, error) {
	return nil, errors.New("store: an exclusive SQLite lock is not supported on this platform")
}
