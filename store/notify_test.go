package store

import (
	"context"
	"testing"
	"time"
)

func TestListenForWorkWakesOnANewEnrollment(t *testing.T) {
	forEachDB(t, func(t *testing.T, db testDB) {
		if db.dialect != DialectPostgres {
			t.Skip("SQLite has one process, which wakes itself: notification test skipped")
		}
		o := db.fresh(t)
		listener, writer := openT(t, o), openT(t, o)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		woken := make(chan struct{}, 16)
		done := make(chan error, 1)
		go func() { done <- listener.ListenForWork(ctx, func() { woken <- struct{}{} }) }()
		// Wait until the listener is attached: a notification it sees is
		// proof, so keep writing until one arrives.
		deadline := time.After(10 * time.Second)
		for i := 0; ; i++ {
			if _, err := writer.CreateContact(ctx, Contact{Email: "w" + string(rune('a'+i%26)) + time.Now().Format("150405.000000") + "@example.com"}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-woken:
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				return
			case <-time.After(100 * time.Millisecond):
			case <-deadline:
				t.Fatal("no wake-up after new work was committed")
			}
		}
	})
}
