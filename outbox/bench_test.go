package outbox_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/outbox"
	"github.com/followupd/followupd/outbox/smtptest"
	"github.com/followupd/followupd/store"
)

// BenchmarkSend measures claim + build + SMTP + record per message, over
// 2 kept connections to an in-process sink that discards what it gets.
func BenchmarkSend(b *testing.B) {
	st, err := store.Open(bg, store.Options{Driver: store.DialectSQLite, DSN: filepath.Join(b.TempDir(), "b.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	sink, err := smtptest.New()
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	sink.Discard(true)
	svc, err := outbox.New(outbox.Options{
		Store: st,
		Accounts: []config.Account{{Name: "main", FromAddress: fromAddr, SMTP: config.SMTP{
			Server:      config.Server{Host: sink.Host(), Port: sink.Port(), TLS: "none", InsecurePlaintext: true},
			Concurrency: 2,
		}}},
		BatchSize:   50,
		IdleTimeout: time.Hour,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Stop()

	now := time.Now()
	for i := range b.N {
		cid, err := st.CreateContact(bg, store.Contact{Email: fmt.Sprintf("c%d@example.com", i)})
		if err != nil {
			b.Fatal(err)
		}
		eid, err := st.CreateEnrollment(bg, store.Enrollment{ContactID: cid, Sequence: "s", Account: "main"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.InsertMessageOut(bg, store.MessageOut{EnrollmentID: eid, ContactID: cid, Account: "main",
			MessageID: fmt.Sprintf("b%d@seller.test", i), Subject: "Hello", ToAddr: fmt.Sprintf("c%d@example.com", i),
			FromAddr: fromAddr, BodyText: "Hi there,\r\n\r\nShall we talk?\r\n", BodyHTML: "<p>Hi there,</p><p>Shall we talk?</p>",
			UnsubscribeURL: "https://x.test/u/1", NextAttemptAt: &now}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	total := 0
	for total < b.N {
		n, err := svc.RunOnce(bg, "main")
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			b.Fatalf("stuck after %d of %d", total, b.N)
		}
		total += n
	}
	b.StopTimer()
	if got := sink.Count(smtptest.Delivered); got != b.N {
		b.Fatalf("delivered %d of %d", got, b.N)
	}
}
