package smtptest

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const msg = "From: a@x.test\r\nTo: b@y.test\r\nMessage-ID: <m1@x.test>\r\nSubject: hi\r\n\r\nhello\r\n"

func dial(t *testing.T, s *Server) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func send(c *smtp.Client, to ...string) error {
	if err := c.Mail("a@x.test", nil); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	return w.Close()
}

func code(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func TestRecordsMessages(t *testing.T) {
	s := Start(t)
	c := dial(t, s)
	if err := send(c, "b@y.test"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := s.WaitForMessages(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	m := got[0]
	if m.From != "a@x.test" || len(m.To) != 1 || m.To[0] != "b@y.test" || m.MessageID != "m1@x.test" || string(m.Data) != msg {
		t.Fatalf("message = %+v", m)
	}
	if m.Header.Get("Subject") != "hi" {
		t.Fatalf("header = %v", m.Header)
	}
}

func TestFaultsFireTheirNumberOfTimes(t *testing.T) {
	s := Start(t)
	s.RcptReply("B@y.test", Reply451, 1)
	s.DataReply(Reply554, 1)
	c := dial(t, s)
	if err := send(c, "b@y.test"); code(err) != 451 {
		t.Fatalf("first send = %v, want 451", err)
	}
	_ = c.Reset()
	if err := send(c, "b@y.test"); code(err) != 554 {
		t.Fatalf("second send = %v, want 554", err)
	}
	if err := send(c, "b@y.test"); err != nil {
		t.Fatalf("third send = %v", err)
	}
	s.RcptReply("gone@y.test", Reply550UserUnknown, Always)
	for range 2 {
		if err := send(c, "gone@y.test"); code(err) != 550 {
			t.Fatalf("send to gone = %v", err)
		}
		_ = c.Reset()
	}
	if n := s.Count(Delivered); n != 1 {
		t.Fatalf("delivered %d", n)
	}
	if s.Count(RcptRejects) != 3 || s.Count(DataRejects) != 1 {
		t.Fatalf("counts = %v", s.Counts())
	}
}

func TestDrops(t *testing.T) {
	s := Start(t)
	s.DropBeforeData(1)
	c := dial(t, s)
	if err := send(c, "b@y.test"); err == nil || code(err) != 0 {
		t.Fatalf("send with drop before data = %v, want a connection error", err)
	}
	if len(s.Messages()) != 0 {
		t.Fatal("dropped-before-data message recorded")
	}
	s.DropAfterDot(1)
	c = dial(t, s)
	if err := send(c, "b@y.test"); err == nil || code(err) != 0 {
		t.Fatalf("send with drop after dot = %v, want a connection error", err)
	}
	if len(s.Messages()) != 1 || s.Count(DroppedAfterDot) != 1 {
		t.Fatalf("drop after dot: %d messages, counts %v", len(s.Messages()), s.Counts())
	}
}

func TestRejectConnections(t *testing.T) {
	s := Start(t)
	s.RejectConnections(1)
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); code(err) != 421 {
		t.Fatalf("EHLO on a rejected connection = %v, want 421", err)
	}
	c2 := dial(t, s)
	if err := send(c2, "b@y.test"); err != nil {
		t.Fatalf("next connection: %v", err)
	}
	if s.Count(Rejected) != 1 {
		t.Fatalf("counts = %v", s.Counts())
	}
}

func TestAuth(t *testing.T) {
	s := Start(t)
	s.AddUser("ann", "secret")
	s.RequireAuth(true)
	c := dial(t, s)
	if err := send(c, "b@y.test"); code(err) != 530 {
		t.Fatalf("send without auth = %v, want 530", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "ann", "wrong")); code(err) != 535 {
		t.Fatalf("bad password = %v, want 535", err)
	}
	c = dial(t, s)
	if err := c.Auth(sasl.NewPlainClient("", "ann", "secret")); err != nil {
		t.Fatal(err)
	}
	if err := send(c, "b@y.test"); err != nil {
		t.Fatal(err)
	}
	m := s.Messages()[0]
	if m.AuthUser != "ann" || m.AuthMech != "PLAIN" {
		t.Fatalf("auth = %q %q", m.AuthUser, m.AuthMech)
	}
}

func TestDiscardCounts(t *testing.T) {
	s := Start(t)
	s.Discard(true)
	c := dial(t, s)
	for range 3 {
		if err := send(c, "b@y.test"); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.WaitForMessages(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if len(s.Messages()) != 0 || s.Count(Delivered) != 3 {
		t.Fatalf("discard kept %d, delivered %d", len(s.Messages()), s.Count(Delivered))
	}
}

func TestWaitForMessagesHonoursContext(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.WaitForMessages(ctx, 1); err == nil || !strings.Contains(err.Error(), "0 of 1") {
		t.Fatalf("WaitForMessages = %v", err)
	}
}

// Random faults strike about their share of RCPTs, the same addresses for
// the same seed, and a greylisting 451 only once per address.
func TestRandomFaultsAreSharedAndReproducible(t *testing.T) {
	rejected := func(seed int64) map[string]int {
		s := Start(t)
		s.SetRandomFaults(RandomFaults{Rcpt451: 0.2, Rcpt451Once: true, Rcpt550: 0.1, Seed: seed})
		c := dial(t, s)
		got := map[string]int{}
		for i := range 400 {
			to := "r" + strconv.Itoa(i) + "@y.test"
			for range 2 { // a first try and one retry
				err := send(c, to)
				if err == nil {
					break
				}
				got[to] = got[to]*1000 + code(err)
				_ = c.Reset()
			}
		}
		return got
	}
	a, b, other := rejected(7), rejected(7), rejected(8)
	n451, n550 := 0, 0
	for to, codes := range a {
		if b[to] != codes {
			t.Fatalf("%s: %d with seed 7, then %d with the same seed", to, codes, b[to])
		}
		switch {
		case codes == 451:
			n451++
		case codes%1000 == 550:
			n550++
		case codes == 451451:
			t.Fatalf("%s answered 451 twice although greylisting is once", to)
		}
	}
	// 400 addresses: expect ~80 greylisted and ~40 unknown users.
	if n451 < 40 || n451 > 130 || n550 < 15 || n550 > 75 {
		t.Errorf("451 for %d and 550 for %d of 400 addresses; want about 80 and 40", n451, n550)
	}
	if len(other) == len(a) {
		same := true
		for to, codes := range a {
			if other[to] != codes {
				same = false
				break
			}
		}
		if same {
			t.Error("another seed struck exactly the same addresses")
		}
	}
}
