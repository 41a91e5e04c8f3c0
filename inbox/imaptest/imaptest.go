// Package imaptest runs an in-process IMAP server (go-imap's imapserver over
// imapmemserver) for tests, with switches for the faults a watcher must
// survive: connections dropped, connections that stop answering (half
// open), a server without IDLE, and a UIDVALIDITY change.
//
// It shares its author with the client library: test against a real
// Dovecot too (package dovecottest).
package imaptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"

	"github.com/followupd/followupd/config"
)

// Options configures a server.
type Options struct {
	// TLS is "" or "none" (plaintext), "tls" (implicit TLS) or
	// "starttls"; the certificate is self-signed for 127.0.0.1, trusted by
	// Server.TLSConfig.
	TLS string
	// OAuthToken, when set, makes the server offer AUTH=XOAUTH2 and accept
	// this bearer token for the user.
	OAuthToken string
	// NoIdle starts the server without the IDLE capability.
	NoIdle bool
}

// Server is a running in-process IMAP server with one user, whose INBOX and
// Sent folders exist.
type Server struct {
	Host     string
	Port     int
	Username string
	Password string

	t      fataler
	opts   Options
	mem    *imapmemserver.Server
	user   *imapmemserver.User
	srv    *imapserver.Server
	roots  *x509.CertPool
	noIdle atomic.Bool
	logins atomic.Int64

	served    chan struct{}
	closeOnce sync.Once

	mu        sync.Mutex
	conns     map[*wireConn]struct{}
	commands  []string
	delivered map[string][]delivery // per mailbox, for ChangeUIDValidity
}

type delivery struct {
	raw []byte
	at  time.Time
}

// fataler is what the server needs of a testing.TB: a test's, or, for a
// server started with New, one that panics (a failure of the in-memory
// backend is a bug, not an input error).
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

type panicking struct{}

func (panicking) Helper() {}
func (panicking) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// Start starts a plaintext server with IDLE, closed when the test ends.
func Start(t testing.TB) *Server { return StartWith(t, Options{}) }

// StartWith starts a server configured by o, closed when the test ends.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	s, err := NewWith(o)
	if err != nil {
		t.Fatalf("imaptest: %v", err)
	}
	s.t = t
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// New starts a plaintext server with IDLE outside of a test (e.g. for
// `followupd demo`); the caller must Close it. Its helpers panic where a
// test's server would fail the test.
func New() (*Server, error) { return NewWith(Options{}) }

// NewWith starts a server configured by o outside of a test; the caller
// must Close it.
func NewWith(o Options) (*Server, error) {
	s := &Server{
		Username:  "alice@example.test",
		Password:  "secret",
		t:         panicking{},
		opts:      o,
		mem:       imapmemserver.New(),
		conns:     map[*wireConn]struct{}{},
		delivered: map[string][]delivery{},
	}
	s.noIdle.Store(o.NoIdle)
	s.user = imapmemserver.NewUser(s.Username, s.Password)
	s.mem.AddUser(s.user)
	for _, name := range []string{"INBOX", "Sent"} {
		if err := s.user.Create(name, nil); err != nil {
			return nil, fmt.Errorf("create %s: %w", name, err)
		}
	}

	var tlsConf *tls.Config
	if o.TLS == "tls" || o.TLS == "starttls" {
		var err error
		if tlsConf, s.roots, err = selfSigned(); err != nil {
			return nil, fmt.Errorf("certificate: %w", err)
		}
	}
	so := &imapserver.Options{
		NewSession: func(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &session{Session: s.mem.NewSession(), s: s}, nil, nil
		},
		Caps: imap.CapSet{imap.CapIMAP4rev1: {}},
		// The server cannot see the TLS under the recording wrapper: with
		// implicit TLS every connection is encrypted anyway.
		InsecureAuth: o.TLS != "starttls",
		Logger:       log.New(io.Discard, "", 0),
	}
	if o.TLS == "starttls" {
		so.TLSConfig = tlsConf
	}
	s.srv = imapserver.New(so)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	s.Host, s.Port = "127.0.0.1", addr.Port
	if o.TLS == "tls" {
		ln = tls.NewListener(ln, tlsConf)
	}
	// Over the TLS listener, so that commands are recorded in clear (after
	// STARTTLS they are not).
	l := &listener{Listener: ln, s: s}
	s.served = make(chan struct{})
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(l)
	}()
	return s, nil
}

// Close stops the server and closes every client connection.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		err = s.srv.Close()
		<-s.served
		s.DropConnections()
	})
	return err
}

// IMAP returns an account's imap section that logs in to this server.
func (s *Server) IMAP() *config.IMAP {
	im := &config.IMAP{
		Server: config.Server{
			Host:     s.Host,
			Port:     s.Port,
			TLS:      "none",
			Username: s.Username,
			Password: config.Secret(s.Password),
			Auth:     "auto",
		},
		Folders:         []string{"INBOX"},
		Lookback:        config.Duration(30 * 24 * time.Hour),
		PollInterval:    config.Duration(time.Minute),
		MaxMessageBytes: 256 << 10,
	}
	switch s.opts.TLS {
	case "tls", "starttls":
		im.TLS = s.opts.TLS
	default:
		im.InsecurePlaintext = true
	}
	return im
}

// TLSConfig trusts the server's certificate; nil for a plaintext server.
func (s *Server) TLSConfig() *tls.Config {
	if s.roots == nil {
		return nil
	}
	return &tls.Config{RootCAs: s.roots}
}

// Deliver adds a message to a mailbox, received now, and returns its UID.
// An idling client is told with EXISTS.
func (s *Server) Deliver(mailbox string, raw []byte) uint32 {
	return s.DeliverAt(mailbox, raw, time.Now())
}

// DeliverAt adds a message with the given internal date and returns its UID.
func (s *Server) DeliverAt(mailbox string, raw []byte, at time.Time) uint32 {
	s.t.Helper()
	data, err := s.user.Append(mailbox, literal(raw), &imap.AppendOptions{Time: at})
	if err != nil {
		s.t.Fatalf("imaptest: append to %s: %v", mailbox, err)
	}
	s.mu.Lock()
	s.delivered[mailbox] = append(s.delivered[mailbox], delivery{raw: bytes.Clone(raw), at: at})
	s.mu.Unlock()
	return uint32(data.UID)
}

// CreateMailbox adds a mailbox.
func (s *Server) CreateMailbox(name string) {
	s.t.Helper()
	if err := s.user.Create(name, nil); err != nil {
		s.t.Fatalf("imaptest: create %s: %v", name, err)
	}
}

// UIDs lists the UIDs of a mailbox's messages.
func (s *Server) UIDs(mailbox string) []uint32 {
	return s.search(mailbox, &imap.SearchCriteria{})
}

// Seen counts the messages of a mailbox that have \Seen.
func (s *Server) Seen(mailbox string) int {
	return len(s.search(mailbox, &imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}}))
}

// Count is the number of messages in a mailbox.
func (s *Server) Count(mailbox string) int { return len(s.UIDs(mailbox)) }

// UIDValidity returns the mailbox's UIDVALIDITY.
func (s *Server) UIDValidity(mailbox string) uint32 {
	s.t.Helper()
	st, err := s.user.Status(mailbox, &imap.StatusOptions{UIDValidity: true})
	if err != nil {
		s.t.Fatalf("imaptest: status %s: %v", mailbox, err)
	}
	return st.UIDValidity
}

func (s *Server) search(mailbox string, criteria *imap.SearchCriteria) []uint32 {
	s.t.Helper()
	sess := imapmemserver.NewUserSession(s.user)
	defer sess.Close()
	if _, err := sess.Select(mailbox, &imap.SelectOptions{ReadOnly: true}); err != nil {
		s.t.Fatalf("imaptest: select %s: %v", mailbox, err)
	}
	data, err := sess.Search(imapserver.NumKindUID, criteria, &imap.SearchOptions{})
	if err != nil {
		s.t.Fatalf("imaptest: search %s: %v", mailbox, err)
	}
	set, _ := data.All.(imap.UIDSet)
	uids, _ := set.Nums()
	out := make([]uint32, len(uids))
	for i, u := range uids {
		out[i] = uint32(u)
	}
	return out
}

// Logins counts the successful logins so far.
func (s *Server) Logins() int { return int(s.logins.Load()) }

// Commands returns the commands clients sent, one line each without the
// tag ("EXAMINE INBOX", "UID FETCH 1:3 (...)"); credentials are masked.
func (s *Server) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

// DropConnections closes every client connection now, as a server restart
// or a NAT box would (the client sees the connection end).
func (s *Server) DropConnections() {
	for _, c := range s.takeConns() {
		_ = c.Conn.Close()
	}
}

// Hang makes the current connections go silent: the server reads but no
// longer answers, as over a half-open TCP connection. New connections work.
func (s *Server) Hang() {
	for _, c := range s.takeConns() {
		c.hung.Store(true)
	}
}

func (s *Server) takeConns() []*wireConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*wireConn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
		delete(s.conns, c)
	}
	return out
}

// SetIdle turns the IDLE capability on or off for new connections.
func (s *Server) SetIdle(on bool) { s.noIdle.Store(!on) }

// ChangeUIDValidity deletes the mailbox and creates it again with the same
// messages (as a server rebuilding its index would): the messages get a new
// UIDVALIDITY and new UIDs, and their flags are reset. Connections are
// dropped, so that clients select the new mailbox.
func (s *Server) ChangeUIDValidity(mailbox string) {
	s.t.Helper()
	s.mu.Lock()
	msgs := s.delivered[mailbox]
	s.delivered[mailbox] = nil
	s.mu.Unlock()
	if err := s.user.Delete(mailbox); err != nil {
		s.t.Fatalf("imaptest: delete %s: %v", mailbox, err)
	}
	if err := s.user.Create(mailbox, nil); err != nil {
		s.t.Fatalf("imaptest: create %s: %v", mailbox, err)
	}
	for _, m := range msgs {
		s.DeliverAt(mailbox, m.raw, m.at)
	}
	s.DropConnections()
}

func (s *Server) record(line string) {
	s.mu.Lock()
	s.commands = append(s.commands, line)
	s.mu.Unlock()
}

// session adds XOAUTH2 to the memory server's sessions and counts logins.
type session struct {
	imapserver.Session
	s *Server
}

func (sess *session) Login(username, password string) error {
	if err := sess.Session.Login(username, password); err != nil {
		return err
	}
	sess.s.logins.Add(1)
	return nil
}

// Idle sends the mailbox's updates while the client idles. The memory
// server only reports updates queued after IDLE began; a real server (and
// RFC 2177) also reports those queued just before, so this Idle polls the
// session's queue instead, every 10 ms.
func (sess *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if err := sess.Session.Poll(w, true); err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		case <-t.C:
		}
	}
}

func (sess *session) AuthenticateMechanisms() []string {
	if sess.s.opts.OAuthToken != "" {
		return []string{sasl.Plain, "XOAUTH2"}
	}
	return []string{sasl.Plain}
}

func (sess *session) Authenticate(mech string) (sasl.Server, error) {
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return imapserver.ErrAuthFailed
			}
			return sess.Login(username, password)
		}), nil
	case "XOAUTH2":
		if sess.s.opts.OAuthToken != "" {
			return &xoauth2Server{sess: sess}, nil
		}
	}
	return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "SASL mechanism not supported"}
}

// xoauth2Server checks "user=U\x01auth=Bearer T\x01\x01" against the
// user and the configured token.
type xoauth2Server struct {
	sess *session
	done bool
}

func (x *xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	if resp == nil {
		return []byte{}, false, nil // ask for the initial response
	}
	var user, token string
	for _, field := range strings.Split(string(resp), "\x01") {
		if v, ok := strings.CutPrefix(field, "user="); ok {
			user = v
		}
		if v, ok := strings.CutPrefix(field, "auth=Bearer "); ok {
			token = v
		}
	}
	s := x.sess.s
	if user != s.Username || token != s.opts.OAuthToken {
		return nil, false, imapserver.ErrAuthFailed
	}
	// Log the memory server's session in with the user's password.
	if err := x.sess.Login(s.Username, s.Password); err != nil {
		return nil, false, err
	}
	return nil, true, nil
}

// listener wraps accepted connections to record commands and inject
// faults.
type listener struct {
	net.Listener
	s *Server
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	wc := &wireConn{Conn: c, s: l.s, noIdle: l.s.noIdle.Load()}
	l.s.mu.Lock()
	l.s.conns[wc] = struct{}{}
	l.s.mu.Unlock()
	return wc, nil
}

type wireConn struct {
	net.Conn
	s      *Server
	noIdle bool
	hung   atomic.Bool

	line []byte // the command line being read
}

func (c *wireConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	for _, b := range p[:n] {
		if b == '\n' {
			c.recordLine(string(bytes.TrimRight(c.line, "\r")))
			c.line = c.line[:0]
			continue
		}
		if len(c.line) < 4096 {
			c.line = append(c.line, b)
		}
	}
	return n, err
}

// recordLine keeps a command without its tag; SASL responses and LOGIN
// arguments are masked.
func (c *wireConn) recordLine(line string) {
	if strings.EqualFold(line, "DONE") {
		c.s.record("DONE")
		return
	}
	_, cmd, ok := strings.Cut(line, " ")
	if !ok {
		return // a SASL response
	}
	upper := strings.ToUpper(cmd)
	switch {
	case strings.HasPrefix(upper, "LOGIN "):
		cmd = "LOGIN ***"
	case strings.HasPrefix(upper, "AUTHENTICATE "):
		mech, _, _ := strings.Cut(cmd[len("AUTHENTICATE "):], " ")
		cmd = "AUTHENTICATE " + mech
	}
	c.s.record(cmd)
}

func (c *wireConn) Write(p []byte) (int, error) {
	if c.hung.Load() {
		return len(p), nil // swallowed: the client waits forever
	}
	if c.noIdle && bytes.Contains(p, []byte("CAPABILITY")) {
		if _, err := c.Conn.Write(withoutIdle(p)); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *wireConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
	return c.Conn.Close()
}

// withoutIdle removes the IDLE token from the capability lists in p.
// imapserver always announces IDLE to IMAP4rev1 clients, so "no IDLE" is
// done on the wire.
func withoutIdle(p []byte) []byte {
	lines := bytes.SplitAfter(p, []byte("\n"))
	for i, l := range lines {
		if !bytes.Contains(l, []byte("CAPABILITY")) {
			continue
		}
		for _, r := range [][2]string{{" IDLE ", " "}, {" IDLE]", "]"}, {" IDLE\r", "\r"}} {
			l = bytes.ReplaceAll(l, []byte(r[0]), []byte(r[1]))
		}
		lines[i] = l
	}
	return bytes.Join(lines, nil)
}

// literal makes raw an imap.LiteralReader.
func literal(raw []byte) imap.LiteralReader {
	return &literalReader{Reader: bytes.NewReader(raw), size: int64(len(raw))}
}

type literalReader struct {
	*bytes.Reader
	size int64
}

func (l *literalReader) Size() int64 { return l.size }

// selfSigned makes a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned() (*tls.Config, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "imaptest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}, pool, nil
}
