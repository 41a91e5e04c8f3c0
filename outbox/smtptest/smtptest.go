// Package smtptest is an in-process SMTP server for tests and benchmarks:
// it records every message it accepts and can be told, while running, to
// answer with faults — a temporary or permanent reply to a recipient or after
// the message, a connection dropped before DATA or after the final dot, a
// connection refused with 421 — or, for chaos runs, with faults that strike
// a share of the traffic at random, reproducibly from a seed
// (SetRandomFaults).
//
// It listens on 127.0.0.1 without TLS and allows AUTH (PLAIN, LOGIN,
// CRAM-MD5, XOAUTH2) over plaintext, for the users added with AddUser and
// AddToken.
package smtptest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Event names what the server counts; see Server.Count.
type Event string

// Events counted by the server.
const (
	// Connections is every EHLO/HELO that opened a session (a rejected
	// one included).
	Connections Event = "connections"
	// Rejected is a connection refused with 421 (RejectConnections).
	Rejected Event = "rejected"
	// Auths and AuthFailures count AUTH commands by outcome.
	Auths        Event = "auths"
	AuthFailures Event = "auth_failures"
	// Mails is every MAIL FROM accepted.
	Mails Event = "mails"
	// Rcpts is every RCPT TO accepted; RcptRejects every one answered with
	// an error (RcptReply).
	Rcpts       Event = "rcpts"
	RcptRejects Event = "rcpt_rejects"
	// DataRejects is a message refused after its final dot (DataReply).
	DataRejects Event = "data_rejects"
	// DroppedAtMail is a connection closed instead of answering MAIL
	// FROM, as a kept connection the server dropped while it was idle.
	DroppedAtMail Event = "dropped_at_mail"
	// DroppedBeforeData is a connection closed instead of answering RCPT.
	DroppedBeforeData Event = "dropped_before_data"
	// DroppedAfterDot is a message read in full, recorded as delivered, and
	// its connection closed without an answer.
	DroppedAfterDot Event = "dropped_after_dot"
	// Delivered is every message recorded (DroppedAfterDot ones included).
	Delivered Event = "delivered"
)

// Always makes a fault apply until it is switched off (times 0).
const Always = -1

// Ready-made replies for the fault switches.
var (
	// Reply451 is a temporary local error, e.g. greylisting at RCPT.
	Reply451 = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "Temporary local problem, try again later"}
	// Reply452 is a full mailbox at RCPT.
	Reply452 = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "Mailbox full"}
	// Reply550UserUnknown is a recipient that does not exist.
	Reply550UserUnknown = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "User unknown"}
	// Reply452Storage is a lack of storage after the final dot.
	Reply452Storage = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system storage"}
	// Reply554 is a message rejected after the final dot.
	Reply554 = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message rejected"}
)

// Message is one message the server accepted.
type Message struct {
	From string
	To   []string
	// Data is the message as sent, dot-unstuffed, with CRLF line ends.
	Data []byte
	// MessageID is the Message-ID header without angle brackets.
	MessageID string
	// Header is the parsed header of Data (nil if it did not parse).
	Header mail.Header
	// AuthUser and AuthMech say who logged in, and how; empty without AUTH.
	AuthUser string
	AuthMech string
}

// fault is a switch that fires a number of times (or Always).
type fault struct {
	times int
	reply *smtp.SMTPError
}

func (f *fault) fire() (*smtp.SMTPError, bool) {
	if f == nil || f.times == 0 {
		return nil, false
	}
	if f.times > 0 {
		f.times--
	}
	return f.reply, true
}

// Server is a running test SMTP server. Its methods are safe for
// concurrent use.
type Server struct {
	srv  *smtp.Server
	ln   net.Listener
	done chan struct{}

	mu        sync.Mutex
	messages  []Message
	delivered int
	changed   chan struct{} // closed and replaced on every delivery
	counts    map[Event]int
	discard   bool
	requireAu bool
	users     map[string]string // user → password
	tokens    map[string]string // user → XOAUTH2 token

	hold           *hold             // BlockData
	rcptFaults     map[string]*fault // lower-cased address → fault
	dataFault      *fault
	dropAtMail     *fault
	dropBeforeData *fault
	dropAfterDot   *fault
	reject         *fault
	random         *randomFaults
}

// Start starts a server for the test and closes it when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := New()
	if err != nil {
		tb.Fatalf("smtptest: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// New starts a server outside of a test (e.g. in a benchmark's setup); the
// caller must Close it.
func New() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s := &Server{
		ln:         ln,
		done:       make(chan struct{}),
		changed:    make(chan struct{}),
		counts:     map[Event]int{},
		users:      map[string]string{},
		tokens:     map[string]string{},
		rcptFaults: map[string]*fault{},
	}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "smtptest.localhost"
	srv.AllowInsecureAuth = true
	srv.MaxMessageBytes = 32 << 20
	srv.MaxRecipients = 100
	srv.ErrorLog = log.New(io.Discard, "", 0)
	s.srv = srv
	go func() {
		defer close(s.done)
		_ = srv.Serve(ln)
	}()
	return s, nil
}

// Close stops the server and closes every connection.
func (s *Server) Close() error {
	err := s.srv.Close()
	// go-smtp closes only the listeners Serve has registered: one that had
	// not started yet would accept forever.
	_ = s.ln.Close()
	<-s.done
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Host is the address the server listens on, 127.0.0.1.
func (s *Server) Host() string {
	h, _, _ := net.SplitHostPort(s.Addr())
	return h
}

// Port is the port the server listens on.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr())
	n, _ := strconv.Atoi(p)
	return n
}

// AddUser lets user log in with password (PLAIN, LOGIN, CRAM-MD5).
func (s *Server) AddUser(user, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[user] = password
}

// AddToken lets user log in with XOAUTH2 and this bearer token.
func (s *Server) AddToken(user, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[user] = token
}

// RequireAuth makes MAIL FROM fail with 530 until the client logged in.
func (s *Server) RequireAuth(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requireAu = on
}

// Discard makes the server count messages without keeping them (for
// benchmarks): Messages stays empty, WaitForMessages and Count(Delivered)
// still see them.
func (s *Server) Discard(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.discard = on
}

// RcptReply makes RCPT TO addr (any case) answer reply for the next times
// commands (Always: until switched off with times 0).
func (s *Server) RcptReply(addr string, reply *smtp.SMTPError, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcptFaults[strings.ToLower(addr)] = &fault{times: times, reply: reply}
}

// DataReply makes the server read the next times messages in full and then
// answer reply instead of accepting them.
func (s *Server) DataReply(reply *smtp.SMTPError, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dataFault = &fault{times: times, reply: reply}
}

// DropAtMail makes the server close the next times connections when MAIL
// FROM arrives, without answering it: to the client, a connection it kept
// open that the server had dropped meanwhile.
func (s *Server) DropAtMail(times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropAtMail = &fault{times: times}
}

// DropBeforeData makes the server close the next times connections when
// RCPT TO arrives, without answering it: nothing was delivered.
func (s *Server) DropBeforeData(times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropBeforeData = &fault{times: times}
}

// DropAfterDot makes the server read the next times messages in full,
// record them as delivered, and close the connection without answering:
// the client cannot know whether the message went out.
func (s *Server) DropAfterDot(times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropAfterDot = &fault{times: times}
}

// RejectConnections makes the server refuse the next times sessions with
// "421 4.4.5 Too busy" and close them (go-smtp's Conn.Reject, sent in
// answer to EHLO).
func (s *Server) RejectConnections(times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reject = &fault{times: times}
}

type hold struct {
	entered     chan struct{}
	enteredOnce sync.Once
	release     chan struct{}
	releaseOnce sync.Once
}

// BlockData makes the server, once it has read a whole message, wait before
// answering until release is called; entered is closed when the first
// message is waiting. It lets a test act while a send is in flight.
func (s *Server) BlockData() (entered <-chan struct{}, release func()) {
	h := &hold{entered: make(chan struct{}), release: make(chan struct{})}
	s.mu.Lock()
	s.hold = h
	s.mu.Unlock()
	return h.entered, func() { h.releaseOnce.Do(func() { close(h.release) }) }
}

// ClearFaults switches every fault off.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcptFaults = map[string]*fault{}
	s.dataFault, s.dropAtMail, s.dropBeforeData, s.dropAfterDot, s.reject = nil, nil, nil, nil, nil
	s.random = nil
}

// RandomFaults are faults that strike a share of the traffic (0 to 1 each),
// for chaos runs. Whether one strikes is decided from Seed, the recipient
// address and how many times that address was seen before, so a run gives
// the same faults to the same addresses whatever the order in which
// concurrent clients send.
type RandomFaults struct {
	// Rcpt451 is the share of RCPT TO answered 451 (temporary).
	Rcpt451 float64
	// Rcpt451Once answers 451 to an address at most once, as greylisting
	// does: its retry gets through (or meets the other faults).
	Rcpt451Once bool
	// Rcpt550 is the share of RCPT TO answered 550 5.1.1 (permanent).
	Rcpt550 float64
	// DropAfterDot is the share of messages read in full, recorded as
	// delivered, and their connection closed without an answer.
	DropAfterDot float64
	Seed         int64
}

type randomFaults struct {
	RandomFaults
	rcpts map[string]int // lower-cased address → RCPTs seen
	datas map[string]int // lower-cased first recipient → messages seen
}

// SetRandomFaults switches random faults on (a zero RandomFaults switches
// them off). They apply where no explicit fault switch fires.
func (s *Server) SetRandomFaults(f RandomFaults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Rcpt451 <= 0 && f.Rcpt550 <= 0 && f.DropAfterDot <= 0 {
		s.random = nil
		return
	}
	s.random = &randomFaults{RandomFaults: f, rcpts: map[string]int{}, datas: map[string]int{}}
}

// roll is a number in [0, 1) fixed by the seed, a kind, an address and n.
func (r *randomFaults) roll(kind, addr string, n int) float64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d\x00%s\x00%s\x00%d", r.Seed, kind, addr, n)
	// FNV's low bits mix poorly on similar inputs: finish with splitmix64.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

// rcpt decides a RCPT TO (s.mu held): nil accepts it.
func (r *randomFaults) rcpt(addr string) *smtp.SMTPError {
	if r == nil {
		return nil
	}
	addr = strings.ToLower(addr)
	n := r.rcpts[addr]
	r.rcpts[addr] = n + 1
	if (!r.Rcpt451Once || n == 0) && r.roll("451", addr, n) < r.Rcpt451 {
		return Reply451
	}
	if r.roll("550", addr, n) < r.Rcpt550 {
		return Reply550UserUnknown
	}
	return nil
}

// dropAfterDot decides whether to drop a message's connection (s.mu held).
func (r *randomFaults) dropAfterDot(to []string) bool {
	if r == nil || len(to) == 0 {
		return false
	}
	addr := strings.ToLower(to[0])
	n := r.datas[addr]
	r.datas[addr] = n + 1
	return r.roll("dot", addr, n) < r.DropAfterDot
}

// Messages returns a copy of the messages accepted so far, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	copy(out, s.messages)
	return out
}

// Count returns how many times ev happened.
func (s *Server) Count(ev Event) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[ev]
}

// Counts returns every counter.
func (s *Server) Counts() map[Event]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[Event]int, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

// WaitForMessages waits until at least n messages were delivered (counted
// in Discard mode) and returns the kept ones, or ctx's error.
func (s *Server) WaitForMessages(ctx context.Context, n int) ([]Message, error) {
	for {
		s.mu.Lock()
		if s.delivered >= n {
			out := make([]Message, len(s.messages))
			copy(out, s.messages)
			s.mu.Unlock()
			return out, nil
		}
		ch := s.changed
		got := s.delivered
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("smtptest: %d of %d messages delivered: %w", got, n, ctx.Err())
		}
	}
}

func (s *Server) count(ev Event) {
	s.mu.Lock()
	s.counts[ev]++
	s.mu.Unlock()
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	s.counts[Connections]++
	_, reject := s.reject.fire()
	if reject {
		s.counts[Rejected]++
	}
	s.mu.Unlock()
	if reject {
		c.Reject()
		return nil, errors.New("rejected")
	}
	return &session{s: s, conn: c}, nil
}

type session struct {
	s    *Server
	conn *smtp.Conn

	authUser, authMech string
	from               string
	to                 []string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string {
	return []string{sasl.Plain, sasl.Login, "CRAM-MD5", "XOAUTH2"}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	done := func(user string, err error) error {
		if err != nil {
			ss.s.count(AuthFailures)
			return smtp.ErrAuthFailed
		}
		ss.s.count(Auths)
		ss.authUser, ss.authMech = user, mech
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			return done(user, ss.s.checkPassword(user, pass))
		}), nil
	case sasl.Login:
		return &loginServer{check: func(user, pass string) error {
			return done(user, ss.s.checkPassword(user, pass))
		}}, nil
	case "CRAM-MD5":
		return &cramServer{s: ss.s, done: done}, nil
	case "XOAUTH2":
		return &xoauth2Server{s: ss.s, done: done}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *Server) checkPassword(user, pass string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	want, ok := s.users[user]
	if !ok || !hmac.Equal([]byte(want), []byte(pass)) {
		return errors.New("bad credentials")
	}
	return nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.s.mu.Lock()
	need := ss.s.requireAu
	_, drop := ss.s.dropAtMail.fire()
	if drop {
		ss.s.counts[DroppedAtMail]++
	}
	ss.s.mu.Unlock()
	if drop {
		_ = ss.conn.Close()
		return errors.New("connection dropped")
	}
	if need && ss.authUser == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	ss.from = from
	ss.s.count(Mails)
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s := ss.s
	s.mu.Lock()
	_, drop := s.dropBeforeData.fire()
	var reply *smtp.SMTPError
	rejected := false
	if !drop {
		reply, rejected = s.rcptFaults[strings.ToLower(to)].fire()
		if !rejected {
			reply = s.random.rcpt(to)
			rejected = reply != nil
		}
	}
	switch {
	case drop:
		s.counts[DroppedBeforeData]++
	case rejected:
		s.counts[RcptRejects]++
	default:
		s.counts[Rcpts]++
	}
	s.mu.Unlock()
	if drop {
		_ = ss.conn.Close()
		return errors.New("connection dropped")
	}
	if rejected {
		return reply
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s := ss.s
	s.mu.Lock()
	h := s.hold
	s.mu.Unlock()
	if h != nil {
		h.enteredOnce.Do(func() { close(h.entered) })
		<-h.release
	}
	s.mu.Lock()
	reply, rejected := s.dataFault.fire()
	_, drop := s.dropAfterDot.fire()
	if !rejected && !drop {
		drop = s.random.dropAfterDot(ss.to)
	}
	if rejected {
		s.counts[DataRejects]++
		s.mu.Unlock()
		return reply
	}
	if drop {
		s.counts[DroppedAfterDot]++
	}
	s.deliverLocked(Message{From: ss.from, To: append([]string(nil), ss.to...), Data: data,
		AuthUser: ss.authUser, AuthMech: ss.authMech})
	s.mu.Unlock()
	if drop {
		_ = ss.conn.Close()
		return errors.New("connection dropped after the final dot")
	}
	return nil
}

func (s *Server) deliverLocked(m Message) {
	s.counts[Delivered]++
	s.delivered++
	if !s.discard {
		if msg, err := mail.ReadMessage(bytes.NewReader(m.Data)); err == nil {
			m.Header = msg.Header
			m.MessageID = strings.Trim(strings.TrimSpace(msg.Header.Get("Message-Id")), "<>")
		}
		s.messages = append(s.messages, m)
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

func (ss *session) Reset() {
	ss.from, ss.to = "", nil
}

func (ss *session) Logout() error { return nil }

// loginServer is the server side of AUTH LOGIN.
type loginServer struct {
	check func(user, pass string) error
	step  int
	user  string
}

func (a *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch a.step {
	case 0:
		a.step++
		if response != nil { // initial response carries the user name
			a.user = string(response)
			a.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		a.step++
		a.user = string(response)
		return []byte("Password:"), false, nil
	default:
		return nil, true, a.check(a.user, string(response))
	}
}

// cramServer is the server side of AUTH CRAM-MD5.
type cramServer struct {
	s         *Server
	done      func(user string, err error) error
	challenge []byte
}

func (a *cramServer) Next(response []byte) ([]byte, bool, error) {
	if a.challenge == nil {
		var b [8]byte
		_, _ = rand.Read(b[:])
		a.challenge = []byte("<" + hex.EncodeToString(b[:]) + "@smtptest.localhost>")
		return a.challenge, false, nil
	}
	user, digest, ok := strings.Cut(string(response), " ")
	a.s.mu.Lock()
	secret, known := a.s.users[user]
	a.s.mu.Unlock()
	mac := hmac.New(md5.New, []byte(secret))
	mac.Write(a.challenge)
	want := hex.EncodeToString(mac.Sum(nil))
	if !ok || !known || !hmac.Equal([]byte(want), []byte(digest)) {
		return nil, true, a.done(user, errors.New("bad digest"))
	}
	return nil, true, a.done(user, nil)
}

// xoauth2Server is the server side of AUTH XOAUTH2
// ("user=U\x01auth=Bearer T\x01\x01").
type xoauth2Server struct {
	s    *Server
	done func(user string, err error) error
}

func (a *xoauth2Server) Next(response []byte) ([]byte, bool, error) {
	if response == nil {
		return []byte{}, false, nil
	}
	var user, token string
	for _, f := range strings.Split(string(response), "\x01") {
		switch {
		case strings.HasPrefix(f, "user="):
			user = strings.TrimPrefix(f, "user=")
		case strings.HasPrefix(f, "auth=Bearer "):
			token = strings.TrimPrefix(f, "auth=Bearer ")
		}
	}
	a.s.mu.Lock()
	want, ok := a.s.tokens[user]
	a.s.mu.Unlock()
	if !ok || token == "" || !hmac.Equal([]byte(want), []byte(token)) {
		return nil, true, a.done(user, errors.New("bad token"))
	}
	return nil, true, a.done(user, nil)
}
