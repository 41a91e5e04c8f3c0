package outbox_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"go.uber.org/goleak"

	"github.com/followupd/followupd/config"
	"github.com/followupd/followupd/internal/testlog"
	"github.com/followupd/followupd/outbox"
	"github.com/followupd/followupd/outbox/smtptest"
	"github.com/followupd/followupd/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const pgEnv = "FOLLOWUPD_TEST_POSTGRES"

var bg = context.Background()

// forEachStore runs fn on a fresh SQLite store and, when
// FOLLOWUPD_TEST_POSTGRES is set, on a fresh Postgres schema.
func forEachStore(t *testing.T, fn func(t *testing.T, st *store.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		fn(t, openStore(t, store.Options{Driver: store.DialectSQLite, DSN: filepath.Join(t.TempDir(), "f.db")}))
	})
	t.Run("postgres", func(t *testing.T) {
		base := os.Getenv(pgEnv)
		if base == "" {
			t.Skip(pgEnv + " not set: Postgres tests skipped")
		}
		fn(t, openStore(t, freshPostgres(t, base)))
	})
}

func openStore(t *testing.T, o store.Options) *store.Store {
	t.Helper()
	st, err := store.Open(bg, o)
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func freshPostgres(t *testing.T, base string) store.Options {
	t.Helper()
	admin, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "fut_outbox_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`) })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return store.Options{Driver: store.DialectPostgres, DSN: u.String(), Migrate: true}
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a store, a sink, a clock and an outbox for one account "main".
type env struct {
	t     *testing.T
	st    *store.Store
	sink  *smtptest.Server
	clock *clock
	acct  config.Account
	opts  outbox.Options
	svc   *outbox.Service
	logs  *testlog.Buffer

	mu         sync.Mutex
	sentHooks  []string
	failHooks  []string
	hardBounce map[string]bool
}

const fromAddr = "sam@seller.test"

func newEnv(t *testing.T, st *store.Store, configure ...func(*env)) *env {
	t.Helper()
	sink := smtptest.Start(t)
	e := &env{
		t: t, st: st, sink: sink,
		clock:      &clock{t: time.Now().UTC()},
		logs:       &testlog.Buffer{},
		hardBounce: map[string]bool{},
	}
	e.acct = config.Account{
		Name: "main", FromName: "Sam Seller", FromAddress: fromAddr,
		SMTP: config.SMTP{
			Server:      config.Server{Host: sink.Host(), Port: sink.Port(), TLS: "none", InsecurePlaintext: true},
			Concurrency: 1,
		},
		OnUncertain: "skip",
	}
	e.opts = outbox.Options{
		Store:         st,
		Unsubscribe:   config.Unsubscribe{BaseURL: "https://followup.example.com"},
		BlockedStages: []string{"not_interested", "unsubscribed", "bounced"},
		Logger:        slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:           e.clock.Now,
		Rand:          func() float64 { return 0.5 },
		SMTPTimeout:   5 * time.Second,
		IMAPTimeout:   5 * time.Second,
		StoreTimeout:  5 * time.Second,
		Hooks: outbox.Hooks{
			Sent: func(tx *store.Tx, m store.MessageOut) error {
				e.mu.Lock()
				defer e.mu.Unlock()
				e.sentHooks = append(e.sentHooks, m.MessageID)
				return nil
			},
			Failed: func(tx *store.Tx, m store.MessageOut, hard bool) error {
				e.mu.Lock()
				defer e.mu.Unlock()
				e.failHooks = append(e.failHooks, m.MessageID)
				e.hardBounce[m.MessageID] = hard
				return nil
			},
		},
	}
	for _, c := range configure {
		c(e)
	}
	e.opts.Accounts = []config.Account{e.acct}
	svc, err := outbox.New(e.opts)
	if err != nil {
		t.Fatalf("outbox.New: %v", err)
	}
	e.svc = svc
	t.Cleanup(svc.Stop)
	return e
}

var seq int

// queue enrolls a new contact and queues step 0 for it, due now.
func (e *env) queue(email, name string, change ...func(*store.MessageOut)) store.MessageOut {
	t := e.t
	t.Helper()
	cid, err := e.st.CreateContact(bg, store.Contact{Email: email, FirstName: name})
	if err != nil {
		t.Fatalf("CreateContact: %v", err)
	}
	eid, err := e.st.CreateEnrollment(bg, store.Enrollment{ContactID: cid, Sequence: "intro", Account: "main"})
	if err != nil {
		t.Fatalf("CreateEnrollment: %v", err)
	}
	seq++
	now := e.clock.Now()
	m := store.MessageOut{
		EnrollmentID: eid, Step: 0, ContactID: cid, Account: "main",
		MessageID: fmt.Sprintf("fu%d.%d@seller.test", seq, time.Now().UnixNano()),
		Subject:   "Quick question, " + name, Sequence: "intro", Template: "first",
		ToAddr: email, ToName: name, FromAddr: fromAddr, FromName: "Sam Seller",
		BodyText:       "Hi " + name + ",\r\n\r\nShall we talk on Tuesday?\r\n",
		BodyHTML:       "<p>Hi " + name + ",</p><p>Shall we talk on <b>Tuesday</b>?</p>",
		UnsubscribeURL: "https://followup.example.com/u/tok" + fmt.Sprint(seq),
		NextAttemptAt:  &now,
	}
	for _, c := range change {
		c(&m)
	}
	id, err := e.st.InsertMessageOut(bg, m)
	if err != nil {
		t.Fatalf("InsertMessageOut: %v", err)
	}
	return e.row(id)
}

func (e *env) row(id int64) store.MessageOut {
	e.t.Helper()
	m, err := e.st.MessageOutByID(bg, id)
	if err != nil {
		e.t.Fatalf("MessageOutByID: %v", err)
	}
	return m
}

func (e *env) runOnce() int {
	e.t.Helper()
	n, err := e.svc.RunOnce(bg, "main")
	if err != nil {
		e.t.Fatalf("RunOnce: %v", err)
	}
	return n
}

func (e *env) wantStatus(id int64, status string) store.MessageOut {
	e.t.Helper()
	m := e.row(id)
	if m.Status != status {
		e.t.Fatalf("message %s is %s (last error %q), want %s", m.MessageID, m.Status, m.LastError, status)
	}
	return m
}

// delivered returns the sink's messages with this Message-ID.
func (e *env) delivered(msgID string) []smtptest.Message {
	var out []smtptest.Message
	for _, m := range e.sink.Messages() {
		if m.MessageID == msgID {
			out = append(out, m)
		}
	}
	return out
}

func (e *env) hooks() (sent, failed []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.sentHooks...), append([]string(nil), e.failHooks...)
}

// imapEnv is an in-process IMAP server with one user, seller, whose
// mailboxes are INBOX and Sent (marked \Sent).
type imapEnv struct {
	addr string
	user *imapmemserver.User

	mu      sync.Mutex
	selects []bool // ReadOnly of every SELECT/EXAMINE
	logins  int
}

const imapUser, imapPass = "sam@seller.test", "imap-secret"

func startIMAP(t *testing.T) *imapEnv {
	t.Helper()
	ie := &imapEnv{user: imapmemserver.NewUser(imapUser, imapPass)}
	for _, mb := range []string{"INBOX", "Sent"} {
		if err := ie.user.Create(mb, nil); err != nil {
			t.Fatal(err)
		}
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &imapSession{env: ie}, nil, nil
		},
		InsecureAuth: true,
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		Logger:       discardLogger{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ie.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		_ = ln.Close()
		<-done
	})
	return ie
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

// imapConfig points an account at the in-process server.
func (ie *imapEnv) imapConfig() *config.IMAP {
	host, port, _ := net.SplitHostPort(ie.addr)
	var p int
	fmt.Sscan(port, &p)
	return &config.IMAP{Server: config.Server{Host: host, Port: p, TLS: "none", InsecurePlaintext: true,
		Username: imapUser, Password: imapPass}}
}

// file puts raw in the Sent folder, as a provider that files sent mail
// itself would.
func (ie *imapEnv) file(t *testing.T, raw []byte) {
	t.Helper()
	if _, err := ie.user.Append("Sent", bytes.NewReader(raw), &imap.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
}

// sent returns the messages in Sent with their flags.
func (ie *imapEnv) sent(t *testing.T) (bodies [][]byte, flags [][]imap.Flag) {
	t.Helper()
	c, err := imapclient.DialInsecure(ie.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(imapUser, imapPass).Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select("Sent", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages == 0 {
		return nil, nil
	}
	msgs, err := c.Fetch(imap.SeqSetNum(seqRange(sel.NumMessages)...), &imap.FetchOptions{
		Flags:       true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		for _, s := range m.BodySection {
			bodies = append(bodies, s.Bytes)
		}
		flags = append(flags, m.Flags)
	}
	_ = c.Logout().Wait()
	return bodies, flags
}

func seqRange(n uint32) []uint32 {
	var out []uint32
	for i := uint32(1); i <= n; i++ {
		out = append(out, i)
	}
	return out
}

type imapSession struct {
	*imapmemserver.UserSession
	env *imapEnv
}

func (s *imapSession) Login(user, pass string) error {
	if err := s.env.user.Login(user, pass); err != nil {
		return err
	}
	s.env.mu.Lock()
	s.env.logins++
	s.env.mu.Unlock()
	s.UserSession = imapmemserver.NewUserSession(s.env.user)
	return nil
}

func (s *imapSession) Close() error {
	if s.UserSession == nil {
		return nil
	}
	return s.UserSession.Close()
}

func (s *imapSession) Select(name string, o *imap.SelectOptions) (*imap.SelectData, error) {
	s.env.mu.Lock()
	s.env.selects = append(s.env.selects, o != nil && o.ReadOnly)
	s.env.mu.Unlock()
	return s.UserSession.Select(name, o)
}

// List marks Sent with \Sent, which imapmemserver cannot.
func (s *imapSession) List(w *imapserver.ListWriter, ref string, patterns []string, o *imap.ListOptions) error {
	for _, name := range []string{"INBOX", "Sent"} {
		match := false
		for _, p := range patterns {
			match = match || imapserver.MatchList(name, '/', ref, p)
		}
		if !match {
			continue
		}
		d := &imap.ListData{Delim: '/', Mailbox: name}
		if name == "Sent" && o != nil && o.ReturnSpecialUse {
			d.Attrs = append(d.Attrs, imap.MailboxAttrSent)
		}
		if err := w.WriteList(d); err != nil {
			return err
		}
	}
	return nil
}

func (ie *imapEnv) allReadOnly() (bool, int) {
	ie.mu.Lock()
	defer ie.mu.Unlock()
	for _, ro := range ie.selects {
		if !ro {
			return false, len(ie.selects)
		}
	}
	return true, len(ie.selects)
}

func hasHeaderLine(raw []byte, name string) bool {
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	for _, line := range strings.Split(string(head), "\r\n") {
		if k, _, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return true
		}
	}
	return false
}
