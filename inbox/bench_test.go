package inbox_test

import (
	"fmt"
	"testing"

	"github.com/followupd/followupd/inbox"
	"github.com/followupd/followupd/inbox/imaptest"
	"github.com/followupd/followupd/store/storetest"
)

// BenchmarkRunOnce measures a catch-up pass of 100 new messages against
// the in-process server on SQLite: fetch, handler, one transaction each.
func BenchmarkRunOnce(b *testing.B) {
	srv := imaptest.Start(b)
	s := storetest.Open(b, storetest.Fresh(b, "sqlite"))
	rec := newRecorder()
	w, err := inbox.New(inbox.Options{Store: s, Account: account(srv.IMAP()), Handler: rec.handle})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(w.Stop)
	if _, err := w.RunOnce(bg); err != nil {
		b.Fatal(err)
	}
	next := 0
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for range 100 {
			next++
			srv.Deliver("INBOX", message(fmt.Sprintf("bench-%d", next)))
		}
		b.StartTimer()
		if n, err := w.RunOnce(bg); err != nil || n != 100 {
			b.Fatalf("RunOnce = %d, %v", n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*100), "µs/msg")
}
